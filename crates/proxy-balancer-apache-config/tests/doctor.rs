//! The config doctor: for every rule, one configuration that triggers it and one that does not.
//!
//! The configurations are built by hand in the shapes the parser produces; each is commented
//! with the Apache text it stands for.

use proxy_balancer_apache_config::doctor::{check, exit_code, to_json, Finding, Severity};
use proxy_balancer_apache_config::{
    BalancerConfig, Config, Context, HcTemplate, HeaderAction, HeaderCondition, HeaderDirective,
    ManagerLocation, MemberConfig, Param, ProxyPassConfig, ProxyTarget, Span,
};

fn at(line: u32) -> Span {
    Span::new(line, 1)
}

fn params(kv: &[(&str, &str)], line: u32) -> Vec<Param> {
    kv.iter()
        .map(|(k, v)| Param {
            key: (*k).into(),
            value: (*v).into(),
            span: at(line),
        })
        .collect()
}

fn member(url: &str, kv: &[(&str, &str)], line: u32) -> MemberConfig {
    MemberConfig {
        url: url.into(),
        params: params(kv, line),
        span: at(line),
    }
}

fn balancer(name: &str, kv: &[(&str, &str)], members: Vec<MemberConfig>) -> BalancerConfig {
    BalancerConfig {
        name: name.into(),
        params: params(kv, 1),
        members,
        context: Context::default(),
        span: at(1),
    }
}

fn pass(path: &str, name: &str, sub: &str, line: u32) -> ProxyPassConfig {
    ProxyPassConfig {
        path: path.into(),
        target: ProxyTarget::Balancer {
            name: name.into(),
            path: sub.into(),
        },
        params: vec![],
        nocanon: false,
        regex: false,
        noquery: false,
        interpolate: false,
        context: Context::default(),
        span: at(line),
    }
}

fn cookie_header(value: &str, line: u32) -> HeaderDirective {
    HeaderDirective {
        request: false,
        always: false,
        action: HeaderAction::Add,
        name: "Set-Cookie".into(),
        value: value.into(),
        replacement: None,
        condition: Some(HeaderCondition::Env {
            name: "BALANCER_ROUTE_CHANGED".into(),
            negated: false,
        }),
        context: Context::default(),
        span: at(line),
    }
}

/// A healthy member: health-checked, short retry, with a route.
fn good(n: u32) -> MemberConfig {
    let route = format!("node{n}");
    member(
        &format!("http://10.0.0.{n}:8080"),
        &[
            ("route", route.as_str()),
            ("retry", "10"),
            ("hcmethod", "GET"),
            ("hcuri", "/health"),
        ],
        n + 1,
    )
}

/// ```apache
/// <Proxy "balancer://app">
///     BalancerMember http://10.0.0.1:8080 route=node1 retry=10 hcmethod=GET hcuri=/health
///     BalancerMember http://10.0.0.2:8080 route=node2 retry=10 hcmethod=GET hcuri=/health
///     ProxySet stickysession=ROUTEID
/// </Proxy>
/// ProxyPass "/app/" "balancer://app/"
/// Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
/// <Location "/balancer-manager">
///     SetHandler balancer-manager
///     Require ip 127.0.0.1
/// </Location>
/// ```
fn clean() -> Config {
    let mut c = Config::default();
    c.balancers.push(balancer(
        "balancer://app",
        &[("stickysession", "ROUTEID")],
        vec![good(1), good(2)],
    ));
    c.proxy_passes
        .push(pass("/app/", "balancer://app", "/", 10));
    c.headers.push(cookie_header(
        "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/",
        11,
    ));
    c.manager_locations.push(ManagerLocation {
        path: "/balancer-manager".into(),
        requires: vec!["ip 127.0.0.1".into()],
        context: Context::default(),
        span: at(12),
    });
    c
}

fn rules(c: &Config) -> Vec<&'static str> {
    check(c).into_iter().map(|f| f.rule).collect()
}

fn only(c: &Config, rule: &str) -> Vec<Finding> {
    check(c).into_iter().filter(|f| f.rule == rule).collect()
}

fn set_param(m: &mut MemberConfig, key: &str, value: &str) {
    m.params.retain(|p| !p.key.eq_ignore_ascii_case(key));
    m.params.push(Param {
        key: key.into(),
        value: value.into(),
        span: m.span,
    });
}

fn add_balancer_param(c: &mut Config, key: &str, value: &str, line: u32) {
    c.balancers[0].params.push(Param {
        key: key.into(),
        value: value.into(),
        span: at(line),
    });
}

#[test]
fn clean_config_has_no_findings() {
    let c = clean();
    assert_eq!(check(&c), vec![], "{}", to_json(&check(&c)));
    assert_eq!(exit_code(&check(&c)), 0);
}

#[test]
fn retry_too_long() {
    let mut c = clean();
    set_param(&mut c.balancers[0].members[1], "RETRY", "90");
    let f = only(&c, "retry-too-long");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Warning);
    assert_eq!(f[0].span.line, 3);
    assert!(f[0].what.contains("http://10.0.0.2:8080") && f[0].what.contains("90"));
    assert!(f[0].causes.contains("stuck in Err"));

    let mut c = clean();
    set_param(&mut c.balancers[0].members[1], "retry", "30");
    assert!(only(&c, "retry-too-long").is_empty());
    // A value the doctor cannot read is the parser's business.
    set_param(&mut c.balancers[0].members[1], "retry", "soon");
    assert!(only(&c, "retry-too-long").is_empty());
}

#[test]
fn nofailover_with_sticky() {
    let mut c = clean();
    add_balancer_param(&mut c, "NoFailover", "On", 5);
    let f = only(&c, "nofailover-with-sticky");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 5);
    assert!(f[0].causes.contains("503"));

    let mut c = clean();
    add_balancer_param(&mut c, "nofailover", "Off", 5);
    assert!(only(&c, "nofailover-with-sticky").is_empty());
    // nofailover=On without stickysession has no sessions to break.
    let mut c = Config::default();
    c.balancers.push(balancer(
        "balancer://app",
        &[("nofailover", "on")],
        vec![good(1)],
    ));
    c.balancers[0].members[0]
        .params
        .retain(|p| p.key != "route");
    assert!(only(&c, "nofailover-with-sticky").is_empty());
}

