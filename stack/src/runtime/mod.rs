//! The per-core poll-mode runtime: one thread per queue of the interface,
//! pinned to its own core, each running [`core::CoreLoop`] over its own
//! AF_XDP socket and its own [`Interface`] (connection table, timer wheel,
//! neighbour cache). Flows are owned by the core their 4-tuple hashes to
//! ([`steer`]); frames that arrive elsewhere are handed over ([`handoff`]).
//!
//! The application runs inside the loops as a [`CoreApp`], one instance
//! per core; listeners are opened on every core (like SO_REUSEPORT), and
//! active opens pick local ports that hash back to the opening core.

pub mod core;
pub mod handoff;
pub mod stats;
pub mod steer;

pub use self::core::{CoreApp, CoreContext};
use crate::device::afxdp::{AfXdp, AfXdpConfig, AfXdpError};
use crate::iface::{IfaceConfig, Interface, RxChecksum};
use crate::time::Instant;
use crossbeam::channel::{bounded, Sender};
use crossbeam::queue::ArrayQueue;
use handoff::{Inbox, Pool, Steered, QUEUE_FRAMES};
use stats::{CoreCounters, CoreCountersValue, CoreSnapshot};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How a core waits when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Spin: lowest latency, one core at 100 % whatever the load.
    Busy,
    /// Spin while there is work, then block on the socket (at most 1 ms at
    /// a time) so an idle stack does not burn its cores.
    Adaptive,
}

impl std::str::FromStr for PollMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "busy" => Ok(PollMode::Busy),
            "adaptive" => Ok(PollMode::Adaptive),
            _ => Err(format!("poll mode '{s}': use busy or adaptive")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub afxdp: AfXdpConfig,
    /// Queues of the interface to serve, one core each.
    pub queues: u32,
    /// CPUs to pin the cores to, core `i` on `cpus[i % len]`; empty pins
    /// core `i` to CPU `i`; `None` leaves placement to the scheduler.
    pub pin: Option<Vec<usize>>,
    pub poll: PollMode,
    pub iface: IfaceConfig,
    /// IPv6 addresses served besides `iface.ip`, each with its on-link
    /// prefix length (`iface/ipv6.rs`).
    pub ipv6: Vec<(std::net::Ipv6Addr, u8)>,
    /// The router for IPv6 destinations off those prefixes.
    pub ipv6_gateway: Option<std::net::Ipv6Addr>,
    /// What peers may make each core's interface hold (`iface::Limits`).
    pub limits: crate::iface::Limits,
}

impl RuntimeConfig {
    /// A configuration for `ifname` with our address `ip/prefix_len`:
    /// the interface's own MAC, a random RFC 6528 key (from
    /// /dev/urandom), one queue, busy polling, default TCP settings.
    pub fn for_interface(ifname: &str, ip: Ipv4Addr, prefix_len: u8) -> std::io::Result<Self> {
        use std::io::Read;
        let mac = crate::device::afxdp::interface_mac(ifname)?;
        let mut isn_secret = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut isn_secret)?;
        Ok(RuntimeConfig {
            afxdp: AfXdpConfig::new(ifname),
            queues: 1,
            pin: Some(Vec::new()),
            poll: PollMode::Busy,
            iface: IfaceConfig {
                mac: crate::wire::ethernet::MacAddr(mac),
                ip,
                prefix_len,
                gateway: None,
                isn_secret,
                tcp: crate::tcp::Config::default(),
                rx_checksum: crate::iface::RxChecksum::Auto,
            },
            ipv6: Vec::new(),
            ipv6_gateway: None,
            limits: crate::iface::Limits::default(),
        })
    }
}

pub(crate) struct Shared {
    epoch: std::time::Instant,
    stop: AtomicBool,
    done: AtomicUsize,
    /// A thread in `wait_done`, woken by the core that finishes last.
    waiter: std::sync::Mutex<Option<std::thread::Thread>>,
}

