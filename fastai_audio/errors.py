"""The exceptions fastai_audio raises. Every message names the bad file or value and says what to do.

A file that cannot be used raises an ``AudioFileError``; when its bytes are what is wrong, a subclass says how,
the same one whichever reader met it (the loaders, ``load_audio``, the shards, ``fastai-audio check``, the ONNX
runtime and its server all decode through ``fastai_audio.decode``)::

    AudioError
    ├── AudioFileError (also an OSError)       missing, a directory, unreadable
    │   ├── EmptyAudioError                     0 bytes, or no samples
    │   ├── UndecodableAudioError               not audio, or corrupt
    │   │   └── ImpossibleFormatError           a header no recording has (rate, channel count)
    │   ├── TruncatedAudioError                 the file ends before the samples its header declares
    │   ├── NonFiniteAudioError                 NaN or infinite samples
    │   └── AudioTooLongError                   longer than a limit it was read under
    └── ParameterError (also a ValueError)      an argument or an in-memory signal out of range
"""

__all__ = [
    "AudioError",
    "AudioFileError",
    "AudioTooLongError",
    "EmptyAudioError",
    "ImpossibleFormatError",
    "NonFiniteAudioError",
    "ParameterError",
    "TruncatedAudioError",
    "UndecodableAudioError",
]


class AudioError(Exception):
    """Base class of every error fastai_audio raises on purpose.

    Examples:
        >>> try:
        ...     load_audio("missing.wav")
        ... except AudioError as e:
        ...     print(e)
        missing.wav: no such file; check the path (relative paths start at the current folder)
    """


class AudioFileError(AudioError, OSError):
    """A file could not be found, read or decoded. ``path`` holds the offending file.

    It also derives from ``OSError`` so code that already catches I/O errors keeps working.

    Examples:
        >>> try:
        ...     audio_info("data")
        ... except AudioFileError as err:
        ...     print(err.path, "|", err.reason)
        data | is a directory, not an audio file; use get_audio_files() to list its audio
    """

    def __init__(self, path, reason: str | None = None):
        if reason is None:  # one message, as PyTorch re-raises a worker's error (`type(err)(text)`): the type is kept
            path, reason = "", str(path)
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self):  # keeps the error picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason))


class EmptyAudioError(AudioFileError):
    """The file (or the bytes) hold nothing: 0 bytes, or a valid header and no samples.

    Examples:
        >>> decode_audio(b"")
        Traceback (most recent call last):
        ...
        fastai_audio.errors.EmptyAudioError: the audio: is empty (0 bytes); re-export or delete it
    """


class UndecodableAudioError(AudioFileError):
    """Not audio that libsndfile can read: another kind of file, or a corrupt one.

    Examples:
        >>> decode_audio(b"this is a text file, not a recording")
        Traceback (most recent call last):
        ...
        fastai_audio.errors.UndecodableAudioError: the audio: cannot be decoded as audio (Format not recognised.); ...
    """


class ImpossibleFormatError(UndecodableAudioError):
    """A header that no recording has: a sample rate or a channel count out of range (a corrupt or hostile file).

    Examples:
        >>> wav = Path("note.wav").read_bytes()
        >>> decode_audio(wav[:24] + (0).to_bytes(4, "little") + wav[28:])   # its rate field set to 0 Hz
        Traceback (most recent call last):
        ...
        fastai_audio.errors.ImpossibleFormatError: the audio: has an impossible format (a sample rate below 1 Hz): ...
    """


class TruncatedAudioError(AudioFileError):
    """The file ends before the samples its header declares (an interrupted copy, download or recording), or its
    decoder breaks off part-way.

    Examples:
        >>> decode_audio(Path("note.wav").read_bytes()[:60])
        Traceback (most recent call last):
        ...
        fastai_audio.errors.TruncatedAudioError: the audio: is truncated: its header declares 128000 bytes of ...
    """


class NonFiniteAudioError(AudioFileError):
    """The file holds NaN or infinite samples (float formats only: integer samples are always finite).

    Examples:
        >>> path = save_audio("nan.wav", torch.zeros(1, 100), 16000, subtype="FLOAT")
        >>> _ = path.write_bytes(path.read_bytes()[:-4] + b"\\x00\\x00\\xc0\\x7f")   # the last sample: NaN
        >>> decode_audio("nan.wav")
        Traceback (most recent call last):
        ...
        fastai_audio.errors.NonFiniteAudioError: nan.wav: holds 1 NaN/Inf samples; the file is corrupt, ...
    """


class AudioTooLongError(AudioFileError):
    """A recording longer than the limit it was read under (known from the header: nothing was decoded).

    Examples:
        >>> decode_audio("note.wav", max_seconds=1.0)
        Traceback (most recent call last):
        ...
        fastai_audio.errors.AudioTooLongError: note.wav: is 4.0 s long, more than the limit of 1 s
    """


class ParameterError(AudioError, ValueError):
    """A parameter or an in-memory signal is out of its allowed range (also a ``ValueError``).

    Examples:
        >>> isinstance(ParameterError("n_fft must be a positive integer, got 0"), ValueError)
        True
    """
