"""The local history: visits and an hourly roll-up of emotion time and mood, in SQLite.

No images and no face data: a visit is its span, its emotion shares, its mood and its events.
The frame loop only appends to a list; a writer thread commits what piled up every
`history.flush_interval_s` (and at shutdown) in one transaction, so the SD card sees a few pages
per flush. WAL with `synchronous=FULL`: a `kill -9` or a power cut loses at most the visits not yet
flushed, never what was committed. A database that cannot be opened or written (a full or
read-only disk) is one log line; the daemon then runs on without history.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path

from edge.config import HistoryConfig
from edge.visits import Visit, hour_start, next_day, next_hour

log = logging.getLogger("fer-edge.history")

PAGE_SIZE = 1024  # small pages: a flush rewrites a few KB, not a few 4 KB pages per table
MAX_PENDING = 10_000  # visits held for the writer; beyond, the oldest are dropped
MAX_ROWS = 5000  # most visits one query returns
SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (start_ms INTEGER PRIMARY KEY, end REAL NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hours (
    hour REAL PRIMARY KEY, visits INTEGER NOT NULL, mood_s REAL NOT NULL, mood_sum REAL NOT NULL,
    emotions TEXT NOT NULL) WITHOUT ROWID;
"""


class HistoryError(Exception):
    """The history cannot be read (no database yet, or it is unreadable), with a one-line message."""


def _merge(into: dict[float, list], hour: float, visits: int, mood_s: float, mood_sum: float,
           emotions: dict[str, float]) -> None:
    row = into.setdefault(hour, [0, 0.0, 0.0, {}])
    row[0] += visits
    row[1] += mood_s
    row[2] += mood_sum
    for k, v in emotions.items():
        row[3][k] = row[3].get(k, 0.0) + v


def _roll_up(into: dict[float, list], visits: Iterable[Visit]) -> None:
    """Add visits to hourly rows: their time in each hour, and one visit to the hour each started in."""
    for visit in visits:
        for h, acc in visit.hours.items():
            _merge(into, h, 0, acc.mood_s, acc.mood_sum, acc.emotion_s)
        _merge(into, hour_start(visit.start), 1, 0.0, 0.0, {})


