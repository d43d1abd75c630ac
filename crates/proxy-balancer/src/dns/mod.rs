//! Members discovered from DNS: the A/AAAA records of a name, or its SRV records, asked
//! again when their TTL lapses, turned into member sets for a balancer.
//!
//! A [`DnsSource`] is a member template whose URL's host is a DNS name
//! (`http://api.internal:8080/app`). Each address the name resolves to becomes a member
//! with the template's parameters on the URL's port and path (`http://10.0.0.7:8080/app`);
//! with SRV records (`_http._tcp.api.internal`), each target's addresses on the record's
//! port, the record's weight as `loadfactor` and its priority as `lbset`. A
//! [`DnsDiscovery`] runs the sources of one balancer in a background task and hands each
//! new member set to a [`MemberSetSync`] (the [`discover`](crate::discover) adapters: the
//! state of members that stay is kept, vanished ones drain), or to a closure of yours;
//! [`DnsHandle`] reads how it goes and stops it.
//!
//! | what the DNS does | what the member set does |
//! | --- | --- |
//! | answers addresses | becomes those addresses (members that stay keep their state: errors, counters, health) |
//! | TTL lapses | the name is asked again: after the smallest TTL of the answer, at least [`DEFAULT_MIN_REFRESH`] (a TTL of 0 would ask without pause) and at most [`DEFAULT_MAX_REFRESH`] (a TTL of a day would keep a removed address for a day) |
//! | fails (timeout, SERVFAIL, REFUSED) | stays as it was: logged once per outage, counted ([`DnsHandle::failures`], [`DnsHandle::in_outage`]); asked again after 1 s, doubling up to 10 s |
//! | says the name has no address (NXDOMAIN, or no records) | stays as it was for [`DEFAULT_EMPTY_GRACE`] of such answers in a row, then is emptied (logged, counted by [`DnsHandle::empty_answers`]) |
//!
//! Why the two failures differ: a nameserver that does not answer says nothing about the
//! members, so the last set is the best guess for as long as it lasts. An NXDOMAIN is the
//! DNS saying the name is gone, which is also what a zone being reloaded or a half-updated
//! secondary says for a moment: acting on the first one would turn a DNS hiccup into 503s
//! for every request. So the set is kept for a grace period, then emptied: a name really
//! gone stops getting traffic (its addresses may be handed to something else) after 30 s.
//!
//! A removed member drains (with [`MemberSetSync`]: no new request but sticky ones, for
//! its drain period, then removed); the requests it has in flight finish.
//!
//! # Host and TLS
//!
//! A discovered member's URL holds its address, so requests carry `Host: 10.0.0.7:8080`
//! (unless `ProxyPreserveHost On` sends the client's). A member whose backend routes by
//! name needs `ProxyPreserveHost On`. TLS members (`https`, `wss`, `h2`) are refused
//! ([`DnsSource::check_template`]): their certificates would be checked against the
//! address, not the name.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use proxy_balancer::core::{BalancerParams, MemberParams};
//! use proxy_balancer::discover::MemberSetSync;
//! use proxy_balancer::dns::{DnsDiscovery, DnsResolver, DnsSource};
//! use proxy_balancer::BalancerStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! let store = Arc::new(BalancerStore::new(BalancerParams::new("balancer://api"), [], Instant::now())?);
//! let template = MemberParams::new("http://api.internal:8080/app")?.with_retry(Duration::from_secs(5));
//! let handle = DnsDiscovery::new(DnsResolver::system()?)
//!     .source(DnsSource::address(template)?)
//!     .spawn(MemberSetSync::new(Arc::clone(&store)).with_drain(Duration::from_secs(10)));
//! // ... the store follows api.internal's addresses; later:
//! println!("{} failed lookups, in outage: {}", handle.failures(), handle.in_outage());
//! handle.stop();
//! # Ok(())
//! # }
//! ```
//!
//! # Apache
//!
//! Not an Apache feature: `BalancerMember "http://api.internal:8080" discover=dns` (or
//! `discover=srv`) in a `<Proxy balancer://…>` and `ProxyDiscoverNameserver` read it from
//! a configuration (see `docs/discovery.md`).

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use proxy_balancer_core::MemberParams;

use crate::discover::{MemberSetSync, SyncHandle};

mod runner;
mod source;

