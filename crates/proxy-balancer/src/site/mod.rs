//! The reverse proxy an Apache httpd configuration describes, as one tower service.
//!
//! [`Site::from_config`] builds, from a parsed [`Config`]:
//! one balancer stack per `<Proxy balancer://…>` (the [`Balancer`] over the built-in
//! [`MakeHttpMember`] client, sticky routes with the route cookie of Apache's documented
//! `Header add Set-Cookie … env=BALANCER_ROUTE_CHANGED` recipe, errors answered as Apache
//! does), the `ProxyPass` routes to them (first match, Apache's segment rule; `!`
//! exclusions answer 404), the other `Header` directives filled from the `BALANCER_*`
//! values, the health probes of members with `hc*` parameters (stopped when the last clone
//! of the site is dropped), and the balancer-manager of `<Location …> SetHandler
//! balancer-manager`.
//!
//! Serve it with [`Server`](crate::server::Server), which puts the client's
//! [`PeerAddr`](crate::PeerAddr) in each request (for `X-Forwarded-For` and the manager's
//! `Require ip` rule). The site takes the server's [`RequestBody`]: requests the
//! server's [`Admit`](crate::server::Admit) checked, with their body read under
//! `RequestReadTimeout body=` and `LimitRequestBody`. Served with hyper directly, wrap it in
//! `Admit` (or map each body with `RequestBody::from`).
//!
//! # Paths
//!
//! A request path is matched as Apache matches it ([`RequestPath`]): every escape decoded,
//! `.` and `..` segments removed, runs of `/` merged, so that `ProxyPass "/private" "!"`
//! holds against `/%70rivate`, `/x/../private` or `/priv%61te`. `%2F` is answered 404 unless
//! `AllowEncodedSlashes On` (decoded) or `NoDecode` (kept encoded) says otherwise, `%00` 404
//! always, a bad escape and a `..` above the root 400. The member receives the matched path
//! mapped through the `ProxyPass` line and encoded as mod_proxy encodes it
//! ([`encode_path`](crate::proxy_pass::encode_path): `/a%20b` stays, `/%c3%a9` becomes
//! `/%C3%A9`, `/a/./b/../c` becomes `/a/c`), or the rest of the path as sent with the
//! `nocanon` flag; the query goes as sent. Checked against Apache 2.4.71 on loopback, with
//! the same configuration, on 51 request paths under each `AllowEncodedSlashes` mode. Where
//! we differ, on purpose:
//! - the balancer-manager's `<Location>` is served before the `ProxyPass` lines. Apache
//!   gives a matching `ProxyPass` (`ProxyPass "/"`) the request instead, which is why its
//!   docs add `ProxyPass "/balancer-manager" "!"`; with that line both answer the same,
//!   `/x/../balancer-manager` included;
//! - under `AllowEncodedSlashes NoDecode`, a `%25` (an encoded `%`) followed by anything but
//!   two hexadecimal digits (`/100%25`, `/a%25zz`) is sent as `%25`; Apache answers 400
//!   there (its encoder reads the decoded `%` as the start of an escape);
//! - the backend path written in a `ProxyPass` target is sent as written (Apache would
//!   encode a `%` in it again);
//! - `MergeSlashes` is always `On` (Apache's default): the directive is not read.
//!
//! # Example
//!
//! ```
//! use proxy_balancer::apache_config::parse;
//! use proxy_balancer::server::Server;
//! use proxy_balancer::site::Site;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config = parse(
//!     r#"
//!     <Proxy "balancer://app">
//!         BalancerMember "http://127.0.0.1:8001" route=n1
//!         BalancerMember "http://127.0.0.1:8002" route=n2
//!         ProxySet stickysession=ROUTEID
//!     </Proxy>
//!     ProxyPass        "/" "balancer://app/"
//!     ProxyPassReverse "/" "balancer://app/"
//!     "#,
//! )?;
//! let site = Site::from_config(&config)?;
//! assert_eq!(site.stores().len(), 1);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = Server::new().spawn(listener, site)?;
//! // ... serves http://{server.local_addr()}/ until:
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod error;
pub mod future;
mod headers;
mod wiring;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tower::util::Oneshot;
use tower::ServiceExt;
use tower_service::Service;

