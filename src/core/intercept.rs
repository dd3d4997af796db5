//! Catch-all interception at the interface: the queue of offers (intercepted TCP SYNs and new
//! UDP flows) shared with the application's [`crate::socket::Interceptor`], the verdicts that
//! come back as commands, and what is answered from an intercepted address (echo replies and
//! unreachables). TCP's side is [`crate::tcp::intercept`], UDP's flows are in `udp.rs`.

use super::ipv4::IpRx;
use super::ipv6::{Icmp6Error, Rx6, CODE_ADDRESS_UNREACHABLE, TYPE_DEST_UNREACHABLE};
use super::Interface;
use crate::config::{Buffers, EchoMode};
use crate::id::SocketId;
use crate::stats::Counters;
use crate::tcp::intercept::{TcpOffer, Verdict};
use crate::tcp::shared::{Shared, SocketIo, Wakeable, Wakers};
use crate::time::Instant;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{IpNumber, Ipv4Header, Ipv6Header, TcpHeader};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
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
    pub local: SocketAddr,
    /// The client, of the same family.
    pub remote: SocketAddr,
}

/// An ICMP or ICMPv6 echo request to an intercepted address, handed to the application
/// ([`crate::config::EchoMode::Deliver`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoOffer {
    /// The client that pings.
    pub src: IpAddr,
    /// The address pinged, of the same family.
    pub dst: IpAddr,
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

/// Whether `addr` can be an end of an intercepted IPv6 flow: one host's address beyond the
/// link. Not link-local addresses (the link's own: neighbour and router discovery), nor
/// IPv4-mapped or IPv4-compatible ones, which never belong on the wire (RFC 4291 §2.5.5).
pub(super) fn is_unicast6(addr: Ipv6Addr) -> bool {
    let embeds_v4 = matches!(addr.segments(), [0, 0, 0, 0, 0, 0 | 0xffff, _, _]);
    !(addr.is_unspecified()
        || addr.is_multicast()
        || addr.is_loopback()
        || embeds_v4
        || crate::wire::ipv6::is_link_local(addr))
}

/// Queues an echo request for the application, unless `max_pending` wait already (counted).
fn offer_echo(io: &InterceptIo, offer: EchoOffer, max_pending: usize, stats: &mut Counters) {
    let mut state = io.lock();
    if state.echo.len() >= max_pending {
        drop(state);
        stats.icpt_echo_pending_full += 1;
        return;
    }
    state.echo.push_back(offer);
    io.wake(state);
    stats.icpt_echo_offered += 1;
}

