"""fastai_audio.datasets.folds and the fold loaders: ESC-50 and UrbanSound8K on tiny copies of their layouts, and
cross_validate over their folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import sine, write

from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import ESC50_FOLDS, read_esc50, read_urbansound8k
from fastai_audio.errors import AudioFileError, ParameterError


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    """ESC-50's layout: meta/esc50.csv and audio/<fold>-<src>-<take>-<target>.wav; two classes (one in ESC-10)
    at 220 and 880 Hz, two clips of each per fold."""
    root = tmp_path_factory.mktemp("ESC-50-master")
    rows = []
    for fold in ESC50_FOLDS:
        for target, (category, freq, esc10) in enumerate((("dog", 220.0, True), ("rain", 880.0, False))):
            for take in "AB":
                name = f"{fold}-{100 + fold}{target}-{take}-{target}.wav"
                write(root / "audio" / name, sine(freq * (1 + 0.01 * fold), 8000, 0.5), 8000)
                rows.append([name, fold, target, category, esc10, f"{100 + fold}{target}", take])
    (root / "meta").mkdir()
    columns = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    pd.DataFrame(rows, columns=columns).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def test_esc50_reads_the_table_and_validates_on_one_official_fold(esc50):
    df = read_esc50(esc50)
    assert len(df) == 20 and sorted(df.label.unique()) == ["dog", "rain"] and df.fname[0].startswith("audio/1-")
    assert len(read_esc50(esc50, esc10=True)) == 10
    dls = AudioDataLoaders.from_esc50(esc50, fold=3, sample_rate=8000, duration=0.5, bs=4, num_workers=0)
    names = [row[0] for row in dls.valid_ds.items]  # from_df's items: the table's rows
    assert len(dls.valid_ds) == 4 and len(dls.train_ds) == 16 and all("/3-" in str(n) for n in names)
    assert dls.vocab == ["dog", "rain"] and dls.one_batch()[0].shape[-1] == 4000
    with pytest.raises(ParameterError, match=r"fold must be one of ESC-50's folds \[1, 2, 3, 4, 5\], got 6"):
        AudioDataLoaders.from_esc50(esc50, fold=6)


def test_a_table_that_is_not_the_data_set_s_is_named(tmp_path, esc50):
    with pytest.raises(AudioFileError, match=r"esc50.csv.*is not there: point at the root of ESC-50"):
        read_esc50(tmp_path)
    (tmp_path / "meta").mkdir()
    pd.DataFrame({"filename": ["a.wav"], "fold": [1]}).to_csv(tmp_path / "meta" / "esc50.csv", index=False)
    with pytest.raises(AudioFileError, match=r"lacks the columns \['target', 'category'\]"):
        read_esc50(tmp_path)
    table = pd.read_csv(esc50 / "meta" / "esc50.csv").assign(fold=7)
    table.to_csv(tmp_path / "meta" / "esc50.csv", index=False)
    with pytest.raises(AudioFileError, match=r"names folds \[7\]; the official folds are \[1, 2, 3, 4, 5\]"):
        read_esc50(tmp_path)


def test_urbansound8k_reads_fold_folders(tmp_path):
    rows = []
    for fold in (1, 2, 3):
        for class_id, (name, freq) in enumerate((("dog_bark", 330.0), ("siren", 990.0))):
            fname = f"{7000 + fold}-{class_id}-0-0.wav"
            write(tmp_path / "audio" / f"fold{fold}" / fname, sine(freq, 16000, 0.3 + 0.1 * fold), 16000)
            rows.append([fname, 7000 + fold, 0.0, 1.0, 1, fold, class_id, name])
    (tmp_path / "metadata").mkdir()
    columns = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "metadata" / "UrbanSound8K.csv", index=False)
    df = read_urbansound8k(tmp_path)
    assert df.fname[0] == "audio/fold1/7001-0-0-0.wav" and list(df.label[:2]) == ["dog_bark", "siren"]
    dls = AudioDataLoaders.from_urbansound8k(tmp_path, fold=2, sample_rate=16000, bs=2, num_workers=0)
    assert len(dls.valid_ds) == 2 and len(dls.train_ds) == 4 and dls.one_batch()[0].shape[-1] == 64000  # 4 s


def test_cross_validate_trains_one_learner_per_fold_and_summarises(esc50):
    import torch
    from fastai.metrics import accuracy
    from torchvision.models import resnet18

    from fastai_audio.learner import CrossValidation, audio_learner, cross_validate
    from fastai_audio.transforms import AmplitudeToDB, MelSpectrogram

    seen = []

    def make_dls(fold):
        tfms = [MelSpectrogram(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16), AmplitudeToDB()]
        return AudioDataLoaders.from_esc50(esc50, fold=fold, sample_rate=8000, bs=4, num_workers=0, batch_tfms=tfms)

    def make_learner(dls):
        torch.manual_seed(0)
        seen.append(len(dls.valid_ds))
        return audio_learner(dls, resnet18, pretrained=False, metrics=accuracy)

    def train(learn):
        with learn.no_bar(), learn.no_logging():
            learn.fit(1, 1e-3)

    cv = cross_validate(make_dls, make_learner, train, ESC50_FOLDS[:3])
    assert isinstance(cv, CrossValidation) and seen == [4, 4, 4] and list(cv.table.fold) == [1, 2, 3]
    assert list(cv.table.columns) == ["fold", "valid_loss", "accuracy"] and cv.metric == "accuracy"
    assert cv.mean == pytest.approx(cv.table.accuracy.mean()) and cv.std == pytest.approx(
        np.std(cv.table.accuracy, ddof=1)
    )
    assert repr(cv).startswith("accuracy ") and repr(cv).endswith("over 3 folds")
    with pytest.raises(ParameterError, match="build them with metrics"):
        cross_validate(make_dls, lambda dls: audio_learner(dls, resnet18, pretrained=False), train, [1])


def test_speech_commands_follows_the_official_lists(tmp_path):
    from fastai_audio.datasets import read_speech_commands
    from fastai_audio.transforms import AddBackground

    for word, freq in (("yes", 300.0), ("no", 600.0), ("up", 900.0)):
        for speaker in ("aa11", "bb22", "cc33"):
            write(tmp_path / word / f"{speaker}_nohash_0.wav", sine(freq, 16000, 1.0), 16000)
    write(
        tmp_path / "_background_noise_" / "white_noise.wav", np.random.default_rng(0).normal(0, 0.1, (1, 32000)), 16000
    )
    (tmp_path / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\nno/bb22_nohash_0.wav\nup/bb22_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nno/cc33_nohash_0.wav\nup/cc33_nohash_0.wav\n")
    df = read_speech_commands(tmp_path)
    assert df.split.value_counts().to_dict() == {"train": 3, "validation": 3, "testing": 3}
    assert set(df[df.split == "train"].speaker) == {"aa11"} and "_background_noise_" not in set(df.label)
    dls = AudioDataLoaders.from_speech_commands(tmp_path, words=["yes", "no"], bs=2, num_workers=0)
    assert dls.vocab == ["no", "yes"] and len(dls.train_ds) == 2 and len(dls.valid_ds) == 2
    valid = {str(row[0].relative_to(tmp_path)) for row in dls.valid_ds.items}  # (from_df resolves the names)
    assert valid == {"yes/bb22_nohash_0.wav", "no/bb22_nohash_0.wav"}
    test = AudioDataLoaders.from_speech_commands(tmp_path, valid="testing", bs=2, num_workers=0)
    assert {row[0].name for row in test.valid_ds.items} == {"cc33_nohash_0.wav"}
    assert AddBackground(tmp_path / "_background_noise_", 0, 20).files[0].name == "white_noise.wav"
    with pytest.raises(ParameterError, match=r"no folder for the words \['stop'\]"):
        read_speech_commands(tmp_path, words=["yes", "stop"])
    (tmp_path / "testing_list.txt").write_text("yes/zz99_nohash_0.wav\n")
    with pytest.raises(
        AudioFileError, match=r"lists 1 files that are not there \(first: \['yes/zz99_nohash_0.wav'\]\)"
    ):
        read_speech_commands(tmp_path)


@pytest.fixture(scope="module")
def irmas(tmp_path_factory):
    """IRMAS's layout: training folders of 3 s excerpts named [instrument][drums][genre]... (some without the drum
    tag), and testing pieces with a .txt of their instruments."""
    root = tmp_path_factory.mktemp("irmas")
    tones = {"pia": 262.0, "vio": 659.0, "flu": 1319.0}
    for inst, freq in tones.items():
        for i in range(4):
            tags = f"[{inst}][nod][cla]" if i % 2 else f"[{inst}][pop_roc]"
            write(root / "train" / inst / f"{i:03d}__{tags}{i:04d}__1.wav", sine(freq, 16000, 3.0), 16000)
    pieces = {"a": ["pia", "vio"], "b": ["flu"], "c": ["vio", "flu"]}
    for name, insts in pieces.items():
        write(root / "test" / "Part1" / f"{name}.wav", sum(sine(tones[i], 16000, 6.0) for i in insts) / 2, 16000)
        (root / "test" / "Part1" / f"{name}.txt").write_text("".join(f"{i}\t\n" for i in insts))
    return root


def test_irmas_reads_both_halves_and_trains_a_multi_label_learner_scored_on_the_pieces(irmas):
    import torch
    from fastai.metrics import accuracy_multi

    from fastai_audio.datasets import read_irmas
    from fastai_audio.learner import audio_learner
    from fastai_audio.transforms import AmplitudeToDB, MelSpectrogram

    df = read_irmas(irmas / "train", irmas / "test")
    train, test = df[df.split == "train"], df[df.split == "test"]
    assert len(train) == 12 and len(test) == 3 and set(train.labels) == {"pia", "vio", "flu"}
    assert list(train.drums[:2]) == [None, False] and list(train.genre[:2]) == ["pop_roc", "cla"]
    assert sorted(test.labels) == ["flu", "flu vio", "pia vio"]
    tfms = [MelSpectrogram(n_fft=512, hop_length=256, n_mels=32), AmplitudeToDB()]
    dls = AudioDataLoaders.from_irmas(irmas / "train", irmas / "test", bs=4, num_workers=0, batch_tfms=tfms)
    assert dls.vocab == ["flu", "pia", "vio"] and len(dls.valid_ds) == 3
    x, y = dls.valid.one_batch()
    assert x.shape[-1] == 188 and y.shape == (3, 3) and y.sum().item() == 5  # one-hot rows: two pieces have two
    torch.manual_seed(0)
    from torchvision.models import resnet18

    learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy_multi)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
        loss, score = learn.validate()
    assert 0 <= score <= 1 and type(learn.loss_func).__name__ == "BCEWithLogitsLossFlat"


def test_irmas_names_what_does_not_fit(irmas, tmp_path):
    from fastai_audio.datasets import read_irmas

    with pytest.raises(ParameterError, match="needs the training folder, the testing folder, or both"):
        read_irmas()
    with pytest.raises(AudioFileError, match="holds none of IRMAS's training folders"):
        read_irmas(tmp_path)
    write(tmp_path / "test" / "x.wav", sine(440.0, 16000, 1.0), 16000)
    with pytest.raises(AudioFileError, match=r"x.wav.*has no label file x.txt beside it"):
        read_irmas(test=tmp_path / "test")
    (tmp_path / "test" / "x.txt").write_text("banjo\n")
    with pytest.raises(AudioFileError, match=r"x.txt.*lists \['banjo'\]"):
        read_irmas(test=tmp_path / "test")
    write(tmp_path / "train" / "pia" / "[vio][cla]0001__1.wav", sine(440.0, 16000, 1.0), 16000)
    with pytest.raises(AudioFileError, match=r"is in the 'pia' folder but its name starts with tags \['vio', 'cla'\]"):
        read_irmas(tmp_path / "train")
