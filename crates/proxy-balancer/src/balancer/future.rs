//! The future of the [`Balancer`](super::Balancer) service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use proxy_balancer_core::{Member, MemberId, PickError, PickRequest, Picked};
use tower_service::Service;

use super::{
    BalancedBody, BalancerInfo, MakeMember, ReplayBody, RouteLookedUp, SessionRoute, Shared,
    TunnelHold,
};
use crate::error::{BoxError, Error, ErrorKind};
use crate::retry_window::{judge_error, judge_response, OutcomeRules};

/// Apache waits for a usable member in 100 steps of `timeout / 100`.
const WAIT_STEPS: u32 = 100;

type MemberService<M> = <M as MakeMember>::Service;

/// What a request keeps to build each attempt.
struct Template<B> {
    /// The request's head: method, URI, version, headers and extensions.
    parts: http::request::Parts,
    body: ReplayBody<B>,
    /// Apache's count of what is sent before the body: request line and headers.
    head_len: u64,
}

impl<B> Template<B> {
    fn attempt(&self, picked: &Picked) -> Option<Request<ReplayBody<B>>> {
        let body = self.body.next_attempt(picked.member())?;
        Some(Request::from_parts(self.parts.clone(), body))
    }
}

/// The bytes of a request line and headers as sent on the wire, which Apache's bytraffic
/// counts (`GET /path HTTP/1.1\r\n`, `Name: value\r\n` each, and the blank line).
fn head_len(parts: &http::request::Parts) -> u64 {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    (line + headers + 2) as u64
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Pick,
        Wait {
            #[pin]
            sleep: tokio::time::Sleep,
        },
        Call {
            #[pin]
            call: F,
            picked: Outstanding,
            // What judges the outcome (`None`: the default rules).
            rules: Option<Arc<OutcomeRules>>,
        },
        Done,
    }
}

/// The member call of one try.
type Call<M, B> = MemberCall<MemberService<M>, Request<ReplayBody<B>>>;

pin_project! {
    /// One call of a member's service: what [`Oneshot`](tower::util::Oneshot) does, with
    /// the request out of the future's size (and its moves) when the service is ready at
    /// once, as members nearly always are.
    #[project = MemberCallProj]
    enum MemberCall<S, Req>
    where
        S: Service<Req>,
    {
        Called {
            #[pin]
            future: S::Future,
        },
        NotReady {
            waiting: Option<Box<(S, Req)>>,
        },
        Failed {
            error: Option<S::Error>,
        },
    }
}

impl<S: Service<Req>, Req> MemberCall<S, Req> {
    /// Calls `service` if it is ready now; else keeps both until it is.
    fn start(mut service: S, request: Req, cx: &mut Context<'_>) -> Self {
        match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => Self::Called {
                future: service.call(request),
            },
            Poll::Ready(Err(error)) => Self::Failed { error: Some(error) },
            Poll::Pending => Self::NotReady {
                waiting: Some(Box::new((service, request))),
            },
        }
    }
}

impl<S: Service<Req>, Req> Future for MemberCall<S, Req> {
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                MemberCallProj::Called { future } => return future.poll(cx),
                MemberCallProj::NotReady { waiting } => {
                    let (service, _) =
                        &mut **waiting.as_mut().expect("invariant: kept until called");
                    ready!(service.poll_ready(cx))?;
                    let (mut service, request) =
                        *waiting.take().expect("invariant: kept until called");
                    self.set(Self::Called {
                        future: service.call(request),
                    });
                }
                MemberCallProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("invariant: polled once")));
                }
            }
        }
    }
}

/// What a step of the request's tries leads to: the next state, or the answer.
enum Step<F, T> {
    Next(State<F>),
    Finish(T),
}

/// A [`Step`] of the balancer's future.
type TryStep<M, B, RB> = Step<Call<M, B>, Result<Response<BalancedBody<RB>>, Error>>;

