//! HyStart++ (RFC 9406): leave slow start when the RTT starts to rise,
//! before the queue at the bottleneck overflows.
//!
//! Slow start doubles cwnd every round trip until a loss, so it ends by
//! overshooting: up to a whole window of drops into a shallow queue. The
//! queue shows itself earlier as a rising RTT. Each round, the minimum RTT
//! of its first samples is compared with the previous round's; a rise of
//! an eighth (between 4 and 16 ms) ends slow start. What follows is
//! Conservative Slow Start: growth at a quarter of the rate for a few
//! rounds, in case the rise was noise (then back to slow start if the RTT
//! drops again), and after those rounds congestion avoidance.

use super::connection::Connection;
use super::SeqNum;
use std::time::Duration;

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u32 = 5;

#[derive(Debug, Clone, Default)]
pub struct HyStart {
    /// The current round ends when SND.UNA reaches this.
    window_end: Option<SeqNum>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// In Conservative Slow Start: the baseline RTT and rounds so far.
    css: Option<(Duration, u32)>,
    /// Left slow start for good (or a loss ended it): nothing more to do.
    done: bool,
}

impl Connection {
    /// A new ACK in slow start with RTT sample `rtt`: track rounds, and
    /// leave slow start on a sustained RTT rise. Returns the divisor for
    /// cwnd growth on this ACK (1 in slow start, 4 in CSS).
    pub(super) fn hystart_on_ack(&mut self, rtt: Option<Duration>) -> u32 {
        let in_slow_start = self.cc.cwnd() < self.cc.ssthresh();
        let h = &mut self.hystart;
        if !self.cfg.hystart || h.done || !in_slow_start || self.cc.model_based() {
            h.done |= !in_slow_start;
            return 1;
        }
        if h.window_end.is_none_or(|end| self.snd_una >= end) {
            // A new round.
            h.window_end = Some(self.snd_max);
            h.last_round_min = h.current_round_min;
            h.current_round_min = None;
            h.samples = 0;
            if let Some((base, rounds)) = h.css {
                if rounds + 1 >= CSS_ROUNDS {
                    // CSS ran its course: congestion avoidance from here.
                    h.css = None;
                    h.done = true;
                    self.counters.hystart_exits += 1;
                    self.cc.set_ssthresh(self.cc.cwnd());
                    return 1;
                }
                h.css = Some((base, rounds + 1));
            }
        }
        if let Some(rtt) = rtt {
            h.current_round_min = Some(h.current_round_min.map_or(rtt, |m| m.min(rtt)));
            h.samples += 1;
        }
        match (h.css, h.current_round_min, h.last_round_min) {
            (None, Some(cur), Some(last)) if h.samples >= N_RTT_SAMPLE => {
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if cur >= last + thresh {
                    h.css = Some((cur, 0));
                }
            }
            (Some((base, _)), Some(cur), _) if h.samples >= N_RTT_SAMPLE && cur < base => {
                // The rise was not real: back to slow start.
                h.css = None;
            }
            _ => {}
        }
        if h.css.is_some() {
            CSS_GROWTH_DIVISOR
        } else {
            1
        }
    }

    /// A loss ends slow start the usual way; HyStart++ has no more say.
    pub(super) fn hystart_on_loss(&mut self) {
        self.hystart.css = None;
        self.hystart.done = true;
    }
}
