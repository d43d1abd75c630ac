//! The cost of one balanced pick: `BalancerStore::pick` for each lbmethod at 3, 16, 128 and
//! 1024 members, on 1 thread and on 2 threads sharing one store.
//!
//! Measured in the same run, so that figures can be read as ratios:
//! - `baseline/naive_scan_busy/128`: the least of 128 `AtomicU64` busy counters in a `Vec`,
//!   what a naive bybusyness costs before any bookkeeping;
//! - `baseline/naive_scan_busy_mixed/128`: the same scan over the busy counts of
//!   `pick/bybusyness/1thread_mixed/128` (see [`mixed_busy`]);
//! - `baseline/atomic_fetch_add` and `baseline/arcswap_load`: machine speed, the two
//!   operations every pick is built from;
//! - with `--features peers`: tower's `p2c::Balance` per request and pingora's
//!   `LoadBalancer<RoundRobin>::select` (and its bare `Weighted<RoundRobin>` selector);
//!   pingora-ketama's bare `Continuum::node` against our `lbmethod=hash` pick over the same
//!   members and keys (`hash_pick`, `peers::pingora_ketama`).
//!
//! A pick includes dropping the `Picked` (the busy count's release). Members have load
//! factors 1, 2, 3, 1, 2, 3, …; no traffic is recorded, so bytraffic's scores stay tied and
//! it always chooses the first member (its cost is the scan, which is the same either way).
//! The 2-thread figures are wall time per pick across both threads: perfect scaling would
//! halve the 1-thread figure.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use benches::run_on_threads;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use proxy_balancer_core::{
    BalancerParams, BalancerStore, LbMethodKind, LoadFactor, MemberParams, PickRequest,
};

/// Member counts: a small pool, a typical one, a large one and a very large one (where an
/// O(N) pick shows).
const SIZES: [usize; 4] = [3, 16, 128, 1024];
/// The size the naive-scan baseline is measured at (the bybusyness comparison).
const SCAN_SIZE: usize = 128;
/// Kept short: the machine is small and shared, and only ratios within one run matter.
const WARM_UP: Duration = Duration::from_secs(1);
/// See [`WARM_UP`].
const MEASUREMENT: Duration = Duration::from_secs(2);

fn configure<M: criterion::measurement::Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group.warm_up_time(WARM_UP).measurement_time(MEASUREMENT);
}

/// `http://127.0.x.y:80` (loopback), distinct for up to 65536 members. Nothing is sent.
fn member_url(i: usize) -> String {
    format!("http://127.0.{}.{}:80", i / 256, i % 256)
}

/// The busy counts of the mixed bybusyness case: what a balancer under steady load looks
/// like, 1 to 3 requests in flight on every member (bybusyness keeps them within a couple of
/// each other), a quarter of the members at the least (1), so a pick's tie is among 32 of 128.
fn mixed_busy(i: usize) -> u64 {
    [1, 2, 2, 3, 2, 1, 3, 2][i % 8]
}

/// The clock is read once, at setup; every pick gets the same `now`.
#[expect(
    clippy::disallowed_methods,
    reason = "benchmarks read the clock once at setup and pass `now` in, as the core expects"
)]
fn setup_now() -> Instant {
    Instant::now()
}

fn build_store(lb_method: LbMethodKind, n: usize, now: Instant) -> BalancerStore {
    let mut params = BalancerParams::new("bench");
    params.lb_method = lb_method;
    let members = (0..n).map(|i| {
        let lf = LoadFactor::new(1.0 + (i % 3) as f64).expect("invariant: 1, 2 and 3 are valid");
        MemberParams::new(&member_url(i))
            .expect("invariant: the bench URLs are valid")
            .with_load_factor(lf)
    });
    let store = BalancerStore::new(params, members, now).expect("invariant: URLs are distinct");
    assert!(
        store.pick(&PickRequest::new(), now).is_ok(),
        "every bench member is usable"
    );
    store
}

