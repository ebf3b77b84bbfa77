//! One host under test: the stack's interface on the virtual wire, a
//! virtual clock, and the socket calls packetdrill makes, with POSIX
//! meanings and errno values.
//!
//! Every call here returns at once: `Step::Wait` means "a blocking socket
//! would sleep now". The caller (`ffi.rs`) then waits for another thread
//! (packetdrill's main thread, injecting packets and moving the clock) to
//! change something, and asks again.

use crate::epoll::{Epoll, Facts, Signals, Wakes};
use crate::flags::Flags;
use crate::wire::{Wire, OUR_MAC};
use crate::write_queue::{size_goal, WriteQueue};
use crate::zerocopy::ZeroCopy;
use libc::c_int;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;
use xdptcp::iface::{Handle, IfaceConfig, Interface, RxChecksum};
use xdptcp::tcp::{ConnError, Connection, SeqNum, State, TcpError};
use xdptcp::time::Instant;

/// Open sockets at most (a process's usual descriptor limit).
const MAX_FDS: usize = 1024;
/// Timer work done at its own instant, at most this many times per clock
/// move; past it the clock jumps (a guard, never reached by a script).
pub const MAX_STEPS: usize = 200_000;
const FIRST_AUTO_PORT: u16 = 32_768;

pub enum Step<T> {
    Done(Result<T, c_int>),
    Wait,
}

use Step::{Done, Wait};

fn fail<T>(errno: c_int) -> Step<T> {
    Done(Err(errno))
}

#[derive(Default)]
struct Options {
    reuse_addr: bool,
    nodelay: bool,
    recv_buffer: Option<usize>,
    send_buffer: Option<usize>,
    mss: Option<u16>,
    congestion: Option<xdptcp::tcp::congestion::Algorithm>,
    notsent_lowat: Option<u32>,
    fast_open_key: Option<[u8; 16]>,
    /// TCP_FASTOPEN (or a key) was set on this socket.
    fast_open: bool,
    /// SO_ZEROCOPY: MSG_ZEROCOPY sends report their completions.
    zerocopy: bool,
    /// TCP_INQ: recvmsg says how many bytes are left to read.
    inq: bool,
    /// SO_MARK.
    mark: u32,
    /// TCP_USER_TIMEOUT, in milliseconds (0: none).
    user_timeout_ms: u32,
    /// TCP_FASTOPEN_CONNECT: `connect` with a cookie cached returns at
    /// once, and the first write sends the SYN with its data.
    fast_open_connect: bool,
    /// TCP_SYNCNT: SYN retransmissions before giving up.
    syn_retries: Option<u32>,
    /// TCP_CORK.
    cork: bool,
    /// SO_KEEPALIVE, and TCP_KEEPIDLE, _KEEPINTVL, _KEEPCNT when set.
    keepalive: bool,
    keep_idle: Option<u32>,
    keep_interval: Option<u32>,
    keep_count: Option<u32>,
}

/// TCP_USER_TIMEOUT's milliseconds as the stack's setting (0: none).
fn user_timeout(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
}

/// The keepalive timings a socket's options give (Linux's defaults for
/// those not set), or none while SO_KEEPALIVE is off.
fn keepalive(o: &Options) -> Option<xdptcp::tcp::Keepalive> {
    let d = xdptcp::tcp::Keepalive::default();
    let secs = |v: Option<u32>, d: Duration| v.map_or(d, |s| Duration::from_secs(u64::from(s)));
    o.keepalive.then(|| xdptcp::tcp::Keepalive {
        idle: secs(o.keep_idle, d.idle),
        interval: secs(o.keep_interval, d.interval),
        count: o.keep_count.unwrap_or(d.count),
    })
}

/// Linux's TCP_INQ and its control message type (not in the libc crate).
pub const TCP_INQ: c_int = 36;

enum Kind {
    Fresh,
    Listening {
        port: u16,
        /// Connections taken from the interface by `poll`, for `accept`.
        ready: VecDeque<Handle>,
    },
    Conn(Handle),
    Epoll(Epoll),
}

struct Socket {
    kind: Kind,
    nonblocking: bool,
    bound: Option<u16>,
    opts: Options,
    shut_read: bool,
    /// SO_ERROR reports a failure once.
    error_reported: bool,
    /// Bytes queued on the connection so far (zero-copy ids end at these
    /// offsets).
    written: u64,
    zerocopy: ZeroCopy,
    signals: Signals,
    /// Linux's skbs, where TCP_NOTSENT_LOWAT cuts writes (`write_queue.rs`).
    write_queue: WriteQueue,
    /// A connect deferred by TCP_FASTOPEN_CONNECT: the first write opens
    /// the connection to this address.
    deferred: Option<SocketAddr>,
    /// AF_INET or AF_INET6: how addresses are written back (an IPv4 peer
    /// of an AF_INET6 socket as ::ffff:a.b.c.d).
    family: c_int,
}

impl Socket {
    fn new(kind: Kind, nonblocking: bool, opts: Options) -> Socket {
        Socket {
            kind,
            nonblocking,
            bound: None,
            opts,
            shut_read: false,
            error_reported: false,
            written: 0,
            zerocopy: ZeroCopy::default(),
            signals: Signals::default(),
            write_queue: WriteQueue::default(),
            deferred: None,
            family: libc::AF_INET,
        }
    }
}

/// What `sniff_step` found.
pub enum Sniff {
    Packet(Vec<u8>, Instant),
    /// None yet; the clock moved to the stack's next timer.
    Moved,
    /// None, and no timer left.
    Nothing,
}

pub struct Host {
    pub now: Instant,
    /// Calls blocked in packetdrill's other thread (ffi.rs), and whether
    /// anything changed since they last looked: they look before the
    /// clock moves on.
    pub waiting: usize,
    pub news: bool,
    /// When a call that had waited last returned (real time).
    pub call_returned: Option<std::time::Instant>,
    pub flags: Flags,
    iface: Interface,
    wire: Wire,
    /// By descriptor. Each number is a real descriptor of this process
    /// (an eventfd) that stands for the socket: packetdrill closes the
    /// sockets a script leaves open with the real `close(2)`, which then
    /// closes that eventfd and nothing of packetdrill's own.
    sockets: BTreeMap<c_int, Socket>,
}

