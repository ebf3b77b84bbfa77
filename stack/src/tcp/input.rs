//! SEGMENT ARRIVES (RFC 9293 section 3.10.7), step by step, with the
//! RFC 5961 defences the RFC itself now recommends.

use super::congestion::AckSample;
use super::connection::{ConnError, Connection, Event};
use super::{SeqNum, State};
use crate::device::RxFrame;
use crate::time::Instant;
use crate::wire::tcp::{Flags, TcpOptions, TcpSegment};

/// Peer MSS assumed when its SYN carries no MSS option (RFC 9293 3.7.1).
const DEFAULT_PEER_MSS: u32 = 536;

impl Connection {
    /// Feeds one segment addressed to this connection.
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>, now: Instant) {
        self.unplan_burst();
        self.counters.segments_received += 1;
        self.seg_ts = seg.options.timestamps;
        self.cork_on_input();
        self.ecn_on_segment(seg.flags);
        match self.state {
            State::Closed => {}
            State::Listen => self.on_segment_listen(seg, now),
            State::SynSent => self.on_segment_syn_sent(seg, now),
            _ if self.predicted_data(seg) => {
                // Nothing outstanding and nothing acknowledged: the send
                // state the timers follow is unchanged, so they stand.
                self.take_predicted_data(seg, now);
                return;
            }
            _ => self.on_segment_synchronized(seg, now),
        }
        self.update_timers(now);
    }

    fn on_segment_listen(&mut self, seg: &TcpSegment<'_>, now: Instant) {
        let f = seg.flags;
        if f.rst() {
            return;
        }
        if f.ack() {
            self.rst_pending = Some(self.reset_for_ack(seg));
            return;
        }
        if !f.syn() || f.fin() {
            // SYN+FIN is nonsense; a segment with neither has no business here.
            self.counters.dropped_segments += 1;
            return;
        }
        self.passive = true;
        self.accept_peer_syn(seg, now);
        self.take_syn_data(seg.payload);
        self.snd_nxt = self.iss; // the SYN-ACK goes out next
        self.state = State::SynReceived;
    }

    fn on_segment_syn_sent(&mut self, seg: &TcpSegment<'_>, now: Instant) {
        let f = seg.flags;
        let ack = SeqNum(seg.ack);
        if f.ack() && (ack <= self.iss || ack > self.snd_max) {
            if !f.rst() {
                self.rst_pending = Some(self.reset_for_ack(seg));
            }
            self.counters.dropped_segments += 1;
            return;
        }
        if f.rst() {
            if f.ack() {
                self.fail(ConnError::Refused);
            }
            return;
        }
        if f.ack() && f.syn() && self.syn_ack_echo_is_bogus(seg, now) {
            self.rst_pending = Some(self.reset_for_ack(seg));
            self.counters.dropped_segments += 1;
            return;
        }
        // A SYN-ACK may carry a FIN (RFC 9293 3.10.7.3: other controls are
        // processed after the SYN); a bare SYN with FIN is nonsense.
        if !f.syn() || (f.fin() && !f.ack()) {
            self.counters.dropped_segments += 1;
            return;
        }
        self.accept_peer_syn(seg, now);
        let mut only_syn_data_resent = false;
        if f.ack() {
            self.take_ack(ack, now);
            only_syn_data_resent = self.on_fast_open_syn_ack(&seg.options);
        }
        if self.syn_acked() {
            self.state = self.established_or_closing();
            self.last_data_recv_at = Some(now);
            self.last_heard = (!only_syn_data_resent).then_some(now);
            self.peer_alive(now);
            self.push_event(Event::Connected);
            self.ack_pending = true;
            // Data on the SYN-ACK (a Fast Open server answering at once,
            // RFC 7413 4.2.2; RFC 9293 lets any SYN carry text).
            let mut room = 0;
            if !seg.payload.is_empty() && self.state.can_receive_data() {
                room = self.recv_buf.free().min(seg.payload.len());
                let start = self.rcv_nxt;
                self.receive_data(start, &seg.payload[..room], None, now);
            }
            // Its FIN counts once everything before it was taken.
            if f.fin() && room == seg.payload.len() && !self.fin_received {
                self.peer_fin = Some(self.rcv_nxt);
                self.on_fin(now);
            }
        } else {
            // Simultaneous open: answer with SYN-ACK from the same ISS.
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
        }
    }

    /// The state the handshake's end leads to: FIN-WAIT-1 if the user
    /// closed while it was still going on.
    fn established_or_closing(&self) -> State {
        if self.fin_queued {
            State::FinWait1
        } else {
            State::Established
        }
    }

    /// Records the peer's SYN: its ISN, MSS and options. An option is in
    /// use only if both SYNs carry it (RFC 7323 2.2, 3.2; RFC 2018 2).
    fn accept_peer_syn(&mut self, seg: &TcpSegment<'_>, now: Instant) {
        self.ecn_on_syn(seg.flags, seg.flags.ack());
        self.irs = SeqNum(seg.seq);
        self.rcv_nxt = self.irs + 1;
        self.rcv_adv = self.rcv_nxt;
        let opts: &TcpOptions = &seg.options;
        let peer_mss = opts.mss.map_or(DEFAULT_PEER_MSS, u32::from);
        self.eff_mss = peer_mss.min(u32::from(self.cfg.mss)).max(64);
        let ours = self.state == State::Listen || self.cfg.window_scaling;
        match opts.window_scale {
            Some(shift) if ours && self.cfg.window_scaling => {
                // RFC 7323 2.3: a shift above 14 is treated as 14.
                self.ws_ok = true;
                self.snd_shift = shift.min(14);
                self.rcv_shift = self.cfg.our_window_shift();
            }
            _ => {
                self.ws_ok = false;
                self.snd_shift = 0;
                self.rcv_shift = 0;
            }
        }
        self.ts_ok = self.cfg.timestamps && opts.timestamps.is_some();
        if let (true, Some((tsval, _))) = (self.ts_ok, opts.timestamps) {
            self.ts_recent = tsval;
            self.ts_recent_at = now;
            // Every segment now carries 12 bytes of option: less payload.
            self.eff_mss -= 12;
        }
        self.negotiated_mss = self.eff_mss;
        self.sack_ok = self.cfg.sack && opts.sack_permitted;
        // Congestion control counts in segments of the negotiated size.
        let iw = self.cfg.initial_window_segments * self.eff_mss;
        self.cc = self.cfg.congestion.build(self.eff_mss, iw);
        // The window in a SYN is never scaled.
        self.snd_wnd = u32::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = self.irs;
        self.snd_wl2 = SeqNum(seg.ack);
    }

    fn on_segment_synchronized(&mut self, seg: &TcpSegment<'_>, now: Instant) {
        let f = seg.flags;
        let seq = SeqNum(seg.seq);
        let window = self.recv_buf.free() as u32;

        // RFC 5961 3.2: an RST is acted on only at exactly RCV.NXT; one
        // elsewhere in the window gets a challenge ACK, others are dropped.
        if f.rst() {
            if seq == self.rcv_nxt {
                self.on_valid_reset();
            } else if seq.in_range(self.rcv_nxt, self.rcv_nxt + window.max(1)) {
                self.challenge_ack(now);
            } else {
                self.counters.dropped_segments += 1;
            }
            return;
        }

        // PAWS: an old duplicate is answered with an ACK and dropped.
        if self.paws_rejects(now) {
            self.counters.paws_rejected += 1;
            self.ack_pending = true;
            let seg_len = seg.payload.len() as u32 + u32::from(f.fin());
            if seg_len > 0 && seq + seg_len <= self.rcv_nxt {
                // Data we hold already (a late original overtaken by its
                // resend): say so with a D-SACK, as Linux does, so the
                // sender can undo a needless window cut.
                self.note_duplicate(seq, seq + seg_len);
                self.queue_ack();
            }
            return;
        }

        if self.state == State::SynReceived && f.syn() && seq == self.irs {
            let ack = SeqNum(seg.ack);
            if f.ack() && self.snd_una < ack && ack <= self.snd_max {
                // Simultaneous open: the peer's SYN-ACK. Its SYN we have
                // already; its ACK of ours completes the handshake. (Taken
                // for a retransmitted SYN, it would be answered with our
                // SYN-ACK again, and two stacks would trade SYN-ACKs until
                // their SYN retries ran out.)
                self.update_ts_recent(seq, now);
                self.peer_alive(now);
                self.complete_handshake(seg, seq + 1, ack, now);
                self.on_ack_field(seg, now);
                self.ack_pending = true;
                return;
            }
            // The peer retransmitted its SYN: our SYN-ACK was lost.
            self.ack_pending = true;
            return;
        }

        // RFC 5961 4.2: a SYN in a synchronized state, wherever its
        // sequence number falls, draws a challenge ACK (rate-limited), so
        // a blind flood of SYNs cannot make us send an ACK for each.
        if f.syn() {
            self.challenge_ack(now);
            return;
        }

        // First check: sequence number acceptability (3.10.7.4).
        let seg_len = seg.payload.len() as u32 + u32::from(f.syn()) + u32::from(f.fin());
        if !self.acceptable(seq, seg_len, window) {
            self.counters.dropped_segments += 1;
            if seg_len > 0 || self.oow_ack_allowed(now) {
                // Data gets its ACK (the sender may need it); a bare ACK
                // out of the window at most every half second, as Linux,
                // so that two stacks cannot loop ACKs and a blind flood
                // of them is not echoed one for one.
                self.ack_pending = true;
            }
            if seg_len > 0 && seq + seg_len <= self.rcv_nxt {
                // All of it arrived before: tell the sender (D-SACK).
                self.note_duplicate(seq, seq + seg_len);
                self.queue_ack();
            }
            if self.state == State::TimeWait && f.fin() {
                // A retransmitted FIN: our last ACK was lost. Restart 2*MSL.
                self.time_wait_at = Some(now + self.cfg.time_wait);
            }
            // A zero window accepts no data, but the ACK still counts.
            let zero_window_ack = window == 0 && seq == self.rcv_nxt && f.ack();
            if !zero_window_ack {
                return;
            }
            self.on_ack_field(seg, now);
            return;
        }

        // Fifth check: the ACK field. Only a segment that passes it too is
        // acceptable, and only an acceptable segment may touch TS.Recent
        // or count as a sign of life (RFC 7323 4.3, 5.3; RFC 5961 5): one
        // injected segment with an in-window sequence number, a bogus ACK
        // and a TSval far ahead would otherwise make PAWS drop every real
        // segment after it.
        if !f.ack() {
            self.counters.dropped_segments += 1;
            return;
        }
        let ack = SeqNum(seg.ack);
        if self.state == State::SynReceived {
            if !(self.snd_una < ack && ack <= self.snd_max) {
                self.rst_pending = Some(self.reset_for_ack(seg));
                return;
            }
        } else if self.ack_unacceptable(ack) {
            return;
        }
        self.update_ts_recent(seq, now);
        self.peer_alive(now);
        if self.state == State::SynReceived {
            self.complete_handshake(seg, seq, ack, now);
        }
        if !self.on_ack_field(seg, now) {
            return;
        }
        if self.state == State::Closed || self.state == State::TimeWait {
            return;
        }

        // Seventh check: segment text, trimmed to the window.
        let mut start = seq;
        let mut data = seg.payload;
        if start < self.rcv_nxt {
            let cut = ((self.rcv_nxt - start) as usize).min(data.len());
            data = &data[cut..];
            start = self.rcv_nxt;
        }
        let room = window - (start - self.rcv_nxt).min(window);
        let mut fin = f.fin();
        if data.len() > room as usize {
            data = &data[..room as usize];
            fin = false; // the FIN lies past the window
        }
        if fin {
            self.peer_fin = Some(start + data.len() as u32);
        }
        if !data.is_empty()
            && self.orphaned
            && matches!(self.state, State::FinWait1 | State::FinWait2)
        {
            // New data after the user closed for good: nobody will read
            // it, so say so (RFC 1122 4.2.2.13; Linux, at the segment's
            // ACK number) and end the connection.
            self.rst_pending = Some(self.reset_for_ack(seg));
            self.enter_closed(Some(ConnError::Reset));
            return;
        }
        if !data.is_empty() && self.state.can_receive_data() {
            self.receive_data(start, data, seg.lent, now);
        }

        // Eighth check: FIN, once everything before it has arrived.
        if !self.fin_received && self.peer_fin == Some(self.rcv_nxt) {
            self.on_fin(now);
        }
    }

    /// Header prediction (Van Jacobson's, as BSD and Linux have it): in a
    /// one-way transfer nearly every segment a receiver takes is the next
    /// data in order, acknowledging nothing, with no SACK blocks and its
    /// timestamp in order. Every check below passes for such a segment;
    /// this says so at once.
    fn predicted_data(&self, seg: &TcpSegment<'_>) -> bool {
        let f = seg.flags;
        let ts_in_order = match (self.ts_ok, seg.options.timestamps) {
            (true, Some((tsval, _))) => !super::timestamps::ts_before(tsval, self.ts_recent),
            (true, None) => false,
            (false, _) => true,
        };
        self.state == State::Established
            && (f == Flags::ACK || f == Flags::ACK | Flags::PSH)
            && seg.seq == self.rcv_nxt.0
            && seg.ack == self.snd_una.0
            && self.snd_max == self.snd_una
            && !self.recovery.episode()
            && !seg.payload.is_empty()
            && seg.payload.len() <= self.recv_buf.free()
            && self.assembler.is_empty()
            // A FIN seen past a gap is taken when the data reaches it.
            && self.peer_fin.is_none()
            && seg.options.sacks().is_empty()
            && ts_in_order
    }

    /// What the general path does with a predicted segment (`predicted_data`).
    fn take_predicted_data(&mut self, seg: &TcpSegment<'_>, now: Instant) {
        let seq = SeqNum(seg.seq);
        self.update_ts_recent(seq, now);
        self.peer_alive(now);
        // The ACK field acknowledges nothing: only the window may move
        // (`on_ack_field`'s own prediction).
        self.probes_unanswered = 0;
        self.last_ack_recv_at = Some(now);
        let window = u32::from(seg.window) << self.snd_shift;
        self.update_send_window(seq, self.snd_una, window);
        self.receive_data(seq, seg.payload, seg.lent, now);
    }

    /// SYN-RECEIVED -> ESTABLISHED (or FIN-WAIT-1): our SYN is acknowledged.
    fn complete_handshake(&mut self, seg: &TcpSegment<'_>, seq: SeqNum, ack: SeqNum, now: Instant) {
        self.state = self.established_or_closing();
        self.last_data_recv_at = Some(now);
        self.snd_wnd = u32::from(seg.window) << self.snd_shift;
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.push_event(Event::Connected);
    }

    /// The acceptability test of RFC 9293 3.10.7.4, four cases.
    fn acceptable(&self, seq: SeqNum, seg_len: u32, window: u32) -> bool {
        let end = self.rcv_nxt + window;
        match (seg_len, window) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_range(self.rcv_nxt, end),
            (_, 0) => false,
            _ => {
                seq.in_range(self.rcv_nxt, end) || (seq + (seg_len - 1)).in_range(self.rcv_nxt, end)
            }
        }
    }

    fn on_valid_reset(&mut self) {
        match self.state {
            // A Fast Open child has been handed to the application: it
            // is reset, as an established connection is.
            State::SynReceived if self.is_fast_open_child() => self.fail(ConnError::Reset),
            State::SynReceived if self.passive => {
                // Back to LISTEN: forget the half-open connection.
                self.state = State::Listen;
                self.snd_nxt = self.iss;
                self.snd_una = self.iss;
                self.snd_max = self.iss;
                self.syn_acked = false;
                self.rto_at = None;
            }
            State::SynReceived => self.fail(ConnError::Refused),
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                self.fail(ConnError::Reset)
            }
            // RFC 1337: TIME-WAIT ignores RSTs, so an old one cannot cut it short.
            State::TimeWait => {}
            _ => self.enter_closed(None),
        }
    }

    /// RFC 5961 5.2: an ACK of something never sent, or older than the
    /// largest window the peer offered, is answered with an ACK and the
    /// segment dropped. Returns true when it was.
    fn ack_unacceptable(&mut self, ack: SeqNum) -> bool {
        let oldest = self
            .snd_una
            .0
            .wrapping_sub(self.max_snd_wnd.max(self.eff_mss));
        let bad = ack > self.snd_max || ack < SeqNum(oldest);
        if bad {
            self.ack_pending = true;
            self.counters.dropped_segments += 1;
        }
        bad
    }

    /// May a bare out-of-window ACK be answered now (one per 500 ms)?
    fn oow_ack_allowed(&mut self, now: Instant) -> bool {
        let ok = self
            .last_oow_ack
            .is_none_or(|t| now.saturating_since(t) >= std::time::Duration::from_millis(500));
        if ok {
            self.last_oow_ack = Some(now);
        } else {
            self.counters.oow_acks_suppressed += 1;
        }
        ok
    }

    /// RFC 5961 3.2/4.2, within the per-second budget of section 7.
    fn challenge_ack(&mut self, now: Instant) {
        let (since, sent) = &mut self.challenge_budget;
        if now.saturating_since(*since) >= std::time::Duration::from_secs(1) {
            (*since, *sent) = (now, 0);
        }
        if *sent >= self.cfg.challenge_ack_limit {
            self.counters.challenge_acks_suppressed += 1;
            return;
        }
        *sent += 1;
        self.counters.challenge_acks_sent += 1;
        if self.state == State::SynReceived {
            // A pending ACK in SYN-RECEIVED resends the SYN-ACK; the
            // challenge is a bare <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
            let t = self.control(self.iss + 1, Flags::ACK);
            self.ack_queue.push_back(t);
        } else {
            self.ack_pending = true;
        }
    }

    /// The ACK field of an acceptable segment: advance SND.UNA, detect
    /// duplicate ACKs, update the send window, move closing states on.
    /// Returns false when the segment is to be dropped.
    fn on_ack_field(&mut self, seg: &TcpSegment<'_>, now: Instant) -> bool {
        let ack = SeqNum(seg.ack);
        let seq = SeqNum(seg.seq);
        let una_before = self.snd_una;
        if self.ack_unacceptable(ack) {
            return false;
        }
        self.probes_unanswered = 0;
        self.last_ack_recv_at = Some(now);
        let scaled_window = u32::from(seg.window) << self.snd_shift;
        // Header prediction's receiver half (RFC 9293 3.10.7.4's note,
        // Van Jacobson's): the ACK field of a segment to a side with
        // nothing outstanding, no loss episode and no news (no SACK
        // blocks, no ECE) acknowledges nothing; loss detection, the
        // delivery rate and congestion control have nothing to learn
        // from it. Only the window may have moved. This is every data
        // segment a one-way transfer's receiver takes.
        if ack == self.snd_una
            && self.snd_max == self.snd_una
            && !self.recovery.episode()
            && seg.options.sacks().is_empty()
            && !seg.flags.ece()
        {
            self.update_send_window(seq, ack, scaled_window);
            return true;
        }
        let prior_inflight = self.pipe();
        let advanced = ack > self.snd_una;
        // SACK blocks first (as Linux does): a D-SACK in the ACK that ends
        // a recovery still counts for that recovery.
        let newly_sacked = self.on_sack_blocks(seg.options.sacks(), ack, now);
        if advanced {
            self.take_ack(ack, now);
        }
        if self.sack_ok && advanced {
            self.check_sack_reneging(now);
        }
        // A duplicate ACK repeats SND.UNA and carries nothing new, except
        // that with SACK, newly SACKed data makes it one (RFC 6675 2).
        // Replies to zero-window probes are not: the probe byte lies past
        // the window the peer had offered, so of course it stays unacked.
        let probe_reply = self.snd_wnd == 0 && scaled_window == 0;
        if !advanced
            && ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.fin()
            && (scaled_window == self.snd_wnd || newly_sacked > 0)
            && self.snd_max > self.snd_una
            && !probe_reply
        {
            self.on_duplicate_ack(now);
        }
        if self.sack_ok && self.syn_acked {
            let delivered = (self.snd_una - una_before) + newly_sacked;
            if self.recovery.frto().is_some() {
                self.frto_on_ack(advanced);
            }
            if self.rack_detect_loss(now) {
                self.on_rack_loss(now);
            }
            if self.recovery.fast() && !self.cc.model_based() {
                self.prr_on_ack(delivered);
            }
        }
        if seg.flags.ece() && !seg.flags.syn() {
            self.ecn_on_ece(now);
        }
        self.sample_delivery(prior_inflight, now);
        if ack >= una_before {
            self.update_send_window(seq, ack, scaled_window);
        }
        match self.state {
            State::FinWait1 if self.fin_acked() => {
                self.state = State::FinWait2;
                self.fin_wait2_since = Some(now);
            }
            State::Closing if self.fin_acked() => self.enter_time_wait(now),
            State::LastAck if self.fin_acked() => {
                self.enter_closed(None);
                return false;
            }
            _ => {}
        }
        true
    }

    /// Window update, guarded against old segments (SND.WL1/WL2); the
    /// caller checked that `ack` is not below SND.UNA as it was.
    fn update_send_window(&mut self, seq: SeqNum, ack: SeqNum, scaled_window: u32) {
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.snd_wnd = scaled_window;
            self.max_snd_wnd = self.max_snd_wnd.max(scaled_window);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
        }
    }

    /// New data was acknowledged up to `ack` (> SND.UNA).
    pub(super) fn take_ack(&mut self, ack: SeqNum, now: Instant) {
        // The SYN occupies one sequence number but is not data.
        let acked = (ack - self.snd_una) - u32::from(!self.syn_acked);
        self.syn_acked = true;
        // An RTT sample: the newest segment this ACK covers, if it was
        // sent once (Karn), timed to the nanosecond from its send time
        // (as Linux times skbs); else the timestamp option's echo, which
        // counts milliseconds (on a sub-millisecond path it reads 0: srtt
        // sank to nanoseconds), or the handshake's probe.
        let mut rtt_sample = None;
        if let Some(d) = self.sent.on_ack(ack) {
            self.rack_note_order(d);
            self.rack_update(d, now);
            if d.rexmits == 0 {
                self.counters.rtt_samples += 1;
                self.last_rtt = now.saturating_since(d.at);
                rtt_sample = Some(self.last_rtt);
            }
        }
        self.check_spurious_by_timestamp(ack);
        if let Some(rtt) = rtt_sample {
            self.rtt.sample(rtt);
            self.rtt_probe = None;
        } else if let Some(rtt) = self.ts_rtt(now) {
            self.rtt.sample(rtt);
            rtt_sample = Some(rtt);
        } else if let Some((end, sent)) = self.rtt_probe {
            if ack >= end {
                self.rtt.sample(now - sent);
                rtt_sample = Some(now - sent);
                self.rtt_probe = None;
            }
        }
        let data_end = self.send_buf_seq + self.send_buf.len() as u32;
        let front = ack.min(data_end);
        if front > self.send_buf_seq {
            let n = (front - self.send_buf_seq) as usize;
            let was_full = self.send_buf.free() == 0;
            self.send_buf.consume(n);
            self.send_buf_seq = front;
            self.prune_push_marks(front);
            if was_full || self.send_buf.is_empty() {
                self.push_event(Event::Writable);
            }
        }
        let flight_before = self.snd_max - self.snd_una;
        self.snd_una = ack;
        self.chrono_on_ack(now);
        self.snd_fack = self.snd_fack.max(ack);
        if self.tlp_end.is_some_and(|end| ack >= end) {
            self.tlp_end = None;
        }
        self.tlp_at = None;
        self.arm_tlp(now);
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        self.retries = 0;
        self.give_up_at = None;
        if self.recovery.loss() && ack >= self.recover {
            // Everything outstanding at the timeout is acknowledged.
            self.end_episode();
            self.rack_on_recovery_end();
        }
        if self.recovery.fast() {
            if ack >= self.recover {
                self.end_episode();
                if self.sack_ok {
                    // RFC 6937: recovery ends with cwnd at ssthresh (a
                    // model-based controller restores its own).
                    if !self.cc.model_based() {
                        self.cc.set_cwnd(self.cc.ssthresh());
                    }
                    self.rack_on_recovery_end();
                } else {
                    self.cc.on_exit_recovery(self.snd_max - self.snd_una);
                }
            } else if self.sack_ok {
                // SACK recovery sends by the pipe estimate; just keep the
                // retransmission timer from firing while ACKs arrive.
                self.rto_at = Some(now + self.rtt.rto());
            } else {
                // RFC 6582 3.2 step 5: retransmit the next hole at once.
                self.cc.on_partial_ack(acked);
                self.rexmit_pending = true;
                self.rto_at = Some(now + self.rtt.rto());
            }
        } else if self.syn_acked() && acked > 0 && flight_before > 0 && !self.ecn_reducing() {
            let divisor = self.hystart_on_ack(rtt_sample);
            if self.cwnd_limited() {
                // What this ACK newly delivered, as Linux's acked_sacked:
                // bytes SACKed by earlier ACKs, which raised no cwnd then
                // (no data was acknowledged), do not raise it now either.
                // Without SACK each duplicate ACK stood for one segment
                // delivered (Linux's reno sacked_out): the same holds.
                let delivered = if self.sack_ok {
                    self.sent.delivered_bytes()
                } else {
                    let dup = self.dup_acks * self.eff_mss;
                    acked.saturating_sub(dup).max(acked.min(self.eff_mss))
                };
                self.cc.on_ack(delivered / divisor, now, self.rtt.srtt());
                self.autotune_send();
            }
        }
        self.dup_acks = 0;
        if !self.recovery.episode() && ack > self.recover {
            // Keep `recover` within reach of SND.UNA so that sequence
            // comparisons with it stay meaningful after 2^31 bytes.
            self.recover = SeqNum(ack.0.wrapping_sub(1));
        }
        // RFC 6298 5.3: restart the timer when new data is acknowledged.
        if !self.recovery.fast() {
            self.rto_at = None;
        }
    }

    /// The end of an ACK's processing: the delivery rate it measured, and
    /// for a model-based controller everything it showed.
    fn sample_delivery(&mut self, prior_inflight: u32, now: Instant) {
        let delivered = self.sent.take_delivered();
        let rate = self.rate.on_ack(delivered, now);
        let lost = self.sent.take_lost();
        if !self.cc.model_based() || !self.syn_acked {
            return;
        }
        self.cc.on_ack_sample(&AckSample {
            now,
            rate,
            delivered: self.rate.delivered(),
            acked: delivered.bytes,
            lost,
            inflight: self.pipe(),
            prior_inflight,
            recovery: self.recovery.fast(),
            loss: self.recovery.loss(),
            srtt: self.rtt.srtt(),
        });
    }

    /// Whether sending was limited by cwnd rather than by the application
    /// or the peer's window: only then has the network shown that a larger
    /// cwnd is safe (RFC 7661). As Linux's `tcp_is_cwnd_limited`: in slow
    /// start, while cwnd is below twice the largest flight of the round;
    /// in congestion avoidance, if cwnd was filled this round.
    fn cwnd_limited(&self) -> bool {
        let cwnd = self.cc.cwnd();
        if cwnd < self.cc.ssthresh() {
            cwnd < self.max_flight.saturating_mul(2)
        } else {
            self.cwnd_was_limited
        }
    }

    fn on_duplicate_ack(&mut self, now: Instant) {
        self.dup_acks += 1;
        self.counters.dup_acks_received += 1;
        if self.recovery.fast() {
            if !self.sack_ok {
                self.cc.on_dup_ack_in_recovery();
            }
        } else {
            self.maybe_enter_recovery(now);
        }
    }

    /// Fast retransmit and recovery start on the third duplicate ACK, only
    /// when SND.UNA is past `recover`, so one loss event reduces the
    /// window once (RFC 6582 3.2 step 1). With SACK, RACK decides what is
    /// lost (`on_rack_loss`); duplicate ACKs count only when the peer's
    /// ACKs carry no SACK blocks to decide by.
    fn maybe_enter_recovery(&mut self, now: Instant) {
        if self.dup_acks < self.dup_thresh() || self.snd_una <= self.recover {
            return;
        }
        if self.sack_ok {
            if self.sent.sacked_bytes() == 0 && self.sent.lost_bytes() == 0 && !self.sent.is_empty()
            {
                self.sent.mark_lost(0);
                self.on_rack_loss(now);
            }
            return;
        }
        self.enter_fast_recovery();
        self.cc.on_enter_recovery(self.snd_max - self.snd_una, now);
        self.rexmit_pending = true;
        self.counters.fast_retransmits += 1;
        self.rto_at = Some(now + self.rtt.rto());
    }

    /// A loss episode begins: remember what its response will change.
    /// The undo state stays until the next episode replaces it: D-SACKs
    /// for an episode's resends mostly arrive after it ended (as Linux's
    /// undo_marker); those for other resends never count.
    pub(super) fn save_for_undo(&mut self) {
        // Retransmissions before it belong to no episode that can be undone.
        for r in self.recent_rexmits.iter_mut() {
            r.1 = false;
        }
        self.undo = Some(super::connection::Undo {
            saved: self.cc.save(),
            first_rexmit: None,
            retrans: 0,
        });
    }

    /// Segments are presumed lost (RACK's verdict, or duplicate ACKs
    /// without SACK blocks): enter fast recovery unless already recovering
    /// (then the lost segments are simply resent next).
    pub(super) fn on_rack_loss(&mut self, now: Instant) {
        if self.recovery.episode() || self.snd_una <= self.recover {
            return;
        }
        self.enter_fast_recovery();
        let flight = self.snd_max - self.snd_una;
        self.cc.reduce(flight, now);
        self.prr = super::connection::Prr {
            delivered: 0,
            out: 0,
            recover_fs: u64::from(flight),
        };
        if !self.cc.model_based() {
            self.prr_on_ack(0);
        }
        self.counters.sack_recoveries += 1;
        self.counters.fast_retransmits += 1;
        self.rto_at = Some(now + self.rtt.rto());
    }

    /// RFC 6937: how much may be sent on this ACK during recovery, as a
    /// window over the pipe. While the pipe is above ssthresh, sending
    /// follows delivery in proportion ssthresh / RecoverFS, so the flight
    /// shrinks smoothly to ssthresh instead of stopping for half an RTT;
    /// below it, the slow-start reduction bound refills it no faster than
    /// slow start would.
    pub(super) fn prr_on_ack(&mut self, delivered: u32) {
        self.prr.delivered += u64::from(delivered);
        let pipe = u64::from(self.pipe());
        let ssthresh = u64::from(self.cc.ssthresh());
        let mss = u64::from(self.eff_mss);
        let mut sndcnt = if pipe > ssthresh {
            (self.prr.delivered * ssthresh)
                .div_ceil(self.prr.recover_fs.max(1))
                .saturating_sub(self.prr.out)
        } else {
            let limit = self
                .prr
                .delivered
                .saturating_sub(self.prr.out)
                .max(u64::from(delivered))
                + mss;
            (ssthresh - pipe).min(limit)
        };
        if self.prr.out == 0 {
            // The first retransmission goes out at once (fast retransmit).
            sndcnt = sndcnt.max(mss);
        }
        self.cc
            .set_cwnd((pipe + sndcnt).min(u64::from(u32::MAX)) as u32);
    }

    /// F-RTO (RFC 5682 2.1) on an ACK after a timeout that resent only the
    /// first segment. If that ACK acknowledges new data, two new segments
    /// go out instead of more resends; if the next ACK acknowledges new
    /// data too, it was the originals arriving: the timeout was spurious
    /// and its reduction and lost marks are undone. A duplicate ACK at
    /// either step means a real loss: everything not SACKed is resent, as
    /// usual after a timeout.
    fn frto_on_ack(&mut self, advanced: bool) {
        use super::recovery::Frto;
        match self.recovery.frto() {
            Some(Frto::AwaitFirst) if advanced && self.snd_una < self.recover => {
                // With no new data to test with: the usual recovery (the
                // lost marks stand).
                if self.has_unsent_data() {
                    self.set_frto(Some(Frto::AwaitSecond));
                    self.cc.set_cwnd(self.pipe() + 2 * self.eff_mss);
                } else {
                    self.set_frto(None);
                }
            }
            Some(Frto::AwaitSecond) if advanced => {
                self.set_frto(None);
                self.counters.spurious_rtos += 1;
                self.undo_loss_response();
            }
            // A duplicate ACK: a real loss; the usual recovery goes on.
            _ => self.set_frto(None),
        }
    }

    /// Eifel detection (RFC 3522): the first ACK covering the episode's
    /// first retransmission echoes a timestamp older than that
    /// retransmission: it acknowledges the original, so nothing was lost.
    fn check_spurious_by_timestamp(&mut self, ack: SeqNum) {
        let Some(undo) = self.undo else { return };
        let Some((seq, tsval)) = undo.first_rexmit else {
            return;
        };
        if ack <= seq || !self.recovery.episode() {
            return;
        }
        if let Some(u) = &mut self.undo {
            u.first_rexmit = None;
        }
        let echoed_older = self.ts_ok
            && self
                .seg_ts
                .is_some_and(|(_, ecr)| ecr != 0 && super::timestamps::ts_before(ecr, tsval));
        if echoed_older {
            self.undo_loss_response();
        }
    }

    /// A D-SACK reported one of the episode's retransmissions as a
    /// duplicate; when all of them were, the loss was not real.
    pub(super) fn dsack_for_retransmission(&mut self) {
        let Some(u) = &mut self.undo else { return };
        if u.retrans == 0 {
            return;
        }
        u.retrans -= 1;
        if u.retrans == 0 {
            self.undo_loss_response();
        }
    }

    /// The loss response proved spurious: restore the window and forget
    /// the loss marks (RFC 4015's response, as Linux's undo).
    pub(super) fn undo_loss_response(&mut self) {
        let Some(u) = self.undo.take() else { return };
        self.cc.undo(&u.saved);
        self.sent.unmark_lost();
        self.end_episode();
        self.rexmit_pending = false;
        if !self.sack_ok {
            // The originals arrived: no need to go back N.
            self.snd_nxt = self.snd_max;
        }
        self.rack.reordering_seen = true;
        // The episode was not one: a real loss may start another at once.
        self.recover = SeqNum(self.snd_una.0.wrapping_sub(1));
        self.counters.undone_recoveries += 1;
    }

    fn receive_data(
        &mut self,
        start: SeqNum,
        data: &[u8],
        lent: Option<&RxFrame<'_>>,
        now: Instant,
    ) {
        let offset = (start - self.rcv_nxt) as usize;
        let end = self.recv_buf.len() + offset;
        let had_holes = !self.assembler.is_empty();
        if offset == 0 {
            // In-order payload stays in its frame when the device lets us
            // keep it and nothing waits in the ring (`recv_buffer.rs`):
            // one copy fewer, the application reads it where it arrived.
            let kept = match lent {
                Some(f) if self.recv_buf.may_hold(had_holes) => f.keep(data),
                _ => None,
            };
            let n = match kept {
                Some(k) => {
                    self.recv_buf.hold(k);
                    self.counters.bytes_received_in_place += data.len() as u64;
                    data.len()
                }
                None => {
                    let n = self.recv_buf.write_at(end, data);
                    self.recv_buf.commit(n);
                    n
                }
            };
            self.rcv_space.arrived += n as u64;
            self.rcv_nxt += n as u32;
            self.assembler.shift(n as u32);
            let more = self.assembler.take_front();
            self.recv_buf.commit(more as usize);
            self.rcv_nxt += more;
            self.counters.bytes_received += u64::from(n as u32 + more);
            self.push_event(Event::Readable);
            self.note_receiver_rtt(now);
            self.autotune_receive(now);
            if data.len() as u32 >= self.eff_mss {
                self.segs_unacked += 1;
            }
            // RFC 5681 4.2: ACK at once when a segment fills (part of) a
            // hole, and otherwise once there are two full-sized segments to
            // acknowledge or in quick-ACK mode (`quickack.rs`). Those ACKs
            // are asked for, not built: the one ACK the transmit phase
            // sends after the device's batch covers every segment of it
            // (a stretch ACK, as the kernel's behind GRO), so bulk costs
            // one frame back per batch, not one per two segments. The
            // sender grows its window by the bytes acknowledged (RFC 3465).
            let quick = self.quick_ack_on_data(now);
            if had_holes {
                self.queue_ack();
            } else if self.segs_unacked >= 2 || self.cfg.delayed_ack.is_zero() || quick {
                self.ack_pending = true;
            } else if self.delack_at.is_none() {
                self.delack_at = Some(now + self.cfg.delayed_ack);
            }
        } else {
            self.counters.out_of_order_segments += 1;
            self.note_ooo_arrival(start);
            let o = offset as u32;
            if self.assembler.add(o, o + data.len() as u32) {
                self.recv_buf.write_at(end, data);
                self.rcv_space.arrived += data.len() as u64;
            }
            // Out-of-order data draws an immediate duplicate ACK each: the
            // sender counts them to detect the loss.
            self.queue_ack();
        }
    }

    fn on_fin(&mut self, now: Instant) {
        self.fin_received = true;
        self.rcv_nxt += 1;
        self.ack_pending = true;
        self.push_event(Event::PeerClosed);
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 if self.fin_acked() => self.enter_time_wait(now),
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    /// `<SEQ=SEG.ACK><CTL=RST>` for an ACK that acknowledges nothing of ours.
    fn reset_for_ack(&self, seg: &TcpSegment<'_>) -> super::connection::Transmit {
        let mut t = self.control(SeqNum(seg.ack), Flags::RST);
        t.ack = SeqNum(0);
        t
    }
}
