#!/usr/bin/env bash
# Records the captures in pcaps/ : real exchanges between the Linux kernel and echo-server
# (seed 1, so the replay test can expect byte-exact answers). Needs root; run from the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
cargo build --release --bin echo-server
BIN=$PWD/target/release/echo-server

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

record() { # name, then the commands of the scenario
    local name=$1
    shift
    make_netns
    start_server "$BIN" --seed 1 --pcap "pcaps/$name.pcap" >/dev/null
    "$@"
    stop_server >/dev/null
    ip netns del "$NS"
    trap - EXIT
    echo "recorded pcaps/$name.pcap: $(tcpdump -nr "pcaps/$name.pcap" 2>/dev/null | wc -l) frames"
}

record arp-ping in_ns ping -n -c 3 -i 0.2 -W 2 "$STACK_IP"
record ping-fragmented sh -c "ip netns exec $NS ping -n -c 2 -i 0.2 -s 8000 $STACK_IP && ip netns exec $NS ping -n -c 1 -s 60000 $STACK_IP"
record udp-echo udp_client 1 100 1472 1473 8000 65507
record udp-port-unreachable refused
