//! SYN cookies (RFC 4987 §3.6): when a listener's SYN queue is full, the SYN-ACK's sequence
//! number carries what the connection needs, and state is created only when the client's ACK
//! returns it. Layout, like Linux's: 5 bits of a 64-second counter, 3 bits of MSS index, 24 bits
//! of a keyed hash over the 4-tuple, the client's ISN and the counter.
//!
//! Such connections have no window scaling, SACK or timestamps (the cookie has no room), as with
//! Linux when the client sends no timestamps.

use super::seq::Seq;
use crate::time::Instant;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::SocketAddr;

/// MSS values a cookie can name (Linux's table for IPv4, plus jumbo sizes).
const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1400, 1440, 1460, 4312, 8960];
/// Seconds per counter tick; a cookie is accepted during its tick and the next.
const TICK: u64 = 64;

#[derive(Clone)]
pub struct Cookies {
    secret: [u8; 16],
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookies").finish_non_exhaustive()
    }
}

impl Cookies {
    pub fn new(secret: [u8; 16]) -> Self {
        Cookies { secret }
    }

    fn hash(&self, local: SocketAddr, remote: SocketAddr, client_isn: Seq, count: u64) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.secret);
        let (b, n) = crate::wire::ip_octets(local.ip());
        h.write(&b[..n]);
        h.write(&local.port().to_be_bytes());
        let (b, n) = crate::wire::ip_octets(remote.ip());
        h.write(&b[..n]);
        h.write(&remote.port().to_be_bytes());
        h.write(&client_isn.0.to_be_bytes());
        h.write(&count.to_be_bytes());
        (h.finish() as u32) & 0x00ff_ffff
    }

    /// The ISN of a stateless SYN-ACK for a client announcing `mss`.
    pub fn make(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: Seq,
        mss: u32,
    ) -> Seq {
        let count = now.total_micros() / 1_000_000 / TICK;
        let idx = MSS_TABLE
            .iter()
            .rposition(|&m| u32::from(m) <= mss)
            .unwrap_or(0) as u32;
        let hash = self.hash(local, remote, client_isn, count);
        Seq((((count & 31) as u32) << 27) | (idx << 24) | hash)
    }

    /// Checks the cookie an ACK returns (its ack number minus one); the MSS it encodes if valid.
    pub fn check(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: Seq,
        cookie: Seq,
    ) -> Option<u32> {
        let count = now.total_micros() / 1_000_000 / TICK;
        let c = cookie.0;
        (0..2u64)
            .filter_map(|age| count.checked_sub(age))
            .find_map(|n| {
                let ok = u64::from(c >> 27) == n & 31
                    && c & 0x00ff_ffff == self.hash(local, remote, client_isn, n);
                ok.then(|| u32::from(MSS_TABLE[((c >> 24) & 7) as usize]))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "10.0.0.2:80".parse().unwrap(),
            "10.0.0.1:40000".parse().unwrap(),
        )
    }

    #[test]
    fn valid_for_one_to_two_ticks_and_bound_to_the_tuple() {
        let c = Cookies::new(*b"0123456789abcdef");
        let (l, r) = addrs();
        let t0 = Instant::from_secs(1000);
        let cookie = c.make(t0, l, r, Seq(77), 1460);
        assert_eq!(c.check(t0, l, r, Seq(77), cookie), Some(1460));
        assert_eq!(
            c.check(Instant::from_secs(1000 + 64), l, r, Seq(77), cookie),
            Some(1460)
        );
        assert_eq!(
            c.check(Instant::from_secs(1000 + 200), l, r, Seq(77), cookie),
            None,
            "expired"
        );
        assert_eq!(c.check(t0, l, r, Seq(78), cookie), None, "other client ISN");
        let other: SocketAddr = "10.0.0.1:40001".parse().unwrap();
        assert_eq!(c.check(t0, l, other, Seq(77), cookie), None, "other tuple");
        assert_eq!(c.check(t0, l, r, Seq(77), cookie + 1), None, "forged");
    }

    /// Over IPv6 the cookie covers both whole addresses: one octet more or less anywhere in
    /// either fails it.
    #[test]
    fn bound_to_the_ipv6_tuple() {
        let c = Cookies::new(*b"0123456789abcdef");
        let l: SocketAddr = "[2001:db8::2]:80".parse().unwrap();
        let r: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let now = Instant::from_secs(1000);
        let cookie = c.make(now, l, r, Seq(77), 1440);
        assert_eq!(c.check(now, l, r, Seq(77), cookie), Some(1440));
        for other in ["[2001:db8::3]:40000", "[3001:db8::1]:40000"] {
            let other: SocketAddr = other.parse().unwrap();
            assert_eq!(c.check(now, l, other, Seq(77), cookie), None, "{other}");
            assert_eq!(c.check(now, other, r, Seq(77), cookie), None, "{other}");
        }
    }

    #[test]
    fn mss_rounds_down_to_the_table() {
        let c = Cookies::new([7; 16]);
        let (l, r) = addrs();
        let now = Instant::from_secs(5);
        for (mss, want) in [(1460, 1460), (1459, 1440), (9000, 8960), (100, 536)] {
            let cookie = c.make(now, l, r, Seq(1), mss);
            assert_eq!(c.check(now, l, r, Seq(1), cookie), Some(want));
        }
    }
}
