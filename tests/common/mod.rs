//! Shared test harness: a deterministic simulation of cores over the in-memory link under
//! virtual time, frame builders, and helpers for tests that need a network namespace.
#![allow(dead_code)]

pub mod netns;

use etherparse::{EtherType, Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tapstack::core::{Interface, RxChecksums, SocketId};
use tapstack::phy::{memory_pair, Device, FaultConfig, FaultInjector, PathConfig, PathEmulator};
use tapstack::rxbuf::RxFrame;
use tapstack::time::{earliest, Instant};
use tapstack::wire::MacAddr;
use tapstack::StackConfig;

pub fn config(last_octet: u8, seed: u64) -> StackConfig {
    let mut c = StackConfig::new(Ipv4Addr::new(10, 0, 0, last_octet), 24);
    c.mac = MacAddr([0x02, 0, 0, 0, 0, last_octet]);
    c.seed = seed;
    // Stacks in tests are dropped while their peers may already be gone.
    c.linger = Duration::from_millis(200);
    c
}

/// [`config`] for a bulk sender whose send buffer never runs dry: autotuning off, so it
/// holds its whole size from the start. The tests' application writes once per virtual
/// millisecond, which a buffer of two congestion windows would starve on a zero-delay link
/// (a real one is woken as soon as there is room); tests of loss recovery count exact
/// retransmissions and time on a sender that always has data.
pub fn config_bulk(last_octet: u8, seed: u64) -> StackConfig {
    let mut c = config(last_octet, seed);
    c.tcp.send_autotune = false;
    c
}

/// [`config`] with IPv6 too: `2001:db8::N/64`, in use at once (each test link is the
/// stacks' alone, so DAD has nothing to find).
#[allow(dead_code)]
pub fn config_v6(last_octet: u8, seed: u64) -> StackConfig {
    let mut c = config(last_octet, seed);
    c.ipv6 = Some(tapstack::Ipv6Config {
        addrs: vec![(format!("2001:db8::{last_octet}").parse().unwrap(), 64)],
        dad_transmits: 0,
        ..Default::default()
    });
    c
}

pub struct Node {
    pub iface: Interface,
    pub dev: Box<dyn Device>,
}

/// Decides whether a frame goes on the link.
pub type FrameFilter = Box<dyn FnMut(&[u8]) -> bool>;

/// Two interfaces joined by the in-memory link, the fault injector on `a`'s end (so it acts on
/// frames both ways), driven entirely by virtual time.
pub struct Sim {
    pub now: Instant,
    pub a: Node,
    pub b: Node,
    /// Decides whether a frame `a` sends reaches the link (false drops it).
    pub a_out_filter: Option<FrameFilter>,
    /// Frames each side takes per receive batch (`None`: all that wait). `Some(1)` makes a
    /// receiver decide on an ACK after every segment, as a kernel peer without GRO does.
    pub rx_batch: Option<usize>,
    /// Each frame is read into a buffer of its own that its connection may keep
    /// ([`Interface::receive_frame`]), as the runtime's are, rather than into a scratch one.
    pub frames: bool,
}

impl Sim {
    pub fn new(a: StackConfig, b: StackConfig, faults: FaultConfig) -> Sim {
        Sim::with_path(a, b, faults, None)
    }

    /// Like [`Sim::new`], with each direction crossing a bottleneck of `path` (behind the
    /// faults on `a`'s side), so that the link has a rate, a round trip and a queue.
    pub fn with_path(
        a: StackConfig,
        b: StackConfig,
        faults: FaultConfig,
        path: Option<PathConfig>,
    ) -> Sim {
        let (da, db) = memory_pair(a.mtu).expect("memory link");
        let (mut dev_a, mut dev_b): (Box<dyn Device>, Box<dyn Device>) =
            (Box::new(da), Box::new(db));
        if let Some(path) = path {
            path.validate(a.mtu).expect("path");
            dev_a = Box::new(PathEmulator::new(dev_a, path));
            dev_b = Box::new(PathEmulator::new(dev_b, path));
        }
        if faults.is_active() {
            dev_a = Box::new(FaultInjector::new(dev_a, faults));
        }
        Sim {
            now: Instant::ZERO,
            a: Node {
                iface: Interface::new(a, Instant::ZERO),
                dev: dev_a,
            },
            b: Node {
                iface: Interface::new(b, Instant::ZERO),
                dev: dev_b,
            },
            a_out_filter: None,
            rx_batch: None,
            frames: false,
        }
    }

    pub fn pair() -> Sim {
        Sim::new(config(1, 1), config(2, 2), FaultConfig::default())
    }

    /// Moves frames and runs timers at the current instant until nothing moves.
    pub fn settle(&mut self) {
        let mut buf = vec![0u8; 65536];
        loop {
            let mut moved = 0;
            for (i, node) in [&mut self.a, &mut self.b].into_iter().enumerate() {
                node.iface.poll(self.now);
                node.dev.poll(self.now).expect("device poll");
                for _ in 0..self.rx_batch.unwrap_or(usize::MAX) {
                    if self.frames {
                        let mut frame = RxFrame::new(buf.len());
                        let Some(n) = node.dev.recv(self.now, frame.bytes_mut()).expect("recv")
                        else {
                            break;
                        };
                        let frame = Arc::new(frame);
                        node.iface
                            .receive_frame(self.now, &frame, n, RxChecksums::default());
                    } else {
                        let Some(n) = node.dev.recv(self.now, &mut buf).expect("recv") else {
                            break;
                        };
                        node.iface.receive(self.now, &buf[..n]);
                    }
                    moved += 1;
                }
                while let Some(frame) = node.iface.pop_transmit() {
                    moved += 1;
                    check_frame(&frame, node.iface.config().mtu);
                    if i == 0 {
                        if let Some(filter) = self.a_out_filter.as_mut() {
                            if !filter(&frame) {
                                continue;
                            }
                        }
                    }
                    // A full link drops, as a NIC would.
                    let _ = node.dev.send(self.now, &frame);
                }
            }
            if moved == 0 {
                return;
            }
        }
    }

    /// The next instant anything is scheduled, if any.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.a.iface.poll_at(),
            self.b.iface.poll_at(),
            self.a.dev.poll_at(),
            self.b.dev.poll_at(),
        ]
        .into_iter()
        .fold(None, earliest)
    }

    /// Settles, then jumps from event to event until `until`.
    pub fn run_until(&mut self, until: Instant) {
        self.settle();
        while let Some(t) = self.next_event() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.settle();
        }
        self.now = self.now.max(until);
        self.settle();
    }

    pub fn advance(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }
}

