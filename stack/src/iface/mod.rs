//! The interface: one IPv4 address on one Ethernet device. It answers ARP
//! and ICMP echo, hands TCP segments to their connections (or to a
//! listener, or answers with RST), runs the connections' timers and builds
//! their outgoing frames in place in the device's transmit buffers.
//!
//! `poll` has two phases so that receiving never needs a transmit buffer:
//! ingress only updates state and queues small control replies; egress
//! then drains those replies and the connections into the device.
//!
//! Here: the types, the socket calls and the poll loop with its timers.
//! `ingress.rs` takes frames in, `passive_open.rs` answers SYNs for
//! listeners (SYN cookies, the backlog), `egress.rs` sends, `frames.rs`
//! builds whole frames; the neighbour cache, the connection table, SYN
//! cookies' arithmetic, TIME-WAIT records and Fast Open's cookie cache
//! have files of their own.

pub mod fast_open_cache;
pub mod neighbor;
pub mod stats;
pub mod syn_cookie;
pub mod tcp_table;
mod time_waits;

mod egress;
mod frames;
mod ingress;
mod ipv6;
mod passive_open;
mod rate_limit;

use crate::device::{Device, RxFrame};
use crate::tcp::isn::IsnGenerator;
use crate::tcp::time_wait::TimeWaitReply;
use crate::tcp::{reset, Config, Connection, SeqNum, Transmit};
use crate::time::wheel::TimerWheel;
use crate::time::{earliest, Instant};
use crate::wire::arp::{ArpOp, ArpPacket};
use crate::wire::ethernet::{self, EthernetFrame, MacAddr};
use crate::wire::icmp::{self, IcmpEcho};
use crate::wire::icmpv6;
use crate::wire::ipv4::{self, Ipv4Header, Ipv4Packet};
use crate::wire::tcp::{self as tcpwire, FastOpen, Flags, TcpHeader, TcpSegment};
use crate::wire::WireError;
use fast_open_cache::{AskWith, CachedCookie};
use neighbor::{NeighborCache, Resolution};
pub use stats::IfaceStats;
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
pub use tcp_table::{Handle, Tuple};

use frames::*;
use tcp_table::{Listener, TcpTable};

/// Control replies waiting for a transmit buffer, bounded.
const MAX_CONTROL: usize = 64;
/// Frames handled per device call.
const BATCH: usize = 64;
/// Frames one receive phase takes at most before the transmit phase runs
/// (as NAPI's budget): ACKs are sent once per phase, so this bounds how
/// much one stretch ACK covers when frames arrive as fast as we take them.
pub const RX_BUDGET: usize = 4 * BATCH;
// Out-of-order data is acknowledged segment by segment, a phase's worth.
const _: () = assert!(RX_BUDGET <= crate::tcp::connection::ACK_QUEUE_MAX);
const FIRST_EPHEMERAL: u16 = 49_152;
/// Echo replies and neighbour advertisements sent per second at most
/// (Linux's `icmp_msgs_per_sec` is 1,000 too).
pub const MAX_REPLIES_PER_SEC: u32 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfaceError {
    AddrInUse(u16),
    NoFreePorts,
    NoRoute(IpAddr),
    NotListening(u16),
    BadHandle,
    /// `Limits` reached: (open connections, buffer bytes held).
    Limit(usize, usize),
    /// An address the interface cannot take, and why.
    BadAddress(String),
}

impl fmt::Display for IfaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfaceError::AddrInUse(p) => write!(f, "port {p} is already in use"),
            IfaceError::NoFreePorts => f.write_str("no free ephemeral port"),
            IfaceError::NoRoute(ip) => write!(
                f,
                "no route to {ip}: not on the local subnet and no gateway set"
            ),
            IfaceError::NotListening(p) => write!(f, "nothing listens on port {p}"),
            IfaceError::BadHandle => f.write_str("no such connection"),
            IfaceError::BadAddress(why) => write!(f, "cannot use that address: {why}"),
            IfaceError::Limit(n, bytes) => write!(
                f,
                "connection limit reached: {n} open connections holding {} MiB of buffers",
                bytes >> 20
            ),
        }
    }
}

impl std::error::Error for IfaceError {}

#[derive(Debug, Clone)]
pub struct IfaceConfig {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Key for RFC 6528 ISNs: random in real runs, from the seed in simulations.
    pub isn_secret: [u8; 16],
    /// Defaults for new connections.
    pub tcp: Config,
    /// What to do with TCP segments whose checksum was left unfinished.
    pub rx_checksum: RxChecksum,
}

