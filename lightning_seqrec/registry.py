"""Named registries of components (backbones, input encoders), so configs and checkpoints say a name, never a path.

A name is looked up, never imported: the classes come from modules the process imported itself, from modules named
in `SEQREC_PLUGINS` (comma-separated, imported the first time a name is not found) or from entry points of the
registry's group. Both routes are chosen by whoever installs packages or sets the environment, never by a file.
"""

from __future__ import annotations

import importlib
import inspect
import os
from importlib.metadata import entry_points

from lightning_seqrec.errors import ConfigError

PLUGINS_ENV = "SEQREC_PLUGINS"
"""Environment variable naming modules to import (comma-separated) that register components."""

_imported_plugins: set[str] = set()


def import_plugins() -> None:
    """Import the modules `SEQREC_PLUGINS` names that are not imported yet."""
    for module in os.environ.get(PLUGINS_ENV, "").split(","):
        module = module.strip()
        if module and module not in _imported_plugins:
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise ConfigError(f"{PLUGINS_ENV} names module {module!r}, which cannot be imported: {err}") from err
            _imported_plugins.add(module)


class Registry:
    """Classes of one kind by name, with the entry-point group `group` as a second plugin route."""

    def __init__(self, kind: str, group: str):
        self.kind, self.group = kind, group
        self.classes: dict[str, type] = {}

    def register(self, name: str):
        """Class decorator: make a class constructible by `name`."""
        self.check_name(name)

        def wrap(cls: type) -> type:
            if name in self.classes and self.classes[name] is not cls:
                raise ConfigError(
                    f"{self.kind.capitalize()} name {name!r} is already taken by {self.classes[name].__name__}."
                )
            self.classes[name] = cls
            return cls

        return wrap

    def check_name(self, name) -> None:
        if isinstance(name, str) and ":" in name:
            raise ConfigError(
                f"{self.kind.capitalize()} name {name!r} is not a registered name: {self.kind}s are named, never "
                f"imported from a path; register the class in a module listed in {PLUGINS_ENV} (or an installed "
                f"package's {self.group} entry point) and use its name."
            )

    def load_plugins(self) -> None:
        import_plugins()
        for ep in entry_points(group=self.group):
            if ep.name not in self.classes:
                self.classes[ep.name] = ep.load()

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self.classes)

    def get(self, name: str) -> type:
        self.check_name(name)
        if name not in self.classes:
            self.load_plugins()
        if name not in self.classes:
            raise ConfigError(
                f"Unknown {self.kind} {name!r}; registered {self.kind}s are {self.names()}. One of your own is found "
                f"through the module that registers it, named in {PLUGINS_ENV}=<module>."
            )
        return self.classes[name]

    def create(self, name: str, **kwargs):
        """An instance of the class registered as `name`; a wrong argument names the ones it accepts."""
        cls = self.get(name)
        try:
            return cls(**kwargs)
        except TypeError as err:
            accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
            raise ConfigError(
                f"{self.kind.capitalize()} {name!r} rejected its arguments ({err}); it accepts {accepted}."
            ) from err
