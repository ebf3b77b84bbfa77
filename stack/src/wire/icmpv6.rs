//! ICMPv6 (RFC 4443) and Neighbor Discovery's messages (RFC 4861).
//!
//! IPv6 has no ARP: a host finds a neighbour's link-layer address with a
//! neighbour solicitation sent to the target's solicited-node multicast
//! group, answered by a neighbour advertisement; both are ICMPv6, whose
//! checksum covers the IPv6 pseudo-header (so it is verified here, given
//! the addresses). Besides those: echo, and the errors a TCP sender acts
//! on, packet too big (path MTU, RFC 8201) and destination unreachable,
//! with the TCP segment they quote. Neighbor Discovery messages must
//! arrive with hop limit 255, which proves they were not forwarded: the
//! caller checks that against the IPv6 header (RFC 4861 7.1).

use super::ethernet::MacAddr;
use super::{be16, be32, checksum, ipv6, WireError};
use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 8;
pub const DEST_UNREACHABLE: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const ROUTER_SOLICIT: u8 = 133;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;

/// NDP options: the sender's and the target's link-layer address.
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

/// Neighbour advertisement flags (RFC 4861 4.4).
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;

/// What an ICMPv6 error quotes of one of our TCP segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6<'a> {
    Echo {
        request: bool,
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    /// A link on the way carries at most `mtu` bytes (at least 1280).
    PacketTooBig {
        mtu: u32,
        quoted: Quoted,
    },
    DestUnreachable {
        code: u8,
        quoted: Quoted,
    },
    NeighborSolicit {
        target: Ipv6Addr,
        source_lladdr: Option<MacAddr>,
    },
    NeighborAdvert {
        target: Ipv6Addr,
        /// `NA_ROUTER`, `NA_SOLICITED`, `NA_OVERRIDE`.
        flags: u8,
        target_lladdr: Option<MacAddr>,
    },
    /// Checksum good, a type this stack does not act on.
    Other {
        kind: u8,
    },
}

impl<'a> Icmpv6<'a> {
    /// Parses a message that came from `src` to `dst`, verifying its
    /// checksum over the pseudo-header.
    pub fn parse(b: &'a [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<Self, WireError> {
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = u32::try_from(b.len()).map_err(|_| WireError::BadLength)?;
        let sum = checksum::pseudo_header_v6(src, dst, ipv6::NEXT_ICMPV6, len);
        if checksum::finish(checksum::accumulate(sum, b)) != 0 {
            return Err(WireError::BadChecksum);
        }
        let (kind, code) = (b[0], b[1]);
        let body = &b[HEADER_LEN..];
        Ok(match kind {
            ECHO_REQUEST | ECHO_REPLY if code == 0 => Icmpv6::Echo {
                request: kind == ECHO_REQUEST,
                ident: be16(b, 4),
                seq: be16(b, 6),
                data: body,
            },
            PACKET_TOO_BIG if code == 0 => Icmpv6::PacketTooBig {
                mtu: be32(b, 4),
                quoted: quoted(body)?,
            },
            DEST_UNREACHABLE => Icmpv6::DestUnreachable {
                code,
                quoted: quoted(body)?,
            },
            NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT => {
                // Code 0, a target that is no multicast address, options
                // of non-zero length (RFC 4861 7.1.1, 7.1.2).
                if code != 0 {
                    return Err(WireError::Unsupported);
                }
                let target = addr(body.get(..16).ok_or(WireError::Truncated)?);
                if target.is_multicast() {
                    return Err(WireError::Unsupported);
                }
                let want = if kind == NEIGHBOR_SOLICIT {
                    OPT_SOURCE_LLADDR
                } else {
                    OPT_TARGET_LLADDR
                };
                let lladdr = lladdr_option(&body[16..], want)?;
                if kind == NEIGHBOR_SOLICIT {
                    Icmpv6::NeighborSolicit {
                        target,
                        source_lladdr: lladdr,
                    }
                } else {
                    Icmpv6::NeighborAdvert {
                        target,
                        flags: b[4] & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE),
                        target_lladdr: lladdr,
                    }
                }
            }
            _ => Icmpv6::Other { kind },
        })
    }
}

/// The invoking packet's IPv6 header and the first 8 bytes of its TCP
/// header, which every error quotes (as much as fits in 1280 bytes). The
/// quote may be cut short of its payload length, so it is read directly,
/// not through `Ipv6Packet::parse`; only a quote of TCP right after the
/// fixed header is ours to act on.
fn quoted(q: &[u8]) -> Result<Quoted, WireError> {
    if q.len() < ipv6::HEADER_LEN + 8 {
        return Err(WireError::Truncated);
    }
    if q[0] >> 4 != 6 {
        return Err(WireError::BadVersion);
    }
    if q[6] != ipv6::NEXT_TCP {
        return Err(WireError::Unsupported);
    }
    let tcp = &q[ipv6::HEADER_LEN..];
    Ok(Quoted {
        src: addr(&q[8..24]),
        dst: addr(&q[24..40]),
        src_port: be16(tcp, 0),
        dst_port: be16(tcp, 2),
        seq: be32(tcp, 4),
    })
}

