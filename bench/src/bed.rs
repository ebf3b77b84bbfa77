//! A test bed for one pairing: a client end and a server end, each
//! either the kernel's TCP (`std::net`) or our stack (the socket API over
//! AF_XDP, or the per-core API). On one machine the ends are a veth pair
//! between two namespaces, "ours" and "peer", and the server's half of
//! each scenario runs on a thread of this process; across two hosts the
//! client end is this host's interface and the server's half runs in
//! `xdptcp-bench serve` on the other (`control.rs`). Either way the
//! server's half is a [`Job`] run by the same code (`job.rs`).
//!
//! Addresses: the kernel side of the peer is .2; our stack on the peer's
//! veth end is .3 (the kernel keeps .2 there, the XDP program takes only
//! frames for .3); our stack on our end is .1, or the kernel has .1 when
//! the client is the kernel. Over IPv6 (`--ipv6`) the same hosts are
//! fd00:N::1, ::2 and ::3, beside the IPv4 ones (dual stack), and every
//! connection uses them. The two stacks' cores are pinned to
//! different CPUs: two spinning loops on one CPU would take turns.
//! Ours at both ends uses the per-core API instead (`native.rs`).
//! Across two hosts each host's kernel keeps its own address on the
//! interface and our stack takes another (`--ip`) on the same interface.

use crate::control::Control;
use crate::job::{Job, Outcome, Stamps};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdptcp::api::config::{
    interface_mac, Algorithm, BusyPoll, DeviceMode, StackConfig, UnsentLimit,
};
use xdptcp::api::socket::{Stack, TcpStream};
use xdptcp_tools::topology::{Spec, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    KernelKernel,
    XdptcpKernel,
    XdptcpXdptcp,
}

impl Pairing {
    pub const ALL: [Pairing; 3] = [
        Pairing::KernelKernel,
        Pairing::XdptcpKernel,
        Pairing::XdptcpXdptcp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pairing::KernelKernel => "kernel-kernel",
            Pairing::XdptcpKernel => "xdptcp-kernel",
            Pairing::XdptcpXdptcp => "xdptcp-xdptcp",
        }
    }

    fn client_is_ours(self) -> bool {
        self != Pairing::KernelKernel
    }

    fn server_is_ours(self) -> bool {
        self == Pairing::XdptcpXdptcp
    }

    /// Ours at both ends runs on the per-core API (`native.rs`): the bed
    /// starts no socket-API stacks for it.
    pub fn native(self) -> bool {
        self == Pairing::XdptcpXdptcp
    }
}

/// A connected stream, whichever stack carries it.
pub trait Stream: Read + Write + Send {
    /// Ends our direction (FIN); reading goes on.
    fn finish(&mut self) -> io::Result<()>;
}

impl Stream for std::net::TcpStream {
    fn finish(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Stream for TcpStream {
    fn finish(&mut self) -> io::Result<()> {
        self.shutdown()
    }
}

/// A kernel stream whose reads spin on a non-blocking socket instead of
/// sleeping: the kernel at its lowest latency, as our cores always spin.
pub struct Spinning(pub std::net::TcpStream);

impl Read for Spinning {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                r => return r,
            }
        }
    }
}

