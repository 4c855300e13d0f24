"""The seed's comparison, done fairly: log-mels computed per batch on the fly vs pre-rendered to PNG images.

Both pipelines train the same 1-channel resnet18 (``create_audio_model(resnet18, n_out, n_in=1, pretrained=False)``)
on the same rendered NSynth-format notes (``synth_nsynth``, cached under ``.cache/bench/``), with the same loss, Adam,
one-cycle schedule, learning rate, epochs, batch size, seed, initial weights and shuffling order:

- **(a) on the fly**: ``AudioDataLoaders.from_nsynth(..., batch_tfms=mel_transforms('nsynth'))`` and
  ``audio_learner``; no render step. Every batch is decoded from WAV and turned into a normalised log-mel.
- **(b) PNG** (the baseline): a render step first decodes each clip exactly as (a)'s loader does (16 kHz mono, the
  4 s centre crop of ``OpenAudio``), computes the same log-mel with the library's ``MelSpectrogram`` +
  ``AmplitudeToDB`` (the ``nsynth`` preset: n_fft 1024, hop 256, 64 mels 20-8000 Hz, dB with ``top_db`` 80 below
  each clip's maximum), maps the fixed dB range ``[-top_db, 0]`` linearly onto ``0..255`` (``round((dB + top_db) *
  255 / top_db)``: a quantisation step of 0.31 dB, no per-clip rescaling) and saves 8-bit grayscale PNGs (PIL) in an
  ImageNet folder layout, ``split/family/note.png``. Rows are mel bands (row 0 the lowest) and columns frames, so an
  image decodes to the same ``(1, 64, 251)`` tensor as (a)'s spectrogram, not resized or flipped. Training uses
  fastai's vision loaders, ``DataBlock(ImageBlock(cls=PILImageBW), CategoryBlock)`` + ``IntToFloatTensor`` +
  ``Normalize`` with per-mel-band mean and std of the training images (the render step computes them; (a)'s
  ``SpecNormalize(mode='dataset')`` estimates the same per-band statistics from 4 training batches), wrapped in a plain
  fastai ``Learner``. Neither pipeline augments or resizes.

The NSynth notes are exactly 4 s, so (a)'s random training crop has no slack: both pipelines see one fixed crop per
clip, identical up to the PNG's 8-bit quantisation (the script checks both facts and prints the largest dB difference).

The two pipelines take turns epoch by epoch (each runs its own one-cycle schedule, resumed with ``start_epoch``, with
its own optimiser and random states), so a busy machine slows both alike. Per pipeline it reports the render time (0
for (a)), the set-up of the ``DataLoaders``, the first epoch (warm-up), the median wall time and process CPU time of
the epochs after the first (training + validation), a data-only pass (one epoch of batches without the model, median
of 3, also alternating), and the final validation accuracy (mean +- std over seeds); then the ratios on-the-fly / PNG
of the epoch times measured in the same run, and the epoch-by-epoch ratios of the back-to-back pairs. CPU time is
less disturbed than wall time by other processes on a shared machine. Nothing here asserts on timings.
Run: ``python bench/pipeline.py [--size 6] [--epochs 4] [--seeds 2] [--bs 32] [--workers 0] [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import Normalize, parent_label
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.optimizer import Adam
from fastai.torch_core import default_device, set_seed
from fastai.vision.core import PILImageBW
from fastai.vision.data import ImageBlock
from fastai.vision.learner import model_meta
from PIL import Image
from torchvision.models import resnet18

from fastai_audio.core import TensorAudio
from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth
from fastai_audio.learner import audio_learner, create_audio_model
from fastai_audio.transforms import OpenAudio, SpecNormalize, mel_transforms
from fastai_audio.transforms.presets import MEL_PRESETS

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
PRESET, DURATION = "nsynth", 4.0
DATA_ROUNDS = 3  # data-only passes per pipeline and seed (median)
PNG_FORMAT = 1  # bump when the rendering or the scaling changes, so old images are not reused
ON_THE_FLY, PNG = "(a) on the fly, mel_transforms('nsynth')", "(b) pre-rendered PNG (baseline)"


class _Split:
    """Fixed (train, valid) indices as a DataBlock splitter."""

    def __init__(self, train_idx: list, valid_idx: list):
        self.train_idx, self.valid_idx = train_idx, valid_idx

    def __call__(self, items):
        return self.train_idx, self.valid_idx


class EpochTimer(Callback):
    """Wall time (training + validation) of the one epoch a ``fit(..., start_epoch=k)`` call runs, then stops the fit:
    each pipeline runs its schedule one epoch at a time, interleaved with the other's."""

    order = 100  # after the Recorder has logged the epoch

    def __init__(self):
        self.epoch_times, self.cpu_times, self.target = [], [], 0

    def before_epoch(self):
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def after_epoch(self):
        if self.epoch == self.target:
            self.epoch_times.append(time.perf_counter() - self._t0)
            self.cpu_times.append(time.process_time() - self._c0)  # all of this process's threads
            raise CancelFitException


