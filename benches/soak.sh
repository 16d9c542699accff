#!/usr/bin/env bash
# Soak and switch: the release binary serves a generated city under mixed traffic for DURATION
# seconds while the components layer is imported again (PUT /v1/layers/components, a new version
# and a switch) every SWITCH_EVERY seconds; then errors by status, p50 / p99 / max latency per
# request kind — quiet windows and switch windows (from the PUT to SETTLE s after its answer)
# side by side — and the server's memory at start and end.
#
#   benches/soak.sh                       # xicheng, 600 s, a switch every 60 s (the first at 30 s)
#   DURATION=60 benches/soak.sh           # a short run: one switch
#   PRESET=wuzhong RATE=800 WORKERS=32 SWITCH_EVERY=30 benches/soak.sh
#   BIN=/path/to/citygrid CLIENT=/path/to/soak_client benches/soak.sh   # builds nothing
#
# The traffic (examples/soak_client.rs): tiles of grids,zones,components at z12–z18 under
# random component locations across the city (Accept-Encoding: gzip, br), /v1/locate,
# /v1/components/{code}, /v1/grids/{code}, POST /v1/cases/route, OGC items pages, at RATE
# requests/s (default 400) over WORKERS keep-alive connections (default 16).
#
# Exits non-zero on any 5xx, any connection error, or a switch that did not answer 200.
# Needs python3 and curl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${PRESET:-xicheng}
duration=${DURATION:-600}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin citygrid --example soak_client
fi
out=${CARGO_TARGET_DIR:-target}/release
BIN=${BIN:-$out/citygrid}; CLIENT=${CLIENT:-$out/examples/soak_client}
tmp=$(mktemp -d)
spid=
trap '[ -z "$spid" ] || kill "$spid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
token=soak-admin-token-0123456789

"$BIN" demo --preset "$preset" --out "$tmp/data" >/dev/null 2>&1
printf 'max_upload_mb = 4096\n[limits]\nupload_per_minute = 100\nupload_burst = 20\n' >"$tmp/serve.toml"
CITYGRID_ADMIN_TOKEN=$token "$BIN" serve --data "$tmp/data" --bind 127.0.0.1:0 --config "$tmp/serve.toml" \
  >"$tmp/serve.out" 2>"$tmp/serve.err" &
spid=$!
url=
for _ in $(seq 1200); do
  url=$(sed -n 's/^citygrid listening on //p' "$tmp/serve.out")
  [ -n "$url" ] && curl -sf "$url/health" >/dev/null && break
  kill -0 "$spid" 2>/dev/null || { echo "serve failed:"; tail -5 "$tmp/serve.err"; exit 1; }
  sleep 0.5
done
curl -sf "$url/health" >/dev/null || { echo "serve did not answer /health"; exit 1; }

# Inputs: component locations and codes, their unit grids' codes, and the layer to re-upload.
mkdir -p "$tmp/in"
curl -fsS "$url/v1/components?bbox=-180,-90,180,90&limit=10000" >"$tmp/page.json"
python3 - "$tmp/page.json" "$tmp/in" <<'PY'
import json, sys
cs = json.load(open(sys.argv[1]))["components"]
out = sys.argv[2]
with open(f"{out}/points.txt", "w") as f:
    for c in cs:
        f.write(f'{c["location"]["lon"]:.8f} {c["location"]["lat"]:.8f}\n')
with open(f"{out}/codes.txt", "w") as f:
    f.write("\n".join(c["code"] for c in cs[::5]) + "\n")
grids = sorted({c["grid"] for c in cs if c.get("grid")})
with open(f"{out}/grids.txt", "w") as f:
    f.write("\n".join(grids) + "\n")
PY
cp "$tmp/data/layers/components/1.fgb" "$tmp/in/upload.fgb"

kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
echo "preset $preset: $(wc -l <"$tmp/in/points.txt") traffic points, $(du -m "$tmp/in/upload.fgb" | cut -f1) MB components layer to re-import;" \
  "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
rss_start=$(kib "$spid" VmRSS)
status=0
"$CLIENT" "$url" "$tmp/in" duration="$duration" rate="${RATE:-400}" workers="${WORKERS:-16}" \
  switch_every="${SWITCH_EVERY:-60}" settle="${SETTLE:-3}" token="$token" || status=$?
rss_end=$(kib "$spid" VmRSS)
hwm=$(kib "$spid" VmHWM)
python3 -c "print(f'server RSS: start {$rss_start/1024:.0f} MiB, end {$rss_end/1024:.0f} MiB (growth {($rss_end-$rss_start)/1024:+.0f} MiB), peak {$hwm/1024:.0f} MiB')"
kill -0 "$spid" 2>/dev/null || { echo "the server died"; tail -20 "$tmp/serve.err"; exit 1; }
if grep -qi 'panic' "$tmp/serve.err"; then echo "the server panicked:"; grep -i -m5 -A3 panic "$tmp/serve.err"; status=1; fi
exit "$status"
