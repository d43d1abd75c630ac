//! Discovery over real loopback backends: a member set that grows and shrinks moves the
//! traffic, a kept member keeps its state, a removed member's requests in flight finish,
//! sticky requests still reach a draining member, health probes follow added members, and
//! a tower `Discover` of in-process services feeds a `Balancer`.
//!
//! Every wait is bounded ([`BOUND`]); the sources are channels the tests feed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use proxy_balancer::balancer::ReplayBody;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::discover::{DiscoverError, MemberSetSync, SyncHandle};
use proxy_balancer::health_probe::{HealthProbe, ProbeDefinitions};
use proxy_balancer::sticky_route::StickyRouteLayer;
use proxy_balancer::{
    Balancer, BalancerParams, BalancerStore, BoxError, ErrorResponseLayer, MemberParams,
    StatusFlags,
};
use proxy_balancer_test::TestBackend;
use tokio::sync::mpsc;
use tower::discover::Change;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(5);

type Proxy = BoxCloneSyncService<Request<Full<Bytes>>, Response<Bytes>, BoxError>;

type SetSender = mpsc::UnboundedSender<Result<Vec<MemberParams>, std::io::Error>>;

async fn wait_for(what: &str, cond: impl FnMut() -> bool) -> Duration {
    proxy_balancer_test::wait_for(what, BOUND, POLL, cond).await
}

async fn backends(names: &[&str]) -> Vec<TestBackend> {
    let mut out = Vec::new();
    for name in names {
        out.push(TestBackend::start(*name).await.expect("bind 127.0.0.1:0"));
    }
    out
}

/// A member for `backend`, with Apache-style parameters.
fn member(backend: &TestBackend, params: &[(&str, &str)]) -> MemberParams {
    let mut m = MemberParams::new(&backend.url()).expect("a loopback url");
    for (k, v) in params {
        m.set(k, v).expect("valid member parameter");
    }
    m
}

/// A store with these balancer parameters and configured members, the proxy over it
/// (sticky layer, balancer, pooled client), and a sync following a channel of member sets.
fn setup(
    balancer: &[(&str, &str)],
    configured: Vec<MemberParams>,
    drain: Duration,
) -> (Arc<BalancerStore>, Proxy, SetSender, SyncHandle) {
    let mut params = BalancerParams::new("discovered");
    for (k, v) in balancer {
        params.set(k, v).expect("valid balancer parameter");
    }
    let now = tokio::time::Instant::now().into_std();
    let store = Arc::new(BalancerStore::new(params, configured, now).expect("valid"));
    let service = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .layer(StickyRouteLayer::new(Arc::clone(&store)))
        .service(Balancer::new(Arc::clone(&store), MakeHttpMember::new()));
    let proxy = BoxCloneSyncService::new(service.map_err(BoxError::from).and_then(collect));
    let (tx, rx) = mpsc::unbounded_channel();
    let sets =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|set| (set, rx)) },
        );
    let (handle, _task) = MemberSetSync::new(Arc::clone(&store))
        .with_drain(drain)
        .follow(sets)
        .spawn();
    (store, proxy, tx, handle)
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

async fn send(proxy: &Proxy, cookie: Option<&str>) -> Response<Bytes> {
    let mut request = Request::get("/")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    if let Some(c) = cookie {
        request
            .headers_mut()
            .insert(header::COOKIE, c.parse().expect("valid"));
    }
    tokio::time::timeout(BOUND, proxy.clone().oneshot(request))
        .await
        .expect("bounded")
        .expect("a response")
}

