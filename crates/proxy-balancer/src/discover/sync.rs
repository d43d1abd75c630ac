//! [`MemberSetSync`]: a desired member set applied to a store, members' state kept.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy_balancer_core::{
    BalancerStore, ConfigError, MemberId, MemberParams, MemberUrl, StatusFlags,
};

use super::DiscoverError;

/// How long a vanished member drains by default: sticky requests still reach it for this
/// long, then it is removed. Kubernetes gives a terminating pod 30 s by default
/// (`terminationGracePeriodSeconds`), so a discovered backend is usually still there.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// Keeps the members it added to a [`BalancerStore`] equal to a desired set, the state
/// of every member that stays kept. See the [module docs](super).
///
/// It owns only the members it added: members from the configuration, the
/// balancer-manager or another `MemberSetSync` are never updated nor removed (a desired
/// member whose URL one of them already has is skipped, and reported).
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use proxy_balancer::discover::MemberSetSync;
/// use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
///
/// let store = Arc::new(BalancerStore::new(BalancerParams::new("app"), [], Instant::now())?);
/// let sync = MemberSetSync::new(Arc::clone(&store)).with_drain(Duration::ZERO);
///
/// let report = sync.apply([MemberParams::new("http://10.0.0.1")?, MemberParams::new("http://10.0.0.2")?])?;
/// assert_eq!(report.added, 2);
///
/// // 10.0.0.1 vanishes: removed at once (no drain); 10.0.0.2 keeps its counters.
/// let report = sync.apply([MemberParams::new("http://10.0.0.2")?])?;
/// assert_eq!((report.removed, report.unchanged), (1, 1));
/// assert_eq!(store.snapshot().members().len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemberSetSync {
    store: Arc<BalancerStore>,
    drain: Duration,
    owned: parking_lot::Mutex<HashMap<MemberUrl, Owned>>,
    status: Arc<Status>,
}

/// A member this sync added.
#[derive(Clone, Debug)]
struct Owned {
    id: MemberId,
    /// The parameters last asked for (not the store's: an operator's later edit of the
    /// member stays until the source changes the member).
    desired: MemberParams,
    draining: Option<Drain>,
}

#[derive(Clone, Copy, Debug)]
struct Drain {
    until: Instant,
    /// Whether the drain set `+N` (it was not set before), so that a return clears it.
    set_flag: bool,
}

/// What one [`MemberSetSync::apply`] (or [`MemberSetSync::expire`]) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Members added to the store.
    pub added: usize,
    /// Members whose parameters changed (their state kept).
    pub updated: usize,
    /// Members asked for again as they were.
    pub unchanged: usize,
    /// Draining members asked for again: back in service, state kept.
    pub returned: usize,
    /// Members that vanished from the set and started to drain.
    pub draining: usize,
    /// Members removed from the store (vanished with no drain, or drained).
    pub removed: usize,
    /// Desired members skipped because a member the sync does not own (configured, or
    /// added by the balancer-manager) has their URL.
    pub skipped: usize,
    /// Desired members skipped because an earlier one in the same set has their URL.
    pub duplicates: usize,
}

impl SyncReport {
    /// Whether the store or a member's flags changed.
    #[must_use]
    pub const fn changed(&self) -> bool {
        self.added + self.updated + self.returned + self.draining + self.removed > 0
    }
}

/// A live view of a sync's counters and its source's last error, cheap to clone, readable
/// from anywhere (a metrics endpoint, a test) while the sync runs.
#[derive(Clone)]
pub struct SyncHandle {
    status: Arc<Status>,
}

#[derive(Default)]
struct Status {
    applied: AtomicU64,
    errors: AtomicU64,
    ended: AtomicBool,
    members: AtomicUsize,
    draining: AtomicUsize,
    last_error: parking_lot::Mutex<Option<Arc<DiscoverError>>>,
    last_report: parking_lot::Mutex<Option<SyncReport>>,
}

// ===== impl MemberSetSync =====

