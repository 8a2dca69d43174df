#!/bin/bash
# Groups (issue 27): woman2 played as 1, 2x2 and 3x3 grids of itself (`fer-edge --benchmark --tile N`) at 30 FPS,
# unconstrained and pinned to one core inside `cpu-quota 25` (a Pi 4 core) and `cpu-quota 12.5` (a Pi Zero 2 W
# or Pi 3 core), with ../shared/tools/cpu-quota (root; calibrated, see docs/performance.md). A projection, not a
# Pi measurement. Writes benchmarks/groups/<clip>-tile<N>-<quota>.json and prints one line per run.
# Usage (from the repo root, after `make run` set up .venv): bash benchmarks/groups.sh [CLIP]
set -eu
QUOTA=${QUOTA:-../shared/tools/cpu-quota}
CLIP=${1:-../shared/data/videos/woman2.mp4}
TILES=${TILES:-1 2 3}
QUOTAS=${QUOTAS:-none 25 12.5}
mkdir -p benchmarks/groups
for n in $TILES; do
  .venv/bin/python -c "from edge.tiles import tile_clip; tile_clip('$CLIP', $n)"  # made once, outside the timing
  for q in $QUOTAS; do
    out=benchmarks/groups/$(basename "$CLIP" .mp4)-tile$n-$([ "$q" = none ] && echo free || echo "quota$q").json
    run=(.venv/bin/fer-edge --benchmark --json --source "$CLIP" --tile "$n" --playback-fps 30)
    if [ "$q" = none ]; then "${run[@]}" > "$out"; else "$QUOTA" "$q" "${run[@]}" > "$out"; fi
    .venv/bin/python - "$out" "$n" "$q" <<'PY'
import json, sys
r, n, q = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
print(f"{n * n} faces, {'unconstrained' if q == 'none' else 'cpu-quota ' + q}: {r['fps_processed']} FPS, "
      f"capture->event p95 {r['latency_ms_p95']} ms, tracked {r['frames_tracked']:.1%}, "
      f"faces found {r['faces_per_frame']}/{n * n}, classified {r['faces_classified_per_frame']} a frame, "
      f"CPU {r['cpu_percent']} %, detect {r['detect_ms_per_face_p50']} / classify {r['classify_ms_per_face_p50']} "
      f"ms a face, events {r['events']}")
PY
  done
done
