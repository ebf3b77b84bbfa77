//! A million connections that our side closes first, each leaving
//! TIME-WAIT behind: the records are compact, capped (the oldest recycled
//! first), and the heap in use stays bounded by the cap, not by how many
//! connections came and went. Frames are injected; no network, no root.

mod common;
#[path = "common/counting.rs"]
mod counting;

use common::frames::*;
use counting::{rss_kib, LIVE};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use xdptcp::iface::Limits;
use xdptcp::tcp::{Config, Connection};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::{Flags, TcpHeader, TcpOptions, TcpSegment};

const CONNECTIONS: u32 = 1_000_000;
const BATCH: u32 = 1_000;
const CAP: usize = 10_000;
const PORT: u16 = 80;

/// The `id`th client: an address and port behind the peer.
fn client(id: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(0xc612_0000 + (id >> 14)),
        1024 + (id & 0x3fff) as u16,
    )
}

fn segment(src_port: u16, seq: u32, ack: u32, flags: Flags) -> TcpHeader {
    TcpHeader {
        src_port,
        dst_port: PORT,
        seq,
        ack,
        flags,
        window: 65_535,
        options: TcpOptions::default(),
    }
}

/// Our segments in `dev.tx`, by the client they go to (taken out).
fn sent(dev: &mut Inject) -> HashMap<(Ipv4Addr, u16), (u32, Flags)> {
    dev.tx
        .drain(..)
        .filter(|f| f.len() > 34 && f[23] == 6)
        .map(|f| {
            let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
            let s = TcpSegment::parse_unchecked(&f[34..]).unwrap();
            ((dst, s.dst_port), (s.seq, s.flags))
        })
        .collect()
}

#[test]
fn a_million_closes_leave_memory_bounded_by_the_time_wait_cap() {
    let (mut i, mut dev) = routed_iface([9; 16]);
    i.set_limits(Limits {
        max_time_wait: CAP,
        ..Limits::default()
    });
    // Small buffers: a batch of connections open at once stays light.
    let cfg = Config {
        send_buffer: 4096,
        recv_buffer: 4096,
        ..Config::default()
    };
    i.listen(PORT, Some(cfg), 2 * BATCH as usize).unwrap();
    let heap_at_start = LIVE.load(Relaxed);
    let mut heap_at_cap = 0;
    let mut now = Instant::from_millis(1);
    let peer_isn = 5000u32;
    for batch in 0..CONNECTIONS / BATCH {
        let ids = batch * BATCH..(batch + 1) * BATCH;
        for id in ids.clone() {
            let (ip, port) = client(id);
            dev.rx
                .push(frame_from(ip, &segment(port, peer_isn, 0, Flags::SYN), &[]));
        }
        while i.poll(now, &mut dev) {}
        let synacks = sent(&mut dev);
        for id in ids.clone() {
            let (ip, port) = client(id);
            let (iss, flags) = synacks[&(ip, port)];
            assert_eq!(flags, Flags::SYN | Flags::ACK);
            let ack = segment(port, peer_isn + 1, iss.wrapping_add(1), Flags::ACK);
            dev.rx.push(frame_from(ip, &ack, &[]));
        }
        while i.poll(now, &mut dev) {}
        // Our side closes first and lets go.
        while let Some(h) = i.accept(PORT).unwrap() {
            i.tcp(h).unwrap().close();
            i.release(h);
        }
        while i.poll(now, &mut dev) {}
        let fins = sent(&mut dev);
        for id in ids {
            let (ip, port) = client(id);
            let (seq, flags) = fins[&(ip, port)];
            assert!(flags.fin(), "{flags:?}");
            let fin = segment(
                port,
                peer_isn + 1,
                seq.wrapping_add(1),
                Flags::FIN | Flags::ACK,
            );
            dev.rx.push(frame_from(ip, &fin, &[]));
        }
        while i.poll(now, &mut dev) {}
        dev.tx.clear();
        assert_eq!(i.connection_count(), 0, "all in TIME-WAIT records");
        if (batch + 1) * BATCH == CAP as u32 {
            heap_at_cap = LIVE.load(Relaxed);
        }
        now += std::time::Duration::from_millis(1);
    }
    let timers_at_end = i.timer_count();
    // Timers the closed connections left in the wheel (their FINs'
    // retransmission timers) come up within a few seconds and go.
    for _ in 0..3000 {
        now += std::time::Duration::from_millis(1);
        while i.poll(now, &mut dev) {}
    }
    let heap_at_end = LIVE.load(Relaxed);
    let per_record = (heap_at_cap - heap_at_start) / CAP;
    println!(
        "{CONNECTIONS} closes: {} TIME-WAIT records kept, {} recycled; heap {} KiB at the start, {} KiB at the cap, {} KiB at the end ({per_record} bytes per record, where a connection is {} bytes before its buffers); table memory {} KiB; RSS {} KiB; {timers_at_end} timers at the last close, {} 3 s later",
        i.time_wait_count(),
        i.stats().tcp_time_wait_recycled,
        heap_at_start / 1024,
        heap_at_cap / 1024,
        heap_at_end / 1024,
        std::mem::size_of::<Connection>(),
        i.table_memory() / 1024,
        rss_kib(),
        i.timer_count()
    );
    assert_eq!(i.time_wait_count(), CAP);
    assert_eq!(
        i.stats().tcp_time_wait_recycled,
        u64::from(CONNECTIONS) - CAP as u64
    );
    // A record holds its 4-tuple twice (map and expiry queue), 38 bytes
    // each since a tuple can hold IPv6 addresses (213 bytes per record
    // with IPv4-only tuples of 12 bytes).
    assert!(per_record <= 384, "{per_record} bytes per TIME-WAIT record");
    // Past the cap the heap stays within half again of what it held at
    // the cap (213-byte records: 2,118 -> 2,836 KiB).
    assert!(
        heap_at_end <= heap_at_cap * 3 / 2,
        "the heap grew past the cap's: {heap_at_cap} -> {heap_at_end}"
    );
    // A minute later they have all expired, and their memory is back
    // but for the room the tables keep however empty (1,024 connection
    // slots, 2,048 records: 0.75 MiB with IPv6-wide tuples).
    let table_full = i.table_memory();
    i.poll(now + std::time::Duration::from_secs(61), &mut dev);
    assert_eq!(i.time_wait_count(), 0);
    assert!(
        i.table_memory() < 1 << 20,
        "table memory {} after they expired, {table_full} before",
        i.table_memory()
    );
}
