"""Load a trained module from a Lightning checkpoint safely: `weights_only=True`, validated structure, and the
vocabulary and architecture tied to the weights by their hashes."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightning_seqrec.data.stored_config import is_plain
from lightning_seqrec.errors import CheckpointError, ConfigError, SeqRecError

NOT_WEIGHTS = ("objectives.", "evaluators.")
"""State-dict prefixes that are not needed to score: objective parameters and metric state."""
ARCHITECTURE_KEYS = frozenset(
    {
        "num_items",
        "backbone",
        "backbone_kwargs",
        "input_encoder",
        "input_encoder_kwargs",
        "embedding_dim",
        "max_len",
        "mask_seen",
        "scoring",
        "freeze_embeddings",
    }
)
"""The `SeqRecModule` arguments an architecture record may set; anything else in a stored record is refused."""


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict of a lightning-seqrec `.ckpt`, read by `safe_load`, with its structure checked."""
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or not isinstance(ckpt.get("seqrec"), dict):
        raise CheckpointError(f"{path} is not a lightning-seqrec checkpoint (no 'seqrec' section or state_dict).")
    return ckpt


def safe_load(path: str | Path):
    """A file's contents unpickled with `weights_only=True` set explicitly (so `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`
    cannot switch it off) and no code in the file can run; any unreadable file is one `CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is a folder; pass the .ckpt file inside it (e.g. checkpoints/last.ckpt), "
            "or load a Hub folder with lightning_seqrec.hub.from_pretrained."
        )
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist; pass ckpt=<path to a .ckpt file>.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint; re-download it or re-run training.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise _unreadable(path, err) from err
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, so it was not loaded "
            f"(weights_only=True refuses arbitrary pickle). Only load checkpoints written by lightning-seqrec. "
            f"Detail: {_first_line(err)}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, IndexError, ValueError) as err:
        raise _unreadable(path, err) from err


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable checkpoint (truncated or corrupt, or not a checkpoint at all: {_first_line(err)}). "
        "Re-download it or re-run training."
    )


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with every load (resume with `ckpt_path=`, testing the best checkpoint, the weights
    a ddp_spawn run hands back to its parent) going through `safe_load`, so no Trainer load depends on PyTorch's
    default for `weights_only`."""

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return safe_load(path)


def check_architecture(architecture, source: str) -> dict:
    """A stored architecture record as plain keyword arguments of `SeqRecModule`; unknown keys and non-plain
    values (nested records that could name code) are refused."""
    if not isinstance(architecture, dict):
        raise CheckpointError(f"{source} has no architecture record; it was not written by lightning-seqrec.")
    unknown = sorted(set(architecture) - ARCHITECTURE_KEYS)
    if unknown:
        raise CheckpointError(
            f"{source}: the architecture record has keys this version does not take ({', '.join(unknown)}); "
            f"allowed: {', '.join(sorted(ARCHITECTURE_KEYS))}. Re-export it with this version."
        )
    for key, value in architecture.items():
        if not is_plain(value):
            raise CheckpointError(f"{source}: architecture[{key!r}] is not a plain value (str, number, list, dict).")
    return architecture


# --------------------------------------------------------------------------------------------- building
def scoring_weights(state_dict: dict) -> dict:
    """The part of a state dict that scores: everything but objective parameters and metric state."""
    return {k: v for k, v in state_dict.items() if not k.startswith(NOT_WEIGHTS)}


def build_module(architecture: dict, weights: dict, source: str | Path, **extra):
    """`SeqRecModule(**architecture)` with `weights` loaded strictly; every failure names `source`."""
    from lightning_seqrec.modules import SeqRecModule

    architecture = check_architecture(architecture, str(source))
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
    every other weight must match the architecture exactly, and the vocabulary must fit the item table and (in
    checkpoints that record them) match the hashes stored beside the weights.
    """
    ckpt = read_checkpoint(path)
    module = build_module(ckpt["seqrec"].get("architecture"), scoring_weights(ckpt["state_dict"]), path)
    try:
        module.on_load_checkpoint(ckpt)
    except SeqRecError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return module.to(map_location).eval()
