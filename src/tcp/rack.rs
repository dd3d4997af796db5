//! RACK-TLP (RFC 8985): time-based loss detection and tail loss probes, as Linux does by
//! default.
//!
//! RACK deems a segment lost once a segment sent after it was delivered and a reordering
//! window has passed. Instead of a record per segment, this keeps two time-ordered logs:
//! original transmissions as (end seq, time), whose times grow with the sequence number so
//! that the lost ones are always a prefix, summarised by one point ([`Rack::lost`]); and the
//! retransmissions of the current episode, whose losses are queued to be resent again.
//! Same-instant transmissions share one log entry, so a burst costs one.
//!
//! Probes go beyond RFC 8985 in two ways, as FreeBSD's RACK stack does (`tlp_in_recovery`,
//! `tlp_max_resend`): a probe may go out during a recovery, and more follow a probe that
//! drew no answer at all, each after twice the last timeout, before the retransmission
//! timer takes over. On a path whose round trip is far below the 200 ms floor of the RTO, a
//! lost retransmission or the loss of the one ACK a small window draws otherwise costs that
//! whole timeout.

use super::sack::Scoreboard;
use super::seq::Seq;
use crate::time::Instant;
use std::collections::VecDeque;
use std::time::Duration;

/// Log entries kept; beyond this the newest entry absorbs later sends (its time then errs late,
/// which delays loss detection; no RTT sample is taken from a full log).
const MAX_SENT: usize = 4096;
/// Retransmissions tracked; beyond this a lost retransmission waits for the RTO.
const MAX_RXT: usize = 1024;
/// RFC 8985 §7.2 WCDelAckT: the longest a receiver may delay an ACK.
const WC_DEL_ACK: Duration = Duration::from_millis(200);
/// Loss recoveries a widened reordering window outlives without a new D-SACK before it goes
/// back to a quarter of the minimum RTT (RFC 8985 §6.2.4, RACK.reo_wnd_persist).
const REO_WND_PERSIST: u32 = 16;
/// The most the reordering window widens: RACK.reo_wnd_mult is capped so that the window
/// stays within SRTT anyway (RFC 8985 §6.2.4).
const MAX_REO_WND_MULT: u32 = 4 * 16;
/// Probes sent without hearing from the peer before the retransmission timer takes over
/// (RFC 8985 sends one, FreeBSD RACK's `tlp_max_resend` two). Three, because where it was
/// the ACK that was lost, the first probe, of new data, arrives in order and draws only a
/// delayed ACK from a Linux receiver (40 ms or more); the copies resent after it are
/// duplicates, answered at once.
pub const MAX_PROBES: u32 = 3;

