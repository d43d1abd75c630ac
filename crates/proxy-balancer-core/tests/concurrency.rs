//! Real-thread stress tests of the shared state: concurrent picks keep byrequests' weights,
//! replacing snapshots under load loses no counter update, and flag churn from a manager
//! and a probe, errors and reconfigurations all at once keep every invariant; batched
//! member-set edits (discovery) publish whole snapshots and lose no count.
#![expect(clippy::unwrap_used, reason = "test helpers unwrap like tests do")]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use proxy_balancer_core::{
    BalancerParams, BalancerStore, LoadFactor, Member, MemberParams, PickRequest, Route,
    StatusFlags,
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

/// A flag that one thread sets and clears on one member, with a counter that is odd while
/// the flag is set: a thread that reads an odd count and then the same count again after a
/// pick knows the flag was set for the whole pick. No other thread changes this flag, so
/// each change finds it as the owner left it: a flag dropped or brought back by someone
/// else's write to the same word (a lost update) is caught at the owner's next change.
struct Toggle {
    member: Member,
    flag: StatusFlags,
    count: AtomicU64,
}

impl Toggle {
    fn new(member: Member, flag: StatusFlags) -> Self {
        Self {
            member,
            flag,
            count: AtomicU64::new(0),
        }
    }

    /// Sets the flag, then makes the count odd.
    fn set(&self) {
        let before = self.member.state().insert_flags(self.flag);
        assert!(!before.contains(self.flag), "{:?} came back", self.flag);
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Makes the count even, then clears the flag.
    fn clear(&self) {
        self.count.fetch_add(1, Ordering::Release);
        let before = self.member.state().remove_flags(self.flag);
        assert!(before.contains(self.flag), "{:?} was lost", self.flag);
    }

    /// The count now: odd means the flag is set and stays set until the count changes.
    fn observe(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }
}

/// Busy-waits for `spins` spin-loop hints between two flag changes: a thread that yields
/// instead may be off the CPU for milliseconds when every core is busy, and then hardly
/// ever writes the flags word at the same time as another thread.
fn hold(spins: u64) {
    for _ in 0..spins {
        std::hint::spin_loop();
    }
}

#[test]
fn flag_churn_errors_and_reconfiguration_under_picks_keep_invariants() {
    // The work: each picker makes PICKS picks, and the test lasts as long as that takes on
    // the machine at hand; no wall-clock bound. The churn (flag toggles, edits) runs until
    // every picker is done, each of its loops with a count bound of its own. 400 000 picks
    // is what release builds made within the old 1.5 s run (about 0.5 s on 2 cores); an
    // unoptimized build makes a quarter of them (about 2 s). Each picker keeps IN_FLIGHT
    // requests in flight: enough to span snapshot swaps and flag changes.
    const PICKS: u64 = if cfg!(debug_assertions) {
        100_000
    } else {
        400_000
    };
    const MAX_EDITS: u64 = 20_000;
    const MAX_TOGGLES: u64 = 5_000_000;
    const IN_FLIGHT: usize = 8;
    // The four pickers, the manager, the probe and the two writers.
    const THREADS: usize = 8;

    let t0 = t0();
    // Errors are marked at t0 and picks happen at t1: with retry=0 a member in error is
    // retried by the next pick that scans, so members keep going in and out of error.
    let t1 = t0 + Duration::from_secs(1);
    let members = (0..4u32).map(|i| {
        MemberParams::new(&format!("http://m{i}"))
            .unwrap()
            .with_load_factor(LoadFactor::from_lbf(100 * (1 + i % 3)).unwrap())
            .with_route(Route::new(&format!("r{i}")).unwrap())
            .with_retry(Duration::ZERO)
    });
    let s = BalancerStore::new(BalancerParams::new("churn"), members, t0).unwrap();
    let original = s.snapshot();
    let ids: Vec<_> = original.members().iter().map(Member::id).collect();
    // The manager disables and enables m0; the probe fails and passes m0's health check,
    // faster: two threads writing the same flags word, with requests putting m0 in error
    // and picks retrying it.
    let toggles = [
        Toggle::new(original.members()[0].clone(), StatusFlags::DISABLED),
        Toggle::new(original.members()[0].clone(), StatusFlags::HC_FAILED),
    ];
    let stop = AtomicBool::new(false);
    // Every thread starts its work once all have started: the churn overlaps the picks
    // from the first one, however the threads are scheduled.
    let start = Barrier::new(THREADS);

    let (picked, transferred, avoided) = thread::scope(|scope| {
        let pickers: Vec<_> = (0..4u64)
            .map(|t| {
                let (s, ids, toggles, start) = (&s, &ids, &toggles, &start);
                scope.spawn(move || {
                    let (mut picked, mut transferred, mut avoided) = (0u64, 0u64, 0u64);
                    let mut held = std::collections::VecDeque::new();
                    start.wait();
                    for n in 0..PICKS {
                        let route = format!("r{}", n % 4);
                        let tried = [ids[(n % 4) as usize]];
                        let request = match (n + t) % 16 {
                            0 => PickRequest::new().with_route(&route),
                            1 => PickRequest::new().with_tried(&tried),
                            _ => PickRequest::new(),
                        };
                        let seen = toggles.each_ref().map(Toggle::observe);
                        let snap = s.snapshot();
                        let Ok(p) = snap.pick(&request, t1) else {
                            continue;
                        };
                        assert_eq!(snap.members()[p.position()].id(), p.member().id());
                        for (toggle, seen) in toggles.iter().zip(seen) {
                            if seen % 2 == 1 && toggle.observe() == seen {
                                assert_ne!(
                                    p.member().id(),
                                    toggle.member.id(),
                                    "picked with {:?} set",
                                    toggle.flag
                                );
                                avoided += 1;
                            }
                        }
                        picked += 1;
                        let bytes = 1 + n % 5;
                        p.member().state().add_transferred(bytes);
                        transferred += bytes;
                        if n % 41 == t {
                            // The request failed: the member goes in error (retried at t1).
                            p.member().mark_error(t0);
                        }
                        held.push_back(p);
                        if held.len() > IN_FLIGHT {
                            drop(held.pop_front());
                        }
                    }
                    (picked, transferred, avoided)
                })
            })
            .collect();
        let manager = scope.spawn(|| {
            start.wait();
            for n in 0..MAX_TOGGLES {
                if n % 64 == 0 && stop.load(Ordering::Relaxed) {
                    break;
                }
                // Long enough in each state for whole picks to run in it.
                toggles[0].set();
                hold(n % 1024);
                toggles[0].clear();
                hold(n % 1024);
                if n % 3 == 0 {
                    original.members()[1]
                        .state()
                        .insert_flags(StatusFlags::DRAIN);
                    original.members()[1]
                        .state()
                        .remove_flags(StatusFlags::DRAIN);
                }
            }
        });
        let probe = scope.spawn(|| {
            start.wait();
            for n in 0..MAX_TOGGLES {
                if n % 64 == 0 && stop.load(Ordering::Relaxed) {
                    break;
                }
                // Short: frequent writes to the word the manager writes too.
                toggles[1].set();
                hold(n % 32);
                toggles[1].clear();
                hold(n % 32);
                // A passing check clears errors.
                original.members()[(n % 4) as usize].state().clear_error();
            }
        });
        // Two writers, each editing its own members and adding and removing its own extra
        // members, check that each of their edits is in the next snapshot: a write lost
        // to the other writer's would not be.
        let writers: Vec<_> = (0..2usize)
            .map(|w| {
                let (s, ids, stop, start) = (&s, &ids, &stop, &start);
                scope.spawn(move || {
                    start.wait();
                    for n in 0..MAX_EDITS {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // No load factor change here: it resets lbstatus (as Apache's manager
                        // does), which would void the lbstatus check below.
                        let id = ids[2 * w + usize::from(n % 2 == 1)];
                        let timeout = Some(Duration::from_secs(1 + n % 7));
                        s.update_member(id, |m| m.timeout = timeout).unwrap();
                        assert_eq!(s.snapshot().member(id).unwrap().params().timeout, timeout);
                        let extra = s
                            .add_member(
                                MemberParams::new(&format!("http://extra{w}-{n}"))
                                    .unwrap()
                                    .with_status(StatusFlags::DISABLED),
                            )
                            .unwrap();
                        assert!(s.snapshot().member(extra).is_some());
                        if w == 0 {
                            let attempts = u32::try_from(n % 3).unwrap();
                            s.update_params(|p| p.max_attempts = Some(attempts));
                        }
                        s.remove_member(extra).unwrap();
                        assert!(s.snapshot().member(extra).is_none());
                    }
                })
            })
            .collect();
        // The picks are the work; the churn stops once they are all done (or a picker
        // failed: its panic is raised below, after the churn has stopped).
        let pickers: Vec<_> = pickers.into_iter().map(|p| p.join()).collect();
        stop.store(true, Ordering::Relaxed);
        manager.join().unwrap();
        probe.join().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        pickers
            .into_iter()
            .map(Result::unwrap)
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    });
    eprintln!(
        "{picked} of {} picks made, {avoided} while a flag was known to be set",
        4 * PICKS
    );

    s.settle();
    let snap = s.snapshot();
    assert_eq!(snap.members().len(), 4, "the extras were all removed");
    for (before, after) in original.members().iter().zip(snap.members()) {
        assert!(
            std::ptr::eq(before.state(), after.state()),
            "state carried over"
        );
        assert_eq!(after.state().busy(), 0, "{after:?}");
        // Every D, C and N set was cleared again; a lost clear (or a clear that wrote back
        // flags read earlier) would leave one behind.
        let left = StatusFlags::DISABLED | StatusFlags::HC_FAILED | StatusFlags::DRAIN;
        assert!(!after.flags().intersects(left), "{after:?}");
    }
    let elected: u64 = snap.members().iter().map(|m| m.state().elected()).sum();
    let bytes: u64 = snap.members().iter().map(|m| m.state().transferred()).sum();
    let lbstatus: i64 = snap.members().iter().map(|m| m.state().lbstatus()).sum();
    assert_eq!(elected, picked);
    assert_eq!(bytes, transferred);
    // Every round, sticky accounting and cycle fold adds as much as it takes away.
    assert_eq!(lbstatus, 0, "{snap:?}");
    assert!(picked > 1_000, "too few picks to mean anything: {picked}");
    assert!(avoided > 0, "no pick ran while a flag was known to be set");
}

#[test]
fn flag_owners_never_lose_their_flags() {
    // Three threads writing one member's flags word as fast as they can: the manager owns
    // D, the probe owns C, and requests put the member in error while picks retry it and a
    // passing check clears it. With only these threads, two cores run two of them at once
    // nearly all the time, so a lost update (a flag change written back over another) would
    // be caught within a few thousand changes by the owners' checks in `Toggle`.
    const CHANGES: u64 = 200_000;
    let t0 = t0();
    let s = store(&[1], t0);
    let member = s.snapshot().members()[0].clone();
    let toggles = [
        Toggle::new(member.clone(), StatusFlags::DISABLED),
        Toggle::new(member.clone(), StatusFlags::HC_FAILED),
    ];
    let later = t0 + Duration::from_secs(3600);
    thread::scope(|scope| {
        for toggle in &toggles {
            scope.spawn(move || {
                for n in 0..CHANGES {
                    toggle.set();
                    hold(n % 8);
                    toggle.clear();
                    hold(n % 8);
                }
            });
        }
        scope.spawn(|| {
            for n in 0..CHANGES {
                match n % 3 {
                    0 => {
                        member.mark_error(t0);
                    }
                    1 => {
                        member.try_recover(later);
                    }
                    _ => member.state().clear_error(),
                }
            }
        });
    });
    let flags = member.flags();
    assert!(
        flags.difference(StatusFlags::IN_ERROR).is_empty(),
        "{flags:?}"
    );
}

#[test]
fn batched_member_set_edits_under_picks_are_whole_and_lose_no_count() {
    use std::collections::HashMap;

    let now = t0();
    let s = store(&[1, 1, 1], now);
    let discovered =
        |round: u32| [0, 1].map(|k| MemberParams::new(&format!("http://d{round}-{k}")).unwrap());
    for p in discovered(0) {
        s.add_member(p).unwrap();
    }
    let stop = AtomicBool::new(false);
    let rounds = 1_000u32;
    let seen: Vec<HashMap<String, (Member, u64)>> = thread::scope(|scope| {
        let pickers: Vec<_> = (0..3)
            .map(|_| {
                let s = &s;
                let stop = &stop;
                scope.spawn(move || {
                    let mut seen: HashMap<String, (Member, u64)> = HashMap::new();
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) || n < 1_000 {
                        // Every snapshot is a whole batch: 3 kept and 2 discovered members,
                        // never the removals without the additions.
                        assert_eq!(s.load().members().len(), 5);
                        let p = s.pick(&PickRequest::new(), now).unwrap();
                        let entry = seen
                            .entry(p.member().url().to_owned())
                            .or_insert_with(|| (p.member().clone(), 0));
                        entry.1 += 1;
                        n += 1;
                    }
                    seen
                })
            })
            .collect();
        let writer = scope.spawn(|| {
            for round in 1..=rounds {
                s.edit_members(|set| {
                    let old: Vec<_> = set
                        .members()
                        .iter()
                        .filter(|m| m.url().starts_with("http://d"))
                        .map(Member::id)
                        .collect();
                    for id in old {
                        set.remove(id)?;
                    }
                    for p in discovered(round) {
                        set.add(p)?;
                    }
                    let kept = set.members()[round as usize % 3].id();
                    let mut params = set.member(kept).unwrap().params().clone();
                    params.load_factor = LoadFactor::from_lbf(100 + round % 3 * 100).unwrap();
                    set.update(kept, params)?;
                    Ok::<_, proxy_balancer_core::ConfigError>(())
                })
                .unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        writer.join().unwrap();
        pickers.into_iter().map(|p| p.join().unwrap()).collect()
    });
    // Every pick is counted on its member's state, removed members' included.
    let mut totals: HashMap<String, (Member, u64)> = HashMap::new();
    for picker in seen {
        for (url, (member, n)) in picker {
            totals.entry(url).or_insert((member, 0)).1 += n;
        }
    }
    for (url, (member, n)) in &totals {
        assert_eq!(member.state().elected(), *n, "{url}");
        assert_eq!(member.state().busy(), 0, "{url}");
    }
    assert_eq!(s.snapshot().members().len(), 5);
}
