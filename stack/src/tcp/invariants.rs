//! What must hold of a connection after any input, whatever the peer sent:
//! the sequence spaces are ordered, the buffers stay within their bounds
//! and every record of data in flight or out of order lies where it can.
//! Property tests and the fuzzer call `check_invariants` after each step.

use super::connection::Connection;
use super::seq::SeqNum;

/// The live sequence numbers of a connection (RFC 9293 3.3.1), read only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqSpace {
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    pub snd_max: SeqNum,
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    /// Right edge of the window last advertised.
    pub rcv_adv: SeqNum,
    /// Bytes received in order and not yet read.
    pub recv_queued: usize,
}

impl Connection {
    pub fn seq_space(&self) -> SeqSpace {
        SeqSpace {
            iss: self.iss,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            snd_max: self.snd_max,
            irs: self.irs,
            rcv_nxt: self.rcv_nxt,
            rcv_adv: self.rcv_adv,
            recv_queued: self.recv_buf.len(),
        }
    }

    /// Checks the invariants; the error names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let s = self.seq_space();
        let fail = |what: &str| Err(format!("{what} ({s:?}, state {:?})", self.state));
        if !(s.snd_una <= s.snd_nxt && s.snd_nxt <= s.snd_max) {
            return fail("SND.UNA <= SND.NXT <= SND.MAX");
        }
        // Nothing beyond the buffered bytes (plus SYN and FIN) was ever sent.
        let buffered_end = self.send_buf_seq + self.send_buf.len() as u32 + 1;
        if s.snd_max > buffered_end {
            return fail("SND.MAX beyond the send buffer's end and FIN");
        }
        if self.send_buf.len() > self.send_buf.capacity()
            || self.recv_buf.len() > self.recv_buf.capacity()
        {
            return fail("a buffer holds more than its capacity");
        }
        if self.state.is_synchronized() && s.rcv_nxt > s.rcv_adv && !self.fin_received {
            return fail("RCV.NXT past the right edge of the advertised window");
        }
        // Out-of-order data sits in the receive ring past the in-order
        // bytes: its ranges must fit the room there.
        let room = (self.recv_buf.capacity() - self.recv_buf.len()) as u32;
        let mut last_end = None;
        for &(a, b) in self.assembler.ranges() {
            if a >= b || b > room || last_end.is_some_and(|e| a <= e) {
                return fail("out-of-order ranges unsorted, empty or beyond the buffer");
            }
            last_end = Some(b);
        }
        if self.state.is_synchronized() && self.syn_acked {
            for r in self.sent.iter() {
                if r.start < s.snd_una.min(r.end) || r.end > s.snd_max || r.start > r.end {
                    return fail("a segment in flight outside [SND.UNA, SND.MAX]");
                }
            }
        }
        if self.cc.cwnd() == 0 {
            return fail("congestion window of zero");
        }
        Ok(())
    }
}
