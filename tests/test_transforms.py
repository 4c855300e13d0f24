import pickle

import pytest
import torch

from fastai_audio import ParameterError, TensorAudio
from fastai_audio.functional import crop, pad, pad_batch
from fastai_audio.transforms import CropPad, DownmixMono, OpenAudio, Resample


def ramp(n: int, sample_rate: int = 1000, channels: int = 1) -> TensorAudio:
    return TensorAudio(torch.arange(float(n)).repeat(channels, 1), sample_rate=sample_rate, path="ramp.wav")


def test_crop_takes_the_window():
    assert crop(torch.arange(10.0), 4, offset=3).tolist() == [3, 4, 5, 6]
    with pytest.raises(ParameterError, match="cannot crop 4 samples at offset 8"):
        crop(torch.arange(10.0), 4, offset=8)


def test_pad_modes():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert pad(x, 5).tolist() == [1, 2, 3, 0, 0]
    assert pad(x, 7, "repeat").tolist() == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ParameterError, match="pad mode"):
        pad(x, 7, "reflect")


def test_pad_batch_records_true_lengths():
    b, n = pad_batch([torch.ones(2, 3), torch.ones(2, 5)])
    assert b.shape == (2, 2, 5) and n.tolist() == [3, 5]
    assert b[0, :, 3:].abs().sum() == 0


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


@pytest.mark.parametrize("kwargs", [{}, {"duration": 1.0, "num_samples": 3}, {"duration": -1.0},
                                    {"num_samples": 2.5}, {"duration": 1.0, "pad_mode": "edge"}])  # fmt: skip
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


def test_open_audio_wraps_arrays_only_with_a_rate():
    with pytest.raises(ParameterError, match="sample_rate"):
        OpenAudio()(torch.zeros(100))
    x = OpenAudio(8000)(torch.zeros(100))
    assert isinstance(x, TensorAudio) and x.sample_rate == 8000 and x.shape == (1, 100)


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
