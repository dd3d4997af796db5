//! Segment arrival (RFC 9293 §3.10.7), with RFC 5961's defences, RFC 7323's PAWS and RTTM,
//! and NewReno loss recovery (RFC 5681 §3.2, RFC 6582).

use super::output::{self, ts_now};
use super::segment::{self, Flags, Options, SegmentIn};
use super::seq::Seq;
use super::tcb::{Opening, State, Tcb, Timestamps};
use super::Tcp;
use crate::id::SocketId;
use crate::stats::Counters;
use crate::time::Instant;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// RFC 7323 §5.5: TS.Recent older than this is invalid for PAWS.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// Takes the peer's SYN into a new connection: its ISN (IRS, RCV.NXT), its options, and its
/// window, which a SYN never scales (RFC 7323 §2.2), as set by a segment acknowledging `wl2`.
/// The one place a connection learns its peer's half, for passive and active opens alike,
/// ECN's agreement included.
pub(super) fn take_syn(
    t: &mut Tcb,
    seg: &SegmentIn<'_>,
    our_mss: u32,
    now: Instant,
    wl2: Seq,
    stats: &mut Counters,
) {
    t.rcv.irs = seg.seq;
    t.rcv.nxt = seg.seq + 1;
    t.rcv.adv = t.rcv.nxt;
    apply_syn_options(t, &seg.options, our_mss, now);
    super::ecn::negotiate(t, seg, stats);
    t.snd.set_window(u32::from(seg.window), seg.seq, wl2);
}

/// The smallest MSS we send with, whatever the peer's SYN announces: a peer announcing MSS 1
/// would otherwise have us send a segment per byte, 40 bytes of headers each (Linux's floor,
/// `tcp_min_snd_mss`, is 48; FreeBSD's 216).
pub(crate) const MIN_SND_MSS: u32 = 64;

/// Applies the options of a SYN (RFC 9293 §3.7.1, RFC 7323 §2.2 and §3.2, RFC 2018 §2).
fn apply_syn_options(t: &mut Tcb, o: &Options, our_mss: u32, now: Instant) {
    // Without the option the peer's MSS is 536 over IPv4 (RFC 9293 §3.7.1), 1220 over IPv6
    // (RFC 8200 §8.3).
    let default = default_mss(t.remote.ip());
    t.snd.mss = u32::from(o.mss.unwrap_or(default)).clamp(MIN_SND_MSS, our_mss);
    match o.wscale {
        Some(s) => t.snd.wscale = s,
        None => {
            t.snd.wscale = 0;
            t.rcv.wscale = 0;
        }
    }
    t.opts.sack_ok = t.opts.sack_ok && o.sack_permitted;
    t.opts.ts = match (t.opts.ts, o.timestamp) {
        (Some(ts), Some((tsval, _))) => Some(Timestamps {
            recent: tsval,
            recent_age: now,
            ..ts
        }),
        _ => None,
    };
    t.cc.set_mss(t.snd.mss);
}

/// The peer's MSS without its option: what its family's smallest packet holds, 536 over
/// IPv4 (RFC 9293 §3.7.1), 1220 over IPv6 (RFC 8200 §8.3).
fn default_mss(remote: IpAddr) -> u16 {
    super::mss_for_mtu(remote, crate::ip::min_mtu(remote)) as u16
}

impl Tcp {
    /// Offers the buffer of the frame about to be received: the next segment's connection may
    /// keep it rather than copy the data out ([`super::buffer::RecvBuffer::adopt`]). The offer
    /// lasts for that one segment.
    pub fn offer_frame(&mut self, frame: Option<Arc<crate::rxbuf::RxFrame>>) {
        self.rx_frame = frame;
    }

    /// A segment whose checksum the IP layer verified; `ecn` is its IP header's ECN field
    /// (RFC 3168 §5). With `pass_on` (one queue of several, not the last of the round), a
    /// segment that no connection or listener here takes is left alone, not reset: then
    /// false, for the layer below to pass it on to another queue.
    #[allow(clippy::too_many_arguments)]
    pub fn input(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        ecn: u8,
        bytes: &[u8],
        pass_on: bool,
        stats: &mut Counters,
    ) -> bool {
        stats.tcp_in_segs += 1;
        // Offered for this segment only.
        let frame = self.rx_frame.take();
        let Some(mut seg) = segment::parse(bytes) else {
            stats.tcp_in_errs += 1;
            return true;
        };
        seg.ce = ecn & super::ecn::ECN_MASK == super::ecn::CE;
        seg.frame = frame.as_ref();
        let small_frames = (!seg.payload.is_empty()).then(|| self.small_frames.clone());
        seg.small_frames = small_frames.as_ref();
        let remote = SocketAddr::new(src, seg.src_port);
        let local = SocketAddr::new(dst, seg.dst_port);
        let mut conn = self.by_tuple.get(&(local, remote)).copied();
        if let Some(id) = conn.filter(|id| self.syn_ends_time_wait(*id, &seg)) {
            // RFC 6191 (RFC 1122 §4.2.2.13 without timestamps): a new incarnation's SYN ends
            // TIME-WAIT and opens a connection, as Linux's `tcp_timewait_state_process`. A
            // client that reuses the port of a connection we closed first is not held off.
            self.remove(id, now);
            stats.tcp_tw_reopened += 1;
            conn = None;
        }
        if conn.is_none() && pass_on && !self.takes_here(now, local, remote, dst, &seg) {
            return false;
        }
        if let Some(id) = conn {
            self.segment_arrives(id, now, &seg, stats);
        } else if !self.is_local(dst) {
            self.intercept_input(now, local, remote, &seg, stats);
        } else if let Some(lid) = self.listener_for(local) {
            self.listen_input(lid, now, local, remote, &seg, stats);
        } else {
            self.closed_input(local, remote, &seg, stats);
        }
        true
    }

    /// Whether a segment of no connection here is this queue's to answer, on a link several
    /// queues share: a SYN to a listener of ours or to an intercepted address opens a
    /// connection here, and so does the bare ACK of a SYN cookie that checks (the queues
    /// share the secret, and the next queue may have no listener); anything else may be
    /// another queue's. A cookie ACK with data or a FIN goes round: it may belong to a
    /// connection its bare ACK opened on another queue (the cookie stays valid a minute or
    /// more), and the last queue of the round still opens it if none holds it.
    fn takes_here(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        dst: IpAddr,
        seg: &SegmentIn<'_>,
    ) -> bool {
        let f = seg.flags;
        if !self.is_local(dst) {
            return f.syn && !f.ack;
        }
        if self.listener_for(local).is_none() {
            return false;
        }
        let bare_ack = f.ack && !f.syn && !f.rst && !f.fin && seg.payload.is_empty();
        let cookie_ack = bare_ack && {
            let (client_isn, cookie) = (seg.seq - 1, seg.ack - 1);
            self.cookies
                .check(now, local, remote, client_isn, cookie)
                .is_some()
        };
        (f.syn && !f.ack) || cookie_ack
    }

    /// The listener that takes a SYN to `local`: the one of its family on its port, bound to
    /// its address or to the unspecified one, or else a dual-stack IPv6 one on `[::]` for
    /// IPv4 (as Linux's by default).
    fn listener_for(&self, local: SocketAddr) -> Option<SocketId> {
        let p = self.listen_ports.get(&local.port())?;
        let matches = |id: &SocketId| {
            self.listeners
                .get(id)
                .is_some_and(|l| l.local.ip().is_unspecified() || l.local.ip() == local.ip())
        };
        if local.is_ipv6() {
            return p.v6.filter(matches);
        }
        p.v4.filter(matches).or_else(|| {
            p.v6.filter(|id| self.listeners.get(id).is_some_and(super::Listener::dual))
        })
    }

    /// Whether `seg` is a SYN of a new incarnation of connection `id` in TIME-WAIT: its
    /// timestamp is newer than TS.Recent, or, without timestamps, its sequence number lies
    /// beyond what the old incarnation used (RFC 6191 §2).
    fn syn_ends_time_wait(&self, id: SocketId, seg: &SegmentIn<'_>) -> bool {
        let Some(t) = self.conns.get(&id) else {
            return false;
        };
        if t.state != State::TimeWait || !seg.flags.syn || seg.flags.ack || seg.flags.rst {
            return false;
        }
        match (t.opts.ts, seg.options.timestamp) {
            (Some(ts), Some((tsval, _))) => (tsval.wrapping_sub(ts.recent) as i32) > 0,
            _ => seg.seq.gt(t.rcv.nxt),
        }
    }

    /// RFC 9293 §3.10.7.1: no connection; answer with a reset unless it is one.
    pub(super) fn closed_input(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn<'_>,
        stats: &mut Counters,
    ) {
        if seg.flags.rst {
            return;
        }
        stats.tcp_no_port += 1;
        if seg.flags.ack {
            output::reset(local, remote, seg.ack, None, &mut self.out, stats);
        } else {
            output::reset(
                local,
                remote,
                Seq(0),
                Some(seg.seq + seg.seg_len()),
                &mut self.out,
                stats,
            );
        }
    }

