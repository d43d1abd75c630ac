//! The background tasks: one supervisor per [`HealthProbe`], one task per probe in flight.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::core::{
    BalancerSnapshot, BalancerStore, HealthReport, Member, MemberId, MemberUrl, StatusFlags,
};

use super::config::{ProbeConfig, ProbeConfigError, ProbeDefinitions};
use super::probe::{ProbeFailure, ProbeOutcome};
use super::state::{MemberHealth, Runs, Transition};

/// Apache's `ProxyHCTPsize` default: at most this many probes in flight at once.
const DEFAULT_CONCURRENCY: usize = 16;

/// How often the supervisor re-reads the member set when no probe is due sooner: Apache's
/// watchdog period, so added, removed and stopped members are noticed as fast as there.
const TICK: Duration = Duration::from_millis(100);

/// State shared by the handle, its monitors and the tasks.
#[derive(Debug, Default)]
struct Shared {
    health: Mutex<HashMap<MemberId, MemberHealth>>,
    live_tasks: AtomicUsize,
}

/// Counts a live task while it exists (dropped with the task's future, also on abort).
struct LiveTask(Arc<Shared>);

impl LiveTask {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.live_tasks.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(shared))
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0.live_tasks.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Background health probes of a balancer's members: sets `C` on members that fail and
/// clears it (and `E`) on members that pass. See the [module docs](super).
///
/// The tasks end when the handle is dropped or [`shutdown`](Self::shutdown) is awaited.
pub struct HealthProbe {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Builds a [`HealthProbe`] with a non-default concurrency bound.
#[derive(Debug, Clone)]
pub struct HealthProbeBuilder {
    store: Arc<BalancerStore>,
    concurrency: usize,
    /// A pool shared with other probes ([`HealthProbeBuilder::pool`]).
    pool: Option<ProbePool>,
    /// The TLS client of the `https` members' probes ([`HealthProbeBuilder::tls`]).
    #[cfg(feature = "http-client")]
    tls: Option<crate::client::TlsClient>,
}

/// A read-only view of a [`HealthProbe`]'s counters; it stays valid after the probe
/// stopped.
#[derive(Clone)]
pub struct HealthMonitor {
    shared: Arc<Shared>,
}

// ===== impl HealthProbe =====

impl HealthProbe {
    /// Starts probing the members of `store`: each member for which `configs` returns a
    /// config, at most 16 probes at once (Apache's `ProxyHCTPsize`).
    ///
    /// `configs` is asked again for every member whenever the store's member set changes
    /// (a member added, removed or edited), so reconfiguration is followed.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn<F>(store: Arc<BalancerStore>, configs: F) -> Self
    where
        F: Fn(&Member) -> Option<ProbeConfig> + Send + Sync + 'static,
    {
        Self::builder(store).spawn(configs)
    }

    /// Starts probing the members of `store` as their own health-check parameters say
    /// ([`MemberParams::hc`](crate::MemberParams::hc), read through
    /// [`ProbeConfig::from_member`]), with the conditions of `defs`; at most 16 probes at
    /// once.
    ///
    /// The parameters are read from the store's snapshot, so every change to it is
    /// followed within 100 ms: a member whose `hcinterval`, `hcuri`, `hcmethod`,
    /// `hcpasses`, `hcfails` or `hcexpr` is edited (by the balancer-manager, say) is probed
    /// the new way from its next probe on, a new interval counting from the end of its last
    /// probe (as Apache's watchdog does); a member added with a method gets probes, and one
    /// removed or set to `hcmethod=NONE` stops being probed.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    ///
    /// use proxy_balancer::health_probe::{HealthProbe, ProbeDefinitions};
    /// use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let mut member = MemberParams::new("http://127.0.0.1:8081")?;
    /// member.set("hcmethod", "GET")?;
    /// member.set("hcuri", "/health")?;
    /// let now = tokio::time::Instant::now().into_std();
    /// let store = Arc::new(BalancerStore::new(BalancerParams::new("app"), [member], now)?);
    /// let probe = HealthProbe::spawn_with(Arc::clone(&store), Arc::new(ProbeDefinitions::new()))?;
    /// // ... serve with a Balancer over `store`; a manager edit of the store is followed ...
    /// probe.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ProbeConfigError::UnknownExpr`] if a member's `hcexpr` names no condition of
    /// `defs`. (A member edited later to such a name, bypassing the checks of
    /// [`ProbeDefinitions::check`], is not probed, with a warning.)
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_with(
        store: Arc<BalancerStore>,
        defs: Arc<ProbeDefinitions>,
    ) -> Result<Self, ProbeConfigError> {
        Self::builder(store).spawn_with(defs)
    }

