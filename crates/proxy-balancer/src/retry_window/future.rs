//! The future of [`RetryWindow`](super::RetryWindow).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use proxy_balancer_core::Member;

use super::{judge_error, now, BodyOutcome, FailedStatus, OutcomeRules};
use crate::error::{BoxError, Error};

pin_project! {
    /// The future of [`RetryWindow`](super::RetryWindow).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        member: Member,
        rules: Arc<OutcomeRules>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) const fn new(inner: F, member: Member, rules: Arc<OutcomeRules>) -> Self {
        Self {
            inner,
            member,
            rules,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("member", &self.member.url())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<B>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(mut response) => {
                if let Some(outcome) = response.extensions_mut().remove::<BodyOutcome>() {
                    outcome.judged_by(this.member, this.rules);
                }
                let status = response.status().as_u16();
                if this.rules.fail_on_status.contains(&status) {
                    if this.member.mark_error(now()) {
                        tracing::warn!(
                            apache_id = "AH01174",
                            member = this.member.url(),
                            status,
                            "forcing worker into error state: status in failonstatus"
                        );
                    }
                    response.extensions_mut().insert(FailedStatus);
                } else {
                    this.member.state().note_success();
                }
                Ok(response)
            }
            Err(error) => Err(judge_error(
                this.member,
                this.rules,
                Error::from_member(error.into()),
            )),
        })
    }
}