impl MemberSetSync {
    /// A sync adding members to `store`, draining vanished ones for [`DEFAULT_DRAIN`].
    #[must_use]
    pub fn new(store: Arc<BalancerStore>) -> Self {
        Self {
            store,
            drain: DEFAULT_DRAIN,
            owned: parking_lot::Mutex::new(HashMap::new()),
            status: Arc::default(),
        }
    }

    /// Sets how long a vanished member drains: it takes no new request but sticky ones
    /// (Apache's `+N`) for this long, then is removed. [`Duration::ZERO`] removes it at
    /// once. Either way its requests in flight finish.
    #[must_use]
    pub const fn with_drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// The drain period.
    #[must_use]
    pub const fn drain(&self) -> Duration {
        self.drain
    }

    /// The store the sync writes to.
    #[must_use]
    pub const fn store(&self) -> &Arc<BalancerStore> {
        &self.store
    }

    /// A handle on the sync's counters and last error.
    #[must_use]
    pub fn handle(&self) -> SyncHandle {
        SyncHandle {
            status: Arc::clone(&self.status),
        }
    }

    /// Makes the members this sync owns equal to `desired`, in one new snapshot of the
    /// store (none if nothing changed):
    ///
    /// - a new URL is added, with its `status` flags and fresh counters;
    /// - a member whose parameters changed since the last set is updated, its state
    ///   (flags set by operators or probes, `lbstatus`, errors, counters, requests in
    ///   flight) kept; flags of a changed `status` are set or cleared;
    /// - a member that vanished drains (see [`Self::with_drain`]), or is removed at once;
    ///   a draining member that comes back is in service again, its state kept;
    /// - members whose drain has ended are removed ([`Self::expire`]).
    ///
    /// A desired URL that a member not owned by this sync already has is skipped (the
    /// configuration or the operator wins); the same URL twice in one set counts once.
    /// Both are reported in the [`SyncReport`] and logged. The clock is tokio's, so a paused
    /// test clock drives drains.
    ///
    /// A drain ends only when `apply` or [`Self::expire`] runs after it: the adapters
    /// ([`Self::follow`], [`Self::follow_discover`](crate::discover::MemberSetSync::follow_discover))
    /// call `expire` on time; a caller of `apply` alone should call it at
    /// [`Self::next_expiry`].
    ///
    /// # Errors
    ///
    /// [`DiscoverError::Store`] if the store refused the change (nothing was changed).
    pub fn apply(
        &self,
        desired: impl IntoIterator<Item = MemberParams>,
    ) -> Result<SyncReport, DiscoverError> {
        let now = tokio::time::Instant::now().into_std();
        let mut report = SyncReport::default();
        let mut wanted: Vec<MemberParams> = Vec::new();
        let mut seen: HashSet<MemberUrl> = HashSet::new();
        let mut first_duplicate = None;
        for params in desired {
            if seen.insert(params.url.clone()) {
                wanted.push(params);
            } else {
                if report.duplicates == 0 {
                    first_duplicate = Some(params.url);
                }
                report.duplicates += 1;
            }
        }
        if let Some(url) = first_duplicate {
            // One line per set, whatever the source sends.
            tracing::warn!(
                balancer = %self.balancer_name(),
                member = %url,
                duplicates = report.duplicates,
                "discovery: the member set names members more than once; the first of each is used"
            );
        }
        let mut owned = self.owned.lock();
        // What changes in `owned`, in order (`None`: no longer ours), applied once the
        // store took the edit: a failed edit leaves both as they were.
        let mut changes: Vec<(MemberUrl, Option<Owned>)> = Vec::new();
        // Flag changes, made once the new snapshot is in (or none if the edit fails).
        let mut flags: Vec<(MemberId, StatusFlags, StatusFlags)> = Vec::new();
        let mut first_skipped = None;
        let result = self.store.edit_members(|set| {
            // Members removed behind the sync's back (the balancer-manager) are no longer
            // its own; the URLs of members it does not own (the configuration's, the
            // manager's) are usually few, looked up once per new member.
            let mut ours: HashSet<MemberId> = HashSet::with_capacity(owned.len());
            for (url, o) in owned.iter() {
                if set.member(o.id).is_some() {
                    ours.insert(o.id);
                } else {
                    changes.push((url.clone(), None));
                }
            }
            let live = |o: &&Owned| ours.contains(&o.id);
            let foreign: HashSet<MemberUrl> = set
                .members()
                .iter()
                .filter(|m| !ours.contains(&m.id()))
                .map(|m| m.params().url.clone())
                .collect();
            for params in wanted {
                if let Some(o) = owned.get(&params.url).filter(live) {
                    let returned = o.draining.is_some();
                    if let Some(drain) = o.draining {
                        report.returned += 1;
                        if drain.set_flag {
                            flags.push((o.id, StatusFlags::EMPTY, StatusFlags::DRAIN));
                        }
                    }
                    if o.desired == params {
                        report.unchanged += 1;
                        if returned {
                            let mut kept = o.clone();
                            kept.draining = None;
                            changes.push((params.url.clone(), Some(kept)));
                        }
                        continue;
                    }
                    let added = params.status.difference(o.desired.status);
                    let cleared = o.desired.status.difference(params.status);
                    set.update(o.id, params.clone())?;
                    flags.push((o.id, added, cleared));
                    report.updated += 1;
                    let updated = Owned {
                        id: o.id,
                        desired: params,
                        draining: None,
                    };
                    changes.push((updated.desired.url.clone(), Some(updated)));
                } else if foreign.contains(&params.url) {
                    if report.skipped == 0 {
                        first_skipped = Some(params.url);
                    }
                    report.skipped += 1;
                } else {
                    let id = set.add(params.clone())?;
                    report.added += 1;
                    let url = params.url.clone();
                    changes.push((
                        url,
                        Some(Owned {
                            id,
                            desired: params,
                            draining: None,
                        }),
                    ));
                }
            }
            for (url, o) in owned.iter() {
                if seen.contains(url) || !ours.contains(&o.id) {
                    continue;
                }
                match o.draining {
                    Some(drain) if drain.until > now => {}
                    drain if drain.is_some() || self.drain.is_zero() => {
                        set.remove(o.id)?;
                        report.removed += 1;
                        changes.push((url.clone(), None));
                    }
                    _ => {
                        let set_flag = !set
                            .member(o.id)
                            .is_some_and(|m| m.flags().contains(StatusFlags::DRAIN));
                        if set_flag {
                            flags.push((o.id, StatusFlags::DRAIN, StatusFlags::EMPTY));
                        }
                        let mut draining = o.clone();
                        draining.draining = Some(Drain {
                            until: now + self.drain,
                            set_flag,
                        });
                        report.draining += 1;
                        changes.push((url.clone(), Some(draining)));
                    }
                }
            }
            Ok::<_, ConfigError>(())
        });
        if let Err(e) = result {
            self.record(DiscoverError::Store(e.clone()));
            return Err(DiscoverError::Store(e));
        }
        for (url, change) in changes {
            match change {
                Some(o) => owned.insert(url, o),
                None => owned.remove(&url),
            };
        }
        let snapshot = self.store.load();
        for (id, insert, remove) in flags {
            if let Some(member) = snapshot.member(id) {
                member.state().insert_flags(insert);
                member.state().remove_flags(remove);
            }
        }
        drop(snapshot);
        self.note(&owned, &report);
        drop(owned);
        if let Some(url) = first_skipped {
            tracing::warn!(
                balancer = %self.balancer_name(),
                member = %url,
                skipped = report.skipped,
                "discovery: a configured or manager-added member has the URL of a discovered one; the discovered one is skipped"
            );
        }
        if report.changed() {
            tracing::info!(
                balancer = %self.balancer_name(),
                added = report.added,
                updated = report.updated,
                returned = report.returned,
                draining = report.draining,
                removed = report.removed,
                "discovery: member set applied"
            );
        }
        Ok(report)
    }

