"""Inference beyond ``learn.predict``: many files at once, and sliding windows over long recordings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .core import TensorAudio
from .errors import ParameterError
from .io import load_audio, resample
from .models.musicnn import MusiCNN, load_musicnn_weights, musicnn_tags
from .runtime import MAX_WINDOWS, check_windows, window_starts
from .transforms import OpenAudio
from .transforms.item import find_opener
from .transforms.presets import mel_transforms
from .transforms.spectral import AudioFrontEnd

__all__ = [
    "predict_files",
    "predict_windows",
    "WindowPredictions",
    "plot_taggram",
    "MusicTagger",
    "embed_windows",
    "linear_probe",
    "fit_linear_probe",
    "ProbeResult",
]


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
    if aggregate not in ("mean", "max"):
        raise ParameterError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
    starts, clips, sr, n_total = _learner_windows(learn, source, window, hop, sample_rate, max_windows)
    dl = learn.dls.test_dl(clips, bs=bs or learn.dls.bs, num_workers=0)
    probs, _ = learn.get_preds(dl=dl)
    n_win = clips[0].shape[-1]
    return _window_predictions(probs.numpy(), starts, n_win, n_total, sr, list(learn.dls.vocab), aggregate)


def _learner_windows(learn, source, window, hop, sample_rate, max_windows):
    """``(starts in samples, TensorAudio windows, rate, samples in all)`` of ``source`` as ``learn``'s loaders
    decode it: ``window`` defaults to their clip duration and ``hop`` to half a window, both checked before
    anything is decoded."""
    opener = _opener(learn)
    window = window if window is not None else opener.duration
    if window is None:
        raise ParameterError("the model was trained on whole clips (duration=None): pass window=<seconds>")
    hop = hop if hop is not None else window / 2
    check_windows(window, hop)
    wav, sr = _recording(source, opener.sample_rate, opener.mono, sample_rate)
    starts, clips = _windows(wav, sr, window, hop, max_windows)
    return starts, [TensorAudio(c, sample_rate=sr) for c in clips], sr, wav.shape[-1]


def _recording(source, rate: int | None, mono: bool, sample_rate: int | None) -> tuple[torch.Tensor, int]:
    """A file path (decoded at ``rate``), a ``TensorAudio``, or an array with ``sample_rate``: ``(wav, rate)``."""
    if isinstance(source, (str, Path)):
        return load_audio(source, sample_rate=rate, mono=mono)
    if isinstance(source, TensorAudio):
        return source.as_subclass(torch.Tensor), source.sample_rate
    if sample_rate is None:
        raise ParameterError("predicting windows of an array needs its rate: pass sample_rate=<Hz>")
    return TensorAudio.create(source, sample_rate=sample_rate).as_subclass(torch.Tensor), int(sample_rate)


def _windows(wav: torch.Tensor, sr: int, window: float, hop: float, max_windows: int):
    """``(starts in samples, clips (n_windows, channels, samples))``: windows every ``hop`` covering the whole
    recording, the last one padded with silence (``window`` and ``hop`` already passed ``check_windows``; the
    count is checked before any window is made)."""
    starts, n_win = window_starts(wav.shape[-1], sr, window, hop, max_windows)
    clips = []
    for s in starts:
        piece = wav[..., s : s + n_win]
        if piece.shape[-1] < n_win:  # the last window runs past the end: pad with silence
            piece = torch.nn.functional.pad(piece, (0, n_win - piece.shape[-1]))
        clips.append(piece)
    return starts, torch.stack(clips)


def _window_predictions(probs, starts, n_win: int, n_total: int, sr: int, classes: list, aggregate: str):
    clip_probs = probs.mean(0) if aggregate == "mean" else probs.max(0)
    label = str(classes[int(clip_probs.argmax())])
    return WindowPredictions(starts / sr, n_win / sr, n_total / sr, probs, clip_probs, classes, label)


def plot_taggram(result: WindowPredictions, ax=None, figsize=(10, 3), cmap: str = "viridis", top: int | None = None):
    """Draw the per-window probabilities over time: one row per class (a "taggram"); return the axes.

    Args:
        result: what ``predict_windows`` (or ``MusicTagger.predict_windows``) returns.
        top: draw only the ``top`` classes of the whole recording (its ``clip_probs``), most probable at the top;
            default all, in their order.

    Examples:
        >>> ax = plot_taggram(predict_windows(learn, "concert.flac"))
        >>> ax.get_xlabel()
        'time (s, window centres)'
        >>> ax = plot_taggram(MusicTagger("MTT").predict_windows("song.wav"), top=10)   # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    rows = np.arange(len(result.classes))
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ParameterError(f"top must be a positive number of classes, got {top!r}")
        rows = np.argsort(result.clip_probs, kind="stable")[::-1][:top][::-1]  # the most probable drawn on top
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    hop = result.starts[1] - result.starts[0] if len(result.starts) > 1 else result.window
    centres = result.starts + result.window / 2
    extent = (centres[0] - hop / 2, centres[-1] + hop / 2, -0.5, len(rows) - 0.5)
    im = ax.imshow(
        result.probs[:, rows].T,
        aspect="auto",
        origin="lower",
        cmap=cmap,
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=extent,
    )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([str(result.classes[i]) for i in rows])
    ax.set_xlabel("time (s, window centres)")
    ax.set_title(f"{result.label} (clip, {len(result.starts)} windows of {result.window:g} s)")
    ax.figure.colorbar(im, ax=ax, label="probability")
    return ax


