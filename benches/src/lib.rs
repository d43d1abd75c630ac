//! Helpers shared by the criterion benchmarks in `benches/`.
//!
//! Run them with `cargo bench -p benches`; add `--features peers` for the comparisons with
//! tower's p2c balancer and pingora's round robin. See `README.md` beside this crate.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `op` `iters` times in total, split evenly over `threads` OS threads, and returns
/// the wall time from the moment every thread is ready to the moment the last one is done.
///
/// Criterion divides the result by `iters`, so the figure it reports is wall time per
/// operation across all threads: with perfect scaling it would be the single-thread figure
/// divided by `threads`. Thread start-up is outside the timed span (a barrier releases the
/// threads and the clock together).
///
/// # Panics
///
/// If a thread running `op` panics.
#[expect(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall time; no runtime thread is involved"
)]
pub fn run_on_threads<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn() + Sync,
{
    let threads = threads.max(1);
    let per_thread = iters.div_ceil(threads as u64);
    let start_line = Barrier::new(threads + 1);
    thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start_line.wait();
                    for _ in 0..per_thread {
                        op();
                    }
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        for worker in workers {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        start.elapsed()
    })
}
