//! The reverse proxy an Apache httpd configuration describes, as one tower service.
//!
//! [`Site::from_config`] builds, from a parsed [`Config`]:
//! one balancer stack per `<Proxy balancer://…>` (the [`Balancer`] over the built-in
//! [`MakeHttpMember`] client, sticky routes, errors answered as Apache does), the
//! `ProxyPass` routes to them (first match, Apache's segment rule; `!` exclusions answer
//! 404), the `Header` and `RequestHeader` lines as mod_headers applies them (the route
//! cookie of Apache's documented `Header add Set-Cookie … env=BALANCER_ROUTE_CHANGED`
//! recipe included, byte for byte; see [Header directives](#header-directives)), the
//! health probes of members with `hc*` parameters (stopped when the last clone
//! of the site is dropped), the DNS discovery of `BalancerMember … discover=dns|srv` lines
//! ([`Site::discovery`], see [`dns`](crate::dns); stopped likewise), and the
//! balancer-manager of `<Location …> SetHandler balancer-manager`.
//!
//! `https://`, `wss://` and `h2://` members are reached over TLS as the `SSLProxy*` lines
//! of the server whose requests go to them say (one [`TlsClient`](crate::client::TlsClient)
//! per server's settings, for requests and health probes); such a member in a server
//! without `SSLProxyEngine On` refuses the site ([`SiteError::Tls`], Apache's AH00961). An
//! unset `SSLProxyVerify` verifies the members' certificates (Apache's default does not;
//! `SSLProxyVerify none` is Apache's behaviour). See the README's "https members".
//!
//! # Contexts
//!
//! The main server and each `<VirtualHost>` are served apart, each with its own routes,
//! `Header` lines, `ProxyPassReverse*` lines, `ProxyPreserveHost`, `ProxyAddHeaders`,
//! `ServerName` and `AllowEncodedSlashes` (a virtual host takes the main server's where it
//! does not set its own, as Apache merges them). Checked against Apache 2.4.71 on loopback
//! (`tests/site_contexts.rs` says what Apache did for each case).
//!
//! - **Which server**: among the virtual hosts whose address matches the address the
//!   connection reached ([`LocalAddr`](crate::LocalAddr); the address with the
//!   port, else the address with any port, else `*`/`_default_` with the port, else
//!   `*`/`_default_` with any port; no port or `:*` is any port), the first whose `ServerName` or a
//!   `ServerAlias` (`*`, `?`) matches the request's host (`Host`, or the HTTP/2
//!   `:authority`; case and port ignored); none: the first of them; no virtual host for
//!   the address: the main server. A request without a `LocalAddr` (the site served
//!   without [`Server`](crate::server::Server)) is matched against every virtual host.
//!   The port counts as in Apache: a `<VirtualHost *:80>` is never selected on a server
//!   listening on 8080 (matching on the IP address only would make the same configuration
//!   route differently here and in Apache); [`Site::unreachable_virtual_hosts`] names such
//!   virtual hosts so that the operator is told at start-up.
//! - **Which route**: the `ProxyPass` of the last matching `<Location>`/`<LocationMatch>`
//!   that has one (Apache's section merge; the main server's locations apply in every
//!   virtual host, before its own), then the server's `ProxyPass`/`ProxyPassMatch` lines,
//!   first match (the main server's first when `ProxyPassInherit` is On, as Apache merges
//!   them). `<Location "/a">` matches `/a`, `/a/` and below, not `/ab`; `<Location "/a/">`
//!   `/a/` and below only. A regular expression (`ProxyPassMatch`, `ProxyPass` in a
//!   `<LocationMatch>`) gives its groups to the target as `$1` … `$9` (`$0` and `&` the
//!   whole match); a target without any gets the whole path appended, as Apache does. The
//!   path sent is encoded as mod_proxy encodes it. `noquery` has no effect on an HTTP
//!   member, as in Apache (the query is forwarded; it is a FastCGI flag).
//! - **Which balancer**: a virtual host sees the main server's balancers when
//!   `BalancerInherit` or `ProxyPassInherit` is On (both are by default) — the same store,
//!   shared — and its own ones, distinct stores. As in Apache an inherited main-server
//!   balancer is found before a virtual host's own of the same name.
//! - **Headers and reverse lines**: a response gets the server's `Header` lines, then
//!   those of each matching `<Location>` in order; the `ProxyPassReverse*` lines of the
//!   server and of the matching locations (the one-argument form takes the location's
//!   path).
//! - **The balancer-manager**: a `SetHandler balancer-manager` location in a virtual host
//!   serves there only; the main server's serves in every server. Each shows the balancers
//!   visible in its server and takes changes whose `Host` is the server's `ServerName` or
//!   a `ServerAlias`.
//!
//! - **A fleet**: `BalancerShare etcd URL…` (the `etcd` feature) starts one share per
//!   process over the site's balancers and gives it to every manager and
//!   [`Site::worker`] ([`Site::shared`]): an edit through any instance's manager reaches
//!   every instance; refused with its line without the feature, with `BalancerPersist On`,
//!   or with two shared balancers of one name. See `docs/fleet.md`.
//!
//! Refused with the line (rather than served otherwise): `interpolate`, `mapping=`,
//! `nocanon` on a regular expression, `ProxyPassMatch` to a plain URL, a wildcard in a
//! `<Location>` path, a manager in a `<LocationMatch>`, a `<VirtualHost>` address that is a
//! host name.
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
#![doc = include_str!("headers.md")]

mod discovery;
mod error;
mod extras;
pub mod future;
mod headers;
mod member_tls;
mod routes;
mod shared;
mod tls;
mod vhost;
mod wiring;
mod worker;

use std::collections::HashMap;
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tower::ServiceExt;
use tower_service::Service;

use crate::apache_config::{
    AllowEncodedSlashes, Config, HeaderDirective, HostSettings, ProxyPassConfig, ProxyTarget,
};
use crate::balancer::{BalancedBody, BalancerOptions};
use crate::client::{MakeHttpMember, MemberBody};
use crate::health_probe::{HealthProbe, ProbeDefinitions};
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
use self::headers::HeaderRules;
use self::routes::{LocationMatcher, Pass, RegexPass};
pub use self::vhost::UnreachableVirtualHost;
use self::vhost::VhostTable;

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
    Balancer(ProxyService),
    Excluded,
}

struct Route {
    pass: Pass,
    target: Target,
}

