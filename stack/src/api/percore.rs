//! The per-core, run-to-completion API. An application is a [`Handler`];
//! the runtime runs one instance per core, inside that core's loop, so a
//! handler takes no lock and makes no system call to send or receive.
//! Listening ports are opened on every core (like SO_REUSEPORT): each
//! core accepts the flows steered to it.
//!
//! Callbacks get a [`Stream`]: received bytes are shown in place in the
//! connection's receive ring (`data`), released with `consume`; `send`
//! copies once into the send ring, from which segments are built straight
//! into the device's frames; `echo` moves received bytes to the send ring
//! without an application buffer in between.

use crate::iface::{Handle, Interface};
use crate::runtime::{CoreApp, CoreContext};
use crate::tcp::{ConnError, Connection, State, UnsentLimit};
use crate::time::Instant;
use std::net::SocketAddr;

/// What a handler can do outside a connection's callback.
pub struct Ctx<'a> {
    pub core: usize,
    pub cores: usize,
    pub now: Instant,
    iface: &'a mut Interface,
    listening: &'a mut Vec<u16>,
    opened: &'a mut Vec<Handle>,
    /// Connections the handler used here: visited this loop, so that what
    /// it did (a close, an abort) reaches its callbacks.
    touched: &'a mut Vec<Handle>,
}

impl Ctx<'_> {
    /// Listens on `port` on this core (each core's handler does the same).
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<(), crate::iface::IfaceError> {
        self.iface.listen(port, None, backlog)?;
        self.listening.push(port);
        Ok(())
    }

    /// Opens a connection from this core; `on_connected` follows.
    pub fn connect(
        &mut self,
        to: impl Into<SocketAddr>,
    ) -> Result<Handle, crate::iface::IfaceError> {
        let h = self.iface.connect(to.into(), None, self.now)?;
        self.opened.push(h);
        Ok(h)
    }

    /// Listens on `port` with TCP Fast Open (RFC 7413): clients that hold
    /// a cookie made with `key` may send their request on the SYN.
    pub fn listen_fast_open(
        &mut self,
        port: u16,
        backlog: usize,
        key: [u8; 16],
    ) -> Result<(), crate::iface::IfaceError> {
        let cfg = crate::tcp::Config {
            fast_open_key: Some(key),
            ..self.iface.config().tcp.clone()
        };
        self.iface.listen(port, Some(cfg), backlog)?;
        self.listening.push(port);
        Ok(())
    }

    /// Opens a connection with TCP Fast Open: the SYN carries what fits
    /// of `data` when this core holds a cookie from the server, and asks
    /// for one otherwise. Returns the handle and how many bytes of `data`
    /// the SYN carries (send the rest from `on_connected`).
    pub fn connect_fast_open(
        &mut self,
        to: impl Into<SocketAddr>,
        data: &[u8],
    ) -> Result<(Handle, usize), crate::iface::IfaceError> {
        let (h, n) = self
            .iface
            .connect_fast_open(to.into(), None, data, self.now)?;
        self.opened.push(h);
        Ok((h, n))
    }

    /// A connection of this core, outside its callbacks (for example to
    /// send on one connection what arrived on another).
    pub fn stream(&mut self, h: Handle) -> Option<Stream<'_>> {
        let peer = self.iface.tuple(h)?;
        let peer = peer.remote();
        let conn = self.iface.tcp(h)?;
        self.touched.push(h);
        Some(Stream {
            id: h,
            peer,
            now: self.now,
            conn,
            short_send: false,
        })
    }
}

/// One connection, lent to a callback.
pub struct Stream<'a> {
    id: Handle,
    peer: SocketAddr,
    pub now: Instant,
    conn: &'a mut Connection,
    short_send: bool,
}

