//! The request as the server admits it: [`Admit`] checks each request head as Apache's
//! `HttpProtocolOptions Strict` and `LimitRequest*` directives do, answers the ones it
//! refuses itself, and hands the others to the service with their body as a
//! [`RequestBody`].
//!
//! | refused | status | Apache |
//! | --- | --- | --- |
//! | request line (method, target, version, with two spaces) longer than `LimitRequestLine` + 1 | 414 | `LimitRequestLine` (Apache 2.4 passes the limit + 1 too) |
//! | a header field (`name: value`) longer than `LimitRequestFieldSize` + 1 | 400 | `LimitRequestFieldSize` (idem) |
//! | HTTP/1.1 without `Host`, two `Host` fields, a `Host` that is not `host[:port]` | 400 | `HttpProtocolOptions Strict` (RFC 9112 §3.2) |
//! | a target authority (absolute-form, `:authority`) that is not `host[:port]` (userinfo included) | 400 | Apache's `fix_hostname`; RFC 9110 §4.2.4 |
//! | HTTP/2 with a `Host` that differs from `:authority` | 400 | RFC 9113 §8.3.1 |
//! | `Transfer-Encoding` other than a single, final `chunked` | 501 | RFC 9112 §6.1 (Apache: 400 or 500) |
//! | an `Expect` other than `100-continue` | 417 | Apache's AH00570 (RFC 9110 §10.1.1) |
//! | `Content-Length` over `LimitRequestBody` | 413 | `LimitRequestBody` |
//!
//! An admitted HTTP/1 request with an absolute-form target (`GET http://host/path`) gets
//! the target's host as its `Host` (RFC 9112 §3.2.2), so the service never sees two names
//! for one request.
//!
//! The answers are short plain text and, over HTTP/1.x, close the connection (`Connection:
//! close`), as Apache closes after these statuses: the body the client may be sending is
//! never read. The service is not called, so a refused request never reaches a member.
//! Checking allocates nothing; only a refusal builds a response.
//!
//! [`Server`](super::Server) wraps every service in an `Admit` with its
//! [`ClientLimits`]; use it directly when serving hyper yourself.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use proxy_balancer::server::{Admit, ClientLimits, RequestBody};
//! use tower::service_fn;
//!
//! let hello = service_fn(|_: Request<RequestBody>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
//! });
//! // A service for hyper: `Service<Request<Incoming>>`, answering 400, 413, 414 and 501
//! // itself.
//! let admit = Admit::new(hello, &ClientLimits::new().limit_request_body(1 << 20));
//! # let _ = admit;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, EXPECT, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use proxy_balancer_core::host::is_valid_host as valid_host;

use super::{ClientLimits, ReadTimeout, RequestBody};
use crate::PeerAddr;

/// The length of `HTTP/1.1` in a request line.
const VERSION_LEN: usize = 8;

/// What [`Admit`] takes from the [`ClientLimits`]: small and `Copy`, so a clone of the
/// service per connection copies a few words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checks {
    limit_request_line: usize,
    limit_request_field_size: usize,
    limit_request_body: u64,
    body_timeout: ReadTimeout,
}

impl Checks {
    const fn new(limits: &ClientLimits) -> Self {
        Self {
            limit_request_line: limits.limit_request_line,
            limit_request_field_size: limits.limit_request_field_size,
            limit_request_body: limits.limit_request_body,
            body_timeout: limits.body_timeout,
        }
    }
}

/// Checks each request head and answers the ones Apache would refuse; see the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Admit<S> {
    inner: S,
    checks: Checks,
}

/// A [`Layer`] wrapping a service in [`Admit`]; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct AdmitLayer {
    checks: Checks,
}

// ===== impl AdmitLayer =====

impl AdmitLayer {
    /// The layer, checking against `limits`.
    #[must_use]
    pub const fn new(limits: &ClientLimits) -> Self {
        Self {
            checks: Checks::new(limits),
        }
    }
}

impl<S> Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Admit<S> {
        Admit {
            inner,
            checks: self.checks,
        }
    }
}

// ===== impl Admit =====

impl<S> Admit<S> {
    /// Wraps `inner`, checking requests against `limits` (the request line, field size and
    /// body limits, and the body timeout given to each [`RequestBody`]).
    #[must_use]
    pub const fn new(inner: S, limits: &ClientLimits) -> Self {
        Self {
            inner,
            checks: Checks::new(limits),
        }
    }

