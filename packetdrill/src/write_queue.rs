//! How much of a write Linux takes under `TCP_NOTSENT_LOWAT`.
//!
//! Linux queues a write in skbs of `size_goal` bytes (whole segments, up
//! to half the largest window the peer offered and one GSO packet). It
//! tests the low-water mark only when it needs a new skb, so the skb it
//! fills may take the unsent bytes past the mark; and it sends an skb it
//! filled at once when nothing unsent waits ahead of it (`tcp_push_one`),
//! so what goes out in the middle of a write no longer counts as unsent,
//! and the unsent rest of a split skb is filled up again. On a fresh
//! connection (cwnd 10, MSS 1000, skbs of 16,000 bytes) a write of 59,000
//! with the mark at 4,000 takes 26,000: 16,000, of which 10,000 go out at
//! once; 10,000 more into the split skb's rest; then 16,000 unsent stop it.
//!
//! The stack itself counts unsent bytes per write (`UnsentLimit::Bytes`,
//! its own meaning, without skbs); for scripts that read write(2)'s return
//! value the adapter cuts writes as Linux does, with the stack's limit off.

/// Linux's `sk_gso_max_size` for the device packetdrill writes to.
const GSO_MAX_SIZE: usize = 65_536;

/// Where the skb a write last started begins, in bytes written on the
/// socket.
#[derive(Debug, Default)]
pub struct WriteQueue {
    tail_start: u64,
}

/// The next piece of a write to queue.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece {
    pub len: usize,
    /// It fills its skb: Linux sends what it can now.
    pub fills: bool,
}

impl WriteQueue {
    /// The next piece of a write with `left` bytes to go, or None where
    /// Linux stops it. `written`: bytes queued on the socket so far;
    /// `unsent`: of those, not yet sent once.
    pub fn next(
        &mut self,
        written: u64,
        unsent: usize,
        size_goal: usize,
        lowat: usize,
        left: usize,
    ) -> Option<Piece> {
        if left == 0 {
            return None;
        }
        // The unsent part of the last skb (sending splits the sent part
        // off it); none once all of it went out.
        let tail = (written - self.tail_start).min(unsent as u64) as usize;
        let (tail, room) = if tail > 0 && tail < size_goal {
            (tail, size_goal - tail)
        } else {
            // A new skb: only while unsent bytes are below the mark
            // (sk_stream_memory_free).
            if unsent >= lowat {
                return None;
            }
            self.tail_start = written;
            (0, size_goal)
        };
        let len = room.min(left);
        Some(Piece {
            len,
            fills: tail + len == size_goal,
        })
    }
}

/// Linux's `tcp_xmit_size_goal`: whole segments of `mss`, up to half the
/// largest window the peer offered (`tcp_bound_to_half_wnd`) and a GSO
/// packet, at least one segment.
pub fn size_goal(mss: usize, max_window: usize) -> usize {
    let mss = mss.max(1);
    let cutoff = if max_window > 536 {
        max_window / 2
    } else {
        max_window
    };
    let bound = if cutoff > 0 && GSO_MAX_SIZE > cutoff {
        cutoff.max(68 - 20)
    } else {
        GSO_MAX_SIZE
    };
    (bound / mss * mss).max(mss)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays a write of `len` against a peer that takes `cwnd` bytes at
    /// once, as `Host::send` does: the bytes it takes.
    fn write(q: &mut WriteQueue, len: usize, goal: usize, lowat: usize, cwnd: usize) -> usize {
        let (mut written, mut sent, mut done) = (0u64, 0u64, 0);
        while let Some(p) = q.next(written, (written - sent) as usize, goal, lowat, len - done) {
            written += p.len as u64;
            done += p.len;
            if p.fills {
                sent = written.min(cwnd as u64);
            }
        }
        done
    }

    #[test]
    fn a_write_stops_where_linux_needs_a_new_skb_above_the_mark() {
        // notsent-lowat-setsockopt: the mark at 4,000, window 32,896.
        let goal = size_goal(1000, 257 << 7);
        assert_eq!(goal, 16_000);
        assert_eq!(
            write(&mut WriteQueue::default(), 59_000, goal, 4000, 10_000),
            26_000
        );
        // Nothing sent yet (a window of 0): one skb, then the mark stops it.
        assert_eq!(
            write(&mut WriteQueue::default(), 59_000, goal, 4000, 0),
            16_000
        );
        // A short write is taken whole while below the mark.
        assert_eq!(write(&mut WriteQueue::default(), 3000, goal, 4000, 0), 3000);
    }

    #[test]
    fn the_goal_is_whole_segments_of_half_the_largest_window() {
        assert_eq!(size_goal(1000, 50_000), 25_000);
        assert_eq!(size_goal(1448, 1 << 20), 65_536 / 1448 * 1448);
        assert_eq!(size_goal(1000, 1500), 1000);
    }
}
