//! Test fixtures for the TCP unit tests: one [`Tcp`] talking to a scripted peer, a segment in
//! and the segments out, as smoltcp's `socket/tcp.rs` tests do. A fixture starts in the state
//! a test needs ([`Fixture::listen`], [`Fixture::syn_received`], [`Fixture::established`],
//! [`Fixture::syn_sent`]); [`Fixture::send`] feeds one segment from the peer and returns what
//! the stack answers.

use super::segment::{self, Flags, Options, SegmentOut};
use super::seq::Seq;
use super::tcb::{State, Tcb};
use super::{Tcp, TcpConfig};
use crate::id::SocketId;
use crate::stats::Counters;
use crate::time::Instant;
use crate::wire::FRAME_HEADROOM;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub const LOCAL_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
pub const PEER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
pub const LOCAL_PORT: u16 = 80;
pub const PEER_PORT: u16 = 40000;
/// The peer's initial sequence number.
pub const PEER_ISS: Seq = Seq(1_000_000);
/// The window the peer advertises (unscaled: the fixtures' peer offers no window scaling).
pub const PEER_WINDOW: u16 = 64000;
/// The peer's timestamp clock (RFC 7323), where it uses timestamps.
pub const PEER_TSVAL: u32 = 5000;

/// A segment from the peer; build it with [`seg`] and the methods below.
#[derive(Clone, Debug)]
pub struct In {
    pub src_port: u16,
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub flags: Flags,
    pub window: u16,
    pub urgent_ptr: u16,
    pub options: Options,
    pub payload: Vec<u8>,
    /// Its IP header says Congestion Experienced (RFC 3168 §5).
    pub ce: bool,
}

/// A segment from the peer with sequence number `seq` and nothing else set.
pub fn seg(seq: Seq) -> In {
    In {
        src_port: PEER_PORT,
        seq,
        ack: None,
        flags: Flags::default(),
        window: PEER_WINDOW,
        urgent_ptr: 0,
        options: Options::default(),
        payload: Vec::new(),
        ce: false,
    }
}

impl In {
    pub fn syn(mut self) -> In {
        self.flags.syn = true;
        self
    }
    pub fn ack(mut self, ack: Seq) -> In {
        self.flags.ack = true;
        self.ack = Some(ack);
        self
    }
    pub fn fin(mut self) -> In {
        self.flags.fin = true;
        self
    }
    pub fn rst(mut self) -> In {
        self.flags.rst = true;
        self
    }
    pub fn data(mut self, data: &[u8]) -> In {
        self.payload = data.to_vec();
        self
    }
    pub fn window(mut self, window: u16) -> In {
        self.window = window;
        self
    }
    /// URG with the urgent pointer `ptr`: the urgent data ends before SEG.SEQ + `ptr`.
    pub fn urgent(mut self, ptr: u16) -> In {
        self.flags.urg = true;
        self.urgent_ptr = ptr;
        self
    }
    /// From another port of the peer: another connection.
    pub fn src_port(mut self, port: u16) -> In {
        self.src_port = port;
        self
    }
    pub fn mss(mut self, mss: u16) -> In {
        self.options.mss = Some(mss);
        self
    }
    /// The window scale option, in a SYN (RFC 7323 §2.2).
    pub fn wscale(mut self, shift: u8) -> In {
        self.options.wscale = Some(shift);
        self
    }
    /// SACK-permitted, in a SYN (RFC 2018 §2).
    pub fn sack_permitted(mut self) -> In {
        self.options.sack_permitted = true;
        self
    }
    /// SACK blocks, the first of them a D-SACK if it lies below the ACK (RFC 2883).
    pub fn sack(mut self, blocks: &[(Seq, Seq)]) -> In {
        for (slot, &b) in self.options.sack.iter_mut().zip(blocks) {
            *slot = Some(b);
        }
        self
    }
    /// ECN-Echo: a congestion mark echoed, or in a SYN with CWR, ECN asked for.
    pub fn ece(mut self) -> In {
        self.flags.ece = true;
        self
    }
    /// Congestion Window Reduced (RFC 3168 §6.1.2).
    pub fn cwr(mut self) -> In {
        self.flags.cwr = true;
        self
    }
    /// Marked Congestion Experienced on its way (RFC 3168 §5).
    pub fn ce(mut self) -> In {
        self.ce = true;
        self
    }
    /// The timestamps option: our TSval and the echo of the stack's (RFC 7323 §3).
    pub fn timestamp(mut self, tsval: u32, tsecr: u32) -> In {
        self.options.timestamp = Some((tsval, tsecr));
        self
    }

