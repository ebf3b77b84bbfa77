//! Per-connection knobs. Defaults follow the RFCs, with Linux's choices
//! noted where they differ.

use super::congestion::Algorithm;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// MSS we advertise: MTU 1500 minus 40 bytes of IPv4 and TCP headers.
    pub mss: u16,
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// Offer window scaling (RFC 7323) on our SYN.
    pub window_scaling: bool,
    /// RTO before the first RTT sample (RFC 6298 2.1: 1 s).
    pub initial_rto: Duration,
    /// Lower bound on RTO (RFC 6298 2.4: 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// Upper bound on RTO, backoff included.
    pub max_rto: Duration,
    /// Clock granularity G of RFC 6298.
    pub clock_granularity: Duration,
    /// Consecutive retransmission timeouts (or unanswered window probes)
    /// before the connection is given up with a time-out error.
    pub max_retries: u32,
    /// SYN or SYN-ACK retransmissions before an open is given up.
    pub max_syn_retries: u32,
    /// How long TIME-WAIT lasts: 2*MSL.
    pub time_wait: Duration,
    /// Nagle's algorithm (RFC 896); false is TCP_NODELAY.
    pub nagle: bool,
    pub congestion: Algorithm,
    /// Initial congestion window in segments (RFC 6928 allows 10).
    pub initial_window_segments: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: 1460,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            window_scaling: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_secs(1),
            max_rto: Duration::from_secs(60),
            clock_granularity: Duration::from_millis(1),
            max_retries: 15,
            max_syn_retries: 6,
            time_wait: Duration::from_secs(60),
            nagle: true,
            congestion: Algorithm::NewReno,
            initial_window_segments: 10,
        }
    }
}

impl Config {
    /// The window-scale shift we offer: the smallest that lets the receive
    /// buffer be advertised in 16 bits (RFC 7323 2.3 caps it at 14).
    pub fn our_window_shift(&self) -> u8 {
        let mut shift = 0u8;
        while shift < 14 && (self.recv_buffer >> shift) > 65_535 {
            shift += 1;
        }
        shift
    }
}
