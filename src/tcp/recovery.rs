//! SACK-based loss recovery (RFC 6675): how much data is in the network, and which hole to
//! resend next. The scoreboard itself is in [`super::sack`]; entering and leaving recovery is
//! decided on ACK arrival ([`super::input`]).

use super::congestion::CongestionControl;
use super::rack::Rack;
use super::sack::Scoreboard;
use super::seq::Seq;
use super::tcb::Tcb;
use super::trace::Trigger;
use crate::stats::Counters;
use crate::time::Instant;

/// A connection's loss-recovery state: duplicate ACKs, the SACK scoreboard, the recovery
/// point, and RACK-TLP's state and timers.
#[derive(Debug)]
pub struct Recovery {
    pub dupacks: u32,
    /// What the receiver SACKed above snd.una (RFC 6675).
    pub scoreboard: Scoreboard,
    /// RFC 6675 HighRxt: the highest sequence retransmitted in this recovery.
    pub high_rxt: Seq,
    /// Recovery point (RFC 6582, RFC 6675): in fast recovery until snd.una passes it.
    pub recover: Option<Seq>,
    /// Window inflation during fast recovery (RFC 5681 §3.2 steps 4 and 5).
    pub inflation: u32,
    /// Time-based loss detection and tail loss probes (RFC 8985).
    pub rack: Rack,
    /// What undoing the last window reduction needs, should it prove spurious.
    pub undo: Undo,
    /// A probe's repair cut the window when SND.MAX was here: a recovery entered before the
    /// ACK passes it does not cut again (Linux's CWR state, `tcp_in_cwnd_reduction`).
    pub cwr: Option<Seq>,
    /// Proportional Rate Reduction during SACK recovery.
    pub prr: Option<Prr>,
}

/// Proportional Rate Reduction (RFC 6937; Linux `tcp_cwnd_reduction`): in SACK recovery
/// the sending rate falls to ssthresh in step with what the ACKs deliver, so that the
/// flight neither stops for half a round trip after the cut (RFC 6675 alone waits until
/// the pipe drains below the new window) nor bursts when a recovery ends, and it is rebuilt
/// towards ssthresh (PRR-SSRB) when losses drain the pipe below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prr {
    /// prr_delivered: bytes the receiver took (cumulatively or by SACK) in this recovery.
    pub delivered: u32,
    /// prr_out: bytes sent in this recovery, retransmissions included.
    pub out: u32,
    /// RecoverFS: what the reduction is proportional to: the flight when the recovery began
    /// (RFC 6937), or the congestion window then if larger, since ssthresh comes from it
    /// (Linux's `prior_cwnd`).
    pub recover_fs: u32,
    /// What the sender may have in the pipe until the next ACK: pipe + sndcnt.
    pub cwnd: u32,
}

impl Prr {
    /// The PRR step for an ACK that delivered `delivered` bytes, with `pipe` bytes in the
    /// network after it (RFC 6937 §3.1). `safe`: the ACK advanced SND.UNA and SACKed
    /// nothing new, so it shows no further loss; only then may the slow-start reduction
    /// bound send a segment beyond what was delivered (Linux; RFC 6937bis's safeACK).
    pub fn on_ack(&mut self, delivered: u32, pipe: u32, ssthresh: u32, mss: u32, safe: bool) {
        self.delivered = self.delivered.saturating_add(delivered);
        let sndcnt = if pipe > ssthresh {
            // Proportional: ssthresh for every RecoverFS delivered.
            let due = (u64::from(self.delivered) * u64::from(ssthresh))
                .div_ceil(u64::from(self.recover_fs.max(1)));
            (due.min(u64::from(u32::MAX)) as u32).saturating_sub(self.out)
        } else {
            // Slow-start reduction bound: what was delivered, and one MSS more on a safe ACK.
            let limit =
                self.delivered.saturating_sub(self.out).max(delivered) + if safe { mss } else { 0 };
            (ssthresh - pipe).min(limit)
        };
        self.cwnd = pipe.saturating_add(sndcnt);
    }
}

