//! The built-in member client's time limits against real loopback sockets: `timeout` (a
//! member that reads the request and never answers), `connectiontimeout` (a connect that
//! cannot complete) and the wait for a pooled connection to become ready again.
//!
//! Each test measures against the limit it pins: it needs the limit to have run (at least
//! that long) and ends far sooner than without it, whatever the machine's speed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::Body;
use http_body_util::{BodyExt, Full};
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::{
    Balancer, BalancerParams, BalancerStore, ErrorKind, MemberParams, StatusFlags,
};
use proxy_balancer_test::{ChannelBody, Mode, TestBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};
use tower::ServiceExt;

/// The member limits the tests set (`timeout=1`, `connectiontimeout=1`), and the client's
/// pooled-connection ready wait (1 s, not public).
const LIMIT: Duration = Duration::from_secs(1);
/// What "soon after the limit" means: generous for a loaded 2-core machine, far below what
/// ignoring the limit gives (`DEFAULT_TIMEOUT`, 60 s; a member `timeout` of 30 s; 600 s).
const SOON: Duration = Duration::from_secs(5);
/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);
/// Bound on the connects that fill a listener's backlog: on loopback a connect that can
/// complete does so in microseconds.
const FILL_CONNECT: Duration = Duration::from_millis(300);

/// A balancer over `members` (URL and worker parameters each), in this order.
fn balancer<B>(
    members: &[(String, &[(&str, &str)])],
) -> (Arc<BalancerStore>, Balancer<MakeHttpMember<B>>)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<proxy_balancer::BoxError>,
{
    let members = members.iter().map(|(url, params)| {
        let mut member = MemberParams::new(url).expect("a loopback url");
        for (k, v) in *params {
            member.set(k, v).expect("valid");
        }
        member
    });
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("balancer://timeouts"),
            members,
            Instant::now().into_std(),
        )
        .expect("distinct members"),
    );
    let balancer = Balancer::new(Arc::clone(&store), MakeHttpMember::new());
    (store, balancer)
}

fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

/// The whole body of `response`, bounded.
async fn read_body<B>(response: http::Response<B>) -> Bytes
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    timeout(BOUND, response.into_body().collect())
        .await
        .expect("bounded")
        .expect("a body")
        .to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_answers_fails_with_a_504_after_its_timeout() {
    let hanging = TestBackend::builder("hanging")
        .mode(Mode::Hang)
        .start()
        .await
        .expect("bind 127.0.0.1:0");
    let (_store, client) = balancer::<Full<Bytes>>(&[(hanging.url(), &[("timeout", "1")])]);
    let request = Request::get("/slow").body(empty()).expect("valid");

    let started = Instant::now();
    let result = timeout(BOUND, client.oneshot(request))
        .await
        .expect("the member's timeout (1 s) ends the request, not the test's bound");
    let elapsed = started.elapsed();

    let error = result.expect_err("a member that never answers");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.status(), 504);
    assert_eq!(hanging.hits(), 1, "the member read the request");
    assert!(elapsed >= LIMIT, "failed before the timeout: {elapsed:?}");
    assert!(elapsed < SOON, "long after the timeout: {elapsed:?}");
}

/// A listener on `127.0.0.1` that never accepts, its backlog full: a further connect to it
/// hangs (its SYN is dropped and retried) instead of completing or being refused. Keep the
/// returned connections open for as long as that must hold.
async fn unreachable() -> (TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .expect("bind 127.0.0.1:0");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("bound");
    let mut queued = Vec::new();
    // Linux queues backlog + 1 connections; a few more tries are a margin.
    for _ in 0..8 {
        match timeout(FILL_CONNECT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(e)) => panic!("connect to the unaccepting listener failed: {e}"),
            // Full: this connect hangs, as the member's will.
            Err(_) => return (listener, queued),
        }
    }
    panic!(
        "{} connects completed: the backlog of {addr} never filled",
        queued.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_cannot_complete_fails_over_after_connectiontimeout() {
    let (listener, _queued) = unreachable().await;
    let unreachable_url = format!("http://{}", listener.local_addr().expect("bound"));
    let healthy = TestBackend::start("healthy")
        .await
        .expect("bind 127.0.0.1:0");
    // A large `timeout`: only `connectiontimeout` can end the connect in time.
    let (store, client) = balancer::<Full<Bytes>>(&[
        (
            unreachable_url,
            &[("connectiontimeout", "1"), ("timeout", "30")],
        ),
        (healthy.url(), &[]),
    ]);
    let request = Request::get("/x").body(empty()).expect("valid");

    let started = Instant::now();
    let response = timeout(BOUND, client.oneshot(request))
        .await
        .expect("connectiontimeout (1 s) ends the connect, not the test's bound")
        .expect("the request fails over to the healthy member");
    let elapsed = started.elapsed();

    assert_eq!(response.status(), 200);
    let body = read_body(response).await;
    assert_eq!(body, "healthy");
    assert_eq!(healthy.hits(), 1);
    let first = store.snapshot().members()[0].clone();
    assert!(
        first.flags().contains(StatusFlags::IN_ERROR),
        "the unreachable member is put in error: {:?}",
        first.flags()
    );
    assert!(
        elapsed >= LIMIT,
        "failed over before connectiontimeout: {elapsed:?}"
    );
    assert!(elapsed < SOON, "long after connectiontimeout: {elapsed:?}");
}

/// A raw HTTP/1.1 member that answers each connection's first request as soon as its head
/// has arrived (`200`, `Content-Length: 2`, `ok`), without reading its body, then reads and
/// drops whatever comes, never answering again. Counts the connections it accepted.
async fn early_answering_member() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        // Bounded: the test makes two or three connections.
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            connections.spawn(answer_early(stream));
        }
    });
    (addr, accepted, task)
}

async fn answer_early(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0_u8; 4096];
    // Bounded: a request head is far below 64 KiB.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await
        .is_err()
    {
        return;
    }
    // Ends with the client's connection (or the test's runtime).
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_that_never_becomes_ready_is_replaced() {
    let (addr, accepted, _server) = early_answering_member().await;
    let (_store, client) =
        balancer::<ChannelBody>(&[(format!("http://{addr}"), &[("timeout", "30")])]);

    // A POST whose body never ends: its answer comes early, the connection goes back to the
    // pool, but it cannot take another request while the body is still being sent.
    let (_body_tx, body) = ChannelBody::new(1);
    let request = Request::post("/upload").body(body).expect("valid");
    let response = timeout(BOUND, client.clone().oneshot(request))
        .await
        .expect("bounded")
        .expect("the early answer");
    assert_eq!(response.status(), 200);
    let body = read_body(response).await;
    assert_eq!(body, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // The next request waits for that connection at most the ready wait (1 s), then goes
    // out on a new one.
    let request = Request::get("/next")
        .body(ChannelBody::empty())
        .expect("valid");
    let started = Instant::now();
    let response = timeout(BOUND, client.oneshot(request))
        .await
        .expect("the ready wait (1 s) gives up the pooled connection, not the test's bound")
        .expect("an answer on a new connection");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a second connection");
    // The pooled connection had its wait: else the scenario no longer reaches it (the
    // connection would be closed, or ready, and the test would prove nothing).
    assert!(elapsed >= LIMIT, "no ready wait: {elapsed:?}");
    assert!(elapsed < SOON, "long after the ready wait: {elapsed:?}");
}
