//! The sender's record of every segment in flight: where it starts and
//! ends, when it was last (re)transmitted, and what is known of it (SACKed,
//! presumed lost). It is the one truth about SACK on the sending side.
//! RACK (RFC 8985) reads the transmit times to tell lost segments, lost
//! retransmissions included, from late ones; recovery reads the lost
//! marks to choose what to resend and to count the pipe.
//!
//! A receiver decides what the ACKs that drive this record say, so none of
//! its operations may cost more than the news an ACK brings (the class of
//! Linux's CVE-2019-11478, where SACK blocks split the queue without
//! bound and every ACK walked it):
//! - Records are whole transmissions. A SACK block marks the records it
//!   covers entirely and never splits one (an edge inside a segment is
//!   rounded inwards, as Linux rounds to the MSS), so the count is bounded
//!   by what we sent, whatever the blocks say. Only our own resends split
//!   a record, and a path MTU drop re-cuts the record once.
//! - Consecutive SACKed records carry a run length, so a block over data
//!   SACKed before costs a jump per run, not a visit per record.
//! - RACK reads transmissions in the order they left (`by_time`) and stops
//!   at the first whose time is not up: later ones left later. A burst
//!   planned as one (`burst.rs`) is one transmission of its records.
//! - Lost records wait in a heap, lowest sequence first.
//!
//! Entries of `by_time` and of the lost heap are dropped lazily, when read,
//! once their record was acknowledged, SACKed or resent. Counters of SACKed
//! and lost bytes are kept as the marks change, so the pipe costs nothing.

use super::rate::{DeliveredNow, TxRate};
use super::SeqNum;
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub start: SeqNum,
    pub end: SeqNum,
    /// When it last left: the original transmission or the latest resend.
    pub at: Instant,
    /// Times it was retransmitted.
    pub rexmits: u32,
    pub sacked: bool,
    /// Presumed lost and not resent since.
    pub lost: bool,
    /// The delivery counters when it last left (rate estimation).
    pub tx: TxRate,
    /// While SACKed: how many records from this one on are known to be
    /// SACKed too (at least 1; a lower bound, made exact when walked).
    run: u32,
}

impl Sent {
    fn len(&self) -> u32 {
        self.end - self.start
    }
}

/// What became known of the newest-sent segment among those an ACK
/// delivered (cumulatively or by SACK): what RACK needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub at: Instant,
    pub end: SeqNum,
    pub rexmits: u32,
}

/// One transmission, in the order they left.
#[derive(Debug, Clone, Copy)]
struct Transmission {
    start: SeqNum,
    end: SeqNum,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct SentQueue {
    segs: VecDeque<Sent>,
    by_time: VecDeque<Transmission>,
    /// Starts of records marked lost, as offsets from `lost_base` (the
    /// front of the record when the heap was last empty).
    lost_heap: BinaryHeap<Reverse<u32>>,
    lost_base: SeqNum,
    sacked_bytes: u32,
    lost_bytes: u32,
    /// Bytes marked lost since the last `take_lost` (each marking counts).
    lost_since: u32,
    /// What the ACK being processed delivered, for the rate sampler.
    delivered_now: DeliveredNow,
    /// The receiver reneged on SACKed data: forget the marks at the next
    /// timeout (`mark_all_lost`).
    reneged: bool,
    /// Records and entries visited: the work the ACKs caused.
    visits: u64,
    /// Every record ever resent ends at or before this (None once the
    /// cumulative ACK passed it): records past it were sent once.
    resent_until: Option<SeqNum>,
}

/// Capacity kept after the record empties; more is given back.
const KEEP_CAPACITY: usize = 1024;

impl SentQueue {
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.segs.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sent> {
        self.segs.iter()
    }

    pub fn last(&self) -> Option<&Sent> {
        self.segs.back()
    }

    /// Bytes SACKed and not yet cumulatively acknowledged.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked_bytes
    }

    /// Bytes presumed lost and not resent since.
    pub fn lost_bytes(&self) -> u32 {
        self.lost_bytes
    }

