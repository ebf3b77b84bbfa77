//! TIME-WAIT as a compact record (RFC 9293 3.10.7.4, RFC 1337, RFC 6191).
//!
//! A connection that closed first waits 2*MSL in TIME-WAIT, so that a
//! lost last ACK can be sent again when the peer retransmits its FIN, and
//! old duplicates of the connection die before its 4-tuple is reused. All
//! that takes is a few sequence numbers and the timestamp state: this
//! record, tens of bytes, stands in for the connection (kilobytes) once its
//! application has let go and read everything, as Linux's
//! `inet_timewait_sock` does. A peer that opens and closes connections as
//! fast as it can then costs us little memory per connection, and the
//! interface caps how many it keeps (`Limits::max_time_wait`).

use super::connection::{Connection, Transmit};
use super::timestamps::ts_before;
use super::{SeqNum, State};
use crate::time::Instant;
use crate::wire::tcp::{Flags, TcpSegment};
use std::time::Duration;

/// Bare ACKs out of the window, and SYNs that cannot start a new
/// incarnation, are answered at most this often (as in a connection).
const ANSWER_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWait {
    /// Our next sequence number (past our FIN) and the peer's (past its).
    snd_nxt: SeqNum,
    rcv_nxt: SeqNum,
    /// The window our ACKs advertise (as the connection's last did).
    window: u16,
    /// With timestamps: our clock's offset and TS.Recent.
    ts: Option<(u32, u32)>,
    /// When the record expires (restarted by a retransmitted FIN).
    pub deadline: Instant,
    /// How long TIME-WAIT lasts (for the restart).
    duration: Duration,
    last_answer: Option<Instant>,
}

/// What a segment for a TIME-WAIT record calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeWaitReply {
    Nothing,
    /// Send this ACK.
    Ack(Transmit),
    /// A SYN that may open a new connection on the 4-tuple (RFC 6191):
    /// forget the record and treat it as a SYN to the listener.
    NewIncarnation,
}

impl Connection {
    /// The compact record of this connection, if it is in TIME-WAIT with
    /// nothing left for its user to read.
    pub fn time_wait_record(&self) -> Option<TimeWait> {
        if self.state != State::TimeWait || !self.recv_buf.is_empty() {
            return None;
        }
        Some(TimeWait {
            snd_nxt: self.snd_nxt,
            rcv_nxt: self.rcv_nxt,
            window: (self.rcv_adv.diff(self.rcv_nxt).max(0) as u32 >> self.rcv_shift).min(65_535)
                as u16,
            ts: self.ts_ok.then_some((self.ts_offset, self.ts_recent)),
            deadline: self.time_wait_at?,
            duration: self.cfg.time_wait,
            last_answer: self.last_oow_ack,
        })
    }
}

/// RFC 6191 (and RFC 1122 4.2.2.13 without timestamps): in TIME-WAIT, a
/// SYN whose timestamp is newer than the last one seen (`ts_recent`, with
/// timestamps in use), or whose sequence number lies beyond the old
/// connection's, cannot be an old duplicate, so it may start a new
/// incarnation of the 4-tuple.
pub(super) fn new_incarnation(
    ts_recent: Option<u32>,
    rcv_nxt: SeqNum,
    seg: &TcpSegment<'_>,
) -> bool {
    let f = seg.flags;
    if !f.syn() || f.ack() || f.rst() {
        return false;
    }
    match (ts_recent, seg.options.timestamps) {
        (Some(recent), Some((tsval, _))) => ts_before(recent, tsval),
        (Some(_), None) => false,
        (None, _) => SeqNum(seg.seq) > rcv_nxt,
    }
}

