//! loom models of the per-member counters: `busy` and `elected` (one packed word), the
//! byte counters, and the `lbstatus` rounds of byrequests and bybusyness, updated from
//! several threads at once. No count is lost, `busy` never goes below what is in flight,
//! and everything is back to rest at the end.

use std::time::Instant;

use loom::thread;

use crate::loom_support::{model, t0};
use crate::member::{Member, MemberId, MemberState};
use crate::sync::Arc;
use crate::{BalancerParams, BalancerStore, LbMethodKind, LoadFactor, MemberParams, PickRequest};
use crate::{BalancerSnapshot, StatusFlags};

/// Requests a thread keeps in flight at once in the busy model.
const HELD: u64 = 2;

fn member(epoch: Instant) -> Member {
    Member::new(
        MemberId(0),
        MemberParams::new("http://m0").expect("valid url"),
        Arc::new(MemberState::new(StatusFlags::EMPTY, epoch)),
    )
}

/// Two threads each elect the member and start a second request on it, then finish both,
/// while a third reads the counters. The packed word never loses an increment (which would
/// make a later release borrow from `elected`), so `busy` stays within what is in flight
/// and ends at 0, and `elected` counts both elections.
#[test]
fn loom_busy_and_elected_from_two_threads() {
    let epoch = t0();
    model(3, move || {
        let m = member(epoch);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    let elected = m.elect(&m.state().inflight);
                    let other = m.begin_request();
                    let busy = m.state().busy();
                    assert!((HELD..=2 * HELD).contains(&busy), "busy {busy}");
                    drop(elected);
                    drop(other);
                })
            })
            .collect();
        let (busy, elected) = (m.state().busy(), m.state().elected());
        assert!(busy <= 2 * HELD, "busy {busy}: a release went below zero");
        assert!(elected <= 2, "elected {elected}");
        for w in workers {
            w.join().expect("no panic");
        }
        assert_eq!(m.state().busy(), 0);
        assert_eq!(m.state().elected(), 2);
    });
}

/// Bytes counted by three threads at once (bytraffic's inputs) add up.
#[test]
fn loom_byte_counters_add_up() {
    let epoch = t0();
    model(3, move || {
        let m = member(epoch);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    m.state().add_transferred(3);
                    m.state().add_read(5);
                })
            })
            .collect();
        m.state().add_read(7);
        m.state().add_transferred(11);
        for w in workers {
            w.join().expect("no panic");
        }
        assert_eq!(m.state().transferred(), 3 + 3 + 11);
        assert_eq!(m.state().read(), 5 + 5 + 7);
    });
}

/// Two members with load factors 1 and 2 under `lb_method`.
fn store(lb_method: LbMethodKind, epoch: Instant) -> Arc<BalancerStore> {
    let mut params = BalancerParams::new("loom");
    params.lb_method = lb_method;
    let members = [100, 200].into_iter().enumerate().map(|(i, lbf)| {
        MemberParams::new(&format!("http://m{i}"))
            .expect("valid url")
            .with_load_factor(LoadFactor::from_lbf(lbf).expect("valid factor"))
    });
    Arc::new(BalancerStore::new(params, members, epoch).expect("valid"))
}

/// Every lbstatus round adds each candidate's load factor and takes the total back from
/// the winner, so with the same candidates throughout each member's `lbstatus` is
/// `picks × lbf − total × elected`, and their sum is 0: a lost addition shows in both.
fn check_rounds(snap: &BalancerSnapshot) {
    let picks: u64 = snap.members().iter().map(|m| m.state().elected()).sum();
    let total: i64 = snap.members().iter().map(Member::lbf).sum();
    let picks = i64::try_from(picks).expect("small");
    for m in snap.members() {
        let elected = i64::try_from(m.state().elected()).expect("small");
        assert_eq!(
            m.state().lbstatus(),
            picks * m.lbf() - total * elected,
            "{snap:?}"
        );
        assert_eq!(m.state().busy(), 0);
    }
}

