//! The echo server and client, on the per-core API.
//!
//! The server sends back whatever arrives (`Stream::echo`: one copy, from
//! the receive ring to the send ring) and closes when the peer does. The
//! client runs `count` request/response rounds of `size` bytes on each of
//! its connections, checks every byte that comes back and records each
//! round trip in an HDR histogram.

use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use xdptcp::api::percore::{Ctx, Handler, Stream};
use xdptcp::api::{ConnError, Handle, Instant};

pub struct EchoServer {
    pub port: u16,
    /// Connections finished on all cores.
    pub served: Arc<AtomicUsize>,
    /// Stop after this many (0: serve forever).
    pub max_conns: usize,
    pub errors: Vec<String>,
    pub bytes: u64,
}

impl Handler for EchoServer {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        if let Err(e) = cx.listen(self.port, 1024) {
            self.errors.push(e.to_string());
        }
    }
    fn on_accept(&mut self, s: &mut Stream<'_>) {
        // Replies go out as soon as they are queued, not held by Nagle.
        s.set_nodelay(true);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        self.bytes += s.echo() as u64;
    }
    fn on_writable(&mut self, s: &mut Stream<'_>) {
        self.bytes += s.echo() as u64;
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        s.close();
    }
    fn on_closed(&mut self, _: Handle, error: Option<ConnError>) {
        if let Some(e) = error {
            self.errors.push(format!("connection failed: {e:?}"));
        }
        self.served.fetch_add(1, Ordering::Relaxed);
    }
    fn done(&self) -> bool {
        !self.errors.is_empty() && self.max_conns == 0
            || self.max_conns > 0 && self.served.load(Ordering::Relaxed) >= self.max_conns
    }
}

/// Byte `i` of round `m` on connection `k`.
pub fn pattern(k: usize, m: u32, i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (m as usize).wrapping_mul(7) ^ k) as u8
}

struct Round {
    k: usize,
    round: u32,
    sent: usize,
    received: usize,
    started: Instant,
}

pub struct EchoClient {
    pub to: SocketAddr,
    pub size: usize,
    pub count: u32,
    /// Connections over all cores; this core opens `k % cores == core`.
    pub conns: usize,
    rounds: HashMap<Handle, Round>,
    opened: usize,
    pub finished: usize,
    pub latency: Histogram<u64>,
    pub errors: Vec<String>,
    scratch: Vec<u8>,
}

impl EchoClient {
    pub fn new(to: SocketAddr, size: usize, count: u32, conns: usize) -> Self {
        EchoClient {
            to,
            size,
            count,
            conns,
            rounds: HashMap::new(),
            opened: 0,
            finished: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
            errors: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn push(&mut self, s: &mut Stream<'_>) {
        let Some(r) = self.rounds.get_mut(&s.id()) else {
            return;
        };
        while r.sent < self.size {
            let n = (self.size - r.sent).min(64 * 1024);
            self.scratch.clear();
            self.scratch
                .extend((r.sent..r.sent + n).map(|i| pattern(r.k, r.round, i)));
            let took = s.send(&self.scratch);
            r.sent += took;
            if took < n {
                break;
            }
        }
    }
}

impl Handler for EchoClient {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        for k in (cx.core..self.conns).step_by(cx.cores) {
            match cx.connect(self.to) {
                Ok(h) => {
                    self.rounds.insert(
                        h,
                        Round {
                            k,
                            round: 0,
                            sent: 0,
                            received: 0,
                            started: cx.now,
                        },
                    );
                    self.opened += 1;
                }
                Err(e) => self.errors.push(format!("connect {}: {e}", self.to)),
            }
        }
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        s.set_nodelay(true);
        if let Some(r) = self.rounds.get_mut(&s.id()) {
            r.started = s.now;
        }
        self.push(s);
    }
    fn on_writable(&mut self, s: &mut Stream<'_>) {
        self.push(s);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let id = s.id();
        let Some(r) = self.rounds.get_mut(&id) else {
            return;
        };
        let want = self.size - r.received;
        let n = s.data_len().min(want);
        let bad = s
            .data()
            .flatten()
            .take(n)
            .enumerate()
            .find(|&(j, &byte)| byte != pattern(r.k, r.round, r.received + j));
        if let Some((j, _)) = bad {
            let at = r.received + j;
            self.errors.push(format!(
                "connection {} round {}: byte {at} differs",
                r.k, r.round
            ));
            s.abort();
            return;
        }
        s.consume(n);
        r.received += n;
        if r.received < self.size {
            return;
        }
        let rtt = s.now.as_nanos().saturating_sub(r.started.as_nanos()).max(1);
        let _ = self.latency.record(rtt);
        r.round += 1;
        if r.round == self.count {
            s.close();
            return;
        }
        r.sent = 0;
        r.received = 0;
        r.started = s.now;
        self.push(s);
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        if let Some(r) = self.rounds.get(&s.id()) {
            if r.round < self.count {
                self.errors.push(format!(
                    "connection {}: the server closed after {} of {} rounds",
                    r.k, r.round, self.count
                ));
            }
        }
    }
    fn on_closed(&mut self, id: Handle, error: Option<ConnError>) {
        if let Some(r) = self.rounds.remove(&id) {
            match error {
                Some(e) => self.errors.push(format!("connection {}: {e:?}", r.k)),
                None if r.round == self.count => {}
                None => self.errors.push(format!("connection {} closed early", r.k)),
            }
        }
        self.finished += 1;
    }
    fn done(&self) -> bool {
        self.finished == self.opened
    }
}
