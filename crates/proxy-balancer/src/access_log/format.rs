//! Apache's `LogFormat` strings, parsed once into items.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use http::HeaderName;

use super::time::TimeFormat;

/// Apache's `common` nickname (the Common Log Format).
pub const COMMON: &str = "%h %l %u %t \"%r\" %>s %b";

/// Apache's `combined` nickname: [`COMMON`] with the `Referer` and `User-Agent`.
pub const COMBINED: &str = "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"";

/// The nicknames of Apache's default `httpd.conf`, with their formats.
const NICKNAMES: &[(&str, &str)] = &[
    ("common", COMMON),
    ("combined", COMBINED),
    (
        "vhost_combined",
        "%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"",
    ),
    ("referer", "%{Referer}i -> %U"),
    ("agent", "%{User-agent}i"),
];

/// A parsed Apache `LogFormat` string: what one access-log line says about a request.
///
/// Parse it once (at start-up) with [`LogFormat::parse`] or [`str::parse`]; every `%`
/// directive is checked then, and one this crate cannot fill is an error naming it, never
/// dropped from the line in silence. Cloning is cheap (the items are shared).
///
/// # Apache
///
/// mod_log_config's `LogFormat` syntax. Supported directives:
///
/// | directive | what |
/// | --- | --- |
/// | `%h`, `%a`, `%{c}a` | the client's IP address (no `HostnameLookups`, no mod_remoteip: all three are the peer) |
/// | `%A` | the local IP address the request reached |
/// | `%l` | always `-` (no identd) |
/// | `%u` | always `-` (the proxy authenticates no one) |
/// | `%t`, `%{format}t` | when the request was received, `[04/Dec/2026:11:25:36 +0000]` (UTC); `format` is `sec`, `msec`, `usec`, `msec_frac`, `usec_frac`, or an `strftime` pattern of `%a %A %b %B %d %D %e %F %h %H %I %j %m %M %n %p %R %s %S %t %T %u %w %y %Y %z %Z %%`, with an optional `begin:` or `end:` prefix |
/// | `%r` | the request line, `GET /path?q HTTP/1.1` |
/// | `%s`, `%>s`, `%<s` | the status (no internal redirects here: all the same); 500 when the service failed without a response, 499 (nginx's "client closed request") when the request was dropped before the response head |
/// | `%b`, `%B` | response body bytes actually sent (`%b` writes `-` for none) |
/// | `%O` | mod_logio's bytes sent, head included: the head as HTTP/1.1 writes it (status line, headers, the `Date` and `Content-Length` or `Transfer-Encoding` that hyper adds) plus the body bytes; chunk framing and HTTP/2's header compression are not counted |
/// | `%D`, `%T`, `%{ms}T`, `%{us}T`, `%{s}T` | time taken, until the response body ended |
/// | `%m`, `%U`, `%q`, `%H` | method, path, `?query` (or nothing), protocol |
/// | `%v`, `%V` | the server name ([`AccessLogLayer::server_name`](super::AccessLogLayer::server_name)), the request's host |
/// | `%p`, `%{canonical}p`, `%{local}p`, `%{remote}p` | the local port; the client's port |
/// | `%P`, `%{pid}P` | the process id |
/// | `%{Name}i`, `%{Name}o` | a request or response header (several request values joined with `, `; for a response, the first, except `Set-Cookie`: all) |
/// | `%{BALANCER_…}e` | the balancer's `BALANCER_NAME`, `BALANCER_WORKER_NAME`, `BALANCER_WORKER_ROUTE`, `BALANCER_SESSION_STICKY`, `BALANCER_SESSION_ROUTE`, `BALANCER_ROUTE_CHANGED` |
/// | `%X` | `X` the response was aborted, `+` the connection may be kept alive, `-` it closes |
/// | `%%` | a `%` |
///
/// Apache's modifiers work: `%400,501{User-agent}i` logs the header only for those
/// statuses, `%!200,304{Referer}i` only for others (`-` otherwise); `<` and `>` are
/// accepted. In literal text `\n` and `\t` are a newline and a tab. Text fields are escaped
/// as Apache's `ap_escape_logitem` does: `"` and `\` get a backslash, `\n`, `\r`, `\t`,
/// `\b`, `\v` their C escapes, and other bytes outside printable ASCII `\xhh`.
///
/// # Examples
///
/// ```
/// use proxy_balancer::access_log::{FormatError, LogFormat};
///
/// let combined = LogFormat::parse("combined")?; // Apache's nickname
/// assert_eq!(combined.as_str(), proxy_balancer::access_log::COMBINED);
///
/// let custom: LogFormat = r#"%a "%r" %>s %D %{X-Request-Id}i"#.parse()?;
/// assert_eq!(custom.as_str(), r#"%a "%r" %>s %D %{X-Request-Id}i"#);
///
/// // mod_logio's %I (bytes received) is not counted: refused, by name.
/// let err = LogFormat::parse("%h %I").unwrap_err();
/// assert_eq!(err.directive(), "%I");
/// # Ok::<(), FormatError>(())
/// ```
#[derive(Clone)]
pub struct LogFormat {
    pub(super) text: Arc<str>,
    pub(super) items: Arc<[Item]>,
    /// The distinct request headers named by `%{Name}i`, in order; a [`Field::RequestHeader`]
    /// holds an index into this list.
    pub(super) request_headers: Arc<[HeaderName]>,
    /// The same for `%{Name}o` and [`Field::ResponseHeader`].
    pub(super) response_headers: Arc<[HeaderName]>,
    /// Whether a `%{BALANCER_…}e` is used (the response's `BalancerInfo` is kept).
    pub(super) needs_balancer: bool,
    /// Whether `%O` is used (the response head's size is counted).
    pub(super) needs_head_bytes: bool,
}

