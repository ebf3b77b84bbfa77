//! Statistics readable while the cores run. Counters are atomics that each
//! core stores once per loop (relaxed: a reader wants recent numbers, not
//! a consistent cut); per-connection details are asked for through a
//! channel and answered by the core between two loop iterations.

use super::handoff::HandoffStats;
use crate::iface::{IfaceStats, Tuple};
use crate::tcp::{stats::Snapshot, State};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct CoreCounters {
    loops: AtomicU64,
    idle_waits: AtomicU64,
    rx_frames: AtomicU64,
    tx_frames: AtomicU64,
    handed_off: AtomicU64,
    taken_over: AtomicU64,
    deferred: AtomicU64,
    dropped: AtomicU64,
    buffers_made: AtomicU64,
    connections: AtomicU64,
    free_frames: AtomicU64,
    partial_checksums: AtomicU64,
    rx_invalid: AtomicU64,
    refused_limits: AtomicU64,
    timers: AtomicU64,
    buffer_bytes: AtomicU64,
    ooo_pruned: AtomicU64,
    time_wait: AtomicU64,
    time_wait_recycled: AtomicU64,
    data_segments_in: AtomicU64,
    bare_acks_out: AtomicU64,
}

/// One core's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreCountersValue {
    pub loops: u64,
    pub idle_waits: u64,
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub handoff: HandoffStats,
    pub connections: u64,
    /// UMEM frames on this core's free list.
    pub free_frames: u64,
    /// TCP segments that arrived with unfinished checksums (see
    /// [`RxChecksum`](crate::iface::RxChecksum)).
    pub partial_checksums: u64,
    /// RX descriptors from the kernel that did not describe a frame of our
    /// UMEM: dropped unread (never expected; a kernel or memory fault).
    pub rx_invalid: u64,
    /// Connections refused because the interface's `Limits` were reached.
    pub refused_limits: u64,
    /// Entries in the interface's timer wheel (some may be stale, waiting
    /// to expire): with no connections left it drains to zero.
    pub timers: u64,
    /// Send and receive buffer bytes the connections hold (see `Limits`).
    pub buffer_bytes: u64,
    /// Connections whose out-of-order data was dropped at the memory limit.
    pub ooo_pruned: u64,
    /// TIME-WAIT records kept, and those recycled at the cap.
    pub time_wait: u64,
    pub time_wait_recycled: u64,
    /// TCP segments received with data, and bare ACKs sent (see
    /// [`IfaceStats`]): ACKs per data segment.
    pub data_segments_in: u64,
    pub bare_acks_out: u64,
}

impl CoreCounters {
    pub(crate) fn store(&self, v: &CoreCountersValue) {
        self.loops.store(v.loops, Relaxed);
        self.idle_waits.store(v.idle_waits, Relaxed);
        self.rx_frames.store(v.rx_frames, Relaxed);
        self.tx_frames.store(v.tx_frames, Relaxed);
        self.handed_off.store(v.handoff.handed_off, Relaxed);
        self.taken_over.store(v.handoff.taken_over, Relaxed);
        self.deferred.store(v.handoff.deferred, Relaxed);
        self.dropped.store(v.handoff.dropped, Relaxed);
        self.buffers_made.store(v.handoff.buffers_made, Relaxed);
        self.connections.store(v.connections, Relaxed);
        self.free_frames.store(v.free_frames, Relaxed);
        self.partial_checksums.store(v.partial_checksums, Relaxed);
        self.rx_invalid.store(v.rx_invalid, Relaxed);
        self.refused_limits.store(v.refused_limits, Relaxed);
        self.timers.store(v.timers, Relaxed);
        self.buffer_bytes.store(v.buffer_bytes, Relaxed);
        self.ooo_pruned.store(v.ooo_pruned, Relaxed);
        self.time_wait.store(v.time_wait, Relaxed);
        self.time_wait_recycled.store(v.time_wait_recycled, Relaxed);
        self.data_segments_in.store(v.data_segments_in, Relaxed);
        self.bare_acks_out.store(v.bare_acks_out, Relaxed);
    }

    pub fn load(&self) -> CoreCountersValue {
        CoreCountersValue {
            loops: self.loops.load(Relaxed),
            idle_waits: self.idle_waits.load(Relaxed),
            rx_frames: self.rx_frames.load(Relaxed),
            tx_frames: self.tx_frames.load(Relaxed),
            handoff: HandoffStats {
                handed_off: self.handed_off.load(Relaxed),
                taken_over: self.taken_over.load(Relaxed),
                deferred: self.deferred.load(Relaxed),
                dropped: self.dropped.load(Relaxed),
                buffers_made: self.buffers_made.load(Relaxed),
            },
            connections: self.connections.load(Relaxed),
            free_frames: self.free_frames.load(Relaxed),
            partial_checksums: self.partial_checksums.load(Relaxed),
            rx_invalid: self.rx_invalid.load(Relaxed),
            refused_limits: self.refused_limits.load(Relaxed),
            timers: self.timers.load(Relaxed),
            buffer_bytes: self.buffer_bytes.load(Relaxed),
            ooo_pruned: self.ooo_pruned.load(Relaxed),
            time_wait: self.time_wait.load(Relaxed),
            time_wait_recycled: self.time_wait_recycled.load(Relaxed),
            data_segments_in: self.data_segments_in.load(Relaxed),
            bare_acks_out: self.bare_acks_out.load(Relaxed),
        }
    }
}

/// A connection as its core saw it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub tuple: Tuple,
    pub state: State,
    pub tcp: Snapshot,
}

/// Everything one core can tell, taken between two loop iterations.
#[derive(Debug, Clone)]
pub struct CoreSnapshot {
    pub core: usize,
    pub counters: CoreCountersValue,
    pub iface: IfaceStats,
    pub connections: Vec<ConnectionInfo>,
}

impl std::fmt::Display for CoreCountersValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rx {} tx {} frames, {} conns ({} in TIME-WAIT), handed off {} / taken over {} (deferred {}, dropped {}), {} loops, {} idle waits, {} free frames",
            self.rx_frames,
            self.tx_frames,
            self.connections,
            self.time_wait,
            self.handoff.handed_off,
            self.handoff.taken_over,
            self.handoff.deferred,
            self.handoff.dropped,
            self.loops,
            self.idle_waits,
            self.free_frames
        )?;
        if self.data_segments_in > 0 {
            write!(
                f,
                ", {} bare ACKs for {} data segments in ({:.3} per segment)",
                self.bare_acks_out,
                self.data_segments_in,
                self.bare_acks_out as f64 / self.data_segments_in as f64
            )?;
        }
        if self.rx_invalid > 0 {
            write!(f, ", {} invalid RX descriptors dropped", self.rx_invalid)?;
        }
        if self.refused_limits > 0 {
            write!(
                f,
                ", {} connections refused at the connection/memory limit",
                self.refused_limits
            )?;
        }
        if self.ooo_pruned > 0 {
            write!(
                f,
                ", out-of-order data dropped {} times at the memory limit",
                self.ooo_pruned
            )?;
        }
        if self.time_wait_recycled > 0 {
            write!(
                f,
                ", {} TIME-WAIT records recycled at the cap",
                self.time_wait_recycled
            )?;
        }
        if self.partial_checksums > 0 {
            write!(
                f,
                ", {} segments with unfinished checksums (peer's tx checksum offload)",
                self.partial_checksums
            )?;
        }
        Ok(())
    }
}
