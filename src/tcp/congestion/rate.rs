//! Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation, as carried into
//! draft-ietf-ccwg-bbr §4.1; Linux's `tcp_rate.c`): each ACK yields a sample of the rate at
//! which the path delivered data, from the data it newly delivered and the state the
//! connection was in when that data was sent.
//!
//! Instead of a record per segment, transmissions are kept as a log in sequence (and time)
//! order of `(end seq, state at send)`; transmissions at the same instant with the same
//! state share one entry. Retransmissions get no entry: a sample whose newest delivered byte
//! was resent is taken against its original send, which only lengthens the interval, so the
//! rate it gives errs low, never high.

use crate::tcp::seq::Seq;
use crate::time::Instant;
use std::collections::VecDeque;
use std::time::Duration;

/// Log entries kept; beyond this the newest entry absorbs later sends (its state then errs
/// old, which lengthens the intervals measured from it: rates err low).
const MAX_LOG: usize = 4096;

/// The connection's state when a stretch of data was sent (the draft's per-packet `P.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TxState {
    /// P.delivered: C.delivered when the data was sent.
    delivered: u64,
    /// C.delivered_ce when the data was sent (Linux's `tx.delivered_ce`).
    delivered_ce: u64,
    /// P.delivered_time: C.delivered_time when the data was sent.
    delivered_time: Instant,
    /// P.first_send_time: C.first_send_time when the data was sent.
    first_send_time: Instant,
    /// P.send_time.
    send_time: Instant,
    /// P.lost: C.lost when the data was sent (BBR's loss rate per round trip).
    lost: u64,
    /// P.is_app_limited.
    app_limited: bool,
    /// P.tx_in_flight: the bytes in flight once the data had been sent.
    tx_in_flight: u32,
}

/// One ACK's rate sample (the draft's `rs.*`) and what the ACK changed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateSample {
    /// rs.delivery_rate in bytes a second; `None` when the ACK gives no valid sample (its
    /// interval shorter than the minimum RTT, or no logged transmission behind it).
    pub delivery_rate: Option<f64>,
    /// rs.is_app_limited: the data was sent while the application had too little to send.
    pub is_app_limited: bool,
    /// rs.interval: the longer of the send and the ACK intervals.
    pub interval: Duration,
    /// rs.delivered: bytes delivered over the interval.
    pub delivered: u64,
    /// Of those, bytes whose ACK echoed a congestion mark (Linux's `rs->delivered_ce`).
    pub delivered_ce: u64,
    /// This ACK echoed a congestion mark (ECE; Linux's `rs->is_ece`).
    pub is_ece: bool,
    /// rs.prior_delivered: C.delivered when the newest delivered data was sent.
    pub prior_delivered: u64,
    /// rs.tx_in_flight: bytes in flight when the newest delivered data was sent.
    pub tx_in_flight: u32,
    /// rs.lost: bytes deemed lost since the newest delivered data was sent.
    pub lost: u64,
    /// rs.newly_acked: bytes this ACK delivered (cumulatively or by SACK).
    pub newly_acked: u32,
    /// rs.newly_lost: bytes this ACK's loss detection deemed lost.
    pub newly_lost: u32,
    /// An RTT sample this ACK gave, if any (Karn's rule applied).
    pub rtt: Option<Duration>,
    /// Bytes in flight after the ACK.
    pub in_flight: u32,
    /// C.delivered after the ACK.
    pub total_delivered: u64,
    /// C.delivered_ce after the ACK.
    pub total_delivered_ce: u64,
    /// The sender was in loss recovery (fast recovery, or after a timeout) after the ACK.
    pub in_recovery: bool,
    /// The congestion window limited the sender this round (Linux's `is_cwnd_limited`).
    pub cwnd_limited: bool,
}

