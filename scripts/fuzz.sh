#!/usr/bin/env bash
# Runs the cargo-fuzz targets (frames; segments and segments6, one connection over IPv4 and
# over IPv6), each for SECS seconds (default 120) or, with --runs N, until N executions; prints
# each target's executions, speed, coverage and crashes.
#
#   scripts/fuzz.sh [SECS]
#   scripts/fuzz.sh --runs 10000000
#
# Crashers land in fuzz/artifacts/<target>/; copy them into fuzz/regressions/<target>/ so that
# tests/fuzz_regressions.rs keeps them fixed. cargo-fuzz needs nightly features: on the stable
# toolchain RUSTC_BOOTSTRAP=1 enables them. The corpus grows in fuzz/corpus/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
limit=(-max_total_time="${1:-120}")
if [ "${1:-}" = --runs ]; then
    [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --runs needs a count" >&2; exit 2; }
    limit=(-runs="$2")
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in frames segments segments6; do
    echo "== $target (${limit[*]})"
    mkdir -p "corpus/$target"
    start=$SECONDS
    status=0
    # The regression inputs seed the corpus.
    cargo fuzz run "$target" -s none --debug-assertions "corpus/$target" "regressions/$target" \
        -- "${limit[@]}" -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
    secs=$((SECONDS - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    crashes=$(ls "artifacts/$target" 2>/dev/null | grep -c . || true)
    echo "$target: ${runs:-?} executions in ${secs}s, coverage ${cov:-?} edges (${ft:-?} features), exit $status, ${crashes} files in artifacts/$target"
    [ "$status" -eq 0 ] || tail -30 "$log"
done
