//! The familiar socket API: `TcpListener` and `TcpStream` with blocking
//! calls, `std::io::Read`/`Write`, timeouts and `std::io::Error` kinds,
//! usable from any thread. The connection itself lives on a core of the
//! runtime; the two sides talk through crossbeam channels:
//!
//! - commands (listen, connect) go to a core's command channel, which the
//!   core drains once per loop iteration (`try_recv`: no lock, no wait);
//! - each stream has a bounded channel of received chunks (core to thread)
//!   and a bounded channel of chunks to send (thread to core). A full
//!   channel is the back-pressure: the core leaves bytes in the receive
//!   ring (the window closes), the writer blocks. Blocking is the channel's
//!   own parking, so an idle application thread does not spin.

use crate::iface::Handle;
use crate::runtime::{CoreApp, CoreContext, Runtime, RuntimeConfig};
use crate::tcp::{ConnError, State, UnsentLimit};
use crossbeam::channel::{
    bounded, unbounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError,
    TrySendError,
};
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Chunks received and not yet read, per stream: the receive window is
/// what paces the peer, so this only needs to cover a reader's pauses.
const CHANNEL_CHUNKS: usize = 64;
/// Chunks written and not yet in the connection's send ring. Kept small:
/// bytes queued here are not yet TCP's, so every one adds to the latency
/// of what is written after it (64 chunks, 4 MiB, were 14 ms at 2.6
/// Gbit/s); the send ring, sized by autotuning, holds what TCP needs.
const OUT_CHUNKS: usize = 4;
const CHUNK: usize = 64 * 1024;
/// Written chunks at least this full go into the send buffer as they are
/// (`Connection::send_owned`: no copy into the ring) and come back to the
/// pool once acknowledged; emptier ones are copied, so that a chunk held
/// by TCP is never mostly air.
const OWNED_MIN: usize = CHUNK / 2;
/// Written chunks the pool keeps: those in the channel and in hand, and
/// those TCP holds until acknowledged (8 MiB of send buffer; chunks past
/// that are freed when they come back, and allocated again).
const TX_POOL: usize = OUT_CHUNKS + 2 + 128;

/// Received bytes (a chunk and how much of it is filled), the end of the
/// stream (0 bytes), or a failure.
type Incoming = Result<(Vec<u8>, usize), ErrorKind>;

/// Chunk buffers that go back and forth between a stream's application
/// thread and its core, so that neither allocates per chunk: the reader
/// gives each received chunk back once read, the core each written one
/// once TCP took it.
struct Pool(crossbeam::queue::ArrayQueue<Vec<u8>>);

impl Pool {
    fn new(chunks: usize) -> Self {
        Pool(crossbeam::queue::ArrayQueue::new(chunks))
    }

    /// A chunk of `CHUNK` bytes' capacity (its contents are left over).
    fn take(&self) -> Vec<u8> {
        self.0.pop().unwrap_or_else(|| vec![0; CHUNK])
    }

    fn give(&self, chunk: Vec<u8>) {
        if chunk.capacity() >= CHUNK {
            let _ = self.0.push(chunk);
        }
    }
}

/// A stream's two pools: received chunks (always `CHUNK` long) and written
/// ones (as long as what they hold), each as large as its channel can
/// hold, plus the chunks in hand at either end.
struct Chunks {
    rx: Pool,
    tx: Pool,
}

impl Default for Chunks {
    fn default() -> Self {
        Chunks {
            rx: Pool::new(CHANNEL_CHUNKS + 1),
            tx: Pool::new(TX_POOL),
        }
    }
}

enum Outgoing {
    Data(Vec<u8>),
    /// shutdown(Write): FIN after what was queued.
    Shutdown,
}

enum Command {
    Listen {
        port: u16,
        backlog: usize,
        accepted: Sender<io::Result<TcpStream>>,
        /// Answered once the core listens (or cannot).
        ready: Sender<io::Result<()>>,
    },
    Connect {
        to: SocketAddr,
        reply: Sender<io::Result<TcpStream>>,
    },
    /// The listener was dropped: stop listening (queued connections not
    /// yet accepted are reset), so that the port can be bound again.
    Unlisten { port: u16 },
}

fn kind(e: ConnError) -> ErrorKind {
    match e {
        ConnError::Refused => ErrorKind::ConnectionRefused,
        ConnError::Reset => ErrorKind::ConnectionReset,
        ConnError::TimedOut => ErrorKind::TimedOut,
        ConnError::Unreachable => ErrorKind::HostUnreachable,
    }
}

