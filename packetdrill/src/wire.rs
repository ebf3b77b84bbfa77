//! The wire packetdrill sees: raw IPv4 or IPv6 packets in and out, no
//! Ethernet.
//!
//! The stack speaks Ethernet, so packets from packetdrill get a header
//! from a made-up neighbour, and the header comes off what the stack sends.
//! ARP requests and neighbour solicitations are answered at once by that
//! neighbour, whatever address they ask for, and Neighbor Discovery stays
//! off the wire packetdrill reads: its scripts have none in them.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use xdptcp::device::Device;
use xdptcp::time::Instant;
use xdptcp::wire::arp::{ArpOp, ArpPacket};
use xdptcp::wire::ethernet::{
    self, EthernetFrame, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
};
use xdptcp::wire::icmpv6::{self, Icmpv6};
use xdptcp::wire::ipv6::{Ipv6Header, Ipv6Packet, NEXT_ICMPV6};

pub const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
/// Packets the stack sent that packetdrill has not read, at most.
const MAX_OUTBOUND: usize = 4096;

pub struct Wire {
    mtu: usize,
    inbound: VecDeque<Vec<u8>>,
    outbound: VecDeque<(Vec<u8>, Instant)>,
}

impl Wire {
    pub fn new(mtu: usize) -> Self {
        Wire {
            mtu,
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
        }
    }

