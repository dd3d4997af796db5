//! Congestion control: a small trait and three algorithms, NewReno, CUBIC (the default, as on
//! Linux) and BBR, which models the path from delivery rate samples and paces. Windows are in
//! bytes; time comes from the injected [`Instant`], so every algorithm is deterministic.

pub mod bbr;
mod cubic;
mod newreno;
pub mod rate;

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use newreno::NewReno;
pub use rate::RateSample;

use crate::time::Instant;
use std::time::Duration;

/// Initial window in segments: 10 MSS, as Linux (RFC 6928 §2).
pub const INITIAL_WINDOW_SEGMENTS: u32 = 10;
/// Appropriate byte counting limit L in segments (RFC 3465 §2.2).
const ABC_LIMIT_SEGMENTS: u32 = 2;

/// A congestion controller of one connection.
pub trait CongestionControl: Send + std::fmt::Debug {
    /// The algorithm's name: "cubic", "newreno" or "bbr".
    fn name(&self) -> &'static str;
    /// The congestion window, cwnd, in bytes (RFC 5681 §2).
    fn cwnd(&self) -> u32;
    /// The slow start threshold, ssthresh, in bytes (RFC 5681 §3.1).
    fn ssthresh(&self) -> u32;
    /// The handshake fixed the effective send MSS (the peer's MSS option, capped by ours),
    /// before any data: segment-counting state follows it, and so does the initial window,
    /// which is defined in SMSS (RFC 5681 §3.1, RFC 6928 §2).
    fn set_mss(&mut self, mss: u32);
    /// New data acknowledged outside loss recovery. `rtt` is the current smoothed RTT if known.
    fn on_ack(&mut self, now: Instant, acked: u32, rtt: Option<Duration>);
    /// Three duplicate ACKs (or SACK loss detection): enter fast recovery (RFC 5681 §3.2,
    /// RFC 6582, RFC 9438 §4.6). `flight` is the window the reduction applies to: the stack
    /// passes cwnd, as Linux does and RFC 9438 §4.6 allows with congestion window validation
    /// (RFC 5681's FlightSize otherwise). Sets ssthresh and cwnd = ssthresh. Call once per
    /// recovery episode, not again until `recover` is acknowledged (RFC 6582 §3.2 step 2).
    fn on_congestion_event(&mut self, now: Instant, flight: u32);
    /// Retransmission timeout (RFC 5681 §3.1 eq. 4): ssthresh = max(flight/2, 2*MSS) (CUBIC uses
    /// beta_cubic instead of 1/2, RFC 9438 §4.8), cwnd = 1 MSS (the loss window), `flight` as
    /// for [`CongestionControl::on_congestion_event`]. A timeout with no ACK since the
    /// previous one is the same segment timing out again, so ssthresh is held.
    fn on_timeout(&mut self, now: Instant, flight: u32);
    /// A copy of the controller, taken before a reduction, to go back to if the reduction
    /// proves spurious (RFC 3708, RFC 4015; Linux's `undo_cwnd`).
    fn snapshot(&self) -> Box<dyn CongestionControl>;
    /// Whether the controller models the path from rate samples and sets the window itself
    /// on every ACK (BBR; Linux's `cong_control`): the connection then keeps a delivery rate
    /// estimator, calls [`CongestionControl::on_rate_sample`] on every ACK, and PRR does not
    /// bound its recoveries.
    fn model_based(&self) -> bool {
        false
    }
    /// The connection agreed on ECN, its marks shallow-threshold ones echoed precisely
    /// ([`crate::config::TcpConfig::ecn_low`]): a [`CongestionControl::model_based`]
    /// controller may answer them from its rate samples (BBR v3).
    fn use_ecn(&mut self) {}
    /// An ACK's rate sample, for a [`CongestionControl::model_based`] controller.
    fn on_rate_sample(&mut self, _now: Instant, _rs: &RateSample) {}
    /// A [`CongestionControl::model_based`] controller's reduction proved spurious (RFC 3708,
    /// RFC 4015): `prior` is its [`CongestionControl::snapshot`] from before the episode,
    /// whose window and bounds it takes back, keeping what it learned since. The others are
    /// replaced by their snapshot instead.
    fn on_undo(&mut self, _prior: &dyn CongestionControl) {}
    /// The sender starts again after an idle time, application-limited with nothing in
    /// flight (draft-ietf-ccwg-bbr §4.4.3).
    fn on_restart_from_idle(&mut self, _now: Instant) {}
    /// The rate the controller paces at, bytes a second, if it sets one.
    fn pacing_rate(&self) -> Option<f64> {
        None
    }
    /// The most data the controller sends at once (BBR's send quantum), if it says.
    fn send_quantum(&self) -> Option<u32> {
        None
    }
    /// Rate samples taken now are to be marked application-limited (BBR's ProbeRTT).
    fn app_limited_now(&self) -> bool {
        false
    }
    /// The controller's state, for `TCP_INFO` and traces, if it has several.
    fn phase(&self) -> Option<&'static str> {
        None
    }
    /// The path model of a [`CongestionControl::model_based`] controller (Linux's
    /// `tcp_bbr_info`).
    fn model(&self) -> Option<PathModel> {
        None
    }
}