    /// Whether `request`'s head would be admitted, or the status it would be answered
    /// with; the service is not involved. Allocates nothing.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, StatusCode};
    /// use http_body_util::Empty;
    /// use proxy_balancer::server::{Admit, ClientLimits};
    ///
    /// let admit = Admit::new((), &ClientLimits::new());
    /// let empty = Empty::<Bytes>::new;
    /// let ok = Request::get("/").header("host", "example.com").body(empty())?;
    /// assert_eq!(admit.check(&ok), Ok(()));
    /// let no_host = Request::get("/").body(empty())?;
    /// assert_eq!(admit.check(&no_host), Err(StatusCode::BAD_REQUEST));
    /// let gzip = Request::post("/")
    ///     .header("host", "example.com")
    ///     .header("transfer-encoding", "gzip, chunked")
    ///     .body(empty())?;
    /// assert_eq!(admit.check(&gzip), Err(StatusCode::NOT_IMPLEMENTED));
    /// # Ok::<(), http::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The status a refused request is answered with: 400, 413, 414 or 501 (see the
    /// [module docs](self)).
    pub fn check<B: Body>(&self, request: &Request<B>) -> Result<(), StatusCode> {
        check(request, &self.checks).map_err(Refusal::status)
    }
}

wrapper_accessors!(Admit);

impl<S, B> Service<Request<Incoming>> for Admit<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
    B: Body<Data = Bytes>,
{
    type Response = Response<Either<B, Full<Bytes>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        if let Err(refusal) = check(&request, &self.checks) {
            let client = request
                .extensions()
                .get::<PeerAddr>()
                .map_or_else(|| "-".to_owned(), |p| p.0.to_string());
            tracing::info!(
                %client,
                method = %request.method(),
                uri = %request.uri(),
                status = refusal.status().as_u16(),
                "request refused: {}",
                refusal.reason()
            );
            return ResponseFuture::refused(refusal.response(request.version()));
        }
        let Checks {
            body_timeout,
            limit_request_body,
            ..
        } = self.checks;
        let mut request =
            request.map(|body| RequestBody::with(body, body_timeout, limit_request_body));
        host_from_target(&mut request);
        ResponseFuture::inner(self.inner.call(request))
    }
}

pin_project! {
    /// The response future of [`Admit`]: the service's, or the answer to a refused
    /// request.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner {
            #[pin]
            future: F,
        },
        Refused {
            response: Option<Response<Full<Bytes>>>,
        },
    }
}

impl<F> ResponseFuture<F> {
    const fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    const fn refused(response: Response<Full<Bytes>>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(Either::Left)))
            }
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response.map(Either::Right))),
                // Polled again after it completed: a caller's bug; never panic.
                None => Poll::Pending,
            },
        }
    }
}

/// Why [`Admit`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    RequestLine,
    FieldSize,
    NoHost,
    TwoHosts,
    BadHost,
    HostNotAuthority,
    TransferCoding,
    Expectation,
    BodyTooLarge,
}

// ===== impl Refusal =====

impl Refusal {
    const fn status(self) -> StatusCode {
        match self {
            Self::RequestLine => StatusCode::URI_TOO_LONG,
            Self::FieldSize
            | Self::NoHost
            | Self::TwoHosts
            | Self::BadHost
            | Self::HostNotAuthority => StatusCode::BAD_REQUEST,
            Self::TransferCoding => StatusCode::NOT_IMPLEMENTED,
            Self::Expectation => StatusCode::EXPECTATION_FAILED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// For the log.
    const fn reason(self) -> &'static str {
        match self {
            Self::RequestLine => "request line longer than LimitRequestLine",
            Self::FieldSize => "header field longer than LimitRequestFieldSize",
            Self::NoHost => "HTTP/1.1 request without Host",
            Self::TwoHosts => "more than one Host field",
            Self::BadHost => "Host is not host[:port]",
            Self::HostNotAuthority => "Host differs from :authority",
            Self::TransferCoding => "Transfer-Encoding other than chunked",
            Self::Expectation => "AH00570: an Expect other than 100-continue",
            Self::BodyTooLarge => "Content-Length larger than LimitRequestBody",
        }
    }

    /// The answer's body: the status line and Apache's explanation.
    const fn body(self) -> &'static [u8] {
        match self {
            Self::RequestLine => b"414 Request-URI Too Long\nThe requested URL's length exceeds the capacity limit for this server.\n",
            Self::FieldSize => b"400 Bad Request\nSize of a request header field exceeds server limit.\n",
            Self::NoHost | Self::TwoHosts | Self::BadHost | Self::HostNotAuthority => {
                b"400 Bad Request\nYour browser sent a request that this server could not understand.\n"
            }
            Self::TransferCoding => b"501 Not Implemented\nThe request's Transfer-Encoding is not supported (only chunked is).\n",
            Self::Expectation => b"417 Expectation Failed\nThe expectation given in the Expect request-header field could not be met by this server.\n",
            Self::BodyTooLarge => b"413 Request Entity Too Large\nThe amount of data provided in the request exceeds the capacity limit.\n",
        }
    }