    /// RFC 9293 §3.10.7.2: a SYN to a listener becomes a connection in SYN-RECEIVED.
    fn listen_input(
        &mut self,
        lid: SocketId,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn<'_>,
        stats: &mut Counters,
    ) {
        if seg.flags.rst {
            return;
        }
        let our_mss = self.mss_for(remote.ip(), now);
        if seg.flags.ack {
            if !seg.flags.syn && self.cookie_ack(lid, now, local, remote, seg, stats) {
                return;
            }
            output::reset(local, remote, seg.ack, None, &mut self.out, stats);
            return;
        }
        if !seg.flags.syn {
            return;
        }
        if self.accept_queue_full(lid) {
            stats.tcp_listen_drops += 1;
            return;
        }
        if self.pool.exhausted() {
            // No memory for another connection: the client retries its SYN (Linux drops too).
            stats.tcp_mem_refused += 1;
            return;
        }
        let Some(l) = self.listeners.get_mut(&lid) else {
            return;
        };
        if l.syn_queue >= self.cfg.syn_backlog {
            // SYN flood defence: answer without keeping state (RFC 4987 §3.6).
            let default = default_mss(remote.ip());
            let mss = u32::from(seg.options.mss.unwrap_or(default)).min(our_mss);
            let cookie = self.cookies.make(now, local, remote, seg.seq, mss);
            let window = l.buffers.recv.min(usize::from(u16::MAX)) as u16;
            let mut sink = output::Sink {
                out: &mut self.out,
                stats,
                mtus: &self.mtus,
                ato: self.cfg.delayed_ack,
                tso: self.cfg.tso,
            };
            let (ack, dscp) = (seg.seq + 1, l.dscp);
            let ends = (local, remote);
            output::cookie_syn_ack(ends, cookie, ack, window, our_mss, dscp, &mut sink);
            stats.tcp_syncookies_sent += 1;
            return;
        }
        l.syn_queue += 1;
        let opts = l.child_opts();
        let mapped = l.local.is_ipv6() && remote.is_ipv4();
        let id = self.ids.next_id();
        let iss = self.iss(now, local, remote);
        let ts_offset = self.isn.isn(now, remote, local).0;
        let open = Opening {
            local,
            remote,
            iss,
            ts_offset,
        };
        let mut t = self.passive_tcb(opts, mapped, open, now, our_mss, seg);
        t.set_state(State::SynReceived);
        take_syn(&mut t, seg, our_mss, now, iss, stats);
        t.user.listener = Some(lid);
        self.by_tuple.insert((local, remote), id);
        self.conns.insert(id, t);
        stats.tcp_passive_opens += 1;
        self.flush(id, now, stats);
    }

    /// A connection a listener's SYN or SYN-cookie ACK opens, before its handshake state:
    /// the listener's buffers (its receive ring at most [`super::UNACCEPTED_RCVBUF`] until
    /// it is accepted), Diffserv field and tracing, and its ends as its handle will show them
    /// (IPv4-mapped for an IPv4 peer of an IPv6 listener, if `mapped`).
    fn passive_tcb(
        &self,
        opts: super::SocketOpts,
        mapped: bool,
        open: Opening,
        now: Instant,
        our_mss: u32,
        seg: &SegmentIn<'_>,
    ) -> Tcb {
        let buffers = opts.buffers;
        let mut t = Tcb::new(&self.cfg, buffers, now, open, our_mss, &self.pool);
        t.io()
            .recv
            .set_capacity(buffers.recv.min(super::UNACCEPTED_RCVBUF));
        t.user.dscp = opts.dscp;
        t.set_congestion(opts.congestion, now);
        t.mapped = mapped;
        super::publish_addrs(&t);
        if opts.trace {
            t.set_trace(true);
        }
        if t.trace.is_some() {
            t.trace_received(now, seg);
        }
        t
    }

    /// An ACK for a listener with no connection: a valid SYN cookie opens one.
    fn cookie_ack(
        &mut self,
        lid: SocketId,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn<'_>,
        stats: &mut Counters,
    ) -> bool {
        let our_mss = self.mss_for(remote.ip(), now);
        let client_isn = seg.seq - 1;
        let cookie = seg.ack - 1;
        let Some(mss) = self.cookies.check(now, local, remote, client_isn, cookie) else {
            stats.tcp_syncookies_failed += u64::from(!seg.flags.rst);
            return false;
        };
        let Some((opts, v6_listener)) = self
            .listeners
            .get(&lid)
            .map(|l| (l.child_opts(), l.local.is_ipv6()))
        else {
            return false;
        };
        if self.accept_queue_full(lid) {
            stats.tcp_listen_drops += 1;
            return true;
        }
        if self.pool.exhausted() {
            stats.tcp_mem_refused += 1;
            return true;
        }
        let id = self.ids.next_id();
        let open = Opening {
            local,
            remote,
            iss: cookie,
            ts_offset: 0,
        };
        let mapped = v6_listener && remote.is_ipv4();
        let mut t = self.passive_tcb(opts, mapped, open, now, our_mss, seg);
        t.set_state(State::Established);
        t.rcv.irs = client_isn;
        t.rcv.nxt = seg.seq;
        // What the cookie's SYN-ACK advertised (no window scale without state).
        t.rcv.adv = seg.seq + opts.buffers.recv.min(usize::from(u16::MAX)) as u32;
        t.snd.una = seg.ack;
        t.snd.nxt = seg.ack;
        t.snd.max = seg.ack;
        t.snd.mss = mss.min(our_mss);
        t.cc.set_mss(t.snd.mss);
        t.snd.wscale = 0;
        t.rcv.wscale = 0;
        t.opts.sack_ok = false;
        t.opts.ts = None;
        t.snd.set_window(u32::from(seg.window), seg.seq, seg.ack);
        self.by_tuple.insert((local, remote), id);
        self.conns.insert(id, t);
        self.enqueue_accept(lid, id);
        self.trace_collect(id, now);
        stats.tcp_syncookies_recv += 1;
        stats.tcp_passive_opens += 1;
        // The ACK may carry data or a FIN already.
        if !seg.payload.is_empty() || seg.flags.fin {
            self.segment_arrives(id, now, seg, stats);
        }
        true
    }

    fn segment_arrives(
        &mut self,
        id: SocketId,
        now: Instant,
        seg: &SegmentIn<'_>,
        stats: &mut Counters,
    ) {
        // The handshake's last ACK finds the accept queue full: drop it and stay in
        // SYN-RECEIVED, so the SYN-ACK is resent and the client's ACK tried again once there
        // is room (Linux's listen overflow). The backlog bounds the queue.
        let completing = self
            .conns
            .get(&id)
            .filter(|t| t.state == State::SynReceived && seg.flags.ack && !seg.flags.rst)
            .and_then(|t| t.user.listener);
        if completing.is_some_and(|lid| self.accept_queue_full(lid)) {
            stats.tcp_listen_drops += 1;
            return;
        }
        let Some((remote, echo_changes)) = self
            .conns
            .get(&id)
            .map(|t| (t.remote.ip(), super::ecn::echo_changes(t, seg)))
        else {
            return;
        };
        let our_mss = self.mss_for(remote, now);
        if echo_changes {
            // The data so far is acknowledged with the mark it had, before this segment's.
            if let Some(t) = self.conns.get_mut(&id) {
                t.ack.now = true;
            }
            self.flush(id, now, stats);
        }
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        let traced = t.trace.is_some();
        if traced {
            t.trace_received(now, seg);
        }
        let was_time_wait = t.state == State::TimeWait;
        let verdict = if t.state == State::SynSent {
            syn_sent(t, now, seg, our_mss, &self.cfg, &mut self.out, stats)
        } else {
            synchronized(t, now, seg, &self.cfg, &mut self.out, stats)
        };
        if let Some(ka) = t.user.keepalive {
            t.timers.keepalive = Some(now + ka.idle);
            t.timers.keepalive_probes = 0;
        }
        let entered_time_wait = !was_time_wait && t.state == State::TimeWait;
        let listener = t.user.listener;
        match verdict {
            Verdict::Keep => {}
            Verdict::Established => {
                if let Some(lid) = listener {
                    if let Some(l) = self.listeners.get_mut(&lid) {
                        l.syn_queue = l.syn_queue.saturating_sub(1);
                    }
                    self.enqueue_accept(lid, id);
                }
            }
            Verdict::Closed(err) => {
                self.closed(id, now, err, stats);
                return;
            }
            Verdict::Reset => {
                self.abort(id, now, stats);
                return;
            }
        }
        if traced {
            self.trace_collect(id, now);
        }
        if entered_time_wait {
            self.time_wait += 1;
            if self.time_wait > self.cfg.max_time_wait {
                // The table is full: the last ACK goes now, and the connection with it.
                stats.tcp_tw_overflow += 1;
                self.flush(id, now, stats);
                self.closed(id, now, None, stats);
                return;
            }
        }
        // Out-of-order data (or a filled hole) is ACKed segment by segment, not once per
        // batch: each duplicate ACK and SACK tells the sender of another arrival, and losing
        // one ACK must not hide a whole flight (Linux's GRO never merges across a gap).
        let ack_each = self
            .conns
            .get_mut(&id)
            .is_some_and(|t| std::mem::take(&mut t.ack.out_of_order));
        if ack_each {
            self.flush(id, now, stats);
        } else {
            self.defer_output(id);
        }
        if self
            .conns
            .get(&id)
            .is_some_and(|t| !t.user.orphan && t.user.listener.is_none())
        {
            self.notify(id);
        }
    }

    /// The connection is over: reported to its handle if it has one, forgotten otherwise.
    pub(super) fn closed(
        &mut self,
        id: SocketId,
        now: Instant,
        err: Option<i32>,
        stats: &mut Counters,
    ) {
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(t.state, State::Established | State::CloseWait) && err == Some(libc::ECONNRESET)
        {
            stats.tcp_estab_resets += 1;
        }
        if matches!(t.state, State::SynSent | State::SynReceived) && err.is_some() {
            stats.tcp_attempt_fails += 1;
        }
        if err.is_some() {
            t.io().error = err;
        }
        if t.state == State::TimeWait {
            self.time_wait = self.time_wait.saturating_sub(1);
        }
        t.set_state(State::Closed);
        t.clear_timers();
        if t.trace.is_some() {
            self.trace_records += t.trace_take(now, &mut self.trace) as u64;
        }
        let key = (t.local, t.remote);
        let keep = !t.user.orphan && t.user.listener.is_none();
        self.by_tuple.remove(&key);
        self.reschedule(id);
        if keep {
            self.notify(id);
        } else {
            self.remove(id, now);
        }
    }
}

