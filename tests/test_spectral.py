"""fastai_audio.transforms.spectral: the steps equal their functions, keep metadata, work in DataLoaders through the
adapter, pickle, train, and load state dicts of 0.1."""

import pickle

import numpy as np
import pytest
import torch
from conftest import sine
from fastai.torch_core import TensorCategory

from fastai_audio import ParameterError, TensorAudio
from fastai_audio.core import TensorSpectrogram
from fastai_audio.data import AudioDataLoaders
from fastai_audio.functional import amplitude_to_db, deltas, mel_filterbank, mfcc, stft_power
from fastai_audio.transforms import (
    CQT,
    MFCC,
    AmplitudeToDB,
    AudioFrontEnd,
    Delta,
    MelSpectrogram,
    SpecNormalize,
    SpectralStep,
    SpectralTransform,
    Spectrogram,
    mel_transforms,
    spectral_steps,
)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = np.stack(
        [sine(220 * (i + 1), 16000, 1.0) * (0.1 + i) + 0.01 * rng.standard_normal((1, 16000)) for i in range(3)]
    ).astype(np.float32)
    return TensorAudio(torch.from_numpy(x), sample_rate=16000)


def test_mel_transform_equals_its_functions(batch):
    tfm = MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40, f_min=20, f_max=8000)
    out = tfm(batch)
    fb = mel_filterbank(16000, 512, 40, f_min=20, f_max=8000, mel_scale="slaney", norm="slaney")
    expected = fb @ stft_power(batch.as_subclass(torch.Tensor), 512, hop_length=128)
    assert isinstance(out, TensorSpectrogram) and out.shape == (3, 1, 40, 126)
    torch.testing.assert_close(out.as_subclass(torch.Tensor), expected, rtol=1e-5, atol=1e-6)
    assert (out.scale, out.sample_rate, out.hop_length, out.f_min, out.f_max) == ("mel", 16000, 128, 20.0, 8000)


def test_a_batch_equals_its_items(batch):
    tfms = [MelSpectrogram(n_mels=32, n_fft=512), AmplitudeToDB(top_db=60), MFCC(n_mfcc=13), Delta()]

    def run(x):
        for t in tfms:
            x = t(x)
        return x

    whole = run(batch)
    for i in range(batch.shape[0]):
        torch.testing.assert_close(whole[i : i + 1], run(batch[i : i + 1]), rtol=1e-5, atol=1e-4)


def test_plain_tensors_and_labels(batch):
    step = Spectrogram(n_fft=256, hop_length=64)
    assert type(step(torch.randn(2, 1000))) is torch.Tensor  # the module: plain in, plain out (torchaudio's shape)
    tfm = SpectralTransform(step)  # the adapter: a spectrogram of known axes in the batch, labels untouched
    plain = tfm(torch.randn(2, 1000))
    assert isinstance(plain, TensorSpectrogram) and plain.shape == (2, 1, 129, 16) and plain.scale == "linear"
    label = TensorCategory([1, 2, 0])
    x, y = tfm((batch, label))
    assert y is label and x.shape[:2] == (3, 1)


def test_wrong_rate_is_refused(batch):
    with pytest.raises(
        ParameterError, match="the batch is at 16000 Hz but MelSpectrogram was built for sample_rate=8000"
    ):
        MelSpectrogram(sample_rate=8000)(batch)


def test_amplitude_to_db_is_per_item(batch):
    spec = MelSpectrogram(n_mels=32)(batch)
    db = AmplitudeToDB(top_db=50)(spec)
    flat = db.as_subclass(torch.Tensor).flatten(1)
    assert torch.allclose(flat.amax(1), torch.zeros(3))  # each item's own maximum is 0 dB
    assert (flat.amin(1) >= -50.0).all() and (flat.amin(1) == -50.0).sum() == 2  # clamped below its own maximum
    for i in range(3):  # a quiet item is not clamped relative to a loud one
        torch.testing.assert_close(db[i : i + 1], AmplitudeToDB(top_db=50)(spec[i : i + 1]))
    assert db.db and db.scale == "mel"
    torch.testing.assert_close(
        db.as_subclass(torch.Tensor), amplitude_to_db(spec.as_subclass(torch.Tensor), top_db=50.0)
    )


