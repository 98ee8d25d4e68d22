"""Evaluation under DDP (2 CPU processes, gloo) gives exactly the single-process metrics."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import make_chain_datamodule, quiet_trainer, tiny_sasrec


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_process_evaluation_matches_single_process(tmp_path):
    # 61 test users and a batch of 7: shards of 31 and 30 users; a padding sampler would repeat one user
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = tiny_sasrec(dm)
    quiet_trainer(max_epochs=2).fit(module, dm)
    single = quiet_trainer().test(module, dm, verbose=False)[0]
    ddp = quiet_trainer(accelerator="cpu", devices=2, strategy="ddp_spawn").test(module, dm, verbose=False)[0]
    assert single.keys() == ddp.keys()
    assert 0 < single["test/mrr@20"] < 1  # not a trivial value, so a double-counted user would show
    for name, value in single.items():
        assert ddp[name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
