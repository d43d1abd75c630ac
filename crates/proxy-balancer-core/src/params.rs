//! Member and balancer parameters, with Apache's names, defaults and validation.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ParamError;
use crate::flags::StatusFlags;
use crate::health::HcParams;
use crate::lbmethod::LbMethodKind;
use crate::selection::{
    parse_number, HashKey, HashRing, OutlierParams, RetryBudgetParams, DEFAULT_EWMA_DECAY,
};

/// Routes, redirects and sticky session names are shorter than this, as in Apache
/// (`PROXY_WORKER_MAX_ROUTE_SIZE`), whose shared memory slots are 64 bytes with a NUL.
const MAX_NAME_LEN: usize = 63;

/// A member's `loadfactor`, kept ×100 as Apache keeps it (`lbf`): 1.0 is 100, 2.25 is 225.
///
/// # Apache
///
/// `loadfactor`: a decimal from 1 to 100, default 1. Apache stores `int(value * 100)`,
/// truncating, and so do we: the ratios of byrequests are exact on these integers.
///
/// One deliberate difference: Apache computes `int(atof(value) * 100)` in binary floating
/// point, so `65.32` becomes 6531 there (and the manager shows `65.31`); we read the decimal
/// exactly and keep 6532.
///
/// ```
/// use proxy_balancer_core::LoadFactor;
///
/// let lf: LoadFactor = "2.25".parse()?;
/// assert_eq!(lf.lbf(), 225);
/// assert_eq!(lf.to_string(), "2.25");
/// assert!("0".parse::<LoadFactor>().is_err());
/// assert!("101".parse::<LoadFactor>().is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoadFactor(u32);

impl LoadFactor {
    /// Load factor 1, Apache's default.
    pub const ONE: Self = Self(100);

    /// A load factor from its ×100 integer form (`lbf`), 100 to 10000.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] outside 100..=10000.
    pub fn from_lbf(lbf: u32) -> Result<Self, ParamError> {
        if (100..=10_000).contains(&lbf) {
            Ok(Self(lbf))
        } else {
            Err(ParamError::invalid(
                "loadfactor",
                format!("{}", f64::from(lbf) / 100.0),
                "must be a number between 1 and 100",
            ))
        }
    }

    /// A load factor from its decimal form, truncated to hundredths as Apache does.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] outside 1.0..=100.0 or not finite.
    pub fn new(value: f64) -> Result<Self, ParamError> {
        // The small bias undoes binary rounding (65.32 * 100 = 6531.999…), see `FromStr`.
        let scaled = (value * 100.0 + 1e-6).floor();
        if !scaled.is_finite() || !(100.0..=10_000.0).contains(&scaled) {
            return Err(ParamError::invalid(
                "loadfactor",
                value.to_string(),
                "must be a number between 1 and 100",
            ));
        }
        // Truncation as Apache's `(int)(atof(val) * 100.0)`; the range check above bounds it.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "range checked above"
        )]
        Ok(Self(scaled as u32))
    }

    /// The ×100 integer form Apache calls `lbfactor`.
    #[must_use]
    pub const fn lbf(self) -> u32 {
        self.0
    }
}

impl Default for LoadFactor {
    fn default() -> Self {
        Self::ONE
    }
}

impl FromStr for LoadFactor {
    type Err = ParamError;

    /// Parses a decimal such as `2.25`, keeping hundredths exactly; further digits are
    /// truncated, as Apache truncates.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ParamError::invalid(
                "loadfactor",
                s,
                "must be a decimal number between 1 and 100",
            )
        };
        let t = s.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(bad());
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 3 {
            return Err(ParamError::invalid(
                "loadfactor",
                s,
                "must be a number between 1 and 100",
            ));
        }
        let mut lbf: u32 = whole.parse().unwrap_or(0) * 100;
        let mut frac_digits = frac.bytes().chain(std::iter::repeat(b'0'));
        for scale in [10, 1] {
            let d = frac_digits.next().map_or(0, |b| u32::from(b - b'0'));
            lbf += d * scale;
        }
        Self::from_lbf(lbf)
            .map_err(|_| ParamError::invalid("loadfactor", s, "must be a number between 1 and 100"))
    }
}

impl fmt::Display for LoadFactor {
    /// Writes the decimal form as the manager shows it: `1`, `2.25`, `2.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}"),
        }
    }
}

impl fmt::Debug for LoadFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoadFactor({self})")
    }
}

/// A member's `lbset`, 0 to 99: lower sets are tried first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct LbSet(u8);

impl LbSet {
    /// The highest set Apache accepts.
    pub const MAX: u8 = 99;

    /// An lbset.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] above 99.
    pub fn new(set: u8) -> Result<Self, ParamError> {
        if set <= Self::MAX {
            Ok(Self(set))
        } else {
            Err(ParamError::invalid(
                "lbset",
                set.to_string(),
                "must be between 0 and 99",
            ))
        }
    }

    /// The set number.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl FromStr for LbSet {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<u8>() {
            Ok(n) if n <= Self::MAX => Ok(Self(n)),
            _ => Err(ParamError::invalid("lbset", s, "must be between 0 and 99")),
        }
    }
}

impl fmt::Display for LbSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A member route (`route=`) or redirect route (`redirect=`): 1 to 63 visible characters.
///
/// ```
/// use proxy_balancer_core::Route;
///
/// assert_eq!(Route::new("node1")?.as_str(), "node1");
/// assert!(Route::new(&"x".repeat(64)).is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route(Box<str>);

impl Route {
    /// A route.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] (naming `route`) if empty, 64 characters or longer, or
    /// holding whitespace or control characters.
    pub fn new(route: &str) -> Result<Self, ParamError> {
        Self::named("route", route)
    }

    fn named(param: &'static str, value: &str) -> Result<Self, ParamError> {
        if value.is_empty() {
            return Err(ParamError::invalid(param, value, "must not be empty"));
        }
        if value.len() > MAX_NAME_LEN {
            return Err(ParamError::invalid(
                param,
                value,
                "must be shorter than 64 characters",
            ));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParamError::invalid(
                param,
                value,
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(value.into()))
    }

    /// The route text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Route({:?})", &*self.0)
    }
}

