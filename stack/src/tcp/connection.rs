//! The transmission control block: one connection's state, its user calls
//! and its timers. Segment arrival lives in `input.rs`, segment generation
//! in `output.rs`; all three are `impl Connection` blocks over this struct.

use super::assembler::Assembler;
use super::config::Config;
use super::congestion::CongestionControl;
use super::congestion::Saved;
use super::rack::Rack;
use super::recv_buffer::RecvBuffer;
use super::rtt::RttEstimator;
use super::send_buffer::SendBuffer;
use super::sent::SentQueue;
use super::stats::{Counters, Snapshot};
use super::{SeqNum, State};
use crate::time::{earliest, Instant};
use crate::wire::tcp::{Flags, TcpOptions};
use std::fmt;

/// The longest a peer may delay an ACK (RFC 8985 7.2's WCDelAckT).
const WORST_CASE_DELAYED_ACK: std::time::Duration = std::time::Duration::from_millis(200);
/// Added to a tail loss probe's 2*SRTT when several segments are out.
const TLP_SLACK: std::time::Duration = std::time::Duration::from_millis(2);

/// Why a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The peer answered our SYN with a reset.
    Refused,
    /// The peer reset an open connection.
    Reset,
    /// Retransmissions or window probes went unanswered too long.
    TimedOut,
    /// The network could not reach the peer (no ARP answer).
    Unreachable,
}

/// What a user call can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// Nothing to read yet, or no room to write: try again after an event.
    WouldBlock,
    /// The call does not apply in this state (e.g. send after close).
    InvalidState(State),
    /// The connection failed.
    Failed(ConnError),
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::WouldBlock => f.write_str("operation would block"),
            TcpError::InvalidState(s) => write!(f, "not allowed in state {s}"),
            TcpError::Failed(ConnError::Refused) => f.write_str("connection refused"),
            TcpError::Failed(ConnError::Reset) => f.write_str("connection reset by peer"),
            TcpError::Failed(ConnError::TimedOut) => f.write_str("connection timed out"),
            TcpError::Failed(ConnError::Unreachable) => {
                f.write_str("no route to host (no ARP reply after 3 requests)")
            }
        }
    }
}

impl std::error::Error for TcpError {}

/// Events for the user, coalesced: each is pending at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Connected,
    /// New in-order data can be read.
    Readable,
    /// Send buffer space was freed.
    Writable,
    /// The peer sent FIN: after the buffered data, reads return 0.
    PeerClosed,
    /// The connection reached CLOSED (or TIME-WAIT, for the user the same).
    Closed,
    /// The connection failed; it is now CLOSED.
    Error(ConnError),
}

const EVENT_ORDER: [Event; 5] = [
    Event::Connected,
    Event::Readable,
    Event::Writable,
    Event::PeerClosed,
    Event::Closed,
];

/// RFC 6937 state: bytes delivered to the receiver and bytes sent since
/// recovery began, and the flight then.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Prr {
    pub delivered: u64,
    pub out: u64,
    pub recover_fs: u64,
}

/// What a loss response changed, and what would show it was not needed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Undo {
    pub saved: Saved,
    /// The first retransmission of the episode: its sequence number and
    /// our timestamp on it (an ACK for it echoing an older one was for the
    /// original: RFC 3522).
    pub first_rexmit: Option<(SeqNum, u32)>,
    /// Retransmissions of the episode not yet reported duplicate by D-SACK.
    pub retrans: u32,
}

/// How long a lowered path MTU stands before full-sized segments are
/// tried again (RFC 1191 6.3 recommends ten minutes); if the path is
/// still narrow, its router says so again and the MSS drops back.
const PMTU_RETRY: std::time::Duration = std::time::Duration::from_secs(600);

/// ACKs frozen for separate sending beyond this many are merged into one;
/// one receive phase of out-of-order segments fits (`iface::RX_BUDGET`,
/// which checks it). The queue starts at a quarter of it and grows once,
/// on the first such phase.
pub(crate) const ACK_QUEUE_MAX: usize = 256;

/// One segment for the caller to put on the wire. Payload bytes are taken
/// from the send buffer with [`Connection::payload`] before the connection
/// is touched again, so frames are built in place without a staging copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: Flags,
    pub window: u16,
    pub options: TcpOptions,
    pub(super) payload_offset: usize,
    pub payload_len: usize,
    /// Send with ECT(0) in the IP header (ECN, `ecn.rs`).
    pub ect: bool,
}

impl Transmit {
    /// A segment without payload or options, such as a reset for a port
    /// that has no connection.
    pub fn bare(seq: SeqNum, ack: SeqNum, flags: Flags) -> Self {
        Transmit {
            seq,
            ack,
            flags,
            window: 0,
            options: TcpOptions::default(),
            payload_offset: 0,
            payload_len: 0,
            ect: false,
        }
    }
}

pub struct Connection {
    pub(super) cfg: Config,
    pub(super) state: State,
    /// Opened by LISTEN: an RST in SYN-RECEIVED returns to LISTEN.
    pub(super) passive: bool,

    // Send sequence space (RFC 9293 3.3.1). SND.MAX is the highest sequence
    // number ever sent: after an RTO rewinds SND.NXT, ACKs up to it are valid.
    pub(super) iss: SeqNum,
    /// Our SYN was acknowledged. A flag, not `SND.UNA > ISS`: sequence
    /// comparisons hold only within 2^31, and a connection moves more.
    pub(super) syn_acked: bool,
    pub(super) snd_una: SeqNum,
    pub(super) snd_nxt: SeqNum,
    pub(super) snd_max: SeqNum,
    pub(super) snd_wnd: u32,
    pub(super) max_snd_wnd: u32,
    /// Where the sender's time goes (`chrono.rs`, tcp_info's busy_time).
    pub(super) chrono: super::chrono::Chrono,
    pub(super) snd_wl1: SeqNum,
    pub(super) snd_wl2: SeqNum,
    pub(super) snd_shift: u8,
    pub(super) ws_ok: bool,
    pub(super) send_buf: SendBuffer,
    /// Sequence number of `send_buf`'s first byte.
    pub(super) send_buf_seq: SeqNum,
    /// The user closed: a FIN follows the buffered data.
    pub(super) fin_queued: bool,
    pub(super) eff_mss: u32,
    /// The MSS the handshake allowed, and when a path MTU below it is
    /// next put to the test (RFC 1191 6.3: ten minutes after a drop).
    pub(super) negotiated_mss: u32,
    pub(super) pmtu_retry_at: Option<Instant>,

