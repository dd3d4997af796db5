//! ICMP errors about a connection's segments: path MTU discovery (RFC 1191 with the checks of
//! RFC 5927) and soft errors (RFC 1122 §4.2.3.9, RFC 5461), as Linux's `tcp_v4_err` handles
//! them; Packet Too Big for IPv6 (RFC 8201) the same way.

use super::seq::Seq;
use super::tcb::State;
use super::Tcp;
use crate::stats::Counters;
use crate::time::Instant;
use std::net::SocketAddr;

/// What an ICMP error says about a connection's segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable, fragmentation needed and DF set (RFC 1191), or IPv6's Packet
    /// Too Big (RFC 8201): the next hop's MTU.
    FragmentationNeeded {
        /// The next-hop MTU the message reports (RFC 1191 §4, RFC 8201 §4).
        mtu: u16,
    },
    /// Any other error, as the errno it would report (`EHOSTUNREACH`, `ECONNREFUSED`, ...).
    Unreachable {
        /// The errno the error maps to.
        errno: i32,
    },
}

impl Tcp {
    /// An ICMP error quoting a segment from `local_port` to `remote` with sequence number
    /// `seq`. True if it was believed: it names a connection and data of it in flight.
    pub fn icmp_error(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seq: Seq,
        err: IcmpError,
        stats: &mut Counters,
    ) -> bool {
        let Some(&id) = self.by_tuple.get(&(local, remote)) else {
            stats.tcp_icmp_ignored += 1;
            return false;
        };
        let Some(t) = self.conns.get_mut(&id) else {
            return false;
        };
        // RFC 5927 §4.1: believe only an error about data in flight, which an off-path
        // attacker would have to guess.
        if !(seq.ge(t.snd.una) && seq.lt(t.snd.nxt.max(t.snd.una + 1))) {
            stats.tcp_icmp_out_of_window += 1;
            return false;
        }
        match err {
            IcmpError::FragmentationNeeded { mtu } => {
                // Never below the family's smallest believable path MTU (a forged error
                // cannot shrink segments to almost nothing; the IP layer discards a Packet
                // Too Big below IPv6's minimum).
                let remote = t.remote.ip();
                let mtu = u32::from(mtu).max(crate::ip::min_path_mtu(remote));
                let mss = super::mss_for_mtu(remote, mtu);
                // Only a smaller path MTU is news (RFC 1191 §3; RFC 5927 §7.2: never grow).
                if mss >= t.snd.mss || !t.state.synchronized() {
                    return true;
                }
                t.snd.mss = mss;
                stats.tcp_pmtu_reductions += 1;
                // Resend what is in flight at the new size, without a congestion response: the
                // segments were not lost to congestion (Linux's `tcp_simple_retransmit`).
                if t.snd.max.gt(t.snd.una) {
                    t.recovery.on_timeout(t.snd.una);
                    t.rtx.rto_recover = Some(t.snd.max);
                    t.rtx.rtt_probe = None;
                    t.snd.nxt = t.snd.una;
                }
                self.flush(id, now, stats);
            }
            IcmpError::Unreachable { errno } => {
                if t.state == State::SynSent {
                    // The connect fails at once: RFC 5461's non-standard but widely implemented
                    // reaction (Linux's), which RFC 1122 §4.2.3.9 does not foresee; a later
                    // attempt need not wait out the SYN retries.
                    stats.tcp_icmp_aborts += 1;
                    self.closed(id, now, Some(errno), stats);
                } else {
                    // A soft error: the connection goes on, and the error is reported by
                    // `take_error`, or instead of ETIMEDOUT if it times out (RFC 5461 §4).
                    t.io().soft_error = Some(errno);
                    stats.tcp_icmp_soft_errors += 1;
                }
            }
        }
        true
    }
}