/// The connection's delivery state (the draft's `C.*`) and its transmission log.
#[derive(Debug)]
pub struct Delivery {
    /// C.delivered: bytes delivered so far (cumulatively acknowledged or SACKed).
    pub delivered: u64,
    /// Bytes delivered by ACKs that echoed a congestion mark (Linux's `delivered_ce`).
    pub delivered_ce: u64,
    /// C.delivered_time: when C.delivered last grew.
    delivered_time: Instant,
    /// C.first_send_time: the send time of the newest data delivered (the start of the
    /// current send interval).
    first_send_time: Instant,
    /// C.app_limited: 0, or the C.delivered mark past which samples are no longer
    /// application-limited.
    app_limited: u64,
    /// C.lost: bytes deemed lost so far.
    pub lost: u64,
    /// Data below this point has been counted in C.lost.
    lost_until: Option<Seq>,
    /// Bytes deemed lost since the last rate sample (by ACKs or a timeout).
    unreported_lost: u32,
    /// Transmissions: (end seq, state at send), in sequence and time order.
    log: VecDeque<(Seq, TxState)>,
    /// Nothing below this is logged: the log's first entry starts here.
    log_start: Seq,
}

impl Delivery {
    /// Estimation from `now` on, for data sent from `start` (SND.MAX) on.
    pub fn new(now: Instant, start: Seq) -> Delivery {
        Delivery {
            delivered: 0,
            delivered_ce: 0,
            delivered_time: now,
            first_send_time: now,
            app_limited: 0,
            lost: 0,
            lost_until: None,
            unreported_lost: 0,
            log: VecDeque::new(),
            log_start: start,
        }
    }

    /// New data `[.., end)` went out at `now`; `in_flight` bytes were in flight before it
    /// and `tx_in_flight` after.
    pub fn on_send(&mut self, end: Seq, now: Instant, in_flight: u32, tx_in_flight: u32) {
        if in_flight == 0 {
            // A send after an idle period starts the intervals afresh (draft §4.1.2.2).
            self.first_send_time = now;
            self.delivered_time = now;
        }
        let state = TxState {
            delivered: self.delivered,
            delivered_ce: self.delivered_ce,
            delivered_time: self.delivered_time,
            first_send_time: self.first_send_time,
            send_time: now,
            lost: self.lost,
            app_limited: self.app_limited != 0,
            tx_in_flight,
        };
        let full = self.log.len() >= MAX_LOG;
        match self.log.back_mut() {
            Some((last_end, last))
                if full
                    || TxState {
                        tx_in_flight,
                        ..*last
                    } == state =>
            {
                *last_end = end;
                last.tx_in_flight = last.tx_in_flight.max(tx_in_flight);
            }
            _ => self.log.push_back((end, state)),
        }
    }

    /// The application had nothing more to send with `in_flight` bytes in flight and room in
    /// the congestion window (draft §4.1.2.4): samples until that data is delivered are
    /// application-limited.
    pub fn mark_app_limited(&mut self, in_flight: u32) {
        self.app_limited = (self.delivered + u64::from(in_flight)).max(1);
    }

    /// Whether samples are application-limited now.
    pub fn app_limited(&self) -> bool {
        self.app_limited != 0
    }

    /// Data below `to` not acknowledged (from `una`) nor SACKed (`unsacked` counts that in
    /// a range) is deemed lost; what was not counted before is added to C.lost, and to what
    /// the next rate sample reports as newly lost. Returns the bytes added.
    pub fn on_lost(&mut self, una: Seq, to: Seq, unsacked: impl Fn(Seq, Seq) -> u32) -> u32 {
        let from = self.lost_until.map_or(una, |l| l.max(una));
        if !to.gt(from) {
            return 0;
        }
        let n = unsacked(from, to);
        self.lost_until = Some(to);
        self.lost += u64::from(n);
        self.unreported_lost = self.unreported_lost.saturating_add(n);
        n
    }

