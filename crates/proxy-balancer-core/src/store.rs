//! The shared store of one balancer: one swappable snapshot, serialised writers.

use std::collections::HashSet;
use std::time::Instant;

use crate::budget::RetryBudget;
use crate::error::{ConfigError, PickError};
use crate::lbmethod::LbMethodKind;
use crate::member::{InFlight, Member, MemberId, MemberState};
use crate::outlier::Outliers;
use crate::params::{BalancerParams, MemberParams, MemberUrl};
use crate::snapshot::{BalancerSnapshot, PickRequest, Picked, Shared};
use crate::sync::{Arc, AtomicU64, SnapshotCell, WriterLock};

/// The state of one balancer, shared by every request and every editor.
///
/// Readers (every pick) do one lock-free snapshot load plus atomic operations on the
/// members' state. Writers (configuration changes, the manager) are serialised by a mutex
/// that no reader ever takes, build a new snapshot and swap it in; the next pick sees it.
/// A member's [`MemberState`] is carried from snapshot to snapshot, so its counters, flags
/// and in-flight requests are never reset by an edit of another member or of its own
/// parameters.
///
/// ```
/// use std::time::Instant;
/// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, PickRequest};
///
/// let now = Instant::now();
/// let store = BalancerStore::new(
///     BalancerParams::new("mycluster"),
///     [MemberParams::new("http://127.0.0.1:8001")?, MemberParams::new("http://127.0.0.1:8002")?],
///     now,
/// )?;
/// let picked = store.pick(&PickRequest::new(), now)?;
/// assert_eq!(picked.member().url(), "http://127.0.0.1:8001");
/// assert_eq!(picked.member().state().busy(), 1);
/// drop(picked);
///
/// // Reconfigure: the next pick sees it; counters carry over.
/// let id = store.snapshot().members()[1].id();
/// store.update_member(id, |m| m.set("loadfactor", "3"))??;
/// assert_eq!(store.snapshot().members()[0].state().elected(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BalancerStore {
    current: SnapshotCell<BalancerSnapshot>,
    writer: WriterLock,
    /// Written only under `writer`.
    next_id: parking_lot::Mutex<u32>,
    epoch: Instant,
    changes: Arc<AtomicU64>,
    /// Requests in flight on the members, counted while the lbmethod is bybusyness.
    inflight: Arc<InFlight>,
    /// Requests answered 503 because no member could take them (for metrics).
    unavailable: AtomicU64,
    /// Beyond Apache: the budget of `retry_idempotent`'s retries (`retrybudget*`).
    retry_budget: RetryBudget,
    /// Ejected members and panic picks (beyond Apache).
    outliers: Arc<Outliers>,
}

impl BalancerStore {
    /// A store holding a balancer with these parameters and members, in this order.
    /// `now` anchors the members' error times.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DuplicateMember`] when two members have the same URL.
    pub fn new(
        params: BalancerParams,
        members: impl IntoIterator<Item = MemberParams>,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let changes = Arc::new(AtomicU64::new(0));
        let inflight = Arc::new(InFlight::new(counts_in_flight(&params)));
        let outliers = Arc::new(Outliers::new(0));
        let mut built: Vec<Member> = Vec::new();
        // A set of the URLs so far: start-up stays linear in the members (a scan of `built`
        // per member took 38 s for 100 000 members).
        let mut urls: HashSet<MemberUrl> = HashSet::new();
        for (i, params) in members.into_iter().enumerate() {
            if !urls.insert(params.url.clone()) {
                return Err(ConfigError::DuplicateMember {
                    url: params.url.to_string(),
                });
            }
            let id = MemberId(u32::try_from(i).unwrap_or(u32::MAX));
            let state = Arc::new(MemberState::new_in(
                params.status,
                now,
                Arc::clone(&changes),
                Arc::clone(&inflight),
                Arc::clone(&outliers),
            ));
            built.push(Member::new(id, params, state));
        }
        let next = u32::try_from(built.len()).unwrap_or(u32::MAX);
        let retry_budget = RetryBudget::new(params.retry_budget, now);
        outliers.set_members(built.len());
        let shared = Shared {
            epoch: now,
            changes: Arc::clone(&changes),
            inflight: Arc::clone(&inflight),
            outliers: Arc::clone(&outliers),
        };
        Ok(Self {
            current: SnapshotCell::new(Arc::new(BalancerSnapshot::new(params, built, shared))),
            writer: WriterLock::default(),
            next_id: parking_lot::Mutex::new(next),
            epoch: now,
            changes,
            inflight,
            unavailable: AtomicU64::new(0),
            retry_budget,
            outliers,
        })
    }

