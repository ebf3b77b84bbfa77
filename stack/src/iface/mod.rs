//! The interface: one IPv4 address on one Ethernet device. It answers ARP
//! and ICMP echo, hands TCP segments to their connections (or to a
//! listener, or answers with RST), runs the connections' timers and builds
//! their outgoing frames in place in the device's transmit buffers.
//!
//! `poll` has two phases so that receiving never needs a transmit buffer:
//! ingress only updates state and queues small control replies; egress
//! then drains those replies and the connections into the device.

pub mod fast_open_cache;
pub mod neighbor;
pub mod stats;
pub mod syn_cookie;
pub mod tcp_table;
mod time_waits;

use crate::device::{Device, RxFrame};
use crate::tcp::isn::IsnGenerator;
use crate::tcp::time_wait::TimeWaitReply;
use crate::tcp::{reset, Config, Connection, SeqNum, Transmit};
use crate::time::wheel::TimerWheel;
use crate::time::{earliest, Instant};
use crate::wire::arp::{ArpOp, ArpPacket};
use crate::wire::ethernet::{self, EthernetFrame, MacAddr};
use crate::wire::icmp::{self, IcmpEcho};
use crate::wire::ipv4::{self, Ipv4Header, Ipv4Packet};
use crate::wire::tcp::{self as tcpwire, FastOpen, Flags, TcpHeader, TcpSegment};
use crate::wire::WireError;
use fast_open_cache::{AskWith, CachedCookie};
use neighbor::{NeighborCache, Resolution};
pub use stats::IfaceStats;
use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
pub use tcp_table::{Handle, Tuple};

use tcp_table::{Listener, TcpTable};

/// Control replies waiting for a transmit buffer, bounded.
const MAX_CONTROL: usize = 64;
/// Frames handled per device call.
const BATCH: usize = 64;
/// Frames one receive phase takes at most before the transmit phase runs
/// (as NAPI's budget): ACKs are sent once per phase, so this bounds how
/// much one stretch ACK covers when frames arrive as fast as we take them.
pub const RX_BUDGET: usize = 4 * BATCH;
const FIRST_EPHEMERAL: u16 = 49_152;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfaceError {
    AddrInUse(u16),
    NoFreePorts,
    NoRoute(Ipv4Addr),
    NotListening(u16),
    BadHandle,
    /// `Limits` reached: (open connections, buffer bytes held).
    Limit(usize, usize),
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
    /// A TCP segment without payload that no connection sends: a reset,
    /// a SYN-ACK whose sequence number is a SYN cookie, a TIME-WAIT
    /// record's ACK.
    Tcp {
        mac: MacAddr,
        tuple: Tuple,
        t: Transmit,
    },
}