pin_project! {
    /// The response future of the [`Balancer`](super::Balancer).
    pub struct ResponseFuture<M, B>
    where
        M: MakeMember,
        MemberService<M>: Service<Request<ReplayBody<B>>>,
    {
        tries: Tries<M, B>,
        #[pin]
        state: State<Call<M, B>>,
    }
}

/// What all tries of one request share: the balancer, the request to replay, its session
/// route and the count of tries.
struct Tries<M: MakeMember, B> {
    shared: Arc<Shared<M>>,
    template: Template<B>,
    route: Option<SessionRoute>,
    /// The route is still to be read from the request (no StickyRoute looked for it).
    look_up_route: bool,
    attempts: Attempts,
    /// The last member tried and its pick's `route_changed`, for the `BALANCER_*` values of
    /// the error answer if no other member answers (Apache keeps them).
    last_tried: Option<(Member, bool)>,
}

impl<M, B> ResponseFuture<M, B>
where
    M: MakeMember,
    MemberService<M>: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    pub(crate) fn new(shared: Arc<Shared<M>>, request: Request<B>) -> Self {
        let (parts, body) = request.into_parts();
        // Without a StickyRoute in front, the first pick reads the session route itself
        // (with the view it loads anyway), as mod_proxy_balancer does, so a sticky balancer
        // is never silently not sticky.
        let (route, look_up_route) = match (
            parts.extensions.get::<SessionRoute>(),
            parts.extensions.get::<RouteLookedUp>(),
        ) {
            (Some(route), _) => (Some(route.clone()), false),
            (None, Some(RouteLookedUp)) => (None, false),
            (None, None) => (None, true),
        };
        let limit = shared.options.replay_limit;
        let template = Template {
            head_len: head_len(&parts),
            parts,
            body: ReplayBody::new(body, limit),
        };
        Self {
            tries: Tries {
                shared,
                template,
                route,
                look_up_route,
                attempts: Attempts {
                    tried: Vec::new(),
                    left: None,
                    waits_left: WAIT_STEPS,
                },
                last_tried: None,
            },
            state: State::Pick,
        }
    }
}

impl<M, B> fmt::Debug for ResponseFuture<M, B>
where
    M: MakeMember,
    MemberService<M>: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("tried", &self.tries.attempts.tried)
            .finish_non_exhaustive()
    }
}

/// The clock, through tokio so that paused-clock tests drive it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl<M, B, RB> Future for ResponseFuture<M, B>
where
    M: MakeMember,
    MemberService<M>: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    <MemberService<M> as Service<Request<ReplayBody<B>>>>::Error: Into<BoxError>,
    B: Body,
    RB: Body,
{
    type Output = Result<Response<BalancedBody<RB>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let step = match this.state.as_mut().project() {
                StateProj::Pick => this.tries.pick(cx),
                StateProj::Wait { sleep } => {
                    ready!(sleep.poll(cx));
                    Step::Next(State::Pick)
                }
                StateProj::Call {
                    call,
                    picked,
                    rules,
                } => {
                    let result = ready!(call.poll(cx));
                    let (picked, called_at) = picked.take();
                    let answered_at = now();
                    // Judged as a RetryWindow around the member's service would.
                    let rules = rules
                        .as_ref()
                        .unwrap_or_else(|| OutcomeRules::default_shared());
                    match result {
                        Ok(mut response) => {
                            let failed = judge_response(picked.member(), rules, &mut response);
                            // Any 5xx is a failure to the estimate (as to outlier
                            // ejection), judged by `failonstatus` or not.
                            let penalised = failed || response.status().is_server_error();
                            observe_rtt(picked.member(), called_at, answered_at, penalised);
                            this.tries.on_response(picked, response, failed)
                        }
                        Err(error) => {
                            observe_rtt(picked.member(), called_at, answered_at, true);
                            let error = judge_error(
                                picked.member(),
                                rules,
                                Error::from_member(error.into()),
                            );
                            this.tries.on_error(picked, error)
                        }
                    }
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            match step {
                Step::Next(state) => this.state.set(state),
                Step::Finish(output) => {
                    this.state.set(State::Done);
                    return Poll::Ready(output);
                }
            }
        }
    }
}

