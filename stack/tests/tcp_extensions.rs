//! The extensions that make TCP work on real paths: window scaling,
//! timestamps and PAWS, SACK, delayed ACK, keepalive and the RFC 5961
//! challenge-ACK limit. Each test can fail: it checks a number or a
//! segment, not just that nothing crashed.

mod common;

use common::{exchange, pair, Pair};
use std::time::Duration;
use xdptcp::device::sim::LinkConfig;
use xdptcp::simulation::{run_transfer, TransferReport, TransferSpec};
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::{Config, ConnError, Connection, Keepalive, SeqNum, State, Transmit};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::{Flags, TcpSegment};

fn cfg(ws: bool, ts: bool, sack: bool) -> Config {
    Config {
        window_scaling: ws,
        timestamps: ts,
        sack,
        ..Config::default()
    }
}

/// Every combination of (WS, TS, SACK) offered or not on each side: an
/// option is in use exactly when both offered it, segments carry exactly
/// the options in use, and data flows intact both ways. The all-off side
/// is a minimal embedded stack.
#[test]
fn negotiation_matrix() {
    for bits in 0..64u32 {
        let side = |shift: u32| {
            let b = bits >> shift;
            (b & 1 != 0, b & 2 != 0, b & 4 != 0)
        };
        let ((wa, ta, sa), (wb, tb, sb)) = (side(0), side(3));
        let mut p = pair(cfg(wa, ta, sa), 1, cfg(wb, tb, sb), 2, 5);
        let (ws, ts, sack) = (wa && wb, ta && tb, sa && sb);
        let case = format!("A offers ws={wa} ts={ta} sack={sa}, B ws={wb} ts={tb} sack={sb}");
        for c in [&p.a, &p.b] {
            let s = c.snapshot();
            assert_eq!(s.window_scale.is_some(), ws, "{case}");
            assert_eq!((s.timestamps, s.sack), (ts, sack), "{case}");
            assert_eq!(s.mss, if ts { 1448 } else { 1460 }, "{case}");
        }
        // The SYN-ACK answers only what both offered.
        let syn_ack = p
            .log
            .iter()
            .find(|l| l.2.flags == Flags::SYN | Flags::ACK)
            .unwrap()
            .2;
        assert_eq!(syn_ack.options.window_scale.is_some(), ws, "{case}");
        assert_eq!(syn_ack.options.timestamps.is_some(), ts, "{case}");
        assert_eq!(syn_ack.options.sack_permitted, sack, "{case}");
        assert!(exchange(&mut p, 300_000, Duration::from_secs(30)), "{case}");
        for (_, _, t) in p.log.iter().filter(|l| !l.2.flags.syn()) {
            assert_eq!(t.options.timestamps.is_some(), ts, "{case}: {t:?}");
            assert!(sack || t.options.sack_count == 0, "{case}");
            assert!(t.payload_len <= if ts { 1448 } else { 1460 }, "{case}");
            // Unscaled windows never claim more than the 16-bit field holds;
            // scaled ones advertise the 256 KiB buffer.
            assert!(ws || u32::from(t.window) <= 65_535, "{case}");
        }
        if ws {
            let biggest = p.log.iter().map(|l| l.2.window).max().unwrap();
            assert!(
                u32::from(biggest) << 3 > 65_535,
                "{case}: windows above 64 KiB"
            );
        }
    }
}

fn bulk(link: LinkConfig, tcp: Config, bytes: u64, seed: u64) -> (TransferReport, Vec<(u64, f64)>) {
    let spec = TransferSpec {
        bytes,
        link,
        seed,
        tcp,
        ..TransferSpec::default()
    };
    let mut progress = Vec::new();
    let r = run_transfer(&spec, &mut |_| {}, &mut |_| {}, &mut |got, at| {
        progress.push((got, at.as_secs_f64()))
    });
    assert!(r.completed, "{:?}", r.error);
    (r, progress)
}

/// Goodput over the second half of a transfer, after slow start.
fn steady_bps(progress: &[(u64, f64)]) -> f64 {
    let (b0, t0) = progress[progress.len() / 2];
    let (b1, t1) = *progress.last().unwrap();
    (b1 - b0) as f64 * 8.0 / (t1 - t0)
}

fn long_fat_link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(50),
        bandwidth_bps: Some(1_000_000_000),
        // Deep enough that the 16 MiB window never overflows it.
        queue_bytes: 32 << 20,
        ..LinkConfig::default()
    }
}

/// 100 ms RTT at 1 Gbit/s holds 12.5 MB in flight. Window scaling lets a
/// 16 MiB buffer be advertised, and one flow fills at least 90 % of the
/// link in steady state.
#[test]
fn window_scaling_fills_a_long_fat_pipe() {
    let tcp = Config {
        send_buffer: 16 << 20,
        recv_buffer: 16 << 20,
        autotune: false,
        ..Config::default()
    };
    let (r, progress) = bulk(long_fat_link(), tcp, 256 << 20, 1);
    // 2^24 >> 8 is 65536, one more than 16 bits hold: shift 9.
    assert_eq!(
        r.sender.window_scale.map(|w| w.1),
        Some(9),
        "16 MiB needs shift 9"
    );
    let bps = steady_bps(&progress);
    assert!(bps >= 0.9e9, "steady goodput {:.1} Mbit/s", bps / 1e6);
}

/// Without window scaling the same path carries at most 64 KiB per RTT.
#[test]
fn without_window_scaling_a_long_fat_pipe_gets_64k_per_rtt() {
    let tcp = Config {
        window_scaling: false,
        send_buffer: 16 << 20,
        recv_buffer: 16 << 20,
        ..Config::default()
    };
    let (r, progress) = bulk(long_fat_link(), tcp, 8 << 20, 1);
    assert_eq!(r.sender.window_scale, None);
    let limit = 65_535.0 * 8.0 / 0.1;
    let bps = steady_bps(&progress);
    assert!(
        bps <= limit * 1.01 && bps >= limit * 0.8,
        "{:.2} Mbit/s against a 64 KiB/RTT limit of {:.2}",
        bps / 1e6,
        limit / 1e6
    );
}

/// Under 1 % random loss on a 20 ms RTT path, SACK recovery resends
/// little more than was lost (the link reports what it dropped).
#[test]
fn sack_retransmits_about_what_was_lost() {
    let link = LinkConfig {
        loss: 0.01,
        delay: Duration::from_millis(10),
        bandwidth_bps: Some(100_000_000),
        ..LinkConfig::default()
    };
    for seed in 1..=3 {
        let (r, _) = bulk(link.clone(), Config::default(), 16 << 20, seed);
        let c = &r.sender.counters;
        let lost_frames = r.link_a_to_b.frames_lost;
        // Each lost data frame carried at most one 1448-byte payload.
        let lost_payload = (r.link_a_to_b.dropped_bytes() - lost_frames * 66) as f64;
        let resent = c.bytes_retransmitted as f64;
        assert!(lost_frames > 50 && c.sack_recoveries > 0, "{c:?}");
        assert!(
            resent <= 1.3 * lost_payload,
            "seed {seed}: resent {resent} for {lost_payload} lost"
        );
    }
}

/// A burst of losses in one window, which SACK exists for: SACK resends
/// every hole in about one RTT, NewReno without SACK one hole per RTT. On
/// the same path, the burst is repaired (and so goodput over the loss
/// episode is) at least twice as fast with SACK.
#[test]
fn sack_recovers_a_loss_burst_at_least_twice_as_fast() {
    let run = |sack: bool| {
        let tcp = Config {
            sack,
            congestion: Algorithm::NewReno,
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
            ..Config::default()
        };
        let mut p = pair(tcp.clone(), 1, tcp, 2, 10);
        // Drop every 4th of 40 segments once, early in a full window.
        let dropped = std::rc::Rc::new(std::cell::RefCell::new(Vec::<SeqNum>::new()));
        let d = dropped.clone();
        p.drop = Box::new(move |t: &Transmit, from_a| {
            let n = (t.seq.0.wrapping_sub(2)) / 1448;
            let hit = from_a
                && t.payload_len > 0
                && (200..240).contains(&n)
                && n.is_multiple_of(4)
                && !d.borrow().contains(&t.seq);
            if hit {
                d.borrow_mut().push(t.seq);
            }
            hit
        });
        let repaired = exchange_one_way(&mut p, 2 << 20, 2 + 240 * 1448);
        assert_eq!(dropped.borrow().len(), 10);
        let first_drop = p
            .log
            .iter()
            .find(|l| l.2.seq == dropped.borrow()[0])
            .unwrap()
            .0;
        (
            (repaired.expect("transfer done") - first_drop).as_secs_f64(),
            p.a.counters().clone(),
        )
    };
    let (with_sack, c1) = run(true);
    let (without, c2) = run(false);
    assert_eq!(c1.sack_recoveries, 1, "{c1:?}");
    assert_eq!(c1.rto_expirations, 0, "{c1:?}");
    assert!(
        without >= 2.0 * with_sack,
        "burst repaired in {with_sack:.3} s with SACK, {without:.3} s without ({c2:?})"
    );
}

