"""Mixing callbacks: ``AudioCutMix``, CutMix along time (fastai's ``MixUp`` works on the audio types as it is)."""

from __future__ import annotations

import torch
from fastai.callback.mixup import MixHandler
from fastai.torch_core import unsqueeze
from fastcore.foundation import L

__all__ = ["AudioCutMix"]


class AudioCutMix(MixHandler):
    """CutMix along time, for waveforms ``(B, C, samples)`` and spectrograms ``(B, C, freq, frames)``: a random span
    of each clip is replaced by the same span of another clip of the batch, and the targets are mixed in proportion
    to the time each clip fills. (fastai's ``CutMix`` cuts rectangles out of 4-D images; fastai's ``MixUp`` works on
    the audio types as it is.) A fastai ``Callback``: ``learn.fit(..., cbs=AudioCutMix())``; training only.

    Args:
        alpha: the cut fraction is drawn from ``Beta(alpha, alpha)``.

    Examples:
        >>> learn = audio_learner(dls, resnet18, pretrained=False, cbs=AudioCutMix(1.0))
        >>> learn.fit_one_cycle(1)
        [0, ...]
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def before_batch(self):
        x = self.x
        n = x.shape[-1]
        keep = float(self.distrib.sample((1,)))  # fraction of each clip kept
        width = int(round(n * (1 - keep)))
        start = int(torch.randint(0, n - width + 1, (1,)))
        shuffle = torch.randperm(x.shape[0]).to(x.device)
        xb1, self.yb1 = x[shuffle], tuple(y[shuffle] for y in self.yb)
        mixed = x.clone()
        mixed[..., start : start + width] = xb1[..., start : start + width]
        self.learn.xb = (mixed,) + tuple(self.xb[1:])
        self.lam = torch.tensor(1 - width / n, device=x.device)
        if not self.stack_y:
            ny_dims = len(self.y.size())
            self.learn.yb = tuple(L(self.yb1, self.yb).map_zip(torch.lerp, weight=unsqueeze(self.lam, n=ny_dims - 1)))
