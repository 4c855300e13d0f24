import pickle
import random
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import sine, tree_digest, write
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import Categorize, ColReader, GrandparentSplitter, RandomSplitter, parent_label
from fastai.torch_core import TensorCategory

from fastai_audio import AudioFileError, ParameterError, TensorAudio
from fastai_audio._compat import item_maker, use_shims
from fastai_audio.data import AudioBlock, AudioDataLoaders, RegexLabeller, get_audio_files
from fastai_audio.transforms import Resample


def test_get_audio_files_finds_every_clip(toy_folder):
    files = get_audio_files(toy_folder)
    assert len(files) == 20 and all(f.suffix == ".wav" for f in files)
    assert len(get_audio_files(toy_folder, folders=["valid"])) == 8
    (toy_folder / "notes.txt").write_text("not audio")
    assert len(get_audio_files(toy_folder)) == 20
    (toy_folder / "notes.txt").unlink()


def test_from_folder_batches(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    x, y = dls.one_batch()
    assert isinstance(x, TensorAudio) and x.shape == (4, 1, 16000) and x.dtype == torch.float32
    assert x.sample_rate == 16000
    assert dls.c == 2 and dls.classes == ["high", "low"]
    assert len(dls.train_ds) == 12 and len(dls.valid_ds) == 8


def test_validation_crops_are_deterministic(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=8, duration=1.0, num_workers=0)
    a, b = dls.valid.one_batch()[0], dls.valid.one_batch()[0]
    torch.testing.assert_close(a, b)


def test_workers_keep_the_sample_rate(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=3, duration=0.5, sample_rate=8000, num_workers=2)
    batches = list(dls.train)
    assert len(batches) == 4
    assert all(isinstance(x, TensorAudio) and x.sample_rate == 8000 and x.shape[-1] == 4000 for x, _ in batches)


def test_dataloaders_pickle_round_trip(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    back = pickle.loads(pickle.dumps(dls))
    (x0, y0), (x1, y1) = dls.valid.one_batch(), back.valid.one_batch()
    torch.testing.assert_close(x0, x1)
    assert y0.tolist() == y1.tolist() and x1.sample_rate == 16000


def test_audio_block_in_a_datablock(toy_folder):
    dblock = DataBlock(blocks=(AudioBlock(sample_rate=8000, duration=0.25), CategoryBlock),
                       get_items=get_audio_files, get_y=parent_label, splitter=GrandparentSplitter())  # fmt: skip
    dls = dblock.dataloaders(toy_folder, bs=5, num_workers=0)
    x, _ = dls.one_batch()
    assert x.shape == (5, 1, 2000) and x.sample_rate == 8000


def test_stereo_is_kept_when_mono_is_false(tmp_path):
    for i in range(4):
        write(tmp_path / ("train" if i < 2 else "valid") / "a" / f"{i}.wav", sine(440, 8000, 0.5, channels=8), 8000)
    dls = AudioDataLoaders.from_folder(tmp_path, bs=2, mono=False, sample_rate=8000, duration=0.5, num_workers=0)
    x, _ = dls.one_batch()
    assert x.shape == (2, 8, 4000)
    assert float(x[0, 7].abs().max()) == pytest.approx(float(x[0, 0].abs().max()) / 8, rel=1e-3)  # kept apart
    dls = AudioDataLoaders.from_folder(tmp_path, bs=2, mono=True, sample_rate=8000, duration=0.5, num_workers=0)
    assert dls.one_batch()[0].shape == (2, 1, 4000)


def test_from_re_labels_with_the_pattern(toy_folder):
    dls = AudioDataLoaders.from_re(toy_folder, r"(low|high)_\d+\.wav$", valid_pct=None, bs=4, duration=1.0,
                                   num_workers=0)  # fmt: skip
    assert dls.classes == ["high", "low"] and len(dls.valid_ds) == 8


def test_from_re_names_the_file_the_pattern_misses(toy_folder):
    with pytest.raises(ParameterError, match=r"label pattern r'\(cat\)_\\d\+' matches nothing in .*(low|high)_\d\.wav"):
        AudioDataLoaders.from_re(toy_folder, r"(cat)_\d+", bs=4, num_workers=0)


def test_regex_labeller_needs_a_group():
    with pytest.raises(ParameterError, match="needs a group"):
        RegexLabeller(r"\w+\.wav")
    assert pickle.loads(pickle.dumps(RegexLabeller(r"(\w+)_\d"))).__call__("a/b/dog_1.wav") == "dog"


def test_from_df_single_and_multi_label(toy_folder):
    files = sorted(get_audio_files(toy_folder))
    df = pd.DataFrame({"fname": [str(f.relative_to(toy_folder)) for f in files],
                       "tags": [f"{f.parent.name} {'odd' if i % 2 else 'even'}" for i, f in enumerate(files)],
                       "label": [f.parent.name for f in files],
                       "is_valid": [f.parts[-3] == "valid" for f in files]})  # fmt: skip
    dls = AudioDataLoaders.from_df(df, toy_folder, "fname", "label", valid_col="is_valid", bs=4, duration=1.0,
                                   num_workers=0)  # fmt: skip
    assert dls.classes == ["high", "low"] and len(dls.valid_ds) == 8
    multi = AudioDataLoaders.from_df(df, toy_folder, "fname", "tags", label_delim=" ", valid_col="is_valid", bs=4,
                                     duration=1.0, num_workers=0)  # fmt: skip
    x, y = multi.one_batch()
    assert multi.classes == ["even", "high", "low", "odd"] and y.shape == (4, 4) and y.sum(1).tolist() == [2.0] * 4


def test_from_df_unknown_column(toy_folder):
    with pytest.raises(ParameterError, match="fn_col 'file' is not a column"):
        AudioDataLoaders.from_df(pd.DataFrame({"fname": [], "label": []}), toy_folder, "file", "label")


def test_variable_length_batches_pad_and_report_lengths(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=None, num_workers=0)
    for x, _ in dls.train:
        assert x.lengths.shape == (x.shape[0],) and int(x.lengths.max()) == x.shape[-1]
        for clip, n in zip(x, x.lengths):
            assert clip[..., n:].abs().sum() == 0  # padding is silence
            assert clip[..., :n].abs().max() > 0.1
    # validation batches come longest first (get_preds restores dataset order)
    lengths = np.concatenate([x.lengths.numpy() for x, _ in dls.valid])
    assert (np.diff(lengths) <= 0).all()


def test_bucketing_reduces_padding(tmp_path):
    rng = np.random.default_rng(0)
    for i, seconds in enumerate(rng.uniform(0.1, 2.0, size=64)):
        write(tmp_path / "train" / "a" / f"{i}.wav", sine(440, 8000, seconds), 8000)
    write(tmp_path / "valid" / "a" / "v.wav", sine(440, 8000, 0.5), 8000)
    dls = AudioDataLoaders.from_folder(tmp_path, bs=8, duration=None, sample_rate=8000, num_workers=0)

    def padded_fraction(batches):
        total = sum(x.shape[0] * x.shape[-1] for x in batches)
        return 1 - sum(int(x.lengths.sum()) for x in batches) / total

    bucketed = padded_fraction([x for x, _ in dls.train])
    lengths = dls.train.lengths
    order = np.random.default_rng(1).permutation(len(lengths))
    random_batches = [lengths[order[s : s + 8]] for s in range(0, len(order), 8)]
    unbucketed = 1 - sum(b.sum() for b in random_batches) / sum(len(b) * b.max() for b in random_batches)
    assert bucketed < 0.1 < unbucketed


def test_mixed_rates_without_resampling_name_the_files(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=12, sample_rate=None, duration=None, num_workers=0,
                                       shuffle=False)  # fmt: skip
    with pytest.raises(ParameterError, match=r"different sample rates: .*\.wav is at \d+ Hz and .*sample_rate="):
        dls.train.one_batch()


def test_mixed_channels_without_downmix_name_the_files(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=12, mono=False, duration=1.0, num_workers=0)
    with pytest.raises(ParameterError, match="different channel counts: .*mono=True"):
        dls.train.one_batch()


def test_mixed_rates_are_resampled_to_one(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=12, sample_rate=16000, duration=1.0, num_workers=0)
    x, _ = dls.train.one_batch()
    assert x.shape == (12, 1, 16000) and x.sample_rate == 16000


def test_on_error_skip_warns_naming_every_bad_file(toy_folder, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(toy_folder, root)
    (root / "train" / "low" / "empty.wav").write_bytes(b"")
    (root / "valid" / "high" / "text.wav").write_text("this is not audio")
    with pytest.warns(UserWarning, match=r"skipping 2 bad audio file\(s\) of 22:") as record:
        dls = AudioDataLoaders.from_folder(root, bs=4, duration=1.0, num_workers=0, on_error="skip")
    message = str(record[0].message)
    assert "empty.wav: is empty" in message and "text.wav: cannot be decoded" in message
    assert len(dls.train_ds) + len(dls.valid_ds) == 20
    raising = AudioDataLoaders.from_folder(root, bs=22, duration=1.0, num_workers=0, shuffle=False)
    with pytest.raises(AudioFileError, match="empty.wav: is empty"):
        raising.train.one_batch()


def test_show_batch_titles_each_clip_with_its_label(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    dls.show_batch(max_n=4)
    axes = [ax for ax in plt.gcf().axes if ax.has_data()]
    assert len(axes) == 4
    assert {ax.get_title() for ax in axes} <= {"low", "high"}
    assert all(ax.get_xlabel() == "time (s)" for ax in axes)
    plt.close("all")


def test_source_files_are_never_modified(toy_folder):
    before = tree_digest(toy_folder)
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=None, num_workers=0)
    for _ in dls.train:
        pass
    for _ in dls.valid:
        pass
    dls.show_batch(max_n=2)
    plt.close("all")
    assert tree_digest(toy_folder) == before


def test_labels_encode_as_fastais_categorize(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    fast, ref = dls.train_ds.tls[1].tfms.fs[-1], Categorize(vocab=dls.vocab)
    for label in dls.vocab:
        got, want = fast(label, split_idx=0), ref(label)
        assert type(got) is type(want) is TensorCategory and got.dtype == want.dtype and got.shape == want.shape
        assert int(got) == int(want) and fast.decode(got) == label
    with pytest.raises(KeyError, match="'cat' was not included"):
        fast("cat")


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Mono 16 kHz clips (16-bit and float) longer and shorter than 0.5 s, a stereo clip and an 8 kHz clip."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for label in ("a", "b"):
            for i, seconds in enumerate((0.9, 0.5, 0.3, 1.3, 0.7)):
                wav = (0.3 * rng.standard_normal((1, int(seconds * 16000)))).astype(np.float32)
                write(root / split / label / f"{label}_{i}.wav", wav, 16000, subtype=("PCM_16", "FLOAT")[i % 2])
            write(root / split / label / f"{label}_stereo.wav", sine(440, 16000, 0.8, channels=2), 16000)
            write(root / split / label / f"{label}_8k.wav", sine(440, 8000, 0.8), 8000)
    return root


def _epoch(dl, seed: int = 0) -> list:
    random.seed(seed)  # random crops draw from Python's generator
    return list(dl.new(shuffle=False, drop_last=False))


def _assert_same_batches(got: list, want: list):
    assert len(got) == len(want) > 0
    for b, b_ref in zip(got, want):
        assert [type(o) for o in b] == [type(o) for o in b_ref]
        assert all(torch.equal(o, o_ref) for o, o_ref in zip(b, b_ref))
        x, x_ref = b[0], b_ref[0]
        assert x.sample_rate == x_ref.sample_rate and x.__dict__.keys() == x_ref.__dict__.keys()
        if "lengths" in x_ref.__dict__:
            assert torch.equal(x.lengths, x_ref.lengths)


def test_items_unrolled_equal_fastais_item_path(mixed_folder, monkeypatch):
    files = get_audio_files(mixed_folder)
    df = pd.DataFrame({"fname": [str(f) for f in files], "tags": [f"{f.parent.name} x" for f in files]})
    loaders = {
        "random crops, zero padding": AudioDataLoaders.from_folder(mixed_folder, bs=5, duration=0.5, num_workers=0),
        "repeat padding, item transform": AudioDataLoaders.from_folder(
            mixed_folder, bs=5, duration=0.5, pad_mode="repeat", item_tfms=[Resample(8000)], num_workers=0),
        "variable length": AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=None, num_workers=0),
        "multi-label": AudioDataLoaders.from_df(df, fn_col="fname", label_col="tags", label_delim=" ", bs=4,
                                                duration=0.5, seed=0, num_workers=0),
        "DataFrame items": DataBlock(
            blocks=(AudioBlock(duration=0.5), CategoryBlock), get_x=ColReader("fname"), get_y=ColReader("label"),
            splitter=RandomSplitter(seed=0)).dataloaders(df.assign(label=df.tags.str[0]), bs=4, num_workers=0),
    }  # fmt: skip
    dls = loaders["random crops, zero padding"]
    clip = TensorAudio(torch.randn(2, 12000), sample_rate=22050)
    dl_sets = {name: [d.train, d.valid] for name, d in loaders.items()}
    dl_sets["test items"] = [dls.test_dl([files[0], clip, files[1]])]
    assert all(item_maker(dl) is not None for dl_set in dl_sets.values() for dl in dl_set)
    unrolled = {name: [_epoch(dl) for dl in dl_set] for name, dl_set in dl_sets.items()}
    with use_shims(False, ["item_maker"]):
        assert all(item_maker(dl) is None for dl_set in dl_sets.values() for dl in dl_set)
        for name, dl_set in dl_sets.items():
            for got, dl in zip(unrolled[name], dl_set):
                _assert_same_batches(got, _epoch(dl))


def test_a_replaced_item_step_takes_fastais_item_path(mixed_folder):
    dls = AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=0.5, num_workers=0)
    assert item_maker(dls.train) is not None
    made = []

    def create_item(s):
        made.append(s)
        return dls.train.dataset[s]

    dl = dls.train.new(create_item=create_item, shuffle=False)
    assert item_maker(dl) is None
    x, _ = dl.one_batch()
    assert made == [0, 1, 2, 3] and x.shape == (4, 1, 8000)


def _in_pool(x: torch.Tensor, pool) -> bool:
    start = pool._data.data_ptr()
    return start <= x.data_ptr() < start + pool._data.numel() * pool._data.element_size()


def test_worker_batches_come_through_shared_slots_that_are_reused_only_once_freed(mixed_folder):
    dls = AudioDataLoaders.from_folder(mixed_folder, bs=2, duration=0.5, num_workers=2)
    dl = dls.valid  # centred crops: the same batches in the main process and in the workers
    want = list(dl.new(num_workers=0))
    batches = iter(dl)
    held = [next(batches)]
    pool = dl._pool
    assert pool is not None and pool.slots == 3
    held += list(batches)  # every batch kept: no slot may be reused, so batches past the slots collate the usual way
    assert dl._pool is None  # dropped at the end of the epoch; its memory lives on with the batches over it
    _assert_same_batches(held, want)
    pooled = [_in_pool(x, pool) for x, _ in held]
    assert sum(pooled) == pool.in_use() == pool.workers * pool.slots < len(held)
    del held
    assert pool.in_use() == 0  # freed with the last tensor over each slot
    seen = []
    for x, y in dl:  # consumed one at a time: each worker's slots suffice, every batch is pooled
        pool = dl._pool or pool
        seen.append((_in_pool(x, pool), (x.clone(), y)))
    assert all(p for p, _ in seen)
    _assert_same_batches([b for _, b in seen], want)
    del x, y  # the loop's last batch
    assert pool.in_use() == 0


def test_the_pool_is_never_pickled_and_skipped_where_it_cannot_help(mixed_folder, monkeypatch):
    dls = AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=0.5, num_workers=2)
    batches = iter(dls.train)
    next(batches)
    assert dls.train._pool is not None
    back = pickle.loads(pickle.dumps(dls.train))  # mid-epoch, with the pool in use
    assert "_pool" not in back.__dict__ and len(list(back)) == len(dls.train)
    del batches
    assert dls.train.new(num_workers=0)._batch_pool() is None
    assert AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=None, num_workers=2).train._batch_pool() is None
    monkeypatch.setattr("fastai_audio.data.pool.MAX_POOL_BYTES", 2 * 3 * 4 * 8000 * 4 - 1)  # one byte short
    assert dls.train._batch_pool() is None


