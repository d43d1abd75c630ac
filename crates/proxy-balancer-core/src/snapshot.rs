//! The immutable view of a balancer that every pick reads, and the pick itself.

use std::fmt;
use std::time::Instant;

use crate::error::PickError;
use crate::flags::StatusFlags;
use crate::lbmethod::Candidates;
use crate::member::{BusyGuard, Member, MemberId};
use crate::params::{BalancerParams, LbSet};

/// What a pick needs to know about the request.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct PickRequest<'a> {
    /// The session route found in the request (cookie or URL), without the session id:
    /// `node1` for `JSESSIONID=ABC.node1`. Finding it is the sticky layer's job.
    pub route: Option<&'a str>,
    /// Members this request already tried; they are not picked again.
    pub tried: &'a [MemberId],
}

impl<'a> PickRequest<'a> {
    /// A request without a session route that tried no member yet.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            route: None,
            tried: &[],
        }
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
    sticky: bool,
    route_changed: bool,
}

impl Picked {
    /// The chosen member.
    #[must_use]
    pub fn member(&self) -> &Member {
        self.busy.member()
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
    /// The lbsets in ascending order, each with its members' indices in config order.
    sets: Box<[(LbSet, Box<[u32]>)]>,
}

impl BalancerSnapshot {
    pub(crate) fn new(params: BalancerParams, members: Vec<Member>) -> Self {
        let mut set_ids: Vec<LbSet> = members.iter().map(|m| m.params().lb_set).collect();
        set_ids.sort_unstable();
        set_ids.dedup();
        let sets = set_ids
            .into_iter()
            .map(|set| {
                let indices = members
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.params().lb_set == set)
                    .map(|(i, _)| u32::try_from(i).expect("invariant: fewer than 2^32 members"))
                    .collect();
                (set, indices)
            })
            .collect();
        Self {
            params,
            members: members.into_boxed_slice(),
            sets,
        }
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
    /// Lock-free: reads of atomics and atomic additions only.
    ///
    /// # Errors
    ///
    /// [`PickError`] when no member can take the request; the balancer answers 503.
    pub fn pick(&self, request: &PickRequest<'_>, now: Instant) -> Result<Picked, PickError> {
        if self.members.is_empty() {
            return Err(PickError::Empty);
        }
        self.force_recovery(now);
        if let Some(route) = request.route.filter(|r| !r.is_empty()) {
            if let Some((member, redirected)) = self.find_route_member(route, request.tried, now, 1)
            {
                self.params.lb_method.account_sticky(&self.members, member);
                member.state().elect();
                return Ok(Picked {
                    busy: member.begin_request(),
                    sticky: true,
                    route_changed: redirected,
                });
            }
            if self.params.no_failover && self.members.iter().any(|m| m.route() == Some(route)) {
                return Err(PickError::RouteUnusable {
                    route: route.to_owned(),
                });
            }
        }
        let member = self
            .balance(request.tried, now)
            .ok_or(PickError::AllUnusable)?;
        member.state().elect();
        Ok(Picked {
            busy: member.begin_request(),
            sticky: false,
            route_changed: self.params.sticky_session.is_some(),
        })
    }

    /// Apache's `force_recovery`: when every member is in error and `forcerecovery` is On,
    /// clear all their errors so the request tries them again, whatever their `retry`.
    fn force_recovery(&self, now: Instant) {
        for m in self.members.iter() {
            if !m.flags().contains(StatusFlags::IN_ERROR) || m.try_recover(now) {
                return;
            }
            if !m.flags().contains(StatusFlags::IN_ERROR) {
                return;
            }
        }
        if self.params.force_recovery {
            for m in self.members.iter() {
                m.state().clear_error();
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
    fn balance<'s>(&'s self, tried: &'s [MemberId], now: Instant) -> Option<&'s Member> {
        use StatusFlags as F;
        for (_, indices) in self.sets.iter() {
            let (mut regular, mut unusable, mut spares, mut standbys) =
                (0usize, 0usize, 0usize, 0usize);
            for &i in indices.iter() {
                let m = &self.members[i as usize];
                let flags = m.flags();
                if flags.contains(F::DRAIN) {
                    if !flags.intersects(F::HOT_SPARE | F::HOT_STANDBY) {
                        unusable += 1;
                    }
                    continue;
                }
                let usable = (flags.is_usable() || m.try_recover(now)) && !tried.contains(&m.id());
                if flags.contains(F::HOT_SPARE) {
                    spares += usize::from(usable);
                } else if flags.contains(F::HOT_STANDBY) {
                    standbys += usize::from(usable);
                } else if usable {
                    regular += 1;
                } else {
                    unusable += 1;
                }
            }
            if regular + spares.min(unusable) > 0 {
                let candidates = Candidates::regular(&self.members, indices, unusable, tried);
                if let Some(m) = self.params.lb_method.choose(candidates) {
                    return Some(m);
                }
            }
            if standbys > 0 {
                let candidates = Candidates::standby(&self.members, indices, tried);
                if let Some(m) = self.params.lb_method.choose(candidates) {
                    return Some(m);
                }
            }
        }
        None
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