impl Shared {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.epoch.elapsed().as_nanos() as u64)
    }

    /// A core's application is done: count it, and wake the waiter.
    pub(crate) fn report_done(&self) {
        self.done.fetch_add(1, Ordering::AcqRel);
        if let Some(t) = self.waiter.lock().expect("not poisoned").as_ref() {
            t.unpark();
        }
    }
}

/// The running cores. Dropping it stops them.
pub struct Runtime<A: CoreApp> {
    threads: Vec<JoinHandle<A>>,
    shared: Arc<Shared>,
    counters: Vec<Arc<CoreCounters>>,
    snapshot_requests: Vec<Sender<Sender<CoreSnapshot>>>,
    bind_wait: Duration,
    device_mode: Option<crate::device::afxdp::DeviceMode>,
}

impl<A: CoreApp> Runtime<A> {
    /// Opens one AF_XDP socket per queue and starts a core on each, with
    /// the application instance `make_app(core)`.
    pub fn start(
        cfg: impl Into<RuntimeConfig>,
        mut make_app: impl FnMut(usize) -> A,
    ) -> Result<Self, AfXdpError> {
        let cfg: RuntimeConfig = cfg.into();
        let queues = cfg.queues.max(1);
        let mut afxdp = cfg.afxdp.clone();
        // The XDP program takes only what this stack serves.
        // (0.0.0.0 stands for no IPv4 address: an IPv6-only stack.)
        let v4 = Some(cfg.iface.ip).filter(|a| !a.is_unspecified());
        let ours = v4
            .map(std::net::IpAddr::V4)
            .into_iter()
            .chain(cfg.ipv6.iter().map(|(a, _)| std::net::IpAddr::V6(*a)));
        for a in ours {
            if !afxdp.addresses.contains(&a) {
                afxdp.addresses.push(a);
            }
        }
        let mut iface_cfg = cfg.iface.clone();
        if iface_cfg.rx_checksum == RxChecksum::Auto {
            // Only a virtual device hands over unfinished checksums; on
            // anything with a wire every checksum is verified.
            let virtual_dev = crate::device::afxdp::interface_driver(&cfg.afxdp.ifname)
                .is_ok_and(|d| d == "veth");
            iface_cfg.rx_checksum = match virtual_dev {
                true => RxChecksum::TrustPartial,
                false => RxChecksum::Verify,
            };
        }
        let devs = AfXdp::open_queues(afxdp, queues)?;
        // The MSS we offer follows the interface's MTU (less 40 bytes of
        // IPv4 and TCP headers), not a 1500-byte assumption.
        if let Some(d) = devs.first() {
            use crate::device::Device;
            iface_cfg.tcp.mss = crate::iface::mss_for_mtu(d.mtu());
        }
        let bind_wait = devs.iter().map(|d| d.bind_wait).max().unwrap_or_default();
        let device_mode = devs.first().map(|d| d.mode());
        let cores = devs.len();
        let inboxes: Vec<Inbox> = (0..cores)
            .map(|_| Arc::new(ArrayQueue::new(QUEUE_FRAMES)))
            .collect();
        let pool: Pool = Arc::new(ArrayQueue::new(QUEUE_FRAMES * cores));
        let cpus = core_affinity::get_core_ids().unwrap_or_default();
        let shared = Arc::new(Shared {
            epoch: std::time::Instant::now(),
            stop: AtomicBool::new(false),
            done: AtomicUsize::new(0),
            waiter: std::sync::Mutex::new(None),
        });
        let mut rt = Runtime {
            threads: Vec::new(),
            shared: shared.clone(),
            counters: Vec::new(),
            snapshot_requests: Vec::new(),
            bind_wait,
            device_mode,
        };
        for (core, dev) in devs.into_iter().enumerate() {
            let mut iface = Interface::new(iface_cfg.clone());
            iface.set_limits(cfg.limits);
            for &(a, prefix) in &cfg.ipv6 {
                iface
                    .add_ipv6(a, prefix)
                    .map_err(|e| AfXdpError::Setup(format!("IPv6 address {a}: {e}")))?;
            }
            iface.set_ipv6_gateway(cfg.ipv6_gateway);
            iface.set_port_filter(move |local, remote| {
                let (l, r) = ((local.ip(), local.port()), (remote.ip(), remote.port()));
                steer::flow_owner(l, r, cores) == core
            });
            let counters = Arc::new(CoreCounters::default());
            let (req_tx, req_rx) = bounded(4);
            let pin = match &cfg.pin {
                None => None,
                Some(list) if list.is_empty() => cpus.get(core).copied(),
                Some(list) => cpus
                    .iter()
                    .find(|c| c.id == list[core % list.len()])
                    .copied(),
            };
            let lp = core::CoreLoop {
                core,
                cores,
                dev: Steered::new(dev, core, inboxes.clone(), pool.clone()),
                iface,
                app: make_app(core),
                shared: shared.clone(),
                counters: counters.clone(),
                snapshots: req_rx,
                poll: cfg.poll,
            };
            let thread = std::thread::Builder::new()
                .name(format!("xdptcp-core{core}"))
                .spawn(move || {
                    if let Some(id) = pin {
                        core_affinity::set_for_current(id);
                    }
                    lp.run()
                })
                .map_err(|e| AfXdpError::Setup(format!("starting core {core}: {e}")))?;
            rt.threads.push(thread);
            rt.counters.push(counters);
            rt.snapshot_requests.push(req_tx);
        }
        Ok(rt)
    }

