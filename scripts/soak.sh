#!/usr/bin/env bash
# Robustness soak (not part of scripts/test.sh): loads echo-server over a tap in a namespace it
# creates and removes, and prints a table of figures for docs/robustness.md.
#
#   sudo scripts/soak.sh [--runs N] [--only 1,2,...] [--fuzz EXECS]
#
#   1. 10 000 concurrent TCP connections from kernel sockets, each echoing 1 KiB (checked),
#      then closed by the clients; 1000 daytime connections the server closes (TIME-WAIT on
#      the stack); after 2 MSL + 5 s, the connection table must be empty.
#   2. 100 000 spoofed SYNs over 10 s while a legitimate client connects and echoes 1 KiB
#      every 50 ms.
#   3. 100 000 never-completed first fragments over 10 s while 8000-byte pings and 3000-byte
#      UDP datagrams keep being answered.
#   4. N (default 50) seeded runs of 16 MiB echoed (each way at once) through the fault
#      injector at 5% loss, 5% reordering, 1% duplication, 1% corruption: sha256, time, hangs.
#   5. 1000 clients of chargen that never read (their window closes) held 10 s while a
#      legitimate client echoes 1 KiB every 50 ms: echo-server's RSS, then after their reset.
#   6. Hostile peers (scripts/hostile.py): tiny out-of-order segments behind a hole, data far
#      past the window, a SYN announcing MSS 1, ACKs whose SACK blocks fragment the
#      scoreboard, bursts of in-window SYNs and RSTs, 5000 idle clients, 200 clients that
#      never read, a flood of empty UDP datagrams; each with a legitimate echo and ping
#      beside it, and the server's memory and stack-thread CPU.
#   7. With --fuzz EXECS: scripts/fuzz.sh --runs EXECS (10^7 takes about half an hour).
# Every step is bounded in time; the whole soak takes about 15 minutes without --fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RUNS=50
FUZZ=
ONLY=
while [ $# -gt 0 ]; do
    case $1 in
    --runs)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--runs needs a count"
        RUNS=$2
        shift 2
        ;;
    --only)
        [[ ${2:-} =~ ^[1-6](,[1-6])*$ ]] || die "--only needs section numbers, as 5,6"
        ONLY=$2
        shift 2
        ;;
    --fuzz)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--fuzz needs an execution count"
        FUZZ=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,24s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and taps)"
# want N: whether section N runs (all without --only).
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
ensure_tools ip:iproute2 ping:iputils-ping nc:netcat-openbsd python3:python3

cargo build --release --features cli --bins
BIN=$PWD/target/release
STACK_MAC=02:00:0a:00:00:02
WORK=$(mktemp -d)
make_netns
trap 'set +e; stop_server >/dev/null 2>&1; ip netns del "$NS" 2>/dev/null; rm -rf "$WORK"' EXIT
client_sysctls "$NS"

declare -a ROWS
row() { ROWS+=("$(printf '| %s | %s |' "$1" "$2")"); }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
# counter NAME: the value of the counter line containing NAME in $WORK/counters, 0 if absent.
counter() { awk -v t="$1" 'index($0, t) { print $1; found = 1; exit } END { if (!found) print 0 }' "$WORK/counters"; }
stop_to() { stop_server >"$WORK/counters" 2>&1 || true; }
# Frames the kernel dropped at the tap's queue (the stack did not read them in time).
tap_drops() { ip -n "$NS" -s link show tap0 | awk '/TX:/ { getline; print $4 }'; }

if want 1; then
    echo "== 1. 10 000 connections"
    start_server "$BIN/echo-server" --seed 1
    base=$(rss_kb)
    hold=$(timeout 300 ip netns exec "$NS" "$BIN/tapbench" client --host "$STACK_IP" --server-pid "$SERVER_PID" hold) ||
        die "tapbench hold failed"
    echo "  $hold"
    peak=$(sed -n 's/.*hold_rss_kb=\([0-9]*\).*/\1/p' <<<"$hold")
    echoed=$(sed -n 's/.*hold_echo_s=\([0-9.]*\).*/\1/p' <<<"$hold")
    connected=$(sed -n 's/.*hold_connect_s=\([0-9.]*\).*/\1/p' <<<"$hold")
    after_close=$(rss_kb)
    daytime_ok=0
    for _ in $(seq 1000); do
        line=$(timeout 5 ip netns exec "$NS" nc -w 2 "$STACK_IP" 13 </dev/null || true)
        [ -n "$line" ] && daytime_ok=$((daytime_ok + 1))
    done
    echo "  daytime: $daytime_ok/1000 answered; waiting 2 MSL (60 s) + 5 s for TIME-WAIT to end"
    sleep 65 # the condition under test is the passage of time itself: TIME-WAIT lasts 2 MSL
    after_wait=$(rss_kb)
    stop_to
    table=$(counter "connections in the table now")
    row "10 000 connections: connect / echo (1 KiB each, checked)" "${connected} s / ${echoed} s, all echoes right"
    row "echo-server RSS: idle / 10 000 open / after close / after 2 MSL" "$((base / 1024)) / $((peak / 1024)) / $((after_close / 1024)) / $((after_wait / 1024)) MiB"
    row "1000 daytime connections (stack closes first)" "$daytime_ok answered"
    row "connections left in the table after 2 MSL + 5 s" "$table"
