//! The per-core Handler API on the simulated network (no root needed):
//! two stacks, a client Handler on one and an echo Handler on the other,
//! driven by `Dispatch` exactly as a runtime core would drive them.

use std::net::SocketAddrV4;
use std::time::Duration;
use xdptcp::api::percore::{Ctx, Dispatch, Handler, Stream};
use xdptcp::device::sim::LinkConfig;
use xdptcp::iface::Handle;
use xdptcp::runtime::{CoreApp, CoreContext};
use xdptcp::simulation::{World, ADDR_B};
use xdptcp::tcp::{Config, ConnError, UnsentLimit};

const TOTAL: usize = 3 << 20;

/// Echoes in place (receive ring to send ring), closes when the peer does.
#[derive(Default)]
struct Echo {
    events: Vec<&'static str>,
}

impl Handler for Echo {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        cx.listen(7, 4).unwrap();
    }
    fn on_accept(&mut self, _s: &mut Stream<'_>) {
        self.events.push("accept");
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        s.echo();
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        self.events.push("eof");
        s.close();
    }
    fn on_closed(&mut self, _: Handle, e: Option<ConnError>) {
        assert!(e.is_none(), "{e:?}");
        self.events.push("closed");
    }
}

/// Sends TOTAL bytes of a pattern, checks every byte that comes back.
#[derive(Default)]
struct Client {
    sent: usize,
    back: usize,
    events: Vec<&'static str>,
    writable_calls: usize,
}

fn byte(i: usize) -> u8 {
    (i * 7 + i / 1000) as u8
}

impl Client {
    fn push(&mut self, s: &mut Stream<'_>) {
        while self.sent < TOTAL {
            let chunk: Vec<u8> = (self.sent..TOTAL.min(self.sent + 16384))
                .map(byte)
                .collect();
            let n = s.send(&chunk);
            self.sent += n;
            if n < chunk.len() {
                return;
            }
        }
        s.close();
    }
}

impl Handler for Client {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        cx.connect(SocketAddrV4::new(ADDR_B, 7)).unwrap();
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        self.events.push("connected");
        self.push(s);
    }
    fn on_writable(&mut self, s: &mut Stream<'_>) {
        self.writable_calls += 1;
        self.push(s);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        for (k, &x) in s.data().flatten().enumerate() {
            assert_eq!(x, byte(self.back + k), "echoed byte {}", self.back + k);
        }
        let n = s.data_len();
        self.back += n;
        s.consume(n);
    }
    fn on_eof(&mut self, _s: &mut Stream<'_>) {
        self.events.push("eof");
    }
    fn on_closed(&mut self, _: Handle, e: Option<ConnError>) {
        assert!(e.is_none(), "{e:?}");
        self.events.push("closed");
    }
    fn done(&self) -> bool {
        self.events.last() == Some(&"closed")
    }
}

#[test]
fn handlers_echo_megabytes_through_small_buffers() {
    // Small buffers: sends come up short and on_writable must resume them.
    let small = Config {
        send_buffer: 32 * 1024,
        recv_buffer: 32 * 1024,
        autotune: false,
        ..Config::default()
    };
    let mut w = World::new(LinkConfig::default(), 3, small.clone(), small);
    let mut client = Dispatch::new(Client::default());
    let mut server = Dispatch::new(Echo::default());
    let limit = w.now + Duration::from_secs(120);
    while !client.done() {
        w.poll();
        if !w.poll_apps(&mut client, &mut server) {
            assert!(
                w.advance() && w.now < limit,
                "stuck: {} of {TOTAL} back",
                client.handler.back
            );
        }
    }
    let c = &client.handler;
    assert_eq!(c.back, TOTAL);
    assert_eq!(c.events, ["connected", "eof", "closed"]);
    assert!(
        c.writable_calls > 10,
        "client resumed {} times",
        c.writable_calls
    );
    // The echo needs no on_writable: on_readable comes again while
    // unconsumed bytes remain, and echoes what fits each time.
    // The server's close is acknowledged a moment after the client is done.
    w.run_until(Duration::from_secs(5), |w| {
        server.poll(&mut CoreContext {
            core: 0,
            cores: 1,
            now: w.now,
            iface: &mut w.b.iface,
        });
        server.handler.events.len() == 3
    });
    assert_eq!(server.handler.events, ["accept", "eof", "closed"]);
    assert_eq!(client.connections() + server.connections(), 0);
}

/// Opens many connections, then lets them sit; pokes one on request.
#[derive(Default)]
struct Many {
    open: Vec<Handle>,
    poke: bool,
}

impl Handler for Many {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        for _ in 0..200 {
            cx.connect(SocketAddrV4::new(ADDR_B, 7)).unwrap();
        }
    }
    fn on_poll(&mut self, cx: &mut Ctx<'_>) -> bool {
        if std::mem::take(&mut self.poke) {
            let h = self.open[0];
            cx.stream(h).unwrap().send(b"ping");
        }
        false
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        self.open.push(s.id());
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let n = s.data_len();
        s.consume(n);
    }
}

