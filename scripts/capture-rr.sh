#!/usr/bin/env bash
# Request/response captures: shows that neither side waits on a delayed-ACK timer, with the
# stack as server (ab -k against http-server, one 10 KiB file) and as client (examples/rr_client
# against the kernel's echo server, 10406-byte messages: seven full segments and a short tail).
# For each capture, tcpdump on the tap records every frame; the summary gives the exchange
# times from the capture (one exchange = from one request to the next) and the longest.
#
#   scripts/capture-rr.sh [DIR]      # as root (or with sudo); captures are left in DIR
#
# Needs iproute2, tcpdump and ab (apache2-utils). Runs in namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
for tool in ip tcpdump ab; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install iproute2 tcpdump apache2-utils)"
done
cargo build --release --features cli --bins --example rr_client
BIN=$PWD/target/release
make_netns
SITE=$(mktemp -d)
head -c 10240 /dev/zero | tr '\0' 'x' >"$SITE/10k.bin"
DUMP_PID=
trap 'set +e; [ -z "$DUMP_PID" ] || kill $DUMP_PID; stop_server; ip netns del "$NS"; rm -rf "$SITE"' EXIT

# capture FILE: tcpdump on the tap into FILE until stop_capture; returns once it listens
# (its "listening on" line, 10 s at most).
capture() {
    local tries=100
    ip netns exec "$NS" tcpdump -Z root --immediate-mode -i tap0 -s 128 -U -w "$1" tcp 2>"$1.log" &
    DUMP_PID=$!
    until grep -q listening "$1.log"; do
        tries=$((tries - 1))
        [ $tries -gt 0 ] || die "tcpdump did not start: $(cat "$1.log")"
        sleep 0.1
    done
}
stop_capture() {
    kill -TERM "$DUMP_PID" 2>/dev/null || true
    wait "$DUMP_PID" 2>/dev/null || true
    DUMP_PID=
}

# summary FILE CLIENT_PORT_FILTER: exchange times between requests from the client side.
summary() {
    tcpdump -r "$1" -tt -n "$2" 2>/dev/null | awk '
        { t = $1 }
        prev != "" { d = (t - prev) * 1e6; n++; sum += d; if (d > max) max = d; if (d > 30000) slow++ }
        { prev = t }
        END { printf "  %d exchanges: mean %.0f us, longest %.0f us, %d over 30 ms\n", n, sum / n, max, slow + 0 }'
}

echo "== stack as server: ab -k -n 300 -c 1 against http-server"
start_server "$BIN/http-server" --port 80 "$SITE" >/dev/null
capture "$OUT/http-server.pcap"
in_ns ab -q -k -n 300 -c 1 "http://$STACK_IP/10k.bin" | grep -E "Requests per|longest"
stop_capture
stop_server >/dev/null
summary "$OUT/http-server.pcap" "src host $KERNEL_IP and tcp[tcpflags] & tcp-push != 0 and greater 100"

echo "== stack as client: rr_client, 300 exchanges of 10406 bytes with the kernel's echo"
ip netns exec "$NS" "$BIN/tapbench" serve --addr "$KERNEL_IP" >/dev/null &
SERVE_PID=$!
sleep 0.5
capture "$OUT/rr-client.pcap"
in_ns "$BIN/examples/rr_client" tap0 "$STACK_IP/24" "$KERNEL_IP:7" 300 10406 >"$OUT/rr-client.out"
head -1 "$OUT/rr-client.out"
stop_capture
kill "$SERVE_PID"
summary "$OUT/rr-client.pcap" "src host $STACK_IP and dst port 7 and tcp[tcpflags] & tcp-push != 0"
echo "captures in $OUT"
