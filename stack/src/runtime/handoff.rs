//! Hand-off between cores: a device middleware that keeps the frames this
//! core owns and passes the others to their owners through lock-free
//! `crossbeam` queues. A full queue never drops: frames wait in a local
//! backlog (bounded) and are retried on the next loop.
//!
//! Handed-off frames are copied out of the UMEM: each core's UMEM is its
//! own, so a frame cannot cross cores by reference. The copies' buffers
//! come from, and go back to, one pool all cores share, so a core that
//! only ever hands frames on allocates nothing once the pool has enough
//! (each core kept its own spares before, which the one that gave them
//! away never saw again). With a NIC that steers by our hash, or one
//! queue, no frame takes this path.

use super::steer::{classify, Steer};
use crate::device::{Device, RxFrame};
use crate::time::Instant;
use crossbeam::queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Frames a core can have queued towards one other core.
pub const QUEUE_FRAMES: usize = 4096;
/// Frames waiting locally when the owner's queue is full.
const MAX_BACKLOG: usize = 65_536;

pub type Inbox = Arc<ArrayQueue<Vec<u8>>>;
/// Buffers for frames in transit between cores, shared by all of them.
pub type Pool = Arc<ArrayQueue<Vec<u8>>>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// Frames this core received for another core and passed on.
    pub handed_off: u64,
    /// Frames other cores passed to this one.
    pub taken_over: u64,
    /// Frames that found the owner's queue full and waited here.
    pub deferred: u64,
    /// Frames dropped because even the local backlog was full.
    pub dropped: u64,
    /// Buffers allocated because the shared pool had none.
    pub buffers_made: u64,
}

pub struct Steered<D> {
    inner: D,
    me: usize,
    /// One inbox per core, ours included.
    inboxes: Vec<Inbox>,
    backlog: Vec<VecDeque<Vec<u8>>>,
    pool: Pool,
    pub stats: HandoffStats,
}

impl<D: Device> Steered<D> {
    pub fn new(inner: D, me: usize, inboxes: Vec<Inbox>, pool: Pool) -> Self {
        let n = inboxes.len();
        Steered {
            inner,
            me,
            inboxes,
            backlog: (0..n).map(|_| VecDeque::new()).collect(),
            pool,
            stats: HandoffStats::default(),
        }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Frames waiting here for a full queue to drain.
    pub fn backlog_len(&self) -> usize {
        self.backlog.iter().map(VecDeque::len).sum()
    }

    fn flush_backlog(&mut self) {
        for (c, q) in self.backlog.iter_mut().enumerate() {
            while let Some(f) = q.pop_front() {
                if let Err(f) = self.inboxes[c].push(f) {
                    q.push_front(f);
                    break;
                }
            }
        }
    }
}

/// Copies `frame` to core `c`, keeping it locally if `c`'s inbox is full.
fn pass_on(
    frame: &[u8],
    c: usize,
    inboxes: &[Inbox],
    backlog: &mut [VecDeque<Vec<u8>>],
    pool: &Pool,
    stats: &mut HandoffStats,
) {
    let mut buf = pool.pop().unwrap_or_else(|| {
        stats.buffers_made += 1;
        Vec::new()
    });
    buf.clear();
    buf.extend_from_slice(frame);
    stats.handed_off += 1;
    if !backlog[c].is_empty() {
        stats.deferred += 1;
        if backlog[c].len() >= MAX_BACKLOG {
            stats.dropped += 1;
            let _ = pool.push(buf);
            return;
        }
        backlog[c].push_back(buf);
        return;
    }
    if let Err(buf) = inboxes[c].push(buf) {
        stats.deferred += 1;
        backlog[c].push_back(buf);
    }
}

impl<D: Device> Device for Steered<D> {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn receive(&mut self, now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
        self.receive_lent(now, budget, &mut |f| rx(f.bytes()))
    }

