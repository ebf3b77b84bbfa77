//! The Fast Open client's cookie cache (RFC 7413 4.1.3): per server
//! address, the cookie its last SYN-ACK gave and the MSS it announced, so
//! that the next connection to it can carry data on its SYN. Bounded: past
//! `CAPACITY` servers the oldest entry goes (Linux keeps its cookies in a
//! bounded table of TCP metrics too).

use crate::wire::tcp::FastOpen;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedCookie {
    /// `None` while a server only told its MSS.
    pub cookie: Option<FastOpen>,
    /// The server's MSS, when its SYN-ACK announced one.
    pub mss: Option<u16>,
}

#[derive(Default)]
pub struct FastOpenCache {
    entries: HashMap<Ipv4Addr, CachedCookie>,
    /// Servers in the order first cached (eviction order).
    order: VecDeque<Ipv4Addr>,
}

impl FastOpenCache {
    pub fn get(&self, server: Ipv4Addr) -> Option<CachedCookie> {
        self.entries.get(&server).copied()
    }

    /// Records what `server`'s SYN-ACK gave: a new cookie replaces an
    /// older one (a server may rotate its key), a SYN-ACK without one
    /// leaves it; the MSS is the latest announced.
    pub fn insert(&mut self, server: Ipv4Addr, entry: CachedCookie) {
        let merged = match self.entries.get(&server) {
            Some(old) => CachedCookie {
                cookie: entry.cookie.or(old.cookie),
                mss: entry.mss.or(old.mss),
            },
            None => entry,
        };
        if self.entries.insert(server, merged).is_none() {
            self.order.push_back(server);
            if self.order.len() > CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }

    /// Forgets every cookie.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_cookie_wins_and_the_cache_stays_bounded() {
        let mut c = FastOpenCache::default();
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let one = CachedCookie {
            cookie: Some(FastOpen::with_cookie(&[1, 2, 3, 4], false)),
            mss: Some(1460),
        };
        let two = CachedCookie {
            cookie: Some(FastOpen::with_cookie(&[5, 6, 7, 8], false)),
            mss: Some(940),
        };
        c.insert(a, one);
        c.insert(a, two);
        assert_eq!(c.get(a), Some(two));
        let mss_only = CachedCookie {
            cookie: None,
            mss: Some(536),
        };
        c.insert(a, mss_only);
        assert_eq!(c.get(a).unwrap().cookie, two.cookie, "the cookie stays");
        assert_eq!(c.get(a).unwrap().mss, Some(536));
        for i in 0..CAPACITY as u32 + 10 {
            c.insert(Ipv4Addr::from(0x0b00_0000 + i), one);
        }
        assert_eq!(c.len(), CAPACITY);
        assert_eq!(c.get(a), None, "the oldest went first");
    }
}