impl TimeWait {
    /// A segment for this record's 4-tuple arrived.
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>, now: Instant) -> TimeWaitReply {
        let f = seg.flags;
        if f.rst() {
            // RFC 1337: an old reset must not cut TIME-WAIT short.
            return TimeWaitReply::Nothing;
        }
        let tsval = seg.options.timestamps.map(|(v, _)| v);
        if f.syn() && !f.ack() {
            if new_incarnation(self.ts.map(|(_, recent)| recent), self.rcv_nxt, seg) {
                return TimeWaitReply::NewIncarnation;
            }
            return self.answer_at_most_every_interval(now);
        }
        if let (Some((_, recent)), Some(v)) = (self.ts, tsval) {
            if ts_before(v, recent) {
                // PAWS: an old duplicate.
                return self.answer_at_most_every_interval(now);
            }
        }
        let seg_len = seg.payload.len() as u32 + u32::from(f.fin());
        let retransmitted_fin = f.fin() && SeqNum(seg.seq) + seg_len == self.rcv_nxt;
        if retransmitted_fin {
            // Our last ACK was lost: send it again, and wait 2*MSL anew.
            self.deadline = now + self.duration;
            if let (Some((offset, _)), Some(v)) = (self.ts, tsval) {
                self.ts = Some((offset, v));
            }
            return TimeWaitReply::Ack(self.ack(now));
        }
        if seg_len > 0 || SeqNum(seg.seq) != self.rcv_nxt {
            return self.answer_at_most_every_interval(now);
        }
        TimeWaitReply::Nothing
    }

    fn answer_at_most_every_interval(&mut self, now: Instant) -> TimeWaitReply {
        if self
            .last_answer
            .is_some_and(|t| now.saturating_since(t) < ANSWER_INTERVAL)
        {
            return TimeWaitReply::Nothing;
        }
        self.last_answer = Some(now);
        TimeWaitReply::Ack(self.ack(now))
    }

    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`, with our timestamp.
    fn ack(&self, now: Instant) -> Transmit {
        let mut t = Transmit::bare(self.snd_nxt, self.rcv_nxt, Flags::ACK);
        t.window = self.window;
        t.options.timestamps = self
            .ts
            .map(|(offset, recent)| ((now.as_millis() as u32).wrapping_add(offset), recent));
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::Config;
    use crate::wire::tcp::TcpOptions;

    const PEER: u32 = 9000;

    fn seg(seq: u32, flags: Flags, ts: Option<u32>) -> TcpSegment<'static> {
        TcpSegment {
            src_port: 2,
            dst_port: 1,
            seq,
            ack: 0,
            flags,
            window: 1000,
            urgent: 0,
            options: TcpOptions {
                timestamps: ts.map(|v| (v, 0)),
                ..Default::default()
            },
            payload: &[],
            lent: None,
        }
    }

    /// A connection that closed first and got the peer's FIN: TIME-WAIT.
    fn record() -> TimeWait {
        let t = Instant::from_millis;
        let mut c = Connection::connect(Config::default(), SeqNum(500));
        let syn = c.poll_transmit(t(1)).unwrap();
        let mut synack = seg(PEER, Flags::SYN | Flags::ACK, Some(100));
        synack.ack = syn.seq.0 + 1;
        synack.options.sack_permitted = true;
        c.on_segment(&synack, t(2));
        c.close();
        while c.poll_transmit(t(3)).is_some() {}
        let mut fin = seg(PEER + 1, Flags::FIN | Flags::ACK, Some(101));
        fin.ack = 502;
        c.on_segment(&fin, t(4));
        assert_eq!(c.state(), State::TimeWait);
        c.time_wait_record().expect("nothing left to read")
    }

    #[test]
    fn a_retransmitted_fin_is_acknowledged_and_restarts_the_wait() {
        let mut tw = record();
        let before = tw.deadline;
        let now = Instant::from_millis(10_000);
        let reply = tw.on_segment(&seg(PEER + 1, Flags::FIN | Flags::ACK, Some(150)), now);
        let TimeWaitReply::Ack(t) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(
            (t.seq, t.ack, t.flags),
            (SeqNum(502), SeqNum(PEER + 2), Flags::ACK)
        );
        assert_eq!(t.options.timestamps.map(|ts| ts.1), Some(150));
        assert_eq!(tw.deadline, before + Duration::from_millis(10_000 - 4));
    }

    #[test]
    fn resets_are_ignored_and_old_or_stray_segments_answered_sparingly() {
        let mut tw = record();
        let t = Instant::from_millis;
        assert_eq!(
            tw.on_segment(&seg(PEER + 2, Flags::RST, None), t(10)),
            TimeWaitReply::Nothing
        );
        // An out-of-window ACK draws one answer per half second.
        let stray = seg(PEER + 5000, Flags::ACK, Some(200));
        assert!(matches!(
            tw.on_segment(&stray, t(20)),
            TimeWaitReply::Ack(_)
        ));
        assert_eq!(tw.on_segment(&stray, t(30)), TimeWaitReply::Nothing);
        assert!(matches!(
            tw.on_segment(&stray, t(600)),
            TimeWaitReply::Ack(_)
        ));
        // The expected bare ACK needs nothing.
        let ok = seg(PEER + 2, Flags::ACK, Some(201));
        assert_eq!(tw.on_segment(&ok, t(700)), TimeWaitReply::Nothing);
    }

    #[test]
    fn only_a_newer_syn_starts_a_new_incarnation() {
        let mut tw = record();
        let t = Instant::from_millis(20);
        let old = seg(PEER + 10, Flags::SYN, Some(50));
        assert!(matches!(tw.on_segment(&old, t), TimeWaitReply::Ack(_)));
        let newer = seg(PEER + 10, Flags::SYN, Some(5000));
        assert_eq!(tw.on_segment(&newer, t), TimeWaitReply::NewIncarnation);
        assert!(std::mem::size_of::<TimeWait>() <= 64);
    }
}
