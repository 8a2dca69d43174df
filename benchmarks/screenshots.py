"""The README's screenshots: the page and the kiosk view of the daemon on a real clip, at a chosen frame.

Runs `fer-edge` on CLIP (played once at 30 FPS, the shipped model and config.yaml, the page on a free
port), waits until it has processed FRAME frames, then has Debian's chromium (Playwright) take
docs/page.png (with a photo read through the drop zone) and docs/kiosk.png. The page's history
section is shot on its own as docs/history.png, over a history seeded with a made-up day of visits
(`demo_day`: seeded random visits from 8:00 to 20:00, not measured), so the charts have a day to show.

Usage (from the repo root, after `make test` installed chromium and Playwright):
  .venv/bin/python benchmarks/screenshots.py [CLIP] [--frame 270] [--photo IMAGE] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge.benchmark import free_port
from edge.config import HistoryConfig
from edge.history import HistoryStore
from edge.visits import Visit, day_start

REPO = Path(__file__).resolve().parent.parent


def stats(base: str) -> dict | None:
    try:
        with urllib.request.urlopen(base + "/api/stats", timeout=1) as r:
            return json.loads(r.read())
    except OSError:
        return None


MOODS = {"happy": 0.9, "neutral": 0.0, "surprise": 0.25, "sad": -0.7, "angry": -0.75}


def demo_day(path: Path, seed: int = 0) -> None:
    """A made-up day of visits in the history at `path`: busiest at noon and in the evening, happier later."""
    rng = np.random.default_rng(seed)
    store = HistoryStore(HistoryConfig(path=path, flush_interval_s=3600))
    store.start()
    today = day_start(time.time())
    for hour in range(8, 21):
        for _ in range(rng.poisson(3 + 5 * np.exp(-((hour - 12.5) ** 2) / 2) + 4 * np.exp(-((hour - 18) ** 2) / 2))):
            start = today + hour * 3600 + rng.uniform(0, 3500)
            v = Visit(start=start)
            v.add(0.0, start, None, 0.0)
            t, emotion = start, None
            for _ in range(rng.integers(1, 4)):
                p = np.array([0.25 + hour / 60, 0.45, 0.1, 0.12 - hour / 300, 0.08])
                emotion = str(rng.choice(list(MOODS), p=p / p.sum()))
                v.event(t, emotion)
                for _ in range(int(rng.integers(5, 40))):
                    t += 1
                    v.add(1.0, t, emotion, MOODS[emotion])
            store.add(v, v.summary(1, "demo"))
    store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", nargs="?", default="../shared/data/videos/woman2.mp4")
    p.add_argument("--frame", type=int, default=270, help="processed frames before the screenshots")
    p.add_argument("--photo", help="image for the drop zone (default: frame 0 of the clip)")
    p.add_argument("--out", default="docs")
    args = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("screenshots: chromium not found (make test installs it)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        photo = args.photo
        if not photo:
            ok, first = cv2.VideoCapture(args.clip).read()
            if not ok:
                print(f"screenshots: cannot read {args.clip}", file=sys.stderr)
                return 2
            photo = str(Path(tmp) / "photo.jpg")
            cv2.imwrite(photo, first)
        port = free_port()
        cfg = yaml.safe_load((REPO / "config.yaml").read_text())
        cfg["http"]["port"] = port
        cfg["history"]["path"] = str(Path(tmp) / "history.db")
        demo_day(Path(cfg["history"]["path"]))
        (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(cfg))
        daemon = subprocess.Popen([str(REPO / ".venv/bin/fer-edge"), "--config", str(Path(tmp) / "config.yaml"),
                                   "--source", args.clip, "--playback-fps", "30"], cwd=REPO)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                kiosk = browser.new_page(viewport={"width": 1280, "height": 720})
                deadline = time.monotonic() + 60
                while (first := stats(base)) is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                if first is None:
                    print("screenshots: the daemon did not serve its page", file=sys.stderr)
                    return 2
                # the first stats come with the first frames; the clip plays at 30 FPS from there
                at = time.monotonic() + (args.frame - first["frames"]) / 30
                page.goto(base + "/")
                kiosk.goto(base + "/?kiosk")
                page.set_input_files("#file", photo)
                page.wait_for_selector("#result img", timeout=20000)
                time.sleep(max(0.0, at - time.monotonic()))
                page.screenshot(path=str(Path(args.out) / "page.png"), full_page=True)
                kiosk.screenshot(path=str(Path(args.out) / "kiosk.png"))
                page.wait_for_function("document.querySelectorAll('#chart-mix rect').length > 0", timeout=20000)
                page.locator("#history").screenshot(path=str(Path(args.out) / "history.png"))
                print(f"screenshots at about frame {args.frame}: {args.out}/page.png, {args.out}/kiosk.png, "
                      f"{args.out}/history.png (a made-up day)")
                browser.close()
        finally:
            daemon.terminate()
            daemon.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
