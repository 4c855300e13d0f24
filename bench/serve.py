"""Serving: the exported ONNX graph and the HTTP server under load, on loopback only.

1. Single-request latency, one 4 s clip, resnet18: ``OnnxClassifier.predict(path)`` (decode + graph) against
   eager ``learn.predict(path)`` in the same run (goals: p50 <= 10 ms and <= 0.6x eager).
2. Throughput: ``--clients`` concurrent clients (keep-alive connections) for ``--seconds`` against a real
   ``fastai-audio serve`` process, with micro-batching and without (goals: >= 100 requests/s, >= 2x without
   batching, 0 errors).
3. Long files: windows per second through the runtime over a 10-minute recording, 4 s windows, hop 2 s (goal:
   >= 300x real time).
4. Memory: the server's RSS after ``--requests`` requests against after the first 100 (goal: <= 1.1x).
5. Abuse: ``--abuse-clients`` well-behaved clients for ``--seconds`` against the same server alone, then while 200
   stalled connections (reopened as the server closes them) and a stream of hostile requests (query strings out of
   bounds, a 16 KB WAV at 8,001 Hz, a FLAC declaring 655,350 Hz x 8 channels, truncated audio, a broken multipart
   body) hit it. Goals: 0 errors and p99 <= 3x the p99 without abuse for the well-behaved clients; the server's RSS
   never above 1.5x its steady state; every hostile request answered 4xx within 1 s.

Run: ``python bench/serve.py [--seconds 30] [--clients 16] [--requests 10000] [--parts abuse ...]``.
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
from fastai_audio.runtime import OnnxClassifier
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
        cmd = [
            sys.executable,
            "-m",
            "fastai_audio.cli",
            "serve",
            str(model),
            "--port",
            str(self.port),
            "--max-batch",
            str(max_batch),
        ]
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


PARTS = ("latency", "abuse")  # (latency runs parts 1-4, as before)


def hostile_requests(body: bytes) -> list:
    """``(name, path, body, headers)`` of requests an attacker sends (issue 22, items 1-4)."""
    import io

    import soundfile as sf

    def audio(frames, rate, channels, fmt="WAV"):
        buf = io.BytesIO()
        sf.write(buf, np.zeros((frames, channels), np.int16), rate, format=fmt)
        return buf.getvalue()

    return [
        ("hop=1e-300", "/predict?window=1&hop=1e-300", body, {}),
        ("window=1e-6", "/predict?window=1e-6", body, {}),
        ("window=1e9", "/predict?window=1e9", body, {}),
        ("window=inf", "/predict?window=inf", body, {}),
        ("16 KB WAV at 8,001 Hz (valid: 200)", "/predict", audio(8000, 8001, 1), {}),
        ("FLAC, 655,350 Hz x 8 ch, 27 s", "/predict", audio(655350 * 27, 655350, 8, "FLAC"), {}),
        ("WAV cut to 60 bytes", "/predict", body[:60], {}),
        ("WAV, half its data", "/predict", body[: len(body) // 2], {}),
        ("broken multipart", "/predict", b"--x\r\nbroken", {"Content-Type": "multipart/form-data; boundary=x"}),
    ]


def abuse(model: Path, body: bytes, clients: int, seconds: float):
    """Part 5 (see the module's notes)."""
    server = Server(model, 16)
    try:
        load(server.port, body, clients, requests=2 * clients)  # warm up
        calm = load(server.port, body, clients, seconds=seconds)
        steady = server.rss_mb()
        stop, stalled, hostile, rss = threading.Event(), [0], [], [steady]

        def stall():  # 200 connections that send nothing, reopened as the server closes them
            socks = []
            while not stop.is_set():
                socks = [s for s in socks if s.fileno() >= 0]
                while len(socks) < 200:
                    try:
                        socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
                        stalled[0] += 1
                    except OSError:
                        break
                for s in list(socks):
                    s.setblocking(False)
                    try:
                        if s.recv(1) == b"":
                            s.close()
                    except BlockingIOError:
                        pass
                    except OSError:
                        s.close()
                time.sleep(0.5)
            for s in socks:
                s.close()

        def attack():
            requests = hostile_requests(body)
            while not stop.is_set():
                for name, path, data, headers in requests:
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                    t = time.perf_counter()
                    try:
                        conn.request("POST", path, body=data, headers=headers)
                        status = conn.getresponse().status
                    except OSError as err:
                        status = repr(err)
                    hostile.append((name, status, time.perf_counter() - t))
                    conn.close()

        def watch():
            while not stop.is_set():
                rss.append(server.rss_mb())
                time.sleep(0.2)

        threads = [threading.Thread(target=f) for f in (stall, attack, watch)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        under = load(server.port, body, clients, seconds=seconds)
        stop.set()
        for t in threads:
            t.join()
    finally:
        server.close()
    print(f"## Abuse: {clients} well-behaved clients for {seconds:g} s, alone and under attack\n")
    print("| run | requests/s | p50 (ms) | p99 (ms) | requests | errors |")
    print("|---|---|---|---|---|---|")
    for name, r in (("alone", calm), ("with 200 stalled connections + hostile requests", under)):
        print(f"| {name} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['n']} | {r['errors']} |")
    print("\n| hostile request | sent | statuses | slowest (s) |")
    print("|---|---|---|---|")
    for name, *_ in hostile_requests(body):
        got = [(st, dt) for n, st, dt in hostile if n == name]
        statuses = sorted({str(st) for st, _ in got})
        print(f"| {name} | {len(got)} | {', '.join(statuses)} | {max((dt for _, dt in got), default=0):.2f} |")
    valid = "(valid: 200)"  # a costly but well-formed request: answered, with its cost bounded
    four = all(
        isinstance(st, int) and (st == 200 if valid in n else 400 <= st < 500) and dt <= 1.0 for n, st, dt in hostile
    )
    ratio, peak = under["p99"] / calm["p99"], max(rss) / steady
    print(f"\nconnections opened by the stallers: {stalled[0]} (the server closes each after 10 s of silence)")
    print(
        f"goal 0 errors: {'met' if under['errors'] == 0 else 'MISSED'} ({under['errors']}); goal p99 <= 3x alone: "
        f"{'met' if ratio <= 3 else 'MISSED'} ({ratio:.2f}x); goal RSS <= 1.5x steady: "
        f"{'met' if peak <= 1.5 else 'MISSED'} ({steady:.0f} -> {max(rss):.0f} MB, {peak:.2f}x); goal every "
        f"hostile request answered within 1 s (4xx; the valid one 200): {'met' if four and hostile else 'MISSED'} "
        f"({len(hostile)} sent)\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="single-request timings")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each throughput run")
    parser.add_argument("--requests", type=int, default=10000, help="requests for the memory run")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long recording")
    parser.add_argument("--abuse-clients", type=int, default=64, help="well-behaved clients of the abuse run")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS, help="which parts to run")
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
    print(
        f"# bench/serve.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
        f"{__import__('onnxruntime').__version__}"
    )
    print(f"resnet18 from scratch, {dls.c} classes, 4 s clips at 16 kHz; loopback only\n")

    clf = OnnxClassifier(model)
    body = clip.read_bytes()
    if "abuse" in args.parts:
        abuse(model, body, args.abuse_clients, args.seconds)
    if "latency" not in args.parts:
        return
    # 1. latency
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
    print(
        f"\ngoal p50 <= 10 ms: {'met' if statistics.median(onnx_ms) <= 10 else 'MISSED'} "
        f"({statistics.median(onnx_ms):.1f} ms); goal <= 0.6x eager: {'met' if ratio <= 0.6 else 'MISSED'} "
        f"({ratio:.2f}x)\n"
    )

    # 2. throughput
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
    print(
        f"\ngoal >= 100 requests/s: {'met' if on['rps'] >= 100 else 'MISSED'} ({on['rps']:.1f}); goal >= 2x "
        f"without batching: {'met' if on['rps'] >= 2 * off['rps'] else 'MISSED'} ({on['rps'] / off['rps']:.2f}x); "
        f"errors: {on['errors'] + off['errors']}\n"
    )

    # 3. long files
    long = long_recording(root, test_files, args.minutes)
    clf.predict_windows(long, window=4.0, hop=2.0)
    t = time.perf_counter()
    res = clf.predict_windows(long, window=4.0, hop=2.0)
    took = time.perf_counter() - t
    print(f"## predict_windows through the runtime, a {res['duration'] / 60:.0f}-minute file, 4 s windows, hop 2 s\n")
    speed = res["duration"] / took
    print(
        f"{len(res['starts'])} windows in {took:.2f} s: {len(res['starts']) / took:.0f} windows/s, {speed:.0f}x "
        f"real time (goal >= 300x: {'met' if speed >= 300 else 'MISSED'})\n"
    )

    # 4. memory
    server = Server(model, 16)
    try:
        load(server.port, body, args.clients, requests=100)
        first = server.rss_mb()
        load(server.port, body, args.clients, requests=args.requests)
        after = server.rss_mb()
    finally:
        server.close()
    print(
        f"## Server memory\n\nRSS after 100 requests {first:.0f} MB, after {args.requests} more {after:.0f} MB: "
        f"{after / first:.3f}x (goal <= 1.1x: {'met' if after / first <= 1.1 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
