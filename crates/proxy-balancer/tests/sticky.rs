//! Sticky sessions over real loopback backends: routes from cookies, query and path
//! parameters, failover with nofailover Off and On, redirect, drain, and the route cookie.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::sticky_route::{RouteCookie, SameSite, StickyRouteLayer};
use proxy_balancer::{
    Balancer, BalancerParams, BalancerStore, BoxError, ErrorResponseLayer, MemberParams,
    StatusFlags,
};
use proxy_balancer_test::TestBackend;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

type Proxy = BoxCloneSyncService<Request<Full<Bytes>>, Response<Bytes>, BoxError>;

struct Setup {
    backends: Vec<TestBackend>,
    store: Arc<BalancerStore>,
    proxy: Proxy,
}

/// Backends `node1` … with routes of the same names, and a proxy with the given balancer
/// parameters (and member parameters for member `i`).
async fn setup(
    n: usize,
    balancer: &[(&str, &str)],
    member: impl Fn(usize) -> Vec<(&'static str, &'static str)>,
    cookie: Option<RouteCookie>,
) -> Setup {
    let mut backends = Vec::new();
    for i in 1..=n {
        backends.push(
            TestBackend::start(format!("node{i}"))
                .await
                .expect("loopback"),
        );
    }
    let mut params = BalancerParams::new("sticky");
    for (k, v) in balancer {
        params.set(k, v).expect("valid balancer parameter");
    }
    let members = backends.iter().enumerate().map(|(i, b)| {
        let mut m = MemberParams::new(&b.url()).expect("valid url");
        m.set("route", &format!("node{}", i + 1))
            .expect("valid route");
        for (k, v) in member(i) {
            m.set(k, v).expect("valid member parameter");
        }
        m
    });
    let now = tokio::time::Instant::now().into_std();
    let store = Arc::new(BalancerStore::new(params, members, now).expect("valid"));
    let mut sticky = StickyRouteLayer::new(Arc::clone(&store));
    if let Some(cookie) = cookie {
        sticky = sticky.with_cookie(cookie);
    }
    let service = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(sticky)
        .service(Balancer::new(Arc::clone(&store), MakeHttpMember::new()));
    let proxy = BoxCloneSyncService::new(service.map_err(BoxError::from).and_then(collect));
    Setup {
        backends,
        store,
        proxy,
    }
}

/// The response with its body read (so the member's busy count is released).
async fn collect<B>(response: Response<B>) -> Result<Response<Bytes>, BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(Into::into)?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

fn none(_: usize) -> Vec<(&'static str, &'static str)> {
    Vec::new()
}

async fn send(proxy: &Proxy, uri: &str, cookies: &[&str]) -> Response<Bytes> {
    let mut request = Request::get(uri)
        .body(Full::new(Bytes::new()))
        .expect("valid");
    for c in cookies {
        request.headers_mut().append(
            header::COOKIE,
            header::HeaderValue::from_str(c).expect("valid"),
        );
    }
    tokio::time::timeout(BOUND, proxy.clone().oneshot(request))
        .await
        .expect("bounded")
        .expect("a response")
}