#[test]
fn no_health_check() {
    // BalancerMember http://10.0.0.2:8080 route=node2 retry=10           (no hcmethod)
    // BalancerMember http://10.0.0.1:8080 … hcmethod=None
    let mut c = clean();
    c.balancers[0].members[1]
        .params
        .retain(|p| !p.key.starts_with("hc"));
    set_param(&mut c.balancers[0].members[0], "hcmethod", "None");
    let f = only(&c, "no-health-check");
    assert_eq!(
        f.iter().map(|f| f.span.line).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(f[1].causes.contains("10 s"));

    // ProxyHCTemplate tcp hcmethod=TCP hcinterval=5
    // BalancerMember http://10.0.0.2:8080 route=node2 hctemplate=tcp
    let mut c = clean();
    c.hc_templates.push(HcTemplate {
        name: "tcp".into(),
        params: params(&[("hcmethod", "TCP"), ("hcinterval", "5")], 1),
        span: at(1),
    });
    c.balancers[0].members[1]
        .params
        .retain(|p| !p.key.starts_with("hc"));
    set_param(&mut c.balancers[0].members[1], "hctemplate", "tcp");
    assert!(only(&c, "no-health-check").is_empty());
    // … but hcmethod=None after the template turns the check off again.
    set_param(&mut c.balancers[0].members[1], "hcmethod", "none");
    assert_eq!(only(&c, "no-health-check").len(), 1);
}

#[test]
fn member_starts_disabled() {
    let mut c = clean();
    set_param(&mut c.balancers[0].members[1], "status", "+D");
    let f = only(&c, "member-starts-disabled");
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].severity, f[0].span.line), (Severity::Warning, 3));

    // Every member out: every request gets 503.
    set_param(&mut c.balancers[0].members[0], "status", "s");
    let f = only(&c, "member-starts-disabled");
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f.severity == Severity::Error));
    assert_eq!(exit_code(&check(&c)), 2);

    // -H+D-D: cleared again; +H and +R are usable.
    let mut c = clean();
    set_param(&mut c.balancers[0].members[1], "status", "+H+D-D");
    set_param(&mut c.balancers[0].members[0], "status", "R");
    assert!(only(&c, "member-starts-disabled").is_empty());
}

#[test]
fn sticky_without_routes() {
    // Some members without a route: one finding per member.
    let mut c = clean();
    c.balancers[0].members[1]
        .params
        .retain(|p| p.key != "route");
    let f = only(&c, "sticky-without-routes");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 3);

    // No member has a route: one finding for the balancer, at stickysession.
    c.balancers[0].members[0]
        .params
        .retain(|p| p.key != "route");
    let f = only(&c, "sticky-without-routes");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 1);
    assert!(f[0].what.contains("none of its members"));

    assert!(only(&clean(), "sticky-without-routes").is_empty());
}

#[test]
fn routes_without_sticky() {
    let mut c = clean();
    c.balancers[0].params.clear();
    c.headers.clear();
    assert_eq!(rules(&c), vec!["routes-without-sticky"]);

    // Neither routes nor stickysession: fine.
    for m in &mut c.balancers[0].members {
        m.params.retain(|p| p.key != "route");
    }
    assert!(only(&c, "routes-without-sticky").is_empty());
}

#[test]
fn duplicate_route() {
    let mut c = clean();
    set_param(&mut c.balancers[0].members[1], "route", "node1");
    let f = only(&c, "duplicate-route");
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].severity, f[0].span.line), (Severity::Error, 3));
    assert!(f[0].what.contains("line 2"));

    // Routes are case-sensitive, as Apache matches them.
    set_param(&mut c.balancers[0].members[1], "route", "NODE1");
    assert!(only(&c, "duplicate-route").is_empty());
}

#[test]
fn route_cookie_mismatch() {
    // Header add Set-Cookie "ROUTE=.%{BALANCER_WORKER_ROUTE}e; path=/" …, stickysession=ROUTEID
    let mut c = clean();
    c.headers[0].value = "ROUTE=.%{BALANCER_WORKER_ROUTE}e; path=/".into();
    let f = only(&c, "route-cookie-mismatch");
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].severity, f[0].span.line), (Severity::Error, 11));
    assert!(f[0].what.contains("ROUTEID") && f[0].what.contains("named ROUTE,"));

    // path=/shop does not cover ProxyPass /app/.
    let mut c = clean();
    c.headers[0].value = "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; Path=/shop".into();
    let f = only(&c, "route-cookie-mismatch");
    assert_eq!(f.len(), 1);
    assert!(f[0].what.contains("/app/"));

    // path=/ap is a string prefix of /app/ but not a path prefix.
    c.headers[0].value = "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/ap".into();
    assert_eq!(only(&c, "route-cookie-mismatch").len(), 1);

    // No separator before the route: the cookie is never read as a route.
    c.headers[0].value = "ROUTEID=%{BALANCER_WORKER_ROUTE}e; path=/".into();
    let f = only(&c, "route-cookie-mismatch");
    assert_eq!(f.len(), 1);
    assert!(f[0].what.contains("\".\""));

    // No path at all: a warning.
    c.headers[0].value = "ROUTEID=.%{BALANCER_WORKER_ROUTE}e".into();
    let f = only(&c, "route-cookie-mismatch");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Warning);

    // Matching: path=/app (covers /app/), stickysession=ROUTEID|routeid, a custom separator.
    let mut c = clean();
    c.headers[0].value = "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/app".into();
    assert!(only(&c, "route-cookie-mismatch").is_empty());
    c.balancers[0].params = params(&[("stickysession", "ROUTEID|routeid")], 1);
    assert!(only(&c, "route-cookie-mismatch").is_empty());
    c.balancers[0]
        .params
        .extend(params(&[("stickysessionsep", "~")], 1));
    c.headers[0].value = "ROUTEID=x~%{BALANCER_WORKER_ROUTE}e; path=/".into();
    assert!(only(&c, "route-cookie-mismatch").is_empty());
    // Other Set-Cookie headers are not route cookies.
    c.headers[0].value = "lang=en; path=/x".into();
    assert!(only(&c, "route-cookie-mismatch").is_empty());
}

#[test]
fn maxattempts_zero() {
    let mut c = clean();
    add_balancer_param(&mut c, "maxattempts", "0", 6);
    let f = only(&c, "maxattempts-zero");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 6);

    let mut c = clean();
    add_balancer_param(&mut c, "maxattempts", "1", 6);
    assert!(only(&c, "maxattempts-zero").is_empty());
    // One member: there is nothing to fail over to anyway.
    let mut c = clean();
    c.balancers[0].members.truncate(1);
    add_balancer_param(&mut c, "maxattempts", "0", 6);
    assert!(only(&c, "maxattempts-zero").is_empty());
}

#[test]
fn all_hot_standby() {
    let mut c = clean();
    set_param(&mut c.balancers[0].members[0], "status", "+H");
    set_param(&mut c.balancers[0].members[1], "status", "h");
    let f = only(&c, "all-hot-standby");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 1);

    // Per lbset: lbset 1 only has standbys.
    let mut c = clean();
    c.balancers[0].members.push(good(3));
    c.balancers[0].members.push(good(4));
    for m in &mut c.balancers[0].members[2..] {
        set_param(m, "lbset", "1");
        set_param(m, "status", "+H");
    }
    let f = only(&c, "all-hot-standby");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 4);
    assert!(f[0].what.contains("lbset 1"));

    // One standby beside a regular member: fine.
    let mut c = clean();
    set_param(&mut c.balancers[0].members[1], "status", "+H");
    assert!(only(&c, "all-hot-standby").is_empty());
}

