#!/usr/bin/env bash
# Measures, in release, the time and peak memory of generating a demo city and of loading it
# at server start. Usage: benches/startup.sh [preset] [extra demo args...]
# Prints one line per measurement; copy them into BENCHMARKS.md with the machine description.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${1:-xicheng}; shift || true
cargo build --release --quiet
bin=./target/release/citygrid
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

/usr/bin/time -v "$bin" demo --preset "$preset" --out "$tmp/data" "$@" 2>"$tmp/demo.log" >/dev/null
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/demo.log")
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/demo.log")
size=$(du -sh "$tmp/data" | cut -f1)
echo "demo --preset $preset $*: wall $wall, peak RSS $((rss / 1024)) MiB, data dir $size"

/usr/bin/time -v "$bin" serve --data "$tmp/data" --bind 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 1 1200); do grep -q 'listening on' "$tmp/serve.out" && break; sleep 0.1; done
addr=$(sed -n 's#.*listening on http://##p' "$tmp/serve.out")
curl -fsS "http://$addr/health" >/dev/null
server=$(pgrep -P "$pid" citygrid)
kill -TERM "$server"; wait "$pid"
load=$(grep ' loaded' "$tmp/serve.log" | sed -n 's/.*seconds="\{0,1\}\([0-9.]*\).*/\1/p')
comps=$(grep ' loaded' "$tmp/serve.log" | sed -n 's/.*components=\([0-9]*\).*/\1/p')
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/serve.log")
echo "serve (load at start): ${load}s for $comps components, peak RSS $((rss / 1024)) MiB, $((rss * 1024 / comps)) B/component incl. grids and runtime"
