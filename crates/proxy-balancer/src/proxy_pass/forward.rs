//! The request side of the hop to a member, as a tower layer: [`ForwardLayer`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HOST, TE, UPGRADE};
use http::{Extensions, HeaderValue, Request, Version};
use proxy_balancer_core::PeerAddr;
use tower_layer::Layer;
use tower_service::Service;

use super::headers::{add_forwarded, strip_hop_by_hop, ForwardedHeaders};

/// The forwarding layer's decision that the member gets the client's `Host`
/// (`ProxyPreserveHost On`), as a request extension.
///
/// [`Forward`] inserts it when [`ForwardedHeaders::preserve_host`] is on, and removes it
/// otherwise; the built-in member client ([`HttpMember`](crate::client::HttpMember)) then
/// keeps the request's `Host` when it is present, and sets `Host` to the member's authority
/// in every other case. A member service of your own should do the same.
///
/// # Apache
///
/// `ProxyPreserveHost On`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PreserveHost;

/// A protocol upgrade (`Upgrade: websocket`) through the proxy, as a request or response
/// extension.
///
/// - **On a request**: the `Upgrade` the client sent (its first value). [`Forward`] removes
///   `Upgrade` with the other hop-by-hop headers and keeps the value here (an HTTP/1.1
///   request only: HTTP/1.0 and HTTP/2 have no upgrade); the built-in member client
///   ([`HttpMember`](crate::client::HttpMember)) sends it on, with `Connection: Upgrade`,
///   when the member takes that protocol (its `upgrade=` parameter, or a `ws://` scheme), and
///   else sends the request without it, as Apache does. A member service of your own may
///   read it.
/// - **On a response**: the member client's decision that the answer tells the client
///   `Connection: Upgrade` and `Upgrade: <protocol>` (the `101 Switching Protocols` of a
///   tunnel it set up, or an answer such as `426 Upgrade Required` naming a protocol the
///   member takes). The response side ([`Reverse`](super::Reverse), the site) keeps those
///   two headers for it when it removes the member's hop-by-hop headers.
///
/// # Apache
///
/// mod_proxy_http's `upgrade=` handling (2.4.47 and later).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpgradeProtocol(pub HeaderValue);

/// Applies [`forward_request`] to every request. See the [module docs](super).
///
/// ```
/// use proxy_balancer::proxy_pass::{Forward, ForwardLayer, ForwardedHeaders};
/// use tower::{service_fn, Layer};
///
/// let layer = ForwardLayer::new(ForwardedHeaders::new().with_preserve_host(true));
/// assert!(layer.options().preserve_host());
/// let service: Forward<_> = layer.layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// # drop(service);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ForwardLayer {
    opts: Arc<ForwardedHeaders>,
}

// ===== impl ForwardLayer =====

impl ForwardLayer {
    /// A layer forwarding as `opts` says (`ProxyPreserveHost`, `ProxyAddHeaders`, the
    /// server name).
    #[must_use]
    pub fn new(opts: ForwardedHeaders) -> Self {
        Self {
            opts: Arc::new(opts),
        }
    }

    /// The options requests are forwarded with.
    #[must_use]
    pub fn options(&self) -> &ForwardedHeaders {
        &self.opts
    }
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Forward<S> {
        Forward {
            inner,
            opts: Arc::clone(&self.opts),
        }
    }
}

/// Prepares each request for the hop to a member ([`forward_request`]), then calls the
/// inner service. See the [module docs](super).
///
/// Responses and errors pass through untouched; pair it with
/// [`Reverse`](super::Reverse) for the response side.
#[derive(Clone, Debug)]
pub struct Forward<S> {
    inner: S,
    opts: Arc<ForwardedHeaders>,
}

// ===== impl Forward =====

impl<S> Forward<S> {
    /// Wraps `inner`, forwarding as `opts` says.
    #[must_use]
    pub fn new(inner: S, opts: ForwardedHeaders) -> Self {
        ForwardLayer::new(opts).layer(inner)
    }

    /// A [`ForwardLayer`] with these options.
    #[must_use]
    pub fn layer(opts: ForwardedHeaders) -> ForwardLayer {
        ForwardLayer::new(opts)
    }

    /// The options requests are forwarded with.
    #[must_use]
    pub fn options(&self) -> &ForwardedHeaders {
        &self.opts
    }
}

wrapper_accessors!(Forward);

impl<S, B> Service<Request<B>> for Forward<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        forward_request(&mut request, &self.opts);
        self.inner.call(request)
    }
}

// ===== free functions =====