    // Receive sequence space.
    pub(super) irs: SeqNum,
    pub(super) rcv_nxt: SeqNum,
    /// Right edge of the window we last advertised; it never moves left.
    pub(super) rcv_adv: SeqNum,
    pub(super) rcv_shift: u8,
    pub(super) recv_buf: RecvBuffer,
    pub(super) assembler: Assembler,
    /// Sequence number of the peer's FIN once seen (possibly out of order).
    pub(super) peer_fin: Option<SeqNum>,
    pub(super) fin_received: bool,

    // Timers: absolute deadlines, `None` when stopped.
    pub(super) rto_at: Option<Instant>,
    pub(super) persist_at: Option<Instant>,
    pub(super) time_wait_at: Option<Instant>,
    pub(super) persist_backoff: u32,
    pub(super) probes_unanswered: u32,
    pub(super) retries: u32,
    /// With a user timeout: when unacknowledged data has waited that long
    /// since it was sent (set at its first timeout).
    pub(super) give_up_at: Option<Instant>,
    pub(super) rtt: RttEstimator,
    /// The one segment being timed (its end, its send time); Karn's rule
    /// clears it whenever anything is retransmitted.
    pub(super) rtt_probe: Option<(SeqNum, Instant)>,

    // Loss recovery (RFC 5681 / 6582).
    pub(super) cc: Box<dyn CongestionControl>,
    pub(super) dup_acks: u32,
    /// Where loss recovery stands (`recovery.rs`).
    pub(super) recovery: super::recovery::Recovery,
    pub(super) recover: SeqNum,
    pub(super) rexmit_pending: bool,
    // Was cwnd the limit? The largest flight of the current round (which
    // ends when SND.UNA passes `flight_round_end`), and whether cwnd was
    // filled in it.
    pub(super) max_flight: u32,
    pub(super) flight_round_end: SeqNum,
    pub(super) cwnd_was_limited: bool,
    pub(super) probe_pending: bool,

    // Output requests. `ack_pending` asks for one ACK with the latest state
    // at the end of the current batch; `ack_queue` holds ACKs that must go
    // out as separate segments, each frozen when its cause arrived, so that
    // duplicate ACKs for out-of-order data and the ACK for every second
    // full-sized segment (RFC 5681 4.2) are not merged into one.
    pub(super) ack_pending: bool,
    pub(super) ack_queue: std::collections::VecDeque<Transmit>,
    /// Full-sized in-order segments received since we last sent an ACK.
    pub(super) segs_unacked: u32,
    pub(super) rst_pending: Option<Transmit>,

    // Negotiated options (RFC 7323, RFC 2018).
    pub(super) ts_ok: bool,
    pub(super) sack_ok: bool,
    /// TS.Recent: the peer's timestamp to echo, and when it was stored.
    pub(super) ts_recent: u32,
    pub(super) ts_recent_at: Instant,
    /// Added to our millisecond clock so TSval reveals no uptime.
    pub(super) ts_offset: u32,
    /// The IP header our segments travel under (20 for IPv4, 40 for
    /// IPv6): what a path MTU leaves for TCP.
    pub(super) ip_header_len: u16,
    /// The timestamp option of the segment being processed.
    pub(super) seg_ts: Option<(u32, u32)>,
    /// The ACK number we last sent (RFC 7323's Last.ACK.sent).
    pub(super) last_ack_sent: SeqNum,

    // Delayed ACK, keepalive and the challenge-ACK budget.
    pub(super) delack_at: Option<Instant>,
    // Quick-ACK mode (`quickack.rs`): ACKs still to send at once, whether
    // we are in a conversation, and when in-order data last arrived.
    pub(super) quick_acks: u32,
    pub(super) pingpong: bool,
    pub(super) last_data_recv: Option<Instant>,
    /// When data or the SYN-ACK last came from the peer (Linux's
    /// `lrcvtime`): what we send soon after it is a reply (`quickack.rs`).
    pub(super) last_heard: Option<Instant>,
    pub(super) keepalive_at: Option<Instant>,
    pub(super) keepalive_probes: u32,
    pub(super) keepalive_pending: bool,
    pub(super) challenge_budget: (Instant, u32),

    // SACK: what we report as receiver, what the peer reported as sender.
    pub(super) sack_recent: std::collections::VecDeque<SeqNum>,
    pub(super) dsack: Option<(SeqNum, SeqNum)>,
    /// Recent retransmissions, and whether each was of the current loss
    /// episode (whose undo its D-SACK counts towards).
    pub(super) recent_rexmits: std::collections::VecDeque<(SeqNum, bool)>,
    /// Every segment in flight: send times and marks, for RACK and recovery.
    pub(super) sent: SentQueue,
    /// Delivery rate estimation (for BBR).
    pub(super) rate: super::rate::RateSampler,
    /// When a bare out-of-window ACK was last answered (rate limit).
    pub(super) last_oow_ack: Option<Instant>,
    /// Pacing: when the next data segment may leave, where the quantum
    /// under way ends on that schedule, and the timer set when pacing held
    /// a segment back (`pacing.rs`).
    pub(super) pace_next: Option<Instant>,
    pub(super) pace_until: Option<Instant>,
    pub(super) pace_at: Option<Instant>,
    pub(super) rack: Rack,
    /// Proportional Rate Reduction (RFC 6937) during fast recovery.
    pub(super) prr: Prr,
    /// How to undo the current loss response if it proves spurious.
    pub(super) undo: Option<Undo>,
    /// The highest SACKed sequence number (Linux's snd_fack).
    pub(super) snd_fack: SeqNum,
    // Tail loss probe (RFC 8985 7): its deadline, a probe to send, and the
    // end of the flight when one was sent (until it is acknowledged).
    pub(super) tlp_at: Option<Instant>,
    pub(super) tlp_pending: bool,
    pub(super) tlp_end: Option<SeqNum>,
    /// Reordering the path has shown, in segments: the duplicate threshold.
    pub(super) reordering: u32,

