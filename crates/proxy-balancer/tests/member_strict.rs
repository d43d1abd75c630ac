//! Strict HTTP toward members, over real loopback sockets: what a member answers is framed
//! and checked as Apache's mod_proxy_http does (Transfer-Encoding with Content-Length, an
//! unexpected `101`, interim responses, garbage), and a request whose body fails on the
//! client's side is the client's error, not the member's.
//!
//! Raw members are `tokio::net::TcpListener`s on 127.0.0.1:0 that write fixed bytes; real
//! members are the test kit's `TestBackend`s.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use proxy_balancer::balancer::{BalancerOptions, MakeMember};
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::{
    Balancer, BalancerParams, BalancerStore, ErrorKind, ErrorResponseLayer, MemberParams,
    RequestBodyError, StatusFlags,
};
use proxy_balancer_test::{wait_for, TestBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower::{ServiceBuilder, ServiceExt};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// The largest request head a raw member reads: far more than any request here.
const MAX_HEAD: usize = 64 * 1024;

/// The smuggling answer of the issue: chunked `smuggle` (7 bytes) with a `Content-Length`
/// of 3 beside it.
const TE_AND_CL: &[u8] =
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n7\r\nsmuggle\r\n0\r\n\r\n";

/// A switch to another protocol nobody asked for.
const SWITCH: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

/// `102` and `103` before the final answer.
const INTERIM: &[u8] = b"HTTP/1.1 102 Processing\r\n\r\n\
HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal";

/// A `100 Continue` the request did not ask for, before the final answer.
const UNASKED_CONTINUE: &[u8] =
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal";

// ===== raw members =====

/// A member that answers every request head it reads with the same bytes, and counts the
/// connections it accepted and those the client closed. Stops when dropped.
struct RawMember {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for RawMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawMember {
    async fn start(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound");
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                connections.spawn(answer_each_head(stream, answer, Arc::clone(&c)));
            }
        });
        Self {
            addr,
            accepted,
            closed,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Reads request heads (no bodies here) and answers each with `answer`, until the client
/// closes the connection (counted in `closed`), it fails, or a head grows past
/// [`MAX_HEAD`].
async fn answer_each_head(mut stream: TcpStream, answer: &'static [u8], closed: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            head.clear();
            if stream.write_all(answer).await.is_err() {
                return;
            }
        } else if head.len() > MAX_HEAD {
            return;
        }
    }
}

// ===== the balancer and the front door =====

type Client<B> = Balancer<MakeHttpMember<B>>;

/// A balancer over `urls` with the given balancer parameters and options.
fn balancer<B>(urls: &[String], params: &[(&str, &str)], options: BalancerOptions) -> Client<B>
where
    MakeHttpMember<B>: MakeMember,
{
    let mut balancer = BalancerParams::new("balancer://strict");
    for (k, v) in params {
        balancer.set(k, v).expect("valid");
    }
    let members = urls
        .iter()
        .map(|u| MemberParams::new(u).expect("a loopback url"));
    let store = BalancerStore::new(balancer, members, tokio::time::Instant::now().into_std())
        .expect("valid members");
    Balancer::with_options(Arc::new(store), MakeHttpMember::new(), options)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("valid")
}

/// The member's answer through the balancer, its body read to the end.
async fn fetch(client: &Client<Full<Bytes>>) -> (http::response::Parts, Bytes) {
    let response = timeout(BOUND, client.clone().oneshot(get("/strict")))
        .await
        .expect("bounded")
        .expect("an answer");
    let (parts, body) = response.into_parts();
    let body = timeout(BOUND, body.collect())
        .await
        .expect("bounded")
        .expect("a whole body")
        .to_bytes();
    (parts, body)
}

/// The balancer's error for a GET.
async fn fetch_error(client: &Client<Full<Bytes>>) -> proxy_balancer::Error {
    timeout(BOUND, client.clone().oneshot(get("/strict")))
        .await
        .expect("bounded")
        .expect_err("the member's answer is refused")
}

/// The status `ErrorResponseLayer` answers for a GET.
async fn answered_status(client: &Client<Full<Bytes>>) -> StatusCode {
    let service = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .service(client.clone());
    timeout(BOUND, service.oneshot(get("/strict")))
        .await
        .expect("bounded")
        .expect("infallible")
        .status()
}

async fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_for(what, BOUND, Duration::from_millis(5), cond).await;
}

/// Serves `ProxyPass / <member>/` on a loopback front door, sends it one raw HTTP/1.1 GET
/// and returns all the bytes the client got (the connection closes after the answer).
async fn through_the_front_door(member: &str) -> String {
    let config = proxy_balancer::apache_config::parse(&format!("ProxyPass / {member}/\n"))
        .expect("a valid config");
    let site = proxy_balancer::site::Site::from_config(&config).expect("buildable");
    let running = proxy_balancer::server::Server::new()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), site)
        .await
        .expect("a loopback port");
    let mut client = TcpStream::connect(running.local_addr())
        .await
        .expect("the front door");
    client
        .write_all(b"GET /strict HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = Vec::new();
    timeout(BOUND, client.read_to_end(&mut answer))
        .await
        .expect("the front door answers and closes")
        .expect("read");
    running.shutdown().await.expect("stops cleanly");
    String::from_utf8_lossy(&answer).into_owned()
}

// ===== Transfer-Encoding and Content-Length =====

/// RFC 9112 §6.3: Transfer-Encoding frames the body. The client gets all of `smuggle` and
/// no `Content-Length: 3` (it used to get `Content-Length: 3` and `smu`), and the member's
/// connection is closed after the response: the next request opens a new one.
#[tokio::test]
async fn transfer_encoding_frames_a_body_that_also_has_a_content_length() {
    let member = RawMember::start(TE_AND_CL).await;
    let client = balancer(&[member.url()], &[], BalancerOptions::default());
    for round in 1..=3 {
        let (parts, body) = fetch(&client).await;
        assert_eq!(parts.status, 200);
        assert!(
            parts.headers.get(header::CONTENT_LENGTH).is_none(),
            "round {round}: {:?}",
            parts.headers
        );
        assert_eq!(body, "smuggle", "round {round}");
        assert_eq!(
            member.accepted(),
            round,
            "a new connection for each request"
        );
        wait_until("the member connection closed", || member.closed() == round).await;
    }
}

/// The same through the front door, on the wire: the whole body, no `Content-Length: 3`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_relays_the_whole_chunked_body() {
    let member = RawMember::start(TE_AND_CL).await;
    let answer = through_the_front_door(&member.url()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(!head.contains("content-length"), "{answer}");
    assert!(answer.contains("smuggle"), "{answer}");
}

// ===== 1xx =====

/// An unsolicited `101 Switching Protocols` is a 502 (Apache's AH00898), named after the
/// member, which is not put in error; the connection is closed, not reused.
#[tokio::test]
async fn an_unsolicited_101_is_a_502_and_its_connection_is_closed() {
    let member = RawMember::start(SWITCH).await;
    let client = balancer(&[member.url()], &[], BalancerOptions::default());
    let error = fetch_error(&client).await;
    assert_eq!(error.kind(), ErrorKind::Upstream, "{error}");
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error.apache_id(), Some("AH00898"));
    assert_eq!(error.member(), Some(member.url().as_str()));
    wait_until("the member connection closed", || member.closed() == 1).await;
    assert_eq!(answered_status(&client).await, StatusCode::BAD_GATEWAY);
    assert_eq!(
        member.accepted(),
        2,
        "a new connection for the second request"
    );
    let m = client.store().snapshot().members()[0].clone();
    assert!(!m.flags().contains(StatusFlags::IN_ERROR));
}

/// Through the front door: the client gets a 502, never the `101`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_does_not_relay_an_unsolicited_101() {
    let member = RawMember::start(SWITCH).await;
    let answer = through_the_front_door(&member.url()).await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(!answer.contains(" 101 "), "{answer}");
}

/// Interim responses (`102`, `103`, an unasked `100 Continue`) are skipped: the client gets
/// the final `200` and its body, and none of the interim heads' fields.
#[tokio::test]
async fn interim_responses_are_not_relayed() {
    for answer in [INTERIM, UNASKED_CONTINUE] {
        let member = RawMember::start(answer).await;
        let client = balancer(&[member.url()], &[], BalancerOptions::default());
        let (parts, body) = fetch(&client).await;
        assert_eq!(parts.status, 200);
        assert_eq!(body, "final");
        assert!(
            parts.headers.get(header::LINK).is_none(),
            "{:?}",
            parts.headers
        );
        // An ordinary answer: the connection is kept for the next request.
        let (parts, _) = fetch(&client).await;
        assert_eq!(parts.status, 200);
        assert_eq!(member.accepted(), 1);
    }
}

