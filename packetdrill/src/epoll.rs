//! epoll(7) over the adapter's sockets.
//!
//! Linux queues an epoll item when its socket wakes its waiters: data or a
//! FIN arrived (`sk_data_ready`), room to write after a write found none
//! (`sk_write_space`), an error or a zero-copy completion was queued
//! (`sk_error_report`), the state changed. `epoll_wait` then reports the
//! socket's whole poll mask within the item's interest: an
//! edge-triggered item (EPOLLET) once per wake-up, a level-triggered one
//! whenever the mask is not empty, a one-shot one (EPOLLONESHOT) once,
//! until EPOLL_CTL_MOD arms it again. The adapter sees the stack's state,
//! not its wake-ups, so each socket derives them from what changed
//! (`Signals`).

use libc::c_int;
use xdptcp::tcp::State;

const DATA_KEYS: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDNORM | libc::EPOLLRDBAND) as u32;
const SPACE_KEYS: u32 = (libc::EPOLLOUT | libc::EPOLLWRNORM | libc::EPOLLWRBAND) as u32;
/// Reported whether asked for or not.
const ALWAYS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// Wake-ups a socket has given, by kind, counted since it opened.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Wakes {
    pub data: u64,
    pub space: u64,
    /// Errors, completions and state changes: these wake every waiter.
    pub other: u64,
}

/// What a socket's wake-ups are derived from.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Facts {
    /// Bytes received in order, whether a FIN came, connections waiting
    /// for accept.
    pub received: u64,
    pub fin: bool,
    pub acceptable: usize,
    pub completions: u64,
    pub state: Option<State>,
    pub failed: bool,
    pub writable: bool,
}

/// A socket's wake-ups, counted from the facts each time someone looks.
#[derive(Default)]
pub struct Signals {
    wakes: Wakes,
    last: Facts,
    /// A write found no room (Linux's SOCK_NOSPACE): the next room wakes.
    write_blocked: bool,
}

impl Signals {
    pub fn write_blocked(&mut self) {
        self.write_blocked = true;
    }

    pub fn observe(&mut self, now: Facts) -> Wakes {
        let last = self.last;
        if now.received != last.received || now.fin != last.fin || now.acceptable > last.acceptable
        {
            self.wakes.data += 1;
        }
        if now.completions != last.completions
            || now.failed != last.failed
            || now.state != last.state
        {
            self.wakes.other += 1;
        }
        if self.write_blocked && now.writable {
            self.write_blocked = false;
            self.wakes.space += 1;
        }
        self.last = now;
        self.wakes
    }
}

struct Item {
    fd: c_int,
    events: u32,
    data: u64,
    seen: Wakes,
    /// On Linux's ready list: woken since last reported.
    queued: bool,
    /// A one-shot item that reported is disarmed until EPOLL_CTL_MOD.
    armed: bool,
}

#[derive(Default)]
pub struct Epoll {
    items: Vec<Item>,
}

impl Epoll {
    /// EPOLL_CTL_ADD/MOD/DEL. `now` is the socket's wake-ups and poll mask:
    /// adding or modifying an item polls its socket once, as Linux does,
    /// and queues it if the mask matches.
    pub fn ctl(
        &mut self,
        op: c_int,
        fd: c_int,
        events: u32,
        data: u64,
        now: (Wakes, u32),
    ) -> Result<(), c_int> {
        let at = self.items.iter().position(|i| i.fd == fd);
        let item = Item {
            fd,
            events,
            data,
            seen: now.0,
            queued: now.1 & (events | ALWAYS) != 0,
            armed: true,
        };
        match (op, at) {
            (libc::EPOLL_CTL_ADD, None) => self.items.push(item),
            (libc::EPOLL_CTL_ADD, Some(_)) => return Err(libc::EEXIST),
            (libc::EPOLL_CTL_MOD, Some(i)) => self.items[i] = item,
            (libc::EPOLL_CTL_DEL, Some(i)) => {
                self.items.remove(i);
            }
            (libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, None) => return Err(libc::ENOENT),
            _ => return Err(libc::EINVAL),
        }
        Ok(())
    }

