//! TCP Fast Open (RFC 7413): a client that holds a cookie from an earlier
//! connection sends data on its SYN, and the server hands that data to its
//! application at once instead of a round trip later.
//!
//! The client's side: the SYN carries a cached cookie and as much queued
//! data as the SYN may (`fast_open_client`), or asks for a cookie; the
//! cookie a SYN-ACK gives is taken by the interface for its cache
//! (`iface/fast_open_cache.rs`). Data the SYN-ACK does not acknowledge is
//! sent again at once after the handshake (4.2.1), as Linux does.
//!
//! The server's side: the cookie is a keyed hash of the client's and our
//! address (4.1.2): SipHash-2-4 over the two IPv4 addresses, 8 bytes, as
//! Linux makes it,
//! so that a key set as on a Linux server gives the same cookies. The
//! interface checks the cookie of a SYN to a listener with a key
//! (`Config::fast_open_key`); this file is what the connection does then:
//! take the SYN's data, or give the client a cookie in the SYN-ACK.
//! A connection opened so is acceptable before the handshake ends, and
//! may send before it ends (4.2.2), as Linux's.

use super::connection::{Connection, Event};
use crate::wire::tcp::FastOpen;
use crate::wire::HostAddr;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// The cookie for `client` talking to `server` under `key`.
pub fn cookie<A: HostAddr>(key: &[u8; 16], client: A, server: A) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(key);
    h.write(client.octets_of().as_ref());
    h.write(server.octets_of().as_ref());
    h.finish().to_le_bytes()
}

/// Where a passive connection stands with Fast Open.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FastOpenState {
    /// The SYN came with a valid cookie: its data is taken, and the
    /// connection may be accepted and send before the handshake ends.
    pub child: bool,
    /// The cookie our SYN-ACK gives the client (it asked, or its cookie
    /// was not valid).
    pub reply: Option<FastOpen>,
    /// Data came on the SYN and was taken, or (client) the SYN-ACK
    /// acknowledged the data our SYN carried (Linux's TCPI_OPT_SYN_DATA).
    pub syn_data: bool,
    /// An active open with Fast Open.
    pub client: Option<FastOpenClient>,
}

/// Where an active connection stands with Fast Open.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FastOpenClient {
    /// The cookie the SYN carries with data; `None` asks for one.
    pub cookie: Option<FastOpen>,
    /// Data on the SYN with no cookie and no option at all (a server
    /// known to need none: Linux's `tcp_fastopen` 0x4).
    pub bare: bool,
    /// At most this much data rides on the SYN.
    pub syn_room: u32,
    /// What the SYN-ACK gave, for the interface's cache: a valid cookie
    /// (if any) and the server's MSS (if announced).
    pub received: Option<(Option<FastOpen>, Option<u16>)>,
    /// The SYN-ACK left the SYN's data (up to here) unacknowledged: it
    /// goes again first, as its own segment.
    pub syn_data_resent_until: Option<super::SeqNum>,
}

impl Connection {
    /// Opens with Fast Open (call before the SYN goes out): the SYN
    /// carries `cookie` and up to `syn_room` bytes of what is queued by
    /// then; without a cookie it asks the server for one.
    pub fn fast_open_client(&mut self, cookie: Option<FastOpen>, syn_room: u32) {
        self.fast_open.client = Some(FastOpenClient {
            cookie,
            bare: false,
            syn_room,
            received: None,
            syn_data_resent_until: None,
        });
    }

    /// The form of our SYN's Fast Open option (true: experimental), None
    /// without one (a bare SYN): for the cache's choice of form.
    pub fn fast_open_asked(&self) -> Option<bool> {
        let c = self.fast_open.client?;
        // The SYN that drew the SYN-ACK may have been a plain one sent
        // again (Linux then learns nothing of the option's form).
        if c.bare || self.counters.rto_expirations > 0 {
            return None;
        }
        Some(c.cookie.is_some_and(|f| f.experimental))
    }

    /// What a SYN-ACK gave a Fast Open connection, once: a valid cookie
    /// (if any) and the server's MSS (if announced), as Linux caches both
    /// (the MSS also from a SYN-ACK without a cookie).
    pub fn take_fast_open_cookie(&mut self) -> Option<(Option<FastOpen>, Option<u16>)> {
        self.fast_open.client.as_mut()?.received.take()
    }

    /// The SYN's Fast Open option and how much data it carries. Only the
    /// first SYN has either: a retransmitted SYN is a plain one, as
    /// Linux's (the server or a middlebox may have dropped the first for
    /// its option or data); the data follows the handshake.
    pub(super) fn syn_fast_open(&self) -> Option<(Option<FastOpen>, u32)> {
        let c = self.fast_open.client?;
        if self.snd_max != self.iss {
            return None;
        }
        let data = (self.send_buf.len() as u32).min(c.syn_room);
        match c.cookie {
            _ if c.bare => Some((None, data)),
            Some(cookie) => Some((Some(cookie), data)),
            None => Some((Some(FastOpen::request(false)), 0)),
        }
    }