/// Received TCP segments with an unfinished checksum (only the
/// pseudo-header sum in the field: a sender on this host with transmit
/// checksum offload, through a veth that does not finish it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxChecksum {
    /// Drop them as corrupt, like any other bad checksum.
    Verify,
    /// Accept them: they come from a local stack over a virtual device,
    /// with no wire on which bits could flip (the Linux receiver trusts
    /// them too). Every other checksum is still verified.
    TrustPartial,
    /// TrustPartial on veth interfaces, Verify on everything else; the
    /// runtime decides from the interface's driver. An `Interface` given
    /// Auto directly verifies.
    #[default]
    Auto,
}

impl std::str::FromStr for RxChecksum {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "verify" => Ok(RxChecksum::Verify),
            "trust-partial" => Ok(RxChecksum::TrustPartial),
            "auto" => Ok(RxChecksum::Auto),
            _ => Err(format!(
                "rx checksum '{s}': use verify, trust-partial or auto"
            )),
        }
    }
}

enum Control {
    ArpRequest(Ipv4Addr),
    ArpReply {
        mac: MacAddr,
        ip: Ipv4Addr,
    },
    EchoReply {
        mac: MacAddr,
        ip: Ipv4Addr,
        ident: u16,
        seq: u16,
        data: Vec<u8>,
    },
    /// An ICMPv6 message from our address `src` (a neighbour
    /// solicitation or advertisement, an echo reply).
    Icmpv6 {
        mac: MacAddr,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        msg: Icmpv6Out,
    },
    /// A TCP segment without payload that no connection sends: a reset,
    /// a SYN-ACK whose sequence number is a SYN cookie, a TIME-WAIT
    /// record's ACK.
    Tcp {
        mac: MacAddr,
        tuple: Tuple,
        t: Transmit,
    },
}

enum Icmpv6Out {
    NeighborSolicit { target: Ipv6Addr },
    NeighborAdvert { target: Ipv6Addr, flags: u8 },
    EchoReply { ident: u16, seq: u16, data: Vec<u8> },
}

pub struct Interface {
    cfg: IfaceConfig,
    /// Our IPv6 addresses with their prefix lengths (`add_ipv6`), and
    /// their neighbours.
    ipv6: Vec<(Ipv6Addr, u8)>,
    /// The router for IPv6 destinations off our prefixes, if any.
    gateway6: Option<Ipv6Addr>,
    neighbors6: NeighborCache<Ipv6Addr>,
    isn: IsnGenerator,
    neighbors: NeighborCache,
    tcp: TcpTable,
    control: VecDeque<Control>,
    stats: IfaceStats,
    ip_ident: u16,
    /// RFC 6056's next_ephemeral: attempts so far, added to the offset.
    next_port: u32,
    timers: TimerWheel<Handle>,
    port_filter: Option<PortFilter>,
    limits: Limits,
    /// Fast Open cookies servers gave us (`connect_fast_open`).
    fast_open_cookies: fast_open_cache::FastOpenCache,
    /// The budget of echo replies and neighbour advertisements.
    replies: rate_limit::PerSecond,
}

/// What an interface lets peers make it hold. A connection is refused
/// (a SYN dropped, as Linux does under memory pressure; `connect` fails)
/// when it would pass either bound, and `IfaceStats::tcp_refused_limits`
/// counts it. Autotuning's growth is bounded apart, by
/// `Config::buffer_budget`. TIME-WAIT holds no buffers and does not count
/// as a connection; past `max_time_wait` records the oldest is recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    /// Send and receive buffer capacity over all connections.
    pub max_buffer_bytes: usize,
    /// TIME-WAIT records kept (Linux: `tcp_max_tw_buckets`).
    pub max_time_wait: usize,
}

impl Default for Limits {
    /// 65,536 open connections and 4 GiB of buffers: 8,192 connections
    /// at the default 256 KiB each way; more with smaller buffers. 65,536
    /// TIME-WAIT records, about 6 MiB.
    fn default() -> Self {
        Limits {
            max_connections: 65_536,
            max_buffer_bytes: 4 << 30,
            max_time_wait: 65_536,
        }
    }
}

type PortFilter = Box<dyn Fn(SocketAddr, SocketAddr) -> bool + Send>;

/// The MSS a device of this MTU carries: less 40 bytes of IPv4 and TCP
/// headers, within what TCP can name (at least 536, RFC 9293 3.7.1).
pub fn mss_for_mtu(mtu: usize) -> u16 {
    mtu.saturating_sub(40).clamp(536, 65_495) as u16
}

