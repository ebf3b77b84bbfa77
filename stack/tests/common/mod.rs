//! Two bare connections joined by a lossless-unless-told wire with a fixed
//! one-way delay. Segments really go through the wire format: each is
//! built into bytes and parsed back before delivery.

#![allow(dead_code)]

pub mod frames;

use std::collections::VecDeque;
use std::time::Duration;
use xdptcp::tcp::{Config, Connection, SeqNum, State, TcpError, Transmit};
use xdptcp::time::{earliest, Instant};
use xdptcp::wire::tcp::{Flags, TcpOptions, TcpSegment};

/// Decides per sent segment (and whether a sent it) if the wire drops it.
pub type DropRule = Box<dyn FnMut(&Transmit, bool) -> bool>;
/// Extra one-way delay for a segment, by segment, direction and send time.
pub type DelayRule = Box<dyn FnMut(&Transmit, bool, Instant) -> Duration>;

pub struct Pair {
    pub a: Connection,
    pub b: Connection,
    pub now: Instant,
    pub delay: Duration,
    /// (arrival, towards b?, segment bytes)
    wire: VecDeque<(Instant, bool, Vec<u8>)>,
    /// Called for every segment sent; returning true drops it.
    pub drop: DropRule,
    /// Extra one-way delay for a segment (a delay spike), by segment,
    /// direction (from a?) and send time.
    pub extra_delay: DelayRule,
    /// Time each segment from a takes on a bottleneck link (None: none):
    /// segments queue behind each other, so ACKs come back spaced.
    pub a_serialization: Option<Duration>,
    a_link_free: Instant,
    /// The longest a segment from a waited in the bottleneck's queue.
    pub a_max_queueing: Duration,
    /// The most segments a sends per pass (None: all it has), as a
    /// device whose transmit ring fills: the rest wait for the next pass.
    pub a_pass_limit: Option<usize>,
    /// Every segment sent: (time, from a?, segment).
    pub log: Vec<(Instant, bool, Transmit)>,
}

pub fn encode(c: &Connection, t: &Transmit) -> Vec<u8> {
    let mut buf = Vec::new();
    c.segment_bytes(t, &mut buf);
    buf
}

impl Pair {
    /// The two ends queue whatever their application gives them: their
    /// application has one turn per event here (not one per loop, as on a
    /// runtime core), and these tests are about TCP's mechanisms, not the
    /// bound on unsent bytes (`unsent_limit.rs` tests that).
    pub fn new(mut a: Connection, mut b: Connection, delay: Duration) -> Self {
        a.set_unsent_limit(xdptcp::tcp::UnsentLimit::Off);
        b.set_unsent_limit(xdptcp::tcp::UnsentLimit::Off);
        Pair {
            a,
            b,
            now: Instant::ZERO,
            delay,
            wire: VecDeque::new(),
            drop: Box::new(|_, _| false),
            extra_delay: Box::new(|_, _, _| Duration::ZERO),
            a_serialization: None,
            a_link_free: Instant::ZERO,
            a_max_queueing: Duration::ZERO,
            a_pass_limit: None,
            log: Vec::new(),
        }
    }

    fn flush(&mut self) {
        for from_a in [true, false] {
            let mut left = if from_a { self.a_pass_limit } else { None };
            loop {
                if left.is_some_and(|n| n == 0) {
                    break;
                }
                left = left.map(|n| n - 1);
                let conn = if from_a { &mut self.a } else { &mut self.b };
                let Some(t) = conn.poll_transmit(self.now) else {
                    break;
                };
                let bytes = encode(conn, &t);
                self.log.push((self.now, from_a, t));
                if !(self.drop)(&t, from_a) {
                    let mut leaves = self.now;
                    if let (true, Some(ser)) = (from_a, self.a_serialization) {
                        let starts = self.now.max(self.a_link_free);
                        self.a_max_queueing = self.a_max_queueing.max(starts - self.now);
                        leaves = starts + ser;
                        self.a_link_free = leaves;
                    }
                    let at = leaves + self.delay + (self.extra_delay)(&t, from_a, self.now);
                    // Kept in arrival order: a delayed segment is overtaken.
                    let i = self.wire.partition_point(|w| w.0 <= at);
                    self.wire.insert(i, (at, from_a, bytes));
                }
            }
        }
    }

