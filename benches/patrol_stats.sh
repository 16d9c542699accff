#!/usr/bin/env bash
# Patrol coverage of a day of the Wuzhong demo staff against the release binary: writes the
# demo city and a day of patrols (`citygrid demo --patrols`, moved one day back so that no
# report lies in the future), posts them, then times `GET /v1/stats/patrol` for the unit grids
# (JSON and the GeoJSON map layer) and for the streets, RUNS times each; prints the medians.
#
#   cargo build --release && benches/patrol_stats.sh
#   STEP=30 RUNS=5 benches/patrol_stats.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CITYGRID_BIN:-${CARGO_TARGET_DIR:-target}/release/citygrid}
STEP=${STEP:-10}
RUNS=${RUNS:-3}
work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
export CITYGRID_POSITIONS_TOKEN=bench-positions-0123456789abcdef
export CITYGRID_STAFF_TOKEN=bench-staff-0123456789abcdef
"$BIN" demo --out "$work/data" --preset wuzhong --patrols "$work/day.ndjson" --patrol-step "$STEP" >/dev/null 2>"$work/demo.log"
"$BIN" serve --data "$work/data" --bind 127.0.0.1:0 >"$work/out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 300); do grep -q 'listening on' "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/out" | head -1)
[ -n "$url" ] || { cat "$work/serve.log"; exit 1; }
date=$(python3 - "$work/day.ndjson" "$work" <<'PY'
import json, sys, datetime
src, work = sys.argv[1], sys.argv[2]
batch, n, day = [], 0, None
def flush():
    global batch, n
    if batch:
        with open(f"{work}/batch{n:04d}.json", "w") as f:
            json.dump({"positions": batch}, f)
        n += 1
        batch = []
for line in open(src):
    item = json.loads(line)
    t = item["time"]
    when = datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc) if isinstance(t, (int, float)) else datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
    when -= datetime.timedelta(days=1)
    item["time"] = when.isoformat()
    day = when.astimezone(datetime.timezone(datetime.timedelta(hours=8))).date().isoformat()
    batch.append(item)
    if len(batch) == 10000:
        flush()
flush()
print(day)
PY
)
for f in "$work"/batch*.json; do
    curl -sf -o /dev/null -H "Authorization: Bearer $CITYGRID_POSITIONS_TOKEN" -H 'content-type: application/json' --data-binary @"$f" "$url/v1/staff/positions"
done
points=$(curl -sf -H "Authorization: Bearer $CITYGRID_STAFF_TOKEN" "$url/v1/stats/patrol?date=$date&level=2" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["people"], "people,", d["points"], "points")')
echo "$(nproc) cores; day $date: $points; step $STEP s" >&2
measure() {
    local name=$1 query=$2
    for _ in $(seq 1 "$RUNS"); do
        curl -sf -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $CITYGRID_STAFF_TOKEN" "$url/v1/stats/patrol?date=$date&$query"
    done | sort -n | awk -v name="$name" '{a[NR]=$1} END {printf "%s: median %.3f s (of %d)\n", name, a[int((NR+1)/2)], NR}'
}
measure "unit grids, JSON" "distance_m=50"
measure "unit grids, GeoJSON layer" "distance_m=50&format=geojson"
measure "streets (level 2), JSON" "level=2&distance_m=50"
