//! An in-memory Ethernet link between two stack instances, with a virtual
//! clock and impairments drawn from a seeded generator: the same seed gives
//! the same run, frame for frame.
//!
//! Each direction is a pipe: a frame sent at `now` waits for the line to be
//! free (bandwidth limit, bounded queue with tail drop), then travels for
//! `delay` plus jitter; on the way it may be lost, corrupted, duplicated or
//! held back (reordering). Frames are delivered in order of arrival time.

use super::rng::SimRng;
use super::{Device, FramePool, RxFrame};
use crate::time::Instant;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Frames of a port's receive pool (its stand-in for a UMEM), and how many
/// the stack may keep at once.
const POOL_FRAMES: usize = 512;
const POOL_KEEP: usize = POOL_FRAMES / 2;

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability that one bit of a frame is flipped.
    pub corrupt: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from [0, jitter).
    pub jitter: Duration,
    /// Line rate in bits per second; `None` is infinitely fast.
    pub bandwidth_bps: Option<u64>,
    /// Bytes that may wait for the line before new frames are tail-dropped.
    pub queue_bytes: usize,
    /// IP MTU carried.
    pub mtu: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1),
            corrupt: 0.0,
            delay: Duration::from_micros(500),
            jitter: Duration::ZERO,
            bandwidth_bps: None,
            queue_bytes: 1 << 20,
            mtu: 1500,
        }
    }
}

/// What one direction of the link did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipeStats {
    pub frames_sent: u64,
    pub frames_delivered: u64,
    pub frames_lost: u64,
    pub bytes_lost: u64,
    pub frames_queue_dropped: u64,
    pub bytes_queue_dropped: u64,
    pub frames_duplicated: u64,
    pub frames_reordered: u64,
    pub frames_corrupted: u64,
}

impl PipeStats {
    /// Bytes the link threw away, by loss or by a full queue.
    pub fn dropped_bytes(&self) -> u64 {
        self.bytes_lost + self.bytes_queue_dropped
    }

    /// Frames the link threw away, by loss or by a full queue.
    pub fn dropped_frames(&self) -> u64 {
        self.frames_lost + self.frames_queue_dropped
    }
}

struct Pipe {
    /// (arrival time, tie-breaker, frame), earliest first.
    in_flight: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    line_free_at: Instant,
    order: u64,
    stats: PipeStats,
}

struct Shared {
    cfg: LinkConfig,
    rng: SimRng,
    pipes: [Pipe; 2],
    /// Recycled frame buffers, so steady state allocates nothing.
    pool: Vec<Vec<u8>>,
    /// When set, every frame is dropped (a peer that vanished).
    cut: bool,
}

impl Shared {
    fn send(&mut self, dir: usize, now: Instant, frame: Vec<u8>) {
        let cfg = &self.cfg;
        let pipe = &mut self.pipes[dir];
        pipe.stats.frames_sent += 1;
        let len = frame.len() as u64;
        if self.cut || self.rng.chance(cfg.loss) {
            pipe.stats.frames_lost += 1;
            pipe.stats.bytes_lost += len;
            self.pool.push(frame);
            return;
        }
        // Serialisation onto the line, behind whatever is queued.
        let start = pipe.line_free_at.max(now);
        let backlog = start - now;
        let depart = match cfg.bandwidth_bps {
            Some(bps) => {
                let queued_bytes = backlog.as_nanos() as u64 * bps / 8 / 1_000_000_000;
                if queued_bytes as usize > cfg.queue_bytes {
                    pipe.stats.frames_queue_dropped += 1;
                    pipe.stats.bytes_queue_dropped += len;
                    self.pool.push(frame);
                    return;
                }
                let tx = Duration::from_nanos((len + 24) * 8 * 1_000_000_000 / bps); // + preamble, FCS, IFG
                pipe.line_free_at = start + tx;
                start + tx
            }
            None => now,
        };
        let mut arrive = depart + cfg.delay;
        if !cfg.jitter.is_zero() {
            arrive += Duration::from_nanos(self.rng.below(cfg.jitter.as_nanos() as u64));
        }
        if self.rng.chance(cfg.reorder) {
            pipe.stats.frames_reordered += 1;
            arrive += cfg.reorder_delay;
        }
        let mut frame = frame;
        if self.rng.chance(cfg.corrupt) && !frame.is_empty() {
            pipe.stats.frames_corrupted += 1;
            let bit = self.rng.below(frame.len() as u64 * 8);
            frame[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        if self.rng.chance(cfg.duplicate) {
            pipe.stats.frames_duplicated += 1;
            let mut copy = self.pool.pop().unwrap_or_default();
            copy.clear();
            copy.extend_from_slice(&frame);
            pipe.order += 1;
            pipe.in_flight.push(Reverse((
                arrive + Duration::from_micros(1),
                pipe.order,
                copy,
            )));
        }
        pipe.order += 1;
        pipe.in_flight.push(Reverse((arrive, pipe.order, frame)));
    }
}

/// Creates a link; the two ports are its ends.
pub fn link(cfg: LinkConfig, seed: u64) -> (SimPort, SimPort) {
    let pipe = || Pipe {
        in_flight: BinaryHeap::new(),
        line_free_at: Instant::ZERO,
        order: 0,
        stats: PipeStats::default(),
    };
    let shared = Rc::new(RefCell::new(Shared {
        cfg,
        rng: SimRng::new(seed),
        pipes: [pipe(), pipe()],
        pool: Vec::new(),
        cut: false,
    }));
    (
        SimPort {
            shared: shared.clone(),
            dir: 0,
            frames: None,
        },
        SimPort {
            shared,
            dir: 1,
            frames: None,
        },
    )
}

/// One end of a simulated link. Port `dir` sends on pipe `dir` and
/// receives from the other.
pub struct SimPort {
    shared: Rc<RefCell<Shared>>,
    dir: usize,
    /// Received frames are copied into this pool's frames so the stack can
    /// keep them, as it keeps AF_XDP's (made on first use).
    frames: Option<PortPool>,
}

struct PortPool {
    pool: Arc<FramePool>,
    frame_size: usize,
    free: Vec<u64>,
}

impl SimPort {
    /// Frames the stack keeps right now (payload not yet read).
    pub fn kept_frames(&self) -> usize {
        self.frames.as_ref().map_or(0, |p| p.pool.kept())
    }

    /// The most frames the stack may keep at once.
    pub fn keep_budget(&self) -> usize {
        POOL_KEEP
    }

    /// The next frame due by `now`.
    fn next_frame(&self, now: Instant) -> Option<Vec<u8>> {
        let mut s = self.shared.borrow_mut();
        let pipe = &mut s.pipes[1 - self.dir];
        match pipe.in_flight.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {}
            _ => return None,
        }
        let Reverse((_, _, frame)) = pipe.in_flight.pop().expect("peeked");
        pipe.stats.frames_delivered += 1;
        Some(frame)
    }

    /// Statistics of the frames this port sent.
    pub fn tx_stats(&self) -> PipeStats {
        self.shared.borrow().pipes[self.dir].stats.clone()
    }

    /// Drops every frame from now on, in both directions (or restores).
    pub fn set_cut(&self, cut: bool) {
        self.shared.borrow_mut().cut = cut;
    }

    /// Replaces the impairments from now on (both directions).
    pub fn set_config(&self, cfg: LinkConfig) {
        self.shared.borrow_mut().cfg = cfg;
    }
}

impl Device for SimPort {
    fn mtu(&self) -> usize {
        self.shared.borrow().cfg.mtu
    }

