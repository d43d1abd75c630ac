//! mod_ssl's `SSLProxy*` directives: how the proxy speaks TLS to `https://`, `wss://` and
//! `h2://` members, per server ([`HostSettings::ssl_proxy`](crate::HostSettings)).
//!
//! | directive | read as |
//! | --- | --- |
//! | `SSLProxyEngine on\|off` | [`SslProxySettings::engine`]: a server whose requests go to a TLS member needs it On (else the site is refused, Apache's AH00961) |
//! | `SSLProxyVerify none\|optional\|require\|optional_no_ca` | [`SslProxySettings::verify`] |
//! | `SSLProxyCACertificateFile`, `…Path` | the trust anchors |
//! | `SSLProxyCheckPeerName`, `SSLProxyCheckPeerCN` | whether the certificate's name is checked ([`SslProxySettings::checks_name`]) |
//! | `SSLProxyCheckPeerExpire` | whether its dates are checked |
//! | `SSLProxyMachineCertificateFile`, `…Path`, `…ChainFile` | the client certificate (mTLS) |
//! | `SSLProxyProtocol` | the versions ([`SslProtocols`]; TLS 1.2 and 1.3: the older ones are refused by name) |
//! | `SSLProxyCARevocationFile`, `…Path`, `SSLProxyCARevocationCheck` | revocation lists |
//!
//! Not read here, and reported by the doctor as not applied ([`crate::registry`]):
//! `SSLProxyCipherSuite` (rustls has its own fixed list of modern suites, and no OpenSSL
//! cipher strings: the usual aim of the line, keeping weak suites out, is met) and
//! `SSLProxyVerifyDepth` (rustls does not limit a chain's length).
//!
//! # Differences from Apache (safer defaults)
//!
//! * An unset `SSLProxyVerify` **verifies** the member's certificate chain (against
//!   `SSLProxyCACertificateFile`/`Path` when given, else the system's trust store); Apache's
//!   default is `none`. Write `SSLProxyVerify none` for Apache's behaviour: the chain is not
//!   verified, the name and dates still are (as Apache 2.4.71 does: a self-signed
//!   certificate for the right name passes, one for another name fails with AH02411).
//! * `optional` is taken as `require` (a server always sends its certificate), and
//!   `optional_no_ca` as `none`.
//! * `SSLProxyCheckPeerCN on` with `SSLProxyCheckPeerName off` (Apache's legacy CN
//!   comparison) checks the name as `SSLProxyCheckPeerName on` does: rustls matches the
//!   subjectAltName only.
//! * A relative file path is refused (Apache takes it from `ServerRoot`).
//! * In a `<Proxy "balancer://…">` section (Apache 2.4.30+) they apply to that balancer's
//!   members, over the server's settings ([`Config::balancer_ssl_proxy`]); in a `<Proxy>`
//!   of a URL or a `<ProxyMatch>` they are refused (per worker settings are not kept).

use crate::front::{invalid, one};
use std::path::PathBuf;

use crate::ast::{Config, ProxyTarget, Span};
use crate::error::{ParseError, ParseErrorKind};
use crate::lexer::Token;

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SslSetting<T> {
    /// The value.
    pub value: T,
    /// Where the directive starts.
    pub span: Span,
}

/// `SSLProxyVerify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslProxyVerify {
    /// `none`: the chain is not verified.
    None,
    /// `optional`: as `require` here.
    Optional,
    /// `require`: the chain must verify.
    Require,
    /// `optional_no_ca`: as `none` here.
    OptionalNoCa,
}

impl SslProxyVerify {
    /// Whether the member's chain is verified.
    #[must_use]
    pub const fn verifies(self) -> bool {
        matches!(self, Self::Optional | Self::Require)
    }
}

/// `SSLProxyProtocol`: the versions left after the `+`/`-` words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SslProtocols {
    /// TLS 1.2.
    pub tls12: bool,
    /// TLS 1.3.
    pub tls13: bool,
}

