//! Unit tests of slow start, outlier ejection and the panic threshold (beyond Apache).
#![cfg(not(loom))]

use std::time::{Duration, Instant};

use crate::outlier::EjectReason;
use crate::tests::{member, store};
use crate::{BalancerStore, LbMethodKind, OutlierParams, PickError, PickRequest, StatusFlags};

#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn name_of(url: &str) -> char {
    url.chars().last().unwrap().to_ascii_uppercase()
}

fn picks(s: &BalancerStore, n: usize, now: Instant) -> String {
    (0..n)
        .map(|_| match s.pick(&PickRequest::new(), now) {
            Ok(p) => name_of(p.member().url()),
            Err(_) => '-',
        })
        .collect()
}

fn count(all: &str, c: char) -> usize {
    all.chars().filter(|&x| x == c).count()
}

fn outlier() -> OutlierParams {
    let mut o = OutlierParams::OFF;
    o.consecutive_5xx = Some(3);
    o.window = secs(10);
    o.min_requests = 4;
    o.eject_time = secs(30);
    o.max_eject_time = secs(100);
    o.max_ejected_percent = 50;
    o
}

fn four(params: &[(&str, &str)], now: Instant) -> BalancerStore {
    store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('c', &[]),
            member('d', &[]),
        ],
        params,
        now,
    )
}

// ===== ejection =====

#[test]
fn consecutive_failures_eject_and_a_success_ends_the_run() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    let a = snap.members()[0].state();
    let o = outlier();
    assert!(a.note_outcome(true, &o, t0).is_none());
    assert!(a.note_outcome(true, &o, t0).is_none());
    assert!(
        a.note_outcome(false, &o, t0).is_none(),
        "a success ends the run"
    );
    assert!(a.note_outcome(true, &o, t0).is_none());
    assert!(a.note_outcome(true, &o, t0).is_none());
    let e = a
        .note_outcome(true, &o, t0 + ms(1))
        .expect("three in a row");
    assert_eq!(e.reason, EjectReason::Consecutive(3));
    assert_eq!(e.duration, secs(30));
    assert_eq!(e.streak, 1);
    assert_eq!(a.ejections(), 1);
    assert_eq!(a.ejected_until(), Some(t0 + ms(1) + secs(30)));
    assert!(a.flags().contains(StatusFlags::EJECTED));
    assert_eq!((s.ejected(), snap.ejected()), (1, 1));
    // Already ejected: answers still in flight eject nothing more.
    for _ in 0..5 {
        assert!(a.note_outcome(true, &o, t0 + ms(2)).is_none());
    }
    assert_eq!(a.ejections(), 1);
    assert_eq!(s.ejected(), 1);
    // Not picked while ejected.
    assert!(!picks(&s, 12, t0 + secs(1)).contains('A'));
}

#[test]
fn no_rule_no_counting() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    let a = snap.members()[0].state();
    for _ in 0..10 {
        assert!(a.note_outcome(true, &OutlierParams::OFF, t0).is_none());
    }
    assert_eq!(
        a.outlier.consecutive.load(crate::sync::Ordering::Relaxed),
        0
    );
    assert_eq!(a.outlier.window.load(crate::sync::Ordering::Relaxed), 0);
    assert_eq!(
        a.outlier.window_start.load(crate::sync::Ordering::Relaxed),
        0
    );
}

#[test]
fn success_rate_is_judged_when_the_window_ends() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    let a = snap.members()[0].state();
    let mut o = outlier();
    o.consecutive_5xx = None;
    o.success_rate = Some(80);
    // 2 failures of 6 (67 %): below 80 %, but only judged once the window is over.
    for failed in [false, true, true, false] {
        assert!(a.note_outcome(failed, &o, t0).is_none());
    }
    assert!(
        a.note_outcome(false, &o, t0 + secs(10) - Duration::from_nanos(1))
            .is_none(),
        "the window is not over"
    );
    let e = a
        .note_outcome(false, &o, t0 + secs(10))
        .expect("67 % < 80 %");
    assert_eq!(
        e.reason,
        EjectReason::SuccessRate {
            answers: 6,
            failures: 2
        }
    );
    assert_eq!(a.ejected_until(), Some(t0 + secs(40)));
    // An ejection restarts the counting.
    assert_eq!(a.outlier.window.load(crate::sync::Ordering::Relaxed), 0);
    assert_eq!(
        a.outlier.window_start.load(crate::sync::Ordering::Relaxed),
        0
    );
}

