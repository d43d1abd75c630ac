//! Which server answers a request: Apache's virtual host selection, precomputed.
//!
//! Apache first takes the `<VirtualHost>`s whose address matches the address the
//! connection reached (an exact IP address beats `*`/`_default_`), then, among those, the
//! first whose `ServerName` or a `ServerAlias` matches the request's host; when none does,
//! the first of them; when no virtual host has the address, the main server.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::header::HOST;
use http::Request;

use crate::apache_config::Config;
use crate::LocalAddr;

use super::SiteError;

/// One address of a `<VirtualHost>`: `*`, `_default_`, an IP address, each with an optional
/// port (`None`: any port, as `:*` or no port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VhostAddr {
    ip: Option<IpAddr>,
    port: Option<u16>,
}

impl VhostAddr {
    fn port_matches(self, port: u16) -> bool {
        self.port.map_or(true, |p| p == port)
    }
}

/// A name a virtual host answers to: its `ServerName`, or a `ServerAlias` pattern (`*` and
/// `?`), lower-case, without port or trailing dot.
#[derive(Clone, Debug)]
struct NamePattern(String);

impl NamePattern {
    fn matches(&self, host: &[u8]) -> bool {
        glob(self.0.as_bytes(), host)
    }
}

/// `*` (any run) and `?` (one byte) against a host, ASCII case-insensitively (Apache's
/// `ap_strcasecmp_match`); no allocation.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One `<VirtualHost>`, as selection needs it.
#[derive(Clone, Debug)]
struct Vhost {
    addrs: Vec<VhostAddr>,
    names: Vec<NamePattern>,
    /// For messages: the addresses as written, the `ServerName`, the line.
    written: String,
    server_name: Option<String>,
    line: u32,
}

/// The virtual hosts of a configuration, ready to pick one per request without allocating.
#[derive(Clone, Debug, Default)]
pub(super) struct VhostTable {
    vhosts: Vec<Vhost>,
}

/// Which addresses of the virtual hosts a local address selects from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The address is unknown (no [`LocalAddr`]): every virtual host is a candidate.
    All,
    /// The virtual hosts with exactly this address: an IP address (`None`: `*` or
    /// `_default_`) and a port (`None`: any port).
    Only(Option<IpAddr>, Option<u16>),
}

impl VhostTable {
    /// Reads the `<VirtualHost>` blocks of a configuration.
    ///
    /// # Errors
    ///
    /// An address that is not `*`, `_default_`, an IPv4 address or a bracketed IPv6
    /// address, with an optional `:port` or `:*` (Apache resolves host names at start-up;
    /// not done here).
    pub(super) fn new(config: &Config) -> Result<Self, SiteError> {
        let mut vhosts = Vec::with_capacity(config.virtual_hosts.len());
        for (i, vhost) in config.virtual_hosts.iter().enumerate() {
            let line = vhost.span.line;
            let addrs = vhost
                .addresses
                .iter()
                .map(|a| parse_addr(a).ok_or_else(|| SiteError::Unsupported {
                    line,
                    reason: format!(
                        "<VirtualHost {a}>: the address must be *, _default_, an IPv4 address or [an IPv6 address], with an optional :port or :* (host names are not resolved)"
                    ),
                }))
                .collect::<Result<Vec<_>, _>>()?;
            let settings = config.host_settings(Some(i));
            let server_name = settings.server_name.as_ref().map(|n| n.host.clone());
            let mut names = Vec::new();
            if let Some(name) = &server_name {
                names.push(NamePattern(normalize_name(name)));
            }
            names.extend(
                settings
                    .server_aliases
                    .iter()
                    .map(|a| NamePattern(normalize_name(a))),
            );
            vhosts.push(Vhost {
                addrs,
                names,
                written: vhost.addresses.join(" "),
                server_name,
                line,
            });
        }
        Ok(Self { vhosts })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.vhosts.is_empty()
    }

    fn mode(&self, local: Option<SocketAddr>) -> Mode {
        match local {
            None => Mode::All,
            Some(local) => self.mode_for(Some(canonical_ip(local.ip())), local.port()),
        }
    }

