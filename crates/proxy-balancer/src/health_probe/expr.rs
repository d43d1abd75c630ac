//! Health-check conditions: the `ProxyHCExpr` equivalent.
//!
//! An [`HcExpr`] is parsed once from the text an operator writes in
//! `ProxyHCExpr name {expr}` and then judges each probe response with
//! [`HcExpr::eval`]. It covers the part of Apache's `ap_expr` language that
//! mod_proxy_hcheck conditions use.
//!
//! # Grammar
//!
//! ```text
//! expr       = or
//! or         = and ( "||" and )*
//! and        = unary ( "&&" unary )*
//! unary      = "!" unary | "(" expr ")" | "true" | "false" | comparison
//! comparison = term ( "==" | "=" | "!=" | "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge" ) term
//!            | term ( "=~" | "!~" ) regex
//!            | term "-in" "{" term ( "," term )* "}"
//! term       = "%{REQUEST_STATUS}" | "%{resp:Header-Name}" | "resp('Header-Name')"
//!            | "hc('body')" | 'single' | "double" | bare word or number (200, -1, ok)
//! regex      = /pattern/flags | m#pattern#flags     (any punctuation after m; flag: i)
//! ```
//!
//! So `!` binds tighter than `&&`, which binds tighter than `||`; `!` applies
//! to a whole comparison (`! %{REQUEST_STATUS} == 200` is
//! `!(%{REQUEST_STATUS} == 200)`). Quoted strings may contain `%{...}`
//! variables, which are substituted, and `\` escapes the next character. Inside
//! a regex, `\/` (or a backslash before the chosen delimiter) stands for the
//! delimiter. The whole expression may be wrapped in the `{...}` of the Apache
//! directive. Variable and function names are case-insensitive, as header
//! names are.
//!
//! `==`, `!=` and `-in` compare strings. The integer comparisons read their
//! operands as C's `atoi` does, like Apache: leading digits count and anything
//! else is 0, so a missing header compares as 0. A literal operand of an
//! integer comparison must be an integer, or parsing fails.
//!
//! # Apache
//!
//! `ProxyHCExpr name {expr}` and the `hcexpr=name` worker parameter. Without an
//! expression a probe passes on a 2xx or 3xx status; with one, the expression
//! decides.
//!
//! # Examples
//!
//! Apache's "ok234" condition, which lets a 404 pass:
//!
//! ```
//! use http::HeaderMap;
//! use proxy_balancer::health_probe::expr::{HcExpr, ProbeResponse};
//!
//! let ok234: HcExpr = "%{REQUEST_STATUS} =~ /^[234]/".parse()?;
//! let headers = HeaderMap::new();
//! let response = ProbeResponse { status: 404, headers: &headers, body: b"" };
//! assert!(ok234.eval(&response));
//! assert!(!ok234.eval(&ProbeResponse { status: 503, ..response }));
//! # Ok::<(), proxy_balancer::health_probe::expr::ExprError>(())
//! ```
//!
//! A body check, which makes the prober read the body:
//!
//! ```
//! use http::HeaderMap;
//! use proxy_balancer::health_probe::expr::{HcExpr, ProbeResponse};
//!
//! let up = HcExpr::parse("hc('body') !~ /Under maintenance/")?;
//! assert!(up.uses_body());
//! let headers = HeaderMap::new();
//! let response = ProbeResponse { status: 200, headers: &headers, body: b"Under maintenance" };
//! assert!(!up.eval(&response));
//! # Ok::<(), proxy_balancer::health_probe::expr::ExprError>(())
//! ```
//!
//! Errors point at the column:
//!
//! ```
//! use proxy_balancer::health_probe::expr::HcExpr;
//!
//! let err = HcExpr::parse("%{REQUEST_STATUS} =~ 200").unwrap_err();
//! assert_eq!(err.column, 22);
//! assert_eq!(err.to_string(), "column 22: expected a regex after =~");
//! ```

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use regex::{Regex, RegexBuilder};

