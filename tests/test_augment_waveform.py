"""fastai_audio.transforms.augment.waveform: gain, shift and polarity give exact results for pinned draws."""

from __future__ import annotations

import pytest
import torch
from conftest import noise_batch

from fastai_audio.transforms import (
    PolarityInversion,
    RandomGain,
    RandomShift,
)


def test_gain_of_minus_6_db_halves_the_amplitude():
    x = noise_batch(2)
    y = RandomGain().apply(x.as_subclass(torch.Tensor), gain_db=torch.tensor([-6.0, 0.0]))
    torch.testing.assert_close(y[0], x[0].as_subclass(torch.Tensor) * 10 ** (-6 / 20))
    assert 10 ** (-6 / 20) == pytest.approx(0.5, abs=0.002)
    torch.testing.assert_close(y[1], x[1].as_subclass(torch.Tensor))


@pytest.mark.parametrize("shift", [160, -37, 0])
def test_shift_moves_the_waveform_by_the_right_number_of_samples(shift):
    x = noise_batch(1).as_subclass(torch.Tensor)
    rolled = RandomShift(rollover=True).apply(x, shift=torch.tensor([shift]))
    torch.testing.assert_close(rolled, torch.roll(x, shift, dims=-1))
    filled = RandomShift(rollover=False).apply(x, shift=torch.tensor([shift]))
    if shift > 0:
        assert torch.all(filled[..., :shift] == 0) and torch.equal(filled[..., shift:], x[..., :-shift])
    elif shift < 0:
        assert torch.all(filled[..., shift:] == 0) and torch.equal(filled[..., :shift], x[..., -shift:])
    else:
        assert torch.equal(filled, x)
    from fastai_audio.functional.crop import _shift_gather  # the GPU path: one gather

    batch = noise_batch(3).as_subclass(torch.Tensor)
    shifts = torch.tensor([shift, 5, -2])
    for rollover in (True, False):
        torch.testing.assert_close(
            _shift_gather(batch, shifts, rollover), RandomShift(rollover=rollover).apply(batch, shift=shifts)
        )


def test_polarity_inversion_flips_the_chosen_items():
    x = noise_batch(2).as_subclass(torch.Tensor)
    y = PolarityInversion().apply(x, sign=torch.tensor([-1.0, 1.0]))
    assert torch.equal(y[0], -x[0]) and torch.equal(y[1], x[1])