impl Stream<'_> {
    pub fn id(&self) -> Handle {
        self.id
    }
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// Received bytes in place and in order: a part per frame the stack
    /// kept where it arrived, then up to two from the receive ring.
    pub fn data(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.conn.recv_parts()
    }
    pub fn data_len(&self) -> usize {
        self.conn.recv_queue()
    }
    /// Releases the first `n` received bytes (opening the window).
    pub fn consume(&mut self, n: usize) {
        self.conn.recv_consume(n);
    }
    /// Queues bytes; returns how many fit. When not all fit, `on_writable`
    /// follows once there is room.
    pub fn send(&mut self, data: &[u8]) -> usize {
        let n = self.conn.send(data).unwrap_or(0);
        self.short_send |= n < data.len();
        n
    }
    /// Queues `chunk` without copying it, whole or not at all (given back
    /// when it does not fit: `on_writable` follows once there is room).
    /// The connection gives it back through `reclaim` once acknowledged.
    pub fn send_owned(&mut self, chunk: Vec<u8>) -> Result<(), Vec<u8>> {
        let r = self.conn.send_owned(chunk).map_err(|(_, c)| c);
        self.short_send |= r.is_err();
        r
    }
    /// A chunk given to `send_owned` that the connection is done with.
    pub fn reclaim(&mut self) -> Option<Vec<u8>> {
        self.conn.reclaim()
    }
    /// Moves received bytes to the send ring (as many as fit); `on_writable`
    /// follows if some are left.
    pub fn echo(&mut self) -> usize {
        let n = self.conn.echo().unwrap_or(0);
        self.short_send |= self.data_len() > 0;
        n
    }
    /// Bytes `send` would take now: the send buffer's room within the
    /// bound on unsent bytes.
    pub fn send_capacity(&self) -> usize {
        self.conn.send_capacity()
    }
    /// The connection's latest RTT sample and the count of samples so far.
    pub fn last_rtt_sample(&self) -> Option<(u64, std::time::Duration)> {
        self.conn.last_rtt_sample()
    }
    /// What `ss -ti` would show: Linux's `struct tcp_info` fields
    /// (`tcp/info.rs`).
    pub fn info(&self) -> crate::tcp::info::Info {
        self.conn.info(self.now)
    }
    /// Bytes queued and not yet sent once.
    pub fn unsent(&self) -> usize {
        self.conn.unsent()
    }
    /// Bounds the unsent bytes (TCP_NOTSENT_LOWAT); `on_writable` follows
    /// the bound: it comes once unsent bytes fall below it.
    pub fn set_unsent_limit(&mut self, limit: UnsentLimit) {
        self.conn.set_unsent_limit(limit);
    }
    /// The bound in force, in bytes (`Auto` resolved for the path now).
    pub fn unsent_limit(&self) -> usize {
        self.conn.unsent_limit()
    }
    /// The peer closed its side and everything before its FIN was consumed.
    pub fn at_eof(&self) -> bool {
        self.conn.at_eof()
    }
    /// Everything queued is sent, then FIN.
    pub fn close(&mut self) {
        self.conn.close();
    }
    pub fn abort(&mut self) {
        self.conn.abort();
    }
    pub fn set_nodelay(&mut self, on: bool) {
        self.conn.set_nodelay(on);
    }
}

