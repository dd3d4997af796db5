//! ICMPv6 (RFC 4443) and the Neighbour Discovery messages a host handles (RFC 4861): echo,
//! the errors we send (rate limited, never where §2.4 (e) forbids), Neighbour Solicitation and
//! Advertisement for address resolution and DAD; a destination unreachable reaches the connected
//! UDP socket it concerns; Router Solicitation and Advertisement for router discovery and SLAAC
//! (`autoconf.rs`). Redirects are counted and ignored: they are not followed.

use super::autoconf::{slaac_address, updated_lifetime, PrefixInfo};
use super::ipv6::Addr6;
use super::ipv6::{AddrState, Icmp6Error, Rx6, HEADER_LEN, MIN_MTU};
use super::ndp::Learned;
use super::Interface;
use crate::time::Instant;
use crate::wire::ipv6::{self as wire6, ALL_NODES};
use crate::wire::MacAddr;
use std::net::Ipv6Addr;
use std::time::Duration;

/// ICMPv6's next-header value.
const ICMPV6: u8 = 58;
/// Message types (RFC 4443 §2.1, RFC 4861 §4).
const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;
const MLD_QUERY: u8 = 130;
const MLD_V2_REPORT: u8 = 143;
const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
const REDIRECT: u8 = 137;
/// Time exceeded (RFC 4443 §3.3).
const TYPE_TIME_EXCEEDED: u8 = 3;
/// Types below this are errors (RFC 4443 §2.1).
const FIRST_INFORMATIONAL: u8 = 128;
/// Neighbour Discovery's hop limit: a message with any other did not come from the link.
const ND_HOP_LIMIT: u8 = 255;
/// NS/NA: the target address follows 4 bytes of flags or reserved (RFC 4861 §4.3, §4.4).
const ND_TARGET: usize = 8;
const ND_OPTIONS: usize = 24;
/// NDP options: source and target link-layer address (RFC 4861 §4.6.1), prefix information
/// (§4.6.2) and MTU (§4.6.4).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
const OPT_PREFIX_INFO: u8 = 3;
const OPT_MTU: u8 = 5;
/// Where a Router Advertisement's options start (RFC 4861 §4.2).
const RA_OPTIONS: usize = 16;
/// Where a Router Advertisement's Cur Hop Limit, Reachable Time and Retrans Timer are.
const RA_CUR_HOP_LIMIT: usize = 4;
const RA_REACHABLE_TIME: usize = 8;
const RA_RETRANS_TIMER: usize = 12;
/// The shortest Reachable Time and Retrans Timer taken from an RA (Linux's floors, 100 and
/// 10 ms), so that an advertisement cannot make resolution give up at once.
const MIN_REACHABLE_TIME: Duration = Duration::from_millis(100);
const MIN_RETRANS_TIMER: Duration = Duration::from_millis(10);
/// MLDv2 record types (RFC 3810 §5.2.12): the state of a group we listen to, and a join.
pub(super) const MLD_MODE_IS_EXCLUDE: u8 = 2;
pub(super) const MLD_CHANGE_TO_EXCLUDE: u8 = 4;
/// Where MLDv2 Reports go (RFC 3810 §5.2.14).
const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
/// A Hop-by-Hop header carrying Router Alert for MLD (RFC 2711), padded to 8 bytes, naming
/// ICMPv6 next.
const HOP_BY_HOP_ROUTER_ALERT: [u8; 8] = [ICMPV6, 0, 5, 2, 0, 0, 1, 0];
/// The all-routers link-local group (RFC 4291 §2.7.1).
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// Neighbour Advertisement flags (RFC 4861 §4.4).
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// The link-layer address option of kind `kind` in NDP options `opts`; `Err` if an option is
/// malformed (zero length, or past the end: RFC 4861 §7.1.1).
fn ll_option(opts: &[u8], kind: u8) -> Result<Option<MacAddr>, ()> {
    let opts = nd_options(opts).ok_or(())?;
    // The last such option counts, as the one parsed last did.
    Ok(opts
        .into_iter()
        .rev()
        .filter(|&(t, _)| t == kind)
        .find_map(|(_, body)| <[u8; 6]>::try_from(body).ok())
        .map(MacAddr))
}

