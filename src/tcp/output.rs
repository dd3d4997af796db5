//! Segment output: what to send now, segmentation at the MSS, Nagle, sender and receiver
//! silly-window avoidance, options (RFC 9293 §3.8.6, RFC 896, RFC 7323, RFC 2018).

use super::ecn;
use super::pacing;
use super::recovery;
use super::segment::{self, Flags, Options, SegmentOut};
use super::seq::Seq;
use super::shared::SocketIo;
use super::tcb::{State, Tcb};
use crate::stats::Counters;
use crate::time::Instant;
use crate::wire::gso::{pseudo_header_partial_ip, TCP_CHECKSUM_OFFSET, TSO_MAX_PAYLOAD};
use crate::wire::{headroom, transport_checksum_ip};
use etherparse::IpNumber;
use std::net::IpAddr;
use std::sync::Arc;

/// A segment ready for the IP layer.
pub struct Outgoing {
    /// Source address: the stack's own, or the destination a client dialled for an
    /// intercepted connection.
    pub src: IpAddr,
    /// Destination address, of the same family.
    pub dst: IpAddr,
    /// [`crate::wire::headroom`] bytes of room for the lower layers' headers (as many as
    /// `dst`'s family needs), then the segment.
    pub bytes: Vec<u8>,
    /// A super-segment to be split into pieces of this many payload bytes; its checksum field
    /// holds only the pseudo-header sum, for the device to complete.
    pub tso_mss: Option<u16>,
    /// The connection's `IP_TTL`, if set.
    pub ttl: Option<u8>,
    /// The connection's Diffserv field (DSCP, MUST-48).
    pub dscp: u8,
    /// The ECN field (RFC 3168 §5): [`super::ecn::ECT0`] or not ECN-capable.
    pub ecn: u8,
    /// A super-segment's payload, left in the send buffer: `bytes` then holds the headers
    /// only (see [`TxPayload`]).
    pub payload: Option<TxPayload>,
}

/// The payload of a TCP super-segment, by reference: bytes of a connection's send buffer,
/// which stay there until the device takes them. A device that takes a frame in parts
/// writes them behind the headers with one `writev`, so that the only copy of the data
/// after the application's `write` is the kernel's; any other gathers them first
/// ([`TxPayload::gather_into`]), the copy it always made.
pub struct TxPayload {
    io: Arc<SocketIo>,
    /// Stream position of the first byte (see [`super::buffer::SendBuffer::position`]).
    pos: u64,
    len: usize,
}

/// Shows where the bytes are, not the bytes.
impl std::fmt::Debug for TxPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxPayload")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish()
    }
}

impl TxPayload {
    /// Bytes of payload.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it carries no byte (never, as built).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the bytes to `out` (a copy, under the connection's lock); false, and `out`
    /// untouched, if they are no longer held: acknowledged or discarded since the segment was
    /// built, so that it need not be sent.
    pub fn gather_into(&self, out: &mut Vec<u8>) -> bool {
        let io = self.io.lock();
        let Some((a, b)) = io.send.slices_from(self.pos, self.len) else {
            return false;
        };
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        true
    }

    /// Calls `f` with the bytes, in up to two slices, without holding the connection's lock:
    /// the send buffer is pinned meanwhile ([`super::buffer::SendBuffer::pin`]), so that the
    /// application's writes neither move nor overwrite them. `None` if they are no longer
    /// held. A writer that found no room because of the pin is woken after, and a panic in
    /// `f` unpins too.
    pub(crate) fn with_slices<R>(&self, f: impl FnOnce(&[u8], &[u8]) -> R) -> Option<R> {
        /// Unpins when dropped, `f` returned or not.
        struct Unpin<'a>(&'a SocketIo);
        impl Drop for Unpin<'_> {
            fn drop(&mut self) {
                let mut io = self.0.lock();
                if io.send.unpin() {
                    self.0.wake(io);
                }
            }
        }
        let parts = self.io.lock().send.pin(self.pos, self.len)?;
        let _unpin = Unpin(&self.io);
        // SAFETY: `pin` returned where the bytes are and keeps them there until `_unpin`
        // drops: while pinned the ring is neither moved nor freed, and writes (through raw
        // pointers, making no reference to these bytes) stop short of them even once they
        // are acknowledged.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(parts[0].0, parts[0].1),
                std::slice::from_raw_parts(parts[1].0, parts[1].1),
            )
        };
        Some(f(a, b))
    }
}

/// Spare frame buffers kept for reuse: enough for a burst of output (each buffer is one
/// frame, up to a 64 KB super-segment).
const SPARE_BUFFERS: usize = 32;

