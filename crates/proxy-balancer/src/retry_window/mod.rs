//! Retry windows: Apache's judgement of one member's outcomes, driving its error state.
//!
//! [`RetryWindow`] wraps the service of one member. After each request it decides, as
//! mod_proxy does, whether the member goes to the error state (`E`) for its `retry` window:
//!
//! | outcome | Apache | here |
//! | --- | --- | --- |
//! | connect failure (refused, connect timeout) | `E`, AH00959 | `E`, event with `apache_id = "AH00959"` |
//! | status in `failonstatus` | `E`, AH01174; the client gets the response | same |
//! | read timeout with `failontimeout=On` | `E`, AH02460 | same |
//! | the body stalls past `timeout` after the head, with `failontimeout=On` ([`BodyOutcome`]) | not `E` (2.4.71 cuts the response, AH01110, and leaves the member `Ok`) | `E`, AH02460: a member that stalls bodies is taken out, where Apache keeps sending it requests that end cut short |
//! | the member ignores errors (`+I`) | never `E` | never `E` |
//! | an answer | — | the run of errors ends ([`MemberState::note_success`](proxy_balancer_core::MemberState::note_success)) |
//! | the client's request body failed while sent ([`ErrorKind::Client`]) | not `E`, AH10154 | not `E`, the run of errors untouched |
//!
//! Beyond Apache, with outlier ejection on (`ejectconsecutive=`, `ejectsuccessrate=`: see
//! [`OutlierParams`]), every outcome is also counted for ejection: a failure is an answer
//! with a 5xx status (whatever `failonstatus` says) or a failure on the member's behalf
//! ([`ErrorKind::Connect`], [`ErrorKind::Timeout`] whatever `failontimeout` says,
//! [`ErrorKind::Upstream`]: refused, reset, timed out, cut short, garbage); any other
//! answer is a success; the client's own failures ([`ErrorKind::Client`]) are not counted.
//! Envoy counts the same by default (5xx and locally originated errors together). An
//! ejection is logged (`outlier ejection: member ejected`), and so is its end, at the first
//! pick after its time.
//!
//! The window itself is the member's `retry` (Apache's fixed window), or, with
//! [`MemberParams::retry_max`](proxy_balancer_core::MemberParams::retry_max), a window that
//! doubles with each error in a row. A member in error is tried again by the first pick
//! after its window.
//!
//! The [`Balancer`](crate::Balancer) wraps every member's service in a `RetryWindow`
//! itself; use the layer directly for a member service used outside a balancer.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use http::{Request, Response, StatusCode};
//! use proxy_balancer::retry_window::{FailedStatus, OutcomeRules, RetryWindowLayer};
//! use proxy_balancer::{BalancerParams, BalancerStore, MemberParams, StatusFlags};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # #[expect(clippy::disallowed_methods, reason = "doc example")]
//! # let now = Instant::now();
//! let store = BalancerStore::new(BalancerParams::new("x"), [MemberParams::new("http://a")?], now)?;
//! let member = store.snapshot().members()[0].clone();
//! let rules = OutcomeRules::new().fail_on_status([503]);
//! let service = ServiceBuilder::new()
//!     .layer(RetryWindowLayer::new(member.clone(), Arc::new(rules)))
//!     .service(service_fn(|_req: Request<()>| async {
//!         let mut r = Response::new(());
//!         *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
//!         Ok::<_, Infallible>(r)
//!     }));
//! let response = service.oneshot(Request::new(())).await?;
//! assert_eq!(response.status(), 503); // passed on, as Apache does
//! assert!(member.flags().contains(StatusFlags::IN_ERROR)); // and the member is in error
//! assert!(response.extensions().get::<FailedStatus>().is_some()); // the verdict, for the balancer
//! # Ok(())
//! # }
//! ```

pub mod future;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Response;
use proxy_balancer_core::{BalancerParams, Member, OutlierParams};
use tower_layer::Layer;
use tower_service::Service;

pub use self::future::ResponseFuture;
use crate::error::{BoxError, Error, ErrorKind};

/// The balancer parameters that judge outcomes: `failonstatus`, `failontimeout` and
/// (beyond Apache) outlier ejection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutcomeRules {
    /// `failonstatus`: statuses that put the member in error.
    pub fail_on_status: Vec<u16>,
    /// `failontimeout`: a read timeout puts the member in error.
    pub fail_on_timeout: bool,
    /// Beyond Apache, `eject*`: outlier ejection (default off). See the
    /// [module docs](self) for which outcomes count.
    pub outlier: OutlierParams,
}

