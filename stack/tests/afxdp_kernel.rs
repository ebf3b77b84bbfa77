//! Our stack on a real AF_XDP socket, talking to the Linux kernel: two
//! network namespaces joined by a veth pair; ours has no kernel address
//! (our stack owns 10.x.0.1), the kernel peer has 10.x.0.2. Needs root:
//! without it each test says loudly that it did not run (CI runs as root).

use sha2::{Digest, Sha256};
use std::io::{BufRead, Read};
use std::net::SocketAddrV4;
use std::process::Stdio;
use std::time::{Duration, Instant as StdInstant};
use xdptcp::device::afxdp::{AfXdp, AfXdpConfig};
use xdptcp::iface::{IfaceConfig, Interface, RxChecksum};
use xdptcp::tcp::{Config, State, TcpError};
use xdptcp::wire::ethernet::MacAddr;
use xdptcp_tools::topology::{Spec, Topology};

mod kernel_peer;
use kernel_peer::{now, send_and_read_reply, stack_serving, start_server};

fn stack(t: &Topology) -> (Interface, AfXdp) {
    stack_with(t, Config::default())
}

fn stack_with(t: &Topology, tcp: Config) -> (Interface, AfXdp) {
    stack_serving(t, tcp, None)
}

/// A kernel client (python3 in the peer's namespace) that connects to our
/// `port`, sends `mib` MiB of a pattern, waits for our FIN and prints the
/// SHA-256 of what it sent.
fn kernel_sender(t: &Topology, port: u16, mib: usize) -> std::process::Child {
    t.peer_cmd(&[
        "python3",
        "-c",
        &format!(
            "import socket,hashlib\n\
             d=bytes((i*13+i//977)%256 for i in range(1<<20))\n\
             h=hashlib.sha256()\n\
             s=socket.create_connection(('{}',{port}))\n\
             for _ in range({mib}):\n  s.sendall(d);h.update(d)\n\
             s.shutdown(socket.SHUT_WR)\n\
             while s.recv(4096): pass\n\
             print(h.hexdigest(),flush=True)",
            t.our_ip(),
        ),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("python3 client")
}

#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn kernel_pings_our_stack() {
    xdptcp_tools::topology::require_root();
    let t = Topology::create("p", 211, false).expect("topology");
    // The test body runs on its own thread so setns does not leak.
    let t = std::sync::Arc::new(t);
    let t2 = t.clone();
    std::thread::spawn(move || {
        let (mut iface, mut dev) = stack(&t2);
        let start = StdInstant::now();
        let mut ping = t2
            .peer_cmd(&[
                "ping",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                &t2.our_ip().to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("ping");
        let status = loop {
            iface.poll(now(start), &mut dev);
            if let Some(s) = ping.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "ping hangs");
            dev.wait(1);
        };
        assert!(
            status.success(),
            "the kernel's ping got no replies: {:?}",
            iface.stats()
        );
        assert!(iface.stats().icmp_echo_answered >= 3, "{:?}", iface.stats());
        assert!(
            iface.stats().arp_requests_answered >= 1,
            "{:?}",
            iface.stats()
        );
    })
    .join()
    .unwrap();
}

/// Our client sends 256 MiB to a kernel TCP server (python3's socket module) and
/// reads back the SHA-256 the kernel side computed.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn our_client_to_kernel_server() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("c", 212, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        let size: usize = 256 << 20;
        // Connect only once the kernel side listens.
        let (mut server, mut server_out) = start_server(
            &t2,
            "import socket,hashlib,sys\n\
                 s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('0.0.0.0',5001));s.listen();print('ready',flush=True)\n\
                 c,_=s.accept();h=hashlib.sha256();n=0\n\
                 while True:\n  b=c.recv(1<<20)\n  if not b: break\n  h.update(b);n+=len(b)\n\
                 c.sendall(h.hexdigest().encode());c.close();print(n,flush=True)",
        );
        let (mut iface, mut dev) = stack(&t2);
        let start = StdInstant::now();
        let h = iface
            .connect(SocketAddrV4::new(t2.peer_ip(), 5001), None, now(start))
            .unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        let (reply, _) = send_and_read_reply(&mut iface, &mut dev, h, &data, start);
        let secs = start.elapsed().as_secs_f64();
        let want = format!("{:x}", Sha256::digest(&data));
        assert_eq!(
            String::from_utf8_lossy(&reply),
            want,
            "the kernel received exactly our bytes"
        );
        let mut rest = String::new();
        server_out.read_to_string(&mut rest).unwrap();
        assert!(server.wait().unwrap().success());
        assert_eq!(
            rest.trim(),
            size.to_string(),
            "the kernel counted our bytes"
        );
        eprintln!(
            "our client -> kernel server: {} MiB in {secs:.2} s ({:.0} Mbit/s)",
            size >> 20,
            size as f64 * 8.0 / secs / 1e6
        );
    })
    .join()
    .unwrap();
}