pub use source::{DnsRecords, DnsResolver, DnsSource};

use runner::{Options, StatusInner};

/// The shortest wait before a name is asked again, whatever its TTL: 1 s. A TTL of 0
/// (Consul's default) would otherwise ask without pause; 1 s still follows a set that
/// changes every second.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(1);

/// The longest wait before a name is asked again, whatever its TTL: 60 s. A record with a
/// TTL of a day would otherwise keep a removed address for a day; one query a minute per
/// name costs nothing.
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(60);

/// How long a name must have had no address (NXDOMAIN or no records, asked every
/// [`DEFAULT_MIN_REFRESH`]) before its members are removed: 30 s. Longer than a zone
/// reload or a secondary catching up, short enough that a name really gone stops taking
/// traffic soon.
pub const DEFAULT_EMPTY_GRACE: Duration = Duration::from_secs(30);

/// Why a DNS source cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsError {
    /// The member template cannot be discovered (its host is an address, it speaks TLS,
    /// an empty SRV name).
    Template {
        /// Why.
        reason: String,
    },
    /// The resolver cannot be set up (the system's configuration cannot be read).
    Config {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Template { reason } => write!(f, "cannot discover this member: {reason}"),
            Self::Config { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for DnsError {}

/// The DNS sources of one balancer and how often they are asked; [`spawn`] (into a
/// [`MemberSetSync`]) or [`spawn_with`] starts the task. See the [module docs](self).
///
/// [`spawn`]: DnsDiscovery::spawn
/// [`spawn_with`]: DnsDiscovery::spawn_with
#[derive(Debug)]
#[must_use]
pub struct DnsDiscovery {
    resolver: DnsResolver,
    sources: Vec<DnsSource>,
    options: Options,
}

impl DnsDiscovery {
    /// No source yet; [`DEFAULT_MIN_REFRESH`], [`DEFAULT_MAX_REFRESH`] and
    /// [`DEFAULT_EMPTY_GRACE`].
    pub fn new(resolver: DnsResolver) -> Self {
        Self {
            resolver,
            sources: Vec::new(),
            options: Options {
                min_refresh: DEFAULT_MIN_REFRESH,
                max_refresh: DEFAULT_MAX_REFRESH,
                empty_grace: DEFAULT_EMPTY_GRACE,
            },
        }
    }

    /// Adds a source: the member set is every source's members, in the order added.
    pub fn source(mut self, source: DnsSource) -> Self {
        self.sources.push(source);
        self
    }

    /// The bounds on the wait between two lookups of a name (its TTL within them). A
    /// `min` of zero is taken as 1 ms.
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.options.min_refresh = min.max(Duration::from_millis(1));
        self.options.max_refresh = max.max(self.options.min_refresh);
        self
    }

    /// How long a name must have had no address before its members are removed (see the
    /// [module docs](self)). Zero: at the first empty answer.
    pub fn empty_grace(mut self, grace: Duration) -> Self {
        self.options.empty_grace = grace;
        self
    }

    /// Starts the lookups (inside a tokio runtime), each new member set applied to the
    /// store of `sync` ([`MemberSetSync::follow`]): members that stay keep their state,
    /// vanished ones drain (see [`MemberSetSync::with_drain`]). The members of the store
    /// that `sync` did not add (the configuration's, the balancer-manager's) are left
    /// alone. Failures are not passed on: the handle counts them
    /// ([`DnsHandle::failures`]) and the set stays. Stops (both tasks) with
    /// [`DnsHandle::stop`] or when the last clone of the handle is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`].
    pub fn spawn(self, sync: MemberSetSync) -> DnsHandle {
        let (sets, received) = tokio::sync::mpsc::unbounded_channel();
        let (sync_handle, follow) = sync.follow(SetStream(received)).spawn();
        let publish = move |set| {
            // Fails only once the follow task is gone (stopped with the handle).
            let _ = sets.send(Ok::<_, Infallible>(set));
        };
        self.start(publish, Some((follow.abort_handle(), sync_handle)))
    }

    /// Starts the lookups (inside a tokio runtime); `publish` gets every member set that
    /// differs from the last (the first once every source has answered or failed once),
    /// for a sink of your own. The task stops with [`DnsHandle::stop`] or when the last
    /// clone of the handle is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`].
    pub fn spawn_with<F>(self, publish: F) -> DnsHandle
    where
        F: FnMut(Vec<MemberParams>) + Send + 'static,
    {
        self.start(publish, None)
    }

    /// Spawns the lookups; `follow`: [`Self::spawn`]'s follow task and sync handle.
    fn start<F>(
        self,
        publish: F,
        follow: Option<(tokio::task::AbortHandle, SyncHandle)>,
    ) -> DnsHandle
    where
        F: FnMut(Vec<MemberParams>) + Send + 'static,
    {
        let (follow, sync) = follow.unzip();
        let status = Arc::new(StatusInner::default());
        let names = self.sources.iter().map(|s| s.name().to_owned()).collect();
        let task = tokio::spawn(runner::run(
            self.resolver,
            self.sources,
            self.options,
            Arc::clone(&status),
            publish,
        ));
        DnsHandle {
            inner: Arc::new(HandleInner {
                status,
                names,
                task: task.abort_handle(),
                follow,
                sync,
            }),
        }
    }
}

/// The member sets of the lookups, as the `Stream` [`MemberSetSync::follow`] takes.
struct SetStream(tokio::sync::mpsc::UnboundedReceiver<Result<Vec<MemberParams>, Infallible>>);

impl futures_core::Stream for SetStream {
    type Item = Result<Vec<MemberParams>, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A running [`DnsDiscovery`]: how its lookups go, the members it gives; stops the task
/// when the last clone is dropped or on [`DnsHandle::stop`].
#[derive(Clone)]
pub struct DnsHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    status: Arc<StatusInner>,
    names: Vec<String>,
    task: tokio::task::AbortHandle,
    /// [`DnsDiscovery::spawn`]'s follow task, and its sync's handle.
    follow: Option<tokio::task::AbortHandle>,
    sync: Option<SyncHandle>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(follow) = &self.follow {
            follow.abort();
        }
    }
}

