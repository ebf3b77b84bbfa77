//! xdptcp against xdptcp on the per-core API: the application runs inside
//! each stack's core loop (run to completion), with no application thread.
//! On a 2-CPU machine two stacks with the socket API would need four busy
//! threads (two spinning cores and two application threads) and take
//! turns by the scheduler's time slice; here each side is one thread on
//! its own CPU, as a deployment of this stack would be.

use crate::bed::Bed;
use apps::echo::{EchoClient, EchoServer};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdptcp::api::percore::{Ctx, Dispatch, Handler, Stream};
use xdptcp::iface::Handle;
use xdptcp::runtime::stats::CoreCountersValue;
use xdptcp::runtime::Runtime;
use xdptcp::tcp::ConnError;

/// Starts `handler` on one stack of its own (see `Bed::start_ours`).
fn start<H: Handler>(bed: &Bed, peer: bool, handler: H) -> Result<Runtime<Dispatch<H>>, String> {
    bed.start_ours(peer, |cfg| {
        let mut one = Some(handler);
        Runtime::start(cfg, |_| Dispatch::new(one.take().expect("one core")))
            .map_err(|e| e.to_string())
    })
}

/// A server handler and a client handler once the client is done, with
/// their cores' last counters.
struct Ended<S, C> {
    server: S,
    client: C,
    server_core: CoreCountersValue,
    client_core: CoreCountersValue,
}

/// Runs a server handler and a client handler until the client is done.
fn run_pair<S: Handler, C: Handler>(
    bed: &Bed,
    server: S,
    client: C,
    timeout: Duration,
) -> Result<Ended<S, C>, String> {
    let srv = start(bed, true, server)?;
    let cli = start(bed, false, client)?;
    let finished = cli.wait_done(timeout, Duration::from_secs(1), |_| {});
    // The server finishes its side (a last FIN) a moment later.
    srv.wait_done(Duration::from_millis(500), Duration::from_secs(1), |_| {});
    let client_core = cli.counters().pop().unwrap_or_default();
    let server_core = srv.counters().pop().unwrap_or_default();
    let client = cli.stop().pop().ok_or("no client core")?.handler;
    let server = srv.stop().pop().ok_or("no server core")?.handler;
    if !finished {
        return Err(format!("did not finish within {timeout:?}"));
    }
    Ok(Ended {
        server,
        client,
        server_core,
        client_core,
    })
}

const CHUNK: usize = 64 * 1024;

/// One end of a bulk transfer: sends for `dur` from its first chance and
/// then closes, or receives to the end. With `stamp`, each 64 KiB chunk
/// carries the nanoseconds since `stamp` when it was queued, and the
/// receiver records how long each took to arrive whole.
pub struct BulkEnd {
    listen: Option<u16>,
    connect: Option<SocketAddr>,
    send_for: Option<Duration>,
    stamp: Option<Instant>,
    deadline: Option<Instant>,
    chunk: Vec<u8>,
    /// Offset in the current chunk (sending or receiving).
    at: usize,
    header: Vec<u8>,
    pub bytes: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub latency: Histogram<u64>,
    closed: bool,
    pub errors: Vec<String>,
}

impl BulkEnd {
    fn new(
        listen: Option<u16>,
        connect: Option<SocketAddr>,
        send_for: Option<Duration>,
        stamp: Option<Instant>,
    ) -> Self {
        BulkEnd {
            listen,
            connect,
            send_for,
            stamp,
            deadline: None,
            chunk: vec![0x5a; CHUNK],
            at: 0,
            header: Vec::new(),
            bytes: 0,
            first: None,
            last: None,
            latency: crate::scenario::histogram(),
            closed: false,
            errors: Vec::new(),
        }
    }

    fn push(&mut self, s: &mut Stream<'_>) {
        let Some(deadline) = self.deadline else {
            return;
        };
        loop {
            if self.at == 0 {
                if Instant::now() >= deadline {
                    s.close();
                    self.deadline = None;
                    return;
                }
                if let Some(base) = self.stamp {
                    let ns = base.elapsed().as_nanos() as u64;
                    self.chunk[..8].copy_from_slice(&ns.to_le_bytes());
                }
            }
            let n = s.send(&self.chunk[self.at..]);
            self.bytes += n as u64;
            self.at = (self.at + n) % CHUNK;
            if n == 0 || self.at != 0 {
                return;
            }
        }
    }

    fn begin(&mut self, s: &mut Stream<'_>) {
        s.set_nodelay(true);
        if let Some(d) = self.send_for {
            self.deadline = Some(Instant::now() + d);
            self.push(s);
        }
    }
}

