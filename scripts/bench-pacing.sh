#!/usr/bin/env bash
# Pacing's cost: the stack thread's CPU time per byte sent on the lossless bulk path (the
# kernel's nc reads M MiB of echo-server's chargen over the tap), unpaced CUBIC against paced
# CUBIC (--pacing) and BBR (which paces), in alternating rounds so that all three see the
# same machine. Prints, per configuration, the median of the rounds: the rate, the stack
# thread's time on a CPU (from /proc's schedstat) per MiB sent, with its ratio to unpaced CUBIC's, and
# how often per MiB pacing held output back (echo-server's counter).
#
#   scripts/bench-pacing.sh [--rounds R] [--mib M]     # as root (or with sudo)
#
# Installs netcat-openbsd with apt-get when missing. Everything happens in a namespace it
# creates and removes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ROUNDS=5
MIB=1024
while [ $# -gt 0 ]; do
    case $1 in
    --rounds)
        ROUNDS=$2
        shift 2
        ;;
    --mib)
        MIB=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,10s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (use --rounds R, --mib M)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (or with sudo): it creates a network namespace and a tap"
ensure_tools nc:netcat-openbsd
cargo build --release --features cli --bins
BIN=$PWD/target/release
BYTES=$((MIB << 20))
export LC_ALL=C
make_netns

now() { date +%s.%N; }

CONFIGS=("cubic" "cubic --pacing" "bbr")
declare -A RATES CPU HOLDS
for _ in $(seq "$ROUNDS"); do
    for cfg in "${CONFIGS[@]}"; do
        # shellcheck disable=SC2086 # the configuration is two words for paced CUBIC
        start_server "$BIN/echo-server" --congestion $cfg >/dev/null
        before=$(stack_ns "$SERVER_PID")
        a=$(now)
        got=$(in_ns sh -c "nc $STACK_IP 19 </dev/null | head -c $BYTES | wc -c")
        b=$(now)
        after=$(stack_ns "$SERVER_PID")
        holds=$(stop_server | awk '/times pacing held/ { n = $1 } END { print n + 0 }')
        [ "$got" = "$BYTES" ] || die "$cfg: $got of $BYTES bytes"
        HOLDS[$cfg]+="$(awk -v h="$holds" -v n="$MIB" 'BEGIN { printf "%.1f", h / n }') "
        RATES[$cfg]+="$(awk -v n="$MIB" -v a="$a" -v b="$b" 'BEGIN { printf "%.0f", n * 1.048576 / (b - a) }') "
        CPU[$cfg]+="$(awk -v t="$((after - before))" -v n="$MIB" 'BEGIN { printf "%.1f", t / 1e3 / n }') "
    done
done

echo
echo "$MIB MiB from the stack's chargen, $ROUNDS rounds: medians (and ranges)"
printf '%-16s %18s %30s %8s %12s\n' "configuration" "MB/s" "stack CPU µs per MiB" "ratio" "holds/MiB"
base=$(median "${CPU[cubic]}")
for cfg in "${CONFIGS[@]}"; do
    cpu=$(median "${CPU[$cfg]}")
    printf '%-16s %18s %30s %8s %12s\n' "$cfg" "$(median "${RATES[$cfg]}") ($(span "${RATES[$cfg]}"))" \
        "$cpu ($(span "${CPU[$cfg]}"))" "$(awk -v c="$cpu" -v b="$base" 'BEGIN { printf "%.2f", c / b }')" \
        "$(median "${HOLDS[$cfg]}")"
done
