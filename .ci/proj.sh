#!/usr/bin/env bash
# The `proj` feature's tests: the system PROJ is the oracle of the built-in (pure-Rust) CRS
# engine, and handles the EPSG codes the built-in engine lacks. Installs what it needs itself,
# idempotently: libproj-dev and pkg-config (linking; proj-sys finds PROJ >= 9.0 by pkg-config,
# never the bundled build), libclang-dev (proj-sys 0.23 runs bindgen at build time), proj-bin
# (projinfo / cs2cs, to check values by hand).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
for p in libproj-dev pkg-config proj-bin libclang-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi
echo "== PROJ $(pkg-config --modversion proj)"

# Integration tests only: one build of the library with the feature (a `--lib` test run would
# compile it a second time, as its own test harness).
echo "== the system PROJ as the oracle of the built-in engine, and the lookup API with PROJ-only codes"
cargo test --locked --features proj --test proj_oracle --test http_lookup -- --nocapture
