"""What a file-backed data set's items are, as the writers of shards and packed caches need them: the file behind
an item and its label by name."""

from __future__ import annotations

from pathlib import Path

import torch
from fastai.data.transforms import Categorize
from fastai.torch_core import TensorCategory

from .._compat import DirectEncodes, input_item, input_pipeline, target_item
from ..errors import ParameterError
from ..transforms.item import find_opener

__all__ = ["is_multi_label", "label_of", "source_path"]


def source_path(ds, i: int) -> Path:
    """The file behind item ``i`` of a file-backed ``Datasets``: its input, through the readers before the opener.

    Examples:
        >>> source_path(dls.train_ds, 0).suffix
        '.wav'
    """
    index, _ = find_opener(ds)
    if index is None:
        raise ParameterError("this needs loaders that read audio files (AudioBlock's OpenAudio), e.g. from_folder")
    o = input_item(ds, i)
    for t in input_pipeline(ds)[:index]:
        o = t(o)
    return Path(o)


def label_of(ds, i: int):
    """Item ``i``'s label as the data set names it: a class name, or a list of them (multi-label).

    Examples:
        >>> label_of(dls.train_ds, 0) in dls.vocab
        True
    """
    y = target_item(ds, i)
    vocab = ds.vocab
    if y.ndim:  # multi-label: a one-hot row
        return [vocab[j] for j in torch.nonzero(y).flatten().tolist()]
    return vocab[int(y)]


def is_multi_label(dls) -> bool:
    """Whether the loaders' targets are multi-label (one-hot rows).

    Examples:
        >>> is_multi_label(dls)
        False
    """
    y = target_item(dls.train_ds, 0) if len(dls.train_ds) else None
    return y is not None and y.ndim > 0


class FastCategorize(DirectEncodes, Categorize):
    """fastai's ``Categorize``, making its ``TensorCategory`` without fastai's generic tensor conversion (~3 us an
    item); labels it does not know get fastai's own error. The label transform of every single-label loader.

    Examples:
        >>> t = FastCategorize(vocab=["high", "low"])
        >>> t("low"), type(t("low")).__name__
        (TensorCategory(1), 'TensorCategory')
    """

    def encodes(self, o):
        try:
            code = self.vocab.o2i[o]
        except (KeyError, TypeError):
            return Categorize.encodes(self, o)
        return torch.scalar_tensor(code, dtype=torch.long).as_subclass(TensorCategory)
