#!/usr/bin/env bash
# The PostgreSQL/PostGIS store's tests (tests/store_pg.rs): real replica processes on one real
# database. Installs Debian's PostgreSQL 15 and PostGIS 3 idempotently, starts a private cluster
# (its own directory, a free local port, a Unix socket in that directory, trust auth on
# 127.0.0.1 only), creates a database with PostGIS, runs the tests with CITYGRID_REQUIRE_PG=1
# (a skipped test fails), and stops the cluster again whatever happened.
#
#   bash .ci/postgres.sh            # install, start, test, stop
#   bash .ci/postgres.sh start      # install and start only; prints the export line (development)
#   bash .ci/postgres.sh stop       # stop the cluster `start` left running
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PGVER=15
need_apt=()
for p in postgresql-$PGVER postgresql-$PGVER-postgis-3; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
BIN=/usr/lib/postgresql/$PGVER/bin

# initdb refuses root: the cluster belongs to the `postgres` OS user (the package creates it).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

ROOT=${CITYGRID_PG_DIR:-/tmp/citygrid-pg}
DATA=$ROOT/data
PORT_FILE=$ROOT/port

stop() {
  if [ -f "$DATA/postmaster.pid" ]; then
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || true
  fi
}

start() {
  mkdir -p "$ROOT"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$ROOT"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    echo "== initdb $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if [ -f "$DATA/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    echo "== cluster already running"
  else
    # A free local port: ask the kernel for one.
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$port" >"$PORT_FILE"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -w -t 60 \
      -o "-p $port -k $DATA -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=on" start >/dev/null
  fi
  port=$(cat "$PORT_FILE")
  psql_() { as_pg psql -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
  if [ -z "$(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'citygrid_test'")" ]; then
    psql_ -d postgres -c "CREATE DATABASE citygrid_test"
  fi
  psql_ -d citygrid_test -c "CREATE EXTENSION IF NOT EXISTS postgis"
  export CITYGRID_TEST_PG="postgres://postgres@127.0.0.1:$port/citygrid_test"
  echo "== PostgreSQL $(psql_ -d citygrid_test -c 'SHOW server_version'), PostGIS $(psql_ -d citygrid_test -c 'SELECT postgis_lib_version()') at $CITYGRID_TEST_PG"
}

case "${1:-test}" in
  start)
    start
    echo "export CITYGRID_TEST_PG=$CITYGRID_TEST_PG"
    ;;
  stop)
    stop
    ;;
  test)
    trap stop EXIT
    start
    echo "== the PostgreSQL store with real replicas (cargo test --test store_pg), skipping is a failure"
    # The reconnect test also restarts the database server in the middle.
    export CITYGRID_TEST_PG_RESTART="$(printf 'runuser -u postgres -- %q -D %q -m fast -w restart >/dev/null' "$BIN/pg_ctl" "$DATA")"
    [ "$(id -u)" = 0 ] || CITYGRID_TEST_PG_RESTART="$BIN/pg_ctl -D $DATA -m fast -w restart >/dev/null"
    CITYGRID_REQUIRE_PG=1 cargo test --locked --test store_pg -- --test-threads=1
    echo "== the PostgreSQL audit log against the SQLite log (cargo test --test store_pg_audit)"
    CITYGRID_REQUIRE_PG=1 cargo test --locked --test store_pg_audit
    ;;
  *)
    echo "usage: $0 [test|start|stop]" >&2
    exit 2
    ;;
esac