@pytest.mark.parametrize("method,pooled", [("fork", True), ("spawn", False), ("forkserver", False)])
def test_the_pool_is_made_only_for_forked_workers(mixed_folder, monkeypatch, method, pooled):
    # spawned workers would get a copy of the loader without the parent's mapping: PyTorch's path is kept there
    monkeypatch.setattr("multiprocessing.get_start_method", lambda allow_none=False: method)
    dl = AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=0.5, num_workers=2).train
    pool = dl._batch_pool()
    assert (pool is not None) == pooled
    if pooled:
        assert (pool.workers, pool.slots, pool.slot_shape, pool.dtype) == (2, 3, (4, 1, 8000), torch.float32)


@pytest.fixture
def linked_split(tmp_path):
    """``all/<class>/*.wav`` real files, and ``train/`` and ``valid/`` made of symbolic links to them."""
    for label, freq in (("low", 220.0), ("high", 880.0)):
        for i in range(5):
            real = write(tmp_path / "all" / label / f"{label}_{i}.wav", sine(freq, 16000, 0.5), 16000)
            split = "valid" if i >= 3 else "train"
            link = tmp_path / "data" / split / label / real.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(real)
    return tmp_path / "data"


def test_a_split_made_of_symbolic_links_keeps_its_folders(linked_split):
    dls = AudioDataLoaders.from_folder(linked_split, bs=2, duration=0.5, num_workers=0)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (6, 4)
    assert sorted(dls.valid_ds[i][0].path.parent.parent.name for i in range(4)) == ["valid"] * 4
    by_re = AudioDataLoaders.from_re(linked_split, r"/(\w+)_\d+\.wav$", valid_pct=None, bs=2, duration=0.5,
                                     num_workers=0)  # fmt: skip
    assert (len(by_re.train_ds), len(by_re.valid_ds)) == (6, 4)
    from fastai_audio.data import AudioItemList

    split = AudioItemList.from_folder(linked_split).split_by_folder()
    assert sum(split.is_valid) == 4 and len(split.is_valid) == 10


