//! The parser: logical lines to a [`Config`], collecting every error.

use std::collections::HashMap;
use std::time::Duration;

use proxy_balancer_core::{BalancerParams, MemberParams};

use crate::ast::{
    AllowEncodedSlashes, BalancerConfig, Config, Context, CookieRewrite, HcExpr, HcTemplate,
    HeaderDirective, ManagerLocation, MemberConfig, Param, ProxyPassConfig, ProxyPassReverseConfig,
    ProxyTarget, ServerName, Skipped, Span,
};
use crate::error::{ParseError, ParseErrorKind, ParseErrors};
use crate::keys::{self, BALANCER_KEYS, CORE_MEMBER_KEYS, HC_KEYS, OTHER_WORKER_KEYS};
use crate::lexer::{logical_lines, word, words, LogicalLine, Token};
use crate::logs;

/// Parses an Apache httpd configuration (a whole `httpd.conf` or a part of it).
///
/// Balancing directives become a [`Config`]; other directives are listed in
/// [`Config::skipped`]. Every parameter is checked as Apache checks it when it starts.
///
/// # Errors
///
/// [`ParseErrors`] with every mistake found (not only the first), each with its line and
/// column and, for near misses, a "did you mean".
///
/// ```
/// let err = proxy_balancer_apache_config::parse(
///     "<Proxy balancer://app>\n  BalancerMember http://a:80 hcpath=/health\n</Proxy>\n",
/// )
/// .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "line 2, column 30: unknown parameter \"hcpath\" (did you mean \"hcuri\"?)"
/// );
/// ```
pub fn parse(text: &str) -> Result<Config, ParseErrors> {
    let mut p = Parser::new();
    for line in logical_lines(text) {
        p.line(&line);
    }
    p.finish()
}

/// What an open block is.
#[derive(Debug)]
enum Kind {
    /// `<Proxy balancer://…>`: the balancer's index.
    Balancer(usize),
    /// `<Proxy>` of anything else (`*`, a plain worker URL).
    Worker,
    /// `<Location path>`.
    Location(LocationState),
    /// A block nested inside a `<Location>`.
    InLocation,
    /// `<VirtualHost>`, `<IfModule>` …: read as if top-level.
    ReadThrough,
    /// Any other block: its content is skipped.
    Skip,
}

/// Where a directive is, as far as `<Proxy>` blocks go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InProxy {
    /// Not in a `<Proxy>` block.
    Outside,
    /// In `<Proxy balancer://…>`: the balancer's index.
    Balancer(usize),
    /// In another `<Proxy>` block.
    Other,
}

#[derive(Debug)]
struct LocationState {
    path: String,
    requires: Vec<String>,
    manager: bool,
}

#[derive(Debug)]
struct Frame {
    /// The tag name, lower-case (`proxy`).
    tag: String,
    span: Span,
    kind: Kind,
}

/// The directives of this crate, for near-miss suggestions.
const DIRECTIVES: &[&str] = &[
    "BalancerMember",
    "ProxySet",
    "ProxyPass",
    "ProxyPassReverse",
    "ProxyHCTemplate",
    "ProxyHCExpr",
    "BalancerGrowth",
    "BalancerPersist",
    "BalancerInherit",
    "ProxyTimeout",
    "ProxyPreserveHost",
    "ProxyAddHeaders",
    "ProxyPassReverseCookieDomain",
    "ProxyPassReverseCookiePath",
    "ServerName",
    "AllowEncodedSlashes",
    "ErrorLog",
    "CustomLog",
    "TransferLog",
    "LogFormat",
    "LogLevel",
    // and the client limits of `crate::front::DIRECTIVES`.
];

/// Every directive of Apache httpd 2.4's manual, one a line after a comment line: a real
/// directive is never reported as a typo of one of ours (`ServerPath` is not `ServerName`).
const APACHE_DIRECTIVES: &str = include_str!("apache_directives.txt");

/// Whether `name` (lower-case) is a directive of Apache's manual.
fn is_apache_directive(name: &str) -> bool {
    APACHE_DIRECTIVES
        .lines()
        .any(|d| d.eq_ignore_ascii_case(name))
}

/// Reading stops after this many errors: enough to fix a file in one pass, and it bounds the
/// work (and the report) on garbage input.
const MAX_ERRORS: usize = 100;

/// Blocks read as if their content were top-level.
const READ_THROUGH: &[&str] = &[
    "virtualhost",
    "ifmodule",
    "ifdefine",
    "ifversion",
    "ifdirective",
    "iffile",
    "ifsection",
];

#[derive(Debug)]
pub(crate) struct Parser {
    cfg: Config,
    errors: Vec<ParseError>,
    stack: Vec<Frame>,
    /// Balancer name → index in `cfg.balancers`.
    balancer_index: HashMap<String, usize>,
    /// Whether each balancer was defined (not only referenced).
    defined: Vec<bool>,
    /// `ProxyPass` references to balancers.
    balancer_refs: Vec<(usize, Span)>,
    /// Normalised member URL → (balancer, member).
    member_index: HashMap<String, (usize, usize)>,
    /// Template and expression names defined so far → where.
    templates: HashMap<String, Span>,
    exprs: HashMap<String, Span>,
    /// Uses of names not defined when used: (name, span, is_template).
    pending_uses: Vec<(String, Span, bool)>,
    /// A member with default parameters, cloned to check parameters.
    scratch_member: MemberParams,
}

