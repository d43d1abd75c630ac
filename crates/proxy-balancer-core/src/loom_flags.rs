//! loom models of status flag transitions on one member: the manager, a probe and requests
//! setting and clearing flags at once lose no update, and `mark_error`, `try_recover` and
//! `clear_error` keep Apache's retry rules (`error_time`, `retries`).

use std::time::{Duration, Instant};

use loom::thread;

use crate::loom_support::{model, t0};
use crate::member::MemberState;
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::{BalancerParams, BalancerStore, MemberParams, PickRequest, StatusFlags};

const RETRY: Duration = Duration::from_secs(60);

/// A member state with its own change counter, to check which transitions were counted.
fn state(flags: StatusFlags, epoch: Instant) -> (Arc<MemberState>, Arc<AtomicU64>) {
    let changes = Arc::new(AtomicU64::new(0));
    let s = Arc::new(MemberState::new_in(
        flags,
        epoch,
        Arc::clone(&changes),
        Arc::new(crate::member::InFlight::new(false)),
        Arc::new(crate::outlier::Outliers::new(1)),
    ));
    (s, changes)
}

/// The manager disables (`D`), a probe fails the member (`C`) and a request puts it in
/// error (`E`), while a passing health check clears `E`. Every flag set by someone else
/// survives; `E` ends up set exactly when the clear came first (then no retry is counted);
/// each transition that changed the flags bumped the change counter once.
#[test]
fn loom_manager_probe_and_request_flags_compose() {
    let epoch = t0();
    let t1 = epoch + Duration::from_secs(1);
    model(3, move || {
        let (s, changes) = state(StatusFlags::HOT_STANDBY, epoch);
        let manager = {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                let before = s.insert_flags(StatusFlags::DISABLED);
                assert!(before.contains(StatusFlags::HOT_STANDBY));
            })
        };
        let request = {
            let s = Arc::clone(&s);
            thread::spawn(move || assert!(s.mark_error(t1)))
        };
        s.insert_flags(StatusFlags::HC_FAILED);
        s.clear_error();
        manager.join().expect("no panic");
        request.join().expect("no panic");

        let flags = s.flags();
        let kept = StatusFlags::HOT_STANDBY | StatusFlags::DISABLED | StatusFlags::HC_FAILED;
        assert!(flags.contains(kept), "lost a flag: {flags:?}");
        let in_error = flags.contains(StatusFlags::IN_ERROR);
        assert_eq!(
            in_error,
            s.retries() == 0,
            "{flags:?}, {} retries",
            s.retries()
        );
        assert_eq!(s.error_time(), Some(t1));
        assert_eq!(s.consecutive_failures(), 1);
        // D, C, the error (always counted: its window moved), and the clear if it cleared.
        assert_eq!(changes.load(Ordering::Relaxed), 3 + s.retries());
    });
}

/// A member put in error at `t1` while a pick at `t1` checks whether it may be retried:
/// whenever the pick sees `E`, it sees this error's time, so the window (not yet passed)
/// keeps the member in error. An `E` seen without its time would be retried at once.
///
/// The pick runs on the spawned thread: loom's first schedule then has the error's writes
/// before the pick's reads, and a read that depends on a write is what makes loom try the
/// other orders (a write is only checked against the last access before it, here the
/// writer's own read of the flags).
#[test]
fn loom_error_is_published_with_its_time() {
    let epoch = t0();
    let t1 = epoch + Duration::from_secs(1);
    model(3, move || {
        let (s, _) = state(StatusFlags::EMPTY, epoch);
        let pick = {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                if !s.try_recover(RETRY, t1) {
                    assert_eq!(s.error_time(), Some(t1), "E seen before its error time");
                }
            })
        };
        assert!(s.mark_error(t1));
        pick.join().expect("no panic");
        assert!(s.flags().contains(StatusFlags::IN_ERROR), "{:?}", s.flags());
        assert_eq!(s.retries(), 0, "the window had not passed");
    });
}