/// `a` connects to a listener on `b` (10.0.0.2) port 80; returns (client on a, accepted conn
/// on b).
pub fn connect(sim: &mut Sim) -> (tapstack::core::SocketId, tapstack::core::SocketId) {
    use std::net::SocketAddrV4;
    let (l, _) = sim
        .b
        .iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16)
        .unwrap();
    let now = sim.now;
    let c = sim
        .a
        .iface
        .tcp_connect(now, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80))
        .unwrap();
    sim.advance(Duration::from_millis(10));
    assert!(matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))));
    let (s, peer) = sim.b.iface.tcp_accept(l).expect("accepted").unwrap();
    assert_eq!(peer, sim.a.iface.tcp_addrs(c).unwrap().0);
    (c, s)
}

/// [`connect`] where the handshake itself may lose a segment: waits out SYN retries.
pub fn connect_despite_loss(sim: &mut Sim) -> (SocketId, SocketId) {
    let l = sim
        .b
        .iface
        .tcp_listen(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
        .unwrap()
        .0;
    let now = sim.now;
    let c = sim
        .a
        .iface
        .tcp_connect(
            now,
            std::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
        )
        .unwrap();
    for _ in 0..600 {
        sim.advance(Duration::from_millis(100));
        if let Some(Ok((s, _))) = sim.b.iface.tcp_accept(l) {
            if matches!(sim.a.iface.tcp_connect_result(c), Some(Ok(()))) {
                return (c, s);
            }
        }
    }
    panic!("no connection within a minute");
}

/// What no stack may send: a frame over the MTU, or TCP that needed IP fragmentation.
fn check_frame(frame: &[u8], mtu: usize) {
    assert!(
        frame.len() <= 14 + mtu,
        "a {}-byte frame on a {mtu}-byte MTU",
        frame.len()
    );
    if frame.len() >= 34 && frame[12..14] == [8, 0] && frame[23] == 6 {
        let frag = u16::from_be_bytes([frame[20], frame[21]]);
        assert_eq!(frag & 0x3fff, 0, "a fragmented TCP segment");
    }
}

/// Ethernet frames carrying one IPv4 datagram, fragmented at `mtu` (payload includes the
/// transport header). Built with etherparse, independently of the stack's own output path.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_frames(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpNumber,
    id: u16,
    payload: &[u8],
    mtu: usize,
) -> Vec<Vec<u8>> {
    let chunk = (mtu - 20) & !7;
    let mut frames = Vec::new();
    let mut off = 0;
    loop {
        let len = (payload.len() - off).min(chunk);
        let mut ip = Ipv4Header::new(len as u16, 64, proto, src.octets(), dst.octets()).unwrap();
        ip.identification = id;
        ip.dont_fragment = false;
        ip.more_fragments = off + len < payload.len();
        ip.fragment_offset = IpFragOffset::try_new((off / 8) as u16).unwrap();
        ip.header_checksum = ip.calc_header_checksum();
        let eth = Ethernet2Header {
            source: src_mac.0,
            destination: dst_mac.0,
            ether_type: EtherType::IPV4,
        };
        let mut f = eth.to_bytes().to_vec();
        f.extend_from_slice(&ip.to_bytes());
        f.extend_from_slice(&payload[off..off + len]);
        frames.push(f);
        off += len;
        if off >= payload.len() {
            return frames;
        }
    }
}

