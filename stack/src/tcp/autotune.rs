//! Buffer autotuning: buffers that grow to what the path needs.
//!
//! A fixed 256 KiB receive buffer caps a 100 ms path at 20 Mbit/s. So, as
//! Linux does (`tcp_rcv_space_adjust`), the receiver measures how many
//! bytes the application read during one of its RTTs and sizes the buffer
//! to twice that, more while that amount is still growing (a sender in
//! slow start doubles each RTT), up to `Config::max_buffer`. It never
//! shrinks, and an application that does not read never makes it grow. The send buffer
//! follows the congestion window: twice cwnd, so that a window's worth can
//! be in flight while the application refills the rest. Growth draws on a
//! budget shared by the connections of an interface, so that memory stays
//! bounded in total; a refused growth is counted.

use super::connection::Connection;
use crate::time::Instant;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Bytes that buffer growth may take beyond the initial buffers, shared by
/// connections.
#[derive(Debug)]
pub struct BufferBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BufferBudget {
    pub fn new(limit: usize) -> Self {
        BufferBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `n` bytes if they fit under the limit.
    pub fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.limit).then_some(u + n)
            })
            .is_ok()
    }

    pub fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The receiver's measurement: bytes the application read since `since`,
/// and new bytes that arrived (in order or not) in the same time.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RcvSpace {
    pub since: Option<Instant>,
    pub bytes: u64,
    pub arrived: u64,
    /// The receiver's RTT estimate, from timestamps echoed on data.
    pub rtt: Option<Duration>,
    /// The most bytes delivered in one RTT so far.
    pub space: u64,
    /// The echoed timestamp of the latest sample: the segments of one
    /// flight echo the same, and give one sample, not one each (Linux's
    /// `rcv_rtt_last_tsecr`).
    pub last_ecr: u32,
}

impl Connection {
    /// An RTT sample for the receiving side: our timestamp echoed on data.
    pub(super) fn note_receiver_rtt(&mut self, now: Instant) {
        let ecr = self.seg_ts.map_or(0, |(_, ecr)| ecr);
        if ecr == self.rcv_space.last_ecr {
            return;
        }
        let Some(sample) = self.ts_rtt(now) else {
            return;
        };
        self.rcv_space.last_ecr = ecr;
        let sample = sample.max(Duration::from_millis(1));
        self.rcv_space.rtt = Some(match self.rcv_space.rtt {
            None => sample,
            Some(r) => (r * 7 + sample) / 8,
        });
    }

    /// The application took `n` bytes: what is measured is what it reads
    /// (as Linux does), so a reader that does not keep up never makes the
    /// buffer grow.
    pub(super) fn note_consumed(&mut self, n: usize) {
        self.rcv_space.bytes += n as u64;
    }

    /// Data arrived: once per receiver RTT, size the receive buffer to what
    /// the application read in that RTT.
    pub(super) fn autotune_receive(&mut self, now: Instant) {
        if !self.cfg.autotune {
            return;
        }
        let Some(rtt) = self.rcv_space.rtt.or(self.rtt.srtt()) else {
            return;
        };
        let since = *self.rcv_space.since.get_or_insert(now);
        if now.saturating_since(since) < rtt {
            return;
        }
        // What was read, but no more than arrived: filling a hole hands
        // the reader at once what came over earlier round trips, which is
        // not a rate the path carries (after a slow-start overshoot it
        // made the buffer 30 times what a 10 Mbit/s path holds).
        let copied = self.rcv_space.bytes.min(self.rcv_space.arrived);
        // The first measurement is the baseline growth is judged against.
        let space = match self.rcv_space.space {
            0 => copied.max(1),
            s => s,
        };
        self.rcv_space.since = Some(now);
        self.rcv_space.bytes = 0;
        self.rcv_space.arrived = 0;
        if copied <= self.rcv_space.space {
            return;
        }
        self.rcv_space.space = copied;
        // Twice what came in one RTT, and more while that amount is still
        // growing (after Linux's tcp_rcv_space_adjust): a sender in slow
        // start doubles each RTT, and a window that lags behind it would
        // open in bursts that overflow a shallow queue.
        let mut rcvwin = 2 * copied + 16 * u64::from(self.eff_mss);
        rcvwin += rcvwin * (copied - space.min(copied)) / space;
        let cap = self.recv_buf.capacity();
        let want = (rcvwin.min(self.cfg.max_buffer as u64) as usize).min(self.cfg.max_buffer);
        if want <= cap {
            return;
        }
        if self.take_budget(want.saturating_sub(cap)) {
            self.recv_buf.grow(want);
            self.buffers_reached.1 = want;
            // The window opened a lot: say so now.
            self.ack_pending = true;
        }
    }

    /// The send buffer follows cwnd: twice it, up to the cap.
    pub(super) fn autotune_send(&mut self) {
        if !self.cfg.autotune {
            return;
        }
        let cap = self.send_buf.capacity();
        let want = (2 * self.cc.cwnd() as usize).min(self.cfg.max_buffer);
        if want <= cap {
            return;
        }
        let want = want.next_power_of_two().min(self.cfg.max_buffer);
        if self.take_budget(want - cap) {
            let was_full = self.send_buf.free() == 0;
            self.send_buf.grow(want);
            self.buffers_reached.0 = want;
            if was_full {
                self.push_event(super::connection::Event::Writable);
            }
        }
    }

    /// Gives back the growth the buffers no longer hold (they were
    /// dropped or replaced by smaller ones).
    pub(super) fn return_growth(&mut self) {
        let held = self
            .send_buf
            .capacity()
            .saturating_sub(self.cfg.send_buffer)
            + self
                .recv_buf
                .capacity()
                .saturating_sub(self.cfg.recv_buffer);
        if self.buffer_grown > held {
            if let Some(b) = &self.cfg.buffer_budget {
                b.give_back(self.buffer_grown - held);
            }
            self.buffer_grown = held;
        }
    }

    fn take_budget(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let ok = self.cfg.buffer_budget.as_ref().is_none_or(|b| b.take(n));
        if ok {
            self.buffer_grown += n;
        } else {
            self.counters.buffer_growth_refused += 1;
        }
        ok
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(b) = &self.cfg.buffer_budget {
            b.give_back(self.buffer_grown);
        }
    }
}
