//! Discovery: members that come and go, kept in a [`BalancerStore`](crate::BalancerStore) with their state.
//!
//! A member set that changes while serving (Kubernetes headless services, autoscaling
//! groups, DNS records, a service registry) is applied to a balancer's store by a
//! [`MemberSetSync`], in one new snapshot per change:
//!
//! - a new member is added, with fresh counters; the health probes of the store follow
//!   it like any added member;
//! - a member whose parameters changed is updated; its state (`lbstatus`, errors, flags
//!   set by operators or probes, counters, requests in flight) is kept;
//! - a vanished member **drains**: at once it takes no new request except sticky ones
//!   (Apache's `+N`), for the [drain period](MemberSetSync::with_drain) (default
//!   [`DEFAULT_DRAIN`]), then it is removed. Its requests in flight finish normally, also
//!   after its removal. If it comes back while draining it is in service again, its state
//!   kept. A drain of zero removes it at once.
//!
//! The sync owns only the members it added: the configuration's members and those added
//! through the balancer-manager are never touched, and a discovered member with the URL of
//! one of them is skipped (and logged). Parameters an operator edits on a discovered
//! member stay until the source changes that member.
//!
//! Two adapters drive a sync from a source; each is a future to spawn (or `spawn()` them),
//! with a [`SyncHandle`] to read counters and the last error:
//!
//! - [`MemberSetSync::follow`]: a [`Stream`](futures_core::Stream) of whole member sets
//!   (`Result<impl IntoIterator<Item = MemberParams>, E>`), the shape of a DNS answer or a
//!   registry listing;
//! - [`MemberSetSync::follow_discover`]: a tower [`Discover`](::tower::discover::Discover)
//!   (`Change::Insert(key, service)` / `Change::Remove(key)`), each key mapped to
//!   [`MemberParams`] by a closure; the discovered services serve the members through
//!   [`FollowDiscover::make_member`], a [`MakeMember`](crate::balancer::MakeMember) for
//!   [`Balancer::new`](crate::Balancer::new).
//!
//! A source's error is logged (`warn`), counted and kept as the handle's
//! [`last_error`](SyncHandle::last_error); the last good member set stays. A source that
//! ends leaves its members as they are (draining members still finish their drain).
//!
//! # Example: a stream of member sets
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use proxy_balancer::discover::MemberSetSync;
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("app"), [], Instant::now())?);
//!
//! // A source of whole member sets, e.g. a DNS name resolved again on its TTL.
//! let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Vec<MemberParams>, std::io::Error>>();
//! let sets = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|set| (set, rx)) });
//!
//! let sync = MemberSetSync::new(Arc::clone(&store)).with_drain(Duration::from_secs(10));
//! let (handle, task) = sync.follow(sets).spawn();
//!
//! tx.send(Ok(vec![MemberParams::new("http://10.0.0.1:8080")?, MemberParams::new("http://10.0.0.2:8080")?]))?;
//! tx.send(Err(std::io::Error::other("resolver timed out")))?; // logged; the set stays
//! drop(tx); // the source ends: its members stay
//! task.await?;
//! assert_eq!(store.snapshot().members().len(), 2);
//! assert_eq!((handle.members(), handle.errors(), handle.source_ended()), (2, 1, true));
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a tower `Discover` behind a `Balancer`
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
//! use proxy_balancer::discover::MemberSetSync;
//! use proxy_balancer::{Balancer, BalancerParams, BalancerStore, MemberParams};
//! use tower::discover::ServiceList;
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let backend = |name: &'static str| {
//!     service_fn(move |_req: Request<ReplayBody<Empty<Bytes>>>| async move {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
//!     })
//! };
//! // ServiceList's keys are the services' positions: key 0 is "one", key 1 "two".
//! let discover = ServiceList::new([backend("one"), backend("two")]);
//!
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("app"), [], Instant::now())?);
//! let follow = MemberSetSync::new(Arc::clone(&store))
//!     .follow_discover(discover, |key: &usize| MemberParams::new(&format!("http://service-{key}")));
//! let balancer = Balancer::new(Arc::clone(&store), follow.make_member());
//! follow.await; // ServiceList ends after its services: both members are in
//!
//! let mut answers = Vec::new();
//! for _ in 0..2 {
//!     let response = balancer.clone().oneshot(Request::new(Empty::<Bytes>::new())).await?;
//!     answers.push(response.into_body().collect().await?.to_bytes());
//! }
//! assert_eq!(answers, ["one", "two"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Apache
//!
//! Apache has no discovery: members come from the configuration, or are added by hand in
//! the balancer-manager. A draining member is Apache's `status=+N` ("drain mode: only
//! sticky requests"), set by the sync instead of the operator.

mod stream;
mod sync;
mod tower;

use std::fmt;

use proxy_balancer_core::{ConfigError, MemberParams};

pub use self::stream::FollowSets;
pub use self::sync::{MemberSetSync, SyncHandle, SyncReport, DEFAULT_DRAIN};
pub use self::tower::{DiscoveredFuture, DiscoveredService, DiscoveredServices, FollowDiscover};
use crate::BoxError;

