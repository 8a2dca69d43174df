"""Visits and the SQLite history: the store itself, the daemon killed while it writes, the API and CLI."""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import sqlite3
import subprocess
import time
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.config import HistoryConfig
from edge.history import HistoryStore
from edge.visits import Visit, day_start, hour_start
from tests.conftest import FER_EDGE, REPO, wait_for
from tests.test_http import SCHEMAS, Daemon

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def visit(start: float, seconds: float = 30.0, emotion: str = "happy", mood: float = 0.8) -> tuple[Visit, dict]:
    v = Visit(start=start)
    v.add(0.0, start, None, mood)
    v.event(start + 1, emotion)
    for t in range(1, int(seconds) + 1):
        v.add(1.0, start + t, emotion, mood)
    return v, v.summary(1, "test")


def store(tmp_path: Path, **cfg) -> HistoryStore:
    s = HistoryStore(HistoryConfig(path=tmp_path / "h.db", flush_interval_s=3600, **cfg))
    s.start()
    return s


def flushed(s: HistoryStore) -> None:
    writes = s.writes
    s.flush_now()
    assert wait_for(lambda: s.writes > writes, timeout=10)


def test_visit_summary_counts_time_in_each_published_emotion_and_the_mood():
    v = Visit(start=1000.0)
    v.add(0.0, 1000.0, None, 0.0)
    v.add(1.0, 1001.0, None, 0.0)  # before the first event: in the visit, in no emotion
    v.event(1001.0, "happy")
    v.add(3.0, 1004.0, "happy", 1.0)
    v.event(1004.0, "sad")
    v.add(1.0, 1005.0, "sad", -0.5)
    p = v.summary(7, "dev")
    jsonschema.validate(p, SCHEMAS["visit"])
    assert p["duration_s"] == 5.0 and p["dominant"] == "happy"
    assert p["emotions"] == {"happy": 0.75, "sad": 0.25}
    assert p["mood_mean"] == round(100 * (3 * 1.0 - 0.5) / 5) and p["mood_min"] == -50
    assert [e["emotion"] for e in p["events"]] == ["happy", "sad"]


