//! `BalancerShare`: proxy-balancer's own directive that shares the balancer-manager's edits
//! with a fleet of instances through etcd.
//!
//! ```text
//! BalancerShare etcd URL [URL …] [prefix=/proxy-balancer/] [instance=NAME]
//! ```
//!
//! - `etcd`: the store (the only one so far; the word leaves room for others).
//! - `URL`: etcd's client endpoints, `http://host:port`, one or more (a cluster's members).
//! - `prefix=`: where the fleet's keys live in etcd, starting and ending with `/` (default
//!   `/proxy-balancer/`); fleets that must not see each other's edits use different
//!   prefixes on the same etcd.
//! - `instance=`: this instance's name in the fleet, shown as who made an edit and in the
//!   manager's status (letters, digits, `.`, `_`, `-`; at most 64). Default: the
//!   `HOSTNAME` environment variable, else the host's name (what `hostname` prints), else
//!   `proxy-balancer-<pid>` (chosen by the engine when the site starts).
//!
//! The name follows mod_proxy's `BalancerGrowth`, `BalancerInherit` and `BalancerPersist`
//! (settings of every balancer of the server): `BalancerPersist` keeps the manager's edits
//! on this host, `BalancerShare` shares them across hosts. The store comes first so that the
//! line reads as what it does, and the optional parts are `key=value` as on `ProxySet`.
//!
//! It applies to the whole process (one share per process, whatever the number of
//! `<VirtualHost>`s or worker threads): written in the main server only, once. Elsewhere,
//! twice, or with a malformed value, the line is refused with its line and column.
//!
//! ```
//! use proxy_balancer_apache_config::parse;
//!
//! let config = parse(
//!     "BalancerShare etcd http://10.0.0.1:2379 http://10.0.0.2:2379 prefix=/shop/ instance=web-1\n",
//! )?;
//! let share = config.balancer_share.as_ref().expect("read");
//! assert_eq!(share.endpoints, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
//! assert_eq!(share.prefix, "/shop/");
//! assert_eq!(share.instance.as_deref(), Some("web-1"));
//!
//! let err = parse("BalancerShare etcd http://10.0.0.1:2379 prefix=shop\n").unwrap_err();
//! assert!(err.to_string().starts_with("line 1, column 48: invalid value \"shop\" for prefix="));
//! # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
//! ```

use crate::ast::{Config, Span};
use crate::doctor::{Finding, Severity};
use crate::error::{ParseError, ParseErrorKind};
use crate::lexer::Token;

/// The prefix of the fleet's keys when the line gives none.
pub const DEFAULT_PREFIX: &str = "/proxy-balancer/";

/// The longest `instance=` name: room for a host name and a number, short enough for a
/// page's column.
const MAX_INSTANCE_LEN: usize = 64;

/// A `BalancerShare` line: the manager's edits shared through a store (see the
/// [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BalancerShare {
    /// The store: [`ShareBackend::Etcd`].
    pub backend: ShareBackend,
    /// The store's client endpoints (`http://host:port`), in the order given.
    pub endpoints: Vec<String>,
    /// Where the fleet's keys live (`prefix=`), starting and ending with `/`.
    pub prefix: String,
    /// This instance's name (`instance=`), when the line gives one.
    pub instance: Option<String>,
    /// Where the line is.
    pub span: Span,
}

/// The store a [`BalancerShare`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShareBackend {
    /// etcd v3 (the `proxy-balancer-etcd` crate).
    Etcd,
}

impl ShareBackend {
    /// The word of the directive: `etcd`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
        }
    }
}

impl BalancerShare {
    /// The line in Apache syntax, as [`Config::render`] writes it.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse("BalancerShare etcd http://e:2379\n")?;
    /// let share = config.balancer_share.as_ref().expect("read");
    /// assert_eq!(share.render(), "BalancerShare etcd http://e:2379 prefix=/proxy-balancer/\n");
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = format!("BalancerShare {}", self.backend.as_str());
        for e in &self.endpoints {
            out.push(' ');
            out.push_str(e);
        }
        out.push_str(" prefix=");
        out.push_str(&self.prefix);
        if let Some(i) = &self.instance {
            out.push_str(" instance=");
            out.push_str(i);
        }
        out.push('\n');
        out
    }
}

fn invalid(span: Span, message: String, hint: &str) -> ParseError {
    ParseError::new(span, ParseErrorKind::InvalidValue, message).with_hint(Some(hint.to_owned()))
}

