"""Spectral features computed on the batch's device: power STFT, mel filterbank, decibels, MFCC and deltas.

Pure torch, no state. The deterministic matrices (mel filterbank, DCT) are built once in float64 on the CPU and cached;
callers get a copy moved to their device and dtype. Each function follows ``librosa`` numerically (the tests check
parity in float64) and uses ``torchaudio``'s parameter names.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings

import torch
import torch.nn.functional as F

from .._validate import check_choice, check_positive, check_sample_rate
from ..errors import ParameterError

__all__ = [
    "EmptyFilterWarning",
    "amplitude_to_db",
    "deltas",
    "hz_to_mel",
    "log_compress",
    "mel_filterbank",
    "mel_to_hz",
    "mfcc",
    "stft_power",
]

PAD_MODES = ("reflect", "constant", "replicate", "circular")
MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", None)
STYPES = ("power", "magnitude")
DCT_NORMS = ("ortho", None)


class EmptyFilterWarning(UserWarning):
    """A mel filter covers no FFT bin, so its channel is always zero (too many mels for the frequency resolution).

    Examples:
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     fb = mel_filterbank(16000, 256, 128)      # 129 FFT bins cannot feed 128 mels below 1 kHz
        >>> [w.category.__name__ for w in caught]
        ['EmptyFilterWarning']
    """


def _compute_dtype(x, name: str) -> torch.dtype:
    """float64 stays float64; every other floating dtype (float32, float16, bfloat16) is computed in float32.

    Only the dtype is checked, not the values: a finiteness check would read the whole batch and synchronise the GPU
    on every call (``valid_audio`` does that once, where audio enters the pipeline).
    """
    if not isinstance(x, torch.Tensor):
        raise ParameterError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ParameterError(f"{name} must be a real floating-point tensor, got {x.dtype}; convert with x.float()")
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def full_precision(x: torch.Tensor):
    """A context with autocast off on ``x``'s device (FFTs, filterbank products and decibels lose too much in
    float16/bfloat16); when autocast is already off there, a no-op context, which costs nothing per call.

    Examples:
        >>> x = torch.ones(2, 8)
        >>> with torch.autocast("cpu", dtype=torch.bfloat16), full_precision(x):
        ...     (x @ x.T).dtype
        torch.float32
    """
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------------------- STFT


def check_stft_args(n_fft, hop_length=None, win_length=None, *, power: float = 2.0, pad_mode: str = "reflect"):
    """The STFT's parameters checked, with the defaults filled in: ``(n_fft, hop_length, win_length)``.

    The one check of ``stft_power`` and of the ``Spectrogram`` / ``MelSpectrogram`` transforms, which call it when
    built, so a bad value fails there rather than at the first batch.

    Raises:
        ParameterError: ``n_fft``, ``hop_length``, ``win_length`` or ``power`` not positive (``hop_length=0`` too);
            ``win_length > n_fft``; the default hop ``win_length // 4`` is 0; an unknown ``pad_mode``.

    Examples:
        >>> check_stft_args(1024, win_length=400)
        (1024, 100, 400)
    """
    n_fft = check_positive("n_fft", n_fft, integer=True)
    win_length = check_positive("win_length", n_fft if win_length is None else win_length, integer=True)
    if win_length > n_fft:
        raise ParameterError(f"win_length={win_length} is larger than n_fft={n_fft}; use win_length <= n_fft")
    if hop_length is None:
        hop_length = win_length // 4
        if hop_length == 0:
            raise ParameterError(
                f"the default hop_length win_length // 4 is 0 for win_length={win_length}; pass hop_length >= 1"
            )
    hop_length = check_positive("hop_length", hop_length, integer=True)
    check_positive("power", power)
    check_choice("pad_mode", pad_mode, PAD_MODES)
    return n_fft, hop_length, win_length


def stft_power(
    x: torch.Tensor,
    n_fft: int = 1024,
    *,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: torch.Tensor | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 2.0,
) -> torch.Tensor:
    """Magnitude of the short-time Fourier transform raised to ``power`` (2: power spectrum, 1: magnitude).

    Same frames as ``torch.stft`` and ``librosa.stft``: with ``center=True`` the signal is padded by ``n_fft // 2``
    on both sides (``pad_mode``) and frame ``t`` is centred on sample ``t * hop_length``. The window (length
    ``win_length``) is zero-padded on both sides to ``n_fft``.

    Args:
        x: waveform ``(..., samples)``, any number of leading dimensions, floating point.
        n_fft: FFT size; the output has ``n_fft // 2 + 1`` frequency bins.
        hop_length: samples between frames; default ``win_length // 4``.
        win_length: window length, ``<= n_fft``; default ``n_fft``.
        window: a tensor of length ``win_length`` (it may require grad); default a periodic Hann window,
            ``torch.hann_window(win_length, periodic=True)``.
        center: pad so frames are centred on their sample (see above); ``False`` starts the first frame at sample 0.
        pad_mode: padding for ``center=True``: ``'reflect'``, ``'constant'`` (zeros), ``'replicate'`` or
            ``'circular'`` (numpy's ``'reflect'``, ``'constant'``, ``'edge'``, ``'wrap'``).
        power: exponent of the magnitude, any positive number.

    Returns:
        Real tensor ``(..., n_fft // 2 + 1, frames)`` (``(..., freq, time)``), on ``x``'s device, where
        ``frames = 1 + samples // hop_length`` if ``center`` else ``1 + (samples - n_fft) // hop_length``.
        Output dtype: float64 for float64 input, else float32. Half-precision input and autocast regions are computed
        in float32 (autocast is switched off inside). Tested on CPU (a CPU-vs-CUDA test runs where a GPU is present).

    Raises:
        ParameterError: ``x`` is not a floating-point tensor; ``n_fft``, ``hop_length`` or ``power`` is not positive;
            ``win_length > n_fft``; ``window`` has the wrong length; ``pad_mode`` is unknown; the clip is too short
            (``n_fft`` samples with ``center=False``, more than ``n_fft // 2`` with ``'reflect'`` padding).

    Examples:
        >>> stft_power(torch.randn(8, 2, 16000), 512, hop_length=128).shape
        torch.Size([8, 2, 257, 126])
    """
    dtype = _compute_dtype(x, "x")
    if x.ndim == 0:
        raise ParameterError("x must have a time dimension (..., samples), got a 0-d tensor")
    n_fft, hop_length, win_length = check_stft_args(n_fft, hop_length, win_length, power=power, pad_mode=pad_mode)
    samples = x.shape[-1]
    if not center and n_fft > samples:
        raise ParameterError(
            f"n_fft={n_fft} is larger than the {samples}-sample clip with center=False; "
            "use center=True or a smaller n_fft"
        )
    if center and pad_mode == "reflect" and samples <= n_fft // 2:
        raise ParameterError(
            f"reflect padding needs more than n_fft // 2 = {n_fft // 2} samples, the clip has {samples}; "
            "use pad_mode='constant', a smaller n_fft or a longer clip"
        )
    if center and pad_mode == "circular" and samples < n_fft // 2:
        raise ParameterError(
            f"circular padding needs at least n_fft // 2 = {n_fft // 2} samples, the clip has {samples}; "
            "use pad_mode='constant', a smaller n_fft or a longer clip"
        )
    if window is None:
        window = torch.hann_window(win_length, periodic=True, dtype=dtype, device=x.device)
    else:
        if not isinstance(window, torch.Tensor) or window.shape != (win_length,):
            got = tuple(window.shape) if isinstance(window, torch.Tensor) else type(window).__name__
            raise ParameterError(
                f"window must be a 1-d tensor of length win_length={win_length}, got {got}; "
                "pass win_length=len(window) or a window of that length"
            )
        window = window.to(device=x.device, dtype=dtype)

    lead = x.shape[:-1]
    with full_precision(x):
        spec = torch.stft(
            x.reshape(-1, samples).to(dtype),
            n_fft,
            hop_length=hop_length,
            win_length=win_length,
            window=window,
            center=center,
            pad_mode=pad_mode,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        if power == 2:
            # re^2 + im^2 in one allocation: several times faster than spec.abs() ** 2 on CPU (no hypot)
            ri = torch.view_as_real(spec)
            out = ri[..., 0].square()
            out.addcmul_(ri[..., 1], ri[..., 1])
        else:
            # abs() has a zero gradient at silent bins, where sqrt(re^2 + im^2) would give NaN
            out = spec.abs()
            if power != 1:
                out = out.pow(power)
    return out.reshape(*lead, *out.shape[-2:])


# --------------------------------------------------------------------------------------------------------- mel scale

_SLANEY_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def _as_float_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.as_tensor(x, dtype=torch.float64)


def hz_to_mel(hz, mel_scale: str = "slaney") -> torch.Tensor:
    """Frequencies (Hz) to mels on the ``'slaney'`` scale (linear below 1 kHz, logarithmic above; librosa's default)
    or the ``'htk'`` one (``2595 * log10(1 + f / 700)``; torchaudio's default). The one conversion of the package:
    the filterbanks and the axes of ``TensorSpectrogram.show`` use it.

    Args:
        hz: a number, array or tensor of frequencies.
        mel_scale: ``'slaney'`` or ``'htk'``.

    Returns:
        A tensor of the same shape (float64 unless ``hz`` is a floating tensor).

    Examples:
        >>> hz_to_mel([0.0, 1000.0, 8000.0], "htk")
        tensor([   0.0000,  999.9855, 2840.0230], dtype=torch.float64)
    """
    check_choice("mel_scale", mel_scale, MEL_SCALES)
    hz = _as_float_tensor(hz)
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    linear = hz / _SLANEY_F_SP
    log = _SLANEY_MIN_LOG_MEL + torch.log(hz.clamp(min=_SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return torch.where(hz >= _SLANEY_MIN_LOG_HZ, log, linear)


def mel_to_hz(mel, mel_scale: str = "slaney") -> torch.Tensor:
    """Mels back to Hz: the inverse of ``hz_to_mel`` on the same scale.

    Examples:
        >>> mel_to_hz(hz_to_mel(torch.tensor([440.0, 4000.0])))
        tensor([ 440., 4000.])
    """
    check_choice("mel_scale", mel_scale, MEL_SCALES)
    mel = _as_float_tensor(mel)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = _SLANEY_F_SP * mel
    log = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_MIN_LOG_MEL))
    return torch.where(mel >= _SLANEY_MIN_LOG_MEL, log, linear)


@functools.lru_cache(maxsize=64)
def _mel_filterbank_f64(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, mel_scale: str, norm: str | None
) -> tuple[torch.Tensor, bool]:
    """librosa.filters.mel in float64 on the CPU; also says whether some filter is empty. Never hand out unchanged."""
    f64 = torch.float64
    fft_freqs = torch.arange(n_fft // 2 + 1, dtype=f64) * (1.0 / (n_fft * (1.0 / sample_rate)))  # np.fft.rfftfreq
    mel_edges = torch.linspace(
        float(hz_to_mel(torch.tensor(f_min, dtype=f64), mel_scale)),
        float(hz_to_mel(torch.tensor(f_max, dtype=f64), mel_scale)),
        n_mels + 2,
        dtype=f64,
    )
    hz_edges = mel_to_hz(mel_edges, mel_scale)
    widths = hz_edges.diff()
    ramps = hz_edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, freq)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    fb = torch.minimum(lower, upper).clamp(min=0.0)
    if norm == "slaney":
        fb *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    empty = not bool(((hz_edges[:-2] == 0) | (fb.amax(dim=1) > 0)).all())
    return fb, empty


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int = 128,
    *,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: str = "slaney",
    norm: str | None = "slaney",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Triangular mel filters, the same matrix as ``librosa.filters.mel`` (computed in float64, then cast).

    Args:
        sample_rate: sample rate of the signal in Hz.
        n_fft: FFT size of the spectrogram the filters apply to (``n_fft // 2 + 1`` bins).
        n_mels: number of mel bands.
        f_min: lowest frequency (Hz), ``>= 0``.
        f_max: highest frequency (Hz), ``<= sample_rate / 2``; default ``sample_rate / 2``.
        mel_scale: ``'slaney'`` (linear below 1 kHz, logarithmic above; librosa's default) or ``'htk'``
            (``2595 * log10(1 + f / 700)``).
        norm: ``'slaney'`` divides each triangle by its width in Hz (``2 / (f[i + 2] - f[i])``, constant energy per
            band) or ``None`` (peak 1).
        dtype: dtype of the result.
        device: device of the result (default CPU).

    Returns:
        Tensor ``(n_mels, n_fft // 2 + 1)`` (librosa's orientation; torchaudio's ``melscale_fbanks`` is its
        transpose), so ``fb @ spec`` maps a spectrogram ``(..., freq, time)`` to ``(..., n_mels, time)``.
        A fresh tensor: modifying it does not touch the cache.

    Raises:
        ParameterError: a non-positive ``sample_rate``, ``n_fft`` or ``n_mels``; ``f_min < 0``;
            ``f_max > sample_rate / 2``; ``f_min >= f_max``; an unknown ``mel_scale`` or ``norm``.

    Warns:
        EmptyFilterWarning: some filter covers no FFT bin (too many mels for ``n_fft``); its channel is always 0.

    Examples:
        >>> fb = mel_filterbank(16000, 512, 64, f_min=20.0, f_max=8000.0)
        >>> fb.shape
        torch.Size([64, 257])
        >>> (fb @ torch.rand(4, 257, 100)).shape
        torch.Size([4, 64, 100])
    """
    sample_rate = check_sample_rate(sample_rate)
    n_fft = check_positive("n_fft", n_fft, integer=True)
    n_mels = check_positive("n_mels", n_mels, integer=True)
    check_choice("mel_scale", mel_scale, MEL_SCALES)
    if norm not in MEL_NORMS:
        raise ParameterError(f"norm must be 'slaney' or None, got {norm!r}")
    nyquist = sample_rate / 2
    f_max = nyquist if f_max is None else f_max
    if not isinstance(f_min, (int, float)) or not math.isfinite(f_min) or f_min < 0:
        raise ParameterError(f"f_min must be a frequency >= 0 Hz, got {f_min!r}")
    if not isinstance(f_max, (int, float)) or not math.isfinite(f_max) or f_max > nyquist:
        raise ParameterError(
            f"f_max={f_max!r} is above the Nyquist frequency sample_rate / 2 = {nyquist:g} Hz; "
            f"use f_max <= {nyquist:g} or f_max=None"
        )
    if f_min >= f_max:
        raise ParameterError(f"f_min={f_min!r} must be below f_max={f_max!r}; lower f_min or raise f_max")
    fb, empty = _mel_filterbank_f64(sample_rate, n_fft, n_mels, float(f_min), float(f_max), mel_scale, norm)
    if empty:
        warnings.warn(
            "Empty filters detected in mel frequency basis. Some channels will produce empty responses. "
            "Try increasing your sampling rate (and f_max) or reducing n_mels.",
            EmptyFilterWarning,
            stacklevel=2,
        )
    return fb.to(device=device, dtype=dtype, copy=True)


# ------------------------------------------------------------------------------------------------------------ dB


def check_db_args(stype: str = "power", ref="max", amin: float = 1e-10, top_db: float | None = 80.0):
    """Check ``amplitude_to_db``'s parameters (shared with ``AmplitudeToDB``, which checks them when built).

    Examples:
        >>> check_db_args(top_db=-1)
        Traceback (most recent call last):
        ...
        fastai_audio.errors.ParameterError: top_db must be None or a number >= 0 (dB), got -1
    """
    check_choice("stype", stype, STYPES)
    if not (isinstance(ref, str) and ref == "max"):
        if isinstance(ref, (str, bool)) or not isinstance(ref, (int, float)) or not math.isfinite(ref) or ref <= 0:
            raise ParameterError(f"ref must be 'max' or a positive number (the 0 dB level), got {ref!r}")
    check_positive("amin", amin)
    if top_db is not None and (
        isinstance(top_db, bool) or not isinstance(top_db, (int, float)) or not math.isfinite(top_db) or top_db < 0
    ):
        raise ParameterError(f"top_db must be None or a number >= 0 (dB), got {top_db!r}")


def check_compression(scale: float) -> float:
    """The ``scale`` of ``log_compress``: a finite number > 0 (the check the ``LogCompress`` step shares)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ParameterError(f"scale must be a finite number > 0, got {scale!r}")
    return float(scale)


def log_compress(x: torch.Tensor, scale: float = 10000.0) -> torch.Tensor:
    """``log10(1 + scale * x)``: the log compression of the MusiCNN front-end (musicnn, Essentia), per value.

    Unlike decibels it needs no floor and no reference: 0 stays 0, and quiet bins are compressed smoothly.

    Args:
        x: power (or magnitude) spectrogram, any shape, non-negative.
        scale: the gain before the log (musicnn: 10,000 on a power mel spectrogram).

    Returns:
        Tensor of ``x``'s shape. Output dtype: float64 for float64 input, else float32 (autocast is switched off
        inside). Differentiable.

    Raises:
        ParameterError: ``x`` is not a floating-point tensor; ``scale`` is not a finite number > 0.

    Examples:
        >>> log_compress(torch.tensor([0.0, 0.0009, 1.0]))     # log10(1), log10(10), log10(10001)
        tensor([0.0000, 1.0000, 4.0000])
    """
    dtype = _compute_dtype(x, "x")
    scale = check_compression(scale)
    with full_precision(x):
        return torch.log1p(x.to(dtype) * scale) / math.log(10.0)


def amplitude_to_db(
    x: torch.Tensor,
    *,
    stype: str = "power",
    ref: str | float = "max",
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> torch.Tensor:
    """Convert a power or magnitude spectrogram to decibels, per item (never across the batch).

    ``db = m * log10(max(x, amin)) - m * log10(max(ref, amin))`` with ``m = 10`` for power and ``20`` for magnitude,
    then, if ``top_db`` is set, ``db = max(db, db.max() - top_db)``, where both the ``'max'`` reference and the
    clamp are taken per item. An item is the last three dimensions ``(channel, freq, time)`` when ``x.ndim >= 3``
    and the whole tensor otherwise (torchaudio's convention: a 3-d input is one multichannel item, 4-d a batch).

    Args:
        x: power or magnitude spectrogram ``(..., channel, freq, time)`` or ``(freq, time)``, non-negative.
        stype: ``'power'`` (``10 * log10``, like ``librosa.power_to_db``) or ``'magnitude'`` (``20 * log10``, like
            ``librosa.amplitude_to_db``).
        ref: ``'max'`` (0 dB at the loudest bin of each item, librosa's ``ref=np.max`` per item) or a positive number
            (0 dB at that value; ``1.0`` is torchaudio's ``AmplitudeToDB``).
        amin: floor applied to ``x`` (and ``ref``) before the log, in ``x``'s own units. The default 1e-10 is used
            for both stypes, as torchaudio does; ``librosa.amplitude_to_db`` defaults to ``amin=1e-5`` for
            magnitudes, so pass ``amin=1e-5`` to match it.
        top_db: ``None`` or a number ``>= 0``: the dynamic range kept below each item's maximum.

    Returns:
        Tensor of ``x``'s shape in dB. Output dtype: float64 for float64 input, else float32 (autocast is switched
        off inside: float16 cannot hold ``amin``). Differentiable.

    Raises:
        ParameterError: ``x`` is not a floating-point tensor; unknown ``stype``; ``ref`` neither ``'max'`` nor a
            positive number; ``amin <= 0``; ``top_db < 0``.

    Examples:
        >>> amplitude_to_db(torch.tensor([[1.0, 0.1, 1e-12]]), ref=1.0, top_db=None)
        tensor([[   0.,  -10., -100.]])
    """
    dtype = _compute_dtype(x, "x")
    check_db_args(stype, ref, amin, top_db)
    multiplier = 10.0 if stype == "power" else 20.0
    item_dims = tuple(range(max(x.ndim - 3, 0), x.ndim))
    with full_precision(x):
        db = multiplier * torch.log10(x.to(dtype).clamp(min=amin))
        if isinstance(ref, str):
            # log is monotonic, so the max of the dB values is the dB of max(x, amin)
            db = db - (db.amax(dim=item_dims, keepdim=True) if item_dims else db)
        else:
            db = db - multiplier * math.log10(max(ref, amin))
        if top_db is not None:
            peak = db.amax(dim=item_dims, keepdim=True) if item_dims else db
            db = torch.maximum(db, peak - top_db)
    return db


# ------------------------------------------------------------------------------------------------------------- MFCC


@functools.lru_cache(maxsize=32)
def _dct_matrix_f64(n_mfcc: int, n_mels: int, norm: str | None) -> torch.Tensor:
    """DCT-II rows ``(n_mfcc, n_mels)`` as scipy.fftpack.dct(type=2, norm=norm) computes them, float64 CPU."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    basis = 2.0 * torch.cos(math.pi * k * (2 * n + 1) / (2 * n_mels))
    if norm == "ortho":
        basis *= math.sqrt(1 / (2 * n_mels))
        basis[0] *= math.sqrt(0.5)
    return basis


def check_mfcc_args(n_mfcc: int = 20, dct_norm: str | None = "ortho") -> int:
    """Check ``mfcc``'s parameters (shared with ``MFCC``); returns ``n_mfcc`` as an int."""
    n_mfcc = check_positive("n_mfcc", n_mfcc, integer=True)
    if dct_norm not in DCT_NORMS:
        raise ParameterError(f"dct_norm must be 'ortho' or None, got {dct_norm!r}")
    return n_mfcc


def mfcc(mel_db: torch.Tensor, n_mfcc: int = 20, *, dct_norm: str | None = "ortho") -> torch.Tensor:
    """Mel-frequency cepstral coefficients: a DCT-II over the mel axis of a log-mel spectrogram.

    The same numbers as ``librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc, dct_type=2, norm=dct_norm)`` and as
    ``torchaudio.functional.create_dct(n_mfcc, n_mels, dct_norm)`` applied to ``mel_db``.

    Args:
        mel_db: log-mel spectrogram ``(..., n_mels, time)`` (e.g. from :func:`amplitude_to_db`), floating point.
        n_mfcc: number of coefficients kept, ``1 <= n_mfcc <= n_mels``.
        dct_norm: ``'ortho'`` (orthonormal DCT) or ``None`` (scipy's unnormalised DCT-II, twice the cosine sum).

    Returns:
        Tensor ``(..., n_mfcc, time)``. Output dtype: float64 for float64 input, else float32. Differentiable.

    Raises:
        ParameterError: ``mel_db`` is not floating point or has fewer than 2 dimensions; ``n_mfcc`` is not in
            ``1..n_mels``; unknown ``dct_norm``.

    Examples:
        >>> mfcc(torch.randn(8, 1, 64, 100), 13).shape
        torch.Size([8, 1, 13, 100])
    """
    dtype = _compute_dtype(mel_db, "mel_db")
    if mel_db.ndim < 2:
        raise ParameterError(f"mel_db must be (..., n_mels, time), got shape {tuple(mel_db.shape)}")
    n_mfcc = check_mfcc_args(n_mfcc, dct_norm)
    n_mels = mel_db.shape[-2]
    if n_mfcc > n_mels:
        raise ParameterError(f"n_mfcc={n_mfcc} is more than the {n_mels} mel bands; use n_mfcc <= {n_mels}")
    basis = _dct_matrix_f64(n_mfcc, n_mels, dct_norm).to(device=mel_db.device, dtype=dtype)
    with full_precision(mel_db):
        return basis @ mel_db.to(dtype)


# ----------------------------------------------------------------------------------------------------------- deltas


def check_delta_width(width: int) -> int:
    """Check ``deltas``' ``width`` (shared with ``Delta``): an odd integer >= 3."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 3 or width % 2 != 1:
        raise ParameterError(f"width must be an odd integer >= 3, got {width!r}")
    return width


def deltas(x: torch.Tensor, width: int = 9) -> torch.Tensor:
    """First-order deltas (local slope per frame) along the last dimension, as ``librosa.feature.delta``.

    Equal to ``librosa.feature.delta(x, width=width, order=1, axis=-1, mode='interp')``: a Savitzky-Golay filter
    of order 1. Away from the edges the delta at ``t`` is the least-squares slope
    ``sum_n n * (x[t + n] - x[t - n]) / (2 * sum_n n**2)`` for ``n = 1..width // 2``; the first and last
    ``width // 2`` frames take the slope of the line fitted through the first or last ``width`` frames.

    Args:
        x: features ``(..., time)``, e.g. MFCCs ``(..., n_mfcc, time)``, floating point.
        width: number of frames in each fit; odd, ``3 <= width <= time``.

    Returns:
        Tensor of ``x``'s shape, in units of ``x`` per frame. Output dtype: float64 for float64 input, else float32.
        Differentiable.

    Raises:
        ParameterError: ``x`` is not floating point; ``width`` is even, below 3, or longer than the time axis.

    Examples:
        >>> deltas(torch.arange(10.0)[None] ** 2, 3)
        tensor([[ 2.,  2.,  4.,  6.,  8., 10., 12., 14., 16., 16.]])
    """
    dtype = _compute_dtype(x, "x")
    if x.ndim == 0:
        raise ParameterError("x must have a time dimension (..., time), got a 0-d tensor")
    check_delta_width(width)
    frames = x.shape[-1]
    if width > frames:
        raise ParameterError(
            f"width={width} is longer than the {frames} frames along the last dimension; "
            f"use an odd width <= {frames} (and >= 3)"
        )
    half = width // 2
    offsets = torch.arange(-half, half + 1, dtype=dtype, device=x.device)
    kernel = (offsets / offsets.square().sum()).view(1, 1, width)
    with full_precision(x):
        slope = F.conv1d(x.reshape(-1, 1, frames).to(dtype), kernel)  # frames half .. frames - 1 - half
        # the line through the first (last) `width` frames is the fit centred on frame `half` (frames - 1 - half)
        out = F.pad(slope, (half, half), mode="replicate")
    return out.reshape(x.shape)
