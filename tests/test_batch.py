"""The batch contract (`lightning_seqrec.batch`): its helpers, its place below every other room, the one inference
builder, timestamps through augmentations, and the one split type."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import chain_interactions_of, make_chain_datamodule

import lightning_seqrec.batch as batch_module
from lightning_seqrec.batch import (
    SEEN_ITEMS,
    SEEN_ROWS,
    TIME_SEQ,
    gather_left_padded,
    inference_batch,
    pad_histories,
    trim_padding,
)
from lightning_seqrec.data import LabelPredictionDataModule
from lightning_seqrec.data.label_protocol import LabelSplit
from lightning_seqrec.data.splits import Split
from lightning_seqrec.errors import ConfigError, DataError
from lightning_seqrec.objectives.augment import crop, mask, random_augment, reorder


def test_batch_module_imports_nothing_but_numpy_torch_and_the_errors():
    tree = ast.parse(Path(batch_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"__future__", "collections.abc", "numpy", "torch", "lightning_seqrec.errors"}, imported


def test_old_homes_import_the_one_copy():
    from lightning_seqrec.data import datamodule, datasets, sequences
    from lightning_seqrec.modules import seqrec

    assert datamodule.pad_histories is pad_histories and sequences.gather_left_padded is gather_left_padded
    assert datasets.gather_left_padded is gather_left_padded and seqrec.trim_padding is trim_padding


def test_pad_histories_pads_items_and_timestamps():
    histories = [np.array([1, 2, 3]), np.array([4])]
    assert pad_histories(histories, 2).tolist() == [[2, 3], [0, 4]]
    times = pad_histories([np.array([10.5, 20.5, 30.5]), np.array([7.0])], 2, dtype=np.float64)
    assert times.dtype == torch.float64 and times.tolist() == [[20.5, 30.5], [0.0, 7.0]]
    with pytest.raises(DataError, match="empty"):
        pad_histories([np.array([], dtype=np.int64)], 2)


def test_inference_batch_carries_items_times_and_every_seen_item():
    encoded = [np.array([5, 6, 7]), np.array([9])]
    batch = inference_batch(encoded, 2, timestamps=[[1, 2, 3], [4]])
    assert batch["item_seq"].tolist() == [[6, 7], [0, 9]]
    assert batch[TIME_SEQ].tolist() == [[2.0, 3.0], [0.0, 4.0]]
    assert batch[SEEN_ROWS].tolist() == [0, 0, 0, 1] and batch[SEEN_ITEMS].tolist() == [5, 6, 7, 9]  # not truncated
    assert TIME_SEQ not in inference_batch(encoded, 2)
    for bad, message in (([[1, 2], [4]], "2 timestamp"), ([[1, 2, 3]], "1 timestamp list"), ("123", "not a list")):
        with pytest.raises(ConfigError, match=message):
            inference_batch(encoded, 2, timestamps=bad)
    with pytest.raises(ConfigError, match="not numbers"):
        inference_batch(encoded, 2, timestamps=[["a", "b", "c"], [1]])


def test_trim_padding_trims_time_with_items():
    batch = {"item_seq": torch.tensor([[0, 0, 3, 4], [0, 0, 0, 7]]), TIME_SEQ: torch.tensor([[0, 0, 1.0, 2.0]] * 2)}
    trimmed = trim_padding(batch)
    assert trimmed["item_seq"].shape == (2, 2) and trimmed[TIME_SEQ].tolist() == [[1.0, 2.0], [1.0, 2.0]]


@pytest.mark.parametrize("transform", [crop, mask, reorder])
def test_augmentations_move_each_timestamp_with_its_item(transform):
    items = torch.tensor([[0, 0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0, 8, 9], [11, 12, 13, 14, 15, 16, 17, 18]])
    times = items.double() * 100
    torch.manual_seed(3)
    alone = transform(items, 0.5)
    torch.manual_seed(3)
    view, view_times = transform(items, 0.5, time_seq=times)
    assert torch.equal(view, alone)  # the same draws with or without times
    assert torch.equal(view_times, view.double() * 100)  # every item kept its own timestamp, padding has 0


def test_random_augment_with_times_draws_as_without():
    items = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 0, 6, 7, 8]])
    torch.manual_seed(0)
    alone = random_augment(items, 0.2, 0.7, 0.2)
    torch.manual_seed(0)
    view, times = random_augment(items, 0.2, 0.7, 0.2, time_seq=torch.where(items > 0, items + 0.5, 0.0))
    assert torch.equal(view, alone) and torch.equal(times, torch.where(view > 0, view + 0.5, 0.0))


def test_user_times_align_with_user_history():
    dm = make_chain_datamodule()
    user = dm.sequences.users[2]
    history, times = dm.user_history(user), dm.user_times(user)
    assert len(times) == len(history) and times == sorted(times)
    row = dm.sequences.users.tolist().index(user)
    assert times == dm.sequences.times[dm.sequences.indptr[row] : dm.sequences.indptr[row + 1]].tolist()


def test_one_split_type_and_make_split_changes_nothing():
    assert LabelSplit is Split
    dm = make_chain_datamodule()
    assert isinstance(dm.split, Split)
    label = LabelPredictionDataModule(chain_interactions_of(), input_events=None, label_events=None, max_len=8)
    label.setup()
    assert isinstance(label.split, Split) and label.split.embedding_corpus is not None
    for module in (dm, label):
        sequences, split = module.sequences, module.split
        again = module.make_split(module.interactions)
        assert module.sequences is sequences and module.split is split  # no side effects
        assert np.array_equal(again.test.targets, split.test.targets)