/// The same over IPv6: 60 bytes of headers (RFC 8200 8.3), at least
/// 1220 (what the minimum MTU of 1280 leaves).
pub fn mss_for_mtu_v6(mtu: usize) -> u16 {
    mtu.saturating_sub(60).clamp(1220, 65_475) as u16
}

impl Interface {
    pub fn new(cfg: IfaceConfig) -> Self {
        Interface {
            isn: IsnGenerator::new(cfg.isn_secret),
            cfg,
            neighbors: NeighborCache::default(),
            ipv6: Vec::new(),
            gateway6: None,
            neighbors6: NeighborCache::default(),
            tcp: TcpTable::default(),
            control: VecDeque::new(),
            stats: IfaceStats::default(),
            ip_ident: 0,
            next_port: 0,
            timers: TimerWheel::default(),
            port_filter: None,
            limits: Limits::default(),
            fast_open_cookies: Default::default(),
            replies: rate_limit::PerSecond::new(MAX_REPLIES_PER_SEC),
        }
    }

    pub fn config(&self) -> &IfaceConfig {
        &self.cfg
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.cfg.ip
    }
    pub fn mac(&self) -> MacAddr {
        self.cfg.mac
    }
    pub fn stats(&self) -> &IfaceStats {
        &self.stats
    }
    pub fn connection_count(&self) -> usize {
        self.tcp.len()
    }

    /// TIME-WAIT records kept (connections done with but for TIME-WAIT).
    pub fn time_wait_count(&self) -> usize {
        self.tcp.time_waits.len()
    }

    /// Heap bytes the connection table holds: the connections (buffers
    /// included), the slab and maps that find them, the TIME-WAIT records.
    pub fn table_memory(&self) -> usize {
        self.tcp.memory()
    }

    /// Moves into `out` the connections that segments, timers or the
    /// network changed since the last call: an application layer that
    /// keeps its own list of what it still waits for visits only these,
    /// not every connection every loop.
    pub fn take_activity(&mut self, out: &mut Vec<Handle>) {
        self.tcp.tracking = true;
        for h in self.tcp.activity.drain(..) {
            if let Some(e) = self.tcp.slots.get_mut(h.0).and_then(Option::as_mut) {
                e.active = false;
                out.push(h);
            }
        }
    }

