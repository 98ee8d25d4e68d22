"""External evaluation: top-k files from any library scored by our metrics against our split (`seqrec eval
predictions=`), equal to our own evaluation for our own model's lists, with every mismatch counted."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import chain_log, make_chain_datamodule, quiet_trainer, tiny_sasrec

from lightning_seqrec import cli
from lightning_seqrec.external_eval import evaluate_predictions, read_predictions, write_predictions


@pytest.fixture(scope="module")
def trained():
    dm = make_chain_datamodule()
    module = tiny_sasrec(dm)
    trainer = quiet_trainer(max_epochs=3)
    trainer.fit(module, dm)
    metrics = trainer.test(module, dm, verbose=False)[0]
    return dm, module, metrics


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_our_models_lists_score_exactly_as_our_evaluation(trained, tmp_path, suffix):
    dm, module, expected = trained
    path = write_predictions(module, dm, tmp_path / f"top{suffix}", k=max(module.eval_ks))
    result = evaluate_predictions(read_predictions(path), dm, ks=module.eval_ks, mask_seen=module.mask_seen)
    assert set(result.metrics) == set(expected)
    assert expected["test/hr@10"] > 0  # a model that learnt something, so the comparison is not all zeros
    for name, value in expected.items():  # Lightning logs float32; ours are float64 from the same ranks
        assert np.float32(result.metrics[name]) == np.float32(value), name
    assert result.counts["users_without_predictions"] == 0 and result.counts["unknown_item_rows"] == 0


def lists(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def test_ties_seen_items_and_mismatches_are_counted_never_dropped(trained):
    dm, _, _ = trained
    test = dm.split.test
    user, target = test.history.users[0], dm.vocab.decode([test.targets[0]])[0]
    history = dm.vocab.decode(test.history.items[test.history.indptr[0] : test.history.indptr[1]])
    seen = history[0]
    other = next(raw for raw in dm.vocab.raw_ids if raw != target and raw not in history)
    frame = lists(
        [
            (user, other, 1),  # tied with the target at rank 1: counts above it (MRR 1/2)
            (user, target, 1),
            (user, other, 3),  # a duplicate of a listed item: the best rank is kept
            ("ghost", target, 1),  # a user the split does not have
            (test.history.users[1], "not-an-item", 1),  # an unknown item keeps its slot
        ]
    )
    result = evaluate_predictions(frame, dm, ks=(1, 5))
    n = len(test)
    assert result.metrics["test/mrr@5"] == pytest.approx(0.5 / n)
    assert result.metrics["test/hr@1"] == 0.0
    assert result.counts == {
        "split_users": n,
        "users_without_predictions": n - 2,
        "file_users_not_in_split": 1,
        "unknown_item_rows": 1,
        "duplicate_rows": 1,
        "seen_items_removed": 0,
        "longest_list": 2,
    }
    masked = evaluate_predictions(lists([(user, seen, 1), (user, target, 2)]), dm, ks=(1,))
    assert masked.metrics["test/hr@1"] == pytest.approx(1 / n) and masked.counts["seen_items_removed"] == 1
    unmasked = evaluate_predictions(lists([(user, seen, 1), (user, target, 2)]), dm, ks=(1,), mask_seen=False)
    assert unmasked.metrics["test/hr@1"] == 0.0


def test_seqrec_eval_predictions_on_a_users_data(trained, tmp_path, capsys, monkeypatch):
    dm, module, expected = trained
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    chain_log().to_csv(tmp_path / "events.csv", index=False)
    path = write_predictions(module, dm, tmp_path / "top.csv", k=20)
    data = ["data=table", f"data.path={tmp_path / 'events.csv'}", "data.columns.user_id=user"]
    data += ["data.columns.item_id=item", "data.columns.timestamp=ts", "data.max_len=8"]
    cli.main(["eval", f"predictions={path}", *data, f"hydra.run.dir={tmp_path / 'run'}"])
    out = capsys.readouterr().out
    assert "users_without_predictions: 0" in out
    ndcg = next(line for line in out.splitlines() if line.startswith("  ndcg "))
    assert f"{expected['test/ndcg@10']:>9.4f}" in ndcg

    pd.DataFrame({"user": [1], "item": [2]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SystemExit) as stop:
        cli.main(["eval", f"predictions={tmp_path / 'bad.csv'}", *data, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("seqrec: error: ") and err.strip().count("\n") == 0
    assert "user_id" in err
