//! TCP and Neighbor Discovery over IPv6 with the Linux kernel as the
//! peer, over AF_XDP on a veth pair between two namespaces: the kernel
//! has fd00:N::2, our stack fd00:N::10 (and 10.N.0.1 beside it, dual
//! stack on one interface). Needs root: without it each test says
//! loudly that it did not run (CI runs as root).

use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::{Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant as StdInstant};
use xdptcp::device::afxdp::AfXdp;
use xdptcp::device::Device;
use xdptcp::iface::{Handle, Interface};
use xdptcp::tcp::{Config, State, TcpError};
use xdptcp_tools::topology::{Spec, Topology};

mod kernel_peer;
use kernel_peer::{now, send_and_read_reply, stack_serving, start_server};

/// A topology whose peer has the kernel address fd00:N::2, and the IPv6
/// address our stack takes there, fd00:N::10.
fn ipv6_topology(tag: &str, subnet: u8) -> (std::sync::Arc<Topology>, Ipv6Addr) {
    let t = Topology::create(tag, subnet, false).expect("topology");
    t.add_kernel_address(true, &format!("fd00:{subnet}::2/64"))
        .unwrap();
    let ours = format!("fd00:{subnet}::10").parse().unwrap();
    (std::sync::Arc::new(t), ours)
}

/// A kernel server (python3, one IPv6 socket that takes IPv4 too) on
/// port 5001: it reads one connection to its end, answers with the
/// SHA-256 of what it read, and prints the byte count.
const DIGEST_SERVER: &str = "import socket,hashlib\n\
s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind(('::',5001));s.listen();print('ready',flush=True)\n\
c,_=s.accept();h=hashlib.sha256();n=0\n\
while True:\n  b=c.recv(1<<20)\n  if not b: break\n  h.update(b);n+=len(b)\n\
c.sendall(h.hexdigest().encode());c.close();print(n,flush=True)";

/// Our client sends `size` bytes to the kernel's digest server at `to`
/// and checks what the kernel read. Returns the goodput in Mbit/s and the
/// MSS the connection ended with.
fn send_to_kernel(
    t: &Topology,
    iface: &mut Interface,
    dev: &mut AfXdp,
    to: SocketAddr,
    size: usize,
) -> (f64, u32) {
    let (_server, mut server_out) = start_server(t, DIGEST_SERVER);
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
    let start = StdInstant::now();
    let h = iface.connect(to, None, now(start)).unwrap();
    let (reply, mss) = send_and_read_reply(iface, dev, h, &data, start);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!("{:x}", Sha256::digest(&data)),
        "the kernel received exactly our bytes (to {to})"
    );
    let mut count = String::new();
    server_out.read_to_string(&mut count).unwrap();
    assert_eq!(
        count.trim(),
        size.to_string(),
        "the kernel counted our bytes"
    );
    (size as f64 * 8.0 / secs / 1e6, mss)
}

