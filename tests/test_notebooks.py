"""Every notebook in examples/ runs top to bottom on a tiny configuration (FASTAI_AUDIO_NB_TINY=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_examples_has_notebooks():
    assert any(nb.name == "01_nsynth_on_the_fly.ipynb" for nb in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_errors(path, nsynth_small, tmp_path, monkeypatch):
    # The kernel inherits the environment: tiny settings and the test's cached render; no MPLBACKEND, so the kernel's
    # inline backend turns each figure into a PNG output that the test can count.
    monkeypatch.setenv("FASTAI_AUDIO_NB_TINY", "1")
    monkeypatch.setenv("FASTAI_AUDIO_DATA", str(nsynth_small.parent))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()  # raises CellExecutionError naming the cell and its traceback on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "show_batch, the confusion matrix and the top losses should each draw a figure"
