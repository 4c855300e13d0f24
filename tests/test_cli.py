import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import sine, write
from fastai.learner import Metric

from fastai_audio.cli import main
from fastai_audio.data import check_audio_files

CLI = Path(sys.executable).parent / "fastai-audio"


@pytest.fixture
def mixed_folder(tmp_path):
    write(tmp_path / "a" / "good.wav", sine(440, 16000, 0.2), 16000)
    write(tmp_path / "b" / "stereo.flac", sine(440, 44100, 0.1, channels=2), 44100)
    (tmp_path / "b" / "broken.wav").write_text("not audio")
    (tmp_path / "empty.ogg").write_bytes(b"")
    return tmp_path


def test_check_audio_files_reports_each_file(mixed_folder):
    files = sorted(mixed_folder.rglob("*.*"))
    report = check_audio_files(files)
    assert list(report.path) == [str(f) for f in files]
    by_name = {Path(p).name: row for p, row in zip(report.path, report.itertuples())}
    assert by_name["good.wav"].ok and by_name["good.wav"].sample_rate == 16000
    assert by_name["stereo.flac"].channels == 2 and by_name["stereo.flac"].duration == pytest.approx(0.1)
    assert not by_name["broken.wav"].ok and "cannot be decoded" in by_name["broken.wav"].reason
    assert not by_name["empty.ogg"].ok and "is empty" in by_name["empty.ogg"].reason


def test_check_command_lists_bad_files_and_fails(mixed_folder, capsys):
    assert main(["check", str(mixed_folder)]) == 1
    out, err = capsys.readouterr()
    assert "broken.wav" in out and "empty.ogg" in out and "good.wav" not in out
    assert "4 file(s) checked, 2 bad" in err


def test_check_command_passes_on_good_files(mixed_folder, capsys):
    assert main(["check", str(mixed_folder / "a"), str(mixed_folder / "b" / "stereo.flac")]) == 0
    assert "2 file(s) checked, 0 bad" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_check_command_formats(mixed_folder, capsys, fmt):
    main(["check", str(mixed_folder), "--all", "--format", fmt])
    out = capsys.readouterr().out
    if fmt == "json":
        rows = json.loads(out)
        assert len(rows) == 4 and sum(r["ok"] for r in rows) == 2
    else:
        assert out.splitlines()[0] == "path,ok,reason,sample_rate,channels,duration" and len(out.splitlines()) == 5


