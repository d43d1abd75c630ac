//! mod_headers on the site: the `Header` and `RequestHeader` lines, compiled once into
//! [`HeaderRules`] and applied to each request and response as Apache applies them.
//!
//! The table of what is applied is in `headers.md` (part of the [site docs](super)).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use regex::bytes::{Regex, RegexBuilder};

use super::SiteError;
use crate::apache_config::{FormatPart, HeaderAction, HeaderCondition, HeaderDirective};
use crate::balancer::BalancerInfo;
use crate::health_probe::expr::{ExprRequest, HcExpr, ProbeResponse};

/// Compiled size limit for one regex: header rules are short patterns; the bound makes a
/// pathological repetition an error at start instead of megabytes per rule.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The `Header` and `RequestHeader` lines of a route, compiled once when the site is
/// built. Cloning is cheap (shared); with no rule, applying them does nothing and
/// allocates nothing.
#[derive(Clone, Default)]
pub(crate) struct HeaderRules {
    inner: Option<Arc<Compiled>>,
}

impl std::fmt::Debug for HeaderRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderRules")
            .field("rules", &self.inner.as_ref().map_or(0, |c| c.rules.len()))
            .finish()
    }
}

struct Compiled {
    /// In configuration order.
    rules: Box<[Rule]>,
    /// A rule reads `%t` or `%D`: the request's arrival is noted.
    uses_time: bool,
    /// A rule echoes request headers: those that match are kept for the response.
    echoes: bool,
    /// There is a `RequestHeader` rule.
    request_rules: bool,
    /// A `Header` rule's `expr=` reads the request: it is kept for the response.
    keeps_request: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    OnSuccess,
    Always,
    Request,
}

struct Rule {
    table: Table,
    action: HeaderAction,
    name: HeaderName,
    value: Box<[Part]>,
    /// `edit`/`edit*`: the match; `echo`: the request header names.
    regex: Option<Regex>,
    condition: Option<Condition>,
}

enum Part {
    Text(Box<str>),
    Var(Var),
    RequestTime,
    Duration,
}

/// The environment variables a rule can see.
#[derive(Clone, Copy)]
enum Var {
    BalancerName,
    WorkerName,
    WorkerRoute,
    SessionSticky,
    SessionRoute,
    RouteChanged,
    /// mod_ssl's `HTTPS`: `on` for a request that came over TLS.
    Https,
    /// Any other: never set here.
    Unset,
}

impl Var {
    /// Without case, as Apache's environment table looks names up.
    fn of(name: &str) -> Self {
        [
            ("BALANCER_NAME", Self::BalancerName),
            ("BALANCER_WORKER_NAME", Self::WorkerName),
            ("BALANCER_WORKER_ROUTE", Self::WorkerRoute),
            ("BALANCER_SESSION_STICKY", Self::SessionSticky),
            ("BALANCER_SESSION_ROUTE", Self::SessionRoute),
            ("BALANCER_ROUTE_CHANGED", Self::RouteChanged),
            ("HTTPS", Self::Https),
        ]
        .into_iter()
        .find_map(|(known, var)| known.eq_ignore_ascii_case(name).then_some(var))
        .unwrap_or(Self::Unset)
    }

    fn get(self, info: Option<&BalancerInfo>) -> Option<&str> {
        let info = info?;
        match self {
            Self::BalancerName => Some(info.balancer_name()),
            Self::WorkerName => Some(info.worker_name()),
            Self::WorkerRoute => Some(info.worker_route()),
            Self::SessionSticky => info.session_sticky(),
            Self::SessionRoute => info.session_route(),
            Self::RouteChanged => info.route_changed().then_some("1"),
            Self::Https | Self::Unset => None,
        }
    }

    /// The value a rule sees: `HTTPS` is the request's (`on` over TLS, as mod_ssl sets
    /// it in its fixups, before mod_headers' run), the others the balancer's.
    fn get_in<'a>(self, env: &Env<'a>) -> Option<&'a str> {
        match self {
            Self::Https => env.notes.tls.then_some("on"),
            _ => self.get(env.info),
        }
    }
}

enum Condition {
    Env { var: Var, negated: bool },
    Expr(HcExpr),
}