/// On the wire through the front door: one response, the final one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_sends_only_the_final_response() {
    let member = RawMember::start(INTERIM).await;
    let answer = through_the_front_door(&member.url()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("link:"), "{answer}");
    assert!(answer.ends_with("final"), "{answer}");
}

// ===== garbage =====

/// A member answer that is not HTTP is a 502 that names the member, which is not put in
/// error (an upstream failure, as before).
#[tokio::test]
async fn a_garbled_answer_is_a_502_blamed_on_the_member() {
    let cases: [(&str, &'static [u8]); 6] = [
        ("not HTTP", b"NOT HTTP\r\n\r\n"),
        (
            "a bad status code",
            b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "an invalid Content-Length",
            b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nabc",
        ),
        (
            "a negative Content-Length",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
        ),
        (
            "two different Content-Lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "two different Content-Lengths in one field",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
        ),
    ];
    for (what, answer) in cases {
        let member = RawMember::start(answer).await;
        let client = balancer(&[member.url()], &[], BalancerOptions::default());
        let error = fetch_error(&client).await;
        assert_eq!(error.kind(), ErrorKind::Upstream, "{what}: {error:?}");
        assert_eq!(error.member(), Some(member.url().as_str()), "{what}");
        assert_eq!(answered_status(&client).await, 502, "{what}");
        let m = client.store().snapshot().members()[0].clone();
        assert!(!m.flags().contains(StatusFlags::IN_ERROR), "{what}");
    }
}

// ===== the client's body fails =====

/// A client's request body that yields some bytes, then fails as the server's request body
/// does for a broken, slow or oversized body.
struct FailingBody {
    sent: bool,
    failure: RequestBodyError,
}

impl FailingBody {
    const fn new(failure: RequestBodyError) -> Self {
        Self {
            sent: false,
            failure,
        }
    }
}

impl Body for FailingBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        if self.sent {
            return Poll::Ready(Some(Err(self.failure)));
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))))
    }
}

fn put(failure: RequestBodyError) -> Request<FailingBody> {
    let mut request = Request::new(FailingBody::new(failure));
    *request.method_mut() = Method::PUT;
    *request.uri_mut() = "/upload".parse().expect("valid");
    request
}

