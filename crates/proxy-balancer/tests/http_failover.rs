//! The balancer over real loopback backends through the built-in HTTP member client:
//! members killed and restarted under sequential and concurrent load.
//!
//! A member that comes back is taken down with `TestBackend::take_down` (connections refused,
//! the port kept) rather than stopped, so no other test's socket can take its port before it
//! is brought up again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use proxy_balancer::balancer::BalancerOptions;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, MemberParams, StatusFlags};
use proxy_balancer_test::TestBackend;
use tower::ServiceExt;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

type HttpBalancer = Balancer<MakeHttpMember<Full<Bytes>>>;

async fn setup(n: usize, retry: &str) -> (Vec<TestBackend>, Arc<BalancerStore>, HttpBalancer) {
    let mut backends = Vec::new();
    for i in 0..n {
        backends.push(
            TestBackend::start(format!("backend-{i}"))
                .await
                .expect("bind 127.0.0.1:0"),
        );
    }
    let members = backends.iter().map(|b| {
        let mut m = MemberParams::new(&b.url()).expect("a loopback url");
        m.set("retry", retry).expect("a whole number");
        m.set("connectiontimeout", "1").expect("valid");
        m
    });
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("failover"),
            members,
            tokio::time::Instant::now().into_std(),
        )
        .expect("distinct members"),
    );
    let options = BalancerOptions::default().retry_idempotent(true);
    let balancer = Balancer::with_options(Arc::clone(&store), MakeHttpMember::new(), options);
    (backends, store, balancer)
}

/// One GET through the balancer; the body read to the end. The answering backend's name.
async fn get(balancer: &HttpBalancer) -> Result<String, String> {
    let request = Request::get("/hello")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let response = tokio::time::timeout(BOUND, balancer.clone().oneshot(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e} ({:?})", e.kind()))?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn busy(store: &BalancerStore) -> u64 {
    store
        .snapshot()
        .members()
        .iter()
        .map(|m| m.state().busy())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_costs_no_request_and_comes_back() {
    let (backends, store, balancer) = setup(3, "1").await;
    let mut errors = Vec::new();
    for i in 0..300 {
        if i == 100 {
            backends[1].take_down().await.expect("hold the port");
        }
        if let Err(e) = get(&balancer).await {
            errors.push((i, e));
        }
    }
    assert_eq!(errors, [], "client-visible errors while a member was down");
    let member = store.snapshot().members()[1].clone();
    assert!(
        member.flags().contains(StatusFlags::IN_ERROR),
        "the dead member is in error: {:?}",
        member.flags()
    );

    // Back up, and once its retry window (1 s) has passed, it is used again.
    backends[1].bring_up().await.expect("the kept port");
    let hits_before = backends[1].hits();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..30 {
        get(&balancer).await.expect("all members up");
    }
    assert!(backends[1].hits() > hits_before, "the member came back");
    assert!(member.is_usable());
    assert_eq!(busy(&store), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_see_no_error_when_a_member_dies() {
    let (backends, store, balancer) = setup(3, "60").await;
    let clients = 8;
    let per_client = 38; // ≈ 300 requests in all
    let mut tasks = Vec::new();
    for c in 0..clients {
        let balancer = balancer.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..per_client {
                if let Err(e) = get(&balancer).await {
                    errors.push((c, i, e));
                }
            }
            errors
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    backends[2]
        .take_down()
        .await
        .expect("the port is held while down");
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(
            tokio::time::timeout(BOUND, task)
                .await
                .expect("bounded")
                .expect("no panic"),
        );
    }
    assert_eq!(errors, [], "client-visible errors");
    assert_eq!(busy(&store), 0, "busy counts back to 0");
    let served: u64 = backends.iter().map(TestBackend::hits).sum();
    assert!(served >= (clients * per_client) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_members_down_is_a_503_and_forcerecovery_retries_them() {
    let (backends, store, balancer) = setup(2, "60").await;
    backends[0].take_down().await.expect("hold the port");
    backends[1]
        .take_down()
        .await
        .expect("the port is held while down");
    let error = get(&balancer).await.expect_err("nobody answers");
    assert!(error.contains("Connect"), "{error}");
    // forcerecovery=On (the default): the next request tries them all again, and a
    // member that came back serves it at once, whatever its retry.
    backends[0].bring_up().await.expect("the kept port");
    assert_eq!(get(&balancer).await.as_deref(), Ok("backend-0"));
    // forcerecovery=Off: a 503 at once until the retry window passes.
    store.update_params(|p| p.force_recovery = false);
    backends[0].take_down().await.expect("hold the port");
    let _ = get(&balancer).await;
    let _ = get(&balancer).await;
    backends[0].bring_up().await.expect("the kept port");
    let error = get(&balancer).await.expect_err("still in the retry window");
    assert!(error.contains("NoMember"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_backends_are_502s_or_failovers_and_never_leak_busy() {
    use proxy_balancer_test::Mode;
    let (backends, store, retrying) = setup(2, "60").await;
    let apache_like = Balancer::new(Arc::clone(&store), MakeHttpMember::new());
    for mode in [Mode::Garbage, Mode::CloseWithoutResponse, Mode::Reset] {
        backends[0].set_mode(mode);
        // As Apache: a POST whose member answers garbage or nothing is a 502.
        let mut errors = 0;
        for _ in 0..4 {
            let request = Request::post("/form")
                .body(Full::new(Bytes::from_static(b"a=1")))
                .expect("valid");
            match tokio::time::timeout(BOUND, apache_like.clone().oneshot(request))
                .await
                .expect("bounded")
            {
                Ok(response) => assert_eq!(response.status(), 200),
                Err(e) => {
                    assert_eq!(e.status(), 502, "{mode:?}: {e}");
                    errors += 1;
                }
            }
        }
        assert!(errors > 0, "{mode:?}: the broken member was picked");
        // With idempotent retries on, GETs go to the healthy member instead.
        for _ in 0..4 {
            assert_eq!(get(&retrying).await.as_deref(), Ok("backend-1"), "{mode:?}");
        }
        assert_eq!(busy(&store), 0, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_response_releases_busy() {
    let (backends, store, balancer) = setup(1, "60").await;
    backends[0].set_body_size(4 << 20);
    let request = Request::get("/big")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let response = tokio::time::timeout(BOUND, balancer.oneshot(request))
        .await
        .expect("bounded")
        .expect("an answer");
    let mut body = response.into_body();
    let first = tokio::time::timeout(BOUND, body.frame())
        .await
        .expect("bounded")
        .expect("a frame")
        .expect("no error");
    assert!(first.is_data());
    assert_eq!(busy(&store), 1, "busy while the body streams");
    drop(body);
    assert_eq!(busy(&store), 0, "released when the client goes away");
    let read = store.snapshot().members()[0].state().read();
    assert!(
        read > 15 && read < 4 << 20,
        "only what was read is counted: {read}"
    );
}
