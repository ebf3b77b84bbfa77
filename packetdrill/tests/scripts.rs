//! The adapter driven the way packetdrill drives it: the built `.so` is
//! loaded with `libloading`, `packetdrill_interface_init` fills the table,
//! and each test plays a script through the callbacks: it reads the clock
//! with `gettimeofday` (and spins on it while waiting, as packetdrill
//! does), injects packets with `netdev_send`, reads the stack's with
//! `netdev_receive`, and runs blocking calls in a thread of their own.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};
use libc::{c_int, c_void, pollfd, sockaddr, sockaddr_in, socklen_t, timeval};
use libloading::{Library, Symbol};
use std::ffi::{c_char, CString};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use xdptcp_packetdrill::ffi::PacketdrillInterface;

type Ip = etherparse::PacketBuilderStep<etherparse::IpHeaders>;
type Tcp = etherparse::PacketBuilderStep<etherparse::TcpHeader>;

const LOCAL: [u8; 4] = [192, 168, 0, 1];
const REMOTE: [u8; 4] = [192, 0, 2, 1];

/// The `.so` cargo built next to this test binary.
fn library_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    for dir in [deps, deps.parent().expect("profile dir")] {
        let p = dir.join("libxdptcp_packetdrill.so");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "libxdptcp_packetdrill.so not found next to {}",
        exe.display()
    );
}

struct Pd {
    ifc: Box<PacketdrillInterface>,
    _lib: Library,
}

/// The table's pointers, to move a blocking call into its own thread as
/// packetdrill does.
#[derive(Clone, Copy)]
struct Ifc(*const PacketdrillInterface);
// SAFETY: the adapter is written for packetdrill's two threads: every
// callback locks the host before touching it.
unsafe impl Send for Ifc {}

/// One TCP segment the stack sent, as packetdrill sees it.
#[derive(Debug)]
struct Seg {
    at_us: i64,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    syn: bool,
    ack_flag: bool,
    fin: bool,
    rst: bool,
    window: u16,
    mss: Option<u16>,
    ts: Option<(u32, u32)>,
    sack_ok: bool,
    wscale: Option<u8>,
    /// The options area as sent (for options etherparse does not know).
    raw_options: Vec<u8>,
    payload: Vec<u8>,
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn sockaddr(ip: [u8; 4], port: u16) -> sockaddr_in {
    sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::from(ip)).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SIN_LEN: socklen_t = std::mem::size_of::<sockaddr_in>() as socklen_t;

impl Pd {
    fn new(flags: &str) -> Pd {
        // SAFETY: loading our own library; its initialisers are Rust's.
        let lib = unsafe { Library::new(library_path()) }.expect("dlopen the adapter");
        let mut ifc: Box<PacketdrillInterface> = Box::new(unsafe { std::mem::zeroed() });
        let flags = CString::new(flags).unwrap();
        unsafe {
            let init: Symbol<unsafe extern "C" fn(*const c_char, *mut PacketdrillInterface)> = lib
                .get(b"packetdrill_interface_init")
                .expect("the entry point");
            init(flags.as_ptr(), &mut *ifc);
        }
        Pd { ifc, _lib: lib }
    }

    fn ud(&self) -> *mut c_void {
        self.ifc.userdata
    }

    fn ifc(&self) -> Ifc {
        Ifc(&*self.ifc)
    }

    /// The virtual clock, in microseconds.
    fn now(&self) -> i64 {
        let mut tv: timeval = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { (self.ifc.gettimeofday.unwrap())(self.ud(), &mut tv, std::ptr::null_mut()) },
            0
        );
        tv.tv_sec * 1_000_000 + tv.tv_usec
    }

    /// packetdrill's wait: sleep most of the way, then spin on the clock.
    fn wait_until(&self, t: i64) {
        let left = t - self.now();
        if left > 2_000 {
            unsafe { (self.ifc.usleep.unwrap())(self.ud(), (left - 2_000) as u32) };
        }
        while self.now() < t {}
    }

    fn socket(&self) -> c_int {
        unsafe {
            (self.ifc.socket.unwrap())(
                self.ud(),
                libc::AF_INET,
                libc::SOCK_STREAM,
                libc::IPPROTO_TCP,
            )
        }
    }

    fn listen_on(&self, port: u16, backlog: c_int) -> c_int {
        let fd = self.socket();
        let one: c_int = 1;
        let sin = sockaddr(LOCAL, port);
        unsafe {
            let i = &self.ifc;
            assert_eq!(
                (i.setsockopt.unwrap())(
                    self.ud(),
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    (&one as *const c_int).cast(),
                    4
                ),
                0
            );
            assert_eq!(
                (i.bind.unwrap())(self.ud(), fd, (&sin as *const sockaddr_in).cast(), SIN_LEN),
                0
            );
            assert_eq!((i.listen.unwrap())(self.ud(), fd, backlog), 0);
        }
        fd
    }

    fn inject(&self, build: impl FnOnce(Ip) -> Tcp, payload: &[u8]) {
        let b = build(PacketBuilder::ipv4(REMOTE, LOCAL, 64));
        let mut buf = Vec::new();
        b.write(&mut buf, payload).unwrap();
        assert_eq!(
            unsafe { (self.ifc.netdev_send.unwrap())(self.ud(), buf.as_ptr().cast(), buf.len()) },
            0
        );
    }

    /// The next packet the stack sends (the clock moves to it if need be).
    fn sniff(&self) -> Option<Seg> {
        let mut buf = vec![0u8; 65_536];
        let mut count = buf.len();
        let mut at: libc::c_longlong = 0;
        let r = unsafe {
            (self.ifc.netdev_receive.unwrap())(
                self.ud(),
                buf.as_mut_ptr().cast(),
                &mut count,
                &mut at,
            )
        };
        assert_eq!(r, 0);
        if count == 0 {
            return None;
        }
        let p = SlicedPacket::from_ip(&buf[..count]).expect("the stack sent a well-formed packet");
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        assert_eq!(ip.header().source_addr().octets(), LOCAL);
        assert_eq!(ip.header().destination_addr().octets(), REMOTE);
        let Some(TransportSlice::Tcp(t)) = &p.transport else {
            panic!("not TCP")
        };
        let mut s = Seg {
            at_us: at,
            src_port: t.source_port(),
            dst_port: t.destination_port(),
            seq: t.sequence_number(),
            ack: t.acknowledgment_number(),
            syn: t.syn(),
            ack_flag: t.ack(),
            fin: t.fin(),
            rst: t.rst(),
            window: t.window_size(),
            mss: None,
            ts: None,
            sack_ok: false,
            wscale: None,
            raw_options: t.options().to_vec(),
            payload: t.payload().to_vec(),
        };
        // Kinds etherparse does not know (Fast Open's) end its iteration.
        for o in t.options_iterator().map_while(Result::ok) {
            match o {
                TcpOptionElement::MaximumSegmentSize(m) => s.mss = Some(m),
                TcpOptionElement::Timestamp(v, e) => s.ts = Some((v, e)),
                TcpOptionElement::SelectiveAcknowledgementPermitted => s.sack_ok = true,
                TcpOptionElement::WindowScale(w) => s.wscale = Some(w),
                _ => {}
            }
        }
        Some(s)
    }

