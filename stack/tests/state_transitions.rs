//! One test per arrow of the RFC 9293 state diagram (section 3.3.2), named
//! after it, plus RST handling in every state. Each drives one connection
//! with crafted segments and checks both the new state and what it sent.

mod common;

use common::segment as seg;
use std::time::Duration;
use xdptcp::tcp::{Config, ConnError, Connection, Event, SeqNum, State, Transmit};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::{Flags, TcpSegment};

const ISS: u32 = 1000;
const PEER_ISS: u32 = 5000;

fn cfg() -> Config {
    Config {
        time_wait: Duration::from_secs(60),
        ..Config::default()
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn syn(seq: u32) -> TcpSegment<'static> {
    let mut s = seg(seq, 0, Flags::SYN, &[]);
    s.options.mss = Some(1460);
    s
}

fn drain(c: &mut Connection, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| c.poll_transmit(now)).collect()
}

fn only(c: &mut Connection, now: Instant) -> Transmit {
    let out = drain(c, now);
    assert_eq!(out.len(), 1, "expected exactly one segment, got {out:?}");
    out[0]
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// SYN-SENT with its SYN sent.
fn syn_sent() -> Connection {
    let mut c = Connection::connect(cfg(), SeqNum(ISS));
    let s = only(&mut c, t(0));
    assert_eq!(s.flags, Flags::SYN);
    c
}

/// SYN-RECEIVED reached from LISTEN, SYN-ACK sent.
fn syn_received() -> Connection {
    let mut c = Connection::listen(cfg(), SeqNum(ISS));
    c.on_segment(&syn(PEER_ISS), t(0));
    only(&mut c, t(0));
    c
}

fn established() -> Connection {
    let mut c = syn_sent();
    c.on_segment(&seg(PEER_ISS, ISS + 1, Flags::SYN | Flags::ACK, &[]), t(1));
    only(&mut c, t(1));
    assert_eq!(c.state(), State::Established);
    c
}

/// FIN-WAIT-1 with our FIN (seq ISS+1) sent.
fn fin_wait_1() -> Connection {
    let mut c = established();
    c.close();
    let f = only(&mut c, t(2));
    assert!(f.flags.fin());
    c
}

fn fin_wait_2() -> Connection {
    let mut c = fin_wait_1();
    c.on_segment(&seg(PEER_ISS + 1, ISS + 2, Flags::ACK, &[]), t(3));
    assert_eq!(c.state(), State::FinWait2);
    c
}

fn close_wait() -> Connection {
    let mut c = established();
    c.on_segment(
        &seg(PEER_ISS + 1, ISS + 1, Flags::FIN | Flags::ACK, &[]),
        t(2),
    );
    only(&mut c, t(2));
    assert_eq!(c.state(), State::CloseWait);
    c
}

fn closing() -> Connection {
    let mut c = fin_wait_1();
    c.on_segment(
        &seg(PEER_ISS + 1, ISS + 1, Flags::FIN | Flags::ACK, &[]),
        t(3),
    );
    only(&mut c, t(3));
    assert_eq!(c.state(), State::Closing);
    c
}

fn last_ack() -> Connection {
    let mut c = close_wait();
    c.close();
    let f = only(&mut c, t(3));
    assert!(f.flags.fin());
    assert_eq!(c.state(), State::LastAck);
    c
}

fn time_wait() -> Connection {
    let mut c = fin_wait_2();
    c.on_segment(
        &seg(PEER_ISS + 1, ISS + 2, Flags::FIN | Flags::ACK, &[]),
        t(4),
    );
    only(&mut c, t(4));
    assert_eq!(c.state(), State::TimeWait);
    c
}

#[test]
fn closed_to_listen_on_passive_open() {
    let c = Connection::new(cfg(), SeqNum(ISS));
    assert_eq!(c.state(), State::Closed);
    let mut l = Connection::listen(cfg(), SeqNum(ISS));
    assert_eq!(l.state(), State::Listen);
    assert!(drain(&mut l, t(0)).is_empty(), "a listener sends nothing");
}

#[test]
fn closed_to_syn_sent_on_active_open_sends_syn() {
    let mut c = Connection::connect(cfg(), SeqNum(ISS));
    assert_eq!(c.state(), State::SynSent);
    let s = only(&mut c, t(0));
    assert_eq!(s.seq, SeqNum(ISS));
    assert_eq!(s.flags, Flags::SYN);
    assert_eq!(s.options.mss, Some(1460));
    assert!(c.poll_timeout().is_some(), "SYN retransmission timer armed");
}

#[test]
fn listen_to_syn_received_on_syn_sends_syn_ack() {
    let mut c = Connection::listen(cfg(), SeqNum(ISS));
    c.on_segment(&syn(PEER_ISS), t(0));
    assert_eq!(c.state(), State::SynReceived);
    let s = only(&mut c, t(0));
    assert_eq!(s.flags, Flags::SYN | Flags::ACK);
    assert_eq!((s.seq, s.ack), (SeqNum(ISS), SeqNum(PEER_ISS + 1)));
}

#[test]
fn listen_to_syn_sent_on_send() {
    let mut c = Connection::listen(cfg(), SeqNum(ISS));
    assert_eq!(c.send(b"hello"), Ok(5));
    assert_eq!(c.state(), State::SynSent);
    assert_eq!(only(&mut c, t(0)).flags, Flags::SYN);
}

#[test]
fn listen_to_closed_on_close() {
    let mut c = Connection::listen(cfg(), SeqNum(ISS));
    c.close();
    assert_eq!(c.state(), State::Closed);
    assert!(drain(&mut c, t(0)).is_empty());
}

#[test]
fn syn_sent_to_syn_received_on_simultaneous_open() {
    let mut c = syn_sent();
    c.on_segment(&syn(PEER_ISS), t(1));
    assert_eq!(c.state(), State::SynReceived);
    let s = only(&mut c, t(1));
    assert_eq!(
        s.flags,
        Flags::SYN | Flags::ACK,
        "SYN-ACK from the same ISS"
    );
    assert_eq!((s.seq, s.ack), (SeqNum(ISS), SeqNum(PEER_ISS + 1)));
    // The peer's SYN-ACK alone completes the simultaneous open, and is
    // answered with an ACK, not with our SYN-ACK again.
    c.on_segment(&seg(PEER_ISS, ISS + 1, Flags::SYN | Flags::ACK, &[]), t(2));
    assert_eq!(c.state(), State::Established);
    let a = only(&mut c, t(2));
    assert_eq!(a.flags, Flags::ACK);
    assert_eq!((a.seq, a.ack), (SeqNum(ISS + 1), SeqNum(PEER_ISS + 1)));
}

#[test]
fn syn_sent_to_established_on_syn_ack_sends_ack() {
    let mut c = syn_sent();
    c.on_segment(&seg(PEER_ISS, ISS + 1, Flags::SYN | Flags::ACK, &[]), t(1));
    assert_eq!(c.state(), State::Established);
    let a = only(&mut c, t(1));
    assert_eq!(a.flags, Flags::ACK);
    assert_eq!((a.seq, a.ack), (SeqNum(ISS + 1), SeqNum(PEER_ISS + 1)));
    assert_eq!(events(&mut c), vec![Event::Connected]);
}

#[test]
fn syn_sent_to_closed_on_close() {
    let mut c = syn_sent();
    c.close();
    assert_eq!(c.state(), State::Closed);
    assert!(drain(&mut c, t(1)).is_empty());
}

#[test]
fn syn_received_to_established_on_ack_of_syn() {
    let mut c = syn_received();
    c.on_segment(&seg(PEER_ISS + 1, ISS + 1, Flags::ACK, &[]), t(1));
    assert_eq!(c.state(), State::Established);
    assert_eq!(events(&mut c), vec![Event::Connected]);
}

#[test]
fn syn_received_to_fin_wait_1_on_close_sends_fin() {
    let mut c = syn_received();
    c.close();
    assert_eq!(c.state(), State::FinWait1);
    // The FIN waits for our SYN to be acknowledged, then goes out.
    c.on_segment(&seg(PEER_ISS + 1, ISS + 1, Flags::ACK, &[]), t(1));
    let f = only(&mut c, t(1));
    assert!(f.flags.fin());
    assert_eq!(f.seq, SeqNum(ISS + 1));
}

#[test]
fn syn_received_to_listen_on_rst_when_passive() {
    let mut c = syn_received();
    c.on_segment(&seg(PEER_ISS + 1, 0, Flags::RST, &[]), t(1));
    assert_eq!(c.state(), State::Listen);
}

#[test]
fn established_to_fin_wait_1_on_close_sends_fin() {
    let mut c = established();
    c.close();
    assert_eq!(c.state(), State::FinWait1);
    let f = only(&mut c, t(2));
    assert_eq!(f.flags, Flags::FIN | Flags::ACK);
    assert_eq!(f.seq, SeqNum(ISS + 1));
}

#[test]
fn established_to_close_wait_on_fin_sends_ack() {
    let mut c = established();
    c.on_segment(
        &seg(PEER_ISS + 1, ISS + 1, Flags::FIN | Flags::ACK, &[]),
        t(2),
    );
    assert_eq!(c.state(), State::CloseWait);
    let a = only(&mut c, t(2));
    assert_eq!(a.ack, SeqNum(PEER_ISS + 2), "the FIN is acknowledged");
    let mut buf = [0u8; 4];
    assert_eq!(c.recv(&mut buf), Ok(0), "EOF after the FIN");
}

#[test]
fn fin_wait_1_to_fin_wait_2_on_ack_of_fin() {
    let c = fin_wait_2();
    assert_eq!(c.state(), State::FinWait2);
}

#[test]
fn fin_wait_1_to_closing_on_fin_sends_ack() {
    let c = closing();
    assert_eq!(c.state(), State::Closing);
}

#[test]
fn fin_wait_1_to_time_wait_on_fin_with_ack_of_fin() {
    let mut c = fin_wait_1();
    c.on_segment(
        &seg(PEER_ISS + 1, ISS + 2, Flags::FIN | Flags::ACK, &[]),
        t(3),
    );
    assert_eq!(c.state(), State::TimeWait);
    assert_eq!(only(&mut c, t(3)).ack, SeqNum(PEER_ISS + 2));
}

#[test]
fn fin_wait_2_to_time_wait_on_fin_sends_ack() {
    let c = time_wait();
    assert_eq!(c.state(), State::TimeWait);
}

#[test]
fn closing_to_time_wait_on_ack_of_fin() {
    let mut c = closing();
    c.on_segment(&seg(PEER_ISS + 2, ISS + 2, Flags::ACK, &[]), t(4));
    assert_eq!(c.state(), State::TimeWait);
}

#[test]
fn time_wait_to_closed_after_2msl() {
    let mut c = time_wait();
    let deadline = c.poll_timeout().expect("2*MSL timer");
    assert_eq!(deadline, t(4) + Duration::from_secs(60));
    c.handle_timeout(Instant::from_nanos(deadline.as_nanos() - 1));
    assert_eq!(c.state(), State::TimeWait);
    c.handle_timeout(deadline);
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn time_wait_restarts_2msl_on_retransmitted_fin() {
    let mut c = time_wait();
    c.on_segment(
        &seg(PEER_ISS + 1, ISS + 2, Flags::FIN | Flags::ACK, &[]),
        t(10_000),
    );
    assert_eq!(
        only(&mut c, t(10_000)).ack,
        SeqNum(PEER_ISS + 2),
        "the FIN is acknowledged again"
    );
    assert_eq!(c.poll_timeout(), Some(t(10_000) + Duration::from_secs(60)));
}

#[test]
fn close_wait_to_last_ack_on_close_sends_fin() {
    let c = last_ack();
    assert_eq!(c.state(), State::LastAck);
}

#[test]
fn last_ack_to_closed_on_ack_of_fin() {
    let mut c = last_ack();
    c.on_segment(&seg(PEER_ISS + 2, ISS + 2, Flags::ACK, &[]), t(4));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.error(), None);
}

#[test]
fn simultaneous_close_both_sides_pass_through_closing() {
    // Two real connections whose FINs cross.
    let mut a = established();
    a.close();
    let fin_a = only(&mut a, t(2));
    // The peer also closes: its FIN (not acking ours) arrives first.
    a.on_segment(
        &seg(PEER_ISS + 1, ISS + 1, Flags::FIN | Flags::ACK, &[]),
        t(3),
    );
    assert_eq!(a.state(), State::Closing);
    // Then the peer's ACK of our FIN.
    a.on_segment(&seg(PEER_ISS + 2, fin_a.seq.0 + 1, Flags::ACK, &[]), t(4));
    assert_eq!(a.state(), State::TimeWait);
}

#[test]
fn half_close_still_receives_data() {
    let mut c = fin_wait_2();
    c.on_segment(
        &seg(PEER_ISS + 1, ISS + 2, Flags::ACK | Flags::PSH, b"late data"),
        t(4),
    );
    let mut buf = [0u8; 32];
    assert_eq!(c.recv(&mut buf), Ok(9));
    assert_eq!(&buf[..9], b"late data");
}

// ---- RST in every state ---------------------------------------------------

#[test]
fn rst_in_listen_is_ignored() {
    let mut c = Connection::listen(cfg(), SeqNum(ISS));
    c.on_segment(&seg(1, 0, Flags::RST, &[]), t(0));
    assert_eq!(c.state(), State::Listen);
    assert!(drain(&mut c, t(0)).is_empty(), "never answer a reset");
}

#[test]
fn rst_in_syn_sent_with_acceptable_ack_is_refused() {
    let mut c = syn_sent();
    c.on_segment(&seg(0, ISS + 1, Flags::RST | Flags::ACK, &[]), t(1));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.error(), Some(ConnError::Refused));
    assert_eq!(events(&mut c), vec![Event::Error(ConnError::Refused)]);
}

