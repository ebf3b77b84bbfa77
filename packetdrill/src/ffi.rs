//! The C side: packetdrill's `struct packetdrill_interface`, field for
//! field, and the callbacks behind it.
//!
//! packetdrill runs a blocking system call in a thread of its own while
//! its main thread goes on injecting packets and reading the clock, so the
//! host sits behind a mutex, and a call that would block waits on a
//! condition variable that every other call signals.

use crate::host::{Host, Sniff, Step, TCP_INQ};
use libc::{
    c_int, c_long, c_longlong, c_uint, c_ulong, c_void, iovec, msghdr, nfds_t, pollfd, size_t,
    sockaddr, sockaddr_in, socklen_t, ssize_t, timeval, useconds_t,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;
use xdptcp::time::Instant;

/// The virtual clock's 0 as wall-clock time (2023-11-14): `gettimeofday`
/// answers with dates, as scripts and their logs expect.
const EPOCH_USECS: u64 = 1_700_000_000_000_000;

/// `struct packetdrill_interface` from packetdrill's `packetdrill.h`, in
/// its order. Every entry takes the `userdata` pointer first.
#[repr(C)]
pub struct PacketdrillInterface {
    pub userdata: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
    pub socket: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int) -> c_int>,
    pub bind: Option<unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub listen: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub accept:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut sockaddr, *mut socklen_t) -> c_int>,
    pub connect:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub read: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t) -> ssize_t>,
    pub readv: Option<unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t>,
    pub recv:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t, c_int) -> ssize_t>,
    pub recvfrom: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *mut c_void,
            size_t,
            c_int,
            *mut sockaddr,
            *mut socklen_t,
        ) -> ssize_t,
    >,
    pub recvmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut msghdr, c_int) -> ssize_t>,
    pub write: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t) -> ssize_t>,
    pub writev: Option<unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t>,
    pub send:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t, c_int) -> ssize_t>,
    pub sendto: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *const c_void,
            size_t,
            c_int,
            *const sockaddr,
            socklen_t,
        ) -> ssize_t,
    >,
    pub sendmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *const msghdr, c_int) -> ssize_t>,
    pub fcntl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, ...) -> c_int>,
    pub ioctl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_ulong, ...) -> c_int>,
    pub close: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub shutdown: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub getsockopt: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            c_int,
            c_int,
            *mut c_void,
            *mut socklen_t,
        ) -> c_int,
    >,
    pub setsockopt: Option<
        unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int,
    >,
    pub poll: Option<unsafe extern "C" fn(*mut c_void, *mut pollfd, nfds_t, c_int) -> c_int>,
    pub netdev_send: Option<unsafe extern "C" fn(*mut c_void, *const c_void, size_t) -> c_int>,
    pub netdev_receive: Option<
        unsafe extern "C" fn(*mut c_void, *mut c_void, *mut size_t, *mut c_longlong) -> c_int,
    >,
    pub usleep: Option<unsafe extern "C" fn(*mut c_void, useconds_t) -> c_int>,
    pub gettimeofday: Option<unsafe extern "C" fn(*mut c_void, *mut timeval, *mut c_void) -> c_int>,
    pub epoll_create: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub epoll_ctl:
        Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *mut c_void) -> c_int>,
    pub epoll_wait:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, c_int, c_int) -> c_int>,
    pub pipe: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    pub splice: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *mut libc::loff_t,
            c_int,
            *mut libc::loff_t,
            size_t,
            c_uint,
        ) -> ssize_t,
    >,
}

extern "C" {
    // src/variadic.c
    fn xdptcp_pd_fcntl(userdata: *mut c_void, fd: c_int, cmd: c_int, ...) -> c_int;
    fn xdptcp_pd_ioctl(userdata: *mut c_void, fd: c_int, request: c_ulong, ...) -> c_int;
}

/// Real time a blocked call that returned gets before the virtual clock
/// moves on (`advance_clock`).
const RETURN_GRACE: std::time::Duration = std::time::Duration::from_millis(5);

pub struct Shared {
    host: Mutex<Host>,
    changed: Condvar,
    /// Bad `--so_flags` (said on stderr at init): every socket call fails.
    flags_error: Option<String>,
    /// Calls inside `blocking`, waiting or not yet (one may be waiting
    /// for the lock while packetdrill already counts it as blocked).
    in_calls: std::sync::atomic::AtomicUsize,
}

