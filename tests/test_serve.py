"""The torch-free runtime (fastai_audio.runtime): the exported graph with the loaders' audio preparation."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine, trained_resnet, write

pytest.importorskip("onnxruntime", reason="the runtime needs the serve extra (onnx, onnxruntime, onnxscript)")
pytest.importorskip("onnxscript")

from fastai_audio.all import AudioDataLoaders, mel_transforms  # noqa: E402
from fastai_audio.errors import AudioFileError, ParameterError  # noqa: E402
from fastai_audio.inference import predict_files, predict_windows  # noqa: E402
from fastai_audio.runtime import OnnxClassifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A trained learner (16 kHz, 1 s clips) and its ONNX file; the data mix rates and channel counts."""
    root = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(1)
    for i in range(28):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            sr, ch = [(16000, 1), (44100, 2), (8000, 1), (22050, 1)][i % 4]
            wav = sine(freq * (1 + 0.02 * (i % 5)), sr, 0.6 + 0.04 * i, channels=ch)
            write(
                root / label / f"{label}_{i:02d}.wav",
                (wav + 0.03 * rng.standard_normal(wav.shape)).astype(np.float32),
                sr,
            )
    dls = AudioDataLoaders.from_folder(
        root, valid_pct=0.25, seed=0, duration=1.0, bs=8, batch_tfms=mel_transforms("speech", n_mels=32)
    )
    learn = trained_resnet(dls)
    return learn, learn.export_onnx(root / "model.onnx"), sorted(root.glob("*/*.wav"))


def test_the_runtime_predicts_what_the_learner_predicts_for_56_files_of_mixed_rates(model):
    learn, path, files = model
    clf = OnnxClassifier(path)
    assert clf.labels == ["high", "low"] and clf.sample_rate == 16000 and clf.duration == 1.0
    worst = 0.0
    for f in files:  # 16, 44.1 (stereo), 8 and 22.05 kHz: decode, downmix, resample and crop as the loaders do
        label, index, probs = clf.predict(f)
        want = learn.predict(f)
        assert label == want[0] and index == int(want[1])
        worst = max(worst, float(np.abs(probs - want[2].numpy()).max()))
    assert worst <= 1e-4, worst
    with learn.no_bar():
        table, want = clf.predict_files(files, bs=16), predict_files(learn, files, bs=16)
    assert list(table.columns) == list(want.columns) and list(table.prediction) == list(want.prediction)
    np.testing.assert_allclose(table[["high", "low"]].to_numpy(), want[["high", "low"]].to_numpy(), atol=1e-4)


def test_arrays_and_long_recordings_as_the_learner_handles_them(model, tmp_path):
    learn, path, files = model
    clf = OnnxClassifier(path)
    stereo = np.stack([sine(880.0, 44100, 1.7)[0], 0.5 * sine(880.0, 44100, 1.7)[0]])
    np.testing.assert_allclose(
        clf.predict(stereo, sample_rate=44100)[2], learn.predict(stereo, sample_rate=44100)[2].numpy(), atol=1e-4
    )
    long = write(tmp_path / "long.wav", np.concatenate([sine(220.0, 22050, 3.0), sine(880.0, 22050, 2.5)], 1), 22050)
    got = clf.predict_windows(long, hop=0.5)
    with learn.no_bar():
        want = predict_windows(learn, long, hop=0.5)
    np.testing.assert_allclose(got["starts"], want.starts)
    np.testing.assert_allclose(got["probs"], want.probs, atol=1e-4)
    assert got["label"] == want.label and got["duration"] == pytest.approx(want.duration)


