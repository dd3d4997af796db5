//! Pacing (Linux's internal TCP pacing, `tcp_wstamp_ns` and `tcp_pacing_check`): a paced
//! connection sends a segment no earlier than its release time, and each segment pushes the
//! release time on by its length at the pacing rate. Output that finds the release time in
//! the future stops and arms the connection's pacing timer; the stack's timer machinery
//! resumes it. Nothing sleeps.
//!
//! The rate is the congestion controller's (BBR), or, where pacing is asked for, Linux's rule
//! for the others (`tcp_update_pacing_rate`): twice cwnd/SRTT in slow start, 1.2 times in
//! congestion avoidance. Super-segments are sized to about a millisecond at the rate (Linux's
//! `tcp_tso_autosize`), and where a super-segment holds less than that (above 64 MB/s), a
//! release sends the millisecond's super-segments together, so that pacing costs one wakeup
//! of the stack thread per millisecond at most.

use super::tcb::Tcb;
use crate::time::Instant;
use crate::wire::gso::TSO_MAX_PAYLOAD;
use std::time::Duration;

/// Linux's `sysctl_tcp_pacing_ss_ratio`: the pacing rate in slow start, in percent of
/// cwnd/SRTT.
const SS_RATIO: f64 = 2.0;
/// Linux's `sysctl_tcp_pacing_ca_ratio`: the pacing rate in congestion avoidance.
const CA_RATIO: f64 = 1.2;
/// A super-segment holds about this much time at the pacing rate (`tcp_tso_autosize`).
const TSO_AUTOSIZE_TIME: Duration = Duration::from_millis(1);
/// A super-segment holds at least this many segments (`sysctl_tcp_min_tso_segs`).
const MIN_TSO_SEGS: u32 = 2;
/// Nanoseconds in a second.
const NANOS: f64 = 1e9;
/// A release this near is taken now (see [`Pacing::ready`]).
const EARLY_NS: u64 = 30_000;
/// A release takes what falls due within this time (see [`Pacing::start`]).
const RELEASE_NS: u64 = 1_000_000;

/// A connection's pacing state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pacing {
    /// Pacing was asked for (the stack's [`super::TcpConfig::pacing`], or the socket's).
    pub enabled: bool,
    /// The earliest time the next segment may leave, in nanoseconds since the epoch
    /// (Linux's `tcp_wstamp_ns`): finer than [`Instant`], so that rounding does not add up
    /// segment after segment.
    next_ns: u64,
    /// Output is waiting for the release time.
    held: bool,
    /// The pacing time of the last segment, nanoseconds.
    last_ns: u64,
    /// The output under way is a release: segments that end by then may leave.
    release_end_ns: u64,
}

/// The connection's pacing rate in bytes a second, if it is paced.
pub fn rate(t: &Tcb) -> Option<f64> {
    if let Some(rate) = t.cc.pacing_rate() {
        return Some(rate);
    }
    if !t.pacing.enabled {
        return None;
    }
    let srtt = t.rtx.rtt.srtt()?.max(Duration::from_micros(1));
    let cwnd = f64::from(t.cc.cwnd());
    let ratio = if t.cc.cwnd() < t.cc.ssthresh() / 2 {
        SS_RATIO
    } else {
        CA_RATIO
    };
    Some(ratio * cwnd / srtt.as_secs_f64())
}

fn nanos(now: Instant) -> u64 {
    now.total_micros().saturating_mul(1000)
}

impl Pacing {
    /// Pacing for a connection, asked for or not (a controller with a rate paces anyway).
    pub fn new(enabled: bool) -> Pacing {
        Pacing {
            enabled,
            next_ns: 0,
            held: false,
            last_ns: 0,
            release_end_ns: 0,
        }
    }

    /// Output starts at `now`, paced at `rate`. If the release time has come (see
    /// [`Pacing::ready`]), the device takes super-segments (`tso`) and a millisecond of the
    /// rate no longer fits in one (past 64 MB/s), this output is a release: it takes what
    /// falls due within a millisecond, in several super-segments. Below that rate Linux's
    /// `tcp_tso_autosize` sends the millisecond in one burst; above it a release sends its
    /// pieces together, so that a wakeup of the stack thread (5-10 µs on a VM) is paid once
    /// per millisecond at most, as in quic-go's pacer (`MinPacingDelay`), where Linux
    /// releases each 64 KB super-segment on its own timer. Output that finds the release
    /// time still ahead (an ACK between releases) sends nothing early, so the sender leads
    /// its schedule by a millisecond at most; over a round trip shorter than that, the
    /// window bounds the burst instead. Otherwise segments leave one by one.
    pub fn start(&mut self, now: Instant, tso: bool, rate: f64) {
        let now = nanos(now);
        let split = rate * RELEASE_NS as f64 / NANOS > TSO_MAX_PAYLOAD as f64;
        self.release_end_ns = if tso && split && self.next_ns <= now + self.early_ns() {
            now + RELEASE_NS
        } else {
            0
        };
    }

