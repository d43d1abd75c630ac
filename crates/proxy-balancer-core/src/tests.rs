//! Behaviour tests of the pick against Apache's observed results (APACHE-ALGORITHMS.md).
// Under loom only the loom models run.
#![cfg(not(loom))]

use std::time::{Duration, Instant};

use crate::{
    BalancerParams, BalancerStore, LbMethodKind, MemberId, MemberParams, PickError, PickRequest,
    StatusFlags,
};

/// Some instant to start from: the code under test takes `now` as an argument and never
/// reads the clock itself.
#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn t0() -> Instant {
    Instant::now()
}

/// A member named by a letter, with Apache-style `key=value` parameters.
pub(crate) fn member(name: char, params: &[(&str, &str)]) -> MemberParams {
    let mut m = MemberParams::new(&format!("http://{name}")).unwrap();
    for (k, v) in params {
        m.set(k, v).unwrap();
    }
    m
}

pub(crate) fn store(
    members: Vec<MemberParams>,
    params: &[(&str, &str)],
    now: Instant,
) -> BalancerStore {
    let mut b = BalancerParams::new("test");
    for (k, v) in params {
        b.set(k, v).unwrap();
    }
    BalancerStore::new(b, members, now).unwrap()
}

fn name_of(url: &str) -> char {
    url.chars().last().unwrap().to_ascii_uppercase()
}

/// The letters of `n` picks without route.
fn picks(s: &BalancerStore, n: usize, now: Instant) -> String {
    (0..n)
        .map(|_| match s.pick(&PickRequest::new(), now) {
            Ok(p) => {
                let snapshot = s.snapshot();
                assert_eq!(snapshot.members()[p.position()].id(), p.member().id());
                name_of(p.member().url())
            }
            Err(_) => '-',
        })
        .collect()
}

fn lf(v: &str) -> [(&str, &str); 1] {
    [("loadfactor", v)]
}

#[test]
fn byrequests_golden_1_2_3() {
    let now = t0();
    let s = store(
        vec![
            member('a', &lf("1")),
            member('b', &lf("2")),
            member('c', &lf("3")),
        ],
        &[],
        now,
    );
    assert_eq!(picks(&s, 12, now), "CBACBCCBACBC");
    let all = picks(&s, 600, now);
    let count = |c| all.chars().filter(|&x| x == c).count();
    assert_eq!((count('A'), count('B'), count('C')), (100, 200, 300));
    s.settle();
    for m in s.snapshot().members() {
        assert_eq!(
            m.state().lbstatus(),
            0,
            "a full cycle brings lbstatus back to 0"
        );
    }
}

#[test]
fn byrequests_golden_others() {
    let now = t0();
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('c', &[]),
            member('d', &lf("2")),
        ],
        &[],
        now,
    );
    assert_eq!(picks(&s, 10, now), "DABCDDABCD");

    let s = store(
        vec![member('a', &[]), member('b', &[]), member('c', &[])],
        &[],
        now,
    );
    assert_eq!(picks(&s, 6, now), "ABCABC");

    let q = lf("25");
    let s = store(
        vec![
            member('a', &q),
            member('b', &[("loadfactor", "25"), ("status", "D")]),
            member('c', &q),
            member('d', &q),
        ],
        &[],
        now,
    );
    assert_eq!(picks(&s, 9, now), "ACDACDACD");

    let s = store(
        vec![member('a', &lf("1")), member('b', &lf("2.25"))],
        &[],
        now,
    );
    assert_eq!(picks(&s, 12, now), "BABBABBBABBA");
    let all = picks(&s, 130 * 4 - 12, now);
    let a = all.chars().filter(|&x| x == 'A').count() + 4;
    assert_eq!(a, 160, "40 per 130");
}

#[test]
fn bytraffic_golden() {
    let now = t0();
    let s = store(
        vec![
            member('d', &lf("1")),
            member('e', &lf("2")),
            member('f', &lf("3")),
        ],
        &[("lbmethod", "bytraffic")],
        now,
    );
    let mut order = String::new();
    for _ in 0..300 {
        let p = s.pick(&PickRequest::new(), now).unwrap();
        // A 190-byte request and a 1000-byte body (status line 15 bytes): the counts Apache
        // 2.4.71 would make for the observed run.
        p.member().state().add_transferred(190);
        p.member().state().add_read(1015);
        order.push(name_of(p.member().url()));
    }
    assert_eq!(&order[..12], "DEFFEFDEFFEF");
    let count = |c| order.chars().filter(|&x| x == c).count();
    assert_eq!((count('D'), count('E'), count('F')), (50, 100, 150));
}

#[test]
fn bytraffic_unequal_costs() {
    // Apache observed 234/59/7 for per-request costs 305, 1205 and 10205 bytes.
    let now = t0();
    let s = store(
        vec![member('a', &[]), member('b', &[]), member('c', &[])],
        &[("lbmethod", "bytraffic")],
        now,
    );
    let mut counts = [0; 3];
    for _ in 0..300 {
        let p = s.pick(&PickRequest::new(), now).unwrap();
        let i = (name_of(p.member().url()) as u8 - b'A') as usize;
        let cost = [305, 1205, 10205][i];
        p.member().state().add_transferred(190);
        p.member().state().add_read(cost - 190);
        counts[i] += 1;
    }
    assert_eq!(counts, [234, 59, 7]);
}