fn pick(c: &mut Criterion) {
    let now = setup_now();
    for lb_method in [
        LbMethodKind::ByRequests,
        LbMethodKind::ByTraffic,
        LbMethodKind::ByBusyness,
    ] {
        let mut group = c.benchmark_group(format!("pick/{}", lb_method.name()));
        configure(&mut group);
        for n in SIZES {
            let store = build_store(lb_method.clone(), n, now);
            let one_pick = || drop(black_box(store.pick(&PickRequest::new(), now)));
            group.bench_function(BenchmarkId::new("1thread", n), |b| b.iter(one_pick));
            group.bench_function(BenchmarkId::new("2threads", n), |b| {
                b.iter_custom(|iters| run_on_threads(2, iters, one_pick));
            });
        }
        if matches!(lb_method, LbMethodKind::ByBusyness) {
            // Some members busy: requests held in flight with the spread of `mixed_busy`.
            let store = build_store(lb_method.clone(), SCAN_SIZE, now);
            let snapshot = store.snapshot();
            let _held: Vec<_> = snapshot
                .members()
                .iter()
                .enumerate()
                .flat_map(|(i, m)| (0..mixed_busy(i)).map(|_| m.begin_request()))
                .collect();
            let one_pick = || drop(black_box(store.pick(&PickRequest::new(), now)));
            group.bench_function(BenchmarkId::new("1thread_mixed", SCAN_SIZE), |b| {
                b.iter(one_pick);
            });
        }
        group.finish();
    }
}

// ----- p2c (issue #18): our p2c picks, against tower's p2c -----

/// `pick/p2c` and `pick/p2c-ewma` at every size, 1 and 2 threads: two random candidates,
/// compared by requests in flight or by peak-EWMA cost; and, in group `p2c_vs_tower`,
/// ours against tower's `p2c::Balance` (`poll_ready` + `call`, the call's future polled
/// once) over the same number of always-ready members, with `PendingRequests` (tower's
/// in-flight count, as our `p2c`) and with `PeakEwma` (as our `p2c-ewma`). For p2c-ewma
/// every member has a round-trip sample (member i: i + 1 µs), so each comparison reads
/// two estimates. tower's balancer is a dev-dependency here (no pingora), so this runs
/// without `--features peers`.
fn pick_p2c(c: &mut Criterion) {
    let now = setup_now();
    let with_samples = |lb_method: LbMethodKind, n: usize| {
        let store = build_store(lb_method, n, now);
        for (i, m) in store.snapshot().members().iter().enumerate() {
            m.state()
                .observe_rtt(Duration::from_micros(i as u64 + 1), now);
        }
        store
    };
    for lb_method in [LbMethodKind::P2c, LbMethodKind::P2cEwma] {
        let mut group = c.benchmark_group(format!("pick/{}", lb_method.name()));
        configure(&mut group);
        for n in SIZES {
            let store = with_samples(lb_method.clone(), n);
            let one_pick = || drop(black_box(store.pick(&PickRequest::new(), now)));
            group.bench_function(BenchmarkId::new("1thread", n), |b| b.iter(one_pick));
            group.bench_function(BenchmarkId::new("2threads", n), |b| {
                b.iter_custom(|iters| run_on_threads(2, iters, one_pick));
            });
        }
        group.finish();
    }

    // What the balancer adds to every request for the estimate: the response's clock read
    // and the update (`rtt/observe_rtt`, one member, so the worst case for its line).
    let mut group = c.benchmark_group("rtt");
    configure(&mut group);
    let store = with_samples(LbMethodKind::ByRequests, 1);
    let snapshot = store.snapshot();
    let state = snapshot.members()[0].state();
    let mut t = now;
    group.bench_function("observe_rtt", |b| {
        b.iter(|| {
            t += Duration::from_nanos(100);
            state.observe_rtt(black_box(Duration::from_micros(700)), t);
        });
    });
    group.bench_function("rtt_estimate", |b| {
        b.iter(|| black_box(state.rtt_estimate(black_box(t))));
    });
    group.bench_function("clock_read", |b| {
        b.iter(|| black_box(tokio::time::Instant::now()));
    });
    group.finish();

    let mut group = c.benchmark_group("p2c_vs_tower");
    configure(&mut group);
    for n in SIZES {
        for lb_method in [LbMethodKind::P2c, LbMethodKind::P2cEwma] {
            let store = with_samples(lb_method.clone(), n);
            let id = format!("ours_{}", lb_method.name());
            group.bench_function(BenchmarkId::new(id, n), |b| {
                b.iter(|| drop(black_box(store.pick(&PickRequest::new(), now))));
            });
        }
        let waker = tower_p2c::waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut pending = tower_p2c::pending(n);
        group.bench_function(BenchmarkId::new("tower_p2c_pending", n), |b| {
            b.iter(|| tower_p2c::one(&mut pending, &mut cx));
        });
        let mut peak = tower_p2c::peak_ewma(n);
        group.bench_function(BenchmarkId::new("tower_p2c_peak_ewma", n), |b| {
            b.iter(|| tower_p2c::one(&mut peak, &mut cx));
        });
    }
    group.finish();
}

