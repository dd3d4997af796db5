#!/usr/bin/env bash
# Proxy benchmark: tunproxy against the paths it replaces, one client measuring five paths in
# the same run, each test on the five back to back so that all see the same machine load:
#   a  kernel: the client straight to the servers (198.51.100.10) over a veth pair;
#   b  danted alone: the client's own SOCKS5 (curl --socks5) through danted to 198.51.100.10;
#   c  tun -> tunproxy --socks5 -> danted: the client's plain sockets to 198.51.100.20, routed
#      into tun0 (the client namespace's default route);
#   d  tun -> tunproxy --direct: the client's plain sockets to 198.51.100.30, routed into tun1;
#   e  a relay over the kernel's sockets alone (examples/kernel_relay.rs: accept on 127.0.0.2 in
#      the client's namespace, dial 198.51.100.10, copy both ways with 8 KiB buffers; one
#      thread, as tunproxy's relay): the client's TCP ends in the kernel, over loopback (64 KiB
#      MTU) rather than a tun, with no stack of the relay's own, so d/e is roughly what
#      terminating it behind a tun costs.
# Servers (nginx: a 100 MiB and a 10 KiB file and WebDAV PUT; iperf3; danted) all live in one
# namespace, on its loopback; tunproxy's upstream sockets carry --fwmark 1, which a policy rule
# routes out through the veth pair. Tests: curl download and upload of 100 MiB (MB/s, the
# median of 3 runs), iperf3 both ways (MB/s, and CPU ms per GB), ab on the 10 KiB file
# without and with keep-alive (requests/s, failed, longest ms, CPU µs per request), and 2000
# connections held open through each tunproxy (its RSS per connection).
# Prints a markdown table with the ratios c/b, d/a and d/e and whether each target is met;
# exits 0 either way (it is a measurement). Logs (tunproxy's counters and stderr, danted's and
# nginx's logs, failed commands' output) are kept in the directory it names at the end.
#
#   scripts/bench-proxy.sh [--secs N] [--quick] [--skip-build] [--only LIST]
#                          [--profile TEST [--system]]                        # as root
#       --secs N: seconds per iperf3 run (default 3).
#       --quick: 1 s, one curl run each way, a tenth of the requests and held connections.
#       --skip-build: use target/release/tunproxy and target/release/examples/kernel_relay
#           as they are.
#       --only LIST: only these tests, comma-separated (hold, curl_down, curl_up, iperf_down,
#           iperf_up, ab, ab_k), for a quicker comparison of two builds.
#       --profile TEST (curl_down, curl_up, iperf_down, iperf_up, ab or ab_k): `perf record
#           -g` on each relay (both tunproxies and kernel_relay) during that test, its top
#           entries printed and its data kept with the logs.
#       --system: with --profile, record every CPU instead, during each path's run of TEST (a
#           and b too), and print where each path's CPU time went, by program and by symbol.
#
# TUNPROXY_ARGS adds flags to both tunproxies (say "--stack-thread", "--busy-poll-us 50" or
# "--mtu 9000").
# Installs nginx-light, dante-server, iperf3, apache2-utils, proxychains4 (iperf3 through
# SOCKS5 for path b), curl, iproute2, procps and python3 with apt-get when missing. Everything
# happens in two namespaces it creates (tpb-c$$, tpb-s$$) and removes on exit; no service is
# started on the host.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SECS=3
SCALE=1
CURL_RUNS=3
BUILD=1
PROFILE=
SYSTEM=
ALL_TESTS=hold,curl_down,curl_up,iperf_down,iperf_up,ab,ab_k
ONLY=$ALL_TESTS
while [ $# -gt 0 ]; do
    case $1 in
    --secs)
        [ $# -ge 2 ] || die "--secs needs a value"
        SECS=$2
        shift 2
        ;;
    --quick)
        SECS=1
        SCALE=10
        CURL_RUNS=1
        shift
        ;;
    --skip-build)
        BUILD=
        shift
        ;;
    --profile)
        [ $# -ge 2 ] || die "--profile needs a test name"
        PROFILE=$2
        shift 2
        ;;
    --system)
        SYSTEM=1
        shift
        ;;
    --only)
        [ $# -ge 2 ] || die "--only needs a list of tests"
        ONLY=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,36s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (use --secs N, --quick, --skip-build, --only LIST, --profile TEST or --system)" ;;
    esac
done
case $PROFILE in
'' | curl_down | curl_up | iperf_down | iperf_up | ab | ab_k) ;;
*) die "--profile takes curl_down, curl_up, iperf_down, iperf_up, ab or ab_k" ;;
esac
[ -z "$SYSTEM" ] || [ -n "$PROFILE" ] || die "--system needs --profile TEST"
for t in ${ONLY//,/ }; do
    [[ ,$ALL_TESTS, == *,$t,* ]] || die "--only takes tests from $ALL_TESTS, not $t"
done
# runs TEST: whether TEST is among those run.
runs() { [[ ,$ONLY, == *,$1,* ]]; }
[ -z "$PROFILE" ] || runs "$PROFILE" || die "--profile $PROFILE: that test is not run (--only)"
[[ $SECS =~ ^[1-9][0-9]{0,2}$ ]] && [ "$SECS" -le 120 ] || die "--secs must be a whole number of seconds, 1 to 120"
[ "$(id -u)" -eq 0 ] || die "run as root (or with sudo): it creates network namespaces and tuns"
[ -e /dev/net/tun ] || die "needs /dev/net/tun"
START=$SECONDS

# Debian's nginx, danted and iperf3 packages would start their services on the host: keep them
# from doing so while they install.
POLICY=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    POLICY=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod +x "$POLICY"
fi
ensure_tools nginx:nginx-light danted:dante-server iperf3:iperf3 ab:apache2-utils \
    proxychains4:proxychains4 curl:curl ip:iproute2 ss:iproute2 pgrep:procps python3:python3
[ -z "$POLICY" ] || rm -f "$POLICY"
[ -z "$PROFILE" ] || ensure_tools perf:linux-perf

if [ -n "$BUILD" ]; then
    cargo build --release --features cli --bin tunproxy -j 1
    cargo build --release --example kernel_relay -j 1
fi
TUNPROXY=$PWD/target/release/tunproxy
KERNEL_RELAY=$PWD/target/release/examples/kernel_relay
for b in "$TUNPROXY" "$KERNEL_RELAY"; do
    [ -x "$b" ] || die "$b is missing (build it, or leave out --skip-build)"
done

# 2000 held connections need as many descriptors in the client, tunproxy and nginx.
HOLD=$((2000 / SCALE))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((HOLD * 2 + 256)) ] ||
    die "needs $((HOLD * 2 + 256)) open files (ulimit -n is $(ulimit -n))"

