//! Counters a user can read from any connection at any time.

use super::State;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Payload bytes sent for the first time.
    pub bytes_sent: u64,
    /// Payload bytes sent again (RTO, fast retransmit, window probes).
    pub bytes_retransmitted: u64,
    /// Payload bytes delivered in order to the receive buffer.
    pub bytes_received: u64,
    /// Of those, bytes left in the frame they arrived in (read in place,
    /// never copied into the receive ring).
    pub bytes_received_in_place: u64,
    pub segments_sent: u64,
    pub segments_received: u64,
    /// Segments carrying retransmitted sequence space.
    pub retransmits: u64,
    pub rto_expirations: u64,
    pub fast_retransmits: u64,
    pub dup_acks_received: u64,
    pub out_of_order_segments: u64,
    /// Segments that failed the acceptability test or were otherwise dropped.
    pub dropped_segments: u64,
    pub challenge_acks_sent: u64,
    /// Challenge ACKs not sent because of the per-second limit.
    pub challenge_acks_suppressed: u64,
    /// Bare out-of-window ACKs left unanswered (one answer per 500 ms).
    pub oow_acks_suppressed: u64,
    pub window_probes_sent: u64,
    /// Segments dropped by PAWS: a timestamp older than the last seen.
    pub paws_rejected: u64,
    pub keepalive_probes_sent: u64,
    /// Loss recoveries driven by SACK information (RFC 6675).
    pub sack_recoveries: u64,
    /// D-SACK blocks received: the peer got something twice (RFC 2883).
    pub dsacks_received: u64,
    /// Retransmissions the peer reported as duplicates: they were not needed.
    pub spurious_retransmits: u64,
    /// Tail loss probes sent (RFC 8985 7).
    pub tail_loss_probes: u64,
    /// Segments RACK marked lost (RFC 8985), lost retransmissions included.
    pub rack_lost_segments: u64,
    /// cwnd reductions for ECN marks (RFC 3168 6.1.2).
    pub ecn_reductions: u64,
    /// Loss responses undone because the loss proved spurious (timestamps,
    /// D-SACK or F-RTO).
    pub undone_recoveries: u64,
    /// Timeouts F-RTO (RFC 5682) showed to be spurious.
    pub spurious_rtos: u64,
    /// Times the receiver dropped data it had SACKed.
    pub sack_reneging: u64,
    /// Orphaned connections reset because the peer never closed (FIN-WAIT-2
    /// timeout) or kept its window shut past `orphan_retries` probes.
    pub orphans_dropped: u64,
    /// Initial slow starts that HyStart++ ended before any loss.
    pub hystart_exits: u64,
    /// Times cwnd was cut back after an idle period (RFC 5681 4.1).
    pub idle_restarts: u64,
    /// Times path MTU discovery lowered the MSS.
    pub pmtu_reductions: u64,
    /// Buffer growths refused because the shared budget was spent.
    pub buffer_growth_refused: u64,
    /// ACKs that timed a segment sent once (`Connection::last_rtt_sample`).
    pub rtt_samples: u64,
    /// Times out-of-order data was dropped under memory pressure.
    pub ooo_pruned: u64,
    /// Segments handed out from a burst plan (`burst.rs`); planned and
    /// given back ones are not counted.
    pub burst_segments: u64,
}

/// A point-in-time view: counters plus the estimator and window state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub state: State,
    pub counters: Counters,
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub rto: Duration,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub snd_wnd: u32,
    pub mss: u32,
    /// Negotiated options: window scale shifts (ours, peer's), timestamps, SACK.
    pub window_scale: Option<(u8, u8)>,
    pub timestamps: bool,
    pub sack: bool,
    pub congestion: &'static str,
    /// The largest each buffer grew to (autotuning grows them; TIME-WAIT
    /// and CLOSED drop them, which this does not show).
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// Bytes queued and not yet sent, and their bound now (`unsent.rs`).
    pub unsent: usize,
    pub unsent_limit: usize,
}
