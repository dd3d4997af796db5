# Shared helpers for the scripts: a private network namespace with a tap, and the echo-server in
# it. Source this file; it needs root, iproute2 and a built echo-server.

NS="tapstack-$$"
KERNEL_IP=10.0.0.1
STACK_IP=10.0.0.2

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# whole OPTION VALUE MAX: dies unless VALUE, given to OPTION, is a whole number from 1 to MAX.
whole() { [[ ${2:-} =~ ^[1-9][0-9]*$ ]] && (($2 <= $3)) || die "$1 needs a whole number, 1 to $3"; }

# ensure_tools TOOL:PACKAGE...: installs, with apt-get, the packages of the tools that are
# missing (a fresh Debian or Ubuntu machine); needs root. Fails with the list otherwise.
ensure_tools() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        die "missing: ${missing[*]} (install them, or run this as root on Debian or Ubuntu)"
    fi
    echo "$(basename "$0"): installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The labels of tapstack-plot's pictures need a TrueType font: Debian's fonts-dejavu-core.
ensure_font() {
    [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        die "missing: fonts-dejavu-core (install it, or run this as root on Debian or Ubuntu)"
    fi
    echo "$(basename "$0"): installing fonts-dejavu-core" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null
}

# Creates namespace $NS with tap0 (kernel side $KERNEL_IP/24); removed on exit.
make_netns() {
    [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and taps)"
    [ -e /dev/net/tun ] || die "needs /dev/net/tun"
    ip netns add "$NS" || die "cannot create network namespace $NS"
    trap 'set +e; stop_server; ip netns del "$NS" 2>/dev/null' EXIT
    trap 'echo "$(basename "$0"): line $LINENO failed: $BASH_COMMAND" >&2' ERR
    trap 'exit 130' INT TERM
    ip netns exec "$NS" ip link set lo up
    # MULTI_QUEUE=1: a multi-queue tap, for `echo-server --queues N`.
    ip netns exec "$NS" ip tuntap add dev tap0 mode tap ${MULTI_QUEUE:+multi_queue}
    # The tap's queue is the stack's receive ring: 10 000 frames, as a server NIC's ring is
    # sized (ethtool -G), so a burst from thousands of kernel sockets is queued, not dropped.
    ip netns exec "$NS" ip link set tap0 txqueuelen 10000
    ip netns exec "$NS" sysctl -qw net.ipv6.conf.tap0.disable_ipv6=1
    ip netns exec "$NS" ip addr add "$KERNEL_IP/24" dev tap0
    ip netns exec "$NS" ip link set tap0 up
}

in_ns() { ip netns exec "$NS" "$@"; }

SERVER_PID=
SERVER_OUT=
# Starts echo-server (binary $1, then its flags) in the namespace and waits for `listening`.
start_server() {
    local bin=$1
    shift
    SERVER_OUT=$(mktemp -u)
    mkfifo "$SERVER_OUT"
    ip netns exec "$NS" "$bin" "$@" >"$SERVER_OUT" &
    SERVER_PID=$!
    exec 3<"$SERVER_OUT"
    wait_listening 3 || die "echo-server did not start"
}

# Echoes lines read from file descriptor $1 until one says `listening` (success), or it ends or
# stays silent for 10 s (failure).
wait_listening() {
    local line
    while IFS= read -r -t 10 -u "$1" line; do
        echo "$line"
        case $line in *listening*) return 0 ;; esac
    done
    return 1
}

# Stops the server with SIGTERM and prints what it said (its counters).
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    timeout 10 cat <&3
    wait "$SERVER_PID" 2>/dev/null
    exec 3<&-
    rm -f "$SERVER_OUT"
    SERVER_PID=
}

# Client-side sysctls, per namespace: benchmarks open thousands of connections a second and the
# client often closes first, so it needs more ephemeral ports and TIME-WAIT reuse (timestamps).
client_sysctls() {
    ip netns exec "$1" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
}

# The kernel baseline: namespaces SRV and CLI (removed by the caller) joined by a veth pair,
# MTU 1500, SRV_IP and CLI_IP on a /24; the client side gets client_sysctls.
make_veth_pair() {
    local srv=$1 cli=$2 srv_ip=$3 cli_ip=$4 end
    ip netns add "$srv" || die "cannot create network namespace $srv"
    ip netns add "$cli" || die "cannot create network namespace $cli"
    ip -n "$srv" link add veth0 mtu 1500 type veth peer name veth0 mtu 1500 netns "$cli"
    for end in "$srv $srv_ip" "$cli $cli_ip"; do
        set -- $end
        ip -n "$1" link set lo up
        ip netns exec "$1" sysctl -qw net.ipv6.conf.veth0.disable_ipv6=1
        ip -n "$1" addr add "$2/24" dev veth0
        ip -n "$1" link set veth0 up
    done
    client_sysctls "$cli"
}

# wait_port NS PORT: true once something listens on TCP PORT in namespace NS, false after 10 s.
wait_port() {
    local i
    for i in $(seq 100); do
        [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ] && return 0
        sleep 0.1
    done
    return 1
}

# The CPU time so far, in nanoseconds, of the thread named tapstack in process $1 (the first
# field of its schedstat: time on a CPU, to the nanosecond, where stat counts clock ticks).
stack_ns() {
    local task
    for task in /proc/"$1"/task/*; do
        if [ "$(cat "$task/comm")" = tapstack ]; then
            cut -d' ' -f1 "$task/schedstat"
            return
        fi
    done
    die "no tapstack thread in process $1"
}

# The median and the range (lo-hi) of a space-separated list of numbers (bench-cpu, -pacing, -uso;
# bench.sh and bench-loss.sh define their own).
# shellcheck disable=SC2086 # the list is split on purpose
median() { printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# shellcheck disable=SC2086
span() { printf '%s\n' $1 | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
