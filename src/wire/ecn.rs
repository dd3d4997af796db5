//! The ECN field of IP headers (RFC 3168 §5): its codepoints, and the mark a router sets.

use super::ETHERNET_HEADER_LEN;

/// The ECN field: the low two bits of IPv4's TOS byte and of IPv6's traffic class.
pub const ECN_MASK: u8 = 0b11;
/// ECT(0): the sender's transport answers congestion marks.
pub const ECT0: u8 = 0b10;
/// CE: Congestion Experienced, set by a router in place of a drop.
pub const CE: u8 = 0b11;

/// Where the ECN field sits in an IP header: the low bits of IPv4's TOS byte; in IPv6's
/// second byte (after the version and the traffic class's high nibble), above its flow label
/// bits (RFC 3168 §5).
const IPV4_TOS: usize = 1;
const IPV6_ECN_BYTE: usize = 1;
const IPV6_ECN_SHIFT: u8 = 4;
/// The IPv4 header checksum, in a frame.
const IPV4_CHECKSUM: usize = ETHERNET_HEADER_LEN + 10;
const ETHERTYPE: std::ops::Range<usize> = 12..14;
const ETHERTYPE_IPV4: u16 = etherparse::EtherType::IPV4.0;
const ETHERTYPE_IPV6: u16 = etherparse::EtherType::IPV6.0;

/// The ECN field of an IPv4 header; 0 (not ECN-capable) if it is too short.
pub fn of_ipv4(header: &[u8]) -> u8 {
    header.get(IPV4_TOS).map_or(0, |tos| tos & ECN_MASK)
}

/// The ECN field of an IPv6 packet; 0 (not ECN-capable) if it is too short.
pub fn of_ipv6(packet: &[u8]) -> u8 {
    packet
        .get(IPV6_ECN_BYTE)
        .map_or(0, |b| (b >> IPV6_ECN_SHIFT) & ECN_MASK)
}

/// Sets Congestion Experienced on an IP packet that is ECN-capable (ECT(0) or ECT(1)), the
/// IPv4 header checksum updated (RFC 1624); whether it did.
pub fn mark_ce(frame: &mut [u8]) -> bool {
    let ethertype = frame
        .get(ETHERTYPE)
        .map(|t| u16::from_be_bytes([t[0], t[1]]));
    let ip = ETHERNET_HEADER_LEN;
    match ethertype {
        Some(ETHERTYPE_IPV4) if frame.len() > IPV4_CHECKSUM + 1 => {
            let tos = ip + IPV4_TOS;
            let old = frame[tos];
            if old & ECN_MASK == 0 || old & ECN_MASK == CE {
                return false;
            }
            let new = old | CE;
            frame[tos] = new;
            // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), over the 16-bit word holding the TOS.
            let word = |b: u8| u32::from(u16::from_be_bytes([frame[tos - 1], b]));
            let sum = u16::from_be_bytes([frame[IPV4_CHECKSUM], frame[IPV4_CHECKSUM + 1]]);
            let mut acc = u32::from(!sum) + (!word(old) & 0xffff) + word(new);
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            frame[IPV4_CHECKSUM..IPV4_CHECKSUM + 2].copy_from_slice(&(!(acc as u16)).to_be_bytes());
            true
        }
        Some(ETHERTYPE_IPV6) if frame.len() > ip + IPV6_ECN_BYTE => {
            let ecn = of_ipv6(&frame[ip..]);
            if ecn == 0 || ecn == CE {
                return false;
            }
            frame[ip + IPV6_ECN_BYTE] |= CE << IPV6_ECN_SHIFT;
            true
        }
        _ => false,
    }
}
