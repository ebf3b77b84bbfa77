//! Command-line pieces shared by the programs that run our stack on an
//! AF_XDP device: the network flags and starting the runtime from them.

use crate::units::{parse_duration, parse_unsent_limit};
use clap::Args;
use std::time::Duration;
use xdptcp::api::config::{
    Algorithm, BusyPoll, Keepalive, Limits, PollMode, RxChecksum, StackConfig, UnsentLimit, XdpMode,
};
use xdptcp::api::{CoreApp, Runtime};

/// Where our stack lives and how it runs.
#[derive(Args)]
pub struct NetArgs {
    /// The device: afxdp:IFNAME (the stack takes the interface's frames).
    #[arg(long)]
    pub dev: String,
    /// Our address on it, ADDR/PREFIX (the kernel must not also own it).
    /// Repeat it for a dual stack: at most one IPv4 address and any IPv6
    /// ones (e.g. --ip 10.9.0.1/24 --ip fd00::1/64), or IPv6 alone.
    #[arg(long, required = true)]
    pub ip: Vec<String>,
    /// Router for destinations outside our subnet; repeat it for the
    /// other family (one IPv4, one IPv6).
    #[arg(long)]
    pub gateway: Vec<std::net::IpAddr>,
    /// Queues of the interface to serve, one core (thread) each.
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// CPUs for the cores, e.g. 2,3 (core i on the i-th); 'none' to not pin.
    /// Default: core i on CPU i. Two busy-polling programs on one machine
    /// need different CPUs.
    #[arg(long, default_value = "")]
    pub cpus: String,
    /// busy: spin on the rings; adaptive: block when idle.
    #[arg(long, default_value = "busy")]
    pub poll: PollMode,
    /// Attach XDP in generic (any interface) or driver mode (veth, NICs with XDP).
    #[arg(long, default_value = "generic")]
    pub xdp_mode: String,
    /// Preferred busy polling on the AF_XDP sockets, this many
    /// microseconds per poll (SO_PREFER_BUSY_POLL, SO_BUSY_POLL; Linux
    /// 5.11+). For NICs whose interrupts are deferred; off by default.
    #[arg(long, value_name = "USECS")]
    pub busy_poll: Option<u32>,
    /// Packets per busy poll (SO_BUSY_POLL_BUDGET), with --busy-poll.
    #[arg(long, default_value_t = 64)]
    pub busy_poll_budget: u32,
    /// Print per-core counters and each connection's state every this many seconds.
    #[arg(long)]
    pub stats: Option<f64>,
    /// Bytes per UMEM frame: 2048 or 4096.
    #[arg(long, default_value_t = 2048)]
    pub frame_size: u32,
    /// Frames per UMEM (per queue), half for receiving, half for sending.
    #[arg(long, default_value_t = 4096)]
    pub frames: u32,
    /// Entries per AF_XDP ring (a power of two, at most half the frames).
    #[arg(long, default_value_t = 2048)]
    pub ring_size: u32,
    /// TCP segments whose checksum a sender on this host left to its
    /// device (veth with tx checksum offload on): verify (drop them),
    /// trust-partial (accept them), auto (accept on veth, verify on
    /// anything else). Every other checksum is always verified.
    #[arg(long, default_value = "auto")]
    pub rx_checksum: RxChecksum,
    /// Congestion control: bbr (the stack's default: model-based and
    /// paced, unmoved by random loss, short queues), cubic or newreno
    /// (loss-based, as the RFCs describe). See docs/DEEP_DIVE.md.
    #[arg(long)]
    pub cc: Option<Algorithm>,
    /// Most connections each core holds open (TIME-WAIT not counted);
    /// SYNs beyond are dropped and counted (--stats).
    #[arg(long, default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Most MiB of send and receive buffers each core's connections hold;
    /// beyond, new connections are refused and out-of-order data dropped.
    #[arg(long, default_value_t = Limits::default().max_buffer_bytes >> 20)]
    pub max_buffer_mib: usize,
    /// Most TIME-WAIT records each core keeps; past it the oldest is
    /// recycled (counted in --stats), as Linux's tcp_max_tw_buckets.
    #[arg(long, default_value_t = Limits::default().max_time_wait)]
    pub max_time_wait: usize,
    /// Give up after this long (for example 30s, 1.5s).
    #[arg(long, default_value = "3600s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The most bytes a connection holds written but not yet sent
    /// (TCP_NOTSENT_LOWAT): auto (25 us at the sending rate, 4 segments to
    /// 64 KiB: what keeps the link busy until the next turn), off, or a
    /// size such as 256K. Lower: what is written waits less; too low: the
    /// sender runs dry between turns.
    #[arg(long, default_value = "auto", value_parser = parse_unsent_limit)]
    pub unsent_limit: UnsentLimit,
}

