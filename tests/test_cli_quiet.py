"""The `seqrec` command's output is ours: no third-party tips, status lines or inapplicable warnings (while our own
warnings and real problems still show); every command answers `--help`; a mistake is one line unless `--debug`."""

from __future__ import annotations

import logging
import os
import warnings

import pytest
from lightning.pytorch.utilities import rank_zero_info
from lightning_utilities.core import rank_zero
from test_cli import seqrec

from lightning_seqrec import cli, quiet
from lightning_seqrec.errors import ConfigError

NOISE = (
    "litlogger",  # Lightning's logger connector: a tip to install its cloud logger
    "Tip:",
    "FLOPs",  # Lightning's model summary: a FLOPs column and total that read 0
    "Modules in train mode",
    "LeafSpec",  # torch's deprecation of what Lightning's _pytree.py uses
    "GPU available",
    "TPU available",
    "LOCAL_RANK",
    "Seed set to",
    "Restoring states from the checkpoint",
    "Loaded model weights from the checkpoint",
    "`Trainer.fit` stopped",
    "does not have many workers",
    "exists and is not empty",
    "weights_only` was not set",
    "Loading faiss",
)
"""What the main job printed between its useful lines before `lightning_seqrec.quiet`."""

LIMITS = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2"]


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """`cli.main` in this process sets the debug and quiet variables for the processes it starts; undo them."""
    for name in (*cli.DEBUG_VARIABLES, quiet.ENV):
        monkeypatch.setenv(name, "0")  # records the variable's state before the test, so teardown restores it
        monkeypatch.delenv(name)
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None  # hydra.main run in-process leaves its config set for the tests after


