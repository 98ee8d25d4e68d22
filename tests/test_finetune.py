"""Fine-tuning onto a partly different catalog: what transfers, how new items start, the frozen backbone, the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import chain_log, make_chain_datamodule, quiet_trainer, tiny_sasrec
from hydra import compose, initialize_config_module
from hydra.utils import get_object
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf
from test_cli import seqrec
from test_configs import targets

from lightning_seqrec import FreezeBackbone, Interactions, SeqRecDataModule, SeqRecModule, adapt_to_data, hub
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.finetune import MEAN_INIT_NOISE

COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
SHIFT = 10  # the target catalog is items 11..40: 20 shared with the source's 1..30, 10 new
SHARED, NEW = list(range(SHIFT + 1, 31)), list(range(31, 31 + SHIFT))


def shifted_log(shift: int = SHIFT) -> pd.DataFrame:
    """Other users walking the same kind of chain over item IDs moved up by `shift`."""
    return chain_log(seed=1).assign(item=lambda frame: frame["item"] + shift)


def shifted_datamodule(shift: int = SHIFT, max_len: int = 8) -> SeqRecDataModule:
    dm = SeqRecDataModule(Interactions.from_frame(shifted_log(shift), columns=COLUMNS), max_len=max_len, batch_size=16)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> SimpleNamespace:
    """A tiny SASRec that has learned the chain over items 1..30, as a module, a `.ckpt` and a Hub folder."""
    tmp = tmp_path_factory.mktemp("source")
    L.seed_everything(0)
    dm = make_chain_datamodule()
    module = tiny_sasrec(dm)
    trainer = quiet_trainer(max_epochs=6, limit_val_batches=0)
    trainer.fit(module, dm)
    trainer.save_checkpoint(tmp / "source.ckpt")
    hub.save_pretrained(module, tmp / "hub")
    return SimpleNamespace(module=module.eval(), ckpt=tmp / "source.ckpt", hub=tmp / "hub", dir=tmp)


@pytest.fixture(scope="module")
def target() -> SeqRecDataModule:
    return shifted_datamodule()


def rows(module: SeqRecModule, raw_ids: list) -> torch.Tensor:
    return module.item_embedding.weight.detach()[module.vocab.encode(raw_ids)]


def test_shared_items_and_the_backbone_transfer_exactly(source, target):
    tuned = adapt_to_data(source.module, target)
    assert type(tuned) is SeqRecModule and tuned.vocab == target.vocab and tuned.num_items == target.num_items
    assert tuned.architecture == {**source.module.architecture, "num_items": target.num_items}
    assert tuned.lr == 3e-4 and tuned.hparams["finetune"] == {
        "source_items": 30,
        "transferred_items": len(SHARED),
        "new_items": len(NEW),
        "new_item_init": "mean",
    }
    assert not np.array_equal(source.module.vocab.encode(SHARED), target.vocab.encode(SHARED))  # rows really move
    assert torch.equal(rows(tuned, SHARED), rows(source.module, SHARED))
    backbone = source.module.backbone.state_dict()
    assert all(torch.equal(value, backbone[key]) for key, value in tuned.backbone.state_dict().items())


def test_new_items_start_at_the_mean_with_small_noise_or_from_the_default_normal(source, target):
    known = source.module.item_embedding.weight.detach()[1:]
    tuned = adapt_to_data(source.module, target)
    z = (rows(tuned, NEW) - known.mean(0)) / (MEAN_INIT_NOISE * known.std(0, correction=0))
    assert z.abs().max() < 5 and 0.7 < z.std() < 1.3  # 160 draws of N(0, 1)
    assert torch.equal(rows(adapt_to_data(source.module, target), NEW), rows(tuned, NEW))  # seeded
    normal = adapt_to_data(source.module, target, new_item_init="normal")
    assert 0.014 < rows(normal, NEW).std() < 0.026 and rows(normal, NEW).mean().abs() < 0.01
    for module in (tuned, normal):
        assert not module.item_embedding.weight[0].any()  # padding stays zero


def test_catalogs_that_cannot_transfer_are_clear_errors(source, target):
    with pytest.raises(ConfigError, match="share no raw ID .* train from scratch"):
        adapt_to_data(source.module, shifted_datamodule(shift=1000))
    with pytest.raises(ConfigError, match="set the data's max_len to 8 or less"):
        adapt_to_data(source.module, shifted_datamodule(max_len=20))
    with pytest.raises(ConfigError, match="embedding_dim are fixed"):
        adapt_to_data(source.module, target, embedding_dim=32)
    with pytest.raises(ConfigError, match="use one of mean, normal"):
        adapt_to_data(source.module, target, new_item_init="zeros")


class Snapshots(Callback):
    """Backbone and item-embedding weights at the end of every training epoch."""

    def __init__(self):
        self.backbone, self.embedding = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.backbone.append(torch.cat([p.detach().flatten() for p in pl_module.backbone.parameters()]).clone())
        self.embedding.append(pl_module.item_embedding.weight.detach().clone())


def test_freeze_backbone_holds_it_for_the_first_epochs_then_trains_it(source, target):
    tuned = adapt_to_data(source.module, target, weight_decay=0.1)  # decay must not move the frozen backbone
    start = torch.cat([p.detach().flatten() for p in tuned.backbone.parameters()]).clone()
    embedding = tuned.item_embedding.weight.detach().clone()
    snapshots = Snapshots()
    quiet_trainer(max_epochs=2, limit_val_batches=0, callbacks=[FreezeBackbone(1), snapshots]).fit(tuned, target)
    assert torch.equal(snapshots.backbone[0], start)
    assert not torch.equal(snapshots.embedding[0], embedding)  # embeddings train meanwhile
    assert not torch.equal(snapshots.backbone[1], start)
    assert all(p.requires_grad for p in tuned.parameters())


def test_finetuning_beats_training_from_scratch_on_the_same_budget(source, target):
    """Each with its defaults (fine-tuning: lr 3e-4, backbone frozen for one epoch; scratch: lr 1e-3), 2 epochs."""

    def ndcg(module: SeqRecModule, callbacks: list) -> float:
        quiet_trainer(max_epochs=2, limit_val_batches=0, callbacks=callbacks).fit(module, target)
        return quiet_trainer().test(module, target, verbose=False)[0]["test/ndcg@10"]

    L.seed_everything(0)
    tuned = ndcg(adapt_to_data(source.module, target), [FreezeBackbone()])
    L.seed_everything(0)
    scratch = ndcg(tiny_sasrec(target, lr=1e-3), [])
    assert tuned > scratch + 0.05, (tuned, scratch)


def test_finetune_config_composes_with_fine_tuning_defaults():
    with initialize_config_module("lightning_seqrec.configs", version_base="1.3"):
        cfg = compose("finetune", overrides=["zoo=sasrec.ce-beauty"])
    assert (cfg.lr, cfg.trainer.max_epochs, cfg.freeze_backbone_epochs, cfg.new_item_init) == (3e-4, 10, 1, "mean")
    for name in targets(OmegaConf.to_container(cfg, resolve=False)):
        get_object(name)


@pytest.fixture(scope="module")
def target_csv(source):
    path = source.dir / "shifted.csv"
    shifted_log().to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["ckpt", "hub"])
def test_cli_finetunes_a_checkpoint_or_hub_folder_onto_new_data(source, target_csv, kind):
    name = str(source.ckpt) if kind == "ckpt" else f"local-dir:{source.hub}"
    run = source.dir / f"run-{kind}"
    result = seqrec(
        "finetune",
        f"zoo={name}",
        "data=table",
        f"data.path={target_csv}",
        *(f"data.columns.{key}={value}" for key, value in COLUMNS.items()),
        "data.int_ids=[item_id]",  # the source model's item IDs are integers; a CSV's IDs are read as strings
        "data.max_len=8",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"hydra.run.dir={run}",
        cwd=source.dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 of the data's 30 items keep their embeddings" in result.stdout
    printed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert {"hr", "ndcg", "mrr"} <= printed
    assert (run / "test_metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()


def test_cli_unknown_zoo_name_is_one_clear_line(tmp_path, monkeypatch):
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "index.yaml").write_text("sasrec.ce-beauty:\n  hub: org/sasrec-ce-beauty\n")
    monkeypatch.setenv("SEQREC_ZOO_INDEX", str(tmp_path / "zoo" / "index.yaml"))
    result = seqrec("finetune", "zoo=sasrec.nope", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("seqrec: error:")]
    assert len(errors) == 1 and "'sasrec.nope' is not in the zoo index" in errors[0]
    assert "known names: sasrec.ce-beauty" in errors[0]