use crate::apache_config::{AllowEncodedSlashes, Config, HeaderDirective, ProxyTarget};
use crate::balancer::{BalancedBody, BalancerOptions};
use crate::client::{MakeHttpMember, MemberBody};
use crate::health_probe::HealthProbe;
use crate::manager::BalancerManager;
use crate::proxy_pass::{
    forward_request, join_uri, EncodedSlashes, ForwardedHeaders, PathRefusal, ProxyPass,
    ProxyPassReverse, RequestPath, Reverse, ReverseLayer,
};
use crate::server::RequestBody;
use crate::sticky_route::{RouteCookie, StickyRoute, StickyRouteLayer};
use crate::{Balancer, BalancerStore, ErrorResponseLayer};

pub use self::error::SiteError;
pub use self::future::ResponseFuture;
use self::headers::{is_route_cookie, route_cookie};

/// The stack of one balancer: sticky routes, the balancer over the built-in HTTP client,
/// and errors turned into Apache's responses.
pub type ProxyService =
    crate::error::ErrorResponse<StickyRoute<Balancer<MakeHttpMember<RequestBody>>>>;

/// The body of the site's responses: a member's, or one the proxy wrote (errors, 404, the
/// balancer-manager's pages).
pub type ProxyBody = Either<BalancedBody<MemberBody>, Full<Bytes>>;

/// A route's service: a balancer stack with the `ProxyPassReverse` rewriting.
type RouteService = Reverse<ProxyService>;

enum Target {
    Balancer(RouteService),
    Excluded,
}

struct Route {
    pass: ProxyPass,
    target: Target,
}

/// The reverse proxy of an Apache configuration, as one tower service; see the
/// [module docs](self).
///
/// Cloning is cheap (the parts are shared); the health probes stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Site {
    /// The balancer-manager and where it is mounted, if the configuration has one.
    manager: Option<BalancerManager>,
    /// The health probes of the configuration's members; they stop with the last clone.
    probes: Arc<[HealthProbe]>,
    routes: Arc<[Route]>,
    stores: Arc<[Arc<BalancerStore>]>,
    /// `Header` directives filled from the `BALANCER_*` values of each response.
    headers: Arc<[HeaderDirective]>,
    /// `ProxyAddHeaders`, `ProxyPreserveHost` and the server name.
    forwarded: Arc<ForwardedHeaders>,
    /// `AllowEncodedSlashes`.
    encoded_slashes: EncodedSlashes,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("probes", &self.probes.len())
            .field("routes", &self.routes.len())
            .field("balancers", &self.stores.len())
            .field(
                "manager",
                &self.manager.as_ref().map(BalancerManager::mount),
            )
            .finish_non_exhaustive()
    }
}

// ===== impl Site =====