CNS=tpb-c$$ # the client, both tuns and both tunproxies
SNS=tpb-s$$ # nginx, iperf3 and danted, on 198.51.100.x of its loopback
CLI_IP=172.31.0.1
SRV_IP=172.31.0.2
SOCKS=$SRV_IP:1080
declare -A HOST=([a]=198.51.100.10 [b]=198.51.100.10 [c]=198.51.100.20 [d]=198.51.100.30
    [e]=127.0.0.2)
PATHS=(a b c d e)
# In memory where there is /dev/shm: the uploads land in files there, not on a disk.
WORK=$(mktemp -d -p "$([ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")")
LOGS=$(mktemp -d /tmp/bench-proxy-logs.XXXXXX)
NGINX_PID=
DANTED_PID=
declare -A PROXY_PID PROXY_FD

stop_proxy() { # PATH: SIGTERM, then its counters (stdout) and stderr into its log
    local p=$1 pid=${PROXY_PID[$1]:-} fd=${PROXY_FD[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    { echo "== counters on exit"; timeout 10 cat <&"$fd"; } >>"$LOGS/tunproxy-$p.log"
    timeout 10 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    exec {fd}<&-
    PROXY_PID[$p]=
}

cleanup() {
    set +e # remove everything even if a step fails
    stop_proxy c
    stop_proxy d
    [ -z "$DANTED_PID" ] || kill -TERM "$DANTED_PID" 2>/dev/null
    [ -z "$NGINX_PID" ] || { kill -TERM "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; }
    local ns i
    # Whatever is still running in the namespaces (danted's children, a timed-out client) ends
    # too: TERM, at most 3 s, then KILL.
    for i in $(seq 30); do
        [ -n "$(ip netns pids "$CNS" 2>/dev/null; ip netns pids "$SNS" 2>/dev/null)" ] || break
        for ns in "$CNS" "$SNS"; do
            ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null
        done
        sleep 0.1
    done
    for ns in "$CNS" "$SNS"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "$(basename "$0"): line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

# The namespaces: client and server joined by a veth pair (MTU 1500).
ip netns add "$CNS" || die "cannot create network namespace $CNS"
ip netns add "$SNS" || die "cannot create network namespace $SNS"
ip -n "$CNS" link add veth-c type veth peer name veth-s netns "$SNS"
for end in "$CNS veth-c $CLI_IP" "$SNS veth-s $SRV_IP"; do
    set -- $end
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$1" link set "$2" up
    client_sysctls "$1" # both open thousands of connections (the server side: danted)
done
for p in a c d; do
    ip -n "$SNS" addr add "${HOST[$p]}/32" dev lo
done
ip -n "$CNS" route add "${HOST[a]}/32" via "$SRV_IP"
# The tuns: tun0 (path c) is the default route, tun1 (path d) has 198.51.100.30; tunproxy's
# marked sockets use table 100, out through the veth pair.
for t in "tun0 10.0.9 default" "tun1 10.0.10 ${HOST[d]}/32"; do
    set -- $t
    ip -n "$CNS" tuntap add dev "$1" mode tun
    ip netns exec "$CNS" sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1"
    ip -n "$CNS" addr add "$2.1/24" dev "$1"
    ip -n "$CNS" link set "$1" up
    ip -n "$CNS" route add "$3" dev "$1"
done
ip -n "$CNS" rule add fwmark 1 lookup 100
ip -n "$CNS" route add default via "$SRV_IP" dev veth-c table 100

# nginx: a 100 MiB and a 10 KiB file, and PUT into up/ (WebDAV: the body is read whole before
# the answer, so the upload's time is the transfer's).
SITE=$WORK/site
mkdir -p "$SITE/up" "$WORK/tmp"
head -c $((100 << 20)) /dev/urandom >"$SITE/100m.bin"
head -c 10240 /dev/zero | tr '\0' 'x' >"$SITE/10k.bin"
cat >"$WORK/nginx.conf" <<CONF
user root;
worker_processes 1;
worker_rlimit_nofile $((HOLD * 2 + 4096));
daemon off;
pid $WORK/nginx.pid;
error_log $LOGS/nginx-error.log warn;
events { worker_connections $((HOLD * 2 + 2048)); }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    server {
        listen 80 backlog=4096;
        root $SITE;
        location /up/ {
            dav_methods PUT;
            client_max_body_size 200m;
            client_body_buffer_size 1m;
        }
    }
}
CONF
ip netns exec "$SNS" nginx -c "$WORK/nginx.conf" &
NGINX_PID=$!

# danted on the veth side; it connects out from 198.51.100.10 (on the same loopback as the
# servers: an interface name as `external` would give it only the veth's address).
cat >"$WORK/danted.conf" <<CONF
logoutput: $LOGS/danted.log
internal: $SRV_IP port = ${SOCKS#*:}
external: ${HOST[a]}
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 0/0 to: 0/0 }
socks pass { from: 0/0 to: 0/0 command: connect udpassociate }
socks pass { from: 0/0 to: 0/0 command: udpreply }
CONF
ip netns exec "$SNS" danted -f "$WORK/danted.conf" -p "$WORK/danted.pid" -D
# proxychains4 gives iperf3 (no SOCKS of its own) the SOCKS5 hop of path b.
cat >"$WORK/proxychains.conf" <<CONF
strict_chain
quiet_mode
tcp_read_time_out 15000
tcp_connect_time_out 8000
[ProxyList]
socks5 ${SOCKS%:*} ${SOCKS#*:}
CONF

wait_port "$SNS" 80 || die "nginx did not start: $(cat "$LOGS/nginx-error.log")"
wait_port "$SNS" 1080 || die "danted did not start: $(cat "$LOGS/danted.log")"
for i in $(seq 50); do
    [ -s "$WORK/danted.pid" ] && break
    sleep 0.1
done
DANTED_PID=$(cat "$WORK/danted.pid")

# start_proxy PATH FLAGS...: tunproxy on the path's tun, until it says `listening`.
start_proxy() {
    local p=$1 tun ip fifo fd line ok=
    shift
    case $p in c) tun=tun0 ip=10.0.9.2/24 ;; d) tun=tun1 ip=10.0.10.2/24 ;; esac
    fifo=$WORK/tunproxy-$p.out
    mkfifo "$fifo"
    # shellcheck disable=SC2086 # extra tunproxy flags, split on spaces
    ip netns exec "$CNS" "$TUNPROXY" --tun "$tun" --ip "$ip" --fwmark 1 "$@" \
        ${TUNPROXY_ARGS:-} >"$fifo" 2>>"$LOGS/tunproxy-$p.log" &
    PROXY_PID[$p]=$!
    exec {fd}<"$fifo"
    PROXY_FD[$p]=$fd
    while IFS= read -r -t 10 -u "$fd" line; do
        echo "$line" >>"$LOGS/tunproxy-$p.log"
        case $line in *listening*) ok=1 && break ;; esac
    done
    [ -n "$ok" ] || die "tunproxy ($p) did not start: $(cat "$LOGS/tunproxy-$p.log")"
}
start_proxy c --socks5 "$SOCKS"
start_proxy d --direct
# Path e: the kernel relay, for the web server and iperf3 (its PID stands beside tunproxy's
# for the CPU rows; cleanup's kill of the namespace's processes ends it). It binds 80 before
# 5201.
ip netns exec "$CNS" "$KERNEL_RELAY" "${HOST[e]}:80=${HOST[a]}:80" \
    "${HOST[e]}:5201=${HOST[a]}:5201" >>"$LOGS/kernel_relay.log" 2>&1 &
PROXY_PID[e]=$!
wait_port "$CNS" 5201 || die "kernel_relay did not start: $(cat "$LOGS/kernel_relay.log")"

# Every path answers before the tests start (bounded).
deadline=$((SECONDS + 15))
for p in "${PATHS[@]}"; do
    proxy=()
    [ "$p" != b ] || proxy=(--socks5 "$SOCKS")
    until timeout 5 ip netns exec "$CNS" curl -sf -o /dev/null --max-time 2 "${proxy[@]}" \
        "http://${HOST[$p]}/10k.bin"; do
        [ $SECONDS -lt $deadline ] || die "path $p does not answer (logs: $LOGS)"
        sleep 0.2
    done
done

# V[TEST,PATH]: one result (a number, "fail" or "n/a").
declare -A V

# note TEST PATH FILE: keeps a failed run's output in the logs.
note() { { echo "== $1 $2"; cat "$3"; } >>"$LOGS/failures.log"; }

# curl_run PATH down|up: MB/s (10^6 bytes) of 100 MiB, or fail.
curl_run() {
    local p=$1 out code size speed proxy=() url="http://${HOST[$1]}"
    [ "$p" != b ] || proxy=(--socks5 "$SOCKS")
    if [ "$2" = down ]; then
        out=$(timeout 70 ip netns exec "$CNS" curl -sS --max-time 60 "${proxy[@]}" -o /dev/null \
            -w '%{http_code} %{size_download} %{speed_download}' "$url/100m.bin" 2>"$WORK/err") || true
    else
        out=$(timeout 70 ip netns exec "$CNS" curl -sS --max-time 60 "${proxy[@]}" -o /dev/null \
            -H 'Expect:' -T "$SITE/100m.bin" -w '%{http_code} %{size_upload} %{speed_upload}' \
            "$url/up/blob" 2>"$WORK/err") || true
    fi
    read -r code size speed <<<"$out"
    if [[ ${code:-} =~ ^20[014]$ ]] && [ "${size:-0}" -eq $((100 << 20)) ]; then
        awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }'
    else
        echo "curl $2: $out" >>"$WORK/err"
        note "curl-$2" "$p" "$WORK/err"
        echo fail
    fi
}