/// NDP options as (type, body) pairs, or `None` if one is malformed (zero length, or past
/// the end: RFC 4861 §4.6).
fn nd_options(opts: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        let (&t, &len) = (opts.get(i)?, opts.get(i + 1)?);
        let end = i + usize::from(len) * 8;
        if len == 0 || end > opts.len() {
            return None;
        }
        out.push((t, &opts[i + 2..end]));
        i = end;
    }
    Some(out)
}

/// The target address of an NS or NA (at least [`ND_OPTIONS`] bytes long).
fn nd_target(msg: &[u8]) -> Ipv6Addr {
    let mut t = [0u8; 16];
    t.copy_from_slice(&msg[ND_TARGET..ND_OPTIONS]);
    Ipv6Addr::from(t)
}

impl Interface {
    /// An ICMPv6 message at offset `off` of the packet.
    pub(super) fn icmpv6_input(&mut self, now: Instant, rx: &Rx6<'_>, off: usize) {
        self.stats.icmp6_rx_messages += 1;
        let msg = &rx.packet[off..];
        if msg.len() < 4 {
            self.stats.icmp6_rx_malformed += 1;
            return;
        }
        if !rx.csum_verified && !wire6::checksum_ok(rx.src, rx.dst, ICMPV6, msg) {
            self.stats.icmp6_rx_bad_checksum += 1;
            return;
        }
        let tentative_dst = !rx.dst.is_multicast()
            && self
                .ip6
                .as_ref()
                .is_some_and(|s| s.holds(rx.dst) && !s.is_ours(rx.dst));
        let intercepted = !rx.dst.is_multicast() && self.intercepts6(rx.dst);
        // An intercepted address takes echo requests and errors, nothing of the link's.
        if intercepted && msg[0] != ECHO_REQUEST && msg[0] >= FIRST_INFORMATIONAL {
            self.stats.icmp6_rx_other += 1;
            return;
        }
        match msg[0] {
            NEIGHBOR_SOLICITATION => self.nd_solicitation_input(now, rx, msg),
            NEIGHBOR_ADVERTISEMENT => self.nd_advertisement_input(now, rx, msg),
            ROUTER_ADVERTISEMENT => self.nd_router_advertisement_input(now, rx, msg),
            MLD_QUERY => {
                // A query from the link (hop limit 1, link-local source) gets the state of
                // every group we report (RFC 3810 §6.2; one report, not delayed).
                if rx.hop_limit == 1 && wire6::is_link_local(rx.src) {
                    let groups = self
                        .ip6
                        .as_ref()
                        .map(|s| s.reported_groups())
                        .unwrap_or_default();
                    self.send_mld_report(now, &groups, MLD_MODE_IS_EXCLUDE);
                } else {
                    self.stats.nd_rx_invalid += 1;
                }
            }
            // A tentative address takes nothing but Neighbour Discovery (RFC 4862 §5.4).
            _ if tentative_dst => self.stats.ip6_rx_not_for_us += 1,
            ECHO_REQUEST => {
                self.stats.icmp6_rx_echo_requests += 1;
                if msg.len() < 8 {
                    self.stats.icmp6_rx_malformed += 1;
                    return;
                }
                if intercepted {
                    return self.intercept_echo6(now, rx, msg);
                }
                self.icmpv6_echo_reply(now, rx, msg);
            }
            t if t < FIRST_INFORMATIONAL => {
                self.stats.icmp6_rx_errors += 1;
                self.icmpv6_error_input(now, msg);
            }
            _ => self.stats.icmp6_rx_other += 1,
        }
    }

