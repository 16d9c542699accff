#!/usr/bin/env bash
# Peak RSS (VmHWM) of a citygrid server that is sent 8 over-limit batches at once
# (each ~31 MB of JSON with 240,000 cases: over the 100,000-case limit, refused with 413).
# Usage: benches/batch_limit_rss.sh [path/to/citygrid]   (default: target/release/citygrid)
set -euo pipefail
BIN=${1:-target/release/citygrid}
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" demo --preset tiny --out "$WORK/data" 2>/dev/null
python3 - "$WORK/batch.json" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("[")
    for i in range(240_000):
        if i: f.write(",")
        f.write('{"id":"case-%06d","lon":120.6312,"lat":31.2702,"event_type":"0102","urgency":"一般","reported_at":"2026-11-20T17:00:00+08:00"}' % i)
    f.write("]")
PY
"$BIN" serve --data "$WORK/data" --bind 127.0.0.1:0 > "$WORK/out" 2> "$WORK/log" &
PID=$!
until grep -q "listening on" "$WORK/out"; do sleep 0.1; done
ADDR=$(sed -n 's/.*listening on http:\/\///p' "$WORK/out")
echo "binary: $BIN"
echo "batch: $(stat -c %s "$WORK/batch.json") bytes, 240000 cases"
echo "idle:        $(grep VmHWM /proc/$PID/status)"
CURLS=()
for i in 1 2 3 4 5 6 7 8; do
  curl -s -o "$WORK/answer$i" -w "%{http_code} " -H 'content-type: application/json' --data-binary @"$WORK/batch.json" "http://$ADDR/v1/cases/route:batch" &
  CURLS+=($!)
done
wait "${CURLS[@]}" || true
echo
echo "answer: $(head -c 200 "$WORK/answer1")"
echo "after 8 at once: $(grep VmHWM /proc/$PID/status)"