/// Accepts many, reads what comes.
#[derive(Default)]
struct Server;

impl Handler for Server {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        cx.listen(7, 512).unwrap();
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        let n = s.data_len();
        s.consume(n);
    }
}

#[test]
fn idle_connections_cost_no_visits() {
    let mut w = World::new(
        LinkConfig::default(),
        5,
        Config::default(),
        Config::default(),
    );
    let mut client = Dispatch::new(Many::default());
    let mut server = Dispatch::new(Server);
    let step = |w: &mut World, client: &mut Dispatch<Many>, server: &mut Dispatch<Server>| {
        w.poll();
        w.poll_apps(client, server);
        w.advance();
    };
    for _ in 0..2000 {
        step(&mut w, &mut client, &mut server);
        if client.handler.open.len() == 200 && w.now.as_millis() > 2_000 {
            break;
        }
    }
    assert_eq!(client.handler.open.len(), 200, "all connected");
    assert_eq!((client.connections(), server.connections()), (200, 200));
    // Quiet: nothing arrives, nothing is due; a loop visits nobody.
    w.poll_apps(&mut client, &mut server);
    assert_eq!(
        (client.visited_last_loop(), server.visited_last_loop()),
        (0, 0)
    );
    // One connection used: only it is visited, on each side.
    client.handler.poke = true;
    let mut most = (0, 0);
    for _ in 0..20 {
        step(&mut w, &mut client, &mut server);
        most.0 = most.0.max(client.visited_last_loop());
        most.1 = most.1.max(server.visited_last_loop());
    }
    assert_eq!(most, (1, 1), "visits per loop with one busy connection");
}

/// Closes its side at once, then reads nothing until told to: a reader
/// that takes its data in one batch after the peer is done.
#[derive(Default)]
struct BatchReader {
    reading: bool,
    got: Vec<u8>,
    events: Vec<&'static str>,
}

impl Handler for BatchReader {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        cx.listen(9, 4).unwrap();
    }
    fn on_accept(&mut self, s: &mut Stream<'_>) {
        self.events.push("accept");
        s.close();
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        if !self.reading {
            return;
        }
        for part in s.data() {
            self.got.extend_from_slice(part);
        }
        let n = s.data_len();
        s.consume(n);
    }
    fn on_eof(&mut self, _s: &mut Stream<'_>) {
        self.events.push("eof");
    }
    fn on_closed(&mut self, _: Handle, e: Option<ConnError>) {
        assert!(e.is_none(), "{e:?}");
        self.events.push("closed");
    }
}

/// Sends `BATCH` bytes once connected and closes when the peer has.
#[derive(Default)]
struct BatchWriter {
    closed: bool,
}

const BATCH: usize = 100_000;

impl Handler for BatchWriter {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        cx.connect(SocketAddrV4::new(ADDR_B, 9)).unwrap();
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        let data: Vec<u8> = (0..BATCH).map(byte).collect();
        s.set_unsent_limit(UnsentLimit::Off);
        assert_eq!(s.send(&data), BATCH, "fits the send buffer");
    }
    fn on_readable(&mut self, _s: &mut Stream<'_>) {}
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        s.close();
    }
    fn on_closed(&mut self, _: Handle, e: Option<ConnError>) {
        assert!(e.is_none(), "{e:?}");
        self.closed = true;
    }
    fn done(&self) -> bool {
        self.closed
    }
}

#[test]
fn a_connection_in_time_wait_hands_over_its_unread_data_and_eof() {
    let mut w = World::new(
        LinkConfig::default(),
        7,
        Config::default(),
        Config::default(),
    );
    let mut client = Dispatch::new(BatchWriter::default());
    let mut server = Dispatch::new(BatchReader::default());
    let loop_once =
        |w: &mut World, client: &mut Dispatch<BatchWriter>, server: &mut Dispatch<BatchReader>| {
            w.poll();
            w.poll_apps(client, server);
            w.advance();
        };
    // The server's side reaches TIME-WAIT with every byte unread.
    for _ in 0..10_000 {
        loop_once(&mut w, &mut client, &mut server);
        if client.done() {
            break;
        }
    }
    assert!(client.done(), "the writer finished");
    server.handler.reading = true;
    for _ in 0..1_000 {
        loop_once(&mut w, &mut client, &mut server);
        if server.handler.events.len() == 3 {
            break;
        }
    }
    let h = &server.handler;
    assert_eq!(h.got.len(), BATCH, "every byte handed over");
    assert!(h.got.iter().enumerate().all(|(i, &x)| x == byte(i)));
    assert_eq!(h.events, ["accept", "eof", "closed"]);
}