/// What the caller must do after a segment.
enum Verdict {
    Keep,
    /// The handshake completed.
    Established,
    Closed(Option<i32>),
    /// Send a RST and drop the connection.
    Reset,
}

/// RFC 9293 §3.10.7.3.
fn syn_sent(
    t: &mut Tcb,
    now: Instant,
    seg: &SegmentIn<'_>,
    our_mss: u32,
    cfg: &super::TcpConfig,
    out: &mut output::Outbox,
    stats: &mut Counters,
) -> Verdict {
    let mut ack_ok = false;
    if seg.flags.ack {
        if seg.ack.le(t.snd.iss) || seg.ack.gt(t.snd.max) {
            if !seg.flags.rst {
                t.trace_reset(now, seg.ack, None);
                output::reset(t.local, t.remote, seg.ack, None, out, stats);
            }
            return Verdict::Keep;
        }
        ack_ok = true;
    }
    if seg.flags.rst {
        return if ack_ok {
            Verdict::Closed(Some(libc::ECONNREFUSED))
        } else {
            Verdict::Keep
        };
    }
    if !seg.flags.syn {
        return Verdict::Keep;
    }
    take_syn(t, seg, our_mss, now, seg.ack, stats);
    if !ack_ok {
        // Simultaneous open (RFC 9293 §3.5, figure 8): answer with a SYN-ACK.
        t.set_state(State::SynReceived);
        t.snd.nxt = t.snd.iss;
        t.timers.rto = None;
        return Verdict::Keep;
    }
    t.snd.una = seg.ack;
    // Karn: the SYN's RTT counts only if it was not retransmitted (RFC 6298 §3).
    if t.rtx.retries == 0 {
        if let Some((_, sent)) = t.rtx.rtt_probe.take() {
            t.rtx.rtt.sample(now - sent);
        }
    }
    t.rtx.rtt_probe = None;
    t.rtx.retries = 0;
    t.rtx.rtt.reset_backoff();
    t.timers.rto = None;
    t.set_state(State::Established);
    t.ack.now = true;
    if !(seg.flags.urg || seg.flags.fin || !seg.payload.is_empty()) {
        return Verdict::Established;
    }
    // "If there are other controls or text in the segment, then continue processing at the
    // sixth step" (RFC 9293 §3.10.7.3): the data is taken (Linux drops it and waits for the
    // retransmission) and the urgent pointer kept.
    sixth_to_eighth(t, now, &past_the_syn(seg), cfg, stats, Verdict::Established)
}

/// What a SYN carries besides the SYN: its text, which begins after the SYN's sequence
/// number, with the urgent pointer counted from there, so that the mark stays at
/// SEG.SEQ + SEG.UP (RFC 9293 §3.8.5).
fn past_the_syn<'a>(seg: &SegmentIn<'a>) -> SegmentIn<'a> {
    SegmentIn {
        seq: seg.seq + 1,
        flags: Flags {
            syn: false,
            ..seg.flags
        },
        urgent_ptr: seg.urgent_ptr.saturating_sub(1),
        ..*seg
    }
}

/// Data offset of `seq` relative to rcv_nxt, or how much of the segment lies before rcv_nxt.
fn trim(t: &Tcb, seq: Seq) -> (usize, usize) {
    if seq.lt(t.rcv.nxt) {
        (0, t.rcv.nxt.since(seq) as usize)
    } else {
        (seq.since(t.rcv.nxt) as usize, 0)
    }
}

/// A challenge ACK (RFC 5961 §3.2, §4.2, §5.2), at most ten a second per connection.
fn challenge_ack(t: &mut Tcb, now: Instant, stats: &mut Counters) {
    if now - t.ack.challenge_window >= Duration::from_secs(1) {
        t.ack.challenge_window = now;
        t.ack.challenge_count = 0;
    }
    if t.ack.challenge_count < 10 {
        t.ack.challenge_count += 1;
        t.ack.now = true;
        stats.tcp_challenge_acks += 1;
    }
}

/// RFC 9293 §3.10.7.4 for every state after SYN-SENT.
fn synchronized(
    t: &mut Tcb,
    now: Instant,
    seg: &SegmentIn<'_>,
    cfg: &super::TcpConfig,
    out: &mut output::Outbox,
    stats: &mut Counters,
) -> Verdict {
    // PAWS (RFC 7323 §5.3): an old timestamp marks an old duplicate.
    if let (Some(ts), Some((tsval, _))) = (t.opts.ts, seg.options.timestamp) {
        if !seg.flags.rst
            && (tsval.wrapping_sub(ts.recent) as i32) < 0
            && now - ts.recent_age < PAWS_IDLE
        {
            stats.tcp_paws_drops += 1;
            t.ack.now = true;
            return Verdict::Keep;
        }
    }

    // Simultaneous open (RFC 9293 figure 8, line 6): the peer's SYN-ACK repeats its SYN's
    // sequence number; it acknowledges ours and completes the handshake (as Linux accepts it).
    // Its window is not scaled, being a SYN's (RFC 7323 §2.2); its text and controls go on
    // at the sixth step, as in SYN-SENT.
    if t.state == State::SynReceived
        && seg.flags.syn
        && seg.flags.ack
        && !seg.flags.rst
        && seg.seq + 1 == t.rcv.nxt
        && seg.ack == t.snd.max
    {
        t.set_state(State::Established);
        t.snd.set_window(u32::from(seg.window), seg.seq, seg.ack);
        process_ack(t, now, seg, stats);
        t.ack.now = true;
        return sixth_to_eighth(t, now, &past_the_syn(seg), cfg, stats, Verdict::Established);
    }

    // First: is the segment acceptable?
    let wnd = t.advertised_room();
    let len = seg.seg_len();
    let end = t.rcv.nxt + wnd;
    let acceptable = match (len, wnd) {
        (0, 0) => seg.seq == t.rcv.nxt,
        (0, _) => seg.seq.in_range(t.rcv.nxt, end),
        (_, 0) => false,
        (_, _) => {
            seg.seq.in_range(t.rcv.nxt, end) || (seg.seq + (len - 1)).in_range(t.rcv.nxt, end)
        }
    };
    // With a zero window, valid ACKs, URGs and RSTs still count (RFC 9293 §3.10.7.4).
    let zero_window_probe = !acceptable && wnd == 0 && seg.seq == t.rcv.nxt;
    if !acceptable && !zero_window_probe {
        if !seg.flags.rst {
            t.ack.now = true;
            let data_end = seg.seq + seg.payload.len() as u32;
            if !seg.payload.is_empty() && data_end.le(t.rcv.nxt) {
                // Data received already: the ACK reports it as a D-SACK (RFC 2883 §4.1).
                t.ack.dsack = Some((seg.seq, data_end));
            }
            if t.state == State::TimeWait && seg.flags.fin {
                t.timers.timewait = Some(now + 2 * cfg.msl);
            }
        }
        stats.tcp_out_of_window += 1;
        return Verdict::Keep;
    }

    // TS.Recent (RFC 7323 §4.3): any acceptable segment with a newer TSval at or before the
    // last ACK we sent (pure ACKs and FINs included).
    if let (Some(ts), Some((tsval, _))) = (t.opts.ts.as_mut(), seg.options.timestamp) {
        if seg.seq.le(t.rcv.last_ack_sent) && (tsval.wrapping_sub(ts.recent) as i32) >= 0 {
            ts.recent = tsval;
            ts.recent_age = now;
        }
    }

    // Second: RST (RFC 5961 §3.2: only an exact match resets; others get a challenge ACK).
    if seg.flags.rst {
        if seg.seq != t.rcv.nxt {
            challenge_ack(t, now, stats);
            return Verdict::Keep;
        }
        return match t.state {
            State::SynReceived if t.user.listener.is_some() => Verdict::Closed(None),
            State::SynReceived => Verdict::Closed(Some(libc::ECONNREFUSED)),
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                Verdict::Closed(Some(libc::ECONNRESET))
            }
            _ => Verdict::Closed(None),
        };
    }

    // Fourth: SYN. A retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again; any other SYN
    // gets a challenge ACK (RFC 5961 §4.2).
    if seg.flags.syn {
        if t.state == State::SynReceived && seg.seq == t.rcv.irs {
            t.snd.nxt = t.snd.iss;
        } else {
            challenge_ack(t, now, stats);
        }
        return Verdict::Keep;
    }

    // Fifth: ACK.
    if !seg.flags.ack {
        return Verdict::Keep;
    }
    let mut verdict = Verdict::Keep;
    if t.state == State::SynReceived {
        if !(seg.ack.gt(t.snd.una) && seg.ack.le(t.snd.max)) {
            t.trace_reset(now, seg.ack, None);
            output::reset(t.local, t.remote, seg.ack, None, out, stats);
            return Verdict::Keep;
        }
        t.set_state(State::Established);
        t.snd
            .set_window(u32::from(seg.window) << t.snd.wscale, seg.seq, seg.ack);
        verdict = Verdict::Established;
    }
    if seg.ack.gt(t.snd.max) {
        t.ack.now = true;
        return verdict;
    }
    if seg.ack.lt(t.snd.una - t.snd.max_wnd.max(1)) {
        challenge_ack(t, now, stats);
        return verdict;
    }
    process_ack(t, now, seg, stats);

    // State changes when our FIN is acknowledged.
    if t.fin_acked() {
        match t.state {
            State::FinWait1 => {
                t.set_state(State::FinWait2);
                if t.user.orphan {
                    t.timers.finwait2 = Some(now + cfg.fin_timeout);
                }
            }
            State::Closing => enter_time_wait(t, now, cfg),
            State::LastAck => return Verdict::Closed(None),
            _ => {}
        }
    }

    sixth_to_eighth(t, now, seg, cfg, stats, verdict)
}

