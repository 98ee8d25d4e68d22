"""The `seqrec` command's error paths: a user's mistake ends in one `seqrec: error:` line that names the problem and
the fix, with exit status 2 (a trace only with SEQREC_DEBUG=1); and the fixes those lines suggest exist."""

from __future__ import annotations

import sys

import pytest
from conftest import chain_log
from omegaconf import OmegaConf
from test_cli import seqrec

from lightning_seqrec import cli
from lightning_seqrec.checkpoint import load_checkpoint
from lightning_seqrec.errors import SeqRecError
from lightning_seqrec.retrieval import Recommender

TINY = ["data.max_len=8", "model.embedding_dim=16", "trainer.max_epochs=1", "logger=none"]
TINY += ["trainer.enable_progress_bar=false"]


def table_args(path: str) -> list[str]:
    """`data=table` overrides for the chain log written at `path` (user / item / ts columns)."""
    columns = ["data.columns.user_id=user", "data.columns.item_id=item", "data.columns.timestamp=ts"]
    return ["data=table", f"data.path={path}", *columns]


@pytest.fixture
def run_here(capsys, monkeypatch, tmp_path):
    """`seqrec ARGS` in this process (no interpreter start per case): (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            cli.main([*args, f"hydra.run.dir={tmp_path / 'run'}"])
            code = 0
        except SystemExit as stop:
            code = stop.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err[-3000:]
    assert err.startswith("seqrec: error: ") and err.strip().count("\n") == 0, err[-3000:]
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture(scope="module")
def string_model(tmp_path_factory):
    """A one-epoch model on the chain log with string item IDs (`i1`..`i30`), trained on the relative
    `data.path=events.csv` from its folder: (folder, last checkpoint)."""
    tmp = tmp_path_factory.mktemp("strings")
    log = chain_log()
    log.assign(item="i" + log["item"].astype(str)).to_csv(tmp / "events.csv", index=False)
    result = seqrec("train", *table_args("events.csv"), *TINY, f"hydra.run.dir={tmp / 'run'}", cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, tmp / "run" / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("trainer.max_epochs=abc", ["trainer.max_epochs='abc'", "trainer.max_epochs=<int>"]),
        ("model.lr=abc", ["model.lr='abc'", "model.lr=<float>"]),
        ("model.dropout=abc", ["model.dropout='abc'", "model.dropout=<float>"]),  # a backbone's own argument
        ("data.batch_size=0", ["batch_size", "data.batch_size="]),
        ("model.max_len=0", ["max_len", "model.max_len="]),
    ],
)
def test_bad_config_values_are_one_line_errors(run_here, tmp_path, override, needles):
    chain_log().to_csv(tmp_path / "events.csv", index=False)
    code, _, err = run_here("train", *table_args(str(tmp_path / "events.csv")), *TINY, override)
    assert_one_line_error(code, err, *needles)


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (["train", "data=table"], "data.path=<"),
        (["recommend", "user=u3"], "ckpt=<"),
        (["eval"], "ckpt=<"),
        (["finetune"], "zoo=<"),
    ],
)
def test_a_required_value_left_out_says_how_to_pass_it(run_here, args, fix):
    code, _, err = run_here(*args)
    assert_one_line_error(code, err, fix.split("=")[0], fix)


def test_the_trace_comes_on_request(run_here, monkeypatch):
    monkeypatch.setenv("SEQREC_DEBUG", "1")
    code, _, err = run_here("eval")
    assert code != 0 and "Traceback" in err and "ckpt" in err
    assert "SEQREC_DEBUG=1" in cli.USAGE


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["history=[i1,i2]", "k=0"], ["k=0", "k=<"]),
        (["history=[i1,i2]", "k=abc"], ["k='abc'", "k=<"]),
        (["history=[i1,i2]", "k=2.5"], ["k=2.5", "k=<"]),
        (["history=[]"], ["empty", "history=[<"]),
        ([], ["user=<", "history=[<"]),
        (["history=[i1]", "unknown=skip"], ["unknown='skip'", "unknown=drop"]),
    ],
)
def test_recommend_arguments_are_checked(run_here, string_model, args, needles):
    code, out, err = run_here("recommend", f"ckpt={string_model[1]}", *args)
    assert_one_line_error(code, err, *needles)
    assert "top-" not in out  # nothing is printed before the arguments are known to be good


@pytest.mark.parametrize("history", ["history=i4", "history=[i4]"])
def test_a_one_item_history_of_string_ids(run_here, string_model, history):
    _, ckpt = string_model
    code, out, err = run_here("recommend", f"ckpt={ckpt}", history, "k=3")
    assert code == 0, err[-3000:]
    assert "recent history: i4\n" in out and out.count("(item i") == 3


def test_unknown_drop_skips_unknown_ids_and_says_which(run_here, string_model):
    _, ckpt = string_model
    code, _, err = run_here("recommend", f"ckpt={ckpt}", "history=[i4,nope]")
    assert_one_line_error(code, err, "'nope'", "unknown='drop'")
    code, out, err = run_here("recommend", f"ckpt={ckpt}", "history=[i4,nope]", "unknown='drop'", "k=3")
    assert code == 0, err[-3000:]
    assert out.count("(item i") == 3 and "dropped" in out + err and "'nope'" in out + err
    code, _, err = run_here("recommend", f"ckpt={ckpt}", "history=[nope]", "unknown=drop")
    assert_one_line_error(code, err, "'nope'", "no item")


def test_recommend_in_python_checks_its_arguments_and_drops_on_request(string_model, caplog):
    module = load_checkpoint(string_model[1])
    for recommend in (module.recommend, Recommender(module).recommend):
        for bad in ({"k": 0}, {"k": "3"}, {"k": True}, {"unknown": "skip"}):
            with pytest.raises(SeqRecError, match="k=|unknown="):
                recommend([["i1"]], **bad)
        with pytest.raises(SeqRecError, match="no histories"):
            recommend([])
        with pytest.raises(SeqRecError, match=r"\[\['i1', 'i2'\]\]"):
            recommend(["i1", "i2"])  # one flat history: its strings would be read as histories
        with pytest.raises(SeqRecError, match="unknown='drop'"):
            recommend([["i1", "nope"]])
        caplog.clear()
        dropped = recommend([["i1", "nope"], ["i2"]], k=4, unknown="drop")
        assert [len(r) for r in dropped] == [4, 4]
        assert [r["item_id"] for r in dropped[0]] == [r["item_id"] for r in recommend([["i1"]], k=4)[0]]
        assert "'nope'" in caplog.text and "history 0" in caplog.text
        with pytest.raises(SeqRecError, match="history 1 has no item"):
            recommend([["i1"], ["nope"]], unknown="drop")


def test_a_log_without_times_trains_with_timestamp_null(tmp_path):
    chain_log().drop(columns="ts").to_csv(tmp_path / "events.csv", index=False)
    args = [*table_args(str(tmp_path / "events.csv")), *TINY]
    missing = seqrec("train", *args, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert missing.returncode == 2 and "data.columns.timestamp=null" in missing.stderr, missing.stderr[-3000:]
    nulled = seqrec("train", *args, "data.columns.timestamp=null", f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path)
    assert nulled.returncode == 0 and "top-10 for user" in nulled.stdout, nulled.stderr[-3000:]


def test_a_relative_data_path_from_the_checkpoint_says_where_it_came_from(string_model, tmp_path):
    """Trained on `data.path=events.csv` in its folder, the checkpoint's data is not found from another folder:
    the error says the path came from the checkpoint and how to point elsewhere, and that override works."""
    folder, ckpt = string_model
    elsewhere = seqrec("recommend", f"ckpt={ckpt}", "user=u3", f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert elsewhere.returncode == 2 and elsewhere.stderr.count("\n") == 1, elsewhere.stderr[-3000:]
    assert "data.path=events.csv" in elsewhere.stderr and f"recorded in checkpoint {ckpt}" in elsewhere.stderr
    assert "+data.path=<" in elsewhere.stderr
    pointed = seqrec(
        "recommend", f"ckpt={ckpt}", "user=u3", f"+data.path={folder / 'events.csv'}",
        f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path,
    )  # fmt: skip
    assert pointed.returncode == 0 and pointed.stdout.count("(item i") == 10, pointed.stderr[-3000:]


def test_ctrl_c_outside_training_is_one_line_and_status_130(capsys):
    """Ctrl-C while data is prepared (or anywhere outside `trainer.fit`, which reports its own stop) is no trace."""

    def preparing_data(cfg):
        raise KeyboardInterrupt

    with pytest.raises((SystemExit, KeyboardInterrupt)) as stop:  # KeyboardInterrupt itself would end pytest
        cli._reporting(preparing_data)(OmegaConf.create({}))
    assert stop.type is SystemExit and stop.value.code == 130
    assert capsys.readouterr().err == "seqrec: interrupted (Ctrl-C).\n"
