//! ICMP echo request and reply (RFC 792). Other ICMP types are counted and dropped.

use super::{be16, checksum, WireError};

pub const HEADER_LEN: usize = 8;
pub const ECHO_REPLY: u8 = 0;
pub const ECHO_REQUEST: u8 = 8;

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
