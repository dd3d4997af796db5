//! UDP (RFC 768, RFC 1122 §4.1): demultiplexing to sockets, checksums, and the socket state the
//! `UdpSocket` API works on.

use super::ipv4::{Datagram, IpRx, Pmtud, MAX_DATAGRAM_PAYLOAD};
use super::{Event, Interface, SocketId};
use crate::id::IdSource;
use crate::time::Instant;
use crate::wire::transport_checksum_ok;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{IpNumber, UdpHeader};
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddrV4;

/// Linux's default ephemeral port range (`ip_local_port_range`).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// Largest UDP payload in one IPv4 datagram.
pub const MAX_UDP_PAYLOAD: usize = MAX_DATAGRAM_PAYLOAD - UdpHeader::LEN;

fn os_err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

struct UdpSocket {
    local: SocketAddrV4,
    remote: Option<SocketAddrV4>,
    rx: VecDeque<(SocketAddrV4, Vec<u8>)>,
    rx_bytes: usize,
    /// A pending asynchronous error (Linux `sk_err`), reported once by the next call.
    error: Option<i32>,
    pmtud: Pmtud,
    broadcast: bool,
    /// `IP_TTL`, if set.
    ttl: Option<u8>,
}

pub struct UdpTable {
    sockets: HashMap<SocketId, UdpSocket>,
    ports: HashMap<u16, SocketId>,
    ids: IdSource,
}

impl Default for UdpTable {
    fn default() -> UdpTable {
        UdpTable {
            sockets: HashMap::new(),
            ports: HashMap::new(),
            ids: IdSource::udp(),
        }
    }
}

impl UdpTable {
    fn get(&mut self, id: SocketId) -> io::Result<&mut UdpSocket> {
        self.sockets.get_mut(&id).ok_or_else(|| os_err(libc::EBADF))
    }
}

impl Interface {
    pub(super) fn udp_input(&mut self, now: Instant, rx: &IpRx<'_>) {
        let Ok((header, _)) = UdpHeader::from_slice(rx.payload) else {
            self.stats.udp_rx_malformed += 1;
            return;
        };
        let len = usize::from(header.length);
        if len < UdpHeader::LEN || len > rx.payload.len() {
            self.stats.udp_rx_malformed += 1;
            return;
        }
        let segment = &rx.payload[..len];
        // A zero checksum means the sender did not compute one (RFC 768).
        if header.checksum != 0
            && !rx.csum_verified
            && !transport_checksum_ok(rx.src.octets(), rx.dst.octets(), IpNumber::UDP.0, segment)
        {
            self.stats.udp_rx_bad_checksum += 1;
            return;
        }
        let from = SocketAddrV4::new(rx.src, header.source_port);
        let Some(&id) = self.udp.ports.get(&header.destination_port) else {
            self.stats.udp_rx_no_port += 1;
            self.icmp_send_unreachable(now, rx, DestUnreachableHeader::Port);
            return;
        };
        let limit = self.cfg.udp_rcvbuf;
        let Some(sock) = self.udp.sockets.get_mut(&id) else {
            return;
        };
        let wrong_peer = sock.remote.is_some_and(|r| r != from);
        let wrong_addr = !sock.local.ip().is_unspecified() && *sock.local.ip() != rx.dst;
        if wrong_peer || wrong_addr {
            self.stats.udp_rx_filtered += 1;
            return;
        }
        // Like Linux, a datagram is refused only once the buffer is already over its limit.
        if sock.rx_bytes >= limit {
            self.stats.udp_rx_buffer_full += 1;
            return;
        }
        let data = segment[UdpHeader::LEN..].to_vec();
        sock.rx_bytes += data.len();
        sock.rx.push_back((from, data));
        self.stats.udp_rx_datagrams += 1;
        if sock.rx.len() == 1 {
            self.events.push_back(Event::Ready(id));
        }
    }

    /// Records an ICMP-reported error on the connected socket it concerns.
    pub(super) fn udp_error(&mut self, local_port: u16, remote: SocketAddrV4, errno: i32) -> bool {
        let Some(&id) = self.udp.ports.get(&local_port) else {
            return false;
        };
        let Some(sock) = self.udp.sockets.get_mut(&id) else {
            return false;
        };
        if sock.remote != Some(remote) {
            return false;
        }
        sock.error = Some(errno);
        self.events.push_back(Event::Ready(id));
        true
    }

    /// A datagram whose next hop did not resolve: like Linux, which reports the failure as a
    /// local "host unreachable" (RFC 1122 §2.3.2.2), its connected socket sees `EHOSTUNREACH`.
    pub(super) fn udp_host_unreachable(&mut self, dg: &Datagram) {
        if dg.proto != IpNumber::UDP {
            return;
        }
        if let Ok((h, _)) = UdpHeader::from_slice(dg.transport()) {
            let remote = SocketAddrV4::new(dg.dst, h.destination_port);
            self.udp_error(h.source_port, remote, libc::EHOSTUNREACH);
        }
    }

    /// Opens a UDP socket on `addr` (port 0 picks an ephemeral port).
    pub fn udp_bind(&mut self, addr: SocketAddrV4) -> io::Result<SocketId> {
        if !addr.ip().is_unspecified() && *addr.ip() != self.cfg.ip {
            return Err(os_err(libc::EADDRNOTAVAIL));
        }
        let port = if addr.port() == 0 {
            self.ephemeral_port()?
        } else if self.udp.ports.contains_key(&addr.port()) {
            return Err(os_err(libc::EADDRINUSE));
        } else {
            addr.port()
        };
        let id = self.udp.ids.next_id();
        self.udp.ports.insert(port, id);
        self.udp.sockets.insert(
            id,
            UdpSocket {
                local: SocketAddrV4::new(*addr.ip(), port),
                remote: None,
                rx: VecDeque::new(),
                rx_bytes: 0,
                error: None,
                pmtud: Pmtud::Want,
                broadcast: false,
                ttl: None,
            },
        );
        Ok(id)
    }

