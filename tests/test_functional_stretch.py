"""fastai_audio.functional.stretch: phase-vocoder time stretch and pitch shift, FFT resampling."""

import pytest
import torch
from conftest import peak_frequency, sine

from fastai_audio import ParameterError
from fastai_audio.functional import fft_resample, pitch_shift, time_stretch
from fastai_audio.functional.stretch import fit_length

SR = 16000


@pytest.mark.parametrize("rate", [0.8, 1.25, 2.0])
def test_time_stretch_changes_the_length_not_the_pitch(rate):
    x = torch.from_numpy(sine(440, SR, 1.0))[None]  # (1, 1, SR)
    y = time_stretch(x, rate)
    assert y.shape == (1, 1, round(SR / rate)) and y.dtype == torch.float32
    middle = y[0, 0, y.shape[-1] // 4 : 3 * y.shape[-1] // 4]
    assert peak_frequency(middle, SR) == pytest.approx(440, abs=SR / len(middle) + 1)


@pytest.mark.parametrize("semitones", [-3.0, 2.0, 12.0])
def test_pitch_shift_moves_the_pitch_and_keeps_the_length(semitones):
    x = torch.from_numpy(sine(330, SR, 1.0)).double()[None]
    y = pitch_shift(x, semitones)
    assert y.shape == x.shape and y.dtype == torch.float64
    assert peak_frequency(y[0, 0, 2000:-2000], SR) == pytest.approx(330 * 2 ** (semitones / 12), rel=0.01)


def test_fft_resample_is_band_limited_and_scales_frequencies():
    x = torch.from_numpy(sine(1000, SR, 0.5))[0]  # 8000 samples
    y = fft_resample(x, 4000)  # the same content in half the samples: at a fixed rate every frequency doubles
    assert y.shape == (4000,) and peak_frequency(y, SR) == pytest.approx(2000, abs=SR / 4000)
    torch.testing.assert_close(fft_resample(x, 8000), x, rtol=0, atol=1e-5)  # the same length: unchanged


def test_fit_length_cuts_or_pads_the_end():
    x = torch.arange(5.0)
    assert fit_length(x, 3).tolist() == [0, 1, 2] and fit_length(x, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]


def test_bad_rates_are_named():
    with pytest.raises(ParameterError, match="rate must be a positive number, got 0"):
        time_stretch(torch.zeros(1, 1000), 0)
