"""fastai_audio.data.loaders: AudioDataLoaders' constructors (folders, regex, DataFrame, files), splits, labels,
bad files, and what they leave alone."""

import pickle
import shutil

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from conftest import sine, tree_digest, write
from fastai.data.transforms import Categorize, parent_label
from fastai.torch_core import TensorCategory

from fastai_audio import AudioFileError, ParameterError, TensorAudio
from fastai_audio.data import AudioDataLoaders, get_audio_files


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


def test_dataloaders_pickle_round_trip(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    back = pickle.loads(pickle.dumps(dls))
    (x0, y0), (x1, y1) = dls.valid.one_batch(), back.valid.one_batch()
    torch.testing.assert_close(x0, x1)
    assert y0.tolist() == y1.tolist() and x1.sample_rate == 16000


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
    dls = AudioDataLoaders.from_re(
        toy_folder, r"(low|high)_\d+\.wav$", valid_pct=None, bs=4, duration=1.0, num_workers=0
    )
    assert dls.classes == ["high", "low"] and len(dls.valid_ds) == 8


def test_from_re_names_the_file_the_pattern_misses(toy_folder):
    with pytest.raises(ParameterError, match=r"label pattern r'\(cat\)_\\d\+' matches nothing in .*(low|high)_\d\.wav"):
        AudioDataLoaders.from_re(toy_folder, r"(cat)_\d+", bs=4, num_workers=0)


def test_from_df_single_and_multi_label(toy_folder):
    files = sorted(get_audio_files(toy_folder))
    df = pd.DataFrame(
        {
            "fname": [str(f.relative_to(toy_folder)) for f in files],
            "tags": [f"{f.parent.name} {'odd' if i % 2 else 'even'}" for i, f in enumerate(files)],
            "label": [f.parent.name for f in files],
            "is_valid": [f.parts[-3] == "valid" for f in files],
        }
    )
    dls = AudioDataLoaders.from_df(
        df, toy_folder, "fname", "label", valid_col="is_valid", bs=4, duration=1.0, num_workers=0
    )
    assert dls.classes == ["high", "low"] and len(dls.valid_ds) == 8
    multi = AudioDataLoaders.from_df(
        df, toy_folder, "fname", "tags", label_delim=" ", valid_col="is_valid", bs=4, duration=1.0, num_workers=0
    )
    x, y = multi.one_batch()
    assert multi.classes == ["even", "high", "low", "odd"] and y.shape == (4, 4) and y.sum(1).tolist() == [2.0] * 4


def test_from_df_unknown_column(toy_folder):
    with pytest.raises(ParameterError, match="fn_col 'file' is not a column"):
        AudioDataLoaders.from_df(pd.DataFrame({"fname": [], "label": []}), toy_folder, "file", "label")


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


def test_show_batch_draws_on_rank_0_only(toy_folder, monkeypatch):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, num_workers=0)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    plt.close("all")
    assert dls.show_batch(max_n=4) is None and not plt.get_fignums()


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
    by_re = AudioDataLoaders.from_re(
        linked_split, r"/(\w+)_\d+\.wav$", valid_pct=None, bs=2, duration=0.5, num_workers=0
    )
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


def test_folder_links_never_loop_and_never_carry_files_across_splits(tmp_path):
    """``train/up -> ..`` (a loop that also leads into valid/), ``train/low/loop -> ..``, ``train/copy -> ../valid``
    (leakage), and a link to a folder outside the data (followed, once, however many links lead to it)."""
    data, outside = tmp_path / "data", tmp_path / "more"
    for split, n in (("train", 4), ("valid", 2)):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            for i in range(n):
                write(data / split / label / f"{label}_{i}.wav", sine(freq, 16000, 0.3), 16000)
    write(outside / "high_extra.wav", sine(900.0, 16000, 0.3), 16000)
    (data / "train" / "up").symlink_to("..", target_is_directory=True)
    (data / "train" / "low" / "loop").symlink_to("..", target_is_directory=True)
    (data / "train" / "copy").symlink_to("../valid", target_is_directory=True)
    (data / "train" / "high" / "extra").symlink_to(outside, target_is_directory=True)
    (data / "train" / "high" / "extra_again").symlink_to(outside, target_is_directory=True)
    with pytest.warns(UserWarning, match="did not follow 3 folder link") as caught:
        files = get_audio_files(data)
    assert len(files) == 8 + 4 + 1 and len({f.resolve() for f in files}) == len(files)
    assert all("copy" not in f.parts and "up" not in f.parts and "loop" not in f.parts for f in files)
    message = str(caught[0].message)
    assert f"{data / 'train' / 'up'} -> {data}" in message and "valid" in message
    with pytest.warns(UserWarning, match="did not follow"):
        dls = AudioDataLoaders.from_folder(data, bs=2, duration=0.3, num_workers=0)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (9, 4)  # no validation file in training
