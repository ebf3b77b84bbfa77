//! IPv6 headers (RFC 8200) and the extension-header chain.
//!
//! The fixed header is 40 bytes; between it and the upper-layer header
//! (TCP, ICMPv6) may come extension headers, each naming the next. An
//! endpoint walks the chain: hop-by-hop and destination options are read
//! option by option (an option it does not know says, in its two top
//! bits, whether to skip it or discard the packet, RFC 8200 4.2); a
//! routing header with segments left is for a router, so an endpoint that
//! is its destination discards the packet (4.4); a fragment header marks
//! part of a datagram, reported so the interface can count and drop it
//! (no reassembly, as for IPv4). A chain longer than `MAX_EXTENSIONS` is
//! refused: walking it is work an attacker chooses.

use super::{be16, be32, WireError};
use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 40;
/// The smallest MTU an IPv6 link may have (RFC 8200 5).
pub const MIN_MTU: usize = 1280;

pub const NEXT_HOP_BY_HOP: u8 = 0;
pub const NEXT_TCP: u8 = 6;
pub const NEXT_ROUTING: u8 = 43;
pub const NEXT_FRAGMENT: u8 = 44;
pub const NEXT_ICMPV6: u8 = 58;
pub const NEXT_NONE: u8 = 59;
pub const NEXT_DESTINATION: u8 = 60;

/// Extension headers walked at most before a packet is refused.
pub const MAX_EXTENSIONS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol, after the extension headers (`NEXT_TCP`,
    /// `NEXT_ICMPV6`, `NEXT_NONE`, or one this stack does not speak).
    pub next_header: u8,
    pub hop_limit: u8,
    /// Traffic class: DSCP and, in its low two bits, the ECN field.
    pub traffic_class: u8,
    pub flow_label: u32,
    /// A fragment header was in the chain: part of a datagram.
    pub is_fragment: bool,
    /// The upper-layer payload, trimmed to the payload length (Ethernet
    /// pads short frames).
    pub payload: &'a [u8],
    /// Bytes of extension headers before the payload (an ICMPv6 error
    /// quotes the packet from its start).
    pub extensions_len: usize,
}

impl<'a> Ipv6Packet<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        let first = be32(b, 0);
        let end = HEADER_LEN + usize::from(be16(b, 4));
        if b.len() < end {
            return Err(WireError::Truncated);
        }
        let mut next = b[6];
        let mut at = HEADER_LEN;
        let mut is_fragment = false;
        for walked in 0.. {
            let ext = match next {
                NEXT_HOP_BY_HOP | NEXT_DESTINATION | NEXT_ROUTING | NEXT_FRAGMENT => &b[at..end],
                _ => break,
            };
            // Hop-by-hop options must come first (RFC 8200 4.1).
            if walked >= MAX_EXTENSIONS || (next == NEXT_HOP_BY_HOP && walked > 0) {
                return Err(WireError::Unsupported);
            }
            if ext.len() < 8 {
                return Err(WireError::Truncated);
            }
            let len = if next == NEXT_FRAGMENT {
                8
            } else {
                (usize::from(ext[1]) + 1) * 8
            };
            if ext.len() < len {
                return Err(WireError::Truncated);
            }
            match next {
                NEXT_HOP_BY_HOP | NEXT_DESTINATION => check_options(&ext[2..len])?,
                // Segments left: the packet is on its way through us to
                // another node, which an endpoint does not do.
                NEXT_ROUTING if ext[3] != 0 => return Err(WireError::Unsupported),
                NEXT_FRAGMENT => is_fragment = true,
                _ => {}
            }
            next = ext[0];
            at += len;
        }
        Ok(Ipv6Packet {
            src: addr(&b[8..24]),
            dst: addr(&b[24..40]),
            next_header: next,
            hop_limit: b[7],
            traffic_class: (first >> 20) as u8,
            flow_label: first & 0x000f_ffff,
            is_fragment,
            payload: &b[at..end],
            extensions_len: at - HEADER_LEN,
        })
    }

    /// The ECN field (RFC 3168 5): 0 not ECN-capable, 1 and 2 ECT, 3 CE.
    pub fn ecn(&self) -> u8 {
        self.traffic_class & 0x03
    }
}

