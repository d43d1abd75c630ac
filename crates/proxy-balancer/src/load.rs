//! Our members in tower's own balancer (beyond Apache): [`MemberLoad`] implements
//! [`tower::load::Load`] from a member's shared state, so that a member's service can be
//! balanced by [`tower::balance::p2c::Balance`] with the same peak-EWMA cost as
//! `lbmethod=p2c-ewma`.
//!
//! The wrapper counts each call as busy on the member (the count the balancer's pick and
//! the manager read) and records the member's round-trip time, from the call to the
//! response, as the [`Balancer`](crate::Balancer) does:
//! [`MemberState::observe_rtt`](proxy_balancer_core::MemberState::observe_rtt), or the
//! failure penalty for an error
//! ([`MemberState::observe_failure`](proxy_balancer_core::MemberState::observe_failure)).
//! Requests sent through our balancer and through tower's to the same members share one
//! estimate and one busy count.
//!
//! # The cost
//!
//! [`Cost`] = round-trip estimate × (requests in flight + 1) / effective load factor (the
//! load factor ramped by `slowstart`), as `p2c-ewma` compares. tower's `Load` rates each
//! service alone, so a member without a sample cannot borrow the other candidate's
//! estimate as our pick does: it is charged [`DEFAULT_RTT`] (1 ms, so that it is chosen and
//! measured soon; see there), or what [`MemberLoad::with_default_rtt`] sets.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use proxy_balancer_core::{BusyGuard, Member};
use tower::load::{CompleteOnResponse, Load, TrackCompletion};
use tower_service::Service;

/// What a member without a round-trip sample is charged: 1 ms. Low on purpose: a member
/// without a sample is never measured until it is chosen, so a default above its peers'
/// estimates starves it for good (30 ms, linkerd's, left a loopback member unused while a
/// 20 ms member took a sixth of the requests); a low one gets it chosen and measured at
/// once, and its requests in flight bound what it draws before its first answer.
pub const DEFAULT_RTT: Duration = Duration::from_millis(1);

/// A member's service with a [`Load`] from the member's state: see the [module](self).
///
/// `C` says when a call ends for the busy count: [`CompleteOnResponse`] (the default) when
/// the response arrives; a [`TrackCompletion`] of your own can keep the handle until the
/// response's body ends, as the [`Balancer`](crate::Balancer) does.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::{Duration, Instant};
/// use proxy_balancer::load::MemberLoad;
/// use proxy_balancer::{BalancerParams, BalancerStore, MemberParams};
/// use tower::balance::p2c::Balance;
/// use tower::discover::ServiceList;
/// use tower::{service_fn, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let members = [MemberParams::new("http://fast")?, MemberParams::new("http://slow")?];
/// # #[expect(clippy::disallowed_methods, reason = "doc example")]
/// let store = BalancerStore::new(BalancerParams::new("b"), members, Instant::now())?;
/// let snapshot = store.snapshot();
/// let services: Vec<_> = snapshot
///     .members()
///     .iter()
///     .map(|member| {
///         let url = member.url().to_owned();
///         let service = service_fn(move |()| {
///             let url = url.clone();
///             async move { Ok::<_, Infallible>(url) }
///         });
///         MemberLoad::new(service, member.clone())
///     })
///     .collect();
/// // The slow member's last answer took 50 ms; the fast one's 1 ms.
/// # #[expect(clippy::disallowed_methods, reason = "doc example")]
/// let now = Instant::now();
/// snapshot.members()[0].state().observe_rtt(Duration::from_millis(1), now);
/// snapshot.members()[1].state().observe_rtt(Duration::from_millis(50), now);
/// let balance = Balance::new(ServiceList::new(services));
/// assert_eq!(balance.oneshot(()).await.map_err(|e| e.to_string())?, "http://fast");
/// # Ok(())
/// # }
/// ```
pub struct MemberLoad<S, C = CompleteOnResponse> {
    service: S,
    member: Member,
    default_rtt: Duration,
    completion: C,
}

impl<S> MemberLoad<S> {
    /// Wraps `service`, the service of `member`; a call ends when its response arrives.
    pub fn new(service: S, member: Member) -> Self {
        Self {
            service,
            member,
            default_rtt: DEFAULT_RTT,
            completion: CompleteOnResponse::default(),
        }
    }
}

impl<S, C> MemberLoad<S, C> {
    /// What the member is charged before its first round-trip sample (default
    /// [`DEFAULT_RTT`]).
    #[must_use]
    pub fn with_default_rtt(mut self, rtt: Duration) -> Self {
        self.default_rtt = rtt;
        self
    }

    /// Says when a call ends for the busy count (see [`TrackCompletion`]).
    pub fn with_completion<C2>(self, completion: C2) -> MemberLoad<S, C2> {
        MemberLoad {
            service: self.service,
            member: self.member,
            default_rtt: self.default_rtt,
            completion,
        }
    }

    /// The member.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The member's cost at `now`: see [`Cost`].
    #[must_use]
    pub fn cost_at(&self, now: Instant) -> Cost {
        let state = self.member.state();
        let rtt = state.rtt_estimate(now).unwrap_or(self.default_rtt);
        let share = self.member.slow_start_share(now).unwrap_or(1.0);
        // The ×100 load factor (at least 1, as the pick's), back to Apache's units.
        let weight = (self.member.lbf() as f64 * share).max(1.0) / 100.0;
        Cost(rtt.as_nanos() as f64 * (state.busy() + 1) as f64 / weight)
    }
}

