#!/usr/bin/env bash
# The data path's cost per byte: the CPU time echo-server spends per MiB it moves over the tap,
# both ways, on a lossless bulk path, measured by tapbench as bench.sh's send and recv tests
# do. Sending: tapbench reads the stack's chargen for N seconds (checking every byte).
# Receiving: tapbench writes into the stack's discard for N seconds. The two alternate R
# times; prints, per direction, the medians (and ranges) of the rate, the stack thread's time
# on a CPU per MiB (from /proc's schedstat) and the whole process's (the stack thread and the
# application's, whose reads and writes copy the data in and out).
#
#   scripts/bench-cpu.sh [--rounds R] [--secs N] [--loss P]     # as root (or with sudo)
#
# --loss P runs echo-server with `--drop-chance P` (0.01 to 50): its fault injector drops P% of
# the wire frames each way; a super-segment from the kernel that loses none arrives whole, so
# the frames behind each hole reach the stack out of order, as a lossy path's GRO frames do.
#
# To compare two trees, run it in each, alternating (a worktree per tree): the host's speed
# drifts between runs, so compare runs made side by side. The stack thread's time includes its
# busy polling (StackConfig::busy_poll), which a bulk transfer rarely leaves room for.
# Everything happens in a namespace it creates and removes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ROUNDS=5
SECS=2
FAULTS=()
while [ $# -gt 0 ]; do
    case $1 in
    --rounds)
        whole --rounds "${2:-}" 999
        ROUNDS=$2
        shift 2
        ;;
    --secs)
        whole --secs "${2:-}" 999
        SECS=$2
        shift 2
        ;;
    --loss)
        [[ ${2:-} =~ ^[0-9]{1,2}(\.[0-9]{1,2})?$ ]] && awk -v p="$2" 'BEGIN { exit !(p >= 0.01 && p <= 50) }' ||
            die "--loss needs a percentage, 0.01 to 50"
        FAULTS=(--drop-chance "$2" --seed 5)
        shift 2
        ;;
    -h | --help)
        sed -n '2,20s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (use --rounds R, --secs N, --loss P)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (or with sudo): it creates a network namespace and a tap"
cargo build --release --features cli --bins
BIN=$PWD/target/release
export LC_ALL=C
make_netns

# The CPU time so far, in nanoseconds, of every thread of process $1 (see stack_ns).
process_ns() {
    local task sum=0
    for task in /proc/"$1"/task/*; do
        sum=$((sum + $(cut -d' ' -f1 "$task/schedstat")))
    done
    echo "$sum"
}
# per_mib NS BYTES: microseconds per MiB.
per_mib() { awk -v t="$1" -v n="$2" 'BEGIN { printf "%.1f", t / 1e3 / (n / 1048576) }'; }

start_server "$BIN/echo-server" "${FAULTS[@]}" >/dev/null
DIRS=(send receive)
declare -A RATES STACK ALL
for _ in $(seq "$ROUNDS"); do
    for dir in "${DIRS[@]}"; do
        # The stack sends in tapbench's recv test, and receives in its send test.
        test=recv
        [ "$dir" = send ] || test=send
        s0=$(stack_ns "$SERVER_PID")
        p0=$(process_ns "$SERVER_PID")
        out=$(in_ns "$BIN/tapbench" client --host "$STACK_IP" --secs "$SECS" "$test") ||
            die "$dir: tapbench $test failed"
        s1=$(stack_ns "$SERVER_PID")
        p1=$(process_ns "$SERVER_PID")
        bytes=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$out")
        mbps=$(sed -n 's/.*_mbps=\([0-9.]*\).*/\1/p' <<<"$out")
        [ -n "$bytes" ] && [ "$bytes" -gt 0 ] || die "$dir: no bytes moved ($out)"
        RATES[$dir]+="$(printf '%.0f' "$mbps") "
        STACK[$dir]+="$(per_mib $((s1 - s0)) "$bytes") "
        ALL[$dir]+="$(per_mib $((p1 - p0)) "$bytes") "
    done
done
echo "== echo-server counters"
COUNTERS=$(stop_server 2>&1) || true
sed 's/^/  /' <<<"$COUNTERS"

echo
echo "$SECS s each way over the tap${FAULTS[1]:+, ${FAULTS[1]}% of the wire frames lost each way}, $ROUNDS rounds: medians (and ranges)"
printf '%-9s %20s %30s %30s\n' "direction" "MB/s" "stack thread µs per MiB" "echo-server µs per MiB"
for dir in "${DIRS[@]}"; do
    printf '%-9s %20s %30s %30s\n' "$dir" "$(median "${RATES[$dir]}") ($(span "${RATES[$dir]}"))" \
        "$(median "${STACK[$dir]}") ($(span "${STACK[$dir]}"))" \
        "$(median "${ALL[$dir]}") ($(span "${ALL[$dir]}"))"
done
