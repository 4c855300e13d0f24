"""Batch transforms that turn waveforms into spectrograms on the batch's device: the "on the fly" front-end.

Each transform is a picklable fastai ``Transform`` that stores its parameters and an ``nn.Module`` (``layer``) holding
its precomputed buffers (window, filterbank, DCT matrix). The layer calls exactly one function of
``fastai_audio.functional``; the transform moves the layer to the batch's device once and wraps the result in a
``TensorSpectrogram`` that knows its axes. Inputs: ``TensorAudio`` batches ``(B, C, samples)`` from the loaders, or
plain tensors ``(B, samples)`` / ``(B, C, samples)``; outputs ``(B, C, freq, frames)``. Labels pass through untouched.

With ``trainable=True`` the window and filterbank are ``nn.Parameter``s: put the transforms in the model with
``AudioFrontEnd`` so the optimiser updates them (nnAudio's idea); in a ``DataLoader`` they act as constants.
"""

from __future__ import annotations

from itertools import islice

import torch
from torch import nn

from .._compat import in_main_process
from .._validate import check_choice, check_positive, check_sample_rate
from ..core import TensorAudio, TensorSpectrogram
from ..errors import ParameterError
from ..functional import amplitude_to_db, cqt, cqt_kernels, deltas, mel_filterbank, mfcc, stft_power
from ..functional.spectral import check_db_args, check_delta_width, check_mfcc_args, check_stft_args
from .base import TypedTransform

__all__ = [
    "Spectrogram",
    "MelSpectrogram",
    "CQT",
    "AmplitudeToDB",
    "MFCC",
    "Delta",
    "SpecNormalize",
    "AudioFrontEnd",
]


def as_audio_batch(x: torch.Tensor) -> torch.Tensor:
    """``(samples,)`` -> ``(1, 1, samples)``; ``(B, samples)`` -> ``(B, 1, samples)``; ``(B, C, samples)`` as is."""
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
    """``(freq, frames)`` -> ``(1, 1, freq, frames)``; ``(B, freq, frames)`` -> ``(B, 1, ...)``; 4-D as is."""
    if x.ndim == 2:
        return x[None, None]
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x
    raise ParameterError(f"expected a spectrogram batch (batch, channels, freq, frames), got {tuple(x.shape)}")


def _meta(x) -> dict:
    return dict(x.__dict__) if isinstance(x, (TensorAudio, TensorSpectrogram)) else {}


def _frame_lengths(lengths, hop_length: int, center: bool, n_fft: int):
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    return lengths // hop_length + 1 if center else (lengths - n_fft) // hop_length + 1


_CPU_CHUNK_SAMPLES = 8 * 64000  # samples per chunk on a CPU (8 clips of 4 s at 16 kHz)


