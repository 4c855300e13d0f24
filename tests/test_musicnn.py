"""MusiCNN in PyTorch (fastai_audio.models.musicnn): shapes, and the musicnn wheel's checkpoints loaded without
TensorFlow. Equality with the original TensorFlow graph is bench/musicnn_check.py's (it needs TensorFlow): tag
probabilities within 3.1e-6 of it on FSDD recordings and rendered notes."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from test_tf_checkpoint import write_checkpoint

from fastai_audio.errors import AudioFileError, ParameterError
from fastai_audio.models import MusiCNN, load_musicnn_weights, musicnn_checkpoint
from fastai_audio.models.tf_checkpoint import read_tf_checkpoint

needs_musicnn = pytest.mark.skipif(
    importlib.util.find_spec("musicnn") is None,
    reason="the musicnn wheel is not installed (pip install --no-deps musicnn): its checkpoints are the test",
)


def test_shapes_of_the_published_network():
    model = MusiCNN().eval()
    x = torch.randn(3, 1, 96, 187)
    assert model(x).shape == (3, 50) and model.embed(x).shape == (3, 200) and model.features(x).shape == (3, 1506)
    assert model(torch.randn(1, 1, 96, 40)).shape == (1, 50)  # any length of at least a patch's filters
    with pytest.raises(ParameterError, match=r"log-mels of shape \(batch, 1, n_mels, frames\), got \(3, 96, 187\)"):
        model(x[:, 0])


@needs_musicnn
@pytest.mark.parametrize("name", ["MTT_musicnn", "MSD_musicnn"])
def test_every_tensor_of_the_checkpoint_lands_in_the_network(name):
    model = load_musicnn_weights(MusiCNN(), name)
    tf = read_tf_checkpoint(musicnn_checkpoint(name))
    assert torch.equal(model.head.weight, torch.from_numpy(tf["dense_1/kernel"].T))
    assert torch.equal(model.timbral[0].weight[5, 0, :, 2], torch.from_numpy(tf["conv2d/kernel"][2, :, 0, 5]))
    assert torch.equal(model.mid[1].weight[7, 3], torch.from_numpy(tf["conv2d_6/kernel"][:, 3, 0, 7]))
    assert torch.equal(model.pool_bn.running_var, torch.from_numpy(tf["batch_normalization_9/moving_variance"]))
    used = 2 * (5 + 3 + 2) + 4 * 11  # kernels and biases of 10 layers, 4 tensors of 11 batch norms
    assert used == len([k for k in tf if "Adam" not in k and "power" not in k])


@needs_musicnn
def test_a_new_head_keeps_the_body_and_wrong_sizes_name_the_tensor():
    model = load_musicnn_weights(MusiCNN(n_out=11), "MTT_musicnn", head=False)
    assert model.head.weight.shape == (11, 200)
    with pytest.raises(AudioFileError, match=r"tensor 'dense_1/kernel' has shape \(200, 50\), which does not fit"):
        load_musicnn_weights(MusiCNN(n_out=11), "MTT_musicnn")
    with pytest.raises(AudioFileError, match=r"tensor 'conv2d_5/kernel' has shape \(7, 561, 1, 64\)"):
        load_musicnn_weights(MusiCNN(mid_filters=512), "MSD_musicnn")


def test_a_checkpoint_of_another_graph_names_the_missing_tensor(tmp_path):
    prefix = str(tmp_path / "other")
    write_checkpoint(prefix, {"conv2d/kernel": torch.zeros(7, 38, 1, 204).numpy()}, {"conv2d/kernel": 1})
    with pytest.raises(AudioFileError, match="has no tensor 'conv2d/bias': not a checkpoint of this MusiCNN graph"):
        load_musicnn_weights(MusiCNN(), prefix)
    with pytest.raises(ParameterError, match="unknown MusiCNN checkpoint 'MTT'"):
        musicnn_checkpoint("MTT")


@pytest.fixture(scope="module")
def mel96_dls(toy_folder):
    from fastai_audio.all import AudioDataLoaders, mel_transforms

    return AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, batch_tfms=mel_transforms("musicnn"))


@needs_musicnn
def test_audio_learner_fine_tunes_musicnn_with_a_new_head_and_tags_with_its_own(mel96_dls):
    from fastai_audio.learner import audio_learner

    learn = audio_learner(mel96_dls, "musicnn", weights="MTT")
    model = learn.model
    tf = read_tf_checkpoint(musicnn_checkpoint("MTT_musicnn"))
    assert model.head.out_features == mel96_dls.c == 2
    assert torch.equal(model.dense.weight, torch.from_numpy(tf["dense/kernel"].T))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"head.weight", "head.bias"} <= trainable and "timbral.0.weight" not in trainable  # frozen body
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
    assert torch.equal(model.dense.weight, torch.from_numpy(tf["dense/kernel"].T))  # the frozen body kept its weights
    tagger = audio_learner(mel96_dls, "musicnn", weights="MSD", n_out=50)
    assert torch.equal(
        tagger.model.head.weight,
        torch.from_numpy(read_tf_checkpoint(musicnn_checkpoint("MSD_musicnn"))["dense_1/kernel"].T),
    )


@needs_musicnn
def test_a_head_on_the_pooled_features_keeps_the_body_and_drops_the_dense_layers(mel96_dls):
    from fastai_audio.learner import audio_learner
    from fastai_audio.models import MusicVGG

    learn = audio_learner(mel96_dls, "musicnn", weights="MTT", head_input="pooled")
    model = learn.model.eval()
    assert (model.head.in_features, model.head.out_features) == (1506, 2)
    assert not any("dense" in k for k in model.state_dict())  # no parameter left unused (DDP would stop on one)
    ref = load_musicnn_weights(MusiCNN(), "MTT_musicnn").eval()
    x = mel96_dls.one_batch()[0].as_subclass(torch.Tensor).cpu()
    torch.testing.assert_close(model.embed(x), ref.pool_bn(ref.features(x)))  # what the new head reads
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"head.weight", "head.bias"} <= trainable and "mid.0.weight" not in trainable
    tagger = audio_learner(mel96_dls, "musicnn", weights="MTT", n_out=50, head_input="pooled")
    assert tagger.model.head.in_features == 1506  # 50 outputs, but a new head: the tag layer reads the dense one
    with pytest.raises(ParameterError, match="head_input='pooled' has a new head: load it with head=False"):
        load_musicnn_weights(MusiCNN(head_input="pooled"), "MTT_musicnn")
    with pytest.raises(ParameterError, match="head_input must be one of"):
        MusiCNN(head_input="dense")
    assert isinstance(audio_learner(_vgg_dls(mel96_dls), "vgg", weights="MTT").model, MusicVGG)
    with pytest.raises(ParameterError, match="MusicVGG takes no 'head_input'"):
        audio_learner(_vgg_dls(mel96_dls), "vgg", weights="MTT", head_input="pooled")


def test_unfrozen_musicnn_and_vgg_spread_discriminative_rates_from_the_input_to_the_head(mel96_dls):
    from fastai_audio.learner import audio_learner

    cases = [
        (audio_learner(mel96_dls, "musicnn"), ["timbral.0.weight", "mid.0.weight", "dense.weight", "head.weight"]),
        (
            audio_learner(mel96_dls, "musicnn", head_input="pooled"),
            ["temporal.2.weight", "pool_bn.weight", "head.bias"],
        ),
        (audio_learner(_vgg_dls(mel96_dls), "vgg"), ["convs.1.weight", "convs.2.weight", "head.weight"]),
    ]
    for learn, names in cases:
        learn.create_opt()
        learn.unfreeze()
        learn.opt.set_hyper("lr", slice(1e-5, 1e-3))  # what fine_tune and fit_one_cycle do with a slice
        params = dict(learn.model.named_parameters())
        lrs = []
        for name in names:  # each named tensor in the next group: every group's rate above the one before
            (k,) = [k for k, g in enumerate(learn.opt.param_lists) if any(p is params[name] for p in g)]
            lrs.append(learn.opt.hypers[k]["lr"])
        assert len(learn.opt.param_lists) == len(names) and lrs == sorted(set(lrs)), (names, lrs)
        assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e-3)
        grouped = sum(len(g) for g in learn.opt.param_lists)
        assert grouped == len(list(learn.model.parameters()))  # no parameter left out of the optimiser


def _vgg_dls(dls):
    from fastai_audio.all import AudioDataLoaders, mel_transforms

    return AudioDataLoaders.from_folder(dls.path, bs=4, duration=2.98, batch_tfms=mel_transforms("musicnn"))


def test_audio_learner_builds_musicnn_from_scratch_and_refuses_other_mels(toy_folder, mel96_dls):
    from fastai_audio.all import AudioDataLoaders, mel_transforms
    from fastai_audio.learner import audio_learner

    learn = audio_learner(mel96_dls, "musicnn", pretrained=False)
    assert all(p.requires_grad for p in learn.model.parameters()) and learn.model.head.out_features == 2
    dls64 = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, batch_tfms=mel_transforms("speech"))
    with pytest.raises(ParameterError, match="trained on 96 mel bands; the loaders give 80"):
        audio_learner(dls64, "musicnn", weights="MTT")


@needs_musicnn
def test_loaders_unlike_the_checkpoints_front_end_are_named_in_a_warning(toy_folder):
    from fastai_audio.all import AudioDataLoaders, mel_transforms
    from fastai_audio.learner import audio_learner

    speech96 = AudioDataLoaders.from_folder(
        toy_folder, bs=4, duration=1.0, batch_tfms=mel_transforms("speech", n_mels=96)
    )
    differ = r"differ: hop_length=160 \(the checkpoints: 256\); pad_mode.*no LogCompress"
    with pytest.warns(UserWarning, match=differ) as got:
        audio_learner(speech96, "musicnn", weights="MTT")
    message = str(got[0].message)
    assert "pad_mode='reflect' (the checkpoints: 'constant')" in message and "SpecNormalize rescales" in message
    assert "mel_transforms('musicnn')" in message


def test_the_vgg_baseline_takes_3_s_patches_with_either_checkpoints_pooling():
    from fastai_audio.models import MusicVGG

    for pools in ("MTT", "MSD"):
        model = MusicVGG(pools=pools).eval()
        assert model(torch.randn(2, 1, 96, 187)).shape == (2, 50) and model.features(
            torch.randn(1, 1, 96, 187)
        ).shape == (1, 256)
    with pytest.raises(ParameterError, match=r"log-mel patches of shape \(batch, 1, 96, 187\), got \(1, 1, 96, 100\)"):
        MusicVGG()(torch.randn(1, 1, 96, 100))
    with pytest.raises(ParameterError, match="pools must be one of"):
        MusicVGG(pools="big")


@needs_musicnn
def test_each_vgg_checkpoint_loads_into_its_own_pooling():
    from fastai_audio.models import MusicVGG

    tf = read_tf_checkpoint(musicnn_checkpoint("MSD_vgg"))
    model = load_musicnn_weights(MusicVGG(pools="MSD"), "MSD_vgg")
    assert torch.equal(model.convs[4].weight[9, 3], torch.from_numpy(tf["5CNN/kernel"][:, :, 3, 9].T))
    assert torch.equal(model.head.weight, torch.from_numpy(tf["dense/kernel"].T))
    with pytest.raises(ParameterError, match=r"MSD_vgg pools as MusicVGG\(pools='MSD'\); this model has 'MTT'"):
        load_musicnn_weights(MusicVGG(), "MSD_vgg")


@needs_musicnn
def test_the_tag_lists_are_read_as_data_in_the_order_of_the_outputs():
    from fastai_audio.models import musicnn_tags

    mtt, msd = musicnn_tags("MTT"), musicnn_tags("msd")
    assert len(mtt) == len(msd) == 50 and mtt[:3] == ["guitar", "classical", "slow"] and msd[:2] == ["rock", "pop"]
    assert {"piano", "violin", "drums", "choir"} <= set(mtt) and "jazz" in msd
    with pytest.raises(ParameterError, match="dataset must be 'MTT' or 'MSD'"):
        musicnn_tags("AudioSet")


@pytest.fixture(scope="module")
def tagger():
    if importlib.util.find_spec("musicnn") is None:
        pytest.skip("the musicnn wheel is not installed (pip install --no-deps musicnn)")
    from fastai_audio.inference import MusicTagger

    return MusicTagger("MTT")


def test_the_tagger_tags_3_s_windows_of_any_rate_and_channels(tagger):
    import numpy as np

    from fastai_audio.functional.spectral import log_compress
    from fastai_audio.io import resample

    t = np.arange(16000 * 7) / 16000
    mono = (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-(t % 1) * 3)).astype(np.float32)
    res = tagger.predict_windows(mono, sample_rate=16000)
    assert res.probs.shape == (3, 50) and res.starts.tolist() == [0.0, 3.0, 6.0] and res.window == 3.0
    assert res.duration == 7.0 and res.classes == tagger.tags and res.label == tagger.tags[res.clip_probs.argmax()]
    # each window: the published network on the musicnn log-mel of those 3 s (the last one padded with silence)
    wav = torch.from_numpy(mono)
    last = torch.nn.functional.pad(wav[96000:], (0, 48000 - (wav.numel() - 96000)))
    mel = tagger[0][0](torch.stack([wav[:48000], wav[48000:96000], last]))
    with torch.no_grad():
        want = torch.sigmoid(tagger[1](log_compress(mel)))
    torch.testing.assert_close(torch.from_numpy(res.probs), want, rtol=1e-5, atol=1e-6)
    # stereo at 22.05 kHz: downmixed and resampled to what the network takes
    at22 = resample(wav[None], 16000, 22050)[0].numpy()
    stereo = tagger.predict_windows(np.stack([at22, at22]), sample_rate=22050, hop=2.0)
    assert stereo.starts.tolist() == [0.0, 2.0, 4.0] and stereo.probs.shape == (3, 50)
    assert np.abs(stereo.probs[0] - res.probs[0]).max() < 0.02  # the same 3 s, through a resampling round trip
    with pytest.raises(ParameterError, match="hop"):
        tagger.predict_windows(mono, sample_rate=16000, hop=0.0)
    with pytest.raises(ParameterError, match="weights must be 'MTT' or 'MSD'"):
        type(tagger)("imagenet")


def test_a_taggram_draws_the_recording_s_top_tags(tagger):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    from fastai_audio.inference import plot_taggram

    t = np.arange(16000 * 6) / 16000
    res = tagger.predict_windows((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sample_rate=16000)
    ax = plot_taggram(res, top=4)
    best = [res.classes[i] for i in np.argsort(res.clip_probs)[::-1][:4]]
    assert [label.get_text() for label in ax.get_yticklabels()] == best[::-1]  # the most probable at the top
    assert ax.images[0].get_array().shape == (4, 2)
    with pytest.raises(ParameterError, match="top must be a positive number"):
        plot_taggram(res, top=0)
    plt.close("all")


def test_the_tag_command_prints_each_file_s_top_tags_and_writes_taggrams(tagger, tmp_path, capsys):
    import json

    import numpy as np
    import soundfile as sf

    from fastai_audio.cli import main

    t = np.arange(22050 * 4) / 22050
    for name, f in (("low.wav", 110.0), ("high.flac", 1760.0)):
        sf.write(tmp_path / name, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), 22050)
    files = [str(tmp_path / "low.wav"), str(tmp_path / "high.flac")]
    assert main(["tag", *files, "--top", "3", "--format", "json", "--taggram", str(tmp_path / "tg")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["rank"]) for r in rows] == [(f, k) for f in files for k in (1, 2, 3)]
    assert all(r["tag"] in tagger.tags and 0 <= r["probability"] <= 1 for r in rows)
    want = tagger.predict_windows(files[0])
    assert rows[0]["tag"] == want.label and rows[0]["probability"] == pytest.approx(float(want.clip_probs.max()))
    assert sorted(p.name for p in (tmp_path / "tg").iterdir()) == ["high.png", "low.png"]
    assert main(["tag", files[0], "--top", "0"]) == 1 and "--top must be a positive" in capsys.readouterr().err


@needs_musicnn
def test_a_fine_tuned_musicnn_exports_to_one_onnx_graph(mel96_dls, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import numpy as np
    import onnxruntime as ort

    from fastai_audio.export import export_onnx
    from fastai_audio.learner import audio_learner

    learn = audio_learner(mel96_dls, "musicnn", weights="MTT")
    path = export_onnx(learn, tmp_path / "musicnn.onnx")  # checked against the model before it is kept
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"waveform": np.zeros((3, 16000), np.float32)})[0]
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)


@needs_musicnn
def test_audio_learner_builds_the_vgg_baseline_on_3_s_patches(toy_folder):
    from fastai_audio.all import AudioDataLoaders, mel_transforms
    from fastai_audio.learner import audio_learner
    from fastai_audio.models import MusicVGG

    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=2.98, batch_tfms=mel_transforms("musicnn"))
    assert dls.one_batch()[0].shape[2:] == (96, 187)
    for key in ("MTT", "MSD"):
        learn = audio_learner(dls, "vgg", weights=key)
        tf = read_tf_checkpoint(musicnn_checkpoint(f"{key}_vgg"))
        assert isinstance(learn.model, MusicVGG) and learn.model.layout == key and learn.model.head.out_features == 2
        assert torch.equal(learn.model.convs[0].weight, torch.from_numpy(tf["1CNN/kernel"]).permute(3, 2, 1, 0))
        assert not learn.model.convs[0].weight.requires_grad and learn.model.head.weight.requires_grad
    tagger = audio_learner(dls, "vgg", weights="MTT", n_out=50)  # the 50-tag layer kept
    mtt = read_tf_checkpoint(musicnn_checkpoint("MTT_vgg"))["dense/kernel"]
    torch.testing.assert_close(tagger.model.head.weight.detach(), torch.from_numpy(mtt).T)
    short = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, batch_tfms=mel_transforms("musicnn"))
    with pytest.raises(ParameterError, match=r"96 mels x 187 frames; the loaders give 96 x 63.*duration=2.98"):
        audio_learner(short, "vgg", weights="MTT")
