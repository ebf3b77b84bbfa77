//! Where loss recovery stands, as Linux's `ca_state`: one value instead
//! of flags that had to agree. Linux's Disorder (data SACKed or
//! duplicate-ACKed, no loss called yet) is `Open` here with SACKed bytes
//! in the send record; CWR (a reduction without loss, for ECN) has no use
//! without ECN. The transitions are the `Connection` methods below; what
//! each state does is in `input.rs` (ACKs), `output.rs` (what to send) and
//! `connection.rs` (the timeout).

use super::connection::Connection;

/// F-RTO's two steps after a timeout (RFC 5682 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frto {
    /// The first segment was resent; waiting for the first ACK.
    AwaitFirst,
    /// That ACK acknowledged new data; two new segments went out instead
    /// of resends; waiting for the next ACK.
    AwaitSecond,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recovery {
    /// Nothing presumed lost.
    Open,
    /// Fast recovery (RFC 6675 with RACK, or RFC 6582 without SACK): a
    /// loss was called, cwnd cut once, until SND.UNA passes `recover`.
    Fast,
    /// After a retransmission timeout on a SACK connection: everything
    /// not SACKed presumed lost and resent as cwnd grows from one
    /// segment, until SND.UNA passes `recover`; F-RTO's step while it
    /// decides whether the timeout was spurious.
    Loss(Option<Frto>),
}

impl Recovery {
    pub fn fast(self) -> bool {
        self == Recovery::Fast
    }

    pub fn loss(self) -> bool {
        matches!(self, Recovery::Loss(_))
    }

    /// A loss episode (fast recovery or after a timeout) is under way.
    pub fn episode(self) -> bool {
        self != Recovery::Open
    }

    pub fn frto(self) -> Option<Frto> {
        match self {
            Recovery::Loss(f) => f,
            _ => None,
        }
    }
}

impl Connection {
    /// Open -> Fast: RACK (or three duplicate ACKs) called a loss. One
    /// episode up to what was sent so far, with what undo needs saved
    /// before congestion control reacts.
    pub(super) fn enter_fast_recovery(&mut self) {
        self.recovery = Recovery::Fast;
        self.tlp_end = None;
        self.tlp_at = None;
        self.recover = self.snd_max;
        self.save_for_undo();
        self.hystart_on_loss();
    }

    /// Any -> Loss after a timeout (with SACK; without, back to Open and
    /// go-back-N), F-RTO first if this timeout began the episode.
    pub(super) fn enter_loss(&mut self, frto: bool) {
        self.recovery = if self.sack_ok {
            Recovery::Loss(frto.then_some(Frto::AwaitFirst))
        } else {
            Recovery::Open
        };
        self.recover = self.snd_max;
    }

    /// F-RTO's step, within Loss.
    pub(super) fn set_frto(&mut self, step: Option<Frto>) {
        if self.recovery.loss() {
            self.recovery = Recovery::Loss(step);
        }
    }

    /// Fast or Loss -> Open: everything outstanding when the episode
    /// began is acknowledged, or the episode proved spurious (undo).
    pub(super) fn end_episode(&mut self) {
        self.recovery = Recovery::Open;
    }
}