    /// Hands a received destination unreachable to the connected UDP socket whose datagram it
    /// quotes (RFC 4443 §3.1, RFC 1122 §4.1.3.3), as `errno`: Linux's `icmpv6_err_convert`,
    /// whose unreachables are all fatal.
    fn icmpv6_error_input(&mut self, now: Instant, msg: &[u8]) {
        const DEST_UNREACHABLE: u8 = 1;
        const PACKET_TOO_BIG: u8 = 2;
        const PARAM_PROBLEM: u8 = 4;
        if msg[0] == PACKET_TOO_BIG {
            return self.icmpv6_packet_too_big(now, msg);
        }
        if msg.len() < 8 + HEADER_LEN + 8 {
            self.stats.icmp6_rx_malformed += 1;
            return;
        }
        let quote = &msg[8..];
        let Ok(inner) = etherparse::Ipv6HeaderSlice::from_slice(quote) else {
            self.stats.icmp6_rx_malformed += 1;
            return;
        };
        // About a packet we sent: from our address, or from an intercepted one.
        let source = inner.source_addr();
        let ours = self.ip6.as_ref().is_some_and(|s| s.is_ours(source)) || self.intercepts6(source);
        if !ours {
            self.stats.icmp6_rx_not_ours += 1;
            return;
        }
        // Every error reaches the transport it concerns (§2.4 (a), (d)): Destination
        // Unreachable and Parameter Problem as hard errors, Time Exceeded and unknown types as
        // soft ones, as Linux's `icmpv6_err_convert` has them.
        let (errno, fatal) = match (msg[0], msg[1]) {
            (DEST_UNREACHABLE, 0) => (libc::ENETUNREACH, true),
            (DEST_UNREACHABLE, 1 | 5 | 6) => (libc::EACCES, true),
            (DEST_UNREACHABLE, 4) => (libc::ECONNREFUSED, true),
            (DEST_UNREACHABLE, _) => (libc::EHOSTUNREACH, true),
            (PARAM_PROBLEM, _) => (libc::EPROTO, true),
            _ => (libc::EHOSTUNREACH, false),
        };
        let upper = &quote[HEADER_LEN..];
        let (src_port, dst_port) = (
            u16::from_be_bytes([upper[0], upper[1]]),
            u16::from_be_bytes([upper[2], upper[3]]),
        );
        let remote = std::net::SocketAddrV6::new(inner.destination_addr(), dst_port, 0, 0);
        if inner.next_header() == etherparse::IpNumber::UDP {
            // A connected UDP socket hears only hard errors (no IPV6_RECVERR here).
            if fatal {
                self.udp_error(src_port, remote.into(), errno);
            }
        } else if inner.next_header() == etherparse::IpNumber::TCP {
            // As for IPv4: a connect fails at once; an established connection keeps it as
            // a soft error (RFC 1122 §4.2.3.9, RFC 5461).
            let Some((_, _, seq)) = crate::tcp::segment::quoted(upper) else {
                return;
            };
            let local = std::net::SocketAddrV6::new(inner.source_addr(), src_port, 0, 0);
            let err = crate::tcp::icmp::IcmpError::Unreachable { errno };
            self.with_tcp(now, |tcp, stats| {
                tcp.icmp_error(now, local.into(), remote.into(), seq, err, stats)
            });
        }
    }

    /// A Packet Too Big about a packet of ours (its quoted source is one of our addresses):
    /// the path MTU to its destination shrinks (RFC 8201 §4), later packets there are
    /// fragmented to it, and later connections there take their MSS from it. One about a TCP
    /// segment is believed only if it quotes data in flight (RFC 5927, RFC 8201 §5.2), as for
    /// IPv4: a forged one shrinks nothing.
    fn icmpv6_packet_too_big(&mut self, now: Instant, msg: &[u8]) {
        self.stats.icmp6_rx_packet_too_big += 1;
        let Some(Ok(inner)) = msg.get(8..).map(etherparse::Ipv6HeaderSlice::from_slice) else {
            self.stats.icmp6_rx_malformed += 1;
            return;
        };
        let mtu = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
        let source = inner.source_addr();
        if !self.ip6.as_ref().is_some_and(|ip6| ip6.is_ours(source)) && !self.intercepts6(source) {
            self.stats.icmp6_rx_not_ours += 1;
            return;
        }
        let dst = inner.destination_addr();
        // Below the minimum MTU the message is discarded (RFC 8201 §4).
        if inner.next_header() == etherparse::IpNumber::TCP && mtu as usize >= MIN_MTU {
            let Some((local_port, remote_port, seq)) = msg[8..]
                .get(HEADER_LEN..)
                .and_then(crate::tcp::segment::quoted)
            else {
                self.stats.icmp6_rx_malformed += 1;
                return;
            };
            let local = std::net::SocketAddrV6::new(inner.source_addr(), local_port, 0, 0);
            let remote = std::net::SocketAddrV6::new(dst, remote_port, 0, 0);
            let err = crate::tcp::icmp::IcmpError::FragmentationNeeded {
                mtu: mtu.min(u32::from(u16::MAX)) as u16,
            };
            let believed = self.with_tcp(now, |tcp, stats| {
                tcp.icmp_error(now, local.into(), remote.into(), seq, err, stats)
            });
            if !believed {
                return;
            }
            self.learn_ipv6_path_mtu(now, dst, mtu, true);
        } else {
            self.learn_ipv6_path_mtu(now, dst, mtu, false);
        }
    }

