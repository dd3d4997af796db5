//! The transmission control block: one connection's state (RFC 9293 §3.3.1).

use super::buffer::{RecvBuffer, SendBuffer};
use super::congestion::{new_controller, CongestionControl};
use super::rtt::RttEstimator;
use super::seq::Seq;
use super::shared::{IoState, SocketIo};
use super::TcpConfig;
use crate::time::Instant;
use std::net::SocketAddrV4;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    Closed,
}

impl State {
    /// The connection has exchanged SYNs (RFC 9293 §3.5).
    pub fn synchronized(self) -> bool {
        !matches!(
            self,
            State::Listen | State::SynSent | State::SynReceived | State::Closed
        )
    }

    /// We may still send data.
    pub fn can_send(self) -> bool {
        matches!(self, State::Established | State::CloseWait)
    }

    /// Data from the peer is still accepted (RFC 9293 §3.10.7.4, seventh step).
    pub fn can_receive(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }
}

/// RFC 7323 timestamp state.
#[derive(Clone, Copy, Debug)]
pub struct Timestamps {
    /// TS.Recent: the peer's TSval to echo.
    pub recent: u32,
    /// When TS.Recent was set, for the 24-day PAWS rule (RFC 7323 §5.5).
    pub recent_age: Instant,
    /// Added to our clock so that TSval does not reveal uptime (like Linux's per-flow offset).
    pub offset: u32,
}

/// Most quick ACKs granted at once (Linux `TCP_MAX_QUICKACKS`).
const MAX_QUICK_ACKS: u32 = 16;

/// How the receiver paces its ACKs beyond the delayed-ACK timer, as Linux does
/// (`tcp_incr_quickack`, ping-pong mode): RFC 1122 §4.2.3.2 and RFC 5681 §4.2 allow delaying an
/// ACK, not require it.
#[derive(Clone, Copy, Debug, Default)]
pub struct DelayedAck {
    /// Data segments still to be ACKed at once: granted at the first data and after an idle
    /// gap longer than the RTO, so that a sender in slow start never waits on our timer.
    pub quick: u32,
    /// Interactive mode: we reply to what arrives, so an ACK waits to ride on the reply. Left
    /// when the delayed-ACK timer fires without a reply.
    pub pingpong: bool,
    /// When data last arrived (Linux `lrcvtime`).
    pub last_data: Option<Instant>,
}

impl DelayedAck {
    /// Data arrived at `now`: after silence (none yet, or none for an RTO) grant quick ACKs,
    /// as many as half the window holds segments, at least 2 and at most 16.
    pub fn on_data(&mut self, now: Instant, rto: Duration, window: u32, rcv_mss: u32) {
        if self.last_data.is_none_or(|at| now - at > rto) {
            let grant = (window / (2 * rcv_mss.max(1))).clamp(2, MAX_QUICK_ACKS);
            self.quick = self.quick.max(grant);
        }
        self.last_data = Some(now);
    }

    /// Whether the data just received is ACKed at once.
    pub fn quick_ack(&self) -> bool {
        self.quick > 0 && !self.pingpong
    }
}

pub struct Tcb {
    pub state: State,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,

    // Send sequence variables (RFC 9293 §3.3.1).
    pub iss: Seq,
    pub snd_una: Seq,
    pub snd_nxt: Seq,
    /// Highest sequence number sent (snd_nxt is rewound on timeout; this is not).
    pub snd_max: Seq,
    /// Send window in bytes (already scaled).
    pub snd_wnd: u32,
    /// Largest window the peer offered, for sender SWS avoidance (RFC 9293 §3.8.6.2.1).
    pub max_snd_wnd: u32,
    pub snd_wl1: Seq,
    pub snd_wl2: Seq,
    /// Effective send MSS: the peer's MSS option (536 if absent), capped by our MTU.
    pub snd_mss: u32,

    // Receive sequence variables.
    pub irs: Seq,
    pub rcv_nxt: Seq,
    /// Right edge of the window we advertised; it never moves left (RFC 9293 §3.8.6.2.2).
    pub rcv_adv: Seq,
    /// The ACK we last sent, for RFC 7323's TS.Recent update rule.
    pub last_ack_sent: Seq,

    // Options.
    /// Shift the peer applies to windows it advertises (its Window Scale option).
    pub snd_wscale: u8,
    /// Shift we apply to the windows we advertise.
    pub rcv_wscale: u8,
    pub ts: Option<Timestamps>,
    pub sack_ok: bool,

