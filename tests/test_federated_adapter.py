"""FeCoSR's local stage without Flower: the market adapter starts as the identity, trains with the encoder frozen
through the fine-tuning path and survives a Hub folder; XMRec's `markets` keeps one market's rows."""

from __future__ import annotations

import pytest
import torch
from conftest import quiet_trainer, tiny_sasrec
from federated_helpers import write_markets

from lightning_seqrec import adapt_to_data, hub
from lightning_seqrec.data import XMRec
from lightning_seqrec.errors import DataError
from lightning_seqrec.federated.adapter import FreezeEncoder, with_adapter


def test_adapter_starts_as_identity_and_trains_with_the_encoder_frozen(chain_datamodule, tmp_path):
    source = tiny_sasrec(chain_datamodule)
    source.attach_data(chain_datamodule)
    histories = [[1, 2, 3], [7, 8]]
    adapted = adapt_to_data(with_adapter(source, bottleneck=4), chain_datamodule)  # the library's fine-tuning path
    assert torch.allclose(adapted.eval().score_histories(histories), source.eval().score_histories(histories))
    inner = {k: v.clone() for k, v in adapted.backbone.inner.state_dict().items()}
    quiet_trainer(max_epochs=1, callbacks=[FreezeEncoder()]).fit(adapted, chain_datamodule)
    assert all(torch.equal(v, inner[k]) for k, v in adapted.backbone.inner.state_dict().items())
    assert adapted.backbone.up.weight.abs().sum() > 0  # the adapter trained
    folder = hub.save_pretrained(adapted, tmp_path / "adapted")
    loaded = hub.from_pretrained(f"local-dir:{folder}")
    assert torch.allclose(loaded.eval().score_histories(histories), adapted.eval().score_histories(histories))


def test_xmrec_markets_keeps_those_markets_only(tmp_path):
    data = write_markets(tmp_path)
    dm = XMRec(path=str(data), markets=["bb"], max_len=8)
    dm.setup()
    assert set(dm.interactions.frame["market"]) == {"bb"} and {r[0] for r in dm.vocab.raw_ids} == {"i", "b"}
    assert len(XMRec(path=str(data)).read().frame) > len(dm.interactions.frame)
    with pytest.raises(DataError, match=r"market\(s\) \['zz'\] are not in the data"):
        XMRec(path=str(data), markets=["zz"]).read()
