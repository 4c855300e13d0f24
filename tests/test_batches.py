"""Batch-level decoding (fastai_audio.data.fill) and the loaders' worker processes (fastai_audio.data.workers).

The reference is the per-item path (fastai's: each clip a TensorAudio through OpenAudio, stacked), which the
loaders still take for item transforms: every deterministic (validation) batch must be the same tensors.
"""

from __future__ import annotations

import os
import signal
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import assert_same_batches, sine, write

import fastai_audio.data.audio_dl as loader_module
from fastai_audio.data import AudioDataLoaders
from fastai_audio.data.audio_dl import AudioDL
from fastai_audio.data.fill import filler_for
from fastai_audio.data.transfer import _to_float
from fastai_audio.errors import AudioFileError, TruncatedAudioError

# (subtype, rate, channels, container): every width soundfile writes, float, FLAC, OGG, other rates, stereo
FORMATS = [
    ("PCM_16", 16000, 1, "wav"),
    ("PCM_U8", 16000, 1, "wav"),
    ("PCM_24", 16000, 1, "wav"),
    ("PCM_32", 16000, 1, "wav"),
    ("FLOAT", 16000, 1, "wav"),
    ("PCM_16", 16000, 1, "flac"),
    ("PCM_24", 16000, 2, "flac"),
    ("VORBIS", 16000, 1, "ogg"),
    ("PCM_16", 22050, 1, "wav"),
    ("PCM_16", 16000, 2, "wav"),
    ("FLOAT", 8000, 2, "wav"),
    ("PCM_16", 44100, 2, "flac"),
]


@pytest.fixture(scope="module")
def formats_folder(tmp_path_factory):
    """Two classes of clips in every format of FORMATS, 0.3 to 1.4 s long, in train/ and valid/."""
    root = tmp_path_factory.mktemp("formats")
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for label in ("a", "b"):
            for k, (subtype, rate, channels, ext) in enumerate(FORMATS):
                seconds = 0.3 + 0.1 * k
                wav = rng.uniform(-0.7, 0.7, (channels, int(seconds * rate))).astype(np.float32)
                write(root / split / label / f"{label}_{k:02d}.{ext}", wav, rate, subtype=subtype)
    return root


def per_item(dl) -> list:
    """The batches of ``dl`` made item by item (fastai's path), for the same loader arguments."""
    real = loader_module.filler_for
    loader_module.filler_for = lambda dl, base: None
    try:
        return list(dl)
    finally:
        loader_module.filler_for = real


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration": 1.0},
        {"duration": 1.0, "pad_mode": "repeat"},
        {"duration": 0.5, "sample_rate": 22050},
        {"duration": None},
        {"duration": 0.8, "mono": False, "sample_rate": 16000},
    ],
)
def test_batches_equal_the_per_item_path(formats_folder, workers, kwargs):
    if not kwargs.get("mono", True):  # stereo kept: only the two-channel files can share batches
        files = [f for f in formats_folder.rglob("*.*") if sf.info(str(f)).channels == 2]
        dls = AudioDataLoaders.from_files(
            formats_folder, files, lambda p: p.parent.name, bs=3, seed=0, num_workers=workers, **kwargs
        )
    else:
        dls = AudioDataLoaders.from_folder(formats_folder, bs=5, num_workers=workers, **kwargs)
    assert filler_for(dls.valid, AudioDL) is not None
    got, want = list(dls.valid), per_item(dls.valid.new(num_workers=0))
    assert_same_batches(got, want)
    assert got[0][0].dtype == torch.float32 and got[0][0].sample_rate == want[0][0].sample_rate


