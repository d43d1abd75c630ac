//! The balancer-manager as a tower [`Service`].

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use proxy_balancer_core::{BalancerStore, HealthReport, Member, Nonce};
use tower_service::Service;

use crate::edit::{
    nonce_matches, parse_form, parse_query, Applied, Edit, EditError, Form, GrowthSlots,
};
use crate::host::{check_change, check_tls_origin, HostRefusal, ServerName, ServerNameError};
use crate::persist;
use crate::shared::{SharedEditError, SharedEditRequest, SharedEdits, Submitted};

use crate::render::{self, BalancerView, HealthView, View};

/// The most a change request's body may hold (Apache reads 1 KiB; forms with every field
/// of a member fit in well under this).
const FORM_LIMIT: usize = 16 * 1024;

/// The client's address, put in the request extensions by the server, so that the access
/// rule can check it. Without it every request is refused. Defined in
/// [`proxy_balancer_core`], shared with the forwarding layer of `proxy-balancer`.
pub use proxy_balancer_core::PeerAddr;

/// The address the client reached, put in the request extensions by the server, so that a
/// change's `Host` can be checked against it. Defined in [`proxy_balancer_core`].
pub use proxy_balancer_core::LocalAddr;

/// The user a request was authenticated as, put in the request extensions by an
/// authentication layer in front of the manager (Apache's `REMOTE_USER`). With a shared
/// store ([`BalancerManagerBuilder::shared`]) the manager records it, with the client's
/// address, as who made an edit. The manager does not authenticate anyone itself: a
/// header the client sends is never taken for it.
///
/// ```
/// use proxy_balancer_manager::RemoteUser;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(RemoteUser("alice".to_owned()));
/// assert_eq!(request.extensions().get::<RemoteUser>().map(|u| u.0.as_str()), Some("alice"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteUser(pub String);

/// A member's health-check column, as the renderers read it.
type HealthViewFn = Box<dyn Fn(&Member) -> Option<HealthView> + Send + Sync>;

struct Managed {
    store: Arc<BalancerStore>,
    /// The generated nonce, used when the balancer's `nonce` is `Auto`.
    auto_nonce: String,
    /// The configured members, to count the `growth` slots the manager has used.
    slots: GrowthSlots,
    /// Whether the balancer has health probes (then the `w_h*` edits are taken).
    has_health: bool,
    /// The health-check parameters (from the store) and last results (from the report).
    health_view: HealthViewFn,
}

impl Managed {
    fn effective_nonce(&self) -> &str {
        match &self.store.snapshot().params().nonce {
            Nonce::Disabled => "",
            Nonce::Fixed(_) | Nonce::Auto => &self.auto_nonce,
            _ => &self.auto_nonce,
        }
    }

    fn name(&self) -> String {
        self.store.snapshot().params().name.clone()
    }
}

struct Inner {
    /// Where edits are saved (`BalancerPersist`), if anywhere.
    persist: Option<std::path::PathBuf>,
    /// What could not be applied from the saved file at start.
    persist_report: Vec<String>,
    /// Saves are serialised.
    saving: parking_lot::Mutex<()>,
    mount: String,
    balancers: Vec<Managed>,
    allow: Vec<(IpAddr, u8)>,
    /// The `ProxyHCExpr` names a `w_he` may give.
    hc_exprs: Vec<String>,
    /// The names a change's `Host` may give besides the address the client reached.
    server_names: Vec<ServerName>,
    /// The names given that cannot name a server, and are not used.
    refused_server_names: Vec<ServerNameError>,
    server: String,
    changes: AtomicU64,
    /// The fleet's shared store, when edits are shared.
    shared: Option<Arc<dyn SharedEdits>>,
    /// What the time-dependent facts are reckoned at (slow start, RTT, ejection, panic).
    clock: fn() -> Instant,
}

/// Apache's balancer-manager: the status page (`GET mount`), its query API (`POST mount`,
/// with the nonce), `?xml=1`, a JSON view and API (`mount/api`) and Prometheus metrics
/// (`mount/metrics`). See the [crate docs](crate).
#[derive(Clone)]
pub struct BalancerManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for BalancerManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancerManager")
            .field("mount", &self.inner.mount)
            .field("balancers", &self.inner.balancers.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`BalancerManager`].
#[must_use]
pub struct BalancerManagerBuilder {
    persist: Option<std::path::PathBuf>,
    mount: String,
    balancers: Vec<Managed>,
    allow: Vec<(IpAddr, u8)>,
    hc_exprs: Vec<String>,
    server_names: Vec<ServerName>,
    refused_server_names: Vec<ServerNameError>,
    shared: Option<Arc<dyn SharedEdits>>,
    clock: fn() -> Instant,
}

/// The default clock of the manager: the process's monotonic clock.
#[expect(
    clippy::disallowed_methods,
    reason = "the manager has no tokio; a host on tokio's clock passes it with BalancerManagerBuilder::clock"
)]
fn system_now() -> Instant {
    Instant::now()
}

