"""Flower's deployment engine: a SuperLink and two SuperNodes on 127.0.0.1 as separate processes run one round of
the same ServerApp / ClientApp (`flwr run`), then are shut down."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import pytest
from federated_helpers import MARKETS, free_port  # sets FLWR_* before flwr loads

pytest.importorskip("flwr", reason="the deployment test needs the [federated] extra: pip install -e '.[federated]'")

from test_federated import federated_config, write_markets  # noqa: E402

from lightning_seqrec import run  # noqa: E402
from lightning_seqrec.federated.markets import write_config  # noqa: E402
from lightning_seqrec.federated.runner import resolved  # noqa: E402
from lightning_seqrec.federated.server import RESULT_FILE  # noqa: E402

APP = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
[project]
name = "seqrecfed"
version = "1.0.0"
dependencies = []
[tool.flwr.app]
publisher = "lightningseqrec"
[tool.flwr.app.components]
serverapp = "lightning_seqrec.federated.server:app"
clientapp = "lightning_seqrec.federated.client:app"
[tool.flwr.app.config]
config-file = "{config}"
"""


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.mark.skipif(shutil.which("flower-superlink") is None, reason="flower-superlink is not on PATH")
def test_one_round_on_a_superlink_and_two_supernodes(tmp_path):
    cfg = federated_config(write_markets(tmp_path / "data"), tmp_path / "run", "federation.num_rounds=1")
    with run.hydra_runtime(cfg):
        config = write_config(resolved(cfg), tmp_path / "run")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pyproject.toml").write_text(APP.format(config=config))
    link, home = free_port(), tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "here"\n[superlink.here]\naddress = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    env = os.environ | {"FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("superlink", *MARKETS)]  # noqa: SIM115
    superlink = ["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(link)]
    processes = [
        subprocess.Popen(
            [*superlink, "--disable-runtime-dependency-installation"], env=env, stdout=logs[0], stderr=subprocess.STDOUT
        )
    ]
    try:
        wait_for_port(link)
        for partition, log in enumerate(logs[1:]):
            node = ["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--host", "127.0.0.1"]
            node += ["--port", str(free_port()), "--node-config", f"partition-id={partition} num-partitions=2"]
            processes.append(subprocess.Popen(node, env=env, stdout=log, stderr=subprocess.STDOUT))
        done = subprocess.run(
            ["flwr", "run", str(tmp_path / "app"), "here", "--stream"],
            env=env,
            timeout=240,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()
    result = tmp_path / "run" / RESULT_FILE  # `flwr run` exits 0 even on a failed run: the ServerApp's output counts
    assert result.is_file(), (tmp_path / "superlink.log").read_text()[-3000:]
    summary = json.loads(result.read_text())
    assert set(summary["metrics"]["1"]) == set(MARKETS) and set(summary["round_seconds"]) == {"1"}
