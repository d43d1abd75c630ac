//! mod_ssl's directives of the front door: HTTPS on the listener.
//!
//! | directive | here |
//! | --- | --- |
//! | `SSLEngine On\|Off` | applied: the server (main or `<VirtualHost>`) speaks TLS; a virtual host without its own takes the main server's, as mod_ssl merges it |
//! | `SSLEngine optional`, `SSLEngine addr:port` | refused (the upgrade to TLS of RFC 2817 is not done; write `SSLEngine On` in the `<VirtualHost>`) |
//! | `SSLCertificateFile`, `SSLCertificateKeyFile` | applied: one certificate and key per server (a second pair, RSA beside ECDSA, is refused); relative paths from `ServerRoot` |
//! | `SSLCertificateChainFile` | applied: its certificates follow the server's |
//! | `SSLProtocol` | applied as far as rustls goes: `TLSv1.2` and `TLSv1.3` (`TLSv1` and `TLSv1.1` are never offered; a line that leaves neither is refused) |
//! | `SSLHonorCipherOrder On\|Off` | applied: the server's cipher suite order wins |
//! | `SSLVerifyClient none\|require\|optional` | applied in the server and `<VirtualHost>` (client certificates checked against `SSLCACertificateFile` in the handshake); `optional_no_ca` is refused; in a `<Location>` it is not applied (reported: it fails open) |
//! | `SSLCACertificateFile` | applied: the CAs client certificates must chain to |
//! | `Protocols` (core) | applied over TLS: the ALPN protocols offered, of `h2` and `http/1.1` (without the line both are; Apache's default is `http/1.1` alone); `h2c` is read, a plain port takes h2c by prior knowledge whatever the line says; other protocols are refused |
//!
//! Files are read when the site is built (a file that cannot be read, a key that does not
//! match its certificate: an error with this line and column), not here.

use crate::front::{invalid, one};
use std::path::PathBuf;

use crate::ast::Span;
use crate::error::{ParseError, ParseErrorKind};
use crate::lexer::Token;

/// The directives read here, as the manual writes them.
pub(crate) const DIRECTIVES: &[&str] = &[
    "SSLEngine",
    "SSLCertificateFile",
    "SSLCertificateKeyFile",
    "SSLCertificateChainFile",
    "SSLProtocol",
    "SSLHonorCipherOrder",
    "SSLVerifyClient",
    "SSLCACertificateFile",
    "Protocols",
];

/// Whether `lower` (a lower-case directive name) is read here.
pub(crate) fn is_ssl_server_directive(lower: &str) -> bool {
    DIRECTIVES.iter().any(|d| d.eq_ignore_ascii_case(lower))
}

/// HTTPS on a server, as its mod_ssl directives give it ([`HostSettings::ssl`]); `None`
/// where a directive is not given (a virtual host then takes the main server's, as
/// mod_ssl's server merge does).
///
/// ```
/// let config = proxy_balancer_apache_config::parse(
///     "<VirtualHost *:443>\n  SSLEngine On\n  SSLCertificateFile a.pem\n  \
///      SSLCertificateKeyFile a.key\n  SSLProtocol all -TLSv1.3\n</VirtualHost>\n",
/// )?;
/// let ssl = config.host_settings(Some(0)).ssl;
/// assert!(ssl.is_on());
/// assert_eq!(ssl.certificate_file.as_ref().map(|f| f.path.to_str()), Some(Some("a.pem")));
/// let protocols = ssl.protocol.unwrap();
/// assert!(protocols.tls12 && !protocols.tls13);
/// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
/// ```
///
/// [`HostSettings::ssl`]: crate::HostSettings::ssl
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SslServer {
    /// `SSLEngine On|Off`, and where.
    pub engine: Option<(bool, Span)>,
    /// `SSLCertificateFile`: the certificate (and possibly its chain and key), PEM.
    pub certificate_file: Option<SslFile>,
    /// `SSLCertificateKeyFile`: the private key, PEM (without it, the key is looked for in
    /// the certificate file).
    pub certificate_key_file: Option<SslFile>,
    /// `SSLCertificateChainFile`: certificates sent after the server's, PEM.
    pub certificate_chain_file: Option<SslFile>,
    /// `SSLProtocol`: the TLS versions offered.
    pub protocol: Option<SslProtocols>,
    /// `SSLHonorCipherOrder On|Off`.
    pub honor_cipher_order: Option<bool>,
    /// `SSLVerifyClient none|optional|require`, and where.
    pub verify_client: Option<(SslVerifyClient, Span)>,
    /// `SSLCACertificateFile`: the CAs of client certificates, PEM.
    pub ca_certificate_file: Option<SslFile>,
    /// `Protocols`: what ALPN offers over TLS.
    pub protocols: Option<AlpnProtocols>,
}

