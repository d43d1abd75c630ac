//! The request as the server admits it, tried with raw sockets against `Server` + `Site`
//! over a real member: Host validation, transfer-codings, the `LimitRequest*` limits and
//! the request body's timeout and framing, answered as Apache answers them, with nothing
//! refused reaching the member and no client fault blamed on it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use proxy_balancer::apache_config::parse;
use proxy_balancer::core::{Member, StatusFlags};
use proxy_balancer::server::{ClientLimits, ReadTimeout, RequestBody, Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer::RequestBodyError;
use proxy_balancer_test::TestBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one exchange may take.
const EXCHANGE: Duration = Duration::from_secs(10);

/// `LimitRequestBody` in these tests.
const BODY_LIMIT: u64 = 1000;

/// A proxy (`Server` + `Site`) in front of one `TestBackend`.
struct Front {
    backend: TestBackend,
    member: Member,
    server: ServerHandle,
}

impl Front {
    async fn start() -> Self {
        Self::with_limits(limits()).await
    }

    async fn with_limits(limits: ClientLimits) -> Self {
        Self::with_config(limits, "").await
    }

    /// With `extra` configuration lines after the balancer and its `ProxyPass`.
    async fn with_config(limits: ClientLimits, extra: &str) -> Self {
        let backend = TestBackend::start("member")
            .await
            .expect("bind 127.0.0.1:0");
        let config = parse(&format!(
            "<Proxy balancer://b>\n BalancerMember {}\n</Proxy>\nProxyPass / balancer://b/\n{extra}",
            backend.url()
        ))
        .expect("a valid config");
        let site = Site::from_config(&config).expect("buildable");
        let member = site.stores()[0].snapshot().members()[0].clone();
        let server = Server::new()
            .limits(limits)
            .listen("127.0.0.1:0".parse().expect("an address"), site)
            .await
            .expect("a loopback port");
        Self {
            backend,
            member,
            server,
        }
    }

    /// Sends `request` as raw bytes on a new connection and reads until the proxy closes
    /// it (or resets it: what was read by then is returned).
    async fn send(&self, request: &[u8]) -> Answer {
        let mut stream = TcpStream::connect(self.server.local_addr())
            .await
            .expect("connect to the proxy");
        stream.write_all(request).await.expect("write the request");
        read_answer(&mut stream).await
    }

    /// The member has not been picked for any request, and no request reached it.
    fn untouched(&self) {
        assert_eq!(self.member.state().elected(), 0, "the member was picked");
        assert_eq!(self.backend.hits(), 0, "the backend saw a request");
    }

    /// The member carries no error and still serves.
    async fn not_blamed(&self) {
        self.settled().await;
        assert!(
            !self.member.flags().contains(StatusFlags::IN_ERROR),
            "the member was put in error: {}",
            self.member.flags().label()
        );
        assert!(self.member.is_usable(), "{}", self.member.flags().label());
        let ok = self
            .send(b"GET /after HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(ok.status, Some(200), "{ok:?}");
    }
}

impl Front {
    /// Waits (bounded) until the member has no request in flight: a failed client body
    /// leaves no busy count behind.
    async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.member.state().busy() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the member is still busy with {} request(s)",
                self.member.state().busy()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The limits of these tests: `LimitRequestBody` 1000, `RequestReadTimeout body=1,MinRate=500`.
fn limits() -> ClientLimits {
    ClientLimits::new()
        .limit_request_body(BODY_LIMIT)
        // A slow body fails after 1 s (plus a second per 500 bytes received).
        .body_timeout(ReadTimeout::new(Duration::from_secs(1)).min_rate(500))
}

/// A `Server` with a plain service that reads each request body to its end and answers
/// its length, or the body error's status: the front door without a member. Also counts
/// the calls and reports each body error.
async fn reader() -> (
    ServerHandle,
    Arc<AtomicUsize>,
    tokio::sync::mpsc::UnboundedReceiver<RequestBodyError>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let (errors, seen) = tokio::sync::mpsc::unbounded_channel();
    let service = tower::service_fn(move |request: Request<RequestBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let errors = errors.clone();
        async move {
            let response = match request.into_body().collect().await {
                Ok(body) => {
                    Response::new(Full::new(Bytes::from(body.to_bytes().len().to_string())))
                }
                Err(error) => {
                    let _ = errors.send(error);
                    let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
                    *response.status_mut() = error.status();
                    response
                }
            };
            Ok::<_, Infallible>(response)
        }
    });
    let server = Server::new()
        .limits(limits())
        .listen("127.0.0.1:0".parse().expect("an address"), service)
        .await
        .expect("a loopback port");
    (server, calls, seen)
}

async fn exchange(server: &ServerHandle, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect to the server");
    stream.write_all(request).await.expect("write the request");
    read_answer(&mut stream).await
}

/// What came back on a connection.
#[derive(Debug)]
struct Answer {
    /// The status of the first response, if one was read.
    status: Option<u16>,
    /// Everything read, as text.
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The length of a complete response with a `Content-Length` at the start of `bytes`, if
/// it is all there.
fn complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end].lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|length| bytes.len() >= end + 4 + length)
}

