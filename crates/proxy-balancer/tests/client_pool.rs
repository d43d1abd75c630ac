//! The built-in member client's connection pool over real loopback backends: reuse,
//! `disablereuse`, `max`, `ttl`, a member closing its idle connections, `Host`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::proxy_pass::PreserveHost;
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, MemberParams};
use proxy_balancer_test::TestBackend;
use tokio::time::{timeout, Instant};
use tower::ServiceExt;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

type Client = Balancer<MakeHttpMember<Full<Bytes>>>;

async fn backend() -> TestBackend {
    TestBackend::start("pool").await.expect("bind 127.0.0.1:0")
}

/// A balancer with one member, `url`, with the given worker parameters.
fn client(url: &str, params: &[(&str, &str)]) -> Client {
    let mut member = MemberParams::new(url).expect("a loopback url");
    for (k, v) in params {
        member.set(k, v).expect("valid");
    }
    let store = BalancerStore::new(
        BalancerParams::new("balancer://pool"),
        [member],
        Instant::now().into_std(),
    )
    .expect("one member");
    Balancer::new(Arc::new(store), MakeHttpMember::new())
}

/// One GET, its body read to the end; the status.
async fn get(client: &Client, host: Option<&str>) -> u16 {
    send(client, host, false).await
}

/// One GET, with `PreserveHost` when `preserve` (as the forwarding layer puts it for
/// `ProxyPreserveHost On`); the status.
async fn send(client: &Client, host: Option<&str>, preserve: bool) -> u16 {
    let mut request = Request::get("/pool");
    if let Some(host) = host {
        request = request.header(http::header::HOST, host);
    }
    if preserve {
        request = request.extension(PreserveHost);
    }
    let request = request.body(Full::new(Bytes::new())).expect("valid");
    let response = timeout(BOUND, client.clone().oneshot(request))
        .await
        .expect("bounded")
        .expect("an answer");
    let status = response.status().as_u16();
    timeout(BOUND, response.into_body().collect())
        .await
        .expect("bounded")
        .expect("a body");
    status
}

/// The client ports the backend saw, one per connection.
fn connections(backend: &TestBackend) -> HashSet<u16> {
    backend.requests().iter().map(|r| r.peer.port()).collect()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let waited = timeout(BOUND, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_share_one_connection() {
    let b = backend().await;
    let c = client(&b.url(), &[]);
    for _ in 0..20 {
        assert_eq!(get(&c, None).await, 200);
    }
    assert_eq!(b.hits(), 20);
    assert_eq!(connections(&b).len(), 1, "kept alive and reused");
}

#[tokio::test]
async fn disablereuse_opens_a_connection_per_request_and_closes_it() {
    let b = backend().await;
    let c = client(&b.url(), &[("disablereuse", "On")]);
    for _ in 0..5 {
        assert_eq!(get(&c, None).await, 200);
    }
    assert_eq!(connections(&b).len(), 5);
    wait_until("connections closed", || b.open_connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_caps_the_connections_open() {
    let b = backend().await;
    // Every response waits until released: five requests at once find two connections
    // (`max=2`, a hard cap as Apache's); the three others wait for one of them.
    b.hold_responses();
    let c = client(&b.url(), &[("max", "2")]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let c = c.clone();
        tasks.spawn(async move { get(&c, None).await });
    }
    wait_until("two requests held", || b.held_responses() == 2).await;
    // The others stay queued in the proxy: no third connection opens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.held_responses(), 2);
    assert_eq!(b.open_connections(), 2);
    b.release_responses();
    let joined = timeout(BOUND, async {
        while let Some(status) = tasks.join_next().await {
            assert_eq!(status.expect("no panic"), 200);
        }
    })
    .await;
    assert!(joined.is_ok(), "the released and queued requests finish");
    assert_eq!(b.hits(), 5);
    assert_eq!(
        connections(&b).len(),
        2,
        "the two connections served all five"
    );
    b.reset_counters();
    for _ in 0..4 {
        assert_eq!(get(&c, None).await, 200);
    }
    // The two kept connections serve them (the most recent one is preferred once its
    // connection says it is ready again, so the two may alternate): no new connection.
    assert!(connections(&b).len() <= 2, "{:?}", connections(&b));
    assert!(b.open_connections() <= 2);
}

#[tokio::test]
async fn an_idle_connection_older_than_ttl_is_not_reused() {
    let b = backend().await;
    let c = client(&b.url(), &[("ttl", "1")]);
    assert_eq!(get(&c, None).await, 200);
    assert_eq!(get(&c, None).await, 200);
    assert_eq!(connections(&b).len(), 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(get(&c, None).await, 200);
    assert_eq!(connections(&b).len(), 2, "the expired one was dropped");
}

#[tokio::test]
async fn a_member_that_closed_its_idle_connections_gets_the_request_on_a_new_one() {
    let b = backend().await;
    let c = client(&b.url(), &[("keepalive", "On")]);
    assert_eq!(get(&c, None).await, 200);
    // The member goes away (keeping its port) and comes back: the pooled connection is
    // closed.
    b.take_down().await.expect("hold the port");
    b.bring_up().await.expect("the kept port");
    for _ in 0..3 {
        assert_eq!(get(&c, None).await, 200, "no error for the closed idle one");
    }
    assert_eq!(b.hits(), 4);
}

#[tokio::test]
async fn host_is_the_members_unless_preserved() {
    let b = backend().await;
    let c = client(&b.url(), &[]);
    assert_eq!(get(&c, Some("front.example")).await, 200);
    let addr = b.url().trim_start_matches("http://").to_owned();
    assert_eq!(
        b.last_request().expect("seen").header("host"),
        Some(addr.as_str())
    );
    assert_eq!(send(&c, Some("front.example"), true).await, 200);
    assert_eq!(
        b.last_request().expect("seen").header("host"),
        Some("front.example")
    );
    assert_eq!(send(&c, None, true).await, 200);
    assert_eq!(
        b.last_request().expect("seen").header("host"),
        Some(addr.as_str()),
        "no Host to preserve: the member's"
    );
}

#[tokio::test]
async fn a_member_path_prefixes_the_request_path() {
    let b = backend().await;
    let c = client(&format!("{}/base", b.url()), &[]);
    assert_eq!(get(&c, None).await, 200);
    assert_eq!(b.last_request().expect("seen").path_and_query, "/base/pool");
}