/// The running stack, for the socket API: dropping it stops the cores.
pub struct Stack {
    runtime: Option<Runtime<SocketCore>>,
    commands: Vec<Sender<Command>>,
    next_core: AtomicUsize,
    /// Streams the cores still hold (the application's, and dropped ones
    /// still delivering their last bytes).
    open: Arc<AtomicUsize>,
    /// Stream visits by the cores, all loops together.
    visits: Arc<AtomicU64>,
}

/// How long the socket API's applications take between turns, for the
/// automatic unsent bound (`Config::application_turn`).
pub const SOCKET_APPLICATION_TURN: Duration = Duration::from_micros(200);

/// How long `TcpListener::bind` waits for the cores to listen.
const BIND_WAIT: Duration = Duration::from_secs(10);

/// How long dropping the stack waits for closed streams to deliver.
const LINGER: Duration = Duration::from_secs(5);

impl Drop for Stack {
    fn drop(&mut self) {
        let start = std::time::Instant::now();
        while self.open.load(Ordering::Acquire) > 0 && start.elapsed() < LINGER {
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(rt) = self.runtime.take() {
            rt.stop();
        }
    }
}

impl Stack {
    /// Opens the device and starts one core per queue.
    pub fn start(cfg: impl Into<RuntimeConfig>) -> io::Result<Arc<Stack>> {
        let mut cfg: RuntimeConfig = cfg.into();
        // The application's threads wake through the scheduler, tens of
        // microseconds at best: the unsent bound must cover that, or the
        // writer starves TCP (BBR through a router reached 0.5-1.2 Gbit/s
        // with the per-core default, where Linux did 2.5-3.6).
        let turn = &mut cfg.iface.tcp.application_turn;
        *turn = (*turn).max(SOCKET_APPLICATION_TURN);
        let mut commands = Vec::new();
        let open = Arc::new(AtomicUsize::new(0));
        let visits = Arc::new(AtomicU64::new(0));
        let runtime = Runtime::start(cfg, |_| {
            let (tx, rx) = unbounded();
            commands.push(tx);
            SocketCore::new(rx, open.clone(), visits.clone())
        })
        .map_err(|e| {
            let k = match e {
                crate::device::afxdp::AfXdpError::Permission(_) => ErrorKind::PermissionDenied,
                crate::device::afxdp::AfXdpError::NoSuchInterface(_) => ErrorKind::NotFound,
                _ => ErrorKind::Other,
            };
            io::Error::new(k, e.to_string())
        })?;
        Ok(Arc::new(Stack {
            runtime: Some(runtime),
            commands,
            next_core: AtomicUsize::new(0),
            open,
            visits,
        }))
    }

    /// How many times the cores looked at a stream, in all: each loop
    /// looks only at streams with something new (a segment, a timer, the
    /// application's read, write or close), so idle ones add nothing.
    pub fn stream_visits(&self) -> u64 {
        self.visits.load(Ordering::Relaxed)
    }

    /// Per-core counters and connections, for `--stats`-like output.
    pub fn runtime(&self) -> &Runtime<SocketCore> {
        self.runtime.as_ref().expect("running until dropped")
    }

