//! Bounded reassembly for both families (IPv4: RFC 791 §3.2, RFC 815 hole tracking, RFC 1122
//! §3.3.2; IPv6: RFC 8200 §4.5), one table and one memory budget.
//!
//! Rules beyond the RFCs, chosen for robustness:
//! - IPv4 fragments that overlap must carry identical bytes; a conflict poisons the datagram,
//!   which then swallows its remaining fragments until it times out. An IPv6 fragment that
//!   overlaps another at all poisons its packet (RFC 5722); an exact duplicate is ignored
//!   (RFC 8200 §4.5);
//! - a datagram beyond 65535 bytes is rejected the same way;
//! - memory and the datagram count are capped globally: when a fragment does not fit, the oldest
//!   incomplete datagram of the source holding the most is evicted. A flood of never-completed
//!   fragments from one source then evicts only its own datagrams, however many of them arrive
//!   between two fragments of another host's datagram (oldest-first alone would evict that
//!   datagram once the flood outran it by the memory limit, which is a matter of CPU timing).

use crate::config::ReassemblyConfig;
use crate::stats::Counters;
use crate::time::Instant;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// Fragments of one datagram share source, destination, protocol and identification (RFC 791);
/// of one IPv6 packet, source, destination and identification (RFC 8200 §4.5: `proto` 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol number of the payload (IPv4), 0 for IPv6.
    pub proto: u8,
    /// Identification field: 16 bits in IPv4, 32 in IPv6.
    pub id: u32,
}

/// Bookkeeping charged per datagram and per fragment on top of the payload bytes.
const ENTRY_OVERHEAD: usize = 256;
const PIECE_OVERHEAD: usize = 64;
/// The largest reassembled datagram: IPv4's total length, or IPv6's payload length plus its
/// fixed header, each a 16-bit field.
const MAX_DATAGRAM: usize = 65535;
/// IPv6's fixed header, which its payload length does not count.
const IPV6_HEADER: usize = 40;
/// The most of an invoking packet an ICMPv6 error quotes: 1280 less its own headers.
const IPV6_ERROR_QUOTE: usize = 1280 - 40 - 8;
/// How long an IPv6 packet's fragments wait (RFC 8200 §4.5: 60 seconds); IPv4's come from
/// the configuration.
const IPV6_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

struct Piece {
    offset: usize,
    data: Vec<u8>,
}

struct Entry {
    created: Instant,
    /// Non-overlapping, sorted by offset.
    pieces: Vec<Piece>,
    received: usize,
    total_len: Option<usize>,
    /// Header of the fragment at offset 0, which becomes the datagram's header.
    first_header: Option<Vec<u8>>,
    poisoned: bool,
    fragments: usize,
    mem: usize,
}

/// A datagram put back together.
pub struct Reassembled {
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

/// One fragment as the IP layer parsed it.
pub struct Fragment<'a> {
    /// The datagram the fragment belongs to.
    pub key: FragKey,
    /// The fragment's IP header with options; the one at offset 0 becomes the datagram's.
    pub header: &'a [u8],
    /// Where the payload goes in the datagram, in bytes (the fragment offset times 8).
    pub offset: usize,
    /// The More Fragments flag: this is not the last fragment.
    pub more: bool,
    /// The fragment's data.
    pub payload: &'a [u8],
}

/// Reassembles fragmented IPv4 datagrams within the limits of a [`ReassemblyConfig`].
pub struct Reassembler {
    cfg: ReassemblyConfig,
    entries: HashMap<FragKey, Entry>,
    /// Entries by deadline: the front is the next to time out.
    by_age: BTreeSet<(Instant, FragKey)>,
    /// Each source's entries by creation time, oldest first.
    by_source: HashMap<IpAddr, BTreeSet<(Instant, FragKey)>>,
    /// Sources by how many entries they hold: the last one is evicted from first.
    load: BTreeSet<(usize, IpAddr)>,
    mem: usize,
}

impl Reassembler {
    /// An empty reassembler with these limits.
    pub fn new(cfg: ReassemblyConfig) -> Self {
        Reassembler {
            cfg,
            entries: HashMap::new(),
            by_age: BTreeSet::new(),
            by_source: HashMap::new(),
            load: BTreeSet::new(),
            mem: 0,
        }
    }

    /// Memory currently charged to incomplete datagrams.
    pub fn mem(&self) -> usize {
        self.mem
    }

