//! Two whole stacks (Ethernet, ARP and Neighbor Discovery, IPv4 and IPv6,
//! TCP) joined by a simulated link, driven by a virtual clock that jumps
//! from event to event. Deterministic: the same seed and settings give the
//! same run.

use crate::device::rng::SimRng;
/// The simulated link's faults and rates, for a [`TransferSpec`].
pub use crate::device::sim::LinkConfig;
use crate::device::sim::{self, PipeStats, SimPort};
use crate::device::Device;
use crate::iface::{Handle, IfaceConfig, Interface, RxChecksum};
use crate::tcp::stats::Snapshot;
use crate::tcp::{Config, State, TcpError};
use crate::time::{earliest, Instant};
use crate::wire::ethernet::MacAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Host A's address (RFC 5737 documentation range: the simulation sends
/// nothing onto a real network, and these addresses say so).
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Their IPv6 addresses, in 2001:db8::/64 (RFC 3849, documentation too).
pub const ADDR6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const ADDR6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

pub struct Host {
    pub iface: Interface,
    pub port: SimPort,
}

pub struct World {
    pub now: Instant,
    pub a: Host,
    pub b: Host,
}

impl World {
    pub fn new(link: LinkConfig, seed: u64, tcp_a: Config, tcp_b: Config) -> Self {
        let (pa, pb) = sim::link(link, seed);
        let mut keys = SimRng::new(seed ^ 0x5eed);
        let mut key = || {
            let mut k = [0u8; 16];
            keys.fill(&mut k);
            k
        };
        let host = |ip, last: u8, port, tcp, isn_secret| Host {
            iface: Interface::new(IfaceConfig {
                mac: MacAddr([0x02, 0, 0, 0, 0, last]),
                ip,
                prefix_len: 24,
                gateway: None,
                isn_secret,
                tcp,
                rx_checksum: RxChecksum::Verify,
            }),
            port,
        };
        let a = host(ADDR_A, 1, pa, tcp_a, key());
        let b = host(ADDR_B, 2, pb, tcp_b, key());
        World {
            now: Instant::ZERO,
            a,
            b,
        }
    }

    /// Gives the hosts their IPv6 addresses too (`ADDR6_A`, `ADDR6_B`);
    /// without this call a world is IPv4 only, frame for frame as before.
    pub fn add_ipv6(&mut self) {
        for (host, addr) in [(&mut self.a, ADDR6_A), (&mut self.b, ADDR6_B)] {
            host.iface.add_ipv6(addr, 64).expect("a unicast address");
        }
    }

    /// Polls both hosts at the current instant until neither moves a frame.
    pub fn poll(&mut self) {
        loop {
            let ma = self.a.iface.poll(self.now, &mut self.a.port);
            let mb = self.b.iface.poll(self.now, &mut self.b.port);
            if !ma && !mb {
                break;
            }
        }
    }

    /// One loop of a one-core runtime on each host at the current instant:
    /// `on_a` runs on A's interface, `on_b` on B's. Returns true if either
    /// did something.
    pub fn poll_apps(
        &mut self,
        on_a: &mut impl crate::runtime::CoreApp,
        on_b: &mut impl crate::runtime::CoreApp,
    ) -> bool {
        use crate::runtime::CoreContext;
        let now = self.now;
        let cx = |iface| CoreContext {
            core: 0,
            cores: 1,
            now,
            iface,
        };
        let a = on_a.poll(&mut cx(&mut self.a.iface));
        let b = on_b.poll(&mut cx(&mut self.b.iface));
        a || b
    }

    /// The next instant anything is due: a frame arrival or a timer.
    pub fn next_event(&self) -> Option<Instant> {
        let frames = earliest(self.a.port.next_arrival(), self.b.port.next_arrival());
        earliest(
            frames,
            earliest(self.a.iface.poll_at(), self.b.iface.poll_at()),
        )
    }

    /// Advances the clock to the next event (never backwards). Returns false
    /// when nothing at all is pending.
    pub fn advance(&mut self) -> bool {
        match self.next_event() {
            Some(t) => {
                self.now = self.now.max(t);
                true
            }
            None => false,
        }
    }

    /// Runs until `done` holds or `limit` of simulated time passes.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.poll();
            if done(self) {
                return true;
            }
            if !self.advance() || self.now > end {
                return false;
            }
        }
    }
}

