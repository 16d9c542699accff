#!/usr/bin/env bash
# Soak and switch: the release binary serves a generated city under mixed traffic for DURATION
# seconds while the components layer is imported again (PUT /v1/layers/components, a new version
# and a switch) every SWITCH_EVERY seconds; then errors by status, p50 / p99 / max latency per
# request kind — quiet windows and switch windows (from the PUT to SETTLE s after its answer)
# side by side — and the server's memory: at start and end, and per switch the RSS and the
# snapshots alive (`citygrid_snapshots_alive`) just before it, the peak until the next switch,
# and just before the next one (sampled every second; MEMORY_LOG=FILE keeps the samples:
# unix time, RSS KiB, snapshots alive, tile cache bytes). The same sampler reads the server's audit-append
# histogram (`citygrid_audit_append_duration_seconds`: the durable write of each routed case)
# and prints its appends in quiet and switch windows by latency bucket — the disk's share of
# routing latency, less sensitive to CPU noise than the client's p99 (AUDIT_LOG=FILE keeps the
# samples: unix time, then `le=count` per bucket).
#
#   benches/soak.sh                       # xicheng, 600 s, a switch every 60 s (the first at 30 s)
#   DURATION=60 benches/soak.sh           # a short run: one switch
#   PRESET=wuzhong RATE=800 WORKERS=32 SWITCH_EVERY=30 benches/soak.sh
#   BIN=/path/to/citygrid CLIENT=/path/to/soak_client benches/soak.sh   # builds nothing
#   DURATION=300 SWITCH_EVERY=30 benches/soak.sh   # 10 switches in 5 minutes
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
# Memory over time, every second: the time (EPOCHREALTIME), the server's RSS (KiB), the
# snapshots alive (citygrid_snapshots_alive of /metrics; "-" for a binary without it) and the
# bytes held by the tile cache (citygrid_tile_cache_bytes: bounded by --tile-cache-mb, so RSS
# less the cache is what must stay flat).
t0=$EPOCHREALTIME
(
  while kill -0 "$spid" 2>/dev/null; do
    at=$EPOCHREALTIME
    metrics=$(curl -s --max-time 2 "$url/metrics")
    alive=$(awk '$1 == "citygrid_snapshots_alive" {print $2}' <<<"$metrics")
    cache=$(awk '$1 == "citygrid_tile_cache_bytes" {print $2}' <<<"$metrics")
    echo "$at $(kib "$spid" VmRSS) ${alive:--} ${cache:--}"
    echo "$at $(sed -n 's/^citygrid_audit_append_duration_seconds_bucket{le="\([^"]*\)"} \([0-9.e+]*\).*/\1=\2/p' <<<"$metrics" | tr '\n' ' ')" >>"$tmp/audit.txt"
    sleep 1
  done
) >"$tmp/memory.txt" 2>/dev/null &
sampler=$!
status=0
"$CLIENT" "$url" "$tmp/in" duration="$duration" rate="${RATE:-400}" workers="${WORKERS:-16}" \
  switch_every="${SWITCH_EVERY:-60}" settle="${SETTLE:-3}" token="$token" | tee "$tmp/client.out" || status=${PIPESTATUS[0]}
kill "$sampler" 2>/dev/null || true
[ -z "${MEMORY_LOG:-}" ] || cp "$tmp/memory.txt" "$MEMORY_LOG"
[ -z "${AUDIT_LOG:-}" ] || cp "$tmp/audit.txt" "$AUDIT_LOG"
# Audit appends per window kind, by latency bucket: each second's new appends go to the switch
# windows if that second overlaps one (from the PUT until SETTLE s after its answer).
python3 - "$tmp/client.out" "$tmp/audit.txt" "$t0" "${SETTLE:-3}" <<'PY'
import re, sys
t0, settle = float(sys.argv[3]), float(sys.argv[4])
switches = [(float(a), float(b)) for a, b in re.findall(r"^  switch +([0-9.]+) s → +([0-9.]+) s", open(sys.argv[1]).read(), re.M)]
rows = []
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) > 1:
        rows.append((float(f[0]) - t0, {k: float(v) for k, v in (x.split("=") for x in f[1:])}))
