"""Every kind of bad input gets an AudioError subclass whose message names the file or value and the fix."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import sine, tree_digest, write

from fastai_audio import AudioError, AudioFileError, ParameterError, audio_info, load_audio
from fastai_audio.data import AudioDataLoaders, get_audio_files


def test_error_hierarchy():
    assert issubclass(AudioFileError, AudioError) and issubclass(ParameterError, AudioError)
    assert issubclass(AudioFileError, OSError) and issubclass(ParameterError, ValueError)


def _empty(d: Path) -> Path:
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


def _truncated_header(d: Path) -> Path:
    good = write(d / "good.wav", sine(440, 16000, 0.1), 16000)
    (d / "truncated.wav").write_bytes(good.read_bytes()[:20])
    return d / "truncated.wav"


def _text(d: Path) -> Path:
    (d / "readme.wav").write_text("these are notes, not audio\n")
    return d / "readme.wav"


def _zero_samples(d: Path) -> Path:
    sf.write(str(d / "zero.wav"), np.zeros((0, 1), dtype=np.float32), 16000)
    return d / "zero.wav"


def _nan(d: Path) -> Path:
    x = sine(440, 16000, 0.1)
    x[0, 10] = np.nan
    x[0, 20] = np.inf
    return write(d / "nan.wav", x, 16000, "FLOAT")


@pytest.mark.parametrize(
    "make,message",
    [
        (_empty, r"empty\.wav: is empty \(0 bytes\); re-export or delete it"),
        (_truncated_header, r"truncated\.wav: cannot be decoded as audio .*fastai-audio check"),
        (_text, r"readme\.wav: cannot be decoded as audio \(Format not recognised"),
        (_zero_samples, r"zero\.wav: holds no samples"),
        (_nan, r"nan\.wav: holds 2 NaN/Inf samples"),
    ],
)
def test_bad_files(tmp_path, make, message):
    path = make(tmp_path)
    before = path.read_bytes()
    with pytest.raises(AudioFileError, match=message) as err:
        load_audio(path)
    assert err.value.path == str(path)
    assert path.read_bytes() == before  # nothing the user owns is modified


def test_missing_path():
    with pytest.raises(AudioFileError, match=r"nowhere/x\.wav: no such file; check the path"):
        load_audio("nowhere/x.wav")
    with pytest.raises(AudioFileError, match=r"nowhere: no such folder"):
        get_audio_files("nowhere")
    with pytest.raises(AudioFileError, match="no such file"):
        audio_info("nowhere/x.wav")


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(AudioFileError, match="is a directory, not an audio file; use get_audio_files"):
        load_audio(tmp_path)


def test_unreadable_directory(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:  # root reads everything: simulate the OS refusal instead
        locked.chmod(0)
    else:
        real = Path.iterdir

        def refuse(self):
            if self == locked:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "iterdir", refuse)
    try:
        with pytest.raises(AudioFileError, match=r"locked: permission denied while listing the folder"):
            get_audio_files(locked)
    finally:
        locked.chmod(stat.S_IRWXU)


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path / "secret.wav", sine(440, 8000, 0.1), 8000)
    # root reads everything: simulate the OS refusing both the permission check and the open
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != path)
    real_init = sf.SoundFile.__init__

    def refuse(self, file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        real_init(self, file, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "__init__", refuse)
    with pytest.raises(AudioFileError, match=r"secret\.wav: permission denied"):
        load_audio(path)


def test_eight_channels_load_and_downmix(tmp_path):
    path = write(tmp_path / "octo.wav", sine(440, 8000, 0.1, channels=8), 8000)
    assert load_audio(path)[0].shape == (8, 800)
    assert load_audio(path, mono=True)[0].shape == (1, 800)


def _split_folder(tmp_path, rates):
    for i, sr in enumerate(rates):
        write(tmp_path / ("train" if i % 2 == 0 else "valid") / "a" / f"{sr}_{i}.wav", sine(440, sr, 0.5), sr)
    return tmp_path


def test_mixed_8k_and_48k_in_one_folder(tmp_path):
    root = _split_folder(tmp_path, [8000, 48000, 48000, 8000])
    dls = AudioDataLoaders.from_folder(root, bs=2, duration=0.5, sample_rate=16000, num_workers=0, shuffle=False)
    x, _ = dls.train.one_batch()
    assert x.shape == (2, 1, 8000) and x.sample_rate == 16000
    strict = AudioDataLoaders.from_folder(root, bs=2, duration=None, sample_rate=None, num_workers=0, shuffle=False)
    with pytest.raises(ParameterError, match=r"different sample rates: .*48000_2\.wav is at 48000 Hz and .*8000_0"):
        strict.train.one_batch()  # the longest clip comes first: variable-length batches are sorted


def test_clip_shorter_than_duration(tmp_path):
    root = _split_folder(tmp_path, [8000, 8000])
    x, _ = AudioDataLoaders.from_folder(root, bs=1, duration=2.0, sample_rate=8000, num_workers=0).one_batch()
    assert x.shape == (1, 1, 16000) and x[..., 4000:].abs().sum() == 0  # padded with silence
    with pytest.raises(ParameterError, match=r"8000_0\.wav is 0\.500 s long, shorter than the 2\.000 s asked for"):
        AudioDataLoaders.from_folder(root, bs=1, duration=2.0, sample_rate=8000, pad_mode="error", num_workers=0)


def test_label_regex_matching_nothing(tmp_path):
    root = _split_folder(tmp_path, [8000, 8000])
    with pytest.raises(ParameterError, match=r"label pattern r'\(\\w\+\)-dog' matches nothing in .*8000_0\.wav"):
        AudioDataLoaders.from_re(root, r"(\w+)-dog", valid_pct=None, num_workers=0)


def test_empty_folder_split(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ParameterError, match=r"no audio files in .*train, the training folder .* pass train='<folder"):
        AudioDataLoaders.from_folder(tmp_path)


def test_a_full_pipeline_leaves_the_sources_untouched(tmp_path):
    root = _split_folder(tmp_path, [8000, 48000, 22050, 16000])
    before = tree_digest(root)
    dls = AudioDataLoaders.from_folder(root, bs=2, duration=1.0, num_workers=0)
    list(dls.train), list(dls.valid)
    assert tree_digest(root) == before