    /// A builder, for a concurrency bound other than 16.
    #[must_use]
    pub fn builder(store: Arc<BalancerStore>) -> HealthProbeBuilder {
        HealthProbeBuilder {
            store,
            concurrency: DEFAULT_CONCURRENCY,
            pool: None,
            #[cfg(feature = "http-client")]
            tls: None,
        }
    }

    /// A view of the counters, usable after the probe stopped.
    #[must_use]
    pub fn monitor(&self) -> HealthMonitor {
        HealthMonitor {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The counters of member `id`, if it is probed.
    #[must_use]
    pub fn member(&self, id: MemberId) -> Option<MemberHealth> {
        self.monitor().member(id)
    }

    /// Stops every task and waits until they have ended: no probe runs afterwards.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // An error means the task was aborted or panicked: it has ended either way.
            let _ = task.await;
        }
    }
}

impl Drop for HealthProbe {
    fn drop(&mut self) {
        // Aborting drops the supervisor's JoinSet, which aborts every probe in flight.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for HealthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthProbe")
            .field("running", &self.task.is_some())
            .field("live_tasks", &self.shared.live_tasks.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

// ===== impl HealthProbeBuilder =====

/// A server-wide bound on the probes in flight, shared by the [`HealthProbe`]s of several
/// balancers ([`HealthProbeBuilder::pool`]): Apache's `ProxyHCTPsize`, the health-check
/// thread pool of the whole server.
///
/// ```
/// use proxy_balancer::health_probe::ProbePool;
///
/// let pool = ProbePool::new(16);
/// assert_eq!(pool.size(), 16);
/// // `ProxyHCTPsize 0`: one check at a time.
/// assert_eq!(ProbePool::new(0).size(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct ProbePool {
    permits: Arc<Semaphore>,
    size: usize,
}

impl ProbePool {
    /// At most `size` probes at once (0 is taken as 1: Apache's 0 runs the checks one
    /// after the other).
    #[must_use]
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// How many probes may run at once.
    #[must_use]
    pub const fn size(&self) -> usize {
        self.size
    }
}

impl HealthProbeBuilder {
    /// Share `pool` with other probes: at most its size in flight across all of them (it
    /// replaces [`concurrency`](Self::concurrency)).
    #[must_use]
    pub fn pool(mut self, pool: &ProbePool) -> Self {
        self.pool = Some(pool.clone());
        self
    }

    /// At most `n` probes in flight at once (Apache's `ProxyHCTPsize`, default 16; 0 is
    /// taken as 1: Apache's 0 runs checks one after the other).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The TLS client the probes of `https`, `wss` and `h2` members speak through: the one
    /// their requests use ([`ClientOptions::with_tls`](crate::client::ClientOptions::with_tls)),
    /// so that a member whose certificate the requests refuse fails its probes too. `None`
    /// (the default): the system's trust store ([`TlsClient::system`](crate::client::TlsClient::system)).
    /// A [`ProbeConfig`] given to [`spawn`](Self::spawn) with a client of its own
    /// ([`ProbeConfig::with_tls`]) keeps it.
    #[cfg(feature = "http-client")]
    #[must_use]
    pub fn tls(mut self, tls: Option<crate::client::TlsClient>) -> Self {
        self.tls = tls;
        self
    }

    /// Starts the probes from the members' own parameters; see
    /// [`HealthProbe::spawn_with`].
    ///
    /// # Errors
    ///
    /// As [`HealthProbe::spawn_with`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_with(self, defs: Arc<ProbeDefinitions>) -> Result<HealthProbe, ProbeConfigError> {
        for member in self.store.snapshot().members() {
            defs.check(&member.params().hc)?;
        }
        Ok(self.spawn(move |member: &Member| {
            match ProbeConfig::from_member(member.params(), &defs) {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(
                        worker = member.url(),
                        %error,
                        "health check parameters refused: member not probed"
                    );
                    None
                }
            }
        }))
    }

