//! Initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret),
//! where M is a 4-microsecond clock and F a keyed hash (SipHash-2-4 here).
//! The same secret keys two more values a peer must not be able to guess:
//! the offset of our timestamp clock (RFC 7323 section 7.1: a TSval must
//! not reveal the host's clock, as one derived from the ISS would, since
//! the peer sees the ISS) and the start of the ephemeral port search (RFC
//! 6056 algorithm 3: ports not predictable from one connection to the next
//! peer).
//!
//! The secret is handed in by whoever builds the stack (from the OS random
//! source in real runs, from the seed in simulations), so this code stays
//! deterministic.

use super::seq::SeqNum;
use crate::time::Instant;
use crate::wire::HostAddr;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl IsnGenerator {
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator { key: secret }
    }

    pub fn isn<A: HostAddr>(&self, local: (A, u16), remote: (A, u16), now: Instant) -> SeqNum {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(local.0.octets_of().as_ref());
        h.write_u16(local.1);
        h.write(remote.0.octets_of().as_ref());
        h.write_u16(remote.1);
        let f = h.finish() as u32;
        let m = (now.as_micros() / 4) as u32;
        SeqNum(m.wrapping_add(f))
    }

    /// A keyed hash of `parts` with a domain tag, so the three uses of the
    /// secret give unrelated values.
    fn keyed(&self, tag: u8, parts: &[&[u8]]) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write_u8(tag);
        for p in parts {
            h.write(p);
        }
        h.finish()
    }

    /// Our timestamp clock's offset towards `remote`: per pair of hosts,
    /// as Linux (so TSvals to one host keep rising across connections,
    /// which RFC 6191's reuse of TIME-WAIT relies on).
    pub fn ts_offset<A: HostAddr>(&self, local: A, remote: A) -> u32 {
        self.keyed(
            1,
            &[local.octets_of().as_ref(), remote.octets_of().as_ref()],
        ) as u32
    }

    /// The keyed part of a SYN cookie (`iface::syn_cookie`).
    pub fn cookie_hash<A: HostAddr>(
        &self,
        ends: ((A, u16), (A, u16)),
        peer_isn: u32,
        tick: u64,
    ) -> u32 {
        let ((li, lp), (ri, rp)) = ends;
        self.keyed(
            3,
            &[
                li.octets_of().as_ref(),
                &lp.to_be_bytes(),
                ri.octets_of().as_ref(),
                &rp.to_be_bytes(),
                &peer_isn.to_be_bytes(),
                &tick.to_be_bytes(),
            ],
        ) as u32
    }

    /// An IPv6 flow label for the connection `local`-`remote` (RFC 6437
    /// 3: the same for all its packets, hard for others to predict): 20
    /// bits of a keyed hash.
    pub fn flow_label<A: HostAddr>(&self, local: (A, u16), remote: (A, u16)) -> u32 {
        let h = self.keyed(
            4,
            &[
                local.0.octets_of().as_ref(),
                &local.1.to_be_bytes(),
                remote.0.octets_of().as_ref(),
                &remote.1.to_be_bytes(),
            ],
        );
        h as u32 & 0x000f_ffff
    }

    /// Where the ephemeral port search starts for `remote` (RFC 6056 3.3.3).
    pub fn port_offset<A: HostAddr>(&self, local: A, remote: (A, u16)) -> u32 {
        self.keyed(
            2,
            &[
                local.octets_of().as_ref(),
                remote.0.octets_of().as_ref(),
                &remote.1.to_be_bytes(),
            ],
        ) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Over IPv6 tuples the same: keyed, per tuple, on the 4 us clock; and
    /// an IPv4 host and its IPv4-mapped IPv6 form are different keys.
    #[test]
    fn ipv6_tuples_get_their_own_isns_and_offsets() {
        let g = IsnGenerator::new([7; 16]);
        let me: Ipv6Addr = "fd00::1".parse().unwrap();
        let peer: Ipv6Addr = "fd00::2".parse().unwrap();
        let t = Instant::from_millis(5);
        let base = g.isn((me, 1000), (peer, 80), t);
        assert_eq!(base, g.isn((me, 1000), (peer, 80), t));
        assert_ne!(base, g.isn((me, 1000), ("fd00::3".parse().unwrap(), 80), t));
        assert_ne!(
            base,
            IsnGenerator::new([8; 16]).isn((me, 1000), (peer, 80), t)
        );
        let later = t + std::time::Duration::from_micros(400);
        assert_eq!(g.isn((me, 1000), (peer, 80), later) - base, 100);
        let v4 = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mapped = (v4.0.to_ipv6_mapped(), v4.1.to_ipv6_mapped());
        assert_ne!(g.ts_offset(v4.0, v4.1), g.ts_offset(mapped.0, mapped.1));
        assert_ne!(g.port_offset(me, (peer, 80)), g.port_offset(me, (peer, 81)));
        let ends = ((me, 80), (peer, 40_000));
        assert_ne!(g.cookie_hash(ends, 1, 9), g.cookie_hash(ends, 1, 10));
    }

    #[test]
    fn isn_depends_on_tuple_secret_and_clock() {
        let g = IsnGenerator::new([7; 16]);
        let a = (Ipv4Addr::new(10, 0, 0, 1), 1000);
        let b = (Ipv4Addr::new(10, 0, 0, 2), 80);
        let t = Instant::from_millis(5);
        let base = g.isn(a, b, t);
        assert_eq!(base, g.isn(a, b, t), "same inputs, same ISN");
        assert_ne!(base, g.isn((a.0, 1001), b, t), "tuple changes the ISN");
        assert_ne!(
            base,
            IsnGenerator::new([8; 16]).isn(a, b, t),
            "secret changes the ISN"
        );
        // The clock component advances one step per 4 microseconds.
        assert_eq!(
            g.isn(a, b, t + std::time::Duration::from_micros(400)) - base,
            100
        );
    }

    #[test]
    fn timestamp_offset_and_port_offset_are_keyed_and_unrelated_to_the_isn() {
        let (me, peer) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let g = IsnGenerator::new([7; 16]);
        let off = g.ts_offset(me, peer);
        assert_eq!(off, g.ts_offset(me, peer), "one offset per host pair");
        assert_ne!(off, IsnGenerator::new([8; 16]).ts_offset(me, peer), "keyed");
        assert_ne!(off, g.ts_offset(me, Ipv4Addr::new(10, 0, 0, 3)));
        // Not the ISN's hash part (what the clock-free ISN would reveal).
        let isn0 = g.isn((me, 1000), (peer, 80), Instant::from_nanos(0)).0;
        assert_ne!(off, isn0);
        assert_ne!(off, isn0.rotate_left(13) ^ 0x5bd1_e995);
        let p = g.port_offset(me, (peer, 80));
        assert_ne!(p, g.port_offset(me, (peer, 81)), "per remote port");
        assert_ne!(p, IsnGenerator::new([8; 16]).port_offset(me, (peer, 80)));
    }
}
