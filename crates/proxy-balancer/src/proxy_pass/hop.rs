//! The per-server rules of the hop to a member that mod_proxy applies beside the
//! `X-Forwarded-*` headers: `ProxyVia`, `Proxy100Continue`, and, for the member client,
//! `ProxyErrorOverride` and `ProxyBadHeader` ([`HopRules`]).

use std::sync::Arc;

use http::header::{HeaderValue, EXPECT, VIA};
use http::{Request, StatusCode, Version};
use proxy_balancer_core::LocalAddr;

/// `ProxyVia`: the `Via` header on the hop to a member and on its answer.
///
/// The value is Apache's: `1.1 name[:port]` (`Full`: followed by ` (proxy-balancer/x.y.z)`),
/// with the client's HTTP version, the server name, and the port the client asked for when
/// it is not the default one (the `Host` header's; without a `Host`, the port the request
/// came in on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Via {
    /// No `Via` added (Apache's default); a client's `Via` passes as sent.
    #[default]
    Off,
    /// `Via: 1.1 name[:port]` merged into the request's and appended to the answer's.
    On,
    /// As `On`, with this software's version as a comment.
    Full,
    /// The request's `Via` removed; none added.
    Block,
}

/// A member's error answer replaced by the proxy's own (`ProxyErrorOverride On [code …]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ErrorOverride {
    codes: Vec<u16>,
}

impl ErrorOverride {
    /// Every 4xx and 5xx answer (`ProxyErrorOverride On`).
    #[must_use]
    pub const fn all() -> Self {
        Self { codes: Vec::new() }
    }

    /// Only these statuses (`ProxyErrorOverride On 502 503`); an empty list is every error.
    #[must_use]
    pub fn codes(codes: impl IntoIterator<Item = u16>) -> Self {
        Self {
            codes: codes.into_iter().collect(),
        }
    }

    /// Whether a member's `status` is replaced: a 4xx or 5xx, in the list if there is one.
    #[must_use]
    pub fn overrides(&self, status: StatusCode) -> bool {
        (status.is_client_error() || status.is_server_error())
            && (self.codes.is_empty() || self.codes.contains(&status.as_u16()))
    }
}

/// The per-server rules of the hop, part of
/// [`ForwardedHeaders`](super::ForwardedHeaders). [`Default`] is Apache's default:
/// `ProxyVia Off`, `ProxyErrorOverride Off`, `ProxyBadHeader IsError`,
/// `Proxy100Continue On`.
///
/// ```
/// use proxy_balancer::proxy_pass::{ErrorOverride, ForwardedHeaders, HopOptions, Via};
///
/// let hop = HopOptions::new()
///     .with_via(Via::On)
///     .with_error_override(Some(ErrorOverride::codes([503])))
///     .with_ignore_bad_headers(true)
///     .with_expect_continue(false);
/// let opts = ForwardedHeaders::new().with_hop(hop);
/// assert_eq!(opts.hop().via(), Via::On);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopOptions {
    via: Via,
    error_override: Option<ErrorOverride>,
    ignore_bad_headers: bool,
    expect_continue: bool,
}

impl Default for HopOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl HopOptions {
    /// Apache's defaults.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            via: Via::Off,
            error_override: None,
            ignore_bad_headers: false,
            expect_continue: true,
        }
    }

    /// # Apache
    ///
    /// `ProxyVia`.
    #[must_use]
    pub const fn with_via(mut self, via: Via) -> Self {
        self.via = via;
        self
    }

    /// # Apache
    ///
    /// `ProxyErrorOverride On [code …]` (`Some`), `Off` (`None`).
    #[must_use]
    pub fn with_error_override(mut self, error_override: Option<ErrorOverride>) -> Self {
        self.error_override = error_override;
        self
    }

    /// A member's header line that is not `name: value` is skipped (`true`) instead of
    /// failing the answer with a 502 (`false`, the default).
    ///
    /// # Apache
    ///
    /// `ProxyBadHeader Ignore` (`true`), `IsError` (`false`).
    #[must_use]
    pub const fn with_ignore_bad_headers(mut self, ignore: bool) -> Self {
        self.ignore_bad_headers = ignore;
        self
    }

    /// Forward a client's `Expect: 100-continue` to the member and hold its body until
    /// the member's `100 Continue` (`true`, the default), or remove `Expect` and send the
    /// body at once (`false`).
    ///
    /// # Apache
    ///
    /// `Proxy100Continue On|Off`.
    #[must_use]
    pub const fn with_expect_continue(mut self, forward: bool) -> Self {
        self.expect_continue = forward;
        self
    }

    /// `ProxyVia`.
    #[must_use]
    pub const fn via(&self) -> Via {
        self.via
    }

    /// `ProxyErrorOverride`.
    #[must_use]
    pub const fn error_override(&self) -> Option<&ErrorOverride> {
        self.error_override.as_ref()
    }

    /// `ProxyBadHeader Ignore`.
    #[must_use]
    pub const fn ignore_bad_headers(&self) -> bool {
        self.ignore_bad_headers
    }

    /// `Proxy100Continue`.
    #[must_use]
    pub const fn expect_continue(&self) -> bool {
        self.expect_continue
    }
}

