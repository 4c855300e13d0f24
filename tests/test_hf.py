"""Hugging Face datasets (``AudioDataLoaders.from_hf``, ``read_hf``, ``HFAudio``): datasets built here, the audio
held as bytes (as the Hub's Parquet files hold it) or as paths, decoded by the library's own decoder."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

datasets = pytest.importorskip("datasets", reason="from_hf needs `datasets` (pip install 'fastai_audio[hf]')")

from fastai_audio.data import AudioDataLoaders  # noqa: E402
from fastai_audio.datasets import HFAudio, read_hf  # noqa: E402
from fastai_audio.decode import decode_audio  # noqa: E402
from fastai_audio.errors import AudioFileError, ParameterError  # noqa: E402

LABELS = ("low", "high")  # ClassLabel order on purpose not sorted: ids must stay the model's classes
FREQS = {"low": 220.0, "high": 1760.0}


def _bytes(wav: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav.T, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _clips(n: int, seed: int):
    """``n`` clips of ``LABELS`` at mixed rates, channel counts and formats: ``(label, wav, rate, fmt)``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = LABELS[i % 2]
        rate = (16000, 22050, 8000)[i % 3]
        channels = 1 + (i % 2)
        wav = sine(FREQS[label], rate, 1.0 + 0.25 * (i % 3), channels) * np.float32(rng.uniform(0.5, 1))
        out.append((label, wav, rate, ("WAV", "FLAC")[i % 2]))
    return out


def _dataset(clips, *, as_paths=None, rate=None):
    """A ``datasets.Dataset``: audio bytes (or paths, ``as_paths``: the folder to write them to) and a ClassLabel."""
    rows = []
    for i, (_, wav, sr, fmt) in enumerate(clips):
        name = f"clip_{i}.{fmt.lower()}"
        if as_paths is not None:
            path = write(as_paths / name, wav, sr)
            rows.append({"bytes": None, "path": str(path)})
        else:
            rows.append({"bytes": _bytes(wav, sr, fmt), "path": name})
    ds = datasets.Dataset.from_dict({"audio": rows, "label": [LABELS.index(c[0]) for c in clips]})
    return ds.cast(
        datasets.Features({"audio": datasets.Audio(sampling_rate=rate), "label": datasets.ClassLabel(names=LABELS)})
    )


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """A DatasetDict (train 12 clips, validation 6), and the same clips as files on disk, for comparisons."""
    root = tmp_path_factory.mktemp("hf")
    train, valid = _clips(12, 0), _clips(6, 1)
    dd = datasets.DatasetDict(train=_dataset(train), validation=_dataset(valid))
    files = []
    for split, clips in (("train", train), ("validation", valid)):
        for i, (label, wav, sr, fmt) in enumerate(clips):
            path = root / "files" / split / f"clip_{i}.{fmt.lower()}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_bytes(wav, sr, fmt))
            files.append((path, label, split == "validation"))
    return dd, files, root


def _valid_batches(dls):
    return [(x.clone(), y.clone()) for x, y in dls.valid]


def test_from_hf_batches_equal_the_same_files_read_from_disk(splits):
    import pandas as pd

    dd, files, _ = splits
    kw = {"sample_rate": 16000, "duration": 1.0, "bs": 4, "num_workers": 0}
    dls = AudioDataLoaders.from_hf(dd, **kw)
    df = pd.DataFrame(files, columns=["fname", "label", "is_valid"])
    ref = AudioDataLoaders.from_df(df, "/", "fname", "label", valid_col="is_valid", vocab=list(LABELS), **kw)
    assert dls.vocab == list(LABELS)  # the ClassLabel's order, not sorted
    assert (len(dls.train_ds), len(dls.valid_ds)) == (12, 6)
    got, want = _valid_batches(dls), _valid_batches(ref)
    assert len(got) == len(want) == 2
    for (x, y), (x2, y2) in zip(got, want):
        assert x.shape[1:] == (1, 16000)  # resampled, downmixed, cropped
        torch.testing.assert_close(x, x2, rtol=0, atol=0)
        assert [dls.vocab[i] for i in y] == [ref.vocab[i] for i in y2]  # (the reference's vocab is sorted)
    # class k of the model is ClassLabel id k
    ids = list(dd["validation"]["label"])
    assert torch.cat([y for _, y in got]).tolist() == ids