/// Segments built and not yet taken by the IP layer, and the buffers of sent frames kept to
/// build the next ones in: output allocates nothing in a steady state.
#[derive(Default)]
pub struct Outbox {
    /// Segments built, in order, for the IP layer to take.
    pub segs: Vec<Outgoing>,
    spare: Vec<Vec<u8>>,
}

impl Outbox {
    /// Queues a segment for the IP layer.
    pub fn push(&mut self, seg: Outgoing) {
        self.segs.push(seg);
    }

    /// An empty segment buffer with `headroom` bytes in front, room for `len` bytes of
    /// segment.
    fn buffer(&mut self, headroom: usize, len: usize) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.reserve(headroom + len);
        b.resize(headroom, 0);
        b
    }

    /// Keeps the buffer of a frame that has been sent, for a later segment.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buf);
        }
    }
}

/// Where segments go, and what building them needs.
pub struct Sink<'a> {
    /// Where built segments are queued.
    pub out: &'a mut Outbox,
    /// The stack's counters, which output updates.
    pub stats: &'a mut Counters,
    /// The MTUs learned, for a SYN's MSS.
    pub mtus: &'a crate::ip::PathMtus,
    /// The delayed-ACK timeout: data sent this soon after data arrived is a reply, and puts
    /// the connection in interactive mode (Linux's ATO and `tcp_event_data_sent`).
    pub ato: std::time::Duration,
    /// Data may leave as super-segments of up to 64 KB (see [`super::TcpConfig::tso`]).
    pub tso: bool,
}

/// RFC 7323 §4.1: our timestamp clock ticks in milliseconds.
pub fn ts_now(now: Instant, offset: u32) -> u32 {
    ((now.total_micros() / 1000) as u32).wrapping_add(offset)
}

