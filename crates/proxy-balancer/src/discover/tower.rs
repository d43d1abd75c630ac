//! [`FollowDiscover`]: a tower [`Discover`] applied to a store, its services serving the
//! members through [`DiscoveredServices`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use pin_project_lite::pin_project;
use proxy_balancer_core::{Member, MemberParams, MemberUrl};
use tower::discover::{Change, Discover};
use tower_service::Service;

use super::stream::{Drains, BUDGET};
use super::{DiscoverError, MemberSetSync, SyncHandle};
use crate::balancer::MakeMember;
use crate::BoxError;

/// One discovered member's service, swappable when the source inserts its key again.
type Slot<S> = Arc<ArcSwap<S>>;

pin_project! {
    /// The future that applies a tower [`Discover`]'s changes to the store: made by
    /// [`MemberSetSync::follow_discover`]. Each key becomes a member through your closure;
    /// its service serves the member through [`FollowDiscover::make_member`]. Spawn it (or
    /// [`FollowDiscover::spawn`]); it ends when the `Discover` has ended and no member
    /// drains.
    ///
    /// Changes that are ready together (a burst of inserts and removals) are applied as one
    /// new snapshot of the store. See the [module docs](super).
    #[must_use = "futures do nothing unless polled"]
    pub struct FollowDiscover<D, F>
    where
        D: Discover,
    {
        #[pin]
        discover: D,
        params: F,
        sync: MemberSetSync,
        // Each key's member, and when it was inserted: members are added in that order.
        keys: HashMap<D::Key, (u64, MemberParams)>,
        // Which key each member URL is: one key per URL.
        urls: HashMap<MemberUrl, D::Key>,
        inserted: u64,
        services: DiscoveredServices<D::Service>,
        drains: Drains,
        ended: bool,
    }
}

/// The [`MakeMember`] of a [`FollowDiscover`]: each member's service is the one its
/// [`Discover`] gave for it (the latest, when a key is inserted again). Give it to
/// [`Balancer::new`](crate::Balancer::new).
///
/// A member that no discovered service stands for (a configured member of the same store,
/// say) gets a service that fails every request with a connect error
/// ([`Error::connect`](crate::Error::connect) of [`DiscoverError::NoService`]): the
/// balancer puts it in error and fails over. Keep a discovered balancer's store for
/// discovered members.
pub struct DiscoveredServices<S> {
    slots: Arc<parking_lot::RwLock<HashMap<MemberUrl, Slot<S>>>>,
}

/// The service of one discovered member: the discovered service, cloned for each request
/// (from the latest one the source gave).
pub struct DiscoveredService<S> {
    slot: Option<Slot<S>>,
    member: Member,
    ready: Option<S>,
}

pin_project! {
    /// The response future of a [`DiscoveredService`].
    pub struct DiscoveredFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The discovered service's future.
        Inner {
            #[pin]
            future: F,
        },
        // No service: the error, once.
        Failed {
            error: Option<BoxError>,
        },
    }
}

// ===== impl FollowDiscover =====

impl<D, F> FollowDiscover<D, F>
where
    D: Discover,
{
    pub(crate) fn new(sync: MemberSetSync, discover: D, params: F) -> Self {
        Self {
            discover,
            params,
            sync,
            keys: HashMap::new(),
            urls: HashMap::new(),
            inserted: 0,
            services: DiscoveredServices {
                slots: Arc::default(),
            },
            drains: Drains::default(),
            ended: false,
        }
    }

    /// The [`MakeMember`] that serves each member with its discovered service.
    #[must_use]
    pub fn make_member(&self) -> DiscoveredServices<D::Service> {
        self.services.clone()
    }

    /// A handle on the sync's counters and last error.
    #[must_use]
    pub fn handle(&self) -> SyncHandle {
        self.sync.handle()
    }

    /// The sync this future drives.
    #[must_use]
    pub const fn sync(&self) -> &MemberSetSync {
        &self.sync
    }
}

impl<D, F, E> FollowDiscover<D, F>
where
    D: Discover + Send + 'static,
    D::Key: Hash + Clone + fmt::Debug + Send,
    D::Service: Clone + Send + Sync,
    D::Error: Into<BoxError>,
    F: FnMut(&D::Key) -> Result<MemberParams, E> + Send + 'static,
    E: Into<BoxError>,
{
    /// Spawns the future on the current tokio runtime; returns the handle on its counters
    /// and the task (abort it to stop following; the members stay as they are).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`].
    pub fn spawn(self) -> (SyncHandle, tokio::task::JoinHandle<()>) {
        let handle = self.handle();
        (handle, tokio::spawn(self))
    }
}

