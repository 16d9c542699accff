#!/usr/bin/env bash
# End-to-end test of the web viewer: starts a demo server, runs e2e/viewer.test.mjs in headless
# Debian Chromium against it, stops the server. Idempotent installs (CI runs it on a clean clone).
#
#   web-viewer/e2e/run.sh [BINARY]      # default ./target/release/citygrid
#
# Then starts `serve --demo` (ZOOMS_PRESET, default wuzhong) and runs e2e/zooms.test.mjs against it;
# ZOOMS=0 skips that part (CI runs it once, in the pass at the root path).
# Environment: DEMO_PRESET (tiny|wuzhong|xicheng, default tiny), ZOOM_SHOTS (the directory for
# zooms.test.mjs's screenshots; default a new one under the system tmp dir), SCREENSHOT (default
# target/viewer.png), CHROMIUM (default /usr/bin/chromium), BASE_PATH (e.g. /citygrid: the
# server runs with --base-path and the page is tested under it; default none), FONTS_DIR (the
# server's --fonts; default none: the built-in font), VIEWER_DIR (the server's --viewer-dir, an
# absolute path: test edited viewer files without rebuilding; default none: the compiled-in ones).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=${1:-./target/release/citygrid}
[ -x "$bin" ] || { echo "no citygrid binary at $bin: run cargo build --release"; exit 1; }

# Debian's Chromium (never a downloaded browser), and a CJK font for the browser's own drawing of
# Chinese labels (localIdeographFontFamily) so they are not boxes.
need_apt=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
fc-list :lang=zh 2>/dev/null | grep -q . || need_apt+=(fonts-wqy-zenhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  { echo "the viewer e2e test needs Node.js 20 or newer (playwright-core); found $(node --version)"; exit 1; }
# The test driver, playwright-core, exactly as package-lock.json says (MapLibre is not an npm
# install: it is compiled into the server binary).
if [ ! -d web-viewer/node_modules/playwright-core ]; then
  echo "== npm ci --prefix web-viewer"
  npm ci --prefix web-viewer --no-audit --no-fund
fi

tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
# The server runs from a directory that is not the source tree: the viewer comes from the binary.
bin=$(realpath "$bin")
cd "$tmp"
repo=$OLDPWD
# An admin token, so that the test can upload a new zones version while the page is open.
token="e2e-admin-token-$RANDOM$RANDOM-0123456789"
# Staff tokens: the page reads positions with one; the test posts positions with the other.
staff_token="e2e-staff-token-$RANDOM$RANDOM-0123456789"
positions_token="e2e-positions-token-$RANDOM$RANDOM-0123456789"
CITYGRID_ADMIN_TOKEN="$token" CITYGRID_STAFF_TOKEN="$staff_token" CITYGRID_POSITIONS_TOKEN="$positions_token" "$bin" serve --demo --demo-preset "${DEMO_PRESET:-tiny}" --data "$tmp/data" --bind 127.0.0.1:0 \
  ${BASE_PATH:+--base-path "$BASE_PATH"} ${FONTS_DIR:+--fonts "$FONTS_DIR"} ${VIEWER_DIR:+--viewer-dir "$VIEWER_DIR"} >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q 'listening on' "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || { echo "server exited early:"; cat "$tmp/log"; exit 1; }
  sleep 0.5
done
addr=$(sed -n 's#.*listening on http://##p' "$tmp/out")
[ -n "$addr" ] || { echo "server did not start in time:"; cat "$tmp/log"; exit 1; }

echo "== web viewer e2e against http://$addr${BASE_PATH:-}/viewer/"
status=0
cd "$repo"
CITYGRID_URL="http://$addr${BASE_PATH:-}" CITYGRID_TOKEN="$token" CITYGRID_STAFF_TOKEN="$staff_token" CITYGRID_POSITIONS_TOKEN="$positions_token" \
  node web-viewer/e2e/viewer.test.mjs || status=$?
[ "$status" = 0 ] || { echo "server log:"; tail -n 40 "$tmp/log"; exit "$status"; }

# Readable at every zoom, in pixels: grids, labels, components (and a basemap's streets) at
# z12/z14/z16/z18, clusters off the labels; screenshots kept under $ZOOM_SHOTS (printed). Against
# `serve --demo` as the README runs it (the Wuzhong demo city; ZOOMS_PRESET to change it).
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=""
if [ "${ZOOMS:-1}" = 0 ]; then echo "== zooms e2e skipped (ZOOMS=0)"; exit 0; fi
"$bin" serve --demo --demo-preset "${ZOOMS_PRESET:-wuzhong}" --data "$tmp/zooms-data" --bind 127.0.0.1:0 \
  ${BASE_PATH:+--base-path "$BASE_PATH"} ${FONTS_DIR:+--fonts "$FONTS_DIR"} >"$tmp/zooms-out" 2>"$tmp/zooms-log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q 'listening on' "$tmp/zooms-out" && break
  kill -0 "$pid" 2>/dev/null || { echo "server exited early:"; cat "$tmp/zooms-log"; exit 1; }
  sleep 0.5
done
addr=$(sed -n 's#.*listening on http://##p' "$tmp/zooms-out")
[ -n "$addr" ] || { echo "server did not start in time:"; cat "$tmp/zooms-log"; exit 1; }
echo "== readable at every zoom (${ZOOMS_PRESET:-wuzhong} demo) against http://$addr${BASE_PATH:-}/viewer/"
CITYGRID_URL="http://$addr${BASE_PATH:-}" node web-viewer/e2e/zooms.test.mjs || status=$?
[ "$status" = 0 ] || { echo "server log:"; tail -n 40 "$tmp/zooms-log"; }
exit "$status"
