//! The AVX2 kernel: the four lanes of `lanes.rs` in 256-bit registers, sixteen 16-bit words per
//! step, each mapped by Lemire's multiply-shift with one `vpmulhuw` (the value) and one `vpmullw`
//! (the low half, checked against the threshold). The same states, words and rejections as the
//! portable kernel (checked by the tests in `mod.rs`), with no branch per word.

use std::arch::x86_64::*;

use super::counting::{self, Tables};
use super::lanes::{Lanes, SPAN, THRESHOLD, WORDS_PER_STEP};

/// Whether this CPU runs the kernel (checked once per process by std, then a load). POPCNT counts
/// the rejections in one instruction; every AVX2 CPU has it, but it is a separate feature.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt")
}

/// Draws `n` values and counts them, the counting loop compiled together with the kernel. Only call
/// it where `available()` said yes.
#[target_feature(enable = "avx2,popcnt")]
pub(crate) fn draw(lanes: &mut Lanes, tables: &mut Tables, n: u64) {
    counting::draw(lanes, tables, n, |lanes, out| fill(lanes, out));
}

/// Same contract as `lanes::fill`.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
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
    let span = _mm256_set1_epi16(SPAN as i16);
    let highest_rejected = _mm256_set1_epi16((THRESHOLD - 1) as i16);
    // Two bits of the byte mask per rejected 16-bit word.
    let mut rejected_bytes = 0;
    for step in out.as_chunks_mut::<WORDS_PER_STEP>().0 {
        let output = _mm256_add_epi64(rotate_left::<23, 41>(_mm256_add_epi64(s0, s3)), s0);
        let t = _mm256_slli_epi64::<17>(s1);
        s2 = _mm256_xor_si256(s2, s0);
        s3 = _mm256_xor_si256(s3, s1);
        s1 = _mm256_xor_si256(s1, s2);
        s0 = _mm256_xor_si256(s0, s3);
        s2 = _mm256_xor_si256(s2, t);
        s3 = rotate_left::<45, 19>(s3);

        // Element i of `values` is word i's value (its product's high half), of `lows` the low half.
        let values = _mm256_mulhi_epu16(output, span);
        let lows = _mm256_mullo_epi16(output, span);
        let rejected = _mm256_cmpeq_epi16(_mm256_min_epu16(lows, highest_rejected), lows);
        // A rejected word's element becomes all ones: REJECTED.
        let marked = _mm256_or_si256(values, rejected);
        // SAFETY: `step` is 16 u16s, 32 bytes; the store is unaligned.
        unsafe { _mm256_storeu_si256(step.as_mut_ptr() as *mut __m256i, marked) };
        rejected_bytes += _mm256_movemask_epi8(rejected).count_ones() as usize;
    }
    // SAFETY: as for the loads.
    unsafe {
        _mm256_store_si256(state, s0);
        _mm256_store_si256(state.add(1), s1);
        _mm256_store_si256(state.add(2), s2);
        _mm256_store_si256(state.add(3), s3);
    }
    rejected_bytes / 2
}

/// Rotates each 64-bit element left by `LEFT` (AVX2 has no rotate: two shifts and an or).
#[inline]
#[target_feature(enable = "avx2")]
fn rotate_left<const LEFT: i32, const RIGHT: i32>(x: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_slli_epi64::<LEFT>(x), _mm256_srli_epi64::<RIGHT>(x))
}
