#!/usr/bin/env bash
# Records the captures in pcaps/ : real exchanges between the Linux kernel and echo-server
# (seed 1, so the replay test can expect byte-exact answers). Needs root; run from the repo.
# Usage: scripts/record-pcaps.sh [NAME...]  (default: every capture)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
cargo build --release --features cli --bin echo-server --bin tapcat
BIN=$PWD/target/release/echo-server
TAPCAT=$PWD/target/release/tapcat

udp_client() { # sizes... : echo each size once from a kernel UDP socket
    in_ns python3 - "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for n in map(int, sys.argv[1:]):
    data = bytes((i * 7 + n) % 256 for i in range(n))
    s.sendto(data, ("10.0.0.2", 7))
    got, _ = s.recvfrom(65536)
    assert got == data, n
PY
}

refused() { # a connected socket to the closed port 9 sees ECONNREFUSED
    in_ns python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(("10.0.0.2", 9))
s.send(b"is anyone there?")
try:
    s.recv(64)
    raise SystemExit("no error")
except ConnectionRefusedError:
    pass
PY
}

tcp_client() { # port bytes: send BYTES to PORT, read the echo (if any), close from the client
    in_ns python3 - "$@" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("10.0.0.2", port), timeout=5)
data = bytes((i * 13 + 5) % 256 for i in range(n))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
assert port != 7 or got == data, (len(got), n)
s.close()
PY
}

tcp_refused() {
    in_ns python3 - <<'PY'
import socket
try:
    socket.create_connection(("10.0.0.2", 1234), timeout=5)
    raise SystemExit("connected?")
except ConnectionRefusedError:
    pass
PY
}

tcp_reset_by_client() { # read some chargen, then close with unread data: the kernel resets
    in_ns python3 - <<'PY'
import socket
s = socket.create_connection(("10.0.0.2", 19), timeout=5)
got = 0
while got < 20000:
    got += len(s.recv(4096))
s.close()
PY
}

record_client() { # name: tapcat sends a line to a kernel server and half-closes first; the
    # kernel reads to the end, answers and closes, so the stack ends in TIME-WAIT
    local name=$1 fifo
    wanted "$name" || return 0
    make_netns
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    in_ns python3 - >"$fifo" <<'PY' &
import socket, sys
l = socket.create_server(("10.0.0.1", 5000))
print("listening", flush=True)
l.settimeout(10)
s, _ = l.accept()
got = b""
while chunk := s.recv(4096):
    got += chunk
s.sendall(b"got " + str(len(got)).encode() + b" bytes\n")
s.close()
PY
    exec 4<"$fifo"
    wait_listening 4 >/dev/null || die "kernel server did not start"
    printf 'hello from tapcat\n' | in_ns timeout 20 "$TAPCAT" --seed 1 --pcap "pcaps/$name.pcap" \
        "$KERNEL_IP" 5000
    wait
    exec 4<&-
    rm -f "$fifo"
    recorded "$name"
}

recorded() { # name: removes the namespace and reports the capture
    ip netns del "$NS"
    trap - EXIT
    echo "recorded pcaps/$1.pcap: $(tcpdump -nr "pcaps/$1.pcap" 2>/dev/null | wc -l) frames"
}

WANTED=" $* "
wanted() { [ "$WANTED" = "  " ] || [[ $WANTED == *" $1 "* ]]; }

record() { # name, then the commands of the scenario
    local name=$1
    shift
    wanted "$name" || return 0
    make_netns
    start_server "$BIN" --seed 1 ${SERVER_FLAGS:-} --pcap "pcaps/$name.pcap" >/dev/null
    "$@"
    stop_server >/dev/null
    recorded "$name"
}

record arp-ping in_ns ping -n -c 3 -i 0.2 -W 2 "$STACK_IP"
record ping-fragmented sh -c "ip netns exec $NS ping -n -c 2 -i 0.2 -s 8000 $STACK_IP && ip netns exec $NS ping -n -c 1 -s 60000 $STACK_IP"
record udp-echo udp_client 1 100 1472 1473 8000 65507
record udp-port-unreachable refused
record tcp-echo tcp_client 7 20
record tcp-bulk-echo tcp_client 7 262144
record tcp-rst-closed-port tcp_refused
record tcp-reset-by-peer tcp_reset_by_client
SERVER_FLAGS="--drop-chance 5 --reorder-chance 5" record tcp-retransmission tcp_client 7 131072
record_client tcp-client-closes-first