# curl_median PATH up|down: the median MB/s of CURL_RUNS curl_runs (fail if any failed). The
# kernel's path moves 100 MiB in 30 to 70 ms, so one run's rate swings with the scheduler.
curl_median() {
    local i r rates=()
    for ((i = 0; i < CURL_RUNS; i++)); do
        r=$(curl_run "$1" "$2")
        [ "$r" != fail ] || { echo fail; return; }
        rates+=("$r")
    done
    printf '%s\n' "${rates[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# iperf_run PATH up|down: iperf3's receiver MB/s over $SECS s, or fail; a fresh server each.
iperf_run() {
    local p=$1 srv out=none res=fail rev=() wrap=()
    [ "$2" = up ] || rev=(-R)
    [ "$p" != b ] || wrap=(proxychains4 -q -f "$WORK/proxychains.conf")
    ip netns exec "$SNS" timeout $((SECS + 40)) iperf3 -s -1 -p 5201 >"$WORK/iperf-srv" 2>&1 &
    srv=$!
    if wait_port "$SNS" 5201 &&
        out=$(timeout $((SECS + 30)) ip netns exec "$CNS" "${wrap[@]}" iperf3 -c "${HOST[$p]}" \
            -p 5201 -t "$SECS" -f M "${rev[@]}" 2>&1); then
        res=$(awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "MBytes/sec") v = $(i - 1) }
             END { if (v == "") print "fail"; else printf "%.0f\n", v }' <<<"$out")
    fi
    kill -TERM "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null || true
    if [ "$res" = fail ]; then
        { echo "$out"; echo "-- server:"; cat "$WORK/iperf-srv"; } >"$WORK/err"
        note "iperf3-$2" "$p" "$WORK/err"
    fi
    echo "$res"
}

