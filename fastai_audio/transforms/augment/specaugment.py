"""SpecAugment on spectrogram batches ``(B, C, freq, frames)``: ``FrequencyMask``, ``TimeMask`` and ``TimeWarp``."""

from __future__ import annotations

import torch

from ..._validate import check_positive
from ...core import TensorSpectrogram
from ...errors import ParameterError
from ...functional.specaugment import band_mask, frame_counts, time_warp
from ..spectral import as_spec_batch
from .base import AudioAugment

__all__ = ["FrequencyMask", "TimeMask", "TimeWarp"]


class _SpecAugment(AudioAugment):
    order = 70  # after SpecNormalize (60): 0 is then the mean
    accepts = (TensorSpectrogram,)

    def as_audio_batch(self, x, meta):
        return as_spec_batch(x)  # (B, C, freq, frames)


class _Mask(_SpecAugment):
    identity = {"widths": 0}
    axis = -2

    def __init__(
        self, max_width: int, n_masks: int = 2, value: float | str = 0.0, p: float = 0.5, seed: int | None = None
    ):
        super().__init__(p, seed)
        self.max_width = check_positive("max_width", max_width, integer=True)
        self.n_masks = check_positive("n_masks", n_masks, integer=True)
        if not (isinstance(value, (int, float)) or value in ("mean", "min")):
            raise ParameterError(f"value must be a number, 'mean' or 'min' (per item), got {value!r}")
        self.value = value

    def _draw(self, x, n, device, meta):
        size = x.shape[self.axis]
        g = self.generator(device)
        widths = torch.randint(0, min(self.max_width, size) + 1, (n, self.n_masks), device=device, generator=g)
        starts = (self.uniform((n, self.n_masks), 0.0, 1.0, device) * (size - widths + 1)).long()
        return {"starts": starts, "widths": widths}

    def mask(self, size: int, starts: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        """``(B, size)`` True where a band is masked (:func:`fastai_audio.functional.band_mask`)."""
        return band_mask(size, starts, widths)

    def apply(self, x, starts, widths):
        m = self.mask(x.shape[self.axis], starts, widths)
        m = m[:, None, :, None] if self.axis == -2 else m[:, None, None, :]
        if self.value == "mean":
            fill = x.mean(dim=(1, 2, 3), keepdim=True)
        elif self.value == "min":
            fill = x.amin(dim=(1, 2, 3), keepdim=True)
        else:
            fill = torch.tensor(float(self.value), dtype=x.dtype, device=x.device)
        return torch.where(m, fill, x)


class FrequencyMask(_Mask):
    """SpecAugment's frequency masking: ``n_masks`` bands of up to ``max_width`` bins set to ``value``, per item.

    Input and output ``(B, C, freq, frames)``. Widths are uniform in ``0..max_width``, starts uniform over the axis;
    each item draws its own. The default ``value=0`` is the mean after ``SpecNormalize``; ``'mean'`` and ``'min'``
    use each item's own.

    Examples:
        >>> spec = TensorSpectrogram(torch.ones(4, 1, 64, 100))
        >>> masked = FrequencyMask(max_width=8, n_masks=2, p=1.0, seed=0)(spec, split_idx=0)
        >>> bool((masked == 0).any()), masked.shape
        (True, torch.Size([4, 1, 64, 100]))
    """

    axis = -2

    def __init__(
        self, max_width: int = 8, n_masks: int = 2, value: float | str = 0.0, p: float = 0.5, seed: int | None = None
    ):
        super().__init__(max_width, n_masks, value, p, seed)


class TimeMask(_Mask):
    """SpecAugment's time masking: ``n_masks`` spans of up to ``max_width`` frames set to ``value``, per item.

    See ``FrequencyMask``; at 16 kHz with hop 256 a frame is 16 ms, so the default 25 frames is 0.4 s.

    Examples:
        >>> TimeMask(max_width=25, n_masks=2).apply(torch.ones(1, 1, 2, 6), starts=torch.tensor([[1, 4]]),
        ...                                         widths=torch.tensor([[2, 1]]))[0, 0, 0]
        tensor([1., 0., 0., 1., 0., 1.])
    """

    axis = -1

    def __init__(
        self, max_width: int = 25, n_masks: int = 2, value: float | str = 0.0, p: float = 0.5, seed: int | None = None
    ):
        super().__init__(max_width, n_masks, value, p, seed)


class TimeWarp(_SpecAugment):
    """SpecAugment's time warping: a random frame moves by up to ``max_warp`` frames, per item; the time axis is
    stretched linearly on one side of it and squeezed on the other, and the first and last frames stay in place.

    For each item a frame ``centre`` (uniform in ``[w + 1, frames - 2 - w]``, ``w = max_warp``) moves to
    ``centre + shift`` (``shift`` uniform in ``[-w, w]``, fractional), interpolating linearly between frames
    (:func:`fastai_audio.functional.time_warp`). A padded batch (``lengths``, in frames) is warped within each item's
    own frames; its padding is left alone. Input and output ``(B, C, freq, frames)``.

    It runs after ``SpecNormalize`` and before the masks, as in SpecAugment. Its cost is two gathers over the batch.

    Args:
        max_warp: the largest move of the centre frame, in frames (at 16 kHz with hop 256 a frame is 16 ms).
        p, seed: see ``AudioAugment``.

    Examples:
        >>> ramp = torch.arange(100.0).expand(1, 1, 1, 100)
        >>> float(TimeWarp().apply(ramp, centre=torch.tensor([50]), shift=torch.tensor([10.0]))[0, 0, 0, 60])
        50.0
    """

    order = 65  # after SpecNormalize (60), before the masks (70)
    identity = {"shift": 0.0}

    def __init__(self, max_warp: int = 10, p: float = 0.5, seed: int | None = None):
        super().__init__(p, seed)
        self.max_warp = check_positive("max_warp", max_warp, integer=True)

    def _draw(self, x, n, device, meta):
        lengths = meta.get("lengths")
        frames = frame_counts(x, lengths)
        w = torch.minimum(torch.full_like(frames, self.max_warp), (frames - 3) // 2).clamp_min(0)
        span = (frames - 2 - 2 * w).clamp_min(1)  # centre in [w + 1, frames - 2 - w]
        centre = w + 1 + (self.uniform((n,), 0.0, 1.0, device) * span).long().clamp_max(span - 1)
        shift = self.uniform((n,), -1.0, 1.0, device) * w
        return {"centre": centre, "shift": shift, "lengths": lengths}

    def apply(self, x, centre, shift, lengths=None):
        """Warp each item's time axis: frame ``centre`` (``(B,)``, int) moves to ``centre + shift`` (``(B,)``)."""
        return time_warp(x, centre, shift, lengths)