/// Prepares a request for the hop to a member, as mod_proxy does; what [`Forward`] does to
/// each request.
///
/// 1. Takes the client's host: the authority of the request URI when it has one (HTTP/2's
///    `:authority`, or an HTTP/1.1 absolute-form target, where RFC 9112 says the `Host`
///    header is ignored), else the `Host` header.
/// 2. Takes the client's address from the request's extensions ([`client_addr`]); an
///    IPv4-mapped IPv6 address (from a dual-stack listener) counts as the IPv4 one.
/// 3. [`strip_hop_by_hop`]: `Connection` and every header it names, `Keep-Alive`,
///    `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailer`,
///    `Transfer-Encoding`, `Upgrade`; a `TE` that names `trailers` comes back as
///    `TE: trailers` (the one `TE` HTTP/2 allows: gRPC to HTTP/2 members needs it; the
///    built-in client sends no `TE` to HTTP/1.1 members); the `Upgrade` of an HTTP/1.1
///    request is kept as an [`UpgradeProtocol`] extension for the member client, which
///    decides whether it goes on.
/// 4. With [`add_headers`](ForwardedHeaders::add_headers) on (the default), appends the
///    client's IP address to `X-Forwarded-For`, the client's host to `X-Forwarded-Host`
///    and the [server name](ForwardedHeaders::server_name), if set, to
///    `X-Forwarded-Server`; an existing header gets `", "` and the new value, as Apache's
///    `apr_table_mergen`. With it off, none of the three is touched.
/// 5. With [`preserve_host`](ForwardedHeaders::preserve_host) on: sets `Host` to the
///    client's host (or the server name, when the client sent none) and inserts
///    [`PreserveHost`]; with it off, removes any [`PreserveHost`] and leaves `Host` for
///    the member client, which sends the member's authority.
///
/// Values that are not UTF-8 or not valid in a header are skipped, never a panic.
///
/// # Apache
///
/// `ProxyPreserveHost`, `ProxyAddHeaders` and the request side of mod_proxy_http
/// (`ap_proxy_create_hdrbrgd`, `ap_proxy_clear_connection`).
pub fn forward_request<B>(request: &mut Request<B>, opts: &ForwardedHeaders) {
    let client_host = client_host(request);
    // The protocol an HTTP/1.1 client asks to switch to, kept for the member client (Apache
    // 2.4.71 tunnels on `Upgrade` alone, without `Connection: Upgrade`; so does hyper).
    let upgrade = (request.version() == Version::HTTP_11)
        .then(|| request.headers().get(UPGRADE).cloned())
        .flatten();
    match upgrade {
        Some(value) => {
            request.extensions_mut().insert(UpgradeProtocol(value));
        }
        None => {
            request.extensions_mut().remove::<UpgradeProtocol>();
        }
    }
    // `::ffff:192.0.2.7` from a dual-stack listener is the IPv4 client 192.0.2.7.
    let client_ip = client_addr(request.extensions()).map(|addr| addr.ip().to_canonical());
    let headers = request.headers_mut();
    // `TE: trailers` (the client takes trailer fields, as gRPC needs) is the one `TE` that
    // HTTP/2 allows: kept for HTTP/2 members (the built-in client drops it toward HTTP/1.1
    // ones, as Apache's mod_proxy_http does).
    let trailers = headers.get_all(TE).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    });
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    add_forwarded(headers, opts, client_ip, client_host.as_ref());
    // ProxyVia, Proxy100Continue, and the member client's rules for the answer.
    super::hop::apply(
        request,
        opts.hop(),
        client_host.as_ref(),
        opts.server_name(),
    );
    let headers = request.headers_mut();
    if opts.preserve_host() {
        let host = client_host.or_else(|| {
            opts.server_name()
                .and_then(|name| HeaderValue::from_str(name).ok())
        });
        match host {
            Some(host) => {
                headers.insert(HOST, host);
            }
            None => {
                headers.remove(HOST);
            }
        }
        request.extensions_mut().insert(PreserveHost);
    } else {
        request.extensions_mut().remove::<PreserveHost>();
    }
}

/// The client's address, from a request's extensions: a [`PeerAddr`] the server put there,
/// or, with the `axum` feature, axum's `ConnectInfo<SocketAddr>`
/// (`into_make_service_with_connect_info::<SocketAddr>()`).
#[must_use]
pub fn client_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(peer) = extensions.get::<PeerAddr>() {
        return Some(peer.0);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    None
}