#[test]
fn forcerecovery_off_few_members() {
    let mut c = clean();
    add_balancer_param(&mut c, "forcerecovery", "Off", 7);
    let f = only(&c, "forcerecovery-off-few-members");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 7);
    assert!(f[0].causes.contains("10 s"));

    let mut c = clean();
    c.balancers[0].members.push(good(3));
    add_balancer_param(&mut c, "forcerecovery", "off", 7);
    assert!(only(&c, "forcerecovery-off-few-members").is_empty());
    let mut c = clean();
    add_balancer_param(&mut c, "forcerecovery", "On", 7);
    assert!(only(&c, "forcerecovery-off-few-members").is_empty());
}

#[test]
fn manager_without_require() {
    let mut c = clean();
    c.manager_locations[0].requires.clear();
    let f = only(&c, "manager-without-require");
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].severity, f[0].span.line), (Severity::Error, 12));

    c.manager_locations[0].requires = vec!["all  Granted".into()];
    assert_eq!(only(&c, "manager-without-require").len(), 1);

    assert!(only(&clean(), "manager-without-require").is_empty());
}

#[test]
fn nonce_none() {
    let mut c = clean();
    add_balancer_param(&mut c, "nonce", "None", 8);
    let f = only(&c, "nonce-none");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].span.line, 8);
    assert!(f[0].causes.contains("Apache"));

    let mut c = clean();
    add_balancer_param(&mut c, "nonce", "s3cret", 8);
    assert!(only(&c, "nonce-none").is_empty());
}

#[test]
fn proxypass_trailing_slash() {
    // ProxyPass /app/ balancer://app/app → /app/x becomes /appx
    let mut c = clean();
    c.proxy_passes[0] = pass("/app/", "balancer://app", "/app", 10);
    let f = only(&c, "proxypass-trailing-slash");
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].severity, f[0].span.line), (Severity::Error, 10));
    assert!(f[0].causes.contains("balancer://app/appx"));

    // ProxyPass /app balancer://app/ → /app/x becomes //x
    c.proxy_passes[0] = pass("/app", "balancer://app", "/", 10);
    c.headers.clear();
    let f = only(&c, "proxypass-trailing-slash");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Warning);

    // Plain URL targets too.
    c.proxy_passes[0].target = ProxyTarget::Url("http://10.0.0.9:8080".into());
    c.proxy_passes[0].path = "/".into();
    assert_eq!(only(&c, "proxypass-trailing-slash").len(), 1);

    // Agreeing: both slashes, neither, excluded paths.
    let mut c = clean();
    c.proxy_passes.push(pass("/api", "balancer://app", "", 13));
    c.proxy_passes.push(ProxyPassConfig {
        path: "/app/static/".into(),
        target: ProxyTarget::Exclude,
        params: vec![],
        nocanon: false,
        regex: false,
        noquery: false,
        interpolate: false,
        context: Context::default(),
        span: at(14),
    });
    assert!(only(&c, "proxypass-trailing-slash").is_empty());
}

#[test]
fn findings_are_ordered_by_line_and_rendered() {
    let mut c = clean();
    c.manager_locations[0].requires.clear();
    set_param(&mut c.balancers[0].members[1], "retry", "120");
    let f = check(&c);
    assert_eq!(
        f.iter().map(|f| (f.span.line, f.rule)).collect::<Vec<_>>(),
        vec![(3, "retry-too-long"), (12, "manager-without-require")]
    );
    let text = f[0].to_string();
    assert!(text.starts_with("line 3: warning [retry-too-long]: member http://10.0.0.2:8080"));
    assert!(text.contains("\n  causes: ") && text.contains("\n  fix: "));
    assert_eq!(exit_code(&f), 2);
    assert_eq!(exit_code(&f[..1]), 1);
}

#[test]
fn json_escapes_strings() {
    let f = Finding {
        severity: Severity::Note,
        rule: "nonce-none",
        span: at(4),
        what: "quote \" backslash \\ tab \t nl \n cr \r nul \u{0} bell \u{7} é ✓".into(),
        causes: String::new(),
        fix: "x".into(),
    };
    assert_eq!(
        to_json(&[f.clone(), f]),
        "[{\"severity\":\"note\",\"rule\":\"nonce-none\",\"line\":4,\"column\":1,\
         \"what\":\"quote \\\" backslash \\\\ tab \\t nl \\n cr \\r nul \\u0000 bell \\u0007 é ✓\",\
         \"causes\":\"\",\"fix\":\"x\"},\
         {\"severity\":\"note\",\"rule\":\"nonce-none\",\"line\":4,\"column\":1,\
         \"what\":\"quote \\\" backslash \\\\ tab \\t nl \\n cr \\r nul \\u0000 bell \\u0007 é ✓\",\
         \"causes\":\"\",\"fix\":\"x\"}]"
    );
}

#[test]
fn hcuri_relative() {
    let mut c = clean();
    set_param(&mut c.balancers[0].members[0], "hcuri", "health");
    c.hc_templates.push(HcTemplate {
        name: "web".into(),
        params: params(&[("hcmethod", "GET"), ("hcuri", "status")], 9),
        span: at(9),
    });
    let f = only(&c, "hcuri-relative");
    assert_eq!(
        f.iter().map(|f| f.span.line).collect::<Vec<_>>(),
        vec![2, 9]
    );
    assert!(f[0].fix.contains("hcuri=/health"));

    let mut c = clean();
    c.hc_templates.push(HcTemplate {
        name: "web".into(),
        params: params(&[("hcmethod", "GET"), ("hcuri", "/status")], 9),
        span: at(9),
    });
    assert!(only(&c, "hcuri-relative").is_empty());
}

// ---------------------------------------------------------------------------------------------
// The same rules on Apache text, through the parser.

const CLEAN: &str = r#"
<Proxy "balancer://app">
    BalancerMember http://10.0.0.1:8080 route=node1 retry=10 hcmethod=GET hcuri=/health
    BalancerMember http://10.0.0.2:8080 route=node2 retry=10 hcmethod=GET hcuri=/health
    ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass "/app/" "balancer://app/"
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
"#;

fn rules_of(text: &str) -> Vec<(u32, &'static str)> {
    let config = proxy_balancer_apache_config::parse(text)
        .unwrap_or_else(|e| panic!("{text}\n{:?}", e.errors()));
    check(&config)
        .into_iter()
        .map(|f| (f.span.line, f.rule))
        .collect()
}

#[test]
fn apache_text_clean() {
    assert_eq!(rules_of(CLEAN), vec![]);
}

