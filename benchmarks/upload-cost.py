"""What hostile and large uploads cost a running daemon: its RSS (now and peak), answer times and FPS.

    .venv/bin/python benchmarks/upload-cost.py [CLIP]

Starts `fer-edge` on CLIP (default: woman2.mp4 from ../shared/data/videos) with its page on a free
port, then posts: one ordinary photo (Pillow is imported on the first upload), the issue's bombs
(a 30000x30000 PNG and three 16000x16000 ones), a 6000x6000 bomb of each format, and the largest
photo allowed (a real 5000x5000 JPEG, 25 MP, then the same as PNG). Prints one JSON line per step.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests import bombs  # noqa: E402
from tests.test_http import Daemon  # noqa: E402
from tests.test_upload import fps, post, vm_kb  # noqa: E402


def step(daemon: Daemon, name: str, bodies: list[bytes]) -> None:
    started = time.monotonic()
    statuses = [post(daemon.port, body)[0] for body in bodies]
    seconds = time.monotonic() - started
    pid = daemon.proc.pid
    print(json.dumps({"step": name, "statuses": statuses, "seconds": round(seconds, 3),
                      "rss_mb": round(vm_kb(pid, "VmRSS") / 1024, 1), "peak_rss_mb": round(vm_kb(pid, "VmHWM") / 1024, 1)}),
          flush=True)


def main() -> None:
    clip = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/data/videos/woman2.mp4"
    face = cv2.imread(str(REPO / "docs/page.png"))  # any photo: what matters is its size
    photo = cv2.imencode(".jpg", cv2.resize(face, (640, 480)))[1].tobytes()
    rng = np.random.default_rng(0)
    big = cv2.imencode(".jpg", cv2.resize(face, (5000, 5000)) ^ rng.integers(0, 8, (5000, 5000, 3), np.uint8),
                       [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
    big_png = cv2.imencode(".png", cv2.resize(face, (5000, 5000)), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(Path(tmp), clip)
        try:
            time.sleep(3)
            step(d, "idle", [])
            step(d, "one photo (640x480)", [photo])
            step(d, "the issue's bombs: 30000^2 PNG, three 16000^2 PNGs", [bombs.png(30000)] + [bombs.png(16000)] * 3)
            step(d, "6000^2 bombs: " + ", ".join(bombs.ALL), [make(6000) for make in bombs.ALL.values()])
            step(d, f"the largest photo allowed: 5000x5000 JPEG, {len(big) / 2**20:.1f} MB", [big])
            step(d, f"the same as PNG (decoded at full size, then reduced), {len(big_png) / 2**20:.1f} MB", [big_png])
            print(json.dumps({"fps_after": round(fps(d, 5), 2)}))
        finally:
            d.stop()


if __name__ == "__main__":
    main()
