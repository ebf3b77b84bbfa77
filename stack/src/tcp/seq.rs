//! Sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 3.4).
//!
//! `a < b` means "b is ahead of a by less than 2^31". All sequence
//! arithmetic in the stack goes through this type so that wraparound is
//! handled in exactly one place.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance from `other` to `self`.
    pub fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `lo <= self < hi` in sequence space.
    pub fn in_range(self, lo: SeqNum, hi: SeqNum) -> bool {
        lo <= self && self < hi
    }

    /// `lo <= self <= hi` in sequence space.
    pub fn in_range_incl(self, lo: SeqNum, hi: SeqNum) -> bool {
        lo <= self && self <= hi
    }

    pub fn max(self, other: SeqNum) -> SeqNum {
        if self >= other {
            self
        } else {
            other
        }
    }

    pub fn min(self, other: SeqNum) -> SeqNum {
        if self <= other {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

/// `a - b` is the forward distance from b to a; callers ensure `a >= b`.
impl Sub for SeqNum {
    type Output = u32;
    fn sub(self, rhs: SeqNum) -> u32 {
        debug_assert!(
            self >= rhs,
            "sequence subtraction went negative: {self:?} - {rhs:?}"
        );
        self.0.wrapping_sub(rhs.0)
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_wraparound() {
        let a = SeqNum(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b.0, 9);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b - a, 20);
        assert_eq!(a.diff(b), -20);
        assert!(SeqNum(u32::MAX).in_range(a, b));
        assert!(SeqNum(0).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert!(b.in_range_incl(a, b));
    }

    #[test]
    fn half_space_is_the_horizon() {
        let a = SeqNum(5);
        assert!(a + ((1 << 31) - 1) > a);
        // Exactly half the space away is "behind": RFC 1982 leaves it undefined,
        // our choice is the signed-difference rule.
        assert!(a + (1 << 31) < a);
    }

    #[test]
    fn min_max_wrap() {
        let a = SeqNum(u32::MAX);
        let b = SeqNum(1);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }
}
