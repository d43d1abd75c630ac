//! Reading the shared snapshot: `arc_swap::ArcSwap` (what `BalancerStore` uses) against the
//! obvious alternative, a `parking_lot::RwLock<Arc<T>>`, with 1 and 2 threads.
//!
//! Two shapes of read each: a borrowed read (`ArcSwap::load` against a read guard) and an
//! owned read (`ArcSwap::load_full` against cloning the `Arc` under the read lock). With 2
//! threads every read contends on the same lock word or reference count. The figures are
//! wall time per read across all threads (see `benches::run_on_threads`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use benches::run_on_threads;
use criterion::{BenchmarkGroup, Criterion};
use parking_lot::RwLock;

/// Kept short: the machine is small and shared, and only ratios within one run matter.
const WARM_UP: Duration = Duration::from_secs(1);
/// See [`WARM_UP`].
const MEASUREMENT: Duration = Duration::from_secs(2);

/// Something the size of a small snapshot header, so a read touches real data.
#[derive(Debug)]
struct Payload {
    generation: u64,
    members: [u64; 7],
}

fn payload() -> Payload {
    Payload {
        generation: 1,
        members: [1, 2, 3, 4, 5, 6, 7],
    }
}

/// Runs `read` on 1 thread (plain `iter`) and on 2 threads (`iter_custom`).
fn bench_read<M, F>(group: &mut BenchmarkGroup<'_, M>, name: &str, read: F)
where
    M: criterion::measurement::Measurement<Value = Duration>,
    F: Fn() -> u64 + Sync,
{
    group.bench_function(format!("{name}/1thread"), |b| b.iter(&read));
    group.bench_function(format!("{name}/2threads"), |b| {
        b.iter_custom(|iters| {
            run_on_threads(2, iters, || {
                black_box(read());
            })
        });
    });
}

fn snapshot(c: &mut Criterion) {
    let swap = ArcSwap::from_pointee(payload());
    let lock = RwLock::new(Arc::new(payload()));

    let mut group = c.benchmark_group("snapshot");
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT);

    bench_read(&mut group, "arcswap_load", || {
        let guard = black_box(&swap).load();
        guard.generation + guard.members[3]
    });
    bench_read(&mut group, "rwlock_read", || {
        let guard = black_box(&lock).read();
        guard.generation + guard.members[3]
    });
    bench_read(&mut group, "arcswap_load_full", || {
        let full = black_box(&swap).load_full();
        full.generation + full.members[3]
    });
    bench_read(&mut group, "rwlock_read_clone", || {
        let full = Arc::clone(&black_box(&lock).read());
        full.generation + full.members[3]
    });

    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    snapshot(&mut c);
    c.final_summary();
}
