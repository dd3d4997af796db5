//! TCP (RFC 9293): the connection table, its demultiplexing, and the socket-level operations the
//! API calls. Like the rest of the core it is sans-IO: segments in, [`output::Outgoing`] out.
//!
//! One concern per file: [`seq`] arithmetic, [`segment`] formats, [`tcb`] state, `input.rs`
//! segment arrival, [`output`] transmission, `recovery.rs` SACK loss recovery, `rack.rs`
//! RACK-TLP, `urgent.rs` the urgent pointer, [`timers`], [`rtt`], [`congestion`], [`isn`],
//! [`buffer`].

pub mod buffer;
#[cfg(test)]
mod conformance;
pub mod congestion;
mod cookie;
pub mod ecn;
#[cfg(test)]
mod fixture;
#[cfg(test)]
mod hostile;
pub mod icmp;
mod input;
pub mod intercept;
pub mod isn;
pub mod output;
pub mod pacing;
mod rack;
mod recovery;
pub mod rtt;
pub mod sack;
pub mod segment;
pub mod seq;
pub mod shared;
pub mod tcb;
pub mod timers;
pub mod trace;
mod urgent;

use crate::config::Buffers;
use crate::id::{Event, IdSource, SocketId};
use crate::ip;
use crate::stats::Counters;
use crate::time::Instant;
use isn::IsnGenerator;
use shared::Wakeable;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
pub use tcb::State;
use tcb::Tcb;

pub use crate::config::TcpConfig;

struct Listener {
    local: SocketAddr,
    /// `IPV6_V6ONLY`: an IPv6 listener on `[::]` takes IPv6 only.
    v6only: bool,
    backlog: usize,
    /// The buffer sizes its connections get.
    buffers: Buffers,
    /// Established connections waiting for `accept`, shared with the listener's handle so
    /// that accepting needs no round trip to the stack thread.
    io: Arc<shared::ListenIo>,
    /// Connections in SYN-RECEIVED.
    syn_queue: usize,
    /// The Diffserv field its SYN-ACKs carry and its connections inherit (as Linux's
    /// accepted sockets inherit the listener's `IP_TOS`).
    dscp: u8,
    /// Its connections are traced from their SYN.
    trace: bool,
    /// The congestion control its connections inherit (as Linux's accepted sockets do).
    congestion: CongestionChoice,
}

/// The listeners on one port: at most one per family.
#[derive(Clone, Copy, Debug, Default)]
struct PortListeners {
    v4: Option<SocketId>,
    v6: Option<SocketId>,
}

impl Listener {
    /// What its connections inherit: buffer sizes, Diffserv field, tracing.
    fn child_opts(&self) -> SocketOpts {
        SocketOpts {
            buffers: self.buffers,
            dscp: self.dscp,
            trace: self.trace,
            congestion: self.congestion,
        }
    }

    /// An IPv6 listener on `[::]` without `IPV6_V6ONLY`: it takes IPv4 too.
    fn dual(&self) -> bool {
        self.local.is_ipv6() && !self.v6only && self.local.ip().is_unspecified()
    }
}

fn os_err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl Tcp {
    /// Tells every connection's handle that the stack has stopped, and wakes it.
    fn stop_handles(&self) {
        for t in self.conns.values() {
            let mut shared = t.io();
            shared.status.stopped = true;
            t.io.wake(shared);
        }
        for l in self.listeners.values() {
            let mut shared = l.io.lock();
            shared.stopped = true;
            l.io.wake(shared);
        }
    }
}

/// A stack thread that ends, even by a panic, leaves no handle asleep.
impl Drop for Tcp {
    fn drop(&mut self) {
        self.stop_handles();
    }
}

/// Tells the socket handle what it needs to read and write on its own: the connection's
/// status, and how much window a read must reopen before the core owes a window update. Wakes
/// the handle's waiters if `wake` or the status changed.
fn publish(t: &Tcb, wake: bool) {
    let update_at = (t.advertised_room() < t.snd.mss).then(|| t.window_update_threshold() as usize);
    let mut shared = t.io();
    shared.window_update_at = update_at;
    // The send buffer follows the congestion window (Linux's `tcp_sndbuf_expand`): room for
    // what the window may send now and in the next round trip.
    // A writer waits only on a full buffer: only then does more room need a wakeup.
    let target = tcb::SNDBUF_PER_CWND * t.cc.cwnd() as usize;
    let was_full = shared.send.free() == 0;
    let wake = (shared.send.expand(target) && was_full) || wake;
    let status = shared::Status {
        connecting: matches!(t.state, State::SynSent | State::SynReceived),
        can_write: t.state.can_send() && !t.fin.queued,
        eof: t.user.read_closed
            || t.fin.peer.is_some_and(|f| t.rcv.nxt.gt(f))
            || t.state == State::Closed,
        // Once stopped, always stopped.
        stopped: shared.status.stopped,
    };
    let changed = shared.status != status;
    shared.status = status;
    if wake || changed {
        t.io.wake(shared);
    }
}

/// What a socket sets before `connect(2)` or `listen(2)` that the first SYN or SYN-ACK
/// already needs.
#[derive(Clone, Copy, Debug)]
pub struct SocketOpts {
    /// Its buffer sizes: the window scale in the SYN depends on the receive buffer.
    pub buffers: Buffers,
    /// The Diffserv field (DSCP) its segments carry, the SYN included.
    pub dscp: u8,
    /// Trace the connection from its SYN.
    pub trace: bool,
    /// Its own congestion control and pacing, where it chose them.
    pub congestion: CongestionChoice,
}

impl Default for SocketOpts {
    fn default() -> Self {
        SocketOpts {
            buffers: TcpConfig::default().buffers(),
            dscp: 0,
            trace: false,
            congestion: CongestionChoice::default(),
        }
    }
}

/// A socket's own congestion control (Linux's `TCP_CONGESTION`) and pacing; what it leaves
/// `None` follows the stack's [`TcpConfig`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CongestionChoice {
    /// The algorithm.
    pub algorithm: Option<crate::config::CongestionAlgorithm>,
    /// Whether to pace (a controller with a pacing rate, BBR, paces anyway).
    pub pacing: Option<bool>,
}

impl CongestionChoice {
    /// This choice, with what `newer` sets taking its place.
    pub fn merge(self, newer: CongestionChoice) -> CongestionChoice {
        CongestionChoice {
            algorithm: newer.algorithm.or(self.algorithm),
            pacing: newer.pacing.or(self.pacing),
        }
    }
}