    fn stopped() -> io::Error {
        io::Error::new(ErrorKind::NotConnected, "the stack has stopped")
    }
}

pub struct TcpListener {
    port: u16,
    accepted: Receiver<io::Result<TcpStream>>,
    /// Every core's command channel, to stop listening on drop.
    commands: Vec<Sender<Command>>,
}

impl TcpListener {
    /// Listens on `port` of the stack's address, on every core; returns
    /// once every core listens (as listen(2) does, so a connection made
    /// right after finds the port open), or with `AddrInUse`.
    pub fn bind(stack: &Stack, port: u16) -> io::Result<TcpListener> {
        let (tx, rx) = unbounded();
        let (ready_tx, ready_rx) = bounded(stack.commands.len());
        for c in &stack.commands {
            let cmd = Command::Listen {
                port,
                backlog: 1024,
                accepted: tx.clone(),
                ready: ready_tx.clone(),
            };
            c.send(cmd).map_err(|_| Stack::stopped())?;
        }
        let mut listening = 0;
        let mut failed = None;
        for _ in &stack.commands {
            match ready_rx.recv_timeout(BIND_WAIT) {
                Ok(Ok(())) => listening += 1,
                Ok(Err(e)) => failed = Some(e),
                Err(_) => failed = Some(Stack::stopped()),
            }
        }
        if let Some(e) = failed {
            // Cores listen in the same order, so they all fail alike (the
            // port is another listener's, left alone); undo any that did not.
            if listening > 0 {
                for c in &stack.commands {
                    let _ = c.send(Command::Unlisten { port });
                }
            }
            return Err(e);
        }
        Ok(TcpListener {
            port,
            accepted: rx,
            commands: stack.commands.clone(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the next established connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let s = self.accepted.recv().map_err(|_| Stack::stopped())??;
        let peer = s.peer;
        Ok((s, peer))
    }

    /// Like `accept`, giving up after `timeout` with `TimedOut`.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        match self.accepted.recv_timeout(timeout) {
            Ok(s) => {
                let s = s?;
                let peer = s.peer;
                Ok((s, peer))
            }
            Err(RecvTimeoutError::Timeout) => Err(ErrorKind::TimedOut.into()),
            Err(RecvTimeoutError::Disconnected) => Err(Stack::stopped()),
        }
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        // Ordered with later commands on each core: a bind of the same
        // port right after this finds it free.
        for c in &self.commands {
            let _ = c.send(Command::Unlisten { port: self.port });
        }
    }
}

pub struct TcpStream {
    peer: SocketAddr,
    incoming: Receiver<Incoming>,
    outgoing: Option<Sender<Outgoing>>,
    /// The chunk being read: its bytes `at..filled` are not yet handed to
    /// `read`.
    leftover: Vec<u8>,
    filled: usize,
    at: usize,
    eof: bool,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    shared: Arc<Shared>,
}

/// What the application and its core share of one stream.
#[derive(Default)]
struct Shared {
    chunks: Chunks,
    nodelay: AtomicBool,
    /// The `TcpStream` was dropped.
    dropped: AtomicBool,
    /// The bound on unsent bytes the application asked for (`encode_limit`).
    limit: AtomicUsize,
    /// Bytes written and not yet taken by TCP (in the channel, or taken
    /// from it but not yet into the send ring): the writer adds, the core
    /// subtracts.
    queued: AtomicUsize,
    /// What TCP would take now (`Connection::send_capacity`: the send
    /// ring's room within the unsent bound), published by the core.
    room: AtomicUsize,
    /// The connection can take no more, ever (failed or closed).
    broken: AtomicBool,
    /// A writer is parked until `queued < room`.
    waiting: AtomicBool,
    writer: std::sync::Mutex<Option<std::thread::Thread>>,
    /// The stream is on its core's list of streams to visit.
    poked: AtomicBool,
    /// That list, and this stream's name on it (set by the core).
    visit: std::sync::OnceLock<(Arc<Pokes>, Handle)>,
}

/// The streams applications poked since the core last looked: a list
/// under a lock (each stream is on it once at most, and it keeps its
/// capacity, where a channel allocated a block every 31 pokes).
#[derive(Default)]
struct Pokes(std::sync::Mutex<Vec<Handle>>);

impl Pokes {
    fn push(&self, h: Handle) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    /// Moves the poked streams onto `to`.
    fn take_into(&self, to: &mut Vec<Handle>) {
        to.append(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Shared {
    /// Application side: the core should look at this stream (something
    /// was written, read, shut down or set). Once until the core has.
    fn poke(&self) {
        if !self.poked.swap(true, Ordering::AcqRel) {
            if let Some((pokes, h)) = self.visit.get() {
                pokes.push(*h);
            }
        }
    }

    /// Whether a write would be taken now: TCP has room beyond what is
    /// already on its way to it.
    fn writable(&self) -> bool {
        self.queued.load(Ordering::Acquire) < self.room.load(Ordering::Acquire)
    }

    /// Core side: wakes a parked writer if it may go on.
    fn wake_writer(&self) {
        if self.waiting.load(Ordering::Acquire)
            && (self.writable() || self.broken.load(Ordering::Acquire))
            && self.waiting.swap(false, Ordering::AcqRel)
        {
            if let Some(t) = self.writer.lock().expect("not poisoned").as_ref() {
                t.unpark();
            }
        }
    }
}

/// `UnsentLimit` in one atomic word: 0 auto, `usize::MAX` off, else bytes.
fn encode_limit(l: UnsentLimit) -> usize {
    match l {
        UnsentLimit::Auto => 0,
        UnsentLimit::Off => usize::MAX,
        UnsentLimit::Bytes(n) => n.clamp(1, usize::MAX - 1),
    }
}

fn decode_limit(v: usize) -> UnsentLimit {
    match v {
        0 => UnsentLimit::Auto,
        usize::MAX => UnsentLimit::Off,
        n => UnsentLimit::Bytes(n),
    }
}

/// Pieces a write is cut into when TCP has little room: not smaller than
/// this (a few segments), so that a writer near the bound does not send
/// itself byte by byte.
const MIN_PIECE: usize = 4096;

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.shared.dropped.store(true, Ordering::Release);
        self.shared.poke();
    }
}

impl TcpStream {
    /// Opens a connection from one of the stack's cores (they take turns)
    /// and waits until it is established.
    pub fn connect(stack: &Stack, to: impl Into<SocketAddr>) -> io::Result<TcpStream> {
        Self::connect_timeout(stack, to, Duration::from_secs(75))
    }