/// What the response rules need from their request: when it arrived (`%t`, `%D`) and the
/// request headers `echo` copies. Empty (no allocation) when no rule needs them.
#[derive(Debug, Default)]
pub(crate) struct RequestNotes {
    arrival: Option<(SystemTime, tokio::time::Instant)>,
    echo: Option<Box<HeaderMap>>,
    /// The request as the response rules' `expr=` read it (method, path, headers).
    request: Option<Box<(http::Method, String, HeaderMap)>>,
    /// The request headers the `RequestHeader` conditions read, for `Vary`.
    vary: Vec<Box<str>>,
    /// The request came over TLS (`HTTPS`, `%{HTTPS}s`).
    tls: bool,
}

/// The request an `expr=` condition reads, and the `BALANCER_*` values for `env()`.
struct ExprView<'a> {
    method: &'a str,
    uri: &'a str,
    headers: &'a HeaderMap,
    info: Option<&'a BalancerInfo>,
    /// The request headers read, as written: Apache names them in the response's `Vary`.
    vary: std::cell::RefCell<Vec<Box<str>>>,
}

impl ExprRequest for ExprView<'_> {
    fn method(&self) -> &str {
        self.method
    }

    fn uri(&self) -> &str {
        self.uri
    }

    fn header(&self, name: &HeaderName, written: &str) -> Option<&[u8]> {
        let mut vary = self.vary.borrow_mut();
        if !vary.iter().any(|v| v.eq_ignore_ascii_case(written)) {
            vary.push(written.into());
        }
        self.headers.get(name).map(HeaderValue::as_bytes)
    }

    fn env(&self, name: &str) -> Option<&str> {
        Var::of(name).get(self.info)
    }
}

/// What one rule sees when it runs.
struct Env<'a> {
    info: Option<&'a BalancerInfo>,
    notes: &'a RequestNotes,
}

fn refused(h: &HeaderDirective, reason: impl std::fmt::Display) -> SiteError {
    SiteError::Unsupported {
        line: h.span.line,
        reason: format!("{} {} {}: {reason}", h.directive(), h.action, h.name),
    }
}

