//! The socket API moves bytes between the application's thread and its
//! core in 64 KiB chunks; those chunks are recycled, not allocated per
//! chunk (it was one allocation, and one extra copy on receive, per
//! chunk). Counted with a counting allocator over a 64 MiB transfer each
//! way against the kernel. Needs root (CI runs as root).

#[path = "common/counting.rs"]
mod counting;

use counting::{ALLOCS, BIG, BIG_ALLOCS};
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use xdptcp::api::socket::{Stack, TcpStream};
use xdptcp::runtime::RuntimeConfig;
use xdptcp_tools::topology::Topology;

const BYTES: usize = 64 << 20;
const CHUNKS: usize = BYTES / (64 * 1024);

/// Allocations while `f` runs, all and those of at least `BIG` bytes
/// (every thread of the process counts).
fn allocations(f: impl FnOnce()) -> (usize, usize) {
    let before = (ALLOCS.load(Relaxed), BIG_ALLOCS.load(Relaxed));
    f();
    (
        ALLOCS.load(Relaxed) - before.0,
        BIG_ALLOCS.load(Relaxed) - before.1,
    )
}

#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn socket_api_chunks_are_recycled_not_allocated() {
    xdptcp_tools::topology::require_root();
    let t = std::sync::Arc::new(Topology::create("al", 209, false).expect("topology"));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let t2 = t.clone();
    // The kernel's side: swallows what one connection sends, then sends
    // as much back on it, in fixed buffers (it allocates nothing per byte).
    std::thread::spawn(move || {
        t2.enter_peer().unwrap();
        drop(t2);
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        port_tx.send(l.local_addr().unwrap().port()).unwrap();
        let (mut c, _) = l.accept().unwrap();
        let mut b = vec![0u8; 256 * 1024];
        let mut got = 0;
        while got < BYTES {
            got += c.read(&mut b).unwrap();
        }
        let mut sent = 0;
        while sent < BYTES {
            let n = (BYTES - sent).min(b.len());
            let mark = (sent / b.len()) as u8;
            b[..n].fill(mark);
            c.write_all(&b[..n]).unwrap();
            sent += n;
        }
    });
    let port = port_rx.recv().unwrap();
    t.enter_ours().unwrap();
    let cfg = RuntimeConfig::for_interface(&t.dev, t.our_ip(), 24).unwrap();
    let stack = Stack::start(cfg).unwrap_or_else(|e| panic!("{e}"));
    let mut s = TcpStream::connect(&stack, SocketAddrV4::new(t.peer_ip(), port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20)));
    let data = vec![0x5au8; 1 << 20];
    // Warm up: the pools and the connection's buffers reach their size.
    s.write_all(&data[..1 << 20]).unwrap();
    let sent = allocations(|| {
        for _ in 0..(BYTES - (2 << 20)) / data.len() {
            s.write_all(&data).unwrap();
        }
        s.write_all(&data[..1 << 20]).unwrap();
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    let mut read_until = |end: usize, got: &mut usize| {
        while *got < end {
            let n = s.read(&mut buf[..(end - *got).min(256 * 1024)]).unwrap();
            assert!(n > 0, "end of stream after {got} bytes");
            let block = 256 * 1024;
            for (i, b) in buf[..n].iter().enumerate() {
                let at = *got + i;
                assert_eq!(*b, (at / block) as u8, "byte {at}");
            }
            *got += n;
        }
    };
    // Warm up again: the received chunks' pool fills.
    read_until(8 << 20, &mut got);
    let received = allocations(|| read_until(BYTES, &mut got));
    let ((sent, sent_big), (received, received_big)) = (sent, received);
    println!(
        "{CHUNKS} chunks each way (less the warm-up): {sent} allocations writing \
         ({sent_big} of {BIG} bytes or more), {received} reading ({received_big})"
    );
    // Chunks (and the old per-piece copies) are the allocations of 4 KiB
    // and more: a few, not one per chunk. Before chunks were recycled it
    // was 88,801 allocations writing and 15,677 reading in all.
    assert!(
        sent_big < 64,
        "{sent_big} large allocations writing {CHUNKS} chunks"
    );
    assert!(
        received_big < 64,
        "{received_big} large allocations reading {CHUNKS} chunks"
    );
    // All allocations: fewer than one per chunk, and falling as the
    // transfer goes on (66, 42, 24, 14, 8 per 8 MiB in one run): the
    // timer wheel's slots (7 levels of 64) each allocate once, the first
    // time a timer lands in them, and the connection's buffers grow.
    assert!(sent < CHUNKS, "{sent} allocations writing {CHUNKS} chunks");
    assert!(
        received < CHUNKS,
        "{received} allocations reading {CHUNKS} chunks"
    );
    drop(s);
}
