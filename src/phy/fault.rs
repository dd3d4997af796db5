use super::Device;
use crate::stats::Counters;
use crate::time::Instant;
use crate::wire::{gso, ETHERNET_HEADER_LEN};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Fault chances in percent (0–100), applied independently to frames in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Percent of frames dropped.
    pub drop_pct: f64,
    /// Percent of frames corrupted: one random bit flipped.
    pub corrupt_pct: f64,
    /// Percent of frames sent twice.
    pub duplicate_pct: f64,
    /// Percent of frames held back behind the next one (for at most 5 ms).
    pub reorder_pct: f64,
    /// Percent of frames marked Congestion Experienced, of those whose IP header says
    /// ECN-capable (RFC 3168 §5): what an AQM does where it would drop (netem's `ecn`).
    pub mark_pct: f64,
    /// Seed of the RNGs (each direction derives its own), so that a run can be replayed.
    pub seed: u64,
}

impl FaultConfig {
    /// Whether any fault has a chance above zero.
    pub fn is_active(&self) -> bool {
        self.drop_pct > 0.0
            || self.corrupt_pct > 0.0
            || self.duplicate_pct > 0.0
            || self.reorder_pct > 0.0
            || self.mark_pct > 0.0
    }

    /// Checks every chance is a percentage.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("drop", self.drop_pct),
            ("corrupt", self.corrupt_pct),
            ("duplicate", self.duplicate_pct),
            ("reorder", self.reorder_pct),
            ("mark", self.mark_pct),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{name} chance {v} is not a percentage (0-100)"));
            }
        }
        Ok(())
    }
}

/// How long a frame held back for reordering waits for a successor before it goes anyway.
const REORDER_HOLD: Duration = Duration::from_millis(5);

#[derive(Default, Clone, Copy)]
struct FaultStats {
    dropped: u64,
    corrupted: u64,
    duplicated: u64,
    reordered: u64,
    marked: u64,
}

/// What befalls one wire frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fate {
    drop: bool,
    corrupt: bool,
    duplicate: bool,
    reorder: bool,
    mark: bool,
}

/// A frame ready to go on: `Some(mss)` for a super-segment that passes whole behind frames
/// still waiting.
type Ready = (Vec<u8>, Option<u16>);

/// One direction's faults: a seeded RNG, the frame held back for reordering, and the frames
/// ready to go on.
struct Lane {
    rng: ChaCha8Rng,
    held: Option<(Instant, Vec<u8>)>,
    out: VecDeque<Ready>,
    /// The fates of a super-segment's pieces, drawn before deciding whether it must be split.
    fates: Vec<Fate>,
    stats: FaultStats,
}

impl Lane {
    fn new(seed: u64) -> Self {
        Lane {
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: None,
            out: VecDeque::new(),
            fates: Vec::new(),
            stats: FaultStats::default(),
        }
    }

    fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.rng.random::<f64>() * 100.0 < pct
    }

    fn fate(&mut self, cfg: &FaultConfig) -> Fate {
        if self.chance(cfg.drop_pct) {
            return Fate {
                drop: true,
                ..Fate::default()
            };
        }
        Fate {
            drop: false,
            corrupt: self.chance(cfg.corrupt_pct),
            duplicate: self.chance(cfg.duplicate_pct),
            reorder: self.chance(cfg.reorder_pct),
            mark: self.chance(cfg.mark_pct),
        }
    }

    fn push(&mut self, cfg: &FaultConfig, now: Instant, frame: &[u8]) {
        let fate = self.fate(cfg);
        self.apply(fate, now, frame.to_vec());
    }

    fn apply(&mut self, fate: Fate, now: Instant, mut frame: Vec<u8>) {
        if fate.drop {
            self.stats.dropped += 1;
            return;
        }
        if fate.corrupt && !frame.is_empty() {
            let i = self.rng.random_range(0..frame.len());
            frame[i] ^= 1 << self.rng.random_range(0..8);
            self.stats.corrupted += 1;
        }
        if fate.mark && crate::wire::ecn::mark_ce(&mut frame) {
            self.stats.marked += 1;
        }
        if fate.duplicate {
            self.out.push_back((frame.clone(), None));
            self.stats.duplicated += 1;
        }
        if fate.reorder && self.held.is_none() {
            self.held = Some((now + REORDER_HOLD, frame));
            self.stats.reordered += 1;
            return;
        }
        self.out.push_back((frame, None));
        self.release_held();
    }

    /// A frame went on: the one held back goes behind it.
    fn release_held(&mut self) {
        if let Some((_, held)) = self.held.take() {
            self.out.push_back((held, None));
        }
    }

    fn release_due(&mut self, now: Instant) {
        if self.held.as_ref().is_some_and(|(due, _)| *due <= now) {
            self.release_held();
        }
    }

    /// Draws the fate of each wire frame a TCP super-segment (or UDP super-datagram) of
    /// `frame` makes with `mss` bytes per piece. `true`: none is touched and it may pass whole (the frame held back, if any,
    /// is then due behind it); `false`: it was split and its pieces queued, each with its fate.
    /// A large frame that is neither cannot be split: it meets only the chance of a drop.
    fn push_super(&mut self, cfg: &FaultConfig, now: Instant, frame: &[u8], mss: usize) -> bool {
        let Some((_, payload_at, end)) = gso::segment_offsets(frame).filter(|_| mss > 0) else {
            let drop = self.chance(cfg.drop_pct);
            self.stats.dropped += u64::from(drop);
            return !drop;
        };
        let count = (end - payload_at).div_ceil(mss).max(1);
        let mut fates = std::mem::take(&mut self.fates);
        fates.clear();
        fates.extend((0..count).map(|_| self.fate(cfg)));
        let whole = fates.iter().all(|f| *f == Fate::default());
        if !whole {
            match gso::segment(frame, mss) {
                Some(pieces) => {
                    for (piece, fate) in pieces.into_iter().zip(fates.iter()) {
                        self.apply(*fate, now, piece);
                    }
                }
                // Unreachable once its headers parsed; counted as lost if ever.
                None => self.stats.dropped += 1,
            }
        }
        self.fates = fates;
        whole
    }
}

