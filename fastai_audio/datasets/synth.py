"""``synth_nsynth``: render an NSynth-format note dataset from a General MIDI soundfont, with no download."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import torch

from .._validate import check_sample_rate
from ..atomic import commit
from ..errors import AudioError, AudioFileError, ParameterError
from ..io import save_audio
from .gm import FAMILY_PITCH_RANGES, GM_EXCLUDED, GM_PROGRAMS
from .nsynth import (
    NSYNTH_FAMILIES,
    NSYNTH_PATTERN,
    NSYNTH_QUALITIES,
    NSYNTH_SOURCES,
    NSYNTH_SPLITS,
    NSYNTH_VELOCITIES,
)
from .timbre import apply_timbre, draw_timbre, pitch_bends

__all__ = ["synth_nsynth", "SYNTH_SIZES"]

_log = logging.getLogger(__name__)

#: Named sizes -> notes drawn per GM program (``None``: every pitch of the family's range at every velocity).
SYNTH_SIZES = {"small": 4, "medium": 30, "full": None}

_INSTALL_HINT = "pip install pretty_midi && pip install --no-deps tinysoundfont"
_MANIFEST = "synth_nsynth.json"
_FORMAT = 1  # bump when a change to the renderer changes the files, so old caches are not reused

_HELD_S, _RELEASE_S = 3.0, 1.0  # NSynth: the key is held 3 s, then 1 s of release, 4 s in all
_FLUSH_S = 0.05  # after sounds_off, voices fade out within ~10 ms; render this much silence to retire them
_GAIN_DB = -6.0  # synth gain: at -6 dB, 99.9 % of TimGM6mb's notes peak below 0.64 full scale
_MAX_PEAK = 0.99  # a louder note is scaled down to this peak, never clipped
_SILENT_PEAK = 10 ** (-60 / 20)  # -60 dBFS: below this a render is silent (no sample for that key) and skipped
_BEND_BLOCK_S = 0.005  # vibrato: the pitch bend is updated every 5 ms


@dataclass(frozen=True)
class _Note:
    split: str
    program: int
    family: str
    source: str
    instrument_str: str
    pitch: int
    velocity: int
    font: int = 0  # index into the soundfonts

    @property
    def note_str(self) -> str:
        return f"{self.instrument_str}-{self.pitch:03d}-{self.velocity:03d}"


def _import_synth():
    try:
        import tinysoundfont
    except ImportError as err:
        raise ImportError(
            f"synth_nsynth renders with tinysoundfont, which is not installed: {_INSTALL_HINT} "
            "(--no-deps skips pyaudio, which tinysoundfont needs only for live playback)"
        ) from err
    return tinysoundfont


def _default_soundfont() -> Path:
    try:
        import pretty_midi
    except ImportError as err:
        raise ImportError(
            f"synth_nsynth's default soundfont (TimGM6mb.sf2) ships with pretty_midi, which is not installed: "
            f"{_INSTALL_HINT}; or pass soundfont='path/to/any_gm.sf2'"
        ) from err
    return Path(os.path.dirname(pretty_midi.__file__)) / "TimGM6mb.sf2"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_size(size):
    if isinstance(size, str) and size in SYNTH_SIZES:
        return size
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1:
        return int(size)
    raise ParameterError(
        f"size must be one of {list(SYNTH_SIZES)!r} or a positive int (notes per GM program), got {size!r}"
    )


def _instrument_strs(n_fonts: int = 1) -> dict[tuple[int, int], str]:
    """``(soundfont index, GM program)`` -> ``{family}_{source}_{k:03d}``, k counting the family/source's
    instruments font by font, in program order: each soundfont's rendering of a program is its own instrument."""
    seen = Counter()
    names = {}
    for font in range(n_fonts):
        for program in sorted(GM_PROGRAMS):
            family, source = GM_PROGRAMS[program]
            names[font, program] = f"{family}_{source}_{seen[family, source]:03d}"
            seen[family, source] += 1
    return names


