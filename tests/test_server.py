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
from fastai_audio.serve import OnnxClassifier  # noqa: E402
from fastai_audio.server import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    for i in range(8):
        for label, freq in (("low", 220.0), ("high", 880.0)):
            write(root / label / f"{label}_{i}.wav", sine(freq, 16000, 1.0), 16000)
    dls = AudioDataLoaders.from_folder(root, valid_pct=0.25, seed=0, duration=1.0, bs=4,
                                       batch_tfms=mel_transforms("speech", n_mels=32))  # fmt: skip
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


@pytest.mark.parametrize("body, status, reason", [
    (b"", 400, "is empty"),
    (b"this is not audio at all" * 10, 415, "not audio"),
    (wav_bytes()[:44], 422, "is truncated"),  # a WAV header whose samples are missing
    (wav_bytes(0.0), 422, "holds no samples"),  # a WAV of no samples
    (wav_bytes(40.0, 8000), 413, "40.0 s long, more than the limit of 30 s"),
])  # fmt: skip
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
@given(data=st.one_of(st.binary(max_size=4096),
                      st.builds(lambda cut, junk: wav_bytes(0.3)[:cut] + junk, st.integers(0, 12000),
                                st.binary(max_size=64))))  # fmt: skip
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
    proc = subprocess.Popen([sys.executable, "-m", "fastai_audio.cli", "serve", str(path), "--port", str(port)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
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
