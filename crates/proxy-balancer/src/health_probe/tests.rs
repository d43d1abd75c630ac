use std::time::Duration;

use http::HeaderMap;

use super::config::{ProbeConfig, ProbeConfigError, ProbeDefinitions, ProbeMethod};
use super::expr::HcExpr;
use super::probe::{parse_head, request_bytes, request_target};
use super::state::{Runs, Transition};
use super::Condition;
use crate::core::{
    BalancerParams, BalancerStore, MemberParams, MemberUrl, ParamError, StatusFlags,
};

fn url(s: &str) -> MemberUrl {
    MemberUrl::new(s).unwrap()
}

#[test]
fn methods_parse_case_insensitively_and_unknown_ones_list_the_valid_ones() {
    assert_eq!("tcp".parse::<ProbeMethod>().unwrap(), ProbeMethod::Tcp);
    assert_eq!(
        "Options11".parse::<ProbeMethod>().unwrap(),
        ProbeMethod::Options11
    );
    assert_eq!(ProbeMethod::from_apache("NONE").unwrap(), None);
    assert!("none".parse::<ProbeMethod>().is_err());
    let err = "POST".parse::<ProbeMethod>().unwrap_err();
    assert_eq!(
        err,
        ProbeConfigError::UnknownMethod {
            value: "POST".into()
        }
    );
    let text = err.to_string();
    assert!(text.contains("GET11") && text.contains("TCP"), "{text}");
}

#[test]
fn from_params_reads_apache_parameters() {
    let defs = ProbeDefinitions::new();
    let c = ProbeConfig::from_params(
        &[
            ("hcmethod", "get"),
            ("HCURI", "/health"),
            ("hcinterval", "200ms"),
            ("hcpasses", "0"),
            ("hcfails", "3"),
        ],
        &defs,
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.method, ProbeMethod::Get);
    assert_eq!(c.uri, "/health");
    assert_eq!(c.interval, Duration::from_millis(200));
    assert_eq!((c.passes, c.passes_needed(), c.fails), (0, 1, 3));
    assert!(matches!(c.condition, Condition::Default));

    let secs = ProbeConfig::from_params(&[("hcmethod", "TCP"), ("hcinterval", "2")], &defs);
    assert_eq!(secs.unwrap().unwrap().interval, Duration::from_secs(2));
    let none = ProbeConfig::from_params(&[("hcuri", "/x")], &defs).unwrap();
    assert!(none.is_none(), "no hcmethod: no probe");
    let none = ProbeConfig::from_params(&[("hcmethod", "None")], &defs).unwrap();
    assert!(none.is_none());
}

#[test]
fn from_params_refuses_bad_values() {
    let defs = ProbeDefinitions::new();
    let err = |p: &[(&str, &str)]| ProbeConfig::from_params(p, &defs).unwrap_err();
    assert!(matches!(
        err(&[("hcinterval", "50ms")]),
        ProbeConfigError::Param(ParamError::InvalidValue { param, value, .. })
            if param == "hcinterval" && value == "50ms"
    ));
    assert!(err(&[("hcinterval", "0")])
        .to_string()
        .contains("greater than 100ms"));
    assert!(matches!(
        err(&[("hcinterval", "fast")]),
        ProbeConfigError::Param(ParamError::InvalidValue { param, .. }) if param == "hcinterval"
    ));
    assert!(matches!(
        err(&[("hcfails", "-1")]),
        ProbeConfigError::Param(ParamError::InvalidValue { param, .. }) if param == "hcfails"
    ));
    assert!(matches!(
        err(&[("hcexpr", "nope")]),
        ProbeConfigError::UnknownExpr { .. }
    ));
    assert_eq!(
        err(&[("hcexpr", "x")]).to_string(),
        "unknown health check condition expr: x"
    );
    assert!(matches!(
        err(&[("hctemplate", "nope")]),
        ProbeConfigError::UnknownTemplate { .. }
    ));
    assert!(matches!(
        err(&[("hcfoo", "1")]),
        ProbeConfigError::UnknownParameter { .. }
    ));
    assert!(matches!(
        err(&[("hcuri", "/a b")]),
        ProbeConfigError::Param(ParamError::InvalidValue { param, .. }) if param == "hcuri"
    ));
}

#[test]
fn templates_apply_where_they_stand_and_exprs_resolve() {
    let defs = ProbeDefinitions::new()
        .with_expr(
            "ok234",
            HcExpr::parse("%{REQUEST_STATUS} =~ /^[234]/").unwrap(),
        )
        .with_template(
            "tpl",
            [("hcmethod", "HEAD"), ("hcfails", "4"), ("hcexpr", "ok234")],
        )
        .with_template("loop", [("hctemplate", "tpl")]);
    let c = ProbeConfig::from_params(&[("hcfails", "2"), ("hctemplate", "tpl")], &defs)
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.method, c.fails),
        (ProbeMethod::Head, 4),
        "template wins: it comes later"
    );
    let headers = HeaderMap::new();
    assert!(c.condition.passes(404, &headers, b""));
    assert!(!c.condition.passes(503, &headers, b""));
    let c = ProbeConfig::from_params(&[("hctemplate", "tpl"), ("hcfails", "2")], &defs)
        .unwrap()
        .unwrap();
    assert_eq!(c.fails, 2, "later parameters override the template");
    assert!(
        ProbeConfig::from_params(&[("hctemplate", "loop")], &defs).is_err(),
        "a template cannot name another"
    );
}

