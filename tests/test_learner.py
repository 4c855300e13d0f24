"""create_cnn / audio_learner: 1-channel stems from pretrained weights, offline errors, training, export."""

import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from conftest import write
from fastai.callback.core import Callback
from fastai.learner import Learner, load_learner
from fastai.metrics import accuracy
from torchvision.models import resnet18

from fastai_audio import AudioFileError, ParameterError, TensorAudio
from fastai_audio.data import AudioDataLoaders
from fastai_audio.learner import audio_learner, create_audio_model, create_cnn
from fastai_audio.transforms import AmplitudeToDB, Delta, MelSpectrogram, SpecNormalize

RESNET_CHILDREN = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A private torch hub cache holding a (random, but recognisable) resnet18 ImageNet state dict."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    state = {
        k: v + torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
        for k, v in resnet18(weights=None).state_dict().items()
    }
    torch.save(state, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    yield state
    torch.hub.set_dir(old)


@pytest.fixture(scope="module")
def spec_dls(toy_folder):
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
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
    tfms = [MelSpectrogram(n_mels=32, n_fft=512), AmplitudeToDB(), Delta(order=2), SpecNormalize(mode="item")]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms)
    learn = audio_learner(dls, resnet18)
    torch.testing.assert_close(learn.model[0][0].weight, hub["conv1.weight"])


def test_offline_and_not_cached_names_the_file(hub, spec_dls, tmp_path):
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").unlink()
    with pytest.raises(
        AudioFileError,
        match=r"checkpoints/resnet18-f37072fd\.pth: pretrained weights for resnet18 "
        r"are not in the torch hub cache .*pretrained=False",
    ):
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


def test_predict_on_paths_arrays_and_other_formats(df_learner, tmp_path):
    import numpy as np
    import soundfile as sf
    from conftest import sine

    wav = sine(880, 16000, 1.5)  # a "high" clip, longer than the 1 s the model takes: centre-cropped
    sf.write(str(tmp_path / "clip.wav"), wav.T, 16000, subtype="FLOAT")
    label, index, probs = df_learner.predict(str(tmp_path / "clip.wav"))
    assert label in ("high", "low") and probs.shape == (2,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    _, _, from_array = df_learner.predict(wav[0], sample_rate=16000)
    torch.testing.assert_close(from_array, probs)
    stereo48k = np.stack([sine(880, 48000, 1.5)[0], sine(880, 48000, 1.5)[0]])
    sf.write(str(tmp_path / "clip48k.flac"), stereo48k.T, 48000, subtype="PCM_24")
    _, _, from_flac = df_learner.predict(tmp_path / "clip48k.flac")  # resampled and downmixed like training data
    assert from_flac.shape == (2,) and torch.isfinite(from_flac).all()
    with pytest.raises(ParameterError, match="needs its rate: pass sample_rate"):
        df_learner.predict(wav[0])


def _assert_same_prediction(fast, slow):
    assert fast[0] == slow[0] and type(fast[0]) is type(slow[0])
    torch.testing.assert_close(fast[1], slow[1])
    torch.testing.assert_close(fast[2], slow[2])


def test_fast_predict_equals_fastais_predict(df_learner, tmp_path):
    from conftest import sine

    clip = write(tmp_path / "c.flac", sine(880, 48000, 2.0, channels=2), 48000)
    for item in (clip, str(clip), TensorAudio.create(sine(220, 22050, 0.5), sample_rate=22050)):  # also padded
        _assert_same_prediction(df_learner.predict(item), Learner.predict(df_learner, item))
    df_learner.model.train()
    df_learner.predict(clip)
    assert df_learner.model.training  # the model's mode is left as it was
    # a callback that may change predictions sends predict down fastai's own path
    calls = []
    spy = type("Spy", (Callback,), {"after_pred": lambda self: calls.append(1)})()
    with df_learner.added_cbs(spy):
        df_learner.predict(clip)
    assert calls == [1]
    assert isinstance(df_learner.dls.after_batch[0].module, MelSpectrogram)


@pytest.mark.filterwarnings("ignore:load_learner` uses Python's insecure pickle:UserWarning")
def test_predictions_survive_export(df_learner, toy_folder, tmp_path):
    clip = sorted((toy_folder / "valid" / "low").glob("*.wav"))[0]
    before = df_learner.predict(clip)[2]
    df_learner.export(tmp_path / "m.pkl")
    back = load_learner(tmp_path / "m.pkl")
    assert type(back).__name__ == "AudioLearner"
    torch.testing.assert_close(back.predict(str(clip))[2], before)
    preds, _ = back.get_preds(dl=back.dls.test_dl([clip, str(clip)]))
    torch.testing.assert_close(preds[0], before)
    torch.testing.assert_close(preds[1], before)


def test_notebook_star_import_has_the_seed_names():
    namespace = {}
    exec("from fastai_audio.all import *", namespace)
    for name in (
        "AudioItemList",
        "get_frequency_batch_transforms",
        "create_cnn",
        "models",
        "accuracy",
        "ClassificationInterpretation",
        "synth_nsynth",
        "TensorAudio",
        "MelSpectrogram",
    ):
        assert name in namespace, name
    assert namespace["models"].resnet18 is resnet18


def test_multi_label_training_and_thresholded_predict(toy_folder, tmp_path):
    import pandas as pd
    from fastai.metrics import accuracy_multi

    files = sorted(toy_folder.rglob("*.wav"))
    df = pd.DataFrame(
        {
            "fname": [str(f) for f in files],
            "tags": [f"{f.parent.name} {'odd' if i % 2 else 'even'}" for i, f in enumerate(files)],
            "is_valid": [f.parts[-3] == "valid" for f in files],
        }
    )
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(mode="item")]
    dls = AudioDataLoaders.from_df(
        df,
        "/",
        "fname",
        "tags",
        label_delim=" ",
        valid_col="is_valid",
        bs=4,
        duration=1.0,
        num_workers=0,
        batch_tfms=tfms,
    )
    torch.manual_seed(0)
    learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy_multi, path=tmp_path)
    assert type(learn.loss_func).__name__ == "BCEWithLogitsLossFlat"
    learn.fit(1, 1e-3)
    assert 0.0 <= learn.recorder.values[-1][2] <= 1.0  # accuracy_multi
    labels, flags, probs = learn.predict(files[0])
    assert probs.shape == (4,) and flags.dtype == torch.bool
    assert flags.tolist() == (probs > 0.5).tolist() and list(labels) == [c for c, f in zip(dls.vocab, flags) if f]
    _assert_same_prediction(learn.predict(files[0]), Learner.predict(learn, files[0]))