def test_store_batches_visits_and_rolls_them_up_by_local_hour(tmp_path):
    s = store(tmp_path)
    noon = day_start(time.time()) + 12 * 3600
    for i, (emotion, mood) in enumerate([("happy", 1.0), ("sad", -0.75), ("happy", 1.0)]):
        s.add(*visit(noon + 600 * i, 60, emotion, mood))
    assert s.writes == 0 and len(s.visits(noon, noon + 3600)) == 3  # not written yet, but read
    flushed(s)
    assert s.writes == 1  # one transaction for the three
    visits = s.visits(noon, noon + 3600)
    assert [v["dominant"] for v in visits] == ["happy", "sad", "happy"]
    assert visits[0]["start"] > visits[1]["start"]  # newest first
    hours = s.day(day_start(noon))
    jsonschema.validate({"day": "2026-01-01", "labels": list(LABELS), "hours": hours}, SCHEMAS["history"])
    row = next(h for h in hours if datetime.fromisoformat(h["hour"]).timestamp() == hour_start(noon))
    assert row["visits"] == 3 and row["emotion_s"] == {"happy": 120.0, "sad": 60.0}
    assert row["mood"] == round(100 * (60 + 60 - 45) / 180)
    s.add(*visit(noon + 1800, 60))
    flushed(s)  # the hour's row is added to, not replaced
    assert next(h for h in s.day(day_start(noon)) if h["visits"])["visits"] == 4
    assert s.count(day_start(noon), noon + 86400) == 4
    s.close()
    assert sqlite3.connect(tmp_path / "h.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_retention_by_days_and_by_size(tmp_path):
    s = store(tmp_path, retention_days=2, max_mb=1)
    now = time.time()
    s.add(*visit(now - 5 * 86400))  # older than the retention
    for i in range(6000):  # ~1.5 MB of visits: over max_mb
        s.add(*visit(now - 86400 + i))
    flushed(s)
    s.close()
    s = store(tmp_path, retention_days=2, max_mb=1)  # pruned when opened
    assert wait_for(lambda: s._next_prune > 0)
    s.close()
    db = sqlite3.connect(tmp_path / "h.db")
    oldest, count = db.execute("SELECT MIN(start_ms), COUNT(*) FROM visits").fetchone()
    assert oldest / 1000 > now - 2 * 86400 and 0 < count < 6000
    used = db.execute("SELECT (SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM pragma_freelist_count)").fetchone()[0]
    assert used * 1024 <= 2**20


def test_an_unwritable_place_is_one_log_line_and_no_history(tmp_path, caplog):
    (tmp_path / "file").write_text("")
    s = HistoryStore(HistoryConfig(path=tmp_path / "file" / "h.db"))  # under a file: cannot be created
    with caplog.at_level(logging.ERROR):
        s.start()
        assert wait_for(lambda: not s.ok)
    s.add(*visit(time.time()))  # dropped, no error
    s.close()
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("history off: cannot open") and "history.path" in line


def test_the_daemon_killed_while_it_writes_keeps_every_visit_it_committed(tmp_path, visits_clip):
    db = tmp_path / "history.db"
    d = Daemon(tmp_path, visits_clip, cfg={"history": {"path": str(db), "flush_interval_s": 0.05},
                                           "tracker": {"expire_s": 0.3}})
    try:
        def rows() -> list[tuple]:
            with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as c:
                return c.execute("SELECT start_ms, payload FROM visits ORDER BY start_ms").fetchall() if db.exists() else []
        assert wait_for(lambda: len(rows()) >= 3, timeout=40), d.proc.stderr
        before = rows()
        time.sleep(0.7)  # a visit ends every 2.2 s, each written within 0.05 s: kill mid-stream
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
    finally:
        d.proc.kill()
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = c.execute("SELECT start_ms, payload FROM visits ORDER BY start_ms").fetchall()
    assert after[:len(before)] == before
    payloads = [json.loads(p) for _, p in after]
    for p in payloads:
        jsonschema.validate(p, SCHEMAS["visit"])
        assert 1.0 < p["duration_s"] < 2.5  # the face stays 1.5 s
    assert {p["dominant"] for p in payloads} >= {"happy"}  # the calm face's visits read happy


def test_visits_history_metrics_and_readiness_over_http(tmp_path, visits_clip):
    d = Daemon(tmp_path, visits_clip, cfg={"history": {"path": str(tmp_path / "h.db"), "flush_interval_s": 0.2},
                                           "tracker": {"expire_s": 0.3}})
    try:
        state, health = (json.loads(d.get(p)[1]) for p in ("/api/state", "/healthz"))  # at once: they agree
        assert state["camera"] == health["camera"] and state["camera"] in ("starting", "ok")
        jsonschema.validate(state, SCHEMAS["state"])
        assert wait_for(lambda: len(json.loads(d.get("/api/visits")[1])["visits"]) >= 2, timeout=40)
        visits = json.loads(d.get("/api/visits")[1])["visits"]
        for v in visits:
            jsonschema.validate(v, SCHEMAS["visit"])
        assert visits[0]["start"] > visits[1]["start"]
        status, body, _ = d.get(f"/api/history?day={datetime.now().date().isoformat()}")
        roll = json.loads(body)
        jsonschema.validate(roll, SCHEMAS["history"])
        assert sum(h["visits"] for h in roll["hours"]) >= 2
        status, body, kind = d.get(f"/api/visits?since={datetime.now().date().isoformat()}&format=csv")
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        assert status == 200 and kind.startswith("text/csv") and len(rows) >= 2 and set(LABELS) <= set(rows[0])
        assert json.loads(d.get("/api/state")[1])["visits_today"] >= 2
        for bad in ("/api/visits?since=yesterday", "/api/visits?since=2026-12-09&until=2026-12-08", "/api/history?day=13"):
            status, body, _ = d.get(bad)
            assert status == 400 and json.loads(body)["error"], bad
        status, body, kind = d.get("/metrics")
        assert status == 200 and kind.startswith("text/plain")
        metrics = {s.name: s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples}
        assert metrics["fer_edge_frames_processed_total"] > 0 and metrics["fer_edge_visits_published_total"] >= 2
        assert metrics["fer_edge_camera_up"] == 1 and "fer_edge_faces_in_view" in metrics
        assert metrics['fer_edge_stage_seconds_count'] > 0 and metrics["fer_edge_capture_to_event_seconds_count"] > 0
    finally:
        d.stop()
    out = subprocess.run([*FER_EDGE, "history", "--csv", "--config", str(tmp_path / "config.yaml")], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and len(out.stdout.splitlines()) >= 3, out.stderr  # written at shutdown too
    bad = subprocess.run([*FER_EDGE, "history", "--since", "soon", "--config", str(tmp_path / "config.yaml")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "fer-edge history: error: 'soon' is not an ISO 8601 date or time (e.g. 2026-12-08 or 2026-12-08T14:30)"]


def test_metrics_need_the_token_like_every_endpoint(tmp_path, face_clip):
    d = Daemon(tmp_path, face_clip, http={"host": "0.0.0.0"}, env={"FER_EDGE_HTTP_TOKEN": "s3cret"})
    try:
        assert d.get("/metrics")[0] == 401 and d.get("/api/visits")[0] == 401
        scrape = lambda: d.get("/metrics", headers={"Authorization": "Bearer s3cret"})  # noqa: E731
        assert scrape()[0] == 200  # at once: the histograms; the frame counters once the pipeline is up
        assert wait_for(lambda: b"fer_edge_frames_processed_total" in scrape()[1])
    finally:
        d.stop()
