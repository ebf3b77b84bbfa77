//! An interface receiving a sequence of frames: ARP, ICMP, TCP to a
//! listener, to live connections and to nothing, over IPv4 and IPv6 (a
//! dual-stack interface), with time passing.
//!
//! Input: records of `[control][length][frame bytes]`. Control bits 0-1
//! rewrite the TCP acknowledgment and sequence numbers of the frame to the
//! live values of the connection it belongs to (plus a small offset from
//! the input), bit 2 recomputes the checksums so the frame gets past them,
//! bits 3-5 advance the clock (0 to 2^6 ms) before the frame.

use super::super::input::Input;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use xdptcp::device::Device;
use xdptcp::iface::{IfaceConfig, Interface, RxChecksum};
use xdptcp::tcp::Config;
use xdptcp::time::Instant;
use xdptcp::wire::arp::{ArpOp, ArpPacket};
use xdptcp::wire::checksum;
use xdptcp::wire::ethernet::{self, EthernetFrame, MacAddr};
use xdptcp::wire::icmpv6::{self, Icmpv6};
use xdptcp::wire::ipv6::{Ipv6Header, Ipv6Packet, NEXT_ICMPV6, NEXT_TCP};
use xdptcp::wire::tcp::fill_checksum;

/// The addresses of the kernel captures: we are the server, 10.77.0.2.
const US_MAC: MacAddr = MacAddr([0x76, 0x3f, 0x35, 0x7e, 0x55, 0x21]);
const PEER_MAC: MacAddr = MacAddr([0xea, 0xa4, 0xe6, 0x82, 0x16, 0x5b]);
const US: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The same hosts over IPv6.
const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 77, 0, 0, 0, 0, 0, 2);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 77, 0, 0, 0, 0, 0, 1);
const MAX_FRAMES: usize = 64;

/// A device that receives the fuzz frames and answers our ARP requests
/// and neighbour solicitations.
#[derive(Default)]
struct Feed {
    rx: Vec<Vec<u8>>,
}

impl Device for Feed {
    fn mtu(&self) -> usize {
        1500
    }
    fn receive(&mut self, _now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
        let n = budget.min(self.rx.len());
        for f in self.rx.drain(..n) {
            rx(&f);
        }
        n
    }
    fn transmit(
        &mut self,
        _now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        let mut n = 0;
        let mut buf = vec![0u8; 1514];
        while n < budget {
            let Some(len) = tx(&mut buf) else { break };
            assert!(len <= buf.len(), "a frame longer than the buffer lent");
            let sent = &buf[..len];
            if let Ok(e) = EthernetFrame::parse(sent) {
                if e.ethertype == ethernet::ETHERTYPE_ARP {
                    if let Ok(req) = ArpPacket::parse(e.payload) {
                        if req.op == ArpOp::Request {
                            self.rx.push(req.reply_frame(PEER_MAC));
                        }
                    }
                }
                if let Some(target) = solicited(e.ethertype, e.payload) {
                    self.rx.push(advertisement(target));
                }
            }
            n += 1;
        }
        n
    }
}

/// The target of a neighbour solicitation we sent, if this is one.
fn solicited(ethertype: u16, payload: &[u8]) -> Option<Ipv6Addr> {
    if ethertype != ethernet::ETHERTYPE_IPV6 {
        return None;
    }
    let ip = Ipv6Packet::parse(payload).ok()?;
    match Icmpv6::parse(ip.payload, ip.src, ip.dst).ok()? {
        Icmpv6::NeighborSolicit { target, .. } => Some(target),
        _ => None,
    }
}

/// The peer's answer to our solicitation for `target`: its MAC.
fn advertisement(target: Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 32];
    ethernet::emit(&mut f, US_MAC, PEER_MAC, ethernet::ETHERTYPE_IPV6).expect("room");
    let flags = icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE;
    let n = icmpv6::emit_neighbor_advert(&mut f[54..], target, US6, target, flags, PEER_MAC)
        .expect("room");
    ipv6_header(&mut f, target, US6, NEXT_ICMPV6, n, 255);
    f.truncate(54 + n);
    f
}

fn ipv6_header(f: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, next: u8, len: usize, hops: u8) {
    let h = Ipv6Header {
        src,
        dst,
        next_header: next,
        hop_limit: hops,
        traffic_class: 0,
        flow_label: 0,
        payload_len: len as u16,
    };
    h.emit(&mut f[14..]).expect("room");
}

