"""Hashes that tie a model's vocabulary and architecture record to its weights, and the size check between a
vocabulary and its item table: a file edited on its own (IDs shifted, a config flipped) is refused on load."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from lightning_seqrec.errors import CheckpointError


def record_sha256(record) -> str:
    """sha256 of a JSON-able record in canonical form (sorted keys, no spaces): the same record, the same hash."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def integrity_record(architecture: Mapping, vocab_state: Mapping) -> dict[str, str]:
    """The hashes stored with the weights: they tie the vocabulary and the architecture to the weights, so an
    edited `vocab.json` (IDs shifted, same length) or config is refused instead of recommending the wrong items."""
    return {"architecture_sha256": record_sha256(dict(architecture)), "vocab_sha256": record_sha256(dict(vocab_state))}


def verify_integrity(stored: Mapping, architecture: Mapping, vocab_state: Mapping) -> None:
    """Refuse a model unless `stored` holds the hashes of exactly this architecture and vocabulary (the message
    starts with "its", for the caller to prefix with the file's name)."""
    for key, value in integrity_record(architecture, vocab_state).items():
        if key not in stored:
            raise CheckpointError(
                f"its weights record no {key}, so its vocabulary and architecture cannot be tied to them. If you "
                "trust its origin, re-save it with this version (lightning_seqrec.hub.seal_folder for a Hub folder); "
                "otherwise ask the publisher for a current export."
            )
        if stored[key] != value:
            raise CheckpointError(
                f"its {key.removesuffix('_sha256')} does not match the {key} stored with its weights: the files were "
                "edited or come from different models. Re-download or re-export it."
            )


def check_vocab_size(vocab, rows: int, vocab_source: str, weights_source: str) -> None:
    """Refuse a vocabulary whose size differs from the item embedding table (`rows`, padding included)."""
    if vocab.size != rows:
        raise CheckpointError(
            f"{vocab_source} lists {len(vocab)} items ({vocab.size} rows with padding) but the item embedding in "
            f"{weights_source} has {rows} rows; the files come from different models: re-export or re-train it."
        )
