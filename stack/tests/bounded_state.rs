//! What a connection holds, and for how long: buffers, buffer growth and
//! records are given back when the connection no longer needs them, and
//! stay bounded whatever the peer does.

mod common;

use common::{one_way, pair};
use std::sync::Arc;
use std::time::Duration;
use xdptcp::tcp::autotune::BufferBudget;
use xdptcp::tcp::{Config, State};

#[test]
fn buffer_growth_returns_to_the_budget_when_the_connection_stops_needing_it() {
    let budget = Arc::new(BufferBudget::new(1 << 30));
    let cfg = Config {
        buffer_budget: Some(budget.clone()),
        ..Config::default()
    };
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 20);
    assert!(one_way(&mut p, 16 << 20, Duration::from_secs(60)));
    let grown = budget.used();
    assert!(grown > 0, "a 40 ms path grows the buffers");
    // a closes first and ends in TIME-WAIT; b ends in CLOSED. Both still
    // exist (TIME-WAIT lasts a minute), neither needs its buffers.
    p.a.close();
    assert!(p.run(Duration::from_secs(5), |p| p.b.at_eof()));
    p.b.close();
    assert!(p.run(Duration::from_secs(5), |p| {
        p.a.state() == State::TimeWait && p.b.state() == State::Closed
    }));
    assert_eq!(
        budget.used(),
        0,
        "growth still charged ({grown} bytes before the close)"
    );
}

/// An orphan (closed and released by its application) whose peer went
/// silent with data unacknowledged gives up after `orphan_retries`
/// timeouts, as Linux's tcp_orphan_retries, not the full `max_retries`,
/// in FIN-WAIT-1 (here), CLOSING and LAST-ACK alike.
#[test]
fn an_orphan_with_data_in_flight_gives_up_after_orphan_retries() {
    let cfg = Config::default();
    let mut p = pair(cfg.clone(), 1000, cfg.clone(), 5000, 5);
    assert!(one_way(&mut p, 64 * 1024, Duration::from_secs(10)));
    // The peer vanishes; a queues more, closes and lets go.
    p.drop = Box::new(|_, _| true);
    p.a.send(&[7u8; 50_000]).unwrap();
    p.a.close();
    p.a.orphan();
    assert_eq!(p.a.state(), State::FinWait1);
    let start = p.now;
    assert!(p.run(Duration::from_secs(3600), |p| p.a.state() == State::Closed));
    let c = p.a.counters();
    assert_eq!(
        c.rto_expirations,
        u64::from(cfg.orphan_retries),
        "{:?} after {:?}",
        p.a.error(),
        p.now - start
    );
    assert!(p.a.buffer_capacity() == 0, "its buffers are gone");
}