/// Sends `total` bytes from a to b, which reads everything and checks it.
/// Returns when b had received every byte before sequence number `mark`.
fn exchange_one_way(p: &mut Pair, total: usize, mark: u32) -> Option<Instant> {
    let data: Vec<u8> = (0..total).map(common::pattern).collect();
    let (mut sent, mut got) = (0, Vec::with_capacity(total));
    let mut reached = None;
    let mut buf = vec![0u8; 1 << 16];
    let ok = p.run(Duration::from_secs(60), |p| {
        if sent < total {
            sent += p.a.send(&data[sent..]).unwrap_or(0);
        }
        while let Ok(n) = p.b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if reached.is_none() && got.len() + 2 >= mark as usize {
            reached = Some(p.now);
        }
        got.len() == total
    });
    assert!(ok && got == data, "transfer intact");
    reached
}

// ---- crafted segments against one connection ------------------------------

const ISS: u32 = 1000;
const PEER: u32 = 5000;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A crafted segment, with a timestamp option if `ts` is given.
fn seg(seq: u32, ack: u32, flags: Flags, ts: Option<u32>, payload: &[u8]) -> TcpSegment<'_> {
    let mut s = common::segment(seq, ack, flags, payload);
    s.options.timestamps = ts.map(|v| (v, 0));
    s
}

fn drain(c: &mut Connection, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| c.poll_transmit(now)).collect()
}

/// A passive connection that negotiated timestamps; the peer's TSval is 100.
fn established_with_ts(cfg: Config) -> Connection {
    let mut c = Connection::listen(cfg, SeqNum(ISS));
    let mut syn = seg(PEER, 0, Flags::SYN, Some(100), &[]);
    syn.options.mss = Some(1460);
    c.on_segment(&syn, t(0));
    drain(&mut c, t(0));
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, Some(101), &[]), t(1));
    assert_eq!(c.state(), State::Established);
    assert!(c.snapshot().timestamps);
    c
}

#[test]
fn paws_drops_a_segment_with_an_old_timestamp() {
    let mut c = established_with_ts(Config::default());
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, Some(200), b"new"), t(2));
    assert_eq!(c.recv_queue(), 3);
    // Same sequence space, but its timestamp is older than TS.Recent: an
    // old duplicate from a previous wrap. It is dropped and answered.
    c.on_segment(&seg(PEER + 4, ISS + 1, Flags::ACK, Some(150), b"old"), t(3));
    assert_eq!(c.recv_queue(), 3, "the old segment's data is not taken");
    assert_eq!(c.counters().paws_rejected, 1);
    let out = drain(&mut c, t(3));
    assert!(out
        .iter()
        .any(|s| s.flags == Flags::ACK && s.ack == SeqNum(PEER + 4)));
    // An RST is not subject to PAWS (RFC 7323 5.3 R1).
    c.on_segment(&seg(PEER + 4, 0, Flags::RST, Some(1), &[]), t(4));
    assert_eq!(c.error(), Some(ConnError::Reset));
}

#[test]
fn paws_forgets_a_timestamp_older_than_24_days() {
    let mut c = established_with_ts(Config {
        keepalive: None,
        ..Config::default()
    });
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, Some(200), b"a"), t(2));
    let later = Instant::from_millis(25 * 24 * 3600 * 1000);
    c.on_segment(&seg(PEER + 2, ISS + 1, Flags::ACK, Some(150), b"b"), later);
    assert_eq!(
        c.recv_queue(),
        2,
        "after 24 idle days TS.Recent no longer applies"
    );
    assert_eq!(c.counters().paws_rejected, 0);
}

#[test]
fn timestamps_measure_rtt_from_every_ack() {
    // ACKs at once: the time a delayed ACK holds a segment is part of the
    // RTT its timestamp measures (RFC 7323 4.1), and this test is about
    // the path's 30 ms (an odd last segment's delayed ACK measured 70).
    let cfg = Config {
        delayed_ack: Duration::ZERO,
        ..Config::default()
    };
    let mut p = pair(cfg.clone(), 1, cfg, 2, 15);
    assert!(exchange(&mut p, 200_000, Duration::from_secs(10)));
    let srtt = p.a.snapshot().srtt.unwrap();
    assert!(
        (Duration::from_millis(29)..=Duration::from_millis(31)).contains(&srtt),
        "{srtt:?}"
    );
}

#[test]
fn rfc5961_challenge_acks_are_rate_limited_and_exact_rst_closes() {
    let mut c = established_with_ts(Config::default());
    // Blind resets inside the window but not at RCV.NXT.
    for i in 0..25 {
        c.on_segment(
            &seg(PEER + 100 + i, 0, Flags::RST, None, &[]),
            t(10 + u64::from(i)),
        );
        drain(&mut c, t(10 + u64::from(i)));
    }
    assert_eq!(c.state(), State::Established, "the connection survives");
    assert_eq!(
        c.counters().challenge_acks_sent,
        10,
        "limit of 10 per second"
    );
    assert_eq!(c.counters().challenge_acks_suppressed, 15);
    // A second later the budget is back.
    c.on_segment(&seg(PEER + 100, 0, Flags::RST, None, &[]), t(1100));
    assert_eq!(c.counters().challenge_acks_sent, 11);
    let acks = drain(&mut c, t(1100));
    assert!(acks
        .iter()
        .any(|s| s.flags == Flags::ACK && s.ack == SeqNum(PEER + 1)));
    // An RST exactly at RCV.NXT is believed.
    c.on_segment(&seg(PEER + 1, 0, Flags::RST, None, &[]), t(1200));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.error(), Some(ConnError::Reset));
}

/// A client whose request waits as the SYN-ACK arrives, and whether the
/// answer (20 ms later) was acknowledged at once.
fn answer_acked_at_once(write_before_syn_ack: bool) -> bool {
    let mut c = Connection::connect(Config::default(), SeqNum(ISS));
    drain(&mut c, t(0));
    if write_before_syn_ack {
        c.send(b"request").unwrap();
    }
    let mut synack = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, Some(100), &[]);
    synack.options.mss = Some(1460);
    c.on_segment(&synack, t(10));
    if !write_before_syn_ack {
        assert_eq!(drain(&mut c, t(10)).len(), 1, "the handshake's ACK");
        c.send(b"request").unwrap();
    }
    let out = drain(&mut c, t(10));
    assert_eq!(
        (out.len(), out[0].payload_len),
        (1, 7),
        "the request, with the ACK"
    );
    c.on_segment(
        &seg(
            PEER + 1,
            ISS + 8,
            Flags::ACK | Flags::PSH,
            Some(101),
            b"answer",
        ),
        t(30),
    );
    !drain(&mut c, t(30)).is_empty()
}

#[test]
fn a_client_whose_request_carries_the_handshake_ack_delays_the_answers_ack() {
    // As Linux: a write waiting at the SYN-ACK defers the handshake's ACK
    // to its data and starts the delayed-ACK clock (tcp_enter_quickack_mode
    // with the SYN-ACK as the last thing heard), so the request is a reply
    // and the answer's ACK waits to ride on the next one (ping-pong).
    assert!(!answer_acked_at_once(true));
    // A bare ACK first: Linux's clock is not started, the answer is the
    // connection's first data and is acknowledged at once (quick ACK).
    assert!(answer_acked_at_once(false));
}