if len(rows) < 2 or not rows[0][1]:
    sys.exit(0)
les = sorted(rows[0][1], key=lambda k: float(k))
sums = {False: dict.fromkeys(les, 0.0), True: dict.fromkeys(les, 0.0)}
for (a, prev), (b, cur) in zip(rows, rows[1:]):
    switch = any(b >= s and a <= e + settle for s, e in switches)
    for k in les:
        sums[switch][k] += cur.get(k, 0) - prev.get(k, 0)
def pct(c, p):
    n = c["+Inf"]
    return next(("≤ %g ms" % (float(k) * 1000) if k != "+Inf" else "> 1 s") for k in les if c[k] >= p * n) if n else "-"
print("audit appends (server histogram), cumulative share by latency:")
shown = [k for k in les if k != "+Inf" and 0.0005 <= float(k) <= 0.1]
print("  %-7s %7s | %s | %8s %8s" % ("window", "appends", " ".join("%8s" % ("≤%gms" % (float(k) * 1000)) for k in shown), "p50", "p99"))
for name, c in (("quiet", sums[False]), ("switch", sums[True])):
    n = c["+Inf"]
    cells = " ".join("%7.2f%%" % (100 * c[k] / n) if n else "%8s" % "-" for k in shown)
    print("  %-7s %7d | %s | %8s %8s" % (name, n, cells, pct(c, 0.5), pct(c, 0.99)))
PY
# Per switch: RSS and snapshots alive just before it, the peak while it ran (until the next
# one), and at its end (just before the next switch, or at the end of the run).
python3 - "$tmp/client.out" "$tmp/memory.txt" "$t0" <<'PY'
import re, sys
t0 = float(sys.argv[3])
switches = [(float(a), float(b)) for a, b in re.findall(r"^  switch +([0-9.]+) s → +([0-9.]+) s", open(sys.argv[1]).read(), re.M)]
rows = []
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) >= 3 and f[1].isdigit():
        cache = float(f[3]) / 2**20 if len(f) > 3 and f[3] != "-" else None
        rows.append((float(f[0]) - t0, int(f[1]) / 1024, f[2], cache))
def less_cache(r):
    return "" if r[3] is None else f" [tile cache {r[3]:.0f}, RSS less cache {r[1] - r[3]:.0f}]"
if switches and rows:
    print("memory per switch: RSS MiB (snapshots alive) before → peak (max alive) until the next → at the next switch / the end [its tile cache MiB]")
    for i, (a, b) in enumerate(switches):
        nxt = switches[i + 1][0] if i + 1 < len(switches) else float("inf")
        before = [r for r in rows if r[0] <= a]
        during = [r for r in rows if a <= r[0] < nxt]
        if not before or not during:
            continue
        peak = max(during, key=lambda r: r[1])
        alive = max((r[2] for r in during), key=lambda v: -1 if v == "-" else int(v))
        end = during[-1]
        print(f"  switch {i + 1:2} at {a:6.1f} s: {before[-1][1]:6.0f} ({before[-1][2]}) → {peak[1]:6.0f} ({alive}) → {end[1]:6.0f} ({end[2]}){less_cache(end)}")
PY
rss_end=$(kib "$spid" VmRSS)
hwm=$(kib "$spid" VmHWM)
python3 -c "print(f'server RSS: start {$rss_start/1024:.0f} MiB, end {$rss_end/1024:.0f} MiB (growth {($rss_end-$rss_start)/1024:+.0f} MiB), peak {$hwm/1024:.0f} MiB')"
kill -0 "$spid" 2>/dev/null || { echo "the server died"; tail -20 "$tmp/serve.err"; exit 1; }
if grep -qi 'panic' "$tmp/serve.err"; then echo "the server panicked:"; grep -i -m5 -A3 panic "$tmp/serve.err"; status=1; fi
exit "$status"