/// Counts a call into `Shared::in_calls` for as long as it lives.
struct InCall<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InCall<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InCall(n)
    }
}

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Shared {
    pub fn new(host: Host, flags_error: Option<String>) -> Shared {
        Shared {
            host: Mutex::new(host),
            changed: Condvar::new(),
            flags_error,
            in_calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Host> {
        self.host.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a call that never blocks, then wakes the waiters.
    fn with<T>(&self, f: impl FnOnce(&mut Host) -> Result<T, c_int>) -> Result<T, c_int> {
        let mut host = self.lock();
        let r = f(&mut host);
        host.pump();
        drop(host);
        self.changed.notify_all();
        r
    }

    /// Runs a socket call until it stops asking to wait.
    fn blocking<T>(&self, mut f: impl FnMut(&mut Host) -> Step<T>) -> Result<T, c_int> {
        self.check_flags()?;
        let _counted = InCall::new(&self.in_calls);
        let mut host = self.lock();
        let mut waited = false;
        loop {
            let step = f(&mut host);
            host.pump();
            self.changed.notify_all();
            match step {
                Step::Done(r) => {
                    if waited {
                        host.call_returned = Some(std::time::Instant::now());
                    }
                    return r;
                }
                Step::Wait => {
                    waited = true;
                    // This call has seen everything so far.
                    host.news = false;
                    host.waiting += 1;
                    host = self.changed.wait(host).unwrap_or_else(|e| e.into_inner());
                    host.waiting -= 1;
                }
            }
        }
    }

    /// Runs a socket call that never blocks.
    fn socket_call<T>(&self, f: impl FnOnce(&mut Host) -> Result<T, c_int>) -> Result<T, c_int> {
        self.check_flags()?;
        self.with(f)
    }

    /// The next packet the stack sends, moving the virtual clock from
    /// timer to timer until it sends one. A call blocked in packetdrill's
    /// other thread may be about to queue one (a blocking sendto once the
    /// handshake is done): after each change it gets to look before the
    /// clock moves on, and with no timer left its wake-up is waited for, a
    /// moment of real time, before the answer is "none".
    fn next_packet(&self) -> Option<(Vec<u8>, Instant)> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
        let mut host = self.lock();
        for _ in 0..crate::host::MAX_STEPS {
            if host.waiting > 0 && host.news {
                host = self.let_calls_look(host);
                continue;
            }
            match host.sniff_step() {
                Sniff::Packet(p, at) => {
                    drop(host);
                    self.changed.notify_all();
                    return Some((p, at));
                }
                Sniff::Moved => {}
                Sniff::Nothing => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    host = self
                        .changed
                        .wait_timeout(host, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        None
    }

    /// Wakes the calls blocked in packetdrill's other thread to look at
    /// what changed, and waits (a moment of real time at most) for one to.
    fn let_calls_look<'a>(&self, mut host: MutexGuard<'a, Host>) -> MutexGuard<'a, Host> {
        host.news = false;
        self.changed.notify_all();
        self.changed
            .wait_timeout(host, std::time::Duration::from_millis(50))
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// Moves the virtual clock to `to`, after a call blocked in
    /// packetdrill's other thread has looked at what changed (so a call
    /// the last packet unblocked returns at that packet's time).
    fn advance_clock(&self, to: impl FnOnce(&Host) -> Instant, sleeping: bool) -> Instant {
        let mut host = self.lock();
        let mut looks = 0;
        while host.waiting > 0 && host.news && looks < 4 {
            looks += 1;
            host = self.let_calls_look(host);
        }
        // A blocked call that just returned: packetdrill's thread still
        // files its result (the new socket of an accept, say), which a
        // kernel's caller does within microseconds of the packet that woke
        // it. It can only while packetdrill sleeps (its lock is free then),
        // so a sleep waits that long in real time, and an event due a few
        // virtual milliseconds later finds the result filed.
        while let (true, Some(at)) = (sleeping, host.call_returned) {
            let left = RETURN_GRACE.saturating_sub(at.elapsed());
            if left.is_zero() {
                host.call_returned = None;
                break;
            }
            host = self
                .changed
                .wait_timeout(host, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        // A call that has not reached its first look yet (it waits for
        // the lock) gets it at this time too, briefly.
        let mut tries = 0;
        while self.in_calls.load(std::sync::atomic::Ordering::SeqCst) > host.waiting && tries < 10 {
            tries += 1;
            host = self
                .changed
                .wait_timeout(host, std::time::Duration::from_millis(2))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let to = to(&host);
        host.advance_to(to);
        host.pump();
        let now = host.now;
        drop(host);
        self.changed.notify_all();
        now
    }

    fn check_flags(&self) -> Result<(), c_int> {
        self.flags_error
            .as_ref()
            .map_or(Ok(()), |_| Err(libc::EINVAL))
    }
}

/// The live stacks (their `Shared`, by address), for `getsockopt` below.
static LIVE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Visits the live stacks until `f` answers, holding the list all the
/// while: `pd_free` takes a stack off it under the same lock before
/// freeing it, so none is freed while visited. (Tests run several stacks
/// at once, in threads; a copy of the list outlived a freed stack.)
fn visit_live<T>(mut f: impl FnMut(&'static Shared) -> Option<T>) -> Option<T> {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.iter().find_map(|&p| {
        // SAFETY: registered in `fill`; `pd_free` removes it from the
        // list, under the lock held here, before dropping the Box.
        f(unsafe { &*(p as *const Shared) })
    })
}

pub fn fill(ifc: &mut PacketdrillInterface, shared: Box<Shared>) {
    ifc.userdata = Box::into_raw(shared).cast();
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ifc.userdata as usize);
    ifc.free = Some(pd_free);
    ifc.socket = Some(pd_socket);
    ifc.bind = Some(pd_bind);
    ifc.listen = Some(pd_listen);
    ifc.accept = Some(pd_accept);
    ifc.connect = Some(pd_connect);
    ifc.read = Some(pd_read);
    ifc.readv = Some(pd_readv);
    ifc.recv = Some(pd_recv);
    ifc.recvfrom = Some(pd_recvfrom);
    ifc.recvmsg = Some(pd_recvmsg);
    ifc.write = Some(pd_write);
    ifc.writev = Some(pd_writev);
    ifc.send = Some(pd_send);
    ifc.sendto = Some(pd_sendto);
    ifc.sendmsg = Some(pd_sendmsg);
    ifc.fcntl = Some(xdptcp_pd_fcntl);
    ifc.ioctl = Some(xdptcp_pd_ioctl);
    ifc.close = Some(pd_close);
    ifc.shutdown = Some(pd_shutdown);
    ifc.getsockopt = Some(pd_getsockopt);
    ifc.setsockopt = Some(pd_setsockopt);
    ifc.poll = Some(pd_poll);
    ifc.netdev_send = Some(pd_netdev_send);
    ifc.netdev_receive = Some(pd_netdev_receive);
    ifc.usleep = Some(pd_usleep);
    ifc.gettimeofday = Some(pd_gettimeofday);
    ifc.epoll_create = Some(pd_epoll_create);
    ifc.epoll_ctl = Some(pd_epoll_ctl);
    ifc.epoll_wait = Some(pd_epoll_wait);
    ifc.pipe = Some(pd_pipe);
    ifc.splice = Some(pd_splice);
}

// ---- plumbing: errno, panics, pointers ---------------------------------

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the thread's life.
    unsafe { *libc::__errno_location() = e };
}

/// Runs a callback body: a result becomes the C return value (errno set on
/// failure), and a panic becomes EIO instead of unwinding into C.
fn call<T: Copy>(on_error: T, f: impl FnOnce() -> Result<T, c_int>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e);
            on_error
        }
        Err(_) => {
            set_errno(libc::EIO);
            on_error
        }
    }
}

/// # Safety
/// `ud` must be the pointer `packetdrill_interface_init` stored, not freed.
unsafe fn shared<'a>(ud: *mut c_void) -> &'a Shared {
    // SAFETY: the caller's contract: `ud` came from Box::into_raw in
    // `fill` and lives until `pd_free`.
    unsafe { &*ud.cast::<Shared>() }
}

/// # Safety
/// `addr` must point to `len` readable bytes, or be null.
/// An IPv4 or IPv6 address; an IPv4-mapped IPv6 one (::ffff:a.b.c.d, as
/// `--ip_version=ipv4-mapped-ipv6` scripts give) is the IPv4 address.
unsafe fn read_addr(addr: *const sockaddr, len: socklen_t) -> Result<SocketAddr, c_int> {
    if addr.is_null() {
        return Err(libc::EFAULT);
    }
    if (len as usize) < std::mem::size_of::<sockaddr_in>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: non-null and at least a sockaddr_in long (checked above);
    // read_unaligned because a caller's buffer may be a plain byte array.
    let sin = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
    match c_int::from(sin.sin_family) {
        libc::AF_INET => Ok(SocketAddr::new(
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into(),
            u16::from_be(sin.sin_port),
        )),
        libc::AF_INET6 => {
            if (len as usize) < std::mem::size_of::<libc::sockaddr_in6>() {
                return Err(libc::EINVAL);
            }
            // SAFETY: as above, and long enough for a sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in6>()) };
            let a = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let ip = a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4);
            Ok(SocketAddr::new(ip, u16::from_be(sin6.sin6_port)))
        }
        _ => Err(libc::EAFNOSUPPORT),
    }
}

