//! Holding short segments back on the application's word, as Linux's
//! TCP_CORK and MSG_MORE: the application says more bytes follow at once,
//! so a segment shorter than the MSS waits for them instead of leaving
//! half empty (a header and its body written apart, say). Full segments
//! still go. A cork stays until lifted (`set_cork(false)`); MSG_MORE holds
//! only until something else happens: the next plain write, or any
//! segment arriving. Setting TCP_NODELAY sends what is held at once. A
//! forgotten cork cannot hold data forever: with nothing in flight, the
//! persist timer sends what waits after an RTO, with PSH, as Linux's
//! window-probe timer does.

use super::connection::Connection;
use super::seq::SeqNum;

#[derive(Debug, Clone, Default)]
pub(super) struct Cork {
    /// TCP_CORK.
    on: bool,
    /// The last write came with MSG_MORE, and nothing happened since.
    more: bool,
    /// This output pass sends what is held (TCP_NODELAY was set).
    flush: bool,
    /// The send buffer ended here after a MSG_MORE write: no PSH for the
    /// segment that empties it there.
    no_push_end: Option<SeqNum>,
}

impl Connection {
    /// TCP_CORK: hold segments shorter than the MSS until uncorked.
    pub fn set_cork(&mut self, on: bool) {
        self.unplan_burst();
        self.cork.on = on;
    }

    /// Queues data with MSG_MORE: more follows at once, so a short
    /// segment waits for it (see the module's text).
    pub fn send_more(&mut self, data: &[u8]) -> Result<usize, super::TcpError> {
        let end_before = self.send_buf_seq + self.send_buf.len() as u32;
        let had_mark = self.push_marks.back().copied();
        let marks = self.push_marks.len();
        let r = self.send(data);
        if let Ok(n) = r {
            if n > 0 {
                // Linux marks no push for a write with more to come: undo
                // the mark `send` made (a new one, or the last one moved).
                if self.push_marks.len() > marks {
                    self.push_marks.pop_back();
                } else if let (Some(last), Some(m)) = (self.push_marks.back_mut(), had_mark) {
                    *last = m;
                }
                self.cork.no_push_end = Some(end_before + n as u32);
            }
            self.cork.more = true;
        }
        r
    }

    /// TCP_NODELAY was set: what is held goes in the next output pass.
    pub(super) fn flush_cork(&mut self) {
        self.cork.flush = true;
    }

    /// Does the cork hold a new segment of `len` bytes?
    pub(super) fn cork_holds(&self, len: u32) -> bool {
        (self.cork.on || self.cork.more) && !self.cork.flush && len < self.eff_mss
    }

    /// No PSH for a segment ending the buffer at a MSG_MORE write's end.
    pub(super) fn cork_suppresses_push(&self, end: SeqNum) -> bool {
        self.cork.no_push_end == Some(end)
    }

    /// Something arrived: a MSG_MORE hold ends (Linux applies it only to
    /// the write's own push).
    pub(super) fn cork_on_input(&mut self) {
        self.cork.more = false;
    }

    /// A plain write: its own end is pushed, and MSG_MORE's hold ends.
    pub(super) fn cork_on_write(&mut self) {
        self.cork.more = false;
        self.cork.no_push_end = None;
    }

    /// The output pass is over: a flush lasts one pass.
    pub(super) fn cork_pass_done(&mut self) {
        self.cork.flush = false;
    }
}