    /// An IPv4 or IPv6 packet from packetdrill, as if it had come off the
    /// wire.
    pub fn inject(&mut self, packet: &[u8]) -> Result<(), &'static str> {
        let ethertype = match packet.first().map(|b| b >> 4) {
            Some(4) if packet.len() >= 20 => ETHERTYPE_IPV4,
            Some(6) if packet.len() >= 40 => ETHERTYPE_IPV6,
            _ => return Err("not an IPv4 or IPv6 packet"),
        };
        // Larger than the MTU is fine: Linux's GRO hands its TCP such
        // packets, and packetdrill scripts written for it send them.
        if packet.len() > usize::from(u16::MAX) + 40 {
            return Err("larger than an IP packet");
        }
        let mut frame = vec![0; ethernet::HEADER_LEN + packet.len()];
        ethernet::emit(&mut frame, OUR_MAC, PEER_MAC, ethertype).expect("room for a header");
        frame[ethernet::HEADER_LEN..].copy_from_slice(packet);
        self.inbound.push_back(frame);
        Ok(())
    }

    pub fn has_inbound(&self) -> bool {
        !self.inbound.is_empty()
    }

    /// The oldest IP packet the stack sent, with the time it left.
    pub fn next_outbound(&mut self) -> Option<(Vec<u8>, Instant)> {
        self.outbound.pop_front()
    }

    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }

    fn sent(&mut self, frame: &[u8], now: Instant) {
        let Ok(eth) = EthernetFrame::parse(frame) else {
            return;
        };
        match eth.ethertype {
            ETHERTYPE_IPV6 if is_neighbor_discovery(eth.payload) => {
                if let Some(target) = solicited(eth.payload) {
                    self.inbound.push_back(advertisement(target));
                }
            }
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 if self.outbound.len() < MAX_OUTBOUND => {
                self.outbound.push_back((eth.payload.to_vec(), now));
            }
            ETHERTYPE_ARP => {
                if let Ok(req) = ArpPacket::parse(eth.payload) {
                    if req.op == ArpOp::Request && req.target_ip != Ipv4Addr::UNSPECIFIED {
                        self.inbound.push_back(req.reply_frame(PEER_MAC));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A neighbour solicitation or advertisement (ours to announce or ask).
fn is_neighbor_discovery(packet: &[u8]) -> bool {
    let Ok(ip) = Ipv6Packet::parse(packet) else {
        return false;
    };
    let kind = ip.payload.first().copied();
    ip.next_header == NEXT_ICMPV6
        && matches!(
            kind,
            Some(icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT)
        )
}

/// What a solicitation we sent asks for.
fn solicited(packet: &[u8]) -> Option<Ipv6Addr> {
    let ip = Ipv6Packet::parse(packet).ok()?;
    match Icmpv6::parse(ip.payload, ip.src, ip.dst).ok()? {
        Icmpv6::NeighborSolicit { target, .. } => Some(target),
        _ => None,
    }
}

/// The made-up neighbour's answer: `target` is at its MAC.
fn advertisement(target: Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + 40 + 32];
    ethernet::emit(&mut f, OUR_MAC, PEER_MAC, ETHERTYPE_IPV6).expect("room");
    // To all nodes: the answer needs none of our addresses.
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let flags = icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE;
    let n = icmpv6::emit_neighbor_advert(&mut f[54..], target, all_nodes, target, flags, PEER_MAC)
        .expect("room");
    let h = Ipv6Header {
        src: target,
        dst: all_nodes,
        next_header: NEXT_ICMPV6,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
        payload_len: n as u16,
    };
    h.emit(&mut f[ethernet::HEADER_LEN..]).expect("room");
    f.truncate(54 + n);
    f
}

impl Device for Wire {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn receive(&mut self, _now: Instant, budget: usize, rx: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(frame) = self.inbound.pop_front() else {
                break;
            };
            rx(&frame);
            n += 1;
        }
        n
    }

    fn transmit(
        &mut self,
        now: Instant,
        budget: usize,
        tx: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> usize {
        let mut buf = vec![0u8; self.mtu + ethernet::HEADER_LEN];
        let mut n = 0;
        while n < budget {
            let Some(len) = tx(&mut buf) else { break };
            self.sent(&buf[..len], now);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_is_answered_and_ip_loses_its_header() {
        let mut w = Wire::new(1500);
        let req = ArpPacket {
            op: ArpOp::Request,
            sender_mac: OUR_MAC,
            sender_ip: Ipv4Addr::new(192, 168, 0, 1),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(192, 168, 0, 2),
        };
        let mut frame = vec![0; 42];
        ethernet::emit(&mut frame, MacAddr::BROADCAST, OUR_MAC, ETHERTYPE_ARP).unwrap();
        req.emit(&mut frame[14..]).unwrap();
        w.sent(&frame, Instant::ZERO);
        let mut got = Vec::new();
        w.receive(Instant::ZERO, 8, &mut |f| got.push(f.to_vec()));
        let reply = ArpPacket::parse(&got[0][14..]).unwrap();
        assert_eq!((reply.op, reply.sender_ip), (ArpOp::Reply, req.target_ip));

        let mut ip = vec![0x45u8; 40];
        w.inject(&ip).unwrap();
        ip[0] = 0x30;
        assert!(w.inject(&ip).is_err(), "neither IPv4 nor IPv6");
        let mut frame = Vec::new();
        w.receive(Instant::ZERO, 8, &mut |f| frame = f.to_vec());
        w.sent(&frame, Instant::from_micros(5));
        let (packet, at) = w.next_outbound().unwrap();
        assert_eq!((packet.len(), at), (40, Instant::from_micros(5)));
    }

    #[test]
    fn a_solicitation_is_answered_and_neighbor_discovery_stays_off_the_wire() {
        let mut w = Wire::new(1500);
        let (ours, target): (Ipv6Addr, Ipv6Addr) = (
            "fd3d:a0b:17d6::1".parse().unwrap(),
            "fd3d:a0b:17d6:8888::1".parse().unwrap(),
        );
        let group = icmpv6::solicited_node(target);
        let mut f = vec![0u8; 14 + 40 + 32];
        ethernet::emit(
            &mut f,
            icmpv6::multicast_mac(group),
            OUR_MAC,
            ETHERTYPE_IPV6,
        )
        .unwrap();
        let n = icmpv6::emit_neighbor_solicit(&mut f[54..], ours, group, target, OUR_MAC).unwrap();
        let h = Ipv6Header {
            src: ours,
            dst: group,
            next_header: NEXT_ICMPV6,
            hop_limit: 255,
            traffic_class: 0,
            flow_label: 0,
            payload_len: n as u16,
        };
        h.emit(&mut f[14..]).unwrap();
        f.truncate(54 + n);
        w.sent(&f, Instant::ZERO);
        assert!(!w.has_outbound(), "packetdrill never sees it");
        let mut got = Vec::new();
        w.receive(Instant::ZERO, 8, &mut |f| got.push(f.to_vec()));
        let ip = Ipv6Packet::parse(&got[0][14..]).unwrap();
        assert!(matches!(
            Icmpv6::parse(ip.payload, ip.src, ip.dst),
            Ok(Icmpv6::NeighborAdvert { target: t, target_lladdr: Some(PEER_MAC), .. }) if t == target
        ));
        // An IPv6 packet of anything else goes to packetdrill, header off.
        let mut tcp = vec![0u8; 60];
        tcp[0] = 0x60;
        w.inject(&tcp).unwrap();
        let mut frame = Vec::new();
        w.receive(Instant::ZERO, 8, &mut |f| frame = f.to_vec());
        w.sent(&frame, Instant::ZERO);
        assert_eq!(w.next_outbound().unwrap().0.len(), 60);
    }
}