fn to_lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// `balancer://Name/sub` → (`balancer://name`, `/sub`), as Apache's `ap_proxy_get_balancer`.
pub(crate) fn split_balancer_url(url: &str) -> Option<(String, String)> {
    let prefix = url.get(..11)?;
    if !prefix.eq_ignore_ascii_case("balancer://") {
        return None;
    }
    let rest = &url[11..];
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    Some((format!("balancer://{}", to_lower(host)), path.to_owned()))
}

fn is_balancer_url(url: &str) -> bool {
    url.get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("balancer://"))
}

/// A member URL as a lookup key: scheme and authority lower-cased, no trailing `/`.
pub(crate) fn url_key(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    let mut key = to_lower(&url[..end]);
    key.push_str(url[end..].trim_end_matches('/'));
    key
}

/// An unknown parameter. `other_hint` says where the key is known (a balancer key on a
/// member…); it comes before a "did you mean": `lbmethod` on a plain `ProxyPass` is a
/// balancer parameter in the wrong place, not a typo of `hcmethod`.
fn unknown_param(p: &Param, candidates: &[&str], other_hint: Option<String>) -> ParseError {
    let hint = other_hint.or_else(|| {
        keys::did_you_mean(&p.key, candidates).map(|k| format!("did you mean \"{k}\"?"))
    });
    ParseError::new(
        p.span,
        ParseErrorKind::UnknownParameter,
        format!("unknown parameter \"{}\"", p.key),
    )
    .with_hint(hint)
}

fn invalid(span: Span, message: String) -> ParseError {
    ParseError::new(span, ParseErrorKind::InvalidValue, message)
}

fn syntax(span: Span, message: impl Into<String>) -> ParseError {
    ParseError::new(span, ParseErrorKind::Syntax, message)
}

fn all_worker_keys() -> Vec<&'static str> {
    CORE_MEMBER_KEYS
        .iter()
        .chain(HC_KEYS)
        .chain(OTHER_WORKER_KEYS)
        .copied()
        .collect()
}

impl Parser {
    pub(crate) fn new() -> Self {
        Self {
            cfg: Config::default(),
            errors: Vec::new(),
            stack: Vec::new(),
            balancer_index: HashMap::new(),
            defined: Vec::new(),
            balancer_refs: Vec::new(),
            member_index: HashMap::new(),
            templates: HashMap::new(),
            exprs: HashMap::new(),
            pending_uses: Vec::new(),
            scratch_member: MemberParams::new("http://validation.invalid")
                .expect("invariant: a valid constant url"),
        }
    }

    pub(crate) fn finish(mut self) -> Result<Config, ParseErrors> {
        while let Some(frame) = self.stack.pop() {
            self.errors.push(
                ParseError::new(
                    frame.span,
                    ParseErrorKind::UnclosedBlock,
                    format!("<{}> is not closed", frame.tag),
                )
                .with_hint(Some(format!("add </{}>", frame.tag))),
            );
        }
        for (idx, span) in std::mem::take(&mut self.balancer_refs) {
            if !self.defined[idx] {
                let name = &self.cfg.balancers[idx].name;
                self.errors.push(
                    ParseError::new(
                        span,
                        ParseErrorKind::UndefinedBalancer,
                        format!("balancer \"{name}\" is not defined"),
                    )
                    .with_hint(Some(format!(
                        "add a <Proxy \"{name}\"> block with BalancerMember lines"
                    ))),
                );
            }
        }
        for (name, span, is_template) in std::mem::take(&mut self.pending_uses) {
            let (defs, what, directive, kind) = if is_template {
                (
                    &self.templates,
                    "health check template",
                    "ProxyHCTemplate",
                    ParseErrorKind::UndefinedTemplate,
                )
            } else {
                (
                    &self.exprs,
                    "health check expression",
                    "ProxyHCExpr",
                    ParseErrorKind::UndefinedExpr,
                )
            };
            let hint = match defs.get(&name) {
                Some(def) => format!(
                    "it is defined later, on line {}; Apache needs {directive} before its use",
                    def.line
                ),
                None => format!("define it with {directive} {name} … before this line"),
            };
            self.errors.push(
                ParseError::new(span, kind, format!("{what} \"{name}\" is not defined"))
                    .with_hint(Some(hint)),
            );
        }
        if self.errors.is_empty() {
            Ok(self.cfg)
        } else if self.errors.len() > MAX_ERRORS {
            self.errors.sort_by_key(|e| e.span);
            self.errors.truncate(MAX_ERRORS);
            Err(ParseErrors::new(self.errors))
        } else {
            Err(ParseErrors::new(self.errors))
        }
    }

