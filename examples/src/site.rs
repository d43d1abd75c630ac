//! The proxy built from an Apache configuration: one balancer stack per `balancer://`, and
//! requests routed to them by `ProxyPass` prefix.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use proxy_balancer::balancer::{BalancedBody, BalancerOptions};
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::proxy_pass::ProxyPass;
use proxy_balancer::sticky_route::{RouteCookie, StickyRouteLayer};
use proxy_balancer::{Balancer, BalancerStore, ErrorResponseLayer};
use proxy_balancer_apache_config::{Config, ProxyTarget};
use tower::{Service, ServiceExt};

use crate::{BoxError, ProxyService};

/// The body of the proxy's responses: a member's, or one the proxy wrote.
pub type ProxyBody = Either<BalancedBody<Incoming>, Full<Bytes>>;

enum Target {
    Balancer(ProxyService),
    Excluded,
}

struct Route {
    pass: ProxyPass,
    target: Target,
}

/// Requests routed by `ProxyPass` prefix (first match, as Apache) to balancer stacks; `!`
/// exclusions and unmatched paths answer 404.
#[derive(Clone)]
pub struct Site {
    routes: Arc<[Route]>,
    stores: Arc<[Arc<BalancerStore>]>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("routes", &self.routes.len())
            .field("balancers", &self.stores.len())
            .finish()
    }
}

impl Site {
    /// Builds the site a configuration describes: its balancers (members and parameters), its
    /// `ProxyPass` routes, and the route cookie of a
    /// `Header add Set-Cookie "NAME=.%{BALANCER_WORKER_ROUTE}e; path=…" env=BALANCER_ROUTE_CHANGED`.
    ///
    /// # Errors
    ///
    /// If a parameter is invalid, or a `ProxyPass` names a plain URL (only balancers are
    /// served by this example).
    pub fn from_config(config: &Config) -> Result<Self, BoxError> {
        let now = tokio::time::Instant::now().into_std();
        let mut stores = Vec::new();
        for (params, members) in config.balancers().map_err(|e| e.to_string())? {
            stores.push(Arc::new(BalancerStore::new(params, members, now)?));
        }
        let cookie = route_cookie(config);
        let mut routes = Vec::new();
        for pass in &config.proxy_passes {
            let target = match &pass.target {
                ProxyTarget::Balancer { name, path } => {
                    let store = stores
                        .iter()
                        .find(|s| s.snapshot().params().name == *name)
                        .ok_or_else(|| format!("ProxyPass {} names {name}, which is not defined", pass.path))?;
                    let mapping = ProxyPass::new(&pass.path, &format!("{name}{path}"))?;
                    routes.push(Route {
                        pass: mapping,
                        target: Target::Balancer(stack(Arc::clone(store), cookie.clone())),
                    });
                    continue;
                }
                ProxyTarget::Exclude => Target::Excluded,
                ProxyTarget::Url(url) => {
                    return Err(format!(
                        "line {}: ProxyPass {} {url}: plain backends are not served by this example; use a balancer",
                        pass.span.line, pass.path
                    )
                    .into())
                }
                _ => return Err(format!("line {}: unsupported ProxyPass", pass.span.line).into()),
            };
            routes.push(Route {
                pass: ProxyPass::new(&pass.path, "balancer://excluded/")?,
                target,
            });
        }
        Ok(Self {
            routes: routes.into(),
            stores: stores.into(),
        })
    }

    /// The balancers of the site.
    #[must_use]
    pub fn stores(&self) -> &[Arc<BalancerStore>] {
        &self.stores
    }
}

/// The stack of one balancer: errors as Apache answers them, sticky routes (and the route
/// cookie if configured), the balancer with the built-in client, idempotent retries on.
pub fn stack(store: Arc<BalancerStore>, cookie: Option<RouteCookie>) -> ProxyService {
    let options = BalancerOptions::default().retry_idempotent(true);
    let balancer = Balancer::with_options(Arc::clone(&store), MakeHttpMember::new(), options);
    let mut sticky = StickyRouteLayer::new(store);
    if let Some(cookie) = cookie {
        sticky = sticky.with_cookie(cookie);
    }
    tower::ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(sticky)
        .service(balancer)
}

/// The route cookie of Apache's documented recipe, if the configuration has it.
fn route_cookie(config: &Config) -> Option<RouteCookie> {
    config.headers.iter().find_map(|h| {
        let conditional = h
            .env
            .as_deref()
            .is_some_and(|e| e == "BALANCER_ROUTE_CHANGED");
        if !h.name.eq_ignore_ascii_case("set-cookie") || !conditional {
            return None;
        }
        let (pair, attributes) = h.value.split_once(';').unwrap_or((&h.value, ""));
        let (name, value) = pair.trim().split_once('=')?;
        if !value.contains("%{BALANCER_WORKER_ROUTE}e") {
            return None;
        }
        let mut cookie = RouteCookie::new().name(name.trim());
        for attribute in attributes.split(';') {
            if let Some((k, v)) = attribute.trim().split_once('=') {
                if k.trim().eq_ignore_ascii_case("path") {
                    cookie = cookie.path(v.trim());
                }
            }
        }
        Some(cookie)
    })
}

fn not_found() -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"404 Not Found\n",
    ))));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

impl Service<Request<Incoming>> for Site {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let Some(route) = self.routes.iter().find(|r| r.pass.matches(&path)) else {
            return Box::pin(async { Ok(not_found()) });
        };
        let Target::Balancer(service) = &route.target else {
            return Box::pin(async { Ok(not_found()) });
        };
        // The member sees the backend path of the ProxyPass mapping.
        if let Ok(mapped) = route.pass.map_path(&path) {
            let query = request
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            if let Ok(uri) = format!("{mapped}{query}").parse::<Uri>() {
                *request.uri_mut() = uri;
            }
        }
        let service = service.clone();
        Box::pin(async move { service.oneshot(request).await })
    }
}

impl From<ProxyService> for Site {
    /// A site serving everything (`ProxyPass "/"`) through one balancer stack.
    fn from(service: ProxyService) -> Self {
        let pass = ProxyPass::new("/", "balancer://default/").expect("invariant: a valid mapping");
        Self {
            routes: vec![Route {
                pass,
                target: Target::Balancer(service),
            }]
            .into(),
            stores: Vec::new().into(),
        }
    }
}