    /// The send and receive buffers and what the socket handle sees, shared with it.
    pub io: Arc<SocketIo>,
    /// The application is done writing: a FIN follows the buffered data.
    pub fin_queued: bool,
    /// Sequence number of our FIN once it has been sent.
    pub our_fin: Option<Seq>,
    /// The peer's FIN position, once seen (it may arrive before earlier data).
    pub fin_seq: Option<Seq>,
    /// The application will not read any more (shutdown(Read) or closed).
    pub read_closed: bool,
    /// The socket handle is gone; the connection finishes on its own.
    pub orphan: bool,

    // Retransmission (RFC 6298) and congestion control (RFC 5681).
    pub rtt: RttEstimator,
    pub rto_at: Option<Instant>,
    /// The segment being timed for an RTT sample (Karn's algorithm), as (end seq, sent at).
    pub rtt_probe: Option<(Seq, Instant)>,
    /// After a timeout: snd_max then. Until snd_una passes it the connection recovers from
    /// the timeout (Linux's Loss state), and no tail loss probe is sent.
    pub rto_recover: Option<Seq>,
    /// Our TSval at that timeout's retransmission, while `rto_recover` lasts: echoed
    /// timestamps older than it are not RTT samples (Karn's rule applied to RFC 7323 RTTM:
    /// they time the lost original, not the path).
    pub rto_stamp: Option<u32>,
    /// Consecutive retransmission timeouts of the same data.
    pub retries: u32,
    pub cc: Box<dyn CongestionControl>,
    pub dupacks: u32,
    /// What the receiver SACKed above snd_una (RFC 6675).
    pub scoreboard: super::sack::Scoreboard,
    /// RFC 6675 HighRxt: the highest sequence retransmitted in this recovery.
    pub high_rxt: Seq,
    /// Recovery point (RFC 6582, RFC 6675): in fast recovery until snd_una passes it.
    pub recover: Option<Seq>,
    /// Window inflation during fast recovery (RFC 5681 §3.2 steps 4 and 5).
    pub recovery_inflation: u32,
    /// Time-based loss detection and tail loss probes (RFC 8985).
    pub rack: super::rack::Rack,
    /// The probe timeout fired with new data to send: one segment goes regardless of cwnd
    /// (RFC 8985 §7.3).
    pub probe_new_data: bool,

    // Acknowledgement and other timers.
    pub ack_now: bool,
    pub delack_at: Option<Instant>,
    /// Quick-ACK and interactive modes of the delayed-ACK engine.
    pub delack: DelayedAck,
    /// Bytes received since our last ACK. RFC 1122 §4.2.3.2 asks for an ACK at least every
    /// second full-sized segment; counting bytes keeps that true for the 64 KB segments a tap
    /// with offloads delivers.
    pub unacked_bytes: u32,
    /// The peer's full-sized segment as we see it: the largest payload received, at most one
    /// MSS (Linux's `rcv_mss`). Options make it smaller than the MSS, so "two full-sized
    /// segments" is counted against this, not the MSS.
    pub rcv_mss: u32,
    pub persist_at: Option<Instant>,
    pub persist_backoff: u32,
    /// End of the last short (sub-MSS) segment of new data sent, for Nagle with Minshall's
    /// modification (Linux `snd_sml`).
    pub snd_sml: Seq,
    pub timewait_at: Option<Instant>,
    /// Output is owed once the current batch of received frames is processed.
    pub output_pending: bool,
    /// The deadline this connection is filed under in the timer index.
    pub timer_key: Option<Instant>,
    /// An orphan in FIN-WAIT-2 gives up after this (Linux `tcp_fin_timeout`).
    pub finwait2_at: Option<Instant>,

    /// The SWS override timer fired: send what the window allows even if it is small
    /// (RFC 9293 §3.8.6.2.1).
    pub sws_override: bool,
    /// Resend the segment at snd_una now (fast retransmit, partial ACK), without rewinding.
    pub retransmit_head: bool,
    /// RFC 5961 §7 challenge ACK budget: the second it counts in, and how many were sent.
    pub challenge_window: Instant,
    pub challenge_count: u32,
    pub nodelay: bool,
    /// Keep-alive idle time, if enabled.
    pub keepalive: Option<Duration>,
    pub keepalive_at: Option<Instant>,
    /// Probes sent since the peer was last heard from.
    pub keepalive_probes: u32,
    /// Listener this connection is queued on until accepted.
    pub listener: Option<crate::id::SocketId>,
}

