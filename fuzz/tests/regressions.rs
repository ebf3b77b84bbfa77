//! Every input the fuzzer ever crashed on (fuzz/regressions/TARGET/*),
//! replayed; and each target's seeds, which must pass as they are.

use std::path::Path;
use xdptcp_fuzz::targets;

#[test]
fn every_saved_crash_input_now_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for (name, target) in targets::ALL {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                panic!("{} crashes the {name} target again", e.path().display());
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 1, "the regression inputs are missing");
}

#[test]
fn seeds_pass_and_reach_every_state() {
    for (name, target) in targets::ALL {
        for s in targets::seeds(name) {
            target(&s);
        }
    }
    // The live target's set-up reaches each of the eleven states, under
    // every congestion control, with and without autotuning.
    for setup in 0..6u8 {
        for (i, state) in targets::live::STATES.iter().enumerate() {
            let now = xdptcp::time::Instant::from_millis(10);
            let (us, _) = targets::live::in_state(i as u8, setup, now);
            assert_eq!(us.state(), *state, "set-up {setup}");
            let cc = us.snapshot().congestion;
            assert_eq!(
                cc,
                targets::live::config(setup)
                    .congestion
                    .build(1000, 1000)
                    .name()
            );
        }
    }
}

/// The interface's seeds carry the captured conversation over IPv6 too,
/// and it gets as far there as over IPv4: the peer's three segments
/// (SYN, data, FIN) reach TCP, after our neighbour solicitation; our own
/// two captured segments are not for us either way.
#[test]
fn the_ipv6_seeds_reach_tcp() {
    let seeds = targets::seeds("iface");
    let (v4, v6) = (
        targets::iface::drive(&seeds[0]),
        targets::iface::drive(&seeds[2]),
    );
    let (s4, s6) = (v4.stats(), v6.stats());
    assert_eq!(s6.tcp_segments_in, 3, "{s6:?}");
    assert_eq!(s6.tcp_data_segments_in, 1, "{s6:?}");
    assert!(s6.nd_solicitations_sent >= 1, "{s6:?}");
    assert_eq!((s6.rx_bad_checksum, s6.rx_unsupported), (0, 0), "{s6:?}");
    assert_eq!(
        (s4.tcp_segments_in, s4.rx_not_for_us, s4.tcp_resets_sent),
        (s6.tcp_segments_in, s6.rx_not_for_us, s6.tcp_resets_sent)
    );
}