#[test]
fn success_rate_needs_min_requests_and_a_low_rate() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    let (a, b) = (snap.members()[0].state(), snap.members()[1].state());
    let mut o = outlier();
    o.consecutive_5xx = None;
    o.success_rate = Some(80);
    // a: 2 failures of 3 answers: too few (min 4).
    for failed in [true, false] {
        a.note_outcome(failed, &o, t0);
    }
    assert!(a.note_outcome(true, &o, t0 + secs(10)).is_none());
    // The next window starts at the end of the last: it counts afresh.
    for _ in 0..4 {
        assert!(a.note_outcome(false, &o, t0 + secs(11)).is_none());
    }
    assert!(
        a.note_outcome(false, &o, t0 + secs(20)).is_none(),
        "all good"
    );
    // b: 4 of 5 good is 80 %, not below.
    for failed in [false, false, true, false] {
        b.note_outcome(failed, &o, t0);
    }
    assert!(b.note_outcome(false, &o, t0 + secs(10)).is_none());
    assert_eq!(s.ejected(), 0);
}

#[test]
fn ejections_in_a_row_grow_and_decay() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    let m = &snap.members()[0];
    let a = m.state();
    let o = outlier();
    let eject = |at: Instant| {
        let mut last = None;
        for _ in 0..3 {
            last = a.note_outcome(true, &o, at);
        }
        last.expect("ejected")
    };
    assert_eq!(eject(t0).duration, secs(30));
    assert!(m.try_recover(t0 + secs(30)), "lifted at its end");
    assert_eq!(eject(t0 + secs(31)).duration, secs(60), "second in a row");
    assert!(m.try_recover(t0 + secs(91)));
    assert_eq!(eject(t0 + secs(92)).duration, secs(90));
    assert!(m.try_recover(t0 + secs(182)));
    assert_eq!(eject(t0 + secs(183)).duration, secs(100), "capped");
    assert_eq!(a.outlier.streak.load(crate::sync::Ordering::Relaxed), 4);
    assert!(m.try_recover(t0 + secs(283)));
    // Back and behaving: one less in the multiplier per window in balancing.
    let back = t0 + secs(283);
    a.note_outcome(false, &o, back);
    a.note_outcome(false, &o, back + secs(10));
    assert_eq!(a.outlier.streak.load(crate::sync::Ordering::Relaxed), 3);
    a.note_outcome(false, &o, back + secs(30));
    assert_eq!(a.outlier.streak.load(crate::sync::Ordering::Relaxed), 1);
    a.note_outcome(false, &o, back + secs(100));
    assert_eq!(a.outlier.streak.load(crate::sync::Ordering::Relaxed), 0);
    assert_eq!(eject(back + secs(101)).duration, secs(30), "forgiven");
    assert_eq!(a.ejections(), 5);
}

/// A member removed while its requests are in flight: their failures, judged after the
/// removal, must not eject it (nothing would ever lift it) and so hold a slot under
/// `ejectmax` for good.
#[test]
fn a_removed_member_takes_no_ejection_slot() {
    let t0 = t0();
    let s = four(&[], t0);
    let o = outlier();
    let gone = s.snapshot().members()[0].clone(); // held by a request in flight
    s.remove_member(gone.id()).unwrap();
    assert!((0..3).all(|_| gone.state().note_outcome(true, &o, t0).is_none()));
    assert!(!gone.flags().contains(StatusFlags::EJECTED));
    assert_eq!(s.ejected(), 0);
    // 50 % of the 3 left is 1: a remaining member that fails is ejected.
    let snap = s.snapshot();
    let b = snap.members()[0].state();
    assert_eq!(
        (0..3).filter_map(|_| b.note_outcome(true, &o, t0)).count(),
        1
    );
    assert_eq!(s.ejected(), 1);
}

