//! AF_XDP device: Ethernet frames straight from a NIC queue into memory we
//! own (the UMEM), through four rings shared with the kernel.
//!
//! ```text
//!   fill ring  ──frames we lend──▶ kernel ──received──▶ RX ring ──▶ stack
//!   stack ──▶ TX ring ──▶ kernel ──sent──▶ completion ring ──▶ free list
//! ```
//!
//! Every frame is always in exactly one place: the fill ring, the RX ring,
//! the TX ring, the completion ring, our free list or kept by the stack, so
//! none leaks (`free_frames`, `fill_frames` and `kept_frames` let a test
//! check). Received frames are lent to the stack in place and go back to
//! the fill ring when the callback returns, or, when the stack keeps one
//! (in-order payload read later in place, `device/lend.rs`), once its
//! application has read it; transmit frames are built in place in UMEM.
//!
//! Our own small layer over the syscalls rather than a crate: the
//! maintained Rust AF_XDP crates wrap libxdp/libbpf (C libraries and a BPF
//! toolchain at build time) for what is here ~400 lines. See
//! `docs/ARCHITECTURE.md`.

mod bpf;
pub mod ring;
mod runs;

use super::{Device, FramePool, RxFrame};
use crate::time::Instant;
use ring::Ring;
use runs::TxRuns;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_RX_RING: libc::c_int = 2;
const XDP_TX_RING: libc::c_int = 3;
/// Descriptors one `sendto` sends in copy mode (Linux 6.17; 32 before).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// The kernel's batch per `sendto` when it cannot be raised.
const DEFAULT_TX_BUDGET: u32 = 32;
/// The batch we ask for (or the TX ring's size, if smaller): about
/// 0.6 ms of copy-mode sending on veth at most.
const MAX_TX_BUDGET: u32 = 256;
const XDP_UMEM_REG: libc::c_int = 4;
const XDP_UMEM_FILL_RING: libc::c_int = 5;
const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
const XDP_STATISTICS: libc::c_int = 7;
const XDP_COPY: u16 = 1 << 1;
const XDP_ZEROCOPY: u16 = 1 << 2;
const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
const XDP_USE_SG: u16 = 1 << 4;
/// In an RX descriptor's options: more pieces of this frame follow.
const XDP_PKT_CONTD: u32 = 1;
/// The largest frame we assemble from pieces (an IPv4 packet is at most
/// 64 KiB); pieces of anything larger are dropped.
const MAX_ASSEMBLED: usize = 65_535 + 14;
/// The largest IP packet we send in pieces: a 9000-byte jumbo frame.
const MAX_TX_MTU: usize = 9_000;
/// At most a quarter of the UMEM's frames may be kept by the stack (read
/// in place later); the transmit half lends the fill ring one frame for
/// each kept (`top_up_fill`), so whatever a slow reader holds, receiving
/// has as many frames as without keeping.
const KEEP_SHARE: u32 = 4;
const PGOFF_RX: i64 = 0;
const PGOFF_TX: i64 = 0x8000_0000;
const PGOFF_FILL: i64 = 0x1_0000_0000;
const PGOFF_COMPLETION: i64 = 0x1_8000_0000;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// The kernel's per-socket counters (`struct xdp_statistics`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpStatistics {
    /// Frames dropped for reasons other than the two below.
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Frames dropped because our RX ring was full (we were too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty: no frame to receive into.
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

#[repr(C)]
#[derive(Default)]
struct RingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fr: RingOffset,
    cr: RingOffset,
}

#[repr(C)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

#[repr(C)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

#[derive(Debug, Clone)]
pub struct AfXdpConfig {
    pub ifname: String,
    pub queue: u32,
    /// Bytes per UMEM frame (2048 or 4096).
    pub frame_size: u32,
    /// Frames in the UMEM, split between receiving and sending.
    pub frames: u32,
    /// Entries per ring (a power of two).
    pub ring_size: u32,
    pub mtu: usize,
    /// Where the XDP program hooks in.
    pub mode: XdpMode,
    /// The addresses the stack serves: only frames for them (and ARP or
    /// neighbour solicitations naming them) come to us, the kernel keeps
    /// the rest. Empty takes every frame of the queue (raw device
    /// benchmarks only).
    pub addresses: Vec<std::net::IpAddr>,
    /// How long to wait for a queue that a closed socket still holds (the
    /// kernel releases it asynchronously) before giving up.
    pub bind_timeout: std::time::Duration,
    /// Preferred busy polling: the driver's NAPI runs in our loop's
    /// syscalls instead of its interrupts (`None`: off).
    pub busy_poll: Option<BusyPoll>,
}

/// Preferred busy polling on the socket (Linux 5.11+): SO_PREFER_BUSY_POLL
/// with SO_BUSY_POLL microseconds and SO_BUSY_POLL_BUDGET packets per poll.
/// It pays on a NIC whose driver defers its interrupts
/// (`napi_defer_hard_irqs`, `gro_flush_timeout`); on veth it changes
/// little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    pub usecs: u32,
    pub budget: u32,
}