#[test]
fn bybusyness_least_busy_then_round() {
    let now = t0();
    let s = store(
        vec![member('a', &[]), member('b', &[]), member('c', &[])],
        &[("lbmethod", "bybusyness")],
        now,
    );
    // Sequential with nothing in flight: a round robin.
    assert_eq!(picks(&s, 6, now), "ABCABC");
    // Hold requests on A and B: C wins until it is as busy.
    let a = s.pick(&PickRequest::new(), now).unwrap();
    let b = s.pick(&PickRequest::new(), now).unwrap();
    assert_eq!(name_of(a.member().url()), 'A');
    assert_eq!(name_of(b.member().url()), 'B');
    let c = s.pick(&PickRequest::new(), now).unwrap();
    assert_eq!(name_of(c.member().url()), 'C');
    drop((a, b, c));
}

#[test]
fn bybusyness_no_burst_after_slow_member() {
    // the README's "Where we differ from Apache": Apache lets a member skipped while busy pile up credit and
    // then sends it a burst; here only tied members take part in the round.
    let now = t0();
    let s = store(
        vec![member('a', &[]), member('b', &[]), member('c', &[])],
        &[("lbmethod", "bybusyness")],
        now,
    );
    // C is slow: one request stays on it while 300 others go to A and B.
    let slow = loop {
        let p = s.pick(&PickRequest::new(), now).unwrap();
        if name_of(p.member().url()) == 'C' {
            break p;
        }
    };
    for _ in 0..300 {
        let p = s.pick(&PickRequest::new(), now).unwrap();
        assert_ne!(name_of(p.member().url()), 'C');
    }
    drop(slow);
    let after = picks(&s, 30, now);
    let longest_c_run = after.split(|c| c != 'C').map(str::len).max().unwrap_or(0);
    assert!(longest_c_run <= 1, "burst to the slow member: {after}");
    assert_eq!(after.chars().filter(|&c| c == 'C').count(), 10, "{after}");
}

#[test]
fn lbsets_lowest_first_and_standby_before_next_set() {
    // Observed: A0, B0, H0(+H), C1, D1; A and B down → H only; H down too → C and D.
    let now = t0();
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('h', &[("status", "+H")]),
            member('c', &[("lbset", "1")]),
            member('d', &[("lbset", "1")]),
        ],
        &[],
        now,
    );
    assert_eq!(picks(&s, 4, now), "ABAB");
    let snap = s.snapshot();
    let m = |i: usize| snap.members()[i].state();
    m(0).insert_flags(StatusFlags::DISABLED);
    m(1).insert_flags(StatusFlags::DISABLED);
    assert_eq!(picks(&s, 4, now), "HHHH");
    m(2).insert_flags(StatusFlags::STOPPED);
    assert_eq!(picks(&s, 4, now), "CDCD");
    // lbset order does not depend on config order
    let s = store(
        vec![
            member('c', &[("lbset", "2")]),
            member('a', &[("lbset", "1")]),
        ],
        &[],
        now,
    );
    assert_eq!(picks(&s, 3, now), "AAA");
}

#[test]
fn hot_spares_replace_one_for_one() {
    // Observed: A, B, R1(+R), R2(+R), H(+H).
    let now = t0();
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('1', &[("status", "+R")]),
            member('2', &[("status", "+R")]),
            member('h', &[("status", "+H")]),
        ],
        &[],
        now,
    );
    let snap = s.snapshot();
    let st = |i: usize| snap.members()[i].state();
    let set = |counts: &str| {
        let mut v: Vec<char> = counts.chars().collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().collect::<String>()
    };
    assert_eq!(set(&picks(&s, 8, now)), "AB");
    st(0).insert_flags(StatusFlags::DISABLED);
    assert_eq!(set(&picks(&s, 8, now)), "1B");
    st(1).insert_flags(StatusFlags::DISABLED);
    assert_eq!(set(&picks(&s, 8, now)), "12");
    st(2).insert_flags(StatusFlags::DISABLED);
    assert_eq!(set(&picks(&s, 8, now)), "2");
    st(3).insert_flags(StatusFlags::DISABLED);
    assert_eq!(set(&picks(&s, 8, now)), "H");
    st(4).insert_flags(StatusFlags::DISABLED);
    assert!(matches!(
        s.pick(&PickRequest::new(), now),
        Err(PickError::AllUnusable)
    ));
}

#[test]
fn drain_only_for_its_sticky_requests() {
    let now = t0();
    let s = store(
        vec![
            member('a', &[("route", "a"), ("status", "N")]),
            member('b', &[("route", "b")]),
        ],
        &[("stickysession", "ROUTEID")],
        now,
    );
    assert_eq!(picks(&s, 4, now), "BBBB");
    let p = s.pick(&PickRequest::new().with_route("a"), now).unwrap();
    assert_eq!(name_of(p.member().url()), 'A');
    assert!(p.is_sticky() && !p.route_changed());
}

#[test]
fn retry_window_and_rearm() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[("retry", "10")]), member('b', &[])],
        &[("forcerecovery", "Off")],
        t0,
    );
    let a = s.snapshot().members()[0].clone();
    a.mark_error(t0);
    assert_eq!(picks(&s, 3, t0 + Duration::from_secs(5)), "BBB");
    // Past the window: A is retried (E cleared) and used.
    let later = t0 + Duration::from_secs(11);
    assert!(picks(&s, 2, later).contains('A'));
    assert!(a.is_usable());
    assert_eq!(a.state().retries(), 1);
    // The retry failed: the window starts again.
    a.mark_error(later);
    assert_eq!(picks(&s, 3, later + Duration::from_secs(9)), "BBB");
    assert!(picks(&s, 2, later + Duration::from_secs(11)).contains('A'));
}