/// How deeply parentheses and `!` may nest. Real conditions use two or three
/// levels; the bound keeps parsing and evaluation off the end of the stack.
const MAX_DEPTH: usize = 64;

/// Compiled size limit for one regex. Conditions are short patterns; the bound
/// makes a pathological repetition an error instead of megabytes per member.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

// ===== ProbeResponse =====

/// The parts of a probe response that an [`HcExpr`] can look at.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use proxy_balancer::health_probe::expr::{HcExpr, ProbeResponse};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ready", HeaderValue::from_static("yes"));
/// let response = ProbeResponse { status: 204, headers: &headers, body: b"" };
/// let ready = HcExpr::parse("%{REQUEST_STATUS} -in {'200','204'} && %{resp:X-Ready} == 'yes'")?;
/// assert!(ready.eval(&response));
/// # Ok::<(), proxy_balancer::health_probe::expr::ExprError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProbeResponse<'a> {
    /// The status code, seen by the expression as `%{REQUEST_STATUS}` (`"200"`).
    pub status: u16,
    /// The response headers, seen as `%{resp:Name}` or `resp('Name')`.
    pub headers: &'a HeaderMap,
    /// The response body as read (possibly truncated), seen as `hc('body')`,
    /// decoded as lossy UTF-8. Empty when [`HcExpr::uses_body`] is false.
    pub body: &'a [u8],
}

// ===== ExprError =====

/// A condition that does not parse, with the column where the problem is.
///
/// # Examples
///
/// ```
/// use proxy_balancer::health_probe::expr::HcExpr;
///
/// let err = HcExpr::parse("hc('body') =~ /(unclosed/").unwrap_err();
/// assert_eq!(err.column, 15);
/// assert!(err.message.starts_with("invalid regex"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExprError {
    /// 1-based column, counted in characters, of the offending input.
    pub column: usize,
    /// What is wrong, lowercase and without a trailing period.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ExprError {}

// ===== HcExpr =====

/// A parsed health-check condition. Cloning is cheap (the tree and its
/// compiled regexes are shared).
///
/// See the [module docs](self) for the grammar.
///
/// # Apache
///
/// `ProxyHCExpr name {expr}`, referred to by the `hcexpr` worker parameter.
///
/// # Examples
///
/// ```
/// use http::HeaderMap;
/// use proxy_balancer::health_probe::expr::{HcExpr, ProbeResponse};
///
/// let expr = HcExpr::parse("%{REQUEST_STATUS} == 200 || %{REQUEST_STATUS} -eq 204")?;
/// let headers = HeaderMap::new();
/// assert!(expr.eval(&ProbeResponse { status: 204, headers: &headers, body: b"" }));
/// assert_eq!(expr.to_string(), "%{REQUEST_STATUS} == 200 || %{REQUEST_STATUS} -eq 204");
/// # Ok::<(), proxy_balancer::health_probe::expr::ExprError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HcExpr {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: String,
    root: Node,
    uses_body: bool,
    uses_request: bool,
}

/// The request a `Header` rule's condition reads (see [`HcExpr::parse_header_rule`]).
pub(crate) trait ExprRequest {
    /// `%{REQUEST_METHOD}`.
    fn method(&self) -> &str;
    /// `%{REQUEST_URI}`: the path.
    fn uri(&self) -> &str;
    /// A request header, `req('Name')`; `written` is the name as the expression spells it
    /// (Apache names it in the response's `Vary`).
    fn header(&self, name: &HeaderName, written: &str) -> Option<&[u8]>;
    /// A request environment variable, `env('VAR')`.
    fn env(&self, name: &str) -> Option<&str>;
}