#[test]
fn at_most_ejectmax_members_at_once() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    let o = outlier();
    let fail3 = |i: usize| {
        let st = snap.members()[i].state();
        (0..3).filter_map(|_| st.note_outcome(true, &o, t0)).count()
    };
    assert_eq!(fail3(0), 1);
    assert_eq!(fail3(1), 1);
    assert_eq!(fail3(2), 0, "50 % of 4 are out already");
    assert_eq!((s.ejected(), snap.ejected()), (2, 2));
    assert!(!snap.members()[2].flags().contains(StatusFlags::EJECTED));
    // The manager lifts one early (w_status_J=0): the count follows, a slot is free.
    let before = snap.members()[0].state().remove_flags(StatusFlags::EJECTED);
    assert!(before.contains(StatusFlags::EJECTED));
    assert_eq!(s.ejected(), 1);
    assert!(snap.members()[0].is_usable());
    // Clearing another flag, or J again, releases nothing.
    snap.members()[0]
        .state()
        .remove_flags(StatusFlags::EJECTED | StatusFlags::DISABLED);
    snap.members()[1]
        .state()
        .remove_flags(StatusFlags::DISABLED);
    assert_eq!(s.ejected(), 1);
    assert_eq!(fail3(2), 1);
    // J is never set by hand.
    snap.members()[3]
        .state()
        .insert_flags(StatusFlags::EJECTED | StatusFlags::DRAIN);
    assert_eq!(snap.members()[3].flags(), StatusFlags::DRAIN);
    assert_eq!(s.ejected(), 2);
}

#[test]
fn the_limit_follows_the_member_count() {
    let t0 = t0();
    let s = store(vec![member('a', &[]), member('b', &[])], &[], t0);
    let o = outlier();
    let eject = |s: &BalancerStore, i: usize| {
        let snap = s.snapshot();
        let st = snap.members()[i].state();
        (0..3).filter_map(|_| st.note_outcome(true, &o, t0)).count()
    };
    assert_eq!(eject(&s, 0), 1);
    assert_eq!(eject(&s, 1), 0, "1 of 2");
    s.add_member(member('c', &[])).unwrap();
    s.add_member(member('d', &[])).unwrap();
    assert_eq!(eject(&s, 1), 1, "2 of 4");
    // An ejected member removed frees its slot.
    let a = s.snapshot().members()[0].id();
    s.remove_member(a).unwrap();
    assert_eq!(s.ejected(), 1);
}

#[test]
fn an_ejection_ends_at_its_time_and_ramps() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[("slowstart", "100")]), member('b', &[])],
        &[],
        t0,
    );
    let snap = s.snapshot();
    let m = &snap.members()[0];
    let o = outlier();
    for _ in 0..3 {
        m.state().note_outcome(true, &o, t0);
    }
    let until = t0 + secs(30);
    assert_eq!(
        m.state().ejection_deadline_nanos(),
        Some(secs(30).as_nanos() as u64 - 1)
    );
    assert!(!m.try_recover(until - Duration::from_nanos(1)));
    assert!(m.flags().contains(StatusFlags::EJECTED));
    assert_eq!(s.ejected(), 1);
    assert!(m.try_recover(until));
    assert_eq!(s.ejected(), 0);
    assert_eq!(m.state().ejected_until(), None);
    assert_eq!(m.state().ejection_deadline_nanos(), None);
    assert_eq!(m.state().usable_since(), Some(until));
    assert_eq!(m.slow_start_share(until + secs(10)), Some(0.1));
    assert!(!m.state().lift_ejection(until), "once");
    // A member also in error stays out for its error, but its ejection ends.
    for _ in 0..3 {
        m.state().note_outcome(true, &o, until);
    }
    m.mark_error(until);
    let later = until + secs(100);
    assert!(m.state().lift_ejection(later));
    assert!(!m.is_usable());
    assert_eq!(
        m.state().usable_since(),
        Some(until),
        "not usable yet: no ramp"
    );
}

