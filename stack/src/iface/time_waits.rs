//! The interface's TIME-WAIT records (`tcp::time_wait`) by 4-tuple, with
//! their expiry in the order they were made and a cap: past it the oldest
//! is recycled first, as Linux's `tcp_max_tw_buckets`. Memory follows the
//! count down again after a spike.

use super::tcp_table::Tuple;
use crate::tcp::time_wait::{TimeWait, TimeWaitReply};
use crate::time::Instant;
use crate::wire::tcp::TcpSegment;
use std::collections::{HashMap, VecDeque};

/// Room kept when the records thin out; more is given back.
const KEEP: usize = 1024;

#[derive(Default)]
pub(crate) struct TimeWaits {
    by_tuple: HashMap<Tuple, TimeWait>,
    /// (tuple, deadline when queued), oldest first. A record whose wait a
    /// retransmitted FIN restarted is queued again: its older entry is then
    /// stale and skipped when reached. With one TIME-WAIT length for all,
    /// the queue is in deadline order.
    order: VecDeque<(Tuple, Instant)>,
}

impl TimeWaits {
    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    pub fn contains(&self, tuple: &Tuple) -> bool {
        self.by_tuple.contains_key(tuple)
    }

    /// Bytes the records hold allocated.
    pub fn memory(&self) -> usize {
        self.by_tuple.capacity() * std::mem::size_of::<(Tuple, TimeWait, u64)>()
            + self.order.capacity() * std::mem::size_of::<(Tuple, Instant)>()
    }

    /// Files a record, recycling the oldest while `cap` are kept; returns
    /// how many were recycled.
    pub fn insert(&mut self, tuple: Tuple, tw: TimeWait, cap: usize) -> u64 {
        let mut recycled = 0;
        while self.by_tuple.len() >= cap.max(1) && self.drop_oldest() {
            recycled += 1;
        }
        self.order.push_back((tuple, tw.deadline));
        self.by_tuple.insert(tuple, tw);
        recycled
    }

    /// Removes the oldest live record; false if there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some((tuple, deadline)) = self.order.pop_front() {
            if self
                .by_tuple
                .get(&tuple)
                .is_some_and(|tw| tw.deadline == deadline)
            {
                self.by_tuple.remove(&tuple);
                return true;
            }
        }
        false
    }

    /// A segment for `tuple`: what its record says to do, if it has one.
    pub fn on_segment(
        &mut self,
        tuple: Tuple,
        seg: &TcpSegment<'_>,
        now: Instant,
    ) -> Option<TimeWaitReply> {
        let tw = self.by_tuple.get_mut(&tuple)?;
        let before = tw.deadline;
        let reply = tw.on_segment(seg, now);
        if tw.deadline != before {
            self.order.push_back((tuple, tw.deadline));
        }
        if reply == TimeWaitReply::NewIncarnation {
            self.by_tuple.remove(&tuple);
        }
        Some(reply)
    }

    /// Drops the records whose time is up.
    pub fn expire(&mut self, now: Instant) {
        let mut dropped = false;
        while let Some(&(tuple, deadline)) = self.order.front() {
            if deadline > now {
                break;
            }
            self.order.pop_front();
            if self
                .by_tuple
                .get(&tuple)
                .is_some_and(|tw| tw.deadline == deadline)
            {
                self.by_tuple.remove(&tuple);
                dropped = true;
            }
        }
        if dropped && self.by_tuple.capacity() > 4 * self.by_tuple.len().max(KEEP) {
            self.by_tuple.shrink_to(2 * self.by_tuple.len().max(KEEP));
            self.order.shrink_to(2 * self.order.len().max(KEEP));
        }
    }

    /// When the oldest record expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|e| e.1)
    }
}
