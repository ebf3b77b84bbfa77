//! Flow steering: which core owns a frame.
//!
//! The owner of a TCP flow is a hash of its 4-tuple that gives the same
//! answer from both ends (it combines the two endpoints with XOR), so the
//! core that opens a connection can pick a local port whose replies hash
//! back to itself. The NIC (or veth) picks the receive queue with its own
//! hash, which we cannot see or set; frames that land on a core other than
//! their owner are handed over (see `handoff`).

use crate::wire::HostAddr;
use std::net::Ipv4Addr;

/// Where a received frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// The core that received it handles it (ARP requests, ICMP, junk).
    Here,
    /// A TCP segment, owned by this core.
    Owner(usize),
    /// An ARP reply: every core keeps its own neighbour cache.
    Everyone,
}

/// The core that owns the flow between `a` and `b`, in either direction
/// (addresses of either family: both ends are of one).
pub fn flow_owner<A: HostAddr>(a: (A, u16), b: (A, u16), cores: usize) -> usize {
    if cores <= 1 {
        return 0;
    }
    let ips = a.0.fold64() ^ b.0.fold64();
    let ports = u64::from(a.1 ^ b.1);
    // SplitMix64's finaliser spreads the bits of the symmetric key.
    let mut z = (ips.rotate_left(16) ^ ports).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % cores as u64) as usize
}

/// Looks at just enough of the frame to steer it; anything it does not
/// understand stays `Here`, where the interface counts it.
pub fn classify(frame: &[u8], cores: usize) -> Steer {
    let Some(ethertype) = frame.get(12..14) else {
        return Steer::Here;
    };
    match ethertype {
        [0x08, 0x06] => match frame.get(20..22) {
            Some([0, 2]) => Steer::Everyone,
            _ => Steer::Here,
        },
        [0x08, 0x00] => {
            let ip = &frame[14..];
            let (Some(&vihl), Some(&proto)) = (ip.first(), ip.get(9)) else {
                return Steer::Here;
            };
            let ihl = usize::from(vihl & 0x0f) * 4;
            match (proto, ip.get(ihl)) {
                (6, _) if ihl >= 20 => tcp_owner(ip, cores),
                // An ICMP error about one of our segments (destination
                // unreachable: "fragmentation needed" among them) goes to
                // the core that owns the flow it quotes, which alone can
                // act on it (path MTU discovery).
                (1, Some(&3)) if ihl >= 20 => ip
                    .get(ihl + 8..)
                    .map_or(Steer::Here, |quoted| tcp_owner(quoted, cores)),
                _ => Steer::Here,
            }
        }
        [0x86, 0xdd] => ipv6_owner(&frame[14..], cores),
        _ => Steer::Here,
    }
}

/// The owner of an IPv6 packet: a TCP segment's flow; an ICMPv6 error's,
/// by the segment it quotes (fixed header and 8 bytes of TCP); every core
/// for a neighbour advertisement (each keeps its own neighbour cache, as
/// for ARP replies); anything else stays.
fn ipv6_owner(b: &[u8], cores: usize) -> Steer {
    use crate::wire::{icmpv6, ipv6};
    let Ok(p) = ipv6::Ipv6Packet::parse(b) else {
        return Steer::Here;
    };
    let ports = |t: &[u8]| -> Option<(u16, u16)> {
        let t = t.get(..4)?;
        Some((
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]]),
        ))
    };
    let addr = |a: &[u8]| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(a).expect("16 bytes"));
    match (p.next_header, p.payload.first().copied()) {
        (ipv6::NEXT_TCP, _) => match ports(p.payload) {
            Some((sp, dp)) => Steer::Owner(flow_owner((p.src, sp), (p.dst, dp), cores)),
            None => Steer::Here,
        },
        (ipv6::NEXT_ICMPV6, Some(icmpv6::NEIGHBOR_ADVERT)) => Steer::Everyone,
        (ipv6::NEXT_ICMPV6, Some(icmpv6::DEST_UNREACHABLE | icmpv6::PACKET_TOO_BIG)) => {
            let q = &p.payload[icmpv6::HEADER_LEN.min(p.payload.len())..];
            match (q.get(6), q.get(8..40), ports(q.get(40..).unwrap_or(&[]))) {
                (Some(&ipv6::NEXT_TCP), Some(a), Some((sp, dp))) => Steer::Owner(flow_owner(
                    (addr(&a[..16]), sp),
                    (addr(&a[16..]), dp),
                    cores,
                )),
                _ => Steer::Here,
            }
        }
        _ => Steer::Here,
    }
}

