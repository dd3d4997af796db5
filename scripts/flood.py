#!/usr/bin/env python3
"""Load generators for scripts/soak.sh, run inside its namespace (needs root for raw frames).

  flood.py syn IFACE DST_MAC DST_IP PORT COUNT SECS   spoofed SYNs from random on-link sources
  flood.py frag IFACE DST_MAC DST_IP COUNT SECS       first fragments never completed

A flood spreads its COUNT frames evenly over SECS seconds (0: as fast as the link takes them).
  flood.py tcp-echo HOST PORT SECS                 a legitimate client: connect, echo 1 KiB, close
  flood.py udp-echo HOST PORT SIZE SECS            a legitimate client: one datagram, its echo
  flood.py zero-window HOST PORT COUNT SECS PID    COUNT clients that never read (a 4 KiB receive
                                                   buffer: their window closes), held SECS, then
                                                   reset; prints the RSS of process PID

Each legitimate client prints one line: attempts, successes and latencies in milliseconds.
Every wait is bounded (2 s per exchange).
"""
import os
import random
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0, frag=0):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto,
                         0, socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def tcp_syn(src, dst, sport, dport, seq):
    mss = struct.pack("!BBH", 2, 4, 1460)
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (5 + 1) << 4, 0x02, 64240, 0, 0)
    segment = header + mss
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(segment))
    csum = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def link(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    return s


def ether(dst_mac, src_mac, payload):
    return dst_mac + src_mac + b"\x08\x00" + payload


def send_all(sock, frames, count, secs):
    """Sends every frame, `count` of them spread over `secs`; a full queue is waited out
    briefly, so the flood runs at the link's pace rather than dropping in the kernel. Returns
    how many went."""
    sent = 0
    start = time.time()
    for f in frames:
        if secs > 0:
            due = start + secs * sent / count
            while time.time() < due:
                time.sleep(max(0.0, min(0.001, due - time.time())))
        for _ in range(1000):
            try:
                sock.send(f)
                sent += 1
                break
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError as e:
                if e.errno != 105:  # ENOBUFS
                    raise
                time.sleep(0.0005)
    return sent


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def syn_flood(iface, dst_mac, dst, port, count, secs):
    sock = link(iface)
    rnd = random.Random(7)
    prefix = dst.rsplit(".", 1)[0]

    def frames():
        for _ in range(count):
            src = "%s.%d" % (prefix, rnd.randrange(3, 255))
            src_mac = bytes([2, 0x42]) + os.urandom(4)
            syn = tcp_syn(src, dst, rnd.randrange(1024, 65535), port, rnd.getrandbits(32))
            yield ether(dst_mac, src_mac, ipv4(src, dst, 6, syn, rnd.getrandbits(16)))

    start = time.time()
    sent = send_all(sock, frames(), count, secs)
    print("syn flood: %d spoofed SYNs in %.1f s" % (sent, time.time() - start))


def frag_flood(iface, dst_mac, dst, count, secs):
    sock = link(iface)
    rnd = random.Random(9)
    # Another host than the legitimate client: fragments spoofing the client's own address
    # would collide with its datagrams' IP IDs now and then (RFC 4963), a loss no receiver
    # can avoid.
    src = dst.rsplit(".", 1)[0] + ".3"
    body = bytes(1480)

    def frames():
        for _ in range(count):
            # Offset 0, more fragments: a datagram whose rest never comes.
            yield ether(dst_mac, bytes([2, 0x43, 0, 0, 0, 1]),
                        ipv4(src, dst, 17, body, rnd.getrandbits(16), 0x2000))

    start = time.time()
    sent = send_all(sock, frames(), count, secs)
    print("fragment flood: %d first fragments in %.1f s" % (sent, time.time() - start))


def report(name, attempts, ok, latencies):
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
    print("%s: %d/%d ok, latency ms p50 %.1f p99 %.1f max %.1f" % (
        name, ok, attempts, pick(0.5) * 1e3, pick(0.99) * 1e3, (latencies[-1] if latencies else 0) * 1e3))


def tcp_echo(host, port, secs):
    message = os.urandom(1024)
    attempts = ok = 0
    latencies = []
    end = time.time() + secs
    while time.time() < end:
        attempts += 1
        start = time.time()
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(message)
                got = b""
                while len(got) < len(message):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                if got == message:
                    ok += 1
                    latencies.append(time.time() - start)
        except OSError:
            pass
        time.sleep(0.05)
    report("tcp echo", attempts, ok, latencies)


def udp_echo(host, port, size, secs):
    attempts = ok = 0
    latencies = []
    end = time.time() + secs
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    while time.time() < end:
        attempts += 1
        message = os.urandom(size)
        start = time.time()
        try:
            s.sendto(message, (host, port))
            while True:
                data, _ = s.recvfrom(65536)
                if data == message:
                    ok += 1
                    latencies.append(time.time() - start)
                    break
        except OSError:
            pass
        time.sleep(0.05)
    report("udp echo %d bytes" % size, attempts, ok, latencies)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def zero_window(host, port, count, secs, pid):
    base = rss_kb(pid)
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(2)
        s.connect((host, port))
        socks.append(s)
    # The windows close within a few round trips; hold them, then measure.
    time.sleep(secs)
    held = rss_kb(pid)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(2)
    after = rss_kb(pid)
    print("zero window: %d clients, RSS %.1f MiB idle, %.1f MiB held (+%.1f MiB, %.1f KiB each), "
          "%.1f MiB after their reset" % (count, base / 1024, held / 1024, (held - base) / 1024,
                                          (held - base) / count, after / 1024))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "syn" and len(argv) == 8:
        syn_flood(argv[2], mac(argv[3]), argv[4], int(argv[5]), int(argv[6]), float(argv[7]))
    elif cmd == "frag" and len(argv) == 7:
        frag_flood(argv[2], mac(argv[3]), argv[4], int(argv[5]), float(argv[6]))
    elif cmd == "tcp-echo" and len(argv) == 5:
        tcp_echo(argv[2], int(argv[3]), float(argv[4]))
    elif cmd == "udp-echo" and len(argv) == 6:
        udp_echo(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    elif cmd == "zero-window" and len(argv) == 7:
        zero_window(argv[2], int(argv[3]), int(argv[4]), float(argv[5]), int(argv[6]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