#[derive(Clone, Copy, Debug)]
struct Rxt {
    start: Seq,
    end: Seq,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct Rack {
    /// Original transmissions: (end seq, time sent), in sequence and time order.
    sent: VecDeque<(Seq, Instant)>,
    /// The last entry the cumulative ACK took off `sent`: the ACK that took it delivered
    /// its last byte, which RACK must still find (RFC 8985 §6.2 step 2).
    last_acked: Option<(Seq, Instant)>,
    /// Retransmissions of this episode, in time order.
    rxt: VecDeque<Rxt>,
    /// Retransmissions deemed lost again, to resend.
    relost: VecDeque<(Seq, Seq)>,
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent data known delivered.
    delivered: Option<(Instant, Seq)>,
    /// RACK.rtt: the RTT of that data.
    rtt: Duration,
    min_rtt: Option<Duration>,
    /// Unacknowledged, unSACKed data below this point is lost.
    lost: Option<Seq>,
    /// The reordering timer (RFC 8985 §6.2 step 5): when the next segment may be deemed lost.
    pub reo_at: Option<Instant>,
    /// The probe timeout (RFC 8985 §7.2).
    pub pto_at: Option<Instant>,
    /// TLP.end_seq: a probe is out until the cumulative ACK passes this (RFC 8985 §7.3).
    pub tlp_end: Option<Seq>,
    /// The data a probe resent (TLP.is_retrans, RFC 8985 §7.3), `None` for a probe of new
    /// data: whether the probe repaired a loss is then told by its ACKs (§7.4).
    pub tlp_rxt: Option<(Seq, Seq)>,
    /// Copies of [`Rack::tlp_rxt`] the probes resent before its verdict: only as many D-SACKs
    /// show that the original arrived too.
    tlp_copies: u32,
    /// D-SACKs received for those copies.
    tlp_dsacks: u32,
    /// What the last probe within a recovery resent: a D-SACK for it says nothing of
    /// reordering either.
    recovery_probe: Option<(Seq, Seq)>,
    /// The span of everything resent since the cumulative ACK last passed it: no RTT sample
    /// comes from data in it (Karn), whether its retransmissions are still logged or not.
    resent_span: Option<(Seq, Seq)>,
    /// The log was full and its newest entry took later sends: the time it holds for this
    /// span may be later than when its data was sent, so no RTT sample comes from it.
    inexact: Option<(Seq, Seq)>,
    /// Probes sent since the peer last acknowledged or SACKed new data (FreeBSD RACK's
    /// `rc_tlp_send_cnt`): at most [`MAX_PROBES`], each doubling the next probe timeout.
    pub probes: u32,
    /// RACK.reo_wnd_mult: the reordering window in quarters of the minimum RTT, widened by
    /// each round trip that brought a D-SACK (RFC 8985 §6.2.4). 0 means 1.
    reo_wnd_mult: u32,
    /// RACK.dsack_round: the window widens at most once until the ACK passes this.
    dsack_round: Option<Seq>,
    /// RACK.reo_wnd_persist: recoveries left before a widened window narrows again.
    reo_wnd_persist: u32,
}

impl Rack {
    /// New data `[.., end)` went out at `now`.
    pub fn on_send(&mut self, end: Seq, now: Instant) {
        let full = self.sent.len() >= MAX_SENT;
        match self.sent.back_mut() {
            Some(last) if last.1 == now => *last = (end, now),
            Some(last) if full => {
                *last = (end, now);
                let n = self.sent.len();
                let start = self.sent.get(n.wrapping_sub(2)).map_or(end, |&(e, _)| e);
                self.inexact = Some(match self.inexact {
                    Some((from, _)) => (from, end),
                    None => (start, end),
                });
            }
            _ => self.sent.push_back((end, now)),
        }
    }

    /// `[start, end)` was sent again at `now`.
    pub fn on_retransmit(&mut self, start: Seq, end: Seq, now: Instant) {
        self.resent_span = Some(match self.resent_span {
            Some((l, r)) => (l.min(start), r.max(end)),
            None => (start, end),
        });
        if self.rxt.len() < MAX_RXT {
            self.rxt.push_back(Rxt {
                start,
                end,
                at: now,
            });
        }
    }

    /// The cumulative ACK reached `una`.
    pub fn advance(&mut self, una: Seq) {
        while self.sent.front().is_some_and(|&(end, _)| end.le(una)) {
            self.last_acked = self.sent.pop_front();
        }
        while self.relost.front().is_some_and(|&(_, end)| end.le(una)) {
            self.relost.pop_front();
        }
        if self.resent_span.is_some_and(|(_, end)| end.le(una)) {
            self.resent_span = None;
        }
        if self.inexact.is_some_and(|(_, end)| end.le(una)) {
            self.inexact = None;
        }
        if self.recovery_probe.is_some_and(|(_, end)| end.le(una)) {
            self.recovery_probe = None;
        }
        // A probe that resent data ends with the ACK that tells whether it repaired a loss
        // (RFC 8985 §7.4, [`Rack::on_probe_ack`]); a probe of new data with its ACK.
        if self.tlp_rxt.is_none() && self.tlp_end.is_some_and(|e| una.ge(e)) {
            self.tlp_end = None;
        }
    }

