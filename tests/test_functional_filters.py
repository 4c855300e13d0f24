"""fastai_audio.functional.filters: the Butterworth magnitude response and zero-phase FFT filtering."""

import math

import numpy as np
import pytest
import torch
from conftest import sine

from fastai_audio import ParameterError
from fastai_audio.functional import butterworth_gain, fft_filter
from fastai_audio.functional.filters import int_power


@pytest.mark.parametrize("order", [1, 2, 4, 8])
def test_gain_is_minus_3_db_at_the_cutoff_and_falls_6_db_an_octave_per_order(order):
    freqs = torch.tensor([1000.0, 8000.0, 125.0])
    low = butterworth_gain(freqs, torch.tensor([1000.0]), order)[0]
    high = butterworth_gain(freqs, torch.tensor([1000.0]), order, highpass=True)[0]
    for gain in (low[0], high[0]):
        assert 20 * math.log10(gain) == pytest.approx(-3.0103, abs=1e-3)
    # three octaves past the cutoff: about -18 dB per order (exactly 10 log10(1 + 8^(2 order)))
    assert 20 * math.log10(low[1]) == pytest.approx(-10 * math.log10(1 + 8 ** (2 * order)), abs=1e-3)
    assert 20 * math.log10(high[2]) == pytest.approx(-10 * math.log10(1 + 8 ** (2 * order)), abs=1e-3)


def test_a_nan_cutoff_passes_everything():
    freqs = torch.linspace(0, 8000, 50)
    gains = butterworth_gain(freqs, torch.tensor([math.nan, math.nan]), 4, highpass=False)
    assert torch.equal(gains, torch.ones(2, 50))
    assert torch.equal(butterworth_gain(freqs[1:], torch.tensor([math.nan]), 4, highpass=True), torch.ones(1, 49))


def test_int_power_equals_pow():
    x = torch.rand(100) * 3
    for n in (1, 2, 3, 7, 8, 13):
        torch.testing.assert_close(int_power(x, n), x.pow(n), rtol=1e-5, atol=0)


def test_fft_filter_keeps_the_passband_and_cuts_the_stopband():
    sr = 16000
    x = torch.from_numpy(np.stack([sine(200, sr, 1.0), sine(6000, sr, 1.0)]))  # (2, 1, sr)
    h = butterworth_gain(torch.fft.rfftfreq(sr, 1 / sr), torch.tensor([1000.0, 1000.0]), 8)
    y = fft_filter(x, h)
    ratio = (y.pow(2).mean(dim=(1, 2)) / x.pow(2).mean(dim=(1, 2))).tolist()
    assert ratio[0] == pytest.approx(1.0, abs=1e-3) and ratio[1] < 1e-10
    assert y.dtype == x.dtype and y.shape == x.shape
    assert torch.allclose(fft_filter(x.double(), torch.ones(2, sr // 2 + 1)), x.double(), atol=1e-6)


def test_a_bad_order_is_named():
    with pytest.raises(ParameterError, match="order must be a positive integer, got 0"):
        butterworth_gain(torch.ones(3), torch.ones(1), 0)