impl fmt::Debug for BalancerManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancerManagerBuilder")
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

/// A random-enough nonce: 128 bits from the process's random hash keys, as a UUID-shaped
/// string (Apache uses a UUID).
fn generate_nonce(salt: usize) -> String {
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(salt);
        h.write_usize(i);
        *part = h.finish();
    }
    let hex = format!("{:016x}{:016x}", parts[0], parts[1]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl BalancerManagerBuilder {
    /// Manages this balancer.
    pub fn balancer(mut self, store: Arc<BalancerStore>) -> Self {
        self.push(store, None);
        self
    }

    /// Manages this balancer, which has health probes: every member shows its health-check
    /// parameters (read from the store, [`MemberParams::hc`](proxy_balancer_core::MemberParams::hc))
    /// and the last result `health` reports (the probes' monitor), and the `w_hm`, `w_hi`,
    /// `w_hp`, `w_hf`, `w_hu`, `w_he` edits are applied to the store, which the probes
    /// follow. Without this, those edits are refused.
    ///
    /// # Apache
    ///
    /// As with mod_proxy_hcheck loaded: the HC columns and fields are shown for every
    /// member, `hcmethod=NONE` ones included, so that checks can be turned on from the page.
    pub fn balancer_with_health(
        mut self,
        store: Arc<BalancerStore>,
        health: Arc<dyn HealthReport>,
    ) -> Self {
        self.push(store, Some(health));
        self
    }

    /// The condition names (`ProxyHCExpr`) a `w_he` edit may give; any other is refused
    /// (default: none, so every `w_he` name is refused). With the health probes'
    /// definitions: `.hc_expr_names(defs.expr_names())`.
    pub fn hc_expr_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.hc_exprs.extend(names.into_iter().map(Into::into));
        self
    }

    /// Names this server answers to, which a change's `Host` (or HTTP/2 `:authority`) may
    /// give besides the address the client reached: Apache's `ServerName` and `ServerAlias`,
    /// in their forms `[scheme://]host[:port]`, `*` and `?` patterns included
    /// (`*.example.com`). Names are compared without regard to case, and a trailing dot is
    /// dropped.
    ///
    /// A `Host` with a port other than 80 and 443 must give the port the client reached (the
    /// [`LocalAddr`]) or the one written with the name: `proxy.example.com:9000` for a
    /// manager that clients reach through a port forward to another port. Without a
    /// [`LocalAddr`] (a server other than proxy-balancer's), a name without a port takes any
    /// port. See the [crate docs](crate#which-host-may-change-things) for the whole rule.
    ///
    /// A name that cannot name a server (empty, or not of that form) is not used, and is
    /// listed in [`BalancerManager::refused_server_names`].
    ///
    /// ```
    /// use proxy_balancer_manager::BalancerManager;
    ///
    /// let manager = BalancerManager::builder("/balancer-manager")
    ///     .server_names(["www.example.com", "*.example.net"])
    ///     .server_names(["https://proxy.example.org:8443", "not a name"])
    ///     .build();
    /// assert_eq!(manager.refused_server_names().len(), 1);
    /// assert_eq!(manager.refused_server_names()[0].name, "not a name");
    /// ```
    ///
    /// # Apache
    ///
    /// `ServerName` and `ServerAlias`: Apache chooses a virtual host by them and answers
    /// others from the default one; its balancer-manager then compares the `Referer` with a
    /// URL built from the client's `Host` (`UseCanonicalName Off`), which a DNS-rebound page
    /// passes. Here a change must name this server.
    pub fn server_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        for name in names {
            match ServerName::parse(&name.into()) {
                Ok(name) => self.server_names.push(name),
                Err(refused) => self.refused_server_names.push(refused),
            }
        }
        self
    }

    fn push(&mut self, store: Arc<BalancerStore>, health: Option<Arc<dyn HealthReport>>) {
        let auto_nonce = match &store.snapshot().params().nonce {
            Nonce::Fixed(n) => n.clone(),
            _ => generate_nonce(self.balancers.len()),
        };
        let slots = GrowthSlots::of(&store);
        let has_health = health.is_some();
        let health_view: HealthViewFn = match health {
            Some(report) => Box::new(move |member: &Member| Some(health_view(member, &*report))),
            None => Box::new(no_health),
        };
        self.balancers.push(Managed {
            store,
            auto_nonce,
            slots,
            has_health,
            health_view,
        });
    }

    /// Admits clients from this network (`Require ip 10.0.0.0/8`). The default, with no
    /// network given, admits loopback only.
    pub fn allow(mut self, addr: IpAddr, prefix: u8) -> Self {
        self.allow.push((addr, prefix));
        self
    }

    /// Admits every client: for a manager behind an access rule of your own (an
    /// [`AccessLayer`](crate::AccessLayer) or anything else), which then replaces this one.
    pub fn allow_all(self) -> Self {
        self.allow(std::net::Ipv4Addr::UNSPECIFIED.into(), 0)
            .allow(std::net::Ipv6Addr::UNSPECIFIED.into(), 0)
    }

    /// `BalancerPersist On`: every change is saved to `path` (atomically), and the saved
    /// state is applied again when the manager is built. Not used with
    /// [`shared`](Self::shared): see there.
    pub fn persist(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.persist = Some(path.into());
        self
    }

    /// Shares this manager's edits with a fleet through `shared` (etcd: the
    /// `proxy-balancer-etcd` crate's `EtcdShare`; see the [`shared`](crate::shared) module).
    ///
    /// A POST (page or `/api`) is checked against this instance's state as without it
    /// ([`Edit::check`]: the same refusals), then handed to [`SharedEdits::submit`] with who
    /// asked for it (the client's address from [`PeerAddr`], and the [`RemoteUser`] when the
    /// request carries one). The answer says it was applied, with the shared store's
    /// revision, or refused with the store's reason: 503 `store_unavailable` while the store
    /// cannot be reached (nothing changes anywhere: every instance keeps serving with the
    /// state it last saw), 409 `conflict`, 400 `store_refused`. `w_ttl=SECONDS` is taken:
    /// the flags the edit sets lapse after that long. The page, the XML, the JSON and the
    /// metrics show the link ([`SharedEdits::status`]; a banner on the page while it is
    /// down) and each member's last change ([`SharedEdits::last_change`]).
    ///
    /// The shared store is the source of truth: [`persist`](Self::persist) is then not used
    /// (the file is neither read nor written, and [`BalancerManager::persist_report`] says
    /// so). An instance that starts takes the fleet's state from the store, not from a file
    /// of its own that may be older.
    ///
    /// ```no_run
    /// # fn share() -> std::sync::Arc<dyn proxy_balancer_manager::shared::SharedEdits> { unimplemented!() }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use std::time::Instant;
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
    /// use proxy_balancer_manager::BalancerManager;
    ///
    /// let store = Arc::new(BalancerStore::new(
    ///     BalancerParams::new("app"),
    ///     [MemberParams::new("http://10.0.0.1:8080")?],
    ///     Instant::now(),
    /// )?);
    /// let shared = share(); // e.g. an EtcdShare watching etcd for `store`
    /// let manager = BalancerManager::builder("/balancer-manager")
    ///     .balancer(store)
    ///     .shared(shared)
    ///     .build();
    /// assert!(manager.is_shared());
    /// # Ok(())
    /// # }
    /// ```
    pub fn shared(mut self, shared: Arc<dyn SharedEdits>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The clock the documents reckon time-dependent facts with (beyond Apache: a member's
    /// slow-start share, RTT estimate and ejection time left, whether a balancer is in
    /// panic). Default: [`Instant::now`]. A host whose balancers read tokio's clock (as
    /// proxy-balancer's do) passes it, so that a paused clock shows the same as the picks see.
    ///
    /// ```
    /// use proxy_balancer_manager::BalancerManager;
    ///
    /// fn tokio_now() -> std::time::Instant {
    ///     // e.g. tokio::time::Instant::now().into_std()
    ///     # std::time::Instant::now()
    /// }
    /// let manager = BalancerManager::builder("/balancer-manager").clock(tokio_now).build();
    /// # drop(manager);
    /// ```
    pub fn clock(mut self, clock: fn() -> Instant) -> Self {
        self.clock = clock;
        self
    }

    /// The manager. With [`persist`](Self::persist), the saved state is applied first; what
    /// could not be applied is in [`BalancerManager::persist_report`].
    #[must_use]
    pub fn build(self) -> BalancerManager {
        let mut persist_report = Vec::new();
        let mut persist_path = self.persist;
        if let (Some(path), Some(_)) = (&persist_path, &self.shared) {
            persist_report.push(format!(
                "BalancerPersist is not used with a shared store ({} is neither read nor written): the shared store keeps the edits",
                path.display()
            ));
            persist_path = None;
        }
        if let Some(path) = &persist_path {
            let balancers = &self.balancers;
            let known = &self.hc_exprs;
            persist_report = persist::load(path, &mut |b, edit| {
                let wanted = b
                    .strip_prefix("balancer://")
                    .unwrap_or(b)
                    .to_ascii_lowercase();
                let managed = balancers
                    .iter()
                    .find(|m| {
                        let name = m.name();
                        name.strip_prefix("balancer://").unwrap_or(&name) == wanted
                    })
                    .ok_or_else(|| format!("no balancer {b:?}"))?;
                edit.check_hc_exprs(|name| known.iter().any(|k| k == name))
                    .and_then(|()| edit.apply(&managed.store, managed.slots))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        }
        // (With a shared store there is no file: `save` does nothing.)
        let stale = !persist_report.is_empty();
        let manager = BalancerManager {
            inner: Arc::new(Inner {
                persist: persist_path,
                persist_report,
                saving: parking_lot::Mutex::new(()),
                mount: self.mount,
                balancers: self.balancers,
                allow: self.allow,
                hc_exprs: self.hc_exprs,
                server_names: self.server_names,
                refused_server_names: self.refused_server_names,
                server: format!("proxy-balancer {}", env!("CARGO_PKG_VERSION")),
                changes: AtomicU64::new(0),
                shared: self.shared,
                clock: self.clock,
            }),
        };
        // The configuration wins over stale state (Apache's known trap is the reverse):
        // lines for members or balancers no longer configured were refused above, and are
        // dropped from the file now rather than coming back if the member does.
        // A file that cannot be written now fails again, and is reported, at the next
        // edit.
        if stale {
            let _ = manager.save();
        }
        manager
    }
}

impl BalancerManager {
    /// A manager served at `mount` (e.g. `/balancer-manager`).
    pub fn builder(mount: &str) -> BalancerManagerBuilder {
        BalancerManagerBuilder {
            persist: None,
            mount: mount.trim_end_matches('/').to_owned(),
            balancers: Vec::new(),
            allow: Vec::new(),
            hc_exprs: Vec::new(),
            server_names: Vec::new(),
            refused_server_names: Vec::new(),
            shared: None,
            clock: system_now,
        }
    }

    /// Whether edits are shared with a fleet ([`BalancerManagerBuilder::shared`]).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.inner.shared.is_some()
    }

    /// The fleet's shared store, when edits are shared.
    #[must_use]
    pub fn shared(&self) -> Option<&Arc<dyn SharedEdits>> {
        self.inner.shared.as_ref()
    }

    /// Where the manager is served.
    #[must_use]
    pub fn mount(&self) -> &str {
        &self.inner.mount
    }

    /// The nonce a change to `balancer` (name with or without `balancer://`) must carry; empty
    /// with `nonce=None`.
    #[must_use]
    pub fn nonce(&self, balancer: &str) -> Option<String> {
        self.find(balancer).map(|m| m.effective_nonce().to_owned())
    }

    /// Changes applied so far.
    #[must_use]
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Relaxed)
    }

    /// The names given to [`server_names`](BalancerManagerBuilder::server_names) that cannot
    /// name a server and are not used (empty if all are): log them at start.
    #[must_use]
    pub fn refused_server_names(&self) -> &[ServerNameError] {
        &self.inner.refused_server_names
    }

    /// What could not be applied from the persisted file at start (empty if all was).
    #[must_use]
    pub fn persist_report(&self) -> &[String] {
        &self.inner.persist_report
    }

    /// Saves the state of every balancer to the persist file, if there is one.
    fn save(&self) -> Result<(), String> {
        let Some(path) = &self.inner.persist else {
            return Ok(());
        };
        let _serialised = self.inner.saving.lock();
        let mut text = String::from("# proxy-balancer balancer-manager state (BalancerPersist)\n");
        for m in &self.inner.balancers {
            persist::lines(&m.store.snapshot(), m.slots, &mut text);
        }
        persist::save(path, &text).map_err(|e| format!("cannot save {}: {e}", path.display()))
    }

    fn find(&self, balancer: &str) -> Option<&Managed> {
        let wanted = balancer.to_ascii_lowercase();
        let wanted = wanted.strip_prefix("balancer://").unwrap_or(&wanted);
        self.inner.balancers.iter().find(|m| {
            let name = m.name();
            name.strip_prefix("balancer://").unwrap_or(&name) == wanted
        })
    }

    fn allowed(&self, peer: Option<IpAddr>) -> bool {
        let Some(ip) = peer else {
            // Without the client's address only a rule that admits everyone admits it.
            return self.inner.allow.iter().any(|&(_, prefix)| prefix == 0);
        };
        if self.inner.allow.is_empty() {
            return ip.is_loopback();
        }
        self.inner
            .allow
            .iter()
            .any(|&(net, prefix)| in_network(ip, net, prefix))
    }

    /// Runs `f` over what the renderers read: each balancer's current snapshot, nonce, used
    /// growth slots and health facts.
    fn with_view<R>(&self, f: impl FnOnce(&View<'_>) -> R) -> R {
        let snapshots: Vec<_> = self
            .inner
            .balancers
            .iter()
            .map(|m| m.store.snapshot())
            .collect();
        let views = self.views(&snapshots);
        f(&View {
            balancers: &views,
            mount: &self.inner.mount,
            server: &self.inner.server,
            shared: self.inner.shared.as_deref(),
        })
    }

    /// What the renderers read of each balancer: its snapshot (kept by the caller), nonce,
    /// used growth slots and health facts.
    fn views<'a>(
        &'a self,
        snapshots: &'a [Arc<proxy_balancer_core::BalancerSnapshot>],
    ) -> Vec<BalancerView<'a>> {
        let now = (self.inner.clock)();
        self.inner
            .balancers
            .iter()
            .zip(snapshots)
            .map(|(m, snapshot)| BalancerView {
                snapshot,
                nonce: m.effective_nonce(),
                added: m.slots.used(snapshot),
                health: &*m.health_view,
                retry_budget: Some(m.store.retry_budget()),
                now: Some(now),
            })
            .collect()
    }

    fn page(
        &self,
        form: &Form,
        status: StatusCode,
        message: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let (body, content_type) = self.with_view(|view| {
            if form.xml() {
                (render::xml(view), "text/xml; charset=utf-8")
            } else {
                let selected = form.b().zip(form.w());
                // `?refresh=N`: the page reloads itself every N seconds (at least 1).
                let refresh = form
                    .get("refresh")
                    .and_then(|r| r.parse::<u32>().ok())
                    .map(|r| r.max(1));
                let mut html = render::html(view, selected, refresh);
                if let Some(message) = message {
                    html = html.replacen(
                        "<body>",
                        &format!("<body><p><strong>{}</strong></p>", render::esc(message)),
                        1,
                    );
                }
                (html, "text/html; charset=utf-8")
            }
        });
        respond(status, content_type, body)
    }

    /// The 503s a balancer (named without `balancer://`) answered: its store's count.
    fn unavailable(&self, short_name: &str) -> u64 {
        self.find(short_name).map_or(0, |m| m.store.unavailable())
    }

    fn json(&self, wanted: Kind) -> Response<Full<Bytes>> {
        let unavailable = |name: &str| self.unavailable(name);
        self.with_view(|view| match wanted {
            Kind::Json => respond(
                StatusCode::OK,
                "application/json",
                render::json_with_unavailable(view, &unavailable),
            ),
            Kind::Metrics => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                render::prometheus(view, &unavailable),
            ),
        })
    }

    /// Applies a form's changes (or, with a shared store, hands them to it): nonce first,
    /// then all of them or none. `by`: who asked, for the shared store's record.
    async fn change(&self, form: &Form, by: String) -> Result<Changed, Refusal> {
        let (managed, edit) = self.checked_edit(form)?;
        match &self.inner.shared {
            Some(shared) => self.change_shared(&**shared, managed, edit, by).await,
            None => self.change_local(managed, &edit),
        }
    }

    /// The form's edit, read and checked as far as it can be without the balancer's state:
    /// the balancer exists, the nonce, the parameters, health checks, `w_he` names.
    fn checked_edit(&self, form: &Form) -> Result<(&Managed, Edit), Refusal> {
        let name = form.b().ok_or_else(|| Refusal {
            status: StatusCode::BAD_REQUEST,
            kind: "missing",
            message: "missing parameter `b` (the balancer)".to_owned(),
            param: Some("b".to_owned()),
        })?;
        let managed = self.find(name).ok_or_else(|| {
            Refusal::from(EditError::UnknownBalancer {
                name: name.to_owned(),
            })
        })?;
        let params_nonce = managed.store.snapshot().params().nonce.clone();
        if !nonce_matches(&params_nonce, form.nonce(), &managed.auto_nonce) {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                kind: "bad_nonce",
                message: "the nonce is missing or wrong: reload the page and try again".to_owned(),
                param: Some("nonce".to_owned()),
            });
        }
        let edit = Edit::from_form(form)?;
        if !edit.health.is_empty() && !managed.has_health {
            let param = first_hc_param(form);
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                kind: "no_health_checks",
                message: format!(
                    "{param}: this balancer has no health checks (no probes run for it)"
                ),
                param: Some(param),
            });
        }
        let known = &self.inner.hc_exprs;
        edit.check_hc_exprs(|name| known.iter().any(|k| k == name))?;
        Ok((managed, edit))
    }

    /// This instance alone: the edit applied to its store (and saved, with
    /// `BalancerPersist`).
    fn change_local(&self, managed: &Managed, edit: &Edit) -> Result<Changed, Refusal> {
        if edit.ttl.is_some() {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                kind: "needs_shared_store",
                message: "w_ttl needs a shared store (the BalancerShare directive, or BalancerManagerBuilder::shared): this instance alone keeps flags until they are changed; send the edit without w_ttl, and clear the flags when the window ends".to_owned(),
                param: Some("w_ttl".to_owned()),
            });
        }
        let applied = edit.apply(&managed.store, managed.slots)?;
        self.inner.changes.fetch_add(1, Ordering::Relaxed);
        Ok(Changed {
            applied: applied_json(managed, &applied),
            revision: None,
            not_saved: self.save().err().map(|e| format!("applied, but {e}")),
        })
    }

    /// A fleet: the edit checked against this instance's state, then handed to the shared
    /// store, which applies it here and on every instance.
    async fn change_shared(
        &self,
        shared: &dyn SharedEdits,
        managed: &Managed,
        edit: Edit,
        by: String,
    ) -> Result<Changed, Refusal> {
        edit.check(&managed.store, managed.slots)?;
        let member_url = edit.member_url.clone();
        let flag_change = !edit.member.set_flags.is_empty() || !edit.member.clear_flags.is_empty();
        let flags_of = |url: Option<&str>| {
            let snapshot = managed.store.snapshot();
            url.and_then(|u| snapshot.member_by_url(u).map(Member::flags))
        };
        let before = flags_of(member_url.as_deref());
        let name = managed.name();
        let short = name.strip_prefix("balancer://").unwrap_or(&name).to_owned();
        let ttl = edit.ttl;
        let request = SharedEditRequest::new(short.clone(), edit.clone(), by).with_ttl(ttl);
        let submitted = shared.submit(request).await.map_err(Refusal::from)?;
        self.inner.changes.fetch_add(1, Ordering::Relaxed);
        let after = flags_of(member_url.as_deref());
        let flags = match (flag_change, before, after) {
            (true, Some(before), Some(after)) => Some((before, after)),
            _ => None,
        };
        Ok(Changed {
            applied: shared_applied_json(&short, &edit, &submitted, flags),
            revision: Some(submitted.revision),
            not_saved: None,
        })
    }
}