impl DnsHandle {
    /// Stops the lookups (the members stay as last given).
    pub fn stop(&self) {
        self.inner.task.abort();
        if let Some(follow) = &self.inner.follow {
            follow.abort();
        }
    }

    /// The handle of the [`MemberSetSync`] the sets go to ([`DnsDiscovery::spawn`]):
    /// members added, draining, the store's refusals.
    #[must_use]
    pub fn sync(&self) -> Option<&SyncHandle> {
        self.inner.sync.as_ref()
    }

    /// The names asked, in source order.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.inner.names
    }

    /// Lookups made.
    #[must_use]
    pub fn lookups(&self) -> u64 {
        self.inner.status.lookups.load(Ordering::Relaxed)
    }

    /// Lookups that failed (no answer, SERVFAIL …): the set was kept.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.inner.status.failures.load(Ordering::Relaxed)
    }

    /// Answers saying a name has no address (NXDOMAIN, or no records).
    #[must_use]
    pub fn empty_answers(&self) -> u64 {
        self.inner.status.empty_answers.load(Ordering::Relaxed)
    }

    /// Member sets handed on.
    #[must_use]
    pub fn updates(&self) -> u64 {
        self.inner.status.updates.load(Ordering::Relaxed)
    }

    /// Whether the last lookup of some name failed (the set it gives is the last good
    /// one).
    #[must_use]
    pub fn in_outage(&self) -> bool {
        self.inner.status.outage.load(Ordering::Relaxed)
    }

    /// The last failure, naming the name.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.inner.status.last_error.lock().clone()
    }

    /// The member set last handed on.
    #[must_use]
    pub fn members(&self) -> Vec<MemberParams> {
        self.inner.status.members.lock().clone()
    }

    /// Rounds of lookups done (a round asks every name that is due).
    #[must_use]
    pub fn rounds(&self) -> u64 {
        self.inner.status.round_count.load(Ordering::Relaxed)
    }

    /// Waits for the next round of lookups to end.
    pub async fn next_round(&self) {
        self.inner.status.rounds.notified().await;
    }

    /// Whether the task is still running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        !self.inner.task.is_finished()
    }
}

impl fmt::Debug for DnsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsHandle")
            .field("names", &self.inner.names)
            .field("lookups", &self.lookups())
            .field("failures", &self.failures())
            .field("in_outage", &self.in_outage())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
