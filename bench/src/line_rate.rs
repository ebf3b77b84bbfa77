//! The device's ceiling: raw frames over the same veth path with no TCP.
//! One end transmits MTU-sized IPv4 frames in a tight loop through this
//! project's AF_XDP device, the other receives and counts them. What TCP
//! over that path could at most carry is the same frames' payload less
//! the TCP/IP headers (and the ACKs' share of the path, not counted).

use crate::bed::Bed;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use xdptcp::device::afxdp::{interface_mac, AfXdp, AfXdpConfig};
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

/// Frames from the client's veth end to the server's (`reverse`: the
/// other way), for `dur`.
pub fn measure(bed: &Bed, mtu: usize, dur: Duration, reverse: bool) -> Result<LineRate, String> {
    let t = &bed.topo;
    let (tx_dev, rx_dev) = if reverse {
        (&t.peer_dev, &t.dev)
    } else {
        (&t.dev, &t.peer_dev)
    };
    let enter = |peer_side: bool| {
        if peer_side {
            t.enter_peer()
        } else {
            t.enter_ours()
        }
    };
    let o = t.peer_ip().octets();
    let dst_ip = Ipv4Addr::new(o[0], o[1], o[2], 9);
    let src_ip = Ipv4Addr::new(o[0], o[1], o[2], 8);
    let open = |dev: &str, addr: Ipv4Addr| {
        let mut cfg = AfXdpConfig::new(dev);
        cfg.mtu = mtu;
        cfg.frame_size = if mtu + 14 > 2048 { 4096 } else { 2048 };
        cfg.addresses = vec![addr.into()];
        AfXdp::open(cfg).map_err(|e| format!("AF_XDP on {dev}: {e}"))
    };
    let stop = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let rx = s.spawn(|| -> Result<(), String> {
            enter(!reverse).map_err(|e| e.to_string())?;
            let mac = interface_mac(rx_dev).map_err(|e| e.to_string());
            let dev = open(rx_dev, dst_ip);
            let ok = mac.and_then(|m| dev.map(|d| (m, d)));
            let (mac, mut dev) = match ok {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(mac));
            let now = xdptcp::time::Instant::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let n = dev.receive(now, 64, &mut |_| {});
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(())
        });
        let dst_mac = ready_rx
            .recv_timeout(Duration::from_secs(15))
            .map_err(|_| "the receiving end did not start".to_string())??;
        let tx = s.spawn(move || -> Result<u64, String> {
            enter(reverse).map_err(|e| e.to_string())?;
            let src_mac = interface_mac(tx_dev).map_err(|e| e.to_string())?;
            let mut dev = open(tx_dev, src_ip)?;
            let frame = build_frame(src_mac, dst_mac, src_ip, dst_ip, mtu);
            let now = xdptcp::time::Instant::ZERO;
            let t0 = Instant::now();
            let mut sent = 0u64;
            while t0.elapsed() < dur {
                sent += dev.transmit(now, 64, &mut |buf| {
                    buf[..frame.len()].copy_from_slice(&frame);
                    Some(frame.len())
                }) as u64;
            }
            Ok(sent)
        });
        let t0 = Instant::now();
        let before = received.load(Ordering::Relaxed);
        let sent = tx.join().map_err(|_| "the sender panicked")??;
        let secs = t0.elapsed().as_secs_f64();
        // Frames still in flight arrive within a moment.
        std::thread::sleep(Duration::from_millis(50));
        let got = received.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        rx.join().map_err(|_| "the receiver panicked")??;
        let headers = if bed.ipv6 { 72 } else { 52 };
        let mss = mtu.saturating_sub(headers) as f64;
        Ok(LineRate {
            sent_fps: sent as f64 / secs,
            received_fps: got as f64 / secs,
            tcp_mbit: got as f64 / secs * mss * 8.0 / 1e6,
        })
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