/// A `<Location>` holding a `ProxyPass`, `Header` or `ProxyPassReverse*` lines, in one
/// server.
struct LocationRoute {
    matcher: LocationMatcher,
    /// Its `ProxyPass` (the last one, as Apache's per-directory merge keeps).
    route: Option<Route>,
    /// Its own `Header` and `RequestHeader` lines.
    own_headers: Box<[HeaderDirective]>,
    /// Its place among the server's locations that add `Header` or `ProxyPassReverse*`
    /// lines (the first 64), for [`ServerRoutes::combined`].
    slot: Option<u32>,
    /// The server's lines then its own, compiled: what a request gets when this is the
    /// only matching location with such lines (`None`: it has none).
    headers: Option<HeaderRules>,
    /// Its own `ProxyPassReverse*` lines.
    own_reverse: Option<ReverseLines>,
    /// The server's lines then its own (meaningful when `own_reverse` is `Some`).
    reverse: Arc<ReverseLayer>,
}

impl LocationRoute {
    /// Whether it adds lines to a response's `Header` or `ProxyPassReverse*` rules.
    fn adds_lines(&self) -> bool {
        self.headers.is_some() || self.own_reverse.is_some()
    }
}

/// What two or more matching `<Location>`s add, combined in merge order
/// ([`ServerRoutes::combined`]).
#[derive(Clone)]
struct Combined {
    /// The server's `Header` lines then each location's (`None`: none of them has any).
    headers: Option<HeaderRules>,
    /// The server's `ProxyPassReverse*` lines then each location's (`None`: none has any).
    reverse: Option<Arc<ReverseLayer>>,
}

/// The `ProxyPassReverse`, `…CookieDomain` and `…CookiePath` lines of one context.
#[derive(Clone, Default)]
struct ReverseLines {
    reverses: Vec<ProxyPassReverse>,
    domains: Vec<(String, String)>,
    paths: Vec<(String, String)>,
}

impl ReverseLines {
    fn is_empty(&self) -> bool {
        self.reverses.is_empty() && self.domains.is_empty() && self.paths.is_empty()
    }

    fn apply(&self, mut layer: ReverseLayer) -> ReverseLayer {
        for r in &self.reverses {
            layer = layer.with_reverse(r.clone());
        }
        for (internal, public) in &self.domains {
            layer = layer.with_cookie_domain(internal, public);
        }
        for (internal, public) in &self.paths {
            layer = layer.with_cookie_path(internal, public);
        }
        layer
    }
}

/// The lines of one `<Location>`: its last `ProxyPass` (Apache's per-directory merge keeps
/// the last), its `Header` lines, its `ProxyPassReverse*` lines.
#[derive(Default)]
struct LocationLines<'c> {
    pass: Option<&'c ProxyPassConfig>,
    headers: Vec<&'c HeaderDirective>,
    reverses: Vec<&'c crate::apache_config::ProxyPassReverseConfig>,
    domains: Vec<&'c crate::apache_config::CookieRewrite>,
    paths: Vec<&'c crate::apache_config::CookieRewrite>,
}

impl<'c> LocationLines<'c> {
    /// Every location's lines, in one pass over each list.
    fn of(config: &'c Config) -> Vec<Self> {
        let mut out: Vec<Self> = std::iter::repeat_with(Self::default)
            .take(config.locations.len())
            .collect();
        fn at<'a, 'c>(
            out: &'a mut [LocationLines<'c>],
            c: &crate::apache_config::Context,
        ) -> Option<&'a mut LocationLines<'c>> {
            c.location.and_then(|i| out.get_mut(i))
        }
        for p in &config.proxy_passes {
            if let Some(l) = at(&mut out, &p.context) {
                l.pass = Some(p);
            }
        }
        for h in &config.headers {
            if let Some(l) = at(&mut out, &h.context) {
                l.headers.push(h);
            }
        }
        for r in &config.proxy_pass_reverses {
            if let Some(l) = at(&mut out, &r.context) {
                l.reverses.push(r);
            }
        }
        for r in &config.proxy_pass_reverse_cookie_domains {
            if let Some(l) = at(&mut out, &r.context) {
                l.domains.push(r);
            }
        }
        for r in &config.proxy_pass_reverse_cookie_paths {
            if let Some(l) = at(&mut out, &r.context) {
                l.paths.push(r);
            }
        }
        out
    }
}

/// What one server (the main server or a `<VirtualHost>`) serves.
struct ServerRoutes {
    /// The balancer-managers applying in this server (the main server's `<Location>`s,
    /// then its own), each with its location; the last matching one serves.
    managers: Box<[(LocationMatcher, BalancerManager)]>,
    /// The `<Location>`s with routing or response directives, in Apache's merge order.
    locations: Box<[LocationRoute]>,
    /// The `ProxyPass` lines outside `<Location>`, first match.
    routes: Box<[Route]>,
    /// The server's `Header` and `RequestHeader` lines outside `<Location>`, compiled.
    headers: HeaderRules,
    /// The same lines, to compile with a request's matching locations' own.
    header_lines: Box<[HeaderDirective]>,
    /// The rules of the sets of matching locations met so far
    /// ([`ServerRoutes::combined_headers`]).
    combinations: arc_swap::ArcSwap<HashMap<u64, Combined>>,
    /// `ProxyPassReverse*` lines outside `<Location>`.
    reverse: ReverseLayer,
    /// `ProxyAddHeaders`, `ProxyPreserveHost` and the server name.
    forwarded: Arc<ForwardedHeaders>,
    /// `AllowEncodedSlashes`.
    encoded_slashes: EncodedSlashes,
}

/// The reverse proxy of an Apache configuration, as one tower service; see the
/// [module docs](self).
///
/// Cloning is cheap (the parts are shared); the health probes stop when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Site {
    /// The main server (`[0]`) and each `<VirtualHost>` (`[i + 1]`).
    servers: Arc<[ServerRoutes]>,
    /// Which server answers a request.
    vhosts: Arc<VhostTable>,
    /// The health probes of the configuration's members; they stop with the last clone.
    probes: Arc<[HealthProbe]>,
    stores: Arc<[Arc<BalancerStore>]>,
    /// The `HeartbeatListen` listener; it stops with the last clone.
    heartbeat: Option<Arc<crate::heartbeat::HeartbeatListener>>,
    /// Each server's HTTPS (`SSLEngine On`), certificates read.
    tls: Arc<tls::SiteTls>,
    /// The member client the routes' balancers were made with ([`Site::worker`] makes its
    /// own balancers with it).
    client: MakeHttpMember<RequestBody>,
    /// The DNS discovery of `discover=` members (discovery.rs); stops with the last clone.
    discovery: Arc<[crate::dns::DnsHandle]>,
    /// `BalancerShare` (shared.rs): one per process, in every manager; it stops with the
    /// last clone.
    share: Option<Arc<dyn crate::manager::shared::SharedEdits>>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("servers", &self.servers.len())
            .field("probes", &self.probes.len())
            .field(
                "routes",
                &self.servers.iter().map(|s| s.routes.len()).sum::<usize>(),
            )
            .field("balancers", &self.stores.len())
            .field("manager", &self.manager().map(BalancerManager::mount))
            .finish_non_exhaustive()
    }
}

