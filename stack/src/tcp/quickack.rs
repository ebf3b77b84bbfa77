//! Quick-ACK mode, as Linux: delayed ACKs (RFC 9293 3.8.6.3) save frames
//! in bulk, but at the start of a connection and after an idle pause they
//! hold back the sender, whose window grows only with ACKs (slow start
//! would stall 40 ms on every odd segment). So the first data segments,
//! and the first after more than an RTO without data, are acknowledged
//! at once: as many as half the receive window in segments, between 2
//! and 16 (Linux's `tcp_incr_quickack`).
//!
//! A conversation ("ping-pong": we answer within the delayed-ACK time of
//! receiving) ends quick-ACK mode, since our reply carries the ACK; it
//! resumes when the delayed-ACK timer fires before a reply did.

use super::connection::Connection;
use crate::time::Instant;

/// Linux's `TCP_MAX_QUICKACKS`.
const MAX_QUICK_ACKS: u32 = 16;

impl Connection {
    /// In-order data arrived at `now`: should it be acknowledged at once?
    pub(super) fn quick_ack_on_data(&mut self, now: Instant) -> bool {
        let idle = self
            .last_data_recv
            .is_none_or(|t| now.saturating_since(t) > self.rtt.rto());
        self.last_data_recv = Some(now);
        if idle {
            let window = self.rcv_adv.0.wrapping_sub(self.rcv_nxt.0);
            let segments = window / (2 * self.eff_mss.max(1));
            self.quick_acks = self.quick_acks.max(segments.clamp(2, MAX_QUICK_ACKS));
        }
        if self.quick_acks == 0 || self.pingpong {
            return false;
        }
        self.quick_acks -= 1;
        true
    }

    /// We send data: a reply soon after data arrived carries its ACK.
    pub(super) fn note_data_sent_for_quick_ack(&mut self, now: Instant) {
        if self
            .last_data_recv
            .is_some_and(|t| now.saturating_since(t) < self.cfg.delayed_ack)
        {
            self.pingpong = true;
        }
    }

    /// The delayed-ACK timer fired: no reply came in time.
    pub(super) fn note_delayed_ack_fired(&mut self) {
        self.pingpong = false;
    }
}
