"""Export parity: the ONNX encoder (onnxruntime, CPU) and the TorchScript one give the PyTorch module's scores within
1e-4 and the same top-10 on fixed histories, at batch sizes and lengths other than the traced ones, for every
built-in backbone (the LRU through its real-arithmetic scan); a graph that cannot be traced faithfully is refused."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import make_chain_datamodule
from torch import nn

from lightning_seqrec import SeqRecModule, cli
from lightning_seqrec.backbones import register_backbone
from lightning_seqrec.batch import pad_histories
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.export import GRAPH_FILES, export, run_graph

pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime (the [serve] extra)")

BACKBONES = {
    "sasrec": ("sasrec", {"num_blocks": 2, "num_heads": 2, "max_len": 8}),
    "gru4rec": ("gru4rec", {"hidden_dim": 24, "num_layers": 2}),
    "lstm": ("lstm", {"hidden_dim": 24}),
    "lru": ("lru", {"num_layers": 2}),
    "lru-2-interests": ("lru", {"num_heads": 2, "interests": "max"}),
}


@pytest.fixture(scope="module")
def dm():
    return make_chain_datamodule()


def model_for(dm, backbone: str, kwargs: dict, **extra) -> SeqRecModule:
    """A tiny module on the chain data's vocabulary; `extra` goes to `SeqRecModule` (an input encoder)."""
    torch.manual_seed(0)
    module = SeqRecModule(
        dm.num_items,
        backbone=backbone,
        backbone_kwargs={"embedding_dim": 16, **kwargs},
        embedding_dim=16,
        max_len=8,
        **extra,
    )
    with torch.no_grad():  # scores of a trained model's size, not of N(0, 0.02) embeddings
        module.item_embedding.weight.mul_(50)
    module.attach_data(dm)
    return module.eval()


def fixed_histories(dm) -> list[list]:
    """Nine users' histories, 1 to 9 items (the longest past max_len = 8, so truncated as the module truncates)."""
    return [dm.user_history(u)[: 1 + i] for i, u in enumerate(dm.split.test.history.users[:9])]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", list(BACKBONES))
def test_exported_encoder_scores_like_the_module(dm, tmp_path, name, fmt):
    module = model_for(dm, *BACKBONES[name])
    manifest = export(module, tmp_path, fmt)
    assert manifest["parity"]["max_abs_score_error"] < 1e-4 and manifest["parity"]["same_top"]
    histories = fixed_histories(dm)
    item_seq = pad_histories(module.encode_histories(histories), module.max_len)
    hidden = torch.from_numpy(run_graph(tmp_path / manifest["graph"], fmt, (item_seq,))[0])
    table = safetensors.torch.load_file(str(tmp_path / "items.safetensors"))["items"]
    assert torch.equal(table, module.item_embedding.weight)
    scores = module.score_hidden(hidden)
    expected = module.score_histories(histories, exclude_seen=False)
    assert expected[:, 1:].abs().max() > 1  # a real scale, so 1e-4 is a real bound
    assert (scores[:, 1:] - expected[:, 1:]).abs().max() < 1e-4
    assert torch.equal(scores.topk(10).indices, expected.topk(10).indices)
    assert json.loads((tmp_path / "vocab.json").read_text())["ids"] == module.vocab.raw_ids


def test_topk_output_returns_what_recommend_returns(dm, tmp_path):
    module = model_for(dm, *BACKBONES["sasrec"])
    manifest = export(module, tmp_path, "onnx", output="topk", k=5)
    assert manifest["outputs"] == ["scores", "indices"]
    histories = [h for h in fixed_histories(dm) if len(h) <= module.max_len]  # the window is all that is masked
    item_seq = pad_histories(module.encode_histories(histories), module.max_len)
    scores, indices = run_graph(tmp_path / "encoder.onnx", "onnx", (item_seq,))
    expected = module.recommend(histories, k=5)
    assert [module.vocab.decode(row) for row in indices] == [[e["item_id"] for e in row] for row in expected]
    assert np.allclose(scores, [[e["score"] for e in row] for row in expected], atol=1e-4)


@register_backbone("test_untraceable")
class LengthFixedByTracing(nn.Module):
    """A backbone whose output depends on a Python int read from the data (its longest row), which a tracer freezes
    at the traced example's value."""

    def __init__(self, embedding_dim: int = 16):
        super().__init__()
        self.proj = nn.Linear(embedding_dim, embedding_dim)

    def forward(self, x, mask, batch=None):
        longest = int(mask.sum(1).max())
        return self.proj(x) * (1.0 + longest) * mask[..., None]


def test_a_backbone_that_cannot_export_says_so(dm, tmp_path):
    module = model_for(dm, "test_untraceable", {})
    with pytest.raises(ConfigError, match="cannot be exported to onnx faithfully"):
        export(module, tmp_path, "onnx")


def test_seqrec_export_of_a_zoo_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    cli.main(["export", "zoo=sasrec.ce-beauty", "format=onnx", f"out={tmp_path}", f"hydra.run.dir={tmp_path}"])
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["num_items"] == 12101 and manifest["parity"]["max_abs_score_error"] < 1e-4
    assert (tmp_path / "items.faiss").is_file() and "same top-10: True" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        cli.main(["export", f"out={tmp_path}", f"hydra.run.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "exactly one of ckpt=" in err and err.strip().count("\n") == 0


def test_a_model_that_reads_time_exports_with_time_seq(dm, tmp_path):
    """Both formats carry `time_seq` (the dual_time encoder's running minimum gap as doubling passes, since ONNX has
    no cummin) and score real users' timed histories of several lengths as PyTorch does."""
    encoder = {"input_encoder": "dual_time", "input_encoder_kwargs": {"embedding_dim": 16}}
    module = model_for(dm, "sasrec", {"max_len": 8, "num_blocks": 1}, **encoder)
    users = dm.split.test.history.users[:5]
    histories = [dm.user_history(u)[-length:] for u, length in zip(users, (8, 5, 3, 8, 1), strict=True)]
    times = [dm.user_times(u)[-len(h) :] for u, h in zip(users, histories, strict=True)]
    item_seq = pad_histories(module.encode_histories(histories), 8)
    time_seq = pad_histories([np.asarray(t) for t in times], 8, dtype=np.float64)
    expected = module.score_histories(histories, exclude_seen=False, timestamps=times)
    for fmt in ("onnx", "torchscript"):
        manifest = export(module, tmp_path / fmt, fmt)
        assert "time_seq" in manifest["inputs"] and manifest["parity"]["max_abs_score_error"] < 1e-4
        hidden = torch.from_numpy(run_graph(tmp_path / fmt / GRAPH_FILES[fmt], fmt, (item_seq, time_seq))[0])
        assert (module.score_hidden(hidden)[:, 1:] - expected[:, 1:]).abs().max() < 1e-4, fmt
