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
