//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rto: Duration,
    max_rto: Duration,
    granularity: Duration,
    /// Current RTO before backoff.
    rto: Duration,
    /// Number of consecutive backoffs (doublings) applied.
    backoff: u32,
}

impl RttEstimator {
    /// RFC 6298 2.1: before any sample, RTO is `initial` (1 s).
    pub fn new(
        initial: Duration,
        min_rto: Duration,
        max_rto: Duration,
        granularity: Duration,
    ) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rto,
            max_rto,
            granularity,
            // Kept within the maximum, so `rto` need not clamp it.
            rto: initial.min(max_rto),
            backoff: 0,
        }
    }

    /// Feeds one RTT measurement (RFC 6298 2.2 and 2.3).
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(r);
                // RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, beta = 1/4
                self.rttvar = (self.rttvar * 3 + err) / 4;
                // SRTT <- (1 - alpha) * SRTT + alpha * R', alpha = 1/8
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        // 2.4 rounds the RTO up to a minimum; as Linux, the minimum bounds
        // the variation term instead (RTO = SRTT + max(G, 4 RTTVAR, min)),
        // so a path with a long, steady RTT keeps its margin: an RTO
        // never fires sooner than the minimum after the RTT itself.
        let rto = srtt + self.granularity.max(self.rttvar * 4).max(self.min_rto);
        // 2.5: a maximum may be placed.
        self.rto = rto.min(self.max_rto);
        // A fresh sample from new data ends backoff (5.7 collapses it).
        self.backoff = 0;
    }

    /// The timeout to arm now, including exponential backoff (5.5).
    pub fn rto(&self) -> Duration {
        if self.backoff == 0 {
            // Nearly always: asked for per segment, it stays cheap.
            return self.rto;
        }
        let factor = 1u32.checked_shl(self.backoff).unwrap_or(u32::MAX);
        self.rto.saturating_mul(factor).min(self.max_rto)
    }

    /// The timer expired: double the RTO (5.5), up to the maximum.
    pub fn back_off(&mut self) {
        if self.rto() < self.max_rto {
            self.backoff += 1;
        }
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn est(min_rto: u64) -> RttEstimator {
        RttEstimator::new(ms(1000), ms(min_rto), ms(60_000), ms(1))
    }

    #[test]
    fn initial_rto_is_one_second() {
        assert_eq!(est(1000).rto(), ms(1000));
    }

    #[test]
    fn first_sample_rule_2_2() {
        // SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR) = 100 + 200 = 300 ms.
        let mut e = est(200);
        e.sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn subsequent_sample_rule_2_3() {
        // After R=100: SRTT=100, RTTVAR=50. Then R'=200:
        // RTTVAR = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5 ms
        // SRTT   = 7/8*100 + 1/8*200     = 87.5 + 25 = 112.5 ms
        // RTO    = 112.5 + 4*62.5 = 362.5 ms
        let mut e = est(200);
        e.sample(ms(100));
        e.sample(ms(200));
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(362_500));
    }

    #[test]
    fn minimum_rto_bounds_the_variation_term_as_linux() {
        // 2.4's minimum, applied as Linux applies tcp_rto_min: to the
        // variation term, so the RTO is never under SRTT + the minimum.
        let mut e = est(1000);
        e.sample(ms(10));
        assert_eq!(e.rto(), ms(1010));
        let mut e = est(200);
        e.sample(ms(100));
        for _ in 0..50 {
            e.sample(ms(100));
        }
        assert_eq!(e.rto(), ms(300), "a steady 100 ms path: 100 + 200");
    }

    #[test]
    fn granularity_floor_on_variance_term() {
        // With zero variance the G term keeps RTO above SRTT.
        let mut e = RttEstimator::new(ms(1000), ms(0), ms(60_000), ms(10));
        for _ in 0..200 {
            e.sample(ms(50));
        }
        assert_eq!(
            e.rto(),
            ms(60),
            "SRTT 50 + G 10 once RTTVAR has decayed below G/4"
        );
    }

    #[test]
    fn backoff_doubles_and_caps_rule_5_5() {
        let mut e = est(1000);
        e.back_off();
        assert_eq!(e.rto(), ms(2000));
        e.back_off();
        assert_eq!(e.rto(), ms(4000));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(), ms(60_000), "capped at the maximum");
        e.sample(ms(100));
        assert_eq!(e.rto(), ms(1100), "a new sample collapses the backoff");
    }
}
