//! Stack configuration: addresses and the limit of every bounded resource.

use crate::wire::MacAddr;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Everything the core needs to know about itself. Every queue has a limit here, with a sane
/// default close to Linux's.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The interface's Ethernet address (unused on a TUN, which has no link layer).
    pub mac: MacAddr,
    /// The stack's IPv4 address.
    pub ip: Ipv4Addr,
    /// Length of the subnet prefix (0 to 32): `ip/prefix_len` is the on-link subnet.
    pub prefix_len: u8,
    /// Default gateway for destinations off the local subnet; `None` means on-link only.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU of the link (Ethernet payload size).
    pub mtu: usize,
    /// Ethernet with ARP (a TAP) or bare IP (a TUN). [`crate::Stack::new`] takes it from the
    /// device's capabilities.
    pub medium: crate::wire::Medium,
    /// Seeds every random choice in the core: IP IDs, ephemeral ports, and the secret keys of
    /// the ISN function and SYN cookies. [`StackConfig::new`] draws it from the operating
    /// system, so that no one outside can compute our ISNs (RFC 9293 §3.4.1, MUST-9); set it
    /// for reproducible runs (simulations, pcap replay).
    pub seed: u64,
    /// Initial TTL of datagrams we send (Linux: 64).
    pub ttl: u8,
    /// Limits of the ARP cache and of address resolution (RFC 826).
    pub arp: ArpConfig,
    /// Limits of IPv4 fragment reassembly (RFC 791 §3.2).
    pub reassembly: ReassemblyConfig,
    /// Rate limit of the ICMP errors we send.
    pub icmp: IcmpConfig,
    /// Receive buffer of a UDP socket, in bytes of payload (Linux rmem_default: 212992).
    pub udp_rcvbuf: usize,
    /// TCP settings.
    pub tcp: TcpConfig,
    /// How long dropping a `Stack` waits for open connections to deliver their data and FIN
    /// before resetting them.
    pub linger: Duration,
    /// After the stack thread hands readiness to application threads or sends frames, how long
    /// it spins for an answer (a write, a close, the peer's next segment) before it sleeps:
    /// the answer is then served without the sleep and wakeup of the stack thread (Linux's
    /// `net.core.busy_poll`, done by the stack thread). Used only with more than one CPU; zero
    /// turns it off. At most [`MAX_BUSY_POLL`] is used: timers are not served while it spins.
    /// A stack run as a tokio task ([`crate::tokio::spawn_stack`]) yields to the runtime's
    /// other tasks that long instead, looking for an answer after each.
    pub busy_poll: Duration,
    /// Catch-all interception (a tun2socks-style program): `None`, the default, serves only
    /// the stack's own address. With it, every TCP connection and UDP flow to any other
    /// address is offered to the application (see [`crate::socket::Interceptor`]).
    pub intercept: Option<InterceptConfig>,
    /// IPv6 (RFC 8200): `None`, the default, leaves the interface IPv4-only.
    pub ipv6: Option<Ipv6Config>,
    /// Queues of the link the stack runs on (a multi-queue tap or tun): each has a stack
    /// thread of its own (see [`crate::Stack::new_queues`], which sets this and
    /// [`StackConfig::queue`]). 1, the default: one.
    pub queues: usize,
    /// Which of the [`StackConfig::queues`] this stack serves, from 0. Queue 0 alone runs
    /// IPv6 and announces the address (gratuitous ARP).
    pub queue: usize,
    /// Bytes of frames the other queues passed on that a queue may hold before taking them
    /// (each frame charged [`PASSED_FRAME_OVERHEAD`] more); past it, frames for it are dropped
    /// and counted, as the kernel's own queue would drop them. 4 MiB.
    pub passed_backlog: usize,
    /// Where the runtime writes the per-connection trace ([`crate::trace`]); `None`, the
    /// default, writes none. Which connections are traced: all with `tcp.trace`, else those
    /// whose socket asks (`TcpStream::set_trace`).
    pub trace: Option<crate::trace::TraceOutput>,
}