#[test]
fn rst_in_syn_sent_without_ack_is_ignored() {
    let mut c = syn_sent();
    c.on_segment(&seg(0, 0, Flags::RST, &[]), t(1));
    assert_eq!(c.state(), State::SynSent);
}

#[test]
fn rst_in_syn_sent_with_bad_ack_is_ignored() {
    let mut c = syn_sent();
    c.on_segment(&seg(0, ISS + 7, Flags::RST | Flags::ACK, &[]), t(1));
    assert_eq!(c.state(), State::SynSent);
    assert!(drain(&mut c, t(1)).is_empty());
}

#[test]
fn rst_in_syn_received_active_is_refused() {
    let mut c = syn_sent();
    c.on_segment(&syn(PEER_ISS), t(1));
    drain(&mut c, t(1));
    c.on_segment(&seg(PEER_ISS + 1, 0, Flags::RST, &[]), t(2));
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.error(), Some(ConnError::Refused));
}

fn reset_at_rcv_nxt(mut c: Connection, rcv_nxt: u32) -> Connection {
    c.on_segment(&seg(rcv_nxt, 0, Flags::RST, &[]), t(10));
    c
}

#[test]
fn rst_in_established_resets() {
    let c = reset_at_rcv_nxt(established(), PEER_ISS + 1);
    assert_eq!(
        (c.state(), c.error()),
        (State::Closed, Some(ConnError::Reset))
    );
}

