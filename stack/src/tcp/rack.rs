//! RACK (RFC 8985): loss detection by time instead of by counting.
//!
//! A segment is lost when a segment sent after it has been delivered and
//! more than an RTT plus a reordering window has passed since it was
//! sent. Because the test uses the time of the latest (re)transmission, a
//! lost retransmission is found the same way, about an RTT after it went
//! out, instead of waiting for the retransmission timer, and reordering up
//! to the window never triggers a spurious retransmission. The window is a
//! quarter of the minimum RTT, widened while D-SACKs show that we resent
//! in vain, and zero in recovery on a path that has never reordered.

use super::connection::Connection;
use super::sent::Delivered;
use super::SeqNum;
use crate::time::Instant;
use std::time::Duration;

/// Loss-recovery rounds a widened reordering window lasts (RFC 8985 6.2).
const REO_WND_PERSIST: u32 = 16;

#[derive(Debug, Clone)]
pub struct Rack {
    /// Send time and end of the most recently sent segment delivered.
    pub xmit_ts: Option<Instant>,
    pub end_seq: SeqNum,
    /// The RTT that segment measured.
    pub rtt: Duration,
    pub min_rtt: Option<Duration>,
    /// A segment was delivered after one sent later than it.
    pub reordering_seen: bool,
    pub reo_wnd_mult: u32,
    pub reo_wnd_persist: u32,
    /// A D-SACK widened the window in the round ending here.
    pub dsack_round: Option<SeqNum>,
    /// The reordering timer: look again when a segment's time is up.
    pub timer_at: Option<Instant>,
}

impl Default for Rack {
    fn default() -> Self {
        Rack {
            xmit_ts: None,
            end_seq: SeqNum(0),
            rtt: Duration::ZERO,
            min_rtt: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
            timer_at: None,
        }
    }
}

impl Connection {
    /// RFC 8985 6.2 step 2: an ACK delivered `d`, the newest-sent segment
    /// among those it covered.
    pub(super) fn rack_update(&mut self, d: Delivered, now: Instant) {
        let rtt = now.saturating_since(d.at);
        if d.rexmits > 0 {
            // The ACK may be for the original: only trust it if it came
            // later than any original could have (at least min RTT after
            // the resend).
            if self.rack.min_rtt.is_some_and(|m| rtt < m) {
                return;
            }
        }
        self.rack.min_rtt = Some(self.rack.min_rtt.map_or(rtt, |m| m.min(rtt)));
        let newer = match self.rack.xmit_ts {
            None => true,
            Some(ts) => d.at > ts || (d.at == ts && d.end > self.rack.end_seq),
        };
        if newer {
            self.rack.xmit_ts = Some(d.at);
            self.rack.end_seq = d.end;
            self.rack.rtt = rtt;
        }
    }

    /// RFC 8985 6.2 step 3: a segment never resent was delivered below the
    /// highest delivered sequence number: the path reorders.
    pub(super) fn rack_note_order(&mut self, d: Delivered) {
        if d.rexmits == 0 && d.end < self.snd_fack {
            self.rack.reordering_seen = true;
        }
    }

    /// RFC 8985 6.2 step 4: a D-SACK arrived (we resent in vain): widen
    /// the window, once per round trip.
    pub(super) fn rack_on_dsack(&mut self) {
        if let Some(end) = self.rack.dsack_round {
            if self.snd_una >= end {
                self.rack.dsack_round = None;
            }
        }
        if self.rack.dsack_round.is_none() {
            self.rack.dsack_round = Some(self.snd_max);
            self.rack.reo_wnd_mult += 1;
            self.rack.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// Recovery ended: a widened window shrinks back after 16 recoveries
    /// without D-SACKs.
    pub(super) fn rack_on_recovery_end(&mut self) {
        if self.rack.reo_wnd_persist > 0 {
            self.rack.reo_wnd_persist -= 1;
            if self.rack.reo_wnd_persist == 0 {
                self.rack.reo_wnd_mult = 1;
            }
        }
    }

    /// RFC 8985 6.2 step 4: the reordering window.
    fn rack_reo_wnd(&self) -> Duration {
        if !self.rack.reordering_seen
            && (self.recovery.episode()
                || self.sent.sacked_bytes() >= self.dup_thresh() * self.eff_mss)
        {
            return Duration::ZERO;
        }
        let min_rtt = self.rack.min_rtt.unwrap_or_default();
        let wnd = min_rtt / 4 * self.rack.reo_wnd_mult;
        match self.rtt.srtt() {
            Some(srtt) => wnd.min(srtt),
            None => wnd,
        }
    }

    /// RFC 8985 6.2 step 5: marks lost every segment sent before the most
    /// recently delivered one whose time (RTT plus reordering window since
    /// it left) is up, and arms the reordering timer for the next one due.
    /// The record walks its transmissions oldest first and stops at the
    /// first not yet due (`SentQueue::rack_mark_lost`), so the work per ACK
    /// does not grow with the flight. Returns true if anything was newly
    /// marked lost.
    pub(super) fn rack_detect_loss(&mut self, now: Instant) -> bool {
        self.rack.timer_at = None;
        // Nothing outstanding (the usual case once an ACK covers the
        // flight): nothing to mark, no reordering window to compute.
        if self.sent.is_empty() {
            return false;
        }
        let Some(rack_ts) = self.rack.xmit_ts else {
            return false;
        };
        let wait = self.rack.rtt + self.rack_reo_wnd();
        let (marked, next) = self
            .sent
            .rack_mark_lost(rack_ts, self.rack.end_seq, wait, now);
        self.counters.rack_lost_segments += u64::from(marked);
        self.rack.timer_at = next;
        marked > 0
    }
}