#[test]
fn apache_text_each_rule_triggers() {
    let r = |from: &str, to: &str| {
        assert!(CLEAN.contains(from), "{from}");
        rules_of(&CLEAN.replacen(from, to, 1))
    };
    let m2 = "BalancerMember http://10.0.0.2:8080 route=node2";
    assert_eq!(
        r("route=node2 retry=10", "route=node2 retry=90"),
        vec![(4, "retry-too-long")]
    );
    assert_eq!(
        r(
            "stickysession=ROUTEID",
            "stickysession=ROUTEID nofailover=On"
        ),
        vec![(5, "nofailover-with-sticky")]
    );
    assert_eq!(
        r(
            "retry=10 hcmethod=GET hcuri=/health\n    ProxySet",
            "retry=10\n    ProxySet"
        ),
        vec![(4, "no-health-check")]
    );
    assert_eq!(
        r(m2, &format!("{m2} status=+D")),
        vec![(4, "member-starts-disabled")]
    );
    assert_eq!(
        r(m2, "BalancerMember http://10.0.0.2:8080"),
        vec![(4, "sticky-without-routes")]
    );
    assert_eq!(
        r(
            "    ProxySet stickysession=ROUTEID\n",
            "    ProxySet lbmethod=byrequests\n"
        ),
        vec![(2, "routes-without-sticky"), (8, "route-cookie-mismatch")]
    );
    assert_eq!(
        r("route=node2", "route=node1"),
        vec![(4, "duplicate-route")]
    );
    assert_eq!(
        r("path=/\"", "path=/shop\""),
        vec![(8, "route-cookie-mismatch")]
    );
    assert_eq!(
        r("\"ROUTEID=.", "\"SESSION=."),
        vec![(8, "route-cookie-mismatch")]
    );
    assert_eq!(
        r(
            "stickysession=ROUTEID",
            "stickysession=ROUTEID maxattempts=0"
        ),
        vec![(5, "maxattempts-zero")]
    );
    assert_eq!(
        r(
            "hcuri=/health\n    BalancerMember",
            "hcuri=/health status=+H\n    BalancerMember"
        )
        .into_iter()
        .chain(r(m2, &format!("{m2} status=+H")))
        .collect::<Vec<_>>(),
        vec![]
    );
    let all_h = CLEAN.replace("hcuri=/health", "hcuri=/health status=+H");
    assert_eq!(rules_of(&all_h), vec![(2, "all-hot-standby")]);
    assert_eq!(
        r(
            "stickysession=ROUTEID",
            "stickysession=ROUTEID forcerecovery=Off"
        ),
        vec![(5, "forcerecovery-off-few-members")]
    );
    assert_eq!(
        r("    Require ip 127.0.0.1\n", ""),
        vec![(9, "manager-without-require")]
    );
    assert_eq!(
        r("stickysession=ROUTEID", "stickysession=ROUTEID nonce=None"),
        vec![(5, "nonce-none")]
    );
    assert_eq!(
        r("\"balancer://app/\"", "\"balancer://app/app\""),
        vec![(7, "proxypass-trailing-slash")]
    );
    assert_eq!(
        r(
            "hcuri=/health\n    BalancerMember",
            "hcuri=health\n    BalancerMember"
        ),
        vec![(3, "hcuri-relative")]
    );
}

/// The doctor reads values with the core's parsers, as the balancer will run them: a value
/// the parser (and Apache's `atoi`) takes, such as `+90`, counts; one the core refuses does
/// not.
#[test]
fn values_are_read_as_the_core_reads_them() {
    let r = |from: &str, to: &str| {
        assert!(CLEAN.contains(from), "{from}");
        rules_of(&CLEAN.replacen(from, to, 1))
    };
    // The doctor's own number reading used to skip a leading +.
    assert_eq!(
        r("route=node2 retry=10", "route=node2 retry=+90"),
        vec![(4, "retry-too-long")]
    );
    assert_eq!(
        r(
            "stickysession=ROUTEID",
            "stickysession=ROUTEID maxattempts=+0"
        ),
        vec![(5, "maxattempts-zero")]
    );
    // lbset=+1 is lbset 1: the member alone in its set, and all of it hot standby.
    let f = r(
        "route=node2 retry=10",
        "route=node2 retry=10 lbset=+1 status=+H",
    );
    assert_eq!(f, vec![(4, "all-hot-standby")]);

    // Built by hand: a status with a blank, or an hcmethod Apache does not know, is not read
    // (the parser refuses both).
    let mut c = clean();
    set_param(&mut c.balancers[0].members[1], "status", " +D");
    assert!(only(&c, "member-starts-disabled").is_empty());
    set_param(&mut c.balancers[0].members[1], "hcmethod", "POST");
    assert_eq!(only(&c, "no-health-check").len(), 1);
}

/// The site directives are known to the parser, so `--check` reads them without an
/// "unknown directive", and they bring no finding of their own.
#[test]
fn site_directives_are_known() {
    let text = format!(
        "{CLEAN}ServerName www.example.com\nProxyPreserveHost On\nProxyAddHeaders Off\n\
         ProxyPassReverseCookieDomain backend.internal www.example.com\n\
         ProxyPassReverseCookiePath /app /\n"
    );
    assert_eq!(rules_of(&text), vec![]);
}

/// `not-applied`: what the reverse proxy refuses at start, `--check` says first.
#[test]
fn not_applied_finds_what_the_proxy_refuses() {
    let text = "<Proxy balancer://b>\n BalancerMember http://127.0.0.1:9 hcmethod=GET\n</Proxy>\n\
                ProxyPass / balancer://b/\n\
                Header edit X-A ^a b\n\
                Header set X-B 1\n\
                ProxyPassReverseCookiePath /a /b interpolate\n\
                <Location /balancer-manager>\n SetHandler balancer-manager\n Require ip 127.0.0.1 10.0.0.0/33\n</Location>\n\
                <Location /m2>\n SetHandler balancer-manager\n Require host example.com\n</Location>\n";
    let config = proxy_balancer_apache_config::parse(text).expect("valid Apache");
    let lines: Vec<u32> = only(&config, "not-applied")
        .iter()
        .map(|f| f.span.line)
        .collect();
    // `Header edit` (line 5) is applied now: only the others remain.
    assert_eq!(lines, [7, 8, 12]);
    assert!(only(&config, "not-applied")
        .iter()
        .all(|f| f.severity == Severity::Error));
    let fine = "<Location /balancer-manager>\n SetHandler balancer-manager\n Require ip 127.0.0.1 ::1/128 10.0.0.0/8\n</Location>\n";
    let config = proxy_balancer_apache_config::parse(fine).expect("valid Apache");
    assert!(only(&config, "not-applied").is_empty());
}

