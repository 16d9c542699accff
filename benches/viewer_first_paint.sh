#!/usr/bin/env bash
# The web viewer's cold start, measured in headless Debian Chromium: first contentful paint, time
# until the map is first idle, bytes on the wire and requests, over RUNS cold starts (a new browser
# profile each), against `serve --demo` (the Wuzhong demo city) on this machine.
#
#   benches/viewer_first_paint.sh [BINARY]     # default ./target/release/citygrid; RUNS=5
#
# Needs Chromium and playwright-core as web-viewer/e2e/run.sh installs them (it installs them the
# same way if missing). Copy the median line into BENCHMARKS.md with the machine description.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-./target/release/citygrid}
[ -x "$bin" ] || { echo "no citygrid binary at $bin: cargo build --release"; exit 1; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium; }
[ -d web-viewer/node_modules/playwright-core ] || npm ci --prefix web-viewer --no-audit --no-fund
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin" serve --demo --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 1200); do
  grep -q 'listening on' "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || { echo "server exited early:"; cat "$tmp/log"; exit 1; }
  sleep 0.5
done
addr=$(sed -n 's#.*listening on http://##p' "$tmp/out")
[ -n "$addr" ] || { echo "server did not start in time"; exit 1; }
echo "== $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load $(cut -d' ' -f1-3 /proc/loadavg); $($bin --version 2>/dev/null || echo citygrid)"
CITYGRID_URL="http://$addr" RUNS="${RUNS:-5}" node benches/viewer_first_paint.mjs
