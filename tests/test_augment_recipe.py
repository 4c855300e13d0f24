"""fastai_audio.transforms.augment.recipe: audio_aug_tfms around the front-end, in DataLoaders and exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastai.learner import load_learner
from torchvision.models import resnet18

from fastai_audio import TensorSpectrogram
from fastai_audio.data import AudioDataLoaders
from fastai_audio.learner import audio_learner
from fastai_audio.transforms import (
    AmplitudeToDB,
    MelSpectrogram,
    SpecNormalize,
)


def test_recipe_runs_around_the_front_end_on_training_batches_only(aug_dls, toy_folder):
    names = [type(getattr(t, "module", t)).__name__ for t in aug_dls.after_batch.fs]  # the steps in their adapters
    assert names.index("AddNoise") < names.index("MelSpectrogram") < names.index("SpecNormalize")
    assert names.index("MelSpectrogram") < names.index("RandomLowpass") < names.index("AmplitudeToDB")
    assert names.index("SpecNormalize") < names.index("FrequencyMask") and "TimeMask" in names
    clean_tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    clean = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=clean_tfms)
    clean.after_batch.fs[-1].mean, clean.after_batch.fs[-1].std = (
        aug_dls.after_batch.fs[-3].mean,
        aug_dls.after_batch.fs[-3].std,
    )
    va, vc = aug_dls.valid.one_batch()[0], clean.valid.one_batch()[0]
    torch.testing.assert_close(va, vc)  # validation batches are untouched
    xb = aug_dls.train.one_batch()[0]
    assert isinstance(xb, TensorSpectrogram) and bool((xb == 0).any())  # masks hit the training batch


def test_show_batch_shows_one_clip_with_different_draws(aug_dls):
    import matplotlib.pyplot as plt

    aug_dls.show_batch(max_n=4, unique=True)
    axes = [ax for ax in plt.gcf().axes if ax.images]
    titles = {ax.get_title() for ax in axes}
    pictures = [ax.images[0].get_array() for ax in axes]
    plt.close("all")
    assert len(axes) == 4 and len(titles) == 1  # one clip...
    assert not np.allclose(pictures[0], pictures[1])  # ...augmented differently each time


@pytest.mark.filterwarnings("ignore:load_learner` uses Python's insecure pickle:UserWarning")
def test_export_with_augmentations_predicts_clean(aug_dls, toy_folder, tmp_path):
    torch.manual_seed(0)
    learn = audio_learner(aug_dls, resnet18, pretrained=False, path=tmp_path)
    with learn.no_bar():
        learn.fit(1, 1e-3)
    clip = sorted((toy_folder / "valid" / "low").glob("*.wav"))[0]
    probs = learn.predict(clip)[2]
    torch.testing.assert_close(learn.predict(clip)[2], probs)  # no random draw at prediction
    learn.export(tmp_path / "aug.pkl")
    back = load_learner(tmp_path / "aug.pkl")
    torch.testing.assert_close(back.predict(clip)[2], probs)
    preds, _ = back.get_preds(dl=back.dls.test_dl([clip, clip]))
    torch.testing.assert_close(preds[0], probs)
    torch.testing.assert_close(preds[1], probs)
    assert any(type(t).__name__ == "AddNoise" for t in back.dls.after_batch.fs)
