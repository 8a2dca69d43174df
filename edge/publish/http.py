"""The local page and HTTP API, served by aiohttp on its own thread and event loop.

- `GET /` the live page (`/?kiosk` its full-screen view), `GET /healthz`;
- `GET /api/state`, `GET /api/stats`: the MQTT state and stats payloads (same schemas);
- `GET /api/events`: Server-Sent Events of every event, state and stats message;
- `GET /stream.mjpg`: the annotated preview (MJPEG), only with the preview on;
- `POST /predict`: a photo in (raw body or a multipart field), its faces and emotions out; its size
  is checked on its header, and it is decoded and read on one worker thread (see `edge.upload`);
- `GET /api/visits?since=&until=[&format=csv]`, `GET /api/history?day=`: the history store's visits and
  hourly roll-up, read on a worker thread; `GET /metrics`: Prometheus text.

The state exists from the start: `camera: "starting"` and no faces until the first frame.

The frame loop never waits on a client: it hands over payloads and, only while someone watches the
preview and at most `http.preview_fps` times a second, a reference to the frame. Annotation and
JPEG encoding run in a worker thread; every client has a small bounded queue, and one that falls
behind or stops reading is dropped, so a stalled client can neither slow the loop nor grow memory.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from aiohttp import BodyPartReader, ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from edge import __version__
from edge.annotate import annotate, to_jpeg
from edge.classifier import Classifier
from edge.config import Config
from edge.detector import FaceDetector
from edge.history import HistoryError, HistoryStore, parse_time, visits_csv
from edge.metrics import Metrics
from edge.publish import HTTPServerError
from edge.publish.payloads import state_payload
from edge.records import State
from edge.visits import day_start
from edge.upload import UploadError, decode_image

log = logging.getLogger("fer-edge.http")
Predictor = tuple[Classifier, FaceDetector]

PAGE = Path(__file__).resolve().parent.parent / "web" / "index.html"
SSE_QUEUE = 256  # messages a slow event-stream client may lag behind before it is dropped
STALL_S = 10.0  # a client that accepts no bytes for this long is dropped
HEARTBEAT_S = 15.0
DRAFT_SIDE = 1280  # photos at least twice this on both sides are read reduced (see decode_image)
FILE_FIELDS = ("image", "file", "photo")  # form fields taken as the photo even without a filename


class _BadRequestsInOneLine(logging.Filter):
    """aiohttp logs a request it cannot parse (broken framing, a lying Content-Length) at ERROR with a
    traceback, and answers it 400 itself: a hostile client must not fill the log, so one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (HttpProcessingError, ConnectionError)):
            reason = str(getattr(exc, "message", "") or exc).strip().splitlines()
            record.msg, record.args = "http: bad request refused: %s", (reason[0] if reason else type(exc).__name__,)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


logging.getLogger("aiohttp.server").addFilter(_BadRequestsInOneLine())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@dataclass(eq=False)  # hashable by identity: kept in a set
class _Listener:
    """One event-stream client: its bounded queue, and whether it fell too far behind."""

    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SSE_QUEUE))
    dropped: bool = False