mod tower_p2c {
    //! tower's p2c `Balance` over always-ready members, driven without a runtime.

    use std::convert::Infallible;
    use std::future::{ready, Future, Ready};
    use std::hint::black_box;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use tower::balance::p2c::Balance;
    use tower::discover::ServiceList;
    use tower::load::{CompleteOnResponse, Load, PeakEwma, PendingRequests};
    use tower::util::ServiceFn;
    use tower::{service_fn, Service};

    type Reply = fn(()) -> Ready<Result<(), Infallible>>;

    fn reply((): ()) -> Ready<Result<(), Infallible>> {
        ready(Ok(()))
    }

    pub(super) fn pending(
        n: usize,
    ) -> Balance<ServiceList<Vec<PendingRequests<ServiceFn<Reply>>>>, ()> {
        let members = (0..n)
            .map(|_| {
                PendingRequests::new(service_fn(reply as Reply), CompleteOnResponse::default())
            })
            .collect();
        discovered(Balance::new(ServiceList::new::<()>(members)), n)
    }

    pub(super) fn peak_ewma(n: usize) -> Balance<ServiceList<Vec<PeakEwma<ServiceFn<Reply>>>>, ()> {
        let decay = proxy_balancer_core::DEFAULT_EWMA_DECAY.as_nanos() as f64;
        let members = (0..n)
            .map(|i| {
                let rtt = Duration::from_micros(i as u64 + 1);
                PeakEwma::new(
                    service_fn(reply as Reply),
                    rtt,
                    decay,
                    CompleteOnResponse::default(),
                )
            })
            .collect();
        discovered(Balance::new(ServiceList::new::<()>(members)), n)
    }

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    pub(super) fn waker() -> Waker {
        Waker::from(Arc::new(Noop))
    }

    /// The first `poll_ready` discovers every member.
    fn discovered<B: Service<()>>(mut balance: B, n: usize) -> B {
        let waker = waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            matches!(balance.poll_ready(&mut cx), Poll::Ready(Ok(()))),
            "{n} members, always ready"
        );
        balance
    }

    /// One request: `poll_ready`, `call`, and the call's future polled once (it is ready).
    pub(super) fn one<S>(balance: &mut Balance<ServiceList<Vec<S>>, ()>, cx: &mut Context<'_>)
    where
        S: Service<(), Response = (), Error = Infallible> + Load,
        S::Metric: std::fmt::Debug,
    {
        let ready = balance.poll_ready(cx);
        assert!(
            matches!(ready, Poll::Ready(Ok(()))),
            "members are always ready"
        );
        let future = pin!(balance.call(()));
        black_box(future.poll(cx).is_ready());
    }
}

// ----- end of p2c -----

// ===== lbmethod=hash (helper hash) =====

/// Member counts of the hash picks (and of pingora-ketama's selector): equal weights.
const HASH_SIZES: [usize; 3] = [3, 16, 128];
/// Distinct keys cycled through by the hash picks, so that neither the table reads nor the
/// branches of a lookup are always the same: 1024 `user-N` keys.
const HASH_KEYS: usize = 1024;

fn hash_keys() -> Vec<Vec<u8>> {
    (0..HASH_KEYS)
        .map(|i| format!("user-{i}").into_bytes())
        .collect()
}

