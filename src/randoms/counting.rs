//! Counting the values while they are drawn: the kernels generate a small block of values, then
//! this adds one to a counter per value, so generation (vector units) and counting (loads and
//! stores) overlap in the CPU instead of taking turns.

use super::lanes::{Lanes, SPAN};

/// Words generated per block, then counted: small enough that a block's generation and its
/// counting fit together in the CPU's reorder window, so the two overlap.
const BLOCK: usize = 64;
/// Counters per table: values are below SPAN <= 1024, so `value & 1023` is never out of bounds and
/// needs no bounds check per value.
const ENTRIES: usize = 1024;
/// Tables the values are spread over, value `i` of a block to table `i % TABLES`. An increment of a
/// counter that one of the last few dozen increments is still writing must wait for that store (1
/// chance in 1000 per pair of values, so often within a few dozen); four tables make that a
/// quarter as likely. More do not fit in L1 beside the rest.
const TABLES: usize = 4;

/// 32-bit counters, so the four tables (16 KiB) stay in L1; `drain_into` adds them into the 64-bit
/// tally often enough (every chunk of at most 2^32 values) that they never wrap.
pub struct Tables(Box<[[u32; ENTRIES]; TABLES]>);

impl Tables {
    pub fn new() -> Tables {
        Tables(Box::new([[0; ENTRIES]; TABLES]))
    }

    /// Adds the counts into the tally and empties the tables.
    pub fn drain_into(&mut self, counts: &mut [u64; SPAN as usize]) {
        for table in self.0.iter_mut() {
            for (count, entry) in counts.iter_mut().zip(table.iter()) {
                *count += u64::from(*entry);
            }
            *table = [0; ENTRIES];
        }
    }

    /// One increment per value, in one pass, TABLES values per turn of the loop.
    #[inline(always)]
    fn count(&mut self, values: &[u16]) {
        let tables = &mut *self.0;
        let mut turns = values.chunks_exact(TABLES);
        for turn in &mut turns {
            for (table, &value) in tables.iter_mut().zip(turn) {
                table[usize::from(value) & (ENTRIES - 1)] += 1;
            }
        }
        for (table, &value) in tables.iter_mut().zip(turns.remainder()) {
            table[usize::from(value) & (ENTRIES - 1)] += 1;
        }
    }
}

/// Draws `n` values with `fill` (a kernel: BLOCK words per call, the values of the words it keeps
/// written to the front, their number returned) and counts them. Inlined into each kernel's entry
/// point, so that generation and counting are one loop compiled for that kernel's instructions.
#[inline(always)]
pub fn draw(
    lanes: &mut Lanes,
    tables: &mut Tables,
    mut n: u64,
    mut fill: impl FnMut(&mut Lanes, &mut [u16]) -> usize,
) {
    let mut values = [0u16; BLOCK];
    while n > 0 {
        let kept = fill(lanes, &mut values);
        // Only the first `n` values of the last block count; the words after them are drawn but
        // not used (which drops words regardless of their value: no bias).
        let used = (kept as u64).min(n) as usize;
        tables.count(&values[..used]);
        n -= used as u64;
    }
}
