//! Frames to and from one interface without a network: a device that
//! delivers queued frames and keeps what is sent, and the frames a peer
//! on the same link would send (valid Ethernet, IPv4 and TCP checksums).

use std::net::Ipv4Addr;
use xdptcp::device::Device;
use xdptcp::iface::{IfaceConfig, Interface, RxChecksum};
use xdptcp::tcp::Config;
use xdptcp::time::Instant;
use xdptcp::wire::arp::{ArpOp, ArpPacket};
use xdptcp::wire::ethernet::{self, MacAddr};
use xdptcp::wire::ipv4::{Ipv4Header, PROTO_TCP};
use xdptcp::wire::tcp::{fill_checksum, TcpHeader};

pub const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const US_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// A device that delivers queued frames and keeps what is sent.
#[derive(Default)]
pub struct Inject {
    pub rx: Vec<Vec<u8>>,
    pub tx: Vec<Vec<u8>>,
}

impl Device for Inject {
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
        while n < budget {
            let mut buf = vec![0u8; 1514];
            let Some(len) = tx(&mut buf) else { break };
            buf.truncate(len);
            self.tx.push(buf);
            n += 1;
        }
        n
    }
    fn next_arrival(&self) -> Option<Instant> {
        None
    }
}

pub fn iface() -> Interface {
    iface_with_secret([7; 16])
}

pub fn iface_with_secret(isn_secret: [u8; 16]) -> Interface {
    Interface::new(iface_config(isn_secret))
}

pub fn iface_config(isn_secret: [u8; 16]) -> IfaceConfig {
    IfaceConfig {
        mac: US_MAC,
        ip: US,
        prefix_len: 24,
        gateway: None,
        isn_secret,
        tcp: Config::default(),
        rx_checksum: RxChecksum::Verify,
    }
}

/// A TCP segment from the peer to us inside a frame with valid Ethernet
/// and IPv4 headers and a correct TCP checksum, so it reaches TCP.
pub fn frame_to_us(h: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    frame_from(PEER, h, payload)
}

/// The same from `src`, behind the peer (which then routes for it).
pub fn frame_from(src: Ipv4Addr, h: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    let tcp_len = h.header_len() + payload.len();
    let mut f = vec![0u8; 34 + tcp_len];
    ethernet::emit(&mut f, US_MAC, PEER_MAC, ethernet::ETHERTYPE_IPV4).unwrap();
    Ipv4Header {
        src,
        dst: US,
        protocol: PROTO_TCP,
        ttl: 64,
        ident: 1,
        dont_fragment: true,
        payload_len: tcp_len as u16,
        tos: 0,
    }
    .emit(&mut f[14..])
    .unwrap();
    let hl = h.emit(&mut f[34..]).unwrap();
    f[34 + hl..].copy_from_slice(payload);
    fill_checksum(&mut f[34..], src, US).unwrap();
    f
}

/// The peer side of an established connection: the SYN-ACK we answered.
/// Teaches the interface the peer's MAC (an ARP request from it).
pub fn teach_peer(i: &mut Interface, dev: &mut Inject) {
    let arp = ArpPacket {
        op: ArpOp::Request,
        sender_mac: PEER_MAC,
        sender_ip: PEER,
        target_mac: MacAddr::ZERO,
        target_ip: US,
    };
    let mut f = vec![0u8; 42];
    ethernet::emit(
        &mut f,
        MacAddr::BROADCAST,
        PEER_MAC,
        ethernet::ETHERTYPE_ARP,
    )
    .unwrap();
    arp.emit(&mut f[14..]).unwrap();
    dev.rx.push(f);
    i.poll(Instant::ZERO, dev);
}

/// An interface whose gateway is the peer (addresses beyond the link go
/// through it) and which knows the peer's MAC, with its device.
pub fn routed_iface(isn_secret: [u8; 16]) -> (Interface, Inject) {
    let mut i = Interface::new(IfaceConfig {
        gateway: Some(PEER),
        ..iface_config(isn_secret)
    });
    let mut dev = Inject::default();
    teach_peer(&mut i, &mut dev);
    (i, dev)
}
