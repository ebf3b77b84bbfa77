//! Explicit Congestion Notification (RFC 3168): a router about to drop a
//! packet for congestion may mark it instead (CE in the IP header), if the
//! sender said it understands ECN (ECT in the IP header). The receiver
//! echoes the mark with ECE on its ACKs until the sender answers with CWR;
//! the sender reduces cwnd as for a loss, once per window of data, and no
//! packet is lost nor resent.
//!
//! Negotiated on the handshake (6.1.1): the active side's SYN carries ECE
//! and CWR; a SYN-ACK with ECE alone agrees. `Config::ecn`: `Request` asks
//! and agrees, `Accept` (the default, as Linux's `tcp_ecn=2`) agrees when
//! asked, `Off` neither. Only new data is sent ECT(0): not pure ACKs, nor
//! retransmissions, nor window probes (6.1.4, 6.1.5).

use super::connection::{Connection, Transmit};
use super::seq::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::Flags;

/// Whether a connection negotiates ECN (`Config::ecn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ecn {
    /// Never.
    Off,
    /// Agree when the peer asks (Linux's default).
    #[default]
    Accept,
    /// Ask on our SYNs, and agree when asked.
    Request,
}

#[derive(Debug, Clone, Default)]
pub(super) struct EcnState {
    /// Both ends agreed.
    pub ok: bool,
    /// Receiver: a CE mark arrived; ECE on every ACK until a CWR.
    echo: bool,
    /// Sender: cwnd was reduced; the next new data carries CWR.
    cwr_due: bool,
    /// Sender: the reduction covers the window up to here.
    reduced_until: Option<SeqNum>,
    /// The segment being processed arrived with CE.
    ce_now: bool,
}

impl Connection {
    /// The IP header of the segment about to be fed to `on_segment` was
    /// marked CE (congestion experienced).
    pub fn note_congestion_experienced(&mut self) {
        self.ecn.ce_now = true;
    }

    /// Was ECN negotiated?
    pub fn ecn_ok(&self) -> bool {
        self.ecn.ok
    }

    /// The ECN bits of our SYN (active open) or SYN-ACK.
    pub(super) fn ecn_syn_flags(&self, syn_ack: bool) -> Flags {
        match (syn_ack, self.cfg.ecn) {
            (true, _) if self.ecn.ok => Flags::ECE,
            (false, Ecn::Request) => Flags::ECE | Flags::CWR,
            _ => Flags::default(),
        }
    }

    /// The peer's SYN (`syn_ack` false) or SYN-ACK: does it agree?
    pub(super) fn ecn_on_syn(&mut self, flags: Flags, syn_ack: bool) {
        self.ecn.ok = if syn_ack {
            self.cfg.ecn == Ecn::Request && flags.ece() && !flags.cwr()
        } else {
            self.cfg.ecn != Ecn::Off && flags.ece() && flags.cwr()
        };
    }

    /// A segment in a synchronized state: CWR ends our echo, CE starts it
    /// (and asks for an ACK at once, as Linux, so the sender hears soon).
    pub(super) fn ecn_on_segment(&mut self, flags: Flags) {
        let ce = std::mem::take(&mut self.ecn.ce_now);
        if !self.ecn.ok {
            return;
        }
        if flags.cwr() {
            self.ecn.echo = false;
        }
        if ce {
            self.ecn.echo = true;
            self.ack_pending = true;
            self.segs_unacked = self.segs_unacked.max(2);
        }
    }

    /// An ACK with ECE: the network marked our data. Once per window of
    /// data (6.1.2), cwnd goes down as for a loss, without retransmitting.
    /// Returns true when it reduced.
    pub(super) fn ecn_on_ece(&mut self, now: Instant) -> bool {
        if !self.ecn.ok || self.recovery.episode() {
            return false;
        }
        if self.ecn.reduced_until.is_some_and(|r| self.snd_una < r) {
            return false;
        }
        let flight = self.snd_max - self.snd_una;
        if !self.cc.model_based() {
            self.cc.reduce(flight, now);
        }
        self.ecn.reduced_until = Some(self.snd_max);
        self.ecn.cwr_due = true;
        self.counters.ecn_reductions += 1;
        true
    }

    /// Is a reduction for ECE still in progress (Linux's CWR state)?
    pub(super) fn ecn_reducing(&self) -> bool {
        self.ecn.reduced_until.is_some_and(|r| self.snd_una < r)
    }

    /// A segment of new data leaving: ECT(0), and CWR once after a cut.
    /// The next new segment is to carry CWR.
    pub(super) fn ecn_cwr_due(&self) -> bool {
        self.ecn.cwr_due
    }

    pub(super) fn ecn_mark_new_data(&mut self, t: &mut Transmit) {
        if self.ecn.ok && t.payload_len > 0 && !t.flags.syn() {
            t.ect = true;
            if std::mem::take(&mut self.ecn.cwr_due) {
                t.flags |= Flags::CWR;
            }
        }
    }

    /// Any segment leaving: ECE on ACKs while echoing a CE mark.
    pub(super) fn ecn_echo(&self, t: &mut Transmit) {
        if self.ecn.echo && t.flags.ack() && !t.flags.syn() && !t.flags.rst() {
            t.flags |= Flags::ECE;
        }
    }
}
