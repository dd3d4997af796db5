//! ICMP (RFC 792, RFC 1122 §3.2.2): echo, errors we send (rate-limited) and errors we receive,
//! which are handed to the socket they concern.

use super::ipv4::{Datagram, IpRx, Pmtud};
use super::Interface;
use crate::config::IcmpConfig;
use crate::tcp::icmp::IcmpError;
use crate::time::Instant;
use crate::wire::{checksum_bytes, checksum_ok};
use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{Icmpv4Header, Icmpv4Slice, Icmpv4Type, IpNumber, Ipv4HeaderSlice};
use std::net::SocketAddrV4;

/// Bytes of the offending datagram quoted in an error: as much as keeps the error within 576
/// bytes (RFC 1812 §4.3.2.3, what Linux does).
const MAX_QUOTE: usize = 576 - 20 - 8;
/// Where an ICMP message keeps its type, and its checksum (RFC 792).
const ICMP_TYPE: usize = 0;
const ICMP_CHECKSUM: std::ops::Range<usize> = 2..4;
/// RFC 792's type of an echo reply.
const TYPE_ECHO_REPLY: u8 = 0;

/// Global token bucket for the ICMP errors we send (Linux `icmp_msgs_per_sec`/`_burst`).
pub struct RateLimiter {
    cost_us: u64,
    max_credit_us: u64,
    credit_us: u64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(cfg: &IcmpConfig, now: Instant) -> Self {
        let cost_us = 1_000_000 / u64::from(cfg.errors_per_sec.max(1));
        let max_credit_us = cost_us * u64::from(cfg.error_burst.max(1));
        RateLimiter {
            cost_us,
            max_credit_us,
            credit_us: max_credit_us,
            last: now,
        }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = (now - self.last).as_micros().min(u128::from(u64::MAX)) as u64;
        self.last = self.last.max(now);
        self.credit_us = (self.credit_us.saturating_add(elapsed)).min(self.max_credit_us);
        if self.credit_us >= self.cost_us {
            self.credit_us -= self.cost_us;
            true
        } else {
            false
        }
    }
}

