"""The README's code runs as written and does what its comments say (with one epoch instead of five)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from fastai_audio.core import TensorAudio, TensorSpectrogram

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_readme_quick_start_runs_and_does_what_it_says(nsynth_small, tmp_path, monkeypatch):
    blocks = python_blocks(README)
    assert len(blocks) >= 4, "the quick start: data, spectrograms, training, the seed's chain"
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data" / "nsynth_small"  # the cached render, linked folder by folder (the export lands here)
    root.mkdir(parents=True)
    for child in nsynth_small.iterdir():
        if child.is_dir() or child.suffix == ".json":
            (root / child.name).symlink_to(child, target_is_directory=child.is_dir())
    ns: dict = {}
    for code in blocks:
        code = code.replace("fit_one_cycle(5,", "fit_one_cycle(1,")  # the test's only change: one epoch
        exec(compile(code, f"{README.name} block", "exec"), ns)  # noqa: S102
        plt.close("all")
        if "xb" in ns and "first" not in ns:
            ns["first"] = ns["xb"]
    # block 1: raw audio batches; block 2: log-mel spectrograms
    assert isinstance(ns["first"], TensorAudio) and tuple(ns["first"].shape) == (32, 1, 64000)
    assert ns["first"].sample_rate == 16000
    assert isinstance(ns["xb"], TensorSpectrogram) and tuple(ns["xb"].shape) == (32, 1, 64, 251)
    # the training block: an exported model and a prediction among the 11 families
    assert (root / "families.pkl").is_file() and not (nsynth_small / "families.pkl").exists()
    label, index, probs = ns["label"], ns["index"], ns["probs"]
    assert label in ns["dls"].vocab and probs.shape == (11,)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-4) and int(index) == int(torch.argmax(probs))
    # the seed's fluent chain
    assert (ns["data"].c, list(ns["data"].classes[:3])) == (11, ["bass", "brass", "flute"])


PUBLIC_MODULES = [
    "fastai_audio.decode",
    "fastai_audio.audio_config",
    "fastai_audio.files",
    "fastai_audio.io",
    "fastai_audio.core",
    "fastai_audio.errors",
    "fastai_audio.functional",
    "fastai_audio.transforms",
    "fastai_audio.data",
    "fastai_audio.datasets",
    "fastai_audio.learner",
    "fastai_audio.interpret",
    "fastai_audio.inference",
    "fastai_audio.models",
    "fastai_audio.runtime",
    "fastai_audio.server",
    "fastai_audio.atomic",
    "fastai_audio.distributed",
]


def test_every_public_function_and_class_has_an_example():
    """The examples are run by pytest's doctest collection (tests/doctest_world.py gives them files to work on)."""
    import importlib
    import inspect

    missing = []
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and ">>>" not in (inspect.getdoc(obj) or ""):
                missing.append(f"{name}.{attr}")
    assert not missing, f"public names without a docstring example: {missing}"


def test_docstring_examples_are_collected_by_the_suite():
    import tomllib

    config = tomllib.loads((README.parent / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in config["addopts"] and "-p doctest_world" in config["addopts"]
    assert "fastai_audio" in config["testpaths"]