fi

if want 2; then
    echo "== 2. SYN flood"
    start_server "$BIN/echo-server" --seed 2
    before=$(rss_kb)
    in_ns python3 scripts/flood.py tcp-echo "$STACK_IP" 7 10 >"$WORK/legit" &
    legit=$!
    drops0=$(tap_drops)
    timeout 120 ip netns exec "$NS" python3 scripts/flood.py syn tap0 "$STACK_MAC" "$STACK_IP" 7 100000 10 | tee "$WORK/flood"
    wait "$legit" || true
    cat "$WORK/legit"
    after=$(rss_kb)
    stop_to
    row "100 000 spoofed SYNs (10 000 a second)" "$(sed 's/^syn flood: //' "$WORK/flood"); the tap queue dropped $(($(tap_drops) - drops0))"
    row "legitimate TCP echo meanwhile (every 50 ms, 10 s)" "$(sed 's/^tcp echo: //' "$WORK/legit")"
    row "RSS before / after the SYN flood" "$((before / 1024)) / $((after / 1024)) MiB; $(counter 'SYN cookies sent') SYN cookies sent"
fi

if want 3; then
    echo "== 3. fragment flood"
    start_server "$BIN/echo-server" --seed 3
    before=$(rss_kb)
    in_ns python3 scripts/flood.py udp-echo "$STACK_IP" 7 3000 10 >"$WORK/udp" &
    udp=$!
    in_ns ping -q -c 50 -i 0.2 -W 2 -s 8000 "$STACK_IP" >"$WORK/ping" 2>&1 &
    pinger=$!
    drops0=$(tap_drops)
    timeout 120 ip netns exec "$NS" python3 scripts/flood.py frag tap0 "$STACK_MAC" "$STACK_IP" 100000 10 | tee "$WORK/flood"
    wait "$udp" || true
    wait "$pinger" || true
    after=$(rss_kb)
    stop_to
    row "100 000 never-completed first fragments (10 000 a second)" "$(sed 's/^fragment flood: //' "$WORK/flood"); the tap queue dropped $(($(tap_drops) - drops0))"
    row "8000-byte pings meanwhile (every 200 ms)" "$(grep -o '[0-9]* received' "$WORK/ping") of 50, $(grep -o 'rtt.*' "$WORK/ping" | sed 's/rtt min\/avg\/max\/mdev = /rtt ms min\/avg\/max\/mdev /')"
    row "3000-byte UDP echo meanwhile (every 50 ms, 10 s)" "$(sed 's/^udp echo 3000 bytes: //' "$WORK/udp")"
    row "RSS before / after the fragment flood" "$((before / 1024)) / $((after / 1024)) MiB; $(counter 'incomplete datagrams evicted') evicted, $(counter 'timed out before completion') timed out"
fi

if want 4; then
    echo "== 4. $RUNS seeded lossy runs"
    head -c $((16 << 20)) /dev/urandom >"$WORK/data"
    want=$(sha256sum <"$WORK/data" | cut -d' ' -f1)
    good=0 hangs=0 times=()
    for seed in $(seq "$RUNS"); do
        start_server "$BIN/echo-server" --seed "$seed" --drop-chance 5 --reorder-chance 5 \
            --duplicate-chance 1 --corrupt-chance 1 >/dev/null
        t0=$(date +%s.%N)
        if got=$(timeout 180 ip netns exec "$NS" nc -N "$STACK_IP" 7 <"$WORK/data" | sha256sum | cut -d' ' -f1); then
            t=$(echo "$(date +%s.%N) - $t0" | bc)
            times+=("$t")
            [ "$got" = "$want" ] && good=$((good + 1))
        else
            hangs=$((hangs + 1))
        fi
        stop_server >/dev/null 2>&1 || true
        printf '  seed %2d: %s s %s\n' "$seed" "${t:-timeout}" "$([ "${got:-}" = "$want" ] && echo ok || echo WRONG)"
    done
    stats=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1; s += $1 } END { printf "min %.1f s, median %.1f s, max %.1f s, mean %.1f s", a[1], a[int((NR + 1) / 2)], a[NR], s / NR }')
    row "$RUNS x 16 MiB echoed, 5% loss, 5% reorder, 1% dup, 1% corrupt" "$good/$RUNS sha256 equal, $hangs hangs; $stats"
