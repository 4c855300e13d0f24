"""Time stretching and pitch shifting with a phase vocoder, and band-limited FFT resampling.

Pure torch (``torchaudio.functional.phase_vocoder`` for the vocoder), no state; ``TimeStretch`` and ``PitchShift``
draw the rates and call these.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._validate import check_positive

__all__ = ["fft_resample", "pitch_shift", "time_stretch"]


def fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` ``(..., samples)`` cut or zero-padded at the end to ``n`` samples."""
    return x[..., :n] if x.shape[-1] >= n else F.pad(x, (0, n - x.shape[-1]))


def time_stretch(x: torch.Tensor, rate: float, n_fft: int = 512) -> torch.Tensor:
    """Play ``x`` ``(..., samples)`` ``rate`` times faster (shorter for ``rate > 1``) without changing its pitch: a
    phase vocoder on its STFT (hop ``n_fft // 4``, Hann window).

    Returns:
        float32 ``(..., round(samples / rate))``.

    Examples:
        >>> time_stretch(torch.randn(2, 1, 16000), 2.0).shape
        torch.Size([2, 1, 8000])
    """
    import torchaudio.functional as AF

    rate = check_positive("rate", rate)
    n_fft = check_positive("n_fft", n_fft, integer=True)
    hop = n_fft // 4
    flat = x.reshape(-1, x.shape[-1]).float()
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(flat, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[-2], device=x.device)[..., None]
    stretched = AF.phase_vocoder(spec, rate, advance)
    y = torch.istft(stretched, n_fft, hop, window=window, length=round(x.shape[-1] / rate))
    return y.reshape(*x.shape[:-1], y.shape[-1])


def fft_resample(x: torch.Tensor, n: int) -> torch.Tensor:
    """Band-limited resampling of ``(..., m)`` to ``(..., n)`` samples through the FFT (one transform each way):
    what was ``m`` samples now lasts ``n``, so every frequency is multiplied by ``m / n`` at a fixed rate.

    Examples:
        >>> fft_resample(torch.randn(3, 1000), 800).shape
        torch.Size([3, 800])
    """
    m = x.shape[-1]
    spec = torch.fft.rfft(x)
    keep = min(spec.shape[-1], n // 2 + 1)
    return torch.fft.irfft(spec[..., :keep], n=n) * (n / m)


def pitch_shift(x: torch.Tensor, semitones: float, n_fft: int = 512) -> torch.Tensor:
    """Shift the pitch of ``x`` ``(..., samples)`` by ``semitones``, keeping its length: a phase-vocoder time
    stretch by ``2 ** (semitones / 12)`` then FFT resampling back to the clip's length, in ``x``'s dtype.

    Examples:
        >>> pitch_shift(torch.randn(1, 1, 16000), 2.0).shape
        torch.Size([1, 1, 16000])
    """
    factor = 2.0 ** (semitones / 12)
    return fft_resample(time_stretch(x, 1 / factor, n_fft), x.shape[-1]).to(x.dtype)
