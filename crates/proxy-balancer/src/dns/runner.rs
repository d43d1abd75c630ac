//! The resolution loop: each source asked when its records' TTL lapses (within bounds),
//! what an answer, an empty answer or a failure does to the member set, and the handle
//! that reads it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proxy_balancer_core::MemberParams;
use tokio::time::Instant;

use super::source::{Answer, Lookup};
use super::{DnsResolver, DnsSource};

/// What one source's last answers decided.
#[derive(Debug)]
pub(super) struct SourceState {
    /// The members the source gives now (`None`: never answered yet).
    pub(super) current: Option<Vec<MemberParams>>,
    /// Since when the DNS says the name has no address while members are still kept.
    empty_since: Option<Instant>,
    /// Failed lookups in a row (an outage while above 0).
    failures_in_a_row: u32,
}

/// What [`SourceState::observe`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// The source's members changed (or were given for the first time).
    Changed,
    /// Nothing to publish.
    Kept,
}

impl SourceState {
    pub(super) const fn new() -> Self {
        Self {
            current: None,
            empty_since: None,
            failures_in_a_row: 0,
        }
    }

    /// Takes one lookup's outcome at `now`; returns what changed and when to ask again.
    pub(super) fn observe(
        &mut self,
        outcome: Result<Answer, Lookup>,
        now: Instant,
        source: &DnsSource,
        options: &Options,
        status: &StatusInner,
    ) -> (Decision, Duration) {
        let name = source.name();
        match outcome {
            Ok(answer) if !answer.members.is_empty() => {
                if self.failures_in_a_row > 0 {
                    tracing::info!(
                        name,
                        failures = self.failures_in_a_row,
                        "DNS discovery: the name resolves again"
                    );
                }
                if self.empty_since.take().is_some() {
                    tracing::info!(name, "DNS discovery: the name has addresses again");
                }
                self.failures_in_a_row = 0;
                status.outage.store(false, Ordering::Relaxed);
                let changed = self.current.as_ref() != Some(&answer.members);
                if changed {
                    tracing::info!(
                        name,
                        members = answer.members.len(),
                        ttl_s = answer.ttl.as_secs(),
                        "DNS discovery: member set"
                    );
                }
                self.current = Some(answer.members);
                let decision = if changed {
                    Decision::Changed
                } else {
                    Decision::Kept
                };
                (decision, options.clamp(answer.ttl))
            }
            Ok(_) | Err(Lookup::Empty) => {
                status.empty_answers.fetch_add(1, Ordering::Relaxed);
                self.failures_in_a_row = 0;
                status.outage.store(false, Ordering::Relaxed);
                let kept = self.current.as_ref().map_or(0, Vec::len);
                if kept == 0 {
                    let first = self.current.is_none();
                    self.current = Some(Vec::new());
                    let decision = if first {
                        tracing::warn!(
                            name,
                            "DNS discovery: the name has no address (NXDOMAIN or no records): no member yet"
                        );
                        Decision::Changed
                    } else {
                        Decision::Kept
                    };
                    return (decision, options.min_refresh);
                }
                let since = *self.empty_since.get_or_insert_with(|| {
                    tracing::warn!(
                        name,
                        kept,
                        grace_s = options.empty_grace.as_secs(),
                        "DNS discovery: the name has no address (NXDOMAIN or no records): the last members are kept until it has had none for the grace period"
                    );
                    now
                });
                if now.saturating_duration_since(since) >= options.empty_grace {
                    tracing::warn!(
                        name,
                        removed = kept,
                        "DNS discovery: the name has had no address for the grace period: its members are removed (their requests in flight finish)"
                    );
                    self.current = Some(Vec::new());
                    self.empty_since = None;
                    return (Decision::Changed, options.min_refresh);
                }
                (Decision::Kept, options.min_refresh)
            }
            Err(Lookup::Failed(reason)) => {
                status.failures.fetch_add(1, Ordering::Relaxed);
                if self.failures_in_a_row == 0 {
                    // Once per outage: a nameserver down for an hour is one line, not
                    // one a second.
                    tracing::warn!(
                        name,
                        error = %reason,
                        kept = self.current.as_ref().map_or(0, Vec::len),
                        "DNS discovery: lookup failed: the last member set is kept until the name resolves again"
                    );
                }
                status.outage.store(true, Ordering::Relaxed);
                *status.last_error.lock() = Some(format!("{name}: {reason}"));
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                (Decision::Kept, options.retry_after(self.failures_in_a_row))
            }
        }
    }
}

