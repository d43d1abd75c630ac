//! The response side of the hop from a member, as a tower layer: [`ReverseLayer`].

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HOST;
use http::uri::Scheme;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::cookie::ProxyPassReverseCookie;
use super::future::ResponseFuture;
use super::headers::strip_response_hop_by_hop;
use super::reverse::{reverse_headers_lines, ProxyPassReverse};
use crate::balancer::BalancerInfo;

/// What [`Reverse`] applies to each response.
#[derive(Debug, Clone)]
pub(super) struct ReverseConfig {
    lines: Vec<ProxyPassReverse>,
    cookies: ProxyPassReverseCookie,
    scheme: Scheme,
    /// `host[:port]` for requests that name no host (HTTP/1.0 without `Host`).
    server_name: Option<String>,
}

/// Rewrites each response on its way back from a member. See the [module docs](super).
///
/// ```
/// use http::uri::Scheme;
/// use proxy_balancer::proxy_pass::{ProxyPassReverse, ReverseLayer};
///
/// // ProxyPassReverse             "/" "balancer://mycluster/"
/// // ProxyPassReverseCookieDomain backend.internal www.example.com
/// // ProxyPassReverseCookiePath   /app /
/// let layer = ReverseLayer::new()
///     .with_reverse(ProxyPassReverse::new("/", "balancer://mycluster/")?)
///     .with_cookie_domain("backend.internal", "www.example.com")
///     .with_cookie_path("/app", "/")
///     .with_front_scheme(Scheme::HTTPS);
/// assert_eq!(layer.reverses().len(), 1);
/// # Ok::<(), proxy_balancer::proxy_pass::ProxyPassError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReverseLayer {
    config: Arc<ReverseConfig>,
}

// ===== impl ReverseLayer =====

impl ReverseLayer {
    /// A layer that only removes hop-by-hop headers from responses; add lines with the
    /// `with_` methods. The front scheme is `http`.
    #[must_use]
    pub fn new() -> Self {
        Self {
            config: Arc::new(ReverseConfig {
                lines: Vec::new(),
                cookies: ProxyPassReverseCookie::new(),
                scheme: Scheme::HTTP,
                server_name: None,
            }),
        }
    }

    /// Adds a `ProxyPassReverse` line. It applies to responses whose
    /// [`BalancerInfo`] names its balancer (compared without case and without
    /// `balancer://`); each URL is rewritten by the first line that matches it.
    ///
    /// # Apache
    ///
    /// `ProxyPassReverse "/front" "balancer://name/backend"`.
    #[must_use]
    pub fn with_reverse(mut self, line: ProxyPassReverse) -> Self {
        Arc::make_mut(&mut self.config).lines.push(line);
        self
    }

    /// Adds a `ProxyPassReverseCookieDomain internal public` line (see
    /// [`ProxyPassReverseCookie`]).
    ///
    /// # Apache
    ///
    /// `ProxyPassReverseCookieDomain internal public`.
    #[must_use]
    pub fn with_cookie_domain(
        mut self,
        internal: impl Into<String>,
        public: impl Into<String>,
    ) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.cookies = std::mem::take(&mut config.cookies).with_domain(internal, public);
        self
    }

    /// Adds a `ProxyPassReverseCookiePath internal public` line (see
    /// [`ProxyPassReverseCookie`]).
    ///
    /// # Apache
    ///
    /// `ProxyPassReverseCookiePath internal public`.
    #[must_use]
    pub fn with_cookie_path(
        mut self,
        internal: impl Into<String>,
        public: impl Into<String>,
    ) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.cookies = std::mem::take(&mut config.cookies).with_path(internal, public);
        self
    }

    /// Replaces the cookie lines with `cookies`.
    #[must_use]
    pub fn with_cookies(mut self, cookies: ProxyPassReverseCookie) -> Self {
        Arc::make_mut(&mut self.config).cookies = cookies;
        self
    }

    /// The scheme of the front URLs that `ProxyPassReverse` writes, for requests whose URI
    /// has none (HTTP/1.1 origin-form); `http` unless set. Set `https` behind TLS.
    ///
    /// # Apache
    ///
    /// The scheme of the virtual host (`ServerName https://…`).
    #[must_use]
    pub fn with_front_scheme(mut self, scheme: Scheme) -> Self {
        Arc::make_mut(&mut self.config).scheme = scheme;
        self
    }

    /// The host (and port, if not the scheme's default) of the front URLs that
    /// `ProxyPassReverse` writes for requests that name no host (an HTTP/1.0 request
    /// without `Host`); without it they get a relative URL.
    ///
    /// # Apache
    ///
    /// `ServerName host[:port]`, which Apache uses for self-referential URLs.
    #[must_use]
    pub fn with_server_name(mut self, host_port: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).server_name = Some(host_port.into());
        self
    }

    /// The `ProxyPassReverse` lines, in order.
    #[must_use]
    pub fn reverses(&self) -> &[ProxyPassReverse] {
        &self.config.lines
    }

    /// The cookie lines.
    #[must_use]
    pub fn cookies(&self) -> &ProxyPassReverseCookie {
        &self.config.cookies
    }
}

