//! The future of [`RetryWindow`](super::RetryWindow).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use proxy_balancer_core::Member;

use super::{judge_error, judge_response, OutcomeRules};
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
                judge_response(this.member, this.rules, &mut response);
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
