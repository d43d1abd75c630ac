//! `max` and `acquire`: the hard cap on a member's connections, as Apache's connection
//! pool (`apr_reslist` with `hmax` = `max`): every open connection to the member, idle or
//! in use, holds one [`ConnPermit`]; a request that needs a new connection when all are
//! taken waits for one to be returned or closed, at most `acquire`, then fails as a
//! connect failure (503, the member put in error, the request may go to another member),
//! as Apache's AH00941.
//!
//! # For other connection kinds
//!
//! Whatever opens a connection to the member takes a slot first and keeps it for as long
//! as the connection is open: [`ConnLimit::acquire`] (waits up to `acquire`) or
//! [`ConnLimit::try_acquire`], and the [`ConnPermit`] is dropped with the connection. A
//! multiplexed HTTP/2 connection is one connection: one permit for all its streams. An
//! upgraded connection (a WebSocket tunnel) keeps the permit of the HTTP/1.1 connection it
//! came from until the tunnel closes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// One member's connection slots (`max`) and the wait for one (`acquire`).
pub(crate) struct ConnLimit {
    /// `max`; `None`: no cap.
    slots: Option<Arc<Semaphore>>,
    max: u32,
    /// `acquire`; `None`: wait as long as it takes (Apache without `acquire`).
    acquire: Option<Duration>,
    /// Told when a connection goes back to the idle pool: a waiting request may take it.
    returned: Notify,
    /// The member's URL, for logs and errors.
    member: String,
}

/// A slot of the member's `max`: held by one open connection (idle or in use); dropping it
/// frees the slot. Without `max`, it holds nothing.
#[must_use = "a connection keeps its slot while it is open"]
pub(crate) struct ConnPermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl fmt::Debug for ConnPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnPermit")
            .field(&self.0.is_some())
            .finish()
    }
}

impl ConnLimit {
    /// `max` slots (`None`: no cap), waited for at most `acquire` (`None`: as long as
    /// it takes).
    pub(crate) fn new(max: Option<u32>, acquire: Option<Duration>, member: String) -> Self {
        Self {
            // Semaphore::MAX_PERMITS is far above any u32 on 64-bit targets.
            slots: max.map(|n| Arc::new(Semaphore::new((n as usize).min(Semaphore::MAX_PERMITS)))),
            max: max.unwrap_or(0),
            acquire,
            returned: Notify::new(),
            member,
        }
    }

    /// Whether there is a cap (`max`): a request may have to wait for a connection.
    pub(crate) const fn is_capped(&self) -> bool {
        self.slots.is_some()
    }

    /// `acquire`.
    pub(crate) const fn acquire_timeout(&self) -> Option<Duration> {
        self.acquire
    }

    /// A free slot now, if there is one.
    pub(crate) fn try_acquire(&self) -> Option<ConnPermit> {
        match &self.slots {
            None => Some(ConnPermit(None)),
            Some(slots) => Arc::clone(slots)
                .try_acquire_owned()
                .ok()
                .map(|permit| ConnPermit(Some(permit))),
        }
    }

    /// A slot, waiting for one at most `acquire` (as long as it takes without it).
    ///
    /// # Errors
    ///
    /// No slot became free within `acquire`: a connect failure naming the member
    /// (Apache's AH00941).
    #[allow(dead_code)] // For the HTTP/2 pool and the WebSocket tunnel (issue #15).
    pub(crate) async fn acquire(&self) -> Result<ConnPermit, Error> {
        let Some(slots) = &self.slots else {
            return Ok(ConnPermit(None));
        };
        let waiting = Arc::clone(slots).acquire_owned();
        let permit = match self.acquire {
            Some(limit) => tokio::time::timeout(limit, waiting)
                .await
                .map_err(|_| self.timed_out())?,
            None => waiting.await,
        };
        // The semaphore is never closed.
        permit
            .map(|permit| ConnPermit(Some(permit)))
            .map_err(|_| self.timed_out())
    }

    /// Waits until a slot is free (returned as a permit) or a connection went back to the
    /// idle pool (`None`: look there again).
    pub(crate) async fn slot_or_returned(&self) -> Option<ConnPermit> {
        let Some(slots) = &self.slots else {
            return Some(ConnPermit(None));
        };
        tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => permit.ok().map(|p| ConnPermit(Some(p))),
            () = self.returned.notified() => None,
        }
    }

    /// A connection went back to the idle pool.
    pub(crate) fn note_returned(&self) {
        if self.slots.is_some() {
            self.returned.notify_one();
        }
    }

    /// The error of a request that found no slot within `acquire`.
    pub(crate) fn timed_out(&self) -> Error {
        tracing::error!(
            apache_id = "AH00941",
            member = %self.member,
            max = self.max,
            acquire = ?self.acquire,
            "failed to acquire connection: all of the member's max connections are in use"
        );
        Error::connect(format!(
            "no free connection to the member within acquire ({:?}): all {} (max) are in use",
            self.acquire.unwrap_or_default(),
            self.max
        ))
        .with_member(&self.member, Some("AH00941"))
    }
}

impl fmt::Debug for ConnLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnLimit")
            .field("max", &self.slots.as_ref().map(|_| self.max))
            .field("free", &self.slots.as_ref().map(|s| s.available_permits()))
            .field("acquire", &self.acquire)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `max=2`: two slots, the third waits `acquire`, then fails; a freed slot is taken.
    #[tokio::test(start_paused = true)]
    async fn slots_are_capped_and_waited_for_up_to_acquire() {
        let limit = ConnLimit::new(Some(2), Some(Duration::from_millis(500)), "http://m".into());
        let a = limit.try_acquire().expect("a slot");
        let _b = limit.try_acquire().expect("a slot");
        assert!(limit.try_acquire().is_none(), "max=2");
        let started = tokio::time::Instant::now();
        let error = limit.acquire().await.expect_err("no slot within acquire");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(error.kind(), crate::ErrorKind::Connect);
        assert_eq!(error.apache_id(), Some("AH00941"));
        drop(a);
        assert!(limit.acquire().await.is_ok(), "a freed slot");
    }

    #[tokio::test]
    async fn without_max_there_is_always_a_slot() {
        let limit = ConnLimit::new(None, None, "http://m".into());
        let permits: Vec<_> = (0..1000).map(|_| limit.try_acquire()).collect();
        assert!(permits.iter().all(Option::is_some));
        assert!(limit.acquire().await.is_ok());
    }
}
