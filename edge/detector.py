"""Haar face detection on a downscaled frame, plus cheap re-detection around known faces."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectorConfig
from edge.priority import lower_this_thread
from edge.records import Box


class DetectorError(Exception):
    """A cascade that cannot be loaded."""


def default_cascade() -> Path:
    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


# OpenCV's worker pool gains nothing on the loop's small region searches and its handoffs cost a few
# points of a core (woman2 at 30 FPS: 21.5 -> 19.0 %); the full-frame search has a thread of its own.
cv2.setNumThreads(1)

ROI_FACE_PX = 64  # re-detection searches a known face's region scaled so the face is this wide
ROI_SIZES = (0.8, 1.25)  # ... for faces of 0.8 to 1.25 times the known face's size


class FaceDetector:
    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        path = cfg.cascade or default_cascade()
        if not Path(path).is_file():
            raise DetectorError(f"Haar cascade not found: {path}")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"cannot load Haar cascade {path}")

    def _run(self, gray: np.ndarray, scale: float, min_neighbors: int, min_size: int, max_size: int = 0,
             hide: Sequence[Box] = ()) -> list[Box]:
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if hide:  # flat regions are rejected by the cascade's first stages: a face costs most where it is
            small = small.copy() if small is gray else small
            fill = int(small.mean())
            for x, y, w, h in hide:
                m = int(max(w, h) * self.cfg.roi_margin)
                small[max(0, int((y - m) * scale)):int((y + h + m) * scale) + 1,
                      max(0, int((x - m) * scale)):int((x + w + m) * scale) + 1] = fill
        found = self._cascade.detectMultiScale(
            small, scaleFactor=self.cfg.scale_factor, minNeighbors=min_neighbors,
            minSize=(max(16, int(min_size * scale)),) * 2,
            maxSize=(int(max_size * scale),) * 2 if max_size else (0, 0))
        return [(int(x / scale), int(y / scale), int(w / scale), int(h / scale)) for x, y, w, h in found]

    def detect(self, gray: np.ndarray, quick: bool = False, hide: Sequence[Box] = ()) -> list[Box]:
        """All faces of a full frame, searched on a copy downscaled to `detect_width`; `quick`: to
        `quick_width`, which finds only faces of at least 24 px at that width, in a fraction of the time.
        `hide`: known faces, painted flat (with their `roi_margin`) so that only new faces are searched,
        in about half the time."""
        scale = min(1.0, (self.cfg.quick_width if quick else self.cfg.detect_width) / gray.shape[1])
        return self._run(gray, scale, self.cfg.min_neighbors, self.cfg.min_face, hide=hide)

    def redetect(self, gray: np.ndarray, known: list[Box]) -> list[Box]:
        """Faces near `known` boxes, each searched in its own small region around the box."""
        found: list[Box] = []
        fh, fw = gray.shape
        lo, hi = ROI_SIZES
        for x, y, w, h in known:
            m = int(max(w, h) * self.cfg.roi_margin)
            x0, y0 = max(0, x - m), max(0, y - m)
            x1, y1 = min(fw, x + w + m), min(fh, y + h + m)
            scale = min(1.0, ROI_FACE_PX / max(w, 1))  # search with the face about ROI_FACE_PX wide
            roi = gray[y0:y1, x0:x1]
            for bx, by, bw, bh in self._run(roi, scale, self.cfg.roi_min_neighbors, int(w * lo), int(w * hi) + 1):
                box = (bx + x0, by + y0, bw, bh)
                if all(iou(box, other) < 0.3 for other in found):
                    found.append(box)
        return found


class BackgroundSearch:
    """Full-frame searches on a thread of their own, so the frame loop keeps its rate while one runs
    (OpenCV releases the GIL: on several cores it runs beside the loop, on one it shares the core
    instead of stalling it). One search at a time; its result is picked up by a later frame."""

    def __init__(self, detector: FaceDetector):
        self.detector = detector  # its own cascade: OpenCV's CascadeClassifier is not shared across threads
        self._cond = threading.Condition()
        self._job: tuple[np.ndarray, list[Box]] | None = None
        self._result: list[Box] | None = None
        self._busy = self._closed = False
        self.cpu_s = 0.0  # the searches' CPU time
        self._thread = threading.Thread(target=self._run, name="full-search", daemon=True)
        self._thread.start()

    def submit(self, gray: np.ndarray, known: list[Box]) -> bool:
        """Start a search of `gray` for faces other than `known` unless one is running; False if busy."""
        with self._cond:
            if self._busy:
                return False
            self._job, self._busy = (gray, known), True
            self._cond.notify()
            return True

    def poll(self) -> list[Box] | None:
        """The boxes of the last finished search, once; None while running or already taken."""
        with self._cond:
            result, self._result = self._result, None
            return result

    def wait(self, timeout: float) -> bool:
        """Wait until no search is running (a replay that must not outrun it); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)

    def close(self) -> None:
        """Stop the thread, after the search it may be running (OpenCV must not be mid-call at exit)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        lower_this_thread(10)  # behind the frame loop and the grabber
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._closed)
                if self._closed:
                    return
                (gray, known), self._job = self._job, None
            c0 = time.thread_time()
            boxes = self.detector.detect(gray, hide=known)
            with self._cond:
                self._result, self._busy = boxes, False
                self.cpu_s += time.thread_time() - c0
                self._cond.notify_all()
