//! xdptcp against xdptcp on the per-core API: the application runs inside
//! each stack's core loop (run to completion), with no application thread.
//! On a 2-CPU machine two stacks with the socket API would need four busy
//! threads (two spinning cores and two application threads) and take
//! turns by the scheduler's time slice; here each side is one thread on
//! its own CPU, as a deployment of this stack would be.

use crate::bed::{Bed, End, Settings};
use crate::job::{Job, Outcome, Serving, Stamps};
use apps::echo::{EchoClient, EchoServer};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdptcp::api::percore::{Ctx, Dispatch, Handler, Stream};
use xdptcp::api::{ConnError, CoreCountersValue, Handle, Runtime};

/// Starts `handler` on one stack of its own at `end`.
fn start<H: Handler>(
    end: &End,
    settings: &Settings,
    handler: H,
) -> Result<Runtime<Dispatch<H>>, String> {
    let rt = end.start_ours(settings, |cfg| {
        let mut one = Some(handler);
        Runtime::start(cfg, |_| Dispatch::new(one.take().expect("one core")))
            .map_err(|e| e.to_string())
    })?;
    crate::bed::note_device_mode(&end.dev, rt.device_mode());
    Ok(rt)
}

/// A client handler once it is done, with its core's last counters, and
/// what the server's half found.
struct Ended<C> {
    client: C,
    client_core: CoreCountersValue,
    server: Outcome,
}

/// Runs the server's half `job` and `client` here until the client is
/// done.
fn run_pair<C: Handler>(
    bed: &Bed,
    job: Job,
    client: C,
    timeout: Duration,
) -> Result<Ended<C>, String> {
    // The client's stack stops after the server's half ended, so that
    // the server's last FIN is still answered.
    let ((cli, finished), server) = bed.with_server(job, |_| {
        let cli = start(&bed.client, &bed.settings, client)?;
        let finished = cli.wait_done(timeout, Duration::from_secs(1), |_| {});
        Ok((cli, finished))
    })?;
    let client_core = cli.counters().pop().unwrap_or_default();
    let client = cli.stop().pop().ok_or("no client core")?.handler;
    if !finished {
        return Err(format!("did not finish within {timeout:?}"));
    }
    Ok(Ended {
        client,
        client_core,
        server,
    })
}

/// Runs `handler` as the server's half at `s`'s end until the client is
/// done; returns it with its core's last counters.
fn serve<H: Handler>(s: &Serving<'_>, handler: H) -> Result<(H, CoreCountersValue), String> {
    let srv = start(s.end, s.settings, handler)?;
    s.ready();
    s.wait_stop();
    // The server finishes its side (a last FIN) a moment later.
    srv.wait_done(Duration::from_millis(500), Duration::from_secs(1), |_| {});
    let core = srv.counters().pop().unwrap_or_default();
    let handler = srv.stop().pop().ok_or("no server core")?.handler;
    Ok((handler, core))
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
    /// Across hosts: the server host's busy CPU seconds (on one machine
    /// the caller's meter sees both ends).
    pub peer_cpu_s: f64,
}