    /// Removes the members whose drain has ended, in one new snapshot; returns what it did.
    ///
    /// # Errors
    ///
    /// [`DiscoverError::Store`] if the store refused the change.
    pub fn expire(&self) -> Result<SyncReport, DiscoverError> {
        let now = tokio::time::Instant::now().into_std();
        let mut report = SyncReport::default();
        let mut owned = self.owned.lock();
        let due: Vec<MemberUrl> = owned
            .iter()
            .filter(|(_, o)| o.draining.is_some_and(|d| d.until <= now))
            .map(|(url, _)| url.clone())
            .collect();
        if due.is_empty() {
            return Ok(report);
        }
        let result = self.store.edit_members(|set| {
            for url in &due {
                if let Some(o) = owned.get(url) {
                    if set.member(o.id).is_some() {
                        set.remove(o.id)?;
                        report.removed += 1;
                    }
                }
            }
            Ok::<_, ConfigError>(())
        });
        if let Err(e) = result {
            self.record(DiscoverError::Store(e.clone()));
            return Err(DiscoverError::Store(e));
        }
        for url in &due {
            owned.remove(url);
        }
        self.note(&owned, &report);
        drop(owned);
        tracing::info!(
            balancer = %self.balancer_name(),
            removed = report.removed,
            "discovery: drained members removed"
        );
        Ok(report)
    }