impl<S: fmt::Debug, C> fmt::Debug for MemberLoad<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberLoad")
            .field("service", &self.service)
            .field("member", &self.member.url())
            .field("default_rtt", &self.default_rtt)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, C: Clone> Clone for MemberLoad<S, C> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            member: self.member.clone(),
            default_rtt: self.default_rtt,
            completion: self.completion.clone(),
        }
    }
}

/// The clock, through tokio so that paused-clock tests drive it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<S, C> Load for MemberLoad<S, C> {
    type Metric = Cost;

    fn load(&self) -> Cost {
        self.cost_at(now())
    }
}

impl<S, C, Request> Service<Request> for MemberLoad<S, C>
where
    S: Service<Request>,
    C: TrackCompletion<Handle, S::Response>,
{
    type Response = C::Output;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let busy = self.member.begin_request();
        ResponseFuture {
            future: self.service.call(request),
            handle: Some(Handle { busy }),
            completion: self.completion.clone(),
            called_at: now(),
        }
    }
}

/// A member's peak-EWMA cost: round-trip estimate (ns) × (requests in flight + 1) /
/// effective load factor (`loadfactor=`, ramped by `slowstart`). Lower is better.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Cost(f64);

impl Cost {
    /// The cost as a number.
    #[must_use]
    pub const fn get(self) -> f64 {
        self.0
    }
}

/// A call in flight on a member: it counts as busy until this is dropped.
#[derive(Debug)]
pub struct Handle {
    busy: BusyGuard,
}

impl Handle {
    /// The member the call is on.
    #[must_use]
    pub fn member(&self) -> &Member {
        self.busy.member()
    }
}

pin_project! {
    /// The response future of [`MemberLoad`]: records the round-trip time when the
    /// response (or the error) arrives.
    pub struct ResponseFuture<F, C> {
        #[pin]
        future: F,
        handle: Option<Handle>,
        completion: C,
        called_at: Instant,
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: TrackCompletion<Handle, T>,
{
    type Output = Result<C::Output, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        let Some(handle) = this.handle.take() else {
            panic!("ResponseFuture polled after completion");
        };
        let answered_at = now();
        let rtt = answered_at.saturating_duration_since(*this.called_at);
        let state = handle.member().state();
        Poll::Ready(match result {
            Ok(response) => {
                state.observe_rtt(rtt, answered_at);
                Ok(this.completion.track_completion(handle, response))
            }
            Err(error) => {
                state.observe_failure(rtt, answered_at);
                Err(error)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proxy_balancer_core::{BalancerParams, BalancerStore, MemberParams};
    use tower::{service_fn, ServiceExt};

    use super::*;

    fn store(n: usize, lf: &[&str]) -> Arc<BalancerStore> {
        let members = (0..n).map(|i| {
            let mut m = MemberParams::new(&format!("http://m{i}")).unwrap();
            if let Some(lf) = lf.get(i) {
                m.set("loadfactor", lf).unwrap();
            }
            m
        });
        Arc::new(BalancerStore::new(BalancerParams::new("b"), members, now()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn counts_busy_records_rtt_and_costs() {
        let store = store(2, &["1", "2"]);
        let snapshot = store.snapshot();
        let (m0, m1) = (&snapshot.members()[0], &snapshot.members()[1]);
        let slow = service_fn(|fail: bool| async move {
            tokio::time::sleep(Duration::from_millis(4)).await;
            if fail {
                Err("failed")
            } else {
                Ok(())
            }
        });
        let svc = MemberLoad::new(slow, m0.clone());
        let t = now();
        assert_eq!(svc.cost_at(t), Cost(1e6), "the default: 1 ms × 1 / 1");
        let svc = svc.with_default_rtt(Duration::from_millis(7));
        assert_eq!(svc.load(), Cost(7e6));
        let call = tokio::spawn(svc.clone().oneshot(false));
        tokio::task::yield_now().await;
        assert_eq!(m0.state().busy(), 1, "busy while in flight");
        assert_eq!(svc.cost_at(t), Cost(14e6), "7 ms × 2");
        call.await.unwrap().unwrap();
        assert_eq!(m0.state().busy(), 0, "released on the response");
        assert_eq!(
            m0.state().rtt_estimate(now()),
            Some(Duration::from_millis(4))
        );
        assert_eq!(svc.load(), Cost(4e6));
        // An error records the failure penalty.
        assert!(svc.clone().oneshot(true).await.is_err());
        assert_eq!(
            m0.state().rtt_estimate(now()),
            Some(proxy_balancer_core::FAILURE_RTT_FLOOR)
        );
        // Load factor 2 halves the cost.
        let svc1 = MemberLoad::new(service_fn(|()| async { Ok::<_, ()>(()) }), m1.clone());
        assert_eq!(svc1.cost_at(t), Cost(0.5e6), "1 ms / 2");
        assert_eq!(svc1.member().id(), m1.id());
        assert_eq!(svc1.load().get(), 0.5e6);
        assert!(format!("{svc1:?}").contains("http://m1"));
    }

    #[derive(Clone)]
    struct Keep;

    impl TrackCompletion<Handle, ()> for Keep {
        type Output = Handle;
        fn track_completion(&self, handle: Handle, (): ()) -> Handle {
            handle
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_completion_keeps_the_member_busy() {
        let store = store(1, &[]);
        let member = store.snapshot().members()[0].clone();
        let svc = MemberLoad::new(service_fn(|()| async { Ok::<_, ()>(()) }), member.clone())
            .with_completion(Keep);
        let handle = svc.oneshot(()).await.unwrap();
        assert_eq!(member.state().busy(), 1, "until the handle is dropped");
        assert_eq!(handle.member().id(), member.id());
        drop(handle);
        assert_eq!(member.state().busy(), 0);
    }
}