/// `worker-shared`: the second `ProxyPass` to a URL does not get its own parameters.
#[test]
fn worker_shared_warns_of_ignored_parameters() {
    let text = "ProxyPass /a/ http://127.0.0.1:8001/ retry=5\n\
                ProxyPass /b/ http://127.0.0.1:8001/\n\
                ProxyPass /c/ http://127.0.0.1:8001/ retry=9\n";
    let config = proxy_balancer_apache_config::parse(text).expect("valid Apache");
    let found = only(&config, "worker-shared");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].span.line, 3);
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(found[0].what.contains("line 1"), "{}", found[0].what);
}

/// `BalancerGrowth` is every balancer's default `growth`; `BalancerInherit Off` without a
/// `<VirtualHost>`, which changes nothing, is reported (`BalancerPersist On` is applied now:
/// the site keeps the manager's edits in `DefaultRuntimeDir`, so it is not).
#[test]
fn balancer_growth_applies_persist_and_inherit_are_reported() {
    let text = "BalancerGrowth 3\nBalancerPersist On\nBalancerInherit Off\n\
                <Proxy balancer://a>\n BalancerMember http://127.0.0.1:1\n</Proxy>\n\
                <Proxy balancer://b>\n BalancerMember http://127.0.0.1:2\n ProxySet growth=7\n</Proxy>\n";
    let config = proxy_balancer_apache_config::parse(text).expect("valid Apache");
    let growth: Vec<u8> = config
        .balancers()
        .expect("converts")
        .iter()
        .map(|(params, _)| params.growth)
        .collect();
    assert_eq!(growth, [3, 7]);
    let found = only(&config, "no-effect");
    let what: Vec<&str> = found.iter().map(|f| f.what.as_str()).collect();
    assert_eq!(what, ["BalancerInherit Off has no effect here"]);
    let quiet = proxy_balancer_apache_config::parse("BalancerPersist Off\nBalancerInherit On\n")
        .expect("valid Apache");
    assert!(only(&quiet, "no-effect").is_empty());
}

#[test]
fn every_server_level_directive_inside_a_block_is_named() {
    let config = proxy_balancer_apache_config::parse(
        "<VirtualHost *:80>\n  AllowEncodedSlashes On\n  ProxyPreserveHost On\n  ServerName a.example\n</VirtualHost>\n\
         <Location \"/x\">\n  ProxyPass \"http://127.0.0.1:9/\"\n  LimitRequestBody 10\n  Header set X-A b\n  SetEnv a b\n</Location>\n",
    )
    .expect("valid");
    let found: Vec<(u32, String)> = only(&config, "no-effect")
        .into_iter()
        .map(|f| (f.span.line, f.what))
        .collect();
    let lines: Vec<u32> = found.iter().map(|(line, _)| *line).collect();
    // Header has its own rule; SetEnv is not ours. The <VirtualHost>'s settings (lines 2
    // to 4) are its own and the one-argument ProxyPass (line 7) is the location's: applied
    // since the parser reads contexts, so not named.
    assert_eq!(lines, [8], "{found:?}");
    assert!(
        found[0].1.starts_with("LimitRequestBody inside"),
        "{found:?}"
    );
}

// ===== the registry: applied, refused, or reported =====

mod registry_rules {
    use proxy_balancer_apache_config::doctor::{check, Severity};
    use proxy_balancer_apache_config::registry::{self, Kind, State, ENTRIES};
    use proxy_balancer_apache_config::{parse, ParseErrorKind};

    const BEGIN: &str = "<!-- registry table: begin -->\n";
    const END: &str = "<!-- registry table: end -->";