    /// Entries in the timer wheel (stale ones included until they expire).
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Bounds what peers can make this interface hold; see [`Limits`].
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Buffer bytes the connections hold now, and how many are open (not
    /// in TIME-WAIT): what [`Limits`] bounds.
    pub fn usage(&self) -> (usize, usize) {
        (self.tcp.buffer_bytes, self.tcp.active())
    }

    /// Room for one more connection with `cfg`'s buffers? Counted when not.
    fn admits(&mut self, cfg: &Config) -> bool {
        let bytes = cfg.send_buffer + cfg.recv_buffer;
        let ok = self.tcp.active() < self.limits.max_connections
            && self.tcp.buffer_bytes + bytes <= self.limits.max_buffer_bytes;
        if !ok {
            self.stats.tcp_refused_limits += 1;
        }
        ok
    }

    // ---- the socket calls ------------------------------------------------

    pub fn listen(
        &mut self,
        port: u16,
        cfg: Option<Config>,
        max_backlog: usize,
    ) -> Result<(), IfaceError> {
        if self.tcp.listeners.contains_key(&port) {
            return Err(IfaceError::AddrInUse(port));
        }
        let cfg = cfg.unwrap_or_else(|| self.cfg.tcp.clone());
        self.tcp.listeners.insert(
            port,
            Listener {
                cfg,
                backlog: VecDeque::new(),
                max_backlog,
                cookie_sent_at: None,
            },
        );
        Ok(())
    }

    /// New settings for the connections a listener makes from now on (a
    /// socket option set after listen(2), such as TCP_MAXSEG).
    pub fn set_listener_config(&mut self, port: u16, cfg: Config) -> Result<(), IfaceError> {
        let l = self
            .tcp
            .listeners
            .get_mut(&port)
            .ok_or(IfaceError::NotListening(port))?;
        l.cfg = cfg;
        Ok(())
    }

    pub fn unlisten(&mut self, port: u16) {
        if let Some(l) = self.tcp.listeners.remove(&port) {
            for h in l.backlog {
                if let Some(e) = self.tcp.touch(h) {
                    e.conn.abort();
                    e.released = true;
                }
            }
        }
    }

    /// A connection from the listener's backlog whose handshake is done (or
    /// a Fast Open child), if any; it may have been reset since.
    pub fn accept(&mut self, port: u16) -> Result<Option<Handle>, IfaceError> {
        let l = self
            .tcp
            .listeners
            .get(&port)
            .ok_or(IfaceError::NotListening(port))?;
        let ready = l
            .backlog
            .iter()
            .position(|h| self.tcp.get(*h).is_some_and(|e| e.conn.is_acceptable()));
        let Some(i) = ready else { return Ok(None) };
        let l = self.tcp.listeners.get_mut(&port).expect("checked");
        let h = l.backlog.remove(i).expect("index from position");
        if let Some(e) = self.tcp.get_mut(h) {
            e.in_backlog = false;
        }
        Ok(Some(h))
    }

    /// Opens a connection to `remote` (either family) from our address
    /// of that family (`source_for`).
    pub fn connect(
        &mut self,
        remote: impl Into<SocketAddr>,
        cfg: Option<Config>,
        now: Instant,
    ) -> Result<Handle, IfaceError> {
        let remote = remote.into();
        let local = self.source_for(remote.ip());
        let Some(local) = local.filter(|_| self.next_hop(remote.ip()).is_some()) else {
            return Err(IfaceError::NoRoute(remote.ip()));
        };
        let cfg = cfg.unwrap_or_else(|| self.cfg.tcp.clone());
        if !self.admits(&cfg) {
            return Err(IfaceError::Limit(self.tcp.active(), self.tcp.buffer_bytes));
        }
        let port = self.ephemeral_port(local, remote)?;
        let tuple = Tuple {
            local_ip: local,
            local_port: port,
            remote_ip: remote.ip(),
            remote_port: remote.port(),
        };
        let iss = self
            .isn
            .isn((local, port), (tuple.remote_ip, tuple.remote_port), now);
        let mut conn = Connection::connect(cfg, iss);
        self.fit_to_tuple(&mut conn, &tuple);
        Ok(self.insert_conn(tuple, conn, false))
    }

    /// Files a new connection in the table, with its flow label.
    fn insert_conn(&mut self, tuple: Tuple, conn: Connection, in_backlog: bool) -> Handle {
        let flow_label = self.flow_label(&tuple);
        let h = self.tcp.insert(tuple, conn, in_backlog);
        self.tcp.get_mut(h).expect("just inserted").flow_label = flow_label;
        h
    }

    /// IPv6's flow label for `tuple`'s packets; IPv4 has none.
    fn flow_label(&self, tuple: &Tuple) -> u32 {
        match tuple.remote_ip {
            IpAddr::V4(_) => 0,
            IpAddr::V6(_) => self.isn.flow_label(
                (tuple.local_ip, tuple.local_port),
                (tuple.remote_ip, tuple.remote_port),
            ),
        }
    }

    /// What a new connection takes from its addresses: our keyed
    /// timestamp offset towards the peer, and its IP header's size.
    fn fit_to_tuple(&self, conn: &mut Connection, tuple: &Tuple) {
        conn.set_ts_offset(self.isn.ts_offset(tuple.local_ip, tuple.remote_ip));
        if tuple.remote_ip.is_ipv6() {
            conn.set_ipv6();
        }
    }

    /// Opens a connection with TCP Fast Open (RFC 7413): with a cookie
    /// cached for this server, the SYN carries it and as much of `data` as
    /// fits a SYN (the server's cached MSS, less 40 bytes kept for
    /// options, as Linux); without one, the SYN asks for a cookie and no
    /// data is taken (send it once connected), unless
    /// `Config::fast_open_client_without_cookie` sends it bare. Returns the handle and how
    /// many bytes of `data` the SYN carries. A server that ignores Fast
    /// Open acknowledges only the SYN; the data then follows at once.
    pub fn connect_fast_open(
        &mut self,
        remote: impl Into<SocketAddr>,
        cfg: Option<Config>,
        data: &[u8],
        now: Instant,
    ) -> Result<(Handle, usize), IfaceError> {
        let remote = remote.into();
        let cfg = cfg.unwrap_or_else(|| self.cfg.tcp.clone());
        let ours = u32::from(cfg.mss);
        let without_cookie = cfg.fast_open_client_without_cookie;
        let h = self.connect(remote, Some(cfg), now)?;
        let cached = self.fast_open_cookies.get(remote.ip());
        let conn = &mut self.tcp.get_mut(h).expect("just inserted").conn;
        // The SYN's room: the server's cached MSS (or ours), less 40 bytes
        // kept for options, as Linux.
        let mss = cached.and_then(|c| c.mss).map_or(ours, u32::from).min(ours);
        let room = mss.saturating_sub(40);
        let taken = match cached {
            _ if without_cookie => {
                conn.fast_open_client_without_cookie(room);
                conn.send(&data[..data.len().min(room as usize)])
                    .unwrap_or(0)
            }
            Some(CachedCookie {
                cookie: Some(cookie),
                ..
            }) => {
                conn.fast_open_client(Some(cookie), room);
                conn.send(&data[..data.len().min(room as usize)])
                    .unwrap_or(0)
            }
            _ => {
                // A request, in the form this server may answer.
                let experimental = cached.is_some_and(|c| c.ask == AskWith::Experimental);
                conn.fast_open_client(Some(FastOpen::request(experimental)), 0);
                0
            }
        };
        Ok((h, taken))
    }

    /// Whether a Fast Open cookie from `server` is cached (a connection to
    /// it may then send data on its SYN).
    pub fn fast_open_cookie_cached(&self, server: IpAddr) -> bool {
        matches!(
            self.fast_open_cookies.get(server),
            Some(CachedCookie {
                cookie: Some(_),
                ..
            })
        )
    }

    /// Forgets the Fast Open cookies servers gave (Linux: flushing
    /// `ip tcp_metrics`).
    pub fn forget_fast_open_cookies(&mut self) {
        self.fast_open_cookies.clear();
    }

    /// RFC 6056 algorithm 3: the search starts at a keyed hash of the
    /// remote end plus a counter, so a peer cannot predict the ports we
    /// use towards others, while ports towards one peer still cycle
    /// through the whole range before reuse.
    fn ephemeral_port(&mut self, local: IpAddr, remote: SocketAddr) -> Result<u16, IfaceError> {
        let range = u32::from(u16::MAX - FIRST_EPHEMERAL) + 1;
        let offset = self.isn.port_offset(local, (remote.ip(), remote.port()));
        for _ in 0..range {
            let p = FIRST_EPHEMERAL + (offset.wrapping_add(self.next_port) % range) as u16;
            self.next_port = self.next_port.wrapping_add(1);
            let t = Tuple {
                local_ip: local,
                local_port: p,
                remote_ip: remote.ip(),
                remote_port: remote.port(),
            };
            let local = SocketAddr::new(local, p);
            let owned = self.port_filter.as_ref().is_none_or(|f| f(local, remote));
            if owned
                && !self.tcp.listeners.contains_key(&p)
                && self.tcp.find(&t).is_none()
                && !self.tcp.time_waits.contains(&t)
            {
                return Ok(p);
            }
        }
        Err(IfaceError::NoFreePorts)
    }

    pub fn tcp(&mut self, h: Handle) -> Option<&mut Connection> {
        self.tcp.touch(h).map(|e| &mut *e.conn)
    }

    /// A connection, read only (does not reschedule its timers).
    pub fn tcp_ref(&self, h: Handle) -> Option<&Connection> {
        self.tcp.get(h).map(|e| &*e.conn)
    }

    pub fn tuple(&self, h: Handle) -> Option<Tuple> {
        self.tcp.get(h).map(|e| e.tuple)
    }

    /// The user is done with `h`: it is removed once it reaches CLOSED
    /// (after TIME-WAIT, if it passes through it).
    pub fn release(&mut self, h: Handle) {
        if let Some(e) = self.tcp.touch(h) {
            e.released = true;
            e.conn.orphan();
        }
    }

    // ---- the poll loop ---------------------------------------------------

    /// Receives what the device has, runs due timers, sends what is ready.
    /// Returns true if any frame moved.
    pub fn poll(&mut self, now: Instant, dev: &mut dyn Device) -> bool {
        let received = self.receive(now, dev);
        self.run_timers(now);
        let sent = self.transmit(now, dev);
        received || sent
    }

    /// The receive phase of `poll`: the frames the device has, up to
    /// `RX_BUDGET`, each to completion.
    pub fn receive(&mut self, now: Instant, dev: &mut dyn Device) -> bool {
        let mut taken = 0;
        while taken < RX_BUDGET {
            let n = dev.receive_lent(now, BATCH, &mut |frame| self.ingress(frame, now));
            taken += n;
            if n < BATCH {
                break;
            }
        }
        taken > 0
    }

    /// The transmit phase of `poll`: control replies, then the connections'
    /// segments, built in place in the device's buffers.
    pub fn transmit(&mut self, now: Instant, dev: &mut dyn Device) -> bool {
        let mut moved = false;
        let mtu = dev.mtu();
        loop {
            let n = dev.transmit(now, BATCH, &mut |buf| self.egress_one(buf, mtu, now));
            self.stats.tx_frames += n as u64;
            moved |= n > 0;
            if n < BATCH {
                break;
            }
        }
        self.sync_timers();
        self.stats.tcp_time_wait_recycled += self.tcp.reap(self.limits.max_time_wait);
        moved
    }

    /// Restricts active opens to local ports for which `owns(local,
    /// remote)` holds: the runtime picks ports whose replies hash to this
    /// core.
    pub fn set_port_filter(
        &mut self,
        owns: impl Fn(SocketAddr, SocketAddr) -> bool + Send + 'static,
    ) {
        self.port_filter = Some(Box::new(owns));
    }

    /// Handles of all connections, for statistics.
    pub fn handles(&self) -> Vec<Handle> {
        (0..self.tcp.slots.len())
            .filter(|&i| self.tcp.slots[i].is_some())
            .map(Handle)
            .collect()
    }

    /// The next instant at which `poll` has timer work to do (possibly a
    /// little early: the wheel answers with the start of a slot).
    pub fn poll_at(&self) -> Option<Instant> {
        let mut at = self.timers.next_deadline();
        // Connections touched by the application since the last poll.
        for &h in &self.tcp.dirty {
            let t = self.tcp.get(h).and_then(|e| e.conn.poll_timeout());
            at = earliest(at, t.map(TimerWheel::<Handle>::fires_at));
        }
        let at = earliest(at, self.tcp.time_waits.next_deadline());
        let at = earliest(at, self.neighbors6.next_request_at());
        earliest(at, self.neighbors.next_request_at())
    }

    /// Files the deadlines of touched connections in the wheel. A deadline
    /// that moved later keeps its old entry, which re-files itself when it
    /// comes up: an RTO restarted by every ACK costs nothing per ACK.
    #[inline]
    fn sync_timers(&mut self) {
        // Most calls find nothing touched (a spinning core polls far more
        // often than anything happens): a check, not a call.
        if !self.tcp.dirty.is_empty() {
            self.sync_dirty_timers();
        }
    }

    fn sync_dirty_timers(&mut self) {
        // Emptied in place, keeping its capacity.
        let mut dirty = std::mem::take(&mut self.tcp.dirty);
        for h in dirty.drain(..) {
            self.tcp.reap_candidates.push(h);
            self.tcp.account(h);
            // Over the memory limit: out-of-order data is what can go
            // without losing anything (the sender still has it).
            if self.tcp.buffer_bytes > self.limits.max_buffer_bytes {
                let pruned = self
                    .tcp
                    .get_mut(h)
                    .map_or(0, |e| e.conn.prune_out_of_order());
                if pruned > 0 {
                    self.stats.tcp_ooo_pruned += 1;
                    self.tcp.account(h);
                }
            }
            let Some(e) = self.tcp.get_mut(h) else {
                continue;
            };
            e.dirty = false;
            if e.released && e.conn.time_wait_record().is_some() {
                // It becomes a TIME-WAIT record once its last ACK is out
                // (`reap`), and the record keeps the deadline: an entry in
                // the wheel would only go stale.
                continue;
            }
            let Some(t) = e.conn.poll_timeout() else {
                continue;
            };
            if e.timer.is_none_or(|old| t < old) {
                e.timer = Some(t);
                self.timers.insert(t, h);
            }
        }
        dirty.append(&mut self.tcp.dirty);
        self.tcp.dirty = dirty;
    }

    /// The timer phase of `poll`: fires what the wheel says is due.
    pub fn run_timers(&mut self, now: Instant) {
        self.tcp.time_waits.expire(now);
        self.sync_timers();
        let tcp = &mut self.tcp;
        self.timers.advance(now, |deadline, h| {
            // Entries that no longer match the connection's are stale.
            if tcp.get(h).is_none_or(|e| e.timer != Some(deadline)) {
                return;
            }
            let e = tcp.touch(h).expect("checked");
            e.timer = None;
            if e.conn.poll_timeout().is_some_and(|t| t <= now) {
                e.conn.handle_timeout(now);
                tcp.note_activity(h);
            }
        });
        self.sync_timers();
    }
}