impl NetArgs {
    /// The stack's configuration these flags describe (the flags every
    /// program shares, read in this one place).
    pub fn stack_config(&self) -> Result<StackConfig, String> {
        let setup = crate::stream::NetSetup::parse(&self.dev, &self.ip, &self.gateway)?;
        let mode = match self.xdp_mode.as_str() {
            "generic" => XdpMode::Generic,
            "driver" => XdpMode::Driver,
            m => return Err(format!("--xdp-mode '{m}': use generic or driver")),
        };
        if ![2048, 4096].contains(&self.frame_size) {
            return Err(format!(
                "--frame-size {}: use 2048 or 4096",
                self.frame_size
            ));
        }
        if !self.ring_size.is_power_of_two() || self.ring_size * 2 > self.frames {
            return Err(format!(
                "--ring-size {} with --frames {}: the ring size must be a power of two and at most half the frames",
                self.ring_size, self.frames
            ));
        }
        let pin = match self.cpus.as_str() {
            "none" => None,
            "" => Some(Vec::new()),
            list => Some(
                list.split(',')
                    .map(|c| c.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--cpus '{list}': use a list like 0,1 or 'none'"))?,
            ),
        };
        let busy_poll = self.busy_poll.map(|usecs| BusyPoll {
            usecs,
            budget: self.busy_poll_budget,
        });
        let mut cfg = setup
            .stack_config()?
            .xdp_mode(mode)
            .frame_size(self.frame_size)
            .frames(self.frames, self.ring_size)
            .busy_poll(busy_poll)
            .queues(self.queues)
            .pin(pin)
            .poll(self.poll)
            .limits(Limits {
                max_connections: self.max_connections,
                max_buffer_bytes: self.max_buffer_mib << 20,
                max_time_wait: self.max_time_wait,
            })
            .rx_checksum(self.rx_checksum)
            .unsent_limit(self.unsent_limit)
            // A peer that vanishes while we wait for it (no FIN, no RST)
            // is found by keepalive probes: after 10 s of silence, 3
            // probes 2 s apart.
            .keepalive(Some(Keepalive {
                idle: Duration::from_secs(10),
                interval: Duration::from_secs(2),
                count: 3,
            }));
        if let Some(cc) = self.cc {
            cfg = cfg.congestion(cc);
        }
        Ok(cfg)
    }
}

/// Starts the per-core runtime these flags describe, each core running
/// `make_app(core)`, and says first what AF_XDP granted.
pub fn start_runtime<A: CoreApp>(
    n: &NetArgs,
    make_app: impl FnMut(usize) -> A,
) -> Result<Runtime<A>, String> {
    let cfg = n.stack_config()?;
    let dev = cfg.interface().to_string();
    let rt = Runtime::start(cfg, make_app).map_err(|e| e.to_string())?;
    // What the kernel and driver granted, first thing: a run in copy mode
    // is not a run in zero-copy mode.
    if let Some(mode) = rt.device_mode() {
        eprintln!("xdptcp: AF_XDP on {dev} ({} queue(s)): {mode}", rt.cores());
    }
    Ok(rt)
}
