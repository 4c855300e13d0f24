"""fastai_audio.datasets: the GM -> NSynth table, synth_nsynth's renders and read_nsynth on both layouts."""

import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("tinysoundfont")
pytest.importorskip("pretty_midi")

from fastai_audio.datasets import (  # noqa: E402
    FAMILY_PITCH_RANGES,
    GM_EXCLUDED,
    GM_PROGRAMS,
    NSYNTH_FAMILIES,
    NSYNTH_PATTERN,
    NSYNTH_QUALITIES,
    NSYNTH_SOURCES,
    NSYNTH_SPLITS,
    NSYNTH_VELOCITIES,
    read_nsynth,
    synth_nsynth,
)
from fastai_audio.datasets import synth as synth_module  # noqa: E402
from fastai_audio.errors import AudioError, AudioFileError, ParameterError  # noqa: E402

SEED_REGEX = r"(\w+)_\w+_\d+-\d+-\d+.wav$"  # the labelling regex of the seed project's NSynth example
SAMPLE_RATE, SAMPLES = 16000, 64000


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return synth_nsynth(tmp_path_factory.mktemp("nsynth") / "small", "small", progress=False)


@pytest.fixture(scope="module")
def examples(small) -> dict:
    return {split: json.loads((small / split / "examples.json").read_text()) for split in NSYNTH_SPLITS}


@pytest.fixture(scope="module")
def manifest(small) -> dict:
    return json.loads((small / "synth_nsynth.json").read_text())


