"""The ``fastai-audio`` command: thin over the library, no logic of its own.

    fastai-audio check PATH [PATH ...] [--all] [--format table|csv|json]
    fastai-audio synth-nsynth DEST [--size small|medium|full] [--soundfont PATH] [--sample-rate HZ]

Exit status: 0 on success, 1 when a checked file is bad or a command fails, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import AudioError

__all__ = ["main"]


def _files_under(paths) -> list[Path]:
    from .data import get_audio_files

    files = []
    for p in map(Path, paths):
        files += [p] if p.is_file() or not p.exists() else list(get_audio_files(p))
    return files


def _check(args) -> int:
    from .data import check_audio_files

    files = _files_under(args.paths)
    if not files:
        print(f"no audio files found under {', '.join(args.paths)}", file=sys.stderr)
        return 1
    report = check_audio_files(files, progress=args.progress)
    bad = report[~report.ok]
    shown = report if args.all else bad
    if args.format == "csv":
        print(shown.to_csv(index=False), end="")
    elif args.format == "json":
        print(shown.to_json(orient="records", indent=2))
    elif len(shown):
        cols = ["path", "ok", "sample_rate", "channels", "duration", "reason"] if args.all else ["path", "reason"]
        print(shown[cols].to_string(index=False, max_colwidth=200))
    print(f"{len(report)} file(s) checked, {len(bad)} bad", file=sys.stderr)
    return 1 if len(bad) else 0


def _synth_nsynth(args) -> int:
    from .datasets import synth_nsynth

    root = synth_nsynth(args.dest, size=args.size, soundfont=args.soundfont, sample_rate=args.sample_rate,
                        seed=args.seed, progress=not args.no_progress)  # fmt: skip
    print(root)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastai-audio", description="Audio classification the fastai way.")
    parser.add_argument("--version", action="version", version=f"fastai_audio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="decode every audio file and report the bad ones")
    check.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    check.add_argument("--all", action="store_true", help="list every file, not only the bad ones")
    check.add_argument("--format", choices=("table", "csv", "json"), default="table")
    check.add_argument("--progress", action="store_true", help="show a progress bar")
    check.set_defaults(func=_check)

    synth = sub.add_parser("synth-nsynth", help="render an NSynth-format data set from a General MIDI soundfont")
    synth.add_argument("dest", help="folder to create (train/, valid/, test/ with examples.json each)")
    synth.add_argument("--size", choices=("small", "medium", "full"), default="small")
    synth.add_argument("--soundfont", default=None, help=".sf2/.sf3 file (default: pretty_midi's TimGM6mb.sf2)")
    synth.add_argument("--sample-rate", type=int, default=16000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--no-progress", action="store_true")
    synth.set_defaults(func=_synth_nsynth)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 usage error).

    Examples:
        >>> main(["check", "data/"])
        0
    """
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (AudioError, ImportError) as err:
        print(f"fastai-audio {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