def test_multi_label_and_dataframe_loaders_equal_the_per_item_path(formats_folder):
    files = sorted(formats_folder.rglob("*.*"))
    df = pd.DataFrame(
        {
            "fname": [str(f) for f in files],
            "tags": [f"{f.parent.name} k{i % 3}" for i, f in enumerate(files)],
            "is_valid": [f.parts[-3] == "valid" for f in files],
        }
    )
    dls = AudioDataLoaders.from_df(
        df, "/", "fname", "tags", valid_col="is_valid", label_delim=" ", bs=4, duration=0.6, num_workers=2
    )
    got = list(dls.valid)
    assert_same_batches(got, per_item(dls.valid.new(num_workers=0)))
    assert got[0][1].shape == (4, 5)  # one-hot over a, b, k0, k1, k2


def test_int16_batches_are_the_float_batches_scaled_exactly(formats_folder):
    dls = AudioDataLoaders.from_folder(formats_folder, bs=4, duration=0.7)
    filler = filler_for(dls.valid, AudioDL)
    pcm16 = [
        i
        for i in range(len(dls.valid_ds))
        if sf.info(str(filler.source(i))).subtype in ("PCM_16", "PCM_U8")
        and sf.info(str(filler.source(i))).samplerate == 16000
        and sf.info(str(filler.source(i))).channels == 1
    ]
    assert len(pcm16) >= 4
    ints = filler.fill(pcm16, None, int16=True)
    floats = filler.fill(pcm16, None, int16=False)
    assert ints.audio.dtype == np.int16 and floats.audio.dtype == np.float32
    assert torch.equal(_to_float(torch.from_numpy(ints.audio)), torch.from_numpy(floats.audio))
    mixed = filler.fill(pcm16[:2] + [i for i in range(len(dls.valid_ds)) if i not in pcm16][:2], None, int16=True)
    assert mixed.audio.dtype == np.float32  # one clip that is not 16-bit at the rate: the whole batch in float


def test_training_crops_follow_the_draws_and_the_loaders_seed(formats_folder):
    dls = AudioDataLoaders.from_folder(formats_folder, bs=6, duration=0.5, num_workers=0, seed=0)
    filler = filler_for(dls.train, AudioDL)
    long = [i for i in range(len(dls.train_ds)) if sf.info(str(filler.source(i))).duration > 0.9][:6]
    first, last = filler.fill(long, [0.0] * 6).audio, filler.fill(long, [0.999] * 6).audio
    assert not np.array_equal(first, last)
    opener = filler.opener
    for row, i in zip(first, long):  # the draw 0.0 keeps each clip's start, as the per-item crop does
        np.testing.assert_array_equal(row, opener.clip(filler.source(i), 0.0)[0].numpy())
    a, b = dls.train.new(shuffle=True), dls.train.new(shuffle=True)
    b.rng.setstate(a.rng.getstate())
    assert_same_batches(list(a), list(b))  # the same loader state gives the same epoch, workers or not
    c = dls.train.new(shuffle=True, num_workers=2)
    c.rng.setstate(a.rng.getstate())
    a.rng.setstate(b.rng.getstate())
    assert_same_batches(list(c), list(a))


@pytest.mark.parametrize("workers", [0, 2])
def test_item_transforms_make_items_the_fastai_way_in_the_same_workers(formats_folder, workers):
    from fastai_audio.data.fill import ItemFiller
    from fastai_audio.transforms import DownmixMono

    dls = AudioDataLoaders.from_folder(
        formats_folder, bs=4, duration=0.5, item_tfms=[DownmixMono()], num_workers=workers
    )
    assert isinstance(filler_for(dls.valid, AudioDL), ItemFiller)
    got = list(dls.valid)
    assert_same_batches(got, per_item(dls.valid.new(num_workers=0)))
    plain = AudioDataLoaders.from_folder(formats_folder, bs=4, duration=0.5)
    assert_same_batches(got, list(plain.valid))  # (a downmix after the opener's own changes nothing)
    if workers:
        assert dls.valid._pool.memory is not None and dls.valid._pool.in_use() <= len(got)


def test_a_replaced_batching_step_takes_fastais_own_iteration(formats_folder):
    plain = AudioDataLoaders.from_folder(formats_folder, bs=4, duration=0.5)
    made = []

    def create_item(s):
        made.append(s)
        return plain.valid_ds[s]

    dl = plain.valid.new(create_item=create_item)
    assert filler_for(dl, AudioDL) is None
    assert_same_batches(list(dl), list(plain.valid))
    assert made == list(range(len(plain.valid_ds)))


