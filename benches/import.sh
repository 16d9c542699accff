#!/usr/bin/env bash
# Survey-layer import of N components (default 1,000,000) per format, with the release binary:
# wall time (features/s) and peak memory (max RSS, /usr/bin/time), against the memory of
# merely loading the same city (`citygrid locate`, which builds the model and its indexes).
# The files are made from the demo's own layer with GDAL's ogr2ogr (Debian gdal-bin).
# Then the same files as uploads (`PUT /v1/layers/components`) to `citygrid serve`, a fresh
# server per format: the served city's memory (VmRSS) before, and the server's peak during the
# upload and import (VmHWM, reset once the city is loaded; /proc/<pid>/clear_refs).
#
#   benches/import.sh [components]      # default 1000000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-1000000}
command -v ogr2ogr >/dev/null || { echo "needs ogr2ogr: apt-get install gdal-bin"; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time: apt-get install time"; exit 1; }
command -v zip >/dev/null || { echo "needs zip: apt-get install zip"; exit 1; }
cargo build --release --quiet --bin citygrid
bin=./target/release/citygrid
tmp=$(mktemp -d)
spid=
trap '[ -z "$spid" ] || kill "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
$bin demo --preset tiny --components "$n" --out "$tmp/data" >/dev/null 2>&1
src="$tmp/data/layers/components/1.fgb"
ogr2ogr -f GeoJSON "$tmp/c.geojson" "$src"
ogr2ogr -f GeoJSONSeq "$tmp/c.geojsonl" "$src"
ogr2ogr -f CSV "$tmp/c.csv" "$src" -lco GEOMETRY=AS_XY
cp "$src" "$tmp/c.fgb"
ogr2ogr -f "ESRI Shapefile" -lco ENCODING=UTF-8 "$tmp/shp" "$src" && (cd "$tmp/shp" && zip -q -r ../c.zip .) || echo "(no zipped Shapefile: ogr2ogr or zip failed)"
ogr2ogr -f GPKG "$tmp/c.gpkg" "$src" || echo "(no GeoPackage)"
rss() { awk '/Maximum resident set size/ {printf "%.0f", $NF/1024}' "$1"; }
echo "$n components; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
lon=$(python3 -c "import json;print(json.load(open('$tmp/data/city.toml'.replace('city.toml','manifest.json')))['city']['center'][0])")
lat=$(python3 -c "import json;print(json.load(open('$tmp/data/manifest.json'))['city']['center'][1])")
/usr/bin/time -v $bin locate "$lon" "$lat" --data "$tmp/data" >/dev/null 2>"$tmp/t.load" || true
echo "load the city (model + indexes + tiles): max RSS $(rss "$tmp/t.load") MiB"
for f in c.fgb c.geojson c.geojsonl c.csv c.zip c.gpkg; do
  [ -f "$tmp/$f" ] || continue
  size=$(du -m "$tmp/$f" | cut -f1)
  start=$(date +%s.%N)
  /usr/bin/time -v $bin import components "$tmp/$f" --data "$tmp/data" >"$tmp/out" 2>"$tmp/t.$f" || { echo "$f: import failed"; tail -5 "$tmp/out"; }
  end=$(date +%s.%N)
  python3 -c "s=$end-$start; print(f'import {\"$f\":<10} {$size:>5} MB: {s:6.1f} s  {$n/s:9.0f} features/s  max RSS $(rss "$tmp/t.$f") MiB')"
done

# The server: one per format, so each peak is its own (the city as loaded, then one import).
token=bench-admin-token-0123456789
echo "max_upload_mb = 4096" >"$tmp/serve.toml"
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
for f in c.fgb c.geojson c.geojsonl c.csv c.zip c.gpkg; do
  [ -f "$tmp/$f" ] || continue
  case $f in
    *.fgb) ct=application/flatgeobuf ;; *.geojson) ct=application/geo+json ;; *.geojsonl) ct=application/x-ndjson ;;
    *.csv) ct=text/csv ;; *.zip) ct=application/zip ;; *.gpkg) ct=application/geopackage+sqlite3 ;;
  esac
  CITYGRID_ADMIN_TOKEN=$token $bin serve --data "$tmp/data" --bind 127.0.0.1:0 --config "$tmp/serve.toml" >"$tmp/serve.out" 2>"$tmp/serve.err" &
  spid=$!
  url=
  for _ in $(seq 600); do
    url=$(sed -n 's/^citygrid listening on //p' "$tmp/serve.out")
    [ -n "$url" ] && curl -sf "$url/health" >/dev/null && break
    kill -0 "$spid" 2>/dev/null || { echo "serve failed:"; tail -5 "$tmp/serve.err"; exit 1; }
    sleep 0.5
  done
  curl -sf "$url/health" >/dev/null || { echo "serve did not answer /health"; exit 1; }
  served=$(kib "$spid" VmRSS)
  echo 5 >"/proc/$spid/clear_refs"   # VmHWM := VmRSS: the peak from here on is the upload's
  size=$(du -m "$tmp/$f" | cut -f1)
  start=$(date +%s.%N)
  # -T streams the file (--data-binary @file would first read it into curl's memory).
  code=$(curl -sS -o "$tmp/put.json" -w '%{http_code}' -T "$tmp/$f" -H "Authorization: Bearer $token" -H "Content-Type: $ct" \
    "$url/v1/layers/components?allow_shrink=true") || code=failed
  end=$(date +%s.%N)
  peak=$(kib "$spid" VmHWM)
  after=$(kib "$spid" VmRSS)
  kill -TERM "$spid"; wait "$spid" || true; spid=
  [ "$code" = 200 ] || { echo "PUT $f: $code $(head -c 300 "$tmp/put.json")"; continue; }
  python3 -c "s=$end-$start; print(f'PUT    {\"$f\":<10} {$size:>5} MB: {s:6.1f} s  {$n/s:9.0f} features/s  peak {$peak/1024:.0f} MiB (served {$served/1024:.0f} MiB before, {$after/1024:.0f} MiB after)')"
done
