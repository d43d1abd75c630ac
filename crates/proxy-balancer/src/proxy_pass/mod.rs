//! `ProxyPass`/`ProxyPassReverse` path mapping and the request and response headers of the
//! hop to a member, as Apache's mod_proxy does them. Pure functions on [`http`] types: no
//! I/O.
//!
//! Around forwarding one request to a balancer member a reverse proxy:
//! 1. picks the [`ProxyPass`] line whose prefix [`matches`](ProxyPass::matches) the path,
//!    and, once the balancer chose a member, [`map`s](ProxyPass::map) the request URI onto
//!    that member's URL;
//! 2. [`prepare_request_headers`]: drops hop-by-hop headers, adds `X-Forwarded-For`,
//!    `X-Forwarded-Host`, `X-Forwarded-Server`, and sets `Host`;
//! 3. on the response, [`strip_hop_by_hop`] and [`ProxyPassReverse::reverse_headers`], which
//!    rewrites `Location`, `Content-Location` and `URI` from the member's URL to the front
//!    URL.
//!
//! Apache httpd 2.4 is the reference. The choices where it leaves room, and the few places
//! where we differ on purpose, are in the docs of [`ProxyPass`], [`reverse_url`] and
//! [`prepare_request_headers`]. In short: the path is matched and forwarded still
//! percent-encoded (like `nocanon`) after dot segments are removed; `/app` matches
//! `/app/x` but not `/apple`, as in Apache 2.4; a trailing `/` on a member URL is ignored;
//! `ProxyPassReverse` only rewrites a member URL that ends at a URL boundary; and
//! `X-Forwarded-Server` is sent only when a server name is configured.
//!
//! # From Apache to Rust
//!
//! | Apache httpd | proxy-balancer |
//! | --- | --- |
//! | `ProxyPass "/app" "balancer://mycluster/app"` | [`ProxyPass::new`] |
//! | prefix matching (`alias_match` in `proxy_trans`) | [`ProxyPass::matches`] |
//! | request URL for the member (`proxy_trans` + mod_proxy_balancer's `rewrite_url`) | [`ProxyPass::map`], [`ProxyPass::map_path`] |
//! | `ProxyPassReverse "/app" "balancer://mycluster/app"` | [`ProxyPassReverse`], [`ProxyPass::reverse`] |
//! | `ProxyPassReverse` on one URL / on the response headers | [`reverse_url`], [`reverse_headers`] |
//! | `ProxyPreserveHost On\|Off` | [`ForwardedHeaders::with_preserve_host`] |
//! | `ProxyAddHeaders On\|Off` | [`ForwardedHeaders::with_add_headers`] |
//! | `ServerName` in `X-Forwarded-Server` | [`ForwardedHeaders::with_server_name`] |
//! | `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Server`, `Host` | [`prepare_request_headers`] |
//! | hop-by-hop removal (`ap_proxy_clear_connection`) | [`strip_hop_by_hop`], [`is_hop_by_hop`] |
//!
//! Not covered: `ProxyPass /path !`, `ProxyPassMatch`, `ProxyPass` flags (`nocanon`,
//! `noquery`, `mapping=`), `ProxyPassReverseCookieDomain`/`Path`, `ProxyVia`.
//!
//! # Examples
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

mod error;
mod headers;
mod join;
mod mapping;
mod reverse;

pub use self::error::ProxyPassError;
pub use self::headers::{
    is_hop_by_hop, prepare_request_headers, strip_hop_by_hop, ForwardedHeaders,
};
pub(crate) use self::join::join_text;
pub use self::join::join_uri;
pub use self::mapping::ProxyPass;
pub use self::reverse::{reverse_headers, reverse_url, ProxyPassReverse};

#[cfg(test)]
mod tests;