/// The link-layer address option of kind `want`, if present. Every
/// option's length (in 8-byte units) must be non-zero and fit.
fn lladdr_option(mut o: &[u8], want: u8) -> Result<Option<MacAddr>, WireError> {
    let mut found = None;
    while !o.is_empty() {
        let len = usize::from(*o.get(1).ok_or(WireError::BadOption)?) * 8;
        if len == 0 || o.len() < len {
            return Err(WireError::BadOption);
        }
        if o[0] == want && len == 8 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&o[2..8]);
            found = Some(MacAddr(m));
        }
        o = &o[len..];
    }
    Ok(found)
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// Writes an echo reply (or request) from `src` to `dst`.
pub fn emit_echo(
    b: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    request: bool,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Result<usize, WireError> {
    let len = HEADER_LEN + data.len();
    let out = b.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
    out[0] = if request { ECHO_REQUEST } else { ECHO_REPLY };
    out[1] = 0;
    out[4..6].copy_from_slice(&ident.to_be_bytes());
    out[6..8].copy_from_slice(&seq.to_be_bytes());
    out[HEADER_LEN..].copy_from_slice(data);
    finish(out, src, dst)
}

/// Writes a neighbour solicitation for `target` with our link-layer
/// address (omitted, as RFC 4861 7.2.2 says, when `src` is unspecified,
/// as in duplicate address detection).
pub fn emit_neighbor_solicit(
    b: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    ours: MacAddr,
) -> Result<usize, WireError> {
    let lladdr = (!src.is_unspecified()).then_some((OPT_SOURCE_LLADDR, ours));
    emit_nd(b, src, dst, NEIGHBOR_SOLICIT, 0, target, lladdr)
}

/// Writes a neighbour advertisement for `target` (ours) with our
/// link-layer address; `flags` of `NA_ROUTER`, `NA_SOLICITED`,
/// `NA_OVERRIDE`.
pub fn emit_neighbor_advert(
    b: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    flags: u8,
    ours: MacAddr,
) -> Result<usize, WireError> {
    let lladdr = Some((OPT_TARGET_LLADDR, ours));
    emit_nd(b, src, dst, NEIGHBOR_ADVERT, flags, target, lladdr)
}

fn emit_nd(
    b: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    flags: u8,
    target: Ipv6Addr,
    lladdr: Option<(u8, MacAddr)>,
) -> Result<usize, WireError> {
    let len = HEADER_LEN + 16 + if lladdr.is_some() { 8 } else { 0 };
    let out = b.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
    out[0] = kind;
    out[1] = 0;
    out[4..8].copy_from_slice(&[flags, 0, 0, 0]);
    out[8..24].copy_from_slice(&target.octets());
    if let Some((opt, mac)) = lladdr {
        out[24] = opt;
        out[25] = 1;
        out[26..32].copy_from_slice(&mac.0);
    }
    finish(out, src, dst)
}

/// Fills in the checksum of the message `out`; returns its length.
fn finish(out: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize, WireError> {
    let len = u32::try_from(out.len()).map_err(|_| WireError::BadLength)?;
    out[2..4].fill(0);
    let sum = checksum::pseudo_header_v6(src, dst, ipv6::NEXT_ICMPV6, len);
    let c = checksum::finish(checksum::accumulate(sum, out));
    out[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(out.len())
}

/// The solicited-node multicast group of `a` (RFC 4291 2.7.1): where
/// neighbour solicitations for it are sent.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address an IPv6 multicast group maps to (RFC 2464 7):
/// 33:33 and the group's last 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IcmpEchoHeader, Icmpv6Header, Icmpv6Type};

    fn a(last: u8) -> Ipv6Addr {
        Ipv6Addr::from([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last])
    }
    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x2a]);

    /// etherparse's bytes for a message of type `t` with `body`.
    fn oracle(t: Icmpv6Type, body: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let h = Icmpv6Header::with_checksum(t, src.octets(), dst.octets(), body).unwrap();
        let mut b = h.to_bytes().to_vec();
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn echo_both_ways_with_etherparse() {
        let t = Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 9 });
        let b = oracle(t, b"ping", a(1), a(2));
        let m = Icmpv6::parse(&b, a(1), a(2)).unwrap();
        let want = Icmpv6::Echo {
            request: true,
            ident: 7,
            seq: 9,
            data: &b"ping"[..],
        };
        assert_eq!(m, want);
        // The same bytes from another source fail the pseudo-header sum.
        assert_eq!(Icmpv6::parse(&b, a(3), a(2)), Err(WireError::BadChecksum));
        let mut out = [0u8; 64];
        let n = emit_echo(&mut out, a(2), a(1), false, 7, 9, b"ping").unwrap();
        let reply = oracle(
            Icmpv6Type::EchoReply(IcmpEchoHeader { id: 7, seq: 9 }),
            b"ping",
            a(2),
            a(1),
        );
        assert_eq!(&out[..n], &reply[..]);
    }

    /// An IPv6 header and 8 bytes of TCP from a(1):40000 to a(2):443.
    fn quote() -> Vec<u8> {
        let h = crate::wire::ipv6::Ipv6Header {
            src: a(1),
            dst: a(2),
            next_header: ipv6::NEXT_TCP,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
            payload_len: 1440,
        };
        let mut q = vec![0u8; 48];
        h.emit(&mut q).unwrap();
        q[40..48].copy_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0x10, 0x01]);
        q
    }

    #[test]
    fn errors_name_the_segment_they_quote() {
        let b = oracle(Icmpv6Type::PacketTooBig { mtu: 1400 }, &quote(), a(9), a(1));
        let want = Quoted {
            src: a(1),
            dst: a(2),
            src_port: 40_000,
            dst_port: 443,
            seq: 0x1001,
        };
        assert_eq!(
            Icmpv6::parse(&b, a(9), a(1)),
            Ok(Icmpv6::PacketTooBig {
                mtu: 1400,
                quoted: want
            })
        );
        let t = Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port);
        let b = oracle(t, &quote(), a(2), a(1));
        assert_eq!(
            Icmpv6::parse(&b, a(2), a(1)),
            Ok(Icmpv6::DestUnreachable {
                code: 4,
                quoted: want
            })
        );
        let b = oracle(
            Icmpv6Type::PacketTooBig { mtu: 1400 },
            &quote()[..47],
            a(9),
            a(1),
        );
        assert_eq!(Icmpv6::parse(&b, a(9), a(1)), Err(WireError::Truncated));
    }

    #[test]
    fn neighbor_discovery_round_trips_and_checks_what_rfc_4861_asks() {
        let group = solicited_node(a(2));
        assert_eq!(group, "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(multicast_mac(group), MacAddr([0x33, 0x33, 0xff, 0, 0, 2]));
        let mut b = [0u8; 64];
        let n = emit_neighbor_solicit(&mut b, a(1), group, a(2), MAC).unwrap();
        // etherparse agrees on the header and the checksum.
        let (h, body) = Icmpv6Header::from_slice(&b[..n]).unwrap();
        let again = Icmpv6Header::with_checksum(h.icmp_type, a(1).octets(), group.octets(), body);
        assert_eq!(again.unwrap(), h);
        assert_eq!(
            Icmpv6::parse(&b[..n], a(1), group),
            Ok(Icmpv6::NeighborSolicit {
                target: a(2),
                source_lladdr: Some(MAC)
            })
        );
        // Duplicate address detection: from ::, without our address.
        let n = emit_neighbor_solicit(&mut b, Ipv6Addr::UNSPECIFIED, group, a(2), MAC).unwrap();
        assert_eq!(n, 24);
        let flags = NA_SOLICITED | NA_OVERRIDE;
        let n = emit_neighbor_advert(&mut b, a(2), a(1), a(2), flags, MAC).unwrap();
        assert_eq!(
            Icmpv6::parse(&b[..n], a(2), a(1)),
            Ok(Icmpv6::NeighborAdvert {
                target: a(2),
                flags,
                target_lladdr: Some(MAC)
            })
        );
        // A multicast target, a non-zero code, an option of length 0.
        for (at, v, want) in [
            (8, 0xff, WireError::Unsupported),
            (1, 1, WireError::Unsupported),
            (25, 0, WireError::BadOption),
        ] {
            let mut bad = b;
            bad[at] = v;
            finish(&mut bad[..n], a(2), a(1)).unwrap();
            assert_eq!(Icmpv6::parse(&bad[..n], a(2), a(1)), Err(want), "byte {at}");
        }
    }

    #[test]
    fn no_input_panics() {
        let mut b = [0u8; 64];
        let n = emit_neighbor_advert(&mut b, a(2), a(1), a(2), NA_SOLICITED, MAC).unwrap();
        let msgs = [
            (b[..n].to_vec(), a(2)),
            (
                oracle(Icmpv6Type::PacketTooBig { mtu: 1280 }, &quote(), a(9), a(1)),
                a(9),
            ),
        ];
        // Cut or altered, then summed again so that parsing goes past the
        // checksum: errors or values, never a panic.
        for (m, src) in msgs {
            for cut in HEADER_LEN..m.len() {
                let mut x = m[..cut].to_vec();
                finish(&mut x, src, a(1)).unwrap();
                let _ = Icmpv6::parse(&x, src, a(1));
            }
            for i in (0..m.len()).filter(|i| !(2..4).contains(i)) {
                for v in [0u8, 1, 0x80, 0xff] {
                    let mut x = m.clone();
                    x[i] = v;
                    finish(&mut x, src, a(1)).unwrap();
                    let _ = Icmpv6::parse(&x, src, a(1));
                }
            }
        }
    }
}
