//! The sender's SACK scoreboard (RFC 2018, RFC 6675): which ranges above snd_una the receiver
//! holds, which holes count as lost, and how much data is in the pipe.

use super::seq::Seq;

/// Ranges kept at most; SACK blocks beyond this are ignored (the highest ranges go first).
const MAX_RANGES: usize = 64;

/// RFC 6675 DupThresh.
const DUP_THRESH: u32 = 3;

/// SACKed ranges `[start, end)`, sorted, disjoint and not touching, and how many bytes they
/// hold.
#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    ranges: Vec<(Seq, Seq)>,
    sacked: u32,
}

impl Scoreboard {
    /// Whether no range is SACKed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// SACKed ranges held (at most 64).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Bytes SACKed above the cumulative ACK, kept as ranges come and go (no scan).
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// Records the blocks of an ACK; blocks outside (una, max] are ignored as invalid
    /// (RFC 2018 §4, RFC 6675 §4). Returns true if anything new was SACKed.
    pub fn update(&mut self, una: Seq, max: Seq, blocks: &[Option<(Seq, Seq)>]) -> bool {
        let mut changed = false;
        for &(l, r) in blocks.iter().flatten() {
            if !(l.gt(una) && r.gt(l) && r.le(max)) {
                continue;
            }
            changed |= self.insert(l, r);
        }
        changed
    }

    fn insert(&mut self, l: Seq, r: Seq) -> bool {
        // First range that ends at or after l.
        let i = self.ranges.partition_point(|&(_, e)| e.lt(l));
        let mut j = i;
        let (mut nl, mut nr) = (l, r);
        while j < self.ranges.len() && self.ranges[j].0.le(r) {
            nl = nl.min(self.ranges[j].0);
            nr = nr.max(self.ranges[j].1);
            j += 1;
        }
        if j == i + 1 && self.ranges[i] == (nl, nr) {
            return false;
        }
        let merged: u32 = self.ranges[i..j].iter().map(|&(s, e)| e.since(s)).sum();
        self.sacked = self.sacked - merged + nr.since(nl);
        self.ranges.splice(i..j, [(nl, nr)]);
        for (s, e) in self.ranges.drain(MAX_RANGES.min(self.ranges.len())..) {
            self.sacked -= e.since(s);
        }
        true
    }

    /// Forgets everything below the new cumulative ACK.
    pub fn advance(&mut self, una: Seq) {
        let drop = self.ranges.partition_point(|&(_, e)| e.le(una));
        for (s, e) in self.ranges.drain(..drop) {
            self.sacked -= e.since(s);
        }
        if let Some(first) = self.ranges.first_mut() {
            if first.0.lt(una) {
                self.sacked -= una.since(first.0);
                first.0 = una;
            }
        }
    }

    /// The end of the SACKed range holding `seq`, if one does.
    pub fn sacked_end(&self, seq: Seq) -> Option<Seq> {
        let i = self.ranges.partition_point(|&(_, e)| e.le(seq));
        self.ranges
            .get(i)
            .filter(|&&(s, _)| s.le(seq))
            .map(|&(_, e)| e)
    }

    /// RFC 6675 IsLost: unSACKed data below the returned point is lost, because DupThresh
    /// ranges or (DupThresh - 1) * SMSS + 1 bytes were SACKed above it.
    pub fn lost_limit(&self, una: Seq, mss: u32) -> Seq {
        let mut bytes = 0u32;
        for (n, &(s, e)) in self.ranges.iter().rev().enumerate() {
            bytes += e.since(s);
            if n as u32 + 1 >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss {
                return s;
            }
        }
        una
    }

    /// The first unSACKed range in `[from, limit)`.
    pub fn next_hole(&self, from: Seq, limit: Seq) -> Option<(Seq, Seq)> {
        let mut start = from;
        if let Some(end) = self.sacked_end(start) {
            start = end;
        }
        if !start.lt(limit) {
            return None;
        }
        let i = self.ranges.partition_point(|&(s, _)| s.le(start));
        let end = self.ranges.get(i).map_or(limit, |&(s, _)| s.min(limit));
        Some((start, end))
    }

    /// Unsacked bytes in `[from, to)`.
    pub fn unsacked(&self, from: Seq, to: Seq) -> u32 {
        if !from.lt(to) {
            return 0;
        }
        let mut n = to.since(from);
        for &(s, e) in &self.ranges {
            let (a, b) = (s.max(from), e.min(to));
            if a.lt(b) {
                n -= b.since(a);
            }
        }
        n
    }

