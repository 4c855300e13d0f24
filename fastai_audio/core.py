"""``TensorAudio``: a waveform tensor that knows its sample rate, and how fastai shows batches of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fastai.torch_core import TensorBase
from fastai.vision.data import get_grid
from plum import dispatch

from .errors import ParameterError
from .io import load_audio

__all__ = ["TensorAudio"]


class TensorAudio(TensorBase):
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

    def clone(self, *, memory_format=None):
        # fastai's TensorBase.clone drops the metadata; audio needs its sample_rate to stay usable.
        res = super().clone(memory_format=memory_format)
        res.set_meta(self, as_copy=True)
        return res

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


@dispatch  # adds a method to fastai's show_batch (plum dispatches on the batch's types)
def show_batch(x: TensorAudio, y, samples, ctxs=None, max_n=9, nrows=None, ncols=None, figsize=None, **kwargs):
    if ctxs is None:
        n = min(len(samples), max_n)
        ctxs = get_grid(n, nrows=nrows, ncols=ncols or min(n, 3), figsize=figsize or (4 * min(n, 3), 2.2 * -(-n // 3)))
    for i in range(len(samples[0])):
        ctxs = [s[i].show(ctx=c, **kwargs) for s, c, _ in zip(samples, ctxs, range(max_n))]
    ctxs[0].figure.tight_layout()
    return ctxs