    /// Receive-buffer autotuning's measurement, and the bytes of growth
    /// taken from the budget (given back on drop).
    pub(super) rcv_space: super::autotune::RcvSpace,
    pub(super) hystart: super::hystart::HyStart,
    /// When data last left (for the restart after idle).
    pub(super) last_data_sent: Option<Instant>,
    /// When data last arrived, or the handshake ended (Linux's lrcvtime,
    /// for TCP_INFO).
    pub(super) last_data_recv_at: Option<Instant>,
    /// When an ACK last arrived (Linux's rcv_tstamp, for TCP_INFO).
    pub(super) last_ack_recv_at: Option<Instant>,
    pub(super) buffer_grown: usize,
    /// The largest send and receive buffers so far (for the snapshot).
    pub(super) buffers_reached: (usize, usize),
    /// The user closed and let go: nobody will read or write again.
    pub(super) orphaned: bool,
    /// When FIN-WAIT-2 began (an orphan may wait only so long).
    pub(super) fin_wait2_since: Option<Instant>,
    /// Window probes sent since orphaned.
    pub(super) orphan_probes: u32,

    /// Sequence numbers just past the end of recent application writes
    /// (`push.rs`).
    pub(super) push_marks: std::collections::VecDeque<SeqNum>,
    /// Ends of records (`end_record`, MSG_EOR): no segment crosses one
    /// (`push.rs`).
    pub(super) record_ends: std::collections::VecDeque<SeqNum>,
    /// New-data segments sent so far in the current burst (`push.rs`).
    pub(super) burst_segs: u32,
    /// Full segments planned with the last one sent (`burst.rs`).
    pub(super) burst: Option<super::burst::Burst>,
    /// The TSval of our first SYN (`timestamps.rs`).
    pub(super) syn_tsval: Option<u32>,
    /// TCP_CORK and MSG_MORE (`cork.rs`).
    pub(super) cork: super::cork::Cork,
    /// ECN (`ecn.rs`).
    pub(super) ecn: super::ecn::EcnState,
    /// The end of the last short segment of new data sent (Minshall's
    /// Nagle, `output.rs`).
    pub(super) snd_sml: SeqNum,
    /// Passive Fast Open (`fast_open.rs`).
    pub(super) fast_open: super::fast_open::FastOpenState,
    /// A writer was turned away (send buffer or unsent limit), and room
    /// has come back through sending since (`unsent.rs`).
    pub(super) send_blocked: bool,
    pub(super) writable_again: bool,
    /// The latest RTT sample (`Counters::rtt_samples` counts them).
    pub(super) last_rtt: std::time::Duration,

    pub(super) events: u8,
    pub(super) error: Option<ConnError>,
    pub(super) counters: Counters,
}

impl Connection {
    /// A fresh TCB in CLOSED. `iss` is the initial send sequence number the
    /// caller computed (RFC 6528, see [`super::isn`]).
    pub fn new(cfg: Config, iss: SeqNum) -> Self {
        let rtt = RttEstimator::new(
            cfg.initial_rto,
            cfg.min_rto,
            cfg.max_rto,
            cfg.clock_granularity,
        );
        let mss = u32::from(cfg.mss);
        let cc = cfg.congestion.build(mss, cfg.initial_window_segments * mss);
        Connection {
            passive: false,
            state: State::Closed,
            iss,
            syn_acked: false,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            chrono: Default::default(),
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            snd_shift: 0,
            ws_ok: false,
            send_buf: SendBuffer::new(cfg.send_buffer),
            send_buf_seq: iss + 1,
            fin_queued: false,
            eff_mss: mss,
            negotiated_mss: mss,
            pmtu_retry_at: None,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_adv: SeqNum(0),
            rcv_shift: 0,
            recv_buf: RecvBuffer::new(cfg.recv_buffer),
            assembler: Assembler::default(),
            peer_fin: None,
            fin_received: false,
            rto_at: None,
            persist_at: None,
            time_wait_at: None,
            persist_backoff: 0,
            probes_unanswered: 0,
            retries: 0,
            give_up_at: None,
            rtt,
            rtt_probe: None,
            cc,
            dup_acks: 0,
            recovery: super::recovery::Recovery::Open,
            recover: iss,
            rexmit_pending: false,
            max_flight: 0,
            flight_round_end: iss,
            cwnd_was_limited: false,
            probe_pending: false,
            ack_pending: false,
            ack_queue: std::collections::VecDeque::with_capacity(ACK_QUEUE_MAX / 4),
            segs_unacked: 0,
            rst_pending: None,
            ts_ok: false,
            sack_ok: false,
            ts_recent: 0,
            ts_recent_at: Instant::ZERO,
            // Any value works (RFC 7323 5.4); one derived from the keyed
            // ISN keeps the connection deterministic yet unpredictable.
            ts_offset: iss.0.rotate_left(13) ^ 0x5bd1_e995,
            ip_header_len: 20,
            seg_ts: None,
            last_ack_sent: SeqNum(0),
            delack_at: None,
            fast_open: Default::default(),
            quick_acks: 0,
            pingpong: false,
            last_data_recv: None,
            last_heard: None,
            keepalive_at: None,
            keepalive_probes: 0,
            keepalive_pending: false,
            challenge_budget: (Instant::ZERO, 0),
            sack_recent: std::collections::VecDeque::with_capacity(4),
            dsack: None,
            recent_rexmits: std::collections::VecDeque::with_capacity(64),
            sent: SentQueue::default(),
            rate: super::rate::RateSampler::new(Instant::from_nanos(0)),
            last_oow_ack: None,
            pace_next: None,
            pace_until: None,
            pace_at: None,
            rack: Rack::default(),
            prr: Prr::default(),
            undo: None,
            snd_fack: iss,
            tlp_at: None,
            tlp_pending: false,
            tlp_end: None,
            reordering: 3,
            rcv_space: Default::default(),
            hystart: Default::default(),
            last_data_sent: None,
            last_data_recv_at: None,
            last_ack_recv_at: None,
            buffer_grown: 0,
            buffers_reached: (cfg.send_buffer, cfg.recv_buffer),
            orphaned: false,
            fin_wait2_since: None,
            orphan_probes: 0,
            push_marks: std::collections::VecDeque::new(),
            record_ends: std::collections::VecDeque::new(),
            burst_segs: 0,
            burst: None,
            syn_tsval: None,
            cork: Default::default(),
            ecn: Default::default(),
            snd_sml: iss,
            send_blocked: false,
            writable_again: false,
            last_rtt: std::time::Duration::ZERO,
            events: 0,
            error: None,
            counters: Counters::default(),
            cfg,
        }
    }

