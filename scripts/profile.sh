#!/usr/bin/env bash
# Where echo-server spends its time: for each data-path test of scripts/bench.sh (send:
# client -> discard, recv: chargen -> client, rr, crr), tapbench loads echo-server over a tap in
# a namespace this script creates and removes, while `perf record` samples the server (every
# thread, call graphs). Prints, per test and per thread (the stack thread "tapstack" and the
# application's), the top entries by self time, and the share of all samples each thread had.
#
#   sudo scripts/profile.sh [--secs N] [--only T,T] [--top K] [--keep DIR]
#       N seconds per test (default 5); T among send recv rr crr; K entries (default 12);
#       --keep DIR leaves perf.data files there (default: removed)
#
# Installs linux-perf when perf is missing. Where the machine has no hardware counters (a VM),
# perf samples on the cpu-clock timer: shares of time, not cycles.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SECS=5
TOP=12
KEEP=
TESTS=(send recv rr crr)
while [ $# -gt 0 ]; do
    case $1 in
    --secs)
        [[ ${2:-} =~ ^[1-9][0-9]{0,3}$ ]] || die "--secs needs a whole number of seconds"
        SECS=$2
        shift 2
        ;;
    --top)
        [[ ${2:-} =~ ^[1-9][0-9]{0,2}$ ]] || die "--top needs a count"
        TOP=$2
        shift 2
        ;;
    --only)
        [ $# -ge 2 ] || die "--only needs a list of tests"
        IFS=, read -r -a TESTS <<<"$2"
        shift 2
        ;;
    --keep)
        [ $# -ge 2 ] || die "--keep needs a directory"
        KEEP=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,13s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1" ;;
    esac
done
for t in "${TESTS[@]}"; do
    [[ " send recv rr crr " == *" $t "* ]] || die "unknown test $t (send recv rr crr)"
done
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, taps and perf)"
ensure_tools ip:iproute2 perf:linux-perf

cargo build --release --features cli --quiet --bin echo-server --bin tapbench
BIN=$PWD/target/release
WORK=$(mktemp -d)
make_netns
trap 'set +e; stop_server >/dev/null 2>&1; ip netns del "$NS" 2>/dev/null; rm -rf "$WORK"' EXIT
client_sysctls "$NS"
start_server "$BIN/echo-server"

echo "== $(uname -sr), $(nproc) cpus, $SECS s per test, echo-server pid $SERVER_PID"
for t in "${TESTS[@]}"; do
    data="$WORK/$t.data"
    # Sampling starts first and ends with the test (perf's own duration bound).
    perf record -q -g -F 999 -o "$data" -p "$SERVER_PID" -- sleep $((SECS + 1)) 2>/dev/null &
    perf_pid=$!
    out=$(timeout $((SECS + 120)) ip netns exec "$NS" "$BIN/tapbench" client --host "$STACK_IP" \
        --secs "$SECS" "$t" 2>&1) || out="FAILED: $out"
    wait "$perf_pid" || true
    echo
    echo "== $t: $out"
    total=$(perf report -i "$data" --stdio --no-children --sort comm 2>/dev/null |
        awk '/^ +[0-9.]+%/ { printf "%s %s  ", $2, $1 }')
    echo "samples by thread: $total"
    for comm in tapstack echo-server; do
        echo "-- thread $comm, top $TOP by self time (% of the thread's samples)"
        perf report -i "$data" --stdio --no-children --comm "$comm" --sort symbol \
            --percentage relative -g none 2>/dev/null >"$WORK/report" || true
        awk -v top="$TOP" '/^ +[0-9.]+%/ && n < top { n++; printf "   %7s  %s %s\n", $1, $2, $3 }' \
            "$WORK/report"
    done
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        cp "$data" "$KEEP/"
    fi
done