/// A kernel client (python3 in the peer's namespace) that connects to
/// `to`, sends `mib` MiB of a pattern, waits for our FIN and prints the
/// SHA-256 of what it sent.
fn kernel_sender(t: &Topology, to: SocketAddr, mib: usize) -> kernel_peer::Peer {
    let child = t
        .peer_cmd(&[
            "python3",
            "-c",
            &format!(
                "import socket,hashlib\n\
                 d=bytes((i*13+i//977)%256 for i in range(1<<20))\n\
                 h=hashlib.sha256()\n\
                 s=socket.create_connection(('{}',{}))\n\
                 for _ in range({mib}):\n  s.sendall(d);h.update(d)\n\
                 s.shutdown(socket.SHUT_WR)\n\
                 while s.recv(4096): pass\n\
                 print(h.hexdigest(),flush=True)",
                to.ip(),
                to.port(),
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 client");
    kernel_peer::Peer(child)
}

/// What a kernel sender printed (its digest), once it has exited.
fn sender_digest(mut p: kernel_peer::Peer) -> String {
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(p.wait().unwrap().success());
    out.trim().to_string()
}

/// Our server on `port` takes one connection from each of `clients`
/// (kernel senders, all at once) and hashes what each sends; returns,
/// per connection, its peer and our digest, once all are closed.
fn serve_kernel_senders(
    iface: &mut Interface,
    dev: &mut AfXdp,
    port: u16,
    clients: usize,
) -> Vec<(SocketAddr, String, usize)> {
    let start = StdInstant::now();
    let mut conns: Vec<(Handle, Sha256, usize, bool)> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while conns.len() < clients || conns.iter().any(|c| !c.3) {
        iface.poll(now(start), dev);
        while let Some(h) = iface.accept(port).unwrap() {
            conns.push((h, Sha256::new(), 0, false));
        }
        for (h, hash, got, done) in conns.iter_mut().filter(|c| !c.3) {
            let c = iface.tcp(*h).unwrap();
            loop {
                match c.recv(&mut buf) {
                    Ok(0) => {
                        c.close();
                        *done = c.state() == State::Closed;
                        break;
                    }
                    Ok(n) => {
                        hash.update(&buf[..n]);
                        *got += n;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("recv after {got} bytes: {e}"),
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stuck: {:?}",
            conns.iter().map(|c| c.2).collect::<Vec<_>>()
        );
    }
    conns
        .into_iter()
        .map(|(h, hash, got, _)| {
            let peer = iface.tuple(h).unwrap().remote();
            (peer, format!("{:x}", hash.finalize()), got)
        })
        .collect()
}

/// Our client to a kernel server over IPv6, 256 MiB, and the same over
/// IPv4 on the same interface right after: digests match both ways, the
/// IPv6 connection's MSS is 20 bytes under IPv4's, and we found the
/// kernel's MAC by Neighbor Discovery. Goodputs are printed (the
/// bench compares them: `xdptcp-bench --ipv6`).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn our_client_to_kernel_server_over_ipv6_and_ipv4() {
    xdptcp_tools::topology::require_root();
    let (t, ours) = ipv6_topology("c6", 210);
    let t2 = t.clone();
    std::thread::spawn(move || {
        let size = 256 << 20;
        let (mut iface, mut dev) = stack_serving(&t2, Config::default(), Some(ours));
        let kernel6: Ipv6Addr = format!("fd00:{}::2", t2.subnet).parse().unwrap();
        let to6 = SocketAddr::new(kernel6.into(), 5001);
        let (v6, mss6) = send_to_kernel(&t2, &mut iface, &mut dev, to6, size);
        assert!(iface.stats().nd_solicitations_sent >= 1, "{:?}", iface.stats());
        let to4 = SocketAddr::new(t2.peer_ip().into(), 5001);
        let (v4, mss4) = send_to_kernel(&t2, &mut iface, &mut dev, to4, size);
        // Timestamps on both: 1448 over IPv4, 1428 over IPv6.
        assert_eq!((mss4, mss6), (1448, 1428));
        eprintln!(
            "our client -> kernel server, 256 MiB: IPv6 {v6:.0} Mbit/s, IPv4 {v4:.0} Mbit/s ({:.2})",
            v6 / v4
        );
    })
    .join()
    .unwrap();
}

/// A kernel client sends 256 MiB to our server over IPv6, then over
/// IPv4 to the same listener; we hash what arrives and compare with the
/// kernel's digest of what it sent. Goodputs are printed side by side.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn kernel_client_to_our_server_over_ipv6() {
    xdptcp_tools::topology::require_root();
    let (t, ours) = ipv6_topology("s6", 240);
    let t2 = t.clone();
    std::thread::spawn(move || {
        let (mut iface, mut dev) = stack_serving(&t2, Config::default(), Some(ours));
        iface.listen(5002, None, 8).unwrap();
        let mut rate = |to: SocketAddr| {
            let client = kernel_sender(&t2, to, 256);
            let start = StdInstant::now();
            let got = serve_kernel_senders(&mut iface, &mut dev, 5002, 1);
            let secs = start.elapsed().as_secs_f64();
            let (peer, digest, n) = &got[0];
            assert_eq!(*n, 256 << 20);
            assert_eq!(peer.is_ipv6(), to.is_ipv6(), "{peer}");
            assert_eq!(*digest, sender_digest(client));
            (256 << 20) as f64 * 8.0 / secs / 1e6
        };
        let v6 = rate(SocketAddr::new(ours.into(), 5002));
        let v4 = rate(SocketAddr::new(t2.our_ip().into(), 5002));
        eprintln!(
            "kernel client -> our server, 256 MiB: IPv6 {v6:.0} Mbit/s, IPv4 {v4:.0} Mbit/s ({:.2})",
            v6 / v4
        );
    })
    .join()
    .unwrap();
}

/// Dual stack on one interface: an IPv4 and an IPv6 kernel client send
/// 32 MiB each to the same port of our server at the same time; both
/// arrive whole, each on a connection of its own family.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn ipv4_and_ipv6_connections_side_by_side_on_one_interface() {
    xdptcp_tools::topology::require_root();
    let (t, ours) = ipv6_topology("d6", 245);
    let t2 = t.clone();
    std::thread::spawn(move || {
        let (mut iface, mut dev) = stack_serving(&t2, Config::default(), Some(ours));
        iface.listen(5003, None, 8).unwrap();
        let v4 = kernel_sender(&t2, SocketAddr::new(t2.our_ip().into(), 5003), 32);
        let v6 = kernel_sender(&t2, SocketAddr::new(ours.into(), 5003), 32);
        let got = serve_kernel_senders(&mut iface, &mut dev, 5003, 2);
        let (d4, d6) = (sender_digest(v4), sender_digest(v6));
        let of = |v6: bool| got.iter().find(|g| g.0.is_ipv6() == v6).expect("one each");
        assert_eq!((of(false).1.as_str(), of(false).2), (d4.as_str(), 32 << 20));
        assert_eq!((of(true).1.as_str(), of(true).2), (d6.as_str(), 32 << 20));
    })
    .join()
    .unwrap();
}

/// Path MTU discovery over IPv6: a kernel router between us and the peer
/// has a 1280-byte link towards the peer, and answers our full-sized
/// packets with packet-too-big; the connection cuts its segments to the
/// path (MSS 1280 - 60 - 12 = 1208) and 8 MiB arrive whole.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn packet_too_big_from_a_kernel_router_cuts_our_ipv6_segments() {
    xdptcp_tools::topology::require_root();
    let spec = Spec {
        subnet: 246,
        middle: true,
        far_mtu: Some(1280),
        ipv6: true,
        ..Spec::default()
    };
    let t = std::sync::Arc::new(Topology::create_spec("m6", spec).expect("topology"));
    let ours = t.our_ip6();
    let t2 = t.clone();
    std::thread::spawn(move || {
        let (mut iface, mut dev) = stack_serving(&t2, Config::default(), Some(ours));
        iface.set_ipv6_gateway(t2.gateway6());
        let to = SocketAddr::new(t2.peer_ip6().into(), 5001);
        let (_, mss) = send_to_kernel(&t2, &mut iface, &mut dev, to, 8 << 20);
        assert!(iface.stats().icmp_frag_needed >= 1, "{:?}", iface.stats());
        assert_eq!(mss, 1280 - 60 - 12, "{:?}", iface.stats());
    })
    .join()
    .unwrap();
}

/// The XDP program with an IPv6 address of ours: the kernel's own IPv6
/// address on the same interface still answers ping -6 from the peer,
/// and the peer's neighbour solicitation for our address (to a multicast
/// group the kernel listens on too) reaches our socket, a valid Neighbor
/// Discovery message by our parsers (hop limit 255, our target).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn ipv6_for_our_address_comes_to_us_and_the_kernel_keeps_its_own() {
    use xdptcp::wire::ethernet::EthernetFrame;
    use xdptcp::wire::icmpv6::Icmpv6;
    use xdptcp::wire::ipv6::Ipv6Packet;
    xdptcp_tools::topology::require_root();
    let (t, ours) = ipv6_topology("v6", 216);
    let (kernel_v6, ours_v6) = (format!("fd00:{}::1", t.subnet), ours.to_string());
    t.add_kernel_address(false, &format!("{kernel_v6}/64"))
        .unwrap();
    let t2 = t.clone();
    std::thread::spawn(move || {
        // The device alone: what reaches it is what the filter took.
        let (_, mut dev) = stack_serving(&t2, Config::default(), Some(ours));
        let ping = |dst: &str| {
            t2.peer_cmd(&["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", dst])
                .stdout(Stdio::null())
                .spawn()
                .expect("ping")
        };
        let mut kernel = ping(&kernel_v6);
        let mut to_us = ping(&ours_v6);
        let start = StdInstant::now();
        let mut solicited = 0;
        let mut other = 0;
        let (mut kernel_ok, mut to_us_done) = (None, false);
        while (kernel_ok.is_none() || !to_us_done) && start.elapsed() < Duration::from_secs(20) {
            dev.receive(now(start), 64, &mut |f| {
                let ns = EthernetFrame::parse(f)
                    .ok()
                    .filter(|e| e.ethertype == 0x86dd)
                    .and_then(|e| Ipv6Packet::parse(e.payload).ok())
                    .filter(|p| p.hop_limit == 255 && p.next_header == 58)
                    .and_then(|p| Icmpv6::parse(p.payload, p.src, p.dst).ok());
                match ns {
                    Some(Icmpv6::NeighborSolicit {
                        target,
                        source_lladdr,
                    }) => {
                        assert_eq!(target, ours);
                        assert!(source_lladdr.is_some(), "the peer's MAC");
                        solicited += 1;
                    }
                    _ => other += 1,
                }
            });
            if kernel_ok.is_none() {
                kernel_ok = kernel.try_wait().unwrap().map(|s| s.success());
            }
            to_us_done |= to_us.try_wait().unwrap().is_some();
            dev.wait(1);
        }
        for mut p in [kernel, to_us] {
            let _ = p.kill();
            let _ = p.wait();
        }
        assert_eq!(kernel_ok, Some(true), "ping -6 of the kernel's own address");
        assert!(solicited >= 1, "no solicitation for our address reached us");
        assert_eq!(other, 0, "only what we serve reaches us");
    })
    .join()
    .unwrap();
}

/// `ping -6` of our stack's IPv6 address from the kernel peer: the
/// kernel solicits our MAC (Neighbor Discovery), our stack advertises it
/// and answers the echo requests.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn kernel_pings_our_stack_over_ipv6() {
    xdptcp_tools::topology::require_root();
    let (t, ours) = ipv6_topology("p6", 220);
    let ours_v6 = ours.to_string();
    let t2 = t.clone();
    std::thread::spawn(move || {
        let (mut iface, mut dev) = stack_serving(&t2, Config::default(), Some(ours));
        let start = StdInstant::now();
        let mut ping = t2
            .peer_cmd(&["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", &ours_v6])
            .stdout(Stdio::null())
            .spawn()
            .expect("ping");
        let mut status = None;
        while status.is_none() && start.elapsed() < Duration::from_secs(20) {
            iface.poll(now(start), &mut dev);
            status = ping.try_wait().unwrap();
            dev.wait(1);
        }
        let _ = ping.kill();
        let _ = ping.wait();
        assert!(
            status.is_some_and(|s| s.success()),
            "the kernel's ping -6 got no replies: {:?}",
            iface.stats()
        );
        assert!(
            iface.stats().icmpv6_echo_answered >= 3,
            "{:?}",
            iface.stats()
        );
        assert!(
            iface.stats().nd_solicitations_answered >= 1,
            "{:?}",
            iface.stats()
        );
    })
    .join()
    .unwrap();
}
