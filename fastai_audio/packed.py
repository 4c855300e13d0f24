"""The packed cache: a data set decoded once into one memory-mapped file of samples per split, plus an index.

``fastai-audio pack DATA DEST`` (``fastai_audio.data.pack``) writes it; ``AudioDataLoaders.from_packed(DEST)``
reads it. A clip is then a slice of a memory map (a copy, no file to open and nothing to decode): the loaders' batch
filler gathers a batch several times faster than from the files. Samples are stored at the loaders' rate and
channel count, as ``int16`` when every clip is 8/16-bit PCM at that rate (exactly the files' samples) and as
``float32`` otherwise. Whole clips are stored, so random crops still change every epoch.

Layout of ``DEST``: ``packed.json`` (the index) and one ``<split>.bin`` per split (C-order ``(frames, channels)``
samples, clip after clip). The index says, per split, the file's size and each clip's first frame, length, label
and source file; ``read_packed_index`` refuses an index that does not match its data, naming the file.

numpy only: the decode core's sibling for samples that are already decoded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import AudioFileError

__all__ = ["INDEX_NAME", "PackedClip", "read_packed_index"]

#: The index file beside the packed samples.
INDEX_NAME = "packed.json"
VERSION = 1
DTYPES = ("int16", "float32")

_MAPS: dict[str, np.memmap] = {}  # one read-only map per file and process


class PackedClip:
    """One clip of a packed cache: ``length`` frames from frame ``offset`` of ``file``. What the packed loaders'
    items are; ``name`` (the source file) is what messages call it.

    Examples:
        >>> index = pack(AudioDataLoaders.from_folder("data"), "data_packed", progress=False)
        >>> dls = AudioDataLoaders.from_packed(index, duration=1.0, bs=4)
        >>> clip = dls.train_ds.items[0][0]
        >>> clip.length, clip.samples(0, 4).shape       # 1 s at 16 kHz, mono
        (16000, (4, 1))
    """

    __slots__ = ("file", "offset", "length", "channels", "dtype", "name")

    def __init__(self, file, offset: int, length: int, channels: int, dtype: str, name: str):
        self.file, self.offset, self.length = str(file), int(offset), int(length)
        self.channels, self.dtype, self.name = int(channels), dtype, name

    def __getstate__(self):
        return [getattr(self, k) for k in self.__slots__]

    def __setstate__(self, state):
        for k, v in zip(self.__slots__, state):
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"PackedClip({self.name!r}, {self.length} frames)"

    def samples(self, start: int = 0, count: int = -1) -> np.ndarray:
        """Frames ``start`` to ``start + count`` (``-1``: to the clip's end) as a ``(frames, channels)`` view of the
        memory map (int16 or float32, as packed)."""
        count = self.length - start if count < 0 else min(count, self.length - start)
        data = _map(self.file, self.dtype, self.channels)
        return data[self.offset + start : self.offset + start + count]


def _map(file: str, dtype: str, channels: int) -> np.ndarray:
    data = _MAPS.get(file)
    if data is None:
        data = np.memmap(file, dtype=np.dtype(dtype), mode="r").reshape(-1, channels)
        _MAPS[file] = data
    return data


def read_packed_index(dest) -> dict:
    """The index of the packed cache in ``dest`` (a folder, or its ``packed.json``), checked against its data: the
    version, the dtype, and per split that the samples file exists with the size the index gives and that every
    clip lies inside it, one after the other.

    Raises:
        AudioFileError: no cache there, or an index that does not match its data (the file named, and the fix).

    Examples:
        >>> index = read_packed_index(pack(AudioDataLoaders.from_folder("data"), "data_packed_2", progress=False))
        >>> index["dtype"], index["channels"], [len(index["splits"][s]["clips"]) for s in ("train", "valid")]
        ('int16', 1, [8, 4])
    """
    path = Path(dest)
    path = path / INDEX_NAME if path.is_dir() else path
    fix = "pack the data set again (fastai-audio pack DATA DEST)"
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise AudioFileError(
            path, f"no packed cache here; write one with `fastai-audio pack DATA {path.parent}`"
        ) from None
    except (OSError, ValueError) as err:
        raise AudioFileError(path, f"is not a packed cache's index ({err}); {fix}") from None
    if not isinstance(index, dict) or index.get("version") != VERSION or index.get("dtype") not in DTYPES:
        raise AudioFileError(path, f"is not a version-{VERSION} packed cache index (int16 or float32 samples); {fix}")
    channels, itemsize = int(index.get("channels", 0)), np.dtype(index["dtype"]).itemsize
    splits = index.get("splits")
    if channels < 1 or not isinstance(splits, dict) or not splits:
        raise AudioFileError(path, f"names no channels or no splits; {fix}")
    for split, entry in splits.items():
        data = path.parent / str(entry.get("file", ""))
        clips = entry.get("clips")
        if not data.is_file() or not isinstance(clips, list):
            raise AudioFileError(data, f"is missing: the index {path} lists it for the {split} set; {fix}")
        frames = int(entry.get("frames", -1))
        size = data.stat().st_size
        if size != frames * channels * itemsize:
            raise AudioFileError(
                data,
                f"holds {size} bytes but the index says {frames} frames x {channels} channels "
                f"of {index['dtype']} ({frames * channels * itemsize} bytes): the cache is "
                f"truncated or mixed with another one; {fix}",
            )
        end = 0
        for k, clip in enumerate(clips):
            if (
                not isinstance(clip, list)
                or len(clip) != 4
                or clip[0] != end
                or not isinstance(clip[1], int)
                or clip[1] < 1
            ):
                raise AudioFileError(
                    data,
                    f"clip {k} of the {split} set does not follow the one before it in the "
                    f"index ({str(clip)[:80]}); {fix}",
                )
            end = clip[0] + clip[1]
        if end != frames:
            raise AudioFileError(data, f"the index's clips end at frame {end}, the file at {frames}; {fix}")
    return index
