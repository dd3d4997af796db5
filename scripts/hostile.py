#!/usr/bin/env python3
"""Hostile TCP and UDP peers for scripts/soak.sh, run inside its namespace (root: raw frames).

  hostile.py SCENARIO IFACE DST_MAC DST_IP SECS

Scenarios (each prints one line of figures):
  ooo        20 000 one-byte segments, each behind a hole, to discard (9)
  past       20 000 full segments far beyond the advertised window, to discard (9)
  mss1       a SYN announcing MSS 1 to chargen (19), whose data is ACKed for SECS
  sack       ACKs of chargen's data carrying four SACK blocks that fragment the scoreboard,
             one of them beyond what was sent, for SECS
  synrst     in-window SYNs and RSTs, 20 000 of each, on an established connection: only
             challenge ACKs, at most ten a second, come back
  idle       5000 kernel connections to echo (7) that never send, held SECS
  noread     200 kernel clients that send to echo (7) and never read its answer, for SECS
  udpempty   empty UDP datagrams to discard (9) as fast as the socket takes them, for SECS

The raw peers speak from a made-up on-link address (10.0.0.77), announced to the stack by an
ARP request so that its answers need no resolution; the kernel drops those answers (another
host's MAC), and reads them on a packet socket. Every wait is bounded.
"""
import os
import resource
import select
import socket
import struct
import sys
import time

from flood import checksum, ether, ipv4, mac

RAW_IP = "10.0.0.77"
RAW_MAC = bytes([2, 0x44, 0, 0, 0, 77])
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp_segment(src, dst, sport, dport, seq, ack, flags, window, payload=b"", options=b""):
    while len(options) % 4:
        options += b"\x01"
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         offset << 4, flags, window, 0, 0) + options
    segment = header + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(segment))
    csum = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


