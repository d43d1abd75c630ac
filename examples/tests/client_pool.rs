//! The hyper-client-pool example's pattern: the balancer over the application's own
//! hyper-util client, one closure-made service per member, against loopback backends.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use examples::{demo_store, start_demo_backends};
use http::Request;
use http_body_util::{BodyExt, Empty};
use proxy_balancer::balancer::BalancerOptions;
use proxy_balancer::{Balancer, BalancerInfo, ErrorKind, ErrorResponseLayer, Member};
use tower::ServiceExt;

#[expect(dead_code, reason = "the example's `main` is not used here")]
#[path = "../hyper_client_pool.rs"]
mod hyper_client_pool;

/// Far above any loopback answer, far below a test harness's patience.
const BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_made_from_the_users_client_balance_and_fail_over() {
    let backends = start_demo_backends(3).await.expect("loopback ports");
    let store = demo_store(&backends).expect("valid demo");
    let client = hyper_client_pool::user_client();
    let options = BalancerOptions::default().retry_idempotent(true);
    let balancer = Balancer::with_options(
        Arc::clone(&store),
        move |member: &Member| hyper_client_pool::member_service::<Empty<Bytes>>(&client, member),
        options,
    );
    let get = |balancer| tokio::time::timeout(BOUND, hyper_client_pool::get(balancer, "/a/b?c=d"));

    // Rotation over the three, each answer tagged with the member that gave it.
    let mut names = Vec::new();
    for _ in 0..6 {
        let (member, backend) = get(&balancer).await.expect("in time").expect("an answer");
        let index = backends
            .iter()
            .position(|b| b.name() == backend)
            .expect("one of ours answered");
        assert_eq!(
            member,
            backends[index].url(),
            "BalancerInfo names the backend"
        );
        names.push(backend);
    }
    assert_eq!(names, ["backend-1", "backend-2", "backend-3"].repeat(2));
    // The member service rewrote the URI to the member's, path and query kept.
    let seen = backends[2].last_request().expect("a request");
    assert_eq!(seen.path_and_query, "/a/b?c=d");
    assert_eq!(seen.header("host"), Some(&*backends[2].addr().to_string()));

    // A backend goes away: the connect failure is classified, the request fails over.
    backends[1]
        .take_down()
        .await
        .expect("the port is held while down");
    for _ in 0..6 {
        let (_, backend) = get(&balancer).await.expect("in time").expect("an answer");
        assert_ne!(backend, "backend-2");
    }
    let snapshot = store.snapshot();
    assert!(
        !snapshot.members()[1].is_usable(),
        "the stopped member is in error"
    );

    // All gone: the balancer's error, which ErrorResponseLayer answers with Apache's 503.
    for backend in [&backends[0], &backends[2]] {
        backend
            .take_down()
            .await
            .expect("the port is held while down");
    }
    let request = || {
        Request::get("/a")
            .body(Empty::<Bytes>::new())
            .expect("a request")
    };
    let error = tokio::time::timeout(BOUND, balancer.clone().oneshot(request()))
        .await
        .expect("in time")
        .expect_err("no member left");
    // `Connect` when the last members are found down by this request, `NoMember` once all
    // are known to be in error: both Apache's 503.
    assert!(
        matches!(error.kind(), ErrorKind::Connect | ErrorKind::NoMember),
        "{error:?}"
    );
    assert_eq!(error.status(), 503);
    let response = tokio::time::timeout(
        BOUND,
        tower::ServiceBuilder::new()
            .layer(ErrorResponseLayer::new())
            .service(balancer)
            .oneshot(request()),
    )
    .await
    .expect("in time")
    .expect("infallible");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    // The BALANCER_* values of the last member tried, when one was (a `Connect` error), as
    // Apache keeps them for `Header always` on its 503; none when no member was usable.
    if let Some(info) = response.extensions().get::<BalancerInfo>() {
        assert_eq!(info.balancer_name(), "balancer://demo");
        assert!(
            backends.iter().any(|b| info
                .worker_name()
                .ends_with(&format!(":{}", b.addr().port()))),
            "{info:?}"
        );
    }
    let body = response.into_body().collect().await.expect("a body");
    assert!(body.to_bytes().starts_with(b"503"));
}