    /// The current snapshot. Cheap (one atomic load); do not keep the guard across an
    /// `.await` — use [`BalancerStore::snapshot`] for that.
    #[cfg(not(loom))]
    pub fn load(&self) -> arc_swap::Guard<Arc<BalancerSnapshot>> {
        self.current.load()
    }

    /// The current snapshot, as an `Arc` that can be kept.
    #[must_use]
    pub fn snapshot(&self) -> Arc<BalancerSnapshot> {
        self.current.load_full()
    }

    /// Picks a member on the current snapshot: see [`BalancerSnapshot::pick`].
    ///
    /// # Errors
    ///
    /// [`PickError`] when no member can take the request.
    pub fn pick(&self, request: &PickRequest<'_>, now: Instant) -> Result<Picked, PickError> {
        self.current.load().pick(request, now)
    }

    /// Applies `edit` to a copy of the current state and swaps the result in.
    fn write<T>(
        &self,
        edit: impl FnOnce(
            &BalancerSnapshot,
            &mut BalancerParams,
            &mut Vec<Member>,
        ) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        self.write_if(|current, params, members| {
            edit(current, params, members).map(|out| (out, true))
        })
    }

    /// [`Self::write`], publishing the result only when `edit` says it changed something.
    fn write_if<T, E>(
        &self,
        edit: impl FnOnce(
            &BalancerSnapshot,
            &mut BalancerParams,
            &mut Vec<Member>,
        ) -> Result<(T, bool), E>,
    ) -> Result<T, E> {
        let _serialised = self.writer.lock();
        let current = self.current.load_full();
        let mut params = current.params().clone();
        let mut members = current.members().to_vec();
        let (out, changed) = edit(&current, &mut params, &mut members)?;
        if !changed {
            return Ok(out);
        }
        // Before the snapshot is published: its picks see the count's new mode.
        self.inflight.set_tracking(counts_in_flight(&params));
        self.outliers.set_members(members.len());
        let shared = Shared {
            epoch: self.epoch,
            changes: Arc::clone(&self.changes),
            inflight: Arc::clone(&self.inflight),
            outliers: Arc::clone(&self.outliers),
        };
        self.current
            .store(Arc::new(BalancerSnapshot::new(params, members, shared)));
        // Picks still running on the old snapshot see its cycle ended and scan; its picks
        // are in `lbstatus` from here on.
        current.retire();
        self.changes.fetch_add(1, crate::sync::Ordering::Release);
        Ok(out)
    }