    fn read(&self, fd: c_int, n: usize) -> Result<Vec<u8>, c_int> {
        let mut buf = vec![0u8; n];
        let r = unsafe { (self.ifc.read.unwrap())(self.ud(), fd, buf.as_mut_ptr().cast(), n) };
        if r < 0 {
            return Err(errno());
        }
        buf.truncate(r as usize);
        Ok(buf)
    }

    fn write(&self, fd: c_int, data: &[u8]) -> isize {
        unsafe { (self.ifc.write.unwrap())(self.ud(), fd, data.as_ptr().cast(), data.len()) }
    }

    fn close(&self, fd: c_int) -> c_int {
        unsafe { (self.ifc.close.unwrap())(self.ud(), fd) }
    }

    fn poll(&self, fd: c_int, events: i16, timeout: c_int) -> (c_int, i16) {
        let mut p = pollfd {
            fd,
            events,
            revents: 0,
        };
        let r = unsafe { (self.ifc.poll.unwrap())(self.ud(), &mut p, 1, timeout) };
        (r, p.revents)
    }

    fn sockopt(&self, fd: c_int, level: c_int, name: c_int) -> c_int {
        let mut v: c_int = -1;
        let mut len: socklen_t = 4;
        let r = unsafe {
            (self.ifc.getsockopt.unwrap())(
                self.ud(),
                fd,
                level,
                name,
                (&mut v as *mut c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((r, len), (0, 4));
        v
    }
}

impl Drop for Pd {
    fn drop(&mut self) {
        unsafe { (self.ifc.free.unwrap())(self.ud()) };
    }
}

/// Runs a blocking call in its own thread and, as packetdrill does,
/// returns once that thread sleeps in the call (its state in /proc is S).
fn in_thread<T: Send + 'static>(
    ifc: Ifc,
    f: impl FnOnce(&PacketdrillInterface) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let ifc = ifc;
        tx.send(unsafe { libc::gettid() }).unwrap();
        // SAFETY: the test's Pd outlives the thread (joined before drop).
        f(unsafe { &*ifc.0 })
    });
    let tid = rx.recv().unwrap();
    let stat = format!("/proc/self/task/{tid}/stat");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline && !h.is_finished() {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        // The state follows the command name in parentheses.
        if text
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('S'))
        {
            break;
        }
        std::thread::yield_now();
    }
    h
}

/// The remote's SYN with Linux's options, at sequence 0.
fn syn(port: u16) -> impl FnOnce(Ip) -> Tcp {
    move |b| {
        b.tcp(port, 8080, 0, 65535)
            .syn()
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1000),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(100, 0),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap()
    }
}

/// A segment from the remote with ACK set (no options).
fn seg(port: u16, seq: u32, ack: u32, f: fn(Tcp) -> Tcp) -> impl FnOnce(Ip) -> Tcp {
    move |b| f(b.tcp(port, 8080, seq, 1000).ack(ack))
}

fn same(s: Tcp) -> Tcp {
    s
}

/// Handshake on a listener: SYN in, SYN-ACK out, ACK in. Returns our ISS.
fn handshake_in(pd: &Pd, port: u16, ts: bool) -> u32 {
    pd.inject(syn(port), &[]);
    let sa = pd.sniff().expect("a SYN-ACK");
    assert!(sa.syn && sa.ack_flag && !sa.fin && !sa.rst, "{sa:?}");
    assert_eq!((sa.ack, sa.dst_port, sa.src_port), (1, port, 8080));
    assert_eq!(sa.mss, Some(1460));
    assert_eq!(sa.ts.is_some(), ts);
    if ts {
        assert_eq!(sa.ts.unwrap().1, 100, "the SYN's TSval echoed");
    }
    pd.inject(
        move |b| {
            let b = b.tcp(port, 8080, 1, 1000).ack(sa.seq.wrapping_add(1));
            if ts {
                b.options(&[
                    TcpOptionElement::Noop,
                    TcpOptionElement::Noop,
                    TcpOptionElement::Timestamp(101, sa.ts.unwrap().0),
                ])
                .unwrap()
            } else {
                b
            }
        },
        &[],
    );
    sa.seq
}

#[test]
fn passive_open_data_both_ways_and_close() {
    let pd = Pd::new("");
    let t0 = pd.now();
    let lfd = pd.listen_on(8080, 1);
    // packetdrill maps a script's descriptor numbers to the live ones:
    // ours are real descriptors of this process (eventfds).
    assert!(lfd >= 3, "a real descriptor number: {lfd}");
    let iss = handshake_in(&pd, 50_000, true);

    let mut addr: sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = SIN_LEN;
    let fd = unsafe {
        (pd.ifc.accept.unwrap())(
            pd.ud(),
            lfd,
            (&mut addr as *mut sockaddr_in).cast::<sockaddr>(),
            &mut len,
        )
    };
    assert!(fd >= 0 && fd != lfd, "a new descriptor: {fd}");
    assert_eq!(
        (
            u16::from_be(addr.sin_port),
            u32::from_be(addr.sin_addr.s_addr)
        ),
        (50_000, u32::from(Ipv4Addr::from(REMOTE)))
    );

    // 100 ms later (packetdrill sleeps, then spins on the clock), data in:
    // the connection's first, acknowledged at once (quick-ACK mode, as
    // Linux), on the virtual clock.
    pd.wait_until(pd.now() + 100_000);
    let before = pd.now();
    pd.inject(seg(50_000, 1, iss + 1, |s| s.psh()), b"hello");
    let ack = pd.sniff().expect("an ACK of the data");
    assert_eq!((ack.ack, ack.payload.len()), (6, 0));
    let delay = ack.at_us - before;
    assert!(delay < 1_000, "quick ACK after {delay} us");
    let mut n: c_int = -1;
    assert_eq!(
        unsafe { (pd.ifc.ioctl.unwrap())(pd.ud(), fd, libc::FIONREAD, &mut n as *mut c_int) },
        0
    );
    assert_eq!(n, 5, "FIONREAD through the variadic shim");
    assert_eq!(pd.read(fd, 100).unwrap(), b"hello");

    // Data out, acknowledged.
    assert_eq!(pd.write(fd, b"world!"), 6);
    let d = pd.sniff().expect("our data");
    assert_eq!(
        (d.seq, d.ack, d.payload.as_slice()),
        (iss + 1, 6, &b"world!"[..])
    );
    pd.inject(seg(50_000, 6, iss + 7, same), &[]);

    // The peer closes: ACK of its FIN, EOF on read; we close: our FIN.
    pd.inject(seg(50_000, 6, iss + 7, |s| s.fin()), &[]);
    let a = pd.sniff().expect("ACK of the FIN");
    assert_eq!((a.ack, a.fin), (7, false));
    assert_eq!(pd.read(fd, 100).unwrap(), b"");
    assert_eq!(pd.close(fd), 0);
    let fin = pd.sniff().expect("our FIN");
    assert!(fin.fin && fin.ack_flag);
    assert_eq!((fin.seq, fin.ack), (iss + 7, 7));
    pd.inject(seg(50_000, 7, iss + 8, same), &[]);
    assert_eq!(pd.close(fd), -1);
    assert_eq!(errno(), libc::EBADF);
    assert!(
        pd.now() - t0 < 1_000_000,
        "the script took virtual time only where it waited"
    );
}

