"""Train / validation / test splits of per-user sequences: leave-one-out, global temporal, user hold-out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_seqrec.data.sequences import Sequences
from lightning_seqrec.errors import DataError


@dataclass
class EvalSet:
    """Users to evaluate: the full history each user has at prediction time, and the item to predict."""

    history: Sequences
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class Split:
    """The parts of one split, the one type every split function and data module returns.

    `train` holds training sequences (every next item inside is a training target) or, in the label protocol
    (`lightning_seqrec.data.label_protocol`), labelled examples (an `EvalSet`: each history predicts its target).
    `valid` and `test` are the evaluation sets. `embedding_corpus` is what item embeddings may pre-train on (None:
    the training sequences). `train_stream`, when not None, holds the training users' whole input streams, on which
    every next item trains instead of the labelled examples (the label protocol on a log without event types).
    """

    train: Sequences | EvalSet
    valid: EvalSet
    test: EvalSet
    embedding_corpus: Sequences | None = None
    train_stream: Sequences | None = None


def _eval_set(seqs: Sequences, rows: np.ndarray, history_len: np.ndarray) -> EvalSet:
    """Users `rows` whose target is the item right after their first `history_len` items."""
    history = seqs.select(rows, end_offset=seqs.lengths[rows] - history_len)
    targets = seqs.items[seqs.indptr[:-1][rows] + history_len]
    return EvalSet(history=history, targets=targets)


def leave_one_out(seqs: Sequences) -> Split:
    """Last item is the test target, second-to-last the validation target, the rest trains.

    Users with fewer than 3 items cannot contribute to all three parts and are left out; this matches the
    S3-Rec / SASRec protocol, whose 5-core data never has them.
    """
    rows = np.flatnonzero(seqs.lengths >= 3)
    if len(rows) == 0:
        raise DataError("Leave-one-out needs users with at least 3 interactions; this data has none.")
    lengths = seqs.lengths[rows]
    train = seqs.select(rows, end_offset=2)
    # The validation history is exactly the training sequence: share it instead of a second copy (at 100M
    # interactions that copy is 1.6 GB).
    valid = EvalSet(history=train, targets=seqs.items[seqs.indptr[:-1][rows] + lengths - 2])
    return Split(train=train, valid=valid, test=_eval_set(seqs, rows, lengths - 1))


def _resolve_cutoff(times: np.ndarray, cutoff: float) -> float:
    """A cutoff in (0, 1) is a quantile of all timestamps; anything else is a timestamp."""
    return float(np.quantile(times, cutoff)) if 0 < cutoff < 1 else float(cutoff)


def temporal(seqs: Sequences, valid_cutoff: float = 0.8, test_cutoff: float = 0.9) -> Split:
    """Global time split: train on events before `valid_cutoff`; evaluate each user's first later event.

    A user is in the validation set when they have history before `valid_cutoff` and an event in
    `[valid_cutoff, test_cutoff)`; in the test set when they have history before `test_cutoff` and an event
    after it. Cutoffs in (0, 1) are quantiles of the timestamps. No event after a cutoff leaks into training.
    """
    if seqs.times is None:
        raise DataError("A temporal split needs timestamps; this dataset has none. Use split=loo instead.")
    v_cut, t_cut = _resolve_cutoff(seqs.times, valid_cutoff), _resolve_cutoff(seqs.times, test_cutoff)
    if v_cut > t_cut:
        raise DataError(f"valid_cutoff ({v_cut}) must not be after test_cutoff ({t_cut}).")
    owner = np.repeat(np.arange(len(seqs)), seqs.lengths)
    before_valid = np.bincount(owner, weights=seqs.times < v_cut, minlength=len(seqs)).astype(np.int64)
    before_test = np.bincount(owner, weights=seqs.times < t_cut, minlength=len(seqs)).astype(np.int64)
    all_rows = np.arange(len(seqs))
    valid_rows = np.flatnonzero((before_valid >= 1) & (before_test > before_valid))
    test_rows = np.flatnonzero((before_test >= 1) & (seqs.lengths > before_test))
    if len(test_rows) == 0:
        raise DataError(f"No user has history before the test cutoff {t_cut} and an event after it.")
    return Split(
        train=seqs.select(all_rows, end_offset=seqs.lengths - before_valid),
        valid=_eval_set(seqs, valid_rows, before_valid[valid_rows]),
        test=_eval_set(seqs, test_rows, before_test[test_rows]),
    )


def partition_users(
    rows: np.ndarray, valid_frac: float, test_frac: float, seed: int, who: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`rows` shuffled by `seed` into sorted train / validation / test parts of the given fractions (rounded);
    `who` names the caller in the error for invalid fractions."""
    if not 0 <= valid_frac < 1 or not 0 < test_frac < 1 or valid_frac + test_frac >= 1:
        raise DataError(f"{who} needs 0 <= valid_frac, 0 < test_frac and valid_frac + test_frac < 1.")
    perm = np.random.default_rng(seed).permutation(rows)
    n_test, n_valid = int(round(len(perm) * test_frac)), int(round(len(perm) * valid_frac))
    return np.sort(perm[n_test + n_valid :]), np.sort(perm[n_test : n_test + n_valid]), np.sort(perm[:n_test])


def user_holdout(seqs: Sequences, valid_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0) -> Split:
    """Disjoint users for train, validation and test (the IKEA protocol): no evaluated user is trained on.

    An evaluated user's last item is the target and everything before it the history.
    """
    train_rows, valid_rows, test_rows = partition_users(
        np.flatnonzero(seqs.lengths >= 2), valid_frac, test_frac, seed, "user_holdout"
    )
    return Split(
        train=seqs.select(train_rows),
        valid=_eval_set(seqs, valid_rows, seqs.lengths[valid_rows] - 1),
        test=_eval_set(seqs, test_rows, seqs.lengths[test_rows] - 1),
    )


SPLITS = {"loo": leave_one_out, "temporal": temporal, "user_holdout": user_holdout}


def make_split(seqs: Sequences, name: str, **kwargs) -> Split:
    """Dispatch by name so configs can say `split: loo | temporal | user_holdout`."""
    if name not in SPLITS:
        raise DataError(f"Unknown split {name!r}; choose one of {sorted(SPLITS)}.")
    return SPLITS[name](seqs, **kwargs)