    /// Active open: CLOSED -> SYN-SENT. The SYN leaves on the next poll.
    pub fn connect(cfg: Config, iss: SeqNum) -> Self {
        let mut c = Connection::new(cfg, iss);
        c.state = State::SynSent;
        c
    }

    /// Passive open: CLOSED -> LISTEN.
    pub fn listen(cfg: Config, iss: SeqNum) -> Self {
        let mut c = Connection::new(cfg, iss);
        c.state = State::Listen;
        c
    }

    /// Sets the offset of our timestamp clock (before the first segment).
    /// The interface sets a keyed one (`IsnGenerator::ts_offset`); without
    /// it the offset comes from the ISS, which is fine for a connection
    /// driven by hand but tells a peer, who sees the ISS, our clock.
    pub fn set_ts_offset(&mut self, offset: u32) {
        self.ts_offset = offset;
    }

    /// The connection runs over IPv6: its IP header is 40 bytes, not 20,
    /// and a path MTU is at least 1280 (RFC 8200 5).
    pub fn set_ipv6(&mut self) {
        self.ip_header_len = 40;
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn error(&self) -> Option<ConnError> {
        self.error
    }

    /// Bytes that [`Connection::recv`] would return now.
    pub fn recv_queue(&self) -> usize {
        self.recv_buf.len()
    }

    /// Bytes queued to send and not yet acknowledged.
    pub fn send_queue(&self) -> usize {
        self.send_buf.len()
    }

    /// The largest window the peer offered so far (scaled), and the
    /// segment size sent now: what Linux sizes its skbs by.
    pub fn max_send_window(&self) -> u32 {
        self.max_snd_wnd
    }

    pub fn send_mss(&self) -> u32 {
        self.eff_mss
    }

    /// Bytes the connection holds allocated: its buffers (their capacities),
    /// the out-of-order range list and the send record.
    pub fn buffer_capacity(&self) -> usize {
        self.send_buf.capacity()
            + self.recv_buf.capacity()
            + self.assembler.memory()
            + self.sent.memory()
    }

    /// Under memory pressure: forgets the out-of-order data and the list
    /// of its ranges. RFC 2018 lets a receiver renege on data it SACKed:
    /// the sender keeps every byte until it is acknowledged cumulatively
    /// and sends it again. Returns how many ranges were dropped.
    pub fn prune_out_of_order(&mut self) -> usize {
        let n = self.assembler.ranges().len();
        if n > 0 {
            self.assembler = Assembler::default();
            self.sack_recent.clear();
            self.counters.ooo_pruned += 1;
        }
        n
    }

    /// Room for more data: what the send buffer has free, within the
    /// bound on unsent bytes (`unsent.rs`).
    pub fn send_capacity(&self) -> usize {
        if self.state.can_send_data() && !self.fin_queued {
            self.unsent_room()
        } else {
            0
        }
    }

    /// The received in-order bytes, in place and in order, without copying
    /// them out: a part per frame kept where it arrived, then up to two
    /// from the ring (`recv_buffer.rs`); `recv_consume` releases them.
    pub fn recv_parts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.recv_buf.parts()
    }

    /// Received frames whose payload waits in place, unread.
    pub fn recv_held_frames(&self) -> usize {
        self.recv_buf.held_frames()
    }

    /// Releases the first `n` bytes shown by `recv_parts`.
    pub fn recv_consume(&mut self, n: usize) {
        let n = n.min(self.recv_buf.len());
        if n == 0 {
            return;
        }
        let old_window = self.rcv_adv.diff(self.rcv_nxt).max(0) as u32;
        self.recv_buf.consume(n);
        self.note_consumed(n);
        if matches!(self.state, State::TimeWait | State::Closed) && self.recv_buf.is_empty() {
            self.shed_buffers();
        }
        // Tell the sender about a window that opened a lot: at least
        // doubled and by a full segment (receiver-side SWS avoidance), as
        // far as the window field can say it (65,535 scaled).
        let new_window = (self.recv_buf.free() as u32).min(65_535 << self.rcv_shift);
        if self.state.can_receive_data()
            && new_window >= 2 * old_window
            && new_window - old_window >= self.eff_mss
        {
            self.ack_pending = true;
        }
    }

    /// True once the peer's FIN arrived (data before it may be unread).
    pub fn peer_closed(&self) -> bool {
        self.fin_received
    }

