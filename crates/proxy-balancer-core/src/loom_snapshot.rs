//! loom models of snapshot replacement: writers (reconfiguration, the manager) swap in new
//! snapshots while requests pick and finish on old and new ones. A reader always sees one
//! whole snapshot, members' state `Arc`s carry over (what was counted on an old snapshot
//! shows through the new one), concurrent writers lose no edit, and no count is lost.

use std::time::Instant;

use loom::thread;

use crate::loom_support::{model, t0};
use crate::sync::Arc;
use crate::{
    BalancerParams, BalancerSnapshot, BalancerStore, Member, MemberParams, PickRequest, Picked,
    Route, StatusFlags,
};

fn route(name: &str) -> Route {
    Route::new(name).expect("valid route")
}

/// Two equal members `m0`, `m1` with routes `r0`, `r1`, warmed by `warm` plain picks (the
/// byrequests cycle is active after 3).
fn store(warm: usize, now: Instant) -> Arc<BalancerStore> {
    let members = (0..2).map(|i| {
        MemberParams::new(&format!("http://m{i}"))
            .expect("valid url")
            .with_route(route(&format!("r{i}")))
    });
    let store = BalancerStore::new(BalancerParams::new("loom"), members, now).expect("valid");
    for _ in 0..warm {
        drop(
            store
                .pick(&PickRequest::new(), now)
                .expect("usable members"),
        );
    }
    Arc::new(store)
}

/// The added member of the reconfiguration models: disabled, as the manager adds them.
fn extra() -> MemberParams {
    MemberParams::new("http://m2")
        .expect("valid url")
        .with_status(StatusFlags::DISABLED)
}

/// A pick answers for the snapshot it was made on: its position names the member, and the
/// member's state is that snapshot's.
fn check_pick(snap: &BalancerSnapshot, p: &Picked) {
    let at = &snap.members()[p.position()];
    assert_eq!(at.id(), p.member().id());
    assert!(std::ptr::eq(at.state(), p.member().state()));
    assert!(
        p.member().state().busy() >= 1,
        "the pick counts as in flight"
    );
}

/// `m0` and `m1` keep their state `Arc` (the one `before` had) in `after`.
fn check_states_carried(before: &[Member], after: &BalancerSnapshot) {
    for m in before {
        let now = after
            .member(m.id())
            .expect("members are never removed here");
        assert!(
            std::ptr::eq(m.state(), now.state()),
            "{:?} got a new state",
            m.id()
        );
    }
}

/// With `m0` and `m1` the only candidates throughout (equal load factors), byrequests'
/// bookkeeping gives each `lbstatus = picks × 100 − 200 × elected` once the cycle is
/// folded in: no pick lost from `lbstatus` or `elected`, on old snapshots included.
fn check_accounting(store: &BalancerStore, picks: u64) {
    store.settle();
    let snap = store.snapshot();
    let pair = &snap.members()[..2];
    let elected: u64 = pair.iter().map(|m| m.state().elected()).sum();
    assert_eq!(elected, picks, "{snap:?}");
    let picks = i64::try_from(picks).expect("small");
    for m in pair {
        let mine = i64::try_from(m.state().elected()).expect("small");
        assert_eq!(m.state().lbstatus(), picks * 100 - 200 * mine, "{snap:?}");
    }
    assert!(snap.members().iter().all(|m| m.state().busy() == 0));
}

/// The manager adds a (disabled) member and then edits `m1`'s route, while a request picks
/// on the snapshot it loaded, keeps that request in flight, counts bytes on it and picks
/// again. Each snapshot the request sees is one of the three the writer published, whole;
/// its counts show through the final snapshot; no pick is lost from the accounting.
#[test]
fn loom_reconfiguration_under_picks_keeps_state() {
    let now = t0();
    model(3, move || {
        let store = store(3, now);
        let original: Vec<Member> = store.snapshot().members().to_vec();
        let writer = {
            let store = Arc::clone(&store);
            let id1 = original[1].id();
            thread::spawn(move || {
                store.add_member(extra()).expect("new url");
                store
                    .update_member(id1, |m| m.route = Some(route("r1b")))
                    .expect("known member");
            })
        };
        let snap = store.snapshot();
        check_version(&snap);
        let first = snap.pick(&PickRequest::new(), now).expect("usable members");
        check_pick(&snap, &first);
        first.member().state().add_transferred(7);
        let again = store.snapshot();
        check_version(&again);
        let second = again
            .pick(&PickRequest::new(), now)
            .expect("usable members");
        check_pick(&again, &second);
        drop((first, second));
        writer.join().expect("no panic");

        let last = store.snapshot();
        assert_eq!(last.members().len(), 3);
        assert_eq!(last.members()[1].route(), Some("r1b"));
        check_states_carried(&original, &last);
        let transferred: u64 = last.members().iter().map(|m| m.state().transferred()).sum();
        assert_eq!(transferred, 7);
        check_accounting(&store, 3 + 2);
    });
}

