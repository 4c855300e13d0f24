"""Scaling out: streaming from shards against files, memory against data set size, and 1 against N processes.

Three measurements, each against a baseline taken in the same run:

1. Streaming throughput: clips/s through ``dls.train`` reading WebDataset shards (local disk, and a loopback HTTP
   server) against the same clips as files, same batch size and workers (goal: shards >= 0.9x files).
2. Memory: peak RSS of one training epoch of a fixed number of batches (main process + its largest worker) with
   the data set 1x and 10x larger (goal: <= 1.1x for streamed shards; file loaders hold a list of paths).
3. Scaling: training steps/s of 1 and of N processes (``torchrun``; gloo on CPUs, nccl with ``--gpus N``) at the
   same batch size per process.

Run: ``python bench/scale.py [--size medium] [--workers 2] [--procs 2] [--gpus N]``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from loader import loader_rate, print_table, round_robin

from fastai_audio.data import AudioDataLoaders, read_shard_index, write_shards
from fastai_audio.datasets import synth_nsynth

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
ROOT = Path(__file__).resolve().parents[1]


def shards_of(root: Path, dest: Path, shard_size: str) -> Path:
    """``root`` (an NSynth-format set) written as shards once, FLAC in ``dest`` and the WAV files' own bytes in
    ``dest`` + ``_original``; cached."""
    for folder, fmt in ((dest, "flac"), (dest.with_name(dest.name + "_original"), "original")):
        if not (folder / "index.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            write_shards(
                AudioDataLoaders.from_nsynth(root, bs=1, duration=None),
                folder,
                shard_size=shard_size,
                format=fmt,
                progress=False,
            )
    return dest


def urls(dest: Path, split: str, base: str | None = None) -> list[str]:
    info = read_shard_index(dest / "index.json")
    return [f"{base or dest}/{s['name']}" for s in info["splits"][split]["shards"]]


def shard_dls(dest: Path, bs: int, workers: int, base: str | None = None, **kwargs):
    index = f"{base}/index.json" if base else dest / "index.json"
    return AudioDataLoaders.from_shards(
        urls(dest, "train", base),
        urls(dest, "valid", base),
        index=index,
        bs=bs,
        num_workers=workers,
        duration=4.0,
        **kwargs,
    )


def serve(folder: Path):
    """A loopback HTTP server of ``folder``; returns (base URL, server)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a training stream stops reading mid-shard when its epoch is full: the client hangs up

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def throughput(root: Path, dest: Path, bs: int, workers: int, repeats: int):
    files = AudioDataLoaders.from_nsynth(root, bs=bs, num_workers=workers, duration=4.0)
    n = len(files.train_ds)
    base, server = serve(dest)
    local = shard_dls(dest, bs, workers, shuffle_buffer=256)
    remote = shard_dls(dest, bs, workers, base=base, shuffle_buffer=256)
    original = shard_dls(dest.with_name(dest.name + "_original"), bs, workers, shuffle_buffer=256)
    contenders = {
        f"files: dls.train, num_workers={workers}": lambda: loader_rate(files.train),
        f"shards (FLAC), local disk, num_workers={workers}": lambda: loader_rate(local.train),
        f"shards (FLAC), loopback HTTP, num_workers={workers}": lambda: loader_rate(remote.train),
        f"shards (WAV bytes), local disk, num_workers={workers}": lambda: loader_rate(original.train),
    }
    rows = round_robin(contenders, repeats)
    print_table(
        f"{n} NSynth-format clips of 4 s at 16 kHz, bs={bs}, one epoch each (median of {repeats})",
        rows,
        next(iter(contenders)),
        ratio="x files",
    )
    server.shutdown()
    files_rate = statistics.median(rows[next(iter(contenders))])
    best = max(statistics.median(rows[name]) for name in list(contenders)[1:] if "HTTP" not in name)
    verdict = "MET" if best >= 0.9 * files_rate else "MISSED"
    print(f"\ngoal: shards (local disk) >= 0.9x files: {best / files_rate:.2f}x -> {verdict}")


# ---- memory: one epoch in a child process, measured by the kernel's peak RSS -----------------------------------


def _epoch_memory(args):
    """Child: build the loaders, run ``--batches`` training batches, print peak RSS (self + largest child)."""
    kind, dest, copies, batches, bs, workers = args.kind, Path(args.data), args.copies, args.batches, args.bs, 2
    if kind == "shards":
        dls = AudioDataLoaders.from_shards(
            urls(dest, "train") * copies,
            urls(dest, "valid"),
            index=dest / "index.json",
            bs=bs,
            num_workers=workers,
            duration=4.0,
            epoch_size=batches * bs,
            shuffle_buffer=256,
        )
    else:
        from fastai_audio.datasets import read_nsynth

        df = read_nsynth(dest, splits=["train", "valid"])
        df = df.loc[df.index.repeat(copies)].reset_index(drop=True)
        df = df.assign(is_valid=df["split"] == "valid")
        dls = AudioDataLoaders.from_df(
            df, dest, "fname", "instrument_family_str", valid_col="is_valid", bs=bs, num_workers=workers, duration=4.0
        )
    for i, _ in enumerate(dls.train):
        if i + 1 >= batches:
            break
    for dl in dls.loaders:  # (workers are counted once they have exited and been waited for)
        getattr(dl, "close", lambda: None)()
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"self_mb": me / 1024, "child_mb": kids / 1024, "items": len(dls.train_ds)}))


