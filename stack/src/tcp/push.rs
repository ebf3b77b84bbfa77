//! Where PSH goes. RFC 9293 (3.9.1) leaves it to the sender: data "pushed"
//! by the application should be delivered promptly. Linux, which most
//! receivers and test suites know, marks the segment that carries the
//! last byte of each application write; a later write that still fits in
//! the same unsent segment moves the mark to its own end. Retransmitted
//! pieces carry PSH only if they end a write too. We do the same, and
//! also when a segment empties the send buffer.

use super::connection::Connection;
use super::seq::SeqNum;

/// The most write ends remembered; past it the newest replaces the last
/// (a flood of tiny writes then gets fewer PSH flags, nothing else).
const MAX_MARKS: usize = 64;

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

    /// Forgets marks the peer has acknowledged.
    pub(super) fn prune_push_marks(&mut self, una: SeqNum) {
        while self.push_marks.front().is_some_and(|m| *m <= una) {
            self.push_marks.pop_front();
        }
    }

    /// Does the segment [seq, seq + len) end a write?
    pub(super) fn ends_a_write(&self, seq: SeqNum, len: u32) -> bool {
        let end = seq + len;
        let i = self.push_marks.partition_point(|m| *m <= seq);
        self.push_marks.get(i).is_some_and(|m| *m <= end)
    }
}
