"""Pure torch signal functions: no fastai, no state. Every function works on leading batch dimensions.

``spectral`` (STFT power, mel filterbank and scale, decibels, MFCC, deltas), ``cqt``, ``crop`` (crop, pad, shift),
and the kernels of the augmentations: ``noise`` (coloured noise, looping excerpts, RMS), ``filters`` (Butterworth
gain, FFT filtering), ``stretch`` (phase-vocoder time stretch and pitch shift, FFT resampling), ``room`` (synthetic
room impulse responses, FFT convolution, an EQ curve), ``specaugment`` (band masks, time warping).
"""

from .cqt import cqt, cqt_frequencies, cqt_kernels
from .crop import crop, pad, pad_batch, shift
from .filters import butterworth_gain, fft_filter
from .noise import colored_noise, excerpts, rms
from .room import eq_gain_db, fft_convolve, synthetic_rir
from .specaugment import band_mask, time_warp
from .spectral import (
    EmptyFilterWarning,
    amplitude_to_db,
    deltas,
    hz_to_mel,
    log_compress,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    stft_power,
)
from .stretch import fft_resample, pitch_shift, time_stretch

__all__ = [
    "EmptyFilterWarning",
    "amplitude_to_db",
    "band_mask",
    "butterworth_gain",
    "colored_noise",
    "cqt",
    "cqt_frequencies",
    "cqt_kernels",
    "crop",
    "deltas",
    "eq_gain_db",
    "excerpts",
    "fft_convolve",
    "fft_filter",
    "fft_resample",
    "hz_to_mel",
    "log_compress",
    "mel_filterbank",
    "mel_to_hz",
    "mfcc",
    "pad",
    "pad_batch",
    "pitch_shift",
    "rms",
    "shift",
    "stft_power",
    "synthetic_rir",
    "time_stretch",
    "time_warp",
]