/// IPv6 on the interface: its addresses, and the bounds of Neighbour Discovery (RFC 4861).
#[derive(Clone, Debug)]
pub struct Ipv6Config {
    /// Addresses with their prefix lengths (`--ip6 ADDR/PREFIX`). Each is checked by
    /// Duplicate Address Detection before it is used (RFC 4862 §5.4).
    pub addrs: Vec<(std::net::Ipv6Addr, u8)>,
    /// A link-local address from the MAC, by modified EUI-64 (RFC 4291 §2.5.1), on Ethernet.
    pub link_local: bool,
    /// Neighbour Solicitations DAD sends, `RetransTimer` apart, before an address is used
    /// (`DupAddrDetectTransmits`, RFC 4862 §5.1); 0 uses addresses at once.
    pub dad_transmits: u8,
    /// Neighbour cache entries at most; past it the oldest unused entry is evicted.
    pub max_neighbors: usize,
    /// Bytes of packets held per neighbour while its address resolves (RFC 4861 §7.2.2;
    /// Linux `unres_qlen_bytes`); past it the oldest are dropped and counted.
    pub max_queued_bytes: usize,
    /// Hop limit of the packets we send (RFC 8200 §3; Linux `hop_limit`, 64).
    pub hop_limit: u8,
    /// Router discovery and stateless address autoconfiguration (RFC 4861 §6.3, RFC 4862)
    /// on Ethernet: Router Solicitations at start, default routers, on-link prefixes, the
    /// link MTU and addresses formed from advertised prefixes.
    pub slaac: bool,
}

impl Default for Ipv6Config {
    fn default() -> Self {
        Ipv6Config {
            addrs: Vec::new(),
            link_local: true,
            dad_transmits: 1,
            max_neighbors: 1024,
            max_queued_bytes: 212_992,
            hop_limit: 64,
            slaac: true,
        }
    }
}

/// What the stack does with a SYN to an intercepted destination when the connection cap is
/// reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// Answer with a reset: the client sees "connection refused" at once.
    Reset,
    /// Drop the SYN: the client retries and may find room later.
    Drop,
}

/// What a frame passed on to another queue costs beyond its bytes (its allocation and its
/// place in the channel), charged against [`StackConfig::passed_backlog`].
pub const PASSED_FRAME_OVERHEAD: usize = 256;

/// The longest busy-poll spin the stack thread makes, whatever [`StackConfig::busy_poll`] asks:
/// timers (retransmission, delayed ACKs, timeouts of parked calls) wait while it spins.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(1);

/// Catch-all interception: connections and flows to any address, each offered to the
/// application, which accepts, refuses or drops it. Every queue is bounded, each limit
/// counted when hit. Over IPv4 any unicast address but the stack's own is intercepted; over
/// IPv6 (with [`StackConfig::ipv6`] set, addresses of its own or not) any host's address but
/// the stack's own and link-local ones, which neighbour and router discovery keep.
#[derive(Clone, Copy, Debug)]
pub struct InterceptConfig {
    /// SYNs waiting for the application's decision. Past this a new SYN is dropped (the
    /// client retries) and counted; a retransmitted SYN of one waiting is absorbed.
    pub max_pending: usize,
    /// How long a SYN or a new UDP flow waits for a decision before it is dropped. Long
    /// enough for the application to try its upstream first (a client retries its SYN for
    /// about two minutes).
    pub decision_timeout: Duration,
    /// Intercepted TCP connections at once (any state but TIME-WAIT).
    pub max_connections: usize,
    /// What a SYN past `max_connections` gets.
    pub over_limit: OverLimit,
    /// UDP flows (source, destination) at once; a datagram that would open one more is
    /// dropped and counted.
    pub max_udp_flows: usize,
    /// A UDP flow with no datagram either way for this long ends: its socket's receive fails
    /// with `TimedOut`.
    pub udp_timeout: Duration,
    /// What happens to an ICMP or ICMPv6 echo request to an intercepted address.
    pub echo: EchoMode,
}