    /// Sends what is ready, then moves time to the next event and handles
    /// it. Returns false when nothing is pending at all.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next = earliest(
            self.wire.front().map(|w| w.0),
            earliest(self.a.poll_timeout(), self.b.poll_timeout()),
        );
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        while self.wire.front().is_some_and(|w| w.0 <= self.now) {
            let (_, to_b, bytes) = self.wire.pop_front().expect("checked");
            let seg = TcpSegment::parse_unchecked(&bytes).expect("our own segments parse");
            let conn = if to_b { &mut self.b } else { &mut self.a };
            conn.on_segment(&seg, self.now);
        }
        for c in [&mut self.a, &mut self.b] {
            if c.poll_timeout().is_some_and(|t| t <= self.now) {
                c.handle_timeout(self.now);
            }
        }
        self.flush();
        true
    }

    /// Steps until `done` or until `limit` of virtual time has passed.
    pub fn run(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if !self.step() || self.now > end {
                return done(self);
            }
        }
    }
}

pub fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

pub fn pair(cfg_a: Config, iss_a: u32, cfg_b: Config, iss_b: u32, delay_ms: u64) -> Pair {
    let a = Connection::connect(cfg_a, SeqNum(iss_a));
    let b = Connection::listen(cfg_b, SeqNum(iss_b));
    let mut p = Pair::new(a, b, Duration::from_millis(delay_ms));
    let ok = p.run(Duration::from_secs(5), |p| {
        p.a.state() == State::Established && p.b.state() == State::Established
    });
    assert!(ok, "handshake: a={} b={}", p.a.state(), p.b.state());
    p
}

/// Moves `total` bytes each way at once, checking every received byte
/// against the pattern. Returns false if the limit ran out first.
pub fn exchange(p: &mut Pair, total: usize, limit: Duration) -> bool {
    let (mut sent, mut got) = ([0usize; 2], [0usize; 2]);
    let mut buf = vec![0u8; 64 * 1024];
    p.run(limit, |p| {
        for (i, c) in [&mut p.a, &mut p.b].into_iter().enumerate() {
            while sent[i] < total {
                let chunk: Vec<u8> = (sent[i]..total.min(sent[i] + 16 * 1024))
                    .map(pattern)
                    .collect();
                match c.send(&chunk) {
                    Ok(n) => sent[i] += n,
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            // What c receives was sent by the other side.
            loop {
                match c.recv(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for (k, byte) in buf[..n].iter().enumerate() {
                            assert_eq!(*byte, pattern(got[i] + k), "byte {} differs", got[i] + k);
                        }
                        got[i] += n;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        got == [total, total]
    })
}

/// Sends `total` bytes from a to b, checking each byte b reads. Returns
/// false if `limit` of virtual time ran out first.
pub fn one_way(p: &mut Pair, total: usize, limit: Duration) -> bool {
    one_way_with(p, total, limit, |_| {})
}

/// `one_way`, calling `each_step` once per step of the wire (to inject
/// segments, say).
pub fn one_way_with(
    p: &mut Pair,
    total: usize,
    limit: Duration,
    mut each_step: impl FnMut(&mut Pair),
) -> bool {
    let (mut sent, mut got) = (0usize, 0usize);
    let mut buf = vec![0u8; 64 * 1024];
    p.run(limit, |p| {
        while sent < total {
            let chunk: Vec<u8> = (sent..total.min(sent + 16 * 1024)).map(pattern).collect();
            match p.a.send(&chunk) {
                Ok(n) => sent += n,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        got += read_checked(&mut p.b, &mut buf, got);
        each_step(p);
        got == total
    })
}

/// Reads all `c` has, checking each byte against the pattern from offset
/// `got` on; returns how many it read.
pub fn read_checked(c: &mut Connection, buf: &mut [u8], got: usize) -> usize {
    let mut read = 0;
    loop {
        match c.recv(buf) {
            Ok(0) | Err(TcpError::WouldBlock) => return read,
            Ok(n) => {
                let at = got + read;
                for (k, byte) in buf[..n].iter().enumerate() {
                    assert_eq!(*byte, pattern(at + k), "byte {} differs", at + k);
                }
                read += n;
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// A segment from port 80 to port 1234 with no options, window 65535.
pub fn segment(seq: u32, ack: u32, flags: Flags, payload: &[u8]) -> TcpSegment<'_> {
    TcpSegment {
        src_port: 80,
        dst_port: 1234,
        seq,
        ack,
        flags,
        window: 65_535,
        urgent: 0,
        options: TcpOptions::default(),
        payload,
        lent: None,
    }
}
