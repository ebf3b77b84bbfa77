//! Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation,
//! as Linux's tcp_rate.c): how fast the path delivers, measured per ACK.
//!
//! Each segment, when it leaves, carries a copy of the connection's
//! delivery counters (`TxRate`). When an ACK delivers it (cumulatively or
//! by SACK), the bytes delivered since it left, over the time since it
//! left, is the rate the path sustained across that round trip. Taking
//! the longer of the send interval and the ACK interval keeps ACK
//! compression from inflating the figure. BBR's bandwidth model is the
//! maximum of these samples.

use crate::time::Instant;
use std::time::Duration;

/// The connection's delivery state when a segment left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRate {
    /// Bytes delivered before it left.
    pub delivered: u64,
    /// When the latest of those was delivered.
    pub delivered_at: Instant,
    /// When the first segment of the current sending flight left.
    pub first_sent_at: Instant,
    /// It left while the application, not the network, limited sending.
    pub app_limited: bool,
}

impl TxRate {
    /// A blank record (tests, and segments of a fresh connection).
    pub fn at(now: Instant) -> Self {
        TxRate {
            delivered: 0,
            delivered_at: now,
            first_sent_at: now,
            app_limited: false,
        }
    }
}

/// What one ACK showed of the path's delivery rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSample {
    /// Bytes delivered over `interval`.
    pub delivered: u64,
    pub interval: Duration,
    /// The connection's delivered count when the newest segment this ACK
    /// delivered left: a round trip ends when this passes the count at
    /// the start of the round.
    pub prior_delivered: u64,
    /// Bytes this ACK delivered (acknowledged or SACKed for the first time).
    pub newly_delivered: u32,
    /// The sample was taken while the application limited sending: it
    /// may understate the path.
    pub app_limited: bool,
    /// Round trip of the newest segment delivered, if it was never resent.
    pub rtt: Option<Duration>,
}

impl RateSample {
    /// Bytes per second; 0 when the interval is empty.
    pub fn rate(&self) -> f64 {
        let secs = self.interval.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.delivered as f64 / secs
    }
}

/// The newest segment among those one ACK delivered, and the bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveredNow {
    pub bytes: u32,
    /// Records (segments as sent) delivered.
    pub segments: u32,
    /// (sent at, retransmissions, its `TxRate`)
    pub newest: Option<(Instant, u32, TxRate)>,
}

impl DeliveredNow {
    /// A record of `bytes`, sent at `at`, was delivered.
    pub fn note(&mut self, bytes: u32, at: Instant, rexmits: u32, tx: TxRate) {
        self.note_run(bytes, 1, at, rexmits, tx);
    }