def test_labels_follow_the_audio_and_a_model_learns_them(splits):
    """Training rows carry their own label: a resnet trained on them separates the two tones."""
    from conftest import trained_resnet
    from fastai.metrics import accuracy

    from fastai_audio.transforms import mel_transforms

    dd, _, _ = splits
    dls = AudioDataLoaders.from_hf(
        dd, sample_rate=16000, duration=1.0, bs=4, num_workers=0, batch_tfms=mel_transforms("speech"), seed=0
    )
    for x, y in dls.valid:  # the high tone has more energy in the upper mel bands than the low one
        upper = x[:, 0, 40:].mean(dim=(1, 2)) - x[:, 0, :20].mean(dim=(1, 2))
        assert ((upper > 0) == (y == LABELS.index("high"))).all()
    learn = trained_resnet(dls, metrics=accuracy)
    test = dls.test_dl(read_hf(dd["validation"]).audio)
    preds, _ = learn.get_preds(dl=test)
    assert preds.shape == (6, 2)
    assert torch.isfinite(preds).all()


def test_valid_none_holds_out_a_random_part_and_a_single_dataset_is_split(splits):
    dd, _, _ = splits
    a = AudioDataLoaders.from_hf(dd, valid=None, valid_pct=0.25, seed=3, duration=1.0, num_workers=0)
    assert (len(a.train_ds), len(a.valid_ds)) == (9, 3)
    names = {str(item[0]) for item in a.train_ds.items} | {str(item[0]) for item in a.valid_ds.items}
    assert names == {f"train[{i}]" for i in range(12)}  # the validation split stays out
    b = AudioDataLoaders.from_hf(dd["train"], valid_pct=0.25, seed=3, duration=1.0, num_workers=0)
    assert [str(o[0]) for o in b.valid_ds.items] == [str(o[0]) for o in a.valid_ds.items]


def test_read_hf_reads_no_audio_and_names_rows(splits, monkeypatch):
    dd, _, _ = splits
    reads = []
    original = HFAudio.read
    monkeypatch.setattr(HFAudio, "read", lambda self: reads.append(self.name) or original(self))
    df = read_hf(dd)
    assert reads == []  # building the table (and the loaders) reads no audio
    assert list(df.columns) == ["audio", "label", "split"]
    assert df.split.value_counts().to_dict() == {"train": 12, "validation": 6}
    assert df.label.tolist()[:4] == ["low", "high", "low", "high"]
    clip = df.audio[13]
    data, label = clip.read()
    assert clip.name == "validation[1]" and label == "validation[1] (clip_1.flac)"
    assert data[:4] == b"fLaC"
    wav, rate = decode_audio(clip)
    assert (wav.shape, rate) == ((2, 27562), 22050)


def test_rows_of_a_shuffled_or_filtered_dataset_are_its_own(splits):
    """Rows are read through the dataset's own index (``shuffle``, ``select`` and ``filter`` keep an indices mapping
    over the untouched table): row k of the shuffled dataset is the clip its label says."""
    dd, _, _ = splits
    train = dd["train"]
    for ds in (
        train.shuffle(seed=1),
        train.select([7, 2, 11]),
        train.filter(lambda label: label == 1, input_columns="label"),
    ):
        df = read_hf(ds)
        original = read_hf(train)
        by_bytes = {bytes(o.read()[0]): label for o, label in zip(original.audio, original.label)}
        assert [by_bytes[bytes(o.read()[0])] for o in df.audio] == df.label.tolist()
        assert len(set(map(bytes, (o.read()[0] for o in df.audio)))) == len(ds)
    assert read_hf(train.select([7, 2, 11])).audio[1].read()[1] == "train[1] (clip_2.wav)"


def test_path_rows_and_the_audio_columns_sampling_rate(tmp_path):
    clips = _clips(4, 2)
    ds = _dataset(clips, as_paths=tmp_path / "files", rate=8000)
    dls = AudioDataLoaders.from_hf(ds, valid_pct=0.5, seed=0, duration=1.0, num_workers=0, bs=2)
    assert dls.audio_config.sample_rate == 8000  # the Audio feature's sampling_rate is the default
    x, _ = dls.one_batch()
    assert x.shape == (2, 1, 8000)
    dls = AudioDataLoaders.from_hf(ds, valid_pct=0.5, seed=0, duration=1.0, num_workers=0, sample_rate=16000)
    assert dls.audio_config.sample_rate == 16000  # an explicit rate wins
    (tmp_path / "files" / "clip_2.wav").unlink()
    with pytest.raises(AudioFileError, match=r"clip_2\.wav"):
        decode_audio(read_hf(ds).audio[2])


