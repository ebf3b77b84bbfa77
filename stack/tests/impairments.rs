//! Byte-exact bulk transfers through the whole stack (Ethernet, ARP, IPv4,
//! TCP) over a simulated link, under each impairment alone and all together,
//! for 20 seeds each. SHA-256 of what the sender queued must equal SHA-256
//! of what the receiver read.

use sha2::{Digest, Sha256};
use std::time::Duration;
use xdptcp::device::sim::LinkConfig;
use xdptcp::simulation::{run_transfer, TransferReport, TransferSpec};

const BYTES: u64 = 32 << 20;
const SEEDS: std::ops::Range<u64> = 1..21;

fn transfer(link: &LinkConfig, seed: u64) -> TransferReport {
    let spec = TransferSpec {
        bytes: BYTES,
        link: link.clone(),
        seed,
        ..Default::default()
    };
    let (mut sent, mut got) = (Sha256::new(), Sha256::new());
    let r = run_transfer(
        &spec,
        &mut |b| sent.update(b),
        &mut |b| got.update(b),
        &mut |_, _| {},
    );
    assert!(r.completed, "seed {seed}: {:?}", r.error);
    assert_eq!(r.bytes_received, BYTES, "seed {seed}");
    assert_eq!(sent.finalize(), got.finalize(), "seed {seed}: data differs");
    r
}

fn all_seeds(link: LinkConfig) -> Vec<TransferReport> {
    SEEDS.map(|seed| transfer(&link, seed)).collect()
}

#[test]
fn loss_5_percent() {
    let reports = all_seeds(LinkConfig {
        loss: 0.05,
        ..Default::default()
    });
    for r in &reports {
        assert!(
            r.link_a_to_b.frames_lost > 0,
            "the link must really have dropped frames"
        );
        assert!(r.sender.counters.retransmits > 0);
    }
}

#[test]
fn reorder_5_percent() {
    let reports = all_seeds(LinkConfig {
        reorder: 0.05,
        ..Default::default()
    });
    for r in &reports {
        assert!(r.link_a_to_b.frames_reordered > 0);
        assert!(
            r.receiver.counters.out_of_order_segments > 0,
            "reordering must reach the reassembly path"
        );
    }
}

#[test]
fn duplicate_2_percent() {
    let reports = all_seeds(LinkConfig {
        duplicate: 0.02,
        ..Default::default()
    });
    for r in &reports {
        assert!(r.link_a_to_b.frames_duplicated > 0);
    }
}

#[test]
fn corrupt_0_1_percent() {
    let reports = all_seeds(LinkConfig {
        corrupt: 0.001,
        ..Default::default()
    });
    let corrupted: u64 = reports
        .iter()
        .map(|r| r.link_a_to_b.frames_corrupted + r.link_b_to_a.frames_corrupted)
        .sum();
    assert!(corrupted > 0, "the link must really have flipped bits");
}

#[test]
fn delay_jitter_and_bandwidth() {
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(1),
        bandwidth_bps: Some(100_000_000),
        queue_bytes: 256 * 1024,
        ..Default::default()
    };
    for r in all_seeds(link) {
        // 32 MiB at 100 Mbit/s needs at least 2.68 s on the wire.
        assert!(
            r.sim_time >= Duration::from_millis(2684),
            "bandwidth limit not applied: {:?}",
            r.sim_time
        );
    }
}

#[test]
fn all_impairments_together() {
    let link = LinkConfig {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.02,
        corrupt: 0.001,
        jitter: Duration::from_micros(200),
        ..Default::default()
    };
    all_seeds(link);
}