/// A member URL: a scheme, a host, an optional port and path.
///
/// The schemes are Apache's for HTTP members: `http` and `https` (mod_proxy_http), `ws` and
/// `wss` (mod_proxy_wstunnel: WebSocket members), `h2c` and `h2` (mod_proxy_http2: HTTP/2 in
/// clear text and over TLS). [`MemberUrl::tls`] says which of them speak TLS and
/// [`MemberUrl::protocol`] what the member client speaks to them.
///
/// The scheme and host are lower-cased and a trailing `/` is removed (Apache's docs ask for
/// member URLs without one), so `HTTP://Example:80/` and `http://example:80` are the same
/// member.
///
/// This is the one place that takes a member URL apart: the member client, the health
/// probes, the heartbeat listener and the balancer-manager read the host, the port (with
/// its default by scheme) and the `Host` value from here.
///
/// ```
/// use proxy_balancer_core::MemberUrl;
///
/// let url = MemberUrl::new("HTTP://Backend-1:8080/app/")?;
/// assert_eq!(url.as_str(), "http://backend-1:8080/app");
/// assert_eq!((url.scheme(), url.host(), url.port()), ("http", "backend-1", 8080));
/// assert_eq!(url.authority(), "backend-1:8080");
///
/// let url = MemberUrl::new("https://[::1]:443")?;
/// assert_eq!((url.host(), url.connect_host(), url.port()), ("[::1]", "::1", 443));
/// assert_eq!(url.authority(), "[::1]"); // the default port is left out
/// assert_eq!(MemberUrl::new("https://a")?.port(), 443);
///
/// assert!(MemberUrl::new("ftp://files").is_err());
///
/// // WebSocket and HTTP/2 members, as mod_proxy_wstunnel and mod_proxy_http2 name them.
/// use proxy_balancer_core::MemberProtocol;
/// let url = MemberUrl::new("wss://chat")?;
/// assert_eq!((url.port(), url.tls(), url.protocol()), (443, true, MemberProtocol::WebSocket));
/// let url = MemberUrl::new("h2c://grpc:50051")?;
/// assert_eq!((url.tls(), url.protocol(), url.http_scheme()), (false, MemberProtocol::Http2, "http"));
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberUrl {
    url: Box<str>,
    /// Byte range of the host within `url` (an IPv6 literal with its brackets).
    host: (usize, usize),
    /// End of the authority as a `Host` value: after the port, or after the host when the
    /// port is absent or the scheme's default.
    authority_end: usize,
    /// Start of the path: the end of the whole authority.
    path_start: usize,
    /// The port, explicit or the scheme's default.
    port: u16,
}

impl MemberUrl {
    /// Parses and normalises a member URL.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] (naming `url`) if the scheme is not one of `http`,
    /// `https`, `ws`, `wss`, `h2c` and `h2`, the
    /// host is missing, the port is not a number up to 65535, or the URL holds whitespace,
    /// control characters, a query or a fragment.
    pub fn new(url: &str) -> Result<Self, ParamError> {
        let bad = |reason: &'static str| ParamError::invalid("url", url, reason);
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain whitespace or control characters"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(
                "must start with http://, https://, ws://, wss://, h2c:// or h2://",
            ));
        };
        let scheme = scheme.to_ascii_lowercase();
        if MemberProtocol::of_scheme(&scheme).is_none() {
            return Err(bad(
                "the scheme must be http, https, ws, wss, h2c or h2 (balancer members speak HTTP)",
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("must not have a query or a fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("must not carry user information"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err(bad("an IPv6 host must be closed with ]"));
            };
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Err(bad("the IPv6 host is not valid"));
            }
            match after {
                "" => (authority, None),
                p => match p.strip_prefix(':') {
                    Some(port) => (&authority[..authority.len() - p.len()], Some(port)),
                    None => return Err(bad("unexpected text after the IPv6 host")),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        if !host.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(bad("the host has characters a host name cannot have"));
        }
        let default_port = if scheme_is_tls(&scheme) { 443 } else { 80 };
        let port = match port {
            None => default_port,
            Some(port) => {
                if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the port must be a number from 0 to 65535"));
                }
                let Ok(port) = port.parse::<u16>() else {
                    return Err(bad("the port must be a number from 0 to 65535"));
                };
                port
            }
        };
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut normal = String::with_capacity(url.len());
        normal.push_str(&scheme);
        normal.push_str("://");
        let host_start = normal.len();
        normal.push_str(&host.to_ascii_lowercase());
        let host_end = normal.len();
        normal.push_str(&authority[host.len()..]);
        let path_start = normal.len();
        normal.push_str(path);
        Ok(Self {
            url: normal.into(),
            host: (host_start, host_end),
            authority_end: if port == default_port {
                host_end
            } else {
                path_start
            },
            path_start,
            port,
        })
    }

    /// The normalised URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The scheme, lower-cased: `http`, `https`, `ws`, `wss`, `h2c` or `h2`.
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.url[..self.host.0 - "://".len()]
    }

    /// Whether the member is reached over TLS: `https`, `wss` and `h2`.
    #[must_use]
    pub fn tls(&self) -> bool {
        scheme_is_tls(self.scheme())
    }

    /// What the member client speaks to the member, from the scheme.
    #[must_use]
    pub fn protocol(&self) -> MemberProtocol {
        MemberProtocol::of_scheme(self.scheme()).unwrap_or(MemberProtocol::Http1)
    }

    /// The scheme of the member's requests as HTTP sees them: `https` for the TLS
    /// schemes, `http` for the others (a `ws://` member's handshake is an `http` request).
    #[must_use]
    pub fn http_scheme(&self) -> &'static str {
        if self.tls() {
            "https"
        } else {
            "http"
        }
    }

    /// The host as written in the URL, lower-cased: a name, an IPv4 address, or an IPv6
    /// literal in its brackets (`[::1]`), as `http::Uri::host` gives it.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.url[self.host.0..self.host.1]
    }

    /// The host to resolve or connect to: [`host`](Self::host) without the brackets of an
    /// IPv6 literal (`::1`).
    #[must_use]
    pub fn connect_host(&self) -> &str {
        let host = self.host();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The port: the URL's, or the scheme's default (80 for `http`, `ws`, `h2c`; 443 for
    /// `https`, `wss`, `h2`).
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]` as a `Host` header value: the port left out when it is the scheme's
    /// default (`http://a:80` gives `a`, `https://a:8443` gives `a:8443`), as Apache sends it.
    #[must_use]
    pub fn authority(&self) -> &str {
        &self.url[self.host.0..self.authority_end]
    }

    /// The path prefix (empty or starting with `/`, without a trailing `/`).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.url[self.path_start..]
    }

    /// `scheme://host[:port]`, the URL without its path, the port as written.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.url[..self.path_start]
    }
}

/// Whether a (lower-case) member scheme is one over TLS.
fn scheme_is_tls(scheme: &str) -> bool {
    matches!(scheme, "https" | "wss" | "h2")
}