    fn response(self, version: Version) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from_static(self.body())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        // Apache closes the connection after these answers: the rest of the request (its
        // body, or what was meant as one) is not read. HTTP/2 has no Connection field;
        // the stream ends there.
        if version < Version::HTTP_2 {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The checks of [`Admit`], in Apache's order: the request line, the header fields, Host,
/// Transfer-Encoding, then Content-Length.
fn check<B: Body>(request: &Request<B>, checks: &Checks) -> Result<(), Refusal> {
    let headers = request.headers();
    let line = request
        .method()
        .as_str()
        .len()
        .saturating_add(target_len(request.uri(), request.version()))
        .saturating_add(2 + VERSION_LEN);
    // Apache 2.4 reads a line into a buffer of the limit + 2 bytes: a line of the limit
    // + 1 bytes passes, one more is refused (checked against apache2 with 8,190).
    if line > checks.limit_request_line.saturating_add(1) {
        return Err(Refusal::RequestLine);
    }
    let field_limit = checks.limit_request_field_size.saturating_add(1);
    if headers
        .iter()
        .any(|(name, value)| name.as_str().len() + 2 + value.len() > field_limit)
    {
        return Err(Refusal::FieldSize);
    }
    check_host(request.version(), request.uri(), headers)?;
    if !chunked_only(headers) {
        return Err(Refusal::TransferCoding);
    }
    // Apache answers an expectation it does not know with 417 (AH00570) rather than pass
    // it on: the member would meet a request whose sender waits for something else.
    if headers.get_all(EXPECT).iter().any(|value| {
        let value = value.as_bytes().trim_ascii();
        !value.is_empty() && !value.eq_ignore_ascii_case(b"100-continue")
    }) {
        return Err(Refusal::Expectation);
    }
    // The announced length (hyper's, from Content-Length; 0 for a chunked body).
    if checks.limit_request_body != 0
        && request.body().size_hint().lower() > checks.limit_request_body
    {
        return Err(Refusal::BodyTooLarge);
    }
    Ok(())
}

/// The length of the request-target as the client sent it (HTTP/1) or of `:path`
/// (HTTP/2, whose URI also holds `:scheme` and `:authority`).
fn target_len(uri: &Uri, version: Version) -> usize {
    let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if version >= Version::HTTP_2 {
        return path;
    }
    match (uri.scheme(), uri.authority()) {
        // absolute-form: `http://host/path`
        (Some(scheme), Some(authority)) => {
            scheme.as_str().len() + 3 + authority.as_str().len() + path
        }
        // authority-form (CONNECT): `host:port`
        (None, Some(authority)) => authority.as_str().len() + path,
        _ => path,
    }
}

/// RFC 9112 §3.2: one Host, valid, and required in HTTP/1.1 (an empty one in HTTP/1.0
/// counts as none, as Apache reads it); the target's authority, when the request has one
/// (absolute-form, HTTP/2's `:authority`), must be `host[:port]` too (no userinfo, RFC
/// 9110 §4.2.4); RFC 9113 §8.3.1: over HTTP/2, a Host must name what `:authority` names.
fn check_host(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(authority) = uri.authority() {
        if !valid_host(authority.as_str().as_bytes()) {
            return Err(Refusal::BadHost);
        }
    }
    let mut hosts = headers.get_all(HOST).iter();
    let Some(host) = hosts.next() else {
        return if version == Version::HTTP_11 {
            Err(Refusal::NoHost)
        } else {
            Ok(())
        };
    };
    if hosts.next().is_some() {
        return Err(Refusal::TwoHosts);
    }
    if host.is_empty() && version < Version::HTTP_11 {
        return Ok(());
    }
    if !valid_host(host.as_bytes()) {
        return Err(Refusal::BadHost);
    }
    if version >= Version::HTTP_2 && uri.authority().is_some_and(|a| !same_host(a, host)) {
        return Err(Refusal::HostNotAuthority);
    }
    Ok(())
}

fn same_host(authority: &http::uri::Authority, host: &HeaderValue) -> bool {
    authority
        .as_str()
        .as_bytes()
        .eq_ignore_ascii_case(host.as_bytes())
}

/// RFC 9112 §3.2.2: a proxy receiving an absolute-form request-target ignores the Host
/// field and replaces it with the target's host. Only such a request, with a Host that
/// differs, is changed (and allocates).
fn host_from_target<B>(request: &mut Request<B>) {
    if request.version() >= Version::HTTP_2 {
        return;
    }
    let Some(authority) = request.uri().authority() else {
        return;
    };
    if request
        .headers()
        .get(HOST)
        .is_some_and(|host| same_host(authority, host))
    {
        return;
    }
    // The authority passed `valid_host`: a valid field value.
    if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(HOST, value);
    }
}

/// Whether `Transfer-Encoding` is absent or a single `chunked` (in one field or several,
/// empty list elements aside): hyper decodes chunked and nothing else, so another coding
/// (`gzip, chunked`, `chunked, chunked`) would reach the service undone.
fn chunked_only(headers: &HeaderMap) -> bool {
    let mut chunked = false;
    for value in &headers.get_all(TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                return false;
            }
            chunked = true;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use http_body_util::Empty;
    use proptest::prelude::*;

    use super::*;

    fn checks() -> Checks {
        Checks::new(&ClientLimits::new().limit_request_body(1000))
    }

    fn get(uri: &str) -> http::request::Builder {
        Request::get(uri).header(HOST, "example.com")
    }

    fn admit<B: Body>(request: &Request<B>) -> Result<(), Refusal> {
        check(request, &checks())
    }

    proptest! {
        #[test]
        fn transfer_encoding_check_never_panics(value in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                let mut headers = HeaderMap::new();
                headers.insert(TRANSFER_ENCODING, value);
                let _ = chunked_only(&headers);
            }
        }
    }

