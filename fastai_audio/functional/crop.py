"""Cropping, padding and shifting waveforms along time: pure torch, no state."""

from __future__ import annotations

import torch

from .._validate import check_choice
from ..errors import ParameterError

__all__ = ["crop", "pad", "pad_batch", "shift"]

PAD_MODES = ("zeros", "repeat")


def crop(x: torch.Tensor, num_samples: int, offset: int = 0) -> torch.Tensor:
    """Take ``num_samples`` samples starting at ``offset`` along the last dimension.

    Args:
        x: tensor ``(..., samples)``.
        num_samples: length of the window; must fit: ``offset + num_samples <= samples``.
        offset: first sample of the window.

    Returns:
        A view ``(..., num_samples)``.

    Examples:
        >>> crop(torch.arange(10.), 4, offset=3)
        tensor([3., 4., 5., 6.])
    """
    if num_samples <= 0 or offset < 0 or offset + num_samples > x.shape[-1]:
        raise ParameterError(
            f"cannot crop {num_samples} samples at offset {offset} from a signal of {x.shape[-1]} samples"
        )
    return x[..., offset : offset + num_samples]


def pad(x: torch.Tensor, num_samples: int, mode: str = "zeros") -> torch.Tensor:
    """Lengthen ``x`` to ``num_samples`` along the last dimension, appending at the end.

    Args:
        x: tensor ``(..., samples)`` with ``samples <= num_samples``.
        num_samples: the length wanted.
        mode: ``'zeros'`` appends silence; ``'repeat'`` tiles the signal (a loop) until it is long enough.

    Returns:
        Tensor ``(..., num_samples)``, same dtype and device.

    Examples:
        >>> pad(torch.tensor([1., 2., 3.]), 7, mode="repeat")
        tensor([1., 2., 3., 1., 2., 3., 1.])
    """
    check_choice("pad mode", mode, PAD_MODES)
    n = x.shape[-1]
    if n > num_samples:
        raise ParameterError(f"cannot pad a signal of {n} samples to the shorter length {num_samples}")
    if n == num_samples:
        return x
    if mode == "zeros" or n == 0:
        return torch.nn.functional.pad(x, (0, num_samples - n))
    reps = -(-num_samples // n)
    return x.repeat(*([1] * (x.ndim - 1)), reps)[..., :num_samples]


def pad_batch(xs: list[torch.Tensor], mode: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
    """Stack clips of different lengths into one batch, padded at the end to the longest.

    Args:
        xs: tensors ``(channels, samples_i)`` with equal channel counts.
        mode: how to pad, as in :func:`pad`.

    Returns:
        ``(batch, lengths)``: a tensor ``(len(xs), channels, max(samples_i))`` and the true lengths as int64.

    Examples:
        >>> b, n = pad_batch([torch.ones(1, 3), torch.ones(1, 5)])
        >>> b.shape, n
        (torch.Size([2, 1, 5]), tensor([3, 5]))
    """
    lengths = torch.tensor([x.shape[-1] for x in xs], dtype=torch.long)
    longest = int(lengths.max())
    return torch.stack([pad(x, longest, mode) for x in xs]), lengths


def shift(x: torch.Tensor, samples: torch.Tensor, rollover: bool = True) -> torch.Tensor:
    """Shift each item of ``(B, C, length)`` in time by its own number of ``samples`` (``(B,)`` int; positive:
    later). With ``rollover`` what is pushed past one end comes back at the other (a circular shift); otherwise
    silence fills in.

    On a CPU a copy per item (faster than a gather there); elsewhere one gather, with no host sync.

    Examples:
        >>> shift(torch.arange(5.0).expand(2, 1, 5), torch.tensor([1, -2]), rollover=False)
        tensor([[[0., 0., 1., 2., 3.]],
        <BLANKLINE>
                [[2., 3., 4., 0., 0.]]])
    """
    n = x.shape[-1]
    if x.device.type != "cpu":
        return _shift_gather(x, samples, rollover)
    out = torch.empty_like(x) if rollover else torch.zeros_like(x)
    for i, k in enumerate(samples.tolist()):
        k = k % n if rollover else max(-n, min(n, k))
        if rollover:
            out[i, :, k:], out[i, :, :k] = x[i, :, : n - k], x[i, :, n - k :]
        elif k >= 0:
            out[i, :, k:] = x[i, :, : n - k]
        else:
            out[i, :, : n + k] = x[i, :, -k:]
    return out


def _shift_gather(x: torch.Tensor, samples: torch.Tensor, rollover: bool) -> torch.Tensor:
    """``shift`` as one gather over the batch (the path off the CPU: no host sync)."""
    n = x.shape[-1]
    src = torch.arange(n, device=x.device)[None, :] - samples.to(x.device)[:, None]  # (B, length)
    inside = (src >= 0) & (src < n)
    src = src.remainder(n) if rollover else src.clamp(0, n - 1)
    out = x.gather(-1, src[:, None, :].expand_as(x))
    return out if rollover else out * inside[:, None, :].to(x.dtype)
