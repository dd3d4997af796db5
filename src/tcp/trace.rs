//! The per-connection trace: what a traced connection records of its own decisions, in the
//! stack's time, under qlog's event names (`transport:packet_sent`,
//! `recovery:metrics_updated`, ...).
//!
//! Sans-IO like the rest of TCP: records pile up in the connection and [`super::Tcp`] hands
//! them to the layer above, which writes them out ([`crate::trace`]). A connection that is not
//! traced carries `None` and pays one branch per hook: nothing is formatted, allocated or
//! counted for it.

use super::recovery;
use super::segment::{Flags, Options, SegmentIn, SegmentOut};
use super::seq::Seq;
use super::tcb::{State, Tcb};
use crate::time::Instant;
use std::net::SocketAddr;

/// Why a segment left, beyond new data or a plain ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTrigger {
    /// Data sent before: fast retransmit, SACK recovery, or after a timeout.
    Retransmission,
    /// A zero-window or keep-alive probe (RFC 9293 §3.8.6.1, RFC 1122 §4.2.3.6).
    Probe,
    /// A tail loss probe (RFC 8985 §7).
    TailLossProbe,
}

impl SendTrigger {
    /// The name the trace gives it.
    pub fn name(self) -> &'static str {
        match self {
            SendTrigger::Retransmission => "retransmission",
            SendTrigger::Probe => "probe",
            SendTrigger::TailLossProbe => "tail_loss_probe",
        }
    }
}

/// A segment as the trace records it: its header's numbers, not its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentTrace {
    /// SEG.SEQ.
    pub seq: u32,
    /// SEG.ACK, if the ACK flag is set.
    pub ack: Option<u32>,
    /// Bytes of data (a TSO super-segment's whole payload).
    pub len: u32,
    /// The control bits.
    pub flags: Flags,
    /// The window in bytes, scaled as the receiver reads it.
    pub window: u32,
    /// SACK blocks, D-SACK first when there is one.
    pub sack: [Option<(u32, u32)>; 4],
    /// The timestamps option (RFC 7323): TSval and TSecr.
    pub ts: Option<(u32, u32)>,
    /// A super-segment's piece size, if the device splits it (TSO).
    pub tso_mss: Option<u16>,
    /// Why it left, if not as new data or an ACK.
    pub trigger: Option<SendTrigger>,
}

/// The congestion controller's phase, as qlog's `congestion_state_updated` names it, with
/// Linux's `Loss` (after a timeout) and `CWR` (a one-step cut after a repaired probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CongestionState {
    /// cwnd < ssthresh (RFC 5681 §3.1).
    SlowStart,
    /// cwnd ≥ ssthresh.
    CongestionAvoidance,
    /// Fast recovery (RFC 6675, RFC 6582).
    Recovery,
    /// Recovering from a retransmission timeout (RFC 6298 §5).
    Loss,
    /// A window cut in one step (RFC 8985 §7.4), until what was out then is acknowledged.
    Cwr,
    /// A model-based controller's own state outside recovery: BBR's `Startup`, `Drain`,
    /// `ProbeBW_DOWN`, `ProbeBW_CRUISE`, `ProbeBW_REFILL`, `ProbeBW_UP` or `ProbeRTT`.
    Model(&'static str),
}

impl CongestionState {
    /// The name the trace gives it.
    pub fn name(self) -> &'static str {
        match self {
            CongestionState::SlowStart => "slow_start",
            CongestionState::CongestionAvoidance => "congestion_avoidance",
            CongestionState::Recovery => "recovery",
            CongestionState::Loss => "loss",
            CongestionState::Cwr => "cwr",
            CongestionState::Model(phase) => phase,
        }
    }
}

/// The decision behind a congestion-state change or a loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// RACK's time-based loss detection (RFC 8985 §6.2).
    Rack,
    /// SACK's DupThresh rule (RFC 6675 §5): enough SACKed above a hole.
    Sack,
    /// Three duplicate ACKs without SACK (RFC 5681 §3.2).
    Dupacks,
    /// The retransmission timeout (RFC 6298 §5).
    Rto,
    /// A tail loss probe repaired a loss: the window is cut in one step (RFC 8985 §7.4).
    TlpRepair,
    /// An ACK echoed a congestion mark: the window is cut in one step (RFC 3168 §6.1.2).
    Ecn,
    /// D-SACKs showed every retransmission was a duplicate (RFC 3708): the cut is undone.
    UndoDsack,
    /// An ACK echoed a timestamp older than the first retransmission (Eifel, RFC 3522).
    UndoEifel,
}

