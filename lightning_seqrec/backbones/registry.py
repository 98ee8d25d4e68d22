"""A registry of backbones by name, so configs and checkpoints can say `sasrec` instead of a class path.

The backbone protocol
---------------------
A backbone is an `nn.Module` whose constructor takes keyword arguments with defaults (the published settings live
there and in `configs/model/*.yaml`; `embedding_dim` and `max_len`, when it takes them, are the module's own) and

    forward(embeddings [B, L, d], mask [B, L], batch) -> hidden [B, L, d]

`embeddings` are the item embeddings of `batch["item_seq"]` (left-padded: the newest item is the last column),
`mask` is True at real items, and `batch` is the whole batch (keys in `lightning_seqrec.batch`). The hidden state at
position t may depend on items 1..t only (it predicts item t + 1), must not depend on how much padding precedes the
items, and should be 0 at padded positions. A backbone that reads time takes it from `batch["time_seq"]` (`[B, L]`
float64 timestamps aligned with `item_seq`) and says so with the class attribute `uses_time = True`: the module
then refuses a batch, or a `recommend()` call, without timestamps instead of failing inside the backbone.

Optional, for backbones that can fold one new event into a user's state (recurrent ones; GRU4Rec and LSTM have it):

    init_state(batch_size) -> state                   the state before any item
    step(state, item_embedding [B, d], timestamp [B] | None) -> (state, hidden [B, d])

Stepping through a history item by item ends with the hidden state `forward` gives at its newest position.

Registering a backbone
----------------------
`register_backbone("name")` on the class, in a module that is imported before the name is looked up. Two trusted
routes make that happen for a process that did not import the module itself, e.g. `seqrec train` /
`seqrec recommend`:

- the `lightning_seqrec.backbones` entry-point group of an installed package (`name = "package.module:Class"`);
- the `SEQREC_PLUGINS` environment variable: comma-separated module names (importable on `PYTHONPATH`), imported
  the first time a name is not found, so their `register_backbone` decorators run.

Both are chosen by whoever installs packages or sets the environment, never by a file: a checkpoint or Hub folder
stores only the registered name (`architecture["backbone"]`), and a name is looked up, never imported, so stored
data cannot choose which code runs. Names of the import-path form `module:Class` are refused.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from torch import nn

from lightning_seqrec.errors import ConfigError

_BACKBONES: dict[str, type[nn.Module]] = {}

PLUGINS_ENV = "SEQREC_PLUGINS"
"""Environment variable naming modules to import (comma-separated) that register backbones."""

_imported_plugins: set[str] = set()


def register_backbone(name: str):
    """Class decorator: make a backbone constructible by `name`."""
    _check_name(name)

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _BACKBONES and _BACKBONES[name] is not cls:
            raise ConfigError(f"Backbone name {name!r} is already taken by {_BACKBONES[name].__name__}.")
        _BACKBONES[name] = cls
        return cls

    return wrap


def _check_name(name) -> None:
    if isinstance(name, str) and ":" in name:
        raise ConfigError(
            f"Backbone name {name!r} is not a registered name: backbones are named, never imported from a path; "
            f"register the class with register_backbone in a module listed in {PLUGINS_ENV} (or an installed "
            "package's lightning_seqrec.backbones entry point) and use its name."
        )


def _load_plugins() -> None:
    for module in os.environ.get(PLUGINS_ENV, "").split(","):
        module = module.strip()
        if module and module not in _imported_plugins:
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise ConfigError(f"{PLUGINS_ENV} names module {module!r}, which cannot be imported: {err}") from err
            _imported_plugins.add(module)
    for ep in entry_points(group="lightning_seqrec.backbones"):
        if ep.name not in _BACKBONES:
            _BACKBONES[ep.name] = ep.load()


def list_backbones() -> list[str]:
    _load_plugins()
    return sorted(_BACKBONES)


def get_backbone(name: str) -> type[nn.Module]:
    _check_name(name)
    if name not in _BACKBONES:
        _load_plugins()
    if name not in _BACKBONES:
        raise ConfigError(
            f"Unknown backbone {name!r}; registered backbones are {list_backbones()}. A backbone of your own is "
            f"found through the module that registers it, named in {PLUGINS_ENV}=<module>."
        )
    return _BACKBONES[name]


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered backbone; a wrong argument names the ones it accepts."""
    cls = get_backbone(name)
    try:
        return cls(**kwargs)
    except TypeError as err:
        import inspect

        accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
        raise ConfigError(f"Backbone {name!r} rejected its arguments ({err}); it accepts {accepted}.") from err