    #[test]
    fn an_ordinary_request_is_admitted() {
        let request = get("/path?q=1").body(Empty::<Bytes>::new()).unwrap();
        assert_eq!(admit(&request), Ok(()));
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        let none = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
        assert_eq!(admit(&none), Err(Refusal::NoHost));
        let two = get("/")
            .header(HOST, "example.com")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(admit(&two), Err(Refusal::TwoHosts));
        let bad = Request::get("/")
            .header(HOST, "a b")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(admit(&bad), Err(Refusal::BadHost));
        // HTTP/1.0 may leave it out, not get it wrong.
        let old = Request::get("/")
            .version(Version::HTTP_10)
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(admit(&old), Ok(()));
        let old_bad = Request::get("/")
            .version(Version::HTTP_10)
            .header(HOST, "x/y")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(admit(&old_bad), Err(Refusal::BadHost));
    }

    #[test]
    fn an_absolute_target_must_name_a_valid_host_and_replaces_the_host_field() {
        let abs = |uri: &str, host: Option<&str>| {
            let mut b = Request::get(uri);
            if let Some(host) = host {
                b = b.header(HOST, host);
            }
            b.body(Empty::<Bytes>::new()).unwrap()
        };
        assert_eq!(
            admit(&abs("http://user@example.com/", Some("example.com"))),
            Err(Refusal::BadHost)
        );
        assert_eq!(
            admit(&abs("http://example.com:0/", Some("example.com"))),
            Err(Refusal::BadHost)
        );
        // HTTP/1.1 needs the field even then (RFC 9112 §3.2; Apache too).
        assert_eq!(
            admit(&abs("http://example.com/", None)),
            Err(Refusal::NoHost)
        );
        let mut other = abs("http://Example.com:8080/x", Some("other.example"));
        assert_eq!(admit(&other), Ok(()));
        host_from_target(&mut other);
        assert_eq!(other.headers()[HOST], "Example.com:8080");
        assert_eq!(other.headers().get_all(HOST).iter().count(), 1);
        // The same host, in another case: left as sent.
        let mut same = abs("http://example.com/x", Some("EXAMPLE.com"));
        host_from_target(&mut same);
        assert_eq!(same.headers()[HOST], "EXAMPLE.com");
        // Origin-form: nothing to do.
        let mut origin = get("/x").body(Empty::<Bytes>::new()).unwrap();
        host_from_target(&mut origin);
        assert_eq!(origin.headers()[HOST], "example.com");
    }

