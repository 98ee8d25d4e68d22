"""Small XMRec-format markets and a composed `seqrec federated` config for the federated tests."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np

from lightning_seqrec import run

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

MARKETS = ("aa", "bb")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_markets(folder: Path, users: int = 24, seed: int = 0) -> Path:
    """Two markets walking item cycles: items i1..i12 are sold in both, each market has 6 items of its own."""
    rng = np.random.default_rng(seed)
    catalogs = {
        "aa": [f"i{k}" for k in range(1, 19)],
        "bb": [f"i{k}" for k in range(1, 13)] + [f"b{k}" for k in range(6)],
    }
    folder.mkdir(parents=True, exist_ok=True)
    for market, items in catalogs.items():
        lines = ["userId itemId rate date"]
        for user in range(users):
            start, length = rng.integers(len(items)), rng.integers(7, 11)
            for t in range(length):
                lines.append(f"u{user} {items[(start + t) % len(items)]} 5.0 2020-01-{t + 1:02d}")
        (folder / f"{market}_5core.txt").write_text("\n".join(lines) + "\n")
    return folder


def federated_config(data: Path, output: Path, *overrides: str):
    """A tiny `seqrec federated` config on the markets in `data`, on the in-process grid, resolved in `output`."""
    cfg = run.compose(
        "federated",
        [
            f"data.path={data}",
            f"data.markets=[{','.join(MARKETS)}]",
            "data.max_len=8",
            "data.batch_size=16",
            "model.embedding_dim=16",
            "model.num_blocks=1",
            "model.eval_ks=[5,10]",
            "trainer.accelerator=cpu",
            "federation.engine=local",
            "federation.num_rounds=2",
            f"hydra.run.dir={output}",
            *overrides,
        ],
    )
    return cfg