impl Site {
    /// Builds the site a configuration describes (see the [module docs](self)) and starts
    /// its health probes (so: inside a tokio runtime).
    ///
    /// # Errors
    ///
    /// If a parameter is invalid, a `ProxyPass` names a balancer that is not defined, a
    /// health check or the manager's `<Location>` is invalid. Each error names its line.
    pub fn from_config(config: &Config) -> Result<Self, SiteError> {
        refuse_skipped_headers(config)?;
        if config.balancer_persist == Some(true) {
            tracing::warn!(
                "BalancerPersist On has no effect here: manager changes are kept across restarts only with a persistence file (BalancerManagerBuilder::persist)"
            );
        }
        if config.server.balancer_inherit == Some(false) {
            tracing::warn!(
                "BalancerInherit Off has no effect here: there are no <VirtualHost> contexts"
            );
        }
        let now = tokio::time::Instant::now().into_std();
        let mut stores = Vec::new();
        let balancers = config.balancers().map_err(SiteError::Params)?;
        // The balancer-manager shows the configured balancers, not the plain-URL workers
        // (as Apache's).
        let managed = balancers.len();
        let workers = config.url_worker_balancers().map_err(SiteError::Params)?;
        for (params, members) in balancers.into_iter().chain(workers) {
            let name = params.name.clone();
            let store = BalancerStore::new(params, members, now)
                .map_err(|source| SiteError::Balancer { name, source })?;
            stores.push(Arc::new(store));
        }
        // Name → store, so that each ProxyPass finds its balancer in constant time (a scan
        // of the stores per ProxyPass is quadratic in start-up).
        let by_name: std::collections::HashMap<String, &Arc<BalancerStore>> = stores
            .iter()
            .map(|s| (s.snapshot().params().name.clone(), s))
            .collect();
        let cookie = route_cookie(config);
        let reverse = reverse_layer(config)?;
        let route = |store: &Arc<BalancerStore>, cookie: Option<RouteCookie>| {
            Target::Balancer(Reverse::new(stack(Arc::clone(store), cookie), &reverse))
        };
        let mut routes = Vec::new();
        let mut workers_seen = std::collections::HashSet::new();
        for pass in &config.proxy_passes {
            let line = pass.span.line;
            let mapping = |backend: &str| {
                ProxyPass::new(&pass.path, backend)
                    .map(|p| p.with_nocanon(pass.nocanon))
                    .map_err(|source| SiteError::Mapping { line, source })
            };
            let route = match &pass.target {
                ProxyTarget::Balancer { name, path } => {
                    let store = by_name
                        .get(name.as_str())
                        .copied()
                        .ok_or_else(|| SiteError::ProxyPass {
                            line,
                            reason: format!(
                                "ProxyPass {} {name}{path}: {name} is not defined (no <Proxy \"{name}\"> or BalancerMember for it)",
                                pass.path
                            ),
                        })?;
                    Route {
                        pass: mapping(&format!("{name}{path}"))?,
                        target: route(store, cookie.clone()),
                    }
                }
                ProxyTarget::Exclude => Route {
                    pass: mapping("balancer://excluded/")?,
                    target: Target::Excluded,
                },
                ProxyTarget::Url(url) => {
                    // Apache's worker for a plain URL: here a one-member balancer, built
                    // once per URL (the first ProxyPass to it gives its parameters).
                    let (params, _) = config
                        .url_worker_balancer(pass)
                        .map_err(SiteError::Params)?;
                    if !workers_seen.insert(params.name.clone()) && !pass.params.is_empty() {
                        tracing::warn!(
                            apache_id = "AH01146",
                            line,
                            worker = %params.name,
                            "ProxyPass {} {url}: parameters ignored: the worker was defined by an earlier ProxyPass",
                            pass.path
                        );
                    }
                    let store = by_name.get(params.name.as_str()).copied().ok_or_else(|| {
                        SiteError::ProxyPass {
                            line,
                            reason: format!(
                                "ProxyPass {} {url}: its worker was not built",
                                pass.path
                            ),
                        }
                    })?;
                    // The member URL holds the base path; the mapping adds the rest of the
                    // request path, after a `/` if the URL as written ends with one.
                    let backend = if url.ends_with('/') {
                        "balancer://url-worker/"
                    } else {
                        "balancer://url-worker"
                    };
                    Route {
                        pass: mapping(backend)?,
                        target: route(store, None),
                    }
                }
                _ => {
                    return Err(SiteError::ProxyPass {
                        line,
                        reason: format!("ProxyPass {}: this target is not served", pass.path),
                    })
                }
            };
            routes.push(route);
        }
        let defs = Arc::new(wiring::probe_definitions(config)?);
        let probes = wiring::spawn_probes(&stores, &defs)?;
        let manager = wiring::manager(config, &stores[..managed], &probes[..managed], &defs)?;
        let headers: Vec<HeaderDirective> = config
            .headers
            .iter()
            .filter(|h| !is_route_cookie(h))
            .cloned()
            .collect();
        Ok(Self {
            manager,
            probes: probes.into(),
            routes: routes.into(),
            stores: stores.into(),
            headers: headers.into(),
            forwarded: Arc::new(forwarded_headers(config)),
            encoded_slashes: encoded_slashes(config),
        })
    }

    /// A site serving everything (`ProxyPass "/"`) through one balancer stack (see
    /// [`stack`]): no manager, no probes, no `Header` directives.
    #[must_use]
    pub fn single(store: Arc<BalancerStore>, cookie: Option<RouteCookie>) -> Self {
        // The mapping `/` → `/`: every path goes to the members unchanged.
        let target = Target::Balancer(Reverse::new(
            stack(Arc::clone(&store), cookie),
            &ReverseLayer::new(),
        ));
        let routes: Vec<Route> = match ProxyPass::new("/", "balancer://default/") {
            Ok(pass) => vec![Route { pass, target }],
            // Never: the mapping is a constant.
            Err(_) => Vec::new(),
        };
        Self {
            manager: None,
            probes: Vec::new().into(),
            routes: routes.into(),
            stores: vec![store].into(),
            headers: Vec::new().into(),
            forwarded: Arc::new(ForwardedHeaders::new()),
            encoded_slashes: EncodedSlashes::default(),
        }
    }

    /// The balancers of the site.
    #[must_use]
    pub fn stores(&self) -> &[Arc<BalancerStore>] {
        &self.stores
    }