    /// `segments` records of `bytes` in all were delivered, the newest of
    /// them sent at `at`.
    pub fn note_run(&mut self, bytes: u32, segments: u32, at: Instant, rexmits: u32, tx: TxRate) {
        self.bytes += bytes;
        self.segments += segments;
        if self.newest.is_none_or(|(t, _, n)| {
            tx.delivered > n.delivered || (tx.delivered == n.delivered && at >= t)
        }) {
            self.newest = Some((at, rexmits, tx));
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateSampler {
    delivered: u64,
    /// Segments delivered (Linux's `tp->delivered`, tcpi_delivered).
    delivered_segments: u64,
    delivered_at: Instant,
    first_sent_at: Instant,
    /// While set, segments are marked app-limited: the delivered count at
    /// which the last of them will have left the network.
    app_limited_until: Option<u64>,
}

impl RateSampler {
    pub fn new(now: Instant) -> Self {
        RateSampler {
            delivered: 0,
            delivered_segments: 0,
            delivered_at: now,
            first_sent_at: now,
            app_limited_until: None,
        }
    }

    /// Bytes delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Segments delivered so far.
    pub fn delivered_segments(&self) -> u64 {
        self.delivered_segments
    }

    /// A segment leaves at `now`; `idle` when nothing else is in flight,
    /// which starts a new measurement interval.
    pub fn on_send(&mut self, now: Instant, idle: bool) -> TxRate {
        if idle {
            self.first_sent_at = now;
            self.delivered_at = now;
        }
        TxRate {
            delivered: self.delivered,
            delivered_at: self.delivered_at,
            first_sent_at: self.first_sent_at,
            app_limited: self.app_limited_until.is_some(),
        }
    }

    /// The sender had room to send but nothing to send, with `pipe` bytes
    /// in flight: samples until those are delivered are app-limited.
    pub fn on_app_limited(&mut self, pipe: u32) {
        self.app_limited_until = Some(self.delivered + u64::from(pipe));
    }

    /// One ACK's deliveries: updates the counters and returns the sample,
    /// if the ACK delivered anything and the interval is measurable.
    pub fn on_ack(&mut self, d: DeliveredNow, now: Instant) -> Option<RateSample> {
        let (sent_at, rexmits, tx) = d.newest?;
        self.delivered += u64::from(d.bytes);
        self.delivered_segments += u64::from(d.segments);
        self.delivered_at = now;
        if self.app_limited_until.is_some_and(|u| self.delivered > u) {
            self.app_limited_until = None;
        }
        // The next interval starts at this segment's sending.
        self.first_sent_at = sent_at;
        let send_elapsed = sent_at.saturating_since(tx.first_sent_at);
        let ack_elapsed = now.saturating_since(tx.delivered_at);
        let interval = send_elapsed.max(ack_elapsed);
        if interval.is_zero() {
            return None;
        }
        Some(RateSample {
            delivered: self.delivered - tx.delivered,
            interval,
            prior_delivered: tx.delivered,
            newly_delivered: d.bytes,
            app_limited: tx.app_limited,
            rtt: (rexmits == 0).then(|| now.saturating_since(sent_at)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Instant {
        Instant::from_nanos(n * 1000)
    }

    #[test]
    fn steady_flow_measures_its_rate() {
        // One 1000-byte segment every 10 us, each acked 100 us later: the
        // path delivers 100 MB/s.
        let mut r = RateSampler::new(us(0));
        let mut sent = std::collections::VecDeque::new();
        let mut last = None;
        for i in 0..100u64 {
            let now = us(i * 10);
            while let Some(&(at, tx)) = sent.front() {
                if at + Duration::from_micros(100) > now {
                    break;
                }
                sent.pop_front();
                let mut d = DeliveredNow::default();
                d.note(1000, at, 0, tx);
                last = r.on_ack(d, now).or(last);
            }
            let tx = r.on_send(now, sent.is_empty());
            sent.push_back((now, tx));
        }
        let s = last.expect("samples");
        assert!(
            (s.rate() - 100e6).abs() < 2e6,
            "rate {} for a 100 MB/s flow",
            s.rate()
        );
        assert_eq!(s.rtt, Some(Duration::from_micros(100)));
        assert!(!s.app_limited);
    }

    #[test]
    fn app_limited_marks_until_the_flight_is_delivered() {
        let mut r = RateSampler::new(us(0));
        let a = r.on_send(us(0), true);
        r.on_app_limited(1000);
        let b = r.on_send(us(5), false);
        assert!(!a.app_limited && b.app_limited);
        let mut d = DeliveredNow::default();
        d.note(1000, us(0), 0, a);
        let s = r.on_ack(d, us(50)).unwrap();
        assert!(!s.app_limited, "a was sent before the bubble");
        assert!(r.on_send(us(51), false).app_limited, "b still out");
        let mut d = DeliveredNow::default();
        d.note(1000, us(5), 0, b);
        let s = r.on_ack(d, us(55)).unwrap();
        assert!(s.app_limited);
        assert!(!r.on_send(us(56), true).app_limited, "bubble gone");
    }

    #[test]
    fn resent_segments_give_no_rtt_and_nothing_delivered_no_sample() {
        let mut r = RateSampler::new(us(0));
        let tx = r.on_send(us(0), true);
        assert_eq!(r.on_ack(DeliveredNow::default(), us(10)), None);
        let mut d = DeliveredNow::default();
        d.note(500, us(3), 1, tx);
        let s = r.on_ack(d, us(20)).unwrap();
        assert_eq!((s.rtt, s.delivered, s.newly_delivered), (None, 500, 500));
    }
}