/// What building every server shares.
struct Build<'c> {
    config: &'c Config,
    /// The lines written in each `<Location>` (by index in `config.locations`), gathered
    /// once: start-up stays linear in locations.
    location_lines: Vec<LocationLines<'c>>,
    /// (server, name) → index in `config.balancers`.
    balancer_index: HashMap<(Option<usize>, &'c str), usize>,
    /// A plain-URL worker's balancer name → its store.
    worker_stores: HashMap<String, usize>,
    /// The store of each configured balancer (`None`: hidden by an inherited balancer of the
    /// same name, as in Apache).
    balancer_stores: Vec<Option<usize>>,
    stores: Vec<Arc<BalancerStore>>,
    probes: Vec<HealthProbe>,
    defs: Arc<ProbeDefinitions>,
    cookie: Option<RouteCookie>,
    workers_seen: HashSet<String>,
    /// The member client, with each worker's connection options.
    client: MakeHttpMember<RequestBody>,
    /// `BalancerPersist On`: the manager's state file.
    persist: Option<std::path::PathBuf>,
    /// `BalancerShare` (shared.rs): given to every manager.
    shared: Option<Arc<dyn crate::manager::shared::SharedEdits>>,
}

// ===== impl Site =====

impl Site {
    /// Builds the site a configuration describes (see the [module docs](self)) and starts
    /// its health probes (so: inside a tokio runtime).
    ///
    /// # Errors
    ///
    /// If a parameter is invalid, a `ProxyPass` names a balancer that is not defined in its
    /// server, a health check or the manager's `<Location>` is invalid, or a directive is
    /// written in a form the site does not serve (`interpolate`, `mapping=`, a `<Location>`
    /// wildcard, a `<VirtualHost>` host name). Each error names its line.
    pub fn from_config(config: &Config) -> Result<Self, SiteError> {
        Self::build(config, false)
    }