    /// The path MTU towards `dst` is `mtu`, if less than known: for the IP layer's packets,
    /// and for TCP's later connections (`for_tcp`) only where TCP checked the message against
    /// its data in flight, so that a Packet Too Big forged about a datagram cannot shrink
    /// them.
    fn learn_ipv6_path_mtu(&mut self, now: Instant, dst: Ipv6Addr, mtu: u32, for_tcp: bool) {
        let device_mtu = self.cfg.mtu;
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        if let Some(until) = ip6.learn_pmtu(now, dst, mtu, device_mtu) {
            self.stats.ip6_pmtu_updates += 1;
            self.udp_path_mtu_fell();
            if for_tcp {
                self.tcp.set_path_mtu(now, dst.into(), mtu as usize, until);
            }
        }
    }

    /// The reply carries the request's identifier, sequence and data (RFC 4443 §4.2). A
    /// request to a group is answered from a unicast address of ours (as Linux does).
    pub(super) fn icmpv6_echo_reply(&mut self, now: Instant, rx: &Rx6<'_>, msg: &[u8]) {
        let src = if rx.dst.is_multicast() {
            match self.ip6.as_ref().and_then(|s| s.source_for(rx.src)) {
                Some(a) => a,
                None => return,
            }
        } else {
            rx.dst
        };
        if rx.src.is_unspecified() {
            return;
        }
        let mut reply = msg.to_vec();
        reply[0] = ECHO_REPLY;
        reply[1] = 0;
        self.send_icmpv6(now, src, rx.src, reply, None);
        self.stats.icmp6_tx_echo_replies += 1;
    }

    /// Sends `msg` (type, code, zero checksum, body) with its checksum filled in; `hop_limit`
    /// defaults to the configured one.
    fn send_icmpv6(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        mut msg: Vec<u8>,
        hop_limit: Option<u8>,
    ) {
        msg[2..4].fill(0);
        let sum = wire6::checksum(src, dst, ICMPV6, &msg);
        msg[2..4].copy_from_slice(&sum);
        let hop_limit = hop_limit.unwrap_or_else(|| self.hop_limit6());
        self.send_ipv6(now, src, dst, ICMPV6, hop_limit, &msg);
    }

    /// An ICMPv6 error about `rx` (RFC 4443 §2.4): never about an error message, from or to
    /// an address that is not one host's, nor (but where allowed) about a multicast packet;
    /// rate limited; the invoking packet quoted as far as the minimum MTU allows.
    pub(super) fn icmp6_error(&mut self, now: Instant, rx: &Rx6<'_>, e: Icmp6Error) {
        // No error about an ICMPv6 error or a Redirect (§2.4 (e.1), (e.2)), wherever it sits
        // behind extension headers.
        let about_error = super::ipv6::upper_layer(rx.packet).is_some_and(|(proto, at)| {
            proto == ICMPV6
                && rx
                    .packet
                    .get(at)
                    .is_some_and(|&t| t < FIRST_INFORMATIONAL || t == REDIRECT)
        });
        if about_error
            || rx.src.is_unspecified()
            || rx.src.is_multicast()
            || (rx.multicast && !e.to_multicast)
        {
            return;
        }
        // An intercepted destination answers for itself, as that host would.
        let intercepted = self.intercepts6(rx.dst);
        let Some(src) = self.ip6.as_ref().and_then(|s| {
            if s.is_ours(rx.dst) || intercepted {
                Some(rx.dst)
            } else {
                s.source_for(rx.src)
            }
        }) else {
            return;
        };
        if !self.icmp_limiter.allow(now) {
            self.stats.icmp6_tx_rate_limited += 1;
            return;
        }
        let quote = rx.packet.len().min(MIN_MTU - HEADER_LEN - 8);
        let mut msg = Vec::with_capacity(8 + quote);
        msg.extend_from_slice(&[e.icmp_type, e.code, 0, 0]);
        msg.extend_from_slice(&e.param.to_be_bytes());
        msg.extend_from_slice(&rx.packet[..quote]);
        self.stats.icmp6_tx_errors += 1;
        self.send_icmpv6(now, src, rx.src, msg, None);
    }

