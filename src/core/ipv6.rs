//! IPv6 (RFC 8200) as a host: the interface's addresses and their Duplicate Address Detection
//! (RFC 4862 §5.4), header validation, the walk through extension headers, and sending with
//! neighbour resolution. ICMPv6 and Neighbour Discovery messages are in `icmpv6.rs`, the
//! neighbour cache in `ndp.rs`. UDP and TCP run over both families (`udp.rs`, `tcp/`).

use super::ndp::{NeighborCache, Resolve};
use super::{Interface, TxFrame};
use crate::config::Ipv6Config;
use crate::ip;
use crate::tcp::output::TxPayload;
use crate::time::Instant;
use crate::wire::ipv6::{self as wire6, ALL_NODES};
use crate::wire::{MacAddr, Medium, ETHERNET_HEADER_LEN, FRAME_HEADROOM_V6};
use etherparse::{EtherType, IpNumber, Ipv6Header, Ipv6HeaderSlice};
use std::net::Ipv6Addr;
use std::time::Duration;

/// The IPv6 header's length (RFC 8200 §3).
pub const HEADER_LEN: usize = Ipv6Header::LEN;
/// The minimum link MTU every IPv6 link has (RFC 8200 §5): ICMPv6 errors fit in it.
pub const MIN_MTU: usize = 1280;
/// `RetransTimer` (RFC 4861 §10): the spacing of DAD's solicitations.
const RETRANS_TIMER: Duration = Duration::from_secs(1);

/// Next-header values walked as extension headers (RFC 8200 §4).
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const NO_NEXT: u8 = 59;
const DEST_OPTIONS: u8 = 60;
/// Where the Next Header field sits in the IPv6 header.
const NEXT_HEADER_FIELD: usize = 6;
/// Where the Payload Length field sits in the IPv6 header.
const PAYLOAD_LENGTH_FIELD: usize = 4;
/// The Fragment header's length (RFC 8200 §4.5).
const FRAGMENT_HEADER_LEN: usize = 8;

/// Options Pad1 and PadN (RFC 8200 §4.2).
const OPT_PAD1: u8 = 0;
const OPT_PADN: u8 = 1;

/// An address's life (RFC 4862 §5.4): tentative until DAD finds no other user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrState {
    /// Under DAD; it receives only Neighbour Discovery.
    Tentative {
        /// DAD's solicitations sent so far.
        sent: u8,
    },
    /// In use.
    Preferred,
    /// Another node has it: never used (RFC 4862 §5.4.5).
    Duplicate,
}

/// One of the interface's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr6 {
    /// The address.
    pub addr: Ipv6Addr,
    /// Its prefix length: the addresses on its link.
    pub prefix_len: u8,
    /// Where it is in DAD.
    pub state: AddrState,
    /// When it stops being valid (an autoconfigured address's lifetime); `None`: never.
    pub valid_until: Option<Instant>,
}

/// The interface's IPv6 state.
pub struct Ipv6State {
    pub(super) cfg: Ipv6Config,
    pub(super) addrs: Vec<Addr6>,
    pub(super) nd: NeighborCache,
    /// When DAD sends its next solicitations or ends.
    pub(super) dad_next: Option<Instant>,
    /// Router discovery and the prefixes learned from it (`autoconf.rs`).
    pub(super) auto: super::autoconf::Autoconf,
    /// Path MTUs learned from Packet Too Big (RFC 8201), each until it expires.
    pmtu: std::collections::HashMap<Ipv6Addr, (usize, Instant)>,
}

/// How long a path MTU learned from Packet Too Big holds before the link MTU is tried again
/// (RFC 8201 §4: at least 5 minutes; Linux `mtu_expires`, 10).
const PMTU_EXPIRES: Duration = Duration::from_secs(600);

/// What an error about a received packet says: ICMPv6 type, code and parameter (RFC 4443).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Icmp6Error {
    pub icmp_type: u8,
    pub code: u8,
    pub param: u32,
    /// May be sent about a packet to a multicast address (RFC 4443 §2.4 (e.3)).
    pub to_multicast: bool,
}

/// ICMPv6 types of the errors we send (RFC 4443).
pub(super) const TYPE_DEST_UNREACHABLE: u8 = 1;
/// Destination Unreachable's codes we send (RFC 4443 §3.1).
pub(super) const CODE_ADDRESS_UNREACHABLE: u8 = 3;
pub(super) const CODE_PORT_UNREACHABLE: u8 = 4;
pub(super) const TYPE_PARAM_PROBLEM: u8 = 4;

