//! TCP timestamps (RFC 7323): every segment carries our clock (TSval) and
//! echoes the peer's (TSecr). The echo gives an RTT sample from every ACK
//! (RTTM, section 4); the peer's clock, always moving forward, lets us
//! reject old duplicate segments whose sequence numbers wrapped (PAWS,
//! section 5).

use super::connection::{Connection, Transmit};
use super::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::TcpSegment;
use std::time::Duration;

/// A TS.Recent older than this no longer protects (RFC 7323 5.5): the
/// peer's clock may have wrapped past it while the connection sat idle.
const PAWS_IDLE_LIMIT: Duration = Duration::from_secs(24 * 24 * 3600);

/// `a` is before `b` on a 32-bit clock that wraps.
pub(super) fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Connection {
    /// Our timestamp clock: milliseconds, offset per connection.
    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Adds the timestamp option to an outgoing segment when negotiated
    /// (or offered, on our SYN). Resets carry none.
    pub(super) fn stamp(&mut self, t: &mut Transmit, now: Instant) {
        if t.flags.rst() {
            // Only an abort's reset has the option (see `abort`).
            if let Some((_, ecr)) = t.options.timestamps {
                t.options.timestamps = Some((self.ts_now(now), ecr));
            }
            return;
        }
        let our_syn = t.flags.syn() && !t.flags.ack();
        if (our_syn && self.cfg.timestamps) || self.ts_ok {
            let ecr = if t.flags.ack() { self.ts_recent } else { 0 };
            let tsval = self.ts_now(now);
            t.options.timestamps = Some((tsval, ecr));
            if our_syn {
                self.syn_tsval.get_or_insert(tsval);
            }
        }
    }

    /// A SYN-ACK echoes a timestamp none of our SYNs sent (before the
    /// first, or in the future): an old or forged segment, refused with
    /// a reset as Linux does (its PAWS check for an active open).
    pub(super) fn syn_ack_echo_is_bogus(&self, seg: &TcpSegment<'_>, now: Instant) -> bool {
        let (Some(first), Some((_, ecr))) = (self.syn_tsval, seg.options.timestamps) else {
            return false;
        };
        ecr != 0 && ecr.wrapping_sub(first) > self.ts_now(now).wrapping_sub(first)
    }

    /// PAWS (5.3 R1): the segment carries a timestamp older than the
    /// newest one seen in sequence, so it is an old duplicate.
    pub(super) fn paws_rejects(&self, now: Instant) -> bool {
        let Some((tsval, _)) = self.seg_ts else {
            return false;
        };
        self.ts_ok
            && ts_before(tsval, self.ts_recent)
            && now.saturating_since(self.ts_recent_at) < PAWS_IDLE_LIMIT
    }

    /// R3: an acceptable segment starting at or before the ACK we last sent
    /// updates TS.Recent, so the echo reflects the segment that advanced
    /// the window and delayed ACKs do not make RTTs look shorter.
    pub(super) fn update_ts_recent(&mut self, seq: SeqNum, now: Instant) {
        if let (true, Some((tsval, _))) = (self.ts_ok, self.seg_ts) {
            if seq <= self.last_ack_sent && !ts_before(tsval, self.ts_recent) {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }
    }

    /// RTTM (section 4): the RTT from the echoed timestamp of an ACK that
    /// acknowledges new data.
    pub(super) fn ts_rtt(&self, now: Instant) -> Option<Duration> {
        let (_, ecr) = self.seg_ts?;
        if !self.ts_ok || ecr == 0 {
            return None;
        }
        let ms = self.ts_now(now).wrapping_sub(ecr);
        // An echo from the future or from long ago is not ours to trust.
        (ms < 3_600_000).then(|| Duration::from_millis(u64::from(ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::ts_before;

    #[test]
    fn timestamp_order_wraps() {
        assert!(ts_before(1, 2));
        assert!(!ts_before(2, 1));
        assert!(ts_before(u32::MAX, 3), "3 is after the wrap");
        assert!(!ts_before(5, 5));
    }
}