/// A POSIX errno for a connection's failure.
fn errno_of(e: ConnError) -> c_int {
    match e {
        ConnError::Refused => libc::ECONNREFUSED,
        ConnError::Reset => libc::ECONNRESET,
        ConnError::TimedOut => libc::ETIMEDOUT,
        ConnError::Unreachable => libc::EHOSTUNREACH,
    }
}

/// What `poll` reports for one connection; an error already reported to
/// a call no longer shows.
/// `lowat`: TCP_NOTSENT_LOWAT in force, under which Linux's poll says
/// writable only while unsent bytes are below half of it
/// (`tcp_stream_memory_free` with `wake`).
fn conn_events(c: &Connection, shut_read: bool, error_reported: bool, lowat: Option<usize>) -> i16 {
    let mut ev = 0;
    if c.error().is_some() && !error_reported {
        ev |= libc::POLLERR;
    }
    if c.recv_queue() > 0 || c.at_eof() || shut_read || c.error().is_some() {
        ev |= libc::POLLIN | libc::POLLRDNORM;
    }
    // Linux: the peer's FIN shuts reading, unread data or not.
    if c.peer_closed() {
        ev |= libc::POLLRDHUP;
    }
    // A closed connection is shut both ways (Linux's tcp_done): writable,
    // in that a write returns at once (with the error).
    let below_mark = lowat.is_none_or(|l| c.unsent() * 2 < l);
    if (c.state().is_synchronized() && c.send_capacity() > 0 && below_mark)
        || c.state() == State::Closed
    {
        ev |= libc::POLLOUT | libc::POLLWRNORM;
    }
    if matches!(
        c.state(),
        State::Closed | State::TimeWait | State::LastAck | State::Closing
    ) && (c.at_eof() || c.error().is_some() || c.state() == State::Closed)
    {
        ev |= libc::POLLHUP;
    }
    ev
}

impl Host {
    pub fn new(flags: Flags, seed: [u8; 16]) -> Host {
        let cfg = IfaceConfig {
            mac: OUR_MAC,
            ip: flags.local_ip,
            prefix_len: flags.prefix_len,
            gateway: Some(flags.gateway),
            isn_secret: seed,
            tcp: flags.tcp.clone(),
            rx_checksum: RxChecksum::Verify,
        };
        let mut iface = Interface::new(cfg);
        // IPv6 beside, for `--ip_version=ipv6` scripts.
        if iface.add_ipv6(flags.local_ip6, flags.prefix_len6).is_ok() {
            iface.set_ipv6_gateway(Some(flags.gateway6));
        }
        Host {
            // Away from zero so that nothing mistakes the start for "unset".
            now: Instant::from_millis(1_000),
            waiting: 0,
            news: false,
            call_returned: None,
            wire: Wire::new(flags.mtu),
            iface,
            flags,
            sockets: BTreeMap::new(),
        }
    }

    // ---- the clock and the wire --------------------------------------

    /// Lets the stack do everything it can at `now`: frames in, timers,
    /// frames out, and again while ARP answers or replies keep coming.
    pub fn pump(&mut self) {
        for _ in 0..64 {
            let moved = self.iface.poll(self.now, &mut self.wire);
            self.news |= moved;
            if !moved && !self.wire.has_inbound() {
                break;
            }
        }
    }

    /// Moves the clock to `to`, running each timer at its own instant on the
    /// way, so that a retransmission is stamped when it was due.
    pub fn advance_to(&mut self, to: Instant) {
        for _ in 0..MAX_STEPS {
            match self.iface.poll_at() {
                Some(at) if at <= to => {
                    self.news = true;
                    self.now = self
                        .now
                        .max(at.max(self.now + Duration::from_micros(1)).min(to));
                    self.pump();
                    if self.now >= to {
                        return;
                    }
                }
                _ => break,
            }
        }
        self.news |= to > self.now;
        self.now = self.now.max(to);
        self.pump();
    }

    pub fn inject(&mut self, packet: &[u8]) -> Result<(), c_int> {
        self.wire.inject(packet).map_err(|_| libc::EINVAL)?;
        self.pump();
        Ok(())
    }

    /// One step towards the next packet the stack sends: the packet if it
    /// has one now, else the clock moved to its next timer.
    pub fn sniff_step(&mut self) -> Sniff {
        self.pump();
        if let Some((p, at)) = self.wire.next_outbound() {
            return Sniff::Packet(p, at);
        }
        match self.iface.poll_at() {
            Some(at) => {
                self.advance_to(at.max(self.now + Duration::from_micros(1)));
                Sniff::Moved
            }
            None => Sniff::Nothing,
        }
    }

    pub fn has_packet(&self) -> bool {
        self.wire.has_outbound()
    }

    // ---- descriptors ----------------------------------------------------

    /// Is `fd` one of this stack's sockets?
    pub fn owns(&self, fd: c_int) -> bool {
        self.sockets.contains_key(&fd)
    }

    fn sock(&mut self, fd: c_int) -> Result<&mut Socket, c_int> {
        self.sockets.get_mut(&fd).ok_or(libc::EBADF)
    }