/// `BalancerShare` written inside a block (`section`: `VirtualHost`, `Proxy`, `Location` …).
pub(crate) fn not_here(span: Span, section: &str) -> ParseError {
    ParseError::new(
        span,
        ParseErrorKind::Syntax,
        format!("BalancerShare not allowed in <{section}> context: it applies to the whole process (one share for every server)"),
    )
    .with_hint(Some("write it once in the main server, outside every block".to_owned()))
}

/// Reads a `BalancerShare` line into `config` (`main`: written in the main server, outside
/// every block but `<IfModule>`-like ones; `section` names the block otherwise).
pub(crate) fn read(
    config: &mut Config,
    span: Span,
    args: &[Token],
    section: Option<&str>,
) -> Result<(), ParseError> {
    if let Some(section) = section {
        return Err(not_here(span, section));
    }
    if let Some(first) = &config.balancer_share {
        return Err(ParseError::new(
            span,
            ParseErrorKind::Syntax,
            format!(
                "BalancerShare is given twice (first on line {}): one share per process",
                first.span.line
            ),
        )
        .with_hint(Some(
            "keep one line; list every etcd endpoint on it".to_owned(),
        )));
    }
    let usage =
        "BalancerShare etcd http://127.0.0.1:2379 [prefix=/proxy-balancer/] [instance=NAME]";
    let Some((backend, rest)) = args.split_first() else {
        return Err(ParseError::new(
            span,
            ParseErrorKind::Syntax,
            "BalancerShare takes a store and its endpoints".to_owned(),
        )
        .with_hint(Some(usage.to_owned())));
    };
    let backend = match backend.text.to_ascii_lowercase().as_str() {
        "etcd" => ShareBackend::Etcd,
        _ => {
            return Err(invalid(
                backend.span,
                format!(
                    "invalid value \"{}\" for BalancerShare: the store must be etcd",
                    backend.text
                ),
                usage,
            ))
        }
    };
    let mut share = BalancerShare {
        backend,
        endpoints: Vec::new(),
        prefix: DEFAULT_PREFIX.to_owned(),
        instance: None,
        span,
    };
    let mut seen_prefix = false;
    for word in rest {
        let text = word.text.as_str();
        if let Some((key, value)) = text.split_once('=') {
            let value_span = Span {
                column: word
                    .span
                    .column
                    .saturating_add(u32::try_from(key.chars().count() + 1).unwrap_or(0)),
                ..word.span
            };
            match key.to_ascii_lowercase().as_str() {
                "prefix" if !seen_prefix => {
                    seen_prefix = true;
                    share.prefix = prefix(value, value_span)?;
                }
                "instance" if share.instance.is_none() => {
                    share.instance = Some(instance(value, value_span)?);
                }
                "prefix" | "instance" => {
                    return Err(ParseError::new(
                        word.span,
                        ParseErrorKind::Syntax,
                        format!("BalancerShare: {key}= is given twice"),
                    ))
                }
                _ => {
                    return Err(ParseError::new(
                        word.span,
                        ParseErrorKind::UnknownParameter,
                        format!("unknown parameter \"{key}\" for BalancerShare"),
                    )
                    .with_hint(Some("BalancerShare takes prefix= and instance=".to_owned())))
                }
            }
        } else {
            share.endpoints.push(endpoint(text, word.span)?);
        }
    }
    if share.endpoints.is_empty() {
        return Err(ParseError::new(
            span,
            ParseErrorKind::Syntax,
            "BalancerShare etcd needs at least one endpoint".to_owned(),
        )
        .with_hint(Some(usage.to_owned())));
    }
    config.balancer_share = Some(share);
    Ok(())
}