@pytest.mark.filterwarnings("ignore:load_learner` uses Python's insecure pickle:UserWarning")
def test_trainable_front_end_is_optimised_with_the_network(toy_folder, tmp_path):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)  # raw audio batches
    front = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128, trainable=True), AmplitudeToDB(), SpecNormalize()]
    torch.manual_seed(0)
    learn = audio_learner(dls, resnet18, pretrained=False, front_end=front, path=tmp_path)
    fe = learn.model[0]
    assert type(fe).__name__ == "AudioFrontEnd" and fe[0] is front[0]
    # SpecNormalize got dataset statistics from training batches passed through the transforms before it
    assert front[2].mean.shape == (1, 1, 32, 1) and float(front[2].std.min()) > 0
    x = dls.one_batch()[0]
    with torch.no_grad():
        out = learn.model[0](x)
    assert out.shape[:3] == (4, 1, 32) and abs(float(out.mean())) < 1.0
    trainable = dict(fe.named_parameters())
    assert len(trainable) == 2  # the window and the mel filterbank
    learn.create_opt()
    in_opt = {id(p) for group in learn.opt.param_lists for p in group}
    assert all(id(p) in in_opt for p in trainable.values())
    before = {n: p.detach().clone() for n, p in trainable.items()}
    learn.fit(1, 1e-2)
    for n, p in fe.named_parameters():
        assert not torch.equal(p.detach(), before[n]), f"{n} was not updated"
    clip = sorted((toy_folder / "valid" / "high").glob("*.wav"))[0]
    probs = learn.predict(clip)[2]
    preds, _ = learn.get_preds()
    assert type(preds) is torch.Tensor  # class scores, not TensorSpectrogram carried through the CNN
    learn.export(tmp_path / "fe.pkl")
    torch.testing.assert_close(load_learner(tmp_path / "fe.pkl").predict(clip)[2], probs)
    tfm_dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=[MelSpectrogram()])
    with pytest.raises(ParameterError, match="already compute spectrograms .*MelSpectrogram"):
        audio_learner(tfm_dls, resnet18, pretrained=False, front_end=[MelSpectrogram()])