#[test]
fn reading_sends_no_window_update_when_the_window_field_cannot_grow() {
    // No window scaling: the field says at most 65,535 bytes, and our
    // 256 KiB buffer keeps it there, so a read opens nothing the peer
    // could see (Linux compares the window it could advertise).
    let mut c = established_with_ts(Config::default());
    assert!(c.snapshot().recv_buffer > 2 * 65_535);
    c.on_segment(
        &seg(
            PEER + 1,
            ISS + 1,
            Flags::ACK | Flags::PSH,
            Some(102),
            &[9u8; 1000],
        ),
        t(10),
    );
    let out = drain(&mut c, t(10));
    assert_eq!((out.len(), out[0].window), (1, 65_535));
    c.recv_consume(1000);
    let out = drain(&mut c, t(20));
    assert!(
        out.is_empty(),
        "a window update that changes nothing: {out:?}"
    );
}

#[test]
fn quick_acks_first_then_delayed_acks_wait_40_ms_for_one_segment_but_not_for_two() {
    let mut c = established_with_ts(Config::default());
    // Quick-ACK mode: the first data segments are acknowledged at once,
    // 16 of them (half the 256 KiB window in segments, at most 16).
    let mut seq = PEER + 1;
    for i in 0..16u32 {
        let now = t(10 + u64::from(i));
        c.on_segment(
            &seg(seq, ISS + 1, Flags::ACK | Flags::PSH, Some(200 + i), b"x"),
            now,
        );
        seq += 1;
        let out = drain(&mut c, now);
        assert_eq!(out.len(), 1, "quick ACK {i}");
        assert_eq!(out[0].ack, SeqNum(seq));
    }
    // Then one small segment's ACK waits for the 40 ms timer.
    c.on_segment(
        &seg(seq, ISS + 1, Flags::ACK | Flags::PSH, Some(300), b"x"),
        t(30),
    );
    seq += 1;
    assert!(
        drain(&mut c, t(30)).is_empty(),
        "one small segment: the ACK waits"
    );
    assert_eq!(c.poll_timeout(), Some(t(70)));
    c.handle_timeout(t(70));
    let out = drain(&mut c, t(70));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, SeqNum(seq));

    let full = vec![7u8; 1448];
    c.on_segment(&seg(seq, ISS + 1, Flags::ACK, Some(301), &full), t(80));
    assert!(drain(&mut c, t(80)).is_empty());
    c.on_segment(
        &seg(seq + 1448, ISS + 1, Flags::ACK, Some(302), &full),
        t(81),
    );
    let out = drain(&mut c, t(81));
    assert_eq!(out.len(), 1, "every second full segment is ACKed at once");
    seq += 2 * 1448;
    assert_eq!(out[0].ack, SeqNum(seq));

    // After more than an RTO without data, quick-ACK mode again.
    c.on_segment(
        &seg(seq, ISS + 1, Flags::ACK | Flags::PSH, Some(900), b"x"),
        t(2_000),
    );
    seq += 1;
    let out = drain(&mut c, t(2_000));
    assert_eq!(out.len(), 1, "quick ACK after idle");
    assert_eq!(out[0].ack, SeqNum(seq));
    // A conversation: our reply within 40 ms carries the ACK, so the next
    // request's ACK waits for the reply (or the timer) again.
    c.send(b"reply").unwrap();
    assert_eq!(drain(&mut c, t(2_001)).len(), 1, "the reply");
    c.on_segment(
        &seg(seq, ISS + 1, Flags::ACK | Flags::PSH, Some(901), b"x"),
        t(2_010),
    );
    assert!(
        drain(&mut c, t(2_010)).is_empty(),
        "in a conversation the ACK waits for the reply"
    );
}

/// When the connection gives up on data the peer never acknowledges,
/// after the handshake at t(1) and a write at t(10).
fn gives_up_at(user_timeout: Option<std::time::Duration>) -> Option<Instant> {
    let mut c = established_with_ts(Config {
        user_timeout,
        ..Config::default()
    });
    c.send(&[1u8; 100]).unwrap();
    drain(&mut c, t(10));
    while let Some(now) = c.poll_timeout() {
        if now > t(600_000) {
            break;
        }
        c.handle_timeout(now);
        drain(&mut c, now);
        if c.error().is_some() {
            assert_eq!(c.error(), Some(ConnError::TimedOut));
            return Some(now);
        }
    }
    None
}

#[test]
fn a_user_timeout_ends_a_connection_whose_data_stays_unacknowledged_that_long() {
    // RFC 9293 3.10.8 (RFC 5482 for the option): 3 s after the data went
    // out, not after 15 backed-off retransmissions (minutes).
    let at = gives_up_at(Some(std::time::Duration::from_secs(3))).expect("gave up");
    assert_eq!(
        at,
        t(3_010),
        "on time: the last timeout is cut to the deadline"
    );
    let default = gives_up_at(None).expect("gave up");
    assert!(default > t(100_000), "retries alone: {default:?}");
}

#[test]
fn data_arriving_after_the_user_closed_for_good_is_answered_with_a_reset() {
    // RFC 1122 4.2.2.13: new data after CLOSE SHOULD draw a RST (nobody
    // will read it); as Linux, in FIN-WAIT-1/2, the RST at the segment's
    // ACK number, and the connection ends.
    let mut c = established_with_ts(Config::default());
    c.close();
    c.orphan();
    let fin = drain(&mut c, t(5));
    assert!(fin[0].flags.fin());
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, Some(102), b"x"), t(6));
    let out = drain(&mut c, t(6));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].flags.rst() && !out[0].flags.ack());
    assert_eq!(out[0].seq, SeqNum(ISS + 1));
    assert_eq!(c.state(), State::Closed);
}

fn keepalive_cfg() -> Config {
    Config {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(2),
            count: 3,
        }),
        ..Config::default()
    }
}

#[test]
fn keepalive_reports_a_vanished_peer_within_idle_plus_interval_times_count() {
    let mut p = pair(keepalive_cfg(), 1, Config::default(), 2, 5);
    assert!(exchange(&mut p, 10_000, Duration::from_secs(5)));
    assert!(p.run(Duration::from_secs(1), |p| p.a.send_queue()
        + p.b.send_queue()
        == 0));
    // The peer vanishes: nothing it sends arrives any more.
    p.drop = Box::new(|_, from_a| !from_a);
    let quiet_from = p.now;
    p.run(Duration::from_secs(120), |p| p.a.state() == State::Closed);
    assert_eq!(p.a.error(), Some(ConnError::TimedOut));
    let took = p.now - quiet_from;
    let bound = Duration::from_secs(10 + 2 * 3);
    assert!(took <= bound + Duration::from_millis(100), "took {took:?}");
    assert!(took >= bound - Duration::from_millis(100), "took {took:?}");
    assert_eq!(p.a.counters().keepalive_probes_sent, 3);
}

#[test]
fn keepalive_probes_an_idle_but_live_peer_without_ending_anything() {
    let mut p = pair(keepalive_cfg(), 1, Config::default(), 2, 5);
    assert!(exchange(&mut p, 10_000, Duration::from_secs(5)));
    let until = p.now + Duration::from_secs(60);
    p.run(Duration::from_secs(61), |p| p.now >= until);
    assert_eq!(p.a.state(), State::Established);
    assert!(
        p.a.counters().keepalive_probes_sent >= 5,
        "{:?}",
        p.a.counters()
    );
}

/// The last segment of a burst is lost: nothing follows it to produce
/// duplicate ACKs. The tail loss probe (RFC 8985 7), two RTTs later, draws
/// a SACK that starts fast recovery, long before the 1 s RTO.
#[test]
fn tail_loss_probe_repairs_a_lost_last_segment_before_the_rto() {
    let mut p = pair(Config::default(), 1, Config::default(), 2, 10);
    // Warm up so an RTT is measured.
    assert!(exchange(&mut p, 10_000, Duration::from_secs(5)));
    assert!(p.run(Duration::from_secs(1), |p| p.a.send_queue() == 0));
    let last = std::rc::Rc::new(std::cell::Cell::new(None::<SeqNum>));
    let l = last.clone();
    let data = vec![1u8; 10 * 1448];
    // Data starts at ISS+1 = 2; 10 000 bytes went before.
    let start_seq = SeqNum(2 + 10_000);
    let tail = start_seq + 9 * 1448;
    p.drop = Box::new(move |t, from_a| {
        let hit = from_a && t.seq == tail && t.payload_len > 0 && l.get().is_none();
        if hit {
            l.set(Some(t.seq));
        }
        hit
    });
    let start = p.now;
    p.a.send(&data).unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    let ok = p.run(Duration::from_secs(5), |p| {
        while let Ok(n) = p.b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        got == data.len()
    });
    assert!(
        ok && last.get().is_some(),
        "the tail was dropped and repaired"
    );
    let c = p.a.counters();
    assert_eq!((c.tail_loss_probes, c.rto_expirations), (1, 0), "{c:?}");
    // With one segment left in flight the probe waits 2*SRTT plus the
    // peer's worst-case delayed ACK, 200 ms (RFC 8985 7.2, as Linux); the
    // timeout would have come later and collapsed cwnd.
    assert!(
        p.now - start < Duration::from_millis(300),
        "took {:?}",
        p.now - start
    );
}

