"""Resampling with memory bounded whatever the rate pair (fastai_audio.rates): a header with an odd rate must not
cost gigabytes, and what comes out must still be the recording, at the exact length."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from conftest import peak_frequency, sine

from fastai_audio.errors import ParameterError
from fastai_audio.io import _resampler, resample
from fastai_audio.rates import MAX_KERNEL, kernel_size, resampled_length, resampling_pair
from fastai_audio.runtime import _sinc_kernel, resample_np


@pytest.mark.parametrize(
    "orig, new",
    [
        (44100, 16000),
        (48000, 16000),
        (8000, 22050),
        (16000, 16001),
        (65587, 16000),
        (16000, 768000),
        (767999, 8000),
        (12345, 54321),
    ],
)
def test_every_rate_pair_resamples_in_bounded_memory_to_the_exact_length(orig, new):
    o, n = resampling_pair(orig, new)
    assert kernel_size(o, n) <= MAX_KERNEL and abs((n / o) / (new / orig) - 1) < 1e-3
    x = torch.from_numpy(sine(440.0, orig, 0.25))
    start = time.perf_counter()
    y = resample(x, orig, new)
    assert y.shape == (1, resampled_length(x.shape[-1], orig, new)) and torch.isfinite(y).all()
    assert time.perf_counter() - start < 30  # (a bound on the kernel's size, not a benchmark: 4 GB took minutes)
    if new >= 2000:  # the tone is still a 440 Hz tone, whatever ratio carried it there
        assert abs(peak_frequency(y[0].numpy(), new) - 440.0) < 8.0
    np.testing.assert_allclose(resample_np(x.numpy(), orig, new), y.numpy(), atol=2e-6)


def test_the_pairs_recordings_have_are_resampled_exactly_as_torchaudio_does():
    import torchaudio

    x = torch.from_numpy(sine(1000.0, 44100, 0.5))
    want = torchaudio.functional.resample(x, 44100, 16000)
    assert resampling_pair(44100, 16000) == (441, 160)
    torch.testing.assert_close(resample(x, 44100, 16000), want, rtol=0, atol=0)


def test_an_impossible_ratio_is_an_error_and_the_kernel_caches_stay_small():
    with pytest.raises(ParameterError, match="cannot resample from 1 Hz to 768000 Hz within bounded memory"):
        resample(torch.zeros(1, 10), 1, 768000)
    assert _resampler.cache_info().maxsize == _sinc_kernel.cache_info().maxsize == 16
    assert 16 * MAX_KERNEL * 4 <= 2**27  # at most 128 MB of kernels per cache
