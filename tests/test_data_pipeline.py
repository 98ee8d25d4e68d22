"""Vocabulary, filters, sequences, splits, windows and the DataModule on hand-checkable data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lightning_seqrec.data import (
    Interactions,
    ItemVocab,
    SeqRecDataModule,
    drop_duplicates,
    k_core,
    leave_one_out,
    pad_histories,
    temporal,
    user_holdout,
)
from lightning_seqrec.data.datasets import EvalDataset, UnpaddedDistributedSampler, train_windows
from lightning_seqrec.data.sequences import Sequences, gather_left_padded
from lightning_seqrec.errors import DataError, UnknownItemError


def make(rows, time=True) -> Interactions:
    cols = ["user_id", "item_id", "timestamp"] if time else ["user_id", "item_id"]
    return Interactions(pd.DataFrame(rows, columns=cols))


def test_vocab_roundtrip_padding_and_unknown_ids():
    vocab = ItemVocab.from_ids([30, 10, 30, 20])
    assert vocab.raw_ids == [30, 10, 20] and vocab.size == 4
    assert vocab.encode([10, "20", 30]).tolist() == [2, 3, 1]  # "20" typed on a command line still resolves
    assert vocab.decode([1, 2, 3]) == [30, 10, 20]
    with pytest.raises(UnknownItemError, match="not in this model's vocabulary: 99.*unknown='drop'"):
        vocab.encode([10, 99])
    assert vocab.encode([10, 99], unknown="drop").tolist() == [2]
    with pytest.raises(UnknownItemError, match="padding"):
        vocab.decode([0])
    assert ItemVocab.from_dict(vocab.to_dict()) == vocab


def test_interactions_name_missing_and_unknown_columns():
    frame = pd.DataFrame({"uid": [1], "sku": [2]})
    with pytest.raises(DataError, match=r"lack column\(s\) \['user_id', 'item_id'\].*columns="):
        Interactions(frame)
    with pytest.raises(DataError, match=r"\['bogus'\] named in the column mapping are not in the table"):
        Interactions.from_frame(frame, columns={"user_id": "uid", "item_id": "bogus"})
    with pytest.raises(DataError, match=r"Unknown target column\(s\) \['price'\]"):
        Interactions.from_frame(frame, columns={"user_id": "uid", "item_id": "sku", "price": "uid"})
    with pytest.raises(DataError, match="empty"):
        Interactions(frame.iloc[:0].rename(columns={"uid": "user_id", "sku": "item_id"}))


def test_sorted_is_chronological_and_stable_for_ties():
    data = make([("a", 1, 5), ("a", 2, 3), ("a", 3, 3), ("b", 4, 1)]).sorted()
    assert data.frame["item_id"].tolist() == [2, 3, 1, 4]


def test_k_core_is_iterative():
    # d has one interaction -> dropped; then item 9 has one user -> dropped; then c has one -> dropped
    rows = [("a", 1, 0), ("a", 2, 1), ("b", 1, 0), ("b", 2, 1), ("c", 1, 0), ("c", 9, 1), ("d", 9, 0)]
    core = k_core(make(rows), user_k=2, item_k=2)
    assert sorted(core.frame["user_id"].unique()) == ["a", "b"]
    assert (core.frame["user_id"].value_counts() >= 2).all() and (core.frame["item_id"].value_counts() >= 2).all()
    with pytest.raises(DataError, match="empty"):
        k_core(make(rows), user_k=10, item_k=10)


def test_drop_duplicates_modes():
    rows = [("a", 1, 0), ("a", 1, 1), ("a", 2, 2), ("a", 1, 3)]
    assert drop_duplicates(make(rows)).frame["item_id"].tolist() == [1, 2]
    assert drop_duplicates(make(rows), keep="last").frame["item_id"].tolist() == [2, 1]
    assert drop_duplicates(make(rows), consecutive_only=True).frame["item_id"].tolist() == [1, 2, 1]


def sequences(rows) -> tuple[Sequences, ItemVocab]:
    data = make(rows).sorted()
    vocab = ItemVocab.from_ids(data.frame["item_id"])
    return Sequences.from_interactions(data, vocab), vocab


def test_gather_left_padded_truncates_to_newest():
    values = np.arange(1, 8)
    out = gather_left_padded(values, np.array([0, 5]), np.array([5, 7]), 3)
    assert out.tolist() == [[3, 4, 5], [0, 6, 7]]


def test_leave_one_out_exact():
    seqs, _ = sequences([("a", i, i) for i in range(1, 6)] + [("b", 7, 0), ("b", 8, 1)])
    split = leave_one_out(seqs)  # b has 2 items: left out
    assert split.train.users.tolist() == ["a"] and split.train.items.tolist() == [1, 2, 3]
    assert split.valid.targets.tolist() == [4] and split.valid.history.items.tolist() == [1, 2, 3]
    assert split.test.targets.tolist() == [5] and split.test.history.items.tolist() == [1, 2, 3, 4]


def test_temporal_split_has_no_future_leak():
    rows = [("a", 1, 1), ("a", 2, 2), ("a", 3, 8), ("a", 4, 9.5), ("b", 5, 3), ("b", 6, 9.6), ("c", 7, 9.7)]
    seqs, vocab = sequences(rows)
    split = temporal(seqs, valid_cutoff=8, test_cutoff=9)
    assert split.train.times.max() < 8
    assert vocab.decode(split.valid.targets) == [3]  # only a has history before 8 and an event in [8, 9)
    assert vocab.decode(split.test.targets) == [4, 6]  # c has no history before 9
    assert vocab.decode(split.test.history.items[:3]) == [1, 2, 3]
    no_time, _ = sequences([("a", 1, 0), ("a", 2, 1)])
    no_time.times = None
    with pytest.raises(DataError, match="timestamps"):
        temporal(no_time)


def test_user_holdout_users_are_disjoint():
    rows = [(f"u{u}", (u + t) % 5 + 1, t) for u in range(50) for t in range(4)]
    split = user_holdout(sequences(rows)[0], valid_frac=0.2, test_frac=0.2, seed=1)
    train, valid, test = set(split.train.users), set(split.valid.history.users), set(split.test.history.users)
    assert len(test) == 10 and len(valid) == 10 and len(train) == 30
    assert not (train & valid) and not (train & test) and not (valid & test)


def test_train_windows_predict_each_next_item_once():
    seqs, _ = sequences([("a", i, i) for i in range(1, 12)])  # 11 items -> 10 next-item targets
    tensors = train_windows(seqs, max_len=4)
    targets = tensors["target_seq"][tensors["target_seq"] > 0].tolist()
    assert sorted(targets) == list(range(2, 12))
    # the input at each position is the item right before its target
    inputs, target = tensors["item_seq"], tensors["target_seq"]
    assert torch.equal(inputs[target > 0] + 1, target[target > 0])
    assert tensors["item_seq"].shape == (3, 4)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_overlapping_windows_predict_each_next_item_once_with_the_longest_history(stride):
    max_len, lengths = 4, [11, 2, 5, 6, 9]
    seqs, _ = sequences([(f"u{u}", i, i) for u, n in enumerate(lengths) for i in range(1, n + 1)])
    tensors = train_windows(seqs, max_len=max_len, stride=stride)
    inputs, target = tensors["item_seq"], tensors["target_seq"]
    kept = target > 0
    assert int(kept.sum()) == sum(n - 1 for n in lengths)  # every next item once
    for user, n in enumerate(lengths):
        assert sorted(target[tensors["user"] == user][kept[tensors["user"] == user]].tolist()) == list(range(2, n + 1))
    assert torch.equal(inputs[kept] + 1, target[kept])  # the input at each kept position precedes its target
    # a kept target sees all its history, or at least max_len - stride + 1 items of it
    history = (inputs > 0).cumsum(dim=1)[kept]
    assert bool((history >= torch.clamp(target[kept] - 1, max=max_len - stride + 1)).all())
    assert torch.equal(tensors["item_seq"][tensors["user"] == 1], torch.tensor([[0, 0, 0, 1]]))  # one window


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_prefix_windows_cut_short_sequences_too_and_keep_each_target_once(stride):
    max_len, lengths = 4, [11, 2, 5, 3]
    seqs, _ = sequences([(f"u{u}", i, i) for u, n in enumerate(lengths) for i in range(1, n + 1)])
    tensors = train_windows(seqs, max_len=max_len, stride=stride, prefixes=True)
    inputs, target = tensors["item_seq"], tensors["target_seq"]
    kept = target > 0
    for user, n in enumerate(lengths):
        mine = tensors["user"] == user
        assert int(mine.sum()) == -(-(n - 1) // stride)  # a window every `stride` targets, down to the first
        assert sorted(target[mine][kept[mine]].tolist()) == list(range(2, n + 1))
    assert torch.equal(inputs[kept] + 1, target[kept])
    assert bool((kept.sum(dim=1) <= stride).all())  # a window predicts only its newest `stride` items
    if stride == 1:  # every prefix is a sample predicting its last item, with all of its history up to max_len
        assert bool(kept[:, -1].all()) and int(kept.sum()) == len(target)
        short = tensors["item_seq"][tensors["user"] == 3]
        assert short.tolist() == [[0, 0, 1, 2], [0, 0, 0, 1]]  # 1,2,3 -> (1,2 -> 3) and (1 -> 2), newest first


def test_datamodule_trains_on_every_prefix_when_asked(chain_interactions):
    plain = SeqRecDataModule(chain_interactions, max_len=4)
    prefixes = SeqRecDataModule(chain_interactions, max_len=4, window_stride=1, prefix_windows=True)
    for dm in (plain, prefixes):
        dm.setup()
    targets = int((plain.split.train.lengths - 1).sum())
    assert len(prefixes.train_tensors["item_seq"]) == targets
    assert int((prefixes.train_tensors["target_seq"] > 0).sum()) == targets


def test_window_stride_of_max_len_is_the_default_and_others_are_refused():
    seqs, _ = sequences([("a", i, i) for i in range(1, 12)])
    default, explicit = train_windows(seqs, max_len=4), train_windows(seqs, max_len=4, stride=4)
    assert all(torch.equal(default[key], explicit[key]) for key in default)
    for stride in (0, 5):
        with pytest.raises(DataError, match="window_stride must be between 1 and max_len"):
            train_windows(seqs, max_len=4, stride=stride)


def test_datamodule_trains_on_overlapping_windows_when_asked(chain_interactions):
    plain = SeqRecDataModule(chain_interactions, max_len=4)
    strided = SeqRecDataModule(chain_interactions, max_len=4, window_stride=1)
    for dm in (plain, strided):
        dm.setup()
    assert len(strided.train_tensors["item_seq"]) > len(plain.train_tensors["item_seq"])
    kept = [int((dm.train_tensors["target_seq"] > 0).sum()) for dm in (plain, strided)]
    assert kept[0] == kept[1] == int((strided.split.train.lengths - 1).sum())
    with pytest.raises(DataError, match="window_stride"):
        SeqRecDataModule(chain_interactions, max_len=4, window_stride=8).setup()


def test_eval_dataset_carries_full_history_for_masking():
    seqs, _ = sequences([("a", i, i) for i in range(1, 8)])
    split = leave_one_out(seqs)
    dataset = EvalDataset(split.test, max_len=3)
    batch = dataset.__getitems__([0])
    assert batch["item_seq"].tolist() == [[4, 5, 6]] and batch["target"].tolist() == [7]
    assert batch["seen_items"].tolist() == [1, 2, 3, 4, 5, 6] and batch["seen_rows"].tolist() == [0] * 6


def test_unpadded_sampler_covers_every_user_once():
    dataset = list(range(11))
    shards = [list(UnpaddedDistributedSampler(dataset, 3, r)) for r in range(3)]
    assert sorted(sum(shards, [])) == dataset
    assert [len(s) for s in shards] == [len(UnpaddedDistributedSampler(dataset, 3, r)) for r in range(3)]


def test_pad_histories_rejects_empty_history():
    assert pad_histories([np.array([1, 2, 3])], 2).tolist() == [[2, 3]]
    with pytest.raises(DataError, match="empty.*non-empty history"):
        pad_histories([np.array([1]), np.array([], dtype=np.int64)], 4)


def test_datamodule_end_to_end(chain_datamodule):
    dm = chain_datamodule
    assert dm.num_items == 30
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) >= {"item_seq", "target_seq", "user", "index", "time_seq"} and batch["item_seq"].shape[1] == 8
    test_batches = list(dm.test_dataloader())
    assert sum(len(b["target"]) for b in test_batches) == len(dm.split.test) == 61
    assert dm.item_counts()[0] == 0 and dm.item_counts().sum() == len(dm.split.train.items)
    user = dm.split.test.history.users[0]
    history = dm.user_history(user)
    assert history[-1] == dm.vocab.decode([dm.split.test.targets[0]])[0]
    with pytest.raises(UnknownItemError, match="not in"):
        dm.user_history("nobody")


def test_datamodule_rejects_bad_settings(chain_interactions):
    with pytest.raises(DataError, match="max_len"):
        SeqRecDataModule(chain_interactions, max_len=0)
    with pytest.raises(DataError, match="Unknown split 'random'"):
        SeqRecDataModule(chain_interactions, split="random").setup()
    with pytest.raises(DataError, match="data.path"):
        SeqRecDataModule("table").setup()


def test_length_bucket_sampler_is_a_seeded_permutation_of_similar_lengths():
    from lightning_seqrec.data.datasets import LengthBucketSampler

    lengths = torch.randint(1, 50, (1000,), generator=torch.Generator().manual_seed(0))
    sampler = LengthBucketSampler(lengths, batch_size=32, seed=3, pool_batches=8)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    assert list(sampler) == order  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != order
    spread = [int(lengths[order[i : i + 32]].max() - lengths[order[i : i + 32]].min()) for i in range(0, 992, 32)]
    assert np.mean(spread) < 10  # random batches of 32 from 1..49 would span ~45


def test_fingerprint_identifies_the_prepared_data(chain_interactions):
    first, second = SeqRecDataModule(chain_interactions), SeqRecDataModule(chain_interactions)
    first.setup()
    second.setup()
    assert first.fingerprint() == second.fingerprint() and len(first.fingerprint()) == 64
    other = SeqRecDataModule(chain_interactions, split="user_holdout")
    other.setup()
    assert other.fingerprint() != first.fingerprint()