/// With several segments out the peer does not delay its ACK, so the
/// probe waits only 2*SRTT and the timer's granularity, 2 ms (Linux's
/// TCP_TIMEOUT_MIN): on a 1 ms path that is 4 ms, not a 10 ms floor.
#[test]
fn tail_loss_probe_with_several_segments_out_waits_two_rtts_and_2_ms() {
    let cfg = Config {
        congestion: Algorithm::Cubic,
        ..Config::default()
    };
    let mut c = Connection::listen(cfg, SeqNum(ISS));
    let mut syn = seg(PEER, 0, Flags::SYN, None, &[]);
    syn.options.mss = Some(1460);
    syn.options.sack_permitted = true;
    c.on_segment(&syn, t(0));
    drain(&mut c, t(0));
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, None, &[]), t(1));
    assert_eq!(c.state(), State::Established);
    c.send(&[1u8; 5 * 1460]).unwrap();
    let sent = drain(&mut c, t(1));
    assert!(sent.len() > 1, "{} segments", sent.len());
    assert_eq!(c.poll_timeout(), Some(t(1 + 2 + 2)));
    c.handle_timeout(t(5));
    let probe = drain(&mut c, t(5));
    assert_eq!(probe.len(), 1, "one probe");
    assert_eq!(c.counters().tail_loss_probes, 1);
}

#[test]
fn psh_marks_the_segment_that_ends_each_write() {
    let mut c = established_with_ts(Config {
        nagle: false,
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        ..Config::default()
    });
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, Some(102), &[]), t(2));
    // Two writes before anything goes out: 1,000 bytes, then 3,000.
    assert_eq!(c.send(&[1u8; 1000]).unwrap(), 1000);
    assert_eq!(c.send(&[2u8; 3000]).unwrap(), 3000);
    let data: Vec<_> = drain(&mut c, t(3))
        .into_iter()
        .filter(|s| s.payload_len > 0)
        .map(|s| (s.seq.0 - ISS - 1, s.payload_len, s.flags.psh()))
        .collect();
    // Segments of 1,448 bytes (MSS 1460 less 12 of timestamps): the first
    // holds the end of the first write, the last the end of the second.
    assert_eq!(
        data,
        vec![(0, 1448, true), (1448, 1448, false), (2896, 1104, true)]
    );
}

/// A passive connection whose handshake took `rtt_us` (its first RTT
/// sample), Nagle off, CUBIC (Linux's default, unpaced), with `bytes`
/// written in one write.
fn established_after(rtt_us: u64, bytes: usize) -> Connection {
    let mut c = Connection::listen(
        Config {
            nagle: false,
            congestion: Algorithm::Cubic,
            unsent_limit: xdptcp::tcp::UnsentLimit::Off,
            ..Config::default()
        },
        SeqNum(ISS),
    );
    let mut syn = seg(PEER, 0, Flags::SYN, None, &[]);
    syn.options.mss = Some(1460);
    c.on_segment(&syn, Instant::from_micros(0));
    drain(&mut c, Instant::from_micros(0));
    let now = Instant::from_micros(rtt_us);
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, None, &[]), now);
    assert_eq!(c.state(), State::Established);
    assert_eq!(c.send(&vec![7u8; bytes]).unwrap(), bytes);
    c
}

/// The indices of the data segments `drain` sends now that carry PSH.
fn pushed(c: &mut Connection, now: Instant) -> (usize, Vec<usize>) {
    let data: Vec<_> = drain(c, now)
        .into_iter()
        .filter(|s| s.payload_len > 0)
        .collect();
    let psh = (0..data.len()).filter(|&i| data[i].flags.psh()).collect();
    (data.len(), psh)
}

#[test]
fn psh_ends_each_burst_linux_would_hand_to_its_device_as_one_packet() {
    // At 100 ms RTT Linux's pacing rate gives bursts (TSO packets) of two
    // segments, and it forces PSH on the last segment of each: the
    // initial window of ten goes out as five pairs, none ending a write.
    let mut c = established_after(100_000, 20 * 1460);
    let now = Instant::from_micros(100_000);
    assert_eq!(pushed(&mut c, now), (10, vec![1, 3, 5, 7, 9]));
    // An ACK for one segment lets two more go (slow start): one burst.
    let mss = c.snapshot().mss;
    let later = Instant::from_micros(200_000);
    c.on_segment(&seg(PEER + 1, ISS + 1 + mss, Flags::ACK, None, &[]), later);
    assert_eq!(pushed(&mut c, later), (2, vec![1]));

    // At 100 us the pacing rate allows 64 KiB, but no packet is more than
    // half the window (tcp_cwnd_test): the window of ten is two bursts.
    let mut c = established_after(100, 20 * 1460);
    assert_eq!(pushed(&mut c, Instant::from_micros(100)), (10, vec![4, 9]));

    // A lone segment is no burst: with room for one more segment only,
    // the one that goes carries no PSH (it ends no write either).
    let mut c = established_after(100_000, 20 * 1460);
    pushed(&mut c, now);
    let half = mss / 2;
    c.on_segment(&seg(PEER + 1, ISS + 1 + half, Flags::ACK, None, &[]), later);
    let (n, psh) = pushed(&mut c, later);
    assert!(n <= 1 && psh.is_empty(), "{n} segments, PSH on {psh:?}");
}

#[test]
fn no_segment_crosses_the_end_of_a_record_and_nagle_does_not_hold_one_cut_there() {
    let mut c = established_with_ts(Config {
        congestion: Algorithm::Cubic,
        ..Config::default()
    });
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, Some(102), &[]), t(2));
    // Records of 2,000 and 400 bytes (MSG_EOR), then a plain 3,000.
    c.send(&[1u8; 2000]).unwrap();
    c.end_record();
    c.send(&[2u8; 400]).unwrap();
    c.end_record();
    c.send(&[3u8; 3000]).unwrap();
    let data: Vec<_> = drain(&mut c, t(3))
        .into_iter()
        .filter(|s| s.payload_len > 0)
        .map(|s| (s.seq.0 - ISS - 1, s.payload_len, s.flags.psh()))
        .collect();
    // Each record ends a segment (with PSH); the short ones go at once
    // although data is in flight, since more follows them. The last
    // 104 bytes wait for Nagle (the tail of the queue, as Linux's).
    assert_eq!(
        data,
        vec![
            (0, 1448, false),
            (1448, 552, true),
            (2000, 400, true),
            (2400, 1448, false),
            (3848, 1448, true)
        ]
    );
    // A timeout resends from SND.UNA: the first record's end still cuts.
    // (A tail loss probe may come first: the timers run until it does.)
    let mut resent = Vec::new();
    let mut rto = t(3);
    for _ in 0..5 {
        rto = c.poll_timeout().unwrap();
        c.handle_timeout(rto);
        resent = drain(&mut c, rto)
            .into_iter()
            .filter(|s| s.payload_len > 0)
            .map(|s| (s.seq.0 - ISS - 1, s.payload_len))
            .collect();
        if resent.first().is_some_and(|s| s.0 == 0) {
            break;
        }
    }
    assert_eq!(resent, vec![(0, 1448)]);
    c.on_segment(
        &seg(PEER + 1, ISS + 1 + 1448, Flags::ACK, Some(103), &[]),
        rto,
    );
    let resent: Vec<_> = drain(&mut c, rto)
        .into_iter()
        .filter(|s| s.payload_len > 0)
        .map(|s| (s.seq.0 - ISS - 1, s.payload_len))
        .collect();
    assert_eq!(resent.first(), Some(&(1448, 552)));
}

