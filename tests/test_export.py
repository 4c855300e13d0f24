"""ONNX export (fastai_audio.export): the whole pipeline, spectrogram included, as one graph with the model's
probabilities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import sine, trained_resnet, write
from torchvision.models import resnet18

onnx = pytest.importorskip("onnx", reason="ONNX export needs the serve extra (onnx, onnxruntime, onnxscript)")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from fastai_audio.all import (  # noqa: E402
    CQT,
    AmplitudeToDB,
    AudioDataLoaders,
    MelSpectrogram,
    SpecNormalize,
    accuracy,
    audio_aug_tfms,
    audio_learner,
    mel_transforms,
)
from fastai_audio.cli import main  # noqa: E402
from fastai_audio.errors import ParameterError  # noqa: E402
from fastai_audio.export import InferenceGraph, export_onnx  # noqa: E402
from fastai_audio.transforms import spectral_steps  # noqa: E402
from fastai_audio.transforms.item import find_opener  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """60 clips in two classes (0.5-1.2 s, 16 kHz): tones plus noise, so the probabilities are not all 0 or 1."""
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    for i in range(30):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            wav = sine(freq * (1 + 0.03 * (i % 7)), 16000, 0.5 + 0.025 * i) + 0.05 * rng.standard_normal((1, 1))
            noisy = (wav + 0.02 * rng.standard_normal(wav.shape)).astype(np.float32)
            write(root / label / f"{label}_{i:02d}.wav", noisy, 16000)
    return root


def session_and_meta(path):
    meta = {m.key: m.value for m in onnx.load(str(path)).metadata_props}
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), meta


def assert_parity(learn, path, files):
    """ONNX Runtime on each clip as the loaders prepare it (decoded, resampled, centre-cropped) against
    ``learn.predict`` on the file: max abs difference <= 1e-4 and the same label."""
    session, meta = session_and_meta(path)
    opener = find_opener(learn.dls.valid_ds)[1]
    worst = 0.0
    for f in files:
        got = session.run(None, {"waveform": opener(f, split_idx=1).numpy()})[0][0]
        label, _, probs = learn.predict(f)
        worst = max(worst, float(np.abs(got - probs.numpy()).max()))
        if meta["multi_label"] == "false":
            assert json.loads(meta["labels"])[int(got.argmax())] == label
    assert worst <= 1e-4, worst
    return meta


def test_a_log_mel_model_exports_with_the_model_s_probabilities_for_60_clips(clips, tmp_path):
    tfms = [*audio_aug_tfms(), *mel_transforms("speech", n_mels=32)]  # the augmentations are left out of the graph
    dls = AudioDataLoaders.from_folder(clips, valid_pct=0.25, seed=0, duration=1.0, bs=8, batch_tfms=tfms)
    learn = trained_resnet(dls, metrics=accuracy)
    path = learn.export_onnx(tmp_path / "model.onnx")
    files = sorted(clips.glob("*/*.wav"))
    assert len(files) == 60
    meta = assert_parity(learn, path, files)
    graph = InferenceGraph.from_learner(learn)  # what was exported: Sequential(front_end, network, softmax)
    assert [type(m).__name__ for m in graph] == ["AudioFrontEnd", "Sequential", "Softmax"]
    assert [type(s).__name__ for s in graph.front_end] == ["MelSpectrogram", "AmplitudeToDB", "SpecNormalize"]
    assert graph.front_end[0] is not spectral_steps(learn.dls.after_batch)[0]  # copies: the learner keeps its own
    assert json.loads(meta["labels"]) == ["high", "low"] and meta["sample_rate"] == "16000"
    assert meta["duration"] == "1.0" and meta["multi_label"] == "false" and meta["fastai_audio_version"]
    session, _ = session_and_meta(path)
    for batch, samples in ((1, 4000), (5, 16000), (2, 40000)):  # dynamic batch and length
        probs = session.run(None, {"waveform": np.zeros((batch, samples), np.float32)})[0]
        assert probs.shape == (batch, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_variable_length_clips_a_trainable_front_end_and_a_cqt_model(clips, tmp_path):
    """duration=None (every clip its own length), the front-end inside the model with learned mel weights, and
    a CQT front-end."""
    files = sorted(clips.glob("*/*.wav"))[::6]
    raw = AudioDataLoaders.from_folder(clips, valid_pct=0.25, seed=0, duration=None, bs=8)
    front = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=160, trainable=True), AmplitudeToDB(), SpecNormalize()]
    learn = trained_resnet(raw, front_end=front)
    assert assert_parity(learn, learn.export_onnx(tmp_path / "fe.onnx"), files)["duration"] == ""
    cqt = AudioDataLoaders.from_folder(
        clips,
        valid_pct=0.25,
        seed=0,
        duration=1.0,
        bs=8,
        batch_tfms=[CQT(16000, hop_length=256, n_bins=60), AmplitudeToDB(), SpecNormalize()],
    )
    learn = trained_resnet(cqt)
    assert_parity(learn, learn.export_onnx(tmp_path / "cqt.onnx"), files)


def test_a_multi_label_model_exports_sigmoids_and_its_threshold(clips, tmp_path):
    files = sorted(clips.glob("*/*.wav"))
    tags = [f"{f.parent.name} {'short' if i % 2 else 'tone'}" for i, f in enumerate(files)]
    df = pd.DataFrame({"f": [f.relative_to(clips) for f in files], "y": tags})
    dls = AudioDataLoaders.from_df(
        df, clips, "f", "y", label_delim=" ", duration=1.0, bs=8, seed=0, batch_tfms=mel_transforms("speech", n_mels=32)
    )
    learn = trained_resnet(dls)
    meta = assert_parity(learn, learn.export_onnx(tmp_path / "tags.onnx"), files[::10])
    assert meta["multi_label"] == "true" and float(meta["threshold"]) == learn.loss_func.thresh
    session, _ = session_and_meta(tmp_path / "tags.onnx")
    probs = session.run(None, {"waveform": np.zeros((2, 16000), np.float32)})[0]
    assert probs.shape == (2, 4) and not np.allclose(probs.sum(1), 1)  # one sigmoid per tag


def test_what_cannot_be_exported_is_refused_naming_it(clips, tmp_path):
    class Halve:  # a deterministic batch transform that is not a spectral one
        split_idx = None
        order = 99

        def __call__(self, x, **kwargs):
            return x * 0.5

    dls = AudioDataLoaders.from_folder(
        clips, valid_pct=0.25, seed=0, duration=1.0, bs=8, batch_tfms=mel_transforms("speech", n_mels=32)
    )
    learn = audio_learner(dls, resnet18, pretrained=False)
    learn.dls.after_batch.fs.append(Halve())
    with pytest.raises(ParameterError, match="Halve in the batch transforms cannot be exported"):
        export_onnx(learn, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    stereo = AudioDataLoaders.from_folder(
        clips, valid_pct=0.25, seed=0, duration=1.0, bs=8, mono=False, batch_tfms=mel_transforms("speech", n_mels=32)
    )
    with pytest.raises(ParameterError, match="supports mono models"):
        export_onnx(audio_learner(stereo, resnet18, pretrained=False), tmp_path / "y.onnx")


def test_the_cli_exports_an_exported_learner(clips, tmp_path, capsys):
    dls = AudioDataLoaders.from_folder(
        clips, valid_pct=0.25, seed=0, duration=1.0, bs=8, batch_tfms=mel_transforms("speech", n_mels=32)
    )
    learn = trained_resnet(dls)
    learn.export(tmp_path / "model.pkl")
    assert main(["export", str(tmp_path / "model.pkl"), "--onnx", str(tmp_path / "model.onnx")]) == 0
    assert capsys.readouterr().out.strip().endswith("model.onnx")
    assert_parity(learn, tmp_path / "model.onnx", sorted(clips.glob("*/*.wav"))[:5])