impl Handler for BulkEnd {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        if let Some(p) = self.listen {
            if let Err(e) = cx.listen(p, 16) {
                self.errors.push(e.to_string());
            }
        }
        if let Some(to) = self.connect {
            if let Err(e) = cx.connect(to) {
                self.errors.push(e.to_string());
            }
        }
    }
    fn on_accept(&mut self, s: &mut Stream<'_>) {
        self.begin(s);
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        self.begin(s);
    }
    fn on_writable(&mut self, s: &mut Stream<'_>) {
        self.push(s);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        let n = s.data_len();
        if let Some(base) = self.stamp {
            for part in s.data() {
                let mut rest = part;
                while !rest.is_empty() {
                    if self.at < 8 {
                        let take = (8 - self.at).min(rest.len());
                        self.header.extend_from_slice(&rest[..take]);
                    }
                    let take = (CHUNK - self.at).min(rest.len());
                    self.at += take;
                    rest = &rest[take..];
                    if self.at == CHUNK {
                        let sent = u64::from_le_bytes(self.header[..8].try_into().expect("8"));
                        let ns = (base.elapsed().as_nanos() as u64).saturating_sub(sent);
                        let _ = self.latency.record(ns.max(1));
                        self.header.clear();
                        self.at = 0;
                    }
                }
            }
        }
        s.consume(n);
        self.bytes += n as u64;
        self.last = Some(now);
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        self.last.get_or_insert_with(Instant::now);
        s.close();
    }
    fn on_closed(&mut self, _: Handle, error: Option<ConnError>) {
        if let Some(e) = error {
            self.errors.push(format!("{e:?}"));
        }
        self.closed = true;
    }
    fn done(&self) -> bool {
        self.closed || !self.errors.is_empty()
    }
}

/// What a bulk transfer between two of our stacks measured.
pub struct NativeBulk {
    pub bytes: u64,
    /// From the receiver's first byte to its last.
    pub secs: f64,
    /// Per-chunk latency, if stamped.
    pub latency: Histogram<u64>,
    /// The receiver's bare ACKs per data segment it received.
    pub acks_per_segment: f64,
}

/// Bulk between two of our stacks.
pub fn bulk(
    bed: &Bed,
    upload: bool,
    dur: Duration,
    port: u16,
    stamp: bool,
) -> Result<NativeBulk, String> {
    let base = stamp.then(Instant::now);
    let to = bed.server_addr(port);
    let send = Some(dur);
    let (server, client) = if upload {
        (
            BulkEnd::new(Some(port), None, None, base),
            BulkEnd::new(None, Some(to), send, base),
        )
    } else {
        (
            BulkEnd::new(Some(port), None, send, base),
            BulkEnd::new(None, Some(to), None, base),
        )
    };
    let e = run_pair(bed, server, client, dur + Duration::from_secs(30))?;
    let (s, c) = (e.server, e.client);
    if let Some(e) = s.errors.iter().chain(&c.errors).next() {
        return Err(e.clone());
    }
    let (sender, receiver, core) = if upload {
        (c, s, e.server_core)
    } else {
        (s, c, e.client_core)
    };
    if receiver.bytes != sender.bytes {
        return Err(format!(
            "{} bytes sent, {} received",
            sender.bytes, receiver.bytes
        ));
    }
    let (Some(first), Some(last)) = (receiver.first, receiver.last) else {
        return Err("nothing arrived".into());
    };
    Ok(NativeBulk {
        bytes: receiver.bytes,
        secs: (last - first).as_secs_f64(),
        latency: receiver.latency,
        acks_per_segment: core.bare_acks_out as f64 / core.data_segments_in.max(1) as f64,
    })
}

/// Request/response with the echo applications: (latency, per second),
/// after a warm-up connection of a tenth as many rounds.
pub fn rr(bed: &Bed, size: usize, count: u32, port: u16) -> Result<(Histogram<u64>, f64), String> {
    let to = bed.server_addr(port);
    let server = || EchoServer {
        port,
        served: Arc::new(AtomicUsize::new(0)),
        max_conns: 1,
        errors: Vec::new(),
        bytes: 0,
    };
    run_pair(
        bed,
        server(),
        EchoClient::new(to, size, (count / 10).max(1), 1),
        Duration::from_secs(60),
    )?;
    let e = run_pair(
        bed,
        server(),
        EchoClient::new(to, size, count, 1),
        Duration::from_secs(120),
    )?;
    let (s, c) = (e.server, e.client);
    if let Some(e) = c.errors.first().or(s.errors.first()) {
        return Err(e.clone());
    }
    // One round trip at a time: the rate is the inverse of the mean.
    let per_sec = 1e9 / c.latency.mean().max(1.0);
    Ok((c.latency, per_sec))
}

