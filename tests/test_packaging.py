"""A non-editable install carries callbacks/, configs/, the zoo index and the embedded dataset; its CLI finds its
configs and its zoo names resolve (to their Hub repos, through the offline cache, when no built folder is at hand)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import populate_cache

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would build from the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(tmp), "-q"]
    subprocess.run(build, check=True, capture_output=True)
    return next(tmp.glob("lightning_seqrec-*.whl"))


@pytest.fixture(scope="module")
def wheel_install(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
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


def test_wheel_carries_every_module_of_the_source_tree(wheel_install):
    """A subpackage missing from pyproject's `packages` list would import in the checkout and not once installed."""
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "lightning_seqrec").rglob("*.py")}
    source |= {f"lightning_seqrec/callbacks/{p.name}" for p in (REPO / "callbacks").glob("*.py")}
    installed = {p.relative_to(wheel_install).as_posix() for p in (wheel_install / "lightning_seqrec").rglob("*.py")}
    missing = sorted(source - installed)
    assert not missing, f"not in the wheel (add their packages to pyproject.toml): {missing}"


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


def test_wheel_carries_the_zoo_index_and_recipes_but_not_the_built_folders(wheel_install):
    index = wheel_install / "lightning_seqrec" / "zoo_index"
    assert (index / "index.yaml").is_file() and (index / "recipes" / "sasrec.ce-beauty.yaml").is_file()
    assert not (index / "hub").exists()


@pytest.fixture(scope="module")
def venv_python(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment (seeing this machine's installed dependencies) with the wheel pip-installed into
    it, not in editable mode."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    return python


ZOO_LOAD = """
import lightning_seqrec
from lightning_seqrec import zoo
from lightning_seqrec.errors import SeqRecError
print(lightning_seqrec.__file__)
try:
    model = zoo.load("sasrec.ce-beauty")
    print("loaded", model.num_items, len(model.vocab))
except SeqRecError as err:
    print("refused", err)
"""


def test_an_installed_zoo_name_resolves_through_the_hub_cache(venv_python, tmp_path):
    cache = tmp_path / "hf-cache"
    env = {k: v for k, v in os.environ.items() if k not in ("SEQREC_ZOO_INDEX", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
    run = [str(venv_python), "-c", ZOO_LOAD]
    empty = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert empty.returncode == 0, empty.stderr[-2000:]
    origin, outcome = empty.stdout.splitlines()[:2]
    assert origin.startswith(str(venv_python.parents[1])), origin  # the installed copy, not the checkout
    assert outcome.startswith("refused") and "seqrec zoo pull sasrec.ce-beauty" in outcome, outcome
    populate_cache(cache, "lightning-seqrec/sasrec.ce-beauty", REPO / "zoo" / "hub" / "sasrec.ce-beauty")
    cached = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert cached.stdout.splitlines()[1] == "loaded 12101 12101", cached.stdout + cached.stderr[-2000:]
