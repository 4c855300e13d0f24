"""Inference speed: ``learn.predict`` latency, batch prediction over many files, windowed prediction over a long file.

A 1-channel resnet18 (random weights: speed does not depend on them) on the ``nsynth`` log-mel front-end (16 kHz,
4 s clips, 64 mels). Every row is compared with a baseline measured in the same run:

- ``predict(path)``: p50/p95 over ``--runs`` calls on a 4 s file, against fastai's own ``Learner.predict`` on the
  same learner and file, and against the network alone on a ready spectrogram (the floor no predict can beat).
  Goal: p50 <= 15 ms on CPU (the seed's production figure was 30-50 ms).
- ``predict_files``: files/s over the test split, against the network alone on ready batches of the same size.
- ``predict_windows``: x real time over a 10-minute recording (4 s windows, hop 2 s and 4 s). Goal: >= 200x on CPU.

Run: ``make bench`` or ``python bench/inference.py [--runs 100] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from fastai.learner import Learner
from torchvision.models import resnet18

from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth
from fastai_audio.inference import predict_files, predict_windows
from fastai_audio.learner import audio_learner
from fastai_audio.transforms import mel_transforms

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"


def timings_ms(fn, runs: int, warmup: int = 5, sync=lambda: None) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - start) * 1e3)
    return np.array(out)


def long_recording(root: Path, files: list, minutes: float = 10.0, sample_rate: int = 16000) -> Path:
    """A ``minutes``-long 16 kHz file made of rendered notes one after another (cached)."""
    path = CACHE / f"long_{minutes:g}min.wav"
    if not path.exists():
        n = int(minutes * 60 * sample_rate)
        parts, total = [], 0
        for f in files * (1 + n // (len(files) * 3 * sample_rate)):
            data, _ = sf.read(str(f), dtype="float32")
            parts.append(data[: 3 * sample_rate])
            total += len(parts[-1])
            if total >= n:
                break
        sf.write(str(path), np.concatenate(parts)[:n], sample_rate, subtype="PCM_16")
    return path


def onnx_predict_ms(learn, clip, runs: int):
    """Timings of ``OnnxClassifier.predict(path)``: the exported graph (spectrogram and network) from the file,
    decoding included, as ``predict(path)`` is timed; ``None`` without the serve extra."""
    try:
        from fastai_audio.export import export_onnx
        from fastai_audio.runtime import OnnxClassifier
    except ImportError:
        print("(onnxruntime not installed: no ONNX row; pip install 'fastai_audio[serve]')")
        return None
    clf = OnnxClassifier(export_onnx(learn, CACHE / "inference_bench.onnx"))
    return timings_ms(lambda: clf.predict(clip), runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="predict calls timed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long recording")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    root = synth_nsynth(CACHE / "nsynth_small", size="small", progress=False)
    dls = AudioDataLoaders.from_nsynth(root, bs=64, num_workers=0, batch_tfms=mel_transforms("nsynth"), device=device)
    torch.manual_seed(0)
    learn = audio_learner(dls, resnet18, pretrained=False)
    learn.model.to(device).eval()
    test_files = list(read_nsynth(root, splits=["test"]).fname)
    clip = test_files[0]
    print(
        f"# bench/inference.py  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}"
    )
    print(f"resnet18, 1 channel, {dls.c} classes; input {tuple(dls.one_batch()[0].shape[1:])} per 4 s clip\n")

    # 1. predict(path) latency
    spec = dls.valid.one_batch()[0][:1].as_subclass(torch.Tensor).contiguous()
    with learn.no_bar():
        with torch.inference_mode():
            floor = timings_ms(lambda: learn.model(spec), args.runs, sync=sync)
        ours = timings_ms(lambda: learn.predict(clip), args.runs, sync=sync)
        fastai = timings_ms(lambda: Learner.predict(learn, clip), max(10, args.runs // 4), sync=sync)
    rows = [
        ("learn.predict (fastai_audio)", ours),
        ("fastai's Learner.predict", fastai),
        ("network alone on a ready spectrogram (floor)", floor),
    ]
    onnx_ms = onnx_predict_ms(learn, clip, args.runs) if device.type == "cpu" else None
    if onnx_ms is not None:
        rows.append(("OnnxClassifier.predict(path) (export_onnx; decoding included)", onnx_ms))
    print("## predict(path), one 4 s file\n")
    print("| | p50 (ms) | p95 (ms) | p50 × ours |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {np.median(t):.1f} | {np.percentile(t, 95):.1f} | {np.median(t) / np.median(ours):.2f} |")
    p50 = float(np.median(ours))
    print(
        f"\ngoal p50 <= 15 ms: {'met' if p50 <= 15 else 'NOT met'} ({p50:.1f} ms; the network alone takes "
        f"{np.median(floor):.1f} ms, the rest of predict {p50 - np.median(floor):.1f} ms)\n"
    )

    # 2. batch prediction over many files
    files = test_files * max(1, 256 // len(test_files))
    with learn.no_bar():
        start = time.perf_counter()
        predict_files(learn, files, bs=64)
        files_s = len(files) / (time.perf_counter() - start)
    batch = dls.valid.one_batch()[0].as_subclass(torch.Tensor).contiguous()
    with torch.inference_mode():
        net = timings_ms(lambda: learn.model(batch), 5, warmup=1, sync=sync)
    net_s = len(batch) / (statistics.median(net) / 1e3)
    print(f"## predict_files, {len(files)} files, bs=64\n")
    print("| | files/s | × network alone |")
    print("|---|---|---|")
    print(f"| predict_files | {files_s:.0f} | {files_s / net_s:.2f} |")
    print(f"| network alone on ready batches of 64 | {net_s:.0f} | 1.00 |\n")

    # 3. windowed prediction over a long recording
    long = long_recording(root, test_files, args.minutes)
    seconds = sf.info(str(long)).duration
    print(f"## predict_windows over a {seconds / 60:.0f}-minute file (4 s windows)\n")
    print("| hop (s) | windows | time (s) | × real time |")
    print("|---|---|---|---|")
    speeds = {}
    for hop in (2.0, 4.0):
        with learn.no_bar():
            start = time.perf_counter()
            res = predict_windows(learn, long, hop=hop, bs=64)
            took = time.perf_counter() - start
        speeds[hop] = seconds / took
        print(f"| {hop:g} | {len(res.starts)} | {took:.2f} | {speeds[hop]:.0f} |")
    print(
        f"\ngoal >= 200x real time (default hop 2 s): {'met' if speeds[2.0] >= 200 else 'NOT met'} ({speeds[2.0]:.0f}x)"
    )


if __name__ == "__main__":
    main()
