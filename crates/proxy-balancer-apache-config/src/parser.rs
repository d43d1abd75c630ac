//! The parser: logical lines to a [`Config`], collecting every error.

use std::collections::HashMap;
use std::time::Duration;

use proxy_balancer_core::{BalancerParams, MemberParams};

use crate::ast::{
    AllowEncodedSlashes, BalancerConfig, Config, Context, CookieRewrite, HcExpr, HcTemplate,
    HostSettings, LocationConfig, ManagerLocation, MemberConfig, Param, ProxyPassConfig,
    ProxyPassReverseConfig, ProxyTarget, ServerName, Skipped, Span, VirtualHostConfig,
};
use crate::ast::{HeartbeatListen, ProxyBadHeader, ProxyErrorOverride, ProxyVia};
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

/// Parses as [`parse`] does, and returns what was read even when there are errors: the
/// configuration without the lines in error, and the errors (empty when [`parse`] succeeds).
/// For a config check that reports the doctor's findings along with the parse errors.
///
/// ```
/// use proxy_balancer_apache_config::{doctor, parse_partial};
///
/// let (config, errors) = parse_partial(
///     "<Proxy balancer://app>\n  BalancerMember http://a:80 retry=300 hcmethod=GET\n</Proxy>\nProxyPass /app\n",
/// );
/// assert_eq!(errors.len(), 1);
/// assert_eq!(errors[0].span.line, 4);
/// // What was read can still be checked.
/// assert_eq!(doctor::check(&config)[0].rule, "retry-too-long");
/// ```
#[must_use]
pub fn parse_partial(text: &str) -> (Config, Vec<ParseError>) {
    let mut p = Parser::new();
    for line in logical_lines(text) {
        p.line(&line);
    }
    p.finish_partial()
}

/// What an open block is.
#[derive(Debug)]
enum Kind {
    /// `<Proxy balancer://…>`: the balancer's index.
    Balancer(usize),
    /// `<Proxy>` of anything else (`*`, a plain worker URL).
    Worker,
    /// `<ProxyMatch regex>`: `ProxySet` and `BalancerMember` inside are refused, the rest is
    /// skipped.
    ProxyMatch,
    /// `<Location path>`, `<Location ~ regex>`, `<LocationMatch regex>`.
    Location(LocationState),
    /// A block nested inside a `<Location>` (`<RequireAny>`, `<IfModule>` …): read as part
    /// of the location.
    InLocation,
    /// `<VirtualHost>`: its index in `Config::virtual_hosts`.
    VirtualHost(usize),
    /// `<IfModule>` and the like: read as if their content were not in a block.
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

/// The server a directive at server level configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Main,
    /// A `<VirtualHost>` (its index).
    VirtualHost(usize),
}

#[derive(Debug)]
struct LocationState {
    /// Its index in `Config::locations`.
    index: usize,
    path: String,
    /// `<LocationMatch>` or `<Location ~ …>`.
    regex: bool,
    requires: Vec<String>,
    /// Where each `Require` line is (listed as skipped outside a manager location).
    require_spans: Vec<Span>,
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
    "ProxyDiscoverNameserver",
    "ProxySet",
    "ProxyPass",
    "ProxyPassMatch",
    "ProxyPassReverse",
    "ProxyPassInherit",
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
    "ServerAlias",
    "AllowEncodedSlashes",
    "ErrorLog",
    "CustomLog",
    "TransferLog",
    "LogFormat",
    "LogLevel",
    "ProxyVia",
    "ProxyErrorOverride",
    "ProxyBadHeader",
    "Proxy100Continue",
    "ProxyIOBufferSize",
    "HeartbeatListen",
    "HeartbeatMaxServers",
    "ProxyHCTPsize",
    "BalancerShare",
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

/// Blocks read as if their content were not in a block.
const READ_THROUGH: &[&str] = &[
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
    /// (virtual host, balancer name) → index in `cfg.balancers`: a balancer belongs to the
    /// server it is written in.
    balancer_index: HashMap<(Option<usize>, String), usize>,
    /// Whether each balancer was defined (not only referenced).
    defined: Vec<bool>,
    /// `ProxyPass` references to balancers, resolved at the end (a virtual host's
    /// reference may name the main server's balancer).
    balancer_refs: Vec<BalancerRef>,
    /// (virtual host, normalised member URL) → (balancer, member).
    member_index: HashMap<(Option<usize>, String), (usize, usize)>,
    /// Template and expression names defined so far → where.
    templates: HashMap<String, Span>,
    exprs: HashMap<String, Span>,
    /// Uses of names not defined when used: (name, span, is_template).
    pending_uses: Vec<(String, Span, bool)>,
    /// A member with default parameters, cloned to check parameters.
    scratch_member: MemberParams,
}

/// A `ProxyPass` naming a balancer.
#[derive(Debug)]
struct BalancerRef {
    /// The balancer of the server the `ProxyPass` is in (maybe only referenced there).
    index: usize,
    /// Where the target is written.
    span: Span,
    /// The `ProxyPass` gave balancer parameters.
    has_params: bool,
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