    fn skip(&mut self, directive: &str, span: Span) {
        self.cfg.skipped.push(Skipped {
            directive: directive.to_owned(),
            span,
            in_block: false,
        });
    }

    // ===== lines and blocks =====

    pub(crate) fn line(&mut self, line: &LogicalLine) {
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        let start = line.skip_blank(0);
        if line.char_at(start) == Some('<') {
            if let Err(e) = self.tag(line, start) {
                self.errors.push(e);
            }
            return;
        }
        if matches!(
            self.stack.last(),
            Some(Frame {
                kind: Kind::Skip,
                ..
            })
        ) {
            return;
        }
        let (name, next) = match word(line, start) {
            Ok(w) => w,
            Err(e) => return self.errors.push(e),
        };
        if let Err(e) = self.directive(line, &name, next) {
            self.errors.push(e);
        }
    }

    fn tag(&mut self, line: &LogicalLine, start: usize) -> Result<(), ParseError> {
        let mut toks = words(line, start)?;
        let first = toks.remove(0);
        let span = first.span;
        if let Some(name) = first.text.strip_prefix("</") {
            let name = to_lower(name.trim_end_matches('>'));
            return self.close(&name, span);
        }
        let raw_name = first.text[1..].to_owned();
        let mut closed = raw_name.ends_with('>');
        let tag = to_lower(raw_name.trim_end_matches('>'));
        if !closed {
            match toks.last_mut() {
                Some(t) if t.text == ">" && !t.quoted => {
                    toks.pop();
                    closed = true;
                }
                Some(t) if !t.quoted && t.text.ends_with('>') => {
                    t.text.pop();
                    closed = true;
                }
                _ => {}
            }
        }
        if !closed || tag.is_empty() {
            return Err(syntax(span, format!("<{tag} is missing its closing >")));
        }
        let in_skip = matches!(
            self.stack.last(),
            Some(Frame {
                kind: Kind::Skip,
                ..
            })
        );
        let in_location = matches!(
            self.stack.last(),
            Some(Frame {
                kind: Kind::Location(_) | Kind::InLocation,
                ..
            })
        );
        let kind = if in_skip {
            Kind::Skip
        } else if in_location {
            Kind::InLocation
        } else if tag == "proxy" {
            let url = toks
                .first()
                .ok_or_else(|| syntax(span, "<Proxy> needs a URL"))?;
            if is_balancer_url(&url.text) {
                let (name, _) = split_balancer_url(&url.text).ok_or_else(|| {
                    invalid(url.span, format!("invalid balancer url \"{}\"", url.text))
                })?;
                Kind::Balancer(self.define_balancer(&name, span))
            } else {
                self.skip(&first.text, span);
                Kind::Worker
            }
        } else if tag == "location" {
            let path = toks
                .first()
                .ok_or_else(|| syntax(span, "<Location> needs a path"))?;
            Kind::Location(LocationState {
                path: path.text.clone(),
                requires: Vec::new(),
                manager: false,
            })
        } else if READ_THROUGH.contains(&tag.as_str()) {
            Kind::ReadThrough
        } else {
            self.skip(raw_name.trim_end_matches('>'), span);
            Kind::Skip
        };
        self.stack.push(Frame { tag, span, kind });
        Ok(())
    }

    fn close(&mut self, tag: &str, span: Span) -> Result<(), ParseError> {
        match self.stack.last() {
            Some(frame) if frame.tag == tag => {}
            Some(frame) => {
                return Err(ParseError::new(
                    span,
                    ParseErrorKind::UnmatchedClose,
                    format!("</{tag}> does not close <{}>", frame.tag),
                )
                .with_hint(Some(format!(
                    "<{}> opened on line {} is still open",
                    frame.tag, frame.span.line
                ))));
            }
            None => {
                return Err(ParseError::new(
                    span,
                    ParseErrorKind::UnmatchedClose,
                    format!("</{tag}> closes no block"),
                ))
            }
        }
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        if let Kind::Location(loc) = frame.kind {
            if loc.manager {
                self.cfg.manager_locations.push(ManagerLocation {
                    path: loc.path,
                    requires: loc.requires,
                    context: Context::default(),
                    span: frame.span,
                });
            } else {
                self.skip("<Location", frame.span);
            }
        }
        Ok(())
    }

    /// The innermost `<Proxy>` block.
    fn proxy_block(&self) -> InProxy {
        self.stack
            .iter()
            .rev()
            .find_map(|f| match f.kind {
                Kind::Balancer(i) => Some(InProxy::Balancer(i)),
                Kind::Worker => Some(InProxy::Other),
                _ => None,
            })
            .unwrap_or(InProxy::Outside)
    }

    /// Whether a directive here applies to the whole server: outside `<Proxy>`, `<Location>`
    /// and `<VirtualHost>` blocks (`<IfModule>` and the like do not count).
    fn in_server_context(&self) -> bool {
        self.stack
            .iter()
            .all(|f| matches!(f.kind, Kind::ReadThrough) && f.tag != "virtualhost")
    }

