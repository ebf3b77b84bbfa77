//! The send buffer: bytes queued or in flight, until acknowledged.
//!
//! Bytes the application lends as a slice are copied into a ring
//! ([`super::ring`]). Bytes it hands over as an owned chunk (`push_owned`)
//! stay in that chunk: the only copy they see on their way out is into
//! the device's frame, where the checksum is summed in the same pass. The
//! chunk goes back to the application (`reclaim`) once every byte of it is
//! acknowledged, so a sender that recycles its chunks allocates nothing.
//!
//! Most connections only copy: then `pieces` is empty, all bytes are in
//! the ring and each operation is the ring's. Once a chunk is owned,
//! `pieces` lists the runs of bytes in order, each in the ring or in a
//! chunk; the ring holds the copied runs one after another.

use super::ring::Ring;
use std::collections::VecDeque;

/// Owned chunks shorter than this are copied instead (and given back at
/// once): a segment should span a few parts, not one per tiny chunk.
pub const MIN_OWNED: usize = 2048;

/// A run of buffered bytes; it begins where the one before it ends (the
/// first where the buffer begins). Positions count bytes since the
/// connection's first (`u64`: they never wrap).
struct Piece {
    /// Position just past its last byte.
    end: u64,
    bytes: Bytes,
}

enum Bytes {
    /// In the ring, ending at this position of the ring's own count.
    Ring { ring_end: u64 },
    /// The tail of an application's chunk (its front is acknowledged).
    Owned(Vec<u8>),
}

pub struct SendBuffer {
    ring: Ring,
    /// Empty while every byte is in the ring (the common case).
    pieces: VecDeque<Piece>,
    /// Position of the first byte held (the oldest unacknowledged).
    front: u64,
    /// Bytes ever taken out of the ring.
    ring_front: u64,
    len: usize,
    capacity: usize,
    /// Chunks done with, for the application to take back.
    released: Vec<Vec<u8>>,
}