/// The pick a member call is out for, and when the member was called (the pick's clock).
///
/// If the request is dropped before the member answers (the client went away, an outer
/// timeout), the time waited so far is recorded as the member's round-trip sample, as
/// tower's `PeakEwma` does on drop: a member that hangs until clients give up does not keep
/// the estimate of its last quick answer (or borrow a rival's, without one).
struct Outstanding {
    picked: Option<Picked>,
    called_at: std::time::Instant,
}

impl Outstanding {
    const fn new(picked: Picked, called_at: std::time::Instant) -> Self {
        Self {
            picked: Some(picked),
            called_at,
        }
    }

    /// The pick and the call's time, once the member answered (nothing to record on drop).
    fn take(&mut self) -> (Picked, std::time::Instant) {
        let picked = self
            .picked
            .take()
            .expect("invariant: polled once after ready");
        (picked, self.called_at)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        if let Some(picked) = &self.picked {
            let at = now();
            let waited = at.saturating_duration_since(self.called_at);
            picked.member().state().observe_rtt(waited, at);
        }
    }
}

/// Records the member's round-trip time, from its call to its response head, for
/// `lbmethod=p2c-ewma` and the manager (every lbmethod: one clock read per request). A
/// failed call (an error, an answer judged a failure, or any 5xx answer) records a penalty
/// instead, so a member that fails fast never looks fast ([`MemberState::observe_failure`]).
///
/// [`MemberState::observe_failure`]: proxy_balancer_core::MemberState::observe_failure
fn observe_rtt(
    member: &Member,
    called_at: std::time::Instant,
    answered_at: std::time::Instant,
    failed: bool,
) {
    let rtt = answered_at.saturating_duration_since(called_at);
    if failed {
        member.state().observe_failure(rtt, answered_at);
    } else {
        member.state().observe_rtt(rtt, answered_at);
    }
}

// ===== impl Tries =====