impl HcExpr {
    /// Parses a condition.
    ///
    /// # Errors
    ///
    /// An [`ExprError`] with the 1-based column of the first problem: a syntax
    /// error, an unknown variable, function or operator, an invalid regex (the
    /// column of its opening delimiter), a non-integer literal in an integer
    /// comparison, or nesting deeper than 64 levels.
    ///
    /// # Examples
    ///
    /// ```
    /// use proxy_balancer::health_probe::expr::HcExpr;
    ///
    /// assert!(HcExpr::parse("%{REQUEST_STATUS} =~ /^[234]/").is_ok());
    /// assert_eq!(HcExpr::parse("%{NOPE} == 1").unwrap_err().column, 1);
    /// ```
    pub fn parse(source: &str) -> Result<Self, ExprError> {
        Self::parse_in(source, false)
    }

    /// Parses the condition of a `Header`/`RequestHeader` rule (`expr=`): the health-check
    /// terms but `hc('body')`, and the request's: `%{REQUEST_URI}`, `%{REQUEST_METHOD}`,
    /// `%{HTTP_USER_AGENT}` and ap_expr's other `HTTP_*` variables, `req('Name')`,
    /// `http('Name')`, `%{req:Name}`, `%{http:Name}`, `env('VAR')`, `reqenv('VAR')`,
    /// `%{env:VAR}`, `%{reqenv:VAR}`. Evaluated with [`HcExpr::eval_with_request`].
    #[cfg(feature = "site")]
    pub(crate) fn parse_header_rule(source: &str) -> Result<Self, ExprError> {
        Self::parse_in(source, true)
    }

    fn parse_in(source: &str, header_rule: bool) -> Result<Self, ExprError> {
        let mut parser = Parser {
            src: source,
            pos: 0,
            depth: 0,
            uses_body: false,
            header_rule,
            uses_request: false,
        };
        let root = parser.parse_top()?;
        Ok(Self {
            inner: Arc::new(Inner {
                source: source.to_owned(),
                root,
                uses_body: parser.uses_body,
                uses_request: parser.uses_request,
            }),
        })
    }

    /// Whether a header rule's condition reads the request (`req()`, `REQUEST_URI` …).
    #[cfg(feature = "site")]
    pub(crate) fn uses_request(&self) -> bool {
        self.inner.uses_request
    }

    /// [`HcExpr::eval`] with the request a header rule's condition can also read.
    #[cfg(feature = "site")]
    pub(crate) fn eval_with_request(
        &self,
        response: &ProbeResponse<'_>,
        request: &dyn ExprRequest,
    ) -> bool {
        let ctx = Ctx {
            response,
            body: OnceCell::new(),
            request: Some(request),
        };
        self.inner.root.eval(&ctx)
    }

    /// Whether the condition passes for `response`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderMap;
    /// use proxy_balancer::health_probe::expr::{HcExpr, ProbeResponse};
    ///
    /// let expr = HcExpr::parse("hc('body') !~ /Under maintenance/")?;
    /// let headers = HeaderMap::new();
    /// assert!(expr.eval(&ProbeResponse { status: 200, headers: &headers, body: b"OK" }));
    /// # Ok::<(), proxy_balancer::health_probe::expr::ExprError>(())
    /// ```
    #[must_use]
    pub fn eval(&self, response: &ProbeResponse<'_>) -> bool {
        let ctx = Ctx {
            response,
            body: OnceCell::new(),
            request: None,
        };
        self.inner.root.eval(&ctx)
    }

    /// Whether the condition reads `hc('body')`, so the prober must read the
    /// response body (otherwise it can pass an empty one).
    ///
    /// # Examples
    ///
    /// ```
    /// use proxy_balancer::health_probe::expr::HcExpr;
    ///
    /// assert!(!HcExpr::parse("%{REQUEST_STATUS} =~ /^[234]/")?.uses_body());
    /// assert!(HcExpr::parse("hc('body') =~ /ok/")?.uses_body());
    /// # Ok::<(), proxy_balancer::health_probe::expr::ExprError>(())
    /// ```
    #[must_use]
    pub fn uses_body(&self) -> bool {
        self.inner.uses_body
    }