impl SendBuffer {
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            ring: Ring::new(capacity),
            pieces: VecDeque::new(),
            front: 0,
            ring_front: 0,
            len: 0,
            capacity,
            released: Vec::new(),
        }
    }

    #[inline]
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

    /// Grows the capacity (buffer autotuning).
    pub fn grow(&mut self, capacity: usize) {
        self.capacity = self.capacity.max(capacity);
        self.ring.grow(self.capacity);
    }

    /// Copies as much of `data` as fits; returns the count.
    #[inline]
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = self.ring.push(&data[..data.len().min(self.free())]);
        if n > 0 && !self.pieces.is_empty() {
            let end = self.end() + n as u64;
            let ring_end = self.ring_front + self.ring.len() as u64;
            match self.pieces.back_mut() {
                Some(Piece {
                    end: e,
                    bytes: Bytes::Ring { ring_end: r },
                }) => (*e, *r) = (end, ring_end),
                _ => self.pieces.push_back(Piece {
                    end,
                    bytes: Bytes::Ring { ring_end },
                }),
            }
        }
        self.len += n;
        n
    }

    /// Takes the whole of `chunk` without copying it, or gives it back
    /// when it does not fit. A short chunk is copied and queued for
    /// `reclaim` at once.
    pub fn push_owned(&mut self, chunk: Vec<u8>) -> Result<(), Vec<u8>> {
        if chunk.len() > self.free() {
            return Err(chunk);
        }
        if chunk.len() < MIN_OWNED {
            self.push(&chunk);
            self.released.push(chunk);
            return Ok(());
        }
        if self.pieces.is_empty() && !self.ring.is_empty() {
            // The ring's bytes become the first run.
            self.pieces.push_back(Piece {
                end: self.end(),
                bytes: Bytes::Ring {
                    ring_end: self.ring_front + self.ring.len() as u64,
                },
            });
        }
        self.len += chunk.len();
        self.pieces.push_back(Piece {
            end: self.end(),
            bytes: Bytes::Owned(chunk),
        });
        Ok(())
    }

    /// Drops `n` acknowledged bytes from the front; chunks wholly
    /// acknowledged go to `reclaim`.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len, "consume past the buffered bytes");
        self.len -= n;
        let front = self.front + n as u64;
        if self.pieces.is_empty() {
            self.take_from_ring(n);
        }
        while let Some(p) = self.pieces.front() {
            // `self.front` walks run by run up to `front`.
            let cut = (p.end.min(front) - self.front) as usize;
            let whole = p.end <= front;
            if matches!(p.bytes, Bytes::Ring { .. }) {
                self.take_from_ring(cut);
            }
            self.front += cut as u64;
            if !whole {
                break;
            }
            if let Some(Piece {
                bytes: Bytes::Owned(v),
                ..
            }) = self.pieces.pop_front()
            {
                self.released.push(v);
            }
        }
        self.front = front;
        if self.pieces.len() == 1 && matches!(self.pieces[0].bytes, Bytes::Ring { .. }) {
            // All that is left is in the ring: back to the plain case.
            self.pieces.clear();
        }
    }

    fn take_from_ring(&mut self, n: usize) {
        self.ring.consume(n);
        self.ring_front += n as u64;
    }

    /// The bytes `[offset, offset + len)`, counted from the front, as the
    /// parts of the buffer they lie in.
    #[inline]
    pub fn parts(&self, offset: usize, len: usize) -> Payload<'_> {
        assert!(offset + len <= self.len, "parts past the buffered bytes");
        if self.pieces.is_empty() {
            let (a, b) = self.ring.slices(offset, len);
            return Payload {
                buf: self,
                piece: usize::MAX,
                at: 0,
                left: 0,
                len,
                next: a,
                after: b,
            };
        }
        let at = self.front + offset as u64;
        let piece = self.pieces.partition_point(|p| p.end <= at);
        Payload {
            buf: self,
            piece,
            at,
            left: len,
            len,
            next: &[],
            after: &[],
        }
    }

    /// The next chunk done with, if any: the application's to reuse.
    pub fn reclaim(&mut self) -> Option<Vec<u8>> {
        self.released.pop()
    }

    /// Lets go of every byte (an aborted or closed connection): memory is
    /// freed, owned chunks go to `reclaim`, and nothing more fits.
    pub fn shed(&mut self) {
        for p in self.pieces.drain(..) {
            if let Bytes::Owned(v) = p.bytes {
                self.released.push(v);
            }
        }
        self.front += self.len as u64;
        self.ring = Ring::new(0);
        self.ring_front = 0;
        self.len = 0;
        self.capacity = 0;
    }

    /// Position just past the last byte.
    fn end(&self) -> u64 {
        self.front + self.len as u64
    }

    /// The bytes of run `i` from position `at`, at most `most` of them, as
    /// up to two slices (a ring run may wrap).
    #[inline(never)]
    fn run_slices(&self, i: usize, at: u64, most: usize) -> (&[u8], &[u8]) {
        let p = &self.pieces[i];
        let n = ((p.end - at) as usize).min(most);
        match &p.bytes {
            Bytes::Owned(v) => {
                let from = v.len() - (p.end - at) as usize;
                (&v[from..from + n], &[])
            }
            Bytes::Ring { ring_end } => {
                let ring_at = ring_end - (p.end - at) - self.ring_front;
                self.ring.slices(ring_at as usize, n)
            }
        }
    }
}

/// One segment's payload: the slices of the send buffer it spans, in
/// order (two at most while every byte is in the ring).
#[derive(Clone)]
pub struct Payload<'a> {
    buf: &'a SendBuffer,
    /// The run the next slice comes from (unused in the ring-only case).
    piece: usize,
    /// Its position.
    at: u64,
    /// Bytes not yet handed out past `next` and `after`.
    left: usize,
    len: usize,
    next: &'a [u8],
    after: &'a [u8],
}

