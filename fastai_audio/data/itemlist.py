"""``AudioItemList``: the seed's fastai-v1 style fluent API, running on fastai 2.8 and returning ``DataLoaders``.

    data = (AudioItemList.from_folder(path)
                .filter_by_func(lambda fn: 'acoustic' in fn.name)
                .split_by_folder()
                .label_from_re(r'(\\w+)_\\w+_\\d+-\\d+-\\d+.wav$')
                .databunch(bs=64, tfms=tfms))

Each call returns a new object; nothing is loaded until ``databunch``, which builds a fastai ``DataBlock``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
from fastai.data.transforms import parent_label

from ..errors import ParameterError
from ..files import absolute, in_folder
from .block import RegexLabeller, get_audio_files
from .check import drop_bad_files
from .loaders import AudioDataLoaders

__all__ = ["AudioItemList"]


class AudioItemList:
    """A list of audio files to split, label and turn into ``DataLoaders`` with chained calls (fastai v1 style).

    Attributes:
        items: the file paths (``Path``).
        path: the root folder (becomes the Learner's ``path``).

    Examples:
        >>> data = (AudioItemList.from_folder("nsynth").split_by_folder()
        ...         .label_from_re(r"(\\w+)_\\w+_\\d+-\\d+-\\d+.wav$").databunch(bs=64))
        >>> data.c, data.classes[:2]
        (11, ['bass', 'brass'])
    """

    def __init__(self, items, path="."):
        self.items = [Path(o) for o in items]
        self.path = Path(path)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def __repr__(self) -> str:
        head = ", ".join(o.name for o in self.items[:3])
        return f"{type(self).__name__} ({len(self)} items: {head}{', ...' if len(self) > 3 else ''}) in {self.path}"

    @classmethod
    def from_folder(cls, path, extensions=None, recurse: bool = True, folders=None) -> AudioItemList:
        """Every audio file under ``path`` (see ``get_audio_files``)."""
        return cls(get_audio_files(path, recurse=recurse, folders=folders, extensions=extensions), path)

    @classmethod
    def from_df(cls, df: pd.DataFrame, path=".", cols=0, folder=None, suffix: str = "") -> AudioItemList:
        """File names from column ``cols`` of ``df``, relative to ``path/folder``.

        ``df`` is kept for ``label_from_df``.
        """
        col = df.columns[cols] if isinstance(cols, int) else cols
        root = Path(path) / folder if folder else Path(path)
        res = cls([root / f"{o}{suffix}" for o in df[col]], path)
        res._df = df.reset_index(drop=True)
        return res

    def _new(self, items) -> AudioItemList:
        res = type(self)(items, self.path)
        if hasattr(self, "_df"):
            keep = {str(o) for o in items}
            mask = [str(o) in keep for o in self.items]
            res._df = self._df[mask].reset_index(drop=True)
        return res

    def filter_by_func(self, func) -> AudioItemList:
        """Keep the files for which ``func(path)`` is true."""
        return self._new([o for o in self.items if func(o)])

    def filter_by_folder(self, include=None, exclude=None) -> AudioItemList:
        """Keep files under the ``include`` sub-folders of ``path`` and drop those under ``exclude``."""

        def first_folder(o):
            rel = o.relative_to(self.path) if o.is_relative_to(self.path) else o
            return rel.parts[0] if len(rel.parts) > 1 else ""

        return self._new(
            [
                o
                for o in self.items
                if (include is None or first_folder(o) in include)
                and (exclude is None or first_folder(o) not in exclude)
            ]
        )

    def _split(self, is_valid: list) -> _SplitAudioItemList:
        train = [o for o, v in zip(self.items, is_valid) if not v]
        valid = [o for o, v in zip(self.items, is_valid) if v]
        if not train or not valid:
            raise ParameterError(
                f"the split left {len(train)} training and {len(valid)} validation files of {len(self)} "
                f"under {self.path}; both need at least one (check folder names or valid_pct)"
            )
        return _SplitAudioItemList(self, is_valid)

    def split_by_folder(self, train: str = "train", valid: str = "valid") -> _SplitAudioItemList:
        """Files under ``path/train`` train, files under ``path/valid`` validate; others are dropped."""
        tr, va = self.path / train, self.path / valid
        keep = [o for o in self.items if in_folder(o, tr) or in_folder(o, va)]
        for name, folder in (("train", tr), ("valid", va)):
            if not any(in_folder(o, folder) for o in keep):
                raise ParameterError(
                    f"split_by_folder found no audio files under {folder}; pass {name}='<folder name>' "
                    f"(sub-folders of {self.path}: {sorted(p.name for p in self.path.iterdir() if p.is_dir())})"
                )
        kept = self._new(keep)
        return kept._split([in_folder(o, va) for o in kept.items])

    def split_by_rand_pct(self, valid_pct: float = 0.2, seed: int | None = None) -> _SplitAudioItemList:
        """Hold out ``valid_pct`` of the files at random (seeded with ``seed``)."""
        if not 0 < valid_pct < 1:
            raise ParameterError(f"valid_pct must be between 0 and 1, got {valid_pct!r}")
        idx = list(range(len(self)))
        random.Random(seed).shuffle(idx)
        chosen = set(idx[: int(round(valid_pct * len(self)))])
        return self._split([i in chosen for i in range(len(self))])

    def split_by_valid_func(self, func) -> _SplitAudioItemList:
        """Files for which ``func(path)`` is true validate."""
        return self._split([bool(func(o)) for o in self.items])

    def split_by_files(self, valid_names) -> _SplitAudioItemList:
        """Files whose name is in ``valid_names`` validate."""
        names = {Path(o).name for o in valid_names}
        return self._split([o.name in names for o in self.items])


class _SplitAudioItemList:
    """An ``AudioItemList`` split into training and validation files, waiting for its labels."""

    def __init__(self, source: AudioItemList, is_valid: list):
        self.source, self.is_valid = source, list(is_valid)

    def __repr__(self) -> str:
        n_valid = sum(self.is_valid)
        return f"{type(self).__name__} (train: {len(self.is_valid) - n_valid}, valid: {n_valid}) in {self.source.path}"

    def label_from_func(self, func) -> _LabelledAudioItemList:
        """Label each file with ``func(path)``."""
        return _LabelledAudioItemList(self, [func(o) for o in self.source.items])

    def label_from_re(self, pat: str, full_path: bool = False) -> _LabelledAudioItemList:
        """Label each file with the first group of ``pat`` searched in its name (or its full path)."""
        labeller = RegexLabeller(pat)
        return self.label_from_func(lambda o: labeller(o if full_path else o.name))

    def label_from_folder(self) -> _LabelledAudioItemList:
        """Label each file with the name of its parent folder."""
        return self.label_from_func(parent_label)

    def label_from_df(self, cols=1) -> _LabelledAudioItemList:
        """Label each file with column ``cols`` of the DataFrame given to ``AudioItemList.from_df``."""
        df = getattr(self.source, "_df", None)
        if df is None:
            raise ParameterError("label_from_df needs an AudioItemList made with AudioItemList.from_df(df, ...)")
        col = df.columns[cols] if isinstance(cols, int) else cols
        return _LabelledAudioItemList(self, list(df[col]))


class _LabelledAudioItemList:
    """Split and labelled: ``databunch()`` turns it into ``AudioDataLoaders``."""

    def __init__(self, split: _SplitAudioItemList, labels: list):
        self.split, self.labels = split, labels

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({len(self.labels)} items, {len(set(map(str, self.labels)))} labels)"

    def databunch(
        self,
        bs: int = 64,
        tfms=None,
        *,
        sample_rate: int | None = 16000,
        duration: float | None = 4.0,
        mono: bool = True,
        num_workers: int | None = None,
        on_error: str = "raise",
        **kwargs,
    ) -> AudioDataLoaders:
        """Build ``AudioDataLoaders`` (fastai ``DataLoaders``): ``data.c``, ``data.classes``, ``one_batch``...

        Args:
            bs: batch size.
            tfms: batch transforms (e.g. the spectrogram front-end's), or None for raw audio batches.
            sample_rate, duration, mono: as in ``AudioBlock``.
            num_workers: loader worker processes (default fastai's: the CPU count, at most 16).
            on_error: ``'raise'`` or ``'skip'`` bad files (skip warns naming each).
            **kwargs: passed to ``AudioDataLoaders`` (``device``, ``pad_mode``, ``item_tfms``, ``seed``...).

        Examples:
            >>> split = AudioItemList.from_folder("nsynth").split_by_folder()
            >>> data = split.label_from_re(r"(\\w+)_\\w+_\\d+-\\d+-\\d+.wav$").databunch(bs=16, tfms=mel_transforms())
            >>> xs, ys = data.one_batch()
            >>> xs.shape, ys.shape
            (torch.Size([16, 1, 64, 251]), torch.Size([16]))
        """
        src = self.split.source
        label_of = {str(o): lab for o, lab in zip(src.items, self.labels)}
        valid = {str(o) for o, v in zip(src.items, self.split.is_valid) if v}
        files = drop_bad_files(src.items, on_error)
        df = pd.DataFrame(
            {
                "fname": [str(absolute(o)) for o in files],
                "label": [label_of[str(o)] for o in files],
                "is_valid": [str(o) in valid for o in files],
            }
        )
        if num_workers is not None:
            kwargs["num_workers"] = num_workers
        return AudioDataLoaders.from_df(
            df,
            path=src.path,
            fn_col="fname",
            label_col="label",
            valid_col="is_valid",
            bs=bs,
            batch_tfms=tfms,
            sample_rate=sample_rate,
            duration=duration,
            mono=mono,
            **kwargs,
        )
