"""An HTTP server for exported models: FastAPI on uvicorn, ONNX Runtime, dynamic micro-batching.

    fastai-audio serve model.onnx --host 127.0.0.1 --port 8000 [--max-batch 16] [--max-wait-ms 5]

Endpoints: ``POST /predict`` (an audio file in any format soundfile reads, as the raw body or a multipart field
``file``; ``?top_k=3``; ``?window=4&hop=2`` for the per-window taggram of a long recording), ``GET /health``,
``GET /labels``. Concurrent requests for fixed-length models are batched together: the first one waits at most
``max_wait_ms`` for up to ``max_batch - 1`` others, then one ONNX Runtime call serves them all. One log line per
request (logger ``fastai_audio.server``) with its status and latency.

Every request is treated as hostile, and what one can cost is bounded: its body (``max_bytes``, refused before it
is read when declared, and read within ``read_timeout``), the recording's length and its decoded samples x
channels (``max_seconds``, ``max_samples``, checked from the header before decoding), the windows a query string
asks for (``serve.check_windows``, ``max_windows``), and how many requests decode at once (``max_decoding``).
Decoding, resampling and the model run off the event loop, so ``/health`` answers while they work; ``/health``
says 503 when the batcher is stuck. Every error is JSON ``{"error": ...}`` with a 4xx status chosen by the error's
type. ``serve`` adds a deadline for a connection's request headers, a bound on connections, and a graceful
shutdown on SIGTERM.

Needs the ``serve`` extra plus FastAPI and uvicorn: ``pip install "fastai_audio[serve]" fastapi uvicorn``.
"""

import asyncio
import contextlib
import logging
import os
import time

import numpy as np

from .errors import (
    AudioError,
    AudioTooLongError,
    EmptyAudioError,
    ImpossibleFormatError,
    ParameterError,
    UndecodableAudioError,
)
from .runtime import OnnxClassifier, check_windows, decode_bytes

__all__ = ["create_app"]

log = logging.getLogger("fastai_audio.server")

# the status of each of the decode core's errors, the first class the error is an instance of (docs/deploying.md)
_STATUS = (
    (EmptyAudioError, 422),
    (AudioTooLongError, 413),
    (ImpossibleFormatError, 422),
    (UndecodableAudioError, 415),
    (AudioError, 422),
)


def _status(err: AudioError) -> int:
    return next(code for kind, code in _STATUS if isinstance(err, kind))


class _Batcher:
    """Collects prepared clips from concurrent requests and runs them through the model together."""

    def __init__(self, clf: OnnxClassifier, max_batch: int, max_wait: float):
        self.clf, self.max_batch, self.max_wait = clf, max_batch, max_wait
        self.queue: asyncio.Queue | None = None
        self.task = None
        self.running_since: float | None = None  # when the model call in progress started

    def stuck(self, after: float) -> str | None:
        """Why the batcher cannot serve (its loop ended, or one model call has run for more than ``after`` s)."""
        if self.task is not None and self.task.done():
            return "the batching loop has stopped"
        if self.running_since is not None and time.monotonic() - self.running_since > after:
            return f"a model call has been running for more than {after:g} s"
        return None

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
            self.running_since = time.monotonic()
            try:
                probs = await asyncio.to_thread(self.clf.probabilities, np.stack([c for c, _ in items]))
            except Exception as err:  # noqa: BLE001 - every waiting request gets the error, the loop goes on
                for _, future in items:
                    if not future.done():
                        future.set_exception(err)
                continue
            finally:
                self.running_since = None
            for (_, future), p in zip(items, probs):
                if not future.done():
                    future.set_result(p)


