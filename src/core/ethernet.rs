//! Ethernet II framing and the receive filter.

use super::Interface;
use crate::time::Instant;
use crate::wire::{MacAddr, Medium};
use etherparse::{EtherType, Ethernet2Header, Ethernet2HeaderSlice};

/// A frame buffer holding the Ethernet header, with room for `payload_len` more bytes.
pub fn frame(dst: MacAddr, src: MacAddr, ether_type: EtherType, payload_len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(Ethernet2Header::LEN + payload_len);
    let header = Ethernet2Header {
        source: src.0,
        destination: dst.0,
        ether_type,
    };
    buf.extend_from_slice(&header.to_bytes());
    buf
}

/// The checksums of a received frame its device has verified already (smoltcp's
/// `ChecksumCapabilities`, per frame): the stack skips those checks. The IPv4 header checksum
/// is always checked (the kernel hands it over unverified).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxChecksums {
    /// The TCP or UDP checksum (virtio's `DATA_VALID`, or a partial checksum from the host).
    pub transport: bool,
}

impl Interface {
    /// Takes one received frame through the stack, whose device vouches for its TCP or UDP
    /// checksum (see [`crate::phy::Device::rx_checksum_verified`]): only that check is skipped.
    pub fn receive_checksum_verified(&mut self, now: Instant, frame: &[u8]) {
        self.receive_with(now, frame, RxChecksums { transport: true });
    }

    /// Takes one received frame through the stack, every checksum checked.
    pub fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.receive_with(now, frame, RxChecksums::default());
    }

    /// [`Interface::receive_with`] for the first `len` bytes of `frame`, a buffer the
    /// connection its TCP segment is for may keep instead of copying the data out
    /// ([`crate::tcp::buffer::RecvBuffer::adopt`]): the driver then reads the next frame into
    /// another ([`crate::rxbuf::writable`]).
    pub fn receive_frame(
        &mut self,
        now: Instant,
        frame: &std::sync::Arc<crate::rxbuf::RxFrame>,
        len: usize,
        verified: RxChecksums,
    ) {
        let Some(bytes) = frame.bytes().get(..len) else {
            self.stats.eth_rx_truncated += 1;
            return;
        };
        self.tcp.offer_frame(Some(frame.clone()));
        self.receive_with(now, bytes, verified);
        // Not a TCP segment (or one that never reached TCP): the offer ends with the frame.
        self.tcp.offer_frame(None);
    }

    /// Takes one received frame through the stack, skipping the checks its device did.
    pub fn receive_with(&mut self, now: Instant, frame: &[u8], verified: RxChecksums) {
        self.now = self.now.max(now);
        // A verdict is the last frame's only (see `queues`).
        self.queue.verdict = super::PassOn::Keep;
        self.queue.rebuilt = None;
        self.stats.eth_rx_frames += 1;
        let Ok(eth) = Ethernet2HeaderSlice::from_slice(frame) else {
            self.stats.eth_rx_truncated += 1;
            return;
        };
        let dst = MacAddr(eth.destination());
        let ip_link = self.cfg.medium == Medium::Ip;
        // IPv6's groups come to `33:33:…` addresses (RFC 2464 §7): ours are all-nodes and
        // our addresses' solicited-node groups.
        let group = !ip_link
            && match &self.ip6 {
                Some(s) => s.accepts_mac(dst),
                // A queue without IPv6 takes every group's frame, to pass on to queue 0.
                None => self.ipv6_elsewhere() && dst.0[..2] == [0x33, 0x33],
            };
        if !ip_link && dst != self.cfg.mac && !dst.is_broadcast() && !group {
            self.stats.eth_rx_not_for_us += 1;
            return;
        }
        let payload = &frame[Ethernet2Header::LEN..];
        match eth.ether_type() {
            EtherType::ARP if !ip_link => {
                self.arp_input(now, payload);
                if self.queued() && !self.queue.copy {
                    self.queue.verdict = super::PassOn::Everyone;
                    self.stats.queue_neighbour_copies += 1;
                }
            }
            EtherType::IPV4 => {
                self.ipv4_input(now, payload, !ip_link && dst.is_broadcast(), verified)
            }
            EtherType::IPV6 if self.ip6.is_some() => {
                // A link-layer broadcast counts as multicast: no error answers it (RFC 4443
                // §2.4 (e.3)).
                let multicast = group || (!ip_link && dst.is_broadcast());
                self.ipv6_input(now, payload, multicast, verified.transport)
            }
            // A queue without IPv6 passes it on, towards the first queue.
            EtherType::IPV6 if self.ipv6_elsewhere() && self.pass_on() => {}
            _ => self.stats.eth_rx_unknown_ethertype += 1,
        }
    }
}