impl Write for Spinning {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                r => return r,
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Spinning {
    fn finish(&mut self) -> io::Result<()> {
        self.0.shutdown(std::net::Shutdown::Write)
    }
}

pub struct Listener(std::net::TcpListener);

impl Listener {
    /// TCP Fast Open on this listener (RFC 7413), with a queue of `qlen`
    /// pending Fast Open connections; the namespace must allow it
    /// (`enable_fast_open`).
    pub fn set_fast_open(&self, qlen: i32) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid socket, an int option of the size given.
        let r = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_FASTOPEN,
                (&qlen as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `ms` milliseconds for a connection to accept.
    pub fn wait_pending(&self, ms: i32) -> bool {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }

    pub fn accept(&self, how: KernelSocket) -> io::Result<Box<dyn Stream>> {
        let (s, _) = self.0.accept()?;
        s.set_nodelay(true)?;
        kernel_stream(s, how)
    }
}

/// How the bench sets up a kernel socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSocket {
    /// 4 MiB buffers, blocking calls: the kernel at its best for bulk.
    Big,
    /// 4 MiB buffers, calls that spin: its lowest latency (ours spin too).
    Spin,
    /// Its default autotuned buffers, and TCP_NOTSENT_LOWAT at this many
    /// bytes: the same bound on unsent bytes as ours.
    Lowat(u32),
}

fn kernel_stream(s: std::net::TcpStream, how: KernelSocket) -> io::Result<Box<dyn Stream>> {
    let sock = socket2::SockRef::from(&s);
    if let KernelSocket::Lowat(bytes) = how {
        set_notsent_lowat(&s, bytes)?;
        return Ok(Box::new(s));
    }
    // Large buffers: the kernel at its best for bulk.
    sock.set_send_buffer_size(4 << 20)?;
    sock.set_recv_buffer_size(4 << 20)?;
    if how == KernelSocket::Spin {
        s.set_nonblocking(true)?;
        return Ok(Box::new(Spinning(s)));
    }
    Ok(Box::new(s))
}

/// TCP_NOTSENT_LOWAT (Linux 3.12): writes wait while this many bytes are
/// unsent, and poll says writable only below it.
fn set_notsent_lowat(s: &std::net::TcpStream, bytes: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: a valid socket descriptor, an int option value of the size
    // given; setsockopt only reads it.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One end of a bed, as the process that acts there sees it.
#[derive(Debug, Clone)]
pub struct End {
    /// The network namespace its sockets live in (one machine); `None`:
    /// the namespace this process runs in (a host of its own).
    pub netns: Option<String>,
    pub dev: String,
    pub mac: [u8; 6],
    /// The kernel's address on `dev`, of the bed's family: its listeners
    /// and connections use it.
    pub kernel: IpAddr,
    /// Our stack's IPv4 address and prefix length on `dev`.
    pub ours: (Ipv4Addr, u8),
    /// Our stack's IPv6 address, when the bed runs over IPv6.
    pub ours6: Option<(Ipv6Addr, u8)>,
    /// The CPU our stack's core is pinned to.
    pub cpu: usize,
}

impl End {
    /// Moves the calling thread to this end (its namespace, if any).
    pub fn enter(&self) -> io::Result<()> {
        match &self.netns {
            Some(ns) => xdptcp_tools::topology::enter_namespace(ns),
            None => Ok(()),
        }
    }

    /// Our stack's address, of the bed's family.
    pub fn ours_addr(&self) -> IpAddr {
        match self.ours6 {
            Some((a, _)) => a.into(),
            None => self.ours.0.into(),
        }
    }

    /// A kernel listener on this end's kernel address (call `enter`
    /// first).
    pub fn listen(&self, port: u16) -> io::Result<Listener> {
        let addr = SocketAddr::new(self.kernel, port);
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        Ok(Listener(sock.into()))
    }

    /// Starts one of our stacks on this end with `start`, on a thread
    /// inside its namespace: its address(es), its CPU, the settings'
    /// congestion control and bound on unsent bytes, and a UMEM frame size
    /// that holds the MTU.
    pub fn start_ours<T: Send>(
        &self,
        settings: &Settings,
        start: impl FnOnce(StackConfig) -> Result<T, String> + Send,
    ) -> Result<T, String> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter().map_err(|e| e.to_string())?;
                let dev = &self.dev;
                let (ip, prefix) = self.ours;
                let mut cfg = StackConfig::new(dev, ip, prefix)
                    .map_err(|e| e.to_string())?
                    .pin(Some(vec![self.cpu]))
                    .congestion(settings.cc)
                    .unsent_limit(settings.unsent_limit)
                    .frame_size(settings.frame_size())
                    .busy_poll(settings.busy_poll);
                if let Some((a, p)) = self.ours6 {
                    cfg = cfg.ipv6(a, p);
                }
                start(cfg).map_err(|e| format!("our stack on {dev}: {e}"))
            })
            .join()
            .map_err(|_| "starting a stack panicked".to_string())?
        })
    }
}

/// What both ends of every bed in a run share.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Our stacks' congestion control.
    pub cc: Algorithm,
    /// Our stacks' bound on unsent bytes.
    pub unsent_limit: UnsentLimit,
    pub mtu: u32,
    /// Preferred busy polling on our AF_XDP sockets.
    pub busy_poll: Option<BusyPoll>,
}

impl Settings {
    /// UMEM frame size for our stacks: a whole MTU-sized frame must fit
    /// one (we send each segment in one frame).
    pub fn frame_size(&self) -> u32 {
        if self.mtu as usize + 14 > 2048 {
            4096
        } else {
            2048
        }
    }
}

/// Where the server's half of a scenario runs.
enum ServerSide {
    /// A thread of this process, in the server end's namespace; the
    /// topology lives as long as the bed.
    Local { _topology: Topology },
    /// `xdptcp-bench serve` on another host.
    Remote(Arc<Control>),
}