/// A broadcast ARP request from `sender` asking for `target`.
pub fn arp_request(sender_mac: MacAddr, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = etherparse::ArpEthIpv4Packet {
        operation: etherparse::ArpOperation::REQUEST,
        sender_mac: sender_mac.0,
        sender_ipv4: sender.octets(),
        target_mac: [0; 6],
        target_ipv4: target.octets(),
    };
    let mut f = Ethernet2Header {
        source: sender_mac.0,
        destination: MacAddr::BROADCAST.0,
        ether_type: EtherType::ARP,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(&arp.to_bytes());
    f
}

/// An ICMP echo request message (header and data) with a correct checksum.
pub fn echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let t = etherparse::Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id, seq });
    let h = etherparse::Icmpv4Header::with_checksum(t, data);
    let mut m = h.to_bytes().to_vec();
    m.extend_from_slice(data);
    m
}

/// A UDP segment (header and data) with a correct checksum.
pub fn udp_segment(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber::UDP, src.octets(), dst.octets()).unwrap();
    ip.set_payload_len(8 + data.len()).unwrap();
    let h = etherparse::UdpHeader::with_ipv4_checksum(sport, dport, &ip, data).unwrap();
    let mut m = h.to_bytes().to_vec();
    m.extend_from_slice(data);
    m
}

/// Deterministic test data.
/// Moves `data` from `client` on a to `server` on b, the application writing and reading
/// once per virtual millisecond; returns what arrived, and panics (showing both ends) if it
/// takes longer than `limit`.
pub fn transfer(
    sim: &mut Sim,
    client: SocketId,
    server: SocketId,
    data: &[u8],
    limit: Duration,
) -> Vec<u8> {
    transfer_from(sim, client, server, data, 0, limit)
}

