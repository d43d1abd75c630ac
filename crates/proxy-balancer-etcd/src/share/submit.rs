//! Submitting: an edit merged into the keys it touches, written with a compare-and-swap on
//! their revisions, merged again after a lost race, applied here at once.

use super::*;

impl Inner {
    // ----- submitting -----

    pub(super) async fn submit(
        self: &Arc<Self>,
        request: SharedEditRequest,
    ) -> Result<Submitted, SharedEditError> {
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
        let result = self.write(&request, &plan, lease).await;
        // Leases no key needs any more, ended in the background (the answer does not wait
        // for them): the one granted for an edit that was not written, and those of the
        // lapse keys the edit replaced or deleted. Otherwise each stays in etcd until its
        // TTL (up to a week), one per `w_ttl` edit.
        let unused: Vec<i64> = match &result {
            Ok((_, replaced)) => replaced.clone(),
            Err(_) => lease.map(|(id, _)| id).into_iter().collect(),
        };
        if !unused.is_empty() {
            let inner = Arc::clone(self);
            tokio::spawn(async move { inner.release_leases(unused).await });
        }
        result.map(|(submitted, _)| submitted)
    }

    /// Revokes each of `ids` that no key is bound to (a lease written by hand may hold
    /// other keys: those are left alone).
    async fn release_leases(&self, ids: Vec<i64>) {
        for id in ids {
            match self.client.lease_keys(id).await {
                Ok(left) if left.ttl > 0 && left.keys.is_empty() => {
                    if let Err(e) = self.client.lease_revoke(id).await {
                        tracing::debug!(lease = id, error = %e, "could not revoke an unused lease; it ends with its TTL");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(lease = id, error = %e, "could not read an unused lease; it ends with its TTL");
                }
            }
        }
    }

    /// The compare-and-swap loop of [`Inner::submit`]: the edit written and applied here,
    /// and the leases of the lapse keys it replaced or deleted.
    async fn write(
        &self,
        request: &SharedEditRequest,
        plan: &Plan,
        lease: Option<(i64, i64)>,
    ) -> Result<(Submitted, Vec<i64>), SharedEditError> {
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
            let writes = plan.writes(&self.prefix, &old, lease, request, &self.instance)?;
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
            // A write that fails may still have been taken (only its answer lost): the
            // refusal says so, unless etcd said plainly that it did not take it.
            let done = self
                .client
                .txn(txn)
                .await
                .map_err(|e| self.write_failed(&e))?;
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
            plan.apply_local(&self.state);
            // The leases of the keys this edit rewrote (with another lease) or deleted.
            let replaced: Vec<i64> = keys
                .iter()
                .zip(&old)
                .filter_map(|(key, kv)| {
                    let old_lease = kv.as_ref().map_or(0, |kv| kv.lease);
                    let still = writes.iter().any(|w| match w {
                        Write::Put { key: k, lease, .. } => k == key && *lease == old_lease,
                        Write::Delete { .. } => false,
                    });
                    let touched = writes.iter().any(|w| match w {
                        Write::Put { key: k, .. } | Write::Delete { key: k } => k == key,
                    });
                    (old_lease != 0 && touched && !still).then_some(old_lease)
                })
                .collect();
            return Ok((
                Submitted::new(
                    u64::try_from(revision).unwrap_or(0),
                    outcome.changed,
                    outcome.lb_reset,
                ),
                replaced,
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

    /// An error from etcd on the write itself: `failed` when the write surely did
    /// not reach etcd (refused before it was sent, or turned down), else
    /// `SharedEditError::Uncertain`: the answer was lost, the edit may have landed.
    fn write_failed(&self, status: &tonic::Status) -> SharedEditError {
        if write_surely_not_taken(status.code()) {
            return self.failed(status);
        }
        let reason = format!("{}: {}", code_words(status.code()), status.message());
        self.state.lock().last_error = Some(reason.clone());
        SharedEditError::Uncertain {
            reason: format!("etcd ({}) did not answer the write: {reason}", self.backend),
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
        let set = edit.member.set_flags.intersection(SHARED_FLAGS);
        if ttl.is_some() && set.is_empty() {
            return Err(SharedEditError::Refused {
                reason:
                    "w_ttl applies to the flags an edit sets (w_status_X=1); this edit sets none"
                        .to_owned(),
            });
        }
        let local = edit.member.set_flags.difference(SHARED_FLAGS);
        if ttl.is_some() && !local.is_empty() {
            return Err(SharedEditError::Refused {
                reason: "w_ttl applies to the shared flags (I, N, D, H, R, S); w_status_C is this instance's own health-check result and does not lapse: send it in an edit without w_ttl"
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
            local_set: edit.member.set_flags.intersection(StatusFlags::HC_FAILED),
            local_clear: edit.member.clear_flags.intersection(StatusFlags::HC_FAILED),
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
            let set = edit.member.set_flags.intersection(SHARED_FLAGS);
            let clear = edit.member.clear_flags.intersection(SHARED_FLAGS);
            let mut lapse = lapse_kv.map(|kv| (prefix_key(Some(kv), &lapse_kind), kv.lease));
            match lease {
                Some((id, secs)) => {
                    // The flags set lapse: held by the lapsing key only. What lies
                    // underneath (the member key, else the configuration) is left as it
                    // is, so the lapse returns to it: a member disabled for good and then
                    // drained-and-disabled for ten minutes stays disabled afterwards. The
                    // flags cleared are cleared for good.
                    doc.merge_flags(StatusFlags::EMPTY, clear);
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
    fn apply_local(&self, state: &Mutex<State>) {
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

/// Whether a write that failed with `code` surely did not take effect in etcd: it was turned
/// down (invalid, not allowed, too large) or never sent (no connection could be made). A
/// deadline or a broken connection may hide a write that landed.
fn write_surely_not_taken(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::ResourceExhausted
            | tonic::Code::OutOfRange
            | tonic::Code::Unimplemented
            | tonic::Code::AlreadyExists
            | tonic::Code::NotFound
    )
}

#[cfg(test)]
mod write_outcome_tests {
    use super::write_surely_not_taken;

    #[test]
    fn only_a_plain_refusal_says_the_write_was_not_taken() {
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::PermissionDenied,
            tonic::Code::ResourceExhausted,
        ] {
            assert!(write_surely_not_taken(code), "{code:?}");
        }
        // A deadline, a cancelled call, a broken link or an unknown failure may hide a
        // write that landed.
        for code in [
            tonic::Code::DeadlineExceeded,
            tonic::Code::Cancelled,
            tonic::Code::Unavailable,
            tonic::Code::Unknown,
            tonic::Code::Internal,
            tonic::Code::Aborted,
        ] {
            assert!(!write_surely_not_taken(code), "{code:?}");
        }
    }
}
