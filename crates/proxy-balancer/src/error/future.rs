//! The future of [`ErrorResponse`](super::ErrorResponse).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

use super::{error_response, BoxError};

pin_project! {
    /// The future of [`ErrorResponse`](super::ErrorResponse).
    pub struct ErrorResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> ErrorResponseFuture<F> {
    pub(super) const fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F> fmt::Debug for ErrorResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ErrorResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match ready!(self.project().inner.poll(cx)) {
            Ok(response) => response.map(Either::Left),
            Err(error) => {
                let error: BoxError = error.into();
                tracing::debug!(error = %error, "answering an error response");
                error_response(&*error).map(Either::Right)
            }
        }))
    }
}