def test_mfcc_and_delta_equal_their_functions(batch):
    logmel = AmplitudeToDB()(MelSpectrogram(n_mels=40)(batch))
    coeffs = MFCC(n_mfcc=13)(logmel)
    torch.testing.assert_close(coeffs.as_subclass(torch.Tensor), mfcc(logmel.as_subclass(torch.Tensor), 13))
    assert coeffs.scale == "mfcc" and coeffs.shape[-2] == 13
    stacked = Delta(width=5, order=2)(coeffs)
    plain = coeffs.as_subclass(torch.Tensor)
    assert stacked.shape[1] == 3
    torch.testing.assert_close(stacked[:, :1].as_subclass(torch.Tensor), plain)
    torch.testing.assert_close(stacked[:, 1:2].as_subclass(torch.Tensor), deltas(plain, 5))
    torch.testing.assert_close(stacked[:, 2:].as_subclass(torch.Tensor), deltas(deltas(plain, 5), 5))


def test_lengths_become_frame_counts():
    x = TensorAudio(torch.randn(2, 1, 4000), sample_rate=16000)
    x.lengths = torch.tensor([4000, 2000])
    out = MelSpectrogram(n_mels=16, n_fft=256, hop_length=100)(x)
    assert out.lengths.tolist() == [41, 21] and out.shape[-1] == 41


def test_cqt_transform(batch):
    out = CQT(sample_rate=16000, hop_length=256, n_bins=60)(batch)
    assert isinstance(out, TensorSpectrogram) and out.shape[:3] == (3, 1, 60) and out.scale == "cqt"
    # the 660 Hz tone of item 2 peaks 52 semitones above C1 (12 * log2(660 / 32.70) = 52.0)
    assert int(out[2, 0].mean(-1).argmax()) == 52


def test_normalize_dataset_statistics_and_decode(toy_folder):
    tfms = [MelSpectrogram(n_mels=16, n_fft=512), AmplitudeToDB(), SpecNormalize(n_batches=3)]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms)
    norm = dls.after_batch.fs[-1]
    assert norm.mean.shape == (1, 1, 16, 1) and norm.std.shape == (1, 1, 16, 1)
    assert norm.module is tfms[-1] and {"mean", "std"} <= set(tfms[-1].state_dict())  # the step's buffers
    epoch = torch.cat([x.as_subclass(torch.Tensor) for x, _ in dls.train])  # the 12 training clips, new crops
    assert dls.train.one_batch()[0].normalized
    per_row = epoch.mean(dim=(0, 3)).flatten()
    assert per_row.abs().max() < 1.0 and abs(float(epoch.std()) - 1) < 0.5  # standardised per frequency row
    audio = dls.train.new(after_batch=None).one_batch()[0]  # another batch of training clips, as audio
    raw = AmplitudeToDB()(MelSpectrogram(n_mels=16, n_fft=512)(audio))
    decoded = norm.decode(norm(raw))
    torch.testing.assert_close(decoded.as_subclass(torch.Tensor), raw.as_subclass(torch.Tensor), rtol=1e-4, atol=1e-3)


