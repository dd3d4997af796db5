//! The two byte buffers of a TCP connection: rings that grow with use up to a fixed limit.
//!
//! A buffer allocates nothing until it holds data, then at least doubles when it must grow, so
//! an idle connection costs no buffer memory and a busy one reaches its limit in a few steps
//! (Linux's buffer autotuning has the same effect). A small ring is freed again whenever it
//! empties (unless a device is reading it, `SendBuffer::pin`, or a writer filling it,
//! `SendBuffer::reserve`), as Linux frees each skb once
//! it is acknowledged or read, so a connection that sits
//! idle between requests holds no buffer; a ring larger than [`RELEASE_MAX`] is kept, since
//! zeroing it again on every drain would cost a bulk transfer more than it saves.
//!
//! [`SendBuffer`] holds the bytes from SND.UNA on; [`RecvBuffer`] holds the in-order bytes the
//! application has not read plus out-of-order data beyond RCV.NXT (RFC 9293 §3.3.1). Offsets are
//! plain byte counts relative to those sequence numbers; sequence arithmetic is the caller's.

use crate::rxbuf::RxFrame;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Largest capacity a buffer takes: the largest window TCP can advertise (RFC 7323 §2.3).
pub const MAX_CAPACITY: usize = 1 << 30;

/// Maps `pos` (below twice `cap`) into a ring of `cap` bytes; 0 for an empty ring.
fn wrap(pos: usize, cap: usize) -> usize {
    pos.checked_rem(cap).unwrap_or(0)
}

/// The `len` bytes from ring position `start` as up to two slices.
fn ring_slices(buf: &[u8], start: usize, len: usize) -> (&[u8], &[u8]) {
    let first = len.min(buf.len() - start);
    (&buf[start..start + first], &buf[..len - first])
}

/// Copies `data` (at most the ring's size) into the ring from position `start`.
fn ring_write(buf: &mut [u8], start: usize, data: &[u8]) {
    let first = data.len().min(buf.len() - start);
    buf[start..start + first].copy_from_slice(&data[..first]);
    buf[..data.len() - first].copy_from_slice(&data[first..]);
}

/// Copies as much of the two slices, in order, as fits into `out`; returns how many bytes.
fn copy_pair(out: &mut [u8], (a, b): (&[u8], &[u8])) -> usize {
    let na = a.len().min(out.len());
    let nb = b.len().min(out.len() - na);
    out[..na].copy_from_slice(&a[..na]);
    out[na..na + nb].copy_from_slice(&b[..nb]);
    na + nb
}

/// The smallest ring a buffer allocates once it holds data.
const MIN_RING: usize = 4096;

/// The largest ring freed when it empties: what a request/response connection grows, not what
/// a bulk transfer does.
pub const RELEASE_MAX: usize = 64 * 1024;

/// The most ring bytes one [`RecvBuffer::lend`] copies out: what a relay's buffer of its own
/// would have held.
pub const RING_LEND_MAX: usize = 64 * 1024;

/// The ring a [`SendBuffer::reserve`] makes for an empty buffer: room for a typical response
/// (or a whole TLS record) in one fill, while bytes that may never come cost a connection
/// little; a bulk transfer doubles it as it fills.
const FIRST_FILL_RING: usize = 16 * 1024;

/// The memory every connection's buffers hold together, against a budget (Linux's
/// `tcp_mem`): past `pressure` buffers stop growing (send buffers stop autotuning, receive
/// windows offer only what is allocated already, out-of-order data is dropped before in-order
/// data); at `limit` no new connection is made.
#[derive(Debug)]
pub struct MemoryPool {
    allocated: AtomicUsize,
    pressure: usize,
    limit: usize,
}

impl MemoryPool {
    /// A pool under pressure past `pressure` bytes and full at `limit`.
    pub fn new(pressure: usize, limit: usize) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            allocated: AtomicUsize::new(0),
            pressure,
            limit,
        })
    }

    /// Bytes the rings of all buffers take now.
    pub fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Past the pressure mark: buffers do not grow.
    pub fn under_pressure(&self) -> bool {
        self.allocated() > self.pressure
    }

    /// At the limit: no new connection.
    pub fn exhausted(&self) -> bool {
        self.allocated() >= self.limit
    }

    /// A ring went from `before` to `after` bytes.
    fn charge(&self, before: usize, after: usize) {
        if after > before {
            self.allocated.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.allocated.fetch_sub(before - after, Ordering::Relaxed);
        }
    }
}

/// Charges `pool` for a ring that went from `before` bytes to `after`. Sizes, not the ring:
/// a writer may be filling part of it meanwhile ([`SendBuffer::reserve`]).
fn charge(pool: &Option<Arc<MemoryPool>>, before: usize, after: usize) {
    if let Some(p) = pool {
        p.charge(before, after);
    }
}

/// Charges `pool` from now on for a ring of `size` bytes, as it is already; a buffer charged
/// to a pool stays with it.
fn attach(slot: &mut Option<Arc<MemoryPool>>, pool: &Arc<MemoryPool>, size: usize) {
    if slot.is_none() {
        pool.charge(0, size);
        *slot = Some(pool.clone());
    }
}

/// Frees `buf` if it is a small ring; the caller knows it holds nothing.
fn release_if_small(buf: &mut Vec<u8>, head: &mut usize) {
    if buf.len() <= RELEASE_MAX {
        *buf = Vec::new();
    }
    *head = 0;
}

/// Grows `buf`, a ring whose data starts at `*head`, to hold at least `need` bytes (at most
/// `limit`): the data moves to the front of a ring at least twice as large, so growing costs
/// O(1) per byte.
fn grow(buf: &mut Vec<u8>, head: &mut usize, need: usize, limit: usize) {
    if need <= buf.len() {
        return;
    }
    let size = need.max(buf.len() * 2).max(MIN_RING).min(limit);
    buf.rotate_left(*head);
    buf.resize(size, 0);
    *head = 0;
}

/// An open [`SendBuffer::reserve`].
#[derive(Clone, Copy)]
struct Reservation {
    /// Bytes the writer may fill.
    len: usize,
    /// The buffer was discarded meanwhile: what the writer fills is dropped.
    discarded: bool,
}

/// Bytes written by the application and not yet acknowledged; offset 0 is SND.UNA.
pub struct SendBuffer {
    /// The ring, as large as use has made it so far.
    buf: Vec<u8>,
    /// The most the buffer holds (`SO_SNDBUF`).
    limit: usize,
    /// While autotuned: the most it holds for now, which grows with the congestion window up
    /// to `limit` (Linux's `tcp_sndbuf_expand`), so that a peer that takes nothing costs
    /// little. `None` once the size was set (Linux's `SOCK_SNDBUF_LOCK`).
    auto: Option<usize>,
    /// The stack's memory budget, charged for the ring.
    pool: Option<Arc<MemoryPool>>,
    /// Ring position of SND.UNA.
    head: usize,
    len: usize,
    /// SND.UP as an offset from SND.UNA: the first octet after the urgent data, while some
    /// is unacknowledged (RFC 9293 §3.8.5).
    urgent_end: Option<usize>,
    /// Stream position of SND.UNA: every byte ever consumed or discarded, so that a position
    /// names the same byte for the life of the buffer (see [`SendBuffer::pin`]).
    una_pos: u64,
    /// Pins outstanding: the device is reading ring bytes outside the lock
    /// ([`SendBuffer::pin`]), so the ring must not move or be freed until the last
    /// [`SendBuffer::unpin`].
    pinned: u32,
    /// While pinned, the stream position and ring position of the first pinned byte: writes
    /// stop short of it even once it is acknowledged.
    pin_first: (u64, usize),
    /// A write (or a readiness check, [`SendBuffer::room`]) found no room while pinned that
    /// growing the ring would have given: the writer is woken at [`SendBuffer::unpin`]. A
    /// `Cell`, so that the check can say so through `&self`.
    grow_wanted: std::cell::Cell<bool>,
    /// While a writer fills the free bytes at the tail outside the lock
    /// ([`SendBuffer::reserve`]): how many bytes it may fill, and whether the buffer was
    /// discarded meanwhile. The ring neither moves nor is freed, and other writes wait, until
    /// [`SendBuffer::commit`].
    reserved: Option<Reservation>,
}

