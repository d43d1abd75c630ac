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

use super::{error_response, BoxError, Error};

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
                let response = error_response(&*error);
                log_error_response(&*error, response.status());
                response.map(Either::Right)
            }
        }))
    }
}

/// A 502 or 504 is logged at `error` with an Apache id, as Apache logs it (the balancer
/// logs the 503s where it decides them: AH01170, AH01114); AH01102, "error reading status
/// line from remote server", when the error carries no id of its own.
fn log_error_response(error: &(dyn std::error::Error + 'static), status: http::StatusCode) {
    if status == http::StatusCode::BAD_GATEWAY || status == http::StatusCode::GATEWAY_TIMEOUT {
        let apache_id = error
            .downcast_ref::<Error>()
            .and_then(Error::apache_id)
            .unwrap_or("AH01102");
        let cause = std::error::Error::source(error).map(ToString::to_string);
        tracing::error!(
            apache_id,
            status = status.as_u16(),
            cause = cause.as_deref().unwrap_or(""),
            "{error}"
        );
    } else {
        tracing::debug!(%error, status = status.as_u16(), "answering an error response");
    }
}