/// What the member client does with the answer to one request, put in the request's
/// extensions by the forwarding layer: the `Via` to append to the answer
/// (`ProxyVia On|Full`), the statuses whose answer is replaced (`ProxyErrorOverride`),
/// header lines skipped or refused (`ProxyBadHeader`), and whether an
/// `Expect: 100-continue` waits for the member (`Proxy100Continue`). A member service of
/// your own may read it.
#[derive(Clone, Debug, Default)]
pub struct HopRules {
    /// The `Via` value to append to the member's answer.
    pub response_via: Option<HeaderValue>,
    /// `ProxyErrorOverride`.
    pub error_override: Option<ErrorOverride>,
    /// `ProxyBadHeader Ignore`.
    pub ignore_bad_headers: bool,
    /// The request carries `Expect: 100-continue` for the member: hold its body until the
    /// member's `100 Continue` or answer.
    pub expect_continue: bool,
}

/// This software, as `ProxyVia Full` names it.
const SOFTWARE: &str = concat!("proxy-balancer/", env!("CARGO_PKG_VERSION"));

/// Applies the hop rules to a request on its way to a member; `client_host` is the host the
/// client asked for, `server_name` the server's `ServerName`.
pub(super) fn apply<B>(
    request: &mut Request<B>,
    opts: &HopOptions,
    client_host: Option<&HeaderValue>,
    server_name: Option<&str>,
) {
    let expects = request
        .headers()
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects && !opts.expect_continue {
        // Proxy100Continue Off: the proxy answers the client's expectation itself (the
        // server sends `100 Continue` when the body is read); the member gets no `Expect`.
        request.headers_mut().remove(EXPECT);
    }
    let via = match opts.via {
        Via::Off => None,
        Via::Block => {
            request.headers_mut().remove(VIA);
            None
        }
        Via::On | Via::Full => via_value(request, opts.via, client_host, server_name),
    };
    if let Some(value) = &via {
        merge_via(request, value);
    }
    let rules = HopRules {
        response_via: via,
        error_override: opts.error_override.clone(),
        ignore_bad_headers: opts.ignore_bad_headers,
        expect_continue: expects && opts.expect_continue,
    };
    if rules.response_via.is_none()
        && rules.error_override.is_none()
        && !rules.ignore_bad_headers
        && !rules.expect_continue
    {
        request.extensions_mut().remove::<Arc<HopRules>>();
    } else {
        request.extensions_mut().insert(Arc::new(rules));
    }
}

/// Apache's `Via` value: `1.1 name[:port]` (`Full`: and ` (software)`).
fn via_value<B>(
    request: &Request<B>,
    via: Via,
    client_host: Option<&HeaderValue>,
    server_name: Option<&str>,
) -> Option<HeaderValue> {
    let version = match request.version() {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2.0",
        Version::HTTP_3 => "3.0",
        _ => "1.1",
    };
    let local = request.extensions().get::<LocalAddr>().map(|a| a.0);
    // The port the client asked for (Apache's `ap_get_server_port` with
    // `UseCanonicalName Off`): the Host header's, else none when it has no port; without a
    // Host, the port the request came in on.
    let port = match client_host.and_then(|h| h.to_str().ok()) {
        Some(host) => host_port(host),
        None => local.map(|a| a.port()),
    };
    let name = match server_name {
        Some(name) => name.to_owned(),
        // No ServerName: Apache falls back to the machine's name; the address the request
        // came in on here.
        None => local.map_or_else(|| "localhost".to_owned(), |a| a.ip().to_string()),
    };
    // The scheme's default port is left out: 443 over TLS (mod_ssl's default_port hook).
    let default_port = if request.extensions().get::<crate::TlsInfo>().is_some() {
        443
    } else {
        80
    };
    let port = port.filter(|&p| p != default_port).map(|p| format!(":{p}"));
    let mut value = format!("{version} {name}{}", port.unwrap_or_default());
    if via == Via::Full {
        value.push_str(" (");
        value.push_str(SOFTWARE);
        value.push(')');
    }
    HeaderValue::from_str(&value).ok()
}