    /// The text the condition was parsed from (also what `Display` prints).
    ///
    /// # Examples
    ///
    /// ```
    /// use proxy_balancer::health_probe::expr::HcExpr;
    ///
    /// let expr = HcExpr::parse("true")?;
    /// assert_eq!(expr.as_str(), "true");
    /// # Ok::<(), proxy_balancer::health_probe::expr::ExprError>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.inner.source
    }
}

impl FromStr for HcExpr {
    type Err = ExprError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for HcExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.source)
    }
}

// ===== tree =====

#[derive(Debug)]
enum Node {
    Bool(bool),
    Not(Box<Self>),
    /// All must hold; evaluated left to right, short-circuiting.
    And(Vec<Self>),
    /// One must hold; evaluated left to right, short-circuiting.
    Or(Vec<Self>),
    Str(Term, StrOp, Term),
    Int(Term, IntOp, Term),
    Match(Term, Regex, bool),
    In(Term, Vec<Term>),
}

#[derive(Debug, Clone, Copy)]
enum StrOp {
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy)]
enum IntOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
enum Term {
    Lit(String),
    Var(Var),
    /// A quoted string with `%{...}` substitutions.
    Concat(Vec<Self>),
}

#[derive(Debug)]
enum Var {
    Status,
    Header(HeaderName),
    Body,
    /// Header rules only: the request's method, path, a header, an environment variable.
    Method,
    Uri,
    /// The header, and its name as written (`User-Agent` for `%{HTTP_USER_AGENT}`).
    ReqHeader(HeaderName, Box<str>),
    Env(String),
}

struct Ctx<'r, 'a> {
    response: &'r ProbeResponse<'a>,
    body: OnceCell<Cow<'a, str>>,
    request: Option<&'r dyn ExprRequest>,
}

impl Node {
    fn eval(&self, ctx: &Ctx<'_, '_>) -> bool {
        match self {
            Self::Bool(b) => *b,
            Self::Not(inner) => !inner.eval(ctx),
            Self::And(nodes) => nodes.iter().all(|n| n.eval(ctx)),
            Self::Or(nodes) => nodes.iter().any(|n| n.eval(ctx)),
            Self::Str(a, op, b) => {
                let equal = a.eval(ctx) == b.eval(ctx);
                match op {
                    StrOp::Eq => equal,
                    StrOp::Ne => !equal,
                }
            }
            Self::Int(a, op, b) => {
                let (a, b) = (atoi64(&a.eval(ctx)), atoi64(&b.eval(ctx)));
                match op {
                    IntOp::Eq => a == b,
                    IntOp::Ne => a != b,
                    IntOp::Lt => a < b,
                    IntOp::Le => a <= b,
                    IntOp::Gt => a > b,
                    IntOp::Ge => a >= b,
                }
            }
            Self::Match(term, re, negate) => re.is_match(&term.eval(ctx)) != *negate,
            Self::In(term, list) => {
                let value = term.eval(ctx);
                list.iter().any(|t| t.eval(ctx) == value)
            }
        }
    }

    fn negate(self) -> Self {
        Self::Not(Box::new(self))
    }
}

impl Term {
    fn eval<'c>(&'c self, ctx: &'c Ctx<'_, '_>) -> Cow<'c, str> {
        match self {
            Self::Lit(s) => Cow::Borrowed(s),
            Self::Var(Var::Status) => Cow::Owned(ctx.response.status.to_string()),
            Self::Var(Var::Header(name)) => ctx
                .response
                .headers
                .get(name)
                .map_or(Cow::Borrowed(""), |v| String::from_utf8_lossy(v.as_bytes())),
            Self::Var(Var::Body) => Cow::Borrowed(
                ctx.body
                    .get_or_init(|| String::from_utf8_lossy(ctx.response.body)),
            ),
            Self::Var(Var::Method) => Cow::Borrowed(ctx.request.map_or("", |r| r.method())),
            Self::Var(Var::Uri) => Cow::Borrowed(ctx.request.map_or("", |r| r.uri())),
            Self::Var(Var::ReqHeader(name, written)) => ctx
                .request
                .and_then(|r| r.header(name, written))
                .map_or(Cow::Borrowed(""), String::from_utf8_lossy),
            Self::Var(Var::Env(name)) => {
                Cow::Borrowed(ctx.request.and_then(|r| r.env(name)).unwrap_or(""))
            }
            Self::Concat(parts) => {
                Cow::Owned(parts.iter().map(|p| p.eval(ctx)).collect::<String>())
            }
        }
    }