/// A rule's regular expression, matched on the header's bytes as Apache's PCRE (without its
/// UTF mode) matches them: `.` is any byte, so a value holding obs-text (bytes 0x80–0xFF
/// that are not UTF-8) is matched too, and `\w` or `(?i)` are ASCII. A pattern that needs
/// Unicode to compile (`\p{Greek}`) is compiled with it.
fn regex(h: &HeaderDirective, pattern: &str, case_insensitive: bool) -> Result<Regex, SiteError> {
    let build = |unicode: bool| {
        RegexBuilder::new(pattern)
            .unicode(unicode)
            .case_insensitive(case_insensitive)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    build(false).or_else(|_| build(true)).map_err(|e| {
        let why = match e {
            regex::Error::Syntax(text) => text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: ").map(str::to_owned))
                .unwrap_or(text),
            other => other.to_string(),
        };
        refused(
            h,
            format!("the regular expression \"{pattern}\" does not compile: {why}"),
        )
    })
}

impl HeaderRules {
    /// Compiles the lines of one route (the server's, then its matching locations', in the
    /// order Apache merges them).
    ///
    /// # Errors
    ///
    /// [`SiteError::Unsupported`] with the line of a rule that cannot be applied: a regex
    /// that does not compile, an `expr=` outside the supported subset, a header name or a
    /// value the parser would have refused (for a hand-built configuration).
    pub(crate) fn compile(lines: &[&HeaderDirective]) -> Result<Self, SiteError> {
        if lines.is_empty() {
            return Ok(Self::default());
        }
        let mut rules = Vec::with_capacity(lines.len());
        let (mut uses_time, mut echoes, mut request_rules) = (false, false, false);
        let mut keeps_request = false;
        for &h in lines {
            let table = match (h.request, h.always) {
                (true, _) => Table::Request,
                (false, true) => Table::Always,
                (false, false) => Table::OnSuccess,
            };
            request_rules |= table == Table::Request;
            let parts = h.format().map_err(|why| refused(h, why))?;
            let mut value = Vec::with_capacity(parts.len());
            for part in parts {
                value.push(match part {
                    FormatPart::Text(text) => Part::Text(text.into()),
                    FormatPart::Env(name) => Part::Var(Var::of(&name)),
                    // mod_ssl's variables: HTTPS is known; the others are not kept.
                    FormatPart::Ssl(name) if name.eq_ignore_ascii_case("HTTPS") => {
                        Part::Var(Var::Https)
                    }
                    FormatPart::Ssl(_) => Part::Text("(null)".into()),
                    FormatPart::RequestTime => {
                        uses_time = true;
                        Part::RequestTime
                    }
                    FormatPart::Duration => {
                        uses_time = true;
                        Part::Duration
                    }
                    _ => return Err(refused(h, "this value format is not supported")),
                });
            }
            match h.action {
                HeaderAction::Add
                | HeaderAction::Set
                | HeaderAction::Append
                | HeaderAction::Merge
                | HeaderAction::SetIfEmpty
                | HeaderAction::Unset
                | HeaderAction::Edit
                | HeaderAction::EditAll
                | HeaderAction::Echo => {}
                _ => return Err(refused(h, "this action is not supported")),
            }
            let (name, regex) = match h.action {
                HeaderAction::Echo if h.request => {
                    return Err(refused(h, "echo is a Header action only"))
                }
                HeaderAction::Echo => {
                    echoes = true;
                    // Any name: unused.
                    (
                        HeaderName::from_static("x-echo"),
                        Some(regex(h, &h.name, true)?),
                    )
                }
                action => {
                    let name = HeaderName::from_bytes(h.name.as_bytes())
                        .map_err(|_| refused(h, "not a header name that can be sent"))?;
                    let regex = match action {
                        HeaderAction::Edit | HeaderAction::EditAll => {
                            Some(regex(h, &h.value, false)?)
                        }
                        _ => None,
                    };
                    (name, regex)
                }
            };
            let condition = match &h.condition {
                None => None,
                Some(HeaderCondition::Env { name, negated }) => Some(Condition::Env {
                    var: Var::of(name),
                    negated: *negated,
                }),
                Some(HeaderCondition::Expr(text)) => {
                    let expr = HcExpr::parse_header_rule(text).map_err(|e| {
                        refused(
                            h,
                            format!(
                                "expr={text}: {e} (supported: %{{REQUEST_STATUS}}, resp('Name'), comparisons, =~, -in, &&, ||, !)"
                            ),
                        )
                    })?;
                    if expr.uses_body() {
                        return Err(refused(
                            h,
                            format!("expr={text}: hc('body') is a health-check variable"),
                        ));
                    }
                    keeps_request |= table != Table::Request && expr.uses_request();
                    Some(Condition::Expr(expr))
                }
                Some(_) => return Err(refused(h, "this condition is not supported")),
            };
            rules.push(Rule {
                table,
                action: h.action,
                name,
                value: value.into(),
                regex,
                condition,
            });
        }
        Ok(Self {
            inner: Some(Arc::new(Compiled {
                rules: rules.into(),
                uses_time,
                echoes,
                request_rules,
                keeps_request,
            })),
        })
    }

    /// The `RequestHeader` rules on a request about to be forwarded (call it before the
    /// forwarding headers are added), and what the response rules will need from it.
    pub(crate) fn on_request<B>(&self, request: &mut Request<B>) -> RequestNotes {
        let Some(compiled) = &self.inner else {
            return RequestNotes::default();
        };
        let mut notes = RequestNotes {
            tls: request.extensions().get::<crate::TlsInfo>().is_some(),
            ..RequestNotes::default()
        };
        let mut request_vary = Vec::new();
        if compiled.uses_time {
            notes.arrival = Some((SystemTime::now(), tokio::time::Instant::now()));
        }
        if compiled.request_rules {
            let env = Env {
                info: None,
                notes: &notes,
            };
            let mut vary = Vec::new();
            for rule in compiled.rules.iter().filter(|r| r.table == Table::Request) {
                // mod_headers' fixups run with the status still 200 and no response yet.
                let view = ExprView {
                    method: request.method().as_str(),
                    uri: request.uri().path(),
                    headers: request.headers(),
                    info: None,
                    vary: std::cell::RefCell::new(std::mem::take(&mut vary)),
                };
                let applies = rule.applies(&env, 200, &HeaderMap::new(), &view);
                vary = view.vary.into_inner();
                if applies {
                    rule.apply(request.headers_mut(), None, &env);
                }
            }
            request_vary = vary;
        }
        notes.vary = request_vary;
        if compiled.keeps_request {
            notes.request = Some(Box::new((
                request.method().clone(),
                request.uri().path().to_owned(),
                request.headers().clone(),
            )));
        }
        if compiled.echoes {
            // The request headers some echo rule matches, each once.
            let mut echoed = HeaderMap::new();
            for (name, value) in request.headers() {
                let wanted = compiled.rules.iter().any(|rule| {
                    rule.action == HeaderAction::Echo
                        && rule
                            .regex
                            .as_ref()
                            .is_some_and(|re| re.is_match(name.as_str().as_bytes()))
                });
                if wanted {
                    echoed.append(name.clone(), value.clone());
                }
            }
            notes.echo = Some(Box::new(echoed));
        }
        notes
    }

    /// The `Header` rules on a response: the `always` ones on every response, the
    /// onsuccess ones on a member's (`proxied`); see the [module docs](self).
    pub(crate) fn on_response<B>(
        &self,
        response: &mut Response<B>,
        proxied: bool,
        notes: &RequestNotes,
    ) {
        let Some(compiled) = &self.inner else {
            return;
        };
        // A member's answer, or the proxy's after a member was tried (Apache keeps the last
        // member's values for its 502 and 503).
        let info = response.extensions().get::<BalancerInfo>().cloned();
        let env = Env {
            info: info.as_ref(),
            notes,
        };
        let status = response.status().as_u16();
        let headers = response.headers_mut();
        let empty = HeaderMap::new();
        let (method, uri, request_headers) = notes
            .request
            .as_deref()
            .map_or(("", "", &empty), |(m, u, h)| (m.as_str(), u.as_str(), h));
        // Request conditions' Vary names reach a member's answer only: Apache's error
        // response starts its headers afresh.
        let vary = if proxied {
            notes.vary.clone()
        } else {
            Vec::new()
        };
        let view = ExprView {
            method,
            uri,
            headers: request_headers,
            info: env.info,
            vary: std::cell::RefCell::new(vary),
        };
        // Apache's "always" table (err_headers_out): empty at first, filled by the always
        // rules, then sent before the member's headers.
        let mut always = HeaderMap::new();
        for rule in compiled.rules.iter().filter(|r| r.table == Table::Always) {
            if rule.applies(&env, status, headers, &view) {
                rule.apply(&mut always, Some(&mut *headers), &env);
            }
        }
        if proxied {
            for rule in compiled
                .rules
                .iter()
                .filter(|r| r.table == Table::OnSuccess)
            {
                if rule.applies(&env, status, headers, &view) {
                    rule.apply(headers, None, &env);
                }
            }
        }
        let vary = view.vary.into_inner();
        if !vary.is_empty() {
            add_vary(headers, &vary);
        }
        // The always table is sent first: its values of a name, then the member's.
        for name in always.keys() {
            let mut list: Vec<HeaderValue> = always.get_all(name).iter().cloned().collect();
            if let Entry::Occupied(e) = headers.entry(name) {
                list.extend(e.remove_entry_mult().1);
            }
            let mut list = list.into_iter();
            if let Some(first) = list.next() {
                headers.insert(name.clone(), first);
            }
            for value in list {
                headers.append(name.clone(), value);
            }
        }
    }
}

impl Rule {
    fn applies(
        &self,
        env: &Env<'_>,
        status: u16,
        response_headers: &HeaderMap,
        request: &ExprView<'_>,
    ) -> bool {
        match &self.condition {
            None => true,
            Some(Condition::Env { var, negated }) => var.get_in(env).is_some() != *negated,
            Some(Condition::Expr(expr)) => expr.eval_with_request(
                &ProbeResponse {
                    status,
                    headers: response_headers,
                    body: b"",
                },
                request,
            ),
        }
    }

    /// Runs the rule on `table`; `echo` adds to `out` (the member's table) when given.
    fn apply(&self, table: &mut HeaderMap, out: Option<&mut HeaderMap>, env: &Env<'_>) {
        let name = &self.name;
        match self.action {
            HeaderAction::Add => {
                if let Some(v) = self.fill(env) {
                    table.append(name, v);
                }
            }
            HeaderAction::Set => {
                if let Some(v) = self.fill(env) {
                    table.insert(name, v);
                }
            }
            HeaderAction::SetIfEmpty if !table.contains_key(name) => {
                if let Some(v) = self.fill(env) {
                    table.insert(name, v);
                }
            }
            HeaderAction::SetIfEmpty => {}
            HeaderAction::Append | HeaderAction::Merge => {
                let Some(new) = self.fill(env) else { return };
                let Some(first) = table.get_mut(name) else {
                    table.append(name, new);
                    return;
                };
                if self.action == HeaderAction::Merge && has_token(first.as_bytes(), new.as_bytes())
                {
                    return;
                }
                let mut joined = Vec::with_capacity(first.len() + 2 + new.len());
                joined.extend_from_slice(first.as_bytes());
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(new.as_bytes());
                if let Ok(v) = HeaderValue::from_bytes(&joined) {
                    *first = v;
                }
            }
            HeaderAction::Unset => {
                table.remove(name);
            }
            HeaderAction::Edit | HeaderAction::EditAll => {
                let Some(regex) = &self.regex else { return };
                let Entry::Occupied(mut entry) = table.entry(name) else {
                    return;
                };
                let replacement = self.fill_bytes(env);
                let mut edited = Vec::new();
                for value in entry.iter() {
                    let new = edit(
                        regex,
                        value.as_bytes(),
                        &replacement,
                        self.action == HeaderAction::EditAll,
                    );
                    match HeaderValue::from_bytes(&new) {
                        Ok(v) => edited.push(v),
                        // Not sendable once edited: kept as it was.
                        Err(_) => edited.push(value.clone()),
                    }
                }
                let mut edited = edited.into_iter();
                if let Some(first) = edited.next() {
                    entry.insert(first);
                }
                for v in edited {
                    entry.append(v);
                }
            }
            HeaderAction::Echo => {
                // Apache adds the echoed headers to the member's table, whichever the rule's.
                let target = match out {
                    Some(out) => out,
                    None => table,
                };
                if let (Some(echoed), Some(regex)) = (&env.notes.echo, &self.regex) {
                    append_matching(target, echoed, regex);
                }
            }
            _ => {}
        }
    }

    fn fill_bytes(&self, env: &Env<'_>) -> Vec<u8> {
        // Room for the text and a variable's usual value (a route, a name): one allocation
        // rather than a few as the value grows.
        let room = self
            .value
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.len(),
                _ => 32,
            })
            .sum();
        let mut out = Vec::with_capacity(room);
        for part in &*self.value {
            match part {
                Part::Text(text) => out.extend_from_slice(text.as_bytes()),
                Part::Var(var) => match var.get_in(env) {
                    // Apache's unwrap_header: a line break in a variable becomes a space.
                    Some(v) => {
                        out.extend(
                            v.bytes()
                                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
                        )
                    }
                    None => out.extend_from_slice(b"(null)"),
                },
                Part::RequestTime => {
                    let micros = env.notes.arrival.map_or(0, |(at, _)| {
                        at.duration_since(UNIX_EPOCH)
                            .unwrap_or(Duration::ZERO)
                            .as_micros()
                    });
                    out.extend_from_slice(format!("t={micros}").as_bytes());
                }
                Part::Duration => {
                    let micros = env
                        .notes
                        .arrival
                        .map_or(0, |(_, started)| started.elapsed().as_micros());
                    out.extend_from_slice(format!("D={micros}").as_bytes());
                }
            }
        }
        out
    }

    fn fill(&self, env: &Env<'_>) -> Option<HeaderValue> {
        if let [Part::Text(text)] = &*self.value {
            return HeaderValue::from_str(text).ok();
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(self.fill_bytes(env))).ok()
    }
}

