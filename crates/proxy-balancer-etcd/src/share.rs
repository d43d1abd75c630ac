//! [`EtcdShare`]: the engine. Its state (what each key holds, each member's configured
//! state), applying a key to a store, the watch task and [`SharedEdits::submit`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use proxy_balancer_core::{
    BalancerParams, BalancerStore, Member, MemberParams, MemberUrl, StatusFlags,
};
use proxy_balancer_manager::edit::{Applied, Edit, GrowthSlots, Update};
use proxy_balancer_manager::shared::{
    BoxFuture, ChangeRecord, SharedEditError, SharedEditRequest, SharedEdits, SharedStatus,
    Submitted,
};
use tokio::sync::watch;

use crate::doc::{canonical_url, now_secs, Doc, Key, KeyKind, SHARED_FLAGS};
use crate::rpc::{self, request_op, Client, KeyValue, RequestOp, TxnRequest, EVENT_DELETE};
use crate::EtcdError;

/// The prefix when none is given.
pub const DEFAULT_PREFIX: &str = "/proxy-balancer/";

/// How many times [`SharedEdits::submit`] re-reads and merges again after losing a race.
const CAS_ATTEMPTS: usize = 8;

/// The first and the longest pause between two attempts to reach etcd.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A value under the prefix that could not be used: reported, and ignored (the key's last
/// good value, or the configured state, stays in force).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyProblem {
    /// The full key.
    pub key: String,
    /// The revision that wrote it.
    pub revision: u64,
    /// What is wrong with it.
    pub reason: String,
}

// ===== builder =====

/// Builds an [`EtcdShare`]; see [`EtcdShare::builder`].
#[derive(Debug)]
#[must_use]
pub struct EtcdShareBuilder {
    endpoints: Vec<String>,
    prefix: String,
    instance: Option<String>,
    balancers: Vec<Arc<BalancerStore>>,
    request_timeout: Duration,
    connect_timeout: Duration,
    start_wait: Duration,
    hc_expr_names: Option<Vec<String>>,
}

impl EtcdShareBuilder {
    /// The key prefix under which the fleet's state lives (default
    /// [`DEFAULT_PREFIX`], `/proxy-balancer/`). A `/` is added at the end if missing.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This instance's name in the fleet, written with each of its edits (`via=`). Default:
    /// the `HOSTNAME` environment variable, else `proxy-balancer-<pid>`.
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// A balancer to share (by its name: `balancer://app` is `app` under the prefix). Call
    /// it once per balancer. Give the store as built from the configuration: its members'
    /// state then is what deleting their key in etcd returns them to.
    pub fn balancer(mut self, store: Arc<BalancerStore>) -> Self {
        self.balancers.push(store);
        self
    }

    /// The bound on each call to etcd (default 2 s): [`SharedEdits::submit`] answers within
    /// about twice this, also when etcd hangs.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The bound on opening a connection to etcd (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`start`](Self::start) waits for the first full read of the prefix (default
    /// 2 s). When etcd does not answer by then, `start` returns anyway: the instance serves
    /// the configuration's state, [`SharedEdits::status`] says it is not connected, and the
    /// state in etcd is applied when etcd answers.
    pub fn start_wait(mut self, wait: Duration) -> Self {
        self.start_wait = wait;
        self
    }

    /// The health-check conditions (`ProxyHCExpr` names) a `w_he` in etcd may name, as
    /// given to the manager's `hc_expr_names`. Without it, any well-formed name is taken.
    pub fn hc_expr_names(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.hc_expr_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Starts the engine: reads the prefix once (waiting at most
    /// [`start_wait`](Self::start_wait)) and applies it, then watches it in a tokio task.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] for a bad setting: no endpoint, an endpoint that is not an
    /// `http://host:port` URL, a bad prefix or instance name, no balancer or the same one
    /// twice, or no tokio runtime. etcd being down is not an error.
    pub async fn start(self) -> Result<EtcdShare, EtcdError> {
        let wait = self.start_wait;
        let share = self.spawn()?;
        share.ready(wait).await;
        Ok(share)
    }

    /// Starts the engine without waiting: for code that is not `async` (a site built from a
    /// configuration inside a runtime). The settings are checked now; the first read of
    /// etcd happens in the engine's task, and until it is done the instance serves its
    /// configuration's state, [`SharedEdits::status`] says it is not connected yet and
    /// [`SharedEdits::submit`] refuses. [`EtcdShare::ready`] waits for that first read.
    /// [`start_wait`](Self::start_wait) is not used.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); [`EtcdError::NoRuntime`] when called outside a tokio
    /// runtime.
    pub fn spawn(self) -> Result<EtcdShare, EtcdError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EtcdError::NoRuntime)?;
        let endpoints = check_endpoints(&self.endpoints)?;
        let prefix = check_prefix(&self.prefix)?;
        let instance = match self.instance {
            Some(name) => check_instance(name)?,
            None => default_instance(),
        };
        if self.balancers.is_empty() {
            return Err(EtcdError::NoBalancers);
        }
        let mut balancers = BTreeMap::new();
        for store in self.balancers {
            let name = short_name(&store.snapshot().params().name);
            if name.contains('/') || name.is_empty() {
                return Err(EtcdError::BadBalancerName { name });
            }
            if balancers.contains_key(&name) {
                return Err(EtcdError::DuplicateBalancer { name });
            }
            balancers.insert(
                name,
                Entry {
                    store,
                    base: None,
                    doc: None,
                    members: BTreeMap::new(),
                },
            );
        }
        let client =
            Client::new(&endpoints, self.connect_timeout, self.request_timeout).map_err(|e| {
                EtcdError::BadEndpoint {
                    endpoint: endpoints.join(","),
                    reason: e.to_string(),
                }
            })?;
        let backend = format!("etcd {} prefix {prefix}", endpoints.join(","));
        let (stop, stopped) = watch::channel(false);
        let (first_tx, first) = watch::channel(false);
        let inner = Arc::new(Inner {
            prefix,
            instance,
            backend,
            client,
            request_timeout: self.request_timeout,
            hc_expr_names: self.hc_expr_names,
            stopping: AtomicBool::new(false),
            lost_races: AtomicU64::new(0),
            state: Mutex::new(State {
                balancers,
                revision: 0,
                connected: false,
                ever_connected: false,
                since: SystemTime::now(),
                last_error: Some("connecting to etcd".to_owned()),
                outage_logged: false,
                problems: BTreeMap::new(),
                seen: HashMap::new(),
            }),
        });
        runtime.spawn(run(Arc::clone(&inner), stopped, first_tx));
        Ok(EtcdShare {
            handle: Arc::new(Handle { inner, stop, first }),
        })
    }
}

