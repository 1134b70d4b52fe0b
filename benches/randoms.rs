//! `cargo bench --bench randoms`: the /api/randoms computation on one core, without HTTP.
//! Target: 100 000 000 draws in 0.15 s or less.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const DRAWS: u64 = 100_000_000;
const RUNS: usize = 7;

fn main() {
    let cancelled = AtomicBool::new(false);
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let counts = app::randoms::tally(DRAWS, &cancelled).expect("not cancelled");
            let elapsed = start.elapsed();
            assert_eq!(counts.iter().sum::<u64>(), DRAWS);
            elapsed
        })
        .collect();
    times.sort();
    println!(
        "randoms tally of {DRAWS} draws, {RUNS} runs on one thread: min {:.3} s, median {:.3} s, max {:.3} s ({:.2} ns/draw at the median)",
        times[0].as_secs_f64(),
        times[RUNS / 2].as_secs_f64(),
        times[RUNS - 1].as_secs_f64(),
        times[RUNS / 2].as_nanos() as f64 / DRAWS as f64
    );
}
