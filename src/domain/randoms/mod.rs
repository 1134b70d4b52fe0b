//! The `/api/randoms` computation: how often each integer in 1..=1000 comes up in N uniform draws.
//!
//! Every draw is made and counted, one counter increment each, in one pass: the generator
//! (`lanes.rs`: four xoshiro256++ lanes cut into 16-bit words, Lemire's unbiased multiply-shift)
//! runs as AVX2 vector code where the CPU has it (`avx2.rs`, chosen at run time) and as plain Rust
//! otherwise, both giving the same counts for the same seed; `counting.rs` counts a small block at
//! a time so generation and counting overlap. `cargo bench --bench randoms` measures it.

use std::sync::atomic::{AtomicBool, Ordering};

use counting::Tables;
use lanes::{Lanes, SPAN};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod counting;
mod lanes;

pub(crate) const LOWEST: u32 = 1;
/// Draws between two looks at the cancel flag (and two drains of the 32-bit tables into the
/// tally): well under a millisecond of work, and far below 2^32.
const CHUNK: u64 = 1 << 20;

/// Counts per value: `counts[i]` is how often `LOWEST + i` came up.
pub(crate) type Tally = Box<[u64; SPAN as usize]>;

/// How the words are generated: the same numbers either way, one faster where the CPU allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// Four lanes in AVX2 registers (x86-64 CPUs since 2013-2015).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// Every kernel this CPU can run, the fastest last.
    pub fn available() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            kernels.push(Kernel::Avx2);
        }
        kernels
    }

    pub fn fastest() -> Kernel {
        *Kernel::available().last().expect("the portable kernel is always there")
    }

    /// Draws `n` values and counts them into `tables`.
    fn draw(self, lanes: &mut Lanes, tables: &mut Tables, n: u64) {
        match self {
            Kernel::Portable => counting::draw(lanes, tables, n, lanes::fill),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                // A cached flag, one load per chunk: no undefined behaviour on an older CPU.
                assert!(avx2::available(), "this CPU has no AVX2 (or no POPCNT)");
                // SAFETY: the CPU has AVX2, just checked.
                unsafe { avx2::draw(lanes, tables, n) }
            }
        }
    }
}

/// Draws `n` integers uniformly from 1..=1000 and counts them, or returns `None` as soon as
/// `cancelled` is set (the client went away).
pub(crate) fn tally(n: u64, cancelled: &AtomicBool) -> Option<Tally> {
    tally_seeded(Kernel::fastest(), rand::random(), n, cancelled)
}

/// `tally` with a chosen kernel and seed: the same kernel-independent counts for the same seed.
pub fn tally_seeded(kernel: Kernel, seed: u64, n: u64, cancelled: &AtomicBool) -> Option<Tally> {
    let mut lanes = Lanes::from_seed(seed);
    let mut counts: Tally = Box::new([0; SPAN as usize]);
    let mut tables = Tables::new();
    let mut left = n;
    while left > 0 {
        if cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let chunk = left.min(CHUNK);
        kernel.draw(&mut lanes, &mut tables, chunk);
        tables.drain_into(&mut counts);
        left -= chunk;
    }
    Some(counts)
}

/// The answer's JSON: `{"<value>": count, ...}` for the values that came up, in ascending order.
/// Written with `itoa` into one buffer sized for the longest answer: `write!` goes through the
/// formatting machinery per number, three to four times slower for 1000 counts, which made the
/// answer cost more than drawing 100 000 values.
pub(crate) fn to_json(counts: &[u64; SPAN as usize]) -> String {
    // Per value at most `"1000":` (7 bytes), a 20-digit count and a comma.
    let mut out = String::with_capacity(2 + counts.len() * 28);
    let mut digits = itoa::Buffer::new();
    out.push('{');
    for (offset, count) in counts.iter().enumerate().filter(|(_, count)| **count > 0) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push('"');
        out.push_str(digits.format(LOWEST as usize + offset));
        out.push_str("\":");
        out.push_str(digits.format(*count));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static NOT_CANCELLED: AtomicBool = AtomicBool::new(false);

    #[test]
    fn every_kernel_gives_the_portable_counts_on_fixed_seeds() {
        let kernels = Kernel::available();
        // On x86-64 the test command runs where AVX2 exists: a machine without it would silently
        // compare the portable kernel with itself, so say so.
        #[cfg(target_arch = "x86_64")]
        assert!(
            kernels.contains(&Kernel::Avx2),
            "this x86-64 CPU has no AVX2: only the portable kernel is tested"
        );
        for seed in [0, 1, 42, u64::MAX] {
            // Odd sizes: a partial last block, whole blocks and one more value (counting.rs
            // counts blocks whole while at least 64 values are wanted), a chunk boundary.
            for n in [1, 7, 8, 63, 64, 65, 1001, CHUNK + 3] {
                let portable = tally_seeded(Kernel::Portable, seed, n, &NOT_CANCELLED).unwrap();
                for &kernel in &kernels {
                    let counts = tally_seeded(kernel, seed, n, &NOT_CANCELLED).unwrap();
                    assert_eq!(counts, portable, "{kernel:?}, seed {seed}, n {n}");
                }
            }
        }
    }

    #[test]
    fn every_kernel_drops_the_same_biased_words() {
        // Lane 0 with s0 = s3 = 0 first outputs 0: its four words have a low product of 0, below
        // the threshold, so the first step rejects them (lanes.rs checks the portable kernel
        // does); every kernel must reject the same words.
        let mut crafted = Lanes::from_seed(3);
        crafted.s[0][0] = 0;
        crafted.s[3][0] = 0;
        let drawn = |kernel: Kernel| {
            let mut counts = [0; SPAN as usize];
            let mut tables = Tables::new();
            kernel.draw(&mut crafted.clone(), &mut tables, 1000);
            tables.drain_into(&mut counts);
            counts
        };
        let portable = drawn(Kernel::Portable);
        for kernel in Kernel::available() {
            assert_eq!(drawn(kernel), portable, "{kernel:?}");
        }
    }

    #[test]
    fn counts_sum_to_n_and_cover_the_range_evenly() {
        let n = 2_000_001;
        // A fixed seed, so the bounds below are a fixed outcome, not a chance of failing.
        let counts = tally_seeded(Kernel::fastest(), 2026, n, &NOT_CANCELLED).unwrap();
        assert_eq!(counts.iter().sum::<u64>(), n);
        // Each value expects 2000 hits (sd ~ 45): all within 6 sd, so a biased mapping would show.
        assert!(counts.iter().all(|&c| (1730..=2270).contains(&c)), "{counts:?}");
        // Chi-square with 999 degrees of freedom: mean 999, sd ~ 45.
        let expected = n as f64 / SPAN as f64;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 999.0 + 4.0 * 44.7, "chi2 {chi2}");
    }

    #[test]
    fn entropy_seeded_tallies_differ() {
        let a = tally(10_000, &NOT_CANCELLED).unwrap();
        let b = tally(10_000, &NOT_CANCELLED).unwrap();
        assert_eq!(a.iter().sum::<u64>(), 10_000);
        assert_ne!(a, b);
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