def test_normalize_statistics_of_variable_length_batches_leave_the_padding_out(toy_folder):
    """Padded batches of clips of different lengths (duration=None) used to fail to concatenate; the statistics
    are those of the clips' own frames, the padding's silent frames left out."""
    tfms = [MelSpectrogram(n_mels=16, n_fft=512), AmplitudeToDB(), SpecNormalize(n_batches=10)]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=None, num_workers=0, batch_tfms=tfms)
    norm = dls.after_batch.fs[-1]
    frames = []
    for x, _ in dls.train.new(shuffle=False, batch_tfms=None, after_batch=tfms[:2]):
        frames += [item[..., : int(n)] for item, n in zip(x.as_subclass(torch.Tensor), x.lengths)]
    every = torch.cat(frames, dim=-1)  # (1, 16, all frames of the 12 clips), no padding
    torch.testing.assert_close(norm.mean[0, :, :, 0], every.mean(-1), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(norm.std[0, :, :, 0], every.std(-1), rtol=1e-5, atol=1e-4)


def test_normalize_per_item_and_without_statistics(batch):
    spec = AmplitudeToDB()(MelSpectrogram(n_mels=16)(batch))
    out = SpecNormalize(mode="item")(spec).as_subclass(torch.Tensor).flatten(1)
    torch.testing.assert_close(out.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(1), torch.ones(3), atol=1e-4, rtol=0)
    with pytest.raises(ParameterError, match="has no statistics yet"):
        SpecNormalize()(spec)


def test_front_end_transforms_pickle(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=mel_transforms())
    back = pickle.loads(pickle.dumps(dls))
    torch.testing.assert_close(
        back.valid.one_batch()[0].as_subclass(torch.Tensor), dls.valid.one_batch()[0].as_subclass(torch.Tensor)
    )


def test_trainable_front_end_gets_gradients(batch):
    mel = MelSpectrogram(n_mels=16, n_fft=256, trainable=True)
    front = AudioFrontEnd([mel, AmplitudeToDB(top_db=None)])
    params = dict(front.named_parameters())
    assert {"0.window", "0.fb"} <= set(params)
    out = front(batch.as_subclass(torch.Tensor))
    out.mean().backward()
    assert params["0.fb"].grad is not None and params["0.fb"].grad.abs().sum() > 0
    assert params["0.window"].grad is not None and torch.isfinite(params["0.window"].grad).all()
    assert not SpectralTransform(mel)(batch).requires_grad  # as a batch transform it builds no autograd graph


def test_mixed_precision_runs_the_stft_in_float32(batch):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = MelSpectrogram(n_mels=16)(batch)
    assert out.dtype == torch.float32


def test_every_function_parameter_is_exposed():
    window = torch.hamming_window(400, periodic=True)
    tfm = MelSpectrogram(
        sample_rate=16000,
        n_fft=512,
        hop_length=160,
        win_length=400,
        n_mels=40,
        f_min=50,
        f_max=7000,
        mel_scale="htk",
        norm=None,
        window=window,
        center=False,
        pad_mode="constant",
        power=1.0,
    )
    x = torch.randn(2, 16000)
    fb = mel_filterbank(16000, 512, 40, f_min=50, f_max=7000, mel_scale="htk", norm=None)
    expected = fb @ stft_power(x, 512, hop_length=160, win_length=400, window=window, center=False, power=1.0)
    torch.testing.assert_close(tfm(x)[:, 0].as_subclass(torch.Tensor), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ParameterError, match=r"window must be a 1-D tensor of win_length=400 values, got \(512,\)"):
        MelSpectrogram(win_length=400, window=torch.ones(512))


def test_cpu_chunking_gives_the_whole_batch_result():
    tfm = MelSpectrogram(n_mels=32, n_fft=512)
    x = torch.randn(40, 1, 16000)  # 40 clips: more than one chunk of 32
    whole = torch.matmul(tfm.fb, stft_power(x, 512, hop_length=128, window=tfm.window))  # one call, no chunks
    torch.testing.assert_close(tfm(x), whole, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make", "function", "message"),
    [
        (
            lambda: Spectrogram(hop_length=0),
            lambda: stft_power(torch.zeros(1, 4096), hop_length=0),
            "hop_length must be a positive integer, got 0",
        ),
        (
            lambda: MelSpectrogram(n_fft=512, win_length=1024),
            lambda: stft_power(torch.zeros(1, 4096), 512, win_length=1024),
            "win_length=1024 is larger than n_fft=512",
        ),
        (lambda: Spectrogram(power=0), lambda: stft_power(torch.zeros(1, 4096), power=0), "power must be a positive"),
        (lambda: AmplitudeToDB(ref=-1), lambda: amplitude_to_db(torch.ones(1, 4, 4), ref=-1), "ref must be 'max' or a"),
        (lambda: AmplitudeToDB(top_db=-3), lambda: amplitude_to_db(torch.ones(1, 4, 4), top_db=-3), "top_db must be"),
        (lambda: MFCC(dct_norm="l2"), lambda: mfcc(torch.zeros(1, 8, 4), 4, dct_norm="l2"), "dct_norm must be 'ortho'"),
        (lambda: Delta(width=4), lambda: deltas(torch.zeros(1, 8, 20), width=4), "width must be an odd integer >= 3"),
    ],
)
def test_a_transform_refuses_what_its_function_refuses_when_it_is_built(make, function, message):
    """The transform and its function share one check: a bad value fails when the transform is built, with the same
    message, not at the first batch (and never silently becomes a default)."""
    with pytest.raises(ParameterError, match=message):
        function()
    with pytest.raises(ParameterError, match=message):
        make()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_front_end_on_the_gpu_equals_the_cpu(batch, monkeypatch):
    """Every spectral transform computes where the batch is and keeps its metadata; cuFFT and MKL agree. The CQT's
    convolutions follow torch's cuDNN TF32 switch like any convolution: exact with it off, and with it on (torch's
    default) within the bound its docstring states (5.7e-5 of the maximum measured on an H200)."""
    tfms = [  # in the adapter, as a DataLoader runs them: it moves each step to the batch's device
        SpectralTransform(MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)),
        SpectralTransform(Spectrogram(n_fft=512)),
        SpectralTransform(CQT(sample_rate=16000, hop_length=256, n_bins=60)),
    ]
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    for tfm in tfms:
        cpu = tfm(batch)
        gpu = tfm(batch.cuda())
        assert gpu.device.type == "cuda" and type(gpu) is TensorSpectrogram and gpu.__dict__ == cpu.__dict__
        scale = float(cpu.abs().max())
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-6 * scale)  # float32 FFTs, different order
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    cpu, gpu = tfms[2](batch), tfms[2](batch.cuda()).cpu()
    assert float((gpu - cpu).abs().max()) <= 2e-4 * float(cpu.abs().max())
    db = AmplitudeToDB()(tfms[0](batch.cuda()))
    assert db.device.type == "cuda" and float(db.amax()) == 0.0
    front = AudioFrontEnd([MelSpectrogram(n_mels=40), AmplitudeToDB()]).cuda()  # a module, moved as modules are
    torch.testing.assert_close(front(batch.cuda()).cpu(), front.cpu()(batch), rtol=1e-3, atol=1e-3)


