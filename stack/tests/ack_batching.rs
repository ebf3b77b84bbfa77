//! How often the receiver acknowledges, seen frame by frame through a
//! counting device around the simulator's port: in bulk, at most one ACK
//! per received batch (the frames one poll takes from the device), as the
//! kernel does behind GRO; out-of-order data is acknowledged at once,
//! segment by segment, so the sender can count duplicates.

use std::net::SocketAddrV4;
use std::time::Duration;
use xdptcp::device::sim::{LinkConfig, SimPort};
use xdptcp::device::Device;
use xdptcp::iface::{Handle, RX_BUDGET};
use xdptcp::simulation::{DataSource, World, ADDR_B};
use xdptcp::tcp::congestion::Algorithm;
use xdptcp::tcp::{Config, State, TcpError};
use xdptcp::time::Instant;

/// Counts, over one poll, TCP frames with payload received and bare ACKs
/// (no payload, no SYN, FIN or RST) sent.
struct Tally<'a> {
    port: &'a mut SimPort,
    data_in: usize,
    acks_out: usize,
}

/// (payload length, flags) of a TCP-in-IPv4-in-Ethernet frame.
fn tcp_of(frame: &[u8]) -> Option<(usize, u8)> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let tcp = &ip[ihl..];
    let doff = usize::from(tcp[12] >> 4) * 4;
    Some((total - ihl - doff, tcp[13]))
}

impl Device for Tally<'_> {
    fn mtu(&self) -> usize {
        self.port.mtu()
    }
    fn receive(&mut self, now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
        let data_in = &mut self.data_in;
        self.port.receive(now, budget, &mut |f| {
            if tcp_of(f).is_some_and(|(len, _)| len > 0) {
                *data_in += 1;
            }
            rx(f)
        })
    }
    fn transmit(
        &mut self,
        now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        let acks_out = &mut self.acks_out;
        self.port.transmit(now, budget, &mut |buf| {
            let n = tx(buf)?;
            // SYN 0x02, RST 0x04, FIN 0x01; ACK 0x10.
            if tcp_of(&buf[..n]).is_some_and(|(len, f)| len == 0 && f & 0x07 == 0 && f & 0x10 != 0)
            {
                *acks_out += 1;
            }
            Some(n)
        })
    }
    fn next_arrival(&self) -> Option<Instant> {
        self.port.next_arrival()
    }
}

/// What the receiver did in one poll.
struct Poll {
    data_in: usize,
    acks_out: usize,
    out_of_order: u64,
}

/// Sends `bytes` from A to B over `link`, checking every byte, and
/// returns the receiver's polls that moved a frame.
fn transfer(link: LinkConfig, bytes: u64, tcp: Config) -> Vec<Poll> {
    let mut world = World::new(link, 3, tcp.clone(), tcp);
    world.b.iface.listen(80, None, 4).unwrap();
    let client = world
        .a
        .iface
        .connect(SocketAddrV4::new(ADDR_B, 80), None, world.now)
        .unwrap();
    let (mut source, mut expect) = (DataSource::new(9, bytes), DataSource::new(9, bytes));
    let mut server: Option<Handle> = None;
    let (mut chunk, mut want) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut received, mut closed) = (0u64, false);
    let mut polls = Vec::new();
    let end = Instant::ZERO + Duration::from_secs(120);
    loop {
        world.a.iface.poll(world.now, &mut world.a.port);
        let ooo = |w: &mut World, s: Option<Handle>| {
            s.and_then(|h| w.b.iface.tcp(h))
                .map_or(0, |c| c.snapshot().counters.out_of_order_segments)
        };
        let before = ooo(&mut world, server);
        let mut tally = Tally {
            port: &mut world.b.port,
            data_in: 0,
            acks_out: 0,
        };
        world.b.iface.poll(world.now, &mut tally);
        let (data_in, acks_out) = (tally.data_in, tally.acks_out);
        let out_of_order = ooo(&mut world, server) - before;
        if data_in + acks_out > 0 {
            polls.push(Poll {
                data_in,
                acks_out,
                out_of_order,
            });
        }
        let mut acted = false;
        let c = world.a.iface.tcp(client).unwrap();
        while !closed && c.send_capacity() > 0 {
            let room = c.send_capacity().min(64 * 1024);
            let n = source.fill(&mut chunk[..room]);
            if n == 0 {
                c.close();
                closed = true;
                break;
            }
            assert_eq!(c.send(&chunk[..n]).unwrap(), n);
            acted = true;
        }
        server = server.or_else(|| world.b.iface.accept(80).unwrap());
        if let Some(c) = server.and_then(|h| world.b.iface.tcp(h)) {
            loop {
                match c.recv(&mut chunk) {
                    Ok(0) => return polls_checked(polls, received, bytes),
                    Ok(n) => {
                        assert_eq!(expect.fill(&mut want[..n]), n);
                        assert!(chunk[..n] == want[..n], "byte-exact at {received}");
                        received += n as u64;
                        acted = true;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("receiver: {e}"),
                }
            }
            assert_ne!(c.state(), State::Closed, "the receiver closed early");
        }
        if !acted {
            assert!(world.advance() && world.now < end, "the transfer stalled");
        }
    }
}