/// A window reduction (fast recovery or a timeout) and the evidence that it was spurious: a
/// D-SACK for every segment it resent (RFC 3708) or an ACK for the original that echoes a
/// timestamp older than the first retransmission (Eifel detection, RFC 3522); the response
/// is to restore the window from before (RFC 4015; Linux's `undo_marker`, `undo_retrans`,
/// `retrans_stamp` and `tcp_try_undo_*`).
#[derive(Debug, Default)]
pub struct Undo {
    /// [SND.UNA, SND.MAX) when the episode began, extended by a timeout within it.
    pub episode: Option<(Seq, Seq)>,
    /// The congestion controller before the reduction.
    prior: Option<Box<dyn CongestionControl>>,
    /// What the episode resent and no D-SACK has shown to be a duplicate yet (Linux counts
    /// D-SACKs only against segments it marked retransmitted).
    pub resent: Vec<(Seq, Seq)>,
    /// The episode resent more than [`MAX_UNDO_RANGES`] pieces: D-SACKs cannot prove it
    /// spurious any more.
    pub overflow: bool,
    /// A D-SACK for one of the episode's retransmissions arrived.
    pub dsacked: bool,
    /// Our timestamp (TSval) on the episode's first retransmission.
    pub stamp: Option<u32>,
    /// The first ACK past the episode's start was checked for Eifel detection.
    pub eifel_checked: bool,
    /// A tail loss probe's copy was out when the episode began: an ACK echoing an old
    /// timestamp may be the probe's, so Eifel cannot tell (RFC 8985 §7.4 decides instead).
    pub eifel_unsafe: bool,
}

/// Retransmissions one episode tracks for D-SACK undo.
pub const MAX_UNDO_RANGES: usize = 1024;

impl Recovery {
    /// No loss seen yet, for a connection whose first sequence number is `iss`.
    pub fn new(iss: Seq) -> Recovery {
        Recovery {
            dupacks: 0,
            scoreboard: Scoreboard::default(),
            high_rxt: iss,
            recover: None,
            inflation: 0,
            rack: Rack::default(),
            undo: Undo::default(),
            cwr: None,
            prr: None,
        }
    }

    /// An ACK that advanced snd.una outside recovery.
    pub fn on_new_ack(&mut self) {
        self.dupacks = 0;
    }

    /// A partial ACK without SACK (RFC 6582 §3.2 step 5): deflate by what it acknowledged,
    /// then inflate by one segment for the resent one.
    pub fn on_partial_ack(&mut self, acked: u32, mss: u32) {
        self.inflation = self.inflation.saturating_sub(acked) + mss;
    }

    /// An ACK reached the recovery point: recovery is over (RFC 6582 §3.2 step 6).
    pub fn exit(&mut self) {
        self.recover = None;
        self.inflation = 0;
        self.dupacks = 0;
        self.prr = None;
    }

    /// `len` bytes of data left (new or resent): PRR counts them.
    pub fn on_sent(&mut self, len: usize) {
        if let Some(prr) = self.prr.as_mut() {
            prr.out = prr.out.saturating_add(len as u32);
        }
    }

    /// A duplicate ACK (RFC 5681 §2); in NewReno recovery each inflates the window by one
    /// segment (RFC 5681 §3.2 step 4).
    pub fn on_dupack(&mut self, sack: bool, mss: u32) {
        self.dupacks += 1;
        if self.recover.is_some() && !sack {
            self.inflation += mss;
        }
    }

    /// A retransmission timeout ends any recovery: everything from `snd_una` is resent as
    /// after a loss of the whole flight (RFC 6298 §5, RFC 6675 §5.1).
    pub fn on_timeout(&mut self, snd_una: Seq) {
        self.exit();
        self.high_rxt = snd_una;
        self.rack.on_timeout();
    }

