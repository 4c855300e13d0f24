"""Reading samples with soundfile, memory bounded by what a file really holds: numpy and soundfile only, so that
the torch-free runtime (``fastai_audio.serve``) and the loaders (``fastai_audio.io``) share it."""

from __future__ import annotations

import numpy as np
import soundfile as sf

__all__ = ["READ_BLOCK", "read_array"]


#: Frames read in one call: reads longer than this go block by block, so that a header claiming billions of frames
#: (a corrupted or hostile file) costs what the file really holds, not an allocation of the claimed size.
READ_BLOCK = 1 << 22


def read_array(f: sf.SoundFile, frames: int = -1, dtype: str = "float32") -> np.ndarray:
    """``f.read(frames, dtype, always_2d=True)`` (``frames=-1``: to the end), block by block past ``READ_BLOCK``
    frames: memory follows the samples actually decoded, whatever the header claims.

    Examples:
        >>> with sf.SoundFile("note.wav") as f:
        ...     read_array(f).shape
        (64000, 1)
    """
    if frames < 0 and f.frames <= 0:  # a length the header does not give: soundfile reads to the end
        return f.read(-1, dtype=dtype, always_2d=True)
    left = max(f.frames - f.tell(), 0) if frames < 0 else frames
    if left <= READ_BLOCK:
        return f.read(left, dtype=dtype, always_2d=True)
    parts = []
    while left > 0:
        part = f.read(min(left, READ_BLOCK), dtype=dtype, always_2d=True)
        if not len(part):
            break
        parts.append(part)
        left -= len(part)
    return np.concatenate(parts) if parts else np.zeros((0, f.channels), dtype=dtype)