    fn is_integer_literal(&self) -> Option<bool> {
        match self {
            Self::Lit(s) => {
                let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
                Some(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            }
            Self::Var(_) | Self::Concat(_) => None,
        }
    }
}

/// C's `atoi` as `apr_atoi64` does it: optional leading whitespace and sign,
/// then digits; the rest is ignored, no digits is 0, overflow saturates.
fn atoi64(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i64 = 0;
    for d in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = i64::from(d - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(d)
        } else {
            value.saturating_mul(10).saturating_add(d)
        };
    }
    value
}

// ===== Parser =====

struct Parser<'s> {
    src: &'s str,
    /// Byte offset of the next unread character.
    pos: usize,
    depth: usize,
    uses_body: bool,
    /// Reading a header rule's condition: the request's terms are known.
    header_rule: bool,
    uses_request: bool,
}

/// ap_expr's `HTTP_*` variables (the request headers it names), for header rules.
const HTTP_VARS: &[(&str, &str)] = &[
    ("HTTP_ACCEPT", "Accept"),
    ("HTTP_COOKIE", "Cookie"),
    ("HTTP_FORWARDED", "Forwarded"),
    ("HTTP_HOST", "Host"),
    ("HTTP_PROXY_CONNECTION", "Proxy-Connection"),
    ("HTTP_REFERER", "Referer"),
    ("HTTP_USER_AGENT", "User-Agent"),
];