/// byrequests' scanning picks (the rounds the fast path does not serve: here picks that
/// skip a member, as a failover does) from three threads: no `lbstatus` update is lost.
#[test]
fn loom_byrequests_rounds_lose_no_lbstatus() {
    let epoch = t0();
    model(3, move || {
        let store = store(LbMethodKind::ByRequests, epoch);
        // Skipping a member that is not there forces the scan without changing candidates.
        let tried = [MemberId(99)];
        let pickers: Vec<_> = (0..2)
            .map(|_| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    let request = PickRequest::new().with_tried(&tried);
                    drop(store.pick(&request, epoch).expect("usable members"));
                })
            })
            .collect();
        drop(
            store
                .pick(&PickRequest::new().with_tried(&tried), epoch)
                .expect("usable members"),
        );
        for p in pickers {
            p.join().expect("no panic");
        }
        let snap = store.snapshot();
        assert_eq!(
            snap.members()
                .iter()
                .map(|m| m.state().elected())
                .sum::<u64>(),
            3
        );
        check_rounds(&snap);
    });
}

/// bybusyness from two threads that keep their requests in flight: each thread's own
/// request counts on its member while it lasts, the tie-break rounds lose no `lbstatus`
/// update, and `busy` is back to 0 at the end.
#[test]
fn loom_bybusyness_picks_and_releases() {
    let epoch = t0();
    model(3, move || {
        let store = store(LbMethodKind::ByBusyness, epoch);
        let picker = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let p = store.pick(&PickRequest::new(), epoch).expect("usable");
                assert!(p.member().state().busy() >= 1);
                drop(p);
            })
        };
        let first = store.pick(&PickRequest::new(), epoch).expect("usable");
        let second = store.pick(&PickRequest::new(), epoch).expect("usable");
        assert!(first.member().state().busy() >= 1);
        assert!(second.member().state().busy() >= 1);
        drop((first, second));
        picker.join().expect("no panic");
        let snap = store.snapshot();
        assert_eq!(
            snap.members()
                .iter()
                .map(|m| m.state().elected())
                .sum::<u64>(),
            3
        );
        let sum: i64 = snap.members().iter().map(|m| m.state().lbstatus()).sum();
        assert_eq!(sum, 0, "{snap:?}");
        assert!(snap.members().iter().all(|m| m.state().busy() == 0));
    });
}

/// The store's count of requests in flight (bybusyness) against a switch of the lbmethod:
/// a request begins on a member while the count is switched on and a pick of the new
/// snapshot (published after the switch) tries to trust the count. Whatever the order, a
/// trusted count includes every request in flight (it reads 0 only when nothing is), and
/// the count is back to 0 with the request's end (an uncounted request releases nothing).
/// Checked to fail with `verify` trusting without reading the busy counts.
#[test]
fn loom_inflight_trust() {
    use crate::member::InFlight;
    use crate::sync::{AtomicBool, AtomicU64, Ordering};
    let epoch = t0();
    model(3, move || {
        let inflight = Arc::new(InFlight::new(false));
        let state = Arc::new(MemberState::new_in(
            StatusFlags::EMPTY,
            epoch,
            Arc::new(AtomicU64::new(0)),
            Arc::clone(&inflight),
            Arc::new(crate::outlier::Outliers::new(1)),
        ));
        let m = Member::new(
            MemberId(0),
            MemberParams::new("http://m0").expect("valid url"),
            Arc::clone(&state),
        );
        let published = Arc::new(AtomicBool::new(false));
        let switch = {
            let (inflight, published) = (Arc::clone(&inflight), Arc::clone(&published));
            thread::spawn(move || {
                inflight.set_tracking(true);
                // Stands for the new snapshot's publication.
                published.store(true, Ordering::Release);
            })
        };
        let verifier = {
            let (inflight, published, state) = (
                Arc::clone(&inflight),
                Arc::clone(&published),
                Arc::clone(&state),
            );
            thread::spawn(move || {
                if published.load(Ordering::Acquire) && inflight.verify([&*state]) {
                    assert!(inflight.is_trusted());
                }
            })
        };
        let request = m.begin_request();
        switch.join().expect("no panic");
        verifier.join().expect("no panic");
        if inflight.is_trusted() {
            assert_eq!(
                inflight.count(),
                state.busy(),
                "an uncounted request is in flight"
            );
        }
        drop(request);
        assert_eq!(inflight.count(), 0);
        assert_eq!(state.busy(), 0);
    });
}
