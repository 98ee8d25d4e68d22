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

Optional, for backbones that can fold one new event into a user's state (recurrent ones; GRU4Rec, LSTM and LRU have
it):

    init_state(batch_size) -> state                   the state before any item
    step(state, item_embedding [B, d], timestamp [B] | None) -> (state, hidden [B, d])

Stepping through a history item by item ends with the hidden state `forward` gives at its newest position. A
backbone whose `step` has no Python control flow on values may set `traceable_step = True`: inference then runs it
as a TorchScript trace (`lightning_seqrec.modules.traced_step`).

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

from torch import nn

from lightning_seqrec.registry import PLUGINS_ENV, Registry

BACKBONES = Registry("backbone", "lightning_seqrec.backbones")
_BACKBONES: dict[str, type[nn.Module]] = BACKBONES.classes

__all__ = ["BACKBONES", "PLUGINS_ENV", "create_backbone", "get_backbone", "list_backbones", "register_backbone"]


def parameter_versions(module: nn.Module) -> tuple:
    """A key that changes whenever a parameter of `module` is updated in place (optimiser step, load) or replaced:
    what caches of values computed from the parameters compare. It walks `_parameters` and `_modules` itself: a
    third of the cost of `module.parameters()`, and a per-event inference step checks it on every call."""
    return tuple(_versions(module, []))


def _versions(module: nn.Module, out: list) -> list:
    for p in module._parameters.values():
        if p is not None:
            out += (p._version, p.data_ptr())
    for child in module._modules.values():
        if child is not None:
            _versions(child, out)
    return out


def register_backbone(name: str):
    """Class decorator: make a backbone constructible by `name`."""
    return BACKBONES.register(name)


def list_backbones() -> list[str]:
    return BACKBONES.names()


def get_backbone(name: str) -> type[nn.Module]:
    return BACKBONES.get(name)


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered backbone; a wrong argument names the ones it accepts."""
    return BACKBONES.create(name, **kwargs)