/// Builds one segment from the connection's state. `data` is `(offset in send buffer, len)`.
pub fn emit(
    t: &mut Tcb,
    now: Instant,
    seq: Seq,
    flags: Flags,
    data: (usize, usize),
    sink: &mut Sink<'_>,
) {
    let mut options = Options::default();
    if let Some(ts) = &t.opts.ts {
        options.timestamp = Some((ts_now(now, ts.offset), ts.recent));
    }
    let window;
    // SND.UP while urgent data is unacknowledged (a SYN carries none).
    let mut snd_up = None;
    if flags.syn {
        // What the MTU towards the peer holds, the IP layer's learned MTUs counted.
        let remote = t.remote.ip();
        let ours = super::mss_for_mtu(remote, sink.mtus.mtu(now, remote));
        options.mss = Some(ours.min(65535) as u16);
        options.sack_permitted = t.opts.sack_ok;
        // A SYN-ACK carries Window Scale only if the SYN did (RFC 7323 §2.2); `rcv_wscale` is
        // zeroed when it did not.
        if t.state == State::SynSent || t.rcv.wscale > 0 || t.snd.wscale > 0 {
            options.wscale = Some(t.rcv.wscale);
        }
        // The window of a SYN is never scaled (RFC 7323 §2.2).
        window = t.rcv_wnd().min(65535) as u16;
        t.rcv.adv = t.rcv.nxt + u32::from(window);
    } else {
        window = advertise_window(t);
        // A duplicate goes first, as a D-SACK block (RFC 2883 §4), then the out-of-order
        // ranges, most recent first (RFC 2018 §4). A super-segment does not carry it: each
        // of its pieces would repeat it, and the peer count one duplicate several times.
        let single = data.1 <= t.snd.mss as usize;
        let dsack = if single { t.ack.dsack.take() } else { None }.filter(|_| t.opts.sack_ok);
        let io = t.io();
        snd_up = io.send.urgent_end().map(|end| t.offset_seq(end));
        if t.opts.sack_ok && (io.recv.has_ooo() || dsack.is_some()) {
            let max_blocks = if options.timestamp.is_some() { 3 } else { 4 };
            let rcv_nxt = t.rcv.nxt;
            let mut ranges = [None; 4];
            for (slot, (a, b)) in ranges.iter_mut().zip(io.recv.ooo_ranges()) {
                *slot = Some((rcv_nxt + a as u32, rcv_nxt + b as u32));
            }
            // A duplicate of out-of-order data: the range holding it comes right after it, so
            // that the peer can tell the D-SACK (RFC 2883 §4 rule 4).
            if let Some((l, r)) = dsack {
                let holding = ranges
                    .iter()
                    .position(|b| b.is_some_and(|(s, e)| s.le(l) && r.le(e)));
                if let Some(i) = holding {
                    ranges[..=i].rotate_right(1);
                }
            }
            for (slot, block) in options
                .sack
                .iter_mut()
                .zip(dsack.into_iter().chain(ranges.into_iter().flatten()))
                .take(max_blocks)
            {
                *slot = Some(block);
            }
            sink.stats.tcp_dsack_sent += u64::from(dsack.is_some());
        }
    }
    let ack = (flags.ack).then_some(t.rcv.nxt);
    let mut flags = flags;
    // RFC 3168 §6.1: a SYN asks for ECN, a SYN-ACK agrees; after the handshake ACKs echo
    // marks, and the first new data after a reduction says so.
    let new_data = data.1 > 0 && !flags.syn && seq.ge(t.snd.max);
    if flags.syn {
        (flags.ece, flags.cwr) = ecn::syn_flags(t);
    } else if t.ecn.ok {
        flags.ece = t.ecn.echo;
        flags.cwr = new_data && std::mem::take(&mut t.ecn.queue_cwr);
    }
    let ecn = ecn::codepoint(t, new_data, flags.syn);
    let urgent_ptr = super::urgent::send_pointer(snd_up, seq, t.snd.max);
    flags.urg = urgent_ptr.is_some();
    sink.stats.tcp_urgent_out += u64::from(flags.urg);
    let header = SegmentOut {
        src_port: t.local.port(),
        dst_port: t.remote.port(),
        seq,
        ack,
        flags,
        window,
        urgent_ptr: urgent_ptr.unwrap_or(0),
        options,
    };
    let room = headroom(t.remote.ip());
    let (src, dst) = (t.local.ip(), t.remote.ip());
    let piece = data_mss(t) as usize;
    let tso_mss = (data.1 > piece).then_some(piece as u16);
    // A super-segment's payload stays in the send buffer, for the device to take from there;
    // a segment of one MSS or less is copied behind its headers, whose checksum covers it.
    let payload = tso_mss.map(|_| TxPayload {
        io: t.io.clone(),
        pos: t.io().send.position(data.0),
        len: data.1,
    });
    let mut bytes = sink
        .out
        .buffer(room, 60 + if payload.is_some() { 0 } else { data.1 });
    segment::write_header(&header, &mut bytes);
    if payload.is_none() {
        let io = t.io();
        let (a, b) = io.send.slices_at(data.0, data.1);
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
    }
    let seg = &mut bytes[room..];
    let sum = match tso_mss {
        // The device computes the checksum of each piece from this partial sum.
        Some(_) => pseudo_header_partial_ip(src, dst, seg.len() + data.1),
        None => transport_checksum_ip(src, dst, IpNumber::TCP.0, seg),
    };
    seg[TCP_CHECKSUM_OFFSET..TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&sum);
    if flags.ack {
        if t.ack.unacked_bytes > 0 {
            t.ack.delack.quick = t.ack.delack.quick.saturating_sub(1);
        }
        t.rcv.last_ack_sent = t.rcv.nxt;
        t.ack.now = false;
        t.timers.delack = None;
        t.ack.unacked_bytes = 0;
    }
    sink.stats.tcp_out_segs += data.1.div_ceil(piece).max(1) as u64;
    sink.stats.tcp_out_tso += u64::from(tso_mss.is_some());
    if t.trace.is_some() {
        t.trace_sent(now, &header, data.1, tso_mss);
    }
    sink.out.push(Outgoing {
        src,
        dst,
        bytes,
        tso_mss,
        ttl: t.user.ttl,
        dscp: t.user.dscp,
        ecn,
        payload,
    });
}

/// The window field for a non-SYN segment. The right edge only moves right, and only by at
/// least min(buffer/2, MSS) at a time (receiver SWS avoidance, RFC 9293 §3.8.6.2.2).
fn advertise_window(t: &mut Tcb) -> u16 {
    let free = t.rcv_wnd();
    let right = t.rcv.nxt + free;
    if right.gt(t.rcv.adv) {
        let grow = right.since(t.rcv.adv);
        if grow >= t.window_update_threshold() {
            // Round down to what the scaled field can express.
            let wnd = (free >> t.rcv.wscale) << t.rcv.wscale;
            t.rcv.adv = t.rcv.adv.max(t.rcv.nxt + wnd);
        }
    }
    (t.advertised_room() >> t.rcv.wscale).min(65535) as u16
}

/// Bytes of TCP options a data segment will carry (timestamps, and SACK blocks while we hold
/// out-of-order data), by which its payload shrinks so the segment still fits the MSS.
fn data_options_len(t: &Tcb) -> u32 {
    let ts = t.opts.ts.is_some();
    let io = t.io();
    let blocks = if t.opts.sack_ok {
        let max = if ts { 3 } else { 4 };
        let dsack = usize::from(t.ack.dsack.is_some());
        (io.recv.ooo_ranges().take(max).count() + dsack).min(max)
    } else {
        0
    };
    let options = Options {
        timestamp: ts.then_some((0, 0)),
        sack: std::array::from_fn(|i| (i < blocks).then_some((Seq(0), Seq(0)))),
        ..Options::default()
    };
    segment::options_len(&options) as u32
}

