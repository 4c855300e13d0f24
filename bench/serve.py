"""Serving: the exported ONNX graph and the HTTP server under load, on loopback only.

1. Single-request latency, one 4 s clip, resnet18: ``OnnxClassifier.predict(path)`` (decode + graph) against
   eager ``learn.predict(path)`` in the same run (goals: p50 <= 10 ms and <= 0.6x eager).
2. Throughput: ``--clients`` concurrent clients (keep-alive connections) for ``--seconds`` against a real
   ``fastai-audio serve`` process, with micro-batching and without (goals: >= 100 requests/s, >= 2x without
   batching, 0 errors).
3. Long files: windows per second through the runtime over a 10-minute recording, 4 s windows, hop 2 s (goal:
   >= 300x real time).
4. Memory: the server's RSS after ``--requests`` requests against after the first 100 (goal: <= 1.1x).

Run: ``python bench/serve.py [--seconds 30] [--clients 16] [--requests 10000]``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from inference import long_recording

from fastai_audio.data import AudioDataLoaders
from fastai_audio.datasets import read_nsynth, synth_nsynth
from fastai_audio.learner import audio_learner
from fastai_audio.serve import OnnxClassifier
from fastai_audio.transforms import mel_transforms

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
ROOT = Path(__file__).resolve().parents[1]


def percentiles(ms: list) -> tuple[float, float, float]:
    a = np.asarray(ms)
    return float(np.median(a)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``fastai-audio serve`` in a child process on a free loopback port."""

    def __init__(self, model: Path, max_batch: int):
        self.port = free_port()
        cmd = [sys.executable, "-m", "fastai_audio.cli", "serve", str(model), "--port", str(self.port),
               "--max-batch", str(max_batch)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/health")
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def load(port: int, body: bytes, clients: int, seconds: float = None, requests: int = None) -> dict:
    """``clients`` threads posting ``body`` for ``seconds`` (or ``requests`` in all): rates, latencies, errors."""
    latencies, errors, lock = [], [], threading.Lock()
    stop = time.perf_counter() + seconds if seconds else None
    left = [requests or 0]

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if stop is None:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
            if stop is not None and time.perf_counter() >= stop:
                return
            start = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "audio/wav"})
                res = conn.getresponse()
                res.read()
                ok = res.status == 200
            except OSError as err:
                ok, conn = False, http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                errors.append(repr(err))
            with lock:
                latencies.append((time.perf_counter() - start) * 1e3)
                if not ok:
                    errors.append("status")

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    p50, _, p99 = percentiles(latencies)
    return {"rps": len(latencies) / took, "p50": p50, "p99": p99, "n": len(latencies), "errors": len(errors)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="single-request timings")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each throughput run")
    parser.add_argument("--requests", type=int, default=10000, help="requests for the memory run")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long recording")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    root = synth_nsynth(CACHE / "nsynth_small", size="small", progress=False)
    dls = AudioDataLoaders.from_nsynth(root, bs=64, num_workers=0, batch_tfms=mel_transforms("nsynth"), device="cpu")
    torch.manual_seed(0)
    from torchvision.models import resnet18

    learn = audio_learner(dls, resnet18, pretrained=False)
    model = learn.export_onnx(CACHE / "serve_bench.onnx")
    test_files = list(read_nsynth(root, splits=["test"]).fname)
    clip = Path(test_files[0])
    print(f"# bench/serve.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
          f"{__import__('onnxruntime').__version__}")  # fmt: skip
    print(f"resnet18 from scratch, {dls.c} classes, 4 s clips at 16 kHz; loopback only\n")

    # 1. latency
    clf = OnnxClassifier(model)
    for _ in range(5):
        clf.predict(clip), learn.predict(clip)
    onnx_ms, eager_ms = [], []
    with learn.no_bar():
        # blocks of 20 calls, alternating: a slow spell of the machine falls on both, and neither runs while the
        # other's thread pool still spins (ONNX Runtime's and PyTorch's would share the two cores call by call)
        for _ in range(max(1, args.runs // 20)):
            for fn, out in ((lambda: clf.predict(clip), onnx_ms), (lambda: learn.predict(clip), eager_ms)):
                fn()
                for _ in range(20):
                    t = time.perf_counter()
                    fn()
                    out.append((time.perf_counter() - t) * 1e3)
    print("## Single request, one 4 s file (decode included)\n")
    print("| | p50 (ms) | p95 (ms) | p99 (ms) | p50 x eager |")
    print("|---|---|---|---|---|")
    for name, ms in (("OnnxClassifier.predict (ONNX Runtime)", onnx_ms), ("learn.predict (eager PyTorch)", eager_ms)):
        p50, p95, p99 = percentiles(ms)
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {p50 / statistics.median(eager_ms):.2f} |")
    ratio = statistics.median(onnx_ms) / statistics.median(eager_ms)
    print(f"\ngoal p50 <= 10 ms: {'met' if statistics.median(onnx_ms) <= 10 else 'MISSED'} "
          f"({statistics.median(onnx_ms):.1f} ms); goal <= 0.6x eager: {'met' if ratio <= 0.6 else 'MISSED'} "
          f"({ratio:.2f}x)\n")  # fmt: skip

    # 2. throughput
    body = clip.read_bytes()
    rows = {}
    for name, batch in (("micro-batching (max 16, 5 ms)", 16), ("no batching", 1)):
        server = Server(model, batch)
        try:
            load(server.port, body, args.clients, requests=50)  # warm up
            rows[name] = load(server.port, body, args.clients, seconds=args.seconds)
        finally:
            server.close()
    print(f"## Throughput: {args.clients} concurrent clients for {args.seconds:g} s\n")
    print("| server | requests/s | p50 (ms) | p99 (ms) | requests | errors |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['n']} | {r['errors']} |")
    on, off = rows["micro-batching (max 16, 5 ms)"], rows["no batching"]
    print(f"\ngoal >= 100 requests/s: {'met' if on['rps'] >= 100 else 'MISSED'} ({on['rps']:.1f}); goal >= 2x "
          f"without batching: {'met' if on['rps'] >= 2 * off['rps'] else 'MISSED'} ({on['rps'] / off['rps']:.2f}x); "
          f"errors: {on['errors'] + off['errors']}\n")  # fmt: skip

    # 3. long files
    long = long_recording(root, test_files, args.minutes)
    clf.predict_windows(long, window=4.0, hop=2.0)
    t = time.perf_counter()
    res = clf.predict_windows(long, window=4.0, hop=2.0)
    took = time.perf_counter() - t
    print(f"## predict_windows through the runtime, a {res['duration'] / 60:.0f}-minute file, 4 s windows, hop 2 s\n")
    speed = res["duration"] / took
    print(f"{len(res['starts'])} windows in {took:.2f} s: {len(res['starts']) / took:.0f} windows/s, {speed:.0f}x "
          f"real time (goal >= 300x: {'met' if speed >= 300 else 'MISSED'})\n")  # fmt: skip

    # 4. memory
    server = Server(model, 16)
    try:
        load(server.port, body, args.clients, requests=100)
        first = server.rss_mb()
        load(server.port, body, args.clients, requests=args.requests)
        after = server.rss_mb()
    finally:
        server.close()
    print(f"## Server memory\n\nRSS after 100 requests {first:.0f} MB, after {args.requests} more {after:.0f} MB: "
          f"{after / first:.3f}x (goal <= 1.1x: {'met' if after / first <= 1.1 else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