/// What the member client speaks to a member, from its URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberProtocol {
    /// `http://`, `https://`: HTTP/1.1 (mod_proxy_http); a request asking for an upgrade
    /// is tunnelled when the member's `upgrade` parameter allows it.
    Http1,
    /// `ws://`, `wss://`: HTTP/1.1 whose WebSocket upgrades are tunnelled
    /// (mod_proxy_wstunnel); other requests go as to an `http` member.
    WebSocket,
    /// `h2c://`, `h2://`: HTTP/2, one multiplexed connection pool (mod_proxy_http2).
    Http2,
}

impl MemberProtocol {
    /// The protocol of a lower-case scheme; `None` for a scheme members cannot have.
    #[must_use]
    pub fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "http" | "https" => Some(Self::Http1),
            "ws" | "wss" => Some(Self::WebSocket),
            "h2c" | "h2" => Some(Self::Http2),
            _ => None,
        }
    }
}

impl FromStr for MemberUrl {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for MemberUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for MemberUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberUrl({:?})", &*self.url)
    }
}

/// `Off` (or `0`) is `None`; anything else goes through `parse`.
fn off_or<T>(
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, ParamError>,
) -> Result<Option<T>, ParamError> {
    if value.eq_ignore_ascii_case("off") || value.trim() == "0" {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

fn parse_on_off(param: &'static str, value: &str) -> Result<bool, ParamError> {
    if value.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(ParamError::invalid(param, value, "must be On or Off"))
    }
}

/// An Apache time value: a whole number in seconds, or with an `ms` suffix in milliseconds;
/// at least 1 ms.
fn parse_time(param: &'static str, value: &str) -> Result<Duration, ParamError> {
    let v = value.trim();
    let (digits, unit_ms) = match v.strip_suffix("ms") {
        Some(d) => (d, true),
        None => (v.strip_suffix('s').unwrap_or(v), false),
    };
    let n = digits.trim().parse::<u64>().map_err(|_| {
        ParamError::invalid(
            param,
            value,
            "must be a whole number of seconds, or of ms with `ms`",
        )
    })?;
    let t = if unit_ms {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(n)
    };
    if t.is_zero() {
        return Err(ParamError::invalid(param, value, "must be at least 1 ms"));
    }
    Ok(t)
}

fn parse_seconds(param: &'static str, value: &str) -> Result<Duration, ParamError> {
    match value.trim().parse::<u32>() {
        Ok(s) => Ok(Duration::from_secs(u64::from(s))),
        Err(_) => Err(ParamError::invalid(
            param,
            value,
            "must be a whole number of seconds",
        )),
    }
}

/// The parameters of one balancer member (`BalancerMember url key=value ...`).
///
/// Every field is an already validated type, so the struct can be edited freely.
///
/// ```
/// use proxy_balancer_core::{LoadFactor, MemberParams, Route};
///
/// let mut member = MemberParams::new("http://10.0.0.1:8080")?
///     .with_route(Route::new("node1")?)
///     .with_load_factor(LoadFactor::new(2.0)?);
/// member.set("status", "+H")?; // Apache syntax
/// member.set("retry", "5")?;
/// assert_eq!(member.load_factor.lbf(), 200);
/// assert!(member.set("lbset", "100").is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct MemberParams {
    /// The member's URL (the `BalancerMember` argument).
    pub url: MemberUrl,
    /// `route`: the member's route, matched against the session route.
    pub route: Option<Route>,
    /// `redirect`: where sticky requests go when this member is unusable.
    pub redirect: Option<Route>,
    /// `loadfactor` (default 1).
    pub load_factor: LoadFactor,
    /// `lbset` (default 0).
    pub lb_set: LbSet,
    /// `retry`: how long a member in error waits before it is tried again (default 60 s;
    /// zero retries at once).
    pub retry: Duration,
    /// Beyond Apache (default `None`: Apache's fixed window): with a `retry_max`, the retry
    /// window doubles for each error in a row after the first (`retry`, 2×, 4× …) up to
    /// `retry_max`, and starts over once the member answers.
    pub retry_max: Option<Duration>,
    /// `status`: the initial status flags.
    pub status: StatusFlags,
    /// `connectiontimeout`: how long to wait for a connection (default: `timeout`).
    pub connection_timeout: Option<Duration>,
    /// `timeout`: how long to wait for the member's answer (default: the server's).
    pub timeout: Option<Duration>,
    /// `max`: the most connections open to the member, idle and in use (a hard cap in the
    /// built-in client, with `acquire`; default and 0: no cap).
    pub max: Option<u32>,
    /// `ttl`: how long an idle connection is kept (default: the client's).
    pub ttl: Option<Duration>,
    /// `disablereuse`: a new connection for every request (default Off).
    pub disable_reuse: bool,
    /// `keepalive`: TCP keep-alive probes on member connections (default Off).
    pub keepalive: bool,
    /// Beyond Apache, `slowstart`: after the member becomes usable again (or is added while
    /// the balancer runs), its weight ramps from a small share to full over this period
    /// (HAProxy's `slowstart`). Default none.
    ///
    /// The ramp is linear from the moment it became usable: its load factor times the
    /// elapsed part of the period, at least 1 (of the ×100 load factor), as HAProxy
    /// recomputes a server's effective weight. It starts when an error's retry window
    /// passes, a forced recovery or a passing health check clears `E` or `C`, the manager
    /// clears `D` or `S`, an ejection ends, or the member is added to a running balancer
    /// (not for the members a balancer starts with, as HAProxy). byrequests, bytraffic,
    /// bybusyness's tie-break, heartbeat (on its `ready` weight) and the sticky accounting
    /// weigh with it.
    pub slow_start: Option<Duration>,
    /// The health-check parameters (`hcmethod`, `hcuri`, `hcinterval`, `hcpasses`,
    /// `hcfails`, `hcexpr`; `hctemplate` resolved into them). Default: no health check.
    pub hc: HcParams,
}

