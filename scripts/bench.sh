#!/usr/bin/env bash
# Benchmark: bulk throughput both ways (client -> discard, chargen -> client), 1-byte
# request/response latency, connections per second, 1000 connections opened back to back (time,
# SYNs retransmitted), 10 000 connections held at once, each echoing 1 KiB (time, the server's
# memory and threads), and UDP echo of 1400-byte datagrams, 64 in flight (MB/s, datagrams/s,
# lost), measured by one client (tapbench, kernel
# sockets) against tapstack's echo-server over a tap and against the kernel's own TCP
# (tapbench serve) between two namespaces over a veth pair. Each test runs on the kernel and then
# on tapstack, back to back, so both see the same machine load; then every test runs once more
# against `echo-server --async` (tokio tasks, the async API). Prints a table with the ratios
# and whether they meet the data-path targets; exits 0 either way (it is a measurement).
#
#   sudo scripts/bench.sh [--secs N] [--quick] [--only T,T] [--repeat R] [--ipv6] [--pin | --one-cpu]
#       N seconds per test (default 5; --quick: 1); --only runs some of: send recv rr crr connect hold udp;
#       --ipv6: every test over IPv6 (the kernel's veth and the stack's tap both), and send,
#       recv, rr and crr over IPv4 too in the same run, with the IPv6/IPv4 comparison;
#       --repeat R: for a host whose speed drifts between runs, each test runs R times on the
#       kernel and on tapstack, alternating, and the table gives each one's median (default 1);
#       with --ipv6, tapstack's IPv6 and IPv4 runs of send, recv, rr and crr alternate R times
#       instead (IPv4 first in every other round) and the comparison takes the medians;
#       --pin: every server (echo-server, the kernel's tapbench serve) on CPU 0 and every
#       client on CPU 1. On 2 cores, where the scheduler puts three busy threads halves or
#       doubles a bulk run from one run to the next; pinned, it cannot. The server's threads
#       then share a core, which costs rr and crr their spinning (see the README);
#       --one-cpu: every server and every client on CPU 0, where no wakeup crosses CPUs (on
#       this VM a wakeup across CPUs costs about 28 us, on one CPU under 2 us: the host floor
#       that tapbench wakeup measures, see the README)
#
# ECHO_SERVER_ARGS adds flags to tapstack's echo-server (say "--busy-poll-us 0"); with
# "--queues N" in it the tap is made multi-queue.
# Needs root and iproute2. Everything happens in namespaces it creates and removes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SECS=5
ONLY=
IPV6=
REPEAT=1
# With --pin, servers run on CPU 0 and clients on CPU 1 (taskset); empty, where they land.
SERVER_CPU=()
CLIENT_CPU=()
while [ $# -gt 0 ]; do
    case $1 in
    --pin)
        SERVER_CPU=(taskset -c 0)
        CLIENT_CPU=(taskset -c 1)
        shift
        ;;
    --one-cpu)
        SERVER_CPU=(taskset -c 0)
        CLIENT_CPU=(taskset -c 0)
        shift
        ;;
    --ipv6)
        IPV6=1
        shift
        ;;
    --repeat)
        [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || die "--repeat needs a count, 1 to 99"
        REPEAT=$2
        shift 2
        ;;
    --secs)
        [ $# -ge 2 ] || die "--secs needs a value"
        SECS=$2
        shift 2
        ;;
    --quick)
        SECS=1
        shift
        ;;
    --only)
        [ $# -ge 2 ] || die "--only needs a list of tests"
        ONLY=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,21s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (use --secs N, --quick, --only T,T, --ipv6, --repeat R, --pin or --one-cpu)" ;;
    esac
done
[[ $SECS =~ ^[1-9][0-9]{0,3}$ ]] && [ "$SECS" -le 3600 ] || die "--secs must be a whole number of seconds, 1 to 3600"
for tool in ip ping; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install iproute2 iputils-ping)"
done
TESTS=(send recv rr crr connect hold udp)
if [ -n "$ONLY" ]; then
    IFS=, read -ra WANT <<<"$ONLY"
    for t in "${WANT[@]}"; do
        [[ " ${TESTS[*]} " == *" $t "* ]] || die "unknown test $t (tests: ${TESTS[*]})"
    done
    TESTS=("${WANT[@]}")
fi

cargo build --release --features cli --bins
BIN=$PWD/target/release