    fn receive_lent(
        &mut self,
        now: Instant,
        budget: usize,
        rx: &mut dyn FnMut(&RxFrame<'_>),
    ) -> usize {
        let cores = self.inboxes.len();
        if cores == 1 {
            // Every frame is this core's: no inbox, nothing to pass on.
            return self.inner.receive_lent(now, budget, rx);
        }
        self.flush_backlog();
        let mut n = 0;
        while n < budget {
            let Some(f) = self.inboxes[self.me].pop() else {
                break;
            };
            // A copy from another core's device: read in the callback, then
            // back to the shared pool (kept frames are the device's own).
            rx(&RxFrame::copied(&f));
            self.stats.taken_over += 1;
            // Back for any core to use (dropped if the pool is full).
            let _ = self.pool.push(f);
            n += 1;
        }
        let me = self.me;
        let Steered {
            inner,
            inboxes,
            backlog,
            pool,
            stats,
            ..
        } = self;
        n += inner.receive_lent(
            now,
            budget - n,
            &mut |frame| match classify(frame.bytes(), cores) {
                Steer::Owner(c) if c != me => {
                    pass_on(frame.bytes(), c, inboxes, backlog, pool, stats)
                }
                Steer::Everyone => {
                    for c in (0..cores).filter(|&c| c != me) {
                        pass_on(frame.bytes(), c, inboxes, backlog, pool, stats);
                    }
                    rx(frame);
                }
                _ => rx(frame),
            },
        );
        n
    }

    fn transmit(
        &mut self,
        now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        self.inner.transmit(now, budget, tx)
    }

    fn idle_wait(&mut self, max: Duration) {
        if self.inboxes[self.me].is_empty() {
            self.inner.idle_wait(max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::steer::flow_owner;
    use std::net::Ipv4Addr;

    /// Frames to receive, nothing to send.
    struct Feed(VecDeque<Vec<u8>>);

    impl Device for Feed {
        fn mtu(&self) -> usize {
            1500
        }
        fn receive(&mut self, _: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
            let mut n = 0;
            while n < budget {
                let Some(f) = self.0.pop_front() else { break };
                rx(&f);
                n += 1;
            }
            n
        }
        fn transmit(
            &mut self,
            _: Instant,
            _: usize,
            _: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
        ) -> usize {
            0
        }
    }

    /// A TCP/IPv4 frame from 10.0.0.2:80 to 10.0.0.1:`port`, tagged `k`.
    fn tcp_frame(port: u16, k: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 2]);
        f[30..34].copy_from_slice(&[10, 0, 0, 1]);
        f[34..36].copy_from_slice(&80u16.to_be_bytes());
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f[59] = k;
        f
    }

    /// A local port whose flows from 10.0.0.2:80 core 1 of 2 owns.
    fn port_owned_by_core_1() -> u16 {
        (1024..)
            .find(|&p| {
                flow_owner(
                    (Ipv4Addr::new(10, 0, 0, 1), p),
                    (Ipv4Addr::new(10, 0, 0, 2), 80),
                    2,
                ) == 1
            })
            .expect("some port hashes to core 1")
    }

    #[test]
    fn a_full_queue_defers_frames_in_order_and_loses_none() {
        let port = port_owned_by_core_1();
        // Tiny inboxes, so that most frames must wait in the backlog.
        let inboxes: Vec<Inbox> = (0..2).map(|_| Arc::new(ArrayQueue::new(4))).collect();
        let frames: VecDeque<Vec<u8>> = (0..20).map(|k| tcp_frame(port, k)).collect();
        let pool = Arc::new(ArrayQueue::new(64));
        let mut core0 = Steered::new(Feed(frames), 0, inboxes.clone(), pool.clone());
        let mut core1 = Steered::new(Feed(VecDeque::new()), 1, inboxes, pool);
        let mut seen0 = 0;
        let mut seen1 = Vec::new();
        for _ in 0..10 {
            core0.receive(Instant::ZERO, 64, &mut |_| seen0 += 1);
            core1.receive(Instant::ZERO, 64, &mut |f| seen1.push(f[59]));
        }
        assert_eq!(seen0, 0, "core 0 owns none of them");
        assert_eq!(seen1, (0..20).collect::<Vec<u8>>(), "all arrive, in order");
        assert_eq!(core0.stats.handed_off, 20);
        assert_eq!(core0.stats.deferred, 16);
        assert_eq!(core0.stats.dropped, 0);
        assert_eq!(core1.stats.taken_over, 20);
        assert_eq!(core0.backlog_len(), 0);
    }

    /// Frames that always go one way (core 0 receives them, core 1 owns
    /// them) reuse the buffers core 1 is done with: a few are made, not
    /// one per frame (10,000 were, one per frame, with per-core spares).
    #[test]
    fn one_way_hand_off_reuses_buffers() {
        let port = port_owned_by_core_1();
        let inboxes: Vec<Inbox> = (0..2).map(|_| Arc::new(ArrayQueue::new(256))).collect();
        let pool = Arc::new(ArrayQueue::new(1024));
        let mut core0 = Steered::new(Feed(VecDeque::new()), 0, inboxes.clone(), pool.clone());
        let mut core1 = Steered::new(Feed(VecDeque::new()), 1, inboxes, pool);
        let mut seen = 0u32;
        for round in 0..10_000u32 / 50 {
            core0.inner.0 = (0..50)
                .map(|k| tcp_frame(port, (round + k) as u8))
                .collect();
            core0.receive(Instant::ZERO, 64, &mut |_| {});
            core1.receive(Instant::ZERO, 64, &mut |_| seen += 1);
        }
        assert_eq!(seen, 10_000);
        assert_eq!(core0.stats.handed_off, 10_000);
        assert!(
            core0.stats.buffers_made <= 50,
            "{} buffers made for 10,000 frames",
            core0.stats.buffers_made
        );
    }
}