    /// An ACK at `now` delivered `newly_acked` bytes (`una` the cumulative ACK after it),
    /// the newest of them ending at `newest`, and echoed a congestion mark if `ece`; builds
    /// the rate sample (draft §4.1.2.3) and forgets the log below `una`. `min_rtt`: samples
    /// over a shorter interval are invalid.
    pub fn on_ack(
        &mut self,
        now: Instant,
        una: Seq,
        newest: Option<Seq>,
        newly_acked: u32,
        min_rtt: Option<Duration>,
        ece: bool,
    ) -> RateSample {
        let mut rs = RateSample {
            newly_acked,
            is_ece: ece,
            ..RateSample::default()
        };
        if newly_acked > 0 {
            self.delivered += u64::from(newly_acked);
            self.delivered_time = now;
            if ece {
                self.delivered_ce += u64::from(newly_acked);
            }
        }
        rs.newly_lost = std::mem::take(&mut self.unreported_lost);
        let p = newest.filter(|_| newly_acked > 0).and_then(|seq| {
            // The entry holding byte seq - 1; nothing for data sent before the log began
            // (before a timeout, or before the estimator was), which the next entry's
            // later state would misdate.
            let last = seq - 1;
            if last.lt(self.log_start) {
                return None;
            }
            let i = self.log.partition_point(|&(end, _)| end.le(last));
            self.log.get(i).map(|&(_, p)| p)
        });
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
        if let Some(p) = p {
            self.first_send_time = p.send_time;
            rs.prior_delivered = p.delivered;
            rs.is_app_limited = p.app_limited;
            rs.tx_in_flight = p.tx_in_flight;
            rs.lost = self.lost - p.lost;
            rs.delivered = self.delivered - p.delivered;
            rs.delivered_ce = self.delivered_ce - p.delivered_ce;
            let send_elapsed = p.send_time - p.first_send_time;
            let ack_elapsed = now - p.delivered_time;
            rs.interval = send_elapsed.max(ack_elapsed);
            let valid = !rs.interval.is_zero() && min_rtt.is_none_or(|m| rs.interval >= m);
            if valid {
                rs.delivery_rate = Some(rs.delivered as f64 / rs.interval.as_secs_f64());
            }
        }
        while let Some(&(end, _)) = self.log.front().filter(|&&(end, _)| end.le(una)) {
            self.log.pop_front();
            self.log_start = end;
        }
        // Counted losses all below the cumulative ACK: forget the mark, which would compare
        // wrong once the sequence space wraps past it.
        if self.lost_until.is_some_and(|l| l.le(una)) {
            self.lost_until = None;
        }
        rs
    }

