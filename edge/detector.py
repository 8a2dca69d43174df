"""Haar face detection on a downscaled frame, plus cheap re-detection around known faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectorConfig
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


class FaceDetector:
    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        path = cfg.cascade or default_cascade()
        if not Path(path).is_file():
            raise DetectorError(f"Haar cascade not found: {path}")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"cannot load Haar cascade {path}")

    def _run(self, gray: np.ndarray, scale: float, min_neighbors: int, min_size: int, max_size: int = 0) -> list[Box]:
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = self._cascade.detectMultiScale(
            small, scaleFactor=self.cfg.scale_factor, minNeighbors=min_neighbors,
            minSize=(max(16, int(min_size * scale)),) * 2,
            maxSize=(int(max_size * scale),) * 2 if max_size else (0, 0))
        return [(int(x / scale), int(y / scale), int(w / scale), int(h / scale)) for x, y, w, h in found]

    def detect(self, gray: np.ndarray) -> list[Box]:
        """All faces of a full frame, searched on a copy downscaled to `detect_width`."""
        scale = min(1.0, self.cfg.detect_width / gray.shape[1])
        return self._run(gray, scale, self.cfg.min_neighbors, self.cfg.min_face)

    def redetect(self, gray: np.ndarray, known: list[Box]) -> list[Box]:
        """Faces near `known` boxes, each searched in its own small region around the box."""
        found: list[Box] = []
        fh, fw = gray.shape
        for x, y, w, h in known:
            m = int(max(w, h) * self.cfg.roi_margin)
            x0, y0 = max(0, x - m), max(0, y - m)
            x1, y1 = min(fw, x + w + m), min(fh, y + h + m)
            scale = min(1.0, 96 / max(w, 1))  # search with the face about 96 px wide
            roi = gray[y0:y1, x0:x1]
            for bx, by, bw, bh in self._run(roi, scale, self.cfg.roi_min_neighbors, int(w * 0.7), int(w * 1.4) + 1):
                box = (bx + x0, by + y0, bw, bh)
                if all(iou(box, other) < 0.3 for other in found):
                    found.append(box)
        return found

    def find(self, gray: np.ndarray, known: list[Box], full: bool) -> list[Box]:
        """A frame's faces: the full search if `full`, plus re-detection of known faces it missed."""
        found = self.detect(gray) if full else []
        lost = [k for k in known if all(iou(k, f) < 0.3 for f in found)]
        return found + [b for b in self.redetect(gray, lost) if all(iou(b, f) < 0.3 for f in found)]