/// The loop's timing and its empty-answer rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Options {
    pub(super) min_refresh: Duration,
    pub(super) max_refresh: Duration,
    pub(super) empty_grace: Duration,
}

/// Past a failure, the next attempt waits at most this long (the doubling from the
/// minimum stops here, or at the maximum refresh if that is smaller): a nameserver back
/// up is seen within 10 s.
const MAX_FAILURE_RETRY: Duration = Duration::from_secs(10);

impl Options {
    /// The TTL within the bounds.
    pub(super) fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_refresh, self.max_refresh.max(self.min_refresh))
    }

    /// After `n` failures in a row: the minimum doubled for each failure after the first,
    /// up to [`MAX_FAILURE_RETRY`] (or the maximum refresh, if smaller).
    pub(super) fn retry_after(&self, n: u32) -> Duration {
        let cap = MAX_FAILURE_RETRY
            .min(self.max_refresh)
            .max(self.min_refresh);
        let factor = 1_u32 << n.saturating_sub(1).min(16);
        self.min_refresh.saturating_mul(factor).min(cap)
    }
}

/// The shared part of a [`DnsHandle`](super::DnsHandle).
#[derive(Debug, Default)]
pub(super) struct StatusInner {
    pub(super) lookups: AtomicU64,
    pub(super) failures: AtomicU64,
    pub(super) empty_answers: AtomicU64,
    pub(super) updates: AtomicU64,
    pub(super) outage: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
    /// The members last published (every source's, in source order).
    pub(super) members: Mutex<Vec<MemberParams>>,
    /// Woken after each round (tests wait on it).
    pub(super) rounds: tokio::sync::Notify,
    pub(super) round_count: AtomicU64,
}

