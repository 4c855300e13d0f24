"""The decode core: where every audio byte the library reads becomes samples. numpy and soundfile only, no torch.

The loaders (``io.read_span``, the batch filler), the shards, ``fastai-audio check`` and the torch-free ONNX
runtime (``fastai_audio.runtime``) and its server all read audio here, so a broken file gets the same typed error
(``fastai_audio.errors``) whichever of them meets it:

- ``EmptyAudioError``: 0 bytes, or no samples;
- ``UndecodableAudioError``: libsndfile cannot read it; its subclass ``ImpossibleFormatError``: the header gives
  a rate or a channel count no recording has;
- ``TruncatedAudioError``: the file ends before the samples its header declares. libsndfile shortens a truncated
  WAV or AIFF to what is there and says so only in its log, which is read here; a decoder that breaks off (FLAC)
  or delivers fewer frames than the header declares (MP3) says the same;
- ``NonFiniteAudioError``: NaN or infinite samples (float formats only);
- ``AudioTooLongError``: longer, by its header, than a limit given (``max_seconds``, or ``max_samples`` counting
  every channel), refused before anything is decoded.

Memory follows the samples really decoded: reads go block by block past ``READ_BLOCK`` frames, so a header that
claims billions of frames costs what the file holds.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import (
    AudioFileError,
    AudioTooLongError,
    EmptyAudioError,
    ImpossibleFormatError,
    NonFiniteAudioError,
    TruncatedAudioError,
    UndecodableAudioError,
)

__all__ = [
    "AudioInfo",
    "AudioSource",
    "INT16_SUBTYPES",
    "INT32_SUBTYPES",
    "READ_BLOCK",
    "decode_audio",
    "open_audio",
    "read_frames",
    "scan_audio",
]

#: Frames read in one call: longer reads go block by block (see the module's notes).
READ_BLOCK = 1 << 22

#: Subtypes whose samples are integers, hence always finite: the NaN/Inf scan is skipped for them.
INTEGER_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})
#: Subtypes that read as ``int16`` without loss: libsndfile's float for them is exactly ``int16 * 2**-15``.
INT16_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "ULAW", "ALAW"})
#: Subtypes that read as ``int32`` without loss: libsndfile's float for them is exactly ``int32 * 2**-31``.
INT32_SUBTYPES = frozenset({"PCM_24", "PCM_32"})
#: The float value of one step of each integer dtype ``read_frames`` returns.
PCM_SCALE = {"int16": 2.0**-15, "int32": 2.0**-31}

#: The widest formats accepted: beyond them a header is corrupt or hostile, not a recording.
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 256

# What soundfile raises for input it cannot open or decode.
_SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError, EOFError)
# libsndfile's error numbers (common.h) for a header it refuses as impossible rather than unreadable: SF_INFO
# incomplete (a rate below 1, e.g. 0 or 4e9 read as a negative int), a channel count of zero, too many channels
_IMPOSSIBLE_FORMAT_CODES = {24: "a sample rate below 1 Hz", 32: "zero channels", 33: "too many channels"}
# libsndfile's log when a WAV/W64/RF64 data chunk or an AIFF sound chunk is cut short: it then reads what is there
_DATA_SHORT = re.compile(r"^\s*data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_SSND_SHORT = "calculated from length of 'SSND' chunk"
# placeholders streaming writers put in a data chunk's size before they know it
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)
# MP3's length is an estimate from the stream's headers: a shortfall under this share is not called truncation
_ESTIMATED_LENGTH_SLACK = {"MP3": 0.05}
#: Formats whose header length is an estimate (the frames decoded may differ a little).
ESTIMATED_LENGTH_FORMATS = frozenset(_ESTIMATED_LENGTH_SLACK)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: no samples are decoded.

    Attributes:
        path: the file (or the name given to bytes).
        sample_rate: samples per second per channel.
        frames: samples per channel (the length).
        channels: number of channels.
        format: container, e.g. ``'WAV'``, ``'FLAC'``.
        subtype: encoding, e.g. ``'PCM_16'``, ``'FLOAT'``, ``'VORBIS'``.

    Examples:
        >>> AudioInfo("a.wav", 16000, 32000, 1, "WAV", "PCM_16").duration
        2.0
    """

    path: str
    sample_rate: int
    frames: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate

    @property
    def integer_dtype(self) -> str | None:
        """``'int16'`` or ``'int32'`` when the samples read as those integers without loss, else ``None``."""
        return "int16" if self.subtype in INT16_SUBTYPES else "int32" if self.subtype in INT32_SUBTYPES else None


