"""Every notebook in examples/ runs top to bottom on a tiny configuration (FASTAI_AUDIO_NB_TINY=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def _images(nb) -> list:
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return [o for o in outputs if "image/png" in o.get("data", {})]


def test_examples_has_notebooks():
    assert any(nb.name == "01_nsynth_on_the_fly.ipynb" for nb in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_executed_in_order(path):
    """A reader browsing the repository (or the docs site, which renders them) sees the plots: every code cell ran,
    top to bottom, once, without an error."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.get("execution_count") for c in code] == list(range(1, len(code) + 1)), "re-run it top to bottom"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert len(_images(nb)) >= 3, "show_batch, the confusion matrix and the top losses should each draw a figure"
    assert path.stat().st_size < 2 * 2**20, "keep it small: fewer players or smaller figures"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_errors(path, nsynth_small, tmp_path, monkeypatch):
    # The kernel inherits the environment: tiny settings and the test's cached render; no MPLBACKEND, so the kernel's
    # inline backend turns each figure into a PNG output that the test can count.
    monkeypatch.setenv("FASTAI_AUDIO_NB_TINY", "1")
    monkeypatch.setenv("FASTAI_AUDIO_DATA", str(nsynth_small.parent))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # executed afresh: the committed outputs must not count
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()  # raises CellExecutionError naming the cell and its traceback on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len(_images(nb)) >= 3, "show_batch, the confusion matrix and the top losses should each draw a figure"