/// A kernel client (python3) sends 256 MiB to our server; we hash what arrives
/// and compare with the digest the kernel side computed of what it sent.
/// Afterwards every UMEM frame is back where it started.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn kernel_client_to_our_server() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("s", 213, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        let size: usize = 256 << 20;
        let (mut iface, mut dev) = stack(&t2);
        let free_at_start = dev.free_frames();
        iface.listen(5002, None, 8).unwrap();
        let client = kernel_sender(&t2, 5002, size >> 20);
        let start = StdInstant::now();
        let mut conn = None;
        let (mut got, mut hash) = (0usize, Sha256::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            iface.poll(now(start), &mut dev);
            if conn.is_none() {
                conn = iface.accept(5002).unwrap();
            }
            if let Some(c) = conn.and_then(|h| iface.tcp(h)) {
                match c.recv(&mut buf) {
                    Ok(0) => {
                        c.close();
                        if matches!(c.state(), State::LastAck | State::Closed) && got == size {
                            // Let the FIN go out and be acknowledged.
                            if c.state() == State::Closed {
                                break;
                            }
                        }
                    }
                    Ok(n) => {
                        hash.update(&buf[..n]);
                        got += n;
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(e) => panic!("recv after {got} bytes: {e}"),
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "stuck at {got} bytes"
            );
        }
        let secs = start.elapsed().as_secs_f64();
        let out = client.wait_with_output().unwrap();
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(got, size);
        assert_eq!(
            format!("{:x}", hash.finalize()),
            theirs,
            "we received exactly the kernel's bytes"
        );
        // Let the last transmissions complete, then count frames.
        for _ in 0..100 {
            iface.poll(now(start), &mut dev);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            dev.free_frames(),
            free_at_start,
            "every UMEM frame came back"
        );
        eprintln!(
            "kernel client -> our server: {} MiB in {secs:.2} s ({:.0} Mbit/s)",
            size >> 20,
            size as f64 * 8.0 / secs / 1e6
        );
    })
    .join()
    .unwrap();
}

