//! Apache's balancer-manager for proxy-balancer, as a tower Service: the status page, Apache's
//! query API (a POST with the balancer's nonce), `?xml=1` in Apache's schema, a JSON view and
//! API, and Prometheus metrics.
//!
//! | path | what |
//! | --- | --- |
//! | `GET mount` | the page (like Apache's), with the edit forms; `?b=…&w=…` selects a member |
//! | `GET mount?xml=1` | the same facts in Apache's XML |
//! | `POST mount` | Apache's query API: `b`, `w`, `nonce`, `w_lf`, `w_ls`, `w_wr`, `w_rr`, `w_status_X`, `w_h*`, `b_lbm`, `b_tmo`, `b_max`, `b_sforce`, `b_ss`, `b_wyes` + `b_nwrkr` |
//! | `GET mount/api`, `POST mount/api` | the JSON view, and the same changes with a JSON answer |
//! | `GET mount/metrics` | Prometheus text |
//!
//! # Where we differ from Apache
//!
//! - A GET that carries changes answers 405 with the curl line that works (Apache ignores it
//!   silently and answers the page).
//! - A POST needs the nonce, and an `Origin` or `Referer` that is present must name this
//!   server (Apache needs a Referer, which curl does not send). Clients are admitted by
//!   network, loopback only by default.
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
//! use proxy_balancer_manager::{BalancerManager, PeerAddr};
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
//! // Disable the member, as the page's form would (from loopback, with the nonce).
//! let body = format!("b=app&w=http%3A%2F%2F127.0.0.1%3A8001&w_status_D=1&nonce={nonce}");
//! let mut request = Request::post("/balancer-manager").body(Full::new(Bytes::from(body)))?;
//! request.extensions_mut().insert(PeerAddr("127.0.0.1:50000".parse()?));
//! let response = manager.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert!(!store.snapshot().members()[0].is_usable());
//! # Ok(())
//! # }
//! ```

#![doc(test(attr(deny(warnings))))]

mod access;
pub mod edit;
mod persist;
pub mod render;
mod service;

pub use access::{Access, AccessLayer};
pub use service::{BalancerManager, BalancerManagerBuilder, PeerAddr};
