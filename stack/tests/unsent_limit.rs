//! The bound on unsent bytes (TCP_NOTSENT_LOWAT; `tcp/unsent.rs`) on the
//! simulated network, through the per-core API as a runtime core drives
//! it: a bulk sender's queue of unsent bytes stays under the limit while
//! its goodput stays that of an unbounded one, and `on_writable` follows
//! the limit (it comes as soon as sending makes room, not only on ACKs).

use std::net::SocketAddrV4;
use std::time::Duration;
use xdptcp::api::percore::{Ctx, Dispatch, Handler, Stream};
use xdptcp::device::sim::LinkConfig;
use xdptcp::iface::Handle;
use xdptcp::simulation::{World, ADDR_B};
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::{Config, ConnError, UnsentLimit};

const CHUNK: usize = 64 * 1024;

/// Sends `total` bytes in 64 KiB writes, as fast as it is let.
struct Sender {
    total: usize,
    limit: UnsentLimit,
    sent: usize,
    id: Option<Handle>,
    /// Sends that left more unsent than the limit allowed at that moment.
    over_limit: usize,
    writable_calls: usize,
    closed: bool,
}

impl Sender {
    fn new(total: usize, limit: UnsentLimit) -> Self {
        Sender {
            total,
            limit,
            sent: 0,
            id: None,
            over_limit: 0,
            writable_calls: 0,
            closed: false,
        }
    }

    fn push(&mut self, s: &mut Stream<'_>) {
        let chunk = [0x5au8; CHUNK];
        while self.sent < self.total {
            let want = CHUNK.min(self.total - self.sent);
            let n = s.send(&chunk[..want]);
            self.sent += n;
            if n > 0 && s.unsent() > s.unsent_limit() {
                self.over_limit += 1;
            }
            if n < want {
                return;
            }
        }
        s.close();
    }
}

impl Handler for Sender {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        cx.connect(SocketAddrV4::new(ADDR_B, 9)).unwrap();
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        self.id = Some(s.id());
        s.set_unsent_limit(self.limit);
        s.set_nodelay(true);
        self.push(s);
    }
    fn on_writable(&mut self, s: &mut Stream<'_>) {
        self.writable_calls += 1;
        self.push(s);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let n = s.data_len();
        s.consume(n);
    }
    fn on_closed(&mut self, _: Handle, e: Option<ConnError>) {
        assert!(e.is_none(), "{e:?}");
        self.closed = true;
    }
    fn done(&self) -> bool {
        self.closed
    }
}

/// Reads everything, closes at the end.
#[derive(Default)]
struct Sink {
    got: usize,
}

impl Handler for Sink {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        cx.listen(9, 4).unwrap();
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let n = s.data_len();
        self.got += n;
        s.consume(n);
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        s.close();
    }
}

struct Run {
    mbit: f64,
    /// The most unsent bytes seen at any step, and the largest limit.
    max_unsent: usize,
    max_limit: usize,
    over_limit: usize,
}

fn link(bps: u64, rtt_ms: u64) -> LinkConfig {
    LinkConfig {
        bandwidth_bps: Some(bps),
        delay: Duration::from_millis(rtt_ms / 2),
        queue_bytes: 4 << 20,
        ..LinkConfig::default()
    }
}

/// One bulk transfer from A to B; the sender's unsent bytes are read
/// after every step of both stacks.
fn bulk(limit: UnsentLimit, cc: Algorithm, link: LinkConfig, total: usize) -> Run {
    let cfg = Config {
        congestion: cc,
        ..Config::default()
    };
    let mut w = World::new(link, 5, cfg.clone(), cfg);
    let mut tx = Dispatch::new(Sender::new(total, limit));
    let mut rx = Dispatch::new(Sink::default());
    let (mut max_unsent, mut max_limit) = (0, 0);
    let (mut first, mut last) = (None, w.now);
    let end = w.now + Duration::from_secs(300);
    while rx.handler.got < total {
        w.poll();
        let acted = w.poll_apps(&mut tx, &mut rx);
        if let Some(c) = tx.handler.id.and_then(|h| w.a.iface.tcp(h)) {
            max_unsent = max_unsent.max(c.unsent());
            max_limit = max_limit.max(c.unsent_limit());
            first.get_or_insert(w.now);
        }
        last = w.now;
        if !acted {
            assert!(
                w.advance() && w.now < end,
                "stuck at {} of {total}",
                rx.handler.got
            );
        }
    }
    let secs = last
        .saturating_since(first.expect("connected"))
        .as_secs_f64();
    Run {
        mbit: total as f64 * 8.0 / secs / 1e6,
        max_unsent,
        max_limit,
        over_limit: tx.handler.over_limit,
    }
}