/// Jumbo frames (MTU 9000) over 2 KiB UMEM frames: each of our full-sized
/// segments is built in place across a run of five adjacent frames and
/// leaves as five pieces (one copy of the payload, no scratch buffer).
/// 32 MiB to a kernel server, its digest checked; then every frame, runs
/// included, is back where it started.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn jumbo_frames_are_built_in_place_across_runs_of_frames() {
    xdptcp_tools::topology::require_root();
    let spec = Spec {
        subnet: 239,
        mtu: 9000,
        ..Default::default()
    };
    let t = std::sync::Arc::new(Topology::create_spec("jr", spec).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        let size: usize = 32 << 20;
        let (mut server, mut server_out) = start_server(
            &t2,
            "import socket,hashlib\n\
                 s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('0.0.0.0',5011));s.listen();print('ready',flush=True)\n\
                 c,_=s.accept();h=hashlib.sha256()\n\
                 while True:\n  b=c.recv(1<<20)\n  if not b: break\n  h.update(b)\n\
                 c.sendall(h.hexdigest().encode());c.close()",
        );
        let tcp = Config {
            mss: 9000 - 40,
            ..Config::default()
        };
        let (mut iface, mut dev) = stack_with(&t2, tcp);
        let start = StdInstant::now();
        quiesce(&mut iface, &mut dev, start);
        let free_at_start = dev.free_frames();
        assert_eq!(free_at_start + dev.fill_frames(), dev.total_frames());
        let h = iface
            .connect(SocketAddrV4::new(t2.peer_ip(), 5011), None, now(start))
            .unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i * 11 + i / 8191) as u8).collect();
        let (reply, mss) = send_and_read_reply(&mut iface, &mut dev, h, &data, start);
        assert_eq!(mss, 8948, "jumbo segments (9000 - 40 - 12 of timestamps)");
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!("{:x}", Sha256::digest(&data)),
            "the kernel received exactly our bytes"
        );
        assert!(server.wait().unwrap().success());
        let mut rest = String::new();
        server_out.read_to_string(&mut rest).unwrap();
        iface.release(h);
        quiesce(&mut iface, &mut dev, start);
        assert_eq!(
            dev.free_frames(),
            free_at_start,
            "frames leaked or duplicated"
        );
        assert_eq!(dev.free_frames() + dev.fill_frames(), dev.total_frames());
    })
    .join()
    .unwrap();
}

/// The kernel sends 64 MiB to a reader that is slow for the first 8 MiB
/// (4 KiB per millisecond, behind an 8 MiB window), then fast. In-order
/// payload stays in its UMEM frame until read; the slow reader takes the
/// stack to its budget of kept frames and no further (the rest is copied).
/// Meanwhile the core stalls now and then (20 ms without polling, as a
/// preempted core would), so the kernel's RX ring backs up with frames
/// too: the kernel must still never find the fill ring empty. Once all is
/// read, every frame is back where it started and the digest matches.
///
/// A segment lost before our socket (on a loaded machine the veth's
/// backlog drops some) puts what follows in the receive ring, behind the
/// hole, and a slow reader never drains it, so nothing is kept again: such
/// a run tests nothing of keeping and is made again, up to three times
/// (once in CI the budget was not reached after 51 segments that way).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_slow_reader_keeps_frames_in_place_without_starving_the_fill_ring() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("rp", 226, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        let size: usize = 64 << 20;
        let tcp = Config {
            recv_buffer: 8 << 20,
            autotune: false,
            ..Config::default()
        };
        let (mut iface, mut dev) = stack_with(&t2, tcp);
        let start = StdInstant::now();
        iface.listen(5010, None, 4).unwrap();
        quiesce(&mut iface, &mut dev, start);
        let free_at_start = dev.free_frames();
        let mut attempt = 1;
        let (counters, most_kept) = loop {
            let (c, most_kept) = slow_read(&t2, &mut iface, &mut dev, size, start);
            let disturbed = most_kept < dev.keep_budget() && c.out_of_order_segments > 0;
            if !disturbed || attempt == 3 {
                break (c, most_kept);
            }
            eprintln!(
                "attempt {attempt}: {} segments out of order before the budget was reached (loss outside our stack); again",
                c.out_of_order_segments
            );
            attempt += 1;
        };
        let st = dev.kernel_stats().expect("XDP_STATISTICS");
        let in_place = counters.bytes_received_in_place;
        eprintln!(
            "slow reader: {in_place} of {size} bytes read in place; at most {most_kept} frames kept (budget {}); {} segments out of order; kernel: {st:?}",
            dev.keep_budget(),
            counters.out_of_order_segments
        );
        assert_eq!(most_kept, dev.keep_budget(), "the slow reader reached the budget");
        assert!(in_place > 0 && in_place < size as u64, "both paths used");
        assert_eq!(st.rx_fill_ring_empty_descs, 0, "the fill ring never ran dry");
        assert_eq!(dev.kept_frames(), 0, "every kept frame came home");
        assert_eq!(dev.free_frames(), free_at_start, "frames leaked or duplicated");
        assert_eq!(dev.free_frames() + dev.fill_frames(), dev.total_frames());
    })
    .join()
    .unwrap();
}