    /// RFC 8985 §7.4.2, for an ACK while a probe that resent data is out: `Some(true)` if the
    /// probe repaired a loss (the ACK passed the probe without a D-SACK for it: only the
    /// probe's copy arrived), `Some(false)` if both copies arrived (a D-SACK for the probe, or
    /// a pure duplicate ACK at it; after repeated probes, a D-SACK for every copy they
    /// resent), `None` while it cannot tell yet. The episode ends with a
    /// verdict. `pure_dup`: the ACK acknowledges nothing new and carries no data, no new SACK
    /// and no window change.
    pub fn on_probe_ack(
        &mut self,
        ack: Seq,
        pure_dup: bool,
        dsack: Option<(Seq, Seq)>,
    ) -> Option<bool> {
        let end = self.tlp_end?;
        let (start, probe_end) = self.tlp_rxt?;
        let dsacked = dsack.is_some_and(|(l, r)| l.lt(probe_end) && r.gt(start));
        self.tlp_dsacks += u32::from(dsacked);
        let verdict = if dsacked && self.tlp_dsacks >= self.tlp_copies {
            Some(false)
        } else if ack.lt(end) {
            // Not yet at the probe: nothing to tell (Linux `tcp_process_tlp_ack`).
            None
        } else if ack.gt(end) {
            // Beyond the probe without a D-SACK for it: only the probe's copy arrived.
            Some(true)
        } else if pure_dup && self.tlp_copies == 1 {
            // A duplicate ACK at the probe: the second copy arrived too.
            Some(false)
        } else {
            None
        };
        if verdict.is_some() {
            self.tlp_end = None;
            self.tlp_rxt = None;
        }
        verdict
    }

    /// Whether `dsack` reports a copy a probe resent, in a recovery or out of one.
    pub fn dsack_for_probe(&self, dsack: Option<(Seq, Seq)>) -> bool {
        let Some((l, r)) = dsack else {
            return false;
        };
        [self.tlp_rxt, self.recovery_probe]
            .into_iter()
            .flatten()
            .any(|(start, end)| l.lt(end) && r.gt(start))
    }

