"""A clip as an N x N grid of itself, each tile at another time offset: a group in front of the camera,
made the same way by everyone, for `fer-edge --benchmark --tile N`."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edge.sources import SourceError

MAX_WIDTH = 1280  # the grid fills twice the clip's width, at most a 720p camera's


def grid_size(clip_size: tuple[int, int], n: int) -> tuple[int, int]:
    """The tile's (width, height): the grid is twice the clip's width (at most MAX_WIDTH), its aspect kept."""
    w, h = clip_size
    width = min(2 * w, MAX_WIDTH)
    return width // n, round(width * h / w) // n


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fer-edge" / "tiles"


def _open(clip: Path, start: int) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(clip))
    if start:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    return cap


def tile_clip(clip: Path, n: int, out_dir: Path | None = None) -> Path:
    """Write (once; later calls reuse it) an mp4v clip as long as `clip`, whose frames are `n` x `n`
    grids of it: tile k (row by row) shows the clip from frame k x frames / n^2 on, wrapping round,
    so each tile's face does what the clip's does, at another moment. n = 1 is the clip itself."""
    clip = Path(clip)
    if n == 1:
        return clip
    probe = cv2.VideoCapture(str(clip))
    frames, fps = int(probe.get(cv2.CAP_PROP_FRAME_COUNT)), probe.get(cv2.CAP_PROP_FPS) or 30.0
    size = int(probe.get(cv2.CAP_PROP_FRAME_WIDTH)), int(probe.get(cv2.CAP_PROP_FRAME_HEIGHT))
    probe.release()
    if frames < 1 or min(size) < 1:
        raise SourceError(f"--tile needs a video file with a known frame count: {clip}")
    tw, th = grid_size(size, n)
    st = clip.stat()
    out = (out_dir or cache_dir()) / f"{clip.stem}-{st.st_size}-{int(st.st_mtime)}-tile{n}x{n}-{tw * n}x{th * n}.mp4"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    starts = [k * frames // (n * n) for k in range(n * n)]
    caps = [_open(clip, s) for s in starts]
    partial = out.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, (tw * n, th * n))
    grid = np.empty((th * n, tw * n, 3), np.uint8)
    try:
        for _ in range(frames):
            for k, cap in enumerate(caps):
                ok, image = cap.read()
                if not ok:  # this tile's offset has reached the clip's end: from the start again
                    cap.release()
                    caps[k] = cap = _open(clip, 0)
                    ok, image = cap.read()
                    if not ok:
                        raise SourceError(f"cannot decode video file {clip}")
                r, c = divmod(k, n)
                grid[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
            writer.write(grid)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        writer.release()
        for cap in caps:
            cap.release()
    partial.replace(out)
    return out
