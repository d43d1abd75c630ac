//! The proxy built from an Apache configuration: one balancer stack per `balancer://`, and
//! requests routed to them by `ProxyPass` prefix.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use proxy_balancer::balancer::{BalancedBody, BalancerInfo, BalancerOptions};
use proxy_balancer::client::{MakeHttpMember, MemberBody};
use proxy_balancer::health_probe::expr::HcExpr;
use proxy_balancer::health_probe::{HealthProbe, ProbeConfig, ProbeDefinitions};
use proxy_balancer::proxy_pass::{prepare_request_headers, ForwardedHeaders, ProxyPass};
use proxy_balancer::sticky_route::{RouteCookie, StickyRouteLayer};
use proxy_balancer::{Balancer, BalancerStore, ErrorResponseLayer, Member, MemberUrl};
use proxy_balancer_apache_config::{Config, HeaderDirective, ProxyTarget};
use proxy_balancer_manager::render::HealthView;
use proxy_balancer_manager::{BalancerManager, HealthFn};
use tower::{Service, ServiceExt};

use crate::{BoxError, ProxyService};

/// The body of the proxy's responses: a member's, or one the proxy wrote.
pub type ProxyBody = Either<BalancedBody<MemberBody>, Full<Bytes>>;

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
    /// The balancer-manager and where it is mounted, if the configuration has one.
    manager: Option<BalancerManager>,
    /// The health probes of the configuration's members; they stop with the last clone.
    probes: Arc<[HealthProbe]>,
    routes: Arc<[Route]>,
    stores: Arc<[Arc<BalancerStore>]>,
    /// `Header` directives filled from the `BALANCER_*` values of each response.
    headers: Arc<[HeaderDirective]>,
    /// The client of the connection this clone serves, if the server said
    /// ([`Site::for_peer`]); else read from the request's `PeerAddr`.
    peer: Option<std::net::SocketAddr>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("probes", &self.probes.len())
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
        let (probes, health) = spawn_probes(config, &stores)?;
        let manager = manager(config, &stores, &health)?;
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
            peer: None,
        })
    }

    /// This site for one client connection: the client's address goes into
    /// `X-Forwarded-For` and, for the balancer-manager, into the request as `PeerAddr`
    /// (for its access rule), without an extension on every proxied request.
    #[must_use]
    pub fn for_peer(&self, peer: std::net::SocketAddr) -> Self {
        let mut site = self.clone();
        site.peer = Some(peer);
        site
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
}

/// Starts the health probes the configuration asks for: each member's `hc*` parameters,
/// with its `ProxyHCTemplate`s and `ProxyHCExpr`s.
///
/// # Errors
///
/// If an expression does not parse or a member's `hc*` parameters are invalid.
fn spawn_probes(
    config: &Config,
    stores: &[Arc<BalancerStore>],
) -> Result<(Vec<HealthProbe>, Vec<Option<HealthFn>>), BoxError> {
    let mut defs = ProbeDefinitions::new();
    for e in &config.hc_exprs {
        let expr = HcExpr::parse(&e.expr)
            .map_err(|err| format!("line {}: ProxyHCExpr {}: {err}", e.span.line, e.name))?;
        defs = defs.with_expr(e.name.clone(), expr);
    }
    for t in &config.hc_templates {
        defs = defs.with_template(
            t.name.clone(),
            t.params.iter().map(|p| (p.key.clone(), p.value.clone())),
        );
    }
    // Each member's hc* parameters, by normalised URL.
    let mut per_member: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for balancer in &config.balancers {
        for member in &balancer.members {
            let hc: Vec<(String, String)> = member
                .params
                .iter()
                .filter(|p| p.key.to_ascii_lowercase().starts_with("hc"))
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect();
            if hc.is_empty() {
                continue;
            }
            let url = MemberUrl::new(&member.url)?.to_string();
            // Check now, so that a bad value is an error at start rather than no probe.
            let pairs: Vec<(&str, &str)> =
                hc.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ProbeConfig::from_params(&pairs, &defs)
                .map_err(|err| format!("line {}: {}: {err}", member.span.line, member.url))?;
            per_member.insert(url, hc);
        }
    }
    let per_member = Arc::new(per_member);
    let defs = Arc::new(defs);
    let probe_config = {
        let (per_member, defs) = (Arc::clone(&per_member), Arc::clone(&defs));
        Arc::new(move |member: &Member| {
            let hc = per_member.get(member.url())?;
            let pairs: Vec<(&str, &str)> =
                hc.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let config = ProbeConfig::from_params(&pairs, &defs).ok().flatten()?;
            Some(config.with_member_timeouts(member.params()))
        })
    };
    let mut probes = Vec::new();
    let mut health: Vec<Option<HealthFn>> = Vec::new();
    for store in stores {
        let probed = store
            .snapshot()
            .members()
            .iter()
            .any(|m| per_member.contains_key(m.url()));
        if !probed {
            health.push(None);
            continue;
        }
        let configs = Arc::clone(&probe_config);
        let probe = HealthProbe::spawn(Arc::clone(store), move |member| configs(member));
        let monitor = probe.monitor();
        let configs = Arc::clone(&probe_config);
        health.push(Some(Arc::new(move |member: &Member| {
            let config = configs(member)?;
            Some(HealthView {
                method: config.method.as_str().to_owned(),
                uri: config.uri.clone(),
                interval_ms: u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
                passes: config.passes,
                fails: config.fails,
                expr: None,
                last_passed: monitor.member(member.id()).and_then(|h| h.last_passed()),
            })
        })));
        probes.push(probe);
    }
    Ok((probes, health))
}