fn check_endpoints(endpoints: &[String]) -> Result<Vec<String>, EtcdError> {
    if endpoints.is_empty() {
        return Err(EtcdError::NoEndpoints);
    }
    endpoints
        .iter()
        .map(|e| {
            let e = e.trim();
            let url = if e.contains("://") {
                e.to_owned()
            } else {
                format!("http://{e}")
            };
            let bad = |reason: &str| EtcdError::BadEndpoint {
                endpoint: e.to_owned(),
                reason: reason.to_owned(),
            };
            let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") => {
                    return Err(bad(
                        "TLS to etcd is not supported yet: use http:// on a trusted network \
                         (or a local TLS-terminating proxy)",
                    ))
                }
                _ => return Err(bad("expected http://host:port")),
            }
            if uri.port_u16().is_none() || uri.host().map_or(true, str::is_empty) {
                return Err(bad("expected http://host:port"));
            }
            if uri.path() != "/" && !uri.path().is_empty() {
                return Err(bad("an endpoint has no path"));
            }
            Ok(url.trim_end_matches('/').to_owned())
        })
        .collect()
}

fn check_prefix(prefix: &str) -> Result<String, EtcdError> {
    let bad = |reason: &str| EtcdError::BadPrefix {
        prefix: prefix.to_owned(),
        reason: reason.to_owned(),
    };
    if prefix.trim().is_empty() || prefix == "/" {
        return Err(bad(
            "the prefix must name a part of the key space (e.g. /proxy-balancer/)",
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    })
}

fn check_instance(name: String) -> Result<String, EtcdError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(EtcdError::BadInstance {
            instance: name,
            reason: "1 to 128 characters, none a control character".to_owned(),
        });
    }
    Ok(name)
}

fn default_instance() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .and_then(|h| check_instance(h).ok())
        .unwrap_or_else(|| format!("proxy-balancer-{}", std::process::id()))
}

/// A balancer's name without `balancer://`.
fn short_name(name: &str) -> String {
    name.strip_prefix("balancer://").unwrap_or(name).to_owned()
}

// ===== share =====

/// Operator edits of balancers shared by a fleet through etcd: a [`SharedEdits`] for the
/// balancer-manager. See the [crate docs](crate).
///
/// Clones share one engine. It stops with [`EtcdShare::stop`] or when the last clone is
/// dropped; the stores keep the state they have.
#[derive(Clone)]
pub struct EtcdShare {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for EtcdShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdShare")
            .field("status", &self.status())
            .field("problems", &self.problems().len())
            .finish()
    }
}

#[derive(Debug)]
struct Handle {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    /// Becomes `true` once the first read of etcd is done or has failed.
    first: watch::Receiver<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.stopping.store(true, Ordering::Release);
        let _ = self.stop.send(true);
    }
}

impl EtcdShare {
    /// A builder for an engine talking to `endpoints` (`http://host:port`, or `host:port`).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::time::Instant;
    ///
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
    /// use proxy_balancer_etcd::EtcdShare;
    /// use proxy_balancer_manager::shared::SharedEdits;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[expect(clippy::disallowed_methods, reason = "doc example")]
    /// # let now = Instant::now();
    /// let store = Arc::new(BalancerStore::new(
    ///     BalancerParams::new("app"),
    ///     [MemberParams::new("http://10.0.0.5:8080")?],
    ///     now,
    /// )?);
    /// let share = EtcdShare::builder(["http://127.0.0.1:2379"])
    ///     .prefix("/proxy-balancer/")
    ///     .instance("proxy-a")
    ///     .balancer(Arc::clone(&store))
    ///     .start()
    ///     .await?;
    /// println!("{:?}", share.status());
    /// share.stop();
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(endpoints: impl IntoIterator<Item = impl Into<String>>) -> EtcdShareBuilder {
        EtcdShareBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: DEFAULT_PREFIX.to_owned(),
            instance: None,
            balancers: Vec::new(),
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            start_wait: Duration::from_secs(2),
            hc_expr_names: None,
        }
    }

    /// Stops the watch. The stores keep the state they have; [`SharedEdits::submit`] refuses
    /// from now on.
    pub fn stop(&self) {
        self.handle.inner.stopping.store(true, Ordering::Release);
        let _ = self.handle.stop.send(true);
    }

    /// Waits (at most `bound`) until the engine's first read of etcd is done, or has
    /// failed (etcd down: the status then says so). Returns whether it is connected.
    pub async fn ready(&self, bound: Duration) -> bool {
        let mut first = self.handle.first.clone();
        let _ = tokio::time::timeout(bound, first.wait_for(|done| *done)).await;
        self.handle.inner.state.lock().connected
    }

    /// The prefix, ending in `/`.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.handle.inner.prefix
    }

    /// This instance's name.
    #[must_use]
    pub fn instance(&self) -> &str {
        &self.handle.inner.instance
    }

    /// The values under the prefix that are ignored now because they could not be used
    /// (each was logged when seen), by key.
    #[must_use]
    pub fn problems(&self) -> Vec<KeyProblem> {
        self.handle
            .inner
            .state
            .lock()
            .problems
            .values()
            .cloned()
            .collect()
    }

    /// How many of this instance's edits lost a race in etcd (another instance changed one
    /// of their keys between the read and the compare-and-swap) and were merged again
    /// onto the new value.
    #[must_use]
    pub fn lost_races(&self) -> u64 {
        self.handle.inner.lost_races.load(Ordering::Relaxed)
    }

    /// The last etcd revision applied here.
    #[must_use]
    pub fn revision(&self) -> u64 {
        u64::try_from(self.handle.inner.state.lock().revision).unwrap_or(0)
    }
}

