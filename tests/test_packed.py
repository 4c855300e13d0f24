"""The packed cache (fastai_audio.packed, fastai_audio.data.pack, AudioDataLoaders.from_packed): bit-exact round
trips, an index that must match its data, and loaders that behave like the file loaders they were packed from."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import assert_same_batches, sine, write

from fastai_audio.data import AudioDataLoaders, pack
from fastai_audio.errors import AudioFileError, ParameterError
from fastai_audio.packed import PackedClip, read_packed_index


@pytest.fixture(scope="module")
def pcm_folder(tmp_path_factory):
    """16-bit and 8-bit PCM at 16 kHz, mono, 0.4 to 1.6 s, two classes: packed as the files' own int16 samples."""
    root = tmp_path_factory.mktemp("pcm")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("valid", 4)):
        for label in ("a", "b"):
            for i in range(n):
                wav = rng.uniform(-0.8, 0.8, (1, int((0.4 + 0.2 * i) * 16000))).astype(np.float32)
                write(root / split / label / f"{label}{i}.wav", wav, 16000, subtype=("PCM_16", "PCM_U8")[i % 2])
    return root


@pytest.fixture(scope="module")
def mixed_rates(tmp_path_factory):
    """Files at 16, 22.05 and 8 kHz, mono and stereo: packed resampled and downmixed, as float32."""
    root = tmp_path_factory.mktemp("rates")
    for split, n in (("train", 3), ("valid", 3)):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            for i in range(n):
                rate = (16000, 22050, 8000)[i]
                write(
                    root / split / label / f"{label}{i}.wav", sine(freq, rate, 0.7 + 0.2 * i, channels=1 + i % 2), rate
                )
    return root


@pytest.mark.parametrize("duration", [None, 1.0])
def test_a_pcm_data_set_packs_as_its_own_int16_samples_and_reads_back_exactly(pcm_folder, tmp_path, duration):
    files = AudioDataLoaders.from_folder(pcm_folder, bs=3, duration=duration)
    index = read_packed_index(pack(files, tmp_path / "cache", progress=False))
    assert index["dtype"] == "int16" and index["channels"] == 1
    packed = AudioDataLoaders.from_packed(tmp_path / "cache", bs=3, duration=duration)
    assert packed.vocab == files.vocab and packed.audio_config == files.audio_config
    assert_same_batches(list(packed.valid), list(files.valid))
    train = sorted(pcm_folder.glob("train/*/*.wav"))
    data = np.fromfile(tmp_path / "cache" / "train.bin", dtype=np.int16)
    for offset, length, label, source in index["splits"]["train"]["clips"]:
        assert source in map(str, train) and label == source.split("/")[-2]
        np.testing.assert_array_equal(data[offset : offset + length], sf.read(source, dtype="int16")[0])


def test_files_to_resample_or_downmix_pack_as_float32_the_loaders_clips(mixed_rates, tmp_path):
    files = AudioDataLoaders.from_folder(mixed_rates, bs=2, duration=None, sample_rate=16000)
    pack(files, tmp_path / "cache", progress=False)
    assert read_packed_index(tmp_path / "cache")["dtype"] == "float32"
    packed = AudioDataLoaders.from_packed(tmp_path / "cache", bs=2, duration=None, num_workers=2)
    assert_same_batches(list(packed.valid), list(files.valid))


def test_multi_label_data_frames_round_trip(pcm_folder, tmp_path):
    wavs = sorted(pcm_folder.rglob("*.wav"))
    df = pd.DataFrame(
        {
            "fname": [str(f) for f in wavs],
            "tags": [f"{f.parent.name} t{i % 3}" for i, f in enumerate(wavs)],
            "is_valid": [f.parts[-3] == "valid" for f in wavs],
        }
    )
    files = AudioDataLoaders.from_df(
        df, "/", "fname", "tags", valid_col="is_valid", label_delim=" ", bs=4, duration=0.5
    )
    packed = AudioDataLoaders.from_packed(pack(files, tmp_path / "tags", progress=False), bs=4)
    assert packed.vocab == files.vocab and packed.valid_ds[0][1].shape == (5,)
    assert_same_batches(list(packed.valid), list(files.valid))


def test_training_crops_change_every_epoch_and_workers_give_the_same_batches(pcm_folder, tmp_path):
    pack(AudioDataLoaders.from_folder(pcm_folder, bs=4), tmp_path / "cache", progress=False)
    dls = AudioDataLoaders.from_packed(tmp_path / "cache", bs=4, duration=0.3, seed=0)
    dl = dls.train.new(shuffle=False)
    first, second = [x.clone() for x, _ in dl], [x.clone() for x, _ in dl]
    assert any(not torch.equal(a, b) for a, b in zip(first, second))  # new random windows each epoch
    a, b = dls.train.new(num_workers=0), dls.train.new(num_workers=2)
    b.rng.setstate(a.rng.getstate())
    assert_same_batches(list(b), list(a))
    b.close()


