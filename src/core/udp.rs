//! UDP (RFC 768, RFC 1122 §4.1): demultiplexing to sockets, checksums, and the socket state the
//! `UdpSocket` API works on.

use super::ipv4::{Datagram, IpRx, Pmtud, MAX_DATAGRAM_PAYLOAD};
use super::{Event, Interface, SocketId};
use crate::id::IdSource;
use crate::time::Instant;
use crate::wire::transport_checksum_ok;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{IpNumber, Ipv4HeaderSlice, UdpHeader};
use rand::Rng;
use std::collections::{BTreeSet, HashMap, VecDeque};
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
    /// An intercepted flow's state; `None` for a bound socket.
    flow: Option<Flow>,
}

impl UdpSocket {
    /// A socket on `local`, connected to `remote` if given, with nothing received.
    fn new(local: SocketAddrV4, remote: Option<SocketAddrV4>, flow: Option<Flow>) -> UdpSocket {
        UdpSocket {
            local,
            remote,
            rx: VecDeque::new(),
            rx_bytes: 0,
            error: None,
            pmtud: Pmtud::Want,
            broadcast: false,
            ttl: None,
            flow,
        }
    }
}

/// An intercepted UDP flow (source, destination): its verdict and its idle clock.
struct Flow {
    verdict: FlowVerdict,
    /// The last datagram either way: the flow ends `udp_timeout` after it.
    last: Instant,
    /// The idle timeout ended it: receives fail with `TimedOut`.
    expired: bool,
    /// The first datagram's IP header and first bytes, to quote in a port unreachable.
    quote: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlowVerdict {
    /// Offered, no verdict yet: datagrams are queued.
    Pending,
    /// Accepted: an ordinary connected socket with the destination as its local address.
    Open,
    /// Refused: datagrams are answered with port unreachable until the flow idles out.
    Refused,
    /// Dropped: datagrams are dropped until the flow idles out.
    Ignored,
}

/// The verdict on a new UDP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowDecision {
    /// The flow becomes a socket connected to its client.
    Accept,
    /// Its datagrams are answered with ICMP port unreachable.
    Refuse,
    /// Its datagrams are dropped.
    Ignore,
}

pub struct UdpTable {
    sockets: HashMap<SocketId, UdpSocket>,
    ports: HashMap<u16, SocketId>,
    ids: IdSource,
    /// Intercepted flows by (destination, client).
    flows: HashMap<(SocketAddrV4, SocketAddrV4), SocketId>,
    /// When each flow's verdict or idle timeout is next due; checked, not trusted: a flow
    /// active since is filed again.
    flow_timers: BTreeSet<(Instant, SocketId)>,
}

impl Default for UdpTable {
    fn default() -> UdpTable {
        UdpTable {
            sockets: HashMap::new(),
            ports: HashMap::new(),
            ids: IdSource::udp(),
            flows: HashMap::new(),
            flow_timers: BTreeSet::new(),
        }
    }
}

impl UdpTable {
    fn get(&mut self, id: SocketId) -> io::Result<&mut UdpSocket> {
        self.sockets.get_mut(&id).ok_or_else(|| os_err(libc::EBADF))
    }

    /// Intercepted flows now.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// When a flow's timer is next due.
    pub fn poll_at(&self) -> Option<Instant> {
        self.flow_timers.first().map(|(t, _)| *t)
    }

    /// Forgets a flow's tuple (its socket stays while a handle holds it).
    fn end_flow(&mut self, id: SocketId) {
        if let Some(sock) = self.sockets.get(&id) {
            if let Some(remote) = sock.remote {
                if self.flows.get(&(sock.local, remote)) == Some(&id) {
                    self.flows.remove(&(sock.local, remote));
                }
            }
        }
    }
}

/// What a queued datagram costs beyond its data: its queue entry and the allocation's own
/// header. A receive queue charges it too, as Linux charges an skb's truesize, so that a flood
/// of empty datagrams is bounded like any other.
const DATAGRAM_OVERHEAD: usize = std::mem::size_of::<(SocketAddrV4, Vec<u8>)>() + 16;