#[test]
fn member_timeouts_bound_the_probe() {
    let mut m = MemberParams::new("http://127.0.0.1:1").unwrap();
    let get = ProbeConfig::new(ProbeMethod::Get);
    assert_eq!(
        get.clone().with_member_timeouts(&m).timeout,
        Duration::from_secs(5)
    );
    m.set("connectiontimeout", "300ms").unwrap();
    assert_eq!(
        get.clone().with_member_timeouts(&m).timeout,
        Duration::from_millis(300)
    );
    m.set("timeout", "7").unwrap();
    assert_eq!(get.with_member_timeouts(&m).timeout, Duration::from_secs(7));
    let tcp = ProbeConfig::new(ProbeMethod::Tcp).with_member_timeouts(&m);
    assert_eq!(tcp.timeout, Duration::from_millis(300));
}

#[test]
fn requests_are_written_as_apache_does() {
    let u = url("http://127.0.0.1:8080");
    assert_eq!(
        request_bytes(&u, ProbeMethod::Get, "/health").unwrap(),
        "GET /health HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n\r\n"
    );
    assert_eq!(
        request_bytes(&u, ProbeMethod::Options, "/health").unwrap(),
        "OPTIONS * HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n\r\n"
    );
    assert_eq!(
        request_bytes(&u, ProbeMethod::Head11, "/health").unwrap(),
        "HEAD /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
    );
    assert!(request_bytes(&u, ProbeMethod::Tcp, "/health").is_none());
    // Host always carries the port.
    assert_eq!(
        request_bytes(&url("http://backend"), ProbeMethod::Get, "").unwrap(),
        "GET / HTTP/1.0\r\nHost: backend:80\r\n\r\n"
    );
    assert_eq!(
        request_bytes(&url("http://[::1]:81/"), ProbeMethod::Get, "/h").unwrap(),
        "GET /h HTTP/1.0\r\nHost: [::1]:81\r\n\r\n"
    );
}

#[test]
fn hcuri_is_appended_to_the_member_path_as_is() {
    let target = |u: &str, uri: &str| request_target(&url(u), ProbeMethod::Get, uri);
    assert_eq!(target("http://h:1/", "/health"), "/health");
    assert_eq!(target("http://h:1", "health"), "health");
    assert_eq!(target("http://h:1/app", "/health"), "/app/health");
    assert_eq!(target("http://h:1/app", ""), "/app");
    assert_eq!(target("http://h:1", ""), "/");
}

#[test]
fn response_heads_parse_and_garbage_does_not() {
    let (status, headers) =
        parse_head(b"HTTP/1.1 503 Service Unavailable\r\nX-A: 1\r\nx-a: 2\r\n").unwrap();
    assert_eq!(status, 503);
    assert_eq!(headers.get_all("x-a").iter().count(), 2);
    assert_eq!(parse_head(b"HTTP/1.0 200\n").unwrap().0, 200);
    for garbage in [
        &b"NOT HTTP\r\n"[..],
        b"HTTP/2 200 OK\r\n",
        b"HTTP/1.1 20 OK\r\n",
        b"HTTP/1.1 2000 OK\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n",
        b"\xff\xfe",
        b"",
    ] {
        assert!(parse_head(garbage).is_none(), "{garbage:?}");
    }
}

fn store() -> BalancerStore {
    let m = MemberParams::new("http://127.0.0.1:1").unwrap();
    BalancerStore::new(
        BalancerParams::new("t"),
        [m],
        tokio::time::Instant::now().into_std(),
    )
    .unwrap()
}

#[test]
fn failures_in_a_row_disable_and_passes_in_a_row_enable() {
    let store = store();
    let snapshot = store.snapshot();
    let state = snapshot.members()[0].state();
    let mut runs = Runs::default();
    let mut record = |passed| runs.record(passed, 2, 2, state);
    // Up: F P F P F never reaches two in a row.
    for passed in [false, true, false, true, false] {
        assert_eq!(record(passed), Transition::None);
    }
    assert!(state.is_usable());
    assert_eq!(record(false), Transition::Disabled);
    assert!(state.flags().contains(StatusFlags::HC_FAILED));
    // Down: P F P F P never reaches two in a row.
    for passed in [true, false, true, false, true] {
        assert_eq!(record(passed), Transition::None);
    }
    assert!(!state.is_usable());
    assert_eq!(record(true), Transition::Enabled);
    assert!(state.is_usable());
}

