"""Training throughput on the fly: the library's recipe against what the device does with data already on it.

Side by side in one run, on one data set (N clips of 4 s at 16 kHz, 16-bit WAV, 11 class folders, made here and
cached), the same network, optimiser and batch size, clips per second of training:

- ``model alone``: the network in a plain PyTorch loop (``torch.optim.AdamW``, fused on CUDA) on log-mel batches
  already on the device: the ceiling;
- ``torch DataLoader + torchaudio``: a plain PyTorch ``DataLoader`` (soundfile per item, ``pin_memory``,
  persistent workers) and torchaudio's log-mel on the device, then the same loop: what a hand-written pipeline gets;
- ``fastai_audio recipe``: ``AudioDataLoaders.from_folder(..., batch_tfms=mel_transforms("nsynth"))``,
  ``audio_learner``, ``learn.fit`` (the README's recipe; on CUDA also what docs/performance.md recommends there);
- ``+ audio_aug_tfms()``: the same with the default augmentation;
- ``fastai_audio loader alone``: the recipe's batches through the front-end, no network.

Then a per-batch breakdown of the recipe's loop (receive a batch, host-to-device copy, batch transforms, forward,
backward, optimiser step, callbacks: each timed with the device synchronised at its end, in a pass of its own), the
host-device synchronisations per batch on CUDA (``torch.cuda.set_sync_debug_mode``), and the time to the first
batch of every epoch after the first.

Without a GPU the network is a tiny CNN, so that what is measured is the loop and the loader, not the CPU's
convolutions: goals there are the recipe's loop at <= 1.2x the plain loop's per-batch cost on the same batches, and
the loader at >= 1.5x the plain DataLoader's clips/s at 2 workers.

Run: ``python bench/train_throughput.py`` (CPU: about 5 minutes on 2 cores), or on a GPU machine
``python bench/train_throughput.py --clips 8192 --workers 15 --bs 64 256 --precision fp32 bf16``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
CLASSES = 11
RATE, SECONDS = 16000, 4.0


# ---- the data ---------------------------------------------------------------------------------------------------


def make_dataset(n: int) -> Path:
    """``n`` clips of 4 s at 16 kHz (16-bit WAV) in ``train/<class>/``, 11 classes of harmonic tones in noise, and a
    small ``valid/``; cached."""
    root = CACHE / f"throughput_{n}"
    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * SECONDS)) / RATE
    for split, count in (("train", n), ("valid", max(CLASSES, n // 50))):
        for i in range(count):
            label = i % CLASSES
            f0 = 110.0 * 2 ** (label / 4) * (1 + 0.02 * rng.standard_normal())
            wav = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 5))
            wav = 0.2 * wav * np.exp(-t * rng.uniform(0.2, 1.5)) + 0.01 * rng.standard_normal(t.size)
            path = root / split / f"class{label:02d}" / f"{i:06d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), wav.astype(np.float32), RATE, subtype="PCM_16")
    done.touch()
    return root


def warm(root: Path):
    for f in root.rglob("*.wav"):  # the page cache holds every file, for every contender alike
        f.read_bytes()


# ---- the networks and the plain loop ----------------------------------------------------------------------------


def tiny_cnn(n_out: int = CLASSES) -> nn.Module:
    """The CPU stand-in for resnet18: small enough that the loop, not the convolutions, is what is timed."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, n_out),
    )


def make_network(kind: str) -> nn.Module:
    from torchvision.models import resnet18

    from fastai_audio.learner import create_audio_model

    torch.manual_seed(0)
    return tiny_cnn() if kind == "tiny" else create_audio_model(resnet18, CLASSES, 1, pretrained=False)


def plain_optimizer(model: nn.Module, device: torch.device):
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, **fused)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, torch.bfloat16)
    return contextlib.nullcontext()


