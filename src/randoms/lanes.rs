//! The generator behind `/api/randoms`: four xoshiro256++ generators side by side ("lanes"), laid
//! out as an AVX2 register holds them, so the vector kernel and this portable one step the same
//! states and give the same words in the same order.
//!
//! Each step yields 8 words of 32 bits: lane 0's output low half, then its high half, then lane 1's,
//! and so on (the order of the 32-bit elements of the 256-bit register). Each word becomes a value
//! by Lemire's multiply-shift; a word whose low product falls below `THRESHOLD` would favour some
//! values and is dropped. Dropping a word and taking the next one is rejection sampling, so every
//! value 0..SPAN keeps probability exactly 1/SPAN, and both kernels drop the same words.

/// Values per draw: 0..SPAN, the caller adds its lowest value.
pub const SPAN: u32 = 1000;
/// Lemire's rejection bound, 2^32 mod SPAN = 296: a word is dropped 296 times in 2^32.
pub const THRESHOLD: u32 = SPAN.wrapping_neg() % SPAN;
/// 32-bit words per step of the four lanes.
pub const WORDS_PER_STEP: usize = 8;

/// Four xoshiro256++ states; `s[k][lane]` is word k of that lane's state, so `s[k]` is one
/// 256-bit register of the vector kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct Lanes {
    pub s: [[u64; 4]; 4],
}

impl Lanes {
    /// States from one seed through SplitMix64, the seeding xoshiro's authors recommend: it never
    /// gives an all-zero state, and nearby seeds give unrelated states.
    pub fn from_seed(seed: u64) -> Lanes {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut s = [[0; 4]; 4];
        for lane in 0..4 {
            for word in &mut s {
                word[lane] = splitmix();
            }
        }
        Lanes { s }
    }

    /// One xoshiro256++ step of every lane: their four 64-bit outputs.
    #[inline(always)]
    fn step(&mut self) -> [u64; 4] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0; 4];
        for lane in 0..4 {
            out[lane] = s0[lane].wrapping_add(s3[lane]).rotate_left(23).wrapping_add(s0[lane]);
            let t = s1[lane] << 17;
            s2[lane] ^= s0[lane];
            s3[lane] ^= s1[lane];
            s1[lane] ^= s2[lane];
            s0[lane] ^= s3[lane];
            s2[lane] ^= t;
            s3[lane] = s3[lane].rotate_left(45);
        }
        out
    }
}

/// The portable kernel: `out.len() / WORDS_PER_STEP` steps, the values of the words kept written to
/// the front of `out`; returns how many were kept.
pub fn fill(lanes: &mut Lanes, out: &mut [u16]) -> usize {
    let mut kept = 0;
    for _ in 0..out.len() / WORDS_PER_STEP {
        for output in lanes.step() {
            for word in [output as u32, (output >> 32) as u32] {
                let product = u64::from(word) * u64::from(SPAN);
                if product as u32 >= THRESHOLD {
                    out[kept] = (product >> 32) as u16;
                    kept += 1;
                }
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference xoshiro256++ (Blackman and Vigna's C code, one generator), to check the lanes.
    fn reference_next(s: &mut [u64; 4]) -> u64 {
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    #[test]
    fn each_lane_is_a_xoshiro256plusplus_generator() {
        let mut lanes = Lanes::from_seed(7);
        let mut single: Vec<[u64; 4]> = (0..4).map(|lane| [0, 1, 2, 3].map(|k| lanes.s[k][lane])).collect();
        for _ in 0..100 {
            let outputs = lanes.step();
            for (lane, state) in single.iter_mut().enumerate() {
                assert_eq!(outputs[lane], reference_next(state));
            }
        }
    }

    #[test]
    fn words_below_the_threshold_are_dropped() {
        // Lane 0 with s0 = s3 = 0 first outputs 0: both its words map to a low product of 0.
        let mut lanes = Lanes::from_seed(3);
        lanes.s[0][0] = 0;
        lanes.s[3][0] = 0;
        let mut values = [u16::MAX; 16];
        assert_eq!(fill(&mut lanes, &mut values), 14);
        assert!(values[..14].iter().all(|&value| u32::from(value) < SPAN));
    }

    #[test]
    fn seeding_matches_splitmix64() {
        // SplitMix64 from seed 0 starts with 0xe220a8397b1dcdaf (its published first output).
        assert_eq!(Lanes::from_seed(0).s[0][0], 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn the_threshold_is_two_to_the_32_mod_span() {
        assert_eq!(u64::from(THRESHOLD), (1u64 << 32) % u64::from(SPAN));
    }
}
