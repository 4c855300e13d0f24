"""The loaders' ``on_error`` policy: keep a data set's good files, warning about each bad one."""

from __future__ import annotations

import warnings

from .._validate import check_choice
from ..decode import as_source
from ..files import check_audio_files

__all__ = ["check_audio_files", "drop_bad_files"]


def drop_bad_files(files, on_error: str = "raise") -> list:
    """Apply a loader's ``on_error`` policy to ``files``.

    ``'raise'`` returns them untouched (a bad file raises ``AudioFileError`` when it is loaded); ``'skip'``
    decodes all of them once, warns (``UserWarning``) naming every bad file and its reason, and returns the good ones.

    Examples:
        >>> good = drop_bad_files(files, on_error="skip")
    """
    check_choice("on_error", on_error, ("raise", "skip"))
    files = list(files)
    if on_error == "raise":
        return files
    report = check_audio_files(files)
    bad = report[~report.ok]
    if len(bad):
        lines = "\n".join(f"  {p}: {r}" for p, r in zip(bad.path, bad.reason))
        warnings.warn(f"skipping {len(bad)} bad audio file(s) of {len(files)}:\n{lines}", stacklevel=3)
    keep = set(report.path[report.ok])
    return [f for f in files if str(as_source(f)) in keep]
