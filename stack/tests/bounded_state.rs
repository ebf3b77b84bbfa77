//! What a connection holds, and for how long: buffers, buffer growth and
//! records are given back when the connection no longer needs them, and
//! stay bounded whatever the peer does.

mod common;

use common::{one_way, pair};
use std::sync::Arc;
use std::time::Duration;
use xdptcp::tcp::autotune::BufferBudget;
use xdptcp::tcp::{Config, State};

#[test]
fn buffer_growth_returns_to_the_budget_when_the_connection_stops_needing_it() {
    let budget = Arc::new(BufferBudget::new(1 << 30));
    let cfg = Config {
        buffer_budget: Some(budget.clone()),
        ..Config::default()
    };
    let mut p = pair(cfg.clone(), 1000, cfg, 5000, 20);
    assert!(one_way(&mut p, 16 << 20, Duration::from_secs(60)));
    let grown = budget.used();
    assert!(grown > 0, "a 40 ms path grows the buffers");
    // a closes first and ends in TIME-WAIT; b ends in CLOSED. Both still
    // exist (TIME-WAIT lasts a minute), neither needs its buffers.
    p.a.close();
    assert!(p.run(Duration::from_secs(5), |p| p.b.at_eof()));
    p.b.close();
    assert!(p.run(Duration::from_secs(5), |p| {
        p.a.state() == State::TimeWait && p.b.state() == State::Closed
    }));
    assert_eq!(
        budget.used(),
        0,
        "growth still charged ({grown} bytes before the close)"
    );
}

/// An orphan (closed and released by its application) whose peer went
/// silent with data unacknowledged gives up after `orphan_retries`
/// timeouts, as Linux's tcp_orphan_retries, not the full `max_retries`,
/// in FIN-WAIT-1 (here), CLOSING and LAST-ACK alike.
#[test]
fn an_orphan_with_data_in_flight_gives_up_after_orphan_retries() {
    let cfg = Config::default();
    let mut p = pair(cfg.clone(), 1000, cfg.clone(), 5000, 5);
    assert!(one_way(&mut p, 64 * 1024, Duration::from_secs(10)));
    // The peer vanishes; a queues more, closes and lets go.
    p.drop = Box::new(|_, _| true);
    p.a.send(&[7u8; 50_000]).unwrap();
    p.a.close();
    p.a.orphan();
    assert_eq!(p.a.state(), State::FinWait1);
    let start = p.now;
    assert!(p.run(Duration::from_secs(3600), |p| p.a.state() == State::Closed));
    let c = p.a.counters();
    assert_eq!(
        c.rto_expirations,
        u64::from(cfg.orphan_retries),
        "{:?} after {:?}",
        p.a.error(),
        p.now - start
    );
    assert!(p.a.buffer_capacity() == 0, "its buffers are gone");
}
