"""Decode every file of a data set once and report the bad ones, with the reason for each."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from .._validate import check_choice
from ..errors import AudioError
from ..io import load_audio

__all__ = ["check_audio_files", "drop_bad_files"]


def _check_one(path) -> dict:
    try:
        wav, sr = load_audio(path)
    except AudioError as err:
        return {"path": str(path), "ok": False, "reason": getattr(err, "reason", str(err)),
                "sample_rate": None, "channels": None, "duration": None}  # fmt: skip
    return {"path": str(path), "ok": True, "reason": "", "sample_rate": sr, "channels": wav.shape[0],
            "duration": wav.shape[-1] / sr}  # fmt: skip


def check_audio_files(files, *, num_workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Decode every file fully and report, for each, whether it is usable audio and why not.

    Catches what a header check cannot: missing, empty, truncated or non-audio files, zero samples, NaN/Inf.

    Args:
        files: paths (e.g. from ``get_audio_files``).
        num_workers: decoding threads (default: the number of CPUs, at most 8).
        progress: show a progress bar.

    Returns:
        DataFrame with one row per file, in input order: ``path``, ``ok`` (bool), ``reason`` (empty when ok),
        ``sample_rate``, ``channels``, ``duration`` (seconds).

    Examples:
        >>> report = check_audio_files(get_audio_files("data/"))
        >>> report[~report.ok][["path", "reason"]]
    """
    files = [Path(f) for f in files]
    workers = num_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = pool.map(_check_one, files)
        if progress:
            from fastprogress.fastprogress import progress_bar

            rows = progress_bar(rows, total=len(files))
        rows = list(rows)
    return pd.DataFrame(rows, columns=["path", "ok", "reason", "sample_rate", "channels", "duration"])


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
    return [f for f in files if str(Path(f)) in keep]