impl<M, B, RB> Tries<M, B>
where
    M: MakeMember,
    MemberService<M>: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    B: Body,
    RB: Body,
{
    /// Picks a member for the next try and calls it; with none usable, waits for one or
    /// answers Apache's 503.
    fn pick(&mut self, cx: &mut Context<'_>) -> TryStep<M, B, RB> {
        let view = self.shared.view();
        let snapshot = &view.snapshot;
        if std::mem::take(&mut self.look_up_route) {
            if let Some(found) = view.routes.as_ref().and_then(|routes| {
                routes.extract(&self.template.parts.uri, &self.template.parts.headers)
            }) {
                self.route = Some(SessionRoute {
                    sticky_name: Arc::from(found.name),
                    route: Arc::from(found.route),
                });
            }
        }
        let now = now();
        let key = super::key::RequestKey::of(snapshot.params(), &self.template.parts);
        let request = PickRequest::new().with_tried(&self.attempts.tried);
        let request = key
            .as_ref()
            .map_or(request, |k| request.with_key(k.as_bytes()));
        let request = match &self.route {
            Some(session) => request.with_route(&session.route),
            None => request,
        };
        let error = match snapshot.pick(&request, now) {
            Ok(picked) => {
                if self.attempts.left.is_none() {
                    self.attempts.left = Some(snapshot.max_attempts());
                    // Beyond Apache: the request's deposit in the retry budget, once.
                    self.shared.store.retry_budget().deposit(now);
                }
                let Some(request) = self.template.attempt(&picked) else {
                    // The body was read past the replay limit by an earlier try.
                    return Step::Finish(Err(Error::connect(
                        "request body too large to send again",
                    )
                    .with_member(picked.member().url(), Some("AH01114"))));
                };
                picked
                    .member()
                    .state()
                    .add_transferred(self.template.head_len);
                let service = view.services[picked.position()].clone();
                return Step::Next(State::Call {
                    call: MemberCall::start(service, request, cx),
                    picked: Outstanding::new(picked, now),
                    rules: OutcomeRules::for_calls(&view.rules),
                });
            }
            Err(error) => error,
        };
        // Apache waits in each attempt's pick, the first and every retry alike (observed:
        // a refused member, then 2.0 s of waiting with `timeout=2`); a wait is useless only
        // when every member was tried, as a tried member is never picked again.
        let timeout = snapshot.params().timeout;
        let may_wait = !timeout.is_zero()
            && self.attempts.waits_left > 0
            && !matches!(error, PickError::RouteUnusable { .. })
            && snapshot
                .members()
                .iter()
                .any(|m| !self.attempts.tried.contains(&m.id()));
        if may_wait {
            self.attempts.waits_left -= 1;
            let step = timeout / WAIT_STEPS;
            return Step::Next(State::Wait {
                sleep: tokio::time::sleep(step.max(Duration::from_millis(1))),
            });
        }
        let retry_after = earliest_retry(snapshot, now);
        if retry_after.is_some() {
            tracing::debug!(
                apache_id = "AH00933",
                balancer = %snapshot.params().name,
                "members in error: too soon to retry"
            );
        }
        tracing::warn!(
            apache_id = error.apache_id(),
            balancer = %snapshot.params().name,
            "{error}"
        );
        self.shared.store.note_unavailable();
        let error = Error::from_pick(error, retry_after);
        Step::Finish(Err(match self.last_tried.take() {
            Some((member, route_changed)) => {
                error.with_balancer_info(self.info(member, route_changed))
            }
            None => error,
        }))
    }

    /// The member answered: the client's response, unless the status was judged a failure
    /// (`failonstatus`: `failed`) and the request may go to another member.
    fn on_response(
        &mut self,
        picked: Picked,
        response: Response<RB>,
        failed: bool,
    ) -> TryStep<M, B, RB> {
        let member = picked.member();
        // Beyond Apache, opted in: an idempotent request whose member answered a
        // failonstatus status goes to another member.
        let failed_status = failed
            && self.shared.options.retry_idempotent
            && is_idempotent(&self.template.parts.method);
        if failed_status
            && self.attempts.try_again(&self.template, member)
            && self.budget_allows(member)
        {
            tracing::info!(
                member = member.url(),
                status = response.status().as_u16(),
                "retrying an idempotent request on another member"
            );
            drop(response);
            drop(picked);
            return Step::Next(State::Pick);
        }
        let (mut parts, body) = response.into_parts();
        // Apache counts the status line without its CRLF.
        let reason = parts.status.canonical_reason().unwrap_or("");
        let status_line = "HTTP/1.1 000 ".len() + reason.len();
        member.state().add_read(status_line as u64);
        if self.shared.options.balancer_info {
            parts
                .extensions
                .insert(self.info(member.clone(), picked.route_changed()));
        }
        // A tunnel (a 101 whose member service keeps the connection) holds the busy count
        // for its life; any other answer's body holds it until it ends.
        let tunnel = (parts.status == http::StatusCode::SWITCHING_PROTOCOLS)
            .then(|| parts.extensions.get::<TunnelHold>())
            .flatten();
        let busy = match tunnel {
            Some(hold) => {
                hold.hold(picked.into_busy_guard());
                None
            }
            None => Some(picked.into_busy_guard()),
        };
        let body = BalancedBody::new(body, busy);
        Step::Finish(Ok(Response::from_parts(parts, body)))
    }

    /// Beyond Apache: whether the retry budget allows a `retry_idempotent` retry after
    /// `member` failed (withdrawn if so). A refusal is counted by the budget and logged at
    /// most once a second per balancer.
    fn budget_allows(&self, member: &Member) -> bool {
        let budget = self.shared.store.retry_budget();
        let now = now();
        if budget.withdraw(now) {
            return true;
        }
        if budget.report_refusal(now) {
            tracing::warn!(
                balancer = %self.shared.name,
                member = member.url(),
                refused = budget.refused(),
                "retry budget exhausted: not retrying an idempotent request"
            );
        }
        false
    }

    /// The `BALANCER_*` values of a request answered (or last tried) by `member`.
    fn info(&self, member: Member, route_changed: bool) -> BalancerInfo {
        BalancerInfo {
            balancer_name: Arc::clone(&self.shared.name),
            member,
            session: self.route.clone(),
            route_changed,
        }
    }

    /// The member failed, as judged (and noted in the member's state):
    /// another try after a connect failure, or for an idempotent request when asked; else
    /// the error.
    fn on_error(&mut self, picked: Picked, error: Error) -> TryStep<M, B, RB> {
        let member = picked.member().clone();
        // Apache keeps the BALANCER_* values of the last member tried for its error answer.
        let info = self.info(member.clone(), picked.route_changed());
        self.last_tried = Some((member.clone(), picked.route_changed()));
        drop(picked);
        let member = &member;
        match error.kind() {
            // The failure has been judged (and the member put in error
            // unless it ignores errors): another member may answer.
            ErrorKind::Connect => {
                if self.attempts.try_again(&self.template, member) {
                    return Step::Next(State::Pick);
                }
                tracing::error!(
                    apache_id = "AH01114",
                    member = member.url(),
                    "failed to make connection to backend"
                );
                // No member could be reached: Apache's 503.
                self.shared.store.note_unavailable();
            }
            ErrorKind::Upstream
                if self.shared.options.retry_idempotent
                    && is_idempotent(&self.template.parts.method)
                    && self.attempts.try_again(&self.template, member)
                    && self.budget_allows(member) =>
            {
                tracing::info!(
                    member = member.url(),
                    error = %error,
                    "retrying an idempotent request on another member"
                );
                return Step::Next(State::Pick);
            }
            _ => {}
        }
        // The judgement has named the member (and AH01114 for a connect error).
        Step::Finish(Err(error.with_balancer_info(info)))
    }
}