/// `SSLProxyCARevocationCheck`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslRevocationCheck {
    /// `none` (the default).
    None,
    /// `chain`.
    Chain,
    /// `leaf`.
    Leaf,
}

/// The `SSLProxy*` settings of one server; `None` where not given (a `<VirtualHost>` takes
/// the main server's, as mod_ssl merges them directive by directive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SslProxySettings {
    /// `SSLProxyEngine` (Apache's default: off).
    pub engine: Option<SslSetting<bool>>,
    /// `SSLProxyVerify` (unset: verify; see the [module docs](self)).
    pub verify: Option<SslSetting<SslProxyVerify>>,
    /// `SSLProxyCACertificateFile`.
    pub ca_certificate_file: Option<SslSetting<PathBuf>>,
    /// `SSLProxyCACertificatePath`.
    pub ca_certificate_path: Option<SslSetting<PathBuf>>,
    /// `SSLProxyCheckPeerName` (default on).
    pub check_peer_name: Option<SslSetting<bool>>,
    /// `SSLProxyCheckPeerCN` (default on).
    pub check_peer_cn: Option<SslSetting<bool>>,
    /// `SSLProxyCheckPeerExpire` (default on).
    pub check_peer_expire: Option<SslSetting<bool>>,
    /// `SSLProxyMachineCertificateFile`.
    pub machine_certificate_file: Option<SslSetting<PathBuf>>,
    /// `SSLProxyMachineCertificatePath`.
    pub machine_certificate_path: Option<SslSetting<PathBuf>>,
    /// `SSLProxyMachineCertificateChainFile`.
    pub machine_certificate_chain_file: Option<SslSetting<PathBuf>>,
    /// `SSLProxyProtocol`.
    pub protocol: Option<SslSetting<SslProtocols>>,
    /// `SSLProxyCARevocationFile`.
    pub ca_revocation_file: Option<SslSetting<PathBuf>>,
    /// `SSLProxyCARevocationPath`.
    pub ca_revocation_path: Option<SslSetting<PathBuf>>,
    /// `SSLProxyCARevocationCheck`.
    pub ca_revocation_check: Option<SslSetting<SslRevocationCheck>>,
}

impl SslProxySettings {
    /// `SSLProxyEngine On`.
    #[must_use]
    pub fn engine_on(&self) -> bool {
        self.engine.as_ref().is_some_and(|s| s.value)
    }

    /// Whether the member's chain is verified: unset verifies (safer than Apache's `none`).
    #[must_use]
    pub fn verifies(&self) -> bool {
        self.verify.as_ref().map_or(true, |s| s.value.verifies())
    }

    /// Whether the certificate's name is checked (Apache 2.4.21+: off when either
    /// `SSLProxyCheckPeerName` or `SSLProxyCheckPeerCN` is off, except `CN on` with
    /// `Name off`, the legacy CN check, taken as a name check here).
    #[must_use]
    pub fn checks_name(&self) -> bool {
        let name = self.check_peer_name.as_ref().map(|s| s.value);
        let cn = self.check_peer_cn.as_ref().map(|s| s.value);
        match (name, cn) {
            (Some(false), Some(true)) => true,
            (Some(false), _) | (_, Some(false)) => false,
            _ => true,
        }
    }

    /// Whether the certificate's dates are checked.
    #[must_use]
    pub fn checks_expiry(&self) -> bool {
        self.check_peer_expire.as_ref().map_or(true, |s| s.value)
    }

