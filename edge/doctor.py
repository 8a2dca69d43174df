"""`fer-edge doctor`: the checks a Pi user needs, one line each with a fix; exit 0 when none fails."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.service import RunOptions, resolve_config

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    status: str
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<8} {self.detail}" + (f"  -> {self.fix}" if self.fix else "")


def _config(opts: RunOptions) -> tuple[Check, object]:
    from edge.config import ConfigError

    try:
        cfg = resolve_config(opts)
    except ConfigError as e:
        return Check(FAIL, "config", str(e), "correct the key named above (config.yaml documents every option)"), None
    return Check(OK, "config", f"{opts.config_path or 'built-in defaults'} is valid"), cfg


def _model(cfg) -> Check:
    from edge.classifier import Classifier, ModelError

    try:
        clf = Classifier(cfg.model.path, num_threads=cfg.model.num_threads)
    except ModelError as e:
        return Check(FAIL, "model", str(e), "model.path must name fer_int8.tflite with its fer_int8.json card beside it")
    return Check(OK, "model", f"{cfg.model.path}: {len(clf.labels)} labels, input {clf.input_size[0]}x{clf.input_size[1]}")


def _haar(cfg) -> Check:
    from edge.detector import DetectorError, FaceDetector, default_cascade

    try:
        FaceDetector(cfg.detector)
    except DetectorError as e:
        return Check(FAIL, "haar", str(e), "reinstall opencv-python-headless (>=4.8,<5), which ships the Haar files")
    return Check(OK, "haar", f"{cfg.detector.cascade or default_cascade()}")


def _camera(cfg, seconds: float = 2.0) -> Check:
    from edge.sources import SourceError, open_source

    try:
        source = open_source(cfg.source)
    except SourceError as e:
        fix = ("check the ribbon cable and `rpicam-hello --list-cameras`" if cfg.source.uri == "picamera"
               else "check source.uri (`v4l2-ctl --list-devices` lists cameras), or pass --source")
        return Check(FAIL, "camera", str(e), fix)
    frames, shape, t0 = 0, None, time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            image = source.read()
            if image is None:
                break
            frames, shape = frames + 1, image.shape
    finally:
        source.close()
    elapsed = time.monotonic() - t0
    if not frames:
        return Check(FAIL, "camera", f"{cfg.source.uri} opened but delivered no frame",
                     "another process may hold the camera (`fuser /dev/video*`), or the stream is silent")
    rate = frames / elapsed
    if not source.live:
        return Check(OK, "camera", f"{cfg.source.uri}: a video file, {shape[1]}x{shape[0]} at {source.fps or 0:.1f} FPS")
    detail = f"{cfg.source.uri}: {frames} frames in {elapsed:.1f} s ({rate:.1f} FPS), {shape[1]}x{shape[0]}"
    if rate < min(cfg.pacer.fps or 30, 30) * 0.8:
        return Check(WARN, "camera", detail, "the camera delivers fewer frames than pacer.fps: lower pacer.fps, "
                     "or the resolution (source.width/height), or improve the light")
    return Check(OK, "camera", detail)


def _broker(cfg, timeout: float = 5.0) -> Check:
    if not cfg.mqtt.enabled:
        return Check(OK, "mqtt", "off (mqtt.enabled: false)")
    import paho.mqtt.client as mqtt

    from edge.publish.mqtt import apply_credentials

    m = cfg.mqtt
    result: dict = {}
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fer-edge-doctor-{m.device_id}")
    apply_credentials(client, m)

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        result["reason"] = reason_code
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(m.host, m.port, keepalive=10)
        client.loop_start()
        done.wait(timeout)
    except OSError as e:
        return Check(FAIL, "mqtt", f"{m.host}:{m.port}: {e.strerror or e}",
                     "is the broker running (`systemctl status mosquitto`) and mqtt.host/port right?")
    finally:
        client.loop_stop()
        client.disconnect()
    reason = result.get("reason")
    if reason is None:
        return Check(FAIL, "mqtt", f"{m.host}:{m.port}: no answer in {timeout:g} s", "a firewall, or TLS on a plain port?")
    if reason.is_failure:
        return Check(FAIL, "mqtt", f"{m.host}:{m.port} refused the connection: {reason}",
                     "check mqtt.username and the password (mqtt.password_file or FER_EDGE_MQTT_PASSWORD)")
    return Check(OK, "mqtt", f"{m.host}:{m.port} accepted {'user ' + m.username if m.username else 'anonymous'} "
                 f"({'TLS' if m.tls.ca else 'plain'})")


def _http(cfg) -> Check:
    if not cfg.http.enabled:
        return Check(OK, "http", "off (http.enabled: false)")
    with socket.socket(socket.AF_INET6 if ":" in cfg.http.host else socket.AF_INET) as s:
        try:
            s.bind((cfg.http.host, cfg.http.port))
        except OSError as e:
            return Check(FAIL, "http", f"cannot listen on {cfg.http.host}:{cfg.http.port}: {e.strerror}",
                         "is fer-edge already running (its page uses the port)? else set http.port")
    return Check(OK, "http", f"the page can listen on http://{cfg.http.host}:{cfg.http.port}/"
                 + ("" if cfg.http.loopback else " (token required)"))


def _temperature() -> Check:
    from edge.stats import cpu_temperature

    temp = cpu_temperature()
    vcgencmd = shutil.which("vcgencmd")
    throttled = None
    if vcgencmd:
        out = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
        throttled = int(out.strip().split("=")[-1], 16) if "=" in out else None
    detail = f"CPU {temp:.1f} °C" if temp is not None else "CPU temperature not readable (/sys/class/thermal)"
    if throttled:  # bits 0-3: now; 16-19: since boot (under-voltage, capped, throttled, soft limit)
        now = throttled & 0xF
        detail += f", vcgencmd get_throttled=0x{throttled:x}"
        return Check(FAIL if now else WARN, "thermal", detail,
                     "under-voltage or heat: use the official power supply and a heatsink or fan")
    if temp is not None and temp >= 80:
        return Check(WARN, "thermal", detail, "the Pi throttles at 80-85 °C: add a heatsink or fan")
    return Check(OK, "thermal", detail + (", not throttled" if vcgencmd else ""))


def _memory() -> Check:
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(info["MemAvailable"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return Check(WARN, "memory", "cannot read /proc/meminfo")
    if available < 150:
        return Check(FAIL, "memory", f"{available:.0f} MB available; fer-edge needs about 120 MB",
                     "stop other services, or add swap")
    return Check(OK, "memory", f"{available:.0f} MB available (fer-edge uses about 100-120 MB)")


def doctor(opts: RunOptions, print_line: Callable[[str], None] = print) -> int:
    """Run every check, print one line each; 1 if any failed."""
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        print_line(check.line())

    first, cfg = _config(opts)
    report(first)
    if cfg is not None:
        for check in (_model, _haar, _camera, _broker, _http):
            report(check(cfg))
    report(_temperature())
    report(_memory())
    failed = sum(c.status == FAIL for c in checks)
    print_line(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0
