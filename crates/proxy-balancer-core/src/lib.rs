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
//! # The pick
//!
//! [`BalancerSnapshot::pick`] follows mod_proxy_balancer step by step: forced recovery when
//! every member is in error (`forcerecovery`); the session route, if the caller found one
//! (its member if usable, else the member its `redirect` names; `nofailover=On` turns an
//! unusable route member into [`PickError::RouteUnusable`]); otherwise the lowest lbset that
//! has a usable member, where hot spares (`+R`) replace unusable members one for one and hot
//! standbys (`+H`) serve only when nothing else in the set can; draining members (`+N`) are
//! reached only through their route; a member in error (`E`) is retried once `retry` has
//! passed since its error. The lbmethod ([`lbmethod`]) chooses among the candidates.
//!
//! # Shared state and speed
//!
//! A [`BalancerStore`] holds one [`arc_swap`] snapshot of the balancer; a pick is one
//! snapshot load plus atomic operations, and never takes a lock. Each member's flags and
//! counters ([`MemberState`]) live in their own `Arc`, shared by every snapshot, so editing
//! the configuration never resets a counter or loses a request in flight. What every pick
//! writes is kept on cache lines of its own.
//!
//! byrequests does not scan the members for steady traffic: while the candidates stay the
//! same, Apache's picks repeat with a period of `sum(lbf) / gcd(lbf)`, so the snapshot works
//! out that cycle once and then hands out its slots with one atomic increment, at the same
//! cost for 3 members as for 1024. A sticky pick, a flag change, a retry window ending or a
//! reconfiguration folds the cycle's picks into `lbstatus` and goes back to Apache's scan
//! until the members are steady again; a test runs the two side by side with a plain model
//! of Apache's algorithm and checks they agree pick for pick. Figures are in the
//! repository's `benches/README.md`.
//!
//! # Where we differ from Apache, on purpose
//!
//! - bybusyness does not let a member skipped while busy pile up round-robin credit (Apache
//!   then sends it a burst): see [`lbmethod::ByBusyness`].
//! - `loadfactor=65.32` is read as the decimal it is (6532 hundredths); Apache's floating
//!   point makes it 6531. See [`LoadFactor`].
//! - Members already tried by a request ([`PickRequest::tried`]) are not picked again for it,
//!   and count as unusable so a hot spare can step in; Apache may pick a member it just
//!   tried if that member does not enter the error state (`+I`).
//!
//! # Testing the concurrency
//!
//! The shared state is checked two ways. [loom] models run a few threads through every
//! interleaving (up to three preemptions) and every weak-memory outcome loom knows of,
//! through the crate's `sync` shim. loom cannot see inside [`arc_swap`], so under
//! `cfg(loom)` the snapshot cell is a loom `RwLock<Arc<_>>` with the same surface: the
//! models check this crate's protocol, not arc-swap. They cover
//!
//! - flag transitions (`loom_flags`): the manager, a health probe and failing requests
//!   setting and clearing flags at once lose no flag, and `mark_error`, `try_recover` and
//!   `clear_error` keep the retry rules (an error is published with its time, one retry is
//!   counted per recovery, a stopped member is never made usable);
//! - counters (`loom_counters`): the packed `busy`/`elected` word, the byte counters and the
//!   `lbstatus` rounds of byrequests and bybusyness lose no update and come back to rest,
//!   and the store's count of requests in flight (bybusyness) is trusted only when it
//!   counts every one, across a switch of the lbmethod;
//! - snapshot replacement (`loom_snapshot`): readers see whole snapshots, member state
//!   carries over to the new snapshot, concurrent writers lose no edit, and picks made on a
//!   snapshot being retired are all accounted for;
//! - outlier ejection (`loom_outlier`): ejections racing for the last slot under
//!   `ejectmax`, an ejection lifted by a pick and the manager at once;
//! - the byrequests cycle (`loom_schedule`) against picks, settles, sticky picks and flag
//!   changes.
//!
//! Run them in release mode, in a target directory of their own (the `--cfg loom` flag
//! would otherwise rebuild the normal target every time):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p proxy-balancer-core --release --lib loom
//! ```
//!
//! On two cores the models take about 30 s, plus about a minute for the first build. To see
//! the steps of a failing interleaving, run that one model with `LOOM_LOG=trace
//! LOOM_LOCATION=1`.
//!
//! Real-thread stress tests (`tests/concurrency.rs`) run with the normal test suite, bounded
//! in iterations and time (a few seconds in a debug build): concurrent picks keep
//! byrequests' weights; snapshot swaps under load lose no count; and flag churn from a
//! manager and a probe, failing requests and reconfigurations, all against four picking
//! threads, keep `busy`, `elected`, byte and `lbstatus` totals exact and never pick a
//! member whose disabling flag the picking thread had seen; and threads hammering one
//! member's flags never lose each other's changes.
//!
//! ```text
//! cargo test -p proxy-balancer-core --test concurrency
//! ```
//!
//! [loom]: https://docs.rs/loom
//!
//! [proxy-balancer]: https://docs.rs/proxy-balancer

#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
mod error;
mod flags;
mod hcmethod;
mod health;
pub mod host;
pub mod lbmethod;
mod member;
mod outlier;
mod params;
mod peer;
pub mod ring;
mod schedule;
mod selection;
mod snapshot;
mod store;
mod sync;

#[cfg(all(test, loom))]
mod loom_counters;
#[cfg(all(test, loom))]
mod loom_flags;
#[cfg(all(test, loom))]
mod loom_outlier;
#[cfg(all(test, loom))]
mod loom_schedule;
#[cfg(all(test, loom))]
mod loom_snapshot;
#[cfg(all(test, loom))]
mod loom_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_health;

pub use budget::RetryBudget;
pub use error::{ConfigError, ParamError, PickError};
pub use flags::{StatusFlags, StatusLabel};
pub use hcmethod::HcMethod;
pub use health::{HcExprName, HcParams, HcUri, HealthReport};
pub use lbmethod::{LbMethod, LbMethodKind};
pub use member::{BusyGuard, Member, MemberId, MemberState, FAILURE_RTT_FLOOR};
pub use outlier::{EjectReason, Ejection};
pub use params::{
    BalancerParams, LbSet, LoadFactor, MemberParams, MemberProtocol, MemberUrl, Nonce, Route,
    StickySession,
};
pub use peer::{LocalAddr, PeerAddr, TlsInfo};
pub use selection::{HashKey, HashRing, OutlierParams, RetryBudgetParams, DEFAULT_EWMA_DECAY};
pub use snapshot::{BalancerSnapshot, PickRequest, Picked};
pub use store::{BalancerStore, MemberSetEdit};