    /// True once the peer's FIN was received and all data before it read.
    pub fn at_eof(&self) -> bool {
        self.fin_received && self.recv_buf.is_empty()
    }

    /// Sets the user timeout (`Config::user_timeout`) from now on.
    pub fn set_user_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.cfg.user_timeout = timeout;
        if timeout.is_none() {
            self.give_up_at = None;
        }
    }

    /// Sets how many times the SYN is sent again before giving up
    /// (`Config::max_syn_retries`, Linux's TCP_SYNCNT).
    pub fn set_syn_retries(&mut self, n: u32) {
        self.cfg.max_syn_retries = n;
    }

    pub fn set_nodelay(&mut self, nodelay: bool) {
        self.unplan_burst();
        self.cfg.nagle = !nodelay;
        if nodelay {
            // As Linux: setting it sends what Nagle or a cork holds.
            self.flush_cork();
        }
    }

    /// What every write does first: no planned burst stays (new bytes may
    /// join it), errors and states that take no data refuse, a write in
    /// LISTEN turns the open active, a cork learns of the write.
    fn send_ready(&mut self, has_data: bool) -> Result<(), TcpError> {
        self.unplan_burst();
        if let Some(e) = self.error {
            return Err(TcpError::Failed(e));
        }
        if self.state == State::Listen && has_data {
            // RFC 9293: SEND in LISTEN turns the passive open active.
            self.state = State::SynSent;
            self.passive = false;
        }
        if !self.state.can_send_data() || self.fin_queued {
            return Err(TcpError::InvalidState(self.state));
        }
        self.cork_on_write();
        Ok(())
    }

    /// Queues data; returns how much fit in the send buffer.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        self.send_ready(!data.is_empty())?;
        let room = self.unsent_room();
        let n = self.send_buf.push(&data[..data.len().min(room)]);
        if n > 0 {
            self.mark_push();
        }
        self.send_blocked |= n < data.len();
        if n == 0 && !data.is_empty() {
            return Err(TcpError::WouldBlock);
        }
        Ok(n)
    }

    /// Queues `chunk` without copying it (one copy, into the frame, on
    /// its way out), whole or not at all. It is taken while the unsent
    /// bytes are below their bound (which it may then pass by less than
    /// itself, as a write past Linux's TCP_NOTSENT_LOWAT does) and the
    /// send buffer has room for all of it; otherwise it comes back with
    /// `WouldBlock`. Once its bytes are acknowledged (or the connection
    /// lets go of them) [`Connection::reclaim`] gives it back, for reuse.
    pub fn send_owned(&mut self, chunk: Vec<u8>) -> Result<(), (TcpError, Vec<u8>)> {
        if chunk.is_empty() {
            self.send_buf
                .push_owned(chunk)
                .expect("an empty chunk fits");
            return Ok(());
        }
        if let Err(e) = self.send_ready(true) {
            return Err((e, chunk));
        }
        let taken = if self.unsent_room() == 0 {
            Err(chunk)
        } else {
            // Refused when the buffer has no room for all of it.
            self.send_buf.push_owned(chunk)
        };
        if let Err(chunk) = taken {
            self.send_blocked = true;
            return Err((TcpError::WouldBlock, chunk));
        }
        self.mark_push();
        Ok(())
    }

    /// A chunk given by [`Connection::send_owned`] that the connection is
    /// done with.
    pub fn reclaim(&mut self) -> Option<Vec<u8>> {
        self.send_buf.reclaim()
    }

    /// Sends received bytes back, as many as both rings allow, copying once
    /// from the receive ring to the send ring (an echo without a buffer
    /// in between). Returns how many moved.
    pub fn echo(&mut self) -> Result<usize, TcpError> {
        self.unplan_burst();
        let n = self.recv_buf.len().min(self.send_capacity());
        self.send_blocked |= n < self.recv_buf.len();
        if n == 0 {
            return Ok(0);
        }
        let mut pushed = 0;
        for p in self.recv_buf.parts() {
            pushed += self.send_buf.push(&p[..p.len().min(n - pushed)]);
            if pushed == n {
                break;
            }
        }
        debug_assert_eq!(pushed, n, "send_capacity promised room");
        self.mark_push();
        self.recv_consume(n);
        Ok(n)
    }

    /// Reads in-order data. `Ok(0)` means the peer closed its side.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<usize, TcpError> {
        let n = self.recv_buf.copy_out(out);
        if n > 0 {
            self.recv_consume(n);
            return Ok(n);
        }
        if out.is_empty() {
            return Ok(0);
        }
        if self.fin_received {
            return Ok(0);
        }
        match (self.error, self.state) {
            (Some(e), _) => Err(TcpError::Failed(e)),
            (None, State::Closed | State::Listen) => Err(TcpError::InvalidState(self.state)),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Closes our sending side (a FIN after the queued data); receiving goes
    /// on until the peer closes too (half-close).
    pub fn close(&mut self) {
        self.unplan_burst();
        match self.state {
            // Data queued before the handshake completes is still owed:
            // the FIN follows it once ESTABLISHED is reached (as RFC 9293
            // queues a CLOSE in SYN-RECEIVED).
            State::SynSent if !self.send_buf.is_empty() => self.fin_queued = true,
            State::Listen | State::SynSent => self.enter_closed(None),
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// The user is done with the connection for good (closed, handle
    /// gone). It still delivers what is queued and closes properly, but it
    /// may no longer wait forever on the peer: FIN-WAIT-2 lasts at most
    /// `fin_timeout`, and a zero window is probed `orphan_retries` times.
    pub fn orphan(&mut self) {
        self.orphaned = true;
    }

    /// Path MTU discovery: a router could not forward our segment at `seq`
    /// at this size; the path carries at most `mtu` bytes of IP (of the
    /// connection's family: `set_ipv6`). Lowers
    /// the MSS and resends, at the new size, everything in flight that was
    /// sent larger (as Linux's `tcp_simple_retransmit`; the window is not
    /// cut: nothing was congested). Returns false if the message named no
    /// segment in flight or no smaller size. Ten minutes on, the full size
    /// is tried again (`PMTU_RETRY`).
    pub fn on_path_mtu(&mut self, mtu: u16, seq: SeqNum, now: Instant) -> bool {
        self.unplan_burst();
        let in_flight = self.snd_una <= seq && seq < self.snd_max;
        // 576 is the size every IPv4 host must accept (RFC 791), 1280
        // every IPv6 link's minimum (RFC 8200 5); below it a report is
        // more likely forged than true.
        let floor = if self.ip_header_len == 40 { 1280 } else { 576 };
        let headers = u32::from(self.ip_header_len) + 20;
        let mtu = u32::from(mtu).max(floor);
        if self.state == State::SynSent && seq == self.iss && self.snd_max > self.iss + 1 {
            // Our SYN carried data (Fast Open) and was too big: announce
            // the path's MSS and send a plain SYN at once, as Linux.
            let mss = (mtu - headers).min(u32::from(self.cfg.mss)) as u16;
            if mss >= self.cfg.mss {
                return false;
            }
            self.cfg.mss = mss;
            self.snd_nxt = self.iss;
            self.counters.pmtu_reductions += 1;
            return true;
        }
        if !self.state.is_synchronized() || !in_flight {
            return false;
        }
        let options = if self.ts_ok { 12 } else { 0 };
        let mss = mtu - headers - options;
        if mss >= self.eff_mss {
            return false;
        }
        self.eff_mss = mss;
        self.pmtu_retry_at = Some(now + PMTU_RETRY);
        self.counters.pmtu_reductions += 1;
        self.rtt_probe = None;
        if self.sack_ok {
            self.sent.resegment(mss);
        } else {
            self.snd_nxt = self.snd_una;
        }
        self.update_timers(now);
        true
    }

    /// In TIME-WAIT: may this SYN start a new incarnation of the 4-tuple
    /// (RFC 6191, `time_wait::new_incarnation`)?
    pub fn accepts_new_incarnation(&self, seg: &crate::wire::tcp::TcpSegment<'_>) -> bool {
        let ts_recent = self.ts_ok.then_some(self.ts_recent);
        self.state == State::TimeWait
            && super::time_wait::new_incarnation(ts_recent, self.rcv_nxt, seg)
    }

    /// Drops the connection at once, telling the peer with RST.
    pub fn abort(&mut self) {
        self.unplan_burst();
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            // RFC 9293 3.10.4 asks for <SEQ=SND.NXT><CTL=RST>; the ACK of
            // what we received rides along, as Linux sends it.
            let mut rst = self.control(self.snd_max, Flags::RST | Flags::ACK);
            // Our own reset carries timestamps, as Linux's active reset
            // (its TSval is read when it leaves, in `stamp`); a reset that
            // answers a segment does not.
            if self.ts_ok {
                rst.options.timestamps = Some((0, self.ts_recent));
            }
            self.rst_pending = Some(rst);
        }
        self.enter_closed(None);
    }

    /// The layer below could not reach the peer: the connection fails
    /// without sending anything more.
    pub fn unreachable(&mut self) {
        self.fail(ConnError::Unreachable);
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events == 0 {
            return None;
        }
        for (i, ev) in EVENT_ORDER.iter().enumerate() {
            if self.events & (1 << i) != 0 {
                self.events &= !(1 << i);
                if let (Event::Closed, Some(e)) = (ev, self.error) {
                    return Some(Event::Error(e));
                }
                return Some(*ev);
            }
        }
        None
    }

    pub(super) fn push_event(&mut self, ev: Event) {
        let i = EVENT_ORDER
            .iter()
            .position(|e| *e == ev)
            .unwrap_or(EVENT_ORDER.len() - 1);
        self.events |= 1 << i;
    }

    /// The earliest timer deadline, for the caller's timer wheel.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = earliest(earliest(self.rto_at, self.persist_at), self.time_wait_at);
        let t = earliest(earliest(t, self.tlp_at), self.rack.timer_at);
        let t = earliest(earliest(t, self.orphan_deadline()), self.pace_at);
        earliest(t, earliest(self.delack_at, self.keepalive_at))
    }

    /// When an orphan in FIN-WAIT-2 gives up on the peer's FIN.
    fn orphan_deadline(&self) -> Option<Instant> {
        match (self.orphaned, self.state, self.fin_wait2_since) {
            (true, State::FinWait2, Some(since)) => Some(since + self.cfg.fin_timeout),
            _ => None,
        }
    }

    /// Runs the timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.unplan_burst();
        if self.time_wait_at.is_some_and(|t| t <= now) {
            self.enter_closed(None);
            return;
        }
        if self.orphan_deadline().is_some_and(|t| t <= now) {
            // The peer never closed its side and nobody here will read:
            // reset it, as Linux does when tcp_fin_timeout runs out.
            self.counters.orphans_dropped += 1;
            self.abort();
            return;
        }
        // A probe due no later than the RTO goes in its place.
        let probe_first = self
            .tlp_at
            .is_some_and(|t| t <= now && self.rto_at.is_none_or(|rto| t <= rto));
        if !probe_first && self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.tlp_at = None;
            self.on_retransmission_timeout(now);
        }
        if self.rack.timer_at.is_some_and(|t| t <= now) {
            // A segment's reordering window ran out: look again.
            if self.rack_detect_loss(now) {
                self.on_rack_loss(now);
            }
        }
        if self.tlp_at.is_some_and(|t| t <= now) {
            self.tlp_at = None;
            if self.snd_max > self.snd_una && !self.recovery.loss() {
                // No ACK for two RTTs: the tail of the flight may be lost,
                // and nothing would follow it to produce duplicate ACKs.
                // A probe draws an ACK whose SACK shows the hole, so fast
                // recovery repairs it instead of the RTO, much later. In
                // recovery too: a lost retransmission with nothing sent
                // after it is invisible to RACK until something later is
                // delivered, and the probe is that something.
                self.tlp_pending = true;
                self.tlp_end = Some(self.snd_max);
                self.rto_at = Some(now + self.rtt.rto());
            }
        }
        if self.pace_at.is_some_and(|t| t <= now) {
            // Pacing lets the next segment go: the caller polls us again.
            self.pace_at = None;
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            self.ack_pending = true;
            self.note_delayed_ack_fired();
        }
        if self.keepalive_at.is_some_and(|t| t <= now) && self.on_keepalive_timer(now) {
            return;
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            self.probes_unanswered += 1;
            if self.probes_unanswered > self.cfg.max_retries {
                self.fail(ConnError::TimedOut);
                return;
            }
            if self.orphaned {
                self.orphan_probes += 1;
                if self.orphan_probes > self.cfg.orphan_retries {
                    // A peer that keeps its window shut while answering
                    // would hold a released connection forever.
                    self.counters.orphans_dropped += 1;
                    self.abort();
                    return;
                }
            }
            self.probe_pending = true;
            self.persist_backoff += 1;
        }
        self.update_timers(now);
    }

    /// Arms the tail loss probe at PTO = 2*SRTT plus the peer's delayed
    /// ACK when one segment is out, plus 2 ms otherwise (as Linux), if it
    /// would fire before the RTO.
    /// Called when new data is sent or acknowledged; needs SACK to turn
    /// the probe's ACK into recovery, and an RTT measurement.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        let Some(srtt) = self.rtt.srtt() else { return };
        if !self.sack_ok
            || self.recovery.loss()
            || self.tlp_end.is_some()
            || self.snd_max == self.snd_una
        {
            return;
        }
        let pto = if self.snd_max - self.snd_una <= self.eff_mss {
            // One segment out: its ACK may wait for the peer's delayed-ACK
            // timer, at worst 200 ms (RFC 8985 7.2's WCDelAckT, Linux's
            // TCP_RTO_MIN).
            srtt * 2 + WORST_CASE_DELAYED_ACK
        } else {
            // Several out: the ACK is not delayed; 2 ms covers the
            // timer's granularity (Linux's TCP_TIMEOUT_MIN, two jiffies).
            srtt * 2 + TLP_SLACK
        };
        // Never later than the RTO: a probe due after it goes in its place
        // (RFC 8985 7.2), without the timeout's backoff and cwnd collapse.
        // (The RTO about to be armed if none is.)
        let rto = self.rto_at.unwrap_or_else(|| now + self.rtt.rto());
        let at = rto.min(now + pto);
        self.tlp_at = Some(at);
    }

    /// Turns keepalive on with these timings, or off (SO_KEEPALIVE and
    /// TCP_KEEPIDLE, _KEEPINTVL, _KEEPCNT on a live socket): the idle clock
    /// starts again from `now`.
    pub fn set_keepalive(&mut self, keepalive: Option<super::config::Keepalive>, now: Instant) {
        self.cfg.keepalive = keepalive;
        self.keepalive_probes = 0;
        self.keepalive_at = keepalive
            .filter(|_| self.state.is_synchronized())
            .map(|ka| now + ka.idle);
    }

    /// Returns true if the connection failed.
    fn on_keepalive_timer(&mut self, now: Instant) -> bool {
        let Some(ka) = self.cfg.keepalive else {
            self.keepalive_at = None;
            return false;
        };
        if self.snd_max > self.snd_una || self.state != State::Established {
            // Data in flight: the retransmission timer watches the peer.
            self.keepalive_at = Some(now + ka.idle);
            return false;
        }
        if self.keepalive_probes >= ka.count {
            self.fail(ConnError::TimedOut);
            return true;
        }
        self.keepalive_probes += 1;
        self.keepalive_pending = true;
        self.keepalive_at = Some(now + ka.interval);
        false
    }

    /// Anything arrived from the peer: it is alive; restart the idle clock.
    pub(super) fn peer_alive(&mut self, now: Instant) {
        self.keepalive_probes = 0;
        self.keepalive_at = self.cfg.keepalive.map(|ka| now + ka.idle);
    }

    fn on_retransmission_timeout(&mut self, now: Instant) {
        if let Some(timeout) = self.cfg.user_timeout {
            // The data went out one RTO ago (the timeout that expired).
            let deadline = *self
                .give_up_at
                .get_or_insert_with(|| now + timeout.saturating_sub(self.rtt.rto()));
            if now >= deadline {
                self.fail(ConnError::TimedOut);
                return;
            }
        }
        self.retries += 1;
        let syn_phase = !self.syn_acked;
        let limit = if syn_phase {
            self.cfg.max_syn_retries
        } else if self.orphaned {
            // Nobody waits for an orphan's data: it holds its buffers for
            // fewer timeouts (as Linux's tcp_orphan_retries).
            self.cfg.orphan_retries.min(self.cfg.max_retries)
        } else {
            self.cfg.max_retries
        };
        if self.retries > limit {
            if self.orphaned {
                self.counters.orphans_dropped += 1;
            }
            self.fail(ConnError::TimedOut);
            return;
        }
        self.counters.rto_expirations += 1;
        self.rtt.back_off();
        self.rtt_probe = None;
        self.dup_acks = 0;
        self.rexmit_pending = false;
        self.rack.timer_at = None;
        if syn_phase {
            self.snd_nxt = self.snd_una;
            return;
        }
        // One loss episode reduces ssthresh once: not again on a backed-off
        // timeout, nor on a timeout during fast recovery, which already did
        // (as Linux's tcp_enter_loss).
        let new_episode = self.retries == 1 && !self.recovery.episode();
        self.hystart_on_loss();
        let flight = self.snd_max - self.snd_una;
        if new_episode {
            self.save_for_undo();
            self.cc.on_rto(flight, now);
        } else {
            self.cc.set_cwnd(self.eff_mss);
        }
        // A timeout while SACKs showed several segments beyond a hole says
        // the reordering estimate is too high (as Linux's tcp_enter_loss).
        if self.sent.sacked_bytes() >= 3 * self.eff_mss {
            self.reordering = 3;
        }
        // The recovery point stops a spurious fast retransmit (RFC 6582 4.1).
        self.enter_loss(new_episode && self.cfg.frto);
        if !self.sack_ok {
            // Go back to the first unacknowledged byte (RFC 5681 3.1,
            // RFC 6298 5.4).
            self.snd_nxt = self.snd_una;
            return;
        }
        // With SACK: everything the peer does not hold is presumed lost
        // (so the pipe is empty and cwnd can grow from one segment) and is
        // resent lowest first. F-RTO first resends only the first segment
        // and lets the next two ACKs tell whether the timeout was spurious
        // (the originals merely late); then the marks are undone.
        self.sent.mark_all_lost();
    }

    /// Arms or stops the retransmission and persist timers to match the
    /// current send state. Called after every input and output.
    pub(super) fn update_timers(&mut self, now: Instant) {
        if matches!(self.state, State::Closed | State::Listen | State::TimeWait) {
            self.rto_at = None;
            self.persist_at = None;
            return;
        }
        if self.snd_nxt > self.snd_una {
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
            // No timeout past the user timeout's deadline: it ends on time
            // (as Linux's tcp_clamp_rto_to_user_timeout).
            if let (Some(at), Some(end)) = (self.rto_at, self.give_up_at) {
                self.rto_at = Some(at.min(end.max(now)));
            }
            if self.recovery.loss() || self.tlp_end.is_some() {
                self.tlp_at = None;
            }
            self.persist_at = None;
            self.persist_backoff = 0;
        } else {
            self.rto_at = None;
            self.tlp_at = None;
            // Nothing in flight yet data waits: the window is zero or too
            // small for sender SWS avoidance. The persist timer probes a
            // zero window and overrides SWS avoidance for a small one.
            let unsent = self.has_unsent_data();
            if self.state.is_synchronized() && unsent {
                if self.persist_at.is_none() {
                    let factor = 1u32 << self.persist_backoff.min(10);
                    let wait = self.rtt.rto().saturating_mul(factor).min(self.cfg.max_rto);
                    self.persist_at = Some(now + wait);
                }
            } else {
                self.persist_at = None;
                self.persist_backoff = 0;
            }
        }
    }

    /// Data bytes beyond SND.NXT in the send buffer.
    pub(super) fn has_unsent_data(&self) -> bool {
        let end = self.send_buf_seq + self.send_buf.len() as u32;
        self.snd_nxt < end
    }

    /// Sequence number of our FIN, once the user has closed.
    pub(super) fn fin_seq(&self) -> Option<SeqNum> {
        self.fin_queued
            .then(|| self.send_buf_seq + self.send_buf.len() as u32)
    }

    pub(super) fn fin_acked(&self) -> bool {
        self.fin_seq().is_some_and(|f| self.snd_una > f)
    }

    pub(super) fn syn_acked(&self) -> bool {
        self.syn_acked
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.shed_buffers();
        self.rto_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.delack_at = None;
        self.time_wait_at = Some(now + self.cfg.time_wait);
        self.push_event(Event::Closed);
    }

    /// TIME-WAIT and CLOSED only answer retransmitted FINs and SYNs, if
    /// that: they keep no buffers (the receive ring only until the user
    /// has read it), and what the buffers grew by returns to the budget.
    fn shed_buffers(&mut self) {
        self.unplan_burst();
        // Unsent or unacknowledged bytes are gone (a reset or an abort):
        // the buffer's end stays where it was, so SND.MAX stays within it.
        self.send_buf_seq += self.send_buf.len() as u32;
        self.send_buf.shed();
        self.push_marks = Default::default();
        self.record_ends = Default::default();
        self.sent = SentQueue::default();
        // Nothing past the peer's FIN can arrive in order: out-of-order
        // ranges recorded beyond it are dropped with the buffer they
        // pointed into (found by the fuzzer: they outlived the ring).
        self.assembler = Assembler::default();
        if self.recv_buf.is_empty() {
            self.recv_buf = RecvBuffer::new(0);
        }
        self.return_growth();
    }

    pub(super) fn enter_closed(&mut self, error: Option<ConnError>) {
        if self.state != State::Closed {
            self.push_event(Event::Closed);
            self.shed_buffers();
        }
        if error.is_some() {
            self.error = error;
        }
        self.state = State::Closed;
        self.rto_at = None;
        self.persist_at = None;
        self.time_wait_at = None;
        self.keepalive_at = None;
        self.delack_at = None;
    }

    pub(super) fn fail(&mut self, e: ConnError) {
        self.enter_closed(Some(e));
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            counters: self.counters.clone(),
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            snd_wnd: self.snd_wnd,
            mss: self.eff_mss,
            window_scale: self.ws_ok.then_some((self.rcv_shift, self.snd_shift)),
            timestamps: self.ts_ok,
            sack: self.sack_ok,
            congestion: self.cc.name(),
            send_buffer: self.buffers_reached.0,
            recv_buffer: self.buffers_reached.1,
            unsent: self.unsent(),
            unsent_limit: self.unsent_limit(),
        }
    }

    /// The send record's size (records of segments in flight) and the
    /// records and entries its operations have visited: what SACK costs.
    pub fn sent_record_work(&self) -> (usize, u64) {
        (self.sent.len(), self.sent.visits())
    }

    /// The latest RTT sample and how many were taken so far (an
    /// application that reads it once a turn sees each turn's latest).
    pub fn last_rtt_sample(&self) -> Option<(u64, std::time::Duration)> {
        let n = self.counters.rtt_samples;
        (n > 0).then_some((n, self.last_rtt))
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
