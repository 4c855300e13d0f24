import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import sine, write

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
