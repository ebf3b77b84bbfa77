//! The neighbour cache: IP address to MAC, with expiry, and limits on how
//! often we ask. One for ARP (IPv4) and one for Neighbor Discovery (IPv6,
//! RFC 4861), with the same limits: the key is the address type.
//!
//! Under a flood (ARP from thousands of on-link sources, or traffic to
//! thousands of unresolved addresses) the cache must neither broadcast
//! without bound nor forget the neighbours it is talking to: requests are
//! spaced per address and capped per second overall; the tables are
//! bounded, and when the entry table is full an entry only learned in
//! passing (never used to send) makes room, never one in use. An entry in
//! use is asked for again shortly before it expires, so a flow does not
//! stall for a round of ARP every `ENTRY_LIFETIME`.

use crate::time::Instant;
use crate::wire::ethernet::MacAddr;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long a learned mapping is trusted.
pub const ENTRY_LIFETIME: Duration = Duration::from_secs(60);
/// An entry in use is refreshed this long before it expires.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5);
/// Minimum spacing of ARP requests for the same address.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// Requests for one address before it is declared unreachable (Linux's
/// `mcast_solicit` is 3 too).
pub const MAX_REQUESTS: u32 = 3;
/// ARP requests sent per second at most, all addresses together.
pub const MAX_REQUESTS_PER_SEC: u32 = 100;
/// Bound on entries (and on outstanding requests), so a flood of ARP
/// cannot grow memory without limit.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: MacAddr,
    expires: Instant,
    /// We resolved it to send: a neighbour we talk to.
    used: bool,
}

pub struct NeighborCache<A = Ipv4Addr> {
    entries: HashMap<A, Entry>,
    /// Outstanding resolutions: when we last asked, and how often.
    asked: HashMap<A, (Instant, u32)>,
    /// The global request budget.
    budget: super::rate_limit::PerSecond,
    /// Requests not sent (or entries not learned) because of the limits.
    pub limited: u64,
    /// The last next hop resolved, its MAC, and until when that answer
    /// holds with nothing to check (no refresh due): the frames of a batch
    /// mostly go to one next hop, and this spares two hash lookups each.
    last: Option<(A, MacAddr, Instant)>,
}

impl<A> Default for NeighborCache<A> {
    fn default() -> Self {
        NeighborCache {
            entries: HashMap::new(),
            asked: HashMap::new(),
            budget: super::rate_limit::PerSecond::new(MAX_REQUESTS_PER_SEC),
            limited: 0,
            last: None,
        }
    }
}

/// What to do about a next hop's MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Known(MacAddr),
    /// Known, and about to expire: send to it, and ask again (so that the
    /// answer renews the entry before it lapses).
    Refresh(MacAddr),
    /// Send an ARP request now.
    Ask,
    /// A request is out (or the limits hold one back); wait.
    Wait,
    /// `MAX_REQUESTS` went unanswered: the host is unreachable. The next
    /// lookup starts asking afresh.
    Failed,
}

impl<A: Copy + Eq + Hash> NeighborCache<A> {
    pub fn lookup(&self, ip: A, now: Instant) -> Option<MacAddr> {
        match self.entries.get(&ip) {
            Some(e) if e.expires > now => Some(e.mac),
            _ => None,
        }
    }

    pub fn learn(&mut self, ip: A, mac: MacAddr, now: Instant) {
        self.last = None;
        let used = match self.entries.get(&ip) {
            Some(e) => e.used,
            None => {
                if self.entries.len() >= MAX_ENTRIES && !self.make_room(now) {
                    self.limited += 1;
                    return;
                }
                false
            }
        };
        self.entries.insert(
            ip,
            Entry {
                mac,
                expires: now + ENTRY_LIFETIME,
                used,
            },
        );
        self.asked.remove(&ip);
    }