/// The receive-buffer charge of a datagram of `len` bytes.
fn charge(len: usize) -> usize {
    len + DATAGRAM_OVERHEAD
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
        if rx.dst != self.cfg.ip && !rx.broadcast && self.intercept.is_some() {
            let to = SocketAddrV4::new(rx.dst, header.destination_port);
            return self.udp_flow_input(now, rx, from, to, &segment[UdpHeader::LEN..]);
        }
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
        sock.rx_bytes += charge(data.len());
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
            UdpSocket::new(SocketAddrV4::new(*addr.ip(), port), None, None),
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
        let sock = self.udp.get(id)?;
        if let Some(errno) = sock.error.take() {
            return Err(os_err(errno));
        }
        if let Some(flow) = sock.flow.as_mut() {
            if flow.expired {
                return Err(os_err(libc::ETIMEDOUT));
            }
            flow.last = now;
        }
        let our_ip = match *sock.local.ip() {
            ip if ip.is_unspecified() => self.cfg.ip,
            ip => ip,
        };
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
                src: our_ip,
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
        if sock.rx.is_empty() && sock.flow.as_ref().is_some_and(|f| f.expired) {
            return Some(Err(os_err(libc::ETIMEDOUT)));
        }
        let (from, data) = sock.rx.pop_front()?;
        sock.rx_bytes -= charge(data.len());
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
        self.udp.end_flow(id);
        if let Some(sock) = self.udp.sockets.remove(&id) {
            if sock.flow.is_none() {
                self.udp.ports.remove(&sock.local.port());
            }
        }
    }

    /// A datagram to an intercepted address: to its flow's socket, or the first of a new
    /// flow, offered to the application.
    fn udp_flow_input(
        &mut self,
        now: Instant,
        rx: &IpRx<'_>,
        from: SocketAddrV4,
        to: SocketAddrV4,
        data: &[u8],
    ) {
        let Some(cfg) = self.cfg.intercept else {
            return;
        };
        let id = match self.udp.flows.get(&(to, from)) {
            Some(&id) => id,
            None => {
                if self.udp.flows.len() >= cfg.max_udp_flows {
                    self.stats.icpt_udp_over_limit += 1;
                    return;
                }
                let id = self.udp.ids.next_id();
                let quote_len = (rx.header.len() + rx.payload.len()).min(rx.header.len() + 8);
                let mut quote = Vec::with_capacity(quote_len);
                quote.extend_from_slice(rx.header);
                quote.extend_from_slice(&rx.payload[..quote_len - rx.header.len()]);
                let flow = Flow {
                    verdict: FlowVerdict::Pending,
                    last: now,
                    expired: false,
                    quote,
                };
                self.udp
                    .sockets
                    .insert(id, UdpSocket::new(to, Some(from), Some(flow)));
                self.udp.flows.insert((to, from), id);
                let due = now + cfg.decision_timeout.min(cfg.udp_timeout);
                self.udp.flow_timers.insert((due, id));
                self.stats.icpt_udp_offered += 1;
                self.publish_offers(Some(super::UdpOffer {
                    id,
                    local: to,
                    remote: from,
                }));
                id
            }
        };
        let limit = self.cfg.udp_rcvbuf;
        let Some(sock) = self.udp.sockets.get_mut(&id) else {
            return;
        };
        let Some(flow) = sock.flow.as_mut() else {
            return;
        };
        flow.last = now;
        match flow.verdict {
            FlowVerdict::Refused => {
                self.stats.icpt_udp_dropped += 1;
                self.icmp_send_unreachable(now, rx, DestUnreachableHeader::Port);
                return;
            }
            FlowVerdict::Ignored => {
                self.stats.icpt_udp_dropped += 1;
                return;
            }
            FlowVerdict::Pending | FlowVerdict::Open => {}
        }
        if sock.rx_bytes >= limit {
            self.stats.udp_rx_buffer_full += 1;
            return;
        }
        sock.rx_bytes += charge(data.len());
        sock.rx.push_back((from, data.to_vec()));
        self.stats.udp_rx_datagrams += 1;
        if sock.rx.len() == 1 {
            self.events.push_back(Event::Ready(id));
        }
    }

    /// The application's verdict on a new flow. A refused flow's first datagram is answered
    /// with port unreachable now, and so are later ones until the flow idles out.
    pub fn udp_flow_decide(&mut self, now: Instant, id: SocketId, decision: FlowDecision) {
        let Some(sock) = self.udp.sockets.get_mut(&id) else {
            return;
        };
        let Some(flow) = sock
            .flow
            .as_mut()
            .filter(|f| f.verdict == FlowVerdict::Pending)
        else {
            return;
        };
        flow.verdict = match decision {
            FlowDecision::Accept => FlowVerdict::Open,
            FlowDecision::Refuse => FlowVerdict::Refused,
            FlowDecision::Ignore => FlowVerdict::Ignored,
        };
        let quote = std::mem::take(&mut flow.quote);
        if decision != FlowDecision::Accept {
            sock.rx.clear();
            sock.rx_bytes = 0;
        }
        match decision {
            FlowDecision::Accept => self.stats.icpt_udp_accepted += 1,
            FlowDecision::Ignore => self.stats.icpt_udp_ignored += 1,
            FlowDecision::Refuse => {
                self.stats.icpt_udp_refused += 1;
                if let Ok(h) = Ipv4HeaderSlice::from_slice(&quote) {
                    let rx = IpRx {
                        src: h.source_addr(),
                        dst: h.destination_addr(),
                        proto: IpNumber::UDP,
                        header: h.slice(),
                        payload: &quote[h.slice().len()..],
                        broadcast: false,
                        csum_verified: true,
                    };
                    self.icmp_send_unreachable(now, &rx, DestUnreachableHeader::Port);
                }
            }
        }
    }

    /// Ends the flows whose verdict did not come in time or that idled out.
    pub(super) fn udp_poll(&mut self, now: Instant) {
        let Some(cfg) = self.cfg.intercept.as_ref() else {
            return;
        };
        let idle = cfg.udp_timeout;
        while let Some(&(due, id)) = self.udp.flow_timers.first() {
            if due > now {
                break;
            }
            self.udp.flow_timers.pop_first();
            let Some(flow) = self.udp.sockets.get(&id).and_then(|s| s.flow.as_ref()) else {
                continue;
            };
            let (verdict, last) = (flow.verdict, flow.last);
            if verdict != FlowVerdict::Pending && last + idle > now {
                self.udp.flow_timers.insert((last + idle, id));
                continue;
            }
            self.udp.end_flow(id);
            match verdict {
                FlowVerdict::Open => {
                    // The handle learns it from its next receive, and its waiters now.
                    if let Some(flow) = self.udp.sockets.get_mut(&id).and_then(|s| s.flow.as_mut())
                    {
                        flow.expired = true;
                    }
                    self.stats.icpt_udp_expired += 1;
                    self.events.push_back(Event::Ready(id));
                }
                FlowVerdict::Pending => {
                    // No handle holds it yet: an offer still queued finds it gone (EBADF).
                    self.stats.icpt_udp_ignored += 1;
                    self.udp.sockets.remove(&id);
                }
                FlowVerdict::Refused | FlowVerdict::Ignored => {
                    self.udp.sockets.remove(&id);
                }
            }
        }
    }
}