// ===== slow start =====

#[test]
fn transitions_to_usable_start_the_ramp() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[("slowstart", "10")]), member('b', &[])],
        &[],
        t0,
    );
    let snap = s.snapshot();
    let m = &snap.members()[0];
    let st = m.state();
    let pending = |st: &crate::MemberState| {
        st.usable_since.load(crate::sync::Ordering::Relaxed) == super::member::PENDING
    };
    assert!(!pending(st));
    // usable → unusable → still unusable: no ramp yet.
    st.insert_flags(StatusFlags::DISABLED);
    st.insert_flags(StatusFlags::STOPPED);
    st.remove_flags(StatusFlags::DISABLED);
    assert!(!pending(st));
    assert_eq!(m.slow_start_share(t0), None);
    st.remove_flags(StatusFlags::STOPPED);
    assert!(pending(st), "unusable → usable");
    assert_eq!(st.usable_since(), None);
    assert_eq!(
        m.slow_start_share(t0 + secs(1)),
        Some(0.001),
        "stamped when weighed"
    );
    assert_eq!(st.usable_since(), Some(t0 + secs(1)));
    assert_eq!(m.slow_start_share(t0 + secs(6)), Some(0.5));
    assert_eq!(m.slow_start_share(t0 + secs(11)), None);
    // A flag that keeps it usable starts nothing.
    st.insert_flags(StatusFlags::DRAIN);
    st.remove_flags(StatusFlags::DRAIN);
    assert!(!pending(st));
    // clear_error (a passing health check, a forced recovery) starts the ramp too.
    st.insert_flags(StatusFlags::IN_ERROR);
    st.clear_error();
    assert!(pending(st));
    // try_recover stamps its own time.
    m.mark_error(t0 + secs(20));
    assert!(m.try_recover(t0 + secs(100)));
    assert_eq!(st.usable_since(), Some(t0 + secs(100)));
    // Not when it stays unusable.
    st.insert_flags(StatusFlags::HC_FAILED);
    m.mark_error(t0 + secs(200));
    assert!(!m.try_recover(t0 + secs(300)));
    assert_eq!(st.usable_since(), Some(t0 + secs(100)));
}

#[test]
fn effective_weights() {
    use crate::member::scale;
    assert_eq!(scale(100, 1000), 100);
    assert_eq!(scale(100, 1001), 100);
    assert_eq!(scale(100, 999), 99);
    assert_eq!(scale(100, 500), 50);
    assert_eq!(scale(100, 1), 1, "at least 1");
    assert_eq!(scale(3000, 1), 3);
    assert_eq!(scale(0, 1000), 0, "a full weight is the weight");
    let t0 = t0();
    let s = store(
        vec![member('a', &[("loadfactor", "4"), ("slowstart", "10")])],
        &[],
        t0,
    );
    s.add_member(member('b', &[("loadfactor", "4"), ("slowstart", "10")]))
        .unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.members()[0].effective_lbf(t0), 400, "no ramp at start");
    let b = &snap.members()[1];
    assert_eq!(b.effective_lbf(t0), 1);
    assert_eq!(b.effective_lbf(t0 + secs(5)), 200);
    assert_eq!(b.effective_lbf(t0 + secs(10)), 400);
}

