#!/usr/bin/env bash
# Runs echo-server in a private network namespace and shows it working with the kernel's own
# tools: a TCP echo session with nc (handshake, data and FINs as tcpdump on the tap sees them),
# ping (plain and fragmented), UDP echo, the stack's own --pcap capture and its counters; then
# 4 MiB through echo with 2% of frames dropped each way, traced (--trace), and drawn by
# tapstack-plot: the stack's trace and the kernel's side of the tap, next to their pcaps in
# target/demo (DEMO_OUT=DIR to choose).
# Run it as root (or with sudo); it installs iproute2, iputils-ping, tcpdump, netcat-openbsd
# and fonts-dejavu-core when they are missing. Everything it creates in the namespace is
# removed when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_tools ip:iproute2 ping:iputils-ping tcpdump:tcpdump nc:netcat-openbsd
ensure_font
cargo build --release --features cli --quiet --bin echo-server --bin tapstack-plot
OUT=${DEMO_OUT:-$PWD/target/demo}
mkdir -p "$OUT"
WORK=$(mktemp -d)
make_netns
trap 'set +e; stop_server; ip netns del "$NS" 2>/dev/null; rm -rf "$WORK"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "namespace $NS: tap0 is $KERNEL_IP/24 on the kernel side; the stack is $STACK_IP"
mkfifo "$WORK/dump.err"
ip netns exec "$NS" tcpdump -i tap0 -n -U -w "$WORK/tap.pcap" 2>"$WORK/dump.err" &
DUMP=$!
exec 4<"$WORK/dump.err"
grep -q -m1 "listening on" <&4 || die "tcpdump did not start"
start_server "$PWD/target/release/echo-server" --pcap "$WORK/stack.pcap"

step "TCP echo: printf 'hello over TCP\\n' | nc -N $STACK_IP 7"
printf 'hello over TCP\n' | in_ns nc -N -w 2 "$STACK_IP" 7

step "ping $STACK_IP"
in_ns ping -n -c 3 -i 0.2 -W 2 "$STACK_IP"
step "ping -s 8000 $STACK_IP (fragmented both ways)"
in_ns ping -n -c 2 -i 0.2 -W 2 -s 8000 "$STACK_IP"
step "UDP echo: echo 'hello, tapstack' | nc -u $STACK_IP 7"
echo "hello, tapstack" | in_ns nc -u -w 1 "$STACK_IP" 7

step "echo-server stopped with SIGTERM; its counters:"
stop_server
kill -INT "$DUMP"
wait "$DUMP" || true
exec 4<&-

step "tcpdump -r of the stack's own --pcap capture (first 14 lines)"
tcpdump -n -r "$WORK/stack.pcap" 2>/dev/null | head -14
step "tcpdump on tap0, kernel side: $(tcpdump -n -r "$WORK/tap.pcap" 2>/dev/null | wc -l) frames"
echo "the TCP session: handshake, data both ways, FINs"
tcpdump -n -r "$WORK/tap.pcap" tcp 2>/dev/null
echo "the UDP exchange:"
tcpdump -n -r "$WORK/tap.pcap" udp 2>/dev/null

step "4 MiB through echo, 2% of frames dropped each way by the stack's fault injector, traced"
mkfifo "$WORK/dump2.err"
ip netns exec "$NS" tcpdump -i tap0 -n -U -w "$OUT/tap.pcap" 2>"$WORK/dump2.err" &
DUMP=$!
exec 4<"$WORK/dump2.err"
grep -q -m1 "listening on" <&4 || die "tcpdump did not start"
start_server "$PWD/target/release/echo-server" --drop-chance 2 --trace "$OUT/stack.trace" \
    --pcap "$OUT/stack.pcap"
head -c $((4 << 20)) /dev/urandom >"$WORK/4m"
in_ns nc -N -w 10 "$STACK_IP" 7 <"$WORK/4m" >"$WORK/4m.back"
stop_server >/dev/null
kill -INT "$DUMP"
wait "$DUMP" || true
exec 4<&-
[ "$(sha256sum <"$WORK/4m")" = "$(sha256sum <"$WORK/4m.back")" ] || die "the echo differs"
echo "4 MiB echoed intact (sha256 equal); the trace has $(wc -l <"$OUT/stack.trace") records"
echo "retransmissions, stack: $(grep -c '"trigger":"retransmission"' "$OUT/stack.trace")," \
    "timeouts: $(grep -c '"timer_type":"rto"' "$OUT/stack.trace")"
step "tapstack-plot: the stack sending (its trace) beside the kernel sending (tcpdump on tap0)"
target/release/tapstack-plot --trace "$OUT/stack.trace" --pcap "$OUT/tap.pcap" \
    --from "$KERNEL_IP" --out "$OUT/transfer"