    fn location(&mut self) -> Option<&mut LocationState> {
        for f in self.stack.iter_mut().rev() {
            match &mut f.kind {
                Kind::Location(loc) => return Some(loc),
                Kind::InLocation => {}
                _ => return None,
            }
        }
        None
    }

    // ===== balancers =====

    fn balancer(&mut self, name: &str, span: Span) -> usize {
        if let Some(i) = self.balancer_index.get(name) {
            return *i;
        }
        let i = self.cfg.balancers.len();
        self.cfg.balancers.push(BalancerConfig {
            name: name.to_owned(),
            params: Vec::new(),
            members: Vec::new(),
            context: Context::default(),
            span,
        });
        self.defined.push(false);
        self.balancer_index.insert(name.to_owned(), i);
        i
    }

    fn define_balancer(&mut self, name: &str, span: Span) -> usize {
        let i = self.balancer(name, span);
        if !self.defined[i] {
            self.defined[i] = true;
            self.cfg.balancers[i].span = span;
        }
        i
    }

    // ===== directives =====

    fn directive(
        &mut self,
        line: &LogicalLine,
        name: &Token,
        next: usize,
    ) -> Result<(), ParseError> {
        let lower = to_lower(&name.text);
        let span = name.span;
        if self.location().is_some() {
            let args = words(line, next)?;
            match lower.as_str() {
                "sethandler" => {
                    let manager = args
                        .first()
                        .is_some_and(|a| a.text.eq_ignore_ascii_case("balancer-manager"));
                    if let Some(loc) = self.location() {
                        loc.manager |= manager;
                    }
                }
                "require" => {
                    let text: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
                    let text = text.join(" ");
                    if let Some(loc) = self.location() {
                        loc.requires.push(text);
                    }
                }
                // `Header` in a block has its own rule (the doctor's `not-applied`).
                "header" => self.skip(&name.text, span),
                _ => {
                    // A directive this crate reads elsewhere is read here as Apache would
                    // apply it to this <Location> only: not applied, and said so.
                    let ours = DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(&lower))
                        || crate::front::is_front_directive(&lower);
                    self.cfg.skipped.push(Skipped {
                        directive: name.text.clone(),
                        span,
                        in_block: ours,
                    });
                }
            }
            return Ok(());
        }
        if lower == "proxyhcexpr" {
            return self.hc_expr(line, span, next);
        }
        let args = words(line, next)?;
        let in_proxy = self.proxy_block();
        match lower.as_str() {
            "balancermember" => self.member(span, &args, in_proxy),
            "proxyset" => self.proxy_set(span, &args, in_proxy),
            "proxypass" if in_proxy == InProxy::Outside => self.proxy_pass(span, &args),
            "proxypassreverse" if in_proxy == InProxy::Outside => {
                let [path, target] = args.as_slice() else {
                    return Err(syntax(span, "ProxyPassReverse takes a path and a URL"));
                };
                self.cfg.proxy_pass_reverses.push(ProxyPassReverseConfig {
                    path: path.text.clone(),
                    target: target.text.clone(),
                    context: Context::default(),
                    span,
                });
                Ok(())
            }
            "proxyhctemplate" => self.hc_template(span, &args),
            "balancergrowth" => {
                let v = one_arg(span, "BalancerGrowth", &args)?;
                match v.text.trim().parse::<u32>() {
                    Ok(n) if n <= 1000 => {
                        self.cfg.balancer_growth = Some(n);
                        Ok(())
                    }
                    _ => Err(invalid(
                        v.span,
                        format!(
                            "invalid value \"{}\" for BalancerGrowth: must be from 0 to 1000",
                            v.text
                        ),
                    )),
                }
            }
            "balancerpersist" => {
                self.cfg.balancer_persist = Some(on_off(span, "BalancerPersist", &args)?);
                Ok(())
            }
            "balancerinherit" => {
                self.cfg.server.balancer_inherit = Some(on_off(span, "BalancerInherit", &args)?);
                Ok(())
            }
            "proxytimeout" => {
                let v = one_arg(span, "ProxyTimeout", &args)?;
                match v.text.trim().parse::<u64>() {
                    Ok(n) if n >= 1 => {
                        self.cfg.proxy_timeout = Some(Duration::from_secs(n));
                        Ok(())
                    }
                    _ => Err(invalid(
                        v.span,
                        format!(
                            "invalid value \"{}\" for ProxyTimeout: must be whole seconds, at least 1",
                            v.text
                        ),
                    )),
                }
            }
            "header" => self.header(span, &name.text, &args),
            "allowencodedslashes" => {
                let v = one_arg(span, "AllowEncodedSlashes", &args)?;
                let mode = if v.text.eq_ignore_ascii_case("on") {
                    AllowEncodedSlashes::On
                } else if v.text.eq_ignore_ascii_case("off") {
                    AllowEncodedSlashes::Off
                } else if v.text.eq_ignore_ascii_case("nodecode") {
                    AllowEncodedSlashes::NoDecode
                } else {
                    return Err(invalid(
                        v.span,
                        format!(
                            "invalid value \"{}\" for AllowEncodedSlashes: must be On, Off or NoDecode",
                            v.text
                        ),
                    ));
                };
                self.server_setting(&name.text, span, |c| {
                    c.server.allow_encoded_slashes = Some(mode)
                });
                Ok(())
            }
            "errorlog" | "customlog" | "transferlog" | "logformat" | "loglevel" => {
                let texts: Vec<String> = args.iter().map(|a| a.text.clone()).collect();
                let item =
                    logs::parse_directive(&name.text, &lower, &texts, span).map_err(|m| {
                        if lower == "loglevel" && !texts.is_empty() {
                            invalid(span, m)
                        } else {
                            syntax(span, m)
                        }
                    })?;
                self.server_setting(&name.text, span, |c| item.apply(&mut c.log_directives));
                Ok(())
            }
            "proxypreservehost" => {
                let on = on_off(span, "ProxyPreserveHost", &args)?;
                self.server_setting(&name.text, span, |c| {
                    c.server.proxy_preserve_host = Some(on)
                });
                Ok(())
            }
            "proxyaddheaders" => {
                let on = on_off(span, "ProxyAddHeaders", &args)?;
                self.server_setting(&name.text, span, |c| c.server.proxy_add_headers = Some(on));
                Ok(())
            }
            "proxypassreversecookiedomain" => {
                let rw = cookie_rewrite(span, "ProxyPassReverseCookieDomain", &args)?;
                self.server_setting(&name.text, span, |c| {
                    c.proxy_pass_reverse_cookie_domains.push(rw);
                });
                Ok(())
            }
            "proxypassreversecookiepath" => {
                let rw = cookie_rewrite(span, "ProxyPassReverseCookiePath", &args)?;
                self.server_setting(&name.text, span, |c| {
                    c.proxy_pass_reverse_cookie_paths.push(rw);
                });
                Ok(())
            }
            "servername" => {
                if in_proxy != InProxy::Outside {
                    return Err(syntax(span, "ServerName is not allowed in a <Proxy> block")
                        .with_hint(Some(
                            "move it to the server or <VirtualHost> it names".to_owned(),
                        )));
                }
                let v = one_arg(span, "ServerName", &args)?;
                let server_name = server_name(span, v)?;
                self.server_setting(&name.text, span, |c| {
                    c.server.server_name = Some(server_name)
                });
                Ok(())
            }
            front if crate::front::is_front_directive(front) => {
                let setting = crate::front::parse(span, front, &args)?;
                self.server_setting(&name.text, span, |c| c.front.merge(&setting));
                Ok(())
            }
            _ => {
                let known = DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(&lower));
                if !known && !is_apache_directive(&lower) {
                    let near = keys::did_you_mean(&name.text, DIRECTIVES)
                        .or_else(|| keys::did_you_mean(&name.text, crate::front::DIRECTIVES));
                    if let Some(d) = near {
                        return Err(ParseError::new(
                            span,
                            ParseErrorKind::UnknownDirective,
                            format!("unknown directive \"{}\"", name.text),
                        )
                        .with_hint(Some(format!("did you mean \"{d}\"?"))));
                    }
                }
                self.skip(&name.text, span);
                Ok(())
            }
        }
    }

    /// Applies a server-wide setting in server context; elsewhere (a `<VirtualHost>`, a
    /// `<Proxy>` block) the directive is listed as skipped instead, not applied to the whole
    /// server.
    fn server_setting(&mut self, directive: &str, span: Span, apply: impl FnOnce(&mut Config)) {
        if self.in_server_context() {
            apply(&mut self.cfg);
        } else {
            self.cfg.skipped.push(Skipped {
                directive: directive.to_owned(),
                span,
                in_block: true,
            });
        }
    }

    fn params(&mut self, toks: &[Token]) -> Vec<Param> {
        let mut out = Vec::with_capacity(toks.len());
        for t in toks {
            if self.errors.len() >= MAX_ERRORS {
                break;
            }
            match t.text.split_once('=') {
                Some((k, v)) if !k.is_empty() => out.push(Param {
                    key: k.to_owned(),
                    value: v.to_owned(),
                    span: t.span,
                }),
                _ => self.errors.push(syntax(
                    t.span,
                    format!("expected key=value, found \"{}\"", t.text),
                )),
            }
        }
        out
    }

    /// Checks worker parameters as Apache does on a `BalancerMember` or plain `ProxyPass`.
    fn check_worker_params(&mut self, params: &[Param]) {
        let mut scratch = self.scratch_member.clone();
        for p in params {
            if self.errors.len() >= MAX_ERRORS {
                return;
            }
            let key = to_lower(&p.key);
            if CORE_MEMBER_KEYS.contains(&key.as_str()) {
                if let Err(e) = scratch.set(&key, &p.value) {
                    self.errors.push(invalid(p.span, e.to_string()));
                }
            } else if HC_KEYS.contains(&key.as_str()) || OTHER_WORKER_KEYS.contains(&key.as_str()) {
                self.check_extra(&key, p);
            } else {
                let other = BALANCER_KEYS.contains(&key.as_str()).then(|| {
                    format!("\"{key}\" is a balancer parameter: put it on ProxySet or on the balancer's ProxyPass")
                });
                self.errors
                    .push(unknown_param(p, &all_worker_keys(), other));
            }
        }
    }

    fn check_extra(&mut self, key: &str, p: &Param) {
        if let Err(reason) = keys::check_extra(key, &p.value) {
            self.errors.push(invalid(
                p.span,
                format!(
                    "invalid value \"{}\" for parameter `{key}`: {reason}",
                    p.value
                ),
            ));
            return;
        }
        let is_template = match key {
            "hctemplate" => true,
            "hcexpr" => false,
            _ => return,
        };
        let defs = if is_template {
            &self.templates
        } else {
            &self.exprs
        };
        if !defs.contains_key(&p.value) {
            self.pending_uses
                .push((p.value.clone(), p.span, is_template));
        }
    }

    /// Checks balancer parameters (`ProxySet balancer://…`, `ProxyPass … balancer://…`).
    fn check_balancer_params(&mut self, name: &str, params: &[Param]) {
        let mut scratch = BalancerParams::new(name);
        for p in params {
            if self.errors.len() >= MAX_ERRORS {
                return;
            }
            let key = to_lower(&p.key);
            match scratch.set(&key, &p.value) {
                Ok(()) => {}
                Err(proxy_balancer_core::ParamError::UnknownParameter { .. }) => {
                    let other = keys::is_worker_key(&key).then(|| {
                        format!("\"{key}\" is a member parameter: put it on each BalancerMember")
                    });
                    self.errors.push(unknown_param(p, BALANCER_KEYS, other));
                }
                Err(e) => self.errors.push(invalid(p.span, e.to_string())),
            }
        }
    }

    fn member(&mut self, span: Span, args: &[Token], in_proxy: InProxy) -> Result<(), ParseError> {
        let (balancer, rest) = match args.first() {
            Some(first) if is_balancer_url(&first.text) => {
                let (name, _) = split_balancer_url(&first.text).ok_or_else(|| {
                    invalid(first.span, format!("invalid balancer url \"{}\"", first.text))
                })?;
                (self.define_balancer(&name, span), &args[1..])
            }
            _ => match in_proxy {
                InProxy::Balancer(i) => (i, args),
                _ => {
                    return Err(ParseError::new(
                        span,
                        ParseErrorKind::MemberOutsideBalancer,
                        "BalancerMember outside a <Proxy balancer://…> block and without a balancer url",
                    )
                    .with_hint(Some(
                        "put it inside <Proxy \"balancer://name\">, or write BalancerMember balancer://name url".to_owned(),
                    )))
                }
            },
        };
        let Some((url, params)) = rest.split_first() else {
            return Err(syntax(span, "BalancerMember needs a member url"));
        };
        check_member_url(url)?;
        let params = self.params(params);
        self.check_worker_params(&params);
        let key = url_key(&url.text);
        let members = &mut self.cfg.balancers[balancer].members;
        if let Some((b, _)) = self.member_index.get(&key) {
            if *b == balancer {
                return Err(ParseError::new(
                    url.span,
                    ParseErrorKind::DuplicateMember,
                    format!(
                        "member \"{}\" is already in {}",
                        url.text, self.cfg.balancers[balancer].name
                    ),
                ));
            }
        }
        self.member_index.insert(key, (balancer, members.len()));
        members.push(MemberConfig {
            url: url.text.clone(),
            params,
            span,
        });
        Ok(())
    }

    fn proxy_set(
        &mut self,
        span: Span,
        args: &[Token],
        in_proxy: InProxy,
    ) -> Result<(), ParseError> {
        let first = args
            .first()
            .ok_or_else(|| syntax(span, "ProxySet needs parameters"))?;
        let has_url = !first.text.contains('=') && first.text.contains("://");
        if has_url && is_balancer_url(&first.text) {
            let (name, _) = split_balancer_url(&first.text).ok_or_else(|| {
                invalid(
                    first.span,
                    format!("invalid balancer url \"{}\"", first.text),
                )
            })?;
            let i = self.define_balancer(&name, span);
            let params = self.params(&args[1..]);
            self.check_balancer_params(&name, &params);
            self.cfg.balancers[i].params.extend(params);
            return Ok(());
        }
        if has_url {
            let params = self.params(&args[1..]);
            self.check_worker_params(&params);
            match self.member_index.get(&url_key(&first.text)) {
                Some((b, m)) => self.cfg.balancers[*b].members[*m].params.extend(params),
                None => self.skip("ProxySet", span),
            }
            return Ok(());
        }
        match in_proxy {
            InProxy::Balancer(i) => {
                let name = self.cfg.balancers[i].name.clone();
                let params = self.params(args);
                self.check_balancer_params(&name, &params);
                self.cfg.balancers[i].params.extend(params);
            }
            InProxy::Other => {
                let params = self.params(args);
                self.check_worker_params(&params);
                self.skip("ProxySet", span);
            }
            InProxy::Outside => {
                return Err(
                    syntax(span, "ProxySet outside a <Proxy> block needs a url first")
                        .with_hint(Some("write ProxySet balancer://name key=value".to_owned())),
                )
            }
        }
        Ok(())
    }

    fn proxy_pass(&mut self, span: Span, args: &[Token]) -> Result<(), ParseError> {
        let [path, target, rest @ ..] = args else {
            return Err(syntax(
                span,
                "ProxyPass takes a path and a target url (or !)",
            ));
        };
        // `nocanon` is a keyword, not a key=value parameter (Apache reads it anywhere after
        // the target, in any case).
        let nocanon = rest.iter().any(|t| t.text.eq_ignore_ascii_case("nocanon"));
        let rest: Vec<Token> = rest
            .iter()
            .filter(|t| !t.text.eq_ignore_ascii_case("nocanon"))
            .cloned()
            .collect();
        let params = self.params(&rest);
        let target = if target.text == "!" {
            ProxyTarget::Exclude
        } else if is_balancer_url(&target.text) {
            let (name, sub) = split_balancer_url(&target.text).ok_or_else(|| {
                invalid(
                    target.span,
                    format!("invalid balancer url \"{}\"", target.text),
                )
            })?;
            let i = self.balancer(&name, target.span);
            self.balancer_refs.push((i, target.span));
            self.check_balancer_params(&name, &params);
            self.cfg.balancers[i].params.extend(params.iter().cloned());
            ProxyTarget::Balancer { name, path: sub }
        } else if target.text.contains("://") {
            self.check_worker_params(&params);
            ProxyTarget::Url(target.text.clone())
        } else {
            return Err(invalid(
                target.span,
                format!(
                    "invalid ProxyPass target \"{}\": expected a url, balancer://name or !",
                    target.text
                ),
            ));
        };
        self.cfg.proxy_passes.push(ProxyPassConfig {
            path: path.text.clone(),
            target,
            params,
            nocanon,
            regex: false,
            noquery: false,
            interpolate: false,
            context: Context::default(),
            span,
        });
        Ok(())
    }

    fn hc_template(&mut self, span: Span, args: &[Token]) -> Result<(), ParseError> {
        let Some((name, rest)) = args.split_first() else {
            return Err(syntax(span, "ProxyHCTemplate needs a name"));
        };
        let params = self.params(rest);
        for p in &params {
            if self.errors.len() >= MAX_ERRORS {
                break;
            }
            let key = to_lower(&p.key);
            if HC_KEYS.contains(&key.as_str()) {
                self.check_extra(&key, p);
            } else {
                let other = keys::is_worker_key(&key)
                    .then(|| "a template holds only hc* parameters".to_owned());
                self.errors.push(unknown_param(p, HC_KEYS, other));
            }
        }
        self.templates.entry(name.text.clone()).or_insert(span);
        self.cfg.hc_templates.push(HcTemplate {
            name: name.text.clone(),
            params,
            span,
        });
        Ok(())
    }

    fn hc_expr(&mut self, line: &LogicalLine, span: Span, next: usize) -> Result<(), ParseError> {
        let start = line.skip_blank(next);
        if start >= line.len() {
            return Err(syntax(span, "ProxyHCExpr needs a name and an {expression}"));
        }
        let (name, after) = word(line, start)?;
        let open = line.skip_blank(after);
        let body = line.text.get(open..).unwrap_or("").trim_end();
        if !body.starts_with('{') || body.len() < 2 || !body.ends_with('}') {
            return Err(syntax(
                line.span_at(open),
                "ProxyHCExpr needs an expression in braces, e.g. {%{REQUEST_STATUS} =~ /^[23]/}",
            ));
        }
        let expr = &body[1..body.len() - 1];
        self.exprs.entry(name.text.clone()).or_insert(span);
        self.cfg.hc_exprs.push(HcExpr {
            name: name.text,
            expr: expr.trim().to_owned(),
            span,
        });
        Ok(())
    }

    /// `Header [always|onsuccess] action name [value] [env=[!]VAR]`. The actions the proxy
    /// applies (`add`, `set`, `append`, `merge`, `setifempty`, `unset`) become a
    /// [`HeaderDirective`]; Apache's other actions (`edit`, `edit*`, `echo`, `note`) and
    /// conditions other than `env=` are kept in `skipped` (a site refuses them rather than
    /// run without them); an action Apache does not have is an error, as in Apache.
    fn header(&mut self, span: Span, directive: &str, args: &[Token]) -> Result<(), ParseError> {
        let mut i = 0;
        let always = args
            .first()
            .is_some_and(|a| a.text.eq_ignore_ascii_case("always"));
        if always
            || args
                .first()
                .is_some_and(|a| a.text.eq_ignore_ascii_case("onsuccess"))
        {
            i = 1;
        }
        let rest = args.get(i..).unwrap_or_default();
        let Some(action_token) = rest.first() else {
            return Err(syntax(
                span,
                format!("{directive} needs an action, a header name and a value"),
            ));
        };
        let action = to_lower(&action_token.text);
        let condition = |tail: &[Token]| match tail {
            [] => Some(None),
            [cond] => cond
                .text
                .strip_prefix("env=")
                .map(|env| Some(env.to_owned())),
            _ => None,
        };
        let parsed = match (action.as_str(), rest) {
            ("add" | "set" | "append" | "merge" | "setifempty", [_, name, value, tail @ ..]) => {
                condition(tail).map(|env| (name, value.text.clone(), env))
            }
            ("unset", [_, name, tail @ ..]) => condition(tail).map(|env| (name, String::new(), env)),
            (
                "add" | "set" | "append" | "merge" | "setifempty" | "unset" | "edit" | "edit*"
                | "echo" | "note",
                _,
            ) => None,
            _ => {
                return Err(invalid(
                    action_token.span,
                    format!(
                        "unknown {directive} action \"{}\": expected add, append, echo, edit, edit*, merge, note, set, setifempty or unset",
                        action_token.text
                    ),
                ))
            }
        };
        match parsed {
            Some((name, value, env)) => self.cfg.headers.push(HeaderDirective {
                always,
                action,
                name: name.text.clone(),
                value,
                env,
                context: Context::default(),
                span,
            }),
            None => self.skip(directive, span),
        }
        Ok(())
    }
}

