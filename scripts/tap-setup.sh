#!/usr/bin/env bash
# Sets up a tap for running the apps by hand: a persistent tap with a kernel-side address, owned
# by a user, inside a network namespace (default: "tapstack", created if missing).
#
#   sudo scripts/tap-setup.sh [--netns NAME] [--tap tap0] [--addr 10.0.0.1/24] [--user USER]
#   sudo ip netns exec tapstack target/release/echo-server      # then talk to 10.0.0.2 from
#   sudo ip netns exec tapstack ping 10.0.0.2                   # inside the same namespace
#   sudo scripts/tap-setup.sh --remove [--netns NAME] [--tap tap0]
#
# --netns host configures the host's own namespace instead; only do that on a machine you own.
set -euo pipefail
NETNS=tapstack TAP=tap0 ADDR=10.0.0.1/24 OWNER=${SUDO_USER:-root} REMOVE=
while [ $# -gt 0 ]; do
    case $1 in
        --netns) NETNS=$2; shift 2 ;;
        --tap) TAP=$2; shift 2 ;;
        --addr) ADDR=$2; shift 2 ;;
        --user) OWNER=$2; shift 2 ;;
        --remove) REMOVE=1; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
run() { if [ "$NETNS" = host ]; then "$@"; else ip netns exec "$NETNS" "$@"; fi; }
if [ -n "$REMOVE" ]; then
    run ip link del "$TAP" 2>/dev/null || true
    [ "$NETNS" = host ] || ip netns del "$NETNS" 2>/dev/null || true
    echo "removed $TAP${NETNS:+ and namespace $NETNS}"
    exit 0
fi
if [ "$NETNS" != host ] && ! ip netns list | grep -qw "$NETNS"; then
    ip netns add "$NETNS"
    ip netns exec "$NETNS" ip link set lo up
fi
run ip tuntap add dev "$TAP" mode tap user "$OWNER"
run sysctl -qw "net.ipv6.conf.$TAP.disable_ipv6=1"
run ip addr add "$ADDR" dev "$TAP"
run ip link set "$TAP" up
echo "$TAP is up with $ADDR (owner $OWNER) in namespace $NETNS"