impl Trigger {
    /// The name the trace gives it.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Rack => "rack",
            Trigger::Sack => "sack",
            Trigger::Dupacks => "dupacks",
            Trigger::Rto => "rto",
            Trigger::TlpRepair => "tlp_repair",
            Trigger::Ecn => "ecn",
            Trigger::UndoDsack => "undo_dsack",
            Trigger::UndoEifel => "undo_eifel",
        }
    }
}

/// The metrics `recovery:metrics_updated` reports, in this order: bytes, microseconds for
/// times, bytes per second for the pacing rate.
pub const METRICS: [&str; 9] = [
    "congestion_window",
    "ssthresh",
    "bytes_in_flight",
    "smoothed_rtt",
    "rtt_variance",
    "rto",
    "pacing_rate",
    "snd_wnd",
    "rcv_wnd",
];

/// One value per entry of [`METRICS`]; `None` where the value is unknown (no RTT sample yet,
/// an infinite ssthresh) or, in an update, unchanged.
pub type Metrics = [Option<u64>; METRICS.len()];

/// Which timer expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossTimer {
    /// The retransmission timeout (RFC 6298).
    Rto,
    /// RACK's probe timeout (RFC 8985 §7.2).
    Pto,
    /// RACK's reordering window (RFC 8985 §6.2).
    Reorder,
    /// The persist timer (RFC 9293 §3.8.6.1).
    Persist,
}

impl LossTimer {
    /// The name the trace gives it.
    pub fn name(self) -> &'static str {
        match self {
            LossTimer::Rto => "rto",
            LossTimer::Pto => "pto",
            LossTimer::Reorder => "reorder",
            LossTimer::Persist => "persist",
        }
    }
}

/// One thing a traced connection did or saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// `transport:packet_sent`.
    PacketSent(SegmentTrace),
    /// `transport:packet_received`.
    PacketReceived(SegmentTrace),
    /// `transport:connection_state_updated` (RFC 9293 §3.3.2); `old` is `None` at the
    /// connection's first state record (after the SYN that opened it, for a passive open).
    StateUpdated {
        /// The state before.
        old: Option<State>,
        /// The state now.
        new: State,
    },
    /// `recovery:metrics_updated`: only the values that changed.
    MetricsUpdated(Metrics),
    /// `recovery:congestion_state_updated`, with what caused it when that is a loss or
    /// recovery decision.
    CongestionStateUpdated {
        /// The phase before.
        old: Option<CongestionState>,
        /// The phase now.
        new: CongestionState,
        /// The decision that moved it, if one did.
        trigger: Option<Trigger>,
    },
    /// `recovery:packet_lost`: what of the sequence range `[start, end)` is not SACKed is
    /// deemed lost, each range reported once (a retransmission lost again shows as the next
    /// retransmission).
    PacketLost {
        /// First byte deemed lost.
        start: u32,
        /// One past the last.
        end: u32,
        /// What decided it: RACK, SACK's DupThresh, duplicate ACKs or the timeout.
        trigger: Trigger,
    },
    /// `recovery:loss_timer_updated` with `event_type` `expired`.
    TimerExpired(LossTimer),
}

impl TraceEvent {
    /// The qlog name of the event.
    pub fn name(&self) -> &'static str {
        match self {
            TraceEvent::PacketSent(_) => "transport:packet_sent",
            TraceEvent::PacketReceived(_) => "transport:packet_received",
            TraceEvent::StateUpdated { .. } => "transport:connection_state_updated",
            TraceEvent::MetricsUpdated(_) => "recovery:metrics_updated",
            TraceEvent::CongestionStateUpdated { .. } => "recovery:congestion_state_updated",
            TraceEvent::PacketLost { .. } => "recovery:packet_lost",
            TraceEvent::TimerExpired(_) => "recovery:loss_timer_updated",
        }
    }
}

/// A record of the stack-wide trace: the event, when, and of which connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// The stack's clock when it happened.
    pub time: Instant,
    /// The connection's local end.
    pub local: SocketAddr,
    /// The connection's remote end.
    pub remote: SocketAddr,
    /// What happened.
    pub event: TraceEvent,
}

/// A traced connection's records not yet collected, and what it last reported, so that an
/// update says only what changed.
#[derive(Debug, Default)]
pub struct ConnTrace {
    records: Vec<(Instant, TraceEvent)>,
    state: Option<State>,
    congestion: Option<CongestionState>,
    metrics: Metrics,
    /// The decision behind the next congestion-state change.
    trigger: Option<Trigger>,
    /// Why the next segment leaves, set by the probes.
    send_trigger: Option<SendTrigger>,
    /// How far data was reported lost, so that a range is reported once.
    lost_reported: Option<Seq>,
}