#[test]
fn a_fast_open_syn_with_a_valid_cookie_delivers_its_data_and_the_server_may_answer_at_once() {
    let mut c = Connection::listen(Config::default(), SeqNum(ISS));
    c.accept_fast_open();
    let mut syn = seg(PEER, 0, Flags::SYN, None, b"0123456789");
    syn.options.mss = Some(1460);
    c.on_segment(&syn, t(0));
    assert_eq!(c.state(), State::SynReceived);
    assert!(c.is_fast_open_child());
    // The SYN-ACK acknowledges the SYN's data, which is there to read.
    let out = drain(&mut c, t(0));
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.syn() && out[0].flags.ack());
    assert_eq!(out[0].ack, SeqNum(PEER + 11));
    let mut buf = [0u8; 64];
    assert_eq!(c.recv(&mut buf).unwrap(), 10);
    assert_eq!(&buf[..10], b"0123456789");
    // The answer goes before the handshake's ACK (RFC 7413 4.2.2).
    assert_eq!(c.send(&[7u8; 100]).unwrap(), 100);
    let out = drain(&mut c, t(1));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].seq, out[0].payload_len), (SeqNum(ISS + 1), 100));
    // The handshake's ACK (of the SYN-ACK and the answer) completes it.
    c.on_segment(&seg(PEER + 11, ISS + 101, Flags::ACK, None, &[]), t(2));
    assert_eq!(c.state(), State::Established);
    assert_eq!(c.send_queue(), 0);
}

/// Before the handshake's ACK a Fast Open server may send a full window:
/// the peer's window starts after our SYN, which takes no room in cwnd
/// either (Linux's child socket counts both from ISS+1). Counting the SYN
/// left the tenth segment a byte short, held by Nagle.
#[test]
fn a_fast_open_server_sends_a_full_window_before_the_handshake_ends() {
    let cfg = Config {
        congestion: Algorithm::Cubic,
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        ..Config::default()
    };
    let mut c = Connection::listen(cfg, SeqNum(ISS));
    c.accept_fast_open();
    let mut syn = seg(PEER, 0, Flags::SYN, None, b"request");
    syn.options.mss = Some(1000);
    syn.window = 10_000;
    c.on_segment(&syn, t(0));
    assert!(c.is_fast_open_child());
    drain(&mut c, t(0));
    assert_eq!(c.send(&[7u8; 15_000]).unwrap(), 15_000);
    let data: Vec<_> = drain(&mut c, t(1))
        .into_iter()
        .map(|s| (s.payload_len, s.flags.psh()))
        .collect();
    // Ten segments, bursts of five (half cwnd) each ending with PSH.
    let mut want = vec![(1000, false); 10];
    want[4].1 = true;
    want[9].1 = true;
    assert_eq!(data, want);
}

#[test]
fn without_a_valid_cookie_the_syn_data_waits_and_the_syn_ack_offers_a_cookie() {
    let mut c = Connection::listen(Config::default(), SeqNum(ISS));
    let cookie = xdptcp::wire::tcp::FastOpen::with_cookie(&[1, 2, 3, 4, 5, 6, 7, 8], true);
    c.offer_fast_open_cookie(cookie);
    let mut syn = seg(PEER, 0, Flags::SYN, None, b"0123456789");
    syn.options.mss = Some(1460);
    c.on_segment(&syn, t(0));
    let out = drain(&mut c, t(0));
    assert_eq!(out[0].ack, SeqNum(PEER + 1), "the data is not acknowledged");
    assert_eq!(out[0].options.fast_open, Some(cookie));
    assert_eq!(c.recv_queue(), 0);
    assert!(!c.is_fast_open_child());
}

/// The cookie the Fast Open client tests hold for their server.
fn cached_cookie() -> xdptcp::wire::tcp::FastOpen {
    xdptcp::wire::tcp::FastOpen::with_cookie(&[9, 8, 7, 6], false)
}

/// An active open with Fast Open holding `cached_cookie()`, whose SYN may
/// carry up to `room` bytes.
fn fast_open_client(room: u32) -> Connection {
    let mut c = Connection::connect(Config::default(), SeqNum(ISS));
    c.fast_open_client(Some(cached_cookie()), room);
    c
}

#[test]
fn a_fast_open_client_syn_carries_its_cookie_and_data_and_takes_data_on_the_syn_ack() {
    let mut c = fast_open_client(1000);
    assert_eq!(c.send(&[5u8; 1500]).unwrap(), 1500);
    let out = drain(&mut c, t(0));
    assert_eq!(out.len(), 1, "only the SYN before the handshake: {out:?}");
    assert!(out[0].flags.syn());
    assert_eq!(out[0].options.fast_open, Some(cached_cookie()));
    assert_eq!(out[0].payload_len, 1000, "as much as the SYN may carry");
    // The server acknowledges the SYN's data and answers on its SYN-ACK.
    let mut synack = seg(PEER, ISS + 1001, Flags::SYN | Flags::ACK, None, b"hello");
    synack.options.mss = Some(1460);
    c.on_segment(&synack, t(1));
    assert_eq!(c.state(), State::Established);
    let mut buf = [0u8; 16];
    assert_eq!(c.recv(&mut buf).unwrap(), 5, "the SYN-ACK's data is read");
    assert_eq!(&buf[..5], b"hello");
    let out = drain(&mut c, t(1));
    assert_eq!(out[0].ack, SeqNum(PEER + 6));
    assert_eq!((out[0].seq, out[0].payload_len), (SeqNum(ISS + 1001), 500));
    assert_eq!(c.take_fast_open_cookie(), Some((None, Some(1460))));
}

#[test]
fn a_syn_ack_that_leaves_the_syn_data_unacknowledged_still_times_the_handshake() {
    let mut c = fast_open_client(1000);
    c.send(&[5u8; 700]).unwrap();
    let out = drain(&mut c, t(0));
    assert_eq!(out[0].payload_len, 700);
    // 5 ms later the server acknowledges only the SYN (no Fast Open).
    let mut synack = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, None, &[]);
    synack.options.mss = Some(1460);
    c.on_segment(&synack, t(5));
    let snap = c.snapshot();
    assert_eq!(
        snap.srtt,
        Some(std::time::Duration::from_millis(5)),
        "the SYN's own ACK times the handshake"
    );
    let out = drain(&mut c, t(5));
    let data: Vec<_> = out.iter().filter(|s| s.payload_len > 0).collect();
    assert_eq!((data[0].seq, data[0].payload_len), (SeqNum(ISS + 1), 700));
    assert_eq!(
        c.snapshot().counters.bytes_sent,
        700,
        "sent again, counted once"
    );
}

#[test]
fn a_fast_open_client_whose_rest_rides_the_handshake_ack_delays_the_answers_ack() {
    // The Fast Open form of the ping-pong above (packetdrill's
    // blocking-connect-bypass): the SYN carries 900 bytes, a blocking
    // write waits at the SYN-ACK with 1,000 more, whose segment carries
    // the handshake's ACK; the answer's ACK then waits.
    let mut c = fast_open_client(900);
    assert_eq!(c.send(&[5u8; 1900]).unwrap(), 1900);
    let out = drain(&mut c, t(0));
    assert_eq!(out[0].payload_len, 900);
    let mut synack = seg(PEER, ISS + 901, Flags::SYN | Flags::ACK, Some(100), &[]);
    synack.options.mss = Some(1460);
    c.on_segment(&synack, t(20));
    let out = drain(&mut c, t(20));
    assert_eq!(
        (out.len(), out[0].seq, out[0].payload_len),
        (1, SeqNum(ISS + 901), 1000),
        "the rest, with the ACK: {out:?}"
    );
    c.on_segment(
        &seg(
            PEER + 1,
            ISS + 1901,
            Flags::ACK | Flags::PSH,
            Some(101),
            &[1u8; 500],
        ),
        t(40),
    );
    let mut buf = [0u8; 4096];
    assert_eq!(c.recv(&mut buf).unwrap(), 500);
    let out = drain(&mut c, t(40));
    assert!(out.is_empty(), "the answer's ACK waits: {out:?}");
}