impl Default for ReverseLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ReverseLayer {
    type Service = Reverse<S>;

    fn layer(&self, inner: S) -> Reverse<S> {
        Reverse {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Rewrites each response from a member for the client: hop-by-hop headers removed,
/// `ProxyPassReverse` on `Location`, `Content-Location` and `URI`, and the cookie lines on
/// `Set-Cookie`. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct Reverse<S> {
    inner: S,
    config: Arc<ReverseConfig>,
}

// ===== impl Reverse =====

impl<S> Reverse<S> {
    /// Wraps `inner` with the lines of `layer`.
    #[must_use]
    pub fn new(inner: S, layer: &ReverseLayer) -> Self {
        layer.layer(inner)
    }
}

wrapper_accessors!(Reverse);

impl<S, ReqB, ResB> Service<Request<ReqB>> for Reverse<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let origin = (!self.config.lines.is_empty()).then(|| {
            front_origin(
                &request,
                &self.config.scheme,
                self.config.server_name.as_deref(),
            )
        });
        ResponseFuture::new(self.inner.call(request), Arc::clone(&self.config), origin)
    }
}

/// `scheme://host[:port]` of the request as the client sent it, or `""` (relative URLs)
/// when it names no host.
fn front_origin<B>(
    request: &Request<B>,
    default_scheme: &Scheme,
    server_name: Option<&str>,
) -> String {
    let uri = request.uri();
    let host = match uri.authority() {
        Some(authority) => {
            let text = authority.as_str();
            Some(text.rsplit_once('@').map_or(text, |(_, host)| host))
        }
        None => request.headers().get(HOST).and_then(|h| h.to_str().ok()),
    };
    let host = host.filter(|h| !h.is_empty()).or(server_name);
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return String::new();
    };
    // A request that came over TLS is https (mod_ssl's `http_scheme` hook), whatever the
    // configured default.
    let tls = request.extensions().get::<crate::TlsInfo>().is_some();
    let default_scheme = if tls { &Scheme::HTTPS } else { default_scheme };
    let scheme = uri.scheme().unwrap_or(default_scheme).as_str();
    let mut origin = String::with_capacity(scheme.len() + 3 + host.len());
    origin.push_str(scheme);
    origin.push_str("://");
    origin.push_str(host);
    origin
}

/// What [`ResponseFuture`] does to the response.
pub(super) fn reverse_response<B>(
    config: &ReverseConfig,
    origin: Option<&str>,
    response: Response<B>,
) -> Response<B> {
    let (mut parts, body) = response.into_parts();
    strip_response_hop_by_hop(&mut parts.headers, &parts.extensions);
    if let Some(origin) = origin {
        // A balancer line applies to its balancer's members; a plain URL line to any
        // answer, the proxy's own included.
        let info = parts.extensions.get::<BalancerInfo>();
        reverse_headers_lines(
            &mut parts.headers,
            &config.lines,
            |line| {
                line.url().is_some()
                    || info.is_some_and(|i| same_balancer(line.balancer_name(), i.balancer_name()))
            },
            info.map_or("", BalancerInfo::worker_name),
            origin,
        );
    }
    config.cookies.reverse_headers(&mut parts.headers);
    Response::from_parts(parts, body)
}

