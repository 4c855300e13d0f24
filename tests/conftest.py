"""Shared fixtures: audio is made in code (sines, noise, rendered notes), never downloaded."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import soundfile as sf

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


def peak_frequency(x, sample_rate: int) -> float:
    """Frequency (Hz) of the largest FFT bin of a 1-D signal (Hann-windowed)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sample_rate / len(x))


def tree_digest(root: Path) -> dict:
    """sha256 of every file under ``root``: to prove a pipeline never modifies the user's files."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


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
