"""Loader throughput: clips/s through ``dls.train`` against a bare ``soundfile.read`` loop over the same files.

Prints a table and the ratio of each against the bare loop measured in the same run (goal: >= 0.7). The
contenders are timed round-robin, one run each per round. Yardsticks besides the baseline: the same loop with
stacking, fastai_audio's own decoder alone (it reads 16- and 32-bit PCM as integers and scales them with torch,
bit-identical and faster than libsndfile's float conversion), and a plain PyTorch ``DataLoader``. The same clips as
a Hugging Face dataset on disk (``AudioDataLoaders.from_hf``) are timed too when ``datasets`` is installed.
Run: ``make bench`` or ``python bench/loader.py [--size medium] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth
from fastai_audio.io import read_span

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"


def decode(path) -> torch.Tensor:
    """The baseline's work for one file: ``soundfile.read`` into a ``(channels, samples)`` tensor."""
    return torch.from_numpy(sf.read(str(path), dtype="float32", always_2d=True)[0].T.copy())


def bare_loop(files, read=decode) -> float:
    start = time.perf_counter()
    for f in files:
        read(f)
    return len(files) / (time.perf_counter() - start)


def crop_reader(seconds: float = 4.0, seed: int = 0):
    """``soundfile.read`` of a random ``seconds`` span of a file (the span's samples only): the baseline for loaders
    that crop long files, the same work as theirs."""
    rng = np.random.default_rng(seed)

    def read(f):
        with sf.SoundFile(str(f)) as sound:
            n = int(seconds * sound.samplerate)
            sound.seek(int(rng.integers(0, max(1, sound.frames - n + 1))))
            return torch.from_numpy(sound.read(n, dtype="float32"))

    return read


def bare_loop_batched(files, bs: int) -> float:
    """The baseline plus what any loader must add: stacking clips into batches."""
    start = time.perf_counter()
    for s in range(0, len(files), bs):
        torch.stack([decode(f) for f in files[s : s + bs]])
    return len(files) / (time.perf_counter() - start)


class _BareDataset(torch.utils.data.Dataset):
    """The baseline's work as a PyTorch ``Dataset``: one ``decode`` per item, no labels."""

    def __init__(self, files):
        self.files = list(files)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return decode(self.files[i])


def loader_rate(dl) -> float:
    """Clips per second over one pass of ``dl``, whose batches are tensors or ``(inputs, labels)`` tuples."""
    start = time.perf_counter()
    n = sum((b[0] if isinstance(b, (tuple, list)) else b).shape[0] for b in dl)
    return n / (time.perf_counter() - start)


def torch_loader(files, bs: int, num_workers: int) -> float:
    """A plain PyTorch ``DataLoader`` over ``_BareDataset``: what a minimal hand-written pipeline gets."""
    return loader_rate(
        torch.utils.data.DataLoader(_BareDataset(files), batch_size=bs, shuffle=True, num_workers=num_workers)
    )


def make_long_files(root: Path, n: int = 100, seconds: float = 30.0, sample_rate: int = 16000) -> list:
    """Long recordings (white noise, 16-bit) for the crop-from-long-files case; cached."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        path = root / "train" / "noise" / f"long_{i:03d}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(
                str(path),
                (0.1 * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32),
                sample_rate,
                subtype="PCM_16",
            )
        files.append(path)
    valid = root / "valid" / "noise" / "long_valid.wav"
    if not valid.exists():
        valid.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(valid), np.zeros(int(seconds * sample_rate), dtype=np.float32), sample_rate, subtype="PCM_16")
    return files


def epoch_rate(dls) -> float:
    return loader_rate(dls.train.new(shuffle=True, drop_last=False))


def through_loader(root, num_workers: int, bs: int) -> float:
    dls = AudioDataLoaders.from_nsynth(root, bs=bs, num_workers=num_workers, sample_rate=16000, duration=4.0)
    return epoch_rate(dls)


def hf_dataset(files, root: Path):
    """The clips as a Hugging Face dataset on disk (their bytes in a memory-mapped Arrow ``Audio`` column, as the
    Hub's Parquet files hold them), made once; ``None`` without ``datasets``."""
    try:
        import datasets
    except ImportError:
        return None
    if not (root / "dataset_info.json").is_file():
        rows = {"audio": [{"bytes": Path(f).read_bytes(), "path": Path(f).name} for f in files]}
        rows["label"] = [Path(f).name.split("_")[0] for f in files]
        datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio()).save_to_disk(str(root))
    return datasets.load_from_disk(str(root))