/// What went wrong in discovery: the source, a key's parameters, or the store's refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The source reported an error; the last good member set is kept.
    #[error("discovery source failed: {0}")]
    Source(#[source] BoxError),
    /// The `Discover` adapter's closure gave no member parameters for a key, or gave the
    /// URL of another key's member (each key must map to its own URL). The key is skipped;
    /// the members stay as they were.
    #[error("no member for discovered key {key}: {source}")]
    Params {
        /// The key, as `Debug` prints it.
        key: String,
        /// The closure's error.
        #[source]
        source: BoxError,
    },
    /// The store refused the member set (nothing was changed).
    #[error("the balancer refused the member set: {0}")]
    Store(#[from] ConfigError),
    /// A member of a discovered balancer that no discovered service stands for.
    #[error("no discovered service for member {member}")]
    NoService {
        /// The member's URL.
        member: String,
    },
}

// ===== impl MemberSetSync: adapters =====

impl MemberSetSync {
    /// Follows a stream of whole member sets: the future applies each one
    /// ([`Self::apply`]) and removes drained members on time. A stream item that is an
    /// error is logged and counted ([`SyncHandle::errors`]); the last good set stays.
    /// A stream of plain sets is `stream.map(Ok::<_, Infallible>)` (`StreamExt::map` of
    /// futures-util or tokio-stream); a `tokio::sync::watch` channel of the latest listing is
    /// a stream with `tokio_stream::wrappers::WatchStream`, or `futures_util::stream::unfold`
    /// over `changed()`.
    ///
    /// The future ends when the stream ends and no member drains; until then spawn it (or
    /// [`FollowSets::spawn`]) and keep it running: dropping or aborting it stops following
    /// (the members stay as they are, draining ones included).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::sync::Arc;
    /// use std::time::Instant;
    ///
    /// use futures_util::StreamExt;
    /// use proxy_balancer::discover::MemberSetSync;
    /// use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// # #[expect(clippy::disallowed_methods, reason = "doc example")]
    /// let store = Arc::new(BalancerStore::new(BalancerParams::new("app"), [], Instant::now())?);
    /// // Plain sets, no error: each becomes `Ok(set)`.
    /// let sets = futures_util::stream::iter([
    ///     vec![MemberParams::new("http://10.0.0.1:8080")?, MemberParams::new("http://10.0.0.2:8080")?],
    ///     vec![MemberParams::new("http://10.0.0.2:8080")?],
    /// ])
    /// .map(Ok::<_, Infallible>);
    /// let follow = MemberSetSync::new(Arc::clone(&store)).follow(sets);
    /// let handle = follow.handle();
    /// // 10.0.0.1 drains (30 s by default) before it is removed: not awaited here.
    /// tokio::time::timeout(std::time::Duration::from_millis(100), follow).await.ok();
    /// assert_eq!((handle.members(), handle.draining()), (2, 1));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// See the [module docs](self) for a channel-fed example.
    pub fn follow<St, I, E>(self, stream: St) -> FollowSets<St>
    where
        St: futures_core::Stream<Item = Result<I, E>>,
        I: IntoIterator<Item = MemberParams>,
        E: Into<BoxError>,
    {
        FollowSets::new(self, stream)
    }

    /// Follows a tower [`Discover`](::tower::discover::Discover): each inserted key becomes
    /// the member `params` makes of it (a key whose closure fails, or whose URL another
    /// key's member already has, is logged and skipped: give each key its own URL), each
    /// removed key's member drains. Changes that are ready together apply as one
    /// snapshot. The discovered services serve the members through
    /// [`FollowDiscover::make_member`], cloned for each request: they must be `Clone`, and
    /// `Send + Sync` to be spawned or served from several threads (wrap one that is not in
    /// [`tower::buffer::Buffer`](https://docs.rs/tower/latest/tower/buffer/struct.Buffer.html),
    /// tower's `buffer` feature, or use
    /// [`BoxCloneSyncService`](::tower::util::BoxCloneSyncService)). A member whose
    /// key is inserted again gets the new service for its next requests; its state stays.
    ///
    /// The services take what the [`Balancer`](crate::Balancer) gives a member: a
    /// balancer serving `Request<B>` calls them with `Request<ReplayBody<B>>`
    /// ([`ReplayBody`](crate::balancer::ReplayBody), so that a failed request can be sent
    /// again; in axum `B` is `axum::body::Body`). The key's URL names the member on the
    /// balancer-manager page and in logs; the balancer never connects to it.
    ///
    /// `make_member()` must be taken before the future is spawned (`spawn` consumes it).
    /// A tower `Discover` is any `TryStream` of [`Change`](::tower::discover::Change)s: a
    /// channel of `Result<Change<K, S>, Infallible>` made a stream is one.
    ///
    /// See the [module docs](self) for an example.
    pub fn follow_discover<D, F, E>(self, discover: D, params: F) -> FollowDiscover<D, F>
    where
        D: ::tower::discover::Discover,
        D::Key: std::hash::Hash + Clone + fmt::Debug,
        D::Error: Into<BoxError>,
        F: FnMut(&D::Key) -> Result<MemberParams, E>,
        E: Into<BoxError>,
    {
        FollowDiscover::new(self, discover, params)
    }
}

#[cfg(test)]
mod tests;