class MusicTagger(nn.Sequential):
    """A music tagger that works out of the box: the ``musicnn`` package's MusiCNN, trained on MagnaTagATune
    (``'MTT'``: instruments, voices, moods) or the Million Song Dataset (``'MSD'``: genres, decades), with its 50
    tags and behind the front-end it was trained on. No data, no training, no TensorFlow
    (``pip install --no-deps musicnn``).

    ``Sequential(front_end, network, sigmoid)``: waveforms ``(batch, samples)`` at 16 kHz -> tag probabilities
    ``(batch, 50)``; ``predict_windows`` tags a recording every ``hop`` seconds (Essentia's taggram), and
    ``plot_taggram`` draws it.

    Args:
        weights: ``'MTT'`` or ``'MSD'``.

    Attributes:
        tags: the 50 tag names, in the order of the outputs.

    Examples:
        >>> tagger = MusicTagger("MTT")                                     # doctest: +SKIP
        >>> res = tagger.predict_windows("song.wav")                         # doctest: +SKIP
        >>> [res.classes[i] for i in res.clip_probs.argsort()[::-1][:3]]     # doctest: +SKIP
        ['guitar', 'classical', 'slow']
    """

    sample_rate = 16000
    window = 3.0  # seconds: the 187-frame patches the networks were trained on

    def __init__(self, weights: str = "MTT"):
        key = str(weights).upper()
        if key not in ("MTT", "MSD"):
            raise ParameterError(f"weights must be 'MTT' or 'MSD', got {weights!r}")
        network = load_musicnn_weights(MusiCNN(50), f"{key}_musicnn", head=True)
        super().__init__(AudioFrontEnd(mel_transforms("musicnn")), network, nn.Sigmoid())
        self.weights, self.tags = key, musicnn_tags(key)
        self.eval()

    def predict_windows(
        self,
        source,
        *,
        hop: float | None = None,
        sample_rate: int | None = None,
        aggregate: str = "mean",
        bs: int = 32,
        max_windows: int = MAX_WINDOWS,
    ) -> WindowPredictions:
        """Tag ``source`` (a file, a ``TensorAudio``, or an array with ``sample_rate``) in 3 s windows every ``hop``
        seconds (default 3: one patch after the other, as musicnn does); windows ``(n, 50)`` and the recording's
        aggregate, as ``predict_windows`` returns them. Decoded at 16 kHz, mono.

        Raises:
            ParameterError: ``hop`` out of ``check_windows``' bounds, more than ``max_windows`` windows, or an
                array without ``sample_rate``.
        """
        if aggregate not in ("mean", "max"):
            raise ParameterError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
        hop = self.window if hop is None else hop
        check_windows(self.window, hop)
        wav, sr = _recording(source, self.sample_rate, True, sample_rate)
        wav = wav.reshape(-1, wav.shape[-1]).mean(0, keepdim=True)  # mono (a file is decoded mono already)
        if sr != self.sample_rate:
            wav, sr = resample(wav, sr, self.sample_rate), self.sample_rate
        starts, clips = _windows(wav, sr, self.window, hop, max_windows)
        device = next(self.parameters()).device
        with torch.no_grad():
            probs = torch.cat([self(c[:, 0].to(device)).cpu() for c in clips.split(bs)]).numpy()
        return _window_predictions(probs, starts, clips.shape[-1], wav.shape[-1], sr, list(self.tags), aggregate)


