//! The config doctor: finds the balancer misconfigurations that cause outages, and says what
//! each one causes and how to fix it.
//!
//! [`check`] reads a parsed [`Config`] and returns [`Finding`]s, ordered by line. Each finding
//! has a [`Severity`], a stable rule id (see the table), the line it is about, what is wrong,
//! what it causes in the operator's terms, and the change to make. Render them for people with
//! `Display`, for tools with [`to_json`], and pick a process exit status with [`exit_code`].
//!
//! | rule | severity | what it finds |
//! | --- | --- | --- |
//! | `retry-too-long` | warning | a member `retry` above 30 s |
//! | `nofailover-with-sticky` | warning | `nofailover=On` on a balancer with `stickysession` |
//! | `no-health-check` | warning | a member without `hcmethod` (or `hcmethod=None`), directly or through `hctemplate` |
//! | `member-starts-disabled` | warning (error when every member does) | a member whose `status` sets `D` or `S` |
//! | `sticky-without-routes` | warning | `stickysession` while some or all members have no `route` |
//! | `routes-without-sticky` | warning | members with a `route` on a balancer without `stickysession` |
//! | `duplicate-route` | error | two members of a balancer with the same `route` |
//! | `route-cookie-mismatch` | error (warning for a missing `path=`) | a `Header … Set-Cookie "NAME=.%{BALANCER_WORKER_ROUTE}e; path=…"` whose name, separator or path does not match the balancer |
//! | `maxattempts-zero` | warning | `maxattempts=0` with several members |
//! | `all-hot-standby` | warning | every member of a balancer, or of an lbset, is `+H` |
//! | `forcerecovery-off-few-members` | warning | `forcerecovery=Off` with two members or fewer |
//! | `manager-without-require` | error | a balancer-manager `<Location>` without `Require` (or with `Require all granted`) |
//! | `nonce-none` | warning | a balancer with `nonce=None` |
//! | `hcuri-relative` | error | an `hcuri` (on a member or a `ProxyHCTemplate`) without a leading `/` |
//! | `not-applied` | note, warning or error (see [`registry`](crate::registry)) | a directive or parameter of Apache's proxy modules (or one that changes routing or access: `RewriteRule`, `SSLEngine`, `Require` outside the balancer-manager …) that is read and not applied by proxy-balancer, with what that means; an error when an access rule fails open |
//! | `not-applied` | error | a line the reverse proxy refuses rather than run without: a `Header` form it does not apply (`edit`, `echo`, `note`, `expr=`, inside a context), `interpolate` on `ProxyPassReverseCookieDomain`/`Path`, a balancer-manager `Require` other than `ip ADDR[/PREFIX]` and `all granted`, a piped or syslog `ErrorLog`/`CustomLog`, a `CustomLog` with `env=`/`expr=` or a format that is no nickname ([`Config::logs`]) |
//! | `no-effect` | warning | `BalancerInherit Off` (no `<VirtualHost>` to inherit into), `ErrorLogFormat`, `LogLevel` modules with no counterpart, and every directive this crate reads at server level (`ProxyPreserveHost`, `ServerName`, `AllowEncodedSlashes`, `ProxyPass`, the logging directives, the client limits …) written inside a `<VirtualHost>`, `<Proxy>` or `<Location>` block, where it is not applied |
//! | `worker-shared` | warning | a `ProxyPass` to a plain URL already used by an earlier one, with parameters of its own (ignored, as Apache's AH01146) |
//! | `proxypass-trailing-slash` | error (path ends in `/`) or warning (target does) | a `ProxyPass` path and target that disagree on a trailing slash |
//! | `ssl-proxy-engine-off` | error | an `https://`, `wss://` or `h2://` member that a server's requests go to, in a server without `SSLProxyEngine On` (Apache's AH00961: 500 per request; the site refuses to start) |
//! | `ssl-proxy-verify-default` | note | TLS members in a server without `SSLProxyVerify`: proxy-balancer verifies their certificates (Apache's default is `none`) |
//! | `upgrade-on-h2-member` | warning | `upgrade=` on an `h2c://` or `h2://` member: HTTP/2 has no upgrades, so WebSockets sent there fail |
//! | `discovered-members` | note (warning with `stickysession`) | a `BalancerMember … discover=` line: where its members come from and what a DNS failure does; with `stickysession`, that discovered members have no route ([`discovery`](crate::discovery)) |
//! | `balancer-share` | note or error | `BalancerShare` without a balancer-manager (note: edits come from other instances only), with `BalancerPersist On` (error: the site refuses it), with two etcd endpoints (note: a two-member cluster stops writes when either fails) |
//! | `selection-no-effect` | warning | a parameter of ours read and then not used: `hashkey`/`hashring` without `lbmethod=hash`, `ewmadecay` without `lbmethod=p2c-ewma`, `ejectwindow`/`ejectminrequests` without `ejectsuccessrate`, `ejecttime`/`ejectmaxtime`/`ejectmax` without an ejection rule, the retry budget's parameters with `maxattempts=0` |
//! | `ejectmax-too-low` | warning | ejection on, but `ejectmax` % of the balancer's members rounds down to none: no member is ever ejected |
//! | `hashkey-client` | note | `lbmethod=hash` on the client address: behind another proxy every request has its address (use `hashkey=header:X-Forwarded-For`) |
//! | `hash-with-sticky` | note | `lbmethod=hash` with `stickysession`: sticky routes win first, the hash decides only for requests without one |
//! | `ejection-with-failonstatus` | note | outlier ejection with `failonstatus`: a listed status puts the member in error at once, uncapped, before ejection counts it |
//! | `panic-overrides-forcerecovery` | warning | `panic` with `forcerecovery=Off`: below the threshold, members in error get requests anyway |
//! | `retrybudget-off` | note | `retrybudget=Off`: idempotent retries are bounded by `maxattempts` only, so a brown-out multiplies the load |
//! | `ssl-proxy-verify-none` | warning | TLS members in a server with `SSLProxyVerify none` or `optional_no_ca`: their certificate chain is not verified |
//!
//! Unknown parameters (`hcpath` for `hcuri`…) never reach the doctor: the parser rejects them
//! with a "did you mean", so a [`Config`] only holds known keys. Values are read with the
//! core's own parsers ([`StatusFlags`], [`StickySession`], [`Route`], [`HcMethod`],
//! [`MemberParams::set`], [`BalancerParams::set`]), so the doctor sees what the balancer will
//! run; values they refuse (`retry=soon`) are left to the parser too: the rule that needs
//! them skips them.
//!
//! Each rule is one function, named after its id, whose doc says which Apache behaviour it
//! checks.
//!
//! ```
//! use proxy_balancer_apache_config::doctor::{check, exit_code, to_json, Severity};
//!
//! let config = proxy_balancer_apache_config::parse(
//!     r#"
//! <Proxy "balancer://app">
//!     BalancerMember http://10.0.0.1:8080 retry=300 hcmethod=GET hcuri=/health
//! </Proxy>
//! "#,
//! )?;
//! let findings = check(&config);
//! assert_eq!(findings.len(), 1);
//! assert_eq!(findings[0].rule, "retry-too-long");
//! assert_eq!(findings[0].severity, Severity::Warning);
//! assert!(findings[0].to_string().starts_with("line 3: warning [retry-too-long]: "));
//! assert!(to_json(&findings).starts_with(r#"[{"severity":"warning","rule":"retry-too-long","line":3,"#));
//! assert_eq!(exit_code(&findings), 1);
//! # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use proxy_balancer_core::{
    BalancerParams, HcMethod, MemberParams, Nonce, Route, StatusFlags, StickySession,
};

