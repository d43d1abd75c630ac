//! Sticky sessions: the session route read from the request, and the route cookie set on
//! the response.
//!
//! [`StickyRoute`] sits in front of a [`Balancer`](crate::Balancer). It reads the balancer's
//! `stickysession` (`COOKIE` or `COOKIE|param`), `stickysessionsep` and `scolonpathdelim`,
//! finds the session route in the request ([`RouteExtractor`]: the URL first — a query
//! parameter or a `;name=value` path parameter —, then the cookies), and puts it in the
//! request's extensions as a [`SessionRoute`]; the balancer
//! then sends the request to the member with that route, or fails over (`nofailover=Off`) or
//! answers 503 (`nofailover=On`), as Apache does.
//!
//! With a [`RouteCookie`], it also sets the route cookie when the route changed (a first
//! visit, or a failover), never when the route held: the equivalent of Apache's
//!
//! ```text
//! Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
//! ```
//!
//! # Where we differ from Apache
//!
//! The URL parameter's name matches only at a parameter boundary, and its value ends at `&`,
//! `?`, `#` or `/` (and `;` with `scolonpathdelim`): Apache finds it by substring, so
//! `?myjsessionid=` matches `jsessionid` and the value runs on past `/`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use http::{header, Request, Response};
//! use http_body_util::{Empty, Full};
//! use proxy_balancer::balancer::ReplayBody;
//! use proxy_balancer::sticky_route::{RouteCookie, StickyRouteLayer};
//! use proxy_balancer::{Balancer, BalancerParams, BalancerStore, Member, MemberParams};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut params = BalancerParams::new("cluster");
//! params.set("stickysession", "ROUTEID")?;
//! let mut members = Vec::new();
//! for (url, route) in [("http://a", "node1"), ("http://b", "node2")] {
//!     let mut m = MemberParams::new(url)?;
//!     m.set("route", route)?;
//!     members.push(m);
//! }
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! let store = Arc::new(BalancerStore::new(params, members, Instant::now())?);
//! let service = ServiceBuilder::new()
//!     .layer(StickyRouteLayer::new(Arc::clone(&store)).with_cookie(RouteCookie::new()))
//!     .service(Balancer::new(store, |m: &Member| {
//!         let name = m.url().to_owned();
//!         service_fn(move |_: Request<ReplayBody<Empty<Bytes>>>| {
//!             let name = name.clone();
//!             async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name)))) }
//!         })
//!     }));
//!
//! // A first visit is balanced and gets its route cookie.
//! let first = service.clone().oneshot(Request::new(Empty::<Bytes>::new())).await?;
//! assert_eq!(first.headers()[header::SET_COOKIE], "ROUTEID=.node1; Path=/");
//!
//! // A request with the cookie sticks to node2 and gets no new cookie.
//! let sticky = Request::builder()
//!     .header(header::COOKIE, "ROUTEID=.node2")
//!     .body(Empty::<Bytes>::new())?;
//! let second = service.oneshot(sticky).await?;
//! assert!(second.headers().get(header::SET_COOKIE).is_none());
//! # Ok(())
//! # }
//! ```

mod extract;
pub mod future;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response};
use proxy_balancer_core::{BalancerSnapshot, BalancerStore};
use tower_layer::Layer;
use tower_service::Service;

pub(crate) use self::extract::cookie_value;
pub use self::extract::{FoundRoute, RouteExtractor, RouteSource};
pub use self::future::ResponseFuture;
use crate::balancer::{RouteLookedUp, SessionRoute};

/// The `SameSite` attribute of the route cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (browsers require `Secure` with it).
    None,
}

/// The route cookie the [`StickyRoute`] layer sets when a request's route changed.
///
/// The value is the separator and the member's route (`.node1`), so that the balancer's
/// extractor reads it back. Defaults: the balancer's sticky cookie name, `Path=/`, no
/// `Max-Age` (a session cookie), no `Secure`, no `HttpOnly`, no `SameSite`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteCookie {
    name: Option<String>,
    path: Option<String>,
    max_age: Option<Duration>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