fn backend(response: &Response<Bytes>) -> String {
    response
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// Which backend answered each of `n` requests, counted.
async fn spread(proxy: &Proxy, n: usize) -> HashMap<String, usize> {
    let mut hits = HashMap::new();
    for _ in 0..n {
        let r = send(proxy, None).await;
        assert_eq!(r.status(), StatusCode::OK);
        *hits.entry(backend(&r)).or_insert(0) += 1;
    }
    hits
}

fn urls(store: &BalancerStore) -> Vec<String> {
    store
        .snapshot()
        .members()
        .iter()
        .map(|m| m.url().to_owned())
        .collect()
}

/// Waits until the store's members are exactly these backends (by URL, in this order).
async fn wait_members(store: &BalancerStore, expected: &[&TestBackend]) {
    let want: Vec<String> = expected.iter().map(|b| b.url()).collect();
    wait_for("the member set", || urls(store) == want).await;
}

#[tokio::test]
async fn a_set_that_grows_and_shrinks_moves_traffic() {
    let b = backends(&["fixed", "a", "b"]).await;
    let (fixed, a, bb) = (&b[0], &b[1], &b[2]);
    let (store, proxy, tx, handle) = setup(&[], vec![member(fixed, &[])], Duration::ZERO);

    tx.send(Ok(vec![member(a, &[])])).expect("sync running");
    wait_members(&store, &[fixed, a]).await;
    let hits = spread(&proxy, 10).await;
    assert_eq!((hits.get("fixed"), hits.get("a")), (Some(&5), Some(&5)));

    // Grows: b takes its share.
    tx.send(Ok(vec![member(a, &[]), member(bb, &[])]))
        .expect("sync running");
    wait_members(&store, &[fixed, a, bb]).await;
    let hits = spread(&proxy, 30).await;
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(hits.values().all(|&n| n == 10), "{hits:?}");

    // Shrinks: a takes nothing more; the configured member is never touched.
    tx.send(Ok(vec![member(bb, &[])])).expect("sync running");
    wait_members(&store, &[fixed, bb]).await;
    let a_before = a.hits();
    let hits = spread(&proxy, 10).await;
    assert_eq!(hits.get("a"), None, "{hits:?}");
    assert_eq!(a.hits(), a_before);

    // A source error keeps the last good set; an empty set removes only discovered ones.
    tx.send(Err(std::io::Error::other("resolver timed out")))
        .expect("sync running");
    wait_for("the error", || handle.errors() == 1).await;
    assert!(handle
        .last_error()
        .is_some_and(|e| matches!(*e, DiscoverError::Source(_))));
    assert_eq!(urls(&store), [fixed.url(), bb.url()]);
    tx.send(Ok(Vec::new())).expect("sync running");
    wait_members(&store, &[fixed]).await;
    assert_eq!(handle.members(), 0);

    // The source ends: the members stay as they are.
    tx.send(Ok(vec![member(a, &[])])).expect("sync running");
    drop(tx);
    wait_for("the end of the source", || handle.source_ended()).await;
    assert_eq!(urls(&store), [fixed.url(), a.url()]);
}

#[tokio::test]
async fn a_kept_member_keeps_its_state_across_set_changes() {
    let b = backends(&["a", "b", "c"]).await;
    let (store, proxy, tx, _handle) = setup(&[], Vec::new(), Duration::ZERO);
    tx.send(Ok(vec![member(&b[0], &[]), member(&b[1], &[])]))
        .expect("sync running");
    wait_members(&store, &[&b[0], &b[1]]).await;
    spread(&proxy, 4).await;
    let a = store.snapshot().members()[0].clone();
    assert_eq!(a.state().elected(), 2);
    // An operator disables a (the balancer-manager's w_status_D=1).
    a.state().insert_flags(StatusFlags::DISABLED);

    // a's load factor changes, c comes, b goes: a keeps its state, its flag, its counters.
    tx.send(Ok(vec![
        member(&b[0], &[("loadfactor", "3")]),
        member(&b[2], &[]),
    ]))
    .expect("sync running");
    wait_members(&store, &[&b[0], &b[2]]).await;
    let snapshot = store.snapshot();
    let a_now = &snapshot.members()[0];
    assert_eq!(a_now.id(), a.id());
    assert!(std::ptr::eq(a_now.state(), a.state()), "the same state");
    assert_eq!(a_now.lbf(), 300);
    assert_eq!(a_now.state().elected(), 2);
    assert!(a_now.flags().contains(StatusFlags::DISABLED));
    let hits = spread(&proxy, 4).await;
    assert_eq!(hits.get("c"), Some(&4), "a is still disabled: {hits:?}");
}

#[tokio::test]
async fn in_flight_requests_of_a_removed_member_finish() {
    let b = backends(&["slow", "other"]).await;
    let (slow, other) = (&b[0], &b[1]);
    slow.set_delay(Duration::from_millis(600));
    let (store, proxy, tx, _handle) = setup(&[], Vec::new(), Duration::ZERO);
    tx.send(Ok(vec![member(slow, &[])])).expect("sync running");
    wait_members(&store, &[slow]).await;

    let in_flight = tokio::spawn({
        let proxy = proxy.clone();
        async move { send(&proxy, None).await }
    });
    let slow_member = store.snapshot().members()[0].clone();
    wait_for("the request in flight", || slow_member.state().busy() == 1).await;

    // Removed at once (no drain) while its request is in flight.
    tx.send(Ok(vec![member(other, &[])])).expect("sync running");
    wait_members(&store, &[other]).await;
    assert_eq!(slow_member.state().busy(), 1, "still in flight");
    let hits = spread(&proxy, 3).await;
    assert_eq!(hits.get("other"), Some(&3));

    let response = tokio::time::timeout(BOUND, in_flight)
        .await
        .expect("bounded")
        .expect("no panic");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(backend(&response), "slow");
    assert_eq!(slow_member.state().busy(), 0);
}

#[tokio::test]
async fn sticky_requests_reach_a_draining_member_and_a_return_keeps_its_state() {
    let b = backends(&["a", "b"]).await;
    let (a, bb) = (&b[0], &b[1]);
    let drain = Duration::from_millis(800);
    let (store, proxy, tx, handle) = setup(&[("stickysession", "ROUTEID")], Vec::new(), drain);
    let set = || vec![member(a, &[("route", "a")]), member(bb, &[("route", "b")])];
    tx.send(Ok(set())).expect("sync running");
    wait_members(&store, &[a, bb]).await;
    spread(&proxy, 4).await;
    let a_member = store.snapshot().members()[0].clone();

    // a vanishes: it drains. New requests go to b, a's sessions still reach a.
    tx.send(Ok(vec![member(bb, &[("route", "b")])]))
        .expect("sync running");
    wait_for("a draining", || {
        a_member.flags().contains(StatusFlags::DRAIN)
    })
    .await;
    assert_eq!(urls(&store), [a.url(), bb.url()], "still a member");
    assert_eq!(handle.draining(), 1);
    let hits = spread(&proxy, 4).await;
    assert_eq!(hits.get("b"), Some(&4), "{hits:?}");
    let r = send(&proxy, Some("ROUTEID=.a")).await;
    assert_eq!(
        backend(&r),
        "a",
        "a sticky request reaches the draining member"
    );

    // a comes back within its drain: in service again, the same state.
    let elected = a_member.state().elected();
    tx.send(Ok(set())).expect("sync running");
    wait_for("a back", || !a_member.flags().contains(StatusFlags::DRAIN)).await;
    let snapshot = store.snapshot();
    assert!(std::ptr::eq(
        snapshot.members()[0].state(),
        a_member.state()
    ));
    assert_eq!(a_member.state().elected(), elected);
    let hits = spread(&proxy, 4).await;
    assert!(
        hits.contains_key("a"),
        "a takes new requests again: {hits:?}"
    );

    // a vanishes again and its drain runs out: removed, its sessions go to b.
    tx.send(Ok(vec![member(bb, &[("route", "b")])]))
        .expect("sync running");
    let took = wait_for("a removed after its drain", || urls(&store) == [bb.url()]).await;
    assert!(
        took >= drain / 2,
        "removed after {took:?}, before its drain"
    );
    let r = send(&proxy, Some("ROUTEID=.a")).await;
    assert_eq!(backend(&r), "b");
    assert_eq!(handle.draining(), 0);
}

#[tokio::test]
async fn health_probes_pick_up_an_added_member() {
    let b = backends(&["a", "b"]).await;
    let (store, _proxy, tx, _handle) = setup(&[], Vec::new(), Duration::ZERO);
    let _probe = HealthProbe::spawn_with(Arc::clone(&store), Arc::new(ProbeDefinitions::new()))
        .expect("no expressions");
    let probed = |backend: &TestBackend| {
        member(
            backend,
            &[
                ("hcmethod", "GET"),
                ("hcuri", "/health"),
                ("hcinterval", "200ms"),
            ],
        )
    };
    tx.send(Ok(vec![probed(&b[0])])).expect("sync running");
    wait_members(&store, &[&b[0]]).await;
    wait_for("a probed", || b[0].health_hits() > 0).await;

    // b comes, failing its checks: the probe finds it and sets +C.
    b[1].set_health_status(503);
    tx.send(Ok(vec![probed(&b[0]), probed(&b[1])]))
        .expect("sync running");
    wait_members(&store, &[&b[0], &b[1]]).await;
    let b_member = store.snapshot().members()[1].clone();
    wait_for("b failed its check", || {
        b_member.flags().contains(StatusFlags::HC_FAILED)
    })
    .await;
    assert!(b[1].health_hits() > 0);

    // a goes: the probe stops probing it.
    tx.send(Ok(vec![probed(&b[1])])).expect("sync running");
    wait_members(&store, &[&b[1]]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a_hits = b[0].health_hits();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        b[0].health_hits(),
        a_hits,
        "a removed member is probed no more"
    );
}

type TestService = tower::util::BoxCloneSyncService<
    Request<ReplayBody<Empty<Bytes>>>,
    Response<Full<Bytes>>,
    Infallible,
>;

fn named(name: &'static str) -> TestService {
    TestService::new(service_fn(move |_req| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
    }))
}