/// A Fast Open send's address: AF_UNSPEC is EOPNOTSUPP there (Linux).
///
/// # Safety
/// As `read_addr`.
unsafe fn read_fast_open_addr(addr: *const sockaddr, len: socklen_t) -> Result<SocketAddr, c_int> {
    if !addr.is_null() && len as usize >= std::mem::size_of::<libc::sa_family_t>() {
        // SAFETY: non-null and long enough for the family (checked above).
        let family = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sa_family_t>()) };
        if c_int::from(family) == libc::AF_UNSPEC {
            return Err(libc::EOPNOTSUPP);
        }
    }
    // SAFETY: the caller's contract.
    unsafe { read_addr(addr, len) }
}

/// # Safety
/// `addr` null, or writable for `*len` bytes with `len` valid.
/// Writes `a` as a socket of `family` names it: a sockaddr_in, or a
/// sockaddr_in6 (an IPv4 address then mapped, ::ffff:a.b.c.d).
unsafe fn write_addr(addr: *mut sockaddr, len: *mut socklen_t, a: SocketAddr, family: c_int) {
    if addr.is_null() || len.is_null() {
        return;
    }
    let bytes: Vec<u8> = match (family, a) {
        (libc::AF_INET6, _) => {
            let ip = match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            // SAFETY: all-zero is a valid sockaddr_in6 (plain C data).
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = ip.octets();
            // SAFETY: plain C data, read as the bytes it is made of.
            unsafe { as_raw(&sin6) }.to_vec()
        }
        (_, SocketAddr::V4(v4)) => {
            let sin = sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: as above.
            unsafe { as_raw(&sin) }.to_vec()
        }
        // An AF_INET socket has no IPv6 peer.
        (_, SocketAddr::V6(_)) => return,
    };
    // SAFETY: the caller's contract; we copy no more than *len bytes, as
    // accept(2) truncates, and report the full size.
    unsafe {
        let n = (*len as usize).min(bytes.len());
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr.cast::<u8>(), n);
        *len = bytes.len() as socklen_t;
    }
}