/// ICMP types that are queries; everything else counts as an error message (as in Linux).
fn is_query(icmp_type: u8) -> bool {
    matches!(icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// `errno` a socket sees for a received error and whether it is fatal enough to report on a
/// connected UDP socket (Linux `icmp_err_convert`).
fn error_to_errno(t: &Icmpv4Type) -> Option<(i32, bool)> {
    match t {
        Icmpv4Type::DestinationUnreachable(u) => Some(match u {
            DestUnreachableHeader::Network | DestUnreachableHeader::NetworkUnknown => {
                (libc::ENETUNREACH, true)
            }
            DestUnreachableHeader::Protocol => (libc::ENOPROTOOPT, true),
            DestUnreachableHeader::Port => (libc::ECONNREFUSED, true),
            DestUnreachableHeader::FragmentationNeeded { .. } => (libc::EMSGSIZE, false),
            DestUnreachableHeader::SourceRouteFailed => (libc::EOPNOTSUPP, false),
            DestUnreachableHeader::TosNetwork => (libc::ENETUNREACH, false),
            DestUnreachableHeader::TosHost => (libc::EHOSTUNREACH, false),
            DestUnreachableHeader::NetworkProhibited
            | DestUnreachableHeader::HostProhibited
            | DestUnreachableHeader::FilterProhibited => (libc::EACCES, true),
            _ => (libc::EHOSTUNREACH, true),
        }),
        Icmpv4Type::TimeExceeded(_) => Some((libc::EHOSTUNREACH, false)),
        Icmpv4Type::ParameterProblem(_) => Some((libc::EPROTO, true)),
        _ => None,
    }
}

impl Interface {
    pub(super) fn icmp_input(&mut self, now: Instant, rx: &IpRx<'_>) {
        self.stats.icmp_rx_messages += 1;
        if !checksum_ok(rx.payload) {
            self.stats.icmp_rx_bad_checksum += 1;
            return;
        }
        let Ok(msg) = Icmpv4Slice::from_slice(rx.payload) else {
            self.stats.icmp_rx_malformed += 1;
            return;
        };
        match msg.icmp_type() {
            Icmpv4Type::EchoRequest(_) => {
                self.stats.icmp_rx_echo_requests += 1;
                if rx.broadcast {
                    self.stats.icmp_rx_echo_broadcast += 1;
                    return;
                }
                if rx.dst != self.cfg.ip {
                    return self.intercept_echo(now, rx);
                }
                self.icmp_echo_reply(now, rx);
            }
            t @ (Icmpv4Type::DestinationUnreachable(_)
            | Icmpv4Type::TimeExceeded(_)
            | Icmpv4Type::ParameterProblem(_)) => {
                if matches!(t, Icmpv4Type::DestinationUnreachable(_)) {
                    self.stats.icmp_rx_dest_unreachable += 1;
                }
                self.icmp_error_input(now, rx, &t, msg.payload());
            }
            _ => self.stats.icmp_rx_other += 1,
        }
    }

    /// The reply carries the request's identifier, sequence and data (RFC 792); only the type
    /// and checksum change.
    pub(super) fn icmp_echo_reply(&mut self, now: Instant, rx: &IpRx<'_>) {
        let mut payload = rx.payload.to_vec();
        payload[ICMP_TYPE] = TYPE_ECHO_REPLY;
        payload[ICMP_CHECKSUM].fill(0);
        let sum = checksum_bytes(&payload);
        payload[ICMP_CHECKSUM].copy_from_slice(&sum);
        let dg = Datagram {
            src: rx.dst,
            dst: rx.src,
            proto: IpNumber::ICMP,
            pmtud: Pmtud::Dont,
            payload,
            headroom: 0,
            tso_mss: None,
            ttl: None,
            dscp: 0,
            ecn: 0,
            tail: None,
        };
        if self.send_datagram(now, dg).is_ok() {
            self.stats.icmp_tx_echo_replies += 1;
        }
    }

    /// Hands a received error to the socket whose datagram caused it (RFC 1122 §3.2.2.1);
    /// one about another queue's connection or socket goes on to it, whole.
    fn icmp_error_input(&mut self, now: Instant, rx: &IpRx<'_>, t: &Icmpv4Type, quote: &[u8]) {
        let Ok(inner) = Ipv4HeaderSlice::from_slice(quote) else {
            self.stats.icmp_rx_malformed += 1;
            return;
        };
        let data = &quote[inner.slice().len()..];
        if !self.owns(inner.source_addr()) || data.len() < 8 {
            self.stats.icmp_rx_malformed += 1;
            return;
        }
        let Some((errno, fatal)) = error_to_errno(t) else {
            return;
        };
        if inner.protocol() == IpNumber::TCP {
            let Some((local_port, remote_port, seq)) = crate::tcp::segment::quoted(data) else {
                return;
            };
            let local = SocketAddrV4::new(inner.source_addr(), local_port);
            let remote = SocketAddrV4::new(inner.destination_addr(), remote_port);
            // About another queue's connection: on to it.
            if self.queued()
                && !self.tcp.knows(local.into(), remote.into())
                && self.pass_on_datagram(rx)
            {
                return;
            }
            let err = match t {
                Icmpv4Type::DestinationUnreachable(
                    DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
                ) => IcmpError::FragmentationNeeded { mtu: *next_hop_mtu },
                _ => IcmpError::Unreachable { errno },
            };
            self.with_tcp(now, |tcp, stats| {
                tcp.icmp_error(now, local.into(), remote.into(), seq, err, stats)
            });
            self.stats.icmp_rx_errors_delivered += 1;
        } else if inner.protocol() == IpNumber::UDP {
            // The quote holds at least the first 8 bytes of the datagram: the UDP header.
            let Ok((udp, _)) = etherparse::UdpHeader::from_slice(data) else {
                return;
            };
            let remote = SocketAddrV4::new(inner.destination_addr(), udp.destination_port);
            let local = SocketAddrV4::new(inner.source_addr(), udp.source_port);
            // About another queue's socket: on to it.
            if self.queued()
                && !self.udp_takes(local.into(), remote.into())
                && self.pass_on_datagram(rx)
            {
                return;
            }
            if fatal && self.udp_error(udp.source_port, remote.into(), errno) {
                self.stats.icmp_rx_errors_delivered += 1;
            }
        }
    }

    pub(super) fn icmp_send_unreachable(
        &mut self,
        now: Instant,
        rx: &IpRx<'_>,
        code: DestUnreachableHeader,
    ) {
        if self.icmp_send_error(now, rx, Icmpv4Type::DestinationUnreachable(code.clone())) {
            match code {
                DestUnreachableHeader::Port => self.stats.icmp_tx_port_unreachable += 1,
                DestUnreachableHeader::Protocol => self.stats.icmp_tx_protocol_unreachable += 1,
                _ => {}
            }
        }
    }

    /// "Fragment reassembly time exceeded" for a datagram whose first fragment had arrived.
    pub(super) fn icmp_reassembly_timeout(&mut self, now: Instant, quote: &[u8]) {
        if quote.first().is_some_and(|b| b >> 4 == 6) {
            return self.icmp6_reassembly_timeout(now, quote);
        }
        let Ok(h) = Ipv4HeaderSlice::from_slice(quote) else {
            return;
        };
        let rx = IpRx {
            src: h.source_addr(),
            dst: h.destination_addr(),
            proto: h.protocol(),
            header: h.slice(),
            payload: &quote[h.slice().len()..],
            broadcast: self.cfg.is_broadcast(h.destination_addr()),
            csum_verified: false,
        };
        let t = Icmpv4Type::TimeExceeded(TimeExceededCode::FragmentReassemblyTimeExceeded);
        if self.icmp_send_error(now, &rx, t) {
            self.stats.icmp_tx_time_exceeded += 1;
        }
    }

    /// Sends an error about `rx` unless RFC 1122 §3.2.2 forbids it or the rate limit is hit.
    fn icmp_send_error(&mut self, now: Instant, rx: &IpRx<'_>, t: Icmpv4Type) -> bool {
        let non_first_fragment =
            Ipv4HeaderSlice::from_slice(rx.header).is_ok_and(|h| h.fragments_offset().value() != 0);
        let about_icmp_error =
            rx.proto == IpNumber::ICMP && rx.payload.first().is_none_or(|&ty| !is_query(ty));
        if rx.broadcast
            || non_first_fragment
            || about_icmp_error
            || super::ipv4::is_bad_source(rx.src)
            || rx.dst.is_multicast()
            || rx.src.is_loopback()
        {
            self.stats.icmp_tx_suppressed += 1;
            return false;
        }
        if !self.icmp_limiter.allow(now) {
            self.stats.icmp_tx_rate_limited += 1;
            return false;
        }
        let quote_len = (rx.header.len() + rx.payload.len()).min(MAX_QUOTE);
        let body_len = quote_len - rx.header.len().min(quote_len);
        let mut quote = Vec::with_capacity(quote_len + 8);
        let header = Icmpv4Header::new(t);
        quote.extend_from_slice(&header.to_bytes());
        quote.extend_from_slice(&rx.header[..rx.header.len().min(quote_len)]);
        quote.extend_from_slice(&rx.payload[..body_len]);
        let sum = checksum_bytes(&quote);
        quote[ICMP_CHECKSUM].copy_from_slice(&sum);
        let dg = Datagram {
            src: self.error_source(rx.dst),
            dst: rx.src,
            proto: IpNumber::ICMP,
            pmtud: Pmtud::Dont,
            payload: quote,
            headroom: 0,
            tso_mss: None,
            ttl: None,
            dscp: 0,
            ecn: 0,
            tail: None,
        };
        self.send_datagram(now, dg).is_ok()
    }
}