def _wavs(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.wav"))


# ---- the mapping table ----


def test_gm_table_covers_every_program_once():
    assert set(GM_PROGRAMS).isdisjoint(GM_EXCLUDED)
    assert set(GM_PROGRAMS) | set(GM_EXCLUDED) == set(range(128))
    assert {family for family, _ in GM_PROGRAMS.values()} == set(NSYNTH_FAMILIES)
    assert {source for _, source in GM_PROGRAMS.values()} <= set(NSYNTH_SOURCES)
    for low, high in FAMILY_PITCH_RANGES.values():
        assert 21 <= low < high <= 108


# ---- the rendered dataset ----


def test_layout(small, manifest):
    assert small.is_absolute()
    assert sorted(p.name for p in small.iterdir()) == sorted([*NSYNTH_SPLITS, "synth_nsynth.json"])
    for split in NSYNTH_SPLITS:
        names = sorted(p.name for p in (small / split).iterdir())
        assert "examples.json" in names
        assert names == sorted(["examples.json", *manifest["files"][split]])
    assert manifest["complete"] is True
    assert 300 <= len(_wavs(small)) <= 400


def test_every_wav_is_a_16_bit_mono_4_s_note_at_16_khz(small):
    for path in _wavs(small):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (SAMPLE_RATE, 1, SAMPLES, "PCM_16")


def test_no_clipped_and_no_silent_notes(small):
    for path in _wavs(small):
        x, _ = sf.read(str(path), dtype="float64")
        peak = np.abs(x).max()
        assert peak <= 0.99 + 1 / 32768, path.name  # scaled to 0.99 at most, plus one 16-bit step of rounding
        assert peak >= 10 ** (-60 / 20), path.name


def test_file_names_match_nsynth_and_the_seed_regex_labels_the_family(small, examples):
    for path in _wavs(small):
        family = examples[path.parent.name][path.stem]["instrument_family_str"]
        assert re.search(SEED_REGEX, str(path)).group(1) == family
        match = re.search(NSYNTH_PATTERN, str(path))
        assert match.group(1) == match["family"] == family


def test_the_seed_regex_keeps_the_underscore_of_synth_lead():
    name = "/data/nsynth-train/audio/synth_lead_synthetic_000-060-100.wav"
    assert re.search(SEED_REGEX, name).group(1) == "synth_lead"
    match = re.search(NSYNTH_PATTERN, name)
    assert match.groupdict() == {
        "family": "synth_lead",
        "source": "synthetic",
        "instrument": "000",
        "pitch": "060",
        "velocity": "100",
    }
    from fastai.data.transforms import RegexLabeller

    assert RegexLabeller(NSYNTH_PATTERN)(Path(name)) == "synth_lead"


def test_examples_json_agrees_with_the_files(small, examples):
    note_ids = []
    for split, entries in examples.items():
        assert set(entries) == {p.stem for p in (small / split).glob("*.wav")}
        for note_str, e in entries.items():
            match = re.fullmatch(NSYNTH_PATTERN, note_str + ".wav")
            assert e["note_str"] == note_str
            assert e["instrument_str"] == f"{match['family']}_{match['source']}_{match['instrument']}"
            assert (e["pitch"], e["velocity"]) == (int(match["pitch"]), int(match["velocity"]))
            assert e["instrument_family_str"] == match["family"]
            assert e["instrument_family"] == NSYNTH_FAMILIES.index(e["instrument_family_str"])
            assert e["instrument_source_str"] == match["source"]
            assert e["instrument_source"] == NSYNTH_SOURCES.index(e["instrument_source_str"])
            assert e["velocity"] in NSYNTH_VELOCITIES
            low, high = FAMILY_PITCH_RANGES[e["instrument_family_str"]]
            assert low <= e["pitch"] <= high
            assert GM_PROGRAMS[e["instrument"]] == (e["instrument_family_str"], e["instrument_source_str"])
            assert e["sample_rate"] == SAMPLE_RATE
            assert e["qualities"] == [0] * len(NSYNTH_QUALITIES) and e["qualities_str"] == []
            note_ids.append(e["note"])
    assert sorted(note_ids) == list(range(len(note_ids)))


def test_splits_share_no_instrument_and_train_has_every_family(small, examples, manifest):
    programs = {split: {e["instrument"] for e in examples[split].values()} for split in NSYNTH_SPLITS}
    names = {split: {e["instrument_str"] for e in examples[split].values()} for split in NSYNTH_SPLITS}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert programs[a].isdisjoint(programs[b])
        assert names[a].isdisjoint(names[b])
        assert set(manifest["programs"][a]).isdisjoint(manifest["programs"][b])
    for split in NSYNTH_SPLITS:
        assert programs[split] <= set(manifest["programs"][split])
    families = {s: {e["instrument_family_str"] for e in examples[s].values()} for s in NSYNTH_SPLITS}
    assert families["train"] == set(NSYNTH_FAMILIES)
    # every family here has >= 5 programs, so each also gets a program in valid and in test
    assert families["valid"] == families["test"] == set(NSYNTH_FAMILIES)


def test_manifest_counts_match_the_files(small, manifest):
    counts = manifest["counts"]
    assert counts["notes"] == {s: len(list((small / s).glob("*.wav"))) for s in NSYNTH_SPLITS}
    assert sum(counts["notes"].values()) + counts["silent_skipped"] == 4 * len(GM_PROGRAMS)
    for split in NSYNTH_SPLITS:
        found = Counter(re.search(NSYNTH_PATTERN, p.name)["family"] for p in (small / split).glob("*.wav"))
        assert counts["families"][split] == dict(found)


def test_a_second_call_returns_the_cached_dataset(small):
    wav = _wavs(small)[0]
    stamps = (wav.stat().st_mtime_ns, (small / "synth_nsynth.json").stat().st_mtime_ns)
    assert synth_nsynth(small, "small", progress=False) == small
    assert (wav.stat().st_mtime_ns, (small / "synth_nsynth.json").stat().st_mtime_ns) == stamps


def test_same_arguments_give_byte_identical_files(tmp_path):
    a = synth_nsynth(tmp_path / "a", 1, progress=False, seed=3)
    b = synth_nsynth(tmp_path / "b", 1, progress=False, seed=3)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "synth_nsynth.json")
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "synth_nsynth.json")
    assert files_a == files_b and len(files_a) > 90
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_a_note_renders_the_same_whatever_played_before():
    tinysoundfont = pytest.importorskip("tinysoundfont")

    def fresh():
        synth = tinysoundfont.Synth(gain=-6.0, samplerate=SAMPLE_RATE)
        sfid = synth.sfload(str(synth_module._default_soundfont()))
        return synth, sfid

    synth, sfid = fresh()
    synth.program_select(0, sfid, 0, 48)
    alone = synth_module._render(synth, 60, 100, SAMPLE_RATE)
    synth, sfid = fresh()
    synth.program_select(0, sfid, 0, 89)  # a warm pad with a long release, still sounding when the next note starts
    synth.noteon(0, 60, 127)
    synth.generate(SAMPLE_RATE)
    synth.program_select(0, sfid, 0, 48)
    after = synth_module._render(synth, 60, 100, SAMPLE_RATE)
    assert alone.shape == (SAMPLES,) and alone.dtype == np.float32
    np.testing.assert_array_equal(after, alone)


