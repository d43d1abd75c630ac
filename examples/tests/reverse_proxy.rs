//! The reverse proxy's embedded demo, served on loopback and driven by a real client.

use std::time::Duration;

use examples::{demo_store, start_demo_backends};
use proxy_balancer::server::Server;
use proxy_balancer::site::Site;
use proxy_balancer::sticky_route::RouteCookie;
use proxy_balancer_test::TestClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_balances_fails_over_and_stops_cleanly() {
    let backends = start_demo_backends(3).await.expect("loopback ports");
    let store = demo_store(&backends).expect("valid demo");
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let running = Server::new()
        .listen(loopback, Site::single(store, Some(RouteCookie::new())))
        .await
        .expect("a loopback port");
    let addr = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    let url = format!("http://{addr}/hello");

    let mut names = Vec::new();
    for _ in 0..6 {
        let response = client.get(&url).await.expect("an answer");
        assert_eq!(response.status, 200);
        names.push(
            response
                .header("x-backend")
                .expect("set by the backend")
                .to_owned(),
        );
    }
    assert_eq!(names, ["backend-1", "backend-2", "backend-3"].repeat(2));
    // The backends see the path.
    assert_eq!(
        backends[0]
            .last_request()
            .expect("one request")
            .path_and_query,
        "/hello"
    );

    // The first visit got its route cookie; a request with it sticks and gets none.
    let sticky = http::Request::get(&url)
        .header(http::header::COOKIE, "ROUTEID=.node3")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("valid");
    for _ in 0..3 {
        let response = client.request(sticky.clone()).await.expect("an answer");
        assert_eq!(response.header("x-backend"), Some("backend-3"));
        assert_eq!(response.header("set-cookie"), None);
    }
    let fresh = client.get(&url).await.expect("an answer");
    assert!(
        fresh
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("ROUTEID=.node")),
        "a balanced request gets its route cookie"
    );

    // A backend goes away: no client-visible error.
    backends[1]
        .take_down()
        .await
        .expect("the port is held while down");
    for _ in 0..6 {
        let response = client.get(&url).await.expect("an answer");
        assert_eq!(response.status, 200);
        assert_ne!(response.header("x-backend"), Some("backend-2"));
    }
    // All gone: Apache's 503 with Retry-After.
    for backend in [&backends[0], &backends[2]] {
        backend
            .take_down()
            .await
            .expect("the port is held while down");
    }
    let response = client.get(&url).await.expect("an answer");
    assert_eq!(response.status, 503);
    assert!(response.header("retry-after").is_some());

    running.shutdown().await.expect("stops cleanly");
}
