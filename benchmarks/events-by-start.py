"""The events a clip publishes when its processing starts at each of its first frames.

Every frame of the clip goes through the daemon's pipeline at 30 FPS clip time, none skipped, so a
run depends only on the frame it starts from (which frames fall on a re-detection) and the config.
The same events from every start mean that what is published does not turn on the frame timing.

Usage (from the repo root): .venv/bin/python benchmarks/events-by-start.py CLIP [--config C] [--starts 8]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from edge.classifier import Classifier
from edge.config import load_config
from edge.detector import FaceDetector
from edge.pipeline import Pipeline
from edge.records import Frame, State


class Collect:
    """A publisher that keeps the events and ignores the rest."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def event(self, payload: dict) -> None:
        self.events.append(payload)

    def start(self) -> None: ...
    def state(self, payload: dict) -> None: ...
    def stats(self, payload: dict) -> None: ...
    def image(self, jpeg: bytes) -> None: ...
    def frame(self, image: np.ndarray, state: State) -> None: ...
    def status(self) -> dict: return {}
    def close(self) -> None: ...


def gray_frames(clip: str) -> list[np.ndarray]:
    cap, frames = cv2.VideoCapture(clip), []
    while (read := cap.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2GRAY))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--starts", type=int, default=8, help="start at frames 0 .. STARTS-1")
    args = ap.parse_args()
    cfg = load_config(args.config)
    frames = gray_frames(args.clip)
    classifier = Classifier(cfg.model.path, num_threads=1)
    for start in range(args.starts):
        sink = Collect()
        pipeline = Pipeline(cfg, None, FaceDetector(cfg.detector), classifier, [sink])
        for i in range(start, len(frames)):
            ts = i / 30
            if pipeline.pacer.take(ts):
                pipeline.process(Frame(frames[i], i, ts, ts))
            time.sleep(0.002)  # the full search's thread gets its turn, as beside a camera
        pipeline.close()
        print(f"start {start}: {len(sink.events)} events: " + ", ".join(
            f"{e['emotion']} ({e['confidence']:.2f})" for e in sink.events))


if __name__ == "__main__":
    main()
