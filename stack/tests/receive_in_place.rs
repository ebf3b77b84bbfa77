//! In-order payload is read where it arrived: the receiver keeps the frame
//! (the simulator's port lends frames of a pool, as AF_XDP lends UMEM)
//! instead of copying it into the receive ring, and the frame goes back
//! to the device once the application has read it. A slow reader must not
//! take more frames than the device's budget (past it, payload is copied),
//! so the device always has frames to receive into; every frame comes
//! home once everything is read, and every byte arrives in order.

use std::net::SocketAddrV4;
use std::time::Duration;
use xdptcp::device::sim::LinkConfig;
use xdptcp::iface::Handle;
use xdptcp::simulation::{DataSource, World, ADDR_B};
use xdptcp::tcp::{Config, State, TcpError};
use xdptcp::time::Instant;

/// What the receiving side saw.
struct Seen {
    /// Most frames kept at once, and the device's budget.
    most_kept: usize,
    budget: usize,
    /// Frames still kept once everything was read and one more poll ran.
    kept_at_end: usize,
    in_place: u64,
    received: u64,
}

/// Sends `bytes` from A to B; B reads at most `read_per_step` bytes per
/// millisecond of virtual time (a slow reader when small). Checks every byte.
fn transfer(link: LinkConfig, bytes: u64, read_per_step: usize, recv_buffer: usize) -> Seen {
    let tcp = Config::default();
    let tcp_b = Config {
        recv_buffer,
        ..tcp.clone()
    };
    let mut world = World::new(link, 5, tcp, tcp_b);
    world.b.iface.listen(80, None, 4).unwrap();
    let client = world
        .a
        .iface
        .connect(SocketAddrV4::new(ADDR_B, 80), None, world.now)
        .unwrap();
    let (mut source, mut expect) = (DataSource::new(3, bytes), DataSource::new(3, bytes));
    let mut server: Option<Handle> = None;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let (mut received, mut closed, mut most_kept) = (0u64, false, 0usize);
    let mut may_read = read_per_step;
    let end = Instant::ZERO + Duration::from_secs(300);
    loop {
        world.a.iface.poll(world.now, &mut world.a.port);
        world.b.iface.poll(world.now, &mut world.b.port);
        most_kept = most_kept.max(world.b.port.kept_frames());
        let mut acted = false;
        let c = world.a.iface.tcp(client).unwrap();
        while !closed && c.send_capacity() > 0 {
            let room = c.send_capacity().min(chunk.len());
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
            // A `recv` into nothing would say end of stream: this step's
            // reading is done.
            let buf_len = may_read.min(chunk.len());
            match c.recv(&mut chunk[..buf_len]) {
                _ if buf_len == 0 => {}
                Ok(0) => {
                    let in_place = c.snapshot().counters.bytes_received_in_place;
                    world.b.iface.poll(world.now, &mut world.b.port);
                    return Seen {
                        most_kept,
                        budget: world.b.port.keep_budget(),
                        kept_at_end: world.b.port.kept_frames(),
                        in_place,
                        received,
                    };
                }
                Ok(n) => {
                    may_read -= n;
                    assert_eq!(expect.fill(&mut want[..n]), n);
                    assert!(chunk[..n] == want[..n], "byte-exact at {received}");
                    received += n as u64;
                    acted = true;
                }
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("receiver: {e}"),
            }
            assert_ne!(c.state(), State::Closed, "the receiver closed early");
        }
        if !acted {
            // On to the next event, or the reader's next millisecond.
            let tick = world.now + Duration::from_millis(1);
            world.now = world
                .next_event()
                .map_or(tick, |t| t.min(tick))
                .max(world.now);
            assert!(world.now < end, "the transfer stalled");
            may_read = read_per_step;
        }
    }
}

#[test]
fn a_fast_reader_reads_nearly_every_byte_in_place() {
    let bytes = 32 << 20;
    let s = transfer(
        LinkConfig::default(),
        bytes,
        64 * 1024,
        Config::default().recv_buffer,
    );
    println!(
        "{} of {} bytes read in place; at most {} frames kept (budget {})",
        s.in_place, s.received, s.most_kept, s.budget
    );
    assert_eq!(s.received, bytes);
    assert!(
        s.in_place * 10 >= bytes * 9,
        "only {} of {bytes} bytes read in place",
        s.in_place
    );
    assert!(s.most_kept <= s.budget);
    assert_eq!(s.kept_at_end, 0, "every kept frame went back to the device");
}

#[test]
fn a_slow_reader_holds_no_more_than_the_budget_and_the_rest_is_copied() {
    // 2 KiB per step against an unlimited link, with a window larger than
    // the budget: the budget is reached, later payload goes to the ring.
    let bytes = 8 << 20;
    let s = transfer(LinkConfig::default(), bytes, 2048, 2 << 20);
    println!(
        "slow reader: {} of {} bytes in place; at most {} frames kept (budget {})",
        s.in_place, s.received, s.most_kept, s.budget
    );
    assert_eq!(s.received, bytes);
    assert_eq!(s.most_kept, s.budget, "the slow reader reached the budget");
    assert!(s.in_place < bytes, "past the budget, payload is copied");
    assert_eq!(s.kept_at_end, 0, "every kept frame went back to the device");
}

#[test]
fn loss_and_reordering_mix_kept_frames_and_the_ring_byte_exactly() {
    let link = LinkConfig {
        loss: 0.02,
        reorder: 0.02,
        duplicate: 0.01,
        ..LinkConfig::default()
    };
    let bytes = 8 << 20;
    let s = transfer(link, bytes, 16 * 1024, Config::default().recv_buffer);
    println!(
        "lossy: {} of {} bytes in place; at most {} frames kept",
        s.in_place, s.received, s.most_kept
    );
    assert_eq!(s.received, bytes);
    assert!(s.in_place > 0 && s.in_place < bytes, "both paths used");
    assert_eq!(s.kept_at_end, 0);
}
