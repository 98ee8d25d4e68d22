"""Speed and memory on this machine: SASRec training / full-ranking evaluation throughput on Beauty, and
peak memory of preparing Beauty and ML-1M (each in a fresh process so peaks do not mix).

    python benchmarks/speed.py [--steps 100] [--eval-users 5000] [--variants eager compile bf16 chunked]
    python benchmarks/speed.py --dataset ml-1m --steps 10 --eval-users 2000 --variants eager chunked --output speed_ml1m

`--variants` measures training throughput of the same model and batches run eagerly, with the backbone under
`torch.compile(dynamic=True)`, under bf16 autocast, and with the CE computed in chunks of 1024 positions (the same
loss without the positions x catalog logit buffer); the first variant is the one reported as `train`. Each variant
also reports the CPU and system seconds and the minor page faults per step: a buffer above glibc's largest heap size
(32 MiB) is mapped and faulted in afresh every step, which shows as system time. `--dataset ml-1m` measures the ML-1M
recipe's shape (200-item windows, every position a target, dropout 0.2) instead of Beauty's.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch
from _common import REPO, peak_rss_mb, use_shared_data, write_json

from lightning_seqrec import SASRec
from lightning_seqrec.data import AmazonBeauty, MovieLens1M

DATASETS = {"beauty": (AmazonBeauty, 50, 0.5), "ml-1m": (MovieLens1M, 200, 0.2)}
"""--dataset: its DataModule, max_len and dropout."""


def prepare_peak(dataset: str, max_len: int) -> dict:
    """Read + filter + split + tensorise one dataset in a child process; its peak RSS and wall time."""
    code = (
        "import sys, time; sys.path.insert(0, 'benchmarks'); from _common import peak_rss_mb;"
        "from lightning_seqrec.data import SeqRecDataModule;"
        "import_mb = peak_rss_mb(); t = time.perf_counter();"
        f"dm = SeqRecDataModule({dataset!r}, max_len={max_len}); dm.setup(); t = time.perf_counter() - t;"
        "print(t, import_mb, peak_rss_mb(), len(dm.interactions))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    out = run.stdout.split()
    seconds, import_mb, peak_mb, rows = float(out[0]), float(out[1]), float(out[2]), int(out[3])
    return {
        "dataset": dataset,
        "interactions": rows,
        "prepare_seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "peak_rss_above_imports_mb": round(peak_mb - import_mb, 1),
    }


def train_throughput(dm, module, steps: int, variant: str = "eager") -> dict:
    """Target positions per second over `steps` optimiser steps, after 5 warm-up steps (which include
    compilation for `variant="compile"`; shapes the warm-up did not see still recompile inside the timed steps)."""
    from lightning_seqrec.modules.seqrec import trim_padding

    torch.manual_seed(0)  # every variant sees the same batches
    if variant == "compile":
        module.backbone = torch.compile(module.backbone, dynamic=True)
    if variant == "chunked":
        module.objectives["ce"].chunk_size = 1024
    optimizer = module.configure_optimizers()
    module.train()
    loader = iter(dm.train_dataloader())
    positions, elapsed = 0, 0.0
    for step in range(steps + 5):
        batch = trim_padding(next(loader))
        if step == 5:
            before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            outputs = module(batch)
            loss = sum(o.weight * o(outputs, batch, module) for o in module.objectives.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 5:
            elapsed += time.perf_counter() - start
            positions += int((batch["target_seq"] > 0).sum())
    after = resource.getrusage(resource.RUSAGE_SELF)  # the loader's work between steps counts here too
    return {
        "variant": variant,
        "steps": steps,
        "target_positions": positions,
        "positions_per_second": round(positions / elapsed),
        "cpu_seconds_per_step": round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / steps, 3),
        "system_seconds_per_step": round((after.ru_stime - before.ru_stime) / steps, 3),
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) // steps,
    }


@torch.no_grad()
def eval_throughput(dm, module, max_users: int) -> dict:
    """Users per second for full ranking (score all items, mask seen, rank, top-K, all metrics)."""
    module.eval()
    evaluator = module.evaluators["test"]
    evaluator.reset()
    users, start = 0, time.perf_counter()
    for batch in dm.test_dataloader():
        evaluator.update(module.score(batch), batch["target"])
        users += len(batch["target"])
        if users >= max_users:
            break
    elapsed = time.perf_counter() - start
    return {"users": users, "users_per_second": round(users / elapsed), "catalog": dm.num_items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-users", type=int, default=22363)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--output", default="speed", help="results file name under benchmarks/results/")
    parser.add_argument("--variants", nargs="+", default=["eager"], choices=["eager", "compile", "bf16", "chunked"])
    parser.add_argument("--dataset", default="beauty", choices=sorted(DATASETS))
    args = parser.parse_args()
    use_shared_data()
    torch.manual_seed(0)
    data_class, max_len, dropout = DATASETS[args.dataset]
    dm = data_class(max_len=max_len, batch_size=args.batch_size, eval_batch_size=512)
    dm.setup()

    def fresh_model():
        torch.manual_seed(0)
        module = SASRec(dm.num_items, embedding_dim=64, max_len=max_len, num_blocks=2, num_heads=2, dropout=dropout)
        module.attach_data(dm)
        return module

    variants = [train_throughput(dm, fresh_model(), args.steps, variant) for variant in args.variants]
    train, module = variants[0], fresh_model()
    evaluation = eval_throughput(dm, module, args.eval_users)
    prep = [prepare_peak("beauty", 50), prepare_peak("ml-1m", 200)]
    print(
        f"SASRec on {args.dataset} (64 dims, 2 blocks, max_len {max_len}, batch {args.batch_size}, full CE), "
        f"{torch.get_num_threads()} threads"
    )
    for row in variants:
        print(
            f"  training ({row['variant']}): {row['positions_per_second']:>8} target positions / s "
            f"({row['steps']} steps; per step {row['cpu_seconds_per_step']} s CPU, "
            f"{row['system_seconds_per_step']} s system, {row['minor_faults_per_step']} page faults)"
        )
    print(f"  evaluation: {evaluation['users_per_second']:>8} users / s (full ranking over {dm.num_items} items)")
    for row in prep:
        print(
            f"  prepare {row['dataset']:<7} {row['interactions']:>9} interactions: {row['prepare_seconds']:>6.2f} s, "
            f"peak RSS {row['peak_rss_mb']:.0f} MB ({row['peak_rss_above_imports_mb']:.0f} MB above imports)"
        )
    path = write_json(
        args.output,
        {
            "command": " ".join(sys.argv),
            "args": vars(args),
            "train": train,
            "train_variants": variants,
            "eval": evaluation,
            "prepare": prep,
            "benchmark_peak_rss_mb": round(peak_rss_mb()),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
