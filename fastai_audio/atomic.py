"""Files written whole or not at all.

Every file the library writes for the user (an exported model, an ONNX graph, a checkpoint, a shard and its index,
a saved clip) is written under a temporary name in the destination's folder, flushed to the disk, and renamed over
the destination only once it is complete: a full disk, a read-only folder, a crash or Ctrl-C halfway leaves the
file that was there before (a good model) untouched and no half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import AudioFileError

__all__ = ["atomic_file"]


def temporary_name(dest: Path) -> Path:
    """Where ``dest`` is written before it is complete: a hidden name in its folder that keeps its extension (some
    writers choose the format from it) and names the process."""
    return dest.with_name(f".{dest.stem}.{os.getpid()}.tmp{dest.suffix}")


def _sync(path: Path):
    """Flush ``path`` to the disk (where the system lets a file be opened for that)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(tmp: Path, dest: Path):
    """Put the complete file ``tmp`` (written under ``temporary_name(dest)``) in place: flushed to the disk, then
    renamed over ``dest`` in one step. For writers that cannot write inside an ``atomic_file`` block (a file kept
    open across a loop); raises ``OSError`` as the system does."""
    if not Path(tmp).exists():
        raise OSError(f"the writer produced no file at {tmp}")
    _sync(tmp)
    os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_file(dest, what: str = "file"):
    """Write ``dest`` whole or not at all: the block writes the path it is given (a temporary name beside ``dest``);
    when the block ends, that file is flushed and renamed over ``dest``.

    If the block raises, the temporary file is removed and ``dest`` is left as it was; an ``OSError`` (a full disk, a
    read-only folder...) becomes an ``AudioFileError`` naming ``dest``, the cause and that nothing was replaced.

    Args:
        dest: the file to write.
        what: what the file is, for the error (``'model'``, ``'checkpoint'``...).

    Examples:
        >>> with atomic_file("greeting.txt") as tmp:
        ...     _ = tmp.write_text("hello")
        >>> Path("greeting.txt").read_text()
        'hello'
        >>> with atomic_file("greeting.txt") as tmp:
        ...     _ = tmp.write_text("half of a new gre")
        ...     raise OSError(28, "No space left on device")
        Traceback (most recent call last):
        ...
        fastai_audio.errors.AudioFileError: greeting.txt: the file could not be written (No space left on device); ...
        >>> Path("greeting.txt").read_text()
        'hello'
    """
    dest = Path(dest)
    tmp = temporary_name(dest)
    try:
        yield tmp
        commit(tmp, dest)
    except OSError as err:
        _remove(tmp)
        before = "it was left as it was" if dest.exists() else "nothing was written"
        raise AudioFileError(
            dest,
            f"the {what} could not be written ({err.strerror or err}); {before}: free some space or write elsewhere",
        ) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path):
    try:
        path.unlink(missing_ok=True)
    except OSError:  # (its folder is not a folder, or not writable: there is nothing to remove)
        pass