/// How a socket ended up bound: what the kernel and driver granted, which
/// may be less than asked (zero-copy falls back to copy mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMode {
    pub zero_copy: bool,
    pub driver: bool,
    pub multi_buffer: bool,
    pub busy_poll: Option<BusyPoll>,
    /// Descriptors the kernel sends per `sendto` (copy mode).
    pub tx_budget: u32,
}

impl std::fmt::Display for DeviceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let copy = if self.zero_copy {
            "zero-copy"
        } else {
            "copy mode"
        };
        let xdp = if self.driver {
            "driver XDP"
        } else {
            "generic XDP"
        };
        write!(f, "{copy}, {xdp}, ")?;
        match self.busy_poll {
            Some(b) => write!(f, "busy poll {} us (budget {})", b.usecs, b.budget)?,
            None => write!(f, "busy poll off")?,
        }
        if self.multi_buffer {
            write!(f, ", multi-buffer")?;
        }
        if !self.zero_copy {
            write!(f, ", {} frames per send call", self.tx_budget)?;
        }
        Ok(())
    }
}

/// Waits on a queue's release at least this long are reported on stderr.
const LONG_BIND_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Generic XDP runs after the kernel built an skb and works on every
/// interface; driver mode runs earlier, where the driver supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    Generic,
    Driver,
}

impl AfXdpConfig {
    pub fn new(ifname: &str) -> Self {
        AfXdpConfig {
            ifname: ifname.to_string(),
            queue: 0,
            frame_size: 2048,
            frames: 4096,
            ring_size: 2048,
            mtu: 1500,
            mode: XdpMode::Generic,
            addresses: Vec::new(),
            bind_timeout: std::time::Duration::from_secs(10),
            busy_poll: None,
        }
    }
}

/// Runs a SIOCGIF*/SIOCETHTOOL ioctl about `ifname` on a throwaway socket,
/// in the calling thread's network namespace (unlike /sys, which shows the
/// namespace it was mounted in), with the struct ifreq (16 bytes of name,
/// then a union) as `prepare` leaves it; returns it as the kernel filled it.
fn ifreq_ioctl(
    ifname: &str,
    request: libc::c_ulong,
    prepare: impl FnOnce(&mut [u8; 40]),
) -> io::Result<[u8; 40]> {
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= 16 || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    let mut ifreq = [0u8; 40];
    ifreq[..name.len()].copy_from_slice(name);
    prepare(&mut ifreq);
    // SAFETY: plain socket(2); the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ifreq` is a writable struct ifreq (40 bytes on 64-bit Linux)
    // for the requests used here, and any buffer its union points to (see
    // `interface_driver`) outlives the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), request, ifreq.as_mut_ptr()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENODEV) => io::Error::new(
                io::ErrorKind::NotFound,
                format!("no network interface '{ifname}' (see `ip link`; in a namespace, run inside it)"),
            ),
            _ => e,
        });
    }
    Ok(ifreq)
}

/// The hardware address of `ifname` (SIOCGIFHWADDR: the union holds a
/// sockaddr whose sa_data starts with the MAC).
pub fn interface_mac(ifname: &str) -> io::Result<[u8; 6]> {
    let ifreq = ifreq_ioctl(ifname, libc::SIOCGIFHWADDR, |_| {})?;
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&ifreq[18..24]);
    Ok(mac)
}

/// The MTU of `ifname` (SIOCGIFMTU: the union holds an int).
pub fn interface_mtu(ifname: &str) -> io::Result<usize> {
    let ifreq = ifreq_ioctl(ifname, libc::SIOCGIFMTU, |_| {})?;
    let mtu = i32::from_ne_bytes(ifreq[16..20].try_into().expect("4 bytes"));
    Ok(mtu.max(68) as usize)
}

/// The driver behind `ifname` ("veth", "mlx5_core", ...), asked with the
/// ethtool ioctl (ETHTOOL_GDRVINFO: the union points to a struct
/// ethtool_drvinfo, a command word and then driver[32], ...; 196 bytes).
pub fn interface_driver(ifname: &str) -> io::Result<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 3;
    let mut info = [0u8; 196];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    let ptr = info.as_mut_ptr() as u64;
    ifreq_ioctl(ifname, SIOCETHTOOL, |ifreq| {
        ifreq[16..24].copy_from_slice(&ptr.to_ne_bytes());
    })?;
    let driver = &info[4..36];
    let end = driver.iter().position(|&b| b == 0).unwrap_or(driver.len());
    Ok(String::from_utf8_lossy(&driver[..end]).into_owned())
}

/// Why the device could not be opened, with what to do about it.
#[derive(Debug)]
pub enum AfXdpError {
    NoSuchInterface(String),
    Permission(String),
    Setup(String),
}

impl fmt::Display for AfXdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AfXdpError::NoSuchInterface(i) => {
                write!(f, "no network interface '{i}' (see `ip link`; in a namespace, run inside it)")
            }
            AfXdpError::Permission(what) => write!(
                f,
                "{what}: permission denied; AF_XDP needs root (or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF): run with sudo"
            ),
            AfXdpError::Setup(what) => write!(f, "AF_XDP setup failed: {what}"),
        }
    }
}