impl SendBuffer {
    /// A buffer of up to `capacity` bytes (at most [`MAX_CAPACITY`]); nothing is allocated yet.
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            buf: Vec::new(),
            limit: capacity.min(MAX_CAPACITY),
            auto: None,
            pool: None,
            head: 0,
            len: 0,
            urgent_end: None,
            una_pos: 0,
            pinned: 0,
            pin_first: (0, 0),
            grow_wanted: std::cell::Cell::new(false),
            reserved: None,
        }
    }

    /// Charges the ring to `pool`, whose pressure also stops autotuning.
    pub fn pooled(mut self, pool: &Arc<MemoryPool>) -> Self {
        self.attach_pool(pool);
        self
    }

    /// Charges the ring, as it is now and from now on, to `pool` (a buffer made outside the
    /// core, as an intercepted connection's).
    pub fn attach_pool(&mut self, pool: &Arc<MemoryPool>) {
        attach(&mut self.pool, pool, self.buf.len());
    }

    /// Drops whatever is unacknowledged: the connection is over and nothing more will be sent.
    pub fn discard(&mut self) {
        if let Some(r) = &mut self.reserved {
            r.discarded = true;
        }
        self.una_pos += self.len as u64;
        self.len = 0;
        self.urgent_end = None;
        self.release();
    }

    /// The most the buffer holds for now: its size, or while autotuned what the congestion
    /// window has earned so far.
    pub fn capacity(&self) -> usize {
        self.auto.map_or(self.limit, |a| a.min(self.limit))
    }

    /// Whether the buffer is autotuned (its size was not set).
    pub fn autotuned(&self) -> bool {
        self.auto.is_some()
    }

    /// Autotunes the buffer from `start` bytes up to its size ([`SendBuffer::expand`]).
    pub fn autotune(&mut self, start: usize) {
        self.auto = Some(start.min(self.limit));
    }

    /// While autotuned, lets the buffer hold up to `to` bytes (never less than before, never
    /// more than its size); true if that gave the application more room.
    pub fn expand(&mut self, to: usize) -> bool {
        if self.pool.as_ref().is_some_and(|p| p.under_pressure()) {
            return false;
        }
        match self.auto {
            Some(a) if to > a && a < self.limit => {
                self.auto = Some(to.min(self.limit));
                true
            }
            _ => false,
        }
    }

    /// Marks everything written so far as urgent data: SND.UP moves to the end of the buffer
    /// (RFC 9293 §3.9.1.2, the SEND call with the urgent flag).
    pub fn mark_urgent(&mut self) {
        if self.len > 0 {
            self.urgent_end = Some(self.len);
        }
    }

    /// SND.UP as an offset from SND.UNA, while urgent data is unacknowledged.
    pub fn urgent_end(&self) -> Option<usize> {
        self.urgent_end
    }

    /// Bytes of memory the ring takes now.
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Bytes held: written and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Room left for [`SendBuffer::write`] by the buffer's size.
    pub fn free(&self) -> usize {
        self.capacity().saturating_sub(self.len)
    }

    /// Room a [`SendBuffer::write`] would take now: [`SendBuffer::free`], but while pinned only
    /// what the ring's present size leaves, and none while a reservation is open; a writer
    /// told there is none is woken at the end of the pin or the reservation.
    pub fn room(&self) -> usize {
        let free = self.free();
        if self.reserved.is_some() {
            if free > 0 {
                self.grow_wanted.set(true);
            }
            return 0;
        }
        if self.pinned == 0 {
            return free;
        }
        let room = free.min(self.room_before_pin());
        if room == 0 && free > 0 {
            self.grow_wanted.set(true);
        }
        room
    }

    /// Sets the most the buffer holds (at most [`MAX_CAPACITY`]), which ends autotuning. Below
    /// what it holds, it takes no writes until acknowledgements drain it under the new size.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.limit = capacity.min(MAX_CAPACITY);
        self.auto = None;
    }

    /// Whether the buffer holds nothing: all that was written is acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frees the ring, whatever its size, if it holds nothing (a connection that will send no
    /// more: TIME-WAIT).
    pub fn release(&mut self) {
        if self.len == 0 && !self.held() {
            let before = self.buf.len();
            self.buf = Vec::new();
            self.head = 0;
            charge(&self.pool, before, self.buf.len());
        }
    }

    /// Appends as much of `data` as fits; returns how many bytes were taken. While the ring is
    /// pinned it does not grow: a write takes what its present size leaves room for.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let mut n = data.len().min(self.free());
        if self.reserved.is_some() {
            if n > 0 {
                self.grow_wanted.set(true);
            }
            return 0;
        }
        if self.pinned > 0 {
            let room = self.room_before_pin();
            if n > room {
                self.grow_wanted.set(true);
                n = room;
            }
        } else {
            let (bound, before) = (self.capacity(), self.buf.len());
            grow(&mut self.buf, &mut self.head, self.len + n, bound);
            charge(&self.pool, before, self.buf.len());
        }
        debug_assert!(self.len + n <= self.buf.len(), "a write past the ring");
        let tail = wrap(self.head + self.len, self.buf.len());
        let data = &data[..n];
        let first = n.min(self.buf.len() - tail);
        // SAFETY: `tail + first` and `n - first` are within the ring (n is at most its free
        // room), and the bytes written are free ones, which no pinned frame covers. The
        // writes go through `as_mut_ptr`, which makes no reference to the ring's other bytes:
        // the device may be reading unacknowledged ones outside the lock
        // ([`SendBuffer::pin`]).
        unsafe {
            let ring = self.buf.as_mut_ptr();
            std::ptr::copy_nonoverlapping(data.as_ptr(), ring.add(tail), first);
            std::ptr::copy_nonoverlapping(data[first..].as_ptr(), ring, n - first);
        }
        self.len += n;
        n
    }

    /// The stream position of `offset` bytes past SND.UNA, which `SendBuffer::pin` and
    /// [`SendBuffer::slices_from`] take.
    pub fn position(&self, offset: usize) -> u64 {
        self.una_pos + offset as u64
    }

    /// The `len` bytes from stream position `pos` as up to two slices, if the buffer still
    /// holds every one of them (not acknowledged or discarded since).
    pub fn slices_from(&self, pos: u64, len: usize) -> Option<(&[u8], &[u8])> {
        let offset = usize::try_from(pos.checked_sub(self.una_pos)?).ok()?;
        (offset.checked_add(len)? <= self.len).then(|| self.slices_at(offset, len))
    }

    /// Free bytes from the tail up to the first pinned byte in ring order: all of them unless
    /// the pinned bytes were acknowledged meanwhile (they are then free, but still read).
    fn room_before_pin(&self) -> usize {
        let size = self.buf.len();
        let free = size - self.len;
        let tail = wrap(self.head + self.len, size);
        let to_pin = wrap(self.pin_first.1 + size - tail, size);
        if self.pin_first.0 < self.una_pos {
            to_pin.min(free)
        } else {
            free
        }
    }

    /// Pins the ring for a device to read the `len` bytes from `pos` outside the lock: where
    /// they are, as (address, length) pairs, or `None` if they are no longer held. Until the
    /// last [`SendBuffer::unpin`] the ring neither moves nor is freed, and writes stop short of
    /// the pinned bytes even if they are acknowledged meanwhile.
    pub(crate) fn pin(&mut self, pos: u64, len: usize) -> Option<[(*const u8, usize); 2]> {
        let (a, b) = self.slices_from(pos, len)?;
        let parts = [(a.as_ptr(), a.len()), (b.as_ptr(), b.len())];
        let at = wrap(self.head + (pos - self.una_pos) as usize, self.buf.len());
        if self.pinned == 0 || pos < self.pin_first.0 {
            self.pin_first = (pos, at);
        }
        self.pinned += 1;
        Some(parts)
    }

    /// Ends a [`SendBuffer::pin`]; true if it was the last and a write was held short
    /// meanwhile, so that its writer should be woken to write the rest.
    pub(crate) fn unpin(&mut self) -> bool {
        self.pinned = self.pinned.saturating_sub(1);
        self.pinned == 0 && self.reserved.is_none() && self.grow_wanted.take()
    }

    /// Whether the ring must stay where it is: a device reads it or a writer fills it
    /// outside the lock.
    fn held(&self) -> bool {
        self.pinned > 0 || self.reserved.is_some()
    }

    /// Reserves up to `max` free bytes at the tail for one writer to fill outside the lock,
    /// so that data read from elsewhere lands in the ring without a copy of its own: where
    /// they are (one contiguous run of the ring as it is, so perhaps fewer than are free), or
    /// `None` if none are free or another reservation is open. The bytes may never come, so
    /// the ring grows only when it is full: a first ring of up to [`FIRST_FILL_RING`], then
    /// by doubling; never while pinned. Until [`SendBuffer::commit`] the ring neither moves
    /// nor is freed, and writes take nothing (their writer is woken at the commit).
    pub(crate) fn reserve(&mut self, max: usize) -> Option<(*mut u8, usize)> {
        if self.reserved.is_some() {
            self.grow_wanted.set(true);
            return None;
        }
        let mut n = max.min(self.free());
        if self.pinned > 0 {
            let room = self.room_before_pin();
            if n > room {
                self.grow_wanted.set(true);
                n = room;
            }
        } else if n > 0 && self.len == self.buf.len() {
            let (bound, before) = (self.capacity(), self.buf.len());
            let need = if before == 0 {
                n.min(FIRST_FILL_RING)
            } else {
                self.len + 1
            };
            grow(&mut self.buf, &mut self.head, need, bound);
            charge(&self.pool, before, self.buf.len());
        }
        let n = n.min(self.buf.len() - self.len);
        if n == 0 {
            return None;
        }
        let tail = wrap(self.head + self.len, self.buf.len());
        let n = n.min(self.buf.len() - tail);
        self.reserved = Some(Reservation {
            len: n,
            discarded: false,
        });
        // SAFETY: `tail` is within the ring, which holds at least `n` bytes from it.
        Some((unsafe { self.buf.as_mut_ptr().add(tail) }, n))
    }

    /// Ends a [`SendBuffer::reserve`]: the first `n` reserved bytes (at most as many as were
    /// reserved) join the data. Returns whether they did: not if the buffer was discarded
    /// meanwhile (the connection ended), and then they are dropped. Also returns whether a
    /// write was refused meanwhile, so that its writer should be woken.
    pub(crate) fn commit(&mut self, n: usize) -> (bool, bool) {
        let Some(r) = self.reserved.take() else {
            return (false, false);
        };
        if r.discarded {
            self.release();
        } else {
            self.len += n.min(r.len);
        }
        self.release_if_drained();
        (!r.discarded, self.pinned == 0 && self.grow_wanted.take())
    }

    /// Copies the bytes from `offset` into `out`; returns how many (0 past the end).
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        copy_pair(out, self.slices_at(offset, out.len()))
    }

    /// Up to `len` bytes from `offset`, without copying: two slices when the ring wraps.
    pub fn slices_at(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        let n = len.min(self.len - offset);
        let (size, start) = (self.buf.len(), wrap(self.head + offset, self.buf.len()));
        let first = n.min(size - start);
        // SAFETY: both runs hold written bytes inside the ring (`n` is at most `len` from
        // `offset`). They are made from the ring's address, not from a slice of the whole
        // ring, which would also cover the free bytes a writer may be filling meanwhile
        // (`SendBuffer::reserve`).
        unsafe {
            let ring = self.buf.as_ptr();
            (
                std::slice::from_raw_parts(ring.add(start), first),
                std::slice::from_raw_parts(ring, n - first),
            )
        }
    }

    /// Drops `n` acknowledged bytes from the front (clamped to [`SendBuffer::len`]).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.una_pos += n as u64;
        // Urgent mode ends once SND.UNA reaches SND.UP.
        self.urgent_end = self
            .urgent_end
            .and_then(|e| e.checked_sub(n))
            .filter(|&e| e > 0);
        if !self.release_if_drained() {
            self.head = wrap(self.head + n, self.buf.len());
        }
    }

    /// Frees a small ring once it holds nothing and nothing holds it, as a drained buffer's
    /// ring is; whether it did.
    fn release_if_drained(&mut self) -> bool {
        if self.len > 0 || self.held() {
            return false;
        }
        let before = self.buf.len();
        release_if_small(&mut self.buf, &mut self.head);
        charge(&self.pool, before, self.buf.len());
        true
    }
}

/// The budget gets the ring back.
impl Drop for SendBuffer {
    fn drop(&mut self) {
        charge(&self.pool, self.buf.len(), 0);
    }
}

/// The budget gets the ring back.
impl Drop for RecvBuffer {
    fn drop(&mut self) {
        charge(&self.pool, self.buf.len() + self.chunk_memory, 0);
    }
}

/// Shows the counters, not the bytes.
impl std::fmt::Debug for SendBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBuffer")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .finish()
    }
}

/// What [`RecvBuffer::insert`] did with a segment's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insert {
    /// How far RCV.NXT moved: bytes that became readable.
    pub advanced: usize,
    /// Bytes dropped because they lay beyond the receive window (RFC 9293 §3.10.7.4).
    pub trimmed: usize,
    /// The data was dropped entirely: it needed a new out-of-order range and the limit was hit.
    /// `trimmed` still counts the part beyond the window.
    pub rejected: bool,
    /// Out-of-order data dropped under memory pressure.
    pub pruned: bool,
}

/// An out-of-order range, relative to RCV.NXT; never starts at 0, never touches another.
#[derive(Clone, Copy, Debug)]
struct Range {
    start: usize,
    end: usize,
    /// Larger is more recently received into, for SACK ordering (RFC 2018 §4).
    stamp: u64,
}

/// A run of readable data, in the order it arrived: kept in its frame, or in the ring.
enum Part {
    /// Kept in the buffer of the frame it arrived in ([`RecvBuffer::adopt`]).
    Frame(Chunk),
    /// This many bytes of the ring, the next ones from its head.
    Ring(usize),
}

/// A run of readable bytes lent out of the lock by [`RecvBuffer::lend`].
pub enum Lent {
    /// Bytes of a kept frame, this range of its buffer, which the `Arc` keeps alive.
    Frame(Arc<RxFrame>, std::ops::Range<usize>),
    /// Bytes copied out of the ring, as this range of the lender's scratch buffer.
    Copied(std::ops::Range<usize>),
}

impl Lent {
    /// The run's bytes, given the scratch buffer the ring's were copied into.
    pub fn bytes<'a>(&'a self, scratch: &'a [u8]) -> &'a [u8] {
        match self {
            Lent::Frame(frame, range) => &frame.bytes()[range.clone()],
            Lent::Copied(range) => &scratch[range.clone()],
        }
    }
}

/// Data kept in the buffer of the frame it arrived in ([`RecvBuffer::adopt`]).
struct Chunk {
    frame: Arc<RxFrame>,
    /// The unread part of the payload, in the frame's buffer.
    start: usize,
    end: usize,
}

impl Chunk {
    fn len(&self) -> usize {
        self.end - self.start
    }

    fn bytes(&self) -> &[u8] {
        &self.frame.bytes()[self.start..self.end]
    }
}

/// Out-of-order data kept in its frame, as Linux keeps its out-of-order queue's skbs.
struct Held {
    /// Where the data starts, relative to RCV.NXT.
    offset: usize,
    chunk: Chunk,
}

/// Received bytes: readable in-order data before RCV.NXT, out-of-order data after it. Readable
/// data is in frames kept whole ([`RecvBuffer::adopt`]) and in the ring, in the order it came.
/// Out-of-order data is all in frames kept whole, or all in the ring: an out-of-order segment
/// the frames cannot take copies them into the ring first ([`RecvBuffer::insert`]).
pub struct RecvBuffer {
    /// The readable data in order: runs kept in their frames and runs of the ring's.
    queue: VecDeque<Part>,
    /// Bytes readable in the frames kept.
    chunked: usize,
    /// Out-of-order data kept in its frames, sorted by offset, disjoint: while there is any,
    /// the ranges describe exactly these and the ring holds no out-of-order data.
    held: VecDeque<Held>,
    /// Memory the frames kept take, readable or out of order.
    chunk_memory: usize,
    /// The ring, as large as use has made it so far.
    buf: Vec<u8>,
    /// The most the buffer holds.
    limit: usize,
    /// Ring position of the first readable byte in the ring; RCV.NXT is `readable` bytes
    /// further.
    head: usize,
    /// Readable bytes in the ring (`Part::Ring` runs of the queue).
    readable: usize,
    /// Sorted by start, disjoint and not adjacent, at most `max_ranges`.
    ranges: Vec<Range>,
    max_ranges: usize,
    next_stamp: u64,
    /// The stack's memory budget, charged for the ring.
    pool: Option<Arc<MemoryPool>>,
    /// The room kept under memory pressure (see [`RecvBuffer::set_min_room`]).
    min_room: usize,
}

impl RecvBuffer {
    /// Frees the ring, whatever its size, if it holds nothing, neither readable nor
    /// out-of-order data (a connection that will receive no more: TIME-WAIT).
    pub fn release(&mut self) {
        // The ring's own bytes: frames still unread do not keep it.
        if self.readable == 0 && !self.ooo_in_ring() {
            let before = self.buf.len();
            self.buf = Vec::new();
            self.head = 0;
            charge(&self.pool, before, self.buf.len());
        }
    }

