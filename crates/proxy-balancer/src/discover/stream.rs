//! [`FollowSets`]: a `Stream` of whole member sets applied to a store.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;
use proxy_balancer_core::MemberParams;

use super::{DiscoverError, MemberSetSync, SyncHandle};
use crate::BoxError;

/// How many items of the source one poll takes before yielding to other tasks (as tokio's
/// own cooperative budget, 128, roughly: a member set is far more work than a tokio op).
pub(crate) const BUDGET: u32 = 32;

pin_project! {
    /// The future that applies each member set of a stream to the store, and removes
    /// drained members on time: made by [`MemberSetSync::follow`]. Spawn it (or
    /// [`FollowSets::spawn`]); it ends when the stream has ended and no member drains.
    ///
    /// See the [module docs](super).
    #[must_use = "futures do nothing unless polled"]
    pub struct FollowSets<St> {
        #[pin]
        stream: St,
        sync: MemberSetSync,
        drains: Drains,
        ended: bool,
    }
}

/// The timer of the next drain's end.
#[derive(Default)]
pub(crate) struct Drains {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Drains {
    /// Removes the members whose drain has ended and waits for the next one. Ready when
    /// no member drains.
    pub(crate) fn poll(&mut self, sync: &MemberSetSync, cx: &mut Context<'_>) -> Poll<()> {
        // A bounded loop: each turn either removes members or arms the timer.
        loop {
            let Some(at) = sync.next_expiry() else {
                self.sleep = None;
                return Poll::Ready(());
            };
            if at <= tokio::time::Instant::now().into_std() {
                if let Err(e) = sync.expire() {
                    // Recorded by `expire`; try again at the next wake-up, not in a spin.
                    drop(e);
                    return Poll::Pending;
                }
                continue;
            }
            let deadline = tokio::time::Instant::from_std(at);
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<St> FollowSets<St> {
    pub(crate) fn new(sync: MemberSetSync, stream: St) -> Self {
        Self {
            stream,
            sync,
            drains: Drains::default(),
            ended: false,
        }
    }

    /// A handle on the sync's counters and last error.
    #[must_use]
    pub fn handle(&self) -> SyncHandle {
        self.sync.handle()
    }

    /// The sync this future drives.
    #[must_use]
    pub const fn sync(&self) -> &MemberSetSync {
        &self.sync
    }
}

impl<St, I, E> FollowSets<St>
where
    St: Stream<Item = Result<I, E>> + Send + 'static,
    I: IntoIterator<Item = MemberParams>,
    E: Into<BoxError>,
{
    /// Spawns the future on the current tokio runtime; returns the handle on its counters
    /// and the task (abort it to stop following; the members stay as they are).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`].
    pub fn spawn(self) -> (SyncHandle, tokio::task::JoinHandle<()>) {
        let handle = self.handle();
        (handle, tokio::spawn(self))
    }
}

impl<St, I, E> Future for FollowSets<St>
where
    St: Stream<Item = Result<I, E>>,
    I: IntoIterator<Item = MemberParams>,
    E: Into<BoxError>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let mut budget = BUDGET;
        while !*this.ended {
            if budget == 0 {
                // A source that is always ready: let other tasks run, then go on.
                cx.waker().wake_by_ref();
                break;
            }
            budget -= 1;
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(set))) => {
                    // An error is recorded by `apply`; the last good set stays.
                    let _ = this.sync.apply(set);
                }
                Poll::Ready(Some(Err(e))) => this.sync.record(DiscoverError::Source(e.into())),
                Poll::Ready(None) => {
                    *this.ended = true;
                    this.sync.mark_ended();
                }
                Poll::Pending => break,
            }
        }
        match this.drains.poll(this.sync, cx) {
            Poll::Ready(()) if *this.ended => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

impl<St> fmt::Debug for FollowSets<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowSets")
            .field("sync", &self.sync)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