pub struct Bed {
    pub pairing: Pairing,
    pub settings: Settings,
    /// Connections run over IPv6.
    pub ipv6: bool,
    pub client: End,
    /// The server end as the client sees it (across hosts: as the server
    /// described itself).
    pub server: End,
    /// The origin of the stamps chunks carry (`job::Job::KernelChunks`).
    pub base: Instant,
    side: ServerSide,
    client_stack: Option<Arc<Stack>>,
}

impl Bed {
    /// A bed on this machine: builds the topology (10.`subnet`.0.0/24 and,
    /// with `ipv6`, fd00:`subnet`::/64) and starts our stacks where the
    /// pairing has them.
    pub fn new(
        pairing: Pairing,
        subnet: u8,
        offloads_off: bool,
        settings: Settings,
        ipv6: bool,
    ) -> Result<Bed, String> {
        let topo = Topology::create_spec(
            &format!("b{}", pairing as u8),
            Spec {
                subnet,
                kernel_both: !pairing.client_is_ours(),
                mtu: settings.mtu,
                offloads_off,
                ..Spec::default()
            },
        )
        .map_err(|e| format!("topology: {e}"))?;
        let six = |host: u16| ipv6.then(|| (topo.ip6(0, host), 64));
        let kernel_ip = |v4: Ipv4Addr, host: u16| -> IpAddr {
            match six(host) {
                Some((a, _)) => a.into(),
                None => v4.into(),
            }
        };
        let mac = |side: &str, dev: &str| {
            in_namespace(side, || interface_mac(dev)).map_err(|e| format!("{dev}: {e}"))
        };
        let o = topo.peer_ip().octets();
        let client = End {
            netns: Some(topo.ours.clone()),
            dev: topo.dev.clone(),
            mac: mac(&topo.ours, &topo.dev)?,
            kernel: kernel_ip(topo.our_ip(), 1),
            ours: (topo.our_ip(), 24),
            ours6: six(1),
            cpu: 0,
        };
        let server = End {
            netns: Some(topo.peer.clone()),
            dev: topo.peer_dev.clone(),
            mac: mac(&topo.peer, &topo.peer_dev)?,
            kernel: kernel_ip(topo.peer_ip(), 2),
            ours: (Ipv4Addr::new(o[0], o[1], o[2], 3), 24),
            ours6: six(3),
            cpu: 1,
        };
        if ipv6 {
            let kernel = |on_peer: bool, host: u16| {
                let a = format!("{}/64", topo.ip6(0, host));
                topo.add_kernel_address(on_peer, &a)
                    .map_err(|e| format!("topology: {e}"))
            };
            kernel(true, 2)?;
            if !pairing.client_is_ours() {
                kernel(false, 1)?;
            }
        }
        let side = ServerSide::Local { _topology: topo };
        Self::with_ends(pairing, settings, client, server, side, Instant::now())
    }

    /// A bed across two hosts: this host's `client` end and the one
    /// `xdptcp-bench serve` runs on the other, reached by `control`.
    pub fn remote(
        pairing: Pairing,
        settings: Settings,
        client: End,
        control: &Arc<Control>,
    ) -> Result<Bed, String> {
        let server = control.server_end().clone();
        let side = ServerSide::Remote(control.clone());
        Self::with_ends(pairing, settings, client, server, side, control.base)
    }

    fn with_ends(
        pairing: Pairing,
        settings: Settings,
        client: End,
        server: End,
        side: ServerSide,
        base: Instant,
    ) -> Result<Bed, String> {
        let mut bed = Bed {
            pairing,
            settings,
            ipv6: client.ours6.is_some(),
            client,
            server,
            base,
            side,
            client_stack: None,
        };
        if pairing.client_is_ours() && !pairing.native() {
            let stack = bed.client.start_ours(&settings, |cfg| {
                Stack::start(cfg).map_err(|e| e.to_string())
            })?;
            note_device_mode(&bed.client.dev, stack.runtime().device_mode());
            bed.client_stack = Some(stack);
        }
        Ok(bed)
    }

    /// Where the server should count the client's stamps from.
    pub fn stamps(&self) -> Stamps {
        match &self.side {
            ServerSide::Remote(control) => control.stamps(),
            ServerSide::Local { .. } => Stamps { offset_ns: 0 },
        }
    }

    /// The server's half runs on another host.
    pub fn is_remote(&self) -> bool {
        matches!(self.side, ServerSide::Remote(_))
    }