fn param_problem(code: u8, pointer: usize, to_multicast: bool) -> Icmp6Error {
    Icmp6Error {
        icmp_type: TYPE_PARAM_PROBLEM,
        code,
        param: pointer as u32,
        to_multicast,
    }
}

impl Ipv6State {
    /// The addresses of `cfg`, plus the link-local one of `mac` on Ethernet; tentative while
    /// DAD is to run, else in use at once. DAD starts at `now`.
    pub fn new(cfg: Ipv6Config, mac: MacAddr, medium: Medium, now: Instant) -> Self {
        let dad = cfg.dad_transmits > 0 && medium == Medium::Ethernet;
        let state = if dad {
            AddrState::Tentative { sent: 0 }
        } else {
            AddrState::Preferred
        };
        let mut addrs = Vec::new();
        if cfg.link_local && medium == Medium::Ethernet {
            addrs.push(Addr6 {
                addr: wire6::link_local(mac),
                prefix_len: 64,
                state,
                valid_until: None,
            });
        }
        for &(addr, prefix_len) in &cfg.addrs {
            if !addrs.iter().any(|a| a.addr == addr) {
                addrs.push(Addr6 {
                    addr,
                    prefix_len: prefix_len.min(128),
                    state,
                    valid_until: None,
                });
            }
        }
        let nd = NeighborCache::new(cfg.max_neighbors, cfg.max_queued_bytes);
        let mut auto = super::autoconf::Autoconf::new(&cfg, medium, now);
        if addrs.iter().any(is_usable_link_local) {
            auto.start(now);
        }
        Ipv6State {
            cfg,
            addrs,
            nd,
            dad_next: dad.then_some(now),
            auto,
            pmtu: std::collections::HashMap::new(),
        }
    }

    /// The interface's addresses and their states.
    pub fn addrs(&self) -> &[Addr6] {
        &self.addrs
    }

    fn addr(&self, ip: Ipv6Addr) -> Option<&Addr6> {
        self.addrs.iter().find(|a| a.addr == ip)
    }

    /// Neighbour `ip`'s link address (if known) and reachability state, if it has an entry.
    pub fn neighbor(&self, ip: Ipv6Addr) -> Option<(Option<MacAddr>, super::ndp::NudState)> {
        Some((self.nd.mac(ip), self.nd.state(ip)?))
    }

    /// Whether `ip` is one of our addresses, in whatever state (tentative, or found
    /// duplicate, included).
    pub fn holds(&self, ip: Ipv6Addr) -> bool {
        self.addr(ip).is_some()
    }

    /// Whether `ip` is one of our addresses in use.
    pub fn is_ours(&self, ip: Ipv6Addr) -> bool {
        self.addr(ip)
            .is_some_and(|a| a.state == AddrState::Preferred)
    }

    /// Whether we listen to multicast group `group`: all-nodes, and the solicited-node group
    /// of each address not found duplicate (tentative ones too, for DAD).
    pub fn is_member(&self, group: Ipv6Addr) -> bool {
        group == ALL_NODES
            || self
                .addrs
                .iter()
                .any(|a| a.state != AddrState::Duplicate && wire6::solicited_node(a.addr) == group)
    }