def test_loud_notes_are_scaled_not_clipped_and_silent_ones_dropped():
    wave = np.sin(np.linspace(0, 100, 1000, dtype=np.float32)) * np.float32(2.0)
    fitted, peak = synth_module._fit_level(wave)
    assert peak == pytest.approx(2.0, rel=1e-4)
    assert np.abs(fitted).max() == pytest.approx(0.99, rel=1e-6)
    np.testing.assert_allclose(fitted, wave * (0.99 / peak), rtol=1e-6)  # one gain for every sample
    quiet = wave * np.float32(0.1)
    assert synth_module._fit_level(quiet)[0] is quiet
    assert synth_module._fit_level(wave * np.float32(1e-4))[0] is None  # -54 dB below 2.0: under -60 dBFS


def test_other_arguments_need_overwrite_which_keeps_foreign_files(tmp_path):
    dest = synth_nsynth(tmp_path / "d", 1, progress=False)
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="overwrite=True"):
        synth_nsynth(dest, 1, progress=False, seed=1)
    synth_nsynth(dest, 1, progress=False, seed=1, overwrite=True)
    assert (dest / "notes.txt").read_text() == "mine"
    assert json.loads((dest / "synth_nsynth.json").read_text())["args"]["seed"] == 1
    entries = json.loads((dest / "train" / "examples.json").read_text())
    assert {p.stem for p in (dest / "train").glob("*.wav")} == set(entries)  # no file left from seed 0


def test_an_interrupted_render_is_redone(tmp_path):
    dest = synth_nsynth(tmp_path / "d", 1, sample_rate=8000, progress=False)
    manifest_path = dest / "synth_nsynth.json"
    manifest = json.loads(manifest_path.read_text())
    lost = dest / "train" / manifest["files"]["train"][0]
    lost.unlink()
    manifest["complete"] = False
    manifest_path.write_text(json.dumps(manifest))
    synth_nsynth(dest, 1, sample_rate=8000, progress=False)
    assert lost.is_file() and json.loads(manifest_path.read_text())["complete"] is True
    info = sf.info(str(lost))
    assert (info.samplerate, info.frames) == (8000, 32000)  # rendered at the asked rate: 4 s
    assert {e["sample_rate"] for e in json.loads((dest / "train" / "examples.json").read_text()).values()} == {8000}


def test_a_folder_synth_nsynth_did_not_write_is_refused(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    for overwrite in (False, True):
        with pytest.raises(AudioError, match="not empty"):
            synth_nsynth(tmp_path, 1, progress=False, overwrite=overwrite)
    assert [p.name for p in tmp_path.iterdir()] == ["photo.jpg"]


@pytest.mark.parametrize("size", ["huge", 0, -3, True, 2.5])
def test_a_bad_size_lists_the_choices(tmp_path, size):
    with pytest.raises(ParameterError, match="small.*medium.*full"):
        synth_nsynth(tmp_path / "x", size, progress=False)
    assert not (tmp_path / "x").exists()


def test_a_missing_soundfont_is_named(tmp_path):
    with pytest.raises(AudioFileError, match="nowhere.sf2"):
        synth_nsynth(tmp_path / "x", 1, soundfont=tmp_path / "nowhere.sf2", progress=False)


def test_a_file_that_is_not_a_soundfont_is_named(tmp_path):
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"RIFF but not a soundfont")
    with pytest.raises(AudioFileError, match="junk.sf2.*cannot be loaded as a soundfont"):
        synth_nsynth(tmp_path / "x", 1, soundfont=junk, progress=False)


def test_a_missing_tinysoundfont_gives_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # makes `import tinysoundfont` raise ImportError
    with pytest.raises(ImportError, match=re.escape("pip install --no-deps tinysoundfont")):
        synth_nsynth(tmp_path / "x", 1, progress=False)


# ---- read_nsynth ----


