"""Frame sources (OpenCV, picamera2) behind one small interface, and the latest-frame grabber."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.config import SourceConfig
from edge.priority import lower_this_thread
from edge.records import Frame

log = logging.getLogger(__name__)

# OpenCV's and FFmpeg's own warnings ("can't open camera by index", stream timeouts) would bury
# the one-line errors below; OPENCV_FFMPEG_LOGLEVEL set in the environment still wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "0")
if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):  # OpenCV >= 4.13
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
else:  # up to 4.12 (gone in 4.14)
    cv2.setLogLevel(2)  # LOG_LEVEL_ERROR


class SourceError(Exception):
    """A source that cannot be opened, with a one-line message."""


class FrameSource(Protocol):
    live: bool  # a camera or stream (reopened when lost) rather than a file
    fps: float | None  # frame rate a file is played at (its own, or source.playback_fps), when known

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...  # gray uint8 frame; None when the source ended or failed
    def close(self) -> None: ...


def _is_url(uri: str) -> bool:
    return "://" in uri


class OpenCVSource:
    """cv2.VideoCapture: a camera index, /dev/videoN, a video file or an RTSP/HTTP URL."""

    def __init__(self, uri: str, loop: bool = False, width: int | None = None, height: int | None = None,
                 timeout_s: float = 10.0):
        self.uri, self.loop, self.size, self.timeout_s = uri, loop, (width, height), timeout_s
        self.live = uri.isdigit() or uri.startswith("/dev/video") or _is_url(uri)
        self.fps: float | None = None
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if not self.live and not Path(self.uri).is_file():
            raise SourceError(f"video file not found: {self.uri}")
        if _is_url(self.uri):  # FFmpeg would wait 30 s for a silent stream, on open and on every read
            ms = int(self.timeout_s * 1000)
            cap = cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        elif self.live:
            cap = cv2.VideoCapture(int(self.uri) if self.uri.isdigit() else self.uri)
        else:  # on the grabber's own thread: FFmpeg's frame threads cost 30 % more CPU on small frames
            cap = cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
            if not cap.isOpened():  # a format only another backend reads
                cap = cv2.VideoCapture(self.uri)
        if not cap.isOpened():
            cap.release()
            if not self.live:
                raise SourceError(f"cannot decode video file {self.uri}")
            if _is_url(self.uri):
                raise SourceError(f"cannot open stream {self.uri} (unreachable, not a video stream, "
                                  f"or nothing received within source.timeout_s = {self.timeout_s:g} s)")
            raise SourceError(f"cannot open camera {self.uri} (no camera? pass a clip or stream, "
                              "e.g. --source ../shared/data/videos/woman2.mp4)")
        if self.live and self.size[0] and self.size[1]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        if not self.live:
            ok, _ = cap.read()
            if not ok:
                cap.release()
                raise SourceError(f"cannot decode video file {self.uri}")
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if not ok and self.loop and not self.live:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok:
            return None
        return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Source:
    """Raspberry Pi camera via picamera2: the Y plane of a `lores` YUV420 stream is the gray frame."""

    live = True

    def __init__(self, width: int | None = None, height: int | None = None, fps: float = 30.0):
        self.size = (width or 640, height or 480)
        self.fps: float | None = fps
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("picamera2 is not installed: apt install python3-picamera2 and use a venv "
                              "with --system-site-packages") from None
        except Exception as e:  # e.g. "numpy.dtype size changed": a venv numpy other than Debian's
            raise SourceError(f"picamera2 cannot be imported ({type(e).__name__}: {str(e).splitlines()[0]}); "
                              "the venv's numpy must be the one Debian built picamera2 for: "
                              "pip install 'fer-edge[pi]' pins it (README, On a Raspberry Pi)") from None
        try:
            cam = Picamera2()
            w, h = self.size
            config = cam.create_video_configuration(
                main={"size": (w, h)}, lores={"size": (w, h), "format": "YUV420"},
                controls={"FrameRate": self.fps})
            cam.configure(config)
            cam.start()
        except Exception as e:  # libcamera raises RuntimeError, IndexError (no camera), OSError ...
            raise SourceError(f"cannot start the Pi camera: {e}") from None
        self._cam = cam

    def read(self) -> np.ndarray | None:
        if self._cam is None:
            return None
        try:
            yuv = self._cam.capture_array("lores")
        except Exception as e:  # the camera went away
            log.warning("Pi camera read failed: %s", e)
            return None
        w, h = self.size
        return np.ascontiguousarray(yuv[:h, :w])

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


def open_source(cfg: SourceConfig) -> FrameSource:
    """Build and open the configured source; raises SourceError with a one-line message."""
    kind = cfg.kind
    if kind == "auto":
        kind = "picamera2" if cfg.uri == "picamera" else "opencv"
    source: FrameSource
    if kind == "picamera2":
        source = Picamera2Source(cfg.width, cfg.height)
    else:
        source = OpenCVSource(cfg.uri, cfg.loop, cfg.width, cfg.height, cfg.timeout_s)
    source.open()
    if cfg.playback_fps and not source.live:
        source.fps = cfg.playback_fps
    return source


class Grabber(threading.Thread):
    """Reads frames in a thread and always hands out the latest one; older unread frames are dropped.

    A file source in `realtime` mode is paced at its own FPS, like a camera; with `realtime` off
    the grabber waits for each frame to be taken, so every frame is processed (as fast as possible).
    A live source that fails is reopened with exponential backoff while the daemon stays up.
    """

    def __init__(self, source: FrameSource, realtime: bool = True, backoff: tuple[float, float] = (0.5, 5.0)):
        super().__init__(name="grabber", daemon=True)
        self.source, self.backoff = source, backoff
        self.realtime = realtime or source.live
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken = -1
        self._halt = threading.Event()
        self.ended = False
        self.connected = True
        self.frames = 0
        self.dropped = 0
        self.reconnects = 0
        self.read_ms: deque[float] = deque(maxlen=4096)  # time to read+decode each frame
        self.cpu_s = 0.0  # this thread's CPU time (reading, decoding where the decoder has no threads of its own, converting)

    def run(self) -> None:
        lower_this_thread(5)  # the loop first: it cannot take the next frame before it is done with this one
        period = 1.0 / self.source.fps if self.realtime and not self.source.live and self.source.fps else 0.0
        start = time.monotonic()
        while not self._halt.is_set():
            if period:
                delay = start + self.frames * period - time.monotonic()
                if delay > 0 and self._halt.wait(delay):
                    break
            t0, c0 = time.perf_counter(), time.thread_time()
            image = self.source.read()
            if image is None:
                if self.source.live and self._reopen():
                    continue
                break
            self.read_ms.append((time.perf_counter() - t0) * 1000)
            self.cpu_s += time.thread_time() - c0
            frame = Frame(image, self.frames, time.monotonic(), time.time())
            with self._cond:
                if not self.realtime:
                    self._cond.wait_for(lambda: self._latest is None or self._taken >= self._latest.index or self._halt.is_set())
                elif self._latest is not None and self._taken < self._latest.index:
                    self.dropped += 1
                self._latest = frame
                self.frames += 1
                self._cond.notify_all()
        with self._cond:
            self.ended = True
            self._cond.notify_all()
        if self._halt.is_set():
            self.source.close()

    def _reopen(self) -> bool:
        """Reopen a lost live source with a doubling, jittered delay; False once stopped.
        Failed attempts are logged once a minute, not each time."""
        self.connected = False
        log.warning("camera lost; reopening (retries every %g-%g s)", *self.backoff)
        delay, attempts, lost_at, next_log = self.backoff[0], 0, time.monotonic(), time.monotonic() + 60
        while not self._halt.wait(delay * random.uniform(0.8, 1.2)):
            self.source.close()
            attempts += 1
            try:
                self.source.open()
            except Exception as e:  # every open failure is retried the same way
                if time.monotonic() >= next_log:
                    next_log += 60
                    log.warning("camera still lost after %d attempts in %.0f s: %s", attempts,
                                time.monotonic() - lost_at, e)
                delay = min(delay * 2, self.backoff[1])
                continue
            self.reconnects += 1
            self.connected = True
            log.info("camera reopened after %.1f s (%d attempts)", time.monotonic() - lost_at, attempts)
            return True
        return False

    def get(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not yet taken; None on timeout or when the source has ended."""
        with self._cond:
            ready = self._cond.wait_for(
                lambda: (self._latest is not None and self._latest.index > self._taken) or self.ended, timeout)
            if not ready or self._latest is None or self._latest.index <= self._taken:
                return None
            self._taken = self._latest.index
            self._cond.notify_all()
            return self._latest

    def stop(self) -> None:
        """Stop reading and close the source; a read blocked on a silent stream (up to
        source.timeout_s) closes it itself when it returns, as releasing it under the read would crash."""
        self._halt.set()
        with self._cond:
            self._cond.notify_all()
        self.join(timeout=2.0)
        if not self.is_alive():
            self.source.close()
