"""Do the models work on sounds they never heard? Cross-soundfont and cross-speaker studies.

1. **Cross-soundfont** (paired over ``--seeds``): a resnet18 trained from scratch on every note ``synth_nsynth``
   renders from the default soundfont (TimGM6mb: all 98 GM programs, so every instrument type) is scored on every
   note of two soundfonts never used in training or selection: Debian's ``csound-soundfont`` (``sf_GMbank.sf2``)
   and ``opl3-soundfont`` (``OPL-3_FM_128M.sf2``, FM synthesis): other recordings of the same instrument types.
   The epoch kept is chosen on a third soundfont, FluidR3 (``fluid-soundfont-gm``): the validation set asks the
   question the test sets ask (other recordings), never the test sets themselves.
   Arms (``ARMS``): ``today`` (the recipe before this study: noise and the spectrogram low-pass, last epoch
   kept), ``default`` (today's ``audio_aug_tfms()``, the best epoch kept), the candidates, and ``diverse`` (the
   default recipe trained on the default soundfont plus MuseScore General (``musescore-general-soundfont-small``)
   with ``timbre_randomization``). Goals: >= 75 % on a held-out soundfont for ``default``; >= +15 points for
   ``diverse`` over ``today``. Issue 24's pretrained arms (``PRETRAINED``): the ``musicnn`` wheel's MusiCNN (MTT,
   MSD) and VGG (MTT) fine-tuned on their own front-end (``fine_tune(ft_epochs - 1)``, the first epoch frozen), and
   MusiCNN-MTT with its new head on the pooled features (``musicnn-mtt-pooled``); goal: >= +10 points on both
   held-out soundfonts over ``default``. ``--soundfont-probe`` and ``--fsdd-probe``: linear probes on frozen
   MusiCNN embeddings instead.
2. **Real recordings** (``--fsdd``): leave-one-speaker-out on the Free Spoken Digit Dataset
   (``../shared/data/fsdd/recordings``), the ``speech`` preset and the default recipe; the kept epoch is chosen on
   a random 15 % of the training speakers' recordings. Goal >= 97 % mean over the 6 folds (issue 24's pretrained
   arms, ``--fsdd-arm``: >= 90 %). ``--fsdd-speakers theo``: only those folds, each with the seed it has in a
   full run.
3. **Overfitting**: the best minus the last epoch's validation accuracy of the default recipe. Goal <= 1 point.

Set-up: the held-out soundfonts come from Debian packages; the script installs them with apt-get when it can
(root) and stops with the command to run otherwise. The package itself never needs them.

Run: ``python bench/generalization.py [--arms today default diverse] [--seeds 0 1 2] [--size 12] [--fsdd]``
(``--arms default musicnn-mtt vgg-mtt musicnn-msd musicnn-mtt-pooled``; ``--fsdd-only --fsdd-arm musicnn-mtt``)
(``--quick``: a smoke run on tiny data).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import torch
from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from torchvision.models import resnet18

from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth
from fastai_audio.inference import fit_linear_probe
from fastai_audio.learner import KeepBest, audio_learner
from fastai_audio.transforms import RandomEQ, RandomReverb, audio_aug_tfms, mel_transforms

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
SF2 = Path("/usr/share/sounds/sf2")
HELD_OUT = {"csound": SF2 / "sf_GMbank.sf2", "opl3": SF2 / "OPL-3_FM_128M.sf2"}
SELECT = SF2 / "FluidR3_GM.sf2"
EXTRA_TRAIN = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
PACKAGES = {
    "sf_GMbank.sf2": "csound-soundfont",
    "OPL-3_FM_128M.sf2": "opl3-soundfont",
    "FluidR3_GM.sf2": "fluid-soundfont-gm",
    "MuseScore_General_Lite.sf3": "musescore-general-soundfont-small",
}


def _before():  # the recipe of issues 1-15: noise and the spectrogram low-pass
    return audio_aug_tfms(reverb=False, eq=False)


ARMS = {  # name -> (training data, recipe (batch tfms and callbacks), keep the best epoch)
    "today": ("default", _before, False),
    "today+best": ("default", _before, True),
    "default": ("default", lambda: audio_aug_tfms(), True),
    "room": ("default", lambda: [*_before(), RandomReverb(p=0.5), RandomEQ(p=0.5)], True),
    "room+mixup": ("default", lambda: [*_before(), RandomReverb(p=0.5), RandomEQ(p=0.5), MixUp(0.4)], True),
    "mixup": ("default", lambda: [*_before(), MixUp(0.4)], True),
    "eq": ("default", lambda: [*_before(), RandomEQ(p=0.5)], True),
    "room+eq": ("default", lambda: audio_aug_tfms(reverb=True, eq=True), True),
    "room+eq+mixup": ("default", lambda: [*audio_aug_tfms(reverb=True, eq=True), MixUp(0.4)], True),
    "room+eq+masks": ("default", lambda: audio_aug_tfms(reverb=True, eq=True, freq_masks=2, time_masks=2), True),
    "strong-eq": ("default", lambda: [*_before(), RandomEQ(max_tilt_db=4.0, bands=3, max_gain_db=9.0, p=0.8)], True),
    "diverse": ("diverse", lambda: audio_aug_tfms(), True),
    "diverse-today": ("diverse", _before, False),
    "timbre": ("timbre", lambda: audio_aug_tfms(), True),
    # issue 24: the musicnn wheel's pretrained networks fine-tuned (head first, then the whole network) with the
    # default recipe on their own front-end (16 kHz, the `musicnn` log-mel); VGG takes 3 s patches (187 frames)
    "musicnn-mtt": ("default", lambda: audio_aug_tfms(), True),
    "musicnn-msd": ("default", lambda: audio_aug_tfms(), True),
    "vgg-mtt": ("default", lambda: audio_aug_tfms(), True),
    # the new head on MusiCNN's 1,506 pooled features (head_input="pooled"), where the linear probes did best
    "musicnn-mtt-pooled": ("default", lambda: audio_aug_tfms(), True),
}
PRETRAINED = {  # arm -> (arch, weights, audio_learner options)
    "musicnn-mtt": ("musicnn", "MTT", {}),
    "musicnn-msd": ("musicnn", "MSD", {}),
    "vgg-mtt": ("vgg", "MTT", {}),
    "musicnn-mtt-pooled": ("musicnn", "MTT", {"head_input": "pooled"}),
}


def ensure_soundfonts():
    missing = [p for p in [*HELD_OUT.values(), SELECT, EXTRA_TRAIN] if not p.is_file()]
    if not missing:
        return
    packages = sorted({PACKAGES[p.name] for p in missing})
    if shutil.which("apt-get") and os.geteuid() == 0:
        print(f"installing {' '.join(packages)} (apt-get)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=False, stdout=subprocess.DEVNULL)
    still = [p for p in missing if not p.is_file()]
    if still:
        sys.exit(
            f"the study needs {', '.join(map(str, still))}: run `sudo apt-get install {' '.join(packages)}` "
            "(Debian/Ubuntu), then run this again"
        )


def render(size, eval_size, seed=0):
    """The data sets: the default soundfont, the diverse training set, the selection and held-out soundfonts."""
    kw = {"progress": False, "seed": seed, "overwrite": True}  # (the folders are this benchmark's own cache)
    base = read_nsynth(synth_nsynth(CACHE / f"gen_default_{size}", size, **kw))
    data = {"default": base}
    data["select"] = read_nsynth(synth_nsynth(CACHE / f"gen_fluid_{eval_size}", eval_size, soundfont=SELECT, **kw))
    diverse = read_nsynth(
        synth_nsynth(
            CACHE / f"gen_diverse_{size}", size, soundfont=[None, EXTRA_TRAIN], timbre_randomization=True, **kw
        )
    )
    data["diverse"] = diverse
    timbre = read_nsynth(synth_nsynth(CACHE / f"gen_timbre_{size}", size, timbre_randomization=True, **kw))
    data["timbre"] = timbre
    for name, font in HELD_OUT.items():
        data[name] = read_nsynth(synth_nsynth(CACHE / f"gen_{name}_{eval_size}", eval_size, soundfont=font, **kw))
    return data


def fit(train_df, select_df, label, arm, seed, epochs, lr, bs, preset, duration, workdir):
    """Train ``arm``'s network (resnet18 from scratch, or a pretrained MusiCNN/VGG fine-tuned: ``PRETRAINED``);
    return the learner (best or last epoch) and its validation accuracy per epoch."""
    _, recipe, keep_best = ARMS[arm]
    set_seed(seed, reproducible=True)
    tfms = recipe()
    df = pd.concat([train_df.assign(is_valid=False), select_df.assign(is_valid=True)], ignore_index=True)
    pretrained = PRETRAINED.get(arm)
    audio = {}
    if pretrained:
        preset, audio["sample_rate"] = "musicnn", 16000
        duration = 2.98 if pretrained[0] == "vgg" else duration
    batch_tfms = [*mel_transforms(preset), *(t for t in tfms if not isinstance(t, Callback))]
    dls = AudioDataLoaders.from_df(
        df,
        fn_col="fname",
        label_col=label,
        valid_col="is_valid",
        duration=duration,
        bs=bs,
        num_workers=0,
        batch_tfms=batch_tfms,
        **audio,
    )
    cbs = [t for t in tfms if isinstance(t, Callback)]
    if keep_best:
        cbs.append(KeepBest(fname=f"best_{os.getpid()}", verbose=False))
    if pretrained:
        arch, weights, options = pretrained
        learn = audio_learner(dls, arch, weights=weights, metrics=accuracy, cbs=cbs, path=workdir, **options)
    else:
        learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy, cbs=cbs, path=workdir)
    with learn.no_bar(), learn.no_logging():
        if pretrained:  # as many epochs as from scratch, the first with the body frozen (the recorder and
            learn.fine_tune(max(epochs - 1, 1), lr, freeze_epochs=1)  # KeepBest see the unfrozen ones)
        else:
            learn.fit_one_cycle(epochs, lr)
    accs = [float(v[2]) for v in learn.recorder.values]
    return learn, accs


def score(learn, df, label):
    """Accuracy on ``df`` and the (true, predicted) label pairs."""
    dl = learn.dls.test_dl([[f, y] for f, y in zip(df["fname"], df[label])], with_labels=True)
    with learn.no_bar(), learn.no_logging():
        preds, targs = learn.get_preds(dl=dl)
    pred = preds.argmax(1)
    vocab = learn.dls.vocab
    pairs = [(vocab[t], vocab[p]) for t, p in zip(targs.tolist(), pred.tolist())]
    return float((pred == targs).float().mean()), pairs


def mean_sd(xs):
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def cross_soundfont(args, data):
    print(
        f"## Cross-soundfont: train on {len(data['default'])} notes (default soundfont, every program), keep the "
        f"epoch chosen on {len(data['select'])} notes of FluidR3, score on every note of "
        + ", ".join(f"{k} ({len(data[k])} notes)" for k in HELD_OUT)
        + f"; resnet18 from scratch, fit_one_cycle({args.epochs}, {args.lr}) (the pretrained arms: "
        f"fine_tune({max(args.ft_epochs - 1, 1)}, {args.lr}, freeze_epochs=1)), bs {args.bs}, seeds {args.seeds}; "
        f"paired differences against the first arm, {args.arms[0]}\n"
    )
    results, confusions = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for arm in args.arms:
            source, _, keep_best = ARMS[arm]
            for seed in args.seeds:
                start = time.perf_counter()
                learn, accs = fit(
                    data[source],
                    data["select"],
                    "instrument_family_str",
                    arm,
                    seed,
                    args.ft_epochs if arm in PRETRAINED else args.epochs,
                    args.lr,
                    args.bs,
                    "nsynth",
                    4.0,
                    work,
                )
                row = {"valid": accs, "kept": max(accs) if keep_best else accs[-1]}
                for name in HELD_OUT:
                    row[name], pairs = score(learn, data[name], "instrument_family_str")
                    confusions.setdefault((arm, name), Counter()).update(pairs)
                row["minutes"] = (time.perf_counter() - start) / 60
                results.setdefault(arm, []).append(row)
                print(
                    f"{arm} seed {seed}: valid per epoch {', '.join(f'{a:.3f}' for a in accs)}; "
                    + ", ".join(f"{n} {row[n]:.3f}" for n in HELD_OUT)
                    + f" ({row['minutes']:.1f} min)",
                    flush=True,
                )
    print(
        "\n| arm | training data | "
        + " | ".join(f"{n}: accuracy (mean ± sd)" for n in HELD_OUT)
        + " | "
        + " | ".join(f"{n} vs {args.arms[0]} (points, paired)" for n in HELD_OUT)
        + " | valid: best - last (points) | minutes per run |"
    )
    print("|---|---|" + "---|" * (2 * len(HELD_OUT) + 2))
    base = results[args.arms[0]]
    for arm, rows in results.items():
        cells = [mean_sd([r[n] for r in rows]) for n in HELD_OUT]
        for n in HELD_OUT:
            if arm == args.arms[0]:
                cells.append("-")
            else:
                diffs = [100 * (r[n] - b[n]) for r, b in zip(rows, base)]
                cells.append(f"{statistics.mean(diffs):+.1f} ({', '.join(f'{d:+.1f}' for d in diffs)})")
        gaps = [100 * (max(r["valid"]) - r["valid"][-1]) for r in rows]
        print(
            f"| {arm} | {ARMS[arm][0]} | "
            + " | ".join(cells)
            + f" | {statistics.mean(gaps):.1f} (max {max(gaps):.1f})"
            + f" | {statistics.mean(r['minutes'] for r in rows):.1f} |"
        )
    print("\nMost frequent confusions (true -> predicted, notes summed over seeds):\n")
    for (arm, name), pairs in confusions.items():
        wrong = [(f"{t} -> {p}", c) for (t, p), c in pairs.most_common() if t != p][:6]
        total = sum(pairs.values())
        print(
            f"- {arm} on {name}: "
            + ", ".join(f"{k} {c}" for k, c in wrong)
            + f" (of {total // len(args.seeds)} notes per seed)"
        )
    return results


def fsdd(args):
    if not FSDD.is_dir():
        print(f"## FSDD: skipped, {FSDD} is absent (it is in the team's ../shared/data, not in a clone)")
        return
    files = sorted(FSDD.glob("*.wav"))
    df = pd.DataFrame(
        {
            "fname": files,
            "digit": [f.name.split("_")[0] for f in files],
            "speaker": [f.name.split("_")[1] for f in files],
        }
    )
    speakers = sorted(df.speaker.unique())
    print(
        f"\n## FSDD leave-one-speaker-out: {len(df)} recordings, {len(speakers)} speakers; "
        f"arm {args.fsdd_arm}, "
        + (
            f"fine_tune({max(args.ft_epochs - 1, 1)}, {args.lr}, freeze_epochs=1) on the `musicnn` front-end"
            if args.fsdd_arm in PRETRAINED
            else f"resnet18 from scratch on the `speech` preset, fit_one_cycle({args.fsdd_epochs}, {args.lr})"
        )
        + ", 1 s clips\n"
    )
    accs = []
    with tempfile.TemporaryDirectory() as work:
        for k, speaker in enumerate(speakers):  # (k seeds the fold: a fold run alone gets the same seed)
            if args.fsdd_speakers and speaker not in args.fsdd_speakers:
                continue
            start = time.perf_counter()
            rest = df[df.speaker != speaker]
            select = rest.sample(frac=0.15, random_state=k)
            learn, valid = fit(
                rest.drop(select.index),
                select,
                "digit",
                args.fsdd_arm,
                args.seeds[0] + k,
                args.ft_epochs if args.fsdd_arm in PRETRAINED else args.fsdd_epochs,
                args.lr,
                args.bs,
                "speech",
                1.0,
                work,
            )
            acc, _ = score(learn, df[df.speaker == speaker], "digit")
            accs.append(acc)
            print(
                f"- held out {speaker}: {acc:.3f} (valid best {max(valid):.3f}, last {valid[-1]:.3f}; "
                f"{(time.perf_counter() - start) / 60:.1f} min)",
                flush=True,
            )
    mean, goal = statistics.mean(accs), 0.90 if args.fsdd_arm in PRETRAINED else 0.97  # (issue 24; from scratch: above)
    print(f"\nmean {mean_sd(accs)}, min {min(accs):.3f}; goal >= {goal}: {'met' if mean >= goal else 'NOT met'}")


def musicnn_embeddings(dls, files):
    """``(arm, embeddings, seconds)`` for each frozen MusiCNN arm: the MTT and MSD weights, each with its 200-unit
    penultimate layer and with the 1,506 pooled features before it (``layer="dense"``), on ``dls``' front-end."""
    for weights, layer in (("MTT", None), ("MSD", None), ("MTT", "dense"), ("MSD", "dense")):
        start = time.perf_counter()
        learn = audio_learner(dls, "musicnn", weights=weights)
        x = learn.embed(list(files), layer=layer).numpy()
        yield f"MusiCNN-{weights}, {'pooled features' if layer else 'penultimate'}", x, time.perf_counter() - start