def create_app(
    model,
    *,
    max_batch: int = 16,
    max_wait_ms: float = 5.0,
    max_bytes: int = 50 * 2**20,
    max_seconds: float = 600.0,
    max_samples: int | None = None,
    max_windows: int = 2000,
    max_decoding: int | None = None,
    read_timeout: float = 30.0,
    stuck_after: float = 60.0,
    docs: bool = False,
):
    """The FastAPI application serving ``model`` (an ``OnnxClassifier`` or the path of an ``.onnx`` file).

    Args:
        model: what to serve.
        max_batch: requests run together at most (1: no batching).
        max_wait_ms: how long the first request of a batch waits for others.
        max_bytes: the largest request body; larger ones get 413 before they are read.
        max_seconds: the longest recording accepted (413 beyond).
        max_samples: the most decoded samples, all channels counted, of one recording (413 beyond, from its header);
            default: ``max_seconds`` of 48 kHz stereo.
        max_windows: the most windows one ``?window=&hop=`` request may ask for (422 beyond).
        max_decoding: requests decoded and prepared at once (default: the CPU count, at most 8); the others wait.
        read_timeout: seconds a request body may take to arrive (408 beyond).
        stuck_after: ``/health`` answers 503 when one model call has run this long.
        docs: serve ``/docs`` and ``/openapi.json`` (off by default: they describe the service to anyone).

    Examples:
        >>> from fastapi.testclient import TestClient
        >>> with TestClient(create_app(learn.export_onnx("model.onnx"))) as client:
        ...     client.post("/predict", content=Path("note.wav").read_bytes()).json()["label"] in ("high", "low")
        True
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    clf = model if isinstance(model, OnnxClassifier) else OnnxClassifier(model)
    batcher = _Batcher(clf, max_batch, max_wait_ms / 1000)
    max_samples = int(max_seconds * 48000 * 2) if max_samples is None else int(max_samples)
    decoding = asyncio.Semaphore(max_decoding or min(8, os.cpu_count() or 1))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if clf.duration is not None:  # one full batch before the first request: ONNX Runtime sizes its memory
            # arena for the largest batch now, so the first requests are not slow and memory stays flat after
            clf.probabilities(np.zeros((max(1, max_batch), int(round(clf.duration * clf.sample_rate))), np.float32))
        batcher.start()
        yield

    hidden = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="fastai_audio", description=f"audio classifier {clf.path.name}", lifespan=lifespan, **hidden)
    app.state.classifier, app.state.batcher = clf, batcher

    def error(status: int, reason: str):
        return JSONResponse({"error": reason}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors()]
        return error(422, "; ".join(parts)[:500])

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail)[:500])

    @app.middleware("http")
    async def _log(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        log.info(
            "%s %s %d %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - start) * 1e3,
        )
        return response

    @app.get("/health")
    async def health():
        why = batcher.stuck(stuck_after)
        if why is not None:
            return JSONResponse({"status": "unhealthy", "reason": why}, status_code=503)
        return {"status": "ok", "model": clf.path.name, "classes": len(clf.labels), "sample_rate": clf.sample_rate}

    @app.get("/labels")
    async def labels():
        return {"labels": clf.labels}

    async def read_body(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return error(413, f"the request body is {int(declared)} bytes, more than the limit of {max_bytes}")
        body = bytearray()
        try:
            async with asyncio.timeout(read_timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > max_bytes:
                        return error(413, f"the request body is more than the limit of {max_bytes} bytes")
        except TimeoutError:
            return error(408, f"the request body did not arrive within {read_timeout:g} s")
        data = bytes(body)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await _parse_multipart(request, data)
            if isinstance(form, str):
                return error(400, form)
            data = form
        return data

    def prepare(data: bytes, window, hop):
        """Decode and prepare one request (in a worker thread): the clip for the batcher, or the windows' result."""
        wav, rate = decode_bytes(data, "the request body", max_seconds=max_seconds, max_samples=max_samples)
        if wav.shape[-1] / rate > max_seconds:  # (too long: refused from its header; one that undercounts, here)
            raise AudioTooLongError(
                "the request body", f"is {wav.shape[-1] / rate:.1f} s long, more than the limit of {max_seconds:g} s"
            )
        if window is not None or hop is not None:
            return clf.predict_windows(wav, window=window, hop=hop, sample_rate=rate, max_windows=max_windows)
        return clf.prepare(wav, rate)

    @app.post("/predict")
    async def predict(request: Request, top_k: int = 5, window: float | None = None, hop: float | None = None):
        try:  # the query string first: nothing is read for a request that cannot be served
            if window is not None or hop is not None:
                w = window if window is not None else clf.duration
                if w is None:
                    raise ParameterError("the model takes whole clips (duration=None): pass window=<seconds>")
                check_windows(w, hop if hop is not None else w / 2)
                if w > max_seconds:
                    raise ParameterError(f"window must be at most the {max_seconds:g} s a recording may last, got {w}")
        except ParameterError as err:
            return error(422, str(err))
        data = await read_body(request)
        if isinstance(data, JSONResponse):
            return data
        if not data:
            return error(400, "the request body is empty (0 bytes): send the bytes of an audio file")
        try:
            async with decoding:
                res = await asyncio.to_thread(prepare, data, window, hop)
        except AudioError as err:
            return error(_status(err), str(err))
        except ValueError as err:  # e.g. an array the model cannot take
            return error(422, str(err))
        if isinstance(res, dict):
            return {
                "label": res["label"],
                "labels": clf.labels,
                "window": res["window"],
                "starts": res["starts"].tolist(),
                "probabilities": res["probs"].round(6).tolist(),
                "clip_probabilities": res["clip_probs"].round(6).tolist(),
            }
        probs = await batcher.submit(res)
        order = np.argsort(-probs)[: min(max(1, top_k), len(clf.labels))]
        label, index = clf._decode(probs)
        return {
            "label": label,
            "index": index if isinstance(index, int) else index.tolist(),
            "top": [{"label": clf.labels[i], "probability": round(float(probs[i]), 6)} for i in order],
        }

    return app


