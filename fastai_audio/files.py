"""Finding, inspecting and checking audio files: soundfile and numpy only, no torch, no fastai.

The bottom of the data path: ``get_audio_files`` lists a data set, ``audio_info`` reads a header, and
``check_audio_files`` decodes every file once (``fastai_audio.decode``, the reader every other part uses) to
report the bad ones. Nothing here imports torch, so ``fastai-audio check`` answers without loading it.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastcore.foundation import L

from .decode import AudioInfo, as_source, open_audio, scan_audio
from .errors import AudioError, AudioFileError

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "audio_info", "check_audio_files", "get_audio_files"]

#: File extensions that ``get_audio_files`` picks up: every format libsndfile can decode here.
AUDIO_EXTENSIONS = frozenset(
    "." + ext.lower()
    for ext in (
        "wav",
        "wave",
        "flac",
        "ogg",
        "oga",
        "opus",
        "mp3",
        "aif",
        "aiff",
        "aifc",
        "au",
        "snd",
        "caf",
        "w64",
        "rf64",
        "sd2",
        "voc",
        "htk",
        "mat",
        "paf",
        "pvf",
        "sds",
        "sf",
        "xi",
        "nist",
        "wve",
    )
)


def audio_info(path) -> AudioInfo:
    """Read a file's sample rate, length and channel count from its header, without decoding samples.

    Args:
        path: an audio file in any format libsndfile reads.

    Returns:
        AudioInfo with ``sample_rate``, ``frames``, ``channels``, ``duration`` (seconds), ``format``, ``subtype``.

    Raises:
        AudioFileError: the file is missing, unreadable, not audio or truncated (the typed errors of
            ``fastai_audio.decode``); the message names the file.

    Examples:
        >>> info = audio_info("note.wav")
        >>> info.sample_rate, info.channels, info.duration
        (16000, 1, 4.0)
    """
    f, info = open_audio(path)
    f.close()
    return info


def get_audio_files(path, recurse: bool = True, folders=None, extensions=None) -> L:
    """List the audio files under ``path``, like fastai's ``get_image_files``.

    Hidden files and folders are skipped; symbolic links are followed and listed as found (under ``path``, not
    where they point), so a split made of links keeps its folders. A folder is listed once however many links lead
    to it (by device and inode), and a folder link is not followed (a warning names it) when it leads to a folder
    the walk is inside (a loop such as ``train/up -> ..``) or, within ``path``, out of the first-level folder it is
    in (``train/x -> ../valid`` would list validation files as training ones).

    Args:
        path: the folder to search.
        recurse: also search sub-folders.
        folders: only these sub-folders of ``path`` (e.g. ``['train', 'valid']``).
        extensions: file extensions to keep (default: every format libsndfile reads, ``AUDIO_EXTENSIONS``).

    Returns:
        A fastcore ``L`` of ``Path`` objects in sorted order (so seeded random splits agree across machines).

    Raises:
        AudioFileError: ``path`` is missing, not a folder, or cannot be listed.

    Examples:
        >>> files = get_audio_files("nsynth", folders=["train"])
        >>> files[0].name
        'bass_acoustic_000-034-100.wav'
    """
    root = Path(path)
    if not root.exists():
        raise AudioFileError(root, "no such folder; check the path")
    if not root.is_dir():
        raise AudioFileError(root, "is a file, not a folder; pass the folder that holds the audio files")
    try:
        next(root.iterdir(), None)
    except PermissionError:
        raise AudioFileError(root, "permission denied while listing the folder; make it readable") from None
    exts = (
        AUDIO_EXTENSIONS
        if extensions is None
        else {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    )
    wanted = set(folders or ())

    def audio(folder: str, names) -> list:
        return [Path(folder) / n for n in names if not n.startswith(".") and os.path.splitext(n)[1].lower() in exts]

    if not recurse:
        return L(sorted(audio(root, [e.name for e in os.scandir(root) if e.is_file()])))
    found, seen, refused = [], set(), []
    real_root = os.path.realpath(root)
    for depth, (folder, subfolders, names) in enumerate(os.walk(root, followlinks=True)):
        try:
            stat = os.stat(folder)
        except OSError:
            continue
        if (stat.st_dev, stat.st_ino) in seen:  # reached again through a link: listed once
            subfolders[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        if depth == 0 and wanted:
            subfolders[:] = [d for d in subfolders if d in wanted]
        else:
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        subfolders[:] = [d for d in subfolders if _may_follow(root, real_root, os.path.join(folder, d), refused)]
        subfolders.sort(key=lambda d: os.path.islink(os.path.join(folder, d)))  # real folders before links to them
        if depth == 0 and wanted and "." not in wanted:
            continue
        found += audio(folder, names)
    if refused:
        shown = "; ".join(f"{link} -> {target}" for link, target in refused[:5])
        warnings.warn(
            f"did not follow {len(refused)} folder link(s) under {root} that lead back to a folder above "
            f"them or out of their split folder (a loop, or files of one split listed in another): "
            f"{shown}",
            stacklevel=2,
        )
    return L(sorted(found))


def _may_follow(root: Path, real_root: str, sub: str, refused: list) -> bool:
    """Whether the walk goes into the sub-folder ``sub``: always for a real folder; for a link, only when its target
    is neither a folder the walk is inside (a loop) nor, within ``root``, outside the split folder (``root``'s
    first-level folder) the link is in."""
    if not os.path.islink(sub):
        return True
    target = os.path.realpath(sub)
    here = os.path.realpath(os.path.dirname(sub))
    parts = Path(os.path.relpath(sub, root)).parts
    split = os.path.realpath(os.path.join(root, parts[0])) if len(parts) > 1 else real_root
    inside = lambda path, folder: path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)  # noqa: E731
    loop = inside(here, target)
    leaves_split = inside(target, real_root) and not inside(target, split)
    if loop or leaves_split:
        refused.append((sub, target))
        return False
    return True


def absolute(path) -> Path:
    """``path`` made absolute as given: ``..`` is folded but symbolic links are not followed, so a file linked into
    ``valid/`` stays in ``valid/``."""
    return Path(os.path.abspath(path))


def in_folder(path, folder) -> bool:
    """Whether ``path`` lies under ``folder``, both taken as given (see ``absolute``)."""
    return absolute(folder) in absolute(path).parents


def _check_one(path) -> dict:
    try:
        info = scan_audio(path)
    except AudioError as err:
        return {
            "path": str(path),
            "ok": False,
            "reason": getattr(err, "reason", str(err)),
            "sample_rate": None,
            "channels": None,
            "duration": None,
        }
    return {
        "path": str(path),
        "ok": True,
        "reason": "",
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "duration": info.duration,
    }


def check_audio_files(files, *, num_workers: int | None = None, progress: bool = False):
    """Decode every file fully and report, for each, whether it is usable audio and why not.

    Catches what a header check cannot: missing, empty, truncated or non-audio files, zero samples, NaN/Inf.
    Uses soundfile and numpy only (no torch), several files at a time.

    Args:
        files: paths (e.g. from ``get_audio_files``) or ``AudioSource`` items (reported by their ``name``).
        num_workers: decoding threads (default: the number of CPUs, at most 8).
        progress: show a progress bar.

    Returns:
        A pandas DataFrame with one row per file, in input order: ``path``, ``ok`` (bool), ``reason`` (empty when
        ok), ``sample_rate``, ``channels``, ``duration`` (seconds).

    Examples:
        >>> report = check_audio_files(get_audio_files("data"))
        >>> bool(report.ok.all()), list(report.columns)
        (True, ['path', 'ok', 'reason', 'sample_rate', 'channels', 'duration'])
    """
    import pandas as pd

    files = [as_source(f) for f in files]
    workers = num_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = pool.map(_check_one, files)
        if progress:
            from fastprogress.fastprogress import progress_bar

            rows = progress_bar(rows, total=len(files))
        rows = list(rows)
    return pd.DataFrame(rows, columns=["path", "ok", "reason", "sample_rate", "channels", "duration"])
