//! TCP Fast Open, the client's side (RFC 7413), over the simulator: the
//! first connection to a server asks for a cookie; the next carries the
//! cookie and data on its SYN, which the server delivers before the
//! handshake ends; a server that no longer takes Fast Open acknowledges
//! only the SYN, and the data follows at once, every byte intact.

use std::net::SocketAddrV4;
use std::time::Duration;
use xdptcp::device::sim::LinkConfig;
use xdptcp::iface::Handle;
use xdptcp::simulation::{World, ADDR_B};
use xdptcp::tcp::{Config, State};

const KEY: [u8; 16] = *b"fast-open-key-16";

fn world(server_key: Option<[u8; 16]>) -> World {
    let server = Config {
        fast_open_key: server_key,
        ..Config::default()
    };
    let mut w = World::new(LinkConfig::default(), 7, Config::default(), server);
    w.b.iface.listen(80, None, 8).unwrap();
    w
}

/// What one Fast Open connection did.
struct Opened {
    /// Bytes of the data the SYN carried.
    on_syn: usize,
    /// What the server read.
    got: Vec<u8>,
    /// Each side's TCPI_OPT_SYN_DATA.
    client_syn_data: bool,
    server_syn_data: bool,
    /// The server had the data before the client's connection was
    /// established (it came on the SYN).
    before_established: bool,
}

/// Opens a Fast Open connection with `data` and runs until the server has
/// accepted it and read all of it.
fn open(w: &mut World, data: &[u8]) -> Opened {
    let (h, on_syn) =
        w.a.iface
            .connect_fast_open(SocketAddrV4::new(ADDR_B, 80), None, data, w.now)
            .unwrap();
    let mut sent = on_syn;
    let mut server: Option<Handle> = None;
    let mut got = Vec::new();
    let mut before_established = false;
    let mut buf = vec![0u8; 64 * 1024];
    let end = w.now + Duration::from_secs(10);
    loop {
        w.poll();
        let c = w.a.iface.tcp(h).unwrap();
        let established = c.state() == State::Established;
        if established && sent < data.len() {
            sent += c.send(&data[sent..]).unwrap_or(0);
        }
        server = server.or_else(|| w.b.iface.accept(80).unwrap());
        if let Some(s) = server.and_then(|s| w.b.iface.tcp(s)) {
            if let Ok(n) = s.recv(&mut buf) {
                if n > 0 && got.is_empty() && !established {
                    before_established = true;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        if got.len() == data.len() && server.is_some() && established {
            break;
        }
        assert!(w.advance() && w.now < end, "stalled at {} bytes", got.len());
    }
    let now = w.now;
    let client_syn_data = w.a.iface.tcp(h).unwrap().info(now).syn_data;
    let server_syn_data = w.b.iface.tcp(server.unwrap()).unwrap().info(now).syn_data;
    Opened {
        on_syn,
        got,
        client_syn_data,
        server_syn_data,
        before_established,
    }
}

fn pattern(n: usize, k: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(k))
        .collect()
}

#[test]
fn the_second_connection_carries_its_data_on_the_syn() {
    let mut w = world(Some(KEY));
    let first = pattern(500, 1);
    let o = open(&mut w, &first);
    assert_eq!(o.on_syn, 0, "no cookie yet: the SYN asks for one");
    assert_eq!(o.got, first);
    assert!(!o.client_syn_data && !o.server_syn_data);

    let second = pattern(1000, 2);
    let o = open(&mut w, &second);
    assert_eq!(o.on_syn, 1000, "the cached cookie lets the SYN carry it");
    assert_eq!(o.got, second);
    assert!(o.server_syn_data, "the server took the SYN's data");
    assert!(o.client_syn_data, "the SYN-ACK acknowledged it");
    assert!(
        o.before_established,
        "the server read the data before the client's handshake ended"
    );

    // More than a SYN holds: the MSS less 40 bytes rides on it, the rest
    // follows the handshake.
    let big = pattern(5000, 3);
    let o = open(&mut w, &big);
    assert_eq!(o.on_syn, usize::from(Config::default().mss) - 40);
    assert_eq!(o.got, big);
}

#[test]
fn a_server_that_ignores_the_cookie_gets_the_data_after_the_handshake() {
    let mut w = world(Some(KEY));
    open(&mut w, &pattern(10, 1));
    // The server forgets Fast Open (a new listener without a key).
    w.b.iface.unlisten(80);
    w.b.iface.listen(80, Some(Config::default()), 8).unwrap();
    let data = pattern(1200, 4);
    let o = open(&mut w, &data);
    assert_eq!(o.on_syn, 1200, "the client still tries");
    assert_eq!(o.got, data, "sent again after the handshake, intact");
    assert!(!o.client_syn_data && !o.server_syn_data);
    assert!(!o.before_established);
}