    /// The candidates for a connection to `ip` (`None`: an address no virtual host names)
    /// and `port`: Apache's `find_ipaddr`, then `find_default_server`: the address with the
    /// port, the address with any port, `*` with the port, `*` with any port.
    fn mode_for(&self, ip: Option<IpAddr>, port: u16) -> Mode {
        let has = |ip: Option<IpAddr>, port: Option<u16>| {
            self.vhosts
                .iter()
                .any(|v| v.addrs.iter().any(|a| a.ip == ip && a.port == port))
        };
        let exact = ip.map(|ip| [(Some(ip), Some(port)), (Some(ip), None)]);
        exact
            .into_iter()
            .flatten()
            .chain([(None, Some(port)), (None, None)])
            .find(|&(ip, port)| has(ip, port))
            .map_or(Mode::Only(None, None), |(ip, port)| Mode::Only(ip, port))
    }

    fn candidate(vhost: &Vhost, mode: Mode) -> bool {
        match mode {
            Mode::All => true,
            Mode::Only(ip, port) => vhost.addrs.iter().any(|a| a.ip == ip && a.port == port),
        }
    }

    /// The server for a request: `0` for the main server, `i + 1` for the virtual host
    /// `i`.
    pub(super) fn select<B>(&self, request: &Request<B>) -> usize {
        let local = request.extensions().get::<LocalAddr>().map(|l| l.0);
        let mode = self.mode(local);
        let host = request_host(request);
        let mut default = None;
        for (i, vhost) in self.vhosts.iter().enumerate() {
            if !Self::candidate(vhost, mode) {
                continue;
            }
            if let Some(host) = host {
                if vhost.names.iter().any(|n| n.matches(host)) {
                    return i + 1;
                }
            }
            default.get_or_insert(i + 1);
        }
        default.unwrap_or(0)
    }

    /// The servers a connection accepted on `listen` may reach, in Apache's order (`i + 1`
    /// for the virtual host `i`; the first is the default): the virtual hosts of its
    /// address (for an unspecified address, those of `*` and the port), else the main
    /// server (`0`).
    pub(super) fn servers_for(&self, listen: SocketAddr) -> Vec<usize> {
        let mode = if listen.ip().is_unspecified() {
            self.mode_for(None, listen.port())
        } else {
            self.mode(Some(listen))
        };
        let servers: Vec<usize> = (0..self.vhosts.len())
            .filter(|&i| Self::candidate(&self.vhosts[i], mode))
            .map(|i| i + 1)
            .collect();
        if servers.is_empty() {
            vec![0]
        } else {
            servers
        }
    }

    /// The virtual hosts (`i + 1`) written with an exact IP address and a port matching
    /// `port`: the ones a listener on an unspecified address may also reach.
    pub(super) fn exact_ip_servers(&self, port: u16) -> Vec<usize> {
        (0..self.vhosts.len())
            .filter(|&i| {
                self.vhosts[i]
                    .addrs
                    .iter()
                    .any(|a| a.ip.is_some() && a.port_matches(port))
            })
            .map(|i| i + 1)
            .collect()
    }

    /// Whether the server `server` (`i + 1` for the virtual host `i`) answers to the name
    /// `host` (its `ServerName` or a `ServerAlias`): how a TLS client's SNI picks it.
    pub(super) fn names(&self, server: usize, host: &[u8]) -> bool {
        server
            .checked_sub(1)
            .and_then(|i| self.vhosts.get(i))
            .is_some_and(|v| v.names.iter().any(|n| n.matches(host)))
    }

    /// The virtual hosts no connection to these addresses can reach.
    pub(super) fn unreachable(&self, listen: &[SocketAddr]) -> Vec<UnreachableVirtualHost> {
        let reachable = |vhost: &Vhost| {
            listen.iter().any(|l| {
                let port = l.port();
                if l.ip().is_unspecified() {
                    // Any local address: an exact address may be reached (taken to be one
                    // of the machine's), and so may `*` on an address no virtual host names.
                    let named = vhost
                        .addrs
                        .iter()
                        .any(|a| a.ip.is_some() && a.port_matches(port));
                    return named || Self::candidate(vhost, self.mode_for(None, port));
                }
                Self::candidate(vhost, self.mode(Some(*l)))
            })
        };
        self.vhosts
            .iter()
            .enumerate()
            .filter(|(_, v)| !reachable(v))
            .map(|(index, v)| UnreachableVirtualHost {
                index,
                addresses: v.written.clone(),
                server_name: v.server_name.clone(),
                line: v.line,
            })
            .collect()
    }
}