impl MemberParams {
    /// Apache's default `retry`: 60 seconds.
    pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);

    /// A member with Apache's defaults.
    ///
    /// # Errors
    ///
    /// [`ParamError`] naming `url` if the URL is not valid (see [`MemberUrl::new`]).
    pub fn new(url: &str) -> Result<Self, ParamError> {
        Ok(Self::from_url(MemberUrl::new(url)?))
    }

    /// A member with Apache's defaults from a parsed URL.
    #[must_use]
    pub const fn from_url(url: MemberUrl) -> Self {
        Self {
            url,
            route: None,
            redirect: None,
            load_factor: LoadFactor::ONE,
            lb_set: LbSet(0),
            retry: Self::DEFAULT_RETRY,
            retry_max: None,
            status: StatusFlags::EMPTY,
            connection_timeout: None,
            timeout: None,
            max: None,
            ttl: None,
            disable_reuse: false,
            keepalive: false,
            slow_start: None,
            hc: HcParams::DEFAULT,
        }
    }

    /// Sets `route`.
    #[must_use]
    pub fn with_route(mut self, route: Route) -> Self {
        self.route = Some(route);
        self
    }

    /// Sets `redirect`.
    #[must_use]
    pub fn with_redirect(mut self, redirect: Route) -> Self {
        self.redirect = Some(redirect);
        self
    }

    /// Sets `loadfactor`.
    #[must_use]
    pub const fn with_load_factor(mut self, load_factor: LoadFactor) -> Self {
        self.load_factor = load_factor;
        self
    }

    /// Sets `lbset`.
    #[must_use]
    pub const fn with_lb_set(mut self, lb_set: LbSet) -> Self {
        self.lb_set = lb_set;
        self
    }

    /// Sets `retry`.
    #[must_use]
    pub const fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`MemberParams::retry_max`]: a retry window that grows on repeated errors.
    #[must_use]
    pub const fn with_retry_max(mut self, retry_max: Duration) -> Self {
        self.retry_max = Some(retry_max);
        self
    }

    /// Sets the initial `status` flags.
    #[must_use]
    pub const fn with_status(mut self, status: StatusFlags) -> Self {
        self.status = status;
        self
    }

    /// Sets one parameter from its Apache name and text, as on a `BalancerMember` line.
    /// `status` is applied on top of the current flags, as Apache does. The `hc*`
    /// parameters go to [`HcParams::set`]; `hctemplate` is refused there (a template's
    /// parameters are applied with [`HcParams::apply_template`] on
    /// [`MemberParams::hc`]).
    ///
    /// # Errors
    ///
    /// [`ParamError::UnknownParameter`] for a name this type does not model,
    /// [`ParamError::InvalidValue`] for a bad value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        match key.to_ascii_lowercase().as_str() {
            "loadfactor" => self.load_factor = value.parse()?,
            "lbset" => self.lb_set = value.parse()?,
            "route" if value.is_empty() => self.route = None,
            "route" => self.route = Some(Route::named("route", value)?),
            "redirect" if value.is_empty() => self.redirect = None,
            "redirect" => self.redirect = Some(Route::named("redirect", value)?),
            "retry" => self.retry = parse_seconds("retry", value)?,
            "status" => self.status.apply(value)?,
            "connectiontimeout" => {
                self.connection_timeout = Some(parse_time("connectiontimeout", value)?);
            }
            "timeout" => {
                let t = parse_seconds("timeout", value)?;
                if t.is_zero() {
                    return Err(ParamError::invalid(
                        "timeout",
                        value,
                        "must be at least 1 second",
                    ));
                }
                self.timeout = Some(t);
            }
            "max" => {
                let n = value.trim().parse::<u32>().map_err(|_| {
                    ParamError::invalid("max", value, "must be a whole number, 0 or more")
                })?;
                self.max = Some(n);
            }
            "ttl" => {
                let t = parse_seconds("ttl", value)?;
                if t.is_zero() {
                    return Err(ParamError::invalid(
                        "ttl",
                        value,
                        "must be at least 1 second",
                    ));
                }
                self.ttl = Some(t);
            }
            "disablereuse" => self.disable_reuse = parse_on_off("disablereuse", value)?,
            "enablereuse" => self.disable_reuse = !parse_on_off("enablereuse", value)?,
            "keepalive" => self.keepalive = parse_on_off("keepalive", value)?,
            "slowstart" => {
                self.slow_start = off_or(value, |v| parse_time("slowstart", v))?;
            }
            hc @ ("hcmethod" | "hcuri" | "hcinterval" | "hcpasses" | "hcfails" | "hcexpr"
            | "hctemplate") => self.hc.set(hc, value)?,
            _ => {
                return Err(ParamError::UnknownParameter {
                    param: key.to_owned(),
                })
            }
        }
        Ok(())
    }
}

/// `stickysession`: the cookie name and the URL parameter name of the session route.
///
/// ```
/// use proxy_balancer_core::StickySession;
///
/// let s: StickySession = "JSESSIONID|jsessionid".parse()?;
/// assert_eq!((s.cookie(), s.url_param()), ("JSESSIONID", "jsessionid"));
/// let s: StickySession = "ROUTEID".parse()?;
/// assert_eq!((s.cookie(), s.url_param()), ("ROUTEID", "ROUTEID"));
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StickySession {
    cookie: Box<str>,
    url_param: Box<str>,
}

impl StickySession {
    /// Names used for both the cookie and the URL parameter.
    ///
    /// # Errors
    ///
    /// [`ParamError::InvalidValue`] (naming `stickysession`) for an empty name, one of 64
    /// characters or more, or one holding whitespace, control characters, `=`, `;`, `,`.
    pub fn new(name: &str) -> Result<Self, ParamError> {
        Self::with_names(name, name)
    }

    /// Different names for the cookie and the URL parameter (`COOKIE|param`).
    ///
    /// # Errors
    ///
    /// As [`StickySession::new`].
    pub fn with_names(cookie: &str, url_param: &str) -> Result<Self, ParamError> {
        for name in [cookie, url_param] {
            let full = if cookie == url_param {
                cookie.to_owned()
            } else {
                format!("{cookie}|{url_param}")
            };
            if name.is_empty() {
                return Err(ParamError::invalid(
                    "stickysession",
                    full,
                    "a name is empty",
                ));
            }
            if full.len() > MAX_NAME_LEN {
                return Err(ParamError::invalid(
                    "stickysession",
                    full,
                    "must be shorter than 64 characters",
                ));
            }
            if name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | ';' | ',' | '|'))
            {
                return Err(ParamError::invalid(
                    "stickysession",
                    full,
                    "names must not contain whitespace, control characters, =, ;, , or |",
                ));
            }
        }
        Ok(Self {
            cookie: cookie.into(),
            url_param: url_param.into(),
        })
    }

    /// The cookie name (case-sensitive).
    #[must_use]
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The URL parameter name.
    #[must_use]
    pub fn url_param(&self) -> &str {
        &self.url_param
    }
}

impl FromStr for StickySession {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('|') {
            Some((cookie, param)) => Self::with_names(cookie, param),
            None => Self::new(s),
        }
    }
}

impl fmt::Display for StickySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cookie == self.url_param {
            f.write_str(&self.cookie)
        } else {
            write!(f, "{}|{}", self.cookie, self.url_param)
        }
    }
}

impl fmt::Debug for StickySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StickySession({self})")
    }
}

