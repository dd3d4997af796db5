//! IPv4 input validation and output with fragmentation (RFC 791, RFC 1122 §3.2).

use super::{ethernet, Interface, TxFrame};
use crate::stats::Counters;
use crate::tcp::output::TxPayload;
use crate::time::Instant;
use crate::wire::{checksum_ok, MacAddr, Medium, FRAME_HEADROOM};
use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
use etherparse::{
    EtherType, Ethernet2Header, IpDscp, IpEcn, IpFragOffset, IpNumber, Ipv4Header, Ipv4HeaderSlice,
};
use std::io;
use std::net::Ipv4Addr;

/// Path MTU discovery mode of a sender, as Linux's `IP_MTU_DISCOVER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pmtud {
    /// Never set DF; fragment as needed (Linux `IP_PMTUDISC_DONT`, used for ICMP replies).
    Dont,
    /// Set DF when the datagram fits the MTU, fragment otherwise (Linux's default for sockets).
    #[default]
    Want,
    /// Always set DF; a datagram over the MTU fails with `EMSGSIZE` (Linux `IP_PMTUDISC_DO`).
    Do,
}

/// A datagram to send: everything but the IP header, which is built at transmission.
pub struct Datagram {
    /// The stack's address, or for an intercepted flow the destination its client dialled.
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: IpNumber,
    pub pmtud: Pmtud,
    /// `headroom` bytes of room, then the transport header and data.
    pub payload: Vec<u8>,
    /// Unused bytes at the front of `payload`: 0, or [`FRAME_HEADROOM`], room for the frame's
    /// Ethernet and IP headers, written in place when the datagram leaves unfragmented.
    pub headroom: usize,
    /// A TCP super-segment: sent whole, never fragmented, for the device to split into pieces
    /// of this many payload bytes.
    pub tso_mss: Option<u16>,
    /// The socket's TTL (`IP_TTL`), or `None` for the stack's default.
    pub ttl: Option<u8>,
    /// The Diffserv field (DSCP, RFC 2474) the socket asked for (`IP_TOS`), 0 by default.
    pub dscp: u8,
    /// The ECN field (RFC 3168 §5): ECT(0) for an ECN-capable TCP's data, else 0.
    pub ecn: u8,
    /// A TCP super-segment's data, left in the send buffer: the transport bytes are
    /// `payload` (past the headroom) followed by these.
    pub tail: Option<TxPayload>,
}

impl Datagram {
    /// Memory charged while it waits for address resolution.
    pub fn size(&self) -> usize {
        self.transport_len() + Ipv4Header::MIN_LEN
    }

    /// The transport header and data, but for a [`Datagram::tail`].
    pub fn transport(&self) -> &[u8] {
        &self.payload[self.headroom.min(self.payload.len())..]
    }

    /// Bytes of transport header and data, a tail included.
    pub fn transport_len(&self) -> usize {
        self.transport().len() + self.tail.as_ref().map_or(0, |t| t.len())
    }

    /// Copies a tail into `payload`, for a path that needs the datagram whole; false if its
    /// bytes are no longer held (the datagram need not be sent).
    fn materialize(&mut self) -> bool {
        match self.tail.take() {
            Some(t) => t.gather_into(&mut self.payload),
            None => true,
        }
    }
}

/// A validated datagram addressed to us, ready for the transport layer.
pub struct IpRx<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: IpNumber,
    /// The IP header as received (of the first fragment, for a reassembled datagram).
    pub header: &'a [u8],
    pub payload: &'a [u8],
    /// Sent to a broadcast address, at the link or IP layer: never answered with ICMP errors.
    pub broadcast: bool,
    /// The device vouched for the transport checksum (never for a reassembled datagram).
    pub csum_verified: bool,
}

/// Largest UDP/ICMP payload that fits one datagram with a 20-byte header.
pub const MAX_DATAGRAM_PAYLOAD: usize = 65535 - Ipv4Header::MIN_LEN;