/// What happens to an ICMP echo request ("ping") to an intercepted address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EchoMode {
    /// The stack answers at once, as from the address pinged: every address seems up.
    #[default]
    Answer,
    /// Each request is handed to the application
    /// ([`crate::socket::Interceptor::next_echo`]), which replies, answers host unreachable
    /// or drops it: a VPN client pings the real destination first, so the client sees
    /// whether it is up. At most `max_pending` requests wait to be taken; past that they are
    /// dropped and counted.
    Deliver,
    /// Dropped and counted: the client sees a timeout.
    Ignore,
}

impl Default for InterceptConfig {
    fn default() -> Self {
        InterceptConfig {
            max_pending: 1024,
            decision_timeout: Duration::from_secs(30),
            max_connections: 16384,
            over_limit: OverLimit::Reset,
            max_udp_flows: 4096,
            udp_timeout: Duration::from_secs(60),
            echo: EchoMode::Answer,
        }
    }
}

/// ARP (RFC 826) neighbour cache and resolution limits, with Linux-like defaults.
#[derive(Clone, Debug)]
pub struct ArpConfig {
    /// Neighbour entries kept at most (Linux gc_thresh3: 1024).
    pub cache_size: usize,
    /// How long an entry is used before it must be confirmed again.
    pub entry_ttl: Duration,
    /// Age after which a used entry is refreshed with a unicast request while still in use.
    pub refresh_after: Duration,
    /// Minimum interval between requests for one address (RFC 1122 §2.3.2.1: 1 per second).
    pub request_interval: Duration,
    /// Requests sent before an address is declared unreachable.
    pub max_requests: u32,
    /// Datagrams queued per unresolved address.
    pub pending_per_addr: usize,
    /// Bytes queued in total for all unresolved addresses.
    pub pending_bytes: usize,
    /// Addresses being resolved at once.
    pub max_resolving: usize,
}

/// Limits of IPv4 fragment reassembly (RFC 791 §3.2), with Linux's defaults.
#[derive(Clone, Debug)]
pub struct ReassemblyConfig {
    /// Time a datagram may take to complete (Linux ipfrag_time: 30 s).
    pub timeout: Duration,
    /// Memory for all incomplete datagrams (Linux ipfrag_high_thresh: 4 MiB).
    pub max_bytes: usize,
    /// Incomplete datagrams held at once.
    pub max_datagrams: usize,
    /// Fragments accepted for one datagram.
    pub max_fragments: usize,
}

/// Rate limit of the ICMP errors the stack sends (a token bucket), with Linux's defaults.
#[derive(Clone, Debug)]
pub struct IcmpConfig {
    /// ICMP errors per second, token bucket (Linux icmp_msgs_per_sec: 1000).
    pub errors_per_sec: u32,
    /// Burst of the token bucket (Linux icmp_msgs_burst: 50).
    pub error_burst: u32,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            cache_size: 1024,
            entry_ttl: Duration::from_secs(60),
            refresh_after: Duration::from_secs(45),
            request_interval: Duration::from_secs(1),
            max_requests: 3,
            pending_per_addr: 64,
            pending_bytes: 1 << 20,
            max_resolving: 256,
        }
    }
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30),
            max_bytes: 4 << 20,
            max_datagrams: 4096,
            max_fragments: 256,
        }
    }
}

impl Default for IcmpConfig {
    fn default() -> Self {
        IcmpConfig {
            errors_per_sec: 1000,
            error_burst: 50,
        }
    }
}

/// Whether ephemeral port `port` is queue `queue`'s of `queues` sharing one link: they share
/// the ports out by `port % queues`, so that no two pick the same one (one queue: every port).
pub(crate) fn queue_owns_port(queue: usize, queues: usize, port: u16) -> bool {
    queues <= 1 || usize::from(port) % queues == queue
}

impl StackConfig {
    /// Whether this stack runs IPv6: it is configured, and on a link of several queues, this
    /// is the first (see [`StackConfig::queues`]).
    pub fn runs_ipv6(&self) -> bool {
        self.ipv6.is_some() && self.queue == 0
    }