    /// Charges the ring to `pool`, whose pressure also holds the window to what the ring has.
    pub fn pooled(mut self, pool: &Arc<MemoryPool>) -> Self {
        self.attach_pool(pool);
        self
    }

    /// Charges the ring, as it is now and from now on, to `pool` (a buffer made outside the
    /// core, as an intercepted connection's).
    pub fn attach_pool(&mut self, pool: &Arc<MemoryPool>) {
        if self.pool.is_none() {
            pool.charge(0, self.chunk_memory);
        }
        attach(&mut self.pool, pool, self.buf.len());
    }

    /// The room a ring keeps under memory pressure even when empty: at least one full segment
    /// (`mss`), so that a window closed under pressure can always reopen by a segment.
    pub fn set_min_room(&mut self, mss: usize) {
        self.min_room = mss.max(MIN_RING);
    }

    /// Drops the out-of-order data: nothing more will be received (data past the peer's FIN,
    /// kept only by a hostile peer).
    pub fn discard_ooo(&mut self) {
        self.ranges.clear();
        for h in std::mem::take(&mut self.held) {
            self.let_go(&h.chunk);
        }
    }

    /// Whether out-of-order data lies in the ring (rather than in frames, or nowhere).
    fn ooo_in_ring(&self) -> bool {
        !self.ranges.is_empty() && self.held.is_empty()
    }

    /// Gives a kept frame's memory back (the chunk itself is dropped by the caller).
    fn let_go(&mut self, chunk: &Chunk) {
        let size = chunk.frame.size();
        self.chunk_memory -= size;
        if let Some(p) = &self.pool {
            p.charge(size, 0);
        }
    }

    /// RCV.NXT moved `n` bytes: the out-of-order data's offsets follow.
    fn shift(&mut self, n: usize) {
        for r in &mut self.ranges {
            r.start -= n;
            r.end -= n;
        }
        for h in &mut self.held {
            h.offset -= n;
        }
    }

    /// Makes readable the frames held out of order that RCV.NXT has reached, in place, and
    /// moves RCV.NXT past them; returns how far.
    fn promote(&mut self) -> usize {
        let mut moved = 0;
        while self.held.front().is_some_and(|h| h.offset == moved) {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            moved += h.chunk.len();
            self.chunked += h.chunk.len();
            self.queue.push_back(Part::Frame(h.chunk));
        }
        if moved > 0 {
            // Adjacent frames make one range: the first, which starts at RCV.NXT.
            debug_assert_eq!((self.ranges[0].start, self.ranges[0].end), (0, moved));
            self.ranges.remove(0);
            self.shift(moved);
        }
        moved
    }

    /// Copies the out-of-order data held in frames into the ring, where the ranges say it is,
    /// and lets the frames go: for a segment that overlaps them, or that no frame carries.
    fn materialize(&mut self) {
        let Some(need) = self.held.back().map(|h| h.offset + h.chunk.len()) else {
            return;
        };
        self.grow_ring(self.readable + need);
        debug_assert!(
            self.readable + need <= self.buf.len(),
            "held data past the ring"
        );
        for h in std::mem::take(&mut self.held) {
            let at = wrap(self.head + self.readable + h.offset, self.buf.len());
            ring_write(&mut self.buf, at, h.chunk.bytes());
            self.let_go(&h.chunk);
        }
    }

    /// Grows the ring to hold `need` bytes from its head, within what the frames kept leave
    /// of the limit, and charges the budget.
    fn grow_ring(&mut self, need: usize) {
        let before = self.buf.len();
        grow(
            &mut self.buf,
            &mut self.head,
            need,
            self.limit.saturating_sub(self.chunked),
        );
        charge(&self.pool, before, self.buf.len());
    }

    /// `n` more bytes of the ring became readable, behind what is queued.
    fn ring_readable(&mut self, n: usize) {
        self.readable += n;
        match self.queue.back_mut() {
            Some(Part::Ring(run)) => *run += n,
            _ => self.queue.push_back(Part::Ring(n)),
        }
    }

    /// Whether `[start, end)` overlaps data held (not merely touches it), among
    /// `ranges[i..j]`, the ranges that overlap or touch it.
    fn overlaps(&self, i: usize, j: usize, start: usize, end: usize) -> bool {
        self.ranges[i..j]
            .iter()
            .any(|r| r.start < end && start < r.end)
    }

    /// The range of `[start, end)`, received into now: it takes in `ranges[i..j]`, those it
    /// overlaps or touches, which leave the list; the caller places it.
    fn merged_range(&mut self, i: usize, j: usize, start: usize, end: usize) -> Range {
        let mut merged = Range {
            start,
            end,
            stamp: self.next_stamp,
        };
        self.next_stamp += 1;
        if i < j {
            merged.start = merged.start.min(self.ranges[i].start);
            merged.end = merged.end.max(self.ranges[j - 1].end);
        }
        self.ranges.drain(i..j);
        merged
    }

    fn pressured(&self) -> bool {
        self.pool.as_ref().is_some_and(|p| p.under_pressure())
    }

    /// What the ring may hold under pressure: what it has, at least one segment.
    fn pressured_room(&self) -> usize {
        self.buf
            .len()
            .max(self.min_room)
            .saturating_sub(self.readable)
    }

    /// The window to advertise: [`RecvBuffer::window`], or under memory pressure no more than
    /// the ring already allocated (at least one segment) can take, so that it stops growing.
    pub fn offer(&self) -> usize {
        if self.pressured() {
            self.window().min(self.pressured_room())
        } else {
            self.window()
        }
    }

    /// A buffer of `capacity` bytes (at most [`MAX_CAPACITY`]) keeping at most `max_ranges`
    /// out-of-order ranges.
    pub fn new(capacity: usize, max_ranges: usize) -> Self {
        RecvBuffer {
            queue: VecDeque::new(),
            chunked: 0,
            held: VecDeque::new(),
            chunk_memory: 0,
            buf: Vec::new(),
            limit: capacity.min(MAX_CAPACITY),
            head: 0,
            readable: 0,
            ranges: Vec::new(),
            max_ranges,
            next_stamp: 0,
            pool: None,
            min_room: MIN_RING,
        }
    }

    /// The most the buffer holds.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Bytes of memory the ring and the frames kept take now.
    pub fn allocated(&self) -> usize {
        self.buf.len() + self.chunk_memory
    }

    /// In-order bytes the application can read.
    pub fn readable(&self) -> usize {
        self.chunked + self.readable
    }

    /// Free space from RCV.NXT on, which the receive window may advertise (RFC 9293 §3.8.6);
    /// out-of-order data lives inside it.
    pub fn window(&self) -> usize {
        self.capacity().saturating_sub(self.readable())
    }

    /// Takes `data`, a segment's payload arriving `offset` bytes past RCV.NXT, by keeping the
    /// frame it lies in instead of copying it into the ring: when it fills at least half of
    /// that frame's buffer (a 64 KB GRO frame, not a 1500-byte one: the memory charged stays
    /// within twice the data), fits the window whole, there is no memory pressure, and the
    /// memory the buffer takes, the ring's and the frames', stays within twice its size. Out of
    /// order it must overlap no data held already (it may adjoin it), and the out-of-order data
    /// must be in frames too (data in the ring past RCV.NXT would move), and it is rejected
    /// (`Insert::rejected`) where a new range would pass the limit; in order, the part that
    /// reaches the first frame held out of order is a duplicate and is left out, and data
    /// past that frame is not taken. `None` where it does not apply: the caller then
    /// [`RecvBuffer::insert`]s.
    pub fn adopt(&mut self, offset: usize, frame: &Arc<RxFrame>, data: &[u8]) -> Option<Insert> {
        if self.ooo_in_ring() || self.pressured() {
            return None;
        }
        let data = match self.ranges.first() {
            // Past the first range, the rest is for `insert` to sort out.
            Some(first) if offset == 0 && data.len() > first.end => return None,
            Some(first) if offset == 0 => &data[..data.len().min(first.start)],
            _ => data,
        };
        let range = frame.range_of(data)?;
        let end = offset + data.len();
        let fits = !data.is_empty() && data.len() * 2 >= frame.size() && end <= self.window();
        // Memory, the ring's included, stays within twice the buffer's size.
        let room = self.allocated() + frame.size() <= 2 * self.capacity();
        if !fits || !room {
            return None;
        }
        // Ranges overlapping or adjacent to [offset, end).
        let i = self.ranges.partition_point(|r| r.end < offset);
        let j = self.ranges.partition_point(|r| r.start <= end);
        if offset > 0 {
            if i == j && self.ranges.len() >= self.max_ranges {
                return Some(Insert {
                    rejected: true,
                    ..Insert::default()
                });
            }
            if self.overlaps(i, j, offset, end) {
                return None;
            }
        }
        self.chunk_memory += frame.size();
        if let Some(p) = &self.pool {
            p.charge(0, frame.size());
        }
        let chunk = Chunk {
            frame: frame.clone(),
            start: range.start,
            end: range.end,
        };
        if offset == 0 {
            self.chunked += data.len();
            self.queue.push_back(Part::Frame(chunk));
            self.shift(data.len());
            return Some(Insert {
                advanced: data.len() + self.promote(),
                ..Insert::default()
            });
        }
        let at = self.held.partition_point(|h| h.offset < offset);
        self.held.insert(at, Held { offset, chunk });
        let merged = self.merged_range(i, j, offset, end);
        self.ranges.insert(i, merged);
        Some(Insert::default())
    }

    /// Takes out-of-order `data` as [`RecvBuffer::adopt`] does, in a copy of its own from
    /// `pool` (no allocation once the pool has buffers): for a segment that came in no frame
    /// worth keeping for it (a 1500-byte one read into a 64 KB buffer, or none), so that
    /// out-of-order data stays in frames and the large frames that follow can wait in theirs.
    /// `None` where it does not apply (data not between half and all of a pool buffer,
    /// overlapping data held, or not to be held): the caller then inserts.
    pub fn hold_copy(
        &mut self,
        offset: usize,
        data: &[u8],
        pool: &Arc<crate::rxbuf::FramePool>,
    ) -> Option<Insert> {
        let sized = data.len() <= pool.size() && data.len() * 2 >= pool.size();
        if offset == 0 || !sized || self.ooo_in_ring() || self.pressured() {
            return None;
        }
        let end = offset + data.len();
        let i = self.ranges.partition_point(|r| r.end < offset);
        let j = self.ranges.partition_point(|r| r.start <= end);
        if self.overlaps(i, j, offset, end) {
            return None;
        }
        let mut copy = pool.take();
        copy.bytes_mut()[..data.len()].copy_from_slice(data);
        let copy = Arc::new(copy);
        self.adopt(offset, &copy, &copy.bytes()[..data.len()])
    }

