//! Received frames the stack may keep instead of copying.
//!
//! A device lends each received frame to the stack for the length of a
//! callback (`Device::receive_lent`). In-order TCP payload could be copied
//! into the connection's receive ring there, as it always was, or the
//! stack can *keep* the frame: it then stays where it arrived (UMEM, for
//! AF_XDP) until the application has read it, and goes back to the
//! device when the last byte is consumed. That saves a copy of every
//! payload byte on the bulk path.
//!
//! Frames come from a [`FramePool`]: memory split into equal frames, with
//! a queue on which kept frames come home. The pool caps how many frames
//! are kept at once (its budget), so a slow reader cannot take the frames
//! the device needs to go on receiving (the AF_XDP fill ring): past the
//! budget, `keep` says no and the stack copies, as before.

use crossbeam::queue::ArrayQueue;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Receive memory split into frames, some of which the stack may keep.
pub struct FramePool {
    base: *mut u8,
    len: usize,
    /// Kept frames come home here (their base addresses) when dropped;
    /// the device takes them back on its next receive.
    returned: ArrayQueue<u64>,
    /// Frames kept and not yet taken back by the device.
    kept: AtomicUsize,
    budget: usize,
    /// What owns the memory (a UMEM mapping, a boxed slice); freed when
    /// the device and every kept frame are gone.
    _owner: Box<dyn Send + Sync>,
}

// SAFETY: the memory behind `base` is owned by `_owner` for the pool's
// whole life; each frame is used by one party at a time (the device until
// it lends the frame, then the one `Kept` that owns it until it comes
// home), so sharing the pool between threads shares no frame.
unsafe impl Send for FramePool {}
// SAFETY: as above; the shared state is an atomic and a lock-free queue.
unsafe impl Sync for FramePool {}

impl FramePool {
    /// A pool over `len` bytes at `base`, owned by `owner`, of `frames`
    /// frames of which at most `budget` may be kept at once.
    ///
    /// # Safety
    /// `base..base + len` must be valid for reads and writes for as long as
    /// `owner` lives, and nothing else may free it.
    pub unsafe fn over(
        base: *mut u8,
        len: usize,
        frames: usize,
        budget: usize,
        owner: Box<dyn Send + Sync>,
    ) -> Arc<FramePool> {
        Arc::new(FramePool {
            base,
            len,
            returned: ArrayQueue::new(frames.max(1)),
            kept: AtomicUsize::new(0),
            budget,
            _owner: owner,
        })
    }

    /// A pool of `frames` heap frames of `frame_size` bytes (the
    /// simulator's and the benches' stand-in for a UMEM).
    pub fn heap(frames: usize, frame_size: usize, budget: usize) -> Arc<FramePool> {
        let mut mem = vec![0u8; frames * frame_size].into_boxed_slice();
        let (base, len) = (mem.as_mut_ptr(), mem.len());
        // SAFETY: the boxed slice is the memory and moves into the pool as
        // its owner (moving a Box does not move its heap allocation).
        unsafe { FramePool::over(base, len, frames, budget, Box::new(mem)) }
    }

    /// Frames kept by the stack right now (gone from the device).
    pub fn kept(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// The most frames that may be kept at once.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Takes back the frames that came home since the last call.
    pub fn take_returned(&self, mut f: impl FnMut(u64)) {
        // Nothing kept, nothing to come home: one load instead of the
        // queue's, on every receive call.
        if self.kept.load(Ordering::Relaxed) == 0 {
            return;
        }
        while let Some(addr) = self.returned.pop() {
            self.kept.fetch_sub(1, Ordering::Relaxed);
            f(addr);
        }
    }

    /// The frame bytes `[addr, addr + len)`.
    ///
    /// # Safety
    /// The frame must be the caller's (not kept, not the kernel's) for
    /// as long as the slice lives.
    // A frame is writable by whoever owns it, not by whoever owns the
    // pool: that is this function's contract, hence `&self`.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, addr: u64, len: usize) -> &mut [u8] {
        assert!(addr as usize + len <= self.len, "frame outside the pool");
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(addr as usize), len) }
    }
}

/// A received frame, lent for the length of the receive callback.
pub struct RxFrame<'a> {
    bytes: &'a [u8],
    /// The pool and the frame's base address, when it may be kept.
    home: Option<(&'a Arc<FramePool>, u64)>,
    kept: Cell<bool>,
}

impl<'a> RxFrame<'a> {
    /// A frame that cannot be kept (copied out of a pool, assembled from
    /// pieces, or from a device without one).
    pub fn copied(bytes: &'a [u8]) -> Self {
        RxFrame {
            bytes,
            home: None,
            kept: Cell::new(false),
        }
    }

