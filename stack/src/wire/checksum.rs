//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` into a running 32-bit one's-complement accumulator.
/// Odd-length input is padded with a zero byte, as RFC 1071 says.
pub fn accumulate(sum: u32, data: &[u8]) -> u32 {
    add_words(sum, sum_native(data))
}

/// Copies `src` into `dst` (the same length) and adds it into `sum`, in
/// one pass over the bytes: building a segment reads its payload once.
/// As `accumulate`, the bytes are taken to start at an even offset.
pub fn copy_and_accumulate(sum: u32, dst: &mut [u8], src: &[u8]) -> u32 {
    assert_eq!(dst.len(), src.len(), "copy_and_accumulate: lengths differ");
    let mut acc = 0u64;
    let mut d = dst.chunks_exact_mut(4);
    let mut s = src.chunks_exact(4);
    for (d, s) in (&mut d).zip(&mut s) {
        let w: [u8; 4] = s.try_into().expect("4 bytes");
        d.copy_from_slice(&w);
        acc += u64::from(u32::from_ne_bytes(w));
    }
    let tail = s.remainder();
    d.into_remainder().copy_from_slice(tail);
    add_words(sum, fold_native(acc + sum_native_tail(tail)))
}

/// Adds a part's sum, taken as if the part began at an even offset, into
/// `sum` for a part that begins at `offset`: a part at an odd offset has
/// its bytes in the other half of each 16-bit word (RFC 1071 2(B)).
pub fn add_at(sum: u32, part: u32, offset: usize) -> u32 {
    let part = finish_fold(part);
    let part = if offset % 2 == 1 {
        part.swap_bytes()
    } else {
        part
    };
    add_words(sum, part)
}

/// The one's-complement sum of `data` in native byte order. 32-bit words
/// are added into a 64-bit accumulator, which cannot overflow below 16
/// GiB of input and needs no carries, so the compiler vectorizes the loop
/// (the sum does not depend on the order in which words are added, and a
/// byte swap at the end gives the big-endian sum).
fn sum_native(data: &[u8]) -> u16 {
    let mut acc = 0u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes(w.try_into().expect("4 bytes")));
    }
    fold_native(acc + sum_native_tail(words.remainder()))
}

/// Up to three trailing bytes as 16-bit native words (a last odd byte
/// padded with zero).
fn sum_native_tail(tail: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut words = tail.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    acc
}

/// A native-order 64-bit sum folded to 16 bits, in big-endian order.
fn fold_native(acc: u64) -> u16 {
    let mut s = (acc >> 32) + (acc & 0xffff_ffff);
    while s > 0xffff {
        s = (s >> 16) + (s & 0xffff);
    }
    u16::from_be(s as u16)
}

/// Adds a 16-bit big-endian word sum into the running accumulator and
/// folds it early, so long inputs cannot overflow 32 bits.
fn add_words(sum: u32, words: u16) -> u32 {
    let sum = sum + u32::from(words);
    (sum & 0xffff) + (sum >> 16)
}

fn finish_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Folds the accumulator to 16 bits and complements it.
pub fn finish(sum: u32) -> u16 {
    !finish_fold(sum)
}

/// The checksum of one contiguous buffer.
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The TCP/UDP pseudo-header sum (RFC 9293 section 3.1).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum + u32::from(protocol) + u32::from(len)
}

/// The IPv6 pseudo-header sum for TCP and ICMPv6 (RFC 8200 8.1): both
/// addresses, the upper-layer length as 32 bits, the next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum + (len >> 16) + (len & 0xffff) + u32::from(next_header)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit field changes from
/// `old` to `new`, without re-summing the packet: HC' = ~(~HC + ~m + m').
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    finish(sum)
}

/// Incremental update for a 32-bit field (two 16-bit halves).
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let c = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example bytes: sum is 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn the_ipv6_pseudo_header_sums_as_etherparse_does() {
        let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0xab, 1];
        let dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0xcd, 2];
        for len in [0usize, 1, 7, 1440, 9000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut h = etherparse::TcpHeader::new(40_000, 443, 0x0102_0304, 64_000);
            h.ack = true;
            h.acknowledgment_number = 0xa0b0_c0d0;
            let want = h.calc_checksum_ipv6_raw(src, dst, &payload).unwrap();
            let mut seg = h.to_bytes().to_vec();
            seg.extend_from_slice(&payload);
            let pseudo = pseudo_header_v6(src.into(), dst.into(), 6, seg.len() as u32);
            assert_eq!(finish(accumulate(pseudo, &seg)), want, "{len} bytes");
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0xab]), checksum(&[0xab, 0x00]));
    }

    /// RFC 1071's definition, 16 bits at a time: the oracle.
    fn reference(data: &[u8]) -> u16 {
        let mut sum = 0u64;
        for (i, b) in data.iter().enumerate() {
            sum += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn wide_sums_match_the_definition_at_every_length_and_split() {
        for n in (0..80).chain([1447, 1448, 1460, 8948, 9000]) {
            let data = bytes(n, n as u64 + 7);
            assert_eq!(checksum(&data), reference(&data), "length {n}");
            let ones = vec![0xffu8; n];
            assert_eq!(checksum(&ones), reference(&ones), "all ones, length {n}");
            // A payload in two parts (a ring buffer that wraps), copied
            // and summed in one pass, the second part at either parity.
            for split in [0, 1, n / 3, n / 2, n.saturating_sub(1), n] {
                let split = split.min(n);
                let mut out = vec![0u8; n];
                let (a, b) = out.split_at_mut(split);
                let s = copy_and_accumulate(0, a, &data[..split]);
                let t = copy_and_accumulate(0, b, &data[split..]);
                assert_eq!(out, data, "copied, length {n} split {split}");
                let sum = add_at(s, t, split);
                assert_eq!(finish(sum), reference(&data), "length {n} split {split}");
            }
        }
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let mut data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let before = checksum(&data);
        let old = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let new = 0xdead_beef_u32;
        data[4..8].copy_from_slice(&new.to_be_bytes());
        assert_eq!(update32(before, old, new), checksum(&data));
    }
}