async def _parse_multipart(request, body: bytes):
    """The bytes of the multipart field ``file`` (or the first file field), or the reason there is none."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive).form()
    except Exception as err:  # noqa: BLE001 - starlette reports a malformed form through several exception types
        return f"the multipart body cannot be parsed ({getattr(err, 'detail', None) or err})"[:500]
    try:
        field = form.get("file") or next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if not isinstance(field, UploadFile):
            return "a multipart request needs a file field named 'file'"
        return await field.read()
    finally:
        await form.close()  # (a part over 1 MB was spooled to a temporary file: removed now)


def serve(
    model,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_connections: int = 512,
    header_timeout: float = 10.0,
    keep_alive: float = 5.0,
    graceful_timeout: float = 10.0,
    **kwargs,
):
    """Run the server with uvicorn (blocking); ``kwargs`` go to ``create_app``.

    Args:
        max_connections: connections and requests at once; beyond, 503.
        header_timeout: seconds a new connection may take to send its request's headers before it is closed.
        keep_alive: seconds an idle keep-alive connection stays open.
        graceful_timeout: on SIGTERM or Ctrl-C, seconds in-flight requests get to finish before the process exits.
    """
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(
        create_app(model, **kwargs),
        host=host,
        port=port,
        log_level="warning",
        http=_header_deadline(header_timeout),
        limit_concurrency=max_connections,
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=graceful_timeout,
    )


def _header_deadline(seconds: float):
    """uvicorn's HTTP protocol, with a deadline: a connection whose first request's headers have not all arrived
    ``seconds`` after it opened is closed (uvicorn itself waits forever for them). Only the ``asyncio.Protocol``
    interface is used: ``connection_made``, ``data_received``, ``connection_lost`` and the transport."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class HeaderDeadline(AutoHTTPProtocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self.fa_tail = b""
            self.fa_deadline = asyncio.get_running_loop().call_later(seconds, self._fa_expire, transport)

        def _fa_expire(self, transport):
            log.warning(
                "closed a connection from %s: no request headers within %g s",
                transport.get_extra_info("peername"),
                seconds,
            )
            transport.close()

        def data_received(self, data: bytes):
            if self.fa_deadline is not None:  # (headers end at the first blank line, maybe split across reads)
                seen = self.fa_tail + data
                if b"\r\n\r\n" in seen:
                    self.fa_deadline.cancel()
                    self.fa_deadline = None
                else:
                    self.fa_tail = seen[-3:]
            super().data_received(data)

        def connection_lost(self, exc):
            if self.fa_deadline is not None:
                self.fa_deadline.cancel()
                self.fa_deadline = None
            super().connection_lost(exc)

    return HeaderDeadline
