"""Per-clip transforms that run on CPU workers: decode, downmix, resample, crop/pad one clip at a time.

Each is a picklable fastai ``Transform`` holding its parameters and calling one function. ``OpenAudio`` is the type
transform the loaders use: it decodes a file and runs the others in the same call.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from fastai.vision.augment import RandTransform
from fasttransform import DisplayedTransform

from .._compat import DirectEncodes, input_pipeline
from .._validate import check_choice, check_positive, check_sample_rate
from ..audio_config import AudioConfig, crop_offset
from ..core import TensorAudio
from ..decode import AudioSource
from ..errors import ParameterError
from ..functional import crop, pad
from ..io import pcm_to_float, read_span, resample
from ..packed import PackedClip
from .base import TypedTransform

__all__ = ["AudioTransform", "OpenAudio", "DownmixMono", "Resample", "CropPad", "audio_config_of", "find_opener"]


class AudioTransform(TypedTransform):
    """Base class of per-clip transforms, which run on ``TensorAudio``; labels and other items pass through.

    Subclasses implement ``_apply(wav, sample_rate, meta) -> (wav, sample_rate)`` on a plain tensor ``(channels,
    samples)``; ``meta`` holds the clip's metadata (e.g. ``path``, for messages). Working on plain tensors keeps
    fastai's per-operation metadata hook (about 4 us a call) off the data path; the result is wrapped once.

    Examples:
        >>> class Reverse(AudioTransform):
        ...     def _apply(self, wav, sample_rate, meta):
        ...         return wav.flip(-1), sample_rate
        >>> Reverse()(TensorAudio(torch.arange(4.0)[None], sample_rate=8000)).tolist()
        [[3.0, 2.0, 1.0, 0.0]]
    """

    accepts = (TensorAudio,)

    def _encode(self, x: TensorAudio) -> TensorAudio:
        return _wrap(*self._apply(x.as_subclass(torch.Tensor), x.sample_rate, x.__dict__), x.__dict__)

    def _apply(self, wav: torch.Tensor, sample_rate: int, meta: dict) -> tuple[torch.Tensor, int]:
        raise NotImplementedError


def _wrap(wav: torch.Tensor, sample_rate: int, meta: dict) -> TensorAudio:
    out = wav.as_subclass(TensorAudio)
    out.__dict__ = {**meta, "sample_rate": sample_rate}  # a new dict: as_subclass shares ``wav``'s
    return out


class DownmixMono(AudioTransform):
    """Average all channels into one: ``(channels, samples)`` -> ``(1, samples)``.

    Examples:
        >>> DownmixMono()(TensorAudio(torch.ones(2, 5), sample_rate=8000)).shape
        torch.Size([1, 5])
    """

    order = 1

    def _apply(self, wav, sample_rate, meta):
        return (wav if wav.shape[-2] == 1 else wav.mean(dim=-2, keepdim=True)), sample_rate


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

    def _apply(self, wav, sample_rate, meta):
        return resample(wav, sample_rate, self.sample_rate), self.sample_rate  # the same tensor at its own rate


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

    def set_draw(self, draw: float | None):
        """Crop at ``draw`` (a fraction of the slack, as ``before_call`` draws it) or, with ``None``, centred."""
        self._random_offset, self._u = draw is not None, draw

    @property
    def draw(self) -> float | None:
        """Where the current crop starts, as a fraction of the slack: the draw on the training set, ``None``
        (centred) elsewhere."""
        return self._u if self._random_offset else None

    def offset(self, length: int, n: int) -> int:
        """First sample of the ``n``-sample window kept from a ``length``-sample clip, for the current draw."""
        return crop_offset(length, n, self.draw)

    def _apply(self, wav, sample_rate, meta):
        n = self.target_length(sample_rate)
        length = wav.shape[-1]
        if length > n:
            return crop(wav, n, self.offset(length, n)), sample_rate
        if length < n and self.pad_mode == "error":
            where = meta.get("path") or "a clip"
            raise ParameterError(
                f"{where} is {length / sample_rate:.3f} s long, shorter than the {n / sample_rate:.3f} s "
                "asked for; use pad_mode='zeros' or 'repeat', or a shorter duration"
            )
        return pad(wav, n, "repeat" if self.pad_mode == "repeat" else "zeros"), sample_rate


class OpenAudio(DirectEncodes, DisplayedTransform):
    """Type transform: a file path (or an ``AudioSource``) becomes a ``TensorAudio`` of one rate, channel count and
    length.

    One call decodes the file and runs the per-clip steps ``DownmixMono`` (when ``mono``), ``Resample``
    (when ``sample_rate``) and ``CropPad`` (when ``duration``): the same transform objects as in a hand-written
    pipeline, so the result is the same, minus one fastai dispatch per step. With a ``duration``, the window the
    crop keeps is chosen from the file's header first (``AudioConfig.window``: random on the training set, centred
    elsewhere) and only that window is read from disk, so a 4 s crop of a one-hour file costs what a 4 s file
    costs. A ``TensorAudio`` input skips the decoding and goes through the same steps.

    Args:
        sample_rate: resample every clip to this rate (Hz); ``None`` keeps each file's rate.
        mono: downmix to one channel.
        duration: seconds per clip; ``None`` keeps whole clips.
        pad_mode: for clips shorter than ``duration``: ``'zeros'``, ``'repeat'`` or ``'error'`` (see ``CropPad``).
        config: an ``AudioConfig`` instead of the four arguments above.

    Attributes:
        config: the ``AudioConfig`` (``sample_rate``, ``mono``, ``duration`` and ``pad_mode`` read it).

    Examples:
        >>> x = OpenAudio(16000, mono=True, duration=4.0)("guitar_acoustic_010-060-100.wav", split_idx=1)
        >>> x.shape, x.sample_rate
        (torch.Size([1, 64000]), 16000)
    """

    def __init__(
        self,
        sample_rate: int | None = None,
        mono: bool = False,
        duration: float | None = None,
        *,
        pad_mode: str = "zeros",
        config: AudioConfig | None = None,
    ):
        super().__init__()
        self.config = config if config is not None else AudioConfig(sample_rate, duration, mono, pad_mode)
        self._build()

    def _build(self):
        config = self.config
        self.crop = CropPad(config.duration, pad_mode=config.pad_mode) if config.duration is not None else None
        self.steps = [DownmixMono()] if config.mono else []
        if config.sample_rate is not None:
            self.steps.append(Resample(config.sample_rate))
        self._split_idx = None

    sample_rate = property(lambda self: self.config.sample_rate, doc="The config's rate (Hz), or None.")
    mono = property(lambda self: self.config.mono, doc="Whether clips are downmixed to one channel.")
    duration = property(lambda self: self.config.duration, doc="Seconds per clip, or None for whole clips.")
    pad_mode = property(lambda self: self.config.pad_mode, doc="How short clips are padded.")

    def __setstate__(self, state):
        if "config" not in state:  # pickled before AudioConfig (a learner exported by fastai_audio 0.1)
            state = dict(state)
            state["config"] = AudioConfig(
                state.pop("sample_rate", None),
                state.pop("duration", None),
                state.pop("mono", False),
                state.pop("pad_mode", "zeros"),
            )
        self.__dict__.update(state)

    def __call__(self, o, split_idx=None, **kwargs):
        self._split_idx = split_idx  # the crop is random on the training set only
        return super().__call__(o, split_idx=split_idx, **kwargs)

    def encodes(self, o) -> TensorAudio:
        draw = None
        if self.crop is not None:
            self.crop.before_call(o, self._split_idx)
            draw = self.crop.draw
        if isinstance(o, (str, Path)):
            path = o if isinstance(o, Path) else Path(o)
            return _wrap(*self.clip(path, draw), {"path": path})
        if isinstance(o, (PackedClip, AudioSource)):
            return _wrap(*self.clip(o, draw), {"path": Path(o.name)})
        if isinstance(o, TensorAudio):
            return _wrap(*self.clip(o, draw), o.__dict__)
        raise ParameterError(
            f"cannot open a {type(o).__name__} as audio: expected a file path, an AudioSource or a TensorAudio "
            "(wrap an array with TensorAudio.create(array, sample_rate=<Hz>))"
        )

    def clip(self, o, draw: float | None = None) -> tuple[torch.Tensor, int]:
        """One clip as a plain float32 ``(channels, samples)`` tensor and its rate, from a file or an
        ``AudioSource`` (only the window the crop keeps is read), a clip of a packed cache or a ``TensorAudio``:
        decoded, downmixed, resampled and cropped or padded, the crop at ``draw`` (a fraction of the slack,
        ``None``: centred). What ``encodes`` computes for its own draw, and what the loaders' batch filler computes
        for clips it cannot read straight into a batch."""
        if self.crop is not None:
            self.crop.set_draw(draw)
        if isinstance(o, TensorAudio):
            meta, wav, sr = o.__dict__, o.as_subclass(torch.Tensor), o.sample_rate
        elif isinstance(o, PackedClip):  # stored at the config's rate and channels: a slice of the cache
            meta, sr = {"path": o.name}, self.config.sample_rate
            start, count = (0, -1) if self.crop is None else self.config.window(o.length, sr, draw)
            wav = pcm_to_float(np.array(o.samples(start, count).T, order="C"))  # (a copy: the map is read-only)
        else:
            meta = {"path": o}
            window = None if self.crop is None else lambda frames, rate: self.config.window(frames, rate, draw)
            wav, sr = read_span(o, window)
        for step in self.steps + ([self.crop] if self.crop is not None else []):
            wav, sr = step._apply(wav, sr, meta)
        return wav, sr


def find_opener(dataset) -> tuple[int, OpenAudio] | tuple[None, None]:
    """Where ``OpenAudio`` is in the input pipeline of a fastai ``Datasets`` (e.g. ``dls.valid_ds``): its index and
    the transform, or ``(None, None)``. The transforms before it read items (e.g. a DataFrame column), those from it
    on turn a path into a clip.

    Examples:
        >>> index, opener = find_opener(dls.valid_ds)
        >>> index, opener.sample_rate, opener.duration
        (1, 16000, 1.0)
    """
    fs = input_pipeline(dataset) or []
    return next(((i, t) for i, t in enumerate(fs) if isinstance(t, OpenAudio)), (None, None))


def audio_config_of(dataset) -> AudioConfig | None:
    """The ``AudioConfig`` of the loaders' opener in a fastai ``Datasets`` (e.g. ``dls.valid_ds``), or ``None``.

    Examples:
        >>> audio_config_of(dls.valid_ds)
        AudioConfig(sample_rate=16000, duration=1.0, mono=True, pad_mode='zeros')
    """
    opener = find_opener(dataset)[1]
    return None if opener is None else opener.config