def test_multi_label_rows(tmp_path):
    names = ["guitar", "piano", "voice"]
    tags = [[0], [1, 2], [2], [0, 1], [1], [0, 2]]
    rows = [{"bytes": _bytes(sine(200.0 * (i + 1), 16000, 1.0), 16000, "WAV"), "path": f"{i}.wav"} for i in range(6)]
    ds = datasets.Dataset.from_dict({"audio": rows, "tags": tags}).cast(
        datasets.Features({"audio": datasets.Audio(), "tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    )
    assert read_hf(ds, "tags").label[1] == ["piano", "voice"]
    dls = AudioDataLoaders.from_hf(ds, "tags", valid_pct=0.34, seed=0, duration=1.0, bs=2, num_workers=0)
    assert list(dls.vocab) == names
    _, y = dls.train.one_batch()
    assert y.shape[1] == 3 and set(y.sum(1).tolist()) <= {1.0, 2.0}


def test_errors_name_the_split_the_column_and_the_fix(splits):
    dd, _, _ = splits
    with pytest.raises(ParameterError, match=r"no split 'valid'.*\['train', 'validation'\].*valid=None"):
        AudioDataLoaders.from_hf(dd, valid="valid")
    with pytest.raises(ParameterError, match=r"label column 'genre'.*\['audio', 'label'\]"):
        AudioDataLoaders.from_hf(dd, "genre")
    no_audio = datasets.Dataset.from_dict({"file": ["a.wav"], "label": [0]})
    with pytest.raises(ParameterError, match=r"no Audio column.*cast_column"):
        read_hf(no_audio)
    with pytest.raises(ParameterError, match=r"'label' is a ClassLabel, not an Audio column"):
        read_hf(dd["train"], audio="label")
    with pytest.raises(ParameterError, match=r"streaming.*without streaming=True"):
        AudioDataLoaders.from_hf(dd["train"].to_iterable_dataset())
    with pytest.raises(ParameterError, match=r"streaming.*without streaming=True"):
        AudioDataLoaders.from_hf(datasets.IterableDatasetDict(train=dd["train"].to_iterable_dataset()), valid=None)
    with pytest.raises(ParameterError, match=r"Dataset or DatasetDict, not a list"):
        AudioDataLoaders.from_hf([1, 2])
    with pytest.raises(ParameterError, match=r"Dataset or DatasetDict, not a str"):
        read_hf({"train": "train.csv"})
    hidden = dd["train"].map(lambda row, i: {"label": -1 if i == 5 else row["label"]}, with_indices=True)
    with pytest.raises(ParameterError, match=r"1 rows have no label.*train\[5\]"):
        AudioDataLoaders.from_hf(hidden, valid_pct=0.25)


def test_bad_rows_are_named_and_skipped(splits):
    dd, _, _ = splits
    train = dd["train"].cast_column("audio", datasets.Audio(decode=False))  # (map would decode with torchcodec)
    broken = train.map(
        lambda row, i: {
            "audio": {
                "bytes": row["audio"]["bytes"][:60] if i == 4 else row["audio"]["bytes"],
                "path": row["audio"]["path"],
            }
        },
        with_indices=True,
    ).cast_column("audio", datasets.Audio(decode=False))
    with pytest.raises(AudioFileError, match=r"train\[4\] \(clip_4\.wav\)"):
        dls = AudioDataLoaders.from_hf(broken, valid_pct=0.25, seed=0, duration=1.0, num_workers=0, bs=3)
        list(dls.train) + list(dls.valid)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dls = AudioDataLoaders.from_hf(broken, valid_pct=0.25, seed=0, duration=1.0, num_workers=0, on_error="skip")
    assert len(dls.train_ds) + len(dls.valid_ds) == 11
    assert any("train[4]" in str(w.message) for w in caught)


def test_a_dataset_on_disk_feeds_worker_processes(splits, tmp_path):
    """``save_to_disk`` / ``load_from_disk`` (memory-mapped Arrow): the batches of worker processes are those of
    the main process."""
    dd, _, _ = splits
    dd.save_to_disk(str(tmp_path / "dd"))
    disk = datasets.load_from_disk(str(tmp_path / "dd"))
    kw = {"sample_rate": 16000, "duration": 1.0, "bs": 3}
    main = _valid_batches(AudioDataLoaders.from_hf(disk, num_workers=0, **kw))
    workers = _valid_batches(AudioDataLoaders.from_hf(disk, num_workers=2, **kw))
    assert len(main) == len(workers) == 2
    for (x, y), (x2, y2) in zip(main, workers):
        assert torch.equal(x, x2) and torch.equal(y, y2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048), st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS", b"ID3"]))
def test_any_bytes_in_a_row_give_an_error_naming_the_row(data, head):
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": head + data, "path": "x.bin"}], "label": [0]}).cast(
        datasets.Features({"audio": datasets.Audio(), "label": datasets.ClassLabel(names=["a"])})
    )
    clip = read_hf(ds).audio[0]
    try:
        wav, rate = decode_audio(clip, max_seconds=60)
    except AudioFileError as err:
        assert "train[0] (x.bin)" in str(err)
    else:  # libsndfile made sense of it: then it is audio, bounded by the limit
        assert wav.ndim == 2 and rate > 0 and wav.shape[1] <= 60 * rate
