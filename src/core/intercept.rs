//! Catch-all interception at the interface: the queue of offers (intercepted TCP SYNs and new
//! UDP flows) shared with the application's [`crate::socket::Interceptor`], the verdicts that
//! come back as commands, and what is answered from an intercepted address (echo replies and
//! unreachables). TCP's side is [`crate::tcp::intercept`], UDP's flows are in `udp.rs`.

use super::ipv4::IpRx;
use super::Interface;
use crate::config::{Buffers, EchoMode};
use crate::id::SocketId;
use crate::tcp::intercept::{TcpOffer, Verdict};
use crate::tcp::shared::{Shared, SocketIo, Wakeable, Wakers};
use crate::time::Instant;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{IpNumber, Ipv4Header, TcpHeader};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

/// A new UDP flow offered to the application: the id of the socket that holds its datagrams,
/// the destination the client sent to (the socket's local address) and the client.
#[derive(Clone, Debug)]
pub struct UdpOffer {
    /// The flow's socket, holding the datagrams received so far.
    pub id: SocketId,
    /// The socket's shared receive state, which its handle takes over without a round trip.
    pub io: super::UdpIo,
    /// The destination the client sent to.
    pub local: SocketAddrV4,
    /// The client.
    pub remote: SocketAddrV4,
}

/// An ICMP echo request to an intercepted address, handed to the application
/// ([`crate::config::EchoMode::Deliver`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoOffer {
    /// The client that pings.
    pub src: Ipv4Addr,
    /// The address pinged.
    pub dst: Ipv4Addr,
    /// The ICMP message as received: type, code, checksum, identifier, sequence, data.
    pub message: Vec<u8>,
}

/// The application's answer to an [`EchoOffer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoVerdict {
    /// An echo reply from the address pinged.
    Reply,
    /// ICMP host unreachable about the request.
    Unreachable,
    /// No answer (counted).
    Ignore,
}

/// What the interface shares with the application's interceptor handle.
#[derive(Default)]
pub struct InterceptState {
    /// Intercepted SYNs waiting for a verdict, oldest first.
    pub tcp: VecDeque<TcpOffer>,
    /// New UDP flows waiting for a verdict, oldest first.
    pub udp: VecDeque<UdpOffer>,
    /// Echo requests waiting to be taken, oldest first.
    pub echo: VecDeque<EchoOffer>,
    /// The stack has stopped: no more offers will come.
    pub stopped: bool,
    wakers: Wakers,
}

impl Wakeable for InterceptState {
    fn wakers(&mut self) -> &mut Wakers {
        &mut self.wakers
    }
}

/// The offer queue's shared state.
pub type InterceptIo = Shared<InterceptState>;

/// Whether `addr` can be the destination of an intercepted flow: one host's address.
pub(super) fn is_unicast(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast())
}

impl Interface {
    /// The offer queue, when interception is on.
    pub fn intercept_io(&self) -> Option<Arc<InterceptIo>> {
        self.intercept.clone()
    }

    /// Whether `addr` is a destination this interface answers for: its own address, or any
    /// unicast address when intercepting.
    pub(super) fn owns(&self, addr: Ipv4Addr) -> bool {
        addr == self.cfg.ip || (self.intercept.is_some() && is_unicast(addr))
    }

    /// The source of an error about a datagram sent to `dst`: `dst` itself for an
    /// intercepted destination, as that host would answer, else our address.
    pub(super) fn error_source(&self, dst: Ipv4Addr) -> Ipv4Addr {
        if self.owns(dst) && !self.cfg.is_broadcast(dst) {
            dst
        } else {
            self.cfg.ip
        }
    }

    /// Moves TCP's new offers to the shared queue and wakes the interceptor.
    pub(super) fn publish_offers(&mut self, udp: Option<UdpOffer>) {
        let Some(io) = self.intercept.as_ref() else {
            return;
        };
        let tcp = self.tcp.take_offers();
        if tcp.is_empty() && udp.is_none() {
            return;
        }
        let mut state = io.lock();
        state.tcp.extend(tcp);
        state.udp.extend(udp);
        io.wake(state);
    }

