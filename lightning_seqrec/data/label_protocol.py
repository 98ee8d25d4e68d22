"""The IKEA protocol (Karlis et al.): input events (product views) predict a label event (add-to-cart).

The log is cut once in time. The first part only trains the item embeddings (Word2Vec); the second part
becomes labelled examples, one per label event, whose input is the user's input events before it in that
part, and its users are split into train / validation / test so no evaluated user is ever trained on.
A log without event types (Amazon, MovieLens) is one stream of inputs and labels, and an evaluated user's
last item is the label.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from lightning_seqrec.data.interactions import Interactions
from lightning_seqrec.data.sequences import Sequences
from lightning_seqrec.data.splits import EvalSet, Split, _resolve_cutoff, partition_users
from lightning_seqrec.data.vocab import ItemVocab
from lightning_seqrec.errors import DataError

LabelSplit = Split
"""The protocol's parts are a `Split`: the embedding corpus (first time part, inputs only) and labelled examples
(`EvalSet`s) of the second part, by disjoint users. `train_stream` holds the training users' input streams when
inputs and labels are one stream (then every next item trains, as in `train_windows`), else None."""


def _event_mask(frame, events: Collection[str] | None, role: str) -> np.ndarray:
    if events is None:
        return np.ones(len(frame), dtype=bool)
    if "event" not in frame.columns:
        raise DataError(
            f"{role}_events={list(events)} needs an `event` column, which this log lacks; "
            f"set {role}_events=null to use every interaction."
        )
    mask = frame["event"].isin(list(events)).to_numpy()
    if not mask.any():
        present = sorted(frame["event"].unique().tolist())
        raise DataError(f"No {role} events of type {list(events)} in the log; it has {present}.")
    return mask


def _csr(users: np.ndarray, items: np.ndarray, times: np.ndarray) -> Sequences:
    """Rows already grouped by user (sorted log) as CSR sequences."""
    if len(users) == 0:
        return Sequences(users=users, indptr=np.zeros(1, dtype=np.int64), items=items, times=times)
    change = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    return Sequences(users=users[change], indptr=np.r_[change, len(users)].astype(np.int64), items=items, times=times)


def _examples(inputs: Sequences, example_rows: np.ndarray, n_before: np.ndarray, labels: np.ndarray) -> EvalSet:
    """Example i predicts `labels[i]` from the first `n_before[i]` inputs of row `example_rows[i]`."""
    history = inputs.select(example_rows, end_offset=inputs.lengths[example_rows] - n_before)
    return EvalSet(history=history, targets=labels)


def label_split(
    data: Interactions,
    vocab: ItemVocab,
    input_events: Collection[str] | None = ("view",),
    label_events: Collection[str] | None = ("addtocart",),
    embedding_cutoff: float = 0.5,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    eval_labels: str = "all",
    seed: int = 0,
) -> Split:
    """Split `data` by the IKEA protocol.

    `embedding_cutoff` (a quantile in (0, 1) or a timestamp) ends the embedding part; `0` gives it nothing.
    `eval_labels="all"` evaluates every label event of an evaluated user, `"last"` only the newest.
    """
    if not data.has_time:
        raise DataError("The label protocol splits the log in time and needs timestamps; this log has none.")
    if eval_labels not in ("all", "last"):
        raise DataError(f"eval_labels={eval_labels!r} is not valid; use 'all' or 'last'.")
    frame = data.sorted().frame
    one_stream = input_events is None and label_events is None
    is_input, is_label = _event_mask(frame, input_events, "input"), _event_mask(frame, label_events, "label")
    users = frame["user_id"].to_numpy()
    items = vocab.encode_series(frame["item_id"])
    times = frame["timestamp"].to_numpy(dtype=np.float64)
    late = times >= _resolve_cutoff(times, embedding_cutoff) if embedding_cutoff else np.ones(len(times), bool)

    early_inputs = ~late & is_input
    corpus = _csr(users[early_inputs], items[early_inputs], times[early_inputs])

    late_users, late_items, late_times = users[late], items[late], times[late]
    late_input, late_label = is_input[late], is_label[late]
    row_of = np.cumsum(np.r_[True, late_users[1:] != late_users[:-1]]) - 1 if late.any() else np.zeros(0, int)
    inputs = _csr(late_users[late_input], late_items[late_input], late_times[late_input])
    # Inputs of the same user strictly before each event: the running count within the user, minus its own.
    inputs_per_user = np.bincount(row_of, weights=late_input).astype(np.int64)
    input_rank = np.cumsum(late_input) - late_input
    n_before = input_rank - np.r_[0, np.cumsum(inputs_per_user)][row_of]
    # `inputs` has a row only for users with inputs; map each late event's user row to its `inputs` row.
    has_inputs = inputs_per_user > 0
    input_row = np.cumsum(has_inputs) - 1
    labelled = np.flatnonzero(late_label & (n_before > 0))
    if len(labelled) == 0:
        raise DataError(
            "No label event has an earlier input event of the same user after the embedding cut-off; lower "
            "embedding_cutoff or check input_events / label_events."
        )

    _, valid_users, test_users = partition_users(
        np.unique(row_of[labelled]), valid_frac, test_frac, seed, "label_split"
    )
    part = np.zeros(row_of.max() + 1, dtype=np.int8)  # 0 train, 1 valid, 2 test
    part[test_users], part[valid_users] = 2, 1

    def examples(which: int, last_only: bool) -> EvalSet:
        chosen = labelled[part[row_of[labelled]] == which]
        if last_only:
            newest = np.r_[row_of[chosen][1:] != row_of[chosen][:-1], True] if len(chosen) else np.zeros(0, bool)
            chosen = chosen[newest]
        return _examples(inputs, input_row[row_of[chosen]], n_before[chosen], late_items[chosen])

    last = eval_labels == "last"
    train_stream = None
    if one_stream:
        train_stream = inputs.select(input_row[np.flatnonzero(has_inputs & (part == 0))])
    return Split(
        embedding_corpus=corpus,
        train=examples(0, False),
        valid=examples(1, last),
        test=examples(2, last),
        train_stream=train_stream,
    )
