//! The crate's error, returned by the [`Balancer`](crate::balancer::Balancer) service, and
//! [`ErrorResponseLayer`], which turns it into the
//! response Apache would send.

pub mod future;

use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};
use proxy_balancer_core::PickError;
use tower_layer::Layer;
use tower_service::Service;

mod request_body;

pub use request_body::RequestBodyError;

pub use self::future::ErrorResponseFuture;

/// A boxed error, as tower middleware pass them around.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, in the terms Apache's status codes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No member can take the request (all unusable, or the balancer is empty): 503.
    NoMember,
    /// The request's session route names an unusable member and `nofailover=On`: 503 with
    /// `Connection: close` (Apache's AH01167).
    RouteUnavailable,
    /// The member could not be reached (refused, reset before the request was written,
    /// connect timeout), and no other member could take the request: 503, as Apache.
    Connect,
    /// The member did not answer in time: 504 (Apache answers 502; see the README, "Where we differ from Apache").
    Timeout,
    /// The member failed in another way (closed early, answered garbage, an unexpected
    /// `101 Switching Protocols`): 502.
    Upstream,
    /// The client's request body failed while it was sent to the member (broken framing,
    /// too slow, too large, the client gone): a [`RequestBodyError`] in the member
    /// service's error chain. Answered with that error's status (400, 408 or 413, see
    /// [`Error::status`]; 400 here), never retried, and the member is not blamed: it is not
    /// put in error and its connection is not reused.
    ///
    /// # Apache
    ///
    /// AH10154 (`pass request body failed`), answered with the client's status.
    Client,
}

impl ErrorKind {
    /// The status Apache (or, where we differ on purpose, we) answer for this kind.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::NoMember | Self::RouteUnavailable | Self::Connect => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream => StatusCode::BAD_GATEWAY,
            // The precise status is the RequestBodyError's (Error::status); its most
            // common one here.
            Self::Client => StatusCode::BAD_REQUEST,
        }
    }
}

/// The error of the balancer's services.
///
/// Opaque, in the hyper way: [`Error::kind`] says what happened, [`Error::member`] which
/// member it happened on, and [`std::error::Error::source`] keeps the member service's own
/// error. An `Error` returned by a member service is passed through as it is.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    member: Option<String>,
    apache_id: Option<&'static str>,
    retry_after: Option<Duration>,
    /// For [`ErrorKind::Client`]: what failed in the client's body.
    request_body: Option<RequestBodyError>,
    /// The `BALANCER_*` values of the last member tried, when a member was tried.
    balancer_info: Option<crate::balancer::BalancerInfo>,
    source: Option<BoxError>,
}

