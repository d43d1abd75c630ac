use std::sync::Arc;
use std::time::Duration;

use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
use tokio::time::Instant;

use super::{MemberSetSync, SyncReport, DEFAULT_DRAIN};

fn m(host: &str, params: &[(&str, &str)]) -> MemberParams {
    let mut m = MemberParams::new(&format!("http://{host}")).unwrap();
    for (k, v) in params {
        m.set(k, v).unwrap();
    }
    m
}

fn store(configured: &[&str]) -> Arc<BalancerStore> {
    Arc::new(
        BalancerStore::new(
            BalancerParams::new("t"),
            configured.iter().map(|h| m(h, &[])),
            Instant::now().into_std(),
        )
        .unwrap(),
    )
}

fn hosts(store: &BalancerStore) -> Vec<String> {
    store
        .snapshot()
        .members()
        .iter()
        .map(|m| m.params().url.host().to_owned())
        .collect()
}

fn flags(store: &BalancerStore, host: &str) -> StatusFlags {
    store
        .snapshot()
        .members()
        .iter()
        .find(|m| m.params().url.host() == host)
        .unwrap()
        .flags()
}

#[tokio::test(start_paused = true)]
async fn apply_adds_skips_others_members_and_counts_duplicates() {
    let s = store(&["conf"]);
    let sync = MemberSetSync::new(Arc::clone(&s));
    assert_eq!(sync.drain(), DEFAULT_DRAIN);
    assert!(Arc::ptr_eq(sync.store(), &s));
    let report = sync
        .apply([
            m("x", &[]),
            m("conf", &[("loadfactor", "5")]),
            m("x", &[("loadfactor", "2")]),
            m("y", &[]),
        ])
        .unwrap();
    let want = SyncReport {
        added: 2,
        skipped: 1,
        duplicates: 1,
        ..SyncReport::default()
    };
    assert_eq!(report, want);
    assert!(report.changed());
    assert_eq!(hosts(&s), ["conf", "x", "y"]);
    // The configured member is not ours: untouched; the first x counts.
    assert_eq!(s.snapshot().members()[0].lbf(), 100);
    assert_eq!(s.snapshot().members()[1].lbf(), 100);
    assert!(sync.owns(&m("x", &[]).url));
    assert!(!sync.owns(&m("conf", &[]).url));

    // The same set again: nothing changes, no new snapshot.
    let before = s.snapshot();
    let report = sync.apply([m("x", &[]), m("y", &[])]).unwrap();
    assert_eq!(report.unchanged, 2);
    assert!(!report.changed());
    assert!(Arc::ptr_eq(&before, &s.snapshot()));
    let handle = sync.handle();
    assert_eq!(
        (handle.applied(), handle.members(), handle.errors()),
        (2, 2, 0)
    );
    assert_eq!(handle.last_report(), Some(report));
    assert!(handle.last_error().is_none() && !handle.source_ended());
    // An empty set never removes the configured member.
    let sync = sync.with_drain(Duration::ZERO);
    assert_eq!(sync.apply([]).unwrap().removed, 2);
    assert_eq!(hosts(&s), ["conf"]);
}

