"""The mmap-threshold fix that keeps a training process's RSS near what it holds (measured in benchmarks/)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from lightning_seqrec.callbacks import ReturnFreedMemory

from lightning_seqrec.memory import fix_mmap_threshold

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc")

# a child process: repeatedly allocates and frees float buffers of changing size (as length-trimmed batches do)
# and prints its RSS growth in MB
CHURN = """
import sys, torch
from lightning_seqrec.memory import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
start, keep = rss(), []
for step in range(300):
    big = torch.ones(2_000_000 + 37_000 * (step % 50))  # 8-15 MB, touched, freed at once
    keep.append(torch.ones(1_000 + step))  # small blocks that stay, between the big ones
    del big
print(rss() - start)
"""


@glibc_only
def test_fixed_threshold_is_set_by_the_callback_and_a_user_choice_is_respected(monkeypatch):
    callback = ReturnFreedMemory()
    callback.on_fit_start(None, None)
    assert callback.applied and fix_mmap_threshold() is True
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "33554432")
    assert fix_mmap_threshold() is False


@glibc_only
def test_freed_buffers_of_changing_size_are_given_back_to_the_os():
    def growth(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    fixed, dynamic = growth("fixed"), growth("dynamic")
    assert fixed < 5  # MB: only the small blocks stay
    assert dynamic > fixed + 10  # glibc's default keeps the freed buffers' pages: the churn does fragment