/// The payload of a full-sized segment: the MSS less the options data segments carry now.
fn data_mss(t: &Tcb) -> u32 {
    t.snd.mss.saturating_sub(data_options_len(t)).max(1)
}

/// Sends what the windows, Nagle and SWS avoidance allow, then a pure ACK if one is owed.
pub fn output(t: &mut Tcb, now: Instant, sink: &mut Sink<'_>) {
    let ack = Flags::ACK;
    match t.state {
        State::SynSent if t.snd.nxt == t.snd.iss => {
            send_syn(t, now, Flags::SYN, sink);
            return;
        }
        State::SynReceived if t.snd.nxt == t.snd.iss => {
            send_syn(t, now, Flags::SYN_ACK, sink);
            return;
        }
        State::Closed | State::Listen | State::SynSent | State::SynReceived => return,
        _ => {}
    }
    let mss = data_mss(t);
    let ack_owed = t.ack.now;
    let mut sent = false;
    let mut sent_new = false;
    // Output waits for the pacing release time ([`pacing`]).
    let mut paced_out = false;
    let pacing_rate = pacing::rate(t);
    if let Some(rate) = pacing_rate {
        t.pacing.start(now, sink.tso, rate);
    }
    if t.output.retransmit_head && t.snd.max.gt(t.snd.una) {
        let (start, end) = retransmit_head(t, now, mss, sink);
        if let Some(rate) = pacing_rate {
            t.pacing.on_sent(now, end.since(start) as usize, rate);
        }
        sent = true;
    }
    t.output.retransmit_head = false;
    loop {
        if pacing_rate.is_some() && !t.pacing.ready(now) && !t.output.probe_new_data {
            paced_out = true;
            break;
        }
        let cwnd = recovery::send_window(t);
        let in_flight = recovery::in_flight(t);
        let mut cwnd_room = cwnd.saturating_sub(in_flight);
        if t.output.probe_new_data {
            // A tail loss probe with new data goes whatever the window (RFC 8985 §7.3).
            cwnd_room = cwnd_room.max(mss);
        }
        if recovery::sack_recovery(t) && cwnd_room >= mss {
            // RFC 6675 §5 (C): holes deemed lost go before new data.
            if let Some((seq, len)) = recovery::next_hole(t, mss) {
                retransmit(t, now, seq, len, sink);
                if let Some(rate) = pacing_rate {
                    t.pacing.on_sent(now, len as usize, rate);
                }
                sent = true;
                continue;
            }
        }
        let hole = recovery::skip_sacked(t);
        let flight = t.flight();
        let off = t.send_offset(t.snd.nxt);
        let (buffered, urgent_end) = {
            let io = t.io();
            (io.send.len(), io.send.urgent_end())
        };
        // Urgent mode, and SND.NXT still before SND.UP.
        let before_mark = urgent_end.is_some_and(|end| off < end);
        let unsent = buffered.saturating_sub(off);
        let retransmission = t.snd.nxt.lt(t.snd.max);
        // New data may leave as a super-segment of whole MSS pieces, at most half the
        // congestion window so that at least two are in flight and one lost ACK does not
        // stall the flight (Linux `tcp_cwnd_test`); a retransmission is one MSS, so that only
        // what was lost goes again. A segment before the urgent mark carries its own urgent
        // pointer, which the device's split would copy unchanged: no super-segment there.
        // CWR goes on one segment, not on each piece of a super-segment.
        let cwr = t.ecn.ok && t.ecn.queue_cwr;
        let limit = if sink.tso && !retransmission && !before_mark && !cwr {
            let half = (cwnd / 2 / mss * mss).max(mss);
            // Paced, about a millisecond of the rate (Linux `tcp_tso_autosize`).
            let paced = pacing_rate.map_or(usize::MAX, |r| pacing::tso_autosize(t, r, mss));
            TSO_MAX_PAYLOAD.min(half as usize).min(paced)
        } else {
            mss as usize
        };
        let mut len = unsent
            .min(t.snd.wnd.saturating_sub(flight) as usize)
            .min(limit)
            .min(hole.map_or(usize::MAX, |h| h as usize));
        let mss_len = mss as usize;
        if (cwnd_room as usize) < len {
            // The congestion window does not split segments (Linux counts it in packets):
            // whole segments that fit go, the rest waits for an ACK, unless nothing is in
            // flight.
            len = if cwnd_room as usize >= mss_len {
                cwnd_room as usize / mss_len * mss_len
            } else if in_flight == 0 {
                cwnd_room as usize
            } else {
                0
            };
        }
        if len > mss_len && (len < unsent || (!t.user.nodelay && minshall_holds(t))) {
            // A super-segment ends on a piece boundary unless it ends the data, and then a
            // short last piece is one Nagle holds like any other (Linux
            // `tcp_mss_split_point`).
            len -= len % mss_len;
        }
        let fin_allowed = matches!(
            t.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );
        let fin = t.fin.queued
            && fin_allowed
            && len == unsent
            && t.fin.ours.is_none_or(|f| f == t.snd.nxt + len as u32);
        if len == 0 && !fin {
            break;
        }
        if len > 0 && len < mss as usize && !retransmission && !fin && !t.output.sws_override {
            // RFC 9293 §3.8.6.2.1 and Nagle (RFC 896) with Minshall's modification (Linux
            // `tcp_nagle_check`): a short segment goes only if it holds all the data and no
            // earlier short segment is unacknowledged (or Nagle is off), or it fills half the
            // largest window the peer offered. Full segments before it never hold it back.
            // Nagle never holds urgent data (Linux `tcp_nagle_test`).
            let nagle_ok = t.user.nodelay || urgent_end.is_some() || !minshall_holds(t);
            let sws_ok = len == unsent || len as u32 >= t.snd.max_wnd / 2;
            if !(nagle_ok && sws_ok) {
                break;
            }
        }
        let seq = t.snd.nxt;
        let flags = Flags {
            fin,
            psh: len > 0 && len == unsent,
            ..ack
        };
        emit(t, now, seq, flags, (off, len), sink);
        if let Some(rate) = pacing_rate {
            t.pacing.on_sent(now, len, rate);
        }
        t.recovery.on_sent(len);
        sent = true;
        t.output.probe_new_data = false;
        t.snd.nxt = t.snd.nxt + len as u32 + u32::from(fin);
        if retransmission {
            sink.stats.tcp_retrans_segs += 1;
            let tsval = t.opts.ts.map(|ts| ts_now(now, ts.offset));
            t.recovery.on_retransmit(seq, t.snd.nxt, now, tsval);
        } else {
            t.recovery.rack.on_send(t.snd.nxt, now);
            if let Some(rate) = t.rate.as_mut() {
                if in_flight == 0 && rate.app_limited() {
                    t.cc.on_restart_from_idle(now);
                }
                rate.on_send(
                    t.snd.nxt,
                    now,
                    in_flight,
                    in_flight.saturating_add(len as u32),
                );
            }
        }
        if fin {
            t.fin.ours = Some(seq + len as u32);
        }
        sent_new |= !retransmission;
        if !retransmission && len > 0 {
            if len % mss as usize != 0 {
                t.snd.sml = t.snd.nxt;
            }
            // Data sent soon after data arrived answers it: from now on the ACK of a request
            // waits to ride on the response (Linux's ping-pong mode).
            if t.ack.delack.last_data.is_some_and(|at| now - at < sink.ato) {
                t.ack.delack.pingpong = true;
            }
        }
        if t.snd.nxt.gt(t.snd.max) {
            if t.rtx.rtt_probe.is_none() && !retransmission {
                t.rtx.rtt_probe = Some((t.snd.nxt, now));
            }
            t.snd.max = t.snd.nxt;
        }
        if t.timers.rto.is_none() {
            t.timers.rto = Some(now + t.rtx.rtt.rto());
        }
        if fin {
            break;
        }
    }
    t.pacing.set_held(paced_out);
    t.timers.pacing = if paced_out {
        sink.stats.tcp_pacing_holds += 1;
        Some(t.pacing.release_at())
    } else {
        None
    };
    if t.state.synchronized() {
        let flight = recovery::in_flight(t);
        let cwnd = recovery::send_window(t);
        // Only the window counts (Linux's `is_cwnd_limited`): what pacing holds back
        // reaches the window within a round trip anyway, as the rate exceeds cwnd/SRTT.
        let blocked = flight.saturating_add(mss) > cwnd;
        t.output
            .cwnd_use
            .after_output(flight, blocked, t.snd.una, t.snd.nxt);
        if t.rate.is_some() {
            mark_app_limited(t, flight, blocked);
        }
    }
    // An override that pacing kept from being used holds until the pacing timer's output.
    if !paced_out {
        t.output.sws_override = false;
    }
    t.output.probe_new_data = false;
    recovery::arm_probe(t, now);
    // Data waits with nothing in flight, behind a zero window or a window too small to use:
    // the persist timer probes the first and overrides SWS avoidance for the second
    // (RFC 9293 §3.8.6.1, §3.8.6.2.1). It stops once data flies again.
    let unsent = t.io().send.len().saturating_sub(t.send_offset(t.snd.nxt));
    let waiting = unsent > 0 || (t.fin.queued && t.fin.ours.is_none());
    if waiting && t.flight() == 0 && !sent {
        if t.timers.persist.is_none() {
            t.timers.persist = Some(now + t.rtx.rtt.rto());
        }
    } else if t.flight() > 0 || !waiting {
        t.timers.persist = None;
        t.timers.persist_backoff = 0;
    }
    // Retransmitted data can fall wholly below what the peer holds, and the peer then drops it
    // with its acknowledgement; an owed ACK also goes out on its own (as Linux's dupack).
    if ack_owed && sent && !sent_new {
        t.ack.now = true;
        sent = false;
    }
    if !sent && t.ack.now {
        // A pure ACK carries the next new sequence number, not a rewound snd_nxt: the peer has
        // everything below snd_max, and an ACK with an older sequence number fails its
        // acceptability test (RFC 9293 §3.10.7.4), losing the acknowledgement with it.
        let seq = t.snd.max;
        emit(t, now, seq, ack, (0, 0), sink);
    }
}