#[test]
fn syn_data_sent_again_after_the_syn_ack_is_no_reply_so_the_answer_is_acked_at_once() {
    // packetdrill's syn-data-only-syn-acked: the server acknowledges only
    // the SYN; its 700 bytes go again at once with the handshake's ACK.
    // No write waited behind them, so Linux's delayed-ACK clock never
    // started: the server's answer is acknowledged at once (quick ACK).
    let mut c = fast_open_client(1000);
    c.send(&[5u8; 700]).unwrap();
    assert_eq!(drain(&mut c, t(0))[0].payload_len, 700);
    let mut synack = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, Some(100), &[]);
    synack.options.mss = Some(1040);
    c.on_segment(&synack, t(20));
    let out = drain(&mut c, t(20));
    assert_eq!(
        (out.len(), out[0].seq, out[0].payload_len),
        (1, SeqNum(ISS + 1), 700),
        "the SYN's data again, with the ACK: {out:?}"
    );
    c.on_segment(
        &seg(
            PEER + 1,
            ISS + 701,
            Flags::ACK | Flags::PSH,
            Some(101),
            &[1u8; 1000],
        ),
        t(20),
    );
    let out = drain(&mut c, t(20));
    assert_eq!(out.len(), 1, "the answer acknowledged at once: {out:?}");
    assert_eq!(out[0].ack, SeqNum(PEER + 1001));
}

#[test]
fn info_counts_delivered_segments_with_the_handshake_as_one() {
    // Linux's tcpi_delivered: segments, the SYN-ACK counted once acked.
    let mut c = established_with_ts(Config::default());
    assert_eq!(c.info(t(1)).delivered, 1, "the handshake");
    let mss = c.snapshot().mss as usize;
    c.send(&vec![3u8; 2 * mss]).unwrap();
    let out = drain(&mut c, t(2));
    assert_eq!(out.len(), 2);
    c.on_segment(
        &seg(
            PEER + 1,
            ISS + 1 + 2 * mss as u32,
            Flags::ACK,
            Some(102),
            &[],
        ),
        t(12),
    );
    assert_eq!(c.info(t(12)).delivered, 3, "two segments more, not bytes");
}

#[test]
fn nagle_in_minshalls_form_holds_a_short_segment_only_behind_another_short_one() {
    // As Linux (tcp_minshall_check): a short tail after full segments goes
    // at once; a second short segment waits while the first is
    // unacknowledged (RFC 896's one small segment per round trip).
    let mut c = established_with_ts(Config::default());
    let mss = c.snapshot().mss as usize;
    c.send(&vec![1u8; mss + 100]).unwrap();
    let out = drain(&mut c, t(2));
    let lens: Vec<_> = out.iter().map(|s| s.payload_len).collect();
    assert_eq!(
        lens,
        vec![mss, 100],
        "the short tail goes with the full one"
    );
    c.send(&[2u8; 50]).unwrap();
    assert!(
        drain(&mut c, t(3)).is_empty(),
        "held behind the unacknowledged short segment"
    );
    let acked = ISS + 1 + mss as u32 + 100;
    c.on_segment(&seg(PEER + 1, acked, Flags::ACK, Some(102), &[]), t(12));
    let out = drain(&mut c, t(12));
    assert_eq!(
        (out.len(), out[0].payload_len),
        (1, 50),
        "sent once acknowledged"
    );
}

#[test]
fn syn_data_sent_again_keeps_its_own_segment() {
    // Linux resends the SYN's data as the buffer it was, whatever MSS the
    // SYN-ACK announced; what follows starts a new segment.
    let mut c = fast_open_client(1420);
    c.send(&[5u8; 6000]).unwrap();
    assert_eq!(drain(&mut c, t(0))[0].payload_len, 1420);
    let mut synack = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, Some(100), &[]);
    synack.options.mss = Some(1460);
    synack.window = 65_535;
    c.on_segment(&synack, t(20));
    let out = drain(&mut c, t(20));
    let full = c.snapshot().mss as usize;
    assert_eq!(out[0].payload_len, 1420, "{out:?}");
    assert_eq!((out[1].seq, out[1].payload_len), (SeqNum(ISS + 1421), full));
}

/// Packetdrill's limited-transmit scripts: ten segments out, two duplicate
/// ACKs (each lets one new segment out, RFC 3042), then an ACK of the
/// first three. Returns how many segments that ACK lets out.
fn sent_after_reordering_is_resolved(sack: bool) -> usize {
    let cfg = Config {
        congestion: Algorithm::Cubic,
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        ..Config::default()
    };
    let mut c = Connection::listen(cfg, SeqNum(ISS));
    let mut syn = seg(PEER, 0, Flags::SYN, None, &[]);
    syn.options.mss = Some(1000);
    syn.options.sack_permitted = sack;
    c.on_segment(&syn, t(0));
    drain(&mut c, t(0));
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, None, &[]), t(100));
    c.send(&[7u8; 15_000]).unwrap();
    let out = drain(&mut c, t(100));
    assert_eq!(out.len(), 10, "the initial window");
    for (i, right) in [(0u32, 2001u32), (1, 3001)] {
        let mut dup = seg(PEER + 1, ISS + 1, Flags::ACK, None, &[]);
        if sack {
            dup.options.sack_blocks[0] = (ISS + 1001, ISS + right);
            dup.options.sack_count = 1;
        }
        let now = t(210 + 10 * u64::from(i));
        c.on_segment(&dup, now);
        assert_eq!(drain(&mut c, now).len(), 1, "limited transmit {i}");
    }
    c.on_segment(&seg(PEER + 1, ISS + 3001, Flags::ACK, None, &[]), t(230));
    drain(&mut c, t(230)).len()
}

#[test]
fn segments_a_duplicate_ack_stood_for_raise_cwnd_once_not_again_when_acked() {
    // As Linux: the ACK of 1:3001 newly delivers one segment (the other
    // two were SACKed, or stood for by duplicate ACKs, and raised no
    // cwnd then), so slow start's cwnd goes 10 -> 11; with 9 in flight,
    // two go out.
    assert_eq!(sent_after_reordering_is_resolved(true), 2, "with SACK");
    assert_eq!(sent_after_reordering_is_resolved(false), 2, "without SACK");
}

#[test]
fn an_aborts_reset_carries_timestamps_but_a_reply_reset_does_not() {
    // Linux's active reset (close with unread data) has the option, with
    // the clock read as it leaves (packetdrill's ts_recent/reset_tsval).
    let mut c = established_with_ts(Config::default());
    c.on_segment(
        &seg(PEER + 1, ISS + 1, Flags::ACK, Some(201), b"unread"),
        t(2),
    );
    let ack = drain(&mut c, t(2));
    let (tsval_then, _) = ack[0].options.timestamps.unwrap();
    c.abort();
    let out = drain(&mut c, t(1002));
    assert!(out[0].flags.rst(), "{out:?}");
    let (tsval, ecr) = out[0].options.timestamps.expect("timestamps on the reset");
    assert_eq!((tsval.wrapping_sub(tsval_then), ecr), (1000, 201));
    // A segment for a closed connection draws a reset without options.
    c.on_segment(
        &seg(PEER + 7, ISS + 1, Flags::ACK, Some(202), b"late"),
        t(1003),
    );
    let out = drain(&mut c, t(1003));
    assert!(
        out.iter().all(|s| s.options.timestamps.is_none()),
        "{out:?}"
    );
}

