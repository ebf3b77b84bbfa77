//! The wire packetdrill sees: raw IPv4 packets in and out, no Ethernet.
//!
//! The stack speaks Ethernet, so packets from packetdrill get a header
//! from a made-up neighbour, and the header comes off what the stack sends.
//! ARP requests are answered at once by that neighbour, whatever address
//! they ask for: packetdrill scripts have no ARP in them.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use xdptcp::device::Device;
use xdptcp::time::Instant;
use xdptcp::wire::arp::{ArpOp, ArpPacket};
use xdptcp::wire::ethernet::{self, EthernetFrame, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4};

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

    /// An IPv4 packet from packetdrill, as if it had come off the wire.
    pub fn inject(&mut self, packet: &[u8]) -> Result<(), &'static str> {
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return Err("not an IPv4 packet");
        }
        // Larger than the MTU is fine: Linux's GRO hands its TCP such
        // packets, and packetdrill scripts written for it send them.
        if packet.len() > usize::from(u16::MAX) {
            return Err("larger than an IPv4 packet");
        }
        let mut frame = vec![0; ethernet::HEADER_LEN + packet.len()];
        ethernet::emit(&mut frame, OUR_MAC, PEER_MAC, ETHERTYPE_IPV4).expect("room for a header");
        frame[ethernet::HEADER_LEN..].copy_from_slice(packet);
        self.inbound.push_back(frame);
        Ok(())
    }

    pub fn has_inbound(&self) -> bool {
        !self.inbound.is_empty()
    }

    /// The oldest IPv4 packet the stack sent, with the time it left.
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
            ETHERTYPE_IPV4 if self.outbound.len() < MAX_OUTBOUND => {
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
        ip[0] = 0x60;
        assert!(w.inject(&ip).is_err(), "IPv6 is refused");
        let mut frame = Vec::new();
        w.receive(Instant::ZERO, 8, &mut |f| frame = f.to_vec());
        w.sent(&frame, Instant::from_micros(5));
        let (packet, at) = w.next_outbound().unwrap();
        assert_eq!((packet.len(), at), (40, Instant::from_micros(5)));
    }
}
