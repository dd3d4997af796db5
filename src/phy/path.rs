use super::{Device, DeviceCapabilities};
use crate::stats::Counters;
use crate::time::Instant;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// A path's bottleneck, as Linux's netem `rate` and `delay` with a drop-tail queue (`limit`):
/// frames leave at `rate` bytes a second, one after another, and arrive `delay` later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathConfig {
    /// Bytes a second the bottleneck passes (frame bytes: Ethernet header to payload end).
    pub rate: u64,
    /// One-way propagation delay, added after a frame is serialised.
    pub delay: Duration,
    /// Bytes the bottleneck queues before it drops a frame that arrives (drop-tail).
    pub queue: usize,
}

impl PathConfig {
    /// Checks the rate can pass a frame at all and the queue can hold one.
    pub fn validate(&self, mtu: usize) -> Result<(), String> {
        if self.rate == 0 {
            return Err("the path's rate must be above zero".into());
        }
        if self.queue < mtu {
            return Err(format!(
                "the path's queue ({} bytes) cannot hold one {mtu}-byte frame",
                self.queue
            ));
        }
        Ok(())
    }

    /// The bandwidth-delay product of the round trip, in bytes, if the path is the same both
    /// ways: what a sender must have in flight to fill it.
    pub fn bdp(&self) -> u64 {
        let rtt = 2 * self.delay.as_nanos();
        (u128::from(self.rate) * rtt / NANOS_PER_SEC) as u64
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A frame on its way: when it reaches the far end, the frame, and `Some(mss)` for a
/// super-segment handed over whole.
type OnTheWay = (Instant, Vec<u8>, Option<u16>);

/// Emulates a path's bottleneck on what a device sends (see [`PathConfig`]), in the time the
/// caller injects, so that simulations see a real bandwidth-delay product and queue. A frame
/// the queue cannot take is dropped and counted; so is one the inner device refuses when its
/// time comes.
pub struct PathEmulator<D> {
    inner: D,
    cfg: PathConfig,
    on_the_way: VecDeque<OnTheWay>,
    /// When the bottleneck has serialised everything queued, in nanoseconds since the epoch
    /// (finer than [`Instant`], so that rounding does not add up frame after frame).
    busy_until_ns: u128,
    dropped: u64,
}

impl<D: Device> PathEmulator<D> {
    /// Wraps `inner`: what is sent through it crosses the path of `cfg`.
    pub fn new(inner: D, cfg: PathConfig) -> Self {
        PathEmulator {
            inner,
            cfg,
            on_the_way: VecDeque::new(),
            busy_until_ns: 0,
            dropped: 0,
        }
    }

    /// The device wrapped.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Queues a frame at the bottleneck, or drops it if the queue is full.
    fn enqueue(&mut self, now: Instant, frame: &[u8], tso: Option<u16>) -> io::Result<()> {
        self.release(now);
        let now_ns = u128::from(now.total_micros()) * 1000;
        let start = self.busy_until_ns.max(now_ns);
        let rate = u128::from(self.cfg.rate.max(1));
        let queued = (start - now_ns) * rate / NANOS_PER_SEC;
        if queued + frame.len() as u128 > self.cfg.queue as u128 {
            self.dropped += 1;
            return Ok(());
        }
        self.busy_until_ns = start + (frame.len() as u128 * NANOS_PER_SEC).div_ceil(rate);
        let serialised = Instant::from_micros(self.busy_until_ns.div_ceil(1000) as u64);
        self.on_the_way
            .push_back((serialised + self.cfg.delay, frame.to_vec(), tso));
        self.release(now);
        Ok(())
    }

    /// Hands the frames whose time has come to the inner device.
    fn release(&mut self, now: Instant) {
        while self.on_the_way.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((_, frame, tso)) = self.on_the_way.pop_front() else {
                break;
            };
            let sent = match tso {
                Some(mss) => self.inner.send_tso(now, &frame, mss),
                None => self.inner.send(now, &frame),
            };
            if sent.is_err() {
                self.dropped += 1;
            }
        }
    }
}

impl<D: Device> Device for PathEmulator<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.inner.recv(now, buf)
    }

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.enqueue(now, frame, None)
    }

    /// A super-segment crosses whole, taking the time of its bytes.
    fn send_tso(&mut self, now: Instant, frame: &[u8], mss: u16) -> io::Result<()> {
        if !self.inner.capabilities().tso {
            return super::send_in_pieces(self, now, frame, mss);
        }
        self.enqueue(now, frame, Some(mss))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.inner.poll_fd()
    }

    fn poll_at(&self) -> Option<Instant> {
        let next = self.on_the_way.front().map(|(at, ..)| *at);
        crate::time::earliest(next, self.inner.poll_at())
    }

    fn poll(&mut self, now: Instant) -> io::Result<()> {
        self.release(now);
        self.inner.poll(now)
    }

    fn add_counters(&self, c: &mut Counters) {
        c.path_dropped += self.dropped;
        self.inner.add_counters(c);
    }

    fn rx_checksum_verified(&self) -> bool {
        self.inner.rx_checksum_verified()
    }

    fn rx_partial_checksum(&self) -> Option<(usize, usize)> {
        self.inner.rx_partial_checksum()
    }

    fn rx_gso_size(&self) -> Option<u16> {
        self.inner.rx_gso_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records when each frame reaches it.
    #[derive(Default)]
    struct Recorder {
        got: Vec<(Instant, usize)>,
    }

    impl Device for Recorder {
        fn recv(&mut self, _: Instant, _: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(None)
        }
        fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
            self.got.push((now, frame.len()));
            Ok(())
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn poll_fd(&self) -> Option<RawFd> {
            None
        }
    }

    /// 1 MB/s (a 1000-byte frame takes 1 ms), 10 ms of delay, room for three frames.
    fn path() -> PathEmulator<Recorder> {
        let cfg = PathConfig {
            rate: 1_000_000,
            delay: Duration::from_millis(10),
            queue: 3000,
        };
        PathEmulator::new(Recorder::default(), cfg)
    }

    /// Runs the path's own timers up to `until`.
    fn run(p: &mut PathEmulator<Recorder>, until: Instant) {
        while let Some(at) = p.poll_at().filter(|at| *at <= until) {
            p.poll(at).unwrap();
        }
    }

    #[test]
    fn frames_leave_at_the_rate_and_arrive_after_the_delay() {
        let mut p = path();
        for _ in 0..3 {
            p.send(Instant::ZERO, &[0; 1000]).unwrap();
        }
        run(&mut p, Instant::from_secs(1));
        let at: Vec<u64> = p.inner.got.iter().map(|(t, _)| t.total_micros()).collect();
        assert_eq!(at, [11_000, 12_000, 13_000]);
        assert_eq!(path().cfg.bdp(), 20_000);
    }

    #[test]
    fn a_full_queue_drops_what_arrives_and_counts_it() {
        let mut p = path();
        for _ in 0..4 {
            p.send(Instant::ZERO, &[0; 1000]).unwrap();
        }
        // One frame has left the queue after 1 ms: there is room again.
        p.send(Instant::from_millis(1), &[0; 1000]).unwrap();
        run(&mut p, Instant::from_secs(1));
        assert_eq!(p.inner.got.len(), 4);
        let mut c = Counters::default();
        p.add_counters(&mut c);
        assert_eq!(c.path_dropped, 1);
    }

    #[test]
    fn an_idle_path_starts_afresh() {
        let mut p = path();
        p.send(Instant::ZERO, &[0; 500]).unwrap();
        run(&mut p, Instant::from_millis(500));
        p.send(Instant::from_secs(1), &[0; 500]).unwrap();
        run(&mut p, Instant::from_secs(2));
        let at: Vec<u64> = p.inner.got.iter().map(|(t, _)| t.total_micros()).collect();
        assert_eq!(at, [10_500, 1_010_500]);
        assert!(PathConfig { rate: 0, ..p.cfg }.validate(1500).is_err());
        assert!(PathConfig {
            queue: 100,
            ..p.cfg
        }
        .validate(1500)
        .is_err());
    }
}