# ------------------------------------------------------------------------------------------------------- render


def png_cache_dir(root: Path, cfg) -> Path:
    """The PNG folder for this data set and these mel settings: a hash of the data set's manifest (arguments and
    file list) and of every setting that changes the pixels, so a changed data set or front-end never reuses old
    images."""
    key = {
        "data": (root / "synth_nsynth.json").read_text(encoding="utf-8"),
        "mel": asdict(cfg),
        "duration": DURATION,
        "crop": "centre",
        "scaling": "fixed [-top_db, 0] dB -> 0..255",
        "format": PNG_FORMAT,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return CACHE / "png" / f"{root.name}_{PRESET}_{digest}"


def to_uint8(db: torch.Tensor, top_db: float) -> torch.Tensor:
    """dB in ``[-top_db, 0]`` (``AmplitudeToDB(ref='max', top_db)``) -> uint8, linearly; 0 dB is 255."""
    return ((db + top_db) * (255.0 / top_db)).round().clamp(0, 255).to(torch.uint8)


def render_pngs(df, out: Path, cfg, bs: int) -> dict:
    """Write ``out/split/family/note.png`` for every row of ``df``; return the manifest (with the render time)."""
    start = time.perf_counter()
    open_audio = OpenAudio(cfg.sample_rate, mono=True, duration=DURATION)
    mel, to_db = cfg.transforms(normalize=None)  # the library's own MelSpectrogram + AmplitudeToDB, on the CPU
    sums, sq_sums, n_cols, shape = None, None, 0, None
    for s in range(0, len(df), bs):
        rows = df.iloc[s : s + bs]
        clips = [open_audio(Path(f), split_idx=1).as_subclass(torch.Tensor) for f in rows.fname]  # centre crop
        with torch.no_grad():
            db = to_db(mel(TensorAudio(torch.stack(clips), sample_rate=cfg.sample_rate))).as_subclass(torch.Tensor)
        u8 = to_uint8(db, cfg.top_db)  # (B, 1, n_mels, frames)
        shape = tuple(u8.shape[1:])
        train = torch.tensor((rows.split == "train").to_numpy())
        if train.any():
            x = u8[train].double() / 255  # what IntToFloatTensor hands Normalize
            sums = x.sum(dim=(0, 3)) if sums is None else sums + x.sum(dim=(0, 3))
            sq_sums = (x * x).sum(dim=(0, 3)) if sq_sums is None else sq_sums + (x * x).sum(dim=(0, 3))
            n_cols += x.shape[0] * x.shape[3]
        for img, (_, row) in zip(u8[:, 0].numpy(), rows.iterrows()):
            path = out / row.split / row.instrument_family_str / (Path(row.fname).stem + ".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(path)
    mean = sums / n_cols  # per (channel, mel band), over every training image and frame
    std = ((sq_sums - n_cols * mean**2) / (n_cols - 1)).clamp_min(0).sqrt()
    manifest = {
        "render_s": time.perf_counter() - start,
        "n_images": len(df),
        "shape": shape,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "complete": True,
    }
    (out / "render.json").write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    return manifest


def get_pngs(root: Path, df, cfg, bs: int, reuse: bool) -> tuple[Path, dict, bool]:
    out = png_cache_dir(root, cfg)
    manifest_path = out / "render.json"
    if reuse and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("complete") and manifest.get("n_images") == len(df):
            return out, manifest, True
    if out.exists():
        shutil.rmtree(out)  # our own keyed folder: re-render it whole so the render is timed from scratch
    out.mkdir(parents=True)
    return out, render_pngs(df, out, cfg, bs), False


def png_path(out: Path, row) -> Path:
    return out / row.split / row.instrument_family_str / (Path(row.fname).stem + ".png")


# ---------------------------------------------------------------------------------------------------- pipelines


def dls_on_the_fly(root: Path, args):
    return AudioDataLoaders.from_nsynth(
        root,
        bs=args.bs,
        num_workers=args.workers,
        sample_rate=16000,
        duration=DURATION,
        batch_tfms=mel_transforms(PRESET),
    )


def dls_png(df, out: Path, manifest: dict, vocab: list, args):
    # the same items in the same order as (a)'s from_nsynth (read_nsynth's rows), so a seeded shuffle matches
    items = [png_path(out, row) for _, row in df.iterrows()]
    is_valid = (df.split == "valid").to_numpy()
    splitter = _Split([i for i, v in enumerate(is_valid) if not v], [i for i, v in enumerate(is_valid) if v])
    mean = torch.tensor(manifest["mean"], dtype=torch.float32)[None, :, :, None]  # (1, 1, n_mels, 1)
    std = torch.tensor(manifest["std"], dtype=torch.float32)[None, :, :, None]
    norm = Normalize(mean=mean.to(default_device()), std=(std + 1e-6).to(default_device()))
    dblock = DataBlock(
        blocks=(ImageBlock(cls=PILImageBW), CategoryBlock(vocab=vocab)),
        get_y=parent_label,
        splitter=splitter,
        batch_tfms=norm,
    )
    return dblock.dataloaders(items, path=out, bs=args.bs, num_workers=args.workers)


def data_pass(dls) -> float:
    """One epoch of batches (training, then validation) through the loaders and batch transforms, no model."""
    start = time.perf_counter()
    for _ in dls.train:
        pass
    for _ in dls.valid:
        pass
    return time.perf_counter() - start


def set_up(name: str, seed: int, args, root: Path, df, pngs) -> dict:
    """Build one pipeline's DataLoaders and Learner for ``seed``; time the set-up and a data-only pass."""
    set_seed(seed, reproducible=True)
    start = time.perf_counter()
    if name == ON_THE_FLY:
        dls = dls_on_the_fly(root, args)
    else:
        out, manifest, vocab = pngs
        dls = dls_png(df, out, manifest, vocab, args)
    setup_s = time.perf_counter() - start
    xb, _ = dls.one_batch()

    loss = CrossEntropyLossFlat()
    if name == ON_THE_FLY:
        learn = audio_learner(dls, resnet18, pretrained=False, metrics=accuracy, loss_func=loss, opt_func=Adam)
    else:
        model = create_audio_model(resnet18, dls.c, n_in=1, pretrained=False)
        learn = Learner(
            dls, model, loss_func=loss, opt_func=Adam, metrics=accuracy, splitter=model_meta[resnet18]["split"]
        )
    set_seed(seed, reproducible=True)  # the same initial weights in both pipelines
    learn.model.load_state_dict(create_audio_model(resnet18, dls.c, n_in=1, pretrained=False).state_dict())
    return {
        "name": name,
        "seed": seed,
        "learn": learn,
        "timer": EpochTimer(),
        "setup_s": setup_s,
        "data": [],
        "shape": tuple(xb.shape),
        "type": type(xb).__name__,
        "vocab": list(dls.vocab),
    }


def seed_run(run: dict):
    """Reset the run's randomness before training: the same for both pipelines."""
    run["learn"].dls.train.rng = random.Random(run["seed"])  # the same shuffling (same items, order and length)
    set_seed(run["seed"], reproducible=True)  # the same dropout draws; each pipeline keeps its own states from here
    run["rng"] = _rng_states()


def _rng_states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _set_rng_states(states):
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])


