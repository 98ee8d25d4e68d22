"""`ReturnFreedMemory`: trade step time for resident memory on Linux/glibc (see `lightning_seqrec.memory`)."""

from __future__ import annotations

import lightning as L

from lightning_seqrec.memory import DEFAULT_THRESHOLD, fix_mmap_threshold


class ReturnFreedMemory(L.Callback):
    """At fit start, fixes glibc's mmap threshold at `threshold` bytes, so every step buffer at least that large is
    given back to the OS when freed instead of staying in a fragmented heap.

    Measured on Beauty (SASRec, batch 256 prefixes, one thread): peak RSS 1.26 -> 0.98 GB, and 60 % more time per
    step, since each step's buffers are faulted in afresh. Use it where memory is the limit, not by default.
    """

    def __init__(self, threshold: int = DEFAULT_THRESHOLD):
        self.threshold = threshold
        self.applied = False

    def on_fit_start(self, trainer, pl_module) -> None:
        self.applied = fix_mmap_threshold(self.threshold)