def test_check_command_on_a_missing_path(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.wav")]) == 1
    assert "nope.wav" in capsys.readouterr().out


def test_console_script_exit_codes(mixed_folder):
    assert CLI.exists(), "make install puts the fastai-audio console script next to python"
    bad = subprocess.run([str(CLI), "check", str(mixed_folder)], capture_output=True, text=True)
    assert bad.returncode == 1 and "broken.wav" in bad.stdout
    usage = subprocess.run([str(CLI), "check"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_synth_nsynth_command_returns_the_root(nsynth_small, capsys):
    # same arguments as the cached fixture: the command finds the finished render and prints its root
    assert main(["synth-nsynth", str(nsynth_small), "--size", "small", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(nsynth_small)


def test_synth_nsynth_command_bad_soundfont(tmp_path, capsys):
    assert main(["synth-nsynth", str(tmp_path / "out"), "--soundfont", str(tmp_path / "missing.sf2")]) == 1
    err = capsys.readouterr().err
    assert "fastai-audio synth-nsynth: error:" in err and "missing.sf2: no such soundfont" in err


TRAIN = ["--arch", "resnet18", "--no-pretrained", "--bs", "4", "--duration", "1.0", "--n-mels", "32", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def trained(toy_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model.pkl"
    assert main(["train", str(toy_folder), "--epochs", "1", "--out", str(out), *TRAIN]) == 0
    return out


def test_train_exports_a_model_with_checkpoints(trained, capsys):
    assert trained.is_file()
    assert (trained.parent / "model_checkpoints" / "epoch_0.pth").is_file()


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_predict_formats(trained, toy_folder, capsys, fmt):
    files = sorted((toy_folder / "valid" / "low").glob("*.wav"))[:2]
    assert main(["predict", str(trained), *map(str, files), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        rows = json.loads(out)
        assert [r["path"] for r in rows] == [str(f) for f in files] and {"high", "low"} <= rows[0].keys()
    elif fmt == "csv":
        assert out.splitlines()[0] == "path,prediction,probability,high,low" and len(out.splitlines()) == 3
    else:
        assert out.splitlines()[0].split() == ["path", "prediction", "probability", "high", "low"]


def test_predict_windows(trained, tmp_path, capsys):
    path = write(tmp_path / "long.wav", sine(220, 16000, 3.2), 16000)
    assert main(["predict", str(trained), str(path), "--window", "1.0", "--hop", "1.0", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("path,start,end,prediction,clip_prediction") and len(lines) == 1 + 4  # 0,1,2,3 s


def test_predict_bad_model_and_corrupt_audio(trained, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.pkl"), "x.wav"]) == 1
    assert "nope.pkl: no such model file" in capsys.readouterr().err
    (tmp_path / "junk.pkl").write_text("not a model")
    assert main(["predict", str(tmp_path / "junk.pkl"), "x.wav"]) == 1
    assert "junk.pkl: cannot be loaded as a fastai model" in capsys.readouterr().err
    (tmp_path / "broken.wav").write_text("not audio")
    assert main(["predict", str(trained), str(tmp_path / "broken.wav")]) == 1
    assert "broken.wav: cannot be decoded as audio" in capsys.readouterr().err


def test_resume_continues_after_the_last_finished_epoch(toy_folder, tmp_path, monkeypatch, capsys):
    from fastai_audio.learner import EpochCheckpoint

    out = tmp_path / "m.pkl"
    real_after_epoch = EpochCheckpoint.after_epoch

    def interrupt_after_epoch_1(self):
        real_after_epoch(self)
        if self.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoint, "after_epoch", interrupt_after_epoch_1)
    assert main(["train", str(toy_folder), "--epochs", "3", "--out", str(out), *TRAIN]) == 130
    assert "rerun with --resume" in capsys.readouterr().err and not out.exists()
    ckpt = tmp_path / "m_checkpoints"
    saved = {p.name: p.read_bytes() for p in ckpt.glob("epoch_*.pth")}
    assert sorted(saved) == ["epoch_0.pth", "epoch_1.pth"]

    monkeypatch.setattr(EpochCheckpoint, "after_epoch", real_after_epoch)
    assert main(["train", str(toy_folder), "--epochs", "3", "--out", str(out), "--resume", *TRAIN]) == 0
    err = capsys.readouterr().err
    assert "resuming after epoch 1" in err and out.is_file()
    assert sorted(p.name for p in ckpt.glob("epoch_*.pth")) == ["epoch_0.pth", "epoch_1.pth", "epoch_2.pth"]
    assert all((ckpt / name).read_bytes() == data for name, data in saved.items())  # finished epochs kept as they were


def test_train_unknown_arch(toy_folder, tmp_path, capsys):
    assert main(["train", str(toy_folder), "--arch", "resnet7", "--out", str(tmp_path / "m.pkl")]) == 2
    assert "unknown --arch 'resnet7'" in capsys.readouterr().err


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("musicnn") is None,
    reason="the musicnn wheel is not installed (pip install --no-deps musicnn): its checkpoints are the test",
)
def test_train_fine_tunes_musicnn_on_its_own_front_end(toy_folder, tmp_path, capsys):
    """``--arch musicnn``: the MagnaTagATune weights under a new 2-class head, the 'musicnn' log-mel at 16 kHz
    whatever --sample-rate says, the body frozen (as for ImageNet weights) and the export predicting."""
    import torch
    from fastai.learner import load_learner

    from fastai_audio.models import MusiCNN, musicnn_checkpoint
    from fastai_audio.models.tf_checkpoint import read_tf_checkpoint

    out = tmp_path / "musicnn.pkl"
    args = ["--arch", "musicnn", "--weights", "MSD", "--bs", "4", "--duration", "1.0", "--sample-rate", "8000"]
    assert main(["train", str(toy_folder), "--epochs", "1", "--out", str(out), "--no-augment", *args]) == 0
    learn = load_learner(out)
    model = learn.model
    assert isinstance(model, MusiCNN) and model.head.weight.shape == (2, 200)
    tf = read_tf_checkpoint(musicnn_checkpoint("MSD_musicnn"))
    assert torch.equal(model.timbral[0].weight[5, 0, :, 2].cpu(), torch.from_numpy(tf["conv2d/kernel"][2, :, 0, 5]))
    assert learn.dls.audio_config.sample_rate == 16000 and learn.dls.audio_config.duration == 1.0
    capsys.readouterr()
    files = sorted((toy_folder / "valid" / "high").glob("*.wav"))[:2]
    assert main(["predict", str(out), *map(str, files), "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "path,prediction,probability,high,low" and len(rows) == 3


class _ScriptedAccuracy(Metric):
    """A validation 'accuracy' that scores each epoch from a script, so the best epoch is known in advance."""

    def __init__(self, scores):
        self.scores, self.calls = list(scores), -1

    def reset(self):
        self.calls += 1

    def accumulate(self, learn):
        pass

    @property
    def value(self):
        return self.scores[min(self.calls, len(self.scores) - 1)]

    @property
    def name(self):
        return "accuracy"


def test_train_keeps_the_best_epoch_and_stops_early(toy_folder, tmp_path, capsys, monkeypatch):
    import torch
    from fastai.learner import load_learner

    # validation accuracy per epoch: the best is epoch 1; two epochs without better ones stop the run
    monkeypatch.setattr("fastai.metrics.accuracy", _ScriptedAccuracy([0.5, 0.75, 0.25, 0.25, 0.25, 0.25, 0.25]))
    out = tmp_path / "m.pkl"
    assert main(["train", str(toy_folder), "--epochs", "6", "--patience", "2", "--out", str(out), *TRAIN]) == 0
    assert "kept epoch 1, the best on validation accuracy (0.7500)" in capsys.readouterr().err
    ckpt = tmp_path / "m_checkpoints"
    assert sorted(p.name for p in ckpt.glob("epoch_*.pth")) == [f"epoch_{i}.pth" for i in range(4)]  # stopped
    exported = load_learner(out).model.state_dict()
    kept = torch.load(ckpt / "epoch_1.pth", weights_only=False)["model"]
    last = torch.load(ckpt / "epoch_3.pth", weights_only=False)["model"]
    assert all(torch.equal(exported[k].cpu(), kept[k].cpu()) for k in exported)
    assert not all(torch.equal(exported[k].cpu(), last[k].cpu()) for k in exported)


IMPORTED = """
import sys
from fastai_audio.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:
    status = exit.code
print(status, sorted(m for m in ("torch", "torchaudio", "fastai", "fasttransform") if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--help"], 0),
        (["train", "--help"], 0),
        (["train"], 2),
        (["predict", "model.pkl"], 2),
        (["check", "{folder}"], 1),
        (["check", "{folder}/b/stereo.flac", "--all"], 0),
    ],
)
def test_help_usage_errors_and_check_load_neither_torch_nor_fastai(argv, status, mixed_folder):
    """So that they answer at once (torch and fastai take seconds to import)."""
    argv = [a.format(folder=mixed_folder) for a in argv]
    run = subprocess.run([sys.executable, "-c", IMPORTED, *argv], capture_output=True, text=True, check=True)
    got, loaded = run.stdout.splitlines()[-1].split(" ", 1)
    assert loaded == "[]", f"fastai-audio {' '.join(argv)} imported {loaded}"
    assert int(got) == status, run.stderr


def test_synth_nsynth_command_takes_several_soundfonts_and_timbre(tmp_path, capsys):
    import shutil

    import pandas as pd

    from fastai_audio.datasets import read_nsynth
    from fastai_audio.datasets.synth import _default_soundfont

    pytest.importorskip("tinysoundfont")
    other = tmp_path / "Other.sf2"
    shutil.copy(_default_soundfont(), other)
    argv = [
        "synth-nsynth",
        str(tmp_path / "out"),
        "--soundfont",
        str(_default_soundfont()),
        str(other),
        "--size",
        "1",
        "--timbre-randomization",
        "0.5",
        "--no-progress",
    ]
    assert main(argv) == 0
    df = read_nsynth(capsys.readouterr().out.strip())
    assert set(df["soundfont"]) == {"TimGM6mb.sf2", "Other.sf2"}
    assert pd.Series([t["gain_db"] for t in df["timbre"]]).between(-6.0, 0.0).all()  # strength 0.5: half the range


# ---- hostile and broken files (issue 22) ------------------------------------------------------------------------


def test_predict_takes_the_onnx_model_and_gives_the_pkls_table(trained, toy_folder, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX models need the serve extra")
    pytest.importorskip("onnxscript")
    onnx = tmp_path / "model.onnx"
    assert main(["export", str(trained), "--onnx", str(onnx)]) == 0
    files = sorted((toy_folder / "valid").glob("*/*.wav"))[:3]
    capsys.readouterr()
    tables = {}
    for model in (trained, onnx):
        assert main(["predict", str(model), *map(str, files), "--format", "json"]) == 0
        tables[model.suffix] = json.loads(capsys.readouterr().out)
    assert [r["prediction"] for r in tables[".onnx"]] == [r["prediction"] for r in tables[".pkl"]]
    long = write(tmp_path / "long.wav", sine(220, 16000, 3.2), 16000)
    assert main(["predict", str(onnx), str(long), "--window", "1.0", "--hop", "1.0", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("path,start,end,prediction,clip_prediction") and len(lines) == 1 + 4
    assert main(["export", str(onnx), "--onnx", str(tmp_path / "again.onnx")]) == 1
    assert "is an ONNX model" in capsys.readouterr().err


def test_loading_a_pkl_says_it_runs_code(trained, capsys):
    with pytest.warns(UserWarning, match="insecure pickle"):  # fastai's own warning is no longer hidden
        assert main(["predict", str(trained), str(trained)]) == 1
    assert "load only your own" in " ".join(_parser_help("predict").split())


def _parser_help(command: str) -> str:
    from fastai_audio.cli import _parser

    action = next(a for a in _parser()._subparsers._group_actions if a.dest == "command")
    return action.choices[command].format_help()


def test_resume_passes_over_a_broken_checkpoint_naming_it(toy_folder, tmp_path, capsys):
    out = tmp_path / "m.pkl"
    assert main(["train", str(toy_folder), "--epochs", "2", "--out", str(out), *TRAIN]) == 0
    ckpt = tmp_path / "m_checkpoints"
    (ckpt / "epoch_1.pth").write_bytes(b"")  # the newest checkpoint: empty (a full disk, a killed copy)
    import torch

    torch.save({"model": Evil()}, ckpt / "epoch_2.pth")  # newer still: a pickle that would run code if unpickled
    capsys.readouterr()
    assert main(["train", str(toy_folder), "--epochs", "2", "--out", str(out), "--resume", *TRAIN]) == 0
    err = capsys.readouterr().err
    assert f"cannot resume from {ckpt / 'epoch_2.pth'} (UnpicklingError" in err, err
    assert f"cannot resume from {ckpt / 'epoch_1.pth'}" in err
    assert f"resuming after epoch 0 from {ckpt / 'epoch_0.pth'}" in err
    assert not (tmp_path / "pwned").exists()


class Evil:
    def __reduce__(self):
        import os

        return os.system, ("touch pwned",)


def test_train_skips_files_that_break_during_training(toy_folder, tmp_path, capsys):
    import shutil

    import fastai_audio.data.fill as fill

    data = tmp_path / "data"
    shutil.copytree(toy_folder, data)
    victim = sorted((data / "train").glob("*/*.wav"))[0]
    real = fill.BatchFiller._open
    calls = {"n": 0}

    def breaks_after_the_first_epoch(self, i, draw):  # the file is cut short once the run is under way
        calls["n"] += 1
        if calls["n"] == 20:
            victim.write_bytes(victim.read_bytes()[:100])
        return real(self, i, draw)

    fill.BatchFiller._open = breaks_after_the_first_epoch
    try:
        with pytest.warns(UserWarning) as caught:
            assert (
                main(
                    [
                        "train",
                        str(data),
                        "--epochs",
                        "3",
                        "--out",
                        str(tmp_path / "m.pkl"),
                        "--on-error",
                        "skip",
                        "--num-workers",
                        "0",
                        *TRAIN,
                    ]
                )
                == 0
            )
    finally:
        fill.BatchFiller._open = real
    named = [str(w.message) for w in caught if str(victim) in str(w.message)]
    assert len(named) == 1 and "is truncated" in named[0], [str(w.message) for w in caught]  # named once, not per epoch


def test_embed_writes_one_row_per_file_or_window(trained, toy_folder, tmp_path, capsys):
    import numpy as np
    import pandas as pd

    from fastai_audio.cli import _load_model

    files = [str(f) for f in sorted((toy_folder / "valid").rglob("*.wav"))[:3]]
    assert main(["embed", str(trained), *files, "--out", str(tmp_path / "e.csv")]) == 0
    table = pd.read_csv(tmp_path / "e.csv")
    learn = _load_model(trained)
    want = learn.embed(files).numpy()
    assert list(table.path) == files and list(table.columns[1:3]) == ["e0", "e1"]
    assert np.allclose(table.iloc[:, 1:].to_numpy(), want, atol=1e-5)
    assert (
        main(["embed", str(trained), files[0], "--window", "0.5", "--hop", "0.25", "--out", str(tmp_path / "w.npz")])
        == 0
    )
    saved = np.load(tmp_path / "w.npz", allow_pickle=False)
    assert saved["embeddings"].shape[1] == want.shape[1] and list(saved["start"][:3]) == [0.0, 0.25, 0.5]
    assert set(saved["path"]) == {files[0]} and saved["end"][0] == 0.5
    assert main(["embed", str(trained), files[0], "--out", str(tmp_path / "e.txt")]) == 1
    assert "--out must end in .parquet, .csv or .npz" in capsys.readouterr().err
    assert not (tmp_path / "e.txt").exists()
