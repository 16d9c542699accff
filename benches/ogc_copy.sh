#!/usr/bin/env bash
# GDAL's OGC API – Features driver copies whole collections of a large city, against the real
# release binary: `ogr2ogr OAPIF:` of grids and components (Wuzhong preset: ~231k components),
# then a check that every feature arrived with every attribute, against citygrid's own
# streamed GeoJSON (`items?limit=all`).
#
#   benches/ogc_copy.sh [preset] [binary]      # default: wuzhong ./target/release/citygrid
#
# Needs GDAL (Debian package gdal-bin). Prints per collection: features, seconds, features/s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${1:-wuzhong}; bin=${2:-./target/release/citygrid}
command -v ogr2ogr >/dev/null || { echo "ogr2ogr is missing: apt-get install gdal-bin"; exit 1; }
[ -x "$bin" ] || cargo build --release --quiet --bin citygrid
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin" demo --preset "$preset" --out "$tmp/data" >/dev/null 2>&1
"$bin" serve --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/serve.out" 2>/dev/null &
pid=$!
for _ in $(seq 1 1200); do grep -q 'listening on' "$tmp/serve.out" && break; sleep 0.1; done
addr=$(sed -n 's#.*listening on http://##p' "$tmp/serve.out")
echo "preset $preset; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(ogr2ogr --version)"
for coll in grids components; do
  start=$(date +%s.%N)
  ogr2ogr -f GeoJSON "$tmp/$coll.gdal.geojson" "OAPIF:http://$addr/ogc" "$coll"
  secs=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  curl -fsS -o "$tmp/$coll.own.geojson" "http://$addr/ogc/collections/$coll/items?limit=all"
  python3 - "$tmp/$coll.gdal.geojson" "$tmp/$coll.own.geojson" "$coll" "$secs" <<'PY'
import json, sys
gdal, own, coll, secs = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], float(sys.argv[4])
key = lambda f: str(f["properties"].get("code", f.get("id")))
a = {key(f): f for f in gdal["features"]}
b = {key(f): f for f in own["features"]}
assert len(a) == len(gdal["features"]), "GDAL copied a feature twice"
assert a.keys() == b.keys(), (len(a), len(b), sorted(set(a) ^ set(b))[:5])
bad = 0
for k, f in b.items():
    g = a[k]
    for name, value in f["properties"].items():
        got = g["properties"].get(name)
        if value is not None and got != value and str(got) != str(value):
            bad += 1
            if bad < 5: print("differs:", k, name, value, got)
    if f["geometry"]["type"] != g["geometry"]["type"]:
        bad += 1
assert bad == 0, f"{bad} attribute or geometry differences"
print(f"{coll}: {len(a):,} features, every attribute equal; ogr2ogr {secs:.1f} s ({len(a)/secs:,.0f} features/s)")
PY
done
