#!/usr/bin/env bash
# Loss benchmark: how long 32 MiB takes through `echo-server --drop-chance P` (a fault injector
# dropping P% of wire frames each way, every TCP super-segment judged frame by frame), with the
# stack sending (the kernel's nc reads chargen) under each congestion control asked for, and
# with the kernel sending (nc writes to discard); and, as the reference, the kernel sending to
# the kernel over a veth pair that drops P% of frames each way (nftables, offloads off so that
# each frame is a wire frame), with each congestion control the kernel has. Prints the fastest
# and slowest of the runs, how many runs failed (fewer bytes than sent, or a timeout), and the
# retransmission timeouts per run of the stack (which sends data only with chargen) and of the
# kernel's veth client.
#
#   scripts/bench-loss.sh [--runs N] [--mib M] [--loss "0 1 5"] [--congestion "cubic bbr"]
#                         [--counters]        # as root (or with sudo); --counters prints the
#                                             # stack's counters after each algorithm's runs
#
# Installs netcat-openbsd, nftables and ethtool with apt-get when missing. Everything happens in
# namespaces it creates and removes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RUNS=3
MIB=32
LOSSES="0 1 5"
ALGS="cubic bbr"
SHOW_COUNTERS=
while [ $# -gt 0 ]; do
    case $1 in
    --runs)
        RUNS=$2
        shift 2
        ;;
    --mib)
        MIB=$2
        shift 2
        ;;
    --loss)
        LOSSES=$2
        shift 2
        ;;
    --congestion)
        ALGS=$2
        shift 2
        ;;
    --counters)
        SHOW_COUNTERS=1
        shift
        ;;
    -h | --help)
        sed -n '2,18s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (use --runs N, --mib M, --loss \"P...\", --congestion \"A...\", --counters)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (or with sudo): it creates network namespaces and a tap"
ensure_tools nc:netcat-openbsd nft:nftables ethtool:ethtool ping:iputils-ping
cargo build --release --features cli --bins
BIN=$PWD/target/release
BYTES=$((MIB << 20))
SRV=tapstack-loss-srv-$$
CLI=tapstack-loss-cli-$$
export LC_ALL=C
NSTAT_HISTORY=$(mktemp)
export NSTAT_HISTORY
COUNTERS=$(mktemp)
make_netns
cleanup() {
    set +e
    stop_server >/dev/null
    for ns in "$NS" "$SRV" "$CLI"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -f "$NSTAT_HISTORY" "$COUNTERS"
}
trap cleanup EXIT

now() { date +%s.%N; }
# Seconds between two `now` stamps, in milliseconds' precision.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# "min-max s" of the numbers given.
span() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s s", lo, hi }'; }

# The kernel reference: a veth pair, offloads off, nftables dropping P% of frames on each
# side's ingress.
make_veth_pair "$SRV" "$CLI" 10.9.0.1 10.9.0.2
for ns in "$SRV" "$CLI"; do
    ip netns exec "$ns" ethtool -K veth0 tso off gso off gro off >/dev/null
done
set_veth_loss() {
    local ns per_million
    per_million=$(awk -v p="$1" 'BEGIN { printf "%.0f", p * 10000 }')
    for ns in "$SRV" "$CLI"; do
        ip netns exec "$ns" nft flush ruleset
        [ "$per_million" -gt 0 ] || continue
        ip netns exec "$ns" nft -f - <<EOF
table netdev loss {
    chain ingress {
        type filter hook ingress device veth0 priority 0;
        numgen random mod 1000000 < $per_million drop
    }
}
EOF
    done
}