    /// A configuration for `ip/prefix_len` with defaults for everything else.
    pub fn new(ip: Ipv4Addr, prefix_len: u8) -> Self {
        StackConfig {
            mac: MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]),
            ip,
            prefix_len: prefix_len.min(32),
            gateway: None,
            mtu: 1500,
            medium: crate::wire::Medium::Ethernet,
            seed: random_seed(),
            ttl: 64,
            arp: ArpConfig::default(),
            reassembly: ReassemblyConfig::default(),
            icmp: IcmpConfig::default(),
            udp_rcvbuf: 212_992,
            tcp: TcpConfig::default(),
            linger: Duration::from_secs(1),
            busy_poll: Duration::from_micros(50),
            intercept: None,
            ipv6: None,
            queues: 1,
            queue: 0,
            passed_backlog: 4 << 20,
            trace: None,
        }
    }

    /// The subnet mask `prefix_len` gives, as a host-order `u32`.
    pub fn netmask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len))
        }
    }

    /// True if `addr` is on our subnet (reachable without the gateway).
    pub fn is_on_link(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) ^ u32::from(self.ip)) & self.netmask() == 0
    }

    /// The directed broadcast address of our subnet.
    pub fn subnet_broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) | !self.netmask())
    }

    /// Limited or directed broadcast (RFC 1122 §3.2.1.3).
    pub fn is_broadcast(&self, addr: Ipv4Addr) -> bool {
        addr.is_broadcast() || (self.prefix_len < 31 && addr == self.subnet_broadcast())
    }
}

/// A TCP socket's buffer sizes in bytes (`SO_SNDBUF`, `SO_RCVBUF`, not doubled as Linux
/// doubles them): the most a connection holds of data written and not yet acknowledged, and of
/// data received and not yet read. The receive size also sets the window scale a connection
/// asks for in its SYN (RFC 7323 §2.3): the smallest that lets the whole buffer be advertised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffers {
    /// The send buffer: the most it may hold. Unless `send_locked`, it starts at twice the
    /// initial congestion window and grows with the window up to this (Linux's autotuning).
    pub send: usize,
    /// The receive buffer.
    pub recv: usize,
    /// The application set the send size (`SO_SNDBUF`): it holds that much from the start,
    /// without autotuning (Linux's `SOCK_SNDBUF_LOCK`).
    pub send_locked: bool,
}

