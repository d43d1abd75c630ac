//! The immutable view of a balancer that every pick reads, and the pick itself.

use std::fmt;
use std::time::Instant;

use crate::error::PickError;
use crate::flags::StatusFlags;
use crate::lbmethod::LbMethodKind;
use crate::lbmethod::{hash, Candidates};
use crate::member::{BusyGuard, Hot, InFlight, Member, MemberId};
use crate::outlier::Outliers;
use crate::params::{BalancerParams, LbSet};
use crate::ring::{Ring, RingMember};
use crate::schedule::Schedule;
use crate::sync::{Arc, AtomicU64, Ordering};

/// What every snapshot of one store shares: the epoch of error times, the counter of flag
/// changes, the count of requests in flight and the outlier counts.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) epoch: Instant,
    pub(crate) changes: Arc<AtomicU64>,
    pub(crate) inflight: Arc<InFlight>,
    pub(crate) outliers: Arc<Outliers>,
}

/// How a set takes part in a balanced pick.
enum SetPlan {
    /// Its usable regular members plus up to `spare_limit` spares; its standbys if that
    /// yields nothing. In `panic`, its regular members in `E`, `C` or `J` too.
    Regular {
        spare_limit: usize,
        standbys: bool,
        panic: bool,
    },
    /// Only its standbys.
    Standby,
    /// Nothing usable; `panic`: a panic threshold is set and the set has regular members
    /// that only `E`, `C` or `J` keep out, none of them healthy (the last resort when no
    /// set has a usable member).
    Nothing { panic: bool },
}

/// A set's members as the panic threshold counts them.
#[derive(Clone, Copy, Default)]
struct SetHealth {
    /// Usable regular members (tried or not).
    healthy: usize,
    /// Regular members that are neither disabled, stopped nor draining.
    eligible: usize,
}

/// What a pick needs to know about the request.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct PickRequest<'a> {
    /// The session route found in the request (cookie or URL), without the session id:
    /// `node1` for `JSESSIONID=ABC.node1`. Finding it is the sticky layer's job.
    pub route: Option<&'a str>,
    /// Members this request already tried; they are not picked again.
    pub tried: &'a [MemberId],
    /// The request's key for request-aware lbmethods (`lbmethod=hash`): the bytes the
    /// balancer's `hashkey` names, taken from the request without a copy. `None`: the
    /// request has none, and `hash` balances it as byrequests would.
    pub key: Option<&'a [u8]>,
}

impl<'a> PickRequest<'a> {
    /// A request without a session route that tried no member yet.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            route: None,
            tried: &[],
            key: None,
        }
    }

    /// Sets the request's key (see [`PickRequest::key`]).
    #[must_use]
    pub const fn with_key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the session route.
    #[must_use]
    pub const fn with_route(mut self, route: &'a str) -> Self {
        self.route = Some(route);
        self
    }

    /// Sets the members already tried.
    #[must_use]
    pub const fn with_tried(mut self, tried: &'a [MemberId]) -> Self {
        self.tried = tried;
        self
    }
}

/// The member a pick chose. The request counts as busy on it until this is dropped.
#[derive(Debug)]
#[must_use = "dropping the pick releases the member's busy count at once"]
pub struct Picked {
    busy: BusyGuard,
    position: usize,
    sticky: bool,
    route_changed: bool,
}

impl Picked {
    /// The chosen member.
    #[must_use]
    pub fn member(&self) -> &Member {
        self.busy.member()
    }

    /// The chosen member's position in the snapshot that made the pick
    /// ([`BalancerSnapshot::members`]), e.g. to find a service kept beside each member.
    #[must_use]
    pub const fn position(&self) -> usize {
        self.position
    }

    /// Whether the member was found through the session route (a sticky hit, possibly
    /// through `redirect`).
    #[must_use]
    pub const fn is_sticky(&self) -> bool {
        self.sticky
    }

    /// Apache's `BALANCER_ROUTE_CHANGED`: the request should get a new route cookie. True
    /// for every balanced request of a balancer with `stickysession` and for a sticky hit
    /// through `redirect`; false for a plain sticky hit.
    #[must_use]
    pub const fn route_changed(&self) -> bool {
        self.route_changed
    }

    /// The busy count of this request, to keep while the response is in flight.
    pub fn into_busy_guard(self) -> BusyGuard {
        self.busy
    }
}