/// Linux's `tcp_pacing_ss_ratio`: the pacing rate in slow start, in percent of cwnd/SRTT.
const PACING_SS_PERCENT: u64 = 200;
/// Linux's `tcp_pacing_ca_ratio`: the pacing rate after slow start.
const PACING_CA_PERCENT: u64 = 120;
/// ssthresh at or above this is "infinite" (RFC 5681 §3.1 starts it arbitrarily high): not
/// reported.
const SSTHRESH_INFINITE: u32 = u32::MAX / 2;

/// The pacing rate Linux computes for every connection (`tcp_update_pacing_rate`): cwnd per
/// SRTT, twice that in slow start and 1.2 times after; what a pacer would use where the
/// connection is not paced ([`super::pacing`]).
fn pacing_rate(cwnd: u32, ssthresh: u32, srtt_us: u64) -> u64 {
    let percent = if cwnd < ssthresh / 2 {
        PACING_SS_PERCENT
    } else {
        PACING_CA_PERCENT
    };
    u64::from(cwnd) * 1_000_000 / srtt_us.max(1) * percent / 100
}

fn seg_trace(seq: Seq, ack: Option<Seq>, len: usize, flags: Flags, o: &Options) -> SegmentTrace {
    SegmentTrace {
        seq: seq.0,
        ack: ack.map(|a| a.0),
        len: len as u32,
        flags,
        window: 0,
        sack: o.sack.map(|b| b.map(|(l, r)| (l.0, r.0))),
        ts: o.timestamp,
        tso_mss: None,
        trigger: None,
    }
}

impl Tcb {
    /// Starts or stops tracing the connection. Collect its records ([`Tcb::trace_take`])
    /// before stopping, or they are lost.
    pub fn set_trace(&mut self, on: bool) {
        match (on, self.trace.is_some()) {
            (true, false) => self.trace = Some(Box::default()),
            (false, true) => self.trace = None,
            _ => {}
        }
    }

    fn record(&mut self, now: Instant, event: TraceEvent) {
        if let Some(tr) = self.trace.as_mut() {
            tr.records.push((now, event));
        }
    }

    /// The congestion controller's phase now.
    fn congestion_state(&self) -> CongestionState {
        if self.rtx.rto_recover.is_some() {
            CongestionState::Loss
        } else if self.recovery.recover.is_some() {
            CongestionState::Recovery
        } else if self.recovery.cwr.is_some_and(|p| self.snd.una.lt(p)) {
            CongestionState::Cwr
        } else if let Some(phase) = self.cc.phase() {
            CongestionState::Model(phase)
        } else if self.cc.cwnd() < self.cc.ssthresh() {
            CongestionState::SlowStart
        } else {
            CongestionState::CongestionAvoidance
        }
    }

    fn metrics(&self) -> Metrics {
        let (cwnd, ssthresh) = (self.cc.cwnd(), self.cc.ssthresh());
        let srtt = self.rtx.rtt.srtt().map(|d| d.as_micros() as u64);
        let synced = self.state.synchronized();
        [
            Some(u64::from(cwnd)),
            (ssthresh < SSTHRESH_INFINITE).then_some(u64::from(ssthresh)),
            Some(u64::from(recovery::in_flight(self))),
            srtt,
            srtt.map(|_| self.rtx.rtt.rttvar().as_micros() as u64),
            Some(self.rtx.rtt.rto().as_micros() as u64),
            super::pacing::rate(self)
                .map(|r| r as u64)
                .or_else(|| srtt.map(|s| pacing_rate(cwnd, ssthresh, s))),
            // The windows mean something once the SYNs are exchanged.
            synced.then_some(u64::from(self.snd.wnd)),
            synced.then(|| u64::from(self.advertised_room())),
        ]
    }

    /// Records the state, the congestion phase and the metrics that changed since the last
    /// checkpoint. Called where TCP finishes with a connection for now: after a segment,
    /// before and after output.
    pub fn trace_checkpoint(&mut self, now: Instant) {
        let Some(tr) = self.trace.as_mut() else {
            return;
        };
        let (state, congestion) = (tr.state, tr.congestion);
        if state != Some(self.state) {
            let new = self.state;
            self.record(now, TraceEvent::StateUpdated { old: state, new });
        }
        if self.state.synchronized() || self.state == State::Closed {
            let new = self.congestion_state();
            if congestion != Some(new) {
                let trigger = self.trace.as_mut().and_then(|t| t.trigger.take());
                let ev = TraceEvent::CongestionStateUpdated {
                    old: congestion,
                    new,
                    trigger,
                };
                self.record(now, ev);
                if let Some(tr) = self.trace.as_mut() {
                    tr.congestion = Some(new);
                }
            }
        }
        let metrics = self.metrics();
        let Some(tr) = self.trace.as_mut() else {
            return;
        };
        tr.state = Some(self.state);
        let mut changed = [None; METRICS.len()];
        for ((c, new), old) in changed.iter_mut().zip(metrics).zip(tr.metrics) {
            if new != old {
                *c = new;
            }
        }
        tr.metrics = metrics;
        if changed.iter().any(Option::is_some) {
            self.record(now, TraceEvent::MetricsUpdated(changed));
        }
    }

