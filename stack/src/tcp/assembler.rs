//! Bookkeeping for out-of-order data: which byte ranges past the in-order
//! end have arrived. The bytes themselves sit in the receive ring.
//!
//! Ranges are offsets relative to RCV.NXT, kept sorted and merged. The count
//! is bounded so a peer cannot make us track unbounded fragments; a segment
//! that would need one more range than the bound is dropped (and will be
//! retransmitted). The bound is generous: a tail-drop burst on a path with a
//! large window leaves thousands of holes, and refusing the segments beyond
//! them would turn one loss event into a timeout. (The sender's SACK state
//! lives in the send record, `sent.rs`.)

pub const MAX_RANGES: usize = 16_384;

#[derive(Debug, Clone)]
pub struct Assembler {
    /// Sorted, disjoint, non-adjacent `[start, end)` offsets from RCV.NXT.
    ranges: Vec<(u32, u32)>,
    limit: usize,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler::with_limit(MAX_RANGES)
    }
}

impl Assembler {
    /// An assembler that tracks at most `limit` ranges.
    pub fn with_limit(limit: usize) -> Self {
        Assembler {
            ranges: Vec::new(),
            limit,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    /// Bytes the range list holds allocated: a peer that sends many small
    /// segments with gaps makes it grow (to `MAX_RANGES`, 128 KiB).
    pub fn memory(&self) -> usize {
        self.ranges.capacity() * std::mem::size_of::<(u32, u32)>()
    }

    /// Records `[start, end)`. Returns false (recording nothing) when that
    /// would exceed the limit.
    pub fn add(&mut self, start: u32, end: u32) -> bool {
        if start >= end {
            return true;
        }
        // First range that ends at or after `start` (could merge).
        let i = self.ranges.partition_point(|r| r.1 < start);
        // One past the last range that starts at or before `end`.
        let j = self.ranges.partition_point(|r| r.0 <= end);
        if i == j {
            if self.ranges.len() >= self.limit {
                return false;
            }
            self.ranges.insert(i, (start, end));
        } else {
            let lo = start.min(self.ranges[i].0);
            let hi = end.max(self.ranges[j - 1].1);
            self.ranges.drain(i + 1..j);
            self.ranges[i] = (lo, hi);
        }
        true
    }

    /// If data now starts at offset 0, removes that range and returns its
    /// length; the remaining offsets shift down by it.
    pub fn take_front(&mut self) -> u32 {
        match self.ranges.first() {
            Some(&(0, end)) => {
                self.ranges.remove(0);
                self.shift(end);
                end
            }
            _ => 0,
        }
    }

    /// RCV.NXT advanced by `n`: shift every offset down, dropping what it passed.
    pub fn shift(&mut self, n: u32) {
        self.ranges.retain_mut(|r| {
            r.0 = r.0.saturating_sub(n);
            r.1 = r.1.saturating_sub(n);
            r.1 > r.0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlaps_and_adjacency() {
        let mut a = Assembler::default();
        assert!(a.add(10, 20));
        assert!(a.add(30, 40));
        assert!(a.add(20, 30));
        assert_eq!(a.ranges(), &[(10, 40)]);
        assert!(a.add(5, 12));
        assert!(a.add(35, 50));
        assert_eq!(a.ranges(), &[(5, 50)]);
        assert_eq!(a.take_front(), 0);
        assert!(a.add(0, 5));
        assert_eq!(a.take_front(), 50);
        assert!(a.is_empty());
    }

    #[test]
    fn bounded_count() {
        let mut a = Assembler::with_limit(32);
        for i in 0..32u32 {
            assert!(a.add(i * 10 + 1, i * 10 + 2));
        }
        assert!(!a.add(1000, 1001), "one range too many is refused");
        assert!(a.add(1, 2), "a duplicate needs no new range");
        assert_eq!(a.ranges().len(), 32);
        assert_eq!(Assembler::default().limit, MAX_RANGES);
    }

    #[test]
    fn shift_drops_passed_ranges() {
        let mut a = Assembler::default();
        a.add(2, 4);
        a.add(6, 9);
        a.shift(5);
        assert_eq!(a.ranges(), &[(1, 4)]);
    }
}
