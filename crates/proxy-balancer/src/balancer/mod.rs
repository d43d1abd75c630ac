//! The balancer: a tower [`Service`] that picks a member for each request, forwards it,
//! fails over when a member cannot be reached, and accounts for every request.
//!
//! # Apache
//!
//! `ProxyPass "/" "balancer://mycluster/"` with its `<Proxy balancer://mycluster>` members:
//! the pick is mod_proxy_balancer's (see [`proxy_balancer_core`]); the request flow is
//! mod_proxy's:
//!
//! - a member that cannot be reached (refused, reset before the request was written,
//!   connect timeout) goes to the error state and the request goes to the next pick, up to
//!   `maxattempts` more tries, never to a member it already tried;
//! - with no usable member the answer is 503 (after waiting up to the balancer `timeout`
//!   for one, as Apache does, in the first attempt's pick and in each retry's), with
//!   `Retry-After` rounded up to whole seconds;
//! - a status in `failonstatus` puts the member in error; the client still gets that
//!   response, as in Apache;
//! - a member's read timeout is a 504 (Apache answers 502; see the README, "Where we differ from Apache"), and with
//!   `failontimeout=On` puts the member in error;
//! - the member's `busy` count covers the request until its response body ends, fails or is
//!   dropped, and `transferred`/`read` count bytes as Apache counts them for bytraffic;
//!   a response that opens a tunnel (`101 Switching Protocols` with a [`TunnelHold`]) keeps
//!   the count until the tunnel ends;
//! - each response carries a [`BalancerInfo`] extension with Apache's six `BALANCER_*`
//!   values (unless [`BalancerOptions::balancer_info`] turns it off);
//! - with `stickysession` set, a request's session route (cookie or URL parameter) sends it
//!   to its member: read by the [`StickyRoute`](crate::StickyRoute) layer in front, or,
//!   without one, by the balancer itself, so a sticky balancer is never silently
//!   non-sticky. The route cookie (`Header add Set-Cookie … env=BALANCER_ROUTE_CHANGED`)
//!   needs the layer.
//!
//! Members are any tower services, one per member, made by a [`MakeMember`] (a closure
//! `Fn(&Member) -> S` is one); the balancer judges each call's outcome as a
//! [`RetryWindow`](crate::retry_window::RetryWindow) around the member's service would, and
//! drives the member's error state (without wrapping the service: one judgement per call). The balancer is always ready, cheap to clone, and safe to
//! clone between `poll_ready` and `call`: no `Buffer` is needed.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Empty, Full};
//! use proxy_balancer::balancer::{Balancer, BalancerInfo, ReplayBody};
//! use proxy_balancer::{BalancerParams, BalancerStore, Member, MemberParams};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let members = [MemberParams::new("http://a")?, MemberParams::new("http://b")?];
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("demo"), members, Instant::now())?);
//!
//! // One service per member; here an in-process one that names its member.
//! let balancer = Balancer::new(Arc::clone(&store), |member: &Member| {
//!     let name = member.url().to_owned();
//!     service_fn(move |_req: Request<ReplayBody<Empty<Bytes>>>| {
//!         let name = name.clone();
//!         async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name)))) }
//!     })
//! });
//!
//! let response = balancer.oneshot(Request::new(Empty::<Bytes>::new())).await?;
//! let info = response.extensions().get::<BalancerInfo>().cloned().expect("set by the balancer");
//! assert_eq!(info.worker_name(), "http://a");
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "http://a");
//! # Ok(())
//! # }
//! ```

mod body;
pub mod future;
mod key;
mod layer;
mod tunnel;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{Request, Response};
use http_body::Body;
use proxy_balancer_core::{BalancerSnapshot, BalancerStore, Member};
use tower_service::Service;

pub use self::body::{BalancedBody, ReplayBody};
pub use self::future::ResponseFuture;
pub use self::layer::BalancerLayer;
pub use self::tunnel::TunnelHold;
use crate::error::BoxError;
use crate::retry_window::OutcomeRules;
use crate::sticky_route::RouteExtractor;

/// Makes the service that sends requests to one member. A closure `Fn(&Member) -> S` is a
/// `MakeMember`; the balancer calls it once per member (again when a member is added or its
/// parameters change) and clones the service for each request.
pub trait MakeMember {
    /// The member's service.
    type Service: Clone;

    /// The service for `member`.
    fn make_member(&self, member: &Member) -> Self::Service;
}

impl<F, S> MakeMember for F
where
    F: Fn(&Member) -> S,
    S: Clone,
{
    type Service = S;

    fn make_member(&self, member: &Member) -> S {
        self(member)
    }
}