    /// Everything [`Site::from_config`] checks, without what would touch the world: the
    /// `HeartbeatListen` socket is not bound and the `BalancerPersist` state file is
    /// neither read nor rewritten (both are checked as far as the configuration goes). For
    /// `--check`, which may run beside the running proxy: a bound heartbeat port or a
    /// rewritten state file must not make it fail or change anything. Call it inside a
    /// tokio runtime (the site is built, then dropped).
    ///
    /// # Errors
    ///
    /// As [`Site::from_config`], but for a heartbeat address that cannot be bound.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let config = proxy_balancer::apache_config::parse(
    ///     "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:9\n</Proxy>\n\
    ///      ProxyPass / balancer://app/\nHeartbeatListen 127.0.0.1:1\n",
    /// )?;
    /// proxy_balancer::site::Site::validate(&config)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn validate(config: &Config) -> Result<(), SiteError> {
        Self::build(config, true).map(drop)
    }

    /// [`Site::from_config`]; `dry`: [`Site::validate`]'s build.
    fn build(config: &Config, dry: bool) -> Result<Self, SiteError> {
        refuse_skipped_headers(config)?;
        if config.virtual_hosts.is_empty() && config.server.balancer_inherit == Some(false) {
            tracing::warn!(
                "BalancerInherit Off has no effect here: there are no <VirtualHost> contexts"
            );
        }
        refuse_unserved_passes(config)?;
        let vhosts = VhostTable::new(config)?;
        // SSLEngine, SSLCertificateFile …: the files read (by `validate` too).
        let tls = tls::SiteTls::load(config)?;
        let now = tokio::time::Instant::now().into_std();
        let mut stores = Vec::new();
        let mut balancer_stores = Vec::with_capacity(config.balancers.len());
        // (server, name) → index in `config.balancers`: each lookup in constant time, so that
        // start-up stays linear in balancers and ProxyPass lines.
        let balancer_index: HashMap<(Option<usize>, &str), usize> = config
            .balancers
            .iter()
            .enumerate()
            .map(|(i, b)| ((b.context.vhost, b.name.as_str()), i))
            .collect();
        let balancers = config.balancers().map_err(SiteError::Params)?;
        for (b, (params, members)) in config.balancers.iter().zip(balancers) {
            if let Some(vhost) = b.context.vhost {
                let hidden = config.inherits_balancers(Some(vhost))
                    && balancer_index.contains_key(&(None, b.name.as_str()));
                if hidden {
                    tracing::warn!(
                        line = b.span.line,
                        "<Proxy \"{}\"> in a <VirtualHost> is never used: the main server's balancer of the same name is inherited and found first (as in Apache); rename it, or set BalancerInherit Off and ProxyPassInherit Off in that <VirtualHost>",
                        b.name
                    );
                    balancer_stores.push(None);
                    continue;
                }
            }
            let name = params.name.clone();
            let store = BalancerStore::new(params, members, now)
                .map_err(|source| SiteError::Balancer { name, source })?;
            balancer_stores.push(Some(stores.len()));
            stores.push(Arc::new(store));
        }
        let mut worker_stores = HashMap::new();
        for (params, members) in config.url_worker_balancers().map_err(SiteError::Params)? {
            let name = params.name.clone();
            let store =
                BalancerStore::new(params, members, now).map_err(|source| SiteError::Balancer {
                    name: name.clone(),
                    source,
                })?;
            worker_stores.insert(name, stores.len());
            stores.push(Arc::new(store));
        }
        let defs = Arc::new(wiring::probe_definitions(config)?);
        // SSLProxy* (member_tls): the TLS client of each TLS member, for requests and
        // probes.
        let member_tls = member_tls::tls_clients(config)?;
        // ProxyHCTPsize (extras).
        let probes = extras::spawn_probes(config, &stores, &defs, &member_tls)?;
        // BalancerShare (shared.rs); not started by `validate`.
        let share = shared::start(config, &stores, &balancer_stores, defs.expr_names(), dry)?;
        // HeartbeatListen, HeartbeatMaxServers (extras); not bound by `validate`.
        let heartbeat = if dry {
            None
        } else {
            extras::heartbeat(config, &stores)?
        };
        let mut build = Build {
            config,
            location_lines: LocationLines::of(config),
            balancer_index,
            worker_stores,
            balancer_stores,
            stores,
            probes,
            defs,
            // The route cookie of Apache's recipe (`Header add Set-Cookie
            // "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; …" env=BALANCER_ROUTE_CHANGED`) is the
            // Header line it is, applied byte for byte as Apache sends it: the sticky layer
            // sets none.
            cookie: None,
            workers_seen: HashSet::new(),
            // iobuffersize, receivebuffersize, responsefieldsize, acquire, ping, addressttl,
            // upgrade, ProxyIOBufferSize (extras); SSLProxy* (member_tls).
            client: extras::member_client(config, &member_tls),
            // Checked by `validate`, but neither read nor rewritten.
            persist: persist_file(config)?.filter(|_| !dry),
            shared: share.clone(),
        };
        let mut servers = Vec::with_capacity(config.virtual_hosts.len() + 1);
        servers.push(build.server(None)?);
        for i in 0..config.virtual_hosts.len() {
            servers.push(build.server(Some(i))?);
        }
        // discover=dns|srv, ProxyDiscoverNameserver (discovery.rs); not started by `validate`.
        let discovery = discovery::spawn(config, &build.stores, &build.balancer_stores, dry)?;
        Ok(Self {
            servers: servers.into(),
            vhosts: Arc::new(vhosts),
            probes: build.probes.into(),
            stores: build.stores.into(),
            heartbeat,
            tls: Arc::new(tls),
            client: build.client,
            discovery: discovery.into(),
            share,
        })
    }

    /// A site serving everything (`ProxyPass "/"`) through one balancer stack (see
    /// [`stack`]): no manager, no probes, no `Header` directives.
    #[must_use]
    pub fn single(store: Arc<BalancerStore>, cookie: Option<RouteCookie>) -> Self {
        // The mapping `/` → `/`: every path goes to the members unchanged.
        let target = Target::Balancer(stack(Arc::clone(&store), cookie));
        let routes: Vec<Route> = match ProxyPass::new("/", "balancer://default/") {
            Ok(pass) => vec![Route {
                pass: Pass::Prefix(pass),
                target,
            }],
            // Never: the mapping is a constant.
            Err(_) => Vec::new(),
        };
        let server = ServerRoutes {
            managers: Box::new([]),
            locations: Box::new([]),
            routes: routes.into(),
            headers: HeaderRules::default(),
            header_lines: Box::new([]),
            combinations: arc_swap::ArcSwap::default(),
            reverse: ReverseLayer::new(),
            forwarded: Arc::new(ForwardedHeaders::new()),
            encoded_slashes: EncodedSlashes::default(),
        };
        Self {
            servers: vec![server].into(),
            vhosts: Arc::new(VhostTable::default()),
            probes: Vec::new().into(),
            stores: vec![store].into(),
            heartbeat: None,
            tls: Arc::default(),
            client: MakeHttpMember::new(),
            discovery: Vec::new().into(),
            share: None,
        }
    }

    /// The `HeartbeatListen` listener, if the configuration has one.
    #[must_use]
    pub fn heartbeat(&self) -> Option<&crate::heartbeat::HeartbeatListener> {
        self.heartbeat.as_deref()
    }

    /// The balancers of the site: one store per `<Proxy balancer://…>` (a `<VirtualHost>`'s
    /// own balancer is a store of its own, even with the name of another virtual host's;
    /// a main-server balancer a virtual host inherits is the same store, shared), then one
    /// per plain-URL worker. A virtual host's balancer named as a main-server balancer it
    /// inherits is never used (Apache finds the main server's first): it has no store.
    #[must_use]
    pub fn stores(&self) -> &[Arc<BalancerStore>] {
        &self.stores
    }

    /// The balancer-manager, if the configuration mounts one: the main server's first, else
    /// the first of a `<VirtualHost>`'s (each server has its own, showing the balancers
    /// visible there).
    #[must_use]
    pub fn manager(&self) -> Option<&BalancerManager> {
        self.servers
            .iter()
            .find_map(|s| s.managers.first())
            .map(|(_, m)| m)
    }

    /// The DNS discovery running for the site's balancers: one per balancer with
    /// `BalancerMember … discover=` lines (see [`dns`](crate::dns)); how its lookups go
    /// ([`DnsHandle::failures`](crate::dns::DnsHandle::failures) …).
    #[must_use]
    pub fn discovery(&self) -> &[crate::dns::DnsHandle] {
        &self.discovery
    }

    /// The health probes running for the site's balancers (one per balancer with probed
    /// members).
    #[must_use]
    pub fn probes(&self) -> &[HealthProbe] {
        &self.probes
    }

    /// The `<VirtualHost>`s no connection to these listening addresses can reach, under
    /// Apache's rule (a virtual host serves the connections to its address and port only).
    /// Worth a warning at start-up: a configuration written for `<VirtualHost *:80>` served
    /// with `--listen 127.0.0.1:8080` sends every request to the main server.
    ///
    /// ```
    /// use proxy_balancer::apache_config::parse;
    /// use proxy_balancer::site::Site;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let config = parse(
    ///     "<Proxy balancer://app>\n  BalancerMember http://127.0.0.1:8001\n</Proxy>\n\
    ///      <VirtualHost *:80>\n  ServerName a.example\n  ProxyPass / balancer://app/\n</VirtualHost>\n",
    /// )?;
    /// let site = Site::from_config(&config)?;
    /// let unreachable = site.unreachable_virtual_hosts(&["127.0.0.1:8080".parse()?]);
    /// assert_eq!(unreachable.len(), config.virtual_hosts.len());
    /// assert!(site.unreachable_virtual_hosts(&["0.0.0.0:80".parse()?]).is_empty());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn unreachable_virtual_hosts(&self, listen: &[SocketAddr]) -> Vec<UnreachableVirtualHost> {
        self.vhosts.unreachable(listen)
    }

    /// Whether some server of the configuration has `SSLEngine On`.
    #[must_use]
    pub fn has_tls(&self) -> bool {
        !self.tls.is_empty()
    }

    /// What a listener on `listen` serves HTTPS with ([`Server::tls`]), or `None` when the
    /// servers that address reaches speak plain HTTP: as Apache decides it, the first
    /// (default) server of the address says whether the port speaks TLS (`SSLEngine On`,
    /// its own or the main server's); the client's SNI picks the certificate among the
    /// virtual hosts of the address by `ServerName`/`ServerAlias`, the default's
    /// certificate otherwise; the default's `SSLProtocol` and `SSLHonorCipherOrder` apply;
    /// ALPN offers `h2` and `http/1.1` (or what `Protocols` says). For an unspecified
    /// address (`0.0.0.0:443`), the virtual hosts of `*` and the port decide, and one of an
    /// exact IP address with `SSLEngine On` is refused (listen on its address).
    ///
    /// ```
    /// use proxy_balancer::apache_config::parse;
    /// use proxy_balancer::site::Site;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let dir = std::env::temp_dir().join(format!("pb-tls-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()])?;
    /// std::fs::write(dir.join("a.pem"), cert.cert.pem())?;
    /// std::fs::write(dir.join("a.key"), cert.key_pair.serialize_pem())?;
    /// let config = parse(&format!(
    ///     "<VirtualHost *:8443>\n  ServerName a.example\n  SSLEngine On\n  \
    ///      SSLCertificateFile {0}/a.pem\n  SSLCertificateKeyFile {0}/a.key\n</VirtualHost>\n",
    ///     dir.display()
    /// ))?;
    /// let site = Site::from_config(&config)?;
    /// assert!(site.tls_for("127.0.0.1:8443".parse()?)?.is_some());
    /// assert!(site.tls_for("127.0.0.1:8080".parse()?)?.is_none(), "the main server: plain");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// When the servers of the address mix `SSLEngine On` and plain ones (a port speaks
    /// TLS or not), ask differently for client certificates (`SSLVerifyClient`), or an
    /// SSL virtual host of an exact address sits behind an unspecified one.
    ///
    /// [`Server::tls`]: crate::server::Server::tls
    pub fn tls_for(
        &self,
        listen: SocketAddr,
    ) -> Result<Option<crate::server::ServerTls>, SiteError> {
        if self.tls.is_empty() {
            return Ok(None);
        }
        self.tls.for_listen(&self.vhosts, listen)
    }
}