/// The protocols of a `Protocols` line that ALPN can offer over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlpnProtocols {
    /// `h2`.
    pub h2: bool,
    /// `http/1.1`.
    pub http11: bool,
    /// Where the line is.
    pub span: Span,
}

/// `SSLVerifyClient`: whether a client must present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslVerifyClient {
    /// `none` (the default): no certificate asked for.
    None,
    /// `optional`: asked for; a client without one is served, one with a certificate the
    /// CAs did not sign is refused.
    Optional,
    /// `require`: a certificate the CAs signed is needed to finish the handshake.
    Require,
}

/// A file a mod_ssl directive names: the path as written (relative ones start from
/// `ServerRoot`, [`Config::server_root`](crate::Config::server_root)), and where.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SslFile {
    /// The path as written.
    pub path: PathBuf,
    /// The place of the path in the configuration.
    pub span: Span,
}

/// The TLS versions `SSLProtocol` leaves that rustls offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SslProtocols {
    /// `TLSv1.2`.
    pub tls12: bool,
    /// `TLSv1.3`.
    pub tls13: bool,
    /// Where the line is.
    pub span: Span,
}

impl SslServer {
    /// Whether `SSLEngine On` is in force.
    #[must_use]
    pub fn is_on(&self) -> bool {
        matches!(self.engine, Some((true, _)))
    }

    /// Sets what `other` gives (a later directive overrides an earlier one).
    pub(crate) fn merge(&mut self, other: Self) {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if other.$field.is_some() {
                    self.$field = other.$field;
                }
            )*};
        }
        take!(
            engine,
            certificate_file,
            certificate_key_file,
            certificate_chain_file,
            protocol,
            honor_cipher_order,
            verify_client,
            ca_certificate_file,
            protocols
        );
    }

    /// A virtual host's settings over the main server's (mod_ssl's server merge: each
    /// directive the virtual host does not give is the main server's, `SSLEngine` too).
    #[must_use]
    pub(crate) fn merged(own: &Self, main: &Self) -> Self {
        let mut merged = main.clone();
        merged.merge(own.clone());
        merged
    }
}

/// Reads one of [`DIRECTIVES`] (`lower` is its lower-case name); `current` is what the
/// server has so far (a second certificate is refused).
pub(crate) fn parse(
    span: Span,
    lower: &str,
    args: &[Token],
    current: &SslServer,
) -> Result<SslServer, ParseError> {
    let mut set = SslServer::default();
    let file = |directive: &str| {
        one(span, directive, args).map(|v| SslFile {
            path: PathBuf::from(&v.text),
            span: v.span,
        })
    };
    match lower {
        "sslengine" => {
            let v = one(span, "SSLEngine", args).map_err(|_| {
                invalid(
                    span,
                    "SSLEngine with addresses is not supported: write SSLEngine On inside the <VirtualHost> of that address".to_owned(),
                )
            })?;
            let on = if v.text.eq_ignore_ascii_case("on") {
                true
            } else if v.text.eq_ignore_ascii_case("off") {
                false
            } else if v.text.eq_ignore_ascii_case("optional") {
                return Err(invalid(
                    v.span,
                    "SSLEngine optional is not supported: the upgrade of a plain connection to TLS (RFC 2817) is not done; write SSLEngine On".to_owned(),
                ));
            } else {
                return Err(invalid(
                    v.span,
                    format!(
                        "SSLEngine {} is not supported: write On or Off (inside the <VirtualHost> of the address)",
                        v.text
                    ),
                ));
            };
            set.engine = Some((on, span));
        }
        "sslcertificatefile" => {
            if current.certificate_file.is_some() {
                return Err(invalid(
                    span,
                    "a second SSLCertificateFile in one server is not supported: one certificate per server is served (an RSA and an ECDSA certificate side by side are not); keep one".to_owned(),
                ));
            }
            set.certificate_file = Some(file("SSLCertificateFile")?);
        }
        "sslcertificatekeyfile" => {
            if current.certificate_key_file.is_some() {
                return Err(invalid(
                    span,
                    "a second SSLCertificateKeyFile in one server is not supported: one certificate and key per server are served; keep one".to_owned(),
                ));
            }
            set.certificate_key_file = Some(file("SSLCertificateKeyFile")?);
        }
        "sslcertificatechainfile" => {
            set.certificate_chain_file = Some(file("SSLCertificateChainFile")?);
        }
        "sslhonorcipherorder" => {
            let v = one(span, "SSLHonorCipherOrder", args)?;
            set.honor_cipher_order = Some(if v.text.eq_ignore_ascii_case("on") {
                true
            } else if v.text.eq_ignore_ascii_case("off") {
                false
            } else {
                return Err(invalid(
                    v.span,
                    format!(
                        "invalid value \"{}\" for SSLHonorCipherOrder: must be On or Off",
                        v.text
                    ),
                ));
            });
        }
        "sslprotocol" => set.protocol = Some(protocols(span, args)?),
        "protocols" => {
            if args.is_empty() {
                return Err(ParseError::new(
                    span,
                    ParseErrorKind::Syntax,
                    "Protocols takes one or more protocols (h2, h2c, http/1.1)",
                ));
            }
            let mut alpn = AlpnProtocols {
                h2: false,
                http11: false,
                span,
            };
            for arg in args {
                match arg.text.to_ascii_lowercase().as_str() {
                    "h2" => alpn.h2 = true,
                    "http/1.1" => alpn.http11 = true,
                    "h2c" => {}
                    _ => {
                        return Err(invalid(
                            arg.span,
                            format!(
                            "Protocols {}: not served by proxy-balancer (h2, h2c and http/1.1 are)",
                            arg.text
                        ),
                        ))
                    }
                }
            }
            set.protocols = Some(alpn);
        }
        "sslcacertificatefile" => {
            set.ca_certificate_file = Some(file("SSLCACertificateFile")?);
        }
        "sslverifyclient" => {
            let v = one(span, "SSLVerifyClient", args)?;
            let level = match v.text.to_ascii_lowercase().as_str() {
                "none" => SslVerifyClient::None,
                "optional" => SslVerifyClient::Optional,
                "require" => SslVerifyClient::Require,
                "optional_no_ca" => {
                    return Err(invalid(
                        v.span,
                        "SSLVerifyClient optional_no_ca is not supported: a certificate no configured CA signed is never accepted here; write optional or require with SSLCACertificateFile".to_owned(),
                    ))
                }
                _ => {
                    return Err(invalid(
                        v.span,
                        format!(
                            "SSLVerifyClient: Invalid argument '{}' (none, optional, require)",
                            v.text
                        ),
                    ))
                }
            };
            set.verify_client = Some((level, span));
        }
        _ => {}
    }
    Ok(set)
}

