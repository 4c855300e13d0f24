"""create_cnn / audio_learner: 1-channel stems from pretrained weights, offline errors, training, export."""

import urllib.error
import urllib.request

import numpy as np
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


@pytest.fixture(scope="module")
def df_learner(toy_folder, tmp_path_factory):
    """An untrained (eval-mode deterministic) learner over DataLoaders built from a DataFrame."""
    import pandas as pd

    files = sorted(toy_folder.rglob("*.wav"))
    df = pd.DataFrame({"fname": [str(f) for f in files], "label": [f.parent.name for f in files],
                       "is_valid": [f.parts[-3] == "valid" for f in files]})  # fmt: skip
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), Normalize(n_batches=2)]
    dls = AudioDataLoaders.from_df(df, "/", "fname", "label", valid_col="is_valid", bs=4, duration=1.0,
                                   num_workers=0, batch_tfms=tfms)  # fmt: skip
    torch.manual_seed(0)
    return audio_learner(dls, resnet18, pretrained=False, path=tmp_path_factory.mktemp("learn"))


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
    for name in ("AudioItemList", "get_frequency_batch_transforms", "create_cnn", "models", "accuracy",
                 "ClassificationInterpretation", "synth_nsynth", "TensorAudio", "MelSpectrogram"):  # fmt: skip
        assert name in namespace, name
    assert namespace["models"].resnet18 is resnet18


def test_confusion_matrix_from_the_learner(df_learner):
    import matplotlib.pyplot as plt
    from fastai.interpret import ClassificationInterpretation

    interp = ClassificationInterpretation.from_learner(df_learner)
    cm = interp.confusion_matrix()
    assert cm.shape == (2, 2) and cm.sum() == len(df_learner.dls.valid_ds)
    interp.plot_confusion_matrix(figsize=(4, 4), dpi=60)
    assert [t.get_text() for t in plt.gca().get_xticklabels()] == ["high", "low"]
    plt.close("all")
    assert all(actual != predicted for actual, predicted, _ in interp.most_confused(min_val=1))


def test_show_results_and_top_losses_draw_spectrograms(df_learner):
    import matplotlib.pyplot as plt
    from fastai.interpret import ClassificationInterpretation

    df_learner.show_results(max_n=4)
    axes = [ax for ax in plt.gcf().axes if ax.images]
    assert len(axes) == 4 and all("/" in ax.get_title() and ax.get_ylabel() == "Hz" for ax in axes)
    plt.close("all")
    interp = ClassificationInterpretation.from_learner(df_learner)
    interp.plot_top_losses(3)
    titles = [ax.get_title() for ax in plt.gcf().axes if ax.images]
    losses = [float(t.split(" / ")[1]) for t in titles]
    assert len(titles) == 3 and losses == sorted(losses, reverse=True)  # largest first
    plt.close("all")


def test_top_losses_come_with_players_in_a_notebook(df_learner, monkeypatch):
    import matplotlib.pyplot as plt
    import numpy as np
    from fastai.interpret import ClassificationInterpretation
    from IPython import display as ipd

    from fastai_audio import core

    shown = []
    monkeypatch.setattr(ipd, "display", lambda *objs: shown.extend(objs))
    interp = ClassificationInterpretation.from_learner(df_learner)
    losses, idx = interp.top_losses(3)
    monkeypatch.setattr(core, "_in_notebook", lambda: False)
    interp.plot_top_losses(3)  # outside a notebook: the figure only
    assert shown == []
    monkeypatch.setattr(core, "_in_notebook", lambda: True)
    interp.plot_top_losses(3)
    interp.plot_top_losses(2, player=False)
    plt.close("all")
    assert len(shown) == 1
    page = shown[0].data
    assert page.count("<audio") == 3
    for rank, (loss, i) in enumerate(zip(losses.tolist(), idx.tolist()), 1):
        clip = interp.dl.dataset[i][0]
        assert f"<td>{rank}</td><td>{clip.path.name}</td><td>{loss:.2f}</td>" in page
    # the players carry the clip the model heard: the validation crop at the loaders' rate
    assert clip.sample_rate == 16000 and np.isclose(clip.duration, 1.0)


def test_predict_files_returns_a_table_in_file_order(df_learner, toy_folder):
    from fastai_audio.inference import predict_files

    files = sorted((toy_folder / "valid").rglob("*.wav"))[::-1]
    df = predict_files(df_learner, files, bs=3)
    assert list(df.path) == [str(f) for f in files] and list(df.columns[:3]) == ["path", "prediction", "probability"]
    assert set(df.prediction) <= {"high", "low"}
    np_probs = df[["high", "low"]].to_numpy()
    assert abs(np_probs.sum(1) - 1).max() < 1e-5 and (df.probability == np_probs.max(1)).all()
    single = df_learner.predict(files[0])[2]
    assert abs(float(single[0]) - df.loc[0, "high"]) < 1e-5


@pytest.mark.parametrize("seconds", [5.5, 5.3, 0.6])
def test_windows_cover_a_long_file_exactly(df_learner, tmp_path, seconds):
    import matplotlib.pyplot as plt
    import soundfile as sf
    from conftest import sine

    from fastai_audio.inference import plot_taggram, predict_windows

    path = tmp_path / "long.wav"
    sf.write(str(path), sine(220, 16000, seconds).T, 16000)
    res = predict_windows(df_learner, path, hop=0.5)  # window: the 1.0 s the model was trained on
    n = 1 if seconds <= 1.0 else int(np.ceil((seconds - 1.0) / 0.5)) + 1
    assert res.window == 1.0 and len(res.starts) == n and res.probs.shape == (n, 2)
    assert res.starts[0] == 0 and (np.diff(res.starts) == 0.5).all()
    assert res.starts[-1] + res.window >= seconds > res.starts[-1]  # the last window reaches the end, no gaps
    assert res.starts[-1] + res.window - seconds < 0.5  # and does not overshoot by a whole hop
    np.testing.assert_allclose(res.clip_probs, res.probs.mean(0), rtol=1e-6)
    assert res.label == res.classes[int(res.clip_probs.argmax())] and len(res.to_df()) == n
    ax = plot_taggram(res)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["high", "low"]
    plt.close("all")


def test_multi_label_training_and_thresholded_predict(toy_folder, tmp_path):
    import pandas as pd
    from fastai.metrics import accuracy_multi

    files = sorted(toy_folder.rglob("*.wav"))
    df = pd.DataFrame({"fname": [str(f) for f in files],
                       "tags": [f"{f.parent.name} {'odd' if i % 2 else 'even'}" for i, f in enumerate(files)],
                       "is_valid": [f.parts[-3] == "valid" for f in files]})  # fmt: skip
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), Normalize(mode="item")]
    dls = AudioDataLoaders.from_df(df, "/", "fname", "tags", label_delim=" ", valid_col="is_valid", bs=4,
                                   duration=1.0, num_workers=0, batch_tfms=tfms)  # fmt: skip
    torch.manual_seed(0)
    learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy_multi, path=tmp_path)
    assert type(learn.loss_func).__name__ == "BCEWithLogitsLossFlat"
    learn.fit(1, 1e-3)
    assert 0.0 <= learn.recorder.values[-1][2] <= 1.0  # accuracy_multi
    labels, flags, probs = learn.predict(files[0])
    assert probs.shape == (4,) and flags.dtype == torch.bool
    assert flags.tolist() == (probs > 0.5).tolist() and list(labels) == [c for c, f in zip(dls.vocab, flags) if f]