use crate::ast::{
    BalancerConfig, Config, HeaderAction, HeaderDirective, MemberConfig, Param, ProxyTarget, Span,
};

/// How bad a finding is.
///
/// ```
/// use proxy_balancer_apache_config::doctor::Severity;
/// assert_eq!(Severity::Warning.to_string(), "warning");
/// assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Note);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; nothing breaks by itself.
    Note,
    /// Hurts in some situations (a member failing, a restart…).
    Warning,
    /// Breaks requests or opens a hole as soon as the config is used.
    Error,
}

impl Severity {
    /// The lower-case word used in the output: `error`, `warning` or `note`.
    ///
    /// ```
    /// use proxy_balancer_apache_config::doctor::Severity;
    /// assert_eq!(Severity::Error.as_str(), "error");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a configuration.
///
/// `Display` gives the form for people:
///
/// ```
/// use proxy_balancer_apache_config::doctor::{Finding, Severity};
/// use proxy_balancer_apache_config::Span;
///
/// let finding = Finding {
///     severity: Severity::Warning,
///     rule: "retry-too-long",
///     span: Span::new(12, 5),
///     what: "retry=300".into(),
///     causes: "members stuck in Err".into(),
///     fix: "retry=10".into(),
/// };
/// assert_eq!(
///     finding.to_string(),
///     "line 12: warning [retry-too-long]: retry=300\n  causes: members stuck in Err\n  fix: retry=10"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// A stable id for the rule, such as `retry-too-long` (see the [module docs](self)).
    pub rule: &'static str,
    /// The line (and column) of the member, balancer, parameter or directive concerned.
    pub span: Span,
    /// What is wrong.
    pub what: String,
    /// What it causes, in the operator's terms.
    pub causes: String,
    /// The change to make.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} [{}]: {}\n  causes: {}\n  fix: {}",
            self.span.line, self.severity, self.rule, self.what, self.causes, self.fix
        )
    }
}

/// Checks a configuration for the known misconfigurations; the findings come ordered by line.
///
/// An empty result means nothing known is wrong. See the [module docs](self) for the rules.
///
/// ```
/// use proxy_balancer_apache_config::doctor::check;
/// use proxy_balancer_apache_config::Config;
///
/// assert!(check(&Config::default()).is_empty());
/// ```
pub fn check(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for balancer in &config.balancers {
        balancer_rules(config, balancer, &mut out);
    }
    route_cookie_mismatch(config, &mut out);
    manager_without_require(config, &mut out);
    not_applied(config, &mut out);
    not_applied_registry(config, &mut out);
    no_effect(config, &mut out);
    worker_shared(config, &mut out);
    proxypass_trailing_slash(config, &mut out);
    tls_members(config, &mut out);
    crate::discovery::doctor(config, &mut out);
    crate::shared::doctor(config, &mut out);
    for t in &config.hc_templates {
        hcuri_relative(&format!("ProxyHCTemplate {}", t.name), &t.params, &mut out);
    }
    out.sort_by_key(|f| f.span);
    out
}

/// The process exit status for these findings: 0 when there are none or only notes, 1 with
/// warnings but no error, 2 with any error.
///
/// ```
/// use proxy_balancer_apache_config::doctor::{exit_code, Finding, Severity};
/// use proxy_balancer_apache_config::Span;
///
/// let finding = |severity| Finding {
///     severity,
///     rule: "nonce-none",
///     span: Span::default(),
///     what: String::new(),
///     causes: String::new(),
///     fix: String::new(),
/// };
/// assert_eq!(exit_code(&[]), 0);
/// assert_eq!(exit_code(&[finding(Severity::Note)]), 0);
/// assert_eq!(exit_code(&[finding(Severity::Note), finding(Severity::Warning)]), 1);
/// assert_eq!(exit_code(&[finding(Severity::Warning), finding(Severity::Error)]), 2);
/// ```
pub fn exit_code(findings: &[Finding]) -> i32 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// The findings as a JSON array, one object per finding with the keys `severity`, `rule`,
/// `line`, `column`, `what`, `causes` and `fix`.
///
/// ```
/// use proxy_balancer_apache_config::doctor::{to_json, Finding, Severity};
/// use proxy_balancer_apache_config::Span;
///
/// let finding = Finding {
///     severity: Severity::Error,
///     rule: "duplicate-route",
///     span: Span::new(3, 1),
///     what: "route \"n1\"".into(),
///     causes: "a\nb".into(),
///     fix: "c".into(),
/// };
/// assert_eq!(to_json(&[]), "[]");
/// assert_eq!(
///     to_json(&[finding]),
///     r#"[{"severity":"error","rule":"duplicate-route","line":3,"column":1,"what":"route \"n1\"","causes":"a\nb","fix":"c"}]"#
/// );
/// ```
pub fn to_json(findings: &[Finding]) -> String {
    use crate::json::json_string;
    let mut out = String::from("[");
    for (i, f) in findings.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"severity\":");
        json_string(&mut out, f.severity.as_str());
        out.push_str(",\"rule\":");
        json_string(&mut out, f.rule);
        out.push_str(&format!(
            ",\"line\":{},\"column\":{}",
            f.span.line, f.span.column
        ));
        out.push_str(",\"what\":");
        json_string(&mut out, &f.what);
        out.push_str(",\"causes\":");
        json_string(&mut out, &f.causes);
        out.push_str(",\"fix\":");
        json_string(&mut out, &f.fix);
        out.push('}');
    }
    out.push(']');
    out
}

// ---------------------------------------------------------------------------------------------
// Reading parameter values with the core's parsers.
//
// A value the core refuses is skipped: the parser reports it, and the rule that needs it does
// not guess.

/// The last parameter with this key (keys are case-insensitive; a later one wins, as in Apache).
fn param<'a>(params: &'a [Param], key: &str) -> Option<&'a Param> {
    params
        .iter()
        .rev()
        .find(|p| p.key.eq_ignore_ascii_case(key))
}

/// A member with default parameters, to read one member parameter with the core's
/// [`MemberParams::set`].
fn scratch_member() -> MemberParams {
    MemberParams::new("http://doctor.invalid").expect("invariant: a valid constant url")
}

/// The last `key=` of a member, read by the core's [`MemberParams::set`] and then `read`:
/// `None` when it is not given or the core refuses it.
fn member_value<'a, T>(
    params: &'a [Param],
    key: &str,
    read: impl FnOnce(&MemberParams) -> T,
) -> Option<(&'a Param, T)> {
    let p = param(params, key)?;
    let mut scratch = scratch_member();
    scratch.set(key, &p.value).ok()?;
    Some((p, read(&scratch)))
}

/// The last `key=` of a balancer, read by the core's [`BalancerParams::set`] and then `read`:
/// `None` when it is not given or the core refuses it.
fn balancer_value<'a, T>(
    b: &'a BalancerConfig,
    key: &str,
    read: impl FnOnce(&BalancerParams) -> T,
) -> Option<(&'a Param, T)> {
    let p = param(&b.params, key)?;
    let mut scratch = BalancerParams::new(&b.name);
    scratch.set(key, &p.value).ok()?;
    Some((p, read(&scratch)))
}

/// An explicit `retry=`, in seconds.
fn retry_secs(m: &MemberConfig) -> Option<(&Param, u64)> {
    member_value(&m.params, "retry", |s| s.retry.as_secs())
}

/// The status flags a member starts with, from its `status=` parameters applied in order by
/// [`StatusFlags::apply`] (which leaves the flags as they were for a value it refuses).
fn status_flags(m: &MemberConfig) -> StatusFlags {
    let mut flags = StatusFlags::EMPTY;
    for p in m
        .params
        .iter()
        .filter(|p| p.key.eq_ignore_ascii_case("status"))
    {
        // A refused value is the parser's error; Apache would not start.
        let _ = flags.apply(&p.value);
    }
    flags
}

