//! Our stack against the Linux kernel through the userspace impairment
//! forwarder (`xdptcp_tools::impair`, this kernel has no netem): a bridged
//! middle namespace drops 3 %, reorders 3 %, duplicates 1 % and corrupts
//! 0.1 % of the frames each way, and 64 MiB go each way at once, our
//! socket API on AF_XDP on one end, `std::net` on the kernel's. Both
//! digests must match. Needs root (CI runs as root).

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener as KernelListener, TcpStream as KernelStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use xdptcp::api::socket::{Stack, TcpListener, TcpStream};
use xdptcp::runtime::RuntimeConfig;
use xdptcp_tools::impair::{forward, Impairments, Stats};
use xdptcp_tools::topology::{Spec, Topology};

const SIZE: usize = 64 << 20;
const SINK_PORT: u16 = 7500;
const SOURCE_PORT: u16 = 7501;

fn data() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 13 + i / 8191) as u8).collect()
}

fn digest(r: &mut dyn Read) -> (usize, String) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                got += n;
            }
            Err(e) => panic!("read failed after {got} bytes: {e}"),
        }
    }
    (got, format!("{:x}", h.finalize()))
}

#[test]
#[ignore = "needs root (namespaces, AF_XDP, AF_PACKET): scripts/test.sh runs it as root"]
fn sixty_four_mib_each_way_through_loss_reordering_duplication_and_corruption() {
    xdptcp_tools::topology::require_root();
    let t = Arc::new(
        Topology::create_spec(
            "im",
            Spec {
                subnet: 250,
                middle: true,
                bridge: true,
                ..Default::default()
            },
        )
        .expect("topology"),
    );
    let imp = Impairments {
        loss: 0.03,
        reorder: 0.03,
        duplicate: 0.01,
        corrupt: 0.001,
        seed: 2026,
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let forwarder = {
        let (t, stop, stats) = (t.clone(), stop.clone(), stats.clone());
        std::thread::spawn(move || {
            t.enter_middle().unwrap();
            let (a, b) = t.middle_devs().unwrap();
            forward(&a, &b, imp, &stop, &stats)
        })
    };
    let want = format!("{:x}", Sha256::digest(data()));

    // The kernel's end: a sink for our 64 MiB and a source of its own.
    let kernel = {
        let t = t.clone();
        std::thread::spawn(move || {
            t.enter_peer().unwrap();
            let l = KernelListener::bind(("0.0.0.0", SINK_PORT)).unwrap();
            let source = std::thread::spawn({
                let t = t.clone();
                move || {
                    t.enter_peer().unwrap();
                    let to = SocketAddrV4::new(t.our_ip(), SOURCE_PORT);
                    let mut c = (0..200)
                        .find_map(|_| {
                            KernelStream::connect_timeout(&to.into(), Duration::from_secs(2))
                                .map_err(|_| std::thread::sleep(Duration::from_millis(100)))
                                .ok()
                        })
                        .expect("the kernel connects to our listener");
                    c.write_all(&data()).unwrap();
                    c.shutdown(std::net::Shutdown::Write).unwrap();
                    // Until we close: every byte was delivered.
                    let _ = c.read(&mut [0u8; 1]);
                }
            });
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            let sunk = digest(&mut s);
            source.join().unwrap();
            sunk
        })
    };

    // Our end, both ways at once. The stack lives until the kernel has
    // every byte (our last segments may still be in flight when our side
    // is done).
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let ours = {
        let t = t.clone();
        std::thread::spawn(move || {
            t.enter_ours().unwrap();
            let cfg = RuntimeConfig::for_interface(&t.dev, t.our_ip(), 24).unwrap();
            let stack = Stack::start(cfg).unwrap_or_else(|e| panic!("{e}"));
            let listener = TcpListener::bind(&stack, SOURCE_PORT).unwrap();
            std::thread::scope(|s| {
                let sender = s.spawn(|| {
                    let to = SocketAddrV4::new(t.peer_ip(), SINK_PORT);
                    let mut c =
                        TcpStream::connect_timeout(&stack, to, Duration::from_secs(10)).unwrap();
                    c.write_all(&data()).unwrap();
                    c.shutdown().unwrap();
                    c.close();
                });
                let (mut s_in, _) = listener.accept_timeout(Duration::from_secs(60)).unwrap();
                got_tx.send(digest(&mut s_in)).unwrap();
                sender.join().unwrap();
            });
            let _ = done_rx.recv_timeout(Duration::from_secs(300));
        })
    };
    let received = got_rx
        .recv_timeout(Duration::from_secs(300))
        .expect("our end received");
    let sunk = kernel.join().expect("the kernel's end");
    done_tx.send(()).unwrap();
    ours.join().expect("our end");
    stop.store(true, Relaxed);
    forwarder.join().unwrap().expect("the forwarder ran");
    println!("impairments: {stats}");
    assert_eq!(
        sunk,
        (SIZE, want.clone()),
        "what the kernel received from us"
    );
    assert_eq!(received, (SIZE, want), "what we received from the kernel");
    // The path really was that bad.
    for (what, n) in [
        ("dropped", &stats.dropped),
        ("reordered", &stats.reordered),
        ("duplicated", &stats.duplicated),
        ("corrupted", &stats.corrupted),
    ] {
        assert!(n.load(Relaxed) > 0, "nothing {what}: {stats}");
    }
}

/// Jumbo frames: a veth at MTU 9000 and 4 KiB UMEM frames, so each of our
/// full-sized segments leaves in three pieces (AF_XDP multi-buffer TX)
/// and the kernel's arrive in three (multi-buffer RX). 16 MiB each way,
/// with the MSS both ends agree on checked to be the jumbo one.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn jumbo_frames_go_both_ways_in_pieces() {
    xdptcp_tools::topology::require_root();
    const JUMBO: usize = 16 << 20;
    let t = Arc::new(
        Topology::create_spec(
            "jm",
            Spec {
                subnet: 253,
                mtu: 9000,
                ..Default::default()
            },
        )
        .expect("topology"),
    );
    let payload: Arc<Vec<u8>> = Arc::new((0..JUMBO).map(|i| (i * 17 + i / 4099) as u8).collect());
    let want = format!("{:x}", Sha256::digest(&payload[..]));
    let kernel = {
        let (t, payload) = (t.clone(), payload.clone());
        std::thread::spawn(move || {
            t.enter_peer().unwrap();
            let l = KernelListener::bind(("0.0.0.0", SINK_PORT)).unwrap();
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let sunk = digest(&mut s);
            let to = SocketAddrV4::new(t.our_ip(), SOURCE_PORT);
            let mut c = KernelStream::connect_timeout(&to.into(), Duration::from_secs(10))
                .expect("connect to us");
            c.write_all(&payload).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let _ = c.read(&mut [0u8; 1]);
            sunk
        })
    };
    t.enter_ours().unwrap();
    let mut cfg = RuntimeConfig::for_interface(&t.dev, t.our_ip(), 24).unwrap();
    cfg.afxdp.frame_size = 4096;
    let stack = Stack::start(cfg).unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind(&stack, SOURCE_PORT).unwrap();
    let mut c = TcpStream::connect_timeout(
        &stack,
        SocketAddrV4::new(t.peer_ip(), SINK_PORT),
        Duration::from_secs(10),
    )
    .unwrap();
    let mss = stack.runtime().snapshot(Duration::from_secs(2))[0]
        .connections
        .iter()
        .map(|c| c.tcp.mss)
        .max();
    // 9000 - 40 of headers - 12 of timestamp option.
    assert_eq!(mss, Some(8948), "the jumbo MSS, from the interface's MTU");
    c.write_all(&payload).unwrap();
    c.shutdown().unwrap();
    let (mut s_in, _) = listener.accept_timeout(Duration::from_secs(60)).unwrap();
    let received = digest(&mut s_in);
    drop(s_in);
    let sunk = kernel.join().expect("the kernel's end");
    assert_eq!(
        sunk,
        (JUMBO, want.clone()),
        "what the kernel received from us"
    );
    assert_eq!(received, (JUMBO, want), "what we received from the kernel");
}