    /// `docs/apache-directives.md` holds the registry's table; `BLESS=1` rewrites it.
    #[test]
    fn the_docs_table_is_the_registry() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/apache-directives.md");
        let doc = std::fs::read_to_string(&path).expect("docs/apache-directives.md");
        let (head, rest) = doc.split_once(BEGIN).expect("the begin marker");
        let (table, tail) = rest.split_once(END).expect("the end marker");
        let expected = registry::markdown();
        if table != expected {
            if std::env::var_os("BLESS").is_some() {
                std::fs::write(&path, format!("{head}{BEGIN}{expected}{END}{tail}"))
                    .expect("writes the docs");
            } else {
                panic!("docs/apache-directives.md differs from the registry: run with BLESS=1");
            }
        }
    }

    /// A sample line for a directive of the registry.
    fn sample(name: &str) -> String {
        match name.to_ascii_lowercase().as_str() {
            n if n.starts_with('<') => {
                let bare = name.trim_start_matches('<').trim_end_matches('>');
                format!("<{bare} x>\n</{bare}>\n")
            }
            "rewriteengine"
            | "sslengine"
            | "proxyrequests"
            | "proxystatus"
            | "proxypassinterpolateenv" => format!("{name} On\n"),
            "proxyremote" | "proxyremotematch" => format!("{name} * http://firewall:81\n"),
            "require" => format!("<Proxy balancer://x>\n{name} ip 10.0.0.1\n</Proxy>\n"),
            // Applied in the server and a <VirtualHost>; in a <Location> it fails open.
            "sslverifyclient" => format!("<Location /x>\n{name} require\n</Location>\n"),
            _ => format!("{name} x\n"),
        }
    }

    /// Every directive that is refused is a line:column error; every one that is not
    /// applied is reported by the doctor with the registry's severity, saying so.
    #[test]
    fn refused_is_an_error_and_not_applied_is_reported() {
        for entry in ENTRIES.iter().filter(|e| e.kind == Kind::Directive) {
            let text = sample(entry.name);
            match entry.state {
                State::Refused(why) => {
                    let err = parse(&text).expect_err(entry.name);
                    assert_eq!(
                        err.errors()[0].kind,
                        ParseErrorKind::Unsupported,
                        "{}",
                        entry.name
                    );
                    assert!(err.to_string().contains(why), "{err}");
                }
                State::NotApplied { severity, means } => {
                    let config = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", entry.name));
                    let findings = check(&config);
                    let found = findings.iter().find(|f| f.rule == "not-applied");
                    let found = found.unwrap_or_else(|| panic!("{}: {findings:?}", entry.name));
                    assert_eq!(found.severity, severity, "{}", entry.name);
                    assert!(found.causes.contains("not applied by proxy-balancer"));
                    assert!(found.causes.contains(means), "{}", entry.name);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn defaults_are_accepted_without_a_word() {
        let config = parse("ProxyRequests Off\nRewriteEngine off\nSSLEngine Off\n").expect("valid");
        assert!(check(&config).is_empty());
    }

    /// A Require in a <Location> that is not the balancer-manager's fails open: an error
    /// naming the Require's own line; the manager's own Require is applied.
    #[test]
    fn require_outside_the_manager_fails_open() {
        let config = parse(
            "<Location /admin>\n  Require ip 10.0.0.0/8\n</Location>\n\
             <Location /balancer-manager>\n  SetHandler balancer-manager\n  Require ip 127.0.0.1\n</Location>\n",
        )
        .expect("valid");
        let findings: Vec<_> = check(&config)
            .into_iter()
            .filter(|f| f.rule == "not-applied")
            .collect();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(findings[0].span.line, 2);
        assert!(findings[0].causes.contains("fails open"));
    }

    /// Worker parameters that are read and not applied: one finding per balancer and key,
    /// naming every line; applied ones say nothing.
    #[test]
    fn worker_parameters_not_applied_are_reported_once_per_balancer() {
        let config = parse(
            "<Proxy balancer://app>\n  BalancerMember http://a:80 smax=1 hcmethod=GET\n  BalancerMember http://b:80 smax=2 hcmethod=GET\n  BalancerMember http://c:80 loadfactor=2 flushpackets=on hcmethod=GET\n</Proxy>\n\
             ProxyPass /x http://d:80/x min=10\n",
        )
        .expect("valid");
        let findings: Vec<_> = check(&config)
            .into_iter()
            .filter(|f| f.rule == "not-applied")
            .collect();
        let whats: Vec<(&str, Severity)> = findings
            .iter()
            .map(|f| (f.what.as_str(), f.severity))
            .collect();
        assert_eq!(
            whats,
            [
                (
                    "smax= on the members of balancer://app (lines 2, 3) is not applied by proxy-balancer",
                    Severity::Note
                ),
                (
                    "flushpackets= on the members of balancer://app (line 4) is not applied by proxy-balancer",
                    Severity::Note
                ),
                (
                    "min= on ProxyPass /x (line 6) is not applied by proxy-balancer",
                    Severity::Note
                ),
            ]
        );
        assert!(findings[1].causes.contains("as it arrives"));
    }

    /// Every worker parameter the registry says is not applied is reported when a member
    /// has it, with the registry's severity and meaning.
    #[test]
    fn every_worker_parameter_not_applied_is_reported() {
        let value = |key: &str| match key {
            "flushpackets" => "on",
            "secret" => "s3cret",
            "upgrade" => "websocket",
            "flusher" => "flush",
            "addressttl" | "ping" | "acquire" | "min" | "smax" | "max" | "flushwait" => "5",
            other => panic!("no sample value for {other}"),
        };
        let mut seen = 0;
        for entry in ENTRIES.iter().filter(|e| e.kind == Kind::WorkerParam) {
            let State::NotApplied { severity, means } = entry.state else {
                continue;
            };
            let text = format!(
                "<Proxy balancer://x>\n  BalancerMember http://a:80 hcmethod=GET {}={}\n</Proxy>\n",
                entry.name,
                value(entry.name)
            );
            let config = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", entry.name));
            let findings = check(&config);
            let found = findings
                .iter()
                .find(|f| f.rule == "not-applied")
                .unwrap_or_else(|| panic!("{}: {findings:?}", entry.name));
            assert_eq!(
                (found.severity, found.span.line),
                (severity, 2),
                "{}",
                entry.name
            );
            assert!(found.causes.contains(means), "{}", entry.name);
            seen += 1;
        }
        // min, smax, flushpackets, flushwait, secret, flusher (and upgrade until it is applied).
        assert!(seen >= 6, "{seen}");
        // mapping= on a plain-URL ProxyPass is a ProxyPass key, read and not applied.
        let config = parse("ProxyPass /x http://a:80/x mapping=servlet\n").expect("valid");
        assert!(check(&config).iter().any(|f| f.rule == "not-applied"
            && f.what == "mapping= on ProxyPass /x (line 1) is not applied by proxy-balancer"));
    }

    /// mod_access_compat, as Apache 2.4.71 runs it: `Order allow,deny` alone answers 403;
    /// `Order deny,allow` and `Allow from all` admit everyone, as the proxy does.
    #[test]
    fn access_compat_lines_that_admit_everyone_are_accepted() {
        let config =
            parse("<Proxy balancer://x>\n  Order deny,allow\n  Allow from all\n</Proxy>\n")
                .expect("valid");
        assert!(check(&config).is_empty());
        let config =
            parse("<Proxy balancer://x>\n  Order allow,deny\n  Allow from 10.0.0.0/8\n</Proxy>\n")
                .expect("valid");
        let found: Vec<(u32, Severity)> = check(&config)
            .iter()
            .filter(|f| f.rule == "not-applied")
            .map(|f| (f.span.line, f.severity))
            .collect();
        assert_eq!(found, [(2, Severity::Warning), (3, Severity::Error)]);
    }

    /// A block whose content is not read is said, not only its lines (a `ProxySet` in it is
    /// refused by the parser: see `tests/contexts.rs`).
    #[test]
    fn a_block_that_was_not_read_is_said() {
        let config = parse("<ProxyMatch \"^balancer://x\">\n  Options None\n</ProxyMatch>\n")
            .expect("valid");
        let findings = check(&config);
        assert!(
            findings.iter().any(|f| f.rule == "not-applied"
                && f.span.line == 1
                && f.causes.contains("not applied by proxy-balancer")),
            "{findings:?}"
        );
    }

    /// An `<If>` block is not read: said, with what it means.
    #[test]
    fn an_if_block_is_said() {
        let config =
            parse("<If \"%{HTTP_HOST} == 'a'\">\n  Header set X-A 1\n</If>\n").expect("valid");
        let findings = check(&config);
        assert!(
            findings.iter().any(|f| f.rule == "not-applied"
                && f.span.line == 1
                && f.severity == Severity::Warning
                && f.causes.contains("fails open")),
            "{findings:?}"
        );
    }

    /// A directive the proxy applies, read where it does not apply it, is said too.
    #[test]
    fn an_applied_directive_that_was_not_read_is_said() {
        let config = parse("ProxySet http://not-a-member:80 ttl=5\n").expect("valid");
        let findings = check(&config);
        assert!(
            findings.iter().any(|f| f.rule == "not-applied"
                && f.what == "ProxySet here is not read by proxy-balancer"),
            "{findings:?}"
        );
    }
}

/// The doctor reads what `parse_partial` returns for any mix of lines, broken ones
/// included, without panicking; every parse error has a place.
mod partial_configs {
    use proptest::prelude::*;
    use proxy_balancer_apache_config::doctor::check;
    use proxy_balancer_apache_config::parse_partial;

    const LINES: &[&str] = &[
        "<Proxy balancer://a>",
        "<Proxy balancer://b>",
        "<Proxy *>",
        "</Proxy>",
        "<Location /x>",
        "<Location /balancer-manager>",
        "SetHandler balancer-manager",
        "</Location>",
        "<If \"true\">",
        "</If>",
        "BalancerMember http://127.0.0.1:1 route=r1 ping=1 max=3",
        "BalancerMember http://127.0.0.1:2 route=r1 status=+H hcexpr=e",
        "BalancerMember http://127.0.0.1:3 mapping=servlet",
        "BalancerMember balancer://c http://127.0.0.1:4",
        "BalancerMember",
        "ProxySet stickysession=ROUTEID nofailover=On",
        "ProxySet http://127.0.0.1:9 ttl=3",
        "ProxyPass / balancer://a/",
        "ProxyPass /u http://127.0.0.1:5/u acquire=5 mapping=encoded",
        "ProxyPass /v balancer://undefined/",
        "ProxyPass /w",
        "ProxyHCExpr e {%{REQUEST_STATUS} =~ /^2/}",
        "ProxyHCExpr",
        "Require ip 10.0.0.1",
        "Require all granted",
        "Order allow,deny",
        "Deny from all",
        "AuthType Basic",
        "RewriteEngine On",
        "RewriteRule ^/a http://x/ [P]",
        "ProxyRequests On",
        "ProxyRemote * http://p:1",
        "ProxyStatus On",
        "ProxyVia On",
        "SSLEngine on",
        "Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/\" env=BALANCER_ROUTE_CHANGED",
        "\"unterminated",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn the_doctor_reads_any_partial_config(picks in prop::collection::vec(0..LINES.len(), 0..30)) {
            let text: String = picks.iter().map(|&i| format!("{}\n", LINES[i])).collect();
            let (config, errors) = parse_partial(&text);
            for e in &errors {
                prop_assert!(e.span.line >= 1, "{}", e);
            }
            for f in check(&config) {
                prop_assert!(!f.what.is_empty() && !f.causes.is_empty() && !f.fix.is_empty());
            }
        }
    }
}

/// A directive this crate applies, written in a section it does not read (`<Directory>`,
/// `<Files>`), is named by the `no-effect` rule, not dropped in silence.
#[test]
fn our_directives_in_an_unread_section_are_named() {
    let config = proxy_balancer_apache_config::parse(
        "<Proxy balancer://x>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\n\
         <Directory \"/var/www\">\n  ProxyPass balancer://x/\n</Directory>\n\
         <Files \"*.cgi\">\n  Header set X-Files 1\n</Files>\n",
    )
    .expect("valid Apache");
    let lines: Vec<u32> = only(&config, "no-effect")
        .iter()
        .map(|f| f.span.line)
        .collect();
    assert_eq!(lines, [5, 8], "{:?}", only(&config, "no-effect"));
}

/// `ProxyTimeout`, `BalancerGrowth` and `BalancerPersist` in a `<VirtualHost>` are not
/// applied to every server's balancers (they were): named by the `no-effect` rule.
#[test]
fn main_server_settings_in_a_virtual_host_are_named() {
    let config = proxy_balancer_apache_config::parse(
        "<VirtualHost *:80>\n  ProxyTimeout 5\n  BalancerGrowth 3\n  BalancerPersist On\n</VirtualHost>\n",
    )
    .expect("valid Apache");
    assert_eq!(config.proxy_timeout, None);
    assert_eq!(config.balancer_growth, None);
    assert_eq!(config.balancer_persist, None);
    let lines: Vec<u32> = only(&config, "no-effect")
        .iter()
        .map(|f| f.span.line)
        .collect();
    assert_eq!(lines, [2, 3, 4]);
}

/// `upgrade=` on an HTTP/2 member does nothing (HTTP/2 has no upgrades): warned, with the
/// parameter's place; on an HTTP/1.1 member it is fine (found by the review).
#[test]
fn upgrade_on_an_h2_member_is_warned() {
    let text = |url: &str| {
        format!(
            "<Proxy balancer://ws>\n  BalancerMember {url} upgrade=websocket hcmethod=GET hcuri=/\n</Proxy>\nProxyPass /ws balancer://ws\n"
        )
    };
    let config = proxy_balancer_apache_config::parse(&text("h2c://127.0.0.1:9")).expect("parses");
    let found = only(&config, "upgrade-on-h2-member");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].span.line, 2);
    assert!(
        found[0].what.contains("upgrade=websocket"),
        "{}",
        found[0].what
    );
    let config = proxy_balancer_apache_config::parse(&text("http://127.0.0.1:9")).expect("parses");
    assert!(only(&config, "upgrade-on-h2-member").is_empty());
}

// ---------------------------------------------------------------------------------------------
// The selection beyond Apache (our own ProxySet parameters).

/// A balancer of `members` members (with health checks, no routes) and these `ProxySet`
/// words (the `<Proxy>` on line 2, the ProxySet on line `members + 3`).
fn selection_text(members: usize, proxy_set: &str) -> String {
    let mut text = String::from("\n<Proxy \"balancer://app\">\n");
    for i in 0..members {
        text.push_str(&format!(
            "    BalancerMember http://10.0.0.{}:8080 hcmethod=GET hcuri=/health\n",
            i + 1
        ));
    }
    text.push_str(&format!(
        "    ProxySet {proxy_set}\n</Proxy>\nProxyPass \"/app/\" \"balancer://app/\"\n"
    ));
    text
}

fn selection_findings(members: usize, proxy_set: &str) -> Vec<Finding> {
    let text = selection_text(members, proxy_set);
    let config = proxy_balancer_apache_config::parse(&text)
        .unwrap_or_else(|e| panic!("{text}\n{:?}", e.errors()));
    check(&config)
}

fn selection_rules(members: usize, proxy_set: &str) -> Vec<&'static str> {
    selection_findings(members, proxy_set)
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

#[test]
fn selection_parameters_used_as_meant_are_clean() {
    for set in [
        "lbmethod=hash hashkey=header:X-Forwarded-For hashring=ketama",
        "lbmethod=p2c-ewma ewmadecay=5",
        "lbmethod=p2c",
        "ejectconsecutive=5 ejecttime=10 ejectmaxtime=60 ejectmax=50",
        "ejectsuccessrate=80 ejectwindow=30 ejectminrequests=50",
        "panic=50",
        "retrybudget=10 retrybudgetmin=5 retrybudgetwindow=30",
    ] {
        assert_eq!(selection_rules(4, set), Vec::<&str>::new(), "{set}");
    }
}

#[test]
fn selection_no_effect_reports_each_ignored_parameter() {
    let cases = [
        ("hashkey=path", "lbmethod=byrequests", "set lbmethod=hash"),
        ("hashring=ketama", "lbmethod=p2c", "set lbmethod=hash"),
        ("ewmadecay=3", "lbmethod=p2c", "set lbmethod=p2c-ewma"),
        (
            "ejectwindow=30",
            "ejectconsecutive=5",
            "set ejectsuccessrate",
        ),
        (
            "ejectminrequests=9",
            "ejectconsecutive=5",
            "set ejectsuccessrate",
        ),
        ("ejecttime=10", "", "turn ejection on"),
        ("ejectmaxtime=10", "", "turn ejection on"),
        ("ejectmax=20", "", "turn ejection on"),
        ("retrybudgetmin=2", "maxattempts=0", "remove maxattempts=0"),
        (
            "retrybudgetwindow=5",
            "maxattempts=0",
            "remove maxattempts=0",
        ),
        ("retrybudget=30", "maxattempts=0", "remove maxattempts=0"),
    ];
    for (ignored, with, fix) in cases {
        let findings = selection_findings(4, &format!("{with} {ignored}"));
        let found: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == "selection-no-effect")
            .collect();
        assert_eq!(found.len(), 1, "{ignored} with {with}: {findings:?}");
        let f = found[0];
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.span.line, 7);
        assert!(
            f.what
                .starts_with(&format!("{ignored} on balancer://app has no effect: ")),
            "{}",
            f.what
        );
        assert!(f.fix.starts_with(fix), "{}", f.fix);
    }
    // The same parameters where they apply: nothing.
    assert!(!selection_rules(4, "lbmethod=hash hashring=ketama").contains(&"selection-no-effect"));
    assert!(!selection_rules(4, "maxattempts=1 retrybudget=30").contains(&"selection-no-effect"));
}

