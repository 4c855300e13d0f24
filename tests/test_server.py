"""The HTTP server (fastai_audio.server): every endpoint, every bad input, concurrency, and random bytes."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import sine, trained_resnet, write

pytest.importorskip("onnxruntime", reason="the server needs the serve extra")
pytest.importorskip("onnxscript")
pytest.importorskip("fastapi", reason="the server needs fastapi and uvicorn")
hypothesis = pytest.importorskip("hypothesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastai_audio.all import AudioDataLoaders, mel_transforms  # noqa: E402
from fastai_audio.runtime import OnnxClassifier  # noqa: E402
from fastai_audio.server import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    for i in range(8):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            write(root / label / f"{label}_{i}.wav", sine(freq, 16000, 1.0), 16000)
    dls = AudioDataLoaders.from_folder(
        root, valid_pct=0.25, seed=0, duration=1.0, bs=4, batch_tfms=mel_transforms("speech", n_mels=32)
    )
    return trained_resnet(dls).export_onnx(root / "model.onnx"), sorted(root.glob("*/*.wav"))


@pytest.fixture(scope="module")
def client(onnx_model):
    with TestClient(create_app(onnx_model[0], max_bytes=2_000_000, max_seconds=30)) as c:
        yield c


def wav_bytes(seconds=1.0, rate=16000, fmt="WAV", subtype=None, channels=1) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, sine(880.0, rate, seconds, channels=channels).T, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def test_health_labels_and_predict_raw_and_multipart(client, onnx_model):
    path, files = onnx_model
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/labels").json() == {"labels": ["high", "low"]}
    want = OnnxClassifier(path).predict(files[0])
    got = client.post("/predict", content=files[0].read_bytes()).json()
    assert got["label"] == want[0] and got["top"][0]["label"] == want[0]
    assert got["top"][0]["probability"] == pytest.approx(float(want[2].max()), abs=1e-5)
    multi = client.post("/predict?top_k=1", files={"file": ("a.flac", wav_bytes(fmt="FLAC"), "audio/flac")}).json()
    assert len(multi["top"]) == 1 and multi["label"] in ("high", "low")
    stereo_ogg = client.post("/predict", content=wav_bytes(2.0, 44100, "OGG", "VORBIS", channels=2))
    assert stereo_ogg.status_code == 200


def test_windows_give_the_taggram_of_a_long_recording(client):
    res = client.post("/predict?window=1&hop=0.5", content=wav_bytes(5.0)).json()
    assert res["starts"][:3] == [0.0, 0.5, 1.0] and len(res["probabilities"]) == len(res["starts"]) == 9
    assert res["labels"] == ["high", "low"] and len(res["clip_probabilities"]) == 2


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"", 400, "is empty"),
        (b"this is not audio at all" * 10, 415, "not audio"),
        (wav_bytes()[:44], 422, "is truncated"),  # a WAV header whose samples are missing
        (wav_bytes(0.0), 422, "holds no samples"),  # a WAV of no samples
        (wav_bytes(40.0, 8000), 413, "40.0 s long, more than the limit of 30 s"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_reason_and_the_server_keeps_serving(client, body, status, reason):
    res = client.post("/predict", content=body)
    assert res.status_code == status and reason in res.json()["error"]
    assert client.post("/predict", content=wav_bytes()).status_code == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    res = client.post("/predict", content=b"\0" * 2_100_000)
    assert res.status_code == 413 and "limit of 2000000" in res.json()["error"]
    assert client.post("/predict?window=-1", content=wav_bytes()).status_code == 422
    no_file = client.post("/predict", files={"note": (None, b"a text field, no file")})  # multipart, no file part
    assert no_file.status_code == 400 and "file field" in no_file.json()["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=4096),
        st.builds(lambda cut, junk: wav_bytes(0.3)[:cut] + junk, st.integers(0, 12000), st.binary(max_size=64)),
    )
)
def test_random_and_truncated_bytes_never_crash_the_server(client, data):
    res = client.post("/predict", content=data)
    assert res.status_code == 200 or 400 <= res.status_code < 500, (res.status_code, res.text[:200])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_uvicorn_server_answers_a_burst_of_concurrent_requests(onnx_model):
    path, files = onnx_model
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastai_audio.cli", "serve", str(path), "--port", str(port)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        body, statuses = files[0].read_bytes(), []

        def call():
            req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                statuses.append((r.status, json.loads(r.read())["label"]))

        threads = [threading.Thread(target=call) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(statuses) == 32 and {s for s, _ in statuses} == {200} and len({lab for _, lab in statuses}) == 1
    finally:
        proc.terminate()
        log = proc.communicate(timeout=10)[1]
    assert log.count("POST /predict 200") == 32  # one log line per request, with its latency


# ---- hostile requests (issue 22) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, reason",
    [
        ("hop=1e-300", "hop must be a number of seconds from 0.005"),
        ("window=1e-6", "window must be a number of seconds from 0.1"),
        ("window=0.01", "window must be a number of seconds from 0.1"),
        ("window=1e9", "window must be a number of seconds from 0.1 to 3600"),
        ("window=inf", "got inf"),
        ("window=nan", "got nan"),
        ("window=1&hop=-1", "hop must be"),
        ("window=3000", "window must be at most the 30 s"),
        ("top_k=abc", "top_k"),
        ("window=abc", "window"),
    ],
)
def test_a_query_string_out_of_bounds_gets_422_json_at_once(client, query, reason):
    res = client.post(f"/predict?{query}", content=wav_bytes())  # (before the fix, hop=1e-300 never came back)
    assert res.status_code == 422 and reason in res.json()["error"], res.text


def test_a_long_recording_with_a_tiny_hop_is_refused_before_any_window_is_made(client):
    res = client.post("/predict?window=1&hop=0.005", content=wav_bytes(25.0))  # 4,801 windows, more than 2,000
    assert res.status_code == 422 and "4801 windows, more than the 2000 allowed" in res.json()["error"]
    assert "hop of at least 0.012" in res.json()["error"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    window=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    hop=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    top_k=st.one_of(st.none(), st.integers(-(2**70), 2**70)),
)
def test_any_window_hop_and_top_k_get_an_answer_never_a_5xx(client, window, hop, top_k):
    params = {k: v for k, v in (("window", window), ("hop", hop), ("top_k", top_k)) if v is not None}
    res = client.post("/predict", params=params, content=wav_bytes(2.0))
    assert res.status_code in (200, 422), (params, res.status_code, res.text[:300])
    assert ("error" in res.json()) == (res.status_code == 422)


def test_decoded_samples_are_bounded_from_the_header(client):
    """170 KB of FLAC at 655,350 Hz with 8 channels would decode to 1.4 GB: refused before decoding."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros((655350 * 3, 8), np.int16), 655350, format="FLAC")
    assert len(buf.getvalue()) < 200_000
    res = client.post("/predict", content=buf.getvalue())
    assert res.status_code == 413 and "samples" in res.json()["error"], res.text


