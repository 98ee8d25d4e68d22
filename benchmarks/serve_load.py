"""Load benchmark of `seqrec serve` on loopback: requests per second, p50 / p99 latency and errors at 1, 8 and 32
concurrent clients, for the 12k-item zoo model (sasrec.ce-beauty) and a generated 1M-item catalog, with the server's
resident memory sampled over the run. Bounded: each level stops after its request count or its time cap, whichever
comes first, and the server is stopped at the end.

    python benchmarks/serve_load.py                       # both catalogs, writes benchmarks/results/serve_load.json
    python benchmarks/serve_load.py --catalogs 12k --requests 200
    python benchmarks/serve_load.py --catalogs 1M --index-1m ivf --out serve_load_1m_ivf

The clients (asyncio + httpx, one process) share the 2 CPU cores with the server, so latencies include client time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from _common import REPO, write_json

from lightning_seqrec import SeqRecModule
from lightning_seqrec.data.vocab import ItemVocab
from lightning_seqrec.hub import save_pretrained

LEVELS = (1, 8, 32)
TIME_CAP_S = 60.0
START_TIMEOUT_S = 300.0


def generated_catalog(folder: Path, num_items: int) -> str:
    """A SASRec (d = 64, max_len 50) over `num_items` generated items, saved as a Hub folder: the 1M-item case."""
    torch.manual_seed(0)
    module = SeqRecModule(num_items, backbone="sasrec", backbone_kwargs={"embedding_dim": 64, "max_len": 50})
    module.vocab = ItemVocab(list(range(1, num_items + 1)))
    save_pretrained(module, folder)
    return f"local-dir:{folder}"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (/proc/PID/stat, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`seqrec serve` in a subprocess on 127.0.0.1 (a free port), started and stopped within bounded waits."""

    def __init__(self, model: str, extra: list[str]):
        command = [sys.executable, "-m", "lightning_seqrec.cli", "serve", f"model={model}", "port=0", *extra]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.process.stdout], daemon=True).start()
        deadline, line = time.monotonic() + START_TIMEOUT_S, ""
        while not line.startswith("serving "):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                self.stop()
                raise SystemExit(f"the server did not start: {line}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
        self.url = line.split(" on ")[1].strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


async def load(url: str, clients: int, requests: int, make_body, rng: random.Random) -> dict:
    """`clients` concurrent loops sending `requests` POST /recommend in all (or until the time cap): latencies."""
    latencies, errors, sent = [], 0, 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    deadline = time.monotonic() + TIME_CAP_S
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one_client():
            nonlocal errors, sent
            while sent < requests and time.monotonic() < deadline:
                sent += 1
                body = make_body(rng)
                start = time.perf_counter()
                try:
                    answer = await client.post("/recommend", json=body)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "wall_s": wall,
    }


def run_catalog(name: str, model: str, raw_ids: list, requests: dict[int, int], extra: list[str]) -> dict:
    rng = random.Random(0)

    def make_body(rng: random.Random) -> dict:
        return {"history": rng.sample(raw_ids, rng.randint(1, 50)), "k": 10}

    started = time.perf_counter()
    server = Server(model, extra)
    pid = server.process.pid
    try:
        startup_s = time.perf_counter() - started
        with httpx.Client(base_url=server.url, timeout=30) as client:
            info = client.get("/model").json()
            for _ in range(20):  # warm-up: first calls allocate the inference buffers
                client.post("/recommend", json=make_body(rng))
        memory = [rss_mb(pid)]
        rows = []
        for clients in LEVELS:
            cpu_before, client_before = cpu_s(pid), time.process_time()
            row = asyncio.run(load(server.url, clients, requests[clients], make_body, rng))
            done = max(row["requests"], 1)
            row["server_cpu_ms_per_request"] = (cpu_s(pid) - cpu_before) * 1000 / done
            row["client_cpu_ms_per_request"] = (time.process_time() - client_before) * 1000 / done
            memory.append(rss_mb(pid))
            row["rss_mb_after"] = memory[-1]
            rows.append(row)
            print(
                f"{name:>4} {clients:>3} clients: {row['requests']:>5} requests, {row['errors']} errors, "
                f"{row['rps']:7.1f} rps, p50 {row['p50_ms']:6.1f} ms, p99 {row['p99_ms']:6.1f} ms, "
                f"CPU ms/request server {row['server_cpu_ms_per_request']:.1f} client "
                f"{row['client_cpu_ms_per_request']:.1f}, RSS {row['rss_mb_after']:.0f} MB",
                flush=True,
            )
    finally:
        server.stop()
    return {
        "catalog": name,
        "model": model,
        "num_items": info["num_items"],
        "index": info["index"],
        "startup_s": startup_s,
        "rss_mb_after_warmup": memory[0],
        "rss_mb_samples": memory,
        "rss_growth_mb": memory[-1] - memory[0],
        "levels": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", nargs="+", default=["12k", "1M"], choices=["12k", "1M"])
    parser.add_argument("--requests", type=int, default=None, help="requests per level (default: by level)")
    parser.add_argument("--index-1m", default="flat", help="index kind for the 1M catalog (flat | hnsw | ivf)")
    parser.add_argument("--out", default="serve_load", help="results name: benchmarks/results/<out>.json")
    args = parser.parse_args()
    results = []
    for name in args.catalogs:
        if name == "12k":
            from lightning_seqrec import hub

            model, extra = "sasrec.ce-beauty", []
            raw_ids = hub.load(model).vocab.raw_ids
            requests = {1: 500, 8: 2000, 32: 3000}
        else:
            folder = Path(tempfile.mkdtemp(prefix="serve-load-1m-")) / "model"
            model, extra = generated_catalog(folder, 1_000_000), [f"index={args.index_1m}", "limits.timeout_s=10"]
            raw_ids = list(range(1, 1_000_001))
            requests = {1: 100, 8: 400, 32: 800}
        if args.requests:
            requests = dict.fromkeys(LEVELS, args.requests)
        results.append(run_catalog(name, model, raw_ids, requests, extra))
    command = "python " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(REPO)), *sys.argv[1:]])
    path = write_json(args.out, {"command": command, "time_cap_s": TIME_CAP_S, "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