impl Build<'_> {
    /// The routes, locations, managers and settings of one server (`None`: the main one).
    fn server(&mut self, vhost: Option<usize>) -> Result<ServerRoutes, SiteError> {
        let config = self.config;
        let settings = config.host_settings(vhost);
        let base = base_reverse_layer(&settings);
        let mut server_lines = ReverseLines::default();
        for line in config.server_proxy_pass_reverses(vhost) {
            server_lines
                .reverses
                .push(reverse_line(&line.path, &line.target, line.span.line)?);
        }
        cookie_lines(
            config.server_cookie_rewrites(vhost, true),
            config.server_cookie_rewrites(vhost, false),
            &mut server_lines,
        )?;
        let reverse = server_lines.apply(base);
        let header_lines: Vec<HeaderDirective> = config.server_headers(vhost).cloned().collect();
        let headers = HeaderRules::compile(&header_lines.iter().collect::<Vec<_>>())?;
        let mut routes = Vec::new();
        for pass in config.server_proxy_passes(vhost) {
            let route = self.route(vhost, pass, &pass.path, pass.regex)?;
            routes.push(route);
        }
        let mut locations = Vec::new();
        let mut slots = 0_usize;
        for (index, location) in config.locations_in(vhost) {
            let line = location.span.line;
            let lines = self.location_lines.get(index);
            let pass = lines.and_then(|l| l.pass);
            let own_headers: Vec<HeaderDirective> = lines
                .map(|l| l.headers.iter().map(|&h| h.clone()).collect())
                .unwrap_or_default();
            let mut own = ReverseLines::default();
            if let Some(lines) = lines {
                for r in &lines.reverses {
                    // One argument in a <Location>: the location's path is the front prefix.
                    own.reverses
                        .push(reverse_line(&location.path, &r.target, r.span.line)?);
                }
                cookie_lines(
                    lines.domains.iter().copied(),
                    lines.paths.iter().copied(),
                    &mut own,
                )?;
            }
            if pass.is_none() && own_headers.is_empty() && own.is_empty() {
                continue;
            }
            let matcher = LocationMatcher::new(&location.path, location.regex, line)?;
            let route = match pass {
                Some(pass) => Some(self.route(vhost, pass, &location.path, location.regex)?),
                None => None,
            };
            let combined = if own_headers.is_empty() {
                None
            } else {
                let lines: Vec<&HeaderDirective> =
                    header_lines.iter().chain(&own_headers).collect();
                Some(HeaderRules::compile(&lines)?)
            };
            let reverse = Arc::new(own.apply(reverse.clone()));
            let slot = (!own_headers.is_empty() || !own.is_empty())
                .then(|| {
                    let slot = slots;
                    slots += 1;
                    u32::try_from(slot).ok().filter(|&s| s < 64)
                })
                .flatten();
            locations.push(LocationRoute {
                matcher,
                route,
                slot,
                own_headers: own_headers.into(),
                headers: combined,
                own_reverse: (!own.is_empty()).then_some(own),
                reverse,
            });
        }
        let managers = self.managers(vhost, &settings)?;
        Ok(ServerRoutes {
            managers,
            locations: locations.into(),
            routes: routes.into(),
            headers,
            header_lines: header_lines.into(),
            combinations: arc_swap::ArcSwap::default(),
            reverse,
            forwarded: Arc::new(forwarded_headers(&settings)),
            encoded_slashes: encoded_slashes(&settings),
        })
    }

    /// The store a `balancer://name` names in a server.
    fn balancer_store(&self, vhost: Option<usize>, name: &str) -> Option<&Arc<BalancerStore>> {
        // `Config::balancer_in` by index: the main server's when inherited, else the
        // server's own.
        let main = (vhost.is_none() || self.config.inherits_balancers(vhost))
            .then(|| self.balancer_index.get(&(None, name)))
            .flatten();
        let index = *main.or_else(|| self.balancer_index.get(&(vhost, name)))?;
        self.stores
            .get(self.balancer_stores.get(index).copied().flatten()?)
    }

    /// One `ProxyPass` line (`path`: its own, or its `<Location>`'s) in a server.
    fn route(
        &mut self,
        vhost: Option<usize>,
        pass: &ProxyPassConfig,
        path: &str,
        regex: bool,
    ) -> Result<Route, SiteError> {
        let line = pass.span.line;
        let prefix = |backend: &str| {
            ProxyPass::new(path, backend)
                .map(|p| Pass::Prefix(p.with_nocanon(pass.nocanon)))
                .map_err(|source| SiteError::Mapping { line, source })
        };
        match &pass.target {
            ProxyTarget::Balancer { name, path: sub } => {
                // `balancer://name$1`: the name ends where the substitution starts.
                let (name, sub) = match name.find(['$', '&']) {
                    Some(at) if regex => (&name[..at], format!("{}{sub}", &name[at..])),
                    _ => (name.as_str(), sub.clone()),
                };
                let store = self.balancer_store(vhost, name).ok_or_else(|| {
                    SiteError::ProxyPass {
                        line,
                        reason: format!(
                            "ProxyPass {path} {name}{sub}: {name} is not defined in this server (no <Proxy \"{name}\"> or BalancerMember for it{})",
                            if vhost.is_some() { ", or BalancerInherit Off and ProxyPassInherit Off hide the main server's" } else { "" }
                        ),
                    }
                })?;
                let pass = if regex {
                    Pass::Regex(RegexPass::new(path, &sub, line)?)
                } else {
                    prefix(&format!("{name}{sub}"))?
                };
                Ok(Route {
                    pass,
                    target: Target::Balancer(stack_with(
                        Arc::clone(store),
                        self.cookie.clone(),
                        self.client.clone(),
                    )),
                })
            }
            ProxyTarget::Exclude => Ok(Route {
                pass: if regex {
                    Pass::Regex(RegexPass::new(path, "", line)?)
                } else {
                    prefix("balancer://excluded/")?
                },
                target: Target::Excluded,
            }),
            ProxyTarget::Url(url) => {
                // Apache's worker for a plain URL: here a one-member balancer, built
                // once per URL (the first ProxyPass to it gives its parameters).
                let (params, _) = self
                    .config
                    .url_worker_balancer(pass)
                    .map_err(SiteError::Params)?;
                let own_line = pass.context.vhost == vhost;
                if own_line
                    && !self.workers_seen.insert(params.name.clone())
                    && !pass.params.is_empty()
                {
                    tracing::warn!(
                        apache_id = "AH01146",
                        line,
                        worker = %params.name,
                        "ProxyPass {path} {url}: parameters ignored: the worker was defined by an earlier ProxyPass",
                    );
                }
                let store = self
                    .worker_stores
                    .get(&params.name)
                    .and_then(|&i| self.stores.get(i))
                    .ok_or_else(|| SiteError::ProxyPass {
                        line,
                        reason: format!("ProxyPass {path} {url}: its worker was not built"),
                    })?;
                // The member URL holds the base path; the mapping adds the rest of the
                // request path, after a `/` if the URL as written ends with one.
                let backend = if url.ends_with('/') {
                    "balancer://url-worker/"
                } else {
                    "balancer://url-worker"
                };
                Ok(Route {
                    pass: prefix(backend)?,
                    target: Target::Balancer(stack_with(
                        Arc::clone(store),
                        None,
                        self.client.clone(),
                    )),
                })
            }
            _ => Err(SiteError::ProxyPass {
                line,
                reason: format!("ProxyPass {path}: this target is not served"),
            }),
        }
    }

    /// The balancer-managers of a server: the main server's `<Location>`s (Apache merges
    /// the main server's sections into each virtual host), then its own; each shows the
    /// balancers visible in the server and checks changes against its names.
    fn managers(
        &self,
        vhost: Option<usize>,
        settings: &HostSettings,
    ) -> Result<Box<[(LocationMatcher, BalancerManager)]>, SiteError> {
        let config = self.config;
        let visible = self.visible_balancers(vhost);
        let mut names = Vec::new();
        if let Some(name) = &settings.server_name {
            names.push(match name.port {
                Some(port) => format!("{}:{port}", name.host),
                None => name.host.clone(),
            });
        }
        names.extend(settings.server_aliases.iter().cloned());
        let main = config
            .manager_locations
            .iter()
            .filter(|l| l.context.vhost.is_none());
        let own = config
            .manager_locations
            .iter()
            .filter(|l| vhost.is_some() && l.context.vhost == vhost);
        main.chain(own)
            .map(|location| {
                let regex = location
                    .context
                    .location
                    .and_then(|l| config.locations.get(l))
                    .is_some_and(|l| l.regex);
                if regex {
                    return Err(SiteError::Unsupported {
                        line: location.span.line,
                        reason: format!(
                            "<LocationMatch \"{}\"> with SetHandler balancer-manager: the manager is mounted on a plain <Location> path only",
                            location.path
                        ),
                    });
                }
                let matcher = LocationMatcher::new(&location.path, false, location.span.line)?;
                let stores = visible
                    .iter()
                    .map(|&i| (&self.stores[i], &self.probes[i]));
                let manager = wiring::manager(
                    location,
                    &names,
                    stores,
                    self.persist.as_deref(),
                    &self.defs,
                    self.shared.as_ref(),
                )?;
                Ok((matcher, manager))
            })
            .collect()
    }

    /// The stores of the balancers visible in a server, as Apache's manager lists them:
    /// the main server's (when inherited), then the server's own.
    fn visible_balancers(&self, vhost: Option<usize>) -> Vec<usize> {
        let config = self.config;
        let inherit = vhost.is_none() || config.inherits_balancers(vhost);
        let of = |v: Option<usize>| {
            config
                .balancers
                .iter()
                .zip(&self.balancer_stores)
                .filter(move |(b, _)| b.context.vhost == v)
                .filter_map(|(_, s)| *s)
        };
        let mut out: Vec<usize> = if inherit {
            of(None).collect()
        } else {
            Vec::new()
        };
        if vhost.is_some() {
            out.extend(of(vhost));
        }
        out
    }
}