/// The bytes of a plain C struct.
///
/// # Safety
/// `T` is plain data with no padding that matters to the reader.
unsafe fn as_raw<T>(v: &T) -> &[u8] {
    // SAFETY: the caller's contract; the slice lives as long as `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// # Safety
/// `iov` must point to `n` iovecs whose buffers are writable and unaliased.
unsafe fn iov_mut<'a>(iov: *const iovec, n: c_int) -> Result<Vec<&'a mut [u8]>, c_int> {
    let n = usize::try_from(n).map_err(|_| libc::EINVAL)?;
    if n > 0 && iov.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: the caller's contract on `iov`, `n` and each buffer.
    (0..n)
        .map(|i| unsafe {
            let v = &*iov.add(i);
            if v.iov_len == 0 {
                Ok(&mut [][..])
            } else if v.iov_base.is_null() {
                // As the kernel's copy to or from address 0 fails.
                Err(libc::EFAULT)
            } else {
                Ok(std::slice::from_raw_parts_mut(
                    v.iov_base.cast::<u8>(),
                    v.iov_len,
                ))
            }
        })
        .collect()
}

/// # Safety
/// `iov` must point to `n` iovecs whose buffers are readable.
unsafe fn iov_gather(iov: *const iovec, n: c_int) -> Result<Vec<u8>, c_int> {
    // SAFETY: the same contract as iov_mut; we only read.
    let parts = unsafe { iov_mut(iov, n)? };
    Ok(parts.concat())
}

// ---- receive and send: one body each for the five spellings ------------

fn recv_into(
    s: &Shared,
    fd: c_int,
    mut bufs: Vec<&mut [u8]>,
    flags: c_int,
) -> Result<ssize_t, c_int> {
    let peek = flags & libc::MSG_PEEK != 0;
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    let n = s.blocking(|h| h.recv(fd, &mut bufs, peek, dontwait))?;
    Ok(n as ssize_t)
}

fn send_all(s: &Shared, fd: c_int, data: &[u8], flags: c_int) -> Result<ssize_t, c_int> {
    if let Some(to) = s.with(|h| h.take_deferred(fd))? {
        // The first write after a connect TCP_FASTOPEN_CONNECT deferred.
        return send_fast_open(s, fd, to, data, flags);
    }
    let n = send_queued(s, fd, data, flags)?;
    // One zero-copy id per call that queued bytes (Linux gives a failed
    // call's id back).
    if n > 0 && flags & libc::MSG_ZEROCOPY != 0 {
        s.with(|h| h.zerocopy_sent(fd))?;
    }
    Ok(n)
}

fn send_queued(s: &Shared, fd: c_int, data: &[u8], flags: c_int) -> Result<ssize_t, c_int> {
    // A blocking write during the handshake queues at once, so that its
    // first segment carries the handshake's ACK (Linux's writer waits
    // with sk_write_pending, which defers that ACK), and returns once
    // the connection is up.
    let opening = s.with(|h| h.is_opening(fd))?;
    let n = send_loop(s, fd, data, flags)?;
    if opening && n > 0 {
        s.blocking(|h| h.wait_connected(fd))?;
    }
    Ok(n)
}

fn send_loop(s: &Shared, fd: c_int, data: &[u8], flags: c_int) -> Result<ssize_t, c_int> {
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    let mut sent = 0;
    loop {
        let more = flags & libc::MSG_MORE != 0;
        match s.blocking(|h| h.send(fd, &data[sent..], dontwait, more)) {
            Ok(n) => sent += n,
            Err(_) if sent > 0 => return Ok(sent as ssize_t),
            Err(e) => return Err(e),
        }
        if sent == data.len() && flags & libc::MSG_EOR != 0 {
            // The write ended a record only if all of it was taken (Linux).
            s.with(|h| h.end_record(fd))?;
        }
        // A non-blocking socket takes what fits once; a blocking one
        // returns when all is queued.
        let done = sent == data.len() || dontwait;
        if done || s.with(|h| h.is_nonblocking(fd)).unwrap_or(true) {
            return Ok(sent as ssize_t);
        }
    }
}

// ---- the callbacks --------------------------------------------------------

unsafe extern "C" fn pd_free(ud: *mut c_void) {
    if !ud.is_null() {
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != ud as usize);
        // SAFETY: `ud` came from Box::into_raw in `fill`; packetdrill frees
        // it once, after its last call.
        drop(unsafe { Box::from_raw(ud.cast::<Shared>()) });
    }
}

unsafe extern "C" fn pd_socket(
    ud: *mut c_void,
    domain: c_int,
    ty: c_int,
    protocol: c_int,
) -> c_int {
    // SAFETY: `ud` per the interface's contract (all callbacks below too).
    let s = unsafe { shared(ud) };
    call(-1, || s.socket_call(|h| h.socket(domain, ty, protocol)))
}

unsafe extern "C" fn pd_bind(
    ud: *mut c_void,
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        // SAFETY: packetdrill passes a sockaddr of `len` bytes.
        let a = unsafe { read_addr(addr, len)? };
        s.socket_call(|h| h.bind(fd, a)).map(|_| 0)
    })
}

unsafe extern "C" fn pd_listen(ud: *mut c_void, fd: c_int, backlog: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || s.socket_call(|h| h.listen(fd, backlog)).map(|_| 0))
}

unsafe extern "C" fn pd_accept(
    ud: *mut c_void,
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        let (new, peer) = s.blocking(|h| h.accept(fd))?;
        let family = s.with(|h| h.family(fd))?;
        // SAFETY: accept(2)'s contract on addr/len.
        unsafe { write_addr(addr, len, peer, family) };
        Ok(new)
    })
}

unsafe extern "C" fn pd_connect(
    ud: *mut c_void,
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        // SAFETY: connect(2)'s contract.
        let a = unsafe { read_addr(addr, len)? };
        // A blocking connect waits for the handshake: each attempt after
        // the first looks at how it is going.
        s.blocking(|h| h.connect(fd, a)).map(|_| 0)
    })
}

unsafe extern "C" fn pd_read(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
) -> ssize_t {
    unsafe { pd_recv(ud, fd, buf, count, 0) }
}

unsafe extern "C" fn pd_readv(ud: *mut c_void, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let s = unsafe { shared(ud) };
    // SAFETY: readv(2)'s contract on iov.
    call(-1, || recv_into(s, fd, unsafe { iov_mut(iov, n)? }, 0))
}

unsafe extern "C" fn pd_recv(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    let s = unsafe { shared(ud) };
    call(-1, || {
        let one = iovec {
            iov_base: buf,
            iov_len: len,
        };
        // SAFETY: recv(2)'s contract: buf writable for len bytes.
        recv_into(s, fd, unsafe { iov_mut(&one, 1)? }, flags)
    })
}

unsafe extern "C" fn pd_recvfrom(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    from: *mut sockaddr,
    fromlen: *mut socklen_t,
) -> ssize_t {
    let n = unsafe { pd_recv(ud, fd, buf, len, flags) };
    if n >= 0 && !from.is_null() && !fromlen.is_null() {
        // A connected stream socket leaves the address untouched (Linux
        // sets the length to 0).
        // SAFETY: recvfrom(2)'s contract on fromlen.
        unsafe { *fromlen = 0 };
    }
    n
}