/// 1 Gbit/s, 20 ms: a path whose BDP (2.5 MB) the buffers grow to. With
/// no bound the autotuned send buffer (twice cwnd) fills with megabytes
/// the writer queued ahead, each of them milliseconds of wait for what is
/// written next; with the path-derived bound (and with a small fixed one)
/// the queue stays under it and the goodput is the same within 10 %.
#[test]
fn a_bulk_senders_unsent_bytes_stay_under_the_limit_at_the_same_goodput() {
    for cc in [Algorithm::Bbr, Algorithm::Cubic] {
        let path = link(1_000_000_000, 20);
        let total = 96 << 20;
        let off = bulk(UnsentLimit::Off, cc, path.clone(), total);
        let auto = bulk(UnsentLimit::Auto, cc, path.clone(), total);
        let small = bulk(UnsentLimit::Bytes(32 << 10), cc, path, total);
        println!(
            "{cc:?}: off {:.0} Mbit/s, {} KiB unsent at most; auto {:.0} Mbit/s, {} KiB (limit up to {} KiB); 32 KiB {:.0} Mbit/s, {} KiB",
            off.mbit,
            off.max_unsent >> 10,
            auto.mbit,
            auto.max_unsent >> 10,
            auto.max_limit >> 10,
            small.mbit,
            small.max_unsent >> 10
        );
        assert!(
            off.max_unsent > 1 << 20,
            "{cc:?}: without a bound the writer queues megabytes (saw {})",
            off.max_unsent
        );
        for (name, r) in [("auto", &auto), ("32 KiB", &small)] {
            assert_eq!(r.over_limit, 0, "{cc:?} {name}: a send went past the limit");
            assert!(
                r.max_unsent <= r.max_limit,
                "{cc:?} {name}: {} unsent, limit {}",
                r.max_unsent,
                r.max_limit
            );
            assert!(
                r.max_unsent * 4 < off.max_unsent,
                "{cc:?} {name}: {} unsent vs {} unbounded",
                r.max_unsent,
                off.max_unsent
            );
            assert!(
                r.mbit >= 0.9 * off.mbit,
                "{cc:?} {name}: {:.0} Mbit/s against {:.0} unbounded",
                r.mbit,
                off.mbit
            );
        }
        assert_eq!(small.max_limit, 32 << 10);
    }
}

/// The writable signal follows the limit, not only ACKs: with a bound
/// below the initial window (4 KiB against 10 segments) the writer is
/// turned away after each 4 KiB, and every time sending makes room it is
/// called again at once, so the whole initial window leaves in the first
/// instant instead of 4 KiB per round trip.
#[test]
fn on_writable_comes_as_soon_as_sending_makes_room() {
    let cfg = Config {
        congestion: Algorithm::Cubic,
        ..Config::default()
    };
    let mut w = World::new(link(1_000_000_000, 100), 5, cfg.clone(), cfg);
    let mut tx = Dispatch::new(Sender::new(1 << 20, UnsentLimit::Bytes(4096)));
    let mut rx = Dispatch::new(Sink::default());
    // Up to the first moment data is in flight, and everything that
    // happens at that same instant.
    let mut started = None;
    loop {
        w.poll();
        let acted = w.poll_apps(&mut tx, &mut rx);
        if started.is_none() && tx.handler.sent > 0 {
            started = Some(w.now);
        }
        if !acted {
            if started.is_some() {
                break;
            }
            assert!(w.advance() && w.now.as_nanos() < 10_000_000_000);
        }
    }
    let c = w.a.iface.tcp(tx.handler.id.unwrap()).unwrap();
    let in_flight = tx.handler.sent - c.unsent();
    println!(
        "first instant: {} bytes written in {} on_writable calls, {in_flight} in flight, {} unsent",
        tx.handler.sent,
        tx.handler.writable_calls,
        c.unsent()
    );
    assert!(
        in_flight >= 9 * 1448,
        "only {in_flight} bytes of the initial window left"
    );
    assert!(tx.handler.writable_calls >= 3);
    assert!(c.unsent() <= 4096);
    // And the transfer as a whole completes with the bound in place.
    let r = bulk(
        UnsentLimit::Bytes(4096),
        Algorithm::Cubic,
        link(100_000_000, 10),
        8 << 20,
    );
    assert_eq!(r.over_limit, 0);
    assert!(r.mbit > 80.0, "{:.1} Mbit/s with a 4 KiB bound", r.mbit);
}
