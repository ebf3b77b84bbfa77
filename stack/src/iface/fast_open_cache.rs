//! The Fast Open client's cookie cache (RFC 7413 4.1.3): per server
//! address, the cookie its last SYN-ACK gave and the MSS it announced, so
//! that the next connection to it can carry data on its SYN. Bounded: past
//! `CAPACITY` servers the oldest entry goes (Linux keeps its cookies in a
//! bounded table of TCP metrics too).

use crate::wire::tcp::FastOpen;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedCookie {
    /// `None` while a server only told its MSS.
    pub cookie: Option<FastOpen>,
    /// The server's MSS, when its SYN-ACK announced one.
    pub mss: Option<u16>,
    /// Which option form to ask with, as Linux's `try_exp`: a server that
    /// ignored a request in RFC 7413's form (kind 34) is asked once in
    /// the older experimental form (kind 254); if that fails too, RFC
    /// 7413's form from then on.
    pub ask: AskWith,
}

/// See `CachedCookie::ask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AskWith {
    #[default]
    Rfc,
    Experimental,
    RfcForGood,
}

#[derive(Default)]
pub struct FastOpenCache {
    entries: HashMap<IpAddr, CachedCookie>,
    /// Servers in the order first cached (eviction order).
    order: VecDeque<IpAddr>,
}

impl FastOpenCache {
    pub fn get(&self, server: IpAddr) -> Option<CachedCookie> {
        self.entries.get(&server).copied()
    }

    /// Records what `server`'s SYN-ACK gave: a new cookie replaces an
    /// older one (a server may rotate its key), a SYN-ACK without one
    /// leaves it; the MSS is the latest announced.
    pub fn insert(&mut self, server: IpAddr, entry: CachedCookie) {
        let merged = match self.entries.get(&server) {
            Some(old) => CachedCookie {
                cookie: entry.cookie.or(old.cookie),
                mss: entry.mss.or(old.mss),
                ask: entry.ask,
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

    /// What `server`'s SYN-ACK to a Fast Open SYN gave: a cookie (or
    /// none), its MSS, and so the form to ask with next; `asked`: the form
    /// of our SYN's option (true: experimental), None for a bare SYN.
    pub fn learn(
        &mut self,
        server: IpAddr,
        cookie: Option<FastOpen>,
        mss: Option<u16>,
        asked: Option<bool>,
    ) {
        let old = self.get(server).map_or(AskWith::Rfc, |c| c.ask);
        let ask = match (cookie, asked, old) {
            (Some(_), _, _) | (None, None, _) => old,
            (None, Some(false), AskWith::RfcForGood) => AskWith::RfcForGood,
            (None, Some(false), _) => AskWith::Experimental,
            (None, Some(true), _) => AskWith::RfcForGood,
        };
        self.insert(server, CachedCookie { cookie, mss, ask });
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
    use std::net::Ipv4Addr;

    #[test]
    fn the_newest_cookie_wins_and_the_cache_stays_bounded() {
        let mut c = FastOpenCache::default();
        let a = IpAddr::from(Ipv4Addr::new(10, 0, 0, 1));
        let one = CachedCookie {
            cookie: Some(FastOpen::with_cookie(&[1, 2, 3, 4], false)),
            mss: Some(1460),
            ask: AskWith::Rfc,
        };
        let two = CachedCookie {
            cookie: Some(FastOpen::with_cookie(&[5, 6, 7, 8], false)),
            mss: Some(940),
            ask: AskWith::Rfc,
        };
        c.insert(a, one);
        c.insert(a, two);
        assert_eq!(c.get(a), Some(two));
        let mss_only = CachedCookie {
            cookie: None,
            mss: Some(536),
            ask: AskWith::Rfc,
        };
        c.insert(a, mss_only);
        assert_eq!(c.get(a).unwrap().cookie, two.cookie, "the cookie stays");
        assert_eq!(c.get(a).unwrap().mss, Some(536));
        for i in 0..CAPACITY as u32 + 10 {
            c.insert(IpAddr::from(Ipv4Addr::from(0x0b00_0000 + i)), one);
        }
        assert_eq!(c.len(), CAPACITY);
        assert_eq!(c.get(a), None, "the oldest went first");
    }

    #[test]
    fn a_server_that_ignores_both_option_forms_is_asked_in_rfc_form_for_good() {
        // As Linux's try_exp: RFC 7413's form, the experimental once, then
        // RFC 7413's from then on.
        let mut c = FastOpenCache::default();
        let a = IpAddr::from(Ipv4Addr::new(10, 0, 0, 1));
        c.learn(a, None, Some(1460), Some(false));
        assert_eq!(c.get(a).unwrap().ask, AskWith::Experimental);
        c.learn(a, None, Some(1460), Some(true));
        assert_eq!(c.get(a).unwrap().ask, AskWith::RfcForGood);
        c.learn(a, None, Some(1460), Some(false));
        assert_eq!(c.get(a).unwrap().ask, AskWith::RfcForGood);
    }
}
