"""The events a clip publishes when its processing starts at each of its first frames; with --tile N,
those of each face of the clip played as an N x N grid of itself, against the clip alone.

Every frame of the clip goes through the daemon's pipeline at 30 FPS clip time, none skipped, each full
search done before the next frame, so a run depends only on the frame it starts from (which frames fall
on a re-detection) and the config.
The same events from every start mean that what is published does not turn on the frame timing.
With --tile N (`fer-edge --benchmark --tile N`'s grid): each tile's events (told apart by where their
boxes lie) beside those of the clip alone played in that tile's order (from its offset, wrapping round):
the same events mean a face in a group is read as it is alone.

Usage (from the repo root): .venv/bin/python benchmarks/events-by-start.py CLIP [--config C] [--starts 8] [--tile N]
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from edge.classifier import Classifier
from edge.config import Config, load_config
from edge.detector import FaceDetector
from edge.pipeline import Pipeline
from edge.records import Frame, State
from edge.tiles import tile_clip


class Collect:
    """A publisher that keeps the events and ignores the rest."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def event(self, payload: dict) -> None:
        self.events.append(payload)

    def start(self) -> None: ...
    def state(self, payload: dict) -> None: ...
    def visit(self, payload: dict) -> None: ...
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


def play(cfg: Config, classifier: Classifier, frames: list[np.ndarray]) -> list[dict]:
    """The events of `frames` played through the pipeline at 30 FPS clip time."""
    sink = Collect()
    no_grabber = SimpleNamespace(dropped=0)  # frames are handed in one by one, none dropped
    pipeline = Pipeline(cfg, no_grabber, FaceDetector(cfg.detector), classifier, [sink])
    for i, image in enumerate(frames):
        ts = i / 30
        if pipeline.pacer.take(ts):
            pipeline.process(Frame(image, i, ts, ts))
        pipeline.search.wait(10)  # a full search ends before the next frame, as it does beside a 30 FPS camera
    pipeline.close()
    return sink.events


def emotions(events: list[dict]) -> str:
    """Each event's emotion, confidence and clip time (its `ts` is the frame's clip time from the epoch)."""
    return ", ".join(f"{e['emotion']} ({e['confidence']:.2f} at {datetime.fromisoformat(e['ts']).timestamp():.1f} s)"
                     for e in events)


def by_tile(cfg: Config, classifier: Classifier, clip: str, n: int) -> None:
    """Each tile's events in the N x N grid beside the clip's alone, played from that tile's offset."""
    grid = gray_frames(str(tile_clip(Path(clip), n)))
    alone = gray_frames(clip)
    th, tw = grid[0].shape[0] // n, grid[0].shape[1] // n
    tiles: dict[int, list[dict]] = {}
    for e in play(cfg, classifier, grid):
        x, y, w, h = e["box"]
        tiles.setdefault(min((y + h // 2) // th, n - 1) * n + min((x + w // 2) // tw, n - 1), []).append(e)
    same = 0
    for k in range(n * n):
        start = k * len(alone) // (n * n)
        own = [e["emotion"] for e in play(cfg, classifier, alone[start:] + alone[:start])]
        got = [e["emotion"] for e in tiles.get(k, [])]
        same += own == got
        print(f"tile {k} (from frame {start}): {'same' if own == got else 'DIFFERENT'}\n  alone: {', '.join(own)}\n"
              f"  tiled: {emotions(tiles.get(k, []))}")
    print(f"{same} of {n * n} tiles publish the events of the clip alone")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--starts", type=int, default=8, help="start at frames 0 .. STARTS-1")
    ap.add_argument("--tile", type=int, default=1, help="the clip as an N x N grid of itself, each tile against the clip alone")
    args = ap.parse_args()
    cfg = load_config(args.config)
    classifier = Classifier(cfg.model.path, num_threads=1)
    if args.tile > 1:
        return by_tile(cfg, classifier, args.clip, args.tile)
    frames = gray_frames(args.clip)
    for start in range(args.starts):
        events = play(cfg, classifier, frames[start:])
        print(f"start {start}: {len(events)} events: " + emotions(events))


if __name__ == "__main__":
    main()
