#!/usr/bin/env bash
# What a tile miss costs against a hit, over HTTP with the release binary: the same 64 tiles
# around the city centre per zoom (grids,zones,components, as the viewer asks), from a server
# with the default tile cache (warmed: every request a hit) and from one with no cache
# (`--tile-cache-mb 0`: every request encodes and compresses its tile). wrk, ACCEPT (default
# `gzip, deflate, br`, a browser's), CONNS connections (default 4: below saturation) for SECS s
# (default 10) per run; hit and miss runs alternate per zoom. Prints req/s, p50, p99 of each and
# the miss/hit ratios, the cache hit counters of the no-cache server (misses must dominate) and both
# servers' resident memory.
#
#   benches/tile_miss.sh [preset]                 # default xicheng; ZOOMS="12 14 16"
#   BIN=/path/to/citygrid benches/tile_miss.sh     # another build (e.g. before a change)
#   DATA=/path/to/data benches/tile_miss.sh        # a copy of this demo data directory instead of
#                                                  # generating it (before/after runs on the same city)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${1:-xicheng}; secs=${SECS:-10}; conns=${CONNS:-4}; accept=${ACCEPT:-gzip, deflate, br}
command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin citygrid
  BIN=${CARGO_TARGET_DIR:-target}/release/citygrid
fi
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
wait_addr() { for _ in $(seq 1200); do grep -q 'listening on' "$1" && break; sleep 0.1; done; sed -n 's#.*listening on http://##p' "$1"; }
if [ -n "${DATA:-}" ]; then cp -r "$DATA" "$tmp/data"; rm -f "$tmp/data/writer.lock"; else "$BIN" demo --preset "$preset" --out "$tmp/data" >/dev/null 2>&1; fi
cp -r "$tmp/data" "$tmp/data2"
"$BIN" serve --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/hit.out" 2>/dev/null &
pids+=($!)
"$BIN" serve --data "$tmp/data2" --bind 127.0.0.1:0 --tile-cache-mb 0 >"$tmp/miss.out" 2>/dev/null &
pids+=($!)
hit=$(wait_addr "$tmp/hit.out"); miss=$(wait_addr "$tmp/miss.out")
center=$(curl -fsS "http://$hit/health" | python3 -c 'import json,sys; c=json.load(sys.stdin)["center"]; print(f"{c[0]},{c[1]}")')
echo "preset $preset; $secs s per run, $conns connections, Accept-Encoding: $accept; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # addr lua → "rps p50 p99"
  local out
  out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$2" "http://$1")
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1=="50%" {print $2}') $(echo "$out" | awk '$1=="99%" {print $2}')"
}
ms() { python3 -c "import sys; v=sys.argv[1]; print({'us':1e-3,'ms':1,'s':1e3}[v.lstrip('0123456789.')] * float(v.rstrip('usm')))" "$1"; }
printf '%-5s | %-30s | %-30s | %s\n' zoom "hit: req/s p50 p99" "miss: req/s p50 p99" "miss/hit: time per request, p50, p99"
for z in ${ZOOMS:-12 14 16}; do
  python3 - "$z" "$center" "$accept" >"$tmp/t$z.lua" <<'PY'
import math, sys
z = int(sys.argv[1]); lon, lat = map(float, sys.argv[2].split(",")); acc = sys.argv[3]
n = 2 ** z; r = math.radians(lat)
cx, cy = int((lon + 180) / 360 * n), int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)
tiles = [(cx + dx, cy + dy) for dx in range(-4, 4) for dy in range(-4, 4)]
print("local t = {" + ",".join("{%d,%d}" % t for t in tiles) + "}")
print("local i = 0")
print("request = function() i = i %% #t + 1; return wrk.format('GET', string.format('/tiles/grids,zones,components/%d/%%d/%%d.mvt', t[i][1], t[i][2]), {['Accept-Encoding'] = '%s'}) end" % (z, acc))
PY
  # Warm the cached server (and its brotli copies) first.
  wrk -t1 -c2 -d2s -s "$tmp/t$z.lua" "http://$hit" >/dev/null
  read -r hr hp50 hp99 < <(run "$hit" "$tmp/t$z.lua")
  read -r mr mp50 mp99 < <(run "$miss" "$tmp/t$z.lua")
  python3 -c "print(f'z{$z:<4} | {$hr:>9.0f}/s {\"$hp50\":>8} {\"$hp99\":>8} | {$mr:>9.0f}/s {\"$mp50\":>8} {\"$mp99\":>8} | {$hr/$mr:5.2f}×  {$(ms "$mp50")/$(ms "$hp50"):5.2f}×  {$(ms "$mp99")/$(ms "$hp99"):5.2f}×')"
done
curl -fsS "http://$miss/metrics" | grep -E '^citygrid_tile_cache_(hits|misses)_total' | tr '\n' ' '; echo "(the no-cache server)"
echo "RSS: cached server $(awk '/VmRSS/ {print $2, $3}' /proc/${pids[0]}/status), no-cache server $(awk '/VmRSS/ {print $2, $3}' /proc/${pids[1]}/status)"