    /// Records and entries visited so far.
    pub fn visits(&self) -> u64 {
        self.visits
    }

    /// Bytes the record holds allocated (charged to the connection).
    pub fn memory(&self) -> usize {
        self.segs.capacity() * std::mem::size_of::<Sent>()
            + self.by_time.capacity() * std::mem::size_of::<Transmission>()
            + self.lost_heap.capacity() * std::mem::size_of::<u32>()
    }

    /// Bytes marked lost since the last call: for congestion control.
    pub fn take_lost(&mut self) -> u32 {
        std::mem::take(&mut self.lost_since)
    }

    /// Records resent and not yet acknowledged or SACKed (Linux's
    /// retrans_out, for TCP_INFO).
    pub fn resent_in_flight(&self) -> u32 {
        self.segs
            .iter()
            .filter(|s| s.rexmits > 0 && !s.sacked)
            .count() as u32
    }

    /// The record just sent at `start` was data sent before (a SYN's,
    /// which the sent queue never held): count it as a retransmission.
    pub fn mark_resent(&mut self, start: SeqNum) {
        if let Some(s) = self.segs.back_mut().filter(|s| s.start == start) {
            s.rexmits = s.rexmits.max(1);
            let end = s.end;
            self.note_resent(end);
        }
    }

    /// Bytes the ACK being processed delivered so far (acknowledged or
    /// SACKed for the first time).
    pub fn delivered_bytes(&self) -> u32 {
        self.delivered_now.bytes
    }

    /// What the ACKs and SACKs since the last call delivered.
    pub fn take_delivered(&mut self) -> DeliveredNow {
        std::mem::take(&mut self.delivered_now)
    }

    /// Index of the first record that ends after `seq` (holds it, or lies
    /// past it).
    fn index_of(&self, seq: SeqNum) -> usize {
        self.segs.partition_point(|s| s.end <= seq)
    }

    /// New data `[start, end)` left at `now`.
    pub fn on_send(&mut self, start: SeqNum, end: SeqNum, now: Instant, tx: TxRate) {
        if start >= end || self.segs.back().is_some_and(|b| end <= b.end) {
            return;
        }
        let start = self.segs.back().map_or(start, |b| start.max(b.end));
        self.push(start, end, now, tx);
    }

    fn push(&mut self, start: SeqNum, end: SeqNum, at: Instant, tx: TxRate) {
        self.push_record(start, end, at, tx);
        self.by_time.push_back(Transmission { start, end, at });
    }

    fn push_record(&mut self, start: SeqNum, end: SeqNum, at: Instant, tx: TxRate) {
        self.segs.push_back(Sent {
            start,
            end,
            at,
            rexmits: 0,
            sacked: false,
            lost: false,
            tx,
            run: 0,
        });
    }

    /// `count` segments of new data of `len` bytes each from `start`,
    /// just past the last record, left at `now` together (`burst.rs`):
    /// a record each, and one transmission for RACK.
    pub fn on_send_run(&mut self, start: SeqNum, count: u32, len: u32, now: Instant, tx: TxRate) {
        debug_assert!(self.segs.back().is_none_or(|b| b.end <= start));
        self.segs.reserve(count as usize);
        for i in 0..count {
            let start = start + i * len;
            self.push_record(start, start + len, now, tx);
        }
        let end = start + count * len;
        self.by_time.push_back(Transmission {
            start,
            end,
            at: now,
        });
    }

    /// Takes back the records of new data from `start` on: planned, never
    /// handed out (`burst.rs`), so nothing has marked them yet.
    pub fn unsend_from(&mut self, start: SeqNum) {
        while self.segs.back().is_some_and(|b| b.start >= start) {
            let b = self.segs.pop_back().expect("checked");
            debug_assert!(!b.sacked && !b.lost && b.rexmits == 0, "{b:?}");
        }
        while self.by_time.back().is_some_and(|b| b.start >= start) {
            self.by_time.pop_back();
        }
        // A run's transmission keeps the part that left.
        if let Some(b) = self.by_time.back_mut().filter(|b| b.end > start) {
            b.end = start;
        }
    }

