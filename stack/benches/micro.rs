//! Micro-benchmarks of the per-packet work: checksum, segment parse and
//! build, flow lookup, the timer wheel at 1k/100k/1M timers, reassembly in
//! and out of order, and one MSS segment through the whole sans-IO path.
//! `cargo bench -p xdptcp --bench micro`; `tools/callgrind.sh` counts
//! instructions per segment, which a noisy machine does not disturb.

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use xdptcp::iface::tcp_table::Tuple;
use xdptcp::tcp::assembler::Assembler;
use xdptcp::time::wheel::TimerWheel;
use xdptcp::time::Instant;
use xdptcp::wire::checksum::{accumulate, checksum, copy_and_accumulate};
use xdptcp::wire::tcp::{Flags, TcpHeader, TcpOptions, TcpSegment};

#[path = "common/pair.rs"]
mod pair;

fn checksums(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for size in [64usize, 1500, 64 * 1024] {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| checksum(black_box(d)))
        });
    }
    g.finish();
    // Building a segment: the payload copied and summed in one pass, or
    // copied and then summed.
    let mut g = c.benchmark_group("copy_and_checksum");
    let src: Vec<u8> = (0..1448).map(|i| i as u8).collect();
    let mut dst = vec![0u8; 1448];
    g.throughput(Throughput::Bytes(1448));
    g.bench_function("one pass", |b| {
        b.iter(|| copy_and_accumulate(0, black_box(&mut dst), black_box(&src)))
    });
    g.bench_function("copy then sum", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            accumulate(0, black_box(&dst))
        })
    });
    g.finish();
}

fn segment() -> Vec<u8> {
    let h = TcpHeader {
        src_port: 40000,
        dst_port: 80,
        seq: 1_000_000,
        ack: 2_000_000,
        flags: Flags::ACK,
        window: 512,
        options: TcpOptions {
            timestamps: Some((123, 456)),
            ..TcpOptions::default()
        },
    };
    let mut buf = vec![0u8; h.header_len() + pair::MSS];
    h.emit(&mut buf).unwrap();
    buf
}

fn parse_build(c: &mut Criterion) {
    let bytes = segment();
    c.bench_function("tcp segment parse (MSS, timestamps)", |b| {
        b.iter(|| TcpSegment::parse_unchecked(black_box(&bytes)).unwrap().seq)
    });
    let h = TcpHeader {
        options: TcpOptions {
            timestamps: Some((123, 456)),
            ..TcpOptions::default()
        },
        ..TcpHeader::default()
    };
    let mut out = vec![0u8; 64];
    c.bench_function("tcp header build (timestamps)", |b| {
        b.iter(|| black_box(&h).emit(&mut out).unwrap())
    });
}

fn flow_lookup(c: &mut Criterion) {
    // The connection table's index: a HashMap from 4-tuple to slot.
    let mut table = HashMap::new();
    for i in 0..10_000u32 {
        let t = Tuple {
            local_ip: Ipv4Addr::new(10, 255, 0, 1).into(),
            local_port: 80,
            remote_ip: Ipv4Addr::from(0x0a00_0000 + i).into(),
            remote_port: 1024 + (i % 60000) as u16,
        };
        table.insert(t, i as usize);
    }
    let hit = Tuple {
        local_ip: Ipv4Addr::new(10, 255, 0, 1).into(),
        local_port: 80,
        remote_ip: Ipv4Addr::from(0x0a00_0000 + 777).into(),
        remote_port: 1024 + 777,
    };
    let miss = Tuple {
        remote_port: 1,
        ..hit
    };
    c.bench_function("flow lookup hit (10k flows)", |b| {
        b.iter(|| table.get(black_box(&hit)))
    });
    c.bench_function("flow lookup miss (10k flows)", |b| {
        b.iter(|| table.get(black_box(&miss)))
    });
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer wheel");
    for n in [1_000u64, 100_000, 1_000_000] {
        let deadlines: Vec<Instant> = (0..n)
            .map(|i| Instant::from_micros(1_000 + (i * 7919) % 10_000_000))
            .collect();
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("insert", n), &deadlines, |b, d| {
            b.iter_batched(
                TimerWheel::<u64>::default,
                |mut w| {
                    for (k, &t) in d.iter().enumerate() {
                        w.insert(t, k as u64);
                    }
                    w
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(
            BenchmarkId::new("insert and expire all", n),
            &deadlines,
            |b, d| {
                b.iter_batched(
                    TimerWheel::<u64>::default,
                    |mut w| {
                        for (k, &t) in d.iter().enumerate() {
                            w.insert(t, k as u64);
                        }
                        let mut fired = 0u64;
                        w.advance(Instant::from_millis(11_000), |_, _| fired += 1);
                        assert_eq!(fired, d.len() as u64);
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

fn reassembly(c: &mut Criterion) {
    let mss = pair::MSS as u32;
    c.bench_function("reassembly in order (64 segments)", |b| {
        b.iter(|| {
            let mut a = Assembler::default();
            for _ in 0..64 {
                a.add(0, mss);
                black_box(a.take_front());
            }
        })
    });
    c.bench_function("reassembly out of order (64 segments, odd first)", |b| {
        b.iter(|| {
            let mut a = Assembler::default();
            for i in (1..64).step_by(2) {
                a.add(i * mss, (i + 1) * mss);
            }
            for i in (0..64).step_by(2) {
                a.add(i * mss, (i + 1) * mss);
            }
            black_box(a.take_front())
        })
    });
}

fn sans_io_path(c: &mut Criterion) {
    let mut p = pair::Pair::established();
    let data = vec![0x5au8; pair::MSS];
    let mut g = c.benchmark_group("sans-IO path");
    g.throughput(Throughput::Bytes(pair::MSS as u64));
    g.bench_function("one MSS segment out, in, delivered, ACKed", |b| {
        b.iter(|| p.one_segment(black_box(&data)))
    });
    g.finish();
}

criterion_group!(
    benches,
    checksums,
    parse_build,
    flow_lookup,
    timers,
    reassembly,
    sans_io_path
);
criterion_main!(benches);
