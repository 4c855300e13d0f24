"""Waveform augmentations that change level, sign or timing: ``RandomGain``, ``PolarityInversion``, ``RandomShift``."""

from __future__ import annotations

import torch

from ...errors import ParameterError
from ...functional import shift as shift_in_time
from .base import AudioAugment, check_range

__all__ = ["PolarityInversion", "RandomGain", "RandomShift"]


class RandomGain(AudioAugment):
    """Multiply each clip by a random gain in decibels: ``(B, C, samples)`` -> same.

    Args:
        min_gain_db, max_gain_db: range of the gain (dB); -6 dB halves the amplitude.
        p, seed: see ``AudioAugment``.

    Examples:
        >>> RandomGain(-6, 6, p=1.0)(TensorAudio(torch.randn(8, 1, 16000), sample_rate=16000), split_idx=0).shape
        torch.Size([8, 1, 16000])
    """

    identity = {"gain_db": 0.0}

    def __init__(self, min_gain_db: float = -6.0, max_gain_db: float = 6.0, p: float = 0.5, seed: int | None = None):
        super().__init__(p, seed)
        self.min_gain_db, self.max_gain_db = check_range("gain_db", min_gain_db, max_gain_db)

    def _draw(self, x, n, device, meta):
        return {"gain_db": self.uniform((n,), self.min_gain_db, self.max_gain_db, device)}

    def apply(self, x, gain_db):
        return x * torch.pow(10.0, gain_db / 20.0).to(x.dtype)[:, None, None]


class PolarityInversion(AudioAugment):
    """Flip the sign of the waveform (inaudible alone; it changes the phase relations in a mix).

    Examples:
        >>> PolarityInversion(p=1.0).apply(torch.ones(1, 1, 4), sign=torch.tensor([-1.0]))
        tensor([[[-1., -1., -1., -1.]]])
    """

    identity = {"sign": 1.0}

    def _draw(self, x, n, device, meta):
        return {"sign": torch.full((n,), -1.0, device=device)}

    def apply(self, x, sign):
        return x * sign.to(x.dtype)[:, None, None]


class RandomShift(AudioAugment):
    """Shift each clip in time by a random fraction of its length, rolling it round or filling with silence.

    Args:
        min_shift, max_shift: range of the shift as a fraction of the clip's length (negative: earlier).
        rollover: samples pushed past one end come back at the other (a circular shift); else silence fills in.
        p, seed: see ``AudioAugment``.

    ``apply`` takes ``shift`` in samples (:func:`fastai_audio.functional.shift`).

    Examples:
        >>> RandomShift(rollover=False).apply(torch.arange(4.0).expand(1, 1, 4), shift=torch.tensor([1]))
        tensor([[[0., 0., 1., 2.]]])
    """

    identity = {"shift": 0}

    def __init__(
        self,
        min_shift: float = -0.5,
        max_shift: float = 0.5,
        rollover: bool = True,
        p: float = 0.5,
        seed: int | None = None,
    ):
        super().__init__(p, seed)
        self.min_shift, self.max_shift = check_range("shift", min_shift, max_shift)
        if max(abs(self.min_shift), abs(self.max_shift)) > 1:
            raise ParameterError(
                f"shift is a fraction of the clip's length: keep it within [-1, 1], got ({min_shift}, {max_shift})"
            )
        self.rollover = rollover

    def _draw(self, x, n, device, meta):
        frac = self.uniform((n,), self.min_shift, self.max_shift, device)
        return {"shift": torch.round(frac * x.shape[-1]).long()}

    def apply(self, x, shift):
        return shift_in_time(x, shift, self.rollover)