#[tokio::test]
async fn a_tower_discover_feeds_a_balancer() {
    let now = tokio::time::Instant::now().into_std();
    let store =
        Arc::new(BalancerStore::new(BalancerParams::new("tower"), [], now).expect("no members"));
    let (tx, rx) =
        mpsc::unbounded_channel::<Result<Change<&'static str, TestService>, std::io::Error>>();
    let changes = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (change, rx))
    });
    let follow = MemberSetSync::new(Arc::clone(&store))
        .with_drain(Duration::ZERO)
        .follow_discover(changes, |key: &&'static str| {
            MemberParams::new(&format!("http://{key}.internal"))
        });
    let balancer = Balancer::new(Arc::clone(&store), follow.make_member());
    let (handle, _task) = follow.spawn();
    let ask = |n: usize| {
        let balancer = balancer.clone();
        async move {
            let mut answers = Vec::new();
            for _ in 0..n {
                let response = tokio::time::timeout(
                    BOUND,
                    balancer
                        .clone()
                        .oneshot(Request::new(Empty::<Bytes>::new())),
                )
                .await
                .expect("bounded")
                .expect("a response");
                let body = response.into_body().collect().await.expect("a body");
                answers.push(String::from_utf8(body.to_bytes().to_vec()).expect("utf-8"));
            }
            answers.sort();
            answers
        }
    };
    let members = |n: usize| {
        let store = Arc::clone(&store);
        move || store.snapshot().members().len() == n
    };

    tx.send(Ok(Change::Insert("one", named("one"))))
        .expect("running");
    tx.send(Ok(Change::Insert("two", named("two"))))
        .expect("running");
    wait_for("two members", members(2)).await;
    assert_eq!(handle.applied(), 1, "changes ready together: one snapshot");
    assert_eq!(ask(4).await, ["one", "one", "two", "two"]);

    // A key inserted again swaps its service; its member (and state) stays.
    let two = store.snapshot().members()[1].clone();
    tx.send(Ok(Change::Insert("two", named("two-b"))))
        .expect("running");
    tx.send(Ok(Change::Remove("one"))).expect("running");
    wait_for("one removed", members(1)).await;
    assert_eq!(ask(2).await, ["two-b", "two-b"]);
    assert!(std::ptr::eq(
        store.snapshot().members()[0].state(),
        two.state()
    ));

    // A key the closure refuses, and a source error: reported, the set kept.
    tx.send(Ok(Change::Insert("bad host", named("bad"))))
        .expect("running");
    wait_for("the refused key", || handle.errors() == 1).await;
    assert!(handle
        .last_error()
        .is_some_and(|e| matches!(*e, DiscoverError::Params { .. })));
    tx.send(Err(std::io::Error::other("registry unreachable")))
        .expect("running");
    wait_for("the source error", || handle.errors() == 2).await;
    assert_eq!(ask(2).await, ["two-b", "two-b"]);
    drop(tx);
    wait_for("the end", || handle.source_ended()).await;
    assert_eq!(store.snapshot().members().len(), 1);
}