def plain_steps(model, opt, batches, device, precision) -> float:
    """Seconds for a plain PyTorch training loop over ``batches`` (``(x, y)`` on the device)."""
    loss_func = nn.CrossEntropyLoss()
    sync(device)
    start = time.perf_counter()
    for x, y in batches:
        with autocast(device, precision):
            loss = loss_func(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - start


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- contenders -------------------------------------------------------------------------------------------------


def front_end(device):
    from fastai_audio.transforms import MEL_PRESETS

    cfg = MEL_PRESETS["nsynth"]
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        f_min=cfg.f_min,
        f_max=cfg.f_max,
        norm="slaney",
        mel_scale="slaney",
    ).to(device)
    db = torchaudio.transforms.AmplitudeToDB(top_db=80).to(device)
    return lambda x: db(mel(x))


def model_alone(args, device, bs, precision, kind) -> float:
    """Clips/s of the plain loop on log-mel batches already on the device."""
    model = make_network(kind).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = plain_optimizer(model, device)
    g = torch.Generator(device="cpu").manual_seed(0)
    x = (torch.randn(bs, 1, 64, 251, generator=g)).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (bs,), generator=g).to(device)
    batches = [(x, y)] * args.steps
    plain_steps(model, opt, batches[: args.warmup], device, precision)
    return bs * args.steps / plain_steps(model, opt, batches, device, precision)


class _Clips(torch.utils.data.Dataset):
    """What a hand-written pipeline does per item: soundfile, a random 4 s crop (the clips are 4 s), an int label."""

    def __init__(self, files, classes):
        self.files, self.index = list(files), {c: i for i, c in enumerate(classes)}

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        f = self.files[i]
        wav, _ = sf.read(str(f), dtype="float32", always_2d=True)
        wav = wav.T[:1, : int(RATE * SECONDS)]
        if wav.shape[-1] < int(RATE * SECONDS):
            wav = np.pad(wav, ((0, 0), (0, int(RATE * SECONDS) - wav.shape[-1])))
        return torch.from_numpy(np.ascontiguousarray(wav)), self.index[f.parent.name]