#[test]
fn active_open_retransmits_the_syn_after_the_virtual_rto_then_a_reset_ends_it() {
    let pd = Pd::new("initial_rto_ms=1000");
    let fd = pd.socket();
    let ifc = pd.ifc();
    let connect = in_thread(ifc, move |i| {
        let sin = sockaddr(REMOTE, 8080);
        let r = unsafe {
            (i.connect.unwrap())(i.userdata, fd, (&sin as *const sockaddr_in).cast(), SIN_LEN)
        };
        // errno means something only after a failure (a futex wait inside
        // may leave EAGAIN behind a success).
        (r, if r < 0 { errno() } else { 0 })
    });
    let first = pd.sniff().expect("a SYN");
    assert!(first.syn && !first.ack_flag);
    assert_eq!(
        (
            first.dst_port,
            first.mss,
            first.sack_ok,
            first.wscale.is_some()
        ),
        (8080, Some(1460), true, true)
    );
    // Unanswered: the same SYN again one (virtual) second later.
    let again = pd.sniff().expect("the SYN again");
    assert!(again.syn && again.seq == first.seq);
    let rto = again.at_us - first.at_us;
    assert!(
        (1_000_000..=1_001_000).contains(&rto),
        "retransmitted after {rto} us"
    );

    let port = first.src_port;
    pd.inject(
        move |b| {
            b.tcp(8080, port, 5_000, 65535)
                .syn()
                .ack(first.seq.wrapping_add(1))
                .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
                .unwrap()
        },
        &[],
    );
    let ack = pd.sniff().expect("the handshake's ACK");
    assert!(ack.ack_flag && !ack.syn);
    assert_eq!(
        (ack.seq, ack.ack, ack.ts, ack.wscale),
        (first.seq + 1, 5_001, None, None),
        "options the peer did not offer are off"
    );
    assert_eq!(connect.join().unwrap(), (0, 0));

    // A reset: the next read says so.
    pd.inject(move |b| b.tcp(8080, port, 5_001, 0).rst(), &[]);
    assert_eq!(pd.read(fd, 10), Err(libc::ECONNRESET));
    assert_eq!(pd.write(fd, b"x"), -1);
    assert_eq!(pd.close(fd), 0);
    assert!(pd.sniff().is_none(), "nothing more to send, no timer left");
}

#[test]
fn listen_backlog_blocking_and_nonblocking_accept() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 1);
    // A blocking accept waits in its own thread until a handshake completes.
    let waiter = in_thread(pd.ifc(), move |i| unsafe {
        (i.accept.unwrap())(i.userdata, lfd, std::ptr::null_mut(), std::ptr::null_mut())
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(
        !waiter.is_finished(),
        "accept blocks with nothing to accept"
    );
    handshake_in(&pd, 40_001, true);
    let a = waiter.join().unwrap();
    // (Numbers are the process's: tests running alongside free and reuse
    // lower ones, so the new one need not be above the listener's.)
    assert!(
        a >= 0 && a != lfd,
        "a new descriptor: {a} (errno {})",
        errno()
    );

    // Backlog 1 holds two established connections (as Linux: backlog + 1).
    handshake_in(&pd, 40_002, true);
    handshake_in(&pd, 40_003, true);
    let (r, ev) = pd.poll(lfd, libc::POLLIN, 0);
    assert_eq!((r, ev & libc::POLLIN), (1, libc::POLLIN));
    let flags = unsafe { (pd.ifc.fcntl.unwrap())(pd.ud(), lfd, libc::F_GETFL) };
    assert_eq!(flags & libc::O_NONBLOCK, 0);
    assert_eq!(
        unsafe { (pd.ifc.fcntl.unwrap())(pd.ud(), lfd, libc::F_SETFL, flags | libc::O_NONBLOCK) },
        0
    );
    let accept = || unsafe {
        (pd.ifc.accept.unwrap())(pd.ud(), lfd, std::ptr::null_mut(), std::ptr::null_mut())
    };
    let (b, c) = (accept(), accept());
    assert!(
        b >= 0 && c >= 0 && b != c && b != a && c != a,
        "{a} {b} {c}"
    );
    assert_eq!((accept(), errno()), (-1, libc::EAGAIN));
    for fd in [a, b, c] {
        assert_eq!(pd.sockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR), 0);
    }
}

