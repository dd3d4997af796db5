#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, simulations, pcap replay, and the interop
# tests against the Linux kernel (these need root, /dev/net/tun, ip, ping and tcpdump; each runs
# in a network namespace it creates). Under CI=true a missing privilege fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets "$@"
