//! Congestion control behind one trait, so algorithms plug in per connection.
//!
//! The connection owns loss *detection* (duplicate ACK counting, the
//! NewReno recovery point, the RTO); the controller owns the *response*:
//! how cwnd and ssthresh move on each event.

mod newreno;

pub use newreno::NewReno;

use crate::time::Instant;
use std::time::Duration;

pub trait CongestionControl: Send {
    fn name(&self) -> &'static str;
    /// Congestion window in bytes.
    fn cwnd(&self) -> u32;
    /// Slow start threshold in bytes.
    fn ssthresh(&self) -> u32;
    /// `acked` bytes of new data were cumulatively acknowledged outside recovery.
    fn on_ack(&mut self, acked: u32, now: Instant, rtt: Option<Duration>);
    /// Third duplicate ACK: fast retransmit and enter fast recovery.
    fn on_enter_recovery(&mut self, flight: u32, now: Instant);
    /// A further duplicate ACK while in fast recovery.
    fn on_dup_ack_in_recovery(&mut self);
    /// An ACK that advanced SND.UNA but not past the recovery point.
    fn on_partial_ack(&mut self, acked: u32);
    /// An ACK covering the recovery point: leave fast recovery.
    fn on_exit_recovery(&mut self, flight: u32);
    /// The retransmission timer expired.
    fn on_rto(&mut self, flight: u32, now: Instant);
    /// Loss recovery sets the window directly (SACK recovery runs at
    /// cwnd = ssthresh, RFC 6675 5 step 4.2).
    fn set_cwnd(&mut self, cwnd: u32);
}

/// Which algorithm a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    NewReno,
}

impl Algorithm {
    pub fn build(self, mss: u32, initial_window: u32) -> Box<dyn CongestionControl> {
        match self {
            Algorithm::NewReno => Box::new(NewReno::new(mss, initial_window)),
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "newreno" | "reno" => Ok(Algorithm::NewReno),
            other => Err(format!(
                "unknown congestion control '{other}' (expected: newreno)"
            )),
        }
    }
}
