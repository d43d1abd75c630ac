use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proxy_balancer_core::{
    BalancerParams, BalancerStore, LbMethodKind, MemberParams, Nonce, PickRequest, StatusFlags,
};

use super::*;

#[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
fn now() -> Instant {
    Instant::now()
}

const A: &str = "http://127.0.0.1:8001";
const B: &str = "http://127.0.0.1:8002";

/// Balancer `c` with members A and B (B disabled) and `growth`.
fn store(growth: Option<&str>) -> (BalancerStore, GrowthSlots) {
    let mut params = BalancerParams::new("c");
    if let Some(g) = growth {
        params.set("growth", g).unwrap();
    }
    let members = [
        MemberParams::new(A).unwrap(),
        MemberParams::new(B)
            .unwrap()
            .with_status(StatusFlags::DISABLED),
    ];
    let store = BalancerStore::new(params, members, now()).unwrap();
    let slots = GrowthSlots::of(&store);
    (store, slots)
}

fn edit(body: &str) -> Result<Edit, EditError> {
    Edit::from_form(&parse_form(body.as_bytes())?)
}

fn run(store: &BalancerStore, slots: GrowthSlots, body: &str) -> Result<Applied, EditError> {
    edit(body)?.apply(store, slots)
}

fn member(store: &BalancerStore, url: &str) -> MemberParams {
    store
        .snapshot()
        .member_by_url(url)
        .unwrap()
        .params()
        .clone()
}

fn flags(store: &BalancerStore, url: &str) -> StatusFlags {
    store.snapshot().member_by_url(url).unwrap().flags()
}

fn invalid_param(err: &EditError) -> &str {
    match err {
        EditError::InvalidValue { param, .. } => param,
        other => panic!("not an invalid value: {other:?}"),
    }
}

// ===== parsing =====

#[test]
fn percent_decoding_once() {
    let form = parse_form(b"w=http%3A%2F%2Fa%3A1&w_wr=a+b%2Bc&x=%2541&k").unwrap();
    assert_eq!(form.w(), Some("http://a:1"));
    assert_eq!(form.get("w_wr"), Some("a b+c"));
    assert_eq!(form.get("x"), Some("%41"), "decoded once, unlike Apache");
    assert_eq!(form.get("k"), Some(""));
    assert_eq!(form.len(), 4);
    let form = parse_form("r=%C3%A9".as_bytes()).unwrap();
    assert_eq!(form.get("r"), Some("é"));
    assert!(parse_form(b"&&a=1&").unwrap().get("a") == Some("1"));
}