# Runs `sh -c $2` in namespace $1, at most 120 s; prints the seconds it took, or "failed" if it
# timed out or printed a count other than $BYTES.
timed() {
    local a b got
    a=$(now)
    got=$(timeout 120 ip netns exec "$1" bash -c "$2" || true)
    b=$(now)
    if [ "$got" = "$BYTES" ]; then elapsed "$a" "$b"; else echo failed; fi
}
# "min-max s" of the times given, with the number of failed runs if any.
summary() {
    local ok=() failed=0 t
    for t in "$@"; do
        if [ "$t" = failed ]; then failed=$((failed + 1)); else ok+=("$t"); fi
    done
    if [ ${#ok[@]} -gt 0 ]; then span "${ok[@]}"; else printf 'no run'; fi
    [ "$failed" -eq 0 ] || printf ', %d failed' "$failed"
}

# The kernel's own algorithms, for the veth reference: those of $ALGS it has. (The host's
# default may be either: this machine's is bbr. Each sender sets its own.)
KALGS=""
for alg in $ALGS; do
    if grep -qw "$alg" /proc/sys/net/ipv4/tcp_available_congestion_control; then
        KALGS="$KALGS $alg"
    else
        echo "the kernel has no $alg (tcp_available_congestion_control:" \
            "$(cat /proc/sys/net/ipv4/tcp_available_congestion_control)); its column is left out" >&2
    fi
done
KALGS=${KALGS# }
# A kernel sender with congestion control $3 (TCP_CONGESTION, from its SYN on): $BYTES zero
# bytes to $1 port $2, then a half-close; prints $BYTES once the peer has closed too.
ksend() {
    python3 - "$1" "$2" "$3" "$BYTES" <<'PY'
import socket, sys
host, port, alg, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, alg.encode())
s.connect((host, port))
chunk = bytes(1 << 20)
left = n
while left > 0:
    left -= s.send(chunk[:min(left, len(chunk))])
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(n)
PY
}
export -f ksend
export BYTES

declare -A STACK KSTACK KK STACK_RTO KK_RTO
for p in $LOSSES; do
    for alg in $ALGS; do
        start_server "$BIN/echo-server" --drop-chance "$p" --seed 5 --congestion "$alg" >/dev/null
        # Lossy too: any one reply of five will do.
        in_ns ping -c 5 -i 0.2 -w 5 -q "$STACK_IP" >/dev/null || die "the stack does not answer ping"
        s_times=() k_times=()
        for _ in $(seq "$RUNS"); do
            s_times+=("$(timed "$NS" "nc $STACK_IP 19 </dev/null | head -c $BYTES | wc -c")")
            # The stack's algorithm does not matter when it only receives: once is enough.
            if [ "$alg" = "${ALGS%% *}" ]; then
                # The kernel sends with CUBIC; discard answers nothing, so what was sent is
                # what the kernel's socket took.
                k_times+=("$(timed "$NS" "ksend $STACK_IP 9 cubic")")
            fi
        done
        stop_server >"$COUNTERS"
        if [ -n "$SHOW_COUNTERS" ]; then
            echo "== echo-server --congestion $alg at $p%:" >&2
            cat "$COUNTERS" >&2
        fi
        rto=$(awk '/retransmission timeouts/ { n = $1 } END { print n + 0 }' "$COUNTERS")
        STACK[$p,$alg]=$(summary "${s_times[@]}")
        STACK_RTO[$p,$alg]=$(awk -v n="$rto" -v r="$RUNS" 'BEGIN { printf "%.1f", n / r }')
        [ ${#k_times[@]} -eq 0 ] || KSTACK[$p]=$(summary "${k_times[@]}")
    done

    set_veth_loss "$p"
    for alg in $KALGS; do
        ip netns exec "$CLI" nstat -n
        kk_times=()
        for i in $(seq "$RUNS"); do
            port=$((5000 + i))
            ip netns exec "$SRV" timeout 130 sh -c "nc -l 10.9.0.1 $port >/dev/null" &
            listener=$!
            wait_port "$SRV" "$port" || die "nothing listens on port $port in $SRV"
            kk_times+=("$(timed "$CLI" "ksend 10.9.0.1 $port $alg")")
            wait "$listener" || true
        done
        rto=$(ip netns exec "$CLI" nstat | awk '$1 == "TcpExtTCPTimeouts" { n = $2 } END { print n + 0 }')
        KK[$p,$alg]=$(summary "${kk_times[@]}")
        KK_RTO[$p,$alg]=$(awk -v n="$rto" -v r="$RUNS" 'BEGIN { printf "%.1f", n / r }')
    done
done

echo
echo "$MIB MiB, $RUNS runs each: fastest-slowest (the sender's retransmission timeouts per run)"
printf '%-6s' "loss"
for alg in $ALGS; do printf ' %-30s' "stack sends, $alg"; done
printf ' %-22s' "kernel (cubic) to stack"
for alg in $KALGS; do printf ' %-30s' "kernel to kernel, $alg"; done
echo
for p in $LOSSES; do
    printf '%-6s' "$p%"
    for alg in $ALGS; do printf ' %-30s' "${STACK[$p,$alg]} (${STACK_RTO[$p,$alg]})"; done
    printf ' %-22s' "${KSTACK[$p]}"
    for alg in $KALGS; do printf ' %-30s' "${KK[$p,$alg]} (${KK_RTO[$p,$alg]})"; done
    echo
done
