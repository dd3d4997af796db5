//! The interface's side of TCP: checksums, handing segments to [`crate::tcp::Tcp`], and
//! putting its output on the IP layer. Socket calls reach TCP through one accessor,
//! [`Interface::with_tcp`], which sends their output once.

use super::ipv4::{Datagram, IpRx, Pmtud};
use super::Interface;
use crate::stats::Counters;
use crate::tcp::Tcp;
use crate::time::Instant;
use crate::wire::{transport_checksum_ok, FRAME_HEADROOM};
use etherparse::{IpNumber, Ipv6Header};
use std::net::IpAddr;

/// The Diffserv field's place in IPv6's traffic class: above the two ECN bits (RFC 2474 §3).
const DSCP_SHIFT: u8 = 2;

impl Interface {
    pub(super) fn tcp_input(&mut self, now: Instant, rx: &IpRx<'_>) {
        // TCP never talks to broadcast addresses (RFC 1122 §4.2.3.10).
        if rx.broadcast {
            self.stats.tcp_in_errs += 1;
            return;
        }
        if !rx.csum_verified
            && !transport_checksum_ok(
                rx.src.octets(),
                rx.dst.octets(),
                IpNumber::TCP.0,
                rx.payload,
            )
        {
            self.stats.tcp_in_csum_errs += 1;
            return;
        }
        let ecn = crate::wire::ecn::of_ipv4(rx.header);
        // A segment of another queue's connection goes on to it (IPv6 runs on one queue).
        let taken = self.tcp.input(
            now,
            rx.src.into(),
            rx.dst.into(),
            ecn,
            rx.payload,
            self.queue.pass_on,
            &mut self.stats,
        );
        if !taken {
            self.pass_on_datagram(rx);
        }
        self.flush_tcp(now);
    }

    /// A TCP segment over IPv6 to one of our addresses (the IP layer checked that), its
    /// checksum checked unless the device vouched for it.
    pub(super) fn tcp6_input(&mut self, now: Instant, rx: &super::ipv6::Rx6<'_>, segment: &[u8]) {
        if !rx.csum_verified
            && !crate::wire::ipv6::checksum_ok(rx.src, rx.dst, IpNumber::TCP.0, segment)
        {
            self.stats.tcp_in_csum_errs += 1;
            return;
        }
        let ecn = crate::wire::ecn::of_ipv6(rx.packet);
        // IPv6 runs on one queue: nothing to pass on.
        self.tcp.input(
            now,
            rx.src.into(),
            rx.dst.into(),
            ecn,
            segment,
            false,
            &mut self.stats,
        );
        self.flush_tcp(now);
    }

    /// Runs the output that segments received in this batch made due.
    pub(super) fn flush_deferred_tcp(&mut self) {
        let now = self.now;
        self.tcp.flush_deferred(now, &mut self.stats);
        self.flush_tcp(now);
    }

    /// Sends TCP's queued segments and passes on its events.
    pub(super) fn flush_tcp(&mut self, now: Instant) {
        // RFC 9293 MUST-20: the next hop of a connection that reached R1 retransmissions is
        // confirmed again, starting with the retransmission that reached it. (A TUN has no
        // link addresses: nothing to confirm.)
        for dst in self.tcp.take_negative_advice() {
            // (IPv6 neighbours are confirmed by NUD's own probes.)
            let IpAddr::V4(dst) = dst else {
                continue;
            };
            if let Ok(hop) = self.route(dst) {
                if self.arp.reconfirm(now, hop) {
                    self.stats.arp_negative_advice += 1;
                }
            }
        }
        let mut out = std::mem::take(&mut self.tcp_out);
        self.tcp.take_segments(&mut out);
        for seg in out.drain(..) {
            let (src, dst) = match (seg.src, seg.dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => (s, d),
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    // The socket's TTL is its hop limit over IPv6 (as for UDP), and its
                    // Diffserv field the traffic class's upper six bits (RFC 2474 §3).
                    let header = Ipv6Header {
                        traffic_class: seg.dscp << DSCP_SHIFT | seg.ecn,
                        next_header: IpNumber::TCP,
                        hop_limit: seg.ttl.unwrap_or_else(|| self.hop_limit6()),
                        source: s.octets(),
                        destination: d.octets(),
                        ..Default::default()
                    };
                    self.send_ipv6_in_place(now, header, seg.bytes, seg.tso_mss, seg.payload);
                    continue;
                }
                _ => continue,
            };
            let dg = Datagram {
                src,
                dst,
                proto: IpNumber::TCP,
                pmtud: Pmtud::Want,
                payload: seg.bytes,
                headroom: FRAME_HEADROOM,
                tso_mss: seg.tso_mss,
                ttl: seg.ttl,
                dscp: seg.dscp,
                ecn: seg.ecn,
                tail: seg.payload,
            };
            // A failure (no route) surfaces as retransmission timeouts, as in Linux.
            let _ = self.send_datagram(now, dg);
        }
        // The emptied vector keeps its capacity for the next batch.
        self.tcp_out = out;
        self.events.extend(self.tcp.take_events());
        self.publish_offers(None);
    }

    /// How a socket call reaches TCP: runs `f` on the TCP layer (with the counters), then
    /// sends whatever it queued, once.
    pub fn with_tcp<R>(&mut self, now: Instant, f: impl FnOnce(&mut Tcp, &mut Counters) -> R) -> R {
        let r = f(&mut self.tcp, &mut self.stats);
        self.flush_tcp(now);
        r
    }

    /// The TCP layer, to read: states, addresses, snapshots, shared socket state.
    pub fn tcp(&self) -> &Tcp {
        &self.tcp
    }
}