/// The balancer-manager nonce (`nonce=`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub enum Nonce {
    /// A random nonce made when the balancer starts (Apache's default, a UUID).
    #[default]
    Auto,
    /// `nonce=None`: no nonce check (as Apache's docs say; see the README on where we differ).
    Disabled,
    /// A fixed nonce from the configuration.
    Fixed(String),
}

/// The parameters of a balancer (`ProxySet balancer://name key=value ...`).
///
/// ```
/// use proxy_balancer_core::{BalancerParams, LbMethodKind};
///
/// let mut params = BalancerParams::new("balancer://MyCluster");
/// params.set("lbmethod", "bybusyness")?;
/// params.set("stickysession", "JSESSIONID|jsessionid")?;
/// params.set("failonstatus", "500, 503")?;
/// assert_eq!(params.name, "balancer://mycluster");
/// assert_eq!(params.lb_method, LbMethodKind::ByBusyness);
/// assert_eq!(params.fail_on_status, vec![500, 503]);
/// assert!(params.set("growth", "0").is_err());
/// # Ok::<(), proxy_balancer_core::ParamError>(())
/// ```
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub struct BalancerParams {
    /// The balancer's name, lower-cased as Apache does (`balancer://mycluster`).
    pub name: String,
    /// `lbmethod` (default byrequests).
    pub lb_method: LbMethodKind,
    /// `maxattempts`: failover attempts after the first try. `None` is Apache's default:
    /// members − 1, or no failover with one member.
    pub max_attempts: Option<u32>,
    /// `nofailover`: a sticky request whose member is unusable gets 503 instead of another
    /// member (default Off).
    pub no_failover: bool,
    /// `stickysession`: where the session route is read from (default none).
    pub sticky_session: Option<StickySession>,
    /// `stickysessionsep`: the separator before the route in the session value; `None` is
    /// `Off` (the whole value is the route). Default `.`.
    pub sticky_session_sep: Option<char>,
    /// `scolonpathdelim`: `;` also ends the URL session parameter (default Off).
    pub scolon_path_delim: bool,
    /// `timeout`: how long a request waits for a usable member before the 503 (default 0:
    /// no wait).
    pub timeout: Duration,
    /// `failonstatus`: statuses that put the member in error.
    pub fail_on_status: Vec<u16>,
    /// `failontimeout`: a backend read timeout puts the member in error (default Off).
    pub fail_on_timeout: bool,
    /// `nonce`: the balancer-manager nonce.
    pub nonce: Nonce,
    /// `growth`: how many members the manager may add (default 0).
    pub growth: u8,
    /// `forcerecovery`: when every member is in error, retry them all at once (default On).
    pub force_recovery: bool,
    /// Beyond Apache, `hashkey`: what `lbmethod=hash` hashes (default the client address).
    pub hash_key: HashKey,
    /// Beyond Apache, `hashring`: how `lbmethod=hash` maps keys to members (default
    /// Maglev).
    pub hash_ring: HashRing,
    /// Beyond Apache, `eject*`: outlier ejection (default off).
    pub outlier: OutlierParams,
    /// Beyond Apache, `panic`: when fewer than this percentage of a set's regular members
    /// are usable, members in error, failing their health check or ejected are balanced
    /// over as if usable (Envoy's panic threshold; `forcerecovery` is the case "none
    /// usable"). Default none.
    ///
    /// Counted over the lbset that serves: its regular members (not hot spares or
    /// standbys) that are not disabled (`D`), stopped (`S`) or draining (`N`), which stay
    /// out in panic too. An lbset with no usable member is passed over as in Apache (the
    /// next lbset, its spares or standbys serve); when no lbset has a usable member, the
    /// first one with members kept out by `E`, `C` or `J` is balanced over. How it
    /// combines with `forcerecovery=On` (Apache's, kept as is): when every member is in
    /// error, forced recovery clears their errors first, so panic is only reached
    /// for what it does not clear (failed health checks, ejections, some members in
    /// error). See [`BalancerSnapshot::in_panic`](crate::BalancerSnapshot::in_panic).
    pub panic_threshold: Option<u8>,
    /// Beyond Apache, `retrybudget`: the budget of `retry_idempotent`'s retries (default
    /// tower's: 20 % plus 10 a second); `None` (`retrybudget=Off`) bounds them by
    /// `maxattempts` only.
    pub retry_budget: Option<RetryBudgetParams>,
    /// Beyond Apache, `ewmadecay`: how fast `lbmethod=p2c-ewma` forgets a slow answer
    /// (default 10 s).
    pub ewma_decay: Duration,
}