@pytest.fixture
def cache(pcm_folder, tmp_path):
    return pack(AudioDataLoaders.from_folder(pcm_folder, bs=4), tmp_path / "cache", progress=False).parent


def test_a_truncated_or_foreign_samples_file_is_refused_naming_it(cache):
    data = (cache / "train.bin").read_bytes()
    (cache / "train.bin").write_bytes(data[:-100])
    with pytest.raises(
        AudioFileError,
        match=r"train\.bin: holds \d+ bytes but the index says \d+ frames x 1 "
        r"channels of int16",
    ):
        AudioDataLoaders.from_packed(cache, bs=4)
    (cache / "train.bin").write_bytes(data + b"\0\0")  # another cache's file of another size
    with pytest.raises(AudioFileError, match="truncated or mixed with another one"):
        read_packed_index(cache)
    (cache / "train.bin").unlink()
    with pytest.raises(AudioFileError, match=r"train\.bin: is missing"):
        read_packed_index(cache)


def test_an_index_that_does_not_match_its_data_is_refused(cache):
    index = json.loads((cache / "packed.json").read_text())
    index["splits"]["valid"]["clips"][1][0] += 7  # a clip that does not follow the one before it
    (cache / "packed.json").write_text(json.dumps(index))
    with pytest.raises(AudioFileError, match=r"valid\.bin: clip 1 of the valid set does not follow"):
        read_packed_index(cache)
    index["version"] = 99
    (cache / "packed.json").write_text(json.dumps(index))
    with pytest.raises(AudioFileError, match="is not a version-1 packed cache index"):
        read_packed_index(cache)
    (cache / "packed.json").write_text("{not json")
    with pytest.raises(AudioFileError, match="is not a packed cache's index"):
        read_packed_index(cache)
    with pytest.raises(AudioFileError, match="no packed cache here; write one with `fastai-audio pack"):
        read_packed_index(cache.parent)


def test_pack_leaves_nothing_that_looks_whole_when_it_fails(pcm_folder, tmp_path):
    import shutil

    bad = tmp_path / "data"
    shutil.copytree(pcm_folder, bad)
    victim = bad / "valid" / "b" / "b3.wav"
    files = AudioDataLoaders.from_folder(bad, bs=4)
    victim.write_bytes(victim.read_bytes()[:500])  # cut after the loaders were built
    with pytest.raises(AudioFileError, match=r"b3\.wav: is truncated"):
        pack(files, tmp_path / "cache", progress=False)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []  # no .bin, no temporary file, no index
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    with pytest.raises(ParameterError, match="is not empty: pack into a new or empty folder"):
        pack(files, tmp_path / "full", progress=False)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
    with pytest.raises(ParameterError, match="sample_rate=<Hz>"):
        pack(AudioDataLoaders.from_folder(pcm_folder, bs=4, sample_rate=None), tmp_path / "none", progress=False)


def test_packed_loaders_export_predict_and_read_new_files_like_file_loaders(cache, pcm_folder, tmp_path):
    from fastai_audio.learner import audio_learner
    from fastai_audio.transforms import mel_transforms

    clip = pickle.loads(pickle.dumps(AudioDataLoaders.from_packed(cache, bs=4).train_ds.items[0][0]))
    assert isinstance(clip, PackedClip) and clip.samples(0, 10).shape == (10, 1)
    dls = AudioDataLoaders.from_packed(cache, bs=4, duration=0.5, batch_tfms=mel_transforms("speech", n_mels=32))
    learn = audio_learner(dls, pretrained=False, path=tmp_path)
    new = sorted(pcm_folder.glob("valid/*/*.wav"))
    preds, _ = learn.get_preds(dl=dls.test_dl(new))
    assert preds.shape == (len(new), 2)
    torch.testing.assert_close(learn.predict(new[0])[2], preds[0], rtol=1e-4, atol=1e-5)


def test_the_cli_packs_and_train_reads_the_cache(pcm_folder, tmp_path):
    import argparse

    from fastai_audio.cli import _source_dls, main

    assert main(["pack", str(pcm_folder), str(tmp_path / "cache"), "--no-progress"]) == 0
    index = read_packed_index(tmp_path / "cache")
    assert len(index["splits"]["train"]["clips"]) == 12 and index["audio_config"]["sample_rate"] == 16000
    assert main(["pack", str(pcm_folder), str(tmp_path / "cache"), "--no-progress"]) == 1  # not empty any more
    args = argparse.Namespace(data=str(tmp_path / "cache"), valid_pct=None, fn_col="fname", label_col="label", seed=0)
    dls = _source_dls(args, bs=4, sample_rate=16000, duration=1.0, seed=0)  # what `train DATA` builds
    assert isinstance(dls.train_ds.items[0][0], PackedClip) and dls.one_batch()[0].shape == (4, 1, 16000)
