"""RankingEvaluator synced over 2 gloo processes equals the single-process result over all users."""

from __future__ import annotations

import math
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_seqrec.metrics import RankingEvaluator

NUM_ITEMS, KS = 12, (1, 3, 5, 20)  # 20 > catalog size
SHARDS = ((0, 5), (5, 9))  # unequal shards: 5 users on rank 0, 4 on rank 1
# Sums of integer counts are exact in any order; NDCG/MRR are float64 sums of irrational gains, whose
# rounding depends on the summation order (per shard then across ranks), so they get a 1e-12 tolerance.
FLOAT_SUM_METRICS = ("ndcg@", "mrr@")


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """9 users' scores (distinct, some -inf incl. a masked target), targets and training item counts."""
    gen = torch.Generator().manual_seed(7)
    scores = torch.stack([torch.randperm(NUM_ITEMS + 1, generator=gen) for _ in range(9)]).double()
    scores[torch.rand(scores.shape, generator=gen) < 0.25] = -math.inf
    scores[:, 0] = -math.inf
    target = torch.randint(1, NUM_ITEMS + 1, (9,), generator=gen)
    scores[torch.arange(9), target] = torch.arange(9, dtype=torch.float64) + 0.5  # unmasked and still distinct ...
    scores[3, target[3]] = -math.inf  # ... except user 3's target
    item_counts = torch.randint(0, 20, (NUM_ITEMS + 1,), generator=gen)
    return scores, target, item_counts


def _assert_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        tol = 1e-12 if name.startswith(FLOAT_SUM_METRICS) else 0.0
        torch.testing.assert_close(actual[name], value, rtol=tol, atol=0.0, equal_nan=True, msg=name)


def _worker(rank: int, port: int, expected: dict[str, torch.Tensor]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        scores, target, item_counts = _data()
        evaluator = RankingEvaluator(NUM_ITEMS, ks=KS, item_counts=item_counts)
        start, stop = SHARDS[rank]
        evaluator.update(scores[start:stop], target[start:stop])
        _assert_equal(evaluator.compute(), expected)

        # a rank that saw no users still joins the sync and contributes zeros
        evaluator.reset()
        if rank == 0:
            evaluator.update(scores, target)
        _assert_equal(evaluator.compute(), expected)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_sync_equals_single_process():
    scores, target, item_counts = _data()
    reference = RankingEvaluator(NUM_ITEMS, ks=KS, item_counts=item_counts)
    reference.update(scores, target)
    expected = reference.compute()
    assert expected["hr@20"].item() == 8 / 9  # the masked target is a miss even at k > catalog
    # fork on Linux: spawned children re-import the whole package (and Lightning), ~20 s on a small box;
    # the state sync under test is the same either way.
    start_method = "fork" if sys.platform == "linux" else "spawn"
    mp.start_processes(_worker, args=(_free_port(), expected), nprocs=2, join=True, start_method=start_method)
