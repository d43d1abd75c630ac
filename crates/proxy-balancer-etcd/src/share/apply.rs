//! Applying: a key's value put in force, and what is in force applied to a store (a
//! member's configured state, then its key, then its lapsing flags).

use super::*;

impl Inner {
    // ----- applying -----

    /// A put of `kv` seen (watch, full read or our own write). Idempotent per revision.
    pub(super) fn on_put(&self, state: &mut State, kv: &KeyValue) -> Outcome {
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
    pub(super) fn on_delete(&self, state: &mut State, full: &str, revision: i64) -> Outcome {
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
            m.base = Some((
                member.params().clone(),
                member.flags().intersection(SHARED_FLAGS),
            ));
        }
        member.clone()
    } else if m.base.is_some() && !m.added {
        // This instance had the member without etcd (its configuration, a discovery source)
        // and something else removed it since: a discovery source whose backend is gone.
        // Its key keeps the operator's state for it, but does not bring it back.
        tracing::debug!(
            balancer,
            member = url,
            "etcd key of a member removed here by another source (discovery); not added back"
        );
        return Ok(outcome);
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
            .union(overlay.member.set_flags.intersection(SHARED_FLAGS))
            .difference(overlay.member.clear_flags);
    }
    let target = target.intersection(SHARED_FLAGS);
    let now = current.flags().intersection(SHARED_FLAGS);
    e.member.set_flags = target.difference(now);
    e.member.clear_flags = now.difference(target);
    e
}

fn to_update<T>(value: Option<T>) -> Update<T> {
    value.map_or(Update::Clear, Update::Set)
}