def test_a_front_end_is_its_steps_in_sequence_with_their_metadata(batch):
    steps = [MelSpectrogram(n_mels=16, n_fft=256), AmplitudeToDB(top_db=60), MFCC(n_mfcc=8), Delta(order=1)]
    front = AudioFrontEnd(steps)
    assert isinstance(front, torch.nn.Sequential) and list(front) == steps
    one_by_one = batch
    for step in steps:
        one_by_one = step(one_by_one)
    typed = front(batch)
    assert type(typed) is TensorSpectrogram and typed.__dict__ == one_by_one.__dict__
    assert (typed.scale, typed.db, typed.deltas, typed.sample_rate) == ("mfcc", True, 1, 16000)
    torch.testing.assert_close(typed.as_subclass(torch.Tensor), one_by_one.as_subclass(torch.Tensor))
    plain = front(batch.as_subclass(torch.Tensor))
    assert type(plain) is torch.Tensor and torch.equal(plain, typed.as_subclass(torch.Tensor))
    assert type(front[:2]) is AudioFrontEnd and front[:2](batch).db  # slices are front-ends too
    with pytest.raises(ParameterError, match="built for sample_rate=8000"):  # checked before any computation
        AudioFrontEnd([MelSpectrogram(sample_rate=8000), AmplitudeToDB()])(batch)
    with pytest.raises(ParameterError, match="AmplitudeToDB takes TensorSpectrogram batches, got a TensorAudio"):
        AmplitudeToDB()(batch)
    with pytest.raises(ParameterError, match="got torch.nn.modules.linear.Linear"):
        AudioFrontEnd([MelSpectrogram(), torch.nn.Linear(2, 2)])