def fsdd_probe(args):
    """Linear probes on frozen pretrained MusiCNN embeddings, leave-one-speaker-out on FSDD: the field's protocol
    for comparing pretrained audio models (no training of the network; a logistic regression per fold)."""
    if not FSDD.is_dir():
        print(f"## FSDD probe: skipped, {FSDD} is absent (it is in the team's ../shared/data, not in a clone)")
        return
    files = sorted(FSDD.glob("*.wav"))
    if args.quick:
        files = files[::10]
    df = pd.DataFrame(
        {
            "fname": files,
            "digit": [f.name.split("_")[0] for f in files],
            "speaker": [f.name.split("_")[1] for f in files],
            "is_valid": [f.name.split("_")[1] == "theo" for f in files],  # (any split: only the front-end is used)
        }
    )
    speakers = sorted(df.speaker.unique())
    dls = AudioDataLoaders.from_df(
        df,
        "/",
        "fname",
        "digit",
        valid_col="is_valid",
        sample_rate=16000,
        duration=1.0,
        bs=64,
        batch_tfms=mel_transforms("musicnn"),
    )
    print(
        f"\n## FSDD leave-one-speaker-out, linear probes: {len(df)} recordings, {len(speakers)} speakers; frozen "
        "MusiCNN (the musicnn wheel's weights) on the `musicnn` log-mel of 1 s clips at 16 kHz; standardised "
        "logistic regression (C=1) per fold\n"
    )
    for arm, x, took in musicnn_embeddings(dls, df.fname):
        accs = []
        for speaker in speakers:
            held = (df.speaker == speaker).to_numpy()
            probe = fit_linear_probe(x[~held], df.digit[~held])
            accs.append(float((probe.predict(x[held]) == df.digit[held]).mean()))
        folds = ", ".join(f"{s} {a:.3f}" for s, a in zip(speakers, accs))
        print(f"- {arm} ({x.shape[1]}, embedded in {took:.0f} s): mean {mean_sd(accs)}; {folds}")
    print(
        "\nreference: resnet18 from scratch with the default recipe, same folds: 0.816 (docs/performance.md); "
        "goal of issue 24: >= 0.90"
    )


