#!/usr/bin/env bash
# Runs the cargo-fuzz targets (frames, segments) for SECS seconds each (default 120).
# Crashers land in fuzz/artifacts/; copy them into fuzz/regressions/<target>/ so that
# tests/fuzz_regressions.rs keeps them fixed. cargo-fuzz needs nightly features: on the stable
# toolchain RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-120}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in frames segments; do
    echo "== $target for ${secs}s"
    cargo fuzz run "$target" -s none --debug-assertions -- -max_total_time="$secs" -max_len=4096
done