#[test]
fn msg_more_and_a_cork_hold_short_segments_until_lifted_or_the_timer() {
    let cfg = Config {
        nagle: false,
        ..Config::default()
    };
    let mut c = established_with_ts(cfg);
    // MSG_MORE: a short write waits for what follows...
    c.send_more(b"header:").unwrap();
    assert!(drain(&mut c, t(2)).is_empty(), "held for more");
    // ... and a plain write sends both, with PSH.
    c.send(b"body").unwrap();
    let out = drain(&mut c, t(3));
    assert_eq!((out.len(), out[0].payload_len), (1, 11));
    assert!(out[0].flags.psh());
    c.on_segment(&seg(PEER + 1, ISS + 12, Flags::ACK, Some(102), &[]), t(13));
    // A cork holds until lifted.
    c.set_cork(true);
    c.send(b"ab").unwrap();
    c.send(b"cd").unwrap();
    assert!(drain(&mut c, t(14)).is_empty(), "corked");
    c.set_cork(false);
    let out = drain(&mut c, t(15));
    assert_eq!((out.len(), out[0].payload_len), (1, 4));
    c.on_segment(&seg(PEER + 1, ISS + 16, Flags::ACK, Some(103), &[]), t(25));
    // Forgotten: with nothing in flight, the persist timer (an RTO)
    // sends what is held, with PSH.
    c.set_cork(true);
    c.send_more(b"late").unwrap();
    assert!(drain(&mut c, t(26)).is_empty());
    let due = c.poll_timeout().expect("the persist timer");
    assert!(due >= t(226), "{due:?}");
    c.handle_timeout(due);
    let out = drain(&mut c, due);
    assert_eq!((out.len(), out[0].payload_len), (1, 4));
    assert!(out[0].flags.psh());
}

#[test]
fn ecn_is_negotiated_marks_new_data_and_a_ce_mark_costs_cwnd_once_without_a_resend() {
    use xdptcp::tcp::ecn::Ecn;
    let ecn = |ecn| Config {
        ecn,
        congestion: Algorithm::Cubic,
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        ..Config::default()
    };
    // The client asks (SYN with ECE and CWR), the server agrees (ECE).
    let mut client = Connection::connect(ecn(Ecn::Request), SeqNum(ISS));
    let syn = drain(&mut client, t(0));
    assert!(syn[0].flags.contains(Flags::ECE | Flags::CWR), "{syn:?}");
    let mut server = Connection::listen(ecn(Ecn::Accept), SeqNum(PEER));
    server.on_segment(
        &seg(ISS, 0, Flags::SYN | Flags::ECE | Flags::CWR, None, &[]),
        t(0),
    );
    let synack = drain(&mut server, t(0));
    assert!(
        synack[0].flags.ece() && !synack[0].flags.cwr(),
        "{synack:?}"
    );
    // Without asking, a client gets no ECN from the same server.
    let mut plain = Connection::listen(ecn(Ecn::Accept), SeqNum(PEER));
    plain.on_segment(&seg(ISS, 0, Flags::SYN, None, &[]), t(0));
    assert!(!drain(&mut plain, t(0))[0].flags.ece());

    client.on_segment(
        &seg(
            PEER,
            ISS + 1,
            Flags::SYN | Flags::ACK | Flags::ECE,
            None,
            &[],
        ),
        t(10),
    );
    assert!(client.ecn_ok());
    let ack = drain(&mut client, t(10));
    assert!(!ack[0].ect, "a pure ACK is not ECN-capable");
    client.send(&[1u8; 20_000]).unwrap();
    let data = drain(&mut client, t(11));
    assert!(data.iter().all(|s| s.ect), "new data is sent ECT(0)");
    let cwnd = client.snapshot().cwnd;

    // The server receives a CE-marked segment: its ACKs echo ECE until
    // a segment with CWR arrives.
    server.on_segment(&seg(ISS + 1, PEER + 1, Flags::ACK, None, &[]), t(10));
    server.note_congestion_experienced();
    server.on_segment(
        &seg(ISS + 1, PEER + 1, Flags::ACK, None, &[1u8; 1000]),
        t(11),
    );
    let echo = drain(&mut server, t(11));
    assert!(echo[0].flags.ece(), "an ACK at once, with ECE: {echo:?}");

    // The client reduces once for the window, resends nothing, and its
    // next new data carries CWR.
    let acked = ISS + 1 + data[0].payload_len as u32;
    client.on_segment(
        &seg(PEER + 1, acked, Flags::ACK | Flags::ECE, None, &[]),
        t(20),
    );
    let after = client.snapshot();
    assert!(after.cwnd < cwnd, "{} -> {}", cwnd, after.cwnd);
    assert_eq!(after.counters.ecn_reductions, 1);
    assert_eq!(after.counters.retransmits, 0);
    // More of the window acknowledged, still with ECE: no second cut;
    // the flight now has room, and the first new segment carries CWR.
    let acked2 = acked + data[1..5].iter().map(|s| s.payload_len as u32).sum::<u32>();
    client.on_segment(
        &seg(PEER + 1, acked2, Flags::ACK | Flags::ECE, None, &[]),
        t(21),
    );
    assert_eq!(
        client.snapshot().counters.ecn_reductions,
        1,
        "once per window"
    );
    let next = drain(&mut client, t(21));
    assert!(next[0].flags.cwr() && next[0].ect, "{next:?}");
    assert!(next.iter().skip(1).all(|s| !s.flags.cwr()));

    server.on_segment(
        &seg(
            ISS + 1001,
            PEER + 1,
            Flags::ACK | Flags::CWR,
            None,
            &[2u8; 10],
        ),
        t(21),
    );
    let quiet = drain(&mut server, t(70));
    assert!(
        quiet.iter().all(|s| !s.flags.ece()),
        "CWR ends the echo: {quiet:?}"
    );
}

#[test]
fn info_says_when_data_and_acks_last_arrived() {
    // Linux's tcpi_last_data_recv counts from the handshake's end until
    // data comes (packetdrill's tcp-info-last_data_recv).
    let mut c = established_with_ts(Config::default());
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis());
    let i = c.info(t(1001));
    assert_eq!(
        (ms(i.last_data_recv), ms(i.last_ack_recv)),
        (Some(1000), Some(1000))
    );
    c.on_segment(
        &seg(PEER + 1, ISS + 1, Flags::ACK, Some(102), b"data"),
        t(1001),
    );
    assert_eq!(ms(c.info(t(1005)).last_data_recv), Some(4));
}

#[test]
fn the_receiver_takes_one_rtt_sample_per_timestamp_echoed() {
    // The segments of one flight echo the same TSval of ours; Linux takes
    // one receiver RTT sample from them (`rcv_rtt_last_tsecr`), not one
    // per segment, each later and so longer than the last.
    let mut c = established_with_ts(Config::default());
    let our_tsval = |c: &mut Connection, at: u64| {
        c.send(b"x").unwrap();
        let out = drain(c, t(at));
        out[0].options.timestamps.expect("timestamps").0
    };
    let data = |tsval: u32, ecr: u32, seq: u32| {
        let mut s = seg(PEER + 1 + seq, ISS + 1, Flags::ACK, None, b"d");
        s.options.timestamps = Some((tsval, ecr));
        s
    };
    let echoed = our_tsval(&mut c, 10);
    c.on_segment(&data(200, echoed, 0), t(30));
    let ms = |c: &Connection| c.info(t(0)).rcv_rtt.map(|d| d.as_millis());
    assert_eq!(ms(&c), Some(20));
    // Later in the same flight: the same echo, no new sample.
    c.on_segment(&data(201, echoed, 1), t(90));
    assert_eq!(ms(&c), Some(20), "one sample per echoed timestamp");
    // A new echo is a new sample: (7 * 20 + 10) / 8.
    let echoed = our_tsval(&mut c, 100);
    c.on_segment(&data(202, echoed, 2), t(110));
    assert_eq!(ms(&c), Some(18));
}

#[test]
fn a_fast_open_client_without_cookies_sends_bare_syn_data_and_keeps_no_unasked_cookie() {
    // Linux's tcp_fastopen 0x4: data on the SYN, no option at all.
    let mut c = Connection::connect(Config::default(), SeqNum(ISS));
    c.fast_open_client_without_cookie(900);
    c.send(&[4u8; 1900]).unwrap();
    let syn = drain(&mut c, t(0));
    assert_eq!((syn[0].payload_len, syn[0].options.fast_open), (900, None));
    let mut synack = seg(PEER, ISS + 901, Flags::SYN | Flags::ACK, None, &[]);
    synack.options.mss = Some(1460);
    synack.options.fast_open = Some(xdptcp::wire::tcp::FastOpen::with_cookie(
        &[1, 2, 3, 4],
        false,
    ));
    c.on_segment(&synack, t(20));
    assert_eq!(
        c.take_fast_open_cookie(),
        Some((None, Some(1460))),
        "the MSS only"
    );
}