impl SharedEdits for EtcdShare {
    fn submit(
        &self,
        request: SharedEditRequest,
    ) -> BoxFuture<'_, Result<Submitted, SharedEditError>> {
        let inner = Arc::clone(&self.handle.inner);
        Box::pin(async move {
            let bound = inner.request_timeout.saturating_mul(2);
            match tokio::time::timeout(bound, inner.submit(request)).await {
                Ok(result) => result,
                Err(_) => Err(inner.unavailable(format!("etcd did not answer within {bound:?}"))),
            }
        })
    }

    fn status(&self) -> SharedStatus {
        let inner = &self.handle.inner;
        let state = inner.state.lock();
        let mut status = SharedStatus::new(
            inner.backend.clone(),
            inner.instance.clone(),
            state.connected,
        );
        status.since = state.since;
        status.revision = u64::try_from(state.revision).unwrap_or(0);
        status.last_error = state.last_error.clone().or_else(|| {
            state
                .problems
                .values()
                .max_by_key(|p| p.revision)
                .map(|p| format!("{} ignored (revision {}): {}", p.key, p.revision, p.reason))
        });
        status
    }

    fn last_change(&self, balancer: &str, member: Option<&str>) -> Option<ChangeRecord> {
        let state = self.handle.inner.state.lock();
        let entry = state.balancers.get(&short_name(balancer))?;
        match member {
            None => entry.doc.as_ref().map(Stored::record),
            Some(url) => {
                let url = canonical_url(url).ok()?;
                let m = entry.members.get(&url)?;
                let doc = m.doc.as_ref().map(Stored::record);
                let lapse = m.lapse.as_ref().map(Stored::record);
                match (doc, lapse) {
                    (Some(d), Some(l)) if d.revision > l.revision => Some(d),
                    (d, l) => l.or(d),
                }
            }
        }
    }
}

// ===== state =====

#[derive(Debug)]
struct Inner {
    prefix: String,
    instance: String,
    backend: String,
    client: Client,
    request_timeout: Duration,
    hc_expr_names: Option<Vec<String>>,
    stopping: AtomicBool,
    /// Submits that lost a race (another writer changed a key between the read and the
    /// compare-and-swap) and merged again.
    lost_races: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    balancers: BTreeMap<String, Entry>,
    /// The last revision applied (every key up to it is in force here).
    revision: i64,
    connected: bool,
    /// Whether etcd was reached once: before, this instance is still connecting.
    ever_connected: bool,
    since: SystemTime,
    last_error: Option<String>,
    /// Whether this outage was logged (once per outage).
    outage_logged: bool,
    problems: BTreeMap<String, KeyProblem>,
    /// Each key's last revision handled (put or delete) and what applying it did:
    /// applying is idempotent, and a submit whose write the watch applied first still
    /// learns what it changed.
    seen: HashMap<String, (i64, Outcome)>,
}

#[derive(Debug)]
struct Entry {
    store: Arc<BalancerStore>,
    /// The balancer's settings before etcd changed them.
    base: Option<BalancerParams>,
    doc: Option<Stored>,
    members: BTreeMap<String, MemberEntry>,
}

#[derive(Debug, Default)]
struct MemberEntry {
    /// The member's state before etcd changed it: what deleting its key returns it to.
    base: Option<(MemberParams, StatusFlags)>,
    /// Added because of etcd (not configured): deleting its key removes it.
    added: bool,
    doc: Option<Stored>,
    lapse: Option<Stored>,
}

/// A key's value in force.
#[derive(Debug, Clone)]
struct Stored {
    revision: i64,
    doc: Doc,
    edit: Edit,
    applied_at: SystemTime,
}

impl Stored {
    fn record(&self) -> ChangeRecord {
        self.doc.record(self.revision, self.applied_at)
    }
}

/// What one key did to a store.
#[derive(Debug, Clone, Default)]
struct Outcome {
    changed: Vec<String>,
    lb_reset: bool,
}

impl Outcome {
    fn add(&mut self, applied: &Applied) {
        for c in &applied.changed {
            if !self.changed.iter().any(|x| x == c) {
                self.changed.push((*c).to_owned());
            }
        }
        self.lb_reset |= applied.lb_reset;
    }
}

impl Inner {
    // ----- applying -----

    /// A put of `kv` seen (watch, full read or our own write). Idempotent per revision.
    fn on_put(&self, state: &mut State, kv: &KeyValue) -> Outcome {
        let Ok(full) = std::str::from_utf8(&kv.key) else {
            tracing::warn!(key = ?kv.key, "etcd key under the prefix is not UTF-8; ignored");
            return Outcome::default();
        };
        if let Some(done) = already(state, full, kv.mod_revision) {
            return done;
        }
        state
            .seen
            .insert(full.to_owned(), (kv.mod_revision, Outcome::default()));
        let parsed = Key::parse(&self.prefix, full).and_then(|key| {
            let doc = Doc::parse(&kv.value, &key.kind)?;
            let edit = doc.edit(&key.balancer, key.url())?;
            if let (Some(names), Some(Update::Set(name))) = (&self.hc_expr_names, &edit.health.expr)
            {
                if !names.iter().any(|n| n == name.as_str()) {
                    return Err(format!(
                        "w_he: unknown health check condition {:?}",
                        name.as_str()
                    ));
                }
            }
            Ok((key, doc, edit))
        });
        let (key, doc, edit) = match parsed {
            Ok(p) => p,
            Err(reason) => {
                report(state, full, kv.mod_revision, reason);
                return Outcome::default();
            }
        };
        if !state.balancers.contains_key(&key.balancer) {
            tracing::debug!(
                key = full,
                "etcd key of a balancer not served here; ignored"
            );
            return Outcome::default();
        }
        state.problems.remove(full);
        let stored = Stored {
            revision: kv.mod_revision,
            doc,
            edit,
            applied_at: SystemTime::now(),
        };
        self.set_and_apply(state, full, &key, Some(stored))
    }

