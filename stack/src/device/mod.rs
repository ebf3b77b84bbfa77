//! The device layer: one trait for moving batches of Ethernet frames, with
//! implementations (the simulated link here, AF_XDP next) and middlewares
//! that wrap any device (pcap capture).
//!
//! Frames are lent, not returned: `receive` shows each frame in place and
//! takes it back when the callback returns, unless the stack kept it
//! (`receive_lent`, see `lend.rs`: in-order payload stays in its frame
//! until the application reads it); `transmit` lends a buffer that the
//! callback fills. A device backed by UMEM hands out its own frames
//! without a copy.

pub mod afxdp;
pub mod lend;
pub mod pcap;
pub mod rng;
pub mod sim;

use crate::time::Instant;
pub use lend::{FramePool, Kept, RxFrame};

pub trait Device {
    /// Largest IP packet the device carries (Ethernet header excluded).
    fn mtu(&self) -> usize;

    /// Hands up to `budget` received frames to `rx`, one at a time, each
    /// borrowed in place. Returns how many were handed over.
    fn receive(&mut self, now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize;

    /// As `receive`, with frames the stack may keep past the callback
    /// (`RxFrame::keep`) instead of copying their payload. Devices with a
    /// frame pool override it; the default lends frames that cannot be kept.
    fn receive_lent(
        &mut self,
        now: Instant,
        budget: usize,
        rx: &mut dyn FnMut(&RxFrame<'_>),
    ) -> usize {
        self.receive(now, budget, &mut |bytes| rx(&RxFrame::copied(bytes)))
    }

    /// Lends up to `budget` transmit buffers of at least `mtu() + 14` bytes.
    /// `tx` fills one and returns the frame length, or `None` when it has
    /// nothing more to send. Returns how many frames were sent.
    fn transmit(
        &mut self,
        now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize;

    /// For devices with their own notion of time (the simulator): when the
    /// next frame becomes receivable.
    fn next_arrival(&self) -> Option<Instant> {
        None
    }

    /// Nothing to do: block until a frame may have arrived, at most `max`.
    /// Devices that cannot tell just sleep.
    fn idle_wait(&mut self, max: std::time::Duration) {
        std::thread::sleep(max);
    }
}