/// A `ProxyPass` form the site does not serve, refused before anything is built:
/// `interpolate`, `mapping=`, `nocanon` on a regular expression, and a regular expression
/// to a plain URL.
fn refuse_unserved_passes(config: &Config) -> Result<(), SiteError> {
    for pass in &config.proxy_passes {
        let line = pass.span.line;
        let unsupported = |reason: String| Err(SiteError::Unsupported { line, reason });
        let regex = pass.regex
            || pass
                .context
                .location
                .and_then(|l| config.locations.get(l))
                .is_some_and(|l| l.regex);
        if pass.interpolate {
            return unsupported(format!(
                "ProxyPass {} … interpolate: ${{VAR}} interpolation from the environment is not supported; write the values",
                pass.path
            ));
        }
        if let Some(mapping) = pass
            .params
            .iter()
            .find(|p| p.key.eq_ignore_ascii_case("mapping"))
        {
            return unsupported(format!(
                "ProxyPass {} … mapping={}: the servlet and decoded mappings are not supported (paths are matched decoded and normalised, Apache's default)",
                pass.path, mapping.value
            ));
        }
        if regex && pass.nocanon {
            return unsupported(format!(
                "ProxyPassMatch {} … nocanon: nocanon is supported on prefix ProxyPass lines only",
                pass.path
            ));
        }
        if regex && matches!(pass.target, ProxyTarget::Url(_)) {
            return unsupported(format!(
                "ProxyPassMatch {} to a plain URL: not supported; define a <Proxy balancer://…> with the URL as its member",
                pass.path
            ));
        }
    }
    Ok(())
}

/// Adds cookie rewrite lines, refusing `interpolate`.
fn cookie_lines<'a>(
    domains: impl Iterator<Item = &'a crate::apache_config::CookieRewrite>,
    paths: impl Iterator<Item = &'a crate::apache_config::CookieRewrite>,
    lines: &mut ReverseLines,
) -> Result<(), SiteError> {
    for (rewrites, directive) in [
        (domains.collect::<Vec<_>>(), "ProxyPassReverseCookieDomain"),
        (paths.collect::<Vec<_>>(), "ProxyPassReverseCookiePath"),
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
            let pair = (r.internal.clone(), r.public.clone());
            if directive == "ProxyPassReverseCookieDomain" {
                lines.domains.push(pair);
            } else {
                lines.paths.push(pair);
            }
        }
    }
    Ok(())
}

