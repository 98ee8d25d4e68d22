"""Checkpoints: round trip, exact resume, and refusal of corrupt or untrusted files."""

from __future__ import annotations

import pickle

import lightning as L
import pytest
import torch
from conftest import make_chain_datamodule, quiet_trainer, tiny_sasrec
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_seqrec import load_checkpoint
from lightning_seqrec.errors import CheckpointError, ConfigError


def fit(dm, tmp_path, max_epochs, ckpt_path=None, module=None):
    L.seed_everything(0)
    module = module or tiny_sasrec(dm)
    checkpoints = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    trainer = quiet_trainer(max_epochs=max_epochs, enable_checkpointing=True, callbacks=[checkpoints])
    trainer.fit(module, dm, ckpt_path=ckpt_path)
    return module, trainer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    dm = make_chain_datamodule()
    tmp = tmp_path_factory.mktemp("ckpt")
    module, _ = fit(dm, tmp, max_epochs=2)
    return module, dm, tmp / "last.ckpt"


def test_round_trip_gives_identical_scores_and_vocabulary(checkpoint):
    module, dm, path = checkpoint
    loaded = load_checkpoint(path)
    assert loaded.vocab == dm.vocab
    histories = [dm.user_history(u)[:-1] for u in dm.split.test.history.users[:5]]
    module.eval()
    assert torch.equal(loaded.score_histories(histories), module.score_histories(histories))


def test_resume_continues_to_the_same_result(checkpoint, tmp_path):
    _, dm, _ = checkpoint
    straight, _ = fit(dm, tmp_path / "straight", max_epochs=4)
    fit(dm, tmp_path / "first", max_epochs=2)
    resumed, trainer = fit(dm, tmp_path / "second", max_epochs=4, ckpt_path=tmp_path / "first" / "last.ckpt")
    assert trainer.current_epoch == 4
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_missing_truncated_and_foreign_files_are_refused(checkpoint, tmp_path):
    _, _, path = checkpoint
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a lightning-seqrec checkpoint"):
        load_checkpoint(foreign)


class Payload:
    """Unpickling this would write a file: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_untrusted_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "seqrec": {}, "x": Payload(marker)}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="weights_only=True refuses arbitrary pickle"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_unknown_architecture_and_mismatched_weights(checkpoint, tmp_path):
    _, _, path = checkpoint
    ckpt = torch.load(path, weights_only=True)
    ckpt["seqrec"]["architecture"]["backbone"] = "mamba9000"
    bad_arch = tmp_path / "arch.ckpt"
    torch.save(ckpt, bad_arch)
    with pytest.raises(ConfigError, match="Unknown backbone 'mamba9000'"):
        load_checkpoint(bad_arch)
    ckpt = torch.load(path, weights_only=True)
    ckpt["seqrec"]["architecture"]["num_items"] += 3  # vocabulary/weights disagree
    mismatch = tmp_path / "mismatch.ckpt"
    torch.save(ckpt, mismatch)
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(mismatch)
