//! A global allocator that counts the heap bytes in use, and the
//! process's resident set: for tests that check what stays allocated.
//! It passes everything to mimalloc, the allocator our programs use.
//! A test binary that includes this module counts all of its threads, so
//! it should hold one such test.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// mimalloc, counting the bytes in use.
struct Counting;

pub static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Allocations made (calls of alloc, alloc_zeroed and realloc), and
/// those of at least `BIG` bytes.
pub static ALLOCS: AtomicUsize = AtomicUsize::new(0);
pub static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);
pub const BIG: usize = 4096;

fn count(size: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    if size >= BIG {
        BIG_ALLOCS.fetch_add(1, Relaxed);
    }
}

// SAFETY: every call is passed to mimalloc unchanged; the
// counter is only arithmetic on the sizes.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        count(l.size());
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        count(l.size());
        unsafe { mimalloc::MiMalloc.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Relaxed);
        count(new);
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