/// ICMPv6 address unreachable (RFC 4443 §3.1), what a router says of a host it cannot reach.
fn address_unreachable() -> Icmp6Error {
    Icmp6Error {
        icmp_type: TYPE_DEST_UNREACHABLE,
        code: CODE_ADDRESS_UNREACHABLE,
        param: 0,
        to_multicast: false,
    }
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

    /// Whether an IPv6 packet to `dst` is intercepted: interception is on, and `dst` is one
    /// host's address that is none of ours (not even a tentative one).
    pub(super) fn intercepts6(&self, dst: Ipv6Addr) -> bool {
        self.intercept.is_some()
            && is_unicast6(dst)
            && self.ip6.as_ref().is_some_and(|s| !s.holds(dst))
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
        match (verdict, syn) {
            (Verdict::Unreachable, Some((SocketAddr::V4(local), SocketAddr::V4(remote), seq))) => {
                self.unreachable_about_syn(now, local, remote, seq.0);
            }
            (Verdict::Unreachable, Some((SocketAddr::V6(local), SocketAddr::V6(remote), seq))) => {
                self.unreachable_about_syn6(now, local, remote, seq.0);
            }
            _ => {}
        }
    }

    /// ICMPv6 address unreachable from `local` about the client's SYN (RFC 4443 §3.1), as
    /// [`Interface::unreachable_about_syn`] over IPv4.
    fn unreachable_about_syn6(
        &mut self,
        now: Instant,
        local: SocketAddrV6,
        remote: SocketAddrV6,
        seq: u32,
    ) {
        let mut tcp = TcpHeader::new(remote.port(), local.port(), seq, 0);
        tcp.syn = true;
        let header = Ipv6Header {
            payload_length: tcp.header_len_u16(),
            next_header: IpNumber::TCP,
            hop_limit: 64,
            source: remote.ip().octets(),
            destination: local.ip().octets(),
            ..Default::default()
        };
        let mut packet = header.to_bytes().to_vec();
        packet.extend_from_slice(&tcp.to_bytes());
        let rx = Rx6 {
            src: *remote.ip(),
            dst: *local.ip(),
            hop_limit: header.hop_limit,
            packet: &packet,
            multicast: false,
            csum_verified: true,
        };
        self.icmp6_error(now, &rx, address_unreachable());
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
                let offer = EchoOffer {
                    src: rx.src.into(),
                    dst: rx.dst.into(),
                    message: rx.payload.to_vec(),
                };
                offer_echo(io, offer, cfg.max_pending, &mut self.stats);
            }
        }
    }

    /// An ICMPv6 echo request (`msg`) to an intercepted address, as
    /// [`Interface::intercept_echo`] takes one over IPv4.
    pub(super) fn intercept_echo6(&mut self, now: Instant, rx: &Rx6<'_>, msg: &[u8]) {
        let (Some(cfg), Some(io)) = (self.cfg.intercept, self.intercept.as_ref()) else {
            return;
        };
        match cfg.echo {
            EchoMode::Answer => {
                self.stats.icpt_echo_replies += 1;
                self.icmpv6_echo_reply(now, rx, msg);
            }
            EchoMode::Ignore => self.stats.icpt_echo_ignored += 1,
            EchoMode::Deliver => {
                let offer = EchoOffer {
                    src: rx.src.into(),
                    dst: rx.dst.into(),
                    message: msg.to_vec(),
                };
                offer_echo(io, offer, cfg.max_pending, &mut self.stats);
            }
        }
    }

    /// The application's answer to an echo request it was handed.
    pub fn intercept_echo_answer(&mut self, now: Instant, offer: &EchoOffer, verdict: EchoVerdict) {
        if verdict == EchoVerdict::Ignore {
            self.stats.icpt_echo_ignored += 1;
            return;
        }
        let Ok(len) = u16::try_from(offer.message.len()) else {
            return;
        };
        let counter = match verdict {
            EchoVerdict::Reply => &mut self.stats.icpt_echo_replies,
            _ => &mut self.stats.icpt_echo_unreachable,
        };
        match (offer.src, offer.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let Ok(ip) = Ipv4Header::new(len, 64, IpNumber::ICMP, src.octets(), dst.octets())
                else {
                    return;
                };
                *counter += 1;
                let header = ip.to_bytes();
                let rx = IpRx {
                    src,
                    dst,
                    proto: IpNumber::ICMP,
                    header: &header,
                    payload: &offer.message,
                    broadcast: false,
                    csum_verified: true,
                };
                match verdict {
                    EchoVerdict::Reply => self.icmp_echo_reply(now, &rx),
                    _ => self.icmp_send_unreachable(now, &rx, DestUnreachableHeader::Host),
                }
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                // The request rebuilt, for the error to quote (RFC 4443 §3.1).
                let header = Ipv6Header {
                    payload_length: len,
                    next_header: IpNumber::IPV6_ICMP,
                    hop_limit: 64,
                    source: src.octets(),
                    destination: dst.octets(),
                    ..Default::default()
                };
                *counter += 1;
                let mut packet = header.to_bytes().to_vec();
                packet.extend_from_slice(&offer.message);
                let rx = Rx6 {
                    src,
                    dst,
                    hop_limit: header.hop_limit,
                    packet: &packet,
                    multicast: false,
                    csum_verified: true,
                };
                match verdict {
                    EchoVerdict::Reply => self.icmpv6_echo_reply(now, &rx, &offer.message),
                    _ => self.icmp6_error(now, &rx, address_unreachable()),
                }
            }
            _ => {}
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
