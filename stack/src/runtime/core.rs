//! One core's run-to-completion loop: receive a batch and process it to
//! completion, let the application act, run due timers, flush a transmit
//! batch. Everything it touches is its own: the socket, the UMEM, the
//! connection table, the timer wheel. Other threads reach it only through
//! lock-free queues (frames handed off, snapshot requests) and atomics
//! (counters, the stop flag).

use super::handoff::Steered;
use super::stats::{ConnectionInfo, CoreCounters, CoreCountersValue, CoreSnapshot};
use super::{PollMode, Shared};
use crate::device::afxdp::AfXdp;
use crate::device::Device;
use crate::iface::{Interface, RxChecksum};
use crate::time::Instant;
use crossbeam::channel::{Receiver, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// What an application sees of its core, inside the loop.
pub struct CoreContext<'a> {
    pub core: usize,
    pub cores: usize,
    pub now: Instant,
    pub iface: &'a mut Interface,
}

/// An application that runs on every core, inside the loop. One instance
/// per core, so it needs no locks either.
pub trait CoreApp: Send + 'static {
    /// Called once per loop iteration after received frames were
    /// processed. Returns true if it did anything (the loop then does not
    /// count the iteration as idle).
    fn poll(&mut self, cx: &mut CoreContext<'_>) -> bool;

    /// This core's part of the work is finished.
    fn done(&self) -> bool {
        false
    }
}

/// Idle iterations before adaptive polling starts blocking.
const SPIN_BEFORE_WAIT: u32 = 2_000;
/// The longest an adaptive core blocks: frames handed off by another core
/// do not wake it, so it looks again at least this often.
const MAX_WAIT: Duration = Duration::from_millis(1);
/// Loops between two reports of the counters (a few microseconds).
const REPORT_EVERY: u64 = 64;

pub(crate) struct CoreLoop<A> {
    pub core: usize,
    pub cores: usize,
    pub dev: Steered<AfXdp>,
    pub iface: Interface,
    pub app: A,
    pub shared: Arc<Shared>,
    pub counters: Arc<CoreCounters>,
    pub snapshots: Receiver<Sender<CoreSnapshot>>,
    pub poll: PollMode,
}

impl<A: CoreApp> CoreLoop<A> {
    pub fn run(mut self) -> A {
        let mut idle = 0u32;
        let mut v = CoreCountersValue::default();
        let mut reported_done = false;
        let mut warned_partial = false;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = self.shared.now();
            let mut busy = self.iface.receive(now, &mut self.dev);
            let mut cx = CoreContext {
                core: self.core,
                cores: self.cores,
                now,
                iface: &mut self.iface,
            };
            busy |= self.app.poll(&mut cx);
            self.iface.run_timers(now);
            busy |= self.iface.transmit(now, &mut self.dev);
            busy |= self.dev.backlog_len() > 0;
            if !reported_done && self.app.done() {
                reported_done = true;
                self.shared.report_done();
            }
            v.loops += 1;
            let mut waiting = false;
            if busy {
                idle = 0;
            } else {
                idle = idle.saturating_add(1);
                waiting = self.poll == PollMode::Adaptive && idle > SPIN_BEFORE_WAIT;
            }
            // Readers look about once a second: the counters (21 stores)
            // and the snapshot queue (a channel poll) are visited every so
            // many loops, not on each, and always before the core blocks.
            if waiting || v.loops % REPORT_EVERY == 0 {
                self.report(&mut v, &mut warned_partial);
            }
            if waiting {
                let wait = self
                    .iface
                    .poll_at()
                    .map_or(MAX_WAIT, |t| t.saturating_since(now))
                    .min(MAX_WAIT);
                self.dev.idle_wait(wait);
                v.idle_waits += 1;
            }
        }
        self.report(&mut v, &mut warned_partial);
        self.app
    }

    /// Publishes the counters, warns once about unfinished checksums and
    /// answers a snapshot request if one waits.
    fn report(&self, v: &mut CoreCountersValue, warned_partial: &mut bool) {
        self.publish(v);
        if !*warned_partial && v.partial_checksums > 0 {
            *warned_partial = true;
            self.warn_partial_checksums();
        }
        if let Ok(reply) = self.snapshots.try_recv() {
            let _ = reply.send(self.snapshot(*v));
        }
    }

    fn publish(&self, v: &mut CoreCountersValue) {
        let dev = self.dev.inner();
        v.rx_frames = dev.rx_frames;
        v.tx_frames = dev.tx_frames;
        v.handoff = self.dev.stats;
        v.connections = self.iface.connection_count() as u64;
        v.free_frames = dev.free_frames() as u64;
        v.rx_invalid = dev.rx_invalid;
        v.partial_checksums = self.iface.stats().rx_partial_checksum;
        v.refused_limits = self.iface.stats().tcp_refused_limits;
        v.timers = self.iface.timer_count() as u64;
        v.buffer_bytes = self.iface.usage().0 as u64;
        v.ooo_pruned = self.iface.stats().tcp_ooo_pruned;
        v.time_wait = self.iface.time_wait_count() as u64;
        v.time_wait_recycled = self.iface.stats().tcp_time_wait_recycled;
        v.data_segments_in = self.iface.stats().tcp_data_segments_in;
        v.bare_acks_out = self.iface.stats().tcp_bare_acks_out;
        self.counters.store(v);
    }

    /// Says once, on stderr, that a peer on this host sends unfinished
    /// checksums, what we do with them and how to make it finish them.
    fn warn_partial_checksums(&self) {
        let from = self
            .iface
            .stats()
            .partial_checksum_from
            .map_or("a peer".into(), |ip| ip.to_string());
        let fix = "the sender's interface has transmit checksum offload on (a veth peer on this host): `ethtool -K <its interface> tx off` makes it finish them";
        if self.iface.config().rx_checksum == RxChecksum::TrustPartial {
            eprintln!(
                "xdptcp: accepting TCP segments from {from} with unfinished checksums; {fix} (--rx-checksum verify refuses such segments)"
            );
        } else {
            eprintln!(
                "xdptcp: DROPPING TCP segments from {from} with unfinished checksums, so connections with it will time out; {fix}, or accept them with --rx-checksum trust-partial"
            );
        }
    }

    fn snapshot(&self, counters: CoreCountersValue) -> CoreSnapshot {
        let connections = self
            .iface
            .handles()
            .into_iter()
            .filter_map(|h| {
                let c = self.iface.tcp_ref(h)?;
                Some(ConnectionInfo {
                    tuple: self.iface.tuple(h)?,
                    state: c.state(),
                    tcp: c.snapshot(),
                })
            })
            .collect();
        CoreSnapshot {
            core: self.core,
            counters,
            iface: self.iface.stats().clone(),
            connections,
        }
    }
}