    /// Edits the member set in one step: every addition, update and removal `edit` makes
    /// is published as one new snapshot (none if it changed nothing; none either if it
    /// returns an error, so a batch applies whole or not at all). Members keep their
    /// [`MemberState`] — flags, counters, requests in flight — across the edit; a removed
    /// member's requests in flight finish normally. Discovery (a member set that comes and
    /// goes as a whole) uses this; [`Self::add_member`], [`Self::update_member`] and
    /// [`Self::remove_member`] are one-change edits.
    ///
    /// ```
    /// use std::time::Instant;
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
    ///
    /// let now = Instant::now();
    /// let store = BalancerStore::new(
    ///     BalancerParams::new("app"),
    ///     [MemberParams::new("http://a")?, MemberParams::new("http://b")?],
    ///     now,
    /// )?;
    /// let before = store.snapshot();
    /// let a = before.members()[0].id();
    /// let b = before.members()[1].id();
    /// store.edit_members(|set| {
    ///     set.remove(a)?;
    ///     let mut params = set.member(b).expect("b is a member").params().clone();
    ///     params.set("loadfactor", "2")?;
    ///     set.update(b, params)?;
    ///     set.add(MemberParams::new("http://c")?)?;
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })?;
    /// let after = store.snapshot();
    /// let urls: Vec<&str> = after.members().iter().map(|m| m.url()).collect();
    /// assert_eq!(urls, ["http://b", "http://c"]);
    /// // b kept its state: the same counters, seen through both snapshots.
    /// assert!(std::ptr::eq(before.members()[1].state(), after.members()[0].state()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Apache
    ///
    /// A changed load factor sets every member's `lbstatus` to its own load factor, as the
    /// balancer-manager does.
    ///
    /// # Errors
    ///
    /// The error `edit` returns; [`MemberSetEdit`]'s methods return [`ConfigError`]s that
    /// convert into it.
    pub fn edit_members<T, E>(
        &self,
        edit: impl FnOnce(&mut MemberSetEdit<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<ConfigError>,
    {
        let (out, lf_changed) = self.write_if::<_, E>(|_, _, members| {
            let mut set = MemberSetEdit {
                store: self,
                members,
                changed: false,
                lf_changed: false,
                urls: None,
            };
            let out = edit(&mut set)?;
            Ok(((out, set.lf_changed), set.changed))
        })?;
        if lf_changed {
            for m in self.current.load().members() {
                m.state().set_lbstatus(m.lbf());
            }
        }
        Ok(out)
    }

    /// Adds a member at the end of the configuration order. It starts with its configured
    /// `status` flags and fresh counters.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DuplicateMember`] if a member already has this URL.
    pub fn add_member(&self, params: MemberParams) -> Result<MemberId, ConfigError> {
        self.edit_members(|set| set.add(params))
    }

    /// Edits a member's parameters; its state and counters carry over. `status` is not
    /// re-applied: flags change through [`MemberState::insert_flags`] and
    /// [`MemberState::remove_flags`]. The closure's result is returned, so it can be a
    /// `Result` from [`MemberParams::set`].
    ///
    /// # Apache
    ///
    /// A changed load factor sets every member's `lbstatus` to its own load factor, as the
    /// balancer-manager does.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownMember`], or [`ConfigError::DuplicateMember`] if the new URL is
    /// another member's.
    pub fn update_member<T>(
        &self,
        id: MemberId,
        edit: impl FnOnce(&mut MemberParams) -> T,
    ) -> Result<T, ConfigError> {
        self.edit_members(|set| {
            let mut params = set
                .member(id)
                .ok_or(ConfigError::UnknownMember { id })?
                .params()
                .clone();
            let out = edit(&mut params);
            set.update(id, params)?;
            Ok(out)
        })
    }

    /// Removes a member. Requests in flight on it finish normally.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownMember`].
    pub fn remove_member(&self, id: MemberId) -> Result<MemberParams, ConfigError> {
        self.edit_members(|set| set.remove(id))
    }

    /// Edits the balancer's parameters. The closure's result is returned.
    ///
    /// # Apache
    ///
    /// Changing the lbmethod resets every member's `lbstatus` to 0.
    pub fn update_params<T>(&self, edit: impl FnOnce(&mut BalancerParams) -> T) -> T {
        let result = self.write(|current, params, _| {
            let out = edit(params);
            // Under the writers' lock, so the budget follows the last edit published.
            self.retry_budget.configure(params.retry_budget.as_ref());
            Ok((out, params.lb_method != current.params().lb_method))
        });
        match result {
            Ok((out, method_changed)) => {
                if method_changed {
                    self.reset_lb();
                }
                out
            }
            Err(_) => unreachable!("invariant: editing parameters cannot fail"),
        }
    }

    /// Counts a request answered 503 because no member could take it (the balancer service
    /// calls this).
    pub fn note_unavailable(&self) {
        self.unavailable
            .fetch_add(1, crate::sync::Ordering::Relaxed);
    }

    /// Requests answered 503 because no member could take them.
    #[must_use]
    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(crate::sync::Ordering::Relaxed)
    }

    /// Beyond Apache: the budget of `retry_idempotent`'s retries, following the balancer's
    /// `retrybudget`, `retrybudgetmin` and `retrybudgetwindow` (its counters of retries
    /// allowed and refused carry on across edits).
    ///
    /// ```
    /// use std::time::Instant;
    /// use proxy_balancer_core::{BalancerParams, BalancerStore};
    ///
    /// let now = Instant::now();
    /// let store = BalancerStore::new(BalancerParams::new("app"), [], now)?;
    /// assert!(store.retry_budget().is_enabled()); // on by default: 20 % + 10/s over 10 s
    /// assert!(store.retry_budget().withdraw(now)); // the floor allows it
    /// store.update_params(|p| p.set("retrybudget", "Off"))?;
    /// assert!(!store.retry_budget().is_enabled());
    /// assert_eq!(store.retry_budget().allowed(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.retry_budget
    }

    /// Beyond Apache: how many members are ejected now by outlier ejection (flag
    /// [`StatusFlags::EJECTED`](crate::StatusFlags::EJECTED)); never more than
    /// [`OutlierParams::max_ejected`](crate::OutlierParams::max_ejected) of the members.
    #[must_use]
    pub fn ejected(&self) -> usize {
        usize::try_from(self.outliers.ejected()).unwrap_or(usize::MAX)
    }

    /// Beyond Apache: how many balanced picks were made in panic (the `panic=` threshold:
    /// see [`BalancerSnapshot::in_panic`]).
    #[must_use]
    pub fn panics(&self) -> u64 {
        self.outliers.panics.load(crate::sync::Ordering::Relaxed)
    }

    /// [`BalancerSnapshot::settle`] on the current snapshot: folds the byrequests fast
    /// path's picks into `lbstatus`, e.g. before showing it.
    pub fn settle(&self) {
        self.current.load().settle();
    }

    /// Resets every member's `lbstatus` to 0, starting the lbmethod's cycle afresh (the
    /// manager's reset). Busy counts are left alone: they count requests still in flight.
    pub fn reset_lb(&self) {
        let current = self.current.load();
        current.settle();
        for m in current.members() {
            m.state().set_lbstatus(0);
        }
    }
}