/// Reads one response: until it is complete (by its `Content-Length`) or the proxy
/// closes (or resets) the connection.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    let read = tokio::time::timeout(EXCHANGE, async {
        // Bounded: an answer is a few KB at most.
        for _ in 0..1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
            if complete(&bytes) {
                break;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the proxy neither answered nor closed in {EXCHANGE:?}: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Answer { status, text }
}

#[tokio::test]
async fn http11_without_host_is_400() {
    let front = Front::start().await;
    let answer = front.send(b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    front.untouched();
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn two_hosts_are_400() {
    let front = Front::start().await;
    let answer = front
        .send(b"GET / HTTP/1.1\r\nHost: example.com\r\nHost: evil.example\r\n\r\n")
        .await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    front.untouched();
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_host_that_is_not_host_port_is_400() {
    let front = Front::start().await;
    for host in ["a b", "x/y", "h:port", "a..b", "[::1", "h:99999"] {
        let answer = front
            .send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        assert_eq!(answer.status, Some(400), "Host: {host}: {answer:?}");
    }
    front.untouched();
    // Valid forms are served.
    for host in ["example.com", "127.0.0.1:8080", "[::1]:80", "EXAMPLE.com."] {
        let answer = front
            .send(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
        assert_eq!(answer.status, Some(200), "Host: {host}: {answer:?}");
    }
    assert_eq!(front.backend.hits(), 4);
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn http10_without_host_is_served() {
    let front = Front::start().await;
    let answer = front.send(b"GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert_eq!(front.backend.hits(), 1);
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_unknown_transfer_coding_is_501_and_never_forwarded() {
    let front = Front::start().await;
    for te in ["gzip, chunked", "chunked, chunked", "identity, chunked"] {
        let answer = front
            .send(
                format!(
                    "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        assert_eq!(
            answer.status,
            Some(501),
            "Transfer-Encoding: {te}: {answer:?}"
        );
        assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    }
    // Two fields, gzip then chunked: the same coding list.
    let answer = front
        .send(b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await;
    assert_eq!(answer.status, Some(501), "{answer:?}");
    // What hyper refuses itself (chunked not last, or absent): 400, as Apache answers these
    // (checked against apache2), and never forwarded either.
    for te in ["chunked, gzip", "identity", "gzip", "chunked;x=1"] {
        let answer = front
            .send(
                format!(
                    "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        assert_eq!(
            answer.status,
            Some(400),
            "Transfer-Encoding: {te}: {answer:?}"
        );
    }
    front.untouched();
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn an_expectation_other_than_100_continue_is_417_and_never_forwarded() {
    let front = Front::start().await;
    for expect in ["foo", "100-continue, foo", "200-ok"] {
        let answer = front
            .send(
                format!("GET / HTTP/1.1\r\nHost: example.com\r\nExpect: {expect}\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        assert_eq!(answer.status, Some(417), "Expect: {expect}: {answer:?}");
        assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    }
    front.untouched();
    // 100-continue in any case is what Apache (and hyper) handle.
    let answer = front
        .send(b"POST / HTTP/1.1\r\nHost: example.com\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi")
        .await;
    assert_ne!(answer.status, Some(417), "{answer:?}");
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_9k_request_line_is_414() {
    let front = Front::start().await;
    let path = format!("/{}", "a".repeat(9 * 1024));
    let answer = front
        .send(format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes())
        .await;
    assert_eq!(answer.status, Some(414), "{:?}", answer.status);
    assert_eq!(answer.header("connection"), Some("close"));
    front.untouched();
    // As Apache 2.4 with its default 8,190: a line of 8,191 bytes is served, 8,192 is not.
    for (length, status) in [(8191, 200), (8192, 414)] {
        // `GET ` + target + ` HTTP/1.1`
        let path = format!("/{}", "a".repeat(length - 13 - 1));
        let answer = front
            .send(
                format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        assert_eq!(answer.status, Some(status), "a line of {length}");
    }
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_9k_header_field_is_400_with_apaches_message() {
    let front = Front::start().await;
    let answer = front
        .send(
            format!(
                "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: {}\r\n\r\n",
                "v".repeat(9 * 1024)
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(answer.status, Some(400), "{:?}", answer.status);
    assert!(
        answer
            .text
            .contains("Size of a request header field exceeds server limit."),
        "{}",
        answer.text
    );
    front.untouched();
    // As Apache 2.4 with its default 8,190: a field of 8,191 bytes is served, 8,192 is not.
    for (length, status) in [(8191, 200), (8192, 400)] {
        // `X-Big: ` + value
        let answer = front
            .send(
                format!(
                    "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                    "v".repeat(length - 7)
                )
                .as_bytes(),
            )
            .await;
        assert_eq!(answer.status, Some(status), "a field of {length}");
    }
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_413_before_the_member() {
    let front = Front::start().await;
    // The head only: the proxy answers before reading (or waiting for) the body.
    let answer = front
        .send(
            format!(
                "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: {}\r\n\r\n",
                BODY_LIMIT + 1
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(answer.status, Some(413), "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    // With Expect: 100-continue, no 100 is sent first.
    let answer = front
        .send(b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        .await;
    assert_eq!(answer.status, Some(413), "{answer:?}");
    front.untouched();
    // At the limit: forwarded.
    let answer = front
        .send(
            format!(
                "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: {BODY_LIMIT}\r\nConnection: close\r\n\r\n{}",
                "x".repeat(BODY_LIMIT as usize)
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    front.server.shutdown().await.expect("stops");
}

/// Needs the member client to answer a request whose body failed with
/// `RequestBodyError::status()` without blaming the member (h-member's change).
#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_is_413_and_the_member_not_blamed() {
    let front = Front::start().await;
    let chunk = "x".repeat(600);
    let answer = front
        .send(
            format!(
                "POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(answer.status, Some(413), "{answer:?}");
    assert_eq!(front.backend.hits(), 0, "the member got a whole body");
    front.not_blamed().await;
    front.server.shutdown().await.expect("stops");
}

/// Needs the member client to answer a request whose body failed with
/// `RequestBodyError::status()` without blaming the member (h-member's change).
#[tokio::test]
async fn a_body_slower_than_min_rate_is_408_and_the_member_not_blamed() {
    let front = Front::start().await;
    let mut stream = TcpStream::connect(front.server.local_addr())
        .await
        .expect("connect to the proxy");
    // 100 bytes announced, 10 sent: 1 s (10 bytes add nothing at 500 bytes/s), then 408.
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    let started = tokio::time::Instant::now();
    let answer = read_answer(&mut stream).await;
    let waited = started.elapsed();
    assert_eq!(answer.status, Some(408), "{answer:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    assert_eq!(front.backend.hits(), 0);
    front.not_blamed().await;
    front.server.shutdown().await.expect("stops");
}

/// Needs the member client to answer a request whose body failed with
/// `RequestBodyError::status()` without blaming the member (h-member's change).
#[tokio::test]
async fn a_malformed_chunked_body_is_400_not_502_and_the_member_not_blamed() {
    let front = Front::start().await;
    let answer = front
        .send(b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        .await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert_eq!(front.backend.hits(), 0);
    front.not_blamed().await;
    // Picked once for the bad request, once for the check.
    assert_eq!(front.member.state().elected(), 2);
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn body_errors_reach_the_service_typed_with_apaches_status() {
    let (server, calls, _errors) = reader().await;
    // A chunked body within the limit is read whole.
    let answer = exchange(
        &server,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(answer.text.ends_with("\r\n\r\n5"), "{answer:?}");
    // Growing past LimitRequestBody: 413.
    let chunk = "x".repeat(600);
    let answer = exchange(
        &server,
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(answer.status, Some(413), "{answer:?}");
    // A bad chunk size: 400.
    let answer = exchange(
        &server,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    // Slower than MinRate: 408 after the body timeout.
    let started = tokio::time::Instant::now();
    let answer = exchange(
        &server,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(answer.status, Some(408), "{answer:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // Refused heads never reach the service.
    for refused in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let answer = exchange(&server, refused).await;
        assert!(matches!(answer.status, Some(400 | 413 | 501)), "{answer:?}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "a refused request reached the service"
    );
    server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn http2_needs_no_host_but_refuses_one_that_differs_from_authority() {
    let front = Front::start().await;
    let client = proxy_balancer_test::TestClient::h2c();
    let url = format!("http://{}/h2", front.server.local_addr());
    let plain = client.get(&url).await.expect("an answer");
    assert_eq!(plain.status, 200, "{}", plain.text());
    let with_host = |host: String| {
        Request::get(url.as_str())
            .header(http::header::HOST, host)
            .body(Full::new(Bytes::new()))
            .expect("a request")
    };
    let same = client
        .request(with_host(front.server.local_addr().to_string()))
        .await
        .expect("an answer");
    assert_eq!(same.status, 200, "{}", same.text());
    let other = client
        .request(with_host("evil.example".to_owned()))
        .await
        .expect("an answer");
    assert_eq!(other.status, 400, "{}", other.text());
    assert_eq!(front.backend.hits(), 2);
    front.server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_client_gone_mid_body_is_aborted_or_framing() {
    let (server, _, mut errors) = reader().await;
    // Reset (RST) in the middle of the body: the client is gone.
    let stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect to the server");
    let mut stream = stream;
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    // Let the server start reading the body before the reset.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.set_zero_linger().expect("SO_LINGER 0");
    drop(stream);
    let error = tokio::time::timeout(EXCHANGE, errors.recv())
        .await
        .expect("the service saw the body fail")
        .expect("an error");
    assert_eq!(error, RequestBodyError::Aborted);
    // Closed (FIN) before the announced length: the body is short, its framing broken.
    let mut stream = TcpStream::connect(server.local_addr())
        .await
        .expect("connect to the server");
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("write");
    stream.shutdown().await.expect("FIN");
    let error = tokio::time::timeout(EXCHANGE, errors.recv())
        .await
        .expect("the service saw the body fail")
        .expect("an error");
    assert_eq!(error, RequestBodyError::Framing);
    server.shutdown().await.expect("stops");
}

/// RFC 9112 §3.2.2: the Host of an absolute-form request is the target's, whatever the
/// field said; the service (and the member) never sees two names for one request.
#[tokio::test]
async fn an_absolute_form_target_names_the_host() {
    let echo = tower::service_fn(|request: Request<RequestBody>| async move {
        let host = request
            .headers()
            .get(http::header::HOST)
            .map(|h| Bytes::copy_from_slice(h.as_bytes()))
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(Full::new(host)))
    });
    let server = Server::new()
        .listen("127.0.0.1:0".parse().expect("an address"), echo)
        .await
        .expect("a loopback port");
    let answer = exchange(
        &server,
        b"GET http://app.example:8080/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(
        answer.text.ends_with("\r\n\r\napp.example:8080"),
        "{answer:?}"
    );
    // A target with userinfo, or a bad port, is refused as a bad Host is.
    for target in ["http://user@app.example/x", "http://app.example:0/x"] {
        let answer = exchange(
            &server,
            format!("GET {target} HTTP/1.1\r\nHost: app.example\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(answer.status, Some(400), "{target}: {answer:?}");
    }
    server.shutdown().await.expect("stops");

    // Through the site, with ProxyPreserveHost On: the member sees the target's host.
    let front = Front::with_config(limits(), "ProxyPreserveHost On\n").await;
    let answer = front
        .send(b"GET http://app.example:8080/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let seen = front.backend.last_request().expect("the member saw it");
    assert_eq!(seen.header("host"), Some("app.example:8080"));
    assert_eq!(seen.path(), "/x");
    front.server.shutdown().await.expect("stops");
}

/// A client that goes away in the middle of its body leaves no busy count and no member
/// connection behind.
#[tokio::test]
async fn a_client_gone_mid_body_leaves_nothing_behind() {
    let front = Front::start().await;
    for reset in [false, true] {
        let mut stream = TcpStream::connect(front.server.local_addr())
            .await
            .expect("connect to the proxy");
        stream
            .write_all(
                b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100\r\n\r\n0123456789",
            )
            .await
            .expect("write");
        // Until the member has the request (its head, and the bytes so far).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while front.backend.open_connections() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never forwarded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if reset {
            stream.set_zero_linger().expect("SO_LINGER 0");
        }
        drop(stream);
        front.settled().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while front.backend.open_connections() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a member connection stayed open ({} reset)",
                if reset { "after a" } else { "without" }
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(front.backend.hits(), 0);
    front.server.shutdown().await.expect("stops");
}
