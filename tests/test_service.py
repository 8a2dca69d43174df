"""The daemon under systemd: unit file, sd_notify on a real socket, signals, reload, install."""

from __future__ import annotations

import ctypes.util
import json
import re
import shutil
import signal
import sqlite3
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import FER_EDGE, REPO, free_port, start_fer_edge


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def _collect(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            pass
    return out


def test_sd_notify_ready_watchdog_status_stopping(notify_socket, blank_clip, tmp_path):
    sock, path = notify_socket
    cfg = {"source": {"loop": True}, "service": {"status_interval_s": 0.5}}
    proc = start_fer_edge(tmp_path, blank_clip, cfg, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    try:
        msgs = _collect(sock, 4.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        msgs += _collect(sock, 0.5)
    finally:
        proc.kill()
    texts = [m for _, m in msgs]
    assert any("READY=1" in m for m in texts)
    pings = [t for t, m in msgs if m == "WATCHDOG=1"]
    assert len(pings) >= 4  # every 0.5 s (half of WATCHDOG_USEC) from the frame loop
    assert all(0.3 < b - a < 1.0 for a, b in zip(pings, pings[1:]))
    assert any(m.startswith("STATUS=") and "fps" in m for m in texts)
    assert "STOPPING=1" in texts[-1]


def test_sigterm_stops_cleanly_and_sighup_applies_a_changed_setting(blank_clip, tmp_path):
    cfg = {"source": {"loop": True}, "logging": {"level": "INFO"}}
    proc = start_fer_edge(tmp_path, blank_clip, cfg)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())  # as written, with its page's port
    try:
        time.sleep(3)
        cfg["logging"]["level"] = "DEBUG"
        cfg["pacer"] = {"fps": 5.0}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        (tmp_path / "config.yaml").write_text("pacer: {fps: -1}\n")  # a bad reload keeps the running config
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0 and time.monotonic() - t0 < 2.0
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert "config reloaded" in err and "reload rejected, keeping the running config" in err
    assert "pacer.fps" in err and "Traceback" not in err


def test_repeated_loop_failures_exit_non_zero(blank_clip, tmp_path, monkeypatch):
    from edge import service
    from edge.pipeline import Pipeline

    monkeypatch.setattr(Pipeline, "process", lambda self, frame: 1 / 0)
    opts = service.RunOptions(None, {"source.uri": str(blank_clip), "source.loop": True, "service.max_failures": 3,
                                      "http.enabled": False})
    assert service.Daemon(opts).run() == 1


def test_unit_file_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not available")
    unit = (REPO / "systemd" / "fer-edge.service").read_text().replace("/usr/local/bin/fer-edge", sys.executable)
    (tmp_path / "fer-edge.service").write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "fer-edge.service")], capture_output=True, text=True)
    assert r.returncode == 0 and "fer-edge.service" not in r.stderr, r.stderr
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes", "SupplementaryGroups=video",
                "ProtectSystem=strict", "NoNewPrivileges=yes", "RestrictAddressFamilies="):
        assert key in unit


def test_unit_scores_at_most_2_on_systemd_analyze_security(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not available")
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(REPO / "systemd" / "fer-edge.service")],
                       capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for fer-edge.service: ([0-9.]+)", r.stdout).group(1))
    assert score <= 2.0, r.stdout
    unit = (REPO / "systemd" / "fer-edge.service").read_text()
    for device in ("char-video4linux", "char-media", "char-dma_heap"):  # the camera stays reachable
        assert f"DeviceAllow={device} rw" in unit


def test_daemon_runs_under_the_units_system_call_filter_and_memory_deny_write_execute(face_clip, tmp_path):
    if not shutil.which("systemd-analyze") or not ctypes.util.find_library("seccomp"):
        pytest.skip("systemd-analyze or libseccomp not available")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"http": {"port": free_port()}, "history": {"path": str(tmp_path / "h.db")}}))
    r = subprocess.run([sys.executable, "tests/confine.py", "systemd/fer-edge.service", "--", *FER_EDGE, "--source",
                        str(face_clip), "--print", "--config", str(cfg)], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    kinds = [json.loads(line)["type"] for line in r.stdout.splitlines()]
    assert kinds.count("event") >= 2 and kinds.count("visit") == 1, r.stderr  # LiteRT, OpenCV, the page ran
    assert sqlite3.connect(tmp_path / "h.db").execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 1  # SQLite too
    probe = "import mmap; mmap.mmap(-1, 4096, prot=7)"  # read, write and execute: what the unit forbids
    r = subprocess.run([sys.executable, "tests/confine.py", "systemd/fer-edge.service", "--", sys.executable, "-c", probe],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Permission denied" in r.stderr


def test_install_service_into_a_root(tmp_path):
    r = subprocess.run([*FER_EDGE, "install-service", "--root", str(tmp_path), "--no-enable"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    unit = (tmp_path / "etc/systemd/system/fer-edge.service").read_text()
    assert f"ExecStart={Path(sys.executable).parent / 'fer-edge'} --config /etc/fer-edge/config.yaml" in unit
    config = tmp_path / "etc/fer-edge/config.yaml"
    assert "path: /usr/local/share/fer-edge/fer_int8.tflite" in config.read_text()
    assert (tmp_path / "usr/local/share/fer-edge/fer_int8.json").is_file()


def test_doctor_passes_with_a_real_broker_and_clip_and_names_each_fix(broker, face_clip, tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(yaml.safe_dump({"mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port},
                                   "http": {"port": free_port()}}))
    r = subprocess.run([*FER_EDGE, "doctor", "--config", str(cfg), "--source", str(face_clip)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == ["config", "model", "haar", "camera", "mqtt", "http", "thermal",
                                                       "memory"]
    assert all(line.startswith(("ok", "warn")) for line in lines[:-1]) and lines[-1] == "all checks passed"
    assert f"127.0.0.1:{broker.port} accepted anonymous" in r.stdout

    broker.stop()  # now the broker is gone, and so is the camera
    r = subprocess.run([*FER_EDGE, "doctor", "--config", str(cfg), "--source", "/dev/video99"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout.splitlines()[-1] == "2 check(s) failed"
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split()[1] for line in failed] == ["camera", "mqtt"]
    assert all("  -> " in line for line in failed)  # each with its fix, on its one line
    assert "Traceback" not in r.stderr
