//! CUBIC congestion control (RFC 9438), in f64 internally, windows kept in bytes.
//!
//! Time since the epoch start comes from the injected [`Instant`], so runs are reproducible.

use super::{initial_window, slow_start, CongestionControl};
use crate::time::Instant;
use std::time::Duration;

/// C, the scaling constant in segments per second cubed (RFC 9438 §5.1).
const C: f64 = 0.4;
/// beta_cubic, the multiplicative decrease factor (RFC 9438 §4.6).
const BETA: f64 = 0.7;
/// alpha_cubic = 3 * (1 - beta) / (1 + beta), the Reno-friendly increase (RFC 9438 §4.3).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC's window state. All windows are in bytes; segments only appear in the formulas.
#[derive(Clone, Debug)]
pub struct Cubic {
    mss: u32,
    cwnd: f64,
    ssthresh: u32,
    /// W_max: `cwnd` just before the last reduction, after fast convergence (RFC 9438 §4.7).
    w_max: f64,
    /// cwnd_prior: `cwnd` when `ssthresh` was last set (RFC 9438 §4.3).
    cwnd_prior: f64,
    /// Start of the current congestion avoidance stage, `None` until its first ACK.
    epoch_start: Option<Instant>,
    /// K, in seconds, of the current epoch (RFC 9438 §4.2).
    k: f64,
    /// W_max of the current epoch: never below cwnd_epoch, so K >= 0.
    origin: f64,
    /// W_est, the Reno-friendly window estimate (RFC 9438 §4.3).
    w_est: f64,
    /// Last RTT reported by the caller, for target = W_cubic(t + RTT).
    rtt: Duration,
    /// A timeout happened and nothing was acknowledged since (RFC 5681 §3.1).
    in_timeout: bool,
}

