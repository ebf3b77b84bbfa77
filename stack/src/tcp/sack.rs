//! Selective acknowledgment (RFC 2018) and the loss recovery built on it
//! (RFC 6675), plus duplicate-SACK reporting (RFC 2883).
//!
//! Receiver: every ACK sent while out-of-order data is held lists the
//! blocks held, the one holding the latest arrival first; a duplicate
//! segment is reported in a D-SACK block.
//!
//! Sender: the blocks mark the segments of the send record (`sent.rs`)
//! they cover, the one place SACK state is kept. From those: the "pipe"
//! estimate of bytes still in the network; which segments are lost is
//! RACK's call (`rack.rs`).

use super::connection::{Connection, Transmit};
use super::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::MAX_SACK_BLOCKS;

/// Upper bound of the reordering estimate (Linux's `tcp_max_reordering`
/// is 300; segments beyond this are lost whatever the path does).
const MAX_REORDERING: u32 = 127;
/// Recent arrivals remembered to order the blocks we report.
const RECENT: usize = 4;
/// Recent retransmissions remembered to recognise spurious ones by D-SACK.
const RECENT_REXMITS: usize = 64;

impl Connection {
    // ---- receiver ------------------------------------------------------

    /// Remembers where an out-of-order segment landed, most recent first.
    pub(super) fn note_ooo_arrival(&mut self, seq: SeqNum) {
        self.sack_recent.retain(|&s| s != seq);
        if self.sack_recent.len() == RECENT {
            self.sack_recent.pop_back();
        }
        self.sack_recent.push_front(seq);
    }

    /// A segment entirely below RCV.NXT arrived again: report it once.
    pub(super) fn note_duplicate(&mut self, start: SeqNum, end: SeqNum) {
        if self.sack_ok {
            self.dsack = Some((start, end));
        }
    }

    /// Adds SACK blocks (and a pending D-SACK) to an ACK without payload.
    pub(super) fn add_sack_blocks(&mut self, t: &mut Transmit) {
        if !self.sack_ok || t.payload_len > 0 {
            return;
        }
        // Option space is 40 bytes: 4 blocks, or 3 beside timestamps.
        let max = if self.ts_ok { 3 } else { MAX_SACK_BLOCKS };
        let mut blocks = [(0u32, 0u32); MAX_SACK_BLOCKS];
        let mut n = 0;
        if let Some((s, e)) = self.dsack.take() {
            blocks[0] = (s.0, e.0);
            n = 1;
        }
        let base = self.rcv_nxt;
        let block_of = |r: &(u32, u32)| ((base + r.0).0, (base + r.1).0);
        let ranges = self.assembler.ranges();
        let recent = self.sack_recent.iter().filter_map(|&seq| {
            let off = u32::try_from(seq.diff(base)).ok()?;
            ranges.iter().find(|r| r.0 <= off && off < r.1)
        });
        for b in recent.chain(ranges.iter()).map(block_of) {
            if n == max {
                break;
            }
            if !blocks[..n].contains(&b) {
                blocks[n] = b;
                n += 1;
            }
        }
        t.options.sack_blocks = blocks;
        t.options.sack_count = n as u8;
    }

    // ---- sender --------------------------------------------------------

    /// Takes the SACK blocks of an incoming ACK; returns how many bytes
    /// they newly SACKed. Newly SACKed segments feed RACK.
    pub(super) fn on_sack_blocks(
        &mut self,
        blocks: &[(u32, u32)],
        ack: SeqNum,
        now: Instant,
    ) -> u32 {
        if !self.sack_ok || blocks.is_empty() {
            return 0;
        }
        let before = self.sent.sacked_bytes();
        for (i, &(l, r)) in blocks.iter().enumerate() {
            let (l, r) = (SeqNum(l), SeqNum(r));
            if l >= r {
                continue;
            }
            // RFC 2883: a first block below the ACK, or inside the second
            // block, reports a duplicate segment.
            let inside_next = blocks
                .get(1)
                .is_some_and(|&(l2, r2)| SeqNum(l2) <= l && r <= SeqNum(r2));
            if i == 0 && (r <= ack || inside_next) {
                self.on_dsack(l);
                continue;
            }
            // Ignore blocks beyond what was sent (a peer cannot SACK what
            // we never sent); the part of a block below SND.UNA is old news.
            if r > self.snd_max || r <= self.snd_una {
                continue;
            }
            let l = l.max(self.snd_una);
            if let Some(d) = self.sent.on_sack(l, r) {
                self.rack_note_order(d);
                self.rack_update(d, now);
            }
            self.snd_fack = self.snd_fack.max(r);
        }
        self.sent.sacked_bytes() - before
    }