/// A request's tries: the members tried, the tries left (`maxattempts`, known at the first
/// pick) and the waits for a usable member left to the current try's pick.
struct Attempts {
    tried: Vec<MemberId>,
    left: Option<u32>,
    waits_left: u32,
}

impl Attempts {
    /// After a failed try on `member`: notes it as tried and says whether another try may
    /// follow (tries left, and the body can be sent again); if so, counts it, and its pick
    /// may wait the balancer `timeout` afresh, as Apache's does in every try.
    fn try_again<B>(
        &mut self,
        template: &Template<B>,
        member: &proxy_balancer_core::Member,
    ) -> bool {
        self.tried.push(member.id());
        let left = self.left.get_or_insert(0);
        if *left > 0 && template.body.can_replay() {
            *left -= 1;
            self.waits_left = WAIT_STEPS;
            true
        } else {
            false
        }
    }
}

/// RFC 9110 §9.2.2: methods whose intended effect is the same when repeated.
fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// How long until the first member in error may be retried, for `Retry-After`.
fn earliest_retry(
    snapshot: &proxy_balancer_core::BalancerSnapshot,
    now: std::time::Instant,
) -> Option<Duration> {
    snapshot
        .members()
        .iter()
        .filter(|m| {
            m.flags()
                .contains(proxy_balancer_core::StatusFlags::IN_ERROR)
        })
        .filter_map(|m| {
            let at = m.state().error_time()? + m.params().retry;
            Some(at.saturating_duration_since(now))
        })
        .min()
}