/// What a model-based controller believes of the path (Linux's `tcp_bbr_info`, with v3's
/// bounds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathModel {
    /// The bottleneck bandwidth estimate, bytes a second (BBR.max_bw).
    pub max_bw: f64,
    /// The round-trip propagation time estimate (BBR.min_rtt), once measured.
    pub min_rtt: Option<Duration>,
    /// The current pacing gain.
    pub pacing_gain: f64,
    /// The current cwnd gain.
    pub cwnd_gain: f64,
    /// The long-term bound on data in flight (BBR.inflight_hi), if loss set one.
    pub inflight_hi: Option<u64>,
    /// The short-term bound on the bandwidth (BBR.bw_lo), if loss set one.
    pub bw_lo: Option<f64>,
    /// The short-term bound on data in flight (BBR.inflight_lo), if loss set one.
    pub inflight_lo: Option<u64>,
}

pub use crate::config::CongestionAlgorithm as Algorithm;

/// A controller of the given kind for a connection starting at `now` with this MSS; `seed`
/// feeds whatever randomness the algorithm has (BBR's probe waits).
pub fn new_controller(
    alg: Algorithm,
    mss: u32,
    now: Instant,
    seed: u64,
) -> Box<dyn CongestionControl> {
    match alg {
        Algorithm::NewReno => Box::new(NewReno::new(mss)),
        Algorithm::Cubic => Box::new(Cubic::new(mss, now)),
        Algorithm::Bbr => Box::new(Bbr::new(mss, now, seed)),
    }
}

/// The initial window for this MSS (RFC 6928 §2, without its 14600-byte cap, as Linux).
fn initial_window(mss: u32) -> u32 {
    mss.saturating_mul(INITIAL_WINDOW_SEGMENTS)
}

/// Slow start with appropriate byte counting (RFC 5681 §3.1, RFC 3465 §2.2, L = 2 MSS): grows
/// `cwnd` by at most L per ACK and not past `ssthresh`; returns the new `cwnd` and the acked bytes
/// left over for congestion avoidance once `ssthresh` is reached.
fn slow_start(cwnd: u32, ssthresh: u32, mss: u32, acked: u32) -> (u32, u32) {
    let increase = acked.min(mss.saturating_mul(ABC_LIMIT_SEGMENTS));
    let room = ssthresh.saturating_sub(cwnd);
    if increase < room {
        (cwnd + increase, 0)
    } else {
        (ssthresh, acked - room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_cubic() {
        let cc = new_controller(Algorithm::default(), 1000, Instant::ZERO, 1);
        assert_eq!(cc.name(), "cubic");
        assert_eq!(cc.cwnd(), 10_000);
        assert_eq!(cc.ssthresh(), u32::MAX);
        let cc = new_controller(Algorithm::NewReno, 1000, Instant::ZERO, 1);
        assert_eq!(cc.name(), "newreno");
        assert_eq!(cc.cwnd(), 10_000);
    }

    #[test]
    fn slow_start_abc_limit_and_ssthresh_cap() {
        assert_eq!(slow_start(10_000, u32::MAX, 1000, 500), (10_500, 0));
        assert_eq!(slow_start(10_000, u32::MAX, 1000, 5000), (12_000, 0));
        assert_eq!(slow_start(10_000, 11_000, 1000, 1500), (11_000, 500));
    }
}
