"""fastai_audio.functional.spectral: parity with librosa and torchaudio in float64, batching, gradients, errors."""

from __future__ import annotations

import contextlib
import warnings

import librosa
import numpy as np
import pytest
import scipy.signal
import torch
import torchaudio

from fastai_audio.errors import ParameterError
from fastai_audio.functional import EmptyFilterWarning, amplitude_to_db, deltas, mel_filterbank, mfcc, stft_power

SR = 16000
N_FFTS = (512, 1024, 2048)
HOPS = (128, 256, 512)
N_MELS = (40, 64, 128)
BANDS = ((0.0, None), (20.0, 8000.0), (300.0, 4000.0))
MEL_SCALES = ("slaney", "htk")
NORMS = ("slaney", None)
# numpy.pad names of torch's pad modes, for librosa.stft
NP_PAD = {"reflect": "reflect", "constant": "constant", "replicate": "edge"}

# Float64 tolerances. Our float64 results agree with librosa to ~1e-12 relative (measured), so rtol=1e-5 leaves a wide
# margin while still catching any wrong window, frame offset, filter edge or scale. An atol is needed only for entries
# that are ~0 in exact arithmetic (mel weights at the foot of a triangle, STFT bins far below the peak), where round-off
# of order 1e-16 * max makes the relative error meaningless; 1e-10 * max is far below any real value.
RTOL = 1e-5
ATOL_REL = 1e-10


def _signal(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A float64 linear chirp 50 Hz -> 7 kHz plus white noise, at 16 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return 0.5 * scipy.signal.chirp(t, f0=50.0, t1=seconds, f1=7000.0) + 0.05 * rng.standard_normal(t.size)


Y = _signal()


def _close(ours, theirs, rtol=RTOL, atol_rel=ATOL_REL):
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    theirs = theirs.detach().cpu().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol_rel * float(np.abs(theirs).max()))