#[test]
fn the_retry_window_ends_to_the_nanosecond() {
    // Apache retries once `now > error_time + retry`: at exactly the end, not yet; one
    // nanosecond later, yes; through the plain pick's fast path and the scan alike.
    let start = t0();
    let error_at = start + Duration::from_millis(1500);
    let end = error_at + Duration::from_secs(10);
    let ns = Duration::from_nanos(1);
    for fast_path in [true, false] {
        let s = store(
            vec![member('a', &[("retry", "10")]), member('b', &[])],
            &[("forcerecovery", "Off")],
            start,
        );
        let a = s.snapshot().members()[0].clone();
        assert_eq!(a.state().error_time(), None);
        a.mark_error(error_at);
        assert_eq!(a.state().error_time(), Some(error_at));
        let route = if fast_path { None } else { Some("x") };
        let pick = |now| {
            let request = PickRequest::new();
            let request = match route {
                Some(r) => request.with_route(r),
                None => request,
            };
            name_of(s.pick(&request, now).unwrap().member().url())
        };
        // Enough picks for the fast path to engage (when the request allows it).
        for _ in 0..64 {
            assert_eq!(pick(end - ns), 'B');
        }
        assert_eq!((pick(end), pick(end)), ('B', 'B'), "fast path: {fast_path}");
        assert!(
            [pick(end + ns), pick(end + ns)].contains(&'A'),
            "fast path: {fast_path}"
        );
        assert!(a.is_usable());
    }
    // The member's own rule, directly.
    let s = store(vec![member('a', &[])], &[], start);
    let snap = s.snapshot();
    let state = snap.members()[0].state();
    state.mark_error(error_at);
    let retry = Duration::from_secs(10);
    assert!(!state.try_recover(retry, end));
    assert!(state.try_recover(retry, end + ns));
    assert!(format!("{state:?}").starts_with("MemberState"), "{state:?}");
}

#[test]
fn retry_zero_always_retries() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[("retry", "0")]), member('b', &[])],
        &[],
        t0,
    );
    let a = s.snapshot().members()[0].clone();
    a.mark_error(t0);
    assert!(picks(&s, 2, t0 + Duration::from_millis(1)).contains('A'));
}

#[test]
fn stopped_is_never_retried() {
    let t0 = t0();
    let s = store(
        vec![member('a', &[("status", "S")]), member('b', &[])],
        &[],
        t0,
    );
    let a = s.snapshot().members()[0].clone();
    a.mark_error(t0);
    assert_eq!(picks(&s, 4, t0 + Duration::from_secs(3600)), "BBBB");
}

#[test]
fn force_recovery_on_and_off() {
    let t0 = t0();
    let members = || {
        vec![
            member('a', &[("retry", "10")]),
            member('b', &[("retry", "10")]),
        ]
    };
    let on = store(members(), &[], t0);
    for m in on.snapshot().members() {
        m.mark_error(t0);
    }
    // Every member in error: forcerecovery=On clears them all, retry ignored.
    let p = on
        .pick(&PickRequest::new(), t0 + Duration::from_secs(1))
        .unwrap();
    assert_eq!(name_of(p.member().url()), 'A');
    assert!(on.snapshot().members().iter().all(|m| m.is_usable()));

    let off = store(members(), &[("forcerecovery", "Off")], t0);
    for m in off.snapshot().members() {
        m.mark_error(t0);
    }
    assert_eq!(
        off.pick(&PickRequest::new(), t0 + Duration::from_secs(1))
            .unwrap_err(),
        PickError::AllUnusable
    );
    assert!(off
        .pick(&PickRequest::new(), t0 + Duration::from_secs(11))
        .is_ok());

    // Disabled (not in error) members are not force-recovered.
    let dis = store(vec![member('a', &[("status", "D")])], &[], t0);
    assert_eq!(
        dis.pick(&PickRequest::new(), t0).unwrap_err(),
        PickError::AllUnusable
    );
    // One member without E stops the forcing.
    let mixed = store(members(), &[], t0);
    mixed.snapshot().members()[0].mark_error(t0);
    mixed.snapshot().members()[1]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    assert_eq!(
        mixed
            .pick(&PickRequest::new(), t0 + Duration::from_secs(1))
            .unwrap_err(),
        PickError::AllUnusable
    );
}

