//! Watching: the first full read, the watch resumed from the last revision applied (or a
//! full read again after a compaction), the link's status and its log lines.

use super::*;

impl Inner {
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

    pub(super) fn unavailable(&self, reason: String) -> SharedEditError {
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

// ===== the watch task =====

/// Reads the prefix, then watches it; on a failure, says so once, backs off and resumes
/// from the last revision applied (or reads the whole prefix again when etcd has compacted
/// it).
pub(super) async fn run(
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
    first: watch::Sender<bool>,
) {
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