impl OutcomeRules {
    /// No `failonstatus`, `failontimeout=Off`: only connect failures count.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            fail_on_status: Vec::new(),
            fail_on_timeout: false,
            outlier: OutlierParams::OFF,
        }
    }

    /// The rules of a balancer.
    #[must_use]
    pub fn from_params(params: &BalancerParams) -> Self {
        Self {
            fail_on_status: params.fail_on_status.clone(),
            fail_on_timeout: params.fail_on_timeout,
            outlier: params.outlier,
        }
    }

    /// Sets `failonstatus`.
    #[must_use]
    pub fn fail_on_status(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.fail_on_status = statuses.into_iter().collect();
        self
    }

    /// Sets `failontimeout`.
    #[must_use]
    pub const fn fail_on_timeout(mut self, on: bool) -> Self {
        self.fail_on_timeout = on;
        self
    }

    /// Sets outlier ejection's rules (beyond Apache).
    #[must_use]
    pub const fn outlier(mut self, outlier: OutlierParams) -> Self {
        self.outlier = outlier;
        self
    }
}

impl OutcomeRules {
    /// The rules of a balancer for its members' calls: `None` for the default ones (only
    /// connect failures count), which need no `Arc` carried per request.
    pub(crate) fn for_calls(rules: &Arc<Self>) -> Option<Arc<Self>> {
        (rules.fail_on_timeout || !rules.fail_on_status.is_empty() || rules.outlier.is_enabled())
            .then(|| Arc::clone(rules))
    }

    /// The default rules, shared, for a call whose balancer has them
    /// ([`for_calls`](Self::for_calls) gave `None`).
    pub(crate) fn default_shared() -> &'static Arc<Self> {
        static DEFAULT: std::sync::OnceLock<Arc<OutcomeRules>> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(|| Arc::new(Self::new()))
    }
}

/// The verdict on a response whose status is in `failonstatus`: [`RetryWindow`] puts it in
/// the response's extensions after putting the member in error (unless the member ignores
/// errors, `+I`). The response still goes to the client, as Apache sends it; the
/// [`Balancer`](crate::Balancer) reads this mark, and judges no status itself, to retry an
/// idempotent request elsewhere when
/// [`retry_idempotent`](crate::balancer::BalancerOptions::retry_idempotent) asks it to.
///
/// Errors carry their verdict in their [`ErrorKind`]: when a connect
/// failure (or a read timeout with `failontimeout`) comes out of the `RetryWindow`, the
/// member has been put in error (unless it ignores errors) and the error names it.
///
/// # Apache
///
/// `failonstatus` (AH01174).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FailedStatus;

/// Where a member's response body reports how it ended, for the member's error state: the
/// body of an answer is read after [`RetryWindow`] has judged the answer, so a member
/// service that bounds its body's reads puts a `BodyOutcome` in the response's extensions
/// and keeps a clone in the body; `RetryWindow` takes it out and tells it which member and
/// rules judge, and the body calls [`report`](Self::report) when it fails. The built-in
/// client ([`HttpMember`](crate::client::HttpMember)) does this for a body that stalls
/// past the member's `timeout`.
///
/// ```
/// use proxy_balancer::retry_window::BodyOutcome;
/// use proxy_balancer::{Error, ErrorKind};
///
/// let outcome = BodyOutcome::new();
/// // Not judged by a RetryWindow (the service runs alone): the error is passed on as is.
/// let error = outcome.report(Error::timeout("stalled"));
/// assert_eq!(error.kind(), ErrorKind::Timeout);
/// ```
///
/// # Apache
///
/// Apache 2.4.71 does not count a body read timeout for `failontimeout` (the member stays
/// `Ok`); here a [`ErrorKind::Timeout`] reported by the body puts the member in error
/// under `failontimeout=On` (AH02460), as a timeout waiting for the head does.
#[derive(Clone, Default)]
pub struct BodyOutcome {
    judge: Arc<std::sync::OnceLock<(Member, Arc<OutcomeRules>)>>,
}

impl BodyOutcome {
    /// A report slot for one response's body.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The member and rules that judge the body's failure (set once, by [`RetryWindow`]).
    pub(crate) fn judged_by(&self, member: &Member, rules: &Arc<OutcomeRules>) {
        let _ = self.judge.set((member.clone(), Arc::clone(rules)));
    }

    /// Reports that the body failed with `error`: judged as [`RetryWindow`] judges a
    /// member's error (a [`ErrorKind::Timeout`] with `failontimeout=On` puts the member
    /// in error), and returned naming the member. Without a judge, `error` as it is.
    #[must_use]
    pub fn report(&self, error: Error) -> Error {
        match self.judge.get() {
            Some((member, rules)) => judge_error(member, rules, error),
            None => error,
        }
    }
}

impl fmt::Debug for BodyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyOutcome")
            .field("member", &self.judge.get().map(|(m, _)| m.url()))
            .finish()
    }
}

/// Wraps one member's service in a [`RetryWindow`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct RetryWindowLayer {
    member: Member,
    rules: Arc<OutcomeRules>,
}