class AudioSource:
    """Audio that an item refers to and that is read only when it is opened: a file's path or a file's bytes kept
    somewhere else (a row of a Hugging Face dataset: ``fastai_audio.datasets.HFAudio``). Every reader of the decode
    core (``open_audio``, ``decode_audio``, ``scan_audio``) and the loaders take one wherever they take a path.

    Subclasses set ``name`` (unique and stable: what reports and messages call the item) and implement ``read``.

    Examples:
        >>> class InMemory(AudioSource):
        ...     def __init__(self, data, name):
        ...         self.data, self.name = data, name
        ...     def read(self):
        ...         return self.data, self.name
        >>> decode_audio(InMemory(Path("note.wav").read_bytes(), "note #1"))[0].shape
        (1, 64000)
    """

    name: str

    def read(self) -> tuple[Path | bytes, str]:
        """``(source, label)``: the path or the file's bytes, and what errors about it call it."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def as_source(o) -> Path | AudioSource:
    """An item as the decode core opens it: an ``AudioSource`` as it is, anything else as a ``Path``.

    Examples:
        >>> isinstance(as_source("note.wav"), Path)
        True
    """
    return o if isinstance(o, AudioSource) else Path(o)


def _name(source, name) -> str:
    if name is not None:
        return str(name)
    return str(source) if isinstance(source, (str, Path)) else "the audio"


def _diagnose_path(path) -> AudioFileError | None:
    """The precise reason a path is unusable before any decoding (missing, a directory, unreadable, empty)."""
    path = Path(path)
    if not path.exists():
        return AudioFileError(path, "no such file; check the path (relative paths start at the current folder)")
    if path.is_dir():
        return AudioFileError(path, "is a directory, not an audio file; use get_audio_files() to list its audio")
    if not os.access(path, os.R_OK):
        return AudioFileError(path, "permission denied; make the file readable (chmod +r) or copy it elsewhere")
    if path.stat().st_size == 0:
        return EmptyAudioError(path, "is empty (0 bytes); re-export or delete it")
    return None


def check_readable(path) -> Path:
    """``path`` as a ``Path`` if it is a readable, non-empty file; else the ``AudioFileError`` saying what is wrong."""
    err = _diagnose_path(path)
    if err is not None:
        raise err
    return Path(path)


def _undecodable(name: str, err: Exception) -> UndecodableAudioError:
    detail = getattr(err, "error_string", None) or str(err)  # libsndfile's reason, without the path again
    return UndecodableAudioError(
        name,
        f"cannot be decoded as audio ({detail}); the file is corrupt, truncated or not audio. "
        "Run `fastai-audio check` on the folder to list every bad file, or load with on_error='skip'",
    )


def _truncated(name: str, declared: int, present: int, unit: str = "frames") -> TruncatedAudioError:
    return TruncatedAudioError(
        name,
        f"is truncated: its header declares {declared} {unit} but only {present} are there (an interrupted copy, "
        "download or recording); copy or export it again, or delete it",
    )


class _Bytes(io.BytesIO):
    """A file's bytes for libsndfile's virtual I/O: a corrupt header can make it seek before the start, which
    ``BytesIO`` refuses with an exception that soundfile's callback can only print; this lands on byte 0, as the
    callback's default answer does, without the noise."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return super().seek(max(offset, 0) if whence == io.SEEK_SET else offset, whence)


