//! UDP (RFC 768, RFC 1122 §4.1; over IPv6, RFC 8200 §8.1): demultiplexing to sockets,
//! checksums, and the socket state the `UdpSocket` API works on. One table serves both
//! families. A socket bound to `[::]` is dual-stack, as Linux's are by default
//! (`net.ipv6.bindv6only` 0, RFC 3493 §3.7): it also takes IPv4 datagrams, whose peers it sees
//! as IPv4-mapped addresses, and so it shares its port with no IPv4 socket. Addresses are
//! kept canonical inside (an IPv4 peer as IPv4) and shown in the socket's family.

use super::ipv4::{Datagram, IpRx, Pmtud, MAX_DATAGRAM_PAYLOAD};
use super::{Event, Interface, SocketId};
use crate::id::IdSource;
use crate::time::Instant;
use crate::wire::{gso, transport_checksum_ok, FRAME_HEADROOM, FRAME_HEADROOM_V6};
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv6Header, UdpHeader};
use rand::Rng;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Linux's default ephemeral port range (`ip_local_port_range`).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// Largest UDP payload in one IPv4 datagram.
pub const MAX_UDP_PAYLOAD: usize = MAX_DATAGRAM_PAYLOAD - UdpHeader::LEN;
/// Largest UDP payload over IPv6: the UDP length field's limit (no jumbograms).
const MAX_UDP6_PAYLOAD: usize = u16::MAX as usize - UdpHeader::LEN;
/// The most a socket's handles post to the stack thread ahead of its verdicts, in bytes of
/// datagrams charged as a receive queue charges them (Linux's default `SO_SNDBUF`, 212 992):
/// past it, a send waits for the stack thread, which by then has handed what was posted
/// before to the IP layer.
pub const UDP_POSTED_MAX: usize = 212_992;
/// Datagram buffers a socket keeps for reuse, each of at most [`SPARE_SIZE`] bytes.
const SPARE_MAX: usize = 2;
const SPARE_SIZE: usize = 4096;
/// Destinations a socket remembers the stack thread sent to (see `UdpTx`).
const KNOWN_MAX: usize = 16;
/// The most of a packet an ICMPv6 error quotes: what fits the minimum MTU with the error's
/// IPv6 and ICMPv6 headers (RFC 4443 §2.4 (c)).
const MAX_ICMP6_QUOTE: usize = 1280 - 40 - 8;

fn os_err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

struct UdpSocket {
    /// An IPv6 socket (`AF_INET6`): IPv4 peers are shown to it as mapped addresses.
    v6: bool,
    /// `IPV6_V6ONLY`: an IPv6 socket on `[::]` takes IPv6 only.
    v6only: bool,
    /// Canonical: an IPv6 socket bound to `[::]` keeps `[::]` here.
    local: SocketAddr,
    remote: Option<SocketAddr>,
    /// The receive queue and what a receive reports, shared with the socket's handles.
    io: UdpIo,
    pmtud: Pmtud,
    broadcast: bool,
    /// `IP_TTL`, if set.
    ttl: Option<u8>,
    /// An intercepted flow's state; `None` for a bound socket.
    flow: Option<Flow>,
}

/// What a UDP socket shares with its handles: the datagrams received and not yet read (each
/// with its sender as the socket's family shows it) and what a receive reports instead, so that
/// a receive takes a lock, not a round trip to the stack thread.
#[derive(Debug, Default)]
pub struct UdpShared {
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// What the queue is charged, per-datagram overhead included ([`charge`]).
    bytes: usize,
    /// A pending asynchronous error (Linux `sk_err`), reported once by the next call.
    error: Option<i32>,
    /// An intercepted flow that idled out: receives fail with `ETIMEDOUT` once it is drained.
    expired: bool,
    /// The stack is shutting down: a receive with nothing queued fails instead of waiting.
    stopped: bool,
    /// The bound address and the connected peer, as the socket's family shows them.
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// `IP_TTL` as the handle last set it (`None`: the stack's default). The handle alone
    /// writes it, as it posts the change to the core, so that it reads back at once and in
    /// the order the handle's calls were made.
    ttl: Option<u8>,
    /// `IPV6_V6ONLY` of an IPv6 socket; `None` for an IPv4 one.
    only_v6: Option<bool>,
    /// Sends posted without waiting for the stack thread.
    tx: UdpTx,
    /// Buffers of datagrams sent or read, for the next ones to reuse: a datagram costs no
    /// allocation either way once the socket has some.
    spare: Vec<Vec<u8>>,
}

/// A UDP send need not wait for the stack thread (Linux queues the datagram on the device and
/// returns): once the stack thread has sent a datagram to a destination, the next ones to it,
/// no larger and with nothing changed on the socket since, are posted, and the send returns
/// at once. An error the stack thread meets on one of them becomes the socket's pending
/// error, reported (and its waiters woken) as an ICMP error on a connected socket is, on a
/// socket connected or not: by the next call.
#[derive(Debug, Default)]
struct UdpTx {
    /// What is posted and not yet handed to the IP layer, charged as the receive queue
    /// charges ([`charge`]), at most [`UDP_POSTED_MAX`].
    posted: usize,
    /// The last [`KNOWN_MAX`] destinations sent to (`None`: the connected peer), each with
    /// the segment size of its sends (`Some` for [`Interface::udp_send_segments`]) and the
    /// largest send, since anything last changed; the oldest first.
    known: Vec<(Option<SocketAddr>, Option<u16>, usize)>,
    /// Counts the changes: a verdict asked for before one vouches for nothing after it.
    generation: u64,
}

/// A UDP socket's shared state: received datagrams, the pending error, posted sends.
pub type UdpIo = std::sync::Arc<crate::sync::Mutex<UdpShared>>;

/// Locks a socket's shared state; a handle that panicked holding it leaves it usable.
pub fn lock_udp(io: &UdpIo) -> crate::sync::MutexGuard<'_, UdpShared> {
    io.lock().unwrap_or_else(|e| e.into_inner())
}

