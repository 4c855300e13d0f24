"""What each shim of the seam (fastai_audio/_compat.py) buys: every fast path against its public fallback, same run.

A shim that steps around a framework internal must pay its way. Each row switches shims off with
``fastai_audio._compat.use_shims(False, [...])`` and measures the workload the shim is for, round-robin with the
all-shims run, on the same data:

- loader: clips/s through ``dls.train`` (4 s NSynth-format clips, bs 64, no worker): the default loader, which fills
  whole batches, and one with an item transform, which makes its items the fastai way;
- predict: ``learn.predict(path)`` p50 over ``--runs`` calls (1-channel resnet18, the ``nsynth`` log-mel front-end).

The ratio is the fallback's rate (or time) against the shims'; a shim whose ratio sits within noise of 1.00 on every
machine measured is to be deleted. Run: ``python bench/seam.py [--repeats 5] [--runs 60]`` (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from inference import timings_ms
from loader import CACHE, epoch_rate, print_table, round_robin
from torchvision.models import resnet18

from fastai_audio._compat import SHIMS, use_shims
from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth
from fastai_audio.learner import audio_learner
from fastai_audio.transforms import DownmixMono, mel_transforms


def with_shims_off(names, fn):
    """``fn`` run with the shims ``names`` off (``()``: every shim on)."""

    def run():
        with use_shims(False, names) if names else contextlib.nullcontext():
            return fn()

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("small", "medium", "full"))
    parser.add_argument("--repeats", type=int, default=5, help="loader epochs per contender")
    parser.add_argument("--runs", type=int, default=60, help="predict calls per contender and round")
    parser.add_argument("--bs", type=int, default=64)
    args = parser.parse_args()
    assert all(s.on for s in SHIMS.values()), {n: s.broken for n, s in SHIMS.items() if not s.on}

    root = synth_nsynth(CACHE / f"nsynth_{args.size}", size=args.size, progress=False)
    for f in read_nsynth(root, splits=["train"]).fname:  # warm the page cache
        Path(f).read_bytes()
    print(
        f"# bench/seam.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}; medians of {args.repeats} epochs, {args.runs} predict calls x 3"
    )

    def epochs(item_tfms):
        dls = AudioDataLoaders.from_nsynth(
            root, bs=args.bs, num_workers=0, sample_rate=16000, duration=4.0, item_tfms=item_tfms
        )
        return lambda: epoch_rate(dls)

    # the default loader fills whole batches (its labels still go through the transforms); a loader with an item
    # transform makes its items the fastai way, which is where item_maker steps in
    for title, item_tfms, cases in (
        ("dls.train (batch-level decoding)", None, {"direct_encodes off": ["direct_encodes"]}),
        (
            "dls.train with an item transform (per-item path)",
            [DownmixMono()],
            {"direct_encodes off": ["direct_encodes"], "item_maker off": ["item_maker"]},
        ),
    ):
        run = epochs(item_tfms)
        contenders = {"all shims on": with_shims_off((), run)}
        contenders |= {name: with_shims_off(off, run) for name, off in cases.items()}
        contenders["all shims off (public paths only)"] = with_shims_off(list(SHIMS), run)
        rows = round_robin(contenders, args.repeats)
        print_table(
            f"## Loader: {title}, num_workers=0, bs={args.bs}", rows, "all shims on", label="shims", ratio="x all shims"
        )

    dls = AudioDataLoaders.from_nsynth(root, bs=args.bs, num_workers=0, batch_tfms=mel_transforms("nsynth"))
    learn = audio_learner(dls, resnet18, pretrained=False)
    learn.model.eval()
    path = Path(read_nsynth(root, splits=["valid"]).fname.iloc[0])
    predict = {
        "all shims on": (),
        "predict_direct off": ["predict_direct"],
        "all shims off (public paths only)": list(SHIMS),
    }
    rows = {name: [] for name in predict}
    with learn.no_bar():
        for _ in range(3):  # rounds, alternating
            for name, off in predict.items():
                times = timings_ms(with_shims_off(off, lambda: learn.predict(path)), args.runs)
                rows[name].append(float(statistics.median(times)))
    print_table(
        "## learn.predict(path), one 4 s file (p50 per round, ms)",
        rows,
        "all shims on",
        label="shims",
        unit="ms",
        ratio="x all shims",
        digits=1,
        higher_is_better=False,
    )


if __name__ == "__main__":
    main()
