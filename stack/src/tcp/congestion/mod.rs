//! Congestion control behind one trait, so algorithms plug in per connection.
//!
//! The connection owns loss *detection* (duplicate ACK counting, the
//! NewReno recovery point, the RTO); the controller owns the *response*:
//! how cwnd and ssthresh move on each event.

mod bbr;
mod cubic;
mod newreno;

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use newreno::NewReno;

use super::rate::RateSample;
use crate::time::Instant;
use std::time::Duration;

/// What one ACK told a model-based controller (BBR), after the
/// connection's own processing of it (loss marking, recovery state).
#[derive(Debug, Clone, Copy)]
pub struct AckSample {
    pub now: Instant,
    /// The delivery rate it measured, if any.
    pub rate: Option<RateSample>,
    /// Bytes delivered over the connection's life.
    pub delivered: u64,
    /// Bytes this ACK delivered (acknowledged or SACKed).
    pub acked: u32,
    /// Bytes this ACK had marked lost.
    pub lost: u32,
    /// Bytes in flight (the pipe) after the ACK, and before it.
    pub inflight: u32,
    pub prior_inflight: u32,
    /// In fast recovery; in the loss state after a timeout.
    pub recovery: bool,
    pub loss: bool,
    pub srtt: Option<Duration>,
}

pub trait CongestionControl: Send {
    fn name(&self) -> &'static str;
    /// Sender maximum segment size in bytes.
    fn mss(&self) -> u32;
    /// Congestion window in bytes.
    fn cwnd(&self) -> u32;
    /// Slow start threshold in bytes.
    fn ssthresh(&self) -> u32;
    /// Sets the window directly, for the recovery mechanics below.
    fn set_cwnd(&mut self, cwnd: u32);
    /// Sets ssthresh directly (HyStart++ ending slow start).
    fn set_ssthresh(&mut self, ssthresh: u32);
    /// `acked` bytes of new data were cumulatively acknowledged outside
    /// recovery, while cwnd limited sending.
    fn on_ack(&mut self, acked: u32, now: Instant, rtt: Option<Duration>);
    /// A loss was detected (fast retransmit): the algorithm's own response,
    /// setting ssthresh and cwnd = ssthresh.
    fn reduce(&mut self, flight: u32, now: Instant);
    /// The retransmission timer expired.
    fn on_rto(&mut self, flight: u32, now: Instant);
    /// Sending resumes after `idle` with nothing in flight (the application
    /// had nothing to send). Time-based growth must not count the pause.
    fn on_idle(&mut self, _idle: Duration) {}
    /// A controller that sets cwnd and a pacing rate from its model of the
    /// path, on every ACK (`on_ack_sample`), rather than reacting to loss
    /// events: the connection then skips PRR, the loss reductions and the
    /// restart after idle, and paces at `pacing_rate`.
    fn model_based(&self) -> bool {
        false
    }
    fn on_ack_sample(&mut self, _s: &AckSample) {}
    /// Bytes per second to pace at, if the algorithm paces.
    fn pacing_rate(&self) -> Option<f64> {
        None
    }
    /// What a loss response changes, saved before it so that a loss that
    /// proves spurious can be undone (RFC 3522, RFC 4015, RFC 5682).
    fn save(&self) -> Saved {
        Saved {
            cwnd: self.cwnd(),
            ssthresh: self.ssthresh(),
            w_max: 0.0,
            w_last_max: 0.0,
        }
    }
    /// Puts back what `save` recorded (the window no smaller than now).
    fn undo(&mut self, s: &Saved);

    // Fast recovery's window mechanics (RFC 5681 3.2, RFC 6582 3.2) are the
    // same whatever decides ssthresh; they are written once, here.

    /// Third duplicate ACK: reduce, then inflate by the three segments that
    /// left the network (step 3).
    fn on_enter_recovery(&mut self, flight: u32, now: Instant) {
        self.reduce(flight, now);
        self.set_cwnd(self.ssthresh() + 3 * self.mss());
    }
    /// A further duplicate ACK in recovery: one more segment left (step 4).
    fn on_dup_ack_in_recovery(&mut self) {
        self.set_cwnd(self.cwnd().saturating_add(self.mss()));
    }
    /// An ACK that advanced SND.UNA but not past the recovery point:
    /// deflate by what it acknowledged, add back one SMSS if it covered at
    /// least one (step 5).
    fn on_partial_ack(&mut self, acked: u32) {
        let mut cwnd = self.cwnd().saturating_sub(acked);
        if acked >= self.mss() {
            cwnd += self.mss();
        }
        self.set_cwnd(cwnd);
    }
    /// The recovery point was acknowledged: min(ssthresh, max(FlightSize,
    /// SMSS) + SMSS) (step 6, option 1).
    fn on_exit_recovery(&mut self, flight: u32) {
        let mss = self.mss();
        self.set_cwnd(self.ssthresh().min(flight.max(mss) + mss));
    }
}

/// A controller's state before a loss response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saved {
    pub cwnd: u32,
    pub ssthresh: u32,
    /// CUBIC's W_max and previous W_max, in segments.
    pub w_max: f64,
    pub w_last_max: f64,
}

/// Which algorithm a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 5681/6582.
    NewReno,
    /// RFC 9438, Linux's upstream default.
    Cubic,
    /// Model-based, paced; indifferent to random loss (see `bbr.rs`). The
    /// stack's default (`Config::congestion` says why).
    #[default]
    Bbr,
}

impl Algorithm {
    pub fn build(self, mss: u32, initial_window: u32) -> Box<dyn CongestionControl> {
        match self {
            Algorithm::NewReno => Box::new(NewReno::new(mss, initial_window)),
            Algorithm::Cubic => Box::new(Cubic::new(mss, initial_window)),
            Algorithm::Bbr => Box::new(Bbr::new(mss, initial_window)),
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "newreno" | "reno" => Ok(Algorithm::NewReno),
            "cubic" => Ok(Algorithm::Cubic),
            "bbr" => Ok(Algorithm::Bbr),
            other => Err(format!(
                "unknown congestion control '{other}' (expected: cubic, newreno or bbr)"
            )),
        }
    }
}
