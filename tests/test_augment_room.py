"""Recording conditions: synthetic room impulse responses, FFT convolution, RandomReverb, the EQ curve and RandomEQ."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from conftest import SR, noise_batch, tones

from fastai_audio import ParameterError, TensorAudio
from fastai_audio.functional import eq_gain_db, fft_convolve, synthetic_rir
from fastai_audio.transforms import MelSpectrogram, RandomEQ, RandomReverb, audio_aug_tfms


def test_a_synthetic_rir_has_its_direct_path_drr_predelay_and_decay():
    rt60 = torch.tensor([0.3, 0.8])
    rir = synthetic_rir(
        rt60, SR, SR, drr_db=torch.tensor([0.0, 10.0]), predelay=0.01, generator=torch.Generator().manual_seed(0)
    )
    assert rir.shape == (2, SR) and torch.equal(rir[:, 0], torch.ones(2))
    assert torch.count_nonzero(rir[:, 1:160]) == 0  # 10 ms of pre-delay: silence after the direct path
    tail_db = 10 * torch.log10(rir[:, 1:].pow(2).sum(1))
    assert tail_db.tolist() == pytest.approx([0.0, -10.0], abs=1e-4)
    # the energy envelope falls about 60 dB per rt60: compare two 50 ms windows rt60 / 2 apart
    for i, t in enumerate(rt60.tolist()):
        a, b = int(0.05 * SR), int((0.05 + t / 2) * SR)
        drop = 10 * math.log10(rir[i, a : a + 800].pow(2).sum() / rir[i, b : b + 800].pow(2).sum())
        assert 20 < drop < 45, (t, drop)  # 30 dB for the low band; the damped highs fall faster
    with pytest.raises(ValueError, match="rt60"):
        synthetic_rir(torch.tensor([0.0]), SR, 100)


def test_fft_convolve_is_numpys_convolution_cut_to_the_clip():
    x, k = torch.randn(3, 2, 500, dtype=torch.float64), torch.randn(3, 120, dtype=torch.float64)
    n_fft = 500 + 120 - 1
    y = fft_convolve(x, torch.fft.rfft(k.float(), n=n_fft), n_fft)
    for b in range(3):
        for c in range(2):
            want = np.convolve(x[b, c].numpy(), k[b].numpy())[:500]
            assert np.allclose(y[b, c].numpy(), want, atol=1e-4)
    assert y.dtype == torch.float64


def test_random_reverb_adds_a_tail_at_the_drawn_ratio():
    impulse = torch.zeros(4, 1, SR)
    impulse[:, :, 0] = 1.0
    tfm = RandomReverb(0.3, 0.6, min_drr_db=3.0, max_drr_db=9.0, sample_rate=SR, p=1.0, seed=0)
    y = tfm(impulse, split_idx=0)
    params = tfm.last_params
    assert y.shape == impulse.shape and torch.equal(y[:, 0, 0], torch.ones(4))  # the dry path is kept
    tail_db = 10 * torch.log10(y[:, 0, 1:].pow(2).sum(1))
    assert tail_db.tolist() == pytest.approx((-params["drr_db"]).tolist(), abs=0.01)
    assert bool(((params["drr_db"] >= 3) & (params["drr_db"] <= 9)).all())
    # the clip's length is kept; the tail of the end is cut, not wrapped around to the start
    late = torch.zeros(1, 1, SR)
    late[..., -1] = 1.0
    out = tfm.apply(late, rir=torch.tensor([0]), drr_db=torch.tensor([0.0]), sample_rate=SR)
    assert out[..., :-1].abs().max() < 1e-6  # (FFT round-off only)


def test_random_reverb_leaves_clips_alone_with_probability_and_on_validation():
    x = TensorAudio(noise_batch(8), sample_rate=SR)
    tfm = RandomReverb(p=0.5, seed=1)
    y = tfm(x, split_idx=0)
    changed = (y - x).abs().amax(dim=(1, 2)) > 1e-6
    assert 0 < int(changed.sum()) < 8 and changed.tolist() == [i in tfm.last_params["index"].tolist() for i in range(8)]
    assert torch.equal(tfm(x, split_idx=1), x)


def test_random_reverb_is_reproducible_picklable_and_drops_its_bank():
    x = TensorAudio(noise_batch(4), sample_rate=SR)
    a, b = RandomReverb(p=1.0, seed=3), RandomReverb(p=1.0, seed=3)
    assert torch.equal(a(x, split_idx=0), b(x, split_idx=0))
    state = pickle.loads(pickle.dumps(a))
    assert state._banks == {} and state._spectra == {} and len(pickle.dumps(a)) < 5000
    assert torch.equal(RandomReverb(p=1.0, seed=3)(x, split_idx=0), state(x, split_idx=0))


def test_a_reverb_darkens_and_lengthens_a_tone():
    x = TensorAudio(tones([1000.0], seconds=1.0), sample_rate=SR)
    x[..., SR // 2 :] = 0  # a half-second tone, then silence
    y = RandomReverb(0.8, 0.8, min_drr_db=0.0, max_drr_db=0.0, p=1.0, seed=0).apply(
        x.as_subclass(torch.Tensor), rir=torch.tensor([0]), drr_db=torch.tensor([0.0]), sample_rate=SR
    )
    after = y[0, 0, SR // 2 + 800 : SR // 2 + 4000].pow(2).mean()
    assert after > 1e-4 and x[0, 0, SR // 2 :].abs().max() == 0  # the room rings on after the tone stops


def test_the_eq_curve_tilts_and_bells():
    f = torch.tensor([125.0, 250.0, 1000.0, 4000.0])
    flat = eq_gain_db(f, torch.zeros(1), torch.empty(1, 0), torch.empty(1, 0), torch.empty(1, 0))
    assert torch.equal(flat, torch.zeros(1, 4))
    tilt = eq_gain_db(f, torch.tensor([-3.0]), torch.empty(1, 0), torch.empty(1, 0), torch.empty(1, 0))
    assert tilt[0].tolist() == pytest.approx([9.0, 6.0, 0.0, -6.0])
    bell = eq_gain_db(f, torch.zeros(1), torch.tensor([[1000.0]]), torch.tensor([[6.0]]), torch.tensor([[1.0]]))
    assert bell[0, 2] == pytest.approx(6.0) and bell[0, 1] == pytest.approx(6.0 * math.exp(-2.0))


@pytest.mark.parametrize("domain", ["waveform", "spectrogram"])
def test_random_eq_brightens_or_darkens_with_its_tilt(domain):
    x = TensorAudio((tones([250.0]) + tones([4000.0])).as_subclass(torch.Tensor), sample_rate=SR)
    mel = MelSpectrogram(SR, 1024, 256, n_mels=64)
    tfm = RandomEQ(bands=0, sample_rate=SR, p=1.0, domain=domain)
    inp = x if domain == "waveform" else mel(x)
    out = {}
    for tilt in (-3.0, 3.0):
        rows = {} if domain == "waveform" else dict(zip(("freqs", "power"), tfm._rows(inp, inp.__dict__)))
        y = tfm.apply(
            inp.as_subclass(torch.Tensor),
            tilt=torch.tensor([tilt]),
            centers=torch.empty(1, 0),
            gains=torch.empty(1, 0),
            widths=torch.empty(1, 0),
            sample_rate=SR,
            **rows,
        )
        spec = mel(TensorAudio(y, sample_rate=SR)) if domain == "waveform" else y
        rows = spec.as_subclass(torch.Tensor)[0, 0].mean(-1)
        out[tilt] = 10 * math.log10(rows[40:].sum() / rows[:20].sum())  # high bands over low bands (dB)
    # 4 octaves between the tones at 3 dB per octave, each way: about 24 dB from dark to bright
    assert out[3.0] - out[-3.0] == pytest.approx(24.0, abs=3.0)


def test_random_eq_draws_in_its_ranges_and_identity_is_exact():
    spec = MelSpectrogram(SR, 1024, 256, n_mels=64)(TensorAudio(noise_batch(16), sample_rate=SR))
    tfm = RandomEQ(max_tilt_db=2.0, bands=3, max_gain_db=4.0, p=0.5, seed=0)
    y = tfm(spec, split_idx=0)
    p = tfm.last_params
    assert p["centers"].shape == (16, 3) and bool((p["tilt"].abs() <= 2).all()) and bool((p["gains"].abs() <= 4).all())
    kept = (p["tilt"] == 0) & (p["gains"] == 0).all(1)
    assert 0 < int(kept.sum()) < 16
    assert torch.equal(y[kept], spec[kept]) and not torch.equal(y[~kept], spec[~kept])
    with pytest.raises(ParameterError, match="bands"):
        RandomEQ(bands=-1)


def test_the_recipe_can_add_the_room_and_the_eq():
    names = [type(t).__name__ for t in audio_aug_tfms(reverb=True, eq=True)]
    assert "RandomReverb" in names and "RandomEQ" in names
    off = [type(t).__name__ for t in audio_aug_tfms(reverb=False, eq=False)]
    assert "RandomReverb" not in off and "RandomEQ" not in off
