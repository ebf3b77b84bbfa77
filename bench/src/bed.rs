//! A test bed for one pairing: a veth pair between two namespaces, a
//! client side in "ours" and a server side in "peer", each either the
//! kernel's TCP (`std::net`) or our stack (the socket API over AF_XDP).
//!
//! Addresses: the kernel side of the peer is .2; our stack on the peer's
//! veth end is .3 (the kernel keeps .2 there, the XDP program takes only
//! frames for .3); our stack on our end is .1, or the kernel has .1 when
//! the client is the kernel. Over IPv6 (`--ipv6`) the same hosts are
//! fd00:N::1, ::2 and ::3, beside the IPv4 ones (dual stack), and every
//! connection uses them. The two stacks' cores are pinned to
//! different CPUs: two spinning loops on one CPU would take turns.
//! Ours at both ends uses the per-core API instead (`native.rs`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use xdptcp::api::socket::{Stack, TcpStream};
use xdptcp::runtime::RuntimeConfig;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::UnsentLimit;
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

pub struct Bed {
    pub pairing: Pairing,
    pub topo: Topology,
    /// Our stack's congestion control.
    pub cc: Algorithm,
    /// Our stacks' bound on unsent bytes.
    pub unsent_limit: UnsentLimit,
    pub mtu: u32,
    /// Connections run over IPv6.
    pub ipv6: bool,
    client_stack: Option<Arc<Stack>>,
}

impl Bed {
    /// Builds the topology (10.`subnet`.0.0/24 and, with `ipv6`,
    /// fd00:`subnet`::/64; MTU `mtu`) and starts our stacks where the
    /// pairing has them.
    pub fn new(
        pairing: Pairing,
        subnet: u8,
        mtu: u32,
        offloads_off: bool,
        cc: Algorithm,
        unsent_limit: UnsentLimit,
        ipv6: bool,
    ) -> Result<Bed, String> {
        let topo = Topology::create_spec(
            &format!("b{}", pairing as u8),
            Spec {
                subnet,
                kernel_both: !pairing.client_is_ours(),
                mtu,
                offloads_off,
                ..Spec::default()
            },
        )
        .map_err(|e| format!("topology: {e}"))?;
        let mut bed = Bed {
            pairing,
            topo,
            cc,
            unsent_limit,
            mtu,
            ipv6,
            client_stack: None,
        };
        if ipv6 {
            let kernel = |on_peer: bool, host: u8| {
                let a = format!("{}/64", bed.ipv6_host(host));
                bed.topo
                    .add_kernel_address(on_peer, &a)
                    .map_err(|e| format!("topology: {e}"))
            };
            kernel(true, 2)?;
            if !pairing.client_is_ours() {
                kernel(false, 1)?;
            }
        }
        if pairing.client_is_ours() && !pairing.native() {
            bed.client_stack = Some(bed.start_client_stack()?);
        }
        Ok(bed)
    }

    fn start_client_stack(&self) -> Result<Arc<Stack>, String> {
        self.start_ours(false, |cfg| Stack::start(cfg).map_err(|e| e.to_string()))
    }

    /// Starts one of our stacks with `start`, on a thread inside the
    /// namespace of its veth end: ours (CPU 0, address .1) or, with
    /// `peer`, the peer's (CPU 1, .3); the pairing's congestion control
    /// and a UMEM frame size that holds the MTU.
    pub fn start_ours<T: Send>(
        &self,
        peer: bool,
        start: impl FnOnce(RuntimeConfig) -> Result<T, String> + Send,
    ) -> Result<T, String> {
        let t = &self.topo;
        std::thread::scope(|s| {
            s.spawn(|| {
                let (dev, ip, cpu) = if peer {
                    t.enter_peer().map_err(|e| e.to_string())?;
                    (&t.peer_dev, self.ours_on_peer(), 1)
                } else {
                    t.enter_ours().map_err(|e| e.to_string())?;
                    (&t.dev, t.our_ip(), 0)
                };
                let mut cfg =
                    RuntimeConfig::for_interface(dev, ip, 24).map_err(|e| e.to_string())?;
                if self.ipv6 {
                    cfg.ipv6 = vec![(self.ipv6_host(if peer { 3 } else { 1 }), 64)];
                }
                cfg.pin = Some(vec![cpu]);
                cfg.iface.tcp.congestion = self.cc;
                cfg.iface.tcp.unsent_limit = self.unsent_limit;
                cfg.afxdp.frame_size = self.frame_size();
                start(cfg).map_err(|e| format!("our stack on {dev}: {e}"))
            })
            .join()
            .map_err(|_| "starting a stack panicked".to_string())?
        })
    }

    /// UMEM frame size for our stacks: a whole MTU-sized frame must fit
    /// one (we send each segment in one frame).
    pub fn frame_size(&self) -> u32 {
        if self.mtu as usize + 14 > 2048 {
            4096
        } else {
            2048
        }
    }

    fn ours_on_peer(&self) -> Ipv4Addr {
        let o = self.topo.peer_ip().octets();
        Ipv4Addr::new(o[0], o[1], o[2], 3)
    }

    /// fd00:N::`host`, the IPv6 twin of 10.N.0.`host`.
    pub fn ipv6_host(&self, host: u8) -> Ipv6Addr {
        self.topo.ip6(0, host.into())
    }

    /// The server's address and `port`.
    pub fn server_addr(&self, port: u16) -> SocketAddr {
        let host = if self.pairing.server_is_ours() { 3 } else { 2 };
        let ip: IpAddr = match (self.ipv6, self.pairing.server_is_ours()) {
            (true, _) => self.ipv6_host(host).into(),
            (false, true) => self.ours_on_peer().into(),
            (false, false) => self.topo.peer_ip().into(),
        };
        SocketAddr::new(ip, port)
    }

    /// Run on the calling thread before making the server's sockets.
    pub fn enter_server(&self) -> io::Result<()> {
        self.topo.enter_peer()
    }

    /// Run on the calling thread before making the client's sockets.
    pub fn enter_client(&self) -> io::Result<()> {
        self.topo.enter_ours()
    }

    /// A listener on the server side (call `enter_server` first): the
    /// kernel's (ours at both ends runs natively, see `native.rs`).
    pub fn listen(&self, port: u16) -> io::Result<Listener> {
        let addr = self.server_addr(port);
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

    /// A connection from the client side (call `enter_client` first).
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

impl Drop for Bed {
    fn drop(&mut self) {
        // The stack before the topology: its device goes with it.
        self.client_stack = None;
    }
}
