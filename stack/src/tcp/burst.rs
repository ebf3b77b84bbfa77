//! Bursts: full segments of new data planned together.
//!
//! When the windows, the pacing schedule and the queued data let several
//! full segments go at once, deciding and recording each on its own
//! repeats the same work: every check gives the same answer, every record
//! the same times. So the first segment is decided as any other
//! (`send_new`), and the full segments that may follow it in the same
//! output pass are planned with it: recorded as sent in one step (one
//! rate snapshot, one pacing step, one timer arming; still one record
//! each, for SACK and RACK), then handed out one by one as a header over
//! their bytes. Linux does the same for the segments of a TSO/GSO packet.
//!
//! A planned segment carries the flags it would have carried if decided
//! alone: PSH at the end of a write, of a record, of the buffer or of a
//! burst (`push.rs`), ECT. A plan lives within one output pass at one
//! instant: whatever else reaches the connection first (a segment, a
//! timer, a path MTU, a close, a write or a setting that moves where PSH
//! goes) gives the segments not yet handed out back to the unsent data,
//! as if they had never been planned.

use super::connection::{Connection, Transmit};
use super::seq::SeqNum;
use crate::time::{nanos, Instant};
use crate::wire::tcp::Flags;
use std::time::Duration;

/// The most segments one plan holds (one bit each in `Burst::psh`).
const MOST_PLANNED: u32 = 64;

#[derive(Debug, Clone, Copy)]
pub(super) struct Burst {
    /// The next planned segment starts here; the last ends at `end`.
    next: SeqNum,
    end: SeqNum,
    /// Payload bytes of each.
    mss: u32,
    /// Bit i: the i-th planned segment carries PSH.
    psh: u64,
    /// Bit i: the i-th planned segment ends a burst in `push.rs`'s count,
    /// which then starts again from zero; `count_before`: the count
    /// before the first. (To give the count back with the segments.)
    resets: u64,
    count_before: u32,
    /// Planned segments handed out so far.
    sent: u32,
    ect: bool,
    /// The instant the plan was made for.
    at: Instant,
    /// One segment's time at the pacing rate (zero when not paced).
    paced: Duration,
}

impl Connection {
    /// After a full segment of new data left at `now` through the usual
    /// decision: plans the full segments that may follow it at once.
    pub(super) fn plan_burst(&mut self, now: Instant) {
        let mss = self.eff_mss;
        let start = self.snd_nxt;
        let buf_end = self.send_buf_seq + self.send_buf.len() as u32;
        let queued = buf_end - start;
        let mut by_data = queued / mss;
        if self.fin_queued && by_data * mss == queued {
            // The last would carry the FIN: it goes the usual way.
            by_data = by_data.saturating_sub(1);
        }
        if by_data == 0
            || !self.syn_acked()
            || start != self.snd_max
            || self.recovery.episode()
            || self.recovery.fast()
            || self.sent.lost_bytes() > 0
            || self.is_syn_data_again(start)
            || self.ecn_cwr_due()
        {
            return;
        }
        // Limited Transmit's segments go one by one: past cwnd, they
        // would change the burst limit from one to the next (`push.rs`).
        if self.limited_transmit() > 0 {
            return;
        }
        let flight = start - self.snd_una;
        let window = self.snd_wnd.min(self.cc.cwnd());
        // No segment crosses a record's end (`push.rs`).
        let by_record = self
            .record_end_after(start)
            .map_or(u32::MAX, |r| (r - start) / mss);
        // As the next segment's own decision would, open a quantum if
        // the last one ended with the segment just sent.
        self.open_quantum(now);
        let (by_pacing, paced) = self.paced_segments(mss);
        let k = (window.saturating_sub(flight) / mss)
            .min(by_data)
            .min(by_record)
            .min(by_pacing)
            .min(MOST_PLANNED);
        if k == 0 {
            return;
        }
        let end = start + k * mss;
        let count_before = self.burst_segs;
        let (psh, resets) = self.planned_pushes(start, k, flight);
        let tx = self.rate.on_send(now, false);
        self.sent.on_send_run(start, k, mss, now, tx);
        if let Some(next) = self.pace_next.filter(|_| !paced.is_zero()) {
            self.pace_next = Some(next + paced * k);
        }
        self.counters.bytes_sent += u64::from(k * mss);
        self.snd_nxt = end;
        self.snd_max = end;
        self.last_data_sent = Some(now);
        self.note_unsent_drained();
        self.note_flight();
        self.arm_tlp(now);
        self.burst = Some(Burst {
            next: start,
            end,
            mss,
            psh,
            resets,
            count_before,
            sent: 0,
            ect: self.ecn_ok(),
            at: now,
            paced,
        });
    }