#[test]
fn the_cycle_waits_for_ramps_to_end() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[]), member('b', &[("slowstart", "10")])],
        &[],
        t0,
    );
    let _ = picks(&s, 100, t0);
    assert!(s.snapshot().fast_path_active());
    // B disabled and back: its ramp ends the cycle, which is not rebuilt while it ramps.
    let snap = s.snapshot();
    snap.members()[1]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    snap.members()[1]
        .state()
        .remove_flags(StatusFlags::DISABLED);
    let _ = picks(&s, 1, t0);
    let at = t0 + secs(5);
    let all = picks(&s, 1000, at);
    assert!(!s.snapshot().fast_path_active());
    // Half its weight at the half of its ramp (a: 100, b: 50).
    assert_eq!(count(&all, 'B'), 333, "{all}");
    let all = picks(&s, 1000, t0 + secs(10));
    assert!(
        s.snapshot().fast_path_active(),
        "back once the ramp is over"
    );
    assert!((499..=501).contains(&count(&all, 'B')), "{all}");
}

#[test]
fn bybusyness_ties_and_bytraffic_weigh_the_ramp() {
    let t0 = t0();
    for method in ["bybusyness", "bytraffic"] {
        let s = store(vec![member('a', &[])], &[("lbmethod", method)], t0);
        s.add_member(member('b', &[("slowstart", "10")])).unwrap();
        let _ = picks(&s, 1, t0);
        let at = t0 + secs(2);
        let mut b = 0;
        for _ in 0..1200 {
            let p = s.pick(&PickRequest::new(), at).unwrap();
            p.member().state().add_transferred(1000);
            b += usize::from(name_of(p.member().url()) == 'B');
        }
        // b weighs 20 of 120.
        assert!((195..=205).contains(&b), "{method}: {b}");
    }
}

#[test]
fn heartbeat_weighs_the_ramp_on_ready() {
    let t0 = t0();
    let s = store(vec![member('a', &[])], &[("lbmethod", "heartbeat")], t0);
    s.add_member(member('b', &[("slowstart", "10")])).unwrap();
    let snap = s.snapshot();
    snap.members()[0].state().report_load(100, 0, t0);
    snap.members()[1].state().report_load(100, 0, t0);
    let _ = picks(&s, 1, t0);
    let all = picks(&s, 1100, t0 + secs(1));
    assert_eq!(count(&all, 'B'), 100, "10 of 110");
}

#[test]
fn sticky_accounting_weighs_the_ramp() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[("route", "a")])],
        &[("stickysession", "S")],
        t0,
    );
    s.add_member(member('b', &[("route", "b"), ("slowstart", "10")]))
        .unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.members()[1].effective_lbf(t0), 1, "its ramp starts");
    let at = t0 + secs(5);
    let _ = s.pick(&PickRequest::new().with_route("a"), at).unwrap();
    assert_eq!(snap.members()[1].state().lbstatus(), 50, "half its weight");
    assert_eq!(snap.members()[0].state().lbstatus(), -50);
}

// ===== panic threshold =====

#[test]
fn panic_below_the_threshold_only() {
    let t0 = t0();
    let s = four(&[("panic", "50")], t0);
    let snap = s.snapshot();
    let m = |i: usize| snap.members()[i].state();
    m(0).insert_flags(StatusFlags::HC_FAILED);
    m(1).insert_flags(StatusFlags::HC_FAILED);
    assert!(!snap.in_panic(t0), "2 of 4 is not below 50 %");
    assert!(!picks(&s, 8, t0).contains(['A', 'B']));
    assert_eq!(s.panics(), 0);
    m(2).insert_flags(StatusFlags::HC_FAILED);
    assert!(snap.in_panic(t0), "1 of 4");
    assert_eq!(picks(&s, 8, t0), "ABCDABCD");
    assert_eq!((s.panics(), snap.panics()), (8, 8));
    assert!(!s.snapshot().fast_path_active(), "a cycle models no panic");
    // Long enough for a cycle to be built, if one were: none models panic.
    let all = picks(&s, 400, t0);
    assert!(!s.snapshot().fast_path_active());
    assert_eq!(count(&all, 'A'), 100);
    assert_eq!(s.panics(), 408);
}