/// The key the crr server makes Fast Open cookies with.
const FAST_OPEN_KEY: [u8; 16] = *b"xdptcp-bench-tfo";

/// The crr server: answers one 64-byte request and closes.
struct CrrServer {
    port: u16,
    fast_open: bool,
    errors: Vec<String>,
}

impl Handler for CrrServer {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        let r = if self.fast_open {
            cx.listen_fast_open(self.port, 1024, FAST_OPEN_KEY)
        } else {
            cx.listen(self.port, 1024)
        };
        if let Err(e) = r {
            self.errors.push(e.to_string());
        }
    }
    fn on_accept(&mut self, s: &mut Stream<'_>) {
        s.set_nodelay(true);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        if s.data_len() >= 64 {
            s.echo();
            s.close();
        }
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        s.close();
    }
}

/// The crr client: one connection at a time, until `count` or `limit`.
struct CrrClient {
    to: SocketAddr,
    /// Open with Fast Open: the request rides on the SYN once a cookie
    /// is cached (from the first connection on).
    fast_open: bool,
    /// Bytes of the request the SYN carried.
    on_syn: usize,
    count: u64,
    limit: Duration,
    t0: Option<Instant>,
    current: Option<(Handle, Instant)>,
    got: usize,
    n: u64,
    latency: Histogram<u64>,
    errors: Vec<String>,
    over: bool,
    ended: Option<Instant>,
}

impl Handler for CrrClient {
    fn on_poll(&mut self, cx: &mut Ctx<'_>) -> bool {
        let t0 = *self.t0.get_or_insert_with(Instant::now);
        if self.current.is_some() || self.over {
            return false;
        }
        if self.n >= self.count || t0.elapsed() >= self.limit || !self.errors.is_empty() {
            self.over = true;
            self.ended = Some(Instant::now());
            return false;
        }
        let start = Instant::now();
        let opened = if self.fast_open {
            cx.connect_fast_open(self.to, &REQUEST)
        } else {
            cx.connect(self.to).map(|h| (h, 0))
        };
        match opened {
            Ok((h, on_syn)) => {
                self.current = Some((h, start));
                self.on_syn = on_syn;
            }
            Err(e) => self.errors.push(format!("connect: {e}")),
        }
        self.got = 0;
        true
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        s.set_nodelay(true);
        s.send(&REQUEST[self.on_syn..]);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let n = s.data_len();
        self.got += n;
        s.consume(n);
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        s.close();
    }
    fn on_closed(&mut self, id: Handle, error: Option<ConnError>) {
        if let Some(e) = error {
            self.errors.push(format!("{e:?}"));
        }
        if let Some((h, start)) = self.current {
            if h == id {
                if self.got != 64 {
                    self.errors
                        .push(format!("{} of 64 bytes came back", self.got));
                }
                let _ = self.latency.record(start.elapsed().as_nanos() as u64);
                self.n += 1;
                self.current = None;
            }
        }
    }
    fn done(&self) -> bool {
        self.over
    }
}

const REQUEST: [u8; 64] = [7u8; 64];

/// Connect/request/response/close: (latency, connections per second).
/// With `fast_open` (RFC 7413) the request rides on the SYN.
pub fn crr(
    bed: &Bed,
    count: u64,
    limit: Duration,
    port: u16,
    fast_open: bool,
) -> Result<(Histogram<u64>, f64), String> {
    let server = CrrServer {
        port,
        fast_open,
        errors: Vec::new(),
    };
    let client = CrrClient {
        to: bed.server_addr(port),
        fast_open,
        on_syn: 0,
        count,
        limit,
        t0: None,
        current: None,
        got: 0,
        n: 0,
        latency: crate::scenario::histogram(),
        errors: Vec::new(),
        over: false,
        ended: None,
    };
    let e = run_pair(bed, server, client, limit + Duration::from_secs(30))?;
    let (s, c) = (e.server, e.client);
    if let Some(e) = c.errors.first().or(s.errors.first()) {
        return Err(e.clone());
    }
    let secs = match (c.t0, c.ended) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => return Err("the client never ran".into()),
    };
    Ok((c.latency, c.n as f64 / secs))
}