#[test]
fn nonblocking_connect_completes_through_poll_and_a_refusal_shows_in_so_error() {
    let pd = Pd::new("sack=0,ts=0,ws=0");
    let fd = pd.socket();
    let fl = unsafe { (pd.ifc.fcntl.unwrap())(pd.ud(), fd, libc::F_GETFL) };
    assert_eq!(
        unsafe { (pd.ifc.fcntl.unwrap())(pd.ud(), fd, libc::F_SETFL, fl | libc::O_NONBLOCK) },
        0
    );
    let sin = sockaddr(REMOTE, 8080);
    let r = unsafe {
        (pd.ifc.connect.unwrap())(pd.ud(), fd, (&sin as *const sockaddr_in).cast(), SIN_LEN)
    };
    assert_eq!((r, errno()), (-1, libc::EINPROGRESS));
    assert_eq!(
        pd.poll(fd, libc::POLLOUT, 0),
        (0, 0),
        "not writable while connecting"
    );
    let s = pd.sniff().expect("a SYN");
    assert_eq!(
        (s.mss, s.sack_ok, s.ts, s.wscale),
        (Some(1460), false, None, None),
        "so_flags turned the options off"
    );
    // A blocking poll in its own thread, woken by the SYN-ACK.
    let poller = in_thread(pd.ifc(), move |i| {
        let mut p = pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let r = unsafe { (i.poll.unwrap())(i.userdata, &mut p, 1, -1) };
        (r, p.revents)
    });
    let port = s.src_port;
    pd.inject(
        move |b| b.tcp(8080, port, 9, 65535).syn().ack(s.seq.wrapping_add(1)),
        &[],
    );
    let (r, ev) = poller.join().unwrap();
    assert_eq!((r, ev & libc::POLLOUT), (1, libc::POLLOUT));
    assert_eq!(pd.sockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR), 0);
    let r = unsafe {
        (pd.ifc.connect.unwrap())(pd.ud(), fd, (&sin as *const sockaddr_in).cast(), SIN_LEN)
    };
    assert_eq!((r, errno()), (-1, libc::EISCONN));
    assert_eq!(
        pd.read(fd, 10),
        Err(libc::EAGAIN),
        "non-blocking read with nothing there"
    );

    // Refused: RST+ACK to the SYN, seen as POLLERR and ECONNREFUSED.
    let fd2 = unsafe {
        (pd.ifc.socket.unwrap())(
            pd.ud(),
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
            0,
        )
    };
    let sin2 = sockaddr(REMOTE, 8081);
    let r = unsafe {
        (pd.ifc.connect.unwrap())(pd.ud(), fd2, (&sin2 as *const sockaddr_in).cast(), SIN_LEN)
    };
    assert_eq!((r, errno()), (-1, libc::EINPROGRESS));
    let mut s2 = pd.sniff().expect("a SYN");
    while s2.dst_port != 8081 {
        s2 = pd.sniff().expect("the second SYN");
    }
    let p2 = s2.src_port;
    pd.inject(
        move |b| b.tcp(8081, p2, 0, 0).rst().ack(s2.seq.wrapping_add(1)),
        &[],
    );
    let (r, ev) = pd.poll(fd2, libc::POLLOUT, 0);
    assert_eq!((r, ev & libc::POLLERR), (1, libc::POLLERR));
    assert_eq!(
        ev & libc::POLLOUT,
        libc::POLLOUT,
        "shut both ways, as Linux's"
    );
    assert_eq!(
        pd.sockopt(fd2, libc::SOL_SOCKET, libc::SO_ERROR),
        libc::ECONNREFUSED
    );
    assert_eq!(
        pd.sockopt(fd2, libc::SOL_SOCKET, libc::SO_ERROR),
        0,
        "reported once"
    );
}

#[test]
fn options_and_unsupported_calls_follow_posix_conventions() {
    let pd = Pd::new("");
    let fd = pd.socket();
    let one: c_int = 1;
    let set = |level, name, v: &c_int| unsafe {
        (pd.ifc.setsockopt.unwrap())(pd.ud(), fd, level, name, (v as *const c_int).cast(), 4)
    };
    assert_eq!(set(libc::IPPROTO_TCP, libc::TCP_NODELAY, &one), 0);
    assert_eq!(pd.sockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
    assert_eq!(set(libc::SOL_SOCKET, libc::SO_RCVBUF, &16_384), 0);
    assert_eq!(pd.sockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF), 16_384);
    assert_eq!(set(libc::IPPROTO_TCP, libc::TCP_MAXSEG, &536), 0);
    assert_eq!(pd.sockopt(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG), 536);
    // As Linux: the socket's own value, 0 until set (then the sysctl's).
    assert_eq!(
        pd.sockopt(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
        0
    );
    assert_eq!(set(libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, &4000), 0);
    assert_eq!(
        pd.sockopt(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
        4000
    );
    assert_eq!(
        (set(libc::IPPROTO_IP, libc::IP_TOS, &one), errno()),
        (-1, libc::ENOPROTOOPT)
    );
    assert_eq!(
        (pd.read(fd, 1), pd.write(fd, b"x"), errno()),
        (Err(libc::ENOTCONN), -1, libc::EPIPE)
    );
    let i = &pd.ifc;
    let mut fds = [0; 2];
    assert_eq!(
        (
            unsafe { (i.pipe.unwrap())(pd.ud(), fds.as_mut_ptr()) },
            errno()
        ),
        (-1, libc::ENOSYS)
    );
    assert_eq!(
        (
            unsafe { (i.ioctl.unwrap())(pd.ud(), 99, libc::FIONREAD, &mut fds[0] as *mut c_int) },
            errno()
        ),
        (-1, libc::EBADF)
    );

    // TCP_MAXSEG set before connect is what the SYN offers.
    let sin = sockaddr(REMOTE, 9);
    let c = in_thread(pd.ifc(), move |i| unsafe {
        (i.connect.unwrap())(i.userdata, fd, (&sin as *const sockaddr_in).cast(), SIN_LEN)
    });
    let s = pd.sniff().expect("a SYN");
    assert_eq!(s.mss, Some(536));
    assert_eq!(s.window, 16_384, "SO_RCVBUF is the window the SYN offers");
    let port = s.src_port;
    pd.inject(
        move |b| b.tcp(9, port, 0, 0).rst().ack(s.seq.wrapping_add(1)),
        &[],
    );
    assert_eq!(c.join().unwrap(), -1);

    // Bad flags: said, and every socket call fails.
    let bad = Pd::new("sack=maybe");
    assert_eq!((bad.socket(), errno()), (-1, libc::EINVAL));
}

/// TCP_INFO in Linux's layout, through the table's getsockopt and through
/// the library's own `getsockopt` symbol: what packetdrill calls for a
/// script's `%{ assert tcpi_... }%` lines when the library is preloaded.
/// Other descriptors go to libc's getsockopt.
#[test]
fn tcp_info_answers_in_linux_layout_also_through_the_preloaded_getsockopt() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 1);
    handshake_in(&pd, 40_100, true);
    let fd = unsafe {
        (pd.ifc.accept.unwrap())(pd.ud(), lfd, std::ptr::null_mut(), std::ptr::null_mut())
    };
    assert!(fd >= 0, "accept: {}", errno());
    type GetSockOpt =
        unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
    let preloaded: Symbol<GetSockOpt> = unsafe { pd._lib.get(b"getsockopt") }.unwrap();
    let table = |fd, level, name, buf: &mut [u8], len: &mut socklen_t| unsafe {
        (pd.ifc.getsockopt.unwrap())(pd.ud(), fd, level, name, buf.as_mut_ptr().cast(), len)
    };
    for via_symbol in [false, true] {
        let mut b = [0xffu8; 300];
        let mut len: socklen_t = 300;
        let r = if via_symbol {
            unsafe {
                preloaded(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_INFO,
                    b.as_mut_ptr().cast(),
                    &mut len,
                )
            }
        } else {
            table(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut b, &mut len)
        };
        assert_eq!((r, len), (0, 280), "via the symbol: {via_symbol}");
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(b[0], 1, "tcpi_state TCP_ESTABLISHED");
        assert_eq!(b[5] & 1, 1, "TCPI_OPT_TIMESTAMPS");
        assert_eq!(
            u32_at(16),
            988,
            "tcpi_snd_mss: the peer's 1000 less the timestamps"
        );
        assert_eq!(u32_at(80), 10, "tcpi_snd_cwnd: the initial window");
        assert_eq!(u32_at(76), 0x7fff_ffff, "tcpi_snd_ssthresh: no loss yet");
    }
    // The listener reports LISTEN; a descriptor of nobody's goes to libc.
    let mut b = [0u8; 280];
    let mut len: socklen_t = 280;
    assert_eq!(
        table(lfd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut b, &mut len),
        0
    );
    assert_eq!(b[0], 10, "TCP_LISTEN");
    let mut v: c_int = 0;
    let mut len: socklen_t = 4;
    let r = unsafe {
        preloaded(
            0,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut v as *mut c_int).cast(),
            &mut len,
        )
    };
    assert_eq!((r, errno()), (-1, libc::ENOTSOCK), "stdin is no socket");
}