fi

if want 5; then
    echo "== 5. zero-window clients"
    start_server "$BIN/echo-server" --seed 5
    in_ns python3 scripts/flood.py tcp-echo "$STACK_IP" 7 14 >"$WORK/legit" &
    legit=$!
    timeout 120 ip netns exec "$NS" python3 scripts/flood.py zero-window "$STACK_IP" 19 1000 10 "$SERVER_PID" | tee "$WORK/zw"
    wait "$legit" || true
    cat "$WORK/legit"
    stop_to
    row "1000 chargen clients that never read, held 10 s, then reset" "$(sed 's/^zero window: //' "$WORK/zw"); $(counter 'zero window probes sent') zero-window probes"
    row "legitimate TCP echo meanwhile (every 50 ms, 14 s)" "$(sed 's/^tcp echo: //' "$WORK/legit")"
fi

if want 6; then
    echo "== 6. hostile peers"
    # Each scenario of scripts/hostile.py against one echo-server, while a legitimate client
    # echoes 1 KiB every 50 ms and ping asks every 250 ms: echo-server's resident memory before,
    # at its peak during and after the scenario, and the CPU time of its stack thread.
    stack_ticks() {
        local t
        for t in /proc/"$SERVER_PID"/task/*; do
            if [ "$(cat "$t/comm")" = tapstack ]; then
                awk '{ print $14 + $15 }' "$t/stat"
            fi
        done
    }
    # peak_rss FILE: the largest RSS seen every 100 ms, written to FILE, until FILE.stop appears.
    peak_rss() {
        local peak=0 now
        while [ ! -e "$1.stop" ]; do
            now=$(rss_kb)
            if [ "$now" -gt "$peak" ]; then
                peak=$now
                echo "$peak" >"$1"
            fi
            sleep 0.1 # a sampling period, not a synchronisation
        done
    }
    TICK=$(getconf CLK_TCK)
    start_server "$BIN/echo-server" --seed 6
    for scenario in ooo past mss1 sack synrst idle noread udpempty; do
        before=$(rss_kb)
        drops0=$(tap_drops)
        ticks0=$(stack_ticks)
        t0=$(date +%s.%N)
        rm -f "$WORK/peak" "$WORK/peak.stop"
        peak_rss "$WORK/peak" &
        sampler=$!
        in_ns python3 scripts/flood.py tcp-echo "$STACK_IP" 7 12 >"$WORK/legit" &
        legit=$!
        in_ns ping -q -c 40 -i 0.25 -W 1 "$STACK_IP" >"$WORK/ping" 2>&1 &
        pinger=$!
        timeout 120 ip netns exec "$NS" python3 scripts/hostile.py "$scenario" tap0 "$STACK_MAC" \
            "$STACK_IP" 10 | tee "$WORK/hostile"
        wait "$legit" || true
        wait "$pinger" || true
        touch "$WORK/peak.stop"
        wait "$sampler" || true
        secs=$(echo "$(date +%s.%N) - $t0" | bc)
        cpu=$(echo "scale=2; ($(stack_ticks) - $ticks0) / $TICK" | bc)
        pct=$(echo "scale=0; 100 * $cpu / $secs" | bc)
        row "hostile $(<"$WORK/hostile")" "RSS $((before / 1024)) / $(($(cat "$WORK/peak" 2>/dev/null || echo "$before") / 1024)) / $(($(rss_kb) / 1024)) MiB (before / peak / after); stack thread ${cpu} s CPU in $(printf '%.1f' "$secs") s (${pct}%); tap queue drops $(($(tap_drops) - drops0)); $(sed 's/^tcp echo: /echo /' "$WORK/legit"); ping $(grep -o '[0-9]* received' "$WORK/ping") of 40, $(grep -o 'rtt.*' "$WORK/ping" | sed 's/rtt min\/avg\/max\/mdev = /rtt ms /')"
    done
    stop_to
    row "hostile peers: counters at exit" "$(counter 'out-of-order segments dropped') out-of-order segments dropped, $(counter 'challenge ACKs') challenge ACKs, $(counter "socket's receive buffer was full") UDP datagrams dropped at a full receive buffer"
fi

if [ -n "$FUZZ" ]; then
    echo "== 7. fuzzing"
    scripts/fuzz.sh --runs "$FUZZ" | tee "$WORK/fuzz"
    while read -r line; do
        row "fuzz ${line%%:*}" "${line#*: }"
    done < <(grep -E '^(frames|segments): ' "$WORK/fuzz")
fi

echo
echo "tapstack soak, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD), $(nproc) cpus"
echo
echo "| what | figure |"
echo "| --- | --- |"
printf '%s\n' "${ROWS[@]}"
