"""Cropping and padding waveforms along time: pure torch, no state."""

from __future__ import annotations

import torch

from .._validate import check_choice
from ..errors import ParameterError

__all__ = ["crop", "pad", "pad_batch"]

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
