"""fastai_audio.functional.crop: crop, pad, pad_batch and shift along time."""

import pytest
import torch

from fastai_audio import ParameterError
from fastai_audio.functional import crop, pad, pad_batch


def test_crop_takes_the_window():
    assert crop(torch.arange(10.0), 4, offset=3).tolist() == [3, 4, 5, 6]
    with pytest.raises(ParameterError, match="cannot crop 4 samples at offset 8"):
        crop(torch.arange(10.0), 4, offset=8)


def test_pad_modes():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert pad(x, 5).tolist() == [1, 2, 3, 0, 0]
    assert pad(x, 7, "repeat").tolist() == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ParameterError, match="pad mode"):
        pad(x, 7, "reflect")


def test_pad_batch_records_true_lengths():
    b, n = pad_batch([torch.ones(2, 3), torch.ones(2, 5)])
    assert b.shape == (2, 2, 5) and n.tolist() == [3, 5]
    assert b[0, :, 3:].abs().sum() == 0


def test_shift_moves_each_item_and_the_gather_agrees():
    from fastai_audio.functional import shift
    from fastai_audio.functional.crop import _shift_gather

    x = torch.arange(6.0).expand(3, 2, 6).clone()
    samples = torch.tensor([2, -1, 8])
    rolled = shift(x, samples, rollover=True)
    assert rolled[0, 0].tolist() == [4, 5, 0, 1, 2, 3] and rolled[1, 1].tolist() == [1, 2, 3, 4, 5, 0]
    assert rolled[2, 0].tolist() == [4, 5, 0, 1, 2, 3]  # 8 samples round a 6-sample clip is 2
    filled = shift(x, samples, rollover=False)
    assert filled[0, 0].tolist() == [0, 0, 0, 1, 2, 3] and filled[1, 0].tolist() == [1, 2, 3, 4, 5, 0]
    assert filled[2].abs().sum() == 0  # shifted past its end: silence
    for rollover in (True, False):  # the path off the CPU (one gather) gives the same
        assert torch.equal(_shift_gather(x, samples, rollover), shift(x, samples, rollover))