/// The owner of the TCP segment in IPv4 packet `ip` (or of what an ICMP
/// error quotes of one: its header and first 8 bytes suffice).
fn tcp_owner(ip: &[u8], cores: usize) -> Steer {
    let ihl = usize::from(ip.first().map_or(0, |v| v & 0x0f)) * 4;
    let (Some(addrs), Some(ports)) = (ip.get(12..20), ip.get(ihl..ihl + 4)) else {
        return Steer::Here;
    };
    if ihl < 20 || ip.get(9) != Some(&6) {
        return Steer::Here;
    }
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    Steer::Owner(flow_owner((src, sport), (dst, dport), cores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_the_same_from_both_ends_and_spreads_ports() {
        symmetric_and_spread(Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 2));
        symmetric_and_spread::<std::net::Ipv6Addr>(
            "fd00:1::1".parse().unwrap(),
            "fd00:1::2".parse().unwrap(),
        );
    }

    fn symmetric_and_spread<A: HostAddr>(us: A, peer: A) {
        let mut per_core = [0usize; 4];
        for port in 40_000..44_000u16 {
            let o = flow_owner((us, port), (peer, 5201), 4);
            assert_eq!(o, flow_owner((peer, 5201), (us, port), 4));
            per_core[o] += 1;
        }
        // 4000 ports over 4 cores: each gets a fair share.
        assert!(
            per_core.iter().all(|&n| (800..1200).contains(&n)),
            "{per_core:?}"
        );
    }

    #[test]
    fn frames_are_classified_by_protocol() {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[20..22].copy_from_slice(&[0, 1]);
        assert_eq!(classify(&f, 2), Steer::Here, "ARP request");
        f[21] = 2;
        assert_eq!(classify(&f, 2), Steer::Everyone, "ARP reply");
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 1;
        assert_eq!(classify(&f, 2), Steer::Here, "ICMP");
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 1, 0, 2]);
        f[30..34].copy_from_slice(&[10, 1, 0, 1]);
        f[34..38].copy_from_slice(&[0x13, 0x89, 0xc0, 0x00]);
        let want = flow_owner(
            (Ipv4Addr::new(10, 1, 0, 2), 5001),
            (Ipv4Addr::new(10, 1, 0, 1), 0xc000),
            2,
        );
        assert_eq!(classify(&f, 2), Steer::Owner(want));
        assert_eq!(classify(&f[..30], 2), Steer::Here, "truncated");
    }

    #[test]
    fn an_icmp_error_goes_to_the_owner_of_the_segment_it_quotes() {
        let us = Ipv4Addr::new(10, 1, 0, 1);
        let peer = Ipv4Addr::new(10, 9, 0, 2);
        let mut f = vec![0u8; 14 + 20 + 8 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 1; // ICMP, from a router
        f[26..30].copy_from_slice(&[10, 1, 0, 254]);
        f[30..34].copy_from_slice(&us.octets());
        f[34] = 3; // destination unreachable
        f[35] = 4; // fragmentation needed
        let q = 42; // the quoted packet: ours, to the peer
        f[q] = 0x45;
        f[q + 9] = 6;
        f[q + 12..q + 16].copy_from_slice(&us.octets());
        f[q + 16..q + 20].copy_from_slice(&peer.octets());
        for port in 40_000..40_064u16 {
            f[q + 20..q + 22].copy_from_slice(&port.to_be_bytes());
            f[q + 22..q + 24].copy_from_slice(&443u16.to_be_bytes());
            let want = flow_owner((us, port), (peer, 443), 4);
            assert_eq!(classify(&f, 4), Steer::Owner(want), "port {port}");
        }
        assert_eq!(classify(&f[..q + 10], 4), Steer::Here, "truncated quote");
        f[34] = 8;
        assert_eq!(classify(&f, 4), Steer::Here, "an echo request");
    }

    /// An Ethernet frame with an IPv6 packet from `src` to `dst` carrying
    /// `next` and `payload` (built with etherparse, the oracle).
    fn ipv6_frame(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
        let h = etherparse::Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: payload.len() as u16,
            next_header: etherparse::IpNumber(next),
            hop_limit: 64,
            source: src,
            destination: dst,
        };
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&h.to_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn ipv6_frames_are_steered_by_flow_quote_or_to_everyone() {
        use std::net::Ipv6Addr;
        let us: [u8; 16] = "fd00:1::1".parse::<Ipv6Addr>().unwrap().octets();
        let peer: [u8; 16] = "fd00:1::2".parse::<Ipv6Addr>().unwrap().octets();
        let tcp = [
            0x13, 0x89, 0xc0, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 1, 0, 0, 0, 0, 0,
        ];
        let want = flow_owner(
            (Ipv6Addr::from(peer), 5001),
            (Ipv6Addr::from(us), 0xc000),
            4,
        );
        assert_eq!(
            classify(&ipv6_frame(peer, us, 6, &tcp), 4),
            Steer::Owner(want)
        );
        // A packet too big from a router, quoting our segment to the peer.
        let mut quote =
            ipv6_frame(us, peer, 6, &[0xc0, 0x00, 0x13, 0x89, 0, 0, 0, 1])[14..].to_vec();
        let mut ptb = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        ptb.append(&mut quote);
        let router = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe];
        assert_eq!(
            classify(&ipv6_frame(router, us, 58, &ptb), 4),
            Steer::Owner(want)
        );
        assert_eq!(
            classify(&ipv6_frame(router, us, 58, &ptb[..30]), 4),
            Steer::Here,
            "a quote cut short"
        );
        // Neighbour advertisements to every core, solicitations stay.
        let na = [136u8, 0, 0, 0, 0x60, 0, 0, 0];
        let ns = [135u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(classify(&ipv6_frame(peer, us, 58, &na), 4), Steer::Everyone);
        assert_eq!(classify(&ipv6_frame(peer, us, 58, &ns), 4), Steer::Here);
        assert_eq!(
            classify(&ipv6_frame(peer, us, 6, &tcp)[..60], 4),
            Steer::Here,
            "truncated"
        );
    }
}