/// The JSON API's `applied` object for an edit the shared store took: as
/// [`applied_json`], plus `"revision"` (the store's) and `"ttl_secs"`.
fn shared_applied_json(
    balancer: &str,
    edit: &Edit,
    submitted: &Submitted,
    flags: Option<(
        proxy_balancer_core::StatusFlags,
        proxy_balancer_core::StatusFlags,
    )>,
) -> String {
    let mut changed: Vec<String> = submitted
        .changed
        .iter()
        .map(|c| render::json_str(c))
        .collect();
    // The flags this instance saw change are a `status` change, whether or not the store
    // listed it (a flag with a TTL is held apart from the member's other fields).
    let status = render::json_str("status");
    if flags.is_some_and(|(before, after)| before != after) && !changed.contains(&status) {
        changed.push(status);
    }
    let flags = flags.map_or_else(
        || "null".to_owned(),
        |(before, after)| {
            format!(
                "{{\"before\":{},\"after\":{}}}",
                render::json_str(&before.to_string()),
                render::json_str(&after.to_string())
            )
        },
    );
    let member = if edit.member.is_empty() && edit.health.is_empty() {
        None
    } else {
        edit.member_url.as_deref()
    };
    format!(
        "{{\"balancer\":{},\"member\":{},\"changed\":[{}],\"flags\":{flags},\"added\":{},\"lb_reset\":{},\"revision\":{},\"ttl_secs\":{}}}",
        render::json_str(balancer),
        member.map_or_else(|| "null".to_owned(), render::json_str),
        changed.join(","),
        edit.add_member
            .as_ref()
            .map_or_else(|| "null".to_owned(), |u| render::json_str(&u.to_string())),
        submitted.lb_reset,
        submitted.revision,
        edit.ttl.map_or_else(|| "null".to_owned(), |t| t.as_secs().to_string()),
    )
}

