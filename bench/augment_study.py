"""Does augmentation help on unseen instruments, and what does it cost per batch?

1. **Cost**: time per batch (64 clips of 4 s at 16 kHz) of each augmentation and of the ``audio_aug_tfms()`` recipe,
   as a fraction of the log-mel front-end's time (``mel_transforms('nsynth')``) measured in the same run.
   Goal: the recipe adds <= 15 % of the front-end's time.
2. **The study**: does a recipe help a model on instruments it never heard? synth_nsynth's instruments (train, valid
   and test pooled) are dealt into ``--folds`` instrument-disjoint folds, stratified by family; for each fold, the
   same resnet18 is trained from scratch on the other folds for the same epochs, with seed = ``--seed`` + fold index,
   with no augmentation and with each recipe, and scored on the held-out fold. A single 15-instrument split is too
   noisy to see 5 points (its accuracy moves by 10-25 points with the instruments drawn); the folds score every
   instrument once, and comparing recipes fold by fold (paired) removes the instruments' difficulty from the
   difference.
   Goal: +5 points or more for the chosen default.

Run: ``python bench/augment_study.py [--size 8] [--epochs 6] [--folds 5] [--recipes none default masks]``
(about 2-3 minutes per run on a 2-core CPU, one run per fold and recipe; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import time
import warnings
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from torchvision.models import resnet18

from fastai_audio import TensorAudio
from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth
from fastai_audio.learner import audio_learner
from fastai_audio.transforms import (
    AddNoise,
    FrequencyMask,
    PitchShift,
    PolarityInversion,
    RandomEQ,
    RandomGain,
    RandomHighpass,
    RandomLowpass,
    RandomReverb,
    RandomShift,
    TimeMask,
    TimeStretch,
    TimeWarp,
    audio_aug_tfms,
    mel_transforms,
)

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"

RECIPES = {  # batch transforms, and callbacks (mixing)
    "none": lambda: [],
    "default": lambda: audio_aug_tfms(),
    "masks": lambda: audio_aug_tfms(noise_snr_db=None, lowpass=False),
    "masks+noise": lambda: audio_aug_tfms(lowpass=False),
    "waveform": lambda: audio_aug_tfms(freq_masks=0, time_masks=0),
    "noise": lambda: audio_aug_tfms(lowpass=False, freq_masks=0, time_masks=0),
    "lowpass": lambda: audio_aug_tfms(noise_snr_db=None, freq_masks=0, time_masks=0),
    "filters": lambda: [*audio_aug_tfms(noise_snr_db=None), RandomHighpass(50, 400, p=0.5)],
    "pitch": lambda: [PitchShift(-2, 2, p=0.5)],
    "mixup": lambda: [MixUp(0.4)],
    "masks+mixup": lambda: [*audio_aug_tfms(noise_snr_db=None, lowpass=False), MixUp(0.4)],
}


def _synced(fn, device: torch.device):
    """``fn`` followed by a wait for the device, so that a GPU's asynchronous work is inside the timing."""
    if device.type != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize(device)

    return run


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def paired_ms(base, fn, runs: int) -> tuple[float, float, float]:
    """Medians of ``base`` and ``fn`` timed alternately, and the median of their per-pair ratio ``fn / base``: the
    ratio then compares runs taken a moment apart, not minutes apart on a machine whose speed drifts."""
    base(), fn()
    pairs = []
    for _ in range(runs):
        start = time.perf_counter()
        base()
        middle = time.perf_counter()
        fn()
        pairs.append(((middle - start) * 1e3, (time.perf_counter() - middle) * 1e3))
    a, b = zip(*pairs)
    return statistics.median(a), statistics.median(b), statistics.median(y / x for x, y in pairs)


def cost(runs: int, device: torch.device):
    torch.manual_seed(0)
    x = TensorAudio(0.1 * torch.randn(64, 1, 64000), sample_rate=16000).to(device)
    front = mel_transforms("nsynth", normalize="item")
    power = front[0](x)  # the mel spectrogram before decibels: what a spectrogram-domain filter gets
    spec = x
    for t in front:
        spec = t(spec)

    def by_order(t):  # each transform gets the input its place in the pipeline gives it
        return x if t.order < 20 else power if t.order < 30 else spec

    def run_front():
        y = x
        for t in front:
            y = t(y)

    recipe = audio_aug_tfms()  # built once, as in a DataLoaders (AddNoise draws its noise bank on first use)

    def run_recipe():
        for t in recipe:
            t(by_order(t), split_idx=0)

    # the front-end and the recipe timed alternately: the goal's ratio compares runs a moment apart
    front_ms, recipe_ms, share = paired_ms(_synced(run_front, device), _synced(run_recipe, device), runs)
    rows = {}
    single = [
        RandomGain(p=1.0),
        PolarityInversion(p=1.0),
        RandomShift(p=1.0),
        AddNoise(color="white", p=1.0),
        AddNoise(color="random", p=1.0),
        RandomLowpass(p=1.0),
        RandomHighpass(p=1.0),
        RandomLowpass(p=1.0, domain="spectrogram"),
        RandomHighpass(p=1.0, domain="spectrogram"),
        PitchShift(p=1.0),
        TimeStretch(p=1.0),
        FrequencyMask(p=1.0),
        TimeMask(p=1.0),
        TimeWarp(p=1.0),
        RandomReverb(p=1.0),
        RandomReverb(p=0.5),
        RandomEQ(p=1.0),
        RandomEQ(p=1.0, domain="waveform"),
    ]
    for t in single:
        detail = t.color if isinstance(t, AddNoise) else f"domain={t.domain!r}" if hasattr(t, "domain") else None
        name = type(t).__name__ + (f"({detail})" if detail else "") + f" p={t.p:g}"
        slow = isinstance(t, (PitchShift, TimeStretch))
        rows[name] = median_ms(
            _synced(lambda t=t: t(by_order(t), split_idx=0), device), max(3, runs // 3) if slow else runs
        )
    rows["audio_aug_tfms() (the default recipe, p=0.5)"] = recipe_ms
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"## Cost per batch: 64 clips x 4 s at 16 kHz, {where}, median of {runs}\n")
    print("| transform | ms per batch | x front-end |")
    print("|---|---|---|")
    print(f"| log-mel front-end (MelSpectrogram, AmplitudeToDB, SpecNormalize) | {front_ms:.1f} | 1.00 |")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} | {ms / front_ms:.2f} |")
    print(
        f"\ngoal: the recipe adds <= 15 % of the front-end's time: {'met' if share <= 0.15 else 'NOT met'} "
        f"({100 * share:.0f} %, the median ratio of {runs} alternate runs of the two)\n"
    )