/// Header checks of RFC 1122 §3.2.1; on success the header and its payload (trimmed to the total
/// length, which drops Ethernet padding).
pub fn validate<'a>(
    packet: &'a [u8],
    stats: &mut Counters,
) -> Option<(Ipv4HeaderSlice<'a>, &'a [u8])> {
    let header = match Ipv4HeaderSlice::from_slice(packet) {
        Ok(h) => h,
        Err(HeaderSliceError::Len(_)) => {
            stats.ip_rx_truncated += 1;
            return None;
        }
        Err(HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. })) => {
            stats.ip_rx_bad_version += 1;
            return None;
        }
        Err(HeaderSliceError::Content(_)) => {
            stats.ip_rx_bad_ihl += 1;
            return None;
        }
    };
    let hlen = header.slice().len();
    let total = usize::from(header.total_len());
    if total < hlen || total > packet.len() {
        stats.ip_rx_bad_length += 1;
        return None;
    }
    if !checksum_ok(header.slice()) {
        stats.ip_rx_bad_checksum += 1;
        return None;
    }
    Some((header, &packet[hlen..total]))
}

/// A source address no host may use on a network (RFC 1122 §3.2.1.3): broadcast, multicast,
/// "this network" (0/8) and loopback (127/8), which Linux drops as martians too.
pub fn is_bad_source(addr: Ipv4Addr) -> bool {
    addr.is_broadcast() || addr.is_multicast() || addr.octets()[0] == 0 || addr.is_loopback()
}

impl Interface {
    pub(super) fn ipv4_input(
        &mut self,
        now: Instant,
        packet: &[u8],
        link_broadcast: bool,
        verified: super::ethernet::RxChecksums,
    ) {
        self.stats.ip_rx_packets += 1;
        let Some((header, payload)) = validate(packet, &mut self.stats) else {
            return;
        };
        let src = header.source_addr();
        let dst = header.destination_addr();
        // A datagram claiming our own or a broadcast source is a martian (RFC 1122 §3.2.1.3).
        if is_bad_source(src) || self.cfg.is_broadcast(src) || src == self.cfg.ip {
            self.stats.ip_rx_bad_source += 1;
            return;
        }
        let broadcast = self.cfg.is_broadcast(dst);
        if dst != self.cfg.ip && !broadcast {
            if self.intercept.is_none() {
                self.stats.ip_rx_not_for_us += 1;
                return;
            }
            // Catch-all: every host address is ours to answer; multicast is not a flow.
            if !super::intercept::is_unicast(dst) {
                self.stats.icpt_not_unicast += 1;
                return;
            }
        }
        let broadcast = broadcast || link_broadcast;
        if header.is_fragmenting_payload() {
            let frag = super::reassembly::Fragment {
                key: super::reassembly::FragKey {
                    src: src.into(),
                    dst: dst.into(),
                    proto: header.protocol().0,
                    id: header.identification().into(),
                },
                header: header.slice(),
                offset: usize::from(header.fragments_offset().byte_offset()),
                more: header.more_fragments(),
                payload,
            };
            if let Some(dg) = self.reasm.insert(now, frag, &mut self.stats) {
                let rx = IpRx {
                    src,
                    dst,
                    proto: header.protocol(),
                    header: &dg.header,
                    payload: &dg.payload,
                    broadcast,
                    csum_verified: false,
                };
                self.deliver(now, &rx);
            }
            return;
        }
        let rx = IpRx {
            src,
            dst,
            proto: header.protocol(),
            header: header.slice(),
            payload,
            broadcast,
            csum_verified: verified.transport,
        };
        self.deliver(now, &rx);
    }

    fn deliver(&mut self, now: Instant, rx: &IpRx<'_>) {
        self.stats.ip_rx_delivered += 1;
        match rx.proto {
            IpNumber::ICMP => self.icmp_input(now, rx),
            IpNumber::UDP => self.udp_input(now, rx),
            IpNumber::TCP => self.tcp_input(now, rx),
            _ => {
                self.stats.ip_rx_unknown_protocol += 1;
                self.icmp_send_unreachable(
                    now,
                    rx,
                    etherparse::icmpv4::DestUnreachableHeader::Protocol,
                );
            }
        }
    }