unsafe extern "C" fn pd_recvmsg(
    ud: *mut c_void,
    fd: c_int,
    msg: *mut msghdr,
    flags: c_int,
) -> ssize_t {
    let s = unsafe { shared(ud) };
    call(-1, || {
        if msg.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: recvmsg(2)'s contract: msg and its iovecs are valid.
        let m = unsafe { &mut *msg };
        m.msg_namelen = 0;
        if flags & libc::MSG_ERRQUEUE != 0 {
            // Never blocks; the data part of a completion is empty.
            let (lo, hi) = s.with(|h| h.take_completion(fd))?;
            let mut ee: ErrQueueEntry = unsafe { std::mem::zeroed() };
            ee.ee.ee_origin = SO_EE_ORIGIN_ZEROCOPY;
            ee.ee.ee_code = SO_EE_CODE_ZEROCOPY_COPIED;
            ee.ee.ee_info = lo;
            ee.ee.ee_data = hi;
            m.msg_flags = libc::MSG_ERRQUEUE;
            // An AF_INET6 socket's error queue speaks IPv6 (Linux's
            // IPV6_RECVERR): the same error, an empty sockaddr_in6 after.
            let v6 = s.with(|h| h.family(fd))? == libc::AF_INET6;
            let (level, ty, mut data) = if v6 {
                (
                    libc::SOL_IPV6,
                    libc::IPV6_RECVERR,
                    as_bytes(&ee)[..16].to_vec(),
                )
            } else {
                (libc::SOL_IP, libc::IP_RECVERR, as_bytes(&ee).to_vec())
            };
            if v6 {
                data.resize(16 + std::mem::size_of::<libc::sockaddr_in6>(), 0);
            }
            // SAFETY: as above, msg_control holds msg_controllen bytes.
            unsafe { put_cmsg(m, level, ty, &data) };
            return Ok(0);
        }
        let bufs = unsafe { iov_mut(m.msg_iov, m.msg_iovlen as c_int)? };
        let n = recv_into(s, fd, bufs, flags)?;
        m.msg_flags = 0;
        match s.with(|h| h.inq_hint(fd))? {
            // SAFETY: as above.
            Some(inq) => unsafe { put_cmsg(m, libc::SOL_TCP, TCP_INQ, &inq.to_ne_bytes()) },
            None => m.msg_controllen = 0,
        }
        Ok(n)
    })
}

/// What Linux's IP_RECVERR control message carries: the error, then the
/// address of whoever reported it (none for a completion).
#[repr(C)]
struct ErrQueueEntry {
    ee: libc::sock_extended_err,
    offender: sockaddr_in,
}

const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

fn as_bytes(e: &ErrQueueEntry) -> &[u8] {
    // SAFETY: plain C data, read as the bytes it is made of.
    unsafe {
        std::slice::from_raw_parts(
            (e as *const ErrQueueEntry).cast::<u8>(),
            std::mem::size_of::<ErrQueueEntry>(),
        )
    }
}

/// Writes one control message into `m`'s control buffer (MSG_CTRUNC when
/// it does not fit) and sets msg_controllen to what was written.
///
/// # Safety
/// `m.msg_control` is null or writable for `m.msg_controllen` bytes.
unsafe fn put_cmsg(m: &mut msghdr, level: c_int, ty: c_int, data: &[u8]) {
    let space = unsafe { libc::CMSG_SPACE(data.len() as u32) } as usize;
    if m.msg_control.is_null() || m.msg_controllen < space {
        m.msg_flags |= libc::MSG_CTRUNC;
        m.msg_controllen = 0;
        return;
    }
    // SAFETY: the buffer holds `space` bytes (checked above), and the
    // CMSG_ macros stay within it.
    unsafe {
        std::ptr::write_bytes(m.msg_control.cast::<u8>(), 0, space);
        let c = libc::CMSG_FIRSTHDR(m);
        (*c).cmsg_level = level;
        (*c).cmsg_type = ty;
        (*c).cmsg_len = libc::CMSG_LEN(data.len() as u32) as _;
        std::ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(c), data.len());
    }
    m.msg_controllen = space as _;
}

unsafe extern "C" fn pd_write(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    count: size_t,
) -> ssize_t {
    unsafe { pd_send(ud, fd, buf, count, 0) }
}

/// `sendto`/`sendmsg` with MSG_FASTOPEN: opens the connection with Fast
/// Open when the socket is not connected yet. As Linux: a non-blocking
/// caller gets what the SYN carries, or EINPROGRESS when it carries
/// nothing; a blocking one waits for the handshake and queues the rest.
fn send_fast_open(
    s: &Shared,
    fd: c_int,
    to: SocketAddr,
    data: &[u8],
    flags: c_int,
) -> Result<ssize_t, c_int> {
    let flags = flags & !libc::MSG_FASTOPEN;
    let Some(on_syn) = s.with(|h| h.connect_fast_open(fd, to, data))? else {
        // Connected already: the flag is ignored.
        return send_all(s, fd, data, flags);
    };
    let nonblocking = s.with(|h| h.is_nonblocking(fd))? || flags & libc::MSG_DONTWAIT != 0;
    let n = if nonblocking {
        if on_syn == 0 {
            return Err(libc::EINPROGRESS);
        }
        on_syn as ssize_t
    } else {
        // The rest queues now and rides the handshake's ACK.
        let rest = if on_syn == data.len() {
            0
        } else {
            send_queued(s, fd, &data[on_syn..], flags)?
        };
        s.blocking(|h| h.wait_connected(fd))?;
        on_syn as ssize_t + rest
    };
    if n > 0 && flags & libc::MSG_ZEROCOPY != 0 {
        s.with(|h| h.zerocopy_sent(fd))?;
    }
    Ok(n)
}