    /// Sets the most the buffer holds (at most [`MAX_CAPACITY`]); the caller keeps it at
    /// least `readable() + ooo_end()`, so that no data held is lost.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.limit = capacity.min(MAX_CAPACITY);
    }

    /// Whether `[start, end)` past RCV.NXT is all held already, in one out-of-order range: a
    /// duplicate (RFC 2883 §4.1).
    pub fn holds(&self, start: usize, end: usize) -> bool {
        self.ranges.iter().any(|r| r.start <= start && end <= r.end)
    }

    /// How far past RCV.NXT out-of-order data reaches (0 without any).
    pub fn ooo_end(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.end)
    }

    /// Stores `data` received at `offset` bytes past RCV.NXT.
    ///
    /// Bytes beyond the window are trimmed; overlaps and duplicates are accepted, later bytes
    /// overwriting earlier ones in the ring, and bytes of frames held taking precedence. Data
    /// reaching offset 0 becomes readable together with every out-of-order range it joins.
    pub fn insert(&mut self, offset: usize, data: &[u8]) -> Insert {
        let window = self.window();
        let mut kept = window.saturating_sub(offset).min(data.len());
        let mut result = Insert {
            trimmed: data.len() - kept,
            ..Insert::default()
        };
        // Under memory pressure the ring does not grow: out-of-order data goes first (Linux
        // prunes its out-of-order queue before anything else), and in-order data past what the
        // ring holds is dropped unacknowledged, for the sender to send again once the
        // application reads (Linux's receive-queue drops under `tcp_mem`).
        if kept > 0 && self.pressured() {
            // Out-of-order data is kept only where the ring already has room for it.
            let room = self.pressured_room();
            if (offset > 0 && offset + kept > room) || room == 0 {
                result.pruned = true;
                return result;
            }
            if kept > room.saturating_sub(offset) {
                kept = room.saturating_sub(offset);
                result.pruned = true;
            }
        }
        if kept == 0 {
            return result;
        }
        let (start, end) = (offset, offset + kept);
        // Ranges overlapping or adjacent to [start, end) merge with it.
        let i = self.ranges.partition_point(|r| r.end < start);
        let j = self.ranges.partition_point(|r| r.start <= end);
        if i == j && start > 0 && self.ranges.len() >= self.max_ranges {
            result.rejected = true;
            return result;
        }
        if !self.held.is_empty() {
            if start == 0 {
                return self.insert_beside_held(&data[..kept], result);
            }
            if let Some(r) = self
                .ranges
                .iter_mut()
                .find(|r| r.start <= start && end <= r.end)
            {
                // Held already: received into again, for SACK's order (RFC 2018 §4).
                r.stamp = self.next_stamp;
                self.next_stamp += 1;
                return result;
            }
            // The frames would go to the ring, which under pressure does not grow for them.
            if self.pressured() && self.ooo_end().max(end) > self.pressured_room() {
                result.pruned = true;
                return result;
            }
            self.materialize();
        }
        self.grow_ring(self.readable + end);
        let at = wrap(self.head + self.readable + start, self.buf.len());
        ring_write(&mut self.buf, at, &data[..kept]);
        let merged = self.merged_range(i, j, start, end);
        if merged.start > 0 {
            self.ranges.insert(i, merged);
            return result;
        }
        let n = merged.end;
        self.ring_readable(n);
        self.shift(n);
        result.advanced = n;
        result
    }

    /// In-order `data` while out-of-order data waits in frames: what lies before each frame
    /// goes into the ring, the frames it reaches become readable, and what it has of theirs
    /// is a duplicate.
    fn insert_beside_held(&mut self, mut data: &[u8], mut result: Insert) -> Insert {
        while !data.is_empty() {
            let n = self
                .ranges
                .first()
                .map_or(data.len(), |r| data.len().min(r.start));
            self.grow_ring(self.readable + n);
            let at = wrap(self.head + self.readable, self.buf.len());
            ring_write(&mut self.buf, at, &data[..n]);
            self.ring_readable(n);
            self.shift(n);
            let promoted = self.promote();
            result.advanced += n + promoted;
            if n + promoted == 0 {
                debug_assert!(false, "a range held at RCV.NXT");
                break;
            }
            data = &data[(n + promoted).min(data.len())..];
        }
        result
    }

    /// Takes readable bytes into `out`; returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.peek(out);
        self.consume(n);
        n
    }

    /// Copies readable bytes into `out` without consuming them (`MSG_PEEK`), in the order they
    /// came: from the frames kept and from the ring.
    pub fn peek(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        // Ring bytes already copied: the next run starts this far past the head.
        let mut ring = 0;
        for part in &self.queue {
            if n == out.len() {
                break;
            }
            n += match part {
                Part::Frame(c) => {
                    let bytes = &c.frame.bytes()[c.start..c.end];
                    let k = bytes.len().min(out.len() - n);
                    out[n..n + k].copy_from_slice(&bytes[..k]);
                    k
                }
                Part::Ring(run) => {
                    let at = wrap(self.head + ring, self.buf.len());
                    ring += run;
                    copy_pair(&mut out[n..], ring_slices(&self.buf, at, *run))
                }
            };
        }
        n
    }

    /// Lends up to `max` readable bytes from the front, in order, in at most `max_runs`
    /// runs, without consuming them, so that they can be written elsewhere outside the lock:
    /// a kept frame's bytes as the frame itself (its `Arc` keeps them alive whatever the
    /// buffer does meanwhile), the ring's copied to the end of `scratch`, at most
    /// [`RING_LEND_MAX`] of them (a copy the borrower may not use: its writer may take only
    /// part). Returns how many bytes; [`RecvBuffer::consume`] then takes what was used.
    pub fn lend(
        &self,
        max: usize,
        max_runs: usize,
        scratch: &mut Vec<u8>,
        out: &mut Vec<Lent>,
    ) -> usize {
        let mut n = 0;
        let mut ring = 0;
        let mut copied = 0;
        let before = out.len();
        for part in &self.queue {
            if n == max || out.len() - before == max_runs {
                break;
            }
            match part {
                Part::Frame(c) if c.len() == 0 => {}
                Part::Ring(0) => {}
                Part::Frame(c) => {
                    let k = c.len().min(max - n);
                    out.push(Lent::Frame(c.frame.clone(), c.start..c.start + k));
                    n += k;
                }
                Part::Ring(run) => {
                    let at = wrap(self.head + ring, self.buf.len());
                    ring += run;
                    let k = (*run).min(max - n).min(RING_LEND_MAX - copied);
                    if k == 0 {
                        break;
                    }
                    copied += k;
                    let (a, b) = ring_slices(&self.buf, at, k);
                    scratch.reserve(k);
                    let from = scratch.len();
                    scratch.extend_from_slice(a);
                    scratch.extend_from_slice(b);
                    out.push(Lent::Copied(from..scratch.len()));
                    n += k;
                    if k < *run {
                        // Cut short: what follows the run is not next in the stream.
                        break;
                    }
                }
            }
        }
        n
    }

    /// The ring's readable bytes: two slices when it wraps.
    #[cfg(test)]
    fn peek_slices(&self) -> (&[u8], &[u8]) {
        ring_slices(&self.buf, self.head, self.readable)
    }

    /// Drops `n` readable bytes (clamped to [`RecvBuffer::readable`]), opening the window, in
    /// the order they came: each frame kept is given back as it is read through.
    pub fn consume(&mut self, n: usize) {
        let mut n = n.min(self.readable());
        while n > 0 {
            let Some(part) = self.queue.front_mut() else {
                break;
            };
            let (k, done) = match part {
                Part::Frame(c) => {
                    let k = n.min(c.end - c.start);
                    c.start += k;
                    self.chunked -= k;
                    (k, c.start == c.end)
                }
                Part::Ring(run) => {
                    let k = n.min(*run);
                    *run -= k;
                    self.head = wrap(self.head + k, self.buf.len());
                    self.readable -= k;
                    (k, *run == 0)
                }
            };
            n -= k;
            if done {
                if let Some(Part::Frame(c)) = self.queue.pop_front() {
                    self.let_go(&c);
                }
            }
        }
        if self.readable == 0 && !self.ooo_in_ring() {
            let before = self.buf.len();
            release_if_small(&mut self.buf, &mut self.head);
            charge(&self.pool, before, self.buf.len());
        }
    }

    /// Out-of-order ranges as `(start, end)` offsets from RCV.NXT, the most recently received
    /// into first, as SACK blocks are ordered (RFC 2018 §4). Lazy: each item scans the ranges.
    pub fn ooo_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut below = u64::MAX;
        std::iter::from_fn(move || {
            let r = self
                .ranges
                .iter()
                .filter(|r| r.stamp < below)
                .max_by_key(|r| r.stamp)?;
            below = r.stamp;
            Some((r.start, r.end))
        })
    }

    /// Whether any out-of-order data waits for a hole to fill.
    pub fn has_ooo(&self) -> bool {
        !self.ranges.is_empty()
    }
}