    /// A delete of `full` at `revision` seen. Idempotent per revision.
    fn on_delete(&self, state: &mut State, full: &str, revision: i64) -> Outcome {
        if let Some(done) = already(state, full, revision) {
            return done;
        }
        state
            .seen
            .insert(full.to_owned(), (revision, Outcome::default()));
        state.problems.remove(full);
        let Ok(key) = Key::parse(&self.prefix, full) else {
            return Outcome::default();
        };
        if !state.balancers.contains_key(&key.balancer) {
            return Outcome::default();
        }
        self.set_and_apply(state, full, &key, None)
    }

    /// Puts `value` in force for `key` and applies what is now in force to the store.
    fn set_and_apply(
        &self,
        state: &mut State,
        full: &str,
        key: &Key,
        value: Option<Stored>,
    ) -> Outcome {
        let Some(entry) = state.balancers.get_mut(&key.balancer) else {
            return Outcome::default();
        };
        let revision = value.as_ref().map(|s| s.revision);
        let result = match &key.kind {
            KeyKind::Balancer => {
                entry.doc = value;
                Ok(apply_balancer(entry, &key.balancer))
            }
            KeyKind::Member(url) | KeyKind::Lapse(url) => {
                let m = entry.members.entry(url.clone()).or_default();
                if matches!(key.kind, KeyKind::Member(_)) {
                    m.doc = value;
                } else {
                    m.lapse = value;
                }
                apply_member(entry, &key.balancer, url)
            }
        };
        let outcome = match result {
            Ok(outcome) => {
                if !outcome.changed.is_empty() {
                    tracing::info!(
                        key = full,
                        revision,
                        changed = ?outcome.changed,
                        "applied the fleet's change from etcd"
                    );
                }
                outcome
            }
            Err(reason) => {
                report(state, full, revision.unwrap_or(0), reason);
                Outcome::default()
            }
        };
        if let Some((_, done)) = state.seen.get_mut(full) {
            done.clone_from(&outcome);
        }
        outcome
    }

    // ----- watching -----

    /// Reads the whole prefix and reconciles: every key applied, every key gone since
    /// handled as deleted.
    async fn full_read(&self) -> Result<(), tonic::Status> {
        let response = self.client.range_prefix(&self.prefix).await?;
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        let mut state = self.state.lock();
        let present: std::collections::HashSet<&[u8]> =
            response.kvs.iter().map(|kv| kv.key.as_slice()).collect();
        let gone: Vec<String> = known_keys(&state, &self.prefix)
            .into_iter()
            .filter(|k| !present.contains(k.as_bytes()))
            .collect();
        for full in gone {
            // A key deleted meanwhile: the delete's revision is unknown, the read's is
            // after it.
            self.on_delete(&mut state, &full, revision);
        }
        for kv in &response.kvs {
            self.on_put(&mut state, kv);
        }
        state.revision = state.revision.max(revision);
        Ok(())
    }

    fn connected(&self) {
        let mut state = self.state.lock();
        if !state.connected {
            state.connected = true;
            state.ever_connected = true;
            state.since = SystemTime::now();
            if state.outage_logged {
                tracing::info!(
                    backend = %self.backend,
                    revision = state.revision,
                    "etcd is reachable again: fleet edits are shared again"
                );
            } else {
                tracing::info!(backend = %self.backend, revision = state.revision, "connected to etcd");
            }
        }
        state.outage_logged = false;
        state.last_error = None;
    }

    fn disconnected(&self, error: String) {
        let mut state = self.state.lock();
        if state.connected {
            state.connected = false;
            state.since = SystemTime::now();
        }
        if !state.outage_logged {
            state.outage_logged = true;
            tracing::warn!(
                backend = %self.backend,
                error = %error,
                revision = state.revision,
                "etcd is unreachable: serving with the last state seen, refusing manager edits until it is back"
            );
        } else {
            tracing::debug!(error = %error, "etcd still unreachable");
        }
        state.last_error = Some(error);
    }

    fn unavailable(&self, reason: String) -> SharedEditError {
        let state = self.state.lock();
        let since = humantime_since(state.since);
        SharedEditError::Unavailable {
            reason: if state.connected {
                reason
            } else if !state.ever_connected {
                format!(
                    "this instance has not reached etcd ({}) since it started {since} ago: {reason}",
                    self.backend
                )
            } else {
                format!("etcd ({}) unreachable for {since}: {reason}", self.backend)
            },
        }
    }

    // ----- submitting -----

