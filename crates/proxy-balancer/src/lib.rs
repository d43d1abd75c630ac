//! Apache httpd's mod_proxy_balancer for Rust: lbmethods, member parameters and status
//! flags, sticky sessions with failover, health checks, retry windows and the
//! balancer-manager, as tower Layers and Services.
//!
//! This is the crate to depend on. It holds the tower parts and re-exports the foundation,
//! [`proxy-balancer-core`](proxy_balancer_core) (members with Apache's parameters and status
//! flags, the lock-free shared store, the pick with Apache's lbmethods).
//!
//! | module | what | Apache |
//! | --- | --- | --- |
//! | [`balancer`] | the [`Balancer`] service: pick, forward, fail over, account | mod_proxy_balancer + mod_proxy |
//! | [`discover`] | members from a tower `Discover` or a stream of member sets, their state kept, vanished ones drained | none (`+N` for the drain) |
//! | [`load`] | tower's `Load` from a member's state (`MemberLoad`), so our members run in tower's p2c `Balance` with `p2c-ewma`'s cost | none (beyond Apache) |
//! | [`retry_window`] | a member's outcomes drive its error state and `retry` window | `retry`, `failonstatus`, `failontimeout`, `+I` |
//! | [`client`] | the pooled HTTP member client: HTTP/1.1 and HTTP/2 (`h2c://`, `h2://`), over TLS (`https`), WebSocket tunnels | worker `connectiontimeout`, `timeout`, `max`, `acquire`, `ping`, `addressttl`, `ttl`, `disablereuse`, `keepalive`, `upgrade`; `ws://`/`wss://` members; `SSLProxy*` |
//! | [`proxy_pass`] | path mapping, the forwarding and response-rewriting layers | `ProxyPass`, `ProxyPassReverse`, `ProxyPassReverseCookieDomain`/`Path`, `X-Forwarded-*`, `ProxyPreserveHost`, `ProxyAddHeaders` |
//! | [`error`] | the crate [`Error`] and [`ErrorResponseLayer`] | 503 / 502 / 504 answers |
//! | [`sticky_route`] | session routes from cookies and URLs, the route cookie | `stickysession`, `stickysessionsep`, `scolonpathdelim`, `Header add Set-Cookie … env=BALANCER_ROUTE_CHANGED` |
//! | [`health_probe`] | background health checks driving `+C` | mod_proxy_hcheck: `hcmethod`, `hcuri`, `hcinterval`, `hcpasses`, `hcfails`, `ProxyHCTemplate`, `ProxyHCExpr` |
//! | [`heartbeat`] | load reports for `lbmethod=heartbeat` | mod_heartbeat / mod_heartmonitor |
//! | [`server`] | serving a service over HTTP/1.1 (with upgrades) and h2c, client address, graceful stop | the server itself |
//! | [`access_log`] | one line per request in Apache's `LogFormat` syntax | mod_log_config: `CustomLog`, `LogFormat` |
//! | [`dns`] | members discovered from DNS: A/AAAA and SRV records, asked again as their TTL says | (none: `discover=dns`, `discover=srv`, `ProxyDiscoverNameserver`) |
//! | [`site`] | the whole reverse proxy of an Apache configuration as one service | httpd.conf |
//! | [`manager`] | the balancer-manager (re-export of `proxy-balancer-manager`) | `SetHandler balancer-manager` |
//! | [`apache_config`] | the configuration reader and `--check` (re-export of `proxy-balancer-apache-config`) | httpd.conf syntax |
//!
//! # Quick start
//!
//! A balancer over two members; here the members are in-process services, so the example
//! runs without sockets. Over real backends, use [`client::MakeHttpMember`] instead of the
//! closure (see `examples/reverse_proxy.rs`).
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Empty, Full};
//! use proxy_balancer::balancer::ReplayBody;
//! use proxy_balancer::{
//!     Balancer, BalancerInfo, BalancerParams, BalancerStore, ErrorResponseLayer, Member,
//!     MemberParams,
//! };
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut params = BalancerParams::new("balancer://mycluster");
//! params.set("lbmethod", "byrequests")?;
//! let mut members = Vec::new();
//! for (url, lf) in [("http://node1", "1"), ("http://node2", "2")] {
//!     let mut m = MemberParams::new(url)?;
//!     m.set("loadfactor", lf)?;
//!     members.push(m);
//! }
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! let store = Arc::new(BalancerStore::new(params, members, Instant::now())?);
//!
//! let service = ServiceBuilder::new()
//!     .layer(ErrorResponseLayer::new()) // errors become Apache's 503/502/504
//!     .service(Balancer::new(Arc::clone(&store), |member: &Member| {
//!         let name = member.url().to_owned();
//!         service_fn(move |_req: Request<ReplayBody<Empty<Bytes>>>| {
//!             let name = name.clone();
//!             async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name)))) }
//!         })
//!     }));
//!
//! let mut answers = Vec::new();
//! for _ in 0..3 {
//!     let response = service.clone().oneshot(Request::new(Empty::<Bytes>::new())).await?;
//!     let info = response.extensions().get::<BalancerInfo>().cloned().expect("always set");
//!     assert_eq!(info.balancer_name(), "balancer://mycluster");
//!     answers.push(response.into_body().collect().await?.to_bytes());
//! }
//! // byrequests with load factors 1 and 2: node2, node1, node2 — Apache's order.
//! assert_eq!(answers, ["http://node2", "http://node1", "http://node2"]);
//!
//! // Disable node2 as the balancer-manager would: the very next request avoids it.
//! store.snapshot().members()[1].state().insert_flags(proxy_balancer::StatusFlags::DISABLED);
//! let response = service.oneshot(Request::new(Empty::<Bytes>::new())).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "http://node1");
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | feature | what it adds | default |
//! | --- | --- | --- |
//! | `http-client` | [`client::MakeHttpMember`], the built-in pooled member client: HTTP/1.1 and HTTP/2, over TCP or TLS (hyper's client side, rustls) | yes |
//! | `health-probe` | [`health_probe`] (regex, for `ProxyHCExpr`) | |
//! | `heartbeat` | [`heartbeat`] | |
//! | `manager` | [`manager`] | |
//! | `apache-config` | [`apache_config`] | |
//! | `server` | [`server`] (hyper's server side, h2) | |
//! | `discover` | [`discover`]: members from a tower `Discover` or a `Stream` of member sets | |
//! | `access-log` | [`access_log`]: Apache's `LogFormat` access log, written off the request path | |
//! | `dns` | [`dns`]: members discovered from DNS A/AAAA and SRV records (hickory-resolver; enables `discover`) | |
//! | `site` | [`site`]; enables all of the above but `access-log` (so `discover` and `dns` too) | |
//! | `etcd` | [`etcd`]: `BalancerShare etcd …` in a [`site`], the manager's edits shared with a fleet (`docs/fleet.md`); enables `site` | |
//! | `full` | everything but `axum` | |
//! | `axum` | the forwarding layer ([`proxy_pass::ForwardLayer`]) also reads the client's address from axum's `ConnectInfo<SocketAddr>` (`into_make_service_with_connect_info::<SocketAddr>()`), besides [`PeerAddr`] | |
//!
//! Without features the crate is the balancer, sticky routes, retry windows, proxy headers
//! and error answers over any tower member service, e.g. a `hyper-util` client of your own.
//!
//! # From Apache to Rust
//!
//! | Apache httpd | proxy-balancer |
//! | --- | --- |
//! | `<Proxy balancer://name>` / `ProxySet balancer://name k=v` | [`BalancerParams`], [`BalancerParams::set`] |
//! | `BalancerMember url k=v` | [`MemberParams`], [`MemberParams::set`] |
//! | `loadfactor=2.25` | [`LoadFactor`] (kept ×100 as Apache: 225) |
//! | `lbset=1` | [`LbSet`] |
//! | `route=node1`, `redirect=node2` | [`Route`] |
//! | `status=+H-D` | [`StatusFlags`]; manager text `Init Stby Ok ` via [`StatusFlags::label`] |
//! | `retry=60` | [`MemberParams::retry`] |
//! | `lbmethod=byrequests\|bytraffic\|bybusyness` | [`LbMethodKind`] |
//! | `maxattempts`, `nofailover`, `forcerecovery`, `stickysession` … | fields of [`BalancerParams`] |
//! | worker shared memory (`busy`, `elected`, `lbstatus` …) | [`MemberState`] |
//! | `ProxyPass / balancer://name/` | [`Balancer`] (with [`proxy_pass::ProxyPass`] for prefixes) |
//! | `failonstatus`, `failontimeout`, `retry` | [`retry_window`] |
//! | `BALANCER_*` environment variables | [`BalancerInfo`] response extension |
//!
//! # Examples
//!
//! In the repository's `examples/`:
//! - `cargo run --release --example reverse-proxy`: a reverse proxy over demo backends
//!   ([`site`] and [`server`] with argument parsing around them);
//! - `cargo run --release --example schedule -- 1 2 3`: the pick order for load factors
//!   1, 2 and 3 (`C B A C B C`, as Apache's).