/// The session route of a request, put in its extensions by the sticky-route layer (or by
/// you; without either the balancer reads it itself): the name that carried it (`BALANCER_SESSION_STICKY`) and the route
/// (`BALANCER_SESSION_ROUTE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRoute {
    /// The cookie or URL parameter name the route came from, e.g. `JSESSIONID`.
    pub sticky_name: Arc<str>,
    /// The route, e.g. `node1` from `JSESSIONID=ABC.node1`.
    pub route: Arc<str>,
}

/// Apache's `BALANCER_*` values of a request, as a response extension.
#[derive(Clone, Debug)]
pub struct BalancerInfo {
    balancer_name: Arc<str>,
    member: Member,
    session: Option<SessionRoute>,
    route_changed: bool,
}

impl BalancerInfo {
    /// `BALANCER_NAME`: e.g. `balancer://mycluster`.
    #[must_use]
    pub fn balancer_name(&self) -> &str {
        &self.balancer_name
    }

    /// `BALANCER_WORKER_NAME`: the URL of the member that answered.
    #[must_use]
    pub fn worker_name(&self) -> &str {
        self.member.url()
    }

    /// `BALANCER_WORKER_ROUTE`: that member's route (empty if it has none, as Apache).
    #[must_use]
    pub fn worker_route(&self) -> &str {
        self.member.route().unwrap_or("")
    }

    /// `BALANCER_SESSION_STICKY`: the name the session route was found under.
    #[must_use]
    pub fn session_sticky(&self) -> Option<&str> {
        self.session.as_ref().map(|s| &*s.sticky_name)
    }

    /// `BALANCER_SESSION_ROUTE`: the route the request asked for.
    #[must_use]
    pub fn session_route(&self) -> Option<&str> {
        self.session.as_ref().map(|s| &*s.route)
    }

    /// `BALANCER_ROUTE_CHANGED`: the client should get a new route cookie (a balanced
    /// request of a sticky balancer, or a sticky one sent elsewhere).
    #[must_use]
    pub const fn route_changed(&self) -> bool {
        self.route_changed
    }

    /// The member that answered.
    #[must_use]
    pub const fn member(&self) -> &Member {
        &self.member
    }
}

/// Settings of the balancer service beyond Apache's balancer parameters.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BalancerOptions {
    /// How much of a request body is kept so the request can be sent to another member
    /// after the first one failed while reading it (default 64 KiB). A body that was never
    /// read (the connection failed first) can always be sent again.
    pub replay_limit: usize,
    /// Beyond Apache (off by default): an idempotent request (RFC 9110 §9.2.2: GET, HEAD,
    /// OPTIONS, TRACE, PUT, DELETE) whose member failed after the request was sent (the
    /// connection closed or was reset before an answer) goes to another member, within
    /// `maxattempts`, if its body is still at hand. POST and PATCH are never sent twice.
    pub retry_idempotent: bool,
    /// Whether each response carries its [`BalancerInfo`] extension (default on). Off
    /// saves the extension's allocations per response (a box, and a map when the member's
    /// answer has no extensions) where nothing reads it: no
    /// [`StickyRoute`](crate::StickyRoute) route cookie, no `%{BALANCER_*}e` in an access
    /// log, no `env=BALANCER_*` header rule, no `ProxyPassReverse` naming the balancer.
    /// Errors keep theirs ([`Error::balancer_info`](crate::Error::balancer_info)).
    pub balancer_info: bool,
}

impl Default for BalancerOptions {
    fn default() -> Self {
        Self {
            // Enough for typical form and JSON bodies; larger ones stream without a copy.
            replay_limit: 64 * 1024,
            retry_idempotent: false,
            balancer_info: true,
        }
    }
}

impl BalancerOptions {
    /// Sets [`BalancerOptions::replay_limit`].
    #[must_use]
    pub const fn replay_limit(mut self, bytes: usize) -> Self {
        self.replay_limit = bytes;
        self
    }

    /// Sets [`BalancerOptions::retry_idempotent`].
    #[must_use]
    pub const fn retry_idempotent(mut self, retry: bool) -> Self {
        self.retry_idempotent = retry;
        self
    }

    /// Sets [`BalancerOptions::balancer_info`].
    ///
    /// ```
    /// use proxy_balancer::balancer::BalancerOptions;
    ///
    /// // Nothing reads the BALANCER_* values of responses here: no extension per response.
    /// let options = BalancerOptions::default().balancer_info(false);
    /// assert!(!options.balancer_info);
    /// ```
    #[must_use]
    pub const fn balancer_info(mut self, on: bool) -> Self {
        self.balancer_info = on;
        self
    }
}

