//! ARP for IPv4 over Ethernet (RFC 826).

use super::ethernet::{self, MacAddr};
use super::{be16, WireError};
use std::net::Ipv4Addr;

pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub op: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4: anything else is not ours.
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Unsupported);
        }
        let op = match be16(b, 6) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return Err(WireError::Unsupported),
        };
        let mac = |at: usize| {
            let mut m = [0; 6];
            m.copy_from_slice(&b[at..at + 6]);
            MacAddr(m)
        };
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Ok(ArpPacket {
            op,
            sender_mac: mac(8),
            sender_ip: ip(14),
            target_mac: mac(18),
            target_ip: ip(24),
        })
    }

    pub fn emit(&self, b: &mut [u8]) -> Result<usize, WireError> {
        if b.len() < PACKET_LEN {
            return Err(WireError::BufferTooSmall);
        }
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        b[6..8].copy_from_slice(&op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(PACKET_LEN)
    }

    /// The reply to this request from the owner of its target address, at
    /// `mac`, as a whole Ethernet frame addressed to the asker: what a
    /// made-up neighbour answers (the packetdrill wire, the fuzzer's device).
    pub fn reply_frame(&self, mac: MacAddr) -> Vec<u8> {
        let reply = ArpPacket {
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        };
        let mut frame = vec![0; ethernet::HEADER_LEN + PACKET_LEN];
        ethernet::emit(&mut frame, self.sender_mac, mac, ethernet::ETHERTYPE_ARP)
            .expect("sized for it");
        reply
            .emit(&mut frame[ethernet::HEADER_LEN..])
            .expect("sized for it");
        frame
    }
}