    /// The groups we report to MLD: our addresses' solicited-node groups (all-nodes is never
    /// reported, RFC 3810 §6), each once.
    pub fn reported_groups(&self) -> Vec<Ipv6Addr> {
        let mut groups: Vec<Ipv6Addr> = self
            .addrs
            .iter()
            .filter(|a| a.state != AddrState::Duplicate)
            .map(|a| wire6::solicited_node(a.addr))
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Whether a frame to Ethernet address `mac` (a `33:33:…` group) may be for us.
    pub fn accepts_mac(&self, mac: MacAddr) -> bool {
        mac == wire6::multicast_mac(ALL_NODES)
            || self.addrs.iter().any(|a| {
                a.state != AddrState::Duplicate
                    && wire6::multicast_mac(wire6::solicited_node(a.addr)) == mac
            })
    }

    /// Our source address for a packet to `dst` (RFC 6724, its first rules): a link-local
    /// one for a link-local or multicast destination, else one on `dst`'s prefix, else any
    /// global one in use.
    pub fn source_for(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let usable = || {
            self.addrs
                .iter()
                .filter(|a| a.state == AddrState::Preferred)
        };
        let link_scope = wire6::is_link_local(dst) || dst.is_multicast();
        if link_scope {
            if let Some(a) = usable().find(|a| wire6::is_link_local(a.addr)) {
                return Some(a.addr);
            }
        }
        usable()
            .find(|a| {
                !wire6::is_link_local(a.addr) && wire6::same_prefix(a.addr, dst, a.prefix_len)
            })
            .or_else(|| usable().find(|a| !wire6::is_link_local(a.addr)))
            .or_else(|| usable().next())
            .map(|a| a.addr)
    }

    /// When [`Interface::poll`] has IPv6 work.
    pub fn poll_at(&self) -> Option<Instant> {
        let expiry = self.addrs.iter().filter_map(|a| a.valid_until).min();
        crate::time::earliest(
            crate::time::earliest(self.dad_next, self.nd.poll_at()),
            crate::time::earliest(self.auto.poll_at(), expiry),
        )
    }

    /// Whether `dst` is on the link: link-local, or inside a configured address's prefix or an
    /// on-link prefix a router advertised (RFC 4861 §5.2).
    pub fn is_on_link(&self, dst: Ipv6Addr) -> bool {
        wire6::is_link_local(dst)
            || self
                .addrs
                .iter()
                .any(|a| a.valid_until.is_none() && wire6::same_prefix(a.addr, dst, a.prefix_len))
            || self.auto.is_on_link(dst)
    }

    /// The next hop towards `dst`: itself on the link, else a default router.
    pub fn next_hop(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        if self.is_on_link(dst) {
            Some(dst)
        } else {
            self.auto.default_router()
        }
    }

    /// The link MTU: the device's, or less if a router advertised less (RFC 4861 §6.3.4).
    pub fn link_mtu(&self, device_mtu: usize) -> usize {
        self.auto
            .mtu()
            .map_or(device_mtu, |m| m.min(device_mtu))
            .max(MIN_MTU)
    }

    /// The path MTU towards `dst` at `now`: what a Packet Too Big taught, until it expires,
    /// else the link MTU.
    pub fn path_mtu(&self, now: Instant, dst: Ipv6Addr, device_mtu: usize) -> usize {
        let link = self.link_mtu(device_mtu);
        match self.pmtu.get(&dst) {
            Some(&(mtu, until)) if until > now => mtu.min(link),
            _ => link,
        }
    }

    /// A Packet Too Big for a packet we sent to `dst` says `mtu`: the path MTU only ever
    /// shrinks, never below the minimum; one reporting less than the minimum is discarded
    /// (RFC 8201 §4). If it changed, until when it is believed.
    pub(super) fn learn_pmtu(
        &mut self,
        now: Instant,
        dst: Ipv6Addr,
        mtu: u32,
        device_mtu: usize,
    ) -> Option<Instant> {
        let mtu = mtu as usize;
        if mtu < MIN_MTU || mtu >= self.path_mtu(now, dst, device_mtu) {
            return None;
        }
        let until = now + PMTU_EXPIRES;
        // At most `ip::MAX_PATH_MTUS` destinations; past it the one expiring first goes.
        ip::insert_expiring(&mut self.pmtu, now, ip::MAX_PATH_MTUS, dst, mtu, until);
        Some(until)
    }
}

/// The upper-layer protocol of an IPv6 packet (header included) and where its header starts,
/// past any extension headers; `None` for a truncated chain or a non-first fragment.
pub(super) fn upper_layer(packet: &[u8]) -> Option<(u8, usize)> {
    let mut next = *packet.get(NEXT_HEADER_FIELD)?;
    let mut at = HEADER_LEN;
    loop {
        match next {
            HOP_BY_HOP | ROUTING | DEST_OPTIONS => {
                let len = (usize::from(*packet.get(at + 1)?) + 1) * 8;
                next = *packet.get(at)?;
                at += len;
            }
            FRAGMENT => {
                let offset_flags = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
                if offset_flags >> 3 != 0 {
                    return None;
                }
                next = *packet.get(at)?;
                at += FRAGMENT_HEADER_LEN;
            }
            proto => return Some((proto, at)),
        }
    }
}

/// The first fragment's headers without their Fragment header: the unfragmentable part,
/// whose last Next Header field now names the fragmentable part's first header (RFC 8200
/// §4.5).
fn without_fragment_header(mut headers: Vec<u8>) -> Option<Vec<u8>> {
    let mut field = NEXT_HEADER_FIELD;
    let mut at = HEADER_LEN;
    loop {
        match *headers.get(field)? {
            FRAGMENT => break,
            HOP_BY_HOP | ROUTING | DEST_OPTIONS => {
                field = at;
                at += (usize::from(*headers.get(at + 1)?) + 1) * 8;
            }
            _ => return None,
        }
    }
    let next = *headers.get(at)?;
    headers[field] = next;
    headers.drain(at..at + FRAGMENT_HEADER_LEN);
    Some(headers)
}

/// A link-local address in use: what a Router Solicitation leaves from (RFC 4861 §6.3.7).
fn is_usable_link_local(a: &Addr6) -> bool {
    a.state == AddrState::Preferred && wire6::is_link_local(a.addr)
}

/// Why an extension header walk stopped without delivering.
enum Walk {
    /// Delivered to an upper layer, or dropped silently (already counted).
    Done,
    /// Dropped with this error to the source.
    Error(Icmp6Error),
}

impl Interface {
    /// The interface's IPv6 state, if IPv6 is on.
    pub fn ipv6(&self) -> Option<&Ipv6State> {
        self.ip6.as_ref()
    }