/// The member services that go with one snapshot, position for position.
pub(crate) struct View<S> {
    pub(crate) snapshot: Arc<BalancerSnapshot>,
    pub(crate) services: Box<[S]>,
    /// The snapshot's `failonstatus` and `failontimeout`, which judge every member's
    /// outcomes (as a [`RetryWindow`](crate::retry_window::RetryWindow) would).
    pub(crate) rules: Arc<OutcomeRules>,
    /// The session-route reader of the snapshot's `stickysession`, for requests that come
    /// without a [`StickyRoute`](crate::StickyRoute) in front.
    pub(crate) routes: Option<RouteExtractor>,
}

/// Put in a request by [`StickyRoute`](crate::StickyRoute) when it looked for a session
/// route and found none, so that the balancer does not look again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteLookedUp;

pub(crate) struct Shared<M: MakeMember> {
    pub(crate) store: Arc<BalancerStore>,
    make: M,
    view: ArcSwap<View<M::Service>>,
    rebuild: parking_lot::Mutex<()>,
    pub(crate) options: BalancerOptions,
    pub(crate) name: Arc<str>,
}

impl<M: MakeMember> Shared<M> {
    /// The current snapshot and its member services: one load, plus a rebuild when the
    /// store has a newer snapshot (new members get services; others keep theirs unless
    /// their parameters changed).
    pub(crate) fn view(&self) -> arc_swap::Guard<Arc<View<M::Service>>> {
        let view = self.view.load();
        if Arc::ptr_eq(&view.snapshot, &self.store.load()) {
            return view;
        }
        drop(view);
        let _serialised = self.rebuild.lock();
        let view = self.view.load_full();
        let snapshot = self.store.snapshot();
        if Arc::ptr_eq(&view.snapshot, &snapshot) {
            return self.view.load();
        }
        let services = snapshot
            .members()
            .iter()
            .map(|m| {
                let old = view.snapshot.members();
                old.binary_search_by_key(&m.id(), Member::id)
                    .ok()
                    .filter(|&i| old[i].params() == m.params())
                    .and_then(|i| view.services.get(i))
                    .map_or_else(|| self.make.make_member(m), Clone::clone)
            })
            .collect();
        let routes = RouteExtractor::from_params(snapshot.params());
        self.view.store(Arc::new(View {
            rules: Arc::new(OutcomeRules::from_params(snapshot.params())),
            snapshot,
            services,
            routes,
        }));
        self.view.load()
    }
}

/// The balancer service. See the [module docs](self).
pub struct Balancer<M: MakeMember> {
    shared: Arc<Shared<M>>,
}

impl<M: MakeMember> Balancer<M> {
    /// A balancer over the members of `store`, sending to each through the service `make`
    /// makes for it.
    pub fn new(store: Arc<BalancerStore>, make: M) -> Self {
        Self::with_options(store, make, BalancerOptions::default())
    }

    /// [`Balancer::new`] with options.
    pub fn with_options(store: Arc<BalancerStore>, make: M, options: BalancerOptions) -> Self {
        let snapshot = store.snapshot();
        let services = snapshot
            .members()
            .iter()
            .map(|m| make.make_member(m))
            .collect();
        let name = Arc::from(snapshot.params().name.as_str());
        Self {
            shared: Arc::new(Shared {
                store,
                make,
                view: ArcSwap::from_pointee(View {
                    routes: RouteExtractor::from_params(snapshot.params()),
                    rules: Arc::new(OutcomeRules::from_params(snapshot.params())),
                    snapshot,
                    services,
                }),
                rebuild: parking_lot::Mutex::new(()),
                options,
                name,
            }),
        }
    }

    /// The balancer's store: its members, their state, and where to change them.
    #[must_use]
    pub fn store(&self) -> &Arc<BalancerStore> {
        &self.shared.store
    }
}

impl<M: MakeMember> Clone for Balancer<M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: MakeMember> fmt::Debug for Balancer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<M, B, RB> Service<Request<B>> for Balancer<M>
where
    M: MakeMember,
    M::Service: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    <M::Service as Service<Request<ReplayBody<B>>>>::Error: Into<BoxError>,
    B: Body<Data = bytes::Bytes>,
    B::Error: Into<BoxError>,
    RB: Body,
{
    type Response = Response<BalancedBody<RB>>;
    type Error = crate::Error;
    type Future = ResponseFuture<M, B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Always ready: the member is chosen, and its service driven, in the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ResponseFuture::new(Arc::clone(&self.shared), request)
    }
}

#[cfg(test)]
mod tests;
