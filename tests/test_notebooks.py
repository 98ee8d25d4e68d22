"""Every tutorial notebook runs top to bottom."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    # One thread per kernel: their models are tiny, and on a busy 2-core machine a second thread made each training
    # step 2-4x slower (threads waiting on each other), not faster. The kernel inherits this environment.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nbformat = pytest.importorskip("nbformat", reason="notebook tests need the [dev] extra (nbformat)")
    nbclient = pytest.importorskip("nbclient", reason="notebook tests need the [dev] extra (nbclient)")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    assert not [o for cell in code for o in cell.outputs if o.get("output_type") == "error"]
