"""Evaluation under DDP (2 CPU processes, gloo) gives exactly the single-process metrics."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import chain_log, tiny_sasrec

from lightning_seqrec import Interactions, SeqRecDataModule


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_process_evaluation_matches_single_process(tmp_path):
    data = Interactions.from_frame(chain_log(), columns={"user_id": "user", "item_id": "item", "timestamp": "ts"})
    # 61 test users and a batch of 7: shards of 31 and 30 users; a padding sampler would repeat one user
    dm = SeqRecDataModule(data, max_len=8, batch_size=16, eval_batch_size=7)
    dm.setup()
    L.seed_everything(0)
    module = tiny_sasrec(dm)
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    L.Trainer(max_epochs=2, **quiet).fit(module, dm)
    single = L.Trainer(**quiet).test(module, dm, verbose=False)[0]
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", **quiet).test(module, dm, verbose=False)[0]
    assert single.keys() == ddp.keys()
    assert 0 < single["test/mrr@20"] < 1  # not a trivial value, so a double-counted user would show
    for name, value in single.items():
        assert ddp[name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
