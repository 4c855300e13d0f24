"""Shared fixtures: audio is made in code (sines, noise, rendered notes), never downloaded."""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import soundfile as sf
import torch

matplotlib.use("Agg")

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "tests"


def sine(freq: float, sample_rate: int, seconds: float, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """A ``(channels, samples)`` float32 sine; channel k is scaled by 1/(k+1) so channels differ."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = amp * np.sin(2 * math.pi * freq * t)
    return np.stack([x / (k + 1) for k in range(channels)]).astype(np.float32)


def write(path: Path, wav: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write a ``(channels, samples)`` array with soundfile, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.T, sample_rate, subtype=subtype)
    return path


def trained_resnet(dls, **kwargs):
    """resnet18 from scratch on ``dls``, one epoch, quietly (seeded): a small trained model for export and serving
    tests."""
    from torchvision.models import resnet18

    from fastai_audio.learner import audio_learner

    torch.manual_seed(0)
    learn = audio_learner(dls, resnet18, pretrained=False, **kwargs)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
    return learn


def peak_frequency(x, sample_rate: int) -> float:
    """Frequency (Hz) of the largest FFT bin of a 1-D signal (Hann-windowed)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sample_rate / len(x))


def tree_digest(root: Path) -> dict:
    """sha256 of every file under ``root``: to prove a pipeline never modifies the user's files."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def toy_folder(tmp_path_factory) -> Path:
    """``train/`` and ``valid/`` folders with two classes (``low`` 220 Hz, ``high`` 880 Hz) of short clips
    at 8, 16 and 22.05 kHz, mono and stereo, 1.0-2.5 s long."""
    root = tmp_path_factory.mktemp("toy")
    for split, n in (("train", 6), ("valid", 4)):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            for i in range(n):
                sr = (16000, 22050, 8000)[i % 3]
                write(root / split / label / f"{label}_{i}.wav", sine(freq, sr, 1.0 + 0.3 * i, channels=1 + i % 2), sr)
    return root


@pytest.fixture(scope="session")
def nsynth_small(tmp_path_factory) -> Path:
    """A small NSynth-format data set rendered from the General MIDI soundfont (cached under .cache/tests)."""
    from fastai_audio.datasets import synth_nsynth

    dest = Path(os.environ.get("FASTAI_AUDIO_TEST_CACHE", CACHE)) / "nsynth_small"
    return synth_nsynth(dest, size="small", progress=False)


@pytest.fixture
def frames_read(monkeypatch) -> list:
    """The ``frames`` argument of every ``soundfile.SoundFile.read`` call made during the test, in order."""
    asked = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        asked.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    return asked


SR = 16000  # the augmentation tests' rate


def noise_batch(n=4, seconds=1.0, seed=0, dtype=torch.float32):
    """``(n, 1, seconds * SR)`` Gaussian noise at -20 dBFS as a ``TensorAudio`` of ``dtype``."""
    from fastai_audio import TensorAudio

    g = torch.Generator().manual_seed(seed)
    x = (0.1 * torch.randn(n, 1, int(seconds * SR), generator=g)).to(dtype).as_subclass(TensorAudio)
    x.sample_rate = SR  # (the TensorAudio constructor would make float64 float32, as fastai's tensors do)
    return x


def tones(freqs, seconds=1.0, sr=SR):
    """One sine per frequency, a ``TensorAudio`` batch ``(len(freqs), 1, seconds * sr)``."""
    from fastai_audio import TensorAudio

    return TensorAudio(torch.stack([torch.from_numpy(sine(f, sr, seconds)) for f in freqs]), sample_rate=sr)


def snr_db(clean, noisy) -> np.ndarray:
    """Signal-to-noise ratio (dB) per item of what ``noisy`` added to ``clean``."""
    clean, added = clean.double(), (noisy - clean).double()
    return (10 * torch.log10(clean.pow(2).sum(dim=(1, 2)) / added.pow(2).sum(dim=(1, 2)))).numpy()


def epoch_batches(dl, seed: int = 0) -> list:
    random.seed(seed)  # random crops draw from Python's generator
    return list(dl.new(shuffle=False, drop_last=False))


def assert_same_batches(got: list, want: list):
    assert len(got) == len(want) > 0
    for b, b_ref in zip(got, want):
        assert [type(o) for o in b] == [type(o) for o in b_ref]
        assert all(torch.equal(o, o_ref) for o, o_ref in zip(b, b_ref))
        x, x_ref = b[0], b_ref[0]
        assert x.sample_rate == x_ref.sample_rate and x.__dict__.keys() == x_ref.__dict__.keys()
        if "lengths" in x_ref.__dict__:
            assert torch.equal(x.lengths, x_ref.lengths)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Mono 16 kHz clips (16-bit and float) longer and shorter than 0.5 s, a stereo clip and an 8 kHz clip."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for label in ("a", "b"):
            for i, seconds in enumerate((0.9, 0.5, 0.3, 1.3, 0.7)):
                wav = (0.3 * rng.standard_normal((1, int(seconds * 16000)))).astype(np.float32)
                write(root / split / label / f"{label}_{i}.wav", wav, 16000, subtype=("PCM_16", "FLOAT")[i % 2])
            write(root / split / label / f"{label}_stereo.wav", sine(440, 16000, 0.8, channels=2), 16000)
            write(root / split / label / f"{label}_8k.wav", sine(440, 8000, 0.8), 8000)
    return root


@pytest.fixture(scope="module")
def df_learner(toy_folder, tmp_path_factory):
    """An untrained (eval-mode deterministic) learner over DataLoaders built from a DataFrame."""
    import pandas as pd
    from torchvision.models import resnet18

    from fastai_audio.data import AudioDataLoaders
    from fastai_audio.learner import audio_learner
    from fastai_audio.transforms import AmplitudeToDB, MelSpectrogram, SpecNormalize

    files = sorted(toy_folder.rglob("*.wav"))
    df = pd.DataFrame(
        {
            "fname": [str(f) for f in files],
            "label": [f.parent.name for f in files],
            "is_valid": [f.parts[-3] == "valid" for f in files],
        }
    )
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    dls = AudioDataLoaders.from_df(
        df, "/", "fname", "label", valid_col="is_valid", bs=4, duration=1.0, num_workers=0, batch_tfms=tfms
    )
    torch.manual_seed(0)
    return audio_learner(dls, resnet18, pretrained=False, path=tmp_path_factory.mktemp("learn"))


@pytest.fixture
def aug_dls(toy_folder):
    from fastai_audio.data import AudioDataLoaders
    from fastai_audio.transforms import AmplitudeToDB, MelSpectrogram, SpecNormalize, audio_aug_tfms

    front = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    tfms = [*audio_aug_tfms(shift=0.2, freq_masks=2, time_masks=2, p=1.0, seed=0), *front]
    return AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms)
