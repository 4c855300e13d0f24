"""Files that are never lost (issue 22, items 9 and 10): every file the library writes goes to a temporary name
beside it and is renamed into place only when complete; a failure (a full disk, simulated here by a writer that
stops halfway with ENOSPC) leaves what was there untouched, no partial file, and an error naming the file."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from conftest import sine, trained_resnet, write

from fastai_audio.all import AudioDataLoaders, mel_transforms
from fastai_audio.atomic import atomic_file
from fastai_audio.errors import AudioFileError
from fastai_audio.io import save_audio
from fastai_audio.learner import EpochCheckpoint


def full_disk(real):
    """``real`` (a function writing a file at its path argument), made to write half of it and then fail as a full
    disk does."""

    def writer(*args, **kwargs):
        real(*args, **kwargs)
        target = next(a for a in list(args) + list(kwargs.values()) if isinstance(a, (str, Path)) and Path(a).exists())
        data = Path(target).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    return writer


def folder_state(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def learn(toy_folder):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, batch_tfms=mel_transforms("speech", n_mels=32))
    return trained_resnet(dls)


def test_a_failed_export_leaves_the_good_model(learn, tmp_path, monkeypatch):
    learn.path = tmp_path
    learn.export("model.pkl")
    before = folder_state(tmp_path)
    monkeypatch.setattr(torch, "save", full_disk(torch.save))
    with pytest.raises(
        AudioFileError,
        match=r"model\.pkl: the model could not be written \(No space left on device\); "
        "it was left as it was",
    ):
        learn.export("model.pkl")
    assert folder_state(tmp_path) == before  # the good model, and no temporary file


def test_a_failed_onnx_export_leaves_the_good_model(learn, tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = learn.export_onnx(tmp_path / "model.onnx")
    before = folder_state(tmp_path)
    monkeypatch.setattr(onnx, "save", full_disk(onnx.save))
    with pytest.raises(AudioFileError, match=r"model\.onnx: the ONNX model could not be written \(No space left"):
        learn.export_onnx(path)
    assert folder_state(tmp_path) == before
    monkeypatch.undo()
    with pytest.raises(AudioFileError, match="could not be written .*nothing was written"):  # a folder that is a file
        learn.export_onnx(tmp_path / "model.onnx" / "inside.onnx")


def test_a_failed_checkpoint_leaves_the_last_good_one(toy_folder, tmp_path, monkeypatch):
    dls = AudioDataLoaders.from_folder(toy_folder, bs=4, duration=1.0, batch_tfms=mel_transforms("speech", n_mels=32))
    learn = trained_resnet(dls)
    learn.path, learn.model_dir = tmp_path, "."
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3, cbs=EpochCheckpoint())
    before = folder_state(tmp_path)
    monkeypatch.setattr(torch, "save", full_disk(torch.save))
    with pytest.raises(AudioFileError, match=r"epoch_0\.pth: the checkpoint could not be written"):
        with learn.no_bar(), learn.no_logging():
            learn.fit(1, 1e-3, cbs=EpochCheckpoint())
    assert folder_state(tmp_path) == before


def test_shards_on_a_full_disk_leave_nothing_behind(toy_folder, tmp_path, monkeypatch):
    wds = pytest.importorskip("webdataset")
    from fastai_audio.data.shards import write_shards

    dls = AudioDataLoaders.from_folder(toy_folder, bs=1, duration=None)
    real, calls = wds.TarWriter.write, {"n": 0}

    def write_until_full(self, sample):
        calls["n"] += 1
        if calls["n"] > 5:  # the third shard fills the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, sample)

    monkeypatch.setattr(wds.TarWriter, "write", write_until_full)
    dest = tmp_path / "shards"
    with pytest.raises(
        AudioFileError,
        match=rf"{dest}: the shards could not be written \(No space left on device\); "
        "nothing was left there",
    ):
        write_shards(dls, dest, shard_size="40KB", progress=False)
    assert list(dest.iterdir()) == []  # no shard without its index, no temporary file
    monkeypatch.undo()
    index = write_shards(dls, dest, shard_size="40KB", progress=False)  # and the folder can be written again
    assert index.is_file()


def test_save_audio_and_atomic_file_keep_what_was_there(tmp_path, monkeypatch):
    import soundfile as sf

    path = write(tmp_path / "clip.wav", sine(440, 16000, 0.5), 16000)
    before = path.read_bytes()
    monkeypatch.setattr(sf, "write", full_disk(sf.write))
    with pytest.raises(AudioFileError, match=r"clip\.wav: the audio file could not be written"):
        save_audio(path, torch.zeros(1, 16000), 16000)
    assert folder_state(tmp_path) == {"clip.wav": before}
    monkeypatch.undo()
    save_audio(path, torch.zeros(1, 8000), 16000)  # the extension still picks the format
    assert sf.info(str(path)).frames == 8000 and sf.info(str(path)).format == "WAV"
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert sf.info(str(path)).frames == 8000 and sorted(p.name for p in tmp_path.iterdir()) == ["clip.wav"]
