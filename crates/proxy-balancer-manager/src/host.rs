//! Whether a request names this server: the `Host` check that keeps a DNS-rebound page from
//! changing anything, and the `Origin`/`Referer` check made against the verified name.
//!
//! A DNS-rebinding attack serves a page from `evil.example`, then points `evil.example` at
//! the proxy's address: the browser takes the proxy for the page's own site and sends its
//! requests with `Host: evil.example`. The name is the only thing the attacker cannot make
//! right, so a change is taken only when the request's host names this server.

use std::fmt;
use std::net::IpAddr;

use http::{header, HeaderMap, Uri};
use proxy_balancer_core::LocalAddr;

/// The ports a client leaves out of `Host` (`http` and `https`): a `Host` with one of them,
/// or with none, may have come through a port forward or a TLS terminator in front of us,
/// so it is matched on its name alone.
const DEFAULT_PORTS: [u16; 2] = [80, 443];

// ===== host and port =====

/// A host as a request names it: an address, or a lower-cased name without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// `host[:port]`, as in `Host`, `:authority` or an `Origin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authority {
    pub(crate) host: Host,
    pub(crate) port: Option<u16>,
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// Parses `host[:port]`: a name of letters, digits, `-`, `_` and `.` (one trailing dot is
/// dropped, as Apache does), an IPv4 address, or an IPv6 address in brackets; a port of 1
/// to 5 digits up to 65535. `wildcards` also lets `*` and `?` into a name (`ServerAlias`).
fn parse_host_port(text: &str, wildcards: bool) -> Option<Authority> {
    // A request's host is held to the grammar the server admits requests by; a
    // `ServerAlias` pattern (`*`, `?`) is not a host yet.
    if !wildcards && !proxy_balancer_core::host::is_valid_host(text.as_bytes()) {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = v6.parse().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        let allowed = |b: u8| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.')
                || (wildcards && matches!(b, b'*' | b'?'))
        };
        if host.is_empty() || !host.bytes().all(allowed) || host.contains("..") {
            return None;
        }
        let host = match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) => Host::Name(host.to_ascii_lowercase()),
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&p| p != 0)?)
        }
        Some(_) => return None,
    };
    Some(Authority { host, port })
}

// ===== server names =====

/// A name this server answers to, from [`server_names`](crate::BalancerManagerBuilder::server_names).
#[derive(Clone, Debug)]
pub(crate) struct ServerName {
    /// The host, or a `ServerAlias` pattern with `*` and `?`.
    host: Host,
    /// The port given with the name (`ServerName www.example.com:8443`), if any.
    port: Option<u16>,
}

/// A name given to [`server_names`](crate::BalancerManagerBuilder::server_names) that cannot
/// name a server, and is therefore not used (see
/// [`BalancerManager::refused_server_names`](crate::BalancerManager::refused_server_names)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("server name {name:?} is not used: {reason}")]
#[non_exhaustive]
pub struct ServerNameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ServerName {
    /// Parses `[scheme://]host[:port]` (Apache's `ServerName` form; `ServerAlias` patterns
    /// with `*` and `?` too).
    pub(crate) fn parse(given: &str) -> Result<Self, ServerNameError> {
        let refuse = |reason| ServerNameError {
            name: given.to_owned(),
            reason,
        };
        let text = given.trim();
        let text = match text.split_once("://") {
            Some((scheme, rest)) => {
                if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(refuse("the part before `://` is not a scheme"));
                }
                rest
            }
            None => text,
        };
        if text.is_empty() {
            return Err(refuse("it is empty"));
        }
        let authority = parse_host_port(text, true).ok_or_else(|| {
            refuse(
                "not `[scheme://]host[:port]` (a host name of letters, digits, `-`, `_`, `.`, \
                 `*` and `?`, an IPv4 address or a bracketed IPv6 address; a port from 1 to 65535)",
            )
        })?;
        Ok(Self {
            host: authority.host,
            port: authority.port,
        })
    }

    fn names(&self, host: &Host) -> bool {
        match (&self.host, host) {
            (Host::Ip(a), Host::Ip(b)) => canonical(*a) == canonical(*b),
            (Host::Name(pattern), Host::Name(name)) => wildcard_match(pattern, name),
            _ => false,
        }
    }
}

