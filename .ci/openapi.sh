#!/usr/bin/env bash
# The API description is valid and true. Assumes `cargo build --release --locked` ran.
#
# 1. openapi-spec-validator checks /openapi.json against the OpenAPI 3.1 specification.
# 2. schemathesis fuzzes every documented operation of the release binary serving the demo city
#    (a throwaway data directory, an admin token so the writes are exercised too) and fails on
#    any 5xx, any status code, content type or body the document does not describe.
#
# Operations left out of the fuzz run: GET /v1/staff/events only (an endless text/event-stream:
# every example would wait for the request timeout; tests/http_staff.rs reads it). The writes are fuzzed too: random bodies are refused
# (400/415/422), a rollback only serves a kept version again, and whatever a write changes, every
# later answer is still checked against the same document. A fixed seed and no example database
# make it the same run every time. One worker: hypothesis's lambda descriptions are not thread
# safe on Python 3.11 (an internal "AST constructor recursion depth mismatch" error with two).
# The examples are bounded (SCHEMATHESIS_EXAMPLES per operation, default 100): about 3 minutes
# on 2 cores, the demo city's generation included. CITYGRID_BIN runs another binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCHEMATHESIS=4.32.5
SPEC_VALIDATOR=0.9.0
examples=${SCHEMATHESIS_EXAMPLES:-100}
bin=${CITYGRID_BIN:-./target/release/citygrid}
[ -x "$bin" ] || { echo "$bin is missing: run cargo build --release --locked first"; exit 1; }

py="${XDG_CACHE_HOME:-$HOME/.cache}/citygrid-ci/py"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "== installing python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
if ! "$py/bin/python" -c "
import importlib.metadata as m, sys
sys.exit(m.version('schemathesis') != '$SCHEMATHESIS' or m.version('openapi-spec-validator') != '$SPEC_VALIDATOR')" 2>/dev/null; then
  echo "== installing schemathesis $SCHEMATHESIS and openapi-spec-validator $SPEC_VALIDATOR in $py"
  python3 -m venv "$py"
  "$py/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS" "openapi-spec-validator==$SPEC_VALIDATOR"
fi

tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
token="ci-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
CITYGRID_ADMIN_TOKEN="$token" "$bin" serve --demo --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q 'listening on' "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || { echo "server exited early:"; cat "$tmp/log"; exit 1; }
  sleep 0.5
done
addr=$(sed -n 's#.*listening on http://##p' "$tmp/out")
[ -n "$addr" ] || { echo "server did not start in time:"; cat "$tmp/log"; exit 1; }

echo "== /openapi.json is valid OpenAPI 3.1 (openapi-spec-validator)"
curl -fsS "http://$addr/openapi.json" >"$tmp/openapi.json"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["openapi"]; assert v.startswith("3.1"), v' "$tmp/openapi.json"
"$py/bin/openapi-spec-validator" "$tmp/openapi.json"

echo "== schemathesis: every documented operation, $examples examples each"
status=0
# From the temp dir: schemathesis keeps its working files in the current directory.
root=$PWD
(cd "$tmp" && PYTHONPATH="$root/.ci" SCHEMATHESIS_HOOKS=schemathesis_hooks "$py/bin/schemathesis" run "http://$addr/openapi.json" \
  --url "http://$addr" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --header "Authorization: Bearer $token" \
  --exclude-path /v1/staff/events \
  --phases examples,coverage,fuzzing \
  --max-examples "$examples" \
  --seed 20261207 \
  --generation-database none \
  --workers 1 \
  --request-timeout 120 \
  --suppress-health-check all \
  --warnings off \
  --no-color) || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis found problems (exit $status); the server's log:"
  tail -n 50 "$tmp/log"
  exit "$status"
fi
kill -0 "$pid" || { echo "the server died during the run:"; cat "$tmp/log"; exit 1; }
