"""Research notebooks: committed without outputs, and they run top to bottom (small settings).

CI runs each with ``MMGCN_NB_SMALL=1`` (smaller data, fewer models) and
``MMGCN_NB_EPOCHS=2``; without them a notebook runs its full settings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}: a code cell has outputs; strip them before committing"
            assert cell.execution_count is None, f"{path.name}: execution counts left in"


def _code(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_at_least_two_plots_and_public_api_only(path):
    code = _code(path)
    figures = len(re.findall(r"plt\.subplots\(|plt\.figure\(|\.plot(?:\.\w+)?\(", code))
    assert figures >= 2, f"{path.name}: {figures} plot(s); each notebook shows at least two"
    private = re.findall(r"from mmgcn[\w.]* import [^\n]*\b_\w+|mmgcn[\w.]*\._\w+|\.\_(?!_)\w+\(", code)
    assert not private, f"{path.name}: uses private names {private}; notebooks use the public API only"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("MMGCN_DATA", str(data_root))
    monkeypatch.setenv("MMGCN_NB_EPOCHS", "2")
    monkeypatch.setenv("MMGCN_NB_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # the notebook printed its results (not only ran): the training cell reports test figures
    printed = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "test recall@20" in printed
    assert os.environ["MMGCN_NB_EPOCHS"] == "2"