/// TCP_MAXSEG set after listen(2) applies to the SYN-ACKs sent from then
/// on, as in Linux; reading into a null buffer fails with EFAULT.
#[test]
fn a_listener_takes_options_set_after_listen_and_null_buffers_fault() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 1);
    let mss: c_int = 1100;
    let r = unsafe {
        (pd.ifc.setsockopt.unwrap())(
            pd.ud(),
            lfd,
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&mss as *const c_int).cast(),
            4,
        )
    };
    assert_eq!(r, 0);
    pd.inject(syn(40_200), &[]);
    let sa = pd.sniff().expect("a SYN-ACK");
    assert_eq!(sa.mss, Some(1100), "{sa:?}");
    let r = unsafe { (pd.ifc.read.unwrap())(pd.ud(), lfd, std::ptr::null_mut(), 10) };
    assert_eq!((r, errno()), (-1, libc::EFAULT));
}

/// TCP Fast Open with packetdrill's corpus key (the adapter's default):
/// a SYN carrying the cookie Linux computes for this client (its
/// TFO_COOKIE, 3021b9d889017eeb) delivers its data at once and the
/// connection is accepted before the handshake ends; a SYN with a wrong
/// cookie has its data left for later and is offered the right cookie.
#[test]
fn fast_open_takes_syn_data_with_a_valid_cookie_and_offers_one_otherwise() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 4);
    let cookie = [0x30, 0x21, 0xb9, 0xd8, 0x89, 0x01, 0x7e, 0xeb];
    let fo = |c: &[u8]| [&[254u8, 12, 0xf9, 0x89][..], c].concat();
    // Options: MSS 1460, then the experimental Fast Open option.
    let syn = |port: u16, c: [u8; 8]| {
        move |b: Ip| {
            let mut o = vec![2u8, 4, 0x05, 0xb4];
            o.extend(fo(&c));
            b.tcp(port, 8080, 0, 65535).syn().options_raw(&o).unwrap()
        }
    };
    pd.inject(syn(40_300, cookie), b"hello");
    let sa = pd.sniff().expect("a SYN-ACK");
    assert_eq!(sa.ack, 6, "the SYN's five bytes are acknowledged");
    let fd = unsafe {
        (pd.ifc.accept.unwrap())(pd.ud(), lfd, std::ptr::null_mut(), std::ptr::null_mut())
    };
    assert!(fd >= 0, "accepted before the handshake's ACK: {}", errno());
    assert_eq!(pd.read(fd, 100).unwrap(), b"hello");
    let mut info = [0u8; 280];
    let mut len: socklen_t = 280;
    let r = unsafe {
        (pd.ifc.getsockopt.unwrap())(
            pd.ud(),
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0);
    assert_eq!(info[0], 3, "TCP_SYN_RECV");
    assert_eq!(info[5] & 0x20, 0x20, "TCPI_OPT_SYN_DATA");

    let mut wrong = cookie;
    wrong[0] ^= 1;
    pd.inject(syn(40_301, wrong), b"hello");
    let sa = pd.sniff().expect("a SYN-ACK");
    assert_eq!(sa.ack, 1, "the data waits for the handshake");
    assert_eq!(
        sa.raw_options.windows(12).find(|w| w[0] == 254),
        Some(&fo(&cookie)[..])
    );
}

/// What recvmsg returned, its msg_flags, and the control message's level,
/// type and data, if one came.
type Received = (isize, c_int, Option<(c_int, c_int, Vec<u8>)>);

impl Pd {
    fn set_int(&self, fd: c_int, level: c_int, name: c_int, v: c_int) {
        let r = unsafe {
            (self.ifc.setsockopt.unwrap())(
                self.ud(),
                fd,
                level,
                name,
                (&v as *const c_int).cast(),
                4,
            )
        };
        assert_eq!(r, 0, "setsockopt({level}, {name}): errno {}", errno());
    }

    fn accept(&self, lfd: c_int) -> c_int {
        let fd = unsafe {
            (self.ifc.accept.unwrap())(self.ud(), lfd, std::ptr::null_mut(), std::ptr::null_mut())
        };
        assert!(fd >= 0, "accept: errno {}", errno());
        fd
    }

    /// recvmsg with room for one control message.
    fn recvmsg(&self, fd: c_int, buf: &mut [u8], flags: c_int) -> Received {
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = control.as_mut_ptr().cast();
        m.msg_controllen = std::mem::size_of_val(&control);
        let r = unsafe { (self.ifc.recvmsg.unwrap())(self.ud(), fd, &mut m, flags) };
        let cmsg = unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            (r >= 0 && !c.is_null()).then(|| {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = std::slice::from_raw_parts(libc::CMSG_DATA(c), len).to_vec();
                ((*c).cmsg_level, (*c).cmsg_type, data)
            })
        };
        (r, m.msg_flags, cmsg)
    }
}

