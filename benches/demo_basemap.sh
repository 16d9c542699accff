#!/usr/bin/env bash
# The demo street map (DATA/basemaps/demo-streets.mbtiles): how long `serve --demo` takes to
# draw it and how large it is, per preset. Runs the release binary on a fresh data directory
# (the demo city is generated first, then the street map), reads the server's
# "demo street map written" log line (seconds, tiles, KiB) beside the "demo city written" one
# (the city's own generation and import), and stops the server.
#
#   cargo build --release && bash benches/demo_basemap.sh [tiny wuzhong xicheng]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CITYGRID_BIN:-${CARGO_TARGET_DIR:-target}/release/citygrid}"
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(tiny wuzhong xicheng)
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
for preset in "${presets[@]}"; do
  rm -rf "$tmp/data" "$tmp/out" "$tmp/log"
  RUST_LOG=info "$bin" serve --demo --demo-preset "$preset" --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/out" 2>"$tmp/log" &
  pid=$!
  for _ in $(seq 1 1200); do
    grep -qs 'listening on' "$tmp/out" && break
    kill -0 "$pid" 2>/dev/null || { echo "server exited early:"; cat "$tmp/log"; exit 1; }
    sleep 0.25
  done
  line=$(grep 'demo street map written' "$tmp/log" | sed 's/\x1b\[[0-9;]*m//g')
  city=$(grep 'demo city written' "$tmp/log" | sed 's/\x1b\[[0-9;]*m//g' | sed -n 's/.*seconds="\{0,1\}\([0-9.]*\).*/\1/p')
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  seconds=$(sed -n 's/.*seconds="\{0,1\}\([0-9.]*\).*/\1/p' <<<"$line")
  tiles=$(sed -n 's/.*tiles=\([0-9]*\).*/\1/p' <<<"$line")
  kib=$(sed -n 's/.*kib=\([0-9]*\).*/\1/p' <<<"$line")
  echo "$preset: street map ${seconds}s, $tiles tiles, ${kib} KiB (the demo city itself: ${city}s)"
done