    /// Data up to `end` was resent at `now` with our timestamp `tsval`: HighRxt (RFC 6675)
    /// records how far; an episode counts it.
    pub fn on_retransmit(&mut self, seq: Seq, end: Seq, now: Instant, tsval: Option<u32>) {
        self.high_rxt = self.high_rxt.max(end);
        self.rack.on_retransmit(seq, end, now);
        let undo = &mut self.undo;
        if undo.episode.is_some() {
            if undo.resent.len() < MAX_UNDO_RANGES {
                undo.resent.push((seq, end));
            } else {
                undo.overflow = true;
            }
            undo.stamp = undo.stamp.or(tsval);
        }
    }
}

/// Whether the sender is in SACK-based recovery (RFC 6675 §5), as opposed to NewReno's.
pub fn sack_recovery(t: &Tcb) -> bool {
    t.opts.sack_ok && t.recovery.recover.is_some()
}

/// The window that bounds [`in_flight`]: PRR's in SACK recovery, else the congestion
/// window (inflated in NewReno recovery).
pub fn send_window(t: &Tcb) -> u32 {
    if t.cc.model_based() {
        // BBR bounds its recoveries itself (Linux skips PRR for `cong_control`).
        return t.cc.cwnd();
    }
    match t.recovery.prr {
        Some(prr) => prr.cwnd,
        None => t.cc.cwnd().saturating_add(t.recovery.inflation),
    }
}

/// After an ACK in SACK recovery that delivered `delivered` bytes (`safe`: see
/// [`Prr::on_ack`]): PRR's window for what may be sent until the next one.
pub fn on_recovery_ack(t: &mut Tcb, delivered: u32, safe: bool) {
    if t.recovery.prr.is_none() || delivered == 0 {
        return;
    }
    let pipe = in_flight(t);
    let (ssthresh, mss) = (t.cc.ssthresh(), t.snd.mss);
    if let Some(prr) = t.recovery.prr.as_mut() {
        prr.on_ack(delivered, pipe, ssthresh, mss, safe);
    }
}

/// Bytes in the network, which the congestion window bounds.
///
/// - In SACK recovery: RFC 6675 SetPipe, i.e. unSACKed data not deemed lost, plus lost data
///   already retransmitted.
/// - After a timeout (snd_nxt rewound below snd_max): the unSACKed data resent so far. Data
///   past snd_nxt is presumed lost and SACKed data is not resent (RFC 6675 §5.1; Linux's
///   in_flight after `tcp_enter_loss`).
/// - Otherwise everything sent and not acknowledged.
pub fn in_flight(t: &Tcb) -> u32 {
    if sack_recovery(t) {
        let pipe =
            t.recovery
                .scoreboard
                .pipe(t.snd.una, t.snd.max, lost_point(t), t.recovery.high_rxt);
        pipe.saturating_sub(t.recovery.rack.relost_bytes(&t.recovery.scoreboard))
    } else if t.opts.sack_ok && t.snd.nxt.lt(t.snd.max) {
        t.recovery.scoreboard.unsacked(t.snd.una, t.snd.nxt)
    } else {
        t.flight()
    }
}

/// Unacknowledged, unSACKed data below this is lost: by RFC 6675's IsLost (DupThresh SACKed
/// segments above it) or by RACK's clock (RFC 8985), whichever says more.
pub fn lost_point(t: &Tcb) -> Seq {
    let dupthresh = t.recovery.scoreboard.lost_limit(t.snd.una, t.snd.mss);
    dupthresh.max(t.recovery.rack.lost_point(t.snd.una))
}

/// What to resend next, at most `mss` long, as (seq, len): first retransmissions that RACK
/// deemed lost again, then (RFC 6675 NextSeg rule 1) the first lost hole not yet resent in
/// this recovery.
pub fn next_hole(t: &mut Tcb, mss: u32) -> Option<(Seq, u32)> {
    if let Some(relost) = t
        .recovery
        .rack
        .next_relost(t.snd.una, &t.recovery.scoreboard, mss)
    {
        return Some(relost);
    }
    let (start, end) = t
        .recovery
        .scoreboard
        .next_hole(t.recovery.high_rxt.max(t.snd.una), lost_point(t))?;
    Some((start, end.since(start).min(mss)))
}