/// `*` matches any run of characters (dots included), `?` any one, as Apache's
/// `ap_strcasecmp_match` does for `ServerAlias` (both sides are lower-cased already).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// An IPv4-mapped IPv6 address as the IPv4 one (a dual-stack listener reports
/// `::ffff:127.0.0.1` for a client of `127.0.0.1`).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

// ===== the check =====

/// Why a change was refused before its form was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostRefusal {
    /// No `Host` header and no authority in the request target.
    Missing,
    /// More than one `Host` header.
    Several,
    /// Not `host[:port]`.
    Malformed(String),
    /// A well-formed host that does not name this server.
    NotThisServer {
        host: String,
        listening: Option<String>,
    },
    /// No [`LocalAddr`] and no configured names: nothing to check against.
    NotConfigured,
    /// An `Origin` or `Referer` names another site than the verified `Host`.
    OtherOrigin { header: &'static str },
}

impl HostRefusal {
    /// A stable machine name, for the JSON API.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Missing | Self::Several | Self::Malformed(_) => "bad_host",
            Self::NotThisServer { .. } => "host_not_this_server",
            Self::NotConfigured => "server_names_not_configured",
            Self::OtherOrigin { .. } => "cross_origin",
        }
    }
}

impl fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HOW: &str = "names other than the address the client reached are configured with \
                           BalancerManagerBuilder::server_names (ServerName and ServerAlias)";
        match self {
            Self::Missing => f.write_str(
                "change refused: the request names no host (no Host header and no authority)",
            ),
            Self::Several => f.write_str("change refused: the request has more than one Host"),
            Self::Malformed(host) => write!(
                f,
                "change refused: the Host {host:?} is not a host name or address with an \
                 optional port"
            ),
            Self::NotThisServer { host, listening } => {
                write!(
                    f,
                    "change refused: the Host {host:?} does not name this server"
                )?;
                if let Some(listening) = listening {
                    write!(f, " (the request reached {listening})")?;
                }
                write!(
                    f,
                    "; changes are taken only for this server's own names, against DNS \
                     rebinding: {HOW}"
                )
            }
            Self::NotConfigured => write!(
                f,
                "change refused: this balancer-manager cannot tell whether the Host names this \
                 server, because the request carries no LocalAddr (the server that accepted it \
                 did not add one) and no server names are configured; configure them with \
                 BalancerManagerBuilder::server_names([\"proxy.example.com\"]), or serve the \
                 manager with proxy-balancer's server, which adds LocalAddr"
            ),
            Self::OtherOrigin { header } => write!(
                f,
                "change refused: the {header} names another site than this server's Host"
            ),
        }
    }
}

/// The request's host: the authority of the target (HTTP/2 `:authority`, or an HTTP/1.1
/// absolute-form target, which RFC 9112 §3.2.2 says wins over `Host`), else the `Host`
/// header, which must then be single.
fn request_authority(uri: &Uri, headers: &HeaderMap) -> Result<Authority, HostRefusal> {
    let text = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => {
            let mut hosts = headers.get_all(header::HOST).iter();
            let host = hosts.next().ok_or(HostRefusal::Missing)?;
            if hosts.next().is_some() {
                return Err(HostRefusal::Several);
            }
            host.to_str().map_err(|_| {
                HostRefusal::Malformed(String::from_utf8_lossy(host.as_bytes()).into_owned())
            })?
        }
    };
    // A userinfo (`user@host`) never names a server.
    parse_host_port(text, false).ok_or_else(|| HostRefusal::Malformed(text.to_owned()))
}