    /// Whether a segment may leave at `now`: its release time has come, or is nearer than a
    /// sleep and wakeup of the stack thread are worth (30 µs, and at most half the last
    /// segment's time, so that no burst forms), or the output is a release
    /// ([`Pacing::start`]) and the segment, as long as the last, ends within it. The next
    /// release still counts from this one's, so the rate holds.
    pub fn ready(&self, now: Instant) -> bool {
        self.next_ns <= nanos(now) + self.early_ns()
            || self.next_ns.saturating_add(self.last_ns) <= self.release_end_ns
    }

    fn early_ns(&self) -> u64 {
        EARLY_NS.min(self.last_ns / 2)
    }

    /// When the next segment may leave, rounded up to the clock's microseconds.
    pub fn release_at(&self) -> Instant {
        Instant::from_micros(self.next_ns.div_ceil(1000))
    }

    /// Whether output stopped to wait for the release time (its next send may claim
    /// lateness as jitter), or for anything else.
    pub fn set_held(&mut self, held: bool) {
        self.held = held;
    }

    /// `bytes` left at `now` at `rate` bytes a second: the next segment waits for them. A
    /// segment that waited for its release time and left late takes the lateness off the
    /// next wait, up to half its own time (Linux's credit for OS jitter,
    /// `tcp_update_skb_after_send`): a late wakeup does not lower the rate. Lateness for
    /// other reasons (an idle sender, a full window) earns nothing: it would be a burst.
    pub fn on_sent(&mut self, now: Instant, bytes: usize, rate: f64) {
        if rate <= 0.0 {
            return;
        }
        let mut start = self.next_ns.max(nanos(now));
        let mut late = 0;
        if std::mem::take(&mut self.held) {
            // The timer fires on the clock's next microsecond: that delay is not the
            // sender's, and the next release is counted from the exact one.
            let release = self.next_ns.div_ceil(1000) * 1000;
            late = start.saturating_sub(release);
            start -= start.min(release) - self.next_ns;
        }
        let len_ns = (bytes as f64 * NANOS / rate).round() as u64;
        self.last_ns = len_ns;
        self.next_ns = start.saturating_add(len_ns - late.min(len_ns / 2));
    }
}

