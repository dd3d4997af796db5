//! Catch-all interception: the application's side. An [`Interceptor`] takes the offers of a
//! stack whose [`crate::StackConfig::intercept`] is set: every TCP connection and UDP flow to
//! an address that is not the stack's own. Each offer is decided once: accepted (an ordinary
//! [`TcpStream`] or connected [`UdpSocket`] whose local address is the destination the client
//! dialled), refused, or dropped. Deciding is a message to the stack thread, never a wait for
//! it: an offer may be held while the application tries its upstream, so that the client
//! sees the real outcome.
//!
//! A relay over the in-memory link: the client stack dials an address no one has, and the
//! application on the intercepting stack answers for it.
//!
//! ```
//! use std::io::{Read, Write};
//! use tapstack::config::InterceptConfig;
//! use tapstack::phy::memory_pair;
//! use tapstack::socket::Interceptor;
//! use tapstack::{wire::MacAddr, Stack, StackConfig, TcpStream};
//! # fn main() -> std::io::Result<()> {
//! let (a, b) = memory_pair(1500)?;
//! let mut client_cfg = StackConfig::new([10, 0, 0, 1].into(), 24);
//! client_cfg.mac = MacAddr([2, 0, 0, 0, 0, 1]);
//! client_cfg.gateway = Some([10, 0, 0, 2].into());
//! let client = Stack::new(a, client_cfg)?;
//! let mut proxy_cfg = StackConfig::new([10, 0, 0, 2].into(), 24);
//! proxy_cfg.intercept = Some(InterceptConfig::default());
//! let proxy = Stack::new(b, proxy_cfg)?;
//! let interceptor = Interceptor::new(&proxy)?;
//! let server = std::thread::spawn(move || -> std::io::Result<()> {
//!     let offer = interceptor.next_tcp()?;
//!     assert_eq!(offer.local_addr().to_string(), "192.0.2.7:80");
//!     let mut conn = offer.accept()?;
//!     conn.write_all(b"answered for 192.0.2.7")?;
//!     Ok(())
//! });
//! let mut conn = TcpStream::connect(&client, "192.0.2.7:80")?;
//! let mut reply = String::new();
//! conn.read_to_string(&mut reply)?;
//! assert_eq!(reply, "answered for 192.0.2.7");
//! server.join().unwrap()?;
//! # Ok(()) }
//! ```

use super::{deadline, TcpStream, UdpSocket};
use crate::config::Buffers;
use crate::core::{EchoOffer, EchoVerdict, InterceptIo, SocketId, UdpOffer};
use crate::runtime::{Handle, Stack};
use crate::tcp::buffer::{RecvBuffer, SendBuffer};
use crate::tcp::intercept::{TcpOffer, Verdict};
use crate::tcp::shared::{stopped, SocketIo, Watcher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use crate::core::FlowDecision;

/// Takes the offers of catch-all interception: intercepted TCP connections and UDP flows.
/// Clones share the offer queues.
pub struct Interceptor {
    handle: Handle,
    shared: Arc<InterceptIo>,
    /// What an accepted connection's buffers start from.
    buffers: Buffers,
    max_ooo_ranges: usize,
    nonblocking: Arc<AtomicBool>,
}

impl Interceptor {
    /// The interceptor of `stack`; `InvalidInput` if its configuration does not intercept.
    pub fn new(stack: &Stack) -> io::Result<Interceptor> {
        let handle = stack.handle();
        let shared = stack.intercept_io().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the stack does not intercept: set StackConfig::intercept",
            )
        })?;
        Ok(Interceptor {
            handle,
            shared,
            buffers: stack.config().tcp.buffers(),
            max_ooo_ranges: stack.config().tcp.max_ooo_ranges,
            nonblocking: Arc::default(),
        })
    }

    /// Waits for the next intercepted SYN (or fails with `WouldBlock` in non-blocking mode).
    pub fn next_tcp(&self) -> io::Result<InterceptedTcp> {
        let offer = self.take(|s| s.tcp.pop_front())?;
        Ok(InterceptedTcp {
            handle: self.handle.clone(),
            offer,
            buffers: self.buffers,
            max_ooo_ranges: self.max_ooo_ranges,
            decided: false,
        })
    }

    /// Waits for the next new UDP flow (or fails with `WouldBlock` in non-blocking mode).
    pub fn next_udp(&self) -> io::Result<InterceptedUdp> {
        let offer = self.take(|s| s.udp.pop_front())?;
        Ok(InterceptedUdp {
            handle: self.handle.clone(),
            offer,
            decided: false,
        })
    }

    /// Waits for the next echo request to an intercepted address (or fails with
    /// `WouldBlock` in non-blocking mode). Requests come here only with
    /// [`crate::config::EchoMode::Deliver`].
    pub fn next_echo(&self) -> io::Result<InterceptedEcho> {
        let offer = self.take(|s| s.echo.pop_front())?;
        Ok(InterceptedEcho {
            handle: self.handle.clone(),
            offer,
            decided: false,
        })
    }

    fn take<T>(
        &self,
        mut pop: impl FnMut(&mut crate::core::InterceptState) -> Option<T>,
    ) -> io::Result<T> {
        let deadline = deadline(self.nonblocking.load(Ordering::Relaxed), None);
        super::tcp::blocking(&self.handle, &self.shared, deadline, |s| {
            if let Some(offer) = pop(s) {
                return Ok(offer);
            }
            if s.stopped {
                return Err(stopped());
            }
            Err(super::would_block())
        })
    }

    /// In non-blocking mode the `next_*` calls fail with `WouldBlock` when nothing waits.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Another handle to the same offer queues.
    pub fn try_clone(&self) -> io::Result<Interceptor> {
        Ok(Interceptor {
            handle: self.handle.clone(),
            shared: self.shared.clone(),
            buffers: self.buffers,
            max_ooo_ranges: self.max_ooo_ranges,
            nonblocking: self.nonblocking.clone(),
        })
    }

    /// Sets the readiness callback: called whenever an offer arrives or the stack stops.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn watch(&self, watcher: Option<Watcher>) {
        self.shared.watch(watcher);
    }
}