    /// A timeout: everything sent up to `max` (SND.MAX) is to be resent, and the log of it is
    /// of no use any more.
    pub fn on_timeout(&mut self, max: Seq) {
        self.log.clear();
        self.log_start = max;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn a_steady_flow_samples_its_rate() {
        // 10 000 bytes a millisecond: 1000-byte segments every 0.1 ms, each acknowledged
        // 10 ms after it left.
        let mut d = Delivery::new(Instant::ZERO, Seq(0));
        let mut rs = RateSample::default();
        let us = |n: u64| Instant::ZERO + Duration::from_micros(n);
        for i in 0..400u32 {
            let t = us(u64::from(i) * 100);
            let flight = (i.min(100)) * 1000;
            d.on_send(Seq(1000 * (i + 1)), t, flight, flight + 1000);
            if i >= 100 {
                let acked = i - 100;
                rs = d.on_ack(
                    t,
                    Seq(1000 * (acked + 1)),
                    Some(Seq(1000 * (acked + 1))),
                    1000,
                    None,
                    false,
                );
            }
        }
        let rate = rs.delivery_rate.expect("a sample");
        assert!((rate - 10_000_000.0).abs() < 200_000.0, "{rate}");
        assert!(!rs.is_app_limited);
        assert_eq!(rs.tx_in_flight, 101_000);
    }

    #[test]
    fn app_limited_marks_the_samples_until_that_data_is_delivered() {
        let mut d = Delivery::new(Instant::ZERO, Seq(0));
        d.on_send(Seq(1000), at(0), 0, 1000);
        d.mark_app_limited(1000);
        d.on_send(Seq(2000), at(1), 1000, 2000);
        let rs = d.on_ack(at(10), Seq(1000), Some(Seq(1000)), 1000, None, false);
        assert!(!rs.is_app_limited, "sent before the mark");
        assert!(
            d.app_limited(),
            "the mark, C.delivered + in flight, is 1000"
        );
        let rs = d.on_ack(at(11), Seq(2000), Some(Seq(2000)), 1000, None, false);
        assert!(rs.is_app_limited, "sent while application-limited");
        assert!(!d.app_limited(), "delivered past the mark");
    }

    /// Bytes delivered by ACKs that echo a mark count as marked, in the total and in the
    /// sample of each ACK since its data was sent (Linux's `delivered_ce`).
    #[test]
    fn marked_deliveries_are_counted_per_sample() {
        let mut d = Delivery::new(Instant::ZERO, Seq(0));
        d.on_send(Seq(1000), at(0), 0, 1000);
        d.on_send(Seq(2000), at(0), 1000, 2000);
        let rs = d.on_ack(at(10), Seq(1000), Some(Seq(1000)), 1000, None, true);
        assert!(rs.is_ece);
        assert_eq!((rs.delivered, rs.delivered_ce), (1000, 1000));
        d.on_send(Seq(3000), at(10), 1000, 2000);
        let rs = d.on_ack(at(11), Seq(2000), Some(Seq(2000)), 1000, None, false);
        assert!(!rs.is_ece);
        assert_eq!((rs.delivered, rs.delivered_ce), (2000, 1000), "sent at 0");
        let rs = d.on_ack(at(20), Seq(3000), Some(Seq(3000)), 1000, None, true);
        assert_eq!(
            (rs.delivered, rs.delivered_ce),
            (2000, 1000),
            "sent at 10, after the first mark"
        );
        assert_eq!((d.delivered, d.delivered_ce), (3000, 2000));
    }

    #[test]
    fn a_sample_shorter_than_the_minimum_rtt_is_invalid() {
        let mut d = Delivery::new(Instant::ZERO, Seq(0));
        d.on_send(Seq(1000), at(0), 0, 1000);
        let rs = d.on_ack(
            at(2),
            Seq(1000),
            Some(Seq(1000)),
            1000,
            Some(Duration::from_millis(5)),
            false,
        );
        assert_eq!(rs.delivery_rate, None);
        assert_eq!(rs.delivered, 1000);
    }

    #[test]
    fn data_sent_before_the_log_began_gives_no_sample() {
        // A timeout at SND.MAX 10 000: what it resends is not logged; new data is.
        let mut d = Delivery::new(Instant::ZERO, Seq(0));
        d.on_send(Seq(10_000), at(0), 0, 10_000);
        d.on_timeout(Seq(10_000));
        d.on_send(Seq(11_000), at(300), 0, 1000);
        let rs = d.on_ack(at(301), Seq(5000), Some(Seq(5000)), 5000, None, false);
        assert_eq!(
            rs.delivery_rate, None,
            "not dated by the later send: {rs:?}"
        );
        let rs = d.on_ack(at(310), Seq(11_000), Some(Seq(11_000)), 6000, None, false);
        assert!(rs.delivery_rate.is_some());
    }

    #[test]
    fn the_loss_mark_is_forgotten_once_acknowledged_so_the_wrap_cannot_hide_losses() {
        let mut d = Delivery::new(Instant::ZERO, Seq(0));
        let all = |a: Seq, b: Seq| b.since(a);
        assert_eq!(d.on_lost(Seq(0), Seq(1000), all), 1000);
        d.on_send(Seq(3000), at(0), 0, 3000);
        d.on_ack(at(10), Seq(3000), Some(Seq(3000)), 2000, None, false);
        // 2^31 bytes later the old mark would compare as ahead of the new loss.
        let far = Seq(3000) + (1 << 31) + 500;
        assert_eq!(d.on_lost(far, far + 1448, all), 1448);
        assert_eq!(d.lost, 2448);
    }

    #[test]
    fn losses_are_counted_once_and_sampled_per_flight() {
        let mut d = Delivery::new(Instant::ZERO, Seq(0));
        d.on_send(Seq(10_000), at(0), 0, 10_000);
        assert_eq!(d.on_lost(Seq(0), Seq(3000), |a, b| b.since(a)), 3000);
        assert_eq!(d.on_lost(Seq(0), Seq(3000), |a, b| b.since(a)), 0);
        assert_eq!(d.on_lost(Seq(0), Seq(4000), |a, b| b.since(a)), 1000);
        let rs = d.on_ack(at(10), Seq(0), Some(Seq(10_000)), 6000, None, false);
        assert_eq!(rs.lost, 4000, "lost since the data was sent");
        assert_eq!(rs.newly_lost, 4000, "deemed lost since the last sample");
        let rs = d.on_ack(at(11), Seq(0), Some(Seq(10_000)), 0, None, false);
        assert_eq!(rs.newly_lost, 0);
    }
}