#[test]
fn malformed_forms() {
    for (bad, offset) in [
        (&b"a=%"[..], 2),
        (b"a=%4", 2),
        (b"a=%zz", 2),
        (b"x=1&a=%g1", 6),
        (b"=v", 0),
        (b"a=%ff", 2),
        (b"a=\xff", 2),
    ] {
        match parse_form(bad) {
            Err(EditError::Malformed { offset: o, .. }) => {
                assert_eq!(o, offset, "{:?}", String::from_utf8_lossy(bad));
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn size_limit() {
    let ok = vec![b'a'; MAX_FORM_BYTES];
    assert!(parse_form(&ok).is_ok());
    let big = vec![b'a'; MAX_FORM_BYTES + 1];
    let err = parse_form(&big).unwrap_err();
    assert_eq!(
        err,
        EditError::TooLarge {
            len: MAX_FORM_BYTES + 1,
            limit: MAX_FORM_BYTES
        }
    );
    assert_eq!(err.status(), 400);
}

#[test]
fn form_accessors() {
    let form = parse_query("B=c&w=x&nonce=n&xml=").unwrap();
    assert_eq!(
        (form.b(), form.w(), form.nonce()),
        (Some("c"), Some("x"), Some("n"))
    );
    assert!(form.xml());
    assert!(!form.has_changes());
    assert!(parse_query("b=c&b_nwrkr=").unwrap().has_changes());
    // Parameters the manager does not know are not changes: a GET view takes them.
    assert!(!parse_query("b=c&pretty=1&_=1733300000&refresh=5")
        .unwrap()
        .has_changes());
    assert!(parse_query("B_LBM=x").unwrap().has_changes());
    assert!(parse_query("w_bogus=1").unwrap().has_changes());
    assert!(!parse_query("wx=1&b=&w").unwrap().has_changes());
    let secret = parse_query("nonce=s3cret").unwrap();
    assert!(
        !format!("{secret:?}").contains("s3cret"),
        "no nonce in logs"
    );
    assert!(parse_query("").unwrap().is_empty());
}

/// `refresh` (the page's auto-refresh) selects, it does not change: a form that carries it
/// with a change is not refused as unknown.
#[test]
fn refresh_is_known_in_a_change() {
    let (store, slots) = store(None);
    run(&store, slots, &format!("b=c&w={A}&w_lf=3&refresh=10")).unwrap();
    assert_eq!(member(&store, A).load_factor.lbf(), 300);
}

#[test]
fn unknown_and_duplicate_keys() {
    let err = edit("b=c&w_bogus=1&w_status_X=1&w_status_DD=1").unwrap_err();
    assert_eq!(
        err,
        EditError::UnknownParameters {
            params: vec!["w_bogus".into(), "w_status_X".into(), "w_status_DD".into()]
        }
    );
    assert_eq!(err.status(), 400);
    let err = edit("b=c&w=x&w_lf=2&W_LF=3").unwrap_err();
    assert_eq!(
        err,
        EditError::Duplicate {
            param: "W_LF".into()
        }
    );
}

#[test]
fn missing_selectors() {
    let err = edit("b=c&w_lf=2").unwrap_err();
    assert!(
        matches!(err, EditError::Missing { param: "w", .. }),
        "{err}"
    );
    let err = edit("b_tmo=2").unwrap_err();
    assert_eq!(err.to_string(), "missing parameter `b`, needed by `b_tmo`");
    // Only selectors: no change, nothing missing.
    assert!(edit("xml=1").unwrap().is_empty());
}

// ===== each field =====

#[test]
fn member_fields() {
    let e = edit("b=c&w=x&w_lf=2.5&w_ls=99&w_wr=n1&w_rr=").unwrap();
    assert_eq!(e.member.load_factor.unwrap().lbf(), 250);
    assert_eq!(e.member.lb_set.unwrap().get(), 99);
    assert_eq!(e.member.route, Some(Update::Set(Route::new("n1").unwrap())));
    assert_eq!(e.member.redirect, Some(Update::Clear));
    for (body, param) in [
        ("w_lf=0", "w_lf"),
        ("w_lf=100.5", "w_lf"),
        ("w_lf=abc", "w_lf"),
        ("w_ls=100", "w_ls"),
        ("w_ls=-1", "w_ls"),
        ("w_wr=a+b", "w_wr"),
        ("w_rr=", ""),
    ] {
        let result = edit(&format!("b=c&w=x&{body}"));
        if param.is_empty() {
            assert!(result.is_ok(), "{body}");
        } else {
            let err = result.unwrap_err();
            assert_eq!(invalid_param(&err), param, "{body}");
            assert_eq!(err.status(), 400);
        }
    }
    let err = edit(&format!("b=c&w=x&w_rr={}", "r".repeat(64))).unwrap_err();
    assert_eq!(invalid_param(&err), "w_rr");
    let err = edit("b=c&w=x&w_lf=0").unwrap_err();
    assert!(
        err.to_string().contains("\"0\"") && err.to_string().contains("w_lf"),
        "{err}"
    );
}

#[test]
fn status_fields() {
    let e = edit("b=c&w=x&w_status_D=1&w_status_s=0&w_status_H=&w_status_C=1").unwrap();
    assert_eq!(
        e.member.set_flags,
        StatusFlags::DISABLED | StatusFlags::HC_FAILED
    );
    assert_eq!(
        e.member.clear_flags,
        StatusFlags::STOPPED | StatusFlags::HOT_STANDBY
    );
    let err = edit("b=c&w=x&w_status_E=0").unwrap_err();
    assert_eq!(invalid_param(&err), "w_status_E");
    assert!(err.to_string().contains("cannot be changed"), "{err}");
    let err = edit("b=c&w=x&w_status_D=2").unwrap_err();
    assert_eq!(invalid_param(&err), "w_status_D");
}

#[test]
fn health_fields() {
    let e = edit("b=c&w=x&w_hm=get11&w_hi=100&w_hp=1&w_hf=3&w_hu=/up&w_he=ok").unwrap();
    assert_eq!(e.health.method, Some(HcMethod::Get11));
    assert_eq!(e.health.interval, Some(Duration::from_millis(100)));
    assert_eq!((e.health.passes, e.health.fails), (Some(1), Some(3)));
    assert_eq!(e.health.uri, Some(HcUri::new("/up").unwrap()));
    assert_eq!(
        e.health.expr,
        Some(Update::Set(HcExprName::new("ok").unwrap()))
    );
    let e = edit("b=c&w=x&w_hm=TCP&w_he=ok&w_hu=").unwrap();
    assert_eq!(e.health.expr, Some(Update::Clear), "cleared for TCP");
    assert_eq!(
        e.health.uri,
        Some(HcUri::EMPTY),
        "an empty w_hu clears the uri"
    );
    for (body, param) in [
        ("w_hm=CPING", "w_hm"),
        ("w_hi=99", "w_hi"),
        ("w_hi=x", "w_hi"),
        ("w_hp=0", "w_hp"),
        ("w_hf=0", "w_hf"),
        ("w_hf=-1", "w_hf"),
        ("w_hu=a+b", "w_hu"),
    ] {
        let err = edit(&format!("b=c&w=x&{body}")).unwrap_err();
        assert_eq!(invalid_param(&err), param, "{body}");
    }
    let err = edit(&format!("b=c&w=x&w_he={}", "e".repeat(64))).unwrap_err();
    assert_eq!(invalid_param(&err), "w_he");
    // Boundaries: Apache's 15-byte expr names, 63-byte uris.
    assert!(edit(&format!("b=c&w=x&w_he={}", "e".repeat(15))).is_ok());
    let err = edit(&format!("b=c&w=x&w_he={}", "e".repeat(16))).unwrap_err();
    assert_eq!(invalid_param(&err), "w_he");
    assert!(edit(&format!("b=c&w=x&w_hu=/{}", "u".repeat(62))).is_ok());
    let err = edit(&format!("b=c&w=x&w_hu=/{}", "u".repeat(63))).unwrap_err();
    assert_eq!(invalid_param(&err), "w_hu");
    let e = edit("b=c&w=x&w_hi=100&w_hp=4294967295").unwrap();
    assert_eq!(e.health.passes, Some(u32::MAX));
}

#[test]
fn unknown_expr_names_are_refused() {
    let e = edit("b=c&w=x&w_he=ok").unwrap();
    assert!(e.check_hc_exprs(|n| n == "ok").is_ok());
    let err = e.check_hc_exprs(|n| n == "other").unwrap_err();
    assert_eq!(invalid_param(&err), "w_he");
    assert_eq!(err.status(), 400);
    // Clearing needs no name.
    let e = edit("b=c&w=x&w_he=").unwrap();
    assert!(e.check_hc_exprs(|_| false).is_ok());
}

#[test]
fn balancer_fields() {
    let e = edit("b=c&b_lbm=bybusyness&b_tmo=7200&b_max=99&b_sforce=1&b_ss=JSESSIONID").unwrap();
    assert_eq!(e.balancer.lb_method, Some(LbMethodKind::ByBusyness));
    assert_eq!(e.balancer.timeout, Some(Duration::from_secs(7200)));
    assert_eq!(e.balancer.max_attempts, Some(99));
    assert_eq!(e.balancer.no_failover, Some(true));
    assert!(matches!(e.balancer.sticky_session, Some(Update::Set(_))));
    assert_eq!(
        edit("b=c&b_ss=-").unwrap().balancer.sticky_session,
        Some(Update::Clear)
    );
    assert_eq!(
        edit("b=c&b_tmo=0").unwrap().balancer.timeout,
        Some(Duration::ZERO)
    );
    for (body, param) in [
        ("b_lbm=roundrobin", "b_lbm"),
        ("b_tmo=7201", "b_tmo"),
        ("b_tmo=99999999999999", "b_tmo"),
        ("b_max=100", "b_max"),
        ("b_sforce=2", "b_sforce"),
        ("b_ss=a;b", "b_ss"),
        ("b_wyes=yes", "b_wyes"),
        ("b_wyes=1&b_nwrkr=ftp://x", "b_nwrkr"),
        ("b_wyes=1", "b_nwrkr"),
    ] {
        let err = edit(&format!("b=c&{body}")).unwrap_err();
        assert_eq!(invalid_param(&err), param, "{body}");
    }
    // The "Add New Worker" box without the confirmation is ignored.
    assert!(edit("b=c&b_nwrkr=http://x").unwrap().is_empty());
}

// ===== apply =====

#[test]
fn applies_member_and_balancer_changes() {
    let (store, slots) = store(None);
    let applied = run(
        &store,
        slots,
        "b=c&w=http%3A%2F%2F127.0.0.1%3A8001&w_lf=3&w_ls=2&w_wr=n1&w_rr=n2&b_tmo=5&b_max=1&b_sforce=1&b_ss=JSESSIONID",
    )
    .unwrap();
    assert_eq!(
        applied.changed,
        [
            "loadfactor",
            "lbset",
            "route",
            "redirect",
            "timeout",
            "maxattempts",
            "nofailover",
            "stickysession"
        ]
    );
    let m = member(&store, A);
    assert_eq!(m.load_factor.lbf(), 300);
    assert_eq!(m.lb_set.get(), 2);
    assert_eq!(m.route.unwrap().as_str(), "n1");
    assert_eq!(m.redirect.unwrap().as_str(), "n2");
    let snap = store.snapshot();
    let p = snap.params();
    assert_eq!(p.timeout, Duration::from_secs(5));
    assert_eq!(p.max_attempts, Some(1));
    assert!(p.no_failover);
    assert_eq!(p.sticky_session.as_ref().unwrap().cookie(), "JSESSIONID");
    // The same again changes nothing.
    let again = run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_lf=3&b_tmo=5").unwrap();
    assert!(again.changed.is_empty(), "{again:?}");
    // Clearing.
    run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_wr=&b_ss=-").unwrap();
    assert_eq!(member(&store, A).route, None);
    assert_eq!(store.snapshot().params().sticky_session, None);
}

#[test]
fn all_or_nothing() {
    let (store, slots) = store(Some("1"));
    let before = store.snapshot();
    for body in [
        "b=c&w=http://127.0.0.1:8001&w_lf=5&w_ls=100",
        "b=c&w=http://127.0.0.1:8001&w_lf=5&w_status_D=1&b_tmo=9999",
        "b=c&w=http://127.0.0.1:8001&w_lf=5&w_status_E=1",
        "b=c&w=http://127.0.0.1:8001&w_lf=5&bogus=1",
        "b=c&w=http://127.0.0.1:9999&w_lf=5&b_tmo=3&b_wyes=1&b_nwrkr=http://n",
        "b=c&w=http://127.0.0.1:8001&w_lf=5&b_wyes=1&b_nwrkr=http://127.0.0.1:8002",
        "b=other&w=http://127.0.0.1:8001&w_lf=5",
    ] {
        assert!(run(&store, slots, body).is_err(), "{body}");
        let after = store.snapshot();
        assert_eq!(after.params(), before.params(), "{body}");
        assert_eq!(after.members().len(), 2, "{body}");
        assert_eq!(member(&store, A).load_factor.lbf(), 100, "{body}");
        assert_eq!(flags(&store, A), StatusFlags::EMPTY, "{body}");
    }
}

#[test]
fn unknown_balancer_and_member_are_404() {
    let (store, slots) = store(None);
    let err = run(&store, slots, "b=other&b_tmo=1").unwrap_err();
    assert_eq!(
        err,
        EditError::UnknownBalancer {
            name: "other".into()
        }
    );
    assert_eq!(err.status(), 404);
    let err = run(&store, slots, "b=c&w=http://nope&w_status_D=1").unwrap_err();
    assert_eq!(err.status(), 404);
    // `balancer://c` and `C` name the same balancer.
    assert!(run(&store, slots, "b=balancer%3A%2F%2FC&b_tmo=1").is_ok());
}

#[test]
fn status_flags_set_and_clear() {
    let (store, slots) = store(None);
    let applied = run(
        &store,
        slots,
        "b=c&w=http://127.0.0.1:8001&w_status_H=1&w_status_N=1",
    )
    .unwrap();
    assert_eq!(
        flags(&store, A),
        StatusFlags::HOT_STANDBY | StatusFlags::DRAIN
    );
    assert_eq!(applied.changed, ["status"]);
    assert_eq!(
        applied.flags,
        Some((
            StatusFlags::EMPTY,
            StatusFlags::HOT_STANDBY | StatusFlags::DRAIN
        ))
    );
    assert!(!applied.lb_reset);
    run(
        &store,
        slots,
        "b=c&w=http://127.0.0.1:8001&w_status_H=0&w_status_N=",
    )
    .unwrap();
    assert_eq!(flags(&store, A), StatusFlags::EMPTY);
    // E stays as failures left it.
    store
        .snapshot()
        .member_by_url(A)
        .unwrap()
        .state()
        .insert_flags(StatusFlags::IN_ERROR);
    assert!(run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_status_E=0").is_err());
    assert_eq!(flags(&store, A), StatusFlags::IN_ERROR);
}

#[test]
fn becoming_usable_resets_lb() {
    let (store, slots) = store(None);
    run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_lf=2").unwrap();
    for _ in 0..3 {
        drop(store.pick(&PickRequest::new(), now()).unwrap());
    }
    store.settle();
    let lbstatus = |url: &str| {
        store
            .snapshot()
            .member_by_url(url)
            .unwrap()
            .state()
            .lbstatus()
    };
    assert_ne!(lbstatus(A), 0);
    // Disabling a member does not reset.
    let applied = run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_status_S=1").unwrap();
    assert!(!applied.lb_reset);
    assert_ne!(lbstatus(A), 0);
    run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_status_S=0").unwrap();
    drop(store.pick(&PickRequest::new(), now()).unwrap());
    store.settle();
    // Re-enabling B (disabled at start) resets every lbstatus.
    let applied = run(&store, slots, "b=c&w=http://127.0.0.1:8002&w_status_D=0").unwrap();
    assert!(applied.lb_reset);
    assert_eq!((lbstatus(A), lbstatus(B)), (0, 0));
    assert!(store.snapshot().member_by_url(B).unwrap().is_usable());
}

#[test]
fn lbmethod_change_resets_lb() {
    let (store, slots) = store(None);
    drop(store.pick(&PickRequest::new(), now()).unwrap());
    store.settle();
    let applied = run(&store, slots, "b=c&b_lbm=bytraffic").unwrap();
    assert_eq!(applied.changed, ["lbmethod"]);
    assert!(applied.lb_reset);
    assert_eq!(store.snapshot().params().lb_method, LbMethodKind::ByTraffic);
    for m in store.snapshot().members() {
        assert_eq!(m.state().lbstatus(), 0);
    }
    // The same method again is no change.
    assert!(!run(&store, slots, "b=c&b_lbm=BYTRAFFIC").unwrap().lb_reset);
}

#[test]
fn load_factor_change_sets_lbstatus() {
    let (store, slots) = store(None);
    drop(store.pick(&PickRequest::new(), now()).unwrap());
    run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_lf=4").unwrap();
    let snap = store.snapshot();
    let a = snap.member_by_url(A).unwrap();
    assert_eq!(a.state().lbstatus(), a.lbf());
}

#[test]
fn add_member_with_growth() {
    let (store, slots) = store(Some("2"));
    let applied = run(
        &store,
        slots,
        "b=c&b_wyes=1&b_nwrkr=http%3A%2F%2F127.0.0.1%3A8003",
    )
    .unwrap();
    let id = applied.added.unwrap();
    let snap = store.snapshot();
    let new = snap.member(id).unwrap();
    assert_eq!(new.url(), "http://127.0.0.1:8003");
    assert_eq!(new.flags(), StatusFlags::DISABLED, "starts disabled");
    assert_eq!((slots.used(&snap), slots.free(&snap)), (1, 1));
    // Duplicate URL (also after normalisation).
    let err = run(&store, slots, "b=c&b_wyes=1&b_nwrkr=HTTP://127.0.0.1:8003/").unwrap_err();
    assert_eq!(
        err,
        EditError::DuplicateMember {
            url: "http://127.0.0.1:8003".into()
        }
    );
    assert_eq!(err.status(), 400);
    run(&store, slots, "b=c&b_wyes=1&b_nwrkr=http://127.0.0.1:8004").unwrap();
    let err = run(&store, slots, "b=c&b_wyes=1&b_nwrkr=http://127.0.0.1:8005").unwrap_err();
    assert!(
        matches!(
            err,
            EditError::NoFreeSlot {
                growth: 2,
                used: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.snapshot().members().len(), 4);
    // Removing an added member frees its slot.
    store.remove_member(id).unwrap();
    assert_eq!(slots.free(&store.snapshot()), 1);
}

#[test]
fn add_member_without_growth() {
    let (store, slots) = store(None);
    let err = run(&store, slots, "b=c&b_wyes=1&b_nwrkr=http://127.0.0.1:8003").unwrap_err();
    assert!(
        matches!(
            err,
            EditError::NoFreeSlot {
                growth: 0,
                used: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.status(), 400);
    assert_eq!(store.snapshot().members().len(), 2);
    assert_eq!(GrowthSlots::new(2), slots);
}

#[test]
fn health_changes_are_written_to_the_store() {
    let (store, slots) = store(None);
    let before = store.snapshot();
    let applied = run(
        &store,
        slots,
        "b=c&w=http://127.0.0.1:8001&w_hm=GET&w_hi=500&w_hu=/up&w_hp=1&w_lf=2",
    )
    .unwrap();
    assert_eq!(
        applied.changed,
        ["loadfactor", "hcmethod", "hcinterval", "hcuri"],
        "hcpasses=1 is the current value"
    );
    let hc = member(&store, A).hc;
    assert_eq!(hc.method, HcMethod::Get);
    assert_eq!(hc.interval, Duration::from_millis(500));
    assert_eq!(hc.uri.as_str(), "/up");
    assert!(
        !Arc::ptr_eq(&before, &store.snapshot()),
        "a new snapshot, which the probes follow"
    );
    assert_eq!(
        applied.member,
        store.snapshot().member_by_url(A).map(|m| m.id())
    );
    // All or nothing: a bad w_hi next to a good w_hu changes nothing.
    let err = run(
        &store,
        slots,
        "b=c&w=http://127.0.0.1:8001&w_hu=/other&w_hi=5",
    )
    .unwrap_err();
    assert_eq!(invalid_param(&err), "w_hi");
    assert_eq!(member(&store, A).hc.uri.as_str(), "/up");
    // TCP clears the expression, as Apache does.
    store
        .update_member(applied.member.unwrap(), |p| p.hc.set("hcexpr", "ok"))
        .unwrap()
        .unwrap();
    let applied = run(&store, slots, "b=c&w=http://127.0.0.1:8001&w_hm=TCP").unwrap();
    assert_eq!(applied.changed, ["hcmethod", "hcexpr"]);
    assert_eq!(member(&store, A).hc.expr, None);
    let err = run(&store, slots, "b=c&w=http://nope&w_hm=GET").unwrap_err();
    assert_eq!(err.status(), 404);
}

#[test]
fn empty_edit_changes_nothing() {
    let (store, slots) = store(None);
    let applied = run(&store, slots, "b=c&w=http://127.0.0.1:8001&nonce=x&xml=1").unwrap();
    assert!(applied.is_empty());
}

// ===== nonce =====

#[test]
fn nonces() {
    let fixed = Nonce::Fixed("abc".into());
    assert!(nonce_matches(&fixed, Some("abc"), "zzz"));
    assert!(!nonce_matches(&fixed, Some("zzz"), "zzz"));
    assert!(!nonce_matches(&fixed, Some("ab"), ""));
    assert!(!nonce_matches(&fixed, None, ""));
    assert!(nonce_matches(&Nonce::Auto, Some("u-u-i-d"), "u-u-i-d"));
    assert!(!nonce_matches(&Nonce::Auto, Some("abc"), "u-u-i-d"));
    assert!(
        !nonce_matches(&Nonce::Auto, Some(""), ""),
        "empty never matches"
    );
    assert!(nonce_matches(&Nonce::Disabled, None, ""));
    assert!(nonce_matches(&Nonce::Disabled, Some("anything"), ""));
    assert_eq!(
        EditError::BadNonce {
            balancer: "balancer://c".into()
        }
        .status(),
        403
    );
}

// ===== never panics =====

proptest! {
    #[test]
    fn parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(form) = parse_form(&body) {
            let _ = Edit::from_form(&form);
        }
    }

    #[test]
    fn form_like_input_never_panics(
        pairs in proptest::collection::vec(
            (
                prop::sample::select(vec![
                    "b", "w", "nonce", "xml", "w_lf", "w_ls", "w_wr", "w_rr", "w_hm", "w_hi",
                    "w_hp", "w_hf", "w_hu", "w_he", "b_lbm", "b_tmo", "b_max", "b_sforce",
                    "b_ss", "b_wyes", "b_nwrkr", "w_status_D", "w_status_E", "w_status_Q",
                    "W_STATUS_d", "B_LBM", "pretty", "_", "refresh",
                ]),
                "[-a-zA-Z0-9%+.:/=]{0,12}",
            ),
            0..8,
        )
    ) {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (store, slots) = store(Some("1"));
        if let Ok(form) = parse_form(body.join("&").as_bytes()) {
            if let Ok(edit) = Edit::from_form(&form) {
                // Whatever a GET may carry without being refused changes nothing.
                prop_assert!(edit.is_empty() || form.has_changes(), "{:?}", form);
                let _ = edit.apply(&store, slots);
            }
        }
    }
}

#[test]
fn the_methods_beyond_apache_are_chosen_by_form() {
    let (store, slots) = store(None);
    for (form, kind) in [
        ("hash", LbMethodKind::Hash),
        ("p2c", LbMethodKind::P2c),
        ("P2C-EWMA", LbMethodKind::P2cEwma),
    ] {
        let e = edit(&format!("b=c&b_lbm={form}")).unwrap();
        assert_eq!(e.balancer.lb_method, Some(kind.clone()));
        let applied = e.apply(&store, slots).unwrap();
        assert_eq!(applied.changed, ["lbmethod"]);
        assert_eq!(store.snapshot().params().lb_method, kind);
    }
    // The method's own parameters stay as configured; a pick works with each.
    drop(store.pick(&PickRequest::new(), now()).unwrap());
    let err = edit("b=c&b_lbm=p2c-peak").unwrap_err();
    assert_eq!(
        err.to_string().split(':').next(),
        Some("invalid value \"p2c-peak\" for `b_lbm`")
    );
}