/// RFC 9293 §3.10.7.4, steps six to eight: the urgent pointer, the text and the FIN of a
/// segment found acceptable (`verdict` is what the earlier steps decided).
fn sixth_to_eighth(
    t: &mut Tcb,
    now: Instant,
    seg: &SegmentIn<'_>,
    cfg: &super::TcpConfig,
    stats: &mut Counters,
    verdict: Verdict,
) -> Verdict {
    // Sixth: URG, even on a segment a zero window keeps out (MUST-66).
    if seg.flags.urg && t.state.can_receive() {
        super::urgent::receive_pointer(t, seg.seq, seg.urgent_ptr, stats);
    }

    // Seventh: segment text.
    if !seg.payload.is_empty() && t.state.can_receive() {
        if t.user.orphan {
            // Data for a socket nobody will read (RFC 2525 §2.17; Linux resets too).
            return Verdict::Reset;
        }
        receive_data(t, now, seg, cfg, stats);
    }

    // Eighth: FIN, once every byte before it has arrived.
    if seg.flags.fin && t.fin.peer.is_none() && t.state != State::TimeWait {
        t.fin.peer = Some(seg.seq + seg.payload.len() as u32);
    }
    if let Some(f) = t.fin.peer {
        if t.rcv.nxt == f {
            t.rcv.nxt = f + 1;
            // Urgent data ends with the stream at the latest.
            let mut io = t.io();
            let readable = io.recv.readable();
            io.rcv_urgent = io.rcv_urgent.map(|l| l.min(readable)).filter(|&l| l > 0);
            drop(io);
            match t.state {
                State::Established => {
                    // The application's close usually follows at once: as Linux does
                    // (`tcp_fin`), the ACK waits in interactive mode to ride on our FIN,
                    // at most the delayed-ACK timeout (RFC 1122 §4.2.3.2).
                    t.set_state(State::CloseWait);
                    t.ack.delack.pingpong = true;
                    t.timers.delack.get_or_insert(now + cfg.delayed_ack);
                }
                _ => t.ack.now = true,
            }
            match t.state {
                State::FinWait1 if t.fin_acked() => enter_time_wait(t, now, cfg),
                State::FinWait1 => t.set_state(State::Closing),
                State::FinWait2 => enter_time_wait(t, now, cfg),
                _ => {}
            }
        } else if t.state == State::TimeWait && seg.flags.fin {
            // A retransmitted FIN: ACK it and restart the 2 MSL wait (RFC 9293 §3.10.7.4).
            t.ack.now = true;
            t.timers.timewait = Some(now + 2 * cfg.msl);
        }
    }
    verdict
}

fn enter_time_wait(t: &mut Tcb, now: Instant, cfg: &super::TcpConfig) {
    t.set_state(State::TimeWait);
    t.timers.timewait = Some(now + 2 * cfg.msl);
    t.timers.rto = None;
    t.timers.persist = None;
    t.timers.finwait2 = None;
    t.recovery.rack.reo_at = None;
    t.recovery.rack.pto_at = None;
}

/// Acknowledgement of our data: RTT, congestion control, NewReno recovery, window update.
fn process_ack(t: &mut Tcb, now: Instant, seg: &SegmentIn<'_>, stats: &mut Counters) {
    // A SYN's window is never scaled (RFC 7323 §2.2): a SYN-ACK's in a simultaneous open.
    let shift = if seg.flags.syn { 0 } else { t.snd.wscale };
    let new_window = u32::from(seg.window) << shift;
    // What this ACK delivers, for PRR: SND.UNA's advance and the change in SACKed bytes.
    let (una_before, sacked_before) = (t.snd.una, t.recovery.scoreboard.sacked_bytes());
    let mut sacked = [None; 4];
    let mut dsack = None;
    let mut new_sack = false;
    if t.opts.sack_ok {
        let una = t.snd.una.max(seg.ack);
        dsack = dsack_block(&seg.options.sack, seg.ack);
        // Only valid blocks (RFC 2018 §4) count, for the scoreboard and for RACK; a D-SACK
        // below the cumulative ACK is not one.
        for (slot, &(l, r)) in sacked.iter_mut().zip(seg.options.sack.iter().flatten()) {
            if l.gt(una) && r.gt(l) && r.le(t.snd.max) {
                *slot = Some((l, r));
            }
        }
        new_sack = t.recovery.scoreboard.update(una, t.snd.max, &sacked);
    }
    let newly_acked = seg.ack.gt(t.snd.una);
    // An RTT sample, for a controller that models the path.
    let mut ack_rtt = None;
    if newly_acked || new_sack {
        // The path delivers: the probe timeout restarts (RFC 8985 §7.2), and probing with it.
        t.recovery.rack.on_progress();
    }
    // ECN-Echo (RFC 3168 §6.1.2); a SYN-ACK's ECE is the handshake's, not a mark.
    let ece = t.ecn.ok && seg.flags.ece && !seg.flags.syn;
    let probe_dsack = t.recovery.rack.dsack_for_probe(dsack);
    if let Some((l, r)) = dsack {
        stats.tcp_dsack_recv += 1;
        // A duplicate arrived: reordering or a spurious retransmission fooled the loss
        // detection (RFC 8985 §6.2.4); a probe's duplicate says nothing of reordering.
        if !probe_dsack {
            t.recovery.rack.on_dsack(t.snd.una, t.snd.nxt);
        }
        log::trace!("{}: D-SACK {l}..{r}", t.remote);
    }
    // Did a probe that resent data repair a loss (RFC 8985 §7.4)?
    let pure_dup = !newly_acked
        && !new_sack
        && seg.payload.is_empty()
        && !seg.flags.fin
        && seg.ack == t.snd.una
        && new_window == t.snd.wnd;
    if t.recovery.rack.on_probe_ack(seg.ack, pure_dup, dsack) == Some(true) {
        super::recovery::probe_repaired(t, now, stats);
    }
    if seg.ack.gt(t.snd.una) {
        let acked = seg.ack.since(t.snd.una);
        let first_acked = t.snd.una;
        let syn = u32::from(t.snd.una == t.snd.iss);
        let fin = u32::from(t.fin.ours.is_some_and(|f| seg.ack.gt(f)));
        t.io().send.consume((acked - syn - fin) as usize);
        t.snd.una = seg.ack;
        if t.snd.nxt.lt(t.snd.una) {
            t.snd.nxt = t.snd.una;
        }
        // RTT, as Linux takes it: from when the oldest data this ACK covers was sent, in
        // microseconds, if none of it was resent (Karn, RFC 6298 §3); else from the echoed
        // timestamp, in milliseconds (RFC 7323 §4.2); else from the timed segment.
        let mut rtt = t
            .rtx
            .rto_recover
            .is_none()
            .then(|| t.recovery.rack.rtt_sample(first_acked, seg.ack, now))
            .flatten();
        let stale = |tsecr: u32| {
            t.rtx
                .rto_stamp
                .is_some_and(|stamp| (tsecr.wrapping_sub(stamp) as i32) < 0)
        };
        if let (Some(ts), Some((_, tsecr))) = (t.opts.ts, seg.options.timestamp) {
            if rtt.is_none() && tsecr != 0 && !stale(tsecr) {
                let ms = ts_now(now, ts.offset).wrapping_sub(tsecr);
                if ms < 60_000 {
                    rtt = Some(Duration::from_millis(u64::from(ms.max(1))));
                }
            }
        }
        if let Some((end, sent)) = t.rtx.rtt_probe {
            if seg.ack.ge(end) {
                rtt = rtt.or(Some(now - sent));
                t.rtx.rtt_probe = None;
            }
        }
        if let Some(r) = rtt {
            t.rtx.rtt.sample(r);
        }
        ack_rtt = rtt;
        if t.rtx.rto_recover.is_some_and(|point| t.snd.una.ge(point)) {
            t.rtx.rto_recover = None;
            t.rtx.rto_stamp = None;
        }
        t.rtx.retries = 0;
        t.rtx.rtt.reset_backoff();
        t.recovery.scoreboard.advance(t.snd.una);
        t.recovery.rack.advance(t.snd.una);
        match t.recovery.recover {
            Some(recover) if seg.ack.lt(recover) => {
                // Partial ACK (RFC 6582 §3.2 step 5) without SACK: the new first segment is
                // lost too; deflate, and resend it unless already resent. With SACK, RFC 6675
                // and RACK judge what is lost, and PRR paces the resending (Linux forces
                // nothing here either).
                if !t.opts.sack_ok {
                    t.recovery.on_partial_ack(acked, t.snd.mss);
                    if t.recovery.high_rxt.le(t.snd.una) {
                        t.output.retransmit_head = true;
                    }
                }
            }
            Some(_) => {
                t.recovery.exit();
                t.recovery.rack.on_recovery_end();
            }
            None => {
                t.recovery.on_new_ack();
                // Congestion window validation: a window the sender does not fill stays;
                // nor does an ACK that echoes a mark grow it (RFC 3168 §6.1.2).
                let grow = !ece && t.output.cwnd_use.may_grow(t.cc.cwnd(), t.cc.ssthresh());
                t.cc.on_ack(now, if grow { acked } else { 0 }, rtt);
            }
        }
        t.timers.rto = if t.snd.una == t.snd.max {
            None
        } else {
            Some(now + t.rtx.rtt.rto())
        };
    } else if seg.ack == t.snd.una
        && seg.payload.is_empty()
        && !seg.flags.fin
        && new_window == t.snd.wnd
        && t.snd.max.gt(t.snd.una)
    {
        // A duplicate ACK (RFC 5681 §2).
        t.recovery.on_dupack(t.opts.sack_ok, t.snd.mss);
    }
    // Answered once SND.UNA moved, so that a window's end is judged by it; an old ACK's
    // echo is not answered (Linux ignores ECE on an ACK below SND.UNA).
    if ece && !seg.ack.lt(una_before) {
        super::recovery::ecn_echo(t, now, stats);
    }
    // Spurious retransmissions undo their reduction (RFC 3708, RFC 3522, RFC 4015).
    let tsecr = seg.options.timestamp.map(|(_, ecr)| ecr);
    super::recovery::check_undo(t, now, seg.ack, tsecr.filter(|_| newly_acked), dsack, stats);
    // Loss detection: RACK on what this ACK delivered (RFC 8985 §6.2), then fast retransmit
    // on three duplicate ACKs or SACKed data deemed lost (RFC 5681 §3.2, RFC 6675 §5).
    if t.opts.sack_ok {
        let ack = newly_acked.then_some(seg.ack);
        let rack_rtt = t.recovery.rack.on_ack(now, ack, &sacked);
        ack_rtt = ack_rtt.or(rack_rtt);
        super::recovery::detect_loss(t, now, stats);
    }
    super::recovery::maybe_enter(t, now, stats);
    // A D-SACKed retransmission was delivered too (Linux counts it), unless the block is
    // larger than any window, which no duplicate can be.
    let duplicate = dsack
        .map(|(l, r)| r.since(l))
        .filter(|&n| n <= t.snd.max_wnd)
        .unwrap_or(0);
    let delivered = (i64::from(t.snd.una.since(una_before))
        + i64::from(t.recovery.scoreboard.sacked_bytes())
        - i64::from(sacked_before)
        + i64::from(duplicate))
    .max(0) as u32;
    let safe = t.snd.una.gt(una_before) && !new_sack;
    super::recovery::on_recovery_ack(t, delivered, safe);
    if t.rate.is_some() {
        // The newest data this ACK delivered: the first SACK block reports the segment that
        // arrived last (RFC 2018 §4), if it is new; else the cumulative ACK's.
        let newest = sacked
            .iter()
            .flatten()
            .next()
            .filter(|_| new_sack)
            .map(|&(_, r)| r)
            .into_iter()
            .chain(newly_acked.then_some(seg.ack))
            .reduce(Seq::max);
        rate_sample(t, now, newest, delivered, ack_rtt, ece);
    }
    // Window update (RFC 9293 §3.10.7.4, fifth step).
    t.snd.update_window(new_window, seg.seq, seg.ack);
}

