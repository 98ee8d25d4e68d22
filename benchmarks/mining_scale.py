"""Time and peak memory of weak-positive mining (RCL) for 10k, 50k and 150k training windows.

10k: a random subset of Amazon Beauty's training windows; 50k: Beauty + Sports windows (item ids kept apart);
150k: a generated Beauty-like set (Beauty's sequence lengths and item popularity over 5 copies of its catalog,
with a Markov successor per item so that bigrams recur). Each (size, method) mines in a fresh process, so peak
memory is that process's own; "mining MB" is the peak resident memory while mining minus the resident memory just
before (Linux: the peak counter is reset through /proc/self/clear_refs), i.e. what mining itself adds.

    python benchmarks/mining_scale.py [--sizes 10k 50k 150k] [--methods ngram tfidf embedding]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import status_mb, use_shared_data, write_json

SIZES = {"10k": 10_000, "50k": 50_000, "150k": 150_000}
METHODS = ("ngram", "tfidf", "embedding")


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter of this process so VmHWM measures from now on."""
    Path("/proc/self/clear_refs").write_text("5")


def windows_of(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Input sequences `[N, 50]` and targets `[N]` of a dataset's training windows (leave-one-out split)."""
    from lightning_seqrec.data import SeqRecDataModule

    dm = SeqRecDataModule(dataset, max_len=50)
    dm.setup()
    return dm.train_tensors["item_seq"].numpy(), dm.train_tensors["target_seq"][:, -1].numpy()


def generated(size: int, beauty: tuple[np.ndarray, np.ndarray], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`size` Beauty-like windows: Beauty's lengths and popularity over 5 catalog copies, Markov successors."""
    item_seq, _ = beauty
    rng = np.random.default_rng(seed)
    counts = np.bincount(item_seq[item_seq > 0]).astype(np.float64)
    probs = np.tile(counts, 5) / (5 * counts.sum())  # id i: copy i // len(counts) of item i % len(counts); 0 unused
    num_items = len(probs)
    successor = rng.choice(num_items, num_items, p=probs)
    lengths = rng.choice((item_seq > 0).sum(1), size)
    width = item_seq.shape[1]
    steps = np.zeros((size, width + 1), dtype=np.int64)
    steps[:, 0] = rng.choice(num_items, size, p=probs)
    for t in range(1, width + 1):
        follow = rng.random(size) < 0.3
        steps[:, t] = np.where(follow, successor[steps[:, t - 1]], rng.choice(num_items, size, p=probs))
    out = np.zeros((size, width), dtype=np.int64)
    columns = np.arange(width)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        out[np.ix_(rows, columns[width - length :])] = steps[rows, :length]
    return out, steps[np.arange(size), lengths]


def prepare(sizes: list[str], folder: Path) -> dict[str, dict]:
    """Write each size's arrays to `folder/<size>.npz`; returns how each set was made."""
    use_shared_data()
    rng = np.random.default_rng(0)
    beauty = windows_of("beauty")
    made = {}
    for name in sizes:
        size = SIZES[name]
        if size <= len(beauty[0]):
            pick = np.sort(rng.choice(len(beauty[0]), size, replace=False))
            item_seq, targets, source = beauty[0][pick], beauty[1][pick], "beauty"
        elif name == "50k":
            sports = windows_of("sports")
            offset = int(beauty[0].max())
            shifted = np.where(sports[0] > 0, sports[0] + offset, 0)
            item_seq = np.concatenate([beauty[0], shifted])
            targets = np.concatenate([beauty[1], sports[1] + offset])
            pick = np.sort(rng.choice(len(item_seq), size, replace=False))
            item_seq, targets, source = item_seq[pick], targets[pick], "beauty+sports"
        else:
            item_seq, targets = generated(size, beauty)
            source = "generated (Beauty-like)"
        np.savez(folder / f"{name}.npz", item_seq=item_seq, targets=targets)
        made[name] = {"windows": size, "source": source, "items": int(len(np.unique(item_seq[item_seq > 0])))}
    return made


def child(path: str, method: str, alpha: float, max_neighbours: int, block_size: int) -> dict:
    """Mine one set with one method in this process; prints and returns timings and memory."""
    import math

    import torch

    from lightning_seqrec.objectives.positives import EmbeddingCosine, NgramJaccard, TfidfCosine, mine_weak_positives

    arrays = np.load(path)
    item_seq, targets = arrays["item_seq"], arrays["targets"]
    k = min(math.ceil(alpha * len(targets)), max_neighbours)
    module = None
    if method == "embedding":
        from lightning_seqrec import SASRec

        module = SASRec(int(item_seq.max()), embedding_dim=64, max_len=item_seq.shape[1], num_blocks=2, num_heads=2)
    reset_peak()
    base_mb = status_mb("VmRSS")
    start = time.perf_counter()
    if method == "ngram":
        similarity = NgramJaccard(item_seq, 2)
    elif method == "tfidf":
        similarity = TfidfCosine(item_seq, 2)
    else:
        from lightning_seqrec.callbacks import WeakPositiveMiner

        windows = {"item_seq": torch.from_numpy(item_seq)}
        similarity = EmbeddingCosine(WeakPositiveMiner().encode(module, windows, np.arange(len(targets))))
    prepared = time.perf_counter()
    table = mine_weak_positives(similarity, targets, np.arange(len(targets)), k, block_size)
    done = time.perf_counter()
    return {
        "method": method,
        "k": k,
        "features_or_encode_s": round(prepared - start, 2),
        "top_k_s": round(done - prepared, 2),
        "total_s": round(done - start, 2),
        "peak_rss_mb": round(status_mb("VmHWM"), 1),
        "mining_mb": round(status_mb("VmHWM") - base_mb, 1),
        "coverage": round(float((table.lengths > 0).mean()), 4),
        "mean_neighbours": round(float(table.lengths.mean()), 1),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--max-neighbours", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--child", nargs=2, metavar=("NPZ", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.alpha, args.max_neighbours, args.block_size)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        made = prepare(args.sizes, Path(tmp))
        print(
            f"{'windows':>8} {'source':<24} {'method':<10} {'k':>4} {'total s':>8} {'top-k s':>8} "
            f"{'peak MB':>8} {'mining MB':>9} {'coverage':>8} {'mean nb':>8}"
        )
        for name in args.sizes:
            for method in args.methods:
                command = [sys.executable, __file__, "--child", str(Path(tmp) / f"{name}.npz"), method]
                command += ["--alpha", str(args.alpha), "--max-neighbours", str(args.max_neighbours)]
                command += ["--block-size", str(args.block_size)]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
                row = {**made[name], **json.loads(out)}
                rows.append(row)
                print(
                    f"{row['windows']:>8} {row['source']:<24} {method:<10} {row['k']:>4} {row['total_s']:>8.1f} "
                    f"{row['top_k_s']:>8.1f} {row['peak_rss_mb']:>8.0f} {row['mining_mb']:>9.0f} "
                    f"{row['coverage']:>8.1%} {row['mean_neighbours']:>8.1f}",
                    flush=True,
                )
    settings = {"alpha": args.alpha, "max_neighbours": args.max_neighbours, "block_size": args.block_size, "n": 2}
    path = write_json("mining_scale", {"settings": settings, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
