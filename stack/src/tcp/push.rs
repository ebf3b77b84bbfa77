//! Where PSH goes. RFC 9293 (3.9.1) leaves it to the sender: data "pushed"
//! by the application should be delivered promptly. Linux, which most
//! receivers and test suites know, marks the segment that carries the
//! last byte of each application write; a later write that still fits in
//! the same unsent segment moves the mark to its own end. Retransmitted
//! pieces carry PSH only if they end a write too. We do the same, and
//! also when a segment empties the send buffer.
//!
//! Linux also marks the last segment of every burst of two or more it
//! hands to the device as one TSO/GSO packet ("force a PSH flag on TSO
//! packets", 4.19): a receiver's GRO then delivers the burst at once
//! instead of holding it for more. Its bursts are about a millisecond at
//! its pacing rate (`tcp_tso_autosize`): two segments at low rates, up to
//! 64 KiB at high ones, so bulk transfers see one PSH per 64 KiB. We mark
//! the same segments, so that receivers and test suites written against
//! Linux see what they expect.
//!
//! A write may also end a record (`end_record`, the socket's MSG_EOR):
//! later bytes never share a segment with it, sent or resent, so a
//! receiver reading segment by segment sees record boundaries, and a
//! segment cut short at one is not held by Nagle when more follows (Linux
//! holds back only the last buffer).

use super::connection::Connection;
use super::seq::SeqNum;
use std::collections::VecDeque;

/// Linux's largest GSO packet (`GSO_LEGACY_MAX_SIZE`).
const BURST_MAX_BYTES: u64 = 65_536;

/// The most write ends remembered; past it the newest replaces the last
/// (a flood of tiny writes then gets fewer PSH flags, nothing else).
const MAX_MARKS: usize = 64;

/// The most record ends remembered; past it the newest replaces the last
/// (two records then share segments).
const MAX_RECORDS: usize = 1024;

/// The first of `marks` (ascending) past `seq`. Asked for every segment
/// sent: the list is usually empty or its front is the answer (the marks
/// below SND.UNA are pruned), so look there before searching.
fn first_after(marks: &VecDeque<SeqNum>, seq: SeqNum) -> Option<SeqNum> {
    match marks.front() {
        None => None,
        Some(&m) if m > seq => Some(m),
        Some(_) => {
            let i = marks.partition_point(|m| *m <= seq);
            marks.get(i).copied()
        }
    }
}

impl Connection {
    /// The application's write ended at the buffer's end.
    pub(super) fn mark_push(&mut self) {
        let end = self.send_buf_seq + self.send_buf.len() as u32;
        let mss = self.eff_mss.max(1);
        let full = self.push_marks.len() >= MAX_MARKS;
        match self.push_marks.back_mut() {
            // Still unsent and within a segment of this end: one mark.
            Some(last) if *last >= self.snd_max && end - *last < mss => *last = end,
            Some(last) if full => *last = end,
            _ => self.push_marks.push_back(end),
        }
    }

    /// The bytes written so far form a record: no later byte goes in a
    /// segment with any of them (MSG_EOR), nor when resent. A no-op when
    /// nothing is unacknowledged.
    pub fn end_record(&mut self) {
        self.unplan_burst();
        let end = self.send_buf_seq + self.send_buf.len() as u32;
        if self.send_buf.is_empty() || self.record_ends.back() == Some(&end) {
            return;
        }
        if self.record_ends.len() >= MAX_RECORDS {
            self.record_ends.pop_back();
        }
        self.record_ends.push_back(end);
    }

    /// Forgets marks the peer has acknowledged.
    pub(super) fn prune_push_marks(&mut self, una: SeqNum) {
        while self.push_marks.front().is_some_and(|m| *m <= una) {
            self.push_marks.pop_front();
        }
        while self.record_ends.front().is_some_and(|m| *m <= una) {
            self.record_ends.pop_front();
        }
    }

    /// The first record end past `seq`, if any.
    pub(super) fn record_end_after(&self, seq: SeqNum) -> Option<SeqNum> {
        first_after(&self.record_ends, seq)
    }

    /// Does the segment [seq, seq + len) end a write?
    pub(super) fn ends_a_write(&self, seq: SeqNum, len: u32) -> bool {
        first_after(&self.push_marks, seq).is_some_and(|m| m <= seq + len)
    }

    /// Counts a new-data segment into the current burst; true if it ends
    /// a burst of two or more (it then gets PSH). `ends_write`: it already
    /// carries PSH for a write, which ends Linux's buffer and so its
    /// burst too. `more_now`: another segment could follow at once.
    pub(super) fn ends_a_burst(&mut self, ends_write: bool, more_now: bool) -> bool {
        let limit = self.burst_limit();
        self.ends_a_burst_of(limit, ends_write, more_now)
    }

    /// `ends_a_burst` with the burst's limit known (`burst_limit`).
    pub(super) fn ends_a_burst_of(&mut self, limit: u32, ends_write: bool, more_now: bool) -> bool {
        let n = self.burst_segs + 1;
        let last = n >= limit || !more_now;
        self.burst_segs = if last || ends_write { 0 } else { n };
        last && n >= 2
    }

    /// A burst ended without a segment to close it (nothing more to send).
    pub(super) fn end_burst(&mut self) {
        self.burst_segs = 0;
    }

    /// Segments per burst, as Linux's `tcp_tso_autosize`: what its pacing
    /// rate sends in 1/1024 s (twice cwnd per smoothed RTT in slow start,
    /// 1.2 times later; unbounded before an RTT is known), plus 64 KiB
    /// halved for every 512 us of minimum RTT, at most 64 KiB, at least two.
    pub(super) fn burst_limit(&self) -> u32 {
        let mss = self.eff_mss.max(1);
        let rate = match (self.cc.pacing_rate(), self.rtt.srtt()) {
            (Some(r), _) => r as u64,
            (None, Some(srtt)) if !srtt.is_zero() => {
                let flight = self.snd_nxt - self.snd_una;
                let window = u64::from(self.cc.cwnd().max(flight));
                let percent = if self.cc.cwnd() < self.cc.ssthresh() / 2 {
                    200
                } else {
                    120
                };
                (window * percent * 1_000_000 / 100) / (srtt.as_micros() as u64).max(1)
            }
            _ => u64::MAX,
        };
        let mut bytes = rate >> 10;
        if let Some(min_rtt) = self.rack.min_rtt {
            let halvings = min_rtt.as_micros() >> 9;
            if halvings < 32 {
                bytes = bytes.saturating_add(BURST_MAX_BYTES >> halvings);
            }
        }
        let segs = bytes.min(BURST_MAX_BYTES) / u64::from(mss);
        // Linux's tcp_cwnd_test also keeps each packet to half the window,
        // so that two are in flight.
        let half_cwnd = (self.cc.cwnd() / mss / 2).max(1);
        let least = self.cfg.min_burst_segments.max(2);
        (segs as u32).max(least).min(half_cwnd.max(2))
    }
}
