//! The client's request body, read under the server's body timeout and size limit.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::{ClientLimits, ReadTimeout};
use crate::error::RequestBodyError;

/// A client's request body as the [`Server`](super::Server) hands it to the service:
/// hyper's [`Incoming`], read under `RequestReadTimeout body=` and `LimitRequestBody`.
///
/// - **Timeout** ([`ClientLimits::body_timeout`]): from the first
///   [`poll_frame`](Body::poll_frame), the client has the timeout's initial time plus a
///   second for each `MinRate` bytes it has sent; a client slower than that gets
///   [`RequestBodyError::TimedOut`] (408). The clock is tokio's, and the timer is only
///   set once a read has to wait: a request without a body costs nothing.
/// - **Size** ([`ClientLimits::limit_request_body`]): a body growing past the limit (a
///   chunked one: a `Content-Length` over it is refused before the service is called)
///   fails with [`RequestBodyError::TooLarge`] (413).
/// - **Framing**: hyper's errors reading the body (a bad chunk, a body shorter than its
///   `Content-Length`) are [`RequestBodyError::Framing`] (400); a connection reset or
///   aborted under it is [`RequestBodyError::Aborted`]. hyper's message is logged at
///   debug level.
///
/// After an error, every poll returns the same error. The built-in member client reports
/// a request whose body failed as the client's error, answered with
/// [`RequestBodyError::status`], and does not blame the member.
///
/// [`RequestBody::new`] (or `From<Incoming>`) wraps a body with no limits, for a service
/// served with hyper directly; [`RequestBody::with_limits`] applies a [`ClientLimits`].
///
/// # Example
///
/// A service written for the [`Server`](super::Server) (it takes `Request<RequestBody>`),
/// served over hyper directly, here on an in-memory connection:
///
/// ```
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use hyper::body::Incoming;
/// use hyper_util::rt::TokioIo;
/// use proxy_balancer::server::{ClientLimits, ReadTimeout, RequestBody};
/// use proxy_balancer::BoxError;
///
/// /// Counts the bytes of the request body.
/// async fn count(request: Request<RequestBody>) -> Result<Response<Full<Bytes>>, BoxError> {
///     let body = request.into_body().collect().await?.to_bytes();
///     Ok(Response::new(Full::new(Bytes::from(body.len().to_string()))))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let limits = ClientLimits::new()
///     .body_timeout(ReadTimeout::new(Duration::from_secs(5)).min_rate(500))
///     .limit_request_body(1 << 20);
/// let (client, server) = tokio::io::duplex(64 << 10);
/// tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
///     TokioIo::new(server),
///     hyper::service::service_fn(move |request: Request<Incoming>| {
///         count(request.map(|body| RequestBody::with_limits(body, &limits)))
///     }),
/// ));
///
/// let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client)).await?;
/// tokio::spawn(connection);
/// let request = Request::post("/upload").header("host", "example.com").body(Full::new(Bytes::from("hello")))?;
/// let response = sender.send_request(request).await?;
/// assert_eq!(response.into_body().collect().await?.to_bytes(), "5");
/// # Ok(())
/// # }
/// ```
pub struct RequestBody {
    inner: Incoming,
    timeout: ReadTimeout,
    /// `LimitRequestBody`; zero: unlimited.
    limit: u64,
    /// The data bytes received so far.
    received: u64,
    /// When the body was first polled (with a timeout only).
    started: Option<Instant>,
    /// The body timeout's timer, allocated the first time a read has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The error the body failed with; every later poll returns it again.
    failed: Option<RequestBodyError>,
}

// ===== impl RequestBody =====

impl RequestBody {
    /// Wraps `incoming` with no timeout and no size limit: hyper's body, with its errors
    /// as [`RequestBodyError`]s.
    #[must_use]
    pub const fn new(incoming: Incoming) -> Self {
        Self::with(incoming, ReadTimeout::OFF, 0)
    }

    /// Wraps `incoming` under `limits`' body timeout (`RequestReadTimeout body=`) and
    /// `LimitRequestBody`.
    #[must_use]
    pub const fn with_limits(incoming: Incoming, limits: &ClientLimits) -> Self {
        Self::with(incoming, limits.body_timeout, limits.limit_request_body)
    }

