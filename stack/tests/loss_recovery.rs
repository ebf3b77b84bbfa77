//! Loss recovery mechanisms, one test each, between two connections on a
//! wire with scripted drops and delays: RACK repairing a lost
//! retransmission, PRR pacing recovery, F-RTO and timestamp undo of
//! spurious reductions, and zero-window probe replies not taken for loss.

mod common;

use common::{one_way, pair, pattern, Pair};
use std::time::Duration;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::{Config, SeqNum};
use xdptcp::time::Instant;

const MSS: u32 = 1448; // 1460 less 12 bytes of timestamps

fn config() -> Config {
    Config {
        min_rto: Duration::from_millis(200),
        ..Config::default()
    }
}

/// Times at which a sent segment starting at `seq` with payload.
fn sends_of(p: &Pair, seq: SeqNum) -> Vec<Instant> {
    p.log
        .iter()
        .filter(|(_, from_a, t)| *from_a && t.seq == seq && t.payload_len > 0)
        .map(|(at, _, _)| *at)
        .collect()
}

/// A segment is lost, and so is its first retransmission. RACK sees a
/// segment sent after the retransmission delivered, and resends again
/// one RTT plus the reordering window (a quarter of the minimum RTT)
/// later: no retransmission timeout, which would cost at least 200 ms.
#[test]
fn rack_repairs_a_lost_retransmission_within_rtt_and_reordering_window() {
    let mut p = pair(config(), 1000, config(), 5000, 10); // RTT 20 ms
    let victim = SeqNum(1001 + 40 * MSS);
    let mut drops = 0;
    p.drop = Box::new(move |t, from_a| {
        let hit = from_a && t.seq == victim && t.payload_len > 0 && drops < 2;
        drops += u32::from(hit);
        hit
    });
    assert!(one_way(&mut p, 2 << 20, Duration::from_secs(30)));
    let sends = sends_of(&p, victim);
    assert_eq!(sends.len(), 3, "original, lost retransmission, repair");
    let repair_after = sends[2] - sends[1];
    let c = p.a.counters();
    assert_eq!(c.rto_expirations, 0, "no timeout");
    // RTT 20 ms + reordering window 5 ms, plus up to an RTT for the ACK
    // of a later segment to arrive and the wire's batching.
    assert!(
        repair_after <= Duration::from_millis(45),
        "second retransmission {repair_after:?} after the first"
    );
    assert!(c.rack_lost_segments >= 2, "{c:?}");
}

/// PRR (RFC 6937) during one recovery from a single loss with NewReno:
/// ssthresh is half the flight, and sending follows delivery in that
/// proportion from the first ACK of recovery on (about one segment per
/// two delivered), instead of stopping until half the window has drained
/// as RFC 6675's pipe rule alone would.
#[test]
fn prr_spreads_sending_over_recovery_in_proportion_to_delivery() {
    let cfg = Config {
        congestion: Algorithm::NewReno,
        // Large buffers: the window is cwnd's, not the receiver's.
        send_buffer: 8 << 20,
        recv_buffer: 8 << 20,
        ..config()
    };
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 10);
    // A 100 Mbit/s bottleneck: ACKs return spaced by a segment's time.
    p.a_serialization = Some(Duration::from_micros(120));
    // Grow the window first, then lose one segment deep in a flight.
    let victim = SeqNum(1001 + 600 * MSS);
    let mut dropped = false;
    p.drop = Box::new(move |t, from_a| {
        let hit = from_a && t.seq == victim && t.payload_len > 0 && !dropped;
        dropped |= hit;
        hit
    });
    assert!(one_way(&mut p, 4 << 20, Duration::from_secs(30)));
    let sends = sends_of(&p, victim);
    assert_eq!(sends.len(), 2);
    let start = sends[1];
    // Recovery ends when an ACK covers what was outstanding at its start.
    let recover = p
        .log
        .iter()
        .filter(|(at, from_a, _)| *from_a && *at <= start)
        .map(|(_, _, t)| t.seq + t.payload_len as u32)
        .fold(victim, |m, e| if e > m { e } else { m });
    let end = p
        .log
        .iter()
        .find(|(at, from_a, t)| !*from_a && *at > start && t.ack >= recover)
        .map(|(at, _, _)| *at + p.delay)
        .unwrap();
    // Data segments a sent during recovery, and ACKs it received then.
    let sent: Vec<Instant> = p
        .log
        .iter()
        .filter(|(at, from_a, t)| *from_a && *at > start && *at < end && t.payload_len > 0)
        .map(|(at, _, _)| *at)
        .collect();
    let acks: Vec<Instant> = p
        .log
        .iter()
        .map(|(at, from_a, t)| (*at + p.delay, from_a, t))
        .filter(|(arr, from_a, _)| !**from_a && *arr > start && *arr < end)
        .map(|(arr, _, _)| arr)
        .collect();
    assert!(acks.len() >= 10, "{} ACKs in recovery", acks.len());
    // About half as many segments out as delivered (ssthresh/RecoverFS).
    let ratio = sent.len() as f64 / acks.len() as f64;
    assert!(
        (0.3..=0.75).contains(&ratio),
        "{} sent for {} ACKs in recovery",
        sent.len(),
        acks.len()
    );
    // Spread out: a good share of it while the first half of the ACKs
    // arrived (the pipe rule alone sends nothing then).
    let half = acks[acks.len() / 2];
    let early = sent.iter().filter(|&&t| t <= half).count();
    assert!(
        early * 3 >= sent.len(),
        "{early} of {} sends in the first half of recovery",
        sent.len()
    );
}