/// One transfer of `size` bytes from a kernel sender to our listener on
/// 5010, read slowly for the first 8 MiB (and until the budget of kept
/// frames was reached), then fast; checks the digest and waits for our
/// FIN to be acknowledged. Returns the connection's counters and the most
/// frames kept at once.
fn slow_read(
    t: &Topology,
    iface: &mut Interface,
    dev: &mut AfXdp,
    size: usize,
    start: StdInstant,
) -> (xdptcp::tcp::stats::Counters, usize) {
    let slow_until = 8 << 20;
    let client = kernel_sender(t, 5010, size >> 20);
    let (mut conn, mut got, mut hash) = (None, 0usize, Sha256::new());
    let mut buf = vec![0u8; 1 << 16];
    let mut most_kept = 0usize;
    let mut slow_tick = StdInstant::now();
    let mut stalled: Option<StdInstant> = None;
    let began = StdInstant::now();
    let counters = loop {
        iface.poll(now(start), dev);
        most_kept = most_kept.max(dev.kept_frames());
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "stuck at {got} bytes"
        );
        if conn.is_none() {
            conn = iface.accept(5010).unwrap();
        }
        let Some(c) = conn.and_then(|h| iface.tcp(h)) else {
            continue;
        };
        // Slow until 8 MiB are read and the budget was reached once: a
        // kernel sender slowed by a loaded machine gets there later (if
        // keeping were broken it never would, and the caller's assertion
        // fails).
        let want = if got < slow_until || most_kept < dev.keep_budget() {
            let due = stalled.is_none_or(|t| t.elapsed() > Duration::from_millis(100));
            if dev.kept_frames() == dev.keep_budget() && due {
                std::thread::sleep(Duration::from_millis(20));
                stalled = Some(StdInstant::now());
            }
            if slow_tick.elapsed() < Duration::from_millis(1) {
                0
            } else {
                slow_tick = StdInstant::now();
                4 << 10
            }
        } else {
            buf.len()
        };
        if want > 0 {
            match c.recv(&mut buf[..want]) {
                Ok(0) => {
                    c.close();
                    break c.snapshot().counters;
                }
                Ok(n) => {
                    hash.update(&buf[..n]);
                    got += n;
                }
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("recv after {got} bytes: {e}"),
            }
        }
    };
    // Our FIN out and acknowledged: the client waits for it.
    let h = conn.unwrap();
    while iface.tcp(h).is_some_and(|c| c.state() != State::Closed) {
        iface.poll(now(start), dev);
        assert!(began.elapsed() < Duration::from_secs(60), "close hangs");
    }
    let out = client.wait_with_output().unwrap();
    let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(got, size);
    assert_eq!(format!("{:x}", hash.finalize()), theirs, "byte-exact");
    iface.release(h);
    quiesce(iface, dev, start);
    (counters, most_kept)
}