    /// How long starting waited for the kernel to release a queue that a
    /// closed socket still held (zero when it was free).
    pub fn bind_wait(&self) -> Duration {
        self.bind_wait
    }

    /// What the AF_XDP sockets were granted (zero-copy or copy, the XDP
    /// mode, busy polling): every program says it in its first lines.
    pub fn device_mode(&self) -> Option<crate::device::afxdp::DeviceMode> {
        self.device_mode
    }

    pub fn cores(&self) -> usize {
        self.threads.len()
    }

    /// Every core's counters, read without stopping anything.
    pub fn counters(&self) -> Vec<CoreCountersValue> {
        self.counters.iter().map(|c| c.load()).collect()
    }

    /// Every core's counters, interface statistics and connections, each
    /// taken by its core between two iterations of its loop.
    pub fn snapshot(&self, timeout: Duration) -> Vec<CoreSnapshot> {
        let replies: Vec<_> = self
            .snapshot_requests
            .iter()
            .map(|req| {
                let (tx, rx) = bounded(1);
                let _ = req.send(tx);
                rx
            })
            .collect();
        replies
            .into_iter()
            .filter_map(|rx| rx.recv_timeout(timeout).ok())
            .collect()
    }

    /// True once every core's application said it is done.
    pub fn all_done(&self) -> bool {
        self.shared.done.load(Ordering::Acquire) >= self.threads.len()
    }

    /// Waits until all applications are done, at most `timeout`; calls
    /// `tick` about every `every` meanwhile (for progress and `--stats`).
    pub fn wait_done(
        &self,
        timeout: Duration,
        every: Duration,
        mut tick: impl FnMut(&Self),
    ) -> bool {
        // Parked until a core finishes or a tick is due: a waiter woken
        // every few milliseconds takes a spinning core's CPU for tens of
        // microseconds each time (the tail of request/response latency).
        *self.shared.waiter.lock().expect("not poisoned") = Some(std::thread::current());
        let start = std::time::Instant::now();
        let mut next = start + every;
        let finished = loop {
            if self.all_done() {
                break true;
            }
            let now = std::time::Instant::now();
            if now.duration_since(start) > timeout {
                break false;
            }
            if now >= next {
                tick(self);
                next += every;
            }
            let until = next.min(start + timeout + Duration::from_millis(1));
            std::thread::park_timeout(until.saturating_duration_since(std::time::Instant::now()));
        };
        *self.shared.waiter.lock().expect("not poisoned") = None;
        finished
    }

    /// Stops every core and gives the applications back.
    pub fn stop(mut self) -> Vec<A> {
        self.shared.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|t| match t.join() {
                Ok(app) => app,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    }
}

impl<A: CoreApp> Drop for Runtime<A> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
