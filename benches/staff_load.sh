#!/usr/bin/env bash
# Field staff positions over HTTP against the release binary: the Wuzhong demo city and its
# staff, `citygrid simulate-staff` sending RATE positions/s in batches of BATCH for DURATION
# seconds while asking QUERIES nearest-staff queries/s. Prints the simulator's JSON summary
# (accepted positions/s, batch and query latency median/p99) and the server's peak RSS.
#
#   cargo build --release && benches/staff_load.sh
#   RATE=40000 BATCH=1000 DURATION=30 QUERIES=200 benches/staff_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CITYGRID_BIN:-${CARGO_TARGET_DIR:-target}/release/citygrid}
RATE=${RATE:-30000}
BATCH=${BATCH:-1000}
DURATION=${DURATION:-20}
QUERIES=${QUERIES:-200}
CONNECTIONS=${CONNECTIONS:-2}
work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
export CITYGRID_POSITIONS_TOKEN=bench-positions-0123456789abcdef
export CITYGRID_STAFF_TOKEN=bench-staff-0123456789abcdef
"$BIN" demo --out "$work/data" --preset wuzhong --components 20000 >/dev/null 2>"$work/demo.log"
"$BIN" serve --data "$work/data" --bind 127.0.0.1:0 >"$work/out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 300); do grep -q 'listening on' "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/out" | head -1)
[ -n "$url" ] || { cat "$work/serve.log"; exit 1; }
echo "server $url (pid $server); $(nproc) cores; rate $RATE/s, batch $BATCH, $DURATION s, $QUERIES queries/s" >&2
"$BIN" simulate-staff --url "$url" --data "$work/data" --rate "$RATE" --batch "$BATCH" --connections "$CONNECTIONS" \
    --duration "$DURATION" --repeat --queries "$QUERIES" 2>"$work/sim.log" | tee "$work/summary.json"
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2, $3}')" >&2