    /// Each setting `own`'s where given, else `main`'s (mod_ssl's proxy context merge).
    #[must_use]
    pub fn merged(own: &Self, main: &Self) -> Self {
        fn pick<T: Clone>(own: &Option<T>, main: &Option<T>) -> Option<T> {
            own.clone().or_else(|| main.clone())
        }
        Self {
            engine: pick(&own.engine, &main.engine),
            verify: pick(&own.verify, &main.verify),
            ca_certificate_file: pick(&own.ca_certificate_file, &main.ca_certificate_file),
            ca_certificate_path: pick(&own.ca_certificate_path, &main.ca_certificate_path),
            check_peer_name: pick(&own.check_peer_name, &main.check_peer_name),
            check_peer_cn: pick(&own.check_peer_cn, &main.check_peer_cn),
            check_peer_expire: pick(&own.check_peer_expire, &main.check_peer_expire),
            machine_certificate_file: pick(
                &own.machine_certificate_file,
                &main.machine_certificate_file,
            ),
            machine_certificate_path: pick(
                &own.machine_certificate_path,
                &main.machine_certificate_path,
            ),
            machine_certificate_chain_file: pick(
                &own.machine_certificate_chain_file,
                &main.machine_certificate_chain_file,
            ),
            protocol: pick(&own.protocol, &main.protocol),
            ca_revocation_file: pick(&own.ca_revocation_file, &main.ca_revocation_file),
            ca_revocation_path: pick(&own.ca_revocation_path, &main.ca_revocation_path),
            ca_revocation_check: pick(&own.ca_revocation_check, &main.ca_revocation_check),
        }
    }

    /// The same settings with every span zeroed: two servers that say the same thing on
    /// different lines compare equal.
    #[must_use]
    pub fn without_spans(&self) -> Self {
        let mut s = self.clone();
        s.zero_spans();
        s
    }

    /// Zeroes every span.
    pub(crate) fn zero_spans(&mut self) {
        let z = Span::default();
        macro_rules! zero {
            ($($f:ident),*) => { $( if let Some(s) = &mut self.$f { s.span = z; } )* };
        }
        zero!(
            engine,
            verify,
            ca_certificate_file,
            ca_certificate_path,
            check_peer_name,
            check_peer_cn,
            check_peer_expire,
            machine_certificate_file,
            machine_certificate_path,
            machine_certificate_chain_file,
            protocol,
            ca_revocation_file,
            ca_revocation_path,
            ca_revocation_check
        );
    }
}

/// The directives read here, lower-case.
pub(crate) const DIRECTIVES: &[&str] = &[
    "sslproxyengine",
    "sslproxyverify",
    "sslproxycacertificatefile",
    "sslproxycacertificatepath",
    "sslproxycheckpeername",
    "sslproxycheckpeercn",
    "sslproxycheckpeerexpire",
    "sslproxymachinecertificatefile",
    "sslproxymachinecertificatepath",
    "sslproxymachinecertificatechainfile",
    "sslproxyprotocol",
    "sslproxycarevocationfile",
    "sslproxycarevocationpath",
    "sslproxycarevocationcheck",
];

/// Whether `lower` is a directive read here.
pub(crate) fn is_ssl_proxy_directive(lower: &str) -> bool {
    DIRECTIVES.contains(&lower)
}

/// What one directive sets.
pub(crate) type SetSsl = Box<dyn FnOnce(&mut SslProxySettings)>;

fn syntax(span: Span, message: impl Into<String>) -> ParseError {
    ParseError::new(span, ParseErrorKind::Syntax, message.into())
}

fn on_off(span: Span, directive: &str, args: &[Token]) -> Result<bool, ParseError> {
    let v = one(span, directive, args)?;
    match v.text.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(invalid(
            v.span,
            format!(
                "invalid value \"{}\" for {directive}: must be On or Off",
                v.text
            ),
        )),
    }
}