/// Tells the handle the connection's two ends, as it shows them: once they are final (after
/// the listener decided whether IPv4 shows as mapped).
fn publish_addrs(t: &Tcb) {
    let ends = (
        crate::wire::presented(t.local, t.mapped),
        crate::wire::presented(t.remote, t.mapped),
    );
    t.io().addrs = Some(ends);
}

/// TCP's header without options.
const TCP_HEADER_LEN: u32 = 20;
/// The MSS we announce at least, on a link too small for a sensible one (Linux's
/// `TCP_MIN_MSS`).
const MIN_OUR_MSS: u32 = 88;
/// The largest MSS an IPv4 datagram holds (RFC 9293 §3.7.1: 65535 less the headers).
const MAX_OUR_MSS: u32 = 65495;

/// The MSS that fits `mtu` towards `remote`: the MTU less the IP and TCP headers (RFC 9293
/// §3.7.1, RFC 8200 §8.3).
pub(crate) fn mss_for_mtu(remote: IpAddr, mtu: u32) -> u32 {
    mtu.saturating_sub(ip::header_len(remote) + TCP_HEADER_LEN)
        .clamp(MIN_OUR_MSS, MAX_OUR_MSS)
}

/// The largest Diffserv code point: six bits (RFC 2474).
const MAX_DSCP: u8 = 63;

/// The receive buffer of a connection not yet accepted: what its peer can make the stack hold
/// before the application takes the connection, so that a listener's queue holds at most its
/// backlog times this. It is the largest window without scaling (Linux's initial window, from
/// `tcp_rmem[1]`, is of the same size). Accepting gives the connection its whole buffer, as
/// far as its window scale can advertise it.
pub const UNACCEPTED_RCVBUF: usize = u16::MAX as usize;

/// Linux's default ephemeral port range.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// The TCP layer of one interface: its listeners and connections, their timers, and the
/// segments they owe the IP layer.
pub struct Tcp {
    cfg: TcpConfig,
    /// The buffer of the frame being received, which a connection may keep
    /// ([`Tcp::offer_frame`]).
    rx_frame: Option<Arc<crate::rxbuf::RxFrame>>,
    /// Buffers of one segment each, for out-of-order data to wait in when its own frame is
    /// too large to keep for it (a 1500-byte segment read into a 64 KB buffer).
    small_frames: Arc<crate::rxbuf::FramePool>,
    /// Our addresses in use, for listeners and for the source of connections (the IP layer
    /// keeps the IPv6 ones current).
    local: ip::LocalAddrs,
    /// The MTUs the IP layer learned, for the MSS of new connections.
    mtus: ip::PathMtus,
    /// The ids of TCP sockets (listeners and connections).
    ids: IdSource,
    /// The directed broadcast address of our subnet, which no connection may target.
    subnet_broadcast: Option<IpAddr>,
    isn: IsnGenerator,
    cookies: cookie::Cookies,
    conns: HashMap<SocketId, Tcb>,
    /// Connections by (local, remote) address: the whole four-tuple, since an intercepted
    /// connection's local address is whatever its client dialled.
    by_tuple: HashMap<(SocketAddr, SocketAddr), SocketId>,
    listeners: HashMap<SocketId, Listener>,
    listen_ports: HashMap<u16, PortListeners>,
    /// Connection timers by deadline: `poll` never scans connections that have nothing due.
    timers: BTreeSet<(Instant, SocketId)>,
    /// Connections that received segments since the last output: their ACKs and data go out
    /// together once the batch of received frames is processed (like the kernel's GRO: one ACK
    /// for everything a batch delivered).
    dirty: Vec<SocketId>,
    next_port: u16,
    out: output::Outbox,
    events: VecDeque<Event>,
    /// Remote addresses whose connections reached R1 retransmissions, for IP to re-resolve
    /// their next hop (RFC 9293 MUST-20).
    negative_advice: Vec<IpAddr>,
    /// Catch-all interception, if on.
    intercept: Option<intercept::Intercept>,
    /// Trace records of traced connections, for the layer above to take.
    trace: Vec<trace::TraceRecord>,
    /// Trace records made so far: zero while no connection is traced.
    trace_records: u64,
    /// Connections in TIME-WAIT now, bounded by `cfg.max_time_wait`.
    time_wait: usize,
    /// The memory budget of every connection's buffers (Linux's `tcp_mem`).
    pool: Arc<buffer::MemoryPool>,
    /// This queue's index and the number of queues, on a link several share (one queue:
    /// `(0, 1)`): ephemeral ports are shared out by `port % count` (see `crate::core` `queues`).
    queue: (usize, usize),
}

impl Tcp {
    /// TCP for `local_ip` on a link of `mtu` bytes: `secret` keys the ISN function and SYN
    /// cookies, `port_seed` picks where the search for ephemeral ports starts.
    pub fn new(
        cfg: TcpConfig,
        local_ip: IpAddr,
        mtu: usize,
        secret: [u8; 16],
        port_seed: u16,
    ) -> Tcp {
        let pool = buffer::MemoryPool::new(cfg.mem_pressure, cfg.mem_limit);
        Tcp {
            rx_frame: None,
            small_frames: crate::rxbuf::FramePool::new(crate::rxbuf::SMALL_FRAME),
            cfg,
            local: ip::LocalAddrs::new(local_ip),
            mtus: ip::PathMtus::new(mtu),
            ids: IdSource::tcp(),
            subnet_broadcast: None,
            isn: IsnGenerator::new(secret),
            cookies: cookie::Cookies::new(secret.map(|b| b.rotate_left(3) ^ 0x5a)),
            conns: HashMap::new(),
            by_tuple: HashMap::new(),
            listeners: HashMap::new(),
            listen_ports: HashMap::new(),
            timers: BTreeSet::new(),
            dirty: Vec::new(),
            next_port: EPHEMERAL.start() + port_seed % (EPHEMERAL.end() - EPHEMERAL.start()),
            out: output::Outbox::default(),
            events: VecDeque::new(),
            negative_advice: Vec::new(),
            intercept: None,
            trace: Vec::new(),
            trace_records: 0,
            time_wait: 0,
            pool,
            queue: (0, 1),
        }
    }

