"""create_cnn / audio_learner: 1-channel stems from pretrained weights, offline errors, training, export."""

import urllib.error
import urllib.request

import pytest
import torch
from fastai.learner import load_learner
from fastai.metrics import accuracy
from torchvision.models import resnet18

from fastai_audio import AudioFileError, ParameterError
from fastai_audio.data import AudioDataLoaders
from fastai_audio.learner import audio_learner, create_audio_model, create_cnn
from fastai_audio.transforms import AmplitudeToDB, Delta, MelSpectrogram, Normalize

RESNET_CHILDREN = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A private torch hub cache holding a (random, but recognisable) resnet18 ImageNet state dict."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    state = {k: v + torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
             for k, v in resnet18(weights=None).state_dict().items()}  # fmt: skip
    torch.save(state, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    yield state
    torch.hub.set_dir(old)


@pytest.fixture(scope="module")
def spec_dls(toy_folder):
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), Normalize(n_batches=2)]
    return AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms)


def test_one_channel_stem_sums_the_pretrained_rgb_kernels(hub, spec_dls):
    learn = create_cnn(spec_dls, resnet18, metrics=accuracy)
    body = learn.model[0]
    stem = body[0].weight
    assert stem.shape == (64, 1, 7, 7)
    torch.testing.assert_close(stem, hub["conv1.weight"].sum(dim=1, keepdim=True))
    for key, value in body.state_dict().items():  # every other tensor is the file's
        index, rest = key.split(".", 1)
        original = f"{RESNET_CHILDREN[int(index)]}.{rest}"
        if original != "conv1.weight":
            torch.testing.assert_close(value, hub[original], msg=key)
    assert learn.model(spec_dls.one_batch()[0]).shape == (4, 2)
    # pretrained: the body starts frozen (fastai keeps BatchNorm trainable), the head trains
    assert not body[4][0].conv1.weight.requires_grad and body[4][0].bn1.weight.requires_grad
    assert all(p.requires_grad for p in learn.model[1].parameters())


def test_three_channel_spectrograms_keep_the_rgb_kernels(hub, toy_folder):
    tfms = [MelSpectrogram(n_mels=32, n_fft=512), AmplitudeToDB(), Delta(order=2), Normalize(mode="item")]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms)
    learn = audio_learner(dls, resnet18)
    torch.testing.assert_close(learn.model[0][0].weight, hub["conv1.weight"])


def test_offline_and_not_cached_names_the_file(hub, spec_dls, tmp_path):
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").unlink()
    with pytest.raises(AudioFileError, match=r"checkpoints/resnet18-f37072fd\.pth: pretrained weights for resnet18 "
                                             r"are not in the torch hub cache .*pretrained=False"):  # fmt: skip
        audio_learner(spec_dls, resnet18)


def test_weights_from_a_file(hub, spec_dls, tmp_path):
    path = tmp_path / "mine.pth"
    torch.save(hub, path)
    learn = audio_learner(spec_dls, resnet18, weights=path)
    torch.testing.assert_close(learn.model[0][0].weight, hub["conv1.weight"].sum(dim=1, keepdim=True))
    with pytest.raises(AudioFileError, match="missing.pth: no such weights file"):
        audio_learner(spec_dls, resnet18, weights=tmp_path / "missing.pth")


@pytest.mark.filterwarnings("ignore:load_learner` uses Python's insecure pickle:UserWarning")
def test_from_scratch_trains_exports_and_predicts_the_same(spec_dls, tmp_path):
    torch.manual_seed(0)
    learn = audio_learner(spec_dls, resnet18, pretrained=False, metrics=accuracy, path=tmp_path)
    learn.fit(1, 1e-3)
    loss = learn.recorder.values[-1][1]
    assert loss == loss and loss < 10  # finite validation loss after an epoch
    preds, _ = learn.get_preds()
    learn.export(tmp_path / "model.pkl")
    back = load_learner(tmp_path / "model.pkl")
    preds_back, _ = back.get_preds(dl=back.dls.test_dl(spec_dls.valid_ds.items))
    torch.testing.assert_close(preds_back, preds)


def test_waveform_batches_are_refused(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    with pytest.raises(ParameterError, match="not spectrograms .* add the front-end"):
        audio_learner(dls, resnet18, pretrained=False)


def test_model_factory_shapes():
    model = create_audio_model(resnet18, n_out=11, n_in=1, pretrained=False)
    assert model(torch.randn(2, 1, 64, 251)).shape == (2, 11)
