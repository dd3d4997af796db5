//! The transmission control block: one connection's state (RFC 9293 §3.3.1).

use super::buffer::{MemoryPool, RecvBuffer, SendBuffer};
use super::congestion::rate::Delivery;
use super::congestion::{new_controller, CongestionControl};
use super::ecn::EcnState;
use super::pacing::Pacing;
use super::recovery::Recovery;
use super::rtt::RttEstimator;
use super::seq::Seq;
use super::shared::{IoState, SocketIo};
use super::timers::Timers;
use super::TcpConfig;
use crate::config::Buffers;
use crate::sync::MutexGuard;
use crate::time::Instant;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// LISTEN: waiting for a connection request from any remote TCP and port.
    Listen,
    /// SYN-SENT: waiting for a matching connection request after having sent one.
    SynSent,
    /// SYN-RECEIVED: waiting for the ACK of our SYN, having both received and sent a SYN.
    SynReceived,
    /// ESTABLISHED: an open connection; data received can be delivered to the user.
    Established,
    /// FIN-WAIT-1: waiting for the peer's FIN, or for the ACK of the FIN we sent.
    FinWait1,
    /// FIN-WAIT-2: our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// CLOSE-WAIT: the peer has sent its FIN; waiting for the local user to close.
    CloseWait,
    /// CLOSING: both sides sent a FIN; waiting for the ACK of ours.
    Closing,
    /// LAST-ACK: the peer closed first and we sent our FIN; waiting for its ACK.
    LastAck,
    /// TIME-WAIT: waiting 2 MSL to be sure the peer received the ACK of its FIN.
    TimeWait,
    /// CLOSED: no connection state at all (a new control block starts here).
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

/// Send sequence space (RFC 9293 §3.3.1): SND.UNA, SND.NXT, SND.WND, SND.WL1, SND.WL2, ISS.
#[derive(Clone, Copy, Debug)]
pub struct SendSeq {
    /// ISS: our initial send sequence number.
    pub iss: Seq,
    /// SND.UNA: the oldest unacknowledged sequence number.
    pub una: Seq,
    /// SND.NXT: the next sequence number to send.
    pub nxt: Seq,
    /// Highest sequence number sent (`nxt` is rewound on timeout; this is not).
    pub max: Seq,
    /// Send window in bytes (already scaled).
    pub wnd: u32,
    /// Largest window the peer offered, for sender SWS avoidance (RFC 9293 §3.8.6.2.1).
    pub max_wnd: u32,
    /// SND.WL1: the sequence number of the segment that last updated the window.
    pub wl1: Seq,
    /// SND.WL2: the acknowledgment number of the segment that last updated the window.
    pub wl2: Seq,
    /// Effective send MSS: the peer's MSS option (536 if absent), capped by our MTU.
    pub mss: u32,
    /// Shift the peer applies to windows it advertises (its Window Scale option, RFC 7323).
    pub wscale: u8,
    /// End of the last short (sub-MSS) segment of new data sent, for Nagle with Minshall's
    /// modification (Linux `snd_sml`).
    pub sml: Seq,
}

impl SendSeq {
    /// Takes a segment's window (already scaled) and remembers the segment that set it:
    /// SND.WND, SND.WL1 and SND.WL2 (RFC 9293 §3.10.7.4, fifth step).
    pub fn set_window(&mut self, wnd: u32, seq: Seq, ack: Seq) {
        self.wnd = wnd;
        self.max_wnd = self.max_wnd.max(wnd);
        self.wl1 = seq;
        self.wl2 = ack;
    }

    /// The window update of an acceptable ACK: only from a segment no older than the one that
    /// last set the window, so that a reordered old segment cannot shrink it (RFC 9293
    /// §3.10.7.4, fifth step).
    pub fn update_window(&mut self, wnd: u32, seq: Seq, ack: Seq) {
        if self.wl1.lt(seq) || (self.wl1 == seq && self.wl2.le(ack)) {
            self.set_window(wnd, seq, ack);
        }
    }
}

