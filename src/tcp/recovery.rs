//! SACK-based loss recovery (RFC 6675): how much data is in the network, and which hole to
//! resend next. The scoreboard itself is in [`super::sack`]; entering and leaving recovery is
//! decided on ACK arrival ([`super::input`]).

use super::seq::Seq;
use super::tcb::Tcb;
use crate::stats::Counters;
use crate::time::Instant;

/// Whether the sender is in SACK-based recovery (RFC 6675 §5), as opposed to NewReno's.
pub fn sack_recovery(t: &Tcb) -> bool {
    t.sack_ok && t.recover.is_some()
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
        let pipe = t
            .scoreboard
            .pipe(t.snd_una, t.snd_max, lost_point(t), t.high_rxt);
        pipe.saturating_sub(t.rack.relost_bytes(&t.scoreboard))
    } else if t.sack_ok && t.snd_nxt.lt(t.snd_max) {
        t.scoreboard.unsacked(t.snd_una, t.snd_nxt)
    } else {
        t.flight()
    }
}

/// Unacknowledged, unSACKed data below this is lost: by RFC 6675's IsLost (DupThresh SACKed
/// segments above it) or by RACK's clock (RFC 8985), whichever says more.
pub fn lost_point(t: &Tcb) -> Seq {
    let dupthresh = t.scoreboard.lost_limit(t.snd_una, t.snd_mss);
    dupthresh.max(t.rack.lost_point(t.snd_una))
}

/// What to resend next, at most `mss` long, as (seq, len): first retransmissions that RACK
/// deemed lost again, then (RFC 6675 NextSeg rule 1) the first lost hole not yet resent in
/// this recovery.
pub fn next_hole(t: &mut Tcb, mss: u32) -> Option<(Seq, u32)> {
    if let Some(relost) = t.rack.next_relost(t.snd_una, &t.scoreboard, mss) {
        return Some(relost);
    }
    let (start, end) = t
        .scoreboard
        .next_hole(t.high_rxt.max(t.snd_una), lost_point(t))?;
    Some((start, end.since(start).min(mss)))
}

/// Enters fast recovery when three duplicate ACKs arrived (RFC 5681 §3.2, RFC 6582) or, with
/// SACK, when data is deemed lost (RFC 6675 §5, RFC 8985 §6.2): the congestion window is cut
/// once per episode and the first hole is resent.
pub fn maybe_enter(t: &mut Tcb, now: Instant, stats: &mut Counters) {
    if t.recover.is_some() || !t.snd_max.gt(t.snd_una) {
        return;
    }
    let sack_loss = t.sack_ok && t.scoreboard.next_hole(t.snd_una, lost_point(t)).is_some();
    if t.dupacks < 3 && !sack_loss {
        return;
    }
    let flight = t.snd_max.since(t.snd_una);
    t.cc.on_congestion_event(now, flight);
    t.recover = Some(t.snd_max);
    t.high_rxt = t.snd_una;
    t.recovery_inflation = if t.sack_ok { 0 } else { 3 * t.snd_mss };
    t.retransmit_head = true;
    t.rtt_probe = None;
    t.rack.pto_at = None;
    stats.tcp_fast_retransmits += 1;
}

/// RACK's loss detection (RFC 8985 §6.2 step 5), after an ACK or when its reordering timer
/// fires.
pub fn detect_loss(t: &mut Tcb, now: Instant, stats: &mut Counters) {
    if !t.sack_ok {
        return;
    }
    let before = lost_point(t);
    if t.rack
        .detect_loss(now, t.snd_una, t.rtt.srtt(), &t.scoreboard)
    {
        let after = lost_point(t);
        stats.tcp_rack_losses += u64::from(after.gt(before));
        maybe_enter(t, now, stats);
    }
}

/// Arms the probe timeout while data is outstanding outside recovery (RFC 8985 §7.2).
pub fn arm_probe(t: &mut Tcb, now: Instant) {
    let eligible = t.sack_ok
        && t.state.synchronized()
        && t.recover.is_none()
        && t.rto_recover.is_none()
        && t.snd_nxt == t.snd_max
        && t.snd_max.gt(t.snd_una)
        && t.rack.tlp_end.is_none();
    if !eligible {
        t.rack.pto_at = None;
        return;
    }
    if t.rack.pto_at.is_none() {
        let rto = t.rto_at.map_or(t.rtt.rto(), |at| at - now);
        let pto = t.rack.pto(t.rtt.srtt(), t.flight(), t.snd_mss, rto);
        t.rack.pto_at = Some(now + pto);
    }
}

/// Resending from a rewound snd_nxt after a timeout: skips what the receiver SACKed and
/// returns how many bytes may go before the next SACKed range (RFC 6675 §5.1).
pub fn skip_sacked(t: &mut Tcb) -> Option<u32> {
    if !t.sack_ok || !t.snd_nxt.lt(t.snd_max) {
        return None;
    }
    if let Some(end) = t.scoreboard.sacked_end(t.snd_nxt) {
        let limit = t.our_fin.unwrap_or(t.snd_max).min(t.snd_max);
        t.snd_nxt = end.min(limit).max(t.snd_nxt);
    }
    let (start, end) = t.scoreboard.next_hole(t.snd_nxt, t.snd_max)?;
    (start == t.snd_nxt).then(|| end.since(start))
}