    /// Time exceeded, fragment reassembly (code 1), about a packet whose first fragment came
    /// (`quote`: its unfragmentable part and first bytes) and whose rest did not in time
    /// (RFC 8200 §4.5).
    pub(super) fn icmp6_reassembly_timeout(&mut self, now: Instant, quote: &[u8]) {
        let Ok(h) = etherparse::Ipv6HeaderSlice::from_slice(quote) else {
            return;
        };
        let rx = Rx6 {
            src: h.source_addr(),
            dst: h.destination_addr(),
            hop_limit: h.hop_limit(),
            packet: quote,
            multicast: h.destination_addr().is_multicast(),
            csum_verified: false,
        };
        let e = Icmp6Error {
            icmp_type: TYPE_TIME_EXCEEDED,
            code: 1,
            param: 0,
            to_multicast: false,
        };
        self.icmp6_error(now, &rx, e);
    }

    /// Checks common to NS and NA (RFC 4861 §7.1): hop limit 255, code 0, long enough, a
    /// unicast target, well-formed options. The options' link-layer address of `kind`.
    fn nd_validate(&mut self, rx: &Rx6<'_>, msg: &[u8], kind: u8) -> Option<Option<MacAddr>> {
        let valid = rx.hop_limit == ND_HOP_LIMIT
            && msg[1] == 0
            && msg.len() >= ND_OPTIONS
            && !nd_target(msg).is_multicast();
        let ll = if valid {
            ll_option(&msg[ND_OPTIONS..], kind).ok()
        } else {
            None
        };
        if ll.is_none() {
            self.stats.nd_rx_invalid += 1;
        }
        ll
    }

    /// A Neighbour Solicitation (RFC 4861 §7.2.3; DAD, RFC 4862 §5.4.3).
    fn nd_solicitation_input(&mut self, now: Instant, rx: &Rx6<'_>, msg: &[u8]) {
        self.stats.nd_rx_solicitations += 1;
        let Some(sll) = self.nd_validate(rx, msg, OPT_SOURCE_LL) else {
            return;
        };
        let dad = rx.src.is_unspecified();
        // From the unspecified address (DAD), only to a solicited-node group and with no
        // link-layer address.
        if dad && (!rx.dst.is_multicast() || rx.dst == ALL_NODES || sll.is_some()) {
            self.stats.nd_rx_invalid += 1;
            return;
        }
        let target = nd_target(msg);
        let Some(state) = self
            .ip6
            .as_ref()
            .and_then(|s| s.addrs().iter().find(|a| a.addr == target))
            .map(|a| a.state)
        else {
            return;
        };
        match state {
            AddrState::Tentative { .. } => {
                // Another node probes the same tentative address: it is a duplicate for us
                // too. A resolution of it is not answered.
                if dad {
                    self.ipv6_duplicate(target);
                }
            }
            AddrState::Duplicate => {}
            AddrState::Preferred => {
                if dad {
                    // Someone else tries our address: defend it (to all nodes).
                    self.send_neighbor_advertisement(now, target, ALL_NODES, false);
                    return;
                }
                if let (Some(mac), Some(ip6)) = (sll, self.ip6.as_mut()) {
                    let (flushed, changed) =
                        ip6.nd.learn(now, rx.src, Some(mac), Learned::Solicitation);
                    if changed {
                        self.stats.nd_cache_updates += 1;
                    }
                    for p in flushed {
                        self.transmit_ipv6(mac, p);
                    }
                }
                self.send_neighbor_advertisement(now, target, rx.src, true);
            }
        }
    }

    /// A Neighbour Advertisement (RFC 4861 §7.2.5; DAD, RFC 4862 §5.4.4).
    fn nd_advertisement_input(&mut self, now: Instant, rx: &Rx6<'_>, msg: &[u8]) {
        self.stats.nd_rx_advertisements += 1;
        let Some(tll) = self.nd_validate(rx, msg, OPT_TARGET_LL) else {
            return;
        };
        let flags = msg[4];
        let solicited = flags & NA_SOLICITED != 0;
        if solicited && rx.dst.is_multicast() {
            self.stats.nd_rx_invalid += 1;
            return;
        }
        let target = nd_target(msg);
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        match ip6
            .addrs()
            .iter()
            .find(|a| a.addr == target)
            .map(|a| a.state)
        {
            Some(AddrState::Tentative { .. }) => return self.ipv6_duplicate(target),
            Some(_) => {
                log::warn!("{target}: another node advertises our address");
                return;
            }
            None => {}
        }
        if flags & NA_ROUTER == 0 && ip6.auto.not_a_router(target) {
            log::info!("{target} is no longer a router");
        }
        let how = Learned::Advertisement {
            solicited,
            overriding: flags & NA_OVERRIDE != 0,
        };
        let (flushed, changed) = ip6.nd.learn(now, target, tll, how);
        let mac = ip6.nd.mac(target);
        if changed {
            self.stats.nd_cache_updates += 1;
        }
        if let Some(mac) = mac {
            for p in flushed {
                self.transmit_ipv6(mac, p);
            }
        }
    }

