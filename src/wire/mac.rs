use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address, ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// The all-zero address, 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (multicast or broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// A locally administered unicast address derived from a seed, for stacks not given one.
    pub fn local_from_seed(seed: u64) -> MacAddr {
        let b = seed.to_le_bytes();
        MacAddr([0x02, b[0], b[1], b[2], b[3], b[4]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| format!("MAC address too short: {s}"))?;
            if part.len() != 2 {
                return Err(format!("bad MAC address byte {part:?} in {s}"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("bad MAC address {s}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC address too long: {s}"));
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_roundtrip() {
        let m: MacAddr = "02:00:00:aa:BB:0c".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:aa:bb:0c");
        assert!("02:00:00:aa:bb".parse::<MacAddr>().is_err());
        assert!("02:00:00:aa:bb:cc:dd".parse::<MacAddr>().is_err());
        assert!("02:00:00:aa:bb:zz".parse::<MacAddr>().is_err());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!m.is_multicast());
    }
}