/// An absolute path; a file must exist and be a file, a directory a directory (as Apache
/// checks at start-up: "SSLProxyCACertificateFile: file '…' does not exist or is empty").
fn path(span: Span, directive: &str, args: &[Token], dir: bool) -> Result<PathBuf, ParseError> {
    let v = one(span, directive, args)?;
    let p = PathBuf::from(&v.text);
    if !p.is_absolute() {
        return Err(invalid(
            v.span,
            format!("{directive}: \"{}\" is a relative path", v.text),
        )
        .with_hint(Some(
            "write the absolute path (Apache takes a relative one from ServerRoot)".to_owned(),
        )));
    }
    let ok = if dir { p.is_dir() } else { p.is_file() };
    if !ok {
        let what = if dir { "directory" } else { "file" };
        return Err(invalid(
            v.span,
            format!(
                "{directive}: {what} \"{}\" does not exist or cannot be read",
                v.text
            ),
        ));
    }
    Ok(p)
}

/// Reads one `SSLProxy*` directive (`lower` is its name in lower case).
pub(crate) fn parse(
    span: Span,
    lower: &str,
    directive: &str,
    args: &[Token],
) -> Result<SetSsl, ParseError> {
    let set = |f: SetSsl| Ok(f);
    macro_rules! file {
        ($field:ident, $dir:expr) => {{
            let value = path(span, directive, args, $dir)?;
            set(Box::new(move |s| {
                s.$field = Some(SslSetting { value, span })
            }))
        }};
    }
    macro_rules! flag {
        ($field:ident) => {{
            let value = on_off(span, directive, args)?;
            set(Box::new(move |s| {
                s.$field = Some(SslSetting { value, span })
            }))
        }};
    }
    match lower {
        "sslproxyengine" => flag!(engine),
        "sslproxycheckpeername" => flag!(check_peer_name),
        "sslproxycheckpeercn" => flag!(check_peer_cn),
        "sslproxycheckpeerexpire" => flag!(check_peer_expire),
        "sslproxycacertificatefile" => file!(ca_certificate_file, false),
        "sslproxycacertificatepath" => file!(ca_certificate_path, true),
        "sslproxymachinecertificatefile" => file!(machine_certificate_file, false),
        "sslproxymachinecertificatepath" => file!(machine_certificate_path, true),
        "sslproxymachinecertificatechainfile" => file!(machine_certificate_chain_file, false),
        "sslproxycarevocationfile" => file!(ca_revocation_file, false),
        "sslproxycarevocationpath" => file!(ca_revocation_path, true),
        "sslproxyverify" => {
            let v = one(span, directive, args)?;
            let value = match v.text.to_ascii_lowercase().as_str() {
                "none" => SslProxyVerify::None,
                "optional" => SslProxyVerify::Optional,
                "require" => SslProxyVerify::Require,
                "optional_no_ca" => SslProxyVerify::OptionalNoCa,
                _ => {
                    return Err(invalid(
                        v.span,
                        format!(
                            "invalid value \"{}\" for SSLProxyVerify: must be none, optional, require or optional_no_ca",
                            v.text
                        ),
                    ))
                }
            };
            set(Box::new(move |s| {
                s.verify = Some(SslSetting { value, span })
            }))
        }
        "sslproxycarevocationcheck" => {
            let (first, rest) = args.split_first().ok_or_else(|| {
                syntax(span, "SSLProxyCARevocationCheck takes chain, leaf or none")
            })?;
            let value = match first.text.to_ascii_lowercase().as_str() {
                "none" => SslRevocationCheck::None,
                "chain" => SslRevocationCheck::Chain,
                "leaf" => SslRevocationCheck::Leaf,
                _ => {
                    return Err(invalid(
                        first.span,
                        format!(
                            "invalid value \"{}\" for SSLProxyCARevocationCheck: must be chain, leaf or none",
                            first.text
                        ),
                    ))
                }
            };
            if let Some(flag) = rest.first() {
                return Err(invalid(
                    flag.span,
                    format!("SSLProxyCARevocationCheck flag \"{}\" is not supported: a certificate no list covers always fails", flag.text),
                ));
            }
            set(Box::new(move |s| {
                s.ca_revocation_check = Some(SslSetting { value, span })
            }))
        }
        "sslproxyprotocol" => {
            let value = protocols(span, args)?;
            set(Box::new(move |s| {
                s.protocol = Some(SslSetting { value, span })
            }))
        }
        _ => Err(syntax(span, format!("{directive} is not read here"))),
    }
}