/// The member set being edited by [`BalancerStore::edit_members`]: a copy of the current
/// members, published as one snapshot when the edit returns `Ok`.
pub struct MemberSetEdit<'a> {
    store: &'a BalancerStore,
    members: &'a mut Vec<Member>,
    /// Whether anything was added, updated or removed (else nothing is published).
    changed: bool,
    /// Whether a load factor changed (then every `lbstatus` is reset, as the manager does).
    lf_changed: bool,
    /// The members' URLs, built on the first check for a duplicate URL: a check is then
    /// one lookup, so a batch of K additions to N members costs O(N + K), not O(N × K)
    /// (10 000 discovered members took 0.5 s).
    urls: Option<HashSet<MemberUrl>>,
}

impl MemberSetEdit<'_> {
    /// The members as edited so far, in configuration order.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        self.members
    }

    /// The member with this id, as edited so far.
    #[must_use]
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.position(id).ok().map(|i| &self.members[i])
    }

    /// The member with this URL, as edited so far.
    #[must_use]
    pub fn member_by_url(&self, url: &MemberUrl) -> Option<&Member> {
        self.members.iter().find(|m| &m.params().url == url)
    }

    fn position(&self, id: MemberId) -> Result<usize, ConfigError> {
        // Members stay in ascending id order: additions get higher ids and go last.
        self.members
            .binary_search_by_key(&id, Member::id)
            .map_err(|_| ConfigError::UnknownMember { id })
    }

    /// The members' URLs, built on the first check for a duplicate.
    fn urls(&mut self) -> &mut HashSet<MemberUrl> {
        let members = &*self.members;
        self.urls
            .get_or_insert_with(|| members.iter().map(|m| m.params().url.clone()).collect())
    }

    /// Adds a member at the end of the configuration order, with its configured `status`
    /// flags and fresh counters; returns its id.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DuplicateMember`] if a member already has this URL.
    pub fn add(&mut self, params: MemberParams) -> Result<MemberId, ConfigError> {
        if self.urls().contains(&params.url) {
            return Err(ConfigError::DuplicateMember {
                url: params.url.to_string(),
            });
        }
        let mut next = self.store.next_id.lock();
        let id = MemberId(*next);
        *next = next.saturating_add(1);
        // Added to a running store: its slow start ramps from its first pick.
        let state = Arc::new(
            MemberState::new_in(
                params.status,
                self.store.epoch,
                Arc::clone(&self.store.changes),
                Arc::clone(&self.store.inflight),
                Arc::clone(&self.store.outliers),
            )
            .added(),
        );
        self.urls().insert(params.url.clone());
        self.members.push(Member::new(id, params, state));
        self.changed = true;
        Ok(id)
    }

    /// Replaces a member's parameters; its state (flags, counters, requests in flight)
    /// carries over. `status` is not re-applied: flags change through
    /// [`MemberState::insert_flags`] and [`MemberState::remove_flags`]. Returns the
    /// parameters it had.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownMember`], or [`ConfigError::DuplicateMember`] if the new URL is
    /// another member's.
    pub fn update(
        &mut self,
        id: MemberId,
        params: MemberParams,
    ) -> Result<MemberParams, ConfigError> {
        let index = self.position(id)?;
        let moved = params.url != self.members[index].params().url;
        if moved && self.urls().contains(&params.url) {
            return Err(ConfigError::DuplicateMember {
                url: params.url.to_string(),
            });
        }
        let old = &self.members[index];
        if params.load_factor != old.params().load_factor {
            self.lf_changed = true;
        }
        let before = old.params().clone();
        let state = Arc::clone(old.state_arc());
        if moved {
            let urls = self.urls();
            urls.remove(&before.url);
            urls.insert(params.url.clone());
        }
        self.members[index] = Member::new(id, params, state);
        self.changed = true;
        Ok(before)
    }

    /// Removes a member; returns its parameters. Requests in flight on it finish normally.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownMember`].
    pub fn remove(&mut self, id: MemberId) -> Result<MemberParams, ConfigError> {
        let index = self.position(id)?;
        self.changed = true;
        let removed = self.members.remove(index);
        // An ejected member leaves: its slot under `ejectmax` is free again, and the
        // failures of its requests still in flight eject it no more.
        removed.state().left_store();
        let params = removed.params().clone();
        if let Some(urls) = self.urls.as_mut() {
            urls.remove(&params.url);
        }
        Ok(params)
    }
}