fn check_member_url(url: &Token) -> Result<(), ParseError> {
    let ok = url.text.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
            && !rest.is_empty()
            && !rest.starts_with('/')
    }) && !url.text.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            url.span,
            format!(
                "invalid member url \"{}\": expected scheme://host[:port][/path]",
                url.text
            ),
        ))
    }
}

fn one_arg<'a>(span: Span, directive: &str, args: &'a [Token]) -> Result<&'a Token, ParseError> {
    match args {
        [one] => Ok(one),
        _ => Err(syntax(span, format!("{directive} takes one argument"))),
    }
}

/// `internal public [interpolate]` of `ProxyPassReverseCookieDomain`/`…CookiePath`.
///
/// Apache takes any third word for `interpolate`; a third word that is not `interpolate` is
/// refused here, as it is most likely a mistake.
fn cookie_rewrite(
    span: Span,
    directive: &str,
    args: &[Token],
) -> Result<CookieRewrite, ParseError> {
    let (internal, public, interpolate) = match args {
        [internal, public] => (internal, public, false),
        [internal, public, third] if third.text.eq_ignore_ascii_case("interpolate") => {
            (internal, public, true)
        }
        [_, _, third] => {
            return Err(invalid(
                third.span,
                format!(
                    "invalid third argument \"{}\" for {directive}: only interpolate may follow the two values",
                    third.text
                ),
            ))
        }
        _ => {
            return Err(syntax(
                span,
                format!("{directive} takes an internal value, a public value and an optional interpolate"),
            ))
        }
    };
    Ok(CookieRewrite {
        internal: internal.text.clone(),
        public: public.text.clone(),
        interpolate,
        context: Context::default(),
        span,
    })
}