pub struct Interface {
    cfg: IfaceConfig,
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

type PortFilter = Box<dyn Fn(u16, SocketAddrV4) -> bool + Send>;

/// The MSS a device of this MTU carries: less 40 bytes of IPv4 and TCP
/// headers, within what TCP can name (at least 536, RFC 9293 3.7.1).
pub fn mss_for_mtu(mtu: usize) -> u16 {
    mtu.saturating_sub(40).clamp(536, 65_495) as u16
}

impl Interface {
    pub fn new(cfg: IfaceConfig) -> Self {
        Interface {
            isn: IsnGenerator::new(cfg.isn_secret),
            cfg,
            neighbors: NeighborCache::default(),
            tcp: TcpTable::default(),
            control: VecDeque::new(),
            stats: IfaceStats::default(),
            ip_ident: 0,
            next_port: 0,
            timers: TimerWheel::default(),
            port_filter: None,
            limits: Limits::default(),
            fast_open_cookies: Default::default(),
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

    pub fn connect(
        &mut self,
        remote: SocketAddrV4,
        cfg: Option<Config>,
        now: Instant,
    ) -> Result<Handle, IfaceError> {
        if self.next_hop(*remote.ip()).is_none() {
            return Err(IfaceError::NoRoute(*remote.ip()));
        }
        let cfg = cfg.unwrap_or_else(|| self.cfg.tcp.clone());
        if !self.admits(&cfg) {
            return Err(IfaceError::Limit(self.tcp.active(), self.tcp.buffer_bytes));
        }
        let port = self.ephemeral_port(remote)?;
        let tuple = Tuple {
            local_port: port,
            remote_ip: *remote.ip(),
            remote_port: remote.port(),
        };
        let iss = self.isn.isn(
            (self.cfg.ip, port),
            (tuple.remote_ip, tuple.remote_port),
            now,
        );
        let mut conn = Connection::connect(cfg, iss);
        conn.set_ts_offset(self.isn.ts_offset(self.cfg.ip, tuple.remote_ip));
        Ok(self.tcp.insert(tuple, conn, false))
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
        remote: SocketAddrV4,
        cfg: Option<Config>,
        data: &[u8],
        now: Instant,
    ) -> Result<(Handle, usize), IfaceError> {
        let cfg = cfg.unwrap_or_else(|| self.cfg.tcp.clone());
        let ours = u32::from(cfg.mss);
        let without_cookie = cfg.fast_open_client_without_cookie;
        let h = self.connect(remote, Some(cfg), now)?;
        let cached = self.fast_open_cookies.get(*remote.ip());
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
    pub fn fast_open_cookie_cached(&self, server: std::net::Ipv4Addr) -> bool {
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
    fn ephemeral_port(&mut self, remote: SocketAddrV4) -> Result<u16, IfaceError> {
        let range = u32::from(u16::MAX - FIRST_EPHEMERAL) + 1;
        let offset = self
            .isn
            .port_offset(self.cfg.ip, (*remote.ip(), remote.port()));
        for _ in 0..range {
            let p = FIRST_EPHEMERAL + (offset.wrapping_add(self.next_port) % range) as u16;
            self.next_port = self.next_port.wrapping_add(1);
            let t = Tuple {
                local_port: p,
                remote_ip: *remote.ip(),
                remote_port: remote.port(),
            };
            let owned = self.port_filter.as_ref().is_none_or(|f| f(p, remote));
            if owned
                && !self.tcp.listeners.contains_key(&p)
                && !self.tcp.by_tuple.contains_key(&t)
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

    /// Restricts active opens to local ports for which `owns(port, remote)`
    /// holds: the runtime picks ports whose replies hash to this core.
    pub fn set_port_filter(&mut self, owns: impl Fn(u16, SocketAddrV4) -> bool + Send + 'static) {
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
        earliest(at, self.neighbors.next_request_at())
    }

    /// Files the deadlines of touched connections in the wheel. A deadline
    /// that moved later keeps its old entry, which re-files itself when it
    /// comes up: an RTO restarted by every ACK costs nothing per ACK.
    fn sync_timers(&mut self) {
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

    // ---- ingress ---------------------------------------------------------

    fn ingress(&mut self, frame: &RxFrame<'_>, now: Instant) {
        self.stats.rx_frames += 1;
        let eth = match EthernetFrame::parse(frame.bytes()) {
            Ok(e) => e,
            Err(e) => return self.count_error(e),
        };
        if eth.dst != self.cfg.mac && !eth.dst.is_broadcast() {
            self.stats.rx_not_for_us += 1;
            return;
        }
        match eth.ethertype {
            ethernet::ETHERTYPE_ARP => self.ingress_arp(eth.payload, now),
            ethernet::ETHERTYPE_IPV4 => self.ingress_ipv4(eth.src, eth.payload, frame, now),
            _ => self.stats.rx_unsupported += 1,
        }
    }

    fn count_error(&mut self, e: WireError) {
        match e {
            WireError::BadChecksum => self.stats.rx_bad_checksum += 1,
            WireError::Unsupported => self.stats.rx_unsupported += 1,
            _ => self.stats.rx_malformed += 1,
        }
    }

    fn push_control(&mut self, c: Control) {
        if self.control.len() >= MAX_CONTROL {
            self.stats.control_queue_full += 1;
            return;
        }
        self.control.push_back(c);
    }

    fn ingress_arp(&mut self, payload: &[u8], now: Instant) {
        let arp = match ArpPacket::parse(payload) {
            Ok(a) => a,
            Err(e) => return self.count_error(e),
        };
        if arp.target_ip != self.cfg.ip {
            self.stats.rx_not_for_us += 1;
            return;
        }
        // RFC 826: the sender's mapping is learned before the opcode is looked at.
        self.neighbors.learn(arp.sender_ip, arp.sender_mac, now);
        self.stats.arp_limited = self.neighbors.limited;
        if arp.op == ArpOp::Request {
            self.stats.arp_requests_answered += 1;
            self.push_control(Control::ArpReply {
                mac: arp.sender_mac,
                ip: arp.sender_ip,
            });
        }
    }

    fn ingress_ipv4(
        &mut self,
        src_mac: MacAddr,
        payload: &[u8],
        frame: &RxFrame<'_>,
        now: Instant,
    ) {
        let ip = match Ipv4Packet::parse(payload) {
            Ok(p) => p,
            Err(e) => return self.count_error(e),
        };
        if ip.dst != self.cfg.ip {
            self.stats.rx_not_for_us += 1;
            return;
        }
        if ip.is_fragment {
            self.stats.rx_fragments_dropped += 1;
            return;
        }
        match ip.protocol {
            ipv4::PROTO_ICMP if ip.payload.first() == Some(&icmp::DEST_UNREACHABLE) => {
                match icmp::FragNeeded::parse(ip.payload) {
                    Ok(f) => self.ingress_frag_needed(&f, now),
                    Err(e) => self.count_error(e),
                }
            }
            ipv4::PROTO_ICMP => match IcmpEcho::parse(ip.payload) {
                Ok(echo) if echo.kind == icmp::ECHO_REQUEST => {
                    self.stats.icmp_echo_answered += 1;
                    let data = echo.data.to_vec();
                    self.push_control(Control::EchoReply {
                        mac: src_mac,
                        ip: ip.src,
                        ident: echo.ident,
                        seq: echo.seq,
                        data,
                    });
                }
                Ok(_) => self.stats.rx_unsupported += 1,
                Err(e) => self.count_error(e),
            },
            ipv4::PROTO_TCP => match TcpSegment::parse(ip.payload, Some((ip.src, ip.dst))) {
                Ok(mut seg) => {
                    seg.lent = Some(frame);
                    self.ingress_tcp(src_mac, ip.src, &seg, ip.ecn == CE, now)
                }
                Err(WireError::BadChecksum)
                    if tcpwire::is_partial_checksum(ip.payload, ip.src, ip.dst) =>
                {
                    self.stats.rx_partial_checksum += 1;
                    self.stats.partial_checksum_from = Some(ip.src);
                    if self.cfg.rx_checksum != RxChecksum::TrustPartial {
                        return;
                    }
                    match TcpSegment::parse(ip.payload, None) {
                        Ok(mut seg) => {
                            seg.lent = Some(frame);
                            self.ingress_tcp(src_mac, ip.src, &seg, ip.ecn == CE, now)
                        }
                        Err(e) => self.count_error(e),
                    }
                }
                Err(e) => self.count_error(e),
            },
            _ => self.stats.rx_unsupported += 1,
        }
    }

    /// Path MTU discovery (RFC 1191): a router on the way to a peer cannot
    /// forward our segments that large. The quoted segment names the
    /// connection, and its sequence number must be one in flight (RFC
    /// 5927), so a forged message cannot shrink a connection blindly.
    fn ingress_frag_needed(&mut self, f: &icmp::FragNeeded, now: Instant) {
        self.stats.icmp_frag_needed += 1;
        if f.src != self.cfg.ip {
            return;
        }
        let tuple = Tuple {
            local_port: f.src_port,
            remote_ip: f.dst,
            remote_port: f.dst_port,
        };
        let Some(&h) = self.tcp.by_tuple.get(&tuple) else {
            return;
        };
        if let Some(e) = self.tcp.touch(h) {
            if !e.conn.on_path_mtu(f.mtu, SeqNum(f.seq), now) {
                self.stats.icmp_frag_needed_ignored += 1;
            }
        }
    }

    /// `ce`: the IP header said congestion experienced (ECN).
    fn ingress_tcp(
        &mut self,
        src_mac: MacAddr,
        src: Ipv4Addr,
        seg: &TcpSegment<'_>,
        ce: bool,
        now: Instant,
    ) {
        self.stats.tcp_segments_in += 1;
        self.stats.tcp_data_segments_in += u64::from(!seg.payload.is_empty());
        let tuple = Tuple {
            local_port: seg.dst_port,
            remote_ip: src,
            remote_port: seg.src_port,
        };
        if let Some(&h) = self.tcp.by_tuple.get(&tuple) {
            let reincarnation = self
                .tcp
                .get(h)
                .is_some_and(|e| e.released && e.conn.accepts_new_incarnation(seg));
            if reincarnation {
                // RFC 6191: a SYN that is clearly newer than anything of
                // the old connection opens a new one on the same 4-tuple
                // at once, instead of waiting out TIME-WAIT (a Linux
                // client would answer our ACK with RST and stall).
                self.stats.tcp_time_wait_reused += 1;
                self.tcp.remove(h);
            } else if let Some(e) = self.tcp.touch(h) {
                if ce {
                    e.conn.note_congestion_experienced();
                }
                e.conn.on_segment(seg, now);
                if seg.flags.syn() {
                    if let Some((cookie, mss)) = e.conn.take_fast_open_cookie() {
                        let asked = e.conn.fast_open_asked();
                        self.fast_open_cookies.learn(src, cookie, mss, asked);
                    }
                }
                self.tcp.note_activity(h);
                return;
            }
        }
        match self.tcp.time_waits.on_segment(tuple, seg, now) {
            None => {}
            Some(TimeWaitReply::Nothing) => return,
            Some(TimeWaitReply::Ack(t)) => {
                return self.push_control(Control::Tcp {
                    mac: src_mac,
                    tuple,
                    t,
                })
            }
            // As for a connection in TIME-WAIT above: the SYN goes on to
            // the listener.
            Some(TimeWaitReply::NewIncarnation) => self.stats.tcp_time_wait_reused += 1,
        }
        let is_syn = seg.flags.syn() && !seg.flags.ack() && !seg.flags.rst();
        if let (true, Some(l)) = (is_syn, self.tcp.listeners.get(&seg.dst_port)) {
            let cfg = l.cfg.clone();
            if !self.admits(&cfg) {
                return;
            }
            let l = &self.tcp.listeners[&seg.dst_port];
            if l.backlog.len() >= l.max_backlog {
                // Full of half-open connections (a flood, most likely):
                // answer without keeping state.
                self.send_cookie(src_mac, src, tuple, seg, now);
                return;
            }
            let iss = self.isn.isn(
                (self.cfg.ip, tuple.local_port),
                (src, tuple.remote_port),
                now,
            );
            let key = cfg.fast_open_key;
            let no_cookie = key.is_some() && cfg.fast_open_without_cookie;
            let mut conn = self.passive_conn(cfg, iss, src);
            if no_cookie && !seg.payload.is_empty() {
                // No cookie needed: the data is taken, none is offered.
                conn.accept_fast_open();
            } else if let (Some(key), Some(asked)) = (key, seg.options.fast_open) {
                let valid = crate::tcp::fast_open::cookie(&key, src, self.cfg.ip);
                if asked.cookie() == Some(&valid[..]) {
                    conn.accept_fast_open();
                } else {
                    // A request, or a stale or forged cookie: the data
                    // waits for the handshake; the client gets a cookie.
                    let reply = FastOpen::with_cookie(&valid, asked.experimental);
                    conn.offer_fast_open_cookie(reply);
                }
            }
            conn.on_segment(seg, now);
            self.file_in_backlog(tuple, conn);
            return;
        }
        let is_ack = seg.flags.ack() && !seg.flags.syn() && !seg.flags.rst();
        if is_ack
            && self.tcp.listeners.contains_key(&seg.dst_port)
            && self.accept_cookie(src, tuple, seg, now)
        {
            return;
        }
        if let Some((seq, ack, flags)) = reset::reply_to_unexpected(seg) {
            self.stats.tcp_resets_sent += 1;
            self.push_control(Control::Tcp {
                mac: src_mac,
                tuple,
                t: Transmit::bare(seq, ack, flags),
            });
        }
    }

    fn cookie_ends(&self, src: Ipv4Addr, tuple: &Tuple) -> syn_cookie::Ends {
        ((self.cfg.ip, tuple.local_port), (src, tuple.remote_port))
    }

    /// Answers a SYN with a SYN cookie (`syn_cookie.rs`).
    fn send_cookie(
        &mut self,
        mac: MacAddr,
        src: Ipv4Addr,
        tuple: Tuple,
        seg: &TcpSegment<'_>,
        now: Instant,
    ) {
        let Some(l) = self.tcp.listeners.get_mut(&seg.dst_port) else {
            return;
        };
        l.cookie_sent_at = Some(now);
        let cfg = &l.cfg;
        let window = cfg.recv_buffer.min(65_535) as u16;
        let mut options = crate::wire::tcp::TcpOptions {
            mss: Some(cfg.mss),
            ..Default::default()
        };
        // Window scaling and SACK only where the timestamp can carry them.
        if let (true, Some((tsval, _))) = (cfg.timestamps, seg.options.timestamps) {
            let ws = seg.options.window_scale.filter(|_| cfg.window_scaling);
            let sack = cfg.sack && seg.options.sack_permitted;
            let ts_now =
                (now.as_millis() as u32).wrapping_add(self.isn.ts_offset(self.cfg.ip, src));
            options.timestamps = Some((syn_cookie::options_tsval(ts_now, ws, sack), tsval));
            options.window_scale = ws.map(|_| cfg.our_window_shift());
            options.sack_permitted = sack;
        }
        let peer_mss = seg.options.mss.unwrap_or(536);
        let ends = self.cookie_ends(src, &tuple);
        let cookie = syn_cookie::make(&self.isn, ends, seg.seq, peer_mss, now);
        self.stats.tcp_syn_cookies_sent += 1;
        let mut t = Transmit::bare(
            SeqNum(cookie),
            SeqNum(seg.seq.wrapping_add(1)),
            Flags::SYN | Flags::ACK,
        );
        t.window = window;
        t.options = options;
        self.push_control(Control::Tcp { mac, tuple, t });
    }

    /// An ACK to a listener with no connection behind it: if it returns a
    /// valid cookie, the connection is made now, by replaying the SYN the
    /// cookie stands for (with the MSS it kept) and the SYN-ACK already
    /// sent, then this ACK. Returns true if it was taken.
    fn accept_cookie(
        &mut self,
        src: Ipv4Addr,
        tuple: Tuple,
        seg: &TcpSegment<'_>,
        now: Instant,
    ) -> bool {
        let Some(l) = self.tcp.listeners.get(&seg.dst_port) else {
            return false;
        };
        let recent = l
            .cookie_sent_at
            .is_some_and(|t| now.saturating_since(t) <= std::time::Duration::from_secs(3 * 64));
        if !recent {
            return false;
        }
        let (peer_isn, iss) = (seg.seq.wrapping_sub(1), seg.ack.wrapping_sub(1));
        let ends = self.cookie_ends(src, &tuple);
        let Some(mss) = syn_cookie::check(&self.isn, ends, peer_isn, iss, now) else {
            self.stats.tcp_syn_cookies_rejected += 1;
            return false;
        };
        if l.backlog.len() >= 2 * l.max_backlog {
            self.stats.tcp_syn_dropped_backlog_full += 1;
            return true;
        }
        // A cookie made a connection no cheaper than a queued SYN: it
        // counts against the limits the same way (dropped when over).
        let cfg = l.cfg.clone();
        if !self.admits(&cfg) {
            return true;
        }
        // The SYN's other options, from the timestamp our SYN-ACK carried
        // (echoed in this ACK's TSecr); its TSval stands in for the SYN's.
        let (window_scale, sack_permitted, timestamps) = match seg.options.timestamps {
            Some((tsval, tsecr)) if cfg.timestamps => {
                let (ws, sack) = syn_cookie::options_from_tsecr(tsecr);
                (ws, sack, Some((tsval, 0)))
            }
            _ => (None, false, None),
        };
        let mut conn = self.passive_conn(cfg, SeqNum(iss), src);
        let syn = TcpSegment {
            src_port: seg.src_port,
            dst_port: seg.dst_port,
            seq: peer_isn,
            ack: 0,
            flags: Flags::SYN,
            window: seg.window,
            urgent: 0,
            options: crate::wire::tcp::TcpOptions {
                mss: Some(mss),
                window_scale,
                sack_permitted,
                timestamps,
                ..Default::default()
            },
            payload: &[],
            lent: None,
        };
        conn.on_segment(&syn, now);
        // The SYN-ACK this stands for went out already, as the cookie.
        let _ = conn.poll_transmit(now);
        conn.on_segment(seg, now);
        if !conn.state().is_synchronized() {
            self.stats.tcp_syn_cookies_rejected += 1;
            return false;
        }
        self.stats.tcp_syn_cookies_accepted += 1;
        self.file_in_backlog(tuple, conn);
        true
    }

    /// A connection for a listener, from a SYN of `src` (or the cookie
    /// that stands for one), with our keyed timestamp offset.
    fn passive_conn(&self, cfg: Config, iss: SeqNum, src: Ipv4Addr) -> Connection {
        let mut conn = Connection::listen(cfg, iss);
        conn.set_ts_offset(self.isn.ts_offset(self.cfg.ip, src));
        conn
    }

    /// Files a connection a listener spawned in the table and in that
    /// listener's backlog, where `accept` finds it once established.
    fn file_in_backlog(&mut self, tuple: Tuple, conn: Connection) {
        let h = self.tcp.insert(tuple, conn, true);
        if let Some(l) = self.tcp.listeners.get_mut(&tuple.local_port) {
            l.backlog.push_back(h);
        }
    }

    // ---- egress ----------------------------------------------------------

    fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.cfg.prefix_len))
            .unwrap_or(0);
        if u32::from(dst) & mask == u32::from(self.cfg.ip) & mask {
            Some(dst)
        } else {
            self.cfg.gateway
        }
    }

    /// Fills `buf` with the next frame to send, if there is one.
    fn egress_one(&mut self, buf: &mut [u8], mtu: usize, now: Instant) -> Option<usize> {
        if let Some(c) = self.control.pop_front() {
            return self.build_control(buf, c);
        }
        // Each ready connection at most once per call: those waiting for
        // ARP stay queued and are skipped.
        for _ in 0..self.tcp.ready.len() {
            let Some(h) = self.tcp.ready.pop_front() else {
                break;
            };
            let Some(remote_ip) = self.tcp.get(h).map(|e| e.tuple.remote_ip) else {
                continue;
            };
            let Some(hop) = self.next_hop(remote_ip) else {
                self.stats.no_route += 1;
                self.tcp.get_mut(h).expect("present").queued = false;
                continue;
            };
            let resolution = self.neighbors.resolve(hop, now);
            self.stats.arp_limited = self.neighbors.limited;
            let mac = match resolution {
                Resolution::Known(mac) => mac,
                Resolution::Refresh(mac) => {
                    // Send as usual; the request follows in the next frame.
                    self.stats.arp_requests_sent += 1;
                    self.push_control(Control::ArpRequest(hop));
                    mac
                }
                Resolution::Ask => {
                    self.stats.arp_requests_sent += 1;
                    self.tcp.ready.push_back(h);
                    return self.build_control(buf, Control::ArpRequest(hop));
                }
                // Leave the segments in the connection until ARP answers.
                Resolution::Wait => {
                    self.tcp.ready.push_back(h);
                    continue;
                }
                Resolution::Failed => {
                    self.tcp.get_mut(h).expect("present").queued = false;
                    self.neighbor_failed(hop, now);
                    continue;
                }
            };
            let e = self.tcp.get_mut(h).expect("present");
            let Some(mut t) = e.conn.poll_transmit(now) else {
                e.queued = false;
                // Holding data back may have started a timer (a cork's).
                let timer = e.conn.poll_timeout();
                if timer.is_some_and(|t| e.timer.is_none_or(|old| t < old)) {
                    self.tcp.mark_dirty(h);
                }
                let e = self.tcp.get_mut(h).expect("present");
                // Sending made room for a writer that was turned away.
                if e.conn.take_writable_again() {
                    self.tcp.note_activity(h);
                }
                continue;
            };
            if t.payload_len == 0 && t.flags == Flags::ACK {
                self.stats.tcp_bare_acks_out += 1;
            }
            if let Some(m) = &mut t.options.mss {
                // Offer no more than the device can receive.
                *m = (*m).min(mss_for_mtu(mtu));
            }
            let tuple = e.tuple;
            // Stay on a connection while it has data (still queued, so
            // `touch` only marks its timers for a resync).
            self.tcp.ready.push_front(h);
            self.tcp.touch(h);
            let (src_ip, src_mac) = (self.cfg.ip, self.cfg.mac);
            self.ip_ident = self.ip_ident.wrapping_add(1);
            let e = self.tcp.get(h).expect("present");
            let built = build_tcp_frame(
                buf,
                mtu,
                src_mac,
                mac,
                src_ip,
                self.ip_ident,
                &tuple,
                &t,
                e.conn.payload(&t),
            );
            if built.is_ok() {
                return built.ok();
            }
            // A segment the device cannot carry (an MSS configured past its
            // MTU, or a frame buffer smaller than the MTU) is not lost
            // unseen: it is counted, and the connection re-cuts what is in
            // flight to the size that fits, as for a path MTU.
            self.stats.tx_oversize += 1;
            let fits = (mtu + ethernet::HEADER_LEN).min(buf.len());
            let ip_room = (fits - ethernet::HEADER_LEN).min(usize::from(u16::MAX)) as u16;
            let e = self.tcp.get_mut(h).expect("present");
            e.conn.on_path_mtu(ip_room, t.seq, now);
        }
        None
    }

    /// ARP for `hop` went unanswered. Connections still opening fail with
    /// "host unreachable" (as connect(2) does on Linux); the others lose
    /// what they wanted to send, as on a dead wire, so that their own
    /// retransmission timers decide when to give up.
    fn neighbor_failed(&mut self, hop: Ipv4Addr, now: Instant) {
        for i in 0..self.tcp.slots.len() {
            let Some(remote) = self.tcp.slots[i].as_ref().map(|e| e.tuple.remote_ip) else {
                continue;
            };
            if self.next_hop(remote) != Some(hop) {
                continue;
            }
            let e = self.tcp.touch(Handle(i)).expect("present");
            let failed = e.conn.state() == crate::tcp::State::SynSent;
            if failed {
                e.conn.unreachable();
            }
            while e.conn.poll_transmit(now).is_some() {
                self.stats.tx_dropped_unresolved += 1;
            }
            if failed {
                self.tcp.note_activity(Handle(i));
            }
        }
    }

    fn build_control(&mut self, buf: &mut [u8], c: Control) -> Option<usize> {
        let (me_mac, me_ip) = (self.cfg.mac, self.cfg.ip);
        let r = match c {
            Control::ArpRequest(ip) => build_arp(
                buf,
                me_mac,
                MacAddr::BROADCAST,
                ArpOp::Request,
                me_ip,
                MacAddr::ZERO,
                ip,
            ),
            Control::ArpReply { mac, ip } => {
                build_arp(buf, me_mac, mac, ArpOp::Reply, me_ip, mac, ip)
            }
            Control::EchoReply {
                mac,
                ip,
                ident,
                seq,
                data,
            } => {
                self.ip_ident = self.ip_ident.wrapping_add(1);
                let echo = IcmpEcho {
                    kind: icmp::ECHO_REPLY,
                    ident,
                    seq,
                    data: &data,
                };
                build_icmp(buf, me_mac, mac, me_ip, ip, self.ip_ident, &echo)
            }
            Control::Tcp { mac, tuple, t } => self.stateless_tcp(buf, mac, &tuple, &t),
        };
        r.ok()
    }

    /// A TCP segment that belongs to no connection (a reset, a cookie's
    /// SYN-ACK), without payload.
    fn stateless_tcp(
        &mut self,
        buf: &mut [u8],
        mac: MacAddr,
        tuple: &Tuple,
        t: &Transmit,
    ) -> Result<usize, WireError> {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        build_tcp_frame(
            buf,
            usize::MAX,
            self.cfg.mac,
            mac,
            self.cfg.ip,
            self.ip_ident,
            tuple,
            t,
            (&[], &[]),
        )
    }
}

fn build_arp(
    buf: &mut [u8],
    src: MacAddr,
    dst: MacAddr,
    op: ArpOp,
    sip: Ipv4Addr,
    tmac: MacAddr,
    tip: Ipv4Addr,
) -> Result<usize, WireError> {
    ethernet::emit(buf, dst, src, ethernet::ETHERTYPE_ARP)?;
    let arp = ArpPacket {
        op,
        sender_mac: src,
        sender_ip: sip,
        target_mac: tmac,
        target_ip: tip,
    };
    let n = arp.emit(&mut buf[ethernet::HEADER_LEN..])?;
    Ok(ethernet::HEADER_LEN + n)
}

fn build_icmp(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    echo: &IcmpEcho<'_>,
) -> Result<usize, WireError> {
    ethernet::emit(buf, dst_mac, src_mac, ethernet::ETHERTYPE_IPV4)?;
    let ip_at = ethernet::HEADER_LEN;
    let body_at = ip_at + ipv4::MIN_HEADER_LEN;
    let n = echo.emit(buf.get_mut(body_at..).ok_or(WireError::BufferTooSmall)?)?;
    let hdr = Ipv4Header {
        src,
        dst,
        protocol: ipv4::PROTO_ICMP,
        ttl: 64,
        ident,
        dont_fragment: false,
        payload_len: n as u16,
        tos: 0,
    };
    hdr.emit(&mut buf[ip_at..])?;
    Ok(body_at + n)
}

/// The ECN field's ECT(0) codepoint (RFC 3168 5), as Linux sends it.
const ECT0: u8 = 0x02;
/// ... and CE, congestion experienced.
const CE: u8 = 0x03;

/// Builds Ethernet + IPv4 + TCP + payload in place; the payload is copied
/// once, straight from the send buffer into the frame.
#[allow(clippy::too_many_arguments)]
fn build_tcp_frame(
    buf: &mut [u8],
    mtu: usize,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    ident: u16,
    tuple: &Tuple,
    t: &Transmit,
    payload: (&[u8], &[u8]),
) -> Result<usize, WireError> {
    ethernet::emit(buf, dst_mac, src_mac, ethernet::ETHERTYPE_IPV4)?;
    let ip_at = ethernet::HEADER_LEN;
    let tcp_at = ip_at + ipv4::MIN_HEADER_LEN;
    let hdr = TcpHeader {
        src_port: tuple.local_port,
        dst_port: tuple.remote_port,
        seq: t.seq.0,
        ack: if t.flags.ack() { t.ack.0 } else { 0 },
        flags: t.flags,
        window: t.window,
        options: t.options,
    };
    // Room for the segment within the MTU, checked before any copy.
    let fits = ip_at.saturating_add(mtu).min(buf.len());
    let segment = buf.get_mut(tcp_at..fits).ok_or(WireError::BufferTooSmall)?;
    let total = tcp_at + tcpwire::emit_segment(segment, &hdr, payload, src_ip, tuple.remote_ip)?;
    let ip = Ipv4Header {
        src: src_ip,
        dst: tuple.remote_ip,
        protocol: ipv4::PROTO_TCP,
        ttl: 64,
        ident,
        dont_fragment: true,
        payload_len: (total - tcp_at) as u16,
        tos: if t.ect { ECT0 } else { 0 },
    };
    ip.emit(&mut buf[ip_at..])?;
    Ok(total)
}