impl RetryWindowLayer {
    /// A layer for `member`, judging outcomes by `rules`.
    #[must_use]
    pub const fn new(member: Member, rules: Arc<OutcomeRules>) -> Self {
        Self { member, rules }
    }
}

impl<S> Layer<S> for RetryWindowLayer {
    type Service = RetryWindow<S>;
    fn layer(&self, inner: S) -> RetryWindow<S> {
        RetryWindow::new(inner, self.member.clone(), Arc::clone(&self.rules))
    }
}

/// One member's service, whose outcomes drive the member's error state. See the
/// [module docs](self).
#[derive(Clone)]
pub struct RetryWindow<S> {
    inner: S,
    member: Member,
    rules: Arc<OutcomeRules>,
}

impl<S> RetryWindow<S> {
    /// Wraps `inner`, the service of `member`.
    pub const fn new(inner: S, member: Member, rules: Arc<OutcomeRules>) -> Self {
        Self {
            inner,
            member,
            rules,
        }
    }

    /// The member whose outcomes this judges.
    pub const fn member(&self) -> &Member {
        &self.member
    }

    /// The rules it judges by.
    pub fn rules(&self) -> &Arc<OutcomeRules> {
        &self.rules
    }

    /// The wrapped service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> fmt::Debug for RetryWindow<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryWindow")
            .field("member", &self.member.url())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl<S, Req, B> Service<Req> for RetryWindow<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<B>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| self.judge(Error::from_member(e.into())))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        ResponseFuture::new(
            self.inner.call(request),
            self.member.clone(),
            Arc::clone(&self.rules),
        )
    }
}

impl<S> RetryWindow<S> {
    fn judge(&self, error: Error) -> Error {
        judge_error(&self.member, &self.rules, error)
    }
}

/// The clock, through tokio so that paused-clock tests drive it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Judges an answer of `member` by `rules`: a status in `failonstatus` puts the member in
/// error (AH01174) and marks the response with [`FailedStatus`]; any other ends the member's
/// run of errors. A [`BodyOutcome`] in the response is told who judges its body. Returns
/// whether the status failed (the verdict [`FailedStatus`] carries).
pub(crate) fn judge_response<B>(
    member: &Member,
    rules: &Arc<OutcomeRules>,
    response: &mut Response<B>,
) -> bool {
    if let Some(outcome) = response.extensions_mut().remove::<BodyOutcome>() {
        outcome.judged_by(member, rules);
    }
    let status = response.status().as_u16();
    count_outcome(member, rules, response.status().is_server_error());
    if rules.fail_on_status.contains(&status) {
        if member.mark_error(now()) {
            tracing::warn!(
                apache_id = "AH01174",
                member = member.url(),
                status,
                "forcing worker into error state: status in failonstatus"
            );
        }
        response.extensions_mut().insert(FailedStatus);
        true
    } else {
        member.state().note_success();
        false
    }
}

/// Counts an outcome for outlier ejection, if it is on, and logs an ejection it causes.
fn count_outcome(member: &Member, rules: &OutcomeRules, failed: bool) {
    if !rules.outlier.is_enabled() {
        return;
    }
    if let Some(ejection) = member.state().note_outcome(failed, &rules.outlier, now()) {
        tracing::warn!(
            member = member.url(),
            reason = ?ejection.reason,
            duration = ?ejection.duration,
            streak = ejection.streak,
            "outlier ejection: member ejected"
        );
    }
}

pub(crate) fn judge_error(member: &Member, rules: &OutcomeRules, error: Error) -> Error {
    if matches!(
        error.kind(),
        ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Upstream
    ) {
        count_outcome(member, rules, true);
    }
    match error.kind() {
        ErrorKind::Connect if member.mark_error(now()) => {
            tracing::error!(
                apache_id = "AH00959",
                member = member.url(),
                retry = ?member.retry_window(),
                // What failed: the connect itself, or a connect-class failure (no free
                // connection within `acquire`, no `100 Continue` within `ping`, an HTTP/2
                // member's GOAWAY or REFUSED_STREAM).
                %error,
                "disabling worker: connect failed"
            );
        }
        ErrorKind::Timeout if rules.fail_on_timeout && member.mark_error(now()) => {
            tracing::warn!(
                apache_id = "AH02460",
                member = member.url(),
                "forcing worker into error state: timeout (failontimeout)"
            );
        }
        // The client's body failed: the member is not blamed (no error state, its run of
        // errors neither grows nor ends), as Apache, which logs this and closes the
        // member's connection.
        ErrorKind::Client => {
            tracing::warn!(
                apache_id = "AH10154",
                member = member.url(),
                error = ?error.request_body_error(),
                "pass request body failed: the client's body, not the member"
            );
        }
        _ => {}
    }
    let id = matches!(error.kind(), ErrorKind::Connect).then_some("AH01114");
    error.with_member(member.url(), id)
}
