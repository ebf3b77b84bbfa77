//! Fitting the path: buffers that grow to its bandwidth-delay product and
//! no further, and a slow start that ends on a rising RTT before the
//! bottleneck's queue overflows. Over the simulated link, with a
//! bandwidth limit and a tail-drop queue.

mod common;

use std::time::Duration;
use xdptcp::device::sim::LinkConfig;
use xdptcp::simulation::{run_transfer, TransferReport, TransferSpec};
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::Config;

/// These mechanisms (HyStart++, the restart after idle) belong to the
/// loss-based controllers; BBR, the default, skips them by design and
/// grows through STARTUP's own 2.89x rounds. CUBIC, as Linux upstream.
fn loss_based() -> Config {
    Config {
        congestion: Algorithm::Cubic,
        ..Config::default()
    }
}

fn transfer(link: LinkConfig, tcp: Config, bytes: u64) -> TransferReport {
    let spec = TransferSpec {
        bytes,
        link,
        seed: 1,
        tcp,
        ..TransferSpec::default()
    };
    let r = run_transfer(&spec, &mut |_| {}, &mut |_| {}, &mut |_, _| {});
    assert!(r.completed, "{:?}", r.error);
    r
}

/// 100 Mbit/s, 100 ms RTT: a BDP of 1.25 MB, five times the 256 KiB the
/// buffers start with, plus a 2 MB queue. The receive buffer grows with
/// what arrives per RTT (twice it, more while slow start still doubles
/// it), to a few times what the path holds, well short of the 32 MiB cap,
/// and the transfer fills the link; with the buffers fixed at their
/// starting size it gets a fifth of it. On a 10 Mbit/s path the buffer
/// stays within the same multiple of what that path holds.
#[test]
fn autotuning_grows_the_window_to_the_bdp_and_no_further() {
    let link = |bps: u64, queue: usize| LinkConfig {
        bandwidth_bps: Some(bps),
        delay: Duration::from_millis(50),
        queue_bytes: queue,
        ..LinkConfig::default()
    };
    let holds = 1_250_000.0 + f64::from(2u32 << 20);
    let r = transfer(link(100_000_000, 2 << 20), loss_based(), 128 << 20);
    let rate = r.bytes_received as f64 * 8.0 / r.sim_time.as_secs_f64();
    let grown = r.receiver.recv_buffer as f64;
    // Slow start included: at least 80 % of the link over the transfer.
    assert!(rate > 80e6, "autotuned: {:.1} Mbit/s", rate / 1e6);
    assert!(
        grown >= 1_250_000.0 && grown <= 6.0 * holds && grown < f64::from(32u32 << 20) * 0.6,
        "receive buffer {grown} for a path holding {holds}"
    );
    let fixed = Config {
        autotune: false,
        ..loss_based()
    };
    let r = transfer(link(100_000_000, 2 << 20), fixed, 32 << 20);
    let rate = r.bytes_received as f64 * 8.0 / r.sim_time.as_secs_f64();
    assert!(rate < 25e6, "fixed 256 KiB: {:.1} Mbit/s", rate / 1e6);
    assert_eq!(r.receiver.recv_buffer, 256 * 1024);
    // A 10 Mbit/s path holds 125 KB + 64 KiB: the buffer stays within the
    // same few multiples of that, far below what the fast path got.
    let r = transfer(link(10_000_000, 64 << 10), loss_based(), 16 << 20);
    let small = r.receiver.recv_buffer as f64;
    assert!(
        small <= 6.0 * (125_000.0 + 65_536.0),
        "receive buffer {small}"
    );
    assert!(
        small * 4.0 < grown,
        "{small} vs {grown}: it follows the path"
    );
}

/// A queue deep enough to hold 64 times the BDP: plain slow start fills
/// it, the RTT climbs, and it overflows with a burst of drops. HyStart++
/// sees the RTT rise a round after the window passes the BDP and ends
/// slow start before any loss.
#[test]
fn hystart_exits_slow_start_on_an_rtt_rise_before_any_loss() {
    let link = LinkConfig {
        bandwidth_bps: Some(100_000_000),
        delay: Duration::from_millis(10),
        queue_bytes: 16 << 20,
        ..LinkConfig::default()
    };
    let r = transfer(link.clone(), loss_based(), 64 << 20);
    let c = &r.sender.counters;
    assert_eq!(c.hystart_exits, 1, "{c:?}");
    assert_eq!(c.retransmits, 0, "no loss at all: {c:?}");
    let plain = Config {
        hystart: false,
        ..loss_based()
    };
    let r = transfer(link, plain, 64 << 20);
    let c = &r.sender.counters;
    assert!(c.retransmits > 100, "slow start overflows the queue: {c:?}");
}

/// After an idle period the old cwnd says nothing about the network: the
/// first flight after five idle seconds is the initial window (RFC 5681
/// 4.1, halved per idle RTO as Linux does), not the hundreds of segments
/// cwnd had grown to.
#[test]
fn an_idle_connection_restarts_from_the_initial_window() {
    use xdptcp::tcp::{Connection, SeqNum, State};
    let a = Connection::connect(loss_based(), SeqNum(1));
    let b = Connection::listen(loss_based(), SeqNum(7));
    let mut p = common::Pair::new(a, b, Duration::from_millis(10));
    assert!(p.run(Duration::from_secs(2), |p| p.b.state()
        == State::Established));
    assert!(common::one_way(&mut p, 8 << 20, Duration::from_secs(30)));
    let big = p.a.snapshot().cwnd;
    assert!(big > 100 * 1448, "cwnd grew to {big}");
    // Every byte acknowledged, then five seconds with nothing to send (and
    // so no event to step through).
    assert!(p.run(Duration::from_secs(5), |p| p.a.send_queue() == 0));
    p.now += Duration::from_secs(5);
    let resume = p.now;
    assert!(common::one_way(&mut p, 4 << 20, Duration::from_secs(30)));
    let first_rtt = p
        .log
        .iter()
        .filter(|(at, from_a, t)| {
            *from_a
                && *at >= resume
                && *at < resume + Duration::from_millis(15)
                && t.payload_len > 0
        })
        .count();
    assert!(
        first_rtt <= 10,
        "{first_rtt} segments in the first RTT after idle"
    );
    assert_eq!(p.a.counters().idle_restarts, 1);
}

/// On a path of 100 us RTT (a LAN, a veth pair) the smoothed RTT must
/// read about that: the timestamp option counts milliseconds and read 0
/// there, so srtt sank to nanoseconds (741 ns measured through a router
/// namespace) and everything sized from it (pacing, the unsent bound)
/// went wrong. Segments are timed from their send time instead.
#[test]
fn the_smoothed_rtt_follows_a_sub_millisecond_path() {
    for cc in [Algorithm::Cubic, Algorithm::Bbr] {
        // No bandwidth limit, so no queue: the RTT is the delay's.
        let link = LinkConfig {
            delay: Duration::from_micros(50),
            ..LinkConfig::default()
        };
        let tcp = Config {
            congestion: cc,
            ..Config::default()
        };
        let r = transfer(link, tcp, 16 << 20);
        let srtt = r.sender.srtt.expect("measured");
        println!("{cc:?}: srtt {srtt:?}");
        assert!(
            (Duration::from_micros(90)..Duration::from_millis(1)).contains(&srtt),
            "{cc:?}: srtt {srtt:?} on a 100 us path"
        );
    }
}