class _STFTLayer(nn.Module):
    """Window (buffer, or parameter when trainable) + ``stft_power``."""

    def __init__(self, n_fft, hop_length, win_length, window, center, pad_mode, power, trainable):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.center, self.pad_mode, self.power = center, pad_mode, power
        window = torch.hann_window(win_length, periodic=True) if window is None else torch.as_tensor(window).float()
        if window.shape != (win_length,):
            raise ParameterError(
                f"window must be a 1-D tensor of win_length={win_length} values, got {tuple(window.shape)}"
            )
        if trainable:
            self.window = nn.Parameter(window)
        else:
            self.register_buffer("window", window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.ndim < 2:
            return self._forward(x)
        # On a CPU, a few clips at a time keep the complex spectrum in cache: about 2x faster for a batch of 64
        # clips of 4 s than one call on the whole batch, with identical results. GPUs want the whole batch.
        n = max(1, _CPU_CHUNK_SAMPLES // max(1, x[0].numel()))
        return self._forward(x) if x.shape[0] <= n else torch.cat([self._forward(c) for c in x.split(n)])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
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


class _MelLayer(_STFTLayer):
    """``_STFTLayer`` followed by a mel filterbank (buffer, or parameter when trainable)."""

    def __init__(self, fb: torch.Tensor, *args):
        super().__init__(*args)
        trainable = isinstance(self.window, nn.Parameter)
        if trainable:
            self.fb = nn.Parameter(fb)
        else:
            self.register_buffer("fb", fb)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = super()._forward(x)  # float32 (or float64) whatever the autocast state
        with torch.autocast(spec.device.type, enabled=False):  # keep the filterbank product in that precision
            return torch.matmul(self.fb.to(spec.dtype), spec)


class _LayerTransform(TypedTransform):
    """A transform computing with ``self.layer``, moved to each batch's device (a no-op once it is there)."""

    plain_tensors = True

    _layer_device = None

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on a plain ``(B, C, samples)`` tensor, in one call (no CPU chunking, whose branch on the batch
        size an exported graph cannot keep): what an exported inference graph runs."""
        forward = getattr(self.layer, "_forward", self.layer)
        return forward(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        plain = x.as_subclass(torch.Tensor)
        if self._layer_device != plain.device:
            self.layer.to(plain.device)
            self._layer_device = plain.device
        return self.layer(plain)

    def encodes(self, x):
        # In a DataLoader the layer is a constant, even when trainable: no autograd graph per batch. AudioFrontEnd
        # calls _encode directly, with gradients.
        if not self.takes(x):
            return x
        with torch.no_grad():
            return self._encode(x)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_layer_device", None)  # checked again after unpickling, wherever the layer then lives
        return state


def _check_rate(x, sample_rate: int, name: str):
    rate = x.__dict__.get("sample_rate") if isinstance(x, TensorAudio) else None
    if rate is not None and rate != sample_rate:
        raise ParameterError(
            f"the batch is at {rate} Hz but {name} was built for sample_rate={sample_rate}; build it with "
            f"sample_rate={rate}, or resample the audio with AudioBlock(sample_rate={sample_rate})"
        )


class Spectrogram(_LayerTransform):
    """Power (or magnitude) spectrogram of each clip: ``(B, C, samples)`` -> ``(B, C, n_fft // 2 + 1, frames)``.

    Calls :func:`fastai_audio.functional.stft_power` on the batch's device. Output float32 (float64 for float64
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

    order = 20
    accepts = (TensorAudio,)

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
        self.layer = self._make_layer(window)

    def _make_layer(self, window) -> nn.Module:
        return _STFTLayer(
            self.n_fft, self.hop_length, self.win_length, window, self.center, self.pad_mode, self.power, self.trainable
        )

    def _axes(self, x) -> dict:
        return {"scale": "linear", "n_fft": self.n_fft}

    def _encode(self, x) -> TensorSpectrogram:
        meta = _meta(x)
        out = TensorSpectrogram(self._run(as_audio_batch(x)))
        out.__dict__.update({k: v for k, v in meta.items() if k not in ("path", "lengths")})
        out.__dict__.update(
            self._axes(x), hop_length=self.hop_length, center=self.center, power=self.power, db=False, normalized=False
        )
        lengths = _frame_lengths(meta.get("lengths"), self.hop_length, self.center, self.n_fft)
        if lengths is not None:
            out.lengths = lengths
        return out


class MelSpectrogram(Spectrogram):
    """Mel spectrogram of each clip: ``(B, C, samples)`` -> ``(B, C, n_mels, frames)``.

    ``stft_power`` then a ``mel_filterbank`` matmul, on the batch's device, with every parameter of both functions
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
        >>> tfm = MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64, f_min=20, f_max=8000)
        >>> tfm(TensorAudio(torch.randn(8, 1, 64000), sample_rate=16000)).shape
        torch.Size([8, 1, 64, 251])
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
        self.sample_rate = check_sample_rate(sample_rate)
        self.n_mels, self.f_min, self.f_max = n_mels, float(f_min), f_max
        self.mel_scale, self.norm = mel_scale, norm
        self._fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min=f_min, f_max=f_max, mel_scale=mel_scale, norm=norm)
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
        del self._fb

    def _make_layer(self, window) -> nn.Module:
        return _MelLayer(
            self._fb,
            self.n_fft,
            self.hop_length,
            self.win_length,
            window,
            self.center,
            self.pad_mode,
            self.power,
            self.trainable,
        )

    def _axes(self, x) -> dict:
        _check_rate(x, self.sample_rate, "MelSpectrogram")
        return {
            "scale": "mel",
            "sample_rate": self.sample_rate,
            "f_min": self.f_min,
            "f_max": self.f_max or self.sample_rate / 2,
            "mel_scale": self.mel_scale,
        }


class _CQTLayer(nn.Module):
    def __init__(self, sample_rate, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        self.sample_rate = sample_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cqt(x, self.sample_rate, **self.kwargs)


class CQT(_LayerTransform):
    """Constant-Q transform of each clip: ``(B, C, samples)`` -> ``(B, C, n_bins, frames)``.

    Calls :func:`fastai_audio.functional.cqt` (nnAudio's CQT1992v2 approach: precomputed complex kernels applied as
    a strided ``conv1d``, normalised like ``librosa.cqt``) on the batch's device. Output ``'power'`` by default, so
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

    order = 20
    accepts = (TensorAudio,)

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
        self.hop_length, self.f_min, self.n_bins, self.bins_per_octave = hop_length, f_min, n_bins, bins_per_octave
        self.filter_scale, self.window, self.norm, self.center, self.pad_mode = (
            filter_scale,
            window,
            norm,
            center,
            pad_mode,
        )
        self.output = check_choice("output", output, ("power", "magnitude"))
        self.layer = _CQTLayer(
            sample_rate,
            hop_length=hop_length,
            f_min=f_min,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            filter_scale=filter_scale,
            window=window,
            norm=norm,
            center=center,
            pad_mode=pad_mode,
            output=output,
        )
        check_positive("hop_length", hop_length, integer=True)
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

    def _encode(self, x) -> TensorSpectrogram:
        _check_rate(x, self.sample_rate, "CQT")
        meta = _meta(x)
        out = TensorSpectrogram(self._run(as_audio_batch(x)))
        out.__dict__.update({k: v for k, v in meta.items() if k not in ("path", "lengths")})
        out.__dict__.update(
            scale="cqt",
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            f_min=self.f_min,
            bins_per_octave=self.bins_per_octave,
            center=self.center,
            power=2.0 if self.output == "power" else 1.0,
            db=False,
            normalized=False,
        )
        return out


class _SpecTransform(TypedTransform):
    """Transforms from spectrogram to spectrogram: metadata carried over, plain tensors accepted."""

    accepts = (TensorSpectrogram,)
    plain_tensors = True

    def _plain(self, spec: torch.Tensor) -> torch.Tensor:
        """The computation on a plain ``(B, C, F, T)`` tensor, without metadata: what ``_encode`` wraps, and what an
        exported inference graph runs."""
        raise NotImplementedError

    def _wrap(self, x, value: torch.Tensor, **meta) -> TensorSpectrogram:
        out = TensorSpectrogram(value)
        out.__dict__.update(_meta(x))
        out.__dict__.update(meta)
        return out


class AmplitudeToDB(_SpecTransform):
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
        TensorSpectrogram([0., 0.])
    """

    order = 30

    def __init__(self, stype: str = "power", ref="max", amin: float = 1e-10, top_db: float | None = 80.0):
        super().__init__()
        check_db_args(stype, ref, amin, top_db)
        self.stype, self.ref, self.amin, self.top_db = stype, ref, amin, top_db

    def _plain(self, spec: torch.Tensor) -> torch.Tensor:
        return amplitude_to_db(spec, stype=self.stype, ref=self.ref, amin=self.amin, top_db=self.top_db)

    def _encode(self, x) -> TensorSpectrogram:
        return self._wrap(x, self._plain(as_spec_batch(x.as_subclass(torch.Tensor))), db=True)


class MFCC(_SpecTransform):
    """Mel-frequency cepstral coefficients of a log-mel batch: ``(B, C, n_mels, T)`` -> ``(B, C, n_mfcc, T)``.

    Calls :func:`fastai_audio.functional.mfcc` (a DCT-II over the mel axis, like ``librosa.feature.mfcc``). Put it
    after ``MelSpectrogram`` and ``AmplitudeToDB``.

    Args:
        n_mfcc: number of coefficients kept (at most ``n_mels``).
        dct_norm: ``'ortho'`` or None.

    Examples:
        >>> tfms = [MelSpectrogram(n_mels=64), AmplitudeToDB(), MFCC(n_mfcc=20)]
    """

    order = 40

    def __init__(self, n_mfcc: int = 20, *, dct_norm: str | None = "ortho"):
        super().__init__()
        self.n_mfcc, self.dct_norm = check_mfcc_args(n_mfcc, dct_norm), dct_norm

    def _plain(self, spec: torch.Tensor) -> torch.Tensor:
        return mfcc(spec, self.n_mfcc, dct_norm=self.dct_norm)

    def _encode(self, x) -> TensorSpectrogram:
        return self._wrap(x, self._plain(as_spec_batch(x.as_subclass(torch.Tensor))), scale="mfcc")


class Delta(_SpecTransform):
    """Stack deltas (and delta-deltas) as extra channels: ``(B, C, F, T)`` -> ``(B, C * (1 + order), F, T)``.

    Calls :func:`fastai_audio.functional.deltas` along time (librosa's ``feature.delta``, width ``width``);
    ``order=2`` adds the deltas of the deltas. Three channels (static, delta, delta-delta) also suit ImageNet stems.

    Args:
        width: odd window length in frames (>= 3).
        order: 1 (deltas) or 2 (deltas and delta-deltas).

    Examples:
        >>> Delta(order=2)(torch.randn(4, 1, 64, 100)).shape
        torch.Size([4, 3, 64, 100])
    """

    order = 50

    def __init__(self, width: int = 9, order: int = 2):
        super().__init__()
        self.width = check_delta_width(width)
        self.n_deltas = check_choice("order", order, (1, 2))

    def _plain(self, spec: torch.Tensor) -> torch.Tensor:
        stack = [spec, deltas(spec, self.width)]
        if self.n_deltas == 2:
            stack.append(deltas(stack[1], self.width))
        return torch.cat(stack, dim=1)

    def _encode(self, x) -> TensorSpectrogram:
        return self._wrap(x, self._plain(as_spec_batch(x.as_subclass(torch.Tensor))), deltas=self.n_deltas)


class SpecNormalize(_SpecTransform):
    """Standardise spectrograms: per frequency bin with statistics of the training set, or per item.

    ``mode='dataset'`` (default): mean and std of every (channel, frequency) row, estimated at set-up from
    ``n_batches`` training batches (after the transforms before it), then ``(x - mean) / std``; ``decodes``
    undoes it, so ``show_batch`` draws decibels. ``mode='item'``: each item to zero mean and unit variance over
    all its values (no set-up, nothing to undo). Give ``mean`` and ``std`` to skip the estimate.

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
        >>> dls.after_batch[-1].mean.shape
        torch.Size([1, 1, 128, 1])
    """

    order = 60

    def __init__(self, mode: str = "dataset", *, mean=None, std=None, n_batches: int = 4, eps: float = 1e-6):
        super().__init__()
        self.mode = check_choice("mode", mode, ("dataset", "item"))
        self.n_batches = check_positive("n_batches", n_batches, integer=True)
        self.eps = eps
        self.mean = None if mean is None else _as_stat(torch.as_tensor(mean, dtype=torch.float32))
        self.std = None if std is None else _as_stat(torch.as_tensor(std, dtype=torch.float32))

    def setups(self, dl):
        if self.mode != "dataset" or (self.mean is not None and self.std is not None):
            return
        with in_main_process(dl):
            batches = [b[0] for b in islice(dl, self.n_batches)]
        if not batches:
            raise ParameterError(
                f"SpecNormalize found no training batch to estimate its statistics from: the training loader has "
                f"{dl.n} items and bs={dl.bs}{' with drop_last=True' if dl.drop_last else ''}, so it yields none "
                f"(training would do nothing either); use bs <= {dl.n}"
            )
        self.fit(batches)

    def fit(self, batches) -> SpecNormalize:
        """Set ``mean`` and ``std`` (per channel and frequency) from spectrogram batches ``(B, C, F, T)``; in padded
        variable-length batches only each item's own frames count (its ``lengths``), not the padding."""
        frames = []
        for x in batches:
            lengths = x.__dict__.get("lengths") if isinstance(x, TensorSpectrogram) else None
            spec = as_spec_batch(x.as_subclass(torch.Tensor)).detach().float().cpu()
            frames += (
                [item[..., : int(lengths[i])] for i, item in enumerate(spec)]
                if lengths is not None
                else [spec.permute(1, 2, 0, 3).flatten(2)]
            )
        xs = torch.cat(frames, dim=-1)  # (C, F, every frame)
        self.mean = xs.mean(dim=-1, keepdim=True)[None]
        self.std = xs.std(dim=-1, keepdim=True)[None]
        return self

    def _stats(self, x: torch.Tensor):
        if self.mean is None:
            raise ParameterError(
                "SpecNormalize(mode='dataset') has no statistics yet: use it in a DataLoaders' batch_tfms (it "
                "estimates them from training batches), pass mean= and std=, or use mode='item'"
            )
        return self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)

    def _plain(self, spec: torch.Tensor) -> torch.Tensor:
        if self.mode == "item":
            mean = spec.mean(dim=(1, 2, 3), keepdim=True)
            std = spec.std(dim=(1, 2, 3), keepdim=True)
        else:
            mean, std = self._stats(spec)
        return (spec - mean) / (std + self.eps)

    def _encode(self, x) -> TensorSpectrogram:
        return self._wrap(x, self._plain(as_spec_batch(x.as_subclass(torch.Tensor))), normalized=True)

    def decodes(self, x: TensorSpectrogram):
        if self.mode == "item" or self.mean is None:
            return x
        mean, std = self._stats(x)
        out = TensorSpectrogram(x.as_subclass(torch.Tensor) * (std + self.eps) + mean)
        out.__dict__.update(x.__dict__, normalized=False)
        return out


Normalize = SpecNormalize  # its name up to 0.1 (not exported by ``fastai_audio.all``, where fastai's Normalize stays)


def _as_stat(t: torch.Tensor) -> torch.Tensor:
    """``(F,)`` -> ``(1, 1, F, 1)``; ``(C, F)`` -> ``(1, C, F, 1)``; 4-D kept."""
    if t.ndim == 1:
        return t[None, None, :, None]
    if t.ndim == 2:
        return t[None, :, :, None]
    return t


class AudioFrontEnd(nn.Module):
    """The spectral transforms as one ``nn.Module``, to run inside a model (e.g. with ``trainable=True`` layers).

    Applies the transforms in order and registers their layers, so ``model.parameters()`` includes a trainable
    window or filterbank and the Learner optimises them. Input: raw audio batches ``(B, C, samples)``.

    ``audio_learner(dls, front_end=[...])`` builds the model this way and calls ``setup`` for you.

    Examples:
        >>> front = AudioFrontEnd([MelSpectrogram(trainable=True), AmplitudeToDB(), SpecNormalize()])
        >>> front = front.setup(audio_dls.train)       # statistics for SpecNormalize(mode='dataset')
        >>> model = nn.Sequential(front, create_audio_model(resnet18, n_out=2, pretrained=False))
        >>> model(audio_dls.one_batch()[0]).shape      # raw audio in: (4, 1, 16000)
        torch.Size([4, 2])
    """

    def __init__(self, tfms):
        super().__init__()
        self.tfms = list(tfms)
        for t in self.tfms:
            if not isinstance(t, _SPECTRAL_TFMS):
                raise ParameterError(
                    f"AudioFrontEnd takes the spectral transforms (MelSpectrogram, AmplitudeToDB, SpecNormalize...), "
                    f"got {type(t).__name__}"
                )
        self.layers = nn.ModuleList([t.layer for t in self.tfms if isinstance(getattr(t, "layer", None), nn.Module)])

    def forward(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Raw audio ``(B, C, samples)`` -> the last transform's output (or the first ``upto`` transforms')."""
        for t in self.tfms[:upto]:
            x = t._encode(x)
        return x

    def setup(self, dl) -> AudioFrontEnd:
        """Estimate what needs data (``SpecNormalize(mode='dataset')`` statistics) from batches of raw audio ``dl``."""
        for i, t in enumerate(self.tfms):
            if isinstance(t, SpecNormalize) and t.mode == "dataset" and (t.mean is None or t.std is None):
                with torch.no_grad(), in_main_process(dl):
                    t.fit([self(b[0].to(_device_of(self, b[0])), upto=i) for b in islice(dl, t.n_batches)])
        return self


_SPECTRAL_TFMS = (_LayerTransform, _SpecTransform)


def _device_of(module: nn.Module, default: torch.Tensor) -> torch.device:
    p = next(module.parameters(), None)
    if p is None:
        p = next(module.buffers(), None)
    return default.device if p is None else p.device
