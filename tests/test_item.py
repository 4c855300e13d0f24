"""fastai_audio.transforms.item (and base): per-clip transforms, OpenAudio, and the type check that lets labels
through."""

import pickle

import numpy as np
import pytest
import torch
from conftest import write

from fastai_audio import ParameterError, TensorAudio
from fastai_audio.transforms import CropPad, DownmixMono, OpenAudio, Resample


def ramp(n: int, sample_rate: int = 1000, channels: int = 1) -> TensorAudio:
    return TensorAudio(torch.arange(float(n)).repeat(channels, 1), sample_rate=sample_rate, path="ramp.wav")


def test_croppad_centres_outside_training():
    out = CropPad(num_samples=4)(ramp(10), split_idx=1)
    assert out.tolist() == [[3, 4, 5, 6]]
    assert CropPad(num_samples=4)(ramp(10)).tolist() == [[3, 4, 5, 6]]  # predict/test: no split_idx


def test_croppad_random_offset_on_training_covers_the_clip():
    tfm = CropPad(num_samples=4)
    starts = {int(tfm(ramp(10), split_idx=0)[0, 0]) for _ in range(300)}
    assert starts == set(range(7))  # every offset 0..6 is drawn, none outside


def test_croppad_pinned_draw_gives_exact_output():
    tfm = CropPad(num_samples=4)
    tfm.before_call(None, split_idx=0)
    tfm._u = 0.999  # pin the draw: the last possible offset
    assert tfm._encode(ramp(10)).tolist() == [[6, 7, 8, 9]]


def test_croppad_duration_uses_each_clips_rate():
    tfm = CropPad(0.5)
    assert tfm(ramp(2000, 1000)).shape[-1] == 500
    assert tfm(ramp(2000, 2000)).shape[-1] == 1000


@pytest.mark.parametrize("mode,expected", [("zeros", [0, 1, 2, 0, 0]), ("repeat", [0, 1, 2, 0, 1])])
def test_croppad_pads_short_clips(mode, expected):
    out = CropPad(num_samples=5, pad_mode=mode)(ramp(3), split_idx=0)
    assert out.tolist() == [expected] and out.sample_rate == 1000


def test_croppad_error_mode_names_the_file():
    with pytest.raises(ParameterError, match=r"ramp.wav is 0.003 s long, shorter than the 0.005 s"):
        CropPad(num_samples=5, pad_mode="error")(ramp(3))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"duration": 1.0, "num_samples": 3},
        {"duration": -1.0},
        {"num_samples": 2.5},
        {"duration": 1.0, "pad_mode": "edge"},
    ],
)
def test_croppad_bad_parameters(kwargs):
    with pytest.raises(ParameterError):
        CropPad(**kwargs)


def test_downmix_averages_channels_and_keeps_metadata():
    x = TensorAudio(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), sample_rate=8000, path="s.wav")
    out = DownmixMono()(x)
    assert out.tolist() == [[2.0, 4.0]] and out.sample_rate == 8000 and out.path == "s.wav"


def test_resample_changes_rate_and_length_and_keeps_path():
    out = Resample(16000)(TensorAudio(torch.randn(2, 44100), sample_rate=44100, path="p.wav"))
    assert out.shape == (2, 16000) and out.sample_rate == 16000 and out.path == "p.wav"
    assert isinstance(out, TensorAudio)


def test_open_audio_needs_a_path_or_tensor_audio():
    with pytest.raises(ParameterError, match=r"cannot open a Tensor as audio: .*TensorAudio.create"):
        OpenAudio()(torch.zeros(100))
    x = OpenAudio(8000, mono=True, duration=0.5)(TensorAudio(torch.ones(2, 16000), sample_rate=16000))
    assert x.shape == (1, 4000) and x.sample_rate == 8000


def _ramp_file(tmp_path, sample_rate, seconds, channels=1):
    n = int(sample_rate * seconds)
    ramp = np.tile(np.arange(n, dtype=np.float32) / n, (channels, 1)) * 0.9
    return write(tmp_path / f"ramp_{sample_rate}_{channels}.wav", ramp, sample_rate, "FLOAT"), ramp


def test_open_audio_equals_the_item_transforms_one_by_one(tmp_path):
    path, _ = _ramp_file(tmp_path, 16000, 3.0, channels=2)
    fused = OpenAudio(16000, mono=True, duration=1.0)(path, split_idx=1)
    steps = CropPad(1.0)(Resample(16000)(DownmixMono()(TensorAudio.create(path))), split_idx=1)
    torch.testing.assert_close(fused, steps, rtol=0, atol=0)
    assert fused.path == path and fused.sample_rate == 16000


def test_open_audio_resampled_window_matches_away_from_its_edges(tmp_path):
    path, _ = _ramp_file(tmp_path, 44100, 3.0, channels=2)
    fused = OpenAudio(16000, mono=True, duration=1.0)(path, split_idx=1)
    steps = CropPad(1.0)(Resample(16000)(DownmixMono()(TensorAudio.create(path))), split_idx=1)
    assert fused.shape == steps.shape == (1, 16000)
    # the window is resampled on its own: the sinc filter sees no neighbours in its first and last few samples
    torch.testing.assert_close(fused[..., 64:-64], steps[..., 64:-64], rtol=0, atol=1e-3)


def test_open_audio_reads_only_the_window(tmp_path, frames_read):
    path, ramp = _ramp_file(tmp_path, 8000, 10.0)
    tfm = OpenAudio(None, duration=0.5)
    starts = set()
    for _ in range(50):
        x = tfm(path, split_idx=0)
        start = int(round(float(x[0, 0]) / 0.9 * 80000))
        np.testing.assert_allclose(x[0].numpy(), ramp[0, start : start + 4000], atol=1e-6)  # one contiguous window
        starts.add(start)
    assert set(frames_read) == {4000}  # never the whole file
    assert len(starts) > 40 and min(starts) >= 0 and max(starts) <= 76000
    centre = tfm(path, split_idx=1)
    assert int(round(float(centre[0, 0]) / 0.9 * 80000)) == 38000


@pytest.mark.parametrize("tfm", [OpenAudio(16000), DownmixMono(), Resample(16000), CropPad(2.0, pad_mode="repeat")])
def test_transforms_pickle(tfm):
    back = pickle.loads(pickle.dumps(tfm))
    assert type(back) is type(tfm) and back.__dict__.keys() == tfm.__dict__.keys()
    x = TensorAudio(torch.randn(1, 32000), sample_rate=16000)
    if not isinstance(tfm, CropPad):
        torch.testing.assert_close(back(x), tfm(x))


@pytest.mark.parametrize("tfm", [DownmixMono(), Resample(8000), CropPad(num_samples=300)])
def test_fast_path_equals_dispatch_and_passes_labels_through(tfm):
    x = TensorAudio(torch.randn(2, 1000), sample_rate=16000)
    via_dispatch = tfm.encodes(x)  # plum-dispatched method
    fast = tfm(x, split_idx=1)
    torch.testing.assert_close(fast, via_dispatch)
    label = torch.tensor(3)
    out_x, out_label = tfm((x, label), split_idx=1)
    assert out_label is label and out_x.shape == fast.shape
