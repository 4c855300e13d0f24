"""IRMAS (Bosch et al. 2012), the instrument-recognition set of seed 004: 3 s training excerpts labelled by their
folder (one predominant instrument) with ``[instrument][drums][genre]`` tags in their names, and longer testing
pieces whose ``.txt`` files list every predominant instrument (multi-label)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import AudioFileError, ParameterError
from ..files import get_audio_files

__all__ = ["read_irmas", "IRMAS_INSTRUMENTS", "IRMAS_GENRES"]

#: IRMAS's 11 instruments: cello, clarinet, flute, acoustic and electric guitar, organ, piano, saxophone,
#: trumpet, violin, voice (the training folders' names and the testing labels).
IRMAS_INSTRUMENTS = ("cel", "cla", "flu", "gac", "gel", "org", "pia", "sax", "tru", "vio", "voi")

#: The genre tags of the training file names: country-folk, classical, pop-rock, latin-soul, jazz-blues.
IRMAS_GENRES = ("cou_fol", "cla", "pop_roc", "lat_sou", "jaz_blu")

_TAG = re.compile(r"\[([a-z_]+)\]")


def _training(root: Path) -> list[dict]:
    folders = [f for f in IRMAS_INSTRUMENTS if (root / f).is_dir()]
    if not folders:
        raise AudioFileError(root, f"holds none of IRMAS's training folders {list(IRMAS_INSTRUMENTS)}")
    rows = []
    for instrument in folders:
        for f in get_audio_files(root / instrument, recurse=False):
            tags = _TAG.findall(f.name)
            if not tags or tags[0] != instrument:
                raise AudioFileError(f, f"is in the {instrument!r} folder but its name starts with tags {tags}")
            rest = tags[1:]
            drums = {"dru": True, "nod": False}.get(rest[0]) if rest else None
            genre = rest[-1] if rest and rest[-1] in IRMAS_GENRES and (drums is None or len(rest) > 1) else None
            rows.append({"fname": f, "labels": instrument, "split": "train", "drums": drums, "genre": genre})
    return rows


def _testing(root: Path) -> list[dict]:
    rows = []
    for f in get_audio_files(root):
        txt = f.with_suffix(".txt")
        if not txt.is_file():
            raise AudioFileError(f, f"has no label file {txt.name} beside it: an incomplete IRMAS testing set")
        labels = txt.read_text(encoding="utf-8").split()
        unknown = sorted(set(labels) - set(IRMAS_INSTRUMENTS))
        if not labels or unknown:
            raise AudioFileError(txt, f"lists {labels}: IRMAS's labels are {list(IRMAS_INSTRUMENTS)}")
        rows.append(
            {"fname": f, "labels": " ".join(sorted(set(labels))), "split": "test", "drums": None, "genre": None}
        )
    if not rows:
        raise AudioFileError(root, "holds no audio files: point at IRMAS's testing data (the .wav and .txt files)")
    return rows


def read_irmas(train=None, test=None) -> pd.DataFrame:
    """IRMAS as one table: ``fname`` (absolute), ``labels`` (space-separated instruments: one for a training
    excerpt, every predominant one for a testing piece), ``split`` (``'train'`` or ``'test'``), and for training
    excerpts the ``drums`` (True, False, or None when the name has no tag) and ``genre`` tags of their names.

    Args:
        train: ``IRMAS-TrainingData`` (the folder holding ``cel/``, ``cla/``...), or None.
        test: the testing data (a folder searched recursively for ``.wav`` files, each with its ``.txt``), or None.

    Raises:
        ParameterError: neither folder given. AudioFileError: no instrument folder, a name whose first tag is not
            its folder, a testing piece without its ``.txt``, or a label that is not IRMAS's.

    Examples:
        >>> df = read_irmas("IRMAS-TrainingData", "IRMAS-TestingData")   # doctest: +SKIP
        >>> df.groupby("split").size().to_dict()                          # doctest: +SKIP
        {'test': 2874, 'train': 6705}
    """
    if train is None and test is None:
        raise ParameterError("read_irmas needs the training folder, the testing folder, or both")
    rows = (_training(Path(train)) if train is not None else []) + (_testing(Path(test)) if test is not None else [])
    return pd.DataFrame(rows, columns=["fname", "labels", "split", "drums", "genre"])