#[test]
fn sticky_routes_redirect_and_nofailover() {
    let now = t0();
    let members = || {
        vec![
            member('a', &[("route", "a"), ("redirect", "b")]),
            member('b', &[("route", "b")]),
            member('c', &[("route", "c")]),
        ]
    };
    let s = store(members(), &[("stickysession", "ROUTEID")], now);
    let snap = s.snapshot();
    for _ in 0..5 {
        let p = s.pick(&PickRequest::new().with_route("c"), now).unwrap();
        assert_eq!(name_of(p.member().url()), 'C');
        assert!(p.is_sticky() && !p.route_changed());
    }
    // Unknown route: balanced, route changed.
    let p = s.pick(&PickRequest::new().with_route("zz"), now).unwrap();
    assert!(!p.is_sticky() && p.route_changed());
    drop(p);
    // A disabled: its sticky requests follow redirect=b; plain requests are balanced.
    snap.members()[0]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    for _ in 0..3 {
        let p = s.pick(&PickRequest::new().with_route("a"), now).unwrap();
        assert_eq!(name_of(p.member().url()), 'B');
        assert!(p.is_sticky() && p.route_changed());
    }
    assert!(picks(&s, 6, now).contains('C'));
    // B down too: nofailover=Off balances to C.
    snap.members()[1]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    let p = s.pick(&PickRequest::new().with_route("b"), now).unwrap();
    assert_eq!(name_of(p.member().url()), 'C');
    assert!(!p.is_sticky() && p.route_changed());

    // nofailover=On: 503 for a known route whose member is unusable; unknown routes balance.
    let s = store(
        members(),
        &[("stickysession", "ROUTEID"), ("nofailover", "On")],
        now,
    );
    s.snapshot().members()[2]
        .state()
        .insert_flags(StatusFlags::HC_FAILED);
    let err = s
        .pick(&PickRequest::new().with_route("c"), now)
        .unwrap_err();
    assert_eq!(err, PickError::RouteUnusable { route: "c".into() });
    assert_eq!(err.apache_id(), "AH01167");
    assert!(s.pick(&PickRequest::new().with_route("nope"), now).is_ok());
}

#[test]
fn sticky_to_standby_with_same_route() {
    // Observed: A(+D, route a) plus H(+H, route a) with cookie .a gave H.
    let now = t0();
    let s = store(
        vec![
            member('a', &[("route", "a"), ("status", "D")]),
            member('b', &[("route", "b")]),
            member('h', &[("route", "a"), ("status", "+H")]),
        ],
        &[("stickysession", "ROUTEID")],
        now,
    );
    let p = s.pick(&PickRequest::new().with_route("a"), now).unwrap();
    assert_eq!(name_of(p.member().url()), 'H');
}

#[test]
fn sticky_accounting_is_compensated() {
    // Observed: after 4 sticky requests to B, lbstatus A +400 and B −400; the next 4
    // non-sticky requests all go to A.
    let now = t0();
    let s = store(
        vec![
            member('a', &[("route", "a")]),
            member('b', &[("route", "b")]),
        ],
        &[("stickysession", "ROUTEID")],
        now,
    );
    for _ in 0..4 {
        drop(s.pick(&PickRequest::new().with_route("b"), now).unwrap());
    }
    let snap = s.snapshot();
    assert_eq!(snap.members()[0].state().lbstatus(), 400);
    assert_eq!(snap.members()[1].state().lbstatus(), -400);
    assert_eq!(picks(&s, 4, now), "AAAA");
}

#[test]
fn tried_members_are_skipped_and_spares_step_in() {
    let now = t0();
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[]),
            member('r', &[("status", "R")]),
        ],
        &[],
        now,
    );
    let snap = s.snapshot();
    let a = snap.members()[0].id();
    let b = snap.members()[1].id();
    let p = s.pick(&PickRequest::new().with_tried(&[a]), now).unwrap();
    assert!(matches!(name_of(p.member().url()), 'B' | 'R'));
    let p = s
        .pick(&PickRequest::new().with_tried(&[a, b]), now)
        .unwrap();
    assert_eq!(name_of(p.member().url()), 'R');
    let r = snap.members()[2].id();
    assert_eq!(
        s.pick(&PickRequest::new().with_tried(&[a, b, r]), now)
            .unwrap_err(),
        PickError::AllUnusable
    );
}

#[test]
fn a_tried_route_member_is_not_picked_again() {
    // A `+I` member stays usable after a failed try; the retry of a sticky request must
    // still leave it (through `redirect` if it names one, else balanced), or every attempt
    // would go back to it until `maxattempts` runs out.
    let now = t0();
    let s = store(
        vec![
            member('a', &[("route", "a"), ("status", "+I")]),
            member('b', &[("route", "b")]),
            member('c', &[("route", "c"), ("redirect", "b"), ("status", "+I")]),
        ],
        &[("stickysession", "ROUTEID")],
        now,
    );
    let snap = s.snapshot();
    let [a, c] = [snap.members()[0].id(), snap.members()[2].id()];
    let p = s
        .pick(&PickRequest::new().with_route("a").with_tried(&[a]), now)
        .unwrap();
    assert_ne!(name_of(p.member().url()), 'A');
    assert!(!p.is_sticky() && p.route_changed());
    drop(p);
    let p = s
        .pick(&PickRequest::new().with_route("c").with_tried(&[c]), now)
        .unwrap();
    assert_eq!(name_of(p.member().url()), 'B', "c's redirect");
    assert!(p.is_sticky() && p.route_changed());
    drop(p);
    // A redirect to a tried member is not followed either.
    let b = snap.members()[1].id();
    let p = s
        .pick(&PickRequest::new().with_route("c").with_tried(&[c, b]), now)
        .unwrap();
    assert_eq!(name_of(p.member().url()), 'A');
}