def through_hf(ds, num_workers: int, bs: int) -> float:
    dls = AudioDataLoaders.from_hf(
        ds, valid_pct=0.01, seed=0, bs=bs, num_workers=num_workers, sample_rate=16000, duration=4.0
    )
    return epoch_rate(dls)


def round_robin(contenders: dict, repeats: int) -> dict:
    """Rates of every contender, ``repeats`` rounds of one run each in a rotating order: a slow spell of a busy
    machine then falls on all of them alike instead of on whichever ran at the time."""
    names = list(contenders)
    rows = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            rows[name].append(contenders[name]())
    return rows


def print_table(
    title: str,
    rows: dict,
    base_name: str,
    *,
    label: str = "pipeline",
    unit: str = "clips/s",
    ratio: str = "x baseline",
    digits: int = 0,
    higher_is_better: bool = True,
):
    """A Markdown table of the median of each row's values and its ratio to ``base_name``'s (a rate: the row over
    the base; a time, ``higher_is_better=False``: the base over the row, so a ratio below 1 is always slower)."""
    base = statistics.median(rows[base_name])
    print(f"\n{title}")
    print(f"| {label:<48} | {unit:>9} | {ratio:>10} |")
    print(f"|{'-' * 50}|{'-' * 11}|{'-' * 12}|")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"| {name:<48} | {med:9.{digits}f} | {(med / base if higher_is_better else base / med):10.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("small", "medium", "full"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bs", type=int, default=64)
    args = parser.parse_args()

    root = synth_nsynth(CACHE / f"nsynth_{args.size}", size=args.size, progress=False)
    files = list(read_nsynth(root, splits=["train"]).fname)
    for f in files:  # warm the page cache so every contender reads from memory
        Path(f).read_bytes()

    hf = hf_dataset(files, CACHE / f"hf_nsynth_{args.size}")  # (from_hf: the same clips, their bytes in Arrow)
    base_name = "soundfile.read loop (baseline)"
    rows = round_robin(
        {
            base_name: lambda: bare_loop(files),
            f"soundfile.read loop + torch.stack (bs={args.bs})": lambda: bare_loop_batched(files, args.bs),
            "fastai_audio's decoder alone (io.read_span loop)": lambda: bare_loop(files, read_span),
            **{
                f"torch DataLoader, bare Dataset, num_workers={w}": (lambda w=w: torch_loader(files, args.bs, w))
                for w in (0, 2)
            },
            **{f"dls.train, num_workers={w}": (lambda w=w: through_loader(root, w, args.bs)) for w in (0, 2)},
            **(
                {
                    f"dls.train from a Hugging Face dataset, num_workers={w}": (lambda w=w: through_hf(hf, w, args.bs))
                    for w in (0, 2)
                }
                if hf is not None
                else {}
            ),
        },
        args.repeats,
    )
    print(
        f"# bench/loader.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, median of {args.repeats}"
    )
    print_table(
        f"{len(files)} NSynth-format clips of 4 s at 16 kHz (synth_nsynth size={args.size}), bs={args.bs}",
        rows,
        base_name,
    )

    long_files = make_long_files(CACHE / "long_30s")
    for f in long_files:
        Path(f).read_bytes()
    # num_workers=0 only: 100 clips are too few to amortise starting worker processes
    crop_base = "soundfile.read of a random 4 s span (baseline)"
    rows = round_robin(
        {
            crop_base: lambda: bare_loop(long_files, crop_reader()),
            "whole-file soundfile.read (for scale: 7.5x the samples)": lambda: bare_loop(long_files),
            "4 s crops via dls.train, num_workers=0": lambda: epoch_rate(
                AudioDataLoaders.from_folder(CACHE / "long_30s", bs=args.bs, num_workers=0, duration=4.0)
            ),
        },
        args.repeats,
    )
    print_table(
        f"{len(long_files)} files of 30 s, random 4 s training crops (the same span read both ways)", rows, crop_base
    )


if __name__ == "__main__":
    main()