    pub fn connect_timeout(
        stack: &Stack,
        to: impl Into<SocketAddr>,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        let to = to.into();
        let core = stack.next_core.fetch_add(1, Ordering::Relaxed) % stack.commands.len();
        let (tx, rx) = bounded(1);
        stack.commands[core]
            .send(Command::Connect { to, reply: tx })
            .map_err(|_| Stack::stopped())?;
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(ErrorKind::TimedOut.into()),
            Err(RecvTimeoutError::Disconnected) => Err(Stack::stopped()),
        }
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    pub fn set_write_timeout(&mut self, t: Option<Duration>) {
        self.write_timeout = t;
    }

    /// TCP_NODELAY: send small writes at once instead of coalescing them.
    pub fn set_nodelay(&self, on: bool) {
        self.shared.nodelay.store(on, Ordering::Relaxed);
        self.shared.poke();
    }

    /// Bounds the bytes written and not yet sent (TCP_NOTSENT_LOWAT;
    /// `UnsentLimit::Auto`, derived from the path, by default): `write`
    /// waits while they are at the bound, so what is written next does not
    /// queue behind them.
    pub fn set_unsent_limit(&self, limit: UnsentLimit) {
        self.shared
            .limit
            .store(encode_limit(limit), Ordering::Relaxed);
        self.shared.poke();
    }

    /// Whether a write would be taken now without waiting (the unsent
    /// bytes are below the bound and the send ring has room).
    pub fn writable(&self) -> bool {
        self.shared.writable() || self.shared.broken.load(Ordering::Acquire)
    }

    /// Waits until a write would be taken, or the write timeout passes
    /// (`WouldBlock`), or the connection can take nothing more.
    fn wait_writable(&self, since: std::time::Instant) -> io::Result<()> {
        let sh = &self.shared;
        loop {
            if sh.broken.load(Ordering::Acquire) {
                return Err(ErrorKind::BrokenPipe.into());
            }
            if sh.writable() {
                return Ok(());
            }
            let left = match self.write_timeout {
                Some(t) => match t.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(ErrorKind::WouldBlock.into()),
                },
                None => Duration::from_millis(100),
            };
            *sh.writer.lock().expect("not poisoned") = Some(std::thread::current());
            sh.waiting.store(true, Ordering::Release);
            // The core may have made room between the check and the flag.
            if sh.writable() || sh.broken.load(Ordering::Acquire) {
                sh.waiting.store(false, Ordering::Release);
                continue;
            }
            std::thread::park_timeout(left.min(Duration::from_millis(100)));
            sh.waiting.store(false, Ordering::Release);
        }
    }