/// The member's `route` ([`Route`]; an empty `route=` is none).
fn route(m: &MemberConfig) -> Option<Route> {
    member_value(&m.params, "route", |s| s.route.clone()).and_then(|(_, r)| r)
}

/// The balancer's `stickysession`, read as a [`StickySession`].
fn sticky_session(b: &BalancerConfig) -> Option<(&Param, StickySession)> {
    balancer_value(b, "stickysession", |s| s.sticky_session.clone())
        .and_then(|(p, s)| Some((p, s?)))
}

/// Whether an `hcmethod` value is a real check (`Some(false)` for `NONE`), read as an
/// [`HcMethod`]; `None` for a value the core refuses.
fn is_real_method(value: &str) -> Option<bool> {
    value.parse::<HcMethod>().ok().map(|m| m != HcMethod::None)
}

// ---------------------------------------------------------------------------------------------
// Per-balancer and per-member rules, in the order their findings are made.

/// The rules about one balancer and its members.
fn balancer_rules(config: &Config, b: &BalancerConfig, out: &mut Vec<Finding>) {
    for m in &b.members {
        hcuri_relative(&format!("member {} of {}", m.url, b.name), &m.params, out);
        retry_too_long(b, m, out);
        no_health_check(config, b, m, out);
        upgrade_on_h2_member(b, m, out);
    }
    member_starts_disabled(b, out);
    sticky_without_routes(b, out);
    routes_without_sticky(b, out);
    duplicate_route(b, out);
    nofailover_with_sticky(b, out);
    maxattempts_zero(b, out);
    forcerecovery_off_few_members(b, out);
    nonce_none(b, out);
    all_hot_standby(b, out);
    crate::selection::doctor(b, out);
}

/// `upgrade-on-h2-member`: `upgrade=` on an `h2c://` or `h2://` member.
///
/// Upgrades are HTTP/1.1's (`Connection: Upgrade`); HTTP/2 has none, so the parameter does
/// nothing there and a WebSocket sent to the member arrives as a plain request (Apache's
/// mod_proxy_http2 ignores it too).
fn upgrade_on_h2_member(b: &BalancerConfig, m: &MemberConfig, out: &mut Vec<Finding>) {
    let scheme = m.url.split("://").next().unwrap_or("").to_ascii_lowercase();
    if !matches!(scheme.as_str(), "h2" | "h2c") {
        return;
    }
    let Some(upgrade) = m
        .params
        .iter()
        .rev()
        .find(|p| p.key.eq_ignore_ascii_case("upgrade"))
    else {
        return;
    };
    out.push(Finding {
        severity: Severity::Warning,
        rule: "upgrade-on-h2-member",
        span: upgrade.span,
        what: format!(
            "member {} of {} has upgrade={} but speaks HTTP/2",
            m.url, b.name, upgrade.value
        ),
        causes: "HTTP/2 has no protocol upgrades: a WebSocket (or other upgrade) request sent to \
                 this member goes as a plain request without Upgrade, and the client's handshake fails"
            .to_owned(),
        fix: format!(
            "give WebSocket traffic a member of its own (ws://, or http:// with upgrade={}) \
             in another balancer, or remove upgrade= from {}",
            upgrade.value, m.url
        ),
    });
}

/// `member-starts-disabled`: a member whose `status` sets `D` (disabled) or `S` (stopped).
///
/// Apache starts such a member out of rotation and only the balancer-manager brings it back;
/// a stopped one is not even health-checked. An error when every member of the balancer
/// starts so, since then every request gets 503.
fn member_starts_disabled(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let name = &b.name;
    let n = b.members.len();
    let off: Vec<(&MemberConfig, char)> = b
        .members
        .iter()
        .filter_map(|m| {
            let flags = status_flags(m);
            [('D', StatusFlags::DISABLED), ('S', StatusFlags::STOPPED)]
                .into_iter()
                .find(|(_, f)| flags.contains(*f))
                .map(|(c, _)| (m, c))
        })
        .collect();
    let all_off = n > 0 && off.len() == n;
    for (m, flag) in &off {
        let word = if *flag == 'D' { "disabled" } else { "stopped" };
        out.push(Finding {
            severity: if all_off { Severity::Error } else { Severity::Warning },
            rule: "member-starts-disabled",
            span: m.span,
            what: format!(
                "member {} of {name} starts {word} (status +{flag})",
                m.url
            ),
            causes: if all_off {
                format!(
                    "every member of {name} starts disabled or stopped, so every request to it gets 503 \
                     although the backends may be healthy, until someone enables a member in the balancer-manager"
                )
            } else {
                format!(
                    "{} never receives a request until someone enables it in the balancer-manager, \
                     and after every restart it is out again: the others carry all the load, and when they fail \
                     clients get 503 although this backend is healthy{}",
                    m.url,
                    if *flag == 'S' { "; health checks also skip stopped members" } else { "" }
                )
            },
            fix: format!(
                "remove +{flag} from the status of {} (to keep a spare, use status=+H for a hot standby or \
                 status=+R for a hot spare instead)",
                m.url
            ),
        });
    }
}

/// `sticky-without-routes`: `stickysession` on a balancer whose members (some or all) have
/// no `route`.
///
/// Apache finds the member for a session by the route after the separator in the session
/// cookie or URL parameter; a member without a route can never be found that way, so its
/// sessions are balanced anew on every request.
fn sticky_without_routes(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let Some((s, sticky)) = sticky_session(b) else {
        return;
    };
    let name = &b.name;
    let cookie = sticky.cookie();
    let unrouted: Vec<&MemberConfig> = b.members.iter().filter(|m| route(m).is_none()).collect();
    if !b.members.is_empty() && unrouted.len() == b.members.len() {
        out.push(Finding {
            severity: Severity::Warning,
            rule: "sticky-without-routes",
            span: s.span,
            what: format!("{name} has stickysession={} but none of its members has a route", s.value),
            causes: format!(
                "sessions are never sticky: the balancer looks for the route after the separator in {cookie}, \
                 finds no member with it, and balances every request anew, so users lose their session \
                 whenever they land on another backend"
            ),
            fix: format!(
                "give every member of {name} a distinct route (route=node1, route=node2, …) matching \
                 what the backends append to {cookie}"
            ),
        });
        return;
    }
    for m in unrouted {
        out.push(Finding {
            severity: Severity::Warning,
            rule: "sticky-without-routes",
            span: m.span,
            what: format!("member {} of sticky balancer {name} has no route", m.url),
            causes: format!(
                "sessions started on {} carry no route, so they are balanced anew on every request \
                 and lose their session state whenever they land elsewhere",
                m.url
            ),
            fix: format!(
                "add route=… to {} (distinct from the other members' routes)",
                m.url
            ),
        });
    }
}

/// `routes-without-sticky`: members with a `route` on a balancer without `stickysession`.
///
/// Apache reads routes only through `stickysession`; without it they do nothing.
fn routes_without_sticky(b: &BalancerConfig, out: &mut Vec<Finding>) {
    if sticky_session(b).is_some() || !b.members.iter().any(|m| route(m).is_some()) {
        return;
    }
    let name = &b.name;
    out.push(Finding {
        severity: Severity::Warning,
        rule: "routes-without-sticky",
        span: b.span,
        what: format!("members of {name} have routes but the balancer has no stickysession"),
        causes: "the routes are never used: without stickysession no request is routed by its \
                 session, so users are spread over all members and lose per-backend session state"
            .into(),
        fix: format!(
            "add stickysession=NAME to {name} (e.g. ProxySet stickysession=ROUTEID, or JSESSIONID for \
             Java backends), or remove the routes if sessions need no stickiness"
        ),
    });
}

