"""fastai_audio.transforms.presets: named front-ends and the seed's get_frequency_batch_transforms."""

import matplotlib.pyplot as plt
import pytest
import torch

from fastai_audio import ParameterError, TensorAudio
from fastai_audio.core import TensorSpectrogram
from fastai_audio.data import AudioItemList
from fastai_audio.transforms import (
    MEL_PRESETS,
    get_frequency_batch_transforms,
    mel_transforms,
)

SEED_PATTERN = r"(\w+)_\w+_\d+-\d+-\d+.wav$"


def test_seed_front_end_feeds_the_seed_chain(nsynth_small):
    tfms = get_frequency_batch_transforms(n_fft=1024, n_hop=256, n_mels=40, sample_rate=16000)
    data = (
        AudioItemList.from_folder(nsynth_small)
        .split_by_folder()
        .label_from_re(SEED_PATTERN)
        .databunch(bs=64, tfms=tfms, num_workers=0)
    )
    xs, ys = data.one_batch()
    assert isinstance(xs, TensorSpectrogram) and xs.shape == (64, 1, 40, 251) and ys.shape == (64,)
    data.show_batch(3)
    axes = [ax for ax in plt.gcf().axes if ax.images]
    assert len(axes) == 3 and all(ax.get_ylabel() == "Hz" and ax.get_xlabel() == "time (s)" for ax in axes)
    assert {ax.get_title() for ax in axes} <= set(data.classes)
    plt.close("all")


@pytest.mark.parametrize("name", sorted(MEL_PRESETS))
def test_presets_build_working_front_ends(name):
    cfg = MEL_PRESETS[name]
    tfms = mel_transforms(name, normalize="item")
    x = TensorAudio(torch.randn(2, 1, cfg.sample_rate), sample_rate=cfg.sample_rate)
    for t in tfms:
        x = t(x)
    assert x.shape[:3] == (2, 1, cfg.n_mels) and x.normalized


def test_unknown_preset():
    with pytest.raises(ParameterError, match="unknown preset 'radio'"):
        mel_transforms("radio")


def test_the_musicnn_preset_is_the_musicnn_package_s_front_end():
    """musicnn's extractor: ``librosa.feature.melspectrogram(y, sr=16000, hop_length=256, n_fft=512, n_mels=96)``
    (librosa's defaults otherwise: zero padding, slaney mels) then ``np.log10(10000 * S + 1)``; compared here on a
    chord with noise, in float64."""
    librosa = pytest.importorskip("librosa")
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    y = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 277.2, 329.6))) * np.exp(-t)
    y = (y + 0.01 * rng.standard_normal(t.size)) * 0.3
    want = np.log10(10000 * librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96) + 1)
    tfms = mel_transforms("musicnn")
    assert [type(t).__name__ for t in tfms] == ["MelSpectrogram", "LogCompress"]
    x, typed = torch.from_numpy(y)[None, None], TensorAudio(torch.from_numpy(y)[None, None], sample_rate=16000)
    for tfm in tfms:
        x, typed = tfm(x), tfm(typed)
    assert typed.shape == (1, 1, 96, 188) and typed.log_scale == 10000.0 and not typed.db and typed.scale == "mel"
    # float64 signal, but the filterbank buffer is float32: agreement to 6e-6 of values up to 4 (measured)
    torch.testing.assert_close(x[0, 0], torch.from_numpy(want), rtol=1e-4, atol=1e-5)
