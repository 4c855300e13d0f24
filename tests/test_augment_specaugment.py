"""fastai_audio.transforms.augment.specaugment: frequency and time masks, time warping."""

from __future__ import annotations

import pytest
import torch
from conftest import SR

from fastai_audio import ParameterError, TensorSpectrogram
from fastai_audio.transforms import (
    FrequencyMask,
    TimeMask,
    TimeWarp,
    audio_aug_tfms,
)


def test_masks_zero_exactly_the_chosen_bins():
    spec = torch.randn(2, 1, 64, 100) + 5
    f = FrequencyMask(max_width=10, n_masks=2)
    y = f.apply(spec, starts=torch.tensor([[3, 40], [0, 0]]), widths=torch.tensor([[4, 2], [0, 0]]))
    masked = torch.zeros(64, dtype=torch.bool)
    masked[3:7] = masked[40:42] = True
    assert torch.all(y[0, :, masked] == 0) and torch.equal(y[0, :, ~masked], spec[0, :, ~masked])
    assert torch.equal(y[1], spec[1])  # width 0: nothing masked
    t = TimeMask(max_width=20, n_masks=1, value="min")
    y = t.apply(spec, starts=torch.tensor([[10], [90]]), widths=torch.tensor([[5], [10]]))
    assert torch.all(y[0, ..., 10:15] == spec[0].min()) and torch.equal(y[0, ..., 15:], spec[0, ..., 15:])
    assert torch.all(y[1, ..., 90:] == spec[1].min()) and torch.equal(y[1, ..., :90], spec[1, ..., :90])


def test_time_warp_moves_the_chosen_frame_and_keeps_the_ends():
    ramp = torch.arange(100.0).expand(3, 1, 4, 100).clone()  # each frame holds its own index: y shows the source
    lengths = torch.tensor([100, 100, 80])  # the third item is padded after frame 79
    y = TimeWarp().apply(
        ramp, centre=torch.tensor([50, 50, 30]), shift=torch.tensor([10.0, 0.0, -5.0]), lengths=lengths
    )
    t = torch.arange(100.0)
    expected = torch.where(t <= 60, t * 50 / 60, 50 + (t - 60) * 49 / 39)  # frame 50 now at 60; 0 and 99 stay
    torch.testing.assert_close(y[0, 0, 0], expected)
    assert torch.equal(y[1], ramp[1])  # no shift: untouched
    assert y[2, 0, 0, 25] == pytest.approx(30.0) and y[2, 0, 0, 79] == pytest.approx(79.0)  # within its 80 frames
    assert torch.equal(y[2, ..., 80:], ramp[2, ..., 80:])  # the padding is left alone
    assert torch.all(y[:, :, :, 1:] >= y[:, :, :, :-1])  # order of frames kept: a monotone warp


def test_time_warp_draws_within_bounds_on_training_batches_only():
    spec = TensorSpectrogram(torch.randn(256, 1, 8, 100), sample_rate=SR, hop_length=256)
    tfm = TimeWarp(max_warp=10, p=1.0, seed=0)
    y = tfm(spec, split_idx=0)
    assert isinstance(y, TensorSpectrogram) and y.hop_length == 256 and y.shape == spec.shape
    centre, shift = tfm.last_params["centre"], tfm.last_params["shift"]
    assert centre.min() >= 11 and centre.max() <= 88 and shift.abs().max() <= 10 and shift.std() > 3
    assert tfm(spec, split_idx=1) is spec
    torch.testing.assert_close(TimeWarp(10, p=1.0, seed=0)(spec, split_idx=0), y)  # seeded: reproducible
    assert TimeWarp(10, p=1.0, seed=0)(spec[:, :, :, :2], split_idx=0).shape == (256, 1, 8, 2)  # too short: as is
    with pytest.raises(ParameterError, match="max_warp"):
        TimeWarp(max_warp=0)
    names = [type(t).__name__ for t in audio_aug_tfms(time_warp=5)]
    assert names == ["AddNoise", "RandomLowpass", "TimeWarp"]


def test_masks_are_drawn_per_item_within_bounds():
    spec = TensorSpectrogram(torch.ones(256, 1, 64, 100), sample_rate=SR, hop_length=256)
    tfm = FrequencyMask(max_width=8, n_masks=2, p=1.0, seed=0)
    y = tfm(spec, split_idx=0)
    assert isinstance(y, TensorSpectrogram) and y.hop_length == 256
    starts, widths = tfm.last_params["starts"], tfm.last_params["widths"]
    assert widths.min() >= 0 and widths.max() <= 8 and torch.all(starts + widths <= 64)
    rows = (y[:, 0, :, 0] == 0).float()
    assert rows.sum(1).max() <= 16 and len({tuple(r.tolist()) for r in rows}) > 100  # iid per item