/// Who asked for an edit, as the shared store records it: the client's address, and the
/// authenticated user when there is one (`alice@192.0.2.7`).
fn who(peer: Option<IpAddr>, user: Option<&RemoteUser>) -> String {
    let addr = peer.map_or_else(
        || "unknown address".to_owned(),
        |ip| ip.to_canonical().to_string(),
    );
    match user {
        Some(RemoteUser(name)) if !name.is_empty() => format!("{name}@{addr}"),
        _ => addr,
    }
}

/// A change that was applied.
struct Changed {
    /// What changed, as the JSON API's `applied` object.
    applied: String,
    /// The shared store's revision that holds it, when edits are shared.
    revision: Option<u64>,
    /// Why it could not be saved (`BalancerPersist`), if it could not.
    not_saved: Option<String>,
}

/// Why a request was refused, as the page and the JSON API tell it.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    /// A stable machine name (`error.kind` in the JSON API).
    kind: &'static str,
    message: String,
    /// The parameter the refusal is about, when there is one.
    param: Option<String>,
}

impl From<EditError> for Refusal {
    fn from(e: EditError) -> Self {
        Self {
            status: e.status(),
            kind: e.kind(),
            param: e.param().map(str::to_owned),
            message: e.to_string(),
        }
    }
}

impl From<SharedEditError> for Refusal {
    fn from(e: SharedEditError) -> Self {
        Self {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            kind: match e {
                SharedEditError::Unavailable { .. } => "store_unavailable",
                SharedEditError::Uncertain { .. } => "store_uncertain",
                SharedEditError::Conflict { .. } => "conflict",
                _ => "store_refused",
            },
            message: e.to_string(),
            param: None,
        }
    }
}