/// Like [`transfer`], for a transfer whose first `sent` bytes a has already queued.
pub fn transfer_from(
    sim: &mut Sim,
    client: SocketId,
    server: SocketId,
    data: &[u8],
    mut sent: usize,
    limit: Duration,
) -> Vec<u8> {
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = sim.now + limit;
    while got.len() < data.len() {
        if sim.now >= deadline {
            for (name, iface, id) in [("a", &sim.a.iface, client), ("b", &sim.b.iface, server)] {
                eprintln!("{name}: {:?}", iface.tcp_info(id));
            }
            panic!(
                "transfer stalled at {} of {} bytes at {}",
                got.len(),
                data.len(),
                sim.now
            );
        }
        let now = sim.now;
        while sent < data.len() {
            match sim.a.iface.tcp_send(now, client, &data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        sim.advance(Duration::from_millis(1));
        loop {
            let now = sim.now;
            match sim.b.iface.tcp_recv(now, server, &mut buf) {
                Ok(0) => panic!("unexpected end of stream"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    got
}

pub fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0] ^ salt)
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

/// A TCP stream of either API, for [`exchange`]: cloned for a writer thread, half-closed.
pub trait Duplex: Sized + Send + 'static {
    fn clone_stream(&self) -> Self;
    fn shutdown_write(&self);
}

impl Duplex for std::net::TcpStream {
    fn clone_stream(&self) -> Self {
        self.try_clone().expect("clone")
    }
    fn shutdown_write(&self) {
        self.shutdown(std::net::Shutdown::Write).expect("shutdown");
    }
}

impl Duplex for tapstack::TcpStream {
    fn clone_stream(&self) -> Self {
        self.try_clone().expect("clone")
    }
    fn shutdown_write(&self) {
        self.shutdown(std::net::Shutdown::Write).expect("shutdown");
    }
}

/// Writes `data` on `s` and half-closes it from a second thread, while reading `s` to its
/// end: what was read.
pub fn exchange<S: Duplex>(s: &S, data: Vec<u8>) -> Vec<u8>
where
    for<'a> &'a S: std::io::Read + std::io::Write,
{
    use std::io::{Read, Write};
    let writer = s.clone_stream();
    let w = std::thread::spawn(move || {
        (&writer).write_all(&data).expect("write");
        writer.shutdown_write();
    });
    let mut got = Vec::new();
    (&*s).read_to_end(&mut got).expect("read");
    w.join().expect("writer");
    got
}

/// One cycle of the RFC 864 character generator stream, written out from the RFC (95 lines of
/// 72 printable characters and CRLF, each starting one character further along): what
/// echo-server's chargen must send.
pub fn chargen_cycle() -> Vec<u8> {
    let printable: Vec<u8> = (b' '..=b'~').collect();
    let mut cycle = Vec::new();
    for start in 0..printable.len() {
        cycle.extend((0..72).map(|i| printable[(start + i) % printable.len()]));
        cycle.extend_from_slice(b"\r\n");
    }
    cycle
}

/// Socket calls on an interface, as the tests make them: each goes through
/// [`Interface::with_tcp`], which sends its output.
pub trait TcpCalls {
    fn tcp_listen(
        &mut self,
        addr: std::net::SocketAddrV4,
        backlog: usize,
    ) -> std::io::Result<(SocketId, std::net::SocketAddrV4)>;
    fn tcp_accept(
        &mut self,
        listener: SocketId,
    ) -> Option<std::io::Result<(SocketId, std::net::SocketAddrV4)>>;
    fn tcp_connect(
        &mut self,
        now: Instant,
        remote: std::net::SocketAddrV4,
    ) -> std::io::Result<SocketId>;
    fn tcp_connect_from(
        &mut self,
        now: Instant,
        local_port: Option<u16>,
        remote: std::net::SocketAddrV4,
    ) -> std::io::Result<SocketId>;
    fn tcp_connect_result(&mut self, id: SocketId) -> Option<std::io::Result<()>>;
    fn tcp_send(&mut self, now: Instant, id: SocketId, data: &[u8]) -> std::io::Result<usize>;
    fn tcp_recv(&mut self, now: Instant, id: SocketId, buf: &mut [u8]) -> std::io::Result<usize>;
    fn tcp_shutdown(
        &mut self,
        now: Instant,
        id: SocketId,
        read: bool,
        write: bool,
    ) -> std::io::Result<()>;
    fn tcp_close(&mut self, now: Instant, id: SocketId);
    fn tcp_set_nodelay(&mut self, now: Instant, id: SocketId, on: bool) -> std::io::Result<()>;
    fn tcp_set_keepalive(
        &mut self,
        now: Instant,
        id: SocketId,
        idle: Option<Duration>,
    ) -> std::io::Result<()>;
    fn tcp_state(&self, id: SocketId) -> Option<tapstack::tcp::State>;
    fn tcp_addrs(
        &self,
        id: SocketId,
    ) -> std::io::Result<(std::net::SocketAddrV4, std::net::SocketAddrV4)>;
    fn tcp_info(&self, id: SocketId) -> Option<tapstack::tcp::TcpInfo>;
}

/// The IPv4 address these IPv4 tests expect (an IPv6 one is a test failure).
fn v4(a: std::net::SocketAddr) -> std::net::SocketAddrV4 {
    match a {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("an IPv6 address in an IPv4 test: {other}"),
    }
}

impl TcpCalls for Interface {
    fn tcp_listen(
        &mut self,
        addr: std::net::SocketAddrV4,
        backlog: usize,
    ) -> std::io::Result<(SocketId, std::net::SocketAddrV4)> {
        self.with_tcp(Instant::ZERO, |tcp, _| tcp.listen(addr.into(), backlog))
            .map(|(id, a)| (id, v4(a)))
    }
    fn tcp_accept(
        &mut self,
        listener: SocketId,
    ) -> Option<std::io::Result<(SocketId, std::net::SocketAddrV4)>> {
        self.with_tcp(Instant::ZERO, |tcp, _| tcp.accept(listener))
            .map(|r| r.map(|(id, a)| (id, v4(a))))
    }
    fn tcp_connect(
        &mut self,
        now: Instant,
        remote: std::net::SocketAddrV4,
    ) -> std::io::Result<SocketId> {
        self.tcp_connect_from(now, None, remote)
    }
    fn tcp_connect_from(
        &mut self,
        now: Instant,
        local_port: Option<u16>,
        remote: std::net::SocketAddrV4,
    ) -> std::io::Result<SocketId> {
        self.with_tcp(now, |tcp, st| {
            tcp.connect(now, local_port, remote.into(), st)
        })
    }
    fn tcp_connect_result(&mut self, id: SocketId) -> Option<std::io::Result<()>> {
        self.with_tcp(Instant::ZERO, |tcp, _| tcp.connect_result(id))
    }
    fn tcp_send(&mut self, now: Instant, id: SocketId, data: &[u8]) -> std::io::Result<usize> {
        self.with_tcp(now, |tcp, st| tcp.send(id, now, data, st))
    }
    fn tcp_recv(&mut self, now: Instant, id: SocketId, buf: &mut [u8]) -> std::io::Result<usize> {
        self.with_tcp(now, |tcp, st| tcp.recv(id, now, buf, st))
    }
    fn tcp_shutdown(
        &mut self,
        now: Instant,
        id: SocketId,
        read: bool,
        write: bool,
    ) -> std::io::Result<()> {
        self.with_tcp(now, |tcp, st| tcp.shutdown(id, now, read, write, st))
    }
    fn tcp_close(&mut self, now: Instant, id: SocketId) {
        self.with_tcp(now, |tcp, st| tcp.close(id, now, st))
    }
    fn tcp_set_nodelay(&mut self, now: Instant, id: SocketId, on: bool) -> std::io::Result<()> {
        self.with_tcp(now, |tcp, st| tcp.set_nodelay(id, now, on, st))
    }
    fn tcp_set_keepalive(
        &mut self,
        now: Instant,
        id: SocketId,
        idle: Option<Duration>,
    ) -> std::io::Result<()> {
        self.with_tcp(now, |tcp, _| tcp.set_keepalive(id, now, idle))
    }
    fn tcp_state(&self, id: SocketId) -> Option<tapstack::tcp::State> {
        self.tcp().state(id)
    }
    fn tcp_addrs(
        &self,
        id: SocketId,
    ) -> std::io::Result<(std::net::SocketAddrV4, std::net::SocketAddrV4)> {
        self.tcp().addrs(id).map(|(l, r)| (v4(l), v4(r)))
    }
    fn tcp_info(&self, id: SocketId) -> Option<tapstack::tcp::TcpInfo> {
        self.tcp().info(id)
    }
}
