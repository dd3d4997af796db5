use super::{Device, DeviceCapabilities};
use crate::stats::Counters;
use crate::time::Instant;
use crate::wire::{ecn, ETHERNET_HEADER_LEN};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// A path's bottleneck, as Linux's netem `rate` and `delay` with a drop-tail queue (`limit`):
/// frames leave at `rate` bytes a second, one after another, and arrive `delay` later. With
/// an ECN threshold, it marks as a data centre's switch does (DCTCP's step marking, fq_codel's
/// `ce_threshold`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathConfig {
    /// Bytes a second the bottleneck passes (frame bytes: Ethernet header to payload end).
    pub rate: u64,
    /// One-way propagation delay, added after a frame is serialised.
    pub delay: Duration,
    /// Bytes the bottleneck queues before it drops a frame that arrives (drop-tail).
    pub queue: usize,
    /// An ECN-capable packet (ECT) that finds more than this many bytes queued is marked
    /// Congestion Experienced (RFC 3168 §5); `None` marks nothing.
    pub ecn_threshold: Option<usize>,
}

impl PathConfig {
    /// Checks the rate can pass a frame at all and the queue can hold a full one (of an
    /// `mtu`-byte payload with its Ethernet header).
    pub fn validate(&self, mtu: usize) -> Result<(), String> {
        if self.rate == 0 {
            return Err("the path's rate must be above zero".into());
        }
        let frame = ETHERNET_HEADER_LEN + mtu;
        if self.queue < frame {
            return Err(format!(
                "the path's queue ({} bytes) cannot hold one {frame}-byte frame",
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
const NANOS_PER_MICRO: u128 = 1_000;

/// A frame on its way, and when it reaches the far end.
type OnTheWay = (Instant, Vec<u8>);

/// Emulates a path's bottleneck on what a device sends (see [`PathConfig`]), in the time the
/// caller injects, so that simulations see a real bandwidth-delay product and queue. It
/// carries wire frames: a super-segment is split before the bottleneck, each piece queued on
/// its own, as on a real link. A frame the queue cannot take is dropped and counted; so is one
/// the inner device refuses when its time comes.
pub struct PathEmulator<D> {
    inner: D,
    cfg: PathConfig,
    on_the_way: VecDeque<OnTheWay>,
    /// When the bottleneck has serialised everything queued, in nanoseconds since the epoch
    /// (finer than [`Instant`], so that rounding does not add up frame after frame).
    busy_until_ns: u128,
    dropped: u64,
    marked: u64,
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
            marked: 0,
        }
    }

    /// Queues a frame at the bottleneck, or drops it if the queue is full.
    fn enqueue(&mut self, now: Instant, frame: &[u8]) {
        self.release(now);
        let now_ns = u128::from(now.total_micros()) * NANOS_PER_MICRO;
        let start = self.busy_until_ns.max(now_ns);
        let rate = u128::from(self.cfg.rate.max(1));
        let queued = (start - now_ns) * rate / NANOS_PER_SEC;
        if queued + frame.len() as u128 > self.cfg.queue as u128 {
            self.dropped += 1;
            return;
        }
        self.busy_until_ns = start + (frame.len() as u128 * NANOS_PER_SEC).div_ceil(rate);
        let serialised = Instant::from_micros(self.busy_until_ns.div_ceil(NANOS_PER_MICRO) as u64);
        let mut frame = frame.to_vec();
        if self.cfg.ecn_threshold.is_some_and(|t| queued > t as u128) && ecn::mark_ce(&mut frame) {
            self.marked += 1;
        }
        self.on_the_way
            .push_back((serialised + self.cfg.delay, frame));
        self.release(now);
    }

    /// Hands the frames whose time has come to the inner device.
    fn release(&mut self, now: Instant) {
        while self.on_the_way.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((_, frame)) = self.on_the_way.pop_front() else {
                break;
            };
            if self.inner.send(now, &frame).is_err() {
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
        self.enqueue(now, frame);
        Ok(())
    }

    /// The bottleneck carries wire frames: a super-segment is split before it (as by
    /// [`Device::send_tso`]'s default).
    fn capabilities(&self) -> DeviceCapabilities {
        DeviceCapabilities {
            tso: false,
            gather: false,
            ..self.inner.capabilities()
        }
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
        c.path_ce_marked += self.marked;
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
        frames: Vec<Vec<u8>>,
    }

    impl Device for Recorder {
        fn recv(&mut self, _: Instant, _: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(None)
        }
        fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
            self.got.push((now, frame.len()));
            self.frames.push(frame.to_vec());
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
            ecn_threshold: None,
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
    fn a_super_segment_crosses_as_wire_frames() {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 9, 1, 1000)
            .write(&mut frame, &[7u8; 3 * 900])
            .expect("a frame");
        let mut p = path();
        assert!(!p.capabilities().tso);
        p.send_tso(Instant::ZERO, &frame, 900).unwrap();
        run(&mut p, Instant::from_secs(1));
        let got: Vec<usize> = p.inner.got.iter().map(|(_, len)| *len).collect();
        assert_eq!(got, [954, 954, 954], "three pieces, headers each");
        let at: Vec<u64> = p.inner.got.iter().map(|(t, _)| t.total_micros()).collect();
        assert_eq!(at, [10_954, 11_908, 12_862], "one after another");
    }

    /// An IPv4 or IPv6 frame, its ECN field `ecn`.
    fn ip_frame(v6: bool, ecn: u8) -> Vec<u8> {
        let mut f = vec![0u8; ETHERNET_HEADER_LEN];
        if v6 {
            f[12..14].copy_from_slice(&etherparse::EtherType::IPV6.0.to_be_bytes());
            let h = etherparse::Ipv6Header {
                traffic_class: 0b1010_0000 | ecn,
                payload_length: 100,
                hop_limit: 64,
                ..Default::default()
            };
            f.extend_from_slice(&h.to_bytes());
        } else {
            f[12..14].copy_from_slice(&etherparse::EtherType::IPV4.0.to_be_bytes());
            let mut h = etherparse::Ipv4Header::new(
                100,
                64,
                etherparse::IpNumber::TCP,
                [10, 0, 0, 1],
                [10, 0, 0, 2],
            )
            .expect("header");
            h.dscp = etherparse::IpDscp::try_new(0b101000).expect("dscp");
            h.ecn = etherparse::IpEcn::try_new(ecn).expect("ecn");
            h.header_checksum = h.calc_header_checksum();
            f.extend_from_slice(&h.to_bytes());
        }
        f.resize(f.len() + 600, 0);
        f
    }

    /// The ECN field of an IP frame, and (IPv4) whether its header checksum holds.
    fn ecn_of(f: &[u8]) -> (u8, bool) {
        let ip = &f[ETHERNET_HEADER_LEN..];
        if let Ok(h) = etherparse::Ipv4HeaderSlice::from_slice(ip) {
            let ok = h.to_header().calc_header_checksum() == h.header_checksum();
            (h.ecn().value(), ok && h.dcp().value() == 0b101000)
        } else {
            let h = etherparse::Ipv6HeaderSlice::from_slice(ip).expect("IPv6");
            (h.traffic_class() & 0b11, h.traffic_class() >> 2 == 0b101000)
        }
    }

    #[test]
    fn ecn_capable_frames_over_the_threshold_are_marked_the_others_pass() {
        use crate::wire::ecn::{CE, ECT0};
        for v6 in [false, true] {
            let cfg = PathConfig {
                ecn_threshold: Some(1000),
                queue: 100_000,
                ..path().cfg
            };
            let mut p = PathEmulator::new(Recorder::default(), cfg);
            for ecn in [ECT0, ECT0, 0, 0b01, ECT0] {
                p.send(Instant::ZERO, &ip_frame(v6, ecn)).unwrap();
            }
            run(&mut p, Instant::from_secs(1));
            let got: Vec<(u8, bool)> = p.inner.frames.iter().map(|f| ecn_of(f)).collect();
            // The first two find less than 1000 bytes queued; of the rest, the ECN-capable
            // ones are marked, their checksum and Diffserv field intact.
            let want = [
                (ECT0, true),
                (ECT0, true),
                (0, true),
                (CE, true),
                (CE, true),
            ];
            assert_eq!(got, want, "IPv6: {v6}");
            let mut c = Counters::default();
            p.add_counters(&mut c);
            assert_eq!(c.path_ce_marked, 2);
        }
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
