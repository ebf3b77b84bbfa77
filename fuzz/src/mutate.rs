//! A seeded mutator: bit flips, interesting values, insertions, deletions
//! and splices of corpus entries, as AFL's havoc stage does them.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

const INTERESTING: [u32; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
];

/// A mutated copy of `seed`, at most `max_len` long; `other` may be spliced in.
pub fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut d = seed.to_vec();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        match rng.below(7) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next_u64() as u8;
            }
            2 if d.len() >= 4 => {
                let i = rng.below(d.len() - 3);
                let v = INTERESTING[rng.below(INTERESTING.len())].to_be_bytes();
                let w = [1, 2, 4][rng.below(3)];
                d[i..i + w].copy_from_slice(&v[4 - w..]);
            }
            3 if d.len() < max_len => {
                let i = rng.below(d.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                d.splice(i..i, bytes);
            }
            4 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = 1 + rng.below((d.len() - i).min(16));
                d.drain(i..i + n);
            }
            5 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = a + 1 + rng.below(other.len() - a);
                let i = rng.below(d.len() + 1);
                d.splice(i..i, other[a..b].iter().copied());
            }
            _ if d.len() >= 2 => {
                // Small arithmetic on a 16-bit field (lengths, ports, windows).
                let i = rng.below(d.len() - 1);
                let v = u16::from_be_bytes([d[i], d[i + 1]])
                    .wrapping_add(rng.below(33) as u16)
                    .wrapping_sub(16);
                d[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
    d.truncate(max_len);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_per_seed_and_change_the_input() {
        let seed = b"0123456789abcdef";
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<_> = (0..50).map(|_| mutate(&mut a, seed, b"zz", 64)).collect();
        let ys: Vec<_> = (0..50).map(|_| mutate(&mut b, seed, b"zz", 64)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().filter(|x| x.as_slice() != seed).count() > 40);
        assert!(xs.iter().all(|x| x.len() <= 64));
    }
}
