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
    /// Lower bound on RTO. RFC 6298 2.4 says 1 s; we use 200 ms, as Linux
    /// does (why: docs/DEEP_DIVE.md, "The minimum RTO").
    pub min_rto: Duration,
    /// Upper bound on RTO, backoff included.
    pub max_rto: Duration,
    /// Clock granularity G of RFC 6298.
    pub clock_granularity: Duration,
    /// Consecutive retransmission timeouts (or unanswered window probes)
    /// before the connection is given up with a time-out error.
    pub max_retries: u32,
    /// The user timeout (RFC 9293 3.10.8, Linux's TCP_USER_TIMEOUT): data
    /// unacknowledged this long since it was sent ends the connection
    /// with a time-out, whatever the retries. None: retries alone.
    pub user_timeout: Option<Duration>,
    /// SYN or SYN-ACK retransmissions before an open is given up.
    pub max_syn_retries: u32,
    /// How long TIME-WAIT lasts: 2*MSL.
    pub time_wait: Duration,
    /// Nagle's algorithm (RFC 896); false is TCP_NODELAY.
    pub nagle: bool,
    /// BBR by default (as this machine's Linux): the one departure from
    /// RFC defaults here, for what it measured (docs/DEEP_DIVE.md, BBR):
    /// 4x the goodput of CUBIC at 5 % random loss, and on a lossless
    /// path a 64 KiB chunk's latency under bulk 0.9 ms instead of 63 ms
    /// (NewReno fills every queue up to the receive window). NewReno and
    /// CUBIC remain for RFC behaviour and for sharing with loss-based flows.
    pub congestion: Algorithm,
    /// Initial congestion window in segments (RFC 6928 allows 10).
    pub initial_window_segments: u32,
    /// Offer timestamps (RFC 7323): RTT from every ACK, and PAWS.
    pub timestamps: bool,
    /// Offer selective acknowledgments (RFC 2018).
    pub sack: bool,
    /// Longest an ACK for in-order data may wait for a second segment to
    /// share it (RFC 9293 3.8.6.3; Linux's minimum is 40 ms). Zero acks
    /// every segment batch at once.
    pub delayed_ack: Duration,
    /// Probing an idle connection (RFC 9293 3.8.4; off by default, as in
    /// Linux, where it is SO_KEEPALIVE).
    pub keepalive: Option<Keepalive>,
    /// Challenge ACKs (RFC 5961) sent per second at most, so that an
    /// attacker cannot make us flood the peer.
    pub challenge_ack_limit: u32,
    /// F-RTO (RFC 5682): after a timeout, test whether it was spurious
    /// before resending everything (SACK connections; Linux's default).
    pub frto: bool,
    /// How long an orphaned connection (closed and released by the user)
    /// may wait in FIN-WAIT-2 for the peer's FIN (Linux: tcp_fin_timeout).
    pub fin_timeout: Duration,
    /// Retransmission timeouts, and window probes even if the peer answers
    /// each with a zero window, that an orphaned connection goes through
    /// before it gives up (Linux: 8, from tcp_orphan_retries = 0).
    pub orphan_retries: u32,
    /// HyStart++ (RFC 9406): leave the initial slow start when the RTT
    /// rises, before the bottleneck's queue overflows.
    pub hystart: bool,
    /// Grow the buffers to what the path needs (see `autotune.rs`):
    /// `recv_buffer`/`send_buffer` are then where they start.
    pub autotune: bool,
    /// The most a buffer grows to.
    pub max_buffer: usize,
    /// What growth may take beyond the initial buffers, shared by every
    /// connection configured from clones of this `Config` (an interface's,
    /// all its cores). `None`: no total bound.
    pub buffer_budget: Option<std::sync::Arc<super::autotune::BufferBudget>>,
    /// The most unsent bytes a connection accepts (TCP_NOTSENT_LOWAT;
    /// `unsent.rs`): by default derived from the path, so that what waits
    /// behind them is not queued for milliseconds.
    pub unsent_limit: super::unsent::UnsentLimit,
    /// How long the application may take between two turns at the
    /// connection: the automatic unsent bound is this long at the sending
    /// rate. An application on the stack's core gets a turn every loop
    /// (`unsent::AUTO_TIME`, the default); the socket API's application
    /// threads wake through the scheduler (`api::socket` sets its own).
    pub application_turn: std::time::Duration,
    /// TCP Fast Open on a listener (RFC 7413, `fast_open.rs`): the key its
    /// cookies are made with. None: off (the default, as in Linux).
    pub fast_open_key: Option<[u8; 16]>,
    /// With a key: take the data of every SYN, cookie or not (Linux's
    /// `tcp_fastopen` 0x200, for servers whose clients are known and whose
    /// requests are safe to see twice). Off by default.
    pub fast_open_without_cookie: bool,
    /// Fast Open clients send data on the SYN even without a cookie, with
    /// no option (Linux's `tcp_fastopen` 0x4, for servers known to need
    /// none). Off by default.
    pub fast_open_client_without_cookie: bool,
    /// The fewest segments in a burst Linux would hand its device as one
    /// TSO packet (its `tcp_min_tso_segs`, 2), for where PSH goes
    /// (`push.rs`).
    pub min_burst_segments: u32,
    /// Decide and record the full segments that may follow one at once
    /// together with it (`burst.rs`). The segments are the same either
    /// way; off, each costs a decision of its own. On by default.
    pub plan_bursts: bool,
    /// ECN (RFC 3168, `ecn.rs`): agree when the peer asks, by default.
    pub ecn: super::ecn::Ecn,
}

/// Keepalive timing: after `idle` without anything received, send a probe
/// every `interval`; `count` unanswered probes end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Default for Keepalive {
    /// Linux's defaults: 2 hours idle, 75 s apart, 9 probes.
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: 1460,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            window_scaling: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            clock_granularity: Duration::from_millis(1),
            max_retries: 15,
            user_timeout: None,
            max_syn_retries: 6,
            time_wait: Duration::from_secs(60),
            nagle: true,
            congestion: Algorithm::Bbr,
            initial_window_segments: 10,
            timestamps: true,
            sack: true,
            delayed_ack: Duration::from_millis(40),
            keepalive: None,
            challenge_ack_limit: 10,
            frto: true,
            fin_timeout: Duration::from_secs(60),
            orphan_retries: 8,
            hystart: true,
            autotune: true,
            max_buffer: 32 << 20,
            buffer_budget: Some(std::sync::Arc::new(super::autotune::BufferBudget::new(
                1 << 30,
            ))),
            unsent_limit: super::unsent::UnsentLimit::Auto,
            application_turn: super::unsent::AUTO_TIME,
            fast_open_key: None,
            fast_open_without_cookie: false,
            fast_open_client_without_cookie: false,
            min_burst_segments: 2,
            plan_bursts: true,
            ecn: super::ecn::Ecn::default(),
        }
    }
}

impl Config {
    /// The window-scale shift we offer: the smallest that lets the receive
    /// buffer, as large as autotuning may make it, be advertised in 16
    /// bits (RFC 7323 2.3 caps it at 14).
    pub fn our_window_shift(&self) -> u8 {
        let most = if self.autotune {
            self.recv_buffer.max(self.max_buffer)
        } else {
            self.recv_buffer
        };
        let mut shift = 0u8;
        while shift < 14 && (most >> shift) > 65_535 {
            shift += 1;
        }
        shift
    }
}
