//! Edits shared by a fleet: the hook through which a balancer-manager hands its edits to a
//! store that several instances watch (etcd: the `proxy-balancer-etcd` crate), instead of
//! applying them to this instance alone.
//!
//! Without a [`SharedEdits`] (the default) an edit changes this instance's stores, as in
//! Apache. With one (`BalancerManagerBuilder::shared`),
//! the manager checks the edit against this instance's state, then calls
//! [`SharedEdits::submit`]; the implementation writes it to the shared store (refusing it, and
//! saying why, when that store cannot be reached), and applies it here and on every instance
//! that watches the store. The page, the XML and the JSON show
//! [`SharedEdits::status`] and each member's [`SharedEdits::last_change`].
//!
//! What is shared is what an operator sets: the status flags an operator sets (D, N, S, H, R,
//! I), `loadfactor`, `lbset`, `route`, `redirect`, the health-check parameters, the balancer's
//! settings and the members added through a manager. What each request changes (busy counts,
//! `lbstatus`, error windows, health results: the `C` flag) stays local to each instance.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::edit::Edit;

/// A boxed future, as [`SharedEdits::submit`] returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One edit for the fleet: what the manager hands to [`SharedEdits::submit`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SharedEditRequest {
    /// The balancer's name, without `balancer://`.
    pub balancer: String,
    /// The edit, parsed and already checked against this instance's state.
    pub edit: Edit,
    /// Who asked for it, as the page shows it (the client's address, and the user when the
    /// request carried one).
    pub by: String,
    /// When the edit's flags lapse (`w_ttl`): a drain for a maintenance window. `None`: they
    /// hold until changed.
    pub ttl: Option<Duration>,
}

impl SharedEditRequest {
    /// An edit of `balancer` asked for by `by`.
    #[must_use]
    pub fn new(balancer: impl Into<String>, edit: Edit, by: impl Into<String>) -> Self {
        Self {
            balancer: balancer.into(),
            edit,
            by: by.into(),
            ttl: None,
        }
    }

    /// With flags that lapse after `ttl`.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }
}

/// What the shared store did with an edit that it took.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Submitted {
    /// The shared store's revision that holds the edit.
    pub revision: u64,
    /// What changed, in the words [`Applied::changed`](crate::edit::Applied) uses
    /// (`loadfactor`, `status`, …).
    pub changed: Vec<String>,
    /// Whether the lbmethod's cycle was restarted here (as [`Applied::lb_reset`](crate::edit::Applied)).
    pub lb_reset: bool,
}

impl Submitted {
    /// An edit the shared store took at `revision`, having changed `changed`.
    ///
    /// ```
    /// use proxy_balancer_manager::shared::Submitted;
    ///
    /// let submitted = Submitted::new(42, vec!["status".to_owned()], false);
    /// assert_eq!(submitted.revision, 42);
    /// ```
    #[must_use]
    pub fn new(revision: u64, changed: Vec<String>, lb_reset: bool) -> Self {
        Self {
            revision,
            changed,
            lb_reset,
        }
    }
}

/// Why an edit was not taken by the shared store. Nothing changed, here or elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedEditError {
    /// The shared store cannot be reached: the edit is refused so that instances do not
    /// diverge (503).
    #[error("the shared store is unavailable: {reason}; the edit was not made (every instance keeps serving with the state it last saw)")]
    Unavailable {
        /// What failed, and since when.
        reason: String,
    },
    /// The shared store did not answer a write in time (or the link broke while it was
    /// on its way): the edit may still have been taken, and is then applied on every
    /// instance from its watch. Reload the page before trying again (504).
    #[error("the shared store did not confirm the edit: {reason}; it may still have been made (every instance then applies it): reload the page before trying again")]
    Uncertain {
        /// What failed.
        reason: String,
    },
    /// Another instance changed the same thing at the same time and the edit could not be
    /// merged on top of it (409).
    #[error("conflicting edit: {reason}")]
    Conflict {
        /// What conflicted.
        reason: String,
    },
    /// The shared store refused the edit (400), e.g. a `w_ttl` out of range.
    #[error("{reason}")]
    Refused {
        /// Why.
        reason: String,
    },
}

impl SharedEditError {
    /// The HTTP status the manager answers with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Unavailable { .. } => 503,
            Self::Uncertain { .. } => 504,
            Self::Conflict { .. } => 409,
            Self::Refused { .. } => 400,
        }
    }
}

/// Who changed something through the shared store, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeRecord {
    /// Who asked for it (see [`SharedEditRequest::by`]) and through which instance.
    pub by: String,
    /// When the shared store took it.
    pub at: SystemTime,
    /// What changed (`status`, `loadfactor`, …).
    pub changed: Vec<String>,
    /// When the change's flags lapse, if they carry a TTL.
    pub expires: Option<SystemTime>,
    /// The shared store's revision of the change.
    pub revision: u64,
}

impl ChangeRecord {
    /// A record of a change made by `by` at `at`.
    #[must_use]
    pub fn new(by: impl Into<String>, at: SystemTime, revision: u64) -> Self {
        Self {
            by: by.into(),
            at,
            changed: Vec::new(),
            expires: None,
            revision,
        }
    }
}

/// The link to the shared store, as the page, the XML, the JSON and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedStatus {
    /// What is shared and where (e.g. `etcd http://127.0.0.1:2379 prefix /proxy-balancer/`).
    pub backend: String,
    /// This instance's name in the fleet.
    pub instance: String,
    /// Whether the store is reachable and watched now. While it is not, this instance
    /// serves with the last state it saw and refuses edits.
    pub connected: bool,
    /// Since when `connected` has held its value.
    pub since: SystemTime,
    /// The last revision of the store applied here.
    pub revision: u64,
    /// The last error talking to the store, if any.
    pub last_error: Option<String>,
}

impl SharedStatus {
    /// A status for `backend` seen by `instance`.
    #[must_use]
    pub fn new(backend: impl Into<String>, instance: impl Into<String>, connected: bool) -> Self {
        Self {
            backend: backend.into(),
            instance: instance.into(),
            connected,
            since: SystemTime::now(),
            revision: 0,
            last_error: None,
        }
    }
}

/// A store of operator edits shared by a fleet of instances. See the [module docs](self).
pub trait SharedEdits: Send + Sync + 'static {
    /// Writes `request` to the shared store. `Ok` once the store took it; the change is
    /// applied on this instance before the future ends, and on every other instance when its
    /// watch sees it.
    ///
    /// # Errors
    ///
    /// [`SharedEditError`]: nothing changed.
    fn submit(
        &self,
        request: SharedEditRequest,
    ) -> BoxFuture<'_, Result<Submitted, SharedEditError>>;

    /// The link to the shared store now.
    fn status(&self) -> SharedStatus;

    /// The last change of a member (`member` is its URL) or, with `None`, of the balancer's
    /// own settings, as far as this instance has seen.
    fn last_change(&self, balancer: &str, member: Option<&str>) -> Option<ChangeRecord>;
}

impl fmt::Debug for dyn SharedEdits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedEdits")
            .field("status", &self.status())
            .finish()
    }
}
