"""WebDataset shards (fastai_audio.data.shards): writing, the index, and streaming them back as loaders."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine, write
from torchvision.models import resnet18

wds = pytest.importorskip("webdataset", reason="shards need webdataset (the dev extra installs it)")

from fastai_audio.all import AudioDataLoaders, accuracy, audio_learner, load_learner, mel_transforms  # noqa: E402
from fastai_audio.data.shards import ShardDL, parse_size, read_shard_index, write_shards  # noqa: E402
from fastai_audio.data.tarstream import BrokenShardError, tar_samples  # noqa: E402
from fastai_audio.errors import ParameterError  # noqa: E402
from fastai_audio.inference import predict_files  # noqa: E402


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """30 clips in two classes: 16-bit mono WAV at 16 kHz, 24-bit stereo FLAC at 22.05 kHz, float WAV at 8 kHz."""
    root = tmp_path_factory.mktemp("shard_src")
    rng = np.random.default_rng(0)
    for i in range(15):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            kind = i % 3
            sr, ext, subtype, ch = [
                (16000, "wav", "PCM_16", 1),
                (22050, "flac", "PCM_24", 2),
                (8000, "wav", "FLOAT", 1),
            ][kind]
            wav = sine(freq * (1 + 0.02 * i), sr, 0.5 + 0.05 * i, channels=ch) + 0.01 * rng.standard_normal((ch, 1))
            write(root / label / f"{label}_{i:02d}.{ext}", wav.astype(np.float32), sr, subtype=subtype)
    return root


@pytest.fixture(scope="module")
def shards(source, tmp_path_factory) -> Path:
    dls = AudioDataLoaders.from_folder(source, valid_pct=0.3, seed=0, duration=None, sample_rate=None, mono=False, bs=1)
    dest = tmp_path_factory.mktemp("shards") / "out"
    write_shards(dls, dest, shard_size="64KB", progress=False)
    return dest


def keys_of(url) -> list[str]:
    return [s["__key__"] for s in wds.tarfile_samples([{"url": str(url)}])]


def names(dest: Path, split: str) -> list[str]:
    return [str(dest / s["name"]) for s in read_shard_index(dest / "index.json")["splits"][split]["shards"]]


# ---- writing ----------------------------------------------------------------------------------------------------


def test_written_samples_decode_back_bit_exact_with_their_labels(shards, source):
    info = read_shard_index(shards / "index.json")
    assert info["classes"] == ["high", "low"] and info["splits"]["train"]["n"] + info["splits"]["valid"]["n"] == 30
    seen = set()
    for split in ("train", "valid"):
        for s in info["splits"][split]["shards"]:
            samples = list(wds.tarfile_samples([{"url": str(shards / s["name"])}]))
            assert len(samples) == s["n"]
            for sample in samples:
                meta = json.loads(sample["json"])
                src = Path(meta["source"])
                assert meta["label"] == src.parent.name and src.is_relative_to(source)
                ext = next(k for k in sample if not k.startswith("__") and k != "json")
                assert ext == ("wav" if sf.info(str(src)).subtype == "FLOAT" else "flac")  # float stays as it was
                got, rate = sf.read(io.BytesIO(sample[ext]), dtype="float64", always_2d=True)
                want, want_rate = sf.read(str(src), dtype="float64", always_2d=True)
                assert rate == want_rate == meta["sample_rate"] and np.array_equal(got, want)
                seen.add(src)
    assert len(seen) == 30


def test_shards_close_at_the_size_limit_and_training_samples_are_mixed(shards):
    info = read_shard_index(shards / "index.json")
    train = info["splits"]["train"]["shards"]
    assert len(train) > 2 and all(s["bytes"] <= parse_size("64KB") + 20480 for s in train if s["n"] > 1)
    assert sum(s["bytes"] for s in train[:-1]) / (len(train) - 1) > parse_size("64KB") / 2  # filled, not 1 a shard
    labels = [
        json.loads(s["json"])["label"] for t in train for s in wds.tarfile_samples([{"url": str(shards / t["name"])}])
    ]
    changes = sum(a != b for a, b in zip(labels, labels[1:]))
    assert changes >= 4  # shuffled before cutting, not the folder's order (high..., then low...: one change)


def test_write_shards_refuses_a_folder_with_files_and_bad_sizes(toy_folder, tmp_path):
    dls = AudioDataLoaders.from_folder(toy_folder, duration=1.0, bs=2)
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ParameterError, match="not empty"):
        write_shards(dls, tmp_path, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "keep me" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(ParameterError, match="'500 parsecs' is not a size"):
        write_shards(dls, tmp_path / "new", shard_size="500 parsecs", progress=False)
    assert parse_size("2GB") == 2 * 10**9 and parse_size("64MiB") == 64 * 2**20 and parse_size(1000) == 1000


# ---- streaming --------------------------------------------------------------------------------------------------


def shard_dls(shards: Path, **kwargs) -> AudioDataLoaders:
    kwargs = {"duration": 0.5, "bs": 4, **kwargs}
    return AudioDataLoaders.from_shards(
        names(shards, "train"), names(shards, "valid"), index=shards / "index.json", **kwargs
    )


@pytest.mark.parametrize("split", ["train", "valid"])
def test_an_exact_pass_of_two_ranks_with_two_workers_sees_every_key_once(shards, split):
    """Shard-level dealing (more shards than slots) and sample-level dealing (fewer: the valid split's one)."""
    stream = shard_dls(shards).valid.dataset
    stream.urls = names(shards, split)
    stream.counts = [s["n"] for s in read_shard_index(shards / "index.json")["splits"][split]["shards"]]
    want = sorted(k for u in stream.urls for k in keys_of(u))
    got, planned = [], 0
    for rank in range(2):
        for worker in range(2):
            mine = [s["__key__"] for s in stream.samples(epoch=0, rank=rank, world=2, worker=worker, workers=2)]
            assert len(mine) == stream.exact_plan(rank * 2 + worker, 4)[2]  # the index's count for the slot
            planned += len(mine)
            got += mine
    assert sorted(got) == want and planned == len(want)


def test_training_ranks_yield_equal_batch_counts_from_uneven_shards(shards, monkeypatch):
    """The training shards hold 2-4 samples each; every rank still yields len(dl) batches, the same number."""
    counts = []
    for rank in range(2):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        dl = shard_dls(shards, num_workers=2).train
        batches = list(dl)
        assert len(batches) == len(dl) == (21 // 2) // 4 and all(len(b[1]) == 4 for b in batches)
        counts.append(len(batches))
    assert counts[0] == counts[1]


def test_the_same_seed_gives_the_same_stream_and_each_epoch_another(shards):
    def first_keys(dl, epoch, n=12):
        stream = dl.dataset
        it = stream.samples(epoch=epoch, rank=0, world=1, worker=0, workers=1)
        return [next(it)["__key__"] for _ in range(n)]

    a, b, c = shard_dls(shards).train, shard_dls(shards).train, shard_dls(shards, seed=1).train
    assert first_keys(a, 0) == first_keys(b, 0)
    assert first_keys(a, 0) != first_keys(a, 1) and first_keys(a, 0) != first_keys(c, 0)
    epochs = [torch.cat([y for _, y in a]) for _ in range(2)]  # the loader moves to the next epoch by itself
    assert not torch.equal(*epochs)


@pytest.fixture
def http_root(shards):
    if shutil.which("curl") is None:
        pytest.skip("webdataset reads http:// shards with curl, which this machine lacks")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shards))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_shards_over_loopback_http_give_the_keys_of_the_files(shards, http_root):
    files = shard_dls(shards)
    over_http = AudioDataLoaders.from_shards(
        [f"{http_root}/{Path(u).name}" for u in names(shards, "train")],
        [f"{http_root}/{Path(u).name}" for u in names(shards, "valid")],
        index=f"{http_root}/index.json",
        duration=0.5,
        bs=4,
    )
    for split in ("train", "valid"):  # the first 15 of the endless training stream; the whole validation pass
        keys = []
        for dls in (over_http, files):
            samples = getattr(dls, split).dataset.samples(epoch=0, rank=0, world=1, worker=0, workers=1)
            keys.append([s["__key__"] for _, s in zip(range(15), samples)])
        assert keys[0] == keys[1] and keys[0]
    torch.testing.assert_close(over_http.valid.one_batch()[0], files.valid.one_batch()[0])