#[test]
fn panic_leaves_disabled_stopped_and_draining_members_alone() {
    let t0 = t0();
    let s = store(
        vec![
            member('a', &[("status", "D")]),
            member('b', &[("status", "S")]),
            member('c', &[("status", "N")]),
            member('d', &[]),
            member('e', &[]),
        ],
        &[("panic", "60")],
        t0,
    );
    let snap = s.snapshot();
    snap.members()[3].mark_error(t0);
    // Eligible: d and e; e alone is usable: 50 % < 60 %.
    assert!(snap.in_panic(t0));
    assert_eq!(picks(&s, 4, t0), "DEDE");
    // At 50 % the threshold is not reached.
    s.update_params(|p| p.set("panic", "50")).unwrap();
    assert!(!s.snapshot().in_panic(t0));
    assert_eq!(picks(&s, 4, t0), "EEEE");
}

#[test]
fn panic_counts_members_back_from_error_or_ejection() {
    let t0 = t0();
    let s = store(
        vec![
            member('a', &[("retry", "10")]),
            member('b', &[]),
            member('c', &[]),
        ],
        &[("panic", "100")],
        t0,
    );
    let snap = s.snapshot();
    snap.members()[0].mark_error(t0);
    assert!(snap.in_panic(t0 + secs(10)), "its window is not over");
    assert!(!snap.in_panic(t0 + secs(11)), "it would be retried");
    assert!(snap.members()[0].try_recover(t0 + secs(11)));
    let o = outlier();
    for _ in 0..3 {
        snap.members()[1].state().note_outcome(true, &o, t0);
    }
    assert!(snap.in_panic(t0 + secs(30) - Duration::from_nanos(1)));
    assert!(!snap.in_panic(t0 + secs(30)), "its ejection would end");
    // An initial +E (no error time) may be retried at once.
    s.update_params(|p| p.panic_threshold = Some(34));
    let s2 = store(
        vec![member('a', &[]), member('b', &[]), member('c', &[])],
        &[("panic", "100")],
        t0,
    );
    s2.snapshot().members()[0]
        .state()
        .insert_flags(StatusFlags::IN_ERROR);
    assert!(!s2.snapshot().in_panic(t0));
    s2.snapshot().members()[0]
        .state()
        .insert_flags(StatusFlags::STOPPED);
    assert!(!s2.snapshot().in_panic(t0), "stopped: not counted");
}

/// Every member in error within its retry window: with `forcerecovery=On` (the default)
/// the pick clears their errors first and balances without panic, so `in_panic` (the
/// manager's and the metrics' "in panic") must say no; with `forcerecovery=Off` the pick
/// is a panic pick and `in_panic` says so.
#[test]
fn in_panic_knows_forced_recovery() {
    let t0 = t0();
    for (force, panic) in [("on", false), ("off", true)] {
        let s = four(&[("panic", "50"), ("forcerecovery", force)], t0);
        let snap = s.snapshot();
        for m in snap.members() {
            m.mark_error(t0);
        }
        let now = t0 + secs(1);
        assert_eq!(snap.in_panic(now), panic, "forcerecovery={force}");
        let before = s.panics();
        assert!(s.pick(&PickRequest::new(), now).is_ok());
        assert_eq!(
            s.panics() > before,
            panic,
            "forcerecovery={force}: the pick"
        );
    }
}

