//! A listener's side of TCP Fast Open (RFC 7413) at the interface, and
//! what happens to connections waiting for `accept` when the peer resets
//! them.
//!
//! With `fast_open_without_cookie` (Linux's tcp_fastopen 0x200) a
//! listener takes the data on any SYN at once, cookie or not, and offers
//! no cookie; without it a SYN without a valid cookie has its data left
//! for the client to send again. A connection that has been handed to the
//! accept queue (its handshake done, or a Fast Open child) stays there
//! when reset, as on Linux: `accept` returns it closed, its data readable,
//! then the reset.

mod common;

use common::frames::*;
use xdptcp::iface::{Handle, IfaceConfig, Interface};
use xdptcp::tcp::{Config, ConnError, State};
use xdptcp::time::Instant;
use xdptcp::wire::ethernet::{EthernetFrame, ETHERTYPE_IPV4};
use xdptcp::wire::ipv4::Ipv4Packet;
use xdptcp::wire::tcp::{FastOpen, Flags, TcpHeader, TcpOptions, TcpSegment};

const PORT: u16 = 80;
const KEY: [u8; 16] = *b"fast-open-key-16";

struct Server {
    i: Interface,
    dev: Inject,
    now: u64,
}

impl Server {
    fn new(without_cookie: bool) -> Server {
        let mut i = Interface::new(IfaceConfig {
            tcp: Config {
                fast_open_key: Some(KEY),
                fast_open_without_cookie: without_cookie,
                ..Config::default()
            },
            ..iface_config([3; 16])
        });
        let mut dev = Inject::default();
        teach_peer(&mut i, &mut dev);
        i.listen(PORT, None, 8).unwrap();
        Server { i, dev, now: 1 }
    }

    /// A segment from the peer; returns (seq, ack, flags) of each of ours.
    fn receive(&mut self, h: TcpHeader, payload: &[u8]) -> Vec<(u32, u32, Flags, bool)> {
        self.dev.rx.push(frame_to_us(&h, payload));
        self.now += 1;
        self.i.poll(Instant::from_millis(self.now), &mut self.dev);
        self.dev
            .tx
            .drain(..)
            .filter_map(|f| {
                let eth = EthernetFrame::parse(&f).unwrap();
                (eth.ethertype == ETHERTYPE_IPV4).then(|| eth.payload.to_vec())
            })
            .map(|f| {
                let ip = Ipv4Packet::parse(&f).unwrap();
                let s = TcpSegment::parse(ip.payload, ip.src, ip.dst).unwrap();
                (s.seq, s.ack, s.flags, s.options.fast_open.is_some())
            })
            .collect()
    }

    fn accept(&mut self) -> Option<Handle> {
        self.i.accept(PORT).unwrap()
    }
}

fn from_peer(seq: u32, ack: u32, flags: Flags, fast_open: Option<FastOpen>) -> TcpHeader {
    TcpHeader {
        src_port: 40_000,
        dst_port: PORT,
        seq,
        ack,
        flags,
        window: 65_535,
        options: TcpOptions {
            mss: flags.syn().then_some(1460),
            fast_open,
            ..TcpOptions::default()
        },
    }
}

/// The SYN-ACK's ACK number and whether it offered a cookie, and what the
/// connection accepted before the handshake's end has to read, for a SYN
/// with 1,000 bytes and no Fast Open option.
fn syn_with_data(without_cookie: bool) -> (u32, bool, Option<usize>) {
    let mut s = Server::new(without_cookie);
    let out = s.receive(from_peer(0, 0, Flags::SYN, None), &[4u8; 1000]);
    let &[(_, ack, flags, cookie)] = &out[..] else {
        panic!("one SYN-ACK: {out:?}")
    };
    assert!(flags.syn() && flags.ack());
    let queued = s.accept().map(|h| s.i.tcp(h).unwrap().recv_queue());
    (ack, cookie, queued)
}

#[test]
fn a_listener_that_needs_no_cookie_takes_the_syn_data_at_once() {
    assert_eq!(syn_with_data(true), (1001, false, Some(1000)));
}

#[test]
fn a_listener_that_needs_a_cookie_leaves_the_data_for_later() {
    assert_eq!(
        syn_with_data(false),
        (1, false, None),
        "only the SYN is acknowledged (it asked for no cookie, so none comes)"
    );
}

/// accept's connection after a reset: its state, what it has to read and
/// its error.
fn accepted_after_reset(s: &mut Server) -> (State, usize, Option<ConnError>) {
    let h = s.accept().expect("still in the accept queue");
    let c = s.i.tcp(h).unwrap();
    (c.state(), c.recv_queue(), c.error())
}

#[test]
fn a_fast_open_child_reset_before_accept_is_accepted_with_its_data() {
    let mut s = Server::new(false);
    let cookie = xdptcp::tcp::fast_open::cookie(&KEY, PEER, US);
    let fo = FastOpen::with_cookie(&cookie, true);
    let out = s.receive(from_peer(0, 0, Flags::SYN, Some(fo)), &[4u8; 10]);
    let iss = out[0].0;
    assert_eq!(out[0].1, 11, "the SYN's data is taken");
    s.receive(from_peer(11, iss + 1, Flags::RST | Flags::ACK, None), &[]);
    assert_eq!(
        accepted_after_reset(&mut s),
        (State::Closed, 10, Some(ConnError::Reset))
    );
}

#[test]
fn an_established_connection_reset_before_accept_is_accepted_with_its_data() {
    let mut s = Server::new(false);
    let iss = s.receive(from_peer(0, 0, Flags::SYN, None), &[])[0].0;
    s.receive(from_peer(1, iss + 1, Flags::ACK, None), &[]);
    s.receive(
        from_peer(1, iss + 1, Flags::ACK | Flags::PSH, None),
        &[5u8; 10],
    );
    s.receive(from_peer(11, iss + 1, Flags::RST | Flags::ACK, None), &[]);
    assert_eq!(
        accepted_after_reset(&mut s),
        (State::Closed, 10, Some(ConnError::Reset))
    );
}

#[test]
fn a_half_open_connection_reset_is_forgotten() {
    let mut s = Server::new(false);
    let iss = s.receive(from_peer(0, 0, Flags::SYN, None), &[])[0].0;
    s.receive(from_peer(1, iss + 1, Flags::RST | Flags::ACK, None), &[]);
    assert_eq!(s.accept(), None);
    assert_eq!(s.i.connection_count(), 0, "nothing kept for it");
}