/// Receive sequence space (RFC 9293 §3.3.1): RCV.NXT, the advertised window's edge, IRS.
#[derive(Clone, Copy, Debug)]
pub struct RecvSeq {
    /// IRS: the peer's initial sequence number.
    pub irs: Seq,
    /// RCV.NXT: the next sequence number expected from the peer.
    pub nxt: Seq,
    /// Right edge of the window we advertised; it never moves left (RFC 9293 §3.8.6.2.2).
    pub adv: Seq,
    /// The ACK we last sent, for RFC 7323's TS.Recent update rule.
    pub last_ack_sent: Seq,
    /// Shift we apply to the windows we advertise.
    pub wscale: u8,
    /// The peer's full-sized segment as we see it: the largest payload received, at most one
    /// MSS (Linux's `rcv_mss`). Options make it smaller than the MSS, so "two full-sized
    /// segments" is counted against this, not the MSS.
    pub mss: u32,
}

/// Options agreed in the handshake (RFC 7323, RFC 2018).
#[derive(Clone, Copy, Debug)]
pub struct Negotiated {
    /// Timestamp state (RFC 7323); `None` once the handshake shows the peer does not use them.
    pub ts: Option<Timestamps>,
    /// Whether SACK is used: we offer it, and it stays on if the peer's SYN permits it
    /// (RFC 2018 §2).
    pub sack_ok: bool,
}

/// The FINs (RFC 9293 §3.6).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fin {
    /// The application is done writing: a FIN follows the buffered data.
    pub queued: bool,
    /// Sequence number of our FIN once it has been sent.
    pub ours: Option<Seq>,
    /// The peer's FIN position, once seen (it may arrive before earlier data).
    pub peer: Option<Seq>,
}

/// What the user (the socket handle) asked of the connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct User {
    /// The application will not read any more (shutdown(Read) or closed).
    pub read_closed: bool,
    /// The socket handle is gone; the connection finishes on its own.
    pub orphan: bool,
    /// Nagle's algorithm is off (`TCP_NODELAY`).
    pub nodelay: bool,
    /// Keep-alive, if enabled (RFC 1122 §4.2.3.6).
    pub keepalive: Option<crate::config::Keepalive>,
    /// Listener this connection belongs to while in SYN-RECEIVED.
    pub listener: Option<crate::id::SocketId>,
    /// `IP_TTL` of the connection's segments, if set.
    pub ttl: Option<u8>,
    /// R2, if the application set it: retransmissions of the same data before the
    /// connection is given up (RFC 9293 §3.8.3, MUST-21); else the stack's `max_retries`.
    pub max_retries: Option<u32>,
    /// The Diffserv field (DSCP, RFC 2474) of the connection's segments, set by the
    /// application (RFC 9293 MUST-48; `IP_TOS`).
    pub dscp: u8,
}

/// Retransmission timing (RFC 6298).
#[derive(Clone, Debug)]
pub struct Retransmission {
    /// The RTT estimator: SRTT, RTTVAR and the RTO (RFC 6298 §2).
    pub rtt: RttEstimator,
    /// The segment being timed for an RTT sample (Karn's algorithm), as (end seq, sent at).
    pub rtt_probe: Option<(Seq, Instant)>,
    /// After a timeout: snd.max then. Until snd.una passes it the connection recovers from
    /// the timeout (Linux's Loss state), and no tail loss probe is sent.
    pub rto_recover: Option<Seq>,
    /// Our TSval at that timeout's retransmission, while `rto_recover` lasts: echoed
    /// timestamps older than it are not RTT samples (Karn's rule applied to RFC 7323 RTTM:
    /// they time the lost original, not the path).
    pub rto_stamp: Option<u32>,
    /// Consecutive retransmission timeouts of the same data.
    pub retries: u32,
}

/// Acknowledgements we owe (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2) and challenge ACKs
/// (RFC 5961 §7).
#[derive(Clone, Copy, Debug)]
pub struct Acks {
    /// An ACK goes out with the next output.
    pub now: bool,
    /// The segment just received was out of order or filled a hole: its ACK goes out at
    /// once, not at the end of the receive batch (RFC 5681 §4.2).
    pub out_of_order: bool,
    /// Bytes received since our last ACK. RFC 1122 §4.2.3.2 asks for an ACK at least every
    /// second full-sized segment; counting bytes keeps that true for the 64 KB segments a tap
    /// with offloads delivers.
    pub unacked_bytes: u32,
    /// Quick-ACK and interactive modes of the delayed-ACK engine.
    pub delack: DelayedAck,
    /// A duplicate segment arrived: the next ACK reports it as a D-SACK, its first SACK
    /// block (RFC 2883 §4).
    pub dsack: Option<(Seq, Seq)>,
    /// The challenge ACK budget: the second it counts in, and how many were sent.
    pub challenge_window: Instant,
    /// Challenge ACKs sent in that second (at most ten, RFC 5961 §7).
    pub challenge_count: u32,
}

