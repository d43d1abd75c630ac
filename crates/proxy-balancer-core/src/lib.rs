//! The core of [proxy-balancer]: Apache httpd's mod_proxy_balancer member state, status
//! flags and lbmethods, lock-free and without I/O.
//!
//! This crate knows nothing of tokio or hyper: it holds the members of a balancer, their
//! parameters (with Apache's names, defaults and validation) and status flags, and chooses a
//! member for each request exactly as Apache 2.4 does. Time is always an argument (`now`),
//! so the same code runs under a real or a paused clock.
//!
//! ```
//! use std::time::Instant;
//! use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, PickRequest};
//!
//! let mut members = Vec::new();
//! for (url, lf) in [("http://a", "1"), ("http://b", "2"), ("http://c", "3")] {
//!     let mut m = MemberParams::new(url)?;
//!     m.set("loadfactor", lf)?;
//!     members.push(m);
//! }
//! let now = Instant::now();
//! let store = BalancerStore::new(BalancerParams::new("mycluster"), members, now)?;
//!
//! let picks: String = (0..6)
//!     .map(|_| {
//!         let picked = store.pick(&PickRequest::new(), now).expect("a usable member");
//!         picked.member().url().chars().last().expect("non-empty url")
//!     })
//!     .collect();
//! assert_eq!(picks, "cbacbc"); // Apache's byrequests order for load factors 1, 2, 3
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | Apache | here |
//! | --- | --- |
//! | `BalancerMember url k=v` | [`MemberParams`] ([`MemberParams::set`] takes Apache's keys) |
//! | `ProxySet balancer://x k=v` | [`BalancerParams`] ([`BalancerParams::set`]) |
//! | `status=+H-D` | [`StatusFlags`] |
//! | `loadfactor`, `lbset`, `route` | [`LoadFactor`], [`LbSet`], [`Route`] |
//! | `lbmethod=` | [`LbMethodKind`], [`lbmethod`] |
//! | worker shared memory (`lbstatus`, `busy`, `elected` …) | [`MemberState`] |
//! | `find_best_worker`, `find_session_route` | [`BalancerSnapshot::pick`] |
//!
//! [proxy-balancer]: https://docs.rs/proxy-balancer

#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod flags;
pub mod lbmethod;
mod member;
mod params;
mod schedule;
mod snapshot;
mod store;
mod sync;

#[cfg(all(test, loom))]
mod loom_schedule;
#[cfg(test)]
mod tests;

pub use error::{ConfigError, ParamError, PickError};
pub use flags::{StatusFlags, StatusLabel};
pub use lbmethod::{LbMethod, LbMethodKind};
pub use member::{BusyGuard, Member, MemberId, MemberState};
pub use params::{
    BalancerParams, LbSet, LoadFactor, MemberParams, MemberUrl, Nonce, Route, StickySession,
};
pub use snapshot::{BalancerSnapshot, PickRequest, Picked};
pub use store::BalancerStore;