def test_the_main_job_prints_its_progress_metrics_and_recommendations_and_nothing_else(tmp_path):
    """`seqrec train` as the README runs it (embedded ml-latest-small, SASRec + CE, CSV logger, progress bar), cut to
    one short epoch."""
    result = seqrec(
        "train", "trainer.max_epochs=1", "trainer.log_every_n_steps=1", *LIMITS, f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    print(output)  # shown with -s: the whole output of the quiet main job
    assert not [noise for noise in NOISE if noise in output], output
    assert "model SASRec: " in result.stdout and "parameters (all trainable)" in result.stdout  # our summary
    assert "Epoch 0/0" in output and "Testing" in output  # the progress bar
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert {"hr", "ndcg", "mrr", "coverage", "gini"} <= rows and "test metrics (best checkpoint" in result.stdout
    assert "top-10 for user 1:" in result.stdout and result.stdout.count("(item ") == 10
    assert "ml-latest-small: 610 users, 3650 items" in result.stdout  # our own log line, in the short console format


def test_quiet_hides_only_the_named_warnings():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet.quiet()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("The 'train_dataloader' does not have many workers which may be a bottleneck.", stacklevel=1)
        warnings.warn("It is recommended to use `self.log('val/hr@5', ..., sync_dist=True)` ...", stacklevel=1)
        warnings.warn("It is recommended to use `self.log('train/loss', ..., sync_dist=True)` ...", stacklevel=1)
        warnings.warn("objective.rcl.mining=false: only the strong term is used", UserWarning, stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    shown = [str(w.message) for w in seen]
    assert shown == [
        "It is recommended to use `self.log('train/loss', ..., sync_dist=True)` ...",
        "objective.rcl.mining=false: only the strong term is used",
        "something else is deprecated",
    ]


def test_quiet_drops_lightnings_own_info_lines_and_keeps_ours():
    quiet.quiet()
    logger = rank_zero.log  # the logger behind rank_zero_info
    assert logger.getEffectiveLevel() == logging.INFO
    assert logging.getLogger("lightning.pytorch.trainer.connectors").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("lightning.pytorch.callbacks.early_stopping").getEffectiveLevel() == logging.INFO

    def record(path: str, level: int = logging.INFO) -> logging.LogRecord:
        return logging.LogRecord("lightning.pytorch.utilities.rank_zero", level, path, 1, "message", None, None)

    lightning_file = os.path.join(quiet.LIGHTNING_DIR, "pytorch", "trainer", "setup.py")
    assert quiet.from_lightning_machinery(record(lightning_file))  # "GPU available: False, used: False"
    assert not quiet.from_lightning_machinery(record(lightning_file, logging.WARNING))
    assert not quiet.from_lightning_machinery(record(os.path.join(quiet.LIGHTNING_CALLBACKS_DIR, "lr_monitor.py")))
    assert not quiet.from_lightning_machinery(record(cli.__file__))  # our callbacks' rank_zero_info lines

    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger.addHandler(handler)
    try:
        rank_zero_info("WandbTracking: a line of ours through Lightning's helper")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["WandbTracking: a line of ours through Lightning's helper"]


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """`seqrec ARGS` in this process: (exit status, stdout, stderr)."""
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


SPELLED = {task: f"{word} {sub}" for word, subs in cli.SUBCOMMANDS.items() for sub, task in subs.items()}
"""Tasks typed as two words (`seqrec data stats` runs the task data_stats)."""
COMMANDS = sorted(SPELLED.get(task, task) for task in cli.TASKS)


def test_seqrec_help_lists_every_command(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "seqrec COMMAND --help" in out and "--debug" in out
    for command in (*COMMANDS, *cli.PLAIN_COMMANDS):
        assert f"\n  {command} " in out, command


@pytest.mark.parametrize("command", COMMANDS)
def test_each_hydra_command_says_what_it_does_its_keys_examples_and_how_to_see_its_config(capsys, command):
    code, out, err = run_main(capsys, *command.split(), "--help")
    assert code == 0, err
    assert out.startswith(f"seqrec {command}: "), out[:300]
    assert f"usage: seqrec {command}" in out and "main keys:" in out and "examples:" in out
    example = [line.strip() for line in out.split("examples:")[1].splitlines() if line.strip()][0]
    assert example.startswith(f"seqrec {command}")
    assert f"seqrec {command} --cfg job" in out and "--debug" in out
    assert "Powered by Hydra" not in out


def test_train_help_lists_the_config_groups_and_help_works_as_a_command(capsys):
    _, out, _ = run_main(capsys, "train", "--help")
    listing = out.split("config groups (group=option):\n")[1].splitlines()
    groups = dict(line.split(": ", 1) for line in listing if ": " in line)
    assert "gru4rec" in groups["model"] and "ml-latest-small" in groups["data"] and "rcl" in groups["objective"]
    assert run_main(capsys, "help", "train")[1] == out


@pytest.mark.parametrize("command", sorted(cli.PLAIN_COMMANDS))
def test_each_plain_command_answers_help_with_its_usage(capsys, command):
    for flag in cli.HELP_FLAGS:
        code, out, _ = run_main(capsys, command, flag)
        assert code == 0 and f"seqrec {command}" in out and "usage:" in out, out


def test_zoo_help_names_each_sub_command_with_an_example(capsys):
    _, out, _ = run_main(capsys, "zoo", "--help")
    for sub in ("list", "build NAME", "push NAME", "pull NAME"):
        assert f"\n  {sub}" in out, sub
    assert "seqrec zoo build sasrec.ce-beauty" in out


def test_an_override_hydra_cannot_apply_is_one_line(capsys):
    code, _, err = run_main(capsys, "train", "data.max_lenn=5")
    assert code == 2 and err.startswith("seqrec: error: ") and err.strip().count("\n") == 0, err
    assert "data.max_lenn" in err and "+data.max_lenn=5" in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_flag_gives_the_trace_before_or_after_the_command(capsys, where):
    args = ["--debug", "eval"] if where == "before" else ["eval", "--debug"]
    with pytest.raises(ConfigError, match="ckpt is required"):
        cli.main(args)
    assert os.environ["SEQREC_DEBUG"] == "1" and os.environ["HYDRA_FULL_ERROR"] == "1"  # for Hydra's own errors too
    with pytest.raises(ConfigError, match="data.max_lenn"):
        cli.main(["train", "--debug", "data.max_lenn=5"])


def test_hydra_full_error_also_gives_the_trace(capsys, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="ckpt is required"):
        cli.main(["eval"])


def test_an_unexpected_error_is_one_line_that_says_how_to_see_its_trace(capsys, monkeypatch, tmp_path):
    def broken(cfg):
        raise RuntimeError("the accelerator went away")

    monkeypatch.setitem(cli.TASKS, "export", broken)
    args = ["export", "ckpt=model.ckpt", f"out={tmp_path}", f"hydra.run.dir={tmp_path}"]
    code, _, err = run_main(capsys, *args)
    assert code == 2 and err.strip() == (
        "seqrec: error: RuntimeError: the accelerator went away (`seqrec --debug ...` shows where it came from)"
    )
    with pytest.raises(RuntimeError, match="went away"):
        cli.main(["--debug", *args])