    /// Forgets what `ack` acknowledges; returns the newest-sent of the
    /// records it delivered that were not already SACKed.
    pub fn on_ack(&mut self, ack: SeqNum) -> Option<Delivered> {
        let mut newest = self.ack_plain_run(ack);
        while let Some(front) = self.segs.front_mut() {
            if front.start >= ack {
                break;
            }
            self.visits += 1;
            let covered = if front.end <= ack {
                *front
            } else {
                // Acknowledged in part: keep the rest.
                let mut part = *front;
                part.end = ack;
                front.start = ack;
                self.uncount(&part);
                note(&mut newest, &part);
                self.note_delivered(&part);
                break;
            };
            self.segs.pop_front();
            self.uncount(&covered);
            note(&mut newest, &covered);
            self.note_delivered(&covered);
        }
        // Transmissions wholly acknowledged are of no more use to RACK.
        while self.by_time.front().is_some_and(|t| t.end <= ack) {
            self.by_time.pop_front();
        }
        if self.resent_until.is_some_and(|r| r <= ack) {
            self.resent_until = None;
        }
        if self.segs.is_empty() {
            self.by_time.clear();
            self.lost_heap.clear();
            if self.segs.capacity() > KEEP_CAPACITY {
                // A spike is over: give its memory back.
                self.segs.shrink_to(KEEP_CAPACITY);
                self.by_time.shrink_to(KEEP_CAPACITY);
                self.lost_heap.shrink_to(KEEP_CAPACITY);
            }
        }
        newest
    }

    /// The common ACK in bulk: it covers whole records that left once, in
    /// order, and were never SACKed, marked lost or resent. Those go at
    /// once. The last of them left last and carries the latest delivery
    /// counters, so it stands for all of them in what RACK and the rate
    /// sampler learn (as it would have, noted after the others).
    fn ack_plain_run(&mut self, ack: SeqNum) -> Option<Delivered> {
        let front = self.segs.front()?;
        let plain = self.sacked_bytes == 0
            && self.lost_bytes == 0
            && self.resent_until.is_none_or(|r| front.start >= r);
        if !plain {
            return None;
        }
        // From the front, not by halving: an ACK covers a few records at
        // the front of what may be thousands, and those are in cache.
        let k = self.segs.iter().take_while(|s| s.end <= ack).count();
        if k < 2 {
            return None;
        }
        let first = front.start;
        let last = self.segs[k - 1];
        self.visits += 1;
        self.segs.drain(..k);
        self.delivered_now
            .note_run(last.end - first, k as u32, last.at, 0, last.tx);
        Some(Delivered {
            at: last.at,
            end: last.end,
            rexmits: 0,
        })
    }

    fn note_resent(&mut self, end: SeqNum) {
        self.resent_until = Some(self.resent_until.map_or(end, |r| r.max(end)));
    }

    /// A record was acknowledged: counts it as delivered unless a SACK
    /// already did.
    fn note_delivered(&mut self, s: &Sent) {
        if !s.sacked {
            self.delivered_now.note(s.len(), s.at, s.rexmits, s.tx);
        }
    }

    fn uncount(&mut self, s: &Sent) {
        if s.sacked {
            self.sacked_bytes -= s.len();
        } else if s.lost {
            self.lost_bytes -= s.len();
        }
    }

    /// Splits record `i` at `at` (inside it); returns the right part's
    /// index. Only our own resends call for it, so it stays rare.
    fn split(&mut self, i: usize, at: SeqNum) -> usize {
        let mut right = self.segs[i];
        right.start = at;
        right.run = u32::from(right.sacked);
        self.segs[i].end = at;
        self.segs.insert(i + 1, right);
        if right.lost {
            self.push_lost(at);
        }
        i + 1
    }