class HistoryStore:
    """Visits in (`add`, from the frame loop), batched to SQLite by a thread of its own; reads
    (`visits`, `day`) open their own read-only connection and add the visits not yet written."""

    def __init__(self, cfg: HistoryConfig):
        self.cfg = cfg
        self.path = cfg.database()
        self.error: str | None = None  # why there is no history, once that is so
        self._pending: list[tuple[Visit, dict]] = []
        self._lock = threading.Lock()  # the pending list (the frame loop waits on it only for an append)
        self._io = threading.Lock()  # a flush or a read: a read sees each visit once, pending or written
        self._wake = threading.Event()
        self._stop = False
        self._next_prune = 0.0
        self.writes = 0  # transactions committed
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Open (or create) the database, then start the writer; a failure is logged, not raised."""
        try:
            db = self._open()
        except (sqlite3.Error, OSError) as e:
            self._fail("cannot open", e)
            return
        self._thread = threading.Thread(target=self._run, args=(db,), name="history", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is pending and stop the writer (a few seconds at most)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def ok(self) -> bool:
        return self.error is None

    # -- frame loop -------------------------------------------------------------------------
    def add(self, visit: Visit, payload: dict) -> None:
        """Queue one finished visit for the next flush (never blocks on the disk)."""
        if self.error is not None:
            return
        with self._lock:
            self._pending.append((visit, payload))
            if len(self._pending) > MAX_PENDING:
                del self._pending[0]

    # -- writer thread ----------------------------------------------------------------------
    def _fail(self, what: str, e: Exception) -> None:
        self.error = f"{what} {self.path}: {e}"
        log.error("history off: %s (the daemon runs on without it; history.path sets another place)", self.error)
        with self._lock:
            self._pending.clear()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes effect on a new database
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        return db

    def _run(self, db: sqlite3.Connection) -> None:
        with closing(db):
            while True:  # retention once an hour, from the start; a flush each interval, and a last one
                stopping = self._stop
                try:
                    self._flush(db)
                    if time.time() >= self._next_prune:
                        self._prune(db)
                    if stopping:
                        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        return
                except sqlite3.Error as e:
                    self._fail("cannot write", e)
                    return
                self._wake.wait(self.cfg.flush_interval_s)
                self._wake.clear()

    def flush_now(self) -> None:
        """Wake the writer to commit what is pending now (tests, and `fer-edge history` of a live store)."""
        self._wake.set()

    def _flush(self, db: sqlite3.Connection) -> None:
        with self._io:
            self._commit(db)

    def _commit(self, db: sqlite3.Connection) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        hours: dict[float, list] = {}
        _roll_up(hours, (v for v, _ in batch))
        try:
            db.execute("BEGIN IMMEDIATE")
            for v, p in batch:  # keyed by the start in ms (no index to rewrite); a tie moves on by a ms
                key = _ms(v.start)
                while db.execute("INSERT OR IGNORE INTO visits VALUES (?, ?, ?)",
                                 (key, v.end, json.dumps(p, separators=(",", ":")))).rowcount == 0:
                    key += 1
            for h, (n, mood_s, mood_sum, emotions) in hours.items():
                row = db.execute("SELECT visits, mood_s, mood_sum, emotions FROM hours WHERE hour = ?", (h,)).fetchone()
                if row:
                    merged = {h: list(row[:3]) + [json.loads(row[3])]}
                    _merge(merged, h, n, mood_s, mood_sum, emotions)
                    n, mood_s, mood_sum, emotions = merged[h]
                db.execute("INSERT OR REPLACE INTO hours VALUES (?, ?, ?, ?, ?)",
                           (h, n, mood_s, mood_sum, json.dumps({k: round(v, 2) for k, v in emotions.items()})))
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.writes += 1

    def _prune(self, db: sqlite3.Connection) -> None:
        """Retention: visits and hours older than `retention_days`; then the oldest tenth at a time while
        the data outgrows `max_mb` (freed pages are reused, so the file stops growing)."""
        self._next_prune = time.time() + 3600
        cutoff = time.time() - self.cfg.retention_days * 86400
        db.execute("DELETE FROM visits WHERE start_ms < ?", (_ms(cutoff),))
        db.execute("DELETE FROM hours WHERE hour < ?", (cutoff,))
        for _ in range(20):
            used = db.execute("SELECT (SELECT page_count FROM pragma_page_count) - "
                              "(SELECT freelist_count FROM pragma_freelist_count)").fetchone()[0]
            if used * PAGE_SIZE <= self.cfg.max_mb * 2**20:
                break
            count = db.execute("SELECT COUNT(*) FROM visits").fetchone()[0]
            if count == 0:
                break
            oldest = db.execute("SELECT start_ms FROM visits ORDER BY start_ms LIMIT 1 OFFSET ?",
                                (max(count // 10, 1) - 1,)).fetchone()[0]
            db.execute("DELETE FROM visits WHERE start_ms <= ?", (oldest,))
            db.execute("DELETE FROM hours WHERE hour < ?", (oldest / 1000 - 3600,))

    # -- reads (any thread) ------------------------------------------------------------------
    def _pending_copy(self) -> list[tuple[Visit, dict]]:
        with self._lock:
            return list(self._pending)

    def visits(self, since: float, until: float, limit: int = MAX_ROWS) -> list[dict]:
        """The visits that started in [since, until), newest first, at most `limit`."""
        with self._io:
            pending = [p for v, p in self._pending_copy() if since <= v.start < until]
            rows = _query(self.path, "SELECT payload FROM visits WHERE start_ms >= ? AND start_ms < ? "
                          "ORDER BY start_ms DESC LIMIT ?", (_ms(since), _ms(until), limit))
        stored = [json.loads(r[0]) for r in rows]
        return (pending[::-1] + stored)[:limit]

    def day(self, day: float) -> list[dict]:
        """The roll-up of the local day starting at `day`: one entry an hour (23 to 25 on DST days)."""
        end = next_day(day)
        hours: dict[float, list] = {}
        with self._io:
            rows = _query(self.path, "SELECT hour, visits, mood_s, mood_sum, emotions FROM hours "
                          "WHERE hour >= ? AND hour < ?", (day, end))
            pending = self._pending_copy()
        for h, n, mood_s, mood_sum, emotions in rows:
            _merge(hours, h, n, mood_s, mood_sum, json.loads(emotions))
        _roll_up(hours, (v for v, _ in pending))  # hours outside the day are not read below
        out = []
        for h in _hours_of(day, end):
            n, mood_s, mood_sum, emotions = hours.get(h, (0, 0.0, 0.0, {}))
            out.append({"hour": datetime.fromtimestamp(h).astimezone().isoformat(), "visits": n,
                        "emotion_s": {k: round(v, 1) for k, v in emotions.items()},
                        "mood": round(100 * mood_sum / mood_s) if mood_s else None})
        return out

    def count(self, since: float, until: float) -> int:
        """Visits that started in [since, until), written or not."""
        with self._io:
            pending = sum(since <= v.start < until for v, _ in self._pending_copy())
            try:
                rows = _query(self.path, "SELECT COUNT(*) FROM visits WHERE start_ms >= ? AND start_ms < ?",
                              (_ms(since), _ms(until)))
            except HistoryError:
                return pending
        return pending + (rows[0][0] if rows else 0)


def _ms(t: float) -> int:
    return round(t * 1000)


def _hours_of(day: float, end: float) -> Iterator[float]:
    h = day
    while h < end:
        yield h
        h = next_hour(h)


def _query(path: Path, sql: str, args: tuple) -> list[tuple]:
    """Rows from a read-only connection of its own (WAL lets it read beside the writer)."""
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        raise HistoryError(f"history {path}: {e}") from None


def parse_time(text: str) -> float:
    """An ISO 8601 date (local midnight) or date-time (local time unless it names an offset) as epoch
    seconds; ValueError with a message that quotes it."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or time (e.g. 2026-12-08 or 2026-12-08T14:30)") from None
    return when.timestamp()  # naive: local time


CSV_FIELDS = ("start", "end", "duration_s", "face_id", "dominant", "mood_mean", "mood_min", "events")


def visits_csv(visits: list[dict], labels: tuple[str, ...]) -> str:
    """Visits as CSV, one row each, with a column per emotion holding its share of the visit's time."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *labels])
    for v in visits:
        writer.writerow([*(len(v["events"]) if k == "events" else v.get(k) for k in CSV_FIELDS),
                         *(v["emotions"].get(label, 0.0) for label in labels)])
    return out.getvalue()