/// TCP settings, with Linux-like defaults.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Every socket's send buffer unless set otherwise ([`Buffers`]).
    pub send_buffer: usize,
    /// Every socket's receive buffer unless set otherwise ([`Buffers`]).
    pub recv_buffer: usize,
    /// Out-of-order ranges kept per connection; a segment needing more is dropped.
    pub max_ooo_ranges: usize,
    /// Maximum segment lifetime; TIME-WAIT lasts twice this (RFC 9293 §3.4.2).
    pub msl: Duration,
    /// SYN retransmissions before a connect fails: 7, so that a SYN is retransmitted for at
    /// least 3 minutes (RFC 9293 MUST-23: the last at 127 s, failing at 255 s); Linux's
    /// `tcp_syn_retries` of 6 gives up at 127 s.
    pub syn_retries: u32,
    /// Retransmissions of data before the connection is dropped (Linux `tcp_retries2`: 15).
    pub max_retries: u32,
    /// Delayed ACK timeout (RFC 1122 §4.2.3.2: at most 500 ms; Linux 40 ms).
    pub delayed_ack: Duration,
    /// How long an orphaned connection waits in FIN-WAIT-2 (Linux `tcp_fin_timeout`: 60 s).
    pub fin_timeout: Duration,
    /// Half-open connections per listener (the SYN queue); beyond it, SYN cookies.
    pub syn_backlog: usize,
    /// The memory budget of all TCP buffers (Linux's `tcp_mem`): past this many bytes buffers
    /// stop growing, windows offer only what is allocated and out-of-order data is dropped
    /// first.
    pub mem_pressure: usize,
    /// Past this many bytes of TCP buffers no new connection is made (SYNs dropped, connects
    /// failing with `ENOBUFS`), counted.
    pub mem_limit: usize,
    /// Connections in TIME-WAIT at most (Linux's `tcp_max_tw_buckets`); beyond it a connection
    /// that would enter TIME-WAIT sends its last ACK and is forgotten at once, and the
    /// overflow is counted.
    pub max_time_wait: usize,
    /// Keep-alive (off unless a socket enables it): idle time before the first probe, the
    /// interval between probes and how many go unanswered before the connection is dropped
    /// (RFC 1122 §4.2.3.6; Linux's 7200 s, 75 s, 9).
    pub keepalive_idle: Duration,
    /// Keep-alive: interval between unanswered probes (Linux 75 s).
    pub keepalive_interval: Duration,
    /// Keep-alive: unanswered probes before the connection is dropped (Linux 9).
    pub keepalive_probes: u32,
    /// A fixed initial sequence number instead of RFC 6528's, for tests and reproductions
    /// (e.g. a transfer across the 2^32 wrap). Never set it in production.
    pub fixed_iss: Option<u32>,
    /// Congestion control algorithm of every connection (default CUBIC); a socket may choose
    /// its own.
    pub congestion: CongestionAlgorithm,
    /// Pace every connection's output (Linux's fq pacing): at twice cwnd/SRTT in slow start,
    /// 1.2 times after. Off by default; BBR paces whatever this says.
    pub pacing: bool,
    /// Send TCP super-segments of up to 64 KB, whole MSS pieces that the device splits (TSO,
    /// or in software: GSO). Off in the core by default, so that every frame fits the MTU;
    /// the runtime turns it on, since every device takes super-segments.
    pub tso: bool,
    /// Send buffers start at twice the initial congestion window and grow with the window up to
    /// `send_buffer` (Linux's autotuning), so that a peer that takes nothing costs little; on
    /// by default. Off, every connection may hold `send_buffer` from the start. A socket that
    /// sets its size (`SO_SNDBUF`) is not autotuned either.
    pub send_autotune: bool,
    /// Trace every connection ([`crate::tcp::trace`]); off by default. A socket can be traced
    /// on its own (`TcpStream::set_trace`). A [`crate::Stack`] traces only with somewhere to
    /// write ([`StackConfig::trace`]); a bare core keeps the records until
    /// `Interface::take_trace` takes them.
    pub trace: bool,
    /// Explicit Congestion Notification (RFC 3168): whether connections ask for it and
    /// accept it. [`Ecn::Passive`] by default, as Linux's `tcp_ecn = 2`.
    pub ecn: Ecn,
    /// The path's ECN marks are shallow-threshold ones, set as soon as a queue builds
    /// (DCTCP and L4S style; Linux's route feature `ecn_low`), and the peer echoes them
    /// precisely: ACKs then echo each segment's mark, and BBR answers the fraction of data
    /// marked (v3's ECN response, on paths of at most 5 ms). Off by default; set it on both
    /// ends.
    pub ecn_low: bool,
}

impl TcpConfig {
    /// The buffer sizes a socket gets unless it sets its own.
    pub fn buffers(&self) -> Buffers {
        Buffers {
            send: self.send_buffer,
            recv: self.recv_buffer,
            send_locked: !self.send_autotune,
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            send_buffer: 1 << 20,
            recv_buffer: 1 << 20,
            max_ooo_ranges: 32,
            msl: Duration::from_secs(30),
            syn_retries: 7,
            max_retries: 15,
            delayed_ack: Duration::from_millis(40),
            fin_timeout: Duration::from_secs(60),
            syn_backlog: 256,
            max_time_wait: 65536,
            mem_pressure: 256 << 20,
            mem_limit: 512 << 20,
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            fixed_iss: None,
            congestion: CongestionAlgorithm::default(),
            pacing: false,
            tso: false,
            send_autotune: true,
            trace: false,
            ecn: Ecn::default(),
            ecn_low: false,
        }
    }
}

/// Whether TCP uses Explicit Congestion Notification (RFC 3168), as Linux's `tcp_ecn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ecn {
    /// Never: SYNs do not ask for it and a SYN that asks is answered without it.
    Off,
    /// Accepted when a peer's SYN asks for it, never asked for (Linux's default, 2).
    #[default]
    Passive,
    /// Asked for in our SYNs and accepted in the peer's (Linux's 1).
    On,
}