/// Enters fast recovery when three duplicate ACKs arrived (RFC 5681 §3.2, RFC 6582) or, with
/// SACK, when data is deemed lost (RFC 6675 §5, RFC 8985 §6.2): the congestion window is cut
/// once per episode and the first hole is resent.
pub fn maybe_enter(t: &mut Tcb, now: Instant, stats: &mut Counters) {
    // After a timeout the whole flight is being resent already (Linux never enters
    // Recovery from Loss).
    if t.recovery.recover.is_some() || t.rtx.rto_recover.is_some() || !t.snd.max.gt(t.snd.una) {
        return;
    }
    let sack_loss = t.opts.sack_ok
        && t.recovery
            .scoreboard
            .next_hole(t.snd.una, lost_point(t))
            .is_some();
    if t.recovery.dupacks < 3 && !sack_loss {
        return;
    }
    let why = if !sack_loss {
        let end = t.snd.una + t.snd.mss.min(t.flight());
        t.trace_lost(now, end, Trigger::Dupacks);
        Trigger::Dupacks
    } else if t.recovery.rack.lost_point(t.snd.una).gt(t.snd.una) {
        Trigger::Rack
    } else {
        Trigger::Sack
    };
    trace_losses(t, now);
    begin_episode(t);
    // ssthresh from cwnd, as Linux and RFC 9438 §4.6 allow with congestion window
    // validation (cwnd grows only while in use): where the path's round trip holds less than
    // cwnd, FlightSize would shrink the window far below what the path carried.
    let prior_cwnd = t.cc.cwnd();
    if !in_cwr(t) {
        t.cc.on_congestion_event(now, prior_cwnd);
    }
    t.recovery.recover = Some(t.snd.max);
    t.recovery.high_rxt = t.snd.una;
    t.recovery.inflation = if t.opts.sack_ok { 0 } else { 3 * t.snd.mss };
    if t.opts.sack_ok {
        // Until the ACK's PRR step: nothing beyond the head's retransmission.
        let pipe = in_flight(t);
        t.recovery.prr = Some(Prr {
            delivered: 0,
            out: 0,
            recover_fs: prior_cwnd.max(t.flight()),
            cwnd: pipe,
        });
    }
    t.output.retransmit_head = true;
    t.rtx.rtt_probe = None;
    // Recovery reduces the window now; a probe out does not reduce it again.
    t.recovery.rack.forget_probe();
    stats.tcp_fast_retransmits += 1;
    t.trace_trigger(now, why);
}

/// RACK's loss detection (RFC 8985 §6.2 step 5), after an ACK or when its reordering timer
/// fires.
pub fn detect_loss(t: &mut Tcb, now: Instant, stats: &mut Counters) {
    if !t.opts.sack_ok {
        return;
    }
    let before = lost_point(t);
    if t.recovery
        .rack
        .detect_loss(now, t.snd.una, t.rtx.rtt.srtt(), &t.recovery.scoreboard)
    {
        let after = lost_point(t);
        stats.tcp_rack_losses += u64::from(after.gt(before));
        trace_losses(t, now);
        maybe_enter(t, now, stats);
    }
}

/// Records, if traced, the data newly deemed lost: by SACK's DupThresh rule, then by RACK.
fn trace_losses(t: &mut Tcb, now: Instant) {
    if t.trace.is_some() {
        let dupthresh = t.recovery.scoreboard.lost_limit(t.snd.una, t.snd.mss);
        t.trace_lost(now, dupthresh, Trigger::Sack);
        let rack = t.recovery.rack.lost_point(t.snd.una);
        t.trace_lost(now, rack, Trigger::Rack);
    }
}

/// A tail loss probe repaired a loss (RFC 8985 §7.4): the window shrinks as for any loss, in
/// one step (Linux enters CWR), unless a recovery or a timeout already shrank it.
pub fn probe_repaired(t: &mut Tcb, now: Instant, stats: &mut Counters) {
    if t.recovery.recover.is_none() && t.rtx.rto_recover.is_none() && !in_cwr(t) {
        let cwnd = t.cc.cwnd();
        t.cc.on_congestion_event(now, cwnd);
        t.recovery.cwr = Some(t.snd.max);
        t.ecn.queue_cwr = t.ecn.ok;
        t.trace_trigger(now, Trigger::TlpRepair);
        stats.tcp_tlp_recoveries += 1;
    }
}