/// Output owed beyond what the windows allow by themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputFlags {
    /// Output is owed once the current batch of received frames is processed.
    pub pending: bool,
    /// The SWS override timer fired: send what the window allows even if it is small
    /// (RFC 9293 §3.8.6.2.1).
    pub sws_override: bool,
    /// Resend the segment at snd.una now (fast retransmit, partial ACK), without rewinding.
    pub retransmit_head: bool,
    /// The probe timeout fired with new data to send: one segment goes regardless of cwnd
    /// (RFC 8985 §7.3).
    pub probe_new_data: bool,
    /// How much of cwnd is in use, for congestion window validation (RFC 7661; Linux's
    /// `tcp_cwnd_validate`): cwnd grows only while it limits the sender.
    pub cwnd_use: CwndUse,
}

/// The use of the congestion window over the current round trip.
#[derive(Clone, Copy, Debug, Default)]
pub struct CwndUse {
    /// The most data in flight since the round began.
    pub max_flight: u32,
    /// cwnd held output back in this round.
    pub limited: bool,
    /// The round ends when SND.UNA reaches this.
    pub round_end: Seq,
}

impl CwndUse {
    /// After output, with `flight` bytes in the network and `blocked` if cwnd left no room
    /// for another segment: remembers the strongest sign of use this round (Linux).
    pub fn after_output(&mut self, flight: u32, blocked: bool, una: Seq, nxt: Seq) {
        if una.ge(self.round_end) || blocked || (!self.limited && flight > self.max_flight) {
            self.limited = blocked;
            self.max_flight = flight;
            self.round_end = nxt;
        }
    }

    /// Whether an ACK may grow a window of `cwnd` below or above `ssthresh`: in slow start
    /// while cwnd is under twice what was in flight, in congestion avoidance only if cwnd
    /// limited the sender (RFC 7661 §4.3, RFC 9438 §4.6; Linux's `tcp_is_cwnd_limited`).
    pub fn may_grow(&self, cwnd: u32, ssthresh: u32) -> bool {
        if cwnd < ssthresh {
            cwnd < self.max_flight.saturating_mul(2)
        } else {
            self.limited
        }
    }
}

/// One connection's state, grouped by RFC concept.
pub struct Tcb {
    /// The connection's state (RFC 9293 §3.3.2).
    pub state: State,
    /// Our end of the connection: local address and port.
    pub local: SocketAddr,
    /// The peer's end of the connection: remote address and port.
    pub remote: SocketAddr,
    /// An IPv4 connection of an IPv6 listener: its handle sees IPv4-mapped addresses.
    pub mapped: bool,
    /// The send sequence space: SND.UNA, SND.NXT, SND.WND, ...
    pub snd: SendSeq,
    /// The receive sequence space: RCV.NXT, the advertised window's edge, ...
    pub rcv: RecvSeq,
    /// The options agreed in the handshake: timestamps and SACK.
    pub opts: Negotiated,
    /// Explicit Congestion Notification (RFC 3168 §6.1).
    pub ecn: EcnState,
    /// The send and receive buffers and what the socket handle sees, shared with it.
    pub io: Arc<SocketIo>,
    /// Where our FIN and the peer's stand.
    pub fin: Fin,
    /// What the user asked of the connection: shutdown, Nagle, keep-alive, TTL.
    pub user: User,
    /// An intercepted connection's hold on the interception cap, until TIME-WAIT.
    pub slot: Option<super::intercept::ConnSlot>,
    /// Retransmission timing: RTT estimation, Karn's timed segment, timeouts (RFC 6298).
    pub rtx: Retransmission,
    /// Congestion control (RFC 5681, RFC 9438, BBR).
    pub cc: Box<dyn CongestionControl>,
    /// Delivery rate estimation, for a controller that models the path (BBR).
    pub rate: Option<Box<Delivery>>,
    /// Pacing: when the next segment may leave.
    pub pacing: Pacing,
    /// Loss recovery: SACK, NewReno, RACK-TLP.
    pub recovery: Recovery,
    /// The ACKs we owe: at once or delayed, and the challenge ACK budget.
    pub ack: Acks,
    /// The connection's timers: retransmission, delayed ACK, persist, ...
    pub timers: Timers,
    /// Output owed beyond what the windows allow by themselves.
    pub output: OutputFlags,
    /// The connection's trace, if it is traced.
    pub trace: Option<Box<super::trace::ConnTrace>>,
}

