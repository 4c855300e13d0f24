"""The spectral steps: waveforms to spectrograms (and spectrograms to spectrograms) on the batch's device.

Each step is an ``nn.Module``, torchaudio's shape: it holds its precomputed tensors (window, filterbank) as buffers
(parameters when ``trainable``), and its ``forward`` takes and returns plain tensors by calling one function of
``fastai_audio.functional``. Inputs ``(samples,)``, ``(B, samples)`` or ``(B, C, samples)`` for the waveform steps,
``(B, C, freq, frames)`` for the others; outputs ``(B, C, freq, frames)``.

Called on a ``TensorAudio`` (or ``TensorSpectrogram``) a step returns a ``TensorSpectrogram`` that knows its axes
(``describe``), so ``AmplitudeToDB()(MelSpectrogram()(audio))[0].show()`` draws in Hz and seconds. In a
``DataLoader``'s ``batch_tfms`` the loaders put each step in ``SpectralTransform``, the one fastai adapter (device,
labels, set-up of statistics, decoding for display); ``AudioFrontEnd`` is an ``nn.Sequential`` of the same steps,
to run inside a model, and ``export_onnx`` exports ``Sequential(front_end, network, softmax)``.

With ``trainable=True`` the window and filterbank are ``nn.Parameter``s: put the steps in the model with
``AudioFrontEnd`` so the optimiser updates them (nnAudio's idea); in a ``DataLoader`` they act as constants.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from itertools import islice

import torch
from torch import nn

from .._compat import in_main_process
from .._validate import check_choice, check_positive, check_sample_rate
from ..core import TensorAudio, TensorSpectrogram
from ..errors import ParameterError
from ..functional import amplitude_to_db, cqt, cqt_kernels, deltas, log_compress, mel_filterbank, mfcc, stft_power
from ..functional.spectral import (
    check_compression,
    check_db_args,
    check_delta_width,
    check_mfcc_args,
    check_stft_args,
    full_precision,
)
from .base import TypedTransform

__all__ = [
    "SpectralStep",
    "Spectrogram",
    "MelSpectrogram",
    "CQT",
    "AmplitudeToDB",
    "LogCompress",
    "MFCC",
    "Delta",
    "SpecNormalize",
    "AudioFrontEnd",
    "SpectralTransform",
    "spectral_steps",
]


def as_audio_batch(x: torch.Tensor) -> torch.Tensor:
    """``(samples,)`` -> ``(1, 1, samples)``; ``(B, samples)`` -> ``(B, 1, samples)``; ``(B, C, samples)`` as is.

    Examples:
        >>> as_audio_batch(torch.zeros(2, 16000)).shape
        torch.Size([2, 1, 16000])
    """
    if x.ndim == 1:
        return x[None, None]
    if x.ndim == 2:
        return x[:, None]
    if x.ndim == 3:
        return x
    raise ParameterError(
        f"expected audio of shape (samples,), (batch, samples) or (batch, channels, samples), got {tuple(x.shape)}"
    )


def as_spec_batch(x: torch.Tensor) -> torch.Tensor:
    """``(freq, frames)`` -> ``(1, 1, freq, frames)``; ``(B, freq, frames)`` -> ``(B, 1, ...)``; 4-D as is.

    Examples:
        >>> as_spec_batch(torch.zeros(64, 100)).shape
        torch.Size([1, 1, 64, 100])
    """
    if x.ndim == 2:
        return x[None, None]
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x
    raise ParameterError(f"expected a spectrogram batch (batch, channels, freq, frames), got {tuple(x.shape)}")


_TYPED = (TensorAudio, TensorSpectrogram)


class SpectralStep(nn.Module):
    """Base of the spectral steps: an ``nn.Module`` on plain tensors that also describes its output's axes.

    Subclasses implement ``forward`` (plain tensors in and out) and, when they change the axes, ``describe``.
    Calling a step on a ``TensorAudio``/``TensorSpectrogram`` checks it (``describe`` may refuse it, e.g. a batch at
    another sample rate), runs ``forward`` on the plain tensor and returns a ``TensorSpectrogram`` with the
    described metadata; plain tensors take the plain path, which is what a model, ``torch.export`` and ONNX see.

    Attributes:
        accepts: the typed tensors the step takes (``TensorAudio`` for the waveform steps).
        order: where fastai's ``Pipeline`` puts the step among the batch transforms (waveform augmentations 10,
            spectrogram 20, decibels 30, ..., masks 70).

    Examples:
        >>> class Log1p(SpectralStep):
        ...     order = 30
        ...     def forward(self, x):
        ...         return torch.log1p(as_spec_batch(x))
        ...     def describe(self, meta):
        ...         return {**super().describe(meta), "db": False}
        >>> Log1p()(torch.ones(2, 1, 4, 5)).shape
        torch.Size([2, 1, 4, 5])
    """

    accepts: tuple = (TensorSpectrogram,)
    order: int = 0

    def __call__(self, x, *args, **kwargs):
        if type(x) is torch.Tensor or not isinstance(x, _TYPED):
            return super().__call__(x, *args, **kwargs)
        if not isinstance(x, self.accepts):
            raise ParameterError(
                f"{type(self).__name__} takes {' or '.join(t.__name__ for t in self.accepts)} batches, got a "
                f"{type(x).__name__}: put it after the step that makes those (see the `order` of each step)"
            )
        meta = self.describe(x.__dict__)
        return _typed(super().__call__(x.as_subclass(torch.Tensor), *args, **kwargs), meta)

    def describe(self, meta: dict) -> dict:
        """The metadata of the output, from the input's (``sample_rate``, ``lengths``, the axes...); raises a
        ``ParameterError`` for an input the step cannot take. The base keeps everything but the file path."""
        return {k: v for k, v in meta.items() if k != "path"}

    def setup(self, dl, before=None) -> SpectralStep:
        """Estimate what the step needs from data, from batches of the loader ``dl`` passed through ``before`` (the
        steps ahead of it); nothing for most steps."""
        return self

    def __setstate__(self, state):
        if "_modules" not in state:  # a fastai Transform pickled by fastai_audio 0.1
            raise ParameterError(
                f"this pickle holds a {type(self).__name__} of fastai_audio 0.1, when the spectral steps were fastai "
                "Transforms; this version's steps are nn.Modules: load it with fastai_audio 0.1 and export it with "
                "export_onnx, or retrain"
            )
        super().__setstate__(state)


def _typed(value: torch.Tensor, meta: dict) -> TensorSpectrogram:
    """``value`` as a ``TensorSpectrogram`` with ``meta`` (``as_subclass``: no copy, none of fastai's casting)."""
    out = value.as_subclass(TensorSpectrogram)
    out.__dict__.update(meta)
    return out


def _from_audio(meta: dict, *, hop_length: int, center: bool, power: float, **axes) -> dict:
    """The metadata of a spectrogram made from a waveform batch's ``meta``: the batch's own (rate...) but its file
    path and sample ``lengths``, then the time axis, the frequency ``axes``, not yet in decibels or normalised."""
    out = {k: v for k, v in meta.items() if k not in ("path", "lengths")}
    out.update(axes, hop_length=hop_length, center=center, power=power, db=False, normalized=False)
    return out


def _frame_lengths(lengths, hop_length: int, center: bool, n_fft: int):
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    return lengths // hop_length + 1 if center else (lengths - n_fft) // hop_length + 1


def _check_rate(meta: dict, sample_rate: int, name: str):
    rate = meta.get("sample_rate")
    if rate is not None and rate != sample_rate:
        raise ParameterError(
            f"the batch is at {rate} Hz but {name} was built for sample_rate={sample_rate}; build it with "
            f"sample_rate={rate}, or resample the audio with AudioBlock(sample_rate={sample_rate})"
        )


_CPU_CHUNK_SAMPLES = 8 * 64000  # samples per chunk on a CPU (8 clips of 4 s at 16 kHz)


def _cpu_chunk(x: torch.Tensor) -> int | None:
    """Clips per chunk for a waveform batch on a CPU, or None for one call on the whole batch. On a CPU, a few clips
    at a time keep the complex spectrum in cache: about 2x faster for 64 clips of 4 s, with identical results. GPUs
    want the whole batch, and a traced graph (``torch.export``, ONNX) cannot keep a branch on the batch size."""
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    n = max(1, _CPU_CHUNK_SAMPLES // max(1, x[0].numel()))
    return n if x.shape[0] > n else None


class Spectrogram(SpectralStep):
    """Power (or magnitude) spectrogram of each clip: ``(B, C, samples)`` -> ``(B, C, n_fft // 2 + 1, frames)``.

    Calls :func:`fastai_audio.functional.stft_power` where the batch is. Output float32 (float64 for float64
    input; float32 under fp16/bf16 autocast: the STFT always runs in float32).

    Args:
        n_fft: FFT size.
        hop_length: samples between frames (default ``win_length // 4``).
        win_length: window length (default ``n_fft``).
        window: a window tensor of ``win_length`` values (default: periodic Hann).
        center: pad ``n_fft // 2`` on both sides so frame ``t`` is centred on sample ``t * hop_length``.
        pad_mode: padding for ``center``: ``'reflect'``, ``'constant'``, ``'replicate'``, ``'circular'``.
        power: 2 for power, 1 for magnitude.
        trainable: make the window an ``nn.Parameter`` (see ``AudioFrontEnd``).

    Examples:
        >>> Spectrogram(n_fft=512, hop_length=128)(torch.randn(4, 16000)).shape
        torch.Size([4, 1, 257, 126])
    """

    accepts = (TensorAudio,)
    order = 20

    def __init__(
        self,
        n_fft: int = 1024,
        hop_length: int | None = None,
        win_length: int | None = None,
        *,
        window: torch.Tensor | None = None,
        center: bool = True,
        pad_mode: str = "reflect",
        power: float = 2.0,
        trainable: bool = False,
    ):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = check_stft_args(
            n_fft, hop_length, win_length, power=power, pad_mode=pad_mode
        )
        self.center, self.pad_mode, self.power, self.trainable = center, pad_mode, power, trainable
        window = torch.hann_window(self.win_length, periodic=True) if window is None else torch.as_tensor(window)
        if window.shape != (self.win_length,):
            raise ParameterError(
                f"window must be a 1-D tensor of win_length={self.win_length} values, got {tuple(window.shape)}"
            )
        self._constant("window", window.float())

    def _constant(self, name: str, value: torch.Tensor):
        """A precomputed tensor: a parameter when ``trainable``, else a buffer (saved, moved, not optimised)."""
        if self.trainable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_audio_batch(x)
        n = _cpu_chunk(x)
        return self._power(x) if n is None else torch.cat([self._power(c) for c in x.split(n)])

    def _power(self, x: torch.Tensor) -> torch.Tensor:
        """The step on one chunk of clips."""
        return stft_power(
            x,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            power=self.power,
        )

    def describe(self, meta: dict) -> dict:
        out = _from_audio(meta, hop_length=self.hop_length, center=self.center, power=self.power, **self._axes(meta))
        lengths = _frame_lengths(meta.get("lengths"), self.hop_length, self.center, self.n_fft)
        if lengths is not None:
            out["lengths"] = lengths
        return out

    def _axes(self, meta: dict) -> dict:
        return {"scale": "linear", "n_fft": self.n_fft}

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, power={self.power}"


class MelSpectrogram(Spectrogram):
    """Mel spectrogram of each clip: ``(B, C, samples)`` -> ``(B, C, n_mels, frames)``.

    ``stft_power`` then a ``mel_filterbank`` matmul where the batch is, with every parameter of both functions
    (torchaudio's names). Matches ``librosa.feature.melspectrogram`` and torchaudio's ``MelSpectrogram`` given the
    same parameters (tested to 1e-5 relative in float64). A ``TensorAudio`` batch must be at ``sample_rate``.

    Args:
        sample_rate: rate of the audio (Hz).
        n_fft: FFT size.
        hop_length: samples between frames (default ``win_length // 4``).
        win_length: window length (default ``n_fft``).
        n_mels: number of mel bands.
        f_min: lowest frequency (Hz).
        f_max: highest frequency (Hz), at most ``sample_rate / 2`` (default).
        mel_scale: ``'slaney'`` (librosa's default) or ``'htk'`` (torchaudio's default).
        norm: ``'slaney'`` (filters of equal area) or None (peak 1).
        window: a window tensor of ``win_length`` values (default: periodic Hann).
        center: centre frames on their sample (pad ``n_fft // 2``).
        pad_mode: padding for ``center``.
        power: 2 for power, 1 for magnitude.
        trainable: make the window and the filterbank ``nn.Parameter``s (see ``AudioFrontEnd``).

    Examples:
        >>> mel = MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64, f_min=20, f_max=8000)
        >>> mel(torch.randn(8, 1, 64000)).shape
        torch.Size([8, 1, 64, 251])
        >>> mel(TensorAudio(torch.randn(8, 1, 64000), sample_rate=16000)).scale
        'mel'
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int | None = None,
        win_length: int | None = None,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        *,
        mel_scale: str = "slaney",
        norm: str | None = "slaney",
        window: torch.Tensor | None = None,
        center: bool = True,
        pad_mode: str = "reflect",
        power: float = 2.0,
        trainable: bool = False,
    ):
        super().__init__(
            n_fft,
            hop_length,
            win_length,
            window=window,
            center=center,
            pad_mode=pad_mode,
            power=power,
            trainable=trainable,
        )
        self.sample_rate = check_sample_rate(sample_rate)
        self.n_mels, self.f_min, self.f_max = n_mels, float(f_min), f_max
        self.mel_scale, self.norm = mel_scale, norm
        fb = mel_filterbank(sample_rate, self.n_fft, n_mels, f_min=f_min, f_max=f_max, mel_scale=mel_scale, norm=norm)
        self._constant("fb", fb)

    def _power(self, x: torch.Tensor) -> torch.Tensor:
        spec = super()._power(x)  # float32 (or float64) whatever the autocast state
        with full_precision(spec):  # keep the filterbank product in that precision
            return torch.matmul(self.fb.to(spec.dtype), spec)

    def _axes(self, meta: dict) -> dict:
        _check_rate(meta, self.sample_rate, "MelSpectrogram")
        return {
            "scale": "mel",
            "sample_rate": self.sample_rate,
            "f_min": self.f_min,
            "f_max": self.f_max or self.sample_rate / 2,
            "mel_scale": self.mel_scale,
        }

    def extra_repr(self) -> str:
        mel = f"n_mels={self.n_mels}, f_min={self.f_min}, f_max={self.f_max}, mel_scale={self.mel_scale!r}"
        return f"sample_rate={self.sample_rate}, {super().extra_repr()}, {mel}, norm={self.norm!r}"


class CQT(SpectralStep):
    """Constant-Q transform of each clip: ``(B, C, samples)`` -> ``(B, C, n_bins, frames)``.

    Calls :func:`fastai_audio.functional.cqt` (nnAudio's CQT1992v2 approach: precomputed complex kernels applied as
    a strided ``conv1d``, normalised like ``librosa.cqt``) where the batch is. Output ``'power'`` by default, so
    ``AmplitudeToDB()`` follows it as it follows ``MelSpectrogram``.

    Args:
        sample_rate: rate of the audio (Hz).
        hop_length: samples between frames.
        f_min: centre frequency of the lowest bin (Hz; default C1, 32.70 Hz).
        n_bins: number of bins; the top one must stay below ``sample_rate / 2``.
        bins_per_octave: bins per octave (12: semitones).
        filter_scale: scales every filter's length (Q).
        window: ``'hann'``, ``'hamming'`` or ``'blackman'``.
        norm: scale like ``librosa.cqt(scale=True)``; False keeps unit-L1 kernels.
        center: centre frames on their sample.
        pad_mode: padding for ``center``.
        output: ``'power'``, ``'magnitude'``.

    Examples:
        >>> CQT(sample_rate=16000, hop_length=256)(torch.randn(2, 16000)).shape
        torch.Size([2, 1, 84, 63])
    """

    accepts = (TensorAudio,)
    order = 20

    def __init__(
        self,
        sample_rate: int = 16000,
        hop_length: int = 512,
        f_min: float = 32.70,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        *,
        filter_scale: float = 1.0,
        window: str = "hann",
        norm: bool = True,
        center: bool = True,
        pad_mode: str = "constant",
        output: str = "power",
    ):
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)
        self.hop_length = check_positive("hop_length", hop_length, integer=True)
        self.f_min, self.n_bins, self.bins_per_octave = f_min, n_bins, bins_per_octave
        self.filter_scale, self.window, self.norm = filter_scale, window, norm
        self.center, self.pad_mode = center, pad_mode
        self.output = check_choice("output", output, ("power", "magnitude"))
        # builds (and caches) the kernels now: bad parameters fail here, not at the first batch
        cqt_kernels(
            sample_rate,
            f_min=f_min,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            filter_scale=filter_scale,
            window=window,
            norm=norm,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cqt(
            as_audio_batch(x),
            self.sample_rate,
            hop_length=self.hop_length,
            f_min=self.f_min,
            n_bins=self.n_bins,
            bins_per_octave=self.bins_per_octave,
            filter_scale=self.filter_scale,
            window=self.window,
            norm=self.norm,
            center=self.center,
            pad_mode=self.pad_mode,
            output=self.output,
        )

    def describe(self, meta: dict) -> dict:
        _check_rate(meta, self.sample_rate, "CQT")
        return _from_audio(
            meta,
            hop_length=self.hop_length,
            center=self.center,
            power=2.0 if self.output == "power" else 1.0,
            scale="cqt",
            sample_rate=self.sample_rate,
            f_min=self.f_min,
            bins_per_octave=self.bins_per_octave,
        )

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, hop_length={self.hop_length}, f_min={self.f_min}, n_bins={self.n_bins}, "
            f"bins_per_octave={self.bins_per_octave}, output={self.output!r}"
        )


class AmplitudeToDB(SpectralStep):
    """Convert a power (or magnitude) spectrogram to decibels, per item: ``(B, C, F, T)`` -> same shape.

    Calls :func:`fastai_audio.functional.amplitude_to_db`. With ``ref='max'`` each item's loudest bin is 0 dB and
    ``top_db`` clamps each item ``top_db`` below its own maximum: never across the batch, so a batch equals its
    items one by one.

    Args:
        stype: ``'power'`` (10 log10) or ``'magnitude'`` (20 log10): what the input holds.
        ref: ``'max'`` (per item) or a positive reference value.
        amin: floor applied before the log.
        top_db: dynamic range kept below each item's maximum, or None.

    Examples:
        >>> AmplitudeToDB(top_db=80)(MelSpectrogram()(torch.randn(2, 16000))).amax(dim=(1, 2, 3))
        tensor([0., 0.])
    """

    order = 30

    def __init__(self, stype: str = "power", ref="max", amin: float = 1e-10, top_db: float | None = 80.0):
        super().__init__()
        check_db_args(stype, ref, amin, top_db)
        self.stype, self.ref, self.amin, self.top_db = stype, ref, amin, top_db

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return amplitude_to_db(as_spec_batch(x), stype=self.stype, ref=self.ref, amin=self.amin, top_db=self.top_db)

    def describe(self, meta: dict) -> dict:
        return {**super().describe(meta), "db": True}

    def extra_repr(self) -> str:
        return f"stype={self.stype!r}, ref={self.ref!r}, amin={self.amin}, top_db={self.top_db}"


class LogCompress(SpectralStep):
    """Log compression ``log10(1 + scale * x)`` of a power spectrogram: ``(B, C, F, T)`` -> same shape.

    Calls :func:`fastai_audio.functional.log_compress`. The MusiCNN front-end (musicnn, Essentia) uses it with
    ``scale=10000`` where others take decibels (``mel_transforms('musicnn')``); it stands where ``AmplitudeToDB``
    does (order 30), and needs no reference or floor.

    Args:
        scale: the gain before the log.

    Examples:
        >>> LogCompress(scale=10000)(torch.full((1, 1, 2, 3), 0.0009)).unique()
        tensor([1.])
    """

    order = 30

    def __init__(self, scale: float = 10000.0):
        super().__init__()
        self.scale = check_compression(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_compress(as_spec_batch(x), self.scale)

    def describe(self, meta: dict) -> dict:
        return {**super().describe(meta), "db": False, "log_scale": self.scale}

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class MFCC(SpectralStep):
    """Mel-frequency cepstral coefficients of a log-mel batch: ``(B, C, n_mels, T)`` -> ``(B, C, n_mfcc, T)``.

    Calls :func:`fastai_audio.functional.mfcc` (a DCT-II over the mel axis, like ``librosa.feature.mfcc``). Put it
    after ``MelSpectrogram`` and ``AmplitudeToDB``.

    Args:
        n_mfcc: number of coefficients kept (at most ``n_mels``).
        dct_norm: ``'ortho'`` or None.

    Examples:
        >>> MFCC(n_mfcc=20)(torch.randn(4, 1, 64, 100)).shape
        torch.Size([4, 1, 20, 100])
    """

    order = 40

    def __init__(self, n_mfcc: int = 20, *, dct_norm: str | None = "ortho"):
        super().__init__()
        self.n_mfcc, self.dct_norm = check_mfcc_args(n_mfcc, dct_norm), dct_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mfcc(as_spec_batch(x), self.n_mfcc, dct_norm=self.dct_norm)

    def describe(self, meta: dict) -> dict:
        return {**super().describe(meta), "scale": "mfcc"}

    def extra_repr(self) -> str:
        return f"n_mfcc={self.n_mfcc}, dct_norm={self.dct_norm!r}"


class Delta(SpectralStep):
    """Stack deltas (and delta-deltas) as extra channels: ``(B, C, F, T)`` -> ``(B, C * (1 + order), F, T)``.

    Calls :func:`fastai_audio.functional.deltas` along time (librosa's ``feature.delta``, width ``width``);
    ``order=2`` adds the deltas of the deltas. Three channels (static, delta, delta-delta) also suit ImageNet stems.

    Args:
        width: odd window length in frames (>= 3).
        order: 1 (deltas) or 2 (deltas and delta-deltas); kept as ``n_deltas`` (``order`` is the step's place
            among the batch transforms).

    Examples:
        >>> Delta(order=2)(torch.randn(4, 1, 64, 100)).shape
        torch.Size([4, 3, 64, 100])
    """

    order = 50

    def __init__(self, width: int = 9, order: int = 2):
        super().__init__()
        self.width = check_delta_width(width)
        self.n_deltas = check_choice("order", order, (1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stack = [as_spec_batch(x)]
        stack.append(deltas(stack[0], self.width))
        if self.n_deltas == 2:
            stack.append(deltas(stack[1], self.width))
        return torch.cat(stack, dim=1)

    def describe(self, meta: dict) -> dict:
        return {**super().describe(meta), "deltas": self.n_deltas}

    def extra_repr(self) -> str:
        return f"width={self.width}, order={self.n_deltas}"


class SpecNormalize(SpectralStep):
    """Standardise spectrograms: per frequency bin with statistics of the training set, or per item.

    ``mode='dataset'`` (default): mean and std of every (channel, frequency) row, estimated at set-up from
    ``n_batches`` training batches (after the steps before it), then ``(x - mean) / std``; the statistics are
    buffers (``mean``, ``std``: saved with the model, moved with it), and ``decode`` undoes the step, so
    ``show_batch`` draws decibels. ``mode='item'``: each item to zero mean and unit variance over all its values
    (no set-up, nothing to undo). Give ``mean`` and ``std`` to skip the estimate.

    Its name keeps it apart from fastai's image ``Normalize`` (ImageNet statistics per RGB channel), which
    ``from fastai_audio.all import *`` leaves in place; ``fastai_audio.transforms.Normalize`` is this class under
    its name up to version 0.1.

    Args:
        mode: ``'dataset'`` or ``'item'``.
        mean: ``(C, F)`` or broadcastable, for ``'dataset'``; estimated when None.
        std: like ``mean``.
        n_batches: training batches sampled for the estimate.
        eps: added to the standard deviation.

    Examples:
        >>> tfms = [MelSpectrogram(), AmplitudeToDB(), SpecNormalize()]
        >>> dls = AudioDataLoaders.from_folder("data", duration=1.0, bs=4, batch_tfms=tfms)
        >>> tfms[-1].mean.shape
        torch.Size([1, 1, 128, 1])
    """

    order = 60

    def __init__(self, mode: str = "dataset", *, mean=None, std=None, n_batches: int = 4, eps: float = 1e-6):
        super().__init__()
        self.mode = check_choice("mode", mode, ("dataset", "item"))
        self.n_batches = check_positive("n_batches", n_batches, integer=True)
        self.eps = eps
        self.register_buffer("mean", None if mean is None else _as_stat(torch.as_tensor(mean, dtype=torch.float32)))
        self.register_buffer("std", None if std is None else _as_stat(torch.as_tensor(std, dtype=torch.float32)))
        self.register_load_state_dict_pre_hook(_make_room_for_statistics)

    @property
    def fitted(self) -> bool:
        """Whether the step can run: ``mode='item'``, or the statistics are set."""
        return self.mode == "item" or (self.mean is not None and self.std is not None)

    def setup(self, dl, before=None) -> SpecNormalize:
        """Estimate the statistics (``mode='dataset'``, none given) from ``n_batches`` batches of ``dl``, each
        passed through ``before`` (the steps ahead of this one, if ``dl`` does not run them)."""
        if self.fitted:
            return self
        with in_main_process(dl):
            batches = [b[0] for b in islice(dl, self.n_batches)]
        if not batches:
            raise ParameterError(
                f"SpecNormalize found no training batch to estimate its statistics from: the training loader has "
                f"{dl.n} items and bs={dl.bs}{' with drop_last=True' if dl.drop_last else ''}, so it yields none "
                f"(training would do nothing either); use bs <= {dl.n}"
            )
        with torch.no_grad():
            return self.fit([b if before is None else before(b) for b in batches])

    def fit(self, batches) -> SpecNormalize:
        """Set ``mean`` and ``std`` (per channel and frequency) from spectrogram batches ``(B, C, F, T)``; in padded
        variable-length batches only each item's own frames count (its ``lengths``), not the padding."""
        frames, device = [], None
        for x in batches:
            lengths = x.__dict__.get("lengths") if isinstance(x, TensorSpectrogram) else None
            device = x.device
            spec = as_spec_batch(x.as_subclass(torch.Tensor)).detach().float().cpu()
            frames += (
                [item[..., : int(lengths[i])] for i, item in enumerate(spec)]
                if lengths is not None
                else [spec.permute(1, 2, 0, 3).flatten(2)]
            )
        xs = torch.cat(frames, dim=-1)  # (C, F, every frame)
        self.mean = xs.mean(dim=-1, keepdim=True)[None].to(device)
        self.std = xs.std(dim=-1, keepdim=True)[None].to(device)
        return self

    def _stats(self, x: torch.Tensor):
        if not self.fitted:
            raise ParameterError(
                "SpecNormalize(mode='dataset') has no statistics yet: use it in a DataLoaders' batch_tfms (it "
                "estimates them from training batches), pass mean= and std=, or use mode='item'"
            )
        if self.mean.device != x.device:  # estimated or loaded elsewhere: kept where the batches are from now on
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return self.mean.to(x.dtype), self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_spec_batch(x)
        if self.mode == "item":
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True)
        else:
            mean, std = self._stats(x)
        return (x - mean) / (std + self.eps)

    def describe(self, meta: dict) -> dict:
        return {**super().describe(meta), "normalized": True}

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the step (``mode='dataset'``): ``x * std + mean``; a ``TensorSpectrogram`` comes back marked not
        normalised. ``mode='item'`` and a step without statistics return ``x``."""
        if self.mode == "item" or self.mean is None:
            return x
        mean, std = self._stats(x)
        out = x.as_subclass(torch.Tensor) * (std + self.eps) + mean
        if isinstance(x, TensorSpectrogram):
            out = TensorSpectrogram(out)
            out.__dict__.update(x.__dict__, normalized=False)
        return out

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, n_batches={self.n_batches}, fitted={self.fitted}"


Normalize = SpecNormalize  # its name up to 0.1 (not exported by ``fastai_audio.all``, where fastai's Normalize stays)


def _as_stat(t: torch.Tensor) -> torch.Tensor:
    """``(F,)`` -> ``(1, 1, F, 1)``; ``(C, F)`` -> ``(1, C, F, 1)``; 4-D kept."""
    if t.ndim == 1:
        return t[None, None, :, None]
    if t.ndim == 2:
        return t[None, :, :, None]
    return t


def _make_room_for_statistics(module, state_dict, prefix, *args):
    """Load-state-dict pre-hook of ``SpecNormalize``: a step without statistics yet takes those of the state dict
    (torch copies into existing buffers only, and would call them unexpected)."""
    for name in ("mean", "std"):
        value = state_dict.get(prefix + name)
        if value is not None and getattr(module, name) is None:
            setattr(module, name, torch.empty_like(value))


def _device_of(module: nn.Module, default: torch.Tensor) -> torch.device:
    p = next(module.parameters(), None)
    if p is None:
        p = next(module.buffers(), None)
    return default.device if p is None else p.device


class AudioFrontEnd(nn.Sequential, SpectralStep):
    """Spectral steps as one ``nn.Sequential``, to run inside a model (e.g. with ``trainable=True`` steps).

    A model built as ``nn.Sequential(AudioFrontEnd([...]), cnn)`` takes raw audio batches ``(B, C, samples)``; its
    ``parameters()`` include a trainable window or filterbank, which the Learner then optimises, and its
    ``state_dict()`` the ``SpecNormalize`` statistics. ``audio_learner(dls, front_end=[...])`` builds the model this
    way and calls ``setup`` for you. Like its steps, it returns a ``TensorSpectrogram`` for a ``TensorAudio``.

    Examples:
        >>> front = AudioFrontEnd([MelSpectrogram(trainable=True), AmplitudeToDB(), SpecNormalize()])
        >>> front = front.setup(audio_dls.train)       # statistics for SpecNormalize(mode='dataset')
        >>> model = nn.Sequential(front, create_audio_model(resnet18, n_out=2, pretrained=False))
        >>> model(audio_dls.one_batch()[0]).shape      # raw audio in: (4, 1, 16000)
        torch.Size([4, 2])
    """

    def __init__(self, steps):
        named = OrderedDict(steps if isinstance(steps, dict) else ((str(i), s) for i, s in enumerate(steps)))
        for step in named.values():
            if not isinstance(step, SpectralStep):
                raise ParameterError(
                    "AudioFrontEnd takes the spectral steps (MelSpectrogram, AmplitudeToDB, SpecNormalize..., or a "
                    f"SpectralStep of your own), got {type(step).__module__}.{type(step).__name__}"
                )
        super().__init__(named)
        self.register_load_state_dict_pre_hook(_rename_0_1_keys)

    @property
    def accepts(self) -> tuple:
        return self[0].accepts if len(self) else _TYPED

    @property
    def order(self) -> int:
        return self[0].order if len(self) else 20

    def describe(self, meta: dict) -> dict:
        for step in self:
            meta = step.describe(meta)
        return meta

    def setup(self, dl, before=None) -> AudioFrontEnd:
        """Estimate what needs data (``SpecNormalize(mode='dataset')`` statistics) from batches of raw audio ``dl``
        (on the front-end's device), each passed through the steps ahead."""
        for i, step in enumerate(self):

            def ahead(x, i=i):
                x = x if before is None else before(x)
                return self[:i](x.to(_device_of(self, x))) if i else x

            step.setup(dl, before=ahead)
        return self


def _rename_0_1_keys(module, state_dict, prefix, *args):
    """Load-state-dict pre-hook of ``AudioFrontEnd``: a state dict saved by fastai_audio 0.1, whose front-end kept
    its steps' tensors under ``layers.<k>`` (``k`` counting the waveform steps only), loads under today's keys."""
    waveform = [i for i, step in enumerate(module) if isinstance(step, (Spectrogram, CQT))]
    for key in [k for k in state_dict if k.startswith(prefix + "layers.")]:
        k, _, rest = key[len(prefix + "layers.") :].partition(".")
        if k.isdigit() and int(k) < len(waveform):
            state_dict[f"{prefix}{waveform[int(k)]}.{rest}"] = state_dict.pop(key)


_ADAPTER_OWN = frozenset({"module", "accepts", "order", "split_idx", "init_enc", "train_setup", "input_types"})


class SpectralTransform(TypedTransform):
    """The fastai adapter: any spectral step (an ``nn.Module``) as a batch transform.

    ``AudioDataLoaders`` and every ``AudioBlock`` loader put the steps of ``batch_tfms`` in one of these for you;
    build one yourself only for a fastai ``Pipeline`` of your own. It runs the step on the batch's device (moving the
    step there once) without autograd, gives typed batches the step's ``TensorSpectrogram`` metadata, passes labels
    through, estimates statistics at set-up from the training loader (``SpecNormalize``), and decodes for
    ``show_batch``. Attributes it does not have are the step's (``dls.after_batch[-1].mean``). A module that is not a
    ``SpectralStep`` (e.g. a torchaudio transform) runs on the plain tensor and its output keeps the batch's
    metadata. In a fastai ``DataBlock``'s ``batch_tfms`` pass the steps themselves: ``DataBlock`` keeps one
    transform per class when it merges them, so adapters made by hand would collapse into one.

    Args:
        module: the step.
        order: its place among the batch transforms (default: the step's ``order``).

    Examples:
        >>> tfm = SpectralTransform(MelSpectrogram(n_mels=64))
        >>> x, y = tfm((TensorAudio(torch.randn(4, 1, 16000), sample_rate=16000), TensorCategory([0, 1, 0, 1])))
        >>> type(x).__name__, x.shape, y.tolist()
        ('TensorSpectrogram', torch.Size([4, 1, 64, 63]), [0, 1, 0, 1])
    """

    plain_tensors = True

    def __init__(self, module: nn.Module, order: int | None = None):
        if not isinstance(module, nn.Module):
            raise ParameterError(f"SpectralTransform takes an nn.Module (a spectral step), got {type(module).__name__}")
        super().__init__()
        self.module = module
        self.accepts = getattr(module, "accepts", _TYPED) if isinstance(module, SpectralStep) else _TYPED
        self.order = getattr(module, "order", 20) if order is None else order
        self._device = None

    @property
    def name(self) -> str:
        """How fastai's ``Pipeline`` lists the transform: the step's class and arguments."""
        return f"{type(self.module).__name__}({self.module.extra_repr()})"

    def __repr__(self) -> str:
        return f"SpectralTransform({self.module!r})"

    def __getattr__(self, name: str):
        if name.startswith("_") or name == "module":
            raise AttributeError(name)
        return getattr(self.module, name)

    def __setattr__(self, name: str, value):
        # ``dls.after_batch[-1].mean = ...`` sets the step's statistics, not a copy the step would never see
        if name in _ADAPTER_OWN or name.startswith("_") or "module" not in self.__dict__ or hasattr(type(self), name):
            super().__setattr__(name, value)
        elif hasattr(self.module, name) and name not in self.__dict__:
            setattr(self.module, name, value)
        else:
            super().__setattr__(name, value)

    def encodes(self, x):
        if not self.takes(x):
            return x
        step = self.module
        plain = x if type(x) is torch.Tensor else x.as_subclass(torch.Tensor)  # (no fastai hook per attribute read)
        with torch.no_grad():  # a constant in a DataLoader, even when trainable: no autograd graph per batch
            if plain.device != self._device:
                step.to(plain.device)
                self._device = plain.device
            if isinstance(step, SpectralStep):
                meta = step.describe({} if plain is x else x.__dict__)
            else:
                meta = {k: v for k, v in x.__dict__.items() if k not in ("path", "lengths")}
            return _typed(step(plain), meta)

    def decodes(self, x: TensorSpectrogram):
        decode = getattr(self.module, "decode", None)
        return decode(x) if callable(decode) else x

    def setups(self, dl):
        if isinstance(self.module, SpectralStep):
            self.module.setup(dl)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_device", None)  # checked again after unpickling, wherever the step then lives
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._device = None


def spectral_steps(tfms) -> list[nn.Module]:
    """The spectral steps among batch transforms (a fastai ``Pipeline``, such as ``dls.after_batch``, or a list):
    ``SpectralTransform``s unwrapped, ``AudioFrontEnd``s flattened, everything else left out.

    Examples:
        >>> [type(s).__name__ for s in spectral_steps(dls.after_batch)]
        ['MelSpectrogram', 'AmplitudeToDB', 'SpecNormalize']
    """
    out = []
    for t in getattr(tfms, "fs", tfms) or []:
        step = t.module if isinstance(t, SpectralTransform) else t
        if isinstance(step, AudioFrontEnd):
            out += list(step)
        elif isinstance(step, nn.Module):
            out.append(step)
    return out


def as_batch_transforms(tfms) -> list | None:
    """The batch transforms with every ``nn.Module`` put in a ``SpectralTransform`` (what the audio loaders do with
    their ``after_batch``); a fastai ``Pipeline``, already built, is returned as it is."""
    if tfms is None or hasattr(tfms, "fs"):
        return tfms
    listed = [tfms] if isinstance(tfms, nn.Module) or not isinstance(tfms, Iterable) else tfms
    return [SpectralTransform(t) if isinstance(t, nn.Module) else t for t in listed]