    /// Takes one IPv6 packet (RFC 8200 §3): header checks, destination, extension headers.
    /// `csum_verified`: the device vouches for the transport checksum (see
    /// [`super::RxChecksums`]).
    pub(super) fn ipv6_input(
        &mut self,
        now: Instant,
        packet: &[u8],
        link_multicast: bool,
        csum_verified: bool,
    ) {
        self.stats.ip6_rx_packets += 1;
        let Some(ip6) = self.ip6.as_ref() else {
            return;
        };
        let Ok(header) = Ipv6HeaderSlice::from_slice(packet) else {
            self.stats.ip6_rx_malformed += 1;
            return;
        };
        let total = HEADER_LEN + usize::from(header.payload_length());
        // A zero payload length is a jumbogram's (RFC 2675), which no link here carries.
        if header.payload_length() == 0 && header.next_header().0 != NO_NEXT || total > packet.len()
        {
            self.stats.ip6_rx_malformed += 1;
            return;
        }
        // Ethernet padding goes.
        let packet = &packet[..total];
        let (src, dst) = (header.source_addr(), header.destination_addr());
        if src.is_multicast() {
            self.stats.ip6_rx_bad_source += 1;
            return;
        }
        let multicast = dst.is_multicast();
        // A tentative address takes Neighbour Discovery only, which arrives at its
        // solicited-node group or is checked there.
        let for_us = if multicast {
            ip6.is_member(dst)
        } else {
            ip6.addr(dst)
                .is_some_and(|a| a.state != AddrState::Duplicate)
        };
        // Catch-all interception takes a packet to any host's address that is none of ours,
        // sent to it alone (not in a link-layer multicast) from one host's address that is
        // not ours either (as IPv4's martian check).
        let intercepted = !for_us
            && !link_multicast
            && self.intercepts6(dst)
            && super::intercept::is_unicast6(src)
            && !ip6.holds(src);
        if !(for_us || intercepted)
            || (for_us
                && !multicast
                && !ip6.is_ours(dst)
                && header.next_header() != IpNumber::IPV6_ICMP)
        {
            self.stats.ip6_rx_not_for_us += 1;
            return;
        }
        let rx = Rx6 {
            src,
            dst,
            hop_limit: header.hop_limit(),
            packet,
            multicast: multicast || link_multicast,
            csum_verified,
        };
        if let Walk::Error(e) = self.ipv6_walk(now, &rx, header.next_header().0) {
            self.icmp6_error(now, &rx, e);
        }
    }

