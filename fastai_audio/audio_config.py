"""``AudioConfig``: what every clip becomes (rate, length, channels, padding), and which part of a file makes one.

One frozen value, made by ``AudioBlock``, held by the loaders' opener (``dls.audio_config``), written into an
exported ONNX model and read back by the torch-free runtime, so training, ``predict`` and serving cut the same
window from the same file. No torch: the runtime imports it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from ._validate import check_choice, check_positive, check_sample_rate
from .errors import ParameterError

__all__ = ["AudioConfig", "PAD_MODES", "crop_offset"]

#: How clips shorter than the duration are lengthened: silence, a loop, or an error naming the file.
PAD_MODES = ("zeros", "repeat", "error")
#: The longest clip a config may ask for: past it a value is a mistake (or hostile metadata), not a training clip.
MAX_CLIP_SECONDS = 3600.0
#: The highest rate a config may ask for (the decode core's limit for files).
MAX_SAMPLE_RATE = 768_000


def crop_offset(length: int, n: int, u: float | None = None) -> int:
    """First sample of the ``n``-sample window kept from a ``length``-sample clip: centred (``u=None``) or, for a
    draw ``u`` in [0, 1), anywhere, every start equally likely.

    Examples:
        >>> crop_offset(100, 40), crop_offset(100, 40, 0.0), crop_offset(100, 40, 0.999)
        (30, 0, 60)
    """
    slack = length - n
    return slack // 2 if u is None else min(int(u * (slack + 1)), slack)


@dataclass(frozen=True)
class AudioConfig:
    """What every clip becomes: its rate, its length, its channels and how short clips are padded.

    Attributes:
        sample_rate: Hz every clip is resampled to; ``None`` keeps each file's rate (they must then agree).
        duration: seconds per clip; ``None`` keeps whole clips (variable-length, padded batches).
        mono: downmix every clip to one channel.
        pad_mode: for clips shorter than ``duration``: ``'zeros'``, ``'repeat'`` or ``'error'``.

    Examples:
        >>> cfg = AudioConfig(sample_rate=16000, duration=4.0)
        >>> cfg.num_samples(), cfg.window(frames=441000, file_rate=44100)   # 10 s at 44.1 kHz: the middle 4 s
        (64000, (132300, 176400))
        >>> AudioConfig.from_json(cfg.to_json()) == cfg
        True
    """

    sample_rate: int | None = 16000
    duration: float | None = 4.0
    mono: bool = True
    pad_mode: str = "zeros"

    def __post_init__(self):
        rate = check_sample_rate(self.sample_rate, allow_none=True)
        if rate is not None and rate > MAX_SAMPLE_RATE:
            raise ParameterError(f"sample_rate must be at most {MAX_SAMPLE_RATE} Hz, got {self.sample_rate!r}")
        duration = check_positive("duration", self.duration, allow_none=True)
        if duration is not None and duration > MAX_CLIP_SECONDS:
            raise ParameterError(
                f"duration must be at most {MAX_CLIP_SECONDS:g} s (one hour), got {self.duration!r}; "
                "use duration=None for whole clips"
            )
        if not isinstance(self.mono, bool):
            raise ParameterError(f"mono must be True or False, got {self.mono!r}")
        check_choice("pad_mode", self.pad_mode, PAD_MODES)
        if duration is None and self.pad_mode == "error":
            raise ParameterError("pad_mode='error' needs a duration: variable-length batches always pad")
        object.__setattr__(self, "sample_rate", rate)
        object.__setattr__(self, "duration", None if duration is None else float(duration))

    def num_samples(self, sample_rate: int | None = None) -> int | None:
        """Samples per clip at ``self.sample_rate`` (or at ``sample_rate`` when the config keeps each file's rate);
        ``None`` for whole clips."""
        if self.duration is None:
            return None
        rate = self.sample_rate or sample_rate
        if rate is None:
            raise ParameterError("this config keeps each file's rate: pass the clip's sample_rate")
        return int(round(self.duration * rate))

    def window(self, frames: int, file_rate: int, u: float | None = None) -> tuple[int, int]:
        """The part of a file of ``frames`` frames at ``file_rate`` Hz that makes one clip, as ``(start, count)``
        in the file's frames (``count=-1``: to the end, the whole file). Centred, or at the draw ``u`` in [0, 1)
        (random crops on the training set). Resampling a window of ``count`` frames gives at least
        ``num_samples()`` samples, which the crop then trims at the same draw.

        Examples:
            >>> AudioConfig(sample_rate=16000, duration=1.0).window(48000, 16000)
            (16000, 16000)
            >>> AudioConfig(sample_rate=16000, duration=1.0).window(8000, 16000)   # shorter: all of it, then padded
            (0, -1)
        """
        if self.duration is None:
            return 0, -1
        target_rate = self.sample_rate or file_rate
        n = math.ceil(self.num_samples(target_rate) * file_rate / target_rate)
        return (0, -1) if frames <= n else (crop_offset(frames, n, u), n)

    def to_json(self) -> str:
        """The config as a JSON object (what ``export_onnx`` writes into the model's metadata)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AudioConfig:
        """A config from ``to_json``'s text, every field checked: an error names the field and its value.

        Examples:
            >>> AudioConfig.from_json('{"sample_rate": 0, "duration": 4.0, "mono": true, "pad_mode": "zeros"}')
            Traceback (most recent call last):
            ...
            fastai_audio.errors.ParameterError: sample_rate must be a positive integer, got 0
        """
        try:
            fields = json.loads(text)
        except (TypeError, ValueError) as err:
            raise ParameterError(f"an audio config must be a JSON object, got {str(text)[:80]!r} ({err})") from None
        if not isinstance(fields, dict) or set(fields) != {"sample_rate", "duration", "mono", "pad_mode"}:
            raise ParameterError(
                f"an audio config needs exactly sample_rate, duration, mono and pad_mode, got {str(text)[:200]!r}"
            )
        return cls(**fields)
