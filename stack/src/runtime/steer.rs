//! Flow steering: which core owns a frame.
//!
//! The owner of a TCP flow is a hash of its 4-tuple that gives the same
//! answer from both ends (it combines the two endpoints with XOR), so the
//! core that opens a connection can pick a local port whose replies hash
//! back to itself. The NIC (or veth) picks the receive queue with its own
//! hash, which we cannot see or set; frames that land on a core other than
//! their owner are handed over (see `handoff`).

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

/// The core that owns the flow between `a` and `b`, in either direction.
pub fn flow_owner(a: (Ipv4Addr, u16), b: (Ipv4Addr, u16), cores: usize) -> usize {
    if cores <= 1 {
        return 0;
    }
    let ips = u64::from(u32::from(a.0) ^ u32::from(b.0));
    let ports = u64::from(a.1 ^ b.1);
    // SplitMix64's finaliser spreads the bits of the symmetric key.
    let mut z = (ips << 16 | ports).wrapping_add(0x9e37_79b9_7f4a_7c15);
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
        let us = Ipv4Addr::new(10, 1, 0, 1);
        let peer = Ipv4Addr::new(10, 1, 0, 2);
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
}