def test_statistics_are_buffers_that_load_into_a_step_without_them(batch):
    spec = AmplitudeToDB()(MelSpectrogram(n_mels=16)(batch))
    fitted = SpecNormalize().fit([spec])
    assert set(fitted.state_dict()) == {"mean", "std"}
    fresh = SpecNormalize()
    assert fresh.state_dict() == {} and not fresh.fitted
    fresh.load_state_dict(fitted.state_dict())  # strict: no key called unexpected
    assert fresh.fitted
    torch.testing.assert_close(fresh(spec), fitted(spec))
    # in a front-end the statistics are part of the model's state
    front = AudioFrontEnd([MelSpectrogram(n_mels=16), AmplitudeToDB(), fitted])
    again = AudioFrontEnd([MelSpectrogram(n_mels=16), AmplitudeToDB(), SpecNormalize()])
    again.load_state_dict(front.state_dict())
    torch.testing.assert_close(again(batch), front(batch))


def test_a_state_dict_of_version_0_1_loads(batch):
    """fastai_audio 0.1's AudioFrontEnd kept the waveform steps' tensors under ``layers.<k>``."""
    trained = AudioFrontEnd([MelSpectrogram(n_mels=16, n_fft=256, trainable=True), AmplitudeToDB()])
    with torch.no_grad():
        trained[0].fb.mul_(2.0)
    old = {"layers.0.window": trained[0].window.detach().clone(), "layers.0.fb": trained[0].fb.detach().clone()}
    model = torch.nn.Sequential(AudioFrontEnd([MelSpectrogram(n_mels=16, n_fft=256, trainable=True), AmplitudeToDB()]))
    model.load_state_dict({f"0.{k}": v for k, v in old.items()})  # strict, nested under the model's prefix
    torch.testing.assert_close(model[0][0].fb, trained[0].fb)
    torch.testing.assert_close(model(batch), trained(batch))


def test_a_pickled_transform_of_version_0_1_is_refused_with_what_to_do():
    old_state = {"n_fft": 1024, "split_idx": None, "layer": object()}  # a fastai Transform's __dict__ in 0.1
    step = MelSpectrogram.__new__(MelSpectrogram)
    with pytest.raises(ParameterError, match="MelSpectrogram of fastai_audio 0.1.*export it with export_onnx"):
        step.__setstate__(old_state)


def test_the_adapter_reaches_the_step_and_takes_other_modules(batch, toy_folder):
    tfms = [MelSpectrogram(n_mels=16, n_fft=512), AmplitudeToDB(), SpecNormalize(n_batches=2)]
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0, batch_tfms=tfms)
    assert [type(t).__name__ for t in dls.after_batch.fs] == ["SpectralTransform"] * 3
    assert spectral_steps(dls.after_batch) == tfms and dls.after_batch.fs[0].n_mels == 16
    assert isinstance(tfms[0], SpectralStep) and "MelSpectrogram(sample_rate=16000" in dls.after_batch.fs[0].name
    norm = dls.after_batch.fs[-1]
    norm.mean = torch.zeros(1, 1, 16, 1)  # sets the step's statistics
    assert torch.equal(tfms[-1].mean, torch.zeros(1, 1, 16, 1)) and "mean" not in vars(norm)
    # a module that is not a SpectralStep (torchaudio's) runs on the plain tensor and keeps the batch's metadata
    torchaudio = pytest.importorskip("torchaudio")
    spec = MelSpectrogram(n_mels=16)(batch)
    out = SpectralTransform(torchaudio.transforms.AmplitudeToDB(top_db=80.0))(spec)
    assert type(out) is TensorSpectrogram and out.scale == "mel" and out.hop_length == spec.hop_length
    torch.testing.assert_close(out.amax(dim=(1, 2, 3)), 10 * torch.log10(spec.amax(dim=(1, 2, 3))))
    with pytest.raises(ParameterError, match="SpectralTransform takes an nn.Module"):
        SpectralTransform(lambda x: x)
