//! Bounded IPv4 reassembly (RFC 791 §3.2, RFC 815 hole tracking, RFC 1122 §3.3.2).
//!
//! Rules beyond the RFCs, chosen for robustness:
//! - overlapping fragments must carry identical bytes; a conflict poisons the datagram, which then
//!   swallows its remaining fragments until it times out (like RFC 5722 does for IPv6);
//! - a datagram beyond 65535 bytes is rejected the same way;
//! - memory is capped globally: when a fragment does not fit, the oldest incomplete datagrams are
//!   evicted, so a flood of never-completed fragments cannot starve a legitimate datagram.

use crate::config::ReassemblyConfig;
use crate::stats::Counters;
use crate::time::Instant;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// RFC 791: fragments of one datagram share source, destination, protocol and identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub id: u16,
}

/// Bookkeeping charged per datagram and per fragment on top of the payload bytes.
const ENTRY_OVERHEAD: usize = 256;
const PIECE_OVERHEAD: usize = 64;
/// Largest payload a datagram with a minimal header can carry.
const MAX_PAYLOAD: usize = 65535 - 20;

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
    pub key: FragKey,
    pub header: &'a [u8],
    pub offset: usize,
    pub more: bool,
    pub payload: &'a [u8],
}

pub struct Reassembler {
    cfg: ReassemblyConfig,
    entries: HashMap<FragKey, Entry>,
    /// Entries by creation time: the front is both the next to time out and the first to evict.
    by_age: BTreeSet<(Instant, FragKey)>,
    mem: usize,
}

impl Reassembler {
    pub fn new(cfg: ReassemblyConfig) -> Self {
        Reassembler {
            cfg,
            entries: HashMap::new(),
            by_age: BTreeSet::new(),
            mem: 0,
        }
    }

    /// Memory currently charged to incomplete datagrams.
    pub fn mem(&self) -> usize {
        self.mem
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn poll_at(&self) -> Option<Instant> {
        self.by_age.first().map(|(t, _)| *t + self.cfg.timeout)
    }

    /// Drops datagrams older than the timeout. Returns the first-fragment header and leading
    /// payload of each expired datagram whose first fragment had arrived, for the ICMP "fragment
    /// reassembly time exceeded" message (RFC 792, RFC 1122 §3.3.2).
    pub fn poll(&mut self, now: Instant, stats: &mut Counters) -> Vec<Vec<u8>> {
        let mut expired = Vec::new();
        while let Some(&(created, key)) = self.by_age.first() {
            if now - created < self.cfg.timeout {
                break;
            }
            if let Some(e) = self.remove(&key) {
                if !e.poisoned {
                    stats.reasm_timeouts += 1;
                    if let (Some(h), Some(p)) = (&e.first_header, e.pieces.first()) {
                        if p.offset == 0 {
                            let mut quote = h.clone();
                            quote.extend_from_slice(&p.data[..p.data.len().min(8)]);
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
        self.by_age.remove(&(e.created, *key));
        self.mem -= e.mem;
        Some(e)
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

    /// Evicts the oldest datagrams (never `keep`) until `need` more bytes fit.
    fn make_room(&mut self, need: usize, keep: &FragKey, stats: &mut Counters) -> bool {
        while self.mem + need > self.cfg.max_bytes {
            let victim = self.by_age.iter().map(|(_, k)| *k).find(|k| k != keep);
            match victim {
                Some(k) => {
                    self.remove(&k);
                    stats.reasm_evictions += 1;
                }
                None => return false,
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
                if let Some(&(_, oldest)) = self.by_age.first() {
                    self.remove(&oldest);
                    stats.reasm_evictions += 1;
                }
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
            self.by_age.insert((now, key));
            self.mem += ENTRY_OVERHEAD;
        }

        let max_fragments = self.cfg.max_fragments;
        let e = self.entries.get_mut(&key)?;
        if e.poisoned {
            stats.reasm_discarded_fragments += 1;
            return None;
        }
        if end > MAX_PAYLOAD.min(65535 - header.len()) {
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

        // Find the pieces this fragment overlaps; their bytes must agree with it.
        let first = e
            .pieces
            .partition_point(|p| p.offset + p.data.len() <= offset);
        let mut last = first;
        while last < e.pieces.len() && e.pieces[last].offset < end {
            let p = &e.pieces[last];
            let lo = p.offset.max(offset);
            let hi = (p.offset + p.data.len()).min(end);
            if p.data[lo - p.offset..hi - p.offset] != payload[lo - offset..hi - offset] {
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