/// The balancer-manager of the configuration's first `<Location …> SetHandler
/// balancer-manager`, admitting the networks of its `Require ip …` lines (loopback when it
/// has none; everyone with `Require all granted`).
fn manager(
    config: &Config,
    stores: &[Arc<BalancerStore>],
    health: &[Option<HealthFn>],
) -> Result<Option<BalancerManager>, BoxError> {
    let Some(location) = config.manager_locations.first() else {
        return Ok(None);
    };
    let mut builder = BalancerManager::builder(&location.path);
    for require in &location.requires {
        let mut words = require.split_whitespace();
        match words.next().map(str::to_ascii_lowercase).as_deref() {
            Some("ip") => {
                for net in words {
                    let (addr, prefix) = match net.split_once('/') {
                        Some((a, p)) => (a, p.parse::<u8>().ok()),
                        None => (net, None),
                    };
                    let addr: std::net::IpAddr = addr.parse().map_err(|_| {
                        format!(
                            "line {}: Require ip {net}: not an address",
                            location.span.line
                        )
                    })?;
                    let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
                    builder = builder.allow(addr, prefix);
                }
            }
            Some("all")
                if words
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case("granted")) =>
            {
                builder = builder
                    .allow(std::net::Ipv4Addr::UNSPECIFIED.into(), 0)
                    .allow(std::net::Ipv6Addr::UNSPECIFIED.into(), 0);
            }
            _ => {}
        }
    }
    let counted: Vec<Arc<BalancerStore>> = stores.to_vec();
    builder = builder.unavailable_counter(Arc::new(move |name: &str| {
        counted
            .iter()
            .find(|s| {
                let full = s.snapshot().params().name.clone();
                full == name || full.strip_prefix("balancer://") == Some(name)
            })
            .map_or(0, |s| s.unavailable())
    }));
    for (store, health) in stores.iter().zip(health) {
        builder = match health {
            Some(h) => builder.balancer_with_health(Arc::clone(store), Arc::clone(h)),
            None => builder.balancer(Arc::clone(store)),
        };
    }
    Ok(Some(builder.build()))
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

/// Whether a `Header` directive is Apache's documented route-cookie recipe (served by the
/// sticky layer's [`RouteCookie`]).
fn is_route_cookie(h: &HeaderDirective) -> bool {
    h.name.eq_ignore_ascii_case("set-cookie")
        && h.env.as_deref() == Some("BALANCER_ROUTE_CHANGED")
        && h.value.contains("%{BALANCER_WORKER_ROUTE}e")
}

/// The value of one of Apache's `BALANCER_*` variables for a response; `None` when unset.
fn balancer_var<'a>(info: &'a BalancerInfo, name: &str) -> Option<&'a str> {
    match name {
        "BALANCER_NAME" => Some(info.balancer_name()),
        "BALANCER_WORKER_NAME" => Some(info.worker_name()),
        "BALANCER_WORKER_ROUTE" => Some(info.worker_route()),
        "BALANCER_SESSION_STICKY" => info.session_sticky(),
        "BALANCER_SESSION_ROUTE" => info.session_route(),
        "BALANCER_ROUTE_CHANGED" => info.route_changed().then_some("1"),
        _ => None,
    }
}

