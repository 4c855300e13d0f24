"""fastai_audio.transforms.augment.noise: AddNoise and AddBackground mix at the drawn SNR."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from conftest import SR, peak_frequency, sine, snr_db, tones, write

from fastai_audio import AudioFileError, TensorAudio
from fastai_audio.transforms import (
    AddBackground,
    AddNoise,
)


@pytest.mark.parametrize("color", ["white", "pink", "brown", "random"])
def test_noise_at_10_db_snr_measures_10_db(color):
    x = tones([220, 440, 880, 1760])
    tfm = AddNoise(10, 10, color=color, p=1.0, seed=0)
    y = tfm(x, split_idx=0)
    np.testing.assert_allclose(snr_db(x, y), 10.0, atol=0.5)
    pinned = tfm.apply(x.as_subclass(torch.Tensor), **tfm.last_params)
    torch.testing.assert_close(pinned, y.as_subclass(torch.Tensor))  # draw, then a deterministic apply


def test_noise_excerpts_of_the_bank_loop_and_differ_per_clip_and_channel():
    tfm = AddNoise(10, 10, color="random", p=1.0, seed=0, bank_samples=3000)  # clips longer than the bank: loops
    x = TensorAudio(torch.from_numpy(np.stack([sine(440, SR, 0.5, channels=2)] * 4)), sample_rate=SR)
    y = tfm(x, split_idx=0)
    np.testing.assert_allclose(snr_db(x, y), 10.0, atol=0.01)
    noise = tfm.noise(tfm.last_params["row"], tfm.last_params["offset"], x.shape[-1])
    bank = tfm.bank("cpu")
    assert bank.shape == (3, 3000) and torch.allclose(bank.pow(2).mean(dim=1), torch.ones(3))
    flat = noise.reshape(8, -1)
    assert torch.allclose(flat[:, :3000], flat[:, 3000:6000], atol=1e-6)  # periodic: the excerpt loops seamlessly
    corr = torch.corrcoef(flat[:, :3000])
    assert (corr - torch.eye(8)).abs().max() < 0.9  # each clip and channel has its own excerpt
    assert len(pickle.dumps(tfm)) < 10_000  # the bank is not pickled


def test_noise_per_clip_on_a_cpu_equals_the_batched_path():
    # CPU batches go clip by clip, other devices through one gather: same draws, same output (stereo, padding, a
    # silent clip, clips left alone, excerpts that wrap around the bank)
    x = TensorAudio(torch.randn(6, 2, 5000, generator=torch.Generator().manual_seed(0)), sample_rate=SR)
    x[2] = 0
    x[4, :, 3000:] = 0
    lengths = torch.tensor([5000, 5000, 5000, 5000, 3000, 5000])
    tfm = AddNoise(0, 20, color="random", p=0.7, seed=3, bank_samples=4096)
    params = tfm.draw(x.as_subclass(torch.Tensor), {"lengths": lengths})
    params["snr_db"][[1, 5]] = math.inf  # two clips left alone
    batched = tfm._apply_batched(x.as_subclass(torch.Tensor), **params)
    per_clip = tfm._apply_per_clip(x.as_subclass(torch.Tensor), **params)
    torch.testing.assert_close(per_clip, batched, rtol=1e-4, atol=1e-5)  # float32 sums in one, float64 in the other
    assert torch.equal(per_clip[2], x[2]) and torch.all(per_clip[4, :, 3000:] == 0)


def test_noise_leaves_padding_and_silence_alone():
    x = tones([440, 440, 440])
    x[1, :, SR // 2 :] = 0  # a half-length clip, zero-padded in a variable-length batch
    x[2] = 0  # a silent clip
    x.lengths = torch.tensor([SR, SR // 2, SR])
    y = AddNoise(0, 0, p=1.0, seed=1)(x, split_idx=0)
    assert torch.all(y[1, :, SR // 2 :] == 0) and not torch.equal(y[1, :, : SR // 2], x[1, :, : SR // 2])
    np.testing.assert_allclose(snr_db(x[1:2, :, : SR // 2], y[1:2, :, : SR // 2]), 0.0, atol=0.01)
    assert torch.all(y[2] == 0)  # a silent clip has no power to scale the noise to
    assert y.lengths.tolist() == [SR, SR // 2, SR]


def test_background_is_mixed_at_the_drawn_snr(tmp_path):
    write(tmp_path / "bg" / "hum.wav", sine(100, 8000, 0.3), 8000)  # other rate, shorter than the clips: loops
    write(tmp_path / "bg" / "sub" / "whistle.flac", sine(3000, 22050, 2.0, channels=2), 22050)
    x = tones([440, 440, 440, 440])
    tfm = AddBackground(tmp_path / "bg", 5, 5, p=1.0, seed=0)
    y = tfm(x, split_idx=0)
    np.testing.assert_allclose(snr_db(x, y), 5.0, atol=0.01)
    added = (y - x).as_subclass(torch.Tensor)
    peaks = {round(peak_frequency(a[0], SR), -2) for a in added}
    assert peaks <= {100.0, 3000.0}  # each clip got one of the two backgrounds, resampled to 16 kHz
    audio_bank, starts, lengths = tfm.bank(SR, "cpu")
    assert sorted(lengths.tolist()) == [4800, 32000]
    assert len(pickle.dumps(tfm)) < 10_000  # the decoded backgrounds are not pickled
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioFileError, match="holds no audio files"):
        AddBackground(tmp_path / "empty")
