//! An interface that is one of several queues of one link (a multi-queue tap or tun, see
//! [`crate::Stack::new_queues`]): each queue's stack has its own connections and sockets, and
//! the kernel hands each flow's frames to the queue that last wrote on it. A frame can still
//! land on another queue: the first of a flow the stack opened, or any after the kernel's
//! flow entry expired (3 s without a write). What no connection or socket of this queue
//! takes is therefore not answered with a reset or a port unreachable but passed on
//! ([`PassOn::Next`]), queue to queue; only the last queue of the round answers it as a
//! lone stack would. ARP messages are copied to every other queue ([`PassOn::Everyone`]),
//! which learn from them and answer none, so that every queue's neighbour cache holds what
//! any queue resolved. IPv6 runs on queue 0 alone: the others pass every IPv6 frame on.

use super::Interface;
use crate::time::Instant;

/// Where a frame the interface just took goes next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassOn {
    /// Nowhere: this queue took it (or dropped it, as a lone stack would).
    #[default]
    Keep,
    /// To the next queue: nothing here takes it.
    Next,
    /// A copy to every other queue (an ARP message, to learn from).
    Everyone,
}

/// The per-frame state of a queue's input.
#[derive(Debug, Default)]
pub(super) struct QueueInput {
    /// A frame nothing here takes may be passed on (several queues, and not the last of
    /// its round).
    pub pass_on: bool,
    /// The frame is another queue's ARP message: learn from it, answer nothing.
    pub copy: bool,
    /// The verdict on the frame just taken.
    pub verdict: PassOn,
    /// A reassembled datagram passed on, as one unfragmented frame.
    pub rebuilt: Option<Vec<u8>>,
}

impl Interface {
    /// Whether this interface shares its link with other queues.
    pub(super) fn queued(&self) -> bool {
        self.cfg.queues > 1
    }

    /// IPv6 runs on the link, on another queue than this one (and none runs it on a link
    /// too small for it, RFC 8200 §5).
    pub(super) fn ipv6_elsewhere(&self) -> bool {
        self.queued()
            && self.cfg.ipv6.is_some()
            && !self.cfg.runs_ipv6()
            && self.cfg.mtu >= super::ipv6::MIN_MTU
    }

    /// Where the frame the interface took last goes next; asked after each.
    pub fn take_pass_on(&mut self) -> PassOn {
        std::mem::take(&mut self.queue.verdict)
    }

    /// Takes a frame another queue passed on, `hops` queues ago: the last queue of the round
    /// (`hops + 1` = the number of queues) answers it as a lone stack would. `verified`: the
    /// device it arrived on vouched for its transport checksum.
    pub fn receive_passed(&mut self, now: Instant, frame: &[u8], hops: usize, verified: bool) {
        self.stats.queue_taken_over += 1;
        self.queue.pass_on = hops + 1 < self.cfg.queues;
        let verified = super::ethernet::RxChecksums {
            transport: verified,
        };
        self.receive_with(now, frame, verified);
        self.queue.pass_on = self.queued();
    }

    /// The frame to pass on in place of the one taken last, when that one was the last
    /// fragment of a datagram: the datagram whole.
    pub fn take_rebuilt(&mut self) -> Option<Vec<u8>> {
        self.queue.rebuilt.take()
    }

    /// Learns from another queue's ARP message, answering nothing.
    pub fn receive_neighbour_copy(&mut self, now: Instant, frame: &[u8]) {
        self.queue.copy = true;
        self.receive_with(now, frame, super::ethernet::RxChecksums::default());
        self.queue.copy = false;
        self.queue.verdict = PassOn::Keep;
    }

    /// [`Interface::pass_on`] for an IPv4 datagram: one put together from fragments goes on
    /// whole, as one frame (the next queue never saw its other fragments).
    pub(super) fn pass_on_datagram(&mut self, rx: &super::ipv4::IpRx<'_>) -> bool {
        if !self.pass_on() {
            return false;
        }
        let fragment = etherparse::Ipv4HeaderSlice::from_slice(rx.header)
            .is_ok_and(|h| h.more_fragments() || h.fragments_offset().value() != 0);
        if fragment {
            self.queue.rebuilt = self.unfragmented_frame(rx);
        }
        true
    }

    /// The datagram of `rx` as one frame to us: its header with the fragment fields cleared.
    fn unfragmented_frame(&self, rx: &super::ipv4::IpRx<'_>) -> Option<Vec<u8>> {
        let (mut ip, _) = etherparse::Ipv4Header::from_slice(rx.header).ok()?;
        ip.more_fragments = false;
        ip.fragment_offset = etherparse::IpFragOffset::ZERO;
        ip.set_payload_len(rx.payload.len()).ok()?;
        ip.header_checksum = ip.calc_header_checksum();
        let mut frame = super::ethernet::frame(
            self.cfg.mac,
            self.cfg.mac,
            etherparse::EtherType::IPV4,
            ip.header_len() + rx.payload.len(),
        );
        frame.extend_from_slice(&ip.to_bytes());
        frame.extend_from_slice(rx.payload);
        Some(frame)
    }

    /// Nothing here takes the frame: pass it on if this queue may, else `false` (the caller
    /// answers or drops it as a lone stack would).
    pub(super) fn pass_on(&mut self) -> bool {
        if !self.queue.pass_on {
            return false;
        }
        self.queue.verdict = PassOn::Next;
        self.stats.queue_passed_on += 1;
        true
    }
}
