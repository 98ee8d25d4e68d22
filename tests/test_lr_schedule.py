"""The learning-rate schedule: warm-up then cosine / linear decay, applied before every optimiser step, and the same
rates after a resume as in an uninterrupted run."""

from __future__ import annotations

import math

import lightning as L
import pytest
from conftest import quiet_trainer, tiny_sasrec
from lightning_seqrec.callbacks.lr_schedule import LearningRateSchedule, schedule_factor

from lightning_seqrec.errors import ConfigError


def test_factor_warms_up_linearly_then_decays_to_the_floor():
    assert [schedule_factor(s, 10, 4, "cosine", 0.0) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule_factor(4, 10, 4, "cosine", 0.0) == 1.0 and schedule_factor(9, 10, 4, "cosine", 0.1) == 0.1
    assert math.isclose(schedule_factor(6, 10, 4, "cosine", 0.0), 0.5 * (1 + math.cos(math.pi * 2 / 5)))
    assert math.isclose(schedule_factor(6, 10, 4, "linear", 0.2), 0.2 + 0.8 * (1 - 2 / 5))
    assert schedule_factor(9, 10, 0, "constant", 0.0) == 1.0
    for bad in ({"decay": "step"}, {"warmup": 1.5}, {"min_ratio": 2.0}):
        with pytest.raises(ConfigError):
            LearningRateSchedule(**bad)


class Rates(L.Callback):
    """The learning rate the optimiser steps with, per global step."""

    def __init__(self):
        self.rates = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.rates[trainer.global_step] = optimizer.param_groups[0]["lr"]


def fit(dm, tmp_path, max_epochs, ckpt_path=None):
    L.seed_everything(0)
    module, rates = tiny_sasrec(dm, lr=0.01), Rates()
    schedule = LearningRateSchedule(warmup=0.25, decay="cosine", min_ratio=0.1)
    trainer = quiet_trainer(max_epochs=max_epochs, callbacks=[schedule, rates], default_root_dir=tmp_path)
    trainer.fit(module, dm, ckpt_path=ckpt_path)
    return trainer, rates.rates


def test_each_step_uses_the_scheduled_rate_and_a_resume_goes_on_from_it(chain_datamodule, tmp_path):
    trainer, rates = fit(chain_datamodule, tmp_path / "whole", max_epochs=3)
    total, warmup = trainer.global_step, int(0.25 * trainer.global_step)
    expected = {s: 0.01 * schedule_factor(s, total, warmup, "cosine", 0.1) for s in range(total)}
    assert rates == pytest.approx(expected) and rates[total - 1] == pytest.approx(0.001)
    half = tmp_path / "half.ckpt"  # the same run stopped after its first epoch
    trainer = quiet_trainer(max_epochs=1, default_root_dir=tmp_path / "part")
    L.seed_everything(0)
    part = tiny_sasrec(chain_datamodule, lr=0.01)
    trainer.fit(part, chain_datamodule)
    trainer.save_checkpoint(half)
    _, resumed = fit(chain_datamodule, tmp_path / "resumed", max_epochs=3, ckpt_path=half)
    assert resumed == pytest.approx({s: expected[s] for s in resumed}) and min(resumed) == trainer.global_step