/// The application gave too little to fill the window, with nothing lost waiting to be
/// resent: rate samples are application-limited until what is in flight now is delivered
/// (draft-ietf-ccwg-bbr §4.1.2.4; Linux `tcp_rate_check_app_limited`).
fn mark_app_limited(t: &mut Tcb, flight: u32, cwnd_blocked: bool) {
    let unsent = t.io().send.len().saturating_sub(t.send_offset(t.snd.nxt));
    if unsent >= t.snd.mss as usize || cwnd_blocked {
        return;
    }
    let repairing = recovery::sack_recovery(t)
        && t.recovery
            .scoreboard
            .next_hole(t.recovery.high_rxt.max(t.snd.una), recovery::lost_point(t))
            .is_some();
    if let Some(rate) = t.rate.as_mut().filter(|_| !repairing) {
        rate.mark_app_limited(flight);
    }
}

/// Minshall's rule (draft-minshall-nagle, Linux `tcp_minshall_check`): the last short segment
/// sent is still unacknowledged.
fn minshall_holds(t: &Tcb) -> bool {
    t.snd.sml.gt(t.snd.una) && t.snd.sml.le(t.snd.nxt)
}

/// A zero-window or keep-alive probe: an old sequence number (snd_una - 1) and no data, which
/// the peer must answer with an ACK stating its window (what Linux sends).
pub fn probe(t: &mut Tcb, now: Instant, sink: &mut Sink<'_>) {
    let seq = t.snd.una - 1;
    t.trace_send_trigger(Some(super::trace::SendTrigger::Probe));
    emit(t, now, seq, Flags::ACK, (0, 0), sink);
}