    fn new_fd(&mut self, s: Socket) -> Result<c_int, c_int> {
        if self.sockets.len() >= MAX_FDS {
            return Err(libc::EMFILE);
        }
        // SAFETY: eventfd takes no pointers; the descriptor it returns is
        // ours until `close` (or packetdrill's real close) ends it.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EMFILE));
        }
        // The number is free in the process, so a socket still filed
        // under it was closed for real behind our back: it goes now.
        if let Some(stale) = self.sockets.remove(&fd) {
            self.end(stale);
        }
        self.sockets.insert(fd, s);
        Ok(fd)
    }

    fn conn_handle(&mut self, fd: c_int) -> Result<Handle, c_int> {
        match self.sock(fd)?.kind {
            Kind::Conn(h) => Ok(h),
            Kind::Listening { .. } => Err(libc::EINVAL),
            Kind::Fresh => Err(libc::ENOTCONN),
            Kind::Epoll(_) => Err(libc::ENOTSOCK),
        }
    }

    fn conn(&mut self, h: Handle) -> Result<&mut Connection, c_int> {
        self.iface.tcp(h).ok_or(libc::EBADF)
    }

    /// The TCP settings a connection of this socket starts with.
    fn config_for(&mut self, fd: c_int) -> Result<xdptcp::tcp::Config, c_int> {
        let mut cfg = self.flags.tcp.clone();
        let sysctls = self.flags.sysctls;
        let opts = &self.sock(fd)?.opts;
        // A buffer the application sized stays that size (Linux locks it),
        // and the window scale follows from it.
        if let Some(n) = opts.recv_buffer {
            cfg.recv_buffer = n;
            cfg.autotune = false;
        }
        cfg.user_timeout = user_timeout(opts.user_timeout_ms);
        if let Some(n) = opts.send_buffer {
            cfg.send_buffer = n;
            cfg.autotune = false;
        }
        if let Some(m) = opts.mss {
            cfg.mss = m;
        }
        if let Some(n) = opts.syn_retries {
            cfg.max_syn_retries = n;
        }
        cfg.keepalive = keepalive(opts);
        if let Some(a) = opts.congestion {
            cfg.congestion = a;
        }
        if let Some(k) = opts.fast_open_key {
            cfg.fast_open_key = Some(k);
        }
        cfg.nagle &= !opts.nodelay;
        if sysctls {
            crate::sysctls::apply(&mut cfg, opts.fast_open);
            // A key set with TCP_FASTOPEN_KEY wins over the namespace's.
            if let (Some(k), Some(_)) = (opts.fast_open_key, cfg.fast_open_key) {
                cfg.fast_open_key = Some(k);
            }
        }
        Ok(cfg)
    }

    // ---- the socket calls -----------------------------------------------

    pub fn socket(&mut self, domain: c_int, ty: c_int, _protocol: c_int) -> Result<c_int, c_int> {
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            return Err(libc::EAFNOSUPPORT);
        }
        if ty & 0xf != libc::SOCK_STREAM {
            return Err(libc::ESOCKTNOSUPPORT);
        }
        let mut s = Socket::new(
            Kind::Fresh,
            ty & libc::SOCK_NONBLOCK != 0,
            Options::default(),
        );
        s.family = domain;
        self.new_fd(s)
    }

    /// The socket's address family (AF_INET or AF_INET6).
    pub fn family(&mut self, fd: c_int) -> Result<c_int, c_int> {
        Ok(self.sock(fd)?.family)
    }

    pub fn bind(&mut self, fd: c_int, addr: SocketAddr) -> Result<(), c_int> {
        let ours = match addr.ip() {
            std::net::IpAddr::V4(a) => a == self.flags.local_ip,
            std::net::IpAddr::V6(a) => a == self.flags.local_ip6,
        };
        if !addr.ip().is_unspecified() && !ours {
            return Err(libc::EADDRNOTAVAIL);
        }
        let reuse = self.sock(fd)?.opts.reuse_addr;
        // As Linux: a port is shared only by sockets that all asked for
        // SO_REUSEADDR, and never with a listener.
        let taken = addr.port() != 0
            && self.sockets.values().any(|s| {
                s.bound == Some(addr.port())
                    && !(reuse && s.opts.reuse_addr && !matches!(s.kind, Kind::Listening { .. }))
            });
        let s = self.sock(fd)?;
        if s.bound.is_some() || !matches!(s.kind, Kind::Fresh) {
            return Err(libc::EINVAL);
        }
        if taken {
            return Err(libc::EADDRINUSE);
        }
        s.bound = Some(addr.port());
        Ok(())
    }

    pub fn listen(&mut self, fd: c_int, backlog: c_int) -> Result<(), c_int> {
        let s = self.sock(fd)?;
        match s.kind {
            Kind::Listening { .. } => return Ok(()),
            Kind::Conn(_) | Kind::Epoll(_) => return Err(libc::EINVAL),
            Kind::Fresh => {}
        }
        let cfg = self.config_for(fd)?;
        // Linux allows backlog + 1 connections to wait for accept.
        let backlog = usize::try_from(backlog).unwrap_or(0).clamp(0, 4096) + 1;
        let port = match self.sock(fd)?.bound {
            Some(p) if p != 0 => {
                self.iface
                    .listen(p, Some(cfg), backlog)
                    .map_err(|_| libc::EADDRINUSE)?;
                p
            }
            _ => (FIRST_AUTO_PORT..u16::MAX)
                .find(|p| self.iface.listen(*p, Some(cfg.clone()), backlog).is_ok())
                .ok_or(libc::EADDRINUSE)?,
        };
        let s = self.sock(fd)?;
        s.bound = Some(port);
        s.kind = Kind::Listening {
            port,
            ready: VecDeque::new(),
        };
        Ok(())
    }

    /// Moves established connections from the interface's backlog to the
    /// listening socket's queue; true if one is waiting.
    fn listener_ready(&mut self, fd: c_int) -> Result<bool, c_int> {
        let Kind::Listening { port, .. } = self.sock(fd)?.kind else {
            return Err(libc::EINVAL);
        };
        while let Ok(Some(h)) = self.iface.accept(port) {
            if let Kind::Listening { ready, .. } = &mut self.sock(fd)?.kind {
                ready.push_back(h);
            }
        }
        match &self.sock(fd)?.kind {
            Kind::Listening { ready, .. } => Ok(!ready.is_empty()),
            _ => Err(libc::EINVAL),
        }
    }

    pub fn accept(&mut self, fd: c_int) -> Step<(c_int, SocketAddr)> {
        if let Err(e) = self.listener_ready(fd) {
            return fail(e);
        }
        let (h, nonblocking) = match self.sock(fd) {
            Ok(Socket {
                kind: Kind::Listening { ready, .. },
                nonblocking,
                ..
            }) => (ready.pop_front(), *nonblocking),
            _ => return fail(libc::EINVAL),
        };
        let Some(h) = h else {
            return if nonblocking {
                fail(libc::EAGAIN)
            } else {
                Wait
            };
        };
        let t = self.iface.tuple(h).expect("a connection from the backlog");
        // As Linux's clone of the listener: these options carry over.
        let opts = self.sock(fd).map_or(Options::default(), |s| Options {
            nodelay: s.opts.nodelay,
            zerocopy: s.opts.zerocopy,
            inq: s.opts.inq,
            user_timeout_ms: s.opts.user_timeout_ms,
            ..Options::default()
        });
        let family = self.sock(fd).map_or(libc::AF_INET, |s| s.family);
        let mut child = Socket::new(Kind::Conn(h), false, opts);
        child.family = family;
        let fd = self.new_fd(child);
        Done(fd.map(|fd| (fd, t.remote())))
    }

    pub fn connect(&mut self, fd: c_int, to: SocketAddr) -> Step<()> {
        let s = match self.sock(fd) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let nonblocking = s.nonblocking;
        match s.kind {
            Kind::Listening { .. } => return fail(libc::EISCONN),
            Kind::Epoll(_) => return fail(libc::ENOTSOCK),
            Kind::Conn(h) => {
                let Some(c) = self.iface.tcp_ref(h) else {
                    return fail(libc::EBADF);
                };
                return match (c.state(), c.error()) {
                    (_, Some(e)) => fail(errno_of(e)),
                    (State::SynSent | State::SynReceived, _) if nonblocking => fail(libc::EALREADY),
                    (State::SynSent | State::SynReceived, _) => Wait,
                    (State::Closed, _) => fail(libc::ECONNREFUSED),
                    _ if nonblocking => fail(libc::EISCONN),
                    _ => Done(Ok(())),
                };
            }
            Kind::Fresh => {}
        }
        if s.deferred.is_some() {
            return fail(libc::EISCONN);
        }
        if s.opts.fast_open_connect {
            return self.connect_deferred(fd, to, nonblocking);
        }
        let cfg = match self.config_for(fd) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        match self.iface.connect(to, Some(cfg), self.now) {
            Ok(h) => {
                if let Ok(s) = self.sock(fd) {
                    s.kind = Kind::Conn(h);
                }
                if nonblocking {
                    fail(libc::EINPROGRESS)
                } else {
                    Wait
                }
            }
            Err(xdptcp::iface::IfaceError::NoRoute(_)) => fail(libc::ENETUNREACH),
            Err(_) => fail(libc::EADDRNOTAVAIL),
        }
    }

    /// `connect` with TCP_FASTOPEN_CONNECT (Linux's deferred connect):
    /// with a cookie cached for the server (or cookies not required) it
    /// returns at once and the first write sends the SYN with its data;
    /// otherwise the SYN goes now, asking for a cookie.
    fn connect_deferred(&mut self, fd: c_int, to: SocketAddr, nonblocking: bool) -> Step<()> {
        let client = crate::sysctls::fast_open_client(self.flags.sysctls);
        if client.no_cookie || self.iface.fast_open_cookie_cached(to.ip()) {
            if let Ok(s) = self.sock(fd) {
                s.deferred = Some(to);
            }
            return Done(Ok(()));
        }
        match self.connect_fast_open(fd, to, &[]) {
            Ok(_) if nonblocking => fail(libc::EINPROGRESS),
            Ok(_) => Wait,
            Err(e) => fail(e),
        }
    }

    /// The address of a connect that TCP_FASTOPEN_CONNECT deferred, now
    /// taken by the write that opens the connection.
    pub fn take_deferred(&mut self, fd: c_int) -> Result<Option<SocketAddr>, c_int> {
        Ok(self.sock(fd)?.deferred.take())
    }

    /// `sendto(MSG_FASTOPEN)` on a socket not yet connected: opens with
    /// Fast Open, the SYN carrying what of `data` it may (a cookie cached
    /// for the server) or asking for a cookie. Returns how many bytes the
    /// SYN carries; `None` when the socket is connected already (the flag
    /// is then ignored, as Linux does).
    pub fn connect_fast_open(
        &mut self,
        fd: c_int,
        to: SocketAddr,
        data: &[u8],
    ) -> Result<Option<usize>, c_int> {
        if !crate::sysctls::fast_open_client(self.flags.sysctls).enabled {
            return Err(libc::EOPNOTSUPP);
        }
        match self.sock(fd)?.kind {
            Kind::Listening { .. } => return Err(libc::EISCONN),
            Kind::Epoll(_) => return Err(libc::ENOTSOCK),
            Kind::Conn(h) => {
                // Linux: a second Fast Open while the SYN is out.
                let opening = matches!(self.conn(h)?.state(), State::SynSent);
                return if opening {
                    Err(libc::EALREADY)
                } else {
                    Ok(None)
                };
            }
            Kind::Fresh => {}
        }
        let cfg = self.config_for(fd)?;
        match self.iface.connect_fast_open(to, Some(cfg), data, self.now) {
            Ok((h, taken)) => {
                let s = self.sock(fd)?;
                s.kind = Kind::Conn(h);
                s.deferred = None;
                s.written += taken as u64;
                Ok(Some(taken))
            }
            Err(xdptcp::iface::IfaceError::NoRoute(_)) => Err(libc::ENETUNREACH),
            Err(_) => Err(libc::EADDRNOTAVAIL),
        }
    }

    /// Reads into `bufs` in order; `peek` leaves the data queued.
    pub fn recv(
        &mut self,
        fd: c_int,
        bufs: &mut [&mut [u8]],
        peek: bool,
        dontwait: bool,
    ) -> Step<usize> {
        // A connect TCP_FASTOPEN_CONNECT deferred is in SYN-SENT for
        // Linux: nothing to read yet.
        if let Ok(s) = self.sock(fd) {
            if s.deferred.is_some() {
                return if s.nonblocking || dontwait {
                    fail(libc::EAGAIN)
                } else {
                    Wait
                };
            }
        }
        let h = match self.conn_handle(fd) {
            Ok(h) => h,
            Err(e) => return fail(e),
        };
        let (nonblocking, shut_read) = match self.sock(fd) {
            Ok(s) => (s.nonblocking || dontwait, s.shut_read),
            Err(e) => return fail(e),
        };
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let c = match self.conn(h) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        if want == 0 {
            return Done(Ok(0));
        }
        if c.recv_queue() > 0 {
            let mut src = c.recv_parts().flatten();
            let mut n = 0;
            for buf in bufs.iter_mut() {
                for byte in buf.iter_mut() {
                    match src.next() {
                        Some(v) => {
                            *byte = *v;
                            n += 1;
                        }
                        None => break,
                    }
                }
            }
            drop(src);
            if !peek {
                c.recv_consume(n);
            }
            return Done(Ok(n));
        }
        if shut_read || c.at_eof() {
            return Done(Ok(0));
        }
        match (c.error(), c.state()) {
            (Some(e), _) => match self.report_error(fd, e) {
                Some(errno) => fail(errno),
                // Reported once already: a closed socket reads EOF.
                None => Done(Ok(0)),
            },
            (None, State::Closed) => Done(Ok(0)),
            _ if nonblocking => fail(libc::EAGAIN),
            _ => Wait,
        }
    }

    /// A connection's failure is reported once, by whichever call comes
    /// first (Linux clears `sk_err` as it reports it); None afterwards.
    fn report_error(&mut self, fd: c_int, e: ConnError) -> Option<c_int> {
        let s = self.sock(fd).ok()?;
        (!std::mem::replace(&mut s.error_reported, true)).then(|| errno_of(e))
    }

    /// Queues what fits of `data`. Blocking sockets wait for room (the
    /// caller repeats with the rest until all is queued, as send(2) does).
    /// `more`: MSG_MORE (a short segment waits for what follows).
    pub fn send(&mut self, fd: c_int, data: &[u8], dontwait: bool, more: bool) -> Step<usize> {
        let h = match self.conn_handle(fd) {
            Ok(h) => h,
            Err(libc::ENOTCONN) => return fail(libc::EPIPE),
            Err(e) => return fail(e),
        };
        let nonblocking = match self.sock(fd) {
            Ok(s) => s.nonblocking || dontwait,
            Err(e) => return fail(e),
        };
        let c = match self.conn(h) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        if data.is_empty() {
            return Done(Ok(0));
        }
        let handshaking = matches!(c.state(), State::SynSent | State::SynReceived);
        if c.state() == State::SynSent && nonblocking {
            // Linux: no writes before the handshake ends (sk_stream_wait_connect).
            return fail(libc::EAGAIN);
        }
        let r = match self.notsent_lowat(fd) {
            Some(lowat) if !handshaking => self.send_in_skbs(fd, h, data, more, lowat),
            _ => {
                let c = self.iface.tcp(h).expect("looked up above");
                if more {
                    c.send_more(data)
                } else {
                    c.send(data)
                }
            }
        };
        if let Ok(s) = self.sock(fd) {
            match r {
                Ok(n) if n == data.len() => s.written += n as u64,
                Ok(n) => {
                    s.written += n as u64;
                    s.signals.write_blocked();
                }
                Err(TcpError::WouldBlock) => s.signals.write_blocked(),
                Err(_) => {}
            }
        }
        match r {
            Ok(n) => Done(Ok(n)),
            Err(TcpError::WouldBlock) if nonblocking => fail(libc::EAGAIN),
            Err(TcpError::WouldBlock) => Wait,
            // After the failure was reported: the socket is shut (EPIPE).
            Err(TcpError::Failed(e)) => fail(self.report_error(fd, e).unwrap_or(libc::EPIPE)),
            Err(TcpError::InvalidState(_)) if handshaking && nonblocking => fail(libc::EAGAIN),
            Err(TcpError::InvalidState(_)) if handshaking => Wait,
            Err(TcpError::InvalidState(_)) => fail(libc::EPIPE),
        }
    }

    /// TCP_NOTSENT_LOWAT in force on `fd`: the socket's, else the
    /// namespace's sysctl (Linux's `tcp_notsent_lowat()`); None when off.
    fn notsent_lowat(&self, fd: c_int) -> Option<usize> {
        let own = self
            .sockets
            .get(&fd)?
            .opts
            .notsent_lowat
            .filter(|&n| n != 0);
        let lowat = match own {
            Some(n) => n,
            None if self.flags.sysctls => crate::sysctls::notsent_lowat()?,
            None => return None,
        };
        (lowat != u32::MAX).then_some(lowat as usize)
    }

    /// Queues what Linux would take of `data` under a low-water mark:
    /// skb by skb, sending each one it fills (`write_queue.rs`).
    fn send_in_skbs(
        &mut self,
        fd: c_int,
        h: Handle,
        data: &[u8],
        more: bool,
        lowat: usize,
    ) -> Result<usize, TcpError> {
        let mut done = 0;
        while let (Some(s), Some(c)) = (self.sockets.get_mut(&fd), self.iface.tcp(h)) {
            let goal = size_goal(c.send_mss() as usize, c.max_send_window() as usize);
            let written = s.written + done as u64;
            let left = data.len() - done;
            let Some(piece) = s.write_queue.next(written, c.unsent(), goal, lowat, left) else {
                break;
            };
            let piece_data = &data[done..done + piece.len];
            match if more {
                c.send_more(piece_data)
            } else {
                c.send(piece_data)
            } {
                Ok(n) => {
                    done += n;
                    if n < piece.len {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
            if piece.fills {
                self.pump();
            }
        }
        if done == 0 {
            Err(TcpError::WouldBlock)
        } else {
            Ok(done)
        }
    }

    /// Forgets the Fast Open cookies servers gave (`ip tcp_metrics flush`).
    pub fn forget_fast_open_cookies(&mut self) {
        self.iface.forget_fast_open_cookies();
    }

    /// The socket's active open is under way (SYN-SENT).
    pub fn is_opening(&mut self, fd: c_int) -> Result<bool, c_int> {
        match self.sock(fd)?.kind {
            Kind::Conn(h) => Ok(self.conn(h)?.state() == State::SynSent),
            _ => Ok(false),
        }
    }

    /// Waits for the handshake's end; its failure as an errno.
    pub fn wait_connected(&mut self, fd: c_int) -> Step<()> {
        let h = match self.conn_handle(fd) {
            Ok(h) => h,
            Err(e) => return fail(e),
        };
        let c = match self.conn(h) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        match (c.state(), c.error()) {
            (_, Some(e)) => fail(self.report_error(fd, e).unwrap_or(libc::EPIPE)),
            (State::SynSent, _) => Wait,
            _ => Done(Ok(())),
        }
    }

    /// MSG_EOR: what is queued on `fd` ends a record.
    pub fn end_record(&mut self, fd: c_int) -> Result<(), c_int> {
        let h = self.conn_handle(fd)?;
        self.conn(h)?.end_record();
        Ok(())
    }

    pub fn close(&mut self, fd: c_int) -> Result<(), c_int> {
        let s = self.sockets.remove(&fd).ok_or(libc::EBADF)?;
        // SAFETY: `fd` is the eventfd `new_fd` opened for this socket.
        unsafe { libc::close(fd) };
        self.end(s);
        Ok(())
    }

    /// What closing a socket does to the stack.
    fn end(&mut self, s: Socket) {
        match s.kind {
            Kind::Fresh | Kind::Epoll(_) => {}
            Kind::Listening { port, ready } => {
                self.iface.unlisten(port);
                for h in ready {
                    if let Some(c) = self.iface.tcp(h) {
                        c.abort();
                    }
                    self.iface.release(h);
                }
            }
            Kind::Conn(h) => {
                if let Some(c) = self.iface.tcp(h) {
                    // As Linux: closing with unread data resets the
                    // connection (RFC 2525 2.17), otherwise a FIN follows
                    // what is queued.
                    if c.recv_queue() > 0 {
                        c.abort();
                    } else {
                        c.close();
                    }
                }
                self.iface.release(h);
            }
        }
    }

    pub fn shutdown(&mut self, fd: c_int, how: c_int) -> Result<(), c_int> {
        let h = self.conn_handle(fd)?;
        if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
            return Err(libc::EINVAL);
        }
        if how != libc::SHUT_WR {
            self.sock(fd)?.shut_read = true;
        }
        if how != libc::SHUT_RD {
            self.conn(h)?.close();
        }
        Ok(())
    }

    pub fn set_nonblocking(&mut self, fd: c_int, on: bool) -> Result<(), c_int> {
        self.sock(fd)?.nonblocking = on;
        Ok(())
    }

    pub fn is_nonblocking(&mut self, fd: c_int) -> Result<bool, c_int> {
        Ok(self.sock(fd)?.nonblocking)
    }

    /// FIONREAD / SIOCOUTQ.
    pub fn queued(&mut self, fd: c_int, inbound: bool) -> Result<usize, c_int> {
        let h = self.conn_handle(fd)?;
        let c = self.conn(h)?;
        Ok(if inbound {
            c.recv_queue()
        } else {
            c.send_queue()
        })
    }

    /// The option's value as getsockopt(2) returns it: an int for most,
    /// a `struct tcp_info` for TCP_INFO.
    pub fn getsockopt(&mut self, fd: c_int, level: c_int, name: c_int) -> Result<Vec<u8>, c_int> {
        let handle = match self.sock(fd)?.kind {
            Kind::Conn(h) => Some(h),
            _ => None,
        };
        let conn = handle.and_then(|h| self.iface.tcp_ref(h));
        match (level, name) {
            (libc::IPPROTO_TCP, libc::TCP_INFO) => {
                let info = match conn {
                    Some(c) => c.info(self.now),
                    // A socket without a connection (listening, or not yet
                    // connected) reports its state and nothing else.
                    None => {
                        let mut i = Connection::new(self.config_for(fd)?, SeqNum(0)).info(self.now);
                        i.state = match self.sock(fd)?.kind {
                            Kind::Listening { .. } => State::Listen,
                            _ => State::Closed,
                        };
                        i
                    }
                };
                return Ok(crate::linux_info::tcp_info(&info).to_vec());
            }
            // Linux's CUBIC has no congestion-control record to report.
            (libc::IPPROTO_TCP, libc::TCP_CC_INFO) => return Ok(Vec::new()),
            (libc::SOL_SOCKET, libc::SO_MEMINFO) => {
                let (rcv, snd) = conn.map_or((0, 0), |c| (c.recv_queue(), c.send_queue()));
                let snap = conn.map(Connection::snapshot);
                let (rcvbuf, sndbuf) = snap.map_or((0, 0), |n| (n.recv_buffer, n.send_buffer));
                // SK_MEMINFO_RMEM_ALLOC, RCVBUF, WMEM_ALLOC, SNDBUF,
                // FWD_ALLOC, WMEM_QUEUED, OPTMEM, BACKLOG, DROPS.
                let v = [rcv, rcvbuf, snd, sndbuf, 0, snd, 0, 0, 0];
                return Ok(v.iter().flat_map(|x| (*x as u32).to_ne_bytes()).collect());
            }
            _ => {}
        }
        let snap = conn.map(Connection::snapshot);
        let err = conn.and_then(Connection::error);
        let cfg = self.config_for(fd)?;
        let s = self.sock(fd)?;
        let v = match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => match err {
                Some(e) if !s.error_reported => {
                    s.error_reported = true;
                    errno_of(e)
                }
                _ => 0,
            },
            (libc::SOL_SOCKET, libc::SO_TYPE) => libc::SOCK_STREAM,
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => s.opts.reuse_addr as c_int,
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                snap.as_ref().map_or(cfg.recv_buffer, |n| n.recv_buffer) as c_int
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                snap.as_ref().map_or(cfg.send_buffer, |n| n.send_buffer) as c_int
            }
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => s.opts.nodelay as c_int,
            // Linux reads back the socket's own value, 0 until set (0
            // means "the sysctl's", 4294967295: no bound).
            (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) => {
                s.opts.notsent_lowat.unwrap_or(0) as c_int
            }
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => {
                snap.as_ref().map_or(u32::from(cfg.mss), |n| n.mss) as c_int
            }
            (libc::SOL_SOCKET, libc::SO_ZEROCOPY) => s.opts.zerocopy as c_int,
            (libc::SOL_SOCKET, libc::SO_MARK) => s.opts.mark as c_int,
            (libc::IPPROTO_TCP, TCP_INQ) => s.opts.inq as c_int,
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => s.opts.user_timeout_ms as c_int,
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT) => s.opts.fast_open_connect as c_int,
            (libc::IPPROTO_TCP, libc::TCP_CORK) => s.opts.cork as c_int,
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => s.opts.keepalive as c_int,
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => s.opts.keep_idle.unwrap_or(7200) as c_int,
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => s.opts.keep_interval.unwrap_or(75) as c_int,
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => s.opts.keep_count.unwrap_or(9) as c_int,
            (libc::IPPROTO_TCP, libc::TCP_SYNCNT) => s.opts.syn_retries.unwrap_or(6) as c_int,
            _ => return Err(libc::ENOPROTOOPT),
        };
        Ok(v.to_ne_bytes().to_vec())
    }

    pub fn setsockopt(
        &mut self,
        fd: c_int,
        level: c_int,
        name: c_int,
        value: &[u8],
    ) -> Result<(), c_int> {
        let int = || {
            value
                .get(..4)
                .map(|b| c_int::from_ne_bytes(b.try_into().expect("4 bytes")))
                .ok_or(libc::EINVAL)
        };
        let handle = match self.sock(fd)?.kind {
            Kind::Conn(h) => Some(h),
            _ => None,
        };
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => self.sock(fd)?.opts.reuse_addr = int()? != 0,
            (libc::SOL_SOCKET, libc::SO_ZEROCOPY) => self.sock(fd)?.opts.zerocopy = int()? != 0,
            // Packet marks steer routing and filters, neither of which the
            // adapter's one wire has: kept, to read back.
            (libc::SOL_SOCKET, libc::SO_MARK) => self.sock(fd)?.opts.mark = int()? as u32,
            (libc::IPPROTO_TCP, TCP_INQ) => self.sock(fd)?.opts.inq = int()? != 0,
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                let ms = u32::try_from(int()?).map_err(|_| libc::EINVAL)?;
                self.sock(fd)?.opts.user_timeout_ms = ms;
                if let Some(h) = handle {
                    self.conn(h)?.set_user_timeout(user_timeout(ms));
                }
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                self.sock(fd)?.opts.recv_buffer =
                    Some(usize::try_from(int()?).map_err(|_| libc::EINVAL)?.max(2048))
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                self.sock(fd)?.opts.send_buffer =
                    Some(usize::try_from(int()?).map_err(|_| libc::EINVAL)?.max(2048))
            }
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => {
                let on = int()? != 0;
                self.sock(fd)?.opts.nodelay = on;
                if let Some(h) = handle {
                    self.conn(h)?.set_nodelay(on);
                }
            }
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => {
                let mss = u16::try_from(int()?)
                    .ok()
                    .filter(|m| *m >= 88)
                    .ok_or(libc::EINVAL)?;
                self.sock(fd)?.opts.mss = Some(mss);
            }
            // Fast Open: the queue length is not kept (the backlog
            // bounds half-open connections); a key replaces the listener's.
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN) => {
                int()?;
                let default = self.flags.tcp.fast_open_key;
                let s = self.sock(fd)?;
                s.opts.fast_open = true;
                s.opts.fast_open_key = s.opts.fast_open_key.or(default);
            }
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT) => {
                let on = int()? != 0;
                if on && !crate::sysctls::fast_open_client(self.flags.sysctls).enabled {
                    return Err(libc::EOPNOTSUPP);
                }
                self.sock(fd)?.opts.fast_open_connect = on;
            }
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE)
            | (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)
            | (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL)
            | (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => {
                let v = int()?;
                let positive = u32::try_from(v).ok().filter(|v| (1..=32_767).contains(v));
                let o = &mut self.sock(fd)?.opts;
                match name {
                    libc::SO_KEEPALIVE => o.keepalive = v != 0,
                    libc::TCP_KEEPIDLE => o.keep_idle = Some(positive.ok_or(libc::EINVAL)?),
                    libc::TCP_KEEPINTVL => o.keep_interval = Some(positive.ok_or(libc::EINVAL)?),
                    _ => o.keep_count = Some(positive.filter(|c| *c <= 127).ok_or(libc::EINVAL)?),
                }
                let ka = keepalive(o);
                if let Some(h) = handle {
                    let now = self.now;
                    self.conn(h)?.set_keepalive(ka, now);
                }
            }
            (libc::IPPROTO_TCP, libc::TCP_CORK) => {
                let on = int()? != 0;
                self.sock(fd)?.opts.cork = on;
                if let Some(h) = handle {
                    self.conn(h)?.set_cork(on);
                }
            }
            (libc::IPPROTO_TCP, libc::TCP_SYNCNT) => {
                let n = u32::try_from(int()?)
                    .ok()
                    .filter(|n| (1..=127).contains(n))
                    .ok_or(libc::EINVAL)?;
                self.sock(fd)?.opts.syn_retries = Some(n);
                if let Some(h) = handle {
                    self.conn(h)?.set_syn_retries(n);
                }
            }
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_KEY) => {
                let key: [u8; 16] = value.get(..16).ok_or(libc::EINVAL)?.try_into().expect("16");
                let s = self.sock(fd)?;
                s.opts.fast_open_key = Some(key);
                s.opts.fast_open = true;
            }
            (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) => {
                let n = int()? as u32;
                // Applied by the adapter as writes come (`send_in_skbs`).
                self.sock(fd)?.opts.notsent_lowat = Some(n);
            }
            (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
                let name = std::str::from_utf8(value).map_err(|_| libc::EINVAL)?;
                let algo = name
                    .trim_end_matches('\0')
                    .parse()
                    .map_err(|_| libc::ENOENT)?;
                self.sock(fd)?.opts.congestion = Some(algo);
            }
            _ => return Err(libc::ENOPROTOOPT),
        }
        // A listener's next connections follow (Linux: TCP_MAXSEG set
        // after listen applies to the SYN-ACKs it sends from then on).
        if let Kind::Listening { port, .. } = self.sock(fd)?.kind {
            let cfg = self.config_for(fd)?;
            self.iface
                .set_listener_config(port, cfg)
                .map_err(|_| libc::EINVAL)?;
        }
        Ok(())
    }

    /// `poll`'s revents for one descriptor.
    pub fn poll_events(&mut self, fd: c_int) -> i16 {
        let kind = match self.sock(fd) {
            Ok(s) => match s.kind {
                // A connect TCP_FASTOPEN_CONNECT deferred is writable: the
                // write sends the SYN (Linux's tcp_poll).
                Kind::Fresh if s.deferred.is_some() => return libc::POLLOUT | libc::POLLWRNORM,
                Kind::Fresh => return libc::POLLOUT | libc::POLLHUP,
                Kind::Epoll(_) => return 0,
                Kind::Listening { .. } => None,
                Kind::Conn(h) => Some((h, s.shut_read, s.error_reported)),
            },
            Err(_) => return libc::POLLNVAL,
        };
        match kind {
            None => match self.listener_ready(fd) {
                Ok(true) => libc::POLLIN | libc::POLLRDNORM,
                _ => 0,
            },
            Some((h, shut_read, reported)) => {
                let lowat = self.notsent_lowat(fd);
                let ev = self.iface.tcp_ref(h).map_or(libc::POLLNVAL, |c| {
                    conn_events(c, shut_read, reported, lowat)
                });
                // A completion waiting on the error queue is an error
                // event, as any queued error is on Linux.
                if self.refresh_zerocopy(fd) {
                    ev | libc::POLLERR
                } else {
                    ev
                }
            }
        }
    }

    // ---- zero-copy completions, TCP_INQ, epoll --------------------------

    /// Moves the sends the peer has acknowledged to the error queue; true
    /// if it holds a completion.
    fn refresh_zerocopy(&mut self, fd: c_int) -> bool {
        let Some(s) = self.sockets.get_mut(&fd) else {
            return false;
        };
        if let Kind::Conn(h) = s.kind {
            // A connection gone (or reset) holds nothing: its buffers were
            // freed, which completes its sends as it does on Linux.
            let unacked = self.iface.tcp_ref(h).map_or(0, |c| c.send_queue()) as u64;
            s.zerocopy.acked(s.written.saturating_sub(unacked));
        }
        s.zerocopy.has_unread()
    }

    /// A send with MSG_ZEROCOPY queued bytes: it takes the next id if the
    /// socket has SO_ZEROCOPY (Linux ignores the flag otherwise).
    pub fn zerocopy_sent(&mut self, fd: c_int) -> Result<(), c_int> {
        let s = self.sock(fd)?;
        if s.opts.zerocopy {
            s.zerocopy.sent(s.written);
        }
        Ok(())
    }

    /// recvmsg(MSG_ERRQUEUE): the oldest range of completed ids.
    pub fn take_completion(&mut self, fd: c_int) -> Result<(u32, u32), c_int> {
        self.refresh_zerocopy(fd);
        self.sock(fd)?.zerocopy.take().ok_or(libc::EAGAIN)
    }

    /// TCP_INQ's hint after a read: the bytes left to read, or 1 when none
    /// are left and the peer has closed (keep reading: EOF is next).
    pub fn inq_hint(&mut self, fd: c_int) -> Result<Option<c_int>, c_int> {
        if !self.sock(fd)?.opts.inq {
            return Ok(None);
        }
        let h = self.conn_handle(fd)?;
        let c = self.conn(h)?;
        let left = c.recv_queue() as c_int;
        Ok(Some(if left == 0 && c.at_eof() { 1 } else { left }))
    }

    /// A socket's wake-ups so far and its poll mask (epoll.rs); None when
    /// `fd` is not an open socket.
    fn wakes_and_mask(&mut self, fd: c_int) -> Option<(Wakes, u32)> {
        let mask = self.poll_events(fd);
        let acceptable = match &self.sockets.get(&fd)?.kind {
            Kind::Listening { ready, .. } => ready.len(),
            Kind::Epoll(_) => return None,
            _ => 0,
        };
        let s = self.sockets.get(&fd)?;
        let conn = match s.kind {
            Kind::Conn(h) => self.iface.tcp_ref(h),
            _ => None,
        };
        let facts = Facts {
            received: conn.map_or(0, |c| c.counters().bytes_received),
            fin: conn.is_some_and(|c| c.at_eof()),
            acceptable,
            completions: s.zerocopy.completions(),
            state: conn.map(|c| c.state()),
            failed: conn.is_some_and(|c| c.error().is_some()),
            writable: mask & libc::POLLOUT != 0,
        };
        let wakes = self.sockets.get_mut(&fd)?.signals.observe(facts);
        Some((wakes, mask as u16 as u32))
    }

    pub fn epoll_create(&mut self) -> Result<c_int, c_int> {
        self.new_fd(Socket::new(
            Kind::Epoll(Epoll::default()),
            false,
            Options::default(),
        ))
    }

    pub fn epoll_ctl(
        &mut self,
        epfd: c_int,
        op: c_int,
        fd: c_int,
        events: u32,
        data: u64,
    ) -> Result<(), c_int> {
        if !matches!(self.sock(epfd)?.kind, Kind::Epoll(_)) {
            return Err(libc::EINVAL);
        }
        if fd == epfd {
            return Err(libc::EINVAL);
        }
        let now = self.wakes_and_mask(fd).ok_or(libc::EBADF)?;
        match &mut self.sock(epfd)?.kind {
            Kind::Epoll(ep) => ep.ctl(op, fd, events, data, now),
            _ => Err(libc::EINVAL),
        }
    }

    /// One look for `epoll_wait`: the (events, data) of up to `max` items.
    pub fn epoll_wait(&mut self, epfd: c_int, max: usize) -> Result<Vec<(u32, u64)>, c_int> {
        let mut ep = match &mut self.sock(epfd)?.kind {
            Kind::Epoll(ep) => std::mem::take(ep),
            _ => return Err(libc::EINVAL),
        };
        let out = ep.wait(max, |fd| self.wakes_and_mask(fd));
        if let Ok(Socket {
            kind: Kind::Epoll(slot),
            ..
        }) = self.sock(epfd)
        {
            *slot = ep;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn descriptors_are_real_and_a_real_close_of_one_is_harmless() {
        let mut h = Host::new(Flags::default(), [1; 16]);
        let a = h.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        let b = h.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        assert!(a >= 3 && b >= 3 && a != b, "{a} {b}");
        h.close(a).unwrap();
        assert_eq!(h.close(a), Err(libc::EBADF));
        // What packetdrill does with the sockets a script leaves open: a
        // real close(2), which closes our stand-in and nothing else.
        // SAFETY: `b` is the adapter's own eventfd.
        assert_eq!(unsafe { libc::close(b) }, 0);
        // Its number may come back for a new socket, which then replaces
        // the one closed behind our back.
        let c = h.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        assert!(h.sock(c).is_ok());
        assert_eq!(h.sockets.len(), 1 + usize::from(c != b));
        let six = h.socket(libc::AF_INET6, libc::SOCK_STREAM, 0).unwrap();
        assert_eq!(h.family(six), Ok(libc::AF_INET6));
        assert_eq!(
            h.socket(libc::AF_UNIX, libc::SOCK_STREAM, 0),
            Err(libc::EAFNOSUPPORT)
        );
        assert_eq!(
            h.socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
            Err(libc::ESOCKTNOSUPPORT)
        );
    }

    #[test]
    fn bind_refuses_a_port_in_use_and_foreign_addresses() {
        let mut h = Host::new(Flags::default(), [1; 16]);
        let a = h.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        let b = h.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080));
        h.bind(a, any).unwrap();
        h.listen(a, 1).unwrap();
        assert_eq!(h.bind(b, any), Err(libc::EADDRINUSE));
        let foreign = SocketAddr::from((Ipv4Addr::new(10, 9, 9, 9), 1));
        assert_eq!(h.bind(b, foreign), Err(libc::EADDRNOTAVAIL));
    }
}