#[test]
fn empty_balancer_and_max_attempts() {
    let now = t0();
    let s = store(vec![], &[], now);
    assert_eq!(
        s.pick(&PickRequest::new(), now).unwrap_err(),
        PickError::Empty
    );
    assert_eq!(s.snapshot().max_attempts(), 0);
    let s = store(vec![member('a', &[])], &[], now);
    assert_eq!(s.snapshot().max_attempts(), 0, "one member: one try");
    let s = store(
        vec![
            member('a', &[]),
            member('b', &[("status", "H")]),
            member('c', &[("status", "D")]),
        ],
        &[],
        now,
    );
    assert_eq!(
        s.snapshot().max_attempts(),
        2,
        "members - 1, counting all members"
    );
    s.update_params(|p| p.max_attempts = Some(0));
    assert_eq!(s.snapshot().max_attempts(), 0);
}

#[test]
fn reconfiguration_keeps_counters() {
    let now = t0();
    let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
    let held = s.pick(&PickRequest::new(), now).unwrap();
    let a = held.member().id();
    assert_eq!(picks(&s, 3, now), "BAB");
    let c = s.add_member(member('c', &[])).unwrap();
    s.update_member(a, |m| m.set("loadfactor", "2"))
        .unwrap()
        .unwrap();
    let snap = s.snapshot();
    let a_state = snap.member(a).unwrap().state();
    assert_eq!(a_state.elected(), 2);
    assert_eq!(
        a_state.busy(),
        1,
        "in-flight accounting survives the new snapshot"
    );
    // Apache: a new load factor sets every lbstatus to its own lbf.
    assert_eq!(a_state.lbstatus(), 200);
    drop(held);
    assert_eq!(s.snapshot().member(a).unwrap().state().busy(), 0);
    assert!(s.snapshot().member(c).is_some());
    assert!(matches!(
        s.add_member(member('c', &[])),
        Err(crate::ConfigError::DuplicateMember { .. })
    ));
    s.remove_member(c).unwrap();
    assert!(matches!(
        s.remove_member(c),
        Err(crate::ConfigError::UnknownMember { .. })
    ));
    assert!(s.update_member(MemberId(99), |_| ()).is_err());
    // Changing the lbmethod resets lbstatus.
    s.update_params(|p| p.lb_method = LbMethodKind::ByBusyness);
    assert!(s
        .snapshot()
        .members()
        .iter()
        .all(|m| m.state().lbstatus() == 0));
}

#[test]
fn duplicate_urls_are_rejected() {
    let now = t0();
    let err = BalancerStore::new(
        BalancerParams::new("x"),
        [
            MemberParams::new("http://a:80").unwrap(),
            MemberParams::new("HTTP://A:80/").unwrap(),
        ],
        now,
    )
    .unwrap_err();
    assert!(err.to_string().contains("http://a:80"), "{err}");
}

#[test]
fn custom_lbmethod() {
    #[derive(Debug)]
    struct Last;
    impl crate::LbMethod for Last {
        fn name(&self) -> &str {
            "last"
        }
        fn choose<'a>(&self, c: crate::lbmethod::Candidates<'a>) -> Option<&'a crate::Member> {
            c.last()
        }
    }
    let now = t0();
    let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
    s.update_params(|p| p.lb_method = LbMethodKind::Custom(std::sync::Arc::new(Last)));
    assert_eq!(picks(&s, 3, now), "BBB");
}

#[test]
fn sticky_accounting_per_lbmethod() {
    // Apache: a sticky pick does the byrequests bookkeeping unless the lbmethod has its own
    // hook. A custom method gets Apache's by default and can replace it; heartbeat does none
    // (a member's reports already show the sticky traffic it serves; see Heartbeat's docs).
    #[derive(Debug)]
    struct Plain;
    impl crate::LbMethod for Plain {
        fn name(&self) -> &str {
            "plain"
        }
        fn choose<'a>(&self, mut c: crate::lbmethod::Candidates<'a>) -> Option<&'a crate::Member> {
            c.next()
        }
    }
    #[derive(Debug)]
    struct Silent;
    impl crate::LbMethod for Silent {
        fn name(&self) -> &str {
            "silent"
        }
        fn choose<'a>(&self, mut c: crate::lbmethod::Candidates<'a>) -> Option<&'a crate::Member> {
            c.next()
        }
        fn account_sticky(&self, _: &[crate::Member], _: &crate::Member) {}
    }
    let now = t0();
    let lbstatus = |method: LbMethodKind| {
        let s = store(
            vec![
                member('a', &[("route", "a")]),
                member('b', &[("route", "b"), ("loadfactor", "2")]),
            ],
            &[("stickysession", "ROUTEID")],
            now,
        );
        s.update_params(|p| p.lb_method = method);
        drop(s.pick(&PickRequest::new().with_route("b"), now).unwrap());
        let snap = s.snapshot();
        [0, 1].map(|i| snap.members()[i].state().lbstatus())
    };
    // lbstatus: a +100, b +200 then −300.
    assert_eq!(lbstatus(LbMethodKind::ByRequests), [100, -100]);
    assert_eq!(
        lbstatus(LbMethodKind::Custom(std::sync::Arc::new(Plain))),
        [100, -100]
    );
    assert_eq!(
        lbstatus(LbMethodKind::Custom(std::sync::Arc::new(Silent))),
        [0, 0]
    );
    assert_eq!(lbstatus("heartbeat".parse().unwrap()), [0, 0]);
}

