//! [`EtcdShare`]: the engine and its state (what each key holds, each member's configured
//! state). The settings and the start are in `builder`, applying a key to a store in
//! `apply`, the watch task in `watching`, [`SharedEdits::submit`] in `submit`.

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

mod apply;
mod builder;
mod submit;
mod watching;

pub use builder::EtcdShareBuilder;
use watching::run;

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

pub(super) fn code_words(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DeadlineExceeded => "timed out",
        tonic::Code::Cancelled => "cancelled",
        _ => "error",
    }
}

pub(super) fn humantime_since(since: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(since)
        .map_or(0, |d| d.as_secs());
    format!("{secs} s")
}
