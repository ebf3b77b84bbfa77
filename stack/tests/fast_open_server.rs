//! TCP Fast Open, the server's side at the interface (RFC 7413): with
//! `fast_open_without_cookie` (Linux's tcp_fastopen 0x200) a listener
//! takes the data on any SYN at once, cookie or not, and offers no
//! cookie; without it a SYN without a valid cookie has its data left for
//! the client to send again.

mod common;

use common::frames::*;
use xdptcp::iface::{IfaceConfig, Interface};
use xdptcp::tcp::Config;
use xdptcp::time::Instant;
use xdptcp::wire::ethernet::EthernetFrame;
use xdptcp::wire::ipv4::Ipv4Packet;
use xdptcp::wire::tcp::{Flags, TcpHeader, TcpOptions, TcpSegment};

const PORT: u16 = 80;

/// The SYN-ACK's ACK number and whether it offered a cookie, and what the
/// accepted connection has to read, for a SYN with 1,000 bytes and no
/// Fast Open option.
fn syn_with_data(without_cookie: bool) -> (u32, bool, Option<usize>) {
    let mut i = Interface::new(IfaceConfig {
        tcp: Config {
            fast_open_key: Some(*b"fast-open-key-16"),
            fast_open_without_cookie: without_cookie,
            ..Config::default()
        },
        ..iface_config([3; 16])
    });
    let mut dev = Inject::default();
    teach_peer(&mut i, &mut dev);
    i.listen(PORT, None, 8).unwrap();
    let syn = TcpHeader {
        src_port: 40_000,
        dst_port: PORT,
        seq: 0,
        ack: 0,
        flags: Flags::SYN,
        window: 65_535,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
    };
    dev.rx.push(frame_to_us(&syn, &[4u8; 1000]));
    i.poll(Instant::from_millis(1), &mut dev);
    let f = dev.tx.pop().expect("a SYN-ACK");
    let ip = Ipv4Packet::parse(EthernetFrame::parse(&f).unwrap().payload).unwrap();
    let s = TcpSegment::parse(ip.payload, Some((ip.src, ip.dst))).unwrap();
    assert!(s.flags.syn() && s.flags.ack());
    // A Fast Open child is accepted before the handshake ends.
    let queued = i
        .accept(PORT)
        .unwrap()
        .map(|h| i.tcp(h).unwrap().recv_queue());
    (s.ack, s.options.fast_open.is_some(), queued)
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