/// The request header names expressions read, added to `Vary` as Apache's `fixup_vary`
/// leaves it: one header, each name once (without case), joined by `,`.
fn add_vary(headers: &mut HeaderMap, names: &[Box<str>]) {
    let mut tokens: Vec<String> = Vec::new();
    for value in headers.get_all(http::header::VARY) {
        for token in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let token = token.trim();
            if !token.is_empty() && !tokens.iter().any(|t| t.eq_ignore_ascii_case(token)) {
                tokens.push(token.to_owned());
            }
        }
    }
    for name in names {
        if !tokens.iter().any(|t| t.eq_ignore_ascii_case(name)) {
            tokens.push(name.to_string());
        }
    }
    if let Ok(value) = HeaderValue::from_str(&tokens.join(",")) {
        headers.insert(http::header::VARY, value);
    }
}

/// The request headers whose names match, added to `table`.
fn append_matching(table: &mut HeaderMap, echoed: &HeaderMap, regex: &Regex) {
    for (name, value) in echoed {
        if regex.is_match(name.as_str().as_bytes()) {
            table.append(name.clone(), value.clone());
        }
    }
}

/// Whether `token` is one of the comma-separated tokens of `value`, as mod_headers' merge
/// reads them (blanks before a token skipped, a quoted string kept whole).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        while value.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let start = i;
        while let Some(&c) = value.get(i) {
            if c == b',' {
                break;
            }
            i += 1;
            if c == b'"' {
                while let Some(&q) = value.get(i) {
                    i += 1;
                    if q == b'"' {
                        break;
                    }
                }
            }
        }
        if value.get(start..i) == Some(token) {
            return true;
        }
        i += 1;
    }
    false
}