/// An etcd client endpoint: `http://host:port` (a port, no path).
fn endpoint(text: &str, span: Span) -> Result<String, ParseError> {
    let hint =
        "write each etcd client endpoint as http://host:port (etcd's --advertise-client-urls)";
    if text.to_ascii_lowercase().starts_with("https://") {
        return Err(invalid(
            span,
            format!(
                "invalid endpoint \"{text}\" for BalancerShare: TLS to etcd is not supported yet"
            ),
            "use http:// to an etcd on a trusted network, or an etcd gRPC proxy on this host",
        ));
    }
    let Some(rest) = text
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &text[7..])
    else {
        return Err(invalid(
            span,
            format!("invalid endpoint \"{text}\" for BalancerShare: must start with http://"),
            hint,
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").unwrap_or(("", "")),
        None => authority
            .rsplit_once(':')
            .filter(|(h, _)| !h.contains(':'))
            .unwrap_or(("", "")),
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let clean = !host.is_empty()
        && !host.contains(['/', '?', '#', '@', '[', ']'])
        && !host.chars().any(char::is_whitespace);
    if !(port_ok && clean) {
        return Err(invalid(
            span,
            format!("invalid endpoint \"{text}\" for BalancerShare: must be http://host:port, with a port and no path"),
            hint,
        ));
    }
    Ok(format!("http://{authority}"))
}

/// A key prefix: `/…/`, printable, no blank.
fn prefix(value: &str, span: Span) -> Result<String, ParseError> {
    let ok = value.len() >= 2
        && value.starts_with('/')
        && value.ends_with('/')
        && !value.contains("//")
        && value.chars().all(|c| c.is_ascii_graphic());
    if !ok {
        return Err(invalid(
            span,
            format!("invalid value \"{value}\" for prefix=: must start and end with / (e.g. prefix=/proxy-balancer/), without // or blanks"),
            "every instance of a fleet must give the same prefix; the default is /proxy-balancer/",
        ));
    }
    Ok(value.to_owned())
}

/// An instance name: letters, digits, `.`, `_`, `-`.
fn instance(value: &str, span: Span) -> Result<String, ParseError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_INSTANCE_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(invalid(
            span,
            format!("invalid value \"{value}\" for instance=: must be 1 to 64 letters, digits, '.', '_' or '-'"),
            "name each instance of the fleet differently, e.g. instance=web-1",
        ));
    }
    Ok(value.to_owned())
}

