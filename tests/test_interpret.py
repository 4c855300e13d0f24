"""fastai_audio.interpret: show_results, plot_top_losses and AudioInterpretation on audio learners."""

import numpy as np
import torch
from fastai.metrics import accuracy
from torchvision.models import resnet18

from fastai_audio.data import AudioDataLoaders
from fastai_audio.learner import audio_learner
from fastai_audio.transforms import AmplitudeToDB, MelSpectrogram, SpecNormalize


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


def test_batches_results_and_interpretation_with_worker_processes(toy_folder, tmp_path):
    import matplotlib.pyplot as plt
    from fastai.interpret import ClassificationInterpretation

    tfms = [MelSpectrogram(n_mels=32, n_fft=512, hop_length=128), AmplitudeToDB(), SpecNormalize(mode="item")]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=2, batch_tfms=tfms)
    torch.manual_seed(0)
    learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy, path=tmp_path)

    def spectrogram_axes():
        axes = [ax for ax in plt.gcf().axes if ax.images]
        plt.close("all")
        return axes

    dls.show_batch(max_n=4)  # the axes need the sample rate and hop, carried from the workers
    axes = spectrogram_axes()
    assert len(axes) == 4 and all(ax.get_ylabel() == "Hz" and ax.get_title() in ("high", "low") for ax in axes)
    learn.show_results(max_n=4)
    assert all("/" in ax.get_title() and ax.get_ylabel() == "Hz" for ax in spectrogram_axes())
    interp = ClassificationInterpretation.from_learner(learn)
    assert interp.confusion_matrix().sum() == len(dls.valid_ds)
    interp.plot_top_losses(3)
    assert len([ax for ax in spectrogram_axes() if ax.get_ylabel() == "Hz"]) == 3


def test_top_losses_come_with_players_in_a_notebook(df_learner, monkeypatch):
    import matplotlib.pyplot as plt
    from IPython import display as ipd

    from fastai_audio import core
    from fastai_audio.interpret import AudioInterpretation

    shown = []
    monkeypatch.setattr(ipd, "display", lambda *objs: shown.extend(objs))
    interp = AudioInterpretation.from_learner(df_learner)
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
