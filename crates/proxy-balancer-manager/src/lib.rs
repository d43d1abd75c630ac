//! Apache's balancer-manager for proxy-balancer, as a tower Service: the status page, Apache's
//! query API (a POST with the balancer's nonce), `?xml=1` in Apache's schema, a JSON view and
//! API, and Prometheus metrics.
//!
//! | path | what |
//! | --- | --- |
//! | `GET mount` | the page (like Apache's), with the edit forms; `?b=…&w=…` selects a member |
//! | `GET mount?xml=1` | the same facts in Apache's XML |
//! | `POST mount` | Apache's query API: `b`, `w`, `nonce`, `w_lf`, `w_ls`, `w_wr`, `w_rr`, `w_status_X`, `w_h*`, `b_lbm`, `b_tmo`, `b_max`, `b_sforce`, `b_ss`, `b_wyes` + `b_nwrkr`; and ours, `w_ttl` (with a shared store) |
//! | `GET mount/api`, `POST mount/api` | the JSON view, and the same changes with a JSON answer |
//! | `GET mount/metrics` | Prometheus text |
//!
//! Views take parameters they do not know (`?pretty=1`, a cache-buster `?_=1733300000`) and
//! ignore them; a GET carrying a change parameter (any `w_…` or `b_…`) is refused with 405.
//!
//! # Which Host may change things
//!
//! A change (every POST) is taken only if the request names this server, so that a
//! DNS-rebound page (a page of `evil.example`, whose name now points at the proxy) cannot
//! post one: the browser sends `Host: evil.example`. The host is the request target's
//! authority (HTTP/2 `:authority`) or else the `Host` header (exactly one). It names this
//! server if it is:
//!
//! - the address the client reached, from the [`LocalAddr`] the server puts in every request
//!   (proxy-balancer's server does; an IPv4-mapped address counts as the IPv4 one);
//! - `localhost` or a loopback address, when that address is loopback;
//! - a name given to [`server_names`](BalancerManagerBuilder::server_names) (`ServerName`
//!   and `ServerAlias` belong there; `*` and `?` patterns as in `ServerAlias`).
//!
//! and if its port is none, 80 or 443 (a client leaves a scheme's default port out, and may
//! have come through a port forward or a TLS terminator), the port the client reached, or
//! the port written with the configured name (`proxy.example.com:9000`). A request without
//! a [`LocalAddr`] is checked against the configured names only, and a name without a port
//! then takes any port; with neither a [`LocalAddr`] nor names, every change is refused,
//! with a message saying to configure names. Then an `Origin` or `Referer` that is present
//! must give the same host and port as that verified host (a browser sends `Origin` on every
//! cross-site POST; curl and scripts send neither).
//!
//! A refused change answers 403 with the reason: a short HTML document at `mount`, JSON at
//! `mount/api`. Read-only views are served whatever the `Host`.
//!
//! # The JSON API's answers
//!
//! `POST mount/api` answers `{"ok":true,"applied":{"balancer":"app","member":"http://…"|null,
//! "changed":["loadfactor","status"],"flags":{"before":"","after":"D"}|null,
//! "added":"http://…"|null,"lb_reset":false}}` (`changed` lists Apache's parameter names,
//! `flags` are `status=` letters), or, with the HTTP status of the refusal,
//! `{"ok":false,"error":{"kind":"…","message":"…","param":"w_lf"|null}}`. An edit applied
//! but not saved (`BalancerPersist`) answers 500 with both `applied` and `error`. An edit
//! taken by a shared store adds `"revision":N` (the store's) and `"ttl_secs":N|null` to
//! `applied`. Kinds:
//! `client_not_allowed`, `method_not_allowed`, `bad_host`, `host_not_this_server`,
//! `server_names_not_configured`, `cross_origin`, `too_large`, `no_health_checks`,
//! `not_saved`, `needs_shared_store` (`w_ttl` without a shared store), with a shared store
//! `store_unavailable` (503: nothing changed), `store_uncertain` (504: a write the store did not
//! confirm, which may still land), `conflict` (409) and `store_refused` (400), and those of
//! [`EditError::kind`](edit::EditError::kind) (`malformed`,
//! `duplicate`, `unknown_parameters`, `invalid_value`, `missing`, `unknown_balancer`,
//! `unknown_member`, `duplicate_member`, `no_free_slot`, `bad_nonce`). Every refusal at
//! `mount/api`, a GET's included (the access rule, a change by GET, a bad query), is JSON
//! of this shape.
//!
//! # A fleet: edits shared through a store
//!
//! With [`BalancerManagerBuilder::shared`] (the `BalancerShare` directive in
//! `proxy-balancer`'s site; etcd through `proxy-balancer-etcd`), a POST is checked against
//! this instance's state, then handed to the [`shared`] store, which applies it on every
//! instance; the answer carries the store's `revision`, or the store's refusal (503 while
//! it cannot be reached: nothing changes anywhere). `w_ttl=SECONDS` (1 to 604800, with a
//! `w_status_X=1`) makes the flags the edit sets lapse: a drain for a maintenance window;
//! without a shared store it is refused (`needs_shared_store`). The page, the XML, the JSON
//! and the metrics then show the link's status (a banner on the page while it is down) and
//! who changed each member, when, what, and when it lapses. `BalancerPersist` is not used
//! then: the shared store is the source of truth.
//!
//! # Where we differ from Apache
//!
//! - A GET that carries changes answers 405 with the curl line that works (Apache ignores it
//!   silently and answers the page).
//! - A POST needs the nonce and a `Host` that names this server, and an `Origin` or
//!   `Referer` that is present must name that host (Apache needs a Referer, which curl does
//!   not send, and compares it with a URL built from the client's `Host`, which a DNS-rebound
//!   page passes). Clients are admitted by network, loopback only by default.
//! - `nonce=None` turns the nonce check off, as Apache's docs say (Apache then refuses every
//!   change).
//!
//! # Health checks
//!
//! A member's health-check parameters (`hcmethod` … `hcexpr`) are member parameters in the
//! store ([`MemberParams::hc`](proxy_balancer_core::MemberParams::hc)); the health probes
//! follow the store. For a balancer registered with
//! [`balancer_with_health`](BalancerManagerBuilder::balancer_with_health) the page, the XML and
//! the JSON show them with the probes' last result (through the core's
//! [`HealthReport`](proxy_balancer_core::HealthReport), which `proxy-balancer`'s
//! `HealthMonitor` implements), and `w_hm`, `w_hi`, `w_hp`, `w_hf`, `w_hu`, `w_he` change
//! them; a `w_he` must name one of the conditions given to
//! [`hc_expr_names`](BalancerManagerBuilder::hc_expr_names).
//!
//! ```text
//! let probe = HealthProbe::spawn_with(Arc::clone(&store), Arc::clone(&defs))?;
//! let manager = BalancerManager::builder("/balancer-manager")
//!     .balancer_with_health(Arc::clone(&store), Arc::new(probe.monitor()))
//!     .hc_expr_names(defs.expr_names())
//!     .build();
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
//! use proxy_balancer_manager::{BalancerManager, LocalAddr, PeerAddr};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! # let now = Instant::now();
//! let store = Arc::new(BalancerStore::new(
//!     BalancerParams::new("app"),
//!     [MemberParams::new("http://127.0.0.1:8001")?],
//!     now,
//! )?);
//! let manager = BalancerManager::builder("/balancer-manager").balancer(Arc::clone(&store)).build();
//! let nonce = manager.nonce("app").expect("managed");
//!
//! // Disable the member, as the page's form would (from loopback, with the nonce, to the
//! // address the client reached, which proxy-balancer's server puts in every request).
//! let body = format!("b=app&w=http%3A%2F%2F127.0.0.1%3A8001&w_status_D=1&nonce={nonce}");
//! let mut request = Request::post("/balancer-manager")
//!     .header("host", "127.0.0.1:8080")
//!     .body(Full::new(Bytes::from(body)))?;
//! request.extensions_mut().insert(PeerAddr("127.0.0.1:50000".parse()?));
//! request.extensions_mut().insert(LocalAddr("127.0.0.1:8080".parse()?));
//! let response = manager.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert!(!store.snapshot().members()[0].is_usable());
//! # Ok(())
//! # }
//! ```

#![doc(test(attr(deny(warnings))))]

mod access;
pub mod edit;
mod host;
mod persist;
pub mod render;
mod service;
pub mod shared;

pub use access::{Access, AccessLayer};
pub use host::ServerNameError;
pub use service::{BalancerManager, BalancerManagerBuilder, LocalAddr, PeerAddr, RemoteUser};