    /// Starts the probes; see [`HealthProbe::spawn`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn<F>(self, configs: F) -> HealthProbe
    where
        F: Fn(&Member) -> Option<ProbeConfig> + Send + Sync + 'static,
    {
        #[cfg(feature = "http-client")]
        let configs = {
            let tls = self.tls.clone();
            move |member: &Member| {
                configs(member).map(|c| match (&c.tls, &tls) {
                    (None, Some(tls)) => c.with_tls(Some(tls.clone())),
                    _ => c,
                })
            }
        };
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel();
        let supervisor = Supervisor {
            store: self.store,
            configs,
            shared: Arc::clone(&shared),
            permits: self.pool.map_or_else(
                || Arc::new(Semaphore::new(self.concurrency)),
                |pool| pool.permits,
            ),
            slots: HashMap::new(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            seen: None,
        };
        let live = LiveTask::new(&shared);
        let task = tokio::spawn(async move {
            let _live = live;
            supervisor.run(stopped).await;
        });
        HealthProbe {
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

// ===== impl HealthMonitor =====

impl HealthMonitor {
    /// The counters of member `id`, if it is (or was) probed.
    #[must_use]
    pub fn member(&self, id: MemberId) -> Option<MemberHealth> {
        self.shared.health.lock().get(&id).cloned()
    }

    /// The counters of every probed member, by id.
    #[must_use]
    pub fn members(&self) -> Vec<(MemberId, MemberHealth)> {
        let mut all: Vec<_> = self
            .shared
            .health
            .lock()
            .iter()
            .map(|(id, h)| (*id, h.clone()))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Tasks still alive: the supervisor and the probes in flight. 0 once the probe has
    /// been shut down.
    #[must_use]
    pub fn live_tasks(&self) -> usize {
        self.shared.live_tasks.load(Ordering::SeqCst)
    }
}

impl HealthReport for HealthMonitor {
    fn last_passed(&self, member: MemberId) -> Option<bool> {
        self.shared
            .health
            .lock()
            .get(&member)
            .and_then(MemberHealth::last_passed)
    }
}

impl fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("live_tasks", &self.live_tasks())
            .finish_non_exhaustive()
    }
}

// ===== supervisor =====

/// One probed member.
struct Slot {
    config: Arc<ProbeConfig>,
    url: MemberUrl,
    next_due: Instant,
    in_flight: bool,
    runs: Runs,
}

type Finished = (MemberId, ProbeOutcome, Instant);

struct Supervisor<F> {
    store: Arc<BalancerStore>,
    configs: F,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    slots: HashMap<MemberId, Slot>,
    tasks: JoinSet<Finished>,
    /// Which member each probe task is for, to free its slot if the task fails.
    running: HashMap<tokio::task::Id, MemberId>,
    seen: Option<Arc<BalancerSnapshot>>,
}

impl<F> Supervisor<F>
where
    F: Fn(&Member) -> Option<ProbeConfig> + Send + Sync + 'static,
{
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        loop {
            let snapshot = self.store.snapshot();
            self.follow(&snapshot);
            let wake = self.start_due(&snapshot);
            drop(snapshot);
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    match done {
                        Ok((task, finished)) => {
                            self.running.remove(&task);
                            self.finish(finished);
                        }
                        Err(e) => {
                            if let Some(id) = self.running.remove(&e.id()) {
                                if let Some(slot) = self.slots.get_mut(&id) {
                                    slot.in_flight = false;
                                    slot.next_due = Instant::now() + slot.config.effective_interval();
                                }
                            }
                            tracing::debug!(error = %e, "health probe task ended abnormally");
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        self.tasks.shutdown().await;
    }

    /// Follows reconfiguration: asks for configs again when the snapshot changed.
    fn follow(&mut self, snapshot: &Arc<BalancerSnapshot>) {
        if self.seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, snapshot)) {
            return;
        }
        self.seen = Some(Arc::clone(snapshot));
        let now = Instant::now();
        let mut keep = HashMap::with_capacity(snapshot.members().len());
        for member in snapshot.members() {
            let Some(config) = (self.configs)(member) else {
                continue;
            };
            let id = member.id();
            let config = Arc::new(config);
            let slot = match self.slots.remove(&id) {
                Some(mut slot) => {
                    let (old, new) = (
                        slot.config.effective_interval(),
                        config.effective_interval(),
                    );
                    if old != new && !slot.in_flight {
                        // As Apache's watchdog: the next probe is due one (new) interval
                        // after the end of the last one.
                        let last = slot.next_due.checked_sub(old).unwrap_or(now);
                        slot.next_due = last + new;
                    }
                    slot.config = config;
                    member.params().url.clone_into(&mut slot.url);
                    slot
                }
                None => Slot {
                    next_due: now + jitter(id, &member.params().url, config.effective_interval()),
                    config,
                    url: member.params().url.clone(),
                    in_flight: false,
                    runs: Runs::default(),
                },
            };
            keep.insert(id, slot);
        }
        self.slots = keep;
        let mut health = self.shared.health.lock();
        health.retain(|id, _| self.slots.contains_key(id));
        for id in self.slots.keys() {
            health.entry(*id).or_default();
        }
    }

    /// Starts the probes that are due; returns when to look again.
    fn start_due(&mut self, snapshot: &BalancerSnapshot) -> Instant {
        let now = Instant::now();
        let mut wake = now + TICK;
        for (id, slot) in &mut self.slots {
            if slot.in_flight {
                continue;
            }
            if slot.next_due > now {
                wake = wake.min(slot.next_due);
                continue;
            }
            let interval = slot.config.effective_interval();
            let stopped = snapshot
                .member(*id)
                .map_or(true, |m| m.flags().contains(StatusFlags::STOPPED));
            if stopped {
                // Apache skips stopped members; look again one interval later.
                slot.next_due = now + interval;
                wake = wake.min(slot.next_due);
                continue;
            }
            slot.in_flight = true;
            let config = Arc::clone(&slot.config);
            let url = slot.url.clone();
            let permits = Arc::clone(&self.permits);
            let live = LiveTask::new(&self.shared);
            let id = *id;
            let handle = self.tasks.spawn(async move {
                let _live = live;
                // The semaphore is never closed; an error would only skip the bound.
                let _permit = permits.acquire_owned().await;
                let outcome = config.probe(&url).await;
                (id, outcome, Instant::now())
            });
            self.running.insert(handle.id(), id);
        }
        wake
    }

    /// Applies a finished probe to its member.
    fn finish(&mut self, (id, outcome, at): Finished) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return; // removed while probing
        };
        slot.in_flight = false;
        slot.next_due = at + slot.config.effective_interval();
        let snapshot = self.store.load();
        let Some(member) = snapshot.member(id) else {
            return;
        };
        let transition = slot.runs.record(
            outcome.passed(),
            slot.config.passes_needed(),
            slot.config.fails_needed(),
            member.state(),
        );
        let balancer = snapshot.params().name.as_str();
        let worker = member.url();
        let method = slot.config.method.as_str();
        match transition {
            Transition::None => tracing::trace!(
                balancer,
                worker,
                passed = outcome.passed(),
                status = outcome.status(),
                "health check"
            ),
            Transition::Disabled => tracing::warn!(
                apache_id = "AH03303",
                balancer,
                worker,
                method,
                status = outcome.status(),
                reason = outcome.failure().map_or("", ProbeFailure::as_str),
                "health check DISABLING {worker}"
            ),
            Transition::Enabled => tracing::info!(
                apache_id = "AH03302",
                balancer,
                worker,
                method,
                status = outcome.status(),
                "health check ENABLING {worker}"
            ),
        }
        if matches!(transition, Transition::Enabled) {
            // Beyond Apache: a member back from a health outage starts level with its peers.
            // While it was out, every sticky request added the usable members' load factors
            // to their lbstatus and not to its own, so Apache's byrequests/bytraffic would
            // pass it over until that gap was worked off (seconds of balanced traffic after
            // a busy outage). The balancer-manager resets lbstatus the same way when it
            // enables a member.
            self.store.reset_lb();
        }
        if let Some(health) = self.shared.health.lock().get_mut(&id) {
            health.note(outcome, transition, at.into_std());
        }
    }
}

/// The first probe's delay, spread over one interval by a hash of the member (so that many
/// members do not probe in lockstep) and stable for a member.
fn jitter(id: MemberId, url: &MemberUrl, interval: Duration) -> Duration {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    url.hash(&mut hasher);
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(hasher.finish() % millis)
}
