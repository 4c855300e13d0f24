"""A pytest plugin that runs the docstring examples of fastai_audio (``--doctest-modules``) in a small world of audio
files made on the spot, so every example in the documentation is run and its printed output checked.

The examples run in a folder that holds what they name:

- ``note.wav``, ``note.flac``, ``guitar_acoustic_010-060-100.wav``: one 4-second 16 kHz note;
- ``concert.flac``: 20 s of notes one after another; ``new_recordings/``: three notes;
- ``data/{train,valid}/{high,low}/*.wav``: a two-class folder data set of 1-second clips;
- ``nsynth/``: the small NSynth-format set (``synth_nsynth(..., "small")``, rendered once and cached);
- ``speech_commands/{yes,no}/*.wav`` and ``esc50/{audio,meta}``: miniatures of those public data sets' layouts;
- ``shards/``: ``data/`` written as WebDataset shards (``train-000000.tar``, ``train-000001.tar``,
  ``valid-000000.tar``, ``index.json``).

and with these names defined besides the module's own: ``from fastai_audio.all import *``, ``torch``, ``np``,
``pd``, ``math``, ``nn``, ``Path``, ``dls`` (log-mel loaders over ``data/``), ``audio_dls`` (raw audio batches of
the same), ``learn`` (an untrained resnet18 on ``dls``), ``interp``, ``root`` (``Path("nsynth")``), ``files``,
``samples`` (2 s of a 440 Hz tone at 44.1 kHz, a numpy array) and ``hf_dataset`` (a Hugging Face ``Dataset`` of
``data/train``'s 8 clips, their bytes in an ``Audio`` column, ``label`` a ``ClassLabel`` of high and low).
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "tests"


def build_world(root: Path) -> Path:
    """Write the files the examples name under ``root`` (see the module docstring)."""
    from conftest import sine, write  # (the suite's own helpers: loaded by the time a doctest runs)

    from fastai_audio.datasets import read_nsynth, synth_nsynth

    nsynth = synth_nsynth(
        Path(os.environ.get("FASTAI_AUDIO_TEST_CACHE", CACHE)) / "nsynth_small", size="small", progress=False
    )
    (root / "nsynth").symlink_to(nsynth, target_is_directory=True)
    notes = read_nsynth(nsynth, splits=["test"])
    guitar = Path(notes[notes.instrument_family_str == "guitar"].fname.iloc[0])
    wav, sr = sf.read(str(guitar), dtype="float32")
    for name in ("note.wav", "guitar_acoustic_010-060-100.wav", "note.flac"):
        write(root / name, wav[None], sr)
    parts = [sf.read(str(f), dtype="float32")[0] for f in notes.fname[:5]]
    write(root / "concert.flac", np.concatenate(parts)[None], sr)
    (root / "new_recordings").mkdir()
    for f in notes.fname[5:8]:
        shutil.copy(f, root / "new_recordings" / Path(f).name)
    for split, n in (("train", 4), ("valid", 2)):
        for label, freq in (("high", 880.0), ("low", 220.0)):
            for i in range(n):
                write(root / "data" / split / label / f"{label}_{i}.wav", sine(freq, 16000, 1.0), 16000)
    for label, freq in (("yes", 660.0), ("no", 330.0)):
        for i in range(10):
            write(root / "speech_commands" / label / f"{label}_{i:02d}.wav", sine(freq, 16000, 1.0), 16000)
    rows = []
    for i, (category, freq) in enumerate([("dog", 300.0), ("rain", 2000.0)] * 5):
        name = f"{i + 1}-{100 + i}-A-{i % 2}.wav"
        write(root / "esc50" / "audio" / name, sine(freq, 44100, 5.0), 44100)
        rows.append(f"{name},{i % 5 + 1},{i % 2},{category}")
    (root / "esc50" / "meta").mkdir(parents=True)
    (root / "esc50" / "meta" / "esc50.csv").write_text("filename,fold,target,category\n" + "\n".join(rows) + "\n")
    try:
        from fastai_audio.data import AudioDataLoaders
        from fastai_audio.data.shards import write_shards

        write_shards(
            AudioDataLoaders.from_folder(root / "data", bs=4), root / "shards", shard_size="40KB", progress=False
        )
    except ImportError:  # no webdataset: the shard examples are skipped
        pass
    return root


def namespace(root: Path) -> dict:
    """The names the examples may use besides their module's own (see the module docstring)."""
    import torch
    from torch import nn

    ns: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec("from fastai_audio.all import *", ns)  # noqa: S102
    data = Path("data")  # relative, as the examples write it (the world is the working directory)
    dls = ns["AudioDataLoaders"].from_folder(
        data, duration=1.0, bs=4, num_workers=0, seed=0, batch_tfms=ns["mel_transforms"]("nsynth")
    )
    torch.manual_seed(0)
    learn = ns["audio_learner"](dls, ns["resnet18"], pretrained=False, metrics=ns["accuracy"])
    learn.remove_cb(ns["ProgressCallback"])  # (a progress bar would print into the examples' output)
    ns.update(
        torch=torch,
        np=np,
        pd=__import__("pandas"),
        math=math,
        nn=nn,
        Path=Path,
        dls=dls,
        learn=learn,
        audio_dls=ns["AudioDataLoaders"].from_folder(data, duration=1.0, bs=4, num_workers=0, seed=0),
        interp=ns["AudioInterpretation"].from_learner(learn),
        root=Path("nsynth"),
        files=ns["get_audio_files"](data),
        samples=np.sin(2 * math.pi * 440.0 * np.arange(88200) / 44100).astype(np.float32),
    )
    try:
        ns["hf_dataset"] = hf_dataset(data / "train")
    except ImportError:  # no `datasets`: its examples fail, naming it
        pass
    ns.pop("__builtins__", None)
    return ns


def hf_dataset(folder: Path):
    """A ``datasets.Dataset`` of the clips under ``folder/<label>/``: each file's bytes in an ``Audio`` column (as a
    dataset read from the Hub's Parquet files holds them), ``label`` a ``ClassLabel``."""
    import datasets

    files = sorted(folder.glob("*/*.wav"))
    names = sorted({f.parent.name for f in files})
    rows = {
        "audio": [{"bytes": f.read_bytes(), "path": f.name} for f in files],
        "label": [names.index(f.parent.name) for f in files],
    }
    features = datasets.Features({"audio": datasets.Audio(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict(rows).cast(features)


@pytest.fixture(scope="session")
def doctest_world(tmp_path_factory):
    root = build_world(tmp_path_factory.mktemp("doctest_world"))
    cwd = Path.cwd()
    os.chdir(root)  # the namespace's loaders hold paths as the examples write them
    try:
        return root, namespace(root)
    finally:
        os.chdir(cwd)


@pytest.fixture(autouse=True)
def _doctest_in_the_world(request, monkeypatch):
    """For docstring examples only: the world's names, its folder as the working directory, figures closed after."""
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fastai.callback.progress import ProgressCallback
    from fastai.learner import defaults

    root, names = request.getfixturevalue("doctest_world")
    request.getfixturevalue("doctest_namespace").update(names)
    monkeypatch.chdir(root)
    # progress bars would print into the examples' output: learners made by an example get none
    monkeypatch.setattr(defaults, "callbacks", [c for c in defaults.callbacks if c is not ProgressCallback])
    yield
    plt.close("all")