# ab_run PATH FLAGS...: "req_per_s failed longest_ms", or fail (the same parse as bench-http.sh).
ab_run() {
    local p=$1 out
    shift
    if out=$(timeout 300 ip netns exec "$CNS" ab -q -r -s 10 "$@" "http://${HOST[$p]}/10k.bin" 2>&1); then
        awk '/^Requests per second/ { r = $4 } /^Failed requests/ { f = $3 }
             /^Non-2xx responses/ { f += $3 } /longest request/ { l = $2 }
             END { if (r == "") print "fail"; else print r, f, l }' <<<"$out"
    else
        echo "$out" >"$WORK/err"
        note "ab $*" "$p" "$WORK/err"
        echo fail
    fi
}

# CPU time, in clock ticks: busy_ticks of the whole machine (all but idle and iowait),
# proc_ticks PID of one process (user and system, all its threads; 0 without a PID).
TICK_US=$((1000000 / $(getconf CLK_TCK)))
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
proc_ticks() {
    if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
        sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
    else
        echo 0
    fi
}
# proc_switches PID: context switches of one process, all its threads (0 without a PID).
proc_switches() {
    if [ -n "$1" ] && [ -d "/proc/$1/task" ]; then
        cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
    else
        echo 0
    fi
}
# per_request TICKS REQUESTS: CPU microseconds per request.
per_request() { awk -v t="$1" -v n="$2" -v us="$TICK_US" 'BEGIN { printf "%.0f", t * us / n }'; }
# per_gb TICKS MBPS: CPU milliseconds per GB moved by an iperf3 run of $SECS s at MBPS MB/s.
per_gb() {
    awk -v t="$1" -v r="$2" -v s="$SECS" -v us="$TICK_US" \
        'BEGIN { if (r ~ /^[0-9.]+$/ && r > 0) printf "%.0f", t * us / (r * s); else print "-" }'
}