/// 100 connections at once to a kernel server (a python3 thread per
/// connection), each sending its own 1 MiB and checking the digest the
/// kernel side sends back.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn hundred_concurrent_connections_to_a_kernel_server() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("m", 214, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        const CONNS: usize = 100;
        const EACH: usize = 1 << 20;
        // Connect only once the kernel side listens.
        let (mut server, mut out) = start_server(&t2, "import socket,hashlib,threading\n\
                 s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('0.0.0.0',5003));s.listen(256);print('ready',flush=True)\n\
                 def serve(c):\n  h=hashlib.sha256()\n  while True:\n    b=c.recv(1<<16)\n    if not b: break\n    h.update(b)\n  c.sendall(h.hexdigest().encode());c.close()\n\
                 ts=[]\n\
                 for _ in range(100):\n  c,_=s.accept();th=threading.Thread(target=serve,args=(c,));th.start();ts.append(th)\n\
                 for th in ts: th.join()\n\
                 print('done',flush=True)");
        let (mut iface, mut dev) = stack(&t2);
        let start = StdInstant::now();
        let data = |k: usize| -> Vec<u8> { (0..EACH).map(|i| (i * (k + 3) + k) as u8).collect() };
        let mut conns: Vec<_> = (0..CONNS)
            .map(|k| {
                let h = iface
                    .connect(SocketAddrV4::new(t2.peer_ip(), 5003), None, now(start))
                    .unwrap();
                (h, data(k), 0usize, false, Vec::new())
            })
            .collect();
        let mut done = 0;
        let mut buf = [0u8; 256];
        while done < CONNS {
            iface.poll(now(start), &mut dev);
            done = 0;
            for (h, d, sent, closed, reply) in conns.iter_mut() {
                let c = iface.tcp(*h).unwrap();
                assert!(c.error().is_none(), "{:?}", c.error());
                if c.state() != State::SynSent && !*closed {
                    while *sent < d.len() {
                        match c.send(&d[*sent..]) {
                            Ok(n) if n > 0 => *sent += n,
                            _ => break,
                        }
                    }
                    if *sent == d.len() {
                        c.close();
                        *closed = true;
                    }
                }
                if let Ok(n) = c.recv(&mut buf) {
                    reply.extend_from_slice(&buf[..n]);
                }
                if c.at_eof() {
                    done += 1;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{done} of {CONNS} done");
        }
        for (k, (_, d, _, _, reply)) in conns.iter().enumerate() {
            assert_eq!(
                String::from_utf8_lossy(reply),
                format!("{:x}", Sha256::digest(d)),
                "connection {k}"
            );
        }
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done");
        let _ = server.wait();
        eprintln!("100 connections x 1 MiB in {:.2} s", start.elapsed().as_secs_f64());
    })
    .join()
    .unwrap();
}

/// The kernel peer resets the connection mid-transfer: our side reports
/// the reset, and the interface keeps serving (a second connection works).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn kernel_reset_mid_transfer_is_reported_and_service_continues() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("r", 215, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        // Reads 1 MiB, then closes with unread data pending: the kernel
        // answers with RST (RFC 9293 3.6 / Linux). Then serves one more
        // connection normally.
        // Connect only once the kernel side listens.
        let (mut server, _out) = start_server(
            &t2,
            "import socket,struct\n\
                 s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('0.0.0.0',5004));s.listen();print('ready',flush=True)\n\
                 c,_=s.accept();n=0\n\
                 while n<(1<<20): n+=len(c.recv(1<<16))\n\
                 c.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0));c.close()\n\
                 c,_=s.accept();c.sendall(b'second');c.close();print('done',flush=True)",
        );
        let (mut iface, mut dev) = stack(&t2);
        let start = StdInstant::now();
        let peer = SocketAddrV4::new(t2.peer_ip(), 5004);
        let h = iface.connect(peer, None, now(start)).unwrap();
        let chunk = vec![5u8; 1 << 16];
        let err = loop {
            iface.poll(now(start), &mut dev);
            let c = iface.tcp(h).unwrap();
            if let Some(e) = c.error() {
                break e;
            }
            if c.state() == State::Established {
                let _ = c.send(&chunk);
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no reset seen");
        };
        assert_eq!(err, xdptcp::tcp::ConnError::Reset);
        iface.release(h);
        let h2 = iface.connect(peer, None, now(start)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            iface.poll(now(start), &mut dev);
            let c = iface.tcp(h2).unwrap();
            if let Ok(n) = c.recv(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            if c.at_eof() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "second connection stuck"
            );
        }
        assert_eq!(got, b"second");
        let _ = server.wait();
    })
    .join()
    .unwrap();
}

