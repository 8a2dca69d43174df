"""Rolling timings and counters of the run loop, as one flat dict for stats, STATUS and benchmarks."""

from __future__ import annotations

import resource
import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.metrics import Metrics

STAGES = ("detect", "classify", "track", "publish")  # capture is timed by the grabber thread


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size in MB; the kernel updates its high-water mark lazily, so it can trail
    the current RSS by a few pages."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_mb())


def cpu_temperature() -> float | None:
    try:
        with open("/sys/class/thermal/thermal_zone0/temp") as f:
            return int(f.read()) / 1000
    except (OSError, ValueError):
        return None


def _pct(values, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


class Stats:
    def __init__(self, window: int = 4096, metrics: Metrics | None = None):
        self.metrics = metrics  # also fed each stage's time and each event's latency
        self.started = time.monotonic()
        self.stage_ms = {s: deque(maxlen=window) for s in STAGES}
        self.stage_cpu_s = dict.fromkeys(STAGES, 0.0)  # the frame loop's thread CPU time, per stage
        self.stage_ms_per_face = {s: deque(maxlen=window) for s in STAGES}  # a stage's time / the faces it handled
        self.crop_ms_per_face: deque[float] = deque(maxlen=window)  # the crop+resize part of classify
        self.latency_ms: deque[float] = deque(maxlen=window)
        self.processed_at: deque[float] = deque(maxlen=window)
        self.processed = 0
        self.frames_with_faces = 0
        self.frames_coasted = 0  # no search ran: known faces only scored at their boxes
        self.frames_tracked = 0
        self.faces = 0  # found faces, summed over frames
        self.classified = 0  # faces classified, summed over frames
        self.events = 0
        self.visits = 0
        self.first_event_s: float | None = None
        self.first_frame_at: float | None = None  # FPS counts from here: start-up is not frame rate
        self._cpu0 = time.process_time()

    def add(self, stage: str, seconds: float, cpu_s: float = 0.0, faces: int = 0) -> None:
        """One frame's time in `stage`, which handled `faces` faces (searched, classified, tracked)."""
        self.stage_ms[stage].append(seconds * 1000)
        if self.metrics:
            self.metrics.stage(stage, seconds)
        self.stage_cpu_s[stage] += cpu_s
        if faces:
            self.stage_ms_per_face[stage].append(seconds * 1000 / faces)

    def frame_done(self, found: int, tracks: int, classified: int, crop_s: float, searched: bool = True) -> None:
        """Count one processed frame: the faces found after it (tracks whose last search found them),
        the tracks live, the faces classified on it and the seconds their crops took, and whether any
        face search ran on it."""
        self.processed += 1
        self._processed_now()
        self.faces += found
        self.classified += classified
        self.frames_with_faces += found > 0
        self.frames_coasted += not searched
        self.frames_tracked += tracks > 0
        if classified:
            self.crop_ms_per_face.append(crop_s * 1000 / classified)

    def _processed_now(self) -> None:
        now = time.monotonic()
        self.processed_at.append(now)
        if self.first_frame_at is None:
            self.first_frame_at = now

    def event_published(self, capture_ts: float) -> None:
        now = time.monotonic()
        self.events += 1
        self.latency_ms.append((now - capture_ts) * 1000)
        if self.metrics:
            self.metrics.event(now - capture_ts)
        if self.first_event_s is None:
            self.first_event_s = now - self.started

    def fps(self, window_s: float = 10.0) -> float:
        now = time.monotonic()
        recent = [t for t in self.processed_at if now - t <= window_s]
        span = min(window_s, now - self.started)
        return len(recent) / span if span > 0 else 0.0

    def _fps_since_first(self) -> float:
        """Frames a second from the first processed frame to now (start-up is not frame rate)."""
        if self.processed < 2 or self.first_frame_at is None:
            return 0.0
        return round((self.processed - 1) / max(time.monotonic() - self.first_frame_at, 1e-9), 2)

    def snapshot(self, skipped: int, dropped: int, capture_ms: list[float], capture_cpu_s: float = 0.0,
                 search_cpu_s: float = 0.0) -> dict:
        """Every counter and percentile, flat; FPS from the first processed frame, CPU over the whole
        run. `cpu_pct_<stage>` is that stage's share of one core (capture: the grabber's thread;
        search: the background full-frame search's); `cpu_pct_other` is the rest of the process:
        decoder and runtime threads, the page's server, the MQTT client, the loop between frames."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        out = {
            "uptime_s": round(elapsed, 1),
            "frames": self.processed,
            "fps_processed": self._fps_since_first(),
            "fps_skipped": round((skipped + dropped) / elapsed, 2),
            "frames_skipped": skipped,
            "frames_dropped": dropped,
            "faces_per_frame": round(self.faces / self.processed, 3) if self.processed else 0.0,
            "faces_classified_per_frame": round(self.classified / self.processed, 3) if self.processed else 0.0,
            "frames_with_faces": round(self.frames_with_faces / self.processed, 4) if self.processed else 0.0,
            "frames_coasted": self.frames_coasted,
            "frames_tracked": round(self.frames_tracked / self.processed, 4) if self.processed else 0.0,
            "events": self.events,
            "visits": self.visits,
            "first_event_s": round(self.first_event_s, 3) if self.first_event_s is not None else None,
            "cpu_percent": round(100 * (time.process_time() - self._cpu0) / elapsed, 1),
            "rss_mb": round(rss_mb(), 1),
            "rss_mb_peak": round(peak_rss_mb(), 1),
        }
        for stage, values in {"capture": capture_ms, **self.stage_ms}.items():
            for q in (50, 95, 99):
                out[f"{stage}_ms_p{q}"] = _pct(values, q)
        stage_cpu = {"capture": capture_cpu_s, **self.stage_cpu_s, "search": search_cpu_s}
        for stage, cpu in stage_cpu.items():
            out[f"cpu_pct_{stage}"] = round(100 * cpu / elapsed, 1)
        out["cpu_pct_other"] = round(max(out["cpu_percent"] - sum(100 * c / elapsed for c in stage_cpu.values()), 0.0), 1)
        for stage in ("detect", "classify", "track"):
            out[f"{stage}_ms_per_face_p50"] = _pct(self.stage_ms_per_face[stage], 50)
        out["classify_ms_per_face_p95"] = _pct(self.stage_ms_per_face["classify"], 95)
        out["crop_ms_per_face_p50"] = _pct(self.crop_ms_per_face, 50)
        out["latency_ms_p50"] = _pct(self.latency_ms, 50)
        out["latency_ms_p95"] = _pct(self.latency_ms, 95)
        return out