#[test]
fn panic_is_the_last_resort_across_lbsets() {
    let t0 = t0();
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('c', &[("lbset", "1")]),
        ],
        &[("panic", "50"), ("forcerecovery", "off")],
        t0,
    );
    let snap = s.snapshot();
    for i in 0..2 {
        snap.members()[i]
            .state()
            .insert_flags(StatusFlags::HC_FAILED);
    }
    // lbset 0 has nothing usable: lbset 1 serves, as Apache's, without panic.
    assert!(!snap.in_panic(t0));
    assert_eq!(picks(&s, 3, t0), "CCC");
    assert_eq!(s.panics(), 0);
    // Nothing usable anywhere: the first lbset with members kept out by E/C/J.
    snap.members()[2].mark_error(t0);
    assert!(snap.in_panic(t0));
    assert_eq!(picks(&s, 4, t0), "ABAB");
    assert_eq!(s.panics(), 4);
    // Without a threshold: Apache's 503.
    s.update_params(|p| p.panic_threshold = None);
    assert!(!s.snapshot().in_panic(t0));
    assert_eq!(
        s.pick(&PickRequest::new(), t0).unwrap_err(),
        PickError::AllUnusable
    );
    // Only disabled members: no panic either.
    let d = store(
        vec![member('a', &[("status", "D")])],
        &[("panic", "50")],
        t0,
    );
    assert!(!d.snapshot().in_panic(t0));
    assert!(d.pick(&PickRequest::new(), t0).is_err());
}

#[test]
fn panic_with_spares_and_standbys() {
    let t0 = t0();
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('r', &[("status", "+R")]),
            member('h', &[("status", "+H")]),
        ],
        &[("panic", "100"), ("forcerecovery", "off")],
        t0,
    );
    let snap = s.snapshot();
    snap.members()[0]
        .state()
        .insert_flags(StatusFlags::HC_FAILED);
    // 1 of 2 regular usable: panic; the spare still stands in for the failed one.
    assert!(snap.in_panic(t0));
    let all = picks(&s, 6, t0);
    assert!(
        all.contains('A') && all.contains('B') && all.contains('R'),
        "{all}"
    );
    assert!(!all.contains('H'));
    // Both regular down, the spare up: Apache's spare serves, in panic.
    snap.members()[1]
        .state()
        .insert_flags(StatusFlags::HC_FAILED);
    assert!(snap.in_panic(t0));
    // A failed spare is not a panic candidate.
    snap.members()[2]
        .state()
        .insert_flags(StatusFlags::HC_FAILED);
    // Only the standby is usable: it serves, no panic.
    assert!(!snap.in_panic(t0));
    assert_eq!(picks(&s, 3, t0), "HHH");
    let before = s.panics();
    snap.members()[3]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    assert!(snap.in_panic(t0), "nothing usable: the last resort");
    assert_eq!(picks(&s, 2, t0), "AB");
    assert_eq!(s.panics(), before + 2);
}

#[test]
fn no_threshold_no_panic() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    for i in 0..3 {
        snap.members()[i]
            .state()
            .insert_flags(StatusFlags::HC_FAILED);
    }
    assert!(!snap.in_panic(t0));
    assert_eq!(picks(&s, 3, t0), "DDD");
    assert_eq!(s.panics(), 0);
}

#[test]
fn the_cycle_ends_when_an_ejection_does() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[]), member('b', &[]), member('c', &[])],
        &[],
        t0,
    );
    let snap = s.snapshot();
    let o = outlier();
    for _ in 0..3 {
        snap.members()[0].state().note_outcome(true, &o, t0);
    }
    let all = picks(&s, 100, t0 + secs(1));
    assert!(!all.contains('A'));
    assert!(s.snapshot().fast_path_active(), "b and c in a cycle");
    let all = picks(&s, 3, t0 + secs(30) - Duration::from_nanos(1));
    assert!(!all.contains('A'));
    assert!(s.snapshot().fast_path_active());
    let all = picks(&s, 3, t0 + secs(30));
    assert!(all.contains('A'), "back at its time: {all}");
    assert_eq!(s.ejected(), 0);
}