/// Where a new connection starts: its two ends, its initial send sequence number (RFC 9293
/// §3.4.1) and the offset of its timestamps (RFC 7323 §5.4).
pub struct Opening {
    /// Our end: local address and port.
    pub local: SocketAddr,
    /// The peer's end: remote address and port.
    pub remote: SocketAddr,
    /// ISS: our initial send sequence number (RFC 9293 §3.4.1).
    pub iss: Seq,
    /// The offset added to our timestamp clock (RFC 7323 §5.4).
    pub ts_offset: u32,
}

/// An autotuned send buffer holds this many congestion windows: what the window may send now
/// and in the next round trip (Linux's `tcp_sndbuf_expand` doubles too).
pub const SNDBUF_PER_CWND: usize = 2;

/// The largest window shift (RFC 7323 §2.3).
pub const MAX_WSCALE: u8 = 14;

impl Tcb {
    /// A control block in CLOSED for the connection `open` describes, with buffers sized by
    /// `buffers` and the smallest receive window scale that advertises the whole receive buffer.
    pub fn new(
        cfg: &TcpConfig,
        buffers: Buffers,
        now: Instant,
        open: Opening,
        our_mss: u32,
        pool: &Arc<MemoryPool>,
    ) -> Tcb {
        let Opening {
            local,
            remote,
            iss,
            ts_offset,
        } = open;
        // The smallest shift that lets the whole receive buffer be advertised (RFC 7323 §2.3).
        let seed = u64::from(iss.0) << 32 | u64::from(ts_offset);
        let cc = new_controller(cfg.congestion, our_mss, now, seed);
        let mut send = SendBuffer::new(buffers.send).pooled(pool);
        if !buffers.send_locked {
            send.autotune(SNDBUF_PER_CWND * cc.cwnd() as usize);
        }
        let mut rcv_wscale = 0u8;
        while (buffers.recv >> rcv_wscale) > 65535 && rcv_wscale < MAX_WSCALE {
            rcv_wscale += 1;
        }
        Tcb {
            state: State::Closed,
            local,
            remote,
            mapped: false,
            snd: SendSeq {
                iss,
                una: iss,
                nxt: iss,
                max: iss,
                wnd: 0,
                max_wnd: 0,
                wl1: Seq(0),
                wl2: Seq(0),
                mss: 536.min(our_mss),
                wscale: 0,
                sml: iss,
            },
            rcv: RecvSeq {
                irs: Seq(0),
                nxt: Seq(0),
                adv: Seq(0),
                last_ack_sent: Seq(0),
                wscale: rcv_wscale,
                mss: 536,
            },
            opts: Negotiated {
                ts: Some(Timestamps {
                    recent: 0,
                    recent_age: now,
                    offset: ts_offset,
                }),
                sack_ok: true,
            },
            ecn: EcnState::new(cfg.ecn, cfg.ecn_low),
            io: Arc::new(SocketIo::new(send, {
                let mut recv = RecvBuffer::new(buffers.recv, cfg.max_ooo_ranges).pooled(pool);
                recv.set_min_room(our_mss as usize);
                recv
            })),
            fin: Fin::default(),
            user: User::default(),
            slot: None,
            rtx: Retransmission {
                rtt: RttEstimator::new(),
                rtt_probe: None,
                rto_recover: None,
                rto_stamp: None,
                retries: 0,
            },
            rate: cc.model_based().then(|| Box::new(Delivery::new(now, iss))),
            pacing: Pacing::new(cfg.pacing),
            cc,
            recovery: Recovery::new(iss),
            ack: Acks {
                now: false,
                out_of_order: false,
                unacked_bytes: 0,
                delack: DelayedAck::default(),
                dsack: None,
                challenge_window: now,
                challenge_count: 0,
            },
            timers: Timers::default(),
            output: OutputFlags::default(),
            trace: cfg.trace.then(Box::default),
        }
    }

