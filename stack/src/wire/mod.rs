//! Wire formats: parse borrowed frames, build headers in place.
//!
//! Every parser takes a byte slice and returns either a typed view or a
//! [`WireError`]; no input, however malformed, makes it panic. Every builder
//! writes into a caller-provided buffer, so the data path allocates nothing
//! per packet.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;

use std::fmt;

/// Why a frame or header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// Fewer bytes than the header (or its declared length) needs.
    Truncated,
    /// A length field disagrees with the bytes present or with itself.
    BadLength,
    /// IPv4 version other than 4, or IHL below 5.
    BadVersion,
    /// TCP data offset below 5 or past the segment end.
    BadDataOffset,
    /// An option's length byte is 0/1 or runs past the options area.
    BadOption,
    /// A checksum did not verify.
    BadChecksum,
    /// A field holds a value this stack does not handle (e.g. ARP for non-IPv4).
    Unsupported,
    /// The output buffer is too small for what is being built.
    BufferTooSmall,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            WireError::Truncated => "truncated",
            WireError::BadLength => "bad length field",
            WireError::BadVersion => "bad version or header length",
            WireError::BadDataOffset => "bad TCP data offset",
            WireError::BadOption => "malformed option",
            WireError::BadChecksum => "bad checksum",
            WireError::Unsupported => "unsupported value",
            WireError::BufferTooSmall => "output buffer too small",
        };
        f.write_str(s)
    }
}

impl std::error::Error for WireError {}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