    /// The index range of the records making up `[start, end)`, split at
    /// both edges.
    fn range(&mut self, start: SeqNum, end: SeqNum) -> std::ops::Range<usize> {
        let mut i = self.index_of(start);
        if self.segs.get(i).is_some_and(|s| s.start < start) {
            i = self.split(i, start);
        }
        let mut j = self.index_of(end);
        if self.segs.get(j).is_some_and(|s| s.start < end) {
            j = self.split(j, end);
        }
        i..j
    }

    /// The index after the SACKed run that record `k` begins, found by
    /// its run lengths; every head passed learns the run's true end (so
    /// the next walk makes one jump).
    fn run_end(&mut self, k: usize) -> usize {
        let mut j = k;
        while self.segs.get(j).is_some_and(|s| s.sacked) {
            self.visits += 1;
            j += self.segs[j].run.max(1) as usize;
        }
        let mut i = k;
        while i < j {
            let next = i + self.segs[i].run.max(1) as usize;
            self.segs[i].run = (j - i) as u32;
            i = next;
        }
        j
    }

    /// `[start, end)` was SACKed: marks the records wholly inside it that
    /// were not SACKed before; returns the newest-sent of them.
    pub fn on_sack(&mut self, start: SeqNum, end: SeqNum) -> Option<Delivered> {
        let mut newest = None;
        let mut k = self.index_of(start);
        while let Some(s) = self.segs.get(k).copied() {
            self.visits += 1;
            if s.end > end {
                break;
            }
            if s.start < start {
                k += 1; // covered in part only
                continue;
            }
            if s.sacked {
                k = self.run_end(k);
                continue;
            }
            if s.lost {
                self.lost_bytes -= s.len();
            }
            self.sacked_bytes += s.len();
            let follows = self
                .segs
                .get(k + 1)
                .filter(|n| n.sacked)
                .map_or(0, |n| n.run);
            let r = &mut self.segs[k];
            r.sacked = true;
            r.lost = false;
            r.run = 1 + follows;
            note(&mut newest, &s);
            self.delivered_now.note(s.len(), s.at, s.rexmits, s.tx);
            k += 1;
        }
        newest
    }

    /// `[start, end)` was resent at `now`: no longer presumed lost.
    pub fn on_retransmit(&mut self, start: SeqNum, end: SeqNum, now: Instant, tx: TxRate) {
        for k in self.range(start, end) {
            self.visits += 1;
            let s = &mut self.segs[k];
            if s.lost {
                self.lost_bytes -= s.end - s.start;
            }
            s.lost = false;
            s.at = now;
            s.rexmits += 1;
            s.tx = tx;
        }
        self.note_resent(end);
        self.by_time.push_back(Transmission {
            start,
            end,
            at: now,
        });
    }

    /// Offsets in the lost heap restart from the front of the record,
    /// below which nothing can be marked: when no record is lost (every
    /// entry is stale), and before offsets grow large enough to wrap.
    fn rebase_lost(&mut self) {
        let Some(front) = self.segs.front().map(|s| s.start) else {
            return;
        };
        if self.lost_bytes == 0 {
            self.lost_heap.clear();
        } else {
            let base = self.lost_base;
            let live = std::mem::take(&mut self.lost_heap).into_iter();
            self.lost_heap = live
                .map(|Reverse(off)| base + off)
                .filter(|&start| start >= front)
                .map(|start| Reverse(start - front))
                .collect();
        }
        self.lost_base = front;
    }

    fn push_lost(&mut self, start: SeqNum) {
        self.lost_heap.push(Reverse(start - self.lost_base));
    }

    /// Marks record `k` lost (RACK, or everything unSACKed after an RTO).
    pub fn mark_lost(&mut self, k: usize) {
        let s = self.segs[k];
        if s.sacked || s.lost {
            return;
        }
        if self.lost_bytes == 0 || s.start - self.lost_base >= 1 << 30 {
            self.rebase_lost();
        }
        self.segs[k].lost = true;
        self.lost_bytes += s.len();
        self.lost_since = self.lost_since.saturating_add(s.len());
        self.push_lost(s.start);
    }