impl Parser<'_> {
    /// A header rule's request term: `%{NAME}` or `%{fn:arg}` / `fn('arg')`.
    fn request_var(&mut self, name: &str, arg: Option<&str>) -> Option<Var> {
        if !self.header_rule {
            return None;
        }
        let var = match arg {
            None if name.eq_ignore_ascii_case("REQUEST_METHOD") => Var::Method,
            None if name.eq_ignore_ascii_case("REQUEST_URI") => Var::Uri,
            None => HTTP_VARS
                .iter()
                .find(|(v, _)| v.eq_ignore_ascii_case(name))
                .and_then(|(_, h)| HeaderName::from_bytes(h.as_bytes()).ok().map(|n| (n, *h)))
                .map(|(n, h)| Var::ReqHeader(n, h.into()))?,
            Some(arg) if name.eq_ignore_ascii_case("req") || name.eq_ignore_ascii_case("http") => {
                Var::ReqHeader(HeaderName::from_bytes(arg.as_bytes()).ok()?, arg.into())
            }
            Some(arg)
                if name.eq_ignore_ascii_case("env") || name.eq_ignore_ascii_case("reqenv") =>
            {
                Var::Env(arg.to_owned())
            }
            Some(_) => return None,
        };
        self.uses_request = true;
        Some(var)
    }

    fn err(&self, at: usize, message: impl Into<String>) -> ExprError {
        let at = at.min(self.src.len());
        let column = self
            .src
            .get(..at)
            .map_or(at, |prefix| prefix.chars().count())
            + 1;
        ExprError {
            column,
            message: message.into(),
        }
    }

    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// A description of what is at the cursor, for messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "end of expression".to_owned(),
            Some(c) => format!("`{c}`"),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(at, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn parse_top(&mut self) -> Result<Node, ExprError> {
        self.skip_ws();
        if self.peek().is_none() {
            return Err(self.err(self.pos, "empty expression"));
        }
        // The `{...}` of `ProxyHCExpr name {expr}`, if the caller kept it.
        let braced = self.eat("{");
        let node = self.parse_or()?;
        self.skip_ws();
        if braced && !self.eat("}") {
            return Err(self.err(self.pos, format!("expected `}}`, found {}", self.found())));
        }
        self.skip_ws();
        match self.peek() {
            None => Ok(node),
            Some(')') => Err(self.err(self.pos, "unmatched `)`")),
            Some(_) => Err(self.err(
                self.pos,
                format!("expected `&&`, `||` or the end, found {}", self.found()),
            )),
        }
    }

    fn parse_or(&mut self) -> Result<Node, ExprError> {
        let mut nodes = vec![self.parse_and()?];
        loop {
            self.skip_ws();
            if !self.eat("||") {
                break;
            }
            nodes.push(self.parse_and()?);
        }
        Ok(if nodes.len() == 1 {
            nodes.swap_remove(0)
        } else {
            Node::Or(nodes)
        })
    }

    fn parse_and(&mut self) -> Result<Node, ExprError> {
        let mut nodes = vec![self.parse_unary()?];
        loop {
            self.skip_ws();
            if !self.eat("&&") {
                break;
            }
            nodes.push(self.parse_unary()?);
        }
        Ok(if nodes.len() == 1 {
            nodes.swap_remove(0)
        } else {
            Node::And(nodes)
        })
    }

    fn parse_unary(&mut self) -> Result<Node, ExprError> {
        self.skip_ws();
        let start = self.pos;
        match (self.peek(), self.peek2()) {
            (Some('!'), next) if !matches!(next, Some('=' | '~')) => {
                self.bump();
                self.enter(start)?;
                let inner = self.parse_unary()?;
                self.depth -= 1;
                Ok(inner.negate())
            }
            (Some('('), _) => {
                self.bump();
                self.enter(start)?;
                let inner = self.parse_or()?;
                self.skip_ws();
                if !self.eat(")") {
                    return Err(self.err(
                        self.pos,
                        format!(
                            "expected `)` to close column {}, found {}",
                            self.err(start, "").column,
                            self.found()
                        ),
                    ));
                }
                self.depth -= 1;
                Ok(inner)
            }
            (None, _) => Err(self.err(self.pos, "expected a condition, found end of expression")),
            _ => self.parse_comparison(),
        }
    }

    fn parse_comparison(&mut self) -> Result<Node, ExprError> {
        let start = self.pos;
        let (left, bare) = self.parse_term()?;
        self.skip_ws();
        let op_at = self.pos;
        if self.eat("=~") {
            let re = self.parse_regex("=~")?;
            return Ok(Node::Match(left, re, false));
        }
        if self.eat("!~") {
            let re = self.parse_regex("!~")?;
            return Ok(Node::Match(left, re, true));
        }
        if self.eat("==") || self.eat("=") {
            return Ok(Node::Str(left, StrOp::Eq, self.parse_operand()?));
        }
        if self.eat("!=") {
            return Ok(Node::Str(left, StrOp::Ne, self.parse_operand()?));
        }
        if self.peek() == Some('-') && self.peek2().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.bump();
            let name_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                self.bump();
            }
            let name = &self.src[name_start..self.pos];
            let op = match name {
                "eq" => IntOp::Eq,
                "ne" => IntOp::Ne,
                "lt" => IntOp::Lt,
                "le" => IntOp::Le,
                "gt" => IntOp::Gt,
                "ge" => IntOp::Ge,
                "in" => return Ok(Node::In(left, self.parse_list()?)),
                _ => {
                    return Err(self.err(
                        op_at,
                        format!(
                            "unknown operator -{name}; expected one of -eq, -ne, -lt, -le, -gt, \
                             -ge, -in"
                        ),
                    ))
                }
            };
            if left.is_integer_literal() == Some(false) {
                return Err(self.err(start, format!("expected an integer before -{name}")));
            }
            self.skip_ws();
            let right_at = self.pos;
            let right = self.parse_operand()?;
            if right.is_integer_literal() == Some(false) {
                return Err(self.err(right_at, format!("expected an integer after -{name}")));
            }
            return Ok(Node::Int(left, op, right));
        }
        match bare.as_deref() {
            Some("true") => Ok(Node::Bool(true)),
            Some("false") => Ok(Node::Bool(false)),
            _ => Err(self.err(
                op_at,
                format!(
                    "expected an operator (==, !=, =~, !~, -eq, -in, ...) after the term at \
                     column {}, found {}",
                    self.err(start, "").column,
                    self.found()
                ),
            )),
        }
    }

    fn parse_operand(&mut self) -> Result<Term, ExprError> {
        Ok(self.parse_term()?.0)
    }

    /// A term, and its text if it was a bare word (for `true` / `false`).
    fn parse_term(&mut self) -> Result<(Term, Option<String>), ExprError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some('%') if self.peek2() == Some('{') => Ok((Term::Var(self.parse_var()?), None)),
            Some(q @ ('\'' | '"')) => Ok((self.parse_string(q)?, None)),
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
                {
                    self.bump();
                }
                let word = &self.src[start..self.pos];
                if self.peek() == Some('(') {
                    return Ok((Term::Var(self.parse_call(start, word)?), None));
                }
                Ok((Term::Lit(word.to_owned()), Some(word.to_owned())))
            }
            Some('-') if self.peek2().is_some_and(|c| c.is_ascii_digit()) => {
                self.bump();
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
                Ok((Term::Lit(self.src[start..self.pos].to_owned()), None))
            }
            _ => Err(self.err(
                start,
                format!(
                    "expected a term (%{{REQUEST_STATUS}}, %{{resp:Name}}, hc('body'), a quoted \
                     string or a number), found {}",
                    self.found()
                ),
            )),
        }
    }

    /// `%{NAME}`, the cursor on `%`.
    fn parse_var(&mut self) -> Result<Var, ExprError> {
        let start = self.pos;
        self.pos += 2;
        let name_start = self.pos;
        let Some(len) = self.rest().find('}') else {
            return Err(self.err(start, "unterminated `%{`"));
        };
        let name = &self.src[name_start..name_start + len];
        self.pos = name_start + len + 1;
        if name.eq_ignore_ascii_case("REQUEST_STATUS") {
            return Ok(Var::Status);
        }
        let request = match name.split_once(':') {
            Some((f, arg)) => self.request_var(f, Some(arg)),
            None => self.request_var(name, None),
        };
        if let Some(var) = request {
            return Ok(var);
        }
        match name.split_once(':') {
            Some((prefix, header)) if prefix.eq_ignore_ascii_case("resp") => {
                self.header_name(name_start + prefix.len() + 1, header)
            }
            _ => Err(self.err(
                start,
                format!(
                    "unknown variable %{{{name}}}; expected %{{REQUEST_STATUS}} or %{{resp:Name}}"
                ),
            )),
        }
    }

    fn header_name(&self, at: usize, name: &str) -> Result<Var, ExprError> {
        HeaderName::from_bytes(name.as_bytes())
            .map(Var::Header)
            .map_err(|_| self.err(at, format!("invalid header name {name:?}")))
    }

    /// `name('arg')`, the cursor on `(`.
    fn parse_call(&mut self, start: usize, name: &str) -> Result<Var, ExprError> {
        self.bump();
        self.skip_ws();
        let arg_at = self.pos;
        let arg = match self.peek() {
            Some(q @ ('\'' | '"')) => match self.parse_string(q)? {
                Term::Lit(s) => s,
                Term::Var(_) | Term::Concat(_) => {
                    return Err(self.err(arg_at, "expected a plain string argument"))
                }
            },
            _ => {
                return Err(self.err(
                    arg_at,
                    format!(
                        "expected a quoted argument to {name}(), found {}",
                        self.found()
                    ),
                ))
            }
        };
        self.skip_ws();
        if !self.eat(")") {
            return Err(self.err(self.pos, format!("expected `)`, found {}", self.found())));
        }
        if let Some(var) = self.request_var(name, Some(&arg)) {
            return Ok(var);
        }
        if name.eq_ignore_ascii_case("hc") {
            if arg.eq_ignore_ascii_case("body") {
                self.uses_body = true;
                Ok(Var::Body)
            } else {
                Err(self.err(
                    arg_at,
                    format!("unknown hc() argument {arg:?}; expected 'body'"),
                ))
            }
        } else if name.eq_ignore_ascii_case("resp") {
            self.header_name(arg_at, &arg)
        } else {
            Err(self.err(
                start,
                format!("unknown function {name}(); expected hc('body') or resp('Name')"),
            ))
        }
    }

    /// A quoted string, the cursor on the opening quote.
    fn parse_string(&mut self, quote: char) -> Result<Term, ExprError> {
        let start = self.pos;
        self.bump();
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err(start, "unterminated string")),
                Some(c) if c == quote => {
                    self.bump();
                    break;
                }
                Some('\\') => {
                    self.bump();
                    match self.bump() {
                        Some(c) => lit.push(c),
                        None => return Err(self.err(start, "unterminated string")),
                    }
                }
                Some('%') if self.peek2() == Some('{') => {
                    if !lit.is_empty() {
                        parts.push(Term::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Term::Var(self.parse_var()?));
                }
                Some(c) => {
                    self.bump();
                    lit.push(c);
                }
            }
        }
        if parts.is_empty() {
            return Ok(Term::Lit(lit));
        }
        if !lit.is_empty() {
            parts.push(Term::Lit(lit));
        }
        Ok(if parts.len() == 1 {
            parts.swap_remove(0)
        } else {
            Term::Concat(parts)
        })
    }

    /// `/re/flags` or `m#re#flags` after `=~` / `!~`.
    fn parse_regex(&mut self, op: &str) -> Result<Regex, ExprError> {
        self.skip_ws();
        let start = self.pos;
        let delim = match (self.peek(), self.peek2()) {
            (Some('/'), _) => {
                self.bump();
                '/'
            }
            (Some('m'), Some(d)) if d.is_ascii_punctuation() => {
                self.pos += 2;
                d
            }
            _ => return Err(self.err(start, format!("expected a regex after {op}"))),
        };
        let mut pattern = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err(start, "unterminated regex")),
                Some(c) if c == delim => break,
                Some('\\') => match self.bump() {
                    // Escapes stay as written: `\/` (the delimiter) is also a
                    // valid escape in the regex syntax, which accepts any
                    // escaped ASCII punctuation.
                    Some(c) => {
                        pattern.push('\\');
                        pattern.push(c);
                    }
                    None => return Err(self.err(start, "unterminated regex")),
                },
                Some(c) => pattern.push(c),
            }
        }
        let mut builder = RegexBuilder::new(&pattern);
        builder.size_limit(REGEX_SIZE_LIMIT);
        while let Some(flag) = self.peek().filter(char::is_ascii_alphanumeric) {
            if flag == 'i' {
                builder.case_insensitive(true);
                self.bump();
            } else {
                return Err(self.err(self.pos, format!("unknown regex flag `{flag}`; expected i")));
            }
        }
        builder
            .build()
            .map_err(|e| self.err(start, format!("invalid regex: {}", regex_message(&e))))
    }

    /// `{ term, term }` after `-in`.
    fn parse_list(&mut self) -> Result<Vec<Term>, ExprError> {
        self.skip_ws();
        if !self.eat("{") {
            return Err(self.err(
                self.pos,
                format!("expected `{{` after -in, found {}", self.found()),
            ));
        }
        let mut terms = vec![self.parse_operand()?];
        loop {
            self.skip_ws();
            if self.eat("}") {
                return Ok(terms);
            }
            if !self.eat(",") {
                return Err(self.err(
                    self.pos,
                    format!("expected `,` or `}}`, found {}", self.found()),
                ));
            }
            terms.push(self.parse_operand()?);
        }
    }
}

/// The one-line reason from a regex error (its `Display` spans several lines
/// and repeats the pattern).
fn regex_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or("syntax error")
            .to_owned(),
        regex::Error::CompiledTooBig(_) => "pattern too large".to_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