def open_audio(
    source, *, name=None, max_seconds: float | None = None, max_samples: int | None = None
) -> tuple[sf.SoundFile, AudioInfo]:
    """Open a file (a path) or a file's bytes and check its header; the caller closes the ``SoundFile``.

    Args:
        source: a path (``str`` / ``Path``), the bytes of a file (``bytes``, ``bytearray``, ``memoryview``) or an
            ``AudioSource`` (read now).
        name: what errors call it (default: the path, or "the audio" for bytes).
        max_seconds: refuse (``AudioTooLongError``) a recording longer than this, from its header.
        max_samples: refuse one holding more samples than this, all channels counted.

    Returns:
        ``(soundfile.SoundFile, AudioInfo)``.

    Raises:
        AudioFileError: a path that is missing, a directory or unreadable; ``EmptyAudioError``,
            ``UndecodableAudioError``, ``TruncatedAudioError`` or ``AudioTooLongError`` as the module says.

    Examples:
        >>> f, info = open_audio("note.wav")
        >>> with f:
        ...     info.sample_rate, info.frames, info.integer_dtype
        (16000, 64000, 'int16')
    """
    if isinstance(source, AudioSource):
        source, label = source.read()
        name = label if name is None else name
    label = _name(source, name)
    is_path = isinstance(source, (str, Path))
    if not is_path:
        if not isinstance(source, (bytes, bytearray, memoryview)):
            raise TypeError(f"open_audio reads a path or a file's bytes, not a {type(source).__name__}")
        if not len(source):
            raise EmptyAudioError(label, "is empty (0 bytes); re-export or delete it")
    try:
        f = sf.SoundFile(str(source) if is_path else _Bytes(source))
    except _SOUNDFILE_ERRORS as err:
        precise = _diagnose_path(source) if is_path else None
        if precise is not None:
            raise (type(precise)(label, precise.reason) if name is not None else precise) from None
        impossible = _IMPOSSIBLE_FORMAT_CODES.get(getattr(err, "code", None))
        if impossible is not None:
            raise ImpossibleFormatError(
                label, f"has an impossible format ({impossible}): its header is corrupt; export it again, or delete it"
            ) from None
        raise _undecodable(label, err) from None
    try:
        info = AudioInfo(label, int(f.samplerate), int(f.frames), int(f.channels), f.format, f.subtype)
        _check_header(f, info, label, max_seconds, max_samples)
    except BaseException:
        f.close()
        raise
    return f, info


def _check_header(f: sf.SoundFile, info: AudioInfo, name: str, max_seconds, max_samples):
    if not 1 <= info.sample_rate <= MAX_SAMPLE_RATE or not 1 <= info.channels <= MAX_CHANNELS:
        raise ImpossibleFormatError(
            name,
            f"has an impossible format ({info.sample_rate} Hz, {info.channels} channels; recordings have 1 to "
            f"{MAX_SAMPLE_RATE} Hz and 1 to {MAX_CHANNELS} channels): its header is corrupt",
        )
    if info.format in ("WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF"):
        log = f.extra_info
        for declared, present in _DATA_SHORT.findall(log):
            declared, present = int(declared), int(present)
            if present < declared and declared not in _UNKNOWN_SIZES:
                raise _truncated(name, declared, present, "bytes of samples")
        if _SSND_SHORT in log and "> file length" in log:
            raise TruncatedAudioError(
                name,
                f"is truncated: its sound chunk runs past the end of the file, where only {info.frames} frames "
                "are (an interrupted copy, download or recording); copy or export it again, or delete it",
            )
    if max_seconds is not None and info.frames > max_seconds * info.sample_rate:
        raise AudioTooLongError(
            name, f"is {info.frames / info.sample_rate:.1f} s long, more than the limit of {max_seconds:g} s"
        )
    if max_samples is not None and info.frames * info.channels > max_samples:
        raise AudioTooLongError(
            name, f"holds {info.frames} frames x {info.channels} channels, more than the limit of {max_samples} samples"
        )


def read_frames(
    f: sf.SoundFile, info: AudioInfo, frames: int = -1, dtype: str = "float32", *, out: np.ndarray | None = None
) -> np.ndarray:
    """``frames`` frames from the current position (``-1``: to the end) as ``(frames, channels)`` of ``dtype``.

    Block by block past ``READ_BLOCK`` frames, so memory follows what the file holds. A read that the header
    promised and the file cannot deliver raises ``TruncatedAudioError``; ``out`` (C-contiguous ``(frames,
    channels)``) receives the samples when given (and the part past them is left as it was).

    Examples:
        >>> f, info = open_audio("note.wav")
        >>> with f:
        ...     read_frames(f, info, 16000, "int16").shape
        (16000, 1)
    """
    position = f.tell() if f.seekable() else 0
    declared = max(info.frames - position, 0) if info.frames > 0 else None
    wanted = (declared if declared is not None else -1) if frames < 0 else frames
    try:
        if wanted < 0:  # a length the header does not give: soundfile reads to the end
            data = f.read(-1, dtype=dtype, always_2d=True)
        elif wanted <= READ_BLOCK:
            data = f.read(wanted, dtype=dtype, always_2d=True, out=None if out is None else out[:wanted])
        else:
            data = _read_blocks(f, wanted, dtype, info.channels, out)
    except _SOUNDFILE_ERRORS as err:
        raise TruncatedAudioError(
            info.path,
            f"breaks off after frame {position}: the decoder failed ({getattr(err, 'error_string', err)}); "
            "the file is truncated or corrupt: copy or export it again, or delete it",
        ) from None
    if declared is not None:
        expected = min(wanted, declared) if wanted >= 0 else declared
        slack = _ESTIMATED_LENGTH_SLACK.get(info.format, 0.0) * info.frames
        if len(data) < expected - slack:
            raise _truncated(info.path, info.frames, position + len(data))
    return data