/// An intercepted SYN waiting for the application's verdict; no SYN-ACK has been sent yet.
/// Dropping it undecided refuses it (a reset).
pub struct InterceptedTcp {
    handle: Handle,
    offer: TcpOffer,
    buffers: Buffers,
    max_ooo_ranges: usize,
    decided: bool,
}

impl InterceptedTcp {
    /// The destination the client dialled: the accepted connection's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.offer.local
    }

    /// The client.
    pub fn peer_addr(&self) -> SocketAddr {
        self.offer.remote
    }

    fn decide(&mut self, verdict: Verdict, io: Option<Arc<SocketIo>>) -> io::Result<()> {
        self.decided = true;
        let (id, buffers) = (self.offer.id, self.buffers);
        self.handle.post(move |iface, now| {
            iface.intercept_tcp(now, id, verdict, io, buffers);
        })
    }

    /// Sends the SYN-ACK and returns the connection at once, its handshake under way (as a
    /// non-blocking `connect(2)`): writes wait for it, and a failed handshake is the
    /// stream's error. An offer that expired meanwhile gives a stream failing with
    /// `TimedOut`.
    pub fn accept_nonblocking(mut self) -> io::Result<TcpStream> {
        let io = Arc::new(SocketIo::new(
            SendBuffer::new(self.buffers.send),
            RecvBuffer::new(self.buffers.recv, self.max_ooo_ranges),
        ));
        self.decide(Verdict::Accept, Some(io.clone()))?;
        Ok(TcpStream::adopt(self.handle.clone(), self.offer.id, io))
    }

    /// Sends the SYN-ACK and waits for the handshake to complete.
    pub fn accept(self) -> io::Result<TcpStream> {
        self.accept_nonblocking()?.connected(None)
    }

    /// Refuses with a reset: the client sees "connection refused".
    pub fn refuse(mut self) -> io::Result<()> {
        self.decide(Verdict::Reset, None)
    }

    /// Answers with ICMP host unreachable: the client sees an unreachable host.
    pub fn unreachable(mut self) -> io::Result<()> {
        self.decide(Verdict::Unreachable, None)
    }

    /// Drops the SYN: the client hears nothing and times out.
    pub fn ignore(mut self) -> io::Result<()> {
        self.decide(Verdict::Ignore, None)
    }
}

impl Drop for InterceptedTcp {
    fn drop(&mut self) {
        if !self.decided {
            let _ = self.decide(Verdict::Reset, None);
        }
    }
}

impl std::fmt::Debug for InterceptedTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterceptedTcp")
            .field("local", &self.offer.local)
            .field("peer", &self.offer.remote)
            .finish()
    }
}

/// A new intercepted UDP flow waiting for the application's verdict; its datagrams are
/// queued meanwhile. Dropping it undecided drops the flow.
pub struct InterceptedUdp {
    handle: Handle,
    offer: UdpOffer,
    decided: bool,
}