impl<D, F, E> Future for FollowDiscover<D, F>
where
    D: Discover,
    D::Key: Hash + Clone + fmt::Debug,
    D::Error: Into<BoxError>,
    F: FnMut(&D::Key) -> Result<MemberParams, E>,
    E: Into<BoxError>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let mut changed = false;
        let mut budget = BUDGET * 32;
        while !*this.ended {
            if budget == 0 {
                cx.waker().wake_by_ref();
                break;
            }
            budget -= 1;
            match this.discover.as_mut().poll_discover(cx) {
                Poll::Ready(Some(Ok(Change::Insert(key, service)))) => {
                    let params = (this.params)(&key).map_err(Into::into).and_then(|params| {
                        // One member per URL: a second key with the same URL would swap
                        // the member's service, and its removal would leave the member
                        // served by a service the `Discover` took back.
                        match this.urls.get(&params.url).filter(|k| **k != key) {
                            Some(other) => Err(BoxError::from(format!(
                                "its member URL {} is already key {other:?}'s; give each key its own URL",
                                params.url
                            ))),
                            None => Ok(params),
                        }
                    });
                    match params {
                        Ok(params) => {
                            // The service first: the balancer makes the member's service
                            // as soon as the member is in the store.
                            this.services.put(&params.url, service);
                            let seq = match this.keys.get(&key) {
                                Some(&(seq, _)) => seq,
                                None => {
                                    *this.inserted += 1;
                                    *this.inserted
                                }
                            };
                            // A key inserted again with another URL frees its old one.
                            if let Some((_, old)) = this.keys.get(&key) {
                                if old.url != params.url {
                                    this.urls.remove(&old.url);
                                }
                            }
                            this.urls.insert(params.url.clone(), key.clone());
                            this.keys.insert(key, (seq, params));
                            changed = true;
                        }
                        Err(e) => this.sync.record(DiscoverError::Params {
                            key: format!("{key:?}"),
                            source: e,
                        }),
                    }
                }
                Poll::Ready(Some(Ok(Change::Remove(key)))) => {
                    if let Some((_, params)) = this.keys.remove(&key) {
                        this.urls.remove(&params.url);
                        changed = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => this.sync.record(DiscoverError::Source(e.into())),
                Poll::Ready(None) => {
                    *this.ended = true;
                    this.sync.mark_ended();
                }
                Poll::Pending => break,
            }
        }
        if changed {
            // An error is recorded by `apply`; the last good set stays.
            let mut desired: Vec<&(u64, MemberParams)> = this.keys.values().collect();
            desired.sort_unstable_by_key(|(seq, _)| *seq);
            let _ = this.sync.apply(desired.into_iter().map(|(_, p)| p.clone()));
        }
        let drained = this.drains.poll(this.sync, cx);
        // Forget the services of members that are gone (their requests in flight hold
        // their own clones).
        this.services
            .retain(|url| this.sync.owns(url) || this.urls.contains_key(url));
        match drained {
            Poll::Ready(()) if *this.ended => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

impl<D, F> fmt::Debug for FollowDiscover<D, F>
where
    D: Discover,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowDiscover")
            .field("sync", &self.sync)
            .field("keys", &self.keys.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

// ===== impl DiscoveredServices =====

impl<S> DiscoveredServices<S> {
    fn put(&self, url: &MemberUrl, service: S) {
        let mut slots = self.slots.write();
        if let Some(slot) = slots.get(url) {
            slot.store(Arc::new(service));
        } else {
            slots.insert(url.clone(), Arc::new(ArcSwap::from_pointee(service)));
        }
    }

    fn retain(&self, mut keep: impl FnMut(&MemberUrl) -> bool) {
        let mut slots = self.slots.write();
        if slots.keys().any(|url| !keep(url)) {
            slots.retain(|url, _| keep(url));
        }
    }

    /// How many members have a discovered service.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.read().len()
    }

    /// Whether no member has a discovered service.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.read().is_empty()
    }
}

impl<S> Clone for DiscoveredServices<S> {
    fn clone(&self) -> Self {
        Self {
            slots: Arc::clone(&self.slots),
        }
    }
}

impl<S> fmt::Debug for DiscoveredServices<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveredServices")
            .field("members", &self.len())
            .finish()
    }
}

impl<S: Clone> MakeMember for DiscoveredServices<S> {
    type Service = DiscoveredService<S>;

    fn make_member(&self, member: &Member) -> DiscoveredService<S> {
        DiscoveredService {
            slot: self.slots.read().get(&member.params().url).cloned(),
            member: member.clone(),
            ready: None,
        }
    }
}

// ===== impl DiscoveredService =====

impl<S> Clone for DiscoveredService<S> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            member: self.member.clone(),
            // A clone is not ready: it takes its own service in `poll_ready`.
            ready: None,
        }
    }
}

impl<S> fmt::Debug for DiscoveredService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveredService")
            .field("member", &self.member.url())
            .field("discovered", &self.slot.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> DiscoveredService<S>
where
    S: Clone,
{
    /// The service for the next call. Without one the request was sent nowhere: a connect
    /// error, so the balancer fails over.
    fn take(&mut self) -> Result<S, crate::Error> {
        if let Some(ready) = self.ready.take() {
            return Ok(ready);
        }
        self.slot
            .as_ref()
            .map(|slot| S::clone(&slot.load()))
            .ok_or_else(|| {
                crate::Error::connect(DiscoverError::NoService {
                    member: self.member.url().to_owned(),
                })
            })
    }
}

impl<S, R> Service<R> for DiscoveredService<S>
where
    S: Service<R> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = DiscoveredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let mut service = self.take()?;
        let ready = service.poll_ready(cx).map_err(Into::into);
        self.ready = Some(service);
        ready
    }

    fn call(&mut self, request: R) -> Self::Future {
        match self.take() {
            Ok(mut service) => DiscoveredFuture {
                state: State::Inner {
                    future: service.call(request),
                },
            },
            Err(e) => DiscoveredFuture {
                state: State::Failed {
                    error: Some(e.into()),
                },
            },
        }
    }
}

impl<F, T, E> Future for DiscoveredFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx).map_err(Into::into),
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "polled after completion".into()))),
        }
    }
}

impl<F> fmt::Debug for DiscoveredFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveredFuture").finish_non_exhaustive()
    }
}
