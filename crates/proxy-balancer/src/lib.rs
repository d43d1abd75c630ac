//! Apache httpd's mod_proxy_balancer for Rust: lbmethods, member parameters and status
//! flags, sticky sessions with failover, health checks, retry windows and the
//! balancer-manager, as tower Layers and Services.
//!
//! This is the crate to depend on. Today it re-exports the foundation,
//! [`proxy-balancer-core`](proxy_balancer_core): the members of a balancer with Apache's
//! parameters and status flags, the lock-free shared store, and the pick with Apache's
//! lbmethods. The tower `Balancer` service, the sticky-route layer, health probes, the
//! balancer-manager and the Apache config reader build on it.
//!
//! # Quick start
//!
//! ```
//! use std::time::Instant;
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams, PickRequest};
//!
//! let mut balancer = BalancerParams::new("balancer://mycluster");
//! balancer.set("stickysession", "ROUTEID")?;
//!
//! let mut members = Vec::new();
//! for (url, route) in [("http://127.0.0.1:8001", "node1"), ("http://127.0.0.1:8002", "node2")] {
//!     let mut m = MemberParams::new(url)?;
//!     m.set("route", route)?;
//!     members.push(m);
//! }
//! let now = Instant::now();
//! let store = BalancerStore::new(balancer, members, now)?;
//!
//! // A request carrying the route `node2` (e.g. `ROUTEID=.node2`) sticks to its member.
//! let picked = store.pick(&PickRequest::new().with_route("node2"), now)?;
//! assert_eq!(picked.member().url(), "http://127.0.0.1:8002");
//! assert!(picked.is_sticky());
//!
//! // When that member fails, the next pick fails over and flags the route change.
//! picked.member().mark_error(now);
//! drop(picked);
//! let picked = store.pick(&PickRequest::new().with_route("node2"), now)?;
//! assert_eq!(picked.member().url(), "http://127.0.0.1:8001");
//! assert!(picked.route_changed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
//!
//! # Examples
//!
//! `cargo run --release --example schedule -- 1 2 3` prints the pick order for load factors
//! 1, 2 and 3 (`C B A C B C`, as Apache's).

#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod balancer;
pub mod client;
pub mod error;
pub mod proxy_pass;
pub mod retry_window;

pub use balancer::{Balancer, BalancerInfo, BalancerLayer};
pub use error::{BoxError, Error, ErrorKind, ErrorResponseLayer};

pub use proxy_balancer_core as core;
pub use proxy_balancer_core::{
    lbmethod, BalancerParams, BalancerSnapshot, BalancerStore, BusyGuard, ConfigError, LbMethod,
    LbMethodKind, LbSet, LoadFactor, Member, MemberId, MemberParams, MemberState, MemberUrl, Nonce,
    ParamError, PickError, PickRequest, Picked, Route, StatusFlags, StatusLabel, StickySession,
};