fn reverse_line(path: &str, target: &str, line: u32) -> Result<ProxyPassReverse, SiteError> {
    ProxyPassReverse::new(path, target).map_err(|source| SiteError::Mapping { line, source })
}

/// The stack of one balancer: errors as Apache answers them, sticky routes (and the route
/// cookie if given), the balancer over the built-in client with idempotent requests retried
/// on another member.
#[must_use]
pub fn stack(store: Arc<BalancerStore>, cookie: Option<RouteCookie>) -> ProxyService {
    stack_with(store, cookie, MakeHttpMember::new())
}

/// [`stack`] over a member client of the caller's ([`MakeHttpMember`] with
/// [`ClientOptions`](crate::client::ClientOptions)).
#[must_use]
pub fn stack_with(
    store: Arc<BalancerStore>,
    cookie: Option<RouteCookie>,
    client: MakeHttpMember<RequestBody>,
) -> ProxyService {
    let balancer = member_balancer(Arc::clone(&store), client);
    let mut sticky = StickyRouteLayer::new(store);
    if let Some(cookie) = cookie {
        sticky = sticky.with_cookie(cookie);
    }
    tower::ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(sticky)
        .service(balancer)
}

/// The balancer of [`stack_with`] (and of a [`Site::worker`]'s routes): idempotent
/// requests retried on another member.
fn member_balancer(
    store: Arc<BalancerStore>,
    client: MakeHttpMember<RequestBody>,
) -> Balancer<MakeHttpMember<RequestBody>> {
    let options = BalancerOptions::default().retry_idempotent(true);
    Balancer::with_options(store, client, options)
}

fn not_found() -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"404 Not Found\n",
    ))));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

impl ServerRoutes {
    /// The manager serving a matched path, if any (the last matching `<Location>`).
    fn manager(&self, path: &[u8]) -> Option<&BalancerManager> {
        self.managers
            .iter()
            .rev()
            .find(|(matcher, _)| matcher.matches(path))
            .map(|(_, m)| m)
    }
}

/// The `Header` rules and `ProxyPassReverse*` layer a request gets from its matching
/// `<Location>`s: shared, precomputed per location or per set of locations.
struct Applied {
    headers: Option<HeaderRules>,
    reverse: Option<Arc<ReverseLayer>>,
}

impl Service<Request<RequestBody>> for Site {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<RequestBody>) -> Self::Future {
        // The server: the main one, or the virtual host the local address and the Host
        // select (no allocation).
        let index = if self.vhosts.is_empty() {
            0
        } else {
            self.vhosts.select(&request)
        };
        let Some(server) = self.servers.get(index) else {
            let rules = HeaderRules::default();
            let notes = rules.on_request(&mut request);
            return ResponseFuture::ready(status_response(StatusCode::NOT_FOUND), &rules, &notes);
        };
        // Matched as Apache matches (`r->uri`): every escape decoded, dot segments removed,
        // `//` merged; `%2F` (unless AllowEncodedSlashes), `%00`, bad escapes and `..` above
        // the root refused with Apache's status. `/%70rivate` meets `ProxyPass /private !`
        // as `/private` does, and `/x/../balancer-manager` is the manager's.
        let path = match RequestPath::parse_with(request.uri().path(), server.encoded_slashes) {
            Ok(path) => path,
            Err(refusal) => {
                let notes = server.headers.on_request(&mut request);
                return ResponseFuture::ready(refused(refusal), &server.headers, &notes);
            }
        };
        let mut applied = Applied {
            headers: None,
            reverse: None,
        };
        let routed = if let Some(manager) = server.manager(path.matched()) {
            // The manager reads its mount from the path: give it the normalised one.
            Routed::Manager(
                manager.clone(),
                changed(request.uri().path(), path.forwarded()),
            )
        } else {
            let location = server.locations(&path, &mut applied);
            let route = location
                .filter(|r| r.pass.forward_path(&path).is_some())
                .or_else(|| server.routes.iter().find(|r| r.pass.matches(&path)));
            match route {
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
                        let reverse = applied.reverse.as_deref().unwrap_or(&server.reverse);
                        Routed::Member(
                            Reverse::new(service.clone(), reverse),
                            changed(request.uri().path(), mapped),
                        )
                    }
                    None => Routed::Refused(StatusCode::NOT_FOUND),
                },
            }
        };
        // mod_headers' fixups (the RequestHeader rules) run before the handler.
        let rules = applied.headers.as_ref().unwrap_or(&server.headers);
        let notes = rules.on_request(&mut request);
        match routed {
            Routed::Refused(status) => {
                ResponseFuture::ready(status_response(status), rules, &notes)
            }
            Routed::Manager(manager, new_path) => {
                if let Some(new_path) = new_path {
                    if set_path(&mut request, &new_path).is_err() {
                        return ResponseFuture::ready(
                            status_response(StatusCode::BAD_REQUEST),
                            rules,
                            &notes,
                        );
                    }
                }
                ResponseFuture::manager(manager.oneshot(request), rules.clone(), notes)
            }
            Routed::Member(mut service, new_path) => {
                if let Some(new_path) = new_path {
                    if set_path(&mut request, &new_path).is_err() {
                        return ResponseFuture::ready(
                            status_response(StatusCode::BAD_REQUEST),
                            rules,
                            &notes,
                        );
                    }
                }
                // The hop to the member as mod_proxy makes it: hop-by-hop headers removed,
                // X-Forwarded-* added (ProxyAddHeaders), Host for the member client to set to
                // the member's unless ProxyPreserveHost.
                forward_request(&mut request, &server.forwarded);
                // Called at once, without `poll_ready`: every layer of the stack is always
                // ready (the balancer picks its member in the call; the others pass
                // readiness through). No `Oneshot` state to keep the service and the request
                // in, and no copy of the stack's future from one into the other.
                ResponseFuture::proxy(service.call(request), rules.clone(), notes)
            }
        }
    }
}

