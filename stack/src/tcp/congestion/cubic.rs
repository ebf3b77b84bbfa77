//! CUBIC (RFC 9438): after a loss the window follows a cubic function of
//! the time since, W_cubic(t) = C*(t - K)^3 + W_max. It climbs fast, slows
//! down near W_max, the window where the last loss happened, and probes
//! beyond it ever faster. Growth depends on time, not on the RTT, so long
//! paths recover as fast as short ones. A Reno-friendly estimate keeps it
//! at least as aggressive as NewReno where NewReno would do better.

use super::CongestionControl;
use crate::time::Instant;
use std::time::Duration;

/// RFC 9438 4.1: C = 0.4 and the multiplicative decrease factor 0.7.
const C: f64 = 0.4;
const BETA: f64 = 0.7;
/// The RTT assumed before one is measured.
const DEFAULT_RTT: Duration = Duration::from_millis(100);

pub struct Cubic {
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    /// W_max and the previous W_max, in segments.
    w_max: f64,
    w_last_max: f64,
    /// Seconds from the epoch start until W_cubic reaches W_max again.
    k: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// The Reno-friendly window estimate W_est, in segments.
    w_est: f64,
}

impl Cubic {
    pub fn new(mss: u32, initial_window: u32) -> Self {
        Cubic {
            mss,
            cwnd: initial_window,
            ssthresh: u32::MAX,
            w_max: 0.0,
            w_last_max: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
        }
    }

    fn segments(&self, bytes: u32) -> f64 {
        f64::from(bytes) / f64::from(self.mss)
    }

