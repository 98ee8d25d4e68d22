"""Load a trained module from a Lightning checkpoint safely: `weights_only=True`, validated structure."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from lightning_seqrec.errors import CheckpointError, ConfigError

NOT_WEIGHTS = ("objectives.", "evaluators.")
"""State-dict prefixes that are not needed to score: objective parameters and metric state."""


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, unpickled with `weights_only=True` so no code in the file can run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist; pass ckpt=<path to a .ckpt file>.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, so it was not loaded "
            f"(weights_only=True refuses arbitrary pickle). Only load checkpoints written by lightning-seqrec. "
            f"Detail: {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {str(err).splitlines()[0]}). "
            "Re-download it or re-run training."
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or not isinstance(ckpt.get("seqrec"), dict):
        raise CheckpointError(f"{path} is not a lightning-seqrec checkpoint (no 'seqrec' section or state_dict).")
    return ckpt


def scoring_weights(state_dict: dict) -> dict:
    """The part of a state dict that scores: everything but objective parameters and metric state."""
    return {k: v for k, v in state_dict.items() if not k.startswith(NOT_WEIGHTS)}


def build_module(architecture: dict, weights: dict, source: str | Path, **extra):
    """`SeqRecModule(**architecture)` with `weights` loaded strictly; every failure names `source`."""
    from lightning_seqrec.modules import SeqRecModule

    try:
        module = SeqRecModule(**architecture, **extra)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err} Install the package that provides it, or fix the file.") from err
    except TypeError as err:
        raise CheckpointError(f"{source} describes an architecture this version cannot build: {err}") from err
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        detail = str(err).rstrip(".")
        raise CheckpointError(
            f"{source}: weights do not match its architecture: {detail}. The files come from different models."
        ) from err
    return module


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild the module a checkpoint was trained as and load its weights and vocabulary.

    Objective parameters (e.g. projection heads of auxiliary losses) are not needed to score and are skipped;
    every other weight must match the architecture exactly.
    """
    ckpt = read_checkpoint(path)
    architecture = ckpt["seqrec"].get("architecture")
    if not isinstance(architecture, dict):
        raise CheckpointError(f"{path} has no architecture record; it was not written by lightning-seqrec.")
    module = build_module(architecture, scoring_weights(ckpt["state_dict"]), path)
    module.on_load_checkpoint(ckpt)
    return module.to(map_location).eval()