impl Error {
    fn new(kind: ErrorKind, source: Option<BoxError>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                member: None,
                apache_id: None,
                retry_after: None,
                request_body: None,
                balancer_info: None,
                source,
            }),
        }
    }

    /// A member could not be reached. Return this from a member service (or an error whose
    /// source is one) to make the balancer fail over.
    pub fn connect(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Connect, Some(source.into()))
    }

    /// A member did not answer in time.
    pub fn timeout(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Timeout, Some(source.into()))
    }

    /// A member failed in another way.
    pub fn upstream(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Upstream, Some(source.into()))
    }

    pub(crate) fn from_pick(error: PickError, retry_after: Option<Duration>) -> Self {
        let kind = match error {
            PickError::RouteUnusable { .. } => ErrorKind::RouteUnavailable,
            _ => ErrorKind::NoMember,
        };
        let apache_id = error.apache_id();
        let mut e = Self::new(kind, Some(Box::new(error)));
        e.inner.apache_id = Some(apache_id);
        e.inner.retry_after = retry_after;
        e
    }

    /// Classifies a member service's error as the balancer does: ours as they are; a
    /// [`RequestBodyError`] anywhere in the chain (the client's body failed while it was
    /// sent), or hyper's client failing on a request body that is a server's own
    /// (`hyper::body::Incoming`), as [`ErrorKind::Client`]; hyper-util's connect errors, I/O
    /// errors that mean "not connected", and an HTTP/2 member's GOAWAY or `REFUSED_STREAM`
    /// (the request was not processed) as [`ErrorKind::Connect`] (the balancer fails over); a timer's elapsed as
    /// [`ErrorKind::Timeout`]; the rest as [`ErrorKind::Upstream`]. The whole source chain
    /// is looked at.
    pub fn classify(error: impl Into<BoxError>) -> Self {
        Self::from_member(error.into())
    }

    pub(crate) fn from_member(error: BoxError) -> Self {
        let error = match error.downcast::<Self>() {
            Ok(ours) => return *ours,
            Err(other) => other,
        };
        if let Some(failed) = find_request_body_error(&*error) {
            let mut e = Self::new(ErrorKind::Client, Some(error));
            e.inner.request_body = Some(failed);
            return e;
        }
        let kind = classify(&*error);
        Self::new(kind, Some(error))
    }

    pub(crate) fn with_member(mut self, url: &str, apache_id: Option<&'static str>) -> Self {
        if self.inner.member.is_none() {
            self.inner.member = Some(url.to_owned());
        }
        if apache_id.is_some() {
            self.inner.apache_id = apache_id;
        }
        self
    }

    pub(crate) fn with_balancer_info(mut self, info: crate::balancer::BalancerInfo) -> Self {
        self.inner.balancer_info = Some(info);
        self
    }

    /// The `BALANCER_*` values of the last member the balancer tried before it failed (as
    /// Apache keeps them for its 502 and 503 answers); [`error_response`] puts them in the
    /// response's extensions.
    #[must_use]
    pub fn balancer_info(&self) -> Option<&crate::balancer::BalancerInfo> {
        self.inner.balancer_info.as_ref()
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The URL of the member the error happened on, if any.
    #[must_use]
    pub fn member(&self) -> Option<&str> {
        self.inner.member.as_deref()
    }

    /// Apache's log message id for this case, where Apache has one (`AH01170`, `AH01167`,
    /// `AH01114` …), so operators can search for the ids they know.
    #[must_use]
    pub fn apache_id(&self) -> Option<&'static str> {
        self.inner.apache_id
    }

    /// Whether another try could succeed: no member now, a connect failure (never a
    /// client's failed body, [`ErrorKind::Client`]).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::NoMember | ErrorKind::Connect)
    }

    /// The status to answer with: [`ErrorKind::status`], except for
    /// [`ErrorKind::Client`], which answers its [`RequestBodyError::status`] (400, 408 or
    /// 413).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.inner
            .request_body
            .map_or_else(|| self.inner.kind.status(), RequestBodyError::status)
    }

    /// For [`ErrorKind::Client`]: what failed in the client's request body.
    ///
    /// ```
    /// use proxy_balancer::{Error, ErrorKind, RequestBodyError};
    ///
    /// // A member service failed because the client's body was over LimitRequestBody.
    /// let error = Error::classify(RequestBodyError::TooLarge);
    /// assert_eq!(error.kind(), ErrorKind::Client);
    /// assert_eq!(error.request_body_error(), Some(RequestBodyError::TooLarge));
    /// assert_eq!(error.status(), 413);
    /// assert!(!error.is_retryable());
    /// ```
    #[must_use]
    pub fn request_body_error(&self) -> Option<RequestBodyError> {
        self.inner.request_body
    }

    /// For a 503: how long until a member may be tried again, if known.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }
}

/// The next error down `e`'s chain. `io::Error::other(inner)`'s `source()` is
/// `inner.source()`, skipping `inner` itself: `inner` comes first here.
fn next_in_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if let Some(inner) = io.get_ref() {
            return Some(inner);
        }
    }
    e.source()
}

