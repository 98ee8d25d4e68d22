"""Offline W&B for tests: an environment that keeps W&B's files in a folder, and a reader of an offline run's
`.wandb` file (a LevelDB-style log of wandb's own protobuf `Record`s), which holds its config, history and
summary (offline runs write no config.yaml or wandb-summary.json)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2


def offline_env(folder: Path) -> dict[str, str]:
    """Offline W&B whose caches and staged artifact files stay in `folder`."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    wandb_dirs = {f"WANDB_{name}_DIR": str(folder / name.lower()) for name in ("DATA", "CACHE", "CONFIG")}
    return {**keep, **wandb_dirs, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def wandb_records(run_folder: Path) -> list:
    """The records of an offline run's `.wandb` file (a LevelDB-style log of wandb's own protobuf `Record`s)."""
    data = next(run_folder.glob("*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    position, block, pending, records = 7, 32768, b"", []
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):  # a block's zero padding
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def updates(records: list, kind: str) -> list[dict]:
    """Each `config` / `summary` / `history` record as {key: value}."""
    found = []
    for record in records:
        if record.WhichOneof("record_type") == kind:
            items = record.history.item if kind == "history" else getattr(record, kind).update
            found.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in items})
    return found