    async fn submit(&self, request: SharedEditRequest) -> Result<Submitted, SharedEditError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(SharedEditError::Unavailable {
                reason: "the etcd share is stopped".to_owned(),
            });
        }
        {
            let state = self.state.lock();
            if !state.connected {
                let error = state.last_error.clone().unwrap_or_default();
                drop(state);
                return Err(self.unavailable(error));
            }
        }
        let plan = self.plan(&request)?;
        let lease = match plan.ttl {
            Some(ttl) => {
                let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
                let granted = self
                    .client
                    .lease_grant(secs)
                    .await
                    .map_err(|e| self.failed(&e))?;
                if !granted.error.is_empty() {
                    return Err(SharedEditError::Refused {
                        reason: format!("etcd refused the lease: {}", granted.error),
                    });
                }
                Some((granted.id, secs))
            }
            None => None,
        };
        for _ in 0..CAS_ATTEMPTS {
            let keys = plan.keys(&self.prefix);
            let read = self
                .client
                .txn(TxnRequest {
                    success: keys
                        .iter()
                        .map(|k| RequestOp {
                            request: Some(request_op::Request::Range(rpc::RangeRequest {
                                key: k.as_bytes().to_vec(),
                                ..rpc::RangeRequest::default()
                            })),
                        })
                        .collect(),
                    ..TxnRequest::default()
                })
                .await
                .map_err(|e| self.failed(&e))?;
            let mut old: Vec<Option<KeyValue>> = read
                .responses
                .into_iter()
                .map(|r| match r.response {
                    Some(rpc::response_op::Response::Range(r)) => r.kvs.into_iter().next(),
                    _ => None,
                })
                .collect();
            old.resize(keys.len(), None);
            let writes = plan.writes(&self.prefix, &old, lease, &request, &self.instance)?;
            let txn = TxnRequest {
                compare: keys
                    .iter()
                    .zip(&old)
                    .map(|(k, kv)| {
                        rpc::Compare::mod_revision(k, kv.as_ref().map_or(0, |kv| kv.mod_revision))
                    })
                    .collect(),
                success: writes
                    .iter()
                    .map(|w| RequestOp {
                        request: Some(match w {
                            Write::Put { key, value, lease } => {
                                request_op::Request::Put(rpc::PutRequest {
                                    key: key.as_bytes().to_vec(),
                                    value: value.as_bytes().to_vec(),
                                    lease: *lease,
                                })
                            }
                            Write::Delete { key } => {
                                request_op::Request::DeleteRange(rpc::DeleteRangeRequest {
                                    key: key.as_bytes().to_vec(),
                                    ..rpc::DeleteRangeRequest::default()
                                })
                            }
                        }),
                    })
                    .collect(),
                ..TxnRequest::default()
            };
            let done = self.client.txn(txn).await.map_err(|e| self.failed(&e))?;
            if !done.succeeded {
                self.lost_races.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("an edit lost a race in etcd; reading again");
                continue;
            }
            let revision = done.header.as_ref().map_or(0, |h| h.revision);
            // Applied here at once, not waiting for the watch's echo (which is then
            // skipped: same revision).
            let mut outcome = Outcome::default();
            {
                let mut state = self.state.lock();
                if state.connected {
                    // An earlier submit's error is over.
                    state.last_error = None;
                }
                for w in &writes {
                    let o = match w {
                        Write::Put { key, value, lease } => self.on_put(
                            &mut state,
                            &KeyValue {
                                key: key.as_bytes().to_vec(),
                                value: value.as_bytes().to_vec(),
                                mod_revision: revision,
                                lease: *lease,
                                ..KeyValue::default()
                            },
                        ),
                        Write::Delete { key } => self.on_delete(&mut state, key, revision),
                    };
                    for c in o.changed {
                        if !outcome.changed.contains(&c) {
                            outcome.changed.push(c);
                        }
                    }
                    outcome.lb_reset |= o.lb_reset;
                }
            }
            plan.apply_local(&request, &self.state);
            return Ok(Submitted::new(
                u64::try_from(revision).unwrap_or(0),
                outcome.changed,
                outcome.lb_reset,
            ));
        }
        Err(SharedEditError::Conflict {
            reason: format!(
                "other instances changed the same keys {CAS_ATTEMPTS} times while this edit was merged; try again"
            ),
        })
    }

    /// An error from etcd during a submit: recorded and turned into a refusal.
    fn failed(&self, status: &tonic::Status) -> SharedEditError {
        let reason = format!("{}: {}", code_words(status.code()), status.message());
        self.state.lock().last_error = Some(reason.clone());
        SharedEditError::Unavailable {
            reason: format!("etcd ({}) did not take the edit: {reason}", self.backend),
        }
    }

    /// Which keys `request` writes, checked against the balancers shared here.
    fn plan(&self, request: &SharedEditRequest) -> Result<Plan, SharedEditError> {
        let balancer = short_name(&request.balancer);
        let edit = &request.edit;
        {
            let state = self.state.lock();
            if !state.balancers.contains_key(&balancer) {
                return Err(SharedEditError::Refused {
                    reason: format!("balancer {balancer} is not shared through etcd here"),
                });
            }
        }
        let ttl = request.ttl.or(edit.ttl);
        if ttl.is_some_and(|t| t.is_zero()) {
            return Err(SharedEditError::Refused {
                reason: "w_ttl must be at least 1 second".to_owned(),
            });
        }
        let set = and(edit.member.set_flags, SHARED_FLAGS);
        if ttl.is_some() && set.is_empty() {
            return Err(SharedEditError::Refused {
                reason:
                    "w_ttl applies to the flags an edit sets (w_status_X=1); this edit sets none"
                        .to_owned(),
            });
        }
        let member_url = match &edit.member_url {
            Some(url) => {
                Some(canonical_url(url).map_err(|reason| SharedEditError::Refused { reason })?)
            }
            None => None,
        };
        let mut probe = Doc::default();
        let member_fields = !probe.merge_member(edit).is_empty()
            || probe.merge_flags(edit.member.set_flags, edit.member.clear_flags);
        let add = edit.add_member.as_ref().map(MemberUrl::to_string);
        let balancer_fields = !Doc::default().merge_balancer(edit).is_empty();
        let member = match (&member_url, member_fields) {
            (Some(url), true) => Some(url.clone()),
            _ => None,
        };
        Ok(Plan {
            balancer,
            member,
            ttl,
            balancer_fields,
            add,
            local_set: and(edit.member.set_flags, StatusFlags::HC_FAILED),
            local_clear: and(edit.member.clear_flags, StatusFlags::HC_FAILED),
            local_url: member_url,
        })
    }
}

/// The keys one submit reads and writes.
#[derive(Debug)]
struct Plan {
    balancer: String,
    /// Member `w` when the edit changes it (its document and its lapsing flags).
    member: Option<String>,
    ttl: Option<Duration>,
    balancer_fields: bool,
    add: Option<String>,
    /// The `C` flag: a health result, local to this instance.
    local_set: StatusFlags,
    local_clear: StatusFlags,
    local_url: Option<String>,
}

#[derive(Debug)]
enum Write {
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete {
        key: String,
    },
}