    /// When [`Tcp::poll`] next has a timer to run.
    pub fn poll_at(&self) -> Option<Instant> {
        let icpt = self.intercept.as_ref().and_then(|i| i.poll_at());
        crate::time::earliest(self.timers.first().map(|(t, _)| *t), icpt)
    }

    /// Tells TCP which IPv6 addresses are ours and in use.
    pub fn set_ipv6_addrs(&mut self, addrs: Vec<Ipv6Addr>) {
        self.local.set_v6(addrs);
    }

    /// Whether `ip` is one of our addresses (of either family).
    fn is_local(&self, ip: IpAddr) -> bool {
        self.local.contains(ip)
    }

    /// The MSS we announce and accept at most towards `remote` at `now`: the MTU the IP
    /// layer knows towards it (the link's, or less where a Packet Too Big said so, RFC 8201
    /// §5.2) less the headers.
    pub(crate) fn mss_for(&self, remote: IpAddr, now: Instant) -> u32 {
        mss_for_mtu(remote, self.mtus.mtu(now, remote))
    }

    /// The IPv6 link MTU changed (a Router Advertisement's MTU option, RFC 4861 §6.3.4):
    /// connections opened from now on take their MSS from it.
    pub fn set_link_mtu6(&mut self, mtu: usize) {
        self.mtus.set_link6(mtu);
    }

    /// A Packet Too Big taught the IP layer the path MTU towards `dst`, believed until
    /// `until`: connections opened to it from now on take their MSS from it.
    pub fn set_path_mtu(&mut self, now: Instant, dst: IpAddr, mtu: usize, until: Instant) {
        self.mtus.learn(now, dst, mtu, until);
    }

    /// Our source address for a connection to `remote` ([`ip::LocalAddrs::source_for`]).
    fn source_for(&self, remote: IpAddr) -> io::Result<IpAddr> {
        self.local
            .source_for(remote)
            .ok_or_else(|| os_err(libc::EADDRNOTAVAIL))
    }

    /// Whether a connection (in any state) has this pair of addresses.
    pub fn knows(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.by_tuple.contains_key(&(local, remote))
    }

    /// Makes TCP queue `index` of `count` sharing one link: it picks only the ephemeral ports
    /// `port % count == index`, so that no two queues open the same four-tuple.
    pub fn set_queue(&mut self, index: usize, count: usize) {
        self.queue = (index, count.max(1));
    }

    /// Tells TCP the directed broadcast address of its subnet, which connects refuse.
    pub fn set_subnet_broadcast(&mut self, addr: IpAddr) {
        self.subnet_broadcast = Some(addr);
    }

    /// Refiles a connection under its earliest timer.
    fn reschedule(&mut self, id: SocketId) {
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        let next = t.next_timer();
        if next == t.timers.key {
            return;
        }
        if let Some(old) = t.timers.key.take() {
            self.timers.remove(&(old, id));
        }
        if let Some(new) = next {
            self.timers.insert((new, id));
        }
        t.timers.key = next;
    }

    /// Something changed that the socket's waiters may want: tell the runtime's waiters and
    /// wake the handle's.
    fn notify(&mut self, id: SocketId) {
        if let Some(t) = self.conns.get(&id) {
            publish(t, true);
        }
        self.events.push_back(Event::Ready(id));
    }

    /// Schedules output for a connection that received a segment.
    fn defer_output(&mut self, id: SocketId) {
        if let Some(t) = self.conns.get_mut(&id) {
            if !t.output.pending {
                t.output.pending = true;
                self.dirty.push(id);
            }
        }
        self.reschedule(id);
    }