/// MSG_ZEROCOPY on a socket with SO_ZEROCOPY (set on the listener, kept
/// by the accepted socket): each send's completion reaches the error
/// queue once the peer has acknowledged all of it, as a range of ids
/// (consecutive completions not yet read join one range), with POLLERR
/// while one waits; recvmsg(MSG_ERRQUEUE) never blocks.
#[test]
fn zero_copy_sends_complete_on_the_error_queue_once_acknowledged() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 1);
    pd.set_int(lfd, libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1);
    let iss = handshake_in(&pd, 40_400, true);
    let fd = pd.accept(lfd);
    assert_eq!(pd.sockopt(fd, libc::SOL_SOCKET, libc::SO_ZEROCOPY), 1);
    let send = |n: usize| unsafe {
        let data = vec![5u8; n];
        (pd.ifc.send.unwrap())(pd.ud(), fd, data.as_ptr().cast(), n, libc::MSG_ZEROCOPY)
    };
    let errqueue = || pd.recvmsg(fd, &mut [], libc::MSG_ERRQUEUE);
    let completion = |lo: u32, hi: u32| {
        let (r, flags, cmsg) = errqueue();
        assert_eq!((r, flags), (0, libc::MSG_ERRQUEUE));
        let (level, ty, data) = cmsg.expect("a control message");
        assert_eq!(
            (level, ty, data.len()),
            (libc::SOL_IP, libc::IP_RECVERR, 32)
        );
        let word = |i: usize| u32::from_ne_bytes(data[i..i + 4].try_into().unwrap());
        // ee_errno, then origin 5 (zero-copy), type 0, code 1 (copied).
        assert_eq!((word(0), &data[4..8]), (0, &[5u8, 0, 1, 0][..]));
        assert_eq!((word(8), word(12)), (lo, hi));
    };

    assert_eq!(send(1976), 1976);
    for _ in 0..2 {
        // MSS 1000 less 12 bytes of timestamps.
        assert_eq!(pd.sniff().expect("data").payload.len(), 988);
    }
    assert_eq!(
        (errqueue().0, errno()),
        (-1, libc::EAGAIN),
        "nothing acknowledged yet"
    );
    assert_eq!(pd.poll(fd, libc::POLLOUT, 0).1 & libc::POLLERR, 0);
    pd.inject(seg(40_400, 1, iss + 1 + 988, same), &[]);
    assert_eq!(
        (errqueue().0, errno()),
        (-1, libc::EAGAIN),
        "half acknowledged"
    );
    pd.inject(seg(40_400, 1, iss + 1 + 1976, same), &[]);
    assert_eq!(
        pd.poll(fd, libc::POLLOUT, 0).1 & libc::POLLERR,
        libc::POLLERR
    );
    completion(0, 0);
    assert_eq!(pd.poll(fd, libc::POLLOUT, 0).1 & libc::POLLERR, 0);

    let mut acked = 1976;
    for _ in 0..2 {
        assert_eq!(send(10), 10);
        assert_eq!(pd.sniff().expect("data").payload.len(), 10);
        acked += 10;
        pd.inject(seg(40_400, 1, iss + 1 + acked, same), &[]);
    }
    completion(1, 2);
    assert_eq!((errqueue().0, errno()), (-1, libc::EAGAIN));
}

/// epoll: an edge-triggered item reports the socket's whole mask once per
/// arrival, a level-triggered one on every wait; with TCP_INQ each
/// recvmsg says how many bytes are left, 1 once only the FIN is. The data
/// comes as one 5,000-byte packet, larger than the MTU, as Linux's TCP
/// sees them behind GRO.
#[test]
fn epoll_edges_and_tcp_inq_hints_follow_linux() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 1);
    let iss = handshake_in(&pd, 40_500, true);
    let fd = pd.accept(lfd);
    pd.set_int(fd, libc::IPPROTO_TCP, 36, 1); // TCP_INQ
    let ep = unsafe { (pd.ifc.epoll_create.unwrap())(pd.ud(), 1) };
    assert!(ep >= 0, "epoll_create: errno {}", errno());
    let (inn, out, et) = (
        libc::EPOLLIN as u32,
        libc::EPOLLOUT as u32,
        libc::EPOLLET as u32,
    );
    let add = |fd: c_int, events: u32, data: u64| {
        let mut e = libc::epoll_event { events, u64: data };
        let r = unsafe {
            (pd.ifc.epoll_ctl.unwrap())(
                pd.ud(),
                ep,
                libc::EPOLL_CTL_ADD,
                fd,
                (&mut e as *mut libc::epoll_event).cast(),
            )
        };
        assert_eq!(r, 0, "epoll_ctl: errno {}", errno());
    };
    let wait = || {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let n = unsafe { (pd.ifc.epoll_wait.unwrap())(pd.ud(), ep, evs.as_mut_ptr().cast(), 4, 0) };
        assert!(n >= 0, "epoll_wait: errno {}", errno());
        evs[..n as usize]
            .iter()
            .map(|e| (e.events, e.u64))
            .collect::<Vec<_>>()
    };
    add(fd, inn | out | et, 1);
    assert_eq!(wait(), [(out, 1)]);
    assert_eq!(wait(), []);
    add(lfd, inn, 2);
    assert_eq!(wait(), [], "a listener with nothing to accept");

    pd.inject(seg(40_500, 1, iss + 1, |s| s.psh()), &[7u8; 5000]);
    assert_eq!(pd.sniff().expect("an ACK").ack, 5001);
    assert_eq!(wait(), [(inn | out, 1)]);
    assert_eq!(wait(), [], "once per arrival");

    let inq = |got: Received| {
        let (_, _, data) = got
            .2
            .filter(|c| (c.0, c.1) == (libc::SOL_TCP, 36))
            .expect("TCP_CM_INQ");
        c_int::from_ne_bytes(data[..4].try_into().unwrap())
    };
    let mut buf = [0u8; 2000];
    assert_eq!(inq(pd.recvmsg(fd, &mut buf, 0)), 3000);
    assert_eq!(wait(), [], "reading is no arrival");
    pd.inject(seg(40_500, 5001, iss + 1, |s| s.fin()), &[]);
    assert_eq!(wait(), [(inn | out, 1)]);
    let mut buf = [0u8; 4000];
    assert_eq!(inq(pd.recvmsg(fd, &mut buf, 0)), 1, "only the FIN is left");
}

/// A reset is reported once, to the first call that meets it (Linux
/// clears `sk_err` as it reports it): here a write; the data that came
/// before it is still read, then EOF, and poll no longer says POLLERR.
#[test]
fn a_reset_is_reported_once_then_the_socket_reads_eof() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 1);
    let iss = handshake_in(&pd, 40_600, true);
    let fd = pd.accept(lfd);
    pd.inject(seg(40_600, 1, iss + 1, |s| s.psh()), b"0123456789");
    assert_eq!(pd.sniff().expect("an ACK").ack, 11);
    pd.inject(seg(40_600, 11, iss + 1, |s| s.rst()), &[]);
    assert_eq!(
        pd.poll(fd, libc::POLLIN, 0).1 & libc::POLLERR,
        libc::POLLERR
    );
    assert_eq!((pd.write(fd, b"x"), errno()), (-1, libc::ECONNRESET));
    assert_eq!(pd.poll(fd, libc::POLLIN, 0).1 & libc::POLLERR, 0);
    assert_eq!(pd.read(fd, 100).unwrap(), b"0123456789");
    assert_eq!(pd.read(fd, 100), Ok(Vec::new()));
    assert_eq!((pd.write(fd, b"x"), errno()), (-1, libc::EPIPE));
}