/// A delay spike longer than the RTO on the ACK path: the timer fires
/// though nothing was lost. F-RTO resends only the first segment, sees
/// the next two ACKs acknowledge data that was never resent, and undoes
/// the reduction. Timestamps are off, so the timestamp check cannot be
/// what sees it.
#[test]
fn frto_detects_a_spurious_timeout_and_undoes_the_cut() {
    let run = |frto: bool| {
        let cfg = Config {
            timestamps: false,
            frto,
            ..config()
        };
        let mut p = pair(cfg.clone(), 1000, cfg, 5000, 5);
        let spike_from = Instant::from_millis(100);
        let spike_until = Instant::from_millis(500);
        p.extra_delay = Box::new(move |_, from_a, at| {
            if !from_a && at >= spike_from && at < spike_until {
                spike_until.saturating_since(at)
            } else {
                Duration::ZERO
            }
        });
        let mut cwnd_before = 0;
        let (mut sent, mut got) = (0usize, 0usize);
        let total = 64 << 20;
        let mut buf = vec![0u8; 64 * 1024];
        let ok = p.run(Duration::from_secs(30), |p| {
            if p.now < spike_from {
                cwnd_before = p.a.snapshot().cwnd;
            }
            while sent < total {
                let chunk: Vec<u8> = (sent..total.min(sent + 16 * 1024)).map(pattern).collect();
                match p.a.send(&chunk) {
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
            got == total
        });
        assert!(ok);
        (p.a.counters().clone(), p.a.snapshot(), cwnd_before)
    };
    let (c, snap, before) = run(true);
    assert!(c.rto_expirations >= 1, "the spike fires the timer: {c:?}");
    assert_eq!(c.spurious_rtos, 1, "{c:?}");
    assert!(c.undone_recoveries >= 1, "{c:?}");
    assert!(
        snap.ssthresh >= before / 2,
        "ssthresh {} restored",
        snap.ssthresh
    );
    // Off, F-RTO says nothing (the D-SACKs for the resends still undo
    // the cut later: a second, slower way to the same end).
    let (c_off, _, _) = run(false);
    assert_eq!(c_off.spurious_rtos, 0);
}

/// One segment held back `hold` on the wire, long enough for RACK to
/// resend it. Returns the sender's counters.
fn hold_one_segment(hold: Duration) -> xdptcp::tcp::stats::Counters {
    let mut p = pair(config(), 1000, config(), 5000, 10);
    let victim = SeqNum(1001 + 300 * MSS);
    let mut held = false;
    p.extra_delay = Box::new(move |t, from_a, _| {
        if from_a && t.seq == victim && !held {
            held = true;
            hold
        } else {
            Duration::ZERO
        }
    });
    assert!(one_way(&mut p, 4 << 20, Duration::from_secs(30)));
    p.a.counters().clone()
}

/// The late original arrives after RACK resent it but before the resend
/// does: the ACK covering it echoes the original's timestamp, older than
/// the resend's, so the loss was not real (Eifel, RFC 3522) and the
/// window cut is undone.
#[test]
fn a_spurious_fast_retransmit_is_undone_by_timestamps() {
    let c = hold_one_segment(Duration::from_millis(20));
    assert_eq!(c.fast_retransmits, 1, "the late segment was resent: {c:?}");
    assert_eq!(c.undone_recoveries, 1, "and the cut undone: {c:?}");
    assert_eq!(c.rto_expirations, 0);
}

/// The late original arrives after its resend: the receiver reports the
/// duplicate with a D-SACK (also when PAWS drops the older copy), every
/// resend of the episode proved needless, and the cut is undone.
#[test]
fn a_spurious_fast_retransmit_is_undone_by_dsack() {
    let c = hold_one_segment(Duration::from_millis(40));
    assert_eq!(c.fast_retransmits, 1, "the late segment was resent: {c:?}");
    assert!(c.dsacks_received >= 1, "{c:?}");
    assert_eq!(c.undone_recoveries, 1, "and the cut undone: {c:?}");
}

/// A receiver that stops reading: the window closes, the sender probes
/// it, and the receiver answers each probe with ACK = SND.UNA and a zero
/// window. Those replies are not duplicate ACKs: no fast retransmit, no
/// recovery, no cut window (with SACK and without), and the data flows
/// once the reader returns.
#[test]
fn zero_window_probe_replies_are_not_duplicate_acks() {
    for sack in [true, false] {
        // A loss-based controller: BBR's cwnd follows its model of the
        // (here closed) path, not loss events, so it would prove nothing.
        let sender = Config {
            sack,
            congestion: Algorithm::NewReno,
            ..config()
        };
        let small = Config {
            recv_buffer: 16 * 1024,
            sack,
            ..config()
        };
        let mut p = pair(sender, 1000, small, 5000, 5);
        let total = 200 * 1024;
        let data: Vec<u8> = (0..total).map(pattern).collect();
        let mut sent = 0;
        // 60 s with nobody reading: the persist timer probes many times.
        p.run(Duration::from_secs(60), |p| {
            if sent < total {
                if let Ok(n) = p.a.send(&data[sent..]) {
                    sent += n;
                }
            }
            false
        });
        let c = p.a.counters().clone();
        let cwnd = p.a.snapshot().cwnd;
        assert!(c.window_probes_sent >= 3, "sack {sack}: {c:?}");
        assert_eq!(c.dup_acks_received, 0, "sack {sack}: {c:?}");
        assert_eq!(
            c.fast_retransmits, 0,
            "sack {sack}: probe replies taken for loss"
        );
        assert!(cwnd >= 10 * MSS, "sack {sack}: cwnd cut to {cwnd}");
        // The reader comes back: everything arrives.
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let ok = p.run(Duration::from_secs(60), |p| {
            if sent < total {
                if let Ok(n) = p.a.send(&data[sent..]) {
                    sent += n;
                }
            }
            while let Ok(n) = p.b.recv(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got.len() == total
        });
        assert!(ok, "sack {sack}: {} of {total} arrived", got.len());
        assert!(got == data);
    }
}

/// Two of our stacks open to each other at once (RFC 9293 figure 8): the
/// SYNs cross, each answers with a SYN-ACK, and each SYN-ACK completes the
/// other side's handshake. One SYN and one SYN-ACK per side, then data.
#[test]
fn simultaneous_open_between_two_stacks() {
    use xdptcp::tcp::{Connection, State};
    let a = Connection::connect(config(), SeqNum(1000));
    let b = Connection::connect(config(), SeqNum(900_000));
    let mut p = Pair::new(a, b, Duration::from_millis(5));
    let ok = p.run(Duration::from_secs(5), |p| {
        p.a.state() == State::Established && p.b.state() == State::Established
    });
    assert!(ok, "a {} b {}", p.a.state(), p.b.state());
    assert!(p.now <= Instant::from_millis(10), "took {:?}", p.now);
    for from_a in [true, false] {
        let syn_acks = p
            .log
            .iter()
            .filter(|(_, f, t)| *f == from_a && t.flags.syn() && t.flags.ack())
            .count();
        assert_eq!(
            syn_acks,
            1,
            "SYN-ACKs from {}",
            if from_a { "a" } else { "b" }
        );
    }
    assert!(common::exchange(
        &mut p,
        256 * 1024,
        Duration::from_secs(10)
    ));
}

/// A connection the user closed and let go of: the peer acknowledges our
/// FIN but never sends its own. Released, it waits in FIN-WAIT-2 only
/// `fin_timeout`, then resets the peer; not released (a half-close the
/// user still reads from), it waits as long as the peer likes. And an
/// orphan whose peer keeps the window shut, answering every probe, gives
/// up after `orphan_retries` probes.
#[test]
fn orphaned_connections_end() {
    use xdptcp::tcp::State;
    let cfg = Config {
        fin_timeout: Duration::from_secs(30),
        ..config()
    };
    for orphan in [true, false] {
        let mut p = pair(cfg.clone(), 1000, config(), 5000, 5);
        p.a.close();
        if orphan {
            p.a.orphan();
        }
        p.run(Duration::from_secs(5), |p| p.a.state() == State::FinWait2);
        assert_eq!(p.a.state(), State::FinWait2);
        p.run(Duration::from_secs(40), |_| false);
        if orphan {
            assert_eq!(p.a.state(), State::Closed, "orphan in FIN-WAIT-2 ends");
            assert_eq!(p.a.counters().orphans_dropped, 1);
            assert_eq!(p.b.state(), State::Closed, "the peer was reset");
        } else {
            assert_eq!(p.a.state(), State::FinWait2, "a half-close may last");
        }
    }
    // Zero window, answered probes, nobody reading on the other side.
    let small = Config {
        recv_buffer: 4096,
        ..config()
    };
    let mut p = pair(cfg, 1000, small, 5000, 5);
    let data = vec![7u8; 64 * 1024];
    let mut sent = 0;
    p.run(Duration::from_secs(2), |p| {
        if let Ok(n) = p.a.send(&data[sent..]) {
            sent += n;
        }
        false
    });
    p.a.close();
    p.a.orphan();
    let before = p.a.counters().window_probes_sent;
    p.run(Duration::from_secs(3600), |p| p.a.state() == State::Closed);
    let c = p.a.counters();
    assert_eq!(p.a.state(), State::Closed, "{c:?}");
    assert_eq!(c.orphans_dropped, 1);
    let probes = c.window_probes_sent - before;
    assert!((8..=9).contains(&probes), "{probes} probes as an orphan");
}

/// A forged or stray D-SACK to `p.a` for `[seq, seq + MSS)`, with the
/// timestamp of the receiver's latest segment to have arrived (so that
/// PAWS lets it through and drops none of those still on the wire).
fn inject_dsack(p: &mut Pair, seq: SeqNum) {
    let now = p.now;
    let last_b = p
        .log
        .iter()
        .rev()
        .find(|(at, from_a, _)| !*from_a && *at + p.delay <= now)
        .map(|(_, _, t)| *t)
        .expect("b has sent");
    let una = p.a.seq_space().snd_una;
    let mut options = xdptcp::wire::tcp::TcpOptions {
        timestamps: last_b.options.timestamps,
        ..Default::default()
    };
    options.sack_blocks[0] = (seq.0, (seq + MSS).0);
    options.sack_count = 1;
    let seg = xdptcp::wire::tcp::TcpSegment {
        src_port: 2,
        dst_port: 1,
        seq: last_b.seq.0,
        ack: una.0,
        flags: xdptcp::wire::tcp::Flags::ACK,
        window: last_b.window,
        urgent: 0,
        options,
        payload: &[],
        lent: None,
    };
    p.a.on_segment(&seg, now);
}

/// Two real losses, each repaired in its own recovery episode. While the
/// second is under way, D-SACKs arrive for the first episode's
/// retransmission (a stray report, twice): they prove nothing about the
/// second, whose window cut stands (RFC 3708: only D-SACKs for this
/// episode's retransmissions count, each once).
#[test]
fn stray_dsacks_do_not_undo_a_real_reduction() {
    let mut p = pair(config(), 1000, config(), 5000, 10);
    let first = SeqNum(1001 + 100 * MSS);
    let second = SeqNum(1001 + 1500 * MSS);
    let mut dropped = [false, false];
    p.drop = Box::new(move |t, from_a| {
        for (k, v) in [first, second].into_iter().enumerate() {
            if from_a && t.seq == v && t.payload_len > 0 && !dropped[k] {
                dropped[k] = true;
                return true;
            }
        }
        false
    });
    let mut injected = false;
    let ok = common::one_way_with(&mut p, 4 << 20, Duration::from_secs(30), |p| {
        if p.a.counters().sack_recoveries == 2 && !injected {
            injected = true;
            inject_dsack(p, first);
            inject_dsack(p, first);
        }
    });
    assert!(ok);
    let c = p.a.counters();
    assert!(injected);
    assert_eq!((c.sack_recoveries, c.retransmits), (2, 2), "{c:?}");
    assert!(c.dsacks_received >= 2, "{c:?}");
    assert_eq!(c.undone_recoveries, 0, "a real cut was undone: {c:?}");
    assert_eq!(c.paws_rejected, 0, "the injected segments were in time");
}

/// The application stops writing (its thread was not scheduled, say)
/// right after a burst whose third-to-last segment is lost: the two
/// segments after it are SACKed, fewer than three duplicate ACKs, and
/// nothing more follows. RACK sees later segments delivered and resends
/// the lost one once its reordering window has passed; if RACK cannot,
/// the tail loss probe does two RTTs later. Never the 200 ms timeout,
/// with either congestion control. (Here RACK's timer calls the loss;
/// where the ACK of a short segment written after the pause calls it,
/// BBR's packet conservation once left less than a segment of cwnd: see
/// `bbr::tests::recovery_leaves_room_for_at_least_one_segment`.)
#[test]
fn an_application_limited_tail_loss_is_repaired_without_a_timeout() {
    for cc in [Algorithm::Cubic, Algorithm::Bbr] {
        let cfg = Config {
            congestion: cc,
            ..config()
        };
        let mut p = pair(cfg.clone(), 1000, cfg, 5000, 1); // RTT 2 ms
        let warm = 256 << 10;
        assert!(one_way(&mut p, warm, Duration::from_secs(10)));
        let first = SeqNum(1001 + warm as u32);
        let victim = first + 7 * MSS;
        let mut dropped = false;
        p.drop = Box::new(move |t, from_a| {
            let hit = from_a && t.seq == victim && t.payload_len > 0 && !dropped;
            dropped |= hit;
            hit
        });
        let burst = vec![7u8; 9 * MSS as usize + 500];
        assert_eq!(p.a.send(&burst), Ok(burst.len()), "{cc:?}: room for it");
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let done = p.run(Duration::from_secs(2), |p| {
            while let Ok(n) = p.b.recv(&mut buf) {
                if n == 0 {
                    break;
                }
                got += n;
            }
            got == burst.len()
        });
        assert!(done, "{cc:?}: {got} of {} bytes arrived", burst.len());
        let sends = sends_of(&p, victim);
        assert_eq!(sends.len(), 2, "{cc:?}: sent once and repaired once");
        let c = p.a.counters();
        assert_eq!(c.rto_expirations, 0, "{cc:?}: no timeout: {c:?}");
        // RTT 2 ms; RACK's window or the probe's 2 RTTs + 2 ms at most.
        let repair_after = sends[1] - sends[0];
        assert!(
            repair_after <= Duration::from_millis(8),
            "{cc:?}: repaired {repair_after:?} after it was sent"
        );
    }
}
