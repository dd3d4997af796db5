//! The sans-IO protocol core: frames and API calls in, frames and events out.
//!
//! Nothing here reads a clock, spawns a thread or touches a device. The driver (the runtime, a
//! test, or pcap replay) passes `now` into every call, feeds received frames to
//! [`Interface::receive`], calls [`Interface::poll`] by [`Interface::poll_at`], and drains
//! [`Interface::pop_transmit`] and [`Interface::pop_event`].

mod arp;
mod autoconf;
mod ethernet;
mod icmp;
mod icmpv6;
mod intercept;
mod ipv4;
mod ipv6;
mod ndp;
mod queues;
mod reassembly;
mod tcp;
mod udp;

pub use ethernet::RxChecksums;
pub use intercept::{EchoOffer, EchoVerdict, InterceptIo, InterceptState, UdpOffer};
pub use ipv4::Pmtud;
pub use ipv6::{Addr6, AddrState, Ipv6State};
pub use ndp::NudState;
pub use queues::PassOn;
pub use reassembly::{FragKey, Fragment, Reassembler};
pub(crate) use udp::copy_out as udp_copy_out;
pub use udp::{lock_udp, FlowDecision, UdpIo, UdpShared, MAX_UDP_PAYLOAD, UDP_POSTED_MAX};

use crate::config::StackConfig;
use crate::stats::Counters;
use crate::tcp::output::TxPayload;
use crate::time::{earliest, Instant};
use crate::wire::Medium;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

pub use crate::id::{Event, SocketId};

/// A frame to send, with its transmit offload.
#[derive(Debug)]
pub struct TxFrame {
    /// The Ethernet frame.
    pub bytes: Vec<u8>,
    /// A TCP super-segment (over the MTU) for the device to split into pieces of this many
    /// payload bytes, its TCP checksum left partial: see [`crate::wire::gso`]. `None` for a
    /// frame that goes on the wire as it is.
    pub tso_mss: Option<u16>,
    /// A TCP super-segment's payload, still in its connection's send buffer: `bytes` then
    /// ends with the TCP header, and the frame is `bytes` followed by these (see
    /// [`crate::tcp::output::TxPayload`]).
    pub payload: Option<TxPayload>,
}

impl TxFrame {
    pub(crate) fn whole(bytes: Vec<u8>) -> TxFrame {
        TxFrame {
            bytes,
            tso_mss: None,
            payload: None,
        }
    }

    /// Makes `bytes` the whole frame, copying in a payload left in a send buffer; false if
    /// that payload is no longer held (acknowledged or discarded meanwhile): the frame need
    /// not be sent.
    pub fn materialize(&mut self) -> bool {
        match self.payload.take() {
            Some(p) => p.gather_into(&mut self.bytes),
            None => true,
        }
    }
}

/// One network interface with its protocol state.
pub struct Interface {
    cfg: StackConfig,
    stats: Counters,
    rng: ChaCha8Rng,
    next_ip_id: u16,
    arp: arp::Arp,
    reasm: Reassembler,
    icmp_limiter: icmp::RateLimiter,
    udp: udp::UdpTable,
    tcp: crate::tcp::Tcp,
    /// TCP's segments on their way to the IP layer (kept for its capacity).
    tcp_out: Vec<crate::tcp::output::Outgoing>,
    tx: VecDeque<TxFrame>,
    events: VecDeque<Event>,
    /// The latest time the driver passed in, for output deferred to `pop_transmit`.
    now: Instant,
    /// The offers of catch-all interception, shared with the application; `None` when off.
    intercept: Option<std::sync::Arc<InterceptIo>>,
    /// IPv6's addresses and neighbours; `None` when IPv6 is off.
    ip6: Option<ipv6::Ipv6State>,
    /// Where the frame being taken may go, on one of several queues of a link.
    queue: queues::QueueInput,
}