/// A missing interface is an error that says what is wrong, not a panic
/// (no root needed: the name lookup fails first).
#[test]
fn opening_a_missing_interface_explains_itself() {
    let e = AfXdp::open(AfXdpConfig::new("xdptcp-nope0"))
        .err()
        .expect("no such interface");
    let msg = e.to_string();
    assert!(msg.contains("no network interface 'xdptcp-nope0'"), "{msg}");
}

/// Polls until nothing moves for 200 ms, so frames in flight come home.
fn quiesce(iface: &mut Interface, dev: &mut AfXdp, start: StdInstant) {
    let mut idle_since = StdInstant::now();
    while idle_since.elapsed() < Duration::from_millis(200) {
        if iface.poll(now(start), dev) {
            idle_since = StdInstant::now();
        }
    }
}

/// A million frames through the socket (a kernel sender's segments in,
/// our ACKs out), then every UMEM frame is back where it started: the
/// free list holds what it held after `open`, the rest sit in the fill ring.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_million_frames_leave_every_umem_frame_accounted_for() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("s", 217, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        let (mut iface, mut dev) = stack(&t2);
        let start = StdInstant::now();
        iface.listen(5006, None, 4).unwrap();
        quiesce(&mut iface, &mut dev, start);
        let free_at_start = dev.free_frames();
        assert_eq!(free_at_start + dev.fill_frames(), dev.total_frames());
        // 1.6 GB in MSS-sized segments: over a million frames with the ACKs.
        let mut sender = t2
            .peer_cmd(&[
                "python3",
                "-c",
                &format!(
                    "import socket\nc=socket.create_connection(('{}',5006))\nb=bytes(1<<20)\n\
                     for _ in range(1600): c.sendall(b)\nc.close()",
                    t2.our_ip()
                ),
            ])
            .spawn()
            .unwrap();
        let mut conn = None;
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        loop {
            iface.poll(now(start), &mut dev);
            if conn.is_none() {
                conn = iface.accept(5006).unwrap();
            }
            if let Some(c) = conn.and_then(|h| iface.tcp(h)) {
                while let Ok(n) = c.recv(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got += n as u64;
                }
                if c.at_eof() {
                    c.close();
                    break;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(120), "soak stuck at {got} bytes");
        }
        assert!(sender.wait().unwrap().success());
        iface.release(conn.unwrap());
        quiesce(&mut iface, &mut dev, start);
        let frames = dev.rx_frames + dev.tx_frames;
        eprintln!(
            "soak: {got} bytes, {} frames in + {} out in {:.1} s; free frames {} (at start {free_at_start}), fill ring {}",
            dev.rx_frames,
            dev.tx_frames,
            start.elapsed().as_secs_f64(),
            dev.free_frames(),
            dev.fill_frames()
        );
        assert_eq!(got, 1600 << 20);
        assert!(frames >= 1_000_000, "only {frames} frames");
        assert_eq!(dev.free_frames(), free_at_start, "frames leaked or duplicated");
        assert_eq!(dev.free_frames() + dev.fill_frames(), dev.total_frames());
    })
    .join()
    .unwrap();
}