unsafe extern "C" fn pd_writev(ud: *mut c_void, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let s = unsafe { shared(ud) };
    // SAFETY: writev(2)'s contract on iov.
    call(-1, || send_all(s, fd, &unsafe { iov_gather(iov, n)? }, 0))
}

unsafe extern "C" fn pd_send(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    let s = unsafe { shared(ud) };
    // SAFETY: send(2)'s contract: buf readable for len bytes.
    call(-1, || {
        send_all(s, fd, unsafe { send_buf(buf, len)? }, flags)
    })
}

/// A send call's buffer: empty when `len` is 0, EFAULT when null.
///
/// # Safety
/// `buf` readable for `len` bytes when not null (send(2)'s contract).
unsafe fn send_buf<'a>(buf: *const c_void, len: size_t) -> Result<&'a [u8], c_int> {
    if len == 0 {
        Ok(&[])
    } else if buf.is_null() {
        Err(libc::EFAULT)
    } else {
        // SAFETY: the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) })
    }
}

unsafe extern "C" fn pd_sendto(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    to: *const sockaddr,
    tolen: socklen_t,
) -> ssize_t {
    if flags & libc::MSG_FASTOPEN != 0 {
        let s = unsafe { shared(ud) };
        return call(-1, || {
            // SAFETY: sendto(2)'s contract on `to` and `buf`.
            let to = unsafe { read_fast_open_addr(to, tolen)? };
            send_fast_open(s, fd, to, unsafe { send_buf(buf, len)? }, flags)
        });
    }
    // On a connected stream socket the address is ignored, as in Linux.
    unsafe { pd_send(ud, fd, buf, len, flags) }
}

unsafe extern "C" fn pd_sendmsg(
    ud: *mut c_void,
    fd: c_int,
    msg: *const msghdr,
    flags: c_int,
) -> ssize_t {
    let s = unsafe { shared(ud) };
    call(-1, || {
        if msg.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: sendmsg(2)'s contract.
        let m = unsafe { &*msg };
        let data = unsafe { iov_gather(m.msg_iov, m.msg_iovlen as c_int)? };
        if flags & libc::MSG_FASTOPEN != 0 {
            // SAFETY: sendmsg(2)'s contract on msg_name.
            let to = unsafe { read_fast_open_addr(m.msg_name.cast(), m.msg_namelen)? };
            return send_fast_open(s, fd, to, &data, flags);
        }
        send_all(s, fd, &data, flags)
    })
}

/// fcntl's body, called by the C shim with the one optional argument.
///
/// # Safety
/// `ud` is the adapter's userdata.
#[no_mangle]
pub unsafe extern "C" fn xdptcp_pd_fcntl_impl(
    ud: *mut c_void,
    fd: c_int,
    cmd: c_int,
    arg: c_long,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        s.socket_call(|h| match cmd {
            libc::F_GETFL => Ok(libc::O_RDWR
                | if h.is_nonblocking(fd)? {
                    libc::O_NONBLOCK
                } else {
                    0
                }),
            libc::F_SETFL => h
                .set_nonblocking(fd, arg as c_int & libc::O_NONBLOCK != 0)
                .map(|_| 0),
            libc::F_GETFD | libc::F_SETFD => h.is_nonblocking(fd).map(|_| 0),
            _ => Err(libc::EINVAL),
        })
    })
}

/// ioctl's body, called by the C shim with the one optional argument.
///
/// # Safety
/// `ud` is the adapter's userdata; `arg` points to an int for the
/// requests supported.
#[no_mangle]
pub unsafe extern "C" fn xdptcp_pd_ioctl_impl(
    ud: *mut c_void,
    fd: c_int,
    request: c_ulong,
    arg: c_long,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        let p = arg as *mut c_int;
        if p.is_null() {
            return Err(libc::EFAULT);
        }
        s.socket_call(|h| {
            let v = match request {
                // SAFETY (all three): the argument of these requests is an
                // int pointer, checked non-null above.
                libc::FIONBIO => return h.set_nonblocking(fd, unsafe { *p } != 0).map(|_| 0),
                libc::FIONREAD => h.queued(fd, true)?,
                libc::TIOCOUTQ => h.queued(fd, false)?,
                _ => return Err(libc::ENOTTY),
            };
            unsafe { *p = c_int::try_from(v).unwrap_or(c_int::MAX) };
            Ok(0)
        })
    })
}

unsafe extern "C" fn pd_close(ud: *mut c_void, fd: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || s.with(|h| h.close(fd)).map(|_| 0))
}

unsafe extern "C" fn pd_shutdown(ud: *mut c_void, fd: c_int, how: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || s.socket_call(|h| h.shutdown(fd, how)).map(|_| 0))
}

unsafe extern "C" fn pd_getsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    let s = unsafe { shared(ud) };
    // SAFETY: getsockopt(2)'s contract on val and len.
    call(-1, || unsafe {
        answer_option(val, len, || {
            s.socket_call(|h| h.getsockopt(fd, level, name))
        })
    })
}

/// getsockopt(2)'s answer: EFAULT for a null buffer or length, else what
/// fits of the value `get` returns, and its length.
///
/// # Safety
/// `val` writable for `*len` bytes, or null.
unsafe fn answer_option(
    val: *mut c_void,
    len: *mut socklen_t,
    get: impl FnOnce() -> Result<Vec<u8>, c_int>,
) -> Result<c_int, c_int> {
    if val.is_null() || len.is_null() {
        return Err(libc::EFAULT);
    }
    let v = get()?;
    // SAFETY: both non-null (checked), val writable for *len bytes.
    unsafe {
        let n = (*len as usize).min(v.len());
        std::ptr::copy_nonoverlapping(v.as_ptr(), val.cast::<u8>(), n);
        *len = n as socklen_t;
    }
    Ok(0)
}

