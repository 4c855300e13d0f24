"""Augmentations that change pitch or speed with a phase vocoder: ``PitchShift`` and ``TimeStretch``."""

from __future__ import annotations

import math

import torch

from ..._validate import check_positive
from ...errors import ParameterError
from ...functional.stretch import fit_length, pitch_shift, time_stretch
from .base import AudioAugment, check_range

__all__ = ["PitchShift", "TimeStretch"]


class _GroupedAugment(AudioAugment):
    """Augmentations whose kernels depend on the drawn value: values are quantised to ``step``, drawn on the host,
    and the batch is processed one group of equal values at a time."""

    identity = {"value": 0.0}
    subset_on_cpu = False  # only the chosen clips are processed already

    def _draw(self, x, n, device, meta):
        steps = torch.randint(self._lo, self._hi + 1, (n,), generator=self.generator("cpu"))
        return {"value": steps.double() * self.step}

    def draw(self, x, meta: dict | None = None):
        n = x.shape[0]
        params = self._draw(x, n, "cpu", meta or {})
        keep = torch.rand((n,), generator=self.generator("cpu")) >= self.p
        params["value"] = torch.where(keep, torch.full_like(params["value"], self.identity["value"]), params["value"])
        return params

    def apply(self, x, value):
        out = x.clone()
        value = torch.as_tensor(value, dtype=torch.float64).cpu()
        for v in torch.unique(value).tolist():
            if v == self.identity["value"]:
                continue
            idx = (value == v).nonzero().flatten().to(x.device)
            out[idx] = self._apply_one(x[idx], v)
        return out

    def _apply_one(self, x, value: float) -> torch.Tensor:
        raise NotImplementedError


class PitchShift(_GroupedAugment):
    """Shift the pitch of each clip by a random number of semitones, keeping its duration.

    A phase-vocoder time stretch by ``2 ** (semitones / 12)`` followed by band-limited FFT resampling back to the
    clip's length, which moves every frequency by that factor (:func:`fastai_audio.functional.pitch_shift`).
    Quality: clean for a few semitones on tonal sounds; transients smear and large shifts sound "phasey". Cost: one
    STFT, its inverse and two FFTs per group of clips sharing a shift (see docs/performance.md), so the draw is
    quantised to ``step`` semitones; the default ``p`` is low.

    Args:
        min_semitones, max_semitones: range of the shift.
        step: resolution of the draw in semitones (a divisor of 1: 1, 0.5, 0.25...).
        n_fft: FFT size of the phase vocoder.
        p, seed: see ``AudioAugment`` (drawn on the host).

    ``apply(x, value=...)`` takes the semitones per clip.

    Examples:
        >>> PitchShift(-2, 2, p=0.3).apply(torch.randn(2, 1, 8000), value=torch.tensor([2.0, 0.0])).shape
        torch.Size([2, 1, 8000])
    """

    def __init__(
        self,
        min_semitones: float = -2.0,
        max_semitones: float = 2.0,
        step: float = 0.5,
        n_fft: int = 512,
        p: float = 0.3,
        seed: int | None = None,
    ):
        super().__init__(p, seed)
        self.min_semitones, self.max_semitones = check_range("semitones", min_semitones, max_semitones)
        self.step = check_positive("step", step)
        if abs(1 / self.step - round(1 / self.step)) > 1e-9:
            raise ParameterError(f"step must divide one semitone (1, 0.5, 0.25...), got {step}")
        self._lo, self._hi = math.ceil(self.min_semitones / self.step), math.floor(self.max_semitones / self.step)
        self.n_fft = check_positive("n_fft", n_fft, integer=True)

    def _apply_one(self, x, value):
        return pitch_shift(x, value, self.n_fft)


class TimeStretch(_GroupedAugment):
    """Play each clip faster or slower by a random rate without changing its pitch, keeping the batch's length.

    A phase vocoder (:func:`fastai_audio.functional.time_stretch`) on the clip's STFT; a rate above 1 shortens the
    clip (the end is padded with silence), below 1 lengthens it (the end is cut). Quality and cost as for
    ``PitchShift`` (no resampling, so cheaper); the draw is quantised to ``step``.

    Args:
        min_rate, max_rate: range of the speed factor.
        step: resolution of the draw.
        n_fft: FFT size of the phase vocoder.
        p, seed: see ``AudioAugment`` (drawn on the host).

    Examples:
        >>> TimeStretch(0.8, 1.25, p=0.3).apply(torch.randn(2, 1, 8000), value=torch.tensor([1.25, 1.0])).shape
        torch.Size([2, 1, 8000])
    """

    identity = {"value": 1.0}

    def __init__(
        self,
        min_rate: float = 0.8,
        max_rate: float = 1.25,
        step: float = 0.05,
        n_fft: int = 512,
        p: float = 0.3,
        seed: int | None = None,
    ):
        super().__init__(p, seed)
        self.min_rate, self.max_rate = check_range("rate", min_rate, max_rate)
        check_positive("min_rate", self.min_rate)
        self.step = check_positive("step", step)
        self._lo, self._hi = math.ceil(self.min_rate / self.step - 1e-9), math.floor(self.max_rate / self.step + 1e-9)
        self.n_fft = check_positive("n_fft", n_fft, integer=True)

    def _apply_one(self, x, value):
        return fit_length(time_stretch(x, value, self.n_fft), x.shape[-1]).to(x.dtype)