    /// Frees one slot: expired entries first, else the oldest entry never
    /// used to send. Entries in use are kept. Returns false if none could go.
    fn make_room(&mut self, now: Instant) -> bool {
        self.last = None;
        self.entries.retain(|_, e| e.expires > now);
        if self.entries.len() < MAX_ENTRIES {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| !e.used)
            .min_by_key(|(_, e)| e.expires)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.entries.remove(&ip);
                true
            }
            None => false,
        }
    }

    /// Takes one request from the global budget, if any is left.
    fn spend(&mut self, now: Instant) -> bool {
        let ok = self.budget.take(now);
        self.limited += u64::from(!ok);
        ok
    }

    /// Looks `ip` up and decides whether to ask for it (and records that).
    pub fn resolve(&mut self, ip: A, now: Instant) -> Resolution {
        if let Some((last_ip, mac, until)) = self.last {
            if last_ip == ip && now < until {
                return Resolution::Known(mac);
            }
        }
        if let Some(e) = self.entries.get_mut(&ip).filter(|e| e.expires > now) {
            e.used = true;
            let (mac, expires) = (e.mac, e.expires);
            let due = expires.saturating_since(now) <= REFRESH_BEFORE;
            if !due {
                let until = Instant::from_nanos(
                    expires
                        .as_nanos()
                        .saturating_sub(REFRESH_BEFORE.as_nanos() as u64),
                );
                self.last = Some((ip, mac, until));
                return Resolution::Known(mac);
            }
            let asked_lately = self
                .asked
                .get(&ip)
                .is_some_and(|&(last, _)| now.saturating_since(last) < REQUEST_INTERVAL);
            if !asked_lately && self.spend(now) {
                let count = self.asked.get(&ip).map_or(0, |a| a.1);
                self.asked.insert(ip, (now, count + 1));
                return Resolution::Refresh(mac);
            }
            return Resolution::Known(mac);
        }
        match self.asked.get(&ip).copied() {
            Some((last, _)) if now.saturating_since(last) < REQUEST_INTERVAL => Resolution::Wait,
            Some((_, count)) if count >= MAX_REQUESTS => {
                self.asked.remove(&ip);
                Resolution::Failed
            }
            Some((_, count)) => {
                if !self.spend(now) {
                    return Resolution::Wait;
                }
                self.asked.insert(ip, (now, count + 1));
                Resolution::Ask
            }
            None => {
                if self.asked.len() >= MAX_ENTRIES {
                    // Forget only requests that have run their course.
                    let stale = REQUEST_INTERVAL * MAX_REQUESTS;
                    self.asked
                        .retain(|_, &mut (last, _)| now.saturating_since(last) < stale);
                    if self.asked.len() >= MAX_ENTRIES {
                        self.limited += 1;
                        return Resolution::Wait;
                    }
                }
                if !self.spend(now) {
                    return Resolution::Wait;
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
            c.resolve(ip, t0 + Duration::from_secs(30)),
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

    #[test]
    fn a_flood_of_unknown_addresses_is_asked_for_at_a_bounded_rate() {
        let mut c = NeighborCache::default();
        let t0 = Instant::from_millis(10);
        let mut asks = 0;
        // 10,000 addresses in one second, then again for nine more.
        for s in 0..10u64 {
            for k in 0..10_000u32 {
                let now = t0 + Duration::from_millis(s * 1000 + u64::from(k) / 10);
                if c.resolve(Ipv4Addr::from(0x0a00_0000 + k), now) == Resolution::Ask {
                    asks += 1;
                }
            }
            assert!(c.asked.len() <= MAX_ENTRIES);
        }
        assert!(
            asks <= 10 * MAX_REQUESTS_PER_SEC as usize,
            "{asks} requests in 10 s"
        );
        assert!(asks > 0 && c.limited > 0);
    }

    /// Neighbor Discovery keeps IPv6 neighbours under the same rules:
    /// asked for at a bounded rate, learned, failed after three requests.
    #[test]
    fn ipv6_neighbours_have_the_same_limits() {
        use std::net::Ipv6Addr;
        let mut c = NeighborCache::<Ipv6Addr>::default();
        let t0 = Instant::from_millis(10);
        let addr = |k: u32| Ipv6Addr::from((0xfd00_u128 << 112) | u128::from(k));
        let asks = (0..10_000)
            .filter(|&k| c.resolve(addr(k), t0) == Resolution::Ask)
            .count();
        assert_eq!(asks, MAX_REQUESTS_PER_SEC as usize);
        assert!(c.asked.len() <= MAX_ENTRIES);
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        c.learn(addr(1), mac, t0);
        assert_eq!(c.resolve(addr(1), t0), Resolution::Known(mac));
        // Unanswered: asked again each interval, then it fails.
        let mut t = t0;
        let mut seen = Vec::new();
        for _ in 0..4 {
            t += REQUEST_INTERVAL;
            seen.push(c.resolve(addr(2), t));
        }
        assert_eq!(
            seen,
            [
                Resolution::Ask,
                Resolution::Ask,
                Resolution::Failed,
                Resolution::Ask
            ]
        );
    }

    #[test]
    fn a_flood_of_learned_sources_does_not_evict_live_neighbours() {
        let mut c = NeighborCache::default();
        let t0 = Instant::from_millis(10);
        let gw = Ipv4Addr::new(10, 0, 0, 254);
        let gw_mac = MacAddr([2, 0, 0, 0, 0, 0xfe]);
        c.learn(gw, gw_mac, t0);
        assert_eq!(c.resolve(gw, t0), Resolution::Known(gw_mac), "in use");
        for k in 0..5_000u32 {
            c.learn(
                Ipv4Addr::from(0x0a01_0000 + k),
                MacAddr([2, 0, 0, 0, 1, 1]),
                t0,
            );
        }
        assert!(c.entries.len() <= MAX_ENTRIES);
        assert_eq!(c.lookup(gw, t0), Some(gw_mac), "the gateway stays");
        // The newest of the flood was learned (older passers-by made room).
        assert!(c.lookup(Ipv4Addr::from(0x0a01_0000 + 4_999), t0).is_some());
    }

    #[test]
    fn entries_in_use_are_refreshed_before_they_expire() {
        let mut c = NeighborCache::default();
        let ip = Ipv4Addr::new(10, 9, 0, 2);
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let t0 = Instant::from_millis(10);
        c.learn(ip, mac, t0);
        assert_eq!(
            c.resolve(ip, t0 + Duration::from_secs(50)),
            Resolution::Known(mac)
        );
        let t1 = t0 + (ENTRY_LIFETIME - REFRESH_BEFORE);
        assert_eq!(c.resolve(ip, t1), Resolution::Refresh(mac), "asked in time");
        assert_eq!(
            c.resolve(ip, t1),
            Resolution::Known(mac),
            "once a second at most"
        );
        // The answer renews it: no gap at the old expiry.
        c.learn(ip, mac, t1 + Duration::from_millis(1));
        assert_eq!(
            c.resolve(ip, t0 + ENTRY_LIFETIME + Duration::from_secs(1)),
            Resolution::Known(mac)
        );
    }
}