    /// How many more segments of `mss` bytes the pacing schedule lets
    /// leave in the quantum `open_quantum` left open (each moves it on by
    /// the second value).
    fn paced_segments(&self, mss: u32) -> (u32, Duration) {
        let Some(rate) = self.cc.pacing_rate() else {
            return (u32::MAX, Duration::ZERO);
        };
        let each = super::pacing::time_for(f64::from(mss), rate);
        match (self.pace_next, self.pace_quantum_end()) {
            _ if each.is_zero() => (u32::MAX, each),
            (None, _) => (u32::MAX, each),
            // The segments that start before the quantum ends (in u64: a
            // u128 division costs a call per plan).
            (Some(next), Some(until)) => {
                let left = nanos(until - next).div_ceil(nanos(each));
                (left.min(u64::from(u32::MAX)) as u32, each)
            }
            // `open_quantum` opened none: the schedule is ahead of now.
            (Some(_), None) => (0, each),
        }
    }

    /// Which of `k` full segments from `start` carry PSH, as each would
    /// if decided alone (`segment_at`, then `ends_a_burst`); advances the
    /// burst count as they would, noting where it starts again (bits of
    /// the second value). `flight`: before the first of them.
    fn planned_pushes(&mut self, start: SeqNum, k: u32, flight: u32) -> (u64, u64) {
        let mss = self.eff_mss;
        let end = start + k * mss;
        // Segments that end a write: those holding a mark (`push.rs`).
        let mut pushed = 0u64;
        let first = self.push_marks.partition_point(|m| *m <= start);
        for m in self.push_marks.range(first..).take_while(|m| **m <= end) {
            pushed |= 1 << ((*m - start - 1) / mss);
        }
        // Only the last can end the buffer or a record (no plan crosses
        // one), and only after it may nothing more be sendable.
        let buf_end = self.send_buf_seq + self.send_buf.len() as u32;
        let empties = end == buf_end && !self.cork_suppresses_push(end);
        if empties || self.record_end_after(start) == Some(end) {
            pushed |= 1 << (k - 1);
        }
        let last_seq = start + (k - 1) * mss;
        let more_after_last = self.more_sendable_after(last_seq, mss, flight + (k - 1) * mss);
        // The same limit for all of them: the rate and windows stand still.
        let limit = self.burst_limit();
        let (mut psh, mut resets) = (pushed, 0u64);
        for i in 0..k {
            let more = i + 1 < k || more_after_last;
            if self.ends_a_burst_of(limit, pushed >> i & 1 == 1, more) {
                psh |= 1 << i;
            }
            if self.burst_segs == 0 {
                resets |= 1 << i;
            }
        }
        (psh, resets)
    }

    /// The next planned segment, if a plan made at `now` has one left.
    pub(super) fn next_planned(&mut self, now: Instant) -> Option<Transmit> {
        let b = self.burst.as_ref()?;
        if b.at != now {
            self.unplan_burst();
            return None;
        }
        let (seq, mss, ect) = (b.next, b.mss, b.ect);
        let flags = if b.psh >> b.sent & 1 == 1 {
            Flags::ACK | Flags::PSH
        } else {
            Flags::ACK
        };
        let mut t = self.control(seq, flags);
        t.payload_offset = (seq - self.send_buf_seq) as usize;
        t.payload_len = mss as usize;
        t.ect = ect;
        self.note_advertised(&t);
        self.counters.burst_segments += 1;
        let b = self.burst.as_mut().expect("checked");
        b.next += mss;
        b.sent += 1;
        if b.next == b.end {
            self.burst = None;
        }
        Some(t)
    }

    /// Gives the planned segments not yet handed out back to the unsent
    /// data: something other than the output pass reached the connection.
    #[inline]
    pub(super) fn unplan_burst(&mut self) {
        if self.burst.is_some() {
            self.give_back_burst();
        }
    }

    fn give_back_burst(&mut self) {
        let Some(b) = self.burst.take() else { return };
        let left = (b.end - b.next) / b.mss;
        self.sent.unsend_from(b.next);
        self.snd_nxt = b.next;
        self.snd_max = b.next;
        self.counters.bytes_sent -= u64::from(b.end - b.next);
        if let Some(next) = self.pace_next.filter(|_| !b.paced.is_zero()) {
            let back = crate::time::nanos(b.paced * left);
            self.pace_next = Some(Instant::from_nanos(next.as_nanos().saturating_sub(back)));
        }
        // The burst count as the last segment handed out left it.
        let out = b.resets & ((1u64 << b.sent) - 1);
        self.burst_segs = match out.checked_ilog2() {
            Some(r) => b.sent - 1 - r,
            None => b.count_before + b.sent,
        };
    }
}
