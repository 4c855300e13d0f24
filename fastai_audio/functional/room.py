"""Recording-condition kernels: synthetic room impulse responses, FFT convolution, and an EQ curve (a spectral tilt
plus bell-shaped bands on a log-frequency axis).

Pure torch, no state: ``RandomReverb`` and ``RandomEQ`` draw the parameters and call these, and so does
``synth_nsynth(timbre_randomization=...)`` when it renders a note.
"""

from __future__ import annotations

import math

import torch

from .._validate import check_positive, check_sample_rate

__all__ = ["eq_gain_db", "fft_convolve", "synthetic_rir"]

#: Decay of 60 dB in ``rt60`` seconds: the amplitude envelope is ``exp(-_LN_1000 * t / rt60)``.
_LN_1000 = math.log(1000.0)


def synthetic_rir(
    rt60: torch.Tensor,
    sample_rate: int,
    length: int,
    *,
    drr_db: torch.Tensor | float = 0.0,
    predelay: torch.Tensor | float = 0.0,
    damping: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Synthetic room impulse responses: a unit direct path at sample 0, then a diffuse tail of Gaussian noise under
    an exponential decay (Polack's model), whose high frequencies die out faster, as walls and air absorb them.

    The tail decays by 60 dB in ``rt60`` seconds at low frequencies, and ``damping`` times faster at the Nyquist
    frequency (the decay rate grows linearly with frequency in between), so a long reverb also grows duller. Its
    energy is set by the direct-to-reverberant ratio ``drr_db`` (the direct path's energy over the tail's). It starts
    ``predelay`` seconds after the direct path (the first reflections' delay).

    Args:
        rt60: ``(B,)`` reverberation times in seconds (> 0).
        sample_rate: rate of the responses (Hz).
        length: samples per response (e.g. ``int(max rt60 * sample_rate)``: the tail is cut there).
        drr_db: ``(B,)`` or a float: direct-to-reverberant ratio in dB (0: as much energy in the tail as in the
            direct path; higher: drier).
        predelay: ``(B,)`` or a float, seconds between the direct path and the tail.
        damping: how many times faster the highest frequency decays than the lowest (1: the same).
        generator: a ``torch.Generator`` on ``rt60``'s device, for reproducible responses.

    Returns:
        float32 ``(B, length)`` on ``rt60``'s device.

    Examples:
        >>> rir = synthetic_rir(torch.tensor([0.3, 1.0]), 16000, 16000, drr_db=torch.tensor([0.0, 6.0]),
        ...                     generator=torch.Generator().manual_seed(0))
        >>> rir.shape, rir[:, 0].tolist()                        # the direct path is 1 at sample 0
        (torch.Size([2, 16000]), [1.0, 1.0])
        >>> tail = rir[:, 1:].pow(2).sum(1)                      # energy of the tails: 0 dB and 6 dB below it
        >>> [round(10 * math.log10(1 / e), 1) + 0.0 for e in tail.tolist()]   # (+ 0.0: no "-0.0")
        [0.0, 6.0]
    """
    sample_rate = check_sample_rate(sample_rate)
    length = check_positive("length", length, integer=True)
    rt60 = torch.as_tensor(rt60, dtype=torch.float32)
    if rt60.ndim != 1 or not bool((rt60 > 0).all()):
        raise ValueError(f"rt60 must be a (B,) tensor of positive seconds, got {rt60.tolist()}")
    device, n = rt60.device, rt60.shape[0]
    drr_db = torch.as_tensor(drr_db, dtype=torch.float32, device=device).expand(n)
    predelay = torch.as_tensor(predelay, dtype=torch.float32, device=device).expand(n)
    noise = torch.randn(n, length, device=device, generator=generator)
    # frequency-dependent decay: filter the noise into a low and a high half, each under its own envelope
    t = torch.arange(length, device=device, dtype=torch.float32) / sample_rate
    start = (predelay * sample_rate).round()[:, None]
    t_tail = (t - predelay[:, None]).clamp_min(0.0)
    spec = torch.fft.rfft(noise)
    freq = torch.linspace(0.0, 1.0, spec.shape[-1], device=device)  # 0 .. Nyquist
    low = torch.fft.irfft(spec * (1.0 - freq), n=length)
    high = torch.fft.irfft(spec * freq, n=length)
    rate = _LN_1000 / rt60[:, None]
    tail = low * torch.exp(-rate * t_tail) + high * torch.exp(-rate * damping * t_tail)
    tail = torch.where(torch.arange(length, device=device)[None, :] > start, tail, torch.zeros((), device=device))
    energy = tail.pow(2).sum(dim=-1, keepdim=True).clamp_min(1e-12)
    tail = tail * torch.sqrt(10.0 ** (-drr_db[:, None] / 10.0) / energy)
    tail[:, 0] = 1.0
    return tail


def fft_convolve(x: torch.Tensor, kernel_spectrum: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Convolve each item of ``(B, C, samples)`` with its own kernel, given as its ``rfft`` of size ``n_fft``
    ``(B, n_fft // 2 + 1)`` (``n_fft >= samples + kernel length - 1`` for a linear, not circular, convolution),
    keeping the first ``samples`` samples (a reverb's tail past the clip's end is cut). Computed in float32,
    returned in ``x``'s dtype.

    Examples:
        >>> x, k = torch.randn(2, 1, 100), torch.tensor([[1.0, 0.5], [0.0, 1.0]])
        >>> y = fft_convolve(x, torch.fft.rfft(k, n=128), 128)
        >>> torch.allclose(y[1, 0, 1:], x[1, 0, :-1], atol=1e-5)          # a delay of one sample
        True
        >>> torch.allclose(y[0, 0, 1:], x[0, 0, 1:] + 0.5 * x[0, 0, :-1], atol=1e-5)   # an echo at half level
        True
    """
    samples = x.shape[-1]
    out = torch.fft.irfft(torch.fft.rfft(x.float(), n=n_fft) * kernel_spectrum[:, None, :], n=n_fft)
    return out[..., :samples].to(x.dtype)


def eq_gain_db(
    freqs: torch.Tensor,
    tilt: torch.Tensor,
    centers: torch.Tensor,
    gains: torch.Tensor,
    widths: torch.Tensor,
    *,
    pivot: float = 1000.0,
    f_floor: float = 20.0,
) -> torch.Tensor:
    """An equaliser's response in dB at ``freqs``: a spectral tilt (dB per octave, 0 dB at ``pivot`` Hz) plus bell
    bands, each a Gaussian on the log-frequency axis: ``gain * exp(-0.5 * (log2(f / center) / width) ** 2)``.

    Args:
        freqs: ``(F,)`` frequencies in Hz (below ``f_floor`` they get the tilt at ``f_floor``: no boost towards 0 Hz).
        tilt: ``(B,)`` dB per octave (negative: darker, as a distant or dull microphone; positive: brighter).
        centers: ``(B, K)`` centre frequencies of ``K`` bands (Hz).
        gains: ``(B, K)`` their gains (dB; 0 turns a band off).
        widths: ``(B, K)`` their widths: the standard deviation of the bell, in octaves.
        pivot: the frequency the tilt leaves alone (Hz).
        f_floor: lowest frequency the curve distinguishes (Hz).

    Returns:
        ``(B, F)`` gains in dB, on ``tilt``'s device.

    Examples:
        >>> f = torch.tensor([500.0, 1000.0, 2000.0])
        >>> eq_gain_db(f, torch.tensor([-3.0]), torch.tensor([[2000.0]]), torch.tensor([[6.0]]), torch.tensor([[1.0]]))
        tensor([[3.8120, 3.6392, 3.0000]])
    """
    octaves = torch.log2(freqs.to(tilt.device).clamp_min(f_floor) / pivot)  # (F,)
    curve = tilt[:, None] * octaves[None, :]
    if centers.shape[-1]:
        dist = (octaves[None, None, :] - torch.log2(centers / pivot)[..., None]) / widths[..., None]
        curve = curve + (gains[..., None] * torch.exp(-0.5 * dist * dist)).sum(dim=1)
    return curve