/// Bulk between two of our stacks.
pub fn bulk(
    bed: &Bed,
    upload: bool,
    dur: Duration,
    port: u16,
    stamp: bool,
) -> Result<NativeBulk, String> {
    let to = bed.server_addr(port);
    let send = Some(dur);
    let stamps = stamp.then(|| bed.stamps());
    let job = Job::NativeBulk {
        port,
        send_for: if upload { None } else { send },
        stamps,
    };
    let base = stamp.then_some(bed.base);
    let client = BulkEnd::new(None, Some(to), if upload { send } else { None }, base);
    let e = run_pair(bed, job, client, dur + Duration::from_secs(30))?;
    let (server, c) = (e.server, e.client);
    if let Some(e) = c.errors.first() {
        return Err(e.clone());
    }
    let peer_cpu_s = if bed.is_remote() { server.cpu_s } else { 0.0 };
    let (sent, received) = if upload {
        (c.bytes, server.bytes)
    } else {
        (server.bytes, c.bytes)
    };
    if received != sent {
        return Err(format!("{sent} bytes sent, {received} received"));
    }
    if upload {
        return Ok(NativeBulk {
            bytes: received,
            secs: server.secs,
            latency: server.latency.unwrap_or_else(crate::scenario::histogram),
            acks_per_segment: server.acks_per_segment,
            peer_cpu_s,
        });
    }
    let core = e.client_core;
    let (Some(first), Some(last)) = (c.first, c.last) else {
        return Err("nothing arrived".into());
    };
    Ok(NativeBulk {
        bytes: received,
        secs: (last - first).as_secs_f64(),
        latency: c.latency,
        acks_per_segment: core.bare_acks_out as f64 / core.data_segments_in.max(1) as f64,
        peer_cpu_s,
    })
}

/// The server half of `bulk`: one bulk end on `port`.
pub fn bulk_server(
    s: &Serving<'_>,
    port: u16,
    send_for: Option<Duration>,
    stamps: Option<Stamps>,
) -> Result<Outcome, String> {
    let origin = stamps.map(|st| st.origin(s.base));
    let (end, core) = serve(s, BulkEnd::new(Some(port), None, send_for, origin))?;
    if let Some(e) = end.errors.first() {
        return Err(e.clone());
    }
    let secs = match (end.first, end.last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    Ok(Outcome {
        bytes: end.bytes,
        secs,
        acks_per_segment: core.bare_acks_out as f64 / core.data_segments_in.max(1) as f64,
        latency: origin.map(|_| end.latency),
        ..Outcome::default()
    })
}

/// Request/response with the echo applications: (latency, per second),
/// after a warm-up connection of a tenth as many rounds.
pub fn rr(bed: &Bed, size: usize, count: u32, port: u16) -> Result<(Histogram<u64>, f64), String> {
    let to = bed.server_addr(port);
    let job = || Job::NativeEcho { port };
    run_pair(
        bed,
        job(),
        EchoClient::new(to, size, (count / 10).max(1), 1),
        Duration::from_secs(60),
    )?;
    let c = run_pair(
        bed,
        job(),
        EchoClient::new(to, size, count, 1),
        Duration::from_secs(120),
    )?
    .client;
    if let Some(e) = c.errors.first() {
        return Err(e.clone());
    }
    // One round trip at a time: the rate is the inverse of the mean.
    let per_sec = 1e9 / c.latency.mean().max(1.0);
    Ok((c.latency, per_sec))
}

/// The server half of `rr`: the echo application, one connection.
pub fn echo_server(s: &Serving<'_>, port: u16) -> Result<Outcome, String> {
    let server = EchoServer {
        port,
        served: Arc::new(AtomicUsize::new(0)),
        max_conns: 1,
        errors: Vec::new(),
        bytes: 0,
    };
    let (server, _) = serve(s, server)?;
    match server.errors.first() {
        Some(e) => Err(e.clone()),
        None => Ok(Outcome {
            bytes: server.bytes,
            ..Outcome::default()
        }),
    }
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
    let job = Job::NativeCrr { port, fast_open };
    let c = run_pair(bed, job, client, limit + Duration::from_secs(30))?.client;
    if let Some(e) = c.errors.first() {
        return Err(e.clone());
    }
    let secs = match (c.t0, c.ended) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => return Err("the client never ran".into()),
    };
    Ok((c.latency, c.n as f64 / secs))
}

/// The server half of `crr`.
pub fn crr_server(s: &Serving<'_>, port: u16, fast_open: bool) -> Result<Outcome, String> {
    let server = CrrServer {
        port,
        fast_open,
        errors: Vec::new(),
    };
    let (server, _) = serve(s, server)?;
    match server.errors.first() {
        Some(e) => Err(e.clone()),
        None => Ok(Outcome::default()),
    }
}
