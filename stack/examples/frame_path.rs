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
//! Usage: frame_path [N]   (default 100000 segments)

use std::time::Duration;
use xdptcp::simulation::{run_transfer_from, LinkConfig, TransferSpec};

const MSS: u64 = 1448;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
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