#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Defined before the modules, so that every wrapper service uses the same accessors.
/// `get_ref`, `get_mut` and `into_inner` of a wrapper service with an `inner` field.
macro_rules! wrapper_accessors {
    ($name:ident) => {
        impl<S> $name<S> {
            /// The inner service.
            #[must_use]
            pub const fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            #[must_use]
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// The inner service, unwrapped.
            #[must_use]
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}

#[cfg(feature = "access-log")]
#[cfg_attr(docsrs, doc(cfg(feature = "access-log")))]
pub mod access_log;
pub mod balancer;
mod builder;
#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub mod client;
#[cfg(feature = "discover")]
#[cfg_attr(docsrs, doc(cfg(feature = "discover")))]
pub mod discover;
#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub mod dns;
pub mod error;
#[cfg(feature = "health-probe")]
#[cfg_attr(docsrs, doc(cfg(feature = "health-probe")))]
pub mod health_probe;
#[cfg(feature = "heartbeat")]
#[cfg_attr(docsrs, doc(cfg(feature = "heartbeat")))]
pub mod heartbeat;
#[cfg(feature = "load")]
#[cfg_attr(docsrs, doc(cfg(feature = "load")))]
pub mod load;
pub mod proxy_pass;
pub mod retry_window;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
#[cfg(feature = "site")]
#[cfg_attr(docsrs, doc(cfg(feature = "site")))]
pub mod site;
pub mod sticky_route;

/// The balancer-manager: Apache's status page, its XML and JSON views, and member edits
/// (the `proxy-balancer-manager` crate).
#[cfg(feature = "manager")]
#[cfg_attr(docsrs, doc(cfg(feature = "manager")))]
pub use proxy_balancer_manager as manager;

/// The Apache httpd configuration reader and its check (the
/// `proxy-balancer-apache-config` crate).
#[cfg(feature = "apache-config")]
#[cfg_attr(docsrs, doc(cfg(feature = "apache-config")))]
pub use proxy_balancer_apache_config as apache_config;

/// The balancer-manager's edits shared with a fleet through etcd (the `proxy-balancer-etcd`
/// crate): what `BalancerShare etcd …` starts in a [`site`]. See `docs/fleet.md`.
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use proxy_balancer_etcd as etcd;

#[cfg(feature = "access-log")]
pub use access_log::{AccessLog, AccessLogLayer};
pub use balancer::{Balancer, BalancerInfo, BalancerLayer};
pub use builder::ServiceBuilderExt;
pub use error::{BoxError, Error, ErrorKind, ErrorResponseLayer, RequestBodyError};
#[cfg(feature = "health-probe")]
pub use health_probe::HealthProbe;
pub use proxy_pass::{Forward, ForwardLayer, Reverse, ReverseLayer};
pub use sticky_route::{StickyRoute, StickyRouteLayer};

pub use proxy_balancer_core as core;
pub use proxy_balancer_core::{
    lbmethod, BalancerParams, BalancerSnapshot, BalancerStore, BusyGuard, ConfigError, HcExprName,
    HcMethod, HcParams, HcUri, HealthReport, LbMethod, LbMethodKind, LbSet, LoadFactor, LocalAddr,
    Member, MemberId, MemberParams, MemberState, MemberUrl, Nonce, ParamError, PeerAddr, PickError,
    PickRequest, Picked, Route, StatusFlags, StatusLabel, StickySession, TlsInfo,
};
