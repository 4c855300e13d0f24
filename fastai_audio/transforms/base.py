"""The base of fastai_audio's transforms: act on the audio types, pass everything else (labels) through."""

from __future__ import annotations

import torch
from fasttransform import DisplayedTransform

__all__ = ["TypedTransform"]


class DirectEncodes:
    """Mixin for fastai ``Transform``s that route ``encodes`` calls straight to ``_do_call``.

    fastai's ``Transform._call`` first checks ``hasattr(self, 'encodes')``, and with plum each attribute access
    builds a new bound dispatcher (about 10 us): more than a label lookup, paid for every item in every pipeline.
    A transform that defines ``encodes`` can skip the check; decoding takes fastai's path unchanged.
    """

    def _call(self, nm, *args, split_idx=None, **kwargs):
        if nm == "encodes" and (self.split_idx is None or split_idx == self.split_idx):
            return self._do_call(nm, *args, **kwargs)
        return super()._call(nm, *args, split_idx=split_idx, **kwargs)


class TypedTransform(DirectEncodes, DisplayedTransform):
    """A fastai ``Transform`` whose ``_encode`` runs on instances of ``accepts`` (and, when ``plain_tensors``, on
    plain ``torch.Tensor``s); anything else in the sample, such as a ``TensorCategory`` label, passes through.

    The type check replaces plum's dispatch on the data path: resolving the dispatch costs more (about 0.1 ms a
    call) than most audio transforms, and a plain ``torch.Tensor`` must be accepted while fastai's labels, which
    are tensors too, must not. ``decodes`` still dispatches the fastai way. Subclasses implement
    ``_encode(self, x)``.
    """

    accepts: tuple = ()
    plain_tensors: bool = False

    def encodes(self, x: torch.Tensor):
        return self._encode(x)

    def _do_call(self, nm, *args, **kwargs):
        x = args[0]
        if nm != "encodes" or isinstance(x, tuple):
            return super()._do_call(nm, *args, **kwargs)  # tuples come back here one element at a time
        if isinstance(x, self.accepts) or (self.plain_tensors and type(x) is torch.Tensor):
            return self._encode(x)
        return x

    def _encode(self, x):
        raise NotImplementedError