impl std::error::Error for AfXdpError {}

fn err(what: &str, e: io::Error) -> AfXdpError {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => AfXdpError::Permission(what.to_string()),
        _ => AfXdpError::Setup(format!("{what}: {e}")),
    }
}

/// A mapping we unmap on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn map(fd: i32, len: usize, offset: i64, what: &str) -> Result<Mapping, AfXdpError> {
        let (fd, flags, prot) = if fd < 0 {
            (
                -1,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        } else {
            (
                fd,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        // SAFETY: a fresh mapping at an address of the kernel's choosing;
        // the result is checked before use.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if ptr == libc::MAP_FAILED {
            return Err(err(what, io::Error::last_os_error()));
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    /// A pointer `off` bytes in, as `T`.
    fn at<T>(&self, off: u64) -> *mut T {
        debug_assert!((off as usize) < self.len);
        // SAFETY: `off` is an offset the kernel gave for this mapping.
        unsafe { self.ptr.add(off as usize).cast() }
    }
}

// SAFETY: a mapping is plain memory (or ring memory shared with the
// kernel) that we unmap once; who reads or writes it is governed by the
// rings' protocol, not by which thread holds this handle.
unsafe impl Send for Mapping {}
// SAFETY: as above: the handle itself offers only its address and length.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range and nothing refers to it any
        // more (rings and frames die with the device that owns this).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

pub struct AfXdp {
    cfg: AfXdpConfig,
    fill: Ring<u64>,
    completion: Ring<u64>,
    rx: Ring<XdpDesc>,
    tx: Ring<XdpDesc>,
    /// Frames we hold for transmitting.
    free: Vec<u64>,
    // Field order is drop order: rings' mappings before the socket, the
    // socket before the UMEM it uses, the XDP link last of all.
    _ring_maps: Vec<Mapping>,
    sock: OwnedFd,
    /// The UMEM, as a pool whose received frames the stack may keep until
    /// its application has read them (they come home to the fill ring).
    umem: Arc<FramePool>,
    umem_len: usize,
    /// Shared by the sockets of all queues of the interface.
    _xdp: Arc<bpf::XdpRedirect>,
    /// Bound in zero-copy mode (the driver uses our UMEM directly).
    pub zero_copy: bool,
    /// Frames larger than a UMEM frame arrive in pieces (XDP_USE_SG).
    pub multi_buffer: bool,
    /// Descriptors the kernel sends per `sendto` in copy mode.
    tx_budget: u32,
    /// The pieces of a multi-buffer frame received so far.
    assembling: Vec<u8>,
    /// When frames are larger than a UMEM frame: the transmit frames, as
    /// runs of adjacent UMEM frames that a jumbo frame is built across.
    runs: Option<TxRuns>,
    /// The frame being assembled outgrew `MAX_ASSEMBLED`: it is dropped.
    oversized: bool,
    /// How long binding waited for the kernel to release the queue.
    pub bind_wait: std::time::Duration,
    /// Frames received and sent since `open`.
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// RX descriptors that did not describe a frame of our UMEM (address
    /// outside it, or length past the frame's end): dropped, counted.
    pub rx_invalid: u64,
}

/// Validates an RX descriptor before its memory is touched: the address
/// must lie in the UMEM and the data (which may start after headroom
/// inside the frame) must end within the same frame. Returns the frame's
/// base (to hand back to the fill ring) and the length to read.
fn rx_range(d: &XdpDesc, frame_size: u32, umem_len: u64) -> Option<(u64, usize)> {
    let frame = u64::from(frame_size);
    if d.addr >= umem_len {
        return None;
    }
    let base = d.addr - d.addr % frame;
    let room = base + frame - d.addr;
    if u64::from(d.len) > room || base + frame > umem_len {
        return None;
    }
    Some((base, d.len as usize))
}

// SAFETY: the raw pointers are into mappings owned by this value; it is
// moved to, and used by, one thread at a time.
unsafe impl Send for AfXdp {}

/// SO_PREFER_BUSY_POLL, SO_BUSY_POLL and SO_BUSY_POLL_BUDGET on `fd`.
fn set_busy_poll(fd: i32, b: BusyPoll) -> io::Result<()> {
    // The values from <asm-generic/socket.h> (libc lacks the last two).
    const SO_PREFER_BUSY_POLL: libc::c_int = 69;
    const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
    let opts = [
        (SO_PREFER_BUSY_POLL, 1),
        (libc::SO_BUSY_POLL, b.usecs as libc::c_int),
        (SO_BUSY_POLL_BUDGET, b.budget as libc::c_int),
    ];
    for (opt, v) in opts {
        // SAFETY: an int option of the size given, read by the kernel only.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn setsockopt<T>(fd: i32, opt: libc::c_int, v: &T, what: &str) -> Result<(), AfXdpError> {
    // SAFETY: `v` is a valid `T` for the duration of the call and its size
    // is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            SOL_XDP,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        return Err(err(what, io::Error::last_os_error()));
    }
    Ok(())
}

impl AfXdp {
    /// One socket on `cfg.queue`.
    pub fn open(cfg: AfXdpConfig) -> Result<AfXdp, AfXdpError> {
        let queue = cfg.queue;
        let xdp = Self::attach(&cfg, queue + 1)?;
        Self::open_socket(cfg, queue, xdp)
    }

    /// One socket for each of queues `0..queues`, each with its own UMEM,
    /// behind one XDP program (an interface has one per mode).
    pub fn open_queues(cfg: AfXdpConfig, queues: u32) -> Result<Vec<AfXdp>, AfXdpError> {
        let xdp = Self::attach(&cfg, queues)?;
        (0..queues)
            .map(|q| Self::open_socket(cfg.clone(), q, xdp.clone()))
            .collect()
    }

    fn ifindex(cfg: &AfXdpConfig) -> Result<u32, AfXdpError> {
        let name = CString::new(cfg.ifname.clone())
            .map_err(|_| AfXdpError::NoSuchInterface(cfg.ifname.clone()))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(AfXdpError::NoSuchInterface(cfg.ifname.clone()));
        }
        Ok(ifindex)
    }

    fn attach(cfg: &AfXdpConfig, queues: u32) -> Result<Arc<bpf::XdpRedirect>, AfXdpError> {
        let ifindex = Self::ifindex(cfg)?;
        let flags = match cfg.mode {
            XdpMode::Generic => bpf::XDP_FLAGS_SKB_MODE,
            XdpMode::Driver => bpf::XDP_FLAGS_DRV_MODE,
        };
        // Multi-buffer first (frames larger than a UMEM frame arrive in
        // pieces); kernels without it refuse the flag, then without.
        let once = || {
            bpf::XdpRedirect::attach(ifindex, queues, flags, &cfg.addresses, true).or_else(|_| {
                bpf::XdpRedirect::attach(ifindex, queues, flags, &cfg.addresses, false)
            })
        };
        // Busy: a program is attached. Ours, from a stack just stopped,
        // goes as the kernel closes its link (seen to take a while on a
        // loaded machine, restarting on one interface again and again):
        // wait for that as for a queue (`bind_timeout`), then say whose.
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        let attached = loop {
            let r = once();
            let busy = matches!(
                r.as_ref().map_err(|e| e.raw_os_error()),
                Err(Some(libc::EBUSY | libc::EEXIST))
            );
            if !busy || started.elapsed() > cfg.bind_timeout {
                break r;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        };
        let xdp = attached.map_err(|e| {
            let advice = match e.raw_os_error() {
                Some(libc::EBUSY | libc::EEXIST) => format!(
                    "another XDP program is attached, still after {1:.1} s: see `ip link show dev {0}`, remove it with `ip link set dev {0} xdp off`",
                    cfg.ifname,
                    started.elapsed().as_secs_f64()
                ),
                Some(libc::EOPNOTSUPP | libc::EINVAL) if cfg.mode == XdpMode::Driver => {
                    "the driver has no native XDP: use generic mode (--xdp-mode generic)".into()
                }
                _ => "the kernel needs XDP and BPF (CONFIG_XDP_SOCKETS, CONFIG_BPF_SYSCALL)".into(),
            };
            err(&format!("attaching XDP to {} ({advice})", cfg.ifname), e)
        })?;
        Ok(Arc::new(xdp))
    }

    fn open_socket(
        mut cfg: AfXdpConfig,
        queue: u32,
        xdp: Arc<bpf::XdpRedirect>,
    ) -> Result<AfXdp, AfXdpError> {
        cfg.queue = queue;
        let ifindex = Self::ifindex(&cfg)?;
        // What we send must fit the interface; a frame larger than one
        // UMEM frame goes in pieces (multi-buffer, decided at bind below).
        if let Ok(mtu) = interface_mtu(&cfg.ifname) {
            cfg.mtu = mtu;
        }
        if !cfg.ring_size.is_power_of_two() || cfg.frames < 2 * cfg.ring_size.min(cfg.frames / 2) {
            return Err(AfXdpError::Setup(
                "ring size must be a power of two and frames at least twice it".into(),
            ));
        }
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW, 0) };
        if fd < 0 {
            return Err(err(
                "creating the AF_XDP socket",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let umem_len = cfg.frames as usize * cfg.frame_size as usize;
        let mapping = Mapping::map(-1, umem_len, 0, "allocating the UMEM")?;
        let umem_ptr = mapping.ptr;
        // SAFETY: the mapping is `umem_len` bytes, owned by the pool.
        let umem = unsafe {
            FramePool::over(
                umem_ptr,
                umem_len,
                cfg.frames as usize,
                (cfg.frames / KEEP_SHARE) as usize,
                Box::new(mapping),
            )
        };
        let reg = UmemReg {
            addr: umem_ptr as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd, XDP_UMEM_REG, &reg, "registering the UMEM")?;
        let n = cfg.ring_size;
        for opt in [
            XDP_UMEM_FILL_RING,
            XDP_UMEM_COMPLETION_RING,
            XDP_RX_RING,
            XDP_TX_RING,
        ] {
            setsockopt(fd, opt, &n, "sizing the rings")?;
        }
        // Copy mode sends 32 descriptors per `sendto` unless told more. In
        // bulk the sender queues 20-30 frames per loop on average, more in
        // bursts, so about a hundred frames stood in the TX ring and
        // tripled the round trip (350-390 us against 120-130 us once one
        // call takes them all). The cap bounds how long one call runs
        // (each frame goes through the peer's receive path in it too).
        // Kernels before 6.17 refuse the option and keep 32.
        let want = n.min(MAX_TX_BUDGET);
        let tx_budget = match setsockopt(fd, XDP_MAX_TX_SKB_BUDGET, &want, "") {
            Ok(()) => want,
            Err(_) => DEFAULT_TX_BUDGET,
        };
        let mut off = MmapOffsets::default();
        let mut len = std::mem::size_of::<MmapOffsets>() as u32;
        // SAFETY: `off` is writable and `len` is its size.
        let r = unsafe {
            libc::getsockopt(
                fd,
                SOL_XDP,
                XDP_MMAP_OFFSETS,
                (&mut off as *mut MmapOffsets).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(err("reading ring offsets", io::Error::last_os_error()));
        }
        let addr_ring = |o: &RingOffset, pgoff: i64, what| {
            Mapping::map(fd, o.desc as usize + n as usize * 8, pgoff, what)
        };
        let desc_ring = |o: &RingOffset, pgoff: i64, what| {
            Mapping::map(
                fd,
                o.desc as usize + n as usize * std::mem::size_of::<XdpDesc>(),
                pgoff,
                what,
            )
        };
        let fm = addr_ring(&off.fr, PGOFF_FILL, "mapping the fill ring")?;
        let cm = addr_ring(&off.cr, PGOFF_COMPLETION, "mapping the completion ring")?;
        let rm = desc_ring(&off.rx, PGOFF_RX, "mapping the RX ring")?;
        let tm = desc_ring(&off.tx, PGOFF_TX, "mapping the TX ring")?;
        // SAFETY: each mapping holds its ring at the kernel's offsets and is
        // kept in `_ring_maps` for as long as the rings exist.
        let (mut fill, completion, rx, tx) = unsafe {
            let ring = |m: &Mapping, o: &RingOffset| {
                (
                    m.at::<AtomicU32>(o.producer) as *const AtomicU32,
                    m.at::<AtomicU32>(o.consumer) as *const AtomicU32,
                    m.at::<AtomicU32>(o.flags) as *const AtomicU32,
                )
            };
            let (p, c, f) = ring(&fm, &off.fr);
            let fill = Ring::new(p, c, f, fm.at::<u64>(off.fr.desc), n, true);
            let (p, c, f) = ring(&cm, &off.cr);
            let completion = Ring::new(p, c, f, cm.at::<u64>(off.cr.desc), n, false);
            let (p, c, f) = ring(&rm, &off.rx);
            let rx = Ring::new(p, c, f, rm.at::<XdpDesc>(off.rx.desc), n, false);
            let (p, c, f) = ring(&tm, &off.tx);
            let tx = Ring::new(p, c, f, tm.at::<XdpDesc>(off.tx.desc), n, true);
            (fill, completion, rx, tx)
        };
        // Half the frames wait in the fill ring for packets, half for sending.
        let mut free: Vec<u64> = (0..cfg.frames)
            .map(|i| u64::from(i) * u64::from(cfg.frame_size))
            .collect();
        let lend = fill.free().min(cfg.frames / 2);
        for _ in 0..lend {
            let addr = free.pop().expect("frames >= 2 * lent");
            if !fill.push(addr) {
                free.push(addr);
                break;
            }
        }
        fill.submit();
        // Frames larger than a UMEM frame: the transmit half becomes runs
        // of adjacent frames (the addresses left in `free` are the lowest,
        // in order), each built in place as one contiguous frame.
        let runs = (cfg.mtu + 14 > cfg.frame_size as usize).then(|| {
            let per_run = (cfg.mtu + 14).div_ceil(cfg.frame_size as usize);
            let n = free.len() / per_run;
            debug_assert!(free[..n * per_run]
                .iter()
                .enumerate()
                .all(|(i, &a)| a == i as u64 * u64::from(cfg.frame_size)));
            free.drain(..n * per_run);
            TxRuns::new(0, n, per_run, u64::from(cfg.frame_size))
        });

        // A queue stays bound for a while after its last socket closed,
        // even when everything of ours is closed (the runtime joins its
        // cores, and each core drops its socket, rings and UMEM, before
        // `stop` returns): the kernel frees the socket after an RCU grace
        // period, and then unbinds the queue in a workqueue item that
        // takes the RTNL lock, which namespace and link changes elsewhere
        // on the machine hold, for seconds when a namespace is torn down.
        // Binding meanwhile says EBUSY. Only for that do we wait, up to
        // `cfg.bind_timeout`, and say so when the wait was long.
        let mut waited = std::time::Duration::ZERO;
        let mut bind = |flags: u16| -> io::Result<()> {
            let sa = SockaddrXdp {
                family: libc::AF_XDP as u16,
                flags: flags | XDP_USE_NEED_WAKEUP,
                ifindex,
                queue_id: cfg.queue,
                shared_umem_fd: 0,
            };
            let started = std::time::Instant::now();
            let mut pause = std::time::Duration::from_millis(1);
            loop {
                // SAFETY: `sa` is a valid sockaddr_xdp and its size is passed.
                let r = unsafe {
                    libc::bind(
                        fd,
                        (&sa as *const SockaddrXdp).cast(),
                        std::mem::size_of::<SockaddrXdp>() as u32,
                    )
                };
                waited = started.elapsed();
                if r == 0 {
                    return Ok(());
                }
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EBUSY) || waited > cfg.bind_timeout {
                    return Err(e);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
        };
        // Zero-copy where the driver offers it (driver mode only), copy
        // mode otherwise (veth, generic XDP).
        // Each with multi-buffer frames first (XDP_USE_SG, kernel 6.6+
        // in copy mode), without where the kernel refuses it.
        let mut tries = Vec::new();
        if cfg.mode == XdpMode::Driver {
            tries.extend([XDP_ZEROCOPY | XDP_USE_SG, XDP_ZEROCOPY]);
        }
        tries.extend([XDP_COPY | XDP_USE_SG, XDP_COPY]);
        let mut bound = Err(io::Error::from_raw_os_error(libc::EINVAL));
        for flags in tries {
            bound = bind(flags).map(|()| flags);
            match &bound {
                Ok(_) => break,
                // Busy was waited for already; another mode will not help.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => break,
                Err(_) => {}
            }
        }
        let flags = bound.map_err(|e| {
            err(
                &format!(
                    "binding to {} queue {} (is another program using it? waited {:.1} s for the kernel to release it)",
                    cfg.ifname, cfg.queue, waited.as_secs_f64()
                ),
                e,
            )
        })?;
        let zero_copy = flags & XDP_ZEROCOPY != 0;
        let multi_buffer = flags & XDP_USE_SG != 0;
        if cfg.mode == XdpMode::Driver && !zero_copy && cfg.queue == 0 {
            eprintln!(
                "xdptcp: {}: the driver ({}) offers no zero-copy AF_XDP here; running in copy mode",
                cfg.ifname,
                interface_driver(&cfg.ifname).unwrap_or_else(|_| "unknown".into())
            );
        }
        if let Some(b) = cfg.busy_poll {
            set_busy_poll(fd, b).map_err(|e| {
                err(
                    &format!("busy polling on {} (SO_PREFER_BUSY_POLL needs Linux 5.11 and CAP_NET_ADMIN for the budget)", cfg.ifname),
                    e,
                )
            })?;
        }
        // Without multi-buffer a frame we send must fit one UMEM frame
        // (with its 14-byte Ethernet header); with it, up to a jumbo frame
        // in pieces.
        cfg.mtu = if multi_buffer {
            cfg.mtu.min(MAX_TX_MTU)
        } else {
            cfg.mtu.min(cfg.frame_size as usize - 14)
        };
        if waited >= LONG_BIND_WAIT {
            eprintln!(
                "xdptcp: {} queue {} was still held by a closed AF_XDP socket; the kernel released it after {:.2} s",
                cfg.ifname,
                cfg.queue,
                waited.as_secs_f64()
            );
        }
        xdp.register(cfg.queue, fd)
            .map_err(|e| err("registering the socket in the XSKMAP", e))?;
        Ok(AfXdp {
            cfg,
            fill,
            completion,
            rx,
            tx,
            free,
            _ring_maps: vec![fm, cm, rm, tm],
            sock,
            umem,
            umem_len,
            _xdp: xdp,
            zero_copy,
            multi_buffer,
            tx_budget,
            assembling: Vec::new(),
            runs,
            oversized: false,
            bind_wait: waited,
            rx_frames: 0,
            rx_invalid: 0,
            tx_frames: 0,
        })
    }

    /// What the socket was granted (zero-copy or copy, the XDP mode, busy
    /// polling).
    pub fn mode(&self) -> DeviceMode {
        DeviceMode {
            zero_copy: self.zero_copy,
            driver: self.cfg.mode == XdpMode::Driver,
            multi_buffer: self.multi_buffer,
            busy_poll: self.cfg.busy_poll,
            tx_budget: self.tx_budget,
        }
    }

    /// Frames held by us right now (free list), for leak checks: with no
    /// traffic in flight it returns to its value after `open`.
    pub fn free_frames(&self) -> usize {
        self.free.len() + self.runs.as_ref().map_or(0, TxRuns::free_frames)
    }

    /// Frames in the TX ring that the kernel has not taken yet.
    pub fn tx_queued(&self) -> usize {
        self.tx.outstanding() as usize
    }

    /// Frames waiting in the fill ring for the kernel to receive into.
    pub fn fill_frames(&self) -> usize {
        self.fill.outstanding() as usize
    }

    /// Every frame of the UMEM.
    pub fn total_frames(&self) -> usize {
        self.cfg.frames as usize
    }

    /// Gives the fill ring back the frames it lent to the free list when it
    /// looked full (the kernel publishes what it consumed lazily), keeping
    /// half of the UMEM for receiving; the transmit half lends the
    /// receiving half one frame for each the stack keeps, so kept frames
    /// never leave the kernel short of frames to receive into (the RX
    /// ring's backlog needs them too).
    fn top_up_fill(&mut self) {
        // Transmit takes from the free list unless it has runs of its own.
        let reserve = if self.runs.is_some() {
            0
        } else {
            ((self.cfg.frames / 2) as usize).saturating_sub(self.umem.kept())
        };
        let mut n = 0;
        while self.free.len() > reserve {
            let addr = self.free.pop().expect("len > reserve");
            if !self.fill.push(addr) {
                self.free.push(addr);
                break;
            }
            n += 1;
        }
        if n > 0 {
            self.fill.submit();
        }
    }

    fn frame(&mut self, addr: u64, len: usize) -> &mut [u8] {
        // SAFETY: the frame is ours: it came off the RX ring or our free
        // list, so neither the kernel nor a `Kept` uses it until we hand it
        // on (the pool checks the range).
        unsafe { self.umem.bytes_mut(addr, len) }
    }

    /// Frames the stack keeps right now (payload not yet read).
    pub fn kept_frames(&self) -> usize {
        self.umem.kept()
    }

    /// The most frames the stack may keep at once.
    pub fn keep_budget(&self) -> usize {
        self.umem.budget()
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`).
    pub fn kernel_stats(&self) -> io::Result<XdpStatistics> {
        let mut st = XdpStatistics::default();
        let mut len = std::mem::size_of::<XdpStatistics>() as libc::socklen_t;
        // SAFETY: `st` is writable and `len` is its size; the kernel
        // writes at most `len` bytes (fewer on kernels with fewer fields,
        // which then read 0).
        let r = unsafe {
            libc::getsockopt(
                self.sock.as_raw_fd(),
                SOL_XDP,
                XDP_STATISTICS,
                (&mut st as *mut XdpStatistics).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }

    /// The kept frames that came home, back to the fill ring (or the free
    /// list when it is full).
    fn take_home(&mut self) {
        let (fill, free) = (&mut self.fill, &mut self.free);
        let mut any = false;
        self.umem.take_returned(|addr| {
            if !fill.push(addr) {
                free.push(addr);
            }
            any = true;
        });
        if any {
            fill.submit();
        }
    }

    fn kick(&self) {
        // SAFETY: a zero-length sendto on our socket only wakes TX processing.
        unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            );
        }
    }

    fn reclaim(&mut self) {
        let mut any = false;
        while let Some(addr) = self.completion.pop() {
            let base = addr - addr % u64::from(self.cfg.frame_size);
            match &mut self.runs {
                Some(r) if r.owns(base) => r.completed(base),
                _ => self.free.push(base),
            }
            any = true;
        }
        if any {
            self.completion.release();
        }
    }

    /// Blocks up to `timeout_ms` until a frame can be received.
    pub fn wait(&self, timeout_ms: i32) {
        let mut p = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) };
    }
}

impl Device for AfXdp {
    fn mtu(&self) -> usize {
        self.cfg.mtu
    }

    fn idle_wait(&mut self, max: std::time::Duration) {
        self.wait(max.as_millis().clamp(1, i32::MAX as u128) as i32);
    }

    fn receive(&mut self, now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
        self.receive_lent(now, budget, &mut |f| rx(f.bytes()))
    }

    fn receive_lent(
        &mut self,
        _now: Instant,
        budget: usize,
        rx: &mut dyn FnMut(&RxFrame<'_>),
    ) -> usize {
        self.take_home();
        // `n` counts descriptors (the budget), `frames` what was handed
        // over: a multi-buffer frame takes several descriptors.
        let (mut n, mut frames) = (0, 0);
        while n < budget {
            let Some(d) = self.rx.pop() else { break };
            n += 1;
            let Some((base, len)) = rx_range(&d, self.cfg.frame_size, self.umem_len as u64) else {
                // Not a frame of ours: nothing to read, nothing to give back.
                self.rx_invalid += 1;
                continue;
            };
            if d.options & XDP_PKT_CONTD != 0 || !self.assembling.is_empty() {
                // A piece of a multi-buffer frame: gather, hand over whole.
                let mut whole = std::mem::take(&mut self.assembling);
                if whole.len() + len <= MAX_ASSEMBLED {
                    whole.extend_from_slice(self.frame(d.addr, len));
                } else {
                    self.oversized = true;
                }
                if d.options & XDP_PKT_CONTD == 0 {
                    if !std::mem::take(&mut self.oversized) {
                        rx(&RxFrame::copied(&whole));
                        frames += 1;
                    }
                    whole.clear();
                }
                self.assembling = whole;
            } else {
                // SAFETY: the frame came off the RX ring, so it is ours
                // until it goes back to the fill ring or, kept, comes home.
                let bytes = unsafe { self.umem.bytes_mut(d.addr, len) };
                let frame = RxFrame::in_pool(bytes, &self.umem, base);
                rx(&frame);
                frames += 1;
                if frame.was_kept() {
                    // Back to the fill ring once its payload is read.
                    continue;
                }
            }
            // Straight back to the fill ring: it has room, since the frame
            // just left the kernel's side.
            if !self.fill.push(base) {
                self.free.push(base);
            }
        }
        if n > 0 {
            self.rx.release();
            self.fill.submit();
            self.rx_frames += frames as u64;
        }
        self.top_up_fill();
        // With preferred busy polling the driver's NAPI runs only when we
        // ask: a non-blocking receive call does it when nothing came.
        if self.fill.needs_wakeup() || (n == 0 && self.cfg.busy_poll.is_some()) {
            self.wait(0);
        }
        frames
    }

    fn transmit(
        &mut self,
        _now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        self.reclaim();
        let size = self.cfg.frame_size as usize;
        let n = if self.cfg.mtu + 14 > size {
            self.transmit_in_pieces(budget, tx)
        } else {
            self.transmit_whole(budget, tx)
        };
        if n > 0 {
            self.tx.submit();
            self.tx_frames += n as u64;
        }
        // Kick only with descriptors waiting: copy mode keeps the TX
        // wakeup flag set for good, so checking the flag alone made a
        // sendto every loop, also with nothing queued. The kernel sends a
        // bounded batch per kick, so what is left gets another next time.
        if n > 0 || (self.tx.needs_wakeup() && self.tx.outstanding() > 0) {
            self.kick();
        }
        n
    }
}

impl AfXdp {
    /// Each frame built in place in one UMEM frame.
    fn transmit_whole(
        &mut self,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        let mut n = 0;
        let size = self.cfg.frame_size as usize;
        while n < budget && self.tx.free() > 0 {
            let Some(addr) = self.free.pop() else { break };
            match tx(self.frame(addr, size)) {
                Some(len) => {
                    let d = XdpDesc {
                        addr,
                        len: len.min(size) as u32,
                        options: 0,
                    };
                    if !self.tx.push(d) {
                        self.free.push(addr);
                        break;
                    }
                    n += 1;
                }
                None => {
                    self.free.push(addr);
                    break;
                }
            }
        }
        n
    }

    /// Jumbo frames (multi-buffer): each built in place across a run of
    /// adjacent UMEM frames (`runs.rs`), then sent as one descriptor per
    /// UMEM frame, every one but the last marked XDP_PKT_CONTD. One copy
    /// of the payload, as for frames that fit one UMEM frame.
    fn transmit_in_pieces(
        &mut self,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        let size = self.cfg.frame_size as usize;
        let most = self.cfg.mtu + 14;
        let Some(runs) = self.runs.as_mut() else {
            return 0;
        };
        let need = most.div_ceil(size);
        debug_assert!(runs.run_bytes() >= most);
        let mut n = 0;
        while n < budget && self.tx.has_room(need as u32) {
            let Some(base) = runs.take() else { break };
            // SAFETY: a free run is ours: none of its frames is with the
            // kernel or kept (runs are never lent for receiving).
            let buf = unsafe { self.umem.bytes_mut(base, most) };
            let Some(len) = tx(buf) else {
                runs.put_back(base);
                break;
            };
            let len = len.min(most);
            let pieces = len.div_ceil(size).max(1);
            for k in 0..pieces {
                let at = k * size;
                let d = XdpDesc {
                    addr: base + at as u64,
                    len: (len - at).min(size) as u32,
                    options: if k + 1 < pieces { XDP_PKT_CONTD } else { 0 },
                };
                let pushed = self.tx.push(d);
                debug_assert!(pushed, "room was counted");
            }
            runs.sent(base, pieces as u32);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::{rx_range, XdpDesc};

    fn d(addr: u64, len: u32) -> XdpDesc {
        XdpDesc {
            addr,
            len,
            options: 0,
        }
    }

    /// Four 2 KiB frames: 8 KiB of UMEM.
    const UMEM: u64 = 8192;

    #[test]
    fn rx_descriptors_are_checked_against_the_frame_they_start_in() {
        // A whole frame, and data after 256 bytes of headroom up to the end.
        assert_eq!(rx_range(&d(2048, 2048), 2048, UMEM), Some((2048, 2048)));
        assert_eq!(
            rx_range(&d(2048 + 256, 1792), 2048, UMEM),
            Some((2048, 1792))
        );
        // One byte past the frame's end, measured from where the data
        // starts (a bound taken from the frame's base would let it read
        // 256 bytes of the next frame).
        assert_eq!(rx_range(&d(2048 + 256, 1793), 2048, UMEM), None);
        assert_eq!(rx_range(&d(256, 2048), 2048, UMEM), None);
        // Outside the UMEM, or a frame that would run past its end.
        assert_eq!(rx_range(&d(UMEM, 10), 2048, UMEM), None);
        assert_eq!(rx_range(&d(u64::MAX - 5, 1), 2048, UMEM), None);
        assert_eq!(rx_range(&d(6144, 100), 2048, 7000), None);
        assert_eq!(rx_range(&d(6144, 100), 2048, UMEM), Some((6144, 100)));
    }
}