/// Resends the first unacknowledged segment (RFC 5681 §3.2 step 2, RFC 6582 §3.2 step 5).
fn retransmit_head(t: &mut Tcb, now: Instant, mss: u32, sink: &mut Sink<'_>) -> (Seq, Seq) {
    let seq = t.snd.una;
    let outstanding = t.snd.max.since(seq);
    let hole = t
        .recovery
        .scoreboard
        .next_hole(seq, t.snd.max)
        .map_or(outstanding, |(_, end)| end.since(seq));
    retransmit(t, now, seq, hole.min(mss), sink)
}

/// Resends `len` bytes from `seq` (with our FIN if it follows them), leaving snd_nxt alone;
/// HighRxt (RFC 6675) records how far this recovery has resent. Returns what it resent.
fn retransmit(t: &mut Tcb, now: Instant, seq: Seq, len: u32, sink: &mut Sink<'_>) -> (Seq, Seq) {
    let off = t.send_offset(seq);
    let len = (len as usize).min(t.io().send.len().saturating_sub(off));
    let fin = t.fin.ours == Some(seq + len as u32);
    let flags = Flags { fin, ..Flags::ACK };
    emit(t, now, seq, flags, (off, len), sink);
    t.recovery.on_sent(len);
    sink.stats.tcp_retrans_segs += 1;
    let end = seq + len as u32 + u32::from(fin);
    let tsval = t.opts.ts.map(|ts| ts_now(now, ts.offset));
    t.recovery.on_retransmit(seq, end, now, tsval);
    t.rtx.rtt_probe = None;
    if t.timers.rto.is_none() {
        t.timers.rto = Some(now + t.rtx.rtt.rto());
    }
    (seq, end)
}

