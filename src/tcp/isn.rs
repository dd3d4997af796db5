//! Initial sequence numbers (RFC 6528 §3): ISN = M + F(localip, localport, remoteip,
//! remoteport, secretkey), M a 4 µs timer and F a keyed hash (SipHash-2-4).

use super::seq::Seq;
use crate::time::Instant;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::SocketAddr;

/// Generates ISNs for new connections from a per-stack secret.
#[derive(Clone)]
pub struct IsnGenerator {
    secret: [u8; 16],
}

impl std::fmt::Debug for IsnGenerator {
    /// Keeps the secret out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsnGenerator").finish_non_exhaustive()
    }
}

impl IsnGenerator {
    /// `secret` should be random per boot (RFC 6528 §3); the caller draws it from its seeded RNG.
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator { secret }
    }

    /// The ISN for a connection between `local` and `remote` at `now`.
    pub fn isn(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> Seq {
        // M: a timer ticking every 4 µs (RFC 9293 §3.4.1, RFC 6528 §3), modulo 2^32.
        let m = (now.total_micros() / 4) as u32;
        let mut h = SipHasher24::new_with_key(&self.secret);
        let (b, n) = crate::wire::ip_octets(local.ip());
        h.write(&b[..n]);
        h.write(&local.port().to_be_bytes());
        let (b, n) = crate::wire::ip_octets(remote.ip());
        h.write(&b[..n]);
        h.write(&remote.port().to_be_bytes());
        // F: the hash truncated to the sequence space.
        Seq(m.wrapping_add(h.finish() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const KEY: [u8; 16] = *b"0123456789abcdef";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deterministic_per_key() {
        let (l, r) = (addr("10.0.0.2:80"), addr("10.0.0.1:40000"));
        let now = Instant::from_secs(5);
        let a = IsnGenerator::new(KEY).isn(now, l, r);
        assert_eq!(a, IsnGenerator::new(KEY).isn(now, l, r));
        let mut other = KEY;
        other[0] ^= 1;
        assert_ne!(a, IsnGenerator::new(other).isn(now, l, r));
    }

    /// Over IPv6 every octet of both addresses counts: addresses that differ only in their
    /// last octet, or only in their first, give other ISNs.
    #[test]
    fn different_per_ipv6_tuple() {
        let g = IsnGenerator::new(KEY);
        let now = Instant::from_secs(5);
        let base = g.isn(now, addr("[2001:db8::2]:80"), addr("[2001:db8::1]:40000"));
        for (l, r) in [
            ("[2001:db8::2]:80", "[2001:db8::3]:40000"),
            ("[2001:db8::2]:80", "[3001:db8::1]:40000"),
            ("[2001:db8::3]:80", "[2001:db8::1]:40000"),
            ("[2001:db8::2]:80", "[2001:db8::1]:40001"),
            ("[2001:db8::1]:40000", "[2001:db8::2]:80"),
        ] {
            assert_ne!(base, g.isn(now, addr(l), addr(r)), "{l} {r}");
        }
    }

    #[test]
    fn different_per_tuple() {
        let g = IsnGenerator::new(KEY);
        let now = Instant::from_secs(5);
        let base = g.isn(now, addr("10.0.0.2:80"), addr("10.0.0.1:40000"));
        for (l, r) in [
            ("10.0.0.2:80", "10.0.0.1:40001"),
            ("10.0.0.2:81", "10.0.0.1:40000"),
            ("10.0.0.3:80", "10.0.0.1:40000"),
            ("10.0.0.2:80", "10.0.0.9:40000"),
            ("10.0.0.1:40000", "10.0.0.2:80"),
        ] {
            assert_ne!(base, g.isn(now, addr(l), addr(r)), "{l} {r}");
        }
    }

    #[test]
    fn advances_every_four_microseconds() {
        let g = IsnGenerator::new(KEY);
        let (l, r) = (addr("10.0.0.2:80"), addr("10.0.0.1:40000"));
        let t = Instant::from_secs(1);
        let isn = g.isn(t, l, r);
        assert_eq!(g.isn(t + Duration::from_micros(3), l, r), isn);
        assert_eq!(g.isn(t + Duration::from_micros(4), l, r), isn + 1);
        assert_eq!(g.isn(t + Duration::from_secs(1), l, r), isn + 250_000);
        // M wraps modulo 2^32 after about 4.77 hours.
        let wrap = Duration::from_micros(4 << 32);
        assert_eq!(g.isn(t + wrap, l, r), isn);
    }
}