def memory(root: Path, dest: Path, bs: int, batches: int):
    rows = {}
    for kind, data in (("files", root), ("shards", dest)):
        for copies in (1, 10):
            cmd = [
                sys.executable,
                __file__,
                "--_memory",
                kind,
                "--data",
                str(data),
                "--copies",
                str(copies),
                "--batches",
                str(batches),
                "--bs",
                str(bs),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=_env())
            if out.returncode:
                raise RuntimeError(out.stderr[-3000:])
            rows[(kind, copies)] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nPeak RSS of {batches} training batches of {bs} (2 workers), data set 1x and 10x (MB)")
    print("| loader | items 1x | main 1x | worker 1x | main 10x | worker 10x | total 10x / 1x |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("files", "shards"):
        a, b = rows[(kind, 1)], rows[(kind, 10)]
        ratio = (b["self_mb"] + b["child_mb"]) / (a["self_mb"] + a["child_mb"])
        print(
            f"| {kind} | {a['items']} | {a['self_mb']:.0f} | {a['child_mb']:.0f} | {b['self_mb']:.0f} | "
            f"{b['child_mb']:.0f} | {ratio:.3f} |"
        )
        if kind == "shards":
            verdict = "MET" if ratio <= 1.1 else "MISSED"
            print(f"\ngoal: streamed shards' peak RSS 10x / 1x <= 1.1: {ratio:.3f} -> {verdict}")


# ---- scaling: steps/s of 1 and N processes -----------------------------------------------------------------------


def _train_steps(args):
    """Child (one rank): train ``--steps`` steps of resnet18 on the shards; rank 0 prints steps/s."""
    from fastai.callback.core import Callback
    from fastai.torch_core import rank_distrib
    from torchvision.models import resnet18

    from fastai_audio.learner import audio_learner
    from fastai_audio.transforms import mel_transforms

    dest = Path(args.data)
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if args.gpus else "cpu"
    if args.gpus:
        torch.cuda.set_device(device)
    dls = AudioDataLoaders.from_shards(
        urls(dest, "train"),
        urls(dest, "valid"),
        index=dest / "index.json",
        bs=args.bs,
        num_workers=args.workers,
        duration=4.0,
        device=device,
        epoch_size=args.steps * args.bs * int(os.environ.get("WORLD_SIZE", 1)),
        batch_tfms=mel_transforms("nsynth"),
        shuffle_buffer=256,
    )
    learn = audio_learner(dls, resnet18, pretrained=False)
    times = []

    class Clock(Callback):
        def after_batch(self):
            if self.training:
                if args.gpus:
                    torch.cuda.synchronize()
                times.append(time.perf_counter())

    with learn.no_bar(), learn.no_logging(), learn.distrib_ctx():
        learn.fit(1, 1e-3, cbs=Clock())
    if rank_distrib() == 0:
        warm = times[2:]  # the first steps build the workers and warm up
        print(json.dumps({"steps_per_s": (len(warm) - 1) / (warm[-1] - warm[0])}))


def scaling(dest: Path, procs: int, bs: int, steps: int, workers: int, gpus: int):
    rows = {}
    for n in sorted({1, procs}):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
        cmd = [
            *launcher,
            __file__,
            "--_train",
            "--data",
            str(dest),
            "--bs",
            str(bs),
            "--steps",
            str(steps),
            "--workers",
            str(workers),
            "--gpus",
            str(gpus),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=_env(threads=not gpus and n))
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        rows[n] = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])["steps_per_s"]
    where = f"{gpus} GPU(s)" if gpus else f"this machine's {os.cpu_count()} CPU cores"
    print(f"\nTraining steps/s, resnet18 on 4 s log-mels, bs={bs} per process, {steps} steps, on {where}")
    print("| processes | steps/s | clips/s | clips/s x 1 process |")
    print("|---|---|---|---|")
    for n, rate in rows.items():
        print(f"| {n} | {rate:.2f} | {rate * bs * n:.1f} | {rate * n / rows[1]:.2f} |")


def _env(threads=None) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    if threads:  # split the CPU cores between the processes
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(threads)))
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("small", "medium", "full"))
    parser.add_argument("--shard-size", default="20MB")
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2, help="processes for the scaling run")
    parser.add_argument("--steps", type=int, default=30, help="training steps for the scaling run")
    parser.add_argument("--batches", type=int, default=40, help="batches for the memory run")
    parser.add_argument("--gpus", type=int, default=0, help="run the scaling part on this many GPUs (nccl)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("throughput", "memory", "scaling"))
    parser.add_argument("--_memory", dest="memory_kind", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_train", dest="train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_kind:
        args.kind = args.memory_kind
        return _epoch_memory(args)
    if args.train:
        return _train_steps(args)

    root = synth_nsynth(CACHE / f"nsynth_{args.size}", size=args.size, progress=False)
    dest = shards_of(root, CACHE / f"shards_{args.size}", args.shard_size)
    print(
        f"# bench/scale.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}{', ' + torch.cuda.get_device_name() if args.gpus else ''}"
    )
    info = read_shard_index(dest / "index.json")["splits"]["train"]
    print(f"shards: {len(info['shards'])} training shards of <= {args.shard_size} ({info['n']} clips)")
    if "throughput" not in args.skip:
        throughput(root, dest, args.bs, args.workers, args.repeats)
        throughput(root, dest, args.bs, 0, args.repeats)
    if "memory" not in args.skip:
        memory(root, dest, args.bs, args.batches)
    if "scaling" not in args.skip:
        scaling(dest, args.gpus or args.procs, min(args.bs, 32), args.steps, args.workers, args.gpus)


if __name__ == "__main__":
    main()