    /// When the next drain ends (call [`Self::expire`] then), if a member is draining.
    #[must_use]
    pub fn next_expiry(&self) -> Option<Instant> {
        self.owned
            .lock()
            .values()
            .filter_map(|o| o.draining.map(|d| d.until))
            .min()
    }

    /// Whether this sync owns a member with this URL (draining or not).
    #[must_use]
    pub fn owns(&self, url: &MemberUrl) -> bool {
        self.owned.lock().contains_key(url)
    }

    /// Records a source's error: logged, counted, kept as the last error. The members stay
    /// as they are.
    pub(crate) fn record(&self, error: DiscoverError) {
        tracing::warn!(
            balancer = %self.balancer_name(),
            "discovery: {error}; the last good member set is kept"
        );
        self.status.errors.fetch_add(1, Ordering::Relaxed);
        *self.status.last_error.lock() = Some(Arc::new(error));
    }

    pub(crate) fn mark_ended(&self) {
        self.status.ended.store(true, Ordering::Relaxed);
        tracing::info!(
            balancer = %self.balancer_name(),
            "discovery: the source ended; its members stay as they are"
        );
    }

    fn note(&self, owned: &HashMap<MemberUrl, Owned>, report: &SyncReport) {
        self.status.applied.fetch_add(1, Ordering::Relaxed);
        self.status.members.store(owned.len(), Ordering::Relaxed);
        self.status.draining.store(
            owned.values().filter(|o| o.draining.is_some()).count(),
            Ordering::Relaxed,
        );
        *self.status.last_report.lock() = Some(report.clone());
    }

    fn balancer_name(&self) -> String {
        self.store.load().params().name.clone()
    }
}

impl fmt::Debug for MemberSetSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberSetSync")
            .field("balancer", &self.balancer_name())
            .field("drain", &self.drain)
            .field("members", &self.owned.lock().len())
            .finish_non_exhaustive()
    }
}

// ===== impl SyncHandle =====

impl SyncHandle {
    /// How many member sets were applied (and drains expired).
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.status.applied.load(Ordering::Relaxed)
    }

    /// How many errors the source (or the store) reported.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.status.errors.load(Ordering::Relaxed)
    }

    /// The last error, if any.
    #[must_use]
    pub fn last_error(&self) -> Option<Arc<DiscoverError>> {
        self.status.last_error.lock().clone()
    }

    /// What the last apply did.
    #[must_use]
    pub fn last_report(&self) -> Option<SyncReport> {
        self.status.last_report.lock().clone()
    }

    /// Whether the source ended (its members stay as they were).
    #[must_use]
    pub fn source_ended(&self) -> bool {
        self.status.ended.load(Ordering::Relaxed)
    }

    /// How many members the sync owns, draining ones included.
    #[must_use]
    pub fn members(&self) -> usize {
        self.status.members.load(Ordering::Relaxed)
    }

    /// How many of them are draining.
    #[must_use]
    pub fn draining(&self) -> usize {
        self.status.draining.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncHandle")
            .field("applied", &self.applied())
            .field("errors", &self.errors())
            .field("members", &self.members())
            .field("draining", &self.draining())
            .field("source_ended", &self.source_ended())
            .finish_non_exhaustive()
    }
}