    /// Marks every record not SACKed lost (after a timeout); returns how
    /// many bytes that is. SACK marks the receiver reneged on go first.
    pub fn mark_all_lost(&mut self) -> u32 {
        if std::mem::take(&mut self.reneged) {
            self.forget_sacks();
        }
        for k in 0..self.segs.len() {
            self.visits += 1;
            self.mark_lost(k);
        }
        self.lost_bytes
    }

    /// The receiver reneged (it no longer holds what it SACKed): its marks
    /// go at the next timeout, which the caller arms soon (as Linux).
    pub fn note_reneging(&mut self) {
        self.reneged = true;
    }

    /// Drops every SACK mark.
    fn forget_sacks(&mut self) {
        for s in self.segs.iter_mut() {
            s.sacked = false;
            s.run = 0;
        }
        self.sacked_bytes = 0;
    }

    /// Clears every lost mark (a loss episode that proved spurious).
    pub fn unmark_lost(&mut self) {
        for s in self.segs.iter_mut() {
            s.lost = false;
        }
        self.lost_bytes = 0;
        self.lost_heap.clear();
    }

    /// A path MTU drop: every record longer than `mss` is cut into pieces
    /// of at most `mss` and, unless SACKed, marked lost, so that recovery
    /// resends it at the new size. One pass over the record.
    pub fn resegment(&mut self, mss: u32) {
        if self.segs.iter().all(|s| s.len() <= mss) {
            return;
        }
        self.rebase_lost();
        for s in std::mem::take(&mut self.segs) {
            self.visits += 1;
            if s.len() <= mss {
                self.segs.push_back(s);
                continue;
            }
            let mut at = s.start;
            while at < s.end {
                let mut piece = s;
                (piece.start, piece.end) = (at, s.end.min(at + mss));
                piece.run = u32::from(s.sacked);
                if !s.sacked {
                    if !s.lost {
                        self.lost_bytes += piece.len();
                        self.lost_since = self.lost_since.saturating_add(piece.len());
                    }
                    piece.lost = true;
                    self.push_lost(at);
                }
                self.segs.push_back(piece);
                at = piece.end;
            }
        }
    }

    /// The first record presumed lost: what recovery resends next.
    pub fn first_lost(&mut self) -> Option<Sent> {
        if self.lost_bytes == 0 {
            return None;
        }
        while let Some(&Reverse(off)) = self.lost_heap.peek() {
            self.visits += 1;
            let start = self.lost_base + off;
            let k = self.index_of(start);
            if let Some(s) = self.segs.get(k).filter(|s| s.start == start && s.lost) {
                return Some(*s);
            }
            self.lost_heap.pop(); // acknowledged, SACKed or resent since
        }
        None
    }

    /// RACK's pass (RFC 8985 6.2 step 5): marks lost every record not
    /// SACKed that was sent before the segment at (`rack_at`, `rack_end`)
    /// and has waited more than `wait` since, oldest first, and stops at
    /// the first whose time is not up, which it returns: all later ones
    /// left later. Returns how many records it marked.
    pub fn rack_mark_lost(
        &mut self,
        rack_at: Instant,
        rack_end: SeqNum,
        wait: Duration,
        now: Instant,
    ) -> (u32, Option<Instant>) {
        let mut marked = 0;
        while let Some(&t) = self.by_time.front() {
            self.visits += 1;
            // Of a transmission at the RACK segment's instant (a burst's),
            // only what lies before it in sequence left before it.
            let end = if t.at == rack_at && rack_end < t.end {
                rack_end
            } else {
                t.end
            };
            if t.at > rack_at || t.start >= end {
                break; // sent after the RACK segment, as is all that follows
            }
            if self.segs.front().is_none_or(|f| f.start >= end) {
                // Its records before the RACK segment are all acknowledged
                // (a burst the cumulative ACK reached the middle of).
                if end != t.end {
                    break;
                }
                self.by_time.pop_front();
                continue;
            }
            let first = self.index_of(t.start);
            let live = |s: &Sent| s.at == t.at && !s.sacked && !s.lost;
            let mut any = false;
            for s in self.segs.range(first..).take_while(|s| s.start < end) {
                any |= live(s);
            }
            if any && t.at + wait > now {
                return (marked, Some(t.at + wait));
            }
            let mut k = first;
            while self.segs.get(k).is_some_and(|s| s.start < end) {
                self.visits += 1;
                if live(&self.segs[k]) {
                    self.mark_lost(k);
                    marked += 1;
                }
                k += 1;
            }
            if end != t.end {
                break; // the rest of the burst left after the RACK segment
            }
            self.by_time.pop_front();
        }
        (marked, None)
    }