    /// A frame of `pool` starting at `base` (its frame's address), which
    /// the stack may keep. `bytes` must lie in the pool's memory.
    pub fn in_pool(bytes: &'a [u8], pool: &'a Arc<FramePool>, base: u64) -> Self {
        let start = (bytes.as_ptr() as usize).wrapping_sub(pool.base as usize);
        assert!(
            start <= pool.len && bytes.len() <= pool.len - start,
            "a pool frame outside the pool"
        );
        RxFrame {
            bytes,
            home: Some((pool, base)),
            kept: Cell::new(false),
        }
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// True once `keep` handed the frame out: the device must not reuse it.
    pub fn was_kept(&self) -> bool {
        self.kept.get()
    }

    /// Keeps the frame, as `part` of it (a subslice of `bytes`: the
    /// payload). `None` when it cannot be kept: not a pool frame, already
    /// kept, `part` not inside it, or the pool's budget spent.
    pub fn keep(&self, part: &[u8]) -> Option<Kept> {
        let (pool, addr) = self.home?;
        let start = (part.as_ptr() as usize).checked_sub(self.bytes.as_ptr() as usize)?;
        if self.kept.get() || start + part.len() > self.bytes.len() {
            return None;
        }
        // Only this core's stack keeps frames of its pool, so load-then-add
        // does not race with another keeper; the device's decrements only
        // make room.
        if pool.kept.load(Ordering::Relaxed) >= pool.budget {
            return None;
        }
        pool.kept.fetch_add(1, Ordering::Relaxed);
        self.kept.set(true);
        Some(Kept {
            ptr: part.as_ptr(),
            len: part.len(),
            addr,
            pool: pool.clone(),
        })
    }
}

impl std::fmt::Debug for RxFrame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RxFrame({} bytes, keepable: {})",
            self.bytes.len(),
            self.home.is_some()
        )
    }
}

/// Two lendings are the same frame when they show the same bytes.
impl PartialEq for RxFrame<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.bytes, other.bytes)
    }
}
impl Eq for RxFrame<'_> {}

/// Part of a frame kept past its receive callback; goes home when dropped.
pub struct Kept {
    ptr: *const u8,
    len: usize,
    addr: u64,
    pool: Arc<FramePool>,
}

// SAFETY: the bytes belong to this `Kept` alone until it is dropped (the
// device does not reuse a kept frame before it comes home), and the `Arc`
// keeps the memory mapped; moving it to another thread moves that
// ownership.
unsafe impl Send for Kept {}

impl std::ops::Deref for Kept {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` lies in a frame of `pool` (checked by
        // `RxFrame::keep`) that nobody writes while we own it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        // The queue holds every frame of the pool, so it cannot be full.
        let _ = self.pool.returned.push(self.addr);
    }
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kept({} bytes of frame {:#x})", self.len, self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_frame_comes_home_when_dropped_and_the_budget_holds() {
        let pool = FramePool::heap(8, 64, 2);
        let frames: Vec<_> = (0..3u64)
            .map(|i| {
                // SAFETY: frames 0..3 are this test's, each taken once.
                let bytes = unsafe { pool.bytes_mut(i * 64, 64) };
                RxFrame::in_pool(bytes, &pool, i * 64)
            })
            .collect();
        let a = frames[0].keep(&frames[0].bytes()[10..20]).expect("kept");
        assert_eq!(a.len(), 10);
        assert!(frames[0].keep(frames[0].bytes()).is_none(), "kept twice");
        let _b = frames[1]
            .keep(frames[1].bytes())
            .expect("second within budget");
        assert!(frames[2].keep(frames[2].bytes()).is_none(), "past budget");
        assert!(!frames[2].was_kept());
        assert_eq!(pool.kept(), 2);
        drop(a);
        let mut home = Vec::new();
        pool.take_returned(|addr| home.push(addr));
        assert_eq!(home, vec![0]);
        assert_eq!(pool.kept(), 1);
    }

    #[test]
    fn a_part_outside_the_frame_or_a_copied_frame_is_not_kept() {
        let pool = FramePool::heap(2, 64, 2);
        // SAFETY: frame 0 is this test's.
        let bytes = unsafe { pool.bytes_mut(0, 64) };
        let other = [0u8; 8];
        let f = RxFrame::in_pool(bytes, &pool, 0);
        assert!(f.keep(&other).is_none());
        let k = f.keep(&f.bytes()[60..]);
        assert_eq!(k.as_deref(), Some(&[0u8; 4][..]), "a part inside is kept");
        let elsewhere = [0u8; 64];
        assert!(RxFrame::copied(&elsewhere).keep(&elsewhere).is_none());
        assert_eq!(pool.kept(), 1);
    }
}
