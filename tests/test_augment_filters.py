"""fastai_audio.transforms.augment.filters: random low- and high-pass on the waveform and on the spectrogram."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SR, noise_batch, tones
from fasttransform import Pipeline
from torch import nn

from fastai_audio import ParameterError, TensorAudio, TensorSpectrogram
from fastai_audio.functional import colored_noise
from fastai_audio.transforms import (
    AmplitudeToDB,
    MelSpectrogram,
    RandomHighpass,
    RandomLowpass,
    SpecNormalize,
    SpectralTransform,
)


def band_db(spec) -> torch.Tensor:
    return 10 * torch.log10(spec.as_subclass(torch.Tensor).double().mean(dim=-1) + 1e-12)[:, 0]  # (B, freq)


def test_lowpass_and_highpass_keep_and_cut_the_right_tones():
    x = (tones([300]) + tones([4000])).as_subclass(torch.Tensor)
    x = TensorAudio(x, sample_rate=SR)

    def level(y, f):
        spec = torch.fft.rfft(y[0, 0].double()).abs()
        return float(spec[f] / torch.fft.rfft(x[0, 0].double()).abs()[f])  # 1 s: bin k is k Hz

    low = RandomLowpass(sample_rate=SR)
    y = low.apply(x.as_subclass(torch.Tensor), cutoff=torch.tensor([1000.0]))
    assert level(y, 300) == pytest.approx(1.0, abs=0.01) and level(y, 4000) < 0.01
    high = RandomHighpass(sample_rate=SR)
    y = high.apply(x.as_subclass(torch.Tensor), cutoff=torch.tensor([1000.0]))
    assert level(y, 4000) == pytest.approx(1.0, abs=0.01) and level(y, 300) < 0.01
    h = low.response(torch.tensor([1000.0]), SR, SR)
    assert float(h[0, 1000]) == pytest.approx(1 / math.sqrt(2), rel=1e-6)  # -3 dB at the cutoff
    steep = RandomLowpass(order=24, sample_rate=SR)  # the steepness is not the transform's place in the pipeline
    assert steep.order < MelSpectrogram.order and steep.response(torch.tensor([1000.0]), SR, SR)[0, 2000] < 1e-7
    with pytest.raises(ParameterError, match="needs the audio's rate"):
        RandomLowpass(p=1.0)(torch.randn(2, 1, 1000), split_idx=0)


@pytest.mark.parametrize(
    "highpass, cutoff", [(False, 1500.0), (False, 3000.0), (False, 7000.0), (True, 100.0), (True, 400.0)]
)
def test_a_filter_on_the_spectrogram_matches_filtering_the_waveform(highpass, cutoff):
    cls = RandomHighpass if highpass else RandomLowpass
    x = TensorAudio(
        colored_noise((2, 1, 2 * SR), torch.tensor(1.0), "cpu", torch.Generator().manual_seed(0)), sample_rate=SR
    )
    mel = MelSpectrogram(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=64, f_min=20.0, f_max=8000.0)
    cutoffs = torch.tensor([cutoff, math.nan])  # the second clip is not augmented
    wave = cls(sample_rate=SR).apply(x.as_subclass(torch.Tensor), cutoff=cutoffs)
    expected = band_db(mel(TensorAudio(wave, sample_rate=SR)))
    spec = mel(x)
    got = band_db(cls(domain="spectrogram").apply(spec, cutoff=cutoffs))
    freqs = torch.from_numpy(spec.frequencies())
    bands = freqs > 2 * cutoff if highpass else expected[0] > expected[0].max() - 60  # the bands that carry energy
    assert (got[0] - expected[0])[bands].abs().max() < 0.5  # dB
    assert torch.equal(got[1], band_db(spec)[1])  # NaN cutoff: untouched


def test_a_spectrogram_domain_filter_runs_between_the_spectrogram_and_decibels():
    low = RandomLowpass(domain="spectrogram", p=1.0, seed=0)
    steps = [SpecNormalize(), AmplitudeToDB(), low, MelSpectrogram(sample_rate=SR, n_mels=32)]
    tfms = Pipeline([SpectralTransform(t) if isinstance(t, nn.Module) else t for t in steps])
    names = [type(getattr(t, "module", t)).__name__ for t in tfms.fs]
    assert names == ["MelSpectrogram", "RandomLowpass", "AmplitudeToDB", "SpecNormalize"]
    spec = MelSpectrogram(sample_rate=SR, n_mels=32)(noise_batch(3))
    y = low(spec, split_idx=0)
    assert isinstance(y, TensorSpectrogram) and y.scale == "mel" and y.dtype == spec.dtype
    gain = low.gain(low.last_params["cutoff"], torch.from_numpy(spec.frequencies()).float())
    expected = spec.as_subclass(torch.Tensor) * gain[:, None, :, None] ** 2  # a power spectrogram: |H| squared
    torch.testing.assert_close(y.as_subclass(torch.Tensor), expected)
    x = noise_batch(2)  # no spectrogram in the pipeline: the waveform is filtered on its FFT
    y = low(x, split_idx=0)
    assert isinstance(y, TensorAudio) and y.shape == x.shape
    expected = RandomLowpass(sample_rate=SR).apply(x.as_subclass(torch.Tensor), cutoff=low.last_params["cutoff"])
    torch.testing.assert_close(y.as_subclass(torch.Tensor), expected)
    with pytest.raises(ParameterError, match="before AmplitudeToDB"):
        low(AmplitudeToDB()(spec), split_idx=0)
    with pytest.raises(ParameterError, match="domain"):
        RandomLowpass(domain="mel")
