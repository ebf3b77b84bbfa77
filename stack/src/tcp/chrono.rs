//! Where a sender's time goes, as Linux's chronographs report it in
//! `tcp_info` (`busy_time`, `rwnd_limited`, `sndbuf_limited`): the time
//! the connection had data to deliver, and of that, the time the peer's
//! receive window held it back or the send buffer was full. They tell
//! a user whether a slow transfer waited on the network, the receiver or
//! the application. One chronograph runs at a time, the most telling
//! (send buffer over receive window over busy); it stops when nothing is
//! left unacknowledged or unsent.
//!
//! Measured at the end of each transmit pass (when Linux's
//! `tcp_write_xmit` would start or stop them) and when an ACK empties the
//! send buffer. The send buffer counts as the limit while a writer was
//! turned away and the buffer has no room (not when the unsent bound,
//! `unsent.rs`, turned it away: that is a choice, not a shortage).

use super::connection::Connection;
use crate::time::Instant;
use std::time::Duration;

/// What holds the sender back; ordered by how telling it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    /// Data to deliver, nothing else to blame.
    Busy = 0,
    /// The peer's receive window has no room for the next segment.
    RwndLimited = 1,
    /// A writer waits for room in a full send buffer.
    SndbufLimited = 2,
}

#[derive(Debug, Clone, Default)]
pub struct Chrono {
    running: Option<(Limit, Instant)>,
    spent: [Duration; 3],
}

impl Chrono {
    fn switch(&mut self, to: Option<Limit>, now: Instant) {
        if let Some((l, since)) = self.running {
            self.spent[l as usize] += now.saturating_since(since);
        }
        self.running = to.map(|l| (l, now));
    }

    /// Starts `l` unless something more telling runs.
    pub fn start(&mut self, l: Limit, now: Instant) {
        if self.running.is_none_or(|(r, _)| l > r) {
            self.switch(Some(l), now);
        }
    }

    /// Stops `l` if it runs: back to busy.
    pub fn stop(&mut self, l: Limit, now: Instant) {
        if self
            .running
            .is_some_and(|(r, _)| r == l && l != Limit::Busy)
        {
            self.switch(Some(Limit::Busy), now);
        }
    }

    /// Nothing left to deliver: every chronograph stops.
    pub fn stop_all(&mut self, now: Instant) {
        self.switch(None, now);
    }

    /// Time spent in each, the running one counted up to `now`.
    pub fn spent(&self, now: Instant) -> [Duration; 3] {
        let mut s = self.spent;
        if let Some((l, since)) = self.running {
            s[l as usize] += now.saturating_since(since);
        }
        s
    }
}

impl Connection {
    /// The end of a transmit pass: data queued keeps the clock running,
    /// and the peer's window is to blame if it has no room for the next
    /// segment.
    pub(super) fn chrono_after_pass(&mut self, now: Instant) {
        if self.send_buf.is_empty() {
            self.chrono.stop_all(now);
            return;
        }
        self.chrono.start(Limit::Busy, now);
        if self.send_blocked && self.send_buf.free() == 0 {
            self.chrono.start(Limit::SndbufLimited, now);
            return;
        }
        self.chrono.stop(Limit::SndbufLimited, now);
        let unsent = self.unsent() as u32;
        let next = unsent.min(self.eff_mss);
        let in_flight = self.snd_nxt - self.snd_una;
        if unsent > 0 && self.syn_acked() && in_flight + next > self.snd_wnd {
            self.chrono.start(Limit::RwndLimited, now);
        } else {
            self.chrono.stop(Limit::RwndLimited, now);
        }
    }

    /// An ACK took the last unacknowledged byte, and nothing waits.
    pub(super) fn chrono_on_ack(&mut self, now: Instant) {
        if self.send_buf.is_empty() {
            self.chrono.stop_all(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runs_at_a_time_the_most_telling() {
        let t = |ms| Instant::from_millis(ms);
        let mut c = Chrono::default();
        c.start(Limit::Busy, t(10));
        c.start(Limit::RwndLimited, t(10));
        c.start(Limit::Busy, t(50)); // busy does not displace the window
        c.stop(Limit::RwndLimited, t(210));
        c.stop_all(t(240));
        c.start(Limit::Busy, t(240));
        c.start(Limit::RwndLimited, t(240));
        c.stop(Limit::RwndLimited, t(340));
        let s = c.spent(t(360));
        assert_eq!(s[Limit::RwndLimited as usize], Duration::from_millis(300));
        assert_eq!(s[Limit::Busy as usize], Duration::from_millis(50));
        c.stop_all(t(360));
        assert_eq!(c.spent(t(999)), s, "stopped: no more time counted");
    }
}
