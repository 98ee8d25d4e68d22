"""The package's imports, read from its source: no cycles, and none against the layering the README writes down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "lightning_seqrec"
ROOTS = {PACKAGE: REPO / "lightning_seqrec", f"{PACKAGE}.callbacks": REPO / "callbacks"}

LOW_ROOMS = (
    "errors",
    "version",
    "batch",
    "integrity",
    "registry",
    "inputs",
    "backbones",
    "data",
    "metrics",
    "objectives",
    "optim",
)
"""Rooms below the LightningModule: they may not import the module, the loaders or anything above them."""
UPPER = ("modules", "checkpoint", "hub", "finetune", "zoo", "run", "retrieval", "embeddings", "cli", "callbacks")
UPPER += ("explain", "federated")
UPPER += ("serve", "export", "external_eval")
LIGHTNING_FREE = ("backbones", "inputs", "data", "metrics", "batch")
"""Rooms that must not even name the LightningModule."""


def module_files() -> dict[str, Path]:
    """Every module of the package (callbacks included, as installed), by dotted name."""
    modules = {}
    for prefix, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((prefix, *parts))] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports, anywhere in its file (a lazy import inside a function counts too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: the package, less one level per extra dot
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = submodules if len(submodules) == len(node.names) else [*submodules, base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def room(module: str) -> str:
    """The top-level room of a module: `lightning_seqrec.data.vocab` -> `data`; the package face is ``."""
    return module.removeprefix(PACKAGE).lstrip(".").split(".")[0]


def test_the_walk_sees_the_package(graph):
    assert {f"{PACKAGE}.cli", f"{PACKAGE}.modules.seqrec", f"{PACKAGE}.callbacks.diversity_metrics"} <= set(graph)
    assert f"{PACKAGE}.modules" in graph[f"{PACKAGE}.checkpoint"]


def test_no_import_cycles(graph):
    """Depth-first search for a back edge; the package face (`lightning_seqrec/__init__.py`) re-exports from below
    and nothing inside the package may import it."""
    importers_of_face = sorted(name for name, deps in graph.items() if PACKAGE in deps)
    assert not importers_of_face, f"modules import the package face: {importers_of_face}"
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep] if dep in path else [node, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_imports_follow_the_layering(graph):
    offences = []
    for name, deps in graph.items():
        for dep in deps:
            if dep == PACKAGE:
                continue
            if room(dep) == "cli":
                offences.append(f"{name} imports the CLI")
            if room(name) in LOW_ROOMS and room(dep) in UPPER:
                offences.append(f"{name} ({room(name)}) imports {dep} ({room(dep)}), a room above it")
            if room(name) == "metrics" and room(dep) not in ("metrics", "errors"):
                offences.append(f"{name}: metrics stand alone, but it imports {dep}")
    assert not offences, "\n".join(sorted(offences))


def test_backbones_and_data_know_no_lightning_module():
    offences = []
    for name, path in module_files().items():
        if room(name) in LIGHTNING_FREE and "LightningModule" in path.read_text("utf-8"):
            offences.append(name)
    assert not offences, f"these know the LightningModule: {offences}"
