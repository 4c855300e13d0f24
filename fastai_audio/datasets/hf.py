"""Hugging Face ``datasets`` with an ``Audio`` column, decoded by the library's own decoder (soundfile), not by
``datasets`` (whose decoding needs torchcodec and FFmpeg). The rows stay in the dataset's Arrow table (memory-mapped
for a dataset on disk): each item is a reference, ``HFAudio``, read when the loaders open it, so building the
loaders of a 100 GB dataset reads no audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..decode import AudioSource
from ..errors import EmptyAudioError, ParameterError

__all__ = ["HFAudio", "read_hf"]


def _require_datasets():
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "reading a Hugging Face dataset needs the `datasets` package: pip install 'fastai_audio[hf]' "
            "(or pip install datasets)"
        ) from None
    return datasets


class HFAudio(AudioSource):
    """Row ``index`` of a Hugging Face dataset's audio column, read (its file's bytes, or its path) when opened.

    ``name`` is ``'<split>[<index>]'``; errors add the file name the row stores (``'train[12] (a.flac)'``).
    ``dataset`` is the dataset with only the audio column, in the ``"arrow"`` format (nothing decoded): ``read_hf``
    makes it once and shares it between the rows.

    Examples:
        >>> clip = read_hf(hf_dataset).audio[0]
        >>> data, label = clip.read()
        >>> clip.name, label, bytes(data[:4])
        ('train[0]', 'train[0] (high_0.wav)', b'RIFF')
    """

    def __init__(self, dataset, index: int, column: str, split: str):
        self.dataset, self.index, self.column = dataset, int(index), column
        self.name = f"{split}[{self.index}]"

    def read(self) -> tuple[Path | memoryview, str]:
        """``(the file's bytes (a view of the Arrow buffer), or its path; a label naming the row and its file)``."""
        cell = self.dataset[self.index].column(self.column)  # a one-row Arrow table: the dataset's "arrow" format
        row = next(chunk for chunk in cell.chunks if len(chunk))
        path = row.field("path").to_pylist()[0]
        label = f"{self.name} ({path})" if path else self.name
        data = _first_binary(row.field("bytes"))
        if data is not None:
            return data, label
        if path:
            return Path(path), label
        raise EmptyAudioError(label, "holds neither the audio's bytes nor a path: the row has no audio")


def _first_binary(values) -> memoryview | bytes | None:
    """The first value of an Arrow binary array, ``None`` if null: for ``binary`` and ``large_binary``, a view of
    its buffer, located by the offsets of Arrow's columnar format (pyarrow's scalar for a value of 128 KB costs
    about 55 us on this project's CPU machine, the view 1 us: 8 us a row against 67 us through ``dataset[i]``)."""
    import pyarrow as pa

    if values.null_count:
        return None
    large = pa.types.is_large_binary(values.type)
    if not (large or pa.types.is_binary(values.type)):
        return values.to_pylist()[0]
    _, offsets, data = values.buffers()
    width = 8 if large else 4
    start, end = np.frombuffer(offsets, dtype=f"<i{width}", count=2, offset=values.offset * width)
    return memoryview(data)[start:end] if data is not None else b""


def _check_dataset(obj, split: bool = False):
    """``obj`` if it is a ``Dataset`` (``split``) or a ``DatasetDict`` (a dict of them), else the error that says
    what to pass."""
    datasets = _require_datasets()
    if isinstance(obj, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise ParameterError(
            "a streaming (iterable) dataset has no random access: load it without streaming=True, or write it to "
            "tar shards (fastai_audio.data.shards) and use AudioDataLoaders.from_shards"
        )
    if not isinstance(obj, datasets.Dataset if split else dict):
        raise ParameterError(f"expected a datasets.Dataset or DatasetDict, not a {type(obj).__name__}")
    return obj


def _audio_column(dataset, audio: str | None = None) -> str:
    """The audio column of a ``Dataset``: ``audio`` when given (checked), else the one ``datasets.Audio`` column."""
    datasets = _require_datasets()
    features = dataset.features
    found = [name for name, f in features.items() if isinstance(f, datasets.Audio)]
    if audio is None:
        if len(found) == 1:
            return found[0]
        if not found:
            raise ParameterError(
                f"the dataset has no Audio column (its columns: {list(features)}); cast the one holding the files "
                "with dataset.cast_column('<column>', datasets.Audio()), or pass audio='<column>'"
            )
        raise ParameterError(f"the dataset has several Audio columns ({found}): pass audio= one of them")
    if audio not in features:
        raise ParameterError(f"audio column {audio!r} is not a column of the dataset ({list(features)})")
    if not isinstance(features[audio], datasets.Audio):
        raise ParameterError(
            f"column {audio!r} is a {type(features[audio]).__name__}, not an Audio column; cast it with "
            f"dataset.cast_column({audio!r}, datasets.Audio())"
        )
    return audio


def _label_reader(feature, name: str):
    """``(vocab or None, multi-label?, value -> label)`` for the label column's feature."""
    names = getattr(feature, "names", None)
    inner = getattr(feature, "feature", None)  # Sequence / List / LargeList of something
    if names is not None:  # ClassLabel: ids -> names; -1 is "no label" (e.g. a hidden test split)
        return list(names), False, lambda v: names[v] if v is not None and 0 <= v < len(names) else None
    if inner is not None:
        inner_names = getattr(inner, "names", None)
        if inner_names is not None:
            return list(inner_names), True, lambda v: [inner_names[i] for i in v] if v is not None else None
        return None, True, lambda v: [str(o) for o in v] if v is not None else None
    dtype = getattr(feature, "dtype", None)
    if dtype is None:
        raise ParameterError(
            f"label column {name!r} is a {type(feature).__name__}: use a ClassLabel, a list of "
            "them, or a column of strings or integers"
        )
    return None, False, lambda v: v


def read_hf(dataset, label: str | None = "label", *, audio: str | None = None) -> pd.DataFrame:
    """A Hugging Face ``Dataset`` or ``DatasetDict`` as a table: ``audio`` (an ``HFAudio`` per row, read when the
    loaders open it), ``label`` (``ClassLabel`` ids as their names; a list of names for a list of them; ``None``
    for a row without one, id -1) and ``split``. No audio is read here.

    Args:
        dataset: a ``datasets.Dataset`` (its split is ``dataset.split``, or ``'train'``) or a ``DatasetDict``
            (every split).
        label: the label column, or ``None`` for none.
        audio: the ``Audio`` column (default: the only one).

    Raises:
        ImportError: ``datasets`` is not installed. ParameterError: a streaming dataset, a missing column.

    Examples:
        >>> df = read_hf(hf_dataset)
        >>> list(df.columns), df.label[0], str(df.audio[0])
        (['audio', 'label', 'split'], 'high', 'train[0]')
    """
    datasets = _require_datasets()
    if isinstance(dataset, datasets.Dataset):
        splits = {str(dataset.split) if dataset.split is not None else "train": dataset}
    else:
        splits = dict(_check_dataset(dataset))
    frames = []
    for split, ds in splits.items():
        _check_dataset(ds, split=True)
        column = _audio_column(ds, audio)
        if label is not None and label not in ds.features:
            raise ParameterError(f"label column {label!r} is not a column of split {split!r} ({list(ds.features)})")
        rows = ds.select_columns([column]).with_format("arrow")  # (read as Arrow: nothing decoded)
        frame = {"audio": [HFAudio(rows, i, column, split) for i in range(len(ds))]}
        if label is not None:
            _, _, to_label = _label_reader(ds.features[label], label)
            frame["label"] = [to_label(v) for v in ds[label]]
        frames.append(pd.DataFrame({**frame, "split": split}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["audio", "label", "split"])


def _label_info(dataset, label: str) -> tuple[list | None, bool]:
    """``(vocab, multi_label)`` of a ``Dataset``'s label column: a ``ClassLabel``'s names keep the dataset's ids
    (class ``k`` of the model is id ``k``); ``None`` where the labels are plain values."""
    feature = dataset.features[label]
    vocab, multi, _ = _label_reader(feature, label)
    return vocab, multi