    /// The first record's marks, if it starts at `seq`.
    pub fn front_at(&self, seq: SeqNum) -> Option<&Sent> {
        self.segs.front().filter(|s| s.start == seq)
    }

    /// Where data from `seq` may run before SACKed data: the first byte at
    /// or after `seq` not SACKed, and how many bytes follow it before the
    /// next SACKed record (at least `limit` counts as `limit`; `u32::MAX`
    /// when nothing SACKed follows).
    pub fn unsacked_run(&mut self, seq: SeqNum, limit: u32) -> (SeqNum, u32) {
        let mut k = self.index_of(seq);
        if self.segs.get(k).is_some_and(|s| s.sacked) {
            k = self.run_end(k);
        }
        let from = match self.segs.get(k) {
            Some(s) => seq.max(s.start),
            None => return (seq.max(self.segs.back().map_or(seq, |b| b.end)), u32::MAX),
        };
        let mut run = 0u32;
        while let Some(s) = self.segs.get(k) {
            self.visits += 1;
            if s.sacked {
                return (from, run);
            }
            run += s.end - from.max(s.start);
            if run >= limit {
                return (from, limit);
            }
            k += 1;
        }
        (from, u32::MAX)
    }
}

fn note(newest: &mut Option<Delivered>, s: &Sent) {
    let later = newest.is_none_or(|n| s.at > n.at || (s.at == n.at && s.end > n.end));
    if later {
        *newest = Some(Delivered {
            at: s.at,
            end: s.end,
            rexmits: s.rexmits,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn queue() -> SentQueue {
        let mut q = SentQueue::default();
        for i in 0..5u32 {
            q.on_send(
                SeqNum(1000 + i * 100),
                SeqNum(1100 + i * 100),
                t(u64::from(i)),
                TxRate::at(t(0)),
            );
        }
        q
    }

    #[test]
    fn an_ack_over_records_sent_once_delivers_them_at_once_as_one_by_one() {
        // Records sent once, in order: the ACK takes the whole run in one
        // step (one visit), and reports what noting each would have.
        let mut q = queue();
        let before = q.visits();
        let d = q.on_ack(SeqNum(1350)).unwrap();
        assert_eq!(q.visits() - before, 2, "the run, then the part");
        assert_eq!((d.at, d.end, d.rexmits), (t(3), SeqNum(1350), 0));
        let now = q.take_delivered();
        assert_eq!((now.bytes, now.segments), (350, 4));
        assert_eq!(now.newest.map(|(at, n, _)| (at, n)), Some((t(3), 0)));
        assert_eq!(q.iter().next().unwrap().start, SeqNum(1350));
    }

    #[test]
    fn an_ack_over_a_resent_record_takes_them_one_by_one() {
        // Record 1 resent at 10 ms: it, not record 3, is the newest sent,
        // and its resend is what RACK must hear of.
        let mut q = queue();
        q.on_retransmit(SeqNum(1100), SeqNum(1200), t(10), TxRate::at(t(10)));
        let d = q.on_ack(SeqNum(1400)).unwrap();
        assert_eq!((d.at, d.end, d.rexmits), (t(10), SeqNum(1200), 1));
        let now = q.take_delivered();
        assert_eq!((now.bytes, now.segments), (400, 4));
        assert_eq!(now.newest.map(|(at, n, _)| (at, n)), Some((t(10), 1)));
        // Past the resent record, runs go at once again.
        q.on_send(SeqNum(1500), SeqNum(1600), t(11), TxRate::at(t(0)));
        let before = q.visits();
        let d = q.on_ack(SeqNum(1600)).unwrap();
        assert_eq!((d.at, d.end), (t(11), SeqNum(1600)));
        assert_eq!(q.visits() - before, 1);
        assert!(q.is_empty());
    }

    #[test]
    fn sack_marks_whole_records_and_never_splits() {
        let mut q = queue();
        // A block that starts and ends inside records marks none of them.
        assert_eq!(q.on_sack(SeqNum(1150), SeqNum(1250)), None);
        assert_eq!((q.len(), q.sacked_bytes()), (5, 0));
        // One that covers a record whole marks just that one.
        let d = q.on_sack(SeqNum(1150), SeqNum(1350)).unwrap();
        assert_eq!(q.sacked_bytes(), 100);
        assert_eq!(q.len(), 5, "no split");
        assert_eq!((d.at, d.end), (t(2), SeqNum(1300)), "newest delivered");
        // The same block again delivers nothing new.
        assert_eq!(q.on_sack(SeqNum(1150), SeqNum(1350)), None);
        assert_eq!(q.sacked_bytes(), 100);
    }

    #[test]
    fn a_block_over_sacked_runs_jumps_them() {
        let mut q = SentQueue::default();
        for i in 0..1000u32 {
            q.on_send(SeqNum(i * 10), SeqNum(i * 10 + 10), t(1), TxRate::at(t(0)));
        }
        // SACKed one record at a time from the left: runs of one that the
        // first walk joins up.
        for i in 1..1000u32 {
            q.on_sack(SeqNum(i * 10), SeqNum(i * 10 + 10));
        }
        let before = q.visits();
        assert_eq!(q.on_sack(SeqNum(10), SeqNum(10_000)), None);
        let first = q.visits() - before;
        let before = q.visits();
        assert_eq!(q.on_sack(SeqNum(10), SeqNum(10_000)), None);
        assert!(q.visits() - before <= 3, "second walk: one jump");
        assert!(first <= 1000 + 3, "first walk: {first}");
        assert_eq!(q.unsacked_run(SeqNum(0), 1000), (SeqNum(0), 10));
        assert_eq!(q.unsacked_run(SeqNum(10), 1000), (SeqNum(10_000), u32::MAX));
    }

    #[test]
    fn lost_marks_leave_on_resend_sack_or_ack() {
        let mut q = queue();
        q.mark_lost(1);
        q.mark_lost(0);
        assert_eq!(q.lost_bytes(), 200);
        assert_eq!(q.first_lost().unwrap().start, SeqNum(1000), "lowest first");
        q.on_retransmit(SeqNum(1000), SeqNum(1100), t(10), TxRate::at(t(10)));
        assert_eq!(q.lost_bytes(), 100);
        assert_eq!(q.first_lost().unwrap().start, SeqNum(1100));
        let first = q.iter().next().unwrap();
        assert_eq!((first.at, first.rexmits, first.lost), (t(10), 1, false));
        q.on_sack(SeqNum(1100), SeqNum(1200));
        assert_eq!((q.lost_bytes(), q.sacked_bytes()), (0, 100));
        assert_eq!(q.first_lost(), None);
        q.mark_lost(2);
        let d = q.on_ack(SeqNum(1350)).unwrap();
        assert_eq!(
            (q.lost_bytes(), q.sacked_bytes()),
            (0, 0),
            "acked bytes uncounted"
        );
        // The resent first record (sent at 10) is the newest delivered,
        // apart from the one SACKed before.
        assert_eq!((d.at, d.rexmits), (t(10), 1));
        assert_eq!(
            q.iter().next().unwrap().start,
            SeqNum(1350),
            "partial ack trims"
        );
    }

    #[test]
    fn rack_marks_oldest_first_and_stops_at_the_first_not_due() {
        let mut q = queue(); // sent at 0..4 ms
        q.on_sack(SeqNum(1400), SeqNum(1500)); // the one sent at 4 ms
        let wait = Duration::from_millis(10);
        // At 12 ms the records sent at 0, 1 and 2 ms are due, 3 ms is not.
        let (n, next) = q.rack_mark_lost(t(4), SeqNum(1500), wait, t(12));
        assert_eq!((n, next), (3, Some(t(13))));
        assert_eq!(q.lost_bytes(), 300);
        // A resend is timed anew and marked again only when its time is up.
        q.on_retransmit(SeqNum(1000), SeqNum(1100), t(12), TxRate::at(t(12)));
        let (n, next) = q.rack_mark_lost(t(12), SeqNum(1100), wait, t(13));
        assert_eq!((n, next), (1, Some(t(22))), "3 ms due; the resend is not");
        let (n, _) = q.rack_mark_lost(t(12), SeqNum(1100), wait, t(22));
        assert_eq!(n, 1, "the lost resend");
    }

    #[test]
    fn rack_treats_a_burst_as_the_segments_it_is_made_of() {
        // Five segments left at 0 ms, as one burst (one transmission) or
        // one by one; the fourth is SACKed and so the RACK segment. RACK
        // marks the three before it once their time is up, never the
        // fifth: it left after the RACK segment.
        let wait = Duration::from_millis(10);
        let marks = |burst: bool| {
            let mut q = SentQueue::default();
            if burst {
                q.on_send_run(SeqNum(1000), 5, 100, t(0), TxRate::at(t(0)));
            } else {
                for i in 0..5u32 {
                    let start = SeqNum(1000 + i * 100);
                    q.on_send(start, start + 100, t(0), TxRate::at(t(0)));
                }
            }
            q.on_sack(SeqNum(1300), SeqNum(1400));
            let early = q.rack_mark_lost(t(0), SeqNum(1400), wait, t(5));
            let due = q.rack_mark_lost(t(0), SeqNum(1400), wait, t(10));
            let again = q.rack_mark_lost(t(0), SeqNum(1400), wait, t(11));
            let lost: Vec<bool> = q.iter().map(|s| s.lost).collect();
            (early, due, again, lost)
        };
        let one_by_one = marks(false);
        assert_eq!(
            one_by_one,
            (
                (0, Some(t(10))),
                (3, None),
                (0, None),
                vec![true, true, true, false, false]
            )
        );
        assert_eq!(marks(true), one_by_one);
    }

    #[test]
    fn a_burst_given_back_in_part_keeps_the_transmission_of_what_left() {
        let mut q = SentQueue::default();
        q.on_send_run(SeqNum(1000), 5, 100, t(0), TxRate::at(t(0)));
        q.unsend_from(SeqNum(1200));
        assert_eq!(q.len(), 2);
        q.on_sack(SeqNum(1100), SeqNum(1200));
        let (n, _) = q.rack_mark_lost(t(0), SeqNum(1200), Duration::ZERO, t(1));
        assert_eq!(
            (n, q.lost_bytes()),
            (1, 100),
            "the first, not the given back"
        );
    }

    #[test]
    fn all_lost_then_undone_and_reneging_forgets_sacks_at_the_timeout() {
        let mut q = queue();
        q.on_sack(SeqNum(1400), SeqNum(1500));
        assert_eq!(q.mark_all_lost(), 400);
        q.unmark_lost();
        assert_eq!(q.lost_bytes(), 0);
        assert!(q.first_lost().is_none());
        q.note_reneging();
        assert_eq!(q.sacked_bytes(), 100, "kept until the timeout");
        assert_eq!(q.mark_all_lost(), 500);
        assert_eq!(q.sacked_bytes(), 0);
    }

    #[test]
    fn resegmenting_cuts_long_records_and_marks_them_lost() {
        let mut q = queue();
        q.on_sack(SeqNum(1100), SeqNum(1200));
        q.resegment(40);
        assert_eq!(q.len(), 15);
        assert!(q.iter().all(|s| s.end - s.start <= 40));
        assert_eq!(q.sacked_bytes(), 100);
        assert_eq!(q.lost_bytes(), 400, "every unSACKed piece");
        assert_eq!(q.first_lost().unwrap().start, SeqNum(1000));
    }
}
