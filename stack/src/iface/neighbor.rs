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
/// Bound on entries, so a flood of ARP cannot grow memory without limit.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Default)]
pub struct NeighborCache {
    entries: HashMap<Ipv4Addr, (MacAddr, Instant)>,
    asked: HashMap<Ipv4Addr, Instant>,
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

    /// True if a request for `ip` should go out now (and records it).
    pub fn should_ask(&mut self, ip: Ipv4Addr, now: Instant) -> bool {
        match self.asked.get(&ip) {
            Some(&last) if now.saturating_since(last) < REQUEST_INTERVAL => false,
            _ => {
                if self.asked.len() >= MAX_ENTRIES {
                    self.asked.clear();
                }
                self.asked.insert(ip, now);
                true
            }
        }
    }

    /// When the earliest outstanding request may be repeated.
    pub fn next_request_at(&self) -> Option<Instant> {
        self.asked.values().map(|&t| t + REQUEST_INTERVAL).min()
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
        assert!(c.should_ask(ip, t0));
        assert!(!c.should_ask(ip, t0 + Duration::from_millis(500)));
        assert!(c.should_ask(ip, t0 + REQUEST_INTERVAL));
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        c.learn(ip, mac, t0);
        assert_eq!(c.lookup(ip, t0 + Duration::from_secs(59)), Some(mac));
        assert_eq!(c.lookup(ip, t0 + ENTRY_LIFETIME), None);
    }
}