/// `SSLProxyProtocol [+|-]protocol …` as mod_ssl reads it: a word without a sign or with
/// `+` adds, `-` removes; `all` is every version. SSLv3, TLSv1 and TLSv1.1 (which
/// rustls does not have) are refused where a word enables them by name; `all` means the
/// versions rustls has.
fn protocols(span: Span, args: &[Token]) -> Result<SslProtocols, ParseError> {
    if args.is_empty() {
        return Err(syntax(span, "SSLProxyProtocol takes one or more protocols"));
    }
    let mut set = SslProtocols {
        tls12: false,
        tls13: false,
    };
    for a in args {
        let (sign, name) = match a.text.as_bytes().first() {
            Some(b'+') => (Some(true), &a.text[1..]),
            Some(b'-') => (Some(false), &a.text[1..]),
            _ => (None, a.text.as_str()),
        };
        let (tls12, tls13) = match name.to_ascii_lowercase().as_str() {
            "all" => (true, true),
            "tlsv1.2" => (true, false),
            "tlsv1.3" => (false, true),
            old @ ("sslv3" | "tlsv1" | "tlsv1.1") => {
                if sign == Some(false) {
                    continue; // removing what is not there
                }
                let _ = old;
                return Err(invalid(
                    a.span,
                    format!("SSLProxyProtocol {name} is not available: rustls speaks TLSv1.2 and TLSv1.3 only"),
                )
                .with_hint(Some("remove it (members that speak only older versions cannot be reached)".to_owned())));
            }
            "sslv2" => {
                return Err(invalid(a.span, "SSLProxyProtocol SSLv2 is not supported (not by Apache either)".to_owned()))
            }
            _ => {
                return Err(invalid(
                    a.span,
                    format!("invalid protocol \"{}\" for SSLProxyProtocol: must be all, TLSv1.2 or TLSv1.3, with an optional + or -", a.text),
                ))
            }
        };
        match sign {
            // mod_ssl adds a word without a sign to the list too.
            None | Some(true) => {
                set.tls12 |= tls12;
                set.tls13 |= tls13;
            }
            Some(false) => {
                set.tls12 &= !tls12;
                set.tls13 &= !tls13;
            }
        }
    }
    if !set.tls12 && !set.tls13 {
        return Err(invalid(
            span,
            "SSLProxyProtocol leaves no protocol: at least one of TLSv1.2 and TLSv1.3 must remain"
                .to_owned(),
        ));
    }
    Ok(set)
}

/// Whether a member URL is reached over TLS (`https://`, `wss://`, `h2://`).
#[must_use]
pub fn is_tls_url(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or("");
    ["https", "wss", "h2"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
}

/// A TLS member that a server's requests go to ([`Config::tls_member_uses`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsMemberUse {
    /// The server whose requests go to it: `None` for the main server, else the
    /// `<VirtualHost>` (an index in [`Config::virtual_hosts`]).
    pub server: Option<usize>,
    /// The member's URL as written.
    pub url: String,
    /// Where the member is written (its `BalancerMember`, or the `ProxyPass` of a plain URL).
    pub member_span: Span,
    /// The `ProxyPass` that routes the server's requests to it.
    pub pass_span: Span,
    /// The `SSLProxy*` settings it is reached with: its balancer's `<Proxy>` section's
    /// over the server's ([`Config::balancer_ssl_proxy`]).
    pub ssl_proxy: SslProxySettings,
}