/// Whether `authority` names this server, reached at `local` (if known), with the
/// configured `names`.
///
/// - The host: the address the client reached ([`LocalAddr`]); `localhost` and loopback
///   addresses when that address is loopback; or a configured name (`*` and `?` patterns
///   too).
/// - The port: none, or 80 or 443, matches on the name alone; any other must be the port the
///   client reached, or the one given with the configured name. Without a [`LocalAddr`],
///   the port of a configured name without one is not checked.
fn names_this_server(
    authority: &Authority,
    local: Option<LocalAddr>,
    names: &[ServerName],
) -> bool {
    let default_port = authority.port.map_or(true, |p| DEFAULT_PORTS.contains(&p));
    let reached_port = |port: u16| authority.port == Some(port);
    if let Some(LocalAddr(local)) = local {
        let local_ip = canonical(local.ip());
        let port_ok = default_port || reached_port(local.port());
        let host_ok = match &authority.host {
            Host::Ip(ip) => {
                let ip = canonical(*ip);
                ip == local_ip || (local_ip.is_loopback() && ip.is_loopback())
            }
            Host::Name(name) => local_ip.is_loopback() && name == "localhost",
        };
        if host_ok && port_ok {
            return true;
        }
    }
    names.iter().any(|name| {
        name.names(&authority.host)
            && (default_port
                || name.port.is_some_and(reached_port)
                || match local {
                    Some(LocalAddr(local)) => reached_port(local.port()),
                    None => name.port.is_none(),
                })
    })
}

/// The `scheme://authority` at the start of an `Origin` or `Referer`, with the scheme's
/// default port when none is written.
fn origin_authority(value: &str) -> Option<(Authority, u16)> {
    let (scheme, rest) = value.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = parse_host_port(authority, false)?;
    Some((authority, default))
}

/// Over TLS (the request carries a `TlsInfo`), an `Origin` or `Referer` naming an
/// `http://` page is another origin than this HTTPS one (a page served in clear, which a
/// network attacker may have written): the change is refused.
pub(crate) fn check_tls_origin(headers: &HeaderMap) -> Result<(), HostRefusal> {
    for (name, label) in [(header::ORIGIN, "Origin"), (header::REFERER, "Referer")] {
        let clear = headers.get(&name).is_some_and(|value| {
            value
                .as_bytes()
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"http://"))
        });
        if clear {
            return Err(HostRefusal::OtherOrigin { header: label });
        }
    }
    Ok(())
}