/// A receiver hostile to the sender's SACK record (the class of Linux's
/// CVE-2019-11478): it holds back the first segment for a minute so that
/// the whole transfer stays in flight, and SACKs everything else in
/// shifting patterns whose edges fall inside segments, on every segment
/// and every millisecond besides. The record stays bounded by what was
/// sent, the work per ACK stays flat as the flight grows to 32 MiB, and
/// in the end every byte arrives intact.
#[test]
fn a_hostile_sack_pattern_neither_grows_the_record_nor_the_work_per_ack() {
    use xdptcp::tcp::assembler::Assembler;
    use xdptcp::tcp::{Connection, SeqNum};
    use xdptcp::time::Instant;
    use xdptcp::wire::tcp::{Flags, TcpOptions, TcpSegment};

    const TOTAL: usize = 32 << 20;
    const MSS: u32 = 1448;
    let cfg = Config {
        send_buffer: TOTAL,
        autotune: false,
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        ..Config::default()
    };
    let mut now = Instant::from_millis(1);
    let mut a = Connection::connect(cfg, SeqNum(1000));
    let syn = a.poll_transmit(now).expect("SYN");
    let peer_iss = 70_000u32;
    let mut ts_peer = 1u32;
    let synack = TcpSegment {
        src_port: 2,
        dst_port: 1,
        seq: peer_iss,
        ack: syn.seq.0.wrapping_add(1),
        flags: Flags::SYN | Flags::ACK,
        window: 65_535,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(14),
            sack_permitted: true,
            timestamps: Some((ts_peer, syn.options.timestamps.unwrap().0)),
            ..Default::default()
        },
        payload: &[],
        lent: None,
    };
    a.on_segment(&synack, now);
    assert_eq!(a.state(), State::Established);
    let data_start = syn.seq + 1;
    let source: Vec<u8> = (0..TOTAL).map(common::pattern).collect();
    assert_eq!(a.send(&source).unwrap(), TOTAL);

    // The receiver: what arrived, as offsets from the first data byte.
    let mut store = vec![0u8; TOTAL];
    let mut have = Assembler::with_limit(usize::MAX);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let withhold_until = Instant::from_millis(61_000);
    let (mut acks, mut max_records) = (0u64, 0usize);
    let mut last_ts_seen = 0u32;
    let mut next_idle_ack = now;
    let mut visits_full_flight = (0u64, 0u64); // (visits, ACKs) near 32 MiB in flight
    let mut max_flight = 0u32;
    let end = Instant::from_millis(400_000);
    while now < end {
        // What a sends arrives at once (segment 0 is dropped for a minute).
        let mut arrived = false;
        while let Some(t) = a.poll_transmit(now) {
            let off = (t.seq - data_start) as usize;
            if let Some((tsval, _)) = t.options.timestamps {
                last_ts_seen = tsval;
            }
            if t.payload_len == 0 || (off == 0 && now < withhold_until) {
                continue;
            }
            let mut at = off;
            for part in a.payload(&t) {
                store[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            have.add(off as u32, (off + t.payload_len) as u32);
            arrived = true;
        }
        let idle_tick = now >= next_idle_ack;
        if arrived || idle_tick {
            next_idle_ack = now + Duration::from_millis(1);
            let ranges = have.ranges();
            let rcv_nxt = match ranges.first() {
                Some(&(0, e)) => e,
                _ => 0,
            };
            // Blocks over what arrived past RCV.NXT, edges inside segments.
            let mut blocks = [(0u32, 0u32); 4];
            let mut n = 0;
            if let Some(&(lo, hi)) = ranges.iter().find(|r| r.1 > rcv_nxt) {
                let lo = lo.max(rcv_nxt);
                let cut = |x: u64| (x % u64::from(MSS)) as u32;
                let l0 = if rand() % 2 == 0 {
                    lo
                } else {
                    lo + cut(rand())
                };
                let r0 = hi.saturating_sub(cut(rand())).max(l0);
                blocks[n] = (l0, r0);
                n += 1;
                for _ in 0..2 {
                    let x = lo + (rand() % u64::from(hi - lo)) as u32;
                    let y = (x + 1 + (rand() % (2 << 20)) as u32).min(hi);
                    blocks[n] = (x, y);
                    n += 1;
                }
            }
            let mut options = TcpOptions {
                timestamps: Some((ts_peer, last_ts_seen)),
                ..Default::default()
            };
            for (i, &(l, r)) in blocks[..n].iter().enumerate() {
                options.sack_blocks[i] = ((data_start + l).0, (data_start + r).0);
            }
            options.sack_count = n as u8;
            ts_peer += 1;
            let ack = TcpSegment {
                src_port: 2,
                dst_port: 1,
                seq: peer_iss + 1,
                ack: (data_start + rcv_nxt).0,
                flags: Flags::ACK,
                window: 65_535,
                urgent: 0,
                options,
                payload: &[],
                lent: None,
            };
            let before = a.sent_record_work().1;
            a.on_segment(&ack, now);
            acks += 1;
            let (records, visits) = a.sent_record_work();
            max_records = max_records.max(records);
            let flight = a.seq_space().snd_max - a.seq_space().snd_una;
            max_flight = max_flight.max(flight);
            if flight as usize >= TOTAL - TOTAL / 8 {
                visits_full_flight.0 += visits - before;
                visits_full_flight.1 += 1;
            }
            assert!(
                visits < 200 * acks + 10_000_000,
                "{visits} record visits for {acks} ACKs ({records} records)"
            );
            if rcv_nxt as usize == TOTAL {
                break;
            }
        }
        now += Duration::from_micros(50);
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
        }
    }
    assert!(
        have.ranges() == [(0, TOTAL as u32)],
        "all arrived by {now:?}: {:?}",
        &have.ranges()[..have.ranges().len().min(4)]
    );
    assert!(store == source, "the bytes arrived intact");
    let segments = TOTAL / MSS as usize + 1;
    assert!(
        max_records <= segments + segments / 20,
        "{max_records} records for {segments} segments"
    );
    let (v, n) = visits_full_flight;
    assert!(
        n > 10_000,
        "{n} ACKs with 28-32 MiB in flight (at most {max_flight} bytes): {:?}",
        a.snapshot()
    );
    assert!(
        v <= 16 * n,
        "{v} record visits for {n} ACKs at 28-32 MiB in flight"
    );
    eprintln!("{n} ACKs near 32 MiB in flight: {v} record visits; {max_records} records at most; {acks} ACKs in all");
}