#[test]
fn passes_clear_an_error_set_by_traffic_and_zero_counts_act_as_one() {
    let store = store();
    let snapshot = store.snapshot();
    let member = &snapshot.members()[0];
    let mut runs = Runs::default();
    member.mark_error(tokio::time::Instant::now().into_std());
    // A failing probe of a member in E does not add C.
    assert_eq!(runs.record(false, 0, 0, member.state()), Transition::None);
    assert!(!member.flags().contains(StatusFlags::HC_FAILED));
    assert_eq!(runs.record(true, 0, 0, member.state()), Transition::Enabled);
    assert!(member.is_usable());
    assert_eq!(
        runs.record(false, 0, 0, member.state()),
        Transition::Disabled
    );
}

#[test]
fn passes_while_up_do_not_count_towards_a_later_recovery() {
    let store = store();
    let snapshot = store.snapshot();
    let state = snapshot.members()[0].state();
    let mut runs = Runs::default();
    for _ in 0..5 {
        assert_eq!(runs.record(true, 3, 1, state), Transition::None);
    }
    state.insert_flags(StatusFlags::IN_ERROR);
    assert_eq!(runs.record(true, 3, 1, state), Transition::None);
    assert_eq!(runs.record(true, 3, 1, state), Transition::None);
    assert_eq!(runs.record(true, 3, 1, state), Transition::Enabled);
}

#[test]
fn from_member_reads_the_stores_hc_params() {
    let defs = ProbeDefinitions::new().with_expr("ok", Condition::Default);
    let mut m = MemberParams::new("http://127.0.0.1:8001").unwrap();
    assert!(
        ProbeConfig::from_member(&m, &defs).unwrap().is_none(),
        "hcmethod=NONE by default: no probe"
    );
    for (k, v) in [
        ("hcmethod", "head11"),
        ("hcuri", "/up"),
        ("hcinterval", "250ms"),
        ("hcpasses", "2"),
        ("hcfails", "0"),
        ("hcexpr", "ok"),
        ("connectiontimeout", "2"),
    ] {
        m.set(k, v).unwrap();
    }
    let c = ProbeConfig::from_member(&m, &defs).unwrap().unwrap();
    assert_eq!(c.method, ProbeMethod::Head11);
    assert_eq!(c.uri, "/up");
    assert_eq!(c.interval, Duration::from_millis(250));
    assert_eq!((c.passes, c.fails, c.fails_needed()), (2, 0, 1));
    assert_eq!(c.timeout, Duration::from_secs(2), "the member's timeouts");
    // An expr the definitions do not hold: refused, not ignored.
    let err = ProbeConfig::from_member(&m, &ProbeDefinitions::new()).unwrap_err();
    assert_eq!(err, ProbeConfigError::UnknownExpr { name: "ok".into() });
}

#[test]
fn definitions_apply_templates_and_check_exprs_all_or_nothing() {
    let defs = ProbeDefinitions::new()
        .with_expr("b", Condition::Default)
        .with_expr("a", Condition::Default)
        .with_template("web", [("hcmethod", "GET"), ("hcuri", "/health")])
        .with_template("bad_expr", [("hcmethod", "GET"), ("hcexpr", "nope")])
        .with_template("bad_value", [("hcuri", "/x"), ("hcinterval", "1ms")]);
    assert_eq!(defs.expr_names(), ["a", "b"]);
    assert!(defs.has_expr("a") && !defs.has_expr("c"));
    let mut hc = crate::core::HcParams::default();
    defs.apply(&mut hc, "HCTemplate", "web").unwrap();
    defs.apply(&mut hc, "hcexpr", "a").unwrap();
    assert_eq!(
        (hc.method, hc.uri.as_str()),
        (crate::core::HcMethod::Get, "/health")
    );
    let before = hc.clone();
    for (k, v) in [
        ("hctemplate", "bad_expr"),
        ("hctemplate", "bad_value"),
        ("hctemplate", "missing"),
        ("hcexpr", "c"),
        ("hcinterval", "99ms"),
        ("loadfactor", "2"),
    ] {
        assert!(defs.apply(&mut hc, k, v).is_err(), "{k}={v}");
        assert_eq!(hc, before, "{k}={v}: nothing changed");
    }
    assert!(matches!(
        defs.apply(&mut hc, "hctemplate", "bad_expr"),
        Err(ProbeConfigError::UnknownExpr { .. })
    ));
    assert!(matches!(
        defs.apply(&mut hc, "hcmethod", "POST"),
        Err(ProbeConfigError::UnknownMethod { .. })
    ));
    defs.apply(&mut hc, "hcexpr", "").unwrap();
    assert_eq!(hc.expr, None, "an empty hcexpr clears it");
    defs.check(&hc).unwrap();
    hc.set("hcexpr", "zzz").unwrap();
    assert!(defs.check(&hc).is_err());
}