/// Whether two balancer names are the same: without case, and with or without
/// `balancer://`.
fn same_balancer(a: &str, b: &str) -> bool {
    fn bare(name: &str) -> &str {
        const PREFIX: &str = "balancer://";
        match name.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => {
                name.get(PREFIX.len()..).unwrap_or("")
            }
            _ => name,
        }
        .trim_end_matches('/')
    }
    bare(a).eq_ignore_ascii_case(bare(b))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::header::{CONNECTION, CONTENT_LOCATION, LOCATION, SET_COOKIE};
    use http::HeaderValue;
    use proxy_balancer_core::{BalancerParams, BalancerStore, Member, MemberParams};
    use tower::{service_fn, ServiceExt};

    use super::*;
    use crate::balancer::{Balancer, ReplayBody};

    /// A response with these headers, from a plain service (no `BalancerInfo`) or from a
    /// balancer `balancer://a` over one in-process member `http://10.0.0.1:1`.
    async fn respond(
        layer: &ReverseLayer,
        balanced: bool,
        headers: &[(&str, &str)],
    ) -> Response<()> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let answer = move || {
            let mut response = Response::new(http_body_util::Empty::<bytes::Bytes>::new());
            for (name, value) in &headers {
                response.headers_mut().append(
                    http::HeaderName::from_bytes(name.as_bytes()).expect("a valid name"),
                    HeaderValue::from_str(value).expect("a valid value"),
                );
            }
            response
        };
        let request = Request::get("/x")
            .header(HOST, "front.example")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("valid");
        if !balanced {
            let inner = service_fn(move |_req| {
                let response = answer();
                async move { Ok::<_, Infallible>(response) }
            });
            let response = layer.layer(inner).oneshot(request).await;
            return response.expect("infallible").map(|_| ());
        }
        let store = BalancerStore::new(
            BalancerParams::new("balancer://a"),
            [MemberParams::new("http://10.0.0.1:1").expect("a valid url")],
            tokio::time::Instant::now().into_std(),
        )
        .expect("one member");
        let balancer = Balancer::new(Arc::new(store), move |_member: &Member| {
            let answer = answer.clone();
            service_fn(
                move |_req: Request<ReplayBody<http_body_util::Empty<bytes::Bytes>>>| {
                    let response = answer();
                    async move { Ok::<_, Infallible>(response) }
                },
            )
        });
        let response = layer
            .layer(balancer)
            .oneshot(request)
            .await
            .expect("an answer");
        response.map(|_| ())
    }

    #[tokio::test]
    async fn the_first_line_of_the_answering_balancer_wins() {
        let layer = ReverseLayer::new()
            .with_reverse(ProxyPassReverse::new("/other", "balancer://b/").expect("valid"))
            .with_reverse(ProxyPassReverse::new("/x", "balancer://a/back").expect("valid"))
            .with_reverse(ProxyPassReverse::new("/y", "balancer://A/").expect("valid"));
        let response = respond(
            &layer,
            true,
            &[
                ("location", "http://10.0.0.1:1/back/p?q"),
                ("content-location", "http://10.0.0.1:1/z"),
                ("uri", "http://10.0.0.2:1/z"),
            ],
        )
        .await;
        let headers = response.headers();
        assert_eq!(headers[LOCATION], "http://front.example/x/p?q");
        assert_eq!(headers[CONTENT_LOCATION], "http://front.example/y/z");
        assert_eq!(
            headers["uri"], "http://10.0.0.2:1/z",
            "another member's URL"
        );
    }

    #[tokio::test]
    async fn without_balancer_info_only_cookies_and_hop_by_hop_change() {
        let layer = ReverseLayer::new()
            .with_reverse(ProxyPassReverse::new("/", "balancer://a/").expect("valid"))
            .with_cookie_path("/app", "/")
            .with_front_scheme(Scheme::HTTPS);
        let response = respond(
            &layer,
            false,
            &[
                ("location", "http://10.0.0.1:1/p"),
                ("set-cookie", "a=1; Path=/app/x"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
            ],
        )
        .await;
        let headers = response.headers();
        assert_eq!(headers[LOCATION], "http://10.0.0.1:1/p");
        assert_eq!(headers[SET_COOKIE], "a=1; Path=/x");
        assert!(!headers.contains_key(CONNECTION) && !headers.contains_key("x-hop"));

        let balanced = respond(&layer, true, &[("location", "http://10.0.0.1:1/p")]).await;
        assert_eq!(balanced.headers()[LOCATION], "https://front.example/p");
    }

    #[test]
    fn balancer_names_compare_without_case_and_prefix() {
        assert!(same_balancer("balancer://mycluster", "mycluster"));
        assert!(same_balancer(
            "balancer://MyCluster",
            "BALANCER://mycluster/"
        ));
        assert!(!same_balancer("balancer://a", "balancer://b"));
        assert!(!same_balancer("balancer://a", "ab"));
    }

    #[test]
    fn front_origin_from_authority_or_host() {
        let h2 = Request::get("http://www.example.com:8080/x")
            .body(())
            .expect("valid");
        assert_eq!(
            front_origin(&h2, &Scheme::HTTPS, None),
            "http://www.example.com:8080"
        );
        let h1 = Request::get("/x")
            .header(HOST, "www.example.com")
            .body(())
            .expect("valid");
        assert_eq!(
            front_origin(&h1, &Scheme::HTTPS, None),
            "https://www.example.com"
        );
        let none = Request::get("/x").body(()).expect("valid");
        assert_eq!(front_origin(&none, &Scheme::HTTP, None), "");
        // Over TLS (the server's `TlsInfo`), an HTTP/1.1 request's origin is https.
        let mut tls = Request::get("/")
            .header(HOST, "proxy:8443")
            .body(())
            .expect("valid");
        tls.extensions_mut().insert(crate::TlsInfo::default());
        assert_eq!(
            front_origin(&tls, &Scheme::HTTP, None),
            "https://proxy:8443"
        );
        assert_eq!(
            front_origin(&none, &Scheme::HTTPS, Some("proxy.example.com:8443")),
            "https://proxy.example.com:8443",
            "ServerName when the request names no host"
        );
        let opaque = Request::get("/x")
            .header(
                HOST,
                http::HeaderValue::from_bytes(b"\xffx").expect("opaque"),
            )
            .body(())
            .expect("valid");
        assert_eq!(front_origin(&opaque, &Scheme::HTTP, None), "");
    }
}