    /// W_cubic(t) in segments, `t` seconds into the epoch (eq. 1).
    pub fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.w_max
    }

    /// Remembers where the loss happened (4.6) with fast convergence (4.7):
    /// if the window is below the previous W_max, flows are competing, so
    /// give up a little more room.
    fn note_loss(&mut self) {
        let w = self.segments(self.cwnd);
        self.w_max = if w < self.w_last_max {
            w * (1.0 + BETA) / 2.0
        } else {
            w
        };
        self.w_last_max = w;
        self.ssthresh = ((f64::from(self.cwnd) * BETA) as u32).max(2 * self.mss);
        self.epoch_start = None;
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
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
    fn set_ssthresh(&mut self, ssthresh: u32) {
        self.ssthresh = ssthresh.max(2 * self.mss);
    }
    fn set_cwnd(&mut self, cwnd: u32) {
        self.cwnd = cwnd.max(self.mss);
    }

    fn on_ack(&mut self, acked: u32, now: Instant, rtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            // Slow start (RFC 9438 4.10) by bytes acknowledged, as NewReno's.
            self.cwnd = self.cwnd.saturating_add(acked);
            return;
        }
        let cwnd = self.segments(self.cwnd);
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                // A new epoch (4.2): K so that W_cubic climbs from here
                // back to W_max; none if already above it.
                self.k = ((self.w_max - cwnd).max(0.0) / C).cbrt();
                self.w_max = self.w_max.max(cwnd);
                self.w_est = cwnd;
                self.epoch_start = Some(now);
                now
            }
        };
        let t = (now - epoch).as_secs_f64();
        let rtt = rtt.unwrap_or(DEFAULT_RTT).as_secs_f64();
        let acked_segs = self.segments(acked);
        // Reno-friendly region (4.3): W_est grows by alpha per window acked.
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * acked_segs / cwnd;
        let next = if self.w_cubic(t) < self.w_est {
            self.w_est
        } else {
            // Concave and convex regions (4.4, 4.5): close the gap to
            // W_cubic one RTT ahead, at most by half a window per RTT.
            let target = self.w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) / cwnd * acked_segs
        };
        self.cwnd = ((next * f64::from(self.mss)) as u32).max(self.cwnd);
    }

    fn reduce(&mut self, _flight: u32, _now: Instant) {
        self.note_loss();
        self.cwnd = self.ssthresh;
    }

    /// RFC 9438 5.8 (and Linux's CA_EVENT_TX_START): the epoch moves by
    /// the idle time, so W_cubic(t) does not leap ahead for a pause in
    /// which the network was not probed.
    fn on_idle(&mut self, idle: Duration) {
        if let Some(e) = self.epoch_start {
            self.epoch_start = Some(e + idle);
        }
    }

    fn save(&self) -> super::Saved {
        super::Saved {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            w_max: self.w_max,
            w_last_max: self.w_last_max,
        }
    }

    fn undo(&mut self, s: &super::Saved) {
        self.cwnd = self.cwnd.max(s.cwnd);
        self.ssthresh = self.ssthresh.max(s.ssthresh);
        self.w_max = s.w_max;
        self.w_last_max = s.w_last_max;
        self.epoch_start = None;
    }

    fn on_rto(&mut self, _flight: u32, _now: Instant) {
        // 4.8: the same reduction of ssthresh; the window restarts at one segment.
        self.note_loss();
        self.cwnd = self.mss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    /// After a loss at 100 segments, an ACK-clocked flow (100 ms RTT, one
    /// ACK per segment) follows W_cubic(t) within 5 % at every second.
    #[test]
    fn window_follows_w_cubic_after_a_loss() {
        let rtt = Duration::from_millis(100);
        let mut c = Cubic::new(MSS, 10 * MSS);
        c.set_cwnd(100 * MSS);
        c.reduce(100 * MSS, Instant::ZERO);
        assert_eq!(c.ssthresh(), 70 * MSS, "beta = 0.7");
        assert_eq!(c.cwnd(), 70 * MSS);
        let k = (100.0f64 * (1.0 - BETA) / C).cbrt();
        let mut now = Instant::ZERO;
        let mut checked = 0;
        for round in 1..=100u64 {
            // One RTT: a window of ACKs spread over it.
            let segs = c.cwnd() / MSS;
            for i in 0..segs {
                let at = now + rtt * i / segs;
                c.on_ack(MSS, at, Some(rtt));
            }
            now += rtt;
            if round % 10 == 0 {
                // Time since the epoch began (first ACK, just after 0).
                let t = now.as_secs_f64();
                let want = C * (t - k).powi(3) + 100.0;
                let got = f64::from(c.cwnd()) / f64::from(MSS);
                assert!(
                    (got - want).abs() / want < 0.05,
                    "t = {t:.1} s: cwnd {got:.1} segments, W_cubic {want:.1}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 10);
        assert!(
            f64::from(c.cwnd()) / f64::from(MSS) > 150.0,
            "convex growth past W_max"
        );
    }

    #[test]
    fn fast_convergence_releases_bandwidth() {
        let mut c = Cubic::new(MSS, 10 * MSS);
        c.set_cwnd(100 * MSS);
        c.reduce(0, Instant::ZERO);
        c.set_cwnd(80 * MSS);
        c.reduce(0, Instant::ZERO);
        assert!(
            (c.w_max - 80.0 * (1.0 + BETA) / 2.0).abs() < 1e-9,
            "{}",
            c.w_max
        );
    }

    #[test]
    fn an_idle_pause_does_not_count_as_growth_time() {
        let mut c = Cubic::new(1000, 100_000);
        c.reduce(100_000, Instant::ZERO);
        let t0 = Instant::from_millis(10);
        c.on_ack(1000, t0, Some(Duration::from_millis(10)));
        let before = c.cwnd();
        // Ten seconds idle, then one ACK: as if no time had passed.
        c.on_idle(Duration::from_secs(10));
        c.on_ack(
            1000,
            t0 + Duration::from_secs(10),
            Some(Duration::from_millis(10)),
        );
        let mut fresh = Cubic::new(1000, 100_000);
        fresh.reduce(100_000, Instant::ZERO);
        fresh.on_ack(1000, t0, Some(Duration::from_millis(10)));
        fresh.on_ack(1000, t0, Some(Duration::from_millis(10)));
        assert_eq!(c.cwnd(), fresh.cwnd(), "grew from {before}");
    }

    #[test]
    fn rto_restarts_from_one_segment() {
        let mut c = Cubic::new(MSS, 10 * MSS);
        c.set_cwnd(50 * MSS);
        c.on_rto(50 * MSS, Instant::ZERO);
        assert_eq!((c.cwnd(), c.ssthresh()), (MSS, 35 * MSS));
    }
}
