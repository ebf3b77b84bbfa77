//! The device's ceiling: raw frames over the same path with no TCP.
//! One end transmits MTU-sized IPv4 frames in a tight loop through this
//! project's AF_XDP device, the other receives and counts them. What TCP
//! over that path could at most carry is the same frames' payload less
//! the TCP/IP headers (and the ACKs' share of the path, not counted).
//! It measures the device layer with no stack above it, so it is the one
//! place in apps/ and bench/ that opens `device` directly.

use crate::bed::{Bed, End, Settings};
use crate::job::{Job, Outcome, Serving};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use xdptcp::device::afxdp::{AfXdp, AfXdpConfig};
use xdptcp::device::Device;

#[derive(Debug, Clone, Copy)]
pub struct LineRate {
    pub sent_fps: f64,
    pub received_fps: f64,
    /// Goodput a TCP stream of the received frames would carry: MSS bytes
    /// (MTU less 52 bytes of IPv4, TCP and timestamp headers; 72 over
    /// IPv6, as the bed's connections run) per frame.
    pub tcp_mbit: f64,
}

/// Frames from the client end to the server end (`reverse`: the other
/// way), for `dur`, addressed to our stack's IPv4 address there (the XDP
/// program takes just those).
pub fn measure(bed: &Bed, dur: Duration, reverse: bool) -> Result<LineRate, String> {
    let mtu = bed.settings.mtu as usize;
    let (secs, sent, got) = if reverse {
        let rx = &bed.client;
        let job = Job::LineTx {
            dur,
            to_mac: rx.mac,
            to_ip: rx.ours.0,
        };
        let stop = AtomicBool::new(false);
        let received = AtomicU64::new(0);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (got, sent) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                rx.enter().map_err(|e| e.to_string())?;
                count(rx, &bed.settings, &received, &stop, || {
                    let _ = ready_tx.send(());
                })
            });
            let r = ready_rx
                .recv_timeout(Duration::from_secs(15))
                .map_err(|_| "the receiving end did not start".to_string())
                .and_then(|_| {
                    let before = received.load(Ordering::Relaxed);
                    let (_, out) = bed.with_server(job, |_| Ok(()))?;
                    std::thread::sleep(Duration::from_millis(50));
                    Ok((received.load(Ordering::Relaxed) - before, out))
                });
            stop.store(true, Ordering::Relaxed);
            let counted = h.join().map_err(|_| "the receiver panicked".to_string());
            let (got, out) = r?;
            counted??;
            Ok::<_, String>((got, out))
        })?;
        (sent.secs, sent.frames, got)
    } else {
        let (to, from) = (&bed.server, &bed.client);
        let ((sent, secs), out) = bed.with_server(Job::LineRx, |stop| {
            let r = send(from, &bed.settings, dur, to.mac, to.ours.0);
            // Frames still in flight arrive within a moment.
            std::thread::sleep(Duration::from_millis(50));
            stop();
            r
        })?;
        (secs, sent, out.frames)
    };
    let headers = if bed.ipv6 { 72 } else { 52 };
    let mss = mtu.saturating_sub(headers) as f64;
    Ok(LineRate {
        sent_fps: sent as f64 / secs,
        received_fps: got as f64 / secs,
        tcp_mbit: got as f64 / secs * mss * 8.0 / 1e6,
    })
}

/// An AF_XDP socket on `end`'s interface taking the frames for our
/// stack's IPv4 address there (the calling thread in its namespace).
fn open(end: &End, settings: &Settings) -> Result<AfXdp, String> {
    let mtu = settings.mtu as usize;
    let mut cfg = AfXdpConfig::new(&end.dev);
    cfg.busy_poll = settings.busy_poll;
    cfg.mtu = mtu;
    cfg.frame_size = if mtu + 14 > 2048 { 4096 } else { 2048 };
    cfg.addresses = vec![end.ours.0.into()];
    let dev = AfXdp::open(cfg).map_err(|e| format!("AF_XDP on {}: {e}", end.dev))?;
    crate::bed::note_device_mode(&end.dev, Some(dev.mode()));
    Ok(dev)
}

/// Counts the frames arriving at `end` into `received` until `stop`;
/// `ready` once the socket is bound.
fn count(
    end: &End,
    settings: &Settings,
    received: &AtomicU64,
    stop: &AtomicBool,
    ready: impl FnOnce(),
) -> Result<(), String> {
    let mut dev = open(end, settings)?;
    ready();
    let now = xdptcp::api::Instant::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let n = dev.receive(now, 64, &mut |_| {});
        received.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Sends MTU-sized frames from `end` to `to_mac`/`to_ip` for `dur`:
/// (frames, seconds).
fn send(
    end: &End,
    settings: &Settings,
    dur: Duration,
    to_mac: [u8; 6],
    to_ip: Ipv4Addr,
) -> Result<(u64, f64), String> {
    let mut dev = open(end, settings)?;
    let mtu = settings.mtu as usize;
    let frame = build_frame(end.mac, to_mac, end.ours.0, to_ip, mtu);
    let now = xdptcp::api::Instant::ZERO;
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < dur {
        sent += dev.transmit(now, 64, &mut |buf| {
            buf[..frame.len()].copy_from_slice(&frame);
            Some(frame.len())
        }) as u64;
    }
    Ok((sent, t0.elapsed().as_secs_f64()))
}

/// The server half, receiving: counts frames until the client is done.
pub fn rx(s: &Serving<'_>) -> Result<Outcome, String> {
    let received = AtomicU64::new(0);
    count(s.end, s.settings, &received, s.stop_flag(), || s.ready())?;
    Ok(Outcome {
        frames: received.load(Ordering::Relaxed),
        ..Outcome::default()
    })
}

/// The server half, sending.
pub fn tx(
    s: &Serving<'_>,
    dur: Duration,
    to_mac: [u8; 6],
    to_ip: Ipv4Addr,
) -> Result<Outcome, String> {
    s.ready();
    let (frames, secs) = send(s.end, s.settings, dur, to_mac, to_ip)?;
    Ok(Outcome {
        frames,
        secs,
        ..Outcome::default()
    })
}

/// An Ethernet + IPv4 frame of `mtu` bytes of IP (UDP to the discard
/// port), checksummed, so that it is a valid packet all the way.
fn build_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mtu: usize,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + mtu];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(mtu as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = xdptcp::wire::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&9u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((mtu - 20) as u16).to_be_bytes());
    // UDP checksum 0: none (allowed over IPv4).
    f
}
