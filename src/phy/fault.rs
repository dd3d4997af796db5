use super::Device;
use crate::stats::Counters;
use crate::time::Instant;
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
    }

    /// Checks every chance is a percentage.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("drop", self.drop_pct),
            ("corrupt", self.corrupt_pct),
            ("duplicate", self.duplicate_pct),
            ("reorder", self.reorder_pct),
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
}

/// One direction's faults: a seeded RNG, the frame held back for reordering, and the frames
/// ready to go on.
struct Lane {
    rng: ChaCha8Rng,
    held: Option<(Instant, Vec<u8>)>,
    out: VecDeque<Vec<u8>>,
    stats: FaultStats,
}

impl Lane {
    fn new(seed: u64) -> Self {
        Lane {
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: None,
            out: VecDeque::new(),
            stats: FaultStats::default(),
        }
    }

    fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.rng.random::<f64>() * 100.0 < pct
    }

    fn push(&mut self, cfg: &FaultConfig, now: Instant, frame: &[u8]) {
        if self.chance(cfg.drop_pct) {
            self.stats.dropped += 1;
            return;
        }
        let mut frame = frame.to_vec();
        if !frame.is_empty() && self.chance(cfg.corrupt_pct) {
            let i = self.rng.random_range(0..frame.len());
            frame[i] ^= 1 << self.rng.random_range(0..8);
            self.stats.corrupted += 1;
        }
        if self.chance(cfg.duplicate_pct) {
            self.out.push_back(frame.clone());
            self.stats.duplicated += 1;
        }
        if self.held.is_none() && self.chance(cfg.reorder_pct) {
            self.held = Some((now + REORDER_HOLD, frame));
            self.stats.reordered += 1;
            return;
        }
        self.out.push_back(frame);
        if let Some((_, held)) = self.held.take() {
            self.out.push_back(held);
        }
    }

    fn release_due(&mut self, now: Instant) {
        if self.held.as_ref().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, held)) = self.held.take() {
                self.out.push_back(held);
            }
        }
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
        while let Some(frame) = self.tx.out.pop_front() {
            self.inner.send(now, &frame)?;
        }
        Ok(())
    }
}

impl<D: Device> Device for FaultInjector<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            if let Some(frame) = self.rx.out.pop_front() {
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
                    self.rx.push(&self.cfg, now, &buf[..n])
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

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.tx.push(&self.cfg, now, frame);
        self.flush_tx(now)
    }

    /// The inner device's, but no TSO: super-segments are split here, so that each wire
    /// frame meets its own fate.
    fn capabilities(&self) -> super::DeviceCapabilities {
        super::DeviceCapabilities {
            tso: false,
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
        }
        self.inner.add_counters(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device of bare IP packets that carries nothing.
    struct IpLink;

    impl Device for IpLink {
        fn recv(&mut self, _: Instant, _: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(None)
        }
        fn send(&mut self, _: Instant, _: &[u8]) -> io::Result<()> {
            Ok(())
        }
        fn capabilities(&self) -> super::super::DeviceCapabilities {
            super::super::DeviceCapabilities {
                tso: true,
                medium: crate::wire::Medium::Ip,
            }
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn poll_fd(&self) -> Option<RawFd> {
            None
        }
    }

    #[test]
    fn faults_keep_the_medium_and_split_super_segments() {
        let cfg = FaultConfig {
            drop_pct: 1.0,
            ..FaultConfig::default()
        };
        let caps = FaultInjector::new(IpLink, cfg).capabilities();
        assert_eq!(caps.medium, crate::wire::Medium::Ip, "a tun stays a tun");
        assert!(!caps.tso, "each wire frame meets its own fate");
    }
}