impl Pd {
    fn connect_to(&self, fd: c_int, port: u16) -> Result<(), c_int> {
        let sin = sockaddr(REMOTE, port);
        let r = unsafe {
            (self.ifc.connect.unwrap())(self.ud(), fd, (&sin as *const sockaddr_in).cast(), SIN_LEN)
        };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    fn nonblocking_socket(&self) -> c_int {
        unsafe {
            (self.ifc.socket.unwrap())(
                self.ud(),
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                0,
            )
        }
    }
}

#[test]
fn fast_open_connect_defers_the_syn_to_the_first_write_once_a_cookie_is_cached() {
    let pd = Pd::new("");
    // No cookie yet: connect asks for one at once (EINPROGRESS).
    let fd = pd.nonblocking_socket();
    pd.set_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, 1);
    assert_eq!(pd.connect_to(fd, 8080), Err(libc::EINPROGRESS));
    let s = pd.sniff().expect("a SYN");
    assert!(s.syn && s.payload.is_empty());
    assert!(
        s.raw_options.windows(2).any(|w| w == [34, 2]),
        "a cookie request: {:?}",
        s.raw_options
    );
    let port = s.src_port;
    let iss = s.seq;
    pd.inject(
        move |b| {
            // MSS 1460, Fast Open with the cookie ab cd 12 34.
            let o = [2u8, 4, 0x05, 0xb4, 34, 6, 0xab, 0xcd, 0x12, 0x34, 1, 1];
            b.tcp(8080, port, 0, 65535)
                .syn()
                .ack(iss.wrapping_add(1))
                .options_raw(&o)
                .unwrap()
        },
        &[],
    );
    assert!(pd.sniff().expect("the handshake's ACK").ack_flag);
    assert_eq!(pd.close(fd), 0);
    while pd.sniff().is_some_and(|s| !s.fin) {}

    // A cookie cached: connect returns at once and sends nothing ...
    let fd = pd.nonblocking_socket();
    pd.set_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, 1);
    assert_eq!(pd.connect_to(fd, 8081), Ok(()));
    assert_eq!(pd.connect_to(fd, 8081), Err(libc::EISCONN));
    // Writable (the write sends the SYN), nothing to read yet (Linux's
    // SYN-SENT with its connect deferred).
    assert_eq!(
        pd.poll(fd, libc::POLLIN | libc::POLLOUT, 0),
        (1, libc::POLLOUT)
    );
    assert_eq!(pd.read(fd, 10), Err(libc::EAGAIN));
    // ... the first write sends the SYN with the cookie and the data ...
    assert_eq!(pd.write(fd, &[7u8; 100]), 100);
    let s = pd.sniff().expect("a SYN with data");
    assert!(s.syn, "{s:?}");
    assert_eq!(s.payload, vec![7u8; 100]);
    assert!(s
        .raw_options
        .windows(6)
        .any(|w| w == [34, 6, 0xab, 0xcd, 0x12, 0x34]));
    // ... and no more writes until the handshake ends (Linux).
    assert_eq!(pd.write(fd, b"more"), -1);
    assert_eq!(errno(), libc::EAGAIN);

    // A script's `ip tcp_metrics flush` (run by packetdrill with system(3),
    // preloaded) empties the cookie cache: the next connect asks again.
    type System = unsafe extern "C" fn(*const c_char) -> c_int;
    let system: Symbol<System> = unsafe { pd._lib.get(b"system") }.unwrap();
    let status = unsafe { system(c": ip tcp_metrics flush all".as_ptr()) };
    assert_eq!(status, 0, "the command itself runs (here a shell no-op)");
    let fd = pd.nonblocking_socket();
    pd.set_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, 1);
    assert_eq!(pd.connect_to(fd, 8082), Err(libc::EINPROGRESS));
}

#[test]
fn a_preloaded_sendfile_sends_a_files_bytes_through_the_stack() {
    // packetdrill runs `sendfile` with the real call on our descriptor;
    // preloaded, the adapter answers for its sockets.
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 4);
    handshake_in(&pd, 40_400, true);
    let fd = pd.accept(lfd);
    let path = std::env::temp_dir().join(format!("xdptcp-sendfile-{}", std::process::id()));
    std::fs::write(&path, b"0123456789").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    type SendFile = unsafe extern "C" fn(c_int, c_int, *mut libc::off_t, usize) -> isize;
    let sendfile: Symbol<SendFile> = unsafe { pd._lib.get(b"sendfile") }.unwrap();
    let mut offset: libc::off_t = 2;
    use std::os::fd::AsRawFd;
    let n = unsafe { sendfile(fd, file.as_raw_fd(), &mut offset, 5) };
    std::fs::remove_file(&path).unwrap();
    assert_eq!((n, offset), (5, 7), "errno {}", errno());
    let s = pd.sniff().expect("the file's bytes");
    assert_eq!(s.payload, b"23456");
}

#[test]
fn keepalive_options_start_probes_on_a_live_connection() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 4);
    let iss = handshake_in(&pd, 40_500, true);
    let fd = pd.accept(lfd);
    let start = pd.now();
    pd.set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    pd.set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 5);
    pd.set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 2);
    assert_eq!(pd.sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 5);
    assert_eq!(
        pd.sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
        9,
        "Linux's default"
    );
    let probe = pd.sniff().expect("a keepalive probe");
    assert_eq!(
        (probe.seq, probe.payload.len()),
        (iss, 0),
        "one below SND.UNA"
    );
    assert!(
        (probe.at_us - start - 5_000_000).abs() < 10_000,
        "{}",
        probe.at_us - start
    );
    let again = pd.sniff().expect("the next probe");
    assert!((again.at_us - probe.at_us - 2_000_000).abs() < 10_000);
}

/// TCP_NOTSENT_LOWAT as Linux applies it to a write: the mark is tested
/// only where a new skb is needed, each skb filled is sent at once, and
/// its unsent rest is filled up again (`write_queue.rs`). poll says
/// writable once unsent bytes are below half the mark.
#[test]
fn a_write_under_notsent_lowat_takes_what_linux_would() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 4);
    handshake_in(&pd, 40_600, true);
    let fd = pd.accept(lfd);
    pd.set_int(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, 4000);
    let fl = unsafe { (pd.ifc.fcntl.unwrap())(pd.ud(), fd, libc::F_GETFL, 0) };
    assert_eq!(
        unsafe { (pd.ifc.fcntl.unwrap())(pd.ud(), fd, libc::F_SETFL, fl | libc::O_NONBLOCK) },
        0
    );
    // The peer offered 1000 << 7 = 128,000 bytes: skbs of half that in
    // whole segments of 988 (MSS 1000 less the timestamps), 64 of them.
    // The first fills and 10 segments (the initial window) go; its rest
    // takes 9,880 more; then 63,232 unsent bytes stop the write.
    let skb = 64 * 988;
    assert_eq!(pd.write(fd, &vec![1u8; 200_000]), (skb + 10 * 988) as isize);
    assert_eq!(pd.poll(fd, libc::POLLOUT, 0), (0, 0), "not below the mark");
    assert_eq!(pd.write(fd, b"x"), -1);
    assert_eq!(errno(), libc::EAGAIN);
}