    pub(crate) fn finish(self) -> Result<Config, ParseErrors> {
        let (config, errors) = self.finish_partial();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ParseErrors::new(errors))
        }
    }

    pub(crate) fn finish_partial(mut self) -> (Config, Vec<ParseError>) {
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
        self.resolve_balancers();
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
        self.errors.sort_by_key(|e| e.span);
        self.errors.truncate(MAX_ERRORS);
        (self.cfg, self.errors)
    }

    /// Resolves the `ProxyPass` references to balancers as Apache's merge of the main
    /// server into each `<VirtualHost>` does ([`Config::balancer_in`]): the server's own
    /// balancer, else the main server's when the virtual host inherits balancers. A
    /// balancer defined both in the main server and in a virtual host that inherits is
    /// refused (Apache would run the main server's members there).
    fn resolve_balancers(&mut self) {
        let main_defined = |p: &Self, name: &str| {
            p.balancer_index
                .get(&(None, name.to_owned()))
                .copied()
                .filter(|i| p.defined[*i])
        };
        let mut drop = vec![false; self.cfg.balancers.len()];
        for r in std::mem::take(&mut self.balancer_refs) {
            if self.defined[r.index] {
                continue;
            }
            let b = &self.cfg.balancers[r.index];
            let vhost = b.context.vhost;
            let name = b.name.clone();
            let main = main_defined(self, &name);
            match main {
                Some(m) if vhost.is_some() && self.cfg.inherits_balancers(vhost) => {
                    if r.has_params {
                        self.errors.push(
                            invalid(
                                r.span,
                                format!(
                                    "balancer parameters on a ProxyPass to {name} of the main server (line {}), inside a <VirtualHost>",
                                    self.cfg.balancers[m].span.line
                                ),
                            )
                            .with_hint(Some(
                                "Apache applies them to this virtual host's copy of the balancer; \
                                 here a balancer is shared by the servers that inherit it: put them on \
                                 ProxySet in the main server, or define the balancer in this <VirtualHost>"
                                    .to_owned(),
                            )),
                        );
                    }
                    drop[r.index] = true;
                }
                _ => {
                    let hint = match (vhost, main) {
                        (Some(_), Some(m)) => format!(
                            "this <VirtualHost> does not inherit the main server's balancers \
                             (BalancerInherit Off and ProxyPassInherit Off); the main server \
                             defines it on line {}: define it in this <VirtualHost> too",
                            self.cfg.balancers[m].span.line
                        ),
                        _ => format!("add a <Proxy \"{name}\"> block with BalancerMember lines"),
                    };
                    self.errors.push(
                        ParseError::new(
                            r.span,
                            ParseErrorKind::UndefinedBalancer,
                            format!("balancer \"{name}\" is not defined"),
                        )
                        .with_hint(Some(hint)),
                    );
                }
            }
        }
        // The same balancer in the main server and in a virtual host that inherits it: Apache
        // merges the two into the main server's (its members, the virtual host's parameters
        // over the main server's), never what the virtual host says.
        for (i, b) in self.cfg.balancers.iter().enumerate() {
            let vhost = b.context.vhost;
            if vhost.is_none() || !self.defined[i] || !self.cfg.inherits_balancers(vhost) {
                continue;
            }
            if let Some(m) = main_defined(self, &b.name) {
                self.errors.push(
                    ParseError::new(
                        b.span,
                        ParseErrorKind::InvalidValue,
                        format!(
                            "{} is defined both in the main server (line {}) and in this <VirtualHost>, which inherits the main server's balancers",
                            b.name, self.cfg.balancers[m].span.line
                        ),
                    )
                    .with_hint(Some(
                        "Apache would use the main server's members here and ignore this block's BalancerMember lines: \
                         give this balancer another name, or write BalancerInherit Off and ProxyPassInherit Off in this <VirtualHost>"
                            .to_owned(),
                    )),
                );
            }
        }
        if drop.iter().any(|d| *d) {
            let mut i = 0;
            self.cfg.balancers.retain(|_| {
                i += 1;
                !drop[i - 1]
            });
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
            // A directive this crate applies, inside a section it does not read
            // (`<Directory>`, `<Files>` …): not applied, and said so (the doctor's
            // `no-effect` rule; a `Header` line there refuses the site).
            if let Ok((name, _)) = word(line, start) {
                let lower = to_lower(&name.text);
                let ours = DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(&lower))
                    || matches!(lower.as_str(), "header" | "requestheader")
                    || crate::front::is_front_directive(&lower)
                    || crate::ssl::is_ssl_proxy_directive(&lower);
                if ours {
                    self.in_block(&name.text, name.span);
                }
            }
            return;
        }
        let (name, next) = match word(line, start) {
            Ok(w) => w,
            Err(e) => return self.errors.push(e),
        };
        if self.in_proxy_match() {
            // Apache's `ProxySet`/`BalancerMember` in a `<ProxyMatch>` configure the worker or
            // balancer named by the regular expression's text itself (a "match worker"
            // whose parameters apply to the workers `ProxyPassMatch` creates): nothing this
            // crate can apply, so refused rather than dropped.
            let lower = to_lower(&name.text);
            if lower == "proxyset" || lower == "balancermember" {
                self.errors.push(
                    syntax(
                        name.span,
                        format!("{} inside a <ProxyMatch> block is not supported", name.text),
                    )
                    .with_hint(Some(
                        "Apache applies it to the worker or balancer named by the regular expression's text; \
                         write the parameters on the BalancerMember, ProxySet balancer://name or ProxyPass lines instead"
                            .to_owned(),
                    )),
                );
            } else if crate::ssl::is_ssl_proxy_directive(&lower) {
                // Apache 2.4.30+ applies it to the workers the expression matches.
                self.errors.push(
                    ParseError::new(
                        name.span,
                        ParseErrorKind::Unsupported,
                        format!("{} inside a <ProxyMatch> block is not supported: TLS settings apply per server or per balancer here", name.text),
                    )
                    .with_hint(Some(
                        "move it to the server, the <VirtualHost>, or the <Proxy \"balancer://…\"> of the members".to_owned(),
                    )),
                );
            }
            return;
        }
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
        let kind = if in_skip {
            Ok(Kind::Skip)
        } else {
            self.open(&tag, raw_name.trim_end_matches('>'), span, &toks)
        };
        // A block refused here is still a block: its content is skipped and its closing tag
        // closes it, so one mistake gives one error.
        let (kind, result) = match kind {
            Ok(kind) => (kind, Ok(())),
            Err(e) => (Kind::Skip, Err(e)),
        };
        self.stack.push(Frame { tag, span, kind });
        result
    }

    /// What a block opening (outside skipped blocks) is, checked as Apache checks it.
    fn open(
        &mut self,
        tag: &str,
        raw_name: &str,
        span: Span,
        toks: &[Token],
    ) -> Result<Kind, ParseError> {
        // Apache's "<Location not allowed in <Proxy> context": a section of the main server
        // or a virtual host cannot open inside a directory section.
        let section = matches!(
            tag,
            "proxy" | "proxymatch" | "location" | "locationmatch" | "virtualhost"
        );
        if section {
            if let Some(outer) = self.directory_section() {
                return Err(syntax(
                    span,
                    format!("<{raw_name}> is not allowed inside a <{outer}> block (Apache: \"<{raw_name} not allowed in <{outer}> context\")"),
                ));
            }
        }
        if self.location_index().is_some() {
            // `<RequireAny>` and the like group the manager's access rules, `<IfModule>` …
            // are read through; a condition (`<If>`, `<Limit>`, `<Files>` …) would make what
            // it holds conditional: skipped (listed), never applied unconditionally.
            let through = READ_THROUGH.contains(&tag)
                || matches!(tag, "requireany" | "requireall" | "requirenone");
            if through {
                return Ok(Kind::InLocation);
            }
            self.skip(raw_name, span);
            return Ok(Kind::Skip);
        }
        if self.in_proxy_match() {
            // Its content is skipped (but for the refusals of `line`).
            return Ok(Kind::ReadThrough);
        }
        match tag {
            "proxy" => {
                let url = toks
                    .first()
                    .ok_or_else(|| syntax(span, "<Proxy> needs a URL"))?;
                if is_balancer_url(&url.text) {
                    let (name, _) = split_balancer_url(&url.text).ok_or_else(|| {
                        invalid(url.span, format!("invalid balancer url \"{}\"", url.text))
                    })?;
                    Ok(Kind::Balancer(self.define_balancer(&name, span)))
                } else {
                    self.skip(&format!("<{raw_name}"), span);
                    Ok(Kind::Worker)
                }
            }
            "proxymatch" => {
                self.skip(raw_name, span);
                Ok(Kind::ProxyMatch)
            }
            "location" | "locationmatch" => self.open_location(tag, raw_name, span, toks),
            "virtualhost" => {
                if self.current_vhost().is_some() {
                    return Err(syntax(
                        span,
                        "<VirtualHost> cannot occur within <VirtualHost> section",
                    )
                    .with_hint(Some(
                        "close the first <VirtualHost> before opening the next".to_owned(),
                    )));
                }
                if toks.is_empty() {
                    return Err(syntax(
                        span,
                        "<VirtualHost> directive requires additional arguments",
                    )
                    .with_hint(Some("give its address, e.g. <VirtualHost *:80>".to_owned())));
                }
                let index = self.cfg.virtual_hosts.len();
                self.cfg.virtual_hosts.push(VirtualHostConfig {
                    addresses: toks.iter().map(|t| t.text.clone()).collect(),
                    settings: HostSettings::default(),
                    span,
                });
                Ok(Kind::VirtualHost(index))
            }
            t if READ_THROUGH.contains(&t) => Ok(Kind::ReadThrough),
            _ => {
                self.skip(raw_name, span);
                Ok(Kind::Skip)
            }
        }
    }

    /// `<Location path>`, `<Location ~ regex>` or `<LocationMatch regex>`.
    fn open_location(
        &mut self,
        tag: &str,
        raw_name: &str,
        span: Span,
        toks: &[Token],
    ) -> Result<Kind, ParseError> {
        let (regex, args) = match toks {
            _ if tag == "locationmatch" => (true, toks),
            [tilde, rest @ ..] if tilde.text == "~" && !tilde.quoted => (true, rest),
            _ => (false, toks),
        };
        let (path, path_span) = match args {
            [] if toks.is_empty() => {
                return Err(syntax(
                    span,
                    format!("<{raw_name}> directive requires additional arguments"),
                ))
            }
            // `<Location ~>`: Apache reads an empty regular expression (every path).
            [] => (String::new(), span),
            [path] => (path.text.clone(), path.span),
            [_, extra, ..] => {
                return Err(syntax(
                    extra.span,
                    format!("multiple <{raw_name}> arguments are not supported (as in Apache)"),
                ))
            }
        };
        if regex {
            check_regex(path_span, &path)?;
        }
        let index = self.cfg.locations.len();
        self.cfg.locations.push(LocationConfig {
            path: path.clone(),
            regex,
            vhost: self.current_vhost(),
            span,
        });
        Ok(Kind::Location(LocationState {
            index,
            path,
            regex,
            requires: Vec::new(),
            require_spans: Vec::new(),
            manager: false,
        }))
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
                    context: Context {
                        vhost: self.current_vhost(),
                        location: Some(loc.index),
                    },
                    span: frame.span,
                });
            } else {
                // Access rules of a location this crate does not serve: not applied (the
                // doctor's `not-applied` rule says they fail open), unless they admit
                // everyone (`Require all granted`).
                for (require, span) in loc.requires.iter().zip(loc.require_spans) {
                    let args: Vec<&str> = require.split_whitespace().collect();
                    if crate::registry::unread("Require", &args, span).unwrap_or(true) {
                        self.skip("Require", span);
                    }
                }
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
                Kind::Worker | Kind::ProxyMatch => Some(InProxy::Other),
                _ => None,
            })
            .unwrap_or(InProxy::Outside)
    }

    /// The directory section (`Proxy`, `Location` …, as Apache names it in its messages)
    /// a directive here is in, if any.
    fn directory_section(&self) -> Option<&'static str> {
        self.stack.iter().rev().find_map(|f| match &f.kind {
            Kind::Balancer(_) | Kind::Worker => Some("Proxy"),
            Kind::ProxyMatch => Some("ProxyMatch"),
            Kind::Location(_) if f.tag == "locationmatch" => Some("LocationMatch"),
            Kind::Location(_) => Some("Location"),
            _ => None,
        })
    }

    /// The server a directive here configures, when it is at server level; `None` inside
    /// a `<Proxy>`, `<Location>` or skipped block.
    fn server_scope(&self) -> Option<Server> {
        let mut server = Server::Main;
        for f in &self.stack {
            match f.kind {
                Kind::ReadThrough => {}
                Kind::VirtualHost(i) => server = Server::VirtualHost(i),
                _ => return None,
            }
        }
        Some(server)
    }

    fn in_proxy_match(&self) -> bool {
        self.stack
            .iter()
            .any(|f| matches!(f.kind, Kind::ProxyMatch))
    }

    /// The `<VirtualHost>` a directive here is in.
    fn current_vhost(&self) -> Option<usize> {
        self.stack.iter().find_map(|f| match f.kind {
            Kind::VirtualHost(i) => Some(i),
            _ => None,
        })
    }

    /// The `<Location>` a directive here is in (an index in `Config::locations`).
    fn location_index(&self) -> Option<usize> {
        self.stack.iter().rev().find_map(|f| match &f.kind {
            Kind::Location(l) => Some(l.index),
            _ => None,
        })
    }

    /// Where a directive here is: its virtual host and location, for the [`Context`] of
    /// what it becomes.
    pub(crate) fn context(&self) -> Context {
        Context {
            vhost: self.current_vhost(),
            location: self.location_index(),
        }
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

    /// The balancer `name` of the server a directive here is in, created (as only
    /// referenced) if it is not there yet.
    fn balancer(&mut self, name: &str, span: Span) -> usize {
        let vhost = self.current_vhost();
        if let Some(i) = self.balancer_index.get(&(vhost, name.to_owned())) {
            return *i;
        }
        let i = self.cfg.balancers.len();
        self.cfg.balancers.push(BalancerConfig {
            name: name.to_owned(),
            params: Vec::new(),
            members: Vec::new(),
            context: Context {
                vhost,
                location: None,
            },
            span,
        });
        self.defined.push(false);
        self.balancer_index.insert((vhost, name.to_owned()), i);
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
            return self.location_directive(line, name, &lower, next);
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
            "proxypassmatch" if in_proxy == InProxy::Outside => self.proxy_pass_match(span, &args),
            "proxypassreverse" if in_proxy == InProxy::Outside => {
                if let [_, _, third] = args.as_slice() {
                    if third.text.eq_ignore_ascii_case("interpolate") {
                        return Err(invalid(
                            third.span,
                            "ProxyPassReverse … interpolate is not supported: interpolation from the environment is not applied".to_owned(),
                        )
                        .with_hint(Some("write the path and URL out".to_owned())));
                    }
                }
                let [path, target] = args.as_slice() else {
                    return Err(syntax(span, "ProxyPassReverse takes a path and a URL"));
                };
                self.cfg.proxy_pass_reverses.push(ProxyPassReverseConfig {
                    path: path.text.clone(),
                    target: target.text.clone(),
                    context: self.context(),
                    span,
                });
                Ok(())
            }
            "proxyhctemplate" => self.hc_template(span, &args),
            // DNS discovery (discovery.rs): main server only.
            "proxydiscovernameserver" => {
                let ns = crate::discovery::nameservers(span, &args)?;
                self.server_setting(&name.text, span, |c| c.discover_nameservers = Some(ns));
                Ok(())
            }
            "balancergrowth" => {
                let v = one_arg(span, "BalancerGrowth", &args)?;
                match v.text.trim().parse::<u32>() {
                    Ok(n) if n <= 1000 => {
                        // Main server only: in a <VirtualHost> it is reported, not applied
                        // to every balancer.
                        self.server_setting(&name.text, span, |c| c.balancer_growth = Some(n));
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
            // proxy-balancer's own (crate::shared).
            "balancershare" => {
                let section = match self.server_scope() {
                    Some(Server::Main) => None,
                    Some(Server::VirtualHost(_)) => Some("VirtualHost"),
                    None if in_proxy != InProxy::Outside => Some("Proxy"),
                    None => Some("this block's"),
                };
                crate::shared::read(&mut self.cfg, span, &args, section)
            }
            "balancerpersist" => {
                let on = on_off(span, "BalancerPersist", &args)?;
                self.server_setting(&name.text, span, |c| c.balancer_persist = Some(on));
                Ok(())
            }
            "balancerinherit" | "proxypassinherit" => {
                let directive = if lower == "balancerinherit" {
                    "BalancerInherit"
                } else {
                    "ProxyPassInherit"
                };
                if in_proxy != InProxy::Outside {
                    // As Apache: "BalancerInherit not allowed in <Proxy> context".
                    return Err(not_allowed(span, directive, "Proxy"));
                }
                let on = on_off(span, directive, &args)?;
                self.host_setting(&name.text, span, |h| {
                    if lower == "balancerinherit" {
                        h.balancer_inherit = Some(on);
                    } else {
                        h.proxy_pass_inherit = Some(on);
                    }
                });
                Ok(())
            }
            "proxytimeout" => {
                let v = one_arg(span, "ProxyTimeout", &args)?;
                match v.text.trim().parse::<u64>() {
                    Ok(n) if n >= 1 => {
                        // Main server only: in a <VirtualHost> it is reported (the doctor's
                        // no-effect rule), not applied to every server's members.
                        self.server_setting(&name.text, span, |c| {
                            c.proxy_timeout = Some(Duration::from_secs(n));
                        });
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
            "header" => self.header(span, &name.text, false, &args),
            "requestheader" => self.header(span, &name.text, true, &args),
            // The directives of `apply_directive` (ProxyVia, ProxyErrorOverride, …).
            applied if APPLIED_DIRECTIVES.contains(&applied) => {
                match apply_directive(span, applied, &name.text, &args)? {
                    SetConfig::Host(apply) => self.host_setting(&name.text, span, apply),
                    SetConfig::Main(apply) => self.server_setting(&name.text, span, apply),
                }
                Ok(())
            }
            ssl if crate::ssl::is_ssl_proxy_directive(ssl) => {
                let balancer = match in_proxy {
                    InProxy::Outside => None,
                    InProxy::Balancer(i) => Some(i),
                    InProxy::Other => {
                        return Err(ParseError::new(
                            span,
                            ParseErrorKind::Unsupported,
                            format!("{} in a <Proxy> section of a URL or in a <ProxyMatch> is not supported: TLS settings apply per server or per balancer here", name.text),
                        )
                        .with_hint(Some(
                            "move it to the server, the <VirtualHost>, or the <Proxy \"balancer://…\"> of the members".to_owned(),
                        )));
                    }
                };
                let apply = crate::ssl::parse(span, ssl, &name.text, &args)?;
                match balancer {
                    None => self.host_setting(&name.text, span, |h| apply(&mut h.ssl_proxy)),
                    Some(i) => {
                        let list = &mut self.cfg.balancer_ssl_proxy;
                        let at = match list.iter().position(|(b, _)| *b == i) {
                            Some(at) => at,
                            None => {
                                list.push((i, crate::ssl::SslProxySettings::default()));
                                list.len() - 1
                            }
                        };
                        apply(&mut list[at].1);
                    }
                }
                Ok(())
            }
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
                self.host_setting(&name.text, span, |h| h.allow_encoded_slashes = Some(mode));
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
                self.host_setting(&name.text, span, |h| h.proxy_preserve_host = Some(on));
                Ok(())
            }
            "proxyaddheaders" => {
                let on = on_off(span, "ProxyAddHeaders", &args)?;
                self.host_setting(&name.text, span, |h| h.proxy_add_headers = Some(on));
                Ok(())
            }
            "proxypassreversecookiedomain" | "proxypassreversecookiepath" => {
                if self.server_scope().is_some() {
                    self.cookie_rewrite_line(span, &lower, &args)
                } else {
                    cookie_rewrite(span, &name.text, &args)?;
                    self.in_block(&name.text, span);
                    Ok(())
                }
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
                self.host_setting(&name.text, span, |h| h.server_name = Some(server_name));
                Ok(())
            }
            "serveralias" => {
                if in_proxy != InProxy::Outside {
                    return Err(not_allowed(span, "ServerAlias", "Proxy"));
                }
                if args.is_empty() {
                    return Err(syntax(span, "ServerAlias takes one or more host names"));
                }
                match self.server_scope() {
                    Some(Server::VirtualHost(v)) => {
                        if let Some(vh) = self.cfg.virtual_hosts.get_mut(v) {
                            vh.settings
                                .server_aliases
                                .extend(args.iter().map(|a| to_lower(&a.text)));
                        }
                        Ok(())
                    }
                    // As Apache: "ServerAlias only used in <VirtualHost>".
                    _ => Err(syntax(span, "ServerAlias only used in <VirtualHost>").with_hint(
                        Some(
                            "the main server answers for its ServerName only; put the aliases in a <VirtualHost>"
                                .to_owned(),
                        ),
                    )),
                }
            }
            ssl if crate::ssl_server::is_ssl_server_directive(ssl) => {
                if in_proxy != InProxy::Outside {
                    return Err(not_allowed(span, &name.text, "Proxy"));
                }
                let current = match self.server_scope() {
                    Some(Server::VirtualHost(v)) => {
                        self.cfg.virtual_hosts.get(v).map(|h| &h.settings.ssl)
                    }
                    _ => Some(&self.cfg.server.ssl),
                };
                let setting = crate::ssl_server::parse(
                    span,
                    ssl,
                    &args,
                    current.unwrap_or(&Default::default()),
                )?;
                self.host_setting(&name.text, span, |h| h.ssl.merge(setting));
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
                // Refused here, or listed as skipped for the doctor to report.
                let texts: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
                if crate::registry::unread(&name.text, &texts, span)? {
                    self.skip(&name.text, span);
                }
                Ok(())
            }
        }
    }

    /// Applies a setting of the whole process (the logs, the client limits) in the main
    /// server; elsewhere (a `<VirtualHost>`, a `<Proxy>` block) the directive is listed as
    /// skipped instead ([`Skipped::in_block`]).
    fn server_setting(&mut self, directive: &str, span: Span, apply: impl FnOnce(&mut Config)) {
        if self.server_scope() == Some(Server::Main) {
            apply(&mut self.cfg);
        } else {
            self.in_block(directive, span);
        }
    }

    /// Applies a per-server setting to the server it is written in: the main server's
    /// [`Config::server`] or the `<VirtualHost>`'s settings. Inside a `<Proxy>` block the
    /// directive is listed as skipped instead ([`Skipped::in_block`]).
    fn host_setting(&mut self, directive: &str, span: Span, apply: impl FnOnce(&mut HostSettings)) {
        match self.server_scope() {
            Some(Server::Main) => apply(&mut self.cfg.server),
            Some(Server::VirtualHost(v)) => {
                if let Some(vh) = self.cfg.virtual_hosts.get_mut(v) {
                    apply(&mut vh.settings);
                }
            }
            None => self.in_block(directive, span),
        }
    }

    /// A directive this crate reads, written in a block where it is not applied.
    fn in_block(&mut self, directive: &str, span: Span) {
        self.cfg.skipped.push(Skipped {
            directive: directive.to_owned(),
            span,
            in_block: true,
        });
    }

    /// `ProxyPassReverseCookieDomain`/`…CookiePath` (`lower` is the directive's name in
    /// lower case) in the server, a `<VirtualHost>` or a `<Location>`: kept with its
    /// context.
    fn cookie_rewrite_line(
        &mut self,
        span: Span,
        lower: &str,
        args: &[Token],
    ) -> Result<(), ParseError> {
        let domain = lower == "proxypassreversecookiedomain";
        let directive = if domain {
            "ProxyPassReverseCookieDomain"
        } else {
            "ProxyPassReverseCookiePath"
        };
        let mut rw = cookie_rewrite(span, directive, args)?;
        rw.context = self.context();
        if domain {
            self.cfg.proxy_pass_reverse_cookie_domains.push(rw);
        } else {
            self.cfg.proxy_pass_reverse_cookie_paths.push(rw);
        }
        Ok(())
    }

    // ===== <Location> =====

    /// A directive inside a `<Location>`/`<LocationMatch>` block (`lower` is its name in
    /// lower case).
    fn location_directive(
        &mut self,
        line: &LogicalLine,
        name: &Token,
        lower: &str,
        next: usize,
    ) -> Result<(), ParseError> {
        let span = name.span;
        let section = self.directory_section().unwrap_or("Location");
        let args = words(line, next)?;
        match lower {
            "sethandler" => {
                let manager = args
                    .first()
                    .is_some_and(|a| a.text.eq_ignore_ascii_case("balancer-manager"));
                if manager {
                    if let Some(loc) = self.location() {
                        loc.manager = true;
                    }
                } else {
                    // `server-status` and the like: not served here.
                    self.skip(&name.text, span);
                }
            }
            "require" => {
                let text: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
                let text = text.join(" ");
                if let Some(loc) = self.location() {
                    loc.requires.push(text);
                    loc.require_spans.push(span);
                }
            }
            "header" => self.header(span, &name.text, false, &args)?,
            "requestheader" => self.header(span, &name.text, true, &args)?,
            "proxypass" | "proxypassmatch" => {
                self.location_proxy_pass(span, &name.text, lower == "proxypassmatch", &args)?;
            }
            "proxypassreverse" => {
                let path = self.location().map(|l| l.path.clone()).unwrap_or_default();
                let target = match args.as_slice() {
                    [target] => target,
                    [_, second] if second.text.eq_ignore_ascii_case("interpolate") => {
                        return Err(invalid(
                            second.span,
                            "ProxyPassReverse … interpolate is not supported: interpolation from the environment is not applied".to_owned(),
                        )
                        .with_hint(Some("write the URL out".to_owned())))
                    }
                    [_, _, ..] => {
                        return Err(syntax(
                            span,
                            "ProxyPassReverse can not have a path when defined in a location",
                        )
                        .with_hint(Some(format!(
                            "inside <{section}> write only the URL: the location's path is its path"
                        ))))
                    }
                    [] => return Err(syntax(span, "ProxyPassReverse takes a URL")),
                };
                self.cfg.proxy_pass_reverses.push(ProxyPassReverseConfig {
                    path,
                    target: target.text.clone(),
                    context: self.context(),
                    span,
                });
            }
            "proxypassreversecookiedomain" | "proxypassreversecookiepath" => {
                self.cookie_rewrite_line(span, lower, &args)?;
            }
            // Apache looks the balancer or worker up in the server's configuration.
            "proxyset" => self.proxy_set(span, &args, InProxy::Outside)?,
            "balancermember" => {
                return Err(syntax(
                    span,
                    format!("BalancerMember is not allowed inside a <{section}> block"),
                )
                .with_hint(Some(
                    "put it in a <Proxy \"balancer://name\"> block (Apache reads the location's path as the balancer's name and refuses it)".to_owned(),
                )))
            }
            ssl if crate::ssl::is_ssl_proxy_directive(ssl) => {
                // mod_ssl: server config, virtual host and proxy section only.
                return Err(not_allowed(span, &name.text, section));
            }
            "balancershare" => return Err(crate::shared::not_here(span, section)),
            "servername" | "serveralias" | "allowencodedslashes" | "proxypassinherit"
            | "balancerinherit" => {
                let directive = DIRECTIVES
                    .iter()
                    .find(|d| d.eq_ignore_ascii_case(lower))
                    .copied()
                    .unwrap_or("ServerName");
                return Err(not_allowed(span, directive, section));
            }
            _ => {
                let texts: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
                if !crate::registry::unread(&name.text, &texts, span)? {
                    return Ok(());
                }
                // A directive this crate reads elsewhere is read here as Apache would
                // apply it to this <Location> only: not applied, and said so.
                let ours = DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(lower))
                    || crate::front::is_front_directive(lower);
                self.cfg.skipped.push(Skipped {
                    directive: name.text.clone(),
                    span,
                    in_block: ours,
                });
            }
        }
        Ok(())
    }

    /// `ProxyPass target [key=value …] [flags]` (or `ProxyPassMatch`) inside a location:
    /// the location's path (or regular expression) is its path.
    fn location_proxy_pass(
        &mut self,
        span: Span,
        directive: &str,
        is_match: bool,
        args: &[Token],
    ) -> Result<(), ParseError> {
        let section = self.directory_section().unwrap_or("Location");
        let Some((path, loc_regex)) = self.location().map(|l| (l.path.clone(), l.regex)) else {
            return Ok(());
        };
        let Some((target, rest)) = args.split_first() else {
            return Err(syntax(
                span,
                format!("{directive} inside <{section}> takes a target url (or !)"),
            ));
        };
        let is_flag = |t: &Token| {
            ["nocanon", "noquery", "interpolate"]
                .iter()
                .any(|f| t.text.eq_ignore_ascii_case(f))
        };
        if target.text.starts_with('/') && rest.is_empty()
            || rest.iter().any(|t| !is_flag(t) && !t.text.contains('='))
        {
            // As Apache: "ProxyPass|ProxyPassMatch can not have a path when defined in a
            // location." (or, for a second word that is not a path, its key=value error).
            return Err(syntax(
                span,
                format!("{directive} can not have a path when defined in a location"),
            )
            .with_hint(Some(format!(
                "inside <{section}> write only the target: the location's path is its path"
            ))));
        }
        // Apache (mod_proxy's add_pass): a `ProxyPass` in a location compares the request
        // path with the location's text as a prefix, unless that text has a wildcard
        // (`apr_fnmatch_test`: `*`, `?`, `[…]`), when it compiles the text as a regular
        // expression; `ProxyPassMatch` always does. Checked on loopback: in
        // `<LocationMatch "^/a(b)">` a `ProxyPass` never matched ("attempting to match URI
        // path '/ab/index.html' against prefix '^/a(b)'"), in `<LocationMatch "^/c.*">` it
        // matched as a pattern.
        let wildcard = fnmatch_test(&path);
        if !loc_regex && !is_match && wildcard {
            return Err(syntax(
                span,
                format!("{directive} inside a <Location> whose path has a wildcard is not supported"),
            )
            .with_hint(Some(
                "Apache then matches the path as a regular expression; write <LocationMatch \"regex\"> instead".to_owned(),
            )));
        }
        let regex = is_match || loc_regex && wildcard;
        if loc_regex && !regex && !path.starts_with('/') {
            return Err(syntax(
                span,
                format!("{directive} inside <{section}> \"{path}\" never matches in Apache"),
            )
            .with_hint(Some(
                "without *, ? or [ in the regular expression, Apache compares the request path with its text as a prefix; \
                 write ProxyPassMatch instead of ProxyPass to match it as a regular expression".to_owned(),
            )));
        }
        if regex && !loc_regex {
            check_regex(span, &path)?;
        }
        self.add_pass(span, path, regex, target, rest)
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
            if key == "mapping" {
                // As Apache: "BalancerMember unknown Worker parameter".
                self.errors.push(
                    ParseError::new(
                        p.span,
                        ParseErrorKind::UnknownParameter,
                        "unknown parameter \"mapping\": not a worker parameter".to_owned(),
                    )
                    .with_hint(Some(
                        "mapping= is a keyword of ProxyPass: write it on the ProxyPass line"
                            .to_owned(),
                    )),
                );
            } else if CORE_MEMBER_KEYS.contains(&key.as_str()) {
                if let Err(e) = scratch.set(&key, &p.value) {
                    self.errors.push(invalid(p.span, e.to_string()));
                }
            } else if HC_KEYS.contains(&key.as_str()) || OTHER_WORKER_KEYS.contains(&key.as_str()) {
                self.check_extra(&key, p);
            } else if crate::discovery::is_key(&key) {
                // On a BalancerMember it is taken out before (discovery.rs).
                self.errors.push(crate::discovery::misplaced(p));
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
        // discover= (discovery.rs): checked there, the rest as worker parameters.
        self.errors
            .extend(crate::discovery::check_member(&url.text, &params));
        let worker: Vec<Param> = params
            .iter()
            .filter(|p| !crate::discovery::is_key(&p.key))
            .cloned()
            .collect();
        self.check_worker_params(&worker);
        let key = (self.current_vhost(), url_key(&url.text));
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
            let vhost = self.current_vhost();
            if in_proxy == InProxy::Outside
                && !self.balancer_index.contains_key(&(vhost, name.clone()))
            {
                // As Apache: outside <Proxy>, ProxySet looks the balancer up in the
                // server's own configuration as read so far.
                let hint = if vhost.is_some()
                    && self.balancer_index.contains_key(&(None, name.clone()))
                {
                    "the main server's balancer is not this <VirtualHost>'s while the configuration is read:                      write this ProxySet in the main server, or define the balancer in this <VirtualHost>"
                        .to_owned()
                } else {
                    format!("define it before this line with <Proxy \"{name}\"> and BalancerMember lines")
                };
                return Err(invalid(
                    first.span,
                    format!("ProxySet can not find '{name}' Balancer"),
                )
                .with_hint(Some(hint)));
            }
            let i = self.define_balancer(&name, span);
            let params = self.params(&args[1..]);
            self.check_balancer_params(&name, &params);
            self.cfg.balancers[i].params.extend(params);
            return Ok(());
        }
        if has_url {
            let params = self.params(&args[1..]);
            self.check_worker_params(&params);
            match self
                .member_index
                .get(&(self.current_vhost(), url_key(&first.text)))
            {
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

    /// `ProxyPass [~] path target [key=value …] [flags]` outside `<Location>`.
    fn proxy_pass(&mut self, span: Span, args: &[Token]) -> Result<(), ParseError> {
        // `ProxyPass ~ regex target` is Apache's other spelling of `ProxyPassMatch`.
        let (regex, args) = match args {
            [tilde, rest @ ..] if tilde.text == "~" && !tilde.quoted => (true, rest),
            _ => (false, args),
        };
        let [path, target, rest @ ..] = args else {
            return Err(syntax(
                span,
                "ProxyPass takes a path and a target url (or !)",
            ));
        };
        if regex {
            check_regex(path.span, &path.text)?;
        }
        self.add_pass(span, path.text.clone(), regex, target, rest)
    }

    /// `ProxyPassMatch regex target [key=value …] [flags]` outside `<Location>`.
    fn proxy_pass_match(&mut self, span: Span, args: &[Token]) -> Result<(), ParseError> {
        if let Some(tilde) = args.first().filter(|t| t.text == "~" && !t.quoted) {
            // As Apache.
            return Err(
                syntax(tilde.span, "ProxyPassMatch invalid syntax ('~' usage)")
                    .with_hint(Some("write ProxyPassMatch regex target".to_owned())),
            );
        }
        let [path, target, rest @ ..] = args else {
            return Err(syntax(
                span,
                "ProxyPassMatch takes a regular expression and a target url (or !)",
            ));
        };
        check_regex(path.span, &path.text)?;
        self.add_pass(span, path.text.clone(), true, target, rest)
    }

    /// The part of `ProxyPass`/`ProxyPassMatch` after the path: the target, then
    /// `key=value` parameters and the keywords `nocanon`, `noquery` and `interpolate`
    /// (anywhere after the target, in any case, as Apache reads them).
    fn add_pass(
        &mut self,
        span: Span,
        path: String,
        regex: bool,
        target: &Token,
        rest: &[Token],
    ) -> Result<(), ParseError> {
        let (mut nocanon, mut noquery, mut interpolate) = (false, false, false);
        let mut words = Vec::with_capacity(rest.len());
        for t in rest {
            if t.text.eq_ignore_ascii_case("nocanon") {
                nocanon = true;
            } else if t.text.eq_ignore_ascii_case("noquery") {
                noquery = true;
            } else if t.text.eq_ignore_ascii_case("interpolate") {
                interpolate = true;
            } else {
                words.push(t.clone());
            }
        }
        let params = self.params(&words);
        // `mapping=encoded|servlet` is a keyword of ProxyPass itself (Apache reads it before
        // the worker and balancer parameters): checked here, kept in `params`.
        let mut others = Vec::with_capacity(params.len());
        for p in &params {
            if p.key.eq_ignore_ascii_case("mapping") {
                self.check_extra("mapping", p);
            } else {
                others.push(p.clone());
            }
        }
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
            self.balancer_refs.push(BalancerRef {
                index: i,
                span: target.span,
                has_params: !others.is_empty(),
            });
            self.check_balancer_params(&name, &others);
            self.cfg.balancers[i].params.extend(others);
            ProxyTarget::Balancer { name, path: sub }
        } else if target.text.contains("://") {
            self.check_worker_params(&others);
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
            path,
            target,
            params,
            nocanon,
            regex,
            noquery,
            interpolate,
            context: self.context(),
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

    /// `Header …` and `RequestHeader …`: read by [`crate::header`].
    fn header(
        &mut self,
        span: Span,
        directive: &str,
        request: bool,
        args: &[Token],
    ) -> Result<(), ParseError> {
        let mut header = crate::header::parse(span, directive, request, args)?;
        header.context = self.context();
        if self.proxy_block() == InProxy::Outside {
            self.cfg.headers.push(header);
        } else {
            // Apache applies it to the requests proxied to the block's URL: checked, kept
            // aside (a site refuses it rather than apply it to every request).
            self.skip(directive, span);
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

/// Apache's `apr_fnmatch_test`: whether a text has a wildcard (`*`, `?`, or `[` with a
/// matching `]`), `\\` escaping the next character.
fn fnmatch_test(text: &str) -> bool {
    let mut nesting = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '?' | '*' => return true,
            '\\' if chars.next().is_none() => return false,
            '[' => nesting += 1,
            ']' if nesting > 0 => return true,
            _ => {}
        }
    }
    false
}

/// Apache's "`directive` not allowed in <`section`> context".
fn not_allowed(span: Span, directive: &str, section: &str) -> ParseError {
    syntax(
        span,
        format!("{directive} not allowed in <{section}> context"),
    )
    .with_hint(Some(match directive {
        "ServerAlias" => "put it in the <VirtualHost> it names".to_owned(),
        _ => "move it to the server or a <VirtualHost>".to_owned(),
    }))
}

/// PCRE features Apache's regular expressions have and the `regex` crate does not, as
/// (text that starts them, name).
const PCRE_ONLY: &[(&str, &str)] = &[
    ("(?=", "lookahead (?=…)"),
    ("(?!", "negative lookahead (?!…)"),
    ("(?<=", "lookbehind (?<=…)"),
    ("(?<!", "negative lookbehind (?<!…)"),
    ("(?>", "atomic groups (?>…)"),
    ("(?(", "conditionals (?(…)…)"),
    ("(?R", "recursion (?R)"),
    ("*+", "possessive quantifiers"),
    ("++", "possessive quantifiers"),
    ("?+", "possessive quantifiers"),
    ("}+", "possessive quantifiers"),
];

/// Checks a regular expression (`<LocationMatch>`, `<Location ~>`, `ProxyPassMatch`) with
/// the `regex` crate, which the site matches requests with.
///
/// Apache compiles these with PCRE; what the `regex` crate cannot compile or reads
/// differently (lookaround, backreferences, atomic groups, possessive quantifiers …) is
/// refused with the feature named, rather than matched differently.
pub(crate) fn check_regex(span: Span, pattern: &str) -> Result<(), ParseError> {
    let refuse = |message: String| {
        Err(invalid(span, message).with_hint(Some(
            "write it without that feature (Apache compiles it with PCRE, proxy-balancer with the regex crate)".to_owned(),
        )))
    };
    if let Some(feature) = pcre_only_feature(pattern) {
        return refuse(format!(
            "regular expression \"{pattern}\" uses {feature}, a PCRE feature proxy-balancer's regular expressions do not have"
        ));
    }
    match regex::Regex::new(pattern) {
        Ok(_) => Ok(()),
        Err(e) => {
            let reason = e.to_string();
            let reason = reason.lines().last().unwrap_or_default().trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            refuse(format!(
                "invalid regular expression \"{pattern}\": {reason}"
            ))
        }
    }
}

/// The first PCRE-only construct of a pattern, outside character classes and escapes.
fn pcre_only_feature(pattern: &str) -> Option<&'static str> {
    let bytes = pattern.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            match bytes.get(i + 1) {
                Some(d) if !in_class && d.is_ascii_digit() && *d != b'0' => {
                    return Some("backreferences \\1 … \\9")
                }
                Some(b'K') if !in_class => return Some("\\K"),
                Some(b'g' | b'k') if !in_class => return Some("named or relative backreferences"),
                _ => {}
            }
            i += 2;
            continue;
        }
        if in_class {
            // `[]…]` and `[^]…]`: a `]` first in the class is a literal.
            let first = i > 0
                && (bytes[i - 1] == b'[' || bytes[i - 1] == b'^' && i > 1 && bytes[i - 2] == b'[');
            if b == b']' && !first {
                in_class = false;
            }
            i += 1;
            continue;
        }
        if b == b'[' {
            in_class = true;
            i += 1;
            continue;
        }
        let rest = &pattern[i..];
        if let Some((_, name)) = PCRE_ONLY.iter().find(|(start, _)| rest.starts_with(start)) {
            return Some(name);
        }
        i += 1;
    }
    None
}

/// What a directive of [`apply_directive`] sets: a per-server setting (the main server's
/// or a `<VirtualHost>`'s), or a main-server-only value of the [`Config`].
enum SetConfig {
    Host(Box<dyn FnOnce(&mut HostSettings)>),
    Main(Box<dyn FnOnce(&mut Config)>),
}

/// The directives [`apply_directive`] reads (lower-case).
const APPLIED_DIRECTIVES: &[&str] = &[
    "proxyvia",
    "proxyerroroverride",
    "proxybadheader",
    "proxy100continue",
    "proxyiobuffersize",
    "heartbeatlisten",
    "heartbeatmaxservers",
    "proxyhctpsize",
    "defaultruntimedir",
];

/// Reads `ProxyVia`, `ProxyErrorOverride`, `ProxyBadHeader`, `Proxy100Continue`,
/// `ProxyIOBufferSize` (per server: [`HostSettings`](crate::HostSettings)) and
/// `HeartbeatListen`, `HeartbeatMaxServers`, `ProxyHCTPsize` (main server), as Apache checks
/// them; the result sets the value in a [`Config`].
fn apply_directive(
    span: Span,
    lower: &str,
    directive: &str,
    args: &[Token],
) -> Result<SetConfig, ParseError> {
    let number = |max: u64, what: &str| -> Result<u32, ParseError> {
        let v = one_arg(span, directive, args)?;
        match v.text.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
            _ => Err(invalid(
                v.span,
                format!("invalid value \"{}\" for {directive}: {what}", v.text),
            )),
        }
    };
    Ok(match lower {
        "proxyvia" => {
            let v = one_arg(span, directive, args)?;
            let via = match v.text.to_ascii_lowercase().as_str() {
                "off" => ProxyVia::Off,
                "on" => ProxyVia::On,
                "full" => ProxyVia::Full,
                "block" => ProxyVia::Block,
                _ => {
                    return Err(invalid(
                        v.span,
                        format!(
                            "invalid value \"{}\" for ProxyVia: must be On, Off, Full or Block",
                            v.text
                        ),
                    ))
                }
            };
            SetConfig::Host(Box::new(move |h: &mut HostSettings| {
                h.proxy_via = Some(via)
            }))
        }
        "proxyerroroverride" => {
            let Some((first, codes)) = args.split_first() else {
                return Err(syntax(
                    span,
                    "ProxyErrorOverride takes On or Off, then optional status codes",
                ));
            };
            let on = on_off(span, directive, std::slice::from_ref(first))?;
            let mut list = Vec::with_capacity(codes.len());
            for code in codes {
                // Apache (2.4.47+) takes 4xx and 5xx codes only.
                match code.text.parse::<u16>() {
                    Ok(n) if (400..=599).contains(&n) => list.push(n),
                    _ => {
                        return Err(invalid(
                            code.span,
                            format!(
                                "invalid status \"{}\" for ProxyErrorOverride: must be a 4xx or 5xx code",
                                code.text
                            ),
                        ))
                    }
                }
            }
            let setting = ProxyErrorOverride { on, codes: list };
            SetConfig::Host(Box::new(move |h: &mut HostSettings| {
                h.proxy_error_override = Some(setting)
            }))
        }
        "proxybadheader" => {
            let v = one_arg(span, directive, args)?;
            let mode = match v.text.to_ascii_lowercase().as_str() {
                "iserror" => ProxyBadHeader::IsError,
                "ignore" => ProxyBadHeader::Ignore,
                "startbody" => {
                    return Err(ParseError::new(
                        v.span,
                        ParseErrorKind::InvalidValue,
                        "ProxyBadHeader StartBody is not supported: the member client (hyper) cannot turn a header line into the start of the body".to_owned(),
                    )
                    .with_hint(Some(
                        "use IsError (502, Apache's default) or Ignore (the line is skipped)"
                            .to_owned(),
                    )))
                }
                _ => {
                    return Err(invalid(
                        v.span,
                        format!(
                            "invalid value \"{}\" for ProxyBadHeader: must be IsError, Ignore or StartBody",
                            v.text
                        ),
                    ))
                }
            };
            SetConfig::Host(Box::new(move |h: &mut HostSettings| {
                h.proxy_bad_header = Some(mode)
            }))
        }
        "proxy100continue" => {
            let on = on_off(span, directive, args)?;
            SetConfig::Host(Box::new(move |h: &mut HostSettings| {
                h.proxy_100_continue = Some(on)
            }))
        }
        "proxyiobuffersize" => {
            let v = one_arg(span, directive, args)?;
            // Apache: at least 512 (a smaller value is raised to 512 silently; refused
            // here as a likely mistake).
            let n = match v.text.trim().parse::<u32>() {
                Ok(n) if n >= 512 && i32::try_from(n).is_ok() => n,
                _ => {
                    return Err(invalid(
                        v.span,
                        format!(
                            "invalid value \"{}\" for ProxyIOBufferSize: must be a size in bytes, at least 512",
                            v.text
                        ),
                    ))
                }
            };
            SetConfig::Host(Box::new(move |h: &mut HostSettings| {
                h.proxy_io_buffer_size = Some(n)
            }))
        }
        "heartbeatlisten" => {
            let v = one_arg(span, directive, args)?;
            let addr = v.text.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(
                    v.span,
                    format!(
                        "invalid value \"{}\" for HeartbeatListen: must be an IP address and a port (239.0.0.1:27999)",
                        v.text
                    ),
                )
            })?;
            SetConfig::Main(Box::new(move |c: &mut Config| {
                c.heartbeat_listen = Some(HeartbeatListen { addr, span });
            }))
        }
        "heartbeatmaxservers" => {
            let n = number(
                u64::from(i32::MAX as u32),
                "must be 0 (flat-file storage) or at least 10",
            )?;
            if (1..10).contains(&n) {
                return Err(invalid(
                    span,
                    format!("invalid value \"{n}\" for HeartbeatMaxServers: must be 0 (flat-file storage) or at least 10"),
                ));
            }
            SetConfig::Main(Box::new(move |c: &mut Config| {
                c.heartbeat_max_servers = Some(n)
            }))
        }
        "proxyhctpsize" => {
            let n = number(
                u64::from(i32::MAX as u32),
                "must be a whole number, 0 or more",
            )?;
            SetConfig::Main(Box::new(move |c: &mut Config| c.proxy_hc_tpsize = Some(n)))
        }
        "defaultruntimedir" => {
            let v = one_arg(span, directive, args)?;
            let dir = std::path::PathBuf::from(&v.text);
            SetConfig::Main(Box::new(move |c: &mut Config| {
                c.default_runtime_dir = Some(dir)
            }))
        }
        _ => return Err(syntax(span, format!("{directive} is not read here"))),
    })
}
