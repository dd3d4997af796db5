//! BBR, version 3 (draft-ietf-ccwg-bbr; Linux's `tcp_bbr.c` as Google's v3 has it): a model of
//! the path, its bottleneck bandwidth and round-trip propagation time, built from delivery
//! rate samples ([`super::rate`]), sets a pacing rate and a congestion window. Random loss
//! below [`LOSS_THRESH`] per round trip does not shrink the model; more loss bounds it
//! (`inflight_hi`, `bw_lo`, `inflight_lo`), as v3 does.
//!
//! States (draft §4.3): Startup, Drain, ProbeBW (DOWN, CRUISE, REFILL, UP) and ProbeRTT.
//! Windows are in bytes and rates in bytes a second; time is the injected [`Instant`] and
//! the only randomness (the wait between bandwidth probes, §4.3.3.5) comes from a seed, so
//! runs are reproducible.
//!
//! ECN marks count as v3 counts them, only where they are precise and shallow-threshold
//! ([`crate::config::TcpConfig::ecn_low`]) and the path is short (at most
//! [`ECN_MAX_RTT`]): the fraction of data marked, smoothed per round trip (ecn_alpha), cuts
//! inflight_lo outside probes, more than [`ECN_THRESH`] of a sample marked ends a probe, as
//! do two rounds running with at least that much marked Startup, and a cycle with marks but
//! no loss probes again at once (v3's ECN re-probe).

use super::rate::RateSample;
use super::{initial_window, CongestionControl, PathModel};
use crate::time::Instant;
use std::time::Duration;

/// Startup's pacing gain, 4 ln 2 (draft §4.6.1; Linux `bbr_startup_pacing_gain`).
const STARTUP_PACING_GAIN: f64 = 2.77;
/// Startup's cwnd gain (draft §4.6.1, v3).
const STARTUP_CWND_GAIN: f64 = 2.0;
/// Drain's pacing gain (draft §4.3.2, v3: 0.35).
const DRAIN_PACING_GAIN: f64 = 0.35;
/// The cwnd gain of ProbeBW and Drain (draft §4.6.2).
const DEFAULT_CWND_GAIN: f64 = 2.0;
/// ProbeBW_DOWN's pacing gain (draft §4.3.3).
const PROBE_DOWN_PACING_GAIN: f64 = 0.9;
/// ProbeBW_UP's pacing gain (draft §4.3.3).
const PROBE_UP_PACING_GAIN: f64 = 1.25;
/// ProbeBW_UP's cwnd gain (draft §4.3.3, v3).
const PROBE_UP_CWND_GAIN: f64 = 2.25;
/// Paced a little below the estimated bandwidth, so that queues drain (draft §4.6.2,
/// BBR.PacingMarginPercent).
const PACING_MARGIN: f64 = 0.01;
/// More than this fraction of the data in flight lost in a round trip is congestion
/// (draft §4.6.4.2, BBR.LossThresh).
pub const LOSS_THRESH: f64 = 0.02;
/// The multiplicative decrease of the lower bounds on loss (draft §4.6.4.2, BBR.Beta).
const BETA: f64 = 0.7;
/// The share of inflight_hi left free in CRUISE for other flows (draft §4.3.3.1).
const HEADROOM: f64 = 0.15;
/// The smallest window, in segments (draft §4.6.4.1, BBR.MinPipeCwnd).
const MIN_PIPE_CWND_SEGMENTS: u64 = 4;
/// The min_rtt filter's window (draft §4.5.3.2, MinRTTFilterLen).
const MIN_RTT_FILTER_LEN: Duration = Duration::from_secs(10);
/// ProbeRTT's cwnd: half the BDP (draft §4.3.4, v3).
const PROBE_RTT_CWND_GAIN: f64 = 0.5;
/// Time spent at ProbeRTT's window (draft §4.3.4, ProbeRTTDuration).
const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// ProbeRTT at least this often unless the RTT fell meanwhile (draft §4.3.4,
/// ProbeRTTInterval).
const PROBE_RTT_INTERVAL: Duration = Duration::from_secs(5);
/// Startup ends once the bandwidth grew less than this in [`FULL_BW_COUNT`] rounds
/// (draft §4.3.1.2).
const FULL_BW_THRESH: f64 = 1.25;
/// Rounds without growth that end Startup (draft §4.3.1.2).
const FULL_BW_COUNT: u32 = 3;
/// Discontiguous loss events in a round that, with the loss rate over [`LOSS_THRESH`], end
/// Startup (draft §4.3.1.3, v3's `bbr_full_loss_cnt`).
const STARTUP_FULL_LOSS_COUNT: u32 = 6;
/// The gain of the ECN mark fraction's moving average, ecn_alpha (Linux v3
/// `bbr_ecn_alpha_gain`: 1/16).
const ECN_ALPHA_GAIN: f64 = 1.0 / 16.0;
/// ecn_alpha's first value: a flow that starts on a congested path answers at once (Linux v3
/// `bbr_ecn_alpha_init`).
const ECN_ALPHA_INIT: f64 = 1.0;
/// A round with marks cuts inflight_lo by this times ecn_alpha (Linux v3 `bbr_ecn_factor`).
const ECN_FACTOR: f64 = 1.0 / 3.0;
/// More than this fraction of a sample's data marked: inflight is too high (Linux v3
/// `bbr_ecn_thresh`).
pub const ECN_THRESH: f64 = 0.5;
/// Rounds running with [`ECN_THRESH`] marked that end Startup (Linux v3 `bbr_full_ecn_cnt`).
const STARTUP_FULL_ECN_ROUNDS: u32 = 2;
/// A cycle with marks and no loss probes again at once, its probe starting at this share of
/// inflight_hi (Linux v3 `bbr_ecn_reprobe_gain`).
const ECN_REPROBE_GAIN: f64 = 0.5;
/// Marks count only on paths whose min_rtt is at most this (Linux v3 `bbr_ecn_max_rtt_us`):
/// shallow-threshold marking is a data-centre setting.
pub const ECN_MAX_RTT: Duration = Duration::from_millis(5);

/// The ACK-aggregation filter's window in rounds (Linux `bbr_extra_acked_win_rtts`).
const EXTRA_ACKED_WIN_ROUNDS: u32 = 5;
/// The most ACK aggregation adds to the window: this much time at the bandwidth (Linux
/// `bbr_extra_acked_max_us`).
const MAX_EXTRA_ACKED: Duration = Duration::from_millis(100);
/// Below this pacing rate a send quantum is one segment, above it two (draft §4.6.3: 1.2
/// Mbps).
const LOW_PACING_RATE: f64 = 150_000.0;
/// The send quantum is about this much time at the pacing rate (draft §4.6.3).
const SEND_QUANTUM_TIME: Duration = Duration::from_millis(1);
/// The largest send quantum: a 64 KB super-segment (draft §4.6.3).
const MAX_SEND_QUANTUM: u64 = 64 * 1024;
/// At most this many rounds between Reno-coexistence bandwidth probes (draft §4.3.3.5).
const MAX_RENO_ROUNDS: u64 = 63;
/// The wait between bandwidth probes is this plus up to one more second, at random
/// (draft §4.3.3.5).
const PROBE_WAIT_BASE: Duration = Duration::from_secs(2);

/// BBR's states (draft §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Doubling the sending rate each round trip until the bandwidth stops growing.
    Startup,
    /// Draining the queue Startup built.
    Drain,
    /// Pacing below the bandwidth, to leave the queue empty.
    ProbeBwDown,
    /// Pacing at the bandwidth.
    ProbeBwCruise,
    /// Refilling the pipe for a round before probing.
    ProbeBwRefill,
    /// Probing for more bandwidth.
    ProbeBwUp,
    /// A small window for a moment, to measure the propagation delay.
    ProbeRtt,
}

impl State {
    /// The state's name as the draft writes it.
    pub fn name(self) -> &'static str {
        match self {
            State::Startup => "Startup",
            State::Drain => "Drain",
            State::ProbeBwDown => "ProbeBW_DOWN",
            State::ProbeBwCruise => "ProbeBW_CRUISE",
            State::ProbeBwRefill => "ProbeBW_REFILL",
            State::ProbeBwUp => "ProbeBW_UP",
            State::ProbeRtt => "ProbeRTT",
        }
    }

    fn is_probe_bw(self) -> bool {
        matches!(
            self,
            State::ProbeBwDown | State::ProbeBwCruise | State::ProbeBwRefill | State::ProbeBwUp
        )
    }
}