    /// The application's verdict on an intercepted SYN; `io` is the state its handle shares
    /// with the connection when it accepts.
    pub fn intercept_tcp(
        &mut self,
        now: Instant,
        id: SocketId,
        verdict: Verdict,
        io: Option<Arc<SocketIo>>,
        buffers: Buffers,
    ) {
        let syn = self.with_tcp(now, |tcp, stats| {
            tcp.intercept_decide(now, id, verdict, io, buffers, stats)
        });
        if let (Verdict::Unreachable, Some((SocketAddr::V4(local), SocketAddr::V4(remote), seq))) =
            (verdict, syn)
        {
            self.unreachable_about_syn(now, local, remote, seq.0);
        }
    }

    /// ICMP host unreachable from `local` about the client's SYN, rebuilt from what TCP kept
    /// of it: the client's stack matches the quote to its socket by addresses, ports and
    /// sequence number (RFC 5927 §4.1).
    fn unreachable_about_syn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seq: u32,
    ) {
        let mut tcp = TcpHeader::new(remote.port(), local.port(), seq, 0);
        tcp.syn = true;
        let Ok(ip) = Ipv4Header::new(
            tcp.header_len_u16(),
            64,
            IpNumber::TCP,
            remote.ip().octets(),
            local.ip().octets(),
        ) else {
            return;
        };
        let header = ip.to_bytes();
        let payload = tcp.to_bytes();
        let rx = IpRx {
            src: *remote.ip(),
            dst: *local.ip(),
            proto: IpNumber::TCP,
            header: &header,
            payload: &payload,
            broadcast: false,
            csum_verified: true,
        };
        self.icmp_send_unreachable(now, &rx, DestUnreachableHeader::Host);
    }

    /// An echo request to an intercepted address: answered as from that address, handed to
    /// the application or dropped, as the configuration says.
    pub(super) fn intercept_echo(&mut self, now: Instant, rx: &IpRx<'_>) {
        let (Some(cfg), Some(io)) = (self.cfg.intercept, self.intercept.as_ref()) else {
            return;
        };
        match cfg.echo {
            EchoMode::Answer => {
                self.stats.icpt_echo_replies += 1;
                self.icmp_echo_reply(now, rx);
            }
            EchoMode::Ignore => self.stats.icpt_echo_ignored += 1,
            EchoMode::Deliver => {
                let mut state = io.lock();
                if state.echo.len() >= cfg.max_pending {
                    drop(state);
                    self.stats.icpt_echo_pending_full += 1;
                    return;
                }
                state.echo.push_back(EchoOffer {
                    src: rx.src,
                    dst: rx.dst,
                    message: rx.payload.to_vec(),
                });
                io.wake(state);
                self.stats.icpt_echo_offered += 1;
            }
        }
    }

    /// The application's answer to an echo request it was handed.
    pub fn intercept_echo_answer(&mut self, now: Instant, offer: &EchoOffer, verdict: EchoVerdict) {
        let header = match u16::try_from(offer.message.len()).ok().and_then(|len| {
            Ipv4Header::new(
                len,
                64,
                IpNumber::ICMP,
                offer.src.octets(),
                offer.dst.octets(),
            )
            .ok()
        }) {
            Some(ip) => ip.to_bytes(),
            None => return,
        };
        let rx = IpRx {
            src: offer.src,
            dst: offer.dst,
            proto: IpNumber::ICMP,
            header: &header,
            payload: &offer.message,
            broadcast: false,
            csum_verified: true,
        };
        match verdict {
            EchoVerdict::Reply => {
                self.stats.icpt_echo_replies += 1;
                self.icmp_echo_reply(now, &rx);
            }
            EchoVerdict::Unreachable => {
                self.stats.icpt_echo_unreachable += 1;
                self.icmp_send_unreachable(now, &rx, DestUnreachableHeader::Host);
            }
            EchoVerdict::Ignore => self.stats.icpt_echo_ignored += 1,
        }
    }

    /// Tells the interceptor handle that the stack has stopped.
    pub(super) fn stop_interceptor(&mut self) {
        if let Some(io) = self.intercept.as_ref() {
            let mut state = io.lock();
            state.stopped = true;
            io.wake(state);
        }
    }
}
