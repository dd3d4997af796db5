#!/usr/bin/env bash
# UDP send offload against its alternatives, for the same payloads: the stack sends 60 000
# bytes per call to a kernel UDP socket over the tap, for N seconds, three ways:
#   frag  one datagram per call, cut into IP fragments by the stack, reassembled by the kernel;
#   gso   one segmented send per call (UdpSocket::send_segments_to, 1472-byte datagrams),
#         handed to the kernel whole and cut there (USO);
#   each  one send_to per 1472 bytes: the datagrams gso makes, sent one by one.
# The three alternate R times (examples/udp_blast.rs); prints per mode the medians (and
# ranges) of the rate delivered to the kernel's socket and of the process's CPU time per MiB
# delivered (every thread: the application, the stack thread, the receiving socket's thread,
# and the kernel's work in their system calls). The receiving socket has a 16 MiB buffer.
#
#   scripts/bench-uso.sh [--rounds R] [--secs N]     # as root (or with sudo)
#
# Everything happens in a namespace it creates and removes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ROUNDS=5
SECS=2
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
    -h | --help)
        sed -n '2,15s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (use --rounds R, --secs N)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (or with sudo): it creates a network namespace and a tap"
cargo build --release --example udp_blast
BLAST=$PWD/target/release/examples/udp_blast
export LC_ALL=C
make_netns

MODES=(frag gso each)
declare -A RATES CPU
for round in $(seq 1 "$ROUNDS"); do
    for mode in "${MODES[@]}"; do
        line=$(in_ns timeout $((SECS + 30)) "$BLAST" tap0 "$STACK_IP/24" "$KERNEL_IP:9" "$mode" "$SECS") ||
            die "udp_blast $mode failed (round $round)"
        echo "round $round: $line"
        rate=$(sed -n 's/.*delivered_mbps=\([0-9.]*\).*/\1/p' <<<"$line")
        cpu=$(sed -n 's/.*cpu_ms_per_mib=\([0-9.]*\).*/\1/p' <<<"$line")
        [ -n "$rate" ] && [ -n "$cpu" ] || die "no figures in: $line"
        RATES[$mode]="${RATES[$mode]:-} $rate"
        CPU[$mode]="${CPU[$mode]:-} $cpu"
    done
done

echo
echo "60 000 bytes per call for $SECS s, $ROUNDS rounds: medians (and ranges)"
printf '%-6s %24s %28s\n' "mode" "MB/s delivered" "CPU ms per MiB delivered"
for mode in "${MODES[@]}"; do
    printf '%-6s %24s %28s\n' "$mode" "$(median "${RATES[$mode]}") ($(span "${RATES[$mode]}"))" \
        "$(median "${CPU[$mode]}") ($(span "${CPU[$mode]}"))"
done