/// Options of a hop-by-hop or destination options header: Pad1 and PadN
/// skipped, an unknown option skipped if its type says so (top bits 00),
/// else the packet is discarded (RFC 8200 4.2). Their lengths must tile
/// the header exactly.
fn check_options(mut o: &[u8]) -> Result<(), WireError> {
    while let Some(&kind) = o.first() {
        if kind == 0 {
            o = &o[1..];
            continue;
        }
        let len = 2 + usize::from(*o.get(1).ok_or(WireError::BadOption)?);
        if o.len() < len {
            return Err(WireError::BadOption);
        }
        if kind != 1 && kind >> 6 != 0 {
            return Err(WireError::Unsupported);
        }
        o = &o[len..];
    }
    Ok(())
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

/// The fields a sender chooses for a header without extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits (RFC 6437): stable per connection, so that paths that hash
    /// it keep a connection's packets together.
    pub flow_label: u32,
    pub payload_len: u16,
}

impl Ipv6Header {
    /// Writes the header into `b[..40]` (IPv6 has no header checksum).
    pub fn emit(&self, b: &mut [u8]) -> Result<usize, WireError> {
        if b.len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        if self.flow_label > 0x000f_ffff {
            return Err(WireError::Unsupported);
        }
        let first = 6 << 28 | u32::from(self.traffic_class) << 20 | self.flow_label;
        b[0..4].copy_from_slice(&first.to_be_bytes());
        b[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        b[6] = self.next_header;
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src.octets());
        b[24..40].copy_from_slice(&self.dst.octets());
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        IpNumber, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header as Oracle, Ipv6RawExtHeader,
    };

    const SRC: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// A packet etherparse builds: its header, then `exts` (each an
    /// extension header's bytes, already chained), then `payload`.
    fn packet(first_next: u8, exts: &[Vec<u8>], payload: &[u8]) -> Vec<u8> {
        let len: usize = exts.iter().map(Vec::len).sum::<usize>() + payload.len();
        let h = Oracle {
            traffic_class: 0xb9,
            flow_label: Ipv6FlowLabel::try_new(0x5_4321).unwrap(),
            payload_length: len as u16,
            next_header: IpNumber(first_next),
            hop_limit: 63,
            source: SRC,
            destination: DST,
        };
        let mut b = h.to_bytes().to_vec();
        for e in exts {
            b.extend_from_slice(e);
        }
        b.extend_from_slice(payload);
        b
    }