    /// Walks the extension headers from `next` and hands the upper-layer payload on.
    fn ipv6_walk(&mut self, now: Instant, rx: &Rx6<'_>, mut next: u8) -> Walk {
        let packet = rx.packet;
        let mut off = HEADER_LEN;
        // Where the Next Header field that named the current header is, for the pointer of a
        // parameter problem about it.
        let mut named_at = NEXT_HEADER_FIELD;
        loop {
            match next {
                HOP_BY_HOP | DEST_OPTIONS | ROUTING | FRAGMENT => {
                    if next == HOP_BY_HOP && off != HEADER_LEN {
                        // Hop-by-Hop comes first or not at all (RFC 8200 §4.1).
                        self.stats.ip6_rx_bad_ext += 1;
                        return Walk::Error(param_problem(1, named_at, false));
                    }
                    let Some(&[nh, len_field]) = packet.get(off..off + 2) else {
                        self.stats.ip6_rx_bad_ext += 1;
                        return Walk::Done;
                    };
                    let len = if next == FRAGMENT {
                        8
                    } else {
                        (usize::from(len_field) + 1) * 8
                    };
                    let Some(ext) = packet.get(off..off + len) else {
                        self.stats.ip6_rx_bad_ext += 1;
                        return Walk::Done;
                    };
                    match next {
                        HOP_BY_HOP | DEST_OPTIONS => {
                            if let Some(e) = self.ipv6_options(rx, &ext[2..], off + 2) {
                                return e;
                            }
                        }
                        ROUTING => {
                            // Segments left: a host is never an intermediate hop, so a header
                            // with segments to go (type 0 included, RFC 5095) is refused,
                            // pointing at its type; one with none is skipped (RFC 8200 §4.4).
                            if ext[3] != 0 {
                                self.stats.ip6_rx_routing += 1;
                                return Walk::Error(param_problem(0, off + 2, false));
                            }
                        }
                        _ => {
                            // An atomic fragment (offset 0, no more) is the whole packet
                            // (RFC 6946 §4); others are reassembled.
                            let offset_flags = u16::from_be_bytes([ext[2], ext[3]]);
                            if offset_flags & 0xfff9 != 0 {
                                return self.ipv6_fragment(now, rx, off);
                            }
                        }
                    }
                    named_at = off;
                    next = nh;
                    off += len;
                }
                NO_NEXT => return Walk::Done,
                58 => {
                    self.stats.ip6_rx_delivered += 1;
                    self.icmpv6_input(now, rx, off);
                    return Walk::Done;
                }
                17 | 6 if rx.dst.is_multicast() => {
                    // No UDP group membership here, and TCP never to a group.
                    self.stats.ip6_rx_multicast_transport += 1;
                    return Walk::Done;
                }
                17 => {
                    self.stats.ip6_rx_delivered += 1;
                    if !self.udp6_input(now, rx, &packet[off..]) {
                        return Walk::Error(Icmp6Error {
                            icmp_type: TYPE_DEST_UNREACHABLE,
                            code: CODE_PORT_UNREACHABLE,
                            param: 0,
                            to_multicast: false,
                        });
                    }
                    return Walk::Done;
                }
                6 => {
                    self.stats.ip6_rx_delivered += 1;
                    self.tcp6_input(now, rx, &packet[off..]);
                    return Walk::Done;
                }
                _ => {
                    self.stats.ip6_rx_unknown_next += 1;
                    return Walk::Error(param_problem(1, named_at, false));
                }
            }
        }
    }

    /// A fragment (its Fragment header at `off`) into reassembly,
    /// and the packet it completes, if any, through the walk again (RFC 8200 §4.5).
    fn ipv6_fragment(&mut self, now: Instant, rx: &Rx6<'_>, off: usize) -> Walk {
        let packet = rx.packet;
        let offset_flags = u16::from_be_bytes([packet[off + 2], packet[off + 3]]);
        let more = offset_flags & 1 != 0;
        let offset = usize::from(offset_flags >> 3) * 8;
        let data = &packet[off + FRAGMENT_HEADER_LEN..];
        self.stats.ip6_rx_fragments += 1;
        // A fragment but the last must be a multiple of 8 bytes long: pointing at the payload
        // length. One reaching past 65535 bytes: pointing at its offset.
        if more && data.len() % 8 != 0 {
            self.stats.ip6_rx_bad_fragments += 1;
            return Walk::Error(param_problem(0, PAYLOAD_LENGTH_FIELD, false));
        }
        if offset + data.len() + (off - HEADER_LEN) > usize::from(u16::MAX) {
            self.stats.ip6_rx_bad_fragments += 1;
            return Walk::Error(param_problem(0, off + 2, false));
        }
        // The headers as received, the Fragment header included: the reassembled packet
        // drops it, and an error about a timed-out packet quotes its first fragment whole.
        let header = &packet[..off + FRAGMENT_HEADER_LEN];
        let id = u32::from_be_bytes([
            packet[off + 4],
            packet[off + 5],
            packet[off + 6],
            packet[off + 7],
        ]);
        let frag = super::reassembly::Fragment {
            key: super::reassembly::FragKey {
                src: rx.src.into(),
                dst: rx.dst.into(),
                proto: 0,
                id,
            },
            header,
            offset,
            more,
            payload: data,
        };
        let Some(whole) = self.reasm.insert(now, frag, &mut self.stats) else {
            return Walk::Done;
        };
        let Some(mut assembled) = without_fragment_header(whole.header) else {
            self.stats.ip6_rx_bad_fragments += 1;
            return Walk::Done;
        };
        let payload_len = assembled.len() - HEADER_LEN + whole.payload.len();
        let Ok(payload_len) = u16::try_from(payload_len) else {
            self.stats.ip6_rx_bad_fragments += 1;
            return Walk::Done;
        };
        assembled[PAYLOAD_LENGTH_FIELD..PAYLOAD_LENGTH_FIELD + 2]
            .copy_from_slice(&payload_len.to_be_bytes());
        assembled.extend_from_slice(&whole.payload);
        let first = assembled[NEXT_HEADER_FIELD];
        let rx = Rx6 {
            packet: &assembled,
            csum_verified: false,
            ..*rx
        };
        if let Walk::Error(e) = self.ipv6_walk(now, &rx, first) {
            self.icmp6_error(now, &rx, e);
        }
        Walk::Done
    }