/// Where the ACKs of a bandwidth probe stand (draft §4.3.3.6, BBR.ack_phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckPhase {
    Init,
    ProbeStarting,
    ProbeFeedback,
    ProbeStopping,
    Refilling,
}

/// One connection's BBR state (draft §4.2 and §4.5, grouped by what it models).
#[derive(Clone, Debug)]
pub struct Bbr {
    mss: u64,
    state: State,
    pacing_gain: f64,
    cwnd_gain: f64,
    cwnd: u64,
    /// The window before a recovery or ProbeRTT, to go back to (BBR.prior_cwnd).
    prior_cwnd: u64,
    /// Bytes a second (BBR.pacing_rate).
    pacing_rate: f64,
    send_quantum: u64,
    /// An RTT sample has set the initial pacing rate (Linux `has_seen_rtt`).
    has_seen_rtt: bool,
    /// C.delivered as of the last ACK.
    delivered: u64,

    // Round counting (draft §4.5.1).
    round_start: bool,
    next_round_delivered: u64,

    // The bandwidth model (draft §4.5.2): max_bw over the last two ProbeBW cycles.
    max_bw: f64,
    bw_hi: [f64; 2],
    bw: f64,
    bw_lo: f64,
    bw_latest: f64,
    inflight_hi: u64,
    inflight_lo: u64,
    inflight_latest: u64,

    // Loss per round trip (draft §4.5.10).
    loss_round_start: bool,
    loss_round_delivered: u64,
    loss_in_round: bool,
    loss_events_in_round: u32,
    lost_in_round: u64,
    delivered_in_round: u64,
    /// The round just ended lost more than [`LOSS_THRESH`] of its data, and more than one
    /// segment (a flight too small to measure a 2% rate cannot tell one random loss from
    /// congestion).
    round_loss_too_high: bool,

    // Startup's end (draft §4.3.1.2).
    full_bw: f64,
    full_bw_count: u32,
    full_bw_now: bool,
    full_bw_reached: bool,

    // The propagation delay (draft §4.5.3).
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    probe_rtt_min_delay: Option<Duration>,
    probe_rtt_min_stamp: Instant,
    probe_rtt_expired: bool,
    probe_rtt_done_stamp: Option<Instant>,
    probe_rtt_round_done: bool,

    // ProbeBW's cycle (draft §4.3.3).
    cycle_stamp: Instant,
    ack_phase: AckPhase,
    bw_probe_wait: Duration,
    rounds_since_bw_probe: u64,
    bw_probe_samples: bool,
    bw_probe_up_rounds: u32,
    bw_probe_up_acks: u64,
    probe_up_cnt: u64,

    // ACK aggregation (draft §4.5.5): a windowed max over two halves.
    extra_acked: [u64; 2],
    extra_acked_idx: usize,
    extra_acked_win_rounds: u32,
    extra_acked_interval_start: Option<Instant>,
    extra_acked_delivered: u64,

    // ECN (Linux v3's `ecn_*` fields).
    /// The connection agreed on ECN with a precise echo of shallow-threshold marks.
    ecn_usable: bool,
    /// ... and its path is short enough for them to count ([`ECN_MAX_RTT`]).
    ecn_eligible: bool,
    /// The fraction of data marked, a moving average per round trip.
    ecn_alpha: f64,
    /// C.delivered and C.delivered_ce at the last ecn_alpha update.
    alpha_last_delivered: u64,
    alpha_last_delivered_ce: u64,
    /// An ACK of the current loss round echoed a mark.
    ecn_in_round: bool,
    /// Rounds running in Startup with at least [`ECN_THRESH`] marked.
    startup_ecn_rounds: u32,
    /// Marks, and losses, since the current ProbeBW cycle began (v3's `ecn_in_cycle`,
    /// `loss_in_cycle`).
    ecn_in_cycle: bool,
    loss_in_cycle: bool,

    // Loss recovery (draft §4.6.4.4).
    packet_conservation: bool,
    in_recovery: bool,

    /// Sending restarted after an idle time, and no ACK has delivered data since (draft
    /// §4.4.3, BBR.idle_restart).
    idle_restart: bool,

    /// xorshift state for the probe wait.
    rng: u64,
}

