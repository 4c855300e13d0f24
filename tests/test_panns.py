"""PANNs backbones: compatible with the reference implementation (panns-inference's model code, random weights),
the 'panns' log-mel equal to the reference's, and checkpoints that do not fit named tensor by tensor."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings

import pytest
import torch
from conftest import sine, write
from fastai.metrics import accuracy

from fastai_audio import TensorAudio
from fastai_audio.data import AudioDataLoaders
from fastai_audio.errors import AudioFileError, ParameterError
from fastai_audio.learner import audio_learner
from fastai_audio.models import PANNS_ARCHS, Cnn6, Cnn10, Cnn14, MobileNetV1, create_panns, load_panns_weights
from fastai_audio.transforms import mel_transforms

SR = 32000
REFERENCE = (32000, 1024, 320, 64, 50, 14000, 527)  # the checkpoints' sample_rate, window, hop, mels, fmin, fmax


@pytest.fixture(scope="module")
def reference():
    """panns-inference's ``models`` module, imported without its package ``__init__`` (which downloads AudioSet's
    label list at import time)."""
    pytest.importorskip("torchlibrosa")
    spec = importlib.util.find_spec("panns_inference")
    if spec is None:
        pytest.skip("panns-inference is not installed (pip install panns-inference; it is in the dev extra)")
    package = types.ModuleType("panns_inference")
    package.__path__ = list(spec.submodule_search_locations)
    saved = {k: sys.modules.get(k) for k in ("panns_inference", "panns_inference.models")}
    sys.modules["panns_inference"] = package
    try:
        yield importlib.import_module("panns_inference.models")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@pytest.fixture(scope="module")
def cnn14_checkpoint(reference, tmp_path_factory):
    torch.manual_seed(0)
    ref = reference.Cnn14(*REFERENCE).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that bn0 and the blocks' norms are really tested
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("panns") / "Cnn14_random.pth"
    torch.save({"model": ref.state_dict(), "iteration": 0}, path)  # the published files' layout
    return ref, path


def _audio():
    t = torch.arange(SR) / SR
    torch.manual_seed(1)
    return torch.stack([0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(SR), 0.1 * torch.randn(SR)])


def _log_mel(audio):
    x = TensorAudio(audio[:, None], sample_rate=SR)
    for tfm in mel_transforms("panns"):
        x = tfm(x)
    return x


def test_the_panns_preset_is_the_reference_log_mel(cnn14_checkpoint):
    ref, _ = cnn14_checkpoint
    audio = _audio()
    with torch.no_grad():
        expected = ref.logmel_extractor(ref.spectrogram_extractor(audio))  # (batch, 1, frames, mels)
    ours = _log_mel(audio).as_subclass(torch.Tensor).transpose(2, 3)
    assert ours.shape == expected.shape == (2, 1, 101, 64)
    assert (ours - expected).abs().max() < 1e-3  # dB, over a 50 dB range
    assert [type(t).__name__ for t in mel_transforms("panns")] == ["MelSpectrogram", "AmplitudeToDB"]


def test_cnn14_gives_the_reference_outputs_with_its_weights(cnn14_checkpoint):
    ref, path = cnn14_checkpoint
    audio = _audio()
    ours = create_panns("cnn14", 527, weights=path).eval()
    with torch.no_grad():
        expected = ref(audio)
        log_mel = ref.logmel_extractor(ref.spectrogram_extractor(audio)).transpose(2, 3)
        # the same log-mel in: the same network, to the last bit
        assert torch.equal(torch.sigmoid(ours(log_mel)), expected["clipwise_output"])
        assert torch.equal(ours.embed(log_mel), expected["embedding"])
        # the whole path, this project's front-end included
        end_to_end = torch.sigmoid(ours(_log_mel(audio)))
    assert torch.allclose(end_to_end, expected["clipwise_output"], atol=1e-5)
    # (a random network's outputs differ little between clips, but 20 times more than that tolerance)
    assert (expected["clipwise_output"][0] - expected["clipwise_output"][1]).abs().max() > 2e-4


# The reference's tensor names and shapes (audioset_tagging_cnn's pytorch/models.py; panns-inference ships only
# CNN14's code, so the smaller networks are checked against this table rather than run side by side).
def _conv_blocks(channels, two_convs, k):
    table, c_in = {}, 1
    for i, c in enumerate(channels, 1):
        table[f"conv_block{i}.conv1.weight"] = (c, c_in, k, k)
        norms = ["bn1", "bn2"] if two_convs else ["bn1"]
        if two_convs:
            table[f"conv_block{i}.conv2.weight"] = (c, c, k, k)
        for bn in norms:
            table.update({f"conv_block{i}.{bn}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")})
            table[f"conv_block{i}.{bn}.num_batches_tracked"] = ()
        c_in = c
    return table


def _mobilenet():
    table = {"features.0.0.weight": (32, 1, 3, 3)}
    table.update({f"features.0.2.{n}": (32,) for n in ("weight", "bias", "running_mean", "running_var")})
    table["features.0.2.num_batches_tracked"] = ()
    plan = [
        (32, 64),
        (64, 128),
        (128, 128),
        (128, 256),
        (256, 256),
        (256, 512),
        *[(512, 512)] * 5,
        (512, 1024),
        (1024, 1024),
    ]
    for i, (c_in, c_out) in enumerate(plan, 1):
        table[f"features.{i}.0.weight"] = (c_in, 1, 3, 3)
        table[f"features.{i}.4.weight"] = (c_out, c_in, 1, 1)
        for j, c in ((2, c_in), (5, c_out)):
            table.update({f"features.{i}.{j}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")})
            table[f"features.{i}.{j}.num_batches_tracked"] = ()
    return table


def _heads(width):
    bn0 = {f"bn0.{n}": (64,) for n in ("weight", "bias", "running_mean", "running_var")}
    return {
        **bn0,
        "bn0.num_batches_tracked": (),
        "fc1.weight": (width, width),
        "fc1.bias": (width,),
        "fc_audioset.weight": (527, width),
        "fc_audioset.bias": (527,),
    }


@pytest.mark.parametrize(
    "cls,table",
    [
        (Cnn6, {**_conv_blocks((64, 128, 256, 512), False, 5), **_heads(512)}),
        (Cnn10, {**_conv_blocks((64, 128, 256, 512), True, 3), **_heads(512)}),
        (Cnn14, {**_conv_blocks((64, 128, 256, 512, 1024, 2048), True, 3), **_heads(2048)}),
        (MobileNetV1, {**_mobilenet(), **_heads(1024)}),
    ],
)
def test_every_network_has_the_reference_tensor_names_and_shapes(cls, table):
    state = cls(527).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == table


def test_cnn14_matches_the_reference_state_dict_exactly(cnn14_checkpoint):
    ref, _ = cnn14_checkpoint
    front = ("spectrogram_extractor.", "logmel_extractor.")
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.startswith(front)}
    assert {k: tuple(v.shape) for k, v in Cnn14(527).state_dict().items()} == expected


@pytest.mark.parametrize("arch", sorted(PANNS_ARCHS))
def test_every_network_classifies_log_mel_batches_of_any_length(arch):
    model = create_panns(arch, 11).eval()
    for frames in (101, 64, 401):
        assert model(torch.randn(2, 1, 64, frames)).shape == (2, 11)
    with pytest.raises(ParameterError, match=r"mel_transforms\('panns'\)"):
        model(torch.randn(2, 1, 80, 101))
    with pytest.raises(ParameterError, match=f"at least {model.min_frames} frames"):
        model(torch.randn(2, 1, 64, model.min_frames - 1))
    assert model(torch.randn(1, 1, 64, model.min_frames)).shape == (1, 11)


def test_a_checkpoint_of_another_network_is_refused_naming_the_tensors(cnn14_checkpoint):
    _, path = cnn14_checkpoint
    with pytest.raises(AudioFileError) as err:
        load_panns_weights(Cnn10(11), path)
    message = str(err.value)
    assert "Cnn14_random.pth" in message and "does not fit Cnn10" in message
    assert "unexpected 24 tensors in conv_block5.*, conv_block6.*" in message
    assert "of another shape" in message and "fc1.weight (2048, 2048) (model: (512, 512))" in message


def test_missing_tensors_are_named(cnn14_checkpoint, tmp_path):
    ref, _ = cnn14_checkpoint
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("conv_block6.")}
    torch.save(state, tmp_path / "partial.pth")  # a bare state dict works too
    with pytest.raises(AudioFileError, match=r"missing 12 tensors in conv_block6\.\* \(conv_block6\.bn1\.bias"):
        load_panns_weights(Cnn14(11), tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(AudioFileError, match="junk.pth.*cannot be loaded"):
        load_panns_weights(Cnn14(11), tmp_path / "junk.pth")


def test_a_new_task_keeps_the_features_and_gets_a_new_classifier(cnn14_checkpoint):
    ref, path = cnn14_checkpoint
    model = create_panns("cnn14", 11, weights=path)
    assert torch.equal(model.conv_block3.conv2.weight, ref.conv_block3.conv2.weight)
    assert torch.equal(model.fc1.weight, ref.fc1.weight)
    assert model.fc_audioset.weight.shape == (11, 2048)


@pytest.fixture(scope="module")
def dls32k(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips32k")
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        for i in range(4):
            write(root / label / f"{i}.wav", sine(freq * (1 + 0.02 * i), SR, 1.0), SR)
    return AudioDataLoaders.from_folder(
        root, valid_pct=0.25, seed=0, sample_rate=SR, duration=1.0, bs=4, batch_tfms=mel_transforms("panns")
    )


def test_audio_learner_fine_tunes_a_panns_checkpoint(dls32k, cnn14_checkpoint):
    _, path = cnn14_checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loaders compute the checkpoints' log-mel: no warning
        learn = audio_learner(dls32k, "cnn14", weights=path, metrics=accuracy)
    model = learn.model
    assert isinstance(model, Cnn14) and model.fc_audioset.out_features == 2
    assert not model.conv_block1.conv1.weight.requires_grad and not model.fc1.weight.requires_grad  # frozen
    assert model.fc_audioset.weight.requires_grad and model.conv_block1.bn1.weight.requires_grad  # head, BN
    before = model.conv_block2.conv1.weight.clone()
    learn.fit(1, 1e-3)
    assert torch.equal(model.conv_block2.conv1.weight, before)
    learn.unfreeze()
    assert model.conv_block1.conv1.weight.requires_grad


def test_another_front_end_is_named_in_a_warning(tmp_path, cnn14_checkpoint):
    _, path = cnn14_checkpoint
    for label in ("a", "b"):
        for i in range(2):
            write(tmp_path / label / f"{i}.wav", sine(300.0 * (i + 1), 16000, 1.0), 16000)
    dls = AudioDataLoaders.from_folder(
        tmp_path, valid_pct=0.5, seed=0, duration=1.0, bs=2, batch_tfms=mel_transforms("nsynth")
    )
    with pytest.warns(UserWarning, match=r"sample_rate=16000 \(the checkpoints: 32000\).*SpecNormalize"):
        audio_learner(dls, "cnn14", weights=path)


def test_pretrained_without_the_file_says_where_to_get_it(dls32k, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(AudioFileError, match=r"Cnn10_mAP=0\.380\.pth.*zenodo\.org/record/3987831.*weights="):
        audio_learner(dls32k, "cnn10")
    learn = audio_learner(dls32k, "cnn10", pretrained=False)  # from scratch: nothing to find, nothing frozen
    assert all(p.requires_grad for p in learn.model.parameters())
    with pytest.raises(ParameterError, match="unknown arch 'cnn99'"):
        audio_learner(dls32k, "cnn99")


def test_a_panns_learner_exports_to_one_onnx_graph(dls32k, tmp_path):
    pytest.importorskip("onnxruntime")
    from fastai_audio.runtime import OnnxClassifier

    learn = audio_learner(dls32k, "cnn6", pretrained=False)
    path = learn.export_onnx(tmp_path / "cnn6.onnx")  # checked against the model by ONNX Runtime as it is written
    clip = torch.from_numpy(sine(440.0, SR, 1.0))
    label, index, probs = OnnxClassifier(path).predict(clip.numpy(), sample_rate=SR)
    want_label, want_index, want_probs = learn.predict(clip, sample_rate=SR)
    assert label == want_label and index == int(want_index)
    assert torch.allclose(torch.from_numpy(probs), want_probs, atol=1e-4)


def test_a_checkpoint_with_another_mel_filterbank_is_named(dls32k, cnn14_checkpoint, tmp_path):
    ref, _ = cnn14_checkpoint
    state = dict(ref.state_dict())
    state["logmel_extractor.melW"] = state["logmel_extractor.melW"] * 1.1  # trained on another front-end
    torch.save({"model": state}, tmp_path / "other_front.pth")
    with pytest.warns(UserWarning, match=r"own mel filterbank \(logmel_extractor\.melW\)"):
        audio_learner(dls32k, "cnn14", weights=tmp_path / "other_front.pth")
