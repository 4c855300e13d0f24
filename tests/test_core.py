import pickle

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import sine, write

from fastai_audio import ParameterError, TensorAudio, TensorSpectrogram
from fastai_audio.transforms import (
    AmplitudeToDB,
    MelSpectrogram,
    Spectrogram,
)


@pytest.fixture
def clip():
    return TensorAudio(torch.from_numpy(sine(440, 16000, 0.5, channels=2)), sample_rate=16000, path="a.wav")


def test_create_from_file_records_rate_and_path(tmp_path):
    path = write(tmp_path / "x.wav", sine(440, 22050, 0.2), 22050)
    x = TensorAudio.create(path, sample_rate=16000)
    assert x.sample_rate == 16000 and x.path == path and x.shape == (1, 3200)


def test_create_from_array_needs_a_rate():
    with pytest.raises(ParameterError, match="sample_rate"):
        TensorAudio.create(np.zeros(10))
    x = TensorAudio.create(np.zeros(10), sample_rate=8000)
    assert x.shape == (1, 10) and x.dtype == torch.float32 and x.duration == pytest.approx(10 / 8000)


@pytest.mark.parametrize(
    "op",
    [
        lambda x: x * 0.5,
        lambda x: x[..., :100],
        lambda x: x.mean(0, keepdim=True),
        lambda x: x.clone(),
        lambda x: x.to(torch.float64),
        lambda x: x.contiguous(),
        lambda x: torch.stack([x, x]),
        lambda x: pickle.loads(pickle.dumps(x)),
    ],
)
def test_metadata_survives(clip, op):
    out = op(clip)
    assert isinstance(out, TensorAudio)
    assert out.sample_rate == 16000 and out.path == "a.wav"


@pytest.mark.parametrize(
    "op",
    [lambda x: x.clone(), lambda x: x * 2, lambda x: x[:, :, :10], lambda x: pickle.loads(pickle.dumps(x))],
)
def test_spectrogram_metadata_survives(op):
    spec = TensorSpectrogram(torch.rand(2, 1, 8, 20), sample_rate=16000, hop_length=256, scale="mel", f_min=0.0)
    out = op(spec)
    assert isinstance(out, TensorSpectrogram)
    assert (out.sample_rate, out.hop_length, out.scale, out.f_min) == (16000, 256, "mel", 0.0)
    assert out.__dict__ is not spec.__dict__  # a copy: changing one's axes leaves the other's alone


def test_pickle_keeps_values(clip):
    back = pickle.loads(pickle.dumps(clip))
    torch.testing.assert_close(back, clip)


def test_show_draws_every_channel_against_seconds(clip):
    ax = clip.show()
    assert len(ax.lines) == 2
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_xlim()[1] == pytest.approx((clip.shape[-1] - 1) / 16000)
    assert ax.get_title() == "a.wav"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), clip[0].numpy())
    plt.close("all")


def test_player_carries_the_rate(clip):
    wav_bytes = clip.player().data
    assert wav_bytes[:4] == b"RIFF"  # a WAV in memory
    assert int.from_bytes(wav_bytes[24:28], "little") == 16000  # the header's sample rate field
    assert int.from_bytes(wav_bytes[22:24], "little") == 2  # both channels


def test_spectrogram_show_labels_its_axes():
    x = TensorAudio(torch.from_numpy(sine(1000, 16000, 1.0)), sample_rate=16000)
    spec = AmplitudeToDB()(MelSpectrogram(n_mels=64, f_max=8000)(x))[0]
    ax = spec.show()
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "Hz"
    left, right = ax.images[0].get_extent()[:2]
    assert right - left == pytest.approx(spec.duration) and left == pytest.approx(-spec.hop_length / 2 / 16000)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "1k" in labels and "4k" in labels
    # the 1 kHz tone is drawn at the 1k tick
    row = int(spec[0].mean(-1).argmax())
    tick = ax.get_yticks()[labels.index("1k")]
    assert abs(row - tick) <= 1
    assert len(ax.figure.axes) == 2  # the colour bar
    plt.close("all")


def test_linear_axis_ticks_are_evenly_spaced():
    spec = Spectrogram(n_fft=1024, hop_length=256)(TensorAudio(torch.randn(1, 1, 16000), sample_rate=16000))[0]
    ax = spec.show(vmin=0, vmax=1)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["0", "2k", "4k", "6k", "8k"] and ax.images[0].get_clim() == (0, 1)
    plt.close("all")
