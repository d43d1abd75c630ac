//! Property tests of outlier ejection (beyond Apache, Envoy's model): under any sequence of
//! outcomes, picks (which lift ejections whose time has passed) and manager edits from
//! many threads, the store never has more members ejected than `ejectmax` allows, and its
//! count is exactly the members flagged `J` once the threads are done.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proxy_balancer_core::{
    BalancerParams, BalancerStore, MemberParams, OutlierParams, PickRequest, StatusFlags,
};

#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// An outcome of member `m` (failed or not), `ms` milliseconds after the start.
    Outcome { m: usize, failed: bool, ms: u64 },
    /// A balanced pick at `ms`: lifts ejections whose time has passed.
    Pick { ms: u64 },
    /// The manager clears `J` on member `m` (`w_status_J=0`).
    Clear { m: usize },
}

fn op(members: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..members, prop::bool::weighted(0.7), 0u64..20_000)
            .prop_map(|(m, failed, ms)| Op::Outcome { m, failed, ms }),
        2 => (0u64..20_000).prop_map(|ms| Op::Pick { ms }),
        1 => (0..members).prop_map(|m| Op::Clear { m }),
    ]
}

fn params(consecutive: Option<u32>, rate: Option<u8>, max: u8) -> BalancerParams {
    let mut p = BalancerParams::new("eject");
    let mut o = OutlierParams::OFF;
    o.consecutive_5xx = consecutive;
    o.success_rate = rate;
    o.window = Duration::from_millis(500);
    o.min_requests = 3;
    o.eject_time = Duration::from_millis(700);
    o.max_eject_time = Duration::from_secs(3);
    o.max_ejected_percent = max;
    p.outlier = o;
    p
}

fn flagged(store: &BalancerStore) -> usize {
    store
        .snapshot()
        .members()
        .iter()
        .filter(|m| m.flags().contains(StatusFlags::EJECTED))
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn never_more_ejected_than_the_maximum(
        members in 1usize..12,
        consecutive in prop::option::of(1u32..5),
        rate in prop::option::of(50u8..100),
        max in 0u8..=100,
        threads in prop::collection::vec(prop::collection::vec(op(12), 1..200), 2..5),
    ) {
        prop_assume!(consecutive.is_some() || rate.is_some());
        let t0 = t0();
        let params = params(consecutive, rate, max);
        let outlier = params.outlier;
        let limit = outlier.max_ejected(members);
        let urls = (0..members).map(|i| MemberParams::new(&format!("http://m{i}")).unwrap());
        let store = BalancerStore::new(params, urls, t0).unwrap();
        let snapshot = store.snapshot();
        let done = AtomicBool::new(false);
        let worst = AtomicUsize::new(0);
        std::thread::scope(|s| {
            // A watcher reads the count all along.
            s.spawn(|| {
                let mut spins = 0u32;
                while !done.load(Ordering::Acquire) && spins < 10_000_000 {
                    worst.fetch_max(store.ejected(), Ordering::Relaxed);
                    spins += 1;
                    std::hint::spin_loop();
                }
            });
            let handles: Vec<_> = threads
                .iter()
                .map(|ops| {
                    let (store, snapshot) = (&store, &snapshot);
                    s.spawn(move || {
                        for op in ops {
                            match *op {
                                Op::Outcome { m, failed, ms } => {
                                    let m = &snapshot.members()[m % members];
                                    let _ = m.state().note_outcome(
                                        failed,
                                        &outlier,
                                        t0 + Duration::from_millis(ms),
                                    );
                                }
                                Op::Pick { ms } => {
                                    let _ = store.pick(
                                        &PickRequest::new(),
                                        t0 + Duration::from_millis(ms),
                                    );
                                }
                                Op::Clear { m } => {
                                    snapshot.members()[m % members]
                                        .state()
                                        .remove_flags(StatusFlags::EJECTED);
                                }
                            }
                            assert!(store.ejected() <= limit);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            done.store(true, Ordering::Release);
        });
        prop_assert!(worst.load(Ordering::Relaxed) <= limit);
        prop_assert_eq!(store.ejected(), flagged(&store), "the count is the flags");
        prop_assert!(flagged(&store) <= limit);
        // Every ejection ends: a pick after the longest one lifts them all (the lbset has
        // no other way out), and the count follows.
        let _ = store.pick(&PickRequest::new(), t0 + Duration::from_secs(60));
        prop_assert_eq!(store.ejected(), 0);
        prop_assert_eq!(flagged(&store), 0);
    }
}
