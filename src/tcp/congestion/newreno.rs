//! NewReno congestion control (RFC 5681, RFC 6582) with appropriate byte counting (RFC 3465).
//!
//! The recovery itself (partial ACKs, retransmissions) lives with the sender; this keeps only
//! the windows.

use super::{initial_window, slow_start, CongestionControl};
use crate::time::Instant;
use std::time::Duration;

/// NewReno's `cwnd` and `ssthresh`, in bytes.
#[derive(Clone, Debug)]
pub struct NewReno {
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance not yet turned into window (RFC 3465 §2.1).
    bytes_acked: u32,
    /// A timeout happened and nothing was acknowledged since (RFC 5681 §3.1).
    in_timeout: bool,
}

impl NewReno {
    /// Initial window 10 MSS (RFC 6928), `ssthresh` arbitrarily high (RFC 5681 §3.1).
    pub fn new(mss: u32) -> Self {
        let mss = mss.max(1);
        NewReno {
            mss,
            cwnd: initial_window(mss),
            ssthresh: u32::MAX,
            bytes_acked: 0,
            in_timeout: false,
        }
    }

    /// ssthresh = max(FlightSize / 2, 2 * SMSS) (RFC 5681 §3.1 eq. 4).
    fn loss_ssthresh(&self, flight: u32) -> u32 {
        (flight / 2).max(self.mss.saturating_mul(2))
    }

    /// One MSS per `cwnd` of acknowledged bytes (RFC 5681 §3.1, RFC 3465 §2.1).
    fn congestion_avoidance(&mut self, acked: u32) {
        self.bytes_acked = self.bytes_acked.saturating_add(acked);
        while self.bytes_acked >= self.cwnd {
            self.bytes_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "newreno"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
        self.cwnd = initial_window(self.mss);
    }

    fn on_ack(&mut self, _now: Instant, acked: u32, _rtt: Option<Duration>) {
        self.in_timeout = false;
        let mut acked = acked;
        if self.cwnd < self.ssthresh {
            (self.cwnd, acked) = slow_start(self.cwnd, self.ssthresh, self.mss, acked);
        }
        if acked > 0 {
            self.congestion_avoidance(acked);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, flight: u32) {
        self.in_timeout = false;
        self.ssthresh = self.loss_ssthresh(flight);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn on_timeout(&mut self, _now: Instant, flight: u32) {
        if !self.in_timeout {
            self.ssthresh = self.loss_ssthresh(flight);
        }
        self.in_timeout = true;
        self.cwnd = self.mss;
        self.bytes_acked = 0;
    }

    fn snapshot(&self) -> Box<dyn CongestionControl> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;
    const T0: Instant = Instant::ZERO;

    #[test]
    fn slow_start_doubles_per_rtt() {
        let mut cc = NewReno::new(MSS);
        for _ in 0..10 {
            cc.on_ack(T0, MSS, None);
        }
        assert_eq!(cc.cwnd(), 20 * MSS);
        // A stretch ACK counts at most L = 2 MSS (RFC 3465 §2.2).
        cc.on_ack(T0, 8 * MSS, None);
        assert_eq!(cc.cwnd(), 22 * MSS);
    }

    #[test]
    fn congestion_avoidance_one_mss_per_rtt() {
        let mut cc = NewReno::new(MSS);
        cc.on_congestion_event(T0, 40 * MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (20 * MSS, 20 * MSS));
        for _ in 0..19 {
            cc.on_ack(T0, MSS, None);
        }
        assert_eq!(cc.cwnd(), 20 * MSS);
        cc.on_ack(T0, MSS, None);
        assert_eq!(cc.cwnd(), 21 * MSS);
        for _ in 0..21 {
            cc.on_ack(T0, MSS, None);
        }
        assert_eq!(cc.cwnd(), 22 * MSS);
    }

    #[test]
    fn slow_start_hands_over_at_ssthresh() {
        let mut cc = NewReno::new(MSS);
        cc.on_timeout(T0, 24 * MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (12 * MSS, MSS));
        for _ in 0..11 {
            cc.on_ack(T0, MSS, None);
        }
        assert_eq!(cc.cwnd(), 12 * MSS);
        for _ in 0..12 {
            cc.on_ack(T0, MSS, None);
        }
        assert_eq!(cc.cwnd(), 13 * MSS);
    }

    #[test]
    fn congestion_event_floor_is_two_mss() {
        let mut cc = NewReno::new(MSS);
        cc.on_congestion_event(T0, MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (2 * MSS, 2 * MSS));
    }

    #[test]
    fn repeated_timeout_holds_ssthresh() {
        let mut cc = NewReno::new(MSS);
        cc.on_timeout(T0, 40 * MSS);
        cc.on_timeout(T0, 40 * MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (20 * MSS, MSS));
        cc.on_ack(T0, MSS, None);
        cc.on_timeout(T0, 10 * MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (5 * MSS, MSS));
    }

    #[test]
    fn deterministic() {
        let run = || {
            let mut cc = NewReno::new(MSS);
            let mut trace = Vec::new();
            for i in 0..500u32 {
                match i % 97 {
                    50 => cc.on_congestion_event(T0, cc.cwnd()),
                    90 => cc.on_timeout(T0, cc.cwnd()),
                    _ => cc.on_ack(T0, 1 + i * 37 % MSS, None),
                }
                trace.push((cc.cwnd(), cc.ssthresh()));
            }
            trace
        };
        assert_eq!(run(), run());
    }
}
