"""The IKEA protocol: views predict add-to-cart, a chronological embedding part, and disjoint users."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import chain_interactions_of, require_shared

from lightning_seqrec.data import Interactions, ItemVocab, LabelPredictionDataModule
from lightning_seqrec.data.label_protocol import label_split
from lightning_seqrec.errors import DataError

# (user, item, time, event). Times < 10 belong to the embedding part when embedding_cutoff=10.
EVENTS = [
    ("a", "x", 1, "view"),
    ("a", "y", 2, "view"),
    ("a", "y", 3, "addtocart"),  # early: never a label
    ("a", "p", 11, "view"),
    ("a", "q", 12, "view"),
    ("a", "q", 13, "addtocart"),  # label q from [p, q]
    ("a", "r", 14, "view"),
    ("a", "s", 15, "addtocart"),  # label s from [p, q, r]
    ("b", "z", 5, "view"),
    ("b", "y", 20, "addtocart"),  # no late view before it: not an example
    ("b", "x", 21, "view"),
    ("b", "p", 22, "addtocart"),  # label p from [x]
    ("c", "q", 30, "view"),
    ("c", "q", 31, "transaction"),  # neither input nor label
    ("c", "r", 32, "addtocart"),  # label r from [q]
]


def events_log() -> Interactions:
    frame = pd.DataFrame(EVENTS, columns=["user_id", "item_id", "timestamp", "event"])
    return Interactions(frame.sample(frac=1.0, random_state=0).reset_index(drop=True))  # order must not matter


def decode(vocab: ItemVocab, examples) -> dict:
    """{(user, label): history} of an EvalSet, in raw IDs."""
    rows = examples.history.rows()
    return {
        (u, vocab.decode([t])[0]): vocab.decode(r)
        for u, t, r in zip(examples.history.users, examples.targets, rows, strict=True)
    }


def all_examples(split) -> dict:
    return {**decode(VOCAB, split.train), **decode(VOCAB, split.valid), **decode(VOCAB, split.test)}


VOCAB = ItemVocab.from_ids(pd.DataFrame(EVENTS)[1])


def test_examples_are_late_views_before_each_late_cart():
    split = label_split(events_log(), VOCAB, embedding_cutoff=10, valid_frac=0.3, test_frac=0.3, seed=1)
    assert all_examples(split) == {
        ("a", "q"): ["p", "q"],
        ("a", "s"): ["p", "q", "r"],
        ("b", "p"): ["x"],
        ("c", "r"): ["q"],
    }
    corpus = {
        u: VOCAB.decode(r) for u, r in zip(split.embedding_corpus.users, split.embedding_corpus.rows(), strict=True)
    }
    assert corpus == {"a": ["x", "y"], "b": ["z"]}  # early views only: no cart, nothing after the cut
    assert split.train_stream is None


def test_users_are_disjoint_across_parts_and_last_keeps_the_newest_label():
    for seed in range(5):
        split = label_split(
            events_log(), VOCAB, embedding_cutoff=10, valid_frac=0.3, test_frac=0.3, eval_labels="last", seed=seed
        )
        owners = [set(part.history.users) for part in (split.train, split.valid, split.test)]
        assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
        assert set().union(*owners) == {"a", "b", "c"}
        for part in (split.valid, split.test):
            if "a" in set(part.history.users):
                assert decode(VOCAB, part) == {("a", "s"): ["p", "q", "r"]}
        if "a" in owners[0]:  # training keeps every label of a user
            assert {("a", "q"), ("a", "s")} <= set(decode(VOCAB, split.train))


def test_one_stream_log_trains_on_every_next_item_and_evaluates_the_last():
    data = chain_interactions_of()
    vocab = ItemVocab.from_ids(data.frame["item_id"])
    split = label_split(data, vocab, None, None, embedding_cutoff=0.5, test_frac=0.2, eval_labels="last", seed=0)
    cut = np.quantile(data.frame["timestamp"], 0.5)
    assert sum(map(len, split.embedding_corpus.rows())) == int((data.frame["timestamp"] < cut).sum())
    test_users = set(split.test.history.users)
    assert len(test_users) == len(split.test)  # one label per evaluated user
    assert not test_users & set(split.train_stream.users)
    late = data.frame[data.frame["timestamp"] >= cut].sort_values(["user_id", "timestamp"])
    for user, target, history in zip(
        split.test.history.users, split.test.targets, split.test.history.rows(), strict=True
    ):
        items = vocab.encode_series(late.loc[late["user_id"] == user, "item_id"])
        assert target == items[-1] and np.array_equal(history, items[:-1])


def test_bad_configurations_say_how_to_fix_them():
    untimed = Interactions(pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2]}))
    with pytest.raises(DataError, match="timestamps"):
        label_split(untimed, ItemVocab.from_ids([1, 2]))
    no_events = chain_interactions_of()
    with pytest.raises(DataError, match="input_events=null"):
        label_split(no_events, ItemVocab.from_ids(no_events.frame["item_id"]))
    with pytest.raises(DataError, match="No label events of type"):
        label_split(events_log(), VOCAB, label_events=["purchase"])
    with pytest.raises(DataError, match="lower embedding_cutoff"):
        label_split(events_log(), VOCAB, embedding_cutoff=40)
    with pytest.raises(DataError, match="eval_labels"):
        label_split(events_log(), VOCAB, eval_labels="first")


def test_datamodule_trains_on_the_label_position_only():
    dm = LabelPredictionDataModule(events_log(), embedding_cutoff=10, valid_frac=0.0, test_frac=0.3, max_len=4)
    dm.setup()
    rows = dm.train_tensors
    assert (rows["target_seq"][:, :-1] == 0).all() and (rows["target_seq"][:, -1] > 0).all()
    from_rows = {
        (tuple(dm.vocab.decode(seq[seq > 0].tolist())), dm.vocab.decode([int(target)])[0])
        for seq, target in zip(rows["item_seq"], rows["target_seq"][:, -1], strict=True)
    }
    assert from_rows == {(tuple(h), label) for (_, label), h in decode(dm.vocab, dm.split.train).items()}
    assert dm.user_history("c") == ["q"]  # histories are input events
    counts = dm.item_counts()
    assert counts.sum() == len(dm.split.train) and counts[0] == 0
    assert dm.embedding_corpus() and all(len(r) for r in dm.embedding_corpus())


def test_retailrocket_sample_runs_the_ikea_pipeline_from_the_cli(tmp_path):
    """`seqrec train experiment=ikea_weighted_topk5` on the shared RetailRocket sample: the loader, Word2Vec on
    the first half, the frozen LSTM input layer, and the diversity columns of the paper's table."""
    pytest.importorskip("gensim", reason='gensim is missing: pip install "lightning-seqrec[w2v]"')
    folder = require_shared("retailrocket")
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    args = [
        "train",
        "experiment=ikea_weighted_topk5",
        f"data.path={folder / 'events_sample_1500visitors.csv.gz'}",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"hydra.run.dir={tmp_path}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "lightning_seqrec.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"ndcg", "gini", "coverage"} <= {line.split()[0] for line in result.stdout.splitlines() if line[:2] == "  "}
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    weights = checkpoint["state_dict"]["item_embedding.weight"]
    dm = LabelPredictionDataModule(path=str(folder / "events_sample_1500visitors.csv.gz"), seed=42)
    dm.setup()
    from lightning_seqrec.embeddings import Word2VecEmbeddings

    expected = Word2VecEmbeddings(dim=64, seed=42)(dm)
    torch.testing.assert_close(weights, expected)  # Word2Vec vectors, frozen through training
    assert list(tmp_path.glob("exposure_test_epoch*.png"))
