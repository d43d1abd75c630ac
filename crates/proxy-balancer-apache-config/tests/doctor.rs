//! The config doctor: for every rule, one configuration that triggers it and one that does not.
//!
//! The configurations are built by hand in the shapes the parser produces; each is commented
//! with the Apache text it stands for.

use proxy_balancer_apache_config::doctor::{check, exit_code, to_json, Finding, Severity};
use proxy_balancer_apache_config::{
    BalancerConfig, Config, Context, HcTemplate, HeaderDirective, ManagerLocation, MemberConfig,
    Param, ProxyPassConfig, ProxyTarget, Span,
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
        always: false,
        action: "add".into(),
        name: "Set-Cookie".into(),
        value: value.into(),
        env: Some("BALANCER_ROUTE_CHANGED".into()),
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
    assert_eq!(lines, [5, 7, 8, 12]);
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

/// `BalancerGrowth` is every balancer's default `growth`; `BalancerPersist On` and
/// `BalancerInherit Off`, which change nothing in the proxy, are reported.
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
    assert_eq!(
        what,
        [
            "BalancerPersist On has no effect here",
            "BalancerInherit Off has no effect here"
        ]
    );
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
    // Header has its own rule; SetEnv is not ours.
    assert_eq!(lines, [2, 3, 4, 7, 8], "{found:?}");
    assert!(
        found[0].1.starts_with("AllowEncodedSlashes inside"),
        "{found:?}"
    );
}