def test_read_nsynth_reads_our_layout(small, examples):
    df = read_nsynth(small)
    assert len(df) == len(_wavs(small))
    assert list(df.columns[:9]) == [
        "fname",
        "split",
        "note_str",
        "instrument_family_str",
        "instrument_source_str",
        "instrument_str",
        "pitch",
        "velocity",
        "qualities_str",
    ]
    assert {"note", "instrument", "instrument_family", "instrument_source", "sample_rate", "qualities"} <= set(
        df.columns
    )
    order = [(NSYNTH_SPLITS.index(s), n) for s, n in zip(df["split"], df["note_str"])]
    assert order == sorted(order)
    assert list(df.index) == list(range(len(df)))
    for row in df.sample(20, random_state=0).itertuples():
        assert Path(row.fname).is_absolute() and Path(row.fname).is_file()
        assert Path(row.fname) == small / row.split / f"{row.note_str}.wav"
        assert row.pitch == examples[row.split][row.note_str]["pitch"]


def _official_copy(small: Path, root: Path, per_split: int = 3) -> Path:
    """NSynth's download layout, nsynth-{split}/audio/*.wav + nsynth-{split}/examples.json, from a few notes."""
    for split in ("train", "valid"):
        entries = json.loads((small / split / "examples.json").read_text())
        kept = dict(sorted(entries.items())[:per_split])
        audio = root / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True)
        for note_str in kept:
            shutil.copy(small / split / f"{note_str}.wav", audio)
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(kept))
    return root


def test_read_nsynth_reads_nsynth_own_layout(small, tmp_path):
    root = _official_copy(small, tmp_path / "official")
    df = read_nsynth(root)
    assert list(df["split"]) == ["train"] * 3 + ["valid"] * 3
    for row in df.itertuples():
        assert row.fname == root / f"nsynth-{row.split}" / "audio" / f"{row.note_str}.wav"
    ours = read_nsynth(small).set_index("note_str").loc[df["note_str"]]
    fields = ["split", "instrument_str", "pitch", "velocity", "note", "instrument_family_str"]
    assert df[fields].values.tolist() == ours.reset_index()[fields].values.tolist()
    assert len(read_nsynth(root, splits="valid")) == 3


def test_read_nsynth_filters(small, examples):
    acoustic = read_nsynth(small, sources="acoustic")
    n_acoustic = sum(e["instrument_source_str"] == "acoustic" for s in examples.values() for e in s.values())
    assert len(acoustic) == n_acoustic > 0
    assert set(acoustic["instrument_source_str"]) == {"acoustic"}
    assert read_nsynth(small, sources=["acoustic"]).equals(acoustic)
    two = read_nsynth(small, families=["synth_lead", "vocal"], splits=["train", "test"])
    assert set(two["instrument_family_str"]) == {"synth_lead", "vocal"}
    assert set(two["split"]) == {"train", "test"}
    assert len(read_nsynth(small, splits="valid")) == len(examples["valid"])


def test_read_nsynth_missing_root_names_it_and_both_layouts(tmp_path):
    with pytest.raises(AudioFileError, match="nsynth-{train,valid,test}.*{train,valid,test}/examples.json") as err:
        read_nsynth(tmp_path / "nowhere")
    assert err.value.path == str(tmp_path / "nowhere")
    with pytest.raises(AudioFileError, match="holds no NSynth split"):
        read_nsynth(tmp_path)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"families": ["guitar", "banjo"]}, "banjo"),
        ({"sources": "analog"}, "analog"),
        ({"splits": "validation"}, "validation"),
    ],
)
def test_read_nsynth_unknown_filter_values_are_named(small, kwargs, bad):
    with pytest.raises(ParameterError, match=f"{bad}.*allowed") as err:
        read_nsynth(small, **kwargs)
    assert "synth_lead" in str(err.value) or "acoustic" in str(err.value) or "valid" in str(err.value)


def test_read_nsynth_absent_split_is_named(small, tmp_path):
    root = _official_copy(small, tmp_path / "official")
    with pytest.raises(AudioFileError, match="no test split"):
        read_nsynth(root, splits="test")


def test_read_nsynth_missing_wav(small, tmp_path):
    root = _official_copy(small, tmp_path / "official")
    gone = sorted((root / "nsynth-valid" / "audio").glob("*.wav"))[1]
    gone.unlink()
    with pytest.raises(AudioFileError, match="on_missing='skip'") as err:
        read_nsynth(root)
    assert err.value.path == str(gone)
    with pytest.warns(UserWarning, match=re.escape(str(gone))):
        df = read_nsynth(root, on_missing="skip")
    assert len(df) == 5 and gone.stem not in set(df["note_str"])


