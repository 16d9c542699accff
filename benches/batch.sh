#!/usr/bin/env bash
# Batch case routing over HTTP against the real release binary, the audit log on (as served):
# N cases (default 100,000) at component locations of the demo city, event types in rotation,
# in one POST /v1/cases/route:batch, as CSV, as a JSON array and as NDJSON, three runs each.
#
#   benches/batch.sh [preset] [cases]      # default: wuzhong 100000
#   BIN=path/to/citygrid benches/batch.sh  # measure that binary (no build)
#
# Prints per run: seconds (curl's total time, first byte to last), answer lines, cases/s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${1:-wuzhong}; n=${2:-100000}
bin=${BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin citygrid
  bin="${CARGO_TARGET_DIR:-target}/release/citygrid"
fi
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin" demo --preset "$preset" --out "$tmp/data" >/dev/null 2>&1
"$bin" serve --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/serve.out" 2>/dev/null &
pid=$!
for _ in $(seq 1 1200); do grep -q 'listening on' "$tmp/serve.out" && break; sleep 0.1; done
addr=$(sed -n 's#.*listening on http://##p' "$tmp/serve.out")
curl -fsS "http://$addr/v1/components?bbox=-180,-90,180,90&limit=10000" >"$tmp/page.json"
python3 - "$tmp/page.json" "$n" "$tmp" <<'PY'
import json, sys
cs = json.load(open(sys.argv[1]))["components"]
n, tmp = int(sys.argv[2]), sys.argv[3]
types = ["0102", "0104", "0301", "0501", "0505", "0101"]
rows = [(i, cs[i % len(cs)]["location"]["lon"], cs[i % len(cs)]["location"]["lat"], types[i % len(types)]) for i in range(n)]
with open(f"{tmp}/cases.csv", "w") as f:
    f.write("id,lon,lat,event_type\n")
    for r in rows:
        f.write("%d,%.8f,%.8f,%s\n" % r)
with open(f"{tmp}/cases.json", "w") as f:
    json.dump([{"id": i, "lon": lon, "lat": lat, "event_type": t} for i, lon, lat, t in rows], f)
with open(f"{tmp}/cases.ndjson", "w") as f:
    for i, lon, lat, t in rows:
        f.write(json.dumps({"id": i, "lon": lon, "lat": lat, "event_type": t}) + "\n")
PY
echo "preset $preset, $n cases per batch, audit log on; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in csv json ndjson; do
  case $kind in csv) ct=text/csv;; json) ct=application/json;; *) ct=application/x-ndjson;; esac
  for run in 1 2 3; do
    secs=$(curl -fsS -o "$tmp/out.ndjson" -w '%{time_total}' -H "content-type: $ct" --data-binary "@$tmp/cases.$kind" "http://$addr/v1/cases/route:batch")
    lines=$(wc -l <"$tmp/out.ndjson"); ok=$(grep -c '"ok":true' "$tmp/out.ndjson" || true)
    python3 -c "print(f'batch {\"$kind\":<6} run $run: {float(\"$secs\"):6.2f} s  {$lines} lines ({$ok} ok)  {$n/float(\"$secs\"):9.0f} cases/s')"
  done
done
python3 - "$tmp/data/audit/audit.sqlite" <<'PY'
import sqlite3, sys
n = sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM decisions").fetchone()[0]
print(f"audit log: {n} decisions")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