# ---- bad files -------------------------------------------------------------------------------------------------


@pytest.fixture
def folder_with_a_bad_file(tmp_path):
    for split in ("train", "valid"):
        for label, freq in (("a", 220.0), ("b", 880.0)):
            for i in range(4):
                write(tmp_path / split / label / f"{label}{i}.wav", sine(freq, 16000, 0.6), 16000)
    bad = tmp_path / "valid" / "a" / "a1.wav"
    bad.write_bytes(bad.read_bytes()[:3000])  # truncated after the check below ran: found when it is read
    return tmp_path, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_file_raises_naming_it(folder_with_a_bad_file, workers):
    root, bad = folder_with_a_bad_file
    dls = AudioDataLoaders.from_folder(root, bs=4, duration=0.5, num_workers=workers)
    with pytest.raises(TruncatedAudioError, match="a1.wav: is truncated"):
        list(dls.valid)
    assert len(list(dls.train)) == 2  # the loader (and its workers) go on serving


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_fills_the_batch_and_names_the_file(folder_with_a_bad_file, workers):
    root, bad = folder_with_a_bad_file
    before = bad.read_bytes()
    dls = AudioDataLoaders.from_folder(root, bs=4, duration=0.5, num_workers=workers)
    dl = dls.valid.new(on_error="skip")  # (from_folder's on_error='skip' drops bad files up front)
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 bad audio file.*a1.wav: is truncated"):
        batches = list(dl)
    assert [len(b[0]) for b in batches] == [4, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named once per loader, not every epoch
        list(dl)
    assert bad.read_bytes() == before  # the user's file is left as it is


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_replaces_a_file_that_breaks_off_while_it_is_read(tmp_path, workers):
    """A FLAC cut short opens (its header is whole) and fails part-way through its samples: skipped all the same."""
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for label in ("a", "b"):
            for i in range(4):
                wav = rng.uniform(-0.5, 0.5, (1, 16000)).astype(np.float32)
                write(tmp_path / split / label / f"{label}{i}.flac", wav, 16000, subtype="PCM_16")
    bad = tmp_path / "valid" / "b" / "b2.flac"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    dls = AudioDataLoaders.from_folder(tmp_path, bs=4, duration=1.0, num_workers=workers)
    with pytest.raises(TruncatedAudioError, match=r"b2\.flac: breaks off"):
        list(dls.valid)
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 bad audio file.*b2\.flac: breaks off"):
        batches = list(dls.valid.new(on_error="skip"))
    assert [len(b[0]) for b in batches] == [4, 4]


def test_on_error_skip_reaches_the_loaders(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, on_error="skip")
    assert dls.train.on_error == dls.valid.on_error == "skip"
    assert AudioDataLoaders.from_folder(toy_folder, bs=4).train.on_error == "raise"


# ---- the worker processes --------------------------------------------------------------------------------------


def test_workers_start_once_and_serve_every_epoch(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=2)
    dl = dls.train
    list(dl)
    pool = dl._pool
    pids = [p.pid for p in pool._procs]
    for _ in range(3):  # the first batch of each epoch comes from the same processes: none starts for it
        next(iter(dl))
        assert dl._pool is pool and [p.pid for p in pool._procs] == pids and all(p.is_alive() for p in pool._procs)
    dl.close()
    assert all(not p.is_alive() for p in pool._procs)
    assert len(list(dl)) == len(dl) and dl._pool is not pool  # a new pool after close


def test_slots_are_reused_only_once_freed_and_none_leaks(mixed_folder):
    dls = AudioDataLoaders.from_folder(mixed_folder, bs=1, duration=0.5, num_workers=2)  # 14 batches, 7 slots
    dl = dls.valid
    want = per_item(dl.new(num_workers=0))
    held = list(dl)  # every batch kept: more batches than slots, so some travel the usual way
    pool = dl._pool
    in_slots = [
        pool.memory.array.ctypes.data <= x.data_ptr() < pool.memory.array.ctypes.data + pool.memory.array.size
        for x, _ in held
    ]
    assert any(in_slots) and not all(in_slots) and pool.in_use() == sum(in_slots)
    assert_same_batches(held, want)
    del held
    assert pool.in_use() == 0
    for _ in range(5):  # five epochs, one batch held at a time: every batch in a slot, every slot freed
        seen = [(x.clone(), y) for x, y in dl]
        assert_same_batches(seen, want)
    del seen
    assert pool.in_use() == 0


def test_an_epoch_left_early_frees_its_slots_and_the_next_one_is_whole(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=2, duration=1.0, num_workers=2)
    dl = dls.valid
    want = [(x.clone(), y) for x, y in dl]  # (copies: a batch held over its slot keeps the slot)
    for _ in range(3):
        it = iter(dl)
        next(it)
        del it
    assert_same_batches([(x.clone(), y) for x, y in dl], want)
    assert dl._pool.in_use() == 0


def test_a_worker_that_dies_is_an_error_naming_it_not_a_hang(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=2, duration=1.0, num_workers=2)
    dl = dls.train
    list(dl)
    victim = dl._pool._procs[1]
    os.kill(victim.pid, signal.SIGKILL)  # as the out-of-memory killer does
    victim.join(timeout=10)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"loader worker 1 \(pid \d+\) was killed by signal 9 \(out of memory\?\)"):
        list(dl)
    assert time.perf_counter() - start < 30
    assert len(list(dl)) == len(dl)  # a new pool serves the next epoch


