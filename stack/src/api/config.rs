//! The front door for configuration: [`StackConfig`], one builder for
//! everything an application chooses when it runs the stack on an
//! interface (addresses, queues and cores, how AF_XDP binds and polls,
//! TCP's settings, what peers may make it hold), and the value types those
//! settings take, re-exported here so that an application imports `api`
//! alone. Tests and the fuzzer reach into the layers directly.
//!
//! ```no_run
//! use xdptcp::api::config::{Algorithm, StackConfig};
//! use xdptcp::api::socket::Stack;
//! let cfg = StackConfig::new("veth0", "10.9.0.1".parse().unwrap(), 24)?
//!     .ipv6("fd00:9::1".parse().unwrap(), 64)
//!     .gateway("10.9.0.254".parse().unwrap())
//!     .congestion(Algorithm::Cubic);
//! let stack = Stack::start(cfg)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::runtime::RuntimeConfig;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::device::afxdp::{interface_mac, interface_mtu, BusyPoll, DeviceMode, XdpMode};
pub use crate::iface::{Limits, RxChecksum};
pub use crate::runtime::PollMode;
pub use crate::tcp::congestion::Algorithm;
pub use crate::tcp::unsent::AUTO_MAX as UNSENT_AUTO_MAX;
pub use crate::tcp::{Config as TcpConfig, Keepalive, UnsentLimit};

/// How to run the stack on one interface. Start from [`StackConfig::new`]
/// and change what differs from the defaults; hand it to
/// `socket::Stack::start` or `Runtime::start`.
#[derive(Debug, Clone)]
pub struct StackConfig(RuntimeConfig);

impl StackConfig {
    /// Our stack on `ifname` with the IPv4 address `ip/prefix_len`
    /// (0.0.0.0/32 for none: an IPv6-only stack, see [`Self::ipv6`]): the
    /// interface's MAC, a random RFC 6528 key (from /dev/urandom), one
    /// queue on CPU 0, busy polling, generic XDP, default TCP settings.
    pub fn new(ifname: &str, ip: Ipv4Addr, prefix_len: u8) -> std::io::Result<Self> {
        RuntimeConfig::for_interface(ifname, ip, prefix_len).map(StackConfig)
    }

    /// One more address, IPv6, with its on-link prefix length.
    pub fn ipv6(mut self, addr: Ipv6Addr, prefix_len: u8) -> Self {
        self.0.ipv6.push((addr, prefix_len));
        self
    }

    /// The router for destinations off our prefixes, one per family (a
    /// second one of a family replaces the first).
    pub fn gateway(mut self, router: IpAddr) -> Self {
        match router {
            IpAddr::V4(a) => self.0.iface.gateway = Some(a),
            IpAddr::V6(a) => self.0.ipv6_gateway = Some(a),
        }
        self
    }

    /// Queues of the interface to serve, one core each.
    pub fn queues(mut self, n: u32) -> Self {
        self.0.queues = n;
        self
    }

    /// CPUs for the cores, core `i` on `cpus[i % len]`; an empty list pins
    /// core `i` to CPU `i`; `None` leaves them to the scheduler.
    pub fn pin(mut self, cpus: Option<Vec<usize>>) -> Self {
        self.0.pin = cpus;
        self
    }

    /// How a core waits when it has nothing to do.
    pub fn poll(mut self, mode: PollMode) -> Self {
        self.0.poll = mode;
        self
    }

    /// Where the XDP program hooks in: driver mode binds zero-copy where
    /// the driver offers it.
    pub fn xdp_mode(mut self, mode: XdpMode) -> Self {
        self.0.afxdp.mode = mode;
        self
    }

    /// Preferred busy polling on the AF_XDP sockets (`None`: off).
    pub fn busy_poll(mut self, b: Option<BusyPoll>) -> Self {
        self.0.afxdp.busy_poll = b;
        self
    }

    /// Bytes per UMEM frame (2048 or 4096).
    pub fn frame_size(mut self, bytes: u32) -> Self {
        self.0.afxdp.frame_size = bytes;
        self
    }

    /// Frames per UMEM (per queue) and entries per ring (a power of two,
    /// at most half the frames).
    pub fn frames(mut self, frames: u32, ring_size: u32) -> Self {
        self.0.afxdp.frames = frames;
        self.0.afxdp.ring_size = ring_size;
        self
    }

