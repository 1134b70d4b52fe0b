//! `cargo bench --bench randoms`: the /api/randoms computation on one core, without HTTP, with each
//! kernel this CPU runs. Target: 100 000 000 draws in 0.05 s or less (0.5 ns per draw).
//!
//! The machine may be shared: besides wall time it prints the thread's CPU time (which leaves out
//! the time other processes held the core), and the best run is the one to compare with the target:
//! 25 runs (about 0.05 s each), so that on a busy machine a few of them find the core free.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use app::domain::randoms::{tally_seeded, Kernel};

const DRAWS: u64 = 100_000_000;
const RUNS: usize = 25;

fn main() {
    let cancelled = AtomicBool::new(false);
    for kernel in Kernel::available() {
        let mut wall = Vec::with_capacity(RUNS);
        let mut cpu = Vec::with_capacity(RUNS);
        for run in 0..RUNS {
            let (start, start_cpu) = (Instant::now(), thread_cpu_time());
            let counts = tally_seeded(kernel, run as u64, DRAWS, &cancelled).expect("not cancelled");
            wall.push(start.elapsed());
            cpu.push(thread_cpu_time() - start_cpu);
            assert_eq!(counts.iter().sum::<u64>(), DRAWS);
        }
        wall.sort();
        cpu.sort();
        println!(
            "randoms tally of {DRAWS} draws, {kernel:?} kernel{}, {RUNS} runs on one thread: \
             min {:.3} s, median {:.3} s ({:.2} ns/draw at the min); CPU time min {:.3} s",
            if kernel == Kernel::fastest() { " (the one the server uses)" } else { "" },
            wall[0].as_secs_f64(),
            wall[RUNS / 2].as_secs_f64(),
            wall[0].as_nanos() as f64 / DRAWS as f64,
            cpu[0].as_secs_f64(),
        );
    }
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
