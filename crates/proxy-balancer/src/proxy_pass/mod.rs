//! The reverse-proxy half of mod_proxy: `ProxyPass`/`ProxyPassReverse` path mapping, and
//! the request and response headers of the hop to a member, as tower layers and as pure
//! functions on [`http`] types. No I/O.
//!
//! Around forwarding one request to a balancer member a reverse proxy:
//! 1. picks the [`ProxyPass`] line whose prefix [`matches`](ProxyPass::matches) the path,
//!    and, once the balancer chose a member, [`map`s](ProxyPass::map) the request URI onto
//!    that member's URL;
//! 2. prepares the request: [`ForwardLayer`] (or [`forward_request`]) drops hop-by-hop
//!    headers, adds `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Server`, and
//!    decides `ProxyPreserveHost`, which it hands to the member client as the
//!    [`PreserveHost`] extension;
//! 3. rewrites the response: [`ReverseLayer`] drops hop-by-hop headers, applies
//!    `ProxyPassReverse` to `Location`, `Content-Location` and `URI` (from the URL of the
//!    member that answered, read from the [`BalancerInfo`](crate::BalancerInfo) extension,
//!    to the front URL), and `ProxyPassReverseCookieDomain`/`Path` to `Set-Cookie`.
//!
//! # The layers
//!
//! Stack them around a [`Balancer`](crate::Balancer) in either order; both read what the
//! client sent (the `Host`, or the URI's authority for HTTP/2). The client's address, for
//! `X-Forwarded-For`, is read from the request's extensions ([`client_addr`]): a
//! [`PeerAddr`](crate::PeerAddr) the server puts there, or, with the `axum` feature,
//! axum's `ConnectInfo<SocketAddr>`.
//!
//! Apache's defaults: `ProxyPreserveHost Off`, `ProxyAddHeaders On`, one
//! `ProxyPassReverse`. The member here is an in-process service that redirects to itself.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use http::{header, Request, Response};
//! use http_body_util::Empty;
//! use proxy_balancer::balancer::ReplayBody;
//! use proxy_balancer::proxy_pass::{ForwardLayer, ForwardedHeaders, ProxyPassReverse, ReverseLayer};
//! use proxy_balancer::{Balancer, BalancerParams, BalancerStore, Member, MemberParams, PeerAddr};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! # let now = Instant::now();
//! let store = Arc::new(BalancerStore::new(
//!     BalancerParams::new("balancer://mycluster"),
//!     [MemberParams::new("http://10.0.0.2:8080")?],
//!     now,
//! )?);
//! // The member answers `302 Location: http://10.0.0.2:8080/login`, and shows what it got.
//! let member = |member: &Member| {
//!     let location = format!("{}/login", member.url());
//!     service_fn(move |request: Request<ReplayBody<Empty<Bytes>>>| {
//!         let mut response = Response::new(Empty::<Bytes>::new());
//!         *response.status_mut() = http::StatusCode::FOUND;
//!         let headers = response.headers_mut();
//!         headers.insert(header::LOCATION, location.parse().expect("a valid value"));
//!         for name in ["x-forwarded-for", "x-forwarded-host", "x-private"] {
//!             if let Some(value) = request.headers().get(name) {
//!                 headers.insert(format!("seen-{name}").parse::<http::HeaderName>().expect("valid"), value.clone());
//!             }
//!         }
//!         async move { Ok::<_, Infallible>(response) }
//!     })
//! };
//!
//! // ProxyPass        "/" "balancer://mycluster/"
//! // ProxyPassReverse "/" "balancer://mycluster/"
//! let proxy = ServiceBuilder::new()
//!     .layer(ReverseLayer::new().with_reverse(ProxyPassReverse::new("/", "balancer://mycluster/")?))
//!     .layer(ForwardLayer::new(ForwardedHeaders::new()))
//!     .service(Balancer::new(store, member));
//!
//! let request = Request::get("/account")
//!     .header(header::HOST, "www.example.com")
//!     .header(header::CONNECTION, "x-private")
//!     .header("x-private", "hop-by-hop")
//!     .extension(PeerAddr("192.0.2.7:50000".parse()?)) // put there by the server
//!     .body(Empty::<Bytes>::new())?;
//! let response = proxy.oneshot(request).await?;
//! assert_eq!(response.headers()[header::LOCATION], "http://www.example.com/login");
//! assert_eq!(response.headers()["seen-x-forwarded-for"], "192.0.2.7");
//! assert_eq!(response.headers()["seen-x-forwarded-host"], "www.example.com");
//! assert!(!response.headers().contains_key("seen-x-private"));
//! # Ok(())
//! # }
//! ```
//!
//! Customised: `ProxyPreserveHost On`, a `ServerName`, HTTPS in front, a sub-path, and
//! the member's cookies moved to the front's domain and path:
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use http::uri::Scheme;
//! use http::{header, Request, Response};
//! use http_body_util::Empty;
//! use proxy_balancer::balancer::ReplayBody;
//! use proxy_balancer::proxy_pass::{
//!     ForwardLayer, ForwardedHeaders, PreserveHost, ProxyPassReverse, ReverseLayer,
//! };
//! use proxy_balancer::{Balancer, BalancerParams, BalancerStore, Member, MemberParams};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! # let now = Instant::now();
//! let store = Arc::new(BalancerStore::new(
//!     BalancerParams::new("balancer://shop"),
//!     [MemberParams::new("http://10.0.0.3:8080")?],
//!     now,
//! )?);
//! let member = |member: &Member| {
//!     let location = format!("{}/shop/cart", member.url());
//!     service_fn(move |request: Request<ReplayBody<Empty<Bytes>>>| {
//!         // The built-in member client keeps this Host because of the PreserveHost mark.
//!         assert!(request.extensions().get::<PreserveHost>().is_some());
//!         let mut response = Response::new(Empty::<Bytes>::new());
//!         let headers = response.headers_mut();
//!         headers.insert(header::LOCATION, location.parse().expect("a valid value"));
//!         headers.insert(header::SET_COOKIE, "cart=7; Domain=shop.internal; Path=/shop".parse().expect("valid"));
//!         headers.insert("seen-host", request.headers()[header::HOST].clone());
//!         headers.insert("seen-server", request.headers()["x-forwarded-server"].clone());
//!         async move { Ok::<_, Infallible>(response) }
//!     })
//! };
//!
//! // ProxyPreserveHost            On
//! // ProxyPassReverse             "/store" "balancer://shop/shop"
//! // ProxyPassReverseCookieDomain shop.internal www.example.com
//! // ProxyPassReverseCookiePath   /shop /store
//! let forward = ForwardedHeaders::new()
//!     .with_preserve_host(true)
//!     .with_server_name("proxy1.example.com");
//! let reverse = ReverseLayer::new()
//!     .with_reverse(ProxyPassReverse::new("/store", "balancer://shop/shop")?)
//!     .with_cookie_domain("shop.internal", "www.example.com")
//!     .with_cookie_path("/shop", "/store")
//!     .with_front_scheme(Scheme::HTTPS);
//! let proxy = ServiceBuilder::new()
//!     .layer(reverse)
//!     .layer(ForwardLayer::new(forward))
//!     .service(Balancer::new(store, member));
//!
//! let request = Request::get("/store/checkout")
//!     .header(header::HOST, "www.example.com")
//!     .body(Empty::<Bytes>::new())?;
//! let response = proxy.oneshot(request).await?;
//! let headers = response.headers();
//! assert_eq!(headers[header::LOCATION], "https://www.example.com/store/cart");
//! assert_eq!(headers[header::SET_COOKIE], "cart=7; Domain=www.example.com; Path=/store");
//! assert_eq!(headers["seen-host"], "www.example.com");
//! assert_eq!(headers["seen-server"], "proxy1.example.com");
//! # Ok(())
//! # }
//! ```
//!
//! # The pure functions
//!
//! Apache httpd 2.4 is the reference. The choices where it leaves room, and the few places
//! where we differ on purpose, are in the docs of [`ProxyPass`], [`reverse_url`],
//! [`ProxyPassReverseCookie`] and [`prepare_request_headers`]. In short: the site matches
//! a path as Apache does, decoded and normalised ([`RequestPath`]: `%2F` and `%00` refused
//! with 404 unless `AllowEncodedSlashes` says otherwise, a bad escape or a `..` above the
//! root with 400), and forwards it encoded by mod_proxy's rules ([`encode_path`]), or as
//! sent with `nocanon` ([`ProxyPass::with_nocanon`]); the pure [`ProxyPass::matches`] and
//! [`ProxyPass::map`] take the path as received and only remove dot segments;
//! `/app` matches `/app/x` but not `/apple`, as in Apache 2.4; a trailing `/` on a member
//! URL is ignored; `ProxyPassReverse` only rewrites a member URL that ends at a URL
//! boundary; cookie paths are rewritten by prefix at a segment boundary and cookie domains
//! only when whole; and `X-Forwarded-Server` is sent only when a server name is configured.
//!
//! # From Apache to Rust
//!
//! | Apache httpd | proxy-balancer |
//! | --- | --- |
//! | `ProxyPass "/app" "balancer://mycluster/app"` | [`ProxyPass::new`] |
//! | prefix matching (`alias_match` in `proxy_trans`) | [`ProxyPass::matches_request`], [`ProxyPass::matches`] |
//! | the decoded, normalised path (`ap_normalize_path`, `ap_unescape_url`: `r->uri`) | [`RequestPath`] |
//! | `AllowEncodedSlashes Off\|On\|NoDecode` | [`EncodedSlashes`] |
//! | path encoding for the member (`ap_proxy_canonenc_ex`), `ProxyPass … nocanon` | [`ProxyPass::forward_path`], [`encode_path`], [`ProxyPass::with_nocanon`] |
//! | request URL for the member (`proxy_trans` + mod_proxy_balancer's `rewrite_url`) | [`ProxyPass::map`], [`ProxyPass::map_path`] |
//! | the request side of mod_proxy_http (`ap_proxy_create_hdrbrgd`) | [`ForwardLayer`], [`Forward`], [`forward_request`] |
//! | `ProxyPreserveHost On\|Off` | [`ForwardedHeaders::with_preserve_host`] in a [`ForwardLayer`]; the [`PreserveHost`] extension tells the member client |
//! | `ProxyAddHeaders On\|Off` | [`ForwardedHeaders::with_add_headers`] |
//! | `ServerName` in `X-Forwarded-Server` | [`ForwardedHeaders::with_server_name`] |
//! | the client address (`REMOTE_ADDR`) | [`PeerAddr`](crate::PeerAddr) extension, or axum's `ConnectInfo<SocketAddr>` with the `axum` feature ([`client_addr`]) |
//! | `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Server`, `Host` on a header map | [`prepare_request_headers`] |
//! | `ProxyPassReverse "/app" "balancer://mycluster/app"` | [`ReverseLayer::with_reverse`], [`ProxyPassReverse`], [`ProxyPass::reverse`] |
//! | `ProxyPassReverse` on one URL / on the response headers | [`reverse_url`], [`reverse_headers`] |
//! | `ProxyPassReverseCookieDomain internal public` | [`ReverseLayer::with_cookie_domain`], [`ProxyPassReverseCookie::with_domain`], [`reverse_cookie_domain`] |
//! | `ProxyPassReverseCookiePath internal public` | [`ReverseLayer::with_cookie_path`], [`ProxyPassReverseCookie::with_path`], [`reverse_cookie_path`] |
//! | hop-by-hop removal (`ap_proxy_clear_connection`) | [`ForwardLayer`], [`ReverseLayer`], [`strip_hop_by_hop`], [`is_hop_by_hop`] |
//!
//! Not covered: `ProxyPass /path !` and `ProxyPassMatch` (the [site](crate::site) has them),
//! `ProxyPass` flags other than `nocanon` (`noquery`, `mapping=`), `interpolate` on `ProxyPassReverse*`, `ProxyVia`, and
//! `UseCanonicalName` (the front URL is the request's own host).
//!
//! # Examples of the pure functions
//!
//! Apache's defaults, everything under `/` to one balancer:
//!
//! ```
//! use http::header::{CONNECTION, HOST, LOCATION};
//! use http::{HeaderMap, HeaderValue, Uri};
//! use proxy_balancer::proxy_pass::{prepare_request_headers, strip_hop_by_hop, ForwardedHeaders, ProxyPass};
//!
//! // ProxyPass        "/" "balancer://mycluster/"
//! // ProxyPassReverse "/" "balancer://mycluster/"
//! let pass = ProxyPass::new("/", "balancer://mycluster/")?;
//! assert_eq!(pass.balancer_name(), "balancer://mycluster");
//! assert!(pass.matches("/a/b"));
//!
//! // The balancer chose the member `http://127.0.0.1:8001` for `GET /a/b?q=1`.
//! let uri: Uri = "/a/b?q=1".parse()?;
//! assert_eq!(pass.map(&uri, "http://127.0.0.1:8001")?, "http://127.0.0.1:8001/a/b?q=1");
//!
//! let mut request = HeaderMap::new();
//! request.insert(HOST, HeaderValue::from_static("www.example.com"));
//! request.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-hop"));
//! request.insert("x-hop", HeaderValue::from_static("1"));
//! let client_ip = "192.0.2.7".parse().ok();
//! prepare_request_headers(&mut request, &ForwardedHeaders::default(), client_ip, "127.0.0.1:8001");
//! assert_eq!(request[HOST], "127.0.0.1:8001");
//! assert_eq!(request["x-forwarded-for"], "192.0.2.7");
//! assert_eq!(request["x-forwarded-host"], "www.example.com");
//! assert!(!request.contains_key(CONNECTION) && !request.contains_key("x-hop"));
//!
//! // The member redirects to itself; the client must see the proxy instead.
//! let mut response = HeaderMap::new();
//! response.insert(LOCATION, HeaderValue::from_static("http://127.0.0.1:8001/login"));
//! strip_hop_by_hop(&mut response);
//! pass.reverse().reverse_headers(&mut response, "http://127.0.0.1:8001", "https://www.example.com");
//! assert_eq!(response[LOCATION], "https://www.example.com/login");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Customised: a sub-path, members with a base path, `ProxyPreserveHost On` and a
//! `ServerName`, behind another proxy that already set `X-Forwarded-For`:
//!
//! ```
//! use http::header::{HOST, LOCATION};
//! use http::{HeaderMap, HeaderValue, Uri};
//! use proxy_balancer::proxy_pass::{prepare_request_headers, ForwardedHeaders, ProxyPass, ProxyPassError};
//!
//! // ProxyPass        "/app" "balancer://MyCluster/app"
//! // ProxyPassReverse "/app" "balancer://MyCluster/app"
//! // BalancerMember   "http://10.0.0.2:8080/base"
//! let pass = ProxyPass::new("/app", "balancer://MyCluster/app")?;
//! assert_eq!(pass.to_string(), r#"ProxyPass "/app" "balancer://mycluster/app""#);
//! assert!(pass.matches("/app") && pass.matches("/app/y") && !pass.matches("/apple"));
//!
//! let member = "http://10.0.0.2:8080/base";
//! let uri: Uri = "https://www.example.com/app/y%20z?x=1".parse()?;
//! assert_eq!(pass.map(&uri, member)?, "http://10.0.0.2:8080/base/app/y%20z?x=1");
//! let other: Uri = "/static/logo.png".parse()?;
//! assert!(matches!(pass.map(&other, member), Err(ProxyPassError::NoMatch { .. })));
//!
//! let opts = ForwardedHeaders::new()
//!     .with_preserve_host(true)
//!     .with_server_name("proxy1.example.com");
//! let mut request = HeaderMap::new();
//! request.insert(HOST, HeaderValue::from_static("www.example.com"));
//! request.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
//! prepare_request_headers(&mut request, &opts, "2001:db8::7".parse().ok(), "10.0.0.2:8080");
//! assert_eq!(request[HOST], "www.example.com");
//! assert_eq!(request["x-forwarded-for"], "203.0.113.9, 2001:db8::7");
//! assert_eq!(request["x-forwarded-server"], "proxy1.example.com");
//!
//! let mut response = HeaderMap::new();
//! response.insert(LOCATION, HeaderValue::from_static("http://10.0.0.2:8080/base/app/done?ok"));
//! let changed = pass.reverse().reverse_headers(&mut response, member, "https://www.example.com");
//! assert_eq!(changed, 1);
//! assert_eq!(response[LOCATION], "https://www.example.com/app/done?ok");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod canonical;
mod cookie;
mod error;
mod forward;
pub mod future;
mod headers;
mod hop;
mod join;
mod mapping;
mod reverse;
mod reverse_layer;

pub use self::canonical::{encode_path, EncodedSlashes, PathRefusal, RequestPath};
pub use self::cookie::{reverse_cookie_domain, reverse_cookie_path, ProxyPassReverseCookie};
pub use self::error::ProxyPassError;
pub use self::forward::{
    client_addr, forward_request, Forward, ForwardLayer, PreserveHost, UpgradeProtocol,
};
pub use self::headers::{
    is_hop_by_hop, prepare_request_headers, strip_hop_by_hop, ForwardedHeaders,
};
pub use self::hop::{ErrorOverride, HopOptions, HopRules, Via};
#[cfg(feature = "health-probe")]
pub(crate) use self::join::join_text;
pub use self::join::join_uri;
pub use self::mapping::ProxyPass;
pub use self::reverse::{reverse_headers, reverse_url, ProxyPassReverse};
pub use self::reverse_layer::{Reverse, ReverseLayer};

#[cfg(test)]
mod tests;