/// `SSLProtocol [+|-]protocol …` as mod_ssl reads it: a word without `+` or `-` sets the
/// list, `+` adds, `-` removes; `all` is every TLS version.
fn protocols(span: Span, args: &[Token]) -> Result<SslProtocols, ParseError> {
    // TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (SSLv3: never offered, tracked for `all -SSLv3`).
    const TLS12: u8 = 1;
    const TLS13: u8 = 2;
    const OLD: u8 = 4;
    if args.is_empty() {
        return Err(ParseError::new(
            span,
            ParseErrorKind::Syntax,
            "SSLProtocol takes one or more [+|-]protocol (all, TLSv1.2, TLSv1.3 …)",
        ));
    }
    let mut set = 0u8;
    for arg in args {
        let (action, word) = match arg.text.as_bytes().first() {
            Some(b'+') => (Some(true), &arg.text[1..]),
            Some(b'-') => (Some(false), &arg.text[1..]),
            _ => (None, arg.text.as_str()),
        };
        let bits = match word.to_ascii_lowercase().as_str() {
            "all" => TLS12 | TLS13 | OLD,
            "sslv3" | "tlsv1" | "tlsv1.1" => OLD,
            "tlsv1.2" => TLS12,
            "tlsv1.3" => TLS13,
            _ => {
                return Err(invalid(
                    arg.span,
                    format!("SSLProtocol: Illegal protocol '{word}' (all, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)"),
                ))
            }
        };
        match action {
            Some(true) => set |= bits,
            // `-SSLv3` removes nothing offered here: the old versions are never offered.
            Some(false) if bits == OLD => {}
            Some(false) => set &= !bits,
            None => set = bits,
        }
    }
    let protocols = SslProtocols {
        tls12: set & TLS12 != 0,
        tls13: set & TLS13 != 0,
        span,
    };
    if !protocols.tls12 && !protocols.tls13 {
        return Err(invalid(
            span,
            "SSLProtocol leaves no TLS version proxy-balancer offers: rustls speaks TLSv1.2 and TLSv1.3 only (TLSv1, TLSv1.1 and SSLv3 are not offered); add TLSv1.2".to_owned(),
        ));
    }
    Ok(protocols)
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn ssl(text: &str) -> super::SslServer {
        parse(text).unwrap().server.ssl
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn protocols_as_mod_ssl_reads_them() {
        let p = |line| ssl(line).protocol.unwrap();
        let all = p("SSLProtocol all -SSLv3");
        assert!(all.tls12 && all.tls13);
        let only12 = p("SSLProtocol -all +TLSv1.2");
        assert!(only12.tls12 && !only12.tls13);
        let only13 = p("SSLProtocol TLSv1.3");
        assert!(!only13.tls12 && only13.tls13);
        // A word without a sign replaces the list.
        let replaced = p("SSLProtocol TLSv1.3 TLSv1.2");
        assert!(replaced.tls12 && !replaced.tls13);
        assert!(error("SSLProtocol TLSv1 TLSv1.1").contains("no TLS version"));
        assert!(error("SSLProtocol -all").contains("no TLS version"));
        assert!(error("SSLProtocol SSLv2").contains("Illegal protocol 'SSLv2'"));
        assert!(error("SSLProtocol").contains("takes one or more"));
    }

    #[test]
    fn engine_certificates_and_errors() {
        let s = ssl("SSLEngine on\nSSLCertificateFile /a.pem\nSSLCertificateKeyFile k.pem\nSSLCertificateChainFile c.pem\nSSLHonorCipherOrder on");
        assert!(s.is_on());
        let (on, span) = s.engine.unwrap();
        assert!(on);
        assert_eq!((span.line, span.column), (1, 1));
        let cert = s.certificate_file.unwrap();
        assert_eq!(cert.path.to_str(), Some("/a.pem"));
        assert_eq!((cert.span.line, cert.span.column), (2, 20));
        assert_eq!(s.honor_cipher_order, Some(true));
        assert!(!ssl("SSLEngine Off").is_on());
        let v = ssl("SSLVerifyClient Require\nSSLCACertificateFile ca.pem");
        assert_eq!(
            v.verify_client.map(|(l, _)| l),
            Some(super::SslVerifyClient::Require)
        );
        assert_eq!(v.ca_certificate_file.unwrap().path.to_str(), Some("ca.pem"));
        let p = ssl("Protocols h2c HTTP/1.1").protocols.unwrap();
        assert!(p.http11 && !p.h2);
        let v = ssl("SSLVerifyClient optional");
        assert_eq!(
            v.verify_client.map(|(l, _)| l),
            Some(super::SslVerifyClient::Optional)
        );
        for (text, why) in [
            ("SSLEngine optional", "RFC 2817"),
            ("SSLEngine *:443", "write On or Off"),
            ("SSLEngine *:443 *:8443", "with addresses"),
            ("SSLEngine", "with addresses"),
            (
                "SSLCertificateFile a\nSSLCertificateFile b",
                "a second SSLCertificateFile",
            ),
            ("SSLCertificateKeyFile", "takes one argument"),
            ("SSLHonorCipherOrder maybe", "must be On or Off"),
            (
                "SSLVerifyClient optional_no_ca",
                "optional_no_ca is not supported",
            ),
            ("SSLVerifyClient always", "Invalid argument 'always'"),
        ] {
            let e = error(text);
            assert!(e.contains(why), "{text}: {e}");
        }
        // Each line in its own server: a virtual host may name its own certificate.
        let config = parse(
            "SSLCertificateFile a\n<VirtualHost *:443>\nSSLCertificateFile b\n</VirtualHost>",
        )
        .unwrap();
        let vh = config.host_settings(Some(0)).ssl;
        assert_eq!(vh.certificate_file.unwrap().path.to_str(), Some("b"));
    }

    #[test]
    fn a_virtual_host_takes_the_main_servers_settings_it_does_not_give() {
        // Apache 2.4.71 on loopback: `SSLEngine On` and a certificate in the main server, a
        // `<VirtualHost 127.0.0.1:18503>` with no SSL line served TLS with the main
        // server's certificate; one with only its own SSLCertificateFile/KeyFile served TLS
        // with its own (mod_ssl's server merge).
        let config = parse(
            "SSLEngine On\nSSLCertificateFile a\nSSLCertificateKeyFile ak\n\
             <VirtualHost *:443>\n</VirtualHost>\n\
             <VirtualHost *:8443>\nSSLCertificateFile b\nSSLCertificateKeyFile bk\n</VirtualHost>\n\
             <VirtualHost *:80>\nSSLEngine Off\n</VirtualHost>\n",
        )
        .unwrap();
        let first = config.host_settings(Some(0)).ssl;
        assert!(first.is_on());
        assert_eq!(first.certificate_file.unwrap().path.to_str(), Some("a"));
        let second = config.host_settings(Some(1)).ssl;
        assert!(second.is_on());
        assert_eq!(second.certificate_file.unwrap().path.to_str(), Some("b"));
        assert_eq!(
            second.certificate_key_file.unwrap().path.to_str(),
            Some("bk")
        );
        assert!(!config.host_settings(Some(2)).ssl.is_on());
    }
}