/// The doctor's `balancer-share` rule: a share that nothing can use or that fights another
/// setting.
pub(crate) fn doctor(config: &Config, out: &mut Vec<Finding>) {
    let Some(share) = &config.balancer_share else {
        return;
    };
    if config.manager_locations.is_empty() {
        out.push(Finding {
            severity: Severity::Note,
            rule: "balancer-share",
            span: share.span,
            what: "BalancerShare without a balancer-manager".into(),
            causes: "no edit can be made through this instance: it follows the edits made through the other instances' managers (or written to etcd), which may be what you want".into(),
            fix: "add <Location \"/balancer-manager\"> SetHandler balancer-manager </Location> with a Require ip line to edit through this instance".into(),
        });
    }
    if config.balancer_persist == Some(true) && !config.manager_locations.is_empty() {
        out.push(Finding {
            severity: Severity::Error,
            rule: "balancer-share",
            span: share.span,
            what: "BalancerShare with BalancerPersist On".into(),
            causes: "the site refuses to start: the shared store keeps the manager's edits, and a file of this instance's own would bring back a state the fleet has left".into(),
            fix: "remove BalancerPersist On (etcd keeps the edits across restarts)".into(),
        });
    }
    if share.endpoints.len() == 2 {
        out.push(Finding {
            severity: Severity::Note,
            rule: "balancer-share",
            span: share.span,
            what: "BalancerShare lists two etcd endpoints".into(),
            causes: "an etcd cluster of two members stops taking writes when either fails (it needs a majority): edits are then refused".into(),
            fix: "run etcd with one member or three (or five)".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn err(text: &str) -> String {
        parse(text).expect_err(text).to_string()
    }

    #[test]
    fn read_with_defaults_and_rendered_back() {
        let c = parse("BalancerShare ETCD http://127.0.0.1:2379/\n").expect("read");
        let s = c.balancer_share.as_ref().expect("share");
        assert_eq!(s.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(s.prefix, "/proxy-balancer/");
        assert_eq!(s.instance, None);
        assert_eq!(s.span.line, 1);
        let again = parse(&c.render()).expect("read back");
        assert_eq!(again.without_spans(), c.without_spans());
        let c = parse("BalancerShare etcd http://[::1]:2379 instance=a.b_c-1 prefix=/x/y/\n")
            .expect("read");
        let s = c.balancer_share.as_ref().expect("share");
        assert_eq!(s.endpoints, ["http://[::1]:2379"]);
        assert_eq!(s.prefix, "/x/y/");
        assert_eq!(s.instance.as_deref(), Some("a.b_c-1"));
        assert_eq!(
            parse(&c.render()).expect("read back").without_spans(),
            c.without_spans()
        );
    }

    #[test]
    fn refused_with_the_place() {
        for (text, want) in [
            ("BalancerShare\n", "line 1, column 1: BalancerShare takes a store"),
            ("BalancerShare redis http://a:1\n", "line 1, column 15: invalid value \"redis\" for BalancerShare: the store must be etcd"),
            ("BalancerShare etcd\n", "line 1, column 1: BalancerShare etcd needs at least one endpoint"),
            ("BalancerShare etcd 127.0.0.1:2379\n", "line 1, column 20: invalid endpoint \"127.0.0.1:2379\" for BalancerShare: must start with http://"),
            ("BalancerShare etcd https://e:2379\n", "TLS to etcd is not supported yet"),
            ("BalancerShare etcd http://e\n", "must be http://host:port, with a port"),
            ("BalancerShare etcd http://e:0\n", "must be http://host:port"),
            ("BalancerShare etcd http://e:2379/v3\n", "no path"),
            ("BalancerShare etcd http://:2379\n", "must be http://host:port"),
            ("BalancerShare etcd http://e:1 prefix=/a\n", "line 1, column 38: invalid value \"/a\" for prefix="),
            ("BalancerShare etcd http://e:1 prefix=/\n", "invalid value \"/\" for prefix="),
            ("BalancerShare etcd http://e:1 instance=a/b\n", "invalid value \"a/b\" for instance="),
            ("BalancerShare etcd http://e:1 instance=\n", "invalid value \"\" for instance="),
            ("BalancerShare etcd http://e:1 ttl=3\n", "line 1, column 31: unknown parameter \"ttl\" for BalancerShare"),
            ("BalancerShare etcd http://e:1 prefix=/a/ prefix=/b/\n", "prefix= is given twice"),
            ("BalancerShare etcd http://e:1\nBalancerShare etcd http://f:1\n", "line 2, column 1: BalancerShare is given twice (first on line 1)"),
            ("<VirtualHost *:80>\nBalancerShare etcd http://e:1\n</VirtualHost>\n", "line 2, column 1: BalancerShare not allowed in <VirtualHost> context"),
            ("<Proxy balancer://a>\nBalancerShare etcd http://e:1\n</Proxy>\n", "not allowed in <Proxy> context"),
            ("<Location /x>\nBalancerShare etcd http://e:1\n</Location>\n", "line 2, column 1: BalancerShare not allowed in <Location> context"),
        ] {
            let got = err(text);
            assert!(got.contains(want), "{text:?}: {got}");
        }
    }

    #[test]
    fn inside_if_module_it_is_the_main_server() {
        let c = parse("<IfModule mod_proxy.c>\nBalancerShare etcd http://e:1\n</IfModule>\n")
            .expect("read");
        assert!(c.balancer_share.is_some());
    }

    #[test]
    fn a_near_miss_is_suggested() {
        let got = err("BalancerShar etcd http://e:1\n");
        assert!(got.contains("did you mean \"BalancerShare\"?"), "{got}");
    }

    #[test]
    fn the_doctor_on_a_share() {
        let rules = |text: &str| -> Vec<(String, String)> {
            let c = parse(text).expect("read");
            crate::doctor::check(&c)
                .into_iter()
                .filter(|f| f.rule == "balancer-share")
                .map(|f| (f.severity.to_string(), f.what))
                .collect()
        };
        assert_eq!(
            rules("BalancerShare etcd http://e:1\n"),
            [(
                "note".to_owned(),
                "BalancerShare without a balancer-manager".to_owned()
            )]
        );
        // Without a manager nothing is persisted: the note alone.
        assert_eq!(
            rules("BalancerShare etcd http://e:1\nBalancerPersist On\n").len(),
            1
        );
        let managed = "BalancerShare etcd http://e:1\n<Location /bm>\nSetHandler balancer-manager\nRequire ip 127.0.0.1\n</Location>\n";
        assert!(rules(managed).is_empty());
        assert_eq!(
            rules(&format!("{managed}BalancerPersist On\n")),
            [(
                "error".to_owned(),
                "BalancerShare with BalancerPersist On".to_owned()
            )]
        );
        assert_eq!(
            rules("BalancerShare etcd http://e:1 http://f:1\n<Location /bm>\nSetHandler balancer-manager\nRequire ip 127.0.0.1\n</Location>\n"),
            [("note".to_owned(), "BalancerShare lists two etcd endpoints".to_owned())]
        );
    }
}