#[test]
fn a_syn_ack_with_data_and_fin_leads_to_close_wait() {
    // RFC 9293 3.10.7.3: after the SYN, the segment's text and FIN are
    // processed as in any state (packetdrill's synack-data, Linux).
    let mut c = Connection::connect(Config::default(), SeqNum(ISS));
    drain(&mut c, t(0));
    let synack = seg(
        PEER,
        ISS + 1,
        Flags::SYN | Flags::ACK | Flags::FIN,
        None,
        b"answer",
    );
    c.on_segment(&synack, t(10));
    assert_eq!(c.state(), State::CloseWait);
    let mut buf = [0u8; 16];
    assert_eq!(c.recv(&mut buf).unwrap(), 6);
    assert!(c.at_eof());
    let out = drain(&mut c, t(10));
    assert_eq!(
        out[0].ack,
        SeqNum(PEER + 8),
        "the data and the FIN acknowledged"
    );
}

#[test]
fn a_syn_ack_echoing_a_timestamp_we_never_sent_is_refused_with_a_reset() {
    // Linux's PAWS check for an active open: the echo must lie between
    // our first SYN's TSval and now.
    let mut c = Connection::connect(Config::default(), SeqNum(ISS));
    let syn = drain(&mut c, t(0));
    let (tsval, _) = syn[0].options.timestamps.expect("our SYN has timestamps");
    let mut bogus = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, None, &[]);
    bogus.options.timestamps = Some((500, tsval.wrapping_add(9999)));
    c.on_segment(&bogus, t(10));
    assert_eq!(c.state(), State::SynSent, "still opening");
    let out = drain(&mut c, t(10));
    assert!(
        out[0].flags.rst() && out[0].seq == SeqNum(ISS + 1),
        "{out:?}"
    );
    let mut good = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, None, &[]);
    good.options.timestamps = Some((500, tsval));
    c.on_segment(&good, t(20));
    assert_eq!(c.state(), State::Established);
}

#[test]
fn a_fast_open_syn_too_big_for_the_path_is_sent_again_plain_with_the_paths_mss() {
    // packetdrill's syn-data-icmp-unreach-frag-needed: a router reports
    // an MTU of 800 for the SYN with data; Linux sends a plain SYN at
    // once, announcing 760.
    let mut c = fast_open_client(1000);
    c.send(&[5u8; 1000]).unwrap();
    assert_eq!(drain(&mut c, t(0))[0].payload_len, 1000);
    assert!(c.on_path_mtu(800, SeqNum(ISS), t(10)));
    let again = drain(&mut c, t(10));
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].flags.syn());
    assert_eq!((again[0].payload_len, again[0].options.mss), (0, Some(760)));
    assert_eq!(again[0].options.fast_open, None, "a plain SYN");
}

#[test]
fn a_burst_is_at_most_half_the_window_and_at_least_the_configured_segments() {
    // Linux: tcp_min_tso_segs segments per TSO packet at least, and never
    // more than half of cwnd (tcp_cwnd_test); PSH ends each packet.
    let cfg = Config {
        congestion: Algorithm::Cubic,
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        min_burst_segments: 10,
        ..Config::default()
    };
    let mut c = Connection::listen(cfg, SeqNum(ISS));
    let mut syn = seg(PEER, 0, Flags::SYN, None, &[]);
    syn.options.mss = Some(1000);
    c.on_segment(&syn, t(0));
    drain(&mut c, t(0));
    c.on_segment(&seg(PEER + 1, ISS + 1, Flags::ACK, None, &[]), t(100));
    c.send(&[7u8; 26_000]).unwrap();
    let out = drain(&mut c, t(100));
    let psh: Vec<_> = out
        .iter()
        .enumerate()
        .filter(|(_, s)| s.flags.psh())
        .map(|(i, _)| i)
        .collect();
    assert_eq!((out.len(), psh), (10, vec![4, 9]), "two bursts of five");
}

#[test]
fn syn_data_sent_again_counts_as_retransmitted_until_acknowledged() {
    // Linux's tcpi_retrans (retrans_out) counts the SYN's data resent
    // after a SYN-ACK that acknowledged only the SYN.
    let mut c = fast_open_client(1000);
    c.send(&[5u8; 3000]).unwrap();
    drain(&mut c, t(0));
    let mut synack = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, Some(100), &[]);
    synack.options.mss = Some(1460);
    c.on_segment(&synack, t(20));
    let out = drain(&mut c, t(20));
    assert!(out.len() >= 2, "{out:?}");
    assert_eq!(c.info(t(20)).retrans, 1, "the SYN's data, sent again");
    c.on_segment(
        &seg(PEER + 1, ISS + 1001, Flags::ACK, Some(101), &[]),
        t(40),
    );
    assert_eq!(c.info(t(40)).retrans, 0);
}

/// tcp_info's chronographs, as packetdrill's tcp-info-rwnd-limited plays
/// them: time held back by the peer's window, and busy time (all the time
/// data waited to be delivered), each stopping when the window opens or
/// everything is acknowledged.
#[test]
fn info_counts_time_held_back_by_the_peers_window_and_busy_time() {
    let cfg = Config {
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        ..Config::default()
    };
    let mut c = Connection::connect(cfg, SeqNum(ISS));
    drain(&mut c, t(0));
    // The SYN-ACK offers a zero window.
    let mut syn_ack = seg(PEER, ISS + 1, Flags::SYN | Flags::ACK, None, &[]);
    syn_ack.options.mss = Some(1000);
    syn_ack.window = 0;
    c.on_segment(&syn_ack, t(10));
    drain(&mut c, t(10));
    let ms = |d: Duration| d.as_millis();
    assert_eq!(ms(c.info(t(10)).rwnd_limited), 0);
    c.send(&[1u8; 1000]).unwrap();
    drain(&mut c, t(10));
    assert_eq!(ms(c.info(t(110)).rwnd_limited), 100);
    // The window opens at 210: the data goes, the window is no longer
    // to blame.
    let mut open = seg(PEER + 1, ISS + 1, Flags::ACK, None, &[]);
    open.window = 2000;
    c.on_segment(&open, t(210));
    assert!(drain(&mut c, t(210)).iter().any(|s| s.payload_len == 1000));
    assert_eq!(ms(c.info(t(240)).rwnd_limited), 200);
    // All acknowledged at 240 (with a 10-byte window): nothing runs.
    let mut acked = seg(PEER + 1, ISS + 1001, Flags::ACK, None, &[]);
    acked.window = 10;
    c.on_segment(&acked, t(240));
    drain(&mut c, t(240));
    assert_eq!(ms(c.info(t(300)).busy_time), 230);
    // Again held back from 240 to 340.
    c.send(&[2u8; 1000]).unwrap();
    drain(&mut c, t(240));
    let mut reopen = seg(PEER + 1, ISS + 1001, Flags::ACK, None, &[]);
    reopen.window = 2000;
    c.on_segment(&reopen, t(340));
    drain(&mut c, t(340));
    let i = c.info(t(340));
    assert_eq!((ms(i.rwnd_limited), ms(i.busy_time)), (300, 330));
    c.on_segment(&seg(PEER + 1, ISS + 2001, Flags::ACK, None, &[]), t(360));
    assert_eq!(ms(c.info(t(500)).busy_time), 350);
    assert_eq!(ms(c.info(t(500)).sndbuf_limited), 0);
}

/// A writer turned away by a full send buffer: the buffer is the limit
/// until an ACK makes room.
#[test]
fn info_counts_time_a_writer_waited_for_the_send_buffer() {
    let cfg = Config {
        unsent_limit: xdptcp::tcp::UnsentLimit::Off,
        send_buffer: 4096,
        autotune: false,
        ..Config::default()
    };
    let mut c = established_with_ts(cfg);
    assert_eq!(c.send(&[3u8; 10_000]).unwrap(), 4096);
    drain(&mut c, t(2));
    let ms = |d: Duration| d.as_millis();
    assert_eq!(ms(c.info(t(52)).sndbuf_limited), 50);
    let mss = c.snapshot().mss;
    c.on_segment(
        &seg(PEER + 1, ISS + 1 + 4096, Flags::ACK, Some(200), &[]),
        t(52),
    );
    drain(&mut c, t(52));
    let i = c.info(t(100));
    assert_eq!(
        (ms(i.sndbuf_limited), ms(i.busy_time)),
        (50, 50),
        "mss {mss}"
    );
}