impl UdpShared {
    /// The bound address as the socket shows it.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The connected peer, if any, as the socket shows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// `IP_TTL` as last set; `None` for the stack's default.
    pub fn ttl(&self) -> Option<u8> {
        self.ttl
    }

    /// Records `IP_TTL` as set by the handle, which posts the change to the core.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.ttl = Some(ttl);
    }

    /// `IPV6_V6ONLY`; `None` for an IPv4 socket.
    pub fn only_v6(&self) -> Option<bool> {
        self.only_v6
    }

    /// The next datagram and its sender, a pending error, or `None` when nothing is there
    /// (then wait for the socket to be ready).
    pub fn recv(&mut self) -> Option<io::Result<(Vec<u8>, SocketAddr)>> {
        if let Some(errno) = self.error.take() {
            return Some(Err(os_err(errno)));
        }
        if self.queue.is_empty() && self.expired {
            return Some(Err(os_err(libc::ETIMEDOUT)));
        }
        if self.queue.is_empty() && self.stopped {
            return Some(Err(crate::tcp::shared::stopped()));
        }
        let (from, data) = self.queue.pop_front()?;
        self.bytes -= charge(data.len());
        Some(Ok((data, from)))
    }

    /// As [`UdpShared::recv`], copying the datagram into `out` (the excess of one larger is
    /// discarded) and keeping its buffer for reuse: one lock, no allocation.
    pub fn recv_into(&mut self, out: &mut [u8]) -> Option<io::Result<(usize, SocketAddr)>> {
        Some(self.recv()?.map(|(data, from)| {
            let n = copy_out(&data, out);
            self.recycle(data);
            (n, from)
        }))
    }

    /// Keeps a datagram's buffer for the next datagram, if small enough and few are kept.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= SPARE_SIZE && self.spare.len() < SPARE_MAX {
            self.spare.push(buf);
        }
    }

    /// A buffer holding `data`: a kept one if any.
    fn buffer(&mut self, data: &[u8]) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        buf
    }

    /// Queues a datagram unless the queue is already over `limit` (as Linux, which refuses
    /// one only then); true if the queue was empty before.
    fn push(&mut self, from: SocketAddr, data: &[u8], limit: usize) -> Option<bool> {
        if self.bytes >= limit {
            return None;
        }
        self.bytes += charge(data.len());
        let buf = self.buffer(data);
        self.queue.push_back((from, buf));
        Some(self.queue.len() == 1)
    }

    /// The buffer to post `data` in, to `dst` (`None`: the connected peer), when the send
    /// need not wait for the stack thread's verdict: no error pending, the flow not expired,
    /// the destination known for sends this large cut at `segment`, and room under
    /// [`UDP_POSTED_MAX`].
    /// Counts it as posted. The caller sends the post before it lets the lock go, so that a
    /// change to the socket cannot come between.
    pub fn post(
        &mut self,
        dst: Option<SocketAddr>,
        segment: Option<u16>,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        let known = self
            .tx
            .known
            .iter()
            .any(|&(d, s, max)| d == dst && s == segment && data.len() <= max);
        let room = self.tx.posted + charge(data.len()) <= UDP_POSTED_MAX;
        if !known || !room || self.error.is_some() || self.stopped || self.expired {
            return None;
        }
        self.tx.posted += charge(data.len());
        Some(self.buffer(data))
    }

    /// What a send that waits for its verdict records first, for [`UdpShared::sent`].
    pub fn generation(&self) -> u64 {
        self.tx.generation
    }

    /// The verdict on a datagram whose sender waited for it (its error is the sender's
    /// answer): a success vouches for later ones to `dst` no larger, unless the socket
    /// changed since the send was asked for (at `generation`).
    pub fn sent(
        &mut self,
        dst: Option<SocketAddr>,
        segment: Option<u16>,
        len: usize,
        ok: bool,
        generation: u64,
    ) {
        if !ok {
            self.forget_destinations();
            return;
        }
        if generation != self.tx.generation {
            return;
        }
        let known = &mut self.tx.known;
        let max = match known.iter().position(|&(d, s, _)| d == dst && s == segment) {
            Some(i) => known.remove(i).2.max(len),
            None => len,
        };
        if known.len() >= KNOWN_MAX {
            known.remove(0);
        }
        known.push((dst, segment, max));
    }

    /// The verdict on a posted datagram of `len` bytes, whose buffer comes back: true if its
    /// error is now the socket's pending one (then wake its waiters).
    pub fn sent_posted(&mut self, len: usize, result: &io::Result<usize>, buf: Vec<u8>) -> bool {
        self.tx.posted -= charge(len);
        self.recycle(buf);
        let Err(e) = result else {
            return false;
        };
        self.forget_destinations();
        if self.error.is_some() {
            return false;
        }
        self.error = e.raw_os_error();
        self.error.is_some()
    }

    /// A post that never reached the stack thread (it has stopped).
    pub fn unpost(&mut self, len: usize) {
        self.tx.posted -= charge(len);
    }

    /// Something changed on the socket (its peer, an option): the next send to any
    /// destination waits for the stack thread's verdict, and so do those asked for before.
    pub fn forget_destinations(&mut self) {
        self.tx.known.clear();
        self.tx.generation += 1;
    }
}

impl UdpSocket {
    /// A socket on `local`, connected to `remote` if given, with nothing received.
    fn new(local: SocketAddr, remote: Option<SocketAddr>, flow: Option<Flow>) -> UdpSocket {
        let sock = UdpSocket {
            v6: local.is_ipv6(),
            v6only: false,
            local,
            remote,
            io: UdpIo::default(),
            pmtud: Pmtud::Want,
            broadcast: false,
            ttl: None,
            flow,
        };
        sock.share_state();
        sock
    }

    /// Tells the handles the socket's two ends, as it shows them, and its options.
    fn share_state(&self) {
        let mut io = lock_udp(&self.io);
        io.local = Some(self.present(self.local));
        io.peer = self.remote.map(|r| self.present(r));
        io.only_v6 = self.v6.then_some(self.v6only);
    }

