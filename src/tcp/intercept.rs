//! Catch-all interception of TCP: a SYN to an address that is not the stack's own is offered
//! to the application, which decides before any SYN-ACK is sent (as gVisor's TCP forwarder and
//! sing-tun's `PrepareConnection`), so that it can try its upstream first and give the client
//! the real outcome. The decision arrives later as a command: the stack thread never waits
//! for it. Pending SYNs sit in a bounded table with a deadline; a SYN retransmitted meanwhile
//! is absorbed.

use super::output;
use super::segment::{Options, SegmentIn};
use super::seq::Seq;
use super::shared::SocketIo;
use super::tcb::{Opening, State, Tcb};
use super::Tcp;
use crate::config::{Buffers, InterceptConfig, OverLimit};
use crate::id::SocketId;
use crate::stats::Counters;
use crate::time::Instant;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A SYN offered to the application: the id its connection will have, the address the client
/// dialled (our end) and the client's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOffer {
    /// The id reserved for the connection, which accepting it creates.
    pub id: SocketId,
    /// The destination the client dialled: the connection's local address.
    pub local: SocketAddr,
    /// The client.
    pub remote: SocketAddr,
}

/// What the application decided about an offered SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with a SYN-ACK: the connection opens.
    Accept,
    /// Answer with a reset: the client sees "connection refused".
    Reset,
    /// Answer with ICMP host unreachable: the client sees an unreachable host. (Sent by the
    /// IP layer, from what [`Tcp::intercept_decide`] returns.)
    Unreachable,
    /// Drop the SYN and forget it: the client times out.
    Ignore,
}

/// The SYN of an offer, kept until the decision: what opening the connection needs.
struct PendingSyn {
    local: SocketAddr,
    remote: SocketAddr,
    seq: Seq,
    window: u16,
    /// Its control bits: a SYN, with ECN's ECE and CWR if it asks for ECN.
    flags: super::segment::Flags,
    options: Options,
}