/// An application on the per-core API. Every callback has a default that
/// does nothing, but `on_readable`.
pub trait Handler: Send + 'static {
    /// Once, on the core's first loop: listen and connect here.
    fn on_start(&mut self, _cx: &mut Ctx<'_>) {}
    /// Every loop iteration: for work not tied to an event. Returns true if
    /// it did something.
    fn on_poll(&mut self, _cx: &mut Ctx<'_>) -> bool {
        false
    }
    /// A connection to a listening port is established.
    fn on_accept(&mut self, _s: &mut Stream<'_>) {}
    /// A connection opened with `Ctx::connect` is established.
    fn on_connected(&mut self, _s: &mut Stream<'_>) {}
    /// Bytes arrived (`s.data()`); consume what was used. Called again on
    /// every loop while unconsumed bytes remain (so an echo that found the
    /// send ring full simply continues next time).
    fn on_readable(&mut self, s: &mut Stream<'_>);
    /// A send came up short earlier and there is room now.
    fn on_writable(&mut self, _s: &mut Stream<'_>) {}
    /// The peer closed its side (after all its bytes were consumed).
    fn on_eof(&mut self, _s: &mut Stream<'_>) {}
    /// The connection is finished: closed normally (`None`) or failed. Its
    /// handle is released after this returns.
    fn on_closed(&mut self, _id: Handle, _error: Option<ConnError>) {}
    /// This core's part of the work is done (the runtime may stop).
    fn done(&self) -> bool {
        false
    }
}

struct Tracked {
    id: Handle,
    passive: bool,
    established: bool,
    want_write: bool,
    eof_seen: bool,
    /// The loop that last visited it (a connection is visited once a loop
    /// however many lists name it).
    visited: u64,
}

/// Runs a [`Handler`] as the runtime's [`CoreApp`].
///
/// Each loop it visits only the connections that can have something new
/// for the handler: those the interface reports activity on (a segment,
/// a timer, a failure), new ones, and those the handler left with
/// unread data. Idle connections cost nothing per loop.
pub struct Dispatch<H> {
    pub handler: H,
    started: bool,
    listening: Vec<u16>,
    /// By the handle's slot.
    conns: Vec<Option<Tracked>>,
    count: usize,
    opened: Vec<Handle>,
    /// What to visit this loop, and what asked to be visited again.
    visit: Vec<Handle>,
    again: Vec<Handle>,
    loops: u64,
    visited_last: usize,
}

impl<H: Handler> Dispatch<H> {
    pub fn new(handler: H) -> Self {
        Dispatch {
            handler,
            started: false,
            listening: Vec::new(),
            conns: Vec::new(),
            count: 0,
            opened: Vec::new(),
            visit: Vec::new(),
            again: Vec::new(),
            loops: 0,
            visited_last: 0,
        }
    }

    pub fn connections(&self) -> usize {
        self.count
    }

    /// Connections the last loop visited: those with something new, not
    /// all of them.
    pub fn visited_last_loop(&self) -> usize {
        self.visited_last
    }

    fn untrack(&mut self, id: Handle) {
        if self.conns[id.0].take().is_some() {
            self.count -= 1;
        }
    }

    fn track(&mut self, id: Handle, passive: bool) {
        let i = id.0;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        if self.conns[i].replace(Tracked::new(id, passive)).is_none() {
            self.count += 1;
        }
        self.visit.push(id);
    }
}

impl<H: Handler> CoreApp for Dispatch<H> {
    fn poll(&mut self, cx: &mut CoreContext<'_>) -> bool {
        let mut busy = false;
        {
            let mut ctx = Ctx {
                core: cx.core,
                cores: cx.cores,
                now: cx.now,
                iface: &mut *cx.iface,
                listening: &mut self.listening,
                opened: &mut self.opened,
                touched: &mut self.visit,
            };
            if !self.started {
                self.started = true;
                self.handler.on_start(&mut ctx);
                busy = true;
            }
            busy |= self.handler.on_poll(&mut ctx);
        }
        let iface = &mut *cx.iface;
        self.loops += 1;
        self.visit.append(&mut self.again);
        iface.take_activity(&mut self.visit);
        for id in std::mem::take(&mut self.opened) {
            self.track(id, false);
        }
        for k in 0..self.listening.len() {
            while let Ok(Some(id)) = iface.accept(self.listening[k]) {
                self.track(id, true);
            }
        }
        let now = cx.now;
        let mut visit = std::mem::take(&mut self.visit);
        self.visited_last = 0;
        for &id in &visit {
            let Some(t) = self.conns.get_mut(id.0).and_then(Option::as_mut) else {
                continue;
            };
            if t.id != id || t.visited == self.loops {
                continue;
            }
            t.visited = self.loops;
            self.visited_last += 1;
            let outcome = match (iface.tuple(id), iface.tcp(id)) {
                (Some(tuple), Some(conn)) => {
                    let mut s = Stream {
                        id,
                        peer: tuple.remote(),
                        now,
                        conn,
                        short_send: false,
                    };
                    visit_one(&mut self.handler, t, &mut s, &mut busy)
                }
                _ => Visit::Gone,
            };
            match outcome {
                Visit::Keep { again } => {
                    if again {
                        self.again.push(id);
                    }
                }
                Visit::Finished(error) => {
                    self.untrack(id);
                    self.handler.on_closed(id, error);
                    iface.release(id);
                    busy = true;
                }
                Visit::Gone => self.untrack(id),
            }
        }
        // Kept for its allocation.
        visit.clear();
        self.visit = visit;
        busy
    }

    fn done(&self) -> bool {
        self.handler.done()
    }
}

/// What a visit left a connection as.
enum Visit {
    /// Still tracked; `again`: visit it next loop even without new
    /// activity (the handler left data unread, or room it asked for).
    Keep { again: bool },
    /// Done (closed, or failed with the error): the handler hears of it.
    Finished(Option<ConnError>),
    /// The interface no longer has it.
    Gone,
}

/// One connection's events for the handler.
fn visit_one<H: Handler>(
    handler: &mut H,
    t: &mut Tracked,
    s: &mut Stream<'_>,
    busy: &mut bool,
) -> Visit {
    let state = s.conn.state();
    if !t.established && state.is_synchronized() {
        t.established = true;
        *busy = true;
        if t.passive {
            handler.on_accept(s);
        } else {
            handler.on_connected(s);
        }
    }
    if t.established {
        if s.data_len() > 0 {
            let before = (s.data_len(), s.conn.send_queue(), s.conn.state());
            handler.on_readable(s);
            // Work only if the handler took, wrote or closed something: one
            // waiting for room leaves all as it was (it is visited again
            // next loop), and the loop may then wait or move the clock.
            *busy |= (s.data_len(), s.conn.send_queue(), s.conn.state()) != before;
        }
        if t.want_write && s.send_capacity() > 0 {
            t.want_write = false;
            handler.on_writable(s);
            *busy = true;
        }
        t.want_write |= s.short_send;
        if !t.eof_seen && s.at_eof() {
            t.eof_seen = true;
            handler.on_eof(s);
            *busy = true;
        }
    }
    // A connection that closed normally is finished for the handler only
    // once it has handed over every byte and, with the last, its EOF
    // (above, in this visit): TIME-WAIT may come long before a handler
    // that reads in batches has read. A failed one is finished at once:
    // its data is gone with the reset, as on any socket.
    let error = s.conn.error();
    let closed = matches!(s.conn.state(), State::Closed | State::TimeWait);
    let finished = error.is_some() || closed && t.established && s.data_len() == 0;
    if finished {
        return Visit::Finished(error);
    }
    Visit::Keep {
        again: t.established && s.data_len() > 0 || t.want_write && s.send_capacity() > 0,
    }
}

impl Tracked {
    fn new(id: Handle, passive: bool) -> Self {
        Tracked {
            id,
            passive,
            established: false,
            want_write: false,
            eof_seen: false,
            visited: 0,
        }
    }
}
