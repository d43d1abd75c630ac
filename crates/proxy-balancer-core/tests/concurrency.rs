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
    let threads = 3;
    let per_thread = 20_000u64;
    thread::scope(|scope| {
        let pickers: Vec<_> = (0..threads)
            .map(|_| {
                let s = &s;
                scope.spawn(move || {
                    let mut held = Vec::new();
                    for n in 0..per_thread {
                        let p = s.pick(&PickRequest::new(), now).unwrap();
                        p.member().state().add_transferred(1);
                        // Keep a few requests in flight across snapshot swaps.
                        if n % 7 == 0 {
                            held.push(p);
                            if held.len() > 16 {
                                drop(held.remove(0));
                            }
                        }
                    }
                })
            })
            .collect();
        let writer = scope.spawn(|| {
            let ids: Vec<_> = s.snapshot().members().iter().map(|m| m.id()).collect();
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) && rounds < 100_000 {
                rounds += 1;
                let id = ids[rounds as usize % ids.len()];
                let lf = 1 + rounds % 5;
                s.update_member(id, |m| {
                    m.load_factor = LoadFactor::from_lbf(lf * 100).unwrap();
                })
                .unwrap();
                // Disabled extra members come and go; they are never picked.
                let extra = s
                    .add_member(
                        MemberParams::new(&format!("http://extra{rounds}"))
                            .unwrap()
                            .with_status(StatusFlags::DISABLED),
                    )
                    .unwrap();
                s.remove_member(extra).unwrap();
            }
            rounds
        });
        for p in pickers {
            p.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let rounds = writer.join().unwrap();
        assert!(rounds > 0);
    });
    let snap = s.snapshot();
    let elected: u64 = snap.members().iter().map(|m| m.state().elected()).sum();
    let transferred: u64 = snap.members().iter().map(|m| m.state().transferred()).sum();
    assert_eq!(elected, threads * per_thread);
    assert_eq!(transferred, threads * per_thread);
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