# The held connections: HOLD keep-alive connections to nginx, each having fetched the 10 KiB
# file, all open at once; tunproxy's VmRSS before and with them held.
cat >"$WORK/hold.py" <<'PY'
import asyncio, collections, sys

host, port, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
REQ = b"GET /10k.bin HTTP/1.1\r\nHost: bench\r\n\r\n"

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

async def fetch():
    r, w = await asyncio.open_connection(host, port)
    w.write(REQ)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    length = next(int(l.split(b":")[1]) for l in head.lower().split(b"\r\n")
                  if l.startswith(b"content-length:"))
    await r.readexactly(length)
    return w

async def one(sem):
    async with sem:  # at most 100 connecting at once, 20 s each
        return await asyncio.wait_for(fetch(), 20)

async def main():
    before = rss_kib()
    sem = asyncio.Semaphore(100)
    got = await asyncio.gather(*(one(sem) for _ in range(n)), return_exceptions=True)
    held = [w for w in got if not isinstance(w, BaseException)]
    errors = collections.Counter(type(e).__name__ for e in got if isinstance(e, BaseException))
    await asyncio.sleep(1)
    open_now = sum(1 for w in held if not w.is_closing())
    after = rss_kib()
    per = (after - before) / len(held) if held else 0
    print(f"held={open_now} before_kib={before} after_kib={after} kib_per_conn={per:.2f}"
          + (f" errors={dict(errors)}" if errors else ""))
    for w in held:
        w.close()