impl Payload<'_> {
    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<'a> Iterator for Payload<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.next.is_empty() {
            if !self.after.is_empty() {
                return Some(std::mem::take(&mut self.after));
            }
            if self.left == 0 {
                return None;
            }
            let (a, b) = self.buf.run_slices(self.piece, self.at, self.left);
            let n = a.len() + b.len();
            self.left -= n;
            self.at += n as u64;
            self.piece += 1;
            (self.next, self.after) = (a, b);
        }
        Some(std::mem::take(&mut self.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(b: &SendBuffer, offset: usize, len: usize) -> Vec<u8> {
        let p = b.parts(offset, len);
        assert_eq!(p.len(), len);
        p.flat_map(|s| s.iter().copied()).collect()
    }

    fn chunk(tag: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn owned_chunks_and_copies_read_back_in_order() {
        let mut b = SendBuffer::new(1 << 20);
        let mut want = Vec::new();
        assert_eq!(b.push(b"head"), 4);
        want.extend_from_slice(b"head");
        let c = chunk(1, 5000);
        want.extend_from_slice(&c);
        b.push_owned(c).expect("fits");
        b.push(b"middle");
        want.extend_from_slice(b"middle");
        let d = chunk(7, 3000);
        want.extend_from_slice(&d);
        b.push_owned(d).expect("fits");
        assert_eq!(b.len(), want.len());
        assert_eq!(collect(&b, 0, want.len()), want);
        // Any window, across every boundary.
        for (off, len) in [(2, 10), (3, 5001), (5004, 6), (5005, 3000), (100, 7000)] {
            assert_eq!(collect(&b, off, len), want[off..off + len], "{off}+{len}");
        }
        // Acknowledging part of a chunk keeps it; all of it gives it back.
        b.consume(1000);
        assert!(b.reclaim().is_none());
        assert_eq!(collect(&b, 0, 10), want[1000..1010]);
        b.consume(4010);
        let back = b.reclaim().expect("the first chunk is done with");
        assert_eq!(back, chunk(1, 5000), "given back whole");
        assert_eq!(collect(&b, 0, b.len()), want[5010..]);
        b.consume(b.len());
        assert_eq!(b.reclaim().map(|v| v.len()), Some(3000));
        assert!(b.is_empty() && b.pieces.is_empty(), "back to the ring only");
    }

    #[test]
    fn a_chunk_that_does_not_fit_comes_back_and_a_short_one_is_copied() {
        let mut b = SendBuffer::new(4096);
        b.push(&[0u8; 1000]);
        let big = chunk(3, 3500);
        let back = b.push_owned(big.clone()).expect_err("3,500 > 3,096 free");
        assert_eq!(back, big);
        assert_eq!(b.len(), 1000);
        b.push_owned(vec![9u8; 100]).expect("fits");
        assert!(b.pieces.is_empty(), "copied, not owned");
        assert_eq!(b.reclaim(), Some(vec![9u8; 100]), "given back at once");
        assert_eq!(collect(&b, 1000, 100), vec![9u8; 100]);
    }

    #[test]
    fn the_ring_wraps_between_chunks() {
        let mut b = SendBuffer::new(16 * 1024);
        let mut want: Vec<u8> = Vec::new();
        let mut next = 0u8;
        // Copies and chunks in turn, acknowledged as they go: the ring's
        // runs wrap while chunks sit between them.
        for round in 0..40 {
            let copy = chunk(next, 700 + round * 13);
            next = next.wrapping_add(31);
            assert_eq!(b.push(&copy), copy.len());
            want.extend_from_slice(&copy);
            let c = chunk(next, MIN_OWNED + round * 17);
            next = next.wrapping_add(17);
            want.extend_from_slice(&c);
            b.push_owned(c).expect("room kept");
            assert_eq!(collect(&b, 0, b.len()), want);
            let ack = b.len() / 2 + 1;
            b.consume(ack);
            want.drain(..ack);
            while b.reclaim().is_some() {}
        }
        assert_eq!(collect(&b, 0, b.len()), want);
    }

    #[test]
    fn shedding_gives_every_chunk_back() {
        let mut b = SendBuffer::new(1 << 16);
        b.push_owned(chunk(0, 4000)).expect("fits");
        b.push(b"x");
        b.push_owned(chunk(5, 5000)).expect("fits");
        b.shed();
        assert_eq!((b.len(), b.capacity()), (0, 0));
        let mut lens: Vec<usize> = std::iter::from_fn(|| b.reclaim())
            .map(|v| v.len())
            .collect();
        lens.sort();
        assert_eq!(lens, [4000, 5000]);
    }
}
