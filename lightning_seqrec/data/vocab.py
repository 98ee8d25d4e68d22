"""`ItemVocab`: the bijection between raw item IDs and embedding rows (row 0 is padding)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lightning_seqrec.errors import DataError, UnknownItemError


class ItemVocab:
    """Raw item ID <-> index, with index 0 reserved for padding and never ranked.

    Raw IDs are ints or strings; the vocabulary is stored in every checkpoint as a plain list so it loads
    with `weights_only=True`.
    """

    def __init__(self, raw_ids: Sequence):
        ids = [x.item() if isinstance(x, np.generic) else x for x in raw_ids]
        bad = {type(x).__name__ for x in ids} - {"int", "str"}
        if bad:
            raise DataError(f"Raw item IDs must be int or str, got {sorted(bad)}; cast the item column first.")
        if len(set(ids)) != len(ids):
            raise DataError("ItemVocab got duplicate raw IDs; build it from unique IDs.")
        self._ids: list = ids
        self._index: dict = {raw: i + 1 for i, raw in enumerate(ids)}

    @classmethod
    def from_ids(cls, raw_ids: Iterable) -> ItemVocab:
        """Vocabulary over the distinct IDs in first-seen order (deterministic for a given file)."""
        return cls(pd.unique(pd.Series(raw_ids if isinstance(raw_ids, pd.Series) else list(raw_ids))))

    def __len__(self) -> int:
        """Number of real items (padding excluded)."""
        return len(self._ids)

    @property
    def size(self) -> int:
        """Rows of an embedding table for this vocabulary (items + padding)."""
        return len(self._ids) + 1

    @property
    def raw_ids(self) -> list:
        return list(self._ids)

    def __contains__(self, raw) -> bool:
        return self._normalise(raw) in self._index

    def _normalise(self, raw):
        if raw in self._index:
            return raw
        # IDs typed on a command line arrive as strings; accept "42" for 42 and 42 for "42".
        if isinstance(raw, str):
            try:
                as_int = int(raw)
            except ValueError:
                return raw
            return as_int if as_int in self._index else raw
        return str(raw) if str(raw) in self._index else raw

    def encode(self, raw_ids: Iterable, unknown: str = "raise") -> np.ndarray:
        """Map raw IDs to indices; `unknown="raise"` names the offenders, `"drop"` removes them."""
        out, missing = [], []
        for raw in raw_ids:
            idx = self._index.get(self._normalise(raw))
            if idx is None:
                missing.append(raw)
            else:
                out.append(idx)
        if missing and unknown == "raise":
            shown = ", ".join(repr(m) for m in missing[:10])
            raise UnknownItemError(
                f"{len(missing)} item ID(s) are not in this model's vocabulary: {shown}"
                f"{' ...' if len(missing) > 10 else ''}. Use IDs from the training data "
                f"(the vocabulary has {len(self)} items, e.g. {self._ids[:3]!r}) or pass unknown='drop' to skip them."
            )
        return np.asarray(out, dtype=np.int64)

    def encode_series(self, raw: pd.Series) -> np.ndarray:
        """Vectorised encode of a column known to hold only vocabulary IDs."""
        codes = pd.Categorical(raw, categories=self._ids).codes
        if (codes < 0).any():
            raise UnknownItemError(f"{int((codes < 0).sum())} value(s) are not in the vocabulary.")
        return codes.astype(np.int64) + 1

    def decode(self, indices: Iterable[int]) -> list:
        """Map indices back to raw IDs; padding or out-of-range indices raise."""
        out = []
        for i in indices:
            i = int(i)
            if not 1 <= i <= len(self._ids):
                raise UnknownItemError(f"Index {i} is padding or outside the vocabulary (1..{len(self._ids)}).")
            out.append(self._ids[i - 1])
        return out

    def to_dict(self) -> dict:
        """Plain-Python form for checkpoints and Hub folders."""
        return {"ids": list(self._ids)}

    @classmethod
    def from_dict(cls, state: dict) -> ItemVocab:
        if not isinstance(state, dict) or not isinstance(state.get("ids"), list):
            raise DataError("A vocabulary must be a dict with an 'ids' list; this one is malformed.")
        return cls(state["ids"])

    def __eq__(self, other) -> bool:
        return isinstance(other, ItemVocab) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"ItemVocab({len(self)} items)"