impl From<HostRefusal> for Refusal {
    fn from(r: HostRefusal) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: r.kind(),
            message: r.to_string(),
            param: None,
        }
    }
}

impl Refusal {
    /// `{"kind":…,"message":…,"param":…|null}`.
    fn json(&self) -> String {
        format!(
            "{{\"kind\":{},\"message\":{},\"param\":{}}}",
            render::json_str(self.kind),
            render::json_str(&self.message),
            self.param
                .as_deref()
                .map_or_else(|| "null".to_owned(), render::json_str),
        )
    }

    /// The JSON API's answer: `{"ok":false,"error":{…}}`.
    fn to_api(&self) -> Response<Full<Bytes>> {
        respond(
            self.status,
            "application/json",
            format!("{{\"ok\":false,\"error\":{}}}", self.json()),
        )
    }

    /// A short HTML document with the message (not the page: a refused request is not shown
    /// the nonces).
    fn to_html(&self) -> Response<Full<Bytes>> {
        let reason = self.status.canonical_reason().unwrap_or("Refused");
        let code = self.status.as_u16();
        respond(
            self.status,
            "text/html; charset=utf-8",
            format!(
                "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
                 <body><h1>{reason}</h1><p>{}</p></body></html>\n",
                render::esc(&self.message)
            ),
        )
    }
}