impl InterceptedUdp {
    /// The destination the client sent to: the accepted socket's local address, and the
    /// source of its replies.
    pub fn local_addr(&self) -> SocketAddr {
        self.offer.local
    }

    /// The client.
    pub fn peer_addr(&self) -> SocketAddr {
        self.offer.remote
    }

    fn decide(&mut self, decision: FlowDecision) -> io::Result<()> {
        self.decided = true;
        let id: SocketId = self.offer.id;
        self.handle
            .post(move |iface, now| iface.udp_flow_decide(now, id, decision))
    }

    /// Accepts the flow: a UDP socket connected to the client, bound to the destination it
    /// sent to, holding the datagrams received so far. Its receives fail with `TimedOut`
    /// once the flow has idled out.
    pub fn accept(mut self) -> io::Result<UdpSocket> {
        self.decide(FlowDecision::Accept)?;
        Ok(UdpSocket::new(
            self.handle.clone(),
            self.offer.id,
            self.offer.io.clone(),
        ))
    }

    /// Refuses the flow: its datagrams are answered with ICMP port unreachable.
    pub fn refuse(mut self) -> io::Result<()> {
        self.decide(FlowDecision::Refuse)
    }

    /// Drops the flow's datagrams until it idles out.
    pub fn ignore(mut self) -> io::Result<()> {
        self.decide(FlowDecision::Ignore)
    }
}

/// Where an ICMP message's identifier, sequence number and data start (RFC 792, echo).
const ECHO_IDENT: usize = 4;
const ECHO_SEQ: usize = 6;
const ECHO_DATA: usize = 8;

/// An ICMP echo request to an intercepted address, waiting for the application's answer
/// ([`crate::config::EchoMode::Deliver`]). Dropping it unanswered drops the request (counted):
/// the client sees a timeout.
pub struct InterceptedEcho {
    handle: Handle,
    offer: EchoOffer,
    decided: bool,
}

impl InterceptedEcho {
    /// The address pinged.
    pub fn local_addr(&self) -> IpAddr {
        self.offer.dst
    }

    /// The client that pings.
    pub fn peer_addr(&self) -> IpAddr {
        self.offer.src
    }

    /// The request's identifier (RFC 792).
    pub fn identifier(&self) -> u16 {
        self.field(ECHO_IDENT)
    }

    /// The request's sequence number (RFC 792).
    pub fn sequence(&self) -> u16 {
        self.field(ECHO_SEQ)
    }

    /// The request's data, which a reply echoes.
    pub fn data(&self) -> &[u8] {
        self.offer.message.get(ECHO_DATA..).unwrap_or_default()
    }

    fn field(&self, at: usize) -> u16 {
        match self.offer.message.get(at..at + 2) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        }
    }

    fn decide(&mut self, verdict: EchoVerdict) -> io::Result<()> {
        self.decided = true;
        let offer = EchoOffer {
            message: std::mem::take(&mut self.offer.message),
            ..self.offer
        };
        self.handle
            .post(move |iface, now| iface.intercept_echo_answer(now, &offer, verdict))
    }

    /// Sends the echo reply, from the address pinged.
    pub fn reply(mut self) -> io::Result<()> {
        self.decide(EchoVerdict::Reply)
    }

    /// Answers with ICMP host unreachable about the request.
    pub fn unreachable(mut self) -> io::Result<()> {
        self.decide(EchoVerdict::Unreachable)
    }

    /// Drops the request (counted): the client sees a timeout.
    pub fn ignore(mut self) -> io::Result<()> {
        self.decide(EchoVerdict::Ignore)
    }
}

impl Drop for InterceptedEcho {
    fn drop(&mut self) {
        if !self.decided {
            let _ = self.decide(EchoVerdict::Ignore);
        }
    }
}

impl std::fmt::Debug for InterceptedEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterceptedEcho")
            .field("from", &self.offer.src)
            .field("to", &self.offer.dst)
            .field("identifier", &self.identifier())
            .field("sequence", &self.sequence())
            .field("len", &self.data().len())
            .finish()
    }
}

impl Drop for InterceptedUdp {
    fn drop(&mut self) {
        if !self.decided {
            let _ = self.decide(FlowDecision::Ignore);
        }
    }
}

impl std::fmt::Debug for InterceptedUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterceptedUdp")
            .field("local", &self.offer.local)
            .field("peer", &self.offer.remote)
            .finish()
    }
}
