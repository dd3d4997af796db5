#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, simulations, pcap replay, and the interop
# tests against the Linux kernel (these need root, /dev/net/tun, ip, ping and tcpdump; each runs
# in a network namespace it creates). Under CI=true a missing privilege fails instead of skipping.
# Run it as root (or with sudo); it installs the tools the interop tests use when they are
# missing (apt-get), as .ci/run does.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ "$(id -u)" -eq 0 ]; then
    # Debian's danted and radvd packages would start their services on the host: keep them
    # from doing so while they install (the tests run their own, in namespaces).
    POLICY=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        POLICY=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$POLICY"
        chmod +x "$POLICY"
    fi
    ensure_tools ip:iproute2 ping:iputils-ping tcpdump:tcpdump nc:netcat-openbsd \
        python3:python3 curl:curl danted:dante-server radvd:radvd
    ensure_font
    [ -z "$POLICY" ] || rm -f "$POLICY"
fi
cargo fmt --all -- --check
cargo clippy --all-targets --features cli -- -D warnings
cargo clippy --lib -- -D warnings # the library alone, as its users build it
# Every public item documented (#![warn(missing_docs)]) and every doc link resolving.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features --quiet
# A crate others can depend on: it packages and builds alone (no upload).
cargo publish --dry-run --quiet --allow-dirty
# Each feature set a user may pick builds and passes its library tests: none and `tokio` here,
# `cli` (everything) below.
cargo test --lib --quiet
cargo test --lib --features tokio --quiet
# A library user compiles only what the stack needs: the apps' crates stay behind `cli`.
if cargo tree -e normal --prefix none | grep -Eq '^(clap|signal-hook|env_logger) '; then
    echo "test.sh: the library without features depends on an app-only crate:" >&2
    cargo tree -e normal --prefix none | grep -E '^(clap|signal-hook|env_logger) ' >&2
    exit 1
fi
# The layers depend downwards only: tcp/ and config know nothing of the core above them.
if grep -rnE '^[^/]*crate::(core|runtime|socket)' src/tcp src/config.rs src/id.rs; then
    echo "test.sh: a module cycle: tcp/ or config reaches up into the core (lines above)" >&2
    exit 1
fi
cargo test --all-targets --features cli "$@"
# The threads' protocols under model checkers (src/sync.rs), each in a build and a target
# directory of its own: loom explores the reply, wait/wake, poke and wake-fd protocols
# exhaustively; shuttle runs the whole runtime over the in-memory link, stacks stopped
# mid-call, under 40 randomised schedules per test. About two minutes together.
RUSTFLAGS="--cfg loom" cargo test --lib --release --target-dir target/loom --quiet loom
RUSTFLAGS="--cfg shuttle" cargo test --lib --release --target-dir target/shuttle --quiet shuttle
# The rustdoc examples that need no tap (two stacks over the in-memory link).
cargo test --doc --features cli
