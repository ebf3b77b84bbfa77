//! The device's ceiling: raw frames over the same path with no TCP.
//! One end transmits MTU-sized IPv4 frames in a tight loop through this
//! project's AF_XDP device, the other receives and counts them. What TCP
//! over that path could at most carry is the same frames' payload less
//! the TCP/IP headers (`Shape::Bare` leaves out the ACKs' share of the
//! path; `Shape::Tcp`, below, adds it).
//! It measures the device layer with no stack above it, so it is the one
//! place in apps/ and bench/ that opens `device` directly.
//!
//! `Shape::Tcp` adds the work any TCP over this device cannot avoid, and
//! nothing else: the sender copies each frame's payload out of an
//! application buffer with its checksum in the same pass and takes in
//! the frames coming back; the receiver reads every payload byte (its
//! checksum) and answers every second frame with a 66-byte frame, an
//! ACK's size. What that carries is the ceiling for a TCP with no cost
//! of its own, so ours over it says what our TCP itself costs.

use crate::bed::{Bed, End, Settings};
use crate::job::{Job, Outcome, Serving};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use xdptcp::device::afxdp::{AfXdp, AfXdpConfig};
use xdptcp::device::Device;
use xdptcp::wire::checksum;

/// What the two ends do per frame besides moving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Nothing: the same prepared frame over and over, never read.
    Bare,
    /// TCP's unavoidable share: payload copied and checksummed on the way
    /// in, read on the way out, a 66-byte frame back for every second one.
    Tcp,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shape::Bare => "bare",
            Shape::Tcp => "tcp",
        })
    }
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bare" => Ok(Shape::Bare),
            "tcp" => Ok(Shape::Tcp),
            _ => Err(format!("line rate shape '{s}': bare or tcp")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LineRate {
    pub sent_fps: f64,
    pub received_fps: f64,
    /// Goodput a TCP stream of the received frames would carry: MSS bytes
    /// (MTU less 52 bytes of IPv4, TCP and timestamp headers; 72 over
    /// IPv6, as the bed's connections run) per frame.
    pub tcp_mbit: f64,
    /// Frames sent back per frame received (`Shape::Tcp`: about 0.5).
    pub answers_per_frame: f64,
}

/// What a receiving end counted: frames in, and frames it sent back.
#[derive(Default)]
struct Counts {
    received: AtomicU64,
    answered: AtomicU64,
}

impl Counts {
    fn answers_per_frame(&self) -> f64 {
        let got = self.received.load(Ordering::Relaxed);
        self.answered.load(Ordering::Relaxed) as f64 / got.max(1) as f64
    }
}

/// Frames from the client end to the server end (`reverse`: the other
/// way), for `dur`, addressed to our stack's IPv4 address there (the XDP
/// program takes just those).
pub fn measure(bed: &Bed, dur: Duration, reverse: bool, shape: Shape) -> Result<LineRate, String> {
    let mtu = bed.settings.mtu as usize;
    let (secs, sent, got, answers_per_frame) = if reverse {
        let rx = &bed.client;
        let job = Job::LineTx {
            dur,
            to_mac: rx.mac,
            to_ip: rx.ours.0,
            shape,
        };
        let stop = AtomicBool::new(false);
        let counts = Counts::default();
        let received = &counts.received;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (got, sent) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                rx.enter().map_err(|e| e.to_string())?;
                count(rx, &bed.settings, shape, &counts, &stop, || {
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
        (sent.secs, sent.frames, got, counts.answers_per_frame())
    } else {
        let (to, from) = (&bed.server, &bed.client);
        let ((sent, secs), out) = bed.with_server(Job::LineRx { shape }, |stop| {
            let r = send(from, &bed.settings, shape, dur, to.mac, to.ours.0);
            // Frames still in flight arrive within a moment.
            std::thread::sleep(Duration::from_millis(50));
            stop();
            r
        })?;
        (secs, sent, out.frames, out.acks_per_segment)
    };
    let headers = if bed.ipv6 { 72 } else { 52 };
    let mss = mtu.saturating_sub(headers) as f64;
    Ok(LineRate {
        sent_fps: sent as f64 / secs,
        received_fps: got as f64 / secs,
        tcp_mbit: got as f64 / secs * mss * 8.0 / 1e6,
        answers_per_frame,
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
/// With `Shape::Tcp`, each frame's IP payload is summed and every second
/// one is answered.
fn count(
    end: &End,
    settings: &Settings,
    shape: Shape,
    counts: &Counts,
    stop: &AtomicBool,
    ready: impl FnOnce(),
) -> Result<(), String> {
    let mut dev = open(end, settings)?;
    ready();
    let now = xdptcp::api::Instant::ZERO;
    let mut answer: Option<Vec<u8>> = None;
    let (mut owed, mut odd, mut sums) = (0usize, false, 0u32);
    while !stop.load(Ordering::Relaxed) {
        let n = dev.receive(now, 64, &mut |f| {
            // Only the sender's frames (IPv4, UDP) are read and answered,
            // not a stray ARP request that the XDP program passes too.
            if shape == Shape::Bare || f.len() < HEADERS || f[12..14] != [8, 0] || f[23] != 17 {
                return;
            }
            sums = sums.wrapping_add(checksum::accumulate(0, &f[34..]));
            odd = !odd;
            owed += usize::from(!odd);
            answer.get_or_insert_with(|| answer_to(f));
        });
        if let (Some(a), true) = (&answer, owed > 0) {
            let sent = dev.transmit(now, owed, &mut |buf| {
                buf[..a.len()].copy_from_slice(a);
                Some(a.len())
            });
            owed -= sent;
            counts.answered.fetch_add(sent as u64, Ordering::Relaxed);
        }
        counts.received.fetch_add(n as u64, Ordering::Relaxed);
    }
    std::hint::black_box(sums);
    Ok(())
}

/// A 66-byte frame (an ACK with timestamps: Ethernet, IPv4, 32 bytes of
/// TCP header; UDP here) from the receiver of `f` back to its sender.
fn answer_to(f: &[u8]) -> Vec<u8> {
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&f[30..34]).expect("4 bytes"));
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&f[26..30]).expect("4 bytes"));
    let (src_mac, dst_mac) = (
        f[..6].try_into().expect("6"),
        f[6..12].try_into().expect("6"),
    );
    build_frame(src_mac, dst_mac, src, dst, 52)
}

/// Sends MTU-sized frames from `end` to `to_mac`/`to_ip` for `dur`:
/// (frames, seconds). With `Shape::Tcp`, each frame's payload comes from
/// an application buffer (`Shaped`), and the frames coming back are taken
/// in.
fn send(
    end: &End,
    settings: &Settings,
    shape: Shape,
    dur: Duration,
    to_mac: [u8; 6],
    to_ip: Ipv4Addr,
) -> Result<(u64, f64), String> {
    let mut dev = open(end, settings)?;
    let mtu = settings.mtu as usize;
    let frame = build_frame(end.mac, to_mac, end.ours.0, to_ip, mtu);
    let mut shaped = match shape {
        Shape::Bare => None,
        Shape::Tcp => Some(Shaped::new(frame.clone(), end.ours.0, to_ip)),
    };
    let now = xdptcp::api::Instant::ZERO;
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < dur {
        sent += match shaped.as_mut() {
            None => dev.transmit(now, 64, &mut |buf| {
                buf[..frame.len()].copy_from_slice(&frame);
                Some(frame.len())
            }),
            Some(shaped) => {
                dev.receive(now, 64, &mut |_| {});
                dev.transmit(now, 64, &mut |buf| Some(shaped.fill(buf)))
            }
        } as u64;
    }
    Ok((sent, t0.elapsed().as_secs_f64()))
}

/// A TCP-shaped sender's frames: headers as long as TCP's with
/// timestamps, then payload copied out of the application's bytes with
/// its checksum in the same pass, as our stack builds a segment.
struct Shaped {
    frame: Vec<u8>,
    /// The UDP checksum's sum over the pseudo-header and the 32 bytes of
    /// header after IPv4's (its own field zero): the same for every frame.
    head_sum: u32,
    app: Vec<u8>,
    /// Where the next payload starts in `app`.
    at: usize,
}

/// Ethernet, IPv4 and 32 bytes more: a TCP header with timestamps.
const HEADERS: usize = 66;

impl Shaped {
    fn new(frame: Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr) -> Shaped {
        let udp_len = (frame.len() - 34) as u16;
        let pseudo = checksum::pseudo_header(src, dst, 17, udp_len);
        Shaped {
            head_sum: checksum::accumulate(pseudo, &frame[34..HEADERS]),
            app: (0..APP_BUFFER).map(|i| (i * 7 + i / 4093) as u8).collect(),
            frame,
            at: 0,
        }
    }

    /// Writes the next frame into `buf`; returns its length.
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let (len, payload) = (self.frame.len(), self.frame.len() - HEADERS);
        if self.at + payload > self.app.len() {
            self.at = 0;
        }
        buf[..HEADERS].copy_from_slice(&self.frame[..HEADERS]);
        let src = &self.app[self.at..self.at + payload];
        let sum = checksum::copy_and_accumulate(self.head_sum, &mut buf[HEADERS..len], src);
        // A sum of zero goes as all ones: zero means "none" in UDP.
        let sum = match checksum::finish(sum) {
            0 => 0xffff,
            s => s,
        };
        buf[40..42].copy_from_slice(&sum.to_be_bytes());
        self.at += payload;
        len
    }
}

/// The application's bytes a TCP-shaped sender sends from, over and over:
/// one 64 KiB chunk, as the bench's bulk senders write.
const APP_BUFFER: usize = 64 << 10;

/// The server half, receiving: counts frames until the client is done.
pub fn rx(s: &Serving<'_>, shape: Shape) -> Result<Outcome, String> {
    let counts = Counts::default();
    count(s.end, s.settings, shape, &counts, s.stop_flag(), || {
        s.ready()
    })?;
    Ok(Outcome {
        frames: counts.received.load(Ordering::Relaxed),
        acks_per_segment: counts.answers_per_frame(),
        ..Outcome::default()
    })
}

/// The server half, sending.
pub fn tx(
    s: &Serving<'_>,
    dur: Duration,
    to_mac: [u8; 6],
    to_ip: Ipv4Addr,
    shape: Shape,
) -> Result<Outcome, String> {
    s.ready();
    let (frames, secs) = send(s.end, s.settings, shape, dur, to_mac, to_ip)?;
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
    let sum = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&9u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((mtu - 20) as u16).to_be_bytes());
    // UDP checksum 0: none (allowed over IPv4).
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// The UDP checksum verifies over pseudo-header and segment.
    fn udp_checksum_holds(f: &[u8]) -> bool {
        let udp = &f[34..];
        let pseudo = checksum::pseudo_header(A, B, 17, udp.len() as u16);
        checksum::finish(checksum::accumulate(pseudo, udp)) == 0
    }

    #[test]
    fn shaped_frames_carry_the_application_bytes_in_turn_with_a_valid_checksum() {
        let frame = build_frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], A, B, 1500);
        let mut shaped = Shaped::new(frame.clone(), A, B);
        let payload = 1514 - HEADERS;
        let per_app = APP_BUFFER / payload;
        let mut buf = vec![0u8; 2048];
        for i in 0..per_app + 2 {
            let n = shaped.fill(&mut buf);
            assert_eq!(n, 1514);
            assert_eq!(buf[..40], frame[..40], "headers as prepared");
            assert!(udp_checksum_holds(&buf[..n]), "frame {i}");
            // After the last whole payload, the application's bytes start over.
            let at = (i % per_app) * payload;
            assert_eq!(buf[HEADERS..n], shaped.app[at..at + payload], "frame {i}");
        }
    }

    #[test]
    fn the_answer_is_an_ack_sized_frame_back_to_the_sender() {
        let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let frame = build_frame(mac_a, mac_b, A, B, 1500);
        let answer = answer_to(&frame);
        assert_eq!(answer.len(), 66);
        assert_eq!((&answer[..6], &answer[6..12]), (&mac_a[..], &mac_b[..]));
        assert_eq!(
            (&answer[26..30], &answer[30..34]),
            (&B.octets()[..], &A.octets()[..])
        );
        assert_eq!(
            checksum::checksum(&answer[14..34]),
            0,
            "IPv4 header checksum"
        );
    }
}
