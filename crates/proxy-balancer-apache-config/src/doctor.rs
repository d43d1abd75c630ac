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
//! | `proxypass-trailing-slash` | error (path ends in `/`) or warning (target does) | a `ProxyPass` path and target that disagree on a trailing slash |
//!
//! Unknown parameters (`hcpath` for `hcuri`…) never reach the doctor: the parser rejects them
//! with a "did you mean", so a [`Config`] only holds known keys. Values the doctor cannot read
//! (`retry=soon`) are left to the parser too: the rule that needs them skips them.
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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ast::{BalancerConfig, Config, HeaderDirective, MemberConfig, Param, ProxyTarget, Span};

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
///     span: Span { line: 12, column: 5 },
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
        check_balancer(config, balancer, &mut out);
    }
    check_route_cookies(config, &mut out);
    check_managers(config, &mut out);
    check_proxy_passes(config, &mut out);
    for t in &config.hc_templates {
        check_hcuri(&format!("ProxyHCTemplate {}", t.name), &t.params, &mut out);
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
///     span: Span { line: 3, column: 1 },
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
// Reading parameter values leniently.

/// The last parameter with this key (keys are case-insensitive; a later one wins, as in Apache).
fn param<'a>(params: &'a [Param], key: &str) -> Option<&'a Param> {
    params
        .iter()
        .rev()
        .find(|p| p.key.eq_ignore_ascii_case(key))
}

fn on_off(value: &str) -> Option<bool> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("on") {
        Some(true)
    } else if v.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