# The kernel baseline: $KSRV (tapbench serve, $KSRV_IP) -- veth, MTU 1500 -- $KCLI ($KCLI_IP).
KSRV="tapbench-srv-$$"
KCLI="tapbench-cli-$$"
KSRV_IP=10.9.0.1
KCLI_IP=10.9.0.2
KSERVER_PID=
KSERVER_OUT=
WORK=$(mktemp -d)

stop_kernel_server() {
    [ -n "$KSERVER_PID" ] || return 0
    kill -TERM "$KSERVER_PID" 2>/dev/null
    wait "$KSERVER_PID" 2>/dev/null || true
    exec 4<&-
    KSERVER_PID=
}

cleanup() {
    set +e # remove everything even if a step fails
    stop_kernel_server
    stop_server
    ip netns del "$KSRV" 2>/dev/null
    ip netns del "$KCLI" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$WORK"
}

if [[ " ${ECHO_SERVER_ARGS:-} " == *" --queues "* ]]; then
    export MULTI_QUEUE=1
fi
make_netns # tapstack: namespace $NS with tap0 = $KERNEL_IP/24
trap cleanup EXIT
client_sysctls "$NS"

make_veth_pair "$KSRV" "$KCLI" "$KSRV_IP" "$KCLI_IP"
if [ -n "$IPV6" ]; then
    # The same links over IPv6: each side's address without DAD (the links are theirs alone),
    # the stack's from --ip6, and every test run against the IPv6 addresses.
    for end in "$KSRV fd00:9::1" "$KCLI fd00:9::2"; do
        set -- $end
        ip netns exec "$1" sysctl -qw net.ipv6.conf.veth0.disable_ipv6=0
        ip -n "$1" -6 addr add "$2/64" dev veth0 nodad
    done
    in_ns sysctl -qw net.ipv6.conf.tap0.disable_ipv6=0
    in_ns ip -6 addr add 2001:db8::1/64 dev tap0 nodad
    # The IPv4 addresses stay, for the same tests over IPv4 in the same run.
    KSRV_IP4=$KSRV_IP
    STACK_IP4=$STACK_IP
    KSRV_IP=fd00:9::1
    STACK_IP=2001:db8::2
    ECHO_SERVER_ARGS="--ip6 2001:db8::2/64 ${ECHO_SERVER_ARGS:-}"
fi

KSERVER_OUT=$WORK/kserver.out
mkfifo "$KSERVER_OUT"
# With --ipv6 the kernel server is dual-stack on [::], as echo-server is with --ip6.
KSERVE_ADDR=$KSRV_IP
[ -z "$IPV6" ] || KSERVE_ADDR=::
ip netns exec "$KSRV" "${SERVER_CPU[@]}" "$BIN/tapbench" serve --addr "$KSERVE_ADDR" >"$KSERVER_OUT" &
KSERVER_PID=$!
exec 4<"$KSERVER_OUT"
wait_listening 4 || die "tapbench serve did not start"
# shellcheck disable=SC2086 # extra echo-server flags, split on spaces
start_server "${SERVER_CPU[@]}" "$BIN/echo-server" ${ECHO_SERVER_ARGS:-}

# The veth link is up once the server namespace answers a ping from the client one, and the
# stack's IPv6 address once its DAD passed and it answers (bounded).
deadline=$((SECONDS + 10))
until ip netns exec "$KCLI" ping -c1 -W1 -q "$KSRV_IP" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "veth pair not reachable"
done
if [ -n "$IPV6" ]; then
    until in_ns ping -6 -c1 -W1 -q "$STACK_IP" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "the stack's IPv6 address does not answer"
    done
fi