def instrument_folds(df, folds: int, seed: int = 0) -> list[list[str]]:
    """The instruments dealt into ``folds`` groups, family by family (each family's instruments shuffled, then dealt
    round-robin, starting where the last family stopped), so every fold holds about 1/folds of each family."""
    rng = random.Random(seed)
    groups, turn = [[] for _ in range(folds)], 0
    for _, names in sorted(df.groupby("instrument_family_str")["instrument_str"].unique().items()):
        names = sorted(names)
        rng.shuffle(names)
        for name in names:
            groups[turn % folds].append(name)
            turn += 1
    return groups


def train_once(df, held_out, recipe: str, seed: int, epochs: int, bs: int, lr: float) -> float:
    """Accuracy on the held-out instruments of a resnet18 trained from scratch on all the others."""
    set_seed(seed, reproducible=True)
    recipe = RECIPES[recipe]()
    tfms = [*mel_transforms("nsynth"), *(t for t in recipe if not isinstance(t, Callback))]
    cbs = [t for t in recipe if isinstance(t, Callback)]
    df = df.assign(is_valid=df["instrument_str"].isin(held_out))
    dls = AudioDataLoaders.from_df(
        df,
        fn_col="fname",
        label_col="instrument_family_str",
        valid_col="is_valid",
        duration=4.0,
        bs=bs,
        num_workers=0,
        batch_tfms=tfms,
    )
    learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy, cbs=cbs)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
        return float(learn.validate()[1])


def study(args, size):
    root = synth_nsynth(CACHE / f"nsynth_{size}", size=size, progress=False)
    df = read_nsynth(root)  # train, valid and test together: the folds re-split them by instrument
    folds = instrument_folds(df, args.folds)
    print(
        f"## Validation accuracy on unseen instruments (synth_nsynth size={size}: {len(df)} notes of "
        f"{df['instrument_str'].nunique()} instruments; {args.folds}-fold cross-validation over instruments; "
        f"resnet18 from scratch, {args.epochs} epochs, bs={args.bs}, lr={args.lr})\n"
    )
    print(
        "Each fold holds out about 1/folds of the instruments of every family and trains on the rest; fold k "
        f"uses seed {args.seed} + k for every recipe, so the recipes are compared fold by fold "
        "(paired).\n"
    )
    print(
        "| recipe | accuracy per fold | mean ± std | vs none, per fold (points) | vs none: mean ± s.e. "
        "| folds better | minutes per run |"
    )
    print("|---|---|---|---|---|---|---|")
    base = None
    for recipe in args.recipes:
        start = time.perf_counter()
        accs = [
            train_once(df, held_out, recipe, args.seed + k, args.epochs, args.bs, args.lr)
            for k, held_out in enumerate(folds)
        ]
        minutes = (time.perf_counter() - start) / 60 / len(accs)
        if recipe == "none":
            base = accs
        if base is None or recipe == "none":
            diff_cells = "- | - | -"
        else:
            diffs = [100 * (a - b) for a, b in zip(accs, base)]
            sem = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
            diff_cells = (
                f"{', '.join(f'{d:+.1f}' for d in diffs)} | {statistics.mean(diffs):+.1f} ± {sem:.1f} | "
                f"{sum(d > 0 for d in diffs)} of {len(diffs)}"
            )
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"| {recipe} | {', '.join(f'{a:.3f}' for a in accs)} | {statistics.mean(accs):.3f} ± {std:.3f} | "
            f"{diff_cells} | {minutes:.1f} |",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8", help="synth_nsynth size: small, medium or notes per program")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--folds", type=int, default=5, help="instrument folds (one run per fold and recipe)")
    parser.add_argument("--recipes", nargs="+", default=["none", "default", "masks"], choices=sorted(RECIPES))
    parser.add_argument("--seed", type=int, default=0, help="training seed of fold k: seed + k (the folds stay)")
    parser.add_argument("--runs", type=int, default=20, help="timing repeats for the cost table")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small data, 1 epoch, 2 folds")
    parser.add_argument("--device", default="cpu", help="where the cost table's batches are (cpu, cuda)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.quick:
        args.size, args.epochs, args.folds, args.runs = "small", 1, 2, 3
    size = int(args.size) if args.size.isdigit() else args.size

    print(
        f"# bench/augment_study.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}\n"
    )
    if not args.skip_cost:
        cost(args.runs, torch.device(args.device))
    if args.skip_study:
        return
    study(args, size)


if __name__ == "__main__":
    main()