impl Plan {
    /// The keys, in the order [`Plan::writes`] reads them.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(url) = &self.member {
            keys.push(Key::member(&self.balancer, url).path(prefix));
            keys.push(Key::lapse(&self.balancer, url).path(prefix));
        }
        if self.balancer_fields {
            keys.push(Key::balancer(&self.balancer).path(prefix));
        }
        if let Some(url) = &self.add {
            keys.push(Key::member(&self.balancer, url).path(prefix));
        }
        keys
    }

    /// The new values, merged onto `old` (the values read, in [`Plan::keys`]' order).
    fn writes(
        &self,
        prefix: &str,
        old: &[Option<KeyValue>],
        lease: Option<(i64, i64)>,
        request: &SharedEditRequest,
        instance: &str,
    ) -> Result<Vec<Write>, SharedEditError> {
        let edit = &request.edit;
        let now = now_secs();
        let stamp = |doc: &mut Doc, changed: Vec<&str>| {
            doc.by = Some(request.by.clone());
            doc.via = Some(instance.to_owned());
            doc.at = Some(now);
            doc.changed = changed.into_iter().map(str::to_owned).collect();
            doc.expires = None;
        };
        let mut old = old.iter();
        let mut writes = Vec::new();
        let prefix_key = |kv: Option<&KeyValue>, kind: &KeyKind| -> Doc {
            // A value that cannot be read is replaced (it was reported when seen).
            kv.and_then(|kv| Doc::parse(&kv.value, kind).ok())
                .unwrap_or_default()
        };
        if let Some(url) = &self.member {
            let member_kv = old.next().and_then(Option::as_ref);
            let lapse_kv = old.next().and_then(Option::as_ref);
            let member_kind = KeyKind::Member(url.clone());
            let lapse_kind = KeyKind::Lapse(url.clone());
            let mut doc = prefix_key(member_kv, &member_kind);
            let mut changed = doc.merge_member(edit);
            let set = and(edit.member.set_flags, SHARED_FLAGS);
            let clear = and(edit.member.clear_flags, SHARED_FLAGS);
            let mut lapse = lapse_kv.map(|kv| (prefix_key(Some(kv), &lapse_kind), kv.lease));
            match lease {
                Some((id, secs)) => {
                    // The flags set lapse: held by the lapsing key, cleared underneath.
                    doc.merge_flags(StatusFlags::EMPTY, set.union(clear));
                    let mut l = lapse.map(|(d, _)| d).unwrap_or_default();
                    l.merge_flags(set, StatusFlags::EMPTY);
                    l.remove_flags(clear);
                    stamp(&mut l, vec!["status"]);
                    l.expires = Some(now.saturating_add(u64::try_from(secs).unwrap_or(0)));
                    check_doc(&l, &lapse_kind, &self.balancer, url)?;
                    writes.push(Write::Put {
                        key: Key::lapse(&self.balancer, url).path(prefix),
                        value: l.encode(),
                        lease: id,
                    });
                }
                None => {
                    doc.merge_flags(set, clear);
                    if let Some((mut l, lease_id)) = lapse.take() {
                        if l.remove_flags(set.union(clear)) {
                            let key = Key::lapse(&self.balancer, url).path(prefix);
                            if l.is_empty() {
                                writes.push(Write::Delete { key });
                            } else {
                                writes.push(Write::Put {
                                    key,
                                    value: l.encode(),
                                    lease: lease_id,
                                });
                            }
                        }
                    }
                }
            }
            if !set.union(clear).is_empty() {
                changed.push("status");
            }
            stamp(&mut doc, changed);
            check_doc(&doc, &member_kind, &self.balancer, url)?;
            writes.push(Write::Put {
                key: Key::member(&self.balancer, url).path(prefix),
                value: doc.encode(),
                lease: 0,
            });
        }
        if self.balancer_fields {
            let kv = old.next().and_then(Option::as_ref);
            let mut doc = prefix_key(kv, &KeyKind::Balancer);
            let changed = doc.merge_balancer(edit);
            stamp(&mut doc, changed);
            check_doc(&doc, &KeyKind::Balancer, &self.balancer, "")?;
            writes.push(Write::Put {
                key: Key::balancer(&self.balancer).path(prefix),
                value: doc.encode(),
                lease: 0,
            });
        }
        if let Some(url) = &self.add {
            if old.next().and_then(Option::as_ref).is_some() {
                return Err(SharedEditError::Conflict {
                    reason: format!("member {url} was added by another instance meanwhile"),
                });
            }
            let mut doc = Doc::default();
            // Added disabled, as Apache's manager adds a member.
            doc.merge_flags(StatusFlags::DISABLED, StatusFlags::EMPTY);
            stamp(&mut doc, vec!["added"]);
            writes.push(Write::Put {
                key: Key::member(&self.balancer, url).path(prefix),
                value: doc.encode(),
                lease: 0,
            });
        }
        Ok(writes)
    }

    /// The `C` flag of member `w`, a health result: set or cleared here only.
    fn apply_local(&self, _request: &SharedEditRequest, state: &Mutex<State>) {
        if self.local_set.is_empty() && self.local_clear.is_empty() {
            return;
        }
        let state = state.lock();
        let (Some(entry), Some(url)) = (state.balancers.get(&self.balancer), &self.local_url)
        else {
            return;
        };
        let snapshot = entry.store.snapshot();
        if let Some(m) = snapshot.member_by_url(url) {
            m.state().insert_flags(self.local_set);
            m.state().remove_flags(self.local_clear);
        }
    }
}

fn check_doc(doc: &Doc, kind: &KeyKind, balancer: &str, url: &str) -> Result<(), SharedEditError> {
    let url = match kind {
        KeyKind::Balancer => None,
        _ => Some(url),
    };
    Doc::parse(doc.encode().as_bytes(), kind)
        .and_then(|d| d.edit(balancer, url))
        .map(drop)
        .map_err(|reason| SharedEditError::Refused {
            reason: format!("the edit cannot be written to etcd: {reason}"),
        })
}

fn and(a: StatusFlags, b: StatusFlags) -> StatusFlags {
    StatusFlags::from_bits_truncate(a.bits() & b.bits())
}

