"""fastai_audio.functional.specaugment: band masks and time warping."""

import torch

from fastai_audio.functional import band_mask, time_warp
from fastai_audio.functional.specaugment import frame_counts


def test_band_mask_marks_each_items_bands():
    m = band_mask(10, torch.tensor([[0, 7], [3, 3], [5, 0]]), torch.tensor([[2, 5], [0, 2], [0, 0]]))
    assert m.int().tolist() == [[1, 1, 0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0, 0, 0], [0] * 10]


def test_time_warp_moves_the_centre_keeps_the_ends_and_the_padding():
    frames = 40
    ramp = torch.arange(float(frames)).expand(3, 2, 4, frames).clone()  # value = frame index
    centre, shift = torch.tensor([20, 20, 10]), torch.tensor([5.0, 0.0, -3.0])
    lengths = torch.tensor([40, 40, 30])
    y = time_warp(ramp, centre, shift, lengths)
    assert y.shape == ramp.shape
    assert float(y[0, 0, 0, 25]) == 20.0 and float(y[2, 0, 0, 7]) == 10.0  # the centre lands where it was moved
    assert torch.equal(y[1], ramp[1])  # no shift: untouched
    for i, last in enumerate((39, 39, 29)):
        assert float(y[i, 0, 0, 0]) == 0.0 and float(y[i, 0, 0, last]) == float(last)  # the ends stay
    assert torch.equal(y[2, ..., 30:], ramp[2, ..., 30:])  # the padding past an item's frames is left alone
    assert bool((y[0, 0, 0].diff() >= 0).all())  # still in order: a warp, not a shuffle
    assert torch.equal(y[:, 0], y[:, 1])  # every channel and row warps alike


def test_frame_counts():
    x = torch.zeros(3, 1, 2, 50)
    assert frame_counts(x).tolist() == [50, 50, 50]
    assert frame_counts(x, torch.tensor([10, 60, 50])).tolist() == [10, 50, 50]
