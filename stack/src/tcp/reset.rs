//! The reply to a segment that has no connection (RFC 9293 3.10.7.1,
//! state CLOSED): a reset that the sender will accept, never a reset
//! answering a reset.

use super::SeqNum;
use crate::wire::tcp::{Flags, TcpSegment};

/// Sequence, acknowledgment and flags of the RST to send, if any.
pub fn reply_to_unexpected(seg: &TcpSegment<'_>) -> Option<(SeqNum, SeqNum, Flags)> {
    if seg.flags.rst() {
        return None;
    }
    if seg.flags.ack() {
        // <SEQ=SEG.ACK><CTL=RST>
        return Some((SeqNum(seg.ack), SeqNum(0), Flags::RST));
    }
    // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    let len = seg.payload.len() as u32 + u32::from(seg.flags.syn()) + u32::from(seg.flags.fin());
    Some((SeqNum(0), SeqNum(seg.seq) + len, Flags::RST | Flags::ACK))
}
