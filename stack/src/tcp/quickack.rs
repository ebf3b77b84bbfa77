//! Quick-ACK mode, as Linux: delayed ACKs (RFC 9293 3.8.6.3) save frames
//! in bulk, but at the start of a connection and after an idle pause they
//! hold back the sender, whose window grows only with ACKs (slow start
//! would stall 40 ms on every odd segment). So the first data segments,
//! and the first after more than an RTO without data, are acknowledged
//! at once: as many as half the receive window in segments, between 2
//! and 16 (Linux's `tcp_incr_quickack`).
//!
//! A conversation ("ping-pong": we send within the delayed-ACK time of
//! receiving data, or of the SYN-ACK when our first data carries the
//! handshake's ACK) ends quick-ACK mode, since our reply carries the ACK; it
//! resumes when the delayed-ACK timer fires before a reply did.

use super::connection::Connection;
use crate::time::Instant;

/// Linux's `TCP_MAX_QUICKACKS`.
const MAX_QUICK_ACKS: u32 = 16;

impl Connection {
    /// In-order data arrived at `now`: should it be acknowledged at once?
    pub(super) fn quick_ack_on_data(&mut self, now: Instant) -> bool {
        let idle = self.last_data_recv.is_none_or(|t| now > t + self.rtt.rto());
        self.last_data_recv = Some(now);
        self.last_data_recv_at = Some(now);
        self.last_heard = Some(now);
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

    /// We send data: a reply soon after data (or the handshake's end)
    /// arrived carries its ACK.
    pub(super) fn note_data_sent_for_quick_ack(&mut self, now: Instant) {
        if self
            .last_heard
            .is_some_and(|t| now.saturating_since(t) < self.cfg.delayed_ack)
        {
            self.pingpong = true;
        }
    }

    /// A bare ACK went out. Before any data arrived, that was the
    /// handshake's own ACK: the SYN-ACK found no write waiting, so what we
    /// send next is not a reply (Linux's delayed-ACK clock is not started
    /// then; only a write waiting at the SYN-ACK, whose data carries the
    /// ACK, starts it).
    pub(super) fn note_bare_ack_sent(&mut self) {
        if self.last_data_recv.is_none() {
            self.last_heard = None;
        }
    }

    /// The delayed-ACK timer fired: no reply came in time.
    pub(super) fn note_delayed_ack_fired(&mut self) {
        self.pingpong = false;
    }
}