/// The JSON API's `applied` object: `{"balancer":…,"member":…|null,"changed":[…],
/// "flags":null|{"before":…,"after":…},"added":…|null,"lb_reset":…}`.
fn applied_json(managed: &Managed, applied: &Applied) -> String {
    let snapshot = managed.store.snapshot();
    let url = |id| {
        snapshot.member(id).map_or_else(
            || "null".to_owned(),
            |m| render::json_str(&m.params().url.to_string()),
        )
    };
    let name = &snapshot.params().name;
    let changed: Vec<String> = applied
        .changed
        .iter()
        .map(|c| render::json_str(c))
        .collect();
    let flags = applied.flags.map_or_else(
        || "null".to_owned(),
        |(before, after)| {
            format!(
                "{{\"before\":{},\"after\":{}}}",
                render::json_str(&before.to_string()),
                render::json_str(&after.to_string())
            )
        },
    );
    format!(
        "{{\"balancer\":{},\"member\":{},\"changed\":[{}],\"flags\":{flags},\"added\":{},\"lb_reset\":{}}}",
        render::json_str(name.strip_prefix("balancer://").unwrap_or(name)),
        applied.member.map_or_else(|| "null".to_owned(), url),
        changed.join(","),
        applied.added.map_or_else(|| "null".to_owned(), url),
        applied.lb_reset,
    )
}