/// `[scheme://]host[:port]`, checked as Apache's `ServerName` is: no wildcard (that is what
/// `ServerAlias` is for), a port from 1 to 65535. Unlike Apache (whose `atoi` reads `80x` as
/// 80), the port must be digits only; a bracketed IPv6 address is read as one host.
fn server_name(span: Span, v: &Token) -> Result<ServerName, ParseError> {
    let bad = |reason: &str| {
        invalid(
            v.span,
            format!("invalid value \"{}\" for ServerName: {reason}", v.text),
        )
    };
    let text = v.text.as_str();
    if text.contains(['*', '?']) {
        return Err(bad(
            "wildcards are not allowed; use ServerAlias for more names",
        ));
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => {
            let ok = !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !ok {
                return Err(bad("the scheme before :// is not valid"));
            }
            (Some(scheme.to_ascii_lowercase()), rest)
        }
        None => (None, text),
    };
    let (host, port) = if rest.starts_with('[') {
        match rest.find(']') {
            Some(end) => {
                let (host, after) = rest.split_at(end + 1);
                match after {
                    "" => (host, None),
                    _ => match after.strip_prefix(':') {
                        Some(port) => (host, Some(port)),
                        None => return Err(bad("unexpected text after the IPv6 address")),
                    },
                }
            }
            None => return Err(bad("an IPv6 address must be closed with ]")),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("the host name is missing"));
    }
    if host.contains(['/', '@', '\\']) || host.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(bad("expected [scheme://]host[:port]"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n >= 1 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
    };
    Ok(ServerName {
        scheme,
        host: host.to_owned(),
        port,
        span,
    })
}

fn on_off(span: Span, directive: &str, args: &[Token]) -> Result<bool, ParseError> {
    let v = one_arg(span, directive, args)?;
    if v.text.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if v.text.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(invalid(
            v.span,
            format!(
                "invalid value \"{}\" for {directive}: must be On or Off",
                v.text
            ),
        ))
    }
}
