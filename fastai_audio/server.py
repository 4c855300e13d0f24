"""An HTTP server for exported models: FastAPI on uvicorn, ONNX Runtime, dynamic micro-batching.

    fastai-audio serve model.onnx --host 127.0.0.1 --port 8000 [--max-batch 16] [--max-wait-ms 5]

Endpoints: ``POST /predict`` (an audio file in any format soundfile reads, as the raw body or a multipart field
``file``; ``?top_k=3``; ``?window=4&hop=2`` for the per-window taggram of a long recording), ``GET /health``,
``GET /labels``. Concurrent requests for fixed-length models are batched together: the first one waits at most
``max_wait_ms`` for up to ``max_batch - 1`` others, then one ONNX Runtime call serves them all. Bad input gets a
4xx JSON ``{"error": ...}`` naming the reason, and a body longer than ``max_bytes`` is refused before it is read.
One log line per request (logger ``fastai_audio.server``) with its status and latency.

Needs the ``serve`` extra plus FastAPI and uvicorn: ``pip install "fastai_audio[serve]" fastapi uvicorn``.
"""

import asyncio
import contextlib
import logging
import time

import numpy as np

from .errors import AudioError, AudioTooLongError, EmptyAudioError, ImpossibleFormatError, UndecodableAudioError
from .serve import OnnxClassifier, decode_bytes

__all__ = ["create_app"]

log = logging.getLogger("fastai_audio.server")

# the status of each of the decode core's errors, the first class the error is an instance of (docs/deploying.md)
_STATUS = ((EmptyAudioError, 422), (AudioTooLongError, 413), (ImpossibleFormatError, 422),
           (UndecodableAudioError, 415), (AudioError, 422))  # fmt: skip


def _status(err: AudioError) -> int:
    return next(code for kind, code in _STATUS if isinstance(err, kind))


class _Batcher:
    """Collects prepared clips from concurrent requests and runs them through the model together."""

    def __init__(self, clf: OnnxClassifier, max_batch: int, max_wait: float):
        self.clf, self.max_batch, self.max_wait = clf, max_batch, max_wait
        self.queue: asyncio.Queue | None = None
        self.task = None

    def start(self):
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, clip):
        if self.max_batch <= 1 or self.clf.duration is None:  # whole clips of any length: one call each
            return (await asyncio.to_thread(self.clf.probabilities, clip[None]))[0]
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((clip, future))
        return await future

    async def _run(self):
        while True:
            items = [await self.queue.get()]
            deadline = time.perf_counter() + self.max_wait
            while len(items) < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            try:
                probs = await asyncio.to_thread(self.clf.probabilities, np.stack([c for c, _ in items]))
            except Exception as err:  # noqa: BLE001 - every waiting request gets the error, the loop goes on
                for _, future in items:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), p in zip(items, probs):
                if not future.done():
                    future.set_result(p)


def create_app(model, *, max_batch: int = 16, max_wait_ms: float = 5.0, max_bytes: int = 50 * 2**20,
               max_seconds: float = 600.0):  # fmt: skip
    """The FastAPI application serving ``model`` (an ``OnnxClassifier`` or the path of an ``.onnx`` file).

    Args:
        model: what to serve.
        max_batch: requests run together at most (1: no batching).
        max_wait_ms: how long the first request of a batch waits for others.
        max_bytes: the largest request body; larger ones get 413 before they are read.
        max_seconds: the longest recording accepted (413 beyond).

    Examples:
        >>> from fastapi.testclient import TestClient
        >>> with TestClient(create_app(learn.export_onnx("model.onnx"))) as client:
        ...     client.post("/predict", content=Path("note.wav").read_bytes()).json()["label"] in ("high", "low")
        True
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    clf = model if isinstance(model, OnnxClassifier) else OnnxClassifier(model)
    batcher = _Batcher(clf, max_batch, max_wait_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if clf.duration is not None:  # one full batch before the first request: ONNX Runtime sizes its memory
            # arena for the largest batch now, so the first requests are not slow and memory stays flat after
            clf.probabilities(np.zeros((max(1, max_batch), int(round(clf.duration * clf.sample_rate))), np.float32))
        batcher.start()
        yield

    app = FastAPI(title="fastai_audio", description=f"audio classifier {clf.path.name}", lifespan=lifespan)
    app.state.classifier, app.state.batcher = clf, batcher

    def error(status: int, reason: str):
        return JSONResponse({"error": reason}, status_code=status)

    @app.middleware("http")
    async def _log(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %d %.1f ms", request.method, request.url.path, response.status_code,
                 (time.perf_counter() - start) * 1e3)  # fmt: skip
        return response

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": clf.path.name, "classes": len(clf.labels), "sample_rate": clf.sample_rate}

    @app.get("/labels")
    async def labels():
        return {"labels": clf.labels}

    async def read_body(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return error(413, f"the request body is {int(declared)} bytes, more than the limit of {max_bytes}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                return error(413, f"the request body is more than the limit of {max_bytes} bytes")
        data = bytes(body)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await _parse_multipart(request, data)
            if isinstance(form, str):
                return error(400, form)
            data = form
        return data

    @app.post("/predict")
    async def predict(request: Request, top_k: int = 5, window: float | None = None, hop: float | None = None):
        data = await read_body(request)
        if isinstance(data, JSONResponse):
            return data
        if not data:
            return error(400, "the request body is empty (0 bytes): send the bytes of an audio file")
        try:
            wav, rate = decode_bytes(data, "the request body", max_seconds=max_seconds)  # (too long: refused from
            if wav.shape[-1] / rate > max_seconds:  # its header; a header that undercounts is caught here)
                raise AudioTooLongError("the request body", f"is {wav.shape[-1] / rate:.1f} s long, more than the "
                                        f"limit of {max_seconds:g} s")  # fmt: skip
            if window is not None or hop is not None:
                res = await asyncio.to_thread(clf.predict_windows, wav, window=window, hop=hop, sample_rate=rate)
                return {"label": res["label"], "labels": clf.labels, "window": res["window"],
                        "starts": res["starts"].tolist(), "probabilities": res["probs"].round(6).tolist(),
                        "clip_probabilities": res["clip_probs"].round(6).tolist()}  # fmt: skip
            clip = await asyncio.to_thread(clf.prepare, wav, rate)
        except AudioError as err:
            return error(_status(err), str(err))
        except ValueError as err:  # e.g. a window or hop that is not positive
            return error(422, str(err))
        probs = await batcher.submit(clip)
        order = np.argsort(-probs)[: max(1, top_k)]
        label, index = clf._decode(probs)
        return {"label": label, "index": index if isinstance(index, int) else index.tolist(),
                "top": [{"label": clf.labels[i], "probability": round(float(probs[i]), 6)} for i in order]}  # fmt: skip

    return app


async def _parse_multipart(request, body: bytes):
    """The bytes of the multipart field ``file`` (or the first file field), or the reason there is none."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, receive).form()
    field = form.get("file") or next((v for v in form.values() if isinstance(v, UploadFile)), None)
    if not isinstance(field, UploadFile):
        return "a multipart request needs a file field named 'file'"
    return await field.read()


def serve(model, host: str = "127.0.0.1", port: int = 8000, **kwargs):
    """Run the server with uvicorn (blocking)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(create_app(model, **kwargs), host=host, port=port, log_level="warning")