    /// A Router Advertisement (RFC 4861 §6.1.2 validation, §6.3.4 processing; RFC 4862 §5.5.3
    /// for its prefixes).
    fn nd_router_advertisement_input(&mut self, now: Instant, rx: &Rx6<'_>, msg: &[u8]) {
        let valid = wire6::is_link_local(rx.src)
            && rx.hop_limit == ND_HOP_LIMIT
            && msg[1] == 0
            && msg.len() >= RA_OPTIONS;
        let Some(opts) = valid.then(|| nd_options(&msg[RA_OPTIONS..])).flatten() else {
            self.stats.nd_rx_invalid += 1;
            return;
        };
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        if !ip6.auto.enabled() {
            self.stats.icmp6_rx_other += 1;
            return;
        }
        self.stats.nd_rx_router_advertisements += 1;
        let cur_hop_limit = msg[RA_CUR_HOP_LIMIT];
        let lifetime = u16::from_be_bytes([msg[6], msg[7]]);
        let mut mtu = None;
        let mut sll = None;
        let mut prefixes = Vec::new();
        for (kind, body) in opts {
            match (kind, body.len()) {
                (OPT_SOURCE_LL, 6) => sll = Some(MacAddr(body.try_into().unwrap_or([0; 6]))),
                (OPT_MTU, 6) => {
                    mtu = Some(u32::from_be_bytes([body[2], body[3], body[4], body[5]]))
                }
                (OPT_PREFIX_INFO, 30) => {
                    let len = body[0].min(128);
                    let mut prefix = [0u8; 16];
                    prefix.copy_from_slice(&body[14..30]);
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - u32::from(len))
                    };
                    prefixes.push(PrefixInfo {
                        prefix: Ipv6Addr::from(u128::from(Ipv6Addr::from(prefix)) & mask),
                        len,
                        on_link: body[1] & 0x80 != 0,
                        autonomous: body[1] & 0x40 != 0,
                        valid: u32::from_be_bytes([body[2], body[3], body[4], body[5]]),
                        preferred: u32::from_be_bytes([body[6], body[7], body[8], body[9]]),
                    });
                }
                _ => {}
            }
        }
        let device_mtu = self.cfg.mtu;
        let mac = self.cfg.mac;
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        let mtu_before = ip6.link_mtu(device_mtu);
        if ip6
            .auto
            .advertisement(now, rx.src, lifetime, mtu, device_mtu, &prefixes)
        {
            self.stats.nd_routers += 1;
            log::info!("default router {}", rx.src);
        }
        let link_mtu = ip6.link_mtu(device_mtu);
        self.tcp.set_link_mtu6(link_mtu);
        // RFC 4861 §6.3.4: the hop limit, Reachable Time and Retrans Timer, where not zero,
        // the timers no shorter than Linux takes them; ReachableTime is the base times a
        // random factor of 0.5 to 1.5 (§6.3.2).
        if cur_hop_limit != 0 {
            ip6.cfg.hop_limit = cur_hop_limit;
        }
        let ms = |at: usize, floor: Duration| {
            let v = u32::from_be_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]]);
            (v != 0).then(|| Duration::from_millis(u64::from(v)).max(floor))
        };
        let factor = rand::Rng::random_range(&mut self.rng, 0.5..1.5);
        let reachable = ms(RA_REACHABLE_TIME, MIN_REACHABLE_TIME).map(|b| b.mul_f64(factor));
        ip6.nd
            .set_times(reachable, ms(RA_RETRANS_TIMER, MIN_RETRANS_TIMER));
        if let Some(mac) = sll {
            let (flushed, _) = ip6.nd.learn(now, rx.src, Some(mac), Learned::Solicitation);
            for p in flushed {
                self.transmit_ipv6(mac, p);
            }
        }
        let link_local = wire6::link_local(mac);
        for p in &prefixes {
            if let Some(addr) = slaac_address(p, link_local) {
                self.slaac_prefix(now, addr, p.valid);
            }
        }
        if link_mtu < mtu_before {
            // Segment sizes UDP vouched for may no longer fit, as after a Packet Too Big.
            self.udp_path_mtu_fell();
        }
    }

    /// An address formed from an advertised prefix: added (tentative, DAD then runs) or its
    /// valid lifetime updated (RFC 4862 §5.5.3 (d), (e)).
    fn slaac_prefix(&mut self, now: Instant, addr: Ipv6Addr, valid: u32) {
        const MAX_AUTOCONFIGURED: usize = 16;
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        if let Some(a) = ip6.addrs.iter_mut().find(|a| a.addr == addr) {
            if let Some(current) = a.valid_until {
                if let Some(t) = updated_lifetime(now, current, valid) {
                    a.valid_until = Some(t);
                }
            }
            return;
        }
        let autoconfigured = ip6.addrs.iter().filter(|a| a.valid_until.is_some()).count();
        if autoconfigured >= MAX_AUTOCONFIGURED {
            return;
        }
        let dad = ip6.cfg.dad_transmits > 0;
        ip6.addrs.push(Addr6 {
            addr,
            prefix_len: 64,
            state: if dad {
                AddrState::Tentative { sent: 0 }
            } else {
                AddrState::Preferred
            },
            valid_until: Some(now + Duration::from_secs(u64::from(valid.min(100 * 365 * 86_400)))),
        });
        if dad && ip6.dad_next.is_none() {
            ip6.dad_next = Some(now);
        }
        self.stats.nd_prefixes_autoconfigured += 1;
        log::info!("{addr}/64 formed from an advertised prefix");
        self.sync_tcp_addrs();
    }

    /// An MLDv2 Report (RFC 3810 §5.2) with one record of `record_type` and no sources per
    /// group: we listen to all their sources. It leaves from our link-local address, or the
    /// unspecified one while that is tentative (§5.2.13), with hop limit 1 and Router Alert.
    pub(super) fn send_mld_report(&mut self, now: Instant, groups: &[Ipv6Addr], record_type: u8) {
        if groups.is_empty() || self.cfg.medium != crate::wire::Medium::Ethernet {
            return;
        }
        let src = self
            .ip6
            .as_ref()
            .and_then(|s| {
                s.addrs()
                    .iter()
                    .find(|a| a.state == AddrState::Preferred && wire6::is_link_local(a.addr))
                    .map(|a| a.addr)
            })
            .unwrap_or(Ipv6Addr::UNSPECIFIED);
        let mut msg = vec![MLD_V2_REPORT, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&(groups.len() as u16).to_be_bytes());
        for g in groups {
            msg.extend_from_slice(&[record_type, 0, 0, 0]);
            msg.extend_from_slice(&g.octets());
        }
        let sum = wire6::checksum(src, ALL_MLDV2_ROUTERS, ICMPV6, &msg);
        msg[2..4].copy_from_slice(&sum);
        let mut payload = HOP_BY_HOP_ROUTER_ALERT.to_vec();
        payload.extend_from_slice(&msg);
        self.stats.nd_tx_mld_reports += 1;
        self.send_ipv6(now, src, ALL_MLDV2_ROUTERS, 0, 1, &payload);
    }

    /// A Router Solicitation to all routers, from our link-local address with our link-layer
    /// address (RFC 4861 §4.1, §6.3.7).
    pub(super) fn send_router_solicitation(&mut self, now: Instant) {
        let Some(src) = self.ip6.as_ref().and_then(|s| {
            s.addrs()
                .iter()
                .find(|a| a.state == AddrState::Preferred && wire6::is_link_local(a.addr))
                .map(|a| a.addr)
        }) else {
            return;
        };
        let mut msg = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0, OPT_SOURCE_LL, 1];
        msg.extend_from_slice(&self.cfg.mac.0);
        self.stats.nd_tx_router_solicitations += 1;
        self.send_icmpv6(now, src, ALL_ROUTERS, msg, Some(ND_HOP_LIMIT));
    }

    /// A Neighbour Solicitation for `target`: multicast to its solicited-node group while
    /// resolving (`mac` None), unicast to `mac` while probing; from our address for it.
    pub(super) fn send_neighbor_solicitation(
        &mut self,
        now: Instant,
        target: Ipv6Addr,
        mac: Option<MacAddr>,
    ) {
        let Some(src) = self.ip6.as_ref().and_then(|s| s.source_for(target)) else {
            return;
        };
        let dst = if mac.is_some() {
            target
        } else {
            wire6::solicited_node(target)
        };
        let mut msg = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&target.octets());
        msg.extend_from_slice(&[OPT_SOURCE_LL, 1]);
        msg.extend_from_slice(&self.cfg.mac.0);
        self.stats.nd_tx_solicitations += 1;
        let sum = wire6::checksum(src, dst, ICMPV6, &msg);
        msg[2..4].copy_from_slice(&sum);
        match mac {
            // A probe goes to the address we have, without resolving it again.
            Some(mac) => {
                let frame = ipv6_frame(src, dst, ND_HOP_LIMIT, &msg);
                self.transmit_ipv6(mac, super::TxFrame::whole(frame));
            }
            None => self.send_ipv6(now, src, dst, ICMPV6, ND_HOP_LIMIT, &msg),
        }
    }

    /// DAD's probe for tentative `addr`: from the unspecified address, to its solicited-node
    /// group, with no link-layer address (RFC 4862 §5.4.2).
    pub(super) fn send_dad_solicitation(&mut self, now: Instant, addr: Ipv6Addr) {
        let dst = wire6::solicited_node(addr);
        let mut msg = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&addr.octets());
        self.stats.nd_tx_solicitations += 1;
        let src = Ipv6Addr::UNSPECIFIED;
        let sum = wire6::checksum(src, dst, ICMPV6, &msg);
        msg[2..4].copy_from_slice(&sum);
        self.send_ipv6(now, src, dst, ICMPV6, ND_HOP_LIMIT, &msg);
    }

    /// A Neighbour Advertisement for our `target` to `dst`, with our link-layer address and
    /// the override flag (RFC 4861 §7.2.4).
    fn send_neighbor_advertisement(
        &mut self,
        now: Instant,
        target: Ipv6Addr,
        dst: Ipv6Addr,
        solicited: bool,
    ) {
        let flags = NA_OVERRIDE | if solicited { NA_SOLICITED } else { 0 };
        debug_assert_eq!(flags & NA_ROUTER, 0, "a host is no router");
        let mut msg = vec![NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0];
        msg.extend_from_slice(&target.octets());
        msg.extend_from_slice(&[OPT_TARGET_LL, 1]);
        msg.extend_from_slice(&self.cfg.mac.0);
        self.stats.nd_tx_advertisements += 1;
        self.send_icmpv6(now, target, dst, msg, Some(ND_HOP_LIMIT));
    }
}

