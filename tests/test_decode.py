"""The decode core (fastai_audio.decode): one reader, one family of typed errors, whichever part of the library reads.

Each bad input below is fed to every reader the library has (the loaders' decoder, load_audio, the header read,
the whole-file check, the shards' decoder, the runtime's decoder of request bodies); each must raise the same
class of error, and the good files must read exactly as libsndfile's float decoder reads them.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest
import soundfile as sf
from conftest import sine, write

from fastai_audio.audio_config import AudioConfig, crop_offset
from fastai_audio.decode import (
    INT16_SUBTYPES,
    INT32_SUBTYPES,
    PCM_SCALE,
    decode_audio,
    open_audio,
    read_frames,
    scan_audio,
)
from fastai_audio.errors import (
    AudioFileError,
    AudioTooLongError,
    EmptyAudioError,
    ImpossibleFormatError,
    NonFiniteAudioError,
    ParameterError,
    TruncatedAudioError,
    UndecodableAudioError,
)
from fastai_audio.files import audio_info, check_audio_files
from fastai_audio.io import load_audio, read_span


def encoded(seconds=1.0, rate=16000, fmt="WAV", subtype="PCM_16", channels=1, wav=None) -> bytes:
    buf = io.BytesIO()
    wav = sine(440.0, rate, seconds, channels=channels) if wav is None else wav
    sf.write(buf, wav.T, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def with_rate(data: bytes, rate: int) -> bytes:
    """A canonical 44-byte-header WAV with its sample-rate field rewritten."""
    return data[:24] + struct.pack("<I", rate) + data[28:]


def nan_wav() -> bytes:
    wav = sine(440.0, 16000, 0.5)
    wav[0, 100:110] = np.nan
    return encoded(wav=wav, subtype="FLOAT")


# bad input -> the error every reader must raise
BAD = {
    "empty file": (b"", EmptyAudioError),
    "not audio": (b"this is not audio at all " * 20, UndecodableAudioError),
    "WAV cut to 60 bytes": (encoded()[:60], TruncatedAudioError),
    "WAV missing half its data": (encoded()[: len(encoded()) // 2], TruncatedAudioError),
    "24-bit WAV cut short": (encoded(subtype="PCM_24")[:5000], TruncatedAudioError),
    "AIFF cut short": (encoded(fmt="AIFF")[:9000], TruncatedAudioError),
    "FLAC cut short": (
        encoded(2.0, fmt="FLAC", wav=np.random.default_rng(0).uniform(-0.5, 0.5, (1, 32000)).astype(np.float32))[
            :20000
        ],
        TruncatedAudioError,
    ),
    "a WAV with no samples": (encoded(0.0), EmptyAudioError),
    "float WAV with NaN": (nan_wav(), NonFiniteAudioError),
    "a rate of 4e9 Hz": (with_rate(encoded(), 4_000_000_000), ImpossibleFormatError),
    "a rate of 0 Hz": (with_rate(encoded(), 0), ImpossibleFormatError),
    "a rate of 1e6 Hz": (with_rate(encoded(), 1_000_000), ImpossibleFormatError),
    "zero channels": (encoded()[:22] + struct.pack("<H", 0) + encoded()[24:], ImpossibleFormatError),
}


def _shard_reader(path):
    """The shards' decoder: a warning naming the error's class, and None."""
    from fastai_audio.data.shards import ShardStream

    stream = ShardStream([], None, None, train=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = stream.decode_sample(
            {"__key__": "k", "__url__": "u", "json": b'{"label": "a"}', "wav": path.read_bytes()}
        )
    assert out is None, "the shard reader decoded a bad sample"
    name = str(caught[-1].message).split(": ")[1]
    raise next(c for c in (*{c for _, c in BAD.values()}, AudioFileError) if c.__name__ == name)("u", "k")


def _check_reader(path):
    report = check_audio_files([path])
    assert not report.ok[0]
    raise AudioFileError(path, report.reason[0])


READERS = {
    "decode_audio(path)": lambda p: decode_audio(p),
    "decode_audio(bytes)": lambda p: decode_audio(p.read_bytes()),
    "decode_audio(integer)": lambda p: decode_audio(p, integer=True),
    "load_audio": lambda p: load_audio(p, sample_rate=16000, mono=True),
    "read_span (the loaders)": lambda p: read_span(p, lambda total, rate: (0, -1)),
    "scan_audio (check)": lambda p: scan_audio(p),
    "decode_bytes (the server)": lambda p: __import__("fastai_audio.runtime", fromlist=["decode_bytes"]).decode_bytes(
        p.read_bytes()
    ),
    "shards": _shard_reader,
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_maps_the_same_bad_bytes_to_the_same_error(tmp_path, case, reader):
    data, error = BAD[case]
    path = tmp_path / "bad.wav"
    path.write_bytes(data)
    with pytest.raises(error) as info:
        READERS[reader](path)
    if reader != "shards":
        assert "bad.wav" in str(info.value) or "the audio" in str(info.value)


@pytest.mark.parametrize("case", list(BAD))
def test_check_reports_every_bad_file_with_the_decoders_reason(tmp_path, case):
    data, error = BAD[case]
    path = tmp_path / "bad.wav"
    path.write_bytes(data)
    with pytest.raises(error) as info:
        decode_audio(path)
    report = check_audio_files([path])
    assert not report.ok[0] and report.reason[0] == info.value.reason


def test_a_truncated_wav_is_caught_from_its_header_before_any_sample_is_read(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(encoded(4.0)[:60])  # the header says 64,000 frames, 8 are there
    with pytest.raises(TruncatedAudioError, match="declares 128000 bytes of samples but only 16"):
        audio_info(path)


@pytest.mark.parametrize(
    "fmt, subtype",
    [
        ("WAV", "PCM_16"),
        ("WAV", "PCM_U8"),
        ("WAV", "PCM_24"),
        ("WAV", "PCM_32"),
        ("WAV", "ULAW"),
        ("WAV", "ALAW"),
        ("FLAC", "PCM_16"),
        ("FLAC", "PCM_24"),
        ("FLAC", "PCM_S8"),
        ("AIFF", "PCM_16"),
        ("AIFF", "PCM_S8"),
        ("AIFF", "PCM_24"),
    ],
)
def test_integer_reads_scale_to_exactly_libsndfiles_float_read(fmt, subtype):
    wav = np.random.default_rng(1).uniform(-1, 1, (2, 9000)).astype(np.float32)
    data = encoded(rate=22050, fmt=fmt, subtype=subtype, wav=wav)
    ints, rate = decode_audio(data, integer=True)
    floats, _ = decode_audio(data)
    assert subtype in INT16_SUBTYPES | INT32_SUBTYPES and rate == 22050
    assert ints.dtype == np.dtype("int16" if subtype in INT16_SUBTYPES else "int32")
    assert ints.shape == floats.shape == (2, 9000) and ints.flags.c_contiguous
    reference = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(ints.astype(np.float32) * np.float32(PCM_SCALE[str(ints.dtype)]), reference)
    np.testing.assert_array_equal(floats, reference)


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_files_read_as_float32_even_when_integers_are_asked_for(subtype):
    data = encoded(subtype=subtype)
    assert decode_audio(data, integer=True)[0].dtype == np.float32


def test_good_files_with_odd_but_valid_layouts_are_not_called_truncated(tmp_path):
    data = encoded(1.0)
    # trailing junk after the data chunk, and a streaming writer's unknown data size
    assert decode_audio(data + b"LIST\x04\x00\x00\x00INFO")[0].shape == (1, 16000)
    streamed = data[:40] + struct.pack("<I", 0xFFFFFFFF) + data[44:]
    assert decode_audio(streamed)[0].shape == (1, 16000)
    for fmt, subtype in (("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III"), ("FLAC", "PCM_16")):
        assert decode_audio(encoded(1.0, fmt=fmt, subtype=subtype))[0].shape[0] == 1


def test_windows_read_only_their_frames_and_past_the_end_is_truncation(tmp_path, frames_read):
    path = write(tmp_path / "a.wav", sine(440.0, 16000, 2.0), 16000)
    wav, _ = decode_audio(path, window=lambda total, rate: (total - 4000, 4000), integer=True)
    assert wav.shape == (1, 4000) and frames_read == [4000]
    f, info = open_audio(path)
    with f:
        f.seek(info.frames - 10)
        assert read_frames(f, info, 100, "int16").shape == (10, 1)  # the header's end, not past it


def test_limits_refuse_from_the_header_before_decoding(frames_read):
    data = encoded(3.0, rate=8000, channels=2)
    with pytest.raises(AudioTooLongError, match="3.0 s long, more than the limit of 2 s"):
        decode_audio(data, max_seconds=2)
    with pytest.raises(AudioTooLongError, match="24000 frames x 2 channels"):
        decode_audio(data, max_samples=40000)
    assert frames_read == []
    assert decode_audio(data, max_seconds=3, max_samples=48000)[0].shape == (2, 24000)


def test_errors_name_the_source_and_survive_pickling(tmp_path):
    import pickle

    with pytest.raises(TruncatedAudioError) as info:
        decode_audio(encoded()[:100], name="upload 7")
    assert str(info.value).startswith("upload 7: is truncated")
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is TruncatedAudioError and again.path == "upload 7"
    with pytest.raises(AudioFileError, match="no such file"):
        decode_audio(tmp_path / "missing.wav")
    with pytest.raises(TypeError, match="path or a file's bytes"):
        decode_audio(123)


# ---- AudioConfig -------------------------------------------------------------------------------------------------


def test_the_window_is_the_crop_the_loaders_keep():
    from fastai_audio.transforms.item import CropPad

    crop = CropPad(1.0)
    for u in (0.0, 0.37, 0.999):
        crop.before_call(None, 0)
        crop._u = u
        assert crop.offset(50000, 16000) == crop_offset(50000, 16000, u)
    crop.before_call(None, 1)
    assert crop.offset(50000, 16000) == crop_offset(50000, 16000) == 17000
    cfg = AudioConfig(16000, 1.0)
    assert cfg.window(144000, 48000) == (48000, 48000)  # 3 s at 48 kHz: the middle second, in the file's frames
    assert cfg.window(144000, 48000, 0.0) == (0, 48000) and cfg.window(16000, 16000) == (0, -1)
    assert AudioConfig(None, 2.0).window(10 * 8000, 8000) == (32000, 16000)
    assert AudioConfig(16000, None).window(10**6, 16000) == (0, -1)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"sample_rate": 0}, "sample_rate must be a positive integer, got 0"),
        ({"sample_rate": 16000.5}, "sample_rate must be a positive integer"),
        ({"sample_rate": 10**7}, "at most 768000"),
        ({"duration": 0}, "duration must be a positive number, got 0"),
        ({"duration": 1e12}, "duration must be at most 3600 s"),
        ({"duration": float("nan")}, "duration must be a positive number"),
        ({"mono": "yes"}, "mono must be True or False"),
        ({"pad_mode": "mirror"}, "pad_mode must be one of"),
        ({"duration": None, "pad_mode": "error"}, "needs a duration"),
    ],
)
def test_audio_config_checks_every_field_and_names_it(fields, message):
    values = {"sample_rate": 16000, "duration": 4.0, "mono": True, "pad_mode": "zeros", **fields}
    with pytest.raises(ParameterError, match=message):
        AudioConfig(**values)


def test_audio_config_round_trips_through_json_and_refuses_other_json():
    for cfg in (AudioConfig(), AudioConfig(22050, None, False, "repeat"), AudioConfig(8000, 0.5, True, "error")):
        assert AudioConfig.from_json(cfg.to_json()) == cfg
    for text in (
        "[1, 2]",
        "not json",
        '{"sample_rate": 16000}',
        '{"sample_rate": 16000, "duration": 4, "mono": true, "pad_mode": "zeros", "extra": 1}',
    ):
        with pytest.raises(ParameterError, match="audio config"):
            AudioConfig.from_json(text)


def test_loaders_expose_their_config_and_learners_pickled_before_it_still_load(toy_folder):
    import pickle

    from fastai_audio.data import AudioDataLoaders
    from fastai_audio.transforms.item import OpenAudio

    dls = AudioDataLoaders.from_folder(toy_folder, sample_rate=8000, duration=0.5, pad_mode="repeat", bs=4)
    assert dls.audio_config == AudioConfig(8000, 0.5, True, "repeat")
    old = OpenAudio.__new__(OpenAudio)  # an opener as fastai_audio 0.1 pickled it: its four settings as attributes
    state = dict(pickle.loads(pickle.dumps(OpenAudio(8000, True, 0.5))).__dict__)
    del state["config"]
    state.update(sample_rate=8000, mono=True, duration=0.5, pad_mode="zeros")
    old.__setstate__(state)
    assert old.config == AudioConfig(8000, 0.5, True, "zeros") and old.sample_rate == 8000


def test_a_seek_before_the_start_of_a_files_bytes_lands_on_byte_0_without_noise():
    """libsndfile may seek before the start of a corrupt file's bytes; BytesIO raises there, which soundfile's
    callback can only print (pytest reported it as an unraisable exception)."""
    from fastai_audio.decode import _Bytes

    data = _Bytes(b"RIFF0000WAVE")
    assert data.seek(-1) == 0 and data.seek(4) == 4 and data.seek(-2, io.SEEK_CUR) == 2 and data.seek(-99, 2) == 0