    fn receive(&mut self, now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(frame) = self.next_frame(now) else {
                break;
            };
            rx(&frame);
            self.shared.borrow_mut().pool.push(frame);
            n += 1;
        }
        n
    }

    fn receive_lent(
        &mut self,
        now: Instant,
        budget: usize,
        rx: &mut dyn FnMut(&RxFrame<'_>),
    ) -> usize {
        let frame_size = self.mtu() + 14;
        let p = self.frames.get_or_insert_with(|| PortPool {
            pool: FramePool::heap(POOL_FRAMES, frame_size, POOL_KEEP),
            frame_size,
            free: (0..POOL_FRAMES as u64)
                .map(|i| i * frame_size as u64)
                .collect(),
        });
        let free = &mut p.free;
        p.pool.take_returned(|addr| free.push(addr));
        let mut n = 0;
        while n < budget {
            let Some(frame) = self.next_frame(now) else {
                break;
            };
            let p = self.frames.as_mut().expect("made above");
            match p.free.pop() {
                Some(addr) if frame.len() <= p.frame_size => {
                    // SAFETY: a frame from our free list: not kept, ours.
                    let bytes = unsafe { p.pool.bytes_mut(addr, frame.len()) };
                    bytes.copy_from_slice(&frame);
                    let lent = RxFrame::in_pool(bytes, &p.pool, addr);
                    rx(&lent);
                    if !lent.was_kept() {
                        p.free.push(addr);
                    }
                }
                other => {
                    p.free.extend(other);
                    rx(&RxFrame::copied(&frame));
                }
            }
            self.shared.borrow_mut().pool.push(frame);
            n += 1;
        }
        n
    }

    fn transmit(
        &mut self,
        now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        let size = self.mtu() + 14;
        let mut n = 0;
        while n < budget {
            // A used buffer keeps its old bytes, as a UMEM frame does: the
            // stack must write every byte it sends (and zeroing a whole
            // frame on every call, the last one of a poll finding nothing
            // to send, was most of the simulator's own work).
            let mut buf = self.shared.borrow_mut().pool.pop().unwrap_or_default();
            buf.resize(size, 0);
            match tx(&mut buf) {
                Some(len) => {
                    buf.truncate(len);
                    self.shared.borrow_mut().send(self.dir, now, buf);
                    n += 1;
                }
                None => {
                    self.shared.borrow_mut().pool.push(buf);
                    break;
                }
            }
        }
        n
    }

    fn next_arrival(&self) -> Option<Instant> {
        let s = self.shared.borrow();
        s.pipes[1 - self.dir]
            .in_flight
            .peek()
            .map(|Reverse((at, _, _))| *at)
    }
}