impl std::fmt::Debug for MemberSetEdit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSetEdit")
            .field("members", &self.members)
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

/// Whether a balancer with these parameters counts its requests in flight ([`InFlight`]):
/// only bybusyness reads the count.
fn counts_in_flight(params: &BalancerParams) -> bool {
    matches!(params.lb_method, LbMethodKind::ByBusyness)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::tests::{member, store};

    #[expect(clippy::disallowed_methods, reason = "tests need a starting instant")]
    fn t0() -> Instant {
        Instant::now()
    }

    fn urls(s: &BalancerStore) -> Vec<String> {
        s.snapshot()
            .members()
            .iter()
            .map(|m| m.url().to_owned())
            .collect()
    }

    #[test]
    fn edit_members_applies_a_batch_in_one_snapshot_keeping_states() {
        let now = t0();
        let s = store(
            vec![member('a', &[]), member('b', &[]), member('c', &[])],
            &[],
            now,
        );
        let before = s.snapshot();
        let [a, b, c] = [0, 1, 2].map(|i| before.members()[i].id());
        let held = s.pick(&PickRequest::new(), now).unwrap();
        assert_eq!(held.member().id(), a);
        let c_held = s.snapshot().member(c).unwrap().begin_request();
        before.members()[1]
            .state()
            .insert_flags(crate::StatusFlags::DISABLED);
        before.members()[2].state().set_lbstatus(7);

        let (d, e) = s
            .edit_members(|set| {
                assert_eq!(set.members().len(), 3);
                assert_eq!(set.remove(a)?.url.as_str(), "http://a");
                let d = set.add(member('d', &[]))?;
                let e = set.add(member('e', &[]))?;
                let old = set.update(c, member('c', &[("route", "r1")]))?;
                assert_eq!(old.route, None);
                Ok::<_, ConfigError>((d, e))
            })
            .unwrap();
        let after = s.snapshot();
        assert_eq!(urls(&s), ["http://b", "http://c", "http://d", "http://e"]);
        // New ids: fresh, increasing (the snapshot's lookups need ascending ids).
        assert!(c < d && d < e, "{c:?} {d:?} {e:?}");
        let ids: Vec<MemberId> = after.members().iter().map(Member::id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // Kept members keep their state, the same Arc.
        assert!(std::ptr::eq(
            before.members()[1].state(),
            after.member(b).unwrap().state()
        ));
        assert!(after
            .member(b)
            .unwrap()
            .flags()
            .contains(crate::StatusFlags::DISABLED));
        let c_now = after.member(c).unwrap();
        assert_eq!(c_now.route(), Some("r1"));
        assert_eq!(c_now.state().busy(), 1, "in flight across the edit");
        // No load factor changed: lbstatus is not reset.
        assert_eq!(c_now.state().lbstatus(), 7);
        // New members start fresh, with their status.
        assert_eq!(after.member(d).unwrap().state().elected(), 0);
        // The removed member's request finishes on its own state.
        assert_eq!(held.member().state().busy(), 1);
        drop(held);
        drop(c_held);
        assert_eq!(after.member(c).unwrap().state().busy(), 0);
        // d and e are picked next: the new snapshot is the one picks see.
        let picked = s.pick(&PickRequest::new(), now).unwrap();
        assert_ne!(picked.member().id(), a);
    }

    #[test]
    fn edit_members_that_changes_nothing_publishes_nothing() {
        let now = t0();
        let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
        let before = s.snapshot();
        let n = s
            .edit_members(|set| Ok::<_, ConfigError>(set.members().len()))
            .unwrap();
        assert_eq!(n, 2);
        assert!(Arc::ptr_eq(&before, &s.snapshot()));
    }

    #[test]
    fn a_failed_edit_publishes_nothing() {
        let now = t0();
        let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
        let before = s.snapshot();
        let a = before.members()[0].id();
        let err = s
            .edit_members(|set| {
                set.remove(a)?;
                set.add(member('c', &[]))?;
                set.remove(MemberId(99))
            })
            .unwrap_err();
        assert_eq!(err, ConfigError::UnknownMember { id: MemberId(99) });
        assert!(Arc::ptr_eq(&before, &s.snapshot()));
        assert_eq!(urls(&s), ["http://a", "http://b"]);
    }

    #[test]
    fn member_set_edit_finds_members_and_refuses_bad_changes() {
        let now = t0();
        let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
        let snap = s.snapshot();
        let [a, b] = [0, 1].map(|i| snap.members()[i].id());
        s.edit_members(|set| {
            assert_eq!(set.member(b).map(Member::url), Some("http://b"));
            assert!(set.member(MemberId(99)).is_none());
            let url = MemberUrl::new("http://a").unwrap();
            assert_eq!(set.member_by_url(&url).map(Member::id), Some(a));
            let other = MemberUrl::new("http://z").unwrap();
            assert!(set.member_by_url(&other).is_none());
            assert_eq!(
                set.add(member('a', &[])),
                Err(ConfigError::DuplicateMember {
                    url: "http://a".into()
                })
            );
            // A member may keep its own URL, not take another's.
            assert!(set.update(a, member('a', &[])).is_ok());
            assert_eq!(
                set.update(a, member('b', &[])),
                Err(ConfigError::DuplicateMember {
                    url: "http://b".into()
                })
            );
            assert_eq!(
                set.update(MemberId(99), member('z', &[])),
                Err(ConfigError::UnknownMember { id: MemberId(99) })
            );
            assert_eq!(
                set.remove(MemberId(99)),
                Err(ConfigError::UnknownMember { id: MemberId(99) })
            );
            let debug = format!("{set:?}");
            assert!(
                debug.contains("MemberSetEdit") && debug.contains("changed: true"),
                "{debug}"
            );
            Ok::<_, ConfigError>(())
        })
        .unwrap();
        assert_eq!(urls(&s), ["http://a", "http://b"]);
    }

    #[test]
    fn a_changed_load_factor_in_a_batch_resets_every_lbstatus() {
        let now = t0();
        let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
        let snap = s.snapshot();
        let a = snap.members()[0].id();
        for m in snap.members() {
            m.state().set_lbstatus(-5);
        }
        // An addition alone resets nothing.
        s.edit_members(|set| set.add(member('c', &[])).map(drop))
            .unwrap();
        assert!(s
            .snapshot()
            .members()
            .iter()
            .take(2)
            .all(|m| m.state().lbstatus() == -5));
        s.edit_members(|set| set.update(a, member('a', &[("loadfactor", "3")])).map(drop))
            .unwrap();
        let lbstatus: Vec<i64> = s
            .snapshot()
            .members()
            .iter()
            .map(|m| m.state().lbstatus())
            .collect();
        assert_eq!(lbstatus, [300, 100, 100]);
    }

    #[test]
    fn the_url_index_follows_additions_moves_and_removals() {
        let now = t0();
        let s = store(vec![member('a', &[]), member('b', &[])], &[], now);
        let snap = s.snapshot();
        let [a, b] = [0, 1].map(|i| snap.members()[i].id());
        let url = |c: char| MemberUrl::new(&format!("http://{c}")).unwrap();
        s.edit_members(|set| {
            assert!(set.urls.is_none(), "built on first need");
            // b moves to z: b's URL is free, z's is taken.
            set.update(b, member('z', &[]))?;
            assert_eq!(
                set.update(a, member('z', &[])),
                Err(ConfigError::DuplicateMember {
                    url: "http://z".into()
                })
            );
            let b2 = set.add(member('b', &[]))?;
            // a goes: its URL is free again within the same batch.
            set.remove(a)?;
            let a2 = set.add(member('a', &[]))?;
            assert!(set.add(member('z', &[])).is_err());
            assert!(set.add(member('a', &[])).is_err());
            let want: HashSet<MemberUrl> = ['z', 'b', 'a'].into_iter().map(url).collect();
            assert_eq!(set.urls.as_ref(), Some(&want));
            assert_eq!(set.member_by_url(&url('b')).map(Member::id), Some(b2));
            assert_eq!(set.member_by_url(&url('a')).map(Member::id), Some(a2));
            Ok::<_, ConfigError>(())
        })
        .unwrap();
        assert_eq!(urls(&s), ["http://z", "http://b", "http://a"]);
    }
}
