//! The future and the response body of [`AccessLog`](super::AccessLog).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::record::Record;

pin_project! {
    /// The response future of [`AccessLog`](super::AccessLog).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<Box<Record>>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response head: the client went away (hyper drops the
            // service's future) or a timeout above gave up.
            if let Some(record) = this.project().record.take() {
                record.on_abandoned();
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) const fn new(inner: F, record: Box<Record>) -> Self {
        Self {
            inner,
            record: Some(record),
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
    B: Body,
{
    type Output = Result<Response<AccessLogBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let record = this.record.take();
        Poll::Ready(match result {
            Ok(response) => {
                let record = record.map(|mut record| {
                    record.on_response(&response);
                    record
                });
                Ok(response.map(|inner| AccessLogBody { inner, record }))
            }
            Err(error) => {
                if let Some(record) = record {
                    record.on_error();
                }
                Err(error)
            }
        })
    }
}

pin_project! {
    /// The response body of [`AccessLog`](super::AccessLog): the inner body, counting the
    /// bytes it gives; the request's line is written when it ends, fails or is dropped.
    pub struct AccessLogBody<B>
    where
        B: Body,
    {
        #[pin]
        inner: B,
        record: Option<Box<Record>>,
    }

    impl<B> PinnedDrop for AccessLogBody<B>
    where
        B: Body,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(record) = this.record.take() {
                // hyper drops a body it was told is empty (or that a HEAD, 204 or 304 must
                // not send) without polling it: that is a complete response.
                let complete = this.inner.is_end_stream() || record.bodiless();
                record.finish(complete);
            }
        }
    }
}

impl<B: Body> AccessLogBody<B> {
    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> fmt::Debug for AccessLogBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for AccessLogBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), this.record.as_mut()) {
                    record.bytes += bytes::Buf::remaining(data) as u64;
                }
            }
            Some(Err(_)) => {
                if let Some(record) = this.record.take() {
                    record.finish(false);
                }
            }
            None => {
                if let Some(record) = this.record.take() {
                    record.finish(true);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
