"""The base of fastai_audio's transforms: act on the audio types, pass everything else (labels) through."""

from __future__ import annotations

import torch
from fasttransform import DisplayedTransform

from .._compat import DirectEncodes

__all__ = ["TypedTransform"]


class TypedTransform(DirectEncodes, DisplayedTransform):
    """A fastai ``Transform`` whose ``_encode`` runs on instances of ``accepts`` (and, when ``plain_tensors``, on
    plain ``torch.Tensor``s); anything else in the sample, such as a ``TensorCategory`` label, passes through.

    ``encodes`` is one untyped method that checks the type itself: a plain ``torch.Tensor`` must be accepted while
    fastai's labels, which are tensors too, must not, and plum's dispatch costs more (about 3 us a call) than most
    audio transforms. The seam's ``direct_encodes`` shim calls it without the dispatch (``fastai_audio._compat``).
    ``decodes`` dispatches the fastai way. Subclasses implement ``_encode(self, x)``.

    Examples:
        >>> class Halve(TypedTransform):
        ...     accepts = (TensorAudio,)
        ...     def _encode(self, x):
        ...         return x / 2
        >>> Halve()(TensorAudio(torch.ones(1, 4), sample_rate=8000)).sample_rate
        8000
    """

    accepts: tuple = ()
    plain_tensors: bool = False

    def encodes(self, x):
        return self._encode(x) if self.takes(x) else x

    def takes(self, x) -> bool:
        """Whether ``x`` is one of the types this transform works on (labels and other items are not)."""
        return isinstance(x, self.accepts) or (self.plain_tensors and type(x) is torch.Tensor)

    def _encode(self, x):
        raise NotImplementedError