/// An ACK echoed a congestion mark (RFC 3168 §6.1.2): the window shrinks as for a loss, in
/// one step and at most once a window of data (Linux enters CWR), and the next new data
/// carries CWR. No cut while a recovery, a timeout's or an earlier one is under way: that
/// reduction answers this mark too. A model-based controller (BBR) does not cut here: it
/// answers marks from its rate samples, where the echo is precise
/// ([`crate::config::TcpConfig::ecn_low`]); its CWR still goes once a window.
pub fn ecn_echo(t: &mut Tcb, now: Instant, stats: &mut Counters) {
    stats.tcp_ecn_ece_recv += 1;
    let answered = t.ecn.answered_until.is_some_and(|p| t.snd.una.lt(p));
    if answered || t.recovery.recover.is_some() || t.rtx.rto_recover.is_some() || in_cwr(t) {
        return;
    }
    t.ecn.answered_until = Some(t.snd.max);
    t.ecn.queue_cwr = true;
    if t.cc.model_based() {
        return;
    }
    let cwnd = t.cc.cwnd();
    t.cc.on_congestion_event(now, cwnd);
    t.recovery.cwr = Some(t.snd.max);
    t.trace_trigger(now, Trigger::Ecn);
    stats.tcp_ecn_reductions += 1;
}

/// Whether a probe's window cut is still under way: the ACK has not passed what was out
/// when it was made.
fn in_cwr(t: &mut Tcb) -> bool {
    match t.recovery.cwr {
        Some(point) if t.snd.una.lt(point) => true,
        _ => {
            t.recovery.cwr = None;
            false
        }
    }
}

/// Arms the probe timeout while data is outstanding (RFC 8985 §7.2), in fast recovery too
/// (FreeBSD RACK), not after a timeout, which resends everything already.
pub fn arm_probe(t: &mut Tcb, now: Instant) {
    let eligible = t.opts.sack_ok
        && t.state.synchronized()
        && t.rtx.rto_recover.is_none()
        && t.snd.nxt == t.snd.max
        && t.snd.max.gt(t.snd.una)
        && t.recovery.rack.may_probe(t.snd.una);
    if !eligible {
        t.recovery.rack.pto_at = None;
        return;
    }
    if t.recovery.rack.pto_at.is_none() {
        let rto = t.timers.rto.map_or(t.rtx.rtt.rto(), |at| at - now);
        let pto = t
            .recovery
            .rack
            .pto(t.rtx.rtt.srtt(), t.flight(), t.snd.mss, rto);
        // A probe due with the RTO takes its place and restarts it; only the first may, or
        // repeated probes would put the timeout off again and again.
        if t.recovery.rack.probes == 0 || pto < rto {
            t.recovery.rack.pto_at = Some(now + pto);
        }
    }
}

/// Resending from a rewound snd_nxt after a timeout: skips what the receiver SACKed and
/// returns how many bytes may go before the next SACKed range (RFC 6675 §5.1).
pub fn skip_sacked(t: &mut Tcb) -> Option<u32> {
    if !t.opts.sack_ok || !t.snd.nxt.lt(t.snd.max) {
        return None;
    }
    if let Some(end) = t.recovery.scoreboard.sacked_end(t.snd.nxt) {
        let limit = t.fin.ours.unwrap_or(t.snd.max).min(t.snd.max);
        t.snd.nxt = end.min(limit).max(t.snd.nxt);
    }
    let (start, end) = t.recovery.scoreboard.next_hole(t.snd.nxt, t.snd.max)?;
    (start == t.snd.nxt).then(|| end.since(start))
}

