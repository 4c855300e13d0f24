"""The NSynth note dataset's format (names, ids, file pattern) and ``read_nsynth``, which lists a copy as a table."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pandas as pd

from .._validate import check_choice
from ..errors import AudioFileError, ParameterError

__all__ = [
    "NSYNTH_FAMILIES",
    "NSYNTH_SOURCES",
    "NSYNTH_SPLITS",
    "NSYNTH_VELOCITIES",
    "NSYNTH_QUALITIES",
    "NSYNTH_PATTERN",
    "read_nsynth",
]

#: NSynth's instrument families; the position is NSynth's ``instrument_family`` id.
NSYNTH_FAMILIES = (
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "synth_lead",
    "vocal",
)

#: NSynth's instrument sources; the position is NSynth's ``instrument_source`` id.
NSYNTH_SOURCES = ("acoustic", "electronic", "synthetic")

#: NSynth's splits, in the order ``read_nsynth`` sorts them.
NSYNTH_SPLITS = ("train", "valid", "test")

#: The MIDI velocities NSynth recorded every note at.
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)

#: NSynth's note qualities, in the order of the ``qualities`` list of ``examples.json``.
NSYNTH_QUALITIES = (
    "bright",
    "dark",
    "distortion",
    "fast_decay",
    "long_release",
    "multiphonic",
    "nonlinear_env",
    "percussive",
    "reverb",
    "tempo-synced",
)

#: An NSynth file name, e.g. ``guitar_acoustic_010-060-100.wav``. Group 1 is the family (also ``synth_lead``),
#: so ``RegexLabeller(NSYNTH_PATTERN)`` labels a file with it; the named groups give the other fields.
NSYNTH_PATTERN = (
    r"(?P<family>\w+?)_(?P<source>acoustic|electronic|synthetic)_"
    r"(?P<instrument>\d{3})-(?P<pitch>\d{3})-(?P<velocity>\d{3})\.wav$"
)

_LAYOUTS = (
    "expected NSynth's own layout, ROOT/nsynth-{train,valid,test}/examples.json with the notes in "
    "ROOT/nsynth-{split}/audio/*.wav (as downloaded from magenta.tensorflow.org/datasets/nsynth), "
    "or synth_nsynth's layout, ROOT/{train,valid,test}/examples.json next to the split's *.wav files"
)

# The fields every examples.json entry must have for the table (and its filters) to be built.
_REQUIRED = ("instrument_family_str", "instrument_source_str", "instrument_str", "pitch", "velocity")

_FIRST_COLUMNS = (
    "fname",
    "split",
    "note_str",
    "instrument_family_str",
    "instrument_source_str",
    "instrument_str",
    "pitch",
    "velocity",
    "qualities_str",
)


def _as_choices(name: str, value, allowed) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values:
        raise ParameterError(f"{name} is empty; pass None for all, or some of {list(allowed)!r}")
    for v in values:
        if v not in allowed:
            raise ParameterError(f"{name}: unknown value {v!r}; the allowed values are {list(allowed)!r}")
    return values


def _find_splits(root: Path) -> dict[str, tuple[Path, Path]]:
    """Map each split present under ``root`` to ``(examples.json, folder holding its wavs)``."""
    found = {}
    for split in NSYNTH_SPLITS:
        layouts = [(root / f"nsynth-{split}", root / f"nsynth-{split}" / "audio"), (root / split, root / split)]
        present = [(folder / "examples.json", audio) for folder, audio in layouts if folder.is_dir()]
        if len(present) > 1:
            raise AudioFileError(
                root, f"holds both nsynth-{split}/ and {split}/; keep one layout so each note is read once"
            )
        if present:
            json_path, audio = present[0]
            if not json_path.is_file():
                raise AudioFileError(json_path, f"is missing, so the {split} notes cannot be labelled; {_LAYOUTS}")
            found[split] = (json_path, audio)
    return found


def _read_examples(json_path: Path) -> dict:
    try:
        with open(json_path, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AudioFileError(json_path, f"cannot be read as JSON ({err}); re-download or re-render it") from None
    if not isinstance(entries, dict):
        raise AudioFileError(json_path, f"must hold a JSON object keyed by note_str, got {type(entries).__name__}")
    return entries


def _split_table(split: str, json_path: Path, audio: Path, families, sources, on_missing: str) -> pd.DataFrame:
    entries = _read_examples(json_path)
    df = pd.DataFrame.from_dict(entries, orient="index") if entries else pd.DataFrame(columns=list(_REQUIRED))
    if "note_str" not in df.columns:
        df["note_str"] = df.index.astype(str)
    missing_fields = [c for c in _REQUIRED if c not in df.columns]
    if missing_fields:
        raise AudioFileError(json_path, f"entries lack the NSynth fields {missing_fields}; re-download or re-render it")
    if families is not None:
        df = df[df["instrument_family_str"].isin(families)]
    if sources is not None:
        df = df[df["instrument_source_str"].isin(sources)]
    names = df["note_str"].astype(str) + ".wav"
    # One listing of the folder instead of one stat per note: NSynth's train split holds 289,205 files.
    on_disk = {e.name for e in os.scandir(audio)} if audio.is_dir() else set()
    absent = ~names.isin(on_disk)
    if absent.any():
        lost = [str(audio / n) for n in names[absent]]
        if on_missing == "raise":
            raise AudioFileError(
                lost[0],
                f"is listed in {json_path} but missing ({len(lost)} of {len(names)} listed wavs are missing); "
                "re-download or re-render the dataset, or pass on_missing='skip' to leave them out",
            )
        warnings.warn(
            f"read_nsynth skipped {len(lost)} notes listed in {json_path} whose wav is missing: {', '.join(lost)}",
            stacklevel=3,
        )
        df, names = df[~absent], names[~absent]
    df = df.assign(fname=[audio / n for n in names], split=split)
    return df


def read_nsynth(path, *, splits=None, families=None, sources=None, on_missing: str = "raise") -> pd.DataFrame:
    """List the notes of an NSynth copy (downloaded, or rendered by ``synth_nsynth``) as one row per note.

    Two layouts are read: NSynth's own, ``path/nsynth-{train,valid,test}/examples.json`` with the notes in
    ``path/nsynth-{split}/audio/``, and ``synth_nsynth``'s, ``path/{train,valid,test}/`` holding the split's
    ``examples.json`` and wav files. Splits that are absent are left out (only ``nsynth-test`` is fine).

    Args:
        path: the dataset root, the folder holding the split folders.
        splits: a split name or a list of them (``'train'``, ``'valid'``, ``'test'``); ``None`` reads all present.
        families: an instrument family or a list of them (see ``NSYNTH_FAMILIES``); ``None`` keeps every family.
        sources: ``'acoustic'``, ``'electronic'``, ``'synthetic'`` or a list of them; ``None`` keeps every source.
        on_missing: what to do when ``examples.json`` lists a note whose wav is not on disk: ``'raise'`` (default)
            or ``'skip'``, which leaves the note out and warns naming every skipped file.

    Returns:
        A DataFrame sorted by split (train, valid, test) then ``note_str``, with a fresh index and the columns
        ``fname`` (absolute ``Path`` of the wav), ``split``, ``note_str``, ``instrument_family_str``,
        ``instrument_source_str``, ``instrument_str``, ``pitch``, ``velocity``, ``qualities_str``, then every other
        field of ``examples.json`` (``note``, ``instrument``, ``instrument_family``, ``instrument_source``,
        ``sample_rate``, ``qualities``).

    Raises:
        AudioFileError: ``path`` is missing or holds no split, a requested split is absent, an ``examples.json``
            is missing or unreadable, or (with ``on_missing='raise'``) a listed wav is missing.
        ParameterError: an unknown split, family or source name (the message lists the allowed ones).

    Examples:
        >>> df = read_nsynth("nsynth", sources="acoustic", families=["guitar", "mallet"])
        >>> df[["note_str", "instrument_family_str", "pitch", "velocity", "split"]].head(2)
                          note_str instrument_family_str  pitch  velocity  split
        0  guitar_acoustic_000-045-127                guitar     45       127  train
        1  guitar_acoustic_000-062-025                guitar     62        25  train
        >>> dls = DataBlock(blocks=(AudioBlock, CategoryBlock), get_x=ColReader("fname"),
        ...                 get_y=ColReader("instrument_family_str")).dataloaders(df[df.split != "test"])
    """
    root = Path(path).absolute()
    wanted_splits = _as_choices("splits", splits, NSYNTH_SPLITS)
    families = _as_choices("families", families, NSYNTH_FAMILIES)
    sources = _as_choices("sources", sources, NSYNTH_SOURCES)
    check_choice("on_missing", on_missing, ("raise", "skip"))
    if not root.is_dir():
        reason = "is not a folder" if root.exists() else "does not exist"
        raise AudioFileError(root, f"{reason}; {_LAYOUTS}")
    found = _find_splits(root)
    if not found:
        raise AudioFileError(root, f"holds no NSynth split; {_LAYOUTS}")
    for split in wanted_splits or ():
        if split not in found:
            raise AudioFileError(
                root,
                f"has no {split} split (looked for nsynth-{split}/examples.json and {split}/examples.json); "
                f"the splits present are {list(found)}",
            )
    tables = [
        _split_table(split, json_path, audio, families, sources, on_missing)
        for split, (json_path, audio) in found.items()
        if wanted_splits is None or split in wanted_splits
    ]
    df = pd.concat(tables, ignore_index=True)
    first = [c for c in _FIRST_COLUMNS if c in df.columns]
    df = df[first + [c for c in df.columns if c not in first]]
    order = df["split"].map({s: i for i, s in enumerate(NSYNTH_SPLITS)})
    df = df.assign(_order=order).sort_values(["_order", "note_str"], kind="stable").drop(columns="_order")
    for column in ("pitch", "velocity"):
        df[column] = df[column].astype("int64")
    return df.reset_index(drop=True)