/// One immutable view of a balancer: its parameters and members in configuration order.
///
/// Snapshots are replaced whole when the configuration changes; the members' flags and
/// counters live on in their [`MemberState`](crate::MemberState), shared by every snapshot.
pub struct BalancerSnapshot {
    params: BalancerParams,
    members: Box<[Member]>,
    /// What scans read, one entry per member, in the same order.
    hot: Box<[Hot]>,
    /// The lbsets in ascending order, each with its members' indices in config order.
    sets: Box<[(LbSet, Box<[u32]>)]>,
    /// `lbmethod=hash`: each lbset's table, in the order of `sets`; empty otherwise.
    rings: Box<[Ring]>,
    shared: Shared,
    /// The byrequests cycle, for balancers using byrequests, and for bybusyness when no
    /// request is in flight (every member ties, so its pick is a byrequests round).
    schedule: Option<Schedule>,
    /// Whether the lbmethod is bybusyness: the cycle serves only while nothing is in flight.
    busyness: bool,
}

impl BalancerSnapshot {
    pub(crate) fn new(params: BalancerParams, members: Vec<Member>, shared: Shared) -> Self {
        // One pass over the members (not one per lbset), in increasing lbset order.
        let mut by_set: std::collections::BTreeMap<LbSet, Vec<u32>> =
            std::collections::BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            by_set
                .entry(m.params().lb_set)
                .or_default()
                .push(u32::try_from(i).expect("invariant: fewer than 2^32 members"));
        }
        let sets: Box<[(LbSet, Box<[u32]>)]> = by_set
            .into_iter()
            .map(|(set, indices)| (set, indices.into_boxed_slice()))
            .collect();
        for m in &members {
            m.state().set_rtt_decay(params.ewma_decay); // peak-EWMA's `ewmadecay`
        }
        let rings = if matches!(params.lb_method, LbMethodKind::Hash) {
            sets.iter()
                .map(|(_, indices)| {
                    let ring_members: Vec<RingMember<'_>> = indices
                        .iter()
                        .map(|&i| {
                            let m = &members[i as usize];
                            RingMember {
                                position: i,
                                url: &m.params().url,
                                lbf: m.params().load_factor.lbf(),
                            }
                        })
                        .collect();
                    Ring::new(params.hash_ring, &ring_members)
                })
                .collect()
        } else {
            Box::default()
        };
        let busyness = matches!(params.lb_method, LbMethodKind::ByBusyness);
        let schedule =
            (busyness || matches!(params.lb_method, LbMethodKind::ByRequests)).then(Schedule::new);
        Self {
            busyness,
            params,
            hot: members.iter().map(Hot::of).collect(),
            members: members.into_boxed_slice(),
            sets,
            rings,
            shared,
            schedule,
        }
    }

    /// Ends this snapshot's byrequests cycle for good, folding its picks into `lbstatus`.
    /// Called by the store once a newer snapshot has replaced this one.
    pub(crate) fn retire(&self) {
        if let Some(s) = &self.schedule {
            s.retire(&self.hot);
        }
    }

    /// Folds the picks of the byrequests fast path into the members' `lbstatus`.
    ///
    /// With byrequests, steady traffic is served from a precomputed cycle (see
    /// [`MemberState::lbstatus`](crate::MemberState::lbstatus)) whose picks reach the
    /// `lbstatus` counters only when the cycle ends. Call this before reading `lbstatus`
    /// for display; picks are not affected.
    pub fn settle(&self) {
        if let Some(s) = &self.schedule {
            s.deactivate(&self.hot);
        }
    }

    /// The hash table of the lbset at `set` (in ascending lbset order).
    #[cfg(test)]
    pub(crate) fn ring(&self, set: usize) -> Option<&Ring> {
        self.rings.get(set)
    }

    /// The snapshot's members and their hot state, as a pick reads them.
    #[cfg(test)]
    pub(crate) fn hot_members(&self) -> (&[Member], &[Hot]) {
        (&self.members, &self.hot)
    }

    /// Whether the byrequests fast path is serving picks now.
    #[cfg(test)]
    pub(crate) fn fast_path_active(&self) -> bool {
        self.schedule.as_ref().is_some_and(Schedule::is_serving)
    }

    /// Whether every candidate ties for the lbmethod, so that a plain pick is a byrequests
    /// round: always for byrequests; for bybusyness when no request is in flight on any
    /// member (every busy count is 0), which the store's count tells in one load once it is
    /// trusted.
    fn all_tied(&self) -> bool {
        if !self.busyness {
            return true;
        }
        let inflight = &self.shared.inflight;
        (inflight.is_trusted() || inflight.verify(self.hot.iter().map(|h| &*h.state)))
            && inflight.count() == 0
    }

    /// The store's count of requests in flight.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn shared_inflight(&self) -> &InFlight {
        &self.shared.inflight
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.shared.epoch).as_nanos())
            .unwrap_or(u64::MAX)
    }

    /// The balancer's parameters.
    #[must_use]
    pub fn params(&self) -> &BalancerParams {
        &self.params
    }

    /// The members in configuration order.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this id.
    #[must_use]
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        // Members stay in the order they were added, which is ascending id order.
        self.members
            .binary_search_by_key(&id, Member::id)
            .ok()
            .map(|i| &self.members[i])
    }

    /// The member with this URL.
    #[must_use]
    pub fn member_by_url(&self, url: &str) -> Option<&Member> {
        let url = crate::MemberUrl::new(url).ok()?;
        self.members.iter().find(|m| m.params().url == url)
    }

    /// How many times a request may fail over after its first try: `maxattempts`, or
    /// Apache's default of members − 1 (0 with a single member).
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.params.max_attempts.unwrap_or_else(|| {
            u32::try_from(self.members.len().saturating_sub(1)).unwrap_or(u32::MAX)
        })
    }

    /// Chooses a member for a request, as Apache's mod_proxy_balancer does, and counts the
    /// request as busy on it.
    ///
    /// In order: forced recovery when every member is in error (`forcerecovery`); the
    /// session route, if any (its member if usable, else the member its `redirect` names;
    /// with `nofailover=On` an unusable route member is an error); else the balanced pick:
    /// the lowest lbset with a usable member, its usable regular members plus one usable hot
    /// spare for each unusable regular member, or its hot standbys when that is empty, and
    /// the lbmethod chooses among them. Draining members are only reached through their
    /// route; members in `request.tried` are skipped; a member in error is tried again once
    /// its `retry` has passed since `now`.
    ///
    /// Beyond Apache: an ejected member (`J`) is back once its ejection time has passed
    /// at `now`; with `panic=P`, an lbset with fewer than P % of its regular members
    /// usable is balanced over as if its members in `E`, `C` or `J` were usable (see
    /// [`Self::in_panic`]); members ramping in slow start weigh less.
    ///
    /// Lock-free: reads of atomics and atomic additions only.
    ///
    /// # Errors
    ///
    /// [`PickError`] when no member can take the request; the balancer answers 503.
    pub fn pick(&self, request: &PickRequest<'_>, now: Instant) -> Result<Picked, PickError> {
        if self.members.is_empty() {
            return Err(PickError::Empty);
        }
        let route = request.route.filter(|r| !r.is_empty());
        let plain = route.is_none() && request.tried.is_empty();
        let changes = self.shared.changes.load(Ordering::Acquire);
        // Taken before the pick: a request that starts meanwhile is concurrent with it.
        let tied = plain && self.all_tied();
        if let Some(schedule) = &self.schedule {
            if tied {
                if let Some(index) = schedule.try_pick(&self.hot, changes, self.nanos(now)) {
                    let sticky_configured = self.params.sticky_session.is_some();
                    return Ok(self.chosen_at(index as usize, false, sticky_configured));
                }
            } else {
                schedule.reset_streak();
            }
            schedule.deactivate(&self.hot);
        }
        // lbmethod=hash: the member at the key's slot when the full pick could only choose
        // it (see `hash::fast_index`), without the O(N) scan of the lbsets. Not with a panic
        // threshold: the full pick counts its panic picks.
        let counts_panics = self.params.panic_threshold.is_some();
        if let (None, Some(key), Some(ring), false) =
            (route, request.key, self.rings.first(), counts_panics)
        {
            if let Some(index) = hash::fast_index(&self.hot, ring, key, request.tried, now) {
                return Ok(self.chosen_at(index, false, self.params.sticky_session.is_some()));
            }
        }
        self.force_recovery(now);
        if let Some(route) = route {
            if let Some((member, redirected)) = self.find_route_member(route, request.tried, now, 1)
            {
                self.params
                    .lb_method
                    .account_sticky(&self.members, member, now);
                return Ok(self.chosen(member, true, redirected));
            }
            if self.params.no_failover && self.members.iter().any(|m| m.route() == Some(route)) {
                return Err(PickError::RouteUnusable {
                    route: route.to_owned(),
                });
            }
        }
        let member = self
            .balance(request.tried, request.key, now)
            .ok_or(PickError::AllUnusable)?;
        if let (Some(schedule), true) = (&self.schedule, tied) {
            schedule.note_scan_pick(&self.hot, || self.plain_candidates(now), changes);
        }
        Ok(self.chosen(member, false, self.params.sticky_session.is_some()))
    }

    fn chosen(&self, member: &Member, sticky: bool, route_changed: bool) -> Picked {
        let position = self
            .members
            .binary_search_by_key(&member.id(), Member::id)
            .expect("invariant: a picked member is in its snapshot");
        self.chosen_at(position, sticky, route_changed)
    }

    fn chosen_at(&self, position: usize, sticky: bool, route_changed: bool) -> Picked {
        Picked {
            busy: self.members[position].elect(&self.shared.inflight),
            position,
            sticky,
            route_changed,
        }
    }

    /// The candidates of a plain balanced pick (no route, nothing tried) as member indices,
    /// and the earliest end of a retry window: what a byrequests cycle is built from.
    fn plain_candidates(&self, now: Instant) -> Option<(Vec<u32>, u64)> {
        let mut candidates = None;
        for (_, indices) in self.sets.iter() {
            match self.plan_set(indices, &[], now) {
                // A cycle models no panic: the scan serves it.
                SetPlan::Regular { panic: true, .. } => return None,
                SetPlan::Regular { spare_limit, .. } => {
                    candidates = Some(Candidates::regular(
                        (&self.members, &self.hot),
                        indices,
                        spare_limit,
                        &[],
                        now,
                    ));
                    break;
                }
                SetPlan::Standby => {
                    candidates = Some(Candidates::standby(
                        (&self.members, &self.hot),
                        indices,
                        &[],
                        now,
                    ));
                    break;
                }
                SetPlan::Nothing { .. } => {}
            }
        }
        let indices = candidates?.into_indices();
        // A cycle has fixed weights: none while a candidate's slow start ramps (every ramp
        // starts with a flag change or a new snapshot, which ends a cycle).
        if indices
            .iter()
            .any(|&i| self.hot[i as usize].ramp_permille(now) < 1000)
        {
            return None;
        }
        // The cycle ends when a member in error may be retried or an ejection ends.
        let deadline = self
            .members
            .iter()
            .filter_map(|m| {
                let state = m.state();
                match (
                    state.retry_deadline_nanos(m.retry_window()),
                    state.ejection_deadline_nanos(),
                ) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
            .unwrap_or(u64::MAX);
        Some((indices, deadline))
    }

    /// Apache's `force_recovery`: when every member is in error and `forcerecovery` is On,
    /// clear all their errors so the request tries them again, whatever their `retry`.
    fn force_recovery(&self, now: Instant) {
        for (hot, m) in self.hot.iter().zip(self.members.iter()) {
            if !hot.state.flags().contains(StatusFlags::IN_ERROR) {
                return;
            }
            m.try_recover(now);
            if !hot.state.flags().contains(StatusFlags::IN_ERROR) {
                return;
            }
        }
        if self.params.force_recovery {
            for hot in self.hot.iter() {
                hot.state.clear_error();
            }
        }
    }

    /// Apache's `find_route_worker`: regular members first, then hot standbys; `redirect`
    /// followed when the route's member is unusable. Returns the member and whether it was
    /// reached through a redirect to another route.
    fn find_route_member(
        &self,
        route: &str,
        tried: &[MemberId],
        now: Instant,
        depth: usize,
    ) -> Option<(&Member, bool)> {
        for standby_pass in [false, true] {
            for m in self.members.iter() {
                let flags = m.flags();
                if flags.contains(StatusFlags::HOT_STANDBY) != standby_pass
                    || m.route() != Some(route)
                {
                    continue;
                }
                if !tried.contains(&m.id()) && (flags.is_usable() || m.try_recover(now)) {
                    return Some((m, false));
                }
                if let Some(redirect) = &m.params().redirect {
                    if depth < self.members.len() {
                        if let Some((r, _)) =
                            self.find_route_member(redirect.as_str(), tried, now, depth + 1)
                        {
                            let changed = r.route() != Some(route);
                            return Some((r, changed));
                        }
                    }
                }
            }
        }
        None
    }

    /// Apache's `find_best_worker`: lbsets in ascending order; in each, regular members and
    /// spares, else standbys.
    fn balance<'s>(
        &'s self,
        tried: &'s [MemberId],
        key: Option<&'s [u8]>,
        now: Instant,
    ) -> Option<&'s Member> {
        // The first set a panic threshold would balance over when no set has a usable
        // member.
        let mut last_resort = None;
        for (set, (_, indices)) in self.sets.iter().enumerate() {
            let ring = self.rings.get(set);
            let (spare_limit, standbys, panic) = match self.plan_set(indices, tried, now) {
                SetPlan::Regular {
                    spare_limit,
                    standbys,
                    panic,
                } => (Some(spare_limit), standbys, panic),
                SetPlan::Standby => (None, true, false),
                SetPlan::Nothing { panic } => {
                    if panic && last_resort.is_none() {
                        last_resort = Some((indices, ring));
                    }
                    continue;
                }
            };
            if let Some(spare_limit) = spare_limit {
                let candidates = Candidates::regular(
                    (&self.members, &self.hot),
                    indices,
                    spare_limit,
                    tried,
                    now,
                )
                .with_key(key)
                .with_panic(panic)
                .with_ring(ring);
                if let Some(m) = self.params.lb_method.choose(candidates) {
                    if panic {
                        self.note_panic();
                    }
                    return Some(m);
                }
            }
            if standbys {
                let candidates =
                    Candidates::standby((&self.members, &self.hot), indices, tried, now)
                        .with_key(key)
                        .with_ring(ring);
                if let Some(m) = self.params.lb_method.choose(candidates) {
                    return Some(m);
                }
            }
        }
        let (indices, ring) = last_resort?;
        let candidates = Candidates::regular((&self.members, &self.hot), indices, 0, tried, now)
            .with_key(key)
            .with_panic(true)
            .with_ring(ring);
        let m = self.params.lb_method.choose(candidates)?;
        self.note_panic();
        Some(m)
    }

    fn note_panic(&self) {
        self.shared.outliers.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `health` is below the panic threshold (`panic=`): fewer than P % of the
    /// eligible regular members usable.
    fn below_panic(&self, health: SetHealth) -> bool {
        // With no eligible member, 0 < 0 is false: no panic.
        self.params
            .panic_threshold
            .is_some_and(|p| health.healthy * 100 < usize::from(p) * health.eligible)
    }

    /// Beyond Apache: whether a balanced pick at `now` would be made in panic (the
    /// `panic=P` threshold, Envoy's panic mode generalising `forcerecovery`): the lbset
    /// that would serve it has fewer than P % of its regular members usable (members
    /// disabled, stopped or draining are not counted), or no lbset has a usable member and
    /// one has members that only an error, a failed health check or an ejection keeps
    /// out. Its members in `E`, `C` or `J` are then balanced over as if usable. Reads the
    /// state only (no retry, no ejection lifted, no forced recovery), counting what the pick
    /// would do first: with `forcerecovery=On`, every member in error and none due for its
    /// retry is no panic, as the pick clears their errors.
    ///
    /// ```
    /// use std::time::Instant;
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams, PickRequest, StatusFlags};
    ///
    /// let now = Instant::now();
    /// let mut params = BalancerParams::new("app");
    /// params.set("panic", "50")?;
    /// let members = ["http://a", "http://b", "http://c", "http://d"].map(|u| MemberParams::new(u));
    /// let store = BalancerStore::new(params, members.into_iter().collect::<Result<Vec<_>, _>>()?, now)?;
    /// let snapshot = store.snapshot();
    /// for m in &snapshot.members()[..3] {
    ///     m.state().insert_flags(StatusFlags::HC_FAILED);
    /// }
    /// assert!(snapshot.in_panic(now)); // 1 of 4 usable: below 50 %
    /// let picks: Vec<String> = (0..4)
    ///     .map(|_| store.pick(&PickRequest::new(), now).map(|p| p.member().url().to_owned()))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(picks, ["http://a", "http://b", "http://c", "http://d"]);
    /// assert_eq!(store.panics(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn in_panic(&self, now: Instant) -> bool {
        use StatusFlags as F;
        if self.params.panic_threshold.is_none() {
            return false;
        }
        let now_n = self.nanos(now);
        // Apache's forced recovery (`force_recovery`), as the pick does it first: every member
        // in error and none due for its retry clears every error.
        let forced = self.params.force_recovery
            && self.members.iter().all(|m| {
                m.flags().contains(F::IN_ERROR) && !would_be_usable(m, F::IN_ERROR, now_n)
            });
        let mut last_resort = false;
        for (_, indices) in self.sets.iter() {
            let (mut health, mut spares, mut standbys, mut unusable) =
                (SetHealth::default(), 0usize, 0usize, 0usize);
            for &i in indices.iter() {
                let member = &self.members[i as usize];
                let flags = member.flags();
                let regular = !flags.intersects(F::HOT_SPARE.union(F::HOT_STANDBY));
                if flags.contains(F::DRAIN) {
                    unusable += usize::from(regular);
                    continue;
                }
                let cleared = if forced {
                    flags.difference(F::IN_ERROR)
                } else {
                    flags
                };
                let up = would_be_usable(member, cleared, now_n);
                if flags.contains(F::HOT_SPARE) {
                    spares += usize::from(up);
                } else if flags.contains(F::HOT_STANDBY) {
                    standbys += usize::from(up);
                } else {
                    if !flags.intersects(F::DISABLED.union(F::STOPPED)) {
                        health.eligible += 1;
                        health.healthy += usize::from(up);
                    }
                    unusable += usize::from(!up);
                }
            }
            if health.healthy + spares.min(unusable) > 0 {
                return self.below_panic(health);
            }
            if standbys > 0 {
                return false;
            }
            last_resort |= health.eligible > 0;
        }
        last_resort
    }

    /// Beyond Apache: how many members of the store are ejected now (outlier ejection);
    /// the same as [`BalancerStore::ejected`](crate::BalancerStore::ejected).
    #[must_use]
    pub fn ejected(&self) -> usize {
        usize::try_from(self.shared.outliers.ejected()).unwrap_or(usize::MAX)
    }

    /// Beyond Apache: balanced picks made in panic so far, by any snapshot of the store
    /// (the same as [`BalancerStore::panics`](crate::BalancerStore::panics)).
    #[must_use]
    pub fn panics(&self) -> u64 {
        self.shared.outliers.panics.load(Ordering::Relaxed)
    }

    /// Scans one lbset as Apache does (retrying members in error whose window has passed)
    /// and says which of its members may take a balanced request.
    fn plan_set(&self, indices: &[u32], tried: &[MemberId], now: Instant) -> SetPlan {
        use StatusFlags as F;
        let (mut regular, mut unusable, mut spares, mut standbys) =
            (0usize, 0usize, 0usize, 0usize);
        let mut health = SetHealth::default();
        for &i in indices {
            let hot = &self.hot[i as usize];
            let flags = hot.state.flags();
            if flags.contains(F::DRAIN) {
                if !flags.intersects(F::HOT_SPARE | F::HOT_STANDBY) {
                    unusable += 1;
                }
                continue;
            }
            // `try_recover` also lifts an ejection whose time has passed.
            let up = flags.is_usable() || self.members[i as usize].try_recover(now);
            let usable = up && (tried.is_empty() || !tried.contains(&hot.id));
            if flags.contains(F::HOT_SPARE) {
                spares += usize::from(usable);
            } else if flags.contains(F::HOT_STANDBY) {
                standbys += usize::from(usable);
            } else {
                if !flags.intersects(F::DISABLED.union(F::STOPPED)) {
                    health.eligible += 1;
                    health.healthy += usize::from(up);
                }
                if usable {
                    regular += 1;
                } else {
                    unusable += 1;
                }
            }
        }
        if regular + spares.min(unusable) > 0 {
            SetPlan::Regular {
                spare_limit: unusable,
                standbys: standbys > 0,
                panic: self.below_panic(health),
            }
        } else if standbys > 0 {
            SetPlan::Standby
        } else {
            // Below any threshold when none is healthy and some are eligible.
            SetPlan::Nothing {
                panic: self.below_panic(health),
            }
        }
    }
}

impl fmt::Debug for BalancerSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancerSnapshot")
            .field("name", &self.params.name)
            .field("lb_method", &self.params.lb_method)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// Whether `member` (with `flags`) would be usable at `now_n` (nanoseconds since the epoch)
/// once its retry window and its ejection are checked, without changing anything.
fn would_be_usable(member: &Member, flags: StatusFlags, now_n: u64) -> bool {
    let mut flags = flags;
    let state = member.state();
    if state.ejection_deadline_nanos().is_some_and(|d| now_n > d) {
        flags = flags.difference(StatusFlags::EJECTED);
    }
    if state
        .retry_deadline_nanos(member.retry_window())
        .is_some_and(|d| d == 0 || now_n > d)
    {
        flags = flags.difference(StatusFlags::IN_ERROR);
    }
    flags.is_usable()
}