def test_bad_input_gets_an_error_naming_it(model, tmp_path):
    _, path, _ = model
    clf = OnnxClassifier(path)
    with pytest.raises(AudioFileError, match="missing.wav"):
        clf.predict(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(AudioFileError, match="text.wav.*cannot be decoded"):
        clf.predict(tmp_path / "text.wav")
    with pytest.raises(ParameterError, match="pass sample_rate"):
        clf.predict(np.zeros(16000, np.float32))
    with pytest.raises(ParameterError, match="NaN or infinite"):
        clf.predict(np.full(16000, np.nan, np.float32), sample_rate=16000)
    with pytest.raises(AudioFileError, match="no such model file"):
        OnnxClassifier(tmp_path / "none.onnx")


def test_the_runtime_imports_neither_torch_nor_fastai(model):
    """In a fresh interpreter where importing torch or fastai fails, the runtime loads the model and predicts."""
    _, path, files = model
    code = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchaudio', 'torchvision', 'fastai', 'fastcore', 'fasttransform'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from fastai_audio.runtime import OnnxClassifier
label, index, probs = OnnxClassifier({str(path)!r}).predict({str(files[0])!r})
assert not any(m.split('.')[0] in ('torch', 'fastai') for m in sys.modules), sorted(sys.modules)
print(label)
"""
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() in ("high", "low")


# ---- everything that takes bytes from outside: random, truncated and corrupted input ---------------------------

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastai_audio.io import load_audio  # noqa: E402
from fastai_audio.runtime import decode_bytes  # noqa: E402

# every container soundfile writes, with a subtype it accepts there
FORMATS = [
    ("WAV", "PCM_16"),
    ("WAV", "FLOAT"),
    ("FLAC", "PCM_24"),
    ("OGG", "VORBIS"),
    ("AIFF", "PCM_16"),
    ("AU", "PCM_16"),
    ("CAF", "PCM_16"),
    ("W64", "PCM_16"),
    ("RF64", "PCM_16"),
]


def encoded(fmt: str, subtype: str, rate: int, channels: int, nonfinite: bool) -> bytes:
    import io as _io

    import soundfile as _sf

    x = np.sin(np.arange(int(rate * 0.05) + 8)[:, None] * 0.3 + np.arange(channels)).astype(np.float32) * 0.5
    if nonfinite:
        x[::7] = np.nan
        x[1::11] = np.inf
    buf = _io.BytesIO()
    _sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@st.composite
def damaged_audio(draw) -> bytes:
    fmt, subtype = draw(st.sampled_from(FORMATS))
    rate = draw(st.sampled_from([8000, 16000, 44100, 96000] if fmt == "OGG" else [1, 100, 8000, 44100, 384000]))
    channels = draw(st.integers(1, 2 if fmt == "OGG" else 8))
    data = bytearray(encoded(fmt, subtype, rate, channels, draw(st.booleans()) and subtype == "FLOAT"))
    action = draw(st.sampled_from(["keep", "truncate", "corrupt", "both"]))
    if action in ("corrupt", "both"):
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, min(len(data) - 1, 127)))  # mostly the header
            data[at] = draw(st.integers(0, 255))
    if action in ("truncate", "both"):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=2048), damaged_audio()))
def test_the_runtime_and_load_audio_give_a_result_or_a_documented_error(onnx_model_path, tmp_path_factory, data):
    """Random bytes, and files of every format soundfile writes at extreme rates and channel counts, truncated,
    with corrupted headers or NaN/Inf samples: a result or AudioFileError/ParameterError, nothing else."""
    clf = OnnxClassifier(onnx_model_path)
    try:
        clip = clf.prepare(data)
    except (AudioFileError, ParameterError):
        pass
    else:
        assert clip.shape == (16000,) and np.isfinite(clip).all()
    path = tmp_path_factory.mktemp("fuzz") / "clip.bin"
    path.write_bytes(data)
    try:
        wav, rate = load_audio(path, sample_rate=16000 if len(data) % 2 else None)
    except (AudioFileError, ParameterError):
        pass
    else:
        assert wav.ndim == 2 and wav.shape[-1] > 0 and torch.isfinite(wav).all() and rate > 0


@pytest.fixture(scope="module")
def onnx_model_path(model):
    return model[1]


def test_decode_bytes_names_what_is_wrong():
    with pytest.raises(AudioFileError, match="is empty"):
        decode_bytes(b"")
    with pytest.raises(AudioFileError, match="not audio"):
        decode_bytes(b"RIFF0000WAVEjunk" * 4)
    wav, rate = decode_bytes(encoded("FLAC", "PCM_24", 44100, 3, False))
    assert wav.shape[0] == 3 and rate == 44100


# ---- an exported model's metadata is checked field by field when it is loaded ------------------------------------


def _with_metadata(path: Path, dest: Path, **changes) -> Path:
    import onnx

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    meta.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        meta.pop(k, None)
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(dest))
    return dest


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"labels": '"high"'}, "labels must be a JSON list of class names, got '\"high\"'"),
        ({"labels": '{"a": 1}'}, "labels must be a JSON list"),
        ({"labels": "[]"}, "labels must be a JSON list"),
        ({"labels": '["high"]'}, "labels name 1 classes but the model has 2 outputs"),
        ({"labels": '["a", "a"]'}, "labels must be distinct"),
        (
            {"audio_config": '{"sample_rate": -16000, "duration": 1.0, "mono": true, "pad_mode": "zeros"}'},
            "sample_rate must be a positive integer, got -16000",
        ),
        (
            {"audio_config": '{"sample_rate": 16000, "duration": 1e12, "mono": true, "pad_mode": "zeros"}'},
            "duration must be at most 3600 s",
        ),
        (
            {"audio_config": '{"sample_rate": 16000, "duration": 0, "mono": true, "pad_mode": "zeros"}'},
            "duration must be a positive number, got 0",
        ),
        (
            {"audio_config": '{"sample_rate": 16000, "duration": 1.0, "mono": true, "pad_mode": "mirror"}'},
            "pad_mode must be one of",
        ),
        ({"audio_config": None, "sample_rate": "0"}, "sample_rate must be a positive integer, got 0"),
        ({"audio_config": None, "duration": "1e12"}, "duration must be at most 3600 s"),
        ({"audio_config": None, "sample_rate": "fast"}, "sample_rate must be a number, got 'fast'"),
        ({"multi_label": "maybe"}, "multi_label must be 'true' or 'false'"),
        ({"threshold": "2"}, "threshold must lie between 0 and 1, got 2.0"),
        ({"labels": None}, "was not written by learn.export_onnx"),
    ],
)
def test_hostile_or_broken_metadata_is_refused_at_load_naming_the_field(model, tmp_path, changes, message):
    _, path, _ = model
    bad = _with_metadata(path, tmp_path / "bad.onnx", **changes)
    with pytest.raises(AudioFileError, match="bad.onnx: has unusable fastai_audio metadata") as info:
        OnnxClassifier(bad)
    assert message in str(info.value)


def test_models_exported_before_the_audio_config_still_load(model, tmp_path):
    _, path, files = model
    old = _with_metadata(path, tmp_path / "old.onnx", audio_config=None)
    clf, new = OnnxClassifier(old), OnnxClassifier(path)
    assert clf.config == new.config and clf.sample_rate == 16000 and clf.duration == 1.0
    np.testing.assert_array_equal(clf.predict(files[0])[2], new.predict(files[0])[2])
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(AudioFileError, match="junk.onnx: is not an ONNX model"):
        OnnxClassifier(tmp_path / "junk.onnx")


# ---- fuzzing what comes from outside: headers that lie, metadata that lies ------------------------------------------


@st.composite
def lying_wav(draw) -> bytes:
    """A valid 16-bit WAV whose header then lies: channels, rate, byte rate, block align, bits and the data chunk's
    size set to anything, 0 and the largest values included."""
    import struct

    buf = io.BytesIO()
    sf.write(buf, np.zeros((draw(st.integers(0, 3000)), 1), np.int16), 16000, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    fields = {22: "<H", 24: "<I", 28: "<I", 32: "<H", 34: "<H", 40: "<I", 4: "<I"}
    for offset in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=4, unique=True)):
        fmt = fields[offset]
        top = 2**16 - 1 if fmt == "<H" else 2**32 - 1
        value = draw(st.one_of(st.sampled_from([0, 1, 2, top, top // 2 + 1]), st.integers(0, top)))
        struct.pack_into(fmt, data, offset, value)
    return bytes(data)


@settings(max_examples=200, deadline=None)
@given(data=lying_wav())
def test_headers_that_lie_give_a_clip_or_a_typed_error_and_bounded_reads(data):
    from fastai_audio.runtime import decode_bytes

    try:
        wav, rate = decode_bytes(data, max_samples=10**6)
    except AudioFileError:
        return
    assert wav.dtype == np.float32 and wav.ndim == 2 and rate > 0 and np.isfinite(wav).all()
    assert wav.size <= 10**6 and wav.nbytes <= 4 * len(data)  # nothing beyond what the bytes hold


@settings(max_examples=300, deadline=None)
@given(
    meta=st.dictionaries(
        st.sampled_from(["labels", "audio_config", "sample_rate", "duration", "pad_mode", "multi_label", "threshold"]),
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                [
                    '["a", "b"]',
                    '["a"]',
                    "[]",
                    '{"a": 1}',
                    '"high"',
                    "1e12",
                    "-1",
                    "nan",
                    "inf",
                    '{"sample_rate": 16000, "duration": 1.0, "mono": true, "pad_mode": "zeros"}',
                    '{"sample_rate": 0}',
                    "true",
                    "false",
                    "0.5",
                ]
            ),
        ),
    ),
    width=st.one_of(st.none(), st.integers(0, 4)),
)
@example(meta={"labels": '["a"]', "sample_rate": "NAN"}, width=None)  # (found by this test: a raw ValueError)
def test_any_metadata_is_read_whole_or_refused_naming_a_field(meta, width):
    from fastai_audio.runtime import _read_metadata

    try:
        labels, config, multi, threshold = _read_metadata(meta, width)
    except ParameterError as err:
        assert str(err)
        return
    assert labels and all(isinstance(v, str) for v in labels) and len(set(labels)) == len(labels)
    assert width is None or width == len(labels)
    assert config.sample_rate > 0 and (config.duration is None or config.duration > 0) and 0 < threshold < 1


def test_the_runtimes_old_module_name_still_works_and_warns():
    import importlib
    import sys

    sys.modules.pop("fastai_audio.serve", None)
    with pytest.warns(DeprecationWarning, match="fastai_audio.serve is now fastai_audio.runtime"):
        old = importlib.import_module("fastai_audio.serve")
    assert old.OnnxClassifier is OnnxClassifier and set(old.__all__) >= {"OnnxClassifier", "decode_bytes"}