/// A window reduction begins (fast recovery, or a timeout): keeps the controller as it was,
/// to restore if the reduction proves spurious. A timeout within an episode extends it and
/// keeps the controller from before the first reduction.
pub fn begin_episode(t: &mut Tcb) {
    // Every reduction tells an ECN receiver with CWR (Linux's `tcp_ecn_queue_cwr`).
    t.ecn.queue_cwr = t.ecn.ok;
    let recovering = t.recovery.recover.is_some() || t.rtx.rto_recover.is_some();
    let probe_out = t.recovery.rack.tlp_rxt.is_some();
    let undo = &mut t.recovery.undo;
    match undo.episode {
        Some((start, end)) if recovering => {
            undo.episode = Some((start, end.max(t.snd.max)));
        }
        _ => {
            *undo = Undo {
                episode: Some((t.snd.una, t.snd.max)),
                prior: Some(t.cc.snapshot()),
                eifel_unsafe: probe_out,
                ..Undo::default()
            };
        }
    }
}

/// The controller from before the episode's first reduction, if one is running.
pub fn prior_cwnd(t: &Tcb) -> Option<u32> {
    t.recovery.undo.prior.as_ref().map(|p| p.cwnd())
}

/// An ACK's evidence about the last reduction: a D-SACK for data the episode resent
/// (RFC 3708), or the first ACK past the episode's start echoing a timestamp older than the
/// first retransmission (RFC 3522). Undoes the reduction once every retransmission proved a
/// duplicate, or Eifel says the original arrived; true if it did.
pub fn check_undo(
    t: &mut Tcb,
    now: Instant,
    ack: Seq,
    tsecr: Option<u32>,
    dsack: Option<(Seq, Seq)>,
    stats: &mut Counters,
) -> bool {
    let Some((start, _)) = t.recovery.undo.episode else {
        return false;
    };
    let undo = &mut t.recovery.undo;
    let resent_any = !undo.resent.is_empty() || undo.dsacked || undo.overflow;
    if let Some((l, r)) = dsack {
        // Each D-SACK clears the retransmissions it covers, and only those, one copy of
        // each: a range resent twice needs two (Linux counts `undo_retrans` per copy).
        let mut cleared: Vec<(Seq, Seq)> = Vec::new();
        undo.resent.retain(|&(s, e)| {
            let again = cleared.iter().any(|&(cs, ce)| s.lt(ce) && cs.lt(e));
            let clear = l.le(s) && e.le(r) && !again;
            if clear {
                cleared.push((s, e));
            }
            !clear
        });
        undo.dsacked |= !cleared.is_empty();
    }
    let mut eifel = false;
    if !undo.eifel_checked && ack.gt(start) {
        undo.eifel_checked = true;
        // The original arrived only if its ACK predates every retransmission, and none is
        // still out beyond it (Linux refuses while retransmissions are in flight).
        let all_acked = undo.resent.iter().all(|&(_, e)| e.le(ack));
        eifel = !undo.eifel_unsafe
            && all_acked
            && matches!((tsecr, undo.stamp), (Some(echo), Some(stamp))
                if echo != 0 && (echo.wrapping_sub(stamp) as i32) < 0);
    }
    let all_duplicates = undo.dsacked && undo.resent.is_empty() && !undo.overflow;
    if !resent_any || !(eifel || all_duplicates) {
        return false;
    }
    // RFC 4015 §2: back to the window from before, and on with new data.
    let why = if eifel {
        Trigger::UndoEifel
    } else {
        Trigger::UndoDsack
    };
    if let Some(prior) = undo.prior.take() {
        if t.cc.model_based() {
            // A model is not taken back: only the window cut (Linux's `bbr_undo_cwnd`).
            t.cc.on_undo(prior.as_ref());
        } else if prior.cwnd() > t.cc.cwnd() {
            t.cc = prior;
        }
    }
    *undo = Undo::default();
    t.recovery.exit();
    t.recovery.rack.on_undo();
    // No reduction stands, so none is announced (Linux's `tcp_ecn_withdraw_cwr`).
    t.ecn.queue_cwr = false;
    t.rtx.rto_recover = None;
    t.rtx.rto_stamp = None;
    if t.snd.nxt.lt(t.snd.max) {
        t.snd.nxt = t.snd.max;
    }
    t.trace_trigger(now, why);
    stats.tcp_undos += 1;
    true
}
