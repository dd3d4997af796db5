//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Karn's rule (RFC 6298 §3) is the caller's job: only call [`RttEstimator::sample`] with RTTs
//! measured on segments that were never retransmitted (or from timestamps, RFC 7323 §4).

use std::time::Duration;

/// Clock granularity G (RFC 6298 §2): our clock is in microseconds, but like Linux we never let
/// the variance term fall below one millisecond.
const GRANULARITY: Duration = Duration::from_millis(1);
/// K in RTO = SRTT + max(G, K * RTTVAR) (RFC 6298 §2.2).
const K: u32 = 4;

/// Smoothed RTT, its variance and the backed-off RTO of one connection.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    initial: Duration,
    min: Duration,
    max: Duration,
    backoffs: u32,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RttEstimator {
    /// Initial RTO 1 s (RFC 6298 §2.1), minimum 200 ms (Linux's `TCP_RTO_MIN`, below the RFC's
    /// 1 s of §2.4), maximum 120 s (Linux's `TCP_RTO_MAX`; §2.5 allows any bound of at least 60 s).
    pub fn new() -> Self {
        Self::with_limits(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    /// Custom limits; a `max` below `min` is raised to `min`.
    pub fn with_limits(initial: Duration, min: Duration, max: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            initial,
            min,
            max: max.max(min),
            backoffs: 0,
        }
    }

    /// Feeds one valid RTT measurement (RFC 6298 §2.2, §2.3) and, since a valid sample means the
    /// path delivers again, drops any backoff (RFC 6298 §5.7 and Karn's algorithm).
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                // rttvar = (1 - beta) * rttvar + beta * |srtt - R'|, beta = 1/4
                self.rttvar = (self.rttvar * 3 + srtt.abs_diff(rtt)) / 4;
                // srtt = (1 - alpha) * srtt + alpha * R', alpha = 1/8
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        self.backoffs = 0;
    }

    /// The RTO before backoff: SRTT + max(G, K * RTTVAR) (RFC 6298 §2.3), or the initial RTO
    /// before the first sample (§2.1), clamped to the limits (§2.4, §2.5).
    fn base_rto(&self) -> Duration {
        let rto = match self.srtt {
            None => self.initial,
            Some(srtt) => srtt.saturating_add(GRANULARITY.max(self.rttvar.saturating_mul(K))),
        };
        rto.clamp(self.min, self.max)
    }

    /// The current RTO: the base doubled once per backoff, at most the maximum (RFC 6298 §5.5).
    pub fn rto(&self) -> Duration {
        2u32.checked_pow(self.backoffs)
            .and_then(|factor| self.base_rto().checked_mul(factor))
            .map_or(self.max, |rto| rto.min(self.max))
    }

    /// The retransmission timer expired: double the RTO (RFC 6298 §5.5).
    pub fn backoff(&mut self) {
        self.backoffs = self.backoffs.saturating_add(1);
    }

    /// Forget the backoff, e.g. when new data is acknowledged without a usable sample.
    pub fn reset_backoff(&mut self) {
        self.backoffs = 0;
    }

    /// How many times the RTO has been doubled since the last reset.
    pub fn backoffs(&self) -> u32 {
        self.backoffs
    }

    /// Smoothed RTT, `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RTT variation, zero before the first sample.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn initial_rto_before_samples() {
        let r = RttEstimator::new();
        assert_eq!(r.srtt(), None);
        assert_eq!(r.rttvar(), Duration::ZERO);
        assert_eq!(r.rto(), ms(1000));
    }

    #[test]
    fn first_sample() {
        let mut r = RttEstimator::new();
        r.sample(ms(100));
        assert_eq!(r.srtt(), Some(ms(100)));
        assert_eq!(r.rttvar(), ms(50));
        assert_eq!(r.rto(), ms(300));
    }

    #[test]
    fn later_samples_smooth() {
        let mut r = RttEstimator::new();
        r.sample(ms(100));
        r.sample(ms(200));
        // rttvar = 3/4 * 50 + 1/4 * 100 = 62.5; srtt = 7/8 * 100 + 1/8 * 200 = 112.5
        assert_eq!(r.rttvar(), Duration::from_micros(62_500));
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.rto(), Duration::from_micros(362_500));
    }

    #[test]
    fn converges_and_respects_min() {
        let mut r = RttEstimator::new();
        for _ in 0..200 {
            r.sample(ms(10));
        }
        assert_eq!(r.srtt(), Some(ms(10)));
        assert!(r.rttvar() < Duration::from_micros(10));
        assert_eq!(r.rto(), ms(200));
    }

    #[test]
    fn granularity_floor() {
        let mut r = RttEstimator::with_limits(ms(1000), Duration::ZERO, ms(60_000));
        for _ in 0..200 {
            r.sample(ms(10));
        }
        assert_eq!(r.rto(), ms(11));
    }

    #[test]
    fn backoff_doubles_up_to_max() {
        let mut r = RttEstimator::new();
        r.backoff();
        assert_eq!((r.backoffs(), r.rto()), (1, ms(2000)));
        r.backoff();
        assert_eq!(r.rto(), ms(4000));
        for _ in 0..100 {
            r.backoff();
        }
        assert_eq!(r.rto(), ms(120_000));
        r.reset_backoff();
        assert_eq!((r.backoffs(), r.rto()), (0, ms(1000)));
    }

    #[test]
    fn sample_clears_backoff() {
        let mut r = RttEstimator::new();
        r.backoff();
        r.sample(ms(100));
        assert_eq!((r.backoffs(), r.rto()), (0, ms(300)));
    }

    #[test]
    fn max_clamps_large_samples() {
        let mut r = RttEstimator::new();
        r.sample(Duration::from_secs(100));
        assert_eq!(r.rto(), ms(120_000));
    }
}
