"""fastai_audio.functional.noise: coloured noise, looping excerpts, running sums, RMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SR

from fastai_audio.functional import colored_noise


def test_noise_colours_have_their_slopes():
    def low_over_high(exponent):

        n = colored_noise((8, 1, SR), float(exponent), "cpu", torch.Generator().manual_seed(0))
        p = torch.fft.rfft(n).abs().pow(2).mean(dim=(0, 1))
        return float(p[100:200].mean() / p[1600:3200].mean())  # 100-200 Hz over 1.6-3.2 kHz: 4 octaves apart

    assert low_over_high(0) == pytest.approx(1, rel=0.2)  # white: flat
    assert low_over_high(1) == pytest.approx(16, rel=0.25)  # pink: -3 dB per octave
    assert low_over_high(2) == pytest.approx(256, rel=0.25)  # brown: -6 dB per octave


def test_excerpts_slice_on_cpu_as_the_gather_does_elsewhere():
    from fastai_audio.functional import excerpts as _excerpts

    audio = torch.arange(100.0)
    clip_start, clip_length = torch.tensor([0, 10, 10, 60]), torch.tensor([10, 50, 50, 7])
    offset = torch.tensor([3, 0, 45, 6])
    got = _excerpts(audio, clip_start, clip_length, offset, 23)  # 23 > 7 and 10: loops over short clips twice
    pos = (offset[:, None] + torch.arange(23)) % clip_length[:, None]
    assert torch.equal(got, audio[clip_start[:, None] + pos])
    assert got[3, :8].tolist() == [66, 60, 61, 62, 63, 64, 65, 66]


def test_looped_sums_from_running_sums_match_summing_the_excerpt():
    from fastai_audio.functional.noise import looped_sum as _looped_sum

    signal = np.random.default_rng(0).standard_normal(10)
    cumsum = np.concatenate([[0.0], np.cumsum(signal)])
    for pos, length in [(0, 10), (3, 4), (3, 7), (3, 8), (9, 1), (9, 2), (0, 25), (6, 27), (4, 0)]:
        expected = signal[(pos + np.arange(length)) % 10].sum()  # (3, 7) ends exactly at the period's end
        assert _looped_sum(cumsum, pos, length, 10) == pytest.approx(expected, abs=1e-12), (pos, length)


def test_colored_noise_has_unit_rms_per_item_and_follows_the_generator():
    from fastai_audio.functional import colored_noise

    a = colored_noise((3, 2, 4000), torch.tensor([0.0, 1.0, 2.0]), generator=torch.Generator().manual_seed(1))
    b = colored_noise((3, 2, 4000), torch.tensor([0.0, 1.0, 2.0]), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (3, 2, 4000)
    torch.testing.assert_close(a.pow(2).mean(dim=(1, 2)), torch.ones(3))
    assert a[1:].mean(dim=-1).abs().max() < 1e-5  # coloured noise has no DC


def test_rms_over_the_real_samples_of_a_padded_batch():
    from fastai_audio.functional import rms
    from fastai_audio.functional.noise import length_mask

    x = torch.ones(2, 2, 10)
    x[1, :, 4:] = 0  # padding
    torch.testing.assert_close(rms(x), torch.tensor([1.0, 0.4**0.5]))
    mask = length_mask(x, torch.tensor([10, 4]))
    torch.testing.assert_close(rms(x, mask), torch.ones(2))
    assert length_mask(x, None) is None