/// The first `w_h*` parameter of a form, to name it in a refusal.
fn first_hc_param(form: &Form) -> String {
    form.iter()
        .map(|(k, _)| k)
        .find(|k| k.to_ascii_lowercase().starts_with("w_h"))
        .unwrap_or("w_h*")
        .to_owned()
}

/// A member's health-check column: its parameters from the snapshot, its last result from
/// the report.
fn health_view(member: &Member, report: &dyn HealthReport) -> HealthView {
    let hc = &member.params().hc;
    HealthView {
        method: hc.method.as_str().to_owned(),
        uri: hc.uri.as_str().to_owned(),
        interval_ms: u64::try_from(hc.interval.as_millis()).unwrap_or(u64::MAX),
        passes: hc.passes,
        fails: hc.fails,
        expr: hc.expr.as_ref().map(ToString::to_string),
        last_passed: report.last_passed(member.id()),
    }
}

/// Health facts for a balancer without probes.
fn no_health(_: &Member) -> Option<HealthView> {
    None
}

#[derive(Clone, Copy)]
enum Kind {
    Json,
    Metrics,
}

pub(crate) fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = u32::from(prefix.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = u32::from(prefix.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a4| in_network(IpAddr::V4(a4), net, prefix)),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.into() + "\n")
}

impl<B> Service<Request<B>> for BalancerManager
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let manager = self.clone();
        Box::pin(async move { Ok(manager.handle(request).await) })
    }
}

