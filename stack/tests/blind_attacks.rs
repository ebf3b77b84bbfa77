//! A blind attacker (RFC 5961's model: it knows the 4-tuple, not the
//! sequence numbers) floods both ends of a transfer with RSTs, SYNs, data
//! and bare ACKs at guessed sequence and acknowledgment numbers. The
//! transfer completes intact, nobody is reset, and what the attack draws
//! from us stays within the rate limits: challenge ACKs at most 10 per
//! second, bare out-of-window ACKs answered at most every 500 ms.

mod common;

use common::{pair, pattern, segment};
use std::time::Duration;
use xdptcp::tcp::{Config, State, TcpError};
use xdptcp::wire::tcp::Flags;

#[test]
fn a_blind_flood_of_guessed_segments_neither_resets_nor_corrupts_a_transfer() {
    let cfg = Config::default();
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 5);
    let total = 8 << 20;
    let (mut sent, mut got) = (0usize, 0usize);
    let mut buf = vec![0u8; 64 * 1024];
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
    let ok = p.run(Duration::from_secs(120), |p| {
        while sent < total {
            let chunk: Vec<u8> = (sent..total.min(sent + 16 * 1024)).map(pattern).collect();
            match p.a.send(&chunk) {
                Ok(n) => sent += n,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        loop {
            match p.b.recv(&mut buf) {
                Ok(0) | Err(TcpError::WouldBlock) => break,
                Ok(n) => {
                    for (k, byte) in buf[..n].iter().enumerate() {
                        assert_eq!(*byte, pattern(got + k), "byte {} altered", got + k);
                    }
                    got += n;
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        // Four guessed segments at each end per step.
        for _ in 0..4 {
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
        got == total
    });
    assert!(ok, "{got} of {total} bytes arrived");
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