    /// Runs the deferred output of every connection that received segments.
    pub fn flush_deferred(&mut self, now: Instant, stats: &mut Counters) {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(t) = self.conns.get_mut(&id) {
                t.output.pending = false;
                self.flush(id, now, stats);
            }
        }
    }

    /// Runs output for a connection and refiles its timers.
    fn flush(&mut self, id: SocketId, now: Instant, stats: &mut Counters) {
        if let Some(t) = self.conns.get_mut(&id) {
            let mut sink = output::Sink {
                out: &mut self.out,
                stats,
                mtus: &self.mtus,
                ato: self.cfg.delayed_ack,
                tso: self.cfg.tso,
            };
            let traced = t.trace.is_some();
            if traced {
                t.trace_checkpoint(now);
            }
            output::output(t, now, &mut sink);
            publish(t, false);
            if traced {
                self.trace_records += t.trace_take(now, &mut self.trace) as u64;
            }
        }
        self.reschedule(id);
    }

    /// Moves a traced connection's records to the stack-wide trace.
    fn trace_collect(&mut self, id: SocketId, now: Instant) {
        if let Some(t) = self.conns.get_mut(&id).filter(|t| t.trace.is_some()) {
            self.trace_records += t.trace_take(now, &mut self.trace) as u64;
        }
    }

    /// Moves the trace records made since the last call to `into`.
    pub fn take_trace(&mut self, into: &mut Vec<trace::TraceRecord>) {
        into.append(&mut self.trace);
    }

    /// The memory budget of the buffers.
    pub fn memory(&self) -> &buffer::MemoryPool {
        &self.pool
    }

    /// Connections in TIME-WAIT now.
    pub fn time_wait(&self) -> usize {
        self.time_wait
    }

    /// Trace records made so far (zero while no connection is traced).
    pub fn trace_records(&self) -> u64 {
        self.trace_records
    }

    /// Starts or stops tracing connection `id`, or, for a listener, the connections it will
    /// accept.
    pub fn set_trace(&mut self, id: SocketId, now: Instant, on: bool) -> io::Result<()> {
        if let Some(l) = self.listeners.get_mut(&id) {
            l.trace = on;
            return Ok(());
        }
        if !self.conns.contains_key(&id) {
            return Err(os_err(libc::ENOTCONN));
        }
        // What was recorded so far is kept, also when tracing stops.
        self.trace_collect(id, now);
        if let Some(t) = self.conns.get_mut(&id) {
            t.set_trace(on);
        }
        self.trace_collect(id, now);
        Ok(())
    }

    /// Removes a connection entirely.
    fn remove(&mut self, id: SocketId, now: Instant) {
        if let Some(mut t) = self.conns.remove(&id) {
            if t.state == State::TimeWait {
                self.time_wait = self.time_wait.saturating_sub(1);
            }
            if t.trace.is_some() {
                // The trace ends with the connection (TIME-WAIT cut short included).
                t.set_state(State::Closed);
                self.trace_records += t.trace_take(now, &mut self.trace) as u64;
            }
            if let Some(k) = t.timers.key {
                self.timers.remove(&(k, id));
            }
            self.by_tuple.remove(&(t.local, t.remote));
            // Only a connection still in SYN-RECEIVED belongs to its listener.
            if let Some(l) = t.user.listener.and_then(|l| self.listeners.get_mut(&l)) {
                l.syn_queue = l.syn_queue.saturating_sub(1);
            }
        }
    }

    /// Whether a LISTEN on `port` must be refused (EADDRINUSE): another listener holds it, or
    /// a connection past its handshake uses it. One still opening does not: RFC 9293 §3.9.1.1
    /// (MUST-42) has an application LISTEN beside a connection in SYN-SENT or SYN-RECEIVED,
    /// and segments go to the connection that matches all four numbers before a listener.
    fn listen_port_taken(&self, port: u16) -> bool {
        self.listen_ports.contains_key(&port) || self.port_has_connections(port)
    }

    /// Whether a connection past its handshake uses `port` (see [`Tcp::listen_port_taken`]).
    fn port_has_connections(&self, port: u16) -> bool {
        self.by_tuple.iter().any(|(&(l, _), id)| {
            l.port() == port
                && self
                    .conns
                    .get(id)
                    .is_some_and(|t| !matches!(t.state, State::SynSent | State::SynReceived))
        })
    }

    /// Whether a listener on `local` (IPv6-only if `v6only`) would clash with the listeners
    /// on its port: one per family, and a dual-stack one on `[::]` holds both (as Linux).
    fn listener_clash(&self, local: SocketAddr, v6only: bool) -> bool {
        let Some(p) = self.listen_ports.get(&local.port()) else {
            return false;
        };
        let dual = |id: &SocketId| self.listeners.get(id).is_some_and(Listener::dual);
        if local.is_ipv6() {
            p.v6.is_some() || (!v6only && local.ip().is_unspecified() && p.v4.is_some())
        } else {
            p.v4.is_some() || p.v6.as_ref().is_some_and(dual)
        }
    }

    /// The next ephemeral port, in turn, for which `free` holds.
    fn ephemeral_port_where(&mut self, free: impl Fn(&Tcp, u16) -> bool) -> io::Result<u16> {
        let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                p + 1
            };
            let (index, count) = self.queue;
            if crate::config::queue_owns_port(index, count, p) && free(self, p) {
                return Ok(p);
            }
        }
        Err(os_err(libc::EADDRNOTAVAIL))
    }

    /// A local port on `local_ip` for a connection to `remote`.
    fn ephemeral_port(&mut self, local_ip: IpAddr, remote: SocketAddr) -> io::Result<u16> {
        self.ephemeral_port_where(|tcp, p| {
            !tcp.listen_ports.contains_key(&p)
                && !tcp
                    .by_tuple
                    .contains_key(&(SocketAddr::new(local_ip, p), remote))
        })
    }

    /// `listen(2)` on `local` with room for `backlog` unaccepted connections: the listener's
    /// id and address.
    pub fn listen(
        &mut self,
        local: SocketAddr,
        backlog: usize,
    ) -> io::Result<(SocketId, SocketAddr)> {
        self.listen_with(local, backlog, self.cfg.buffers())
    }

    /// [`Tcp::listen`] whose connections get `buffers`.
    pub fn listen_with(
        &mut self,
        local: SocketAddr,
        backlog: usize,
        buffers: Buffers,
    ) -> io::Result<(SocketId, SocketAddr)> {
        self.listen_opts(local, backlog, buffers, false)
    }

    /// [`Tcp::listen_with`], IPv6-only if `v6only` (`IPV6_V6ONLY`, set before `listen`): an
    /// IPv4 listener may then share its port.
    pub fn listen_opts(
        &mut self,
        local: SocketAddr,
        backlog: usize,
        buffers: Buffers,
        v6only: bool,
    ) -> io::Result<(SocketId, SocketAddr)> {
        if !local.ip().is_unspecified() && !self.is_local(local.ip()) {
            return Err(os_err(libc::EADDRNOTAVAIL));
        }
        if v6only && local.is_ipv4() {
            return Err(os_err(libc::EINVAL));
        }
        let port = if local.port() == 0 {
            self.ephemeral_port_where(|tcp, p| !tcp.listen_port_taken(p))?
        } else if self.listener_clash(local, v6only) || self.port_has_connections(local.port()) {
            return Err(os_err(libc::EADDRINUSE));
        } else {
            local.port()
        };
        let local = SocketAddr::new(local.ip(), port);
        let id = self.ids.next_id();
        let slot = self.listen_ports.entry(port).or_default();
        if local.is_ipv6() {
            slot.v6 = Some(id);
        } else {
            slot.v4 = Some(id);
        }
        self.listeners.insert(
            id,
            Listener {
                local,
                v6only,
                backlog: backlog.max(1),
                buffers,
                io: Arc::default(),
                syn_queue: 0,
                dscp: 0,
                trace: false,
                congestion: CongestionChoice::default(),
            },
        );
        Ok((id, local))
    }

    /// The next established connection, its address, or `None` if none is waiting. (Socket
    /// handles take them from the listener's shared queue without the core.)
    pub fn accept(&mut self, listener: SocketId) -> Option<io::Result<(SocketId, SocketAddr)>> {
        let Some(l) = self.listeners.get(&listener) else {
            return Some(Err(os_err(libc::EINVAL)));
        };
        let a = l.io.lock().queue.pop_front()?;
        if a.grow_window() {
            // Sent with the connection's next segment, at once if the window had closed.
            if let Some(t) = self.conns.get_mut(&a.id) {
                t.ack.now |= t.advertised_room() < t.snd.mss;
            }
        }
        Some(Ok((a.id, a.peer)))
    }

    /// The queue a listener shares with its handle.
    pub fn listen_io(&self, listener: SocketId) -> Option<Arc<shared::ListenIo>> {
        self.listeners.get(&listener).map(|l| l.io.clone())
    }

    /// Whether listener `lid` has room for another established connection.
    fn accept_queue_full(&self, lid: SocketId) -> bool {
        self.listeners
            .get(&lid)
            .is_some_and(|l| l.io.lock().queue.len() >= l.backlog)
    }

    /// Hands established connection `id` to listener `lid`'s accept queue: from now on it
    /// belongs to the handle that accepts it, or dies with the listener.
    fn enqueue_accept(&mut self, lid: SocketId, id: SocketId) {
        let (Some(l), Some(t)) = (self.listeners.get(&lid), self.conns.get_mut(&id)) else {
            return;
        };
        t.user.listener = None;
        // A connection opened by a SYN cookie became ESTABLISHED without output of its own:
        // its handle must see that before its first write.
        publish(t, false);
        let mut q = l.io.lock();
        q.queue.push_back(shared::Accepted {
            id,
            peer: crate::wire::presented(t.remote, t.mapped),
            io: t.io.clone(),
            // What the listener gives its connections, up to what the window scale chosen at
            // the SYN can advertise.
            recv_capacity: l.buffers.recv.min(usize::from(u16::MAX) << t.rcv.wscale),
        });
        l.io.wake(q);
        self.events.push_back(Event::Ready(lid));
    }

    /// The ISN for a new connection (RFC 6528, unless fixed for a test).
    fn iss(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> seq::Seq {
        match self.cfg.fixed_iss {
            Some(n) => seq::Seq(n),
            None => self.isn.isn(now, local, remote),
        }
    }

    /// Starts an active open (RFC 9293 §3.10.1) from an ephemeral port, or from
    /// `local_port` if given (as after `bind`): the connection's id.
    pub fn connect(
        &mut self,
        now: Instant,
        local_port: Option<u16>,
        remote: SocketAddr,
        stats: &mut Counters,
    ) -> io::Result<SocketId> {
        let opts = SocketOpts {
            buffers: self.cfg.buffers(),
            ..SocketOpts::default()
        };
        self.connect_with(now, local_port, remote, opts, stats)
    }

    /// [`Tcp::connect`] with the options a socket sets before `connect(2)`, which the SYN
    /// already needs: buffer sizes (the window scale depends on them), the Diffserv field,
    /// and tracing.
    pub fn connect_with(
        &mut self,
        now: Instant,
        local_port: Option<u16>,
        remote: SocketAddr,
        opts: SocketOpts,
        stats: &mut Counters,
    ) -> io::Result<SocketId> {
        let SocketOpts {
            buffers,
            dscp,
            trace,
            congestion,
        } = opts;
        if dscp > MAX_DSCP {
            return Err(os_err(libc::EINVAL));
        }
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(os_err(libc::EINVAL));
        }
        // TCP talks to one host: never to a broadcast or multicast address (RFC 9293
        // MUST-46), the subnet's broadcast included; Linux says ENETUNREACH.
        let remote = crate::wire::canonical(remote);
        if ip::is_broadcast(remote.ip())
            || remote.ip().is_multicast()
            || self.subnet_broadcast == Some(remote.ip())
        {
            return Err(os_err(libc::ENETUNREACH));
        }
        let local_ip = self.source_for(remote.ip())?;
        let port = match local_port {
            Some(p)
                if self
                    .by_tuple
                    .contains_key(&(SocketAddr::new(local_ip, p), remote)) =>
            {
                return Err(os_err(libc::EADDRINUSE))
            }
            Some(p) => p,
            None => self.ephemeral_port(local_ip, remote)?,
        };
        let local = SocketAddr::new(local_ip, port);
        let iss = self.iss(now, local, remote);
        let ts_offset = self.isn.isn(now, remote, local).0;
        let open = tcb::Opening {
            local,
            remote,
            iss,
            ts_offset,
        };
        if self.pool.exhausted() {
            stats.tcp_mem_refused += 1;
            return Err(os_err(libc::ENOBUFS));
        }
        let mut t = Tcb::new(
            &self.cfg,
            buffers,
            now,
            open,
            self.mss_for(remote.ip(), now),
            &self.pool,
        );
        t.user.dscp = dscp;
        t.set_congestion(congestion, now);
        if trace {
            t.set_trace(true);
        }
        publish_addrs(&t);
        t.set_state(State::SynSent);
        let id = self.ids.next_id();
        self.by_tuple.insert((local, remote), id);
        self.conns.insert(id, t);
        stats.tcp_active_opens += 1;
        self.flush(id, now, stats);
        Ok(id)
    }

    /// `None` while the handshake runs; then `Ok` or the error that ended it.
    pub fn connect_result(&mut self, id: SocketId) -> Option<io::Result<()>> {
        let Some(t) = self.conns.get_mut(&id) else {
            return Some(Err(os_err(libc::ECONNREFUSED)));
        };
        if let Some(e) = t.io().error {
            return Some(Err(os_err(e)));
        }
        match t.state {
            State::SynSent | State::SynReceived => None,
            _ => Some(Ok(())),
        }
    }

    /// Queues data (as a socket handle does, see [`shared::IoState::write`]) and runs output.
    pub fn send(
        &mut self,
        id: SocketId,
        now: Instant,
        data: &[u8],
        stats: &mut Counters,
    ) -> io::Result<usize> {
        self.queue(id, now, stats, |io| io.write(data))
    }

    /// Queues data as urgent data (as a socket handle does, see
    /// [`shared::IoState::write_urgent`]) and runs output.
    pub fn send_urgent(
        &mut self,
        id: SocketId,
        now: Instant,
        data: &[u8],
        stats: &mut Counters,
    ) -> io::Result<usize> {
        self.queue(id, now, stats, |io| io.write_urgent(data))
    }

    /// Runs `write` on the connection's shared state, then output if it queued anything.
    fn queue(
        &mut self,
        id: SocketId,
        now: Instant,
        stats: &mut Counters,
        write: impl FnOnce(&mut shared::IoState) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let t = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?;
        let n = write(&mut t.io())?;
        if n > 0 {
            self.flush(id, now, stats);
        }
        Ok(n)
    }

    /// Bytes of urgent data left to read (see [`shared::IoState::rcv_urgent`]).
    pub fn urgent_left(&self, id: SocketId) -> io::Result<Option<usize>> {
        let t = self.conns.get(&id).ok_or_else(|| os_err(libc::ENOTCONN))?;
        let left = t.io().rcv_urgent;
        Ok(left)
    }

    /// Takes received data into `buf` (as a socket handle does, see [`shared::IoState::read`]);
    /// `Ok(0)` at end of stream, `WouldBlock` when nothing is there yet. A window update goes
    /// out if reading reopened a (nearly) closed window.
    pub fn recv(
        &mut self,
        id: SocketId,
        now: Instant,
        buf: &mut [u8],
        stats: &mut Counters,
    ) -> io::Result<usize> {
        let t = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?;
        let (n, update) = {
            let mut io = t.io();
            let n = io.read(buf)?;
            (n, io.window_update_due())
        };
        if update {
            self.poke(id, now, stats);
        }
        Ok(n)
    }

    /// The connection's shared state, for its socket handle.
    pub fn io(&self, id: SocketId) -> Option<Arc<shared::SocketIo>> {
        self.conns.get(&id).map(|t| t.io.clone())
    }

    /// The socket handle queued data or read enough to reopen the window: output, with a
    /// window update if the advertised window was nearly closed and reading reopened at
    /// least min(MSS, buffer/2) (RFC 9293 §3.8.6.2.2, RFC 1122 §4.2.3.3).
    pub fn poke(&mut self, id: SocketId, now: Instant, stats: &mut Counters) {
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        t.io().poke = false;
        if t.advertised_room() < t.snd.mss && t.rcv_wnd() >= t.window_update_threshold() {
            t.ack.now = true;
        }
        self.flush(id, now, stats);
    }

    /// `shutdown(2)`: `write` sends FIN after the buffered data; `read` makes reads return 0.
    pub fn shutdown(
        &mut self,
        id: SocketId,
        now: Instant,
        read: bool,
        write: bool,
        stats: &mut Counters,
    ) -> io::Result<()> {
        let t = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?;
        if matches!(t.state, State::SynSent | State::Closed) {
            return Err(os_err(libc::ENOTCONN));
        }
        if read {
            t.user.read_closed = true;
        }
        if write && !t.fin.queued {
            t.fin.queued = true;
            let next = match t.state {
                State::Established | State::SynReceived => State::FinWait1,
                State::CloseWait => State::LastAck,
                s => s,
            };
            t.set_state(next);
        }
        // Writes from another thread fail with EPIPE from here on, before output decides
        // where the FIN goes.
        publish(t, false);
        self.flush(id, now, stats);
        Ok(())
    }

    /// The handle is gone. Buffered data still goes out before the FIN; unread data or an
    /// unaccepted connection makes it a reset instead (RFC 2525 §2.17, as Linux does).
    pub fn close(&mut self, id: SocketId, now: Instant, stats: &mut Counters) {
        if let Some(l) = self.listeners.remove(&id) {
            let port = l.local.port();
            if let Some(p) = self.listen_ports.get_mut(&port) {
                if p.v4 == Some(id) {
                    p.v4 = None;
                }
                if p.v6 == Some(id) {
                    p.v6 = None;
                }
                if p.v4.is_none() && p.v6.is_none() {
                    self.listen_ports.remove(&port);
                }
            }
            let queued: Vec<SocketId> = l.io.lock().queue.drain(..).map(|a| a.id).collect();
            for c in queued {
                if let Some(t) = self.conns.get_mut(&c) {
                    t.user.orphan = true;
                }
                self.abort(c, now, stats);
            }
            let pending: Vec<SocketId> = self
                .conns
                .iter()
                .filter(|(_, t)| t.user.listener == Some(id))
                .map(|(c, _)| *c)
                .collect();
            for c in pending {
                self.abort(c, now, stats);
            }
            return;
        }
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        t.user.orphan = true;
        // No event loop learns about a connection whose handle is gone.
        t.io().forget_watcher();
        t.user.read_closed = true;
        match t.state {
            State::SynSent | State::Closed => self.remove(id, now),
            _ if t.io().recv.readable() > 0 => self.abort(id, now, stats),
            State::Established | State::SynReceived | State::CloseWait => {
                let _ = self.shutdown(id, now, false, true, stats);
            }
            _ => {}
        }
    }

    /// Sends a RST and forgets the connection.
    fn abort(&mut self, id: SocketId, now: Instant, stats: &mut Counters) {
        if let Some(t) = self.conns.get_mut(&id) {
            if t.trace.is_some() {
                if t.state.synchronized() && t.state != State::TimeWait {
                    t.trace_reset(now, t.snd.nxt, Some(t.rcv.nxt));
                    t.set_state(State::Closed);
                }
                self.trace_records += t.trace_take(now, &mut self.trace) as u64;
            }
            if t.state.synchronized() && t.state != State::TimeWait {
                output::reset(
                    t.local,
                    t.remote,
                    t.snd.nxt,
                    Some(t.rcv.nxt),
                    &mut self.out,
                    stats,
                );
                stats.tcp_estab_resets += u64::from(t.state.synchronized());
            }
        }
        self.remove(id, now);
    }

    /// Resets the connection and forgets it: the handle closed with a zero linger
    /// (`SO_LINGER`), so unsent data is dropped and the peer gets a RST (RFC 9293 §3.10.4
    /// ABORT).
    pub fn reset(&mut self, id: SocketId, now: Instant, stats: &mut Counters) {
        if let Some(t) = self.conns.get_mut(&id) {
            t.io().forget_watcher();
            self.abort(id, now, stats);
        }
    }

    /// Keep-alive probes after `idle` without traffic (then every `keepalive_interval`, at
    /// most `keepalive_probes` of them, from the configuration), or none (RFC 1122 §4.2.3.6).
    pub fn set_keepalive(
        &mut self,
        id: SocketId,
        now: Instant,
        idle: Option<Duration>,
    ) -> io::Result<()> {
        let params = idle.map(|idle| crate::config::Keepalive {
            idle,
            interval: self.cfg.keepalive_interval,
            probes: self.cfg.keepalive_probes,
        });
        self.set_keepalive_with(id, now, params)
    }

    /// Keep-alive with its three times, or none (RFC 1122 §4.2.3.6).
    pub fn set_keepalive_with(
        &mut self,
        id: SocketId,
        now: Instant,
        params: Option<crate::config::Keepalive>,
    ) -> io::Result<()> {
        if params.is_some_and(|p| p.idle.is_zero() || p.interval.is_zero() || p.probes == 0) {
            return Err(os_err(libc::EINVAL));
        }
        let t = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?;
        t.user.keepalive = params;
        t.timers.keepalive_probes = 0;
        t.timers.keepalive = params.map(|p| now + p.idle);
        self.reschedule(id);
        Ok(())
    }

    /// `TCP_NODELAY`: `on` turns Nagle's algorithm off; then sends what that allows.
    pub fn set_nodelay(
        &mut self,
        id: SocketId,
        now: Instant,
        on: bool,
        stats: &mut Counters,
    ) -> io::Result<()> {
        self.conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?
            .user
            .nodelay = on;
        self.flush(id, now, stats);
        Ok(())
    }

    /// Changes the buffer sizes of a connection or a listener (whose later connections get
    /// them). A connection's send buffer takes any size; a smaller one than it holds takes
    /// writes again once acknowledgements drain it. Its receive buffer never shrinks below
    /// what it holds or has promised in an advertised window (RFC 9293 §3.8.6: the window
    /// is not shrunk), nor grows past what the window scale chosen at the handshake can
    /// advertise (65535 << scale).
    pub fn set_buffers(
        &mut self,
        id: SocketId,
        now: Instant,
        send: Option<usize>,
        recv: Option<usize>,
        stats: &mut Counters,
    ) -> io::Result<()> {
        if send == Some(0) || recv == Some(0) {
            return Err(os_err(libc::EINVAL));
        }
        if let Some(l) = self.listeners.get_mut(&id) {
            l.buffers.send = send.unwrap_or(l.buffers.send);
            l.buffers.send_locked |= send.is_some();
            l.buffers.recv = recv.unwrap_or(l.buffers.recv);
            return Ok(());
        }
        let t = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?;
        let promised = t.advertised_room() as usize;
        let scale = t.rcv.wscale;
        let mut io = t.io();
        if let Some(n) = send {
            io.send.set_capacity(n);
        }
        if let Some(n) = recv {
            let held = io.recv.readable() + io.recv.ooo_end();
            let floor = held.max(io.recv.readable() + promised);
            let ceiling = (usize::from(u16::MAX) << scale).max(floor);
            io.recv.set_capacity(n.clamp(floor, ceiling));
        }
        drop(io);
        // Wake writers that now have room; the flush advertises a larger window.
        publish(t, true);
        self.flush(id, now, stats);
        Ok(())
    }

    /// The buffer sizes of a connection or a listener.
    pub fn buffers(&self, id: SocketId) -> io::Result<Buffers> {
        if let Some(l) = self.listeners.get(&id) {
            return Ok(l.buffers);
        }
        let t = self.conns.get(&id).ok_or_else(|| os_err(libc::ENOTCONN))?;
        let io = t.io();
        Ok(Buffers {
            send: io.send.capacity(),
            recv: io.recv.capacity(),
            send_locked: !io.send.autotuned(),
        })
    }

    /// R2 for one connection: retransmissions of the same data before it is given up with
    /// `ETIMEDOUT` (RFC 9293 §3.8.3, MUST-21); `None` for the stack's `max_retries`.
    pub fn set_max_retries(&mut self, id: SocketId, retries: Option<u32>) -> io::Result<()> {
        if retries == Some(0) {
            return Err(os_err(libc::EINVAL));
        }
        self.conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?
            .user
            .max_retries = retries;
        Ok(())
    }

    /// The Diffserv field (DSCP, 0 to 63) of the connection's segments from now on (RFC 9293
    /// MUST-48, passed unchanged to IP: SHLD-22); for a listener, of its SYN-ACKs and the
    /// connections it opens from now on.
    pub fn set_dscp(&mut self, id: SocketId, dscp: u8) -> io::Result<()> {
        if dscp > MAX_DSCP {
            return Err(os_err(libc::EINVAL));
        }
        if let Some(l) = self.listeners.get_mut(&id) {
            l.dscp = dscp;
            return Ok(());
        }
        self.conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?
            .user
            .dscp = dscp;
        Ok(())
    }

    /// The congestion control and pacing of a connection from now on (a new controller
    /// starts from the initial window, as a new connection would), or of a listener's
    /// connections (Linux's `TCP_CONGESTION`).
    pub fn set_congestion(
        &mut self,
        id: SocketId,
        now: Instant,
        choice: CongestionChoice,
        stats: &mut Counters,
    ) -> io::Result<()> {
        if let Some(l) = self.listeners.get_mut(&id) {
            l.congestion = l.congestion.merge(choice);
            return Ok(());
        }
        self.conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?
            .set_congestion(choice, now);
        self.flush(id, now, stats);
        Ok(())
    }

    /// `IP_TTL` of the connection's segments (1 to 255), or `None` for the stack's default.
    pub fn set_ttl(&mut self, id: SocketId, ttl: Option<u8>) -> io::Result<()> {
        if ttl == Some(0) {
            return Err(os_err(libc::EINVAL));
        }
        let t = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?;
        t.user.ttl = ttl;
        Ok(())
    }

    /// The TTL set on the connection, if any.
    pub fn ttl(&self, id: SocketId) -> io::Result<Option<u8>> {
        let t = self.conns.get(&id).ok_or_else(|| os_err(libc::ENOTCONN))?;
        Ok(t.user.ttl)
    }

    /// Whether Nagle's algorithm is off on the connection (`TCP_NODELAY`).
    pub fn nodelay(&self, id: SocketId) -> io::Result<bool> {
        Ok(self
            .conns
            .get(&id)
            .ok_or_else(|| os_err(libc::ENOTCONN))?
            .user
            .nodelay)
    }

    /// The local and remote addresses of a connection; a listener's remote is unspecified,
    /// port 0. An IPv4 connection accepted by an IPv6 listener shows IPv4-mapped addresses.
    pub fn addrs(&self, id: SocketId) -> io::Result<(SocketAddr, SocketAddr)> {
        if let Some(l) = self.listeners.get(&id) {
            let none = match l.local {
                SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
                SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            };
            return Ok((l.local, none));
        }
        let t = self.conns.get(&id).ok_or_else(|| os_err(libc::ENOTCONN))?;
        Ok((
            crate::wire::presented(t.local, t.mapped),
            crate::wire::presented(t.remote, t.mapped),
        ))
    }

    /// Stack shutdown, first step: every listener closes and every open connection sends its
    /// FIN after its buffered data, as when a process exits.
    pub fn shutdown_all(&mut self, now: Instant, stats: &mut Counters) {
        // Handles fail with `NotConnected` from now on, as the stack's other calls do.
        self.stop_handles();
        let listeners: Vec<SocketId> = self.listeners.keys().copied().collect();
        for l in listeners {
            self.close(l, now, stats);
        }
        let open: Vec<SocketId> = self
            .conns
            .iter()
            .filter(|(_, t)| {
                matches!(t.state, State::Established | State::CloseWait) && !t.fin.queued
            })
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            let _ = self.shutdown(id, now, false, true, stats);
        }
    }

    /// Whether the connection still has data or a FIN to deliver.
    fn undelivered(t: &Tcb) -> bool {
        matches!(
            t.state,
            State::SynSent
                | State::SynReceived
                | State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        )
    }

    /// No connection still has data or a FIN on its way.
    pub fn quiescent(&self) -> bool {
        !self.conns.values().any(Self::undelivered)
    }

    /// Stack shutdown, last step: connections that did not deliver everything in time are
    /// reset, so no peer waits on a connection that no longer exists; the rest (FIN-WAIT-2,
    /// TIME-WAIT) delivered all and are forgotten quietly.
    pub fn abort_all(&mut self, now: Instant, stats: &mut Counters) {
        let ids: Vec<(SocketId, bool)> = self
            .conns
            .iter()
            .map(|(id, t)| (*id, Self::undelivered(t)))
            .collect();
        self.stop_handles();
        for (id, undelivered) in ids {
            if undelivered {
                self.abort(id, now, stats);
            } else {
                self.remove(id, now);
            }
        }
    }

    /// Connections in ESTABLISHED or CLOSE-WAIT (RFC 1213 tcpCurrEstab).
    pub fn established(&self) -> u64 {
        self.conns
            .values()
            .filter(|t| matches!(t.state, State::Established | State::CloseWait))
            .count() as u64
    }

    /// Connections in the table, in any state.
    pub fn table_len(&self) -> u64 {
        self.conns.len() as u64
    }

    /// A connection's state, for tests and diagnostics.
    pub fn state(&self, id: SocketId) -> Option<State> {
        self.conns.get(&id).map(|t| t.state)
    }

    /// The control block of a connection, for the crate's own tests.
    #[cfg(test)]
    pub(crate) fn tcb(&self, id: SocketId) -> Option<&Tcb> {
        self.conns.get(&id)
    }

    /// Moves the segments built since the last call into `into` (emptied first), for the IP
    /// layer.
    pub fn take_segments(&mut self, into: &mut Vec<output::Outgoing>) {
        into.clear();
        std::mem::swap(into, &mut self.out.segs);
    }

    /// Takes the remote addresses TCP has given negative advice about since the last call:
    /// their connections reached R1 retransmissions (RFC 9293 §3.8.3, MUST-20).
    pub fn take_negative_advice(&mut self) -> Vec<IpAddr> {
        std::mem::take(&mut self.negative_advice)
    }

    /// The readiness events raised since the last call.
    pub fn take_events(&mut self) -> std::collections::vec_deque::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Keeps the buffer of a frame the device has sent, to build a later segment in.
    pub fn recycle(&mut self, frame: Vec<u8>) {
        self.out.recycle(frame);
    }

    /// A snapshot of a connection, for diagnostics and tests.
    pub fn info(&self, id: SocketId) -> Option<TcpInfo> {
        let t = self.conns.get(&id)?;
        let io = t.io();
        Some(TcpInfo {
            state: t.state,
            snd: t.snd,
            rcv: t.rcv,
            sack: t.opts.sack_ok,
            ecn: t.ecn.ok,
            ts_recent: t.opts.ts.map(|ts| ts.recent),
            srtt: t.rtx.rtt.srtt(),
            rto: t.rtx.rtt.rto(),
            retries: t.rtx.retries,
            cwnd: t.cc.cwnd(),
            ssthresh: t.cc.ssthresh(),
            congestion: t.cc.name(),
            cc_phase: t.cc.phase(),
            pacing_rate: pacing::rate(t).map(|r| r as u64),
            path_model: t.cc.model(),
            delivery: t.rate.as_ref().map(|r| (r.delivered, r.lost)),
            flight: t.flight(),
            unsent: io.send.len(),
            readable: io.recv.readable(),
            out_of_order: io.recv.has_ooo(),
            timers: t.timers,
        })
    }
}