/// The largest super-segment for this rate: about a millisecond of it, at least
/// two pieces of `mss` (Linux's `tcp_min_tso_segs`), or the controller's own send quantum.
pub fn tso_autosize(t: &Tcb, rate: f64, mss: u32) -> usize {
    let quantum = match t.cc.send_quantum() {
        Some(q) => q as usize,
        None => (rate * TSO_AUTOSIZE_TIME.as_secs_f64()) as usize,
    };
    quantum.max((MIN_TSO_SEGS * mss) as usize)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::CongestionChoice;
    use super::*;

    /// A connection whose handshake took 10 ms, paced.
    fn paced() -> Fixture {
        let mut fx = Fixture::syn_received();
        fx.now += Duration::from_millis(10);
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1));
        assert!(out.is_empty(), "{out:?}");
        let (id, now) = (fx.id.unwrap(), fx.now);
        let pacing = CongestionChoice {
            algorithm: None,
            pacing: Some(true),
        };
        fx.tcp
            .set_congestion(id, now, pacing, &mut fx.stats)
            .unwrap();
        fx
    }

    #[test]
    fn a_paced_window_leaves_spread_over_the_round_trip() {
        let mut fx = paced();
        assert_eq!(fx.tcb().rtx.rtt.srtt(), Some(Duration::from_millis(10)));
        // Slow start: twice cwnd/SRTT, 14 600 bytes per 5 ms, a segment every 500 µs.
        let rate = rate(fx.tcb()).unwrap();
        assert!((rate - 2.0 * 14_600.0 / 0.010).abs() < 1.0, "{rate}");
        let out = fx.write(&[7u8; 14_600]);
        assert_eq!(out.len(), 1, "one segment now: {out:?}");
        let release = fx.tcb().timers.pacing.expect("the pacing timer");
        assert_eq!(release, fx.now + Duration::from_micros(500));
        let mut times = Vec::new();
        for _ in 0..100 {
            if fx.advance(Duration::from_micros(100)).len() == 1 {
                times.push(fx.now);
            }
        }
        assert_eq!(times.len(), 9, "the rest of the window: {times:?}");
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| *g == Duration::from_micros(500)),
            "{gaps:?}"
        );
    }

    #[test]
    fn an_unpaced_window_leaves_at_once() {
        let mut fx = Fixture::established();
        assert_eq!(fx.write(&[7u8; 14_600]).len(), 10);
        assert!(fx.tcb().timers.pacing.is_none());
    }

    #[test]
    fn each_segment_pushes_the_release_time_by_its_length_at_the_rate() {
        let mut p = Pacing::default();
        let t0 = Instant::from_micros(1000);
        let us = |n: u64| t0 + Duration::from_micros(n);
        assert!(p.ready(t0));
        // 1 MB/s: 1000 bytes take a millisecond; the next may leave from 30 µs before its
        // release, nearer than a sleep is worth.
        p.on_sent(t0, 1000, 1e6);
        assert!(!p.ready(us(969)));
        assert!(p.ready(us(970)));
        assert_eq!(p.release_at(), us(1000));
        p.on_sent(us(1000), 500, 1e6);
        assert_eq!(p.release_at(), us(1500));
        // Held for its release time, the next leaves 100 µs late (a late wakeup): the one
        // after waits 100 µs less (Linux's credit for OS jitter).
        p.set_held(true);
        p.on_sent(us(1600), 1000, 1e6);
        assert_eq!(p.release_at(), us(2500));
        // Credit is at most half a segment's time.
        p.set_held(true);
        p.on_sent(us(3500), 1000, 1e6);
        assert_eq!(p.release_at(), us(4000));
        // An idle sender earns none: no burst after a pause.
        let later = t0 + Duration::from_secs(1);
        p.on_sent(later, 1000, 1e6);
        assert_eq!(p.release_at(), later + Duration::from_millis(1));
    }

    #[test]
    fn the_timers_microsecond_rounding_does_not_slow_the_rate() {
        let mut p = Pacing::default();
        let t0 = Instant::from_micros(0);
        // 1448 bytes at 100 MB/s: 14.48 µs each, released by a timer on whole microseconds.
        p.on_sent(t0, 1448, 1e8);
        for _ in 0..999 {
            let at = p.release_at();
            p.set_held(true);
            p.on_sent(at, 1448, 1e8);
        }
        assert_eq!(p.release_at(), t0 + Duration::from_micros(14_480));
    }

    #[test]
    fn an_early_release_is_at_most_half_a_segments_time_and_keeps_the_rate() {
        let mut p = Pacing::default();
        let t0 = Instant::from_micros(0);
        let us = |n: u64| t0 + Duration::from_micros(n);
        // 2 MB at 1 MB/s: 2 s each, so at most 30 µs early.
        p.on_sent(t0, 2_000_000, 1e6);
        assert!(!p.ready(us(1_999_969)));
        assert!(p.ready(us(1_999_970)));
        // 1448 bytes at 100 MB/s: 14.48 µs each, so at most 7.24 µs early.
        let mut p = Pacing::default();
        p.on_sent(t0, 1448, 1e8);
        assert!(!p.ready(us(7)));
        assert!(p.ready(us(8)));
        // 20 000 bytes at 1 MB/s (20 ms each), sent 30 µs early 100 times: the releases
        // still follow the rate.
        let mut p = Pacing::default();
        p.on_sent(t0, 20_000, 1e6);
        assert!(!p.ready(us(19_969)));
        for _ in 0..100 {
            let early = Instant::from_micros((p.next_ns - EARLY_NS).div_ceil(1000));
            assert!(p.ready(early));
            p.on_sent(early, 20_000, 1e6);
        }
        assert_eq!(p.release_at(), us(2_020_000));
    }

    #[test]
    fn segments_shorter_than_a_millisecond_leave_a_millisecond_at_a_time() {
        let mut p = Pacing::default();
        let t0 = Instant::from_micros(0);
        // 64 KB super-segments at 1 GB/s: 65.5 µs each. A release takes those that end
        // within a millisecond: 15.
        let release = |p: &mut Pacing, at: Instant| {
            let mut n = 0;
            p.start(at, true, 1e9);
            while p.ready(at) {
                p.on_sent(at, 65_536, 1e9);
                n += 1;
            }
            p.set_held(true);
            n
        };
        assert_eq!(release(&mut p, t0), 15);
        assert_eq!(p.release_at(), t0 + Duration::from_micros(984));
        // Woken at each release time, for 100 ms: a release every 983 µs, and the rate.
        let mut sent = 15;
        let mut wakeups = 0;
        while p.release_at() < t0 + Duration::from_millis(100) {
            let at = p.release_at();
            sent += release(&mut p, at);
            wakeups += 1;
        }
        assert_eq!(wakeups, 101);
        let rate = f64::from(sent * 65_536) / 0.1;
        assert!((rate - 1e9).abs() < 1e9 * 0.01, "{rate}");
        // Without TSO, or where a millisecond fits one super-segment (50 MB/s), segments
        // leave one by one.
        for (tso, rate) in [(false, 1e9), (true, 5e7)] {
            let mut p = Pacing::default();
            p.start(t0, tso, rate);
            p.on_sent(t0, 1448, rate);
            assert!(!p.ready(t0), "{tso} {rate}");
        }
    }

    #[test]
    fn sub_microsecond_gaps_add_up_exactly() {
        let mut p = Pacing::default();
        let t0 = Instant::from_micros(0);
        // 1448 bytes at 10 GB/s: 144.8 ns each.
        for _ in 0..1000 {
            p.on_sent(t0, 1448, 1e10);
        }
        assert_eq!(p.release_at(), t0 + Duration::from_micros(145));
    }
}
