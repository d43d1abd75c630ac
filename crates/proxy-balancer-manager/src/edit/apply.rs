//! Applying: an [`Edit`] checked against the balancer's current state and written to the
//! store, the growth slots it may use, and what it changed ([`Applied`]).

use proxy_balancer_core::{
    BalancerParams, BalancerSnapshot, BalancerStore, HcParams, MemberId, MemberParams, StatusFlags,
};

use super::{BalancerEdit, Edit, EditError, HealthEdit, MemberEdit};

// ===== impl Edit =====

impl Edit {
    /// Applies the edit to `store`, the balancer named `b`: all of it, or nothing.
    ///
    /// First every check against the current state: the store's balancer is `b`, member
    /// `w` exists (when the edit changes it), a member to add is not there yet and a growth
    /// slot is free ([`GrowthSlots`]). Then, in order: the new member is added (disabled, as
    /// Apache adds it), member `w`'s parameters change in one
    /// [`BalancerStore::update_member`], the balancer's in one
    /// [`BalancerStore::update_params`], and the flags are set and cleared.
    ///
    /// ```
    /// use std::time::Instant;
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, StatusFlags};
    /// use proxy_balancer_manager::edit::{parse_form, Edit, GrowthSlots};
    ///
    /// let mut params = BalancerParams::new("c");
    /// params.set("growth", "1")?;
    /// let store = BalancerStore::new(params, [], Instant::now())?;
    /// let slots = GrowthSlots::of(&store);
    /// let add = Edit::from_form(&parse_form(b"b=c&b_wyes=1&b_nwrkr=http://new:80")?)?;
    /// let id = add.apply(&store, slots)?.added.expect("added");
    /// let snapshot = store.snapshot();
    /// assert_eq!(snapshot.member(id).map(|m| m.flags()), Some(StatusFlags::DISABLED));
    /// // The only slot is used now.
    /// let again = Edit::from_form(&parse_form(b"b=c&b_wyes=1&b_nwrkr=http://other:80")?)?;
    /// assert_eq!(again.apply(&store, slots).unwrap_err().status(), 400);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Apache
    ///
    /// A changed `w_lf` sets every member's `lbstatus` afresh (the core does it); a changed
    /// `b_lbm`, or member `w` going from unusable to usable, resets the balancer's
    /// `lbstatus` ([`BalancerStore::reset_lb`]).
    ///
    /// # Errors
    ///
    /// [`EditError::UnknownBalancer`], [`EditError::UnknownMember`],
    /// [`EditError::DuplicateMember`], [`EditError::NoFreeSlot`]. If another writer removes
    /// member `w` between the checks and the writes, the member added by this edit is
    /// removed again and [`EditError::UnknownMember`] is returned.
    pub fn apply(&self, store: &BalancerStore, slots: GrowthSlots) -> Result<Applied, EditError> {
        let mut applied = Applied::default();
        if self.is_empty() {
            return Ok(applied);
        }
        let snapshot = store.snapshot();
        let target = self.check_state(&snapshot, slots)?;

        // Writes. Only the first two can fail, and only if another writer got in between;
        // the second undoes the first then.
        if let Some(new) = &self.add_member {
            let params = MemberParams::from_url(new.clone()).with_status(StatusFlags::DISABLED);
            let id = store
                .add_member(params)
                .map_err(|_| EditError::DuplicateMember {
                    url: new.to_string(),
                })?;
            applied.added = Some(id);
        }
        if let Some(id) = target {
            applied.member = Some(id);
            self.write_member(store, id, &mut applied)?;
        }
        if !self.balancer.is_empty() {
            let (changed, method_changed) = store.update_params(|p| self.balancer.write(p));
            applied.changed.extend(changed);
            applied.lb_reset |= method_changed;
        }
        if let (Some(id), false) = (target, self.flag_changes_empty()) {
            self.write_flags(store, &snapshot, id, &mut applied);
        }
        Ok(applied)
    }

    /// The checks of [`Edit::apply`] against `store`'s current state, without changing
    /// anything: the store's balancer is `b`, member `w` exists (when the edit changes it), a
    /// member to add is not there yet and a growth slot is free. The same errors as
    /// [`Edit::apply`]; an `Ok` edit may still be refused by `apply` if another writer
    /// changes the store in between.
    ///
    /// ```
    /// use std::time::Instant;
    /// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
    /// use proxy_balancer_manager::edit::{parse_form, Edit, GrowthSlots};
    ///
    /// let store = BalancerStore::new(
    ///     BalancerParams::new("c"),
    ///     [MemberParams::new("http://a:80")?],
    ///     Instant::now(),
    /// )?;
    /// let slots = GrowthSlots::of(&store);
    /// let ok = Edit::from_form(&parse_form(b"b=c&w=http://a:80&w_status_D=1")?)?;
    /// assert!(ok.check(&store, slots).is_ok());
    /// assert!(store.snapshot().members()[0].is_usable(), "nothing changed");
    /// let gone = Edit::from_form(&parse_form(b"b=c&w=http://b:80&w_status_D=1")?)?;
    /// assert_eq!(gone.check(&store, slots).unwrap_err().status(), 404);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Edit::apply`]: [`EditError::UnknownBalancer`], [`EditError::UnknownMember`],
    /// [`EditError::DuplicateMember`], [`EditError::NoFreeSlot`].
    pub fn check(&self, store: &BalancerStore, slots: GrowthSlots) -> Result<(), EditError> {
        if self.is_empty() {
            return Ok(());
        }
        self.check_state(&store.snapshot(), slots).map(drop)
    }

    /// Every check against the current state, before any write: the balancer is `b`, member
    /// `w` exists when the edit changes it (its id is returned), a member to add is not there
    /// yet and a growth slot is free.
    fn check_state(
        &self,
        snapshot: &BalancerSnapshot,
        slots: GrowthSlots,
    ) -> Result<Option<MemberId>, EditError> {
        if let Some(name) = &self.balancer_name {
            if BalancerParams::new(name).name != snapshot.params().name {
                return Err(EditError::UnknownBalancer { name: name.clone() });
            }
        }
        let url = self.member_url.as_deref().unwrap_or("");
        let target = if self.member.is_empty() && self.health.is_empty() {
            None
        } else {
            let member = snapshot
                .member_by_url(url)
                .ok_or_else(|| EditError::UnknownMember {
                    url: url.to_owned(),
                })?;
            Some(member.id())
        };
        if let Some(new) = &self.add_member {
            if snapshot.members().iter().any(|m| m.params().url == *new) {
                return Err(EditError::DuplicateMember {
                    url: new.to_string(),
                });
            }
            let used = slots.used(snapshot);
            let growth = snapshot.params().growth;
            if used >= usize::from(growth) {
                return Err(EditError::NoFreeSlot {
                    url: new.to_string(),
                    growth,
                    used,
                });
            }
        }
        Ok(target)
    }

    /// Writes member `w`'s parameter and health-check changes in one
    /// [`BalancerStore::update_member`]. If the member is gone by now, the member this edit
    /// added is removed again and the edit is refused.
    fn write_member(
        &self,
        store: &BalancerStore,
        id: MemberId,
        applied: &mut Applied,
    ) -> Result<(), EditError> {
        if self.member.has_params() || !self.health.is_empty() {
            let result = store.update_member(id, |p| {
                let mut changed = self.member.write(p);
                changed.extend(self.health.write(&mut p.hc));
                changed
            });
            match result {
                Ok(changed) => applied.changed.extend(changed),
                Err(_) => {
                    if let Some(added) = applied.added {
                        // Undo: the edit applies all together or not at all.
                        let _ = store.remove_member(added);
                    }
                    return Err(EditError::UnknownMember {
                        url: self.member_url.as_deref().unwrap_or("").to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Sets and clears member `w`'s flags (found in `snapshot`, the one the checks read),
    /// and resets the balancer's `lbstatus` when the member became usable.
    fn write_flags(
        &self,
        store: &BalancerStore,
        snapshot: &BalancerSnapshot,
        id: MemberId,
        applied: &mut Applied,
    ) {
        if let Some(member) = snapshot.member(id) {
            let state = member.state();
            let before = state.insert_flags(self.member.set_flags);
            state.remove_flags(self.member.clear_flags);
            let after = state.flags();
            if before != after {
                applied.changed.push("status");
            }
            applied.flags = Some((before, after));
            if !before.is_usable() && after.is_usable() {
                store.reset_lb();
                applied.lb_reset = true;
            }
        }
    }

    fn flag_changes_empty(&self) -> bool {
        self.member.set_flags.is_empty() && self.member.clear_flags.is_empty()
    }
}

// ===== impl MemberEdit =====

impl MemberEdit {
    fn has_params(&self) -> bool {
        self.load_factor.is_some()
            || self.lb_set.is_some()
            || self.route.is_some()
            || self.redirect.is_some()
    }

    /// Writes the parameter changes; returns the Apache names of those that changed.
    fn write(&self, p: &mut MemberParams) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if let Some(lf) = self.load_factor {
            if p.load_factor != lf {
                p.load_factor = lf;
                changed.push("loadfactor");
            }
        }
        if let Some(ls) = self.lb_set {
            if p.lb_set != ls {
                p.lb_set = ls;
                changed.push("lbset");
            }
        }
        for (update, field, name) in [
            (&self.route, &mut p.route, "route"),
            (&self.redirect, &mut p.redirect, "redirect"),
        ] {
            if let Some(update) = update {
                let new = update.clone().into_option();
                if *field != new {
                    *field = new;
                    changed.push(name);
                }
            }
        }
        changed
    }
}

// ===== impl HealthEdit =====

impl HealthEdit {
    /// Writes the changes; returns the Apache names of those that changed.
    fn write(&self, hc: &mut HcParams) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if let Some(m) = self.method {
            if hc.method != m {
                hc.method = m;
                changed.push("hcmethod");
            }
        }
        if let Some(i) = self.interval {
            if hc.interval != i {
                hc.interval = i;
                changed.push("hcinterval");
            }
        }
        if let Some(n) = self.passes {
            if hc.passes != n {
                hc.passes = n;
                changed.push("hcpasses");
            }
        }
        if let Some(n) = self.fails {
            if hc.fails != n {
                hc.fails = n;
                changed.push("hcfails");
            }
        }
        if let Some(uri) = &self.uri {
            if hc.uri != *uri {
                hc.uri = uri.clone();
                changed.push("hcuri");
            }
        }
        if let Some(update) = &self.expr {
            let new = update.clone().into_option();
            if hc.expr != new {
                hc.expr = new;
                changed.push("hcexpr");
            }
        }
        changed
    }
}

// ===== impl BalancerEdit =====

impl BalancerEdit {
    /// Writes the changes; returns the Apache names of those that changed and whether the
    /// lbmethod did.
    fn write(&self, p: &mut BalancerParams) -> (Vec<&'static str>, bool) {
        let mut changed = Vec::new();
        let mut method_changed = false;
        if let Some(method) = &self.lb_method {
            // By name: a form re-sending `heartbeat` keeps the configured report age.
            if method.name() != p.lb_method.name() {
                p.lb_method = method.clone();
                changed.push("lbmethod");
                method_changed = true;
            }
        }
        if let Some(t) = self.timeout {
            if p.timeout != t {
                p.timeout = t;
                changed.push("timeout");
            }
        }
        if let Some(n) = self.max_attempts {
            if p.max_attempts != Some(n) {
                p.max_attempts = Some(n);
                changed.push("maxattempts");
            }
        }
        if let Some(b) = self.no_failover {
            if p.no_failover != b {
                p.no_failover = b;
                changed.push("nofailover");
            }
        }
        if let Some(update) = &self.sticky_session {
            let new = update.clone().into_option();
            if p.sticky_session != new {
                p.sticky_session = new;
                changed.push("stickysession");
            }
        }
        (changed, method_changed)
    }
}

// ===== growth slots =====

/// How many of a balancer's `growth` slots are used: how many members the manager may still
/// add.
///
/// A slot is used by each member present whose [`MemberId`] is not one of the configured
/// members'. Ids are handed out in order and never reused, so the configured members are
/// those with ids below the count taken at start ([`GrowthSlots::of`] right after building
/// the store, or [`GrowthSlots::new`] with the number of configured members). A member added
/// by the manager and removed again frees its slot (Apache cannot remove members).
///
/// ```
/// use std::time::Instant;
/// use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
/// use proxy_balancer_manager::edit::GrowthSlots;
///
/// let mut params = BalancerParams::new("c");
/// params.set("growth", "2")?;
/// let store = BalancerStore::new(params, [MemberParams::new("http://a")?], Instant::now())?;
/// let slots = GrowthSlots::of(&store);
/// store.add_member(MemberParams::new("http://b")?)?;
/// let snapshot = store.snapshot();
/// assert_eq!((slots.used(&snapshot), slots.free(&snapshot)), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowthSlots {
    configured: u32,
}

impl GrowthSlots {
    /// Slots for a store built with `configured` members (ids 0 to `configured - 1`).
    #[must_use]
    pub const fn new(configured: u32) -> Self {
        Self { configured }
    }

    /// Slots for `store` as it is now: every member present counts as configured. Call it
    /// once, when the store is built, and keep the value.
    #[must_use]
    pub fn of(store: &BalancerStore) -> Self {
        let snapshot = store.snapshot();
        let next = snapshot
            .members()
            .iter()
            .map(|m| m.id().get().saturating_add(1))
            .max()
            .unwrap_or(0);
        Self::new(next)
    }

    /// How many members added beyond the configured ones are present.
    #[must_use]
    pub fn used(&self, snapshot: &BalancerSnapshot) -> usize {
        snapshot
            .members()
            .iter()
            .filter(|m| m.id().get() >= self.configured)
            .count()
    }

    /// How many members may still be added: `growth` minus [`GrowthSlots::used`].
    #[must_use]
    pub fn free(&self, snapshot: &BalancerSnapshot) -> usize {
        usize::from(snapshot.params().growth).saturating_sub(self.used(snapshot))
    }
}

// ===== applied =====

/// What [`Edit::apply`] changed, for logs and persistence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Apache names of the parameters whose value changed (`loadfactor`, `lbset`, `route`,
    /// `redirect`, `hcmethod`, `hcinterval`, `hcpasses`, `hcfails`, `hcuri`, `hcexpr`,
    /// `status`, `lbmethod`, `timeout`, `maxattempts`, `nofailover`, `stickysession`),
    /// member ones first. A parameter given with its current value is
    /// not listed.
    pub changed: Vec<&'static str>,
    /// Member `w`, when the edit was about it.
    pub member: Option<MemberId>,
    /// Member `w`'s flags before and after, when the edit set or cleared any.
    pub flags: Option<(StatusFlags, StatusFlags)>,
    /// The member added with `b_wyes=1`.
    pub added: Option<MemberId>,
    /// Whether the balancer's `lbstatus` was reset (new lbmethod, or member `w` became
    /// usable).
    pub lb_reset: bool,
}

impl Applied {
    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_none()
    }
}