impl BalancerManager {
    async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        let path = request.uri().path().to_owned();
        let sub = path
            .strip_prefix(&self.inner.mount)
            .map(|rest| rest.trim_end_matches('/'));
        let api = sub == Some("/api");
        if !self.allowed(peer) {
            let refusal = Refusal {
                status: StatusCode::FORBIDDEN,
                kind: "client_not_allowed",
                message: "the balancer-manager is not open to this client".to_owned(),
                param: None,
            };
            return if api {
                refusal.to_api()
            } else {
                text(refusal.status, refusal.message)
            };
        }
        let Some(sub) = sub else {
            return text(StatusCode::NOT_FOUND, "not the balancer-manager");
        };
        let method = request.method().clone();
        let query = request.uri().query().unwrap_or("").to_owned();
        match (method, sub) {
            (Method::GET | Method::HEAD, "" | "/api" | "/metrics") => {
                let form = match parse_query(&query) {
                    Ok(form) => form,
                    Err(e) if api => return Refusal::from(e).to_api(),
                    Err(e) => return text(e.status(), e.to_string()),
                };
                if form.has_changes() {
                    return self.get_with_changes(&request, &query, api);
                }
                match sub {
                    "/api" => self.json(Kind::Json),
                    "/metrics" => self.json(Kind::Metrics),
                    _ => self.page(&form, StatusCode::OK, None),
                }
            }
            (Method::POST, "" | "/api") => self.post(request, api).await,
            (_, "" | "/api" | "/metrics") => {
                let mut response = if api {
                    Refusal {
                        status: StatusCode::METHOD_NOT_ALLOWED,
                        kind: "method_not_allowed",
                        message: "use GET or POST".to_owned(),
                        param: None,
                    }
                    .to_api()
                } else {
                    text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST")
                };
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
                response
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "no such page in the balancer-manager",
            ),
        }
    }

    /// A GET that carries changes: 405 with the curl line that works (Apache ignores the
    /// changes silently and answers the page).
    fn get_with_changes<B>(
        &self,
        request: &Request<B>,
        query: &str,
        api: bool,
    ) -> Response<Full<Bytes>> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let mount = &self.inner.mount;
        let message = format!(
            "changes need a POST with the balancer's nonce; Apache would ignore this GET silently.\n\
             curl -X POST --data '{query}' 'http://{host}{mount}'\n\
             (get the nonce from the page or from GET {mount}/api)"
        );
        let mut response = if api {
            Refusal {
                status: StatusCode::METHOD_NOT_ALLOWED,
                kind: "method_not_allowed",
                message,
                param: None,
            }
            .to_api()
        } else {
            text(StatusCode::METHOD_NOT_ALLOWED, message)
        };
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        response
    }

    /// A POST: the `Host` and `Origin` checks, then the form, then the change; the answer
    /// is the page with a message, or JSON at `mount/api`.
    async fn post<B>(&self, request: Request<B>, api: bool) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let local = request.extensions().get::<LocalAddr>().copied();
        let by = who(
            request.extensions().get::<PeerAddr>().map(|p| p.0.ip()),
            request.extensions().get::<RemoteUser>(),
        );
        let tls = request
            .extensions()
            .get::<proxy_balancer_core::TlsInfo>()
            .is_some();
        if let Err(refusal) = check_change(
            request.uri(),
            request.headers(),
            local,
            &self.inner.server_names,
        )
        .and_then(|_| {
            if tls {
                check_tls_origin(request.headers())
            } else {
                Ok(())
            }
        }) {
            let refusal = Refusal::from(refusal);
            return if api {
                refusal.to_api()
            } else {
                refusal.to_html()
            };
        }
        let form = match Limited::new(request.into_body(), FORM_LIMIT)
            .collect()
            .await
        {
            Ok(collected) => parse_form(&collected.to_bytes()).map_err(Refusal::from),
            Err(_) => Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                kind: "too_large",
                message: format!("the form is larger than {FORM_LIMIT} bytes"),
                param: None,
            }),
        };
        let form = match form {
            Ok(form) => form,
            Err(refusal) if api => return refusal.to_api(),
            Err(refusal) => {
                return self.page(&Form::default(), refusal.status, Some(&refusal.message))
            }
        };
        match (self.change(&form, by).await, api) {
            (
                Ok(Changed {
                    applied,
                    not_saved: None,
                    ..
                }),
                true,
            ) => respond(
                StatusCode::OK,
                "application/json",
                format!("{{\"ok\":true,\"applied\":{applied}}}"),
            ),
            (
                Ok(Changed {
                    applied,
                    not_saved: Some(reason),
                    ..
                }),
                true,
            ) => {
                let refusal = Refusal {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    kind: "not_saved",
                    message: reason,
                    param: None,
                };
                respond(
                    refusal.status,
                    "application/json",
                    format!(
                        "{{\"ok\":false,\"applied\":{applied},\"error\":{}}}",
                        refusal.json()
                    ),
                )
            }
            (Err(refusal), true) => refusal.to_api(),
            (
                Ok(Changed {
                    not_saved: None,
                    revision,
                    ..
                }),
                false,
            ) => {
                let message = revision.map_or_else(
                    || "changes applied".to_owned(),
                    |r| format!("changes applied through the shared store (revision {r}): every instance follows"),
                );
                self.page(&form, StatusCode::OK, Some(&message))
            }
            (
                Ok(Changed {
                    not_saved: Some(reason),
                    ..
                }),
                false,
            ) => self.page(&form, StatusCode::INTERNAL_SERVER_ERROR, Some(&reason)),
            (Err(refusal), false) => self.page(&form, refusal.status, Some(&refusal.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_network(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_network(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("::ffff:10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("fe80::1"), ip("fe80::"), 10));
        assert!(in_network(ip("1.2.3.4"), ip("0.0.0.0"), 0));
    }

    #[test]
    fn who_asked() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let alice = RemoteUser("alice".to_owned());
        assert_eq!(who(ip("::ffff:10.0.0.5"), None), "10.0.0.5");
        assert_eq!(who(ip("2001:db8::1"), Some(&alice)), "alice@2001:db8::1");
        assert_eq!(
            who(ip("10.0.0.5"), Some(&RemoteUser(String::new()))),
            "10.0.0.5"
        );
        assert_eq!(who(None, Some(&alice)), "alice@unknown address");
    }

    #[test]
    fn nonces_look_like_uuids_and_differ() {
        let (a, b) = (generate_nonce(0), generate_nonce(0));
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
    }
}