/// `duplicate-route`: two members of a balancer with the same `route`.
///
/// Apache takes the first member with a session's route (routes are case-sensitive), so the
/// second one never gets sticky requests.
fn duplicate_route(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let name = &b.name;
    let mut seen: BTreeMap<Route, &MemberConfig> = BTreeMap::new();
    for m in &b.members {
        let Some(r) = route(m) else {
            continue;
        };
        if let Some(first) = seen.get(&r) {
            out.push(Finding {
                severity: Severity::Error,
                rule: "duplicate-route",
                span: m.span,
                what: format!(
                    "member {} of {name} has route \"{r}\", already used by {} (line {})",
                    m.url, first.url, first.span.line
                ),
                causes: format!(
                    "sticky requests for route \"{r}\" always go to {}: sessions can never stick to {}, \
                     and a session may land on either after a failover",
                    first.url, m.url
                ),
                fix: format!("give {} a route of its own", m.url),
            });
        } else {
            seen.insert(r, m);
        }
    }
}

/// `nofailover-with-sticky`: `nofailover=On` on a balancer with `stickysession`.
///
/// Apache then answers 503 to a sticky request whose member is unusable instead of sending it
/// to another member.
fn nofailover_with_sticky(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let Some((s, _)) = sticky_session(b) else {
        return;
    };
    let Some((nf, true)) = balancer_value(b, "nofailover", |p| p.no_failover) else {
        return;
    };
    out.push(Finding {
        severity: Severity::Warning,
        rule: "nofailover-with-sticky",
        span: nf.span,
        what: format!("{} has nofailover=On with stickysession={}", b.name, s.value),
        causes: "sticky sessions prevent failover: when a member fails or is disabled, every user whose \
                 session points at it gets 503 until it is back, although other members are healthy"
            .into(),
        fix: "remove nofailover=On (the default Off moves those users to another member), unless the \
              backends truly cannot serve a session they do not hold; then share sessions between \
              backends instead"
            .into(),
    });
}

/// `maxattempts-zero`: `maxattempts=0` on a balancer of several members.
///
/// Apache then never tries another member after a failed one.
fn maxattempts_zero(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let n = b.members.len();
    let Some((p, Some(0))) = balancer_value(b, "maxattempts", |p| p.max_attempts) else {
        return;
    };
    if n < 2 {
        return;
    }
    out.push(Finding {
        severity: Severity::Warning,
        rule: "maxattempts-zero",
        span: p.span,
        what: format!("{} has maxattempts=0 with {n} members", b.name),
        causes:
            "no failover on a dead member: a request sent to a member that refuses the connection \
                 gets 503 instead of being tried on another member"
                .into(),
        fix: format!(
            "remove maxattempts (the default tries every member: {}) or set it to 1 or more",
            n - 1
        ),
    });
}

/// `forcerecovery-off-few-members`: `forcerecovery=Off` on a balancer of one or two members.
///
/// With forcerecovery On (Apache's default) a balancer whose members are all in error retries
/// them at once; Off waits for each member's `retry`, and few members are easily all in error.
fn forcerecovery_off_few_members(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let n = b.members.len();
    let Some((p, false)) = balancer_value(b, "forcerecovery", |p| p.force_recovery) else {
        return;
    };
    if !(1..=2).contains(&n) {
        return;
    }
    let retry = b
        .members
        .iter()
        .filter_map(|m| retry_secs(m).map(|(_, s)| s))
        .max()
        .unwrap_or(60);
    out.push(Finding {
        severity: Severity::Warning,
        rule: "forcerecovery-off-few-members",
        span: p.span,
        what: format!("{} has forcerecovery=Off with only {n} member(s)", b.name),
        causes: format!(
            "with so few members a short outage easily puts all of them in error; then every request \
             gets an immediate 503 until their retry has passed (up to {retry} s), even if the backends \
             came back at once"
        ),
        fix: "remove forcerecovery=Off (the default On tries the members again as soon as all are in \
              error), or keep it and lower retry to a few seconds"
            .into(),
    });
}

/// `nonce-none`: `nonce=None` on a balancer, which turns off the balancer-manager's nonce
/// check.
fn nonce_none(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let Some((p, true)) = balancer_value(b, "nonce", |p| p.nonce == Nonce::Disabled) else {
        return;
    };
    out.push(Finding {
        severity: Severity::Warning,
        rule: "nonce-none",
        span: p.span,
        what: format!("{} has nonce=None", b.name),
        causes: "the balancer-manager's nonce check (its protection against cross-site requests) is off: \
                 a change no longer has to come from the manager page, so a web page an operator visits \
                 can more easily make their browser disable or change members. (Apache itself, contrary \
                 to its docs, instead refuses every change made in the manager with nonce=None.)"
            .into(),
        fix: "remove nonce=None so that a random nonce is made at start, or set a fixed secret \
              (nonce=some-long-secret) for scripts"
            .into(),
    });
}

/// `all-hot-standby`: every member of a balancer, or of one of its lbsets, is a hot standby
/// (`status=+H`).
///
/// Apache uses hot standbys only when no regular member of the lbset is usable; with no
/// regular member they are used all the time and there is no spare.
fn all_hot_standby(b: &BalancerConfig, out: &mut Vec<Finding>) {
    let name = &b.name;
    let mut sets: BTreeMap<u8, Vec<&MemberConfig>> = BTreeMap::new();
    for m in &b.members {
        let lbset = member_value(&m.params, "lbset", |s| s.lb_set.get()).map_or(0, |(_, n)| n);
        sets.entry(lbset).or_default().push(m);
    }
    let several_sets = sets.len() > 1;
    for (lbset, members) in &sets {
        if !members
            .iter()
            .all(|m| status_flags(m).contains(StatusFlags::HOT_STANDBY))
        {
            continue;
        }
        let scope = if several_sets {
            format!("lbset {lbset} of {name}")
        } else {
            name.clone()
        };
        out.push(Finding {
            severity: Severity::Warning,
            rule: "all-hot-standby",
            span: if several_sets { members[0].span } else { b.span },
            what: format!("every member of {scope} is a hot standby (+H)"),
            causes: format!(
                "there is no regular member for the standbys to stand in for, so +H does nothing: \
                 all of {scope} serves traffic all the time, and the spare capacity you meant to keep \
                 in reserve is not there when a member fails"
            ),
            fix: format!(
                "remove +H from the members of {scope} that should take traffic normally, keeping it \
                 only on the spares"
            ),
        });
    }
}

/// `hcuri-relative`: an `hcuri` (on a member or a `ProxyHCTemplate`) without a leading `/`.
///
/// mod_proxy_hcheck sends it as is (`GET health HTTP/1.0`), which backends refuse, so the
/// check fails and takes healthy members out.
fn hcuri_relative(whose: &str, params: &[Param], out: &mut Vec<Finding>) {
    let Some(p) = param(params, "hcuri") else {
        return;
    };
    let uri = p.value.trim();
    if uri.is_empty() || uri.starts_with('/') {
        return;
    }
    out.push(Finding {
        severity: Severity::Error,
        rule: "hcuri-relative",
        span: p.span,
        what: format!("{whose} has hcuri={uri}, without a leading /"),
        causes: format!(
            "the probe is sent literally as \"GET {uri} HTTP/1.0\", which backends answer with 400 or 404, \
             so the health check fails and takes healthy members out: 503 although the backends are fine"
        ),
        fix: format!("write hcuri=/{uri}"),
    });
}

