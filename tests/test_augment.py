"""Augmentations: exact results for pinned draws, per-item draws, training set only, seeds, pickling, export."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from conftest import peak_frequency, sine, write
from fastai.callback.mixup import MixUp
from fastai.learner import load_learner
from fastai.losses import CrossEntropyLossFlat
from fastai.torch_core import set_seed
from fasttransform import Pipeline
from torchvision.models import resnet18

from fastai_audio import AudioFileError, ParameterError, TensorAudio, TensorSpectrogram
from fastai_audio.data import AudioDataLoaders
from fastai_audio.functional import colored_noise
from fastai_audio.learner import audio_learner
from fastai_audio.transforms import (
    AddBackground,
    AddNoise,
    AmplitudeToDB,
    AudioCutMix,
    FrequencyMask,
    MelSpectrogram,
    PitchShift,
    PolarityInversion,
    RandomGain,
    RandomHighpass,
    RandomLowpass,
    RandomShift,
    SpecNormalize,
    TimeMask,
    TimeStretch,
    TimeWarp,
    audio_aug_tfms,
)

SR = 16000


def audio(n=4, seconds=1.0, seed=0, dtype=torch.float32) -> TensorAudio:
    g = torch.Generator().manual_seed(seed)
    x = (0.1 * torch.randn(n, 1, int(seconds * SR), generator=g)).to(dtype).as_subclass(TensorAudio)
    x.sample_rate = SR  # (the TensorAudio constructor would make float64 float32, as fastai's tensors do)
    return x


def tones(freqs, seconds=1.0, sr=SR) -> TensorAudio:
    return TensorAudio(torch.stack([torch.from_numpy(sine(f, sr, seconds)) for f in freqs]), sample_rate=sr)


def snr_db(clean, noisy) -> np.ndarray:
    clean, added = clean.double(), (noisy - clean).double()
    return (10 * torch.log10(clean.pow(2).sum(dim=(1, 2)) / added.pow(2).sum(dim=(1, 2)))).numpy()


WAVE_AUGS = [
    lambda: RandomGain(p=1.0),
    lambda: RandomShift(p=1.0),
    lambda: PolarityInversion(p=1.0),
    lambda: AddNoise(color="random", p=1.0),
    lambda: RandomLowpass(p=1.0),
    lambda: RandomHighpass(p=1.0),
    lambda: PitchShift(p=1.0),
    lambda: TimeStretch(p=1.0),
]


# -- pinned draws give exact results -------------------------------------------------------------------------------


def test_gain_of_minus_6_db_halves_the_amplitude():
    x = audio(2)
    y = RandomGain().apply(x.as_subclass(torch.Tensor), gain_db=torch.tensor([-6.0, 0.0]))
    torch.testing.assert_close(y[0], x[0].as_subclass(torch.Tensor) * 10 ** (-6 / 20))
    assert 10 ** (-6 / 20) == pytest.approx(0.5, abs=0.002)
    torch.testing.assert_close(y[1], x[1].as_subclass(torch.Tensor))


@pytest.mark.parametrize("shift", [160, -37, 0])
def test_shift_moves_the_waveform_by_the_right_number_of_samples(shift):
    x = audio(1).as_subclass(torch.Tensor)
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

    batch = audio(3).as_subclass(torch.Tensor)
    shifts = torch.tensor([shift, 5, -2])
    for rollover in (True, False):
        torch.testing.assert_close(_shift_gather(batch, shifts, rollover),
                                   RandomShift(rollover=rollover).apply(batch, shift=shifts))  # fmt: skip


def test_polarity_inversion_flips_the_chosen_items():
    x = audio(2).as_subclass(torch.Tensor)
    y = PolarityInversion().apply(x, sign=torch.tensor([-1.0, 1.0]))
    assert torch.equal(y[0], -x[0]) and torch.equal(y[1], x[1])


@pytest.mark.parametrize("color", ["white", "pink", "brown", "random"])
def test_noise_at_10_db_snr_measures_10_db(color):
    x = tones([220, 440, 880, 1760])
    tfm = AddNoise(10, 10, color=color, p=1.0, seed=0)
    y = tfm(x, split_idx=0)
    np.testing.assert_allclose(snr_db(x, y), 10.0, atol=0.5)
    pinned = tfm.apply(x.as_subclass(torch.Tensor), **tfm.last_params)
    torch.testing.assert_close(pinned, y.as_subclass(torch.Tensor))  # draw, then a deterministic apply


def test_noise_colours_have_their_slopes():
    def low_over_high(exponent):
        from fastai_audio.functional import colored_noise

        n = colored_noise((8, 1, SR), float(exponent), "cpu", torch.Generator().manual_seed(0))
        p = torch.fft.rfft(n).abs().pow(2).mean(dim=(0, 1))
        return float(p[100:200].mean() / p[1600:3200].mean())  # 100-200 Hz over 1.6-3.2 kHz: 4 octaves apart

    assert low_over_high(0) == pytest.approx(1, rel=0.2)  # white: flat
    assert low_over_high(1) == pytest.approx(16, rel=0.25)  # pink: -3 dB per octave
    assert low_over_high(2) == pytest.approx(256, rel=0.25)  # brown: -6 dB per octave


def test_noise_excerpts_of_the_bank_loop_and_differ_per_clip_and_channel():
    tfm = AddNoise(10, 10, color="random", p=1.0, seed=0, bank_samples=3000)  # clips longer than the bank: loops
    x = TensorAudio(torch.from_numpy(np.stack([sine(440, SR, 0.5, channels=2)] * 4)), sample_rate=SR)
    y = tfm(x, split_idx=0)
    np.testing.assert_allclose(snr_db(x, y), 10.0, atol=0.01)
    noise = tfm.noise(tfm.last_params["row"], tfm.last_params["offset"], x.shape[-1])
    bank = tfm.bank("cpu")
    assert bank.shape == (3, 3000) and torch.allclose(bank.pow(2).mean(dim=1), torch.ones(3))
    flat = noise.reshape(8, -1)
    assert torch.allclose(flat[:, :3000], flat[:, 3000:6000], atol=1e-6)  # periodic: the excerpt loops seamlessly
    corr = torch.corrcoef(flat[:, :3000])
    assert (corr - torch.eye(8)).abs().max() < 0.9  # each clip and channel has its own excerpt
    assert len(pickle.dumps(tfm)) < 10_000  # the bank is not pickled


def test_excerpts_slice_on_cpu_as_the_gather_does_elsewhere():
    from fastai_audio.functional import excerpts as _excerpts

    audio = torch.arange(100.0)
    clip_start, clip_length = torch.tensor([0, 10, 10, 60]), torch.tensor([10, 50, 50, 7])
    offset = torch.tensor([3, 0, 45, 6])
    got = _excerpts(audio, clip_start, clip_length, offset, 23)  # 23 > 7 and 10: loops over short clips twice
    pos = (offset[:, None] + torch.arange(23)) % clip_length[:, None]
    assert torch.equal(got, audio[clip_start[:, None] + pos])
    assert got[3, :8].tolist() == [66, 60, 61, 62, 63, 64, 65, 66]


def test_noise_per_clip_on_a_cpu_equals_the_batched_path():
    # CPU batches go clip by clip, other devices through one gather: same draws, same output (stereo, padding, a
    # silent clip, clips left alone, excerpts that wrap around the bank)
    x = TensorAudio(torch.randn(6, 2, 5000, generator=torch.Generator().manual_seed(0)), sample_rate=SR)
    x[2] = 0
    x[4, :, 3000:] = 0
    lengths = torch.tensor([5000, 5000, 5000, 5000, 3000, 5000])
    tfm = AddNoise(0, 20, color="random", p=0.7, seed=3, bank_samples=4096)
    params = tfm.draw(x.as_subclass(torch.Tensor), {"lengths": lengths})
    params["snr_db"][[1, 5]] = math.inf  # two clips left alone
    batched = tfm._apply_batched(x.as_subclass(torch.Tensor), **params)
    per_clip = tfm._apply_per_clip(x.as_subclass(torch.Tensor), **params)
    torch.testing.assert_close(per_clip, batched, rtol=1e-4, atol=1e-5)  # float32 sums in one, float64 in the other
    assert torch.equal(per_clip[2], x[2]) and torch.all(per_clip[4, :, 3000:] == 0)


def test_looped_sums_from_running_sums_match_summing_the_excerpt():
    from fastai_audio.functional.noise import looped_sum as _looped_sum

    signal = np.random.default_rng(0).standard_normal(10)
    cumsum = np.concatenate([[0.0], np.cumsum(signal)])
    for pos, length in [(0, 10), (3, 4), (3, 7), (3, 8), (9, 1), (9, 2), (0, 25), (6, 27), (4, 0)]:
        expected = signal[(pos + np.arange(length)) % 10].sum()  # (3, 7) ends exactly at the period's end
        assert _looped_sum(cumsum, pos, length, 10) == pytest.approx(expected, abs=1e-12), (pos, length)


def test_noise_leaves_padding_and_silence_alone():
    x = tones([440, 440, 440])
    x[1, :, SR // 2 :] = 0  # a half-length clip, zero-padded in a variable-length batch
    x[2] = 0  # a silent clip
    x.lengths = torch.tensor([SR, SR // 2, SR])
    y = AddNoise(0, 0, p=1.0, seed=1)(x, split_idx=0)
    assert torch.all(y[1, :, SR // 2 :] == 0) and not torch.equal(y[1, :, : SR // 2], x[1, :, : SR // 2])
    np.testing.assert_allclose(snr_db(x[1:2, :, : SR // 2], y[1:2, :, : SR // 2]), 0.0, atol=0.01)
    assert torch.all(y[2] == 0)  # a silent clip has no power to scale the noise to
    assert y.lengths.tolist() == [SR, SR // 2, SR]


def test_background_is_mixed_at_the_drawn_snr(tmp_path):
    write(tmp_path / "bg" / "hum.wav", sine(100, 8000, 0.3), 8000)  # other rate, shorter than the clips: loops
    write(tmp_path / "bg" / "sub" / "whistle.flac", sine(3000, 22050, 2.0, channels=2), 22050)
    x = tones([440, 440, 440, 440])
    tfm = AddBackground(tmp_path / "bg", 5, 5, p=1.0, seed=0)
    y = tfm(x, split_idx=0)
    np.testing.assert_allclose(snr_db(x, y), 5.0, atol=0.01)
    added = (y - x).as_subclass(torch.Tensor)
    peaks = {round(peak_frequency(a[0], SR), -2) for a in added}
    assert peaks <= {100.0, 3000.0}  # each clip got one of the two backgrounds, resampled to 16 kHz
    audio_bank, starts, lengths = tfm.bank(SR, "cpu")
    assert sorted(lengths.tolist()) == [4800, 32000]
    assert len(pickle.dumps(tfm)) < 10_000  # the decoded backgrounds are not pickled
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioFileError, match="holds no audio files"):
        AddBackground(tmp_path / "empty")


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


def band_db(spec) -> torch.Tensor:
    return 10 * torch.log10(spec.as_subclass(torch.Tensor).double().mean(dim=-1) + 1e-12)[:, 0]  # (B, freq)


@pytest.mark.parametrize("highpass, cutoff", [(False, 1500.0), (False, 3000.0), (False, 7000.0), (True, 100.0),
                                              (True, 400.0)])  # fmt: skip
def test_a_filter_on_the_spectrogram_matches_filtering_the_waveform(highpass, cutoff):
    cls = RandomHighpass if highpass else RandomLowpass
    x = TensorAudio(colored_noise((2, 1, 2 * SR), torch.tensor(1.0), "cpu", torch.Generator().manual_seed(0)),
                    sample_rate=SR)  # fmt: skip
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
    tfms = Pipeline([SpecNormalize(), AmplitudeToDB(), low, MelSpectrogram(sample_rate=SR, n_mels=32)])
    assert [type(t).__name__ for t in tfms.fs] == ["MelSpectrogram", "RandomLowpass", "AmplitudeToDB", "SpecNormalize"]
    spec = MelSpectrogram(sample_rate=SR, n_mels=32)(audio(3))
    y = low(spec, split_idx=0)
    assert isinstance(y, TensorSpectrogram) and y.scale == "mel" and y.dtype == spec.dtype
    gain = low.gain(low.last_params["cutoff"], torch.from_numpy(spec.frequencies()).float())
    expected = spec.as_subclass(torch.Tensor) * gain[:, None, :, None] ** 2  # a power spectrogram: |H| squared
    torch.testing.assert_close(y.as_subclass(torch.Tensor), expected)
    x = audio(2)  # no spectrogram in the pipeline: the waveform is filtered on its FFT
    y = low(x, split_idx=0)
    assert isinstance(y, TensorAudio) and y.shape == x.shape
    expected = RandomLowpass(sample_rate=SR).apply(x.as_subclass(torch.Tensor), cutoff=low.last_params["cutoff"])
    torch.testing.assert_close(y.as_subclass(torch.Tensor), expected)
    with pytest.raises(ParameterError, match="before AmplitudeToDB"):
        low(AmplitudeToDB()(spec), split_idx=0)
    with pytest.raises(ParameterError, match="domain"):
        RandomLowpass(domain="mel")


@pytest.mark.parametrize("semitones", [2.0, -1.5])
def test_pitch_shift_moves_a_sine_by_the_requested_semitones(semitones):
    x = tones([440.0, 440.0])
    tfm = PitchShift(-2, 2, step=0.5)
    y = tfm.apply(x.as_subclass(torch.Tensor), value=torch.tensor([semitones, 0.0]))
    assert y.shape == x.shape
    assert peak_frequency(y[0, 0, 2000:-2000], SR) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)
    assert torch.equal(y[1], x[1].as_subclass(torch.Tensor))  # 0 semitones: untouched


def test_time_stretch_changes_duration_not_pitch():
    burst = torch.zeros(1, 1, SR)
    burst[..., : SR // 2] = torch.from_numpy(sine(440, SR, 0.5))
    x = TensorAudio(burst, sample_rate=SR)
    y = TimeStretch(step=0.05).apply(x.as_subclass(torch.Tensor), value=torch.tensor([2.0]))
    env = y[0, 0].abs()
    loud = (env > 0.1).nonzero().flatten()
    assert y.shape == x.shape and int(loud.max()) == pytest.approx(SR // 4, abs=SR // 50)  # half as long
    assert peak_frequency(y[0, 0, : SR // 4], SR) == pytest.approx(440, rel=0.02)


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
    y = TimeWarp().apply(ramp, centre=torch.tensor([50, 50, 30]), shift=torch.tensor([10.0, 0.0, -5.0]),
                         lengths=lengths)  # fmt: skip
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


# -- the rules every augmentation follows --------------------------------------------------------------------------


@pytest.mark.parametrize("make", WAVE_AUGS, ids=lambda m: type(m()).__name__)
def test_training_only_types_dtype_and_seeds(make):
    tfm = make()
    for dtype in (torch.float32, torch.float64):
        x = audio(3, 0.5, dtype=dtype)
        y = tfm(x, split_idx=0)
        assert type(y) is TensorAudio and y.sample_rate == SR and y.dtype == dtype and y.shape == x.shape
        assert not torch.equal(y, x)
        assert tfm(x, split_idx=1) is x  # validation, predict, get_preds: untouched
    a, b = make(), make()
    a.seed = b.seed = 7
    x = audio(3, 0.5)
    torch.testing.assert_close(a(x, split_idx=0), b(x, split_idx=0))  # same seed, same draws
    set_seed(3)
    first = make()(x, split_idx=0)
    set_seed(3)
    torch.testing.assert_close(make()(x, split_idx=0), first)  # seed=None follows torch's (fastai's set_seed)
    back = pickle.loads(pickle.dumps(a))
    assert back.last_params is None and back._generators == {}
    back(x, split_idx=0)


def test_p_is_the_fraction_of_clips_augmented():
    tfm = RandomGain(-6, -6, p=0.3, seed=0)
    x = audio(4000, 0.01)
    y = tfm(x, split_idx=0)
    changed = (y != x).any(dim=2).flatten()
    assert float(changed.float().mean()) == pytest.approx(0.3, abs=0.03)
    assert changed.nonzero().flatten().tolist() == tfm.last_params["index"].tolist()  # CPU: only those processed
    draws = tfm.draw(x)  # the full-batch draw (the path on a GPU): identity where not augmented
    assert float((draws["gain_db"] != 0).float().mean()) == pytest.approx(0.3, abs=0.03)
    never = RandomGain(p=0.0)
    x = audio(16, 0.1)
    assert torch.equal(never(x, split_idx=0), x)


SPEC_AUGS = [lambda: FrequencyMask(p=1.0), lambda: TimeMask(p=1.0), lambda: TimeWarp(p=1.0)]


@pytest.mark.parametrize("make", WAVE_AUGS + SPEC_AUGS, ids=lambda m: type(m()).__name__)
def test_a_batch_where_no_clip_is_chosen_passes_through(make):
    tfm = make()
    tfm.p, tfm.seed = 0.01, 0  # (CPU: the draw and the work cover only the chosen clips, here none)
    x = audio(2, 0.25)
    if isinstance(tfm, (FrequencyMask, TimeMask, TimeWarp)):
        x = MelSpectrogram(SR, n_fft=256, hop_length=64, n_mels=16)(x)
    assert torch.equal(tfm(x, split_idx=0), x)
    assert tfm.last_params.get("index", torch.zeros(0)).numel() == 0  # (Pitch, Stretch: grouped, no index)
    assert colored_noise((0, 1, 100), 1.0, "cpu").shape == (0, 1, 100)


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match=r"probability .* \[0, 1\], got 1.5"):
        AddNoise(p=1.5)
    with pytest.raises(ParameterError, match=r"gain_db: the range \(6, -6\) is empty"):
        RandomGain(6, -6)
    with pytest.raises(ParameterError, match="color"):
        AddNoise(color="purple")
    with pytest.raises(ParameterError, match="step must divide one semitone"):
        PitchShift(step=0.3)
    with pytest.raises(ParameterError, match="fraction of the clip's length"):
        RandomShift(-2, 2)


def test_state_does_not_grow_over_an_epoch():
    tfm = AddNoise(p=1.0, seed=0)
    x = audio(8, 0.5)
    tfm(x, split_idx=0)
    size = len(pickle.dumps(tfm))
    for _ in range(30):
        tfm(x, split_idx=0)
    assert len(pickle.dumps(tfm)) == size and len(tfm._generators) == 1
    assert "_meta" not in vars(tfm)  # no reference to the last batch is kept beyond its parameters


# -- in DataLoaders and learners -------------------------------------------------------------------------------------


@pytest.fixture
def aug_dls(toy_folder):
    front = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    tfms = [*audio_aug_tfms(shift=0.2, freq_masks=2, time_masks=2, p=1.0, seed=0), *front]
    return AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms)


def test_recipe_runs_around_the_front_end_on_training_batches_only(aug_dls, toy_folder):
    names = [type(t).__name__ for t in aug_dls.after_batch.fs]
    assert names.index("AddNoise") < names.index("MelSpectrogram") < names.index("SpecNormalize")
    assert names.index("MelSpectrogram") < names.index("RandomLowpass") < names.index("AmplitudeToDB")
    assert names.index("SpecNormalize") < names.index("FrequencyMask") and "TimeMask" in names
    clean_tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    clean = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=clean_tfms)
    clean.after_batch.fs[-1].mean, clean.after_batch.fs[-1].std = aug_dls.after_batch.fs[-3].mean, \
        aug_dls.after_batch.fs[-3].std  # fmt: skip
    va, vc = aug_dls.valid.one_batch()[0], clean.valid.one_batch()[0]
    torch.testing.assert_close(va, vc)  # validation batches are untouched
    xb = aug_dls.train.one_batch()[0]
    assert isinstance(xb, TensorSpectrogram) and bool((xb == 0).any())  # masks hit the training batch


def test_show_batch_shows_one_clip_with_different_draws(aug_dls):
    import matplotlib.pyplot as plt

    aug_dls.show_batch(max_n=4, unique=True)
    axes = [ax for ax in plt.gcf().axes if ax.images]
    titles = {ax.get_title() for ax in axes}
    pictures = [ax.images[0].get_array() for ax in axes]
    plt.close("all")
    assert len(axes) == 4 and len(titles) == 1  # one clip...
    assert not np.allclose(pictures[0], pictures[1])  # ...augmented differently each time


@pytest.mark.filterwarnings("ignore:load_learner` uses Python's insecure pickle:UserWarning")
def test_export_with_augmentations_predicts_clean(aug_dls, toy_folder, tmp_path):
    torch.manual_seed(0)
    learn = audio_learner(aug_dls, resnet18, pretrained=False, path=tmp_path)
    with learn.no_bar():
        learn.fit(1, 1e-3)
    clip = sorted((toy_folder / "valid" / "low").glob("*.wav"))[0]
    probs = learn.predict(clip)[2]
    torch.testing.assert_close(learn.predict(clip)[2], probs)  # no random draw at prediction
    learn.export(tmp_path / "aug.pkl")
    back = load_learner(tmp_path / "aug.pkl")
    torch.testing.assert_close(back.predict(clip)[2], probs)
    preds, _ = back.get_preds(dl=back.dls.test_dl([clip, clip]))
    torch.testing.assert_close(preds[0], probs)
    torch.testing.assert_close(preds[1], probs)
    assert any(type(t).__name__ == "AddNoise" for t in back.dls.after_batch.fs)


def test_fastai_mixup_and_audio_cutmix_train(aug_dls, tmp_path):
    torch.manual_seed(0)
    learn = audio_learner(aug_dls, resnet18, pretrained=False, path=tmp_path)
    with learn.no_bar():
        learn.fit(1, 1e-3, cbs=MixUp(0.4))
        learn.fit(1, 1e-3, cbs=AudioCutMix(1.0))
    assert np.isfinite(learn.recorder.values[-1][:2]).all()


@pytest.mark.parametrize("shape", [(6, 1, 1000), (6, 1, 32, 50)], ids=["waveforms", "spectrograms"])
def test_audio_cutmix_replaces_one_time_span_and_mixes_targets_by_its_length(shape):
    from types import SimpleNamespace

    torch.manual_seed(0)
    x = torch.arange(6.0)[:, None, None].expand(shape[0], shape[1], int(np.prod(shape[2:]))).reshape(shape).clone()
    y = torch.arange(6)
    learn = SimpleNamespace(xb=(x,), yb=(y,), x=x, y=y, loss_func=CrossEntropyLossFlat(), training=True)
    cb = AudioCutMix(1.0)
    cb.learn = learn
    cb.before_train()
    cb.before_batch()
    mixed = learn.xb[0]
    n = shape[-1]
    swapped = (mixed[:, 0].reshape(6, -1, n)[:, 0, :] != torch.arange(6.0)[:, None]).any(0)  # (time,)
    span = swapped.nonzero().flatten()
    width = 0 if len(span) == 0 else int(span[-1] - span[0] + 1)
    assert int(swapped.sum()) == width  # one contiguous span, the same for every clip
    assert float(cb.lam) == pytest.approx(1 - width / n)
    partner = mixed[:, 0].reshape(6, -1, n)[:, 0, span[0]] if width else None
    if width:
        assert torch.equal(partner, cb.yb1[0].float())  # the span comes from the clip whose label is mixed in
    loss = cb.lf(torch.randn(6, 6), y)
    assert torch.isfinite(loss)
    cb.after_train()
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("make", WAVE_AUGS, ids=lambda m: type(m()).__name__)
def test_cuda_batches_stay_on_the_gpu(make):
    x = audio(4, 0.5).cuda()
    tfm = make()
    tfm.seed = 0
    y = tfm(x, split_idx=0)
    assert y.device.type == "cuda" and y.dtype == x.dtype and y.sample_rate == SR
