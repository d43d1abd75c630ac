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
use proxy_balancer_core::{MemberId, PickError, PickRequest, Picked};
use tower::util::Oneshot;
use tower::ServiceExt;
use tower_service::Service;

use super::{BalancedBody, BalancerInfo, MakeMember, ReplayBody, SessionRoute, Shared};
use crate::error::{BoxError, Error, ErrorKind};
use crate::retry_window::RetryWindow;

/// Apache waits for a usable member in 100 steps of `timeout / 100`.
const WAIT_STEPS: u32 = 100;

type MemberService<M> = RetryWindow<<M as MakeMember>::Service>;

/// What a request keeps to build each attempt.
struct Template<B> {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    body: ReplayBody<B>,
    /// Apache's count of what is sent before the body: request line and headers.
    head_len: u64,
}

impl<B> Template<B> {
    fn attempt(&self, picked: &Picked) -> Option<Request<ReplayBody<B>>> {
        let body = self.body.next_attempt(picked.member())?;
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        Some(request)
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
            picked: Option<Picked>,
        },
        Done,
    }
}

pin_project! {
    /// The response future of the [`Balancer`](super::Balancer).
    pub struct ResponseFuture<M, B>
    where
        M: MakeMember,
        MemberService<M>: Service<Request<ReplayBody<B>>>,
    {
        shared: Arc<Shared<M>>,
        template: Template<B>,
        route: Option<SessionRoute>,
        attempts: Attempts,
        #[pin]
        state: State<Oneshot<MemberService<M>, Request<ReplayBody<B>>>>,
    }
}

impl<M, B> ResponseFuture<M, B>
where
    M: MakeMember,
    MemberService<M>: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    pub(crate) fn new(shared: Arc<Shared<M>>, request: Request<B>) -> Self {
        let (parts, body) = request.into_parts();
        let route = parts.extensions.get::<SessionRoute>().cloned();
        let limit = shared.options.replay_limit;
        let template = Template {
            head_len: head_len(&parts),
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            extensions: parts.extensions,
            body: ReplayBody::new(body, limit),
        };
        Self {
            shared,
            template,
            route,
            attempts: Attempts {
                tried: Vec::new(),
                left: None,
                waits_left: WAIT_STEPS,
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
            .field("tried", &self.attempts.tried)
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
            match this.state.as_mut().project() {
                StateProj::Pick => {
                    let view = this.shared.view();
                    let snapshot = &view.snapshot;
                    let now = now();
                    let attempts = &mut *this.attempts;
                    let request = PickRequest::new().with_tried(&attempts.tried);
                    let request = match this.route {
                        Some(session) => request.with_route(&session.route),
                        None => request,
                    };
                    match snapshot.pick(&request, now) {
                        Ok(picked) => {
                            attempts.left.get_or_insert_with(|| snapshot.max_attempts());
                            let Some(request) = this.template.attempt(&picked) else {
                                // The body was read past the replay limit by an earlier try.
                                this.state.set(State::Done);
                                return Poll::Ready(Err(Error::connect(
                                    "request body too large to send again",
                                )
                                .with_member(picked.member().url(), Some("AH01114"))));
                            };
                            picked
                                .member()
                                .state()
                                .add_transferred(this.template.head_len);
                            let service = view.services[picked.position()].clone();
                            this.state.set(State::Call {
                                call: service.oneshot(request),
                                picked: Some(picked),
                            });
                        }
                        Err(error) => {
                            // Apache waits in each attempt's pick, the first and every
                            // retry alike (observed: a refused member, then 2.0 s of
                            // waiting with `timeout=2`); a wait is useless only when every
                            // member was tried, as a tried member is never picked again.
                            let timeout = snapshot.params().timeout;
                            let may_wait = !timeout.is_zero()
                                && attempts.waits_left > 0
                                && !matches!(error, PickError::RouteUnusable { .. })
                                && snapshot
                                    .members()
                                    .iter()
                                    .any(|m| !attempts.tried.contains(&m.id()));
                            if may_wait {
                                attempts.waits_left -= 1;
                                let step = timeout / WAIT_STEPS;
                                this.state.set(State::Wait {
                                    sleep: tokio::time::sleep(step.max(Duration::from_millis(1))),
                                });
                                continue;
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
                            this.state.set(State::Done);
                            this.shared.store.note_unavailable();
                            return Poll::Ready(Err(Error::from_pick(error, retry_after)));
                        }
                    }
                }
                StateProj::Wait { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Pick);
                }
                StateProj::Call { call, picked } => {
                    let result = ready!(call.poll(cx));
                    let picked = picked.take().expect("invariant: polled once after ready");
                    let member = picked.member().clone();
                    match result {
                        Ok(response) => {
                            // Beyond Apache, opted in: an idempotent request whose member
                            // answered a failonstatus status goes to another member.
                            let failed_status = this.shared.options.retry_idempotent
                                && is_idempotent(&this.template.method)
                                && snapshot_fails_on(this.shared, response.status());
                            if failed_status && this.attempts.try_again(this.template, &member) {
                                tracing::info!(
                                    member = member.url(),
                                    status = response.status().as_u16(),
                                    "retrying an idempotent request on another member"
                                );
                                drop(response);
                                drop(picked);
                                this.state.set(State::Pick);
                                continue;
                            }
                            let (mut parts, body) = response.into_parts();
                            // Apache counts the status line without its CRLF.
                            let reason = parts.status.canonical_reason().unwrap_or("");
                            let status_line = "HTTP/1.1 000 ".len() + reason.len();
                            member.state().add_read(status_line as u64);
                            parts.extensions.insert(BalancerInfo {
                                balancer_name: Arc::clone(&this.shared.name),
                                member,
                                session: this.route.clone(),
                                route_changed: picked.route_changed(),
                            });
                            this.state.set(State::Done);
                            let body = BalancedBody::new(body, picked.into_busy_guard());
                            return Poll::Ready(Ok(Response::from_parts(parts, body)));
                        }
                        Err(error) => {
                            let error = Error::from_member(error.into());
                            drop(picked);
                            match error.kind() {
                                ErrorKind::Connect => {
                                    // The member's RetryWindow has put it in error.
                                    if this.attempts.try_again(this.template, &member) {
                                        this.state.set(State::Pick);
                                        continue;
                                    }
                                    tracing::error!(
                                        apache_id = "AH01114",
                                        member = member.url(),
                                        "failed to make connection to backend"
                                    );
                                }
                                ErrorKind::Upstream
                                    if this.shared.options.retry_idempotent
                                        && is_idempotent(&this.template.method)
                                        && this.attempts.try_again(this.template, &member) =>
                                {
                                    tracing::info!(
                                        member = member.url(),
                                        error = %error,
                                        "retrying an idempotent request on another member"
                                    );
                                    this.state.set(State::Pick);
                                    continue;
                                }
                                _ => {}
                            }
                            this.state.set(State::Done);
                            if error.kind() == ErrorKind::Connect {
                                // No member could be reached: Apache's 503.
                                this.shared.store.note_unavailable();
                            }
                            let id =
                                matches!(error.kind(), ErrorKind::Connect).then_some("AH01114");
                            return Poll::Ready(Err(error.with_member(member.url(), id)));
                        }
                    }
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
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

/// Whether the balancer's `failonstatus` lists `status`.
fn snapshot_fails_on<M: MakeMember>(shared: &Shared<M>, status: http::StatusCode) -> bool {
    shared
        .store
        .load()
        .params()
        .fail_on_status
        .contains(&status.as_u16())
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