def _assign_splits(seed: int) -> dict[int, str]:
    """GM program -> split. Each family's programs are shuffled (seeded) and dealt out whole, so the splits share
    no instrument: about 15 % each to valid and test (at least one each from 3 programs up), the rest to train.
    A family with 2 programs gives one to train and one to valid; a family with 1 program keeps it in train."""
    split_of = {}
    for family_id, family in enumerate(NSYNTH_FAMILIES):
        programs = sorted(p for p, (f, _) in GM_PROGRAMS.items() if f == family)
        order = np.random.default_rng([seed, 0, family_id]).permutation(programs).tolist()
        n = len(order)
        n_valid = 0 if n < 2 else max(1, round(0.15 * n))
        n_test = 0 if n < 3 else max(1, round(0.15 * n))
        for i, program in enumerate(order):
            split_of[program] = "valid" if i < n_valid else "test" if i < n_valid + n_test else "train"
    return split_of


def _choose_notes(
    program: int, family: str, per_program: int | None, seed: int, font: int = 0
) -> list[tuple[int, int]]:
    """The ``(pitch, velocity)`` pairs rendered for a program: the whole pitch x velocity grid, or a stratified
    draw of ``per_program`` of them (one from each of that many equal runs of the pitch-major grid), so the
    notes span the family's range. Each program of each soundfont draws from its own seeded stream (the first
    soundfont's streams are those of a one-soundfont render, so its notes are the same)."""
    low, high = FAMILY_PITCH_RANGES[family]
    grid = [(pitch, velocity) for pitch in range(low, high + 1) for velocity in NSYNTH_VELOCITIES]
    if per_program is None or per_program >= len(grid):
        return grid
    rng = np.random.default_rng([seed, 1, program] if font == 0 else [seed, 1, program, font])
    return [grid[int(run[rng.integers(len(run))])] for run in np.array_split(np.arange(len(grid)), per_program)]


def _plan(
    per_program: int | None, seed: int, fonts_of: dict[str, list[int]] | None = None, n_fonts: int = 1
) -> list[_Note]:
    """Every note to render, soundfont by soundfont, program by program. A program's split is the same in every
    soundfont (the splits share no instrument type); ``fonts_of`` (split -> soundfont indices) keeps each split to
    its own soundfonts."""
    split_of, instrument_str = _assign_splits(seed), _instrument_strs(n_fonts)
    return [
        _Note(split_of[p], p, *GM_PROGRAMS[p], instrument_str[font, p], pitch, velocity, font)
        for font in range(n_fonts)
        for p in sorted(GM_PROGRAMS)
        if fonts_of is None or font in fonts_of[split_of[p]]
        for pitch, velocity in _choose_notes(p, GM_PROGRAMS[p][0], per_program, seed, font)
    ]


