"""``AudioBlock`` for fastai's DataBlock API, and picklable labelling helpers (``get_audio_files`` is
``fastai_audio.files``', re-exported here)."""

from __future__ import annotations

import re
from pathlib import Path

from fastai.data.block import TransformBlock

from ..audio_config import AudioConfig
from ..errors import ParameterError
from ..files import get_audio_files
from ..transforms.item import OpenAudio
from .audio_dl import AudioDL

__all__ = ["AudioBlock", "get_audio_files", "RegexLabeller"]


def AudioBlock(
    sample_rate: int | None = 16000,
    duration: float | None = 4.0,
    mono: bool = True,
    *,
    pad_mode: str = "zeros",
) -> TransformBlock:
    """A fastai ``TransformBlock`` that turns file paths into ``TensorAudio`` of one rate, channel count and length.

    The four arguments make the block's ``AudioConfig`` (``dls.audio_config``: what export writes and the runtime
    reads). Its type transform ``OpenAudio`` decodes each file and runs, in order, ``DownmixMono`` (when ``mono``),
    ``Resample(sample_rate)`` (when given) and ``CropPad(duration)`` (when given: random crop on training, centred
    elsewhere, short clips padded), reading only the cropped window from disk.
    With ``duration=None`` batches are padded to their longest clip and the loader buckets by length; the batch's
    ``TensorAudio.lengths`` holds the true lengths.

    Args:
        sample_rate: rate every clip is resampled to (Hz); ``None`` keeps each file's rate (they must agree).
        duration: seconds per clip; ``None`` for variable-length, padded batches.
        mono: downmix to one channel.
        pad_mode: how clips shorter than ``duration`` (or than their batch) are padded: ``'zeros'``,
            ``'repeat'``, or ``'error'`` to reject short clips.

    Returns:
        A ``TransformBlock`` producing ``TensorAudio`` items ``(channels, samples)``; batches are
        ``(batch, channels, samples)``.

    Examples:
        >>> dblock = DataBlock(blocks=(AudioBlock(sample_rate=16000, duration=4.0), CategoryBlock),
        ...                    get_items=get_audio_files, get_y=parent_label, splitter=GrandparentSplitter())
        >>> dls = dblock.dataloaders("data/", bs=32)
    """
    config = AudioConfig(sample_rate, duration, mono, pad_mode)
    dl_kwargs = {
        "variable_length": duration is None,
        "pad_mode": "zeros" if pad_mode == "error" else pad_mode,
        "sample_rate": config.sample_rate,
    }
    return TransformBlock(type_tfms=OpenAudio(config=config), dl_type=AudioDL, dls_kwargs=dl_kwargs)


class RegexLabeller:
    """Label an item with the first group of ``pattern`` searched in its path (posix form). Picklable.

    Unlike a lambda it survives ``learn.export()``; an item the pattern misses raises a ``ParameterError`` that
    names the file and the pattern.

    Examples:
        >>> RegexLabeller(r"(\\w+)_\\w+_\\d+-\\d+-\\d+.wav$")(Path("train/guitar_acoustic_010-060-100.wav"))
        'guitar'
    """

    def __init__(self, pattern: str, match: bool = False):
        try:
            self.regex = re.compile(pattern)
        except re.error as err:
            raise ParameterError(f"label pattern {pattern!r} is not a valid regular expression: {err}") from None
        if self.regex.groups < 1:
            raise ParameterError(f"label pattern {pattern!r} needs a group, e.g. r'(\\w+)_\\d+.wav$'")
        self.match = match

    def __call__(self, o) -> str:
        s = o.as_posix() if isinstance(o, Path) else str(o)
        m = (self.regex.match if self.match else self.regex.search)(s)
        if m is None:
            raise ParameterError(
                f"label pattern r'{self.regex.pattern}' matches nothing in {s}; fix the pattern "
                "(test it with re.search on that path) or filter such files out first"
            )
        return m.group(1)
