//! Moves N MSS segments of bulk data through two whole stacks (Ethernet,
//! IPv4 with its checksums, the connection table, neighbours, timers,
//! TCP) joined by the simulator's link: the program whose instructions
//! `tools/callgrind.sh` counts per segment on the interface's path, where
//! `segment_path` counts the bare connections'.
//!
//! The link carries 4 Gbit/s with 20 us of delay, near what the veth path
//! does here, so frames arrive a few at a time as on the real path and
//! each receive batch is acknowledged as there. The application's bytes
//! are copied in by `send`, 64 KiB at a time, as the bench's bulk app does.
//!
//! With `idle`, N polls of both interfaces instead, each holding one
//! established connection with nothing to do: the loop's fixed cost,
//! which a spinning core pays between any two frames.
//!
//! Usage: frame_path [N] [idle]   (default 100000 segments)

use std::time::Duration;
use xdptcp::simulation::{run_transfer_from, LinkConfig, TransferSpec, World, ADDR_B};
use xdptcp::tcp::{Config, State};

const MSS: u64 = 1448;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    if std::env::args().nth(2).is_some_and(|a| a == "idle") {
        return idle_polls(n);
    }
    let spec = TransferSpec {
        bytes: n * MSS,
        link: LinkConfig {
            delay: Duration::from_micros(20),
            bandwidth_bps: Some(4_000_000_000),
            ..LinkConfig::default()
        },
        ..TransferSpec::default()
    };
    let mut left = spec.bytes;
    // The bytes are whatever the transfer's buffer holds: what is
    // counted is the stacks' work, not the making of data (the tests
    // check bytes; this counts instructions).
    let mut source = |buf: &mut [u8]| {
        let k = buf.len().min(left as usize);
        left -= k as u64;
        k
    };
    let report = run_transfer_from(&spec, &mut source, &mut |_| {}, &mut |_, _| {});
    assert!(report.completed, "{:?}", report.error);
    let acks = report.link_b_to_a.frames_sent;
    println!(
        "{n} segments, {} bytes delivered, {acks} frames back, {} s simulated",
        report.bytes_received,
        report.sim_time.as_secs_f64()
    );
}

fn idle_polls(n: u64) {
    let mut w = World::new(
        LinkConfig::default(),
        1,
        Config::default(),
        Config::default(),
    );
    w.b.iface.listen(5001, None, 16).expect("a fresh interface");
    let to = std::net::SocketAddr::from((ADDR_B, 5001));
    let h = w.a.iface.connect(to, None, w.now).expect("on the subnet");
    let mut server = None;
    let up = w.run_until(Duration::from_secs(5), |w| {
        server = server.or_else(|| w.b.iface.accept(5001).ok().flatten());
        server.is_some() && w.a.iface.tcp(h).map(|c| c.state()) == Some(State::Established)
    });
    assert!(up, "the handshake completes");
    for _ in 0..n {
        w.now += Duration::from_micros(1);
        w.a.iface.poll(w.now, &mut w.a.port);
        w.b.iface.poll(w.now, &mut w.b.port);
    }
    println!("{n} idle polls of each interface");
}
