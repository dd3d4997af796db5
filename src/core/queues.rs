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
}

impl Interface {
    /// Whether this interface shares its link with other queues.
    pub(super) fn queued(&self) -> bool {
        self.cfg.queues > 1
    }

    /// Where the frame the interface took last goes next; asked after each.
    pub fn take_pass_on(&mut self) -> PassOn {
        std::mem::take(&mut self.queue.verdict)
    }

    /// Takes a frame another queue passed on, `hops` queues ago: the last queue of the round
    /// (`hops + 1` = the number of queues) answers it as a lone stack would. Its transport
    /// checksum was checked, or vouched for, where it arrived.
    pub fn receive_passed(&mut self, now: Instant, frame: &[u8], hops: usize) {
        self.stats.queue_taken_over += 1;
        self.queue.pass_on = hops + 1 < self.cfg.queues;
        let verified = super::ethernet::RxChecksums { transport: true };
        self.receive_with(now, frame, verified);
        self.queue.pass_on = self.queued();
    }

    /// Learns from another queue's ARP message, answering nothing.
    pub fn receive_neighbour_copy(&mut self, now: Instant, frame: &[u8]) {
        self.queue.copy = true;
        self.receive_with(now, frame, super::ethernet::RxChecksums::default());
        self.queue.copy = false;
        self.queue.verdict = PassOn::Keep;
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