impl Config {
    /// The `SSLProxy*` settings a balancer's members are reached with from `server`: those
    /// of its `<Proxy "balancer://…">` section over the server's
    /// ([`Config::host_settings`]), as mod_ssl merges a proxy section over its server (seen
    /// on Apache 2.4.71: `SSLProxyEngine on` and `SSLProxyCheckPeerName off` in the section,
    /// `SSLProxyVerify require` and the CA in the `<VirtualHost>`, all applied). `balancer`
    /// is an index in [`Config::balancers`]; `None` (a plain URL): the server's.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse(
    ///     "SSLProxyVerify require\n<Proxy balancer://app>\n  SSLProxyEngine on\n  \
    ///      SSLProxyCheckPeerName off\n  BalancerMember https://a.example\n</Proxy>\n",
    /// )?;
    /// let ssl = config.balancer_ssl_proxy(None, Some(0));
    /// assert!(ssl.engine_on() && ssl.verifies() && !ssl.checks_name());
    /// assert!(!config.host_settings(None).ssl_proxy.engine_on());
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    #[must_use]
    pub fn balancer_ssl_proxy(
        &self,
        server: Option<usize>,
        balancer: Option<usize>,
    ) -> SslProxySettings {
        let base = self.host_settings(server).ssl_proxy;
        match balancer.and_then(|b| self.balancer_ssl_proxy.iter().find(|(i, _)| *i == b)) {
            Some((_, own)) => SslProxySettings::merged(own, &base),
            None => base,
        }
    }

    /// The TLS members each server's requests go to, through its `ProxyPass` lines (its own,
    /// the main server's it inherits, those of its `<Location>`s) and the balancers they
    /// name as [`Config::balancer_in`] finds them. The settings that apply to such a
    /// member are the server's ([`Config::host_settings`]`(server).ssl_proxy`): Apache
    /// takes them from the server that handles the request.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse(
    ///     "<Proxy balancer://app>\n  BalancerMember https://a.example\n</Proxy>\n\
    ///      <VirtualHost *:443>\n  SSLProxyEngine on\n  ProxyPass / balancer://app/\n</VirtualHost>\n",
    /// )?;
    /// let uses = config.tls_member_uses();
    /// assert_eq!(uses.len(), 1);
    /// assert_eq!((uses[0].server, uses[0].member_span.line), (Some(0), 2));
    /// assert!(config.host_settings(uses[0].server).ssl_proxy.engine_on());
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    #[must_use]
    pub fn tls_member_uses(&self) -> Vec<TlsMemberUse> {
        let mut out = Vec::new();
        let servers = std::iter::once(None).chain((0..self.virtual_hosts.len()).map(Some));
        for server in servers {
            let locations: Vec<usize> = self.locations_in(server).map(|(i, _)| i).collect();
            let passes = self.server_proxy_passes(server).chain(
                self.proxy_passes
                    .iter()
                    .filter(|p| p.context.location.is_some_and(|l| locations.contains(&l))),
            );
            for pass in passes {
                match &pass.target {
                    ProxyTarget::Balancer { name, .. } => {
                        let Some(balancer) = self.balancer_in(server, name) else {
                            continue;
                        };
                        let index = self
                            .balancers
                            .iter()
                            .position(|b| std::ptr::eq(b, balancer));
                        let ssl_proxy = self.balancer_ssl_proxy(server, index);
                        for m in balancer.members.iter().filter(|m| is_tls_url(&m.url)) {
                            out.push(TlsMemberUse {
                                server,
                                url: m.url.clone(),
                                member_span: m.span,
                                pass_span: pass.span,
                                ssl_proxy: ssl_proxy.clone(),
                            });
                        }
                    }
                    ProxyTarget::Url(url) if is_tls_url(url) => out.push(TlsMemberUse {
                        server,
                        url: url.clone(),
                        member_span: pass.span,
                        pass_span: pass.span,
                        ssl_proxy: self.host_settings(server).ssl_proxy,
                    }),
                    _ => {}
                }
            }
        }
        out
    }
}
