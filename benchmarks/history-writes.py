"""What the history costs: bytes written to the SD card an hour, and time on the frame loop.

Runs the real HistoryStore (config defaults: a flush every 600 s) through one simulated busy hour,
VISITS visits of 20-60 s each, flushed six times as the daemon would, and reads this process's
`wchar` from /proc/self/io (the bytes SQLite handed to write/pwrite, WAL and checkpoints included;
nothing else in the process writes). Also times `add` (what the frame loop calls when a face
leaves) and a flush (the writer thread's transaction).

Usage: .venv/bin/python benchmarks/history-writes.py [--visits 60] [--hours 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.config import HistoryConfig
from edge.history import HistoryStore
from edge.visits import Visit


def wchar() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


def a_visit(rng: np.random.Generator, start: float) -> Visit:
    v = Visit(start=start)
    v.add(0.0, start, None, 0.0)
    t = start
    for emotion in rng.choice(["happy", "neutral", "sad", "surprise"], size=rng.integers(1, 4)):
        v.event(t, str(emotion))
        for _ in range(int(rng.integers(10, 30))):
            t += 1
            v.add(1.0, t, str(emotion), 0.3)
    return v


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--visits", type=int, default=60, help="visits an hour")
    p.add_argument("--hours", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(HistoryConfig(path=Path(tmp) / "history.db", flush_interval_s=3600))
        store.start()
        flushes_per_hour = round(3600 / HistoryConfig().flush_interval_s)
        t0 = time.time() - args.hours * 3600
        add_us, flush_ms, per_hour = [], [], []
        for hour in range(args.hours):
            before = wchar()
            for f in range(flushes_per_hour):
                for i in range(args.visits // flushes_per_hour):
                    v = a_visit(rng, t0 + hour * 3600 + f * 600 + i * 60)
                    payload = v.summary(1, "bench")
                    a = time.perf_counter()
                    store.add(v, payload)
                    add_us.append((time.perf_counter() - a) * 1e6)
                writes = store.writes
                a = time.perf_counter()
                store.flush_now()
                while store.writes == writes:
                    time.sleep(0.0005)
                flush_ms.append((time.perf_counter() - a) * 1000)
            per_hour.append(wchar() - before)
        store.close()
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    print(f"{args.visits} visits an hour, {flushes_per_hour} flushes an hour (history.flush_interval_s "
          f"{HistoryConfig().flush_interval_s:g}):")
    print(f"  written per hour: {', '.join(f'{b / 1024:.1f} KB' for b in per_hour)} (hours 1..{args.hours}; "
          f"{np.mean(per_hour) / 1024 / args.visits * 1000:.0f} bytes a visit)")
    print(f"  database after {args.hours} h: {size / 1024:.1f} KB")
    print(f"  frame loop, add() per visit: p50 {np.percentile(add_us, 50):.1f} us, max {max(add_us):.1f} us")
    print(f"  writer thread, one flush: p50 {np.percentile(flush_ms, 50):.1f} ms, max {max(flush_ms):.1f} ms")


if __name__ == "__main__":
    main()