/// Drops, corrupts (one flipped bit), duplicates and reorders frames in both directions with a
/// seeded RNG, so a failing run can be replayed.
pub struct FaultInjector<D> {
    inner: D,
    cfg: FaultConfig,
    rx: Lane,
    tx: Lane,
}

impl<D: Device> FaultInjector<D> {
    /// Wraps `inner`, applying the faults of `cfg` to frames in both directions.
    pub fn new(inner: D, cfg: FaultConfig) -> Self {
        FaultInjector {
            inner,
            rx: Lane::new(cfg.seed),
            tx: Lane::new(cfg.seed ^ 0x9e37_79b9_7f4a_7c15),
            cfg,
        }
    }

    fn flush_tx(&mut self, now: Instant) -> io::Result<()> {
        while let Some((frame, tso)) = self.tx.out.pop_front() {
            match tso {
                Some(mss) => self.inner.send_tso(now, &frame, mss)?,
                None => self.inner.send(now, &frame)?,
            }
        }
        Ok(())
    }
}

impl<D: Device> Device for FaultInjector<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            if let Some((frame, _)) = self.rx.out.pop_front() {
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                return Ok(Some(n));
            }
            match self.inner.recv(now, buf)? {
                Some(n) => {
                    // Frames are checked by the core here (they may be corrupted), so a
                    // checksum the kernel left partial is completed first.
                    if let Some((start, offset)) = self.inner.rx_partial_checksum() {
                        crate::wire::complete_partial_checksum(&mut buf[..n], start, offset);
                    }
                    let wire = ETHERNET_HEADER_LEN + self.inner.mtu();
                    if n <= wire {
                        self.rx.push(&self.cfg, now, &buf[..n]);
                        continue;
                    }
                    // A super-segment (the kernel's TSO): each of the wire frames it stands
                    // for meets its own fate; untouched, it goes on whole. Its pieces are as
                    // long as the kernel says, else as long as the MTU allows.
                    let mss = match self.inner.rx_gso_size() {
                        Some(size) => usize::from(size),
                        // A UDP datagram over the MTU is one datagram, not a batch.
                        None => gso::segment_offsets(&buf[..n])
                            .filter(|_| !gso::is_udp(&buf[..n]))
                            .map_or(0, |(_, payload_at, _)| wire.saturating_sub(payload_at)),
                    };
                    if self.rx.push_super(&self.cfg, now, &buf[..n], mss) {
                        self.rx.release_held();
                        return Ok(Some(n));
                    }
                }
                None => {
                    self.rx.release_due(now);
                    if self.rx.out.is_empty() {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Frames queued before go first; while the device refuses them, a new frame is refused
    /// too (the caller counts it, as a send error of the device), so the queue holds at most
    /// what one send made of its frame.
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.flush_tx(now)?;
        self.tx.push(&self.cfg, now, frame);
        self.flush_tx(now)
    }

    /// Each wire frame of the super-segment meets its own fate; if none is touched it goes to
    /// the device whole (TSO stays on, and the host's cost per byte with it), else it is split
    /// here and its pieces go on one by one.
    fn send_tso(&mut self, now: Instant, frame: &[u8], mss: u16) -> io::Result<()> {
        if !self.inner.capabilities().tso {
            return super::send_in_pieces(self, now, frame, mss);
        }
        self.flush_tx(now)?;
        if self.tx.push_super(&self.cfg, now, frame, usize::from(mss)) {
            if self.tx.out.is_empty() {
                self.inner.send_tso(now, frame, mss)?;
            } else {
                self.tx.out.push_back((frame.to_vec(), Some(mss)));
            }
            self.tx.release_held();
        }
        self.flush_tx(now)
    }

    /// The inner device's: super-segments reach [`Device::send_tso`] and are split only
    /// where a fault strikes one of their pieces. Frames come whole (no `gather`): a fault
    /// may need to split, hold or alter one.
    fn capabilities(&self) -> super::DeviceCapabilities {
        super::DeviceCapabilities {
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
        let rx = self.rx.held.as_ref().map(|(t, _)| *t);
        let tx = self.tx.held.as_ref().map(|(t, _)| *t);
        crate::time::earliest(crate::time::earliest(rx, tx), self.inner.poll_at())
    }

    fn poll(&mut self, now: Instant) -> io::Result<()> {
        self.tx.release_due(now);
        self.flush_tx(now)?;
        self.inner.poll(now)
    }

    fn add_counters(&self, c: &mut Counters) {
        for s in [self.rx.stats, self.tx.stats] {
            c.fault_dropped += s.dropped;
            c.fault_corrupted += s.corrupted;
            c.fault_duplicated += s.duplicated;
            c.fault_reordered += s.reordered;
            c.fault_marked += s.marked;
        }
        self.inner.add_counters(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link with TSO that records what is sent (frame, and the MSS of a super-segment)
    /// and hands out the frames queued for receiving.
    #[derive(Default)]
    struct Link {
        sent: Vec<Ready>,
        /// Every send fails (a device whose queue is full).
        failing: bool,
        rx: VecDeque<Vec<u8>>,
        /// The GSO size it reports for received super-segments.
        rx_gso: Option<u16>,
    }

    impl Device for Link {
        fn recv(&mut self, _: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(self.rx.pop_front().map(|f| {
                buf[..f.len()].copy_from_slice(&f);
                f.len()
            }))
        }
        fn send(&mut self, _: Instant, frame: &[u8]) -> io::Result<()> {
            if self.failing {
                return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
            }
            self.sent.push((frame.to_vec(), None));
            Ok(())
        }
        fn send_tso(&mut self, _: Instant, frame: &[u8], mss: u16) -> io::Result<()> {
            if self.failing {
                return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
            }
            self.sent.push((frame.to_vec(), Some(mss)));
            Ok(())
        }
        fn capabilities(&self) -> super::super::DeviceCapabilities {
            super::super::DeviceCapabilities {
                tso: true,
                medium: crate::wire::Medium::Ip,
                gather: false,
            }
        }
        fn mtu(&self) -> usize {
            MTU
        }
        fn poll_fd(&self) -> Option<RawFd> {
            None
        }
        fn rx_gso_size(&self) -> Option<u16> {
            self.rx_gso
        }
    }

    const MTU: usize = 1500;
    const WIRE_FRAME: usize = ETHERNET_HEADER_LEN + MTU;
    const MSS: usize = 1460;
    const PIECES: usize = 40;

    /// A TCP super-segment of [`PIECES`] full pieces.
    fn super_segment() -> Vec<u8> {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 9, 1, 1000)
            .write(&mut frame, &[7u8; PIECES * MSS])
            .expect("a frame");
        frame
    }

    /// Sends super-segments through faults at `pct` percent drops until one is struck;
    /// what the link got for the untouched ones and for that one.
    fn until_struck(pct: f64) -> (usize, Vec<Ready>) {
        let cfg = FaultConfig {
            drop_pct: pct,
            seed: 7,
            ..FaultConfig::default()
        };
        let mut f = FaultInjector::new(Link::default(), cfg);
        let frame = super_segment();
        for whole in 0.. {
            f.send_tso(Instant::ZERO, &frame, MSS as u16).expect("send");
            let sent = std::mem::take(&mut f.inner.sent);
            if sent != [(frame.clone(), Some(MSS as u16))] {
                return (whole, sent);
            }
        }
        unreachable!()
    }

    /// A device that refuses every frame does not make the injector queue without bound:
    /// new frames are refused while the queued ones cannot go.
    #[test]
    fn a_failing_device_leaves_the_send_queue_bounded() {
        let cfg = FaultConfig {
            duplicate_pct: 100.0,
            reorder_pct: 50.0,
            drop_pct: 10.0,
            seed: 5,
            ..FaultConfig::default()
        };
        let link = Link {
            failing: true,
            ..Link::default()
        };
        let mut f = FaultInjector::new(link, cfg);
        let frame = super_segment();
        let mut most = 0;
        for i in 0..10_000 {
            let _ = f.send(Instant::ZERO, &frame[..100]);
            let _ = f.send_tso(Instant::ZERO, &frame, MSS as u16);
            most = most.max(f.tx.out.len());
            assert!(most <= 2 * PIECES + 2, "{most} queued after {i} sends");
        }
        f.inner.failing = false;
        f.poll(Instant::ZERO).expect("poll");
        assert!(f.tx.out.is_empty());
    }

    #[test]
    fn faults_keep_the_devices_capabilities() {
        let caps = FaultInjector::new(Link::default(), FaultConfig::default()).capabilities();
        assert_eq!(caps.medium, crate::wire::Medium::Ip, "a tun stays a tun");
        assert!(
            caps.tso,
            "super-segments are split only where a fault strikes"
        );
    }

    #[test]
    fn a_super_segment_goes_on_whole_until_a_fault_strikes_one_of_its_wire_frames() {
        // At 1% per wire frame, a 40-frame super-segment is struck a third of the time.
        let (whole, sent) = until_struck(1.0);
        assert!(whole < 100, "{whole} untouched in a row");
        assert!(sent.len() < PIECES, "a piece is missing");
        assert!(sent
            .iter()
            .all(|(f, mss)| mss.is_none() && f.len() <= WIRE_FRAME));
        let seqs: Vec<u32> = sent
            .iter()
            .map(|(f, _)| {
                let (tcp_at, _, _) = gso::segment_offsets(f).expect("a TCP piece");
                let (tcp, _) = etherparse::TcpHeader::from_slice(&f[tcp_at..]).expect("TCP");
                tcp.sequence_number
            })
            .collect();
        assert!(
            seqs.windows(2)
                .all(|w| w[1].wrapping_sub(w[0]) as usize % MSS == 0),
            "{seqs:?}"
        );
    }

    #[test]
    fn a_large_frame_that_is_no_tcp_or_udp_segment_meets_only_the_chance_of_a_drop() {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut frame, &[7u8; 3 * MSS])
            .expect("a frame");
        for (pct, sent) in [(100.0, 0), (0.0, 1)] {
            let cfg = FaultConfig {
                drop_pct: pct,
                corrupt_pct: 100.0 - pct,
                ..FaultConfig::default()
            };
            let mut f = FaultInjector::new(Link::default(), cfg);
            f.send_tso(Instant::ZERO, &frame, MSS as u16).expect("send");
            assert_eq!(f.inner.sent.len(), sent);
            assert!(f.inner.sent.iter().all(|(s, _)| *s == frame), "untouched");
        }
    }

    #[test]
    fn a_received_super_segment_meets_a_fate_per_wire_frame() {
        let cfg = FaultConfig {
            drop_pct: 1.0,
            seed: 3,
            ..FaultConfig::default()
        };
        // The kernel says its pieces are half our MSS: twice as many wire frames.
        let link = Link {
            rx_gso: Some((MSS / 2) as u16),
            ..Link::default()
        };
        let mut f = FaultInjector::new(link, cfg);
        let frame = super_segment();
        let rounds = 100;
        f.inner
            .rx
            .extend(std::iter::repeat_n(frame.clone(), rounds));
        let mut buf = vec![0u8; 65536];
        let (mut whole, mut pieces) = (0, 0);
        while let Some(n) = f.recv(Instant::ZERO, &mut buf).expect("recv") {
            if n == frame.len() {
                whole += 1;
            } else {
                assert!(n <= WIRE_FRAME, "a wire frame: {n}");
                pieces += 1;
            }
        }
        let dropped = f.rx.stats.dropped as usize;
        assert!(
            dropped > 0 && whole < rounds,
            "{whole} whole, {dropped} dropped"
        );
        assert_eq!(
            whole * 2 * PIECES + pieces + dropped,
            rounds * 2 * PIECES,
            "every wire frame arrives or is counted dropped"
        );
    }
}
