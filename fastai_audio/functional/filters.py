"""Zero-phase Butterworth-shaped filters: the magnitude response, and filtering a waveform through its FFT.

Pure torch, no state; ``RandomLowpass`` and ``RandomHighpass`` draw the cutoffs and call these.
"""

from __future__ import annotations

import math

import torch

from .._validate import check_positive

__all__ = ["butterworth_gain", "fft_filter"]


def int_power(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x ** n`` for an int ``n >= 1`` by repeated squaring: a few multiplications, ten times faster than ``pow`` on
    a CPU."""
    result, square = None, x
    while n:
        if n & 1:
            result = square if result is None else result * square
        n >>= 1
        if n:
            square = square * square
    return result


def butterworth_gain(freqs: torch.Tensor, cutoff: torch.Tensor, order: int = 4, *, highpass: bool = False):
    """Butterworth magnitude response ``1 / sqrt(1 + (f / cutoff) ** (2 * order))`` (low-pass) or
    ``1 / sqrt(1 + (cutoff / f) ** (2 * order))`` (high-pass), for each cutoff at each frequency.

    Args:
        freqs: ``(F,)`` frequencies in Hz.
        cutoff: ``(B,)`` cutoffs in Hz; NaN passes everything (gain 1), the value an unfiltered item gets.
        order: steepness, about ``6 * order`` dB per octave.
        highpass: high-pass instead of low-pass.

    Returns:
        ``(B, F)`` gains in ``(0, 1]``, on ``cutoff``'s device.

    Examples:
        >>> gain = butterworth_gain(torch.tensor([0.0, 1000.0, 8000.0]), torch.tensor([1000.0, math.nan]))
        >>> [round(g, 4) for g in gain[0].tolist()], gain[1].tolist()  # -3 dB at the cutoff; NaN: no filter
        ([1.0, 0.7071, 0.0002], [1.0, 1.0, 1.0])
    """
    order = check_positive("order", order, integer=True)
    # the identity (NaN) as a cutoff that passes everything: 0 Hz for a high-pass, infinity for a low-pass
    cutoff = torch.nan_to_num(cutoff, nan=0.0 if highpass else math.inf)[:, None]
    freqs = freqs.to(cutoff.device)
    ratio = (cutoff / freqs.clamp_min(1e-6)) if highpass else (freqs / cutoff)
    return torch.rsqrt(1.0 + int_power(ratio * ratio, order))


def fft_filter(x: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Filter each item of ``(B, C, samples)`` by the zero-phase magnitude ``response`` ``(B, samples // 2 + 1)``
    (one value per rfft bin, e.g. ``butterworth_gain(torch.fft.rfftfreq(samples, 1 / sample_rate), cutoff)``): one
    batched FFT each way, computed in float32, returned in ``x``'s dtype.

    Examples:
        >>> x = torch.randn(2, 1, 1000)
        >>> torch.allclose(fft_filter(x, torch.ones(2, 501)), x, atol=1e-5)
        True
    """
    return torch.fft.irfft(torch.fft.rfft(x.float()) * response[:, None, :], n=x.shape[-1]).to(x.dtype)
