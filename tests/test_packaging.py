"""A non-editable install carries callbacks/, configs/ and the embedded dataset, and its CLI finds its configs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(tmp), "-q"]
    subprocess.run(build, check=True, capture_output=True)
    wheel = next(tmp.glob("lightning_seqrec-*.whl"))
    target = tmp / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)  # exactly what `pip install` puts in site-packages
    return target


def test_wheel_contains_callbacks_configs_and_embedded_data(wheel_install):
    pkg = wheel_install / "lightning_seqrec"
    assert (pkg / "callbacks" / "__init__.py").is_file()
    assert (pkg / "configs" / "train.yaml").is_file() and (pkg / "configs" / "data" / "beauty.yaml").is_file()
    embedded = pkg / "data" / "embedded" / "ml-latest-small"
    assert {p.name for p in embedded.iterdir()} >= {"ratings.csv.gz", "movies.csv.gz", "README.txt"}
    assert "redistribute" in (embedded / "README.txt").read_text(encoding="utf-8", errors="replace")


def test_installed_cli_finds_its_configs(wheel_install, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(wheel_install)}
    code = (
        "import lightning_seqrec, lightning_seqrec.callbacks, sys;"
        "sys.argv = ['seqrec', 'train', '--cfg', 'job'];"
        "print(lightning_seqrec.__file__);"
        "from lightning_seqrec.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0].startswith(str(wheel_install))  # the installed copy, not the checkout
    assert "_target_: lightning_seqrec.data.MovieLensLatestSmall" in result.stdout