/// mod_headers' `process_regexp`: the first match replaced (`edit`), or every match, the
/// regex run again on what follows each one (`edit*`).
fn edit(regex: &Regex, value: &[u8], replacement: &[u8], all: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(caps) = regex.captures(rest) {
        let Some(whole) = caps.get(0) else { break };
        out.extend_from_slice(&rest[..whole.start()]);
        substitute(&caps, replacement, &mut out);
        rest = &rest[whole.end()..];
        // An empty match would match again forever (Apache recurses until it crashes).
        if !all || whole.is_empty() {
            break;
        }
    }
    out.extend_from_slice(rest);
    out
}

/// `ap_pregsub`: `$0`…`$9` are the groups (empty when unmatched), `\$` and `\&` a `$` and
/// a `&`; everything else as written.
fn substitute(caps: &regex::bytes::Captures<'_>, replacement: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&c) = replacement.get(i) {
        i += 1;
        match (c, replacement.get(i)) {
            (b'$', Some(d)) if d.is_ascii_digit() => {
                i += 1;
                if let Some(group) = caps.get(usize::from(d - b'0')) {
                    out.extend_from_slice(group.as_bytes());
                }
            }
            (b'\\', Some(&e)) if e == b'$' || e == b'&' => {
                i += 1;
                out.push(e);
            }
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apache_config::parse;

    fn rules(text: &str) -> HeaderRules {
        let config = parse(text).expect("valid Header lines");
        let lines: Vec<&HeaderDirective> = config.headers.iter().collect();
        HeaderRules::compile(&lines).expect("compiles")
    }

    fn response(pairs: &[(&'static str, &'static str)]) -> Response<()> {
        let mut response = Response::new(());
        for (k, v) in pairs {
            response
                .headers_mut()
                .append(*k, HeaderValue::from_static(v));
        }
        response
    }

    fn values<'a>(response: &'a Response<()>, name: &str) -> Vec<&'a str> {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    /// `edit` matches a value holding obs-text (bytes that are not UTF-8) as PCRE does,
    /// byte by byte; found by the review: `.` did not match them.
    #[test]
    fn edit_matches_obs_text_bytes() {
        let edit = rules("Header edit X-U \"^(.*)$\" \"<$1>\"\n");
        let mut r = Response::new(());
        r.headers_mut().insert(
            "x-u",
            HeaderValue::from_bytes(b"\xff\xfeaaa").expect("obs-text is a valid value"),
        );
        edit.on_response(&mut r, true, &RequestNotes::default());
        assert_eq!(
            r.headers().get("x-u").map(HeaderValue::as_bytes),
            Some(&b"<\xff\xfeaaa>"[..])
        );
        // A pattern that needs Unicode still compiles.
        let _ = rules("Header edit X-B \"\\p{Greek}+\" z\n");
    }

    /// The table rules as Apache 2.4.71 applied them on loopback (see tests/headers.rs).
    #[test]
    fn the_always_table_comes_first_and_never_touches_the_members() {
        let rules = rules(
            "Header always unset X-A\nHeader always set X-M always\nHeader always add X-L c\n\
             Header always setifempty X-S new\nHeader set X-O s\n",
        );
        let mut r = response(&[
            ("x-a", "member"),
            ("x-m", "b1"),
            ("x-l", "a, b"),
            ("x-s", "old"),
        ]);
        rules.on_response(&mut r, true, &RequestNotes::default());
        assert_eq!(values(&r, "x-a"), ["member"]);
        assert_eq!(values(&r, "x-m"), ["always", "b1"]);
        assert_eq!(values(&r, "x-l"), ["c", "a, b"]);
        assert_eq!(values(&r, "x-s"), ["new", "old"]);
        assert_eq!(values(&r, "x-o"), ["s"]);
        // An answer the proxy wrote: the always rules only.
        let mut r = response(&[]);
        rules.on_response(&mut r, false, &RequestNotes::default());
        assert_eq!(values(&r, "x-m"), ["always"]);
        assert!(values(&r, "x-o").is_empty());
    }

    #[test]
    fn edit_merge_append_as_mod_headers() {
        let rules = rules(
            "Header edit X-List \"^(a), (b)$\" \"$2-$1-&-\\$\"\nHeader edit* X-A m M\n\
             Header edit* X-B ^b B\nHeader merge X-List b\nHeader merge X-T a\n\
             Header append Set-Cookie z=1\nHeader edit X-E a* Z\n",
        );
        let mut r = response(&[
            ("x-list", "a, b"),
            ("x-a", "member"),
            ("x-b", "bbx"),
            ("x-t", "\"a, c\", a"),
            ("set-cookie", "m=1"),
            ("set-cookie", "n=2"),
            ("x-e", "xyz"),
        ]);
        rules.on_response(&mut r, true, &RequestNotes::default());
        assert_eq!(values(&r, "x-list"), ["b-a-&-$, b"]);
        assert_eq!(values(&r, "x-a"), ["MeMber"]);
        assert_eq!(
            values(&r, "x-b"),
            ["BBx"],
            "^ matches again after each edit*"
        );
        assert_eq!(values(&r, "x-t"), ["\"a, c\", a"], "a is a token already");
        assert_eq!(values(&r, "set-cookie"), ["m=1, z=1", "n=2"]);
        assert_eq!(values(&r, "x-e"), ["Zxyz"]);
    }

    #[test]
    fn what_cannot_be_applied_is_refused_with_its_line() {
        for (text, expected) in [
            (
                "Header edit X ( b",
                "line 1: Header edit X: the regular expression \"(\" does not compile",
            ),
            (
                "\nHeader echo (",
                "line 2: Header echo (: the regular expression",
            ),
            (
                "Header set X v \"expr=%{REMOTE_ADDR} == '::1'\"",
                "line 1: Header set X: expr=%{REMOTE_ADDR} == '::1': column 1: unknown variable",
            ),
            (
                "Header set X v \"expr=hc('body') =~ /x/\"",
                "hc('body') is a health-check variable",
            ),
        ] {
            let config = parse(text).expect("Apache syntax");
            let lines: Vec<&HeaderDirective> = config.headers.iter().collect();
            let e = HeaderRules::compile(&lines).expect_err(text).to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    /// Apache 2.4.71: `Header set X-L "%{balancer_name}e" env=balancer_route_changed`
    /// answered `X-L: balancer://c` (its environment table ignores case).
    #[test]
    fn variable_names_ignore_case() {
        assert!(matches!(Var::of("balancer_name"), Var::BalancerName));
        assert!(matches!(
            Var::of("Balancer_Route_Changed"),
            Var::RouteChanged
        ));
        assert!(matches!(Var::of("HOME"), Var::Unset));
    }

    #[test]
    fn no_rules_no_work() {
        let rules = HeaderRules::compile(&[]).expect("empty");
        let mut request = Request::new(());
        let notes = rules.on_request(&mut request);
        assert!(notes.arrival.is_none() && notes.echo.is_none());
    }
}