def embed_windows(
    learn,
    source,
    *,
    window: float | None = None,
    hop: float | None = None,
    sample_rate: int | None = None,
    bs: int | None = None,
    max_windows: int = MAX_WINDOWS,
) -> tuple[np.ndarray, torch.Tensor]:
    """``learn.embed`` over a long recording: one embedding per window, the windows of ``predict_windows``.

    Returns:
        ``(starts, features)``: window starts in seconds ``(n_windows,)`` and ``(n_windows, dim)`` float32.

    Examples:
        >>> starts, feats = embed_windows(learn, "concert.flac", hop=0.5)   # 1 s windows, as the model was trained
        >>> feats.shape[0] == len(starts)
        True
    """
    starts, clips, sr, _ = _learner_windows(learn, source, window, hop, sample_rate, max_windows)
    return starts / sr, learn.embed(clips, bs=bs)


@dataclass
class ProbeResult:
    """What ``linear_probe`` returns.

    Attributes:
        accuracy: the probe's accuracy on the validation set.
        n_train: training clips; n_valid: validation clips; dim: the embedding's size.
        classifier: the fitted scikit-learn pipeline (standardisation, then logistic regression), for
            ``classifier.predict(learn.embed(files))``.

    Examples:
        >>> res = linear_probe(learn)
        >>> res.classifier.predict(learn.embed(["note.wav"]).numpy()).shape
        (1,)
    """

    accuracy: float
    n_train: int
    n_valid: int
    dim: int
    classifier: object


def fit_linear_probe(x, y, *, C: float = 1.0, max_iter: int = 2000):
    """The probe of ``linear_probe`` on embeddings you already have (``learn.embed``, ``fastai-audio embed``):
    standardisation then an L2 logistic regression, fitted on ``x`` ``(n, dim)`` and labels ``y`` ``(n,)``.

    Returns:
        the fitted scikit-learn pipeline (``.predict(x)``, ``.predict_proba(x)``).

    Examples:
        >>> x = np.r_[np.random.default_rng(0).normal(0, 1, (20, 4)), np.random.default_rng(1).normal(3, 1, (20, 4))]
        >>> fit_linear_probe(x, [0] * 20 + [1] * 20).predict(x[[0, -1]]).tolist()
        [0, 1]
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(x, y)


def linear_probe(learn, dls=None, *, C: float = 1.0, max_iter: int = 2000) -> ProbeResult:
    """The field's protocol for comparing pretrained audio models: freeze the network, embed every clip of the
    training and validation sets (``learn.embed``, no augmentation), fit a logistic regression on the training
    embeddings (standardised), and score it on the validation ones.

    Args:
        learn: the learner whose network embeds (e.g. ``audio_learner(dls, "musicnn", weights="MTT")``).
        dls: the data set to probe on (default: the learner's loaders); its transforms make the network's input.
        C: inverse L2 regularisation strength of the logistic regression.
        max_iter: its iteration limit.

    Raises:
        ParameterError: a multi-label data set (the probe is single-label), or a training set with one class.

    Examples:
        >>> res = linear_probe(learn)                  # e.g. audio_learner(dls, "musicnn", weights="MTT")
        >>> 0 <= res.accuracy <= 1, res.n_train, res.n_valid, res.dim
        (True, 8, 4, 512)
    """
    dls = dls if dls is not None else learn.dls
    x_train, y_train = learn.embed(dls.train_ds.items, dls=dls, with_labels=True)
    x_valid, y_valid = learn.embed(dls.valid_ds.items, dls=dls, with_labels=True)
    if y_train.ndim != 1:
        raise ParameterError("linear_probe is single-label: these loaders are multi-label (one-hot targets)")
    if len(torch.unique(y_train)) < 2:
        raise ParameterError("the training set has one class: a probe needs at least two")
    classifier = fit_linear_probe(x_train.numpy(), y_train.numpy(), C=C, max_iter=max_iter)
    accuracy = float((classifier.predict(x_valid.numpy()) == y_valid.numpy()).mean())
    return ProbeResult(accuracy, len(y_train), len(y_valid), int(x_train.shape[1]), classifier)