fn number(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// The status flags a member starts with (upper-case letters), from its `status=` parameters
/// applied in order. A value that does not parse is skipped.
fn status_flags(member: &MemberConfig) -> BTreeSet<char> {
    let mut flags = BTreeSet::new();
    for p in member
        .params
        .iter()
        .filter(|p| p.key.eq_ignore_ascii_case("status"))
    {
        let mut next = flags.clone();
        let mut set = true;
        let mut ok = true;
        for c in p.value.trim().chars() {
            match c {
                '+' => set = true,
                '-' => set = false,
                c if "DSIRHENC".contains(c.to_ascii_uppercase()) => {
                    let c = c.to_ascii_uppercase();
                    if set {
                        next.insert(c);
                    } else {
                        next.remove(&c);
                    }
                }
                _ => ok = false,
            }
        }
        if ok {
            flags = next;
        }
    }
    flags
}

fn route(member: &MemberConfig) -> Option<&str> {
    param(&member.params, "route")
        .map(|p| p.value.as_str())
        .filter(|r| !r.is_empty())
}

/// The cookie name of a `stickysession` value (`COOKIE|URLPARAM` → `COOKIE`).
fn sticky_cookie(value: &str) -> &str {
    value.split('|').next().unwrap_or("").trim()
}

// ---------------------------------------------------------------------------------------------
// Per-balancer rules.

fn check_balancer(config: &Config, b: &BalancerConfig, out: &mut Vec<Finding>) {
    let name = &b.name;
    let n = b.members.len();
    let sticky = param(&b.params, "stickysession").filter(|p| !sticky_cookie(&p.value).is_empty());

    for m in &b.members {
        check_member(config, b, m, out);
    }

    // member-starts-disabled
    let off: Vec<(&MemberConfig, char)> = b
        .members
        .iter()
        .filter_map(|m| {
            let flags = status_flags(m);
            ['D', 'S']
                .into_iter()
                .find(|c| flags.contains(c))
                .map(|c| (m, c))
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

    // sticky-without-routes / routes-without-sticky / duplicate-route
    let routed: Vec<&MemberConfig> = b.members.iter().filter(|m| route(m).is_some()).collect();
    if let Some(s) = sticky {
        let cookie = sticky_cookie(&s.value);
        if n > 0 && routed.is_empty() {
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
        } else {
            for m in b.members.iter().filter(|m| route(m).is_none()) {
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
                    fix: format!("add route=… to {} (distinct from the other members' routes)", m.url),
                });
            }
        }
    } else if !routed.is_empty() {
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
    let mut seen: BTreeMap<&str, &MemberConfig> = BTreeMap::new();
    for m in &b.members {
        if let Some(r) = route(m) {
            if let Some(first) = seen.get(r) {
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

    // nofailover-with-sticky
    if let (Some(s), Some(nf)) = (sticky, param(&b.params, "nofailover")) {
        if on_off(&nf.value) == Some(true) {
            out.push(Finding {
                severity: Severity::Warning,
                rule: "nofailover-with-sticky",
                span: nf.span,
                what: format!("{name} has nofailover=On with stickysession={}", s.value),
                causes: "sticky sessions prevent failover: when a member fails or is disabled, every user whose \
                         session points at it gets 503 until it is back, although other members are healthy"
                    .into(),
                fix: "remove nofailover=On (the default Off moves those users to another member), unless the \
                      backends truly cannot serve a session they do not hold; then share sessions between \
                      backends instead"
                    .into(),
            });
        }
    }

    // maxattempts-zero
    if let Some(p) = param(&b.params, "maxattempts") {
        if number(&p.value) == Some(0) && n >= 2 {
            out.push(Finding {
                severity: Severity::Warning,
                rule: "maxattempts-zero",
                span: p.span,
                what: format!("{name} has maxattempts=0 with {n} members"),
                causes: "no failover on a dead member: a request sent to a member that refuses the connection \
                         gets 503 instead of being tried on another member"
                    .into(),
                fix: format!(
                    "remove maxattempts (the default tries every member: {}) or set it to 1 or more",
                    n - 1
                ),
            });
        }
    }

    // forcerecovery-off-few-members
    if let Some(p) = param(&b.params, "forcerecovery") {
        if on_off(&p.value) == Some(false) && (1..=2).contains(&n) {
            let retry = b
                .members
                .iter()
                .filter_map(|m| param(&m.params, "retry").and_then(|p| number(&p.value)))
                .max()
                .unwrap_or(60);
            out.push(Finding {
                severity: Severity::Warning,
                rule: "forcerecovery-off-few-members",
                span: p.span,
                what: format!("{name} has forcerecovery=Off with only {n} member(s)"),
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
    }

    // nonce-none
    if let Some(p) = param(&b.params, "nonce") {
        if p.value.trim().eq_ignore_ascii_case("none") {
            out.push(Finding {
                severity: Severity::Warning,
                rule: "nonce-none",
                span: p.span,
                what: format!("{name} has nonce=None"),
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
    }

    // all-hot-standby
    let mut sets: BTreeMap<u64, Vec<&MemberConfig>> = BTreeMap::new();
    for m in &b.members {
        let lbset = param(&m.params, "lbset")
            .and_then(|p| number(&p.value))
            .unwrap_or(0);
        sets.entry(lbset).or_default().push(m);
    }
    let several_sets = sets.len() > 1;
    for (lbset, members) in &sets {
        if members.iter().all(|m| status_flags(m).contains(&'H')) {
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
}

/// `hcuri-relative`: an `hcuri` that does not start with `/` is sent as is (`GET health`).
fn check_hcuri(whose: &str, params: &[Param], out: &mut Vec<Finding>) {
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

fn check_member(config: &Config, b: &BalancerConfig, m: &MemberConfig, out: &mut Vec<Finding>) {
    check_hcuri(&format!("member {} of {}", m.url, b.name), &m.params, out);
    // retry-too-long
    if let Some(p) = param(&m.params, "retry") {
        if let Some(secs) = number(&p.value).filter(|s| *s > 30) {
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
    }

    // no-health-check: walk the parameters in order, as Apache applies them (a template copies its
    // parameters at the point it is named; later ones override).
    let mut method: Option<bool> = None; // Some(true) = a real method, Some(false) = None
    for p in &m.params {
        if p.key.eq_ignore_ascii_case("hcmethod") {
            method = Some(!p.value.trim().eq_ignore_ascii_case("none"));
        } else if p.key.eq_ignore_ascii_case("hctemplate") {
            match config
                .hc_templates
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(p.value.trim()))
            {
                Some(t) => {
                    if let Some(tm) = param(&t.params, "hcmethod") {
                        method = Some(!tm.value.trim().eq_ignore_ascii_case("none"));
                    }
                }
                // An undefined template is the parser's business: assume it checks.
                None => method = Some(true),
            }
        }
    }
    if method != Some(true) {
        let retry = param(&m.params, "retry")
            .and_then(|p| number(&p.value))
            .map_or_else(
                || "retry (60 s by default)".to_owned(),
                |s| format!("retry ({s} s)"),
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
}

// ---------------------------------------------------------------------------------------------
// The route cookie written with `Header … Set-Cookie`.

fn check_route_cookies(config: &Config, out: &mut Vec<Finding>) {
    for h in config.headers.iter().filter(|h| is_route_cookie(h)) {
        let value = h.value.trim();
        let mut parts = value.split(';');
        let first = parts.next().unwrap_or("").trim();
        let Some((name, cookie_value)) = first.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let path = parts.find_map(|a| {
            let (k, v) = a.split_once('=')?;
            k.trim().eq_ignore_ascii_case("path").then(|| v.trim())
        });
        let sticky: Vec<(&BalancerConfig, &str)> = config
            .balancers
            .iter()
            .filter_map(|b| {
                let c = sticky_cookie(&param(&b.params, "stickysession")?.value);
                (!c.is_empty()).then_some((b, c))
            })
            .collect();
        let matching: Vec<&BalancerConfig> = sticky
            .iter()
            .filter(|(_, c)| *c == name)
            .map(|(b, _)| *b)
            .collect();

        if matching.is_empty() {
            let (what, fix) = if sticky.is_empty() {
                (
                    format!("the route cookie {name} is set but no balancer has a stickysession"),
                    format!("add stickysession={name} to the balancer this cookie is for"),
                )
            } else {
                let names: Vec<String> = sticky
                    .iter()
                    .map(|(b, c)| format!("{} (stickysession={c})", b.name))
                    .collect();
                (
                    format!(
                        "the route cookie is named {name}, but the sticky balancers read {}",
                        names.join(", ")
                    ),
                    format!(
                        "use the same name in both places: rename the cookie in this Header to {} or set \
                         stickysession={name}",
                        sticky[0].1
                    ),
                )
            };
            out.push(Finding {
                severity: Severity::Error,
                rule: "route-cookie-mismatch",
                span: h.span,
                what,
                causes: "sessions never stick: browsers send back the cookie, but the balancer looks for \
                         another name, so every request is balanced anew and the cookie is set again on \
                         every response"
                    .into(),
                fix,
            });
            continue;
        }

        for b in &matching {
            // The separator the balancer expects before the route.
            let sep = param(&b.params, "stickysessionsep").map_or(".", |p| p.value.trim());
            let before = cookie_value
                .find("%{")
                .map_or(cookie_value, |i| &cookie_value[..i]);
            if !sep.eq_ignore_ascii_case("off") && !sep.is_empty() && !before.contains(sep) {
                out.push(Finding {
                    severity: Severity::Error,
                    rule: "route-cookie-mismatch",
                    span: h.span,
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
                        path.map_or_else(String::new, |p| format!(" with \"; path={p}\" after it"))
                    ),
                });
            }
            let passes: Vec<&str> = config
                .proxy_passes
                .iter()
                .filter(|pp| {
                    matches!(&pp.target, ProxyTarget::Balancer { name: n, .. } if n.eq_ignore_ascii_case(&b.name))
                })
                .map(|pp| pp.path.as_str())
                .collect();
            match path {
                None => out.push(Finding {
                    severity: Severity::Warning,
                    rule: "route-cookie-mismatch",
                    span: h.span,
                    what: format!("the route cookie {name} has no path="),
                    causes: "the browser then keeps the cookie only for the directory of the first page that \
                             set it, so requests elsewhere under the same ProxyPass lose their route and are \
                             balanced anew"
                        .into(),
                    fix: format!(
                        "add \"; path={}\" to the cookie",
                        passes.first().map_or("/", |p| p)
                    ),
                }),
                Some(p) => {
                    for pass in passes.iter().filter(|pass| !path_covers(p, pass)) {
                        out.push(Finding {
                            severity: Severity::Error,
                            rule: "route-cookie-mismatch",
                            span: h.span,
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
            }
        }
    }
}

fn is_route_cookie(h: &HeaderDirective) -> bool {
    h.name.eq_ignore_ascii_case("set-cookie")
        && ["add", "set", "append"]
            .iter()
            .any(|a| h.action.eq_ignore_ascii_case(a))
        && h.value
            .to_ascii_uppercase()
            .contains("%{BALANCER_WORKER_ROUTE}E")
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

fn check_managers(config: &Config, out: &mut Vec<Finding>) {
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

fn check_proxy_passes(config: &Config, out: &mut Vec<Finding>) {
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
                "ProxyPass {} {target}: the path {} a trailing slash and the target {}",
                pp.path,
                if front { "has" } else { "has no" },
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
