"""Noise and mixing kernels: coloured noise, looping excerpts of a bank of audio, and RMS over the real samples.

Pure torch (and numpy for the running sums), no state: the augmentations ``AddNoise`` and ``AddBackground`` hold
the banks and call these.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["colored_noise", "excerpts", "rms"]

#: The spectral slope of each noise colour: power falls as ``1 / f ** exponent``.
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def colored_noise(shape, exponent, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise whose power falls as ``1 / f**exponent`` (0 white, 1 pink, 2 brown), zero mean and unit RMS per
    item (over its channels and samples).

    Args:
        shape: ``(B, C, samples)``.
        exponent: a float for all items, or a ``(B,)`` tensor, one per item (shaped with one FFT of the batch).
        device: where to draw (default CPU).
        generator: a ``torch.Generator`` on ``device`` for reproducible draws.

    Returns:
        float32 ``(B, C, samples)`` on ``device``. White noise keeps its sample mean; coloured noise has it removed
        (a ``1 / f`` slope has no value at 0 Hz).

    Examples:
        >>> colored_noise((2, 1, 16000), torch.tensor([0.0, 1.0])).pow(2).mean(dim=(1, 2)).round(decimals=4)
        tensor([1., 1.])
    """
    noise = torch.randn(shape, device=device, generator=generator)
    if noise.numel() == 0:
        return noise
    if not (isinstance(exponent, (int, float)) and exponent == 0):
        spec = torch.fft.rfft(noise)
        f = torch.arange(spec.shape[-1], device=noise.device, dtype=noise.dtype).clamp_min(1.0)
        exponent = torch.as_tensor(exponent, dtype=noise.dtype, device=noise.device).reshape(-1, 1, 1)
        noise = torch.fft.irfft(spec * f.pow(-exponent / 2), n=shape[-1])
        noise = noise - noise.mean(dim=-1, keepdim=True)
    return noise / noise.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)


def length_mask(x: torch.Tensor, lengths) -> torch.Tensor | None:
    """``(B, 1, samples)`` True on the real samples of a padded batch ``(B, C, samples)`` with ``lengths`` ``(B,)``;
    None when ``lengths`` is None (nothing is padded)."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=x.device)
    return (torch.arange(x.shape[-1], device=x.device) < lengths[:, None])[:, None, :]


def rms(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Root mean square of each item of ``(B, C, samples)``, over its channels and (with ``mask`` from
    ``length_mask``) only its real samples: ``(B,)`` float32.

    Examples:
        >>> rms(torch.ones(2, 1, 100) * torch.tensor([1.0, 3.0])[:, None, None])
        tensor([1., 3.])
    """
    if mask is None:
        return torch.linalg.vector_norm(x.float(), dim=(1, 2)) / math.sqrt(x.shape[1] * x.shape[2])
    count = (mask.sum(dim=(1, 2)) * x.shape[1]).clamp_min(1)
    return torch.linalg.vector_norm(x.float() * mask, dim=(1, 2)) / count.sqrt()


def excerpt_pieces(clip: torch.Tensor, pos: int, length: int):
    """``(at, view)`` pieces of ``length`` samples of the 1-D ``clip`` from ``pos`` on, looping past its end: views of
    ``clip``, no copy."""
    at = 0
    while at < length:
        piece = clip[pos : pos + length - at]
        yield at, piece
        at, pos = at + piece.numel(), 0


def excerpts(audio: torch.Tensor, clip_start, clip_length, offset, length: int) -> torch.Tensor:
    """``(B, length)``: for each item, ``length`` samples of the clip ``audio[clip_start : clip_start + clip_length]``
    from ``offset`` on, looping past the clip's end (so a short clip repeats).

    Slices on a CPU, where the positions are already on the host and a ``(B, length)`` gather index costs ten times
    more; one gather elsewhere (no host sync).

    Args:
        audio: 1-D: every clip end to end.
        clip_start, clip_length, offset: ``(B,)`` integer tensors: where each item's clip is, and where in the clip
            its excerpt starts.
        length: samples per excerpt.

    Examples:
        >>> excerpts(torch.arange(10.0), torch.tensor([0, 6]), torch.tensor([6, 4]), torch.tensor([4, 3]), 5)
        tensor([[4., 5., 0., 1., 2.],
                [9., 6., 7., 8., 9.]])
    """
    if audio.device.type != "cpu":
        pos = (offset[:, None] + torch.arange(length, device=audio.device)) % clip_length[:, None]
        return audio[clip_start[:, None] + pos]
    out = []
    for start, size, pos in zip(clip_start.tolist(), clip_length.tolist(), offset.tolist()):
        pieces = [piece for _, piece in excerpt_pieces(audio[start : start + size], pos, length)]
        out.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces))
    return torch.stack(out) if out else audio.new_zeros((0, length))


def running_sums(bank: torch.Tensor) -> list[np.ndarray]:
    """Running sums of each row of the CPU ``bank`` ``(rows, samples)`` and of its squares: numpy float32 arrays
    ``(rows, samples + 1)`` (summed in float64), from which ``looped_sum`` gives an excerpt's mean and power in O(1).
    """
    rows = bank.double().numpy()
    zero = np.zeros((rows.shape[0], 1))
    return [np.concatenate([zero, np.cumsum(v, axis=1)], axis=1).astype(np.float32) for v in (rows, rows**2)]


def looped_sum(cumsum: np.ndarray, pos: int, length: int, period: int) -> float:
    """Sum of ``length`` values of a periodic signal from ``pos`` on, given the running sum ``cumsum`` of one period
    (``period + 1`` values starting at 0), in float64."""
    laps, rest = divmod(length, period)
    at = [float(v) for v in cumsum[[pos, period, (pos + rest) % period]]]  # start, one lap, end
    wraps = pos + rest >= period
    return laps * at[1] + at[2] - at[0] + (at[1] if wraps else 0.0)