    /// Runs `job` at the server end and, once it is ready, `client` here
    /// (in the client end's namespace); `client` may end the job early
    /// with the stop function it is given, else it ends when `client`
    /// returns. Returns both halves' results.
    pub fn with_server<T>(
        &self,
        job: Job,
        client: impl FnOnce(&dyn Fn()) -> Result<T, String>,
    ) -> Result<(T, Outcome), String> {
        let client = |stop: &dyn Fn()| -> Result<T, String> {
            self.client.enter().map_err(|e| e.to_string())?;
            client(stop)
        };
        match &self.side {
            ServerSide::Remote(control) => control.run(&job, client),
            ServerSide::Local { .. } => {
                let stop = AtomicBool::new(false);
                let (ready_tx, ready_rx) = std::sync::mpsc::channel();
                std::thread::scope(|s| {
                    let server = s.spawn(|| {
                        let ready = |r: Result<(), String>| {
                            let _ = ready_tx.send(r);
                        };
                        self.server
                            .enter()
                            .map_err(|e| format!("server: {e}"))
                            .and_then(|_| {
                                crate::job::run(
                                    &self.server,
                                    &self.settings,
                                    self.base,
                                    &job,
                                    &ready,
                                    &stop,
                                )
                            })
                    });
                    let ended =
                        |server: std::thread::ScopedJoinHandle<'_, Result<Outcome, String>>| {
                            stop.store(true, Ordering::Relaxed);
                            server
                                .join()
                                .map_err(|_| "the server panicked".to_string())?
                        };
                    match ready_rx.recv_timeout(Duration::from_secs(15)) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            let _ = ended(server);
                            return Err(format!("server: {e}"));
                        }
                        Err(_) => {
                            // It ended without a word (its error says why) or
                            // is stuck.
                            return Err(ended(server)
                                .err()
                                .unwrap_or_else(|| "the server did not start".into()));
                        }
                    }
                    let r = client(&|| stop.store(true, Ordering::Relaxed));
                    let outcome = ended(server);
                    Ok((r?, outcome?))
                })
            }
        }
    }

    /// The server's address and `port`: the kernel's or our stack's, as
    /// the pairing has it.
    pub fn server_addr(&self, port: u16) -> SocketAddr {
        let ip = if self.pairing.server_is_ours() {
            self.server.ours_addr()
        } else {
            self.server.kernel
        };
        SocketAddr::new(ip, port)
    }

    /// A connection from the client end (on a thread `with_server` runs
    /// the client on).
    pub fn connect(&self, port: u16, how: KernelSocket) -> io::Result<Box<dyn Stream>> {
        let to = self.server_addr(port);
        match &self.client_stack {
            Some(stack) => {
                let s = TcpStream::connect_timeout(stack, to, Duration::from_secs(10))?;
                s.set_nodelay(true);
                Ok(Box::new(s))
            }
            None => {
                let s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
                s.set_nodelay(true)?;
                kernel_stream(s, how)
            }
        }
    }

    /// A kernel connection opened with TCP Fast Open carrying `first`
    /// (`sendto(MSG_FASTOPEN)`: on the SYN once the kernel holds a cookie
    /// from this server; blocking until it is all queued).
    pub fn connect_fast_open(&self, port: u16, first: &[u8]) -> io::Result<std::net::TcpStream> {
        use std::os::fd::AsRawFd;
        let addr = self.server_addr(port);
        let to: socket2::SockAddr = addr.into();
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        sock.set_tcp_nodelay(true)?;
        // SAFETY: a valid socket, `first` readable for its length, and
        // the address as socket2 laid it out with its length.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                first.as_ptr().cast(),
                first.len(),
                libc::MSG_FASTOPEN,
                to.as_ptr().cast(),
                to.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let s: std::net::TcpStream = sock.into();
        let mut s2 = &s;
        io::Write::write_all(&mut s2, &first[n as usize..])?;
        Ok(s)
    }

    /// The client's stack, if ours (for its connection snapshots).
    pub fn client_stack(&self) -> Option<&Arc<Stack>> {
        self.client_stack.as_ref()
    }
}

/// What the first of our AF_XDP sockets in this process was granted.
static DEVICE_MODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Notes (and, the first time, prints) what an AF_XDP socket of ours was
/// granted: zero-copy or copy, the XDP mode, busy polling.
pub fn note_device_mode(dev: &str, mode: Option<DeviceMode>) {
    if let Some(m) = mode {
        if DEVICE_MODE.set(m.to_string()).is_ok() {
            eprintln!("xdptcp: AF_XDP on {dev}: {m}");
        }
    }
}

/// The mode `note_device_mode` saw first.
pub fn device_mode() -> Option<&'static str> {
    DEVICE_MODE.get().map(String::as_str)
}

/// Runs `f` on a thread inside the namespace `ns`.
fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            xdptcp_tools::topology::enter_namespace(ns)?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("panicked"))?
    })
}

impl Drop for Bed {
    fn drop(&mut self) {
        // The stack before the topology: its device goes with it.
        self.client_stack = None;
    }
}
