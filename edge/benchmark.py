"""`fer-edge --benchmark`: the real pipeline on a clip, timed per stage, as a table or one JSON object."""

from __future__ import annotations

import http.client
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edge.classifier import Classifier
from edge.detector import FaceDetector
from edge.history import HistoryStore
from edge.metrics import Metrics
from edge.pipeline import Pipeline
from edge.service import RunOptions, make_publishers, resolve_config
from edge.sources import Grabber, open_source
from edge.stats import rss_mb
from edge.synthetic import face_clip
from edge.tiles import tile_clip

DEFAULT_FPS = 30.0
DEFAULT_SECONDS = 20.0


def interpreter_latency(model: Path, threads: int, faces: int = 1, runs: int = 200,
                        between: Callable[[], object] | None = None) -> float:
    """Median ms of one invoke on `faces` random faces with `threads` interpreter threads."""
    clf = Classifier(model, num_threads=threads)
    x = np.random.default_rng(0).integers(0, 255, (faces, *clf.input_size), np.uint8)
    return round(clf.latency_ms(x, runs, between), 4)


def frame_interval(detector: FaceDetector, fps: float, size: tuple[int, int] = (640, 360)) -> Callable[[], object]:
    """What runs between two classifications in the loop: the wait for the next frame at `fps`
    (none at max rate), then a full face detection (here on a noise frame)."""
    frame = np.random.default_rng(1).integers(0, 255, (size[1], size[0]), np.uint8)

    def interval() -> None:
        if fps:
            time.sleep(1 / fps)
        detector.detect(frame)

    return interval


class RssSampler:
    """RSS at the start and after a warm-up, to tell warm-up growth from a leak in a long (soak) run."""

    WARMUP_S = 60.0

    def __init__(self):
        self.t0 = time.monotonic()
        self.start = rss_mb()
        self.warm: float | None = None

    def tick(self) -> None:
        """Called every loop iteration; reads RSS once, when the warm-up has passed."""
        if self.warm is None and time.monotonic() - self.t0 >= self.WARMUP_S:
            self.warm = rss_mb()

    def summary(self, end: float) -> dict:
        """`rss_growth_mb_after_warmup` is None for runs shorter than the warm-up."""
        return {"rss_mb_start": round(self.start, 1), "rss_growth_mb": round(end - self.start, 1),
                "rss_growth_mb_after_warmup": round(end - self.warm, 1) if self.warm is not None else None}