impl BalancerParams {
    /// A balancer with Apache's defaults. A name without a scheme gets `balancer://`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        let name = if lower.starts_with("balancer://") {
            lower
        } else {
            format!("balancer://{lower}")
        };
        Self {
            name,
            lb_method: LbMethodKind::ByRequests,
            max_attempts: None,
            no_failover: false,
            sticky_session: None,
            sticky_session_sep: Some('.'),
            scolon_path_delim: false,
            timeout: Duration::ZERO,
            fail_on_status: Vec::new(),
            fail_on_timeout: false,
            nonce: Nonce::Auto,
            growth: 0,
            force_recovery: true,
            hash_key: HashKey::Client,
            hash_ring: HashRing::Maglev,
            outlier: OutlierParams::OFF,
            panic_threshold: None,
            retry_budget: Some(RetryBudgetParams::DEFAULT),
            ewma_decay: DEFAULT_EWMA_DECAY,
        }
    }

    /// Sets one parameter from its Apache name and text, as on a `ProxySet` line.
    ///
    /// # Errors
    ///
    /// [`ParamError::UnknownParameter`] for a name that is not a balancer parameter,
    /// [`ParamError::InvalidValue`] for a bad value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ParamError> {
        match key.to_ascii_lowercase().as_str() {
            "lbmethod" => self.lb_method = value.parse()?,
            "maxattempts" => {
                let n = value.trim().parse::<u32>().map_err(|_| {
                    ParamError::invalid("maxattempts", value, "must be a whole number, 0 or more")
                })?;
                self.max_attempts = Some(n);
            }
            "nofailover" => self.no_failover = parse_on_off("nofailover", value)?,
            "stickysession" => self.sticky_session = Some(value.parse()?),
            "stickysessionsep" => {
                let mut chars = value.chars();
                self.sticky_session_sep = match (chars.next(), chars.next()) {
                    _ if value.eq_ignore_ascii_case("off") => None,
                    (Some(c), None) if !c.is_control() && !c.is_whitespace() => Some(c),
                    _ => {
                        return Err(ParamError::invalid(
                            "stickysessionsep",
                            value,
                            "must be one character or Off",
                        ))
                    }
                };
            }
            "scolonpathdelim" => {
                self.scolon_path_delim = parse_on_off("scolonpathdelim", value)?;
            }
            "timeout" => self.timeout = parse_seconds("timeout", value)?,
            "failonstatus" => {
                let mut codes = Vec::new();
                for code in value.split([',', ' ']).filter(|c| !c.is_empty()) {
                    match code.parse::<u16>() {
                        Ok(c) if (100..=599).contains(&c) => codes.push(c),
                        _ => {
                            return Err(ParamError::invalid(
                                "failonstatus",
                                value,
                                format!("{code:?} is not a status code from 100 to 599"),
                            ))
                        }
                    }
                }
                if codes.is_empty() {
                    return Err(ParamError::invalid(
                        "failonstatus",
                        value,
                        "expected status codes separated by commas",
                    ));
                }
                self.fail_on_status = codes;
            }
            "failontimeout" => self.fail_on_timeout = parse_on_off("failontimeout", value)?,
            "nonce" => {
                self.nonce = if value.eq_ignore_ascii_case("none") {
                    Nonce::Disabled
                } else if value.is_empty()
                    || value.len() > 36
                    || !value.chars().all(|c| c.is_ascii_graphic())
                {
                    return Err(ParamError::invalid(
                        "nonce",
                        value,
                        "must be None or 1 to 36 visible ASCII characters",
                    ));
                } else {
                    Nonce::Fixed(value.to_owned())
                };
            }
            "growth" => {
                self.growth = match value.trim().parse::<u8>() {
                    Ok(n) if (1..=100).contains(&n) => n,
                    _ => {
                        return Err(ParamError::invalid(
                            "growth",
                            value,
                            "must be a number from 1 to 100",
                        ))
                    }
                };
            }
            "forcerecovery" => self.force_recovery = parse_on_off("forcerecovery", value)?,
            "hashkey" => self.hash_key = value.parse()?,
            "hashring" => self.hash_ring = value.parse()?,
            "ejectconsecutive" => {
                self.outlier.consecutive_5xx =
                    off_or(value, |v| parse_number("ejectconsecutive", v, 1..=10_000))?;
            }
            "ejectsuccessrate" => {
                self.outlier.success_rate =
                    off_or(value, |v| parse_number("ejectsuccessrate", v, 1..=100))?;
            }
            "ejectwindow" => self.outlier.window = parse_time("ejectwindow", value)?,
            "ejectminrequests" => {
                self.outlier.min_requests = parse_number("ejectminrequests", value, 1..=1_000_000)?;
            }
            "ejecttime" => self.outlier.eject_time = parse_time("ejecttime", value)?,
            "ejectmaxtime" => self.outlier.max_eject_time = parse_time("ejectmaxtime", value)?,
            "ejectmax" => {
                self.outlier.max_ejected_percent = parse_number("ejectmax", value, 0..=100)?;
            }
            "panic" => {
                self.panic_threshold = off_or(value, |v| parse_number("panic", v, 1..=100))?;
            }
            "retrybudget" => {
                // `0` is a budget of the floor alone (`retrybudgetmin`); `Off` is none.
                let budget = self.retry_budget.unwrap_or_default();
                self.retry_budget = if value.eq_ignore_ascii_case("off") {
                    None
                } else {
                    Some(RetryBudgetParams {
                        percent: parse_number("retrybudget", value, 0..=1000)?,
                        ..budget
                    })
                };
            }
            "retrybudgetmin" => {
                let n = parse_number("retrybudgetmin", value, 0..=1_000_000)?;
                if let Some(budget) = &mut self.retry_budget {
                    budget.min_per_sec = n;
                } else {
                    return Err(ParamError::invalid(
                        "retrybudgetmin",
                        value,
                        "the retry budget is Off (retrybudget=Off comes before it)",
                    ));
                }
            }
            "retrybudgetwindow" => {
                let window = parse_time("retrybudgetwindow", value)?;
                if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&window) {
                    return Err(ParamError::invalid(
                        "retrybudgetwindow",
                        value,
                        "must be from 1 to 60 seconds",
                    ));
                }
                if let Some(budget) = &mut self.retry_budget {
                    budget.window = window;
                } else {
                    return Err(ParamError::invalid(
                        "retrybudgetwindow",
                        value,
                        "the retry budget is Off (retrybudget=Off comes before it)",
                    ));
                }
            }
            "ewmadecay" => self.ewma_decay = parse_time("ewmadecay", value)?,
            _ => {
                return Err(ParamError::UnknownParameter {
                    param: key.to_owned(),
                })
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balancer_switches_and_status_lists() {
        let mut b = BalancerParams::new("x");
        b.set("failonstatus", "500, 503").unwrap();
        assert_eq!(b.fail_on_status, [500, 503]);
        b.set("FailOnTimeout", "On").unwrap();
        assert!(b.fail_on_timeout);
        b.set("scolonpathdelim", "on").unwrap();
        assert!(b.scolon_path_delim);
        b.set("scolonpathdelim", "Off").unwrap();
        assert!(!b.scolon_path_delim);
    }

    #[test]
    fn sticky_session_names_and_text() {
        let one: StickySession = "JSESSIONID".parse().unwrap();
        assert_eq!(
            (one.cookie(), one.url_param()),
            ("JSESSIONID", "JSESSIONID")
        );
        assert_eq!(one.to_string(), "JSESSIONID");
        let two: StickySession = "JSESSIONID|jsessionid".parse().unwrap();
        assert_eq!(
            (two.cookie(), two.url_param()),
            ("JSESSIONID", "jsessionid")
        );
        assert_eq!(two.to_string(), "JSESSIONID|jsessionid");
        assert_eq!(format!("{two:?}"), "StickySession(JSESSIONID|jsessionid)");
        for bad in ["|x", "x|", "a b", "a|b;c", &"n".repeat(64)] {
            assert!(bad.parse::<StickySession>().is_err(), "{bad:?}");
        }
        // The length limit counts the whole `cookie|param` text.
        let half = "n".repeat(31);
        assert!(format!("{half}|{half}").parse::<StickySession>().is_ok());
        assert!(format!("{half}|{half}nn").parse::<StickySession>().is_err());
    }

    #[test]
    fn value_texts() {
        let lf = |s: &str| s.parse::<LoadFactor>();
        assert_eq!(lf("2").unwrap().to_string(), "2");
        assert_eq!(lf("2.5").unwrap().to_string(), "2.5");
        assert_eq!(lf("2.25").unwrap().to_string(), "2.25");
        assert_eq!(lf("100").unwrap().to_string(), "100");
        assert_eq!(format!("{:?}", lf("1.5").unwrap()), "LoadFactor(1.5)");
        assert!(lf(".").is_err() && lf("").is_err() && lf("1.x").is_err());
        assert_eq!("3".parse::<LbSet>().unwrap().to_string(), "3");
        let route = Route::new("node1").unwrap();
        assert_eq!(route.to_string(), "node1");
        assert_eq!(format!("{route:?}"), "Route(\"node1\")");
        let url = MemberUrl::new("http://a:8080/app").unwrap();
        assert!(format!("{url:?}").contains("http://a:8080/app"), "{url:?}");
        // An empty route or redirect clears it.
        let mut m = MemberParams::new("http://a").unwrap();
        m.set("route", "n1").unwrap();
        m.set("redirect", "n2").unwrap();
        m.set("route", "").unwrap();
        m.set("redirect", "").unwrap();
        assert_eq!((m.route.as_ref(), m.redirect.as_ref()), (None, None));
    }

    #[test]
    fn load_factor_parsing() {
        for (text, lbf) in [
            ("1", 100),
            ("2.25", 225),
            ("100", 10_000),
            ("1.5", 150),
            ("3", 300),
        ] {
            assert_eq!(text.parse::<LoadFactor>().unwrap().lbf(), lbf, "{text}");
        }
        for bad in [
            "0", "101", "0.99", "-1", "", "abc", "2x", "1..2", ".", "nan", "inf",
        ] {
            let err = bad.parse::<LoadFactor>().unwrap_err();
            assert_eq!(err.param(), "loadfactor");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(LoadFactor::from_lbf(225).unwrap().to_string(), "2.25");
        assert_eq!(LoadFactor::from_lbf(250).unwrap().to_string(), "2.5");
        assert_eq!(LoadFactor::from_lbf(205).unwrap().to_string(), "2.05");
        assert!(LoadFactor::from_lbf(99).is_err());
        assert_eq!(
            "2.259".parse::<LoadFactor>().unwrap().lbf(),
            225,
            "truncated"
        );
        assert_eq!("007".parse::<LoadFactor>().unwrap().lbf(), 700);
        assert_eq!(
            ".5".parse::<LoadFactor>().map_err(|e| e.param().to_owned()),
            Err("loadfactor".into())
        );
    }

    #[test]
    fn load_factor_reads_decimals_exactly_unlike_apache() {
        // Apache: (int)(atof("65.32") * 100.0) == 6531. We keep the decimal the operator wrote.
        assert_eq!("65.32".parse::<LoadFactor>().unwrap().lbf(), 6532);
        assert_eq!(LoadFactor::new(65.32).unwrap().lbf(), 6532);
        for lbf in 100..=10_000 {
            let lf = LoadFactor::from_lbf(lbf).unwrap();
            assert_eq!(lf.to_string().parse::<LoadFactor>().unwrap(), lf);
        }
    }

    #[test]
    fn lbset_and_route() {
        assert_eq!("99".parse::<LbSet>().unwrap().get(), 99);
        let err = "100".parse::<LbSet>().unwrap_err();
        assert!(err.to_string().contains("lbset") && err.to_string().contains("100"));
        assert!(LbSet::new(100).is_err());
        assert!(Route::new(&"a".repeat(63)).is_ok());
        let err = Route::new(&"a".repeat(64)).unwrap_err();
        assert_eq!(err.param(), "route");
        assert!(Route::new("a b").is_err());
    }

    #[test]
    fn member_urls() {
        let u = MemberUrl::new("http://127.0.0.1:8001").unwrap();
        assert_eq!(
            (u.scheme(), u.authority(), u.path()),
            ("http", "127.0.0.1:8001", "")
        );
        let u = MemberUrl::new("https://[::1]:8443/x/").unwrap();
        assert_eq!(
            (u.scheme(), u.authority(), u.path()),
            ("https", "[::1]:8443", "/x")
        );
        assert_eq!(
            (u.host(), u.connect_host(), u.port()),
            ("[::1]", "::1", 8443)
        );
        for bad in [
            "ftp://a",
            "http://",
            "http://:80",
            "http://a:99999",
            "http://a:x",
            "a:80",
            "http://a b",
            "http://a/?q",
            "http://u@a",
            "ajp://a:8009",
            "http://[::1",
        ] {
            let err = MemberUrl::new(bad).unwrap_err();
            assert_eq!(err.param(), "url", "{bad}");
        }
    }

    /// Apache's member schemes: which speak TLS, what the client speaks to them, their
    /// requests' HTTP scheme and default port.
    #[test]
    fn member_schemes_say_tls_protocol_and_port() {
        use MemberProtocol::{Http1, Http2, WebSocket};
        for (url, tls, protocol, http_scheme, port) in [
            ("http://a", false, Http1, "http", 80),
            ("https://a", true, Http1, "https", 443),
            ("ws://a", false, WebSocket, "http", 80),
            ("WSS://a", true, WebSocket, "https", 443),
            ("h2c://a", false, Http2, "http", 80),
            ("h2://a", true, Http2, "https", 443),
        ] {
            let u = MemberUrl::new(url).unwrap();
            assert_eq!(
                (u.tls(), u.protocol(), u.http_scheme(), u.port()),
                (tls, protocol, http_scheme, port),
                "{url}"
            );
        }
        for scheme in ["ftp", "ajp", "fcgi", "h3", ""] {
            assert_eq!(MemberProtocol::of_scheme(scheme), None, "{scheme}");
            assert!(
                MemberUrl::new(&format!("{scheme}://a")).is_err(),
                "{scheme}"
            );
        }
    }

    #[test]
    fn member_url_ports_default_by_scheme() {
        // (url, host, port, authority as a Host value)
        for (url, host, port, authority) in [
            ("http://a", "a", 80, "a"),
            ("http://a:80", "a", 80, "a"),
            ("http://a:443", "a", 443, "a:443"),
            ("https://a", "a", 443, "a"),
            ("https://a:443/p", "a", 443, "a"),
            // An https member on port 80 keeps its port in Host, and connects to 80.
            ("https://a:80", "a", 80, "a:80"),
            ("HTTP://A.Example:8080", "a.example", 8080, "a.example:8080"),
            ("http://10.0.0.1:0", "10.0.0.1", 0, "10.0.0.1:0"),
            ("http://[::1]", "[::1]", 80, "[::1]"),
            ("http://[::1]:8080", "[::1]", 8080, "[::1]:8080"),
            (
                "https://[2001:DB8::1]:443",
                "[2001:db8::1]",
                443,
                "[2001:db8::1]",
            ),
            ("http://a:65535", "a", 65_535, "a:65535"),
        ] {
            let u = MemberUrl::new(url).unwrap();
            assert_eq!(
                (u.host(), u.port(), u.authority()),
                (host, port, authority),
                "{url}"
            );
        }
        let u = MemberUrl::new("http://[::ffff:10.0.0.1]:81/app").unwrap();
        assert_eq!(
            (u.connect_host(), u.port(), u.path()),
            ("::ffff:10.0.0.1", 81, "/app")
        );
        assert_eq!(MemberUrl::new("http://a").unwrap().connect_host(), "a");
        let u = MemberUrl::new("http://A:80/x/").unwrap();
        assert_eq!((u.origin(), u.path()), ("http://a:80", "/x"));
    }

    proptest::proptest! {
        #[test]
        fn member_url_parts_agree(
            https in proptest::bool::ANY,
            host in proptest::prop_oneof![
                "[a-zA-Z][a-zA-Z0-9-]{0,10}(\\.[a-zA-Z0-9]{1,5}){0,2}",
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                "\\[[0-9a-fA-F:]{1,8}::[0-9a-fA-F]{0,4}\\]",
            ],
            port in proptest::option::of(proptest::num::u16::ANY),
            path in "(/[a-z0-9]{1,6}){0,2}/?",
        ) {
            let scheme = if https { "https" } else { "http" };
            let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = MemberUrl::new(&format!("{scheme}://{host}{port_text}{path}")).unwrap();
            let default = if https { 443 } else { 80 };
            let lower = host.to_ascii_lowercase();
            proptest::prop_assert_eq!(url.host(), lower.as_str());
            proptest::prop_assert_eq!(url.port(), port.unwrap_or(default));
            proptest::prop_assert_eq!(
                url.connect_host(),
                lower.trim_start_matches('[').trim_end_matches(']')
            );
            let authority = if url.port() == default {
                lower
            } else {
                format!("{lower}:{}", url.port())
            };
            proptest::prop_assert_eq!(url.authority(), authority.as_str());
            proptest::prop_assert_eq!(format!("{}{}", url.origin(), url.path()), url.as_str());
            proptest::prop_assert_eq!(url.path(), path.trim_end_matches('/'));
        }

        #[test]
        fn member_url_parsing_never_panics(text in "\\PC{0,40}") {
            if let Ok(url) = MemberUrl::new(&text) {
                let _ = (url.host(), url.port(), url.authority(), url.origin(), url.path());
            }
        }
    }

    #[test]
    fn member_set() {
        let mut m = MemberParams::new("http://a").unwrap();
        m.set("loadfactor", "2.25").unwrap();
        m.set("LbSet", "3").unwrap();
        m.set("route", "n1").unwrap();
        m.set("redirect", "n2").unwrap();
        m.set("retry", "0").unwrap();
        m.set("status", "+H-D").unwrap();
        assert_eq!(m.load_factor.lbf(), 225);
        assert_eq!(m.lb_set.get(), 3);
        assert_eq!(m.route.as_ref().unwrap().as_str(), "n1");
        assert_eq!(m.retry, Duration::ZERO);
        assert_eq!(m.status, StatusFlags::HOT_STANDBY);
        assert!(matches!(
            m.set("bogus", "1"),
            Err(ParamError::UnknownParameter { .. })
        ));
        let err = m.set("status", "Q").unwrap_err();
        assert!(err.to_string().contains("status"));
        assert!(m.set("retry", "500ms").is_err());
        m.set("connectiontimeout", "250ms").unwrap();
        assert_eq!(m.connection_timeout, Some(Duration::from_millis(250)));
        m.set("connectiontimeout", "3").unwrap();
        assert_eq!(m.connection_timeout, Some(Duration::from_secs(3)));
        assert!(m.set("connectiontimeout", "0").is_err());
        m.set("timeout", "5").unwrap();
        assert!(m.set("timeout", "0").is_err());
        m.set("max", "10").unwrap();
        m.set("ttl", "30").unwrap();
        m.set("disablereuse", "On").unwrap();
        assert!(m.disable_reuse);
        m.set("enablereuse", "On").unwrap();
        assert!(!m.disable_reuse);
        m.set("keepalive", "on").unwrap();
        assert_eq!(
            (m.max, m.ttl, m.keepalive),
            (Some(10), Some(Duration::from_secs(30)), true)
        );
        assert!(m.set("route", &"r".repeat(64)).is_err());
        m.set("HcMethod", "GET").unwrap();
        m.set("hcinterval", "200ms").unwrap();
        m.set("hcuri", "/up").unwrap();
        assert_eq!(m.hc.method, crate::HcMethod::Get);
        assert_eq!(m.hc.interval, Duration::from_millis(200));
        assert_eq!(m.hc.uri.as_str(), "/up");
        assert_eq!(
            m.set("hcinterval", "99ms").unwrap_err().param(),
            "hcinterval"
        );
        assert_eq!(m.set("hctemplate", "t").unwrap_err().param(), "hctemplate");
        assert!(matches!(
            m.set("hcbogus", "1"),
            Err(ParamError::UnknownParameter { .. })
        ));
    }

    #[test]
    fn balancer_set() {
        let mut b = BalancerParams::new("Cluster");
        assert_eq!(b.name, "balancer://cluster");
        assert!(b.force_recovery);
        assert_eq!(b.sticky_session_sep, Some('.'));
        b.set("stickysessionsep", "Off").unwrap();
        assert_eq!(b.sticky_session_sep, None);
        b.set("stickysessionsep", "!").unwrap();
        assert_eq!(b.sticky_session_sep, Some('!'));
        assert!(b.set("stickysessionsep", "ab").is_err());
        b.set("nofailover", "On").unwrap();
        b.set("forcerecovery", "off").unwrap();
        b.set("maxattempts", "0").unwrap();
        b.set("timeout", "2").unwrap();
        b.set("nonce", "None").unwrap();
        b.set("growth", "4").unwrap();
        assert!(b.no_failover && !b.force_recovery);
        assert_eq!(b.max_attempts, Some(0));
        assert_eq!(b.nonce, Nonce::Disabled);
        assert!(b.set("failonstatus", "500,99").is_err());
        assert!(b.set("growth", "101").is_err());
        assert!(b.set("nofailover", "yes").is_err());
        assert!(b.set("stickysession", &"s".repeat(64)).is_err());
        assert!(b.set("stickysession", "a|").is_err());
        assert!(b.set("lbmethod", "roundrobin").is_err());
        assert!(b.set("nonce", &"n".repeat(37)).is_err());
    }
}
