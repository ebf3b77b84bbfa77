//! Pacing: spreading data segments over time at the rate congestion
//! control asks for (BBR's `pacing_rate`), instead of sending a window at
//! once whenever an ACK opens it.
//!
//! Each data segment moves a schedule forward by its length over the
//! rate. Segments go a quantum at a time: once the schedule has reached
//! now, a quantum (a little time at the rate, at most 64 KiB) may leave at
//! once, running the schedule ahead of now, and the next waits until the
//! schedule is reached again. Linux paces the same way, one TSO burst at a
//! time sized from the rate. Segment by segment, a loop that polls every
//! microsecond would hand the device one or two frames per call (each
//! call a system call in AF_XDP's copy mode), and a receiver that takes
//! what has arrived would see batches as small and acknowledge as often.
//! The schedule may also lag behind now, by a quantum at most, so that the
//! jitter of a poll is made up; a quantum's start counts what the lag
//! already allows, so no more than a quantum goes at once. When pacing
//! holds data back, `pace_at` becomes a timer: the caller's wheel brings
//! the connection back when the schedule allows.

use super::connection::Connection;
use crate::time::Instant;
use std::time::Duration;

/// A quantum: a little time at the pacing rate, bounded in bytes.
const QUANTUM_TIME: Duration = Duration::from_micros(100);
const QUANTUM_MAX: f64 = 64.0 * 1024.0;

/// How long `bytes` take at `rate` bytes per second (in whole
/// nanoseconds: `Duration::from_secs_f64` costs a hundred instructions,
/// per segment here).
pub(super) fn time_for(bytes: f64, rate: f64) -> Duration {
    Duration::from_nanos((bytes * 1e9 / rate) as u64)
}

impl Connection {
    /// A quantum's time at `rate`: two segments at least, 64 KiB at most.
    fn pace_quantum(&self, rate: f64) -> Duration {
        let bytes =
            (rate * QUANTUM_TIME.as_secs_f64()).clamp(2.0 * f64::from(self.eff_mss), QUANTUM_MAX);
        time_for(bytes, rate)
    }

    /// Where the quantum under way ends on the schedule, if one is.
    #[inline]
    pub(super) fn pace_quantum_end(&self) -> Option<Instant> {
        let next = self.pace_next?;
        self.pace_until.filter(|&until| next < until)
    }

    /// Whether a data segment may leave now; if not, arms the pacing timer.
    #[inline]
    pub(super) fn pacing_allows(&mut self, now: Instant) -> bool {
        if self.open_quantum(now) {
            self.pace_at = None;
            return true;
        }
        self.pace_at = self.pace_next;
        false
    }

    /// Whether a data segment may leave now: in the quantum under way, or
    /// in a new one if the schedule has reached now.
    #[inline]
    pub(super) fn open_quantum(&mut self, now: Instant) -> bool {
        if self.pace_quantum_end().is_some() {
            return true;
        }
        // No schedule yet (or none kept without a pacing rate): the first
        // send starts one (`on_paced_send`).
        let Some(next) = self.pace_next else {
            return true;
        };
        let Some(rate) = self.cc.pacing_rate() else {
            return true;
        };
        if next > now {
            return false;
        }
        // A new quantum from where the schedule stands (at most a quantum
        // behind now, as `on_paced_send` keeps it), so that lagging behind
        // counts towards it.
        let q = self.pace_quantum(rate);
        let floor = Instant::from_nanos(now.as_nanos().saturating_sub(q.as_nanos() as u64));
        self.pace_until = Some(next.max(floor) + q);
        true
    }

    /// `bytes` of data left at `now`: advance the schedule.
    pub(super) fn on_paced_send(&mut self, bytes: u32, now: Instant) {
        let Some(rate) = self.cc.pacing_rate() else {
            self.pace_next = None;
            return;
        };
        let q = self.pace_quantum(rate);
        let start = match self.pace_next {
            Some(next) if next + q > now => next,
            _ if now.as_nanos() > q.as_nanos() as u64 => {
                Instant::from_nanos(now.as_nanos() - q.as_nanos() as u64)
            }
            _ => now,
        };
        if self.pace_next.is_none() {
            // The first quantum, from where the schedule starts.
            self.pace_until = Some(start + q);
        }
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
    use std::time::Duration;

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

    #[test]
    fn a_busy_loop_sends_whole_quanta_at_the_pacing_rate() {
        // A large initial window: BBR's first pacing rate comes from it,
        // and a quantum of many segments shows the grouping.
        let cfg = Config {
            congestion: Algorithm::Bbr,
            initial_window_segments: 200,
            ..Config::default()
        };
        let mut c = Connection::new(cfg, SeqNum(1));
        let rate = c.cc.pacing_rate().unwrap();
        let quantum = c.pace_quantum(rate);
        let per_quantum = (quantum.as_secs_f64() * rate / 1460.0) as usize;
        assert!(per_quantum >= 8, "{per_quantum} segments per quantum");
        // A loop that asks every microsecond for 20 quanta's time.
        let start = Instant::from_millis(5);
        let span = quantum * 20;
        let (mut groups, mut bytes) = (Vec::new(), 0.0);
        let mut now = start;
        while now < start + span {
            let mut n = 0;
            while c.pacing_allows(now) {
                c.on_paced_send(1460, now);
                n += 1;
                assert!(n < 1000, "pacing never stopped the quantum");
            }
            if n > 0 {
                groups.push(n);
                bytes += 1460.0 * n as f64;
            }
            now += Duration::from_micros(1);
        }
        // Whole quanta, not a segment whenever the schedule allows one.
        assert!(
            groups.iter().all(|&n| n >= per_quantum),
            "groups of {groups:?} with {per_quantum} segments to a quantum"
        );
        // And the rate holds: the schedule starts at most a quantum
        // behind now and ends at most a quantum (and a segment) ahead.
        let paced = rate * span.as_secs_f64();
        let allowed = paced + 1460.0 * (2 * per_quantum + 2) as f64;
        assert!(bytes <= allowed, "{bytes} bytes sent, {allowed} allowed");
        assert!(bytes >= paced, "{bytes} bytes sent, {paced} paced");
    }
}
