//! The four AF_XDP rings (fill, completion, RX, TX) are single-producer,
//! single-consumer queues in memory shared with the kernel: a producer and
//! a consumer index, free-running u32 counters, and an array of
//! power-of-two size indexed by `counter & mask`. We own one end of each.
//!
//! The index arithmetic is kept apart from the shared memory (in `Indices`)
//! so it can be tested on ordinary memory, wraparound of the u32 counters
//! included.

use std::sync::atomic::{AtomicU32, Ordering};

/// Our cached view of one ring's counters.
#[derive(Debug, Clone, Copy)]
pub struct Indices {
    size: u32,
    /// Our own counter (producer for fill/TX, consumer for RX/completion).
    pub ours: u32,
    /// The last value read of the kernel's counter.
    pub theirs: u32,
}

impl Indices {
    pub fn new(size: u32, ours: u32, theirs: u32) -> Self {
        assert!(size.is_power_of_two(), "ring size must be a power of two");
        Indices { size, ours, theirs }
    }

    pub fn mask(&self) -> u32 {
        self.size - 1
    }

    /// Producer side: slots we may fill, given the consumer at `theirs`.
    pub fn free(&self) -> u32 {
        self.size - self.ours.wrapping_sub(self.theirs)
    }

    /// Consumer side: entries ready, given the producer at `theirs`.
    pub fn ready(&self) -> u32 {
        self.theirs.wrapping_sub(self.ours)
    }
}

/// One end of a ring in shared memory, with entries of type `T` (u64 frame
/// addresses for fill/completion, descriptors for RX/TX).
pub struct Ring<T: Copy> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    idx: Indices,
    /// True if we produce (fill, TX), false if we consume (RX, completion).
    producer_side: bool,
}

// SAFETY: the ring is used by the one thread that owns its socket; the
// pointers refer to an mmap that lives as long as the socket.
unsafe impl<T: Copy> Send for Ring<T> {}

/// The kernel sets this in a ring's flags when it must be woken (sendto or
/// poll) to make progress on that ring.
pub const NEED_WAKEUP: u32 = 1;

impl<T: Copy> Ring<T> {
    /// # Safety
    /// The pointers must point into a live mapping of a ring of `size`
    /// entries laid out as the kernel's `xdp_ring_offset` describes, and
    /// stay valid for the life of the returned value.
    pub unsafe fn new(
        producer: *const AtomicU32,
        consumer: *const AtomicU32,
        flags: *const AtomicU32,
        entries: *mut T,
        size: u32,
        producer_side: bool,
    ) -> Self {
        // SAFETY: per this function's contract the counters are mapped.
        let (p, c) = unsafe {
            (
                (*producer).load(Ordering::Acquire),
                (*consumer).load(Ordering::Acquire),
            )
        };
        let idx = if producer_side {
            Indices::new(size, p, c)
        } else {
            Indices::new(size, c, p)
        };
        Ring {
            producer,
            consumer,
            flags,
            entries,
            idx,
            producer_side,
        }
    }