asyncio.run(asyncio.wait_for(main(), 100))
PY

echo "== $(uname -sr), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), iperf3 $SECS s," \
    "ab $((5000 / SCALE))/$((20000 / SCALE)) requests, $HOLD held"
echo "== $(nginx -v 2>&1), $(danted -v 2>&1 | head -1), $(iperf3 -v | head -1)"
for p in c d; do
    runs hold || break
    out=$(timeout 120 ip netns exec "$CNS" python3 "$WORK/hold.py" "${HOST[$p]}" 80 "$HOLD" \
        "${PROXY_PID[$p]}" 2>&1) || out="failed: $out"
    echo "  hold $p: $out"
    echo "hold: $out" >>"$LOGS/tunproxy-$p.log"
    held=$(sed -n 's/.*held=\([0-9]*\).*/\1/p' <<<"$out")
    V[held,$p]=${held:-fail}
    per=$(sed -n 's/.*kib_per_conn=\([-0-9.]*\).*/\1/p' <<<"$out")
    V[hold_kib,$p]=${per:-fail}
done
for p in a b e; do V[held,$p]=n/a V[hold_kib,$p]=n/a; done
! runs hold || sleep 1 # the held connections' ends (FIN, TIME-WAIT) pass before the next test

# profile_start PATH TEST / profile_stop: perf record on the path's tunproxy (or, with
# --system, on every CPU) during TEST.
PERF_PID=
profile_start() {
    [ "$2" = "$PROFILE" ] || return 0
    local target=(-a)
    if [ -z "$SYSTEM" ]; then
        [ -n "${PROXY_PID[$1]:-}" ] || return 0
        target=(-p "${PROXY_PID[$1]}")
    fi
    perf record -q -g -e cpu-clock -F 999 "${target[@]}" -o "$LOGS/perf-$2-$1.data" 2>/dev/null &
    PERF_PID=$!
}
profile_stop() {
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID"
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=
}

