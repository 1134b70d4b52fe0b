//! The `/api/randoms` computation: how often each integer in 1..=1000 comes up in N uniform draws.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

pub const LOWEST: u32 = 1;
pub const HIGHEST: u32 = 1000;
const SPAN: u32 = HIGHEST - LOWEST + 1;
/// Draws between two looks at the cancel flag: about a millisecond of work.
const CHUNK: u64 = 1 << 20;

/// Counts per value: `counts[i]` is how often `LOWEST + i` came up.
pub type Tally = Box<[u64; SPAN as usize]>;

/// Draws `n` integers uniformly from 1..=1000 and counts them, or returns `None` as soon as
/// `cancelled` is set (the client went away).
pub fn tally(n: u64, cancelled: &AtomicBool) -> Option<Tally> {
    let mut rng = SmallRng::from_entropy();
    let mut counts: Tally = Box::new([0; SPAN as usize]);
    let mut left = n;
    while left > 0 {
        if cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let chunk = left.min(CHUNK);
        draw_into(&mut rng, chunk, &mut counts);
        left -= chunk;
    }
    Some(counts)
}

fn draw_into(rng: &mut SmallRng, n: u64, counts: &mut [u64; SPAN as usize]) {
    // Two 32-bit draws per 64-bit output of the generator.
    for _ in 0..n / 2 {
        let bits = rng.next_u64();
        counts[below_span(bits as u32, rng)] += 1;
        counts[below_span((bits >> 32) as u32, rng)] += 1;
    }
    if n % 2 == 1 {
        let bits = rng.next_u32();
        counts[below_span(bits, rng)] += 1;
    }
}

/// Maps 32 random bits to 0..SPAN without bias: Lemire's multiply-and-shift, redrawing in the rare
/// case (296 in 2^32) where the low half falls in the part of the range that would favour some values.
#[inline(always)]
fn below_span(bits: u32, rng: &mut SmallRng) -> usize {
    const THRESHOLD: u32 = SPAN.wrapping_neg() % SPAN;
    let mut product = u64::from(bits) * u64::from(SPAN);
    while (product as u32) < THRESHOLD {
        product = u64::from(rng.next_u32()) * u64::from(SPAN);
    }
    (product >> 32) as usize
}

/// The answer's JSON: `{"<value>": count, ...}` for the values that came up, in ascending order.
pub fn to_json(counts: &[u64; SPAN as usize]) -> String {
    let mut out = String::with_capacity(counts.len() * 16);
    out.push('{');
    for (offset, count) in counts.iter().enumerate().filter(|(_, count)| **count > 0) {
        if out.len() > 1 {
            out.push(',');
        }
        let _ = write!(out, "\"{}\":{count}", LOWEST as usize + offset);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_to_n_and_cover_the_range_evenly() {
        let n = 2_000_001;
        let counts = tally(n, &AtomicBool::new(false)).unwrap();
        assert_eq!(counts.iter().sum::<u64>(), n);
        // Each value expects 2000 hits (sd ~ 45): all within 6 sd, so a biased mapping would show.
        assert!(counts.iter().all(|&c| (1730..=2270).contains(&c)), "{counts:?}");
        // Chi-square with 999 degrees of freedom: mean 999, sd ~ 45.
        let expected = n as f64 / SPAN as f64;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 999.0 + 6.0 * 44.7, "chi2 {chi2}");
    }

    #[test]
    fn a_cancelled_tally_stops() {
        assert!(tally(u64::MAX, &AtomicBool::new(true)).is_none());
    }

    #[test]
    fn json_lists_only_values_that_came_up() {
        let mut counts = [0u64; SPAN as usize];
        counts[0] = 2;
        counts[999] = 1;
        assert_eq!(to_json(&counts), r#"{"1":2,"1000":1}"#);
    }
}
