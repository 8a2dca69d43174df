"""MQTT contract against a real mosquitto: payloads, outage buffering, Last Will, auth and TLS."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import jsonschema
import paho.mqtt.client as mqtt
import pytest

from edge.config import MQTTConfig
from edge.mood import VALENCE
from edge.publish.mqtt import MQTTPublisher
from tests.conftest import REPO, start_fer_edge, wait_for

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SCHEMAS = {p.name.split(".")[0]: json.loads(p.read_text()) for p in (REPO / "schemas").glob("*.schema.json")}


class Subscriber:
    """A real paho client that records (topic, payload, retain) of everything it sees."""

    def __init__(self, port: int, topics=("fer-edge/#", "homeassistant/#")):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self._add(m)
        self.client.connect("127.0.0.1", port)
        for t in topics:
            self.client.subscribe(t, qos=1)
        self.client.loop_start()

    def _add(self, m) -> None:
        with self._lock:
            self.messages.append((m.topic, m.payload, m.retain))

    def payloads(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def seqs(sub: Subscriber) -> list[int]:
    return [json.loads(p)["seq"] for p in sub.payloads("/event")]


def daemon(tmp_path: Path, port: int, source: Path, *extra: str, mqtt_extra: dict | None = None) -> subprocess.Popen:
    cfg = {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": port, "device_id": "testcam",
                    "stats_interval_s": 0.5, **(mqtt_extra or {})}, "source": {"loop": True}}
    return start_fer_edge(tmp_path, source, cfg, *extra)


def test_pipeline_run_publishes_the_documented_payloads(broker, face_clip, tmp_path):
    sub = Subscriber(broker.port)
    proc = daemon(tmp_path, broker.port, face_clip, "--duration", "8")
    assert proc.wait(60) == 0, proc.stderr.read()
    assert wait_for(lambda: b"stopped" in sub.payloads("/availability"))
    sub.close()
    assert sub.payloads("testcam/availability")[0] == b"online"
    for name, suffix in (("event", "testcam/event"), ("state", "testcam/state"), ("stats", "testcam/stats"),
                         ("visit", "testcam/visit")):
        payloads = sub.payloads(suffix)
        assert payloads, name
        for p in payloads:
            jsonschema.validate(json.loads(p), SCHEMAS[name])
    assert seqs(sub) == list(range(1, len(seqs(sub)) + 1))
    [visit] = map(json.loads, sub.payloads("testcam/visit"))  # the face "leaves" when the daemon stops
    assert [e["emotion"] for e in visit["events"]] == [json.loads(p)["emotion"] for p in sub.payloads("testcam/event")]
    assert json.loads(sub.payloads("testcam/state")[0])["camera"] == "starting"
    configs = {t: json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/") and p}
    assert set(configs) == {f"homeassistant/{c}/testcam/{k}/config" for c, k in (
        ("sensor", "dominant_emotion"), ("sensor", "face_count"), ("sensor", "mood"), ("event", "emotion"),
        ("sensor", "visits_today"), ("event", "visit"), ("binary_sensor", "camera"), ("sensor", "fps"), ("sensor", "cpu_temperature"), ("sensor", "events_dropped"))}
    for c in configs.values():
        jsonschema.validate(c, SCHEMAS["discovery"])
        assert c["availability"][0]["topic"] == "fer-edge/testcam/availability"
        assert c["origin"]["name"] == "fer-edge" and c["origin"]["sw_version"]
    assert configs["homeassistant/event/testcam/emotion/config"]["event_types"] == list(LABELS)
    assert configs["homeassistant/event/testcam/visit/config"]["state_topic"] == "fer-edge/testcam/visit"
    assert configs["homeassistant/sensor/testcam/visits_today/config"]["state_class"] == "total_increasing"
    dominant = configs["homeassistant/sensor/testcam/dominant_emotion/config"]
    assert dominant["device_class"] == "enum" and dominant["options"] == [*LABELS, "none"]
    assert configs["homeassistant/sensor/testcam/mood/config"]["state_class"] == "measurement"
    diagnostics = {t.split("/")[3] for t, c in configs.items() if c.get("entity_category") == "diagnostic"}
    assert diagnostics == {"camera", "fps", "cpu_temperature", "events_dropped"}
    assert not any("jpeg" in p.decode() for p in sub.payloads("/event"))  # no image data by default
    assert not sub.payloads("testcam/image")
    # the mood: each face's expected valence under its smoothed probabilities (the event's scores)
    states = {json.loads(p)["ts"]: json.loads(p) for p in sub.payloads("testcam/state")}
    moods = []
    for e in map(json.loads, sub.payloads("testcam/event")):
        [face] = [f for f in states[e["ts"]]["faces"] if f["id"] == e["face_id"]]
        assert abs(face["mood"] - 100 * sum(p * VALENCE[k] for k, p in e["scores"].items())) <= 1
        moods.append((VALENCE[e["emotion"]], face["mood"]))
    assert len(moods) >= 2
    for (was, mood_was), (now, mood_now) in zip(moods, moods[1:]):  # the mood follows the emotion's valence
        assert (now - was) * (mood_now - mood_was) > 0


def test_discovery_is_sent_again_when_home_assistant_comes_online(broker):
    pub = MQTTPublisher(MQTTConfig(enabled=True, host="127.0.0.1", port=broker.port, device_id="ha"), LABELS)
    sub = Subscriber(broker.port, topics=("homeassistant/+/ha/#",))
    pub.start()
    configs = lambda: [t for t, p, _ in sub.messages if p]  # noqa: E731
    assert wait_for(lambda: len(configs()) == 10)
    sub.client.publish("homeassistant/status", "online", qos=1)  # what HA sends after a restart
    assert wait_for(lambda: len(configs()) == 20)
    pub.close()
    sub.close()


def _publisher(port: int, **kw) -> MQTTPublisher:
    pub = MQTTPublisher(MQTTConfig(enabled=True, host="127.0.0.1", port=port, device_id="buf", keepalive=5,
                                   discovery={"enabled": False}, **kw), LABELS)
    pub.start()
    return pub


def _event(seq: int) -> dict:
    return {"seq": seq, "device_id": "buf", "ts": "2026-01-01T00:00:00.000+00:00", "face_id": 1, "emotion": "happy",
            "previous": None, "confidence": 0.9, "scores": {k: 0.1 for k in LABELS}, "box": [0, 0, 10, 10]}


def _outage(broker, pub: MQTTPublisher, events: range) -> Subscriber:
    """Publish `events` while the broker is down, restart it, and subscribe for the replay."""
    broker.stop()
    assert wait_for(lambda: not pub.connected)
    for i in events:
        pub.event(_event(i))
    broker.start()
    return Subscriber(broker.port)


def _five_delivered(pub: MQTTPublisher, sub: Subscriber) -> None:
    """Once connected, events 1-5 reach the subscriber."""
    assert wait_for(lambda: pub.connected)
    for i in range(1, 6):
        pub.event(_event(i))
    assert wait_for(lambda: seqs(sub) == [1, 2, 3, 4, 5])


def test_events_during_an_outage_arrive_in_order_after_reconnect(broker):
    pub = _publisher(broker.port, buffer_size=100)
    sub = Subscriber(broker.port)
    try:
        _five_delivered(pub, sub)
        sub2 = _outage(broker, pub, range(6, 31))
        assert pub.dropped == 0
        assert wait_for(lambda: len(seqs(sub2)) >= 25, timeout=30)
        assert seqs(sub2) == list(range(6, 31))  # in order, no gaps
        sub2.close()
    finally:
        pub.close()
        sub.close()


def test_buffer_overflow_drops_the_oldest_and_counts_them(broker, caplog):
    caplog.set_level(logging.WARNING, "fer-edge.mqtt")
    pub = _publisher(broker.port, buffer_size=5)
    try:
        assert wait_for(lambda: pub.connected)
        sub = _outage(broker, pub, range(1, 13))
        assert pub.dropped == 7
        assert wait_for(lambda: len(seqs(sub)) >= 5, timeout=30)
        assert seqs(sub) == [8, 9, 10, 11, 12]
        sub.close()
        dropped = [r.message for r in caplog.records if "dropped while the broker was unreachable" in r.message]
        assert dropped == ["MQTT: 7 event(s) dropped while the broker was unreachable (mqtt.buffer_size 5)"]
    finally:
        pub.close()


@pytest.mark.parametrize("buffer_size", [1000, 5])
def test_half_open_outage_delivers_in_order_without_duplicates(broker, buffer_size):
    """The broker freezes: events go into the half-open connection until keepalive gives up, then
    into the queue; it is killed and restarted. Every event arrives once, in order; with a small
    queue the oldest not yet handed to the connection are dropped, and the rest still in order."""
    pub = _publisher(broker.port, buffer_size=buffer_size)
    sub = Subscriber(broker.port)
    try:
        _five_delivered(pub, sub)
        sub.close()
        broker.proc.send_signal(signal.SIGSTOP)
        seq, deadline = 5, time.monotonic() + 30
        while pub.connected and time.monotonic() < deadline:  # into the dead connection
            seq += 1
            pub.event(_event(seq))
            time.sleep(0.1)
        assert not pub.connected and seq > 10
        for _ in range(5):  # after paho gave up on it
            seq += 1
            pub.event(_event(seq))
        broker.proc.kill()
        broker.proc.wait(5)
        broker.start()
        sub = Subscriber(broker.port)
        sent = list(range(6, seq + 1))
        expected = sent if buffer_size > len(sent) else [6, *sent[-(buffer_size - 1):]]
        assert wait_for(lambda: len(seqs(sub)) >= len(expected), timeout=30)
        time.sleep(0.5)  # nothing more: no duplicates
        assert seqs(sub) == expected
        assert pub.dropped == len(sent) - len(expected)
    finally:
        pub.close()
        sub.close()


def test_an_event_handed_over_as_the_connection_drops_arrives_once(broker):
    """paho keeps a QoS 1 message it could not write (no connection yet noticed by fer-edge) and sends
    it after reconnecting; fer-edge must count it as handed over, not send it a second time."""
    pub = _publisher(broker.port, buffer_size=100)
    sub = Subscriber(broker.port)
    try:
        _five_delivered(pub, sub)
        sub.close()
        broker.stop()
        assert wait_for(lambda: not pub.connected)
        with pub._lock:  # the moment between paho closing the socket and its disconnect callback
            pub.connected = True
        pub.event(_event(6))
        with pub._lock:
            pub.connected = False
        pub.event(_event(7))
        broker.start()
        sub = Subscriber(broker.port)
        assert wait_for(lambda: len(seqs(sub)) >= 2, timeout=30)
        time.sleep(0.5)  # nothing more: no duplicates
        assert seqs(sub) == [6, 7] and pub.dropped == 0
    finally:
        pub.close()
        sub.close()


def test_a_restarted_broker_is_picked_up_within_reconnect_max_s(broker):
    pub = _publisher(broker.port, reconnect_max_s=2)
    try:
        assert wait_for(lambda: pub.connected)
        broker.stop()
        time.sleep(6)  # long enough for the backoff to reach its cap
        broker.start()
        t0 = time.monotonic()
        assert wait_for(lambda: pub.connected, timeout=10)
        assert time.monotonic() - t0 < 2 + 1
    finally:
        pub.close()


@pytest.mark.parametrize("sig, expected", [(signal.SIGKILL, b"offline"), (signal.SIGTERM, b"stopped")])
def test_availability_on_kill_and_on_clean_stop(broker, blank_clip, tmp_path, sig, expected):
    sub = Subscriber(broker.port, topics=("fer-edge/testcam/availability",))
    proc = daemon(tmp_path, broker.port, blank_clip)
    try:
        assert wait_for(lambda: sub.payloads("availability")[-1:] == [b"online"], timeout=30)
        t0 = time.monotonic()
        os.kill(proc.pid, sig)
        assert wait_for(lambda: sub.payloads("availability")[-1:] == [expected], timeout=10)
        rc = proc.wait(10)
        if sig == signal.SIGTERM:
            assert rc == 0 and time.monotonic() - t0 < 3
    finally:
        proc.kill()
        sub.close()


def test_password_broker_accepts_right_and_refuses_wrong_credentials(broker_factory, tmp_path, caplog, monkeypatch):
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "cam", "s3cret"], check=True)
    pwfile.chmod(0o600)
    b = broker_factory(f"allow_anonymous false\npassword_file {pwfile}")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    good = _publisher(b.port, username="cam", password_file=secret)
    monkeypatch.setenv("FER_EDGE_MQTT_PASSWORD", "wrong")
    caplog.set_level(logging.INFO, "fer-edge.mqtt")
    bad = _publisher(b.port, username="cam")
    try:
        assert wait_for(lambda: good.connected)
        time.sleep(3.5)  # several retries of the bad client
        assert not bad.connected
        refusals = [r.message for r in caplog.records if "refused" in r.message]
        assert len(refusals) == 1 and "Not authorized" in refusals[0] or "Bad user name or password" in refusals[0]
        assert "s3cret" not in caplog.text and "wrong" not in caplog.text
    finally:
        good.close()
        bad.close()


def _make_certs(d: Path) -> None:
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    for name in ("ca", "other"):
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.crt")


def test_tls_broker_with_generated_ca(broker_factory, tmp_path, caplog):
    _make_certs(tmp_path)
    b = broker_factory(f"allow_anonymous true\ncafile {tmp_path}/ca.crt\ncertfile {tmp_path}/server.crt\n"
                       f"keyfile {tmp_path}/server.key")
    caplog.set_level(logging.INFO, "fer-edge.mqtt")
    good = _publisher(b.port, tls={"ca": tmp_path / "ca.crt"})
    bad = _publisher(b.port, tls={"ca": tmp_path / "other.crt"})
    try:
        assert wait_for(lambda: good.connected)
        time.sleep(3)
        assert not bad.connected
        fails = [r.message for r in caplog.records if "TLS handshake failed" in r.message]
        assert len(fails) == 1
    finally:
        good.close()
        bad.close()


def test_a_lost_camera_is_published_and_faces_resume_when_it_returns(broker, face_stream, tmp_path):
    sub = Subscriber(broker.port, topics=("fer-edge/testcam/#",))
    cfg = {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "device_id": "testcam",
                    "stats_interval_s": 0.5}, "source": {"timeout_s": 1.0}}
    proc = start_fer_edge(tmp_path, face_stream.url, cfg)
    last = lambda suffix: json.loads(sub.payloads(suffix)[-1]) if sub.payloads(suffix) else {}  # noqa: E731
    try:
        assert wait_for(lambda: last("/state").get("face_count") == 1, timeout=30)
        assert last("/state")["camera"] == "ok" and wait_for(lambda: seqs(sub))
        face_stream.sending.clear()
        t0 = time.monotonic()
        assert wait_for(lambda: last("/state").get("camera") == "lost")
        assert time.monotonic() - t0 < 1.0 + 2  # source.timeout_s, then at once
        assert last("/state")["face_count"] == 0 and last("/state")["faces"] == []
        assert last("/visit")["face_id"] == 1  # the camera's loss ended the face's visit
        assert wait_for(lambda: last("/stats").get("camera") == "lost")
        events = len(seqs(sub))
        face_stream.sending.set()
        t0 = time.monotonic()
        assert wait_for(lambda: last("/state").get("face_count") == 1)
        assert time.monotonic() - t0 < 5 + 2  # the longest reopen delay (source.reopen_backoff_s)
        assert last("/state")["camera"] == "ok"
        assert wait_for(lambda: len(seqs(sub)) > events)  # the face is tracked anew: its emotion is an event
        assert wait_for(lambda: last("/stats").get("camera") == "ok" and last("/stats")["camera_reconnects"] == 1)
        for name in ("state", "stats"):
            jsonschema.validate(last("/" + name), SCHEMAS[name])
    finally:
        proc.terminate()
        proc.wait(10)
        sub.close()


@pytest.mark.parametrize("tls", [
    {"ca": "junk.pem"},  # not a certificate
    {"ca": "missing.crt"},
    {"ca": "ca.crt", "cert": "server.crt", "key": "other.key"},  # a key that is not the certificate's
    {"ca": "ca.crt", "cert": "junk.pem", "key": "server.key"},
])
def test_bad_tls_files_are_one_line_for_the_run_and_check_config(tmp_path, face_clip, tls):
    _make_certs(tmp_path)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cfg = {"mqtt": {"enabled": True, "tls": {k: str(tmp_path / v) for k, v in tls.items()}}}
    for extra in (("--check-config",), ("--duration", "5")):
        proc = start_fer_edge(tmp_path, face_clip, cfg, *extra)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert err.startswith("fer-edge: error: ") and err.count("\n") == 1 and "mqtt.tls" in err


def test_awkward_device_ids_give_valid_entity_ids_and_a_first_event_is_not_lost(broker, face_clip, tmp_path):
    """Like Home Assistant: subscribe to an entity's topic only once its config has been seen."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    seen: dict[str, dict] = {}
    events: list[dict] = []

    def on_message(c, userdata, m) -> None:
        if m.topic.startswith("homeassistant/") and m.payload:
            config = seen.setdefault(m.topic, json.loads(m.payload))
            if m.topic.endswith("/emotion/config"):
                c.subscribe(config["state_topic"], qos=1)
        elif m.topic.endswith("/event"):
            events.append(json.loads(m.payload))

    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.subscribe("homeassistant/#", qos=1)
    client.loop_start()
    cfg = {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "device_id": "Pi-Kitchen_2"}}
    proc = start_fer_edge(tmp_path, face_clip, cfg, "--duration", "4")
    try:
        assert proc.wait(60) == 0, proc.stderr.read()
        assert wait_for(lambda: events)
        assert events[0]["seq"] == 1  # the very first event reached the entity
        ids = {c["default_entity_id"] for c in seen.values()}
        assert "sensor.pi_kitchen_2_dominant_emotion" in ids and "event.pi_kitchen_2_emotion" in ids
        for c in seen.values():
            jsonschema.validate(c, SCHEMAS["discovery"])
            assert c["unique_id"].startswith("Pi-Kitchen_2_")
    finally:
        client.loop_stop()
        client.disconnect()


def test_camera_entity_and_frames_only_when_images_are_opted_in(broker, face_clip, tmp_path):
    import cv2
    import numpy as np

    sub = Subscriber(broker.port)
    proc = daemon(tmp_path, broker.port, face_clip, "--duration", "4", mqtt_extra={"publish_images": True})
    assert proc.wait(60) == 0, proc.stderr.read()
    assert wait_for(lambda: b"stopped" in sub.payloads("/availability"))
    sub.close()
    config = json.loads(sub.payloads("homeassistant/camera/testcam/preview/config")[0])
    jsonschema.validate(config, SCHEMAS["discovery"])
    assert config["topic"] == "fer-edge/testcam/image" and config["default_entity_id"] == "camera.testcam_preview"
    frames = sub.payloads("testcam/image")
    assert frames and len(frames) <= 4 + 1  # at most one per mqtt.image_interval_s (1 s)
    img = cv2.imdecode(np.frombuffer(frames[-1], np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] <= 640
    assert all("face_jpeg_b64" in json.loads(p) for p in sub.payloads("testcam/event"))
