//! The ECN field of IP headers (RFC 3168 §5): its codepoints, and the mark a router sets.

use super::ETHERNET_HEADER_LEN;

/// The ECN field: the low two bits of IPv4's TOS byte and of IPv6's traffic class.
pub const ECN_MASK: u8 = 0b11;
/// ECT(0): the sender's transport answers congestion marks.
pub const ECT0: u8 = 0b10;
/// CE: Congestion Experienced, set by a router in place of a drop.
pub const CE: u8 = 0b11;

/// The ECN field's bits: IPv4's TOS byte, IPv6's second byte (after the version and the
/// traffic class's high nibble), RFC 3168 §5.
const IPV4_TOS: usize = ETHERNET_HEADER_LEN + 1;
const IPV6_ECN_BYTE: usize = ETHERNET_HEADER_LEN + 1;
const IPV6_ECN_SHIFT: u8 = 4;
const IPV4_CHECKSUM: usize = ETHERNET_HEADER_LEN + 10;
const ETHERTYPE: std::ops::Range<usize> = 12..14;
const ETHERTYPE_IPV4: u16 = etherparse::EtherType::IPV4.0;
const ETHERTYPE_IPV6: u16 = etherparse::EtherType::IPV6.0;

/// Sets Congestion Experienced on an IP packet that is ECN-capable (ECT(0) or ECT(1)), the
/// IPv4 header checksum updated (RFC 1624); whether it did.
pub fn mark_ce(frame: &mut [u8]) -> bool {
    let ethertype = frame
        .get(ETHERTYPE)
        .map(|t| u16::from_be_bytes([t[0], t[1]]));
    match ethertype {
        Some(ETHERTYPE_IPV4) if frame.len() > IPV4_CHECKSUM + 1 => {
            let old = frame[IPV4_TOS];
            if old & ECN_MASK == 0 || old & ECN_MASK == CE {
                return false;
            }
            let new = old | CE;
            frame[IPV4_TOS] = new;
            // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), over the 16-bit word holding the TOS.
            let word = |tos: u8| u32::from(u16::from_be_bytes([frame[IPV4_TOS - 1], tos]));
            let sum = u16::from_be_bytes([frame[IPV4_CHECKSUM], frame[IPV4_CHECKSUM + 1]]);
            let mut acc = u32::from(!sum) + (!word(old) & 0xffff) + word(new);
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            frame[IPV4_CHECKSUM..IPV4_CHECKSUM + 2].copy_from_slice(&(!(acc as u16)).to_be_bytes());
            true
        }
        Some(ETHERTYPE_IPV6) if frame.len() > IPV6_ECN_BYTE => {
            let ecn = (frame[IPV6_ECN_BYTE] >> IPV6_ECN_SHIFT) & ECN_MASK;
            if ecn == 0 || ecn == CE {
                return false;
            }
            frame[IPV6_ECN_BYTE] |= CE << IPV6_ECN_SHIFT;
            true
        }
        _ => false,
    }
}
