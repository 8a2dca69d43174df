"""The HTTP page and API against a running daemon on a clip: real HTTP, real sockets, the schemas."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from edge.benchmark import mjpeg_parts
from tests.conftest import FER_EDGE, REPO, free_port, start_fer_edge, wait_for

SCHEMAS = {p.name.split(".")[0]: json.loads(p.read_text()) for p in (REPO / "schemas").glob("*.schema.json")}


class Daemon:
    """fer-edge on a looping clip with its page on a free port."""

    def __init__(self, tmp_path: Path, source: Path, http: dict | None = None, env: dict | None = None,
                 cfg: dict | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = {**(cfg or {}), "source": {"loop": True}, "http": {"port": self.port, **(http or {})}}
        self.proc = start_fer_edge(tmp_path, source, cfg, env=env)
        if not wait_for(lambda: self.proc.poll() is not None or self._up(), timeout=30) or self.proc.poll() is not None:
            raise RuntimeError(f"fer-edge did not serve: {self.proc.communicate(timeout=10)[1]}")

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes, str]:
        return request(self.base + path, headers=headers)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def request(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None
            ) -> tuple[int, bytes, str]:
    """(status, body, content type) of one request; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def sse_messages(port: int, want: set[str], timeout: float = 20.0, path: str = "/api/events") -> dict[str, list[dict]]:
    """Read the event stream until every kind in `want` has been seen."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    seen: dict[str, list[dict]] = {}
    kind = None
    deadline = time.monotonic() + timeout
    while not want <= set(seen) and time.monotonic() < deadline:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind:
            seen.setdefault(kind, []).append(json.loads(line[6:]))
    conn.close()
    return seen


def mjpeg_frames(port: int, n: int, path: str = "/stream.mjpg") -> list[np.ndarray]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200 and "multipart/x-mixed-replace" in resp.getheader("Content-Type")
    parts = mjpeg_parts(resp)
    frames = [cv2.imdecode(np.frombuffer(next(parts), np.uint8), cv2.IMREAD_COLOR) for _ in range(n)]
    conn.close()
    return frames


@pytest.fixture
def daemon(tmp_path, face_clip):
    d = Daemon(tmp_path, face_clip)
    yield d
    d.stop()


def test_api_and_event_stream_deliver_schema_valid_payloads(daemon):
    assert wait_for(lambda: daemon.get("/api/state")[0] == 200)
    status, body, kind = daemon.get("/api/state")
    assert kind.startswith("application/json")
    jsonschema.validate(json.loads(body), SCHEMAS["state"])
    status, body, _ = daemon.get("/api/stats")
    assert status == 200
    jsonschema.validate(json.loads(body), SCHEMAS["stats"])
    seen = sse_messages(daemon.port, {"event", "state", "stats"})
    for name in ("event", "state", "stats"):
        assert seen.get(name), name
        for payload in seen[name]:
            jsonschema.validate(payload, SCHEMAS[name])
    health = json.loads(daemon.get("/healthz")[1])
    assert health["status"] == "ok" and health["preview"] is True and len(health["labels"]) == 7


def test_preview_stream_yields_annotated_jpeg_frames(daemon):
    frames = mjpeg_frames(daemon.port, 3)
    assert all(f is not None and f.shape == (240, 320, 3) for f in frames)  # the clip's size (under 640 px)
    assert any(np.abs(f[..., 2].astype(int) - f[..., 0]).max() > 60 for f in frames)  # coloured boxes drawn


def test_predict_returns_the_same_answer_as_the_cli_and_clear_errors(daemon, face_image, tmp_path):
    jpeg = cv2.imencode(".jpg", cv2.imread(str(face_image)))[1].tobytes()
    status, body, _ = request(daemon.base + "/predict", jpeg, {"Content-Type": "image/jpeg"})
    answer = json.loads(body)
    assert status == 200 and answer["faces"]
    cv2.imwrite(str(tmp_path / "same.jpg"), cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    cli = subprocess.run([*FER_EDGE, "predict", str(tmp_path / "same.jpg")], cwd=REPO, capture_output=True, text=True)
    assert json.loads(cli.stdout)["faces"] == json.loads(request(daemon.base + "/predict", (tmp_path / "same.jpg").read_bytes())[1])["faces"]
    annotated = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(answer["image_jpeg_b64"]), np.uint8), 1)
    assert annotated is not None and annotated.shape[:2] == cv2.imread(str(face_image)).shape[:2]
    # a multipart form, as the page's drop zone or curl -F sends it
    boundary = uuid.uuid4().hex
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    status, body, _ = request(daemon.base + "/predict", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and json.loads(body)["faces"] == answer["faces"]
    status, body, kind = request(daemon.base + "/predict?format=jpeg", jpeg)
    assert status == 200 and kind == "image/jpeg" and body[:2] == b"\xff\xd8"
    # bad uploads: one clear JSON error each, never a 500
    blank = cv2.imencode(".png", np.full((300, 300), 128, np.uint8))[1].tobytes()
    for data, code, words in ((b"not an image at all", 415, "not an image"), (b"", 400, "empty body"),
                              (blank, 422, "no face"), (b"\xff" * (11 * 2**20), 413, "larger than")):
        status, body, kind = request(daemon.base + "/predict", data, {"Content-Type": "application/octet-stream"})
        assert (status, kind.split(";")[0]) == (code, "application/json") and words in json.loads(body)["error"]
    for path, method, code in (("/nope", "GET", 404), ("/api/state", "DELETE", 405), ("/predict", "GET", 405)):
        status, body, _ = request(daemon.base + path, method=method)
        assert status == code and "error" in json.loads(body)


def test_beyond_loopback_every_request_needs_the_token_and_the_preview_is_off(tmp_path, face_clip):
    cfg = {"http": {"host": "0.0.0.0", "port": free_port()}}
    no_token = start_fer_edge(tmp_path, face_clip, cfg, "--duration", "3")
    err = no_token.communicate(timeout=60)[1]
    assert no_token.returncode == 2 and err.count("\n") == 1 and "http.host 0.0.0.0" in err and "token" in err
    d = Daemon(tmp_path, face_clip, {"host": "0.0.0.0"}, env={"FER_EDGE_HTTP_TOKEN": "s3cret"})
    try:
        for path in ("/", "/api/state", "/healthz", "/api/events", "/stream.mjpg"):
            status, body, _ = d.get(path)
            assert status == 401 and "token" in json.loads(body)["error"], path
        assert d.get("/healthz", {"Authorization": "Bearer s3cret"})[0] == 200
        assert d.get("/healthz?token=s3cret")[0] == 200
        assert d.get("/healthz?token=wrong")[0] == 401
        status, body, _ = d.get("/stream.mjpg?token=s3cret")  # camera frames stay on the device
        assert status == 404 and "preview is off" in json.loads(body)["error"]
    finally:
        d.stop()


def test_preview_off_means_no_image_endpoint(tmp_path, face_clip):
    d = Daemon(tmp_path, face_clip, {"preview": False})
    try:
        assert d.get("/stream.mjpg")[0] == 404
        assert json.loads(d.get("/healthz")[1])["preview"] is False
    finally:
        d.stop()


def test_a_stalled_client_neither_slows_the_loop_nor_grows_memory(tmp_path, face_clip):
    d = Daemon(tmp_path, face_clip, {"max_clients": 8})
    stalled = []
    try:
        assert wait_for(lambda: d.get("/api/stats")[0] == 200)
        for path in ("/stream.mjpg", "/api/events"):  # connect, ask, then never read a byte
            s = socket.create_connection(("127.0.0.1", d.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            stalled.append(s)
        time.sleep(2)
        before = json.loads(d.get("/api/stats")[1])
        time.sleep(8)
        after = json.loads(d.get("/api/stats")[1])
        fps = (after["frames"] - before["frames"]) / (after["uptime_s"] - before["uptime_s"])
        assert fps >= 0.9 * 30  # config.yaml's 30 FPS target, held
        assert after["rss_mb"] - before["rss_mb"] < 15
        frames = mjpeg_frames(d.port, 2)  # others are still served
        assert all(f is not None for f in frames)
    finally:
        for s in stalled:
            s.close()
        d.stop()


def test_port_in_use_is_one_line(tmp_path, face_clip):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        proc = start_fer_edge(tmp_path, face_clip, {"http": {"port": s.getsockname()[1]}}, "--duration", "3")
        err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 2 and err.startswith("fer-edge: error: http: cannot listen") and err.count("\n") == 1
