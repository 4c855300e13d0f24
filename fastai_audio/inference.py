"""Inference beyond ``learn.predict``: many files at once, and sliding windows over long recordings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .core import TensorAudio
from .errors import ParameterError
from .io import load_audio
from .runtime import MAX_WINDOWS, check_windows, window_starts
from .transforms import OpenAudio
from .transforms.item import find_opener

__all__ = ["predict_files", "predict_windows", "WindowPredictions", "plot_taggram"]


def _opener(learn) -> OpenAudio:
    opener = find_opener(learn.dls.valid_ds)[1]
    if opener is None:
        raise ParameterError("this Learner's data does not open audio with OpenAudio (AudioBlock / AudioDataLoaders)")
    return opener


def predict_files(learn, files, *, bs: int | None = None, num_workers: int = 0) -> pd.DataFrame:
    """Predict many audio files in batches: one row per file.

    Args:
        learn: a Learner trained on ``AudioDataLoaders`` (or loaded with ``load_learner``).
        files: paths, in any format, rate and channel count the loaders read.
        bs: batch size (default: the training batch size).
        num_workers: loader processes.

    Returns:
        DataFrame with ``path``, ``prediction``, ``probability`` (of the prediction) and one probability column
        per class, in the order of ``files``.

    Examples:
        >>> table = predict_files(learn, get_audio_files("new_recordings"))
        >>> list(table.columns), len(table)
        (['path', 'prediction', 'probability', 'high', 'low'], 3)
    """
    files = [Path(f) for f in files]
    if not files:
        raise ParameterError("predict_files needs at least one file")
    dl = learn.dls.test_dl(files, bs=bs or learn.dls.bs, num_workers=num_workers)
    probs, _ = learn.get_preds(dl=dl)
    classes = list(learn.dls.vocab)
    best = probs.argmax(dim=1)
    df = pd.DataFrame(
        {
            "path": [str(f) for f in files],
            "prediction": [classes[i] for i in best.tolist()],
            "probability": probs.max(dim=1).values.numpy(),
        }
    )
    for i, c in enumerate(classes):
        df[str(c)] = probs[:, i].numpy()
    return df


@dataclass
class WindowPredictions:
    """What ``predict_windows`` returns.

    Attributes:
        starts: start of every window in seconds, shape ``(n_windows,)``.
        window: window length (s).
        duration: length of the recording (s); the last window may run past it (padded with silence).
        probs: per-window class probabilities ``(n_windows, n_classes)``.
        clip_probs: the recording's aggregated probabilities ``(n_classes,)``.
        classes: class names.
        label: the aggregated prediction (the most probable class).

    Examples:
        >>> res = predict_windows(learn, "concert.flac", hop=1.0)
        >>> res.window, res.duration, res.to_df().columns[:3].tolist()
        (1.0, 20.0, ['start', 'end', 'prediction'])
    """

    starts: np.ndarray
    window: float
    duration: float
    probs: np.ndarray
    clip_probs: np.ndarray
    classes: list
    label: str

    def to_df(self) -> pd.DataFrame:
        """One row per window: ``start``, ``end``, ``prediction`` and a probability column per class."""
        df = pd.DataFrame(
            {
                "start": self.starts,
                "end": self.starts + self.window,
                "prediction": [self.classes[i] for i in self.probs.argmax(1)],
            }
        )
        for i, c in enumerate(self.classes):
            df[str(c)] = self.probs[:, i]
        return df


def predict_windows(
    learn,
    source,
    *,
    window: float | None = None,
    hop: float | None = None,
    sample_rate: int | None = None,
    aggregate: str = "mean",
    bs: int | None = None,
    max_windows: int = MAX_WINDOWS,
) -> WindowPredictions:
    """Slide a window over a long recording, predict each window, and aggregate into one clip prediction.

    Windows start every ``hop`` seconds from 0 and cover the whole recording: the last one ends at or after the end
    (its missing part is silence), so no sample is left out.

    Args:
        learn: a Learner trained on ``AudioDataLoaders``.
        source: a file path, a ``TensorAudio``, or an array/tensor with ``sample_rate``.
        window: seconds per window (default: the clip duration the model was trained on).
        hop: seconds between window starts (default: half a window).
        sample_rate: the rate of an array ``source``.
        aggregate: ``'mean'`` or ``'max'`` of the window probabilities.
        bs: batch size.
        max_windows: refuse (before any window is made) a recording that gives more windows than this.

    Raises:
        ParameterError: ``window`` or ``hop`` not a finite number of seconds within ``check_windows``' bounds
            (0.1 s and 5 ms at least, an hour at most), or more than ``max_windows`` windows.

    Returns:
        ``WindowPredictions`` (``starts``, ``probs``, ``clip_probs``, ``label``; ``to_df()``; see ``plot_taggram``).

    Examples:
        >>> res = predict_windows(learn, "concert.flac", hop=0.5)   # 1 s windows (what the model was trained on)
        >>> res.starts[:4], res.probs.shape, res.label in learn.dls.vocab
        (array([0. , 0.5, 1. , 1.5]), (39, 2), True)
    """
    opener = _opener(learn)
    window = window if window is not None else opener.duration
    if window is None:
        raise ParameterError("the model was trained on whole clips (duration=None): pass window=<seconds>")
    hop = hop if hop is not None else window / 2
    check_windows(window, hop)
    if aggregate not in ("mean", "max"):
        raise ParameterError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
    if isinstance(source, (str, Path)):
        wav, sr = load_audio(source, sample_rate=opener.sample_rate, mono=opener.mono)
    elif isinstance(source, TensorAudio):
        wav, sr = source.as_subclass(torch.Tensor), source.sample_rate
    else:
        if sample_rate is None:
            raise ParameterError("predict_windows on an array needs its rate: pass sample_rate=<Hz>")
        wav, sr = TensorAudio.create(source, sample_rate=sample_rate).as_subclass(torch.Tensor), int(sample_rate)
    n_total = wav.shape[-1]
    duration = n_total / sr
    starts, n_win = window_starts(n_total, sr, window, hop, max_windows)
    clips = []
    for s in starts:
        piece = wav[..., s : s + n_win]
        if piece.shape[-1] < n_win:  # the last window runs past the end: pad with silence
            piece = torch.nn.functional.pad(piece, (0, n_win - piece.shape[-1]))
        clips.append(TensorAudio(piece, sample_rate=sr))
    dl = learn.dls.test_dl(clips, bs=bs or learn.dls.bs, num_workers=0)
    probs, _ = learn.get_preds(dl=dl)
    probs = probs.numpy()
    clip_probs = probs.mean(0) if aggregate == "mean" else probs.max(0)
    classes = list(learn.dls.vocab)
    return WindowPredictions(
        starts / sr, n_win / sr, duration, probs, clip_probs, classes, str(classes[int(clip_probs.argmax())])
    )


def plot_taggram(result: WindowPredictions, ax=None, figsize=(10, 3), cmap: str = "viridis"):
    """Draw the per-window probabilities over time: one row per class (a "taggram"); return the axes.

    Examples:
        >>> ax = plot_taggram(predict_windows(learn, "concert.flac"))
        >>> ax.get_xlabel()
        'time (s, window centres)'
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    hop = result.starts[1] - result.starts[0] if len(result.starts) > 1 else result.window
    centres = result.starts + result.window / 2
    extent = (centres[0] - hop / 2, centres[-1] + hop / 2, -0.5, len(result.classes) - 0.5)
    im = ax.imshow(
        result.probs.T, aspect="auto", origin="lower", cmap=cmap, vmin=0, vmax=1, interpolation="nearest", extent=extent
    )
    ax.set_yticks(range(len(result.classes)))
    ax.set_yticklabels([str(c) for c in result.classes])
    ax.set_xlabel("time (s, window centres)")
    ax.set_title(f"{result.label} (clip, {len(result.starts)} windows of {result.window:g} s)")
    ax.figure.colorbar(im, ax=ax, label="probability")
    return ax
