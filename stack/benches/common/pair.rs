//! Two established connections joined back to back through the wire
//! format, for measuring the sans-IO path per segment (criterion bench
//! and the callgrind example share it). Segments are built into frames of
//! a pool, as a device's UMEM, so the receiver may keep in-order payload
//! in place (`device/lend.rs`) as it does on AF_XDP.

use std::sync::Arc;
use xdptcp::device::{FramePool, RxFrame};
use xdptcp::tcp::{Config, Connection, SeqNum, State, UnsentLimit};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::TcpSegment;

pub const MSS: usize = 1448;
const FRAMES: usize = 1024;
const FRAME: usize = 2048;

pub struct Pair {
    pub a: Connection,
    pub b: Connection,
    pub now: Instant,
    pool: Arc<FramePool>,
    free: Vec<u64>,
    scratch: Vec<u8>,
    /// Chunks given back by `a`, for `batch_owned`.
    chunks: Vec<Vec<u8>>,
}

impl Pair {
    /// Handshake done, delayed ACKs off (each segment is acknowledged at
    /// once), buffers large enough that nothing waits on a window.
    pub fn established() -> Pair {
        Pair::established_with(UnsentLimit::Auto)
    }

    /// As `established`, with the unsent bound given (a batch of
    /// segments written at once needs it off).
    pub fn established_with(unsent_limit: UnsentLimit) -> Pair {
        let cfg = Config {
            unsent_limit,
            delayed_ack: std::time::Duration::ZERO,
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
            autotune: false,
            ..Config::default()
        };
        let mut p = Pair {
            a: Connection::connect(cfg.clone(), SeqNum(1)),
            b: Connection::listen(cfg, SeqNum(1_000_000)),
            now: Instant::from_millis(1),
            pool: FramePool::heap(FRAMES, FRAME, FRAMES / 2),
            free: (0..FRAMES as u64).map(|i| i * FRAME as u64).collect(),
            scratch: vec![0u8; 64 * 1024],
            chunks: Vec::new(),
        };
        for _ in 0..10 {
            p.flush(true);
            p.flush(false);
        }
        assert_eq!(p.a.state(), State::Established);
        assert_eq!(p.b.state(), State::Established);
        p
    }

    /// Delivers everything one side has to send to the other.
    fn flush(&mut self, from_a: bool) -> usize {
        let mut n = 0;
        let free = &mut self.free;
        self.pool.take_returned(|addr| free.push(addr));
        loop {
            let (src, dst) = if from_a {
                (&mut self.a, &mut self.b)
            } else {
                (&mut self.b, &mut self.a)
            };
            let Some(t) = src.poll_transmit(self.now) else {
                return n;
            };
            let addr = self.free.pop().expect("frames kept within the budget");
            // SAFETY: a frame of our free list: nobody else uses it.
            let frame = unsafe { self.pool.bytes_mut(addr, FRAME) };
            let len = src.segment_into(&t, frame);
            let lent = RxFrame::in_pool(&frame[..len], &self.pool, addr);
            let mut seg = TcpSegment::parse_unchecked(lent.bytes()).expect("parses");
            seg.lent = Some(&lent);
            dst.on_segment(&seg, self.now);
            if !lent.was_kept() {
                self.free.push(addr);
            }
            n += 1;
        }
    }

    /// One MSS of data from a to b: a builds the segment, b parses it,
    /// delivers it in order and acknowledges it, the application reads
    /// it, and a takes the ACK. Time moves 10 us per round.
    #[allow(dead_code)] // the criterion bench's; the example uses `batch`
    pub fn one_segment(&mut self, data: &[u8]) {
        self.batch(data, 1);
    }

    /// `n` MSS segments from a to b as one received batch: b takes them
    /// all, the application reads, and b answers with one ACK (as the
    /// interface does per receive phase).
    pub fn batch(&mut self, data: &[u8], n: usize) {
        self.now += std::time::Duration::from_micros(10);
        for _ in 0..n {
            let sent = self.a.send(data).expect("room");
            debug_assert_eq!(sent, data.len());
        }
        self.deliver_batch();
    }

    /// As `batch`, with the `n` segments' bytes handed over as one chunk
    /// (`send_owned`: not copied into the send ring), chunks recycled as
    /// the connection gives them back.
    #[allow(dead_code)] // the example's
    pub fn batch_owned(&mut self, data: &[u8], n: usize) {
        self.now += std::time::Duration::from_micros(10);
        while let Some(c) = self.a.reclaim() {
            self.chunks.push(c);
        }
        let chunk = self.chunks.pop().unwrap_or_else(|| data.repeat(n));
        assert!(self.a.send_owned(chunk).is_ok(), "room");
        self.deliver_batch();
    }

    fn deliver_batch(&mut self) {
        self.flush(true);
        // One read takes a batch of up to 45 segments (64 KiB).
        let _ = self.b.recv(&mut self.scratch);
        self.flush(false);
    }
}
