//! Counting the values while they are drawn: the kernels generate a small block of values, then
//! this adds one to a counter per value, so generation (vector units) and counting (loads and
//! stores) overlap in the CPU instead of taking turns.

use super::lanes::{Lanes, REJECTED, SPAN};

/// Words generated per block, then counted: small enough that a block's generation and its
/// counting fit together in the CPU's reorder window, so the two overlap.
const BLOCK: usize = 64;
/// Counters per table: values are below SPAN <= 1024, so `value & 1023` is never out of bounds and
/// needs no bounds check per value. `REJECTED & 1023` is 1023, a spare counter that is never read:
/// counting a rejected word there costs less than a branch to skip it.
const ENTRIES: usize = 1024;
const _: () = assert!(SPAN as usize <= ENTRIES && (REJECTED as usize & (ENTRIES - 1)) >= SPAN as usize);
/// Tables the values are spread over, value `i` of a block to table `i % TABLES`. An increment of a
/// counter that one of the last few dozen increments is still writing must wait for that store (1
/// chance in 1000 per pair of values, so often within a few dozen); four tables make that a
/// quarter as likely. More do not fit in L1 beside the rest.
const TABLES: usize = 4;

/// 32-bit counters, so the four tables (16 KiB) stay in L1; `drain_into` adds them into the 64-bit
/// tally often enough (every chunk of at most 2^32 values) that they never wrap.
pub(crate) struct Tables(Box<[[u32; ENTRIES]; TABLES]>);

impl Tables {
    pub(crate) fn new() -> Tables {
        Tables(Box::new([[0; ENTRIES]; TABLES]))
    }

    /// Adds the counts into the tally and empties the tables (the spare counters are left out).
    pub(crate) fn drain_into(&mut self, counts: &mut [u64; SPAN as usize]) {
        for table in self.0.iter_mut() {
            for (count, entry) in counts.iter_mut().zip(table.iter()) {
                *count += u64::from(*entry);
            }
            *table = [0; ENTRIES];
        }
    }

    /// One increment per word of a whole block, rejected ones included (into the spare counter),
    /// TABLES words per turn of the loop: no branch on the words.
    #[inline(always)]
    fn count_block(&mut self, words: &[u16; BLOCK]) {
        let tables = &mut *self.0;
        for turn in words.as_chunks::<TABLES>().0 {
            for (table, &word) in tables.iter_mut().zip(turn) {
                table[usize::from(word) & (ENTRIES - 1)] += 1;
            }
        }
    }

    /// The first `n` values of a block that has more, rejected words skipped: the last block only.
    fn count_first(&mut self, words: &[u16; BLOCK], n: usize) {
        for &value in words.iter().filter(|&&word| word != REJECTED).take(n) {
            self.0[0][usize::from(value) & (ENTRIES - 1)] += 1;
        }
    }
}

/// Draws `n` values with `fill` (a kernel: BLOCK words per call, each word's value or REJECTED
/// written in order, the number rejected returned) and counts them. Inlined into each kernel's
/// entry point, so that generation and counting are one loop compiled for that kernel's
/// instructions.
#[inline(always)]
pub(crate) fn draw(
    lanes: &mut Lanes,
    tables: &mut Tables,
    mut n: u64,
    mut fill: impl FnMut(&mut Lanes, &mut [u16]) -> usize,
) {
    let mut words = [0u16; BLOCK];
    // While a whole block cannot hold more values than are still wanted, count it all.
    while n >= BLOCK as u64 {
        let rejected = fill(lanes, &mut words);
        tables.count_block(&words);
        n -= (BLOCK - rejected) as u64;
    }
    // The last values: only the first `n` accepted ones of the next blocks count; the words after
    // them are drawn but not used (which drops words regardless of their value: no bias).
    while n > 0 {
        let kept = BLOCK - fill(lanes, &mut words);
        let used = (kept as u64).min(n) as usize;
        tables.count_first(&words, used);
        n -= used as u64;
    }
}