/// Shows the counters and ranges, not the bytes.
impl std::fmt::Debug for RecvBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBuffer")
            .field("capacity", &self.capacity())
            .field("readable", &self.readable())
            .field(
                "frames kept",
                &self
                    .queue
                    .iter()
                    .filter(|p| matches!(p, Part::Frame(_)))
                    .count(),
            )
            .field("ooo", &self.ooo_ranges().collect::<Vec<_>>())
            .field("ooo frames kept", &self.held.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Deterministic xorshift64 so the randomized tests need no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform-ish in `0..n` (n > 0).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn stream(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn joined((a, b): (&[u8], &[u8])) -> Vec<u8> {
        [a, b].concat()
    }

    fn ranges(r: &RecvBuffer) -> Vec<(usize, usize)> {
        r.ooo_ranges().collect()
    }

    fn read_all(r: &mut RecvBuffer) -> Vec<u8> {
        let mut out = vec![0; r.readable()];
        let n = r.read(&mut out);
        out.truncate(n);
        out
    }

    /// Ranges sorted, disjoint, not adjacent, past offset 0, inside the window, within the limit.
    fn check_invariants(r: &RecvBuffer) {
        let mut sorted = ranges(r);
        sorted.sort();
        assert!(sorted.len() <= r.max_ranges);
        let mut prev_end = 0;
        for &(s, e) in &sorted {
            assert!(s > prev_end, "ranges {sorted:?}");
            assert!(
                s < e && e <= r.window(),
                "ranges {sorted:?} window {}",
                r.window()
            );
            prev_end = e;
        }
        assert_eq!(r.has_ooo(), !sorted.is_empty());
        assert_eq!(r.readable() + r.window(), r.capacity());
        let frames = || {
            r.queue.iter().filter_map(|p| match p {
                Part::Frame(c) => Some(c),
                Part::Ring(_) => None,
            })
        };
        let ring: usize = r
            .queue
            .iter()
            .map(|p| match p {
                Part::Ring(n) => *n,
                Part::Frame(_) => 0,
            })
            .sum();
        assert_eq!(ring, r.readable, "the ring's runs are its readable bytes");
        assert_eq!(frames().map(|c| c.end - c.start).sum::<usize>(), r.chunked);
        assert!(
            r.queue.iter().all(|p| match p {
                Part::Frame(c) => c.start < c.end,
                Part::Ring(n) => *n > 0,
            }),
            "read-through runs go"
        );
        // Frames held out of order: sorted, disjoint, and exactly what the ranges cover.
        let mut held: Vec<(usize, usize)> = Vec::new();
        for h in &r.held {
            assert!(h.chunk.start < h.chunk.end);
            match held.last_mut() {
                Some(last) if last.1 == h.offset => last.1 += h.chunk.len(),
                Some(last) => {
                    assert!(last.1 < h.offset, "held frames sorted and disjoint");
                    held.push((h.offset, h.offset + h.chunk.len()));
                }
                None => held.push((h.offset, h.offset + h.chunk.len())),
            }
        }
        if !r.held.is_empty() {
            let mut sorted = ranges(r);
            sorted.sort();
            assert_eq!(held, sorted, "the ranges are the frames held");
        }
        assert_eq!(
            r.chunk_memory,
            frames().map(|c| c.frame.size()).sum::<usize>()
                + r.held.iter().map(|h| h.chunk.frame.size()).sum::<usize>()
        );
    }

    /// A frame holding `data` in its first bytes, `extra` bytes longer.
    fn frame_with(data: &[u8], extra: usize) -> Arc<RxFrame> {
        let mut f = RxFrame::new(data.len() + extra);
        f.bytes_mut()[..data.len()].copy_from_slice(data);
        Arc::new(f)
    }

    /// Lending hands out the readable bytes in order without consuming them: kept frames as
    /// themselves (the same buffer, alive while lent even once read through), the ring's runs
    /// copied into the scratch buffer; within `max` bytes and `max_runs` runs.
    #[test]
    fn lending_gives_frames_as_themselves_and_copies_only_the_rings_runs() {
        let mut r = RecvBuffer::new(200_000, 4);
        let a = frame_with(&[1; 40_000], 0);
        r.adopt(0, &a, a.bytes()).expect("kept");
        assert_eq!(r.insert(0, &[2; 100]).advanced, 100);
        let b = frame_with(&[3; 30_000], 0);
        r.adopt(0, &b, b.bytes()).expect("kept");
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        assert_eq!(r.lend(1 << 20, 16, &mut scratch, &mut runs), 70_100);
        assert_eq!(runs.len(), 3);
        assert_eq!(scratch, vec![2; 100], "only the ring's bytes are copied");
        let first = runs[0].bytes(&scratch);
        assert_eq!(first.as_ptr(), a.bytes().as_ptr(), "the frame itself");
        let joined: Vec<u8> = runs
            .iter()
            .flat_map(|l| l.bytes(&scratch).to_vec())
            .collect();
        assert_eq!(
            joined,
            [vec![1; 40_000], vec![2; 100], vec![3; 30_000]].concat()
        );
        assert_eq!(r.readable(), 70_100, "nothing consumed");
        // Consumed while lent: the lent frame stays alive.
        r.consume(70_100);
        assert_eq!(Arc::strong_count(&a), 2, "the lent run still holds it");
        drop(runs);
        assert_eq!(Arc::strong_count(&a), 1);

        // Within max bytes (a run cut short) and max runs.
        let c = frame_with(&[4; 40_000], 0);
        r.adopt(0, &c, c.bytes()).expect("kept");
        assert_eq!(r.insert(0, &[5; 10]).advanced, 10);
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        assert_eq!(r.lend(1000, 16, &mut scratch, &mut runs), 1000);
        assert_eq!(runs[0].bytes(&scratch).len(), 1000);
        runs.clear();
        assert_eq!(
            r.lend(1 << 20, 1, &mut scratch, &mut runs),
            40_000,
            "one run"
        );
        assert!(scratch.is_empty());
        runs.clear();
        let cut = r.lend(40_005, 16, &mut scratch, &mut runs);
        assert_eq!(cut, 40_005, "a ring run cut short");
        assert_eq!(scratch, vec![5; 5]);

        // A ring that wraps is lent in order, and at most RING_LEND_MAX of it is copied.
        let mut w = RecvBuffer::new(200_000, 4);
        let first: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert_eq!(w.insert(0, &first).advanced, 100_000);
        w.consume(90_000);
        // 90 000 more fit the 100 000-byte ring without growing it: they wrap round.
        let second: Vec<u8> = (0..90_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(w.insert(0, &second).advanced, 90_000);
        assert_eq!(w.allocated(), 100_000, "not grown");
        assert!(!w.peek_slices().1.is_empty(), "the readable bytes wrap");
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        let lent = w.lend(1 << 20, 16, &mut scratch, &mut runs);
        assert_eq!(lent, RING_LEND_MAX);
        let joined: Vec<u8> = runs
            .iter()
            .flat_map(|l| l.bytes(&scratch).to_vec())
            .collect();
        let want = [&first[90_000..], &second[..]].concat();
        assert_eq!(joined[..], want[..RING_LEND_MAX]);
        // A frame behind a ring run cut short is not lent: the bytes lent are the stream's
        // next ones, with no gap.
        let f = frame_with(&[9; 40_000], 0);
        w.adopt(0, &f, f.bytes()).expect("kept");
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        assert_eq!(w.lend(1 << 20, 16, &mut scratch, &mut runs), RING_LEND_MAX);
        assert_eq!(runs.len(), 1, "the ring's run alone");
        w.consume(100_000);
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        assert_eq!(w.lend(1 << 20, 16, &mut scratch, &mut runs), 40_000);
        assert!(matches!(runs[..], [Lent::Frame(..)]));

        // The cap reached exactly at a ring run's end: the frame behind it is next in the
        // stream and is lent; the ring run behind that is not.
        let mut e = RecvBuffer::new(400_000, 4);
        assert_eq!(e.insert(0, &[1; RING_LEND_MAX]).advanced, RING_LEND_MAX);
        let g = frame_with(&[2; 40_000], 0);
        e.adopt(0, &g, g.bytes()).expect("kept");
        assert_eq!(e.insert(0, &[3; 10]).advanced, 10);
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        assert_eq!(
            e.lend(1 << 20, 16, &mut scratch, &mut runs),
            RING_LEND_MAX + 40_000
        );
        assert!(matches!(runs[..], [Lent::Copied(..), Lent::Frame(..)]));
        // Runs already in `out` do not count against `max_runs`.
        let mut more: Vec<Lent> = (0..3).map(|_| Lent::Copied(0..0)).collect();
        assert_eq!(
            e.lend(1 << 20, 2, &mut scratch, &mut more),
            RING_LEND_MAX + 40_000
        );
        assert_eq!(more.len(), 5);
    }

    /// A large in-order payload stays in its frame, read in the order it came among the ring's
    /// runs; the frame is charged to the memory pool at its size and let go when read
    /// through. Out-of-order data, a small payload, one past the window or past twice the
    /// buffer's size in memory, and memory pressure each send the data to the ring instead.
    #[test]
    fn a_large_in_order_payload_stays_in_its_frame_until_read() {
        let pool = MemoryPool::new(1 << 20, 2 << 20);
        let mut r = RecvBuffer::new(100_000, 4).pooled(&pool);
        let a = frame_with(&[1; 40_000], 10_000);
        let ins = r.adopt(0, &a, &a.bytes()[..40_000]).expect("kept");
        assert_eq!((ins.advanced, ins.trimmed), (40_000, 0));
        assert_eq!(Arc::strong_count(&a), 2, "the connection holds the frame");
        assert_eq!(r.allocated(), 50_000, "charged at the frame's size");
        assert_eq!(pool.allocated(), 50_000);
        let b = frame_with(&[2; 20_000], 0);
        r.adopt(0, &b, b.bytes()).expect("kept behind the first");
        // A small one goes to the ring; a large one after it is kept again, behind it.
        let small = frame_with(&[3; 100], 1000);
        assert!(r.adopt(0, &small, &small.bytes()[..100]).is_none(), "small");
        assert_eq!(r.insert(0, &[3; 100]).advanced, 100);
        let c = frame_with(&[4; 30_000], 0);
        r.adopt(0, &c, c.bytes())
            .expect("kept behind the ring's bytes");
        assert_eq!(r.insert(0, &[5; 50]).advanced, 50);
        assert_eq!(r.readable(), 90_150);
        check_invariants(&r);
        let mut out = vec![0; 45_000];
        assert_eq!(r.peek(&mut out), 45_000);
        assert_eq!(r.read(&mut out), 45_000);
        assert!(out[..40_000].iter().all(|&x| x == 1) && out[40_000..].iter().all(|&x| x == 2));
        assert_eq!(Arc::strong_count(&a), 1, "read through: let go");
        assert_eq!(pool.allocated(), r.allocated());
        let mut rest = vec![0; 50_000];
        assert_eq!(r.read(&mut rest), 45_150, "in the order it came");
        let want: Vec<u8> = [vec![2; 15_000], vec![3; 100], vec![4; 30_000], vec![5; 50]].concat();
        assert_eq!(rest[..45_150], want[..]);
        assert_eq!(r.readable(), 0);
        check_invariants(&r);
        // Past the window, or past twice the buffer's size in memory.
        let mut small = RecvBuffer::new(60_000, 4);
        let big = frame_with(&[8; 61_000], 0);
        assert!(
            small.adopt(0, &big, big.bytes()).is_none(),
            "past the window"
        );
        let e = frame_with(&[8; 40_000], 40_001);
        assert!(
            small.adopt(0, &e, &e.bytes()[..40_000]).is_none(),
            "too little data for its frame"
        );
        // A ring left large by earlier data counts too.
        let mut grown = RecvBuffer::new(200_000, 4);
        grown.insert(0, &[1; 150_000]);
        grown.read(&mut vec![0; 150_000]);
        assert_eq!(grown.allocated(), 150_000, "a bulk-sized ring stays");
        let half = || frame_with(&[2; 50_000], 50_000);
        for _ in 0..2 {
            let f = half();
            grown.adopt(0, &f, &f.bytes()[..50_000]).expect("kept");
        }
        let f = half();
        assert!(grown.window() >= 50_000);
        assert!(
            grown.adopt(0, &f, &f.bytes()[..50_000]).is_none(),
            "450 000 bytes of memory for a 200 000-byte buffer"
        );
        // Out-of-order data waiting: the ring takes the next in-order data, to join it.
        assert!(r.insert(5_000, &[5; 10]).advanced == 0);
        let d = frame_with(&[6; 40_000], 0);
        assert!(
            r.adopt(0, &d, d.bytes()).is_none(),
            "out-of-order data waits"
        );
        drop(r);
        assert_eq!(pool.allocated(), 0, "everything given back");
        // Under pressure, nothing is kept.
        let tight = MemoryPool::new(1, 1 << 20);
        let mut other = RecvBuffer::new(100_000, 4).pooled(&tight);
        other.insert(0, &[7; 10]);
        assert!(tight.under_pressure());
        let mut p = RecvBuffer::new(100_000, 4).pooled(&tight);
        assert!(p.adopt(0, &d, d.bytes()).is_none(), "under pressure");
        assert!(RecvBuffer::new(100_000, 4)
            .adopt(0, &d, d.bytes())
            .is_some());
    }

    /// Large out-of-order payloads wait in their frames, as Linux's out-of-order queue keeps
    /// its skbs: the ranges (and so SACK) cover them, a duplicate changes nothing, and when
    /// the hole fills they are read from the frames, with no copy. A segment they cannot take
    /// (small, or overlapping them) first copies them into the ring, losing no byte.
    #[test]
    fn out_of_order_frames_wait_whole_until_the_hole_fills() {
        let s = stream(100_000);
        let pool = MemoryPool::new(1 << 20, 2 << 20);
        let mut r = RecvBuffer::new(100_000, 4).pooled(&pool);
        let (a, b, c) = (
            frame_with(&s[10_000..30_000], 0),
            frame_with(&s[30_000..50_000], 0),
            frame_with(&s[60_000..80_000], 0),
        );
        for (off, f) in [(30_000, &b), (10_000, &a), (60_000, &c)] {
            assert_eq!(r.adopt(off, f, f.bytes()), Some(Insert::default()));
        }
        assert_eq!(ranges(&r), [(60_000, 80_000), (10_000, 50_000)]);
        assert_eq!(r.held.len(), 3);
        assert_eq!(pool.allocated(), 60_000);
        check_invariants(&r);
        // A duplicate of held data, in a frame or not, is taken as held already.
        assert_eq!(r.adopt(10_000, &a, a.bytes()), None);
        assert_eq!(r.insert(35_000, &s[35_000..36_000]), Insert::default());
        assert_eq!(r.held.len(), 3, "not copied");
        // The retransmission fills the hole (and overlaps the first frame): readable at once,
        // the frames after it without a copy; RCV.NXT stops at the next hole.
        let ins = r.insert(0, &s[..12_000]);
        assert_eq!(ins.advanced, 50_000);
        assert_eq!(ranges(&r), [(10_000, 30_000)]);
        assert_eq!(r.chunked, 40_000, "two frames readable in place");
        assert_eq!(r.readable, 10_000, "the ring holds only the hole's bytes");
        check_invariants(&r);
        let mut out = vec![0; 50_000];
        assert_eq!(r.read(&mut out), 50_000);
        assert_eq!(out, s[..50_000]);
        assert_eq!(Arc::strong_count(&a), 1, "read through: let go");
        // A small out-of-order segment no frame carries: the frame goes to the ring first.
        assert_eq!(r.insert(5_000, &s[55_000..56_000]).advanced, 0);
        assert!(
            r.held.is_empty() && Arc::strong_count(&c) == 1,
            "copied, let go"
        );
        assert_eq!(ranges(&r), [(5_000, 6_000), (10_000, 30_000)]);
        assert_eq!(pool.allocated(), r.allocated());
        check_invariants(&r);
        // While out-of-order data is in the ring, frames are not kept.
        let d = frame_with(&s[80_000..100_000], 0);
        assert_eq!(r.adopt(30_000, &d, d.bytes()), None);
        r.insert(0, &s[50_000..55_000]);
        r.insert(0, &s[56_000..60_000]);
        assert_eq!(r.readable(), 30_000);
        // With no out-of-order data left, frames are held again; discarded, they are let go.
        let d = frame_with(&s[90_000..], 0);
        assert_eq!(r.adopt(10_000, &d, d.bytes()), Some(Insert::default()));
        assert_eq!(read_all(&mut r), s[50_000..80_000]);
        r.discard_ooo();
        assert_eq!(Arc::strong_count(&d), 1, "discarded: let go");
        assert_eq!(pool.allocated(), r.allocated());
        let e = frame_with(&s[80_000..], 0);
        assert_eq!(r.adopt(0, &e, e.bytes()).map(|i| i.advanced), Some(20_000));
        assert_eq!(read_all(&mut r), s[80_000..]);
        // In-order data past a frame held fills the next hole too, around the frame.
        let mut gap = RecvBuffer::new(100_000, 4);
        let h = frame_with(&s[20_000..40_000], 0);
        assert!(gap.adopt(20_000, &h, h.bytes()).is_some());
        assert_eq!(gap.adopt(0, &h, &h.bytes()[..0]), None, "nothing to keep");
        assert_eq!(gap.insert(0, &s[..50_000]).advanced, 50_000);
        assert_eq!(gap.chunked, 20_000, "the frame read in place");
        assert_eq!(read_all(&mut gap), s[..50_000]);
        // Out-of-order frames past the range limit are rejected; adjacent ones join a range.
        let mut one = RecvBuffer::new(100_000, 1);
        let (e, f, g) = (
            frame_with(&[1; 20_000], 0),
            frame_with(&[2; 20_000], 0),
            frame_with(&[3; 20_000], 0),
        );
        assert!(one.adopt(20_000, &e, e.bytes()).is_some());
        assert!(one.adopt(40_000, &f, f.bytes()).is_some(), "adjacent");
        assert!(one.adopt(70_000, &g, g.bytes()).unwrap().rejected);
        assert_eq!(ranges(&one), [(20_000, 60_000)]);
        drop(r);
        assert_eq!(pool.allocated(), 0, "everything given back");
    }

    /// Out-of-order data whose frame is too large to keep for it waits in a small copy from
    /// the pool, so that a large frame behind it still waits whole; read through, the copy
    /// goes back to the pool. Data too small for a pool buffer, or too large, goes to the
    /// ring.
    #[test]
    fn small_out_of_order_data_waits_in_a_pooled_copy() {
        let s = stream(80_000);
        let small = crate::rxbuf::FramePool::new(2048);
        let mut r = RecvBuffer::new(100_000, 4);
        assert_eq!(
            r.hold_copy(0, &s[..1448], &small),
            None,
            "in order: the ring's"
        );
        assert_eq!(
            r.hold_copy(1448, &s[1448..2896], &small),
            Some(Insert::default())
        );
        let big = frame_with(&s[2896..60_000], 0);
        assert!(
            r.adopt(2896, &big, big.bytes()).is_some(),
            "held behind the copy"
        );
        assert_eq!(r.held.len(), 2);
        assert_eq!(r.allocated(), 2048 + 57_104);
        assert_eq!(
            r.hold_copy(60_000, &s[60_000..60_100], &small),
            None,
            "too small"
        );
        assert_eq!(
            r.hold_copy(60_000, &s[60_000..63_000], &small),
            None,
            "too large"
        );
        check_invariants(&r);
        assert_eq!(r.insert(0, &s[..1448]).advanced, 60_000);
        assert_eq!(r.chunked, 60_000 - 1448, "both read in place");
        assert_eq!(read_all(&mut r), s[..60_000]);
        assert_eq!(small.idle(), 1, "the copy went back to its pool");
        assert_eq!(r.allocated(), 0);
    }

    /// Under memory pressure no frame is held, and the frames held stay: in-order data still
    /// reaches them and reads them in place, but an out-of-order segment that would copy them
    /// into the ring, which does not grow under pressure, is dropped instead.
    #[test]
    fn held_frames_stay_under_memory_pressure_and_the_ring_does_not_grow_for_them() {
        let tight = MemoryPool::new(100_000, 1 << 20);
        let mut r = RecvBuffer::new(100_000, 4).pooled(&tight);
        let f = frame_with(&[1; 40_000], 0);
        assert!(r.adopt(2_000, &f, f.bytes()).is_some());
        let g = frame_with(&[2; 40_000], 0);
        assert!(r.adopt(42_000, &g, g.bytes()).is_some());
        assert_eq!(ranges(&r), [(2_000, 82_000)]);
        let mut other = RecvBuffer::new(100_000, 4).pooled(&tight);
        other.insert(0, &[3; 30_000]);
        assert!(tight.under_pressure());
        let h = frame_with(&[5; 40_000], 0);
        assert_eq!(r.adopt(82_000, &h, &h.bytes()[..5_000]), None, "none held");
        let small = crate::rxbuf::FramePool::new(2048);
        assert_eq!(r.hold_copy(90_000, &[5; 1448], &small), None, "nor copied");
        let ins = r.insert(90_000, &[5; 1448]);
        assert!(
            ins.pruned && r.held.len() == 2,
            "dropped, not copied into the ring"
        );
        check_invariants(&r);
        let ins = r.insert(0, &[4; 2_000]);
        assert_eq!(ins.advanced, 82_000, "in order, the frames read in place");
        assert!(!r.has_ooo() && r.held.is_empty());
        assert_eq!(tight.allocated(), r.allocated() + other.allocated());
        check_invariants(&r);
    }

    #[test]
    fn send_new_is_empty() {
        let s = SendBuffer::new(8);
        assert_eq!((s.capacity(), s.len(), s.free()), (8, 0, 8));
        assert!(s.is_empty());
        assert_eq!(s.slices_at(0, 8), (&[][..], &[][..]));
    }

    #[test]
    fn send_small_ring_freed_when_drained_large_kept() {
        let mut s = SendBuffer::new(1 << 20);
        s.write(&[7; 10_000]);
        assert!(s.allocated() >= 10_000);
        s.consume(9_999);
        assert!(s.allocated() > 0, "one byte still unacknowledged");
        s.consume(1);
        assert_eq!(s.allocated(), 0);
        assert_eq!(s.write(&[1, 2, 3]), 3);
        assert_eq!(joined(s.slices_at(0, 3)), [1, 2, 3]);

        s.consume(3);
        s.write(&vec![9; RELEASE_MAX + 1]);
        let big = s.allocated();
        s.consume(RELEASE_MAX + 1);
        assert_eq!(s.allocated(), big, "a bulk-sized ring stays");
    }

    #[test]
    fn send_write_up_to_free() {
        let mut s = SendBuffer::new(8);
        assert_eq!(s.write(b"hello"), 5);
        assert_eq!(s.write(b"world"), 3);
        assert_eq!(s.write(b"!"), 0);
        assert_eq!((s.len(), s.free()), (8, 0));
        let mut out = [0; 16];
        assert_eq!(s.read_at(0, &mut out), 8);
        assert_eq!(&out[..8], b"hellowor");
    }

    #[test]
    fn send_read_at_offsets_and_short_out() {
        let mut s = SendBuffer::new(16);
        s.write(b"abcdefgh");
        let mut out = [0; 3];
        assert_eq!(s.read_at(2, &mut out), 3);
        assert_eq!(&out, b"cde");
        assert_eq!(s.read_at(6, &mut out), 2);
        assert_eq!(&out[..2], b"gh");
        assert_eq!(s.read_at(8, &mut out), 0);
        assert_eq!(s.read_at(100, &mut out), 0);
        assert_eq!(s.read_at(0, &mut []), 0);
    }

    #[test]
    fn send_wraps_around() {
        let mut s = SendBuffer::new(8);
        s.write(b"012345");
        s.consume(4);
        assert_eq!(s.write(b"6789ab"), 6);
        assert_eq!(s.len(), 8);
        let (a, b) = s.slices_at(0, 8);
        assert_eq!((a, b), (&b"4567"[..], &b"89ab"[..]));
        assert_eq!(s.slices_at(3, 2), (&b"7"[..], &b"8"[..]));
        assert_eq!(s.slices_at(1, 2), (&b"56"[..], &[][..]));
        assert_eq!(s.slices_at(5, 10), (&b"9ab"[..], &[][..]));
        assert_eq!(s.slices_at(6, 10), (&b"ab"[..], &[][..]));
        let mut out = [0; 8];
        assert_eq!(s.read_at(1, &mut out), 7);
        assert_eq!(&out[..7], b"56789ab");
        s.consume(7);
        assert_eq!(s.slices_at(0, 8), (&b"b"[..], &[][..]));
    }

    /// A stream position names the same byte for the buffer's life: slices from it while it is
    /// held, none once acknowledged or discarded, nor for a range past what was written.
    #[test]
    fn send_positions_outlive_consumption_and_discard() {
        let mut s = SendBuffer::new(16);
        s.write(b"abcdefgh");
        let pos = s.position(2);
        assert_eq!(pos, 2);
        assert_eq!(s.slices_from(pos, 3).map(joined), Some(b"cde".to_vec()));
        assert_eq!(s.slices_from(pos, 7), None, "past what was written");
        s.consume(2);
        assert_eq!(s.position(0), 2);
        assert_eq!(s.slices_from(pos, 3).map(joined), Some(b"cde".to_vec()));
        s.consume(1);
        assert_eq!(s.slices_from(pos, 3), None, "its first byte acknowledged");
        assert_eq!(
            s.slices_from(s.position(0), 5).map(joined),
            Some(b"defgh".to_vec())
        );
        let end = s.position(s.len());
        s.discard();
        assert_eq!(s.position(0), end, "discarded bytes keep their positions");
        assert_eq!(s.slices_from(end - 1, 1), None);
        s.write(b"xy");
        assert_eq!(s.slices_from(end, 2).map(joined), Some(b"xy".to_vec()));
    }

    /// A reservation hands one writer the free run at the tail: what it fills joins the data
    /// at the commit, in order after what was written before; meanwhile other writes take
    /// nothing (and are woken at the commit), and the ring is neither moved nor freed.
    #[test]
    fn a_reservation_is_filled_in_place_and_committed() {
        let mut s = SendBuffer::new(1 << 20);
        s.write(b"head");
        let (at, room) = s.reserve(10_000).expect("room");
        assert_eq!(room, MIN_RING - 4, "the ring has room: it does not grow");
        assert!(s.reserve(1).is_none(), "one reservation at a time");
        assert_eq!(s.write(b"other"), 0, "writes wait for the commit");
        assert_eq!(s.room(), 0);
        // SAFETY: the reservation gives these bytes to this writer until the commit.
        unsafe { std::slice::from_raw_parts_mut(at, room)[..3].copy_from_slice(b"abc") };
        s.consume(4);
        assert!(s.allocated() > 0, "emptied while reserved: not freed");
        assert_eq!(
            s.commit(3),
            (true, true),
            "kept; the refused writer is woken"
        );
        assert_eq!(joined(s.slices_at(0, 3)), b"abc".to_vec());
        assert_eq!(s.write(b"de"), 2);
        assert_eq!(joined(s.slices_at(0, 5)), b"abcde".to_vec());
        assert_eq!(s.commit(1), (false, false), "no reservation is open");

        // At most the reserved length joins; nothing filled frees a small ring again.
        let mut t = SendBuffer::new(1 << 20);
        let (_, room) = t.reserve(100).expect("room");
        assert_eq!((room, t.allocated()), (100, MIN_RING), "a first ring");
        assert_eq!(t.commit(0), (true, false));
        assert_eq!(t.allocated(), 0, "an idle connection keeps no ring");
        t.reserve(100).expect("room");
        t.commit(500);
        assert_eq!(t.len(), 100);

        // The ring grows only once full: a first ring of what the fill may take, up to
        // FIRST_FILL_RING, then by doubling; bytes that never come cost no growth.
        let mut g = SendBuffer::new(1 << 20);
        let (_, room) = g.reserve(1 << 20).expect("room");
        assert_eq!((room, g.allocated()), (FIRST_FILL_RING, FIRST_FILL_RING));
        g.commit(10_000);
        let (_, room) = g.reserve(1 << 20).expect("room");
        assert_eq!(room, FIRST_FILL_RING - 10_000, "what the ring has, no more");
        g.commit(0);
        assert_eq!(
            g.allocated(),
            FIRST_FILL_RING,
            "an empty fill grows nothing"
        );
        g.reserve(1 << 20).expect("room");
        g.commit(FIRST_FILL_RING - 10_000);
        let (_, room) = g.reserve(1 << 20).expect("room");
        let doubled = 2 * FIRST_FILL_RING;
        assert_eq!((room, g.allocated()), (doubled - FIRST_FILL_RING, doubled));
        g.commit(room);
        let (_, room) = g.reserve(1 << 20).expect("room");
        assert_eq!(
            (room, g.allocated()),
            (doubled, 2 * doubled),
            "full: doubled"
        );
        g.commit(room);
        g.consume(2 * doubled);
        assert_eq!(2 * doubled, RELEASE_MAX);
        assert_eq!(
            g.allocated(),
            0,
            "drained, and no larger than RELEASE_MAX: freed"
        );
        // A small one drains to nothing.
        let mut h = SendBuffer::new(1 << 20);
        h.reserve(1 << 20).expect("room");
        h.commit(10_000);
        h.consume(10_000);
        assert_eq!(h.allocated(), 0, "drained: freed, as after a write");

        // The run stops at the ring's end; the next reservation starts at its front.
        let mut w = SendBuffer::new(MIN_RING);
        w.write(&[1; 3000]);
        w.consume(2000);
        let (_, room) = w.reserve(MIN_RING).expect("room");
        assert_eq!(room, MIN_RING - 3000, "to the end of the ring");
        w.commit(room);
        let (_, room) = w.reserve(MIN_RING).expect("room");
        assert_eq!(room, 2000, "then from the front, up to SND.UNA");
        w.commit(room);
        assert_eq!((w.len(), w.allocated()), (MIN_RING, MIN_RING));
        assert!(w.reserve(1).is_none(), "full");

        // Discarded meanwhile (the connection ended): what was filled is dropped, and the
        // ring is freed at the commit.
        let mut d = SendBuffer::new(1 << 20);
        d.write(&[1; 200]);
        d.reserve(100).expect("room");
        d.discard();
        assert!(d.allocated() > 0, "not freed while reserved");
        assert_eq!(d.commit(100), (false, false));
        assert_eq!((d.len(), d.allocated()), (0, 0));

        // Pinned: the reservation takes only what the ring's present size leaves.
        let mut p = SendBuffer::new(1 << 20);
        p.write(&[1; 1000]);
        p.pin(p.position(0), 1000).expect("held");
        let (_, room) = p.reserve(1 << 20).expect("room");
        assert_eq!(room, MIN_RING - 1000);
        assert!(!p.unpin(), "the reservation still holds the ring");
        assert_eq!(p.commit(room), (true, true), "a bigger ring was wanted");
    }

    /// While pinned the ring neither grows nor is freed: a write takes what its present size
    /// leaves, and asks to be woken when the pin ends; the pinned bytes stay where `pin` said.
    #[test]
    fn a_pinned_send_ring_does_not_move() {
        let mut s = SendBuffer::new(1 << 20);
        s.write(&[1; 3000]);
        let ring = s.allocated();
        assert_eq!(ring, MIN_RING);
        let parts = s.pin(s.position(0), 3000).expect("held");
        assert_eq!(parts[0].1 + parts[1].1, 3000);
        assert_eq!(s.write(&[2; 2000]), ring - 3000, "no growth while pinned");
        assert_eq!(s.allocated(), ring);
        assert_eq!(s.write(&[3; 10]), 0);
        // SAFETY: the ring is pinned: the addresses `pin` gave are still the bytes' own.
        let seen = unsafe { std::slice::from_raw_parts(parts[0].0, parts[0].1) };
        assert!(seen.iter().all(|&b| b == 1));
        assert_eq!(s.room(), 0, "no room while pinned");
        assert!(s.free() > 0, "though the buffer's size has some");
        assert!(s.unpin(), "a write was held short");
        assert!(!s.unpin(), "and is woken once");
        assert_eq!(s.room(), s.free());
        // A readiness check that finds no room asks for the wakeup as a write does.
        let mut w = SendBuffer::new(1 << 20);
        w.write(&[1; MIN_RING]);
        w.pin(w.position(0), 10).expect("held");
        assert_eq!(w.room(), 0);
        assert!(w.unpin(), "the writer told there was no room is woken");
        assert_eq!(s.write(&[4; 2000]), 2000, "it grows again");
        assert!(s.allocated() > ring);

        let mut t = SendBuffer::new(1 << 20);
        t.write(&[5; 100]);
        t.pin(t.position(0), 100).expect("held");
        t.consume(100);
        t.release();
        assert_eq!(t.allocated(), MIN_RING, "not freed while pinned");
        assert!(!t.unpin());
        t.release();
        assert_eq!(t.allocated(), 0);
        assert_eq!(t.pin(0, 1), None, "acknowledged bytes cannot be pinned");

        // Acknowledged while pinned: their room is free again, but a write, wrapping round
        // the ring, stops short of them while the device may still read them.
        let mut u = SendBuffer::new(1 << 20);
        u.write(&[1; 1000]);
        let parts = u.pin(u.position(500), 500).expect("held");
        u.consume(1000);
        assert_eq!(
            u.write(&[9; 8192]),
            MIN_RING - 500,
            "up to the pinned bytes"
        );
        // SAFETY: still pinned.
        let seen = unsafe { std::slice::from_raw_parts(parts[0].0, parts[0].1) };
        assert!(seen.len() == 500 && seen.iter().all(|&b| b == 1));
        assert_eq!(
            joined(u.slices_at(0, MIN_RING - 500)),
            vec![9; MIN_RING - 500]
        );
        // Two pins: the writer is woken when the last ends.
        let parts2 = u.pin(u.position(0), 10).expect("held");
        assert!(!parts2.is_empty());
        assert!(!u.unpin(), "one pin left");
        assert!(u.unpin());

        // A second pin, earlier in the stream, is the one writes stop short of.
        let mut v = SendBuffer::new(1 << 20);
        v.write(&[1; 2000]);
        v.pin(v.position(1000), 100).expect("held");
        v.pin(v.position(200), 100).expect("held");
        v.consume(2000);
        assert_eq!(
            v.write(&[9; 8192]),
            MIN_RING - 2000 + 200,
            "up to the earlier pin"
        );
    }

    #[test]
    fn send_consume_clamps() {
        let mut s = SendBuffer::new(4);
        s.write(b"abc");
        s.consume(10);
        assert!(s.is_empty());
        assert_eq!(s.free(), 4);
        s.consume(usize::MAX);
        assert_eq!(s.write(b"wxyz"), 4);
        assert_eq!(joined(s.slices_at(0, 4)), b"wxyz");
    }

    #[test]
    fn send_extreme_arguments() {
        let mut s = SendBuffer::new(4);
        s.write(b"abcd");
        assert_eq!(s.slices_at(usize::MAX, usize::MAX), (&[][..], &[][..]));
        assert_eq!(joined(s.slices_at(1, usize::MAX)), b"bcd");
        assert_eq!(s.read_at(usize::MAX, &mut [0; 4]), 0);

        let mut z = SendBuffer::new(0);
        assert_eq!((z.capacity(), z.free()), (0, 0));
        assert_eq!(z.write(b"x"), 0);
        assert_eq!(z.read_at(0, &mut [0; 1]), 0);
        assert_eq!(z.slices_at(0, 1), (&[][..], &[][..]));
        z.consume(1);
        assert!(z.is_empty());
    }

    #[test]
    fn an_autotuned_send_buffer_grows_on_demand_up_to_its_size_and_a_set_size_ends_it() {
        let mut s = SendBuffer::new(100_000);
        s.autotune(10_000);
        assert!(s.autotuned());
        assert_eq!((s.capacity(), s.free()), (10_000, 10_000));
        assert_eq!(s.write(&[7; 30_000]), 10_000);
        assert!(s.allocated() <= 10_000, "the ring stays within the bound");
        assert!(!s.expand(5_000), "never shrinks");
        assert!(s.expand(40_000));
        assert_eq!((s.capacity(), s.free()), (40_000, 30_000));
        assert!(s.expand(1 << 30));
        assert_eq!(s.capacity(), 100_000, "never past its size");
        assert!(!s.expand(1 << 30));
        s.set_capacity(20_000);
        assert!(!s.autotuned());
        assert_eq!(s.capacity(), 20_000);
        assert!(!s.expand(90_000), "a set size is not tuned");
        assert_eq!(s.free(), 10_000);
    }

    #[test]
    fn the_memory_pool_is_charged_for_every_ring_and_its_pressure_stops_growth() {
        let pool = MemoryPool::new(64 * 1024, 1 << 20);
        let mut s = SendBuffer::new(1 << 20).pooled(&pool);
        s.autotune(100_000);
        let mut r = RecvBuffer::new(1 << 20, 4).pooled(&pool);
        assert_eq!(pool.allocated(), 0, "nothing allocated yet");
        s.write(&[1; 50_000]);
        r.insert(0, &[2; 20_000]);
        assert_eq!(pool.allocated(), s.allocated() + r.allocated());
        assert!(pool.under_pressure() && !pool.exhausted());
        // Under pressure: no autotuning, no out-of-order data, and the window offered is what
        // the ring already has; in-order data within it is still taken.
        assert!(!s.expand(400_000));
        let ooo = r.insert(10_000, &[3; 100]);
        assert!(ooo.pruned && ooo.advanced == 0);
        assert!(r.offer() < r.window());
        assert_eq!(r.offer(), r.allocated() - r.readable());
        // The ring is full and may not grow: in-order data waits for a read (its sender
        // sends it again), then fits.
        assert!(r.insert(0, &[4; 100]).pruned);
        let mut out = vec![0; 30_000];
        assert_eq!(r.read(&mut out[..10_000]), 10_000);
        assert_eq!(r.insert(0, &[4; 100]).advanced, 100, "RCV.NXT is offset 0");
        // Freed rings are given back, dropped ones too.
        s.consume(50_000);
        r.read(&mut out);
        drop(s);
        assert_eq!(pool.allocated(), r.allocated());
        drop(r);
        assert_eq!(pool.allocated(), 0);
        assert!(!pool.under_pressure());
    }

    #[test]
    fn send_randomized_against_model() {
        send_random_run(0x5eed_0001, 97, 1);
    }

    /// The buffer grows from nothing to its limit while its data wraps around the ring.
    #[test]
    fn send_randomized_while_growing() {
        send_random_run(0x5eed_0002, 50_000, 400);
    }

    fn send_random_run(seed: u64, cap: usize, scale: usize) {
        let mut rng = XorShift(seed);
        let mut s = SendBuffer::new(cap);
        let mut model = VecDeque::new();
        let mut next = 0u8;
        for _ in 0..20_000 {
            match rng.below(3) {
                0 => {
                    let data: Vec<u8> = (0..rng.below(60 * scale))
                        .map(|_| {
                            next = next.wrapping_add(1);
                            next
                        })
                        .collect();
                    let n = s.write(&data);
                    assert_eq!(n, data.len().min(cap - model.len()));
                    model.extend(&data[..n]);
                    next = next.wrapping_sub((data.len() - n) as u8);
                }
                1 => {
                    let n = rng.below(60 * scale);
                    s.consume(n);
                    model.drain(..n.min(model.len()));
                }
                _ => {
                    let off = rng.below(100 * scale);
                    let len = rng.below(100 * scale);
                    let want: Vec<u8> = model.iter().skip(off).take(len).copied().collect();
                    assert_eq!(joined(s.slices_at(off, len)), want);
                    let mut out = vec![0; len];
                    let n = s.read_at(off, &mut out);
                    assert_eq!(&out[..n], &want[..]);
                }
            }
            assert_eq!(s.len(), model.len());
        }
    }

    #[test]
    fn recv_in_order() {
        let mut r = RecvBuffer::new(16, 4);
        assert_eq!((r.capacity(), r.readable(), r.window()), (16, 0, 16));
        let ins = r.insert(0, b"hello");
        assert_eq!(
            ins,
            Insert {
                advanced: 5,
                ..Insert::default()
            }
        );
        assert_eq!(r.insert(0, b" world").advanced, 6);
        assert_eq!((r.readable(), r.window()), (11, 5));
        assert!(!r.has_ooo());
        assert_eq!(joined(r.peek_slices()), b"hello world");
        let mut out = [0; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"hell");
        assert_eq!(read_all(&mut r), b"o world");
        assert_eq!((r.readable(), r.window()), (0, 16));
        assert_eq!(r.read(&mut out), 0);
    }

    #[test]
    fn recv_small_ring_freed_when_read_but_not_with_ooo_data() {
        let mut r = RecvBuffer::new(1 << 20, 4);
        r.insert(0, &[1; 100]);
        r.insert(200, &[2; 10]);
        r.consume(100);
        assert!(r.allocated() > 0, "out-of-order data is held");
        r.insert(0, &[3; 200]);
        assert_eq!(r.readable(), 210);
        r.consume(210);
        assert_eq!(r.allocated(), 0);
        r.insert(0, b"ab");
        assert_eq!(read_all(&mut r), b"ab");

        r.insert(0, &vec![5; RELEASE_MAX + 1]);
        let big = r.allocated();
        r.consume(RELEASE_MAX + 1);
        assert_eq!(r.allocated(), big, "a bulk-sized ring stays");
    }

    #[test]
    fn recv_wraps_around() {
        let mut r = RecvBuffer::new(8, 4);
        r.insert(0, b"abcdef");
        r.consume(5);
        assert_eq!(r.window(), 7);
        // Out-of-order bytes land across the end of the ring.
        assert_eq!(r.insert(3, b"jkl").advanced, 0);
        assert_eq!(ranges(&r), [(3, 6)]);
        assert_eq!(r.insert(0, b"ghi").advanced, 6);
        assert_eq!(r.peek_slices(), (&b"fgh"[..], &b"ijkl"[..]));
        assert_eq!(read_all(&mut r), b"fghijkl");
        // Drained, the ring was freed: the next data starts a new one.
        assert_eq!(r.allocated(), 0);
        assert_eq!(r.insert(0, b"01234567").advanced, 8);
        assert_eq!(joined(r.peek_slices()), b"01234567");
        r.consume(2);
        assert_eq!(read_all(&mut r), b"234567");
    }

    #[test]
    fn recv_out_of_order_then_fill() {
        let mut r = RecvBuffer::new(32, 4);
        assert_eq!(r.insert(5, b"fghij").advanced, 0);
        assert!(r.has_ooo());
        assert_eq!(r.readable(), 0);
        assert_eq!(r.window(), 32);
        assert_eq!(ranges(&r), [(5, 10)]);
        assert_eq!(r.insert(0, b"abcde").advanced, 10);
        assert!(!r.has_ooo());
        assert_eq!(read_all(&mut r), b"abcdefghij");
    }

    #[test]
    fn recv_duplicates() {
        let mut r = RecvBuffer::new(32, 4);
        r.insert(4, b"efgh");
        let ins = r.insert(4, b"efgh");
        assert_eq!(ins, Insert::default());
        r.insert(5, b"fg");
        assert_eq!(ranges(&r), [(4, 8)]);
        r.insert(0, b"abcd");
        r.insert(0, b"ab");
        assert_eq!(r.insert(0, b"").advanced, 0);
        assert_eq!(read_all(&mut r), b"abcdefghab");
    }

    #[test]
    fn recv_overlaps() {
        let mut r = RecvBuffer::new(32, 4);
        let s = stream(20);
        r.insert(4, &s[4..8]);
        r.insert(6, &s[6..12]);
        assert_eq!(ranges(&r), [(4, 12)]);
        r.insert(2, &s[2..5]);
        assert_eq!(ranges(&r), [(2, 12)]);
        r.insert(1, &s[1..14]);
        assert_eq!(ranges(&r), [(1, 14)]);
        assert_eq!(r.insert(0, &s[0..3]).advanced, 14);
        assert_eq!(read_all(&mut r), &s[..14]);
    }

    #[test]
    fn recv_adjacent_ranges_merge() {
        let mut r = RecvBuffer::new(32, 4);
        r.insert(2, b"cd");
        r.insert(6, b"gh");
        r.insert(4, b"ef");
        assert_eq!(ranges(&r), [(2, 8)]);
        r.insert(8, b"i");
        assert_eq!(ranges(&r), [(2, 9)]);
    }

    #[test]
    fn recv_hole_filled_joins_several_ranges() {
        let mut r = RecvBuffer::new(64, 8);
        let s = stream(40);
        for (a, b) in [(30, 35), (5, 10), (20, 25), (12, 15)] {
            assert_eq!(r.insert(a, &s[a..b]).advanced, 0);
        }
        r.insert(10, &s[10..12]);
        r.insert(15, &s[15..20]);
        let mut sorted = ranges(&r);
        sorted.sort();
        assert_eq!(sorted, [(5, 25), (30, 35)]);
        assert_eq!(r.insert(0, &s[0..5]).advanced, 25);
        // The remaining range is now relative to the new RCV.NXT.
        assert_eq!(ranges(&r), [(5, 10)]);
        assert_eq!(read_all(&mut r), &s[..25]);
        assert_eq!(r.insert(0, &s[25..30]).advanced, 10);
        assert_eq!(read_all(&mut r), &s[25..35]);
        assert!(!r.has_ooo());
    }

    #[test]
    fn recv_fill_spanning_several_ranges_at_once() {
        let mut r = RecvBuffer::new(64, 8);
        let s = stream(30);
        r.insert(3, &s[3..5]);
        r.insert(8, &s[8..9]);
        r.insert(12, &s[12..20]);
        r.insert(25, &s[25..27]);
        assert_eq!(r.insert(0, &s[0..13]).advanced, 20);
        assert_eq!(ranges(&r), [(5, 7)]);
        assert_eq!(read_all(&mut r), &s[..20]);
    }

    #[test]
    fn recv_trims_at_window_edge() {
        let mut r = RecvBuffer::new(8, 4);
        let ins = r.insert(0, b"0123456789");
        assert_eq!((ins.advanced, ins.trimmed, ins.rejected), (8, 2, false));
        assert_eq!(r.window(), 0);
        assert_eq!(r.insert(0, b"x").trimmed, 1);
        r.consume(3);
        let ins = r.insert(1, b"abcd");
        assert_eq!((ins.advanced, ins.trimmed), (0, 2));
        assert_eq!(ranges(&r), [(1, 3)]);
        let ins = r.insert(3, b"zz");
        assert_eq!((ins.advanced, ins.trimmed), (0, 2));
        assert_eq!(r.insert(usize::MAX, b"zz").trimmed, 2);
        assert_eq!(r.insert(0, b"q").advanced, 3);
        assert_eq!(read_all(&mut r), b"34567qab");
    }

    #[test]
    fn recv_range_limit() {
        let mut r = RecvBuffer::new(64, 2);
        r.insert(10, b"k");
        r.insert(20, b"u");
        let ins = r.insert(30, b"e");
        assert!(ins.rejected);
        assert_eq!(ins.advanced, 0);
        assert!(r.insert(5, b"f").rejected);
        // Growing an existing range, or filling the hole at 0, needs no new range.
        assert!(!r.insert(11, b"l").rejected);
        assert!(!r.insert(15, b"abcde").rejected);
        let mut sorted = ranges(&r);
        sorted.sort();
        assert_eq!(sorted, [(10, 12), (15, 21)]);
        assert_eq!(r.insert(0, b"0123").advanced, 4);
        // A rejected insert still reports what lay beyond the window.
        let ins = r.insert(50, &[7; 20]);
        assert!(ins.rejected);
        assert_eq!(ins.trimmed, 10);

        let mut none = RecvBuffer::new(16, 0);
        assert!(none.insert(1, b"x").rejected);
        assert_eq!(none.insert(0, b"ab").advanced, 2);
        assert!(!none.has_ooo());
    }

    #[test]
    fn recv_sack_recency_order() {
        let mut r = RecvBuffer::new(128, 8);
        r.insert(10, b"a");
        r.insert(30, b"b");
        r.insert(20, b"c");
        assert_eq!(ranges(&r), [(20, 21), (30, 31), (10, 11)]);
        // A duplicate still marks its range as the most recent (RFC 2018 §4).
        r.insert(10, b"a");
        assert_eq!(ranges(&r), [(10, 11), (20, 21), (30, 31)]);
        r.insert(31, b"d");
        assert_eq!(ranges(&r), [(30, 32), (10, 11), (20, 21)]);
        // A merge takes the newest position and drops the ranges it absorbed.
        r.insert(11, &[0; 9]);
        assert_eq!(ranges(&r), [(10, 21), (30, 32)]);
        assert_eq!(r.ooo_ranges().take(1).collect::<Vec<_>>(), [(10, 21)]);
        assert_eq!(r.insert(0, &[0; 10]).advanced, 21);
        assert_eq!(ranges(&r), [(9, 11)]);
    }

    #[test]
    fn recv_zero_length_inserts() {
        let mut r = RecvBuffer::new(8, 2);
        assert_eq!(r.insert(0, b""), Insert::default());
        assert_eq!(r.insert(3, b""), Insert::default());
        assert_eq!(r.insert(100, b""), Insert::default());
        assert!(!r.has_ooo());
        r.insert(2, b"c");
        r.insert(5, b"f");
        assert_eq!(r.insert(4, b""), Insert::default());
        assert_eq!(ranges(&r), [(5, 6), (2, 3)]);
    }

    #[test]
    fn recv_consume_clamps_and_zero_capacity() {
        let mut r = RecvBuffer::new(4, 2);
        r.insert(0, b"ab");
        r.consume(usize::MAX);
        assert_eq!((r.readable(), r.window()), (0, 4));
        assert_eq!(r.read(&mut []), 0);

        let mut z = RecvBuffer::new(0, 2);
        let ins = z.insert(0, b"abc");
        assert_eq!((ins.advanced, ins.trimmed), (0, 3));
        assert_eq!(z.window(), 0);
        assert_eq!(z.read(&mut [0; 4]), 0);
        assert_eq!(z.peek_slices(), (&[][..], &[][..]));
        z.consume(1);
        assert!(!z.has_ooo());
    }

    /// Random overlapping pieces of a known stream in random order, with random reads: the bytes
    /// read equal the stream, and the ranges and counters match a per-byte model. Frames are
    /// kept among the ring's runs, not only before them.
    #[test]
    fn recv_randomized_stream() {
        let (interleaved, promoted) = recv_random_runs(1..=20, 50, 400, 20_000);
        assert!(interleaved > 0, "no frame was kept behind the ring's data");
        assert!(promoted > 0, "no frame held out of order became readable");
    }

    /// The same while the ring grows from nothing towards limits above its first size.
    #[test]
    fn recv_randomized_stream_while_growing() {
        recv_random_runs(1..=3, 4_500, 8_000, 60_000);
    }

    /// How many kept frames the readable queue holds.
    fn frames_queued(r: &RecvBuffer) -> usize {
        r.queue
            .iter()
            .filter(|p| matches!(p, Part::Frame(_)))
            .count()
    }

    /// Runs the model over `seeds`; returns at how many steps a kept frame sat behind a run of
    /// the ring's (the case the queue of runs is there for), and how many frames held out of
    /// order became readable in place.
    fn recv_random_runs(
        seeds: std::ops::RangeInclusive<u64>,
        min_cap: usize,
        spread: usize,
        stream_len: usize,
    ) -> (usize, usize) {
        let (mut interleaved, mut promoted) = (0, 0);
        for seed in seeds {
            let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let cap = min_cap + rng.below(spread);
            let max_ranges = rng.below(9);
            let s = stream(stream_len);
            let pool = MemoryPool::new(usize::MAX / 4, usize::MAX / 2);
            let mut r = RecvBuffer::new(cap, max_ranges).pooled(&pool);
            // Pieces of a quarter of the buffer down to half that are copied.
            let copies = crate::rxbuf::FramePool::new((cap / 4).max(8));
            let mut have = vec![false; s.len()];
            let mut nxt: usize = 0; // absolute RCV.NXT
            let mut got = Vec::new();
            let mut steps = 0;
            while got.len() < s.len() {
                steps += 1;
                assert!(steps < 1_000_000, "seed {seed} stalled");
                if rng.below(4) == 0 {
                    let mut out = vec![0; rng.below(cap + 10)];
                    let mut peeked = vec![0; out.len()];
                    let p = r.peek(&mut peeked);
                    let n = r.read(&mut out);
                    assert_eq!(
                        &peeked[..p],
                        &out[..n],
                        "seed {seed}: a peek reads the same"
                    );
                    got.extend_from_slice(&out[..n]);
                } else {
                    // A piece near the window, possibly starting before RCV.NXT or beyond the
                    // window; the part before RCV.NXT is trimmed as a TCP receiver would.
                    let lo = nxt.saturating_sub(20);
                    let start = (lo + rng.below(cap + 40)).min(s.len());
                    let end = (start + rng.below(cap / 3 + 2)).min(s.len());
                    let from = start.max(nxt);
                    let data = if from < end { &s[from..end] } else { &[][..] };
                    let off = from - nxt;
                    let window = r.window();
                    let limit = nxt + window;
                    let kept_end = end.clamp(from, limit.max(from));
                    let needs_new = from > nxt
                        && kept_end > from
                        && !(from - 1..kept_end + 1).any(|i| i < have.len() && have[i]);
                    let full = r.ranges.len() >= max_ranges;
                    // Half the time the data comes in a frame the buffer may keep (somewhere
                    // in it, the frame at most three times its size: half the time too large
                    // to keep), in order or not.
                    let frames_before = frames_queued(&r);
                    let kept = (!data.is_empty() && rng.below(2) == 0)
                        .then(|| {
                            let lead = rng.below(100);
                            let extra = rng.below(2 * data.len() + 1);
                            let mut f = RxFrame::new(lead + data.len() + extra);
                            f.bytes_mut()[lead..lead + data.len()].copy_from_slice(data);
                            let f = Arc::new(f);
                            r.adopt(off, &f, &f.bytes()[lead..lead + data.len()])
                        })
                        .flatten();
                    let in_order_frame = usize::from(kept.is_some() && off == 0);
                    // Else, out of order and small, it may wait in a pooled copy.
                    let kept = kept.or_else(|| {
                        (off > 0 && rng.below(2) == 0)
                            .then(|| r.hold_copy(off, data, &copies))
                            .flatten()
                    });
                    let ins = kept.unwrap_or_else(|| r.insert(off, data));
                    promoted += frames_queued(&r) - frames_before - in_order_frame;
                    assert_eq!(ins.trimmed, data.len() - (kept_end - from), "seed {seed}");
                    assert_eq!(ins.rejected, needs_new && full, "seed {seed}");
                    if !ins.rejected {
                        have[from..kept_end].iter_mut().for_each(|h| *h = true);
                    }
                    let mut new_nxt = nxt;
                    while new_nxt < have.len() && have[new_nxt] {
                        new_nxt += 1;
                    }
                    assert_eq!(ins.advanced, new_nxt - nxt, "seed {seed}");
                    nxt = new_nxt;
                }
                check_invariants(&r);
                interleaved += usize::from(
                    r.queue
                        .iter()
                        .skip_while(|p| !matches!(p, Part::Ring(_)))
                        .any(|p| matches!(p, Part::Frame(_))),
                );
                assert_eq!(pool.allocated(), r.allocated(), "seed {seed}");
                // The ranges are exactly the runs of received bytes past RCV.NXT.
                let mut want = Vec::new();
                let stop = (nxt + r.window()).min(have.len());
                let mut i = nxt;
                while i < stop {
                    if have[i] {
                        let a = i;
                        while i < stop && have[i] {
                            i += 1;
                        }
                        want.push((a - nxt, i - nxt));
                    }
                    i += 1;
                }
                let mut sorted = ranges(&r);
                sorted.sort();
                assert_eq!(sorted, want, "seed {seed}");
                assert_eq!(got.len() + r.readable(), nxt);
            }
            assert_eq!(got, s, "seed {seed}");
        }
        (interleaved, promoted)
    }
}