impl std::str::FromStr for Ecn {
    type Err = String;

    /// `off`, `passive` or `on`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Ecn::Off),
            "passive" => Ok(Ecn::Passive),
            "on" => Ok(Ecn::On),
            _ => Err(format!("unknown ECN mode {s:?} (off, passive or on)")),
        }
    }
}

/// Which congestion control algorithm a connection uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CongestionAlgorithm {
    /// RFC 5681 with RFC 6582.
    NewReno,
    /// RFC 9438; the default, as on Linux.
    #[default]
    Cubic,
    /// BBR v3 (draft-ietf-ccwg-bbr), paced; not loss-based: random loss below 2% per round
    /// trip does not shrink its window.
    Bbr,
}

impl CongestionAlgorithm {
    /// The algorithm's name, as the controller and `TcpInfo` give it.
    pub fn name(self) -> &'static str {
        match self {
            CongestionAlgorithm::NewReno => "newreno",
            CongestionAlgorithm::Cubic => "cubic",
            CongestionAlgorithm::Bbr => "bbr",
        }
    }
}

impl std::str::FromStr for CongestionAlgorithm {
    type Err = String;

    /// `cubic`, `bbr`, or `newreno` (also `reno`, as Linux names it).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cubic" => Ok(CongestionAlgorithm::Cubic),
            "bbr" => Ok(CongestionAlgorithm::Bbr),
            "reno" | "newreno" => Ok(CongestionAlgorithm::NewReno),
            _ => Err(format!(
                "unknown congestion control {s:?} (cubic, bbr or newreno)"
            )),
        }
    }
}

/// Keep-alive of one connection (RFC 1122 §4.2.3.6; Linux's `TCP_KEEPIDLE`, `TCP_KEEPINTVL`
/// and `TCP_KEEPCNT`): after `idle` without a segment from the peer, a probe every `interval`;
/// `probes` unanswered ones end the connection with `TimedOut`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Time without a segment from the peer before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes that end the connection (`TCP_KEEPCNT`).
    pub probes: u32,
}

/// Linux's defaults, which RFC 1122 §4.2.3.6 asks for: the first probe after two hours of
/// silence, then one every 75 s, 9 of them.
impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive::new(TcpConfig::default().keepalive_idle)
    }
}

impl Keepalive {
    /// Probes after `idle`, then Linux's defaults: every 75 s, 9 of them.
    pub fn new(idle: Duration) -> Keepalive {
        let d = TcpConfig::default();
        Keepalive {
            idle,
            interval: d.keepalive_interval,
            probes: d.keepalive_probes,
        }
    }
}

/// 64 random bits from the operating system (`getrandom(2)`), for a default seed no one can
/// guess; the time and process id if the call fails.
fn random_seed() -> u64 {
    let mut seed = [0u8; 8];
    // SAFETY: fills the 8 bytes of a live array; the result is checked.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n == seed.len() as isize {
        return u64::from_ne_bytes(seed);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    /// Keep-alive, once enabled with its defaults, waits two hours (RFC 1122 §4.2.3.6).
    #[test]
    fn keepalive_defaults_to_two_hours_when_enabled() {
        assert_eq!(Keepalive::default().idle, Duration::from_secs(7200));
    }

    /// The default seed comes from the operating system: two stacks never share their ISN and
    /// SYN-cookie keys unless told to (MUST-9).
    #[test]
    fn each_default_configuration_draws_its_own_seed() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_ne!(StackConfig::new(ip, 24).seed, StackConfig::new(ip, 24).seed);
    }

    use super::*;

    #[test]
    fn subnet_math() {
        let c = StackConfig::new(Ipv4Addr::new(10, 0, 0, 2), 24);
        assert!(c.is_on_link(Ipv4Addr::new(10, 0, 0, 200)));
        assert!(!c.is_on_link(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(c.subnet_broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert!(c.is_broadcast(Ipv4Addr::BROADCAST));
        let all = StackConfig::new(Ipv4Addr::new(10, 0, 0, 2), 0);
        assert!(all.is_on_link(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