fn code_words(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DeadlineExceeded => "timed out",
        tonic::Code::Cancelled => "cancelled",
        _ => "error",
    }
}

fn humantime_since(since: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(since)
        .map_or(0, |d| d.as_secs());
    format!("{secs} s")
}

/// What handling `full` at `revision` did, if it was handled already (nothing, for an
/// older revision).
fn already(state: &State, full: &str, revision: i64) -> Option<Outcome> {
    match state.seen.get(full) {
        Some((seen, done)) if *seen == revision => Some(done.clone()),
        Some((seen, _)) if *seen > revision => Some(Outcome::default()),
        _ => None,
    }
}

/// Reports a value that cannot be used: logged once per revision, kept for
/// [`EtcdShare::problems`] and the status.
fn report(state: &mut State, full: &str, revision: i64, reason: String) {
    tracing::warn!(
        key = full,
        revision,
        reason = %reason,
        "ignored a value in etcd that cannot be used; the last good state stays in force"
    );
    state.problems.insert(
        full.to_owned(),
        KeyProblem {
            key: full.to_owned(),
            revision: u64::try_from(revision).unwrap_or(0),
            reason,
        },
    );
}

/// Every key with a value in force here.
fn known_keys(state: &State, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (name, entry) in &state.balancers {
        if entry.doc.is_some() {
            keys.push(Key::balancer(name).path(prefix));
        }
        for (url, m) in &entry.members {
            if m.doc.is_some() {
                keys.push(Key::member(name, url).path(prefix));
            }
            if m.lapse.is_some() {
                keys.push(Key::lapse(name, url).path(prefix));
            }
        }
    }
    keys.extend(state.problems.keys().cloned());
    keys
}

// ===== applying to a store =====

/// Applies the balancer's settings in force (its key, else its configured settings).
fn apply_balancer(entry: &mut Entry, _name: &str) -> Outcome {
    let current = entry.store.snapshot().params().clone();
    let base = entry.base.get_or_insert_with(|| current.clone()).clone();
    let b = entry
        .doc
        .as_ref()
        .map(|s| s.edit.balancer.clone())
        .unwrap_or_default();
    let mut outcome = Outcome::default();
    let (changed, lb_reset) = entry.store.update_params(|p| {
        let mut changed = Vec::new();
        let method = b
            .lb_method
            .clone()
            .unwrap_or_else(|| base.lb_method.clone());
        if method.name() != p.lb_method.name() {
            p.lb_method = method;
            changed.push("lbmethod");
        }
        let timeout = b.timeout.unwrap_or(base.timeout);
        if timeout != p.timeout {
            p.timeout = timeout;
            changed.push("timeout");
        }
        let max = b.max_attempts.map(Some).unwrap_or(base.max_attempts);
        if max != p.max_attempts {
            p.max_attempts = max;
            changed.push("maxattempts");
        }
        let no_failover = b.no_failover.unwrap_or(base.no_failover);
        if no_failover != p.no_failover {
            p.no_failover = no_failover;
            changed.push("nofailover");
        }
        let ss = match &b.sticky_session {
            Some(u) => u.clone().into_option(),
            None => base.sticky_session.clone(),
        };
        if ss != p.sticky_session {
            p.sticky_session = ss;
            changed.push("stickysession");
        }
        let reset = changed.contains(&"lbmethod");
        (changed, reset)
    });
    outcome.changed = changed.into_iter().map(str::to_owned).collect();
    outcome.lb_reset = lb_reset;
    if entry.doc.is_none() {
        entry.base = None;
    }
    outcome
}

/// Applies member `url`'s state in force: its configured state, its key, its lapsing flags.
/// Adds it when only etcd has it, removes it (in-flight requests finish) when etcd had
/// added it and its keys are gone.
fn apply_member(entry: &mut Entry, balancer: &str, url: &str) -> Result<Outcome, String> {
    let store = Arc::clone(&entry.store);
    let mut outcome = Outcome::default();
    let Some(m) = entry.members.get_mut(url) else {
        return Ok(outcome);
    };
    let snapshot = store.snapshot();
    let present = snapshot.member_by_url(url);
    if m.doc.is_none() && m.lapse.is_none() {
        // Back to the configured state, or gone if etcd added it.
        if m.added {
            if let Some(member) = present {
                let _ = store.remove_member(member.id());
                tracing::info!(
                    balancer,
                    member = url,
                    "member removed: its key was deleted from etcd (requests in flight finish)"
                );
                outcome.changed.push("removed".to_owned());
            }
            entry.members.remove(url);
            return Ok(outcome);
        }
        let (Some(base), Some(member)) = (m.base.take(), present) else {
            entry.members.remove(url);
            return Ok(outcome);
        };
        let edit = target_edit(balancer, url, &base, None, None, member);
        entry.members.remove(url);
        let applied = edit
            .apply(&store, GrowthSlots::new(u32::MAX))
            .map_err(|e| e.to_string())?;
        outcome.add(&applied);
        return Ok(outcome);
    }
    let member = if let Some(member) = present {
        if m.base.is_none() {
            m.base = Some((member.params().clone(), and(member.flags(), SHARED_FLAGS)));
        }
        member.clone()
    } else {
        let params = MemberParams::from_url(MemberUrl::new(url).map_err(|e| e.to_string())?);
        store
            .add_member(params.clone())
            .map_err(|e| format!("cannot add member {url}: {e}"))?;
        tracing::info!(balancer, member = url, "member added: it is in etcd");
        m.added = true;
        m.base = Some((params, StatusFlags::EMPTY));
        outcome.changed.push("added".to_owned());
        let snapshot = store.snapshot();
        snapshot
            .member_by_url(url)
            .cloned()
            .ok_or_else(|| format!("member {url} vanished while being added"))?
    };
    let base = m
        .base
        .clone()
        .unwrap_or((member.params().clone(), StatusFlags::EMPTY));
    let edit = target_edit(
        balancer,
        url,
        &base,
        m.doc.as_ref().map(|s| &s.edit),
        m.lapse.as_ref().map(|s| &s.edit),
        &member,
    );
    let applied = edit
        .apply(&store, GrowthSlots::new(u32::MAX))
        .map_err(|e| e.to_string())?;
    outcome.add(&applied);
    Ok(outcome)
}