    /// Takes IPv4 datagrams too: an IPv6 socket on `[::]` without `IPV6_V6ONLY`.
    fn dual(&self) -> bool {
        self.v6 && !self.v6only && self.local.ip().is_unspecified()
    }

    /// `addr` (canonical) as this socket's family shows it.
    fn present(&self, addr: SocketAddr) -> SocketAddr {
        crate::wire::presented(addr, self.v6)
    }
}

/// The sockets on one port: at most one per family, and an IPv6 one on `[::]` alone.
#[derive(Default, Clone, Copy)]
struct Binding {
    v4: Option<SocketId>,
    v6: Option<SocketId>,
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
    ports: HashMap<u16, Binding>,
    ids: IdSource,
    /// Intercepted flows by (destination, client).
    flows: HashMap<(SocketAddr, SocketAddr), SocketId>,
    /// When each flow's verdict or idle timeout is next due; checked, not trusted: a flow
    /// active since is filed again.
    flow_timers: BTreeSet<(Instant, SocketId)>,
    /// The stack is shutting down: sends fail, and a receive with nothing queued fails instead
    /// of waiting, so no caller waits for a datagram that cannot come.
    stopped: bool,
}

impl Default for UdpTable {
    fn default() -> UdpTable {
        UdpTable {
            sockets: HashMap::new(),
            ports: HashMap::new(),
            ids: IdSource::udp(),
            flows: HashMap::new(),
            flow_timers: BTreeSet::new(),
            stopped: false,
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
            if let (local, Some(remote)) = (sock.local, sock.remote) {
                if self.flows.get(&(local, remote)) == Some(&id) {
                    self.flows.remove(&(local, remote));
                }
            }
        }
    }

    /// The socket that takes a datagram to `port` of family `v6`: the IPv6 one for IPv6, the
    /// IPv4 one or else a dual-stack IPv6 one for IPv4.
    fn lookup(&self, port: u16, v6: bool) -> Option<SocketId> {
        let b = self.ports.get(&port)?;
        if v6 {
            return b.v6;
        }
        b.v4.or_else(|| {
            b.v6.filter(|id| self.sockets.get(id).is_some_and(UdpSocket::dual))
        })
    }
}

/// What a queued datagram costs beyond its data: its queue entry and the allocation's own
/// header. A receive queue charges it too, as Linux charges an skb's truesize, so that a flood
/// of empty datagrams is bounded like any other.
const DATAGRAM_OVERHEAD: usize = std::mem::size_of::<(SocketAddr, Vec<u8>)>() + 16;

/// A UDP header and `data` from `src` port `src_port` to `dst`, the checksum computed under
/// the family's pseudo-header (a zero sum sent as all ones, RFC 768).
fn udp_segment(src: IpAddr, dst: SocketAddr, src_port: u16, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut header = UdpHeader {
        source_port: src_port,
        destination_port: dst.port(),
        length: (UdpHeader::LEN + data.len()) as u16,
        checksum: 0,
    };
    header.checksum = match (src, dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            header.calc_checksum_ipv4_raw(s.octets(), d.octets(), data)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            header.calc_checksum_ipv6_raw(s.octets(), d.octets(), data)
        }
        _ => return Err(os_err(libc::EAFNOSUPPORT)),
    }
    .map_err(|_| os_err(libc::EMSGSIZE))?;
    let mut segment = Vec::with_capacity(UdpHeader::LEN + data.len());
    segment.extend_from_slice(&header.to_bytes());
    segment.extend_from_slice(data);
    Ok(segment)
}

/// `headroom` bytes for the frame's headers, then a UDP header and `data`, whole, from `src`
/// port `src_port` to `dst`: a super-datagram to be cut into datagrams, its checksum field
/// holding the partial pseudo-header sum over its whole length, for the device to complete
/// on each piece (see [`crate::wire::gso`]). The IP layer writes its headers in place.
fn udp_super_datagram(
    src: IpAddr,
    dst: SocketAddr,
    src_port: u16,
    data: &[u8],
    headroom: usize,
) -> Vec<u8> {
    let len = UdpHeader::LEN + data.len();
    let header = UdpHeader {
        source_port: src_port,
        destination_port: dst.port(),
        length: len as u16,
        checksum: 0,
    };
    let mut out = Vec::with_capacity(headroom + len);
    out.resize(headroom, 0);
    out.extend_from_slice(&header.to_bytes());
    let sum = headroom + gso::UDP_CHECKSUM_OFFSET;
    out[sum..sum + 2].copy_from_slice(&gso::pseudo_header_partial_for(
        IpNumber::UDP,
        src,
        dst.ip(),
        len,
    ));
    out.extend_from_slice(data);
    out
}

/// The segment size a send of `len` bytes is cut at, `None` when it goes as one datagram
/// (no segment, a zero one, or no more data than one), after Linux's `udp_send_skb` checks,
/// in its order: a datagram that with its `headers` would not fit `mtu` is `EMSGSIZE`, since
/// none of a segmented send's datagrams is fragmented; more than [`gso::UDP_MAX_SEGMENTS`]
/// datagrams is `EINVAL`. A zero segment, as `UDP_SEGMENT` 0, turns segmentation off.
fn check_segment(
    segment: Option<u16>,
    len: usize,
    headers: usize,
    mtu: usize,
) -> io::Result<Option<u16>> {
    let Some(size) = segment.map(usize::from).filter(|&s| s > 0) else {
        return Ok(None);
    };
    if headers + len.min(size) > mtu {
        return Err(os_err(libc::EMSGSIZE));
    }
    if len > size * gso::UDP_MAX_SEGMENTS {
        return Err(os_err(libc::EINVAL));
    }
    Ok(segment.filter(|_| len > size))
}

/// Why no socket takes a datagram ([`Interface::udp_taker`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Untaken {
    /// No socket has its port.
    NoPort,
    /// The socket with its port is connected to another peer or bound to another address.
    Filtered,
}