/// One of the writer's three versions, whole: the route edit never shows without the
/// member added before it.
fn check_version(snap: &BalancerSnapshot) {
    let m = snap.members();
    match (m.len(), m[1].route()) {
        (2, Some("r1")) | (3, Some("r1" | "r1b")) => {}
        other => panic!("torn snapshot {other:?}: {snap:?}"),
    }
    assert!(m.windows(2).all(|w| w[0].id() < w[1].id()));
}

/// Two writers at once (a member added, another's route edited) and a pick: both edits
/// land, as if one came after the other, and the states carry over.
#[test]
fn loom_concurrent_writers_lose_no_edit() {
    let now = t0();
    model(3, move || {
        let store = store(3, now);
        let original: Vec<Member> = store.snapshot().members().to_vec();
        let adder = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                store.add_member(extra()).expect("new url");
            })
        };
        let editor = {
            let store = Arc::clone(&store);
            let id1 = original[1].id();
            thread::spawn(move || {
                store
                    .update_member(id1, |m| m.route = Some(route("r1b")))
                    .expect("known member");
            })
        };
        drop(
            store
                .pick(&PickRequest::new(), now)
                .expect("usable members"),
        );
        adder.join().expect("no panic");
        editor.join().expect("no panic");

        let last = store.snapshot();
        assert_eq!(last.members().len(), 3, "an edit was lost: {last:?}");
        assert_eq!(last.members()[1].route(), Some("r1b"), "an edit was lost");
        check_states_carried(&original, &last);
        check_accounting(&store, 3 + 1);
    });
}

/// The manager edits `m0` (a new snapshot) and then disables it through the member it
/// loaded before the edit, as the balancer-manager does; meanwhile a request picks twice.
/// A pick made after the thread saw `D` never lands on `m0`: the flag reached the state
/// the new snapshot shares.
#[test]
fn loom_disable_through_an_old_snapshot_reaches_the_new_one() {
    let now = t0();
    model(3, move || {
        let store = store(3, now);
        let m0 = store.snapshot().members()[0].clone();
        let writer = {
            let store = Arc::clone(&store);
            let m0 = m0.clone();
            thread::spawn(move || {
                store
                    .update_member(m0.id(), |m| m.route = Some(route("r0b")))
                    .expect("known member");
                m0.state().insert_flags(StatusFlags::DISABLED);
            })
        };
        for _ in 0..2 {
            let seen = m0.flags().contains(StatusFlags::DISABLED);
            let p = store.pick(&PickRequest::new(), now).expect("m1 is usable");
            if seen {
                assert_ne!(p.member().id(), m0.id(), "picked a disabled member");
            }
        }
        writer.join().expect("no panic");
        let p = store.pick(&PickRequest::new(), now).expect("m1 is usable");
        assert_ne!(p.member().id(), m0.id(), "picked a disabled member");
        drop(p);
        assert!(store.snapshot().members()[0]
            .flags()
            .contains(StatusFlags::DISABLED));
    });
}

/// A request keeps picking on the snapshot it loaded (as a failover may) while a writer
/// replaces and retires that snapshot. The old snapshot's byrequests cycle hands out slots
/// until the retirement folds them into `lbstatus`; after it, the old snapshot scans and
/// never starts another cycle that nobody would fold (checked by picking on it again once
/// the writer is done). No pick is lost from the accounting.
///
/// Run twice: with the cycle active from the start, and one pick before it is built, so
/// that the request's first pick builds it (holding the claim) while the writer retires.
#[test]
fn loom_picks_on_a_retired_snapshot_are_accounted() {
    let now = t0();
    for warm in [3, 1] {
        model(3, move || {
            let store = store(warm, now);
            let old = store.snapshot();
            let writer = {
                let store = Arc::clone(&store);
                let id1 = old.members()[1].id();
                thread::spawn(move || {
                    store
                        .update_member(id1, |m| m.route = Some(route("r1b")))
                        .expect("known member");
                })
            };
            for _ in 0..3 {
                let p = old.pick(&PickRequest::new(), now).expect("usable members");
                check_pick(&old, &p);
            }
            writer.join().expect("no panic");
            // Retired now: whatever was built on it, later picks scan and build nothing.
            for _ in 0..3 {
                drop(old.pick(&PickRequest::new(), now).expect("usable members"));
            }
            assert!(!old.fast_path_active(), "a retired snapshot has a cycle");
            check_states_carried(old.members(), &store.snapshot());
            check_accounting(&store, warm as u64 + 6);
        });
    }
}