impl fmt::Debug for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LogFormat").field(&self.text).finish()
    }
}

/// One part of a line.
#[derive(Clone, Debug)]
pub(super) enum Item {
    Literal(Box<str>),
    Field {
        field: Field,
        /// `%400,501{…}i` (`negate: false`) or `%!200{…}i` (`negate: true`).
        condition: Option<Condition>,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Condition {
    pub(super) negate: bool,
    pub(super) statuses: Box<[u16]>,
}

impl Condition {
    pub(super) fn holds(&self, status: u16) -> bool {
        self.statuses.contains(&status) != self.negate
    }
}

/// What a `%` directive fills in.
#[derive(Clone, Debug)]
pub(super) enum Field {
    /// `%h`, `%a`, `%{c}a`.
    ClientIp,
    /// `%A`.
    LocalIp,
    /// `%l`, `%u`.
    Dash,
    /// `%t`, `%{…}t`.
    Time(TimeFormat),
    /// `%r`.
    RequestLine,
    /// `%s`, `%>s`, `%<s`.
    Status,
    /// `%b`.
    BytesClf,
    /// `%B`.
    Bytes,
    /// `%O`: the response head as HTTP/1.1 writes it, and the body.
    BytesSent,
    /// `%D`, `%T`, `%{…}T`: the divisor of microseconds.
    Duration(DurationUnit),
    /// `%m`.
    Method,
    /// `%U`.
    Path,
    /// `%q`.
    Query,
    /// `%H`.
    Protocol,
    /// `%v`.
    ServerName,
    /// `%V`.
    Host,
    /// `%p`.
    LocalPort,
    /// `%{remote}p`.
    RemotePort,
    /// `%P`.
    Pid,
    /// `%{Name}i`: index into [`LogFormat::request_headers`].
    RequestHeader(usize),
    /// `%{Name}o`: index into [`LogFormat::response_headers`].
    ResponseHeader(usize),
    /// `%{BALANCER_…}e`.
    BalancerEnv(BalancerVar),
    /// `%X`.
    ConnectionStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DurationUnit {
    Seconds,
    Millis,
    Micros,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BalancerVar {
    Name,
    WorkerName,
    WorkerRoute,
    SessionSticky,
    SessionRoute,
    RouteChanged,
}

/// Why a `LogFormat` string was refused ([`LogFormat::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// A `%` directive Apache does not have (`%J`).
    Unknown {
        /// The directive as written, e.g. `%J` or `%{x}J`.
        directive: String,
        /// Its byte offset in the format.
        at: usize,
    },
    /// A directive Apache has but this crate cannot fill (`%O`, `%k`, `%{HOME}e` …), or an
    /// argument it does not support (`%{%c}t`).
    Unsupported {
        /// The directive as written.
        directive: String,
        /// Its byte offset in the format.
        at: usize,
        /// What is missing, and what to use instead where there is something.
        why: &'static str,
    },
    /// A directive needs an argument it was not given, or was given a bad one (`%{}i`, a
    /// header name with a space, `%{` never closed, a `%` at the end).
    Invalid {
        /// The directive as written.
        directive: String,
        /// Its byte offset in the format.
        at: usize,
        /// What is wrong.
        why: &'static str,
    },
}

impl FormatError {
    /// The directive the error is about, as written (`%O`, `%{Referer}x`).
    #[must_use]
    pub fn directive(&self) -> &str {
        match self {
            Self::Unknown { directive, .. }
            | Self::Unsupported { directive, .. }
            | Self::Invalid { directive, .. } => directive,
        }
    }

    /// The directive's byte offset in the format string.
    #[must_use]
    pub const fn offset(&self) -> usize {
        match self {
            Self::Unknown { at, .. } | Self::Unsupported { at, .. } | Self::Invalid { at, .. } => {
                *at
            }
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { directive, at } => {
                write!(f, "unknown log format directive {directive} (at byte {at})")
            }
            Self::Unsupported { directive, at, why } => write!(
                f,
                "log format directive {directive} (at byte {at}) is not supported: {why}"
            ),
            Self::Invalid { directive, at, why } => write!(
                f,
                "invalid log format directive {directive} (at byte {at}): {why}"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

// ===== impl LogFormat =====

impl LogFormat {
    /// Parses a format string, or one of Apache's nicknames (`common`, `combined`,
    /// `vhost_combined`, `referer`, `agent`, with the definitions of Apache's default
    /// `httpd.conf`). See the [type docs](Self) for the directives.
    ///
    /// # Errors
    ///
    /// [`FormatError`] naming the first directive that is unknown, unsupported or invalid.
    pub fn parse(format: &str) -> Result<Self, FormatError> {
        let text = nickname(format).unwrap_or(format);
        Parser::new(text).run()
    }

    /// Apache's `common` format ([`COMMON`]).
    #[must_use]
    pub fn common() -> Self {
        Self::parse(COMMON).expect("invariant: the common format parses")
    }

    /// Apache's `combined` format ([`COMBINED`]), the default of the reverse proxy.
    #[must_use]
    pub fn combined() -> Self {
        Self::parse(COMBINED).expect("invariant: the combined format parses")
    }

    /// The format string (a nickname's definition, for a nickname).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for LogFormat {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Default for LogFormat {
    /// [`LogFormat::combined`].
    fn default() -> Self {
        Self::combined()
    }
}

/// The format of one of Apache's default nicknames (`common`, `combined`, …).
#[must_use]
pub fn nickname(name: &str) -> Option<&'static str> {
    NICKNAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, format)| *format)
}

struct Parser<'a> {
    text: &'a str,
    items: Vec<Item>,
    headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
    literal: String,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            items: Vec::new(),
            headers: Vec::new(),
            response_headers: Vec::new(),
            literal: String::new(),
        }
    }

    fn run(mut self) -> Result<LogFormat, FormatError> {
        let bytes = self.text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    i = self.directive(i)?;
                }
                b'\\' if bytes.get(i + 1) == Some(&b'n') => {
                    self.literal.push('\n');
                    i += 2;
                }
                b'\\' if bytes.get(i + 1) == Some(&b't') => {
                    self.literal.push('\t');
                    i += 2;
                }
                _ => {
                    // Copy up to the next special byte (both ASCII: `i` stays on a char
                    // boundary).
                    let end = self.text[i + 1..]
                        .find(['%', '\\'])
                        .map_or(self.text.len(), |n| i + 1 + n);
                    self.literal.push_str(&self.text[i..end]);
                    i = end;
                }
            }
        }
        self.flush_literal();
        Ok(LogFormat {
            text: Arc::from(self.text),
            needs_head_bytes: self.items.iter().any(|item| {
                matches!(
                    item,
                    Item::Field {
                        field: Field::BytesSent,
                        ..
                    }
                )
            }),
            needs_balancer: self.items.iter().any(|item| {
                matches!(
                    item,
                    Item::Field {
                        field: Field::BalancerEnv(_),
                        ..
                    }
                )
            }),
            items: self.items.into(),
            request_headers: self.headers.into(),
            response_headers: self.response_headers.into(),
        })
    }

    fn flush_literal(&mut self) {
        if !self.literal.is_empty() {
            let literal = std::mem::take(&mut self.literal);
            self.items.push(Item::Literal(literal.into_boxed_str()));
        }
    }

    /// Reads the directive starting at `start` (a `%`); returns the offset after it.
    fn directive(&mut self, start: usize) -> Result<usize, FormatError> {
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        let mut negate = false;
        let mut statuses: Vec<u16> = Vec::new();
        let mut arg: Option<&str> = None;
        let written = |end: usize| self.text.get(start..end).unwrap_or("%").to_owned();
        loop {
            let Some(&b) = bytes.get(i) else {
                return Err(FormatError::Invalid {
                    directive: written(i),
                    at: start,
                    why: "the format ends inside a directive",
                });
            };
            match b {
                b'!' => {
                    negate = true;
                    i += 1;
                }
                b'<' | b'>' | b',' => i += 1,
                b'0'..=b'9' => {
                    let end = self.text[i..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(self.text.len(), |n| i + n);
                    match self.text[i..end].parse::<u16>() {
                        Ok(status) if (100..=999).contains(&status) => statuses.push(status),
                        _ => {
                            return Err(FormatError::Invalid {
                                directive: written(end),
                                at: start,
                                why: "a status condition must be three digits",
                            })
                        }
                    }
                    i = end;
                }
                b'{' => {
                    let Some(close) = self.text[i..].find('}') else {
                        return Err(FormatError::Invalid {
                            directive: written(self.text.len()),
                            at: start,
                            why: "{ is not closed",
                        });
                    };
                    arg = Some(&self.text[i + 1..i + close]);
                    i += close + 1;
                }
                b'%' if arg.is_none() && statuses.is_empty() => {
                    self.literal.push('%');
                    return Ok(i + 1);
                }
                _ => {
                    let Some(letter) = self.text[i..].chars().next() else {
                        return Err(FormatError::Invalid {
                            directive: written(i),
                            at: start,
                            why: "the format ends inside a directive",
                        });
                    };
                    let end = i + letter.len_utf8();
                    let directive = written(end);
                    let field = self.field(letter, arg, &directive, start)?;
                    let condition = (!statuses.is_empty()).then(|| Condition {
                        negate,
                        statuses: statuses.into_boxed_slice(),
                    });
                    self.flush_literal();
                    self.items.push(Item::Field { field, condition });
                    return Ok(end);
                }
            }
        }
    }

    fn field(
        &mut self,
        letter: char,
        arg: Option<&str>,
        directive: &str,
        at: usize,
    ) -> Result<Field, FormatError> {
        let unsupported = |why: &'static str| FormatError::Unsupported {
            directive: directive.to_owned(),
            at,
            why,
        };
        let invalid = |why: &'static str| FormatError::Invalid {
            directive: directive.to_owned(),
            at,
            why,
        };
        let header = |name: Option<&str>| match name {
            Some(name) if !name.is_empty() => {
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("not a header name"))
            }
            _ => Err(invalid("needs a header name, as in %{User-Agent}i")),
        };
        Ok(match (letter, arg) {
            ('h' | 'a', None) | ('a', Some("c")) => Field::ClientIp,
            ('a', Some(_)) => return Err(unsupported("only %{c}a is known")),
            ('A', None) => Field::LocalIp,
            ('l' | 'u', None) => Field::Dash,
            ('t', None) => Field::Time(TimeFormat::clf()),
            ('t', Some(arg)) => {
                Field::Time(
                    TimeFormat::parse(arg).map_err(|why| FormatError::Unsupported {
                        directive: directive.to_owned(),
                        at,
                        why,
                    })?,
                )
            }
            ('r', None) => Field::RequestLine,
            ('s', None) => Field::Status,
            ('b', None) => Field::BytesClf,
            ('B', None) => Field::Bytes,
            ('D', None) => Field::Duration(DurationUnit::Micros),
            ('T', None | Some("s")) => Field::Duration(DurationUnit::Seconds),
            ('T', Some("ms")) => Field::Duration(DurationUnit::Millis),
            ('T', Some("us")) => Field::Duration(DurationUnit::Micros),
            ('T', Some(_)) => return Err(invalid("the unit must be s, ms or us")),
            ('m', None) => Field::Method,
            ('U', None) => Field::Path,
            ('q', None) => Field::Query,
            ('H', None) => Field::Protocol,
            ('v', None) => Field::ServerName,
            ('V', None) => Field::Host,
            ('p', None | Some("canonical" | "local")) => Field::LocalPort,
            ('p', Some("remote")) => Field::RemotePort,
            ('p', Some(_)) => return Err(invalid("the port must be canonical, local or remote")),
            ('P', None | Some("pid")) => Field::Pid,
            ('P', Some(_)) => return Err(unsupported("only the process id (%P) is known")),
            ('i', name) => Field::RequestHeader(index_of(&mut self.headers, header(name)?)),
            ('o', name) => {
                Field::ResponseHeader(index_of(&mut self.response_headers, header(name)?))
            }
            ('e', Some(var)) => Field::BalancerEnv(match var {
                "BALANCER_NAME" => BalancerVar::Name,
                "BALANCER_WORKER_NAME" => BalancerVar::WorkerName,
                "BALANCER_WORKER_ROUTE" => BalancerVar::WorkerRoute,
                "BALANCER_SESSION_STICKY" => BalancerVar::SessionSticky,
                "BALANCER_SESSION_ROUTE" => BalancerVar::SessionRoute,
                "BALANCER_ROUTE_CHANGED" => BalancerVar::RouteChanged,
                _ => {
                    return Err(unsupported(
                        "only the balancer's BALANCER_* variables are known here",
                    ))
                }
            }),
            ('X', None) => Field::ConnectionStatus,
            ('O', None) => Field::BytesSent,
            ('I' | 'S', _) => {
                return Err(unsupported(
                    "the bytes received are not counted; %O, %b and %B count what was sent",
                ))
            }
            ('k' | 'L' | 'R' | 'f' | 'n' | 'C' | 'e' | '^', _) => {
                return Err(unsupported("the reverse proxy has no such value"))
            }
            (
                'h' | 'A' | 'l' | 'u' | 'r' | 's' | 'b' | 'B' | 'D' | 'm' | 'U' | 'q' | 'H' | 'v'
                | 'V' | 'X',
                Some(_),
            ) => return Err(invalid("takes no {argument}")),
            _ => {
                return Err(FormatError::Unknown {
                    directive: directive.to_owned(),
                    at,
                })
            }
        })
    }
}

/// The index of `name` in `names`, added if missing.
fn index_of(names: &mut Vec<HeaderName>, name: HeaderName) -> usize {
    match names.iter().position(|h| *h == name) {
        Some(index) => index,
        None => {
            names.push(name);
            names.len() - 1
        }
    }
}

// ===== rendering helpers =====

/// Appends `value` escaped as Apache's `ap_escape_logitem`.
pub(super) fn push_escaped(out: &mut String, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in value {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0b => out.push_str("\\v"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
}