/// A `<VirtualHost>` that no listening address selects: requests meant for it go to
/// another server (see [`Site::unreachable_virtual_hosts`](super::Site::unreachable_virtual_hosts)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreachableVirtualHost {
    /// Its index in [`Config::virtual_hosts`].
    pub index: usize,
    /// Its addresses as written (`*:80`).
    pub addresses: String,
    /// Its `ServerName`, if it has one.
    pub server_name: Option<String>,
    /// The line of its `<VirtualHost>`.
    pub line: u32,
}

impl fmt::Display for UnreachableVirtualHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: <VirtualHost {}>", self.line, self.addresses)?;
        if let Some(name) = &self.server_name {
            write!(f, " (ServerName {name})")?;
        }
        write!(
            f,
            " is never selected: no listening address matches {} (as in Apache, a virtual host serves only connections to its address and port); its requests go to the main server or another virtual host; listen on its address and port, or write <VirtualHost *> for any",
            self.addresses
        )
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so that an IPv4 virtual host matches a dual-stack socket.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn parse_addr(text: &str) -> Option<VhostAddr> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (Some(IpAddr::V6(v6.parse().ok()?)), port)
    } else {
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        let ip = match host {
            "*" => None,
            h if h.eq_ignore_ascii_case("_default_") => None,
            h => Some(IpAddr::V4(h.parse().ok()?)),
        };
        (ip, port)
    };
    let port = match port {
        None | Some("*") => None,
        Some(p) => match p.parse::<u16>().ok()? {
            0 => None,
            p => Some(p),
        },
    };
    Some(VhostAddr {
        ip: host.map(canonical_ip),
        port,
    })
}

/// A name lower-cased, without its port and trailing dot.
fn normalize_name(name: &str) -> String {
    let host = strip_port(name.as_bytes());
    String::from_utf8_lossy(host).to_ascii_lowercase()
}

/// `host` of `host[:port]` (`[v6]` kept whole), without a trailing dot.
fn strip_port(text: &[u8]) -> &[u8] {
    let host = if text.first() == Some(&b'[') {
        match text.iter().position(|&b| b == b']') {
            Some(end) => &text[..=end],
            None => text,
        }
    } else {
        match text.iter().rposition(|&b| b == b':') {
            Some(colon) => &text[..colon],
            None => text,
        }
    };
    host.strip_suffix(b".").unwrap_or(host)
}

/// The host the request names (the HTTP/2 `:authority`, else `Host`), without port.
fn request_host<B>(request: &Request<B>) -> Option<&[u8]> {
    let text = match request.uri().authority() {
        Some(authority) => authority.host().as_bytes(),
        None => request.headers().get(HOST)?.as_bytes(),
    };
    let host = strip_port(text);
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_apache() {
        assert!(glob(b"*.b.example", b"zz.B.example"));
        assert!(!glob(b"*.b.example", b"b.example"));
        assert!(glob(b"w?.example", b"wz.example"));
        assert!(!glob(b"w?.example", b"wzz.example"));
        assert!(glob(b"a.example", b"A.EXAMPLE"));
        assert!(glob(b"*", b"anything"));
    }

    #[test]
    fn addresses_parse() {
        let any = |port| VhostAddr { ip: None, port };
        assert_eq!(parse_addr("*:80"), Some(any(Some(80))));
        assert_eq!(parse_addr("*"), Some(any(None)));
        assert_eq!(parse_addr("*:*"), Some(any(None)));
        assert_eq!(parse_addr("_default_:443"), Some(any(Some(443))));
        assert_eq!(
            parse_addr("[::1]:8080"),
            Some(VhostAddr {
                ip: Some("::1".parse().unwrap_or(IpAddr::V4([0, 0, 0, 0].into()))),
                port: Some(8080)
            })
        );
        assert_eq!(parse_addr("www.example:80"), None);
        assert_eq!(parse_addr("*:http"), None);
    }

    #[test]
    fn hosts_lose_their_port_and_trailing_dot() {
        assert_eq!(strip_port(b"a.example:8080"), b"a.example");
        assert_eq!(strip_port(b"a.example."), b"a.example");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
    }
}