    fn theirs(&self) -> u32 {
        let ptr = if self.producer_side {
            self.consumer
        } else {
            self.producer
        };
        // SAFETY: the counter is mapped for our lifetime (see `new`). Acquire
        // pairs with the kernel's release: entries it published are visible.
        unsafe { (*ptr).load(Ordering::Acquire) }
    }

    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: the flags word is mapped for our lifetime.
        unsafe { (*self.flags).load(Ordering::Relaxed) & NEED_WAKEUP != 0 }
    }

    /// Producer: are `want` slots free? (Looks at the kernel's side again
    /// when the count we have is short.)
    pub fn has_room(&mut self, want: u32) -> bool {
        if self.idx.free() < want {
            self.idx.theirs = self.theirs();
        }
        self.idx.free() >= want
    }

    /// Producer: how many slots can be filled now.
    pub fn free(&mut self) -> u32 {
        if self.idx.free() == 0 {
            self.idx.theirs = self.theirs();
        }
        self.idx.free()
    }

    /// Producer: entries published and not yet consumed by the kernel.
    pub fn outstanding(&self) -> u32 {
        self.idx.ours.wrapping_sub(self.theirs())
    }

    /// Producer: writes `e` into the next slot, published by `submit`.
    /// Returns false, writing nothing, if the ring is full: a slot the
    /// kernel has not consumed yet must never be overwritten, in release
    /// builds too (the kernel would read a frame we handed out twice).
    #[must_use]
    pub fn push(&mut self, e: T) -> bool {
        debug_assert!(self.producer_side);
        if self.free() == 0 {
            return false;
        }
        let slot = (self.idx.ours & self.idx.mask()) as usize;
        // SAFETY: `slot` is below the ring size and the slot is ours: the
        // consumer has passed it (checked by `free`).
        unsafe { self.entries.add(slot).write(e) };
        self.idx.ours = self.idx.ours.wrapping_add(1);
        true
    }

    /// Producer: publishes everything pushed so far.
    pub fn submit(&mut self) {
        // SAFETY: mapped counter; Release makes the entries visible first.
        unsafe { (*self.producer).store(self.idx.ours, Ordering::Release) };
    }

    /// Consumer: takes the next entry, if the kernel produced one.
    pub fn pop(&mut self) -> Option<T> {
        if self.idx.ready() == 0 {
            self.idx.theirs = self.theirs();
            if self.idx.ready() == 0 {
                return None;
            }
        }
        let slot = (self.idx.ours & self.idx.mask()) as usize;
        // SAFETY: the kernel published this slot (ready > 0, read after an
        // Acquire load of its counter) and will not touch it until we release.
        let e = unsafe { self.entries.add(slot).read() };
        self.idx.ours = self.idx.ours.wrapping_add(1);
        Some(e)
    }

    /// Consumer: hands the popped slots back to the kernel.
    pub fn release(&mut self) {
        // SAFETY: mapped counter; Release orders our reads before it.
        unsafe { (*self.consumer).store(self.idx.ours, Ordering::Release) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_full_and_empty() {
        let i = Indices::new(8, 0, 0);
        assert_eq!((i.free(), i.ready()), (8, 0));
        let i = Indices::new(8, 8, 0);
        assert_eq!(i.free(), 0, "producer 8 ahead of consumer: full");
        let i = Indices::new(8, 3, 8);
        assert_eq!(i.ready(), 5);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let i = Indices::new(8, 2, u32::MAX - 3);
        assert_eq!(i.free(), 2, "6 in flight across the wrap");
        let i = Indices::new(8, u32::MAX - 1, 3);
        assert_eq!(i.ready(), 5);
        assert_eq!(Indices::new(8, 5, 5).mask(), 7);
    }

    /// A ring over ordinary memory, both ends driven by the test.
    #[test]
    fn ring_round_trip_with_wraparound() {
        let prod = AtomicU32::new(u32::MAX - 5);
        let cons = AtomicU32::new(u32::MAX - 5);
        let flags = AtomicU32::new(0);
        let mut mem = [0u64; 4];
        // SAFETY: the counters and the 4-entry array outlive both rings.
        let (mut p, mut c) = unsafe {
            (
                Ring::new(&prod, &cons, &flags, mem.as_mut_ptr(), 4, true),
                Ring::new(&prod, &cons, &flags, mem.as_mut_ptr(), 4, false),
            )
        };
        let mut next = 0u64;
        let mut expect = 0u64;
        for _ in 0..10 {
            let n = p.free();
            for _ in 0..n {
                assert!(p.push(next));
                next += 1;
            }
            assert!(!p.push(999), "a full ring refuses a push");
            assert!(c.pop().is_none(), "nothing visible before submit");
            p.submit();
            assert_eq!(p.free(), 0, "full until the consumer releases");
            while let Some(v) = c.pop() {
                assert_eq!(v, expect);
                expect += 1;
            }
            c.release();
        }
        assert_eq!(expect, 40);
        assert!(!c.needs_wakeup());
        flags.store(NEED_WAKEUP, Ordering::Relaxed);
        assert!(p.needs_wakeup());
    }
}
