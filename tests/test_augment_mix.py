"""fastai_audio.transforms.augment.mix: AudioCutMix (and fastai's MixUp) on audio batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastai.callback.mixup import MixUp
from fastai.losses import CrossEntropyLossFlat
from torchvision.models import resnet18

from fastai_audio.learner import audio_learner
from fastai_audio.transforms import (
    AudioCutMix,
)


def test_fastai_mixup_and_audio_cutmix_train(aug_dls, tmp_path):
    torch.manual_seed(0)
    learn = audio_learner(aug_dls, resnet18, pretrained=False, path=tmp_path)
    with learn.no_bar():
        learn.fit(1, 1e-3, cbs=MixUp(0.4))
        learn.fit(1, 1e-3, cbs=AudioCutMix(1.0))
    assert np.isfinite(learn.recorder.values[-1][:2]).all()


@pytest.mark.parametrize("shape", [(6, 1, 1000), (6, 1, 32, 50)], ids=["waveforms", "spectrograms"])
def test_audio_cutmix_replaces_one_time_span_and_mixes_targets_by_its_length(shape):
    from types import SimpleNamespace

    torch.manual_seed(0)
    x = torch.arange(6.0)[:, None, None].expand(shape[0], shape[1], int(np.prod(shape[2:]))).reshape(shape).clone()
    y = torch.arange(6)
    learn = SimpleNamespace(xb=(x,), yb=(y,), x=x, y=y, loss_func=CrossEntropyLossFlat(), training=True)
    cb = AudioCutMix(1.0)
    cb.learn = learn
    cb.before_train()
    cb.before_batch()
    mixed = learn.xb[0]
    n = shape[-1]
    swapped = (mixed[:, 0].reshape(6, -1, n)[:, 0, :] != torch.arange(6.0)[:, None]).any(0)  # (time,)
    span = swapped.nonzero().flatten()
    width = 0 if len(span) == 0 else int(span[-1] - span[0] + 1)
    assert int(swapped.sum()) == width  # one contiguous span, the same for every clip
    assert float(cb.lam) == pytest.approx(1 - width / n)
    partner = mixed[:, 0].reshape(6, -1, n)[:, 0, span[0]] if width else None
    if width:
        assert torch.equal(partner, cb.yb1[0].float())  # the span comes from the clip whose label is mixed in
    loss = cb.lf(torch.randn(6, 6), y)
    assert torch.isfinite(loss)
    cb.after_train()
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
