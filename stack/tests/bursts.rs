//! Burst plans (`tcp/burst.rs`) change what a segment costs, never what
//! is sent: the same transfer with plans on and off puts the same
//! segments on the wire at the same instants, through loss and recovery,
//! pacing, ECN, records, writes of every size and the FIN; also when the
//! sender may hand out only a few segments per pass (a full transmit
//! ring), so that plans are cut short and give segments back.

mod common;

use common::{pair, pattern, read_checked, Pair};
use std::collections::HashSet;
use std::time::Duration;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::ecn::Ecn;
use xdptcp::tcp::{Config, State, TcpError};

const MSS: u32 = 1448;

struct Case {
    cc: Algorithm,
    /// Drop the first transmission of every data segment from a whose
    /// index (sequence offset / MSS) is 3 modulo this.
    drop_every: Option<u32>,
    /// Segments a may send per pass.
    pass_limit: Option<usize>,
}

/// Writes of many sizes (under a segment, whole segments, odd lengths,
/// larger than the window), a record end after every fourth, then a
/// close. Returns the wire's log and a's counters.
fn transfer(case: &Case, plan_bursts: bool) -> (Pair, u64) {
    let cfg = Config {
        congestion: case.cc,
        plan_bursts,
        ecn: Ecn::Request,
        send_buffer: 512 * 1024,
        recv_buffer: 256 * 1024,
        ..Config::default()
    };
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 2);
    p.a_pass_limit = case.pass_limit;
    if let Some(n) = case.drop_every {
        let mut dropped = HashSet::new();
        p.drop = Box::new(move |t, from_a| {
            let index = t.seq.0.wrapping_sub(1001) / MSS;
            from_a && t.payload_len > 0 && index % n == 3 && dropped.insert(t.seq.0)
        });
    }
    const SIZES: [usize; 9] = [1, 700, 1448, 7240, 3000, 28967, 65536, 100, 250_000];
    let total: usize = SIZES.iter().cycle().take(40).sum();
    let (mut sent, mut got, mut writes, mut closed) = (0usize, 0usize, 0usize, false);
    let mut in_write = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let done = p.run(Duration::from_secs(120), |p| {
        while sent < total {
            let size = SIZES[writes % SIZES.len()];
            let chunk: Vec<u8> = (sent..sent + size - in_write).map(pattern).collect();
            match p.a.send(&chunk) {
                Ok(n) => {
                    sent += n;
                    in_write += n;
                }
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
            if in_write < size {
                break;
            }
            in_write = 0;
            writes += 1;
            if writes % 4 == 0 {
                p.a.end_record();
            }
        }
        if sent == total && !closed {
            p.a.close();
            closed = true;
        }
        got += read_checked(&mut p.b, &mut buf, got);
        p.a.check_invariants().expect("a's invariants");
        got == total && p.b.state() == State::CloseWait
    });
    assert!(done, "transfer unfinished: {got} of {total} bytes");
    let planned = p.a.counters().burst_segments;
    (p, planned)
}

fn same_wire(case: Case) -> u64 {
    let (on, planned) = transfer(&case, true);
    let (off, unplanned) = transfer(&case, false);
    assert_eq!(unplanned, 0, "plans off, yet segments from a plan");
    for (i, (x, y)) in on.log.iter().zip(&off.log).enumerate() {
        assert_eq!(x, y, "segment {i} differs (plans on, off)");
    }
    assert_eq!(on.log.len(), off.log.len(), "as many segments");
    let mut counters = on.a.counters().clone();
    counters.burst_segments = 0;
    assert_eq!(
        &counters,
        off.a.counters(),
        "a's counters, but for the plans' own"
    );
    planned
}

/// About a thousand data segments in each transfer. Paced at this
/// path's rate, BBR banks credit for a few segments at a time only, so
/// fewer of its segments come from plans.
#[test]
fn paced_bbr_sends_the_same_segments_with_and_without_plans() {
    let planned = same_wire(Case {
        cc: Algorithm::Bbr,
        drop_every: None,
        pass_limit: None,
    });
    assert!(planned >= 5, "only {planned} segments came from plans");
}

#[test]
fn cubic_under_loss_sends_the_same_segments_with_and_without_plans() {
    let planned = same_wire(Case {
        cc: Algorithm::Cubic,
        drop_every: Some(97),
        pass_limit: None,
    });
    assert!(planned > 500, "only {planned} segments came from plans");
}

#[test]
fn bbr_under_loss_sends_the_same_segments_with_and_without_plans() {
    let planned = same_wire(Case {
        cc: Algorithm::Bbr,
        drop_every: Some(61),
        pass_limit: None,
    });
    assert!(planned >= 5, "only {planned} segments came from plans");
}

/// Three segments per pass: most plans are cut short by the ACKs that
/// arrive before the next pass, and give the rest back.
#[test]
fn plans_cut_short_by_a_full_ring_give_their_segments_back() {
    for cc in [Algorithm::NewReno, Algorithm::Bbr] {
        let planned = same_wire(Case {
            cc,
            drop_every: Some(89),
            pass_limit: Some(3),
        });
        assert!(
            planned >= 20,
            "{cc:?}: only {planned} segments came from plans"
        );
    }
}

/// The application writes, ends records and corks between a plan's
/// segments, at the same instant (a driver of the bare connection may):
/// the segments still leave as they would without plans.
#[test]
fn calls_between_a_plans_segments_change_nothing_on_the_wire() {
    let segments = |plan_bursts: bool| {
        let cfg = Config {
            plan_bursts,
            congestion: Algorithm::Cubic,
            ..Config::default()
        };
        let mut p = pair(cfg.clone(), 1000, cfg, 5000, 2);
        let now = p.now;
        p.a.send(&vec![7u8; 7 * MSS as usize]).expect("room");
        let mut out = Vec::new();
        for round in 0..8u8 {
            for _ in 0..2 {
                out.extend(p.a.poll_transmit(now));
            }
            match round % 4 {
                0 => drop(p.a.send(&[round; 100]).expect("room")),
                1 => p.a.end_record(),
                2 => p.a.set_cork(true),
                _ => p.a.set_cork(false),
            }
        }
        out.extend(std::iter::from_fn(|| p.a.poll_transmit(now)));
        (out, p.a.counters().burst_segments)
    };
    let ((on, planned), (off, _)) = (segments(true), segments(false));
    // Each call gives a plan back; the next poll plans again.
    assert!(planned >= 3, "{planned} segments came from plans");
    assert_eq!(on.len(), off.len(), "{on:?}\n{off:?}");
    for (i, (x, y)) in on.iter().zip(&off).enumerate() {
        assert_eq!(x, y, "segment {i} differs (plans on, off)");
    }
}