/// The loop over every source of one member set; `publish` gets each new set.
pub(super) async fn run(
    resolver: DnsResolver,
    sources: Vec<DnsSource>,
    options: Options,
    status: Arc<StatusInner>,
    mut publish: impl FnMut(Vec<MemberParams>) + Send,
) {
    let mut states: Vec<SourceState> = sources.iter().map(|_| SourceState::new()).collect();
    let start = Instant::now();
    let mut due: Vec<Instant> = vec![start; sources.len()];
    loop {
        let now = Instant::now();
        let mut changed = false;
        resolver.clear_cache();
        for (i, source) in sources.iter().enumerate() {
            if due[i] > now {
                continue;
            }
            status.lookups.fetch_add(1, Ordering::Relaxed);
            let outcome = source.lookup(&resolver).await;
            let (decision, next) =
                states[i].observe(outcome, Instant::now(), source, &options, &status);
            changed |= decision == Decision::Changed;
            due[i] = Instant::now() + next;
        }
        // Published once every source has answered once (or failed): a first set
        // made of some sources only would remove the others' members for a moment.
        let all_tried = states
            .iter()
            .all(|s| s.current.is_some() || s.failures_in_a_row > 0);
        if changed && all_tried {
            let members: Vec<MemberParams> = states
                .iter()
                .filter_map(|s| s.current.as_deref())
                .flatten()
                .cloned()
                .collect();
            *status.members.lock() = members.clone();
            status.updates.fetch_add(1, Ordering::Relaxed);
            publish(members);
        }
        status.round_count.fetch_add(1, Ordering::Relaxed);
        status.rounds.notify_waiters();
        let next = due
            .iter()
            .min()
            .copied()
            .unwrap_or(now + options.max_refresh);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            min_refresh: Duration::from_secs(1),
            max_refresh: Duration::from_secs(60),
            empty_grace: Duration::from_secs(30),
        }
    }

    fn answer(urls: &[&str], ttl: u64) -> Result<Answer, Lookup> {
        Ok(Answer {
            members: urls.iter().map(|u| MemberParams::new(u).unwrap()).collect(),
            ttl: Duration::from_secs(ttl),
        })
    }

    #[test]
    fn refresh_bounds_and_retry_backoff() {
        let o = options();
        assert_eq!(o.clamp(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(o.clamp(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(
            o.clamp(Duration::from_secs(86_400)),
            Duration::from_secs(60)
        );
        let retries: Vec<u64> = (1..=6).map(|n| o.retry_after(n).as_secs()).collect();
        assert_eq!(retries, [1, 2, 4, 8, 10, 10]);
        assert_eq!(o.retry_after(u32::MAX), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_keeps_the_set_and_an_empty_answer_waits_for_the_grace() {
        let source =
            DnsSource::address(MemberParams::new("http://api.internal:80").unwrap()).unwrap();
        let status = StatusInner::default();
        let o = options();
        let mut s = SourceState::new();
        let t0 = Instant::now();
        let (d, next) = s.observe(
            answer(&["http://10.0.0.1", "http://10.0.0.2"], 5),
            t0,
            &source,
            &o,
            &status,
        );
        assert_eq!((d, next), (Decision::Changed, Duration::from_secs(5)));
        let (d, _) = s.observe(
            answer(&["http://10.0.0.1", "http://10.0.0.2"], 5),
            t0,
            &source,
            &o,
            &status,
        );
        assert_eq!(d, Decision::Kept, "the same set is not published again");

        // Failures: kept, counted, outage on until an answer.
        for n in 1..=3 {
            let (d, next) = s.observe(
                Err(Lookup::Failed("timeout".into())),
                t0,
                &source,
                &o,
                &status,
            );
            assert_eq!(d, Decision::Kept);
            assert_eq!(next, o.retry_after(n));
        }
        assert_eq!(s.current.as_ref().unwrap().len(), 2);
        assert_eq!(status.failures.load(Ordering::Relaxed), 3);
        assert!(status.outage.load(Ordering::Relaxed));
        let (d, _) = s.observe(answer(&["http://10.0.0.1"], 5), t0, &source, &o, &status);
        assert_eq!(d, Decision::Changed);
        assert!(!status.outage.load(Ordering::Relaxed));

        // Empty answers: kept for the grace, then emptied.
        let (d, _) = s.observe(Err(Lookup::Empty), t0, &source, &o, &status);
        assert_eq!(d, Decision::Kept);
        let (d, _) = s.observe(
            Err(Lookup::Empty),
            t0 + Duration::from_secs(29),
            &source,
            &o,
            &status,
        );
        assert_eq!(d, Decision::Kept);
        assert_eq!(s.current.as_ref().unwrap().len(), 1);
        let (d, _) = s.observe(
            Err(Lookup::Empty),
            t0 + Duration::from_secs(30),
            &source,
            &o,
            &status,
        );
        assert_eq!(d, Decision::Changed);
        assert!(s.current.as_ref().unwrap().is_empty());
        // An answer in between restarts the grace.
        s.observe(answer(&["http://10.0.0.3"], 5), t0, &source, &o, &status);
        s.observe(
            Err(Lookup::Empty),
            t0 + Duration::from_secs(40),
            &source,
            &o,
            &status,
        );
        s.observe(
            answer(&["http://10.0.0.3"], 5),
            t0 + Duration::from_secs(41),
            &source,
            &o,
            &status,
        );
        let (d, _) = s.observe(
            Err(Lookup::Empty),
            t0 + Duration::from_secs(80),
            &source,
            &o,
            &status,
        );
        assert_eq!(
            d,
            Decision::Kept,
            "the grace counts from the latest empty answer after an answer"
        );
        assert_eq!(status.empty_answers.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn an_empty_first_answer_is_an_empty_set() {
        let source =
            DnsSource::address(MemberParams::new("http://api.internal:80").unwrap()).unwrap();
        let status = StatusInner::default();
        let mut s = SourceState::new();
        let now = Instant::now();
        let (d, _) = s.observe(Err(Lookup::Empty), now, &source, &options(), &status);
        assert_eq!(d, Decision::Changed);
        assert_eq!(s.current.as_deref(), Some(&[][..]));
    }
}
