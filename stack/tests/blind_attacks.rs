//! A blind attacker (RFC 5961's model: it knows the 4-tuple, not the
//! sequence numbers) floods both ends of a transfer with RSTs, SYNs, data
//! and bare ACKs at guessed sequence and acknowledgment numbers. The
//! transfer completes intact, nobody is reset, and what the attack draws
//! from us stays within the rate limits: challenge ACKs at most 10 per
//! second, bare out-of-window ACKs answered at most every 500 ms.

mod common;

use common::{one_way_with, pair, segment};
use std::time::Duration;
use xdptcp::tcp::{Config, State};
use xdptcp::wire::tcp::Flags;

#[test]
fn a_blind_flood_of_guessed_segments_neither_resets_nor_corrupts_a_transfer() {
    let cfg = Config::default();
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 5);
    let total = 8 << 20;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let junk = [0xeeu8; 100];
    let start = p.now;
    let mut injected = 0u64;
    // Every byte b reads is checked against what a sent.
    let ok = one_way_with(&mut p, total, Duration::from_secs(120), |p| {
        // Eight guessed segments at the two ends per step (paced in
        // quanta, the transfer takes few steps).
        for _ in 0..8 {
            let r = next();
            let (seq, ack) = (r as u32, (r >> 32) as u32);
            let seg = match r % 4 {
                0 => segment(seq, ack, Flags::RST, &[]),
                1 => segment(seq, ack, Flags::SYN, &[]),
                2 => segment(seq, ack, Flags::ACK | Flags::PSH, &junk),
                _ => segment(seq, ack, Flags::ACK, &[]),
            };
            let now = p.now;
            if r & 16 == 0 {
                p.a.on_segment(&seg, now);
            } else {
                p.b.on_segment(&seg, now);
            }
            injected += 1;
        }
    });
    assert!(ok, "the transfer did not complete: {:?}", p.b.snapshot());
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.b.state(), State::Established);
    let secs = (p.now - start).as_secs_f64();
    assert!(injected > 10_000, "{injected} segments injected");
    for (name, c) in [("sender", p.a.counters()), ("receiver", p.b.counters())] {
        let allowed = 10.0 * (secs + 1.0);
        assert!(
            (c.challenge_acks_sent as f64) <= allowed,
            "{name}: {} challenge ACKs in {secs:.2} s",
            c.challenge_acks_sent
        );
        assert!(
            c.challenge_acks_suppressed > 0,
            "{name}: the limit was reached: {c:?}"
        );
        assert!(
            c.oow_acks_suppressed > 0,
            "{name}: bare ACKs were limited: {c:?}"
        );
    }
}
