"""Item transforms that run on CPU workers: decode, downmix, resample, crop/pad one clip at a time.

Each is a picklable fastai ``Transform`` holding its parameters and calling one function.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from fastai.vision.augment import RandTransform
from fasttransform import DisplayedTransform

from .._validate import check_choice, check_positive, check_sample_rate
from ..core import TensorAudio
from ..errors import ParameterError
from ..functional import crop, pad
from ..io import resample

__all__ = ["AudioTransform", "OpenAudio", "DownmixMono", "Resample", "CropPad"]


class AudioTransform(DisplayedTransform):
    """Base class of transforms that act on ``TensorAudio`` and pass everything else (labels...) through.

    Subclasses implement ``_encode(self, x: TensorAudio) -> TensorAudio``. ``encodes`` dispatches through plum like
    any fastai Transform; on the data path the dispatch is skipped, because resolving it costs more (about 0.1 ms a
    call) than most audio transforms themselves.
    """

    def encodes(self, x: TensorAudio):
        return self._encode(x)

    def _do_call(self, nm, *args, **kwargs):
        if nm == "encodes" and isinstance(args[0], TensorAudio):
            return self._encode(args[0])
        return super()._do_call(nm, *args, **kwargs)

    def _encode(self, x: TensorAudio) -> TensorAudio:
        raise NotImplementedError


class OpenAudio(DisplayedTransform):
    """Type transform: a path (or an array/tensor plus ``sample_rate``) becomes a ``TensorAudio``.

    Files are decoded at their own rate with all channels; ``DownmixMono`` and ``Resample`` follow.

    Examples:
        >>> OpenAudio()("note.wav").shape
        torch.Size([2, 44100])
    """

    def __init__(self, sample_rate: int | None = None):
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate, allow_none=True)

    def encodes(self, o):
        if isinstance(o, TensorAudio):
            return o
        if isinstance(o, (str, Path)):
            return TensorAudio.create(o)
        if isinstance(o, (torch.Tensor, np.ndarray)):
            if self.sample_rate is None:
                raise ParameterError("an array or tensor needs its sample rate: pass sample_rate=<Hz>")
            return TensorAudio.create(o, sample_rate=self.sample_rate)
        raise ParameterError(f"cannot open {o!r} as audio: expected a file path, a tensor or an array")


class DownmixMono(AudioTransform):
    """Average all channels into one: ``(channels, samples)`` -> ``(1, samples)``.

    Examples:
        >>> DownmixMono()(TensorAudio(torch.ones(2, 5), sample_rate=8000)).shape
        torch.Size([1, 5])
    """

    order = 1

    def _encode(self, x: TensorAudio) -> TensorAudio:
        return x if x.shape[-2] == 1 else x.mean(dim=-2, keepdim=True)


class Resample(AudioTransform):
    """Resample to ``sample_rate`` Hz (windowed sinc, kernels cached per rate pair); no-op at that rate already.

    Examples:
        >>> Resample(16000)(TensorAudio(torch.randn(1, 44100), sample_rate=44100)).shape
        torch.Size([1, 16000])
    """

    order = 2

    def __init__(self, sample_rate: int):
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)

    def _encode(self, x: TensorAudio) -> TensorAudio:
        if x.sample_rate == self.sample_rate:
            return x
        out = TensorAudio(resample(x, x.sample_rate, self.sample_rate))
        out.set_meta(x, as_copy=True)
        out.sample_rate = self.sample_rate
        return out


class CropPad(AudioTransform, RandTransform):
    """Make every clip exactly ``duration`` seconds (or ``num_samples`` samples).

    Longer clips are cropped: at a random offset on the training set (``split_idx=0``), centred everywhere else
    (validation, test, ``predict``). Shorter clips are padded at the end with silence (``pad_mode='zeros'``),
    by looping (``'repeat'``), or rejected with a ``ParameterError`` naming the file (``'error'``).

    Args:
        duration: seconds, converted with each clip's own ``sample_rate``.
        num_samples: alternatively, an exact number of samples.
        pad_mode: ``'zeros'``, ``'repeat'`` or ``'error'``.

    Examples:
        >>> CropPad(1.0)(TensorAudio(torch.randn(1, 24000), sample_rate=16000), split_idx=1).shape
        torch.Size([1, 16000])
    """

    order = 3
    split_idx = None  # acts on every split, differently on training

    def __init__(self, duration: float | None = None, *, num_samples: int | None = None, pad_mode: str = "zeros"):
        super().__init__(p=1.0)
        if (duration is None) == (num_samples is None):
            raise ParameterError("CropPad needs exactly one of duration (seconds) or num_samples")
        self.duration = check_positive("duration", duration, allow_none=True)
        self.num_samples = check_positive("num_samples", num_samples, allow_none=True, integer=True)
        self.pad_mode = check_choice("pad_mode", pad_mode, ("zeros", "repeat", "error"))
        self._random_offset = False

    def target_length(self, sample_rate: int) -> int:
        """Samples per clip at ``sample_rate``."""
        return self.num_samples if self.num_samples is not None else int(round(self.duration * sample_rate))

    def before_call(self, b, split_idx: int | None):
        self.do = True
        self._random_offset = split_idx == 0
        self._u = random.random()  # the draw: where in the clip the crop starts, as a fraction of the slack

    def _encode(self, x: TensorAudio) -> TensorAudio:
        n = self.target_length(x.sample_rate)
        length = x.shape[-1]
        if length > n:
            slack = length - n
            offset = min(int(self._u * (slack + 1)), slack) if self._random_offset else slack // 2
            return crop(x, n, offset)
        if length < n and self.pad_mode == "error":
            where = getattr(x, "path", None) or "a clip"
            raise ParameterError(
                f"{where} is {length / x.sample_rate:.3f} s long, shorter than the {n / x.sample_rate:.3f} s "
                "asked for; use pad_mode='zeros' or 'repeat', or a shorter duration"
            )
        return pad(x, n, "repeat" if self.pad_mode == "repeat" else "zeros")
