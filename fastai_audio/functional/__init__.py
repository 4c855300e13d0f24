"""Pure torch signal functions: no fastai, no state. Every function works on leading batch dimensions."""

from .cqt import cqt, cqt_frequencies, cqt_kernels
from .crop import crop, pad, pad_batch
from .spectral import EmptyFilterWarning, amplitude_to_db, deltas, mel_filterbank, mfcc, stft_power

__all__ = [
    "EmptyFilterWarning",
    "amplitude_to_db",
    "cqt",
    "cqt_frequencies",
    "cqt_kernels",
    "crop",
    "deltas",
    "mel_filterbank",
    "mfcc",
    "pad",
    "pad_batch",
    "stft_power",
]