#[test]
fn lbmethod_names_equality_and_debug() {
    #[derive(Debug)]
    struct Named(&'static str);
    impl crate::LbMethod for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn choose<'a>(&self, mut c: crate::lbmethod::Candidates<'a>) -> Option<&'a crate::Member> {
            c.next()
        }
    }
    for (text, kind) in [
        ("byrequests", LbMethodKind::ByRequests),
        ("ByTraffic", LbMethodKind::ByTraffic),
        ("BYBUSYNESS", LbMethodKind::ByBusyness),
    ] {
        assert_eq!(text.parse::<LbMethodKind>().unwrap(), kind, "{text}");
    }
    assert!("roundrobin".parse::<LbMethodKind>().is_err());
    let custom: std::sync::Arc<dyn crate::LbMethod> = std::sync::Arc::new(Named("byrequests"));
    let same = LbMethodKind::Custom(std::sync::Arc::clone(&custom));
    assert_eq!(same, LbMethodKind::Custom(custom), "the same method");
    assert_ne!(
        same,
        LbMethodKind::Custom(std::sync::Arc::new(Named("byrequests"))),
        "another instance"
    );
    assert_ne!(
        same,
        LbMethodKind::ByRequests,
        "a custom method is never a built-in one"
    );
    assert_ne!(LbMethodKind::ByRequests, same);
    assert_eq!(format!("{:?}", LbMethodKind::ByBusyness), "bybusyness");
    // The built-in methods name themselves as `lbmethod=` does, also through the trait.
    use crate::LbMethod as _;
    assert_eq!(
        [
            crate::lbmethod::ByRequests.name(),
            crate::lbmethod::ByTraffic.name(),
            crate::lbmethod::ByBusyness.name()
        ],
        ["byrequests", "bytraffic", "bybusyness"]
    );
    assert_eq!(format!("{same:?}"), "Custom(Named(\"byrequests\"))");
    let heartbeat: LbMethodKind = "heartbeat".parse().unwrap();
    assert!(
        format!("{heartbeat:?}").starts_with("Heartbeat(Heartbeat"),
        "{heartbeat:?}"
    );
}

#[test]
fn byrequests_fast_path_engages_and_steps_aside() {
    let now = t0();
    let s = store(
        vec![
            member('a', &[("route", "a"), ("loadfactor", "1")]),
            member('b', &[("route", "b"), ("loadfactor", "2")]),
            member('c', &[("route", "c"), ("loadfactor", "3")]),
        ],
        &[("stickysession", "ROUTEID")],
        now,
    );
    let all = picks(&s, 60, now);
    assert_eq!(all, "CBACBC".repeat(10));
    assert!(
        s.snapshot().fast_path_active(),
        "steady byrequests traffic uses the cycle"
    );
    // A sticky pick folds the cycle into lbstatus and scans, as Apache would.
    let p = s.pick(&PickRequest::new().with_route("a"), now).unwrap();
    assert_eq!(name_of(p.member().url()), 'A');
    assert!(!s.snapshot().fast_path_active());
    drop(p);
    // A flag change is seen by the very next pick, fast path or not.
    let all = picks(&s, 40, now);
    assert!(s.snapshot().fast_path_active(), "{all}");
    s.snapshot().members()[2]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    assert!(!picks(&s, 40, now).contains('C'));
    s.snapshot().members()[2]
        .state()
        .remove_flags(StatusFlags::DISABLED);
    assert!(picks(&s, 6, now).contains('C'));
    // A reconfiguration starts a new snapshot; the old cycle's picks are kept.
    let before: u64 = s
        .snapshot()
        .members()
        .iter()
        .map(|m| m.state().elected())
        .sum();
    let id = s.snapshot().members()[0].id();
    s.update_member(id, |m| m.lb_set = crate::LbSet::new(0).unwrap())
        .unwrap();
    let after: u64 = s
        .snapshot()
        .members()
        .iter()
        .map(|m| m.state().elected())
        .sum();
    assert_eq!(before, after);
}

#[test]
fn a_replaced_snapshot_hands_its_partial_cycle_to_the_next() {
    // `k` picks into a cycle of lf 1,2,3 (`CBACBC`), a reconfiguration that keeps lbstatus
    // replaces the snapshot: the next picks go on where the cycle was, as Apache's scan
    // would, because the old cycle's picks were folded into lbstatus. Every `k`, so that
    // no offset can line up with where the cycle happened to start.
    let now = t0();
    let cycle = "CBACBC";
    for k in 1..cycle.len() {
        let s = store(
            vec![
                member('a', &lf("1")),
                member('b', &lf("2")),
                member('c', &lf("3")),
            ],
            &[],
            now,
        );
        assert_eq!(picks(&s, 60, now), cycle.repeat(10));
        assert!(s.snapshot().fast_path_active());
        assert_eq!(picks(&s, k, now), cycle[..k]);
        let id = s.snapshot().members()[0].id();
        s.update_member(id, |m| m.lb_set = crate::LbSet::new(0).unwrap())
            .unwrap();
        let expected = cycle[k..].to_owned() + cycle;
        assert_eq!(picks(&s, expected.len(), now), expected, "after {k} picks");
    }
}

