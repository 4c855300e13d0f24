"""The audio tensor types, ``TensorAudio`` (waveforms) and ``TensorSpectrogram``, and how fastai shows their batches."""

from __future__ import annotations

from . import _compat  # noqa: F401  (first: it imports fastai with fastai's import-time warning silenced)

# isort: split
from pathlib import Path

import numpy as np
import torch
from fastai.torch_core import TensorBase
from fastai.vision.data import get_grid
from plum import dispatch

from .errors import ParameterError
from .functional.spectral import hz_to_mel, mel_to_hz
from .io import load_audio

__all__ = ["TensorAudio", "TensorSpectrogram"]


class _AudioTensorBase(TensorBase):
    """What both audio types share: their metadata survives ``clone`` (fastai's ``TensorBase.clone`` drops it, and a
    clip without its ``sample_rate``, or a spectrogram without its axes, is no longer usable)."""

    def clone(self, *, memory_format=None):
        res = super().clone(memory_format=memory_format)
        res.set_meta(self, as_copy=True)
        return res


class TensorAudio(_AudioTensorBase):
    """A waveform ``(channels, samples)``, or a batch ``(batch, channels, samples)``, with its ``sample_rate``.

    The metadata (``sample_rate``; ``path`` when loaded from a file; ``lengths`` for padded batches) is stored
    the fastai way, so it survives torch ops, pickling, ``DataLoader`` workers, collation and ``.to(device)``.
    dtype: float32 from the loaders; any floating dtype works. Tested on CPU and CUDA.

    Examples:
        >>> x = TensorAudio.create("guitar_acoustic_010-060-100.wav")
        >>> x.shape, x.sample_rate, x.duration
        (torch.Size([1, 64000]), 16000, 4.0)
        >>> (x * 0.5).sample_rate     # survives torch ops
        16000
    """

    @classmethod
    def create(cls, fn, sample_rate: int | None = None, mono: bool = False, **kwargs) -> TensorAudio:
        """Load ``fn`` with :func:`fastai_audio.io.load_audio`, or wrap a tensor/array.

        Args:
            fn: a path, or a ``(channels, samples)`` / ``(samples,)`` tensor or array (then ``sample_rate`` is
                required).
            sample_rate: resample a file to this rate; for an array, its rate.
            mono: downmix a file to one channel.
            **kwargs: ``offset`` and ``duration`` (seconds) for files.
        """
        if isinstance(fn, (str, Path)):
            wav, sr = load_audio(fn, sample_rate=sample_rate, mono=mono, **kwargs)
            return cls(wav, sample_rate=sr, path=Path(fn))
        if sample_rate is None:
            raise ParameterError("TensorAudio.create(array) needs the array's rate: pass sample_rate=<Hz>")
        wav = torch.as_tensor(np.asarray(fn) if not isinstance(fn, torch.Tensor) else fn).float()
        return cls(wav[None] if wav.ndim == 1 else wav, sample_rate=int(sample_rate))

    @property
    def duration(self) -> float:
        """Length in seconds (of each clip, for a batch)."""
        return self.shape[-1] / self.sample_rate

    @property
    def nchannels(self) -> int:
        """Number of channels."""
        return self.shape[-2]

    def player(self):
        """An ``IPython.display.Audio`` player for this clip (notebooks)."""
        from IPython.display import Audio

        wav = self.detach().float().cpu().numpy()
        return Audio(wav, rate=self.sample_rate, normalize=True)

    def show(self, ctx=None, figsize=(6, 2), title=None, player: bool = False, **kwargs):
        """Plot the waveform against time in seconds, one line per channel; return the matplotlib axes.

        Args:
            ctx: an existing matplotlib ``Axes`` to draw in (fastai's ``show_batch`` passes one).
            figsize: size of a new figure when ``ctx`` is None.
            title: axes title (defaults to the file name when known).
            player: also display an audio player (only inside a notebook).
        """
        import matplotlib.pyplot as plt

        if ctx is None:
            _, ctx = plt.subplots(figsize=figsize)
        wav = self.detach().float().cpu().as_subclass(torch.Tensor)
        wav = wav.reshape(-1, wav.shape[-1]).numpy()
        sr = getattr(self, "sample_rate", None)
        t = np.arange(wav.shape[-1]) / sr if sr else np.arange(wav.shape[-1])
        for i, ch in enumerate(wav):
            ctx.plot(t, ch, linewidth=0.5, alpha=0.8 if len(wav) > 1 else 1.0, label=f"ch {i}")
        ctx.set_xlim(t[0], t[-1] if len(t) > 1 else 1)
        peak = float(np.abs(wav).max()) if wav.size else 0.0
        ctx.set_ylim(-1.1 * max(peak, 1e-3), 1.1 * max(peak, 1e-3))  # quiet notes stay visible
        ctx.set_xlabel("time (s)" if sr else "sample")
        if title is None and getattr(self, "path", None) is not None:
            title = Path(self.path).name
        if title is not None:
            ctx.set_title(title)
        if player and _in_notebook():
            from IPython.display import display

            display(self.player())
        return ctx


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class TensorSpectrogram(_AudioTensorBase):
    """A spectrogram ``(channels, freq, frames)``, or a batch ``(batch, channels, freq, frames)``, that knows its axes.

    Metadata, kept through torch ops, pickling, workers and ``.to(device)`` like ``TensorAudio``'s:
    ``sample_rate`` and ``hop_length`` (the time axis), ``scale`` (``'linear'``, ``'mel'``, ``'cqt'`` or
    ``'mfcc'``: the frequency axis) with ``n_fft`` (linear), ``f_min``/``f_max``/``mel_scale`` (mel),
    ``f_min``/``bins_per_octave`` (cqt), ``power`` (2: power, 1: magnitude), ``db`` (values in decibels) and
    ``normalized``; ``lengths`` (valid frames per item) for padded variable-length batches.

    Examples:
        >>> S = MelSpectrogram(sample_rate=16000, n_mels=64)(TensorAudio(torch.randn(8, 1, 64000), sample_rate=16000))
        >>> S.shape, S.scale, S.duration
        (torch.Size([8, 1, 64, 251]), 'mel', 4.016)
        >>> ax = S[0].show()        # time in seconds, frequency in Hz, a colour bar
        >>> ax.get_xlabel(), ax.get_ylabel()
        ('time (s)', 'Hz')
    """

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (of each item, for a batch)."""
        return self.shape[-1] * self.hop_length / self.sample_rate

    def frequencies(self) -> np.ndarray:
        """Centre frequency in Hz of every row (None for MFCCs, whose rows are coefficients)."""
        return row_frequencies(self.__dict__, self.shape[-2])

    def show(
        self,
        ctx=None,
        figsize=(6, 3),
        title=None,
        channel: int = 0,
        cmap: str = "magma",
        colorbar: bool | None = None,
        **kwargs,
    ):
        """Draw one channel as an image: time in seconds across, frequency in Hz up, with a colour bar.

        Args:
            ctx: matplotlib ``Axes`` to draw in (``show_batch`` passes one); a new figure when None.
            figsize: size of a new figure.
            title: axes title.
            channel: which channel to draw.
            cmap: matplotlib colour map.
            colorbar: draw a colour bar (default: only for a new figure).
            **kwargs: passed to ``imshow`` (e.g. ``vmin``, ``vmax``).
        """
        import matplotlib.pyplot as plt

        new_figure = ctx is None
        if new_figure:
            _, ctx = plt.subplots(figsize=figsize)
        img = self.detach().float().cpu().as_subclass(torch.Tensor)
        while img.ndim > 2:
            img = img[channel] if img.ndim == 3 else img[0]
        meta = self.__dict__
        sr, hop = meta.get("sample_rate"), meta.get("hop_length")
        # frame t is centred on sample t * hop (+ n_fft / 2 without centring): each pixel spans one hop around it
        frame = hop / sr if sr and hop else 1.0
        start = (0.0 if meta.get("center", True) else meta.get("n_fft", 0) / 2 / sr) - frame / 2 if sr and hop else -0.5
        kwargs = {"origin": "lower", "aspect": "auto", "cmap": cmap, "interpolation": "nearest", **kwargs}
        im = ctx.imshow(img.numpy(), extent=(start, start + img.shape[-1] * frame, -0.5, img.shape[0] - 0.5), **kwargs)
        ctx.set_xlabel("time (s)" if sr and hop else "frame")
        freqs = row_frequencies(meta, img.shape[0])
        if freqs is None:
            ctx.set_ylabel("coefficient" if meta.get("scale") == "mfcc" else "bin")
        else:
            ticks = _hz_ticks(freqs, linear=meta.get("scale") == "linear")
            ctx.set_yticks(np.interp(ticks, freqs, np.arange(len(freqs))))
            ctx.set_yticklabels([f"{t / 1000:g}k" if t >= 1000 else f"{t:g}" for t in ticks])
            ctx.set_ylabel("Hz")
        if title is not None:
            ctx.set_title(title)
        if colorbar if colorbar is not None else new_figure:
            unit = "normalized" if meta.get("normalized") else ("dB" if meta.get("db") else "")
            unit = "" if meta.get("scale") == "mfcc" or meta.get("deltas") else unit
            ctx.figure.colorbar(im, ax=ctx, label=unit)
        return ctx


def row_frequencies(meta: dict, n_rows: int):
    scale, sr = meta.get("scale"), meta.get("sample_rate")
    if scale == "linear" and sr and meta.get("n_fft"):
        return np.arange(n_rows) * sr / meta["n_fft"]
    if scale == "mel" and sr:
        f_min, f_max = meta.get("f_min", 0.0), meta.get("f_max") or sr / 2
        scale = meta.get("mel_scale", "slaney")
        mels = torch.linspace(
            float(hz_to_mel(f_min, scale)), float(hz_to_mel(f_max, scale)), n_rows + 2, dtype=torch.float64
        )[1:-1]
        return mel_to_hz(mels, scale).numpy()
    if scale == "cqt" and meta.get("f_min") and meta.get("bins_per_octave"):
        return meta["f_min"] * 2.0 ** (np.arange(n_rows) / meta["bins_per_octave"])
    return None


def _hz_ticks(freqs: np.ndarray, linear: bool = False, max_ticks: int = 6) -> list:
    """Round frequencies to label: evenly spaced on a linear axis, octaves apart (and never crowded) otherwise."""
    lo, hi = float(freqs[0]), float(freqs[-1])
    if linear:
        step = next(s for s in (250, 500, 1000, 2000, 4000, 8000, 16000, 32000) if hi / s <= max_ticks - 1)
        return [float(f) for f in np.arange(0.0, hi + 1e-9, step) if f >= lo]
    candidates = [f for f in (31.25, 62.5, 125, 250, 500, 1000, 2000, 4000, 8000, 16000) if lo <= f <= hi]
    rows = np.interp(candidates, freqs, np.arange(len(freqs)))
    ticks, last = [], -np.inf
    for f, row in zip(candidates, rows):  # keep ticks at least an eighth of the axis apart
        if row - last >= len(freqs) / 8:
            ticks.append(f)
            last = row
    return ticks or [lo, hi]


def _show_grid(samples, ctxs, max_n, nrows, ncols, figsize, **kwargs):
    if ctxs is None:
        n = min(len(samples), max_n)
        cols = ncols or min(n, 3)
        ctxs = get_grid(n, nrows=nrows, ncols=cols, figsize=figsize or (4 * cols, 2.4 * -(-n // cols)))
    for i in range(len(samples[0])):
        ctxs = [s[i].show(ctx=c, **kwargs) for s, c, _ in zip(samples, ctxs, range(max_n))]
    ctxs[0].figure.tight_layout()
    return ctxs


@dispatch  # adds a method to fastai's show_batch (plum dispatches on the batch's types)
def show_batch(x: TensorAudio, y, samples, ctxs=None, max_n=9, nrows=None, ncols=None, figsize=None, **kwargs):
    return _show_grid(samples, ctxs, max_n, nrows, ncols, figsize, **kwargs)


@dispatch
def show_batch(x: TensorSpectrogram, y, samples, ctxs=None, max_n=9, nrows=None, ncols=None, figsize=None, **kwargs):  # noqa: F811
    return _show_grid(samples, ctxs, max_n, nrows, ncols, figsize, **kwargs)