/// packetdrill files what a blocking call returned (an accept's new
/// socket, which a later `%{ }%` line reads TCP_INFO from) under a lock
/// its main thread holds except while it sleeps. A call that returned gets
/// real time in that sleep to file it, as a kernel's caller would within
/// microseconds of the packet that woke it; the virtual clock's sleep
/// used to return at once, and the result was filed only after the next
/// event had already looked for it.
#[test]
fn a_returned_blocking_call_is_filed_before_the_next_event() {
    let pd = Pd::new("");
    let lfd = pd.listen_on(8080, 1);
    let filed = std::sync::Arc::new(std::sync::Mutex::new(None::<c_int>));
    let in_call = filed.clone();
    let waiter = in_thread(pd.ifc(), move |i| {
        let fd = unsafe {
            (i.accept.unwrap())(i.userdata, lfd, std::ptr::null_mut(), std::ptr::null_mut())
        };
        *in_call.lock().unwrap() = Some(fd);
    });
    let held = filed.lock().unwrap();
    handshake_in(&pd, 40_700, true);
    // The next event's wait: clock readings (the accept returns), then a
    // sleep with the lock released.
    pd.now();
    drop(held);
    unsafe { (pd.ifc.usleep.unwrap())(pd.ud(), 5_000) };
    let got = *filed.lock().unwrap();
    assert!(got.is_some_and(|fd| fd >= 0), "filed: {got:?}");
    waiter.join().unwrap();
}

/// A script over IPv6 (`--ip_version=ipv6`, run_all.py's addresses): an
/// AF_INET6 listener on [::]:8080, a SYN from fd3d:fa7b:d17d::1 to
/// fd3d:a0b:17d6::1 through the gateway, answered with an IPv6 SYN-ACK
/// (the gateway's Neighbor Discovery never reaches packetdrill), accept
/// naming the peer in a sockaddr_in6, data acknowledged.
#[test]
fn an_ipv6_script_opens_accepts_and_carries_data() {
    let local: std::net::Ipv6Addr = "fd3d:a0b:17d6::1".parse().unwrap();
    let remote: std::net::Ipv6Addr = "fd3d:fa7b:d17d::1".parse().unwrap();
    let pd = Pd::new("mtu=1520");
    let i = &pd.ifc;
    let fd = unsafe { (i.socket.unwrap())(pd.ud(), libc::AF_INET6, libc::SOCK_STREAM, 0) };
    let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_port = 8080u16.to_be();
    let len6 = std::mem::size_of::<libc::sockaddr_in6>() as socklen_t;
    unsafe {
        assert_eq!(
            (i.bind.unwrap())(
                pd.ud(),
                fd,
                (&sin6 as *const libc::sockaddr_in6).cast(),
                len6
            ),
            0
        );
        assert_eq!((i.listen.unwrap())(pd.ud(), fd, 4), 0);
    }
    let send = |build: &dyn Fn(etherparse::PacketBuilderStep<etherparse::IpHeaders>) -> Tcp,
                payload: &[u8]| {
        let b = build(PacketBuilder::ipv6(remote.octets(), local.octets(), 64));
        let mut buf = Vec::new();
        b.write(&mut buf, payload).unwrap();
        assert_eq!(
            unsafe { (i.netdev_send.unwrap())(pd.ud(), buf.as_ptr().cast(), buf.len()) },
            0
        );
    };
    let sniff = || {
        let mut buf = vec![0u8; 65_536];
        let (mut count, mut at) = (buf.len(), 0 as libc::c_longlong);
        let r = unsafe {
            (i.netdev_receive.unwrap())(pd.ud(), buf.as_mut_ptr().cast(), &mut count, &mut at)
        };
        assert_eq!((r, count > 0), (0, true));
        buf.truncate(count);
        buf
    };
    send(
        &|b| {
            b.tcp(40_000, 8080, 0, 65535)
                .syn()
                .options(&[TcpOptionElement::MaximumSegmentSize(1440)])
                .unwrap()
        },
        &[],
    );
    let synack = sniff();
    let p = SlicedPacket::from_ip(&synack).expect("well formed");
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6: {synack:?}")
    };
    assert_eq!(
        (ip.header().source_addr(), ip.header().destination_addr()),
        (local, remote)
    );
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP")
    };
    assert!(t.syn() && t.ack());
    let mss = t.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    });
    assert_eq!(mss, Some(1460), "MTU 1520 less 60 bytes of headers");
    let iss = t.sequence_number();
    send(&|b| b.tcp(40_000, 8080, 1, 1000).ack(iss + 1), &[]);
    let mut peer: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut len = len6;
    let c = unsafe {
        (i.accept.unwrap())(
            pd.ud(),
            fd,
            (&mut peer as *mut libc::sockaddr_in6).cast(),
            &mut len,
        )
    };
    assert!(c >= 0);
    assert_eq!((len, c_int::from(peer.sin6_family)), (len6, libc::AF_INET6));
    assert_eq!(
        (
            std::net::Ipv6Addr::from(peer.sin6_addr.s6_addr),
            u16::from_be(peer.sin6_port)
        ),
        (remote, 40_000)
    );
    send(&|b| b.tcp(40_000, 8080, 1, 1000).ack(iss + 1).psh(), b"six");
    assert_eq!(pd.read(c, 10).unwrap(), b"six");
}

/// The preloaded calls look through every live adapter of the process
/// (tests run several at once); one freed meanwhile by another thread
/// must not be touched. Here adapters come and go in one thread while
/// another asks the preloaded getsockopt about a descriptor none of them
/// owns, for a bounded time; a freed adapter's lock taken by mistake hung
/// (seen in CI: a sendfile test waited on a freed mutex) or worse.
#[test]
fn preloaded_calls_never_touch_an_adapter_being_freed() {
    let pd = Pd::new("");
    type GetSockOpt =
        unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
    let getsockopt: Symbol<GetSockOpt> = unsafe { pd._lib.get(b"getsockopt") }.unwrap();
    let getsockopt = *getsockopt;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    use std::os::fd::AsRawFd;
    let fd = udp.as_raw_fd();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2_000 {
                drop(Pd::new(""));
                // Whatever memory the adapter had is handed out again at
                // once, written all over: a stale look at it then sees
                // garbage (a lock that seems held), not its old bytes.
                let junk: Vec<Vec<u8>> = (1..=128).map(|k| vec![0xff; k * 64]).collect();
                std::hint::black_box(&junk);
                n += 1;
            }
            n
        })
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let asker = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < Duration::from_secs(2) {
            let mut v: c_int = 0;
            let mut len = std::mem::size_of::<c_int>() as socklen_t;
            let r = unsafe {
                getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_TYPE,
                    (&mut v as *mut c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(
                (r, v),
                (0, libc::SOCK_DGRAM),
                "libc's answer for a socket of nobody's"
            );
            calls += 1;
        }
        tx.send(calls).unwrap();
    });
    let calls = rx.recv_timeout(Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = calls.expect("the preloaded getsockopt hung while adapters came and went");
    asker.join().unwrap();
    let made = churn.join().unwrap();
    assert!(calls > 0 && made > 0, "{calls} calls, {made} adapters");
    drop(udp);
}