/// Feeds a model-based controller (BBR) the ACK's rate sample: `delivered` bytes newly
/// delivered, the newest ending at `newest`, with this RTT sample.
fn rate_sample(
    t: &mut Tcb,
    now: Instant,
    newest: Option<Seq>,
    delivered: u32,
    rtt: Option<Duration>,
    ece: bool,
) {
    let lost_point = t.opts.sack_ok.then(|| super::recovery::lost_point(t));
    let in_flight = super::recovery::in_flight(t);
    let min_rtt = t.recovery.rack.min_rtt();
    let Some(rate) = t.rate.as_mut() else {
        return;
    };
    let board = &t.recovery.scoreboard;
    if let Some(lp) = lost_point {
        rate.on_lost(t.snd.una, lp, |a, b| board.unsacked(a, b));
    }
    let mut rs = rate.on_ack(now, t.snd.una, newest, delivered, min_rtt, ece);
    rs.rtt = rtt;
    rs.in_flight = in_flight;
    rs.total_delivered = rate.delivered;
    rs.total_delivered_ce = rate.delivered_ce;
    rs.in_recovery = t.recovery.recover.is_some() || t.rtx.rto_recover.is_some();
    rs.cwnd_limited = t.output.cwnd_use.limited;
    t.cc.on_rate_sample(now, &rs);
    if t.cc.app_limited_now() {
        rate.mark_app_limited(in_flight);
    }
}

/// The D-SACK among an ACK's SACK blocks: the first one, if it lies below the cumulative ACK
/// or inside the second block (RFC 2883 §4).
fn dsack_block(blocks: &[Option<(Seq, Seq)>; 4], ack: Seq) -> Option<(Seq, Seq)> {
    let (l, r) = blocks[0]?;
    let inside_second = blocks[1].is_some_and(|(l2, r2)| l.ge(l2) && r.le(r2));
    (r.gt(l) && (r.le(ack) || inside_second)).then_some((l, r))
}

/// Queues the segment's data and decides between an immediate and a delayed ACK.
fn receive_data(
    t: &mut Tcb,
    now: Instant,
    seg: &SegmentIn<'_>,
    cfg: &super::TcpConfig,
    stats: &mut Counters,
) {
    super::ecn::on_data(t, seg, stats);
    let (offset, skip) = trim(t, seg.seq);
    let end = seg.seq + seg.payload.len() as u32;
    if skip > 0 {
        // Data below RCV.NXT was received already: a retransmission; the ACK reports the
        // duplicate part as a D-SACK (RFC 2883 §4.1).
        t.ack.dsack = Some((seg.seq, end.min(t.rcv.nxt)));
    }
    if skip >= seg.payload.len() {
        // All of it was received already: ACK at once (RFC 5681 §4.2).
        t.ack.now = true;
        return;
    }
    if offset > 0 && t.io().recv.holds(offset, offset + seg.payload.len()) {
        // All of it waits out of order already.
        t.ack.dsack = Some((seg.seq, end));
    }
    let data = &seg.payload[skip..];
    let had_ooo = t.io().recv.has_ooo();
    let ins = {
        let mut io = t.io();
        // Large, the data may stay in its frame: queued as it came in order, held until
        // the hole before it fills out of order.
        let kept = seg.frame.and_then(|f| io.recv.adopt(offset, f, data));
        let held = kept.is_some_and(|k| !k.rejected);
        stats.tcp_in_kept += u64::from(held);
        stats.tcp_ofo_kept += u64::from(held && offset > 0);
        // Out of order and not kept (its frame too large for it, or none), it may wait in a
        // copy of its own, so that the large frames behind it can still wait in theirs.
        let copied = || {
            seg.small_frames
                .filter(|_| offset > 0)
                .and_then(|pool| io.recv.hold_copy(offset, data, pool))
        };
        kept.or_else(copied)
            .unwrap_or_else(|| io.recv.insert(offset, data))
    };
    if ins.rejected {
        stats.tcp_ofo_drops += 1;
    }
    if ins.pruned {
        // The sender learns at once where the stream stands, as Linux acks such a drop.
        stats.tcp_mem_drops += 1;
        t.ack.now = true;
    }
    if ins.trimmed > 0 {
        stats.tcp_rcv_pruned += 1;
    }
    t.rcv.nxt += ins.advanced as u32;
    if offset > 0 || had_ooo {
        // Out of order, or filling a hole (the last one included): ACK now so the sender
        // sees it (RFC 5681 §4.2; Linux ACKs at once when its out-of-order queue empties).
        stats.tcp_ofo_queued += u64::from(offset > 0);
        t.ack.now = true;
        t.ack.out_of_order = true;
        return;
    }
    // Delayed ACK: every second full-sized segment, else within `delayed_ack`
    // (RFC 1122 §4.2.3.2, RFC 5681 §4.2); at once in quick-ACK mode.
    t.ack.unacked_bytes = t.ack.unacked_bytes.saturating_add(data.len() as u32);
    t.rcv.mss = t.rcv.mss.max((seg.payload.len() as u32).min(t.snd.mss));
    let window = t.rcv_wnd();
    t.ack
        .delack
        .on_data(now, t.rtx.rtt.rto(), window, t.rcv.mss);
    if t.ack.unacked_bytes >= 2 * t.rcv.mss || t.ack.delack.quick_ack() {
        t.ack.now = true;
    } else if t.timers.delack.is_none() {
        t.timers.delack = Some(now + cfg.delayed_ack);
    }
}