impl Cubic {
    /// Initial window 10 MSS (RFC 6928), `ssthresh` arbitrarily high (RFC 5681 §3.1). `now` is
    /// unused today: an epoch starts at the first congestion avoidance ACK (RFC 9438 §4.2).
    pub fn new(mss: u32, _now: Instant) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            cwnd: f64::from(initial_window(mss)),
            ssthresh: u32::MAX,
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch_start: None,
            k: 0.0,
            origin: 0.0,
            w_est: 0.0,
            rtt: Duration::ZERO,
            in_timeout: false,
        }
    }

    fn mss_f(&self) -> f64 {
        f64::from(self.mss)
    }

    /// W_cubic(t) = C * (t - K)^3 + W_max (RFC 9438 §4.2, eq. 1), in bytes.
    fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) * self.mss_f() + self.origin
    }

    /// Starts a congestion avoidance stage: K = cbrt((W_max - cwnd_epoch) / C) (RFC 9438 §4.2),
    /// W_est = cwnd_epoch (§4.3).
    fn start_epoch(&mut self, now: Instant) {
        self.epoch_start = Some(now);
        self.origin = self.w_max.max(self.cwnd);
        self.k = ((self.origin - self.cwnd) / self.mss_f() / C).cbrt();
        self.w_est = self.cwnd;
    }

    /// Per-ACK growth in congestion avoidance (RFC 9438 §4.2 to §4.5).
    fn congestion_avoidance(&mut self, now: Instant, acked: f64) {
        let epoch_start = match self.epoch_start {
            Some(start) => start,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let t = (now - epoch_start).as_secs_f64();

        // Reno-friendly estimate; alpha_cubic becomes 1 once W_est reaches cwnd_prior (§4.3).
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked * self.mss_f() / self.cwnd;

        if self.w_cubic(t) < self.w_est {
            self.cwnd = self.w_est;
        } else {
            // Concave below W_max (§4.4), convex above (§4.5); target bounded to [cwnd, 1.5 cwnd].
            let target = self
                .w_cubic(t + self.rtt.as_secs_f64())
                .clamp(self.cwnd, 1.5 * self.cwnd);
            self.cwnd += (target - self.cwnd) / self.cwnd * acked;
        }
        self.cwnd = self.cwnd.min(f64::from(u32::MAX));
    }

    /// ssthresh = max(flight * beta_cubic, 2 MSS) (RFC 9438 §4.6, §4.8).
    fn loss_ssthresh(&self, flight: u32) -> u32 {
        let floor = 2.0 * self.mss_f();
        (f64::from(flight) * BETA).max(floor) as u32
    }

    /// W_max with fast convergence (RFC 9438 §4.7) and cwnd_prior (§4.3), before a reduction.
    fn remember_w_max(&mut self) {
        self.w_max = if self.cwnd < self.w_max {
            self.cwnd * (1.0 + BETA) / 2.0
        } else {
            self.cwnd
        };
        self.cwnd_prior = self.cwnd;
        self.epoch_start = None;
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd as u32
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// K is in segments, so a new MSS starts a new epoch.
    fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
        self.cwnd = f64::from(initial_window(self.mss));
        self.epoch_start = None;
    }

    fn on_ack(&mut self, now: Instant, acked: u32, rtt: Option<Duration>) {
        self.in_timeout = false;
        if let Some(rtt) = rtt {
            self.rtt = rtt;
        }
        let mut acked = acked;
        if self.cwnd() < self.ssthresh {
            let (cwnd, rest) = slow_start(self.cwnd(), self.ssthresh, self.mss, acked);
            self.cwnd = f64::from(cwnd);
            acked = rest;
        }
        if acked > 0 {
            self.congestion_avoidance(now, f64::from(acked));
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, flight: u32) {
        self.in_timeout = false;
        self.remember_w_max();
        self.ssthresh = self.loss_ssthresh(flight);
        self.cwnd = f64::from(self.ssthresh);
    }

    /// Reno's reaction with beta_cubic; the next stage starts with K = 0 and W_max = cwnd_epoch
    /// (RFC 9438 §4.8).
    fn on_timeout(&mut self, _now: Instant, flight: u32) {
        if !self.in_timeout {
            self.cwnd_prior = self.cwnd;
            self.ssthresh = self.loss_ssthresh(flight);
        }
        self.in_timeout = true;
        self.w_max = 0.0;
        self.epoch_start = None;
        self.cwnd = self.mss_f();
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

    /// One ACK per MSS for a whole window, then time moves on by one RTT; cwnd after each round.
    fn rounds(cc: &mut Cubic, now: &mut Instant, rtt: Duration, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                for _ in 0..cc.cwnd() / MSS {
                    cc.on_ack(*now, MSS, Some(rtt));
                }
                *now += rtt;
                cc.cwnd()
            })
            .collect()
    }

    /// A connection that lost at cwnd = 100 MSS and now sits at ssthresh = 70 MSS.
    fn after_loss_at_100() -> Cubic {
        let mut cc = Cubic::new(MSS, T0);
        cc.cwnd = f64::from(100 * MSS);
        cc.on_congestion_event(T0, 100 * MSS);
        cc
    }

    #[test]
    fn slow_start_doubles_per_rtt() {
        let mut cc = Cubic::new(MSS, T0);
        let mut now = T0;
        let trace = rounds(&mut cc, &mut now, Duration::from_millis(100), 3);
        assert_eq!(trace, [20 * MSS, 40 * MSS, 80 * MSS]);
    }

    #[test]
    fn congestion_event_uses_beta() {
        let cc = after_loss_at_100();
        assert_eq!((cc.ssthresh(), cc.cwnd()), (70 * MSS, 70 * MSS));
        assert_eq!(cc.w_max, f64::from(100 * MSS));
        let mut cc = Cubic::new(MSS, T0);
        cc.on_congestion_event(T0, MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (2 * MSS, 2 * MSS));
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut cc = after_loss_at_100();
        cc.on_congestion_event(T0, 70 * MSS);
        // 70 < W_max = 100, so W_max = 70 * (1 + 0.7) / 2 = 59.5 MSS (RFC 9438 §4.7).
        assert_eq!(cc.w_max, 59_500.0);
        assert_eq!(cc.cwnd(), 49 * MSS);
    }

    #[test]
    fn concave_then_plateau_then_convex() {
        let mut cc = after_loss_at_100();
        let mut now = T0;
        // K = cbrt(30 / 0.4) ~ 4.22 s ~ 21 RTTs of 200 ms; the Reno estimate stays below.
        let trace = rounds(&mut cc, &mut now, Duration::from_millis(200), 50);
        assert!((cc.k - 75f64.cbrt()).abs() < 1e-9);
        let growth = |i: usize| trace[i + 1] - trace[i];
        assert!(
            growth(1) > growth(10) && growth(10) > growth(19),
            "concave below W_max"
        );
        assert!(
            trace[20].abs_diff(100 * MSS) <= MSS,
            "plateau at W_max when t ~ K"
        );
        assert!(
            growth(45) > growth(30) && growth(30) > growth(22),
            "convex above W_max"
        );
        assert!(trace.windows(2).all(|w| w[1] >= w[0]));
        assert!(
            cc.w_cubic((now - T0).as_secs_f64()) > cc.w_est,
            "not Reno-friendly here"
        );
    }

    #[test]
    fn target_is_capped_at_one_and_a_half_cwnd() {
        let mut cc = after_loss_at_100();
        cc.on_ack(T0, MSS, None);
        let before = cc.cwnd;
        // Long after K, W_cubic is huge; target = 1.5 cwnd adds half an MSS per MSS acked.
        cc.on_ack(T0 + Duration::from_secs(100), MSS, None);
        assert!((cc.cwnd - before - f64::from(MSS) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn reno_friendly_region_with_short_rtt() {
        let mut cc = after_loss_at_100();
        let mut now = T0;
        // With a 1 ms RTT, Reno gains alpha_cubic ~ 0.53 MSS per RTT, far more than CUBIC.
        rounds(&mut cc, &mut now, Duration::from_millis(1), 40);
        let t = (now - T0).as_secs_f64();
        assert!(cc.w_cubic(t) < cc.w_est);
        assert_eq!(cc.cwnd, cc.w_est);
        let expected = 70.0 + 40.0 * ALPHA;
        assert!(
            (cc.cwnd / f64::from(MSS) - expected).abs() < 1.0,
            "{}",
            cc.cwnd
        );
    }

    #[test]
    fn alpha_becomes_one_past_cwnd_prior() {
        let mut cc = after_loss_at_100();
        let mut now = T0;
        rounds(&mut cc, &mut now, Duration::from_micros(100), 120);
        assert!(cc.w_est > cc.cwnd_prior);
        let before = cc.cwnd();
        rounds(&mut cc, &mut now, Duration::from_micros(100), 10);
        assert!((cc.cwnd() - before).abs_diff(10 * MSS) <= MSS);
    }

    #[test]
    fn timeout_resets_to_loss_window() {
        let mut cc = Cubic::new(MSS, T0);
        cc.cwnd = f64::from(100 * MSS);
        cc.on_timeout(T0, 100 * MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (70 * MSS, MSS));
        cc.on_timeout(T0, 100 * MSS);
        assert_eq!(cc.ssthresh(), 70 * MSS, "held on a repeated timeout");
        let mut now = T0;
        let trace = rounds(&mut cc, &mut now, Duration::from_millis(100), 8);
        assert_eq!(&trace[..3], [2 * MSS, 4 * MSS, 8 * MSS]);
        assert!(trace[7] >= 70 * MSS);
        assert_eq!(cc.k, 0.0, "K = 0 after a timeout (RFC 9438 §4.8)");
    }

    #[test]
    fn deterministic() {
        let run = || {
            let mut cc = Cubic::new(MSS, T0);
            let mut now = T0;
            let mut trace = Vec::new();
            for i in 0..2000u32 {
                now += Duration::from_micros(u64::from(i % 13) * 350);
                match i % 401 {
                    200 => cc.on_congestion_event(now, cc.cwnd()),
                    400 => cc.on_timeout(now, cc.cwnd()),
                    _ => cc.on_ack(now, 1 + i * 37 % MSS, Some(Duration::from_millis(20))),
                }
                trace.push((cc.cwnd(), cc.ssthresh()));
            }
            trace
        };
        assert_eq!(run(), run());
    }
}