fn hash_store(ring: &str, n: usize, now: Instant) -> BalancerStore {
    let mut params = BalancerParams::new("bench");
    params
        .set("lbmethod", "hash")
        .expect("invariant: hash is an lbmethod");
    params
        .set("hashring", ring)
        .expect("invariant: maglev and ketama are rings");
    let members =
        (0..n).map(|i| MemberParams::new(&member_url(i)).expect("invariant: valid bench URLs"));
    BalancerStore::new(params, members, now).expect("invariant: URLs are distinct")
}

/// `lbmethod=hash` picks with a key: through the store (an `ArcSwap` load, as
/// `BalancerStore::pick`) and through a held snapshot (as the balancer service picks), both
/// including the `Picked`'s drop.
fn hash_pick(c: &mut Criterion) {
    let now = setup_now();
    let keys = hash_keys();
    for ring in ["maglev", "ketama"] {
        let mut group = c.benchmark_group(format!("pick/hash_{ring}"));
        configure(&mut group);
        for n in HASH_SIZES {
            let store = hash_store(ring, n, now);
            let snapshot = store.snapshot();
            let mut i = 0;
            group.bench_function(BenchmarkId::new("snapshot", n), |b| {
                b.iter(|| {
                    i = (i + 1) % HASH_KEYS;
                    let request = PickRequest::new().with_key(&keys[i]);
                    drop(black_box(snapshot.pick(black_box(&request), now)));
                });
            });
            group.bench_function(BenchmarkId::new("store", n), |b| {
                b.iter(|| {
                    i = (i + 1) % HASH_KEYS;
                    let request = PickRequest::new().with_key(&keys[i]);
                    drop(black_box(store.pick(black_box(&request), now)));
                });
            });
        }
        group.finish();
    }
}

/// Index of the least of `counters`, the first on a tie.
fn least_busy(counters: &[AtomicU64]) -> usize {
    let mut best = 0;
    let mut least = u64::MAX;
    for (i, counter) in counters.iter().enumerate() {
        let busy = counter.load(Ordering::Relaxed);
        if busy < least {
            least = busy;
            best = i;
        }
    }
    best
}

fn baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("baseline");
    configure(&mut group);

    let counters: Vec<AtomicU64> = (0..SCAN_SIZE as u64)
        .map(|i| AtomicU64::new(i % 3))
        .collect();
    group.bench_function(BenchmarkId::new("naive_scan_busy", SCAN_SIZE), |b| {
        b.iter(|| least_busy(black_box(&counters)));
    });
    let mixed: Vec<AtomicU64> = (0..SCAN_SIZE)
        .map(|i| AtomicU64::new(mixed_busy(i)))
        .collect();
    group.bench_function(BenchmarkId::new("naive_scan_busy_mixed", SCAN_SIZE), |b| {
        b.iter(|| least_busy(black_box(&mixed)));
    });

    let counter = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed));
    });

    let cell = ArcSwap::from_pointee(7_u64);
    group.bench_function("arcswap_load", |b| b.iter(|| **black_box(&cell).load()));

    group.finish();
}

#[cfg(feature = "peers")]
mod peers {
    //! tower's p2c balancer and pingora's round robin over the same member counts.

    use std::collections::BTreeSet;
    use std::convert::Infallible;
    use std::future::{ready, Ready};
    use std::hint::black_box;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use criterion::{BenchmarkId, Criterion};
    use futures::task::noop_waker_ref;
    use futures::FutureExt;
    use pingora_ketama::{Bucket, Continuum};
    use pingora_load_balancing::selection::{BackendIter, BackendSelection, RoundRobin};
    use pingora_load_balancing::{Backend, LoadBalancer};
    use tower::balance::p2c::Balance;
    use tower::discover::ServiceList;
    use tower::load::{CompleteOnResponse, PendingRequests};
    use tower::util::ServiceFn;
    use tower::{service_fn, Service};

    use super::{configure, SIZES};

    type Reply = fn(()) -> Ready<Result<(), Infallible>>;
    type TowerMember = PendingRequests<ServiceFn<Reply>>;

