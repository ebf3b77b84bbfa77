//! The per-core API's read and close paths: two stacks on a simulated link
//! (lossy, reordering, as the input says), a client and a server handler
//! run by `Dispatch` as a core would, each taking its next action from the
//! input: consume part of what arrived or nothing, send, close, abort.
//!
//! Checked: every byte a handler is shown is the byte the other side sent
//! at that offset (a pattern by offset); `on_eof` comes once, after every
//! byte before it was consumed; nothing is shown after `on_closed`; a
//! connection closed normally is finished only after its data and its
//! EOF were handed over.

use super::super::input::Input;
use std::net::SocketAddrV4;
use std::time::Duration;
use xdptcp::api::percore::{Ctx, Dispatch, Handler, Stream};
use xdptcp::device::sim::LinkConfig;
use xdptcp::iface::Handle;
use xdptcp::simulation::{World, ADDR_B};
use xdptcp::tcp::{Config, ConnError};

const PORT: u16 = 9;
const MAX_LOOPS: usize = 4_000;

fn pattern(k: u64) -> u8 {
    super::live::pattern(k ^ 0x5a5a)
}

/// One side: its actions, what it sent and what it was shown.
struct Side {
    actions: Vec<u8>,
    next: usize,
    client: bool,
    sent: u64,
    read: u64,
    eof: bool,
    closed: bool,
    aborted: bool,
    finished: bool,
}

impl Side {
    fn new(actions: &[u8], client: bool) -> Self {
        Side {
            actions: actions.to_vec(),
            next: 0,
            client,
            sent: 0,
            read: 0,
            eof: false,
            closed: false,
            aborted: false,
            finished: false,
        }
    }

    fn action(&mut self) -> u8 {
        let a = self.actions.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        a
    }

    fn send(&mut self, s: &mut Stream<'_>, n: usize) {
        let data: Vec<u8> = (self.sent..self.sent + n as u64).map(pattern).collect();
        self.sent += s.send(&data) as u64;
    }

    /// What to do with a connection given to a callback.
    fn act(&mut self, s: &mut Stream<'_>) {
        assert!(!self.finished, "a callback after on_closed");
        for (i, &x) in s.data().flatten().enumerate() {
            assert_eq!(
                x,
                pattern(self.read + i as u64),
                "byte {} altered",
                self.read + i as u64
            );
        }
        let shown = s.data_len();
        match self.action() % 8 {
            // Read some, all or nothing of what is there.
            0 | 1 => {
                let n = shown.min(usize::from(self.action()) * 64);
                s.consume(n);
                self.read += n as u64;
            }
            2 | 3 => {
                s.consume(shown);
                self.read += shown as u64;
            }
            4 => {}
            5 => {
                let n = usize::from(self.action()) * 97;
                if !self.closed {
                    self.send(s, n);
                }
            }
            6 => {
                s.close();
                self.closed = true;
            }
            _ => {
                if self.action().is_multiple_of(8) {
                    s.abort();
                    (self.closed, self.aborted) = (true, true);
                }
            }
        }
    }
}

impl Handler for Side {
    fn on_start(&mut self, cx: &mut Ctx<'_>) {
        if self.client {
            let _ = cx.connect(SocketAddrV4::new(ADDR_B, PORT));
        } else {
            let _ = cx.listen(PORT, 4);
        }
    }
    fn on_connected(&mut self, s: &mut Stream<'_>) {
        self.act(s);
    }
    fn on_accept(&mut self, s: &mut Stream<'_>) {
        self.act(s);
    }
    fn on_readable(&mut self, s: &mut Stream<'_>) {
        self.act(s);
    }
    fn on_writable(&mut self, s: &mut Stream<'_>) {
        self.act(s);
    }
    fn on_eof(&mut self, s: &mut Stream<'_>) {
        assert!(!self.eof, "on_eof twice");
        assert_eq!(s.data_len(), 0, "on_eof before every byte was consumed");
        self.eof = true;
        self.act(s);
    }
    fn on_closed(&mut self, _id: Handle, error: Option<ConnError>) {
        assert!(!self.finished, "on_closed twice");
        if error.is_none() && !self.aborted {
            // Closed normally (both FINs): the peer's FIN, and every byte
            // before it, were handed over first.
            assert!(self.eof, "finished before its EOF was handed over");
        }
        self.finished = true;
    }
}

pub fn run(data: &[u8]) {
    run_reached(data);
}

/// What an input reached: bytes handed over and consumed on both sides,
/// EOFs handed over, connections finished.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    pub read: u64,
    pub eofs: u32,
    pub finished: u32,
}

/// `run`, saying what the input reached. Input: byte 0 picks the link's
/// impairment and seed; then the client's and the server's actions,
/// split in the middle.
pub fn run_reached(data: &[u8]) -> Reached {
    let mut input = Input::new(data);
    let link_choice = input.u8();
    let rest = input.take(usize::MAX);
    let (ca, sa) = rest.split_at(rest.len() / 2);
    let bad = f64::from(link_choice % 4) * 0.02;
    let link = LinkConfig {
        loss: bad,
        reorder: bad,
        duplicate: bad / 2.0,
        ..LinkConfig::default()
    };
    let cfg = Config {
        send_buffer: 16 * 1024,
        recv_buffer: 16 * 1024,
        autotune: link_choice & 0x10 != 0,
        buffer_budget: None,
        ..Config::default()
    };
    let mut w = World::new(link, u64::from(link_choice), cfg.clone(), cfg);
    let mut client = Dispatch::new(Side::new(ca, true));
    let mut server = Dispatch::new(Side::new(sa, false));
    let end = w.now + Duration::from_secs(30);
    for _ in 0..MAX_LOOPS {
        w.poll();
        let acted = w.poll_apps(&mut client, &mut server);
        let out_of_actions = client.handler.next > client.handler.actions.len()
            && server.handler.next > server.handler.actions.len();
        if out_of_actions || (!acted && (!w.advance() || w.now > end)) {
            break;
        }
    }
    let (c, s) = (&client.handler, &server.handler);
    Reached {
        read: c.read + s.read,
        eofs: u32::from(c.eof) + u32::from(s.eof),
        finished: u32::from(c.finished) + u32::from(s.finished),
    }
}
