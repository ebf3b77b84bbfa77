//! The TCP input of one live connection, in each of the eleven states,
//! fed segments whose numbers sit near its own: acknowledgments around
//! SND.UNA..SND.MAX, sequence numbers around RCV.NXT, SACK blocks inside
//! the flight, so that ACK, SACK, window and reassembly processing are
//! reached rather than rejected at the first check.
//!
//! The peer's bytes follow a known pattern by stream offset, so whatever
//! the connection delivers can be checked: no byte altered, duplicated or
//! skipped. After every step the connection's invariants must hold.
//!
//! Input: byte 0 picks the state (its remainder by 11) and the set-up:
//! the congestion control (CUBIC, BBR with its pacing, NewReno) and
//! whether buffers autotune; then operations, each an opcode and its
//! arguments (see `step`).

use super::super::input::Input;
use std::time::Duration;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::{Config, Connection, SeqNum, State};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::{Flags, TcpOptions, TcpSegment};

const MSS: i64 = 1460;
const MAX_OPS: usize = 96;

/// The peer's byte at stream offset `k`; no short period, so a byte
/// delivered at the wrong offset shows.
pub fn pattern(k: u64) -> u8 {
    let x = (k ^ (k >> 11) ^ (k >> 23)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

fn pattern_bytes(from: u64, n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| pattern(from + i)).collect()
}

/// Everything `from` wants to send now, as wire bytes.
fn drain(from: &mut Connection, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = from.poll_transmit(now) {
        let mut bytes = Vec::new();
        from.segment_bytes(&t, &mut bytes);
        out.push(bytes);
        if out.len() > 10_000 {
            panic!("a connection that never stops sending");
        }
    }
    out
}

fn deliver(to: &mut Connection, segs: Vec<Vec<u8>>, now: Instant) {
    for s in segs {
        let seg = TcpSegment::parse_unchecked(&s).expect("our own segments parse");
        to.on_segment(&seg, now);
    }
}

/// Both ways until quiet.
fn settle(a: &mut Connection, b: &mut Connection, now: Instant) {
    for _ in 0..64 {
        let (x, y) = (drain(a, now), drain(b, now));
        if x.is_empty() && y.is_empty() {
            return;
        }
        deliver(b, x, now);
        deliver(a, y, now);
    }
}

/// The set-up byte 0 chooses beside the state: every congestion control
/// (BBR brings pacing), with and without buffer autotuning.
pub fn config(setup: u8) -> Config {
    let congestion = [Algorithm::Cubic, Algorithm::Bbr, Algorithm::NewReno][usize::from(setup % 3)];
    let autotune = setup / 3 % 2 == 1;
    Config {
        congestion,
        send_buffer: 64 * 1024,
        recv_buffer: 64 * 1024,
        autotune,
        max_buffer: 1 << 20,
        buffer_budget: autotune
            .then(|| std::sync::Arc::new(xdptcp::tcp::autotune::BufferBudget::new(4 << 20))),
        ..Config::default()
    }
}

/// A connection in state `which` (0-10, the order of RFC 9293's list),
/// configured as `setup` says (`config`), and its peer.
pub fn in_state(which: u8, setup: u8, now: Instant) -> (Connection, Connection) {
    let config = || config(setup);
    let mut us = Connection::connect(config(), SeqNum(1_000));
    let mut peer = Connection::listen(config(), SeqNum(0xffff_f000));
    let open = |us: &mut Connection, peer: &mut Connection| {
        settle(us, peer, now);
        // Data both ways, some of ours left unacknowledged in flight.
        let _ = peer.send(&pattern_bytes(0, 3000));
        let _ = us.send(&[7u8; 5000]);
        settle(us, peer, now);
        let _ = us.send(&[8u8; 4000]);
        let _ = drain(us, now);
    };
    match which % 11 {
        0 => us.abort(),
        1 => us = Connection::listen(config(), SeqNum(1_000)),
        2 => {
            let _ = drain(&mut us, now);
        }
        3 => {
            us = Connection::listen(config(), SeqNum(1_000));
            peer = Connection::connect(config(), SeqNum(0xffff_f000));
            let syn = drain(&mut peer, now);
            deliver(&mut us, syn, now);
            let _ = drain(&mut us, now);
        }
        4 => open(&mut us, &mut peer),
        5 => {
            open(&mut us, &mut peer);
            us.close();
            let _ = drain(&mut us, now);
        }
        6 | 10 => {
            settle(&mut us, &mut peer, now);
            us.close();
            settle(&mut us, &mut peer, now);
            if which % 11 == 10 {
                peer.close();
                settle(&mut us, &mut peer, now);
            }
        }
        7 | 9 => {
            open(&mut us, &mut peer);
            peer.close();
            let fin = drain(&mut peer, now);
            deliver(&mut us, fin, now);
            if which % 11 == 9 {
                us.close();
                let _ = drain(&mut us, now);
            }
        }
        _ => {
            settle(&mut us, &mut peer, now);
            us.close();
            peer.close();
            let _ = drain(&mut us, now);
            let fin = drain(&mut peer, now);
            deliver(&mut us, fin, now);
        }
    }
    (us, peer)
}

pub const STATES: [State; 11] = [
    State::Closed,
    State::Listen,
    State::SynSent,
    State::SynReceived,
    State::Established,
    State::FinWait1,
    State::FinWait2,
    State::CloseWait,
    State::Closing,
    State::LastAck,
    State::TimeWait,
];

struct Run {
    us: Connection,
    now: Instant,
    /// Bytes of the peer's stream read so far, all checked.
    read: u64,
    tsval: u32,
    window: u16,
}

impl Run {
    /// Where the peer's stream starts, once the connection knows.
    fn base(&self) -> Option<SeqNum> {
        let unknown = matches!(
            self.us.state(),
            State::Closed | State::Listen | State::SynSent
        );
        (!unknown).then(|| self.us.seq_space().irs + 1)
    }

    fn read_and_check(&mut self, max: usize) {
        let mut buf = vec![0u8; max];
        if let Ok(n) = self.us.recv(&mut buf) {
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(
                    *b,
                    pattern(self.read + i as u64),
                    "byte {} of the peer's stream altered",
                    self.read + i as u64
                );
            }
            self.read += n as u64;
        }
    }

    fn segment(&mut self, input: &mut Input<'_>) {
        let s = self.us.seq_space();
        // Half plain ACKs (the segments of a working connection), half any
        // combination of the six flags.
        let f = input.u8();
        let flags = Flags(if f & 0x80 != 0 {
            f & 0x3f
        } else {
            0x10 | (f & 0x08)
        });
        let near_seq = match self.base() {
            Some(_) => s.rcv_nxt.0.wrapping_add(input.near(MSS) as u32),
            None => input.u32(),
        };
        let span = s.snd_max.diff(s.snd_una).max(0) as i64;
        let ack = match input.u8() % 4 {
            0 => s.snd_una.0,
            1 => s.snd_max.0,
            2 => s
                .snd_una
                .0
                .wrapping_add(((span + 1) * i64::from(input.u8()) / 256) as u32),
            _ => s.snd_una.0.wrapping_add(input.near(MSS) as u32),
        };
        // Mostly the window the peer last offered: a changed window makes
        // an ACK a window update, never a duplicate ACK.
        if input.u8().is_multiple_of(4) {
            self.window = input.u16();
        }
        let mut options = TcpOptions::default();
        let extras = input.u8();
        if extras & 1 != 0 {
            self.tsval = self.tsval.wrapping_add(input.near(4) as u32);
            options.timestamps = Some((self.tsval, input.u32()));
        }
        if extras & 2 != 0 && flags.syn() {
            options.mss = Some(input.u16());
            options.window_scale = Some(input.u8() % 16);
            options.sack_permitted = true;
        }
        let blocks = usize::from(extras >> 2) % 4;
        for i in 0..blocks {
            let a = s
                .snd_una
                .0
                .wrapping_add(((span + 1) * i64::from(input.u8()) / 256) as u32);
            let b = a.wrapping_add(input.near(MSS).unsigned_abs() as u32);
            let shape = input.u8();
            options.sack_blocks[i] = if shape & 1 == 0 {
                (a, b)
            } else {
                // As a receiver SACKs: whole segments (we send MSS-sized
                // ones from ISS + 1), which mark records.
                let first = s.iss.0.wrapping_add(1);
                let seg =
                    |x: u32| first.wrapping_add(x.wrapping_sub(first) / MSS as u32 * MSS as u32);
                let a = seg(a);
                (a, a.wrapping_add(MSS as u32 * (1 + u32::from(shape >> 6))))
            };
        }
        options.sack_count = blocks as u8;
        let l = input.u8();
        let len = if flags.syn() || l < 96 {
            0
        } else {
            usize::from(l) * 8
        };
        let payload = match self.base() {
            Some(base) => pattern_bytes(u64::from(SeqNum(near_seq).diff(base) as u32), len),
            None => vec![0; 0],
        };
        let seg = TcpSegment {
            src_port: 2,
            dst_port: 1,
            seq: near_seq,
            ack,
            flags,
            window: self.window,
            urgent: 0,
            options,
            payload: &payload,
            lent: None,
        };
        let bytes_before_base = self.base().is_some_and(|b| SeqNum(near_seq) < b);
        if bytes_before_base {
            // Bytes before the stream's start carry no pattern to check.
            return;
        }
        self.us.on_segment(&seg, self.now);
    }

    fn step(&mut self, input: &mut Input<'_>) {
        match input.u8() % 8 {
            0..=3 => self.segment(input),
            4 => {
                self.now += Duration::from_micros(input.near(1000).unsigned_abs() * 97);
                if self.us.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.us.handle_timeout(self.now);
                }
            }
            5 => {
                let n = usize::from(input.u8()) * 64;
                let _ = self.us.send(&vec![9u8; n]);
            }
            6 => self.read_and_check(usize::from(input.u16())),
            _ => self.us.close(),
        }
        let _ = drain(&mut self.us, self.now);
        if let Err(e) = self.us.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }
}

pub fn run(data: &[u8]) {
    run_counted(data);
}

/// `run`, returning the connection's counters (what the input reached).
pub fn run_counted(data: &[u8]) -> xdptcp::tcp::stats::Counters {
    let mut input = Input::new(data);
    let now = Instant::from_millis(10);
    let first = input.u8();
    let which = first % 11;
    let (mut us, _peer) = in_state(which, first / 11, now);
    assert_eq!(
        us.state(),
        STATES[usize::from(which)],
        "set-up reached the state"
    );
    // What arrived during set-up is read first (and checked).
    let mut run = Run {
        us: {
            let _ = us.poll_event();
            us
        },
        now,
        read: 0,
        tsval: 1,
        window: 65_535,
    };
    run.read_and_check(1 << 20);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        run.step(&mut input);
    }
    run.read_and_check(1 << 20);
    run.us.counters().clone()
}
