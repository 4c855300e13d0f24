"""fastai_audio.transforms.augment.base: every augmentation trains only, keeps types and dtypes, seeds, draws per
item with probability p, and pickles small."""

from __future__ import annotations

import pickle

import pytest
import torch
from conftest import SR, noise_batch
from fastai.torch_core import set_seed

from fastai_audio import ParameterError, TensorAudio
from fastai_audio.functional import colored_noise
from fastai_audio.transforms import (
    AddNoise,
    FrequencyMask,
    MelSpectrogram,
    PitchShift,
    PolarityInversion,
    RandomGain,
    RandomHighpass,
    RandomLowpass,
    RandomShift,
    TimeMask,
    TimeStretch,
    TimeWarp,
)

WAVE_AUGS = [
    lambda: RandomGain(p=1.0),
    lambda: RandomShift(p=1.0),
    lambda: PolarityInversion(p=1.0),
    lambda: AddNoise(color="random", p=1.0),
    lambda: RandomLowpass(p=1.0),
    lambda: RandomHighpass(p=1.0),
    lambda: PitchShift(p=1.0),
    lambda: TimeStretch(p=1.0),
]


@pytest.mark.parametrize("make", WAVE_AUGS, ids=lambda m: type(m()).__name__)
def test_training_only_types_dtype_and_seeds(make):
    tfm = make()
    for dtype in (torch.float32, torch.float64):
        x = noise_batch(3, 0.5, dtype=dtype)
        y = tfm(x, split_idx=0)
        assert type(y) is TensorAudio and y.sample_rate == SR and y.dtype == dtype and y.shape == x.shape
        assert not torch.equal(y, x)
        assert tfm(x, split_idx=1) is x  # validation, predict, get_preds: untouched
    a, b = make(), make()
    a.seed = b.seed = 7
    x = noise_batch(3, 0.5)
    torch.testing.assert_close(a(x, split_idx=0), b(x, split_idx=0))  # same seed, same draws
    set_seed(3)
    first = make()(x, split_idx=0)
    set_seed(3)
    torch.testing.assert_close(make()(x, split_idx=0), first)  # seed=None follows torch's (fastai's set_seed)
    back = pickle.loads(pickle.dumps(a))
    assert back.last_params is None and back._generators == {}
    back(x, split_idx=0)


def test_p_is_the_fraction_of_clips_augmented():
    tfm = RandomGain(-6, -6, p=0.3, seed=0)
    x = noise_batch(4000, 0.01)
    y = tfm(x, split_idx=0)
    changed = (y != x).any(dim=2).flatten()
    assert float(changed.float().mean()) == pytest.approx(0.3, abs=0.03)
    assert changed.nonzero().flatten().tolist() == tfm.last_params["index"].tolist()  # CPU: only those processed
    draws = tfm.draw(x)  # the full-batch draw (the path on a GPU): identity where not augmented
    assert float((draws["gain_db"] != 0).float().mean()) == pytest.approx(0.3, abs=0.03)
    never = RandomGain(p=0.0)
    x = noise_batch(16, 0.1)
    assert torch.equal(never(x, split_idx=0), x)


SPEC_AUGS = [lambda: FrequencyMask(p=1.0), lambda: TimeMask(p=1.0), lambda: TimeWarp(p=1.0)]


@pytest.mark.parametrize("make", WAVE_AUGS + SPEC_AUGS, ids=lambda m: type(m()).__name__)
def test_a_batch_where_no_clip_is_chosen_passes_through(make):
    tfm = make()
    tfm.p, tfm.seed = 0.01, 0  # (CPU: the draw and the work cover only the chosen clips, here none)
    x = noise_batch(2, 0.25)
    if isinstance(tfm, (FrequencyMask, TimeMask, TimeWarp)):
        x = MelSpectrogram(SR, n_fft=256, hop_length=64, n_mels=16)(x)
    assert torch.equal(tfm(x, split_idx=0), x)
    assert tfm.last_params.get("index", torch.zeros(0)).numel() == 0  # (Pitch, Stretch: grouped, no index)
    assert colored_noise((0, 1, 100), 1.0, "cpu").shape == (0, 1, 100)


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match=r"probability .* \[0, 1\], got 1.5"):
        AddNoise(p=1.5)
    with pytest.raises(ParameterError, match=r"gain_db: the range \(6, -6\) is empty"):
        RandomGain(6, -6)
    with pytest.raises(ParameterError, match="color"):
        AddNoise(color="purple")
    with pytest.raises(ParameterError, match="step must divide one semitone"):
        PitchShift(step=0.3)
    with pytest.raises(ParameterError, match="fraction of the clip's length"):
        RandomShift(-2, 2)


def test_state_does_not_grow_over_an_epoch():
    tfm = AddNoise(p=1.0, seed=0)
    x = noise_batch(8, 0.5)
    tfm(x, split_idx=0)
    size = len(pickle.dumps(tfm))
    for _ in range(30):
        tfm(x, split_idx=0)
    assert len(pickle.dumps(tfm)) == size and len(tfm._generators) == 1
    assert "_meta" not in vars(tfm)  # no reference to the last batch is kept beyond its parameters


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("make", WAVE_AUGS, ids=lambda m: type(m()).__name__)
def test_cuda_batches_stay_on_the_gpu(make):
    x = noise_batch(4, 0.5).cuda()
    tfm = make()
    tfm.seed = 0
    y = tfm(x, split_idx=0)
    assert y.device.type == "cuda" and y.dtype == x.dtype and y.sample_rate == SR