#[test]
fn a_custom_method_sees_panic_candidates() {
    let t0 = t0();
    let s = four(&[("panic", "50")], t0);
    let snap = s.snapshot();
    for i in 0..3 {
        snap.members()[i]
            .state()
            .insert_flags(StatusFlags::HC_FAILED);
    }
    #[derive(Debug)]
    struct Probe;
    impl crate::LbMethod for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn choose<'a>(
            &self,
            candidates: crate::lbmethod::Candidates<'a>,
        ) -> Option<&'a crate::Member> {
            assert!(candidates.in_panic());
            candidates.last()
        }
    }
    s.update_params(|p| p.lb_method = LbMethodKind::Custom(std::sync::Arc::new(Probe)));
    assert_eq!(picks(&s, 2, t0), "DD");
    #[derive(Debug)]
    struct Calm;
    impl crate::LbMethod for Calm {
        fn name(&self) -> &str {
            "calm"
        }
        fn choose<'a>(
            &self,
            candidates: crate::lbmethod::Candidates<'a>,
        ) -> Option<&'a crate::Member> {
            assert!(!candidates.in_panic());
            candidates.last()
        }
    }
    snap.members()[0]
        .state()
        .remove_flags(StatusFlags::HC_FAILED);
    s.update_params(|p| p.lb_method = LbMethodKind::Custom(std::sync::Arc::new(Calm)));
    assert_eq!(picks(&s, 2, t0), "DD", "2 of 4: no panic");
}

#[test]
fn a_failed_spare_stays_out_in_panic() {
    let t0 = t0();
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('r', &[("status", "+R")]),
        ],
        &[("panic", "100")],
        t0,
    );
    let snap = s.snapshot();
    snap.members()[0]
        .state()
        .insert_flags(StatusFlags::HC_FAILED);
    snap.members()[2]
        .state()
        .insert_flags(StatusFlags::HC_FAILED);
    assert!(snap.in_panic(t0));
    assert_eq!(picks(&s, 6, t0), "ABABAB");
}

#[test]
fn a_draining_member_counts_for_spares_when_judging_panic() {
    let t0 = t0();
    // lbset 0: b drains, the spare r stands in for it; lbset 1: c failed.
    let s = store(
        vec![
            member('b', &[("status", "N")]),
            member('r', &[("status", "+R")]),
            member('c', &[("lbset", "1")]),
        ],
        &[("panic", "50")],
        t0,
    );
    let snap = s.snapshot();
    snap.members()[2]
        .state()
        .insert_flags(StatusFlags::HC_FAILED);
    assert!(!snap.in_panic(t0), "lbset 0 serves through its spare");
    assert_eq!(picks(&s, 2, t0), "RR");
}

#[test]
fn the_cycle_ends_when_an_ejection_does_even_if_the_member_stays_out() {
    let t0 = t0();
    let s = store(
        vec![
            member('a', &[("retry", "60")]),
            member('b', &[]),
            member('c', &[]),
        ],
        &[],
        t0,
    );
    let snap = s.snapshot();
    let o = outlier();
    for _ in 0..3 {
        snap.members()[0].state().note_outcome(true, &o, t0);
    }
    snap.members()[0].mark_error(t0);
    let _ = picks(&s, 100, t0 + secs(1));
    assert!(s.snapshot().fast_path_active());
    assert_eq!(s.ejected(), 1);
    let _ = picks(&s, 2, t0 + secs(30));
    assert_eq!(s.ejected(), 0, "the scan lifted it at its time");
    assert!(!snap.members()[0].is_usable(), "still in error");
}

#[test]
fn an_ejection_past_the_clock_ends_at_the_last_instant() {
    let t0 = t0();
    let s = four(&[], t0);
    let snap = s.snapshot();
    let mut o = outlier();
    o.eject_time = Duration::MAX;
    o.max_eject_time = Duration::MAX;
    let a = snap.members()[0].state();
    for _ in 0..3 {
        a.note_outcome(true, &o, t0);
    }
    assert_eq!(
        a.outlier.until.load(crate::sync::Ordering::Relaxed),
        u64::MAX - 1
    );
    assert_eq!(a.ejection_deadline_nanos(), Some(u64::MAX - 3));
}
