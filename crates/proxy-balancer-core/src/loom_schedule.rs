//! loom models of the shared-state protocol: the byrequests cycle (slots taken with
//! `fetch_add`, ended with `fetch_and`, folded into `lbstatus` by addition) against
//! concurrent picks, settles, sticky picks and flag changes.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p proxy-balancer-core --release --lib loom`.
//! Under loom the snapshot cell is a `RwLock<Arc<_>>` (loom cannot see inside arc-swap), so
//! these check our protocol, not arc-swap.

use std::time::Instant;

use loom::thread;

use crate::sync::Arc;
use crate::{BalancerParams, BalancerStore, MemberParams, PickRequest, Route, StatusFlags};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(f);
}

/// Two equal members with routes `r0`, `r1`; a few plain picks so the cycle is active.
fn warm_store(now: Instant) -> (Arc<BalancerStore>, u64) {
    let members = (0..2).map(|i| {
        MemberParams::new(&format!("http://m{i}"))
            .expect("valid url")
            .with_route(Route::new(&format!("r{i}")).expect("valid route"))
    });
    let store = BalancerStore::new(BalancerParams::new("loom"), members, now).expect("valid");
    let mut picks = 0;
    for _ in 0..3 {
        plain_pick(&store, now);
        picks += 1;
    }
    assert!(store.snapshot().fast_path_active());
    (Arc::new(store), picks)
}

/// One plain pick on `store`, its busy count released at once.
fn plain_pick(store: &BalancerStore, now: Instant) {
    drop(
        store
            .pick(&PickRequest::new(), now)
            .expect("usable members"),
    );
}

/// A thread making `n` plain picks on `store`.
fn spawn_picker(store: &Arc<BalancerStore>, n: usize, now: Instant) -> thread::JoinHandle<()> {
    let store = Arc::clone(store);
    thread::spawn(move || {
        for _ in 0..n {
            plain_pick(&store, now);
        }
    })
}

/// With both members always candidates, byrequests' bookkeeping gives, for each member,
/// `lbstatus = picks × lbf − total × elected`: no pick lost, none counted twice.
fn check_accounting(store: &BalancerStore) {
    store.settle();
    let snap = store.snapshot();
    let picks: u64 = snap.members().iter().map(|m| m.state().elected()).sum();
    for m in snap.members() {
        let expected = i64::try_from(picks).expect("small") * 100
            - 200 * i64::try_from(m.state().elected()).expect("small");
        assert_eq!(m.state().lbstatus(), expected, "{snap:?}");
        assert_eq!(m.state().busy(), 0);
    }
}

#[test]
fn loom_fast_picks_race_settle() {
    #[expect(clippy::disallowed_methods, reason = "the model needs some instant")]
    let now = Instant::now();
    model(move || {
        let (store, _) = warm_store(now);
        let picker = spawn_picker(&store, 2, now);
        store.settle();
        plain_pick(&store, now);
        picker.join().expect("no panic");
        check_accounting(&store);
    });
}

#[test]
fn loom_fast_picks_race_sticky_picks() {
    #[expect(clippy::disallowed_methods, reason = "the model needs some instant")]
    let now = Instant::now();
    model(move || {
        let (store, _) = warm_store(now);
        let picker = spawn_picker(&store, 2, now);
        let sticky = store
            .pick(&PickRequest::new().with_route("r1"), now)
            .expect("r1 is usable");
        assert_eq!(sticky.member().route(), Some("r1"));
        drop(sticky);
        picker.join().expect("no panic");
        check_accounting(&store);
    });
}

#[test]
fn loom_disabled_member_is_not_picked_after_the_flag_is_set() {
    #[expect(clippy::disallowed_methods, reason = "the model needs some instant")]
    let now = Instant::now();
    model(move || {
        let (store, _) = warm_store(now);
        let picker = spawn_picker(&store, 1, now);
        let b = store.snapshot().members()[1].clone();
        b.state().insert_flags(StatusFlags::DISABLED);
        for _ in 0..2 {
            let p = store.pick(&PickRequest::new(), now).expect("m0 is usable");
            assert_ne!(p.member().id(), b.id(), "picked a disabled member");
        }
        picker.join().expect("no panic");
    });
}

/// A pick that took its slot from a cycle which a sticky pick then ended and later plain
/// picks rebuilt (a new generation, from another start) must not hand out the new table's
/// member for the old slot: the old cycle's fold counted that slot as its own member's.
///
/// Known to fail: when the generation changed under it, `try_pick` gives up and the request
/// is scanned, but the old cycle's fold already counted the slot as a pick, so `lbstatus`
/// holds that request twice (one pick's worth of skew after the race; `elected` is right).
/// Run it with `--ignored` when fixing the seqlock protocol.
#[test]
#[ignore = "known race: a slot folded by the old cycle is picked again by the scan"]
fn loom_fast_pick_races_a_rebuild() {
    #[expect(clippy::disallowed_methods, reason = "the model needs some instant")]
    let now = Instant::now();
    model(move || {
        let (store, _) = warm_store(now);
        let picker = spawn_picker(&store, 1, now);
        drop(
            store
                .pick(&PickRequest::new().with_route("r1"), now)
                .expect("r1 is usable"),
        );
        for _ in 0..2 {
            plain_pick(&store, now);
        }
        picker.join().expect("no panic");
        check_accounting(&store);
    });
}
