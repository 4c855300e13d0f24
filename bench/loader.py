"""Loader throughput: clips/s through ``dls.train`` against a bare ``soundfile.read`` loop over the same files.

Prints a table and the ratio of each against the bare loop measured in the same run (goal: >= 0.7).
Run: ``make bench`` or ``python bench/loader.py [--size medium] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import soundfile as sf
import torch

from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"


def bare_loop(files) -> float:
    start = time.perf_counter()
    for f in files:
        data, _ = sf.read(str(f), dtype="float32", always_2d=True)
        torch.from_numpy(data.T.copy())
    return len(files) / (time.perf_counter() - start)


def through_loader(root, num_workers: int, bs: int) -> tuple[float, int]:
    dls = AudioDataLoaders.from_nsynth(root, bs=bs, num_workers=num_workers, sample_rate=16000, duration=4.0)
    dl = dls.train.new(shuffle=True, drop_last=False)
    n = 0
    start = time.perf_counter()
    for x, _ in dl:
        n += x.shape[0]
    return n / (time.perf_counter() - start), n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("small", "medium", "full"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bs", type=int, default=64)
    args = parser.parse_args()

    root = synth_nsynth(CACHE / f"nsynth_{args.size}", size=args.size, progress=False)
    files = list(read_nsynth(root, splits=["train"]).fname)
    for f in files:  # warm the page cache so every contender reads from memory
        Path(f).read_bytes()

    rows = {"soundfile.read loop (baseline)": [bare_loop(files) for _ in range(args.repeats)]}
    for workers in (0, 2):
        rows[f"dls.train, num_workers={workers}"] = [through_loader(root, workers, args.bs)[0]
                                                     for _ in range(args.repeats)]  # fmt: skip
    base = statistics.median(rows["soundfile.read loop (baseline)"])
    print(f"# bench/loader.py  {time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")  # fmt: skip
    print(f"# {len(files)} clips of 4 s at 16 kHz (synth_nsynth size={args.size}), bs={args.bs}, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"| {'pipeline':<36} | {'clips/s':>9} | {'x baseline':>10} |")
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 12}|")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"| {name:<36} | {med:9.0f} | {med / base:10.2f} |")


if __name__ == "__main__":
    main()