#[test]
fn ejectmax_too_low_for_the_member_count() {
    // 3 members × 20 % rounds down to none.
    let f = selection_findings(3, "ejectconsecutive=5 ejectmax=20");
    assert_eq!(
        f.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["ejectmax-too-low"]
    );
    assert_eq!(f[0].span.line, 6);
    assert!(
        f[0].what.contains("at most 20 % of its 3 members: none"),
        "{}",
        f[0].what
    );
    assert!(
        f[0].fix.starts_with("set ejectmax=34 or more"),
        "{}",
        f[0].fix
    );
    // Enough members (5 × 20 % = 1), or a higher cap: none.
    assert!(selection_rules(5, "ejectconsecutive=5 ejectmax=20").is_empty());
    assert!(selection_rules(3, "ejectconsecutive=5 ejectmax=34").is_empty());
    // The default cap (50 %) with one member: never.
    assert_eq!(
        selection_rules(1, "ejectsuccessrate=90"),
        ["ejectmax-too-low"]
    );
}

#[test]
fn hashkey_client_suggests_the_forwarded_header() {
    for set in ["lbmethod=hash", "lbmethod=hash hashkey=client"] {
        let f = selection_findings(2, set);
        assert_eq!(
            f.iter().map(|f| f.rule).collect::<Vec<_>>(),
            ["hashkey-client"],
            "{set}"
        );
        assert_eq!(f[0].severity, Severity::Note);
        assert!(f[0].fix.contains("hashkey=header:X-Forwarded-For"));
    }
    assert!(selection_rules(2, "lbmethod=hash hashkey=cookie:SESSION").is_empty());
    // An invalid hashkey is an error of its own; the balancer does not fall back to the
    // client address, so the note would describe a configuration that never runs.
    for bad in ["header:", "cookie:", "bogus"] {
        let text = selection_text(2, &format!("lbmethod=hash hashkey={bad}"));
        let (config, errors) = proxy_balancer_apache_config::parse_partial(&text);
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        let rules: Vec<_> = check(&config).into_iter().map(|f| f.rule).collect();
        assert!(!rules.contains(&"hashkey-client"), "{bad}: {rules:?}");
    }
}