    /// Reads into `buf`; 0 means the peer closed its side.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.filled {
            if self.eof {
                return Ok(0);
            }
            let next = match self.read_timeout {
                None => self
                    .incoming
                    .recv()
                    .map_err(|_| ErrorKind::ConnectionAborted),
                Some(t) => self.incoming.recv_timeout(t).map_err(|e| match e {
                    RecvTimeoutError::Timeout => ErrorKind::WouldBlock,
                    RecvTimeoutError::Disconnected => ErrorKind::ConnectionAborted,
                }),
            };
            match next? {
                Ok((_, 0)) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok((v, n)) => {
                    let read = std::mem::replace(&mut self.leftover, v);
                    self.shared.chunks.rx.give(read);
                    (self.at, self.filled) = (0, n);
                }
                Err(k) => return Err(k.into()),
            }
            // The channel has room again: the core may hand over more.
            self.shared.poke();
        }
        let n = buf.len().min(self.filled - self.at);
        buf[..n].copy_from_slice(&self.leftover[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    /// Queues all of `data`, waiting while TCP has no room for it (the
    /// send ring is full or the unsent bytes are at their bound). With a
    /// write timeout, gives up with `WouldBlock` once nothing of `data`
    /// was taken within it, and otherwise returns what was.
    pub fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        let since = std::time::Instant::now();
        let mut done = 0;
        while done < data.len() {
            if let Err(e) = self.wait_writable(since) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            let sh = &self.shared;
            let room = sh
                .room
                .load(Ordering::Acquire)
                .saturating_sub(sh.queued.load(Ordering::Acquire));
            let n = (data.len() - done).min(CHUNK).min(room.max(MIN_PIECE));
            let out = self.outgoing.as_ref().ok_or(ErrorKind::BrokenPipe)?;
            sh.queued.fetch_add(n, Ordering::AcqRel);
            let mut chunk = sh.chunks.tx.take();
            chunk.clear();
            chunk.extend_from_slice(&data[done..done + n]);
            let msg = Outgoing::Data(chunk);
            let r = match self.write_timeout {
                None => out.send(msg).map_err(|_| ErrorKind::BrokenPipe),
                Some(t) => out.send_timeout(msg, t).map_err(|e| match e {
                    SendTimeoutError::Timeout(_) => ErrorKind::WouldBlock,
                    SendTimeoutError::Disconnected(_) => ErrorKind::BrokenPipe,
                }),
            };
            if let Err(e) = r {
                sh.queued.fetch_sub(n, Ordering::AcqRel);
                return if done > 0 { Ok(done) } else { Err(e.into()) };
            }
            sh.poke();
            done += n;
        }
        Ok(done)
    }

    /// Ends our direction (FIN after what is queued); reading goes on.
    pub fn shutdown(&mut self) -> io::Result<()> {
        if let Some(out) = self.outgoing.take() {
            out.send(Outgoing::Shutdown)
                .map_err(|_| ErrorKind::BrokenPipe)?;
            self.shared.poke();
        }
        Ok(())
    }

    /// Closes both directions: what was written is still delivered.
    pub fn close(self) {}
}

impl io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

impl io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The core's end of one stream.
struct Pipe {
    incoming: Sender<Incoming>,
    outgoing: Receiver<Outgoing>,
    pending: Option<(Vec<u8>, usize)>,
    shared: Arc<Shared>,
    eof_sent: bool,
    fin_queued: bool,
    /// The loop that last visited it (once a loop, however many lists name it).
    visited: u64,
}

fn pipe(peer: SocketAddr, room: usize) -> (Pipe, TcpStream) {
    let (in_tx, in_rx) = bounded(CHANNEL_CHUNKS);
    let (out_tx, out_rx) = bounded(OUT_CHUNKS);
    let shared = Arc::new(Shared::default());
    shared.room.store(room, Ordering::Release);
    (
        Pipe {
            incoming: in_tx,
            outgoing: out_rx,
            pending: None,
            shared: shared.clone(),
            eof_sent: false,
            fin_queued: false,
            visited: 0,
        },
        TcpStream {
            peer,
            incoming: in_rx,
            outgoing: Some(out_tx),
            leftover: Vec::new(),
            filled: 0,
            at: 0,
            eof: false,
            read_timeout: None,
            write_timeout: None,
            shared,
        },
    )
}

/// The socket API's application on each core.
pub struct SocketCore {
    commands: Receiver<Command>,
    listeners: HashMap<u16, Sender<io::Result<TcpStream>>>,
    connecting: Vec<(Handle, SocketAddr, Sender<io::Result<TcpStream>>)>,
    streams: HashMap<Handle, Pipe>,
    open: Arc<AtomicUsize>,
    /// Streams the application poked (`Shared::poke`), and the list of
    /// those to visit this loop (kept for its allocation).
    pokes: Arc<Pokes>,
    visit: Vec<Handle>,
    loops: u64,
    visits: Arc<AtomicU64>,
}

impl SocketCore {
    fn new(commands: Receiver<Command>, open: Arc<AtomicUsize>, visits: Arc<AtomicU64>) -> Self {
        SocketCore {
            commands,
            listeners: HashMap::new(),
            connecting: Vec::new(),
            streams: HashMap::new(),
            open,
            pokes: Arc::default(),
            visit: Vec::new(),
            loops: 0,
            visits,
        }
    }