    fn reply((): ()) -> Ready<Result<(), Infallible>> {
        ready(Ok(()))
    }

    fn tower_balance(n: usize) -> Balance<ServiceList<Vec<TowerMember>>, ()> {
        let members: Vec<TowerMember> = (0..n)
            .map(|_| {
                PendingRequests::new(service_fn(reply as Reply), CompleteOnResponse::default())
            })
            .collect();
        Balance::new(ServiceList::new::<()>(members))
    }

    /// `10.0.x.y:80`: parsed as socket addresses, so no name is ever resolved.
    fn addr(i: usize) -> String {
        format!("10.0.{}.{}:80", i / 256, i % 256)
    }

    pub(super) fn tower_p2c(c: &mut Criterion) {
        let mut group = c.benchmark_group("peer/tower_p2c");
        configure(&mut group);
        let mut cx = Context::from_waker(noop_waker_ref());
        for n in SIZES {
            let mut balance = tower_balance(n);
            // The first poll discovers every member.
            assert!(matches!(balance.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            assert_eq!(balance.len(), n, "every member is discovered and ready");
            group.bench_function(BenchmarkId::new("poll_ready_call", n), |b| {
                b.iter(|| {
                    let ready = balance.poll_ready(&mut cx);
                    assert!(
                        matches!(ready, Poll::Ready(Ok(()))),
                        "members are always ready"
                    );
                    black_box(balance.call(()).now_or_never())
                });
            });
        }
        group.finish();
    }

    /// pingora-ketama's bare selector over the members of `hash_pick` (the same
    /// `127.0.x.y:80` addresses, equal weights) and the same keys.
    pub(super) fn pingora_ketama(c: &mut Criterion) {
        let mut group = c.benchmark_group("peer/pingora_ketama");
        configure(&mut group);
        let keys = super::hash_keys();
        for n in super::HASH_SIZES {
            let buckets: Vec<Bucket> = (0..n)
                .map(|i| {
                    let addr = super::member_url(i)
                        .trim_start_matches("http://")
                        .parse()
                        .expect("invariant: the bench URLs are socket addresses");
                    Bucket::new(addr, 1)
                })
                .collect();
            let continuum = Continuum::new(&buckets);
            let mut i = 0;
            group.bench_function(BenchmarkId::new("node", n), |b| {
                b.iter(|| {
                    i = (i + 1) % super::HASH_KEYS;
                    black_box(continuum.node(black_box(&keys[i])))
                });
            });
            group.bench_function(BenchmarkId::new("node_idx", n), |b| {
                b.iter(|| {
                    i = (i + 1) % super::HASH_KEYS;
                    black_box(continuum.node_idx(black_box(&keys[i])))
                });
            });
        }
        group.finish();
    }

    pub(super) fn pingora_round_robin(c: &mut Criterion) {
        let mut group = c.benchmark_group("peer/pingora_rr");
        configure(&mut group);
        for n in SIZES {
            let addrs: Vec<String> = (0..n).map(addr).collect();

            let lb = LoadBalancer::<RoundRobin>::try_from_iter(addrs.iter().map(String::as_str))
                .expect("invariant: socket addresses need no lookup");
            assert!(lb.select(b"", 256).is_some());
            group.bench_function(BenchmarkId::new("lb_select", n), |b| {
                b.iter(|| black_box(lb.select(b"", 256)));
            });

            let backends: BTreeSet<Backend> = addrs
                .iter()
                .map(|a| Backend::new(a).expect("invariant: valid socket address"))
                .collect();
            let selector = Arc::new(RoundRobin::build(&backends));
            group.bench_function(BenchmarkId::new("weighted_iter_next", n), |b| {
                b.iter(|| black_box(selector.iter(b"").next().is_some()));
            });
        }
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    baseline(&mut c);
    pick(&mut c);
    pick_p2c(&mut c);
    hash_pick(&mut c);
    #[cfg(feature = "peers")]
    {
        peers::pingora_ketama(&mut c);
        peers::pingora_round_robin(&mut c);
        peers::tower_p2c(&mut c);
    }
    c.final_summary();
}