    /// A D-SACK arrived with the cumulative ACK at `una` and `nxt` sent: reordering fooled
    /// the loss detection, so the reordering window widens by a quarter of the minimum RTT,
    /// once per round trip (RFC 8985 §6.2.4).
    pub fn on_dsack(&mut self, una: Seq, nxt: Seq) {
        if self.dsack_round.is_none_or(|round| una.ge(round)) {
            self.dsack_round = Some(nxt);
            self.reo_wnd_mult = (self.reo_wnd_mult.max(1) + 1).min(MAX_REO_WND_MULT);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// A loss recovery ended: after [`REO_WND_PERSIST`] of them without a D-SACK, the
    /// reordering window narrows to its start (RFC 8985 §6.2.4).
    pub fn on_recovery_end(&mut self) {
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// A window reduction was undone: nothing is deemed lost any more (the retransmissions
    /// were spurious); the loss detection starts over from the ACKs to come, the log of
    /// retransmissions kept.
    pub fn on_undo(&mut self) {
        self.relost.clear();
        self.lost = None;
        self.reo_at = None;
    }

    /// A timeout resends everything; the episode's history no longer applies (RFC 8985 §6.3).
    pub fn on_timeout(&mut self) {
        self.rxt.clear();
        self.relost.clear();
        self.lost = None;
        self.reo_at = None;
        self.forget_probe();
        self.recovery_probe = None;
        self.probes = 0;
    }

    /// A window reduction supersedes any probe out: it needs no verdict any more (Linux
    /// `tcp_init_cwnd_reduction` ends the TLP episode).
    pub fn forget_probe(&mut self) {
        self.pto_at = None;
        self.tlp_end = None;
        self.tlp_rxt = None;
    }

    /// A probe went out: `resent` is the data it resent, `None` for new data; `end` is
    /// TLP.end_seq (RFC 8985 §7.3), `None` for a probe within a recovery, which has reduced
    /// the window already and needs no verdict of its own. A probe that resends what the one
    /// before it resent adds a copy to judge; one that resends other data starts the count
    /// again.
    pub fn on_probe(&mut self, resent: Option<(Seq, Seq)>, end: Option<Seq>) {
        self.probes += 1;
        self.pto_at = None;
        let Some(end) = end else {
            self.recovery_probe = resent;
            return;
        };
        if let Some(range) = resent {
            if self.tlp_rxt == Some(range) {
                self.tlp_copies += 1;
            } else {
                self.tlp_rxt = Some(range);
                self.tlp_copies = 1;
                self.tlp_dsacks = 0;
            }
        }
        self.tlp_end = Some(end);
    }

    /// The peer acknowledged or SACKed new data: probing starts over.
    pub fn on_progress(&mut self) {
        self.probes = 0;
        self.pto_at = None;
    }

    /// Whether another probe may be scheduled with the cumulative ACK at `una`: at most
    /// [`MAX_PROBES`] without an answer, and once answered, not before the ACK reaches the
    /// last probe's end (one probe per flight, Linux).
    pub fn may_probe(&self, una: Seq) -> bool {
        self.probes < MAX_PROBES && (self.probes > 0 || self.tlp_end.is_none_or(|e| una.ge(e)))
    }

    /// A probe is due while the last one's verdict still waits, the ACK at its end but
    /// neither past it nor with a D-SACK for it (RFC 8985 §7.4.2): the path fell silent
    /// again, so the ACK past it that would have said "repaired" is not coming soon. Ends that
    /// episode and returns true, as that ACK would have; the new probe takes its place.
    pub fn settle_probe(&mut self, una: Seq) -> bool {
        let pending =
            self.probes == 0 && self.tlp_rxt.is_some() && self.tlp_end.is_some_and(|e| una.ge(e));
        if pending {
            self.tlp_end = None;
            self.tlp_rxt = None;
        }
        pending
    }

    /// When original data `seq` was sent, if it is still logged: data below the cumulative
    /// ACK is known only for the last byte the ACK took (not the next entry's time, which
    /// would make its RTT too short).
    fn sent_at(&self, seq: Seq) -> Option<Instant> {
        if let Some((end, at)) = self.last_acked.filter(|&(end, _)| seq.lt(end)) {
            return (seq + 1 == end).then_some(at);
        }
        let i = self.sent.partition_point(|&(end, _)| end.le(seq));
        self.sent.get(i).map(|&(_, at)| at)
    }

    /// An RTT sample for an ACK that newly covers `[from, to)`: the time since its oldest
    /// byte was first sent (Linux's `seq_rtt_us`: the first newly acknowledged segment), if
    /// none of it lies in the span resent since the ACK last passed it (Karn), and the log
    /// holds that time exactly (a full log stamps later sends on its newest entry).
    pub fn rtt_sample(&self, from: Seq, to: Seq, now: Instant) -> Option<Duration> {
        let overlaps = |span: Option<(Seq, Seq)>| span.is_some_and(|(l, r)| l.lt(to) && r.gt(from));
        if overlaps(self.resent_span) || overlaps(self.inexact) {
            return None;
        }
        self.sent_at(from).map(|at| now - at)
    }

    /// When the copy of `seq` that was delivered was sent, if that is known: the original if
    /// `seq` was not resent in this episode, else the retransmission, unless it was resent less
    /// than the minimum RTT ago, when the ACK must be for the original (RFC 8985 §6.2 step 2,
    /// as Linux's `tcp_rack_advance` decides it).
    fn delivered_at(&self, seq: Seq, now: Instant) -> Option<Instant> {
        match self.rxt.iter().rev().find(|r| seq.in_range(r.start, r.end)) {
            Some(r) => (now - r.at >= self.min_rtt.unwrap_or_default()).then_some(r.at),
            None => self.sent_at(seq),
        }
    }

    /// RFC 8985 §6.2 steps 1–3 for an ACK that newly delivered up to `ack` and the SACKed
    /// blocks `sacked`: remembers the most recently sent delivered data and its RTT.
    /// Returns the RTT of the newest data it found delivered, if any (RACK.rtt).
    pub fn on_ack(
        &mut self,
        now: Instant,
        ack: Option<Seq>,
        sacked: &[Option<(Seq, Seq)>],
    ) -> Option<Duration> {
        let mut sample = None;
        let highest = sacked.iter().flatten().map(|&(_, end)| end).chain(ack);
        for end in highest {
            let seq = end - 1;
            let Some(at) = self.delivered_at(seq, now) else {
                continue;
            };
            let newer = self
                .delivered
                .is_none_or(|(t, e)| at > t || (at == t && seq.gt(e)));
            if newer {
                let rtt = now - at;
                self.delivered = Some((at, seq + 1));
                self.rtt = rtt;
                self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
                sample = Some(rtt);
            }
        }
        sample
    }

    /// The smallest RTT RACK has seen on the connection.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// RFC 8985 §6.2 step 4: RACK.reo_wnd_mult quarters of the minimum RTT, at most SRTT.
    fn reo_wnd(&self, srtt: Option<Duration>) -> Duration {
        let w = self.min_rtt.unwrap_or_default() / 4 * self.reo_wnd_mult.max(1);
        srtt.map_or(w, |s| w.min(s))
    }

    /// RFC 8985 §6.2 step 5: marks what is lost by now and arms the reordering timer for the
    /// rest. Returns true if anything was newly deemed lost.
    pub fn detect_loss(
        &mut self,
        now: Instant,
        una: Seq,
        srtt: Option<Duration>,
        sb: &Scoreboard,
    ) -> bool {
        self.reo_at = None;
        let Some((xmit_ts, end_seq)) = self.delivered else {
            return false;
        };
        let wait = self.rtt + self.reo_wnd(srtt);
        let mut found = false;
        let start = self.lost_point(una);
        let first = self.sent.partition_point(|&(end, _)| end.le(start));
        for &(end, at) in self.sent.iter().skip(first) {
            if at > xmit_ts {
                break;
            }
            let end = if at == xmit_ts { end.min(end_seq) } else { end };
            let from = self.lost_point(una);
            if !end.gt(from) {
                continue;
            }
            // Data that was all delivered cannot be lost, and needs no timer.
            if sb.next_hole(from, end).is_some() {
                if at + wait > now {
                    self.reo_at = Some(at + wait);
                    break;
                }
                found = true;
            }
            self.lost = Some(end);
        }
        while let Some(&r) = self.rxt.front() {
            if r.end.le(una) || sb.next_hole(r.start.max(una), r.end).is_none() {
                self.rxt.pop_front();
                continue;
            }
            // Sent after the delivered data? Ties go by sequence (RFC 8985 §6.2 step 5).
            if r.at > xmit_ts || (r.at == xmit_ts && !r.end.lt(end_seq)) {
                break;
            }
            if r.at + wait > now {
                self.reo_at = Some(self.reo_at.map_or(r.at + wait, |t| t.min(r.at + wait)));
                break;
            }
            self.rxt.pop_front();
            self.relost.push_back((r.start.max(una), r.end));
            found = true;
        }
        found
    }

    /// Unacknowledged data below this is lost unless SACKed.
    pub fn lost_point(&self, una: Seq) -> Seq {
        self.lost.map_or(una, |l| l.max(una))
    }

    /// Bytes deemed lost after being resent, no longer in flight.
    pub fn relost_bytes(&self, sb: &Scoreboard) -> u32 {
        self.relost.iter().map(|&(s, e)| sb.unsacked(s, e)).sum()
    }

    /// The next lost retransmission to resend, at most `mss` long; taken off the queue.
    pub fn next_relost(&mut self, una: Seq, sb: &Scoreboard, mss: u32) -> Option<(Seq, u32)> {
        while let Some(front) = self.relost.front_mut() {
            match sb.next_hole(front.0.max(una), front.1) {
                Some((start, end)) => {
                    let len = end.since(start).min(mss);
                    front.0 = start + len;
                    if !front.0.lt(front.1) {
                        self.relost.pop_front();
                    }
                    return Some((start, len));
                }
                None => {
                    self.relost.pop_front();
                }
            }
        }
        None
    }

    /// RFC 8985 §7.2: the probe timeout for `flight` bytes outstanding, doubled for each
    /// unanswered probe, at most `rto`.
    pub fn pto(&self, srtt: Option<Duration>, flight: u32, mss: u32, rto: Duration) -> Duration {
        let pto = match srtt {
            Some(srtt) if flight <= mss => 2 * srtt + WC_DEL_ACK,
            Some(srtt) => 2 * srtt,
            None => Duration::from_secs(1),
        };
        (pto.max(Duration::from_millis(1)) * (1 << self.probes.min(MAX_PROBES))).min(rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn a_cumulative_ack_times_its_own_last_byte_not_the_next_entry() {
        let mut r = Rack::default();
        r.on_send(Seq(1000), ms(0));
        r.on_send(Seq(2000), ms(8));
        // The ACK of the first entry takes it off the log before RACK looks.
        r.advance(Seq(1000));
        let rtt = r.on_ack(ms(10), Some(Seq(1000)), &[None; 4]);
        assert_eq!(
            rtt,
            Some(Duration::from_millis(10)),
            "not the 2 ms of the next entry"
        );
        assert_eq!(r.min_rtt(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn a_segment_is_lost_once_a_later_one_is_delivered_and_the_window_passes() {
        let mut r = Rack::default();
        let mut sb = Scoreboard::default();
        // Three segments at 0, 1 and 2 ms; the third is SACKed at 12 ms (RTT 10 ms).
        r.on_send(Seq(1000), ms(0));
        r.on_send(Seq(2000), ms(1));
        r.on_send(Seq(3000), ms(2));
        let sack = [Some((Seq(2000), Seq(3000)))];
        sb.update(Seq(0), Seq(3000), &sack);
        r.on_ack(ms(12), None, &sack);
        // Reordering window: min RTT 10 ms / 4. Segment 1 is due at 0 + 10 + 2.5 ms.
        assert!(!r.detect_loss(ms(12), Seq(0), Some(Duration::from_millis(10)), &sb));
        assert_eq!(r.reo_at, Some(Instant::from_micros(12_500)));
        assert!(r.detect_loss(ms(14), Seq(0), Some(Duration::from_millis(10)), &sb));
        // Both earlier segments are lost; the point passes over the SACKed third.
        assert_eq!(r.lost_point(Seq(0)), Seq(3000));
        assert_eq!(
            sb.next_hole(Seq(0), r.lost_point(Seq(0))),
            Some((Seq(0), Seq(2000)))
        );
        assert_eq!(r.reo_at, None);
    }

    #[test]
    fn a_lost_retransmission_is_queued_again() {
        let mut r = Rack::default();
        let mut sb = Scoreboard::default();
        r.on_send(Seq(1000), ms(0));
        r.on_send(Seq(5000), ms(1));
        r.on_retransmit(Seq(0), Seq(1000), ms(20));
        r.on_send(Seq(6000), ms(21));
        sb.update(Seq(0), Seq(6000), &[Some((Seq(1000), Seq(6000)))]);
        // The data sent after the retransmission arrives; the retransmission does not.
        r.on_ack(ms(31), None, &[Some((Seq(1000), Seq(6000)))]);
        assert!(r.detect_loss(ms(40), Seq(0), Some(Duration::from_millis(10)), &sb));
        assert_eq!(r.relost_bytes(&sb), 1000);
        assert_eq!(r.next_relost(Seq(0), &sb, 536), Some((Seq(0), 536)));
        assert_eq!(r.next_relost(Seq(0), &sb, 536), Some((Seq(536), 464)));
        assert_eq!(r.next_relost(Seq(0), &sb, 536), None);
    }

    #[test]
    fn probe_timeout_waits_for_a_delayed_ack_when_one_segment_is_out() {
        let r = Rack::default();
        let srtt = Some(Duration::from_millis(10));
        let rto = Duration::from_millis(200);
        assert_eq!(r.pto(srtt, 3000, 1000, rto), Duration::from_millis(20));
        assert_eq!(
            r.pto(srtt, 1000, 1000, Duration::from_secs(1)),
            Duration::from_millis(220)
        );
        assert_eq!(r.pto(srtt, 1000, 1000, rto), rto, "capped by the RTO");
    }

    #[test]
    fn unanswered_probes_double_the_timeout_until_the_limit() {
        let mut r = Rack::default();
        let srtt = Some(Duration::from_millis(10));
        let rto = Duration::from_millis(200);
        let mut ptos = Vec::new();
        while r.may_probe(Seq(0)) {
            ptos.push(r.pto(srtt, 3000, 1000, rto).as_millis());
            r.on_probe(Some((Seq(2000), Seq(3000))), Some(Seq(3000)));
        }
        assert_eq!(
            ptos,
            [20, 40, 80],
            "then the retransmission timer takes over"
        );
        r.on_progress();
        assert!(
            !r.may_probe(Seq(2000)),
            "answered: not before the probe's verdict"
        );
        assert_eq!(
            r.on_probe_ack(Seq(3000), false, Some((Seq(2000), Seq(3000)))),
            None
        );
        assert_eq!(
            r.on_probe_ack(Seq(4000), false, None),
            Some(true),
            "a D-SACK for one of several copies does not show the original arrived"
        );
        assert!(r.may_probe(Seq(4000)));
        assert_eq!(r.pto(srtt, 3000, 1000, rto).as_millis(), 20);
    }

    #[test]
    fn an_rtt_sample_comes_from_the_first_transmission_only() {
        let mut r = Rack::default();
        r.on_send(Seq(1000), ms(0));
        r.on_send(Seq(2000), ms(1));
        r.on_send(Seq(3000), ms(2));
        assert_eq!(
            r.rtt_sample(Seq(0), Seq(2000), ms(3)),
            Some(Duration::from_millis(3)),
            "from the oldest byte acknowledged"
        );
        r.on_retransmit(Seq(1000), Seq(2000), ms(4));
        // A timeout forgets the log of retransmissions, not that they were made (Karn).
        r.on_timeout();
        assert_eq!(r.rtt_sample(Seq(1000), Seq(2000), ms(6)), None, "Karn");
        r.advance(Seq(2000));
        assert_eq!(
            r.rtt_sample(Seq(2000), Seq(3000), ms(7)),
            Some(Duration::from_millis(5)),
            "past what was resent"
        );
    }

    #[test]
    fn no_rtt_sample_comes_from_sends_a_full_log_stamped_late() {
        let mut r = Rack::default();
        let n = MAX_SENT as u32 + 10;
        for i in 0..n {
            r.on_send(Seq(1000 * (i + 1)), ms(u64::from(i)));
        }
        assert_eq!(
            r.rtt_sample(Seq(0), Seq(1000), ms(5000)),
            Some(Duration::from_millis(5000)),
            "the oldest entries are exact"
        );
        // The newest entry took the later sends: once the ACK reaches it, its time is late.
        let newest = Seq(1000 * (MAX_SENT as u32 - 1));
        r.advance(newest);
        assert_eq!(r.rtt_sample(newest, newest + 1000, ms(5000)), None);
        r.advance(Seq(1000 * n));
        r.on_send(Seq(1000 * (n + 1)), ms(6000));
        assert_eq!(
            r.rtt_sample(Seq(1000 * n), Seq(1000 * (n + 1)), ms(6001)),
            Some(Duration::from_millis(1)),
            "exact again once the ACK passes them"
        );
    }

    #[test]
    fn a_verdict_still_waiting_at_the_next_stall_is_settled_as_a_repair() {
        let mut r = Rack::default();
        r.on_probe(Some((Seq(2000), Seq(3000))), Some(Seq(3000)));
        r.on_progress();
        // The ACK reaches the probe's end: neither past it nor a D-SACK yet.
        assert_eq!(r.on_probe_ack(Seq(3000), false, None), None);
        assert!(
            !r.settle_probe(Seq(2000)),
            "not before the ACK reaches its end"
        );
        assert!(r.may_probe(Seq(3000)), "the path fell silent again: probe");
        assert!(r.settle_probe(Seq(3000)));
        assert!(r.tlp_end.is_none() && r.tlp_rxt.is_none());
        assert!(!r.settle_probe(Seq(3000)), "once");
    }

    #[test]
    fn repeated_probes_are_judged_by_a_dsack_for_every_copy() {
        let mut r = Rack::default();
        let copy = (Seq(2000), Seq(3000));
        for _ in 0..MAX_PROBES {
            r.on_probe(Some(copy), Some(Seq(3000)));
        }
        assert_eq!(r.on_probe_ack(Seq(3000), false, Some(copy)), None);
        assert_eq!(r.on_probe_ack(Seq(3000), false, Some(copy)), None);
        assert_eq!(
            r.on_probe_ack(Seq(3000), false, Some(copy)),
            Some(false),
            "every copy arrived twice over: the original too, nothing was lost"
        );
    }

    #[test]
    fn dsacks_widen_the_reordering_window_until_sixteen_recoveries_pass() {
        let mut r = Rack {
            min_rtt: Some(Duration::from_millis(40)),
            ..Rack::default()
        };
        let srtt = Some(Duration::from_millis(100));
        assert_eq!(r.reo_wnd(srtt), Duration::from_millis(10), "min RTT / 4");
        r.on_dsack(Seq(0), Seq(5000));
        assert_eq!(r.reo_wnd(srtt), Duration::from_millis(20));
        // Once per round trip: another D-SACK before the ACK passes 5000 changes nothing.
        r.on_dsack(Seq(1000), Seq(6000));
        assert_eq!(r.reo_wnd(srtt), Duration::from_millis(20));
        r.on_dsack(Seq(5000), Seq(9000));
        assert_eq!(r.reo_wnd(srtt), Duration::from_millis(30));
        // Never past SRTT.
        for i in 0..10 {
            r.on_dsack(Seq(10_000 * (i + 1)), Seq(10_000 * (i + 2)));
        }
        assert_eq!(r.reo_wnd(srtt), Duration::from_millis(100));
        for _ in 0..15 {
            r.on_recovery_end();
        }
        assert_eq!(r.reo_wnd(srtt), Duration::from_millis(100), "still widened");
        r.on_recovery_end();
        assert_eq!(r.reo_wnd(srtt), Duration::from_millis(10), "back after 16");
    }

    #[test]
    fn a_probe_is_judged_only_at_or_past_its_end() {
        let mut r = Rack {
            tlp_end: Some(Seq(3000)),
            tlp_rxt: Some((Seq(2000), Seq(3000))),
            ..Rack::default()
        };
        // Below the probe (a window update, an old ACK): nothing to tell, the episode stays.
        assert_eq!(r.on_probe_ack(Seq(2000), true, None), None);
        assert!(r.tlp_end.is_some());
        // At it, not a pure duplicate: still nothing.
        assert_eq!(r.on_probe_ack(Seq(3000), false, None), None);
        // Past it without a D-SACK: the probe repaired a loss.
        assert_eq!(r.on_probe_ack(Seq(4000), false, None), Some(true));
        assert!(r.tlp_end.is_none() && r.tlp_rxt.is_none());
        // A D-SACK for the probe: both copies arrived.
        r.tlp_end = Some(Seq(3000));
        r.tlp_rxt = Some((Seq(2000), Seq(3000)));
        let dsack = Some((Seq(2000), Seq(3000)));
        assert_eq!(r.on_probe_ack(Seq(3000), false, dsack), Some(false));
    }
}