def test_a_corrupt_member_is_skipped_with_a_warning_naming_it(shards, tmp_path):
    src = next(u for u in names(shards, "train") if len(keys_of(u)) >= 3)  # read as a validation shard below
    samples = list(wds.tarfile_samples([{"url": src}]))
    bad = tmp_path / Path(src).name
    with wds.TarWriter(str(bad)) as sink:
        for k, s in enumerate(samples):
            ext = next(e for e in s if not e.startswith("__") and e != "json")
            sink.write({"__key__": s["__key__"], ext: b"not audio at all" if k == 1 else s[ext], "json": s["json"]})
    dls = AudioDataLoaders.from_shards(
        names(shards, "train"), str(bad), index=shards / "index.json", duration=0.5, bs=2
    )
    with pytest.warns(UserWarning, match=f"skipped sample {samples[1]['__key__']} of shard {bad}"):
        with pytest.raises(ParameterError, match=f"read {len(samples) - 1} of the {len(samples)} samples the index"):
            list(dls.valid)  # an exact pass short of what the index promised: an error by default
    dls = AudioDataLoaders.from_shards(
        names(shards, "train"), str(bad), index=shards / "index.json", duration=0.5, bs=2, allow_partial=True
    )
    with pytest.warns(UserWarning, match=f"read {len(samples) - 1} of the {len(samples)} samples"):
        ys = torch.cat([y for _, y in dls.valid])
    assert len(ys) == len(samples) - 1
    truncated = tmp_path / "cut" / Path(src).name
    truncated.parent.mkdir()
    truncated.write_bytes(Path(src).read_bytes()[: 3 * 512 + 100])  # the first member's header and a bit of it
    dls = AudioDataLoaders.from_shards(
        names(shards, "train"), str(truncated), index=shards / "index.json", duration=0.5, bs=2, allow_partial=True
    )
    with pytest.warns(UserWarning) as caught:  # the cut member (json, no audio), then the rest of the shard
        assert list(dls.valid) == []
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"skipped the rest of shard {truncated}") for m in messages), messages
    assert all(str(truncated) in m for m in messages)