impl ServerRoutes {
    /// Walks the `<Location>`s matching the path: returns the route of the last one with a
    /// `ProxyPass` (Apache's section merge), and fills what the matching ones add to the
    /// response's `Header` and `ProxyPassReverse*` lines (shared: allocates only the first
    /// time a set of two or more such locations is met, see [`ServerRoutes::combined`]).
    fn locations<'s>(&'s self, path: &RequestPath<'_>, applied: &mut Applied) -> Option<&'s Route> {
        if self.locations.is_empty() {
            return None;
        }
        let matched = path.matched();
        let mut route = None;
        // The matching locations that add lines: how many, the last, and the set of their
        // slots.
        let mut adding = 0_u32;
        let mut last: Option<&LocationRoute> = None;
        let mut mask = 0_u64;
        for location in self.locations.iter().filter(|l| l.matcher.matches(matched)) {
            if location.route.is_some() {
                route = location.route.as_ref();
            }
            if location.adds_lines() {
                adding += 1;
                last = Some(location);
                mask |= location.slot.map_or(u64::MAX, |slot| 1 << slot);
            }
        }
        match (adding, last) {
            (1, Some(location)) => {
                applied.headers.clone_from(&location.headers);
                applied.reverse = location
                    .own_reverse
                    .is_some()
                    .then(|| Arc::clone(&location.reverse));
            }
            (2.., _) => {
                let combined = self.combined(mask, matched);
                applied.headers = combined.headers;
                applied.reverse = combined.reverse;
            }
            _ => {}
        }
        route
    }

    /// What the matching locations (`mask`: their slots; all bits set when one has no
    /// slot) add, in merge order: the server's `Header` lines then each one's, compiled;
    /// the server's `ProxyPassReverse*` lines then each one's. Built the first time this
    /// set of locations is met and kept (up to [`MAX_COMBINATIONS`] sets): a client
    /// choosing paths cannot make the proxy compile regular expressions, or build reverse
    /// rules, per request. Past that bound, or for a location beyond the 64th that adds
    /// lines, they are built for the request.
    fn combined(&self, mask: u64, matched: &[u8]) -> Combined {
        if mask != u64::MAX {
            if let Some(known) = self.combinations.load().get(&mask) {
                return known.clone();
            }
        }
        let matching = || {
            self.locations
                .iter()
                .filter(|l| l.adds_lines() && l.matcher.matches(matched))
        };
        let headers = matching().any(|l| l.headers.is_some()).then(|| {
            let lines: Vec<&HeaderDirective> = self
                .header_lines
                .iter()
                .chain(matching().flat_map(|l| l.own_headers.iter()))
                .collect();
            // Each line compiled when the site was built: this cannot fail. If it did,
            // the server's own rules would still apply.
            HeaderRules::compile(&lines).unwrap_or_else(|_| self.headers.clone())
        });
        let reverse = matching().any(|l| l.own_reverse.is_some()).then(|| {
            Arc::new(
                matching()
                    .filter_map(|l| l.own_reverse.as_ref())
                    .fold(self.reverse.clone(), |layer, own| own.apply(layer)),
            )
        });
        let combined = Combined { headers, reverse };
        if mask != u64::MAX && self.combinations.load().len() < MAX_COMBINATIONS {
            self.combinations.rcu(|known| {
                let mut known = HashMap::clone(known);
                known.insert(mask, combined.clone());
                known
            });
        }
        combined
    }
}

/// How many sets of matching `<Location>`s a server keeps the combined lines of.
const MAX_COMBINATIONS: usize = 256;

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
type ProxyFuture = <RouteService as Service<Request<RequestBody>>>::Future;

/// `AllowEncodedSlashes` of a server (`Off` when not given, as Apache).
fn encoded_slashes(settings: &HostSettings) -> EncodedSlashes {
    match settings.allow_encoded_slashes {
        Some(AllowEncodedSlashes::On) => EncodedSlashes::Decode,
        Some(AllowEncodedSlashes::NoDecode) => EncodedSlashes::Keep,
        _ => EncodedSlashes::Refuse,
    }
}

/// `ProxyAddHeaders`, `ProxyPreserveHost` and `ServerName` (for `X-Forwarded-Server`) of a
/// server.
fn forwarded_headers(settings: &HostSettings) -> ForwardedHeaders {
    let mut forwarded = ForwardedHeaders::new()
        .with_preserve_host(settings.proxy_preserve_host.unwrap_or(false))
        .with_add_headers(settings.proxy_add_headers.unwrap_or(true))
        // ProxyVia, ProxyErrorOverride, ProxyBadHeader, Proxy100Continue (extras).
        .with_hop(extras::hop_options(settings));
    if let Some(name) = &settings.server_name {
        forwarded = forwarded.with_server_name(name.host.clone());
    }
    forwarded
}

/// The reverse layer of a server before its lines: the front scheme and name of its
/// `ServerName`, if it gives them.
fn base_reverse_layer(settings: &HostSettings) -> ReverseLayer {
    let mut layer = ReverseLayer::new();
    if let Some(name) = &settings.server_name {
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
    layer
}

/// A `Header`/`RequestHeader` line the parser kept aside (inside a context the site does
/// not read) refuses the configuration: a header rule must not be silently dropped.
fn refuse_skipped_headers(config: &Config) -> Result<(), SiteError> {
    match config.skipped.iter().find(|s| {
        s.directive.eq_ignore_ascii_case("header")
            || s.directive.eq_ignore_ascii_case("requestheader")
    }) {
        Some(skipped) => Err(SiteError::Unsupported {
            line: skipped.span.line,
            reason: format!(
                "{}: not applied inside a <Proxy> block or a <Directory>/<Files> section (header rules apply in the server, <VirtualHost> and <Location> contexts)",
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

/// `BalancerPersist On`: the manager's state file ([`extras::persist_file`]), when the
/// balancer-manager is served in one server only.
///
/// # Errors
///
/// With the manager served in more than one server (a main-server `<Location>` with
/// `<VirtualHost>`s, which Apache merges into each, or managers in several virtual hosts):
/// each would save its own view of the balancers they share, and the file read last would
/// bring back an older state. Refused rather than restore stale edits.
fn persist_file(config: &Config) -> Result<Option<std::path::PathBuf>, SiteError> {
    let Some(path) = extras::persist_file(config)? else {
        return Ok(None);
    };
    let main = config
        .manager_locations
        .iter()
        .any(|l| l.context.vhost.is_none());
    let mut servers: Vec<Option<usize>> = config
        .manager_locations
        .iter()
        .map(|l| l.context.vhost)
        .collect();
    servers.sort_unstable();
    servers.dedup();
    let several = servers.len() > 1 || (main && !config.virtual_hosts.is_empty());
    if several {
        let line = config.manager_locations.first().map_or(0, |l| l.span.line);
        return Err(SiteError::Unsupported {
            line,
            reason: "BalancerPersist On with the balancer-manager served in more than one server (a main-server <Location> is merged into every <VirtualHost>): each would save its own view of the balancers they share; serve the manager in one <VirtualHost> only, or turn BalancerPersist off".to_owned(),
        });
    }
    Ok(Some(path))
}