@contextlib.contextmanager
def _default_dtype(dtype):
    """torchaudio builds its filterbanks, windows and DCT in the default dtype: float64 for a float64 comparison."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _mel_kwargs(n_fft, n_mels, band, mel_scale, norm):
    f_min, f_max = band
    ours = dict(f_min=f_min, f_max=f_max, mel_scale=mel_scale, norm=norm, dtype=torch.float64)
    theirs = dict(
        sr=SR,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=f_min,
        fmax=SR / 2 if f_max is None else f_max,  # our None means Nyquist: checked against the number
        htk=mel_scale == "htk",
        norm=norm,
        dtype=np.float64,
    )
    return ours, theirs


# ------------------------------------------------------------------------------------------------ STFT vs librosa


@pytest.mark.parametrize("center,pad_mode", [(True, "reflect"), (True, "constant"), (False, "reflect")])
@pytest.mark.parametrize("hop_length", HOPS)
@pytest.mark.parametrize("n_fft", N_FFTS)
def test_stft_power_matches_librosa(n_fft, hop_length, center, pad_mode):
    theirs = (
        np.abs(
            librosa.stft(
                Y,
                n_fft=n_fft,
                hop_length=hop_length,
                win_length=n_fft,
                window="hann",
                center=center,
                dtype=np.complex128,
                pad_mode=NP_PAD[pad_mode],
            )
        )
        ** 2.0
    )
    ours = stft_power(
        torch.from_numpy(Y),
        n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=None,
        center=center,
        pad_mode=pad_mode,
        power=2.0,
    )
    assert ours.dtype == torch.float64
    _close(ours, theirs)


@pytest.mark.parametrize(
    "n_fft,win_length,pad_mode,power",
    [
        (512, 400, "reflect", 2.0),  # window shorter than the FFT: zero-padded in the middle
        (1024, 800, "constant", 2.0),
        (1024, 1024, "replicate", 2.0),
        (1024, 1024, "circular", 2.0),
        (1024, 1024, "reflect", 1.0),  # magnitude
        (512, 512, "reflect", 0.5),
        (2048, 1500, "reflect", 3.0),
    ],
)
def test_stft_power_window_pad_and_power_match_librosa(n_fft, win_length, pad_mode, power):
    if pad_mode == "circular":  # librosa.stft refuses 'wrap': pad with numpy, then frame without centering
        y, center, np_pad = np.pad(Y, n_fft // 2, mode="wrap"), False, "constant"
    else:
        y, center, np_pad = Y, True, NP_PAD[pad_mode]
    S = librosa.stft(
        y,
        n_fft=n_fft,
        hop_length=256,
        win_length=win_length,
        window="hann",
        center=center,
        dtype=np.complex128,
        pad_mode=np_pad,
    )
    ours = stft_power(
        torch.from_numpy(Y),
        n_fft,
        hop_length=256,
        win_length=win_length,
        window=None,
        center=True,
        pad_mode=pad_mode,
        power=power,
    )
    _close(ours, np.abs(S) ** power)


def test_stft_power_custom_window_matches_librosa():
    window = scipy.signal.get_window("hamming", 600, fftbins=True)
    S = librosa.stft(
        Y,
        n_fft=1024,
        hop_length=160,
        win_length=600,
        window=window,
        center=True,
        dtype=np.complex128,
        pad_mode="reflect",
    )
    ours = stft_power(
        torch.from_numpy(Y),
        1024,
        hop_length=160,
        win_length=600,
        window=torch.from_numpy(window),
        center=True,
        pad_mode="reflect",
        power=2.0,
    )
    _close(ours, np.abs(S) ** 2)


def test_stft_power_defaults_are_documented_ones():
    x = torch.from_numpy(Y)
    explicit = stft_power(
        x,
        1024,
        hop_length=256,
        win_length=1024,
        window=torch.hann_window(1024, periodic=True, dtype=torch.float64),
        center=True,
        pad_mode="reflect",
        power=2.0,
    )
    torch.testing.assert_close(stft_power(x), explicit, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------- mel vs librosa


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("mel_scale", MEL_SCALES)
@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("n_mels", N_MELS)
@pytest.mark.parametrize("n_fft", N_FFTS)
def test_mel_filterbank_matches_librosa(n_fft, n_mels, band, mel_scale, norm):
    ours_kw, theirs_kw = _mel_kwargs(n_fft, n_mels, band, mel_scale, norm)
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        theirs = librosa.filters.mel(**theirs_kw)
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        ours = mel_filterbank(SR, n_fft, n_mels, device="cpu", **ours_kw)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    _close(ours, theirs)
    # we warn exactly when librosa does
    assert any("Empty filters" in str(w.message) for w in theirs_warned) == any(
        issubclass(w.category, EmptyFilterWarning) for w in ours_warned
    )


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("mel_scale", MEL_SCALES)
def test_mel_filterbank_other_sample_rates_match_librosa(sample_rate, mel_scale):
    theirs = librosa.filters.mel(
        sr=sample_rate,
        n_fft=2048,
        n_mels=80,
        fmin=30.0,
        fmax=sample_rate / 2,
        htk=mel_scale == "htk",
        norm="slaney",
        dtype=np.float64,
    )
    ours = mel_filterbank(
        sample_rate,
        2048,
        80,
        f_min=30.0,
        f_max=None,
        mel_scale=mel_scale,
        norm="slaney",
        dtype=torch.float64,
        device=None,
    )
    _close(ours, theirs)


def _melspec_pair(n_fft, hop_length, n_mels, band, mel_scale, norm, center, power=2.0):
    ours_kw, theirs_kw = _mel_kwargs(n_fft, n_mels, band, mel_scale, norm)
    theirs_kw.pop("n_fft")
    theirs = librosa.feature.melspectrogram(
        y=Y,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window="hann",
        center=center,
        pad_mode="reflect",
        power=power,
        **theirs_kw,
    )
    fb = mel_filterbank(SR, n_fft, n_mels, **ours_kw)
    spec = stft_power(
        torch.from_numpy(Y),
        n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=None,
        center=center,
        pad_mode="reflect",
        power=power,
    )
    return fb @ spec, theirs


@pytest.mark.filterwarnings("ignore:Empty filters")
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("mel_scale", MEL_SCALES)
@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("n_mels", N_MELS)
@pytest.mark.parametrize("n_fft", N_FFTS)
def test_melspectrogram_matches_librosa(n_fft, n_mels, band, mel_scale, norm):
    ours, theirs = _melspec_pair(n_fft, 256, n_mels, band, mel_scale, norm, center=True)
    _close(ours, theirs)


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("hop_length", HOPS)
def test_melspectrogram_hop_center_power_match_librosa(hop_length, center, power):
    ours, theirs = _melspec_pair(1024, hop_length, 64, (20.0, 8000.0), "slaney", "slaney", center, power)
    _close(ours, theirs)


# -------------------------------------------------------------------------------------- mel vs torchaudio


@pytest.mark.filterwarnings("ignore:At least one mel filterbank has all zero values")
@pytest.mark.filterwarnings("ignore:Empty filters")
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("mel_scale", MEL_SCALES)
@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("n_mels", N_MELS)
@pytest.mark.parametrize("n_fft", N_FFTS)
def test_mel_filterbank_matches_torchaudio(n_fft, n_mels, band, mel_scale, norm):
    f_min, f_max = band
    with _default_dtype(torch.float64):
        theirs = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=f_min,
            f_max=SR / 2 if f_max is None else f_max,
            n_mels=n_mels,
            sample_rate=SR,
            norm=norm,
            mel_scale=mel_scale,
        )
    ours = mel_filterbank(
        SR, n_fft, n_mels, f_min=f_min, f_max=f_max, mel_scale=mel_scale, norm=norm, dtype=torch.float64
    )
    _close(ours, theirs.T)  # torchaudio's orientation is (n_freqs, n_mels)


@pytest.mark.parametrize(
    "n_fft,hop_length,n_mels,f_min,f_max,mel_scale,norm,center,pad_mode,power",
    [
        (1024, 256, 64, 0.0, 8000.0, "htk", None, True, "reflect", 2.0),
        (512, 128, 40, 20.0, 8000.0, "slaney", "slaney", True, "constant", 2.0),
        (2048, 512, 128, 300.0, 4000.0, "slaney", None, False, "reflect", 1.0),
    ],
)
def test_melspectrogram_matches_torchaudio(
    n_fft, hop_length, n_mels, f_min, f_max, mel_scale, norm, center, pad_mode, power
):
    x = torch.from_numpy(np.stack([Y, _signal(seed=1)]))
    with _default_dtype(torch.float64):
        transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=SR,
            n_fft=n_fft,
            win_length=n_fft,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            pad=0,
            n_mels=n_mels,
            window_fn=torch.hann_window,
            power=power,
            normalized=False,
            wkwargs={"periodic": True},
            center=center,
            pad_mode=pad_mode,
            norm=norm,
            mel_scale=mel_scale,
        )
    theirs = transform(x)
    fb = mel_filterbank(
        SR, n_fft, n_mels, f_min=f_min, f_max=f_max, mel_scale=mel_scale, norm=norm, dtype=torch.float64
    )
    spec = stft_power(
        x, n_fft, hop_length=hop_length, win_length=n_fft, window=None, center=center, pad_mode=pad_mode, power=power
    )
    _close(fb @ spec, theirs)


# ---------------------------------------------------------------------------------------------------- decibels


@pytest.fixture(scope="module")
def power_mel() -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=Y,
        sr=SR,
        n_fft=1024,
        hop_length=256,
        win_length=1024,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=64,
        fmin=0.0,
        fmax=SR / 2,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )


# dB values are ~1e2 in size, and float64 log10 agrees to ~1e-14: compare absolutely, to 1e-9 dB
DB_ATOL = 1e-9


@pytest.mark.parametrize("amin", [1e-10, 1e-4])
@pytest.mark.parametrize("top_db", [None, 40.0, 80.0])
def test_power_to_db_matches_librosa(power_mel, top_db, amin):
    theirs = librosa.power_to_db(power_mel, ref=np.max, amin=amin, top_db=top_db)
    ours = amplitude_to_db(torch.from_numpy(power_mel), stype="power", ref="max", amin=amin, top_db=top_db)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=DB_ATOL)


@pytest.mark.parametrize("ref", ["max", 0.5])
@pytest.mark.parametrize("top_db", [None, 60.0])
def test_magnitude_to_db_matches_librosa(power_mel, ref, top_db):
    magnitude = np.sqrt(power_mel)
    theirs = librosa.amplitude_to_db(magnitude, ref=np.max if ref == "max" else ref, amin=1e-5, top_db=top_db)
    ours = amplitude_to_db(torch.from_numpy(magnitude), stype="magnitude", ref=ref, amin=1e-5, top_db=top_db)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=DB_ATOL)


@pytest.mark.parametrize("top_db", [None, 80.0, 20.0])
@pytest.mark.parametrize("stype", ["power", "magnitude"])
def test_amplitude_to_db_matches_torchaudio(power_mel, stype, top_db):
    # a batch of items at very different levels: torchaudio clamps each item (last 3 dims) on its own max
    item = torch.from_numpy(power_mel)
    x = torch.stack([torch.stack([item, 0.1 * item]), torch.stack([1e-6 * item, 1e-7 * item])])  # (2, 2, mel, t)
    theirs = torchaudio.transforms.AmplitudeToDB(stype=stype, top_db=top_db)(x)
    ours = amplitude_to_db(x, stype=stype, ref=1.0, amin=1e-10, top_db=top_db)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0, atol=DB_ATOL)


@pytest.mark.parametrize("ref", ["max", 1.0])
def test_amplitude_to_db_is_per_item_not_per_batch(power_mel, ref):
    loud = torch.from_numpy(power_mel)[None]  # (channel=1, mel, time): one item
    quiet = 1e-9 * torch.from_numpy(_signal(seed=3)[: power_mel.size].reshape(power_mel.shape) ** 2)[None]
    batch = amplitude_to_db(torch.stack([loud, quiet]), stype="power", ref=ref, amin=1e-10, top_db=80.0)
    alone = [amplitude_to_db(item, stype="power", ref=ref, amin=1e-10, top_db=80.0) for item in (loud, quiet)]
    torch.testing.assert_close(batch, torch.stack(alone), rtol=0, atol=0)
    # across the batch the quiet item would have been clamped flat at the loud item's floor
    assert batch[1].max() - batch[1].min() > 1.0


def test_amplitude_to_db_three_dims_is_one_multichannel_item(power_mel):
    x = torch.from_numpy(np.stack([power_mel, 1e-12 * power_mel]))  # (channel, mel, time)
    db = amplitude_to_db(x, stype="power", ref="max", amin=1e-10, top_db=80.0)
    assert float(db[0].max()) == 0.0
    assert torch.all(db[1] == -80.0)  # the quiet channel sits 120 dB down: clamped to the item's floor


# -------------------------------------------------------------------------------------------------- MFCC, deltas


@pytest.mark.parametrize("dct_norm", ["ortho", None])
@pytest.mark.parametrize("n_mfcc", [1, 13, 20, 64])
def test_mfcc_matches_librosa(power_mel, n_mfcc, dct_norm):
    log_mel = librosa.power_to_db(power_mel, ref=np.max, amin=1e-10, top_db=80.0)
    theirs = librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc, dct_type=2, norm=dct_norm, lifter=0)
    ours = mfcc(torch.from_numpy(log_mel), n_mfcc, dct_norm=dct_norm)
    assert ours.shape == (n_mfcc, log_mel.shape[1])
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=RTOL, atol=DB_ATOL * log_mel.shape[0])


@pytest.mark.parametrize("dct_norm", ["ortho", None])
def test_mfcc_matches_torchaudio_create_dct(power_mel, dct_norm):
    log_mel = torch.from_numpy(librosa.power_to_db(power_mel, ref=np.max, amin=1e-10, top_db=80.0))
    with _default_dtype(torch.float64):
        dct = torchaudio.functional.create_dct(n_mfcc=20, n_mels=64, norm=dct_norm)  # (n_mels, n_mfcc)
    theirs = (log_mel.T @ dct).T
    np.testing.assert_allclose(mfcc(log_mel, 20, dct_norm=dct_norm).numpy(), theirs.numpy(), rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("width", [3, 5, 9, 11, 63])
def test_deltas_match_librosa_including_edges(power_mel, width):
    features = librosa.feature.mfcc(
        S=librosa.power_to_db(power_mel, ref=np.max, amin=1e-10, top_db=80.0), n_mfcc=13, dct_type=2, norm="ortho"
    )
    features = features[:, :63]  # width 63 = every frame is an edge frame
    theirs = librosa.feature.delta(features, width=width, order=1, axis=-1, mode="interp")
    ours = deltas(torch.from_numpy(features), width)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=RTOL, atol=1e-9)


def test_deltas_of_a_ramp_are_its_slope_everywhere():
    ramp = 3.0 * torch.arange(20.0) - 7.0
    torch.testing.assert_close(deltas(ramp[None, None], 7), torch.full((1, 1, 20), 3.0))


# ------------------------------------------------------------------------------------------------ batches, grads


def _log_mel_pipeline(x, fb):
    spec = stft_power(x, 512, hop_length=128, win_length=512, window=None, center=True, pad_mode="reflect", power=2.0)
    return amplitude_to_db(fb @ spec, stype="power", ref="max", amin=1e-10, top_db=80.0)


def test_batch_equals_items_one_by_one():
    x = torch.from_numpy(np.stack([np.stack([_signal(0.5, seed=2 * b + c) for c in range(2)]) for b in range(3)]))
    x[1] *= 1e-4  # a quiet item: the dB clamp must stay per item
    fb = mel_filterbank(SR, 512, 40, f_min=0.0, f_max=None, mel_scale="slaney", norm="slaney", dtype=torch.float64)
    batch = _log_mel_pipeline(x, fb)  # (3, 2, 40, frames)
    assert batch.shape == (3, 2, 40, 1 + x.shape[-1] // 128)
    alone = torch.stack([_log_mel_pipeline(item, fb) for item in x])
    torch.testing.assert_close(batch, alone, rtol=1e-12, atol=1e-9)
    feats = mfcc(batch, 13, dct_norm="ortho")
    torch.testing.assert_close(deltas(feats, 9), torch.stack([deltas(f, 9) for f in feats]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(4000,), (3, 4000), (2, 3, 4000), (2, 1, 3, 4000)])
def test_stft_power_keeps_leading_dims(shape):
    x = torch.randn(shape, dtype=torch.float64)
    out = stft_power(x, 256, hop_length=64, win_length=256, window=None, center=True, pad_mode="reflect", power=2.0)
    assert out.shape == (*shape[:-1], 129, 1 + 4000 // 64)
    flat = stft_power(x.reshape(-1, 4000), 256, hop_length=64, win_length=256, center=True, pad_mode="reflect")
    torch.testing.assert_close(out.reshape(-1, 129, out.shape[-1]), flat, rtol=0, atol=0)


def test_gradients_flow_through_the_whole_pipeline():
    x = torch.randn(2, 1, 8000, requires_grad=True)
    window = torch.hann_window(512, periodic=True).requires_grad_()  # a trainable window
    fb = mel_filterbank(SR, 512, 40, f_min=0.0, f_max=None, mel_scale="slaney", norm="slaney")
    spec = stft_power(x, 512, hop_length=128, win_length=512, window=window, center=True, pad_mode="reflect")
    feats = deltas(mfcc(amplitude_to_db(fb @ spec, stype="power", ref="max", amin=1e-10, top_db=80.0), 13), 9)
    feats.square().mean().backward()
    for grad in (x.grad, window.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("power", [1.0, 2.0, 1.5])
def test_magnitude_gradient_is_finite_on_silence(power):
    x = torch.zeros(1, 4000)
    x[0, :1000] = torch.randn(1000)  # a clip padded with zeros, as pad_batch makes
    x.requires_grad_()
    spec = stft_power(x, 256, hop_length=64, win_length=256, center=True, pad_mode="constant", power=power)
    spec.sum().backward()
    assert torch.isfinite(x.grad).all()


# -------------------------------------------------------------------------------------------- mixed precision


def test_stft_power_under_autocast_is_float32_and_exact():
    x = torch.randn(2, 16000)
    reference = stft_power(x, 1024, hop_length=256)
    fb = mel_filterbank(SR, 1024, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = stft_power(x, 1024, hop_length=256)
        db = amplitude_to_db(fb @ spec, stype="power", ref="max", amin=1e-10, top_db=80.0)
    assert spec.dtype == torch.float32 and db.dtype == torch.float32
    torch.testing.assert_close(spec, reference, rtol=0, atol=0)


def test_mfcc_and_deltas_under_autocast_stay_float32():
    log_mel = 80 * torch.rand(2, 64, 50) - 80
    with torch.autocast("cpu", dtype=torch.bfloat16):
        coefficients = mfcc(log_mel, 20, dct_norm="ortho")  # a matmul: autocast would make it bfloat16
        slopes = deltas(coefficients, 9)
    assert coefficients.dtype == slopes.dtype == torch.float32
    torch.testing.assert_close(coefficients, mfcc(log_mel, 20, dct_norm="ortho"), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_is_computed_in_float32(dtype):
    x = torch.randn(2, 8000).to(dtype)
    spec = stft_power(x, 512, hop_length=128)
    assert spec.dtype == torch.float32
    torch.testing.assert_close(spec, stft_power(x.float(), 512, hop_length=128), rtol=0, atol=0)
    db = amplitude_to_db(spec.to(dtype), stype="power", ref="max", amin=1e-10, top_db=None)
    assert db.dtype == torch.float32 and torch.isfinite(db).all()  # 1e-10 is below float16's range


def test_float64_stays_float64():
    x = torch.randn(4000, dtype=torch.float64)
    spec = stft_power(x, 256, hop_length=64)
    db = amplitude_to_db(spec)
    assert spec.dtype == db.dtype == mfcc(db, 13).dtype == deltas(db).dtype == torch.float64


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_equals_cpu():
    x = torch.from_numpy(np.stack([Y, _signal(seed=1)]))
    fb = mel_filterbank(SR, 1024, 64, f_min=20.0, f_max=8000.0, mel_scale="slaney", norm="slaney", dtype=torch.float64)

    def features(x, fb):
        spec = stft_power(x, 1024, hop_length=256, win_length=1024, center=True, pad_mode="reflect", power=2.0)
        return deltas(mfcc(amplitude_to_db(fb @ spec, stype="power", ref="max", amin=1e-10, top_db=80.0), 20), 9)

    torch.testing.assert_close(features(x.cuda(), fb.cuda()).cpu(), features(x, fb), rtol=1e-9, atol=1e-9)
    with torch.autocast("cuda", dtype=torch.float16):
        spec = stft_power(x.float().cuda(), 1024, hop_length=256)
    assert spec.dtype == torch.float32 and spec.is_cuda


# ----------------------------------------------------------------------------------------------------- the cache


def test_mel_filterbank_returns_a_fresh_tensor():
    kwargs = dict(f_min=0.0, f_max=None, mel_scale="slaney", norm="slaney", dtype=torch.float64, device="cpu")
    first = mel_filterbank(SR, 512, 40, **kwargs)
    first.zero_()
    assert mel_filterbank(SR, 512, 40, **kwargs).abs().sum() > 0


# -------------------------------------------------------------------------------------------------------- errors


def test_empty_filter_warning():
    with pytest.warns(EmptyFilterWarning, match="Empty filters detected in mel frequency basis"):
        mel_filterbank(SR, 512, 256, f_min=0.0, f_max=None, mel_scale="slaney", norm="slaney")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mel_filterbank(SR, 512, 40)  # a sensible filterbank warns nothing, also when cached


X = torch.zeros(2, 1000)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_fft=0), "n_fft must be a positive integer, got 0"),
        (dict(n_fft=-512), "got -512"),
        (dict(n_fft=256, hop_length=0), "hop_length must be a positive integer, got 0"),
        (dict(n_fft=256, hop_length=-3), "got -3"),
        (dict(n_fft=2, win_length=None, hop_length=None), "default hop_length.*win_length=2"),
        (dict(n_fft=256, win_length=512), "win_length=512 is larger than n_fft=256"),
        (
            dict(n_fft=2048, center=False),
            "n_fft=2048 is larger than the 1000-sample clip with center=False; use center=True or a smaller n_fft",
        ),
        (dict(n_fft=256, pad_mode="wrap"), r"pad_mode must be one of .*'reflect'.*got 'wrap'"),
        (dict(n_fft=256, window=torch.ones(200)), r"length win_length=256, got \(200,\)"),
        (dict(n_fft=256, win_length=200, window=torch.ones(256)), r"length win_length=200, got \(256,\)"),
        (dict(n_fft=2048, center=True, pad_mode="reflect"), "more than n_fft // 2 = 1024 samples, the clip has 1000"),
        (dict(n_fft=256, power=0), "power must be a positive number, got 0"),
        (dict(n_fft=256, power=-2.0), "got -2.0"),
    ],
)
def test_stft_power_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        stft_power(X, **kwargs)


def test_stft_power_bad_input():
    with pytest.raises(ParameterError, match="torch.int16"):
        stft_power(torch.zeros(1000, dtype=torch.int16), 256)
    with pytest.raises(ParameterError, match="ndarray"):
        stft_power(np.zeros(1000), 256)


def test_short_clips_work_with_constant_padding():
    out = stft_power(X, 2048, hop_length=512, center=True, pad_mode="constant")
    assert out.shape == (2, 1025, 1 + 1000 // 512)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(f_max=9000.0), r"f_max=9000.0 is above the Nyquist frequency sample_rate / 2 = 8000 Hz"),
        (dict(f_min=-1.0), "f_min must be a frequency >= 0 Hz, got -1.0"),
        (dict(f_min=4000.0, f_max=4000.0), "f_min=4000.0 must be below f_max=4000.0"),
        (dict(f_min=5000.0, f_max=300.0), "f_min=5000.0 must be below f_max=300.0"),
        (dict(n_mels=0), "n_mels must be a positive integer, got 0"),
        (dict(mel_scale="mel"), r"mel_scale must be one of \['htk', 'slaney'\], got 'mel'"),
        (dict(norm=1), "norm must be 'slaney' or None, got 1"),
        (dict(norm="ortho"), "got 'ortho'"),
        (dict(sample_rate=0), "sample_rate must be a positive integer, got 0"),
        (dict(n_fft=0), "n_fft must be a positive integer, got 0"),
    ],
)
def test_mel_filterbank_bad_parameters(kwargs, match):
    args = dict(sample_rate=SR, n_fft=512, n_mels=40) | kwargs
    with pytest.raises(ParameterError, match=match):
        mel_filterbank(args.pop("sample_rate"), args.pop("n_fft"), args.pop("n_mels"), **args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(stype="energy"), r"stype must be one of \['magnitude', 'power'\], got 'energy'"),
        (dict(ref="mean"), "ref must be 'max' or a positive number .*got 'mean'"),
        (dict(ref=0.0), "got 0.0"),
        (dict(ref=-1.0), "got -1.0"),
        (dict(amin=0.0), "amin must be a positive number, got 0.0"),
        (dict(top_db=-10.0), r"top_db must be None or a number >= 0 \(dB\), got -10.0"),
    ],
)
def test_amplitude_to_db_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        amplitude_to_db(torch.rand(1, 40, 10), **kwargs)


@pytest.mark.parametrize(
    "n_mfcc,dct_norm,match",
    [
        (41, "ortho", "n_mfcc=41 is more than the 40 mel bands; use n_mfcc <= 40"),
        (0, "ortho", "n_mfcc must be a positive integer, got 0"),
        (13, "backward", "dct_norm must be 'ortho' or None, got 'backward'"),
    ],
)
def test_mfcc_bad_parameters(n_mfcc, dct_norm, match):
    with pytest.raises(ParameterError, match=match):
        mfcc(torch.rand(2, 40, 10), n_mfcc, dct_norm=dct_norm)


@pytest.mark.parametrize(
    "width,frames,match",
    [
        (4, 20, "width must be an odd integer >= 3, got 4"),
        (1, 20, "got 1"),
        (9.0, 20, r"got 9\.0"),
        (9, 7, "width=9 is longer than the 7 frames along the last dimension; use an odd width <= 7"),
    ],
)
def test_deltas_bad_parameters(width, frames, match):
    with pytest.raises(ParameterError, match=match):
        deltas(torch.rand(13, frames), width)


@pytest.mark.parametrize("mel_scale", ["slaney", "htk"])
def test_hz_to_mel_and_back_match_librosa(mel_scale):
    from fastai_audio.functional import hz_to_mel, mel_to_hz

    hz = np.array([0.0, 20.0, 440.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
    mels = hz_to_mel(hz, mel_scale)
    assert mels.dtype == torch.float64
    np.testing.assert_allclose(mels.numpy(), librosa.hz_to_mel(hz, htk=mel_scale == "htk"), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(mel_to_hz(mels, mel_scale).numpy(), hz, rtol=1e-12, atol=1e-9)
    assert float(hz_to_mel(1000.0, mel_scale)) == pytest.approx(librosa.hz_to_mel(1000.0, htk=mel_scale == "htk"))
    with pytest.raises(ParameterError, match="mel_scale must be one of"):
        hz_to_mel(hz, "mel")