def test_streamed_loaders_train_show_export_and_predict_like_file_loaders(shards, source, tmp_path):
    dls = shard_dls(shards, sample_rate=16000, batch_tfms=mel_transforms("speech", n_mels=32))
    assert isinstance(dls.train, ShardDL) and dls.vocab == ["high", "low"] and dls.c == 2
    xb, yb = dls.one_batch()
    assert xb.shape[:3] == (4, 1, 32) and yb.shape == (4,)
    assert len(list(dls.valid)) == len(dls.valid) == 3  # 9 validation samples, bs 4
    dls.show_batch(2)
    learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    with learn.no_bar():
        learn.fit(1)
        files = sorted(source.glob("*/*.wav"))[:4]
        preds, _ = learn.get_preds(dl=dls.test_dl(files))
    assert preds.shape == (4, 2)
    learn.export(tmp_path / "model.pkl")
    back = load_learner(tmp_path / "model.pkl")
    assert type(back.dls.valid).__name__ == "AudioDL"  # the exported learner carries no shard URLs
    table = predict_files(back, files)
    assert list(table["prediction"]) == [dls.vocab[i] for i in preds.argmax(1).tolist()]


# ---- batch-level decoding of shards ----------------------------------------------------------------------------


def legacy_batches(dl) -> list:
    """The loader's batches made item by item through fastai's pipelines (what loaders with item transforms do)."""
    dl._filler = lambda: None
    try:
        return list(dl)
    finally:
        del dl._filler


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    "kwargs", [{}, {"duration": None, "sample_rate": 16000}, {"mono": False, "sample_rate": None, "duration": 0.3}]
)
def test_validation_batches_filled_whole_equal_the_per_item_path(shards, workers, kwargs):
    """16-bit WAV read straight into the batch, 24-bit stereo FLAC and float WAV through the opener's steps
    (resampled, downmixed), variable length; with and without workers. ``mono=False`` with the rates kept: batches
    of mixed rates cannot be made, by either path, with the same error."""
    dl = shard_dls(shards, num_workers=workers, **kwargs).valid
    assert dl._filler() is not None
    if kwargs.get("sample_rate", 16000) is None:
        with pytest.raises(ParameterError, match="different sample rates"):
            list(dl)
        with pytest.raises(ParameterError, match="different sample rates"):
            legacy_batches(dl)
        return
    got, want = list(dl), legacy_batches(dl)
    assert len(got) == len(want) == len(dl) == 3
    for (x, y), (x0, y0) in zip(got, want):
        assert type(x) is type(x0) and x.sample_rate == x0.sample_rate == 16000
        torch.testing.assert_close(x, x0, rtol=0, atol=0)
        assert torch.equal(y, y0) and type(y) is type(y0)
        if kwargs.get("duration", 0.5) is None:
            assert torch.equal(x.lengths, x0.lengths)