    /// Opens with data on the SYN and no cookie (see `FastOpenClient::bare`).
    pub fn fast_open_client_without_cookie(&mut self, syn_room: u32) {
        self.fast_open_client(None, syn_room);
        if let Some(c) = self.fast_open.client.as_mut() {
            c.bare = true;
        }
    }

    /// The SYN-ACK to our Fast Open SYN arrived (its ACK taken): keep the
    /// cookie it gives, and send again at once whatever of the SYN's data
    /// it does not acknowledge (RFC 7413 4.2.1).
    ///
    /// Returns true when what follows is only the SYN's data sent again:
    /// no write waits behind it, so (as Linux, whose delayed-ACK clock
    /// only a waiting writer starts) it is not a reply.
    pub(super) fn on_fast_open_syn_ack(&mut self, options: &crate::wire::tcp::TcpOptions) -> bool {
        let Some(c) = self.fast_open.client.as_mut() else {
            return false;
        };
        // A cookie we did not ask for (a bare SYN) is not kept, as Linux.
        let cookie = options
            .fast_open
            .filter(|f| f.cookie() != Some(&[]) && !c.bare);
        c.received = Some((cookie, options.mss));
        if self.snd_max > self.iss + 1 {
            if self.snd_una == self.snd_max {
                self.fast_open.syn_data = true;
            } else {
                // Never recorded as sent (a SYN is not in the sent queue):
                // it goes out as new data, and is counted once.
                let syn_data = self.snd_max - self.snd_una;
                // Linux sends the SYN's data again as the buffer it was:
                // a segment of its own, whatever the MSS.
                let end = self.snd_una + syn_data;
                c.syn_data_resent_until = Some(end);
                if self.record_ends.front().is_none_or(|f| *f > end) {
                    self.record_ends.push_front(end);
                }
                self.counters.bytes_sent -= u64::from(syn_data);
                self.snd_nxt = self.snd_una;
                self.snd_max = self.snd_una;
                return self.send_buf.len() as u32 <= syn_data;
            }
        }
        false
    }

    /// Is the segment at `seq` the SYN's data sent again? (Linux resends
    /// it outside its Nagle bookkeeping, and counts it as retransmitted.)
    pub(super) fn is_syn_data_again(&self, seq: crate::tcp::SeqNum) -> bool {
        self.fast_open
            .client
            .and_then(|c| c.syn_data_resent_until)
            .is_some_and(|end| seq < end)
    }

    /// The interface found the SYN's cookie valid (call before feeding
    /// the SYN to this listening connection).
    pub fn accept_fast_open(&mut self) {
        self.fast_open.child = true;
    }

    /// The SYN-ACK is to carry `cookie` for the client.
    pub fn offer_fast_open_cookie(&mut self, cookie: FastOpen) {
        self.fast_open.reply = Some(cookie);
    }

    /// Opened by Fast Open: acceptable before the handshake ends.
    pub fn is_fast_open_child(&self) -> bool {
        self.fast_open.child
    }

    /// A passive connection the application may accept: its handshake
    /// done, or a Fast Open child (accepted at its SYN). It stays
    /// acceptable when reset, as Linux's accept queue keeps such sockets.
    pub fn is_acceptable(&self) -> bool {
        self.syn_acked() || self.fast_open.child
    }

    /// Data carried on a SYN whose cookie was valid (RFC 7413 4.2.2).
    pub(super) fn take_syn_data(&mut self, payload: &[u8]) {
        if !self.fast_open.child || payload.is_empty() {
            return;
        }
        let n = self.recv_buf.push(payload);
        self.rcv_nxt += n as u32;
        self.rcv_adv = self.rcv_adv.max(self.rcv_nxt);
        self.counters.bytes_received += n as u64;
        self.fast_open.syn_data = n > 0;
        self.push_event(Event::Readable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn cookies_are_the_ones_a_linux_server_makes_with_the_same_key() {
        // packetdrill's corpus: tcp_fastopen_key=a1a1a1a1-b2b2b2b2-
        // c3c3c3c3-d4d4d4d4 (each word little-endian in memory), client
        // 192.0.2.1, server 192.168.0.1: its TFO_COOKIE is 3021b9d889017eeb.
        let key: Vec<u8> = [0xa1a1_a1a1u32, 0xb2b2_b2b2, 0xc3c3_c3c3, 0xd4d4_d4d4]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let c = cookie(
            &key.try_into().unwrap(),
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 168, 0, 1),
        );
        assert_eq!(c, [0x30, 0x21, 0xb9, 0xd8, 0x89, 0x01, 0x7e, 0xeb]);
    }
}
