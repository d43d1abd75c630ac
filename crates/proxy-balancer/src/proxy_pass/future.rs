//! The response future of [`Reverse`](super::Reverse).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::reverse_layer::{reverse_response, ReverseConfig};

pin_project! {
    /// The response future of [`Reverse`](super::Reverse): the inner service's, with the
    /// response rewritten when it is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        config: Arc<ReverseConfig>,
        origin: Option<String>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) const fn new(inner: F, config: Arc<ReverseConfig>, origin: Option<String>) -> Self {
        Self {
            inner,
            config,
            origin,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(
            result.map(|response| reverse_response(this.config, this.origin.as_deref(), response)),
        )
    }
}
