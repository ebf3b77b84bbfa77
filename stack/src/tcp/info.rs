//! What `ss -ti` shows for a Linux socket, for one of ours: the fields of
//! Linux's `struct tcp_info`, named as there and meaning the same, read
//! from the connection's real state. Both APIs hand it out
//! (`Connection::info`), and the packetdrill adapter answers `TCP_INFO`
//! with it in Linux's layout, so that scripts' assertions on
//! `tcpi_snd_cwnd` and friends run against us.
//!
//! Where Linux counts packets (`unacked`, `sacked`, `lost`, `snd_cwnd`,
//! `snd_ssthresh`) we count bytes and divide by the MSS, rounding up.

use super::connection::Connection;
use super::State;
use crate::time::Instant;
use std::time::Duration;

/// Linux's `ca_state`: where loss recovery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaState {
    Open,
    /// Duplicate ACKs or SACKs seen, no loss called yet.
    Disorder,
    /// cwnd being reduced for an ECN mark.
    Cwr,
    Recovery,
    /// After a retransmission timeout.
    Loss,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub state: State,
    pub ca_state: CaState,
    /// Consecutive retransmission timeouts of the current segment.
    pub retransmits: u32,
    /// Unanswered zero-window or keepalive probes.
    pub probes: u32,
    /// Times the RTO was doubled and not yet reset by an RTT sample.
    pub backoff: u32,
    pub timestamps: bool,
    pub sack: bool,
    /// Data came on the SYN (Fast Open).
    pub syn_data: bool,
    /// Window-scale shifts (peer's, ours), when negotiated.
    pub wscale: Option<(u8, u8)>,
    pub rto: Duration,
    /// How long an ACK may be delayed.
    pub ato: Duration,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    /// Segments sent and not yet cumulatively acknowledged.
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    /// Since the last data was sent (None if never).
    pub last_data_sent: Option<Duration>,
    /// Since data last arrived, or the handshake ended (None before).
    pub last_data_recv: Option<Duration>,
    /// Since an ACK last arrived (None if never).
    pub last_ack_recv: Option<Duration>,
    pub pmtu: u32,
    pub rtt: Duration,
    pub rttvar: Duration,
    /// Segments; None while no loss has set it (Linux's "infinite").
    pub snd_ssthresh: Option<u32>,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    /// The receiver's RTT estimate, from our timestamps echoed on data
    /// (None before one came).
    pub rcv_rtt: Option<Duration>,
    pub rcv_space: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u64,
    /// Segments resent and not yet acknowledged (Linux's retrans_out).
    pub retrans: u32,
    /// Bytes per second, when the congestion control paces.
    pub pacing_rate: Option<u64>,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u64,
    pub segs_in: u64,
    pub notsent_bytes: u32,
    /// Segments delivered (acknowledged or SACKed), the handshake's SYN
    /// counted as one once acknowledged (as Linux's tcpi_delivered).
    pub delivered: u64,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub dsack_dups: u64,
    pub rcv_ooopack: u64,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub total_rto: u64,
    /// Time with data to deliver, and of it, held back by the peer's
    /// window or a full send buffer (`chrono.rs`).
    pub busy_time: Duration,
    pub rwnd_limited: Duration,
    pub sndbuf_limited: Duration,
}

impl Connection {
    /// The connection as `struct tcp_info` describes one, at `now`.
    pub fn info(&self, now: Instant) -> Info {
        let mss = self.eff_mss.max(1);
        let segs = |bytes: u32| bytes.div_ceil(mss);
        let ssthresh = self.cc.ssthresh();
        let ca_state = if self.recovery.loss() {
            CaState::Loss
        } else if self.recovery.fast() {
            CaState::Recovery
        } else if self.ecn_reducing() {
            CaState::Cwr
        } else if self.dup_acks > 0 || self.sent.sacked_bytes() > 0 {
            CaState::Disorder
        } else {
            CaState::Open
        };
        let acked = self.snd_una.0.wrapping_sub(self.iss.0);
        let [busy, rwnd, sndbuf] = self.chrono.spent(now);
        Info {
            state: self.state,
            ca_state,
            retransmits: self.retries,
            probes: self.probes_unanswered.max(self.keepalive_probes),
            backoff: self.rtt.backoff_count(),
            timestamps: self.ts_ok,
            sack: self.sack_ok,
            syn_data: self.fast_open.syn_data,
            wscale: self.ws_ok.then_some((self.snd_shift, self.rcv_shift)),
            rto: self.rtt.rto(),
            ato: self.cfg.delayed_ack,
            snd_mss: mss,
            rcv_mss: self.negotiated_mss.max(1).min(mss),
            unacked: segs(self.snd_max.0.wrapping_sub(self.snd_una.0)),
            sacked: segs(self.sent.sacked_bytes()),
            lost: segs(self.sent.lost_bytes()),
            last_data_sent: self.last_data_sent.map(|t| now.saturating_since(t)),
            last_data_recv: self.last_data_recv_at.map(|t| now.saturating_since(t)),
            last_ack_recv: self.last_ack_recv_at.map(|t| now.saturating_since(t)),
            pmtu: mss + 40,
            rtt: self.rtt.srtt().unwrap_or_default(),
            rttvar: self.rtt.rttvar(),
            snd_ssthresh: (ssthresh < u32::MAX / 2).then(|| segs(ssthresh)),
            snd_cwnd: segs(self.cc.cwnd()),
            advmss: u32::from(self.cfg.mss),
            reordering: self.reordering,
            rcv_rtt: self.rcv_space.rtt,
            rcv_space: self.recv_buf.capacity() as u32,
            total_retrans: self.counters.retransmits,
            retrans: self.sent.resent_in_flight(),
            pacing_rate: self.cc.pacing_rate().map(|r| r as u64),
            // The SYN's sequence number is not data.
            bytes_acked: u64::from(acked.saturating_sub(1)),
            bytes_received: self.counters.bytes_received,
            segs_out: self.counters.segments_sent,
            segs_in: self.counters.segments_received,
            notsent_bytes: self.unsent() as u32,
            delivered: self.rate.delivered_segments() + u64::from(self.syn_acked()),
            bytes_sent: self.counters.bytes_sent + self.counters.bytes_retransmitted,
            bytes_retrans: self.counters.bytes_retransmitted,
            dsack_dups: self.counters.dsacks_received,
            rcv_ooopack: self.counters.out_of_order_segments,
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.rcv_adv.0.wrapping_sub(self.rcv_nxt.0),
            total_rto: self.counters.rto_expirations,
            busy_time: busy + rwnd + sndbuf,
            rwnd_limited: rwnd,
            sndbuf_limited: sndbuf,
        }
    }
}