    /// Processes Hop-by-Hop or Destination options (RFC 8200 §4.2): an option we do not know
    /// is skipped, or drops the packet (with a parameter problem) as its type's two high bits
    /// say. `base` is the options' offset in the packet.
    fn ipv6_options(&mut self, rx: &Rx6<'_>, opts: &[u8], base: usize) -> Option<Walk> {
        let mut i = 0;
        while i < opts.len() {
            let kind = opts[i];
            if kind == OPT_PAD1 {
                i += 1;
                continue;
            }
            let Some(&len) = opts.get(i + 1) else {
                self.stats.ip6_rx_bad_ext += 1;
                return Some(Walk::Done);
            };
            let end = i + 2 + usize::from(len);
            if end > opts.len() {
                self.stats.ip6_rx_bad_ext += 1;
                return Some(Walk::Done);
            }
            if kind != OPT_PADN {
                match kind >> 6 {
                    0 => {}
                    1 => {
                        self.stats.ip6_rx_bad_option += 1;
                        return Some(Walk::Done);
                    }
                    action => {
                        self.stats.ip6_rx_bad_option += 1;
                        if action == 3 && rx.multicast {
                            return Some(Walk::Done);
                        }
                        return Some(Walk::Error(param_problem(2, base + i, true)));
                    }
                }
            }
            i = end;
        }
        None
    }

    /// Sends an IPv6 packet: the link address of a multicast group is computed, a unicast
    /// neighbour's is resolved (the packet waits meanwhile). A packet over the link MTU is
    /// fragmented here, at its source (RFC 8200 §4.5), under one random identification
    /// (RFC 7739).
    pub(super) fn send_ipv6(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        hop_limit: u8,
        payload: &[u8],
    ) {
        let header = Ipv6Header {
            next_header: IpNumber(next_header),
            hop_limit,
            source: src.octets(),
            destination: dst.octets(),
            ..Default::default()
        };
        self.send_ipv6_packet(now, header, payload);
    }

    /// [`Interface::send_ipv6`] with the header's other fields (traffic class) given: its
    /// payload length is set here.
    fn send_ipv6_packet(&mut self, now: Instant, mut header: Ipv6Header, payload: &[u8]) {
        let Ok(payload_length) = u16::try_from(payload.len()) else {
            return;
        };
        header.payload_length = payload_length;
        let next_header = header.next_header.0;
        let dst = Ipv6Addr::from(header.destination);
        let mtu = self
            .ip6
            .as_ref()
            .map_or(self.cfg.mtu, |s| s.path_mtu(now, dst, self.cfg.mtu));
        if HEADER_LEN + payload.len() <= mtu {
            let mut frame = Vec::with_capacity(ETHERNET_HEADER_LEN + HEADER_LEN + payload.len());
            frame.resize(ETHERNET_HEADER_LEN, 0);
            frame.extend_from_slice(&header.to_bytes());
            frame.extend_from_slice(payload);
            return self.route_ipv6(now, dst, TxFrame::whole(frame));
        }
        let id: u32 = rand::Rng::random(&mut self.rng);
        let chunk = (mtu - HEADER_LEN - FRAGMENT_HEADER_LEN) & !7;
        header.next_header = IpNumber(FRAGMENT);
        self.stats.ip6_frag_datagrams += 1;
        for (k, piece) in payload.chunks(chunk).enumerate() {
            let offset = k * chunk;
            let more = offset + piece.len() < payload.len();
            header.payload_length = (FRAGMENT_HEADER_LEN + piece.len()) as u16;
            let offset_flags = ((offset / 8) as u16) << 3 | u16::from(more);
            let mut frame = Vec::with_capacity(
                ETHERNET_HEADER_LEN + HEADER_LEN + FRAGMENT_HEADER_LEN + piece.len(),
            );
            frame.resize(ETHERNET_HEADER_LEN, 0);
            frame.extend_from_slice(&header.to_bytes());
            frame.extend_from_slice(&[next_header, 0]);
            frame.extend_from_slice(&offset_flags.to_be_bytes());
            frame.extend_from_slice(&id.to_be_bytes());
            frame.extend_from_slice(piece);
            self.stats.ip6_frag_created += 1;
            self.route_ipv6(now, dst, TxFrame::whole(frame));
        }
    }

