#!/usr/bin/env bash
# Survey-layer import of N components (default 1,000,000) per format, with the release binary:
# wall time (features/s) and peak memory (max RSS, /usr/bin/time), against the memory of
# merely loading the same city (`citygrid locate`, which builds the model and its indexes).
# The files are made from the demo's own layer with GDAL's ogr2ogr (Debian gdal-bin).
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
trap 'rm -rf "$tmp"' EXIT
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