/// Whether `a`, a connected peer, is `b`, a datagram's end: the same address and port. An
/// IPv6 peer's scope and flow label, kept as `connect` was given them, are not compared
/// (the datagram's end carries neither).
fn same_peer(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

/// How many datagrams a send of `len` bytes cut at `segment` makes.
fn datagrams(len: usize, segment: Option<u16>) -> u64 {
    segment.map_or(1, |s| len.div_ceil(usize::from(s).max(1)).max(1)) as u64
}

/// Copies a datagram into `buf`; the excess of one larger than `buf` is discarded. The
/// bytes copied.
pub(crate) fn copy_out(data: &[u8], buf: &mut [u8]) -> usize {
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    n
}

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
            // What a port unreachable quotes: the IP header and the UDP header.
            let quote = [rx.header, &segment[..UdpHeader::LEN]];
            let data = &segment[UdpHeader::LEN..];
            if !self.udp_flow_input(now, from.into(), to.into(), quote, data) {
                self.icmp_send_unreachable(now, rx, DestUnreachableHeader::Port);
            }
            return;
        }
        let to = SocketAddr::V4(SocketAddrV4::new(rx.dst, header.destination_port));
        // A datagram for another queue's socket goes on to it.
        let taker = self.udp_taker(from.into(), to);
        if taker.is_err() && self.queued() && self.pass_on_datagram(rx) {
            return;
        }
        if !self.udp_deliver(taker, SocketAddr::V4(from), &segment[UdpHeader::LEN..]) {
            self.icmp_send_unreachable(now, rx, DestUnreachableHeader::Port);
        }
    }

    /// A UDP datagram over IPv6 (`segment`: header and data); false if no socket takes it
    /// ([`Interface::udp_taker`]), or its intercepted flow was refused (the caller answers
    /// port unreachable). Its checksum is mandatory (RFC 8200 §8.1).
    pub(super) fn udp6_input(
        &mut self,
        now: Instant,
        rx: &super::ipv6::Rx6<'_>,
        segment: &[u8],
    ) -> bool {
        let (src, dst) = (rx.src, rx.dst);
        let Ok((header, _)) = UdpHeader::from_slice(segment) else {
            self.stats.udp_rx_malformed += 1;
            return true;
        };
        let len = usize::from(header.length);
        if len < UdpHeader::LEN || len > segment.len() {
            self.stats.udp_rx_malformed += 1;
            return true;
        }
        // Where the UDP header starts in the packet, which ends with the segment.
        let udp_at = rx.packet.len() - segment.len();
        let segment = &segment[..len];
        if header.checksum == 0
            || (!rx.csum_verified && !crate::wire::ipv6::checksum_ok(src, dst, 17, segment))
        {
            self.stats.udp_rx_bad_checksum += 1;
            return true;
        }
        let from = SocketAddr::V6(SocketAddrV6::new(src, header.source_port, 0, 0));
        let to = SocketAddr::V6(SocketAddrV6::new(dst, header.destination_port, 0, 0));
        if self.intercepts6(dst) {
            // What a port unreachable quotes: the packet up to the end of the UDP header, at
            // most what an ICMPv6 error carries (RFC 4443 §2.4 (c)).
            let end = (udp_at + UdpHeader::LEN).min(MAX_ICMP6_QUOTE);
            let quote = [&rx.packet[..end], &[][..]];
            return self.udp_flow_input(now, from, to, quote, &segment[UdpHeader::LEN..]);
        }
        let taker = self.udp_taker(from, to);
        self.udp_deliver(taker, from, &segment[UdpHeader::LEN..])
    }

    /// The socket that takes a datagram from `from` to `to`: the one with its port, unless
    /// it is connected to another peer or bound to another address, which Linux's lookup
    /// scores out (`compute_score`); else why none takes it.
    fn udp_taker(&self, from: SocketAddr, to: SocketAddr) -> Result<SocketId, Untaken> {
        let id = self
            .udp
            .lookup(to.port(), to.is_ipv6())
            .ok_or(Untaken::NoPort)?;
        let sock = self.udp.sockets.get(&id).ok_or(Untaken::NoPort)?;
        let wrong_peer = sock.remote.is_some_and(|r| !same_peer(r, from));
        let wrong_addr = !sock.local.ip().is_unspecified() && sock.local.ip() != to.ip();
        if wrong_peer || wrong_addr {
            return Err(Untaken::Filtered);
        }
        Ok(id)
    }

    /// Queues `data` from `from` on `taker`, the socket that takes it
    /// ([`Interface::udp_taker`]); false if none does (counted), for the caller to answer
    /// port unreachable as Linux does.
    fn udp_deliver(
        &mut self,
        taker: Result<SocketId, Untaken>,
        from: SocketAddr,
        data: &[u8],
    ) -> bool {
        let id = match taker {
            Ok(id) => id,
            Err(Untaken::Filtered) => {
                self.stats.udp_rx_filtered += 1;
                return false;
            }
            Err(Untaken::NoPort) => {
                self.stats.udp_rx_no_port += 1;
                return false;
            }
        };
        let limit = self.cfg.udp_rcvbuf;
        let Some(sock) = self.udp.sockets.get_mut(&id) else {
            return true;
        };
        // Like Linux, a datagram is refused only once the buffer is already over its limit.
        let shown = sock.present(from);
        let Some(was_empty) = lock_udp(&sock.io).push(shown, data, limit) else {
            self.stats.udp_rx_buffer_full += 1;
            return true;
        };
        self.stats.udp_rx_datagrams += 1;
        if was_empty {
            self.events.push_back(Event::Ready(id));
        }
        true
    }

    /// Whether a socket here takes datagrams from `remote` to `local`, which an ICMP error
    /// quoting one sent the other way is about.
    pub(super) fn udp_takes(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.udp_taker(remote, local).is_ok()
    }

    /// Records an ICMP-reported error on the connected socket it concerns.
    pub(super) fn udp_error(&mut self, local_port: u16, remote: SocketAddr, errno: i32) -> bool {
        let Some(id) = self.udp.lookup(local_port, remote.is_ipv6()) else {
            return false;
        };
        let Some(sock) = self.udp.sockets.get_mut(&id) else {
            return false;
        };
        if !sock.remote.is_some_and(|r| same_peer(r, remote)) {
            return false;
        }
        lock_udp(&sock.io).error = Some(errno);
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
            let remote = SocketAddr::V4(SocketAddrV4::new(dg.dst, h.destination_port));
            self.udp_error(h.source_port, remote, libc::EHOSTUNREACH);
        }
    }

    /// Opens a UDP socket on `addr` (port 0 picks an ephemeral port): IPv4 on our address or
    /// `0.0.0.0`; IPv6 on one of our addresses or `[::]` (dual-stack), when IPv6 is on.
    pub fn udp_bind(&mut self, addr: SocketAddr) -> io::Result<SocketId> {
        let ours = match addr.ip() {
            IpAddr::V4(ip) => ip.is_unspecified() || ip == self.cfg.ip,
            IpAddr::V6(ip) => {
                let Some(ip6) = self.ip6.as_ref() else {
                    return Err(os_err(libc::EAFNOSUPPORT));
                };
                ip.is_unspecified()
                    || ip6
                        .addrs()
                        .iter()
                        .any(|a| a.addr == ip && a.state != super::AddrState::Duplicate)
            }
        };
        if !ours {
            return Err(os_err(libc::EADDRNOTAVAIL));
        }
        let dual = addr.is_ipv6() && addr.ip().is_unspecified();
        let port = if addr.port() == 0 {
            self.ephemeral_port()?
        } else {
            addr.port()
        };
        let b = self.udp.ports.get(&port).copied().unwrap_or_default();
        let dual_v6 =
            b.v6.and_then(|id| self.udp.sockets.get(&id))
                .is_some_and(UdpSocket::dual);
        let taken = if addr.is_ipv6() {
            b.v6.is_some() || (dual && b.v4.is_some())
        } else {
            b.v4.is_some() || dual_v6
        };
        if taken {
            return Err(os_err(libc::EADDRINUSE));
        }
        let id = self.udp.ids.next_id();
        let slot = self.udp.ports.entry(port).or_default();
        if addr.is_ipv6() {
            slot.v6 = Some(id);
        } else {
            slot.v4 = Some(id);
        }
        let mut local = addr;
        local.set_port(port);
        let sock = UdpSocket::new(local, None, None);
        lock_udp(&sock.io).stopped = self.udp.stopped;
        self.udp.sockets.insert(id, sock);
        Ok(id)
    }

    fn ephemeral_port(&mut self) -> io::Result<u16> {
        let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        let start = self.rng.random_range(0..span);
        (0..span)
            .map(|i| EPHEMERAL.start() + ((start + i) % span) as u16)
            .find(|&p| {
                !self.udp.ports.contains_key(&p)
                    && crate::config::queue_owns_port(self.cfg.queue, self.cfg.queues, p)
            })
            .ok_or_else(|| os_err(libc::EADDRINUSE))
    }

    /// Fixes the peer: `send` goes there and only its datagrams are received. An unbound
    /// local address becomes the one its datagrams will leave from.
    pub fn udp_connect(&mut self, id: SocketId, remote: SocketAddr) -> io::Result<()> {
        let remote = crate::wire::canonical(remote);
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(os_err(libc::EINVAL));
        }
        let sock = self.udp.get(id)?;
        let (v6, local) = (sock.v6, sock.local);
        let src = self.udp_source(v6, local, remote.ip())?;
        let sock = self.udp.get(id)?;
        sock.remote = Some(remote);
        // A dual-stack socket connected to an IPv4 peer keeps `[::]` as its bound address.
        if sock.local.ip().is_unspecified() && sock.local.is_ipv4() == remote.is_ipv4() {
            sock.local.set_ip(src);
        }
        sock.share_state();
        Ok(())
    }

    /// The source address of a datagram to `dst` from a socket of family `v6` bound to
    /// `local`: the bound address, or ours for `dst`'s family. `ENETUNREACH` for an IPv4
    /// destination from an IPv6-only socket, `EAFNOSUPPORT` for an IPv6 one from an IPv4
    /// socket, `EADDRNOTAVAIL` with no usable IPv6 address.
    fn udp_source(&self, v6: bool, local: SocketAddr, dst: IpAddr) -> io::Result<IpAddr> {
        match (dst, local.ip()) {
            (IpAddr::V4(_), IpAddr::V4(ip)) if !ip.is_unspecified() => Ok(IpAddr::V4(ip)),
            (IpAddr::V4(_), IpAddr::V4(_)) => Ok(IpAddr::V4(self.cfg.ip)),
            (IpAddr::V4(_), ip) if v6 && ip.is_unspecified() => Ok(IpAddr::V4(self.cfg.ip)),
            (IpAddr::V4(_), _) => Err(os_err(libc::ENETUNREACH)),
            (IpAddr::V6(_), IpAddr::V4(_)) => Err(os_err(libc::EAFNOSUPPORT)),
            (IpAddr::V6(_), IpAddr::V6(ip)) if !ip.is_unspecified() => Ok(IpAddr::V6(ip)),
            (IpAddr::V6(dst), _) => self
                .ip6
                .as_ref()
                .and_then(|s| s.source_for(dst))
                .map(IpAddr::V6)
                .ok_or_else(|| os_err(libc::EADDRNOTAVAIL)),
        }
    }

    /// Sends one datagram to `dst`, or to the connected peer when `dst` is `None`.
    pub fn udp_send(
        &mut self,
        now: Instant,
        id: SocketId,
        data: &[u8],
        dst: Option<SocketAddr>,
    ) -> io::Result<usize> {
        self.udp_send_segments(now, id, data, dst, None)
    }

    /// [`Interface::udp_send`], `data` cut into datagrams of `segment` bytes each (the last
    /// shorter), as Linux's `UDP_SEGMENT` cuts a send: they leave as one super-datagram
    /// that the device cuts (the kernel's USO on a tap or tun), or that is cut in software.
    /// `EMSGSIZE` for a datagram that would not fit the path MTU (over IPv4 the device's: the
    /// stack keeps no IPv4 path MTU for UDP), then `EINVAL` for more than
    /// [`gso::UDP_MAX_SEGMENTS`] datagrams, as Linux checks; `None`, a zero segment, or data
    /// no longer than one segment, sends one datagram.
    pub fn udp_send_segments(
        &mut self,
        now: Instant,
        id: SocketId,
        data: &[u8],
        dst: Option<SocketAddr>,
        segment: Option<u16>,
    ) -> io::Result<usize> {
        if self.udp.stopped {
            return Err(crate::tcp::shared::stopped());
        }
        let sock = self.udp.get(id)?;
        if let Some(errno) = lock_udp(&sock.io).error.take() {
            return Err(os_err(errno));
        }
        if let Some(flow) = sock.flow.as_mut() {
            if flow.expired {
                return Err(os_err(libc::ETIMEDOUT));
            }
            flow.last = now;
        }
        let dst = dst
            .map(crate::wire::canonical)
            .or(sock.remote)
            .ok_or_else(|| os_err(libc::EDESTADDRREQ))?;
        if dst.port() == 0 {
            return Err(os_err(libc::EINVAL));
        }
        let (src_port, pmtud, broadcast) = (sock.local.port(), sock.pmtud, sock.broadcast);
        let sock_ttl = sock.ttl;
        let (v6, local) = (sock.v6, sock.local);
        let (our_ip, dst) = match (self.udp_source(v6, local, dst.ip())?, dst) {
            (IpAddr::V4(ip), SocketAddr::V4(dst)) => (ip, dst),
            (IpAddr::V6(src), SocketAddr::V6(dst)) => {
                return self.udp6_send(now, src, dst, src_port, sock_ttl, data, segment)
            }
            _ => return Err(os_err(libc::EAFNOSUPPORT)),
        };
        if data.len() > MAX_UDP_PAYLOAD {
            return Err(os_err(libc::EMSGSIZE));
        }
        if self.cfg.is_broadcast(*dst.ip()) && !broadcast {
            return Err(os_err(libc::EACCES));
        }
        let headers = Ipv4Header::MIN_LEN + UdpHeader::LEN;
        let segment = check_segment(segment, data.len(), headers, self.cfg.mtu)?;
        let (src, to) = (IpAddr::V4(our_ip), SocketAddr::V4(dst));
        let (payload, headroom) = match segment {
            Some(_) => (
                udp_super_datagram(src, to, src_port, data, FRAME_HEADROOM),
                FRAME_HEADROOM,
            ),
            None => (udp_segment(src, to, src_port, data)?, 0),
        };
        self.send_datagram(
            now,
            Datagram {
                src: our_ip,
                dst: *dst.ip(),
                proto: IpNumber::UDP,
                pmtud,
                payload,
                headroom,
                tso_mss: segment,
                ttl: sock_ttl,
                dscp: 0,
                ecn: 0,
                tail: None,
            },
        )?;
        self.stats.udp_tx_datagrams += datagrams(data.len(), segment);
        Ok(data.len())
    }

    /// Sends one datagram over IPv6, its checksum always computed (RFC 8200 §8.1); one over
    /// the link MTU leaves in fragments. With `segment`, a super-datagram (see
    /// [`Interface::udp_send_segments`]).
    #[allow(clippy::too_many_arguments)]
    fn udp6_send(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: SocketAddrV6,
        src_port: u16,
        hop_limit: Option<u8>,
        data: &[u8],
        segment: Option<u16>,
    ) -> io::Result<usize> {
        if data.len() > MAX_UDP6_PAYLOAD {
            return Err(os_err(libc::EMSGSIZE));
        }
        let hop_limit = hop_limit.unwrap_or_else(|| self.hop_limit6());
        let (from, to) = (IpAddr::V6(src), SocketAddr::V6(dst));
        let mtu = self
            .ip6
            .as_ref()
            .map_or(self.cfg.mtu, |s| s.path_mtu(now, *dst.ip(), self.cfg.mtu));
        let headers = Ipv6Header::LEN + UdpHeader::LEN;
        let segment = check_segment(segment, data.len(), headers, mtu)?;
        if segment.is_none() {
            let payload = udp_segment(from, to, src_port, data)?;
            self.send_ipv6(now, src, *dst.ip(), 17, hop_limit, &payload);
            self.stats.udp_tx_datagrams += 1;
            return Ok(data.len());
        }
        let frame = udp_super_datagram(from, to, src_port, data, FRAME_HEADROOM_V6);
        let header = Ipv6Header {
            next_header: IpNumber::UDP,
            hop_limit,
            source: src.octets(),
            destination: dst.ip().octets(),
            ..Default::default()
        };
        self.send_ipv6_in_place(now, header, frame, segment, None);
        self.stats.udp_tx_datagrams += datagrams(data.len(), segment);
        Ok(data.len())
    }

    /// The stack is shutting down: from now on sends fail and a receive finds what is queued,
    /// then fails (`NotConnected`), never waits.
    pub fn udp_stop(&mut self) {
        self.udp.stopped = true;
        for sock in self.udp.sockets.values() {
            lock_udp(&sock.io).stopped = true;
        }
    }

    /// A path MTU fell: a segmented send vouched for may no longer fit, so every socket's next
    /// send waits for its verdict again.
    pub(super) fn udp_path_mtu_fell(&mut self) {
        for sock in self.udp.sockets.values() {
            lock_udp(&sock.io).forget_destinations();
        }
    }

    /// A socket's shared receive state, for its handles.
    pub fn udp_io(&self, id: SocketId) -> io::Result<UdpIo> {
        self.udp
            .sockets
            .get(&id)
            .map(|s| s.io.clone())
            .ok_or_else(|| os_err(libc::EBADF))
    }

    /// The next datagram and its sender, a pending error, or `None` when there is nothing.
    pub fn udp_recv(&mut self, id: SocketId) -> Option<io::Result<(Vec<u8>, SocketAddr)>> {
        match self.udp.get(id) {
            Ok(s) => lock_udp(&s.io).recv(),
            Err(e) => Some(Err(e)),
        }
    }

    /// Sends a datagram a handle posted without waiting ([`UdpShared::post`]) and leaves the
    /// verdict with the socket: its buffer back for reuse, an error pending.
    pub fn udp_send_posted(
        &mut self,
        now: Instant,
        id: SocketId,
        data: Vec<u8>,
        dst: Option<SocketAddr>,
        segment: Option<u16>,
    ) {
        let result = self.udp_send_segments(now, id, &data, dst, segment);
        let Ok(sock) = self.udp.get(id) else {
            return;
        };
        if lock_udp(&sock.io).sent_posted(data.len(), &result, data) {
            self.events.push_back(Event::Ready(id));
        }
    }

    /// The address the socket is bound to.
    pub fn udp_local_addr(&mut self, id: SocketId) -> io::Result<SocketAddr> {
        let sock = self.udp.get(id)?;
        Ok(sock.present(sock.local))
    }

    /// The connected peer; `ENOTCONN` if the socket is not connected.
    pub fn udp_peer_addr(&mut self, id: SocketId) -> io::Result<SocketAddr> {
        let sock = self.udp.get(id)?;
        let remote = sock.remote.ok_or_else(|| os_err(libc::ENOTCONN))?;
        Ok(sock.present(remote))
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

    /// `IPV6_V6ONLY` of an IPv6 socket: on, it takes IPv6 only and leaves the port's IPv4 side
    /// free; off (the default), a socket on `[::]` takes IPv4 too, which fails with
    /// `EADDRINUSE` if an IPv4 socket holds the port. `EINVAL` on an IPv4 socket.
    pub fn udp_set_only_v6(&mut self, id: SocketId, on: bool) -> io::Result<()> {
        let sock = self.udp.get(id)?;
        if !sock.v6 {
            return Err(os_err(libc::EINVAL));
        }
        let port = sock.local.port();
        let v4_taken = self.udp.ports.get(&port).is_some_and(|b| b.v4.is_some());
        let sock = self.udp.get(id)?;
        if !on && sock.local.ip().is_unspecified() && v4_taken {
            return Err(os_err(libc::EADDRINUSE));
        }
        sock.v6only = on;
        sock.share_state();
        Ok(())
    }

    /// Whether an IPv6 socket takes IPv6 only.
    pub fn udp_only_v6(&mut self, id: SocketId) -> io::Result<bool> {
        let sock = self.udp.get(id)?;
        if !sock.v6 {
            return Err(os_err(libc::EINVAL));
        }
        Ok(sock.v6only)
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
                let port = sock.local.port();
                if let Some(b) = self.udp.ports.get_mut(&port) {
                    if b.v4 == Some(id) {
                        b.v4 = None;
                    }
                    if b.v6 == Some(id) {
                        b.v6 = None;
                    }
                    if b.v4.is_none() && b.v6.is_none() {
                        self.udp.ports.remove(&port);
                    }
                }
            }
        }
    }

    /// A datagram to an intercepted address: to its flow's socket, or the first of a new
    /// flow, offered to the application. `quote`, its two parts joined, is what a port
    /// unreachable about it quotes (its IP headers and UDP header), kept by a new flow. False
    /// if the flow was refused: the caller answers port unreachable.
    fn udp_flow_input(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        quote: [&[u8]; 2],
        data: &[u8],
    ) -> bool {
        let Some(cfg) = self.cfg.intercept else {
            return true;
        };
        let id = match self.udp.flows.get(&(to, from)) {
            Some(&id) => id,
            None => {
                if self.udp.flows.len() >= cfg.max_udp_flows {
                    self.stats.icpt_udp_over_limit += 1;
                    return true;
                }
                let id = self.udp.ids.next_id();
                let flow = Flow {
                    verdict: FlowVerdict::Pending,
                    last: now,
                    expired: false,
                    quote: quote.concat(),
                };
                let sock = UdpSocket::new(to, Some(from), Some(flow));
                let io = sock.io.clone();
                self.udp.sockets.insert(id, sock);
                self.udp.flows.insert((to, from), id);
                let due = now + cfg.decision_timeout.min(cfg.udp_timeout);
                self.udp.flow_timers.insert((due, id));
                self.stats.icpt_udp_offered += 1;
                self.publish_offers(Some(super::UdpOffer {
                    id,
                    io,
                    local: to,
                    remote: from,
                }));
                id
            }
        };
        let limit = self.cfg.udp_rcvbuf;
        let Some(sock) = self.udp.sockets.get_mut(&id) else {
            return true;
        };
        let Some(flow) = sock.flow.as_mut() else {
            return true;
        };
        flow.last = now;
        match flow.verdict {
            FlowVerdict::Refused => {
                self.stats.icpt_udp_dropped += 1;
                return false;
            }
            FlowVerdict::Ignored => {
                self.stats.icpt_udp_dropped += 1;
                return true;
            }
            FlowVerdict::Pending | FlowVerdict::Open => {}
        }
        let Some(was_empty) = lock_udp(&sock.io).push(from, data, limit) else {
            self.stats.udp_rx_buffer_full += 1;
            return true;
        };
        self.stats.udp_rx_datagrams += 1;
        if was_empty {
            self.events.push_back(Event::Ready(id));
        }
        true
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
            let mut io = lock_udp(&sock.io);
            io.queue.clear();
            io.bytes = 0;
        }
        match decision {
            FlowDecision::Accept => self.stats.icpt_udp_accepted += 1,
            FlowDecision::Ignore => self.stats.icpt_udp_ignored += 1,
            FlowDecision::Refuse => {
                self.stats.icpt_udp_refused += 1;
                self.udp_unreachable_about(now, &quote);
            }
        }
    }

    /// Port unreachable about the datagram `quote` holds the head of (its IP headers and UDP
    /// header), over its family: ICMP (RFC 792) or ICMPv6 (RFC 4443 §3.1).
    fn udp_unreachable_about(&mut self, now: Instant, quote: &[u8]) {
        if let Ok(h) = Ipv4HeaderSlice::from_slice(quote) {
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
        } else if let Ok(h) = etherparse::Ipv6HeaderSlice::from_slice(quote) {
            let rx = super::ipv6::Rx6 {
                src: h.source_addr(),
                dst: h.destination_addr(),
                hop_limit: h.hop_limit(),
                packet: quote,
                multicast: false,
                csum_verified: true,
            };
            let e = super::ipv6::Icmp6Error {
                icmp_type: super::ipv6::TYPE_DEST_UNREACHABLE,
                code: super::ipv6::CODE_PORT_UNREACHABLE,
                param: 0,
                to_multicast: false,
            };
            self.icmp6_error(now, &rx, e);
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
                    if let Some(sock) = self.udp.sockets.get_mut(&id) {
                        lock_udp(&sock.io).expired = true;
                        if let Some(flow) = sock.flow.as_mut() {
                            flow.expired = true;
                        }
                    }
                    self.stats.icpt_udp_expired += 1;
                    self.events.push_back(Event::Ready(id));
                }
                FlowVerdict::Pending => {
                    // No decision came in time. An offer still queued carries the socket's
                    // shared state: a handle that accepts it late finds it expired and empty
                    // (`ETIMEDOUT`), never a queue that nothing will fill or wake.
                    self.stats.icpt_udp_ignored += 1;
                    if let Some(sock) = self.udp.sockets.remove(&id) {
                        let mut io = lock_udp(&sock.io);
                        io.queue.clear();
                        io.bytes = 0;
                        io.expired = true;
                    }
                }
                FlowVerdict::Refused | FlowVerdict::Ignored => {
                    self.udp.sockets.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 0, 0, 2], port)))
    }

    /// A send is posted only to a destination the stack thread has sent to (one of the last
    /// 16), no larger than it sent there, with no error pending and room under the bound;
    /// an error on a posted one is left pending for the next call.
    #[test]
    fn sends_are_posted_only_where_a_verdict_vouches_for_them() {
        let mut s = UdpShared::default();
        assert!(
            s.post(addr(7), None, &[1; 100]).is_none(),
            "nothing known yet"
        );
        s.sent(addr(7), None, 100, true, s.generation());
        let buf = s.post(addr(7), None, &[1; 100]).expect("known, as large");
        assert_eq!(buf, [1; 100]);
        assert!(
            s.post(addr(7), None, &[1; 101]).is_none(),
            "larger than any sent"
        );
        assert!(
            s.post(addr(8), None, &[1; 10]).is_none(),
            "another destination"
        );
        assert!(
            s.post(None, None, &[1; 10]).is_none(),
            "the connected peer is another key"
        );
        assert!(!s.sent_posted(100, &Ok(100), buf));
        assert_eq!(s.tx.posted, 0);
        assert_eq!(s.spare.len(), 1, "the buffer is kept for the next datagram");
        // Sixteen destinations are remembered, the oldest forgotten first.
        for port in 8..24 {
            s.sent(addr(port), None, 10, true, s.generation());
        }
        assert!(s.post(addr(7), None, &[1; 10]).is_none(), "pushed out");
        assert!(s.post(addr(8), None, &[1; 10]).is_some());
        // The bound, datagrams charged as a receive queue charges them: empty ones too.
        let mut t = UdpShared::default();
        t.sent(addr(7), None, 0, true, t.generation());
        let empty: Vec<_> = std::iter::from_fn(|| t.post(addr(7), None, &[])).collect();
        assert_eq!(empty.len(), UDP_POSTED_MAX / charge(0));
        for b in empty {
            t.sent_posted(0, &Ok(0), b);
        }
        assert_eq!(t.tx.posted, 0);
        assert!(t.spare.len() <= SPARE_MAX);
        // A posted send that fails leaves its error for the next call, and the next send
        // waits for a verdict.
        let b = s.post(addr(8), None, &[3; 10]).unwrap();
        assert!(
            s.sent_posted(10, &Err(os_err(libc::EHOSTUNREACH)), b),
            "wake"
        );
        assert!(s.post(addr(8), None, &[3; 10]).is_none());
        let mut out = [0u8; 16];
        let err = s.recv_into(&mut out).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EHOSTUNREACH));
        // A waited send's error is its own answer: not left pending.
        s.sent(addr(8), None, 10, false, s.generation());
        assert!(s.recv_into(&mut out).is_none());
        // A change to the socket: the next send waits, and a verdict asked for before the
        // change vouches for nothing.
        let before = s.generation();
        s.forget_destinations();
        assert!(s.post(addr(8), None, &[4; 10]).is_none());
        s.sent(addr(8), None, 10, true, before);
        assert!(
            s.post(addr(8), None, &[4; 10]).is_none(),
            "a verdict from before the change"
        );
        s.sent(addr(8), None, 10, true, s.generation());
        assert!(s.post(addr(8), None, &[4; 10]).is_some());
        // An expired flow's sends wait, and get their ETIMEDOUT at once.
        s.expired = true;
        assert!(s.post(addr(8), None, &[4; 10]).is_none());
    }

    /// A received datagram is copied out under the lock and its buffer kept for the next.
    #[test]
    fn received_buffers_are_reused() {
        let mut s = UdpShared::default();
        let from = SocketAddr::from(([10, 0, 0, 1], 9));
        s.push(from, &[5; 300], usize::MAX).unwrap();
        let mut out = [0u8; 200];
        assert_eq!(
            s.recv_into(&mut out).unwrap().unwrap(),
            (200, from),
            "truncated"
        );
        assert_eq!(s.spare.len(), 1);
        s.push(from, &[6; 100], usize::MAX).unwrap();
        assert!(s.spare.is_empty(), "reused");
        assert_eq!(s.recv_into(&mut out).unwrap().unwrap(), (100, from));
        assert_eq!(out[..100], [6; 100]);
    }
}