fn polls_checked(polls: Vec<Poll>, received: u64, bytes: u64) -> Vec<Poll> {
    assert_eq!(received, bytes, "every byte arrived");
    polls
}

#[test]
fn bulk_is_acknowledged_at_most_once_per_received_batch() {
    // No bandwidth limit: a flight arrives in one instant, as a batch.
    for cc in [Algorithm::Cubic, Algorithm::Bbr] {
        let tcp = Config {
            congestion: cc,
            ..Config::default()
        };
        let polls = transfer(LinkConfig::default(), 16 << 20, tcp);
        let data: usize = polls.iter().map(|p| p.data_in).sum();
        let acks: usize = polls.iter().map(|p| p.acks_out).sum();
        let batches = polls.iter().filter(|p| p.data_in > 0).count();
        let biggest = polls.iter().map(|p| p.data_in).max().unwrap();
        assert!(
            biggest <= RX_BUDGET,
            "one receive phase takes {biggest} frames"
        );
        println!(
            "{cc:?}: {data} data frames in {batches} batches (largest {biggest}), {acks} ACKs"
        );
        for (i, p) in polls.iter().enumerate() {
            assert!(
                p.acks_out <= 1,
                "{cc:?}, poll {i}: {} ACKs for a batch of {} data frames",
                p.acks_out,
                p.data_in
            );
        }
        // Paced or not, the sender's frames arrive in batches: BBR's
        // pacing lets a quantum go at once, then waits its time (as
        // Linux's paced TSO bursts do), so the receiver's ACKs stay few.
        assert!(
            biggest >= 16,
            "{cc:?}: the link delivers batches ({biggest} at most)"
        );
        assert!(
            data >= batches * 8,
            "{cc:?}: {data} data frames came in {batches} batches"
        );
        assert!(
            acks * 8 <= data,
            "{cc:?}: {acks} ACKs for {data} data frames"
        );
    }
}

#[test]
fn out_of_order_data_is_acknowledged_at_once_segment_by_segment() {
    let link = LinkConfig {
        loss: 0.01,
        ..LinkConfig::default()
    };
    let polls = transfer(link, 8 << 20, Config::default());
    let ooo: u64 = polls.iter().map(|p| p.out_of_order).sum();
    assert!(ooo > 20, "losses made out-of-order arrivals ({ooo})");
    for (i, p) in polls.iter().enumerate() {
        assert!(
            p.acks_out as u64 >= p.out_of_order,
            "poll {i}: {} out-of-order segments drew {} ACKs",
            p.out_of_order,
            p.acks_out
        );
    }
}