/// `retry-too-long`: a member `retry` above 30 seconds.
///
/// Apache keeps a member in error out of rotation for its whole `retry`, even when it
/// recovered at once.
fn retry_too_long(b: &BalancerConfig, m: &MemberConfig, out: &mut Vec<Finding>) {
    let Some((p, secs)) = retry_secs(m).filter(|(_, s)| *s > 30) else {
        return;
    };
    out.push(Finding {
        severity: Severity::Warning,
        rule: "retry-too-long",
        span: p.span,
        what: format!("member {} of {} has retry={secs} (seconds)", m.url, b.name),
        causes: format!(
            "members stuck in Err: after one failure {} stays out of rotation for {secs} s even \
             if it recovers at once, and the other members carry its load meanwhile",
            m.url
        ),
        fix: format!(
            "set retry=10 (or less) on {}, and add a health check (hcmethod=GET hcuri=/health) so a \
             failed member is found and re-enabled by probes",
            m.url
        ),
    });
}

/// `no-health-check`: a member without `hcmethod` (or with `hcmethod=None`), directly or
/// through `hctemplate`.
///
/// Without mod_proxy_hcheck a dead member is found only by failing client requests, and is
/// tried again only after its `retry`. The parameters are walked in order, as Apache applies
/// them: a template copies its parameters where it is named, and later ones override.
fn no_health_check(config: &Config, b: &BalancerConfig, m: &MemberConfig, out: &mut Vec<Finding>) {
    let mut method: Option<bool> = None; // Some(true) = a real method, Some(false) = None
    for p in &m.params {
        if p.key.eq_ignore_ascii_case("hcmethod") {
            method = is_real_method(&p.value).or(method);
        } else if p.key.eq_ignore_ascii_case("hctemplate") {
            match config
                .hc_templates
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(p.value.trim()))
            {
                Some(t) => {
                    if let Some(tm) = param(&t.params, "hcmethod") {
                        method = is_real_method(&tm.value).or(method);
                    }
                }
                // An undefined template is the parser's business: assume it checks.
                None => method = Some(true),
            }
        }
    }
    if method == Some(true) {
        return;
    }
    let retry = retry_secs(m).map_or_else(
        || "retry (60 s by default)".to_owned(),
        |(_, s)| format!("retry ({s} s)"),
    );
    out.push(Finding {
        severity: Severity::Warning,
        rule: "no-health-check",
        span: m.span,
        what: format!("member {} of {} has no health check", m.url, b.name),
        causes: format!(
            "a dead backend is only noticed when client requests to it fail (errors reach clients \
             first), and once in error it is tried again only after its {retry} has passed, however \
             soon it recovered; if it is still down then, the next client request fails again"
        ),
        fix: format!(
            "add hcmethod=GET hcuri=/health (and hcinterval=5) to {}, or a shared ProxyHCTemplate \
             used with hctemplate=NAME",
            m.url
        ),
    });
}

// ---------------------------------------------------------------------------------------------
// The route cookie written with `Header … Set-Cookie`.

/// A `Header … Set-Cookie "NAME=VALUE; path=…"` that writes `%{BALANCER_WORKER_ROUTE}e`, read.
#[derive(Debug)]
struct RouteCookie<'a> {
    header: &'a HeaderDirective,
    /// The cookie name.
    name: &'a str,
    /// The cookie value as written, with its `%{…}e` references.
    value: &'a str,
    /// The `path=` attribute, if any.
    path: Option<&'a str>,
}

impl<'a> RouteCookie<'a> {
    /// The route cookie a header sets, if it is one.
    fn read(h: &'a HeaderDirective) -> Option<Self> {
        let writes_route = !h.request
            && h.name.eq_ignore_ascii_case("set-cookie")
            && matches!(
                h.action,
                HeaderAction::Add | HeaderAction::Set | HeaderAction::Append
            )
            && h.value
                .to_ascii_uppercase()
                .contains("%{BALANCER_WORKER_ROUTE}E");
        if !writes_route {
            return None;
        }
        let mut parts = h.value.trim().split(';');
        let first = parts.next().unwrap_or("").trim();
        let (name, value) = first.split_once('=')?;
        let path = parts.find_map(|a| {
            let (k, v) = a.split_once('=')?;
            k.trim().eq_ignore_ascii_case("path").then(|| v.trim())
        });
        Some(Self {
            header: h,
            name: name.trim(),
            value,
            path,
        })
    }
}

/// `route-cookie-mismatch`: a `Header … Set-Cookie "NAME=.%{BALANCER_WORKER_ROUTE}e; path=…"`
/// whose name, separator or path does not match the balancer it is for.
///
/// Apache reads the route from the cookie named by `stickysession`, after the
/// `stickysessionsep` separator; the browser sends it back only under its `path`. Any of the
/// three wrong and sessions never stick.
fn route_cookie_mismatch(config: &Config, out: &mut Vec<Finding>) {
    let sticky: Vec<(&BalancerConfig, StickySession)> = config
        .balancers
        .iter()
        .filter_map(|b| sticky_session(b).map(|(_, s)| (b, s)))
        .collect();
    for cookie in config.headers.iter().filter_map(RouteCookie::read) {
        let matching: Vec<&BalancerConfig> = sticky
            .iter()
            .filter(|(_, s)| s.cookie() == cookie.name)
            .map(|(b, _)| *b)
            .collect();
        if matching.is_empty() {
            cookie_name_mismatch(&cookie, &sticky, out);
            continue;
        }
        for b in matching {
            cookie_separator_mismatch(&cookie, b, out);
            cookie_path_mismatch(config, &cookie, b, out);
        }
    }
}

/// No sticky balancer reads a cookie of this name.
fn cookie_name_mismatch(
    cookie: &RouteCookie<'_>,
    sticky: &[(&BalancerConfig, StickySession)],
    out: &mut Vec<Finding>,
) {
    let name = cookie.name;
    let (what, fix) = match sticky.first() {
        None => (
            format!("the route cookie {name} is set but no balancer has a stickysession"),
            format!("add stickysession={name} to the balancer this cookie is for"),
        ),
        Some((_, first)) => {
            let names: Vec<String> = sticky
                .iter()
                .map(|(b, s)| format!("{} (stickysession={})", b.name, s.cookie()))
                .collect();
            (
                format!(
                    "the route cookie is named {name}, but the sticky balancers read {}",
                    names.join(", ")
                ),
                format!(
                    "use the same name in both places: rename the cookie in this Header to {} or set \
                     stickysession={name}",
                    first.cookie()
                ),
            )
        }
    };
    out.push(Finding {
        severity: Severity::Error,
        rule: "route-cookie-mismatch",
        span: cookie.header.span,
        what,
        causes: "sessions never stick: browsers send back the cookie, but the balancer looks for \
                 another name, so every request is balanced anew and the cookie is set again on \
                 every response"
            .into(),
        fix,
    });
}

/// The cookie value has no `stickysessionsep` separator before the route.
fn cookie_separator_mismatch(cookie: &RouteCookie<'_>, b: &BalancerConfig, out: &mut Vec<Finding>) {
    // The separator the balancer expects before the route: `.` unless stickysessionsep says
    // otherwise (Off: none); a value the core refuses skips the check.
    let sep = match param(&b.params, "stickysessionsep") {
        None => Some('.'),
        Some(_) => match balancer_value(b, "stickysessionsep", |p| p.sticky_session_sep) {
            Some((_, sep)) => sep,
            None => return,
        },
    };
    let Some(sep) = sep else {
        return;
    };
    let name = cookie.name;
    let before = cookie
        .value
        .find("%{")
        .map_or(cookie.value, |i| &cookie.value[..i]);
    if before.contains(sep) {
        return;
    }
    out.push(Finding {
        severity: Severity::Error,
        rule: "route-cookie-mismatch",
        span: cookie.header.span,
        what: format!(
            "the route cookie {name} has no \"{sep}\" before the route, which {} expects \
             (stickysessionsep)",
            b.name
        ),
        causes: "sessions never stick: a cookie value without the separator is not read as a \
                 route, so every request is balanced anew"
            .into(),
        fix: format!(
            "write the value as \"{name}={sep}%{{BALANCER_WORKER_ROUTE}}e\"{}",
            cookie
                .path
                .map_or_else(String::new, |p| format!(" with \"; path={p}\" after it"))
        ),
    });
}

