"""Load benchmark of `seqrec serve` on loopback: requests per second, p50 / p99 latency and errors at 1, 8 and 32
concurrent clients, for the 12k-item zoo model (sasrec.ce-beauty) and a generated 1M-item catalog, with the server's
resident memory sampled over the run. Bounded: each level stops after its request count or its time cap, whichever
comes first, and the server is stopped at the end.

    python benchmarks/serve_load.py                       # both catalogs, writes benchmarks/results/serve_load.json
    python benchmarks/serve_load.py --catalogs 12k --requests 200
    python benchmarks/serve_load.py --catalogs 1M --index-1m ivf --out serve_load_1m_ivf
    python benchmarks/serve_load.py --catalogs 12k --model-12k generated   # no zoo build needed: same shape

`--model-12k generated` serves an untrained SASRec of the zoo model's shape (12,101 items, d = 64, 2 blocks,
max_len 50): latency depends on the shapes, not on the trained weights.

The clients share the 2 CPU cores with the server, so latencies include client time. They are lean on purpose: one
asyncio process, one keep-alive HTTP/1.1 connection per client, requests written as bytes and answers read by their
Content-Length (an httpx client cost 1.5 ms of CPU per request, as much as the server, and set the pace at 8
clients). Every answer's status is checked and its body parsed: a non-200 or an answer without k items is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    """A SASRec (d = 64, 2 blocks, max_len 50) over `num_items` generated items, saved as a Hub folder: the 1M-item
    case, and the 12k one without a zoo build."""
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


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, posting JSON and reading each answer by Content-Length."""

    def __init__(self, url: str):
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc):
        self.writer.close()
        await self.writer.wait_closed()

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """The status and parsed JSON answer of one request (`body` sent as JSON)."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        self.writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        answer = await self.reader.readexactly(int(fields["content-length"]))
        return int(lines[0].split()[1]), json.loads(answer)


async def load(url: str, clients: int, requests: int, make_body, rng: random.Random) -> dict:
    """`clients` concurrent loops sending `requests` POST /recommend in all (or until the time cap): latencies."""
    latencies, errors, sent = [], 0, 0
    deadline = time.monotonic() + TIME_CAP_S

    async def one_client():
        nonlocal errors, sent
        while sent < requests and time.monotonic() < deadline:
            async with Connection(url) as connection:  # a new connection after a failed request, whose state is unknown
                ok = True
                while ok and sent < requests and time.monotonic() < deadline:
                    sent += 1
                    body = make_body(rng)
                    start = time.perf_counter()
                    try:
                        status, answer = await asyncio.wait_for(connection.request("POST", "/recommend", body), 30)
                        ok = status == 200 and len(answer["items"]) == body["k"]
                    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, KeyError):
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


async def warm_up(url: str, make_body, rng: random.Random) -> dict:
    """The served model's description (GET /model), after 20 requests that allocate the inference buffers."""
    async with Connection(url) as connection:
        for _ in range(20):
            await connection.request("POST", "/recommend", make_body(rng))
        return (await connection.request("GET", "/model"))[1]


def run_catalog(name: str, model: str, raw_ids: list, requests: dict[int, int], extra: list[str]) -> dict:
    rng = random.Random(0)

    def make_body(rng: random.Random) -> dict:
        return {"history": rng.sample(raw_ids, rng.randint(1, 50)), "k": 10}

    started = time.perf_counter()
    server = Server(model, extra)
    pid = server.process.pid
    try:
        startup_s = time.perf_counter() - started
        info = asyncio.run(warm_up(server.url, make_body, rng))
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
    parser.add_argument("--model-12k", default="sasrec.ce-beauty", help="zoo model, or 'generated' (same shape)")
    parser.add_argument("--index-1m", default="flat", help="index kind for the 1M catalog (flat | hnsw | ivf)")
    parser.add_argument("--out", default="serve_load", help="results name: benchmarks/results/<out>.json")
    args = parser.parse_args()
    results = []
    for name in args.catalogs:
        if name == "12k" and args.model_12k == "generated":
            folder = Path(tempfile.mkdtemp(prefix="serve-load-12k-")) / "model"
            model, extra = generated_catalog(folder, 12_101), []
            raw_ids = list(range(1, 12_102))
            requests = {1: 500, 8: 2000, 32: 3000}
        elif name == "12k":
            from lightning_seqrec import hub

            model, extra = args.model_12k, []
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