def test_decoding_runs_off_the_event_loop(onnx_model, monkeypatch):
    """A decode that waits until /health has been answered: on the event loop, neither could ever finish."""
    import fastai_audio.server as server

    started, answered = threading.Event(), threading.Event()

    def waits_for_health(*args, **kwargs):
        started.set()
        assert answered.wait(30), "/health was not answered while a request was being decoded"
        return real(*args, **kwargs)

    real = server.decode_bytes
    monkeypatch.setattr(server, "decode_bytes", waits_for_health)
    with TestClient(create_app(onnx_model[0])) as c:
        statuses = []
        worker = threading.Thread(target=lambda: statuses.append(c.post("/predict", content=wav_bytes()).status_code))
        worker.start()
        assert started.wait(30)
        assert c.get("/health").status_code == 200  # while the decode is still waiting
        answered.set()
        worker.join()
        assert statuses == [200]


def test_every_error_is_json_with_an_error_key(client):
    bad_form = client.post("/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"})
    assert bad_form.status_code == 400 and "error" in bad_form.json()
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    assert client.get("/predict").status_code == 405 and "error" in client.get("/predict").json()


def test_docs_are_off_unless_asked_and_health_tells_a_stuck_batcher(onnx_model):
    with TestClient(create_app(onnx_model[0])) as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
        batcher = c.app.state.batcher
        batcher.running_since = time.monotonic() - 120  # a model call that has hung for two minutes
        res = c.get("/health")
        assert res.status_code == 503 and "running for more than 60 s" in res.json()["reason"]
        batcher.running_since = None
        batcher.task.cancel()
        time.sleep(0.1)
        assert c.get("/health").json() == {"status": "unhealthy", "reason": "the batching loop has stopped"}
    with TestClient(create_app(onnx_model[0], docs=True)) as c:
        assert c.get("/openapi.json").status_code == 200


def _start_server(path, *args) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastai_audio.cli", "serve", str(path), "--port", str(port), *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc, port
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(proc.communicate()[1])


def test_stalled_and_slow_clients_are_cut_off_and_sigterm_drains(onnx_model):
    path, files = onnx_model
    proc, port = _start_server(path, "--header-timeout", "1", "--read-timeout", "1")
    try:
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]  # connect, send nothing
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\0" * 10)
        time.sleep(2.0)
        for s in stalled:
            s.settimeout(2)
            assert s.recv(100) == b""  # closed by the server
        slow.settimeout(5)
        assert b"408" in slow.recv(1000).split(b"\r\n")[0]
        body = files[0].read_bytes()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body, method="POST")
        assert urllib.request.urlopen(req, timeout=10).status == 200  # good clients are still served
    finally:
        start = time.perf_counter()
        proc.terminate()
        log = proc.communicate(timeout=30)[1]
    # uvicorn shuts down gracefully (within its 10 s), then re-raises SIGTERM so that the exit status tells why
    assert proc.returncode in (0, -15) and time.perf_counter() - start < 30 and "Traceback" not in log, log


def test_a_request_at_the_limits_allocates_a_bounded_amount(onnx_model):
    """docs/deploying.md: a request allocates at most 3 x its body + 12 bytes per decoded sample (measured: 39 MB for
    30 s of 48 kHz stereo, 5.8 MB of body); long windows are made a few at a time and their total is bounded."""
    import tracemalloc

    buf = io.BytesIO()
    noise = np.random.default_rng(0).standard_normal((30 * 48000, 2)) * 0.1
    sf.write(buf, noise.astype(np.float32), 48000, format="WAV", subtype="PCM_16")
    body = buf.getvalue()
    with TestClient(create_app(onnx_model[0], max_seconds=30, max_bytes=10 * 2**20)) as c:
        bound = 3 * len(body) + 12 * 30 * 48000 * 2
        for query in ("", "?window=1&hop=0.5", "?window=25&hop=0.05"):
            c.post(f"/predict{query}", content=body)  # (caches warm)
            tracemalloc.start()
            res = c.post(f"/predict{query}", content=body)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak <= bound, (query, peak / 1e6, bound / 1e6)
            if query.endswith("0.05"):  # 101 windows of 25 s: 2,525 s of audio for a model of 1 s clips
                assert res.status_code == 422 and "more than the 2000 s allowed" in res.json()["error"], res.text
            else:
                assert res.status_code == 200