    /// The next hop for `dst` (RFC 1122 §3.3.1): itself on the subnet, else the gateway. On a
    /// bare-IP link (a TUN) every destination is reached through the peer at its other end.
    pub(super) fn route(&self, dst: Ipv4Addr) -> io::Result<Ipv4Addr> {
        if self.cfg.medium == Medium::Ip || self.cfg.is_on_link(dst) || self.cfg.is_broadcast(dst) {
            Ok(dst)
        } else if let Some(gw) = self.cfg.gateway {
            Ok(gw)
        } else {
            Err(io::Error::from_raw_os_error(libc::ENETUNREACH))
        }
    }

    /// Routes, resolves and transmits a datagram (queued until ARP resolves its next hop).
    pub(crate) fn send_datagram(&mut self, now: Instant, mut dg: Datagram) -> io::Result<()> {
        // A super-datagram's pieces were checked against the MTU by its sender.
        if dg.transport_len() > MAX_DATAGRAM_PAYLOAD
            || (dg.pmtud == Pmtud::Do && dg.tso_mss.is_none() && dg.size() > self.cfg.mtu)
        {
            self.stats.ip_tx_needs_frag_df += 1;
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let next_hop = match self.route(dg.dst) {
            Ok(hop) => hop,
            Err(e) => {
                self.stats.ip_tx_no_route += 1;
                return Err(e);
            }
        };
        if self.cfg.medium == Medium::Ip || self.cfg.is_broadcast(next_hop) {
            // No neighbour to resolve: the device leaves the Ethernet header out.
            self.transmit_datagram(MacAddr::BROADCAST, dg);
            return Ok(());
        }
        match self.arp.lookup(now, next_hop) {
            super::arp::Lookup::Found(mac) => self.transmit_datagram(mac, dg),
            super::arp::Lookup::FoundStale(mac) => {
                self.send_arp_request(next_hop, mac);
                self.transmit_datagram(mac, dg);
            }
            super::arp::Lookup::Missing => {
                // What waits for resolution is whole: the send buffer moves on meanwhile.
                if !dg.materialize() {
                    self.stats.tcp_out_stale += 1;
                    return Ok(());
                }
                if self.arp.enqueue(now, next_hop, dg, &mut self.stats) {
                    self.send_arp_request(next_hop, MacAddr::BROADCAST);
                }
            }
        }
        Ok(())
    }

    /// Builds the IP header(s) and queues the frame(s), fragmenting at the MTU (RFC 791 §3.2).
    pub(super) fn transmit_datagram(&mut self, dst_mac: MacAddr, mut dg: Datagram) {
        if let Some(mss) = dg.tso_mss {
            return self.transmit_super_segment(dst_mac, dg, mss);
        }
        // Only super-segments leave their data in the send buffer; anything else is whole.
        if !dg.materialize() {
            self.stats.tcp_out_stale += 1;
            return;
        }
        let payload = dg.transport();
        let id = self.next_ip_id;
        self.next_ip_id = self.next_ip_id.wrapping_add(1);
        let mut header = Ipv4Header {
            identification: id,
            dont_fragment: dg.pmtud != Pmtud::Dont,
            time_to_live: dg.ttl.unwrap_or(self.cfg.ttl),
            dscp: IpDscp::try_new(dg.dscp).unwrap_or_default(),
            ecn: IpEcn::try_new(dg.ecn).unwrap_or_default(),
            protocol: dg.proto,
            source: dg.src.octets(),
            destination: dg.dst.octets(),
            ..Default::default()
        };
        let max_chunk = (self.cfg.mtu - Ipv4Header::MIN_LEN) & !7;
        let fragmented = payload.len() > self.cfg.mtu - Ipv4Header::MIN_LEN;
        if !fragmented && dg.headroom == FRAME_HEADROOM {
            header.total_len = (Ipv4Header::MIN_LEN + payload.len()) as u16;
            header.header_checksum = header.calc_header_checksum();
            let frame = self.frame_in_place(dst_mac, &header, dg.payload);
            self.queue_frame(TxFrame::whole(frame));
            self.stats.ip_tx_packets += 1;
            return;
        }
        if fragmented {
            header.dont_fragment = false;
            self.stats.ip_frag_datagrams += 1;
        }
        let mut offset = 0;
        loop {
            let chunk_len = (payload.len() - offset).min(max_chunk);
            let chunk = &payload[offset..offset + chunk_len];
            header.total_len = (Ipv4Header::MIN_LEN + chunk_len) as u16;
            header.more_fragments = offset + chunk_len < payload.len();
            // `max_chunk` is a multiple of 8 and the payload is at most 65515 bytes, so the
            // offset in 8-byte units always fits the 13-bit field.
            header.fragment_offset = IpFragOffset::try_new((offset / 8) as u16).unwrap_or_default();
            header.header_checksum = header.calc_header_checksum();
            let mut frame = ethernet::frame(
                dst_mac,
                self.cfg.mac,
                EtherType::IPV4,
                Ipv4Header::MIN_LEN + chunk_len,
            );
            frame.extend_from_slice(&header.to_bytes());
            frame.extend_from_slice(chunk);
            self.queue_frame(TxFrame::whole(frame));
            self.stats.ip_tx_packets += 1;
            if fragmented {
                self.stats.ip_frag_created += 1;
            }
            offset += chunk_len;
            if offset >= payload.len() {
                break;
            }
        }
    }

    /// Writes the Ethernet and IP headers into the headroom of `buf` (see [`FRAME_HEADROOM`]).
    fn frame_in_place(&self, dst_mac: MacAddr, ip: &Ipv4Header, mut buf: Vec<u8>) -> Vec<u8> {
        let eth = Ethernet2Header {
            source: self.cfg.mac.0,
            destination: dst_mac.0,
            ether_type: EtherType::IPV4,
        };
        buf[..Ethernet2Header::LEN].copy_from_slice(&eth.to_bytes());
        buf[Ethernet2Header::LEN..FRAME_HEADROOM].copy_from_slice(&ip.to_bytes());
        buf
    }

    /// Queues a TCP super-segment (DF set) or a UDP super-datagram (DF as the socket's path
    /// MTU discovery says) as one frame. Its pieces take consecutive IP identifications, as
    /// the device's segmentation gives them, and count as the frames and packets they become.
    fn transmit_super_segment(&mut self, dst_mac: MacAddr, mut dg: Datagram, mss: u16) {
        if dg.headroom != FRAME_HEADROOM && !dg.materialize() {
            self.stats.tcp_out_stale += 1;
            return;
        }
        let payload = dg.transport();
        let total = dg.transport_len();
        let udp = dg.proto == IpNumber::UDP;
        let l4_header = if udp {
            etherparse::UdpHeader::LEN
        } else {
            etherparse::TcpHeaderSlice::from_slice(payload).map_or(0, |h| h.slice().len())
        };
        let data = total.saturating_sub(l4_header);
        let pieces = data.div_ceil(usize::from(mss).max(1)).max(1);
        let mut header = Ipv4Header {
            identification: self.next_ip_id,
            dont_fragment: !udp || dg.pmtud != Pmtud::Dont,
            time_to_live: dg.ttl.unwrap_or(self.cfg.ttl),
            dscp: IpDscp::try_new(dg.dscp).unwrap_or_default(),
            ecn: IpEcn::try_new(dg.ecn).unwrap_or_default(),
            protocol: dg.proto,
            source: dg.src.octets(),
            destination: dg.dst.octets(),
            total_len: (Ipv4Header::MIN_LEN + total) as u16,
            ..Default::default()
        };
        self.next_ip_id = self.next_ip_id.wrapping_add(pieces as u16);
        header.header_checksum = header.calc_header_checksum();
        let frame = if dg.headroom == FRAME_HEADROOM {
            self.frame_in_place(dst_mac, &header, dg.payload)
        } else {
            let mut frame = ethernet::frame(
                dst_mac,
                self.cfg.mac,
                EtherType::IPV4,
                Ipv4Header::MIN_LEN + payload.len(),
            );
            frame.extend_from_slice(&header.to_bytes());
            frame.extend_from_slice(payload);
            frame
        };
        self.stats.ip_tx_packets += pieces as u64;
        self.stats.eth_tx_frames += pieces as u64 - 1;
        self.queue_frame(TxFrame {
            bytes: frame,
            tso_mss: Some(mss),
            payload: dg.tail,
        });
    }
}