/// The port of a `Host` value (`example.com:8080`, `[::1]:8080`), if it has one.
fn host_port(host: &str) -> Option<u16> {
    let after_ip6 = host.rsplit_once(']').map_or(host, |(_, rest)| rest);
    after_ip6.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Adds our `Via` after the request's (Apache's `apr_table_mergen`: one line,
/// `1.0 client, 1.1 proxy`).
fn merge_via<B>(request: &mut Request<B>, value: &HeaderValue) {
    let headers = request.headers_mut();
    let mut merged: Vec<u8> = Vec::new();
    for existing in headers.get_all(VIA) {
        merged.extend_from_slice(existing.as_bytes());
        merged.extend_from_slice(b", ");
    }
    if merged.is_empty() {
        headers.insert(VIA, value.clone());
        return;
    }
    merged.extend_from_slice(value.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&merged) {
        headers.insert(VIA, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version) -> Request<()> {
        let mut r = Request::new(());
        *r.version_mut() = version;
        r
    }

    #[test]
    fn via_values_as_apache_writes_them() {
        // Apache 2.4.71, `ServerName via-on.example`, `ProxyVia On`, on loopback:
        // Host 127.0.0.1:18601 → `1.1 via-on.example:18601`; Host foo → `1.1 via-on.example`;
        // Host foo:80 → `1.1 via-on.example`; Host foo:99 → `1.1 via-on.example:99`;
        // an HTTP/1.0 request → `1.0 via-on.example:18601`.
        let on = |v, host: &str| {
            let host = HeaderValue::from_str(host).unwrap();
            via_value(&request(v), Via::On, Some(&host), Some("via-on.example")).unwrap()
        };
        assert_eq!(
            on(Version::HTTP_11, "127.0.0.1:18601"),
            "1.1 via-on.example:18601"
        );
        assert_eq!(on(Version::HTTP_11, "foo"), "1.1 via-on.example");
        assert_eq!(on(Version::HTTP_11, "foo:80"), "1.1 via-on.example");
        assert_eq!(on(Version::HTTP_11, "foo:99"), "1.1 via-on.example:99");
        assert_eq!(on(Version::HTTP_10, "[::1]:99"), "1.0 via-on.example:99");
        // Over TLS (Apache 2.4.71, `ProxyVia On` in an SSLEngine On virtual host): Host
        // a.test:443 → `1.1 a.test`; a.test:80 → `1.1 a.test:80`.
        let tls = |host: &str| {
            let mut r = request(Version::HTTP_11);
            r.extensions_mut().insert(crate::TlsInfo::default());
            let host = HeaderValue::from_str(host).unwrap();
            via_value(&r, Via::On, Some(&host), Some("a.test")).unwrap()
        };
        assert_eq!(tls("a.test:443"), "1.1 a.test");
        assert_eq!(tls("a.test:80"), "1.1 a.test:80");
        assert_eq!(tls("a.test"), "1.1 a.test");
        let full = via_value(
            &request(Version::HTTP_11),
            Via::Full,
            None,
            Some("via-full.example"),
        )
        .unwrap();
        assert_eq!(full, format!("1.1 via-full.example ({SOFTWARE})").as_str());
    }

    #[test]
    fn error_override_codes() {
        assert!(ErrorOverride::all().overrides(StatusCode::NOT_FOUND));
        assert!(ErrorOverride::all().overrides(StatusCode::BAD_GATEWAY));
        assert!(!ErrorOverride::all().overrides(StatusCode::FOUND));
        let some = ErrorOverride::codes([503, 404]);
        assert!(some.overrides(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!some.overrides(StatusCode::INTERNAL_SERVER_ERROR));
    }

    #[test]
    fn block_removes_via_and_off_leaves_it() {
        let mut r = request(Version::HTTP_11);
        r.headers_mut()
            .insert(VIA, HeaderValue::from_static("1.0 client"));
        apply(&mut r, &HopOptions::new(), None, None);
        assert_eq!(r.headers()[VIA], "1.0 client");
        assert!(r.extensions().get::<Arc<HopRules>>().is_none());
        apply(&mut r, &HopOptions::new().with_via(Via::Block), None, None);
        assert!(!r.headers().contains_key(VIA));
        r.headers_mut()
            .insert(VIA, HeaderValue::from_static("1.0 client"));
        apply(
            &mut r,
            &HopOptions::new().with_via(Via::On),
            None,
            Some("p"),
        );
        assert_eq!(r.headers()[VIA], "1.0 client, 1.1 p");
    }
}