/// A snapshot of one connection (Linux's `TCP_INFO`, with the sequence variables `ss -i`
/// shows): for diagnostics and tests, which read the connection through this instead of its
/// control block.
#[derive(Clone, Debug)]
pub struct TcpInfo {
    /// The connection's state (RFC 9293 §3.3.2).
    pub state: State,
    /// The send sequence space: SND.UNA, SND.NXT, SND.WND, ISS, the send MSS, ...
    pub snd: tcb::SendSeq,
    /// The receive sequence space: RCV.NXT, the advertised edge, IRS, the receive MSS, ...
    pub rcv: tcb::RecvSeq,
    /// SACK was negotiated (RFC 2018).
    pub sack: bool,
    /// ECN was negotiated (RFC 3168 §6.1.1; Linux's `TCPI_OPT_ECN`).
    pub ecn: bool,
    /// TS.Recent, if timestamps were negotiated (RFC 7323).
    pub ts_recent: Option<u32>,
    /// Smoothed RTT, once measured, and the retransmission timeout (RFC 6298).
    pub srtt: Option<Duration>,
    /// The current retransmission timeout (RFC 6298).
    pub rto: Duration,
    /// Consecutive timeouts of the same data.
    pub retries: u32,
    /// Congestion window and bytes in flight.
    pub cwnd: u32,
    /// The slow start threshold (`u32::MAX` while unset, and always for BBR).
    pub ssthresh: u32,
    /// The congestion control algorithm: "cubic", "newreno" or "bbr".
    pub congestion: &'static str,
    /// The controller's state (BBR's "Startup", "ProbeBW_UP", ...), if it has states.
    pub cc_phase: Option<&'static str>,
    /// The pacing rate, bytes a second, if the connection is paced.
    pub pacing_rate: Option<u64>,
    /// BBR's model of the path.
    pub path_model: Option<congestion::PathModel>,
    /// Bytes delivered and bytes deemed lost so far (Linux's `tcpi_delivered` and
    /// `tcpi_lost`, in bytes), where the connection estimates its delivery rate (BBR).
    pub delivery: Option<(u64, u64)>,
    /// Bytes in flight: sent and not yet acknowledged (SND.NXT - SND.UNA).
    pub flight: u32,
    /// Bytes written and not yet acknowledged (sent or not).
    pub unsent: usize,
    /// Bytes received in order and not yet read.
    pub readable: usize,
    /// Data beyond a hole waits in the receive buffer.
    pub out_of_order: bool,
    /// The connection's timers.
    pub timers: timers::Timers,
}