unsafe extern "C" fn pd_setsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        let value = if len == 0 {
            &[][..]
        } else if val.is_null() {
            return Err(libc::EFAULT);
        } else {
            // SAFETY: setsockopt(2)'s contract: val readable for len bytes.
            unsafe { std::slice::from_raw_parts(val.cast::<u8>(), len as usize) }
        };
        s.socket_call(|h| h.setsockopt(fd, level, name, value))
            .map(|_| 0)
    })
}

unsafe extern "C" fn pd_poll(
    ud: *mut c_void,
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: c_int,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        if nfds > 0 && fds.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: poll(2)'s contract: fds holds nfds entries.
        let fds = if nfds == 0 {
            &mut [][..]
        } else {
            unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
        };
        let mut deadline: Option<Instant> = None;
        s.blocking(|h| {
            let mut ready = 0;
            for p in fds.iter_mut() {
                let ev = if p.fd < 0 { 0 } else { h.poll_events(p.fd) };
                // Errors and hang-ups are reported whether asked for or not.
                let always = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
                p.revents = ev & (p.events | always);
                ready += (p.revents != 0) as c_int;
            }
            let deadline = *deadline.get_or_insert_with(|| {
                h.now
                    + Duration::from_millis(u64::try_from(timeout).unwrap_or(u64::MAX / 2_000_000))
            });
            if ready > 0 || timeout == 0 || (timeout > 0 && h.now >= deadline) {
                Step::Done(Ok(ready))
            } else {
                Step::Wait
            }
        })
    })
}

unsafe extern "C" fn pd_netdev_send(ud: *mut c_void, buf: *const c_void, count: size_t) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        if buf.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: packetdrill hands `count` bytes of one IP packet.
        let packet = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), count) };
        s.with(|h| h.inject(packet)).map(|_| 0)
    })
}

unsafe extern "C" fn pd_netdev_receive(
    ud: *mut c_void,
    buf: *mut c_void,
    count: *mut size_t,
    time_usecs: *mut c_longlong,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        if buf.is_null() || count.is_null() {
            return Err(libc::EFAULT);
        }
        let next = s.next_packet();
        // SAFETY: packetdrill passes a buffer of *count bytes and valid
        // out-pointers.
        unsafe {
            match next {
                Some((p, at)) => {
                    let n = p.len().min(*count);
                    std::ptr::copy_nonoverlapping(p.as_ptr(), buf.cast::<u8>(), n);
                    *count = n;
                    if !time_usecs.is_null() {
                        *time_usecs = (EPOCH_USECS + at.as_micros()) as c_longlong;
                    }
                }
                None => *count = 0,
            }
        }
        Ok(0)
    })
}

unsafe extern "C" fn pd_usleep(ud: *mut c_void, usec: useconds_t) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        s.advance_clock(|h| h.now + Duration::from_micros(u64::from(usec)), true);
        Ok(0)
    })
}

unsafe extern "C" fn pd_gettimeofday(ud: *mut c_void, tv: *mut timeval, _tz: *mut c_void) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        if tv.is_null() {
            return Err(libc::EFAULT);
        }
        // packetdrill spins on the clock while it waits: each reading moves
        // it on by a tick, so waiting ends and the stack's timers run.
        let now = s.advance_clock(|h| h.now + h.flags.tick, false);
        let us = EPOCH_USECS + now.as_micros();
        // SAFETY: gettimeofday(2)'s contract: tv writable.
        unsafe {
            (*tv).tv_sec = (us / 1_000_000) as libc::time_t;
            (*tv).tv_usec = (us % 1_000_000) as libc::suseconds_t;
        }
        Ok(0)
    })
}

unsafe extern "C" fn pd_epoll_create(ud: *mut c_void, size: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        if size <= 0 {
            return Err(libc::EINVAL);
        }
        s.socket_call(|h| h.epoll_create())
    })
}

unsafe extern "C" fn pd_epoll_ctl(
    ud: *mut c_void,
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut c_void,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        let ev = ev.cast::<libc::epoll_event>();
        let (events, data) = if op == libc::EPOLL_CTL_DEL {
            (0, 0)
        } else if ev.is_null() {
            return Err(libc::EFAULT);
        } else {
            // SAFETY: epoll_ctl(2)'s contract: ev readable (packed struct).
            let e = unsafe { std::ptr::read_unaligned(ev) };
            (e.events, e.u64)
        };
        s.socket_call(|h| h.epoll_ctl(epfd, op, fd, events, data))?;
        Ok(0)
    })
}

unsafe extern "C" fn pd_epoll_wait(
    ud: *mut c_void,
    epfd: c_int,
    ev: *mut c_void,
    max: c_int,
    timeout: c_int,
) -> c_int {
    let s = unsafe { shared(ud) };
    call(-1, || {
        let max = usize::try_from(max)
            .ok()
            .filter(|m| *m > 0)
            .ok_or(libc::EINVAL)?;
        if ev.is_null() {
            return Err(libc::EFAULT);
        }
        let mut deadline: Option<Instant> = None;
        let got = s.blocking(|h| {
            let got = match h.epoll_wait(epfd, max) {
                Ok(g) => g,
                Err(e) => return Step::Done(Err(e)),
            };
            let deadline = *deadline.get_or_insert_with(|| {
                h.now
                    + Duration::from_millis(u64::try_from(timeout).unwrap_or(u64::MAX / 2_000_000))
            });
            if !got.is_empty() || timeout == 0 || (timeout > 0 && h.now >= deadline) {
                Step::Done(Ok(got))
            } else {
                Step::Wait
            }
        })?;
        let out = ev.cast::<libc::epoll_event>();
        for (i, (events, data)) in got.iter().enumerate() {
            let e = libc::epoll_event {
                events: *events,
                u64: *data,
            };
            // SAFETY: epoll_wait(2)'s contract: ev holds `max` entries,
            // and `got` has at most `max`.
            unsafe { std::ptr::write_unaligned(out.add(i), e) };
        }
        Ok(got.len() as c_int)
    })
}