    /// Incomplete datagrams held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no datagram is being reassembled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the oldest incomplete datagram times out: when [`Reassembler::poll`] next has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.by_age.first().map(|(t, _)| *t)
    }

    /// When an entry created at `created` for `key` times out.
    fn deadline(&self, created: Instant, key: &FragKey) -> Instant {
        created
            + if key.src.is_ipv6() {
                IPV6_TIMEOUT
            } else {
                self.cfg.timeout
            }
    }

    /// Drops datagrams older than the timeout. Returns the first-fragment header and leading
    /// payload of each expired datagram whose first fragment had arrived, for the ICMP "fragment
    /// reassembly time exceeded" message (RFC 792, RFC 1122 §3.3.2).
    pub fn poll(&mut self, now: Instant, stats: &mut Counters) -> Vec<Vec<u8>> {
        let mut expired = Vec::new();
        while let Some(&(deadline, key)) = self.by_age.first() {
            if now < deadline {
                break;
            }
            if let Some(e) = self.remove(&key) {
                if !e.poisoned {
                    stats.reasm_timeouts += 1;
                    if let (Some(h), Some(p)) = (&e.first_header, e.pieces.first()) {
                        if p.offset == 0 {
                            // IPv4 quotes the header and 8 bytes (RFC 792); IPv6 the first
                            // fragment as far as an error within 1280 bytes allows (RFC 4443
                            // §2.4 (c)).
                            let room = if key.src.is_ipv6() {
                                IPV6_ERROR_QUOTE.saturating_sub(h.len())
                            } else {
                                8
                            };
                            let mut quote = h.clone();
                            quote.extend_from_slice(&p.data[..p.data.len().min(room)]);
                            expired.push(quote);
                        }
                    }
                }
            }
        }
        expired
    }

    fn remove(&mut self, key: &FragKey) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.by_age.remove(&(self.deadline(e.created, key), *key));
        if let Some(held) = self.by_source.get_mut(&key.src) {
            self.load.remove(&(held.len(), key.src));
            held.remove(&(e.created, *key));
            if held.is_empty() {
                self.by_source.remove(&key.src);
            } else {
                self.load.insert((held.len(), key.src));
            }
        }
        self.mem -= e.mem;
        Some(e)
    }

    /// Files a new entry under its age and its source.
    fn track(&mut self, created: Instant, key: FragKey) {
        self.by_age.insert((self.deadline(created, &key), key));
        let held = self.by_source.entry(key.src).or_default();
        self.load.remove(&(held.len(), key.src));
        held.insert((created, key));
        self.load.insert((held.len(), key.src));
    }

    /// The datagram to evict: the oldest of the source holding the most, never `keep`.
    fn victim(&self, keep: &FragKey) -> Option<FragKey> {
        self.load.iter().rev().find_map(|(_, src)| {
            self.by_source
                .get(src)?
                .iter()
                .map(|(_, k)| *k)
                .find(|k| k != keep)
        })
    }

    /// Evicts one datagram other than `keep`; false if there is none.
    fn evict(&mut self, keep: &FragKey, stats: &mut Counters) -> bool {
        let Some(k) = self.victim(keep) else {
            return false;
        };
        self.remove(&k);
        stats.reasm_evictions += 1;
        true
    }

    fn poison(&mut self, key: &FragKey) {
        if let Some(e) = self.entries.get_mut(key) {
            e.poisoned = true;
            e.pieces = Vec::new();
            e.first_header = None;
            self.mem -= e.mem - ENTRY_OVERHEAD;
            e.mem = ENTRY_OVERHEAD;
        }
    }

    /// Evicts datagrams (never `keep`) until `need` more bytes fit.
    fn make_room(&mut self, need: usize, keep: &FragKey, stats: &mut Counters) -> bool {
        while self.mem + need > self.cfg.max_bytes {
            if !self.evict(keep, stats) {
                return false;
            }
        }
        true
    }

    /// Adds a fragment; returns the datagram when it is complete.
    pub fn insert(
        &mut self,
        now: Instant,
        frag: Fragment<'_>,
        stats: &mut Counters,
    ) -> Option<Reassembled> {
        stats.reasm_fragments += 1;
        let Fragment {
            key,
            header,
            offset,
            more,
            payload,
        } = frag;
        let end = offset + payload.len();
        if payload.is_empty() || (more && payload.len() % 8 != 0) {
            stats.reasm_bad_fragments += 1;
            return None;
        }

        if !self.entries.contains_key(&key) {
            if self.entries.len() >= self.cfg.max_datagrams {
                self.evict(&key, stats);
            }
            if !self.make_room(ENTRY_OVERHEAD, &key, stats) {
                return None;
            }
            self.entries.insert(
                key,
                Entry {
                    created: now,
                    pieces: Vec::new(),
                    received: 0,
                    total_len: None,
                    first_header: None,
                    poisoned: false,
                    fragments: 0,
                    mem: ENTRY_OVERHEAD,
                },
            );
            self.track(now, key);
            self.mem += ENTRY_OVERHEAD;
        }

        let max_fragments = self.cfg.max_fragments;
        let e = self.entries.get_mut(&key)?;
        if e.poisoned {
            stats.reasm_discarded_fragments += 1;
            return None;
        }
        let room = match key.src {
            IpAddr::V4(_) => MAX_DATAGRAM - header.len(),
            // (An IPv6 fragment's headers include its 8-byte Fragment header, which the
            // reassembled packet drops.)
            IpAddr::V6(_) => {
                MAX_DATAGRAM + IPV6_HEADER - header.len().saturating_sub(8).max(IPV6_HEADER)
            }
        };
        if end > room {
            stats.reasm_oversize += 1;
            self.poison(&key);
            return None;
        }
        let beyond_end = match e.total_len {
            Some(t) => end > t || (!more && end != t),
            None => {
                !more
                    && e.pieces
                        .last()
                        .is_some_and(|p| p.offset + p.data.len() > end)
            }
        };
        if beyond_end {
            stats.reasm_overlaps += 1;
            self.poison(&key);
            return None;
        }

        // Find the pieces this fragment overlaps; their bytes must agree with it. In IPv6 only
        // an exact duplicate of one fragment may overlap (RFC 5722, RFC 8200 §4.5).
        let first = e
            .pieces
            .partition_point(|p| p.offset + p.data.len() <= offset);
        let mut last = first;
        let strict = key.src.is_ipv6();
        while last < e.pieces.len() && e.pieces[last].offset < end {
            let p = &e.pieces[last];
            let lo = p.offset.max(offset);
            let hi = (p.offset + p.data.len()).min(end);
            let duplicate = p.offset == offset && p.data.len() == payload.len();
            if p.data[lo - p.offset..hi - p.offset] != payload[lo - offset..hi - offset]
                || (strict && !duplicate)
            {
                stats.reasm_overlaps += 1;
                self.poison(&key);
                return None;
            }
            last += 1;
        }

        // The new bytes are the gaps between the overlapped pieces.
        let mut gaps = Vec::new();
        let mut cursor = offset;
        for p in &e.pieces[first..last] {
            if p.offset > cursor {
                gaps.push((cursor, p.offset));
            }
            cursor = cursor.max(p.offset + p.data.len());
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        if !more {
            e.total_len = Some(end);
        }
        if offset == 0 && e.first_header.is_none() {
            e.first_header = Some(header.to_vec());
        }
        if gaps.is_empty() {
            stats.reasm_duplicates += 1;
            return None;
        }
        if e.fragments + gaps.len() > max_fragments {
            stats.reasm_too_many_fragments += 1;
            self.poison(&key);
            return None;
        }

        let need: usize = gaps.iter().map(|(a, b)| b - a + PIECE_OVERHEAD).sum();
        if !self.make_room(need, &key, stats) {
            return None;
        }
        let e = self.entries.get_mut(&key)?;
        for (a, b) in gaps {
            e.pieces.push(Piece {
                offset: a,
                data: payload[a - offset..b - offset].to_vec(),
            });
            e.received += b - a;
        }
        e.pieces.sort_unstable_by_key(|p| p.offset);
        e.fragments = e.pieces.len();
        e.mem += need;
        self.mem += need;

        if e.total_len != Some(e.received) || e.first_header.is_none() {
            return None;
        }
        let e = self.remove(&key)?;
        stats.reasm_ok += 1;
        let mut payload = Vec::with_capacity(e.received);
        for p in e.pieces {
            payload.extend_from_slice(&p.data);
        }
        Some(Reassembled {
            header: e.first_header.unwrap_or_default(),
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HDR: [u8; 20] = [
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    fn key(id: u16) -> FragKey {
        FragKey {
            src: [10, 0, 0, 1].into(),
            dst: [10, 0, 0, 2].into(),
            proto: 17,
            id: id.into(),
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn frag(
        r: &mut Reassembler,
        now: Instant,
        id: u16,
        payload: &[u8],
        offset: usize,
        more: bool,
        stats: &mut Counters,
    ) -> Option<Reassembled> {
        r.insert(
            now,
            Fragment {
                key: key(id),
                header: &HDR,
                offset,
                more,
                payload,
            },
            stats,
        )
    }

    /// Splits `d` into fragments of `size` bytes: (offset, more, bytes).
    fn split(d: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
        d.chunks(size)
            .enumerate()
            .map(|(i, c)| (i * size, (i + 1) * size < d.len(), c))
            .collect()
    }

    #[test]
    fn reassembles_in_any_order_with_duplicates() {
        let d = data(5000);
        let mut frags = split(&d, 1480);
        frags.reverse();
        frags.insert(2, frags[1]);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut s = Counters::default();
        let mut out = None;
        for (i, (off, more, bytes)) in frags.iter().enumerate() {
            if let Some(dg) = frag(&mut r, Instant::ZERO, 7, bytes, *off, *more, &mut s) {
                assert_eq!(i, 4, "completes on the last fragment");
                out = Some(dg);
            }
        }
        assert_eq!(out.expect("reassembled").payload, d);
        assert_eq!(s.reasm_ok, 1);
        assert_eq!(s.reasm_duplicates, 1);
        assert_eq!(r.mem(), 0);
        assert!(r.is_empty());
    }

    #[test]
    fn identical_overlaps_are_accepted() {
        let d = data(3000);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut s = Counters::default();
        assert!(frag(&mut r, Instant::ZERO, 1, &d[..1600], 0, true, &mut s).is_none());
        // Overlaps the first fragment by 800 identical bytes.
        let dg = frag(&mut r, Instant::ZERO, 1, &d[800..], 800, false, &mut s);
        assert_eq!(dg.expect("complete").payload, d);
    }

    #[test]
    fn conflicting_overlap_drops_the_datagram() {
        let d = data(3000);
        let mut evil = d[800..1600].to_vec();
        evil[10] ^= 0xff;
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut s = Counters::default();
        frag(&mut r, Instant::ZERO, 1, &d[..1600], 0, true, &mut s);
        frag(&mut r, Instant::ZERO, 1, &evil, 800, true, &mut s);
        assert_eq!(s.reasm_overlaps, 1);
        // The rest of the datagram no longer completes it; it is swallowed until the timeout.
        assert!(frag(&mut r, Instant::ZERO, 1, &d[1600..], 1600, false, &mut s).is_none());
        assert_eq!(s.reasm_discarded_fragments, 1);
        r.poll(Instant::from_secs(31), &mut s);
        assert!(r.is_empty());
        assert_eq!(r.mem(), 0);
        assert_eq!(s.reasm_timeouts, 0, "a poisoned datagram is not a timeout");
    }

    #[test]
    fn conflicting_ends_drop_the_datagram() {
        let d = data(4000);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut s = Counters::default();
        frag(
            &mut r,
            Instant::ZERO,
            1,
            &d[2000..3000],
            2000,
            false,
            &mut s,
        );
        frag(
            &mut r,
            Instant::ZERO,
            1,
            &d[2000..4000],
            2000,
            false,
            &mut s,
        );
        assert_eq!(s.reasm_overlaps, 1);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        frag(&mut r, Instant::ZERO, 2, &d[1000..3000], 1000, true, &mut s);
        frag(&mut r, Instant::ZERO, 2, &d[0..1000], 0, false, &mut s);
        assert_eq!(s.reasm_overlaps, 2, "a last fragment before received data");
    }

    #[test]
    fn oversized_datagram_is_rejected() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut s = Counters::default();
        frag(&mut r, Instant::ZERO, 9, &data(1480), 0, true, &mut s);
        // Offset 8189*8 = 65512 plus 100 bytes ends past 65535.
        frag(&mut r, Instant::ZERO, 9, &data(100), 65512, false, &mut s);
        assert_eq!(s.reasm_oversize, 1);
        assert!(frag(&mut r, Instant::ZERO, 9, &data(1480), 1480, true, &mut s).is_none());
    }

    #[test]
    fn malformed_fragments_are_dropped() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut s = Counters::default();
        frag(&mut r, Instant::ZERO, 1, &data(100), 0, true, &mut s); // not a multiple of 8
        frag(&mut r, Instant::ZERO, 1, &[], 8, true, &mut s); // empty
        assert_eq!(s.reasm_bad_fragments, 2);
        assert!(r.is_empty());
    }

    #[test]
    fn times_out_after_30_seconds_and_quotes_the_first_fragment() {
        let d = data(3000);
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut s = Counters::default();
        frag(&mut r, Instant::ZERO, 1, &d[..1480], 0, true, &mut s);
        assert_eq!(r.poll_at(), Some(Instant::from_secs(30)));
        assert!(r.poll(Instant::from_secs(29), &mut s).is_empty());
        let quotes = r.poll(Instant::from_secs(30), &mut s);
        assert_eq!(quotes.len(), 1);
        assert_eq!(quotes[0].len(), 20 + 8);
        assert_eq!(s.reasm_timeouts, 1);
        assert_eq!(r.mem(), 0);
    }

    #[test]
    fn too_many_fragments_poison_the_datagram() {
        let cfg = ReassemblyConfig {
            max_fragments: 4,
            ..Default::default()
        };
        let mut r = Reassembler::new(cfg);
        let mut s = Counters::default();
        for i in 0..5 {
            frag(&mut r, Instant::ZERO, 1, &data(8), i * 16, true, &mut s);
        }
        assert_eq!(s.reasm_too_many_fragments, 1);
    }

    #[test]
    fn flood_of_incomplete_datagrams_cannot_starve_a_new_one() {
        let cfg = ReassemblyConfig {
            max_bytes: 256 << 10,
            ..Default::default()
        };
        let limit = cfg.max_bytes;
        let mut r = Reassembler::new(cfg);
        let mut s = Counters::default();
        let mut now = Instant::ZERO;
        // 100k never-completed first fragments from an attacker.
        for id in 0..100_000u32 {
            now += Duration::from_micros(10);
            let k = FragKey {
                src: [10, 0, 0, 66].into(),
                id: u32::from(id as u16),
                proto: (id >> 16) as u8,
                ..key(0)
            };
            r.insert(
                now,
                Fragment {
                    key: k,
                    header: &HDR,
                    offset: 0,
                    more: true,
                    payload: &data(1480),
                },
                &mut s,
            );
            assert!(r.mem() <= limit);
        }
        assert!(s.reasm_evictions > 90_000);
        // A legitimate datagram arriving now still completes.
        let d = data(8000);
        let mut done = None;
        for (off, more, bytes) in split(&d, 1480) {
            now += Duration::from_micros(10);
            done = frag(&mut r, now, 4242, bytes, off, more, &mut s);
        }
        assert_eq!(done.expect("legitimate datagram reassembled").payload, d);
    }

    /// The CPU-timing case of the kernel interop flood test: a flood far larger than the memory
    /// limit arrives between two fragments of another host's datagram, which still completes.
    /// Oldest-first eviction alone would have evicted it.
    #[test]
    fn a_flood_between_two_fragments_evicts_only_its_own_source() {
        let cfg = ReassemblyConfig {
            max_bytes: 256 << 10,
            max_datagrams: 64,
            ..Default::default()
        };
        let mut r = Reassembler::new(cfg);
        let mut s = Counters::default();
        let d = data(8000);
        let pieces = split(&d, 1480);
        let mut done = None;
        for (i, (off, more, bytes)) in pieces.into_iter().enumerate() {
            let now = Instant::ZERO + Duration::from_millis(i as u64);
            done = frag(&mut r, now, 4242, bytes, off, more, &mut s);
            for id in 0..2_000u16 {
                let k = FragKey {
                    src: [10, 0, 0, 66].into(),
                    id: u32::from(id.wrapping_add(i as u16 * 2_000)),
                    ..key(0)
                };
                let flood = Fragment {
                    key: k,
                    header: &HDR,
                    offset: 0,
                    more: true,
                    payload: &d[..1480],
                };
                r.insert(now, flood, &mut s);
            }
        }
        assert!(s.reasm_evictions > 10_000, "{}", s.reasm_evictions);
        assert_eq!(done.expect("legitimate datagram reassembled").payload, d);
    }
}
