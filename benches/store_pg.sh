#!/usr/bin/env bash
# The PostgreSQL store against the data directory, with the release binary:
#  1. storing a city of N components (default 1,000,000): `citygrid import PACKAGE --data DIR`
#     vs `citygrid store copy --from DIR --to postgres://…` (version bytes + PostGIS tables);
#  2. start-up of a replica: `serve --data DIR` vs `serve --store postgres://…` (the `loaded`
#     log line's seconds: for the store, copying the versions from the database included);
#  4. (issue 16, build ahead) from a's answer (its commit) to b serving the new generation on
#     /health, for: a components import (the current version uploaded again), components
#     rollbacks, a grids, a units and a settings (city) switch; b's log says whether it swapped
#     a snapshot built ahead (`followed … with the snapshot built ahead`).
#  3. from an import's answer on one replica to the other replica serving it: a rules switch
#     (the other replica keeps its layers and parses the new list only), then a rollback of the
#     component layer (the other replica pulls that version and rebuilds what depends on the
#     components), then of the zone layer (the zone index and tiles only).
# Each replica logs where a switch went (`snapshot switched read_ms build_ms …`,
# `followed the shared store's switch pull_ms total_ms`): printed after each run.
# Needs CITYGRID_TEST_PG (bash .ci/postgres.sh start); creates and drops database citygrid_bench.
#
#   benches/store_pg.sh [COMPONENTS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-1000000}
: "${CITYGRID_TEST_PG:?run: eval \"\$(bash .ci/postgres.sh start | tail -1)\"}"
BIN=${CITYGRID_BIN:-${CARGO_TARGET_DIR:-target}/release/citygrid}
[ -x "$BIN" ] || cargo build --release --locked
base=${CITYGRID_TEST_PG%/*}
DB=$base/citygrid_bench
psql "$CITYGRID_TEST_PG" -qtA -c "DROP DATABASE IF EXISTS citygrid_bench WITH (FORCE)" -c "CREATE DATABASE citygrid_bench"
psql "$DB" -qtA -c "CREATE EXTENSION postgis"
tmp=$(mktemp -d)
pids=()
# start() runs in $(…), a subshell: the servers' PIDs go to a file, not to a variable.
cleanup() { for p in "${pids[@]}" $(cat "$tmp/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; psql "$CITYGRID_TEST_PG" -qtA -c "DROP DATABASE IF EXISTS citygrid_bench WITH (FORCE)" || true; }
trap cleanup EXIT
now() { date +%s.%N; }

"$BIN" demo --components "$N" --package "$tmp/package" >/dev/null 2>&1
t0=$(now); "$BIN" import "$tmp/package" --data "$tmp/data" >/dev/null 2>&1; t1=$(now)
echo "import of $N components into a data directory: $(echo "$t1 - $t0" | bc) s"
# A second version of every dataset: the component layer's rollback below switches between them.
"$BIN" import "$tmp/package" --data "$tmp/data" >/dev/null 2>&1
t0=$(now); "$BIN" store copy --from "$tmp/data" --to "$DB" >/dev/null 2>&1; t1=$(now)
echo "store copy of it into PostgreSQL (bytes + PostGIS tables): $(echo "$t1 - $t0" | bc) s"
psql "$DB" -qtA -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size(current_database()))"

start() { # name, args…; prints the address, leaves the log in $tmp/$name.log
  local name=$1; shift
  CITYGRID_ADMIN_TOKEN=0123456789abcdef-bench "$BIN" serve --bind 127.0.0.1:0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  echo $! >>"$tmp/pids"
  for _ in $(seq 1 600); do grep -q 'listening on' "$tmp/$name.out" && break; sleep 0.2; done
  sed -n 's#.*listening on http://##p' "$tmp/$name.out"
}
loaded() { sed -n 's/.*loaded.*seconds="\?\([0-9.]*\).*/\1/p' "$tmp/$1.log" | head -1; }
dir_addr=$(start dir --data "$tmp/data"); echo "start-up from the data directory: $(loaded dir) s"
a=$(start a --store "$DB"); echo "start-up from PostgreSQL (replica a): $(loaded a) s"
b=$(start b --store "$DB"); echo "start-up from PostgreSQL (replica b): $(loaded b) s"
: "$dir_addr"

# Probes without a Python start each (hundreds of ms on a loaded machine): curl and grep only.
rules_version() { curl -fsS "http://$1/health" | grep -o '"rules_version":[0-9]*' | cut -d: -f2; }
components_version() { curl -fsS "http://$1/health" | grep -o '"name":"components","version":[0-9]*' | cut -d: -f3; }
zones_version() { curl -fsS "http://$1/health" | grep -o '"name":"zones","version":[0-9]*' | cut -d: -f3; }
# b's own account of its last switch, and the time from a's switch log line to b's (clocks of
# one machine: the lag without the probes' cost).
breakdown() {
  sleep 0.2
  grep -E 'followed the shared store|snapshot switched' "$tmp/b.log" | tail -2 | sed 's/^.*INFO //; s/\x1b\[[0-9;]*m//g' | tr '\n' ' '
  # Each part's build time (absent: shared with the snapshot before).
  grep 'snapshot built' "$tmp/b.log" | tail -1 | sed 's/^.*INFO //; s/\x1b\[[0-9;]*m//g' | tr '\n' ' '
  python3 - "$tmp/a.log" "$tmp/b.log" <<'PY'
import re, sys, datetime
def last(path, what):
    lines = [l for l in open(path, errors="replace") if what in l]
    ts = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).split()[0]
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
# b's switch: its `followed the shared store's switch` line (a snapshot built ahead logs no
# `snapshot switched` of its own).
print(f"| a's switch → b's switch (logs): {(last(sys.argv[2], 'followed the shared store') - last(sys.argv[1], 'snapshot switched')).total_seconds():.3f} s")
PY
}
cp "$tmp/package/rules.csv" "$tmp/rules.csv"
for i in 1 2 3; do
  before=$(rules_version "$b")
  curl -fsS -X PUT -H "Authorization: Bearer 0123456789abcdef-bench" -H 'Content-Type: text/csv' --data-binary @"$tmp/rules.csv" "http://$a/v1/rules" >/dev/null
  t0=$(now)
  while [ "$(rules_version "$b")" = "$before" ]; do sleep 0.01; done
  t1=$(now)
  echo "run $i: from a's answer to b serving the new rules version: $(echo "$t1 - $t0" | bc) s"
  echo "  b: $(breakdown)"