    /// The records made since the last call, checkpointed first.
    pub fn trace_take(&mut self, now: Instant, into: &mut Vec<TraceRecord>) -> usize {
        if self.trace.is_none() {
            return 0;
        }
        self.trace_checkpoint(now);
        let (local, remote) = (self.local, self.remote);
        let Some(tr) = self.trace.as_mut() else {
            return 0;
        };
        let n = tr.records.len();
        into.extend(tr.records.drain(..).map(|(time, event)| TraceRecord {
            time,
            local,
            remote,
            event,
        }));
        n
    }

    /// A segment arrived for this connection (call only when traced).
    pub fn trace_received(&mut self, now: Instant, seg: &SegmentIn<'_>) {
        let shift = if seg.flags.syn { 0 } else { self.snd.wscale };
        let ack = seg.flags.ack.then_some(seg.ack);
        let mut s = seg_trace(seg.seq, ack, seg.payload.len(), seg.flags, &seg.options);
        s.window = u32::from(seg.window) << shift;
        self.record(now, TraceEvent::PacketReceived(s));
    }

    /// A segment left: `header` as sent, with `len` bytes of data.
    pub fn trace_sent(
        &mut self,
        now: Instant,
        header: &SegmentOut,
        len: usize,
        tso_mss: Option<u16>,
    ) {
        let SegmentOut {
            seq,
            ack,
            flags,
            window,
            ..
        } = *header;
        let Some(tr) = self.trace.as_mut() else {
            return;
        };
        // SYN and FIN count: a SYN or a bare FIN sent again is a retransmission too.
        let seg_len = len + usize::from(flags.syn) + usize::from(flags.fin);
        let retransmission = seg_len > 0 && seq.lt(self.snd.max);
        let trigger = tr
            .send_trigger
            .take()
            .or(retransmission.then_some(SendTrigger::Retransmission));
        let shift = if flags.syn { 0 } else { self.rcv.wscale };
        let mut s = seg_trace(seq, ack, len, flags, &header.options);
        s.window = u32::from(window) << shift;
        s.tso_mss = tso_mss;
        s.trigger = trigger;
        self.record(now, TraceEvent::PacketSent(s));
    }

    /// The next segment is a probe of this kind; `None` when the probe is done, so that the
    /// label cannot stick to a later segment when the probe sent nothing.
    pub fn trace_send_trigger(&mut self, trigger: Option<SendTrigger>) {
        if let Some(tr) = self.trace.as_mut() {
            tr.send_trigger = trigger;
        }
    }

    /// A reset left for this connection (RFC 9293 §3.10.7).
    pub fn trace_reset(&mut self, now: Instant, seq: Seq, ack: Option<Seq>) {
        if self.trace.is_none() {
            return;
        }
        let s = SegmentTrace {
            seq: seq.0,
            ack: ack.map(|a| a.0),
            len: 0,
            flags: Flags::rst(ack.is_some()),
            window: 0,
            sack: [None; 4],
            ts: None,
            tso_mss: None,
            trigger: None,
        };
        self.record(now, TraceEvent::PacketSent(s));
    }

    /// A loss or recovery decision (`why`) just changed the congestion state, or may have:
    /// recorded at once, so that a change undone within the same ACK still shows.
    pub fn trace_trigger(&mut self, now: Instant, why: Trigger) {
        if let Some(tr) = self.trace.as_mut() {
            tr.trigger = Some(why);
            self.trace_checkpoint(now);
            if let Some(tr) = self.trace.as_mut() {
                tr.trigger = None;
            }
        }
    }

    /// Data below `end` not SACKed is deemed lost, by `trigger`: records what was not
    /// reported yet.
    pub fn trace_lost(&mut self, now: Instant, end: Seq, trigger: Trigger) {
        let una = self.snd.una;
        let Some(tr) = self.trace.as_mut() else {
            return;
        };
        let start = tr.lost_reported.filter(|r| r.gt(una)).unwrap_or(una);
        if start.lt(end) {
            tr.lost_reported = Some(end);
            let ev = TraceEvent::PacketLost {
                start: start.0,
                end: end.0,
                trigger,
            };
            self.record(now, ev);
        }
    }

    /// A loss-detection timer expired.
    pub fn trace_timer(&mut self, now: Instant, timer: LossTimer) {
        if self.trace.is_some() {
            self.record(now, TraceEvent::TimerExpired(timer));
        }
    }
}