/// The captured IPv4 frame `f` (from the peer to us) as the same TCP
/// segment over IPv6, checksummed.
pub fn as_ipv6(f: &[u8]) -> Vec<u8> {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let tcp = &f[14 + ihl..];
    let mut out = vec![0u8; 54 + tcp.len()];
    out[..12].copy_from_slice(&f[..12]);
    out[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
    let from_us = f[26..30] == US.octets();
    let (src, dst) = if from_us { (US6, PEER6) } else { (PEER6, US6) };
    ipv6_header(&mut out, src, dst, NEXT_TCP, tcp.len(), 64);
    out[54..].copy_from_slice(tcp);
    let _ = fill_checksum(&mut out[54..], src, dst);
    out
}

/// Puts frames into the input format, all with the same control byte.
pub fn encode(frames: &[&[u8]], control: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.push(control);
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Where a TCP frame's segment starts and its addresses, IPv4 or IPv6
/// (without extension headers).
fn tcp_in(frame: &[u8]) -> Option<(usize, IpAddr, IpAddr)> {
    let v6 = frame.get(12..14) == Some(&[0x86, 0xdd]);
    if v6 {
        if frame.len() < 54 + 20 || frame[20] != NEXT_TCP {
            return None;
        }
        let addr = |at: usize| -> [u8; 16] { frame[at..at + 16].try_into().expect("16 bytes") };
        let (src, dst) = (Ipv6Addr::from(addr(22)), Ipv6Addr::from(addr(38)));
        return Some((54, src.into(), dst.into()));
    }
    if frame.len() < 14 + 20 + 20 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if ihl < 20 || frame.len() < 14 + ihl + 20 {
        return None;
    }
    let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
    let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    Some((14 + ihl, src.into(), dst.into()))
}

/// Rewrites a TCP frame's numbers to the live ones of its connection.
fn fix_up(iface: &Interface, frame: &mut [u8], control: u8, input: &mut Input<'_>) {
    let Some((t, src, dst)) = tcp_in(frame) else {
        return;
    };
    let (sport, dport) = (
        u16::from_be_bytes([frame[t], frame[t + 1]]),
        u16::from_be_bytes([frame[t + 2], frame[t + 3]]),
    );
    let live = iface.handles().into_iter().find_map(|h| {
        let tu = iface.tuple(h)?;
        (tu.remote_ip == src && tu.remote_port == sport && tu.local_port == dport)
            .then(|| iface.tcp_ref(h).map(|c| c.seq_space()))
            .flatten()
    });
    if let Some(s) = live {
        if control & 1 != 0 {
            let ack = s.snd_una.0.wrapping_add(input.near(1460) as u32);
            frame[t + 8..t + 12].copy_from_slice(&ack.to_be_bytes());
        }
        if control & 2 != 0 {
            let seq = s.rcv_nxt.0.wrapping_add(input.near(1460) as u32);
            frame[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        }
    }
    if control & 4 != 0 && t == 54 {
        let len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
        let end = (54 + len).min(frame.len());
        if end > t {
            let _ = fill_checksum(&mut frame[t..end], src, dst);
        }
    } else if control & 4 != 0 {
        let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let end = (14 + total).min(frame.len());
        if end > t {
            let _ = fill_checksum(&mut frame[t..end], src, dst);
        }
        frame[24..26].fill(0);
        let c = checksum::checksum(&frame[14..t]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
    }
}

pub fn run(data: &[u8]) {
    drive(data);
}

/// The target's work, returning the interface for a look at its counters.
pub fn drive(data: &[u8]) -> Interface {
    let mut iface = Interface::new(IfaceConfig {
        mac: US_MAC,
        ip: US,
        prefix_len: 24,
        gateway: None,
        isn_secret: [3; 16],
        tcp: Config::default(),
        rx_checksum: RxChecksum::Verify,
    });
    iface.add_ipv6(US6, 64).expect("a unicast address");
    iface.listen(5001, None, 4).expect("a free port");
    let mut dev = Feed::default();
    let mut now = Instant::from_millis(1);
    let mut input = Input::new(data);
    for _ in 0..MAX_FRAMES {
        if input.is_empty() {
            break;
        }
        let control = input.u8();
        let len = usize::from(input.u16()) % 1515;
        let mut frame = input.take(len).to_vec();
        fix_up(&iface, &mut frame, control, &mut input);
        now += Duration::from_millis((1u64 << ((control >> 3) & 7)) - 1);
        dev.rx.push(frame);
        iface.poll(now, &mut dev);
        // Anything accepted is read and answered, as an application would.
        while let Ok(Some(h)) = iface.accept(5001) {
            if let Some(c) = iface.tcp(h) {
                let mut buf = [0u8; 2048];
                let _ = c.recv(&mut buf);
                let _ = c.send(b"reply");
            }
        }
        for h in iface.handles() {
            if let Some(c) = iface.tcp_ref(h) {
                if let Err(e) = c.check_invariants() {
                    panic!("invariant broken after a frame: {e}");
                }
            }
        }
    }
    // Time runs on: every timer fires, nothing breaks.
    for _ in 0..8 {
        now += Duration::from_secs(30);
        iface.poll(now, &mut dev);
    }
    iface
}