impl Bbr {
    /// A connection starting at `now` with this MSS, in Startup; `seed` picks its waits
    /// between bandwidth probes.
    pub fn new(mss: u32, now: Instant, seed: u64) -> Bbr {
        let mss = u64::from(mss.max(1));
        let mut b = Bbr {
            mss,
            state: State::Startup,
            pacing_gain: STARTUP_PACING_GAIN,
            cwnd_gain: STARTUP_CWND_GAIN,
            cwnd: u64::from(initial_window(mss as u32)),
            prior_cwnd: 0,
            pacing_rate: 0.0,
            send_quantum: 2 * mss,
            has_seen_rtt: false,
            delivered: 0,
            round_start: false,
            next_round_delivered: 0,
            max_bw: 0.0,
            bw_hi: [0.0; 2],
            bw: 0.0,
            bw_lo: f64::INFINITY,
            bw_latest: 0.0,
            inflight_hi: u64::MAX,
            inflight_lo: u64::MAX,
            inflight_latest: 0,
            loss_round_start: false,
            loss_round_delivered: 0,
            loss_in_round: false,
            loss_events_in_round: 0,
            lost_in_round: 0,
            delivered_in_round: 0,
            round_loss_too_high: false,
            full_bw: 0.0,
            full_bw_count: 0,
            full_bw_now: false,
            full_bw_reached: false,
            min_rtt: None,
            min_rtt_stamp: now,
            probe_rtt_min_delay: None,
            probe_rtt_min_stamp: now,
            probe_rtt_expired: false,
            probe_rtt_done_stamp: None,
            probe_rtt_round_done: false,
            cycle_stamp: now,
            ack_phase: AckPhase::Init,
            bw_probe_wait: PROBE_WAIT_BASE,
            rounds_since_bw_probe: 0,
            bw_probe_samples: false,
            bw_probe_up_rounds: 0,
            bw_probe_up_acks: 0,
            probe_up_cnt: u64::MAX,
            extra_acked: [0; 2],
            extra_acked_idx: 0,
            extra_acked_win_rounds: 0,
            extra_acked_interval_start: None,
            extra_acked_delivered: 0,
            ecn_usable: false,
            ecn_eligible: false,
            ecn_alpha: ECN_ALPHA_INIT,
            alpha_last_delivered: 0,
            alpha_last_delivered_ce: 0,
            ecn_in_round: false,
            startup_ecn_rounds: 0,
            ecn_in_cycle: false,
            loss_in_cycle: false,
            packet_conservation: false,
            in_recovery: false,
            idle_restart: false,
            rng: seed | 1,
        };
        b.init_pacing_rate(None);
        b
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// BBR.max_bw, bytes a second.
    pub fn max_bw(&self) -> f64 {
        self.max_bw
    }

    /// BBR.min_rtt, once measured.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// ecn_alpha: the fraction of data marked, smoothed per round trip (Linux v3).
    pub fn ecn_alpha(&self) -> f64 {
        self.ecn_alpha
    }

    /// BBR.inflight_hi, `None` while unbounded.
    pub fn inflight_hi(&self) -> Option<u64> {
        (self.inflight_hi != u64::MAX).then_some(self.inflight_hi)
    }

    /// BBR.bw_lo, `None` while unbounded.
    pub fn bw_lo(&self) -> Option<f64> {
        self.bw_lo.is_finite().then_some(self.bw_lo)
    }

    fn min_pipe_cwnd(&self) -> u64 {
        MIN_PIPE_CWND_SEGMENTS * self.mss
    }

    fn initial_cwnd(&self) -> u64 {
        u64::from(initial_window(self.mss as u32))
    }

    /// A uniform random number in [0, 1).
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// BBRInitPacingRate (draft §4.6.2): the initial window over the RTT (1 ms until one is
    /// known), at Startup's gain.
    fn init_pacing_rate(&mut self, rtt: Option<Duration>) {
        let rtt = rtt
            .unwrap_or(Duration::from_millis(1))
            .max(Duration::from_micros(1));
        let nominal = self.cwnd as f64 / rtt.as_secs_f64();
        self.pacing_rate = STARTUP_PACING_GAIN * nominal;
    }

    fn enter_startup(&mut self) {
        self.state = State::Startup;
        self.pacing_gain = STARTUP_PACING_GAIN;
        self.cwnd_gain = STARTUP_CWND_GAIN;
    }

    fn enter_drain(&mut self) {
        self.state = State::Drain;
        self.pacing_gain = DRAIN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    // Round counting (draft §4.5.1).

    fn start_round(&mut self) {
        self.next_round_delivered = self.delivered;
    }

    fn update_round(&mut self, rs: &RateSample) {
        self.round_start = false;
        let sampled = rs.delivery_rate.is_some() || rs.delivered > 0;
        if sampled && rs.prior_delivered >= self.next_round_delivered {
            self.start_round();
            self.rounds_since_bw_probe += 1;
            self.round_start = true;
            // Packet conservation lasts one round (Linux `bbr_update_round`).
            self.packet_conservation = false;
        }
    }

    // The bandwidth model (draft §4.5.2, §4.5.4).

    fn update_max_bw(&mut self, rs: &RateSample) {
        self.update_round(rs);
        if let Some(rate) = rs.delivery_rate {
            if rate >= self.max_bw || !rs.is_app_limited {
                self.bw_hi[1] = self.bw_hi[1].max(rate);
                self.max_bw = self.bw_hi[0].max(self.bw_hi[1]);
            }
        }
    }

    /// A new ProbeBW cycle: the filter forgets the older of its two cycles.
    fn advance_max_bw_filter(&mut self) {
        if self.bw_hi[1] == 0.0 {
            return;
        }
        self.bw_hi[0] = self.bw_hi[1];
        self.bw_hi[1] = 0.0;
    }

    fn update_latest_delivery_signals(&mut self, rs: &RateSample) {
        self.loss_round_start = false;
        self.bw_latest = self.bw_latest.max(rs.delivery_rate.unwrap_or(0.0));
        self.inflight_latest = self.inflight_latest.max(rs.delivered);
        if (rs.delivery_rate.is_some() || rs.delivered > 0)
            && rs.prior_delivered >= self.loss_round_delivered
        {
            self.loss_round_delivered = self.delivered;
            self.loss_round_start = true;
        }
    }

    fn advance_latest_delivery_signals(&mut self, rs: &RateSample) {
        if self.loss_round_start {
            self.bw_latest = rs.delivery_rate.unwrap_or(0.0);
            self.inflight_latest = rs.delivered;
        }
    }

    fn update_congestion_signals(&mut self, rs: &RateSample) {
        self.update_max_bw(rs);
        if self.round_start {
            self.update_ecn_alpha(rs);
        }
        self.ecn_in_round |= self.ecn_eligible && rs.is_ece;
        self.delivered_in_round += u64::from(rs.newly_acked);
        if rs.newly_lost > 0 {
            self.lost_in_round += u64::from(rs.newly_lost);
            self.loss_events_in_round = self.loss_events_in_round.saturating_add(1);
        }
        if !self.loss_round_start {
            return;
        }
        // Loss is a congestion signal only at a rate above LossThresh over the round, and
        // more than one segment (v3 reacts to any loss; random loss then erodes the bounds).
        let sent = (self.delivered_in_round + self.lost_in_round) as f64;
        self.round_loss_too_high =
            self.lost_in_round as f64 > (sent * LOSS_THRESH).max(self.mss as f64);
        self.loss_in_round = self.round_loss_too_high;
        self.adapt_lower_bounds_from_congestion();
        self.loss_in_round = false;
        self.ecn_in_round = false;
        self.lost_in_round = 0;
        self.delivered_in_round = 0;
    }

    fn is_probing_bw(&self) -> bool {
        matches!(
            self.state,
            State::Startup | State::ProbeBwRefill | State::ProbeBwUp
        )
    }

    /// Once a round trip (Linux v3 `bbr_update_ecn_alpha`): ecn_alpha follows the fraction
    /// of the data delivered since the last update whose ACKs echoed a mark; marks start to
    /// count once the path proves short.
    fn update_ecn_alpha(&mut self, rs: &RateSample) {
        if self.ecn_usable && self.min_rtt.is_some_and(|m| m <= ECN_MAX_RTT) {
            self.ecn_eligible = true;
        }
        if !self.ecn_eligible {
            return;
        }
        let delivered = rs.total_delivered - self.alpha_last_delivered;
        let marked = rs.total_delivered_ce - self.alpha_last_delivered_ce;
        if delivered == 0 {
            return;
        }
        let ce_ratio = marked as f64 / delivered as f64;
        self.ecn_alpha =
            ((1.0 - ECN_ALPHA_GAIN) * self.ecn_alpha + ECN_ALPHA_GAIN * ce_ratio).min(1.0);
        self.alpha_last_delivered = rs.total_delivered;
        self.alpha_last_delivered_ce = rs.total_delivered_ce;
        // Startup ends after rounds running with most data marked (Linux v3
        // `bbr_check_ecn_too_high_in_startup`): the queue is building.
        if !self.full_bw_reached {
            if ce_ratio >= ECN_THRESH {
                self.startup_ecn_rounds += 1;
            } else {
                self.startup_ecn_rounds = 0;
            }
            if self.startup_ecn_rounds >= STARTUP_FULL_ECN_ROUNDS {
                self.full_bw_reached = true;
                self.inflight_hi = self.bdp_multiple(1.0).max(self.inflight_latest);
            }
        }
    }

    /// Loss outside a bandwidth probe lowers the short-term bounds (draft §4.5.10.3); so do
    /// marks, inflight_lo by ecn_alpha / 3 (Linux v3 `bbr_adapt_lower_bounds`).
    fn adapt_lower_bounds_from_congestion(&mut self) {
        if self.is_probing_bw() {
            return;
        }
        let mut ecn_inflight_lo = u64::MAX;
        if self.ecn_in_round {
            if self.inflight_lo == u64::MAX {
                self.inflight_lo = self.cwnd;
            }
            let cut = 1.0 - self.ecn_alpha * ECN_FACTOR;
            ecn_inflight_lo = (self.inflight_lo as f64 * cut) as u64;
        }
        if self.loss_in_round {
            if self.bw_lo.is_infinite() {
                self.bw_lo = self.max_bw;
            }
            if self.inflight_lo == u64::MAX {
                self.inflight_lo = self.cwnd;
            }
            self.bw_lo = self.bw_latest.max(BETA * self.bw_lo);
            self.inflight_lo = self
                .inflight_latest
                .max((BETA * self.inflight_lo as f64) as u64);
        }
        self.inflight_lo = self.inflight_lo.min(ecn_inflight_lo);
    }

    fn reset_lower_bounds(&mut self) {
        self.bw_lo = f64::INFINITY;
        self.inflight_lo = u64::MAX;
    }

    fn reset_congestion_signals(&mut self) {
        self.loss_in_round = false;
        self.ecn_in_round = false;
        self.loss_in_cycle = false;
        self.ecn_in_cycle = false;
        self.bw_latest = 0.0;
        self.inflight_latest = 0;
    }

    fn bound_bw_for_model(&mut self) {
        self.bw = self.max_bw.min(self.bw_lo);
    }

    // ACK aggregation (draft §4.5.5).

    fn update_ack_aggregation(&mut self, now: Instant, rs: &RateSample) {
        if self.round_start {
            self.extra_acked_win_rounds += 1;
            if self.extra_acked_win_rounds >= EXTRA_ACKED_WIN_ROUNDS {
                self.extra_acked_win_rounds = 0;
                self.extra_acked_idx ^= 1;
                self.extra_acked[self.extra_acked_idx] = 0;
            }
        }
        let start = *self.extra_acked_interval_start.get_or_insert(now);
        let mut expected = (self.bw * (now - start).as_secs_f64()) as u64;
        if self.extra_acked_delivered <= expected {
            self.extra_acked_delivered = 0;
            self.extra_acked_interval_start = Some(now);
            expected = 0;
        }
        self.extra_acked_delivered += u64::from(rs.newly_acked);
        let extra = self
            .extra_acked_delivered
            .saturating_sub(expected)
            .min(self.cwnd);
        let slot = &mut self.extra_acked[self.extra_acked_idx];
        *slot = (*slot).max(extra);
    }

    /// The window ACK aggregation asks for, once the bandwidth is known (Linux
    /// `bbr_ack_aggregation_cwnd`).
    fn extra_acked(&self) -> u64 {
        if !self.full_bw_reached {
            return 0;
        }
        let cap = (self.bw * MAX_EXTRA_ACKED.as_secs_f64()) as u64;
        self.extra_acked[0].max(self.extra_acked[1]).min(cap)
    }

    // Startup and Drain (draft §4.3.1, §4.3.2).

    fn reset_full_bw(&mut self) {
        self.full_bw = 0.0;
        self.full_bw_count = 0;
        self.full_bw_now = false;
    }

    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        let Some(rate) = rs.delivery_rate else {
            return;
        };
        if self.full_bw_now || rs.is_app_limited {
            return;
        }
        if rate >= self.full_bw * FULL_BW_THRESH {
            self.reset_full_bw();
            self.full_bw = rate;
            return;
        }
        if !self.round_start {
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_now = self.full_bw_count >= FULL_BW_COUNT;
        if self.full_bw_now {
            self.full_bw_reached = true;
        }
    }

    /// Startup ends on a round with heavy loss too (draft §4.3.1.3; Linux
    /// `bbr_check_loss_too_high_in_startup`): six loss events, and more than [`LOSS_THRESH`]
    /// of the round's data lost (the draft measures the one sample's flight instead).
    fn check_startup_high_loss(&mut self, rs: &RateSample) {
        if self.full_bw_reached {
            return;
        }
        if self.loss_round_start
            && rs.in_recovery
            && self.loss_events_in_round >= STARTUP_FULL_LOSS_COUNT
            && self.round_loss_too_high
        {
            self.full_bw_reached = true;
            self.inflight_hi = self.bdp_multiple(1.0).max(self.inflight_latest);
        }
    }

    fn check_startup_done(&mut self, rs: &RateSample) {
        self.check_startup_high_loss(rs);
        if self.loss_round_start {
            self.loss_events_in_round = 0;
        }
        if self.state == State::Startup && self.full_bw_reached {
            self.enter_drain();
        }
    }

    fn check_drain_done(&mut self, now: Instant, rs: &RateSample) {
        if self.state == State::Drain && u64::from(rs.in_flight) <= self.inflight(self.bw, 1.0) {
            self.cwnd_gain = DEFAULT_CWND_GAIN;
            self.start_probe_bw_down(now);
        }
    }

    // ProbeBW (draft §4.3.3).

    fn pick_probe_wait(&mut self) {
        self.rounds_since_bw_probe = u64::from(self.random() < 0.5);
        self.bw_probe_wait = PROBE_WAIT_BASE + Duration::from_secs_f64(self.random());
    }

    fn start_probe_bw_down(&mut self, now: Instant) {
        self.reset_congestion_signals();
        self.probe_up_cnt = u64::MAX;
        self.pick_probe_wait();
        self.cycle_stamp = now;
        self.ack_phase = AckPhase::ProbeStopping;
        self.start_round();
        self.state = State::ProbeBwDown;
        self.pacing_gain = PROBE_DOWN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_cruise(&mut self) {
        self.state = State::ProbeBwCruise;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    /// REFILL, the probe after it growing inflight_hi from 2^`up_rounds` segments a round.
    fn start_probe_bw_refill(&mut self, up_rounds: u32) {
        self.reset_lower_bounds();
        self.bw_probe_up_rounds = up_rounds;
        self.bw_probe_up_acks = 0;
        self.ack_phase = AckPhase::Refilling;
        self.start_round();
        self.state = State::ProbeBwRefill;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_up(&mut self, now: Instant, rs: &RateSample) {
        self.ack_phase = AckPhase::ProbeStarting;
        self.start_round();
        self.reset_full_bw();
        self.full_bw = rs.delivery_rate.unwrap_or(0.0);
        self.cycle_stamp = now;
        self.state = State::ProbeBwUp;
        self.pacing_gain = PROBE_UP_PACING_GAIN;
        self.cwnd_gain = PROBE_UP_CWND_GAIN;
        self.raise_inflight_hi_slope();
    }

    fn has_elapsed_in_phase(&self, now: Instant, d: Duration) -> bool {
        now > self.cycle_stamp + d
    }

    /// How much to keep in flight: the BDP, within the window (draft §4.6.4.2,
    /// BBRTargetInflight).
    fn target_inflight(&self) -> u64 {
        self.bdp_multiple(1.0).min(self.cwnd)
    }

    /// A Reno flow sharing the path would have probed by now (draft §4.3.3.5).
    fn is_reno_coexistence_probe_time(&self) -> bool {
        let reno_rounds = self.target_inflight() / self.mss;
        self.rounds_since_bw_probe >= reno_rounds.min(MAX_RENO_ROUNDS)
    }

    fn check_time_to_probe_bw(&mut self, now: Instant) -> bool {
        // Marks without loss this cycle: the marks may stop as soon as cross traffic does,
        // so probe again now, from half of inflight_hi (Linux v3).
        if self.ecn_eligible && self.ecn_in_cycle && !self.loss_in_cycle && !self.in_recovery {
            let segments =
                self.inflight_hi.min(u64::MAX / 2) as f64 * ECN_REPROBE_GAIN / self.mss as f64;
            self.start_probe_bw_refill(segments.max(1.0).log2().min(30.0) as u32);
            return true;
        }
        if self.has_elapsed_in_phase(now, self.bw_probe_wait)
            || self.is_reno_coexistence_probe_time()
        {
            self.start_probe_bw_refill(0);
            return true;
        }
        false
    }

    fn check_time_to_cruise(&self, rs: &RateSample) -> bool {
        let in_flight = u64::from(rs.in_flight);
        in_flight <= self.inflight_with_headroom() && in_flight <= self.inflight(self.max_bw, 1.0)
    }

    fn is_time_to_go_down(&mut self, rs: &RateSample) -> bool {
        if rs.cwnd_limited && self.cwnd >= self.inflight_hi {
            // The bandwidth is limited by inflight_hi, not the path: keep probing.
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate.unwrap_or(0.0);
            false
        } else {
            self.full_bw_now
        }
    }

    fn raise_inflight_hi_slope(&mut self) {
        let growth_this_round = self.mss << self.bw_probe_up_rounds;
        self.bw_probe_up_rounds = (self.bw_probe_up_rounds + 1).min(30);
        self.probe_up_cnt = (self.cwnd / growth_this_round).max(1);
    }

    fn probe_inflight_hi_upward(&mut self, rs: &RateSample) {
        if !rs.cwnd_limited || self.cwnd < self.inflight_hi {
            return;
        }
        self.bw_probe_up_acks += u64::from(rs.newly_acked);
        let step = self.probe_up_cnt.saturating_mul(self.mss);
        if self.bw_probe_up_acks >= step {
            let delta = self.bw_probe_up_acks / step;
            self.bw_probe_up_acks -= delta * step;
            self.inflight_hi = self.inflight_hi.saturating_add(delta * self.mss);
        }
        if self.round_start {
            self.raise_inflight_hi_slope();
        }
    }

    fn handle_inflight_too_high(&mut self, now: Instant, rs: &RateSample) {
        self.bw_probe_samples = false;
        if !rs.is_app_limited {
            let floor = (self.target_inflight() as f64 * BETA) as u64;
            self.inflight_hi = u64::from(rs.tx_in_flight).max(floor);
        }
        if self.state == State::ProbeBwUp {
            self.start_probe_bw_down(now);
        }
    }

    /// inflight_hi follows what a probe found (draft §4.3.3.6, BBRAdaptUpperBounds).
    fn adapt_upper_bounds(&mut self, now: Instant, rs: &RateSample) {
        if self.ack_phase == AckPhase::ProbeStarting && self.round_start {
            self.ack_phase = AckPhase::ProbeFeedback;
        }
        if self.ack_phase == AckPhase::ProbeStopping && self.round_start {
            // The probe's samples are in: the filter forgets the cycle before it.
            self.bw_probe_samples = false;
            self.ack_phase = AckPhase::Init;
            if self.state.is_probe_bw() && !rs.is_app_limited {
                self.advance_max_bw_filter();
            }
        }
        // IsInflightTooHigh (draft §4.5.10.2) on the round's loss so far against the flight
        // of this sample, or on the whole round just ended. The draft takes each ACK's
        // sample, the loss over that one sample's flight: among the many samples of a
        // round, random loss at half the threshold puts one over it often enough to end
        // nearly every probe. The round's count only grows, so it crosses the threshold
        // once, as soon as the round's loss does.
        let so_far = self.lost_in_round as f64
            > (f64::from(rs.tx_in_flight) * LOSS_THRESH).max(self.mss as f64);
        let ended = self.loss_round_start && self.round_loss_too_high;
        // Or most of the sample's data marked (Linux v3 `bbr_is_inflight_too_high`).
        let marked = self.ecn_eligible
            && rs.delivered_ce > 0
            && rs.delivered_ce as f64 > rs.delivered as f64 * ECN_THRESH;
        if so_far || ended || marked {
            if self.bw_probe_samples {
                self.handle_inflight_too_high(now, rs);
            }
            return;
        }
        if self.inflight_hi == u64::MAX {
            return;
        }
        self.inflight_hi = self.inflight_hi.max(u64::from(rs.tx_in_flight));
        if self.state == State::ProbeBwUp {
            self.probe_inflight_hi_upward(rs);
        }
    }

    fn update_probe_bw_cycle_phase(&mut self, now: Instant, rs: &RateSample) {
        if !self.full_bw_reached {
            return;
        }
        self.adapt_upper_bounds(now, rs);
        match self.state {
            State::ProbeBwDown => {
                if self.check_time_to_probe_bw(now) {
                    return;
                }
                if self.check_time_to_cruise(rs) {
                    self.start_probe_bw_cruise();
                }
            }
            State::ProbeBwCruise => {
                self.check_time_to_probe_bw(now);
            }
            // One round of REFILL, then UP.
            State::ProbeBwRefill if self.round_start => {
                self.bw_probe_samples = true;
                self.start_probe_bw_up(now, rs);
            }
            State::ProbeBwUp => {
                // Not a guard: the test resets the full-bandwidth estimate as it decides.
                let down = self.is_time_to_go_down(rs);
                if down {
                    self.start_probe_bw_down(now);
                }
            }
            _ => {}
        }
    }

    // ProbeRTT (draft §4.3.4, §4.5.3).

    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        self.probe_rtt_expired = now > self.probe_rtt_min_stamp + PROBE_RTT_INTERVAL;
        if let Some(rtt) = rs.rtt {
            if self.probe_rtt_min_delay.is_none_or(|m| rtt < m) || self.probe_rtt_expired {
                self.probe_rtt_min_delay = Some(rtt);
                self.probe_rtt_min_stamp = now;
            }
        }
        let min_rtt_expired = now > self.min_rtt_stamp + MIN_RTT_FILTER_LEN;
        if let Some(probe) = self.probe_rtt_min_delay {
            if self.min_rtt.is_none_or(|m| probe < m) || min_rtt_expired {
                self.min_rtt = Some(probe);
                self.min_rtt_stamp = self.probe_rtt_min_stamp;
            }
        }
    }

    fn probe_rtt_cwnd(&self) -> u64 {
        self.bdp_multiple(PROBE_RTT_CWND_GAIN)
            .max(self.min_pipe_cwnd())
    }

    fn check_probe_rtt(&mut self, now: Instant, rs: &RateSample) {
        // A sender back from idle has drained the queue already: no ProbeRTT for it.
        if self.state != State::ProbeRtt && self.probe_rtt_expired && !self.idle_restart {
            self.state = State::ProbeRtt;
            self.pacing_gain = 1.0;
            self.cwnd_gain = PROBE_RTT_CWND_GAIN;
            self.save_cwnd();
            self.probe_rtt_done_stamp = None;
            self.ack_phase = AckPhase::ProbeStopping;
            self.start_round();
        }
        if self.state == State::ProbeRtt {
            self.handle_probe_rtt(now, rs);
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    fn handle_probe_rtt(&mut self, now: Instant, rs: &RateSample) {
        if self.probe_rtt_done_stamp.is_none() && u64::from(rs.in_flight) <= self.probe_rtt_cwnd() {
            self.probe_rtt_done_stamp = Some(now + PROBE_RTT_DURATION);
            self.probe_rtt_round_done = false;
            self.start_round();
        } else if let Some(done) = self.probe_rtt_done_stamp {
            if self.round_start {
                self.probe_rtt_round_done = true;
            }
            if self.probe_rtt_round_done && now > done {
                self.probe_rtt_min_stamp = now;
                self.restore_cwnd();
                self.reset_lower_bounds();
                if self.full_bw_reached {
                    self.start_probe_bw_down(now);
                    self.start_probe_bw_cruise();
                } else {
                    self.enter_startup();
                }
            }
        }
    }

    // The control parameters (draft §4.6).

    /// `gain` times the BDP at `bw` (the initial window until an RTT is known).
    fn bdp(&self, bw: f64, gain: f64) -> u64 {
        match self.min_rtt {
            None => self.initial_cwnd(),
            Some(rtt) => (gain * bw * rtt.as_secs_f64()) as u64,
        }
    }

    /// BBRBDPMultiple (draft §4.6.4.2): `gain` times the model's BDP.
    fn bdp_multiple(&self, gain: f64) -> u64 {
        self.bdp(self.bw, gain)
    }

    fn quantization_budget(&self, inflight: u64) -> u64 {
        let mut inflight = inflight
            .max(3 * self.send_quantum)
            .max(self.min_pipe_cwnd());
        if self.state == State::ProbeBwUp {
            inflight += 2 * self.mss;
        }
        inflight
    }

    /// BBRInflight (draft §4.6.4.2): the window for `bw` at `gain`, with its quantization
    /// budget.
    fn inflight(&self, bw: f64, gain: f64) -> u64 {
        self.quantization_budget(self.bdp(bw, gain))
    }

    fn inflight_with_headroom(&self) -> u64 {
        if self.inflight_hi == u64::MAX {
            return u64::MAX;
        }
        let headroom = ((HEADROOM * self.inflight_hi as f64) as u64).max(self.mss);
        self.inflight_hi
            .saturating_sub(headroom)
            .max(self.min_pipe_cwnd())
    }

    fn set_pacing_rate(&mut self) {
        let rate = self.pacing_gain * self.bw * (1.0 - PACING_MARGIN);
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    fn set_send_quantum(&mut self) {
        let floor = if self.pacing_rate < LOW_PACING_RATE {
            self.mss
        } else {
            2 * self.mss
        };
        let quantum = (self.pacing_rate * SEND_QUANTUM_TIME.as_secs_f64()) as u64;
        self.send_quantum = quantum.min(MAX_SEND_QUANTUM).max(floor);
    }

    fn save_cwnd(&mut self) {
        self.prior_cwnd = if !self.in_recovery && self.state != State::ProbeRtt {
            self.cwnd
        } else {
            self.prior_cwnd.max(self.cwnd)
        };
    }

    fn restore_cwnd(&mut self) {
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }

    fn set_cwnd(&mut self, rs: &RateSample) {
        let max_inflight =
            self.quantization_budget(self.bdp_multiple(self.cwnd_gain) + self.extra_acked());
        // BBRModulateCwndForRecovery (draft §4.6.4.4).
        if rs.newly_lost > 0 {
            self.cwnd = self
                .cwnd
                .saturating_sub(u64::from(rs.newly_lost))
                .max(self.mss);
        }
        if self.packet_conservation {
            self.cwnd = self
                .cwnd
                .max(u64::from(rs.in_flight) + u64::from(rs.newly_acked));
        } else {
            let acked = u64::from(rs.newly_acked);
            if self.full_bw_reached {
                self.cwnd = (self.cwnd + acked).min(max_inflight);
            } else if self.cwnd < max_inflight || self.delivered < self.initial_cwnd() {
                self.cwnd += acked;
            }
            self.cwnd = self.cwnd.max(self.min_pipe_cwnd());
        }
        if self.state == State::ProbeRtt {
            self.cwnd = self.cwnd.min(self.probe_rtt_cwnd());
        }
        // BBRBoundCwndForModel (draft §4.6.4.6).
        let mut cap = u64::MAX;
        if self.state.is_probe_bw() && self.state != State::ProbeBwCruise {
            cap = self.inflight_hi;
        } else if matches!(self.state, State::ProbeRtt | State::ProbeBwCruise) {
            cap = self.inflight_with_headroom();
        }
        cap = cap.min(self.inflight_lo).max(self.min_pipe_cwnd());
        self.cwnd = self.cwnd.min(cap);
    }

    /// Recovery's start and end (draft §4.6.4.4; Linux `bbr_set_cwnd_to_recover_or_restore`):
    /// the first round of a fast recovery sends what is delivered (packet conservation), and
    /// the end restores the window from before.
    fn note_recovery(&mut self, rs: &RateSample) {
        if rs.in_recovery && !self.in_recovery {
            self.save_cwnd();
            self.cwnd = u64::from(rs.in_flight) + u64::from(rs.newly_acked.max(self.mss as u32));
            self.packet_conservation = true;
            self.start_round();
        } else if !rs.in_recovery && self.in_recovery {
            self.restore_cwnd();
            self.packet_conservation = false;
        }
        self.in_recovery = rs.in_recovery;
    }
}

impl CongestionControl for Bbr {
    fn name(&self) -> &'static str {
        "bbr"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd.min(u64::from(u32::MAX)) as u32
    }

    /// BBR has no slow start threshold (Linux reports it unset).
    fn ssthresh(&self) -> u32 {
        u32::MAX
    }

    fn set_mss(&mut self, mss: u32) {
        self.mss = u64::from(mss.max(1));
        self.cwnd = self.initial_cwnd();
        self.send_quantum = 2 * self.mss;
    }

    /// BBR takes everything from the rate sample ([`CongestionControl::on_rate_sample`]).
    fn on_ack(&mut self, _now: Instant, _acked: u32, _rtt: Option<Duration>) {}

    /// Loss is handled per rate sample; the recovery's start shows there.
    fn on_congestion_event(&mut self, _now: Instant, _flight: u32) {}

    /// A timeout (Linux's `TCP_CA_Loss` with BBR): one segment, regrowing by what each ACK
    /// delivers; the window from before comes back once the resent data is acknowledged. A
    /// timeout ends a round and forgets Startup's progress.
    fn on_timeout(&mut self, _now: Instant, _flight: u32) {
        self.save_cwnd();
        self.in_recovery = true;
        self.packet_conservation = false;
        self.cwnd = self.mss;
        self.reset_full_bw();
        self.start_round();
    }

    fn snapshot(&self) -> Box<dyn CongestionControl> {
        Box::new(self.clone())
    }

    /// The window and the bounds from before the spurious reduction, whichever is larger,
    /// the rest of the model kept; Startup's progress starts over (Linux v3's
    /// `bbr_undo_cwnd`).
    fn on_undo(&mut self, prior: &dyn CongestionControl) {
        self.reset_full_bw();
        self.loss_in_round = false;
        self.cwnd = self.cwnd.max(u64::from(prior.cwnd()));
        if let Some(before) = prior.model() {
            let unbounded = |v: Option<u64>| v.unwrap_or(u64::MAX);
            self.inflight_hi = self.inflight_hi.max(unbounded(before.inflight_hi));
            self.inflight_lo = self.inflight_lo.max(unbounded(before.inflight_lo));
            self.bw_lo = self.bw_lo.max(before.bw_lo.unwrap_or(f64::INFINITY));
        }
    }

    /// BBRHandleRestartFromIdle (draft §4.4.3): pace at the bandwidth (no higher gain than
    /// it) in ProbeBW, and measure ACK aggregation afresh.
    fn on_restart_from_idle(&mut self, now: Instant) {
        self.idle_restart = true;
        self.extra_acked_interval_start = Some(now);
        if self.state.is_probe_bw() && self.bw > 0.0 {
            self.pacing_rate = self.bw * (1.0 - PACING_MARGIN);
        }
    }

    fn model_based(&self) -> bool {
        true
    }

    fn use_ecn(&mut self) {
        self.ecn_usable = true;
    }

    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample) {
        self.delivered = rs.total_delivered;
        if !self.has_seen_rtt {
            if let Some(rtt) = rs.rtt {
                self.has_seen_rtt = true;
                self.init_pacing_rate(Some(rtt));
            }
        }
        self.note_recovery(rs);
        // BBRUpdateModelAndState (draft §4.2).
        self.update_latest_delivery_signals(rs);
        self.update_congestion_signals(rs);
        self.update_ack_aggregation(now, rs);
        self.check_full_bw_reached(rs);
        self.check_startup_done(rs);
        self.check_drain_done(now, rs);
        self.update_probe_bw_cycle_phase(now, rs);
        self.update_min_rtt(now, rs);
        self.check_probe_rtt(now, rs);
        self.advance_latest_delivery_signals(rs);
        self.loss_in_cycle |= rs.newly_lost > 0;
        self.ecn_in_cycle |= rs.delivered_ce > 0;
        self.bound_bw_for_model();
        // BBRUpdateControlParameters.
        self.set_pacing_rate();
        self.set_send_quantum();
        self.set_cwnd(rs);
    }

    fn pacing_rate(&self) -> Option<f64> {
        Some(self.pacing_rate)
    }

    fn send_quantum(&self) -> Option<u32> {
        Some(self.send_quantum.min(u64::from(u32::MAX)) as u32)
    }

    /// ProbeRTT's low-rate samples must not lower the model (draft §4.3.4).
    fn app_limited_now(&self) -> bool {
        self.state == State::ProbeRtt
    }

    fn phase(&self) -> Option<&'static str> {
        Some(self.state.name())
    }

    fn model(&self) -> Option<PathModel> {
        Some(PathModel {
            max_bw: self.max_bw,
            min_rtt: self.min_rtt,
            pacing_gain: self.pacing_gain,
            cwnd_gain: self.cwnd_gain,
            inflight_hi: self.inflight_hi(),
            bw_lo: self.bw_lo(),
            inflight_lo: (self.inflight_lo != u64::MAX).then_some(self.inflight_lo),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;
    /// The path of every test: 10 MB/s, 10 ms, a BDP of 100 000 bytes.
    const BW: f64 = 10_000_000.0;
    const RTT: Duration = Duration::from_millis(10);
    const BDP: u64 = 100_000;
    /// A round trip short enough for ECN marks to count ([`ECN_MAX_RTT`]).
    const SHORT_RTT: Duration = Duration::from_millis(1);

    /// Drives a controller one round trip per ACK, each ACK delivering a round's worth.
    struct Driver {
        bbr: Bbr,
        now: Instant,
        delivered: u64,
        delivered_ce: u64,
        /// The round trip of every sample.
        rtt: Duration,
    }

    impl Driver {
        fn new() -> Driver {
            let now = Instant::ZERO + Duration::from_secs(1);
            let mut bbr = Bbr::new(MSS, now, 7);
            bbr.set_mss(MSS);
            Driver {
                bbr,
                now,
                delivered: 0,
                delivered_ce: 0,
                rtt: RTT,
            }
        }

        /// A 1 ms path, short enough for ECN marks to count, on a connection that agreed on
        /// precise ECN.
        fn short_with_ecn() -> Driver {
            let mut d = Driver::new();
            d.rtt = SHORT_RTT;
            d.bbr.use_ecn();
            d
        }

        /// One round trip that delivered at `rate` with `in_flight` after the ACK, `lost`
        /// of it lost; `app_limited` marks the sample.
        fn round_with(&mut self, rate: f64, in_flight: u32, lost: u32, app_limited: bool) {
            self.round_sample(rate, in_flight, lost, app_limited, 0.0);
        }

        /// One round trip as [`Driver::round_with`], `marked` of its data acknowledged by
        /// ACKs echoing a congestion mark.
        fn round_sample(
            &mut self,
            rate: f64,
            in_flight: u32,
            lost: u32,
            app_limited: bool,
            marked: f64,
        ) {
            self.now += self.rtt;
            let acked = (rate * self.rtt.as_secs_f64()) as u64;
            let prior = self.delivered;
            self.delivered += acked;
            let delivered_ce = (acked as f64 * marked) as u64;
            self.delivered_ce += delivered_ce;
            let rs = RateSample {
                delivered_ce,
                is_ece: delivered_ce > 0,
                total_delivered_ce: self.delivered_ce,
                delivery_rate: Some(rate),
                is_app_limited: app_limited,
                interval: self.rtt,
                delivered: acked,
                prior_delivered: prior,
                tx_in_flight: in_flight.max(1),
                lost: u64::from(lost),
                newly_acked: acked as u32,
                newly_lost: lost,
                rtt: Some(self.rtt),
                in_flight,
                total_delivered: self.delivered,
                in_recovery: false,
                cwnd_limited: true,
            };
            self.bbr.on_rate_sample(self.now, &rs);
        }

        fn round(&mut self, rate: f64, in_flight: u32) {
            self.round_with(rate, in_flight, 0, false);
        }

        /// Startup over the test path until BBR leaves it, then drained.
        fn in_probe_bw() -> Driver {
            Driver::new().into_probe_bw()
        }

        /// This driver's Startup until BBR leaves it, then drained.
        fn into_probe_bw(self) -> Driver {
            let mut d = self;
            let mut rate: f64 = 1_000_000.0;
            while d.bbr.state() == State::Startup {
                d.round(rate.min(BW), d.bbr.cwnd());
                rate *= 2.0;
            }
            let bdp = (BW * d.rtt.as_secs_f64()) as u32;
            d.round(BW, bdp);
            d
        }

        /// A round trip at the path's rate and flight, `marked` of it echoed as marked.
        fn marked_round(&mut self, marked: f64) {
            let bdp = (BW * self.rtt.as_secs_f64()) as u32;
            self.round_sample(BW, bdp, 0, false, marked);
        }
    }

    #[test]
    fn marks_count_only_when_precise_and_on_a_short_path() {
        let mut long = Driver::new();
        long.bbr.use_ecn();
        let mut imprecise = Driver::new();
        imprecise.rtt = SHORT_RTT;
        for mut d in [long.into_probe_bw(), imprecise.into_probe_bw()] {
            for _ in 0..20 {
                d.marked_round(0.3);
            }
            assert_eq!(d.bbr.ecn_alpha(), ECN_ALPHA_INIT, "never updated");
            assert!(d.bbr.model().unwrap().inflight_lo.is_none());
        }
    }

    #[test]
    fn marks_outside_a_probe_cut_inflight_lo_by_a_third_of_their_smoothed_fraction() {
        let mut d = Driver::short_with_ecn().into_probe_bw();
        while d.bbr.state() != State::ProbeBwCruise {
            d.marked_round(0.0);
        }
        let alpha = d.bbr.ecn_alpha();
        assert!(alpha < 1.0, "unmarked rounds lowered it from 1: {alpha}");
        let cwnd = u64::from(d.bbr.cwnd());
        d.marked_round(0.2);
        let lo = d.bbr.model().unwrap().inflight_lo.expect("inflight_lo set");
        let alpha = d.bbr.ecn_alpha();
        let want = (cwnd as f64 * (1.0 - alpha * ECN_FACTOR)) as u64;
        assert!(lo.abs_diff(want) <= MSS as u64, "{lo} against {want}");
        assert!(u64::from(d.bbr.cwnd()) <= lo.max(4 * MSS as u64));
        // ecn_alpha follows the fraction marked: 20% a round, it climbs to it.
        for _ in 0..100 {
            d.marked_round(0.2);
        }
        let alpha = d.bbr.ecn_alpha();
        assert!((0.15..=0.25).contains(&alpha), "{alpha}");
    }

    #[test]
    fn startup_ends_after_two_rounds_mostly_marked() {
        let mut d = Driver::short_with_ecn();
        let mut rate: f64 = 100_000.0;
        // Growing, unmarked: Startup goes on.
        for _ in 0..4 {
            d.round_sample(rate, d.bbr.cwnd(), 0, false, 0.0);
            rate *= 2.0;
        }
        assert_eq!(d.bbr.state(), State::Startup);
        // Still growing, but most of it marked: the queue builds, Startup ends.
        for _ in 0..2 {
            d.round_sample(rate, d.bbr.cwnd(), 0, false, 0.6);
            rate *= 2.0;
        }
        assert_ne!(d.bbr.state(), State::Startup);
        assert!(d.bbr.inflight_hi().is_some());
    }

    #[test]
    fn a_cycle_with_marks_and_no_loss_probes_again_at_once() {
        let mut d = Driver::short_with_ecn().into_probe_bw();
        while d.bbr.state() != State::ProbeBwCruise {
            d.marked_round(0.0);
        }
        d.marked_round(0.0);
        assert_eq!(
            d.bbr.state(),
            State::ProbeBwCruise,
            "cruising: no probe due yet"
        );
        d.marked_round(0.1);
        d.marked_round(0.0);
        assert_eq!(
            d.bbr.state(),
            State::ProbeBwRefill,
            "marks, no loss: probe again"
        );
    }

    #[test]
    fn a_probe_with_most_of_its_data_marked_ends_and_bounds_inflight() {
        let mut d = Driver::short_with_ecn().into_probe_bw();
        let mut rounds = 0;
        while d.bbr.state() != State::ProbeBwUp {
            d.marked_round(0.0);
            rounds += 1;
            assert!(rounds < 10_000, "never probed up");
        }
        assert_eq!(d.bbr.inflight_hi(), None);
        d.marked_round(0.6);
        assert_eq!(d.bbr.state(), State::ProbeBwDown);
        assert!(d.bbr.inflight_hi().is_some());
    }

    #[test]
    fn startup_grows_until_the_bandwidth_stops_growing_then_drains() {
        let mut d = Driver::new();
        assert_eq!(d.bbr.state(), State::Startup);
        assert_eq!(d.bbr.pacing_gain, STARTUP_PACING_GAIN);
        for rate in [1e6, 2e6, 4e6, 8e6] {
            d.round(rate, d.bbr.cwnd());
            assert_eq!(d.bbr.state(), State::Startup, "still growing at {rate}");
        }
        // 10 MB/s three rounds running: less than 25% growth each (draft §4.3.1.2).
        for _ in 0..2 {
            d.round(BW, d.bbr.cwnd());
            assert_eq!(d.bbr.state(), State::Startup);
        }
        d.round(BW, 2 * BDP as u32);
        d.round(BW, 2 * BDP as u32);
        assert_eq!(d.bbr.state(), State::Drain);
        assert_eq!(d.bbr.pacing_gain, DRAIN_PACING_GAIN);
        assert_eq!(d.bbr.max_bw(), BW);
        assert_eq!(d.bbr.min_rtt(), Some(RTT));
        // The queue drains: with no more than a BDP in flight, ProbeBW begins.
        d.round(BW, BDP as u32);
        assert!(d.bbr.state().is_probe_bw(), "{:?}", d.bbr.state());
    }

    #[test]
    fn probe_bw_cruises_then_refills_and_probes_up_after_its_wait() {
        let mut d = Driver::in_probe_bw();
        assert_eq!(d.bbr.state(), State::ProbeBwCruise);
        assert_eq!(d.bbr.pacing_rate().unwrap(), BW * (1.0 - PACING_MARGIN));
        // The next probe comes after 2 to 3 s, or 63 rounds (Reno coexistence) at most:
        // here the BDP is 100 segments, so 63 rounds (630 ms) come first.
        let mut rounds = 0;
        while d.bbr.state() == State::ProbeBwCruise {
            d.round(BW, BDP as u32);
            rounds += 1;
            assert!(rounds <= 64, "no probe after {rounds} rounds");
        }
        assert_eq!(d.bbr.state(), State::ProbeBwRefill);
        d.round(BW, BDP as u32);
        assert_eq!(d.bbr.state(), State::ProbeBwUp);
        assert_eq!(d.bbr.pacing_gain, PROBE_UP_PACING_GAIN);
        assert_eq!(d.bbr.cwnd_gain, PROBE_UP_CWND_GAIN);
        // No more bandwidth to find: after three rounds without growth, DOWN.
        for _ in 0..3 {
            d.round(BW, BDP as u32);
        }
        assert_eq!(d.bbr.state(), State::ProbeBwDown);
        assert_eq!(d.bbr.pacing_gain, PROBE_DOWN_PACING_GAIN);
    }

    #[test]
    fn heavy_loss_while_probing_up_bounds_inflight_and_ends_the_probe() {
        let mut d = Driver::in_probe_bw();
        while d.bbr.state() != State::ProbeBwUp {
            d.round(BW, BDP as u32);
        }
        assert_eq!(d.bbr.inflight_hi(), None);
        // 5% of a 125 000-byte flight lost: over LossThresh (2%).
        d.round_with(BW, 125_000, 6250, false);
        assert_eq!(d.bbr.state(), State::ProbeBwDown);
        let hi = d.bbr.inflight_hi().expect("inflight_hi set");
        assert!((125_000 * 7 / 10..=125_000).contains(&hi), "{hi}");
        assert!(u64::from(d.bbr.cwnd()) <= hi);
    }

    #[test]
    fn random_loss_below_the_threshold_does_not_end_a_probe() {
        let mut d = Driver::in_probe_bw();
        while d.bbr.state() != State::ProbeBwUp {
            d.round(BW, BDP as u32);
        }
        // 1% of each round lost, the bandwidth growing: the probe goes on.
        for rate in [1.1 * BW, 1.3 * BW, 1.6 * BW] {
            d.round_with(rate, 125_000, 1250, false);
            assert_eq!(d.bbr.state(), State::ProbeBwUp, "at {rate}");
        }
        assert_eq!(d.bbr.max_bw(), 1.6 * BW);
    }

    #[test]
    fn random_loss_below_the_threshold_leaves_the_model_alone() {
        let mut d = Driver::in_probe_bw();
        for _ in 0..20 {
            // 1% of each round lost.
            d.round_with(BW, BDP as u32, 1000, false);
        }
        assert_eq!(d.bbr.bw_lo(), None);
        assert_eq!(d.bbr.inflight_hi(), None);
        assert_eq!(d.bbr.max_bw(), BW);
        // 5% a round is congestion: the short-term bounds come down (draft §4.5.10.3).
        d.round_with(BW * 0.8, BDP as u32, 5000, false);
        d.round_with(BW * 0.8, BDP as u32, 5000, false);
        let bw_lo = d.bbr.bw_lo().expect("bw_lo set");
        assert!(bw_lo < BW, "{bw_lo}");
        assert!(d.bbr.model().unwrap().inflight_lo.is_some());
    }

    #[test]
    fn probe_rtt_comes_after_five_seconds_without_a_lower_rtt() {
        let mut d = Driver::in_probe_bw();
        let cwnd_before = d.bbr.cwnd();
        let start = d.now;
        while d.bbr.state() != State::ProbeRtt {
            d.round(BW, BDP as u32);
            assert!(d.now - start <= PROBE_RTT_INTERVAL + 2 * RTT, "no ProbeRTT");
        }
        // Half a BDP (draft §4.3.4), at least four segments.
        assert_eq!(u64::from(d.bbr.cwnd()), BDP / 2);
        // 200 ms at that window and a round trip, then back to ProbeBW, window restored.
        let entered = d.now;
        while d.bbr.state() == State::ProbeRtt {
            d.round_with(BW / 2.0, (BDP / 2) as u32, 0, true);
            assert!(
                d.now - entered <= PROBE_RTT_DURATION + 3 * RTT,
                "ProbeRTT never ends"
            );
        }
        assert!(d.now - entered >= PROBE_RTT_DURATION);
        assert!(d.bbr.state().is_probe_bw(), "{:?}", d.bbr.state());
        // Restored: ProbeBW's two BDPs at least (the ACK-aggregation allowance may differ).
        assert!(u64::from(d.bbr.cwnd()) >= 2 * BDP, "{}", d.bbr.cwnd());
        assert!(cwnd_before >= d.bbr.cwnd());
        assert!(!d.bbr.app_limited_now());
    }

    #[test]
    fn heavy_loss_in_startup_ends_it() {
        let mut d = Driver::new();
        d.round(1e6, 10_000);
        d.round(2e6, 20_000);
        assert_eq!(d.bbr.state(), State::Startup);
        // Six loss events within a round, then the round's end with 10% of its flight lost,
        // in recovery: Startup ends (draft §4.3.1.3), inflight_hi set.
        for i in 0..7u64 {
            d.now += Duration::from_millis(1);
            d.delivered += 1000;
            let rs = RateSample {
                delivery_rate: Some(4e6),
                delivered: 1000,
                // Within the round until the last ACK, which ends it.
                prior_delivered: if i < 6 { 0 } else { d.delivered },
                tx_in_flight: 40_000,
                lost: 4000,
                newly_acked: 1000,
                newly_lost: 1000,
                rtt: Some(RTT),
                in_flight: 40_000,
                total_delivered: d.delivered,
                in_recovery: true,
                cwnd_limited: true,
                ..RateSample::default()
            };
            d.bbr.on_rate_sample(d.now, &rs);
            assert_eq!(d.bbr.state() == State::Startup, i < 6, "ACK {i}");
        }
        assert!(d.bbr.inflight_hi().is_some());
    }

    #[test]
    fn an_undo_takes_back_the_window_and_bounds_from_before() {
        let mut d = Driver::in_probe_bw();
        let before = d.bbr.snapshot();
        // A (spurious) heavy loss: the short-term bounds come down.
        d.round_with(BW * 0.8, BDP as u32, 5000, false);
        d.round_with(BW * 0.8, BDP as u32, 5000, false);
        assert!(d.bbr.bw_lo().is_some());
        d.bbr.on_undo(before.as_ref());
        assert_eq!(d.bbr.bw_lo(), None, "unbounded again");
        assert!(d.bbr.cwnd() >= before.cwnd());
        assert!(d.bbr.state().is_probe_bw(), "the model is kept");
    }

    #[test]
    fn a_sender_back_from_idle_skips_probe_rtt() {
        let mut d = Driver::in_probe_bw();
        // Six seconds without sending: the RTT filter has expired.
        d.now += Duration::from_secs(6);
        d.bbr.on_restart_from_idle(d.now);
        assert_eq!(d.bbr.pacing_rate().unwrap(), BW * (1.0 - PACING_MARGIN));
        d.round(BW, BDP as u32);
        assert_ne!(d.bbr.state(), State::ProbeRtt);
    }

    #[test]
    fn recovery_conserves_packets_then_restores_the_window() {
        let mut d = Driver::in_probe_bw();
        let before = d.bbr.cwnd();
        d.now += RTT;
        let mut rs = RateSample {
            delivery_rate: Some(BW),
            delivered: 10_000,
            prior_delivered: d.delivered,
            tx_in_flight: 90_000,
            newly_acked: 2000,
            newly_lost: 1000,
            rtt: Some(RTT),
            in_flight: 60_000,
            total_delivered: d.delivered + 2000,
            in_recovery: true,
            cwnd_limited: true,
            ..RateSample::default()
        };
        d.bbr.on_rate_sample(d.now, &rs);
        // Packet conservation: what is in flight and what this ACK delivered.
        assert_eq!(d.bbr.cwnd(), 62_000);
        rs.in_recovery = false;
        rs.newly_lost = 0;
        d.bbr.on_rate_sample(d.now, &rs);
        assert!(d.bbr.cwnd() >= before, "{} < {before}", d.bbr.cwnd());
        // A timeout: one segment, regrowing with each ACK.
        d.bbr.on_timeout(d.now, before);
        assert_eq!(d.bbr.cwnd(), MSS);
    }
}