def _render(synth, pitch: int, velocity: int, sample_rate: int, timbre: dict | None = None) -> np.ndarray:
    """One 4 s note on channel 0, downmixed to mono float32. Every note starts from silence: ``sounds_off``
    retires the previous note's voices and the flush renders their 10 ms fade, so no tail leaks in. With a
    ``timbre``, the note is played detuned, and with vibrato the held part is rendered in 5 ms blocks, each
    with its own pitch bend."""
    synth.sounds_off()
    synth.pitchbend(0, 8192)
    synth.generate(int(_FLUSH_S * sample_rate))
    n_held = int(_HELD_S * sample_rate)
    block = max(1, int(_BEND_BLOCK_S * sample_rate))
    bends = pitch_bends(timbre, -(-n_held // block), block / sample_rate) if timbre else [8192]
    synth.pitchbend(0, int(bends[0]))
    synth.noteon(0, pitch, velocity)
    if len(set(int(b) for b in bends)) == 1:
        held = [np.frombuffer(synth.generate(n_held), dtype=np.float32)]
    else:
        held = []
        for i, start in enumerate(range(0, n_held, block)):
            synth.pitchbend(0, int(bends[i]))
            held.append(np.frombuffer(synth.generate(min(block, n_held - start)), dtype=np.float32))
    synth.noteoff(0, pitch)
    tail = np.frombuffer(synth.generate(int(_RELEASE_S * sample_rate)), dtype=np.float32)
    stereo = np.concatenate([*held, tail])
    return (stereo[0::2] + stereo[1::2]) * np.float32(0.5)


def _fit_level(wave: np.ndarray) -> tuple[np.ndarray | None, float]:
    """Return ``(wave, its peak)``, the wave scaled down to peak ``_MAX_PEAK`` if louder (a gain, not a clip),
    or ``(None, peak)`` when it is silent (peak below -60 dBFS)."""
    peak = float(np.abs(wave).max())
    if peak < _SILENT_PEAK:
        return None, peak
    if peak > _MAX_PEAK:
        wave = wave * np.float32(_MAX_PEAK / peak)
    return wave, peak


def _example(note: _Note, note_id: int, sample_rate: int, fonts: list[Path], timbre: dict | None) -> dict:
    extra = {"timbre": timbre} if timbre is not None else {}
    return {
        **extra,
        "soundfont": fonts[note.font].name,
        "note": note_id,
        "note_str": note.note_str,
        "instrument": note.program + 128 * note.font,
        "instrument_str": note.instrument_str,
        "pitch": note.pitch,
        "velocity": note.velocity,
        "sample_rate": sample_rate,
        "instrument_source": NSYNTH_SOURCES.index(note.source),
        "instrument_source_str": note.source,
        "instrument_family": NSYNTH_FAMILIES.index(note.family),
        "instrument_family_str": note.family,
        "qualities": [0] * len(NSYNTH_QUALITIES),
        "qualities_str": [],
    }


def _write_json(path: Path, obj, indent: int | None = 2) -> None:
    tmp = path.with_name(path.name + ".tmp")  # (a name _remove_ours knows, should a run stop between the two)
    tmp.write_text(json.dumps(obj, indent=indent, sort_keys=True) + "\n", encoding="utf-8")
    commit(tmp, path)


def _is_complete(dest: Path, manifest: dict) -> bool:
    files = manifest.get("files")
    return (
        manifest.get("complete") is True
        and isinstance(files, dict)
        and all(
            (dest / split / "examples.json").is_file() and all((dest / split / n).is_file() for n in names)
            for split, names in files.items()
        )
    )


def _remove_ours(dest: Path, manifest: dict) -> None:
    """Delete what a previous ``synth_nsynth`` run wrote (the files its manifest names), nothing else."""
    files = manifest.get("files")
    for split, names in (files if isinstance(files, dict) else {}).items():
        if split not in NSYNTH_SPLITS:
            continue
        folder = dest / split
        ours = [n for n in names if isinstance(n, str) and re.fullmatch(NSYNTH_PATTERN, n)]  # never a path
        for name in [*ours, "examples.json", "examples.json.tmp"]:
            (folder / name).unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    (dest / _MANIFEST).unlink(missing_ok=True)


def _prepare(dest: Path, args: dict, overwrite: bool) -> bool:
    """Return True when ``dest`` already holds this exact dataset; otherwise clear our old files or refuse."""
    if dest.exists() and not dest.is_dir():
        raise AudioFileError(dest, "is a file; synth_nsynth needs a folder (new or empty) to render into")
    manifest_path = dest / _MANIFEST
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            same = manifest["args"] == args
        except (ValueError, KeyError, TypeError) as err:
            raise AudioFileError(manifest_path, f"is not a synth_nsynth manifest ({err}); delete it by hand") from None
        if same and _is_complete(dest, manifest):
            return True
        if not same and not overwrite:
            changed = {k: (manifest["args"].get(k), v) for k, v in args.items() if manifest["args"].get(k) != v}
            raise ParameterError(
                f"{dest} holds a dataset synth_nsynth rendered with other arguments (old, new: {changed}); "
                "pass overwrite=True to replace it, or choose another dest"
            )
        _remove_ours(dest, manifest)  # an interrupted render with these arguments, or overwrite=True
    elif dest.is_dir() and any(dest.iterdir()):
        raise AudioError(
            f"{dest} is not empty and holds no {_MANIFEST}, so synth_nsynth did not write it; render into a new or "
            "empty folder (overwrite=True only replaces a dataset synth_nsynth wrote, never other files)"
        )
    return False


def _note_timbre(note: _Note, seed: int, strength: float) -> dict | None:
    """The note's timbre draw, from a stream of its own (so it does not depend on which other notes are rendered)."""
    if not strength:
        return None
    return draw_timbre(np.random.default_rng([seed, 2, note.font, note.program, note.pitch, note.velocity]), strength)


def _render_all(
    synth, sfids: list[int], plan: list[_Note], dest: Path, sample_rate: int, progress: bool, seed: int, strength: float
) -> dict:
    """Render and write every planned note; return the notes written (with their timbre) and those skipped or
    scaled."""
    outcome = {"written": [], "timbres": {}, "silent": [], "scaled": [], "missing_presets": []}
    notes = plan
    if progress:
        from fastprogress.fastprogress import ConsoleProgressBar, progress_bar

        notes = progress_bar(plan)
    for (font, program), group in groupby(notes, key=lambda n: (n.font, n.program)):
        try:
            synth.program_select(0, sfids[font], 0, program)
        except RuntimeError:  # the soundfont lacks this preset: groupby skips the rest of its notes
            outcome["missing_presets"].append([font, program])
            continue
        for note in group:
            timbre = _note_timbre(note, seed, strength)
            wave = _render(synth, note.pitch, note.velocity, sample_rate, timbre)
            if timbre is not None:
                wave = apply_timbre(wave, sample_rate, timbre)
            wave, peak = _fit_level(wave)
            if wave is None:
                outcome["silent"].append(note.note_str)
                continue
            if peak > _MAX_PEAK:
                outcome["scaled"].append(note.note_str)
            if timbre is not None:  # the level variation, never louder: the peak stays below _MAX_PEAK
                wave = wave * np.float32(10 ** (timbre["gain_db"] / 20))
                outcome["timbres"][note.note_str] = timbre
            path = dest / note.split / (note.note_str + ".wav")
            save_audio(path, torch.from_numpy(wave)[None], sample_rate, subtype="PCM_16", format="WAV")
            outcome["written"].append(note)
    if progress and isinstance(notes, ConsoleProgressBar):
        print()  # the console bar leaves its line open; end it before the summary
    return outcome


def _write_examples(dest: Path, written: list[_Note], sample_rate: int, fonts: list[Path], timbres: dict) -> None:
    """One NSynth ``examples.json`` per split; ``note`` ids rank the note names over the whole dataset."""
    note_ids = {n.note_str: i for i, n in enumerate(sorted(written, key=lambda n: n.note_str))}
    for split in NSYNTH_SPLITS:
        examples = {
            n.note_str: _example(n, note_ids[n.note_str], sample_rate, fonts, timbres.get(n.note_str))
            for n in written
            if n.split == split
        }
        _write_json(dest / split / "examples.json", examples, indent=None)  # compact, like NSynth's


def _summary(plan: list[_Note], written: list[_Note], outcome: dict) -> dict:
    """The manifest's record of a finished render: files, programs per split, counts, skipped and scaled notes."""
    return {
        "files": {s: sorted(n.note_str + ".wav" for n in written if n.split == s) for s in NSYNTH_SPLITS},
        "programs": {s: sorted({n.program for n in plan if n.split == s}) for s in NSYNTH_SPLITS},
        "instruments": {n.instrument_str: n.program for n in plan},
        "excluded_programs": sorted(GM_EXCLUDED),
        "counts": {
            "notes": {s: sum(n.split == s for n in written) for s in NSYNTH_SPLITS},
            "families": {
                s: dict(sorted(Counter(n.family for n in written if n.split == s).items())) for s in NSYNTH_SPLITS
            },
            "silent_skipped": len(outcome["silent"]),
            "scaled_to_peak": len(outcome["scaled"]),
        },
        **outcome,
    }


def _check_strength(value) -> float:
    if value is None or value is False:
        return 0.0
    if value is True:
        return 1.0
    if isinstance(value, (int, float, np.integer, np.floating)) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise ParameterError(
        f"timbre_randomization must be True/False or a strength in [0, 1] (1.0 is True), got {value!r}"
    )


def _one_font(path) -> Path:
    if path is None:
        return _default_soundfont()
    path = Path(path).absolute()
    if not path.is_file():
        raise AudioFileError(path, "no such soundfont; pass the path of a General MIDI .sf2 or .sf3 file")
    return path


def _soundfonts(soundfont) -> tuple[list[Path], dict[str, list[int]] | None]:
    """The distinct soundfonts to load (the default one for None), and, for a dict, split -> their indices."""
    if soundfont is None:
        return [_default_soundfont()], None
    if isinstance(soundfont, dict):
        unknown = set(soundfont) - set(NSYNTH_SPLITS)
        if unknown or set(soundfont) != set(NSYNTH_SPLITS):
            raise ParameterError(
                f"soundfont as a dict maps every split {list(NSYNTH_SPLITS)} to its soundfont(s); got keys "
                f"{sorted(soundfont)}"
            )
        per_split = {
            s: [_one_font(f) for f in ([v] if isinstance(v, (str, os.PathLike)) else v)] for s, v in soundfont.items()
        }
        fonts = list(dict.fromkeys(f for s in NSYNTH_SPLITS for f in per_split[s]))
        if any(not v for v in per_split.values()):
            raise ParameterError("soundfont: every split needs at least one soundfont")
        return fonts, {s: [fonts.index(f) for f in per_split[s]] for s in NSYNTH_SPLITS}
    if isinstance(soundfont, (str, os.PathLike)):
        return [_one_font(soundfont)], None
    fonts = list(dict.fromkeys(_one_font(f) for f in soundfont))
    if not fonts:
        raise ParameterError("soundfont is an empty list; pass None for the default, a path, or a list of paths")
    return fonts, None


def synth_nsynth(
    dest,
    size="small",
    soundfont=None,
    sample_rate: int = 16000,
    *,
    seed: int = 0,
    timbre_randomization: bool | float = False,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Render an NSynth-format dataset of single notes from a General MIDI soundfont, with no download.

    Every GM program that fits an NSynth family (``GM_PROGRAMS``: 98 of 128) plays notes in its family's register
    (``FAMILY_PITCH_RANGES``) at NSynth's velocities. Each note is 4 s: the key is held 3 s and released for 1 s,
    downmixed to mono, written as 16-bit PCM WAV named like NSynth's (``guitar_acoustic_000-060-100.wav``).
    The splits share no instrument: each family's programs are dealt to train, valid and test (seeded).
    Notes render at ``-6 dB`` synth gain; a note peaking above 0.99 is scaled down to 0.99 (never clipped), and
    a silent note (peak below -60 dBFS, e.g. a key the program has no sample for) is skipped, never written.
    ``qualities`` are not annotated: all zeros, ``qualities_str`` empty. See ``docs/nsynth.md``.

    Layout: ``dest/{train,valid,test}/`` each holding its wav files and an NSynth ``examples.json``, plus
    ``dest/synth_nsynth.json``, a manifest of the arguments, the programs of each split and the counts. Calling
    again with the same arguments returns ``dest`` at once (a cache). The same arguments give byte-identical files.

    Args:
        dest: the dataset root to create: a new or empty folder, or one this function rendered before.
        size: ``'small'`` (4 notes per program, about 390 notes, 50 MB, a second or two), ``'medium'`` (30 per
            program, about 2,900 notes, 370 MB), ``'full'`` (every pitch x velocity, about 26,500 notes, 3.3 GB),
            or an int: that many notes per program, drawn evenly across its pitch range.
        soundfont: a General MIDI ``.sf2``/``.sf3`` file; ``None`` uses ``TimGM6mb.sf2`` shipped with pretty_midi.
            A list renders every note plan from each soundfont into one dataset (each soundfont's rendering of a
            program is its own instrument, numbered on after the previous soundfont's); a dict
            ``{"train": [...], "valid": ..., "test": ...}`` renders each split from its own soundfont(s), so the
            splits share neither an instrument type nor a soundfont. Each note's soundfont (its file name) is in
            ``examples.json`` (``soundfont``; ``instrument`` is ``program + 128 * soundfont index``). Where to get
            more: ``docs/nsynth.md``.
        sample_rate: rate of the files in Hz (NSynth: 16000); the synth renders at it directly.
        seed: draws the notes of each program and deals the programs to the splits.
        timbre_randomization: vary each note as real instruments and rooms vary (``True``, or a strength in
            ``[0, 1]`` scaling every range): detune and vibrato, a softer attack and a shorter release, a spectral
            tilt and EQ, a synthetic room (reverb), a lower level (``fastai_audio.datasets.timbre.TIMBRE_RANGES``).
            Each note draws from its own seeded stream; its draw is recorded in ``examples.json`` (``timbre``).
        progress: show a progress bar and print a summary.
        overwrite: replace a dataset rendered here before with other arguments. Only files this function wrote
            are deleted; a non-empty folder it did not write is refused either way.

    Returns:
        ``dest`` as a ``Path``: the root to pass to ``read_nsynth``.

    Raises:
        ImportError: tinysoundfont, or pretty_midi for the default soundfont, is not installed (the message says
            ``pip install pretty_midi && pip install --no-deps tinysoundfont``).
        AudioFileError: the soundfont is missing or unreadable, or ``dest`` is a file.
        ParameterError: a bad size, sample rate or seed, or ``dest`` holds a dataset rendered with other
            arguments and ``overwrite`` is False.
        AudioError: ``dest`` is a non-empty folder this function did not write.

    Examples:
        >>> root = synth_nsynth("nsynth", "small", progress=False)
        >>> df = read_nsynth(root)
        >>> df.groupby("split").size()
        split
        test      60
        train    270
        valid     60
        dtype: int64
        >>> sf = "/usr/share/sounds/sf2/FluidR3_GM.sf2"                     # apt install fluid-soundfont-gm
        >>> root = synth_nsynth("nsynth2", 4, soundfont=[None, sf], timbre_randomization=True)  # doctest: +SKIP
    """
    size = _check_size(size)
    sample_rate = check_sample_rate(sample_rate)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed must be a non-negative int, got {seed!r}")
    strength = _check_strength(timbre_randomization)
    tinysoundfont = _import_synth()
    fonts, fonts_of = _soundfonts(soundfont)
    dest = Path(dest).absolute()
    args = {"format": _FORMAT, "size": size, "sample_rate": sample_rate, "seed": int(seed)}
    hashes = [_sha256(f) for f in fonts]
    # (one soundfont keeps the one-soundfont key and value, so the caches of earlier versions stay valid)
    if fonts_of is not None:
        args["soundfont_sha256"] = {s: [hashes[i] for i in fonts_of[s]] for s in NSYNTH_SPLITS}
    else:
        single = soundfont is None or isinstance(soundfont, (str, os.PathLike))
        args["soundfont_sha256"] = hashes[0] if single else hashes
    if strength:
        args["timbre_randomization"] = strength
    if _prepare(dest, args, overwrite):
        _log.info("synth_nsynth: %s already holds this dataset, not re-rendering", dest)
        return dest

    start = time.perf_counter()
    synth = tinysoundfont.Synth(gain=_GAIN_DB, samplerate=sample_rate)
    sfids = []
    for font in fonts:
        try:
            sfids.append(synth.sfload(str(font)))
        except RuntimeError as err:
            raise AudioFileError(font, f"cannot be loaded as a soundfont ({err}); pass a .sf2 or .sf3 file") from None
    plan = _plan(SYNTH_SIZES[size] if isinstance(size, str) else size, int(seed), fonts_of, len(fonts))
    dest.mkdir(parents=True, exist_ok=True)
    planned = {s: sorted(n.note_str + ".wav" for n in plan if n.split == s) for s in NSYNTH_SPLITS}
    manifest = {
        "args": args,
        "complete": False,
        "files": planned,
        "soundfont": str(fonts[0]) if len(fonts) == 1 else [str(f) for f in fonts],
    }
    _write_json(dest / _MANIFEST, manifest)  # written first, so an interrupted render's files can be found
    for split in NSYNTH_SPLITS:
        (dest / split).mkdir(exist_ok=True)

    outcome = _render_all(synth, sfids, plan, dest, sample_rate, progress, int(seed), strength)
    for i, font in enumerate(fonts):
        missing = [program for f, program in outcome["missing_presets"] if f == i]
        if missing:
            warnings.warn(
                f"{font.name} has no bank-0 preset for GM programs {missing}; their notes were skipped", stacklevel=2
            )
    written, timbres = outcome.pop("written"), outcome.pop("timbres")
    if not written:
        raise AudioFileError(fonts[0], "rendered no audible note; is it a General MIDI soundfont?")
    _write_examples(dest, written, sample_rate, fonts, timbres)
    manifest.update(_summary(plan, written, outcome), complete=True)
    _write_json(dest / _MANIFEST, manifest)

    counts = manifest["counts"]
    per_family = Counter(n.family for n in written)
    summary = (
        f"synth_nsynth: {len(written)} notes in {dest} ({time.perf_counter() - start:.1f} s): "
        + ", ".join(f"{s} {counts['notes'][s]}" for s in NSYNTH_SPLITS)
        + f"; skipped {counts['silent_skipped']} silent, scaled {counts['scaled_to_peak']} loud to peak "
        + f"{_MAX_PEAK}; per family: "
        + ", ".join(f"{f} {per_family[f]}" for f in NSYNTH_FAMILIES)
    )
    _log.info(summary)
    if progress:
        print(summary)
    return dest
