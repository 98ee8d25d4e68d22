"""Every shipped config composes, and every `_target_` it names can be imported. configs/sweep holds W&B sweep
specifications (search spaces and commands), not options of a config group; tests/test_sweeps.py checks those."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import get_object
from omegaconf import OmegaConf

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NOT_GROUPS = ("__pycache__", "sweep")
GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(p for p in CONFIGS.iterdir() if p.is_dir() and p.name not in NOT_GROUPS)
    for option in sorted(group.glob("*.yaml"))
]


def targets(node) -> list[str]:
    """All `_target_` strings in a config tree, unresolved."""
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [t for value in node.values() for t in targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in targets(value)]
    return []


@pytest.mark.parametrize("group, option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_config_composes_and_targets_import(group, option):
    with initialize_config_module("lightning_seqrec.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"{group}={option}"])
    for name in targets(OmegaConf.to_container(cfg, resolve=False)):
        get_object(name)  # raises when the target cannot be imported