/// A live intercepted connection's hold on the cap: released when the connection enters
/// TIME-WAIT or is removed, whichever comes first.
#[derive(Debug)]
pub struct ConnSlot(Arc<AtomicU64>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The interception state of the TCP layer.
pub(super) struct Intercept {
    cfg: InterceptConfig,
    pending: HashMap<SocketId, PendingSyn>,
    by_tuple: HashMap<(SocketAddr, SocketAddr), SocketId>,
    /// Pending offers by deadline; the timeout is one for all, so arrival order is deadline
    /// order. Entries of offers already decided are skipped when they come due.
    expiry: VecDeque<(Instant, SocketId)>,
    /// Offers made since the last [`Tcp::take_offers`].
    offers: Vec<TcpOffer>,
    /// Intercepted connections holding a [`ConnSlot`].
    live: Arc<AtomicU64>,
}

impl Intercept {
    pub(super) fn new(cfg: InterceptConfig) -> Intercept {
        Intercept {
            cfg,
            pending: HashMap::new(),
            by_tuple: HashMap::new(),
            expiry: VecDeque::new(),
            offers: Vec::new(),
            live: Arc::default(),
        }
    }

    fn forget(&mut self, id: SocketId) -> Option<PendingSyn> {
        let p = self.pending.remove(&id)?;
        self.by_tuple.remove(&(p.local, p.remote));
        Some(p)
    }

    pub(super) fn poll_at(&self) -> Option<Instant> {
        self.expiry.front().map(|(t, _)| *t)
    }
}

impl Tcp {
    /// Turns catch-all interception on: from now on a SYN to any address but ours is offered.
    pub fn set_intercept(&mut self, cfg: InterceptConfig) {
        self.intercept = Some(Intercept::new(cfg));
    }

    /// Intercepted connections open now (not in TIME-WAIT).
    pub fn intercepted(&self) -> u64 {
        self.intercept
            .as_ref()
            .map_or(0, |i| i.live.load(Ordering::Relaxed))
    }

    /// A segment for an address not ours and no connection. Without interception it gets
    /// the closed port's answer; with it, a SYN is offered (RFC 9293 §3.10.7.2 as if a
    /// listener were there, but the SYN-ACK waits for the application's verdict).
    pub(super) fn intercept_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &SegmentIn<'_>,
        stats: &mut Counters,
    ) {
        let Some(icpt) = self.intercept.as_mut() else {
            return self.closed_input(local, remote, seg, stats);
        };
        if seg.flags.rst {
            // A client giving up on a pending SYN: forget it, no verdict will be wanted.
            if let Some(&id) = icpt.by_tuple.get(&(local, remote)) {
                icpt.forget(id);
            }
            return;
        }
        if seg.flags.ack || !seg.flags.syn {
            return self.closed_input(local, remote, seg, stats);
        }
        if icpt.by_tuple.contains_key(&(local, remote)) {
            stats.icpt_tcp_syn_absorbed += 1;
            return;
        }
        if self.pool.exhausted() {
            // No memory for another connection: the client retries its SYN (Linux drops too).
            stats.tcp_mem_refused += 1;
            return;
        }
        if icpt.live.load(Ordering::Relaxed) + icpt.pending.len() as u64
            >= icpt.cfg.max_connections as u64
        {
            stats.icpt_tcp_over_limit += 1;
            if icpt.cfg.over_limit == OverLimit::Reset {
                self.closed_input(local, remote, seg, stats);
            }
            return;
        }
        if icpt.pending.len() >= icpt.cfg.max_pending {
            stats.icpt_tcp_pending_full += 1;
            return;
        }
        let id = self.ids.next_id();
        icpt.pending.insert(
            id,
            PendingSyn {
                local,
                remote,
                seq: seg.seq,
                window: seg.window,
                flags: seg.flags,
                options: seg.options,
            },
        );
        icpt.by_tuple.insert((local, remote), id);
        icpt.expiry.push_back((now + icpt.cfg.decision_timeout, id));
        icpt.offers.push(TcpOffer { id, local, remote });
        stats.icpt_tcp_offered += 1;
    }

    /// Offers made since the last call, for the application.
    pub fn take_offers(&mut self) -> Vec<TcpOffer> {
        self.intercept
            .as_mut()
            .map(|i| std::mem::take(&mut i.offers))
            .unwrap_or_default()
    }

    /// Drops pending SYNs whose decision did not come in time.
    pub(super) fn intercept_poll(&mut self, now: Instant, stats: &mut Counters) {
        let Some(icpt) = self.intercept.as_mut() else {
            return;
        };
        while let Some(&(deadline, id)) = icpt.expiry.front() {
            if deadline > now {
                break;
            }
            icpt.expiry.pop_front();
            if icpt.forget(id).is_some() {
                stats.icpt_tcp_expired += 1;
            }
        }
    }

    /// Carries out the verdict on offer `id`; `io` is the state the application's handle
    /// shares with an accepted connection. The offer's SYN as (local, remote, sequence
    /// number), for the IP layer to quote in an unreachable; `None` if the offer is gone
    /// (expired, or the client reset it): an accepted handle then sees `ETIMEDOUT`.
    pub fn intercept_decide(
        &mut self,
        now: Instant,
        id: SocketId,
        verdict: Verdict,
        io: Option<Arc<SocketIo>>,
        buffers: Buffers,
        stats: &mut Counters,
    ) -> Option<(SocketAddr, SocketAddr, Seq)> {
        let Some(p) = self.intercept.as_mut().and_then(|i| i.forget(id)) else {
            if let Some(io) = io {
                let mut state = io.lock();
                state.error = Some(libc::ETIMEDOUT);
                state.status.connecting = false;
                state.status.eof = true;
                io.wake(state);
            }
            return None;
        };
        match verdict {
            Verdict::Accept => {
                self.intercept_open(now, id, &p, io, buffers, stats);
                stats.icpt_tcp_accepted += 1;
            }
            Verdict::Reset => {
                output::reset(
                    p.local,
                    p.remote,
                    Seq(0),
                    Some(p.seq + 1),
                    &mut self.out,
                    stats,
                );
                stats.icpt_tcp_refused += 1;
            }
            Verdict::Unreachable => stats.icpt_tcp_unreachable += 1,
            Verdict::Ignore => stats.icpt_tcp_ignored += 1,
        }
        Some((p.local, p.remote, p.seq))
    }

    /// Opens an accepted offer in SYN-RECEIVED and sends the SYN-ACK; the connection belongs
    /// to the application's handle from the start, as one it connected itself.
    fn intercept_open(
        &mut self,
        now: Instant,
        id: SocketId,
        p: &PendingSyn,
        io: Option<Arc<SocketIo>>,
        buffers: Buffers,
        stats: &mut Counters,
    ) {
        let syn = SegmentIn {
            src_port: p.remote.port(),
            dst_port: p.local.port(),
            seq: p.seq,
            ack: Seq(0),
            flags: p.flags,
            window: p.window,
            urgent_ptr: 0,
            options: p.options,
            payload: &[],
            ce: false,
            frame: None,
            small_frames: None,
        };
        let iss = self.iss(now, p.local, p.remote);
        let ts_offset = self.isn.isn(now, p.remote, p.local).0;
        let open = Opening {
            local: p.local,
            remote: p.remote,
            iss,
            ts_offset,
        };
        let our_mss = self.mss_for(p.remote.ip(), now);
        let mut t = Tcb::new(&self.cfg, buffers, now, open, our_mss, &self.pool);
        if let Some(io) = io {
            // The handle made these buffers: the budget and autotuning take them over.
            {
                let mut shared = io.lock();
                shared.send.attach_pool(&self.pool);
                shared.recv.attach_pool(&self.pool);
                shared.recv.set_min_room(our_mss as usize);
                if !buffers.send_locked {
                    let start = super::tcb::SNDBUF_PER_CWND * t.cc.cwnd() as usize;
                    shared.send.autotune(start);
                }
            }
            t.io = io;
        }
        super::publish_addrs(&t);
        if let Some(live) = self.intercept.as_ref().map(|i| i.live.clone()) {
            live.fetch_add(1, Ordering::Relaxed);
            t.slot = Some(ConnSlot(live));
        }
        t.set_state(State::SynReceived);
        super::input::take_syn(&mut t, &syn, our_mss, now, iss, stats);
        self.by_tuple.insert((p.local, p.remote), id);
        self.conns.insert(id, t);
        stats.tcp_passive_opens += 1;
        self.flush(id, now, stats);
    }
}
