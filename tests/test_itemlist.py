"""The seed's fastai-v1 style chain runs on fastai 2.8 and returns DataLoaders."""

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from fasttransform import Transform

from fastai_audio import ParameterError, TensorAudio
from fastai_audio.data import AudioItemList

SEED_PATTERN = r"(\w+)_\w+_\d+-\d+-\d+.wav$"


def test_seed_snippet_on_a_rendered_nsynth(nsynth_small):
    data = (
        AudioItemList.from_folder(nsynth_small)
        .filter_by_func(lambda fn: "acoustic" in fn.name)
        .split_by_folder()
        .label_from_re(SEED_PATTERN)
        .databunch(bs=8, tfms=None, num_workers=0)
    )
    xs, ys = data.one_batch()
    assert isinstance(xs, TensorAudio) and xs.shape == (8, 1, 64000) and xs.sample_rate == 16000
    assert data.c == len(data.classes) and data.c >= 5
    # every file is labelled with the seed's regex, and the label is the file's NSynth family
    for split in ("train", "valid"):
        ds = getattr(data, f"{split}_ds")
        meta = json.loads((nsynth_small / split / "examples.json").read_text())
        for (fname, _), label in zip(ds.items, ds.tls[1]):
            name = Path(fname).name
            assert "acoustic" in name and Path(fname).parent.name == split
            assert data.classes[int(label)] == re.search(SEED_PATTERN, name).group(1)
            assert data.classes[int(label)] == meta[name[:-4]]["instrument_family_str"]
    # the test split stays out of both
    n_files = sum(1 for s in ("train", "valid") for p in (nsynth_small / s).glob("*acoustic*.wav"))
    assert len(data.train_ds) + len(data.valid_ds) == n_files
    data.show_batch(3)


def test_relative_root_and_all_splitters(toy_folder, monkeypatch):
    monkeypatch.chdir(toy_folder.parent)
    items = AudioItemList.from_folder(toy_folder.name)
    assert len(items) == 20
    data = items.split_by_folder().label_from_folder().databunch(bs=4, duration=0.5, num_workers=0)
    assert data.classes == ["high", "low"] and len(data.valid_ds) == 8
    rand = items.split_by_rand_pct(0.25, seed=1)
    assert sum(rand.is_valid) == 5 and rand.is_valid == items.split_by_rand_pct(0.25, seed=1).is_valid
    by_func = items.split_by_valid_func(lambda p: p.stem.endswith("_0"))
    assert sum(by_func.is_valid) == 4
    by_files = items.split_by_files(["low_1.wav"])
    assert sum(by_files.is_valid) == 2  # train/low/low_1.wav and valid/low/low_1.wav
    only_valid = items.filter_by_folder(include=["valid"])
    assert len(only_valid) == 8


def test_label_from_func_and_df(toy_folder):
    items = AudioItemList.from_folder(toy_folder)
    data = (
        items.split_by_folder()
        .label_from_func(lambda p: p.stem.split("_")[0])
        .databunch(bs=4, duration=0.5, num_workers=0)
    )
    assert data.classes == ["high", "low"]
    files = sorted(toy_folder.rglob("*.wav"))
    df = pd.DataFrame(
        {
            "name": [str(f.relative_to(toy_folder)) for f in files],
            "loud": ["yes" if "_1" in f.name else "no" for f in files],
        }
    )
    data = (
        AudioItemList.from_df(df, toy_folder)
        .split_by_folder()
        .label_from_df("loud")
        .databunch(bs=2, duration=0.5, num_workers=0)
    )
    assert data.classes == ["no", "yes"] and len(data.train_ds) == 12


def test_databunch_takes_batch_transforms(toy_folder):
    class Halve(Transform):
        def encodes(self, x: TensorAudio):
            return x * 0.5

    plain = AudioItemList.from_folder(toy_folder).split_by_folder().label_from_folder()
    a = plain.databunch(bs=4, duration=0.5, num_workers=0).valid.one_batch()[0]
    b = plain.databunch(bs=4, duration=0.5, num_workers=0, tfms=[Halve()]).valid.one_batch()[0]
    torch.testing.assert_close(b, a * 0.5)


def test_bad_splits_and_labels(toy_folder):
    items = AudioItemList.from_folder(toy_folder)
    with pytest.raises(ParameterError, match=r"no audio files under .*nope; pass valid=.*\['train', 'valid'\]"):
        items.split_by_folder(valid="nope")
    with pytest.raises(ParameterError, match="the split left 0 training and 20 validation files"):
        items.split_by_valid_func(lambda p: True)
    with pytest.raises(ParameterError, match="valid_pct must be between 0 and 1"):
        items.split_by_rand_pct(1.5)
    with pytest.raises(ParameterError, match=r"matches nothing in .*\.wav"):
        items.split_by_folder().label_from_re(r"(\d{5})")
    with pytest.raises(ParameterError, match="label_from_df needs an AudioItemList made with"):
        items.split_by_folder().label_from_df()


def test_from_re_by_folder_leaves_other_splits_out(nsynth_small):
    from fastai_audio.data import AudioDataLoaders

    dls = AudioDataLoaders.from_re(nsynth_small, SEED_PATTERN, valid_pct=None, bs=8, num_workers=0)
    n_train = len(list((nsynth_small / "train").glob("*.wav")))
    n_valid = len(list((nsynth_small / "valid").glob("*.wav")))
    assert (len(dls.train_ds), len(dls.valid_ds)) == (n_train, n_valid)
    assert not any(os.sep + "test" + os.sep in str(f) for f in dls.train_ds.items)