def soundfont_probe(args):
    """Linear probes on frozen MusiCNN embeddings across soundfonts: fitted on the default soundfont's notes, scored
    on every note of csound and opl3 (and FluidR3), the cross-soundfont protocol without training the network."""
    ensure_soundfonts()
    kw = {"progress": False, "seed": 0, "overwrite": True}
    size, eval_size = (2, 1) if args.quick else (int(args.size), int(args.eval_size))
    sets = {"default": read_nsynth(synth_nsynth(CACHE / f"gen_default_{size}", size, **kw))}
    for name, font in {**HELD_OUT, "fluid": SELECT}.items():
        sets[name] = read_nsynth(synth_nsynth(CACHE / f"gen_{name}_{eval_size}", eval_size, soundfont=font, **kw))
    df = pd.concat([d.assign(set=name) for name, d in sets.items()], ignore_index=True)
    dls = AudioDataLoaders.from_df(
        df.assign(is_valid=df.set != "default"),
        fn_col="fname",
        label_col="instrument_family_str",
        valid_col="is_valid",
        sample_rate=16000,
        duration=4.0,
        bs=32,
        num_workers=0,
        batch_tfms=mel_transforms("musicnn"),
    )
    counts = ", ".join(f"{name} {len(d)}" for name, d in sets.items())
    print(
        f"\n## Cross-soundfont, linear probes on frozen MusiCNN ({counts} notes; the musicnn log-mel of the whole "
        "4 s note at 16 kHz; standardised logistic regression (C=1) fitted on the default soundfont)\n"
    )
    train = (df.set == "default").to_numpy()
    for arm, x, took in musicnn_embeddings(dls, df.fname):
        probe = fit_linear_probe(x[train], df.instrument_family_str[train], max_iter=3000)
        scores = {
            name: float((probe.predict(x[(df.set == name).to_numpy()]) == sets[name].instrument_family_str).mean())
            for name in ("csound", "opl3", "fluid")
        }
        print(
            f"- {arm} ({x.shape[1]}): csound {scores['csound']:.3f}, opl3 {scores['opl3']:.3f}, "
            f"FluidR3 {scores['fluid']:.3f} ({took:.0f} s)",
            flush=True,
        )
    print("\nreference: resnet18 from scratch, default recipe: csound 0.824, opl3 0.451 (docs/performance.md)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["today", "default", "diverse"], choices=sorted(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--size", default="12", help="synth_nsynth size (notes per program)")
    parser.add_argument("--eval-size", default="6", help="notes per program of the selection and test soundfonts")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--ft-epochs", type=int, default=4, help="epochs of the pretrained arms, the first frozen")
    parser.add_argument("--fsdd", action="store_true", help="also run the FSDD leave-one-speaker-out study")
    parser.add_argument("--fsdd-only", action="store_true")
    parser.add_argument("--fsdd-arm", default="default", choices=sorted(ARMS))
    parser.add_argument("--fsdd-epochs", type=int, default=8)
    parser.add_argument("--fsdd-speakers", nargs="+", help="only these held-out speakers' folds (default: all six)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--fsdd-probe", action="store_true", help="only the FSDD linear probes on MusiCNN embeddings")
    parser.add_argument(
        "--soundfont-probe", action="store_true", help="only the cross-soundfont linear probes on MusiCNN embeddings"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 notes per program, 1 epoch, 1 seed")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if args.quick:
        args.size, args.eval_size, args.epochs, args.seeds, args.fsdd_epochs, args.ft_epochs = "2", "1", 1, [0], 1, 2
    size = int(args.size) if args.size.isdigit() else args.size
    print(
        f"# bench/generalization.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}\n"
    )
    if args.fsdd_probe or args.soundfont_probe:
        if args.soundfont_probe:
            soundfont_probe(args)
        if args.fsdd_probe:
            fsdd_probe(args)
        return
    if not args.fsdd_only:
        ensure_soundfonts()
        cross_soundfont(args, render(size, int(args.eval_size)))
    if args.fsdd or args.fsdd_only:
        fsdd(args)


if __name__ == "__main__":
    main()
