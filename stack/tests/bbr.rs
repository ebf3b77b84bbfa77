//! BBR (congestion/bbr.rs) between two connections on a scripted wire
//! with a 100 Mbit/s bottleneck: what the model-based controller does
//! that the loss-based ones cannot. Virtual time; the figures asserted are
//! the simulation's, deterministic, not a machine's speed.

mod common;

use common::{one_way, pair, Pair};
use std::time::Duration;
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::Config;

/// A 1514-byte frame at 100 Mbit/s.
const SERIALIZATION: Duration = Duration::from_micros(121);
const SIZE: usize = 8 << 20;

fn config(cc: Algorithm) -> Config {
    Config {
        congestion: cc,
        // Buffers large enough that cwnd, not the receiver, limits.
        send_buffer: 8 << 20,
        recv_buffer: 8 << 20,
        autotune: false,
        ..Config::default()
    }
}

/// 8 MiB over RTT 10 ms through the bottleneck; `loss` of a's data
/// segments dropped at random (a fixed seed). Returns the pair and the
/// goodput in Mbit/s of virtual time.
fn transfer(cc: Algorithm, loss: f64) -> (Pair, f64) {
    let mut p = pair(config(cc), 1000, config(cc), 5000, 5);
    p.a_serialization = Some(SERIALIZATION);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    p.drop = Box::new(move |t, from_a| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        from_a && t.payload_len > 0 && (seed % 10_000) as f64 / 10_000.0 < loss
    });
    let start = p.now;
    assert!(
        one_way(&mut p, SIZE, Duration::from_secs(120)),
        "{cc:?} at {loss} loss did not finish: {:?}",
        p.a.snapshot()
    );
    let secs = (p.now - start).as_secs_f64();
    let mbit = SIZE as f64 * 8.0 / secs / 1e6;
    (p, mbit)
}

/// At 3 % random loss a loss-based controller halves its window every few
/// round trips and moves a fraction of the link; BBR, whose model ignores
/// loss that does not come with a full queue, keeps most of the link busy.
#[test]
fn bbr_keeps_most_of_the_link_under_random_loss_where_newreno_collapses() {
    let (reno, reno_mbit) = transfer(Algorithm::NewReno, 0.03);
    let (bbr, bbr_mbit) = transfer(Algorithm::Bbr, 0.03);
    let link = 1448.0 * 8.0 / SERIALIZATION.as_secs_f64() / 1e6;
    assert!(
        bbr_mbit > 0.6 * link,
        "BBR {bbr_mbit:.1} Mbit/s of a {link:.1} Mbit/s link: {:?}",
        bbr.a.snapshot()
    );
    assert!(
        bbr_mbit > 3.0 * reno_mbit,
        "BBR {bbr_mbit:.1} vs NewReno {reno_mbit:.1} Mbit/s: {:?}",
        reno.a.snapshot()
    );
    let c = bbr.a.counters();
    assert!(c.rack_lost_segments > 0 && c.retransmits > 0, "{c:?}");
}

/// Without loss, a loss-based controller fills whatever queue the
/// bottleneck has (here unbounded) until the receive window stops it;
/// BBR paces at the measured bandwidth with about two BDPs in flight, so
/// once STARTUP is over the queue stays within a BDP or so (10 ms here)
/// while the link stays as full.
#[test]
fn bbr_fills_the_link_without_filling_its_queue() {
    let steady = |cc| {
        // The first 8 MiB include slow start or STARTUP; measure the next.
        let (mut p, _) = transfer(cc, 0.0);
        p.a_max_queueing = Duration::ZERO;
        let start = p.now;
        assert!(one_way(&mut p, SIZE, Duration::from_secs(120)));
        let mbit = SIZE as f64 * 8.0 / (p.now - start).as_secs_f64() / 1e6;
        (mbit, p.a_max_queueing)
    };
    let (reno_mbit, rq) = steady(Algorithm::NewReno);
    let (bbr_mbit, bq) = steady(Algorithm::Bbr);
    assert!(
        bbr_mbit > 0.9 * reno_mbit,
        "BBR {bbr_mbit:.1} vs NewReno {reno_mbit:.1} Mbit/s"
    );
    assert!(
        bq <= Duration::from_millis(15) && bq * 4 < rq,
        "longest queueing: BBR {bq:?}, NewReno {rq:?}"
    );
}
