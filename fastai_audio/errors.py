"""The exceptions fastai_audio raises. Every message names the bad file or value and says what to do."""

__all__ = ["AudioError", "AudioFileError", "ParameterError"]


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

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keeps the error picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason))


class ParameterError(AudioError, ValueError):
    """A parameter or an in-memory signal is out of its allowed range (also a ``ValueError``).

    Examples:
        >>> isinstance(ParameterError("n_fft must be a positive integer, got 0"), ValueError)
        True
    """
