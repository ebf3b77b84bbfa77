//! MSG_ZEROCOPY's completions, as Linux reports them (msg_zerocopy(7)).
//!
//! On a socket with SO_ZEROCOPY, each send with MSG_ZEROCOPY that queues
//! bytes takes the next 32-bit id. Once the peer has acknowledged all of
//! them the application may reuse its buffer, and the socket's error
//! queue says so: a `sock_extended_err` whose `ee_info..=ee_data` is a
//! range of ids. A completion that follows the last unread range extends
//! it, so one read can cover many sends. Our stack copies every byte into
//! its send ring, so each completion also says SO_EE_CODE_ZEROCOPY_COPIED,
//! which is what Linux says when it had to copy.

use std::collections::VecDeque;

#[derive(Default)]
pub struct ZeroCopy {
    next_id: u32,
    /// Sends not yet acknowledged: id, and the stream offset that ends it.
    pending: VecDeque<(u32, u64)>,
    /// Completed ranges of ids not yet read, oldest first.
    done: VecDeque<(u32, u32)>,
    /// Completions so far (each one wakes the socket's error queue).
    completions: u64,
}

impl ZeroCopy {
    /// A send whose last byte is at stream offset `end` (counted from the
    /// first byte the socket queued).
    pub fn sent(&mut self, end: u64) {
        self.pending.push_back((self.next_id, end));
        self.next_id = self.next_id.wrapping_add(1);
    }

    /// The peer has acknowledged the first `through` bytes.
    pub fn acked(&mut self, through: u64) {
        while let Some(&(id, end)) = self.pending.front() {
            if end > through {
                break;
            }
            self.pending.pop_front();
            self.completions += 1;
            match self.done.back_mut() {
                // A range spans less than 2^32 ids (Linux's bound).
                Some((lo, hi))
                    if hi.wrapping_add(1) == id && hi.wrapping_sub(*lo) < u32::MAX - 1 =>
                {
                    *hi = id
                }
                _ => self.done.push_back((id, id)),
            }
        }
    }

    /// The oldest unread range, taken off the queue.
    pub fn take(&mut self) -> Option<(u32, u32)> {
        self.done.pop_front()
    }

    pub fn has_unread(&self) -> bool {
        !self.done.is_empty()
    }

    pub fn completions(&self) -> u64 {
        self.completions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_in_order_join_the_unread_range_and_a_read_starts_a_new_one() {
        let mut z = ZeroCopy::default();
        z.sent(4000);
        z.sent(8000);
        z.sent(8001);
        z.acked(3999);
        assert_eq!(z.take(), None, "nothing is complete before its last byte");
        z.acked(8000);
        assert_eq!(z.completions(), 2);
        assert_eq!(z.take(), Some((0, 1)));
        z.acked(9000);
        assert_eq!(z.take(), Some((2, 2)), "read ranges are not extended");
        assert!(!z.has_unread());
    }
}
