//! Property tests: arbitrary segment sequences against a live connection
//! in each state, numbers drawn near its own (see `targets::live`). After
//! every segment: SND.UNA <= SND.NXT <= SND.MAX, RCV.NXT inside the
//! advertised window, buffers and out-of-order ranges within bounds, and
//! every byte delivered equal to the byte the peer sent at that offset.

use proptest::prelude::*;
use xdptcp_fuzz::mutate::Rng;
use xdptcp_fuzz::targets::live;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_after_any_segments_in_any_state(state in 0u8..66, ops in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut input = vec![state];
        input.extend(ops);
        // live::run panics on a broken invariant or an altered byte.
        live::run(&input);
    }
}

/// The generator reaches what the old hostile-segment test could not:
/// data accepted in and out of order, duplicate ACKs, SACK-driven
/// recovery, retransmissions, window probes.
#[test]
fn near_live_numbers_reach_ack_sack_and_reassembly() {
    let mut rng = Rng::new(11);
    let mut total = xdptcp::tcp::stats::Counters::default();
    for _ in 0..3000 {
        let len = 50 + rng.below(500);
        let mut input: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        // ESTABLISHED or CLOSE-WAIT, under any congestion control.
        input[0] = 4 + (rng.below(2) as u8) * 3 + 11 * rng.below(6) as u8;
        let c = live::run_counted(&input);
        total.bytes_received += c.bytes_received;
        total.out_of_order_segments += c.out_of_order_segments;
        total.dup_acks_received += c.dup_acks_received;
        total.sack_recoveries += c.sack_recoveries;
        total.retransmits += c.retransmits;
        total.challenge_acks_sent += c.challenge_acks_sent;
    }
    println!("{total:?}");
    assert!(
        total.bytes_received > 1_000_000,
        "in-order data accepted: {}",
        total.bytes_received
    );
    assert!(
        total.out_of_order_segments > 200,
        "out of order: {}",
        total.out_of_order_segments
    );
    assert!(
        total.dup_acks_received > 100,
        "duplicate ACKs: {}",
        total.dup_acks_received
    );
    assert!(
        total.sack_recoveries > 10,
        "SACK recoveries: {}",
        total.sack_recoveries
    );
    assert!(
        total.retransmits > 100,
        "retransmissions: {}",
        total.retransmits
    );
    assert!(
        total.challenge_acks_sent > 10,
        "challenge ACKs: {}",
        total.challenge_acks_sent
    );
}

/// The per-core target's handlers reach what they are there to test:
/// data handed over and consumed in pieces, EOFs, connections finished.
#[test]
fn percore_inputs_reach_reads_eofs_and_closes() {
    let mut rng = Rng::new(5);
    let mut total = xdptcp_fuzz::targets::percore::Reached::default();
    for _ in 0..300 {
        let len = 20 + rng.below(300);
        let input: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let r = xdptcp_fuzz::targets::percore::run_reached(&input);
        total.read += r.read;
        total.eofs += r.eofs;
        total.finished += r.finished;
    }
    println!("{total:?}");
    assert!(total.read > 100_000, "{total:?}");
    assert!(total.eofs > 20, "{total:?}");
    assert!(total.finished > 20, "{total:?}");
}