#[test]
fn route_lookup_prefers_regular_members_and_ends_redirect_cycles() {
    let now = t0();
    let s = store(
        vec![
            member('h', &[("route", "a"), ("status", "+H")]),
            member('a', &[("route", "a")]),
            member('x', &[("route", "x"), ("redirect", "y"), ("status", "D")]),
            member('y', &[("route", "y"), ("redirect", "x"), ("status", "D")]),
            member('z', &[("route", "z")]),
        ],
        &[("stickysession", "ROUTEID")],
        now,
    );
    // A usable regular member of the route wins over a standby listed before it.
    let p = s.pick(&PickRequest::new().with_route("a"), now).unwrap();
    assert_eq!(name_of(p.member().url()), 'A');
    drop(p);
    // x and y redirect to each other and both are disabled: the lookup ends, and the
    // request is balanced.
    let p = s.pick(&PickRequest::new().with_route("x"), now).unwrap();
    assert!(!p.is_sticky() && p.route_changed());
    assert!(matches!(name_of(p.member().url()), 'A' | 'Z'));
}

#[test]
fn standbys_take_over_when_the_lbmethod_declines_the_regular_members() {
    // A custom method may decline every candidate it is given; the regular members' set
    // then falls back to its standbys, as when no regular member is usable.
    #[derive(Debug)]
    struct StandbyOnly;
    impl crate::LbMethod for StandbyOnly {
        fn name(&self) -> &str {
            "standby-only"
        }
        fn choose<'a>(&self, mut c: crate::lbmethod::Candidates<'a>) -> Option<&'a crate::Member> {
            c.find(|m| m.flags().contains(StatusFlags::HOT_STANDBY))
        }
    }
    let now = t0();
    let s = store(
        vec![member('a', &[]), member('h', &[("status", "+H")])],
        &[],
        now,
    );
    s.update_params(|p| p.lb_method = LbMethodKind::Custom(std::sync::Arc::new(StandbyOnly)));
    assert_eq!(picks(&s, 2, now), "HH");
    // Without a standby, nothing.
    let s = store(vec![member('a', &[])], &[], now);
    s.update_params(|p| p.lb_method = LbMethodKind::Custom(std::sync::Arc::new(StandbyOnly)));
    assert_eq!(picks(&s, 1, now), "-");
}

#[test]
fn unavailable_counts_the_503s() {
    let s = store(vec![member('a', &[])], &[], t0());
    assert_eq!(s.unavailable(), 0);
    s.note_unavailable();
    s.note_unavailable();
    assert_eq!(s.unavailable(), 2);
}

