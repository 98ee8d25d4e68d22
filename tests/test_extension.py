"""Extending the library without editing it: an objective and a callback defined only in this file run from Hydra
overrides, in this process (`run.run_task`) and through the `seqrec` command; and RCL brings its own miner, so
`objective=rcl` alone trains exactly as `objective=rcl callbacks=rcl_mining`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import chain_log
from lightning_seqrec.callbacks import WeakPositiveMiner

from lightning_seqrec import run
from lightning_seqrec.objectives import Objective
from lightning_seqrec.objectives.base import next_item_positions

HERE = Path(__file__).resolve().parent
MODULE = Path(__file__).stem  # targets below are `test_extension.<name>`: pytest puts tests/ on the path


class MarginRanking(Objective):
    """A user's own loss: hinge on the score margin between the target and the hardest item the model ranks above it,
    scored through the view (`model.score_all`), so it follows the module's dot / cosine rule."""

    def __init__(self, weight: float = 1.0, margin: float = 0.5):
        super().__init__(weight)
        self.margin = margin

    def forward(self, outputs: dict, batch: dict, model) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        scores = model.score_all(hidden)  # column c = item c + 1
        positive = scores.gather(1, (target - 1)[:, None])
        hardest = scores.scatter(1, (target - 1)[:, None], float("-inf")).max(dim=1, keepdim=True).values
        return F.relu(self.margin - positive + hardest).mean()


class MostRecommended(L.Callback):
    """A user's own callback: after each validation, the `k` items most often in the top-10 of the validation users,
    written to `file` one epoch per line (and kept in `epochs`)."""

    runs: list[MostRecommended] = []  # instances made by Hydra, for the test to read back

    def __init__(self, file: str, k: int = 3):
        self.file, self.k, self.epochs = Path(file), k, []
        MostRecommended.runs.append(self)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        dm = trainer.datamodule
        histories = [dm.user_history(user) for user in dm.sequences.users[:20]]
        counts: dict = {}
        for ranked in pl_module.recommend(histories, k=10):
            for entry in ranked:
                counts[entry["item_id"]] = counts.get(entry["item_id"], 0) + 1
        top = sorted(counts, key=lambda item: (-counts[item], str(item)))[: self.k]
        self.epochs.append(top)
        with self.file.open("a") as out:
            out.write(" ".join(map(str, top)) + "\n")


class LossRecorder(L.Callback):
    """Every training step's logged losses, by name, for comparing two runs."""

    runs: list[LossRecorder] = []

    def __init__(self):
        self.steps: list[dict[str, float]] = []
        self.miners: list[dict] = []
        LossRecorder.runs.append(self)

    def on_train_start(self, trainer, pl_module) -> None:
        self.miners = [c.settings() for c in trainer.callbacks if isinstance(c, WeakPositiveMiner)]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        logged = trainer.callback_metrics
        self.steps.append({k: float(v) for k, v in logged.items() if k.startswith("train/loss")})


def chain_data(folder: Path) -> list[str]:
    chain_log().to_csv(folder / "events.csv", index=False)
    return [
        "data=table",
        f"data.path={folder / 'events.csv'}",
        "data.columns={user_id: user, item_id: item, timestamp: ts}",
        "data.max_len=8",
        "model.embedding_dim=16",
        "model.num_blocks=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ]


def test_own_objective_and_callback_run_from_overrides(tmp_path):
    MostRecommended.runs.clear()
    result = run.run_task(
        "train",
        [
            *chain_data(tmp_path),
            "trainer.max_epochs=2",
            f"+objective.margin._target_={MODULE}.MarginRanking",
            "+objective.margin.weight=0.5",
            "+objective.margin.margin=0.2",
            f"+callbacks.most_recommended._target_={MODULE}.MostRecommended",
            f"+callbacks.most_recommended.file={tmp_path / 'top.txt'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
    )
    objective = result.module.objectives["margin"]
    assert isinstance(objective, MarginRanking) and (objective.weight, objective.margin) == (0.5, 0.2)
    assert set(result.module.objectives) == {"ce", "margin"}
    (callback,) = MostRecommended.runs
    assert len(callback.epochs) == 2 and all(len(top) == 3 for top in callback.epochs)
    assert (tmp_path / "top.txt").read_text().count("\n") == 2
    assert 0 <= result.metrics["test/ndcg@10"] <= 1 and (tmp_path / "run" / run.METRICS_FILE).is_file()


def test_own_objective_and_callback_through_the_command(tmp_path):
    """The same components found by `seqrec train` in another process, from a folder on PYTHONPATH."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    args = [
        *chain_data(tmp_path),
        "trainer.max_epochs=1",
        "objective=rcl",  # the user's loss beside a packaged objective group with its own callback
        f"+objective.margin._target_={MODULE}.MarginRanking",
        f"+callbacks.most_recommended._target_={MODULE}.MostRecommended",
        f"+callbacks.most_recommended.file={tmp_path / 'top.txt'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    command = [sys.executable, "-m", "lightning_seqrec.cli", "train", *args]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WeakPositiveMiner: ngram weak positives" in done.stdout + done.stderr
    assert len((tmp_path / "top.txt").read_text().split()) == 3
    bad = subprocess.run(
        [*command, "+objective.margin.margin=wide"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert bad.returncode == 2 and "objective.margin.margin='wide' is not float" in bad.stderr, bad.stderr[-2000:]


def rcl_run(tmp_path: Path, alias: bool) -> LossRecorder:
    LossRecorder.runs.clear()
    run.run_task(
        "train",
        [
            *chain_data(tmp_path),
            "seed=3",
            "data.batch_size=16",  # several steps per epoch
            "trainer.max_epochs=2",
            "test=false",
            "objective=rcl",
            "objective.rcl.alpha=0.2",
            *(["callbacks=rcl_mining"] if alias else []),
            f"+callbacks.losses._target_={MODULE}.LossRecorder",
            f"hydra.run.dir={tmp_path / ('alias' if alias else 'alone')}",
        ],
    )
    (recorder,) = LossRecorder.runs
    return recorder


def test_objective_rcl_alone_trains_as_with_the_mining_alias(tmp_path):
    alone, alias = rcl_run(tmp_path, alias=False), rcl_run(tmp_path, alias=True)
    assert alone.miners == alias.miners and len(alone.miners) == 1  # exactly one miner, with the same settings
    assert alone.miners[0]["method"] == "ngram"
    assert len(alone.steps) == len(alias.steps) >= 4
    assert {"train/loss", "train/loss/ce", "train/loss/rcl"} <= set(alone.steps[0])
    assert alone.steps == alias.steps  # the same losses, step for step, across both epochs


def test_rcl_without_mining_is_a_choice_not_a_silent_half(tmp_path):
    """`objective.rcl.mining=false` brings no miner: the run says it uses only the strong term."""
    LossRecorder.runs.clear()
    with pytest.warns(UserWarning, match="only its strong term"):
        run.run_task(
            "train",
            [
                *chain_data(tmp_path),
                "trainer.max_epochs=1",
                "test=false",
                "objective=rcl",
                "objective.rcl.mining=false",
                f"+callbacks.losses._target_={MODULE}.LossRecorder",
                f"hydra.run.dir={tmp_path / 'run'}",
            ],
        )
    assert LossRecorder.runs[0].miners == []