    /// RFC 6675 SetPipe: unSACKed data not yet deemed lost, plus lost data already
    /// retransmitted (up to `high_rxt`).
    pub fn pipe(&self, una: Seq, max: Seq, lost_limit: Seq, high_rxt: Seq) -> u32 {
        let lost_end = lost_limit.max(una).min(max);
        self.unsacked(lost_end, max) + self.unsacked(una, high_rxt.max(una).min(lost_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> Seq {
        Seq(n)
    }

    #[test]
    fn merges_and_advances_across_the_wrap() {
        let base = u32::MAX - 5000;
        let mut b = Scoreboard::default();
        let una = s(base);
        let max = s(base) + 20_000;
        assert!(b.update(una, max, &[Some((s(base) + 3000, s(base) + 4000))]));
        assert!(b.update(una, max, &[Some((s(base) + 5000, s(base) + 6000))]));
        assert!(
            !b.update(una, max, &[Some((s(base) + 3000, s(base) + 4000))]),
            "no news"
        );
        assert!(b.update(una, max, &[Some((s(base) + 3500, s(base) + 5500))]));
        assert_eq!(b.ranges, vec![(s(base) + 3000, s(base) + 6000)]);
        assert_eq!(b.sacked_bytes(), 3000);
        assert_eq!(b.sacked_end(s(base) + 3100), Some(s(base) + 6000));
        assert_eq!(b.sacked_end(s(base) + 6000), None);
        b.advance(s(base) + 4000);
        assert_eq!(b.ranges, vec![(s(base) + 4000, s(base) + 6000)]);
        assert_eq!(b.sacked_bytes(), 2000);
        b.advance(s(base) + 7000);
        assert!(b.is_empty());
        assert_eq!(b.sacked_bytes(), 0);
    }

    #[test]
    fn the_sacked_total_follows_the_ranges_kept() {
        let mut b = Scoreboard::default();
        let (una, max) = (s(0), s(1_000_000));
        // More ranges than are kept, from the top down: the highest are dropped.
        for n in (0..MAX_RANGES as u32 + 6).rev() {
            b.update(una, max, &[Some((s(n * 1000 + 100), s(n * 1000 + 600)))]);
        }
        let sum = |b: &Scoreboard| b.ranges.iter().map(|&(l, r)| r.since(l)).sum::<u32>();
        assert_eq!(b.ranges.len(), MAX_RANGES);
        assert_eq!(b.sacked_bytes(), sum(&b));
        b.update(una, max, &[Some((s(50), s(2700)))]);
        assert_eq!(b.sacked_bytes(), sum(&b), "merged");
        b.advance(s(5300));
        assert_eq!(b.sacked_bytes(), sum(&b), "advanced into a range");
    }

    #[test]
    fn ignores_invalid_blocks() {
        let mut b = Scoreboard::default();
        assert!(
            !b.update(s(1000), s(5000), &[Some((s(500), s(900)))]),
            "below una"
        );
        assert!(
            !b.update(s(1000), s(5000), &[Some((s(4000), s(6000)))]),
            "beyond max"
        );
        assert!(
            !b.update(s(1000), s(5000), &[Some((s(3000), s(2000)))]),
            "reversed"
        );
        assert!(b.is_empty());
    }

    #[test]
    fn loss_detection_holes_and_pipe() {
        let mss = 1000;
        let mut b = Scoreboard::default();
        let una = s(0);
        let max = s(10_000);
        // Segments 1 and 3 are lost; 2, 4, 5, 6 were SACKed.
        b.update(
            una,
            max,
            &[Some((s(1000), s(2000))), Some((s(3000), s(6000)))],
        );
        let lost = b.lost_limit(una, mss);
        assert_eq!(
            lost,
            s(3000),
            "3000 bytes SACKed above 3000; 1000 above 1000 is not enough alone"
        );
        assert_eq!(b.next_hole(una, lost), Some((s(0), s(1000))));
        assert_eq!(b.next_hole(s(1000), lost), Some((s(2000), s(3000))));
        assert_eq!(b.next_hole(s(3000), lost), None);
        // In flight: 6000..10000 (not lost) = 4000; nothing retransmitted yet.
        assert_eq!(b.pipe(una, max, lost, una), 4000);
        // After retransmitting the first hole it counts again.
        assert_eq!(b.pipe(una, max, lost, s(1000)), 5000);
        assert_eq!(Scoreboard::default().lost_limit(una, mss), una);
    }
}