    /// The ECN field it arrives with.
    fn ecn(&self) -> u8 {
        if self.ce {
            super::ecn::CE
        } else {
            0
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let header = SegmentOut {
            src_port: self.src_port,
            dst_port: LOCAL_PORT,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            urgent_ptr: self.urgent_ptr,
            options: self.options,
        };
        let mut b = Vec::new();
        segment::write_header(&header, &mut b);
        b.extend_from_slice(&self.payload);
        b
    }
}

/// A segment the stack sent, as the peer reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub flags: Flags,
    pub window: u16,
    /// The urgent pointer, meaningful with `flags.urg`.
    pub urgent_ptr: u16,
    pub options: Options,
    pub payload: Vec<u8>,
    /// The IP header's ECN field (RFC 3168 §5).
    pub ecn: u8,
}

/// One connection (or listener) of a [`Tcp`] and its scripted peer.
pub struct Fixture {
    pub tcp: Tcp,
    pub stats: Counters,
    pub now: Instant,
    pub listener: Option<SocketId>,
    /// The connection, once there is one.
    pub id: Option<SocketId>,
    /// Our initial sequence number, once known.
    pub iss: Seq,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(TcpConfig::default())
    }

    /// A fixture whose stack has this configuration, but for TSO: segments leave one by
    /// one, as the fixtures' peer reads them.
    pub fn with_config(cfg: TcpConfig) -> Fixture {
        let cfg = TcpConfig { tso: false, ..cfg };
        Fixture {
            tcp: Tcp::new(cfg, LOCAL_IP, 1500, [7; 16], 0),
            stats: Counters::default(),
            now: Instant::ZERO + Duration::from_secs(1),
            listener: None,
            id: None,
            iss: Seq(0),
        }
    }

    /// A listener on [`LOCAL_PORT`].
    pub fn listen() -> Fixture {
        Fixture::listen_with_backlog(16)
    }

    /// A listener on [`LOCAL_PORT`] queuing at most `backlog` connections for `accept`.
    pub fn listen_with_backlog(backlog: usize) -> Fixture {
        Fixture::new().listening(backlog)
    }

    /// This fixture with a listener on [`LOCAL_PORT`] queuing at most `backlog`
    /// connections for `accept`.
    pub fn listening(self, backlog: usize) -> Fixture {
        let mut fx = self;
        let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), LOCAL_PORT);
        let (l, _) = fx.tcp.listen(any, backlog).expect("listen");
        fx.listener = Some(l);
        fx
    }

    /// A connection in SYN-RECEIVED: the peer's SYN (MSS 1460, no other option) answered.
    pub fn syn_received() -> Fixture {
        let mut fx = Fixture::listen();
        let out = fx.send(seg(PEER_ISS).syn().mss(1460));
        assert_eq!(out.len(), 1, "one SYN-ACK: {out:?}");
        fx.iss = out[0].seq;
        fx.id = fx.tcp.conns.keys().next().copied();
        fx
    }

    /// An ESTABLISHED connection, accepted, nothing sent yet either way.
    pub fn established() -> Fixture {
        Fixture::established_after(seg(PEER_ISS).syn().mss(1460))
    }

    /// An ESTABLISHED connection that negotiated SACK and timestamps (the peer's clock at
    /// [`PEER_TSVAL`]).
    pub fn established_sack_ts() -> Fixture {
        let syn = seg(PEER_ISS)
            .syn()
            .mss(1460)
            .sack_permitted()
            .timestamp(PEER_TSVAL, 0);
        Fixture::established_after(syn)
    }

    /// An ESTABLISHED connection with timestamps and without SACK (so without tail loss
    /// probes, which need SACK).
    pub fn established_ts() -> Fixture {
        let syn = seg(PEER_ISS).syn().mss(1460).timestamp(PEER_TSVAL, 0);
        Fixture::established_after(syn)
    }

    /// ESTABLISHED after the peer's `syn` and the ACK of our SYN-ACK (echoing its timestamp if
    /// both use them).
    pub fn established_after(syn: In) -> Fixture {
        Fixture::new().listening(16).establish(syn)
    }

    /// ESTABLISHED, on this fixture's listener, after the peer's `syn` and the ACK of our
    /// SYN-ACK.
    pub fn establish(self, syn: In) -> Fixture {
        let mut fx = self;
        let ts = syn.options.timestamp.is_some();
        let out = fx.send(syn);
        assert_eq!(out.len(), 1, "one SYN-ACK: {out:?}");
        fx.iss = out[0].seq;
        fx.id = fx.tcp.conns.keys().next().copied();
        let mut ack = seg(PEER_ISS + 1).ack(fx.iss + 1);
        if let (true, Some((tsval, _))) = (ts, out[0].options.timestamp) {
            ack = ack.timestamp(PEER_TSVAL, tsval);
        }
        let out = fx.send(ack);
        assert!(
            out.is_empty(),
            "the handshake's ACK is not answered: {out:?}"
        );
        let l = fx.listener.expect("listener");
        let accepted = fx.tcp.accept(l).expect("queued").expect("accepted");
        assert_eq!(Some(accepted.0), fx.id);
        assert_eq!(fx.tcb().state, State::Established);
        fx
    }

    /// An active open in SYN-SENT, its SYN taken off the wire.
    pub fn syn_sent() -> Fixture {
        Fixture::new().connecting()
    }

    /// This fixture in SYN-SENT, its SYN taken off the wire.
    pub fn connecting(self) -> Fixture {
        let mut fx = self;
        let remote = SocketAddr::new(PEER_IP, PEER_PORT);
        let id = fx
            .tcp
            .connect(fx.now, Some(LOCAL_PORT), remote, &mut fx.stats)
            .expect("connect");
        fx.id = Some(id);
        let out = fx.output();
        assert_eq!(out.len(), 1, "one SYN: {out:?}");
        assert!(out[0].flags.syn && !out[0].flags.ack);
        fx.iss = out[0].seq;
        fx
    }

    /// The connection's control block.
    pub fn tcb(&self) -> &Tcb {
        self.tcp.tcb(self.id.expect("a connection")).expect("tcb")
    }

    /// Feeds one segment from the peer and returns every segment the stack sends after it
    /// (its deferred output included).
    pub fn send(&mut self, seg: In) -> Vec<Out> {
        let ecn = seg.ecn();
        self.tcp.input(
            self.now,
            PEER_IP,
            LOCAL_IP,
            ecn,
            &seg.bytes(),
            false,
            &mut self.stats,
        );
        self.output()
    }

    /// Feeds segments from the peer as one receive batch (as the stack thread reads up to 64
    /// frames before output runs) and returns every segment sent in answer.
    pub fn send_batch(&mut self, segs: &[In]) -> Vec<Out> {
        for seg in segs {
            self.tcp.input(
                self.now,
                PEER_IP,
                LOCAL_IP,
                seg.ecn(),
                &seg.bytes(),
                false,
                &mut self.stats,
            );
        }
        self.output()
    }

    /// Sets the send buffer's size as `SO_SNDBUF` does (no autotuning): for a test that queues
    /// more than two congestion windows at once.
    pub fn set_send_buffer(&mut self, size: usize) {
        let id = self.id.expect("a connection");
        self.tcp
            .set_buffers(id, self.now, Some(size), None, &mut self.stats)
            .expect("set_buffers");
        self.output();
    }

    /// Writes `data` as the application does and returns what goes out.
    pub fn write(&mut self, data: &[u8]) -> Vec<Out> {
        let id = self.id.expect("a connection");
        let n = self
            .tcp
            .send(id, self.now, data, &mut self.stats)
            .expect("send");
        assert_eq!(n, data.len(), "the send buffer took everything");
        self.output()
    }

    /// Reads what the application can read now.
    pub fn read(&mut self) -> Vec<u8> {
        let id = self.id.expect("a connection");
        let mut buf = vec![0u8; 1 << 20];
        match self.tcp.recv(id, self.now, &mut buf, &mut self.stats) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// Lets `d` pass and runs the timers due; returns what they sent.
    pub fn advance(&mut self, d: Duration) -> Vec<Out> {
        self.now += d;
        self.tcp.poll(self.now, &mut self.stats);
        self.output()
    }

    /// The segments sent since the last look, parsed as the peer sees them.
    pub fn output(&mut self) -> Vec<Out> {
        self.tcp.flush_deferred(self.now, &mut self.stats);
        self.tcp
            .out
            .segs
            .drain(..)
            .map(|o| {
                let s = segment::parse(&o.bytes[FRAME_HEADROOM..]).expect("a valid segment");
                assert_eq!(o.dst, PEER_IP);
                assert_eq!(s.src_port, LOCAL_PORT);
                Out {
                    seq: s.seq,
                    ack: s.flags.ack.then_some(s.ack),
                    flags: s.flags,
                    window: s.window,
                    urgent_ptr: s.urgent_ptr,
                    options: s.options,
                    payload: s.payload.to_vec(),
                    ecn: o.ecn,
                }
            })
            .collect()
    }
}