/// The kernel peer vanishes mid-transfer (its second address, a /32, is
/// removed: no FIN, no RST, nothing). Our connection to it times out with
/// an error, is freed with its frames, and a transfer to the peer's main
/// address, running at the same time, completes with the right digest.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_vanished_peer_times_out_and_the_other_flows_go_on() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("v", 218, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        let second = std::net::Ipv4Addr::new(10, t2.subnet, 0, 3);
        // A /32 of its own: removing it leaves the /24 and its route alone.
        let st = t2
            .peer_cmd(&["ip", "addr", "add", &format!("{second}/32"), "dev", &t2.peer_dev])
            .status()
            .unwrap();
        assert!(st.success());
        // A sink that digests what it gets, one connection per address.
        let (mut server, mut out) = start_server(
            &t2,
            "import socket,hashlib,threading\n\
             s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',5007));s.listen();print('ready',flush=True)\n\
             def serve(c):\n  h=hashlib.sha256()\n  while True:\n    b=c.recv(1<<16)\n    if not b: break\n    h.update(b)\n  print(h.hexdigest(),flush=True);c.close()\n\
             while True:\n  c,_=s.accept();threading.Thread(target=serve,args=(c,),daemon=True).start()",
        );
        let (mut iface, mut dev) = stack(&t2);
        let start = StdInstant::now();
        let quick = Config {
            min_rto: Duration::from_millis(200),
            max_retries: 4,
            ..Config::default()
        };
        let doomed = iface
            .connect(SocketAddrV4::new(second, 5007), Some(quick.clone()), now(start))
            .unwrap();
        let steady = iface
            .connect(SocketAddrV4::new(t2.peer_ip(), 5007), Some(quick), now(start))
            .unwrap();
        let payload: Vec<u8> = (0..64u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
        let (mut doomed_sent, mut steady_sent, mut vanished) = (0usize, 0usize, false);
        let mut doomed_error = None;
        loop {
            iface.poll(now(start), &mut dev);
            if let Some(c) = iface.tcp(doomed) {
                if let Some(e) = c.error() {
                    doomed_error.get_or_insert(e);
                } else if c.state() == State::Established {
                    doomed_sent += c.send(&payload[doomed_sent % (32 << 20)..][..1 << 16]).unwrap_or(0);
                }
            }
            if !vanished && doomed_sent > 4 << 20 {
                let st = t2
                    .peer_cmd(&["ip", "addr", "del", &format!("{second}/32"), "dev", &t2.peer_dev])
                    .status()
                    .unwrap();
                assert!(st.success());
                vanished = true;
            }
            let c = iface.tcp(steady).unwrap();
            assert!(c.error().is_none(), "{:?}", c.error());
            if c.state() == State::Established && steady_sent < payload.len() {
                steady_sent += c.send(&payload[steady_sent..]).unwrap_or(0);
                if steady_sent == payload.len() {
                    c.close();
                }
            }
            let steady_done = matches!(c.state(), State::TimeWait | State::Closed);
            if doomed_error.is_some() && steady_done {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "doomed {doomed_error:?}, steady sent {steady_sent}"
            );
        }
        assert_eq!(doomed_error, Some(xdptcp::tcp::ConnError::TimedOut));
        let before = iface.connection_count();
        iface.release(doomed);
        iface.poll(now(start), &mut dev);
        assert_eq!(iface.connection_count(), before - 1, "the dead connection was freed");
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("{:x}", Sha256::digest(&payload)));
        let free_at_start = dev.total_frames() / 2;
        quiesce(&mut iface, &mut dev, start);
        assert_eq!(dev.free_frames(), free_at_start, "frames held by the dead connection");
        eprintln!(
            "vanished peer reported as {:?} after {:.1} s; the other 64 MiB flow completed",
            doomed_error.unwrap(),
            start.elapsed().as_secs_f64()
        );
        let _ = server.kill();
    })
    .join()
    .unwrap();
}

