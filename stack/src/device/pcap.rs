//! A middleware that records every frame a device moves into a pcap file
//! (the classic format, readable by tshark and Wireshark).

use super::Device;
use crate::time::Instant;
use std::io::{self, Write};

pub struct PcapCapture<D, W: Write> {
    inner: D,
    out: W,
    error: Option<io::Error>,
}

impl<D: Device, W: Write> PcapCapture<D, W> {
    pub fn new(inner: D, mut out: W) -> io::Result<Self> {
        // Global header: magic (microsecond timestamps), v2.4, snaplen, LINKTYPE_ETHERNET.
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65_535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapCapture {
            inner,
            out,
            error: None,
        })
    }

    /// The first write error, if any: capture stops at it, traffic does not.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    pub fn into_inner(self) -> (D, W) {
        (self.inner, self.out)
    }

    fn record(out: &mut W, error: &mut Option<io::Error>, now: Instant, frame: &[u8]) {
        if error.is_some() {
            return;
        }
        let us = now.as_micros();
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        if let Err(e) = out.write_all(&h).and_then(|_| out.write_all(frame)) {
            *error = Some(e);
        }
    }
}

impl<D: Device, W: Write> Device for PcapCapture<D, W> {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn receive(&mut self, now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
        let (out, error) = (&mut self.out, &mut self.error);
        self.inner.receive(now, budget, &mut |frame| {
            Self::record(out, error, now, frame);
            rx(frame)
        })
    }

    fn receive_lent(
        &mut self,
        now: Instant,
        budget: usize,
        rx: &mut dyn FnMut(&super::RxFrame<'_>),
    ) -> usize {
        let (out, error) = (&mut self.out, &mut self.error);
        self.inner.receive_lent(now, budget, &mut |frame| {
            Self::record(out, error, now, frame.bytes());
            rx(frame)
        })
    }

    fn transmit(
        &mut self,
        now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        let (out, error) = (&mut self.out, &mut self.error);
        self.inner.transmit(now, budget, &mut |buf| {
            let n = tx(buf)?;
            Self::record(out, error, now, &buf[..n]);
            Some(n)
        })
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.inner.next_arrival()
    }
}
