//! IPv4 headers (RFC 791). Options are skipped; fragments are reported so
//! the interface can drop and count them (this stack does not reassemble).

use super::{be16, checksum, WireError};
use std::net::Ipv4Addr;

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    /// The ECN field (RFC 3168 5): 0 not ECN-capable, 1 and 2 ECT, 3 CE.
    pub ecn: u8,
    /// More-fragments set or a non-zero offset: part of a fragmented datagram.
    pub is_fragment: bool,
    /// The payload, trimmed to the header's total length (Ethernet pads short frames).
    pub payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if b[0] >> 4 != 4 || ihl < MIN_HEADER_LEN {
            return Err(WireError::BadVersion);
        }
        let total = usize::from(be16(b, 2));
        if total < ihl {
            return Err(WireError::BadLength);
        }
        if b.len() < total || b.len() < ihl {
            return Err(WireError::Truncated);
        }
        if checksum::checksum(&b[..ihl]) != 0 {
            return Err(WireError::BadChecksum);
        }
        let frag = be16(b, 6);
        Ok(Ipv4Packet {
            src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
            dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
            protocol: b[9],
            ttl: b[8],
            ident: be16(b, 4),
            dont_fragment: frag & 0x4000 != 0,
            ecn: b[1] & 0x03,
            is_fragment: frag & 0x2000 != 0 || frag & 0x1fff != 0,
            payload: &b[ihl..total],
        })
    }
}

/// The fields a sender chooses for a 20-byte header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub payload_len: u16,
    /// The type-of-service byte: DSCP and the ECN field (ECT(0) is 0x02).
    pub tos: u8,
}

impl Ipv4Header {
    /// Writes the header with its checksum into `b[..20]`.
    pub fn emit(&self, b: &mut [u8]) -> Result<usize, WireError> {
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let total = self
            .payload_len
            .checked_add(MIN_HEADER_LEN as u16)
            .ok_or(WireError::BadLength)?;
        b[0] = 0x45;
        b[1] = self.tos;
        b[2..4].copy_from_slice(&total.to_be_bytes());
        b[4..6].copy_from_slice(&self.ident.to_be_bytes());
        let flags: u16 = if self.dont_fragment { 0x4000 } else { 0 };
        b[6..8].copy_from_slice(&flags.to_be_bytes());
        b[8] = self.ttl;
        b[9] = self.protocol;
        b[10..12].fill(0);
        b[12..16].copy_from_slice(&self.src.octets());
        b[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(&b[..MIN_HEADER_LEN]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        Ok(MIN_HEADER_LEN)
    }
}
