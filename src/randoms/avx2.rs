//! The AVX2 kernel: the four lanes of `lanes.rs` in 256-bit registers, eight words per step, each
//! word mapped by Lemire's multiply-shift with `vpmuludq`. The same states, words and dropped words
//! as the portable kernel (checked by the tests in `mod.rs`), about three times as fast.

use std::arch::x86_64::*;

use super::counting::{self, Tables};
use super::lanes::{Lanes, SPAN, THRESHOLD, WORDS_PER_STEP};

/// Whether this CPU runs the kernel (checked once per process by std, then a load).
pub fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// Draws `n` values and counts them, the counting loop compiled together with the kernel. Only call
/// it where `available()` said yes.
#[target_feature(enable = "avx2")]
pub fn draw(lanes: &mut Lanes, tables: &mut Tables, n: u64) {
    counting::draw(lanes, tables, n, |lanes, out| fill(lanes, out));
}

/// Same contract as `lanes::fill`.
#[inline]
#[target_feature(enable = "avx2")]
fn fill(lanes: &mut Lanes, out: &mut [u16]) -> usize {
    // SAFETY: `Lanes` is `repr(C, align(32))` of four `[u64; 4]`, so each `s[k]` is one aligned
    // 256-bit value.
    let state = lanes.s.as_mut_ptr() as *mut __m256i;
    let (mut s0, mut s1, mut s2, mut s3) = unsafe {
        (
            _mm256_load_si256(state),
            _mm256_load_si256(state.add(1)),
            _mm256_load_si256(state.add(2)),
            _mm256_load_si256(state.add(3)),
        )
    };
    let span = _mm256_set1_epi64x(i64::from(SPAN));
    let highest_rejected = _mm256_set1_epi32((THRESHOLD - 1) as i32);
    let mut kept = 0;
    for _ in 0..out.len() / WORDS_PER_STEP {
        let output = _mm256_add_epi64(rotate_left::<23, 41>(_mm256_add_epi64(s0, s3)), s0);
        let t = _mm256_slli_epi64::<17>(s1);
        s2 = _mm256_xor_si256(s2, s0);
        s3 = _mm256_xor_si256(s3, s1);
        s1 = _mm256_xor_si256(s1, s2);
        s0 = _mm256_xor_si256(s0, s3);
        s2 = _mm256_xor_si256(s2, t);
        s3 = rotate_left::<45, 19>(s3);

        // 64-bit products of the even words (low halves) and of the odd ones (high halves).
        let even = _mm256_mul_epu32(output, span);
        let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(output), span);
        // Element i of `values` is word i's value (its product's high half), of `lows` the low half.
        let values = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
        let lows = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        let rejected = _mm256_cmpeq_epi32(_mm256_min_epu32(lows, highest_rejected), lows);
        // Values are below 1000: pack to 16 bits (within each 128-bit half), then gather the halves.
        let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(values, values));
        let eight = _mm256_castsi256_si128(packed);
        if _mm256_movemask_ps(_mm256_castsi256_ps(rejected)) == 0 {
            // SAFETY: kept <= 8 * steps so far, so out[kept..kept + 8] lies inside this step's
            // share of `out`; the store is unaligned.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(kept) as *mut __m128i, eight) };
            kept += WORDS_PER_STEP;
        } else {
            // About once in 2 million steps: keep the accepted words one by one, in order.
            let mut words = [0u16; WORDS_PER_STEP];
            // SAFETY: `words` is 16 bytes; the store is unaligned.
            unsafe { _mm_storeu_si128(words.as_mut_ptr() as *mut __m128i, eight) };
            let mask = _mm256_movemask_ps(_mm256_castsi256_ps(rejected));
            for (i, value) in words.into_iter().enumerate() {
                if mask & (1 << i) == 0 {
                    out[kept] = value;
                    kept += 1;
                }
            }
        }
    }
    // SAFETY: as for the loads.
    unsafe {
        _mm256_store_si256(state, s0);
        _mm256_store_si256(state.add(1), s1);
        _mm256_store_si256(state.add(2), s2);
        _mm256_store_si256(state.add(3), s3);
    }
    kept
}

/// Rotates each 64-bit element left by `LEFT` (AVX2 has no rotate: two shifts and an or).
#[inline]
#[target_feature(enable = "avx2")]
fn rotate_left<const LEFT: i32, const RIGHT: i32>(x: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_slli_epi64::<LEFT>(x), _mm256_srli_epi64::<RIGHT>(x))
}
