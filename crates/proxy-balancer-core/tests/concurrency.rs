//! Real-thread stress tests of the shared state: concurrent picks keep byrequests' weights,
//! and replacing snapshots under load loses no counter update.
#![expect(clippy::unwrap_used, reason = "test helpers unwrap like tests do")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use proxy_balancer_core::{
    BalancerParams, BalancerStore, LoadFactor, MemberParams, PickRequest, StatusFlags,
};

/// Some instant to start from: the code under test takes `now` as an argument and never
/// reads the clock itself.
#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

fn store(lfs: &[u32], now: Instant) -> Arc<BalancerStore> {
    let members = lfs.iter().enumerate().map(|(i, &lf)| {
        MemberParams::new(&format!("http://m{i}"))
            .unwrap()
            .with_load_factor(LoadFactor::from_lbf(lf * 100).unwrap())
    });
    Arc::new(BalancerStore::new(BalancerParams::new("threads"), members, now).unwrap())
}

#[test]
fn concurrent_byrequests_keeps_cycle_counts() {
    let now = t0();
    for threads in [2usize, 4] {
        let s = store(&[1, 2, 3], now);
        let cycles = 200;
        let per_thread = 6 * cycles / threads;
        let counts: Vec<Vec<u64>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let s = &s;
                    scope.spawn(move || {
                        let mut c = vec![0u64; 3];
                        for _ in 0..per_thread {
                            let p = s.pick(&PickRequest::new(), now).unwrap();
                            let i: usize = p.member().url()[8..].parse().unwrap();
                            c[i] += 1;
                        }
                        c
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total: Vec<u64> = (0..3).map(|i| counts.iter().map(|c| c[i]).sum()).collect();
        let exact = [cycles as u64, 2 * cycles as u64, 3 * cycles as u64];
        for i in 0..3 {
            let diff = total[i].abs_diff(exact[i]);
            assert!(
                diff <= threads as u64,
                "{threads} threads: counts {total:?}, exact {exact:?}"
            );
        }
        for m in s.snapshot().members() {
            assert_eq!(m.state().busy(), 0);
        }
    }
}

#[test]
fn snapshot_replacement_loses_no_update() {
    let now = t0();
    let s = store(&[1, 2, 3], now);
    let stop = AtomicBool::new(false);
    let writer_rounds = 2_000u32;
    let picked: u64 = thread::scope(|scope| {
        let pickers: Vec<_> = (0..3)
            .map(|_| {
                let s = &s;
                let stop = &stop;
                scope.spawn(move || {
                    let mut held = Vec::new();
                    let mut n = 0u64;
                    // Pick while the writer swaps snapshots (bounded: the writer stops).
                    while !stop.load(Ordering::Relaxed) || n < 1_000 {
                        let p = s.pick(&PickRequest::new(), now).unwrap();
                        p.member().state().add_transferred(1);
                        // Keep a few requests in flight across snapshot swaps.
                        if n % 7 == 0 {
                            held.push(p);
                            if held.len() > 16 {
                                drop(held.remove(0));
                            }
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let writer = scope.spawn(|| {
            let ids: Vec<_> = s.snapshot().members().iter().map(|m| m.id()).collect();
            for round in 0..writer_rounds {
                let id = ids[round as usize % ids.len()];
                let lf = 1 + round % 5;
                s.update_member(id, |m| {
                    m.load_factor = LoadFactor::from_lbf(lf * 100).unwrap();
                })
                .unwrap();
                // Disabled extra members come and go; they are never picked.
                let extra = s
                    .add_member(
                        MemberParams::new(&format!("http://extra{round}"))
                            .unwrap()
                            .with_status(StatusFlags::DISABLED),
                    )
                    .unwrap();
                s.remove_member(extra).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        writer.join().unwrap();
        pickers.into_iter().map(|p| p.join().unwrap()).sum()
    });
    let snap = s.snapshot();
    let elected: u64 = snap.members().iter().map(|m| m.state().elected()).sum();
    let transferred: u64 = snap.members().iter().map(|m| m.state().transferred()).sum();
    assert_eq!(elected, picked);
    assert_eq!(transferred, picked);
    assert!(snap.members().iter().all(|m| m.state().busy() == 0));
    assert_eq!(snap.members().len(), 3);
}

#[test]
fn concurrent_flag_changes_are_seen_by_the_next_pick() {
    let now = t0();
    let s = store(&[1, 1], now);
    let b = s.snapshot().members()[1].clone();
    thread::scope(|scope| {
        let flipper = scope.spawn(|| {
            for _ in 0..2_000 {
                b.state().insert_flags(StatusFlags::DISABLED);
                // While B is disabled, every pick must avoid it.
                for _ in 0..5 {
                    let p = s.pick(&PickRequest::new(), now).unwrap();
                    assert_ne!(p.member().id(), b.id());
                }
                b.state().remove_flags(StatusFlags::DISABLED);
            }
        });
        let s2 = &s;
        let picker = scope.spawn(move || {
            for _ in 0..20_000 {
                let p = s2.pick(&PickRequest::new(), now).unwrap();
                assert!(p.member().url().starts_with("http://m"));
            }
        });
        flipper.join().unwrap();
        picker.join().unwrap();
    });
}

#[test]
fn fast_path_and_scans_under_churn_keep_lbstatus_balanced() {
    // Every byrequests decision and every sticky accounting adds as much to some members'
    // lbstatus as it takes from the chosen one, so their sum stays 0 whatever the
    // interleaving, as long as no update is lost (the fast path's picks included).
    let now = t0();
    let members = (0..5).map(|i| {
        MemberParams::new(&format!("http://m{i}"))
            .unwrap()
            .with_load_factor(LoadFactor::from_lbf(100 * (1 + i % 3)).unwrap())
            .with_route(proxy_balancer_core::Route::new(&format!("r{i}")).unwrap())
            .with_retry(std::time::Duration::ZERO)
    });
    let s = BalancerStore::new(BalancerParams::new("churn"), members, now).unwrap();
    let picks_per_thread = 30_000u64;
    let done = AtomicBool::new(false);
    let succeeded: u64 = thread::scope(|scope| {
        let pickers: Vec<_> = (0..2u64)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    let mut ok = 0u64;
                    for n in 0..picks_per_thread {
                        let route = format!("r{}", n % 5);
                        let request = if n % 97 == t {
                            PickRequest::new().with_route(&route)
                        } else {
                            PickRequest::new()
                        };
                        if s.pick(&request, now).is_ok() {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        let flipper = scope.spawn(|| {
            let snap = s.snapshot();
            let mut n = 0usize;
            while !done.load(Ordering::Relaxed) && n < 1_000_000 {
                let m = &snap.members()[n % 5];
                match n % 3 {
                    0 => {
                        m.state().insert_flags(StatusFlags::DISABLED);
                        m.state().remove_flags(StatusFlags::DISABLED);
                    }
                    1 => {
                        m.mark_error(now);
                    }
                    _ => thread::yield_now(),
                }
                n += 1;
            }
        });
        let total = pickers.into_iter().map(|p| p.join().unwrap()).sum();
        done.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        total
    });
    s.settle();
    let snap = s.snapshot();
    let sum: i64 = snap.members().iter().map(|m| m.state().lbstatus()).sum();
    let elected: u64 = snap.members().iter().map(|m| m.state().elected()).sum();
    assert_eq!(sum, 0, "{snap:?}");
    assert_eq!(elected, succeeded);
    assert!(snap.members().iter().all(|m| m.state().busy() == 0));
}