    /// A new stream: the application may poke it from now on, and the
    /// core looks at it this loop.
    fn adopt(&mut self, h: Handle, p: Pipe) {
        let _ = p.shared.visit.set((self.pokes.clone(), h));
        self.open.fetch_add(1, Ordering::AcqRel);
        self.streams.insert(h, p);
        self.visit.push(h);
    }

    pub fn streams(&self) -> usize {
        self.streams.len()
    }
}

impl CoreApp for SocketCore {
    fn poll(&mut self, cx: &mut CoreContext<'_>) -> bool {
        let mut busy = false;
        let iface = &mut *cx.iface;
        loop {
            match self.commands.try_recv() {
                Ok(Command::Listen {
                    port,
                    backlog,
                    accepted,
                    ready,
                }) => match iface.listen(port, None, backlog) {
                    Ok(()) => {
                        self.listeners.insert(port, accepted);
                        let _ = ready.send(Ok(()));
                    }
                    Err(e) => {
                        let _ =
                            ready.send(Err(io::Error::new(ErrorKind::AddrInUse, e.to_string())));
                    }
                },
                Ok(Command::Unlisten { port }) => {
                    if self.listeners.remove(&port).is_some() {
                        iface.unlisten(port);
                    }
                }
                Ok(Command::Connect { to, reply }) => match iface.connect(to, None, cx.now) {
                    Ok(h) => self.connecting.push((h, to, reply)),
                    Err(e) => {
                        let k = match e {
                            crate::iface::IfaceError::NoRoute(_) => ErrorKind::NetworkUnreachable,
                            crate::iface::IfaceError::NoFreePorts => ErrorKind::AddrNotAvailable,
                            _ => ErrorKind::Other,
                        };
                        let _ = reply.send(Err(io::Error::new(k, e.to_string())));
                    }
                },
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
            busy = true;
        }
        // New connections, both ways.
        let ports: Vec<u16> = self.listeners.keys().copied().collect();
        for port in ports {
            while let Ok(Some(h)) = iface.accept(port) {
                let Some(t) = iface.tuple(h) else { continue };
                let room = iface.tcp(h).map_or(0, |c| c.send_capacity());
                let (p, s) = pipe(t.remote(), room);
                if self.listeners[&port].send(Ok(s)).is_ok() {
                    self.adopt(h, p);
                } else {
                    // The listener was dropped: refuse.
                    if let Some(c) = iface.tcp(h) {
                        c.abort();
                    }
                    iface.release(h);
                    self.listeners.remove(&port);
                    iface.unlisten(port);
                    break;
                }
                busy = true;
            }
        }
        let mut established = Vec::new();
        self.connecting.retain(|(h, to, reply)| {
            let Some(c) = iface.tcp(*h) else {
                return false;
            };
            if let Some(e) = c.error() {
                let _ = reply.send(Err(io::Error::new(
                    kind(e),
                    crate::tcp::TcpError::Failed(e).to_string(),
                )));
                iface.release(*h);
                return false;
            }
            if !c.state().is_synchronized() {
                return true;
            }
            let (p, s) = pipe(*to, c.send_capacity());
            if reply.send(Ok(s)).is_ok() {
                established.push((*h, p));
            } else {
                c.abort();
                iface.release(*h);
            }
            false
        });
        for (h, p) in established {
            self.adopt(h, p);
        }
        // Data, both ways, for the streams with something new: those the
        // interface saw a segment or timer for, those the application
        // poked, and new ones. An idle stream costs nothing per loop.
        self.loops += 1;
        iface.take_activity(&mut self.visit);
        self.pokes.take_into(&mut self.visit);
        let mut visit = std::mem::take(&mut self.visit);
        let mut visited = 0u64;
        for &h in &visit {
            let Some(p) = self.streams.get_mut(&h) else {
                continue;
            };
            if p.visited == self.loops {
                continue;
            }
            p.visited = self.loops;
            // Cleared before the visit: a poke during it brings it back.
            p.shared.poked.store(false, Ordering::Release);
            visited += 1;
            if !visit_stream(iface, h, p, &mut busy) {
                self.streams.remove(&h);
                self.open.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.visits.fetch_add(visited, Ordering::Relaxed);
        visit.clear();
        self.visit = visit;
        busy
    }
}

/// One stream's work: data from TCP to the application's channel and
/// back, its end, and what the writer may write. False: the stream is
/// gone (TCP let go of it, or the application did and TCP is done).
fn visit_stream(
    iface: &mut crate::iface::Interface,
    h: Handle,
    p: &mut Pipe,
    busy: &mut bool,
) -> bool {
    let Some(c) = iface.tcp(h) else {
        return false;
    };
    c.set_nodelay(p.shared.nodelay.load(Ordering::Relaxed));
    c.set_unsent_limit(decode_limit(p.shared.limit.load(Ordering::Relaxed)));
    let dropped = p.shared.dropped.load(Ordering::Acquire);
    if dropped {
        // Nobody will read or write it again: bounded waits only.
        c.orphan();
    }
    // Core -> application, while its channel has room (bytes for a
    // dropped stream are read and discarded).
    // Read straight into a chunk from the stream's pool.
    while dropped || !p.incoming.is_full() {
        let mut chunk = p.shared.chunks.rx.take();
        match c.recv(&mut chunk) {
            Ok(0) | Err(_) => {
                p.shared.chunks.rx.give(chunk);
                break;
            }
            Ok(_) if dropped => {
                *busy = true;
                p.shared.chunks.rx.give(chunk);
            }
            Ok(n) => {
                *busy = true;
                if p.incoming.try_send(Ok((chunk, n))).is_err() {
                    break;
                }
            }
        }
    }
    if !p.eof_sent {
        let end = match c.error() {
            Some(e) => Some(Err(kind(e))),
            None if c.at_eof() => Some(Ok((Vec::new(), 0))),
            None => None,
        };
        if let Some(m) = end {
            match p.incoming.try_send(m) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => p.eof_sent = true,
                Err(TrySendError::Full(_)) => {}
            }
        }
    }
    // Application -> core, while the send ring has room. A dropped
    // stream still delivers what was queued, then FIN.
    while !p.fin_queued && c.error().is_none() {
        if p.pending.is_none() {
            match p.outgoing.try_recv() {
                Ok(Outgoing::Data(v)) => p.pending = Some((v, 0)),
                Ok(Outgoing::Shutdown) | Err(TryRecvError::Disconnected) => {
                    c.close();
                    p.fin_queued = true;
                    *busy = true;
                    break;
                }
                Err(TryRecvError::Empty) => {
                    if dropped {
                        c.close();
                        p.fin_queued = true;
                    }
                    break;
                }
            }
        }
        if matches!(&p.pending, Some((v, 0)) if v.len() >= OWNED_MIN) {
            let (chunk, _) = p.pending.take().expect("set above");
            let n = chunk.len();
            match c.send_owned(chunk) {
                Ok(()) => {
                    p.shared.queued.fetch_sub(n, Ordering::AcqRel);
                    *busy = true;
                    continue;
                }
                // No room for all of it: copy what fits, as below.
                Err((_, chunk)) => p.pending = Some((chunk, 0)),
            }
        }
        let (v, at) = p.pending.as_mut().expect("set above");
        match c.send(&v[*at..]) {
            Ok(n) if n > 0 => {
                *at += n;
                p.shared.queued.fetch_sub(n, Ordering::AcqRel);
                *busy = true;
                if *at == v.len() {
                    let (written, _) = p.pending.take().expect("set above");
                    p.shared.chunks.tx.give(written);
                }
            }
            _ => break,
        }
    }
    // Chunks TCP is done with go back to the writer's pool.
    while let Some(chunk) = c.reclaim() {
        p.shared.chunks.tx.give(chunk);
    }
    // What TCP takes now, for the writer; a writer that waited for
    // room goes on (or learns that none will come).
    let over = c.error().is_some() || matches!(c.state(), State::Closed | State::TimeWait);
    if over || p.fin_queued {
        p.shared.broken.store(true, Ordering::Release);
    }
    p.shared.room.store(c.send_capacity(), Ordering::Release);
    p.shared.wake_writer();
    if !p.shared.writable() {
        // Visited again as soon as sending makes room, not at the next ACK.
        c.notify_when_writable();
    }
    // The connection is freed once the application let go of it and
    // TCP is done with it (TIME-WAIT is kept by the interface).
    if dropped && over {
        iface.release(h);
        return false;
    }
    true
}