    /// Which received TCP checksums to trust unfinished (`RxChecksum`).
    pub fn rx_checksum(mut self, c: RxChecksum) -> Self {
        self.0.iface.rx_checksum = c;
        self
    }

    /// Every TCP setting at once (buffers, options, timers).
    pub fn tcp(mut self, tcp: TcpConfig) -> Self {
        self.0.iface.tcp = tcp;
        self
    }

    /// The congestion control of every connection.
    pub fn congestion(mut self, a: Algorithm) -> Self {
        self.0.iface.tcp.congestion = a;
        self
    }

    /// The bound on bytes written but not yet sent (TCP_NOTSENT_LOWAT).
    pub fn unsent_limit(mut self, l: UnsentLimit) -> Self {
        self.0.iface.tcp.unsent_limit = l;
        self
    }

    /// Keepalive probes for every connection (`None`: off).
    pub fn keepalive(mut self, k: Option<Keepalive>) -> Self {
        self.0.iface.tcp.keepalive = k;
        self
    }

    /// What peers may make each core hold.
    pub fn limits(mut self, l: Limits) -> Self {
        self.0.limits = l;
        self
    }

    /// The interface this runs on.
    pub fn interface(&self) -> &str {
        &self.0.afxdp.ifname
    }

    /// The TCP settings as they stand.
    pub fn tcp_config(&self) -> &TcpConfig {
        &self.0.iface.tcp
    }
}

impl From<StackConfig> for RuntimeConfig {
    fn from(c: StackConfig) -> RuntimeConfig {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder sets what the layers below read, nothing else. (The
    /// loopback interface exists in every namespace: no root needed.)
    #[test]
    fn each_setting_lands_where_the_layers_read_it() {
        let base = StackConfig::new("lo", Ipv4Addr::new(10, 1, 0, 1), 24).unwrap();
        let before = RuntimeConfig::from(base.clone());
        let c: RuntimeConfig = base
            .ipv6("fd00::1".parse().unwrap(), 64)
            .gateway("10.1.0.254".parse().unwrap())
            .gateway("fd00::fe".parse().unwrap())
            .queues(2)
            .pin(Some(vec![3, 4]))
            .poll(PollMode::Adaptive)
            .xdp_mode(XdpMode::Driver)
            .busy_poll(Some(BusyPoll {
                usecs: 20,
                budget: 16,
            }))
            .frame_size(4096)
            .frames(8192, 4096)
            .rx_checksum(RxChecksum::Verify)
            .congestion(Algorithm::Cubic)
            .unsent_limit(UnsentLimit::Off)
            .keepalive(None)
            .limits(Limits {
                max_connections: 7,
                ..Limits::default()
            })
            .into();
        assert_eq!(c.ipv6, vec![("fd00::1".parse().unwrap(), 64)]);
        assert_eq!(c.iface.gateway, Some(Ipv4Addr::new(10, 1, 0, 254)));
        assert_eq!(c.ipv6_gateway, Some("fd00::fe".parse().unwrap()));
        assert_eq!((c.queues, c.pin.clone()), (2, Some(vec![3, 4])));
        assert_eq!(c.poll, PollMode::Adaptive);
        assert_eq!(c.afxdp.mode, XdpMode::Driver);
        assert_eq!(
            c.afxdp.busy_poll.map(|b| (b.usecs, b.budget)),
            Some((20, 16))
        );
        assert_eq!(
            (c.afxdp.frame_size, c.afxdp.frames, c.afxdp.ring_size),
            (4096, 8192, 4096)
        );
        assert_eq!(c.iface.rx_checksum, RxChecksum::Verify);
        assert_eq!(c.iface.tcp.congestion, Algorithm::Cubic);
        assert_eq!(c.iface.tcp.unsent_limit, UnsentLimit::Off);
        assert_eq!(c.limits.max_connections, 7);
        // What was not set stays as it was.
        assert_eq!(c.iface.ip, before.iface.ip);
        assert_eq!(c.iface.tcp.send_buffer, before.iface.tcp.send_buffer);
        assert_eq!(c.afxdp.ifname, "lo");
    }
}