#[tokio::test]
async fn a_service_list_is_served_in_order() {
    let now = tokio::time::Instant::now().into_std();
    let store =
        Arc::new(BalancerStore::new(BalancerParams::new("list"), [], now).expect("no members"));
    let list = tower::discover::ServiceList::new([named("x"), named("y"), named("z")]);
    let follow = MemberSetSync::new(Arc::clone(&store)).follow_discover(list, |i: &usize| {
        MemberParams::new(&format!("http://svc{i}"))
    });
    let make = follow.make_member();
    let handle = follow.handle();
    tokio::time::timeout(BOUND, follow)
        .await
        .expect("ends with the list");
    assert!(handle.source_ended());
    assert_eq!(make.len(), 3);
    assert_eq!(urls(&store), ["http://svc0", "http://svc1", "http://svc2"]);
    let balancer = Balancer::new(Arc::clone(&store), make);
    let mut answers = String::new();
    for _ in 0..6 {
        let response = balancer
            .clone()
            .oneshot(Request::new(Empty::<Bytes>::new()))
            .await
            .expect("a response");
        let body = response.into_body().collect().await.expect("a body");
        answers.push_str(std::str::from_utf8(&body.to_bytes()).expect("utf-8"));
    }
    assert_eq!(answers, "xyzxyz");
}

#[tokio::test]
async fn a_member_without_a_discovered_service_fails_over() {
    let now = tokio::time::Instant::now().into_std();
    let configured = MemberParams::new("http://configured.internal").expect("valid");
    let store = Arc::new(
        BalancerStore::new(BalancerParams::new("mixed"), [configured], now).expect("valid"),
    );
    let list = tower::discover::ServiceList::new([named("found")]);
    let follow = MemberSetSync::new(Arc::clone(&store)).follow_discover(list, |i: &usize| {
        MemberParams::new(&format!("http://svc{i}"))
    });
    let balancer = Balancer::new(Arc::clone(&store), follow.make_member());
    tokio::time::timeout(BOUND, follow)
        .await
        .expect("ends with the list");
    for _ in 0..3 {
        let response = balancer
            .clone()
            .oneshot(Request::new(Empty::<Bytes>::new()))
            .await
            .expect("a response");
        let body = response.into_body().collect().await.expect("a body");
        assert_eq!(body.to_bytes(), "found");
    }
    let snapshot = store.snapshot();
    assert!(snapshot.members()[0]
        .flags()
        .contains(StatusFlags::IN_ERROR));
}