/// The checks a change must pass before its form is read: the request's host names this
/// server, and an `Origin` or `Referer` that is present names the same host and port (a
/// browser sends `Origin` on every cross-site POST; curl and scripts send neither). Returns
/// the verified host.
pub(crate) fn check_change(
    uri: &Uri,
    headers: &HeaderMap,
    local: Option<LocalAddr>,
    names: &[ServerName],
) -> Result<Authority, HostRefusal> {
    if local.is_none() && names.is_empty() {
        return Err(HostRefusal::NotConfigured);
    }
    let authority = request_authority(uri, headers)?;
    if !names_this_server(&authority, local, names) {
        return Err(HostRefusal::NotThisServer {
            host: authority.to_string(),
            listening: local.map(|LocalAddr(l)| l.to_string()),
        });
    }
    for (name, label) in [(header::ORIGIN, "Origin"), (header::REFERER, "Referer")] {
        let Some(value) = headers.get(&name) else {
            continue;
        };
        let same =
            value
                .to_str()
                .ok()
                .and_then(origin_authority)
                .is_some_and(|(origin, default)| {
                    origin.host == authority.host
                        && origin.port.unwrap_or(default) == authority.port.unwrap_or(default)
                });
        if !same {
            return Err(HostRefusal::OtherOrigin { header: label });
        }
    }
    Ok(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::HeaderValue;

    fn local(s: &str) -> Option<LocalAddr> {
        Some(LocalAddr(s.parse().unwrap()))
    }

    fn names(list: &[&str]) -> Vec<ServerName> {
        list.iter().map(|n| ServerName::parse(n).unwrap()).collect()
    }

    fn check(
        host: &str,
        local: Option<LocalAddr>,
        names: &[ServerName],
    ) -> Result<Authority, HostRefusal> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        check_change(
            &Uri::from_static("/balancer-manager"),
            &headers,
            local,
            names,
        )
    }

    #[test]
    fn hosts_parse_strictly() {
        let ok = |s: &str| parse_host_port(s, false).unwrap().to_string();
        assert_eq!(ok("Proxy.Example.:8080"), "proxy.example:8080");
        assert_eq!(ok("127.0.0.1"), "127.0.0.1");
        assert_eq!(ok("[::1]:80"), "[::1]:80");
        for bad in [
            "",
            ":80",
            "a:",
            "a:0",
            "a:65536",
            "a:+80",
            "a:123456",
            "a b",
            "user@a",
            "a/b",
            "[::1",
            "[::1]x",
            "[nope]",
            "a..b",
            "*.a",
            "a:80:80",
            "ex\u{e4}mple",
        ] {
            assert_eq!(parse_host_port(bad, false), None, "{bad:?}");
        }
        // Not an IPv4 address; and, as the server's admission holds it (its last label
        // starts with a digit), not a host at all.
        let parsed = parse_host_port("0x7f.1", false);
        assert!(!matches!(
            parsed.as_ref().map(|a| &a.host),
            Some(Host::Ip(_))
        ));
        assert_eq!(parsed, None);
    }

    #[test]
    fn the_address_reached_and_loopback_names() {
        let at = local("127.0.0.1:8080");
        for good in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST.:8080",
            "127.0.0.1",
            "localhost:80",
            "[::1]:8080",
        ] {
            assert!(check(good, at, &[]).is_ok(), "{good}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "0.0.0.0:8080",
            "localhost.evil.example:8080",
            "proxy.localhost:8080",
        ] {
            assert!(
                matches!(check(bad, at, &[]), Err(HostRefusal::NotThisServer { .. })),
                "{bad}"
            );
        }
        // Not loopback: localhost is not this server, the address is.
        let at = local("192.0.2.10:8080");
        assert!(check("192.0.2.10:8080", at, &[]).is_ok());
        assert!(check("localhost:8080", at, &[]).is_err());
        assert!(check("127.0.0.1:8080", at, &[]).is_err());
        assert!(
            check("192.0.2.11:8080", at, &[]).is_err(),
            "the right port, another address"
        );
        // A dual-stack listener reports the IPv4-mapped address.
        assert!(check("192.0.2.10:8080", local("[::ffff:192.0.2.10]:8080"), &[]).is_ok());
    }

    #[test]
    fn configured_names() {
        let at = local("192.0.2.10:8080");
        let names = names(&[
            "www.example.com",
            "https://*.example.org",
            "fwd.example.net:9000",
            "[2001:db8::1]",
        ]);
        for good in [
            "www.example.com",
            "www.example.com:8080",
            "www.example.com:443",
            "a.b.example.org:8080",
            "fwd.example.net:9000",
            "fwd.example.net:8080",
            "fwd.example.net",
            "[2001:db8::1]:8080",
        ] {
            assert!(check(good, at, &names).is_ok(), "{good}");
        }
        for bad in [
            "www.example.com:9000",
            "example.org",
            "www.example.com.evil:8080",
            "fwd.example.net:9001",
        ] {
            assert!(check(bad, at, &names).is_err(), "{bad}");
        }
        // Without a LocalAddr: the names, any port unless the name gives one.
        assert!(check("www.example.com:1234", None, &names).is_ok());
        assert!(check("fwd.example.net:1234", None, &names).is_err());
        assert!(check("127.0.0.1:8080", None, &names).is_err());
        assert_eq!(
            check("127.0.0.1:8080", None, &[]),
            Err(HostRefusal::NotConfigured)
        );
    }

    #[test]
    fn bad_server_names_are_reported() {
        for bad in [
            "",
            "  ",
            "a b",
            "ht-tp://x",
            "x:0",
            "x:99999",
            "x/y",
            "[::1",
        ] {
            assert!(ServerName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ServerName::parse(" https://WWW.example.com:443 ").is_ok());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.example.com", "a.example.com"));
        assert!(wildcard_match("*.example.com", "a.b.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(wildcard_match("www?.example.com", "www1.example.com"));
        assert!(!wildcard_match("www?.example.com", "www.example.com"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a*b*c", "aXbYbZc"));
        assert!(!wildcard_match("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn over_tls_a_clear_text_origin_is_another_site() {
        let with = |name: &'static str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).expect("valid"));
            check_tls_origin(&headers)
        };
        assert!(with("origin", "https://proxy").is_ok());
        assert!(with("referer", "https://proxy/bm").is_ok());
        assert_eq!(
            with("origin", "HTTP://proxy"),
            Err(HostRefusal::OtherOrigin { header: "Origin" })
        );
        assert_eq!(
            with("referer", "http://proxy/bm"),
            Err(HostRefusal::OtherOrigin { header: "Referer" })
        );
        assert!(check_tls_origin(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn origins_are_compared_with_the_verified_host() {
        let at = local("127.0.0.1:8080");
        let with = |host: &str, origin: (&'static str, &str)| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            headers.insert(origin.0, HeaderValue::from_str(origin.1).unwrap());
            check_change(&Uri::from_static("/bm"), &headers, at, &names(&["proxy"]))
        };
        assert!(with("127.0.0.1:8080", ("origin", "http://127.0.0.1:8080")).is_ok());
        assert!(with("proxy", ("origin", "http://proxy")).is_ok());
        assert!(with("proxy:80", ("origin", "http://proxy")).is_ok());
        assert!(with("proxy", ("origin", "https://proxy")).is_ok());
        assert!(with(
            "127.0.0.1:8080",
            ("referer", "http://127.0.0.1:8080/bm?b=x")
        )
        .is_ok());
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "http://localhost:8080",
            "null",
            "file://",
            "http://user@127.0.0.1:8080",
        ] {
            assert_eq!(
                with("127.0.0.1:8080", ("origin", origin)),
                Err(HostRefusal::OtherOrigin { header: "Origin" }),
                "{origin}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever a client or a configuration gives, the parsers and the check answer
        /// without a panic, and a host that passes names this server.
        #[test]
        fn hostile_hosts_never_panic(
            host in "[-a-zA-Z0-9.:\\[\\]@*?_%/ \u{e9}]{0,40}",
            name in "[-a-zA-Z0-9.:\\[\\]*?_/]{0,30}",
            origin in "(https?://)?[-a-z0-9.:\\[\\]@/]{0,30}",
        ) {
            let _ = parse_host_port(&host, false);
            let names: Vec<ServerName> = ServerName::parse(&name).into_iter().collect();
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&host) {
                headers.insert(header::HOST, value);
            }
            if let Ok(value) = HeaderValue::from_str(&origin) {
                headers.insert(header::ORIGIN, value);
            }
            let at = local("127.0.0.1:8080");
            if let Ok(authority) = check_change(&Uri::from_static("/bm"), &headers, at, &names) {
                proptest::prop_assert!(names_this_server(&authority, at, &names));
            }
        }
    }

    #[test]
    fn the_target_authority_wins_over_host() {
        let at = local("127.0.0.1:8080");
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let uri = Uri::from_static("http://evil.example:8080/bm");
        assert!(check_change(&uri, &headers, at, &[]).is_err());
        let uri = Uri::from_static("http://127.0.0.1:8080/bm");
        headers.insert(header::HOST, HeaderValue::from_static("evil.example"));
        assert!(check_change(&uri, &headers, at, &[]).is_ok());
        // Two Hosts, none: refused.
        let mut headers = HeaderMap::new();
        assert_eq!(
            check_change(&Uri::from_static("/bm"), &headers, at, &[]),
            Err(HostRefusal::Missing)
        );
        headers.append(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.append(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(
            check_change(&Uri::from_static("/bm"), &headers, at, &[]),
            Err(HostRefusal::Several)
        );
    }
}
