//! The sender's record of every segment in flight: where it starts and
//! ends, when it was last (re)transmitted, and what is known of it (SACKed,
//! presumed lost). RACK (RFC 8985) reads the transmit times to tell lost
//! segments, lost retransmissions included, from late ones; recovery reads
//! the lost marks to choose what to resend and to count the pipe.
//!
//! Records are kept in sequence order, one per transmitted segment; a
//! range that is SACKed or resent in part is split at its edges, so that a
//! record's marks always hold for all of its bytes. Counters of SACKed and
//! lost bytes are kept as the marks change, so the pipe costs nothing.

use super::rate::{DeliveredNow, TxRate};
use super::SeqNum;
use crate::time::Instant;
use std::collections::VecDeque;

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

#[derive(Debug, Default)]
pub struct SentQueue {
    segs: VecDeque<Sent>,
    sacked_bytes: u32,
    lost_bytes: u32,
    /// Bytes marked lost since the last `take_lost` (each marking counts).
    lost_since: u32,
    /// What the ACK being processed delivered, for the rate sampler.
    delivered_now: DeliveredNow,
}

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

    /// Bytes SACKed and not yet cumulatively acknowledged.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked_bytes
    }

    /// Bytes presumed lost and not resent since.
    pub fn lost_bytes(&self) -> u32 {
        self.lost_bytes
    }

    /// Bytes marked lost since the last call: for congestion control.
    pub fn take_lost(&mut self) -> u32 {
        std::mem::take(&mut self.lost_since)
    }

    /// What the ACKs and SACKs since the last call delivered.
    pub fn take_delivered(&mut self) -> DeliveredNow {
        std::mem::take(&mut self.delivered_now)
    }

    /// New data `[start, end)` left at `now`.
    pub fn on_send(&mut self, start: SeqNum, end: SeqNum, now: Instant, tx: TxRate) {
        if start >= end || self.segs.back().is_some_and(|b| end <= b.end) {
            return;
        }
        let start = self.segs.back().map_or(start, |b| start.max(b.end));
        self.segs.push_back(Sent {
            start,
            end,
            at: now,
            rexmits: 0,
            sacked: false,
            lost: false,
            tx,
        });
    }

    /// Forgets what `ack` acknowledges; returns the newest-sent of the
    /// records it delivered that were not already SACKed.
    pub fn on_ack(&mut self, ack: SeqNum) -> Option<Delivered> {
        let mut newest: Option<Delivered> = None;
        while let Some(front) = self.segs.front_mut() {
            if front.start >= ack {
                break;
            }
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
        newest
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

    /// Splits records so that one starts at `at` (if a record spans it).
    fn split_at(&mut self, at: SeqNum) -> usize {
        let i = self.segs.partition_point(|s| s.end <= at);
        if let Some(s) = self.segs.get(i).copied() {
            if s.start < at {
                let mut right = s;
                right.start = at;
                self.segs[i].end = at;
                self.segs.insert(i + 1, right);
                return i + 1;
            }
        }
        i
    }

    /// The records covering `[start, end)` after splitting at both edges.
    fn range(&mut self, start: SeqNum, end: SeqNum) -> std::ops::Range<usize> {
        let i = self.split_at(start);
        let j = self.split_at(end);
        i..j
    }

    /// `[start, end)` was SACKed (and was not before): marks it; returns
    /// the newest-sent record it delivered.
    pub fn on_sack(&mut self, start: SeqNum, end: SeqNum) -> Option<Delivered> {
        let mut newest = None;
        for k in self.range(start, end) {
            let s = self.segs[k];
            if s.sacked {
                continue;
            }
            if s.lost {
                self.lost_bytes -= s.len();
            }
            self.sacked_bytes += s.len();
            self.segs[k].sacked = true;
            self.segs[k].lost = false;
            note(&mut newest, &s);
            self.delivered_now.note(s.len(), s.at, s.rexmits, s.tx);
        }
        newest
    }

    /// `[start, end)` was resent at `now`: no longer presumed lost.
    pub fn on_retransmit(&mut self, start: SeqNum, end: SeqNum, now: Instant, tx: TxRate) {
        for k in self.range(start, end) {
            let s = &mut self.segs[k];
            if s.lost {
                self.lost_bytes -= s.end - s.start;
            }
            s.lost = false;
            s.at = now;
            s.rexmits += 1;
            s.tx = tx;
        }
    }

    /// Marks record `k` lost (RACK, or everything unSACKed after an RTO).
    pub fn mark_lost(&mut self, k: usize) {
        let s = &mut self.segs[k];
        if !s.sacked && !s.lost {
            s.lost = true;
            self.lost_bytes += s.end - s.start;
            self.lost_since = self.lost_since.saturating_add(s.end - s.start);
        }
    }

    /// Marks every record not SACKed lost; returns how many bytes that is.
    pub fn mark_all_lost(&mut self) -> u32 {
        for k in 0..self.segs.len() {
            self.mark_lost(k);
        }
        self.lost_bytes
    }

    /// Drops every SACK mark (the receiver reneged on them).
    pub fn forget_sacks(&mut self) {
        for s in self.segs.iter_mut() {
            s.sacked = false;
        }
        self.sacked_bytes = 0;
    }

    /// Clears every lost mark (a loss episode that proved spurious).
    pub fn unmark_lost(&mut self) {
        for s in self.segs.iter_mut() {
            s.lost = false;
        }
        self.lost_bytes = 0;
    }

    pub fn get(&self, k: usize) -> Option<&Sent> {
        self.segs.get(k)
    }

    /// The first record presumed lost: what recovery resends next.
    pub fn first_lost(&self) -> Option<&Sent> {
        if self.lost_bytes == 0 {
            return None;
        }
        self.segs.iter().find(|s| s.lost)
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
    fn sack_splits_records_and_counts_bytes() {
        let mut q = queue();
        // A block that starts and ends inside records.
        let d = q.on_sack(SeqNum(1150), SeqNum(1250)).unwrap();
        assert_eq!(q.sacked_bytes(), 100);
        assert_eq!(q.len(), 7, "split at both edges");
        assert_eq!((d.at, d.end), (t(2), SeqNum(1250)), "newest delivered");
        // The same block again delivers nothing new.
        assert_eq!(q.on_sack(SeqNum(1150), SeqNum(1250)), None);
        assert_eq!(q.sacked_bytes(), 100);
    }

    #[test]
    fn lost_marks_leave_on_resend_sack_or_ack() {
        let mut q = queue();
        q.mark_lost(0);
        q.mark_lost(1);
        assert_eq!(q.lost_bytes(), 200);
        assert_eq!(q.first_lost().unwrap().start, SeqNum(1000));
        q.on_retransmit(SeqNum(1000), SeqNum(1100), t(10), TxRate::at(t(10)));
        assert_eq!(q.lost_bytes(), 100);
        let first = q.iter().next().unwrap();
        assert_eq!((first.at, first.rexmits, first.lost), (t(10), 1, false));
        q.on_sack(SeqNum(1100), SeqNum(1200));
        assert_eq!((q.lost_bytes(), q.sacked_bytes()), (0, 100));
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
    fn all_lost_then_undone() {
        let mut q = queue();
        q.on_sack(SeqNum(1400), SeqNum(1500));
        assert_eq!(q.mark_all_lost(), 400);
        q.unmark_lost();
        assert_eq!(q.lost_bytes(), 0);
        assert!(q.first_lost().is_none());
    }
}