    /// A D-SACK for data starting at `l`: the peer got it twice.
    fn on_dsack(&mut self, l: SeqNum) {
        self.counters.dsacks_received += 1;
        // Each retransmission is reported once; a repeated report, or one
        // for a retransmission we do not remember, proves nothing.
        let Some(i) = self.recent_rexmits.iter().position(|r| r.0 == l) else {
            return;
        };
        let (_, this_episode) = self.recent_rexmits.remove(i).expect("found");
        // The original arrived after all: the path reorders by at least
        // the distance to the highest SACKed byte, so wait for that much
        // before calling a segment lost.
        self.counters.spurious_retransmits += 1;
        let degree = self.snd_fack.diff(l).max(0) as u32 / self.eff_mss.max(1) + 1;
        self.reordering = self.reordering.max(degree).min(MAX_REORDERING);
        self.rack.reordering_seen = true;
        self.rack_on_dsack();
        // Only the current loss episode's own retransmissions may undo its
        // response (RFC 3708), not an earlier episode's nor a probe's.
        if this_episode {
            self.dsack_for_retransmission();
        }
    }

    /// DupThresh: the reordering estimate, but never more than the flight
    /// can produce (a window of n segments yields at most n-1 duplicate
    /// ACKs). Otherwise a raised estimate would leave every loss in a
    /// small window to the retransmission timer; RFC 5827 lowers the
    /// threshold for small windows in the same spirit.
    pub(super) fn dup_thresh(&self) -> u32 {
        let flight_segs = (self.snd_max - self.snd_una) / self.eff_mss.max(1);
        self.reordering.min(flight_segs.saturating_sub(1).max(3))
    }

    /// Bytes presumed still in the network (RFC 6675's pipe, as Linux
    /// counts it): sent and not acknowledged, less what was SACKed and what
    /// is presumed lost and not yet resent.
    pub(super) fn pipe(&self) -> u32 {
        (self.snd_max - self.snd_una)
            .saturating_sub(self.sent.sacked_bytes())
            .saturating_sub(self.sent.lost_bytes())
    }

    /// Records a retransmission for spurious detection by D-SACK, and
    /// whether it counts towards undoing the current loss episode.
    pub(super) fn note_retransmission(&mut self, t: &Transmit, for_episode: bool) {
        if self.recent_rexmits.len() == RECENT_REXMITS {
            self.recent_rexmits.pop_front();
        }
        self.recent_rexmits.push_back((t.seq, for_episode));
    }

    /// RFC 2018 8, RFC 6675 5.1: the cumulative ACK stopped at data the
    /// peer had SACKed, so it dropped what it SACKed (reneging). SACK
    /// information can no longer be trusted: a short timer resends from
    /// SND.UNA and forgets it then (as Linux does; forgetting costs a pass
    /// over the record, which a receiver must not get for every ACK).
    pub(super) fn check_sack_reneging(&mut self, now: Instant) {
        if !self.sent.front_at(self.snd_una).is_some_and(|s| s.sacked) {
            return;
        }
        self.counters.sack_reneging += 1;
        self.sent.note_reneging();
        let srtt = self.rtt.srtt().unwrap_or(self.rtt.rto());
        let wait = (srtt / 16).max(std::time::Duration::from_millis(10));
        self.rto_at = Some(now + wait);
    }
}
