#!/usr/bin/env bash
# Coverage-guided fuzzing of citygrid's readers of untrusted input (docs/fuzzing.md), stable
# Rust only: cargo-fuzz + libFuzzer without a sanitizer (`--sanitizer none`: coverage through
# stable -C flags, no -Z flag). Builds fuzz/, replays fuzz/regressions/<target>/, then fuzzes
# each target for FUZZ_SECONDS (default 25 s: 13 targets, about 6 minutes) from the seeds in
# fuzz/corpus/<target>/. Any crash, timeout (> 10 s on one input), allocation over 256 MiB or
# RSS over 2 GiB fails the script; the input is printed (base64) and kept in
# fuzz/artifacts/<target>/.
#
#   bash .ci/fuzz.sh                    # every target
#   FUZZ_SECONDS=300 bash .ci/fuzz.sh crs rules     # some targets, longer
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH="${FUZZ_SECONDS:-25}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
export CARGO_INCREMENTAL=0

# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null; then
    apt-get update -qq && apt-get install -y -qq g++
fi
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

# cargo-fuzz compiles with one codegen unit unless told otherwise: 16 units build the
# instrumented crate graph in about half the time, at the price of somewhat slower runs
# (FUZZ_CODEGEN_UNITS=1 for long runs).
build=(--sanitizer none --release --debug-assertions --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")
(cd fuzz && cargo fuzz build "${build[@]}")
bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

# The dictionary of each target, if it has one.
dict_for() {
    case "$1" in
        geojson) echo fuzz/dict/geojson.dict ;;
        csv_layer | rules | units | cases) echo fuzz/dict/csv.dict ;;
        crs | shapefile) echo fuzz/dict/crs.dict ;;
        calendar) echo fuzz/dict/calendar.dict ;;
    esac
}

failed=()
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$artifacts" "$work/$t" "fuzz/corpus/$t"
    opts=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" -print_final_stats=1)
    dict="$(dict_for "$t")"
    [ -n "$dict" ] && opts+=(-dict="$dict")
    echo "=== fuzz target $t: regressions, then ${SECONDS_EACH}s"
    status=0
    if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
        "$bin_dir/$t" "${opts[@]}" -runs=1 "fuzz/regressions/$t"/* 2>&1 | tail -n 3 || status=$?
    fi
    if [ "$status" -eq 0 ]; then
        # New inputs go to the scratch directory (first), the seeds are only read.
        "$bin_dir/$t" "${opts[@]}" -max_total_time="$SECONDS_EACH" "$work/$t" "fuzz/corpus/$t" >"$work/$t.log" 2>&1 || status=$?
        grep -E '^(stat::|Done|#[0-9]+ +DONE)' "$work/$t.log" || true
    fi
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        echo "!!! fuzz target $t FAILED (exit $status)"
        tail -n 60 "$work/$t.log" 2>/dev/null || true
        for f in "$artifacts"/*; do
            [ -f "$f" ] || continue
            echo "--- crashing input $f ($(wc -c <"$f") bytes), base64:"
            base64 -w 0 "$f" | head -c 4096
            echo
            echo "reproduce: (cd fuzz && cargo fuzz run ${build[*]} $t ../$f)"
        done
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing failed for: ${failed[*]} (inputs kept in fuzz/artifacts/)"
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${SECONDS_EACH}s each, no crash"
