//! The generator behind `/api/randoms`: four xoshiro256++ generators side by side ("lanes"), laid
//! out as an AVX2 register holds them, so the vector kernel and this portable one step the same
//! states and give the same words in the same order.
//!
//! Each step yields 16 words of 16 bits: lane 0's output bits 0..16, then 16..32, 32..48, 48..64,
//! then lane 1's, and so on (the order of the 16-bit elements of the 256-bit register). Each word
//! becomes a value by Lemire's multiply-shift (`word * SPAN >> 16`); a word whose low product
//! half falls below `THRESHOLD` would favour some values and is rejected. Skipping a rejected word
//! and taking the next one is rejection sampling, so every value 0..SPAN keeps probability exactly
//! 1/SPAN, and both kernels reject the same words.
//!
//! Why 16-bit words: a value needs 10 bits, so a 64-bit output gives four draws instead of two,
//! halving the generator's share of the work. The price is more rejections (536 in 2^16, 0.8%,
//! against 296 in 2^32), too many for a branch per rejection: the kernels write a rejected word as
//! `REJECTED`, which the counting sends to a counter outside 0..SPAN, and return how many they
//! rejected, so the common path has no branch on the words at all.

/// Values per draw: 0..SPAN, the caller adds its lowest value.
pub(crate) const SPAN: u32 = 1000;
/// Lemire's rejection bound for 16-bit words, 2^16 mod SPAN = 536: 536 words in 2^16 rejected.
pub(crate) const THRESHOLD: u16 = ((1 << 16) % SPAN) as u16;
/// 16-bit words per step of the four lanes.
pub(crate) const WORDS_PER_STEP: usize = 16;
/// What a kernel writes for a rejected word: every bit set, so the vector kernel makes it with one
/// `or` of the rejection mask; not a value (>= SPAN), so counting sends it to a spare counter.
pub(crate) const REJECTED: u16 = u16::MAX;

/// Four xoshiro256++ states; `s[k][lane]` is word k of that lane's state, so `s[k]` is one
/// 256-bit register of the vector kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub(crate) struct Lanes {
    pub(crate) s: [[u64; 4]; 4],
}

impl Lanes {
    /// States from one seed through SplitMix64, the seeding xoshiro's authors recommend: it never
    /// gives an all-zero state, and nearby seeds give unrelated states.
    pub(crate) fn from_seed(seed: u64) -> Lanes {
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

/// The portable kernel: `out.len() / WORDS_PER_STEP` steps, each word's value (or `REJECTED`)
/// written to `out` in order; returns how many words it rejected.
pub(crate) fn fill(lanes: &mut Lanes, out: &mut [u16]) -> usize {
    let mut rejected = 0;
    for step in out.as_chunks_mut::<WORDS_PER_STEP>().0 {
        for (output, slots) in lanes.step().into_iter().zip(step.as_chunks_mut::<4>().0) {
            for (k, slot) in slots.iter_mut().enumerate() {
                let product = u32::from((output >> (16 * k)) as u16) * SPAN;
                *slot = if product as u16 >= THRESHOLD {
                    (product >> 16) as u16
                } else {
                    rejected += 1;
                    REJECTED
                };
            }
        }
    }
    rejected
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
    fn words_below_the_threshold_are_rejected() {
        // Lane 0 with s0 = s3 = 0 first outputs 0: its four words map to a low product of 0.
        let mut lanes = Lanes::from_seed(3);
        lanes.s[0][0] = 0;
        lanes.s[3][0] = 0;
        let mut values = [0; WORDS_PER_STEP];
        let rejected = fill(&mut lanes, &mut values);
        assert_eq!(values[..4], [REJECTED; 4]);
        // (Of the other lanes' twelve words, one or two may be rejected too: 0.8% each.)
        assert_eq!(rejected, values.iter().filter(|&&value| value == REJECTED).count());
        assert!(values.iter().all(|&value| value == REJECTED || u32::from(value) < SPAN), "{values:?}");
    }

    #[test]
    fn a_word_maps_to_its_product_high_half_unless_the_low_half_is_below_the_threshold() {
        // Lane 0's first output set by hand to the words (lowest first) 0, 66, 535, 65535:
        // products 0 and 66000 (low halves 0 and 464: rejected), 535000 = 8 * 2^16 + 10712
        // (value 8) and 65535000 = 999 * 2^16 + 64536 (value 999, the highest).
        let mut lanes = Lanes::from_seed(3);
        let output: u64 = 0xffff_0217_0042_0000;
        // The first output is rotl(s0 + s3, 23) + s0: with s0 = 0 it is rotl(s3, 23).
        lanes.s[0][0] = 0;
        lanes.s[3][0] = output.rotate_right(23);
        let mut values = [0; WORDS_PER_STEP];
        fill(&mut lanes, &mut values);
        assert_eq!(values[..4], [REJECTED, REJECTED, 8, 999]);
    }

    #[test]
    fn seeding_matches_splitmix64() {
        // SplitMix64 from seed 0 starts with 0xe220a8397b1dcdaf (its published first output).
        assert_eq!(Lanes::from_seed(0).s[0][0], 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn the_threshold_is_two_to_the_16_mod_span() {
        assert_eq!(u32::from(THRESHOLD), (1 << 16) % SPAN);
        assert!(u32::from(REJECTED) >= SPAN);
    }
}
