"""Shared fixtures: the shipped model, generated clips and drawn faces, the optional real clips, a real mosquitto."""

from __future__ import annotations

import getpass
import http.server
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge import synthetic
from edge.benchmark import free_port
from edge.synthetic import write_clip

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
VIDEOS = SHARED / "videos"
FER_EDGE = [sys.executable, "-m", "edge.cli"]  # the fer-edge command, from this checkout


def start_fer_edge(tmp_path: Path, source: Path, cfg: dict, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """The daemon with `cfg` as its config.yaml (in `tmp_path`), on `source`; stdout and stderr piped."""
    path = tmp_path / "config.yaml"
    cfg = {**cfg, "http": {"port": free_port(), **cfg.get("http", {})}}  # never the shared default port
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen([*FER_EDGE, "--config", str(path), "--source", str(source), *extra], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(predicate, timeout: float = 15.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session", autouse=True)
def state_directory(tmp_path_factory) -> Path:
    """The daemons the tests start keep their history here, not in /var/lib/fer-edge."""
    path = tmp_path_factory.mktemp("state")
    os.environ["STATE_DIRECTORY"] = str(path)
    return path


@pytest.fixture(scope="session")
def model() -> Path:
    return REPO / "models" / "fer_int8.tflite"


class MJPEGStream:
    """A real HTTP MJPEG camera stream (multipart/x-mixed-replace) on loopback, ~30 frames/s,
    that can go silent (connections held open, no bytes) and come back."""

    def __init__(self, image: np.ndarray | None = None):
        image = np.full((240, 320, 3), 128, np.uint8) if image is None else image
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
        self.sending = threading.Event()
        self.sending.set()
        stream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while True:
                        if stream.sending.is_set():
                            self.wfile.write(part)
                        time.sleep(1 / 30)
                except OSError:  # the client went away
                    pass

            def log_message(self, *args) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def mjpeg_stream() -> Iterator[MJPEGStream]:
    stream = MJPEGStream()
    yield stream
    stream.server.shutdown()
    stream.server.server_close()


@pytest.fixture
def face_stream() -> Iterator[MJPEGStream]:
    """An MJPEG camera stream showing the drawn face."""
    stream = MJPEGStream(synthetic.face_frame(tense=True))
    yield stream
    stream.server.shutdown()
    stream.server.server_close()


@pytest.fixture(scope="session")
def blank_clip(tmp_path_factory) -> Path:
    """60 faceless 320x240 frames at 30 FPS."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (240, 320), np.uint8) for _ in range(60)]
    return write_clip(tmp_path_factory.mktemp("clips") / "blank.avi", frames)


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory) -> Path:
    """4.5 s at 30 FPS of one drawn face: tense, calm, tense (1.5 s each)."""
    return synthetic.face_clip(tmp_path_factory.mktemp("clips") / "face.avi", 135)


@pytest.fixture(scope="session")
def visits_clip(tmp_path_factory) -> Path:
    """The drawn face comes for 1.5 s and leaves for 0.67 s, twice (tense, then calm)."""
    return synthetic.visits_clip(tmp_path_factory.mktemp("clips") / "visits.avi")


@pytest.fixture(scope="session")
def face_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "face.png"
    cv2.imwrite(str(path), synthetic.face_frame(tense=True))
    return path


@pytest.fixture(scope="session")
def face_video() -> Path:
    path = VIDEOS / "woman2.mp4"
    if not path.exists():
        pytest.skip("real clips not present (../shared/data/videos)")
    return path


class Broker:
    """A real mosquitto on a loopback port, stoppable and restartable on the same port."""

    def __init__(self, workdir: Path, extra: str = ""):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\npersistence false\nuser {getpass.getuser()}\n"
                             f"{extra or 'allow_anonymous true'}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def broker_factory(tmp_path):
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("mosquitto not installed (make test installs it)")
    brokers: list[Broker] = []

    def make(extra: str = "") -> Broker:
        b = Broker(tmp_path, extra).start()
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()