    fn ephemeral_port(&mut self) -> io::Result<u16> {
        let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        let start = self.rng.random_range(0..span);
        (0..span)
            .map(|i| EPHEMERAL.start() + ((start + i) % span) as u16)
            .find(|p| !self.udp.ports.contains_key(p))
            .ok_or_else(|| os_err(libc::EADDRINUSE))
    }

    /// Fixes the peer: `send` goes there and only its datagrams are received.
    pub fn udp_connect(&mut self, id: SocketId, remote: SocketAddrV4) -> io::Result<()> {
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(os_err(libc::EINVAL));
        }
        let our_ip = self.cfg.ip;
        let sock = self.udp.get(id)?;
        sock.remote = Some(remote);
        if sock.local.ip().is_unspecified() {
            sock.local.set_ip(our_ip);
        }
        Ok(())
    }

    /// Sends one datagram to `dst`, or to the connected peer when `dst` is `None`.
    pub fn udp_send(
        &mut self,
        now: Instant,
        id: SocketId,
        data: &[u8],
        dst: Option<SocketAddrV4>,
    ) -> io::Result<usize> {
        let our_ip = self.cfg.ip;
        let sock = self.udp.get(id)?;
        if let Some(errno) = sock.error.take() {
            return Err(os_err(errno));
        }
        let dst = dst
            .or(sock.remote)
            .ok_or_else(|| os_err(libc::EDESTADDRREQ))?;
        if dst.port() == 0 {
            return Err(os_err(libc::EINVAL));
        }
        if data.len() > MAX_UDP_PAYLOAD {
            return Err(os_err(libc::EMSGSIZE));
        }
        let (src_port, pmtud, broadcast) = (sock.local.port(), sock.pmtud, sock.broadcast);
        let sock_ttl = sock.ttl;
        if self.cfg.is_broadcast(*dst.ip()) && !broadcast {
            return Err(os_err(libc::EACCES));
        }
        let mut header = UdpHeader {
            source_port: src_port,
            destination_port: dst.port(),
            length: (UdpHeader::LEN + data.len()) as u16,
            checksum: 0,
        };
        header.checksum = header
            .calc_checksum_ipv4_raw(our_ip.octets(), dst.ip().octets(), data)
            .map_err(|_| os_err(libc::EMSGSIZE))?;
        let mut payload = Vec::with_capacity(UdpHeader::LEN + data.len());
        payload.extend_from_slice(&header.to_bytes());
        payload.extend_from_slice(data);
        self.send_datagram(
            now,
            Datagram {
                dst: *dst.ip(),
                proto: IpNumber::UDP,
                pmtud,
                payload,
                headroom: 0,
                tso_mss: None,
                ttl: sock_ttl,
                dscp: 0,
            },
        )?;
        self.stats.udp_tx_datagrams += 1;
        Ok(data.len())
    }

    /// The next datagram and its sender, a pending error, or `None` when there is nothing.
    pub fn udp_recv(&mut self, id: SocketId) -> Option<io::Result<(Vec<u8>, SocketAddrV4)>> {
        let sock = match self.udp.get(id) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        if let Some(errno) = sock.error.take() {
            return Some(Err(os_err(errno)));
        }
        let (from, data) = sock.rx.pop_front()?;
        sock.rx_bytes -= data.len();
        Some(Ok((data, from)))
    }

    /// The address the socket is bound to.
    pub fn udp_local_addr(&mut self, id: SocketId) -> io::Result<SocketAddrV4> {
        Ok(self.udp.get(id)?.local)
    }

    /// The connected peer; `ENOTCONN` if the socket is not connected.
    pub fn udp_peer_addr(&mut self, id: SocketId) -> io::Result<SocketAddrV4> {
        self.udp
            .get(id)?
            .remote
            .ok_or_else(|| os_err(libc::ENOTCONN))
    }

    /// `true`: always set DF and fail with `EMSGSIZE` over the MTU (Linux `IP_PMTUDISC_DO`).
    pub fn udp_set_dont_fragment(&mut self, id: SocketId, on: bool) -> io::Result<()> {
        self.udp.get(id)?.pmtud = if on { Pmtud::Do } else { Pmtud::Want };
        Ok(())
    }

    /// `IP_TTL`: the TTL of the socket's datagrams (1 to 255), or `None` for the default.
    pub fn udp_set_ttl(&mut self, id: SocketId, ttl: Option<u8>) -> io::Result<()> {
        if ttl == Some(0) {
            return Err(os_err(libc::EINVAL));
        }
        self.udp.get(id)?.ttl = ttl;
        Ok(())
    }

    /// The TTL of the socket's datagrams.
    pub fn udp_ttl(&mut self, id: SocketId) -> io::Result<u8> {
        let ttl = self.udp.get(id)?.ttl;
        Ok(ttl.unwrap_or(self.cfg.ttl))
    }

    /// `SO_BROADCAST`: allows sending to broadcast addresses.
    pub fn udp_set_broadcast(&mut self, id: SocketId, on: bool) -> io::Result<()> {
        self.udp.get(id)?.broadcast = on;
        Ok(())
    }

    /// Removes the socket and frees its port.
    pub fn udp_close(&mut self, id: SocketId) {
        if let Some(sock) = self.udp.sockets.remove(&id) {
            self.udp.ports.remove(&sock.local.port());
        }
    }
}