    #[test]
    fn an_empty_host_is_none_in_http10_only() {
        let empty = |version| {
            Request::get("/")
                .version(version)
                .header(HOST, "")
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        assert_eq!(admit(&empty(Version::HTTP_10)), Ok(()));
        assert_eq!(admit(&empty(Version::HTTP_11)), Err(Refusal::BadHost));
    }

    #[test]
    fn http2_host_must_name_the_authority() {
        let h2 = |host: Option<&str>| {
            let mut b = Request::get("http://example.com:8080/x").version(Version::HTTP_2);
            if let Some(host) = host {
                b = b.header(HOST, host);
            }
            b.body(Empty::<Bytes>::new()).unwrap()
        };
        assert_eq!(admit(&h2(None)), Ok(()));
        assert_eq!(admit(&h2(Some("EXAMPLE.com:8080"))), Ok(()));
        assert_eq!(
            admit(&h2(Some("other.example:8080"))),
            Err(Refusal::HostNotAuthority)
        );
    }

    #[test]
    fn only_a_single_final_chunked_is_admitted() {
        let te = |values: &[&str]| {
            let mut b = get("/");
            for v in values {
                b = b.header(TRANSFER_ENCODING, *v);
            }
            admit(&b.body(Empty::<Bytes>::new()).unwrap())
        };
        assert_eq!(te(&["chunked"]), Ok(()));
        assert_eq!(te(&["Chunked"]), Ok(()));
        assert_eq!(te(&[" chunked ,"]), Ok(()));
        for bad in [
            &["gzip, chunked"][..],
            &["identity"],
            &["chunked, chunked"],
            &["gzip", "chunked"],
            &["chunked", "chunked"],
            &["chunked;ext=1"],
            &["chunked, gzip"],
        ] {
            assert_eq!(te(bad), Err(Refusal::TransferCoding), "{bad:?}");
        }
    }

    #[test]
    fn request_line_counts_method_target_and_version() {
        // `GET /aaa… HTTP/1.1`: 3 + 1 + target + 1 + 8.
        let limits = ClientLimits::new().limit_request_line(100);
        let at = |target_len: usize| {
            let target = format!("/{}", "a".repeat(target_len - 1));
            let request = get(&target).body(Empty::<Bytes>::new()).unwrap();
            check(&request, &Checks::new(&limits))
        };
        // As Apache: the limit + 1 passes.
        assert_eq!(at(101 - 13), Ok(()));
        assert_eq!(at(102 - 13), Err(Refusal::RequestLine));
        // The absolute form counts the scheme and authority.
        let absolute = format!("http://example.com/{}", "a".repeat(70));
        let request = get(&absolute).body(Empty::<Bytes>::new()).unwrap();
        assert_eq!(
            check(&request, &Checks::new(&limits)),
            Err(Refusal::RequestLine)
        );
    }

    #[test]
    fn a_field_counts_name_colon_space_and_value() {
        let limits = ClientLimits::new().limit_request_field_size(20);
        let field = |value_len: usize| {
            let request = get("/")
                .header("x-big", "v".repeat(value_len))
                .body(Empty::<Bytes>::new())
                .unwrap();
            check(&request, &Checks::new(&limits))
        };
        // `x-big: ` is 7; as Apache, the limit + 1 passes.
        assert_eq!(field(14), Ok(()));
        assert_eq!(field(15), Err(Refusal::FieldSize));
    }

    #[test]
    fn a_content_length_over_the_limit_is_refused() {
        let body = |len: usize| {
            let request = Request::post("/")
                .header(HOST, "example.com")
                .body(Full::new(Bytes::from(vec![b'x'; len])))
                .unwrap();
            admit(&request)
        };
        assert_eq!(body(1000), Ok(()));
        assert_eq!(body(1001), Err(Refusal::BodyTooLarge));
        // Zero: unlimited.
        let unlimited = Checks::new(&ClientLimits::new().limit_request_body(0));
        let request = Request::post("/")
            .header(HOST, "example.com")
            .body(Full::new(Bytes::from(vec![b'x'; 5000])))
            .unwrap();
        assert_eq!(check(&request, &unlimited), Ok(()));
    }

    #[test]
    fn refusals_close_http1_connections_only() {
        let h1 = Refusal::TransferCoding.response(Version::HTTP_11);
        assert_eq!(h1.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(h1.headers()[CONNECTION], "close");
        let h2 = Refusal::BadHost.response(Version::HTTP_2);
        assert_eq!(h2.status(), StatusCode::BAD_REQUEST);
        assert!(h2.headers().get(CONNECTION).is_none());
        let field = Refusal::FieldSize.response(Version::HTTP_11);
        assert!(String::from_utf8_lossy(Refusal::FieldSize.body())
            .contains("Size of a request header field exceeds server limit."));
        assert_eq!(field.status(), StatusCode::BAD_REQUEST);
    }
}