class HTTPPublisher:
    def __init__(self, cfg: Config, labels: tuple[str, ...], predictor: Callable[[], Predictor],
                 history: HistoryStore | None = None, metrics: Metrics | None = None):
        """`predictor` builds POST /predict's own classifier and detector, on its first use."""
        self.history, self.metrics = history, metrics
        self.cfg, self.http, self.labels = cfg, cfg.http, labels
        self._token = self.http.token()
        self._predictor_factory = predictor
        self._predictor: Predictor | None = None
        self._predict_worker = ThreadPoolExecutor(1, thread_name_prefix="predict")  # one photo at a time
        self._predicts = 0  # POST /predict requests being read, waiting or running
        now = time.time()
        today = history.count(day_start(now), now + 1) if history and history.ok else 0
        self._state: dict = state_payload(State(camera="starting"), cfg.mqtt.device_id, now, today)
        self._stats: dict | None = None
        self._sse: set[_Listener] = set()
        self._previews: set[asyncio.Queue] = set()
        self._clients = 0
        self.preview_watchers = 0  # read by the frame loop: frames are offered only while > 0
        self._next_frame = 0.0
        self._latest: tuple[np.ndarray, State] | None = None
        self._loop = asyncio.new_event_loop()
        self._frame_ready: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._encoder: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)
        self.started = time.monotonic()

    # -- lifecycle (frame-loop thread) -------------------------------------------------------
    def start(self) -> None:
        """Bind and serve; HTTPServerError if the address cannot be used."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        except OSError as e:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise HTTPServerError(f"http: cannot listen on {self.http.host}:{self.http.port}: "
                                  f"{e.strerror or e} (set http.port, or http.enabled: false)") from None
        where = f"http://{'127.0.0.1' if self.http.host in ('0.0.0.0', '::') else self.http.host}:{self.http.port}/"
        log.info("page at %s%s", where, "" if self.http.preview_on else " (preview off)")

    def close(self) -> None:
        """End the streams, stop serving and the server's thread (about a second at most)."""
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                fut.result(timeout=3)
            except Exception as e:  # closing must not fail the daemon's shutdown
                log.debug("http cleanup: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=3)
        self._predict_worker.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self) -> None:
        for listener in self._sse:
            listener.dropped = True
            if not listener.queue.full():
                listener.queue.put_nowait(b": closing\n\n")  # wakes its handler to see `dropped`
        for q in self._previews:
            if q.full():
                q.get_nowait()
            q.put_nowait(None)
        if self._encoder is not None:
            self._encoder.cancel()
        assert self._runner is not None
        await self._runner.cleanup()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]  # e.g. idle keep-alive clients
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    # -- publisher interface (frame-loop thread; never blocks) --------------------------------
    def event(self, payload: dict) -> None:
        self._broadcast("event", payload)

    def state(self, payload: dict) -> None:
        self._state = payload
        self._broadcast("state", payload)

    def stats(self, payload: dict) -> None:
        self._stats = payload
        self._broadcast("stats", payload)

    def visit(self, payload: dict) -> None:
        self._broadcast("visit", payload)

    def image(self, jpeg: bytes) -> None:
        pass

    def status(self) -> dict:
        return {}

    def frame(self, image: np.ndarray, state: State) -> None:
        """Offer the current frame for the preview: kept (by reference) only if someone watches and a frame is due."""
        if not self.preview_watchers:
            return
        now = time.monotonic()
        if now < self._next_frame:
            return
        period = 1 / self.http.preview_fps
        self._next_frame = max(self._next_frame + period, now - period)  # on schedule, not drifting late
        self._latest = (image, state)
        if self._frame_ready is not None:
            self._loop.call_soon_threadsafe(self._frame_ready.set)

    def _broadcast(self, kind: str, payload: dict) -> None:
        if self._sse:
            message = f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
            self._loop.call_soon_threadsafe(self._fan_out, message)

    # -- server (its own thread) --------------------------------------------------------------
    def _fan_out(self, message: bytes) -> None:
        for listener in list(self._sse):
            try:
                listener.queue.put_nowait(message)
            except asyncio.QueueFull:  # it fell too far behind: drop it
                listener.dropped = True
                self._sse.discard(listener)
                log.info("event-stream client dropped: %d messages behind", SSE_QUEUE)

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._errors, self._auth],
                              client_max_size=int(self.http.max_upload_mb * 2**20))
        app.router.add_get("/", self._page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_get("/api/stats", self._api_stats)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/stream.mjpg", self._stream)
        app.router.add_post("/predict", self._predict)
        app.router.add_get("/api/visits", self._api_visits)
        app.router.add_get("/api/history", self._api_history)
        app.router.add_get("/metrics", self._metrics)
        self._frame_ready = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.http.host, self.http.port, reuse_address=True).start()
        self._encoder = self._loop.create_task(self._encode_previews())

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable]) -> web.StreamResponse:
        """Every failure is a JSON error with the right status, never a traceback or an HTML page."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"upload larger than http.max_upload_mb ({self.http.max_upload_mb:g} MB)")
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return _error(e.status, e.reason)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug: say so in one line, keep serving
            log.error("http %s %s: %s: %s", request.method, request.path, type(e).__name__, e)
            return _error(500, f"internal error: {type(e).__name__}")

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Awaitable]) -> web.StreamResponse:
        if self._token is not None:
            header = request.headers.get("Authorization", "")
            given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                return _error(401, "missing or wrong token (Authorization: Bearer TOKEN, or ?token=TOKEN)")
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=PAGE.read_bytes(), content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def _healthz(self, request: web.Request) -> web.Response:
        camera = self._state["camera"]
        return web.json_response({"status": "ok", "camera": camera, "preview": self.http.preview_on,
                                  "device_id": self.cfg.mqtt.device_id, "labels": list(self.labels),
                                  "version": __version__, "uptime_s": round(time.monotonic() - self.started, 1)})

    async def _api_state(self, request: web.Request) -> web.Response:
        return web.json_response(self._state)

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            return _error(404, "no metrics in this process")
        body = await self._loop.run_in_executor(None, self.metrics.text)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    def _history(self) -> HistoryStore:
        if self.history is None:
            raise web.HTTPServiceUnavailable(reason="history is off (history.enabled: false)")
        if not self.history.ok:
            raise web.HTTPServiceUnavailable(reason=f"history unavailable: {self.history.error}")
        return self.history

    @staticmethod
    def _when(request: web.Request, key: str, default: float) -> float:
        text = request.query.get(key)
        if text is None or text == "":
            return default
        try:
            return parse_time(text)
        except ValueError as e:
            raise web.HTTPBadRequest(reason=f"{key}: {e}") from None

    async def _read_history(self, read: Callable[[], object]) -> object:
        try:
            return await self._loop.run_in_executor(None, read)
        except HistoryError as e:
            raise web.HTTPServiceUnavailable(reason=str(e)) from None

    async def _api_visits(self, request: web.Request) -> web.Response:
        """Visits that started in [since, until) (default: today so far), newest first; ?format=csv for a file."""
        history = self._history()
        now = time.time()
        since = self._when(request, "since", day_start(now))
        until = self._when(request, "until", now + 1)
        if since >= until:
            raise web.HTTPBadRequest(reason="since must be before until")
        visits = await self._read_history(lambda: history.visits(since, until))
        if request.query.get("format") == "csv":
            name = f"fer-edge-visits-{time.strftime('%Y%m%d', time.localtime(since))}.csv"
            return web.Response(text=visits_csv(visits, self.labels), content_type="text/csv",
                                headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return web.json_response({"visits": visits})

    async def _api_history(self, request: web.Request) -> web.Response:
        """The hourly roll-up of one local day (?day=YYYY-MM-DD, default today)."""
        history = self._history()
        day = day_start(self._when(request, "day", time.time()))
        hours = await self._read_history(lambda: history.day(day))
        return web.json_response({"day": time.strftime("%Y-%m-%d", time.localtime(day)), "labels": list(self.labels),
                                  "hours": hours})

    async def _api_stats(self, request: web.Request) -> web.Response:
        if self._stats is None:
            return _error(503, "no stats yet")
        return web.json_response(self._stats)

    def _admit(self) -> web.Response | None:
        if self._clients >= self.http.max_clients:
            return _error(503, f"too many streaming clients (http.max_clients {self.http.max_clients})")
        return None

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        await asyncio.wait_for(resp.write(data), STALL_S)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        refused = self._admit()
        if refused:
            return refused
        listener = _Listener()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        self._clients += 1
        try:
            await resp.prepare(request)
            await self._write(resp, b"retry: 2000\n\n")
            for kind, payload in (("state", self._state), ("stats", self._stats)):  # where things stand
                if payload is not None:
                    await self._write(resp, f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())
            self._sse.add(listener)
            while not listener.dropped:
                try:
                    message = await asyncio.wait_for(listener.queue.get(), HEARTBEAT_S)
                except asyncio.TimeoutError:
                    message = b": keep-alive\n\n"
                await self._write(resp, message)
        except (ConnectionResetError, asyncio.TimeoutError):
            pass
        finally:
            self._sse.discard(listener)
            self._clients -= 1
        return resp

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if not self.http.preview_on:
            return _error(404, "the preview is off (http.preview: true turns it on)")
        refused = self._admit()
        if refused:
            return refused
        q: asyncio.Queue = asyncio.Queue(2)
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame",
                                           "Cache-Control": "no-cache"})
        self._clients += 1
        self._previews.add(q)
        self.preview_watchers += 1
        try:
            await resp.prepare(request)
            while (jpeg := await q.get()) is not None:
                await self._write(resp, b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                  % (len(jpeg), jpeg))
        except (ConnectionResetError, asyncio.TimeoutError):
            pass
        finally:
            self._previews.discard(q)
            self.preview_watchers -= 1
            self._clients -= 1
        return resp

    async def _encode_previews(self) -> None:
        """Annotate and encode the latest offered frame in a worker thread; each viewer keeps at most two."""
        assert self._frame_ready is not None
        while True:
            await self._frame_ready.wait()
            self._frame_ready.clear()
            latest, self._latest = self._latest, None
            if latest is None or not self._previews:
                continue
            image, state = latest
            jpeg = await self._loop.run_in_executor(
                None, lambda: to_jpeg(annotate(image, state, self.labels, self.http.preview_width)))
            for q in list(self._previews):
                if q.full():
                    q.get_nowait()  # a slow viewer skips frames instead of queueing them
                q.put_nowait(jpeg)

    async def _predict(self, request: web.Request) -> web.Response:
        """One photo at a time is decoded and read, off this loop; `max_predict_queue` more may wait."""
        if self._predicts > self.http.max_predict_queue:
            return web.json_response({"error": f"busy: {self._predicts} photos in progress "
                                      f"(http.max_predict_queue {self.http.max_predict_queue})"},
                                     status=503, headers={"Retry-After": "1"})
        self._predicts += 1  # counted from the first byte read, so bodies waiting their turn are bounded too
        try:
            body = await asyncio.wait_for(self._upload(request), self.http.upload_timeout_s)
            faces, annotated = await self._loop.run_in_executor(self._predict_worker, self._predict_image, body)
        except UploadError as e:
            return _error(e.status, str(e))
        except asyncio.TimeoutError:
            return _error(408, f"the upload took longer than http.upload_timeout_s ({self.http.upload_timeout_s:g} s)")
        finally:
            self._predicts -= 1
        if not faces:
            return web.json_response({"error": "no face found in the image", "faces": []}, status=422)
        if request.query.get("format") == "jpeg":
            return web.Response(body=annotated, content_type="image/jpeg")
        return web.json_response({"faces": faces, "image_jpeg_b64": base64.b64encode(annotated).decode()})

    async def _upload(self, request: web.Request) -> bytes:
        """The photo's bytes: the raw body, or the first file field of a multipart form, at most
        `max_upload_mb` either way. UploadError 4xx for anything malformed or cut short."""
        limit = int(self.http.max_upload_mb * 2**20)
        too_large = UploadError(413, f"upload larger than http.max_upload_mb ({self.http.max_upload_mb:g} MB)")
        try:
            if not request.content_type.startswith("multipart/"):
                body = await request.read()  # aiohttp enforces client_max_size (413)
            else:
                body = b""
                async for part in await request.multipart():
                    if isinstance(part, BodyPartReader) and (part.filename or part.name in FILE_FIELDS):
                        chunks, size = [], 0
                        while chunk := await part.read_chunk():
                            size += len(chunk)
                            if size > limit:
                                raise too_large
                            chunks.append(chunk)
                        body = b"".join(chunks)
                        break
                if not body:
                    raise UploadError(400, "no image in the form (send it as a file field, e.g. 'image')")
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        except ConnectionResetError:  # the client went away mid-upload: nobody is left to read an answer
            raise UploadError(400, "the upload was cut short (connection lost)") from None
        except (ValueError, AssertionError, RuntimeError, LookupError, ClientPayloadError, HttpProcessingError) as e:
            # aiohttp's words for a cut-short body, a missing boundary, a bad part header or encoding
            raise UploadError(400, f"malformed request body: {e}") from None
        if not body:
            raise UploadError(400, "empty body: POST the photo itself, or a multipart form with the photo")
        return body

    def _predict_image(self, body: bytes) -> tuple[list[dict], bytes]:
        """Run on the one predict worker thread, with an interpreter of its own (the frame loop's is not shared)."""
        from edge.predict import annotate as draw, predict_faces

        image, scale = decode_image(body, self.http.max_upload_pixels, DRAFT_SIDE)
        if self._predictor is None:
            self._predictor = self._predictor_factory()
        classifier, detector = self._predictor
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        faces = predict_faces(gray, classifier, detector, self.cfg.detector.crop_margin)
        annotated = to_jpeg(draw(image, faces), 85)  # drawn at the decoded size; boxes reported in the original's
        for face in faces:
            face["box"] = [round(v * scale) for v in face["box"]]
        return faces, annotated