def test_loaders_with_workers_pickle_without_their_processes(toy_folder):
    import pickle

    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=2)
    next(iter(dls.train))
    back = pickle.loads(pickle.dumps(dls.train))
    assert back._pool is None and len(list(back)) == len(dls.train)


def test_a_file_error_in_a_worker_keeps_its_type_and_tells_where(folder_with_a_bad_file):
    root, _ = folder_with_a_bad_file
    dls = AudioDataLoaders.from_folder(root, bs=4, duration=0.5, num_workers=2)
    with pytest.raises(AudioFileError) as info:
        list(dls.valid)
    assert any("loader worker" in note for note in getattr(info.value, "__notes__", []))


# ---- on a GPU: int16 across, copies on a side stream one batch ahead --------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("workers", [0, 2])
def test_gpu_batches_equal_the_per_item_path_exactly(formats_folder, workers):
    dls = AudioDataLoaders.from_folder(formats_folder, bs=5, duration=0.6, num_workers=workers, device="cuda")
    got, want = list(dls.valid), per_item(dls.valid.new(num_workers=0))
    assert got[0][0].device.type == "cuda" and got[0][0].dtype == torch.float32
    assert_same_batches(got, want)  # int16 * 2**-15 on the GPU is libsndfile's float32, bit for bit
    if workers:
        assert dls.valid._pool.memory.pinned  # copies ran asynchronously, from the slots themselves


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_steps_on_gpu_batches_train_the_weights_the_per_item_path_trains(toy_folder, tmp_path, precision):
    """Identical batches give identical weights with deterministic kernels: exactly in float32; under bf16 autocast
    within 1e-3 (the same kernels on the same inputs; the tolerance only covers cuDNN choosing another algorithm
    for the second run)."""
    from torchvision.models import resnet18

    from fastai_audio.learner import audio_learner
    from fastai_audio.transforms import mel_transforms

    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    weights = []
    for engine in (True, False):
        dls = AudioDataLoaders.from_folder(
            toy_folder,
            bs=4,
            duration=1.0,
            num_workers=2,
            device="cuda",
            seed=0,
            batch_tfms=mel_transforms("speech", n_mels=32),
        )
        dl = dls.train.new(shuffle=False, drop_last=True)
        batches = list(dl) if engine else per_item(dl.new(num_workers=0))
        torch.manual_seed(0)
        learn = audio_learner(dls, resnet18, pretrained=False, path=tmp_path)
        if precision == "bf16":
            learn.to_bf16()
        learn.model.cuda().train()
        opt = torch.optim.SGD(learn.model.parameters(), lr=0.1)
        for xb, yb in batches[:2]:
            with torch.autocast("cuda", torch.bfloat16, enabled=precision == "bf16"):
                loss = torch.nn.functional.cross_entropy(learn.model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        weights.append(torch.cat([p.detach().flatten().float().cpu() for p in learn.model.parameters()]))
    if precision == "fp32":
        assert torch.equal(weights[0], weights[1])
    else:
        torch.testing.assert_close(weights[0], weights[1], rtol=1e-3, atol=1e-3)


def test_a_worker_that_dies_holding_a_batch_stops_the_epoch_with_an_error(toy_folder, monkeypatch):
    """The worker dies while filling (here: it exits on its first task); the epoch ends with the error within the
    poll interval instead of waiting forever for the batch."""
    from fastai_audio.data import fill

    real = fill.BatchFiller.fill

    def dies_in_a_worker(self, *args, **kwargs):
        if os.getpid() != main:
            os._exit(3)
        return real(self, *args, **kwargs)

    main = os.getpid()
    monkeypatch.setattr(fill.BatchFiller, "fill", dies_in_a_worker)
    dls = AudioDataLoaders.from_folder(toy_folder, bs=2, duration=1.0, num_workers=2)
    with pytest.raises(
        RuntimeError,
        match=r"loader worker \d \(pid \d+\) exited with code 3 while filling a batch of "
        r"items \[\d+, \d+\]",
    ):
        list(dls.valid)
    assert dls.valid.one_batch()[0].shape == (2, 1, 16000)  # the main process still reads


def test_a_forked_process_that_drops_its_copy_of_a_pool_leaves_the_pool_alone(toy_folder):
    """Another loader's workers (or any forked process) inherit a copy of this loader's pool; freeing that copy
    must not stop the workers, which belong to the process that started them."""
    import gc
    import multiprocessing

    dls = AudioDataLoaders.from_folder(toy_folder, bs=2, duration=1.0, num_workers=2)
    want = [(x.clone(), y) for x, y in dls.valid]

    def drop_the_copy():
        dls.valid.close()
        gc.collect()

    child = multiprocessing.get_context("fork").Process(target=drop_the_copy)
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0 and all(p.is_alive() for p in dls.valid._pool._procs)
    assert_same_batches([(x.clone(), y) for x, y in dls.valid], want)


def test_the_pool_starts_again_when_the_way_batches_are_filled_changes(toy_folder):
    from fasttransform import Pipeline

    from fastai_audio.data.fill import ItemFiller
    from fastai_audio.transforms import DownmixMono

    dl = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=2).valid
    want = [(x.clone(), y) for x, y in dl]
    first = dl._pool
    dl.after_item = Pipeline([DownmixMono()])  # an item transform added after the workers started
    assert isinstance(filler_for(dl, AudioDL), ItemFiller)
    assert_same_batches([(x.clone(), y) for x, y in dl], want)
    assert dl._pool is not first and first._closed and not any(p.is_alive() for p in first._procs)


class _BadItems(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise TruncatedAudioError(f"clip{i}.wav", "is truncated: its header declares 64000 frames but only 8 are there")


def test_pytorchs_own_workers_keep_the_error_type_too():
    """Loaders that make batches the fastai way (item transforms on shards, replaced batching steps) run in
    PyTorch's workers, which re-raise an error as ``type(err)(its text)``: still the library's type."""
    with pytest.raises(TruncatedAudioError, match=r"clip0\.wav: is truncated") as info:
        next(iter(torch.utils.data.DataLoader(_BadItems(), num_workers=1)))
    assert isinstance(info.value, AudioFileError) and "Caught TruncatedAudioError in DataLoader" in str(info.value)