def test_frozen_pretrained_body_freezes_the_front_end_with_it(hub, toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    front = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128, trainable=True), AmplitudeToDB()]
    learn = audio_learner(dls, resnet18, front_end=front, metrics=accuracy)
    assert len(learn.opt.param_lists) == 3
    assert not any(p.requires_grad for p in learn.model[0].parameters())  # frozen with the body's first group
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model[0].parameters())


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning", "ignore:torch.cuda.amp.GradScaler:UserWarning")
def test_fastai_training_features_keep_working(hub, spec_dls, tmp_path):
    from fastai.callback.tracker import SaveModelCallback

    learn = create_cnn(spec_dls, resnet18, metrics=accuracy, path=tmp_path)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with learn.no_bar():
        suggestion = learn.lr_find(num_it=20, stop_div=False, show_plot=False)  # skips 5 first and last
    assert 1e-7 < suggestion.valley < 10
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in before.items())  # lr_find restores weights
    assert not any(p.requires_grad for p in learn.model[0][0].parameters())  # pretrained: body frozen
    epochs = []
    spy = type("Spy", (Callback,), {"after_epoch": lambda self: epochs.append(self.opt.frozen_idx)})()
    with learn.no_bar():
        learn.fine_tune(1, freeze_epochs=1, cbs=[SaveModelCallback(fname="best"), spy])
    assert epochs == [2, 0] and (tmp_path / "models" / "best.pth").is_file()  # one frozen epoch, one unfrozen
    assert all(p.requires_grad for p in learn.model.parameters())  # fine_tune unfroze the body
    learn.to_fp16()  # fastai's AMP; on a CPU-only machine autocast is off and training runs in float32
    with learn.no_bar():
        learn.fit(1, 1e-4)
    assert np.isfinite(learn.recorder.values[-1][:2]).all()
    clip = sorted(spec_dls.valid_ds.items)[0]
    got = learn.predict(clip)  # MixedPrecision is not a predict-safe callback: fastai's own path runs
    torch.testing.assert_close(got[2], Learner.predict(learn, clip)[2])
    learn.to_fp32()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["to_fp16", "to_bf16"])
def test_mixed_precision_on_the_gpu(toy_folder, precision, tmp_path):
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms, device="cuda")
    learn = getattr(audio_learner(dls, resnet18, pretrained=False, path=tmp_path), precision)()
    with learn.no_bar():
        learn.fit(1, 1e-3)
        preds, _ = learn.get_preds()
    assert np.isfinite(learn.recorder.values[-1][:2]).all()
    assert preds.dtype == torch.float32 and torch.isfinite(preds).all()
    assert learn.model[0][0].weight.dtype == torch.float32  # AMP keeps float32 master weights


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_learner_predicts_what_the_cpu_learner_predicts(toy_folder, tmp_path):
    """Loaders on the GPU hand the model CUDA spectrograms (metadata kept); after training there, the exported model
    predicts on the CPU what it predicts on the GPU, by the fast path and by fastai's."""
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms, device="cuda")
    xb, yb = dls.one_batch()
    assert xb.device.type == "cuda" and yb.device.type == "cuda" and xb.sample_rate == 16000 and xb.scale == "mel"
    learn = audio_learner(dls, resnet18, pretrained=False, path=tmp_path)
    with learn.no_bar():
        learn.fit(1, 1e-3)
    clip = sorted((toy_folder / "valid").rglob("*.wav"))[0]
    on_gpu = learn.predict(clip)
    assert next(learn.model.parameters()).device.type == "cuda"
    learn.export("gpu.pkl")
    cpu = load_learner(tmp_path / "gpu.pkl", cpu=True)
    on_cpu = cpu.predict(clip)
    assert on_gpu[0] == on_cpu[0]
    torch.testing.assert_close(on_gpu[2].cpu(), on_cpu[2], rtol=1e-3, atol=1e-4)  # cuFFT/cuDNN vs MKL rounding
    torch.testing.assert_close(Learner.predict(cpu, clip)[2], on_cpu[2])


def test_keep_best_watches_the_first_metric_and_restores_the_best_epoch(spec_dls, tmp_path):
    from fastai_audio.learner import KeepBest

    torch.manual_seed(0)
    keep = KeepBest()
    learn = audio_learner(spec_dls, resnet18, pretrained=False, metrics=accuracy, path=tmp_path, cbs=keep)
    weights = []

    class Snapshot(Callback):
        order = 70

        def after_epoch(self):
            weights.append({k: v.detach().clone() for k, v in self.learn.model.state_dict().items()})

    learn.fit(4, 1e-3, cbs=[Snapshot()])
    assert keep.monitor == "accuracy" and keep.best_epoch is not None
    accs = [row[2] for row in learn.recorder.values]
    assert keep.best_epoch == int(np.argmax(accs)) and keep.best == pytest.approx(max(accs))
    now = learn.model.state_dict()
    assert all(torch.equal(now[k], weights[keep.best_epoch][k]) for k in now)  # the best epoch, loaded back
    assert (tmp_path / "models" / "best.pth").is_file()
    preds, _ = learn.get_preds()  # the callback stays on the learner: predicting and validating leave it alone
    loss, acc = learn.validate()
    assert preds.shape[0] == len(spec_dls.valid_ds) and keep.best_epoch == int(np.argmax(accs))
    assert acc == pytest.approx(keep.best) and all(torch.equal(now[k], learn.model.state_dict()[k]) for k in now)
    plain = KeepBest()
    audio_learner(spec_dls, resnet18, pretrained=False, path=tmp_path, cbs=plain).fit(1, 1e-3)
    assert plain.monitor == "valid_loss" and plain.best_epoch == 0  # no metrics: the loss, lower is better
