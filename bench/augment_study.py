"""Does augmentation help on unseen instruments, and what does it cost per batch?

1. **Cost**: time per batch (64 clips of 4 s at 16 kHz) of each augmentation and of the ``audio_aug_tfms()`` recipe,
   as a fraction of the log-mel front-end's time (``mel_transforms('nsynth')``) measured in the same run.
   Goal: the recipe adds <= 15 % of the front-end's time.
2. **The study**: on synth_nsynth's instrument-disjoint split (train and valid share no instrument), the same
   resnet18 trained from scratch with the same epochs and seeds, with no augmentation and with each recipe; mean and
   std of the final accuracy on the ``valid`` split and on the ``test`` split (15 unseen instruments each, so
   the two together halve the noise of a single split). Goal: +5 points or more for the chosen default.

Run: ``python bench/augment_study.py [--size 8] [--epochs 6] [--seeds 0 1 2] [--recipes none default masks]``
(about 15-20 minutes with the defaults on a 2-core CPU; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
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
    RandomGain,
    RandomHighpass,
    RandomLowpass,
    RandomShift,
    TimeMask,
    TimeStretch,
    audio_aug_tfms,
    mel_transforms,
)

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"

RECIPES = {
    "none": lambda: [],
    "default": lambda: audio_aug_tfms(),
    "masks": lambda: audio_aug_tfms(gain_db=None, noise_snr_db=None, lowpass=False),
    "waveform": lambda: audio_aug_tfms(freq_masks=0, time_masks=0),
    "pitch": lambda: [*audio_aug_tfms(), PitchShift(-2, 2, p=0.3)],
}


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def cost(runs: int):
    torch.manual_seed(0)
    x = TensorAudio(0.1 * torch.randn(64, 1, 64000), sample_rate=16000)
    front = mel_transforms("nsynth", normalize="item")
    spec = x
    for t in front:
        spec = t(spec)

    def run_front():
        y = x
        for t in front:
            y = t(y)

    front_ms = median_ms(run_front, runs)
    rows = {}
    waveform = [RandomGain(p=1.0), PolarityInversion(p=1.0), RandomShift(p=1.0), AddNoise(color="white", p=1.0),
                AddNoise(color="random", p=1.0), RandomLowpass(p=1.0), RandomHighpass(p=1.0), PitchShift(p=1.0),
                TimeStretch(p=1.0)]  # fmt: skip
    for t in waveform:
        name = f"{type(t).__name__}" + (f"({t.color})" if isinstance(t, AddNoise) else "") + " p=1"
        rows[name] = median_ms(lambda t=t: t(x, split_idx=0), max(3, runs // 3) if "Pitch" in name else runs)
    for t in (FrequencyMask(p=1.0), TimeMask(p=1.0)):
        rows[f"{type(t).__name__} p=1"] = median_ms(lambda t=t: t(spec, split_idx=0), runs)

    def run_recipe():
        for t in audio_aug_tfms():
            t(spec if t.order > 20 else x, split_idx=0)

    rows["audio_aug_tfms() (the default recipe, p=0.5)"] = median_ms(run_recipe, runs)
    print(f"## Cost per batch: 64 clips x 4 s at 16 kHz, CPU, median of {runs}\n")
    print("| transform | ms per batch | x front-end |")
    print("|---|---|---|")
    print(f"| log-mel front-end (MelSpectrogram, AmplitudeToDB, Normalize) | {front_ms:.1f} | 1.00 |")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} | {ms / front_ms:.2f} |")
    share = rows["audio_aug_tfms() (the default recipe, p=0.5)"] / front_ms
    print(f"\ngoal: the recipe adds <= 15 % of the front-end's time: {'met' if share <= 0.15 else 'NOT met'} "
          f"({100 * share:.0f} %)\n")  # fmt: skip


def train_once(root, recipe: str, seed: int, epochs: int, bs: int, lr: float) -> tuple[float, float]:
    """Accuracy on the ``valid`` split and on the ``test`` split: 15 more unseen instruments, scored the same way."""
    set_seed(seed, reproducible=True)
    tfms = [*mel_transforms("nsynth"), *RECIPES[recipe]()]
    dls = AudioDataLoaders.from_nsynth(root, bs=bs, num_workers=0, batch_tfms=tfms)
    test = read_nsynth(root, splits=["test"])
    test_dl = dls.test_dl([[f, y] for f, y in zip(test["fname"], test["instrument_family_str"])], with_labels=True)
    learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
        return float(learn.validate()[1]), float(learn.validate(dl=test_dl)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8", help="synth_nsynth size: small, medium or notes per program")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=["none", "default", "masks"], choices=sorted(RECIPES))
    parser.add_argument("--runs", type=int, default=20, help="timing repeats for the cost table")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small data, 1 epoch, 1 seed")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.quick:
        args.size, args.epochs, args.seeds, args.runs = "small", 1, [0], 3
    size = int(args.size) if args.size.isdigit() else args.size

    print(f"# bench/augment_study.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}\n")  # fmt: skip
    if not args.skip_cost:
        cost(args.runs)
    if args.skip_study:
        return
    root = synth_nsynth(CACHE / f"nsynth_{size}", size=size, progress=False)
    print(f"## Validation accuracy on unseen instruments (synth_nsynth size={size}, resnet18 from scratch, "
          f"{args.epochs} epochs, bs={args.bs}, lr={args.lr}, seeds {args.seeds})\n")  # fmt: skip
    print("valid and test each hold 15 instruments that training never saw; 'both' is their mean (240 notes).\n")
    print("| recipe | valid per seed | test per seed | valid mean ± std | test mean ± std | both mean ± std "
          "| vs none (points) | minutes per run |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for recipe in args.recipes:
        start = time.perf_counter()
        runs = [train_once(root, recipe, s, args.epochs, args.bs, args.lr) for s in args.seeds]
        minutes = (time.perf_counter() - start) / 60 / len(runs)
        valid, test = [r[0] for r in runs], [r[1] for r in runs]
        both = [(v + t) / 2 for v, t in runs]
        base = statistics.mean(both) if recipe == "none" else base
        delta = f"{100 * (statistics.mean(both) - base):+.1f}" if base is not None and recipe != "none" else "-"
        print(f"| {recipe} | {_seq(valid)} | {_seq(test)} | {_mean_std(valid)} | {_mean_std(test)} | "
              f"{_mean_std(both)} | {delta} | {minutes:.1f} |", flush=True)  # fmt: skip


def _seq(xs) -> str:
    return ", ".join(f"{x:.3f}" for x in xs)


def _mean_std(xs) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


if __name__ == "__main__":
    main()
