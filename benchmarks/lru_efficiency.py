"""LRU efficiency against SASRec: the per-event cost of updating a user's next-item scores (LRU: one recurrent
`step` on the stored state; SASRec: re-encoding the whole history), and training time per epoch and peak memory.

    python benchmarks/lru_efficiency.py [--lengths 50 200 1000] [--datasets ml-latest-small beauty] [--threads 1]

Latency: models of 64 dims and 2 layers over a 10,000-item catalog, eval mode, no gradients, for one user and for
64 users whose events arrive together. The LRU step is the library's (`SeqRecModule.step_hidden`: a TorchScript
trace, `TracedStep`), beside the eager step; SASRec's re-encoding is eager (what `score` runs) and traced (its
TorchScript export graph), so both like-for-like ratios are there. Each figure is the median of `--repeats` timed
calls after warm-up, for the encoder alone and with the scores over the whole catalog (the same matmul on both
sides). Training: one epoch of each model with
full CE, in a fresh process per model so peak resident memory (VmHWM) does not mix.
Writes benchmarks/results/lru_efficiency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from _common import REPO, use_shared_data, write_json

from lightning_seqrec import LRURec, SASRec
from lightning_seqrec.batch import inference_batch
from lightning_seqrec.export import EncoderGraph
from lightning_seqrec.modules.traced_step import traced_step

CATALOG = 10_000


def median_seconds(call, repeats: int) -> float:
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def event_latency(length: int, users: int, repeats: int) -> dict:
    """Milliseconds per new event of `users` users at once, at history `length`: SASRec re-encodes each user's
    newest `length` items, LRU steps each stored state once; with and without scoring the whole catalog."""
    torch.manual_seed(0)
    histories = torch.randint(1, CATALOG + 1, (users, length))
    sasrec = SASRec(CATALOG, embedding_dim=64, max_len=length, num_blocks=2, num_heads=2).eval()
    lru = LRURec(CATALOG, embedding_dim=64, max_len=length, num_layers=2).eval()
    batch = inference_batch(list(histories.numpy()), length)
    state = lru.backbone.init_state(users)
    for t in range(length):  # the users' stored states after their histories
        state, _ = lru.backbone.step(state, lru.item_embedding(histories[:, t]))
    new_items = lru.item_embedding(histories[:, -1])
    sasrec._jit_is_scripting = True  # Lightning's flag: no trainer lookups while tracing (as export.py does)
    sasrec_traced = torch.jit.trace(EncoderGraph(sasrec), (batch["item_seq"],), check_trace=False)
    sasrec._jit_is_scripting = False
    timings = {
        "sasrec_reencode": lambda: sasrec(batch)["hidden"][:, -1],
        "sasrec_reencode_traced": lambda: sasrec_traced(batch["item_seq"]),
        "sasrec_reencode_scored": lambda: sasrec.score(batch),
        "lru_step": lambda: traced_step(lru.backbone, state, new_items, None)[1],
        "lru_step_eager": lambda: lru.backbone.step(state, new_items)[1],
        "lru_step_scored": lambda: lru.score_hidden(traced_step(lru.backbone, state, new_items, None)[1]),
        "lru_reencode_scored": lambda: lru.score(batch),
    }
    row = {"history_length": length, "users": users}
    row.update({f"{name}_ms": round(1000 * median_seconds(call, repeats), 3) for name, call in timings.items()})
    row["speedup_encoder"] = round(row["sasrec_reencode_ms"] / row["lru_step_ms"], 1)
    row["speedup_encoder_both_traced"] = round(row["sasrec_reencode_traced_ms"] / row["lru_step_ms"], 1)
    row["speedup_encoder_both_eager"] = round(row["sasrec_reencode_ms"] / row["lru_step_eager_ms"], 1)
    row["speedup_scored"] = round(row["sasrec_reencode_scored_ms"] / row["lru_step_scored_ms"], 1)
    return row


TRAIN_CHILD = """
import json, sys, time
sys.path.insert(0, 'benchmarks')
import torch, lightning as L
from _common import peak_rss_mb
from _fit import EpochTrace
from lightning_seqrec import LRURec, SASRec
from lightning_seqrec.data import SeqRecDataModule
name, model, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
L.seed_everything(0)
dm = SeqRecDataModule(name)
dm.setup('fit')
cls = {'sasrec': SASRec, 'lru': LRURec}[model]
kwargs = {'num_blocks': 2, 'num_heads': 2} if model == 'sasrec' else {'num_layers': 2}
module = cls(dm.num_items, embedding_dim=64, max_len=dm.max_len, **kwargs)
trace = EpochTrace(model)
trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, callbacks=[trace], limit_val_batches=0)
trainer.fit(module, dm)
print(json.dumps({'epoch_seconds': trace.epoch_seconds[0], 'peak_rss_mb': peak_rss_mb(),
                  'parameters': sum(p.numel() for p in module.parameters()), 'max_len': dm.max_len,
                  'windows': len(dm.train_tensors['item_seq'])}))
"""


def train_cost(dataset: str, model: str, threads: int) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", TRAIN_CHILD, dataset, model, str(threads)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise SystemExit(f"training {model} on {dataset} failed:\n{run.stderr[-2000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    return {"dataset": dataset, "model": model, **rounded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 64], help="users whose events arrive at once")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--datasets", nargs="+", default=["ml-latest-small", "beauty"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    use_shared_data()
    torch.set_num_threads(args.threads)
    latency = []
    print(
        "| history | users | SASRec re-encode ms (traced) | LRU step ms (eager) | speed-up (both traced, both eager) "
        "| with scoring: SASRec | LRU | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for users in args.users:
        for length in args.lengths:
            r = event_latency(length, users, args.repeats)
            latency.append(r)
            print(
                f"| {length} | {users} | {r['sasrec_reencode_ms']} ({r['sasrec_reencode_traced_ms']}) | "
                f"{r['lru_step_ms']} ({r['lru_step_eager_ms']}) | {r['speedup_encoder']}x "
                f"({r['speedup_encoder_both_traced']}x, {r['speedup_encoder_both_eager']}x) "
                f"| {r['sasrec_reencode_scored_ms']} | {r['lru_step_scored_ms']} | {r['speedup_scored']}x |",
                flush=True,
            )
    training = []
    print("\n| dataset | model | s / epoch | peak MB | parameters |\n|---|---|---|---|---|")
    for dataset in args.datasets:
        for model in ("sasrec", "lru"):
            row = train_cost(dataset, model, args.threads)
            training.append(row)
            print(f"| {dataset} | {model} | {row['epoch_seconds']} | {row['peak_rss_mb']} | {row['parameters']} |")
    command = "python benchmarks/lru_efficiency.py " + " ".join(sys.argv[1:])
    path = write_json("lru_efficiency", {"command": command, "latency": latency, "training": training})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