def test_training_batches_follow_the_stream_and_do_not_depend_on_the_process(shards):
    """One worker: the epoch's labels are the stream's first samples in order. Two workers: the pool's batches
    equal those of the same tasks filled in this process, crops included."""
    dl = shard_dls(shards, seed=3).train
    ys = torch.cat([y for _, y in dl])
    stream = dl.dataset.samples(epoch=0, rank=0, world=1, worker=0, workers=1)
    labels = [json.loads(s["json"])["label"] for _, s in zip(range(len(ys)), stream)]
    assert [dl.vocab[i] for i in ys.tolist()] == labels
    pooled = shard_dls(shards, seed=3, num_workers=2).train
    batches = list(pooled)
    filler = pooled._filler()
    here = [filler.fill(task, None) for task, _, _ in pooled._tasks(2)]  # the same epoch's tasks, filled here
    assert len(batches) == len(here) == len(pooled) == 5
    for (x, y), f in zip(batches, here):
        np.testing.assert_array_equal(x.numpy(), f.audio)
        assert torch.equal(y, f.rest[0])
    assert not np.array_equal(here[0].audio[0], here[0].audio[1])  # (crops, not one clip repeated)
    pooled.close()


def test_a_pool_of_shard_workers_serves_every_epoch_and_frees_its_slots(shards):
    dl = shard_dls(shards, num_workers=2).train
    first = [y for _, y in dl]
    pool = dl._pool
    for _ in range(4):
        epoch = [y for _, y in dl]
        assert len(epoch) == len(first) and dl._pool is pool  # the same processes
    assert not torch.equal(torch.cat(first), torch.cat(epoch))
    import gc

    gc.collect()
    assert pool.in_use() == 0
    dl.close()


def test_broken_samples_and_shards_are_reported_from_the_workers(shards, tmp_path):
    src = next(u for u in names(shards, "valid") if len(keys_of(u)) >= 2)
    other = max(names(shards, "train"), key=lambda u: len(keys_of(u)))
    samples = list(wds.tarfile_samples([{"url": src}]))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    bad, cut = tmp_path / "a" / Path(src).name, tmp_path / "b" / Path(other).name  # (names the index counts)
    with wds.TarWriter(str(bad)) as sink:
        for k, s in enumerate(samples):
            ext = next(e for e in s if not e.startswith("__") and e != "json")
            sink.write({"__key__": s["__key__"], ext: s[ext][:60] if k == 1 else s[ext], "json": s["json"]})
    with tarfile.open(other) as tar:
        last = tar.getmembers()[-1]
    cut.write_bytes(Path(other).read_bytes()[: last.offset_data + last.size // 2])  # inside its last member
    with pytest.raises(BrokenShardError, match="ends inside member"):
        list(tar_samples(io.BytesIO(cut.read_bytes()), str(cut)))
    dls = AudioDataLoaders.from_shards(
        names(shards, "train"),
        [str(bad), str(cut)],
        index=shards / "index.json",
        duration=0.5,
        bs=2,
        num_workers=2,
        allow_partial=True,
    )
    with pytest.warns(UserWarning) as caught:
        ys = torch.cat([y for _, y in dls.valid])
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"skipped sample {samples[1]['__key__']} of shard {bad}: ") for m in messages), messages
    assert any(m.startswith(f"skipped the rest of shard {cut}: BrokenShardError") for m in messages), messages
    whole = sum(1 for _ in _whole_samples(cut))
    assert whole >= 1 and len(ys) == len(samples) - 1 + whole  # the cut shard's samples before the break
    dls.valid.close()


def _whole_samples(path: Path):
    try:
        yield from tar_samples(io.BytesIO(path.read_bytes()), str(path))
    except BrokenShardError:
        return


def test_a_missing_validation_shard_is_an_error_and_missing_training_shards_do_not_spin(shards, tmp_path):
    valid = names(shards, "valid")
    gone = str(tmp_path / Path(valid[0]).name)  # listed in the index, not on the disk
    dls = AudioDataLoaders.from_shards(
        names(shards, "train"), [gone, *valid[1:]], index=shards / "index.json", duration=0.5, bs=4, num_workers=2
    )
    promised = sum(s["n"] for s in read_shard_index(shards / "index.json")["splits"]["valid"]["shards"])
    with pytest.warns(UserWarning, match=f"skipped the rest of shard {gone}: FileNotFoundError"):
        with pytest.raises(ParameterError, match=rf"read {promised - 1} of the {promised} samples .*allow_partial"):
            list(dls.valid)
    dls.valid.close()
    lost = [str(tmp_path / Path(u).name) for u in names(shards, "train")]
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="skipped the rest of shard"):
        with pytest.raises(ParameterError, match="1000 shards in a row held no sample"):
            dls = AudioDataLoaders.from_shards(lost, valid, index=shards / "index.json", duration=0.5, bs=4)
            next(iter(dls.train))  # (the loaders' set-up reads a first batch already)
    assert time.perf_counter() - start < 30