done
for v in 1 2 1; do
  curl -fsS -X POST -H "Authorization: Bearer 0123456789abcdef-bench" -H 'Content-Type: application/json' --data "{\"version\":$v}" "http://$a/v1/layers/components/rollback" >/dev/null
  t0=$(now)
  while [ "$(components_version "$b")" != "$v" ]; do sleep 0.01; done
  t1=$(now)
  echo "component layer to version $v: from a's answer to b serving it: $(echo "$t1 - $t0" | bc) s"
  echo "  b: $(breakdown)"
done
# A zones switch: the follower rebuilds the zone index and tiles only (before: the whole snapshot).
for v in 1 2 1; do
  curl -fsS -X POST -H "Authorization: Bearer 0123456789abcdef-bench" -H 'Content-Type: application/json' --data "{\"version\":$v}" "http://$a/v1/layers/zones/rollback" >/dev/null
  t0=$(now)
  while [ "$(zones_version "$b")" != "$v" ]; do sleep 0.01; done
  t1=$(now)
  echo "zone layer to version $v: from a's answer to b serving it: $(echo "$t1 - $t0" | bc) s"
  echo "  b: $(breakdown)"
done

# Issue 16: every kind of switch, timed from a's answer to b serving the new generation.
generation_of() { curl -fsS "http://$1/health" | grep -o '"generation":[0-9]*' | cut -d: -f2; }
timed_switch() { # label, curl args…
  local label=$1; shift
  local before; before=$(generation_of "$b")
  if ! curl -fsS -H "Authorization: Bearer 0123456789abcdef-bench" "$@" >"$tmp/answer" 2>&1; then
    echo "$label: refused ($(head -c 300 "$tmp/answer")): skipped"; return 0
  fi
  local t0; t0=$(now)
  while [ "$(generation_of "$b")" = "$before" ]; do sleep 0.01; done
  local t1; t1=$(now)
  echo "$label: from a's answer to b serving it: $(echo "$t1 - $t0" | bc) s"
  echo "  b: $(breakdown) $(grep -c 'with the snapshot built ahead' "$tmp/b.log") prebuilt so far"
}
curl -fsS -H "Authorization: Bearer 0123456789abcdef-bench" "http://$a/v1/layers/components/versions/1" -o "$tmp/components.fgb"
for i in 1 2 3; do
  timed_switch "components import $i" -X PUT -H 'Content-Type: application/flatgeobuf' --data-binary @"$tmp/components.fgb" "http://$a/v1/layers/components"
  timed_switch "components rollback to 1 ($i)" -X POST -H 'Content-Type: application/json' --data '{"version":1}' "http://$a/v1/layers/components/rollback"
done
for name in grids units city; do
  for v in 1 2 1; do
    timed_switch "$name to version $v" -X POST -H 'Content-Type: application/json' --data "{\"version\":$v}" "http://$a/v1/layers/$name/rollback"
  done
done
