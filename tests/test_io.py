import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import peak_frequency, sine, write

from fastai_audio import AudioFileError, ParameterError, audio_info, load_audio, resample, save_audio
from fastai_audio.io import _resampler

# (format extension, soundfile subtype, bits of the PCM grid or None for float/lossy)
LOSSLESS = [
    ("wav", "PCM_U8", 8),
    ("wav", "PCM_16", 16),
    ("wav", "PCM_24", 24),
    ("wav", "PCM_32", 32),
    ("wav", "FLOAT", None),
    ("wav", "DOUBLE", None),
    ("flac", "PCM_16", 16),
    ("flac", "PCM_24", 24),
]


def on_grid(wav: np.ndarray, bits: int | None) -> np.ndarray:
    """Quantise to the format's own grid so that encoding is exact and any decoding error shows."""
    if bits is None:
        return wav
    step = 2.0 ** -(bits - 1)
    return (np.round(wav / step) * step).astype(np.float32)


@pytest.mark.parametrize("ext,subtype,bits", LOSSLESS)
@pytest.mark.parametrize("sample_rate", [8000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_lossless_matrix_decodes_exactly(tmp_path, ext, subtype, bits, sample_rate, channels):
    ref = on_grid(sine(440, sample_rate, 0.25, channels), bits)
    path = write(tmp_path / f"x.{ext}", ref, sample_rate, subtype)
    wav, sr = load_audio(path)
    assert sr == sample_rate
    assert wav.dtype == torch.float32 and wav.shape == ref.shape
    np.testing.assert_allclose(wav.numpy(), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "fmt,subtype,dtype",
    [
        ("WAV", "PCM_16", "int16"),
        ("WAV", "PCM_32", "int32"),
        ("AIFF", "PCM_16", "int16"),
        ("AIFF", "PCM_32", "int32"),
        ("W64", "PCM_16", "int16"),
        ("FLAC", "PCM_16", "int16"),
        ("WAV", "PCM_24", "int32"),
        ("WAV", "PCM_U8", "int16"),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_integer_pcm_decodes_to_soundfiles_float_values_bit_for_bit(tmp_path, fmt, subtype, dtype, channels):
    # 16- and 32-bit PCM is read as integers and scaled by torch (faster than libsndfile's own float conversion):
    # every sample, the extremes included, must equal what soundfile.read(dtype='float32') gives, for whole files
    # and spans alike.
    info = np.iinfo(dtype)
    samples = np.random.default_rng(0).integers(info.min, info.max, (4000, channels), dtype=dtype, endpoint=True)
    samples[:4, 0] = [info.min, info.max, 0, -1]
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(str(path), samples, 8000, subtype=subtype, format=fmt)
    whole, _ = load_audio(path)
    span, _ = load_audio(path, offset=0.1, duration=0.2)
    ref = sf.read(str(path), dtype="float32", always_2d=True)[0].T
    assert whole.dtype == torch.float32 and whole.is_contiguous() and span.is_contiguous()
    assert torch.equal(whole, torch.from_numpy(ref.copy()))
    assert torch.equal(span, torch.from_numpy(ref[:, 800:2400].copy()))


@pytest.mark.parametrize("ext,subtype", [("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_lossy_formats_decode_with_the_right_pitch(tmp_path, ext, subtype):
    if ext.upper() not in sf.available_formats():
        pytest.skip(f"this libsndfile has no {ext}")
    ref = sine(1000, 44100, 1.0, channels=2)
    path = write(tmp_path / f"x.{ext}", ref, 44100, subtype)
    wav, sr = load_audio(path)
    assert sr == 44100 and wav.shape[0] == 2 and wav.dtype == torch.float32
    # Codecs add encoder delay and padding: the length agrees within two MP3 frames, the pitch exactly.
    assert abs(wav.shape[-1] - ref.shape[-1]) <= 2 * 1152
    assert abs(peak_frequency(wav[0], sr) - 1000) <= 2
    assert 0.3 < wav[0].abs().max() < 0.7  # amplitude 0.5 survives the codec


@pytest.mark.parametrize("orig,new", [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000)])
def test_resampling_keeps_pitch_and_length(tmp_path, orig, new):
    path = write(tmp_path / "x.wav", sine(1000, orig, 1.0), orig, "FLOAT")
    wav, sr = load_audio(path, sample_rate=new)
    assert sr == new and wav.shape == (1, new)
    assert abs(peak_frequency(wav[0], new) - 1000) <= 1.0
    assert abs(wav.abs().max().item() - 0.5) < 0.02


def test_resample_caches_kernels_per_rate_pair():
    _resampler.cache_clear()
    x = torch.randn(1, 4410)
    resample(x, 44100, 16000)
    resample(x, 44100, 16000)
    info = _resampler.cache_info()
    assert info.misses == 1 and info.hits == 1


def test_resample_is_identity_at_the_same_rate():
    x = torch.randn(2, 100)
    assert resample(x, 16000, 16000) is x


def test_offset_and_duration_read_only_the_span(tmp_path, frames_read):
    ref = np.linspace(-1, 1, 16000, dtype=np.float32)[None]
    path = write(tmp_path / "ramp.wav", ref, 16000, "FLOAT")
    wav, _ = load_audio(path, offset=0.25, duration=0.1)
    assert frames_read == [1600]
    np.testing.assert_array_equal(wav.numpy(), ref[:, 4000:5600])


def test_mono_is_the_channel_mean(tmp_path):
    ref = sine(440, 16000, 0.1, channels=3)
    wav, _ = load_audio(write(tmp_path / "x.wav", ref, 16000, "FLOAT"), mono=True)
    np.testing.assert_allclose(wav.numpy(), ref.mean(0, keepdims=True), atol=1e-7)


def test_audio_info_reads_the_header_without_decoding(tmp_path, monkeypatch):
    path = write(tmp_path / "x.flac", sine(440, 22050, 0.5, channels=2), 22050, "PCM_24")

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio_info decoded samples")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    monkeypatch.setattr(sf, "read", no_decoding)
    info = audio_info(path)
    assert (info.sample_rate, info.frames, info.channels) == (22050, 11025, 2)
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")
    assert info.duration == pytest.approx(0.5)


def test_save_audio_round_trips(tmp_path):
    x = torch.from_numpy(sine(440, 16000, 0.2, channels=2))
    path = save_audio(tmp_path / "y.wav", x, 16000, subtype="FLOAT")
    back, sr = load_audio(path)
    assert sr == 16000
    torch.testing.assert_close(back, x)


def test_save_audio_rejects_nan(tmp_path):
    x = torch.zeros(1, 10)
    x[0, 3] = float("nan")
    with pytest.raises(ParameterError, match="NaN"):
        save_audio(tmp_path / "nan.wav", x, 16000)
    assert not (tmp_path / "nan.wav").exists()


def test_offset_past_the_end_names_the_file(tmp_path):
    path = write(tmp_path / "short.wav", sine(440, 8000, 0.5), 8000)
    with pytest.raises(AudioFileError, match="short.wav.*past the end"):
        load_audio(path, offset=2.0)


@pytest.mark.parametrize("kwargs", [{"offset": -1.0}, {"duration": 0}, {"sample_rate": 0}, {"sample_rate": 1.5}])
def test_bad_load_parameters(tmp_path, kwargs):
    path = write(tmp_path / "x.wav", sine(440, 8000, 0.5), 8000)
    with pytest.raises(ParameterError):
        load_audio(path, **kwargs)
