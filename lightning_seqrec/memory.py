"""Keep a training process's resident memory close to what it holds.

Length-trimmed batches change shape every step, and glibc's malloc raises its mmap threshold each time a large
buffer is freed, so later step buffers come from the heap, which fragments and is never given back: on Beauty a
SASRec process grew from 0.7 to 1.4 GB of RSS while holding under 0.1 GB of tensors per step. Fixing the threshold
serves every buffer of 128 KiB or more by mmap, returned to the OS when freed, at the price of faulting those
pages in afresh every step (60 % more step time there): it is opt-in, through the `ReturnFreedMemory` callback.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)
DEFAULT_THRESHOLD = 128 * 1024


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Set glibc's mmap threshold to `threshold` bytes (which also stops its dynamic growth); True if it was set.

    Does nothing off Linux/glibc, or when the user chose one through the `MALLOC_MMAP_THRESHOLD_` environment
    variable (set `MALLOC_MMAP_THRESHOLD_=33554432` to keep glibc's largest static value instead).
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl)
        return False
    return libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1
