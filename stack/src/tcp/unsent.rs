//! The bound on unsent data (the semantics of Linux's `TCP_NOTSENT_LOWAT`).
//!
//! Bytes an application has written and TCP has not yet sent wait in the
//! send buffer, and everything written after them waits behind them: a
//! megabyte queued at 4 Gbit/s is two milliseconds added to the latency
//! of every later write. What TCP needs queued is only what it may send
//! before the application's next turn; the rest is better left with the
//! application, which can still decide what to send. So a connection
//! accepts data, and reports itself writable, only while its unsent bytes
//! are below a limit. Bytes in flight (sent, not yet acknowledged) are not
//! counted: the send buffer holds them for retransmission whatever the
//! limit, and autotuning sizes it for them.

use super::connection::Connection;
use std::time::Duration;

/// How many unsent bytes a connection holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsentLimit {
    /// Derived from the path (see [`Connection::unsent_limit`]).
    #[default]
    Auto,
    /// At most this many bytes (at least one segment's worth is accepted).
    Bytes(usize),
    /// The send buffer alone bounds them.
    Off,
}

/// The automatic limit is at least this many segments: less cannot keep
/// even the initial window busy.
const AUTO_MIN_SEGMENTS: usize = 4;
/// The automatic limit is by default this long at the sending rate
/// (`Config::application_turn`): an application on a core gets a turn
/// every loop, microseconds apart. Measured on veth at 4-5 Gbit/s
/// (docs/BENCHMARKS.md), bounds of 8-32 KiB kept the goodput and a
/// chunk's median latency near its own transmission time, while 64 KiB
/// and more tripled the latency.
pub const AUTO_TIME: Duration = Duration::from_micros(25);
/// The most the automatic limit comes to.
pub const AUTO_MAX: usize = 64 * 1024;

impl Connection {
    /// Bytes written by the application and not yet sent once.
    pub fn unsent(&self) -> usize {
        let end = self.send_buf_seq + self.send_buf.len() as u32;
        let sent = self.snd_max.max(self.send_buf_seq);
        if end > sent {
            (end - sent) as usize
        } else {
            0
        }
    }

    /// The limit in force, in bytes. `Auto` is what the sender puts on the
    /// wire before the application's next turn on its core: `AUTO_TIME` at
    /// the sending rate (the pacing rate, or cwnd per RTT), at least a few
    /// segments, at most `AUTO_MAX`.
    #[inline]
    pub fn unsent_limit(&self) -> usize {
        match self.cfg.unsent_limit {
            UnsentLimit::Off => usize::MAX,
            UnsentLimit::Bytes(n) => n.max(self.eff_mss as usize),
            UnsentLimit::Auto => self.auto_unsent_limit(),
        }
    }

    // Apart, so that its floating point stays out of every write's path
    // when the limit is given.
    #[inline(never)]
    fn auto_unsent_limit(&self) -> usize {
        let rate = self.cc.pacing_rate().or_else(|| {
            let srtt = self.rtt.srtt()?.as_secs_f64().max(1e-6);
            Some(f64::from(self.cc.cwnd()) / srtt)
        });
        let turn = self.cfg.application_turn.as_secs_f64();
        let by_rate = rate.map_or(0, |r| (r * turn) as usize);
        by_rate.clamp(AUTO_MIN_SEGMENTS * self.eff_mss as usize, AUTO_MAX)
    }

    pub fn set_unsent_limit(&mut self, limit: UnsentLimit) {
        self.cfg.unsent_limit = limit;
    }

    /// Room for the application's data now: what the send buffer has free,
    /// within the unsent limit.
    pub(super) fn unsent_room(&self) -> usize {
        let free = self.send_buf.free();
        free.min(self.unsent_limit().saturating_sub(self.unsent()))
    }

    /// Data just left for the first time: if a writer was turned away and
    /// there is room again, say so (once).
    pub(super) fn note_unsent_drained(&mut self) {
        if self.send_blocked && self.send_capacity() > 0 {
            self.send_blocked = false;
            self.writable_again = true;
            self.push_event(super::connection::Event::Writable);
        }
    }

    /// A writer outside the connection (the socket API's thread) waits
    /// for room: treat it as turned away, so that sending data, not only
    /// an ACK, brings the application layer back (`take_writable_again`).
    pub fn notify_when_writable(&mut self) {
        self.send_blocked = true;
    }

    /// True once after a turned-away writer got room back through sending
    /// (not through an ACK, which the caller sees anyway): the interface
    /// then tells the application layer.
    pub fn take_writable_again(&mut self) -> bool {
        std::mem::take(&mut self.writable_again)
    }
}