/// A destination outside our subnet goes through the default gateway: the
/// kernel peer has 192.168.<subnet>.1 on its loopback and is our gateway.
/// Without a gateway, connecting there fails at once with "no route".
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn off_subnet_destinations_go_through_the_gateway() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("g", 224, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        let far = std::net::Ipv4Addr::new(192, 168, t2.subnet, 1);
        let st = t2
            .peer_cmd(&["ip", "addr", "add", &format!("{far}/32"), "dev", "lo"])
            .status()
            .unwrap();
        assert!(st.success());
        let (_server, mut out) = start_server(
            &t2,
            &format!(
                "import socket\ns=socket.socket();s.bind(('{far}',5008));s.listen();print('ready',flush=True)\n\
                 c,a=s.accept();c.sendall(('hello from %s via gateway' % a[0]).encode());c.close();print('done',flush=True)"
            ),
        );
        let (mut iface, mut dev) = stack(&t2);
        let start = StdInstant::now();
        let dest = SocketAddrV4::new(far, 5008);
        let e = iface.connect(dest, None, now(start)).unwrap_err();
        assert_eq!(e, xdptcp::iface::IfaceError::NoRoute(far.into()));
        drop(iface);
        let mut iface = Interface::new(IfaceConfig {
            mac: MacAddr([0x02, 0, 0, 0, 0x10, t2.subnet]),
            ip: t2.our_ip(),
            prefix_len: 24,
            gateway: Some(t2.peer_ip()),
            isn_secret: [9; 16],
            tcp: Config::default(),            rx_checksum: RxChecksum::Verify,
        });
        let h = iface.connect(dest, None, now(start)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 128];
        loop {
            iface.poll(now(start), &mut dev);
            let c = iface.tcp(h).unwrap();
            assert!(c.error().is_none(), "{:?}", c.error());
            if let Ok(n) = c.recv(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            if c.at_eof() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no answer via the gateway");
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("hello from {} via gateway", t2.our_ip())
        );
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done");
    })
    .join()
    .unwrap();
}

/// One send call takes every frame queued. Copy mode sends 32 per
/// `sendto` unless the socket raises it (Linux 6.17): at 32 a sender that
/// queues more per loop keeps a standing queue in its TX ring (in bulk
/// about a hundred frames, which tripled the round trip).
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn one_send_call_takes_every_frame_queued() {
    use xdptcp::device::Device;
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("tb", 248, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        t2.enter_ours().unwrap();
        let mut dev = AfXdp::open(AfXdpConfig::new(&t2.dev)).unwrap_or_else(|e| panic!("{e}"));
        let mode = dev.mode();
        assert!(!mode.zero_copy, "veth has no zero-copy AF_XDP");
        // 200 broadcast frames of an unused EtherType: the peer's kernel
        // drops them.
        let mut frame = |b: &mut [u8]| {
            b[..6].fill(0xff);
            b[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
            b[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            b[14..60].fill(0);
            Some(60)
        };
        let sent = dev.transmit(xdptcp::time::Instant::ZERO, 200, &mut frame);
        assert_eq!(sent, 200);
        // Kernels before 6.17 keep their 32 per call.
        let expect_left = 200usize.saturating_sub(mode.tx_budget as usize);
        assert_eq!(
            dev.tx_queued(),
            expect_left,
            "{mode}: frames left in the TX ring after one send call"
        );
        if mode.tx_budget == 32 {
            eprintln!(
                "this kernel sends 32 frames per call (XDP_MAX_TX_SKB_BUDGET needs Linux 6.17)"
            );
        } else {
            assert_eq!(mode.tx_budget, 256, "the batch asked for");
        }
    })
    .join()
    .unwrap();
}

/// A second program on an interface that already has ours attached is
/// refused with advice, not a panic.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn a_busy_interface_is_refused_with_advice() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("b", 225, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        t2.enter_ours().unwrap();
        let first = AfXdp::open(AfXdpConfig::new(&t2.dev)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!first.zero_copy, "veth has no zero-copy AF_XDP");
        // A stopped stack's program may take a while to go: the second
        // waits for it (here half a second), then gives up.
        let cfg = AfXdpConfig {
            bind_timeout: Duration::from_millis(500),
            ..AfXdpConfig::new(&t2.dev)
        };
        let started = StdInstant::now();
        let e = AfXdp::open(cfg).err().expect("busy");
        let msg = e.to_string();
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "gave up at once"
        );
        assert!(
            msg.contains("another XDP program is attached, still after"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("ip link set dev {} xdp off", t2.dev)),
            "{msg}"
        );
    })
    .join()
    .unwrap();
}
