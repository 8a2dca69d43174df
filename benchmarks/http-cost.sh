#!/bin/bash
# What the HTTP server costs: the daemon's RSS and CPU on woman2 at 30 FPS, measured from /proc over 13 s,
# with the page off, on with no client, and on with one client watching the preview.
# Usage (from the repo root, after `make run` set up .venv): bash benchmarks/http-cost.sh
set -u
CLIP=${CLIP:-../shared/data/videos/woman2.mp4}
PORT=8097
cfg() {  # $1: http.enabled
  .venv/bin/python -c "
import sys, yaml; c = yaml.safe_load(open('config.yaml'))
c['http'].update(enabled=$1, port=$PORT); c['source']['loop'] = True
open('/tmp/http-cost.yaml', 'w').write(yaml.safe_dump(c))"
}
run() {  # $1: label, $2: watch or empty
  .venv/bin/fer-edge --config /tmp/http-cost.yaml --source "$CLIP" --fps 30 2>/dev/null &
  local pid=$!
  sleep 2
  [ "$2" = watch ] && (curl -s -m 13 "http://127.0.0.1:$PORT/stream.mjpg" -o /dev/null &)
  local t0 t1
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat"); sleep 13; t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  echo "$1: RSS $(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$pid/status") MB," \
       "CPU $(( (t1 - t0) * 100 / 13 / $(getconf CLK_TCK) )) % of a core"
  kill "$pid"; wait "$pid" 2>/dev/null
}
cfg False; run "page off" ""
cfg True; run "page on, no client" ""; run "page on, one preview client" watch