    /// One pass of `epoll_wait`: up to `max` (events, data) pairs. `look`
    /// gives a socket's wake-ups and poll mask, None once it is closed
    /// (its items go, as on Linux when the last descriptor closes).
    pub fn wait(
        &mut self,
        max: usize,
        mut look: impl FnMut(c_int) -> Option<(Wakes, u32)>,
    ) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        self.items.retain_mut(|item| {
            if out.len() >= max {
                return true;
            }
            let Some((wakes, mask)) = look(item.fd) else {
                return false;
            };
            let interest = item.events | ALWAYS;
            let seen = std::mem::replace(&mut item.seen, wakes);
            if (wakes.data > seen.data && interest & DATA_KEYS != 0)
                || (wakes.space > seen.space && interest & SPACE_KEYS != 0)
                || wakes.other > seen.other
            {
                item.queued = true;
            }
            if !item.armed {
                return true;
            }
            let mask = mask & interest;
            let edge = item.events & libc::EPOLLET as u32 != 0;
            let report = mask != 0 && (item.queued || !edge);
            item.queued = false;
            if report {
                out.push((mask, item.data));
                if item.events & libc::EPOLLONESHOT as u32 != 0 {
                    item.armed = false;
                }
            }
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN: u32 = libc::EPOLLIN as u32;
    const OUT: u32 = libc::EPOLLOUT as u32;
    const ET: u32 = libc::EPOLLET as u32;

    #[test]
    fn an_edge_triggered_item_reports_once_per_wake_up_a_level_one_always() {
        let mut ep = Epoll::default();
        let mut w = Wakes::default();
        ep.ctl(libc::EPOLL_CTL_ADD, 4, IN | OUT | ET, 4, (w, OUT))
            .unwrap();
        ep.ctl(libc::EPOLL_CTL_ADD, 5, IN | OUT, 5, (w, OUT))
            .unwrap();
        assert_eq!(ep.wait(8, |_| Some((w, OUT))), [(OUT, 4), (OUT, 5)]);
        assert_eq!(ep.wait(8, |_| Some((w, OUT))), [(OUT, 5)]);
        w.data += 1;
        assert_eq!(
            ep.wait(8, |_| Some((w, IN | OUT))),
            [(IN | OUT, 4), (IN | OUT, 5)]
        );
        assert_eq!(ep.wait(8, |_| Some((w, IN | OUT))), [(IN | OUT, 5)]);
        assert_eq!(ep.wait(8, |_| None), [], "closed sockets leave");
        assert_eq!(
            ep.ctl(libc::EPOLL_CTL_DEL, 4, 0, 0, (w, 0)),
            Err(libc::ENOENT)
        );
    }

    #[test]
    fn a_one_shot_item_waits_for_mod_and_a_wake_up_of_no_interest_is_ignored() {
        let mut ep = Epoll::default();
        let mut w = Wakes::default();
        let oneshot = OUT | ET | libc::EPOLLONESHOT as u32;
        ep.ctl(libc::EPOLL_CTL_ADD, 4, oneshot, 4, (w, 0)).unwrap();
        w.data += 1;
        assert_eq!(
            ep.wait(8, |_| Some((w, IN | OUT))),
            [],
            "data does not wake an OUT item"
        );
        w.other += 1;
        assert_eq!(ep.wait(8, |_| Some((w, IN | OUT))), [(OUT, 4)]);
        w.other += 1;
        assert_eq!(ep.wait(8, |_| Some((w, OUT))), [], "disarmed");
        ep.ctl(libc::EPOLL_CTL_MOD, 4, oneshot, 4, (w, OUT))
            .unwrap();
        assert_eq!(ep.wait(8, |_| Some((w, OUT))), [(OUT, 4)]);
    }

    #[test]
    fn room_after_a_blocked_write_is_a_wake_up_room_alone_is_not() {
        let mut s = Signals::default();
        let f = Facts {
            writable: true,
            ..Facts::default()
        };
        let w0 = s.observe(f);
        assert_eq!(s.observe(f), w0);
        s.write_blocked();
        assert_eq!(s.observe(f).space, w0.space + 1);
    }
}