unsafe extern "C" fn pd_pipe(_ud: *mut c_void, _fds: *mut c_int) -> c_int {
    call(-1, || Err::<c_int, _>(libc::ENOSYS))
}

unsafe extern "C" fn pd_splice(
    _ud: *mut c_void,
    _in: c_int,
    _off_in: *mut libc::loff_t,
    _out: c_int,
    _off_out: *mut libc::loff_t,
    _len: size_t,
    _flags: c_uint,
) -> ssize_t {
    call(-1, || Err::<ssize_t, _>(libc::ENOSYS))
}

/// The address of libc's own `name` (the next definition after ours),
/// looked up once into `cache`; 0 if there is none. The preloaded calls
/// below hand every descriptor that is not ours to it.
fn libc_symbol(cache: &std::sync::OnceLock<usize>, name: &std::ffi::CStr) -> usize {
    *cache.get_or_init(|| {
        // SAFETY: a NUL-terminated name; RTLD_NEXT finds libc's symbol.
        unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
    })
}

/// getsockopt(2) for the whole process when this library is preloaded
/// (`LD_PRELOAD`, as `tools/packetdrill.sh` runs packetdrill): a script's
/// `%{ assert tcpi_... }%` lines make packetdrill read TCP_INFO (and
/// TCP_CC_INFO, SO_MEMINFO) with the real getsockopt on the live
/// descriptor, which for our sockets is one of our eventfds. Those are
/// answered by the stack; every other descriptor goes to libc's.
///
/// # Safety
/// getsockopt(2)'s contract.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    let ours = visit_live(|s| {
        let mut host = s.lock();
        if !host.owns(fd) {
            return None;
        }
        // SAFETY: getsockopt(2)'s contract on val and len.
        Some(call(-1, || unsafe {
            answer_option(val, len, || host.getsockopt(fd, level, name))
        }))
    });
    if let Some(r) = ours {
        return r;
    }
    type Real = unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
    static REAL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let real = libc_symbol(&REAL, c"getsockopt");
    if real == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: `real` is libc's getsockopt, of this signature.
    unsafe { std::mem::transmute::<usize, Real>(real)(fd, level, name, val, len) }
}

/// The adapter whose socket `fd` is, if any (the preloaded calls below).
/// (The caller goes on using it: packetdrill makes no calls on a stack
/// after freeing it.)
fn owner_of(fd: c_int) -> Option<&'static Shared> {
    visit_live(|s| s.lock().owns(fd).then_some(s))
}

/// sendfile(2) for the whole process when this library is preloaded:
/// packetdrill runs a script's `sendfile` with the real call on the live
/// descriptor, one of our eventfds for our sockets. For those the file's
/// bytes are read here and sent through the stack (a copy: our send path
/// copies anyway); every other descriptor goes to libc's.
///
/// # Safety
/// sendfile(2)'s contract.
#[no_mangle]
pub unsafe extern "C" fn sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut libc::off_t,
    count: size_t,
) -> ssize_t {
    let Some(s) = owner_of(out_fd) else {
        type Real = unsafe extern "C" fn(c_int, c_int, *mut libc::off_t, size_t) -> ssize_t;
        static REAL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let real = libc_symbol(&REAL, c"sendfile");
        if real == 0 {
            set_errno(libc::ENOSYS);
            return -1;
        }
        // SAFETY: `real` is libc's sendfile, of this signature.
        return unsafe { std::mem::transmute::<usize, Real>(real)(out_fd, in_fd, offset, count) };
    };
    call(-1, || {
        let mut buf = vec![0u8; count.min(1 << 20)];
        // SAFETY: buf is writable for its length; offset, when not null,
        // points to the caller's off_t (sendfile(2)'s contract).
        let n = unsafe {
            if offset.is_null() {
                libc::read(in_fd, buf.as_mut_ptr().cast(), buf.len())
            } else {
                libc::pread(in_fd, buf.as_mut_ptr().cast(), buf.len(), *offset)
            }
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO));
        }
        let sent = send_all(s, out_fd, &buf[..n as usize], 0)?;
        if !offset.is_null() {
            // SAFETY: as above.
            unsafe { *offset += sent as libc::off_t };
        } else if (sent as isize) < n {
            // What was read but not sent goes back to the file's offset.
            // SAFETY: lseek takes no pointers.
            unsafe { libc::lseek(in_fd, (sent as isize - n) as libc::off_t, libc::SEEK_CUR) };
        }
        Ok(sent)
    })
}

/// system(3) for the whole process when this library is preloaded:
/// packetdrill runs a script's shell commands with it. `ip tcp_metrics
/// flush` empties Linux's Fast Open cookie cache; after it the stacks
/// forget theirs too, as Linux would (the command itself still runs).
///
/// # Safety
/// system(3)'s contract.
#[no_mangle]
pub unsafe extern "C" fn system(command: *const std::ffi::c_char) -> c_int {
    type Real = unsafe extern "C" fn(*const std::ffi::c_char) -> c_int;
    static REAL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let real = libc_symbol(&REAL, c"system");
    if real == 0 {
        return -1;
    }
    // SAFETY: `real` is libc's system, of this signature.
    let status = unsafe { std::mem::transmute::<usize, Real>(real)(command) };
    // SAFETY: a command is a NUL-terminated string (system(3)).
    let flushes = !command.is_null()
        && unsafe { std::ffi::CStr::from_ptr(command) }
            .to_string_lossy()
            .contains("tcp_metrics flush");
    if flushes {
        visit_live::<()>(|s| {
            let _ = s.with(|h| {
                h.forget_fast_open_cookies();
                Ok(())
            });
            None
        });
    }
    status
}