#[test]
fn members_by_url_and_debug() {
    let now = t0();
    let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
    let snap = s.snapshot();
    assert_eq!(
        snap.member_by_url("http://b").map(|m| m.url()),
        Some("http://b")
    );
    assert_eq!(
        snap.member_by_url("HTTP://A/").map(|m| m.url()),
        Some("http://a")
    );
    assert!(snap.member_by_url("http://c").is_none());
    let ids: Vec<_> = snap.members().iter().map(|m| m.id()).collect();
    assert_eq!(ids.iter().map(|id| id.get()).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(ids[1].to_string(), "#1");
    assert!(snap.member_by_url("not a url").is_none());
    let text = format!("{snap:?}");
    assert!(
        text.starts_with("BalancerSnapshot {")
            && text.contains("byrequests")
            && text.contains("http://b"),
        "{text}"
    );
}

#[test]
fn fast_path_respects_retry_windows() {
    let t = t0();
    let s = store(
        vec![member('a', &[("retry", "10")]), member('b', &[])],
        &[],
        t,
    );
    s.snapshot().members()[0].mark_error(t);
    assert_eq!(picks(&s, 40, t + Duration::from_secs(1)), "B".repeat(40));
    assert!(s.snapshot().fast_path_active());
    // Once the window has passed, the next pick retries A (Apache's lazy retry).
    let later = t + Duration::from_secs(11);
    assert_eq!(&picks(&s, 2, later), "AB");
}

/// A tiny deterministic generator for the long mixed runs below (no proptest in unit tests:
/// CI's mutation step runs these).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// bybusyness through the store (with its count of requests in flight and the byrequests
/// cycle while nothing is in flight) against the same method as a custom lbmethod (a scan on
/// every pick, nothing else): the same member for every pick and the same `lbstatus`, over
/// idle stretches long enough to build the cycle, requests held and released, sticky picks,
/// errors, disabled members and a reconfiguration.
#[test]
fn bybusyness_fast_path_picks_as_the_scan() {
    let now = t0();
    let members = || {
        vec![
            member('a', &[("route", "a"), ("loadfactor", "1")]),
            member('b', &[("route", "b"), ("loadfactor", "2")]),
            member('c', &[("route", "c"), ("loadfactor", "3")]),
            member('d', &[("route", "d"), ("loadfactor", "1")]),
            member('e', &[("route", "e"), ("loadfactor", "5")]),
        ]
    };
    let fast = store(members(), &[("lbmethod", "bybusyness")], now);
    let scan = store(members(), &[], now);
    scan.update_params(|p| {
        p.lb_method = LbMethodKind::Custom(std::sync::Arc::new(crate::lbmethod::ByBusyness));
    });
    let mut rng = Lcg(16);
    let mut held: Vec<(crate::Picked, crate::Picked)> = Vec::new();
    let mut served_fast = 0;
    for step in 0..6000 {
        // Idle stretches (plain picks only): the cycle gets built and serves.
        let idle = step % 600 < 300;
        let op = if idle { 0 } else { rng.below(100) };
        let i = usize::try_from(rng.below(5)).unwrap();
        let both = [&fast, &scan];
        if step % 600 == 0 {
            held.clear();
            for st in both {
                for m in st.snapshot().members() {
                    m.state().clear_error();
                    m.state().remove_flags(StatusFlags::DISABLED);
                }
            }
        }
        match op {
            0..=79 => {
                let keep = held.len() < 6 && step % 600 > 450 && rng.below(3) == 0;
                let route = ["a", "b", "c", "d", "e"][i];
                let request = if !idle && rng.below(10) == 0 {
                    PickRequest::new().with_route(route)
                } else {
                    PickRequest::new()
                };
                let (f, s) = (fast.pick(&request, now), scan.pick(&request, now));
                served_fast += usize::from(fast.snapshot().fast_path_active());
                match (f, s) {
                    (Ok(f), Ok(s)) => {
                        assert_eq!(f.member().url(), s.member().url(), "step {step}");
                        if keep {
                            held.push((f, s));
                        }
                    }
                    (f, s) => assert_eq!(f.is_err(), s.is_err(), "step {step}"),
                }
            }
            80..=89 => {
                if !held.is_empty() {
                    let k = usize::try_from(rng.below(held.len() as u64)).unwrap();
                    drop(held.swap_remove(k));
                }
            }
            90..=93 => {
                for st in both {
                    st.snapshot().members()[i].mark_error(now);
                }
            }
            94..=96 => {
                for st in both {
                    st.snapshot().members()[i].state().clear_error();
                }
            }
            97 => {
                for st in both {
                    st.snapshot().members()[i]
                        .state()
                        .insert_flags(StatusFlags::DISABLED);
                }
            }
            98 => {
                for st in both {
                    st.snapshot().members()[i]
                        .state()
                        .remove_flags(StatusFlags::DISABLED);
                }
            }
            _ => {
                for st in both {
                    let id = st.snapshot().members()[i].id();
                    st.update_member(id, |m| m.lb_set = crate::LbSet::new(0).unwrap())
                        .unwrap();
                }
            }
        }
        if step % 97 == 0 {
            fast.settle();
            let lbstatus = |st: &BalancerStore| -> Vec<i64> {
                st.snapshot()
                    .members()
                    .iter()
                    .map(|m| m.state().lbstatus())
                    .collect()
            };
            assert_eq!(lbstatus(&fast), lbstatus(&scan), "step {step}");
        }
    }
    assert!(served_fast > 1000, "the cycle served {served_fast} picks");
    drop(held);
    for m in fast.snapshot().members() {
        assert_eq!(m.state().busy(), 0);
    }
    assert_eq!(fast.snapshot().shared_inflight().count(), 0);
}

/// While nothing is in flight, bybusyness picks come from the byrequests cycle; a request
/// in flight makes the next pick scan (and skip the busy member), and its end lets the
/// cycle come back.
#[test]
fn bybusyness_fast_path_engages_and_steps_aside() {
    let now = t0();
    let s = store(
        vec![
            member('a', &lf("1")),
            member('b', &lf("2")),
            member('c', &lf("3")),
        ],
        &[("lbmethod", "bybusyness")],
        now,
    );
    assert_eq!(picks(&s, 60, now), "CBACBC".repeat(10));
    assert!(s.snapshot().fast_path_active());
    let held = s.pick(&PickRequest::new(), now).unwrap();
    assert_eq!(name_of(held.member().url()), 'C');
    assert_eq!(s.snapshot().shared_inflight().count(), 1);
    // C is busy: the others only, and the cycle stepped aside.
    let next = picks(&s, 12, now);
    assert!(!next.contains('C'), "{next}");
    assert!(!s.snapshot().fast_path_active());
    drop(held);
    assert_eq!(s.snapshot().shared_inflight().count(), 0);
    picks(&s, 60, now);
    assert!(s.snapshot().fast_path_active());
}

/// A request begun while the lbmethod was byrequests is not in the count; after a switch to
/// bybusyness the count is not trusted until it ends, so the busy member is still avoided.
#[test]
fn bybusyness_after_a_switch_sees_requests_begun_before() {
    let now = t0();
    let s = store(
        vec![member('a', &[]), member('b', &[]), member('c', &[])],
        &[],
        now,
    );
    let before = s.pick(&PickRequest::new(), now).unwrap();
    assert_eq!(name_of(before.member().url()), 'A');
    let also = before.member().begin_request();
    s.update_params(|p| p.lb_method = LbMethodKind::ByBusyness);
    assert_eq!(s.snapshot().shared_inflight().count(), 0);
    assert!(!s.snapshot().shared_inflight().is_trusted());
    let all = picks(&s, 200, now);
    assert!(!all.contains('A'), "{all}");
    assert!(!s.snapshot().fast_path_active());
    drop((before, also));
    // Nothing in flight any more: trusted again at the next pick, and the cycle comes back.
    let all = picks(&s, 200, now);
    assert!(s.snapshot().shared_inflight().is_trusted());
    assert!(s.snapshot().fast_path_active(), "{all}");
    // Back to byrequests: nothing is counted.
    s.update_params(|p| p.lb_method = LbMethodKind::ByRequests);
    let p = s.pick(&PickRequest::new(), now).unwrap();
    assert_eq!(s.snapshot().shared_inflight().count(), 0);
    assert!(!s.snapshot().shared_inflight().is_trusted());
    drop(p);
}