def mjpeg_parts(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    """The JPEG payloads of a multipart MJPEG response as they arrive, until the stream ends."""
    while line := resp.fp.readline():
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            resp.fp.readline()  # the blank line before the payload
            yield resp.fp.read(length)


class PreviewWatcher(threading.Thread):
    """A client of the page's preview stream for the whole run: counts the JPEG frames it receives."""

    def __init__(self, port: int):
        super().__init__(name="preview-watcher", daemon=True)
        self.port, self.frames, self.stop = port, 0, threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        for _ in mjpeg_parts(conn.getresponse()):
            self.frames += 1
            if self.stop.is_set():
                break
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_benchmark(opts: RunOptions, watch: bool = False, tile: int = 1) -> dict:
    overrides = {"pacer.fps": DEFAULT_FPS, **opts.overrides}
    if watch:  # the page's server on a free loopback port, with its preview on
        overrides.update({"http.enabled": True, "http.host": "127.0.0.1", "http.port": free_port(),
                          "http.preview": True})
    tmp = None
    if "source.uri" not in overrides:
        tmp = tempfile.TemporaryDirectory()
        overrides["source.uri"] = str(face_clip(Path(tmp.name) / "synthetic.avi", 300, (640, 360), DEFAULT_FPS))
    clip = overrides["source.uri"]
    if tile > 1:
        overrides["source.uri"] = str(tile_clip(Path(clip), tile))
    if opts.duration:
        overrides["source.loop"] = True
    cfg = resolve_config(RunOptions(opts.config_path, overrides))
    classifier = Classifier(cfg.model.path, num_threads=cfg.model.num_threads)
    grabber = Grabber(open_source(cfg.source), realtime=cfg.source.realtime, backoff=cfg.source.reopen_backoff_s)
    # the daemon's history (in a temporary place: a benchmark keeps no visits) and metrics, so that RSS and CPU count them
    history_dir = tempfile.TemporaryDirectory()
    history = HistoryStore(cfg.history.model_copy(update={"path": Path(history_dir.name) / "history.db"})) \
        if cfg.history.enabled else None
    metrics = Metrics()
    publishers = make_publishers(cfg, print_events=False, labels=classifier.labels, http=watch, history=history,
                                 metrics=metrics)
    pipeline = Pipeline(cfg, grabber, FaceDetector(cfg.detector), classifier, publishers, history, metrics)
    rss = RssSampler()
    for p in publishers:
        p.start()
    if history:
        history.start()
    watcher = PreviewWatcher(cfg.http.port) if watch else None
    if watcher:
        watcher.start()
    grabber.start()
    t0 = time.monotonic()
    try:
        ended = pipeline.run(threading.Event(), opts.max_frames,
                             opts.duration or (None if opts.max_frames else DEFAULT_SECONDS), rss.tick)
        snapshot = pipeline.snapshot()  # before the shutdown, which is not part of the run
    finally:
        if watcher:
            watcher.stop.set()
        pipeline.close()
        grabber.stop()
        for p in publishers:
            p.close()
        if history:
            history.close()
        history_dir.cleanup()
        if tmp:
            tmp.cleanup()
    source = "synthetic (one drawn face)" if tmp else clip
    result = {"source": source if tile == 1 else f"{source}, tiled {tile}x{tile}", "tile": tile, "ended": ended,
              "model": str(cfg.model.path), **snapshot}
    result.update(rss.summary(result["rss_mb"]))
    if watcher:
        result["preview_frames"] = watcher.frames
        result["preview_fps"] = round(watcher.frames / (time.monotonic() - t0), 2)
    threads = os.cpu_count() or 1
    result["interpreter_ms_1face_1thread"] = interpreter_latency(cfg.model.path, 1)
    result[f"interpreter_ms_1face_{threads}threads"] = interpreter_latency(cfg.model.path, threads)
    result["interpreter_ms_4faces_1thread"] = interpreter_latency(cfg.model.path, 1, faces=4)
    # In the loop the model runs after an idle wait and a detection, with its weights out of the caches.
    result["interpreter_ms_1face_1thread_cold"] = interpreter_latency(
        cfg.model.path, 1, runs=100, between=frame_interval(FaceDetector(cfg.detector), cfg.pacer.fps))
    return result


def _or_na(value: object) -> object:
    return "n/a" if value is None else value


def table(r: dict) -> str:
    lines = [f"source: {r['source']} ({r['ended']}), model: {r['model']}",
             f"frames {r['frames']}, FPS target {r['fps_target'] or 'max'}: processed {r['fps_processed']}, "
             f"skipped {r['fps_skipped']} (pacer {r['frames_skipped']}, grabber {r['frames_dropped']}), "
             f"{r['frames_shed']} frames shedding load",
             f"faces found a frame {r['faces_per_frame']} (classified {r['faces_classified_per_frame']}), "
             f"frames with a face found {r['frames_with_faces']:.1%} ({r['frames_coasted']} with no search), "
             f"tracked {r['frames_tracked']:.1%}, events {r['events']}, "
             f"first event {r['first_event_s']} s",
             "", f"{'stage':<10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'a face':>9}"]
    for stage in ("capture", "detect", "classify", "track", "publish"):
        vals = [r[f"{stage}_ms_p{q}"] for q in (50, 95, 99)] + [r.get(f"{stage}_ms_per_face_p50")]
        lines.append(f"{stage:<10}" + "".join(f"{v:>9.3f}" if v is not None else f"{'-':>9}" for v in vals))
    lines += ["(a face: p50 of the stage's time on a frame over the faces it handled: searched, classified, tracked)",
              "",
              f"crop and resize a face p50 {r['crop_ms_per_face_p50']} ms (part of classify); "
              f"capture->event latency p95 {r['latency_ms_p95']} ms",
              f"CPU {r['cpu_percent']} % of a core: " + ", ".join(
                  f"{k.removeprefix('cpu_pct_')} {v}" for k, v in r.items() if k.startswith("cpu_pct_")),
              f"RSS {r['rss_mb']} MB (peak {r['rss_mb_peak']}, growth {r['rss_growth_mb']}, "
              f"after the first {RssSampler.WARMUP_S:.0f} s {_or_na(r['rss_growth_mb_after_warmup'])})",
              "interpreter alone: " + ", ".join(f"{k.removeprefix('interpreter_ms_')} {v} ms"
                                                for k, v in r.items() if k.startswith("interpreter_ms_"))]
    if "preview_fps" in r:
        lines.append(f"a client watched the preview: {r['preview_frames']} frames, {r['preview_fps']} FPS "
                     f"(http.preview_fps caps it)")
    if r["source"].startswith("synthetic"):
        lines.append("note: the synthetic clip shows one drawn face; pass --source CLIP for a camera's or a real clip's numbers")
    return "\n".join(lines)


def benchmark(opts: RunOptions, as_json: bool = False, watch: bool = False, tile: int = 1) -> int:
    result = run_benchmark(opts, watch, tile)
    print(json.dumps(result) if as_json else table(result))
    return 0