/// A stack thread that ends, even by a panic, leaves no interceptor asleep.
impl Drop for Interface {
    fn drop(&mut self) {
        self.stop_interceptor();
        // UDP receives fail from now on rather than wait (the waiter lists wake them next).
        self.udp_stop();
    }
}

impl Interface {
    /// A new interface; on Ethernet it announces itself with a gratuitous ARP.
    pub fn new(cfg: StackConfig, now: Instant) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        // Queues of one link share the seed: their IP identifications start apart.
        let spread = (cfg.queue * (usize::from(u16::MAX) + 1) / cfg.queues.max(1)) as u16;
        let next_ip_id = rng.random::<u16>().wrapping_add(spread);
        let mut tcp = crate::tcp::Tcp::new(
            cfg.tcp.clone(),
            cfg.ip.into(),
            cfg.mtu,
            rng.random(),
            rng.random(),
        );
        if cfg.prefix_len < 31 {
            tcp.set_subnet_broadcast(cfg.subnet_broadcast().into());
        }
        if cfg.queues > 1 {
            tcp.set_queue(cfg.queue, cfg.queues);
        }
        let intercept = cfg.intercept.as_ref().map(|ic| {
            tcp.set_intercept(*ic);
            std::sync::Arc::new(InterceptIo::with(InterceptState::default()))
        });
        // A link that cannot carry 1280 bytes in one piece carries no IPv6 (RFC 8200 §5), as
        // Linux turns IPv6 off on one.
        if cfg.ipv6.is_some() && cfg.mtu < ipv6::MIN_MTU {
            log::warn!("MTU {} is below IPv6's 1280: IPv6 stays off", cfg.mtu);
        }
        let ip6 = cfg
            .ipv6
            .clone()
            .filter(|_| cfg.mtu >= ipv6::MIN_MTU && cfg.runs_ipv6())
            .map(|c| ipv6::Ipv6State::new(c, cfg.mac, cfg.medium, now));
        let mut iface = Interface {
            ip6,
            tcp,
            tcp_out: Vec::new(),
            next_ip_id,
            arp: arp::Arp::new(cfg.arp.clone()),
            reasm: Reassembler::new(cfg.reassembly.clone()),
            icmp_limiter: icmp::RateLimiter::new(&cfg.icmp, now),
            udp: udp::UdpTable::default(),
            intercept,
            tx: VecDeque::new(),
            events: VecDeque::new(),
            now,
            stats: Counters::default(),
            rng,
            queue: queues::QueueInput {
                pass_on: cfg.queues > 1,
                ..Default::default()
            },
            cfg,
        };
        iface.sync_tcp_addrs();
        if iface.cfg.medium == Medium::Ethernet && iface.cfg.queue == 0 {
            iface.send_gratuitous_arp();
        }
        iface
    }

    /// The configuration the interface runs with.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// A snapshot of the counters; gauges are computed as it is taken.
    pub fn counters(&self) -> Counters {
        Counters {
            tcp_curr_estab: self.tcp.established(),
            tcp_table: self.tcp.table_len(),
            reasm_bytes: self.reasm.mem() as u64,
            icpt_tcp_conns: self.tcp.intercepted(),
            icpt_udp_flows: self.udp.flows() as u64,
            tcp_trace_records: self.tcp.trace_records(),
            tcp_time_wait: self.tcp.time_wait() as u64,
            tcp_mem_bytes: self.tcp.memory().allocated() as u64,
            tcp_mem_pressure: u64::from(self.tcp.memory().under_pressure()),
            ..self.stats.clone()
        }
    }

    /// Counts a frame the device failed to send.
    pub fn count_tx_error(&mut self) {
        self.stats.dev_tx_errors += 1;
    }

    /// Counts frames the runtime could not pass on to another queue: its backlog of passed
    /// frames was full, or it had stopped.
    pub fn count_pass_dropped(&mut self, frames: u64) {
        self.stats.queue_pass_dropped += frames;
    }

    /// Bytes held by incomplete datagrams.
    pub fn reassembly_mem(&self) -> usize {
        self.reasm.mem()
    }

    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.flush_deferred_tcp();
        let arp = self.arp.poll(now, &mut self.stats);
        for ip in arp.requests {
            self.send_arp_request(ip, crate::wire::MacAddr::BROADCAST);
        }
        for dg in arp.failed {
            self.udp_host_unreachable(&dg);
        }
        for quote in self.reasm.poll(now, &mut self.stats) {
            self.icmp_reassembly_timeout(now, &quote);
        }
        self.tcp.poll(now, &mut self.stats);
        self.flush_tcp(now);
        self.udp_poll(now);
        self.ipv6_poll(now);
    }

    /// When [`Interface::poll`] next has work to do.
    pub fn poll_at(&self) -> Option<Instant> {
        earliest(
            earliest(
                earliest(self.arp.poll_at(), self.reasm.poll_at()),
                earliest(self.tcp.poll_at(), self.udp.poll_at()),
            ),
            self.ip6.as_ref().and_then(|s| s.poll_at()),
        )
    }

    /// The next frame to put on the wire. Super-segments (when TCP's `tso` is on) are split
    /// here in software, so every frame fits the MTU.
    pub fn pop_transmit(&mut self) -> Option<Vec<u8>> {
        let frame = self.pop_transmit_frame()?;
        let Some(mss) = frame.tso_mss else {
            return Some(frame.bytes);
        };
        let Some(pieces) = crate::wire::gso::segment(&frame.bytes, usize::from(mss)) else {
            return Some(frame.bytes);
        };
        let mut pieces = pieces.into_iter();
        let first = pieces.next();
        for piece in pieces.rev() {
            self.tx.push_front(TxFrame::whole(piece));
        }
        first
    }

    /// The next frame to send, super-segments whole, for a device that splits them. When none
    /// is queued, the output deferred by the last batch of received segments is run first
    /// (their ACKs go out together, one per batch), as [`Interface::poll`] also does.
    pub fn pop_transmit_frame(&mut self) -> Option<TxFrame> {
        loop {
            let mut frame = self.pop_transmit_parts()?;
            if frame.materialize() {
                return Some(frame);
            }
            self.count_stale_payload();
        }
    }

    /// The next frame to send, as [`Interface::pop_transmit_frame`], but with a
    /// super-segment's payload left where it is ([`TxFrame::payload`]), for a device that
    /// writes a frame in parts.
    pub fn pop_transmit_parts(&mut self) -> Option<TxFrame> {
        if self.tx.is_empty() {
            self.flush_deferred_tcp();
        }
        self.tx.pop_front()
    }

    /// Counts a frame dropped because the send-buffer bytes it carried were acknowledged or
    /// discarded before the device took it.
    pub fn count_stale_payload(&mut self) {
        self.stats.tcp_out_stale += 1;
    }

    /// Returns the buffer of a frame the device has sent, for the stack to build another in.
    pub fn recycle(&mut self, frame: Vec<u8>) {
        self.tcp.recycle(frame);
    }

    /// Moves the per-connection trace records made since the last call to `into`
    /// ([`crate::tcp::trace`]).
    pub fn take_trace(&mut self, into: &mut Vec<crate::tcp::trace::TraceRecord>) {
        self.tcp.take_trace(into);
    }

    /// The next event for the driver (a socket became ready), if any.
    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Closes whichever socket `id` names (the handle was dropped).
    pub fn close_socket(&mut self, now: Instant, id: SocketId) {
        if id.is_tcp() {
            self.with_tcp(now, |tcp, stats| tcp.close(id, now, stats));
        } else {
            self.udp_close(id);
        }
    }

    fn queue_frame(&mut self, frame: TxFrame) {
        self.stats.eth_tx_frames += 1;
        self.tx.push_back(frame);
    }
}
