//! Initial sequence numbers per RFC 6528: ISN = M + F(4-tuple, secret),
//! where M is a 4-microsecond clock and F a keyed hash (SipHash-2-4 here).
//!
//! The secret is handed in by whoever builds the stack (from the OS random
//! source in real runs, from the seed in simulations), so this code stays
//! deterministic.

use super::seq::SeqNum;
use crate::time::Instant;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::Ipv4Addr;

#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl IsnGenerator {
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator { key: secret }
    }

    pub fn isn(&self, local: (Ipv4Addr, u16), remote: (Ipv4Addr, u16), now: Instant) -> SeqNum {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(&local.0.octets());
        h.write_u16(local.1);
        h.write(&remote.0.octets());
        h.write_u16(remote.1);
        let f = h.finish() as u32;
        let m = (now.as_micros() / 4) as u32;
        SeqNum(m.wrapping_add(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
