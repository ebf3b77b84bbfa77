//! Whole-connection behaviour between two bare connections joined by a
//! simple wire (`common::Pair`): sequence wraparound, zero window and its
//! probes, retransmission give-up, SYN backoff, and NewReno's cwnd trace
//! in context (the per-rule unit tests live in `congestion/newreno.rs`).

mod common;

use common::{exchange, pair, pattern, Pair};
use std::time::Duration;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::{Config, ConnError, Connection, Event, SeqNum, State, TcpError};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::Flags;

const MSS: u32 = 1460;

/// The RFC 9293 core alone: no timestamps, no SACK, so segments carry
/// full 1460-byte payloads and loss recovery is NewReno's.
fn base() -> Config {
    Config {
        timestamps: false,
        sack: false,
        congestion: Algorithm::NewReno,
        ..Config::default()
    }
}

#[test]
fn sequence_numbers_wrap_around_in_both_directions() {
    // Both ISNs sit just below 2^32, so both directions wrap within the
    // first few segments and the whole transfer runs on the far side.
    let (iss_a, iss_b) = (u32::MAX - 3000, u32::MAX - 1);
    let mut p = pair(base(), iss_a, base(), iss_b, 5);
    assert!(exchange(&mut p, 1 << 20, Duration::from_secs(30)));
    let wrapped = |from_a: bool| {
        p.log
            .iter()
            .any(|(_, a, t)| *a == from_a && t.payload_len > 0 && t.seq.0 < 1 << 21)
    };
    assert!(
        wrapped(true) && wrapped(false),
        "both directions crossed 2^32"
    );
    // A wrap also happens mid-segment: some segment starts below 2^32 and
    // ends above it.
    let straddles = p
        .log
        .iter()
        .any(|(_, _, t)| t.payload_len > 0 && t.seq.0.checked_add(t.payload_len as u32).is_none());
    assert!(straddles, "a segment's payload spans the wrap");
    assert_eq!(p.a.counters().retransmits, 0);
}

/// Sequence comparisons hold within 2^31, so no mark may stay behind at
/// the ISS: a transfer of more than 4 GiB one way (past 2^31 and 2^32
/// from the ISS) completes without a stall or a retransmission. (Found by
/// a 4 GiB file transfer: "SYN acked" was once `SND.UNA > ISS`, which
/// turned false after 2 GiB and stopped the sender.)
#[test]
fn a_transfer_longer_than_the_sequence_space_completes() {
    let big = Config {
        mss: 65_000,
        send_buffer: 8 << 20,
        recv_buffer: 8 << 20,
        ..base()
    };
    let mut p = pair(big.clone(), 7, big, 9, 1);
    const TOTAL: u64 = (1 << 32) + (256 << 20);
    let chunk = vec![0x5au8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let (mut sent, mut got) = (0u64, 0u64);
    let done = p.run(Duration::from_secs(600), |p| {
        while sent < TOTAL {
            let n = (TOTAL - sent).min(chunk.len() as u64) as usize;
            match p.a.send(&chunk[..n]) {
                Ok(k) => sent += k as u64,
                Err(_) => break,
            }
        }
        while let Ok(n) = p.b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 0x5a));
            got += n as u64;
        }
        got == TOTAL
    });
    assert!(done, "stalled at {got} of {TOTAL} bytes (sent {sent})");
    assert_eq!(p.a.counters().retransmits, 0);
    assert_eq!(p.a.state(), State::Established);
}