/// A body that fails on the client's side while it is sent: answered with the client's
/// status (400, 408, 413), not retried on the other member although retries are on, and
/// the member is not blamed (not in error, its run of errors untouched); its connection is
/// closed, not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_body_failure_is_the_clients_error() {
    let cases = [
        (RequestBodyError::Framing, StatusCode::BAD_REQUEST),
        (RequestBodyError::TimedOut, StatusCode::REQUEST_TIMEOUT),
        (RequestBodyError::TooLarge, StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (failure, status) in cases {
        for through_the_layer in [false, true] {
            let backends = [
                TestBackend::start("b0").await.expect("bind 127.0.0.1:0"),
                TestBackend::start("b1").await.expect("bind 127.0.0.1:0"),
            ];
            let urls = backends.each_ref().map(TestBackend::url);
            let client: Client<FailingBody> = balancer(
                &urls,
                &[("maxattempts", "3")],
                BalancerOptions::default().retry_idempotent(true),
            );
            let case = format!("{failure:?}, through the layer: {through_the_layer}");

            let blamed = if through_the_layer {
                let service = ServiceBuilder::new()
                    .layer(ErrorResponseLayer::new())
                    .service(client.clone());
                let response = timeout(BOUND, service.oneshot(put(failure)))
                    .await
                    .expect("bounded")
                    .expect("infallible");
                assert_eq!(response.status(), status, "{case}");
                assert_eq!(response.headers()[header::CONNECTION], "close", "{case}");
                None
            } else {
                let error = timeout(BOUND, client.clone().oneshot(put(failure)))
                    .await
                    .expect("bounded")
                    .expect_err("the body failed");
                assert_eq!(error.kind(), ErrorKind::Client, "{case}: {error:?}");
                assert_eq!(error.status(), status, "{case}");
                assert_eq!(error.request_body_error(), Some(failure), "{case}");
                assert!(!error.is_retryable(), "{case}");
                Some(
                    error
                        .member()
                        .expect("the member it was sent to")
                        .to_owned(),
                )
            };

            // Sent to one member, never to the other.
            let snapshot = client.store().snapshot();
            let members = snapshot.members();
            let (tried, other) = if members[0].state().elected() == 1 {
                (&members[0], &members[1])
            } else {
                (&members[1], &members[0])
            };
            assert_eq!(tried.state().elected(), 1, "{case}");
            if let Some(blamed) = blamed {
                assert_eq!(tried.url(), blamed, "{case}");
            }
            assert_eq!(other.state().elected(), 0, "{case}: not retried");
            assert_eq!(other.state().transferred(), 0, "{case}");
            // Not blamed.
            for m in members {
                assert!(!m.flags().contains(StatusFlags::IN_ERROR), "{case}");
                assert_eq!(m.state().consecutive_failures(), 0, "{case}");
                assert_eq!(m.state().error_time(), None, "{case}");
                assert_eq!(m.state().busy(), 0, "{case}");
            }
            let [b0, b1] = &backends;
            for b in [b0, b1] {
                assert_eq!(b.hits(), 0, "{case}: no member got a whole request");
            }
            // The member connection is closed, not kept for reuse.
            wait_until("member connections closed", || {
                b0.open_connections() == 0 && b1.open_connections() == 0
            })
            .await;
        }
    }
}

/// The member connection a client's body failed on is closed by the proxy itself (the
/// member here never closes it, and never answers): not kept, not reused.
#[tokio::test]
async fn the_connection_a_client_body_failed_on_is_closed() {
    let member = RawMember::start(b"").await;
    let client: Client<FailingBody> = balancer(&[member.url()], &[], BalancerOptions::default());
    for round in 1..=2 {
        let error = timeout(
            BOUND,
            client.clone().oneshot(put(RequestBodyError::Framing)),
        )
        .await
        .expect("bounded")
        .expect_err("the body failed");
        assert_eq!(error.kind(), ErrorKind::Client, "{error:?}");
        wait_until("the member connection closed", || member.closed() == round).await;
        assert_eq!(
            member.accepted(),
            round,
            "a new connection for each request"
        );
    }
}

/// The same for an answer without a body (to a HEAD): no `Content-Length`, and its
/// connection is not kept either.
#[tokio::test]
async fn a_head_answer_with_both_framings_is_not_kept_either() {
    let member = RawMember::start(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    )
    .await;
    let client: Client<Full<Bytes>> = balancer(&[member.url()], &[], BalancerOptions::default());
    for round in 1..=2 {
        let mut request = get("/strict");
        *request.method_mut() = Method::HEAD;
        let response = timeout(BOUND, client.clone().oneshot(request))
            .await
            .expect("bounded")
            .expect("an answer");
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        assert!(response.body().is_end_stream());
        wait_until("the member connection closed", || member.closed() == round).await;
        assert_eq!(
            member.accepted(),
            round,
            "a new connection for each request"
        );
    }
}

// ===== the member's timeout and a slow client =====

/// How often the slow client sends a piece of its body, and how many pieces: together
/// well over the member's `timeout` of 1 s, each gap well under it.
const DRIP_EVERY: Duration = Duration::from_millis(300);
const DRIPS: u32 = 7;

/// A PUT whose body comes in [`DRIPS`] pieces, one each [`DRIP_EVERY`], then ends.
fn slow_put() -> Request<proxy_balancer_test::ChannelBody> {
    let (tx, body) = proxy_balancer_test::ChannelBody::new(1);
    tokio::spawn(async move {
        for _ in 0..DRIPS {
            tokio::time::sleep(DRIP_EVERY).await;
            if tx
                .send(Frame::data(Bytes::from_static(b"piece")))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut request = Request::new(body);
    *request.method_mut() = Method::PUT;
    *request.uri_mut() = "/upload".parse().expect("valid");
    request
}

/// The member's `timeout` is how long the member may take, as Apache's is for each read
/// and write on the member connection: time spent waiting for a slow client's body does
/// not count (the client's own limits govern it). A 2.1 s upload through a member with
/// `timeout=1` and `failontimeout=On` is answered, and the member is not put in error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_body_does_not_run_out_the_members_timeout() {
    let member = TestBackend::start("slow-upload")
        .await
        .expect("bind 127.0.0.1:0");
    let mut params = MemberParams::new(&member.url()).expect("a loopback url");
    params.set("timeout", "1").expect("valid");
    let mut balancer_params = BalancerParams::new("balancer://slow");
    balancer_params.set("failontimeout", "On").expect("valid");
    let store = Arc::new(
        BalancerStore::new(
            balancer_params,
            [params],
            tokio::time::Instant::now().into_std(),
        )
        .expect("one member"),
    );
    let client = Balancer::new(
        Arc::clone(&store),
        MakeHttpMember::<proxy_balancer_test::ChannelBody>::new(),
    );
    let response = timeout(BOUND, client.oneshot(slow_put()))
        .await
        .expect("bounded")
        .expect("answered, not a 504");
    assert_eq!(response.status(), 200);
    let seen = member.last_request().expect("the member got it");
    assert_eq!(seen.body.len(), "piece".len() * DRIPS as usize);
    let m = store.snapshot().members()[0].clone();
    assert!(!m.flags().contains(StatusFlags::IN_ERROR));
}

/// The member's `timeout` still ends a member that has the whole body and does not answer:
/// counted from the body's end, not from the request's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_members_timeout_counts_from_the_last_piece_of_the_body() {
    let member = TestBackend::start("hangs").await.expect("bind 127.0.0.1:0");
    member.set_mode(proxy_balancer_test::Mode::Hang);
    let mut params = MemberParams::new(&member.url()).expect("a loopback url");
    params.set("timeout", "1").expect("valid");
    let store = BalancerStore::new(
        BalancerParams::new("balancer://hangs"),
        [params],
        tokio::time::Instant::now().into_std(),
    )
    .expect("one member");
    let client = Balancer::new(
        Arc::new(store),
        MakeHttpMember::<proxy_balancer_test::ChannelBody>::new(),
    );
    let started = tokio::time::Instant::now();
    let error = timeout(BOUND, client.oneshot(slow_put()))
        .await
        .expect("bounded")
        .expect_err("the member never answers");
    let elapsed = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:?}");
    let body_time = DRIP_EVERY * DRIPS;
    assert!(
        elapsed >= body_time + Duration::from_millis(900),
        "timed out before the member had its timeout after the body: {elapsed:?}"
    );
    assert!(elapsed < body_time + Duration::from_secs(3), "{elapsed:?}");
}

// ===== a broken client body through the front door =====

/// Serves `ProxyPass / <member>/`, sends `request` raw and returns the answer (the front
/// door closes the connection after it), with the member's store.
async fn raw_through_the_front_door(member: &str, request: &[u8]) -> (String, Arc<BalancerStore>) {
    let config = proxy_balancer::apache_config::parse(&format!("ProxyPass / {member}/\n"))
        .expect("a valid config");
    let site = proxy_balancer::site::Site::from_config(&config).expect("buildable");
    let store = Arc::clone(&site.stores()[0]);
    let running = proxy_balancer::server::Server::new()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), site)
        .await
        .expect("a loopback port");
    let mut client = TcpStream::connect(running.local_addr())
        .await
        .expect("the front door");
    client.write_all(request).await.expect("sent");
    let mut answer = Vec::new();
    timeout(BOUND, client.read_to_end(&mut answer))
        .await
        .expect("the front door answers and closes")
        .expect("read");
    running.shutdown().await.expect("stops cleanly");
    (String::from_utf8_lossy(&answer).into_owned(), store)
}

/// A chunked request body with a bad chunk size (`ZZZ`): 400, as Apache, not a 502 blamed
/// on the member; the member is not put in error and never gets a whole request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chunked_body_is_a_400_not_the_members_fault() {
    let member = TestBackend::start("chunks")
        .await
        .expect("bind 127.0.0.1:0");
    let (answer, store) = raw_through_the_front_door(
        &member.url(),
        b"PUT /upload HTTP/1.1\r\nHost: front.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\nZZZ\r\nmore\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(member.hits(), 0);
    let m = store.snapshot().members()[0].clone();
    assert!(!m.flags().contains(StatusFlags::IN_ERROR));
    assert_eq!(m.state().consecutive_failures(), 0);
}
