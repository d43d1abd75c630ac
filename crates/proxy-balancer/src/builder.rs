//! `ServiceBuilder` methods for the crate's layers.

use std::sync::Arc;

use proxy_balancer_core::BalancerStore;
use tower::layer::util::Stack;
use tower::ServiceBuilder;

use crate::balancer::BalancerLayer;
use crate::balancer::BalancerOptions;
use crate::error::ErrorResponseLayer;
use crate::proxy_pass::{ForwardLayer, ForwardedHeaders, ReverseLayer};
use crate::sticky_route::{RouteCookie, StickyRouteLayer};

mod sealed {
    pub trait Sealed<L> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}

/// Adds the crate's layers to a [`ServiceBuilder`], as tower-http does for its own.
///
/// ```
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use std::time::Instant;
///
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{Empty, Full};
/// use proxy_balancer::balancer::ReplayBody;
/// use proxy_balancer::proxy_pass::{ForwardedHeaders, ReverseLayer};
/// use proxy_balancer::{BalancerParams, BalancerStore, Member, MemberParams, ServiceBuilderExt};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let mut params = BalancerParams::new("app");
/// params.set("stickysession", "ROUTEID")?;
/// # #[expect(clippy::disallowed_methods, reason = "doc example")]
/// let store = Arc::new(BalancerStore::new(params, [MemberParams::new("http://a")?], Instant::now())?);
/// let service = ServiceBuilder::new()
///     .error_responses()
///     .reverse(ReverseLayer::new())
///     .forward(ForwardedHeaders::new())
///     .sticky_route(Arc::clone(&store))
///     .balancer(store)
///     .service(|member: &Member| {
///         let name = member.url().to_owned();
///         service_fn(move |_: Request<ReplayBody<Empty<Bytes>>>| {
///             let name = name.clone();
///             async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name)))) }
///         })
///     });
/// let response = service.oneshot(Request::new(Empty::<Bytes>::new())).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(())
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// [`BalancerLayer`]: a balancer over the members of `store`; the next `.service(..)` is
    /// the [`MakeMember`](crate::balancer::MakeMember).
    fn balancer(self, store: Arc<BalancerStore>) -> ServiceBuilder<Stack<BalancerLayer, L>>;

    /// [`BalancerLayer`] with [`BalancerOptions`] (e.g. idempotent requests retried on
    /// another member).
    fn balancer_with(
        self,
        store: Arc<BalancerStore>,
        options: BalancerOptions,
    ) -> ServiceBuilder<Stack<BalancerLayer, L>>;

    /// [`StickyRouteLayer`]: session routes read per the balancer's `stickysession`.
    fn sticky_route(self, store: Arc<BalancerStore>) -> ServiceBuilder<Stack<StickyRouteLayer, L>>;

    /// [`StickyRouteLayer`] that also sets the route cookie when a request's route changed
    /// (Apache's `Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/"
    /// env=BALANCER_ROUTE_CHANGED`).
    fn sticky_route_with_cookie(
        self,
        store: Arc<BalancerStore>,
        cookie: RouteCookie,
    ) -> ServiceBuilder<Stack<StickyRouteLayer, L>>;

    /// [`ErrorResponseLayer`]: errors answered as Apache does (503/502/504).
    fn error_responses(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>>;

    /// [`ForwardLayer`]: requests prepared for the hop to a member (hop-by-hop headers,
    /// `X-Forwarded-*`, `ProxyPreserveHost`) as `opts` says.
    fn forward(self, opts: ForwardedHeaders) -> ServiceBuilder<Stack<ForwardLayer, L>>;

    /// `layer`, a [`ReverseLayer`]: responses rewritten for the client (hop-by-hop headers,
    /// `ProxyPassReverse`, `ProxyPassReverseCookieDomain`/`Path`).
    fn reverse(self, layer: ReverseLayer) -> ServiceBuilder<Stack<ReverseLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn balancer(self, store: Arc<BalancerStore>) -> ServiceBuilder<Stack<BalancerLayer, L>> {
        self.layer(BalancerLayer::new(store))
    }

    fn balancer_with(
        self,
        store: Arc<BalancerStore>,
        options: BalancerOptions,
    ) -> ServiceBuilder<Stack<BalancerLayer, L>> {
        self.layer(BalancerLayer::new(store).with_options(options))
    }

    fn sticky_route(self, store: Arc<BalancerStore>) -> ServiceBuilder<Stack<StickyRouteLayer, L>> {
        self.layer(StickyRouteLayer::new(store))
    }

    fn sticky_route_with_cookie(
        self,
        store: Arc<BalancerStore>,
        cookie: RouteCookie,
    ) -> ServiceBuilder<Stack<StickyRouteLayer, L>> {
        self.layer(StickyRouteLayer::new(store).with_cookie(cookie))
    }

    fn error_responses(self) -> ServiceBuilder<Stack<ErrorResponseLayer, L>> {
        self.layer(ErrorResponseLayer::new())
    }

    fn forward(self, opts: ForwardedHeaders) -> ServiceBuilder<Stack<ForwardLayer, L>> {
        self.layer(ForwardLayer::new(opts))
    }

    fn reverse(self, layer: ReverseLayer) -> ServiceBuilder<Stack<ReverseLayer, L>> {
        self.layer(layer)
    }
}
