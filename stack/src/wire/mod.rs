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

/// An address of either IP family, as the keyed hashes (ISNs, SYN
/// cookies, timestamp and port offsets) and flow steering use it: its
/// bytes, and a 64-bit fold in which XOR carries over (the fold of
/// `a ^ b` is the XOR of the folds), so a hash of the two ends combined
/// with XOR is the same from either end.
pub trait HostAddr: Copy + Eq + std::hash::Hash + fmt::Debug {
    type Octets: AsRef<[u8]>;
    fn octets_of(&self) -> Self::Octets;
    fn fold64(&self) -> u64;
    /// The TCP pseudo-header sum of a segment of `len` bytes from `src`
    /// to `dst` (RFC 9293 3.1, RFC 8200 8.1); `None` for two addresses of
    /// different families, which no segment can have.
    fn tcp_pseudo_header(src: Self, dst: Self, len: u16) -> Option<u32>;
}

impl HostAddr for std::net::Ipv4Addr {
    type Octets = [u8; 4];
    fn octets_of(&self) -> [u8; 4] {
        self.octets()
    }
    fn fold64(&self) -> u64 {
        u64::from(u32::from(*self))
    }
    fn tcp_pseudo_header(src: Self, dst: Self, len: u16) -> Option<u32> {
        Some(checksum::pseudo_header(src, dst, ipv4::PROTO_TCP, len))
    }
}

impl HostAddr for std::net::Ipv6Addr {
    type Octets = [u8; 16];
    fn octets_of(&self) -> [u8; 16] {
        self.octets()
    }
    fn fold64(&self) -> u64 {
        let v = u128::from(*self);
        (v >> 64) as u64 ^ v as u64
    }
    fn tcp_pseudo_header(src: Self, dst: Self, len: u16) -> Option<u32> {
        Some(checksum::pseudo_header_v6(
            src,
            dst,
            ipv6::NEXT_TCP,
            u32::from(len),
        ))
    }
}

/// An address of either family, as connections hold them: the same
/// values as the family's own type (an IPv4 connection's ISN or flow hash
/// does not change with the type it is held in).
#[derive(Debug, Clone, Copy)]
pub enum IpOctets {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl AsRef<[u8]> for IpOctets {
    fn as_ref(&self) -> &[u8] {
        match self {
            IpOctets::V4(o) => o,
            IpOctets::V6(o) => o,
        }
    }
}

impl HostAddr for std::net::IpAddr {
    type Octets = IpOctets;
    fn octets_of(&self) -> IpOctets {
        match self {
            std::net::IpAddr::V4(a) => IpOctets::V4(a.octets()),
            std::net::IpAddr::V6(a) => IpOctets::V6(a.octets()),
        }
    }
    fn fold64(&self) -> u64 {
        match self {
            std::net::IpAddr::V4(a) => a.fold64(),
            std::net::IpAddr::V6(a) => a.fold64(),
        }
    }
    fn tcp_pseudo_header(src: Self, dst: Self, len: u16) -> Option<u32> {
        use std::net::IpAddr::{V4, V6};
        match (src, dst) {
            (V4(s), V4(d)) => HostAddr::tcp_pseudo_header(s, d, len),
            (V6(s), V6(d)) => HostAddr::tcp_pseudo_header(s, d, len),
            _ => None,
        }
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