impl RouteCookie {
    /// The defaults.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            name: None,
            path: None,
            max_age: None,
            secure: false,
            http_only: false,
            same_site: None,
        }
    }

    /// The cookie name (default: the cookie name of the balancer's `stickysession`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The `Path` (default `/`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// `Max-Age`, in whole seconds.
    #[must_use]
    pub const fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// `Secure`.
    #[must_use]
    pub const fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// `HttpOnly`.
    #[must_use]
    pub const fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// `SameSite`.
    #[must_use]
    pub const fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }

    /// The `Set-Cookie` value for a member's route; `None` if it cannot be a header value.
    fn header(
        &self,
        default_name: &str,
        separator: Option<char>,
        route: &str,
    ) -> Option<HeaderValue> {
        use std::fmt::Write;
        let name = self.name.as_deref().unwrap_or(default_name);
        let mut value = String::with_capacity(64);
        value.push_str(name);
        value.push('=');
        if let Some(sep) = separator {
            value.push(sep);
        }
        value.push_str(route);
        value.push_str("; Path=");
        value.push_str(self.path.as_deref().unwrap_or("/"));
        if let Some(age) = self.max_age {
            let _ = write!(value, "; Max-Age={}", age.as_secs());
        }
        if self.secure {
            value.push_str("; Secure");
        }
        if self.http_only {
            value.push_str("; HttpOnly");
        }
        if let Some(same_site) = self.same_site {
            value.push_str(match same_site {
                SameSite::Strict => "; SameSite=Strict",
                SameSite::Lax => "; SameSite=Lax",
                SameSite::None => "; SameSite=None",
            });
        }
        // The String's buffer becomes the header's bytes: no second copy.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
    }
}

/// Adds [`StickyRoute`] in front of a balancer service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct StickyRouteLayer {
    store: Arc<BalancerStore>,
    cookie: Option<Arc<RouteCookie>>,
}

impl StickyRouteLayer {
    /// Reads routes per the settings of the balancer in `store`; sets no cookie.
    #[must_use]
    pub const fn new(store: Arc<BalancerStore>) -> Self {
        Self {
            store,
            cookie: None,
        }
    }

    /// Also sets the route cookie when the route changed.
    #[must_use]
    pub fn with_cookie(mut self, cookie: RouteCookie) -> Self {
        self.cookie = Some(Arc::new(cookie));
        self
    }
}

impl<S> Layer<S> for StickyRouteLayer {
    type Service = StickyRoute<S>;
    fn layer(&self, inner: S) -> StickyRoute<S> {
        StickyRoute {
            inner,
            shared: Arc::new(Shared {
                store: Arc::clone(&self.store),
                cached: ArcSwap::from_pointee(Cached::of(&self.store.snapshot())),
                cookie: self.cookie.clone(),
            }),
        }
    }
}

/// The extractor that goes with one snapshot (rebuilt when the settings may have changed).
struct Cached {
    snapshot: Arc<BalancerSnapshot>,
    extractor: Option<RouteExtractor>,
}

impl Cached {
    fn of(snapshot: &Arc<BalancerSnapshot>) -> Self {
        Self {
            snapshot: Arc::clone(snapshot),
            extractor: RouteExtractor::from_params(snapshot.params()),
        }
    }

    fn cookie_name(&self) -> &str {
        self.snapshot
            .params()
            .sticky_session
            .as_ref()
            .map_or("ROUTEID", |s| s.cookie())
    }
}

struct Shared {
    store: Arc<BalancerStore>,
    cached: ArcSwap<Cached>,
    cookie: Option<Arc<RouteCookie>>,
}

impl Shared {
    fn current(&self) -> Arc<Cached> {
        let cached = self.cached.load_full();
        let current = self.store.load();
        if Arc::ptr_eq(&cached.snapshot, &current) {
            return cached;
        }
        let fresh = Arc::new(Cached::of(&current));
        self.cached.store(Arc::clone(&fresh));
        fresh
    }
}

/// Reads the session route into the request and sets the route cookie on the response.
/// See the [module docs](self).
#[derive(Clone)]
pub struct StickyRoute<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> StickyRoute<S> {
    /// The wrapped service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> fmt::Debug for StickyRoute<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StickyRoute")
            .field("cookie", &self.shared.cookie)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<B>> for StickyRoute<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let cached = self.shared.current();
        let mut cookie = None;
        if let Some(extractor) = &cached.extractor {
            match extractor.extract(request.uri(), request.headers()) {
                Some(found) => {
                    let session = SessionRoute {
                        sticky_name: Arc::from(found.name),
                        route: Arc::from(found.route),
                    };
                    request.extensions_mut().insert(session);
                }
                // Looked for and not found: the balancer need not look again.
                None => {
                    request.extensions_mut().insert(RouteLookedUp);
                }
            }
            if let Some(config) = &self.shared.cookie {
                cookie = Some(CookieJob {
                    config: Arc::clone(config),
                    cached: Arc::clone(&cached),
                });
            }
        }
        ResponseFuture::new(self.inner.call(request), cookie)
    }
}

/// What the response needs to set the route cookie.
struct CookieJob {
    config: Arc<RouteCookie>,
    cached: Arc<Cached>,
}