def test_an_empty_validation_folder_is_an_error_naming_it(linked_split):
    for f in (linked_split / "valid").rglob("*.wav"):
        f.unlink()
    with pytest.raises(ParameterError, match=r"no audio files in .*valid, the validation folder \(6 in .*train\)"):
        AudioDataLoaders.from_folder(linked_split, bs=2, duration=0.5)
    with pytest.raises(ParameterError, match=r"no audio files in .*valid, the validation folder"):
        AudioDataLoaders.from_re(linked_split, r"/(\w+)_\d+\.wav$", valid_pct=None, bs=2, duration=0.5)


def test_a_split_that_leaves_a_set_empty_is_an_error(linked_split):
    files = get_audio_files(linked_split)
    with pytest.raises(ParameterError, match="the validation set is empty: the split put all 10 items"):
        AudioDataLoaders.from_files(linked_split, files, parent_label, valid_func=lambda o: False, duration=0.5)


def test_classes_missing_from_a_split_are_named(linked_split):
    (linked_split / "train" / "silence").mkdir()
    for f in (linked_split / "valid" / "high").glob("*.wav"):
        f.unlink()
    with pytest.warns(UserWarning) as record:
        dls = AudioDataLoaders.from_folder(linked_split, bs=2, duration=0.5, num_workers=0)
    messages = " ".join(str(w.message) for w in record)
    assert "no validation files for the classes ['high']" in messages and "['silence']" in messages
    assert list(dls.vocab) == ["high", "low"]
    write(linked_split / "valid" / "hum" / "hum_0.wav", sine(50, 16000, 0.5), 16000)
    with pytest.raises(ParameterError, match=r"validation classes with no training files: \['hum'\]"):
        AudioDataLoaders.from_folder(linked_split, bs=2, duration=0.5)
