//! TCP sequence numbers and their modulo-2^32 arithmetic (RFC 9293 §3.4).
//!
//! The order is only meaningful between numbers less than 2^31 apart, so it is not transitive
//! over the whole space and `Seq` deliberately implements neither `Ord` nor `PartialOrd`.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A 32-bit sequence number that wraps around (RFC 9293 §3.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// Signed distance from `other` to `self`, the basis of every comparison.
    fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self` is before `other`.
    pub fn lt(self, other: Seq) -> bool {
        self.diff(other) < 0
    }

    /// `self` is before or equal to `other`.
    pub fn le(self, other: Seq) -> bool {
        self.diff(other) <= 0
    }

    /// `self` is after `other`.
    pub fn gt(self, other: Seq) -> bool {
        self.diff(other) > 0
    }

    /// `self` is after or equal to `other`.
    pub fn ge(self, other: Seq) -> bool {
        self.diff(other) >= 0
    }

    /// Bytes from `earlier` up to `self`, modulo 2^32.
    pub fn since(self, earlier: Seq) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// The later of the two in sequence space.
    pub fn max(self, other: Seq) -> Seq {
        if self.ge(other) {
            self
        } else {
            other
        }
    }

    /// The earlier of the two in sequence space.
    pub fn min(self, other: Seq) -> Seq {
        if self.le(other) {
            self
        } else {
            other
        }
    }

    /// `start <= self < end`, the window test of RFC 9293 §3.4, measured as offsets from `start`
    /// so it holds for any window below 2^32; empty when `start == end`.
    pub fn in_range(self, start: Seq, end: Seq) -> bool {
        self.since(start) < end.since(start)
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for Seq {
    fn add_assign(&mut self, n: u32) {
        *self = *self + n;
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: Seq = Seq(u32::MAX - 9);

    #[test]
    fn order_without_wrap() {
        let (a, b) = (Seq(100), Seq(200));
        assert!(a.lt(b) && a.le(b) && !a.gt(b) && !a.ge(b));
        assert!(b.gt(a) && b.ge(a) && !b.lt(a) && !b.le(a));
        assert!(a.le(a) && a.ge(a) && !a.lt(a) && !a.gt(a));
    }

    #[test]
    fn order_across_wrap() {
        let after = TOP + 20;
        assert_eq!(after, Seq(10));
        assert!(TOP.lt(after) && after.gt(TOP));
        assert!(Seq(u32::MAX).lt(Seq(0)));
        assert_eq!(after.since(TOP), 20);
        assert_eq!(after - 20, TOP);
        assert_eq!(TOP.max(after), after);
        assert_eq!(after.min(TOP), TOP);
    }

    #[test]
    fn add_assign_wraps() {
        let mut s = Seq(u32::MAX);
        s += 1;
        assert_eq!(s, Seq(0));
        s += u32::MAX;
        assert_eq!(s, Seq(u32::MAX));
    }

    #[test]
    fn half_space_boundary() {
        let a = Seq(0);
        assert!(a.lt(a + (1 << 31) - 1));
        assert!(a.gt(a - (1 << 31) + 1));
        // Exactly 2^31 apart, each is "before" the other: the order is not total.
        assert!(a.lt(a + (1 << 31)) && (a + (1 << 31)).lt(a));
    }

    #[test]
    fn in_range_across_wrap() {
        let (start, end) = (TOP, TOP + 20);
        assert!(TOP.in_range(start, end));
        assert!(Seq(u32::MAX).in_range(start, end));
        assert!(Seq(0).in_range(start, end));
        assert!(Seq(9).in_range(start, end));
        assert!(!Seq(10).in_range(start, end));
        assert!(!(TOP - 1).in_range(start, end));
        assert!(!TOP.in_range(TOP, TOP));
    }

    #[test]
    fn display_is_the_number() {
        assert_eq!(Seq(4_294_967_295).to_string(), "4294967295");
    }
}