fn backend(response: &Response<Bytes>) -> &str {
    response
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

fn set_cookie(response: &Response<Bytes>) -> Option<&str> {
    response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn cookie_query_and_path_routes() {
    let s = setup(3, &[("stickysession", "JSESSIONID|jsessionid")], none, None).await;
    for _ in 0..3 {
        let r = send(&s.proxy, "/", &["JSESSIONID=6736BCF34.node3"]).await;
        assert_eq!(backend(&r), "node3", "Tomcat cookie");
    }
    let r = send(&s.proxy, "/app?jsessionid=ABC.node2&x=1", &[]).await;
    assert_eq!(backend(&r), "node2", "query parameter");
    let r = send(&s.proxy, "/app;jsessionid=ABC.node1", &[]).await;
    assert_eq!(backend(&r), "node1", "path parameter");
    // Both present: the URL wins.
    let r = send(&s.proxy, "/?jsessionid=X.node2", &["JSESSIONID=Y.node3"]).await;
    assert_eq!(backend(&r), "node2");
    // Several Cookie headers, the route in the second.
    let r = send(&s.proxy, "/", &["a=1; b=2", "c=3; JSESSIONID=Z.node3"]).await;
    assert_eq!(backend(&r), "node3");
}

#[tokio::test]
async fn separators_weblogic_and_off() {
    let s = setup(
        2,
        &[("stickysession", "JSESSIONID"), ("stickysessionsep", "!")],
        none,
        None,
    )
    .await;
    for _ in 0..2 {
        let r = send(&s.proxy, "/", &["JSESSIONID=abc!node2"]).await;
        assert_eq!(backend(&r), "node2");
    }
    let s = setup(
        2,
        &[("stickysession", "ROUTEID"), ("stickysessionsep", "Off")],
        none,
        None,
    )
    .await;
    for _ in 0..2 {
        let r = send(&s.proxy, "/", &["ROUTEID=node2"]).await;
        assert_eq!(backend(&r), "node2");
    }
}

#[tokio::test]
async fn malformed_input_is_balanced_normally() {
    let s = setup(2, &[("stickysession", "ROUTEID")], none, None).await;
    let long = format!("ROUTEID={}", "x".repeat(8 * 1024));
    let many: String = (0..100).map(|i| format!("c{i}=v{i}; ")).collect();
    for cookie in [
        "ROUTEID",
        "ROUTEID=",
        "ROUTEID=.",
        "ROUTEID=node2",
        long.as_str(),
        many.as_str(),
        "ROUTE%49D=.node2",
        "routeid=.node2",
        "XROUTEID=.node2",
    ] {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let r = send(&s.proxy, "/", &[cookie]).await;
            assert_eq!(r.status(), StatusCode::OK, "{cookie:.40}");
            seen.push(backend(&r).to_owned());
        }
        assert_eq!(seen.len(), 2);
        assert_ne!(seen[0], seen[1], "balanced, not sticky: {cookie:.40}");
    }
    // Bytes that are not UTF-8 in a Cookie header.
    let mut request = Request::get("/")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    request.headers_mut().insert(
        header::COOKIE,
        header::HeaderValue::from_bytes(b"ROUTEID=.node\xff").expect("opaque bytes"),
    );
    let r = tokio::time::timeout(BOUND, s.proxy.clone().oneshot(request))
        .await
        .expect("bounded")
        .expect("a response");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_down_member_fails_over_or_answers_503_with_nofailover() {
    let s = setup(
        2,
        &[("stickysession", "ROUTEID")],
        none,
        Some(RouteCookie::new()),
    )
    .await;
    s.backends[1]
        .take_down()
        .await
        .expect("the port is held while down");
    let r = send(&s.proxy, "/", &["ROUTEID=.node2"]).await;
    assert_eq!(backend(&r), "node1", "nofailover=Off: failover");
    assert_eq!(
        set_cookie(&r),
        Some("ROUTEID=.node1; Path=/"),
        "the new route"
    );
    assert!(!s.store.snapshot().members()[1].is_usable());

    let s = setup(
        2,
        &[("stickysession", "ROUTEID"), ("nofailover", "On")],
        none,
        None,
    )
    .await;
    s.backends[1]
        .take_down()
        .await
        .expect("the port is held while down");
    let r = send(&s.proxy, "/", &["ROUTEID=.node2"]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "nofailover=On");
    assert_eq!(r.headers()[header::CONNECTION], "close");
    // A route no member has is balanced normally.
    let r = send(&s.proxy, "/", &["ROUTEID=.nodeX"]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn redirect_and_drain() {
    let s = setup(
        3,
        &[("stickysession", "ROUTEID")],
        |i| {
            if i == 0 {
                vec![("redirect", "node3")]
            } else {
                Vec::new()
            }
        },
        None,
    )
    .await;
    let node1 = s.store.snapshot().members()[0].clone();
    node1.state().insert_flags(StatusFlags::DISABLED);
    for _ in 0..3 {
        let r = send(&s.proxy, "/", &["ROUTEID=.node1"]).await;
        assert_eq!(backend(&r), "node3", "redirect for node1's sessions");
    }
    node1.state().remove_flags(StatusFlags::DISABLED);
    // Drain: node2 takes only its own sessions.
    let node2 = s.store.snapshot().members()[1].clone();
    node2.state().insert_flags(StatusFlags::DRAIN);
    for _ in 0..4 {
        assert_ne!(backend(&send(&s.proxy, "/", &[]).await), "node2");
    }
    assert_eq!(
        backend(&send(&s.proxy, "/", &["ROUTEID=.node2"]).await),
        "node2"
    );
}

#[tokio::test]
async fn the_route_cookie_is_set_on_change_only_with_its_options() {
    let cookie = RouteCookie::new()
        .path("/app")
        .max_age(Duration::from_secs(3600))
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax);
    let s = setup(2, &[("stickysession", "ROUTEID")], none, Some(cookie)).await;
    let first = send(&s.proxy, "/app", &[]).await;
    assert_eq!(
        set_cookie(&first),
        Some("ROUTEID=.node1; Path=/app; Max-Age=3600; Secure; HttpOnly; SameSite=Lax")
    );
    let held = send(&s.proxy, "/app", &["ROUTEID=.node1"]).await;
    assert_eq!(backend(&held), "node1");
    assert_eq!(set_cookie(&held), None, "the route held: no cookie");
}

/// A balancer whose `stickysession` is set is sticky even with no `StickyRoute` in front
/// (an axum app's fallback, a hand-built stack): it reads the session route itself, as
/// mod_proxy_balancer does. Only the route cookie needs the layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_balancer_without_the_layer_is_still_sticky() {
    let setup = setup(3, &[("stickysession", "ROUTEID|routeid")], none, None).await;
    let bare = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .service(Balancer::new(
            Arc::clone(&setup.store),
            MakeHttpMember::new(),
        ));
    let proxy: Proxy = BoxCloneSyncService::new(bare.map_err(BoxError::from).and_then(collect));
    let url = setup.backends[0].url();
    for _ in 0..4 {
        let r = send(&proxy, &format!("{url}/a"), &["ROUTEID=.node2"]).await;
        assert_eq!(backend(&r), "node2", "the cookie's route");
        let r = send(&proxy, &format!("{url}/a?routeid=.node3"), &[]).await;
        assert_eq!(backend(&r), "node3", "the URL parameter's route");
    }
    // Without a route: balanced (node1, which the sticky requests did not use, as
    // Apache's byrequests accounts sticky picks), and no cookie set (the layer's job).
    let r = send(&proxy, &format!("{url}/a"), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(backend(&r), "node1");
    assert!(set_cookie(&r).is_none());
}