def torch_loader(root, bs, workers, device):
    files = sorted((root / "train").rglob("*.wav"))
    classes = sorted(p.name for p in (root / "train").iterdir())
    return torch.utils.data.DataLoader(
        _Clips(files, classes),
        batch_size=bs,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def plain_pipeline(args, root, device, bs, precision, kind) -> tuple[float, float]:
    """Clips/s of the plain DataLoader + torchaudio + plain loop, and of that loader alone (no network)."""
    dl = torch_loader(root, bs, args.workers, device)
    mel = front_end(device)
    model = make_network(kind).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = plain_optimizer(model, device)
    loss_func = nn.CrossEntropyLoss()
    rates, loader_rates = [], []
    for epoch in range(args.epochs):
        sync(device)
        start, n = time.perf_counter(), 0
        for x, y in dl:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.no_grad():
                spec = mel(x)
            with autocast(device, precision):
                loss = loss_func(model(spec), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        sync(device)
        if epoch:
            rates.append(n / (time.perf_counter() - start))
    for epoch in range(2):
        sync(device)
        start, n = time.perf_counter(), 0
        for x, y in dl:
            with torch.no_grad():
                mel(x.to(device, non_blocking=True))
            n += len(y)
        sync(device)
        if epoch:
            loader_rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), statistics.median(loader_rates)


PACKED = False  # --packed: the recipe reads a packed cache of the data set (fastai-audio pack) instead of files


def packed_cache(root: Path) -> Path:
    """``root`` packed once (``fastai_audio.data.pack``), cached beside it."""
    from fastai_audio.data import AudioDataLoaders, pack

    dest = root.with_name(root.name + "_packed")
    if not (dest / "packed.json").is_file():
        import shutil

        shutil.rmtree(dest, ignore_errors=True)
        pack(AudioDataLoaders.from_folder(root, bs=64, seed=0), dest, progress=False)
    return dest


def recipe_dls(root, bs, workers, device, augment: bool, packed: bool | None = None):
    from fastai_audio.data import AudioDataLoaders
    from fastai_audio.transforms import audio_aug_tfms, mel_transforms

    tfms = [*audio_aug_tfms(), *mel_transforms("nsynth")] if augment else mel_transforms("nsynth")
    if PACKED if packed is None else packed:
        return AudioDataLoaders.from_packed(
            packed_cache(root), bs=bs, num_workers=workers, batch_tfms=tfms, device=device, seed=0
        )
    return AudioDataLoaders.from_folder(root, bs=bs, num_workers=workers, batch_tfms=tfms, device=device, seed=0)


class _Timer:
    """A fastai callback recording each training epoch's time, items and time to its first batch."""

    order = 99

    def __init__(self, device):
        from fastai.callback.core import Callback

        outer = self

        class Cb(Callback):
            order = 99

            def before_train(self):
                sync(device)
                outer.epoch_start, outer.first, outer.items = time.perf_counter(), None, 0

            def before_batch(self):
                if outer.first is None and self.training:
                    outer.first = time.perf_counter() - outer.epoch_start

            def after_batch(self):
                if self.training:
                    outer.items += len(self.yb[0])

            def after_train(self):
                sync(device)
                outer.epochs.append((outer.items / (time.perf_counter() - outer.epoch_start), outer.first))

            def before_validate(self):
                from fastai.callback.core import CancelValidException

                raise CancelValidException

        self.cb, self.epochs = Cb(), []


def recipe_learner(dls, kind: str, precision: str, channels_last: bool, opt: str = "default"):
    """The README's learner (``audio_learner(dls, resnet18, pretrained=False)``); on the CPU its network swapped
    for the tiny one. ``opt='adamw'``: torch's AdamW (fused on CUDA) through fastai's ``OptimWrapper``, with fastai
    ``Adam``'s hyper-parameters, in place of fastai's per-parameter ``Adam``."""
    from functools import partial

    from fastai.optimizer import OptimWrapper
    from torchvision.models import resnet18

    from fastai_audio.learner import audio_learner

    torch.manual_seed(0)
    learn = audio_learner(dls, resnet18, pretrained=False)
    if kind == "tiny":
        learn.model, learn.splitter = tiny_cnn().to(dls.device or "cpu"), lambda m: [list(m.parameters())]
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    if opt == "adamw":
        fused = {"fused": True} if dls.device is not None and dls.device.type == "cuda" else {"foreach": True}
        learn.opt_func = partial(
            OptimWrapper, opt=partial(torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, **fused)
        )
    if precision == "bf16":
        learn.to_bf16()
    if channels_last:
        learn.to_channels_last()
    return learn


def recipe(args, root, device, bs, precision, kind, augment) -> tuple[float, list]:
    """Clips/s of the recipe's training epochs after the first, and the first-batch times of those epochs."""
    dls = recipe_dls(root, bs, args.workers, device, augment)
    learn = recipe_learner(dls, kind, precision, args.channels_last, args.opt)
    timer = _Timer(device)
    with learn.no_logging():
        learn.fit_one_cycle(args.epochs, 1e-3, cbs=timer.cb)
    later = timer.epochs[1:]
    for dl in dls.loaders:
        dl.close()
    return statistics.median(r for r, _ in later), [f for _, f in later]


def loader_alone(args, root, device, bs) -> float:
    """Clips/s of the recipe's training batches through the front-end, no network (epochs after the first)."""
    dls = recipe_dls(root, bs, args.workers, device, augment=False)
    rates = []
    for epoch in range(3):
        sync(device)
        start, n = time.perf_counter(), 0
        for x, _ in dls.train:
            n += len(x)
        sync(device)
        if epoch:
            rates.append(n / (time.perf_counter() - start))
    for dl in dls.loaders:
        dl.close()
    return statistics.median(rates)


# ---- where a batch's time goes ------------------------------------------------------------------------------------


def breakdown(args, root, device, bs, precision, kind) -> tuple[dict, Counter]:
    """Milliseconds per training batch of the recipe in each step (median over a pass with the device synchronised
    at every step's end), and on CUDA the host-device synchronisations of one unsynchronised pass, by place."""
    from fastai.callback.core import Callback

    from fastai_audio.data import transfer, workers

    dls = recipe_dls(root, bs, args.workers, device, augment=False)
    learn = recipe_learner(dls, kind, precision, args.channels_last, args.opt)
    times, marks = defaultdict(list), {}
    step = {"t": None}

    def mark(name):
        sync(device)
        now = time.perf_counter()
        if step["t"] is not None:
            times[name].append(1000 * (now - step["t"]))
        step["t"] = now

    def timed(name, f):
        def wrapper(*a, **k):
            sync(device)
            start = time.perf_counter()
            out = f(*a, **k)
            sync(device)
            marks[name] = marks.get(name, 0.0) + 1000 * (time.perf_counter() - start)
            return out

        return wrapper

    class Steps(Callback):
        order = 100

        def before_batch(self):
            step["t"] = time.perf_counter()  # the loader's share is timed by the wrappers below
            for name, value in marks.items():
                times[name].append(value)
            marks.clear()

        def after_pred(self):
            mark("forward")

        def after_loss(self):
            mark("loss")

        def before_step(self):
            mark("backward")

        def after_step(self):
            mark("optimizer step")

        def after_batch(self):
            mark("callbacks")

    originals = (workers.WorkerPool._receive, transfer.DeviceFeed.put, transfer.DeviceFeed.get)
    workers.WorkerPool._receive = timed("receive from the workers", originals[0])
    transfer.DeviceFeed.put = timed("host-to-device copy", originals[1])
    transfer.DeviceFeed.get = timed("host-to-device copy (wait)", originals[2])
    for dl in dls.loaders:
        dl.after_batch = _TimedPipeline(dl.after_batch, timed)
    try:
        with learn.no_logging():
            learn.fit(2, 1e-3, cbs=[Steps(), _Timer(device).cb])
    finally:
        workers.WorkerPool._receive, transfer.DeviceFeed.put, transfer.DeviceFeed.get = originals
    per_batch = {name: statistics.median(v[len(v) // 2 :]) for name, v in times.items() if v}
    syncs = Counter()
    if device.type == "cuda":
        syncs = count_syncs(learn, dls)
    for dl in dls.loaders:
        dl.close()
    return per_batch, syncs


class _TimedPipeline:
    """A loader's ``after_batch`` with its call timed (every other attribute is the pipeline's)."""

    def __init__(self, pipeline, timed):
        self.__dict__["_pipeline"] = pipeline
        self.__dict__["_call"] = timed("batch transforms", pipeline.__call__)

    def __call__(self, *a, **k):
        return self._call(*a, **k)

    def __getattr__(self, name):
        return getattr(self._pipeline, name)


def count_syncs(learn, dls) -> Counter:
    """Host-device synchronisations during one training epoch, by the line of this package or fastai that asked."""
    found = Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode(1)
        try:
            with learn.no_logging():
                learn.fit(1, 1e-3)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    batches = max(len(dls.train), 1)
    for w in caught:
        if "synchroniz" in str(w.message):
            found[f"{Path(w.filename).name}:{w.lineno}"] += 1
    return Counter({k: v / batches for k, v in found.items()})


# ---- main -------------------------------------------------------------------------------------------------------


def _rate(x: float) -> str:
    return "skipped" if x != x else f"{x:,.0f}"


def _ratio(a: float, b: float) -> str:
    return "-" if a != a or b != b else f"{a / b:.2f}x"


def table(title: str, header: list, rows: list):
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda")
    parser.add_argument("--clips", type=int, default=None, help="training clips (default: 8192 on CUDA, 1024 on CPU)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="loader workers (default: CPUs - 1, at most 15, on CUDA; 2 on the CPU)",
    )
    parser.add_argument("--bs", type=int, nargs="+", default=[64])
    parser.add_argument("--precision", nargs="+", default=None, help="fp32 and/or bf16 (default: fp32)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per contender (the first is warm-up)")
    parser.add_argument("--steps", type=int, default=50, help="steps of the model-alone loop")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true", help="the recipe with learn.to_channels_last()")
    parser.add_argument(
        "--opt",
        default="default",
        choices=["default", "adamw"],
        help="the recipe's optimiser: audio_learner's default, or torch's AdamW (fused on CUDA)",
    )
    parser.add_argument("--packed", action="store_true", help="the recipe reads a packed cache of the data set")
    parser.add_argument("--skip", nargs="*", default=[], choices=["plain", "augment", "breakdown"])
    args = parser.parse_args()
    global PACKED
    PACKED = args.packed
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else (args.device if args.device != "auto" else "cpu")
    )
    kind = "resnet18" if device.type == "cuda" else "tiny"
    args.clips = args.clips or (8192 if device.type == "cuda" else 1024)
    if args.workers is None:  # the settings: 15 workers on the 16-core GPU machine, 2 on the 2-core VM
        args.workers = max(1, min(15, (os.cpu_count() or 2) - 1)) if device.type == "cuda" else 2
    precisions = args.precision or ["fp32"]
    root = make_dataset(args.clips)
    warm(root)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"# bench/train_throughput.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{card}, torch {torch.__version__}; {args.clips} clips of 4 s, {args.workers} workers, network "
        f"{kind}{', channels_last' if args.channels_last else ''}, optimiser {args.opt}"
        f"{', from a packed cache' if args.packed else ''}"
    )
    rows, first_batches, details = [], [], []
    for bs in args.bs:
        for precision in precisions:
            alone = model_alone(args, device, bs, precision, kind)
            plain, plain_loader = (
                plain_pipeline(args, root, device, bs, precision, kind)
                if "plain" not in args.skip
                else (float("nan"), float("nan"))
            )
            ours, firsts = recipe(args, root, device, bs, precision, kind, augment=False)
            augmented = (
                recipe(args, root, device, bs, precision, kind, augment=True)[0]
                if "augment" not in args.skip
                else float("nan")
            )
            loader = loader_alone(args, root, device, bs)
            rows.append(
                [
                    f"{bs}, {precision}",
                    _rate(alone),
                    _rate(plain),
                    f"{_rate(ours)} ({ours / alone:.2f}x, {_ratio(ours, plain)} plain)",
                    f"{_rate(augmented)} ({_ratio(augmented, ours)})",
                    _rate(loader),
                    f"{_rate(plain_loader)} ({_ratio(loader, plain_loader)})",
                ]
            )
            first_batches.append([f"{bs}, {precision}", ", ".join(f"{f:.3f}" for f in firsts)])
            if "breakdown" not in args.skip:
                details.append((bs, precision, *breakdown(args, root, device, bs, precision, kind)))
    table(
        "Clips/s during training (epochs after the first; x: against the model alone / the plain pipeline)",
        [
            "batch size, precision",
            "model alone",
            "torch DataLoader + torchaudio",
            "fastai_audio recipe",
            "+ audio_aug_tfms() (x recipe)",
            "fastai_audio loader alone",
            "plain DataLoader alone (x)",
        ],
        rows,
    )
    table(
        "Time to the first batch of each epoch after the first (s)", ["batch size, precision", "seconds"], first_batches
    )
    for bs, precision, per_batch, syncs in details:
        total = sum(per_batch.values())
        table(
            f"Where a training batch's time goes (bs {bs}, {precision}; ms, the device synchronised after each step)",
            ["step", "ms", "share"],
            [[name, f"{ms:.2f}", f"{ms / total:.0%}"] for name, ms in per_batch.items()]
            + [["total", f"{total:.2f}", "100%"]],
        )
        if syncs:
            table(
                f"Host-device synchronisations per training batch (bs {bs}, {precision})",
                ["where", "per batch"],
                [[k, f"{v:.2f}"] for k, v in syncs.most_common()],
            )
    if device.type == "cpu":
        print(
            "\nCPU goals: the recipe's loop <= 1.2x the plain loop's per-batch cost, the loader >= 1.5x the plain "
            f"DataLoader at {args.workers} workers (the two tables below). On a CPU the table above measures mostly "
            "the front-end (the CPU is the device there): the GPU goals need a GPU."
        )
        cpu_loop(args, root, device)


def cpu_loop(args, root, device):
    """The recipe's training loop against the plain loop on the same batches (made once, in memory): per-batch ms;
    and the recipe's loader against a plain DataLoader, raw audio batches (no front-end: on a CPU the front-end is
    the device's work, not the loader's)."""
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader

    bs = args.bs[0]
    dls = recipe_dls(root, bs, 0, device, augment=False)
    batches = [(x.as_subclass(torch.Tensor).clone(), y) for x, y in dls.train][:40]
    fixed = DataLoaders(DataLoader(batches, bs=None), DataLoader(batches[:1], bs=None))
    plain_batches = [(x, y.as_subclass(torch.Tensor)) for x, y in batches]
    contenders = {
        "recipe (fastai loop, audio_learner's optimiser)": lambda: _recipe_loop(dls, fixed, device, bs),
        "plain loop (torch AdamW)": lambda: _plain_loop(plain_batches, device),
    }
    rows = {name: [] for name in contenders}
    for _ in range(5):  # rounds, alternating: a slow spell of the machine falls on both
        for name, run in contenders.items():
            rows[name].append(run())
    results = {name: statistics.median(v) for name, v in rows.items()}
    base = results["plain loop (torch AdamW)"]
    table(
        f"CPU: the training loop alone on {len(batches)} in-memory log-mel batches of {bs} (tiny network; median ms "
        "per batch of 5 rounds)",
        ["loop", "ms per batch", "x plain"],
        [[k, f"{v:.2f}", f"{v / base:.2f}"] for k, v in results.items()],
    )

    from fastai_audio.data import AudioDataLoaders

    raw = AudioDataLoaders.from_folder(root, bs=bs, num_workers=args.workers, seed=0).train
    plain = torch_loader(root, bs, args.workers, device)
    packed = AudioDataLoaders.from_packed(packed_cache(root), bs=bs, num_workers=args.workers, seed=0).train
    loaders = {
        "fastai_audio dls.train (raw audio)": raw,
        "fastai_audio from_packed (raw audio)": packed,
        "plain DataLoader (soundfile per item)": plain,
    }
    rates = {name: [] for name in loaders}
    for _ in range(4):
        for name, dl in loaders.items():
            start, n = time.perf_counter(), 0
            for x, _ in dl:
                n += len(x)
            rates[name].append(n / (time.perf_counter() - start))
    rates = {k: statistics.median(v[1:]) for k, v in rates.items()}  # (the first round starts the workers)
    base = rates["plain DataLoader (soundfile per item)"]
    table(
        f"CPU: loaders alone, raw audio batches of {bs}, {args.workers} workers (median clips/s of rounds 2-4)",
        ["loader", "clips/s", "x plain"],
        [[k, f"{v:,.0f}", f"{v / base:.2f}"] for k, v in rates.items()],
    )
    raw.close()
    packed.close()


def _recipe_loop(dls, fixed, device, bs) -> float:
    learn = recipe_learner(dls, "tiny", "fp32", False)
    learn.dls = fixed
    timer = _Timer(device)
    with learn.no_logging():
        learn.fit(2, 1e-3, cbs=timer.cb)
    return 1000 * bs / timer.epochs[-1][0]


def _plain_loop(batches, device) -> float:
    model = make_network("tiny").train()
    opt = plain_optimizer(model, device)
    plain_steps(model, opt, batches, device, "fp32")
    return 1000 * plain_steps(model, opt, batches, device, "fp32") / len(batches)


if __name__ == "__main__":
    sys.exit(main())