    /// The balancer-manager, if the configuration mounts one.
    #[must_use]
    pub fn manager(&self) -> Option<&BalancerManager> {
        self.manager.as_ref()
    }

    /// The health probes running for the site's balancers (one per balancer with probed
    /// members).
    #[must_use]
    pub fn probes(&self) -> &[HealthProbe] {
        &self.probes
    }

    /// Whether a matched path ([`RequestPath::matched`]) is the manager's (its mount, or
    /// under it), as Apache's `<Location>` matches it.
    fn is_manager_path(&self, path: &[u8]) -> Option<&BalancerManager> {
        let manager = self.manager.as_ref()?;
        path.strip_prefix(manager.mount().as_bytes())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
            .then_some(manager)
    }
}

/// The stack of one balancer: errors as Apache answers them, sticky routes (and the route
/// cookie if given), the balancer over the built-in client with idempotent requests retried
/// on another member.
#[must_use]
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

fn not_found() -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"404 Not Found\n",
    ))));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

impl Service<Request<RequestBody>> for Site {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<RequestBody>) -> Self::Future {
        // Matched as Apache matches (`r->uri`): every escape decoded, dot segments removed,
        // `//` merged; `%2F` (unless AllowEncodedSlashes), `%00`, bad escapes and `..` above
        // the root refused with Apache's status. `/%70rivate` meets `ProxyPass /private !`
        // as `/private` does, and `/x/../balancer-manager` is the manager's.
        let path = match RequestPath::parse_with(request.uri().path(), self.encoded_slashes) {
            Ok(path) => path,
            Err(refusal) => return ResponseFuture::ready(refused(refusal)),
        };
        let routed = if let Some(manager) = self.is_manager_path(path.matched()) {
            // The manager reads its mount from the path: give it the normalised one.
            Routed::Manager(
                manager.clone(),
                changed(request.uri().path(), path.forwarded()),
            )
        } else {
            match self.routes.iter().find(|r| r.pass.matches_request(&path)) {
                None => Routed::Refused(StatusCode::NOT_FOUND),
                Some(Route {
                    target: Target::Excluded,
                    ..
                }) => Routed::Refused(StatusCode::NOT_FOUND),
                Some(Route {
                    pass,
                    target: Target::Balancer(service),
                }) => match pass.forward_path(&path) {
                    // The member sees the backend path of the ProxyPass mapping, encoded
                    // as mod_proxy encodes it (or as sent, with nocanon).
                    Some(mapped) => {
                        Routed::Member(service.clone(), changed(request.uri().path(), mapped))
                    }
                    None => Routed::Refused(StatusCode::NOT_FOUND),
                },
            }
        };
        match routed {
            Routed::Refused(status) => ResponseFuture::ready(status_response(status)),
            Routed::Manager(manager, new_path) => {
                if let Some(new_path) = new_path {
                    if set_path(&mut request, &new_path).is_err() {
                        return ResponseFuture::ready(status_response(StatusCode::BAD_REQUEST));
                    }
                }
                ResponseFuture::manager(manager.oneshot(request))
            }
            Routed::Member(service, new_path) => {
                if let Some(new_path) = new_path {
                    if set_path(&mut request, &new_path).is_err() {
                        return ResponseFuture::ready(status_response(StatusCode::BAD_REQUEST));
                    }
                }
                // The hop to the member as mod_proxy makes it: hop-by-hop headers removed,
                // X-Forwarded-* added (ProxyAddHeaders), Host for the member client to set to
                // the member's unless ProxyPreserveHost.
                forward_request(&mut request, &self.forwarded);
                ResponseFuture::proxy(service.oneshot(request), Arc::clone(&self.headers))
            }
        }
    }
}

/// Where [`Site::call`] sends a request, decided while the request path is borrowed.
enum Routed {
    Refused(StatusCode),
    /// The manager, and the path to give it if it differs from the one sent.
    Manager(BalancerManager, Option<String>),
    /// A route's stack, and the path for the member if it differs from the one sent.
    Member(RouteService, Option<String>),
}

/// `Some(new)` when the path to send differs from the one received (an allocation only
/// then).
fn changed(received: &str, new: std::borrow::Cow<'_, str>) -> Option<String> {
    (new != received).then(|| new.into_owned())
}