#[test]
fn hash_with_sticky_says_routes_win_first() {
    let text = "\n<Proxy \"balancer://app\">\n    BalancerMember http://10.0.0.1:8080 route=a hcmethod=GET hcuri=/health\n    BalancerMember http://10.0.0.2:8080 route=b hcmethod=GET hcuri=/health\n    ProxySet lbmethod=hash hashkey=path stickysession=ROUTEID\n</Proxy>\nProxyPass \"/app/\" \"balancer://app/\"\n";
    let f = check(&proxy_balancer_apache_config::parse(text).unwrap());
    let found: Vec<_> = f.iter().filter(|f| f.rule == "hash-with-sticky").collect();
    assert_eq!(found.len(), 1, "{f:?}");
    assert_eq!(found[0].span.line, 5);
    assert!(found[0].causes.starts_with("sticky routes win first"));
}

#[test]
fn ejection_with_failonstatus_explains_the_two_clocks() {
    let f = selection_findings(4, "ejectconsecutive=5 failonstatus=503");
    assert_eq!(
        f.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["ejection-with-failonstatus"]
    );
    assert!(f[0].what.ends_with("failonstatus=503"));
    assert!(selection_rules(4, "failonstatus=503").is_empty());
}

#[test]
fn panic_overrides_forcerecovery_off() {
    let f = selection_findings(4, "panic=50 forcerecovery=Off");
    assert_eq!(
        f.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["panic-overrides-forcerecovery"]
    );
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(selection_rules(4, "panic=50").is_empty());
    assert!(selection_rules(4, "forcerecovery=Off").is_empty());
}

#[test]
fn retrybudget_off_is_noted() {
    let f = selection_findings(4, "retrybudget=Off");
    assert_eq!(
        f.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["retrybudget-off"]
    );
    assert_eq!(f[0].severity, Severity::Note);
    // With maxattempts=0 there are no retries to budget.
    assert!(!selection_rules(4, "maxattempts=0 retrybudget=Off").contains(&"retrybudget-off"));
}

#[test]
fn slowstart_and_the_new_parameters_parse_and_render_back() {
    let text = "\n<Proxy \"balancer://app\">\n    BalancerMember http://10.0.0.1:8080 slowstart=30 hcmethod=GET hcuri=/health\n    BalancerMember http://10.0.0.2:8080 hcmethod=GET hcuri=/health\n    ProxySet lbmethod=p2c-ewma ewmadecay=5 ejectconsecutive=3 panic=50 retrybudget=10\n</Proxy>\nProxyPass \"/app/\" \"balancer://app/\"\n";
    let config = proxy_balancer_apache_config::parse(text).unwrap();
    let rendered = config.to_string();
    for part in [
        "slowstart=30",
        "lbmethod=p2c-ewma",
        "ewmadecay=5",
        "ejectconsecutive=3",
        "panic=50",
        "retrybudget=10",
    ] {
        assert!(rendered.contains(part), "{part} in {rendered}");
    }
    let again = proxy_balancer_apache_config::parse(&rendered).unwrap();
    assert_eq!(
        again.balancers[0].params.len(),
        config.balancers[0].params.len()
    );
    // A typo gets a "did you mean".
    let err =
        proxy_balancer_apache_config::parse(&text.replace("ewmadecay", "ewmadcay")).unwrap_err();
    assert!(format!("{err}").contains("ewmadecay"), "{err}");
}