/// The cookie has no `path=` (a warning), or one that does not cover a `ProxyPass` to the
/// balancer (an error).
fn cookie_path_mismatch(
    config: &Config,
    cookie: &RouteCookie<'_>,
    b: &BalancerConfig,
    out: &mut Vec<Finding>,
) {
    let name = cookie.name;
    let passes: Vec<&str> = config
        .proxy_passes
        .iter()
        .filter(|pp| {
            matches!(&pp.target, ProxyTarget::Balancer { name: n, .. } if n.eq_ignore_ascii_case(&b.name))
        })
        .map(|pp| pp.path.as_str())
        .collect();
    let Some(p) = cookie.path else {
        out.push(Finding {
            severity: Severity::Warning,
            rule: "route-cookie-mismatch",
            span: cookie.header.span,
            what: format!("the route cookie {name} has no path="),
            causes: "the browser then keeps the cookie only for the directory of the first page that \
                     set it, so requests elsewhere under the same ProxyPass lose their route and are \
                     balanced anew"
                .into(),
            fix: format!(
                "add \"; path={}\" to the cookie",
                passes.first().map_or("/", |p| p)
            ),
        });
        return;
    };
    for pass in passes.iter().filter(|pass| !path_covers(p, pass)) {
        out.push(Finding {
            severity: Severity::Error,
            rule: "route-cookie-mismatch",
            span: cookie.header.span,
            what: format!(
                "the route cookie {name} has path={p}, which does not cover ProxyPass {pass} \
                 to {}",
                b.name
            ),
            causes: format!(
                "browsers do not send the cookie for requests under {pass}, so those sessions \
                 never stick and get a new cookie on every response"
            ),
            fix: format!("set path=/ (or path={pass}) on the cookie"),
        });
    }
}

/// Whether a cookie with path `cookie` is sent for every request under the prefix `prefix`.
fn path_covers(cookie: &str, prefix: &str) -> bool {
    let c = cookie.trim_end_matches('/');
    c.is_empty()
        || prefix == c
        || prefix
            .strip_prefix(c)
            .is_some_and(|rest| rest.starts_with('/'))
}

// ---------------------------------------------------------------------------------------------
// The balancer-manager and ProxyPass.

/// `manager-without-require`: a balancer-manager `<Location>` without `Require`, or with
/// `Require all granted`.
///
/// Apache then lets anyone who reaches the server change the balancers through the manager.
fn manager_without_require(config: &Config, out: &mut Vec<Finding>) {
    for loc in &config.manager_locations {
        let open = loc.requires.iter().any(|r| {
            let words: Vec<String> = r.split_whitespace().map(str::to_ascii_lowercase).collect();
            words == ["all", "granted"]
        });
        if loc.requires.is_empty() || open {
            out.push(Finding {
                severity: Severity::Error,
                rule: "manager-without-require",
                span: loc.span,
                what: if open {
                    format!("the balancer-manager at {} has Require all granted", loc.path)
                } else {
                    format!("the balancer-manager at {} has no Require", loc.path)
                },
                causes: "under Apache, anyone who can reach this server can disable, stop or re-weight \
                         members, or add new ones, through the manager page: one request can take the site down \
                         (proxy-balancer admits only loopback when no Require is given)"
                    .into(),
                fix: format!(
                    "inside <Location \"{}\">, admit only operators, e.g. \"Require ip 127.0.0.1 ::1\" or \
                     \"Require ip 10.0.0.0/8\" (and authentication if it is reachable from outside)",
                    loc.path
                ),
            });
        }
    }
}

/// `not-applied`: what the reverse proxy (`proxy_balancer::site`) refuses at start rather
/// than run without, so that `--check` says it before `--config` does.
///
/// Apache applies these lines; the site does not support them and will not silently drop a
/// response-header rule, an interpolation or an access rule.
fn not_applied(config: &Config, out: &mut Vec<Finding>) {
    let mut refuse = |span, what: String, fix: &str| {
        out.push(Finding {
            severity: Severity::Error,
            rule: "not-applied",
            span,
            what,
            causes: "the reverse proxy refuses to start with this configuration rather than run without \
                     the rule"
                .into(),
            fix: fix.into(),
        });
    };
    for skipped in &config.skipped {
        if skipped.directive.eq_ignore_ascii_case("header") {
            refuse(
                skipped.span,
                "a Header line the proxy does not apply (edit, echo, note, an expr= condition, or inside a context)".into(),
                "use add, set, append, merge, setifempty or unset, with an optional env= condition, at server level",
            );
        }
    }
    for refusal in config.log_refusals() {
        let what = refusal.to_string();
        let what = what.split_once(": ").map_or(what.as_str(), |(_, w)| w);
        refuse(
            refusal.span(),
            what.to_owned(),
            "write the log to a file, with every request (see the message)",
        );
    }
    for (rewrites, directive) in [
        (
            &config.proxy_pass_reverse_cookie_domains,
            "ProxyPassReverseCookieDomain",
        ),
        (
            &config.proxy_pass_reverse_cookie_paths,
            "ProxyPassReverseCookiePath",
        ),
    ] {
        for r in rewrites.iter().filter(|r| r.interpolate) {
            refuse(
                r.span,
                format!("{directive} {} {} interpolate", r.internal, r.public),
                "write the values out; interpolation from the environment is not supported",
            );
        }
    }
    for loc in &config.manager_locations {
        for require in &loc.requires {
            let mut words = require.split_whitespace();
            let kind = words.next().map(str::to_ascii_lowercase);
            let rest: Vec<&str> = words.collect();
            let supported = match kind.as_deref() {
                Some("ip") => !rest.is_empty() && rest.iter().all(|net| is_network(net)),
                Some("all") => rest.len() == 1 && rest[0].eq_ignore_ascii_case("granted"),
                _ => false,
            };
            if !supported {
                refuse(
                    loc.span,
                    format!("Require {require} for the balancer-manager at {}", loc.path),
                    "admit operators with Require ip ADDR[/PREFIX] …",
                );
            }
        }
    }
}