/// An IPv6 frame of `payload` (ICMPv6): room for the link header, then the packet.
fn ipv6_frame(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let header = etherparse::Ipv6Header {
        payload_length: payload.len() as u16,
        next_header: etherparse::IpNumber(ICMPV6),
        hop_limit,
        source: src.octets(),
        destination: dst.octets(),
        ..Default::default()
    };
    let mut frame = vec![0u8; crate::wire::ETHERNET_HEADER_LEN];
    frame.extend_from_slice(&header.to_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_layer_options_are_found_and_malformed_ones_refused() {
        let mac = [2, 0, 0, 0, 0, 9];
        let mut opts = vec![OPT_SOURCE_LL, 1];
        opts.extend_from_slice(&mac);
        assert_eq!(ll_option(&opts, OPT_SOURCE_LL), Ok(Some(MacAddr(mac))));
        assert_eq!(ll_option(&opts, OPT_TARGET_LL), Ok(None));
        assert_eq!(ll_option(&[], OPT_SOURCE_LL), Ok(None));
        assert_eq!(ll_option(&[OPT_SOURCE_LL, 0, 0, 0, 0, 0, 0, 0], 1), Err(()));
        assert_eq!(ll_option(&[OPT_SOURCE_LL, 2, 0, 0, 0, 0, 0, 0], 1), Err(()));
        assert_eq!(ll_option(&[OPT_SOURCE_LL], 1), Err(()));
    }
}