/// The probe timeout fired (RFC 8985 §7.3): send one new segment if the peer's window allows,
/// else resend the last one, so that the ACK it draws reveals any loss at the tail. A probe
/// after an unanswered one resends. Within a recovery (as FreeBSD's RACK probes) it resends
/// the oldest outstanding data, as a timeout would, without collapsing the window: where
/// nothing answers for that long in a recovery, a retransmission was lost with nothing sent
/// after it for RACK to judge it by.
pub fn tail_probe(t: &mut Tcb, now: Instant, sink: &mut Sink<'_>) {
    let mss = data_mss(t);
    if t.recovery.rack.settle_probe(t.snd.una) {
        recovery::probe_repaired(t, now, sink.stats);
    }
    t.trace_send_trigger(Some(super::trace::SendTrigger::TailLossProbe));
    if t.recovery.recover.is_some() {
        let resent = retransmit_head(t, now, mss, sink);
        t.recovery.rack.on_probe(Some(resent), None);
        sink.stats.tcp_recovery_probes += 1;
    } else {
        let unsent = t.io().send.len() > t.send_offset(t.snd.nxt);
        if unsent && t.snd.wnd > t.flight() && t.recovery.rack.probes == 0 {
            t.output.probe_new_data = true;
            output(t, now, sink);
            t.recovery.rack.on_probe(None, Some(t.snd.max));
        } else {
            // The last segment, or again what the unanswered probe before resent.
            let end = t.fin.ours.unwrap_or(t.snd.max);
            let last = if end.since(t.snd.una) > mss {
                end - mss
            } else {
                t.snd.una
            };
            let (start, end) = t
                .recovery
                .rack
                .tlp_rxt
                .filter(|&(s, _)| t.recovery.rack.probes > 0 && s.ge(t.snd.una))
                .unwrap_or((last, end));
            let resent = retransmit(t, now, start, end.since(start), sink);
            t.recovery.rack.on_probe(Some(resent), Some(t.snd.max));
        }
    }
    t.trace_send_trigger(None);
    t.timers.rto = Some(now + t.rtx.rtt.rto());
    sink.stats.tcp_loss_probes += 1;
}

fn send_syn(t: &mut Tcb, now: Instant, flags: Flags, sink: &mut Sink<'_>) {
    let iss = t.snd.iss;
    if t.rtx.retries == 0 {
        t.rtx.rtt_probe = Some((iss + 1, now));
    }
    emit(t, now, iss, flags, (0, 0), sink);
    t.snd.nxt = iss + 1;
    if t.snd.max.le(iss) {
        t.snd.max = t.snd.nxt;
    }
    if t.timers.rto.is_none() {
        t.timers.rto = Some(now + t.rtx.rtt.rto());
    }
}

/// A bare segment not tied to a connection: a RST for a closed port (RFC 9293 §3.10.7.1).
pub fn reset(
    local: std::net::SocketAddr,
    remote: std::net::SocketAddr,
    seq: Seq,
    ack: Option<Seq>,
    out: &mut Outbox,
    stats: &mut Counters,
) {
    let header = SegmentOut {
        src_port: local.port(),
        dst_port: remote.port(),
        seq,
        ack,
        flags: Flags::rst(ack.is_some()),
        window: 0,
        urgent_ptr: 0,
        options: Options::default(),
    };
    stats.tcp_out_rsts += 1;
    bare(local, remote, &header, 0, out, stats);
}

/// A SYN-ACK carrying a SYN cookie: no state, and only the MSS option; `window` is what the
/// listener's receive buffer can take (at most 65535: no window scale without state); `dscp`
/// is the listener's.
pub fn cookie_syn_ack(
    (local, remote): (std::net::SocketAddr, std::net::SocketAddr),
    cookie: Seq,
    ack: Seq,
    window: u16,
    our_mss: u32,
    dscp: u8,
    sink: &mut Sink<'_>,
) {
    let header = SegmentOut {
        src_port: local.port(),
        dst_port: remote.port(),
        seq: cookie,
        ack: Some(ack),
        flags: Flags::SYN_ACK,
        window,
        urgent_ptr: 0,
        options: Options {
            mss: Some(our_mss.min(65535) as u16),
            ..Options::default()
        },
    };
    bare(local, remote, &header, dscp, sink.out, sink.stats);
}

