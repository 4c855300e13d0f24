"""fastai_audio.files: listing a data set, reading headers, checking files; soundfile and numpy only."""

from fastai_audio.data import get_audio_files


def test_get_audio_files_finds_every_clip(toy_folder):
    files = get_audio_files(toy_folder)
    assert len(files) == 20 and all(f.suffix == ".wav" for f in files)
    assert len(get_audio_files(toy_folder, folders=["valid"])) == 8
    (toy_folder / "notes.txt").write_text("not audio")
    assert len(get_audio_files(toy_folder)) == 20
    (toy_folder / "notes.txt").unlink()