declare -A K T
# run NAMESPACE HOST TEST ARRAY SERVER_PID: one test, its key=value results into ARRAY (or a
# failure note).
run() {
    local -n into=$4
    local out kv
    if out=$(timeout $((SECS + 180)) ip netns exec "$1" "${CLIENT_CPU[@]}" "$BIN/tapbench" client --host "$2" \
        --secs "$SECS" --server-pid "$5" "$3" 2>"$WORK/err"); then
        echo "  $4 $3: $out"
        for kv in $out; do into[${kv%%=*}]=${kv#*=}; done
    else
        echo "  $4 $3: FAILED: $(tr '\n' ' ' <"$WORK/err")"
    fi
}

# collect TEST FROM INTO: appends each result of TEST (its keys begin with TEST_) in array FROM
# to the list under its key in INTO.
collect() {
    local -n from=$2 into=$3
    local key
    for key in "${!from[@]}"; do
        if [[ $key == "$1"_* ]]; then
            into[$key]="${into[$key]:-} ${from[$key]}"
            # Taken: a failed next run leaves its place empty rather than repeat this one.
            unset "from[$key]"
        fi
    done
    return 0
}
# median LIST: the middle of the numbers in LIST (the lower middle of an even count).
median() { tr ' ' '\n' <<<"$1" | { grep -E '^[0-9.]+$' || true; } | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "fail" }'; }

echo "== $(uname -sr), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), $SECS s per test"
# The host's floor for every test that crosses threads (rr, crr, connect): two threads waking
# each other, across CPUs and on one CPU (tapbench wakeup; see the README).
FLOOR=$("$BIN/tapbench" wakeup --rounds 5000 2>&1) || FLOOR="not measured: $FLOOR"
echo "== host floor: $FLOOR"
declare -A K4 T4 S6 S4 KS TS
for t in "${TESTS[@]}"; do
    run "$KCLI" "$KSRV_IP" "$t" K "$KSERVER_PID"
    run "$NS" "$STACK_IP" "$t" T "$SERVER_PID"
    if [ -z "$IPV6" ] && ((REPEAT > 1)); then
        # R runs of each, alternating, the kernel first in every other round; medians below.
        collect "$t" K KS
        collect "$t" T TS
        for ((r = 1; r < REPEAT; r++)); do
            if ((r % 2)); then
                run "$NS" "$STACK_IP" "$t" T "$SERVER_PID"
                run "$KCLI" "$KSRV_IP" "$t" K "$KSERVER_PID"
            else
                run "$KCLI" "$KSRV_IP" "$t" K "$KSERVER_PID"
                run "$NS" "$STACK_IP" "$t" T "$SERVER_PID"
            fi
            collect "$t" K KS
            collect "$t" T TS
        done
    fi
    # With --ipv6, the data-path tests once more over IPv4, back to back, for the comparison;
    # with --repeat, tapstack's two alternate R times in all, IPv4 first in every other
    # round, so that neither family always runs first.
    if [ -n "$IPV6" ] && [[ " send recv rr crr " == *" $t "* ]]; then
        run "$KCLI" "$KSRV_IP4" "$t" K4 "$KSERVER_PID"
        run "$NS" "$STACK_IP4" "$t" T4 "$SERVER_PID"
        collect "$t" T S6
        collect "$t" T4 S4
        for ((r = 1; r < REPEAT; r++)); do
            if ((r % 2)); then
                run "$NS" "$STACK_IP4" "$t" T4 "$SERVER_PID"
                collect "$t" T4 S4
                run "$NS" "$STACK_IP" "$t" T "$SERVER_PID"
                collect "$t" T S6
            else
                run "$NS" "$STACK_IP" "$t" T "$SERVER_PID"
                collect "$t" T S6
                run "$NS" "$STACK_IP4" "$t" T4 "$SERVER_PID"
                collect "$t" T4 S4
            fi
        done
    fi
done
for key in "${!S6[@]}"; do T[$key]=$(median "${S6[$key]}"); done
for key in "${!KS[@]}"; do K[$key]=$(median "${KS[$key]}"); done
for key in "${!TS[@]}"; do T[$key]=$(median "${TS[$key]}"); done
for key in "${!S4[@]}"; do T4[$key]=$(median "${S4[$key]}"); done

echo "== tapstack echo-server counters"
stop_server >"$WORK/counters" 2>&1 || true
sed 's/^/  /' "$WORK/counters"

declare -A A
# shellcheck disable=SC2086 # extra echo-server flags, split on spaces
start_server "${SERVER_CPU[@]}" "$BIN/echo-server" --async ${ECHO_SERVER_ARGS:-}
for t in "${TESTS[@]}"; do
    run "$NS" "$STACK_IP" "$t" A "$SERVER_PID"
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== tapstack echo-server --async counters"
stop_server >"$WORK/counters" 2>&1 || true
sed 's/^/  /' "$WORK/counters"
stop_kernel_server

# ratio K T: T/K to three places, or - when either failed.
ratio() {
    if [ "$1" != fail ] && [ "$2" != fail ]; then
        awk -v k="$1" -v t="$2" 'BEGIN { if (k > 0) printf "%.3f", t / k; else print "-" }'
    else
        echo -
    fi
}

# row LABEL KEY: kernel, tapstack, tapstack/kernel, tapstack --async and its ratio for one
# result key.
row() {
    [ -n "${K[$2]:-}${T[$2]:-}" ] || return 0 # the test did not run (--only)
    local k=${K[$2]:-fail} t=${T[$2]:-fail} a=${A[$2]:-fail}
    printf '%-34s %12s %12s %8s %12s %8s\n' "$1" "$k" "$t" "$(ratio "$k" "$t")" "$a" "$(ratio "$k" "$a")"
}

echo
printf '%-34s %12s %12s %8s %12s %8s\n' test kernel tapstack ratio async ratio
row "send MB/s (client -> discard)" send_mbps
row "recv MB/s (chargen -> client)" recv_mbps
row "rr p50 latency us (lower better)" rr_p50_us
row "rr p99 latency us (lower better)" rr_p99_us
row "rr transactions/s" rr_tps
row "crr connections/s" crr_cps
row "1000 connects, ms (lower better)" connect_ms
row "1000 connects, SYNs retransmitted" connect_syn_retrans
row "10k held: connect s (lower better)" hold_connect_s
row "10k held: echo s (lower better)" hold_echo_s
row "10k held: server RSS KiB" hold_rss_kb
row "10k held: server threads" hold_threads
row "10k held: server KiB/connection" hold_kb_per_conn
row "udp echo MB/s (1400-byte datagrams)" udp_mbps
row "udp echo datagrams/s" udp_dps
row "udp datagrams lost" udp_lost
echo
echo "(host floor, a wakeup round trip between two threads in microseconds: $FLOOR;"
echo " tapstack: echo-server's Poller event loop; async: echo-server --async, tokio tasks;"
echo " the kernel's server RSS leaves out the kernel's own socket memory; targets: tapstack)"
# verdict LABEL KEY OP X: whether tapstack/kernel for KEY is OP (>= or <=) X, when both ran
# (issue 22's targets).
verdict() {
    local k=${K[$2]:-} t=${T[$2]:-} v="NOT met"
    [ -n "$k$t" ] || return 0
    if [ -n "$k" ] && [ -n "$t" ] && awk -v k="$k" -v t="$t" -v x="$4" -v op="$3" \
        'BEGIN { r = t / k; exit !(k > 0 && (op == ">=" ? r >= x : r <= x)) }'; then
        v=met
    fi
    printf 'target: %-40s %s\n' "$1 $3 ${4}x kernel" "$v"
}
verdict "send throughput" send_mbps ">=" 0.8
verdict "recv throughput" recv_mbps ">=" 0.8
verdict "rr p50 latency" rr_p50_us "<=" 1.0
verdict "crr connections/s" crr_cps ">=" 1.5
verdict "1000 connects, time" connect_ms "<=" 1.5

if [ -n "$IPV6" ]; then
    echo
    echo "IPv6 against IPv4 in this run (each test on both, back to back; tapstack's the median"
    echo "of $REPEAT alternating runs each, and the median of the $REPEAT back-to-back pairs' own"
    echo "ratios, which the host's drift between pairs does not move; target: tapstack's IPv6"
    echo "figure no more than 10% worse than its IPv4 one, judged on the pairs)"
    printf '%-22s %10s %10s %7s %10s %10s %7s %7s %s\n' test "kernel v6" "kernel v4" ratio \
        "stack v6" "stack v4" ratio pairs verdict
    for kv in "send MB/s:send_mbps" "recv MB/s:recv_mbps" "rr p50 us:rr_p50_us" "crr connections/s:crr_cps"; do
        label=${kv%%:*} key=${kv#*:}
        k6=${K[$key]:-fail} k4=${K4[$key]:-fail} t6=${T[$key]:-fail} t4=${T4[$key]:-fail}
        # The median of the pairs' ratios (S6 and S4 list the runs in the same order).
        r=$(awk -v a="${S6[$key]:-}" -v b="${S4[$key]:-}" 'BEGIN {
            n = split(a, x); if (split(b, y) != n) { print "unpaired"; exit }; m = 0
            for (i = 1; i <= n; i++) if (x[i] ~ /^[0-9.]+$/ && y[i] > 0) r[++m] = x[i] / y[i]
            if (!m) { print "fail"; exit }
            for (i = 2; i <= m; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
            printf "%.3f", r[int((m + 1) / 2)] }')
        v="NOT met"
        # Higher is better but for the latency, where lower is.
        lower=0
        [ "$key" != rr_p50_us ] || lower=1
        awk -v r="$r" -v lower=$lower 'BEGIN {
            exit !(r ~ /^[0-9.]+$/ && (lower ? r <= 1.1 : r >= 0.9)) }' && v=met
        printf '%-22s %10s %10s %7s %10s %10s %7s %7s %s\n' "$label" "$k6" "$k4" \
            "$(ratio "$k4" "$k6")" "$t6" "$t4" "$(ratio "$t4" "$t6")" "$r" "$v"
    done
fi