    /// Sends a transport segment built behind [`crate::wire::FRAME_HEADROOM_V6`] bytes of
    /// `frame`: the IPv6 header is written in place, so the buffer becomes the frame without
    /// a copy. A TCP super-segment (`tso_mss`) goes whole, for the device to split; another
    /// over the path MTU is fragmented (a copy, and a rare one: TCP keeps to the MSS). The
    /// header comes without its payload length, which is set here.
    pub(super) fn send_ipv6_in_place(
        &mut self,
        now: Instant,
        mut header: Ipv6Header,
        frame: Vec<u8>,
        tso_mss: Option<u16>,
        payload: Option<TxPayload>,
    ) {
        let mut frame = TxFrame {
            bytes: frame,
            tso_mss,
            payload,
        };
        // Only super-segments leave their data in the send buffer; anything else is whole.
        if tso_mss.is_none() && !frame.materialize() {
            self.stats.tcp_out_stale += 1;
            return;
        }
        let tail = frame.payload.as_ref().map_or(0, |p| p.len());
        let payload_len = frame.bytes.len().saturating_sub(FRAME_HEADROOM_V6) + tail;
        let dst = Ipv6Addr::from(header.destination);
        let mtu = self
            .ip6
            .as_ref()
            .map_or(self.cfg.mtu, |s| s.path_mtu(now, dst, self.cfg.mtu));
        if tso_mss.is_none() && HEADER_LEN + payload_len > mtu {
            let payload = frame.bytes.split_off(FRAME_HEADROOM_V6);
            return self.send_ipv6_packet(now, header, &payload);
        }
        header.payload_length = payload_len as u16;
        frame.bytes[ETHERNET_HEADER_LEN..FRAME_HEADROOM_V6].copy_from_slice(&header.to_bytes());
        self.route_ipv6(now, dst, frame);
    }

    /// Puts one IPv6 frame (link headroom, then the packet) on the link: to a group's
    /// computed address, or to a neighbour's, resolved first (the frame waits meanwhile).
    fn route_ipv6(&mut self, now: Instant, dst: Ipv6Addr, frame: TxFrame) {
        if self.cfg.medium == Medium::Ip || dst.is_multicast() {
            // No neighbour to resolve: a group's address is computed, a TUN has none.
            return self.transmit_ipv6(wire6::multicast_mac(dst), frame);
        }
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        let Some(hop) = ip6.next_hop(dst) else {
            self.stats.ip6_tx_no_route += 1;
            return;
        };
        match ip6.nd.resolve(now, hop, frame) {
            Resolve::Send(mac, frame) => self.transmit_ipv6(mac, frame),
            Resolve::Queued {
                solicit,
                overflow,
                stale,
            } => {
                if stale {
                    self.stats.tcp_out_stale += 1;
                }
                if overflow {
                    self.stats.nd_queue_overflow += 1;
                }
                if solicit {
                    self.send_neighbor_solicitation(now, hop, None);
                }
            }
        }
    }

    /// Writes the Ethernet header of an IPv6 frame (its first bytes) for `mac` and queues it.
    pub(super) fn transmit_ipv6(&mut self, mac: MacAddr, mut frame: TxFrame) {
        if frame.bytes.len() < ETHERNET_HEADER_LEN {
            return;
        }
        let eth = etherparse::Ethernet2Header {
            source: self.cfg.mac.0,
            destination: mac.0,
            ether_type: EtherType::IPV6,
        };
        frame.bytes[..ETHERNET_HEADER_LEN].copy_from_slice(&eth.to_bytes());
        // A super-segment or super-datagram counts as the packets it becomes, as over IPv4.
        let pieces = frame.tso_mss.map_or(1, |mss| {
            let len = frame.bytes.len() + frame.payload.as_ref().map_or(0, |p| p.len());
            crate::wire::gso::header_offsets(&frame.bytes, len).map_or(1, |(_, at, end)| {
                (end - at).div_ceil(usize::from(mss).max(1)).max(1) as u64
            })
        });
        self.stats.ip6_tx_packets += pieces;
        self.stats.eth_tx_frames += pieces - 1;
        self.queue_frame(frame);
    }

