#!/bin/bash
# The Raspberry Pi projection: `fer-edge --benchmark` on both clips at 30 FPS, pinned to one core inside a
# 25 % CPU quota (a Pi 4 core) and a 50 % one (a Pi 5 core), with ../shared/tools/cpu-quota (root).
# A projection, not a Pi measurement. Writes benchmarks/<clip>-quota<P>.json and prints one line per run.
# Usage (from the repo root, after `make run` set up .venv): bash benchmarks/pi-projection.sh
set -eu
QUOTA=${QUOTA:-../shared/tools/cpu-quota}
for clip in woman2 mixkit-girl-smiling; do
  for pct in 25 50; do
    out=benchmarks/$clip-quota$pct.json
    "$QUOTA" "$pct" .venv/bin/fer-edge --benchmark --json --source "../shared/data/videos/$clip.mp4" \
      --playback-fps 30 > "$out"
    .venv/bin/python - "$out" "$clip" "$pct" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
stages = ", ".join(f"{k[8:]} {v}" for k, v in r.items() if k.startswith("cpu_pct_"))
print(f"{sys.argv[2]} at {sys.argv[3]} %: {r['fps_processed']} FPS, tracked {r['frames_tracked']:.1%}, "
      f"capture->event p95 {r['latency_ms_p95']} ms over {r['events']} events, CPU {r['cpu_percent']} % ({stages})")
PY
  done
done