/// Fills `%{VAR}e` references from the `BALANCER_*` values (`(null)` when unset, as Apache
/// prints them).
fn fill(template: &str, info: &BalancerInfo) -> String {
    let mut value = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("%{") {
        value.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}e") else {
            value.push_str(&rest[start..]);
            return value;
        };
        value.push_str(balancer_var(info, &after[..end]).unwrap_or("(null)"));
        rest = &after[end + 2..];
    }
    value.push_str(rest);
    value
}

/// mod_headers on the response: each directive whose `env=` condition holds (`env=!VAR`:
/// does not hold) is applied with its value filled.
fn apply_headers(directives: &[HeaderDirective], response: &mut Response<ProxyBody>) {
    let Some(info) = response.extensions().get::<BalancerInfo>().cloned() else {
        return;
    };
    for h in directives {
        let applies = match h.env.as_deref() {
            None => true,
            Some(cond) => match cond.strip_prefix('!') {
                Some(var) => balancer_var(&info, var).is_none(),
                None => balancer_var(&info, cond).is_some(),
            },
        };
        if !applies {
            continue;
        }
        let filled = fill(&h.value, &info);
        let Ok(name) = http::HeaderName::from_bytes(h.name.as_bytes()) else {
            continue;
        };
        let headers = response.headers_mut();
        let value = match (
            h.action.as_str(),
            headers.get(&name).and_then(|v| v.to_str().ok()),
        ) {
            ("append", Some(old)) => format!("{old}, {filled}"),
            _ => filled,
        };
        let Ok(value) = http::HeaderValue::from_str(&value) else {
            continue;
        };
        if h.action == "add" {
            headers.append(name, value);
        } else {
            headers.insert(name, value);
        }
    }
}

/// The route cookie of Apache's documented recipe, if the configuration has it.
fn route_cookie(config: &Config) -> Option<RouteCookie> {
    config.headers.iter().find_map(|h| {
        if !is_route_cookie(h) {
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
        if let Some(manager) = &self.manager {
            let mount = manager.mount();
            let under = request
                .uri()
                .path()
                .strip_prefix(mount)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if under {
                if let Some(peer) = self.peer {
                    request
                        .extensions_mut()
                        .insert(proxy_balancer_manager::PeerAddr(peer));
                }
                let manager = manager.clone();
                return Box::pin(async move {
                    let response = manager.oneshot(request).await?;
                    Ok(response.map(Either::Right))
                });
            }
        }
        let path = request.uri().path();
        let Some(route) = self.routes.iter().find(|r| r.pass.matches(path)) else {
            return Box::pin(async { Ok(not_found()) });
        };
        let Target::Balancer(service) = &route.target else {
            return Box::pin(async { Ok(not_found()) });
        };
        // The member sees the backend path of the ProxyPass mapping (most often the same
        // path: then the URI is kept as it is).
        let mapped = route.pass.map_path(path).ok().filter(|m| m != path);
        if let Some(mapped) = mapped {
            let query = request
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            if let Ok(uri) = format!("{mapped}{query}").parse::<Uri>() {
                *request.uri_mut() = uri;
            }
        }
        // The hop to the member as mod_proxy makes it: hop-by-hop headers removed,
        // X-Forwarded-For/-Host added, and Host left for the member client to set to the
        // member's (ProxyPreserveHost Off; an empty member authority removes it).
        let peer = self
            .peer
            .or_else(|| {
                request
                    .extensions()
                    .get::<proxy_balancer_manager::PeerAddr>()
                    .map(|p| p.0)
            })
            .map(|p| p.ip());
        prepare_request_headers(request.headers_mut(), &ForwardedHeaders::new(), peer, "");
        let service = service.clone();
        let headers = Arc::clone(&self.headers);
        Box::pin(async move {
            let mut response = service.oneshot(request).await?;
            apply_headers(&headers, &mut response);
            Ok(response)
        })
    }
}

impl From<ProxyService> for Site {
    /// A site serving everything (`ProxyPass "/"`) through one balancer stack.
    fn from(service: ProxyService) -> Self {
        let pass = ProxyPass::new("/", "balancer://default/").expect("invariant: a valid mapping");
        Self {
            manager: None,
            probes: Vec::new().into(),
            routes: vec![Route {
                pass,
                target: Target::Balancer(service),
            }]
            .into(),
            stores: Vec::new().into(),
            headers: Vec::new().into(),
            peer: None,
        }
    }
}