    pub(super) const fn with(incoming: Incoming, timeout: ReadTimeout, limit: u64) -> Self {
        Self {
            inner: incoming,
            timeout,
            limit,
            received: 0,
            started: None,
            sleep: None,
            failed: None,
        }
    }

    /// The data bytes read so far.
    #[must_use]
    pub const fn received(&self) -> u64 {
        self.received
    }

    /// hyper's body.
    pub const fn get_ref(&self) -> &Incoming {
        &self.inner
    }

    /// hyper's body, mutably (reading from it directly escapes the limits).
    pub fn get_mut(&mut self) -> &mut Incoming {
        &mut self.inner
    }

    /// hyper's body, unwrapped.
    pub fn into_inner(self) -> Incoming {
        self.inner
    }

    fn fail(
        &mut self,
        error: RequestBodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        self.failed = Some(error);
        // The timer is no longer needed.
        self.sleep = None;
        Poll::Ready(Some(Err(error)))
    }

    /// With the read waiting: whether the client has run out of time (the timer is set,
    /// or moved to the deadline the bytes received so far give, and polled).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(started) = self.started else {
            return false;
        };
        let Some(allowed) = self.timeout.deadline_after(self.received) else {
            return false;
        };
        // A deadline beyond what `Instant` can hold is no deadline.
        let Some(deadline) = started.checked_add(allowed) else {
            return false;
        };
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            none => none.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl From<Incoming> for RequestBody {
    fn from(incoming: Incoming) -> Self {
        Self::new(incoming)
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("timeout", &self.timeout)
            .field("limit", &self.limit)
            .field("received", &self.received)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        if let Some(error) = this.failed {
            return Poll::Ready(Some(Err(error)));
        }
        if this.started.is_none() && !this.timeout.is_off() {
            this.started = Some(Instant::now());
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                    if this.limit != 0 && this.received > this.limit {
                        tracing::debug!(
                            limit = this.limit,
                            received = this.received,
                            "request body larger than LimitRequestBody"
                        );
                        return this.fail(RequestBodyError::TooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let kind = classify(&error);
                tracing::debug!(%error, ?kind, "reading the request body failed");
                this.fail(kind)
            }
            Poll::Ready(None) => {
                this.sleep = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timed_out(cx) {
                    tracing::debug!(
                        received = this.received,
                        "request body read timed out (RequestReadTimeout body=)"
                    );
                    return this.fail(RequestBodyError::TimedOut);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a hyper error reading a request body means: the connection reset or aborted under
/// it is the client gone; anything else (a bad chunk, an end before the announced length,
/// an HTTP/2 stream error) is broken framing.
fn classify(error: &hyper::Error) -> RequestBodyError {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotConnected => RequestBodyError::Aborted,
                _ => RequestBodyError::Framing,
            };
        }
        source = cause.source();
    }
    if error.is_incomplete_message() || error.is_canceled() {
        RequestBodyError::Aborted
    } else {
        RequestBodyError::Framing
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Request, Response};
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncWriteExt, DuplexStream};
    use tokio::sync::mpsc;

    use super::*;

    /// What the service saw: the body's end (its bytes or its error), when it ended
    /// (from the first poll), and whether the body timer was ever allocated.
    type Seen = (Result<Bytes, RequestBodyError>, Duration, bool);

    /// A hyper HTTP/1.1 connection on an in-memory stream whose service reads each
    /// request body as a [`RequestBody`] with `timeout` and `limit`; the client's end, and
    /// what the service saw.
    fn serve(timeout: ReadTimeout, limit: u64) -> (DuplexStream, mpsc::UnboundedReceiver<Seen>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (tx, rx) = mpsc::unbounded_channel();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let tx = tx.clone();
            async move {
                let mut body = RequestBody::with(request.into_body(), timeout, limit);
                let start = Instant::now();
                let mut data = Vec::new();
                let end = loop {
                    match body.frame().await {
                        None => break Ok(Bytes::from(data)),
                        Some(Err(e)) => break Err(e),
                        Some(Ok(frame)) => {
                            if let Some(d) = frame.data_ref() {
                                data.extend_from_slice(d);
                            }
                        }
                    }
                };
                let _ = tx.send((end, start.elapsed(), body.sleep.is_some()));
                Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service),
        );
        (client, rx)
    }

    fn rate(initial: u64, min_rate: u32) -> ReadTimeout {
        ReadTimeout::new(Duration::from_secs(initial)).min_rate(min_rate)
    }

    async fn seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
        tokio::time::timeout(Duration::from_secs(3600), rx.recv())
            .await
            .expect("the service ends")
            .expect("the service reports")
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_times_out_after_the_initial_time() {
        let (mut client, mut rx) = serve(rate(2, 10), 0);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        let (end, elapsed, _) = seen(&mut rx).await;
        assert_eq!(end, Err(RequestBodyError::TimedOut));
        assert_eq!(elapsed.as_secs(), 2, "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn each_min_rate_bytes_add_a_second() {
        let (mut client, mut rx) = serve(rate(2, 10), 0);
        client
            .write_all(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789abcdefghij",
            )
            .await
            .unwrap();
        // 20 bytes: 2 + 2 = 4 s. At 3 s, 10 more: 5 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        client.write_all(b"0123456789").await.unwrap();
        let (end, elapsed, timer) = seen(&mut rx).await;
        assert_eq!(end, Err(RequestBodyError::TimedOut));
        assert_eq!(elapsed.as_secs(), 5, "{elapsed:?}");
        assert!(!timer, "the timer is dropped with the error");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_min_rate_is_read_to_its_end() {
        let (mut client, mut rx) = serve(rate(1, 10), 0);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n")
            .await
            .unwrap();
        // 10 bytes a second, 5 s in all: past the initial second, never past the rate.
        for _ in 0..5 {
            client.write_all(b"0123456789").await.unwrap();
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        let (end, _, _) = seen(&mut rx).await;
        assert_eq!(end.map(|b| b.len()), Ok(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bodiless_request_sets_no_timer() {
        let (mut client, mut rx) = serve(rate(2, 10), 0);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (end, elapsed, timer) = seen(&mut rx).await;
        assert_eq!(end, Ok(Bytes::new()));
        assert_eq!(elapsed, Duration::ZERO);
        assert!(!timer, "no Sleep for a request without a body");
    }

    #[tokio::test(start_paused = true)]
    async fn off_means_no_timeout() {
        let (mut client, mut rx) = serve(ReadTimeout::OFF, 0);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        client.write_all(b"bc").await.unwrap();
        let (end, elapsed, timer) = seen(&mut rx).await;
        assert_eq!(end, Ok(Bytes::from_static(b"abc")));
        assert_eq!(elapsed.as_secs(), 3600);
        assert!(!timer);
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunked_body_past_the_limit_is_too_large() {
        let (mut client, mut rx) = serve(ReadTimeout::OFF, 10);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n3\r\n89a\r\n0\r\n\r\n")
            .await
            .unwrap();
        let (end, _, _) = seen(&mut rx).await;
        assert_eq!(end, Err(RequestBodyError::TooLarge));

        // At the limit exactly: read.
        let (mut client, mut rx) = serve(ReadTimeout::OFF, 10);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n2\r\n89\r\n0\r\n\r\n")
            .await
            .unwrap();
        let (end, _, _) = seen(&mut rx).await;
        assert_eq!(end.map(|b| b.len()), Ok(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_chunk_is_framing() {
        let (mut client, mut rx) = serve(rate(20, 500), 0);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .await
            .unwrap();
        let (end, elapsed, _) = seen(&mut rx).await;
        assert_eq!(end, Err(RequestBodyError::Framing));
        assert_eq!(elapsed, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_cut_short_is_framing() {
        let (mut client, mut rx) = serve(rate(20, 500), 0);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let (end, _, _) = seen(&mut rx).await;
        assert_eq!(end, Err(RequestBodyError::Framing));
    }

    #[tokio::test]
    async fn errors_repeat_and_the_size_hint_passes_through() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let tx = tx.clone();
            async move {
                let mut body = RequestBody::with(request.into_body(), ReadTimeout::OFF, 4);
                let hint = (body.size_hint().lower(), body.size_hint().upper());
                let first = body.frame().await.map(|f| f.map(|_| ()));
                let again = body.frame().await.map(|f| f.map(|_| ()));
                let _ = tx.send((hint, first, again, body.is_end_stream()));
                Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service),
        );
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabcdef")
            .await
            .unwrap();
        let (hint, first, again, end) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hint, (6, Some(6)));
        assert_eq!(first, Some(Err(RequestBodyError::TooLarge)));
        assert_eq!(again, Some(Err(RequestBodyError::TooLarge)));
        assert!(!end);
    }
}
