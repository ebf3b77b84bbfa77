//! Helpers for tests against the Linux kernel over AF_XDP: a python3
//! program started in the peer namespace.

#![allow(dead_code)]

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant as StdInstant};
use xdptcp::device::afxdp::{AfXdp, AfXdpConfig};
use xdptcp::iface::{IfaceConfig, Interface, RxChecksum};
use xdptcp::tcp::{Config, State, TcpError};
use xdptcp::time::Instant;
use xdptcp::wire::ethernet::MacAddr;
use xdptcp_tools::topology::Topology;

/// A peer process that is killed when the test ends, also when it fails
/// (a leftover would keep the test's output pipe open).
pub struct Peer(pub std::process::Child);

impl std::ops::Deref for Peer {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a python3 program in the peer namespace and waits until it
/// prints "ready" (it listens); returns it with its remaining output.
pub fn start_server(
    t: &Topology,
    program: &str,
) -> (Peer, std::io::BufReader<std::process::ChildStdout>) {
    let mut child = t
        .peer_cmd(&["python3", "-c", program])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 server");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the python3 server did not start");
    (Peer(child), out)
}

/// Our stack on `t` (an interface on an AF_XDP socket, entered from the
/// calling thread), serving the IPv6 address `v6` too if given (the
/// XDP program takes its traffic, the interface answers for it).
pub fn stack_serving(
    t: &Topology,
    tcp: Config,
    v6: Option<std::net::Ipv6Addr>,
) -> (Interface, AfXdp) {
    t.enter_ours().expect("enter our namespace");
    let mut addresses = vec![t.our_ip().into()];
    addresses.extend(v6.map(std::net::IpAddr::from));
    let cfg = AfXdpConfig {
        addresses,
        ..AfXdpConfig::new(&t.dev)
    };
    let dev = AfXdp::open(cfg).unwrap_or_else(|e| panic!("{e}"));
    let mut iface = Interface::new(IfaceConfig {
        mac: MacAddr([0x02, 0, 0, 0, 0x10, t.subnet]),
        ip: t.our_ip(),
        prefix_len: 24,
        gateway: None,
        isn_secret: [9; 16],
        tcp,
        rx_checksum: RxChecksum::Verify,
    });
    if let Some(a) = v6 {
        iface.add_ipv6(a, 64).expect("a unicast address");
    }
    (iface, dev)
}

/// Our clock: time since `start`.
pub fn now(start: StdInstant) -> Instant {
    Instant::from_nanos(start.elapsed().as_nanos() as u64)
}

/// Sends `data` on the connection `h` once it is open, closes, and reads
/// what the peer answers until its FIN. Returns the answer and the MSS
/// the connection ended up with.
pub fn send_and_read_reply(
    iface: &mut Interface,
    dev: &mut AfXdp,
    h: xdptcp::iface::Handle,
    data: &[u8],
    start: StdInstant,
) -> (Vec<u8>, u32) {
    let (mut sent, mut closed, mut reply, mut mss) = (0, false, Vec::new(), 0);
    let mut buf = [0u8; 4096];
    loop {
        iface.poll(now(start), dev);
        let c = iface.tcp(h).unwrap();
        if let Some(e) = c.error() {
            panic!("connection failed: {e:?}");
        }
        if c.state() != State::SynSent {
            mss = c.snapshot().mss;
            while sent < data.len() {
                match c.send(&data[sent..]) {
                    Ok(n) if n > 0 => sent += n,
                    _ => break,
                }
            }
            if sent == data.len() && !closed {
                c.close();
                closed = true;
            }
        }
        match c.recv(&mut buf) {
            Ok(0) if c.at_eof() => return (reply, mss),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(TcpError::WouldBlock) => {}
            Err(e) => panic!("recv: {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "transfer hangs at {sent} bytes"
        );
    }
}