#[test]
fn zero_window_is_probed_with_backoff_and_the_transfer_resumes() {
    // A fixed 8 KiB buffer (autotuning would pick a window scale for the
    // 32 MiB it may grow to, too coarse to show the last 888 bytes free).
    let small = Config {
        recv_buffer: 8 * 1024,
        autotune: false,
        ..base()
    };
    let mut p = pair(base(), 1, small, 2, 10);
    let data: Vec<u8> = (0..64 * 1024).map(pattern).collect();
    let queued = p.a.send(&data).expect("send");
    assert_eq!(queued, data.len());
    // b does not read: its buffer fills and it advertises a zero window.
    // The last sub-MSS piece goes out when the sender's SWS override timer
    // (the persist timer) fires.
    p.run(Duration::from_secs(5), |p| p.b.recv_queue() == 8 * 1024);
    assert_eq!(p.b.recv_queue(), 8 * 1024);
    let zero_at = p.now;
    // Let a minute pass with b still not reading.
    p.run(Duration::from_secs(60), |_| false);
    let probes: Vec<Instant> = p
        .log
        .iter()
        .filter(|(at, from_a, t)| *from_a && *at > zero_at && t.payload_len <= 1)
        .filter(|(_, _, t)| !t.flags.contains(Flags::SYN))
        .map(|(at, _, _)| *at)
        .collect();
    assert!(
        p.a.counters().window_probes_sent >= 4,
        "{:?}",
        p.a.counters()
    );
    assert!(probes.len() >= 4, "probes sent: {probes:?}");
    // Each interval is at least the one before (exponential backoff).
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        assert!(w[1] >= w[0], "probe intervals must not shrink: {gaps:?}");
    }
    assert!(gaps.last() > gaps.first(), "probe intervals grow: {gaps:?}");
    // The probes keep the connection alive, and it holds no stray data.
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(
        p.b.recv_queue(),
        8 * 1024,
        "probe bytes beyond the window are not accepted"
    );

    // b reads: the window reopens and the rest arrives intact.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ok = p.run(Duration::from_secs(120), |p| {
        while let Ok(n) = p.b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == data.len()
    });
    assert!(ok, "transfer resumed: got {} of {}", got.len(), data.len());
    assert!(got == data, "data intact after the zero window");
}

#[test]
fn retransmissions_give_up_with_timed_out_after_backoff() {
    let cfg = Config {
        max_retries: 3,
        ..base()
    };
    let mut p = pair(cfg.clone(), 1, cfg, 2, 10);
    p.drop = Box::new(|_, from_a| from_a);
    let start = p.now;
    p.a.send(b"lost forever").expect("send");
    p.run(Duration::from_secs(120), |p| p.a.state() == State::Closed);
    assert_eq!(p.a.state(), State::Closed);
    assert_eq!(p.a.error(), Some(ConnError::TimedOut));
    let sends: Vec<Duration> = p
        .log
        .iter()
        .filter(|(at, a, t)| *a && *at >= start && t.payload_len > 0)
        .map(|(at, _, _)| *at - start)
        .collect();
    // RTO is 220 ms (the measured RTT of 20 ms plus the 200 ms minimum of
    // the variation term, as Linux) and doubles each time: sends at 0,
    // 0.22, 0.66, 1.54 s; the fourth expiry, at 3.3 s, gives up.
    let ms: Vec<u64> = sends.iter().map(|d| d.as_millis() as u64).collect();
    assert_eq!(ms, vec![0, 220, 660, 1540], "send times (ms)");
    assert_eq!(p.now - start, Duration::from_millis(3300));
    assert_eq!(p.a.counters().retransmits, 3);
    let evs: Vec<Event> = std::iter::from_fn(|| p.a.poll_event()).collect();
    assert!(evs.contains(&Event::Error(ConnError::TimedOut)), "{evs:?}");
    let mut buf = [0u8; 8];
    assert_eq!(
        p.a.recv(&mut buf),
        Err(TcpError::Failed(ConnError::TimedOut))
    );
    assert_eq!(p.a.send(b"x"), Err(TcpError::Failed(ConnError::TimedOut)));
}

#[test]
fn syn_is_retransmitted_with_backoff_then_gives_up() {
    let cfg = Config {
        max_syn_retries: 4,
        ..base()
    };
    let a = Connection::connect(cfg, SeqNum(7));
    let b = Connection::listen(base(), SeqNum(9));
    let mut p = Pair::new(a, b, Duration::from_millis(10));
    p.drop = Box::new(|_, _| true);
    p.run(Duration::from_secs(300), |p| p.a.state() == State::Closed);
    assert_eq!(p.a.error(), Some(ConnError::TimedOut));
    let syns: Vec<u64> = p
        .log
        .iter()
        .filter(|(_, a, t)| *a && t.flags.contains(Flags::SYN))
        .map(|(at, _, t)| {
            assert_eq!(t.seq, SeqNum(7), "every SYN carries the ISS");
            assert_eq!(t.options.mss, Some(1460), "and the MSS option");
            at.as_millis()
        })
        .collect();
    assert_eq!(syns, vec![0, 1000, 3000, 7000, 15_000]);
    assert_eq!(p.now.as_millis(), 31_000, "gives up at the fifth expiry");
    assert_eq!(p.b.state(), State::Listen, "nothing reached b");
}