/// `not-applied`, from the [`registry`](crate::registry): each directive that was read and
/// listed as skipped, and each worker parameter or `ProxyPass` flag given, that proxy-balancer
/// does not apply; the finding says what that means, with the registry's severity.
///
/// A skipped directive the registry says is applied was not read where it is written (a
/// `ProxySet` for a URL that is no member, a `ProxyPass` inside `<Proxy>`): reported too, as
/// a warning, so that nothing is dropped in silence. `Header` lines and directives written
/// in a block (the `no-effect` rule) have their own rules.
fn not_applied_registry(config: &Config, out: &mut Vec<Finding>) {
    use crate::registry::{self, State};
    const FIX: &str = "remove the line if the proxy can do without it (docs/apache-directives.md lists what each directive does here)";
    let mut report = |severity, span, what: String, causes: &str, fix: &str| {
        out.push(Finding {
            severity,
            rule: "not-applied",
            span,
            what,
            causes: causes.into(),
            fix: fix.into(),
        });
    };
    for s in config.skipped.iter().filter(|s| !s.in_block) {
        if s.directive.eq_ignore_ascii_case("header") {
            continue;
        }
        let Some(entry) = registry::directive(&s.directive) else {
            continue;
        };
        let name = entry.name;
        match entry.state {
            State::NotApplied { severity, means } => report(
                severity,
                s.span,
                format!("{name} is not applied by proxy-balancer"),
                &format!("not applied by proxy-balancer: {means}"),
                if severity == Severity::Error {
                    "enforce the rule in front of the proxy or in the backend, and remove it here"
                } else {
                    FIX
                },
            ),
            // A `<Proxy>` block the proxy reads (`<Proxy *>`): what is inside is reported line
            // by line. (Other blocks listed here were not read, their content neither.)
            State::Applied(_) if name == "<Proxy>" || name == "<Location>" => {}
            State::Applied(_) => report(
                Severity::Warning,
                s.span,
                format!("{name} here is not read by proxy-balancer"),
                &format!(
                    "not applied by proxy-balancer: it applies {name} ({}), but this line is not read where it is written, so it has no effect",
                    entry.state.text()
                ),
                "move the line where it applies (see docs/apache-directives.md), or remove it",
            ),
            // Refused lines never reach the configuration (`ProxyRequests Off` is accepted).
            _ => {}
        }
    }
    // Worker parameters, per balancer and key: one finding naming every line. Linear in
    // the parameters: a lookup per distinct key as written, a short list per owner.
    type Grouped = Vec<(&'static registry::Entry, Vec<Span>)>;
    fn group(grouped: &mut Grouped, entry: Option<&'static registry::Entry>, span: Span) {
        let Some(entry) = entry.filter(|e| !matches!(e.state, State::Applied(_))) else {
            return;
        };
        match grouped.iter_mut().find(|(e, _)| std::ptr::eq(*e, entry)) {
            Some((_, spans)) => spans.push(span),
            None => grouped.push((entry, vec![span])),
        }
    }
    let mut worker_keys: std::collections::HashMap<&str, Option<&'static registry::Entry>> =
        std::collections::HashMap::new();
    let mut params: Vec<(String, &'static registry::Entry, Vec<Span>)> = Vec::new();
    for b in &config.balancers {
        let mut grouped = Grouped::new();
        for p in b.members.iter().flat_map(|m| &m.params) {
            let entry = *worker_keys
                .entry(p.key.as_str())
                .or_insert_with(|| registry::worker_param(&p.key));
            group(&mut grouped, entry, p.span);
        }
        let owner = format!("the members of {}", b.name);
        params.extend(grouped.into_iter().map(|(e, s)| (owner.clone(), e, s)));
    }
    for pp in &config.proxy_passes {
        let mut grouped = Grouped::new();
        for p in &pp.params {
            let entry = registry::proxy_pass_flag(&p.key).or_else(|| match pp.target {
                ProxyTarget::Url(_) => registry::worker_param(&p.key),
                _ => registry::balancer_param(&p.key),
            });
            group(&mut grouped, entry, p.span);
        }
        if pp.interpolate {
            group(
                &mut grouped,
                registry::proxy_pass_flag("interpolate"),
                pp.span,
            );
        }
        let owner = format!("ProxyPass {}", pp.path);
        params.extend(grouped.into_iter().map(|(e, s)| (owner.clone(), e, s)));
    }
    for (owner, entry, spans) in params {
        let lines: Vec<String> = spans.iter().map(|s| s.line.to_string()).collect();
        let key = entry.name;
        let on = if entry.kind == registry::Kind::ProxyPassFlag && key == "interpolate" {
            format!("interpolate on {owner}")
        } else {
            format!("{key}= on {owner}")
        };
        let lines = match lines.as_slice() {
            [one] => format!("line {one}"),
            _ => format!("lines {}", lines.join(", ")),
        };
        match entry.state {
            State::NotApplied { severity, means } => report(
                severity,
                spans[0],
                format!("{on} ({lines}) is not applied by proxy-balancer"),
                &format!("not applied by proxy-balancer: {means}"),
                &format!("remove {} from {owner} if the proxy can do without it (docs/apache-directives.md lists what each parameter does here)", on.split(" on ").next().unwrap_or(key)),
            ),
            State::Refused(why) => report(
                Severity::Error,
                spans[0],
                format!("{on} ({lines}) is not applied by proxy-balancer"),
                &format!("not applied by proxy-balancer: {why}"),
                "remove the parameter",
            ),
            _ => {}
        }
    }
}

/// `no-effect`: server directives the reverse proxy reads but that change nothing there, so
/// that nobody counts on them.
fn no_effect(config: &Config, out: &mut Vec<Finding>) {
    let lines = [(
        config.server.balancer_inherit == Some(false) && config.virtual_hosts.is_empty(),
        "BalancerInherit Off",
        "there is no <VirtualHost> to inherit balancers into: every balancer is the server's",
        "drop the line",
    )];
    log_no_effect(config, out);
    for (present, what, causes, fix) in lines {
        if present {
            out.push(Finding {
                severity: Severity::Warning,
                rule: "no-effect",
                span: Span::default(),
                what: format!("{what} has no effect here"),
                causes: causes.into(),
                fix: fix.into(),
            });
        }
    }
    // A server-level directive written inside a block is read and checked, not applied:
    // one finding for each, whatever the directive.
    for setting in config.skipped.iter().filter(|s| s.in_block) {
        let d = setting.directive.to_ascii_lowercase();
        let causes = if crate::front::is_front_directive(&d) {
            "the reverse proxy applies one set of client limits to every connection, the one given at server level; this line is not applied"
        } else if matches!(
            d.as_str(),
            "errorlog" | "customlog" | "transferlog" | "logformat" | "loglevel"
        ) {
            "only server-level logging directives are applied: this block's requests and errors go to the server's logs"
        } else {
            "the reverse proxy reads this directive at server level only (it has no per-<VirtualHost> or per-<Location> settings yet); this line is not applied"
        };
        out.push(Finding {
            severity: Severity::Warning,
            rule: "no-effect",
            span: setting.span,
            what: format!(
                "{} inside a <VirtualHost>, <Proxy> or <Location> block has no effect here",
                setting.directive
            ),
            causes: causes.into(),
            fix: "move the line to server level (outside every block)".into(),
        });
    }
}

/// `no-effect` for logging: log directives outside server context (a `<VirtualHost>`'s
/// logs: its requests go to the server's), `ErrorLogFormat` (the error log's lines are the
/// proxy's own), and `LogLevel` modules with no counterpart here (`ssl:warn`).
fn log_no_effect(config: &Config, out: &mut Vec<Finding>) {
    let mut warn = |span, what: String, causes: &str, fix: &str| {
        out.push(Finding {
            severity: Severity::Warning,
            rule: "no-effect",
            span,
            what,
            causes: causes.into(),
            fix: fix.into(),
        });
    };
    for skipped in &config.skipped {
        let d = skipped.directive.to_ascii_lowercase();
        if d == "errorlogformat" {
            warn(
                skipped.span,
                "ErrorLogFormat has no effect here".to_owned(),
                "the error log's lines have the proxy's own format ([time] [target:level] [pid N] message)",
                "drop the line",
            );
        }
    }
    for level in &config.log_directives.log_levels {
        for (module, _) in &level.modules {
            if crate::logs::module_targets(module).is_none() {
                warn(
                    level.span,
                    format!("LogLevel {module}:… has no effect here"),
                    "no part of the reverse proxy logs as that module",
                    "drop the module from the line",
                );
            }
        }
    }
}

/// `worker-shared`: a `ProxyPass` to a plain URL that an earlier `ProxyPass` already uses,
/// with parameters of its own.
///
/// Apache shares one worker per URL: the first line defines it and the later line's
/// parameters are ignored (AH01146 "Ignoring parameter … because of worker sharing"); so
/// does the reverse proxy.
fn worker_shared(config: &Config, out: &mut Vec<Finding>) {
    // URL → the line of its first ProxyPass (a map: linear in the ProxyPasses).
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for pp in &config.proxy_passes {
        let ProxyTarget::Url(url) = &pp.target else {
            continue;
        };
        let Ok(key) = proxy_balancer_core::MemberUrl::new(url) else {
            continue;
        };
        let key = key.to_string();
        match seen.get(&key) {
            Some(first) if !pp.params.is_empty() => out.push(Finding {
                severity: Severity::Warning,
                rule: "worker-shared",
                span: pp.span,
                what: format!(
                    "ProxyPass {} {url}: the worker for {key} was defined on line {first}; these parameters are ignored",
                    pp.path
                ),
                causes: "every ProxyPass to one URL shares the first one's worker, as in Apache (AH01146)"
                    .into(),
                fix: format!("put the parameters on the first ProxyPass to {key} (line {first})"),
            }),
            Some(_) => {}
            None => {
                seen.insert(key, pp.span.line);
            }
        }
    }
}

/// Whether `net` is `ADDR` or `ADDR/PREFIX` with a prefix the address family allows.
fn is_network(net: &str) -> bool {
    let (addr, prefix) = match net.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (net, None),
    };
    let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let most = if addr.is_ipv4() { 32 } else { 128 };
    prefix.map_or(true, |p| p.parse::<u8>().is_ok_and(|p| p <= most))
}

/// `proxypass-trailing-slash`: a `ProxyPass` path and target that disagree on a trailing
/// slash.
///
/// Apache glues the rest of the request path to the target as is: `ProxyPass /app/
/// http://b/app` sends `/app/x` on as `/appx`, and the other way round gives `//`. An error
/// when the path ends in `/` (wrong paths), a warning when only the target does.
fn proxypass_trailing_slash(config: &Config, out: &mut Vec<Finding>) {
    for pp in &config.proxy_passes {
        let (target, target_path) = match &pp.target {
            ProxyTarget::Balancer { name, path } => (format!("{name}{path}"), path.as_str()),
            ProxyTarget::Url(url) => {
                let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
                (url.clone(), path)
            }
            _ => continue,
        };
        let front = pp.path.ends_with('/');
        let back = target_path.ends_with('/');
        if front == back {
            continue;
        }
        let (severity, example, fixed) = if front {
            let trimmed = pp.path.trim_end_matches('/');
            (
                Severity::Error,
                format!("{}x is sent on as {target}x", pp.path),
                if trimmed.is_empty() {
                    format!("ProxyPass / {target}/")
                } else {
                    format!(
                        "ProxyPass {} {target}/ (or ProxyPass {trimmed} {target})",
                        pp.path
                    )
                },
            )
        } else {
            (
                Severity::Warning,
                format!(
                    "{p}/x is sent on as {target}/x, with a double slash",
                    p = pp.path
                ),
                format!(
                    "ProxyPass {} {} (or ProxyPass {}/ {target})",
                    pp.path,
                    target.trim_end_matches('/'),
                    pp.path
                ),
            )
        };
        out.push(Finding {
            severity,
            rule: "proxypass-trailing-slash",
            span: pp.span,
            what: format!(
                "ProxyPass {} {target}: the path {} trailing slash and the target {}",
                pp.path,
                if front { "has a" } else { "has no" },
                if back { "has one" } else { "has none" }
            ),
            causes: format!(
                "the rest of the request path is glued to the target as is: {example}, so backends get \
                 wrong paths (404s, broken links)"
            ),
            fix: format!("end both with a slash or neither: {fixed}"),
        });
    }
}

/// `ssl-proxy-engine-off`, `ssl-proxy-verify-default`, `ssl-proxy-verify-none`: the TLS
/// members each server's requests go to ([`Config::tls_member_uses`]), against the server's
/// `SSLProxy*` settings.
///
/// Seen on Apache 2.4.71 (loopback): without `SSLProxyEngine On` the configuration starts
/// and each request to an https member gets a 500 (AH00961 "failed to enable ssl
/// support"); with it and no `SSLProxyVerify`, a member certificate from an unknown CA is
/// accepted (the name and dates are still checked: one for another name fails, AH02411).
fn tls_members(config: &Config, out: &mut Vec<Finding>) {
    use crate::ssl::SslProxyVerify;
    let mut seen = std::collections::HashSet::new();
    let mut seen_verify = std::collections::HashSet::new();
    // A TLS `discover=` line is refused whatever the SSLProxy* lines say (a parse error
    // that names it): advice to add SSLProxyEngine On would not make it start.
    let discover_lines: std::collections::HashSet<_> = config
        .balancers
        .iter()
        .flat_map(|b| b.members.iter())
        .filter(|m| crate::discovery::is_discovered(m))
        .map(|m| m.span)
        .collect();
    for u in config.tls_member_uses() {
        if discover_lines.contains(&u.member_span) {
            continue;
        }
        if !seen.insert((u.server, u.url.to_ascii_lowercase())) {
            continue;
        }
        let ssl = &u.ssl_proxy;
        let server = match u.server {
            None => "the main server".to_owned(),
            Some(v) => format!(
                "the <VirtualHost> at line {}",
                config.virtual_hosts.get(v).map_or(0, |h| h.span.line)
            ),
        };
        if !ssl.engine_on() {
            out.push(Finding {
                severity: Severity::Error,
                rule: "ssl-proxy-engine-off",
                span: u.member_span,
                what: format!("{} is reached over TLS, and {server} has no SSLProxyEngine On (the ProxyPass at line {})", u.url, u.pass_span.line),
                causes: "Apache answers every request to this member with 500 (AH00961: failed to enable ssl support); proxy-balancer refuses to start".to_owned(),
                fix: format!("add SSLProxyEngine On to {server} (with SSLProxyCACertificateFile for a private CA), or use an http:// member"),
            });
            continue;
        }
        // The verification notes: once per server (or per SSLProxyVerify line), not per
        // member.
        let once = match &ssl.verify {
            None => seen_verify.insert((u.server, None)),
            Some(v) => seen_verify.insert((None, Some(v.span))),
        };
        if !once {
            continue;
        }
        match ssl.verify.as_ref().map(|v| (v.value, v.span)) {
            None => out.push(Finding {
                severity: Severity::Note,
                rule: "ssl-proxy-verify-default",
                span: u.member_span,
                what: format!("{} is reached over TLS, and {server} has no SSLProxyVerify", u.url),
                causes: format!("proxy-balancer verifies the member's certificate against {} (Apache's default, SSLProxyVerify none, does not): a self-signed or private-CA certificate fails the handshake and the member goes into error", if ssl.ca_certificate_file.is_some() || ssl.ca_certificate_path.is_some() { "SSLProxyCACertificateFile/Path" } else { "the system's trust store" }),
                fix: "keep it (safer), give the members' CA with SSLProxyCACertificateFile, or write SSLProxyVerify none for Apache's behaviour".to_owned(),
            }),
            Some((SslProxyVerify::None | SslProxyVerify::OptionalNoCa, span)) => out.push(Finding {
                severity: Severity::Warning,
                rule: "ssl-proxy-verify-none",
                span,
                what: format!("SSLProxyVerify does not verify {}'s certificate chain", u.url),
                causes: "anyone who can answer on the member's address with a certificate for its name (self-signed will do) is taken for the member and sees the proxied requests".to_owned(),
                fix: "SSLProxyVerify require, with SSLProxyCACertificateFile naming the members' CA".to_owned(),
            }),
            Some(_) => {}
        }
    }
}
