//! The ARP neighbour cache: IPv4 address to MAC, with expiry, and a
//! per-address limit on how often we ask.

use crate::time::Instant;
use crate::wire::ethernet::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long a learned mapping is trusted.
pub const ENTRY_LIFETIME: Duration = Duration::from_secs(60);
/// Minimum spacing of ARP requests for the same address.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// Requests for one address before it is declared unreachable (Linux's
/// `mcast_solicit` is 3 too).
pub const MAX_REQUESTS: u32 = 3;
/// Bound on entries, so a flood of ARP cannot grow memory without limit.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Default)]
pub struct NeighborCache {
    entries: HashMap<Ipv4Addr, (MacAddr, Instant)>,
    /// Outstanding resolutions: when we last asked, and how often.
    asked: HashMap<Ipv4Addr, (Instant, u32)>,
}

/// What to do about a next hop's MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Known(MacAddr),
    /// Send an ARP request now.
    Ask,
    /// A request is out; wait for the answer.
    Wait,
    /// `MAX_REQUESTS` went unanswered: the host is unreachable. The next
    /// lookup starts asking afresh.
    Failed,
}

impl NeighborCache {
    pub fn lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<MacAddr> {
        match self.entries.get(&ip) {
            Some(&(mac, expires)) if expires > now => Some(mac),
            _ => None,
        }
    }

    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            self.entries.retain(|_, e| e.1 > now);
            if self.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        self.entries.insert(ip, (mac, now + ENTRY_LIFETIME));
        self.asked.remove(&ip);
    }

    /// Looks `ip` up and decides whether to ask for it (and records that).
    pub fn resolve(&mut self, ip: Ipv4Addr, now: Instant) -> Resolution {
        if let Some(mac) = self.lookup(ip, now) {
            return Resolution::Known(mac);
        }
        match self.asked.get_mut(&ip) {
            Some((last, _)) if now.saturating_since(*last) < REQUEST_INTERVAL => Resolution::Wait,
            Some((_, count)) if *count >= MAX_REQUESTS => {
                self.asked.remove(&ip);
                Resolution::Failed
            }
            Some((last, count)) => {
                *last = now;
                *count += 1;
                Resolution::Ask
            }
            None => {
                if self.asked.len() >= MAX_ENTRIES {
                    self.asked.clear();
                }
                self.asked.insert(ip, (now, 1));
                Resolution::Ask
            }
        }
    }

    /// When the earliest outstanding request may be repeated.
    pub fn next_request_at(&self) -> Option<Instant> {
        self.asked
            .values()
            .map(|&(t, _)| t + REQUEST_INTERVAL)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_requests_are_spaced() {
        let mut c = NeighborCache::default();
        let ip = Ipv4Addr::new(10, 9, 0, 2);
        let t0 = Instant::from_millis(10);
        assert_eq!(c.resolve(ip, t0), Resolution::Ask);
        assert_eq!(
            c.resolve(ip, t0 + Duration::from_millis(500)),
            Resolution::Wait
        );
        assert_eq!(c.next_request_at(), Some(t0 + REQUEST_INTERVAL));
        assert_eq!(c.resolve(ip, t0 + REQUEST_INTERVAL), Resolution::Ask);
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        c.learn(ip, mac, t0);
        assert_eq!(c.next_request_at(), None, "answered: nothing outstanding");
        assert_eq!(c.lookup(ip, t0 + Duration::from_secs(59)), Some(mac));
        assert_eq!(
            c.resolve(ip, t0 + Duration::from_secs(59)),
            Resolution::Known(mac)
        );
        assert_eq!(c.lookup(ip, t0 + ENTRY_LIFETIME), None);
    }

    #[test]
    fn unanswered_requests_end_in_failure_then_start_over() {
        let mut c = NeighborCache::default();
        let ip = Ipv4Addr::new(10, 9, 0, 3);
        let at = |s: u64| Instant::from_millis(1000 * s);
        for s in 0..MAX_REQUESTS as u64 {
            assert_eq!(c.resolve(ip, at(s)), Resolution::Ask, "request {s}");
        }
        assert_eq!(c.resolve(ip, at(MAX_REQUESTS as u64)), Resolution::Failed);
        assert_eq!(
            c.resolve(ip, at(MAX_REQUESTS as u64)),
            Resolution::Ask,
            "afresh"
        );
    }
}