/// A member in error since `t0` whose window has passed at `t1`, when a request in flight
/// on it fails at `t1` while a pick at `t1` retries it. Either the retry came first (one
/// retry counted, then the new error) or the new error did (the window starts again and
/// the pick does not retry): in both orders the member ends in error, with the new time.
#[test]
fn loom_retry_races_a_new_error() {
    let epoch = t0();
    let t1 = epoch + RETRY + Duration::from_secs(1);
    model(3, move || {
        let (s, _) = state(StatusFlags::EMPTY, epoch);
        s.mark_error(epoch);
        let request = {
            let s = Arc::clone(&s);
            thread::spawn(move || assert!(s.mark_error(t1)))
        };
        s.try_recover(RETRY, t1);
        request.join().expect("no panic");
        let flags = s.flags();
        assert!(
            flags.contains(StatusFlags::IN_ERROR),
            "the error at t1 was cleared by a retry decided on the error at t0: {flags:?}, \
             {} retries",
            s.retries()
        );
        assert_eq!(s.error_time(), Some(t1));
        assert!(s.retries() <= 1);
    });
}

/// Two picks retrying a member whose window has passed, and a passing health check
/// clearing its error, all at once: `E` is cleared once and one retry is counted.
#[test]
fn loom_concurrent_recoveries_count_one_retry() {
    let epoch = t0();
    let later = epoch + RETRY + Duration::from_secs(1);
    model(3, move || {
        let (s, changes) = state(StatusFlags::EMPTY, epoch);
        s.mark_error(epoch);
        let before = changes.load(Ordering::Relaxed);
        let picks: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || assert!(s.try_recover(RETRY, later)))
            })
            .collect();
        s.clear_error();
        for p in picks {
            p.join().expect("no panic");
        }
        assert_eq!(s.flags(), StatusFlags::EMPTY);
        assert_eq!(s.retries(), 1, "E cleared more than once");
        assert_eq!(changes.load(Ordering::Relaxed), before + 1);
    });
}

/// The manager stops (`S`) a member in error while a pick retries it: `S` is never lost and
/// a stopped member is never made usable.
#[test]
fn loom_stop_races_a_retry() {
    let epoch = t0();
    let later = epoch + RETRY + Duration::from_secs(1);
    model(3, move || {
        let (s, _) = state(StatusFlags::EMPTY, epoch);
        s.mark_error(epoch);
        let manager = {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                s.insert_flags(StatusFlags::STOPPED);
            })
        };
        let usable = s.try_recover(RETRY, later);
        manager.join().expect("no panic");
        let flags = s.flags();
        assert!(flags.contains(StatusFlags::STOPPED));
        assert!(!flags.is_usable());
        // Usable only if the retry came before the stop, and then it cleared E.
        if usable {
            assert!(!flags.contains(StatusFlags::IN_ERROR));
            assert_eq!(s.retries(), 1);
        }
    });
}

/// A request fails on `m1` while another thread, which may have seen `m1` in error, picks
/// twice from the byrequests cycle. `mark_error` sets `E` before it bumps the balancer's
/// change counter, so the cycle may still look current to a pick that saw `E`: the pick
/// must check the member's flags itself, and never return a member whose `E` its thread
/// had seen (`retry` is 60 s: the error lasts).
#[test]
fn loom_error_seen_keeps_fast_picks_away() {
    let now = t0();
    model(3, move || {
        let members = (0..2).map(|i| MemberParams::new(&format!("http://m{i}")).expect("url"));
        let store = BalancerStore::new(BalancerParams::new("loom"), members, now).expect("ok");
        for _ in 0..3 {
            drop(
                store
                    .pick(&PickRequest::new(), now)
                    .expect("usable members"),
            );
        }
        assert!(store.snapshot().fast_path_active());
        let store = Arc::new(store);
        let m1 = store.snapshot().members()[1].clone();
        let picker = {
            let (store, m1) = (Arc::clone(&store), m1.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    let seen = m1.flags().contains(StatusFlags::IN_ERROR);
                    let p = store.pick(&PickRequest::new(), now).expect("m0 is usable");
                    if seen {
                        assert_ne!(p.member().id(), m1.id(), "picked a member seen in error");
                    }
                }
            })
        };
        assert!(m1.mark_error(now));
        picker.join().expect("no panic");
    });
}
