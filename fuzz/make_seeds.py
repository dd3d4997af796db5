#!/usr/bin/env python3
"""Writes the hand-made seeds of the `frames` target into regressions/frames/: well-formed
frames for each setup of harness.rs (a server over IPv4 and IPv6, an intercepting core with
pings answered or handed over, two queues passing frames on), so that the fuzzer starts past
the first checks and tests/fuzz_regressions.rs runs every setup. Checksums are left zero:
each piece asks the harness to fix them (its control byte's bit 3).

    python3 fuzz/make_seeds.py
"""
import ipaddress
import os
import struct

US4, PEER4 = "10.0.0.2", "10.0.0.1"
US6, PEER6 = "2001:db8::2", "2001:db8::1"
FIX = 8  # control byte: fix the checksums
KIND = {"ipv4": 0, "arp": 1, "ipv6": 2}
GROUP = 4  # control byte: a broadcast or multicast destination MAC


def a4(s):
    return ipaddress.IPv4Address(s).packed


def a6(s):
    return ipaddress.IPv6Address(s).packed


def ipv4(src, dst, proto, payload, ident=1, flags_frag=0x4000):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_frag, 64,
                       proto, 0, a4(src), a4(dst)) + payload


def ipv6(src, dst, nh, payload, hops=64):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, hops, a6(src),
                       a6(dst)) + payload


def tcp(sport, dport, seq=1000, ack=0, flags=0x02, data=b""):
    # A SYN carries MSS 1460, SACK permitted and window scale 7.
    opts = b"\x02\x04\x05\xb4\x04\x02\x03\x03\x07\x00" if flags & 0x02 else b""
    opts += b"\x00" * (-len(opts) % 4)
    off = (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 64240, 0,
                       0) + opts + data


def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def checksum(data):
    data += b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_summed(src, dst, sport, dport, data):
    """A UDP datagram with its checksum, for a datagram sent in fragments (the harness fixes
    only whole ones)."""
    d = udp(sport, dport, data)
    pseudo = a4(src) + a4(dst) + struct.pack("!BBH", 0, 17, len(d))
    return d[:6] + struct.pack("!H", checksum(pseudo + d)) + d[8:]


def echo(kind, data, ident=7, seq=1):
    return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data


def arp_request():
    mac_peer = bytes([2, 0, 0, 0, 0, 1])
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac_peer, a4(PEER4), bytes(6),
                       a4(US4))


def neighbour_solicitation(target):
    t = ipaddress.IPv6Address(target).packed
    group = "ff02::1:ff" + t[13:].hex()[:2] + ":" + t[14:].hex()
    # Type 135, the target, and the source link-layer address option.
    ns = struct.pack("!BBHI16s", 135, 0, 0, 0, t) + bytes([1, 1, 2, 0, 0, 0, 0, 1])
    # Neighbour Discovery is sent with hop limit 255 (RFC 4861 §7.1.1).
    return ipv6(PEER6, group, 58, ns, hops=255), True


def piece(kind, packet, group=False, step=1):
    body = bytes([KIND[kind] | FIX | (GROUP if group else 0) | (step << 4)]) + packet
    if 0 < len(body) < 256:
        return bytes([len(body)]) + body
    return b"\x00" + struct.pack("!H", len(body)) + body


def v4(src, dst, proto, payload, **kw):
    return piece("ipv4", ipv4(src, dst, proto, payload, **kw))


def v6(src, dst, nh, payload):
    return piece("ipv6", ipv6(src, dst, nh, payload))


def server():
    ns, group = neighbour_solicitation(US6)
    return bytes([0]) + b"".join([
        piece("arp", arp_request(), group=True),
        v4(PEER4, US4, 6, tcp(40000, 80)),
        v4(PEER4, US4, 17, udp(50000, 7, b"hello")),
        v4(PEER4, US4, 1, echo(8, b"ping")),
        piece("ipv6", ns, group=group),
        v6(PEER6, US6, 17, udp(50000, 7, b"hello6")),
        v6(PEER6, US6, 6, tcp(40001, 80)),
        v6(PEER6, US6, 58, echo(128, b"ping6")),
    ])


def intercepting(choice):
    far4, far6 = "198.51.100.9", "2001:db8:1::9"
    pieces = [piece("arp", arp_request(), group=True)]
    # Client ports 40000-40003 draw each TCP verdict, 50000-50002 each UDP decision.
    pieces += [v4(PEER4, far4, 6, tcp(port, 443)) for port in range(40000, 40004)]
    pieces += [v4(PEER4, "192.0.2.53", 17, udp(port, 53, b"\x12\x34query")) for port in
               range(50000, 50003)]
    # Echo data of three lengths draws each verdict on a delivered ping.
    pieces += [v4(PEER4, far4, 1, echo(8, b"x" * n)) for n in (4, 5, 6)]
    pieces += [v6(PEER6, far6, 6, tcp(40004, 443)), v6(PEER6, far6, 17, udp(50003, 53, b"q6")),
               v6(PEER6, far6, 58, echo(128, b"ping6"))]
    return bytes([choice]) + b"".join(pieces)


def queues():
    # To a port with no socket, so that queue 1 passes it on whole once it has both fragments.
    datagram = udp_summed(PEER4, US4, 50000, 9, b"f" * 96)
    return bytes([3]) + b"".join([
        # Queue 0, then queue 1, in turn.
        piece("arp", arp_request(), group=True),
        v4(PEER4, US4, 6, tcp(40000, 80)),
        v4(PEER4, US4, 6, tcp(40001, 81)),
        v4(PEER4, US4, 6, tcp(40002, 80)),
        v4(PEER4, US4, 17, udp(50001, 7, b"echo")),
        v4(PEER4, US4, 17, datagram[:48], ident=9, flags_frag=0x2000),
        v6(PEER6, US6, 17, udp(50002, 7, b"to queue 0")),
        v4(PEER4, US4, 17, datagram[48:], ident=9, flags_frag=6),
    ])


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions", "frames")
    seeds = {
        "seed-server": server(),
        "seed-intercept": intercepting(1),
        "seed-intercept-deliver": intercepting(2),
        "seed-queues": queues(),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