/// Replaces the request's path, keeping its scheme, authority (an HTTP/2 request's
/// `:authority` is its Host) and query as sent (Apache forwards `r->args` as received).
fn set_path<B>(request: &mut Request<B>, path: &str) -> Result<(), http::uri::InvalidUri> {
    let origin = match (request.uri().scheme_str(), request.uri().authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
        _ => String::new(),
    };
    *request.uri_mut() = join_uri(&origin, "", path, request.uri().query())?;
    Ok(())
}

/// Apache's answer to a path it refuses: 404 or 400.
fn refused(refusal: PathRefusal) -> Response<ProxyBody> {
    status_response(refusal.status())
}

fn status_response(status: StatusCode) -> Response<ProxyBody> {
    match status {
        StatusCode::BAD_REQUEST => bad_request(),
        _ => not_found(),
    }
}

/// What a [`Site`] route forwards to: the stack's request future.
type ProxyOneshot = Oneshot<RouteService, Request<RequestBody>>;

/// `AllowEncodedSlashes` (server context; `Off` when not given, as Apache).
fn encoded_slashes(config: &Config) -> EncodedSlashes {
    match config.server.allow_encoded_slashes {
        Some(AllowEncodedSlashes::On) => EncodedSlashes::Decode,
        Some(AllowEncodedSlashes::NoDecode) => EncodedSlashes::Keep,
        _ => EncodedSlashes::Refuse,
    }
}

/// `ProxyAddHeaders`, `ProxyPreserveHost` and `ServerName` (for `X-Forwarded-Server`).
fn forwarded_headers(config: &Config) -> ForwardedHeaders {
    let mut forwarded = ForwardedHeaders::new()
        .with_preserve_host(config.server.proxy_preserve_host.unwrap_or(false))
        .with_add_headers(config.server.proxy_add_headers.unwrap_or(true));
    if let Some(name) = &config.server.server_name {
        forwarded = forwarded.with_server_name(name.host.clone());
    }
    forwarded
}

/// The `ProxyPassReverse`, `ProxyPassReverseCookieDomain` and `ProxyPassReverseCookiePath`
/// lines, for every route (Apache applies all of a context's lines to each answer). The
/// front scheme is `ServerName`'s, if it gives one.
fn reverse_layer(config: &Config) -> Result<ReverseLayer, SiteError> {
    let mut layer = ReverseLayer::new();
    if let Some(name) = &config.server.server_name {
        let https = name.scheme.as_deref() == Some("https");
        if https {
            layer = layer.with_front_scheme(http::uri::Scheme::HTTPS);
        }
        let default_port = if https { 443 } else { 80 };
        layer = layer.with_server_name(match name.port {
            Some(port) if port != default_port => format!("{}:{port}", name.host),
            _ => name.host.clone(),
        });
    }
    for line in &config.proxy_pass_reverses {
        let reverse = ProxyPassReverse::new(&line.path, &line.target).map_err(|source| {
            SiteError::Mapping {
                line: line.span.line,
                source,
            }
        })?;
        layer = layer.with_reverse(reverse);
    }
    for (rewrites, directive) in [
        (
            &config.proxy_pass_reverse_cookie_domains,
            "ProxyPassReverseCookieDomain",
        ),
        (
            &config.proxy_pass_reverse_cookie_paths,
            "ProxyPassReverseCookiePath",
        ),
    ] {
        for r in rewrites {
            if r.interpolate {
                return Err(SiteError::Unsupported {
                    line: r.span.line,
                    reason: format!(
                        "{directive} {} {} interpolate: interpolation from the environment is not supported",
                        r.internal, r.public
                    ),
                });
            }
            layer = if directive == "ProxyPassReverseCookieDomain" {
                layer.with_cookie_domain(&r.internal, &r.public)
            } else {
                layer.with_cookie_path(&r.internal, &r.public)
            };
        }
    }
    Ok(layer)
}

/// A `Header` line the site would not apply (Apache's `edit`, `echo`, `note`, an `expr=`
/// condition, or a line inside a context the site does not read) refuses the
/// configuration: a response header rule must not be silently dropped.
fn refuse_skipped_headers(config: &Config) -> Result<(), SiteError> {
    match config
        .skipped
        .iter()
        .find(|s| s.directive.eq_ignore_ascii_case("header"))
    {
        Some(skipped) => Err(SiteError::Unsupported {
            line: skipped.span.line,
            reason: format!(
                "{}: this form is not applied (supported: add, set, append, merge, setifempty and unset, with an optional env= condition, at server level)",
                skipped.directive
            ),
        }),
        None => Ok(()),
    }
}

fn bad_request() -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"400 Bad Request\n",
    ))));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}
