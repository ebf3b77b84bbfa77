//! Segment generation: what, if anything, the connection sends next.
//!
//! Priority: a pending RST, then the rest of a planned burst (`burst.rs`),
//! then a fast (or partial-ACK) retransmission, then a window probe, then
//! the segment at SND.NXT (SYN, data, FIN), then a bare ACK.

use super::connection::{Connection, Transmit};
use super::send_buffer::Payload;
use super::{SeqNum, State};
use crate::time::Instant;
use crate::wire::tcp::{Flags, TcpOptions};

impl Connection {
    /// The next segment to send, if any. Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.pmtu_retry_at.is_some_and(|t| t <= now) {
            // Try the full size again (checked here, where it matters:
            // no timer needed).
            self.pmtu_retry_at = None;
            self.eff_mss = self.negotiated_mss;
        }
        if self.burst.is_some() && self.rst_pending.is_none() {
            if let Some(mut t) = self.next_planned(now) {
                // The timers stand as the plan left them.
                self.leaving(&mut t, now);
                return Some(t);
            }
        }
        let mut t = self.next_transmit(now);
        if t.is_none() {
            self.end_burst();
            self.cork_pass_done();
            self.chrono_after_pass(now);
        }
        if let Some(t) = &mut t {
            self.leaving(t, now);
        }
        self.update_timers(now);
        t
    }

    /// What every segment gets as it leaves: ECE, timestamps, and the
    /// note that it carries the latest ACK.
    fn leaving(&mut self, t: &mut Transmit, now: Instant) {
        // ECE while echoing (new data got ECT and CWR in send_new).
        self.ecn_echo(t);
        self.stamp(t, now);
        self.counters.segments_sent += 1;
        if t.flags.ack() && !t.flags.rst() {
            self.last_ack_sent = t.ack;
        }
        if t.flags == Flags::ACK && t.payload_len == 0 {
            self.note_bare_ack_sent();
        }
        if t.flags.ack() && t.ack == self.rcv_nxt {
            // This segment carries the latest ACK and window.
            self.ack_pending = false;
            self.delack_at = None;
            self.segs_unacked = 0;
        }
    }

    /// The payload of `t`: the parts of the send buffer it spans.
    pub fn payload(&self, t: &Transmit) -> Payload<'_> {
        self.send_buf.parts(t.payload_offset, t.payload_len)
    }

    /// `t` as the bytes of a TCP segment (header with ports 1 -> 2, no
    /// checksum, options, payload) into `buf`: for drivers of a bare
    /// connection (tests, benchmarks, the fuzzer) that join two through
    /// the wire format without an interface.
    pub fn segment_bytes(&self, t: &Transmit, buf: &mut Vec<u8>) {
        buf.clear();
        buf.resize(crate::wire::tcp::MAX_HEADER_LEN + t.payload_len, 0);
        let n = self.segment_into(t, buf);
        buf.truncate(n);
    }

    /// As `segment_bytes`, into a buffer of at least the segment's length
    /// (a frame of a pool); returns that length.
    pub fn segment_into(&self, t: &Transmit, buf: &mut [u8]) -> usize {
        let h = crate::wire::tcp::TcpHeader {
            src_port: 1,
            dst_port: 2,
            seq: t.seq.0,
            ack: t.ack.0,
            flags: t.flags,
            window: t.window,
            options: t.options,
        };
        let hl = h.emit(buf).expect("a header fits the buffer");
        let mut at = hl;
        for part in self.payload(t) {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        at
    }

    fn next_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(rst) = self.rst_pending.take() {
            self.unplan_burst();
            return Some(rst);
        }
        if matches!(self.state, State::Closed | State::Listen) {
            self.ack_queue.clear();
            return None;
        }
        if let Some(ack) = self.ack_queue.pop_front() {
            return Some(ack);
        }
        // A Fast Open connection may send once its SYN-ACK is out
        // (RFC 7413 4.2.2); otherwise the handshake comes first.
        let fast_open_sending = self.fast_open.child && self.snd_nxt != self.iss;
        if !self.syn_acked() && !fast_open_sending {
            return self.handshake_segment(now);
        }
        if self.keepalive_pending {
            self.keepalive_pending = false;
            if self.snd_max == self.snd_una {
                // One below SND.UNA: the peer must answer with an ACK.
                self.counters.keepalive_probes_sent += 1;
                return Some(self.control(SeqNum(self.snd_una.0.wrapping_sub(1)), Flags::ACK));
            }
        }
        if self.rexmit_pending {
            self.rexmit_pending = false;
            if self.snd_max > self.snd_una {
                let len = self.sent.unsacked_run(self.snd_una, self.eff_mss).1;
                return Some(self.retransmit(self.snd_una, len, now, true));
            }
        }
        if self.tlp_pending {
            self.tlp_pending = false;
            self.counters.tail_loss_probes += 1;
            // RFC 8985 7.3: new data if the receive window allows (cwnd
            // does not matter for the probe), else the last segment again.
            let flight = self.snd_nxt - self.snd_una;
            let room = self.snd_wnd.saturating_sub(flight).min(self.eff_mss);
            if self.snd_nxt == self.snd_max {
                if let Some(t) = self.send_new(now, room, flight) {
                    return Some(t);
                }
            }
            // The last segment as it was sent (resending a different cut
            // of the bytes would split records).
            if let Some(last) = self.sent.last().copied() {
                return Some(self.retransmit(last.start, last.end - last.start, now, false));
            }
        }
        if self.probe_pending {
            self.probe_pending = false;
            if let Some(t) = self.window_probe(now) {
                return Some(t);
            }
        }
        let recovering = self.recovery.episode() || self.sent.lost_bytes() > 0;
        let data = if !self.pacing_allows(now) {
            None
        } else if recovering && self.sack_ok {
            self.sack_recovery_segment(now)
        } else {
            self.next_data_segment(now)
        };
        if data.is_some() {
            return data;
        }
        if self.pace_at.is_none() && !self.has_unsent_data() && self.pipe() < self.cc.cwnd() {
            // Room to send and nothing to send: rate samples until this
            // flight is delivered show the application, not the path.
            self.rate.on_app_limited(self.pipe());
        }
        if self.ack_pending && self.state != State::SynSent {
            let mut t = self.control(self.snd_nxt, Flags::ACK);
            self.add_sack_blocks(&mut t);
            self.note_advertised(&t);
            return Some(t);
        }
        None
    }

    /// Resends `len` bytes (at most a segment) from `seq` without moving
    /// SND.NXT: a repair (`for_episode`: of the current loss episode, if
    /// one is under way) or a tail loss probe (not).
    fn retransmit(&mut self, seq: SeqNum, len: u32, now: Instant, repair: bool) -> Transmit {
        let t = self.segment_at(seq, len.min(self.eff_mss));
        self.count_retransmit(&t);
        let for_episode = repair && self.undo.is_some() && self.recovery.episode();
        self.note_retransmission(&t, for_episode);
        self.note_advertised(&t);
        let end = t.seq + t.payload_len as u32 + u32::from(t.flags.fin());
        self.note_resent(t.seq, end, now, repair);
        self.arm_tlp(now);
        t
    }

    /// Bookkeeping for resent sequence space `[seq, end)`: its record's
    /// send time (RACK), PRR's count, and, for a repair, what undo needs.
    fn note_resent(&mut self, seq: SeqNum, end: SeqNum, now: Instant, repair: bool) {
        let tx = self.rate.on_send(now, self.pipe() == 0);
        self.sent.on_retransmit(seq, end, now, tx);
        self.on_paced_send(end - seq, now);
        if self.recovery.fast() {
            self.prr.out += u64::from(end - seq);
        }
        let episode = repair && self.recovery.episode();
        let tsval = self.ts_ok.then(|| self.ts_now(now));
        if let (true, Some(u)) = (episode, &mut self.undo) {
            u.retrans += 1;
            if u.first_rexmit.is_none() {
                u.first_rexmit = tsval.map(|ts| (seq, ts));
            }
        }
    }

    /// Recovery's NextSeg (RFC 6675 5 step C, with RACK's marks): while
    /// cwnd leaves a segment's room over the pipe, resend the lowest
    /// segment presumed lost, else send new data. Nothing is resent on
    /// speculation: a segment not presumed lost is left to RACK's timer,
    /// the tail loss probe or the RTO.
    fn sack_recovery_segment(&mut self, now: Instant) -> Option<Transmit> {
        if self.pipe() + self.eff_mss > self.cc.cwnd() {
            return None;
        }
        use super::recovery::Frto;
        let first_lost = self.sent.first_lost();
        match (self.recovery.frto(), first_lost) {
            // F-RTO: only the first segment is resent, then nothing until
            // the first ACK after the timeout...
            (Some(Frto::AwaitFirst), Some(s)) if s.start == self.snd_una => {
                return Some(self.retransmit(s.start, s.end - s.start, now, true));
            }
            (Some(Frto::AwaitFirst), _) => return None,
            // ...and after it, new data only (the test of spuriousness).
            (Some(Frto::AwaitSecond), _) => {}
            (None, Some(s)) => return Some(self.retransmit(s.start, s.end - s.start, now, true)),
            (None, None) => {}
        }
        let flight = self.snd_nxt - self.snd_una;
        let room = self.snd_wnd.saturating_sub(flight).min(self.eff_mss);
        self.send_new(now, room, flight)
    }

    /// Freezes an ACK of the current state to be sent as its own segment.
    pub(super) fn queue_ack(&mut self) {
        if self.ack_queue.len() >= super::connection::ACK_QUEUE_MAX {
            self.ack_pending = true;
            return;
        }
        let mut t = self.control(self.snd_nxt, Flags::ACK);
        self.add_sack_blocks(&mut t);
        self.note_advertised(&t);
        self.ack_queue.push_back(t);
        self.ack_pending = false;
        self.segs_unacked = 0;
    }

    /// While our SYN is unacknowledged only the SYN (or SYN-ACK) goes out.
    fn handshake_segment(&mut self, now: Instant) -> Option<Transmit> {
        let knows_peer = self.state != State::SynSent;
        if knows_peer && self.ack_pending {
            // Anything the peer sends before our SYN is acknowledged (a
            // retransmitted SYN, say) means it missed our SYN-ACK.
            self.snd_nxt = self.iss;
        }
        if self.snd_nxt != self.iss {
            return None;
        }
        let t = self.segment_at(self.iss, 0);
        self.advance(&t, now);
        Some(t)
    }

    /// The segment starting at `seq` with at most `max_data` payload bytes:
    /// SYN if `seq` is the ISS, otherwise data and, when it is reached, FIN.
    pub(super) fn segment_at(&self, seq: SeqNum, max_data: u32) -> Transmit {
        if seq == self.iss && !self.syn_acked() {
            let mut flags = Flags::SYN;
            let mut options = TcpOptions {
                mss: Some(self.cfg.mss),
                ..TcpOptions::default()
            };
            let offer_ws = match self.state {
                State::SynSent => self.cfg.window_scaling,
                // Answer a SYN with WS only if both sides offered it (RFC 7323 2.2).
                _ => self.ws_ok,
            };
            if offer_ws {
                options.window_scale = Some(self.cfg.our_window_shift());
            }
            // Timestamps are added by `stamp`, as on every segment.
            options.sack_permitted = match self.state {
                State::SynSent => self.cfg.sack,
                _ => self.sack_ok,
            };
            let mut payload_len = 0;
            flags |= self.ecn_syn_flags(self.state != State::SynSent);
            if self.state != State::SynSent {
                flags |= Flags::ACK;
                options.fast_open = self.fast_open.reply;
            } else if let Some((fo, data)) = self.syn_fast_open() {
                options.fast_open = fo;
                payload_len = data as usize;
            }
            // The window in a SYN is never scaled.
            let window = self.recv_buf.free().min(65_535) as u16;
            return Transmit {
                seq,
                ack: self.rcv_nxt,
                flags,
                window,
                options,
                payload_offset: 0,
                payload_len,
                ect: false,
            };
        }
        let offset = seq - self.send_buf_seq;
        let available = (self.send_buf.len() as u32).saturating_sub(offset);
        let mut len = available.min(max_data);
        let mut ends_record = false;
        if let Some(end) = self.record_end_after(seq) {
            ends_record = end - seq <= len;
            len = len.min(end - seq);
        }
        let mut flags = Flags::ACK;
        let empties = len == available && !self.cork_suppresses_push(seq + len);
        if len > 0 && (empties || ends_record || self.ends_a_write(seq, len)) {
            flags |= Flags::PSH;
        }
        if self.fin_seq() == Some(seq + len) {
            flags |= Flags::FIN;
        }
        let mut t = self.control(seq, flags);
        t.payload_offset = offset as usize;
        t.payload_len = len as usize;
        t
    }

    /// A segment with no payload carrying the current ACK and window.
    pub(super) fn control(&self, seq: SeqNum, flags: Flags) -> Transmit {
        let window = if flags.rst() {
            0
        } else {
            self.advertise_window()
        };
        Transmit {
            seq,
            ack: self.rcv_nxt,
            flags,
            window,
            options: TcpOptions::default(),
            payload_offset: 0,
            payload_len: 0,
            ect: false,
        }
    }

    /// The window field to advertise. The right edge only moves right, and
    /// only in steps of at least min(buffer/2, MSS) (receiver SWS avoidance,
    /// RFC 9293 3.8.6.2.2).
    fn advertise_window(&self) -> u16 {
        let free_edge = self.rcv_nxt + self.recv_buf.free() as u32;
        let step = (self.recv_buf.capacity() as u32 / 2).min(self.eff_mss);
        let edge = if free_edge.diff(self.rcv_adv) >= step as i32 || self.rcv_adv < self.rcv_nxt {
            free_edge
        } else {
            self.rcv_adv.max(self.rcv_nxt)
        };
        let window = edge - self.rcv_nxt;
        (window >> self.rcv_shift).min(65_535) as u16
    }

    /// Records the right edge a transmitted window field promised.
    pub(super) fn note_advertised(&mut self, t: &Transmit) {
        if t.flags.ack() && !t.flags.rst() {
            let shift = if t.flags.syn() { 0 } else { self.rcv_shift };
            let edge = self.rcv_nxt + (u32::from(t.window) << shift);
            if edge > self.rcv_adv || self.rcv_adv < self.rcv_nxt {
                self.rcv_adv = edge;
            }
        }
    }

    fn next_data_segment(&mut self, now: Instant) -> Option<Transmit> {
        let mut max_len = self.eff_mss;
        if self.sack_ok && self.snd_nxt < self.snd_max {
            // Resending after a timeout: skip what the peer SACKed.
            let (seq, run) = self.sent.unsacked_run(self.snd_nxt, self.eff_mss);
            self.snd_nxt = seq.min(self.snd_max);
            max_len = max_len.min(run);
        }
        // Data in flight: not the SYN-ACK of a Fast Open connection still
        // waiting for the handshake's ACK. The peer's window starts after
        // our SYN (its receive queue starts there), and the SYN takes no
        // room in cwnd either, as Linux's child socket counts both from
        // ISS+1.
        let flight = self.snd_nxt - self.snd_una - u32::from(!self.syn_acked());
        let window = self.snd_wnd.min(self.cc.cwnd() + self.limited_transmit());
        let usable = window.saturating_sub(flight);
        let fresh = self.snd_nxt == self.snd_max;
        let t = self.send_new(now, usable.min(max_len), flight);
        let full = |t: &Transmit| t.payload_len as u32 == self.eff_mss && !t.flags.fin();
        if fresh && self.cfg.plan_bursts && t.as_ref().is_some_and(full) {
            self.plan_burst(now);
        }
        t
    }

    /// The segment at SND.NXT with at most `max_len` bytes, if sender SWS
    /// avoidance lets it go.
    fn send_new(&mut self, now: Instant, max_len: u32, flight: u32) -> Option<Transmit> {
        // Nothing to send (every call after the last segment, and every
        // call of a side that only acknowledges): say so before building
        // a segment, which costs more than the answer.
        let nothing_fits = max_len == 0 || !self.has_unsent_data();
        if nothing_fits && self.fin_seq() != Some(self.snd_nxt) {
            return None;
        }
        let t = self.segment_at(self.snd_nxt, max_len);
        let len = t.payload_len as u32;
        let fin = t.flags.fin();
        if len == 0 && !fin {
            return None;
        }
        let retransmission = self.snd_nxt < self.snd_max;
        if len > 0 && !retransmission && !fin && self.cork_holds(len) {
            return None;
        }
        if len > 0 && !retransmission && !fin && !self.sender_sws_allows(len, flight) {
            return None;
        }
        if len > 0 && flight == 0 && !retransmission {
            self.restart_after_idle(now);
        }
        let mut t = t;
        if len > 0 {
            self.note_data_sent_for_quick_ack(now);
            let syn_data_again = self.is_syn_data_again(t.seq);
            if !retransmission && len < self.eff_mss && !syn_data_again {
                self.snd_sml = t.seq + len;
            }
            if !retransmission {
                self.ecn_mark_new_data(&mut t);
                let more = self.more_sendable_after(self.snd_nxt, len, flight);
                if self.ends_a_burst(t.flags.psh(), more) {
                    t.flags |= Flags::PSH;
                }
            }
        }
        self.advance(&t, now);
        if len > 0 && !retransmission && self.is_syn_data_again(t.seq) {
            self.sent.mark_resent(t.seq);
        }
        Some(t)
    }

    /// Could another new segment go right after the `len` bytes at `seq`
    /// leave, `flight` being in flight before them? (Nagle and the
    /// windows; for where bursts end.)
    pub(super) fn more_sendable_after(&self, seq: SeqNum, len: u32, flight: u32) -> bool {
        let window = self.snd_wnd.min(self.cc.cwnd() + self.limited_transmit());
        let room = window.saturating_sub(flight + len);
        let queued = (self.send_buf_seq + self.send_buf.len() as u32) - (seq + len);
        let next = room.min(queued).min(self.eff_mss);
        // A short tail may follow unless Nagle holds it; this segment,
        // if short, would be the unacknowledged short one.
        let short_out = len < self.eff_mss || self.short_segment_out();
        next > 0 && (next == self.eff_mss || (next == queued && (!self.cfg.nagle || !short_out)))
    }

    /// Minshall's Nagle, as Linux (`tcp_minshall_check`): a short segment
    /// of new data sent earlier is still unacknowledged. Only then is a
    /// short segment held while data is in flight: one small segment per
    /// round trip, as Nagle's own rule (RFC 896), but a short tail after
    /// full segments, or after the SYN's data, goes at once.
    fn short_segment_out(&self) -> bool {
        self.snd_sml > self.snd_una && self.snd_sml <= self.snd_nxt
    }

    /// RFC 5681 4.1 and RFC 7661: after an idle period (nothing in flight
    /// for more than an RTO), the network's state is no longer known, so
    /// a full old cwnd must not go out as one burst: halve it for each RTO
    /// of idleness, down to the initial window (as Linux's
    /// `tcp_cwnd_restart`); congestion control learns of the pause too.
    fn restart_after_idle(&mut self, now: Instant) {
        let Some(last) = self.last_data_sent else {
            return;
        };
        let idle = now.saturating_since(last);
        let rto = self.rtt.rto();
        if idle <= rto {
            return;
        }
        self.cc.on_idle(idle);
        if self.cc.model_based() {
            // The model knows the path's rate and paces: nothing to cut
            // (Linux skips the restart for such controllers too).
            return;
        }
        let iw = self.cfg.initial_window_segments * self.eff_mss;
        let halvings = (idle.as_nanos() / rto.as_nanos().max(1)).min(31) as u32;
        let cwnd = (self.cc.cwnd() >> halvings).max(iw);
        if cwnd < self.cc.cwnd() {
            self.cc.set_cwnd(cwnd);
            self.counters.idle_restarts += 1;
        }
    }

    /// Limited Transmit (RFC 3042): the first and second duplicate ACK
    /// each let one new segment out beyond cwnd, so that a small window
    /// still yields the three duplicate ACKs fast retransmit needs instead
    /// of waiting for the retransmission timer.
    pub(super) fn limited_transmit(&self) -> u32 {
        if self.recovery.fast() || self.snd_nxt != self.snd_max {
            return 0;
        }
        self.dup_acks.min(2) * self.eff_mss
    }

    /// Sender-side SWS avoidance with Nagle (RFC 9293 3.8.6.2.1, RFC 896,
    /// in Minshall's form).
    fn sender_sws_allows(&self, len: u32, flight: u32) -> bool {
        let offset = self.snd_nxt - self.send_buf_seq;
        let queued = self.send_buf.len() as u32 - offset;
        let ends_record = self.record_end_after(self.snd_nxt) == Some(self.snd_nxt + len);
        len >= self.eff_mss
            || (len == queued && (!self.cfg.nagle || flight == 0 || !self.short_segment_out()))
            || (len < queued && ends_record)
            || (self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2)
    }

    /// Moves SND.NXT past a segment being sent and does the bookkeeping.
    fn advance(&mut self, t: &Transmit, now: Instant) {
        let seq_len = t.payload_len as u32 + u32::from(t.flags.syn()) + u32::from(t.flags.fin());
        let end = t.seq + seq_len;
        if !t.flags.syn() {
            if t.seq < self.snd_max {
                self.note_resent(t.seq, end.min(self.snd_max), now, true);
            }
            if end > self.snd_max {
                let fresh = end - t.seq.max(self.snd_max);
                let tx = self.rate.on_send(now, self.snd_max == self.snd_una);
                self.sent.on_send(t.seq, end, now, tx);
                self.on_paced_send(fresh, now);
                if self.recovery.fast() {
                    self.prr.out += u64::from(fresh);
                }
            }
        }
        if t.seq < self.snd_max {
            self.count_retransmit(t);
        } else {
            self.counters.bytes_sent += t.payload_len as u64;
            if self.rtt_probe.is_none() && seq_len > 0 {
                // A SYN is timed to its own ACK, data on it or not (the
                // data of a Fast Open SYN may be acknowledged later).
                let timed = if t.flags.syn() { t.seq + 1 } else { end };
                self.rtt_probe = Some((timed, now));
            }
        }
        self.snd_nxt = end;
        if t.payload_len > 0 {
            self.last_data_sent = Some(now);
        }
        let new_data = end > self.snd_max;
        self.snd_max = self.snd_max.max(end);
        if new_data {
            self.note_unsent_drained();
        }
        self.note_advertised(t);
        self.note_flight();
        if new_data {
            self.arm_tlp(now);
        }
    }

    /// Tracks the round's largest flight and whether cwnd was filled, for
    /// `cwnd_limited`.
    pub(super) fn note_flight(&mut self) {
        let flight = self.snd_nxt - self.snd_una;
        let new_round = self.snd_una > self.flight_round_end;
        if new_round {
            self.cwnd_was_limited = false;
        }
        if new_round || flight >= self.max_flight {
            self.max_flight = flight;
            self.flight_round_end = self.snd_nxt;
        }
        if flight + self.eff_mss > self.cc.cwnd() {
            self.cwnd_was_limited = true;
        }
    }

    fn count_retransmit(&mut self, t: &Transmit) {
        self.counters.retransmits += 1;
        self.counters.bytes_retransmitted += t.payload_len as u64;
        // Karn: an RTT measured across a retransmission is ambiguous.
        self.rtt_probe = None;
    }

    /// Persist timer output. Zero-window probe: one byte past SND.NXT, sent without advancing
    /// SND.NXT so the retransmission timer is not involved; an ACK for it is
    /// still acceptable because SND.MAX covers it.
    fn window_probe(&mut self, now: Instant) -> Option<Transmit> {
        if !self.has_unsent_data() {
            return None;
        }
        if self.snd_wnd > self.snd_nxt - self.snd_una {
            // SWS override (RFC 9293 3.8.6.2.1): the window is open but too
            // small for a full segment; after the timeout send what fits.
            let usable = self.snd_wnd - (self.snd_nxt - self.snd_una);
            let mut t = self.segment_at(self.snd_nxt, usable.min(self.eff_mss));
            // As Linux's probe timer (tcp_write_wakeup): held data goes
            // now, pushed.
            if t.payload_len > 0 {
                t.flags |= Flags::PSH;
            }
            self.advance(&t, now);
            return Some(t);
        }
        // A zero window: a segment the peer must answer with an ACK that
        // shows its window. Linux sends no data (the sequence number just
        // below SND.UNA, as a keepalive probe); a byte beyond the window
        // (RFC 9293 3.8.6.1) would only be dropped and sent again.
        let t = self.control(SeqNum(self.snd_una.0.wrapping_sub(1)), Flags::ACK);
        self.counters.window_probes_sent += 1;
        self.note_advertised(&t);
        Some(t)
    }
}
