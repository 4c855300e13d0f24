"""fastai_audio.data.audio_dl: AudioDL collates safely, pads variable-length batches, buckets by length, and makes
items as fastai's own per-item path does."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_same_batches, epoch_batches, sine, write
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import ColReader, RandomSplitter

from fastai_audio import ParameterError, TensorAudio
from fastai_audio._compat import item_maker, use_shims
from fastai_audio.data import AudioBlock, AudioDataLoaders, get_audio_files
from fastai_audio.transforms import Resample


def test_workers_keep_the_sample_rate(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=3, duration=0.5, sample_rate=8000, num_workers=2)
    batches = list(dls.train)
    assert len(batches) == 4
    assert all(isinstance(x, TensorAudio) and x.sample_rate == 8000 and x.shape[-1] == 4000 for x, _ in batches)


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
    dls = AudioDataLoaders.from_folder(toy_folder, bs=12, sample_rate=None, duration=None, num_workers=0, shuffle=False)
    with pytest.raises(ParameterError, match=r"different sample rates: .*\.wav is at \d+ Hz and .*sample_rate="):
        dls.train.one_batch()


def test_mixed_channels_without_downmix_name_the_files(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=12, mono=False, duration=1.0, num_workers=0)
    with pytest.raises(ParameterError, match="different channel counts: .*mono=True"):
        dls.train.one_batch()


def test_items_unrolled_equal_fastais_item_path(mixed_folder, monkeypatch):
    files = get_audio_files(mixed_folder)
    df = pd.DataFrame({"fname": [str(f) for f in files], "tags": [f"{f.parent.name} x" for f in files]})
    loaders = {
        "random crops, zero padding": AudioDataLoaders.from_folder(mixed_folder, bs=5, duration=0.5, num_workers=0),
        "repeat padding, item transform": AudioDataLoaders.from_folder(
            mixed_folder, bs=5, duration=0.5, pad_mode="repeat", item_tfms=[Resample(8000)], num_workers=0
        ),
        "variable length": AudioDataLoaders.from_folder(mixed_folder, bs=4, duration=None, num_workers=0),
        "multi-label": AudioDataLoaders.from_df(
            df, fn_col="fname", label_col="tags", label_delim=" ", bs=4, duration=0.5, seed=0, num_workers=0
        ),
        "DataFrame items": DataBlock(
            blocks=(AudioBlock(duration=0.5), CategoryBlock),
            get_x=ColReader("fname"),
            get_y=ColReader("label"),
            splitter=RandomSplitter(seed=0),
        ).dataloaders(df.assign(label=df.tags.str[0]), bs=4, num_workers=0),
    }
    dls = loaders["random crops, zero padding"]
    clip = TensorAudio(torch.randn(2, 12000), sample_rate=22050)
    dl_sets = {name: [d.train, d.valid] for name, d in loaders.items()}
    dl_sets["test items"] = [dls.test_dl([files[0], clip, files[1]])]
    assert all(item_maker(dl) is not None for dl_set in dl_sets.values() for dl in dl_set)
    unrolled = {name: [epoch_batches(dl) for dl in dl_set] for name, dl_set in dl_sets.items()}
    with use_shims(False, ["item_maker"]):
        assert all(item_maker(dl) is None for dl_set in dl_sets.values() for dl in dl_set)
        for name, dl_set in dl_sets.items():
            for got, dl in zip(unrolled[name], dl_set):
                assert_same_batches(got, epoch_batches(dl))


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


def test_the_old_module_name_still_loads_learners_pickled_with_it():
    """Exported learners name their loaders' class by module: ``fastai_audio.data.loader.AudioDL`` before the
    rename. It still unpickles, with a deprecation warning."""
    import pickle
    import sys

    from fastai_audio.data.audio_dl import AudioDL

    sys.modules.pop("fastai_audio.data.loader", None)
    with pytest.warns(DeprecationWarning, match="fastai_audio.data.loader is now fastai_audio.data.audio_dl"):
        cls = pickle.loads(b"cfastai_audio.data.loader\nAudioDL\n.")
    assert cls is AudioDL and AudioDL.__module__ == "fastai_audio.data.audio_dl"
