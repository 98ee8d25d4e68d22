"""Helpers shared by the benchmark scripts: where the shared datasets are, and writing results."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def use_shared_data() -> Path:
    """Point SEQREC_DATA_DIR at ../shared/data unless it is already set; fail clearly when absent."""
    path = Path(os.environ.setdefault("SEQREC_DATA_DIR", str(REPO.parent / "shared" / "data")))
    if not path.is_dir():
        raise SystemExit(f"Datasets folder {path} not found: set SEQREC_DATA_DIR to a folder like ../shared/data.")
    return path


def machine() -> dict:
    return {
        "cpu_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def status_mb(field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak) of this process in MB, from /proc/self/status (Linux).

    VmHWM starts fresh at exec; `ru_maxrss` would include the parent's memory at fork time.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return status_mb("VmHWM")


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path