def train_epoch(run: dict, epoch: int, args):
    """Epoch ``epoch`` of the run's one-cycle schedule over ``args.epochs`` (optimiser state carried over)."""
    _set_rng_states(run["rng"])
    run["timer"].target = epoch
    learn = run["learn"]
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(args.epochs, args.lr, start_epoch=epoch, cbs=run["timer"])
    run["rng"] = _rng_states()


def finish(run: dict) -> dict:
    learn = run.pop("learn")
    run["acc"] = float(learn.recorder.values[-1][-1])
    run["epochs"], run["cpu"] = run["timer"].epoch_times, run.pop("timer").cpu_times
    run["data_s"] = statistics.median(run.pop("data"))
    print(
        f"  seed {run['seed']} {run['name']}: {run['type']}{run['shape']}, set-up {run['setup_s']:.1f} s, data "
        f"pass {run['data_s']:.1f} s, epochs {', '.join(f'{t:.1f}' for t in run['epochs'])} s, valid accuracy "
        f"{run['acc']:.3f}",
        flush=True,
    )
    return run


def parity(root: Path, df, out: Path, cfg, args) -> float:
    """Largest |dB| difference between (a)'s validation batch (un-normalised) and the PNGs of the same clips."""
    dls = dls_on_the_fly(root, args)
    x, _ = dls.valid.one_batch()
    norm = next(t for t in dls.valid.after_batch.fs if isinstance(t, SpecNormalize))
    db_a = norm.decodes(x).as_subclass(torch.Tensor).cpu()
    valid = df[df.split == "valid"].iloc[: x.shape[0]]
    imgs = np.stack([np.asarray(Image.open(png_path(out, row))) for _, row in valid.iterrows()])
    db_b = torch.from_numpy(imgs).double()[:, None] * (cfg.top_db / 255) - cfg.top_db
    return float((db_a.double() - db_b).abs().max())