def _read_blocks(f: sf.SoundFile, frames: int, dtype: str, channels: int, out) -> np.ndarray:
    parts, done = [], 0
    while done < frames:
        n = min(frames - done, READ_BLOCK)
        part = f.read(n, dtype=dtype, always_2d=True, out=None if out is None else out[done : done + n])
        if not len(part):
            break
        parts.append(part)
        done += len(part)
        if len(part) < n:
            break
    if out is not None:
        return out[:done]
    return np.concatenate(parts) if parts else np.zeros((0, channels), dtype=dtype)


def count_non_finite(x: np.ndarray) -> int:
    """How many NaN/Inf values ``x`` holds (a float64 sum first: one pass, and no overflow, for clean audio)."""
    if x.dtype.kind != "f" or np.isfinite(x.sum(dtype=np.float64)):
        return 0
    return int(x.size - np.count_nonzero(np.isfinite(x)))


def check_samples(x: np.ndarray, info: AudioInfo) -> np.ndarray:
    """``x`` (samples just read from ``info``'s file) if it holds some and all are finite; else the typed error."""
    _check_counts(
        info.path, x.shape[0] if x.size else 0, count_non_finite(x) if info.subtype not in INTEGER_SUBTYPES else 0
    )
    return x


def _check_counts(path: str, frames: int, non_finite: int):
    """The typed error for a file that gave no frames, or NaN/Inf samples."""
    if not frames:
        raise EmptyAudioError(path, "holds no samples; delete it or regenerate it")
    if non_finite:
        raise NonFiniteAudioError(
            path, f"holds {non_finite} NaN/Inf samples; the file is corrupt, re-export or delete it"
        )


def decode_audio(
    source,
    *,
    window=None,
    integer: bool = False,
    name=None,
    max_seconds: float | None = None,
    max_samples: int | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a file, or a file's bytes, at its own rate: ``(samples (channels, frames), sample_rate)``.

    Args:
        source: a path, the bytes of a file in any format libsndfile reads, or an ``AudioSource``.
        window: ``window(total_frames, sample_rate) -> (start, frames)`` picks the part to read once the header
            is known (``frames=-1``: to the end); default: the whole file.
        integer: return the file's own integers where they are exact (``int16`` for 8/16-bit PCM and u/A-law,
            scale ``2**-15``; ``int32`` for 24/32-bit PCM, scale ``2**-31``, see ``PCM_SCALE``), else float32.
        name: what errors call it.
        max_seconds, max_samples: limits checked from the header (``open_audio``).

    Returns:
        A C-contiguous ``(channels, frames)`` array (float32 in [-1, 1], or integers with ``integer``) and the rate.

    Raises:
        AudioFileError: the typed errors of the module's notes.

    Examples:
        >>> wav, rate = decode_audio("note.wav")
        >>> wav.shape, wav.dtype, rate
        ((1, 64000), dtype('float32'), 16000)
        >>> decode_audio(Path("note.wav").read_bytes(), integer=True)[0].dtype
        dtype('int16')
    """
    f, info = open_audio(source, name=name, max_seconds=max_seconds, max_samples=max_samples)
    with f:
        start, frames = window(info.frames, info.sample_rate) if window is not None else (0, -1)
        if start:
            f.seek(start)
        dtype = (info.integer_dtype or "float32") if integer else "float32"
        data = read_frames(f, info, frames, dtype)
    return np.ascontiguousarray(check_samples(data, info).T), info.sample_rate


def scan_audio(source, *, name=None, block_frames: int = 1 << 16) -> AudioInfo:
    """Decode the whole file, block by block, and return its ``AudioInfo`` with the frames really decoded; the typed
    error (the module's notes) says why a file is unusable. What ``fastai-audio check`` runs on every file.

    Examples:
        >>> scan_audio("note.wav").frames
        64000
    """
    f, info = open_audio(source, name=name)
    frames, bad = 0, 0
    finite = info.subtype in INTEGER_SUBTYPES
    with f:
        while True:
            block = read_frames(f, info, block_frames, "float32") if info.frames <= 0 or frames < info.frames else None
            if block is None or not len(block):
                break
            frames += len(block)
            if not finite:
                bad += count_non_finite(block)
    _check_counts(info.path, frames, bad)
    return AudioInfo(info.path, info.sample_rate, frames, info.channels, info.format, info.subtype)
