//! What one hostile or injected segment can do to a connection, and what
//! it must not: segments that fail the acceptability checks change no
//! state (RFC 7323 4.3/5.3, RFC 5961 3 and 5), and a half-open
//! connection answers resets as RFC 9293 3.10.7.4 and RFC 5961 3 say.

mod common;

use common::{one_way, pair, segment};
use std::time::Duration;
use xdptcp::tcp::{Config, Connection, SeqNum, State};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::Flags;

/// The newest TSval `from_a` sent, from the wire's log.
fn last_tsval(p: &common::Pair, from_a: bool) -> u32 {
    p.log
        .iter()
        .rev()
        .find(|(_, a, t)| *a == from_a && t.options.timestamps.is_some())
        .and_then(|(_, _, t)| t.options.timestamps)
        .expect("timestamps negotiated")
        .0
}

#[test]
fn a_segment_acknowledging_unsent_data_does_not_move_ts_recent() {
    let cfg = Config::default();
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 5);
    assert!(one_way(&mut p, 256 * 1024, Duration::from_secs(30)));
    // Let the delayed ACK go: RCV.NXT is then what b last acknowledged.
    p.run(Duration::from_secs(1), |_| false);
    // In the receive window (the attacker guessed RCV.NXT), but its ACK
    // acknowledges a gigabyte b never sent, and its TSval is far ahead.
    let b = p.b.seq_space();
    let tsval = last_tsval(&p, true).wrapping_add(0x4000_0000);
    let mut seg = segment(b.rcv_nxt.0, (b.snd_max + 1_000_000_000).0, Flags::ACK, &[]);
    seg.options.timestamps = Some((tsval, 0));
    let now = p.now;
    p.b.on_segment(&seg, now);
    // Had b taken that TSval as TS.Recent, PAWS would now drop every
    // segment of a's, and the transfer below would stall.
    assert!(
        one_way(&mut p, 1 << 20, Duration::from_secs(30)),
        "the transfer stalled after one injected segment: {:?}",
        p.b.counters()
    );
    assert_eq!(p.b.counters().paws_rejected, 0);
}

/// A listener that took a SYN and sent its SYN-ACK: SYN-RECEIVED.
fn half_open() -> (Connection, u32, Instant) {
    let cfg = Config::default();
    let mut c = Connection::listen(cfg, SeqNum(7000));
    let now = Instant::from_millis(1);
    let irs = 40_000u32;
    c.on_segment(&segment(irs, 0, Flags::SYN, &[]), now);
    let synack = c.poll_transmit(now).expect("SYN-ACK");
    assert!(synack.flags.syn() && synack.flags.ack());
    assert!(c.poll_transmit(now).is_none());
    assert_eq!(c.state(), State::SynReceived);
    (c, irs + 1, now)
}

#[test]
fn syn_received_drops_an_out_of_window_reset() {
    let (mut c, rcv_nxt, now) = half_open();
    c.on_segment(&segment(rcv_nxt + 10_000_000, 0, Flags::RST, &[]), now);
    assert_eq!(c.state(), State::SynReceived);
    assert_eq!(c.poll_transmit(now), None, "nothing answers it");
}

#[test]
fn syn_received_answers_an_in_window_reset_with_a_challenge_ack() {
    let (mut c, rcv_nxt, now) = half_open();
    c.on_segment(&segment(rcv_nxt + 100, 0, Flags::RST, &[]), now);
    assert_eq!(c.state(), State::SynReceived);
    let t = c.poll_transmit(now).expect("a challenge ACK");
    assert_eq!(t.flags, Flags::ACK, "an ACK, not a SYN-ACK: {t:?}");
    assert_eq!((t.seq, t.ack), (SeqNum(7001), SeqNum(rcv_nxt)));
    assert_eq!(c.poll_transmit(now), None);
}

#[test]
fn syn_received_ends_quietly_on_an_exact_reset() {
    let (mut c, rcv_nxt, now) = half_open();
    c.on_segment(&segment(rcv_nxt, 0, Flags::RST, &[]), now);
    // Back to LISTEN (RFC 9293 3.10.7.4): the half-open connection is
    // gone, nothing is sent, and no error reaches a user who never had it.
    assert_eq!(c.state(), State::Listen);
    assert_eq!(c.poll_transmit(now), None);
    assert_eq!(c.error(), None);
}

/// Both ends configured for jumbo segments (MSS 8960) on a link whose
/// MTU is 1500: each offers in its SYN only what its device carries, so
/// the transfer runs at 1460 bytes a segment instead of stalling on
/// segments the device cannot send.
#[test]
fn an_mss_configured_past_the_device_mtu_is_not_offered() {
    use xdptcp::device::sim::LinkConfig;
    use xdptcp::simulation::{run_transfer, TransferSpec};
    let spec = TransferSpec {
        bytes: 4 << 20,
        link: LinkConfig {
            mtu: 1500,
            ..LinkConfig::default()
        },
        tcp: Config {
            mss: 8960,
            ..Config::default()
        },
        sim_limit: Duration::from_secs(60),
        ..TransferSpec::default()
    };
    let r = run_transfer(&spec, &mut |_| {}, &mut |_| {}, &mut |_, _| {});
    assert!(r.completed, "{:?}", r.error);
    assert!(r.sender.mss <= 1460, "sender's MSS {}", r.sender.mss);
}

/// Path MTU discovery lowers the MSS on a router's word; ten minutes on
/// (RFC 1191 6.3) the full size is tried again, and a path still narrow
/// lowers it again the same way.
#[test]
fn a_lowered_path_mtu_is_tried_again_after_ten_minutes() {
    let cfg = Config::default();
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 5);
    assert!(one_way(&mut p, 64 * 1024, Duration::from_secs(10)));
    let full = p.a.snapshot().mss;
    let una = p.a.seq_space().snd_una;
    p.a.send(&[1u8; 20_000]).unwrap();
    let now = p.now;
    while p.a.poll_transmit(now).is_some() {}
    assert!(p.a.on_path_mtu(1200, una, now));
    assert_eq!(p.a.snapshot().mss, 1200 - 40 - 12);
    let later = now + Duration::from_secs(601);
    let _ = p.a.poll_transmit(later);
    assert_eq!(p.a.snapshot().mss, full, "the full size is tried again");
}
