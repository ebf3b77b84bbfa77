//! A bounded byte ring. The send buffer uses it for queued and
//! unacknowledged bytes; the receive buffer for in-order bytes the user has
//! not read yet, with out-of-order bytes parked beyond the end (see
//! [`super::assembler`]) so they need no second buffer.
//!
//! Its capacity is a promise (what the window offers), not an allocation:
//! memory is allocated as bytes arrive, doubling up to the capacity. A
//! connection that carries a 64-byte request costs a few KiB, not two
//! zeroed 256 KiB buffers (which glibc's allocator serves from the heap
//! with a memset once its mmap threshold has risen: 100 us and more per
//! connection, measured).

/// The first allocation of a ring that receives anything.
const FIRST_ALLOCATION: usize = 4096;

pub struct Ring {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
    /// The most bytes the ring will hold (committed and parked).
    capacity: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Ring {
            buf: Box::default(),
            head: 0,
            len: 0,
            capacity,
        }
    }

    /// Bytes allocated now (at most `capacity`).
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn free(&self) -> usize {
        self.capacity - self.len
    }

    fn phys(&self, offset: usize) -> usize {
        let cap = self.buf.len();
        let p = self.head + offset;
        if p >= cap {
            p - cap
        } else {
            p
        }
    }

    /// Copies `data` to logical `offset` (counted from the read position),
    /// possibly past the committed end. Returns how many bytes fit.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        if offset >= self.capacity {
            return 0;
        }
        let n = data.len().min(self.capacity - offset);
        if offset + n > self.buf.len() {
            self.grow_allocation(offset + n);
        }
        let cap = self.buf.len();
        let start = self.phys(offset);
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        if n > first {
            // Wrapped (a call to copy nothing still costs a call).
            self.buf[..n - first].copy_from_slice(&data[first..n]);
        }
        n
    }

    /// Appends as much of `data` as fits; returns the count.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(self.len, &data[..data.len().min(self.free())]);
        self.len += n;
        n
    }

    /// Marks `n` bytes written by [`Ring::write_at`] past the end as committed.
    pub fn commit(&mut self, n: usize) {
        assert!(n <= self.free(), "commit past capacity");
        self.len += n;
    }

    /// The committed bytes `[offset, offset+len)` as up to two slices.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        assert!(offset + len <= self.len, "slice past committed data");
        let cap = self.buf.len();
        let start = self.phys(offset);
        let first = len.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..len - first])
    }

    /// Copies committed bytes from `offset` into `out`; returns the count.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len.saturating_sub(offset));
        let (a, b) = self.slices(offset, n);
        out[..a.len()].copy_from_slice(a);
        if !b.is_empty() {
            out[a.len()..n].copy_from_slice(b);
        }
        n
    }

    /// Grows the ring's capacity to `capacity` bytes (buffer autotuning);
    /// memory follows as bytes arrive.
    pub fn grow(&mut self, capacity: usize) {
        self.capacity = self.capacity.max(capacity);
    }

    /// Allocates room for `end` bytes: at least double, at most the
    /// capacity. Out of line: a bulk ring stops growing early, and the
    /// copy that runs on every write is smaller without it.
    #[cold]
    #[inline(never)]
    fn grow_allocation(&mut self, end: usize) {
        let want = end.max(2 * self.buf.len()).max(FIRST_ALLOCATION);
        self.reallocate(want.min(self.capacity));
    }

    /// Moves the bytes to an allocation of `size`, each at its logical
    /// offset, parked ones past the end included. One copy.
    fn reallocate(&mut self, size: usize) {
        let old = self.buf.len();
        if size <= old {
            return;
        }
        let mut buf = vec![0u8; size].into_boxed_slice();
        let first = old - self.head;
        buf[..first].copy_from_slice(&self.buf[self.head..]);
        buf[first..old].copy_from_slice(&self.buf[..self.head]);
        self.buf = buf;
        self.head = 0;
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len, "consume past committed data");
        self.head = self.phys(n);
        // No rewinding of `head` when the ring drains: bytes parked past the
        // end by `write_at` (out-of-order data) must keep their place.
        self.len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_allocated_as_bytes_arrive_up_to_the_capacity() {
        let mut r = Ring::new(256 << 10);
        assert_eq!(r.allocated(), 0, "a promise, not an allocation");
        assert_eq!(r.push(&[1u8; 64]), 64);
        assert_eq!(r.allocated(), FIRST_ALLOCATION);
        r.write_at(100_000, b"parked");
        assert!(r.allocated() >= 100_006 && r.allocated() <= 256 << 10);
        assert_eq!(r.push(&vec![2u8; 300 << 10]), (256 << 10) - 64);
        assert_eq!(r.allocated(), 256 << 10, "never past the capacity");
        let mut out = [0u8; 4];
        r.copy_out(100_000, &mut out);
        assert_eq!(out, [2; 4], "the parked bytes were overwritten in order");
    }

    #[test]
    fn wraps_and_reads_back() {
        let mut r = Ring::new(8);
        assert_eq!(r.push(b"abcdef"), 6);
        r.consume(4);
        assert_eq!(r.push(b"ghijkl"), 6);
        assert_eq!(r.push(b"zz"), 0, "full ring takes nothing");
        let mut out = [0u8; 8];
        assert_eq!(r.copy_out(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        let (a, b) = r.slices(1, 6);
        assert_eq!([a, b].concat(), b"fghijk");
    }

    #[test]
    fn parked_bytes_survive_draining() {
        let mut r = Ring::new(8);
        r.push(b"abc");
        r.write_at(5, b"Z");
        r.consume(3);
        r.write_at(0, b"de");
        r.commit(3);
        let mut out = [0u8; 3];
        r.copy_out(0, &mut out);
        assert_eq!(&out, b"deZ");
    }

    #[test]
    fn growing_keeps_committed_and_parked_bytes_in_place() {
        let mut r = Ring::new(8);
        r.push(b"abcdef");
        r.consume(5); // "f" at physical 5
        r.push(b"gh"); // physical 6, 7
        r.write_at(4, b"Z"); // parked at logical 4: physical 1, wrapped
        r.grow(32);
        assert_eq!(r.capacity(), 32);
        r.write_at(3, b"Y"); // the gap before the parked byte
        r.commit(2);
        let mut out = [0u8; 5];
        assert_eq!(r.copy_out(0, &mut out), 5);
        assert_eq!(&out, b"fghYZ");
        assert_eq!(r.push(&[b'x'; 27]), 27, "all the new room is usable");
    }

    #[test]
    fn write_past_end_then_commit() {
        let mut r = Ring::new(8);
        r.push(b"ab");
        r.consume(1);
        assert_eq!(r.write_at(3, b"XYZ"), 3);
        assert_eq!(r.write_at(1, b"cd"), 2);
        r.commit(5);
        let mut out = [0u8; 6];
        assert_eq!(r.copy_out(0, &mut out), 6);
        assert_eq!(&out, b"bcdXYZ");
        assert_eq!(
            r.write_at(8, b"q"),
            0,
            "offset past capacity writes nothing"
        );
    }
}