/// The host the client asked for: the URI's authority (without any `user@`), else `Host`.
fn client_host<B>(request: &Request<B>) -> Option<HeaderValue> {
    if let Some(authority) = request.uri().authority() {
        let text = authority.as_str();
        let host = text.rsplit_once('@').map_or(text, |(_, host)| host);
        if let Ok(value) = HeaderValue::from_str(host) {
            return Some(value);
        }
    }
    request.headers().get(HOST).cloned()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::header::CONNECTION;
    use tower::{service_fn, ServiceExt};

    use super::*;

    fn request(uri: &str) -> Request<()> {
        Request::get(uri).body(()).expect("valid")
    }

    #[test]
    fn preserve_host_keeps_the_clients_host_and_marks_the_request() {
        let opts = ForwardedHeaders::new().with_preserve_host(true);
        let mut req = request("/x");
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("www.example.com"));
        // A client naming Host in Connection does not take it away.
        req.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("host"));
        forward_request(&mut req, &opts);
        assert_eq!(req.headers()[HOST], "www.example.com");
        assert_eq!(req.extensions().get::<PreserveHost>(), Some(&PreserveHost));
    }

    #[test]
    fn an_http2_authority_is_the_clients_host() {
        let opts = ForwardedHeaders::new().with_preserve_host(true);
        let mut req = request("http://user@www.example.com:8443/x");
        forward_request(&mut req, &opts);
        assert_eq!(req.headers()[HOST], "www.example.com:8443");
        assert_eq!(req.headers()["x-forwarded-host"], "www.example.com:8443");
    }

    #[test]
    fn without_any_host_the_server_name_is_used_or_host_removed() {
        let named = ForwardedHeaders::new()
            .with_preserve_host(true)
            .with_server_name("proxy1.example.com");
        let mut req = request("/x");
        forward_request(&mut req, &named);
        assert_eq!(req.headers()[HOST], "proxy1.example.com");
        assert!(!req.headers().contains_key("x-forwarded-host"));

        let unnamed = ForwardedHeaders::new().with_preserve_host(true);
        let mut req = request("/x");
        forward_request(&mut req, &unnamed);
        assert!(!req.headers().contains_key(HOST));
        assert!(req.extensions().get::<PreserveHost>().is_some());
    }

    #[test]
    fn preserve_host_off_removes_a_stale_marker_and_leaves_host_to_the_member_client() {
        let mut req = request("/x");
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("www.example.com"));
        req.extensions_mut().insert(PreserveHost);
        req.extensions_mut()
            .insert(PeerAddr("[2001:db8::7]:4000".parse().expect("an address")));
        forward_request(&mut req, &ForwardedHeaders::new());
        assert_eq!(req.extensions().get::<PreserveHost>(), None);
        assert_eq!(req.headers()[HOST], "www.example.com");
        assert_eq!(req.headers()["x-forwarded-for"], "2001:db8::7");
    }

    #[test]
    fn opaque_header_bytes_pass_through_without_panic() {
        let mut req = request("/x");
        req.headers_mut().insert(
            HOST,
            HeaderValue::from_bytes(b"h\xffst").expect("opaque bytes"),
        );
        req.headers_mut().insert(
            CONNECTION,
            HeaderValue::from_bytes(b"\xfe, x-a,,\t").expect("opaque bytes"),
        );
        req.headers_mut().insert(
            "x-forwarded-host",
            HeaderValue::from_bytes(b"\xfe").expect("opaque bytes"),
        );
        forward_request(&mut req, &ForwardedHeaders::new().with_preserve_host(true));
        assert_eq!(req.headers()[HOST].as_bytes(), b"h\xffst");
        assert_eq!(
            req.headers()["x-forwarded-host"].as_bytes(),
            b"\xfe, h\xffst"
        );
    }

    #[test]
    fn an_ipv4_mapped_client_is_forwarded_as_ipv4() {
        let mut req = request("/x");
        req.extensions_mut().insert(PeerAddr(
            "[::ffff:192.0.2.7]:4000".parse().expect("an address"),
        ));
        forward_request(&mut req, &ForwardedHeaders::new());
        assert_eq!(req.headers()["x-forwarded-for"], "192.0.2.7");
    }

    #[test]
    fn client_addr_reads_peer_addr() {
        let mut extensions = Extensions::new();
        assert_eq!(client_addr(&extensions), None);
        let addr: SocketAddr = "192.0.2.7:50000".parse().expect("an address");
        extensions.insert(PeerAddr(addr));
        assert_eq!(client_addr(&extensions), Some(addr));
    }

    #[cfg(feature = "axum")]
    #[test]
    fn client_addr_reads_axum_connect_info() {
        let mut extensions = Extensions::new();
        let addr: SocketAddr = "192.0.2.8:50000".parse().expect("an address");
        extensions.insert(axum::extract::ConnectInfo(addr));
        assert_eq!(client_addr(&extensions), Some(addr));
    }

    #[tokio::test]
    async fn the_layer_forwards_before_calling_the_inner_service() {
        let inner = service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(req.headers().get("x-forwarded-for").cloned())
        });
        let service = ForwardLayer::default().layer(inner);
        let mut req = request("/x");
        req.extensions_mut()
            .insert(PeerAddr("127.0.0.1:1".parse().expect("an address")));
        let seen = service.oneshot(req).await.expect("infallible");
        assert_eq!(seen, Some(HeaderValue::from_static("127.0.0.1")));
    }
}
