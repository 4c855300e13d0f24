"""SpecAugment's kernels: band masks and time warping of spectrogram batches ``(B, C, freq, frames)``.

Pure torch, no state; ``FrequencyMask``, ``TimeMask`` and ``TimeWarp`` draw the parameters and call these.
"""

from __future__ import annotations

import torch

__all__ = ["band_mask", "frame_counts", "time_warp"]


def band_mask(size: int, starts: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """``(B, size)`` True inside any of each item's bands ``[start, start + width)`` (``starts``, ``widths``:
    ``(B, n_bands)``; a width of 0 masks nothing).

    Examples:
        >>> band_mask(6, torch.tensor([[1, 4]]), torch.tensor([[2, 1]])).int()
        tensor([[0, 1, 1, 0, 1, 0]], dtype=torch.int32)
    """
    pos = torch.arange(size, device=starts.device)[None, None, :]
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(dim=1)


def frame_counts(x: torch.Tensor, lengths=None) -> torch.Tensor:
    """``(B,)`` int64 valid frames per item of a spectrogram batch (all its frames when ``lengths`` is None)."""
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
    return torch.as_tensor(lengths, device=x.device).long().clamp_max(x.shape[-1])


def time_warp(x: torch.Tensor, centre: torch.Tensor, shift: torch.Tensor, lengths=None) -> torch.Tensor:
    """Warp each item's time axis: frame ``centre`` moves to ``centre + shift``; the time axis is stretched
    linearly on one side of it and squeezed on the other, the first and last (valid) frames stay in place.

    Output frame ``t`` takes the input at ``t * centre / (centre + shift)`` before the moved frame, and at the
    matching point of the other segment after it, interpolated linearly between the two nearest frames. Frames past
    an item's ``lengths`` (padding) are left alone. Two gathers over the batch.

    Args:
        x: ``(B, C, freq, frames)``.
        centre: ``(B,)`` int, the frame that moves.
        shift: ``(B,)``, fractional frames (0 leaves the item as it is).
        lengths: ``(B,)`` valid frames per item, or None.

    Examples:
        >>> ramp = torch.arange(10.0).expand(1, 1, 1, 10)
        >>> time_warp(ramp, torch.tensor([4]), torch.tensor([2.0]))[0, 0, 0]
        tensor([0.0000, 0.6667, 1.3333, 2.0000, 2.6667, 3.3333, 4.0000, 5.6667, 7.3333, 9.0000])
    """
    n_frames = x.shape[-1]
    last = (frame_counts(x, lengths) - 1).to(x.device, torch.float32)[:, None]  # (B, 1)
    t = torch.arange(n_frames, device=x.device, dtype=torch.float32)[None, :]  # (1, frames)
    c = centre.to(x.device, torch.float32)[:, None]
    s = shift.to(x.device, torch.float32)[:, None]
    d = c + s
    before = t * c / d.clamp_min(1e-6)
    after = c + (t - d) * (last - c) / (last - d).clamp_min(1e-6)
    src = torch.where(t <= d, before, after).clamp(min=0.0)
    src = torch.where((s == 0) | (t > last), t, torch.minimum(src, last))
    low = src.floor().long()
    high = (low + 1).clamp_max(n_frames - 1)
    weight = (src - low).to(x.dtype)[:, None, None, :]
    index = (low[:, None, None, :].expand_as(x), high[:, None, None, :].expand_as(x))
    return torch.lerp(x.gather(-1, index[0]), x.gather(-1, index[1]), weight)
