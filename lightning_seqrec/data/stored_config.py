"""Build a DataModule from a data config read out of a checkpoint, which is untrusted input.

A stored config is data, never code: `_target_` must name one of the library's own DataModule classes, every
other key must be a keyword argument that class takes, and every value must be plain data (no nested `_target_`
or other Hydra keys, no `${...}` interpolations). Nothing goes through Hydra's `instantiate` or OmegaConf, so
nothing in the file chooses a callable to run or an environment variable to read.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from lightning_seqrec.errors import CheckpointError

PACKAGE = "lightning_seqrec.data"
PLAIN_TYPES = (str, int, float, bool, type(None))


def is_plain(value) -> bool:
    """Whether `value` is JSON-like data (str, number, bool, None, lists and str-keyed dicts of those)."""
    if isinstance(value, PLAIN_TYPES):
        return True
    if isinstance(value, list | tuple):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def allowed_datamodules() -> dict[str, type]:
    """The DataModule classes a stored config may name, by every import path they are exported under."""
    from lightning_seqrec import data
    from lightning_seqrec.data.datamodule import SeqRecDataModule

    classes = {}
    for name in data.__all__:
        cls = getattr(data, name)
        if isinstance(cls, type) and issubclass(cls, SeqRecDataModule):
            classes[f"{PACKAGE}.{name}"] = cls
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return classes


def accepted_arguments(cls: type) -> set[str]:
    """The keyword arguments `cls(...)` takes, following `**kwargs` up the class hierarchy to where it lands."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        accepted |= {p.name for p in parameters if p.name != "self" and p.kind is not p.VAR_KEYWORD}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted


def _interpolations(value, where: str) -> list[str]:
    """Keys under `where` whose strings hold `${...}` or whose dicts hold Hydra's underscore keys."""
    if isinstance(value, str):
        return [where] if "${" in value else []
    if isinstance(value, list | tuple):
        return [hit for i, v in enumerate(value) for hit in _interpolations(v, f"{where}[{i}]")]
    if isinstance(value, dict):
        special = [f"{where}.{k}" for k in value if isinstance(k, str) and k.startswith("_") and k.endswith("_")]
        return special + [hit for k, v in value.items() for hit in _interpolations(v, f"{where}.{k}")]
    return []


def datamodule_from_record(record: Mapping, source: str, overrides: Mapping | None = None):
    """The DataModule a checkpoint's stored data config describes, with the user's own `overrides` (trusted,
    from the command line) applied on top; anything outside the allow-list is refused, naming what and why."""
    if not isinstance(record, Mapping):
        raise CheckpointError(f"{source}: its stored data config is not a mapping; pass data=<dataset> instead.")
    record = {**record, **(overrides or {})}
    target = record.pop("_target_", None)
    classes = allowed_datamodules()
    if target not in classes:
        raise CheckpointError(
            f"{source}: its stored data config names _target_={target!r}, which is not one of the library's "
            f"DataModules ({', '.join(sorted(k for k in classes if k.count('.') == 2))}), so it was refused. "
            "Pass data=<dataset> (and data.path=...) to choose the data yourself."
        )
    cls = classes[target]
    refused = sorted(set(record) - accepted_arguments(cls))
    if refused:
        raise CheckpointError(
            f"{source}: its stored data config sets {', '.join(refused)}, which {cls.__name__} does not take, so it "
            "was refused. Pass data=<dataset> to choose the data yourself."
        )
    unsafe = [hit for key, value in record.items() for hit in _interpolations(value, key)]
    unsafe += [key for key, value in record.items() if not is_plain(value)]
    if unsafe:
        raise CheckpointError(
            f"{source}: its stored data config holds Hydra keys, interpolations or non-plain values at "
            f"{', '.join(sorted(set(unsafe)))}; stored configs are data and are never resolved, so it was refused. "
            "Pass data=<dataset> to choose the data yourself."
        )
    try:
        return cls(**record)
    except TypeError as err:
        raise CheckpointError(f"{source}: its stored data config does not fit {cls.__name__}: {err}.") from err
