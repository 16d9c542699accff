#!/usr/bin/env bash
# HTTP load against the real release binary: /v1/locate (points inside the city, WGS84 and
# GCJ-02), /v1/components/nearest, and a trivial axum handler as the baseline
# (examples/trivial_server.rs), all with wrk on loopback, one after the other in one run.
#
#   benches/load.sh [preset] [seconds] [connections]     # default: xicheng 10 64
#   ONLY=tiles benches/load.sh …                         # the tile runs only
#
# Needs wrk (Debian package `wrk`; installed here if missing and we are root). Prints one line
# per endpoint: requests/s, p50, p99 latency, and the ratio to the baseline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${1:-xicheng}; secs=${2:-10}; conns=${3:-64}
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "wrk is missing: apt-get install wrk"; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin citygrid --example trivial_server
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

wait_addr() { # file → address printed on "… listening on http://ADDR"
  for _ in $(seq 1 1200); do grep -q 'listening on' "$1" && break; sleep 0.1; done
  sed -n 's#.*listening on http://##p' "$1"
}

./target/release/citygrid demo --preset "$preset" --out "$tmp/data" >/dev/null 2>&1
./target/release/citygrid serve --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/serve.out" 2>/dev/null &
pids+=($!)
./target/release/examples/trivial_server 127.0.0.1:0 >"$tmp/trivial.out" &
pids+=($!)
city=$(wait_addr "$tmp/serve.out"); trivial=$(wait_addr "$tmp/trivial.out")
# Query points: 4,000 component locations (every one lies in a unit grid, so every locate is
# a 200), and the same points converted to GCJ-02 for the crs=gcj02 runs.
extent_center=$(curl -fsS "http://$city/health" | python3 -c 'import json,sys; c=json.load(sys.stdin)["center"]; print(f"{c[0]},{c[1]}")')
curl -fsS "http://$city/v1/components?bbox=-180,-90,180,90&limit=10000" >"$tmp/page.json"
for datum in wgs84 gcj02; do
  python3 - "$tmp/page.json" "$datum" >"$tmp/points_$datum.lua" <<'PY'
import json, math, sys
cs = json.load(open(sys.argv[1]))["components"][::2][:4000]
def gcj02(lon, lat):  # the public forward formula (Krasovsky a = 6378245)
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    dlat = -100 + 2*x + 3*y + 0.2*y*y + 0.1*x*y + 0.2*math.sqrt(abs(x)) + (20*math.sin(6*x*math.pi) + 20*math.sin(2*x*math.pi))*2/3 + (20*math.sin(y*math.pi) + 40*math.sin(y/3*math.pi))*2/3 + (160*math.sin(y/12*math.pi) + 320*math.sin(y*math.pi/30))*2/3
    dlon = 300 + x + 2*y + 0.1*x*x + 0.1*x*y + 0.1*math.sqrt(abs(x)) + (20*math.sin(6*x*math.pi) + 20*math.sin(2*x*math.pi))*2/3 + (20*math.sin(x*math.pi) + 40*math.sin(x/3*math.pi))*2/3 + (150*math.sin(x/12*math.pi) + 300*math.sin(x/30*math.pi))*2/3
    r = lat / 180 * math.pi
    m = 1 - ee * math.sin(r)**2
    return lon + dlon*180/(a/math.sqrt(m)*math.cos(r)*math.pi), lat + dlat*180/((a*(1-ee))/(m*math.sqrt(m))*math.pi)
pts = [(c["location"]["lon"], c["location"]["lat"]) for c in cs]
if sys.argv[2] == "gcj02":
    pts = [gcj02(*p) for p in pts]
print("local pts = {" + ",".join("{%.8f,%.8f}" % p for p in pts) + "}")
PY
  cat >>"$tmp/points_$datum.lua" <<'LUA'
local path = os.getenv("CG_PATH")
local i = 0
request = function()
  i = i % #pts + 1
  return wrk.format("GET", string.format(path, pts[i][1], pts[i][2]))
end
LUA
done

run() { # name url [lua-script [path-format]]
  local name=$1 url=$2 script=${3:-} fmt=${4:-}
  local out
  if [ -n "$script" ]; then
    out=$(CG_PATH="$fmt" wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$script" "$url")
  else
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$url")
  fi
  local rps p50 p99 non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  printf '%-34s %10s req/s  p50 %8s  p99 %8s  non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
  echo "$rps" >"$tmp/$name.rps"
}

# Each endpoint runs right after its own trivial baseline, and its ratio is to that run: on a
# shared 2-core machine the background load drifts over minutes, not over one pair.
measured=()
pair() { # name url [lua-script [path-format]]
  run "trivial_before_$1" "http://$trivial/"
  run "$@"
  measured+=("$1")
}

echo "preset $preset, $secs s per run, $conns connections, 2 wrk threads; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
run warmup "http://$city" "$tmp/points_wgs84.lua" "/v1/locate?lon=%.8f&lat=%.8f" >/dev/null
if [ "${ONLY:-}" != tiles ]; then
pair locate "http://$city" "$tmp/points_wgs84.lua" "/v1/locate?lon=%.8f&lat=%.8f"
pair locate_gcj02_accuracy30 "http://$city" "$tmp/points_gcj02.lua" "/v1/locate?lon=%.8f&lat=%.8f&crs=gcj02&accuracy=30"
pair nearest_k10 "http://$city" "$tmp/points_wgs84.lua" "/v1/components/nearest?lon=%.8f&lat=%.8f&k=10"
pair health "http://$city/health"
fi

# Cached tiles: 64 tiles around the centre at each zoom of TILE_ZOOMS (default z12–z18; z16 is
# the densest component zoom), warmed once, then asked for with Accept-Encoding: gzip as a
# browser does.
for z in ${TILE_ZOOMS:-12 13 14 15 16 17 18}; do
  python3 - "$city" "$z" "$extent_center" >"$tmp/tiles_$z.lua" <<'PY'
import math, sys
z = int(sys.argv[2]); lon, lat = map(float, sys.argv[3].split(","))
n = 2 ** z; r = math.radians(lat)
cx, cy = int((lon + 180) / 360 * n), int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)
tiles = [(cx + dx, cy + dy) for dx in range(-4, 4) for dy in range(-4, 4)]
print("local t = {" + ",".join("{%d,%d}" % t for t in tiles) + "}")
print("local i = 0")
print("request = function() i = i %% #t + 1; return wrk.format('GET', string.format('/tiles/grids,components/%d/%%d/%%d.mvt', t[i][1], t[i][2]), {['Accept-Encoding'] = 'gzip'}) end" % z)
PY
  bytes=0
  while IFS=, read -r x y; do
    b=$(curl -fsS -o /dev/null -w '%{size_download}' -H 'Accept-Encoding: gzip' "http://$city/tiles/grids,components/$z/$x/$y.mvt")
    bytes=$((bytes + b))
  done < <(grep -o "{[0-9]*,[0-9]*}" "$tmp/tiles_$z.lua" | tr -d '{}')
  echo "tiles_cached_z$z: 64 tiles, mean $((bytes / 64)) bytes gzip"
  pair "tiles_cached_z$z" "http://$city" "$tmp/tiles_$z.lua"
done
for n in "${measured[@]}"; do
  python3 -c "print(f'{\"$n\":<34} {float(\"$(cat "$tmp/$n.rps")\") / float(\"$(cat "$tmp/trivial_before_$n.rps")\"):.2f} × trivial (the run just before)')"
done