for t in curl_down curl_up iperf_down iperf_up ab ab_k; do
    runs "$t" || continue
    line=
    for p in "${PATHS[@]}"; do
        profile_start "$p" "$t"
        case $t in
        curl_down) V[$t,$p]=$(curl_median "$p" down) ;;
        curl_up) V[$t,$p]=$(curl_median "$p" up) ;;
        iperf_down | iperf_up)
            all0=$(busy_ticks) tp0=$(proc_ticks "${PROXY_PID[$p]:-}")
            V[$t,$p]=$(iperf_run "$p" "${t#iperf_}")
            all1=$(busy_ticks) tp1=$(proc_ticks "${PROXY_PID[$p]:-}")
            V[${t}_cpu,$p]=$(per_gb $((all1 - all0)) "${V[$t,$p]}")
            V[${t}_tcpu,$p]=n/a
            [ -z "${PROXY_PID[$p]:-}" ] || V[${t}_tcpu,$p]=$(per_gb $((tp1 - tp0)) "${V[$t,$p]}")
            ;;
        ab | ab_k)
            n=$((5000 / SCALE)) flags=()
            [ "$t" = ab ] || n=$((20000 / SCALE)) flags=(-k)
            flags+=(-n "$n" -c 50)
            V[${t}_cpu,$p]=n/a V[${t}_tcpu,$p]=n/a V[${t}_cs,$p]=n/a
            if [ "$p" = b ]; then
                r="n/a n/a n/a" # ab has no SOCKS client
            else
                all0=$(busy_ticks) tp0=$(proc_ticks "${PROXY_PID[$p]:-}")
                cs0=$(proc_switches "${PROXY_PID[$p]:-}")
                r=$(ab_run "$p" "${flags[@]}")
                all1=$(busy_ticks) tp1=$(proc_ticks "${PROXY_PID[$p]:-}")
                cs1=$(proc_switches "${PROXY_PID[$p]:-}")
                V[${t}_cpu,$p]=$(per_request $((all1 - all0)) "$n")
                if [ -n "${PROXY_PID[$p]:-}" ]; then
                    V[${t}_tcpu,$p]=$(per_request $((tp1 - tp0)) "$n")
                    V[${t}_cs,$p]=$(awk -v c=$((cs1 - cs0)) -v n="$n" 'BEGIN { printf "%.1f", c / n }')
                fi
            fi
            [ "$r" != fail ] || r="fail fail fail"
            read -r "V[$t,$p]" "V[${t}_failed,$p]" "V[${t}_longest,$p]" <<<"$r"
            ;;
        esac
        profile_stop
        line+=" $p ${V[$t,$p]}"
        [[ $t != ab* ]] || [ "${V[$t,$p]}" = n/a ] || line+="/${V[${t}_failed,$p]}/${V[${t}_longest,$p]}ms"
    done
    echo "  $t:$line"
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"

for p in c d; do
    stop_proxy "$p"
    echo "== tunproxy ($p) counters and stderr ($LOGS/tunproxy-$p.log)"
    sed 's/^/  /' "$LOGS/tunproxy-$p.log"
done
for p in "${PATHS[@]}"; do
    data=$LOGS/perf-$PROFILE-$p.data
    [ -n "$PROFILE" ] && [ -s "$data" ] || continue
    if [ -n "$SYSTEM" ]; then
        echo "== profile of every CPU ($p) during $PROFILE, self time by program ($data)"
        perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null |
            { grep -E '^ +[0-9]' || echo "  no samples: the test was too short"; } | awk 'NR <= 12'
        echo "   by program and symbol:"
    else
        name=tunproxy
        [ "$p" != e ] || name=kernel_relay
        echo "== profile of $name ($p) during $PROFILE, self time ($data)"
    fi
    # A test too short for a sample (--quick) leaves perf nothing to report.
    perf report -i "$data" --no-children --sort comm,sym --stdio -g none 2>/dev/null |
        { grep -E '^ +[0-9]' || echo "  no samples: the test was too short"; } | awk 'NR <= 25'
done

# ratio X Y: Y/X to three places, or - when either is not a number.
ratio() {
    awk -v x="$1" -v y="$2" 'BEGIN {
        if (x ~ /^[0-9.]+$/ && y ~ /^[0-9.]+$/ && x > 0) printf "%.3f", y / x; else print "-" }'
}
# atleast R X: whether the ratio R is a number >= X.
atleast() { awk -v r="$1" -v x="$2" 'BEGIN { exit !(r ~ /^[0-9.]+$/ && r >= x) }'; }
# each_le KEY MAX: whether paths c and d both have a number <= MAX for KEY.
each_le() {
    awk -v c="${V[$1,c]}" -v d="${V[$1,d]}" -v m="$2" \
        'BEGIN { exit !(c ~ /^-?[0-9.]+$/ && d ~ /^-?[0-9.]+$/ && c <= m && d <= m) }'
}
yes_no() { if "$@"; then echo met; else echo "NOT met"; fi; }