/// Settings for one bulk transfer from host A to host B.
#[derive(Debug, Clone)]
pub struct TransferSpec {
    pub bytes: u64,
    pub link: LinkConfig,
    pub seed: u64,
    pub tcp: Config,
    /// Give up after this much simulated time.
    pub sim_limit: Duration,
    pub port: u16,
    /// Over IPv6 (between `ADDR6_A` and `ADDR6_B`) instead of IPv4.
    pub ipv6: bool,
}

impl Default for TransferSpec {
    fn default() -> Self {
        TransferSpec {
            bytes: 1 << 20,
            link: LinkConfig::default(),
            seed: 1,
            tcp: Config::default(),
            sim_limit: Duration::from_secs(24 * 3600),
            port: 5001,
            ipv6: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TransferReport {
    /// Every byte arrived, in order, and both sides closed cleanly.
    pub completed: bool,
    pub error: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub sim_time: Duration,
    pub sender: Snapshot,
    pub receiver: Snapshot,
    pub link_a_to_b: PipeStats,
    pub link_b_to_a: PipeStats,
}

/// The sender's data: a deterministic byte stream from the seed. The
/// stream depends only on the seed, not on how it is read in pieces.
pub struct DataSource {
    rng: SimRng,
    left: u64,
    /// Unused bytes of the last generated word.
    spare: [u8; 8],
    spare_len: usize,
}

impl DataSource {
    pub fn new(seed: u64, bytes: u64) -> Self {
        DataSource {
            rng: SimRng::new(seed.wrapping_mul(31) ^ 0xda7a),
            left: bytes,
            spare: [0; 8],
            spare_len: 0,
        }
    }

    /// Fills up to `out.len()` bytes; returns how many (0 at the end).
    pub fn fill(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.left.min(usize::MAX as u64) as usize);
        let mut i = 0;
        while i < n {
            if self.spare_len == 0 && n - i >= 8 {
                // Whole words straight into the output: the same bytes as
                // the path below, without the per-word bookkeeping.
                let words = (n - i) / 8;
                for w in out[i..i + words * 8].chunks_exact_mut(8) {
                    w.copy_from_slice(&self.rng.next_u64().to_le_bytes());
                }
                i += words * 8;
                continue;
            }
            if self.spare_len == 0 {
                self.spare = self.rng.next_u64().to_le_bytes();
                self.spare_len = 8;
            }
            let take = self.spare_len.min(n - i);
            let from = 8 - self.spare_len;
            out[i..i + take].copy_from_slice(&self.spare[from..from + take]);
            self.spare_len -= take;
            i += take;
        }
        self.left -= n as u64;
        n
    }
}

impl std::io::Read for DataSource {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(self.fill(buf))
    }
}

/// Moves `spec.bytes` from A to B over the whole stack. `on_sent` sees every
/// byte handed to the sender, `on_received` every byte B reads, in order;
/// callers hash them to check integrity. `progress` is called now and then
/// with the bytes received so far.
pub fn run_transfer(
    spec: &TransferSpec,
    on_sent: &mut dyn FnMut(&[u8]),
    on_received: &mut dyn FnMut(&[u8]),
    progress: &mut dyn FnMut(u64, Instant),
) -> TransferReport {
    let mut data = DataSource::new(spec.seed, spec.bytes);
    let mut source = |buf: &mut [u8]| {
        let n = data.fill(buf);
        on_sent(&buf[..n]);
        n
    };
    run_transfer_from(spec, &mut source, on_received, progress)
}

/// Like [`run_transfer`], with the sender's bytes taken from `source`
/// (which fills a buffer and returns how much it wrote, 0 at the end; it
/// must supply exactly `spec.bytes`), for example from a file.
pub fn run_transfer_from(
    spec: &TransferSpec,
    source: &mut dyn FnMut(&mut [u8]) -> usize,
    on_received: &mut dyn FnMut(&[u8]),
    progress: &mut dyn FnMut(u64, Instant),
) -> TransferReport {
    let mut world = World::new(
        spec.link.clone(),
        spec.seed,
        spec.tcp.clone(),
        spec.tcp.clone(),
    );
    world
        .b
        .iface
        .listen(spec.port, None, 16)
        .expect("fresh interface has no listeners");
    let to = if spec.ipv6 {
        world.add_ipv6();
        IpAddr::V6(ADDR6_B)
    } else {
        IpAddr::V4(ADDR_B)
    };
    let remote = SocketAddr::new(to, spec.port);
    let client = world
        .a
        .iface
        .connect(remote, None, world.now)
        .expect("B is on A's subnet");
    let mut server: Option<Handle> = None;
    let mut chunk = vec![0u8; 64 * 1024];
    let (mut sent, mut received, mut source_done, mut eof) = (0u64, 0u64, false, false);
    let mut error = None;
    let mut last_progress = 0u64;
    let end = world.now + spec.sim_limit;

    loop {
        world.poll();
        let mut acted = false;
        // Sender: keep the send buffer full, close after the last byte.
        if let Some(c) = world.a.iface.tcp(client) {
            if let Some(e) = c.error() {
                error = Some(format!("sender: {}", TcpError::Failed(e)));
            }
            while !source_done && c.send_capacity() > 0 {
                let n = source(&mut chunk[..c.send_capacity().min(64 * 1024)]);
                if n == 0 {
                    source_done = true;
                    c.close();
                    acted = true;
                    break;
                }
                let taken = c.send(&chunk[..n]).unwrap_or(0);
                debug_assert_eq!(taken, n, "send_capacity promised room");
                sent += n as u64;
                acted = true;
            }
        }
        // Receiver: accept, drain, close on EOF.
        if server.is_none() {
            server = world.b.iface.accept(spec.port).ok().flatten();
        }
        if let Some(c) = server.and_then(|h| world.b.iface.tcp(h)) {
            loop {
                match c.recv(&mut chunk) {
                    Ok(0) => {
                        if !eof {
                            eof = true;
                            c.close();
                            acted = true;
                        }
                        break;
                    }
                    Ok(n) => {
                        on_received(&chunk[..n]);
                        received += n as u64;
                        acted = true;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => {
                        error = Some(format!("receiver: {e}"));
                        break;
                    }
                }
            }
        }
        if received >= last_progress + (1 << 20) {
            last_progress = received;
            progress(received, world.now);
        }
        let closed = |s: Option<State>| matches!(s, Some(State::Closed | State::TimeWait) | None);
        let a_state = world.a.iface.tcp(client).map(|c| c.state());
        let b_state = server.and_then(|h| world.b.iface.tcp(h)).map(|c| c.state());
        if error.is_some() || (eof && closed(a_state) && closed(b_state)) {
            break;
        }
        if acted {
            continue; // poll again at the same instant to send what was queued
        }
        if !world.advance() || world.now > end {
            error.get_or_insert_with(|| {
                format!(
                    "no progress: stopped at {:.3} s of simulated time",
                    world.now.as_secs_f64()
                )
            });
            break;
        }
    }

    let snap = |h: Option<Handle>, iface: &mut Interface| {
        h.and_then(|h| iface.tcp(h)).map(|c| c.snapshot())
    };
    let sender =
        snap(Some(client), &mut world.a.iface).expect("client handle is never released here");
    let receiver = snap(server, &mut world.b.iface).unwrap_or_else(|| sender.clone());
    let completed = error.is_none() && eof && received == spec.bytes && sent == spec.bytes;
    TransferReport {
        completed,
        error: error.or_else(|| {
            (!completed).then(|| format!("received {received} of {} bytes", spec.bytes))
        }),
        bytes_sent: sent,
        bytes_received: received,
        sim_time: world.now - Instant::ZERO,
        sender,
        receiver,
        link_a_to_b: world.a.port.tx_stats(),
        link_b_to_a: world.b.port.tx_stats(),
    }
}

#[cfg(test)]
mod tests {
    use super::DataSource;

    #[test]
    fn data_is_the_same_whatever_the_read_sizes() {
        let mut whole = vec![0u8; 10_000];
        assert_eq!(DataSource::new(5, 10_000).fill(&mut whole), 10_000);
        let mut pieces = Vec::new();
        let mut d = DataSource::new(5, 10_000);
        for size in [1usize, 3, 8, 13, 64, 7, 1000].iter().cycle() {
            let mut buf = vec![0u8; *size];
            let n = d.fill(&mut buf);
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieces, whole);
    }
}
