//! Pacing: spreading data segments over time at the rate congestion
//! control asks for (BBR's `pacing_rate`), instead of sending a window at
//! once whenever an ACK opens it.
//!
//! Each data segment moves a schedule forward by its length over the
//! rate; a segment may leave once the schedule has reached now. The
//! schedule may lag behind now by one burst at most, so that a pause in
//! sending banks no more than a burst of credit, and bursts of a few
//! segments spare the caller a timer per segment at multi-gigabit rates.
//! When pacing holds data back, `pace_at` becomes a timer: the caller's
//! wheel brings the connection back when the schedule allows.

use super::connection::Connection;
use crate::time::Instant;
use std::time::Duration;

/// The longest burst: a little time at the pacing rate, bounded in bytes.
const BURST_TIME: Duration = Duration::from_micros(100);
const BURST_MAX: f64 = 64.0 * 1024.0;

/// How long `bytes` take at `rate` bytes per second (in whole
/// nanoseconds: `Duration::from_secs_f64` costs a hundred instructions,
/// per segment here).
pub(super) fn time_for(bytes: f64, rate: f64) -> Duration {
    Duration::from_nanos((bytes * 1e9 / rate) as u64)
}

impl Connection {
    /// Whether a data segment may leave now; if not, arms the pacing timer.
    pub(super) fn pacing_allows(&mut self, now: Instant) -> bool {
        match self.pace_next {
            Some(next) if self.cc.pacing_rate().is_some() && next > now => {
                self.pace_at = Some(next);
                false
            }
            _ => {
                self.pace_at = None;
                true
            }
        }
    }

    /// `bytes` of data left at `now`: advance the schedule.
    pub(super) fn on_paced_send(&mut self, bytes: u32, now: Instant) {
        let Some(rate) = self.cc.pacing_rate() else {
            self.pace_next = None;
            return;
        };
        let burst_bytes =
            (rate * BURST_TIME.as_secs_f64()).clamp(2.0 * f64::from(self.eff_mss), BURST_MAX);
        let burst = time_for(burst_bytes, rate);
        let start = match self.pace_next {
            Some(next) if next + burst > now => next,
            _ if now.as_nanos() > burst.as_nanos() as u64 => {
                Instant::from_nanos(now.as_nanos() - burst.as_nanos() as u64)
            }
            _ => now,
        };
        self.pace_next = Some(start + time_for(f64::from(bytes), rate));
        if self.pace_at.is_some_and(|at| at <= now) {
            self.pace_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::tcp::congestion::Algorithm;
    use crate::tcp::{Config, Connection, SeqNum};
    use crate::time::Instant;

    #[test]
    fn a_paced_connection_spreads_its_segments() {
        let cfg = Config {
            congestion: Algorithm::Bbr,
            ..Config::default()
        };
        let mut c = Connection::new(cfg, SeqNum(1));
        let rate = c.cc.pacing_rate().unwrap_or(0.0);
        assert!(rate > 0.0, "BBR paces from the start");
        let now = Instant::from_millis(5);
        let mut sent = 0;
        while c.pacing_allows(now) {
            c.on_paced_send(1460, now);
            sent += 1;
            assert!(sent < 1000, "pacing never stopped the burst");
        }
        let at = c.pace_at.expect("a pacing timer");
        assert!(at > now);
        // The burst is bounded: two segments at least, 64 KiB at most.
        assert!((2..=45).contains(&sent), "{sent} segments in one burst");
        // At the timer, one more may go.
        assert!(c.pacing_allows(at));
    }
}