#[test]
fn mss_is_negotiated_down_to_the_smaller_side() {
    let small = Config { mss: 536, ..base() };
    let mut p = pair(base(), 1, small, 2, 1);
    assert_eq!(p.a.snapshot().mss, 536);
    assert_eq!(p.b.snapshot().mss, 536);
    assert!(exchange(&mut p, 100_000, Duration::from_secs(10)));
    let biggest = p.log.iter().map(|(_, _, t)| t.payload_len).max();
    assert_eq!(biggest, Some(536));
}

/// One dropped segment in a long transfer: slow start before it, exactly
/// one fast retransmit with ssthresh = max(FlightSize/2, 2*SMSS) and
/// cwnd = ssthresh + 3*SMSS on entry, no RTO, then congestion avoidance at
/// about one SMSS per RTT.
#[test]
fn newreno_cwnd_trace_around_a_single_loss() {
    let big = Config {
        send_buffer: 8 << 20,
        recv_buffer: 8 << 20,
        ..base()
    };
    let delay = 10u64; // RTT 20 ms
    let mut p = pair(big.clone(), 1, big, 2, delay);
    // Data starts at ISS+1 = 2; the 301st data segment is dropped once.
    let hole = SeqNum(2) + 300 * MSS;
    // `drop` cannot borrow locals; share a flag through a cell.
    let flag = std::rc::Rc::new(std::cell::Cell::new(false));
    let f2 = flag.clone();
    p.drop = Box::new(move |t, from_a| {
        let hit = from_a && t.seq == hole && t.payload_len > 0 && !f2.get();
        if hit {
            f2.set(true);
        }
        hit
    });
    let total = 40usize << 20;
    let (mut sent, mut got) = (0usize, 0usize);
    let mut buf = vec![0u8; 1 << 16];
    // (time, cwnd, ssthresh) whenever either changes.
    let mut trace: Vec<(Instant, u32, u32)> = Vec::new();
    let chunk: Vec<u8> = (0..1 << 16).map(pattern).collect();
    let ok = p.run(Duration::from_secs(60), |p| {
        while sent < total {
            match p.a.send(&chunk[..(total - sent).min(chunk.len())]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        while let Ok(n) = p.b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        let s = p.a.snapshot();
        if trace.last().map(|l| (l.1, l.2)) != Some((s.cwnd, s.ssthresh)) {
            trace.push((p.now, s.cwnd, s.ssthresh));
        }
        got == total
    });
    assert!(
        ok && flag.get(),
        "transfer done ({got} of {total}), drop happened"
    );
    let c = p.a.counters().clone();
    assert_eq!(c.fast_retransmits, 1, "{c:?}");
    assert_eq!(c.retransmits, 1, "{c:?}");
    assert_eq!(c.rto_expirations, 0, "{c:?}");

    // Slow start: from IW (10 segments), cwnd only grows, by the bytes
    // each ACK covers, so it at most doubles per RTT.
    let entry = trace
        .iter()
        .position(|&(_, _, ss)| ss != u32::MAX)
        .expect("recovery was entered");
    assert_eq!(trace[0].1, 10 * MSS);
    for w in trace[..entry].windows(2) {
        assert!(w[1].1 > w[0].1, "slow start never shrinks cwnd");
    }
    let rtt = Duration::from_millis(2 * delay);
    for (i, &(at, cwnd, _)) in trace[..entry].iter().enumerate() {
        let earlier = trace[..i].iter().rev().find(|e| at - e.0 >= rtt / 2);
        if let Some(&(_, prev, _)) = earlier {
            assert!(cwnd <= 2 * prev, "cwnd {prev} -> {cwnd} in one round trip");
        }
    }

    // Entering recovery: FlightSize is what was outstanding when the third
    // duplicate ACK arrived: from the hole up to the highest byte sent.
    let (enter_at, enter_cwnd, ssthresh) = trace[entry];
    let rexmit = p
        .log
        .iter()
        .position(|(_, a, t)| *a && t.seq == hole && t.payload_len > 0)
        .expect("original send");
    let rexmit_at = p.log[rexmit + 1..]
        .iter()
        .find(|(_, a, t)| *a && t.seq == hole)
        .expect("retransmission")
        .0;
    assert_eq!(rexmit_at, enter_at, "fast retransmit on entering recovery");
    let snd_max = p
        .log
        .iter()
        .filter(|(at, a, _)| *a && *at < enter_at)
        .map(|(_, _, t)| (t.seq + t.payload_len as u32).0)
        .max()
        .unwrap();
    let flight = snd_max - hole.0;
    assert_eq!(ssthresh, (flight / 2).max(2 * MSS), "flight {flight}");
    // cwnd = ssthresh + 3*SMSS on the third duplicate ACK (RFC 5681 3.2
    // step 3), plus one SMSS for each further one that arrived in the same
    // batch (step 4). The first ACK for the hole is not a duplicate.
    let acks_for_hole = p
        .log
        .iter()
        .filter(|(at, a, t)| !*a && t.ack == hole && *at + p.delay <= enter_at)
        .count() as u32;
    let dups = acks_for_hole - 1;
    assert!(dups >= 3, "{dups} duplicate ACKs");
    assert_eq!(
        enter_cwnd,
        ssthresh + 3 * MSS + (dups - 3) * MSS,
        "steps 3-4"
    );

    // Leaving recovery sets cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)
    // (RFC 6582 3.2 step 6, option 1); after that no further loss. The
    // trace is sampled once per step, and the ACK that ends recovery may
    // share its step with one that grows cwnd (by the bytes it covers):
    // the exit is the first change after the step recovery began in.
    let exit = trace[entry..]
        .iter()
        .position(|&(at, _, _)| at > enter_at)
        .map(|i| i + entry)
        .expect("recovery ends");
    assert!(trace[exit].1 >= 2 * MSS, "{:?}", trace[exit]);
    assert!(
        trace[exit..].iter().all(|&(_, _, ss)| ss == ssthresh),
        "no second loss"
    );

    // Below ssthresh it is slow start again; at or above it, congestion
    // avoidance: over 20 RTTs cwnd grows by about 20 SMSS.
    let ca = trace[exit..]
        .iter()
        .position(|&(_, cwnd, _)| cwnd >= ssthresh)
        .map(|i| i + exit)
        .expect("reaches ssthresh");
    let (ca_start, ca_cwnd, _) = trace[ca];
    let later = trace[ca..]
        .iter()
        .rev()
        .find(|e| e.0 - ca_start <= rtt * 20)
        .unwrap();
    let grown = (later.1 - ca_cwnd) / MSS;
    assert!((15..=21).contains(&grown), "grew {grown} SMSS in 20 RTTs");
    for w in trace[ca..].windows(2) {
        assert!(
            w[1].1 - w[0].1 <= MSS,
            "at most one SMSS per step in CA: {w:?}"
        );
    }
}

/// With a window of three segments a loss yields only two duplicate ACKs
/// on its own; Limited Transmit (RFC 3042) sends a new segment per
/// duplicate ACK so the third arrives and fast retransmit, not the 1 s
/// retransmission timer, repairs the loss.
#[test]
fn limited_transmit_turns_a_small_window_loss_into_fast_retransmit() {
    let cfg = Config {
        initial_window_segments: 2,
        ..base()
    };
    let mut p = pair(cfg.clone(), 1, cfg, 2, 10);
    // The third segment: the first after the handshake-time window, when
    // cwnd is three segments.
    let first = SeqNum(2) + 2 * MSS;
    let flag = std::rc::Rc::new(std::cell::Cell::new(false));
    let f2 = flag.clone();
    p.drop = Box::new(move |t, from_a| {
        let hit = from_a && t.seq == first && t.payload_len > 0 && !f2.get();
        f2.set(f2.get() || hit);
        hit
    });
    let data: Vec<u8> = (0..10 * MSS as usize).map(pattern).collect();
    p.a.send(&data).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ok = p.run(Duration::from_secs(5), |p| {
        while let Ok(n) = p.b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == data.len()
    });
    assert!(ok && flag.get() && got == data);
    let c = p.a.counters();
    assert_eq!((c.fast_retransmits, c.rto_expirations), (1, 0), "{c:?}");
    assert!(
        p.now < Instant::from_millis(500),
        "repaired in RTTs, not an RTO"
    );
}

/// An application that sends little never fills cwnd, so cwnd must not
/// grow on its ACKs (RFC 7661): otherwise a later burst would go out at a
/// rate the network never showed it can take.
#[test]
fn cwnd_does_not_grow_while_the_application_limits_sending() {
    let mut p = pair(base(), 1, base(), 2, 10);
    let mut buf = [0u8; 2048];
    for round in 0..50 {
        p.a.send(&[round as u8; 1000]).unwrap();
        let ok = p.run(Duration::from_secs(2), |p| {
            let _ = p.b.recv(&mut buf);
            p.a.send_queue() == 0
        });
        assert!(ok, "round {round} acknowledged");
    }
    assert_eq!(p.a.counters().bytes_sent, 50_000);
    assert_eq!(p.a.snapshot().cwnd, 10 * MSS, "still the initial window");
}