    /// Runs DAD's and the neighbour cache's timers.
    pub(super) fn ipv6_poll(&mut self, now: Instant) {
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        let nd = ip6.nd.poll(now);
        let mut probes = Vec::new();
        let mut joined = Vec::new();
        let mut addrs_changed = false;
        if ip6.dad_next.is_some_and(|t| t <= now) {
            let transmits = ip6.cfg.dad_transmits;
            let mut pending = false;
            for a in ip6.addrs.iter_mut() {
                if let AddrState::Tentative { sent } = a.state {
                    if sent == 0 {
                        // Its solicited-node group is joined, and reported, before DAD's
                        // first probe (RFC 4862 §5.4.2).
                        joined.push(wire6::solicited_node(a.addr));
                    }
                    if sent < transmits {
                        a.state = AddrState::Tentative { sent: sent + 1 };
                        probes.push(a.addr);
                        pending = true;
                    } else {
                        a.state = AddrState::Preferred;
                        addrs_changed = true;
                        self.stats.ip6_addrs_preferred += 1;
                        log::info!("{}/{} in use (DAD passed)", a.addr, a.prefix_len);
                        if wire6::is_link_local(a.addr) {
                            ip6.auto.start(now);
                        }
                    }
                }
            }
            ip6.dad_next = pending.then(|| now + RETRANS_TIMER);
        }
        // Autoconfigured addresses past their valid lifetime go (RFC 4862 §5.5.4).
        let before = ip6.addrs.len();
        ip6.addrs.retain(|a| a.valid_until.is_none_or(|t| t > now));
        let expired = before - ip6.addrs.len();
        addrs_changed |= expired > 0;
        self.stats.ip6_addrs_expired += expired as u64;
        let solicit_router = ip6
            .auto
            .poll(now, ip6.addrs.iter().any(is_usable_link_local));
        for (_, frames) in &nd.failed {
            self.stats.nd_resolution_failures += 1;
            self.stats.arp_pending_dropped += frames.len() as u64;
            // What waited is undeliverable: a connected UDP socket hears it as host
            // unreachable (RFC 4861 §7.2.2; as for IPv4's ARP).
            for f in frames {
                self.udp6_undeliverable(&f.bytes);
            }
        }
        for (target, mac) in nd.solicit {
            self.send_neighbor_solicitation(now, target, mac);
        }
        if !joined.is_empty() {
            // (Addresses with the same low 24 bits share one group.)
            joined.sort();
            joined.dedup();
            self.send_mld_report(now, &joined, super::icmpv6::MLD_CHANGE_TO_EXCLUDE);
        }
        for addr in probes {
            self.send_dad_solicitation(now, addr);
        }
        if solicit_router {
            self.send_router_solicitation(now);
        }
        if addrs_changed {
            self.sync_tcp_addrs();
        }
    }

    /// A UDP frame that could not be sent: its connected socket hears `EHOSTUNREACH`.
    fn udp6_undeliverable(&mut self, frame: &[u8]) {
        let Some(packet) = frame.get(ETHERNET_HEADER_LEN..) else {
            return;
        };
        let Ok(ip) = Ipv6HeaderSlice::from_slice(packet) else {
            return;
        };
        let udp = &packet[HEADER_LEN..];
        if ip.next_header() != IpNumber::UDP || udp.len() < 4 {
            return;
        }
        let src_port = u16::from_be_bytes([udp[0], udp[1]]);
        let dst_port = u16::from_be_bytes([udp[2], udp[3]]);
        let remote = std::net::SocketAddrV6::new(ip.destination_addr(), dst_port, 0, 0);
        self.udp_error(src_port, remote.into(), libc::EHOSTUNREACH);
    }

    /// The hop limit of the packets we send (the configured one).
    pub(super) fn hop_limit6(&self) -> u8 {
        self.ip6
            .as_ref()
            .map_or(Ipv6Config::default().hop_limit, |s| s.cfg.hop_limit)
    }

    /// Tells TCP which IPv6 addresses are in use now.
    pub(super) fn sync_tcp_addrs(&mut self) {
        let addrs = self.ip6.as_ref().map_or_else(Vec::new, |s| {
            s.addrs
                .iter()
                .filter(|a| a.state == AddrState::Preferred)
                .map(|a| a.addr)
                .collect()
        });
        self.tcp.set_ipv6_addrs(addrs);
    }

    /// DAD found `addr` in use by another node: it is never used (RFC 4862 §5.4.5).
    pub(super) fn ipv6_duplicate(&mut self, addr: Ipv6Addr) {
        let Some(ip6) = self.ip6.as_mut() else {
            return;
        };
        if let Some(a) = ip6.addrs.iter_mut().find(|a| a.addr == addr) {
            if matches!(a.state, AddrState::Tentative { .. }) {
                a.state = AddrState::Duplicate;
                self.stats.ip6_dad_duplicates += 1;
                log::warn!("{addr}: duplicate address detected, not used");
            }
        }
    }
}

/// A received IPv6 packet for us, its extension headers still to walk.
#[derive(Clone, Copy)]
pub(super) struct Rx6<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// The whole packet, header included (what an ICMPv6 error quotes).
    pub packet: &'a [u8],
    /// Sent to a multicast group (at the IP or the link layer): errors only where RFC 4443
    /// §2.4 (e) allows them.
    pub multicast: bool,
    /// The device vouched for the upper-layer checksum (kernel memory: left partial, or
    /// verified already), which is then not checked, as in Linux.
    pub csum_verified: bool,
}