impl Tcb {
    pub fn new(
        cfg: &TcpConfig,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: Seq,
        our_mss: u32,
        ts_offset: u32,
    ) -> Tcb {
        // The smallest shift that lets the whole receive buffer be advertised (RFC 7323 §2.3).
        let mut rcv_wscale = 0u8;
        while (cfg.recv_buffer >> rcv_wscale) > 65535 && rcv_wscale < 14 {
            rcv_wscale += 1;
        }
        Tcb {
            state: State::Closed,
            local,
            remote,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: Seq(0),
            snd_mss: 536.min(our_mss),
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_adv: Seq(0),
            last_ack_sent: Seq(0),
            snd_wscale: 0,
            rcv_wscale,
            ts: Some(Timestamps {
                recent: 0,
                recent_age: now,
                offset: ts_offset,
            }),
            sack_ok: true,
            io: Arc::new(SocketIo::new(
                SendBuffer::new(cfg.send_buffer),
                RecvBuffer::new(cfg.recv_buffer, cfg.max_ooo_ranges),
            )),
            fin_queued: false,
            our_fin: None,
            fin_seq: None,
            read_closed: false,
            orphan: false,
            rtt: RttEstimator::new(),
            rto_at: None,
            rtt_probe: None,
            rto_stamp: None,
            rto_recover: None,
            retries: 0,
            cc: new_controller(cfg.congestion, our_mss, now),
            dupacks: 0,
            scoreboard: Default::default(),
            high_rxt: iss,
            recover: None,
            recovery_inflation: 0,
            rack: Default::default(),
            probe_new_data: false,
            ack_now: false,
            delack_at: None,
            delack: DelayedAck::default(),
            unacked_bytes: 0,
            rcv_mss: 536,
            persist_at: None,
            persist_backoff: 0,
            snd_sml: iss,
            timewait_at: None,
            output_pending: false,
            timer_key: None,
            finwait2_at: None,
            retransmit_head: false,
            sws_override: false,
            challenge_window: now,
            challenge_count: 0,
            nodelay: false,
            keepalive: None,
            keepalive_at: None,
            keepalive_probes: 0,
            listener: None,
        }
    }

    /// The buffers and handle-visible state, locked; never hold it across another `io()`.
    pub fn io(&self) -> MutexGuard<'_, IoState> {
        self.io.lock()
    }

    /// Our MSS option value: what fits our MTU.
    pub fn our_mss(mtu: usize) -> u32 {
        (mtu.saturating_sub(40)).clamp(88, 65495) as u32
    }

    /// The receive window we can offer now: free buffer space (RFC 9293 §3.8.6.2.2).
    pub fn rcv_wnd(&self) -> u32 {
        self.io().recv.window().min(u32::MAX as usize >> 2) as u32
    }

    /// What is left of the window we last advertised: RCV.ADV - RCV.NXT, or 0.
    pub fn advertised_room(&self) -> u32 {
        if self.rcv_adv.gt(self.rcv_nxt) {
            self.rcv_adv.since(self.rcv_nxt)
        } else {
            0
        }
    }

    /// How far the window's right edge must move before it is worth advertising:
    /// min(buffer/2, MSS) (receiver SWS avoidance, RFC 9293 §3.8.6.2.2).
    pub fn window_update_threshold(&self) -> u32 {
        (self.io().recv.capacity() as u32 / 2).min(self.snd_mss)
    }

    /// Data in flight: sent and not acknowledged (SYN and FIN count).
    pub fn flight(&self) -> u32 {
        self.snd_nxt.since(self.snd_una)
    }

    /// The SYN occupies one sequence number before the first data byte.
    fn syn_pending_ack(&self) -> bool {
        self.snd_una == self.iss
    }

    /// Offset in the send buffer of sequence number `seq`.
    pub fn send_offset(&self, seq: Seq) -> usize {
        seq.since(self.snd_una) as usize - usize::from(self.syn_pending_ack())
    }

    /// Whether our FIN has been acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.our_fin.is_some_and(|f| self.snd_una.gt(f))
    }
}

impl Tcb {
    /// Stops every timer of the connection (the same list as [`Tcb::next_timer`]).
    pub fn clear_timers(&mut self) {
        self.rto_at = None;
        self.delack_at = None;
        self.persist_at = None;
        self.timewait_at = None;
        self.finwait2_at = None;
        self.keepalive_at = None;
        self.rack.reo_at = None;
        self.rack.pto_at = None;
    }

    /// The earliest of this connection's timers.
    pub fn next_timer(&self) -> Option<Instant> {
        [
            self.rto_at,
            self.delack_at,
            self.persist_at,
            self.timewait_at,
            self.finwait2_at,
            self.keepalive_at,
            self.rack.reo_at,
            self.rack.pto_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