/// One segment in, the segments out, per state (RFC 9293 §3.10.7).
#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::seq::Seq;
    use super::super::tcb::State;
    use std::time::Duration;

    #[test]
    fn listen_answers_a_syn_with_a_syn_ack() {
        let mut fx = Fixture::listen();
        let out = fx.send(seg(PEER_ISS).syn().mss(1200));
        assert_eq!(out.len(), 1, "{out:?}");
        let s = &out[0];
        assert!(s.flags.syn && s.flags.ack && !s.flags.rst);
        assert_eq!(s.ack, Some(PEER_ISS + 1));
        assert_eq!(s.options.mss, Some(1460), "our MSS, from the MTU");
        assert!(s.window > 0);
        fx.id = fx.tcp.conns.keys().next().copied();
        assert_eq!(fx.tcb().state, State::SynReceived);
        assert_eq!(fx.tcb().snd.mss, 1200, "the peer's MSS bounds ours");
    }

    #[test]
    fn listen_resets_an_ack_and_ignores_a_reset() {
        let mut fx = Fixture::listen();
        let out = fx.send(seg(PEER_ISS).ack(super::Seq(77)));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].flags.rst && !out[0].flags.ack);
        assert_eq!(
            out[0].seq,
            super::Seq(77),
            "RFC 9293 §3.10.7.2: <SEQ=SEG.ACK><CTL=RST>"
        );
        assert!(fx.send(seg(PEER_ISS).rst()).is_empty());
        assert!(fx.tcp.conns.is_empty());
    }

    #[test]
    fn syn_received_resets_an_unacceptable_ack() {
        let mut fx = Fixture::syn_received();
        let bad = fx.iss + 500;
        let out = fx.send(seg(PEER_ISS + 1).ack(bad));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].flags.rst);
        assert_eq!(out[0].seq, bad);
        assert_eq!(fx.tcb().state, State::SynReceived);
    }

    #[test]
    fn syn_received_forgets_the_connection_on_a_reset() {
        let mut fx = Fixture::syn_received();
        let out = fx.send(seg(PEER_ISS + 1).rst());
        assert!(out.is_empty(), "{out:?}");
        assert!(
            fx.tcp.conns.is_empty(),
            "back to LISTEN (RFC 9293 §3.10.7.4)"
        );
        assert!(fx.tcp.listeners.contains_key(&fx.listener.unwrap()));
    }

    #[test]
    fn established_acks_the_first_data_at_once_and_delivers_it() {
        let mut fx = Fixture::established();
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(b"hello"));
        assert_eq!(out.len(), 1, "a quick ACK: {out:?}");
        assert_eq!(out[0].ack, Some(PEER_ISS + 6));
        assert!(out[0].payload.is_empty());
        assert_eq!(fx.read(), b"hello");
    }

    #[test]
    fn established_acks_a_duplicate_and_drops_it() {
        let mut fx = Fixture::established();
        fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(b"hello"));
        assert_eq!(fx.read(), b"hello");
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(b"hello"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].ack, Some(PEER_ISS + 6));
        assert!(fx.read().is_empty(), "nothing delivered twice");
    }

    #[test]
    fn established_challenges_a_reset_that_is_not_exactly_at_rcv_nxt() {
        let mut fx = Fixture::established();
        let out = fx.send(seg(PEER_ISS + 100).rst());
        assert_eq!(out.len(), 1, "a challenge ACK (RFC 5961 §3.2): {out:?}");
        assert_eq!(out[0].ack, Some(PEER_ISS + 1));
        assert_eq!(fx.tcb().state, State::Established);
        assert!(fx.send(seg(PEER_ISS + 1).rst()).is_empty());
        assert_eq!(fx.tcb().state, State::Closed, "a reset exactly at RCV.NXT");
        assert_eq!(fx.tcb().io().error, Some(libc::ECONNRESET));
    }

    #[test]
    fn established_fin_leads_to_close_wait_with_its_ack_delayed() {
        let mut fx = Fixture::established();
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).fin());
        assert!(out.is_empty(), "the ACK waits for our FIN: {out:?}");
        assert_eq!(fx.tcb().state, State::CloseWait);
        let out = fx.advance(Duration::from_millis(40));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].ack, Some(PEER_ISS + 2));
        assert!(!out[0].flags.fin);
    }

    #[test]
    fn the_handshake_ack_waits_while_the_accept_queue_is_full() {
        let mut fx = Fixture::listen_with_backlog(1);
        let mut isss = Vec::new();
        for port in [40001, 40002] {
            let out = fx.send(seg(PEER_ISS).syn().src_port(port));
            assert_eq!(out.len(), 1, "{out:?}");
            isss.push(out[0].seq);
        }
        let acks: Vec<_> = [40001, 40002]
            .into_iter()
            .zip(&isss)
            .map(|(port, iss)| fx.send(seg(PEER_ISS + 1).ack(*iss + 1).src_port(port)))
            .collect();
        assert!(acks.iter().all(|o| o.is_empty()));
        assert_eq!(
            fx.stats.tcp_listen_drops, 1,
            "the second ACK found the queue full"
        );
        let l = fx.listener.unwrap();
        assert!(fx.tcp.accept(l).is_some());
        assert!(
            fx.tcp.accept(l).is_none(),
            "one connection queued, the backlog"
        );
        let states: Vec<State> = fx.tcp.conns.values().map(|t| t.state).collect();
        assert!(states.contains(&State::SynReceived), "{states:?}");
    }

    #[test]
    fn filling_the_last_hole_is_acked_at_once_even_with_a_fin() {
        let mut fx = Fixture::established();
        let id = fx.id.unwrap();
        fx.tcp.conns.get_mut(&id).unwrap().ack.delack.pingpong = true;
        let ooo = fx.send(seg(PEER_ISS + 6).ack(fx.iss + 1).data(b"world").fin());
        assert_eq!(
            ooo.len(),
            1,
            "out of order: a duplicate ACK at once: {ooo:?}"
        );
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(b"hello"));
        assert_eq!(
            out.len(),
            1,
            "the hole filled: ACK at once (RFC 5681 §4.2): {out:?}"
        );
        assert_eq!(out[0].ack, Some(PEER_ISS + 12), "data and FIN");
        assert_eq!(fx.tcb().state, State::CloseWait);
    }

    #[test]
    fn in_a_batch_each_out_of_order_segment_gets_its_own_ack() {
        let mut fx = Fixture::established();
        let a = fx.iss + 1;
        let out = fx.send_batch(&[
            seg(PEER_ISS + 1).ack(a).data(b"one"),
            seg(PEER_ISS + 7).ack(a).data(b"three"),
            seg(PEER_ISS + 15).ack(a).data(b"five"),
        ]);
        // In-order data is ACKed once for the batch; each segment beyond a hole is ACKed
        // (with its SACK block) as it arrives, so a lost ACK hides one arrival, not the flight.
        let acks: Vec<_> = out.iter().map(|s| s.ack.unwrap()).collect();
        assert_eq!(acks, [PEER_ISS + 4, PEER_ISS + 4], "{out:?}");
        assert!(out.iter().all(|s| s.payload.is_empty()));
    }

    #[test]
    fn syn_sent_completes_on_a_syn_ack() {
        let mut fx = Fixture::syn_sent();
        let out = fx.send(seg(PEER_ISS).syn().ack(fx.iss + 1).mss(1000));
        assert_eq!(out.len(), 1, "the handshake's ACK: {out:?}");
        assert_eq!(out[0].ack, Some(PEER_ISS + 1));
        assert_eq!(fx.tcb().state, State::Established);
        assert_eq!(fx.tcb().snd.mss, 1000);
    }

    /// RFC 9293 §3.10.7.3: text and controls on a SYN-ACK go on at the sixth step, where
    /// the text begins after the SYN; one ACK covers the SYN, the data and the FIN.
    #[test]
    fn syn_sent_takes_the_data_urgent_pointer_and_fin_of_a_syn_ack() {
        let mut fx = Fixture::syn_sent();
        let syn_ack = seg(PEER_ISS).syn().ack(fx.iss + 1).data(b"hello");
        let out = fx.send(syn_ack.urgent(3).fin());
        assert_eq!(out.len(), 1, "one ACK: {out:?}");
        assert_eq!(out[0].ack, Some(PEER_ISS + 7), "SYN, five octets, FIN");
        assert_eq!(fx.tcb().state, State::CloseWait);
        assert_eq!(fx.tcb().io().rcv_urgent, Some(2), "the mark is SEG.SEQ + 3");
        assert_eq!(fx.read(), b"he", "a read stops at the mark");
        assert_eq!(fx.read(), b"llo");
    }

    /// Simultaneous open (RFC 9293 figure 8): the peer's SYN-ACK in SYN-RECEIVED completes
    /// the handshake; its window is a SYN's, never scaled (RFC 7323 §2.2), and its text
    /// is taken after the SYN.
    #[test]
    fn a_simultaneous_open_takes_the_syn_acks_window_unscaled_and_its_data() {
        let mut fx = Fixture::syn_sent();
        let out = fx.send(seg(PEER_ISS).syn().wscale(7).window(1000));
        assert_eq!(fx.tcb().state, State::SynReceived);
        assert!(out.iter().all(|o| o.flags.syn && o.flags.ack), "{out:?}");
        let syn_ack = seg(PEER_ISS).syn().ack(fx.iss + 1).wscale(7).window(1000);
        let out = fx.send(syn_ack.data(b"hi"));
        assert_eq!(fx.tcb().state, State::Established);
        assert_eq!(fx.tcb().snd.wnd, 1000, "not 1000 << 7");
        assert_eq!(
            out.last().and_then(|o| o.ack),
            Some(PEER_ISS + 3),
            "{out:?}"
        );
        assert_eq!(fx.read(), b"hi");
    }

    #[test]
    fn syn_sent_resets_a_bad_ack_and_is_refused_by_a_good_reset() {
        let mut fx = Fixture::syn_sent();
        let out = fx.send(seg(PEER_ISS).syn().ack(fx.iss + 9));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].flags.rst);
        assert_eq!(fx.tcb().state, State::SynSent);
        assert!(fx.send(seg(PEER_ISS).rst().ack(fx.iss + 1)).is_empty());
        assert_eq!(fx.tcb().io().error, Some(libc::ECONNREFUSED));
    }

    #[test]
    fn time_wait_acks_a_retransmitted_fin() {
        let mut fx = Fixture::established();
        let id = fx.id.unwrap();
        fx.tcp
            .shutdown(id, fx.now, false, true, &mut fx.stats)
            .unwrap();
        let out = fx.output();
        assert!(out.iter().any(|s| s.flags.fin), "our FIN: {out:?}");
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 2).fin());
        assert_eq!(fx.tcb().state, State::TimeWait);
        assert_eq!(out.len(), 1, "{out:?}");
        let out = fx.send(seg(PEER_ISS + 1).ack(fx.iss + 2).fin());
        assert_eq!(
            out.len(),
            1,
            "the retransmitted FIN is ACKed again: {out:?}"
        );
        assert_eq!(out[0].ack, Some(PEER_ISS + 2));
    }

    /// The stack's TSval on a segment it sent.
    fn tsval(s: &Out) -> u32 {
        s.options.timestamp.expect("timestamps").0
    }

    #[test]
    fn a_duplicate_segment_is_reported_by_a_dsack() {
        let mut fx = Fixture::established_sack_ts();
        let ack = fx.iss + 1;
        let data = seg(PEER_ISS + 1)
            .ack(ack)
            .data(&[7; 100])
            .timestamp(PEER_TSVAL, 0);
        fx.send(data.clone());
        fx.advance(Duration::from_millis(50));
        // Received already: the ACK says so in its first SACK block (RFC 2883 §4.1).
        let out = fx.send(data);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].ack, Some(PEER_ISS + 101));
        assert_eq!(out[0].options.sack[0], Some((PEER_ISS + 1, PEER_ISS + 101)));
        assert_eq!(out[0].options.sack[1], None);
        // Out of order, then again: the duplicate first, then the range it lies in.
        let ooo = seg(PEER_ISS + 201)
            .ack(ack)
            .data(&[8; 100])
            .timestamp(PEER_TSVAL, 0);
        let out = fx.send(ooo.clone());
        assert_eq!(
            out[0].options.sack[0],
            Some((PEER_ISS + 201, PEER_ISS + 301))
        );
        let out = fx.send(ooo);
        assert_eq!(
            out[0].options.sack[0],
            Some((PEER_ISS + 201, PEER_ISS + 301))
        );
        assert_eq!(
            out[0].options.sack[1],
            Some((PEER_ISS + 201, PEER_ISS + 301))
        );
        assert_eq!(fx.stats.tcp_dsack_sent, 2);
        // Reported once: the next ACK carries the out-of-order range alone.
        let out = fx.send(seg(PEER_ISS + 101).ack(ack).data(&[9; 50]));
        assert_eq!(
            out[0].options.sack[0],
            Some((PEER_ISS + 201, PEER_ISS + 301))
        );
        assert_eq!(out[0].options.sack[1], None);
    }

    /// PRR (RFC 6937 §3.1): after the cut the sender goes on sending in proportion to what
    /// the ACKs deliver, ssthresh for every RecoverFS, where RFC 6675 alone falls silent
    /// until the pipe drains below the new window.
    #[test]
    fn fast_recovery_sends_in_proportion_to_what_is_delivered() {
        // Under the first probe timeout (at least 1 ms), so that no probe goes.
        const RTT: Duration = Duration::from_micros(500);
        const SPACING: Duration = Duration::from_micros(20);
        let mut fx = Fixture::established_sack_ts();
        fx.set_send_buffer(1 << 20);
        let mss = 1448u32;
        let out = fx.write(&[1; 100 * 1448]);
        assert_eq!(out.len(), 10, "the initial window");
        // Slow start doubles the window: ACKed one by one, the first 10 let 20 go.
        let mut flight = fx.advance(RTT);
        assert!(flight.is_empty(), "{} sent", flight.len());
        for i in 1..=10 {
            fx.advance(SPACING);
            let ack = seg(PEER_ISS + 1).ack(fx.iss + 1 + i * mss);
            flight.extend(fx.send(ack.timestamp(PEER_TSVAL, tsval(&out[9]))));
        }
        let acked = fx.iss + 1 + 10 * mss;
        let data = |out: &[Out]| out.iter().map(|s| s.payload.len() as u32).sum::<u32>();
        assert_eq!(data(&flight), 20 * mss);
        let prior_cwnd = fx.tcb().cc.cwnd();
        // The flight's first segment is lost; the others arrive one by one, SACKed.
        fx.advance(RTT - 10 * SPACING);
        let (mut sent, mut delivered) = (0, 0);
        let mut drained = false;
        for i in 2..=20 {
            assert!(fx.advance(SPACING).is_empty(), "only ACKs make it send");
            let sack = seg(PEER_ISS + 1)
                .ack(acked)
                .sack(&[(acked + mss, acked + i * mss)])
                .timestamp(PEER_TSVAL, tsval(&flight[0]));
            let out = fx.send(sack);
            if fx.tcb().recovery.recover.is_none() {
                assert!(out.is_empty(), "{} sent", out.len());
                continue;
            }
            delivered += mss;
            sent += data(&out);
            let ssthresh = fx.tcb().cc.ssthresh();
            let pipe = super::super::recovery::in_flight(fx.tcb());
            if !drained && pipe > ssthresh {
                // Proportional: ssthresh for every RecoverFS delivered, the lost head at
                // once whatever the proportion (Linux forces it too).
                let due = (delivered * ssthresh).div_ceil(prior_cwnd);
                assert!(
                    sent <= due.max(mss) && sent + mss > due,
                    "{sent} sent after {delivered} delivered, {due} due"
                );
            } else {
                if !drained {
                    // RFC 6675 alone would have sent only the head by now.
                    assert!(sent >= 2 * mss, "{sent} sent before the pipe drained");
                }
                drained = true;
                // PRR-SSRB: the pipe stays at ssthresh, within a segment.
                assert!(
                    pipe + mss > ssthresh,
                    "pipe {pipe}, ssthresh {ssthresh}, {i} arrived"
                );
            }
        }
        assert!(drained);
    }

    #[test]
    fn a_dsack_for_the_only_retransmission_undoes_fast_recovery() {
        let mut fx = Fixture::established_sack_ts();
        let out = fx.write(&[1; 10 * 1448]);
        assert_eq!(out.len(), 10, "the initial window: {out:?}");
        let (una, end) = (fx.iss + 1, fx.iss + 1 + 10 * 1448);
        let before = fx.tcb().cc.cwnd();
        // Everything but the first segment is SACKed: it is deemed lost and resent.
        let sack = seg(PEER_ISS + 1)
            .ack(una)
            .sack(&[(una + 1448, end)])
            .timestamp(PEER_TSVAL, tsval(&out[9]));
        let out = fx.send(sack);
        assert!(
            out.iter().any(|s| s.seq == una && s.payload.len() == 1448),
            "{out:?}"
        );
        assert!(fx.tcb().cc.cwnd() < before, "the window was cut");
        // The original arrived after all: the ACK of everything reports the resent copy as a
        // duplicate (RFC 3708), and the cut is undone (RFC 4015).
        let ack_all = seg(PEER_ISS + 1)
            .ack(end)
            .sack(&[(una, una + 1448)])
            .timestamp(PEER_TSVAL, tsval(&out[0]));
        fx.send(ack_all);
        assert_eq!(fx.stats.tcp_dsack_recv, 1);
        assert_eq!(fx.stats.tcp_undos, 1);
        assert_eq!(fx.tcb().cc.cwnd(), before, "the window from before the cut");
        assert!(fx.tcb().recovery.recover.is_none());
    }

    #[test]
    fn an_ack_echoing_the_original_timestamp_undoes_a_timeout() {
        // Without SACK, so that no tail loss probe goes first: a probe's ACK would echo an
        // old timestamp too, and Eifel could not tell the two apart.
        let mut fx = Fixture::established_ts();
        let out = fx.write(&[1; 2 * 1448]);
        assert_eq!(out.len(), 2);
        let original = tsval(&out[0]);
        let before = fx.tcb().cc.cwnd();
        // The ACKs are late: the retransmission timeout resends.
        let out = fx.advance(Duration::from_millis(400));
        assert!(
            out.iter().any(|s| s.seq == fx.iss + 1),
            "the RTO resent: {out:?}"
        );
        assert_eq!(fx.stats.tcp_timeouts, 1);
        assert!(fx.tcb().cc.cwnd() < before);
        // The ACK of the originals echoes their timestamp, older than the retransmission's:
        // the timeout was spurious (Eifel detection, RFC 3522).
        let ack = seg(PEER_ISS + 1)
            .ack(fx.iss + 1 + 2 * 1448)
            .timestamp(PEER_TSVAL + 1, original);
        fx.send(ack);
        assert_eq!(fx.stats.tcp_undos, 1);
        assert_eq!(fx.tcb().cc.cwnd(), before);
        assert_eq!(fx.tcb().snd.nxt, fx.tcb().snd.max);
    }

    /// A tail loss probe that resent the last segment: its ACKs tell whether the original was
    /// lost (RFC 8985 §7.4).
    fn probe_the_tail(fx: &mut Fixture) -> (Seq, u32) {
        let out = fx.write(&[1; 3 * 1448]);
        assert_eq!(out.len(), 3);
        let ack = seg(PEER_ISS + 1)
            .ack(fx.iss + 1 + 2 * 1448)
            .timestamp(PEER_TSVAL, tsval(&out[1]));
        fx.send(ack);
        let out = fx.advance(Duration::from_millis(250));
        assert_eq!(fx.stats.tcp_loss_probes, 1, "{out:?}");
        assert_eq!(out.len(), 1, "the last segment again: {out:?}");
        assert_eq!(out[0].seq, fx.iss + 1 + 2 * 1448);
        (out[0].seq, tsval(&out[0]))
    }

    #[test]
    fn a_probe_that_repaired_a_loss_reduces_the_window() {
        let mut fx = Fixture::established_sack_ts();
        let (probe, ts) = probe_the_tail(&mut fx);
        let before = fx.tcb().cc.cwnd();
        // Only the probe's copy arrived: the ACK stops at it, and the next one passes it.
        let end = probe + 1448;
        fx.send(seg(PEER_ISS + 1).ack(end).timestamp(PEER_TSVAL, ts));
        assert_eq!(fx.stats.tcp_tlp_recoveries, 0, "cannot tell yet");
        let out = fx.write(&[2; 1448]);
        fx.send(
            seg(PEER_ISS + 1)
                .ack(end + 1448)
                .timestamp(PEER_TSVAL, tsval(&out[0])),
        );
        assert_eq!(fx.stats.tcp_tlp_recoveries, 1);
        assert!(fx.tcb().cc.cwnd() < before, "a loss, repaired by the probe");
    }

    #[test]
    fn a_probe_reported_as_a_duplicate_leaves_the_window() {
        let mut fx = Fixture::established_sack_ts();
        let (probe, ts) = probe_the_tail(&mut fx);
        let before = fx.tcb().cc.cwnd();
        let end = probe + 1448;
        // Both copies arrived: the ACK reports the probe as a D-SACK.
        fx.send(
            seg(PEER_ISS + 1)
                .ack(end)
                .sack(&[(probe, end)])
                .timestamp(PEER_TSVAL, ts),
        );
        let out = fx.write(&[2; 1448]);
        fx.send(
            seg(PEER_ISS + 1)
                .ack(end + 1448)
                .timestamp(PEER_TSVAL, tsval(&out[0])),
        );
        assert_eq!(fx.stats.tcp_tlp_recoveries, 0);
        assert!(fx.tcb().cc.cwnd() >= before);
    }

    #[test]
    fn a_dsack_for_data_not_resent_undoes_nothing() {
        let mut fx = Fixture::established_sack_ts();
        let out = fx.write(&[1; 10 * 1448]);
        let (una, end) = (fx.iss + 1, fx.iss + 1 + 10 * 1448);
        let sack = seg(PEER_ISS + 1)
            .ack(una)
            .sack(&[(una + 1448, end)])
            .timestamp(PEER_TSVAL, tsval(&out[9]));
        let out = fx.send(sack);
        let cut = fx.tcb().cc.cwnd();
        // A duplicate of the fifth segment, which was never resent (the network copied it):
        // the retransmission of the first is still unproven.
        let ack_all = seg(PEER_ISS + 1)
            .ack(end)
            .sack(&[(una + 4 * 1448, una + 5 * 1448)])
            .timestamp(PEER_TSVAL, tsval(&out[0]));
        fx.send(ack_all);
        assert_eq!(fx.stats.tcp_undos, 0);
        assert!(fx.tcb().cc.cwnd() <= cut + 1448, "the cut stands");
    }

    /// Runs the timers in 100 µs steps for `limit`; when each segment went out, and which.
    fn sends_within(fx: &mut Fixture, limit: Duration) -> Vec<(Duration, Seq)> {
        let start = fx.now;
        let mut sent = Vec::new();
        while fx.now - start < limit {
            for o in fx.advance(Duration::from_micros(100)) {
                sent.push((fx.now - start, o.seq));
            }
        }
        sent
    }

    #[test]
    fn unanswered_probes_repeat_with_a_doubled_timeout_before_the_rto() {
        let mut fx = Fixture::established_sack_ts();
        let out = fx.write(&[1; 4 * 1448]);
        fx.advance(Duration::from_millis(1));
        fx.send(
            seg(PEER_ISS + 1)
                .ack(fx.iss + 1 + 1448)
                .timestamp(PEER_TSVAL, tsval(&out[0])),
        );
        let tail = fx.iss + 1 + 3 * 1448;
        let sent = sends_within(&mut fx, Duration::from_millis(150));
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(
            sent.iter().all(|&(_, seq)| seq == tail),
            "the last segment: {sent:?}"
        );
        let (a, b, c) = (sent[0].0, sent[1].0 - sent[0].0, sent[2].0 - sent[1].0);
        assert!(b >= 2 * a - Duration::from_micros(200), "{sent:?}");
        assert!(c >= 2 * b - Duration::from_micros(200), "{sent:?}");
        assert_eq!(fx.stats.tcp_timeouts, 0);
        let out = fx.advance(Duration::from_millis(300));
        assert_eq!(fx.stats.tcp_timeouts, 1, "then the timeout: {out:?}");
        assert_eq!(out[0].seq, fx.iss + 1 + 1448, "which resends the head");
    }

    #[test]
    fn a_probe_due_with_the_rto_puts_it_off_once_only() {
        let mut fx = Fixture::established_sack_ts();
        fx.write(&[1; 1448]);
        // One segment out: the probe waits for a delayed ACK, as long as the RTO, and goes in
        // its place; the next one would too, so the timeout comes instead.
        let sent = sends_within(&mut fx, Duration::from_millis(1100));
        assert_eq!(fx.stats.tcp_loss_probes, 1, "{sent:?}");
        assert!(fx.stats.tcp_timeouts >= 1, "{sent:?}");
    }

    #[test]
    fn a_probe_in_recovery_resends_the_oldest_outstanding_data() {
        let mut fx = Fixture::established_sack_ts();
        let out = fx.write(&[1; 6 * 1448]);
        fx.advance(Duration::from_millis(1));
        let una = fx.iss + 1;
        let sack = seg(PEER_ISS + 1)
            .ack(una)
            .sack(&[(una + 1448, una + 6 * 1448)])
            .timestamp(PEER_TSVAL, tsval(&out[5]));
        let out = fx.send(sack);
        assert_eq!(out[0].seq, una, "the fast retransmit");
        assert!(fx.tcb().recovery.recover.is_some());
        let cwnd = fx.tcb().cc.cwnd();
        // The retransmission is lost too: a probe resends it long before the RTO.
        let sent = sends_within(&mut fx, Duration::from_millis(20));
        assert!(
            !sent.is_empty() && sent.iter().all(|s| s.1 == una),
            "{sent:?}"
        );
        assert_eq!(fx.stats.tcp_recovery_probes, sent.len() as u64);
        assert_eq!(fx.stats.tcp_timeouts, 0);
        assert_eq!(fx.tcb().cc.cwnd(), cwnd, "no collapse of the window");
    }

    #[test]
    fn an_rtt_sample_is_taken_in_microseconds() {
        let mut fx = Fixture::established_sack_ts();
        let before = fx.tcb().rtx.rtt.srtt().expect("the handshake's sample");
        let out = fx.write(&[1; 1448]);
        fx.now += Duration::from_micros(300);
        fx.send(
            seg(PEER_ISS + 1)
                .ack(fx.iss + 1 + 1448)
                .timestamp(PEER_TSVAL, tsval(&out[0])),
        );
        // RFC 6298 §2.3 with R' = 300 µs, not the timestamp clock's 1 ms.
        let expected = (before * 7 + Duration::from_micros(300)) / 8;
        assert_eq!(fx.tcb().rtx.rtt.srtt(), Some(expected));
    }

    #[test]
    fn one_dsack_does_not_undo_a_recovery_whose_head_was_resent_twice() {
        let mut fx = Fixture::established_sack_ts();
        let out = fx.write(&[1; 6 * 1448]);
        fx.advance(Duration::from_millis(1));
        let una = fx.iss + 1;
        let end = una + 6 * 1448;
        let sack = seg(PEER_ISS + 1)
            .ack(una)
            .sack(&[(una + 1448, end)])
            .timestamp(PEER_TSVAL, tsval(&out[5]));
        let rtx = fx.send(sack);
        let cut = fx.tcb().cc.cwnd();
        // The fast retransmit and a probe resend the head; the original was lost, both
        // copies arrive: one D-SACK, for the second copy. The ACK echoes the first copy's
        // timestamp, which is no older than the retransmission (no Eifel evidence).
        while fx.stats.tcp_recovery_probes == 0 {
            fx.advance(Duration::from_micros(100));
        }
        let dsack_head = |ack: Seq| {
            seg(PEER_ISS + 1)
                .ack(ack)
                .sack(&[(una, una + 1448)])
                .timestamp(PEER_TSVAL, tsval(&rtx[0]))
        };
        fx.send(dsack_head(una + 1448));
        assert_eq!(fx.stats.tcp_undos, 0, "one of two copies was a duplicate");
        assert!(fx.tcb().cc.cwnd() <= cut + 1448, "the cut stands");
        // A second D-SACK: the original arrived too, nothing was lost.
        fx.send(dsack_head(una + 1448));
        assert_eq!(fx.stats.tcp_undos, 1, "both copies were duplicates");
    }

    #[test]
    fn a_probe_verdict_left_waiting_is_settled_by_the_next_stall() {
        let mut fx = Fixture::established_sack_ts();
        let (probe, ts) = probe_the_tail(&mut fx);
        // The ACK stops at the probe's end: nothing past it, no D-SACK. No verdict yet.
        fx.send(
            seg(PEER_ISS + 1)
                .ack(probe + 1448)
                .timestamp(PEER_TSVAL, ts),
        );
        assert_eq!(fx.stats.tcp_tlp_recoveries, 0);
        let before = fx.tcb().cc.cwnd();
        // More data goes out and nothing answers: the next probe settles the last one.
        fx.write(&[2; 3 * 1448]);
        let sent = sends_within(&mut fx, Duration::from_millis(100));
        assert!(fx.stats.tcp_loss_probes >= 2, "{sent:?}");
        assert_eq!(fx.stats.tcp_tlp_recoveries, 1, "{sent:?}");
        assert!(
            fx.tcb().cc.cwnd() < before,
            "one cut, as the ACK past it would have made"
        );
    }

    #[test]
    fn eifel_does_not_undo_a_timeout_that_followed_a_probe() {
        let mut fx = Fixture::established_sack_ts();
        let out = fx.write(&[1; 2 * 1448]);
        let original = tsval(&out[0]);
        // Probes resend the tail, then the timeout resends the head.
        sends_within(&mut fx, Duration::from_millis(500));
        let probes = u64::from(super::super::rack::MAX_PROBES);
        assert_eq!(
            (fx.stats.tcp_loss_probes, fx.stats.tcp_timeouts),
            (probes, 1)
        );
        // An ACK echoing an old timestamp may be the probe's: no undo.
        let ack = seg(PEER_ISS + 1)
            .ack(fx.iss + 1 + 2 * 1448)
            .timestamp(PEER_TSVAL + 1, original);
        fx.send(ack);
        assert_eq!(fx.stats.tcp_undos, 0);
    }
}
