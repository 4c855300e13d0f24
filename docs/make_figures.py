"""Render the pictures of docs/frontend.md into docs/img/ from a note of a synth_nsynth data set.

Run from the repository root:

    .venv/bin/python docs/make_figures.py

The data set is rendered once into .cache/docs/nsynth_small (ignored by git) and reused afterwards. Every figure is
drawn by the library's own ``show`` methods, so the pictures show what a user sees.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from PIL import Image  # noqa: E402

from fastai_audio import TensorAudio  # noqa: E402
from fastai_audio.data import AudioDataLoaders  # noqa: E402
from fastai_audio.datasets import synth_nsynth  # noqa: E402
from fastai_audio.io import load_audio  # noqa: E402
from fastai_audio.transforms import (  # noqa: E402
    CQT,
    MFCC,
    AmplitudeToDB,
    Delta,
    MelSpectrogram,
    Spectrogram,
    get_frequency_batch_transforms,
)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / ".cache" / "docs" / "nsynth_small"
IMG = REPO / "docs" / "img"
DPI = 100
SAMPLE_RATE = 16000
N_FFT, HOP_LENGTH = 1024, 256
NOTE_NAME = re.compile(r"(?P<family>[a-z]+)_(?P<source>[a-z]+)_\d+-(?P<pitch>\d+)-(?P<velocity>\d+)\.wav$")


def pick_note(root: Path) -> Path:
    """The acoustic guitar note of the training split closest to E4 (MIDI 64), loudest velocity first.

    A plucked string shows an attack, steady harmonics and a release; the soundfont's acoustic keyboards loop a short
    sample while the key is held, which adds a flutter that is no part of what the figures are about.
    """
    candidates = []
    for f in sorted((root / "train").glob("guitar_acoustic_*.wav")):
        m = NOTE_NAME.search(f.name)
        candidates.append((abs(int(m["pitch"]) - 64), -int(m["velocity"]), f.name, f))
    if not candidates:
        raise SystemExit(f"no guitar_acoustic note under {root / 'train'}")
    return min(candidates)[-1]


def save(fig, name: str) -> None:
    """Write ``fig`` as a 256-colour PNG: the colour maps have 256 entries anyway, and the files stay small."""
    path = IMG / name
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.relative_to(REPO)}: {path.stat().st_size / 1024:.0f} KB")


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    root = synth_nsynth(DATA, size="small", progress=False)
    note = pick_note(root)
    wav, sr = load_audio(note, sample_rate=SAMPLE_RATE, mono=True)
    x = TensorAudio(wav[None], sample_rate=sr)  # a batch of one clip: (1, 1, samples)
    label = f"{note.name} ({x.duration:g} s at {sr} Hz)"

    ax = x[0].show(figsize=(7, 2), title=f"waveform: {label}")
    save(ax.figure, "waveform.png")

    linear = AmplitudeToDB(top_db=80)(Spectrogram(n_fft=N_FFT, hop_length=HOP_LENGTH)(x))
    ax = linear[0].show(figsize=(7, 3), title="Spectrogram(n_fft=1024, hop_length=256) + AmplitudeToDB()")
    save(ax.figure, "spectrogram.png")

    mel = MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=64, f_min=20.0,
                         f_max=8000.0)  # fmt: skip
    logmel = AmplitudeToDB(top_db=80)(mel(x))
    ax = logmel[0].show(figsize=(7, 3), title="MelSpectrogram(n_mels=64, f_min=20, f_max=8000) + AmplitudeToDB()")
    save(ax.figure, "melspectrogram.png")

    stacked = Delta(width=9, order=2)(MFCC(n_mfcc=20)(logmel))  # (1, 3, 20, frames): static, delta, delta-delta
    fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
    for channel, (ax, title) in enumerate(zip(axes, ["MFCC(n_mfcc=20)", "Delta: delta", "Delta: delta-delta"])):
        stacked[0].show(ctx=ax, channel=channel, title=title, cmap="coolwarm", colorbar=True)
    # A diverging map reads right only when white is 0: make each panel's colour range symmetric. It is taken over
    # coefficients 1-19, so that c0 (the overall level, hundreds of dB from the rest) saturates instead of taking
    # the whole range. The colour bars follow their images.
    for channel, ax in enumerate(axes):
        limit = float(stacked[0, channel, 1:].as_subclass(torch.Tensor).abs().max())
        ax.images[0].set_clim(-limit, limit)
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.tight_layout()
    save(fig, "mfcc_deltas.png")

    cqt = AmplitudeToDB(top_db=80)(CQT(sample_rate=SAMPLE_RATE, hop_length=HOP_LENGTH, f_min=32.70, n_bins=84)(x))
    ax = cqt[0].show(figsize=(7, 3.5), title="CQT(f_min=32.70, n_bins=84, bins_per_octave=12) + AmplitudeToDB()")
    save(ax.figure, "cqt.png")

    tfms = get_frequency_batch_transforms(n_fft=N_FFT, n_hop=HOP_LENGTH, n_mels=64, sample_rate=SAMPLE_RATE,
                                          f_min=20.0, f_max=8000.0)  # fmt: skip
    set_seed(0)  # the same training batch on every run
    dls = AudioDataLoaders.from_nsynth(root, bs=16, num_workers=0, batch_tfms=tfms)
    dls.show_batch(max_n=6, nrows=2, ncols=3, figsize=(10, 4.6))
    save(plt.gcf(), "show_batch.png")


if __name__ == "__main__":
    main()