class RawPeer:
    """One TCP connection driven frame by frame from a packet socket."""

    def __init__(self, iface, dst_mac, dst_ip, dport, sport):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((iface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.dst_mac, self.dst_ip, self.dport, self.sport = dst_mac, dst_ip, dport, sport
        self.ident = 0
        self.announce()

    def announce(self):
        """An ARP request for the stack's address from ours: the stack learns our MAC."""
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, RAW_MAC,
                          socket.inet_aton(RAW_IP), bytes(6), socket.inet_aton(self.dst_ip))
        self.sock.send(b"\xff" * 6 + RAW_MAC + b"\x08\x06" + arp)

    def send(self, seq, ack, flags, window=65535, payload=b"", options=b""):
        self.ident = (self.ident + 1) & 0xFFFF
        seg = tcp_segment(RAW_IP, self.dst_ip, self.sport, self.dport, seq, ack, flags, window,
                          payload, options)
        frame = ether(self.dst_mac, RAW_MAC, ipv4(RAW_IP, self.dst_ip, 6, seg, self.ident))
        for _ in range(1000):
            try:
                self.sock.send(frame)
                return
            except OSError:
                time.sleep(0.0005)

    def recv(self, timeout):
        """The next segment of this connection from the stack, as (seq, ack, flags, window,
        payload), or None once `timeout` passes."""
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            frame = self.sock.recv(70000)
            if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            ip = frame[14:]
            if socket.inet_ntoa(ip[16:20]) != RAW_IP:
                continue
            tcp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
            sport, dport, seq, ack, off, flags, window = struct.unpack("!HHIIBBH", tcp[:16])
            if sport != self.dport or dport != self.sport:
                continue
            return seq, ack, flags, window, tcp[(off >> 4) * 4:]

    def handshake(self, options):
        """SYN, SYN-ACK, ACK: returns (our next seq, the stack's next seq)."""
        iss = 1000
        for _ in range(3):
            self.send(iss, 0, SYN, 65535, b"", options)
            while True:
                got = self.recv(1.0)
                if got is None or got[2] & (SYN | ACK) == SYN | ACK:
                    break
            if got is not None:
                rcv_nxt = got[0] + 1
                self.send(iss + 1, rcv_nxt, ACK)
                return iss + 1, rcv_nxt
        sys.exit("hostile.py: no SYN-ACK from %s:%d" % (self.dst_ip, self.dport))

    def reset(self, seq):
        self.send(seq, 0, RST)


def mss_option(mss):
    return struct.pack("!BBH", 2, 4, mss)


def ooo(peer, secs):
    snd, rcv = peer.handshake(mss_option(1460))
    for i in range(20000):
        peer.send(snd + 1 + 2 * i, rcv, ACK, 65535, b"x")
    peer.reset(snd)
    print("ooo: 20000 one-byte segments, each behind a hole, sent")


def past(peer, secs):
    snd, rcv = peer.handshake(mss_option(1460))
    body = bytes(1400)
    # The window without scaling is at most 64 KiB: start 1 MiB beyond it.
    for i in range(20000):
        peer.send(snd + (1 << 20) + 1400 * i, rcv, ACK, 65535, body)
    peer.reset(snd)
    print("past: 20000 segments of 1400 bytes beyond the window sent")


def drive_chargen(peer, secs, options, sack):
    """ACKs chargen's data for `secs`: fully, or (with `sack`) never past the first byte,
    with SACK blocks that cut what was sent into pieces, the last beyond SND.NXT."""
    snd, rcv = peer.handshake(options)
    first = rcv
    segments = sizes = acks = 0
    smallest = None
    end = time.time() + secs
    while time.time() < end:
        got = peer.recv(0.2)
        if got is None:
            if sack:
                peer.send(snd, first, ACK, 65535)
            continue
        seq, _, flags, _, payload = got
        if not payload:
            continue
        segments += 1
        sizes += len(payload)
        smallest = len(payload) if smallest is None else min(smallest, len(payload))
        top = (seq + len(payload)) & 0xFFFFFFFF
        if sack:
            span = (top - first) & 0xFFFFFFFF
            blocks = b""
            for k in range(3):
                left = first + 10 + (span * k) // 3
                blocks += struct.pack("!II", left & 0xFFFFFFFF, (left + 10) & 0xFFFFFFFF)
            blocks += struct.pack("!II", (top + 1000) & 0xFFFFFFFF, (top + 2000) & 0xFFFFFFFF)
            options = b"\x01\x01" + struct.pack("!BB", 5, 2 + len(blocks)) + blocks
            peer.send(snd, first, ACK, 65535, b"", options)
        else:
            peer.send(snd, top, ACK, 65535)
        acks += 1
    peer.reset(snd)
    return segments, sizes, smallest, acks


def mss1(peer, secs):
    segments, sizes, smallest, acks = drive_chargen(peer, secs, mss_option(1), False)
    print("mss1: %d frames, %.0f MiB, smallest payload %s bytes (the tap's TSO frames carry "
          "many pieces), %d ACKs" % (segments, sizes / 2**20, smallest, acks))


def sack(peer, secs):
    options = mss_option(1460) + b"\x01\x01\x04\x02"  # SACK permitted
    segments, sizes, smallest, acks = drive_chargen(peer, secs, options, True)
    print("sack: %d segments received (retransmissions included), %d fragmenting ACKs" % (
        segments, acks))


def synrst(peer, secs):
    snd, rcv = peer.handshake(mss_option(1460))
    start = time.time()
    for i in range(20000):
        peer.send(snd + 2 + i, rcv, SYN)
        peer.send(snd + 2 + i, 0, RST)
    elapsed = time.time() - start
    challenges = 0
    while peer.recv(1.0) is not None:
        challenges += 1
    # The connection lives on: discard sends nothing, so a FIN is what shows it, ACKed.
    peer.send(snd, rcv, FIN | ACK)
    alive = False
    for _ in range(5):
        got = peer.recv(1.0)
        if got is not None and got[2] & ACK and got[1] == (snd + 1) & 0xFFFFFFFF:
            alive = True
            break
    peer.reset(snd + 1)
    print("synrst: 20000 in-window SYNs and 20000 in-window RSTs in %.1f s, %d challenge ACKs "
          "back, connection %s" % (elapsed, challenges, "alive" if alive else "GONE"))


def idle(host, secs):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for _ in range(5000):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, 7))
            socks.append(s)
        except OSError:
            s.close()
    time.sleep(secs)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    print("idle: %d connections that never send, held %.0f s" % (len(socks), secs))


def noread(host, secs):
    socks = []
    for _ in range(200):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(2)
        try:
            s.connect((host, 7))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    block = os.urandom(65536)
    sent = 0
    end = time.time() + secs
    while time.time() < end:
        _, writable, _ = select.select([], socks, [], 0.1)
        for s in writable:
            try:
                sent += s.send(block)
            except OSError:
                pass
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    print("noread: %d clients sent %.1f MiB to echo and read none of it back" % (
        len(socks), sent / 2**20))


def udpempty(host, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    end = time.time() + secs
    while time.time() < end:
        for _ in range(100):
            try:
                s.sendto(b"", (host, 9))
                sent += 1
            except OSError:
                time.sleep(0.0005)
    print("udpempty: %d empty datagrams in %.0f s" % (sent, secs))


RAW = {"ooo": (ooo, 9), "past": (past, 9), "mss1": (mss1, 19), "sack": (sack, 19),
       "synrst": (synrst, 9)}
KERNEL = {"idle": idle, "noread": noread, "udpempty": udpempty}


def main(argv):
    if len(argv) != 6:
        sys.exit(__doc__)
    scenario, iface, dst_mac, dst_ip, secs = argv[1], argv[2], mac(argv[3]), argv[4], float(argv[5])
    if scenario in RAW:
        run, port = RAW[scenario]
        run(RawPeer(iface, dst_mac, dst_ip, port, 40000 + os.getpid() % 20000), secs)
    elif scenario in KERNEL:
        KERNEL[scenario](dst_ip, secs)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