#[tokio::test(start_paused = true)]
async fn a_vanished_member_drains_for_its_period_then_goes() {
    let s = store(&[]);
    let sync = MemberSetSync::new(Arc::clone(&s)).with_drain(Duration::from_secs(10));
    sync.apply([m("x", &[]), m("y", &[])]).unwrap();
    let start = Instant::now();
    let report = sync.apply([m("y", &[])]).unwrap();
    assert_eq!(
        (report.draining, report.removed, report.unchanged),
        (1, 0, 1)
    );
    assert!(flags(&s, "x").contains(StatusFlags::DRAIN));
    assert!(!flags(&s, "y").contains(StatusFlags::DRAIN));
    assert_eq!(
        sync.next_expiry(),
        Some((start + Duration::from_secs(10)).into_std())
    );
    assert_eq!(sync.handle().draining(), 1);
    // Still gone from the next set: the drain goes on, not restarted.
    tokio::time::advance(Duration::from_secs(9)).await;
    let report = sync.apply([m("y", &[])]).unwrap();
    assert_eq!((report.draining, report.removed), (0, 0));
    assert_eq!(sync.expire().unwrap().removed, 0);
    assert_eq!(hosts(&s), ["x", "y"]);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(sync.expire().unwrap().removed, 1);
    assert_eq!(hosts(&s), ["y"]);
    assert_eq!(sync.next_expiry(), None);
    assert_eq!(sync.handle().draining(), 0);
    assert!(!sync.owns(&m("x", &[]).url));
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_ended_is_removed_by_the_next_apply() {
    let s = store(&[]);
    let sync = MemberSetSync::new(Arc::clone(&s)).with_drain(Duration::from_secs(1));
    sync.apply([m("x", &[]), m("y", &[])]).unwrap();
    sync.apply([m("y", &[])]).unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let report = sync.apply([m("y", &[])]).unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(hosts(&s), ["y"]);
}

#[tokio::test(start_paused = true)]
async fn a_return_clears_only_the_drain_the_sync_set() {
    let s = store(&[]);
    let sync = MemberSetSync::new(Arc::clone(&s));
    sync.apply([m("x", &[]), m("y", &[])]).unwrap();
    // The operator had put y in drain mode: the sync does not take it off.
    s.snapshot().members()[1]
        .state()
        .insert_flags(StatusFlags::DRAIN);
    let x_state = s.snapshot().members()[0].clone();
    let report = sync.apply([]).unwrap();
    assert_eq!(report.draining, 2);
    let report = sync.apply([m("x", &[]), m("y", &[])]).unwrap();
    assert_eq!((report.returned, report.unchanged), (2, 2));
    assert!(!flags(&s, "x").contains(StatusFlags::DRAIN));
    assert!(flags(&s, "y").contains(StatusFlags::DRAIN));
    assert_eq!(sync.next_expiry(), None);
    assert!(std::ptr::eq(
        s.snapshot().members()[0].state(),
        x_state.state()
    ));
}

#[tokio::test(start_paused = true)]
async fn an_update_keeps_state_and_follows_status_changes() {
    let s = store(&[]);
    let sync = MemberSetSync::new(Arc::clone(&s));
    sync.apply([m("x", &[("status", "+H")])]).unwrap();
    assert!(flags(&s, "x").contains(StatusFlags::HOT_STANDBY));
    s.snapshot().members()[0]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    let report = sync
        .apply([m("x", &[("loadfactor", "2"), ("status", "+I")])])
        .unwrap();
    assert_eq!(report.updated, 1);
    let f = flags(&s, "x");
    assert!(f.contains(StatusFlags::IGNORE_ERRORS), "{f:?}");
    assert!(!f.contains(StatusFlags::HOT_STANDBY), "{f:?}");
    assert!(
        f.contains(StatusFlags::DISABLED),
        "the operator's flag stays: {f:?}"
    );
    assert_eq!(s.snapshot().members()[0].lbf(), 200);
    // An operator's edit of the member stays until the source changes it.
    let id = s.snapshot().members()[0].id();
    s.update_member(id, |p| p.set("loadfactor", "7"))
        .unwrap()
        .unwrap();
    let report = sync
        .apply([m("x", &[("loadfactor", "2"), ("status", "+I")])])
        .unwrap();
    assert_eq!(report.unchanged, 1);
    assert_eq!(s.snapshot().members()[0].lbf(), 700);
}

#[tokio::test(start_paused = true)]
async fn a_member_removed_by_the_manager_is_added_again_by_the_source() {
    let s = store(&[]);
    let sync = MemberSetSync::new(Arc::clone(&s));
    sync.apply([m("x", &[])]).unwrap();
    let id = s.snapshot().members()[0].id();
    s.remove_member(id).unwrap();
    let report = sync.apply([m("x", &[])]).unwrap();
    assert_eq!(report.added, 1);
    assert_ne!(s.snapshot().members()[0].id(), id);
}

#[tokio::test(start_paused = true)]
async fn following_a_stream_waits_for_the_drains_after_its_end() {
    let s = store(&[]);
    let sets = futures_util::stream::iter([
        Ok::<_, std::io::Error>(vec![m("x", &[]), m("y", &[])]),
        Err(std::io::Error::other("flaky")),
        Ok(vec![m("y", &[])]),
    ]);
    let follow = MemberSetSync::new(Arc::clone(&s))
        .with_drain(Duration::from_secs(5))
        .follow(sets);
    let handle = follow.handle();
    assert!(format!("{follow:?}").contains("FollowSets"));
    let start = Instant::now();
    follow.await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(hosts(&s), ["y"]);
    assert_eq!((handle.errors(), handle.source_ended()), (1, true));
    assert!(format!("{handle:?}").contains("source_ended: true"));
}

#[tokio::test(start_paused = true)]
async fn an_endless_ready_source_yields_to_other_tasks() {
    let s = store(&[]);
    let sets = futures_util::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![m("x", &[])]));
    let (handle, task) = MemberSetSync::new(Arc::clone(&s)).follow(sets).spawn();
    // This task gets to run although the source is always ready.
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert!(handle.applied() >= u64::from(super::stream::BUDGET));
    task.abort();
    assert_eq!(hosts(&s), ["x"]);
}
