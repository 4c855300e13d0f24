"""fastai_audio.inference: predict_files and predict_windows."""

import numpy as np
import pytest


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


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"hop": 1e-300}, "hop must be a number of seconds from 0.005"),
        ({"window": float("inf")}, "window must be a number of seconds"),
        ({"window": 0.01}, "from 0.1"),
        ({"hop": 0.005, "max_windows": 100}, "gives 1001 windows, more than the 100 allowed"),
    ],
)
def test_windows_out_of_bounds_are_refused_before_any_is_made(df_learner, kwargs, reason):
    from fastai_audio.errors import ParameterError
    from fastai_audio.inference import predict_windows

    with pytest.raises(ParameterError, match=reason):  # (before, hop=1e-300 built windows without end)
        predict_windows(df_learner, np.zeros(6 * 16000, np.float32), sample_rate=16000, **kwargs)


def test_an_embedding_is_what_the_last_layer_takes(df_learner, toy_folder):
    """``learn.embed``'s rows, through the network's last Linear layer, are its predictions: the embedding is
    exactly that layer's input, for every file, in the order given."""
    import torch

    files = sorted((toy_folder / "valid").rglob("*.wav"))[::-1]
    feats = df_learner.embed(files, bs=3)
    last = [m for m in df_learner.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert feats.shape == (len(files), last.in_features) and feats.dtype == torch.float32
    with torch.no_grad():
        probs = torch.softmax(last(feats), dim=1)
    for f, p in zip(files, probs):
        torch.testing.assert_close(p, df_learner.predict(f)[2], rtol=1e-4, atol=1e-5)
    rows = [[str(f), f.parent.name, True] for f in files[:4]]  # the loaders' own items (from_df rows), with labels
    again, labels = df_learner.embed(rows, with_labels=True)
    torch.testing.assert_close(again, feats[:4])
    assert [df_learner.dls.vocab[i] for i in labels] == [f.parent.name for f in files[:4]]
    was = df_learner.model.training
    df_learner.model.train()
    df_learner.embed(files[:1])
    assert df_learner.model.training  # the model's mode is left as it was
    df_learner.model.train(was)


def test_a_linear_probe_separates_what_the_frozen_network_separates(df_learner):
    from fastai_audio.errors import ParameterError
    from fastai_audio.inference import ProbeResult, linear_probe

    res = linear_probe(df_learner)
    assert isinstance(res, ProbeResult) and (res.n_train, res.n_valid) == (12, 8) and res.dim == 512
    assert res.accuracy >= 0.75  # 220 Hz against 880 Hz tones: even random features keep them apart
    valid = df_learner.dls.valid_ds.items[:2]
    assert len(res.classifier.predict(df_learner.embed(valid).numpy())) == 2
    import pandas as pd

    from fastai_audio.data import AudioDataLoaders
    from fastai_audio.transforms import AmplitudeToDB, MelSpectrogram

    files = [r[0] for r in df_learner.dls.train_ds.items]
    tagged = pd.DataFrame({"fname": files, "label": ["low high", "low", "high"] * (len(files) // 3)})
    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB()]
    tags = AudioDataLoaders.from_df(
        tagged, "/", label_delim=" ", valid_pct=0.5, seed=0, duration=1.0, bs=4, batch_tfms=tfms
    )
    with pytest.raises(ParameterError, match="multi-label"):
        linear_probe(df_learner, tags)


def test_embed_windows_gives_the_windows_of_predict_windows(df_learner, toy_folder):
    import torch

    from fastai_audio.core import TensorAudio
    from fastai_audio.inference import embed_windows, predict_windows
    from fastai_audio.io import load_audio

    path = sorted((toy_folder / "valid" / "low").glob("*.wav"))[-1]
    starts, feats = embed_windows(df_learner, path, window=0.5, hop=0.25)
    res = predict_windows(df_learner, path, window=0.5, hop=0.25)
    assert np.array_equal(starts, res.starts) and feats.shape[0] == len(starts)
    wav, sr = load_audio(path, sample_rate=16000, mono=True)
    second = TensorAudio(wav[..., 4000:12000], sample_rate=sr)  # the window starting at 0.25 s
    torch.testing.assert_close(feats[1], df_learner.embed([second])[0], rtol=1e-4, atol=1e-5)


def test_embed_takes_the_input_of_any_named_layer(df_learner, toy_folder):
    import torch

    from fastai_audio.errors import ParameterError

    files = sorted((toy_folder / "valid").rglob("*.wav"))[:3]
    linears = [(n, m) for n, m in df_learner.model.named_modules() if isinstance(m, torch.nn.Linear)]
    (first, layer), (last, _) = linears[0], linears[-1]
    pooled = df_learner.embed(files, layer=first)
    assert pooled.shape == (3, layer.in_features) and layer.in_features != linears[-1][1].in_features
    torch.testing.assert_close(df_learner.embed(files, layer=last), df_learner.embed(files))
    with pytest.raises(ParameterError, match="the model has no module 'nope'"):
        df_learner.embed(files, layer="nope")