#[test]
fn rst_in_fin_wait_1_resets() {
    let c = reset_at_rcv_nxt(fin_wait_1(), PEER_ISS + 1);
    assert_eq!(
        (c.state(), c.error()),
        (State::Closed, Some(ConnError::Reset))
    );
}

#[test]
fn rst_in_fin_wait_2_resets() {
    let c = reset_at_rcv_nxt(fin_wait_2(), PEER_ISS + 1);
    assert_eq!(
        (c.state(), c.error()),
        (State::Closed, Some(ConnError::Reset))
    );
}

#[test]
fn rst_in_close_wait_resets() {
    let c = reset_at_rcv_nxt(close_wait(), PEER_ISS + 2);
    assert_eq!(
        (c.state(), c.error()),
        (State::Closed, Some(ConnError::Reset))
    );
}

#[test]
fn rst_in_closing_closes() {
    let c = reset_at_rcv_nxt(closing(), PEER_ISS + 2);
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn rst_in_last_ack_closes() {
    let c = reset_at_rcv_nxt(last_ack(), PEER_ISS + 2);
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn rst_in_time_wait_is_ignored_rfc1337() {
    let c = reset_at_rcv_nxt(time_wait(), PEER_ISS + 2);
    assert_eq!(c.state(), State::TimeWait);
}

#[test]
fn rst_in_window_but_not_exact_draws_challenge_ack_rfc5961() {
    let mut c = established();
    c.on_segment(&seg(PEER_ISS + 100, 0, Flags::RST, &[]), t(5));
    assert_eq!(c.state(), State::Established, "the connection survives");
    let a = only(&mut c, t(5));
    assert_eq!((a.flags, a.ack), (Flags::ACK, SeqNum(PEER_ISS + 1)));
    assert_eq!(c.counters().challenge_acks_sent, 1);
}

#[test]
fn rst_outside_window_is_dropped_silently() {
    let mut c = established();
    c.on_segment(&seg(PEER_ISS.wrapping_sub(10), 0, Flags::RST, &[]), t(5));
    assert_eq!(c.state(), State::Established);
    assert!(drain(&mut c, t(5)).is_empty());
}

#[test]
fn syn_in_established_draws_challenge_ack() {
    let mut c = established();
    c.on_segment(&syn(PEER_ISS + 1), t(5));
    assert_eq!(c.state(), State::Established);
    assert_eq!(only(&mut c, t(5)).flags, Flags::ACK);
}

#[test]
fn syn_fin_to_listener_is_dropped() {
    let mut c = Connection::listen(cfg(), SeqNum(ISS));
    c.on_segment(&seg(PEER_ISS, 0, Flags::SYN | Flags::FIN, &[]), t(0));
    assert_eq!(c.state(), State::Listen);
    assert!(drain(&mut c, t(0)).is_empty());
}

#[test]
fn ack_to_listener_draws_reset() {
    let mut c = Connection::listen(cfg(), SeqNum(ISS));
    c.on_segment(&seg(PEER_ISS, 777, Flags::ACK, &[]), t(0));
    let r = only(&mut c, t(0));
    assert_eq!((r.flags, r.seq), (Flags::RST, SeqNum(777)));
}

#[test]
fn syn_received_bad_ack_draws_reset() {
    let mut c = syn_received();
    c.on_segment(&seg(PEER_ISS + 1, ISS + 50, Flags::ACK, &[]), t(1));
    assert_eq!(c.state(), State::SynReceived);
    let r = only(&mut c, t(1));
    assert_eq!((r.flags, r.seq), (Flags::RST, SeqNum(ISS + 50)));
}

#[test]
fn syn_sent_close_with_queued_data_sends_it_then_fin() {
    let mut c = syn_sent();
    assert_eq!(c.send(b"early"), Ok(5));
    c.close();
    assert_eq!(c.state(), State::SynSent, "the data is still owed");
    let mut sa = seg(PEER_ISS, ISS + 1, Flags::SYN | Flags::ACK, &[]);
    sa.options.mss = Some(1460);
    c.on_segment(&sa, t(2));
    assert_eq!(c.state(), State::FinWait1);
    let out = drain(&mut c, t(2));
    let data = out.iter().find(|s| s.payload_len == 5).expect("data sent");
    assert!(
        data.flags.contains(Flags::FIN),
        "FIN rides on the data: {out:?}"
    );
    assert_eq!(data.seq, SeqNum(ISS + 1));
}