# ---- several soundfonts and timbre randomization ----


@pytest.fixture(scope="module")
def second_font(tmp_path_factory) -> Path:
    """A second soundfont file (a copy of the default: its notes render alike, but it is another instrument set)."""
    copy = tmp_path_factory.mktemp("fonts") / "Other.sf2"
    shutil.copy(synth_module._default_soundfont(), copy)
    return copy


def test_several_soundfonts_render_into_one_dataset(tmp_path, second_font):
    root = synth_nsynth(tmp_path / "two", 1, soundfont=[None, second_font], progress=False)
    df = read_nsynth(root)
    assert Counter(df["soundfont"]) == {"TimGM6mb.sf2": len(df) // 2, "Other.sf2": len(df) // 2}
    # each soundfont's program is its own instrument, numbered on after the first soundfont's
    per_font = df.groupby("soundfont")["instrument_str"].nunique()
    assert per_font["TimGM6mb.sf2"] == per_font["Other.sf2"] == df["instrument"].nunique() // 2
    assert df["instrument_str"].nunique() == df["instrument"].nunique()
    first = synth_nsynth(tmp_path / "one", 1, progress=False)
    assert set(read_nsynth(first)["note_str"]) == set(df[df["soundfont"] == "TimGM6mb.sf2"]["note_str"])
    assert (df[df.soundfont == "Other.sf2"]["instrument"] >= 128).all()
    # the splits still share no program (an instrument type), whichever soundfont plays it
    programs = df.assign(program=df["instrument"] % 128).groupby("split")["program"].apply(set)
    assert not (programs["train"] & programs["valid"]) and not (programs["train"] & programs["test"])


def test_a_dict_keeps_each_split_to_its_own_soundfonts(tmp_path, second_font):
    root = synth_nsynth(
        tmp_path / "d", 1, soundfont={"train": [None], "valid": second_font, "test": second_font}, progress=False
    )
    df = read_nsynth(root)
    assert set(df[df.split == "train"]["soundfont"]) == {"TimGM6mb.sf2"}
    assert set(df[df.split != "train"]["soundfont"]) == {"Other.sf2"}
    with pytest.raises(ParameterError, match="every split"):
        synth_nsynth(tmp_path / "e", 1, soundfont={"train": None, "valid": second_font}, progress=False)


def test_timbre_randomization_varies_each_note_and_records_it(tmp_path, small):
    a = synth_nsynth(tmp_path / "a", 1, timbre_randomization=True, progress=False)
    df = read_nsynth(a)
    timbres = df["timbre"].tolist()
    assert all(isinstance(t, dict) for t in timbres)
    assert len({t["detune_cents"] for t in timbres}) == len(df)  # each note its own draw
    assert any(t["rt60_s"] > 0 for t in timbres) and any(t["rt60_s"] == 0 for t in timbres)
    assert all(-12.0 <= t["gain_db"] <= 0.0 and 0.1 <= t["release_s"] <= 1.0 for t in timbres)
    # the same note without randomization sounds different: the draw was applied, not only recorded
    plain = read_nsynth(synth_nsynth(tmp_path / "p", 1, progress=False)).set_index("note_str")
    row = df.iloc[0]
    x, _ = sf.read(row["fname"], dtype="float32")
    y, _ = sf.read(plain.loc[row["note_str"], "fname"], dtype="float32")
    assert x.shape == y.shape and np.abs(x - y).max() > 0.01
    # seeded: the same arguments give the same files; the draw is kept in the manifest's arguments
    b = synth_nsynth(tmp_path / "b", 1, timbre_randomization=True, progress=False)
    for f in _wavs(a):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes()
    assert json.loads((a / "synth_nsynth.json").read_text())["args"]["timbre_randomization"] == 1.0
    with pytest.raises(ParameterError, match="timbre_randomization"):
        synth_nsynth(tmp_path / "c", 1, timbre_randomization=2.0, progress=False)


def test_one_soundfont_keeps_the_earlier_manifest_arguments(manifest):
    # a cache rendered before several soundfonts existed stays valid: the same keys, a single hash
    assert set(manifest["args"]) == {"format", "size", "sample_rate", "seed", "soundfont_sha256"}
    assert isinstance(manifest["args"]["soundfont_sha256"], str)
