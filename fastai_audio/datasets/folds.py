"""Environmental-sound data sets with official folds: ESC-50 and UrbanSound8K, read from their metadata tables.

Both are reported in papers as the mean (and spread) of a cross-validation over their folds, never on a random
split: clips of one recording (ESC-50's ``src_file``, UrbanSound8K's ``fsID``) share a fold, so a random split
leaks them between training and validation. ``AudioDataLoaders.from_esc50`` / ``from_urbansound8k`` build the
loaders of one fold, and ``fastai_audio.learner.cross_validate`` runs them all.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import AudioFileError, ParameterError

__all__ = ["read_esc50", "read_urbansound8k", "ESC50_FOLDS", "URBANSOUND8K_FOLDS"]

#: ESC-50's five folds (``fold`` column of ``meta/esc50.csv``).
ESC50_FOLDS = (1, 2, 3, 4, 5)

#: UrbanSound8K's ten folds (``fold`` column, and the ``audio/fold<k>`` folders).
URBANSOUND8K_FOLDS = tuple(range(1, 11))


def _table(path: Path, columns: tuple, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise AudioFileError(path, f"is not there: point at the root of {what} (the folder that holds it)")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise AudioFileError(path, f"is not {what}'s metadata table ({err})") from err
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AudioFileError(path, f"lacks the columns {missing} of {what}'s metadata (it has {list(df.columns)})")
    return df


def _check_folds(df: pd.DataFrame, path: Path, folds: tuple) -> pd.DataFrame:
    bad = sorted(set(df["fold"]) - set(folds))
    if bad:
        raise AudioFileError(path, f"names folds {bad}; the official folds are {list(folds)}")
    return df


def read_esc50(root, *, esc10: bool = False) -> pd.DataFrame:
    """ESC-50 (Piczak 2015; 2,000 clips of 5 s, 50 classes, 5 folds) as a table: ``fname`` (relative to ``root``),
    ``label`` (the ``category``), ``fold``, ``target``, ``esc10``, ``src_file``.

    Args:
        root: the data set's root, holding ``meta/esc50.csv`` and ``audio/``.
        esc10: keep the ESC-10 subset (10 classes, 400 clips) only.

    Raises:
        AudioFileError: the table is missing, unreadable, lacks a column, or names a fold that is not 1-5.

    Examples:
        >>> df = read_esc50("esc50")                  # a miniature: ESC-50 itself has 2,000 clips of 50 classes
        >>> len(df), sorted(df.label.unique()), sorted(df.fold.unique().tolist())
        (10, ['dog', 'rain'], [1, 2, 3, 4, 5])
    """
    root = Path(root)
    path = root / "meta" / "esc50.csv"
    df = _table(path, ("filename", "fold", "target", "category"), "ESC-50")
    df = _check_folds(df, path, ESC50_FOLDS)
    if esc10:
        if "esc10" not in df.columns:
            raise AudioFileError(path, "has no esc10 column: it is not ESC-50's table")
        df = df[df["esc10"].astype(str).str.lower() == "true"]
    out = pd.DataFrame({"fname": "audio/" + df["filename"].astype(str), "label": df["category"], "fold": df["fold"]})
    for extra in ("target", "esc10", "src_file"):
        if extra in df.columns:
            out[extra] = df[extra].to_numpy()
    return out.reset_index(drop=True)


def read_urbansound8k(root) -> pd.DataFrame:
    """UrbanSound8K (Salamon et al. 2014; 8,732 clips of up to 4 s, 10 classes, 10 folds) as a table: ``fname``
    (relative to ``root``), ``label`` (the ``class``), ``fold``, ``classID``, ``fsID``, ``salience``.

    Args:
        root: the data set's root, holding ``metadata/UrbanSound8K.csv`` and ``audio/fold<k>/``.

    Raises:
        AudioFileError: the table is missing, unreadable, lacks a column, or names a fold that is not 1-10.

    Examples:
        >>> df = read_urbansound8k("UrbanSound8K")                 # doctest: +SKIP
        >>> len(df), df.label.nunique(), df.fold.max()              # doctest: +SKIP
        (8732, 10, 10)
    """
    root = Path(root)
    path = root / "metadata" / "UrbanSound8K.csv"
    df = _table(path, ("slice_file_name", "fold", "classID", "class"), "UrbanSound8K")
    df = _check_folds(df, path, URBANSOUND8K_FOLDS)
    fname = "audio/fold" + df["fold"].astype(str) + "/" + df["slice_file_name"].astype(str)
    out = pd.DataFrame({"fname": fname, "label": df["class"], "fold": df["fold"]})
    for extra in ("classID", "fsID", "salience"):
        if extra in df.columns:
            out[extra] = df[extra].to_numpy()
    return out.reset_index(drop=True)


def fold_split(df: pd.DataFrame, fold: int, folds: tuple, name: str) -> pd.DataFrame:
    """``df`` with ``is_valid``: the rows of ``fold`` (one of ``folds``) validate, the others train."""
    if isinstance(fold, bool) or fold not in folds:
        raise ParameterError(f"fold must be one of {name}'s folds {list(folds)}, got {fold!r}")
    return df.assign(is_valid=df["fold"] == fold)
