//! NewReno: RFC 5681 slow start and congestion avoidance with the fast
//! recovery of RFC 6582.

use super::CongestionControl;
use crate::time::Instant;
use std::time::Duration;

pub struct NewReno {
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged since cwnd last grew in congestion avoidance.
    ca_acked: u32,
}

impl NewReno {
    pub fn new(mss: u32, initial_window: u32) -> Self {
        // RFC 5681 3.1: ssthresh starts arbitrarily high.
        NewReno {
            mss,
            cwnd: initial_window,
            ssthresh: u32::MAX,
            ca_acked: 0,
        }
    }

    /// RFC 5681 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS).
    fn halve(&self, flight: u32) -> u32 {
        (flight / 2).max(2 * self.mss)
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "newreno"
    }
    fn mss(&self) -> u32 {
        self.mss
    }
    fn cwnd(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, acked: u32, _now: Instant, _rtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            // Slow start by bytes acknowledged (RFC 3465 2.2 without its
            // limit L, as Linux): a stretch ACK for a batch of segments
            // grows the window as much as per-segment ACKs would have.
            self.cwnd = self.cwnd.saturating_add(acked);
        } else {
            // Congestion avoidance: one SMSS per cwnd of acknowledged bytes,
            // i.e. about one SMSS per RTT (the byte-counting form of 3.1).
            self.ca_acked = self.ca_acked.saturating_add(acked);
            if self.ca_acked >= self.cwnd {
                self.ca_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        }
    }

    fn reduce(&mut self, flight: u32, _now: Instant) {
        // RFC 5681 eq. (4).
        self.ssthresh = self.halve(flight);
        self.cwnd = self.ssthresh;
        self.ca_acked = 0;
    }

    fn set_ssthresh(&mut self, ssthresh: u32) {
        self.ssthresh = ssthresh.max(2 * self.mss);
    }

    fn set_cwnd(&mut self, cwnd: u32) {
        self.cwnd = cwnd.max(self.mss);
        self.ca_acked = 0;
    }

    fn undo(&mut self, s: &super::Saved) {
        self.cwnd = self.cwnd.max(s.cwnd);
        self.ssthresh = self.ssthresh.max(s.ssthresh);
        self.ca_acked = 0;
    }

    fn on_rto(&mut self, flight: u32, _now: Instant) {
        // RFC 5681 eq. (4) and the loss window of one segment.
        self.ssthresh = self.halve(flight);
        self.cwnd = self.mss;
        self.ca_acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn slow_start_grows_by_the_bytes_each_ack_covers() {
        let mut c = NewReno::new(MSS, 2 * MSS);
        c.on_ack(500, Instant::ZERO, None);
        assert_eq!(c.cwnd(), 2500, "grows by N when N < SMSS");
        c.on_ack(3000, Instant::ZERO, None);
        assert_eq!(c.cwnd(), 5500, "a stretch ACK grows it by all it covers");
    }

    #[test]
    fn fast_recovery_trace_rfc6582() {
        let mut c = NewReno::new(MSS, 10 * MSS);
        c.on_enter_recovery(20 * MSS, Instant::ZERO);
        assert_eq!(c.ssthresh(), 10 * MSS, "half the flight");
        assert_eq!(c.cwnd(), 13 * MSS, "ssthresh + 3 SMSS");
        c.on_dup_ack_in_recovery();
        assert_eq!(c.cwnd(), 14 * MSS);
        c.on_partial_ack(3 * MSS);
        assert_eq!(c.cwnd(), 12 * MSS, "deflate by 3000, add back 1000");
        c.on_partial_ack(500);
        assert_eq!(
            c.cwnd(),
            12 * MSS - 500,
            "less than SMSS acked: no add-back"
        );
        c.on_exit_recovery(4 * MSS);
        assert_eq!(c.cwnd(), 5 * MSS, "min(ssthresh, flight + SMSS)");
    }

    #[test]
    fn rto_collapses_to_loss_window() {
        let mut c = NewReno::new(MSS, 10 * MSS);
        c.on_rto(3 * MSS, Instant::ZERO);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 2 * MSS, "never below 2 SMSS");
    }
}