# -------------------------------------------------------------------------------------------------------- report


def fmt_mean_std(values: list) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def _later(rs: list, key: str) -> list:
    """Every epoch after each run's first (all of them when there is only one)."""
    return [t for r in rs for t in (r[key][1:] or r[key])]


def print_table(results: dict, render_s: float, cached: bool) -> tuple[float, float]:
    """Print the table; return the ratios on-the-fly / PNG of the median epoch wall and CPU times."""
    base = statistics.median(_later(results[PNG], "epochs"))
    base_cpu = statistics.median(_later(results[PNG], "cpu"))
    render_note = " (cached)" if cached else ""
    print(
        f"\n| {'pipeline':<42} | {'render s':>9} | {'set-up s':>8} | {'1st epoch s':>11} | {'epoch s':>8} | "
        f"{'epoch CPU s':>11} | {'data-only s':>11} | {'valid accuracy':>15} | {'epoch x PNG':>11} | "
        f"{'CPU x PNG':>9} |"
    )
    print("|" + "|".join("-" * (n + 2) for n in (42, 9, 8, 11, 8, 11, 11, 15, 11, 9)) + "|")
    for name in (PNG, ON_THE_FLY):
        rs = results[name]
        render = f"{render_s:.1f}{render_note}" if name == PNG else "0"
        setup = statistics.median(r["setup_s"] for r in rs)
        first = statistics.median(r["epochs"][0] for r in rs)
        epoch, cpu = statistics.median(_later(rs, "epochs")), statistics.median(_later(rs, "cpu"))
        data = statistics.median(r["data_s"] for r in rs)
        print(
            f"| {name:<42} | {render:>9} | {setup:8.1f} | {first:11.1f} | {epoch:8.1f} | {cpu:11.1f} | "
            f"{data:11.2f} | {fmt_mean_std([r['acc'] for r in rs]):>15} | {epoch / base:11.2f} | "
            f"{cpu / base_cpu:9.2f} |"
        )
    return (
        statistics.median(_later(results[ON_THE_FLY], "epochs")) / base,
        statistics.median(_later(results[ON_THE_FLY], "cpu")) / base_cpu,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        default=6,
        type=lambda s: int(s) if s.isdigit() else s,
        help="synth_nsynth size: small, medium, full or notes per program (default 6)",
    )
    parser.add_argument("--epochs", type=int, default=4, help="epochs of fit_one_cycle per run (default 4)")
    parser.add_argument("--seeds", type=int, default=2, help="runs per pipeline, seeds 0..N-1 (default 2)")
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="fit_one_cycle's lr_max (default 2e-3)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader num_workers for both (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--reuse-png", action="store_true", help="reuse a complete PNG render of the same key")
    parser.add_argument("--quick", action="store_true", help="tiny data, 2 epochs, 1 seed: a smoke check only")
    args = parser.parse_args()
    if args.quick:
        args.size, args.epochs, args.seeds, args.bs = 1, 2, 1, 16
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    total_start = time.perf_counter()

    thread_note = "" if args.threads is not None else " (torch's default)"
    print(
        f"# bench/pipeline.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, torch threads {torch.get_num_threads()}{thread_note}, device "
        f"{default_device()}"
    )
    root = synth_nsynth(CACHE / f"nsynth_{args.size}", size=args.size, progress=False)
    df = read_nsynth(root, splits=["train", "valid"])
    frames = {sf.info(str(f)).frames for f in df.fname}
    cfg = MEL_PRESETS[PRESET]
    slack = frames != {int(DURATION * cfg.sample_rate)}
    for f in df.fname:  # warm the page cache so both pipelines read from memory
        Path(f).read_bytes()

    out, manifest, cached = get_pngs(root, df, cfg, max(args.bs, 64), args.reuse_png)
    vocab = sorted(df[df.split == "train"].instrument_family_str.unique())
    print(
        f"Data: synth_nsynth size={args.size}, {int((df.split == 'train').sum())} train / "
        f"{int((df.split == 'valid').sum())} valid notes (instrument-disjoint), {len(vocab)} families; "
        f"{args.epochs} epochs of fit_one_cycle(lr_max={args.lr:g}), bs={args.bs}, num_workers={args.workers}, "
        f"seeds {list(range(args.seeds))}." + (" QUICK MODE: a smoke check only." if args.quick else "")
    )
    print(
        f"PNG render: {manifest['n_images']} images {tuple(manifest['shape'])} in {out} "
        + (
            f"(reused; it took {manifest['render_s']:.1f} s when rendered)"
            if cached
            else f"in {manifest['render_s']:.1f} s"
        )
    )
    if slack:
        print(
            f"NOTE: clip lengths {sorted(frames)[:5]} samples are not all {int(DURATION * cfg.sample_rate)}: "
            "(a) trains on random crops, (b) on the centre crop only; accuracies not like for like."
        )
    else:
        print(
            f"Every clip is exactly {DURATION:g} s: (a)'s random training crop has no slack, so both pipelines "
            "train on the same single crop per clip."
        )
    print(
        f"Parity: largest |dB| difference, (a)'s un-normalised validation batch vs the PNGs of the same clips: "
        f"{parity(root, df, out, cfg, args):.3f} dB (8-bit step {cfg.top_db / 255:.3f} dB)",
        flush=True,
    )

    results = {ON_THE_FLY: [], PNG: []}
    for seed in range(args.seeds):
        runs = {name: set_up(name, seed, args, root, df, (out, manifest, vocab)) for name in (ON_THE_FLY, PNG)}
        for r in range(DATA_ROUNDS):  # data-only passes, alternating too
            for name in (ON_THE_FLY, PNG) if (seed + r) % 2 == 0 else (PNG, ON_THE_FLY):
                runs[name]["data"].append(data_pass(runs[name]["learn"].dls))
        for run in runs.values():
            seed_run(run)
        for epoch in range(args.epochs):
            # the pipelines take turns epoch by epoch, the first alternating, so a busy machine slows both alike
            order = (ON_THE_FLY, PNG) if (seed + epoch) % 2 == 0 else (PNG, ON_THE_FLY)
            for name in order:
                train_epoch(runs[name], epoch, args)
        for name in (ON_THE_FLY, PNG):
            results[name].append(finish(runs[name]))
    a, b = results[ON_THE_FLY][0], results[PNG][0]
    if a["shape"][1:] != b["shape"][1:] or a["vocab"] != b["vocab"]:
        print(f"WARNING: the pipelines differ: {a['shape']} {a['vocab']} vs {b['shape']} {b['vocab']}")

    n_later = max(args.epochs - 1, 1)
    print(
        f"\nMedian over seeds; 'epoch s' is the median of epochs 2..{args.epochs} of every seed "
        f"({n_later * args.seeds} epoch(s) per pipeline), training + validation; 'data-only s' is one epoch of "
        f"batches without the model (median of {DATA_ROUNDS} per seed); accuracy is the last epoch's, mean +- std "
        "over seeds."
    )
    ratio, cpu_ratio = print_table(results, manifest["render_s"], cached)
    acc_a = statistics.mean(r["acc"] for r in results[ON_THE_FLY])
    acc_b = statistics.mean(r["acc"] for r in results[PNG])
    print(
        f"Goals: on-the-fly epoch <= 1.0x PNG: {ratio:.2f}x {'MET' if ratio <= 1.0 else 'MISSED'}; accuracy at "
        f"least equal: {acc_a:.3f} vs {acc_b:.3f} {'MET' if acc_a >= acc_b else 'MISSED'}; no render step: "
        f"{manifest['render_s']:.1f} s saved"
    )
    paired = [
        a / b for ra, rb in zip(results[ON_THE_FLY], results[PNG]) for a, b in zip(ra["epochs"][1:], rb["epochs"][1:])
    ]
    if paired:
        print(
            f"Epoch by epoch (the same seed and epoch, run back to back): on the fly / PNG median "
            f"{statistics.median(paired):.2f}x, range {min(paired):.2f}-{max(paired):.2f}x; CPU time "
            f"{cpu_ratio:.2f}x"
        )
    print(f"Total run time {time.perf_counter() - total_start:.0f} s")


if __name__ == "__main__":
    main()
