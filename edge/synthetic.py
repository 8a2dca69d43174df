"""A synthetic camera for the benchmark and the tests: a drawn face that OpenCV's Haar cascade
finds, drifting over a textured background and switching between two expressions."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from itertools import chain
from pathlib import Path

import cv2
import numpy as np


@lru_cache(maxsize=8)
def drawn_face(side: int, tense: bool) -> np.ndarray:
    """A gray face, `side` pixels square, in one of two expressions the shipped model tells apart:
    `tense` (slanted brows, turned-down mouth; it reads fear) or calm (brows slanted the other way,
    a wide open smile; it reads happy)."""
    img = np.full((side, side), 90, np.uint8)
    c, s = side // 2, side / 200

    def at(dx: float, dy: float) -> tuple[int, int]:
        return int(c + dx * s), int(c + dy * s)

    def size(w: float, h: float) -> tuple[int, int]:
        return int(w * s), int(h * s)

    cv2.ellipse(img, at(0, 5), size(70, 92), 0, 0, 360, 185, -1)  # head
    for dx in (-32, 32):
        cv2.ellipse(img, at(dx, -38), size(22, 6), (20 if tense else -20) * np.sign(dx), 180, 360, 60, -1)  # brow
        cv2.ellipse(img, at(dx, -18), size(16, 8), 0, 0, 360, 240, -1)  # eye
        cv2.circle(img, at(dx, -18), int(7 * s), 30, -1)  # iris
    cv2.ellipse(img, at(0, 22), size(10, 8), 0, 0, 180, 120, -1)  # nose
    if tense:
        cv2.ellipse(img, at(0, 62), size(28, 12), 0, 180, 360, 60, -1)
    else:  # a wide grin: lips, then the teeth inside them (a taller, narrower mouth reads as surprise)
        cv2.ellipse(img, at(0, 46), size(40, 16), 0, 0, 180, 40, -1)
        cv2.ellipse(img, at(0, 48), size(34, 7), 0, 0, 180, 235, -1)
    face = cv2.GaussianBlur(img, (0, 0), 2 * s)
    face.flags.writeable = False  # cached: shared by every frame
    return face


@lru_cache(maxsize=4)
def background(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth gray texture (width x height), twice as wide as `size` so that it can scroll."""
    noise = np.random.default_rng(seed).integers(0, 255, (size[1] // 24, size[0] // 12), np.uint8)
    texture = cv2.resize(noise, (2 * size[0], size[1]), interpolation=cv2.INTER_CUBIC) // 2 + 60
    texture.flags.writeable = False  # cached: shared by every frame
    return texture


def face_frame(tense: bool, i: int = 0, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """Frame `i` of the clip: the background scrolled by `i` pixels, the face (half the frame's
    height) drifting back and forth by up to 20 pixels."""
    w, h = size
    frame = np.ascontiguousarray(np.roll(background(size), -i, axis=1)[:, :w])
    side = h // 2
    x, y = (w - side) // 2 - 10 + abs(i % 40 - 20), h // 4
    frame[y:y + side, x:x + side] = drawn_face(side, tense)
    return frame


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> Path:
    """An MJPG clip of gray or BGR frames (at least one), all of the first one's size; written as
    they come, so a long clip is never held in memory."""
    frames = iter(frames)
    first = next(frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (first.shape[1], first.shape[0]))
    for f in chain([first], frames):
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def face_clip(path: Path, frames: int, size: tuple[int, int] = (320, 240), fps: float = 30.0,
              switch_every: int = 45) -> Path:
    """An MJPG clip of `frames` frames, starting tense and switching expression every `switch_every`."""
    return write_clip(path, (face_frame((i // switch_every) % 2 == 0, i, size) for i in range(frames)), fps)


def visits_clip(path: Path, on: int = 45, off: int = 20, size: tuple[int, int] = (320, 240), fps: float = 30.0) -> Path:
    """Two visits: the face comes for `on` frames (tense, then calm the second time), and leaves for
    `off` frames of background after each; looped, a visit every (on + off) / fps seconds."""
    def frames():
        for tense in (True, False):
            for i in range(on):
                yield face_frame(tense, i, size)
            for i in range(on, on + off):
                yield np.ascontiguousarray(np.roll(background(size), -i, axis=1)[:, :size[0]])
    return write_clip(path, frames(), fps)
