#!/usr/bin/env bash
# HTTP benchmark: ApacheBench (ab) against tapstack's http-server over a tap, and against nginx
# (one worker) on the kernel's own TCP between two namespaces over a veth pair, each serving
# one 10 KiB file. Every ab run goes to nginx and then to tapstack, back to back, so both see
# the same machine load. Prints requests per second with the ratio, failed requests and the
# longest request, and whether each run meets its target; exits 0 either way (a measurement).
#
#   scripts/bench-http.sh [--quick]     # as root (or with sudo); --quick: a tenth of the requests
#
# Installs apache2-utils and nginx with apt-get when missing. Everything happens in namespaces
# it creates and removes on exit; nginx runs from a private config, not as a system service.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SCALE=1
while [ $# -gt 0 ]; do
    case $1 in
    --quick)
        SCALE=10
        shift
        ;;
    -h | --help)
        sed -n '2,12s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (use --quick)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (or with sudo): it creates network namespaces and a tap"
need=()
command -v ab >/dev/null || need+=(apache2-utils)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's nginx package would start its service on the host: keep it from doing so.
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
    fi
    apt-get install -y -qq "${need[@]}" >/dev/null
    [ -z "$policy" ] || rm -f "$policy"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --features cli --bins
BIN=$PWD/target/release

KSRV="benchhttp-srv-$$"
KCLI="benchhttp-cli-$$"
KSRV_IP=10.9.0.1
KCLI_IP=10.9.0.2
WORK=$(mktemp -d)
NGINX_PID=

cleanup() {
    set +e
    [ -z "$NGINX_PID" ] || { kill -TERM "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; }
    stop_server >/dev/null 2>&1
    ip netns del "$KSRV" 2>/dev/null
    ip netns del "$KCLI" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$WORK"
}

make_netns # tapstack: namespace $NS with tap0 = $KERNEL_IP/24
trap cleanup EXIT
client_sysctls "$NS"

make_veth_pair "$KSRV" "$KCLI" "$KSRV_IP" "$KCLI_IP"

SITE=$WORK/site
mkdir -p "$SITE" "$WORK/tmp"
head -c 10240 /dev/zero | tr '\0' 'x' >"$SITE/10k.bin"
chmod -R a+rX "$WORK"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    server { listen $KSRV_IP:80; root $SITE; }
}
CONF
ip netns exec "$KSRV" "$NGINX" -c "$WORK/nginx.conf" &
NGINX_PID=$!
start_server "$BIN/http-server" --port 80 "$SITE"

deadline=$((SECONDS + 10))
until ip netns exec "$KCLI" ping -c1 -W1 -q "$KSRV_IP" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "veth pair not reachable"
done
until ip netns exec "$KCLI" bash -c "exec 3<>/dev/tcp/$KSRV_IP/80" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "nginx did not start: $(cat "$WORK/nginx-error.log")"
done

# ab NAMESPACE HOST FLAGS...: "req_per_s failed longest_ms" of one run, or "fail".
ab_run() {
    local ns=$1 host=$2
    shift 2
    local out
    if out=$(timeout 300 ip netns exec "$ns" ab -q -r -s 10 "$@" "http://$host/10k.bin" 2>&1); then
        awk '/^Requests per second/ { r = $4 } /^Failed requests/ { f = $3 }
             /^Non-2xx responses/ { f += $3 } /longest request/ { l = $2 }
             END { if (r == "") print "fail"; else print r, f, l }' <<<"$out"
    else
        echo fail
    fi
}

RUNS=("-n 5000 -c 1" "-k -n 20000 -c 1" "-n 5000 -c 50" "-k -n 20000 -c 50" "-n 5000 -c 200" "-k -n 20000 -c 200")
TARGETS=(0.3 0.5 0.3 0.3 0.3 0.3)
echo "== $(uname -sr), $(nproc) cpus, $(ab -V | head -1), $("$NGINX" -v 2>&1)"
rows=()
for i in "${!RUNS[@]}"; do
    read -r -a flags <<<"${RUNS[$i]}"
    n=${flags[-3]}
    flags[-3]=$((n / SCALE))
    k=$(ab_run "$KCLI" "$KSRV_IP" "${flags[@]}")
    t=$(ab_run "$NS" "$STACK_IP" "${flags[@]}")
    echo "  ab ${flags[*]}: nginx $k | tapstack $t"
    rows+=("${flags[*]}|$k|$t|${TARGETS[$i]}")
done
echo "== tapstack http-server counters"
stop_server >"$WORK/counters" 2>&1 || true
sed 's/^/  /' "$WORK/counters"

echo
printf '%-20s %11s %11s %7s %7s  %-15s %-15s %s\n' "ab run" "nginx r/s" "tapstack" ratio target \
    "nginx fail/max" "tapstack f/max" verdict
for row in "${rows[@]}"; do
    IFS='|' read -r run k t target <<<"$row"
    read -r kr kf kl <<<"$k"
    read -r tr tf tl <<<"$t"
    ratio=- verdict="NOT met"
    if [ "$kr" != fail ] && [ "$tr" != fail ]; then
        ratio=$(awk -v k="$kr" -v t="$tr" 'BEGIN { printf "%.3f", t / k }')
        if awk -v r="$ratio" -v x="$target" -v f="$tf" -v l="$tl" \
            'BEGIN { exit !(r >= x && f == 0 && l <= 1000) }'; then
            verdict=met
        fi
    fi
    printf '%-20s %11s %11s %7s %7s  %-15s %-15s %s\n' "$run" "$kr" "$tr" "$ratio" "$target" \
        "${kf:--}/${kl:--}ms" "${tf:--}/${tl:--}ms" "$verdict"
done
echo "(target: tapstack req/s >= target x nginx, no failed request, none slower than 1 s)"
