//! The future of [`StickyRoute`](super::StickyRoute).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{header, Response};
use pin_project_lite::pin_project;

use super::CookieJob;
use crate::balancer::BalancerInfo;

pin_project! {
    /// The future of [`StickyRoute`](super::StickyRoute).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        cookie: Option<CookieJob>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) const fn new(inner: F, cookie: Option<CookieJob>) -> Self {
        Self { inner, cookie }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(job) = this.cookie.take() {
            let changed = response
                .extensions()
                .get::<BalancerInfo>()
                .filter(|info| info.route_changed())
                .map(|info| info.worker_route().to_owned());
            if let Some(route) = changed {
                let separator = job.cached.snapshot.params().sticky_session_sep;
                let name = job.cached.cookie_name();
                if let Some(value) = job.config.header(name, separator, &route) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
        }
        Poll::Ready(Ok(response))
    }
}
