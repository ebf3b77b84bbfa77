//! The receive buffer: in-order bytes the application has not read yet,
//! and out-of-order bytes parked beyond them.
//!
//! Bytes live in one of two places, in stream order: first frames the
//! device lent and the connection *kept* (in-order payload left where it
//! arrived, `device/lend.rs`: no copy), then the ring (copied payload, and
//! out-of-order bytes parked past its end, see [`super::assembler`]). A
//! frame is kept only while the ring is empty, so kept frames always come
//! first and offsets stay simple: logical offset `o` is ring offset
//! `o - held`. When the device's budget of kept frames is spent, or data
//! arrives out of order, payload is copied into the ring as before.
//!
//! Kept bytes count against the window like any other: `free` is what the
//! ring could still take after them.

use super::ring::Ring;
use crate::device::Kept;
use std::collections::VecDeque;

pub struct RecvBuffer {
    ring: Ring,
    /// Kept frames' payload, in order; the first partly read by `front`.
    held: VecDeque<Kept>,
    front: usize,
    /// Unread bytes in `held`.
    held_len: usize,
}

impl RecvBuffer {
    pub fn new(capacity: usize) -> Self {
        RecvBuffer {
            ring: Ring::new(capacity),
            held: VecDeque::new(),
            front: 0,
            held_len: 0,
        }
    }

    /// Unread in-order bytes.
    pub fn len(&self) -> usize {
        self.held_len + self.ring.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
    /// Room for more in-order or parked bytes (the receive window).
    pub fn free(&self) -> usize {
        self.ring.free().saturating_sub(self.held_len)
    }
    /// Frames kept right now.
    pub fn held_frames(&self) -> usize {
        self.held.len()
    }

    pub fn grow(&mut self, capacity: usize) {
        self.ring.grow(capacity);
    }

    /// True when in-order payload may be kept in its frame instead of
    /// copied: nothing in the ring, committed or parked (`parked` says
    /// whether out-of-order bytes wait there).
    pub fn may_hold(&self, parked: bool) -> bool {
        self.ring.is_empty() && !parked
    }

    /// Appends a kept frame's payload (in order, after every unread byte;
    /// the caller checked `may_hold` and the window).
    pub fn hold(&mut self, kept: Kept) {
        debug_assert!(self.ring.is_empty() && kept.len() <= self.free());
        self.held_len += kept.len();
        self.held.push_back(kept);
    }

    /// Copies `data` to logical `offset` (from the read position), past
    /// the committed end if need be. Returns how many bytes fit.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        debug_assert!(offset >= self.held_len, "writing over kept bytes");
        self.ring.write_at(offset - self.held_len, data)
    }

    /// Marks `n` bytes written past the end as in order.
    pub fn commit(&mut self, n: usize) {
        self.ring.commit(n);
    }

    /// Appends as much of `data` as fits; returns the count.
    pub fn push(&mut self, data: &[u8]) -> usize {
        self.ring.push(data)
    }

    /// The unread bytes in order, in place: a part per kept frame, then up
    /// to two from the ring.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let front = self.front;
        let (a, b) = self.ring.slices(0, self.ring.len());
        self.held
            .iter()
            .enumerate()
            .map(move |(i, k)| if i == 0 { &k[front..] } else { &k[..] })
            .chain([a, b])
            .filter(|p| !p.is_empty())
    }

    /// Copies unread bytes into `out`; returns the count.
    pub fn copy_out(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        let mut skip = self.front;
        for k in &self.held {
            let p = &k[skip..];
            skip = 0;
            let m = p.len().min(out.len() - n);
            out[n..n + m].copy_from_slice(&p[..m]);
            n += m;
            if n == out.len() {
                return n;
            }
        }
        n + self.ring.copy_out(0, &mut out[n..])
    }

    /// Drops `n` bytes from the front; kept frames wholly read go home.
    pub fn consume(&mut self, mut n: usize) {
        assert!(n <= self.len(), "consume past unread data");
        while n > 0 && !self.held.is_empty() {
            let left = self.held[0].len() - self.front;
            let k = n.min(left);
            n -= k;
            self.held_len -= k;
            if k == left {
                self.held.pop_front();
                self.front = 0;
            } else {
                self.front += k;
            }
        }
        self.ring.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{FramePool, RxFrame};

    /// Keeps `data` as a frame of `pool` at frame `i`.
    fn kept(pool: &std::sync::Arc<FramePool>, i: u64, data: &[u8]) -> Kept {
        // SAFETY: each test uses each frame once.
        let bytes = unsafe { pool.bytes_mut(i * 64, data.len()) };
        bytes.copy_from_slice(data);
        RxFrame::in_pool(bytes, pool, i * 64)
            .keep(bytes)
            .expect("within budget")
    }

    fn read_all(b: &RecvBuffer) -> Vec<u8> {
        b.parts().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn kept_frames_come_first_and_go_home_once_read() {
        let pool = FramePool::heap(8, 64, 8);
        let mut b = RecvBuffer::new(32);
        assert!(b.may_hold(false));
        b.hold(kept(&pool, 0, b"abc"));
        b.hold(kept(&pool, 1, b"defg"));
        assert_eq!((b.len(), b.free()), (7, 25));
        assert!(!b.may_hold(true), "not past parked bytes");
        // Out of order: "jk" at logical 9 (a hole at 7..9), then the hole.
        assert_eq!(b.write_at(9, b"jk"), 2);
        assert!(b.may_hold(false), "parked bytes are the caller's to say");
        assert_eq!(b.write_at(7, b"hi"), 2);
        b.commit(4);
        assert!(!b.may_hold(false), "the ring has bytes: copy after them");
        assert_eq!(read_all(&b), b"abcdefghijk");
        b.consume(2);
        assert_eq!(pool.kept(), 2);
        let mut out = [0u8; 4];
        assert_eq!(b.copy_out(&mut out), 4);
        assert_eq!(&out, b"cdef");
        b.consume(2);
        let mut home = Vec::new();
        pool.take_returned(|a| home.push(a));
        assert_eq!(home, vec![0], "the first frame, wholly read");
        b.consume(6);
        assert_eq!(read_all(&b), b"k");
        pool.take_returned(|a| home.push(a));
        assert_eq!(home, vec![0, 64]);
        assert_eq!(pool.kept(), 0);
        assert_eq!((b.len(), b.free()), (1, 31));
    }
}