/// The edit that takes `current` to the state in force: `base`, then the member's
/// document, then its lapsing flags. Only what differs is in it.
fn target_edit(
    balancer: &str,
    url: &str,
    base: &(MemberParams, StatusFlags),
    doc: Option<&Edit>,
    lapse: Option<&Edit>,
    current: &Member,
) -> Edit {
    let (bp, bflags) = base;
    let cur = current.params();
    let mut e = Edit::default();
    e.balancer_name = Some(balancer.to_owned());
    e.member_url = Some(url.to_owned());
    let d = doc.map(|d| (&d.member, &d.health));
    let lf = d.and_then(|(m, _)| m.load_factor).unwrap_or(bp.load_factor);
    if lf != cur.load_factor {
        e.member.load_factor = Some(lf);
    }
    let ls = d.and_then(|(m, _)| m.lb_set).unwrap_or(bp.lb_set);
    if ls != cur.lb_set {
        e.member.lb_set = Some(ls);
    }
    let route = match d.and_then(|(m, _)| m.route.clone()) {
        Some(u) => u.into_option(),
        None => bp.route.clone(),
    };
    if route != cur.route {
        e.member.route = Some(to_update(route));
    }
    let redirect = match d.and_then(|(m, _)| m.redirect.clone()) {
        Some(u) => u.into_option(),
        None => bp.redirect.clone(),
    };
    if redirect != cur.redirect {
        e.member.redirect = Some(to_update(redirect));
    }
    let (bh, ch) = (&bp.hc, &cur.hc);
    let h = d.map(|(_, h)| h);
    let method = h.and_then(|h| h.method).unwrap_or(bh.method);
    if method != ch.method {
        e.health.method = Some(method);
    }
    let interval = h.and_then(|h| h.interval).unwrap_or(bh.interval);
    if interval != ch.interval {
        e.health.interval = Some(interval);
    }
    let passes = h.and_then(|h| h.passes).unwrap_or(bh.passes);
    if passes != ch.passes {
        e.health.passes = Some(passes);
    }
    let fails = h.and_then(|h| h.fails).unwrap_or(bh.fails);
    if fails != ch.fails {
        e.health.fails = Some(fails);
    }
    let uri = h
        .and_then(|h| h.uri.clone())
        .unwrap_or_else(|| bh.uri.clone());
    if uri != ch.uri {
        e.health.uri = Some(uri);
    }
    let expr = match h.and_then(|h| h.expr.clone()) {
        Some(u) => u.into_option(),
        None => bh.expr.clone(),
    };
    if expr != ch.expr {
        e.health.expr = Some(to_update(expr));
    }
    let mut target = *bflags;
    for overlay in [doc, lapse].into_iter().flatten() {
        target = target
            .union(and(overlay.member.set_flags, SHARED_FLAGS))
            .difference(overlay.member.clear_flags);
    }
    let target = and(target, SHARED_FLAGS);
    let now = and(current.flags(), SHARED_FLAGS);
    e.member.set_flags = target.difference(now);
    e.member.clear_flags = now.difference(target);
    e
}

fn to_update<T>(value: Option<T>) -> Update<T> {
    value.map_or(Update::Clear, Update::Set)
}

// ===== the watch task =====

/// Reads the prefix, then watches it; on a failure, says so once, backs off and resumes
/// from the last revision applied (or reads the whole prefix again when etcd has compacted
/// it).
async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>, first: watch::Sender<bool>) {
    let mut backoff = BACKOFF_MIN;
    let mut need_full_read = true;
    loop {
        if *stop.borrow() {
            break;
        }
        let attempt = async {
            if need_full_read {
                inner.full_read().await?;
                need_full_read = false;
                inner.connected();
                let _ = first.send(true);
            }
            let from = inner.state.lock().revision + 1;
            let mut stream = inner.client.watch(&inner.prefix, from).await?;
            loop {
                let Some(response) = stream.message().await? else {
                    return Err(tonic::Status::unavailable("etcd ended the watch"));
                };
                if response.compact_revision > 0 {
                    tracing::info!(
                        compacted = response.compact_revision,
                        "etcd compacted past this instance's revision; reading the whole prefix again"
                    );
                    need_full_read = true;
                    return Ok(());
                }
                if response.canceled {
                    // Not for a compaction: a failure, retried after a pause.
                    return Err(tonic::Status::unavailable(format!(
                        "etcd cancelled the watch: {}",
                        response.cancel_reason
                    )));
                }
                if response.created {
                    inner.connected();
                    backoff = BACKOFF_MIN;
                }
                let mut state = inner.state.lock();
                for event in &response.events {
                    let Some(kv) = &event.kv else { continue };
                    if event.kind == EVENT_DELETE {
                        if let Ok(full) = std::str::from_utf8(&kv.key) {
                            inner.on_delete(&mut state, full, kv.mod_revision);
                        }
                    } else {
                        inner.on_put(&mut state, kv);
                    }
                }
                // Resume after the last event: a batch's header can be ahead of its events
                // while the watch catches up. Only a progress notice (no event, sent to a
                // watch that is caught up) vouches for its header's revision.
                if let Some(last) = response
                    .events
                    .iter()
                    .filter_map(|e| e.kv.as_ref())
                    .next_back()
                {
                    state.revision = state.revision.max(last.mod_revision);
                } else if !response.created {
                    if let Some(h) = &response.header {
                        state.revision = state.revision.max(h.revision);
                    }
                }
            }
        };
        let result = tokio::select! {
            r = attempt => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match result {
            Ok(()) => continue,
            Err(status) => {
                let _ = first.send(true);
                inner.disconnected(format!(
                    "{}: {}",
                    code_words(status.code()),
                    status.message()
                ));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
            }
        }
    }
    tracing::debug!("the etcd watch stopped");
}
