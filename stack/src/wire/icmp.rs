//! ICMP echo request and reply (RFC 792), and "fragmentation needed"
//! (RFC 1191) for path MTU discovery. Other ICMP types are counted and
//! dropped.

use super::{be16, be32, checksum, WireError};
use std::net::Ipv4Addr;

pub const HEADER_LEN: usize = 8;
pub const ECHO_REPLY: u8 = 0;
pub const ECHO_REQUEST: u8 = 8;
pub const DEST_UNREACHABLE: u8 = 3;
pub const FRAG_NEEDED: u8 = 4;

/// "Fragmentation needed and DF set" (type 3 code 4): a router could not
/// forward one of our packets; the next hop's MTU and what it quoted of
/// the packet (its IP header and the first 8 bytes of TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragNeeded {
    pub mtu: u16,
    /// The quoted packet's addresses and TCP ports and sequence number.
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
}

impl FragNeeded {
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if checksum::checksum(b) != 0 {
            return Err(WireError::BadChecksum);
        }
        if b[0] != DEST_UNREACHABLE || b[1] != FRAG_NEEDED {
            return Err(WireError::Unsupported);
        }
        let q = &b[HEADER_LEN..];
        if q.len() < 20 || q[0] >> 4 != 4 {
            return Err(WireError::Truncated);
        }
        let ihl = usize::from(q[0] & 0x0f) * 4;
        if ihl < 20 || q.len() < ihl + 8 {
            return Err(WireError::Truncated);
        }
        if q[9] != super::ipv4::PROTO_TCP {
            return Err(WireError::Unsupported);
        }
        let ip = |at: usize| Ipv4Addr::new(q[at], q[at + 1], q[at + 2], q[at + 3]);
        let tcp = &q[ihl..];
        Ok(FragNeeded {
            mtu: be16(b, 6),
            src: ip(12),
            dst: ip(16),
            src_port: be16(tcp, 0),
            dst_port: be16(tcp, 2),
            seq: be32(tcp, 4),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpEcho<'a> {
    pub kind: u8,
    pub ident: u16,
    pub seq: u16,
    pub data: &'a [u8],
}

impl<'a> IcmpEcho<'a> {
    /// Parses an echo request or reply, verifying the checksum over the whole message.
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if checksum::checksum(b) != 0 {
            return Err(WireError::BadChecksum);
        }
        let kind = b[0];
        if (kind != ECHO_REQUEST && kind != ECHO_REPLY) || b[1] != 0 {
            return Err(WireError::Unsupported);
        }
        Ok(IcmpEcho {
            kind,
            ident: be16(b, 4),
            seq: be16(b, 6),
            data: &b[HEADER_LEN..],
        })
    }

    /// Writes the message with its checksum; returns the bytes written.
    pub fn emit(&self, b: &mut [u8]) -> Result<usize, WireError> {
        let len = HEADER_LEN + self.data.len();
        if b.len() < len {
            return Err(WireError::BufferTooSmall);
        }
        b[0] = self.kind;
        b[1] = 0;
        b[2..4].fill(0);
        b[4..6].copy_from_slice(&self.ident.to_be_bytes());
        b[6..8].copy_from_slice(&self.seq.to_be_bytes());
        b[HEADER_LEN..len].copy_from_slice(self.data);
        let c = checksum::checksum(&b[..len]);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        Ok(len)
    }
}
