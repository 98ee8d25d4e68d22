"""A registry of backbones by name, so configs and checkpoints can say `sasrec` instead of a class path.

Third-party packages add theirs with `register_backbone` or through the `lightning_seqrec.backbones`
entry-point group.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from torch import nn

from lightning_seqrec.errors import ConfigError

_BACKBONES: dict[str, type[nn.Module]] = {}


def register_backbone(name: str):
    """Class decorator: make a backbone constructible by `name`."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _BACKBONES and _BACKBONES[name] is not cls:
            raise ConfigError(f"Backbone name {name!r} is already taken by {_BACKBONES[name].__name__}.")
        _BACKBONES[name] = cls
        return cls

    return wrap


def _load_plugins() -> None:
    for ep in entry_points(group="lightning_seqrec.backbones"):
        if ep.name not in _BACKBONES:
            _BACKBONES[ep.name] = ep.load()


def list_backbones() -> list[str]:
    _load_plugins()
    return sorted(_BACKBONES)


def get_backbone(name: str) -> type[nn.Module]:
    if name not in _BACKBONES:
        _load_plugins()
    if name not in _BACKBONES:
        raise ConfigError(f"Unknown backbone {name!r}; registered backbones are {list_backbones()}.")
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