    /// Moves to `next` (RFC 9293 §3.3.2), logging the transition at trace level.
    pub fn set_state(&mut self, next: State) {
        if self.state != next {
            log::trace!(
                "{} -> {}: {:?} -> {next:?}",
                self.local,
                self.remote,
                self.state
            );
            self.state = next;
            if matches!(next, State::TimeWait | State::Closed) {
                self.slot = None;
                // Nothing more is sent or received: TIME-WAIT and CLOSED hold no buffer (what
                // the application has yet to read stays; unsent data is dead, as Linux purges
                // its write queue at `tcp_done`).
                let mut io = self.io();
                io.send.discard();
                io.recv.discard_ooo();
                io.recv.release();
            }
        }
    }

    /// The buffers and handle-visible state, locked; never hold it across another `io()`.
    pub fn io(&self) -> MutexGuard<'_, IoState> {
        self.io.lock()
    }

    /// The receive window we can offer now: free buffer space (RFC 9293 §3.8.6.2.2).
    pub fn rcv_wnd(&self) -> u32 {
        self.io().recv.offer().min(u32::MAX as usize >> 2) as u32
    }

    /// What is left of the window we last advertised: RCV.ADV - RCV.NXT, or 0.
    pub fn advertised_room(&self) -> u32 {
        if self.rcv.adv.gt(self.rcv.nxt) {
            self.rcv.adv.since(self.rcv.nxt)
        } else {
            0
        }
    }

    /// How far the window's right edge must move before it is worth advertising:
    /// min(buffer/2, MSS) (receiver SWS avoidance, RFC 9293 §3.8.6.2.2).
    pub fn window_update_threshold(&self) -> u32 {
        (self.io().recv.capacity() as u32 / 2).min(self.snd.mss)
    }

    /// Data in flight: sent and not acknowledged (SYN and FIN count).
    pub fn flight(&self) -> u32 {
        self.snd.nxt.since(self.snd.una)
    }

    /// The SYN occupies one sequence number before the first data byte.
    fn syn_pending_ack(&self) -> bool {
        self.snd.una == self.snd.iss
    }

    /// Offset in the send buffer of sequence number `seq`.
    pub fn send_offset(&self, seq: Seq) -> usize {
        seq.since(self.snd.una) as usize - usize::from(self.syn_pending_ack())
    }

    /// The sequence number of send-buffer offset `offset`: the inverse of
    /// [`Tcb::send_offset`].
    pub fn offset_seq(&self, offset: usize) -> Seq {
        self.snd.una + (offset + usize::from(self.syn_pending_ack())) as u32
    }

    /// Whether our FIN has been acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.fin.ours.is_some_and(|f| self.snd.una.gt(f))
    }
}

impl Tcb {
    /// Follows a socket's congestion control choice: a new controller (from the initial
    /// window) if it names another algorithm, with the delivery rate estimator it needs;
    /// pacing on or off.
    pub fn set_congestion(&mut self, choice: super::CongestionChoice, now: Instant) {
        if let Some(alg) = choice.algorithm.filter(|a| a.name() != self.cc.name()) {
            let seed = u64::from(self.snd.iss.0) << 32 | u64::from(self.snd.una.0);
            self.cc = new_controller(alg, self.snd.mss, now, seed);
            let max = self.snd.max;
            self.rate = self
                .cc
                .model_based()
                .then(|| Box::new(Delivery::new(now, max)));
            // A reduction of the old controller is no longer this one's to undo.
            self.recovery.undo = Default::default();
            if self.ecn.ok && self.ecn.low {
                self.cc.use_ecn();
            }
        }
        if let Some(on) = choice.pacing {
            self.pacing.enabled = on;
        }
    }

    /// Stops every timer of the connection, RACK's included.
    pub fn clear_timers(&mut self) {
        self.timers.clear();
        self.recovery.rack.reo_at = None;
        self.recovery.rack.pto_at = None;
    }

    /// The earliest of this connection's timers, RACK's included.
    pub fn next_timer(&self) -> Option<Instant> {
        [
            self.timers.next().map(|(at, _)| at),
            self.recovery.rack.reo_at,
            self.recovery.rack.pto_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