# row LABEL KEY TARGET VERDICT
row() {
    local cb da de
    cb=$(ratio "${V[$2,b]}" "${V[$2,c]}")
    da=$(ratio "${V[$2,a]}" "${V[$2,d]}")
    de=$(ratio "${V[$2,e]}" "${V[$2,d]}")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${V[$2,a]}" \
        "${V[$2,b]}" "${V[$2,c]}" "${V[$2,d]}" "${V[$2,e]}" "$cb" "$da" "$de" "$3" "$4"
}
# bulk LABEL KEY: c >= 0.7 b (when b ran) and d >= 0.5 a.
bulk() {
    local v target="c >= 0.7 b, d >= 0.5 a"
    v=$(yes_no atleast "$(ratio "${V[$2,a]}" "${V[$2,d]}")" 0.5)
    if [ "${V[$2,b]}" = n/a ]; then
        target="d >= 0.5 a (b n/a)"
    elif ! atleast "$(ratio "${V[$2,b]}" "${V[$2,c]}")" 0.7; then
        v="NOT met"
    fi
    row "$1" "$2" "$target" "$v"
}
ab_rows() {
    local n=$1 k=$2
    row "$n: requests/s" "$k" "d >= 0.5 a" "$(yes_no atleast "$(ratio "${V[$k,a]}" "${V[$k,d]}")" 0.5)"
    row "$n: failed requests" "${k}_failed" "0 (c, d)" "$(yes_no each_le "${k}_failed" 0)"
    row "$n: longest request ms" "${k}_longest" "< 1000 (c, d)" "$(yes_no each_le "${k}_longest" 999)"
    row "$n: CPU µs/request, whole machine" "${k}_cpu" "-" "-"
    row "$n: CPU µs/request, the relay" "${k}_tcpu" "-" "-"
    row "$n: context switches/request, the relay" "${k}_cs" "-" "-"
}
# all_held: every connection held by c and d.
all_held() { [ "${V[held,c]}" = "$HOLD" ] && [ "${V[held,d]}" = "$HOLD" ]; }
held_ok() { all_held && each_le hold_kib 16; }

echo
echo "a: kernel direct; b: danted (client's SOCKS5); c: tun -> tunproxy --socks5 -> danted;" \
    "d: tun -> tunproxy --direct; e: kernel_relay (kernel sockets both sides)"
echo
echo "| measurement | a | b | c | d | e | c/b | d/a | d/e | target | verdict |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
! runs curl_down || bulk "curl download 100 MiB, MB/s" curl_down
! runs curl_up || bulk "curl upload 100 MiB (PUT), MB/s" curl_up
if runs iperf_down; then
    bulk "iperf3 -R (download) ${SECS} s, MB/s" iperf_down
    row "iperf3 -R: CPU ms/GB, whole machine" iperf_down_cpu "-" "-"
    row "iperf3 -R: CPU ms/GB, the relay" iperf_down_tcpu "-" "-"
fi
if runs iperf_up; then
    bulk "iperf3 (upload) ${SECS} s, MB/s" iperf_up
    row "iperf3: CPU ms/GB, whole machine" iperf_up_cpu "-" "-"
    row "iperf3: CPU ms/GB, the relay" iperf_up_tcpu "-" "-"
fi
! runs ab || ab_rows "ab -n $((5000 / SCALE)) -c 50" ab
! runs ab_k || ab_rows "ab -k -n $((20000 / SCALE)) -c 50" ab_k
if runs hold; then
    row "$HOLD held: connections open" held "$HOLD (c, d)" "$(yes_no all_held)"
    row "$HOLD held: tunproxy KiB/connection" hold_kib "<= 16 (c, d)" "$(yes_no held_ok)"
fi
echo
echo "(b has no ab: ab has no SOCKS client; b's iperf3 goes through proxychains4, the client's"
echo " own SOCKS hop; ratios: c/b the tun + tunproxy's cost over the same SOCKS hop, d/a over"
echo " the kernel alone, d/e over a relay whose client side is the kernel's; held: (VmRSS with"
echo " them held - before) / connections, a fresh tunproxy; CPU µs/request: busy time of both"
echo " CPUs, and the relay's own (tunproxy, kernel_relay), over ab's requests; CPU ms/GB: the"
echo " same over the bytes iperf3 moved, its set-up included)"
echo "== done in $((SECONDS - START)) s; logs in $LOGS"