fn bare(
    local: std::net::SocketAddr,
    remote: std::net::SocketAddr,
    header: &SegmentOut,
    dscp: u8,
    out: &mut Outbox,
    stats: &mut Counters,
) {
    let room = headroom(remote.ip());
    let mut bytes = out.buffer(room, 24);
    segment::write_header(header, &mut bytes);
    let seg = &mut bytes[room..];
    let sum = transport_checksum_ip(local.ip(), remote.ip(), IpNumber::TCP.0, seg);
    seg[TCP_CHECKSUM_OFFSET..TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&sum);
    stats.tcp_out_segs += 1;
    out.push(Outgoing {
        src: local.ip(),
        dst: remote.ip(),
        bytes,
        tso_mss: None,
        ttl: None,
        dscp,
        ecn: 0,
        payload: None,
    });
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::*;
    use std::time::Duration;

    fn data_bytes(out: &[Out]) -> usize {
        out.iter().map(|s| s.payload.len()).sum()
    }

    #[test]
    fn a_write_leaves_in_mss_segments_within_the_initial_window() {
        let mut fx = Fixture::established();
        let out = fx.write(&[7u8; 5000]);
        let sizes: Vec<usize> = out.iter().map(|s| s.payload.len()).collect();
        assert_eq!(sizes, [1460, 1460, 1460, 620], "{out:?}");
        assert_eq!(out[0].seq, fx.iss + 1);
        assert!(out.iter().all(|s| s.ack == Some(PEER_ISS + 1)));
    }

    #[test]
    fn output_stops_at_the_peer_window_without_silly_segments() {
        let mut fx = Fixture::established();
        assert!(fx
            .send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(3000))
            .is_empty());
        let out = fx.write(&[7u8; 5000]);
        // Two full segments fit; the 80 bytes left of the window would be a silly segment
        // (RFC 9293 §3.8.6.2.1).
        assert_eq!(data_bytes(&out), 2920, "{out:?}");
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 2921).window(64000));
        assert_eq!(data_bytes(&out), 2080, "the window opened: {out:?}");
    }

    #[test]
    fn a_window_below_one_segment_waits_for_the_sws_override_timer() {
        let mut fx = Fixture::established();
        assert!(fx
            .send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(1000))
            .is_empty());
        assert!(
            fx.write(&[7u8; 5000]).is_empty(),
            "1000 bytes would be a silly segment"
        );
        let mut sent = 0;
        for _ in 0..30 {
            sent += data_bytes(&fx.advance(Duration::from_millis(100)));
            if sent > 0 {
                break;
            }
        }
        assert_eq!(
            sent, 1000,
            "the override timer sends what the window allows"
        );
    }

    #[test]
    fn nagle_holds_a_short_segment_behind_an_unacknowledged_short_one() {
        let mut fx = Fixture::established();
        assert_eq!(data_bytes(&fx.write(b"first")), 5);
        assert!(fx.write(b"second").is_empty(), "held (RFC 896, Minshall)");
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 6));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].payload, b"second");
        fx.tcp.conns.get_mut(&fx.id.unwrap()).unwrap().user.nodelay = true;
        assert_eq!(
            data_bytes(&fx.write(b"third")),
            5,
            "TCP_NODELAY sends at once"
        );
    }

    #[test]
    fn a_zero_window_is_probed_until_it_opens() {
        let mut fx = Fixture::established();
        assert!(fx
            .send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(0))
            .is_empty());
        assert!(
            fx.write(b"waiting").is_empty(),
            "nothing fits a zero window"
        );
        let mut probes = 0;
        for _ in 0..50 {
            let out = fx.advance(Duration::from_millis(100));
            probes += out.iter().filter(|s| s.payload.len() <= 1).count();
            if probes > 0 {
                break;
            }
        }
        assert!(probes > 0, "a zero-window probe (RFC 9293 §3.8.6.1)");
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).window(1000));
        let sent: Vec<u8> = out.iter().flat_map(|s| s.payload.clone()).collect();
        assert!(b"waiting".ends_with(&sent) && !sent.is_empty(), "{out:?}");
    }

    #[test]
    fn a_lost_segment_is_resent_alone_at_the_timeout() {
        let mut fx = Fixture::established();
        let out = fx.write(&[1u8; 3000]);
        assert_eq!(out.len(), 3);
        let mut resent = Vec::new();
        for _ in 0..30 {
            resent = fx.advance(Duration::from_millis(100));
            if !resent.is_empty() {
                break;
            }
        }
        assert_eq!(
            resent.len(),
            1,
            "one segment at the RTO (RFC 6298 §5.4): {resent:?}"
        );
        assert_eq!(resent[0].seq, fx.iss + 1);
        assert_eq!(resent[0].payload.len(), 1460);
    }

    /// A sent frame's buffer is the next segment's: no allocation per segment once the pool
    /// has buffers, and the headroom is always there, zeroed.
    #[test]
    fn the_outbox_reuses_sent_buffers() {
        let mut out = Outbox::default();
        let mut first = out.buffer(crate::wire::FRAME_HEADROOM, 1460);
        first.extend_from_slice(&[0xaa; 1460]);
        first[0] = 0xff;
        let ptr = first.as_ptr();
        out.recycle(first);
        let again = out.buffer(crate::wire::FRAME_HEADROOM, 100);
        assert_eq!(again.as_ptr(), ptr, "the recycled buffer is reused");
        assert_eq!(again, vec![0u8; crate::wire::FRAME_HEADROOM]);
        for _ in 0..SPARE_BUFFERS + 8 {
            out.recycle(Vec::with_capacity(64));
        }
        assert_eq!(out.spare.len(), SPARE_BUFFERS, "the pool is bounded");
    }
}