    fn raw(next: u8, body: &[u8]) -> Vec<u8> {
        Ipv6RawExtHeader::new_raw(IpNumber(next), body)
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn the_fixed_header_reads_as_etherparse_writes_it() {
        let mut b = packet(NEXT_TCP, &[], b"segment");
        b.extend_from_slice(&[0; 5]); // Ethernet padding
        let p = Ipv6Packet::parse(&b).unwrap();
        assert_eq!((p.src.octets(), p.dst.octets()), (SRC, DST));
        assert_eq!((p.next_header, p.hop_limit), (NEXT_TCP, 63));
        assert_eq!(
            (p.traffic_class, p.ecn(), p.flow_label),
            (0xb9, 1, 0x5_4321)
        );
        assert_eq!(
            (p.payload, p.is_fragment, p.extensions_len),
            (&b"segment"[..], false, 0)
        );
    }

    #[test]
    fn what_we_write_etherparse_reads() {
        let h = Ipv6Header {
            src: Ipv6Addr::from(SRC),
            dst: Ipv6Addr::from(DST),
            next_header: NEXT_ICMPV6,
            hop_limit: 255,
            traffic_class: 0x02,
            flow_label: 0xf_ffff,
            payload_len: 24,
        };
        let mut b = [0u8; 40];
        assert_eq!(h.emit(&mut b), Ok(40));
        let (o, _) = Oracle::from_slice(&b).unwrap();
        assert_eq!((o.source, o.destination), (SRC, DST));
        assert_eq!(o.next_header, IpNumber(NEXT_ICMPV6));
        assert_eq!(
            (o.hop_limit, o.traffic_class, o.payload_length),
            (255, 0x02, 24)
        );
        assert_eq!(o.flow_label.value(), 0xf_ffff);
        let too_big = Ipv6Header {
            flow_label: 0x10_0000,
            ..h
        };
        assert_eq!(too_big.emit(&mut b), Err(WireError::Unsupported));
        assert_eq!(h.emit(&mut [0u8; 39]), Err(WireError::BufferTooSmall));
    }

    #[test]
    fn extension_headers_are_walked_to_the_upper_layer() {
        // Hop-by-hop (PadN, an unknown skippable option), destination
        // options, a routing header with no segments left, a fragment.
        let hbh = raw(NEXT_DESTINATION, &[1, 0, 0x1e, 2, 0xaa, 0xbb]);
        let dst = raw(NEXT_ROUTING, &[0, 0, 0, 0, 0, 0]);
        let rt = raw(NEXT_FRAGMENT, &[0, 0, 0, 0, 0, 0]);
        let frag = Ipv6FragmentHeader::new(IpNumber(NEXT_TCP), 0.try_into().unwrap(), true, 7);
        let exts = [hbh, dst, rt, frag.to_bytes().to_vec()];
        let b = packet(NEXT_HOP_BY_HOP, &exts, b"data");
        let p = Ipv6Packet::parse(&b).unwrap();
        assert_eq!((p.next_header, p.payload), (NEXT_TCP, &b"data"[..]));
        assert!(p.is_fragment);
        assert_eq!(p.extensions_len, 32);
    }

    #[test]
    fn packets_an_endpoint_must_not_take_are_refused() {
        let tcp_after =
            |first, exts: &[Vec<u8>]| Ipv6Packet::parse(&packet(first, exts, b"x")).map(|_| ());
        // An unknown option whose type says "discard" (top bits 01).
        let hbh = raw(NEXT_TCP, &[0x41, 2, 0, 0, 1, 0]);
        assert_eq!(
            tcp_after(NEXT_HOP_BY_HOP, &[hbh]),
            Err(WireError::Unsupported)
        );
        // Hop-by-hop anywhere but first.
        let dst = raw(NEXT_HOP_BY_HOP, &[1, 4, 0, 0, 0, 0]);
        let hbh = raw(NEXT_TCP, &[1, 4, 0, 0, 0, 0]);
        assert_eq!(
            tcp_after(NEXT_DESTINATION, &[dst, hbh]),
            Err(WireError::Unsupported)
        );
        // A routing header with segments left.
        let rt = raw(NEXT_TCP, &[0, 1, 0, 0, 0, 0]);
        assert_eq!(tcp_after(NEXT_ROUTING, &[rt]), Err(WireError::Unsupported));
        // A chain longer than we walk.
        let chain: Vec<Vec<u8>> = (0..=MAX_EXTENSIONS)
            .map(|i| {
                let next = if i == MAX_EXTENSIONS {
                    NEXT_TCP
                } else {
                    NEXT_DESTINATION
                };
                raw(next, &[1, 4, 0, 0, 0, 0])
            })
            .collect();
        assert_eq!(
            tcp_after(NEXT_DESTINATION, &chain),
            Err(WireError::Unsupported)
        );
        // Options that do not tile their header.
        let dst = raw(NEXT_TCP, &[1, 9, 0, 0, 0, 0]);
        assert_eq!(
            tcp_after(NEXT_DESTINATION, &[dst]),
            Err(WireError::BadOption)
        );
    }

    #[test]
    fn no_input_panics_and_lengths_are_checked() {
        let b = packet(NEXT_TCP, &[], b"payload");
        for n in 0..b.len() {
            let r = Ipv6Packet::parse(&b[..n]);
            assert_eq!(r, Err(WireError::Truncated), "cut at {n}");
        }
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::parse(&v4), Err(WireError::BadVersion));
        // An extension header that runs past the payload length.
        let hbh = raw(NEXT_TCP, &[1, 4, 0, 0, 0, 0]);
        let mut short = packet(NEXT_HOP_BY_HOP, &[hbh], b"");
        short[5] = 4;
        short.truncate(44);
        assert_eq!(Ipv6Packet::parse(&short), Err(WireError::Truncated));
        // Every byte of a packet with extensions, flipped: errors, no panic.
        let hbh = raw(NEXT_DESTINATION, &[1, 4, 0, 0, 0, 0]);
        let dst = raw(NEXT_TCP, &[0x1e, 2, 0, 0, 1, 0]);
        let b = packet(NEXT_HOP_BY_HOP, &[hbh, dst], b"payload");
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut m = b.clone();
                m[i] ^= 1 << bit;
                let _ = Ipv6Packet::parse(&m);
            }
        }
    }
}
