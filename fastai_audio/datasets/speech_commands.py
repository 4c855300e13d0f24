"""Speech Commands (Warden 2018): one-second words in one folder per word, with the official split in
``validation_list.txt`` and ``testing_list.txt`` (speakers never shared between splits), and ``_background_noise_``
recordings for noise augmentation (``AddBackground``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import AudioFileError, ParameterError
from ..files import get_audio_files

__all__ = ["read_speech_commands", "SPEECH_COMMANDS_SPLITS"]

#: The splits of Speech Commands: the files listed in neither list train.
SPEECH_COMMANDS_SPLITS = ("train", "validation", "testing")

_BACKGROUND = "_background_noise_"


def _listed(path: Path) -> set[str]:
    if not path.is_file():
        raise AudioFileError(path, "is not there: point at the root of Speech Commands (it holds both lists)")
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def read_speech_commands(root, *, words=None) -> pd.DataFrame:
    """Speech Commands as a table: ``fname`` (``<word>/<speaker>_nohash_<n>.wav``, relative to ``root``), ``label``
    (the word), ``speaker`` and ``split`` (``'train'``, ``'validation'`` or ``'testing'``, from the official lists).

    Args:
        root: the data set's root: one folder per word, ``validation_list.txt``, ``testing_list.txt`` (and
            ``_background_noise_/``, left out of the table).
        words: keep only these words (default: every word folder).

    Raises:
        AudioFileError: a list is missing, or names a file that is not there. ParameterError: a word of ``words``
            has no folder.

    Examples:
        >>> df = read_speech_commands("speech_commands_v0.02")   # doctest: +SKIP
        >>> df.split.value_counts().to_dict()     # doctest: +SKIP
        {'train': 84843, 'validation': 9981, 'testing': 11005}
    """
    root = Path(root)
    validation, testing = _listed(root / "validation_list.txt"), _listed(root / "testing_list.txt")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != _BACKGROUND)
    if words is not None:
        missing = sorted(set(words) - set(folders))
        if missing:
            raise ParameterError(f"no folder for the words {missing} under {root}; the words are {folders}")
        folders = [w for w in folders if w in set(words)]
    rows = []
    for word in folders:
        for f in get_audio_files(root / word, recurse=False):
            name = f"{word}/{f.name}"
            split = "validation" if name in validation else "testing" if name in testing else "train"
            rows.append((name, word, f.name.split("_nohash_")[0], split))
    have = {r[0] for r in rows}
    lost = sorted(n for n in validation | testing if n.split("/")[0] in folders and n not in have)
    if lost:
        raise AudioFileError(
            root, f"lists {len(lost)} files that are not there (first: {lost[:3]}): an incomplete copy"
        )
    return pd.DataFrame(rows, columns=["fname", "label", "speaker", "split"])