/// The client's body failure in `error`'s chain, if the chain has one: our own error
/// answers for itself (its kind was decided when it was made); a [`RequestBodyError`]
/// anywhere else is the root of what went wrong, whatever wraps it.
fn find_request_body_error(error: &(dyn std::error::Error + 'static)) -> Option<RequestBodyError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return ours.inner.request_body;
        }
        if let Some(failed) = e.downcast_ref::<RequestBodyError>() {
            return Some(*failed);
        }
        #[cfg(feature = "http-client")]
        if let Some(failed) = hyper_request_body_error(e) {
            return Some(failed);
        }
        current = next_in_chain(e);
    }
    None
}

/// hyper's client reports its request body's failure as a user error whose source is that
/// failure. A request body that is a server's (hyper's `Incoming`, as an axum app or a
/// `Site` without its own body type forwards) fails with a hyper error of its own: the
/// client's connection broke the body (a bad chunk, the client gone, too slow).
#[cfg(feature = "http-client")]
fn hyper_request_body_error(e: &(dyn std::error::Error + 'static)) -> Option<RequestBodyError> {
    use std::error::Error as _;
    let sent = e.downcast_ref::<hyper::Error>()?;
    if !sent.is_user() {
        return None;
    }
    let body = sent.source()?.downcast_ref::<hyper::Error>()?;
    Some(if body.is_timeout() {
        RequestBodyError::TimedOut
    } else if body.is_incomplete_message() {
        RequestBodyError::Aborted
    } else {
        RequestBodyError::Framing
    })
}

fn classify(error: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return ours.kind();
        }
        // hyper-util's pooled client, which users wrap as members (built with the
        // `http-client` feature, which depends on it).
        #[cfg(feature = "http-client")]
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if client.is_connect() {
                return ErrorKind::Connect;
            }
        }
        // An HTTP/2 member's GOAWAY (this stream above its last-stream-id, or opened
        // after it) or REFUSED_STREAM: the request was not processed (RFC 9113 §8.7), so
        // it may go to another member, as a request that never reached one.
        #[cfg(feature = "http-client")]
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if h2.is_remote()
                && (h2.is_go_away() || h2.reason() == Some(h2::Reason::REFUSED_STREAM))
            {
                return ErrorKind::Connect;
            }
        }
        if e.is::<tokio::time::error::Elapsed>() {
            return ErrorKind::Timeout;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            match io.kind() {
                Io::ConnectionRefused | Io::AddrNotAvailable | Io::NotConnected => {
                    return ErrorKind::Connect
                }
                Io::TimedOut => return ErrorKind::Timeout,
                _ => {}
            }
        }
        current = next_in_chain(e);
    }
    ErrorKind::Upstream
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("proxy_balancer::Error");
        d.field("kind", &self.inner.kind);
        if let Some(member) = &self.inner.member {
            d.field("member", member);
        }
        if let Some(id) = self.inner.apache_id {
            d.field("apache_id", &id);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.inner.kind {
            ErrorKind::NoMember => "no member can take the request",
            ErrorKind::RouteUnavailable => "the session's member is unavailable",
            ErrorKind::Connect => "could not connect to the member",
            ErrorKind::Timeout => "the member did not answer in time",
            ErrorKind::Upstream => "the member failed",
            ErrorKind::Client => "the client's request body failed on its way to the member",
        };
        f.write_str(what)?;
        if let Some(member) = &self.inner.member {
            write!(f, " {member}")?;
        }
        if let Some(id) = self.inner.apache_id {
            write!(f, " ({id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The response Apache would send for an error: 503 (with `Retry-After` when known, and
/// `Connection: close` for AH01167), 502 or 504, with a short plain-text body; for a
/// client's failed request body ([`ErrorKind::Client`], or any error with a
/// [`RequestBodyError`] in its chain) that error's 400, 408 or 413 with
/// `Connection: close`, as the rest of the body was not read. Other errors that are not
/// ours answer 502.
#[must_use]
pub fn error_response(error: &(dyn std::error::Error + 'static)) -> Response<Full<Bytes>> {
    let ours = error.downcast_ref::<Error>();
    let request_body = find_request_body_error(error);
    let status = match (ours, request_body) {
        (Some(e), _) => e.status(),
        (None, Some(failed)) => failed.status(),
        (None, None) => StatusCode::BAD_GATEWAY,
    };
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(e) = ours {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Rounded up: a client told 2 s for a window that ends in 2.4 s would come
            // back too early and get another 503.
            let secs = e.retry_after().map_or(1, |d| {
                let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                whole.max(1)
            });
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if e.kind() == ErrorKind::RouteUnavailable {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    if request_body.is_some() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(info) = ours.and_then(Error::balancer_info) {
        response.extensions_mut().insert(info.clone());
    }
    response
}

/// A [`Layer`] that turns the errors of the service it wraps into responses
/// ([`error_response`]), so that services which must not fail (axum's, which are
/// `Infallible`) answer 503/502/504 instead of dropping the connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorResponseLayer;

impl ErrorResponseLayer {
    /// The layer.
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponse { inner }
    }
}

/// The service of [`ErrorResponseLayer`].
#[derive(Debug, Clone)]
pub struct ErrorResponse<S> {
    inner: S,
}

impl<S> ErrorResponse<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
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

impl<S, Req, B> Service<Req> for ErrorResponse<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Either<B, Full<Bytes>>>;
    type Error = Infallible;
    type Future = ErrorResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The balancer is always ready; a service that fails here would fail the call too.
        match self.inner.poll_ready(cx) {
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ErrorResponseFuture::new(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_apache_statuses() {
        assert_eq!(ErrorKind::NoMember.status(), 503);
        assert_eq!(ErrorKind::Connect.status(), 503);
        assert_eq!(ErrorKind::Timeout.status(), 504);
        assert_eq!(ErrorKind::Upstream.status(), 502);
        assert_eq!(ErrorKind::Client.status(), 400);
    }

    #[test]
    fn classification_walks_the_source_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            Error::from_member(Box::new(refused)).kind(),
            ErrorKind::Connect
        );
        let ours = Error::timeout("slow");
        let passed = Error::from_member(Box::new(ours));
        assert_eq!(passed.kind(), ErrorKind::Timeout);
        let other = std::io::Error::other("garbage");
        assert_eq!(
            Error::from_member(Box::new(other)).kind(),
            ErrorKind::Upstream
        );
    }

    /// A user's own error type, as a hand-written member client would return: its
    /// `source()` is what really went wrong.
    #[derive(Debug)]
    struct Wrapper {
        what: &'static str,
        source: BoxError,
    }

    impl Wrapper {
        fn around(what: &'static str, source: impl Into<BoxError>) -> Self {
            Self {
                what,
                source: source.into(),
            }
        }
    }

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.what)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.source)
        }
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::from(kind)
    }

    /// The walk goes below the top: a refused connection one or two wrappers deep (and
    /// behind a `Box<dyn Error>` or an `io::Error::other`) is a connect error, which is what
    /// makes the balancer fail over; timeouts and our own errors are found the same way.
    #[test]
    fn classify_finds_a_refused_connection_under_wrappers() {
        use std::io::ErrorKind as Io;
        let cases: Vec<(&str, BoxError, ErrorKind)> = vec![
            (
                "one wrapper",
                Box::new(Wrapper::around("send", io(Io::ConnectionRefused))),
                ErrorKind::Connect,
            ),
            (
                "two wrappers",
                Box::new(Wrapper::around(
                    "my client",
                    Wrapper::around("send", io(Io::ConnectionRefused)),
                )),
                ErrorKind::Connect,
            ),
            (
                "a wrapper over a boxed wrapper",
                Box::new(Wrapper::around(
                    "my client",
                    Box::new(Wrapper::around("dial", io(Io::AddrNotAvailable))) as BoxError,
                )),
                ErrorKind::Connect,
            ),
            (
                // io::Error's own source() skips the error it wraps and gives that error's
                // source: the refused connection here.
                "io::Error::other over a wrapper",
                Box::new(std::io::Error::other(Wrapper::around(
                    "dial",
                    io(Io::ConnectionRefused),
                ))),
                ErrorKind::Connect,
            ),
            (
                "io::Error::other over a refused io::Error",
                Box::new(std::io::Error::other(io(Io::ConnectionRefused))),
                ErrorKind::Connect,
            ),
            (
                "a wrapper over io::Error::other over a refused io::Error",
                Box::new(Wrapper::around(
                    "my client",
                    std::io::Error::other(io(Io::ConnectionRefused)),
                )),
                ErrorKind::Connect,
            ),
            (
                "a timed-out read under a wrapper",
                Box::new(Wrapper::around("read", io(Io::TimedOut))),
                ErrorKind::Timeout,
            ),
            (
                "our own error two levels down",
                Box::new(Wrapper::around(
                    "my client",
                    Wrapper::around("pool", Error::timeout("slow")),
                )),
                ErrorKind::Timeout,
            ),
            (
                "nothing known anywhere",
                Box::new(Wrapper::around(
                    "my client",
                    Wrapper::around("read", io(Io::UnexpectedEof)),
                )),
                ErrorKind::Upstream,
            ),
        ];
        for (what, error, kind) in cases {
            let classified = Error::classify(error);
            assert_eq!(classified.kind(), kind, "{what}");
            assert_eq!(
                classified.is_retryable(),
                kind == ErrorKind::Connect,
                "{what}"
            );
            assert!(
                std::error::Error::source(&classified).is_some(),
                "{what}: the member's error is kept as the source"
            );
        }
    }

    /// A socket bound to a loopback port but not listening: a connect to it is refused, and
    /// nobody else can take the port while it is held.
    fn refusing_port() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    /// hyper-util's connect error from a real refused connect, wrapped in the user's own
    /// error: still a connect error.
    #[tokio::test]
    async fn classify_finds_hyper_utils_connect_error_under_a_wrapper() {
        let (_held, addr) = refusing_port();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
        let failed = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
            .await
            .expect("a refused connect answers at once")
            .expect_err("nothing listens");
        assert!(failed.is_connect(), "{failed:?}");
        assert_eq!(
            Error::classify(Wrapper::around(
                "my client",
                Wrapper::around("send", failed)
            ))
            .kind(),
            ErrorKind::Connect
        );
    }

    /// At the service level: a member service (a user's own client) whose error wraps a
    /// refused connection makes the balancer fail over to the next member, even for a POST
    /// (which an upstream failure never retries).
    #[tokio::test]
    async fn a_wrapped_refusal_fails_over() {
        use crate::balancer::{Balancer, ReplayBody};
        use proxy_balancer_core::{BalancerParams, BalancerStore, Member, MemberParams};
        use std::sync::Arc;
        use tower::ServiceExt;

        let members = ["http://m0", "http://m1"].map(|u| MemberParams::new(u).unwrap());
        let store = Arc::new(
            BalancerStore::new(
                BalancerParams::new("wrapped"),
                members,
                tokio::time::Instant::now().into_std(),
            )
            .unwrap(),
        );
        let make = |member: &Member| {
            let url = member.url().to_owned();
            tower::service_fn(move |_: http::Request<ReplayBody<Full<Bytes>>>| {
                let url = url.clone();
                async move {
                    if url == "http://m0" {
                        let refused = io(std::io::ErrorKind::ConnectionRefused);
                        let e: BoxError = Box::new(Wrapper::around(
                            "my client",
                            Wrapper::around("connect", refused),
                        ));
                        return Err(e);
                    }
                    Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(url))))
                }
            })
        };
        let balancer = Balancer::new(Arc::clone(&store), make);
        let mut request = http::Request::new(Full::new(Bytes::from_static(b"form")));
        *request.method_mut() = http::Method::POST;
        let response = tokio::time::timeout(Duration::from_secs(5), balancer.oneshot(request))
            .await
            .unwrap()
            .expect("failed over to m1");
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, "http://m1");
        let m0 = store.snapshot().members()[0].clone();
        assert!(
            m0.flags()
                .contains(proxy_balancer_core::StatusFlags::IN_ERROR),
            "m0 put in error"
        );
    }

    /// A [`RequestBodyError`] anywhere in a member service's error chain (hyper's client
    /// keeps the request body's error as its source) is the client's failure: its status,
    /// not retryable; our own errors keep the kind they were made with.
    #[test]
    fn a_request_body_error_in_the_chain_is_the_clients() {
        use std::io::ErrorKind as Io;
        let cases: Vec<(&str, BoxError, RequestBodyError)> = vec![
            (
                "as it is",
                Box::new(RequestBodyError::Framing),
                RequestBodyError::Framing,
            ),
            (
                "under a wrapper",
                Box::new(Wrapper::around("send", RequestBodyError::TimedOut)),
                RequestBodyError::TimedOut,
            ),
            (
                "under a boxed wrapper under a wrapper",
                Box::new(Wrapper::around(
                    "my client",
                    Box::new(Wrapper::around("body", RequestBodyError::TooLarge)) as BoxError,
                )),
                RequestBodyError::TooLarge,
            ),
            (
                "inside io::Error::other",
                Box::new(std::io::Error::other(RequestBodyError::Aborted)),
                RequestBodyError::Aborted,
            ),
            (
                // The root is the client's, whatever the wrapper says.
                "inside a timed-out io::Error",
                Box::new(std::io::Error::new(
                    Io::TimedOut,
                    RequestBodyError::TimedOut,
                )),
                RequestBodyError::TimedOut,
            ),
            (
                "under a refused io::Error",
                Box::new(Wrapper::around(
                    "send",
                    std::io::Error::new(Io::ConnectionRefused, RequestBodyError::Framing),
                )),
                RequestBodyError::Framing,
            ),
            (
                "our own client error under a wrapper",
                Box::new(Wrapper::around(
                    "my client",
                    Error::classify(RequestBodyError::TooLarge),
                )),
                RequestBodyError::TooLarge,
            ),
        ];
        for (what, error, failure) in cases {
            let classified = Error::classify(error);
            assert_eq!(classified.kind(), ErrorKind::Client, "{what}");
            assert_eq!(classified.request_body_error(), Some(failure), "{what}");
            assert_eq!(classified.status(), failure.status(), "{what}");
            assert!(!classified.is_retryable(), "{what}");
            assert!(
                std::error::Error::source(&classified).is_some(),
                "{what}: the member service's error is kept as the source"
            );
            let response = error_response(&classified);
            assert_eq!(response.status(), failure.status(), "{what}");
            assert_eq!(response.headers()[header::CONNECTION], "close", "{what}");
            assert!(response.headers().get(header::RETRY_AFTER).is_none());
        }
        // Ours, made as another kind, keep it.
        let upstream = Error::classify(Error::upstream(RequestBodyError::Framing));
        assert_eq!(upstream.kind(), ErrorKind::Upstream);
        assert_eq!(upstream.request_body_error(), None);
        assert_eq!(upstream.status(), StatusCode::BAD_GATEWAY);
        let r = error_response(&upstream);
        assert_eq!(r.status(), 502);
        assert!(r.headers().get(header::CONNECTION).is_none());
        // Without one, as before.
        let other = Error::classify(Wrapper::around("read", io(Io::UnexpectedEof)));
        assert_eq!(other.request_body_error(), None);
        assert_eq!(other.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn client_failures_answer_their_own_status() {
        assert_eq!(ErrorKind::Client.status(), 400);
        for (failure, status) in [
            (RequestBodyError::Framing, 400),
            (RequestBodyError::Aborted, 400),
            (RequestBodyError::TimedOut, 408),
            (RequestBodyError::TooLarge, 413),
        ] {
            let e = Error::classify(failure);
            assert_eq!(e.status(), status, "{failure:?}");
            assert!(e
                .to_string()
                .starts_with("the client's request body failed"));
            // An error that is not ours, with the client's failure in its chain.
            let r = error_response(&Wrapper::around("my service", failure));
            assert_eq!(r.status(), status, "{failure:?}");
            assert_eq!(r.headers()[header::CONNECTION], "close");
        }
        // Other errors that are not ours: 502, as before.
        let r = error_response(&Wrapper::around(
            "my service",
            io(std::io::ErrorKind::Other),
        ));
        assert_eq!(r.status(), 502);
        assert!(r.headers().get(header::CONNECTION).is_none());
    }

    /// A member service whose error has the client's body failure in its chain: the request
    /// is not retried on the other member, even an idempotent one with `retry_idempotent`
    /// and a body that could be sent again (the member did not read it), and the member is
    /// not put in error.
    #[tokio::test]
    async fn a_client_failure_is_not_retried() {
        use crate::balancer::{Balancer, BalancerOptions, ReplayBody};
        use proxy_balancer_core::{BalancerParams, BalancerStore, Member, MemberParams};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tower::ServiceExt;

        let members = ["http://m0", "http://m1"].map(|u| MemberParams::new(u).unwrap());
        let mut params = BalancerParams::new("client");
        params.set("maxattempts", "3").unwrap();
        let store = Arc::new(
            BalancerStore::new(params, members, tokio::time::Instant::now().into_std()).unwrap(),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let make = move |member: &Member| {
            let url = member.url().to_owned();
            let calls = Arc::clone(&counted);
            tower::service_fn(move |_: http::Request<ReplayBody<Full<Bytes>>>| {
                calls.fetch_add(1, Ordering::SeqCst);
                let url = url.clone();
                async move {
                    if url == "http://m0" {
                        let e: BoxError =
                            Box::new(Wrapper::around("send", RequestBodyError::TimedOut));
                        return Err(e);
                    }
                    Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(url))))
                }
            })
        };
        let balancer = Balancer::with_options(
            Arc::clone(&store),
            make,
            BalancerOptions::default().retry_idempotent(true),
        );
        let mut request = http::Request::new(Full::new(Bytes::from_static(b"data")));
        *request.method_mut() = http::Method::PUT;
        let error = tokio::time::timeout(Duration::from_secs(5), balancer.oneshot(request))
            .await
            .unwrap()
            .expect_err("the client's failure");
        assert_eq!(error.kind(), ErrorKind::Client);
        assert_eq!(error.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(error.member(), Some("http://m0"));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "m1 never called");
        let snapshot = store.snapshot();
        let m0 = &snapshot.members()[0];
        assert!(!m0
            .flags()
            .contains(proxy_balancer_core::StatusFlags::IN_ERROR));
        assert_eq!(m0.state().consecutive_failures(), 0);
        assert_eq!(snapshot.members()[1].state().elected(), 0);
    }

    #[test]
    fn responses() {
        let e = Error::from_pick(
            PickError::RouteUnusable { route: "a".into() },
            Some(Duration::from_secs(7)),
        );
        let r = error_response(&e);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert_eq!(e.apache_id(), Some("AH01167"));
        let r = error_response(&std::io::Error::other("x"));
        assert_eq!(r.status(), 502);
    }

    /// Only the member's own GOAWAY or REFUSED_STREAM says a request was not processed
    /// (tests/h2_members.rs has real ones); an HTTP/2 error of our side is not a connect
    /// failure.
    #[test]
    fn a_local_http2_error_is_no_connect_failure() {
        let local = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert_eq!(Error::classify(local).kind(), ErrorKind::Upstream);
    }
}
