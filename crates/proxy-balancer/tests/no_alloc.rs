//! The hot paths allocate nothing: finding (or not finding) a session route, a byrequests
//! pick of the core, a hash pick, and matching and forwarding a plain request path. Counted with an instrumented global allocator, in a test binary of its
//! own so that nothing else runs while it counts.

use std::alloc::System;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Uri};
use http_body_util::Full;
use proxy_balancer::proxy_pass::{ProxyPass, RequestPath};
use proxy_balancer::server::{Admit, ClientLimits};
use proxy_balancer::sticky_route::RouteExtractor;
use proxy_balancer::{BalancerParams, BalancerStore, MemberParams, PickRequest};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The tests of this binary run one at a time: the allocator is global, so one test's
/// setup would count in another's rounds.
static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

#[test]
fn route_extraction_and_picks_do_not_allocate() {
    let _serial = SERIAL.lock();
    let mut params = BalancerParams::new("alloc");
    params
        .set("stickysession", "JSESSIONID|jsessionid")
        .expect("valid");
    let extractor = RouteExtractor::from_params(&params).expect("sticky");
    let mut with_route = HeaderMap::new();
    with_route.insert(
        header::COOKIE,
        HeaderValue::from_static("a=1; b=2; JSESSIONID=6736BCF34.node1; c=3; d=4"),
    );
    let mut without_route = HeaderMap::new();
    without_route.insert(
        header::COOKIE,
        HeaderValue::from_static("a=1; b=2; c=3; d=4; e=5"),
    );
    let uri: Uri = "/app/page?x=1&y=2".parse().expect("valid");
    let uri_with_route: Uri = "/app;jsessionid=A.node2/page".parse().expect("valid");
    // The site's path steps for a plain path: ProxyPass "/" "balancer://app/".
    let pass = ProxyPass::new("/", "balancer://app/").expect("valid");
    let plain = "/app/static/logo-2.png";

    let now = tokio::time::Instant::now().into_std();
    let members = (0..16).map(|i| MemberParams::new(&format!("http://m{i}")).expect("valid"));
    let store = Arc::new(BalancerStore::new(params.clone(), members, now).expect("valid"));
    // Warm up: the byrequests cycle is built after a streak of plain picks.
    for _ in 0..64 {
        drop(store.pick(&PickRequest::new(), now).expect("usable"));
    }

    // The allocator is global: the test harness's own threads may allocate while we count.
    // A per-call allocation would show in every round (100 calls each); noise does not.
    let mut counts = Vec::new();
    for _ in 0..5 {
        let region = Region::new(GLOBAL);
        for _ in 0..100 {
            assert!(extractor.extract(&uri, &without_route).is_none());
            assert_eq!(
                extractor.extract(&uri, &with_route).map(|f| f.route),
                Some("node1")
            );
            assert_eq!(
                extractor
                    .extract(&uri_with_route, &with_route)
                    .map(|f| f.route),
                Some("node2")
            );
            drop(store.pick(&PickRequest::new(), now).expect("usable"));
            let path = RequestPath::parse(plain).expect("a plain path");
            assert!(pass.matches_request(&path));
            assert_eq!(pass.forward_path(&path).as_deref(), Some(plain));
        }
        counts.push(region.change().allocations);
    }
    assert_eq!(
        counts.iter().min(),
        Some(&0),
        "allocations per round: {counts:?}"
    );
    assert!(
        counts.iter().all(|&c| c < 100),
        "allocations per round: {counts:?}"
    );
}

/// `lbmethod=hash` picks (Maglev and ketama): the fast path at the key's slot, the walk past
/// a disabled member, and the walk with members already tried.
#[test]
fn hash_picks_do_not_allocate() {
    let _serial = SERIAL.lock();
    let now = tokio::time::Instant::now().into_std();
    for ring in ["maglev", "ketama"] {
        let mut params = BalancerParams::new("hash");
        params.set("lbmethod", "hash").expect("valid");
        params.set("hashring", ring).expect("valid");
        let members = (0..16).map(|i| MemberParams::new(&format!("http://m{i}")).expect("valid"));
        let store = BalancerStore::new(params, members, now).expect("valid");
        let snapshot = store.snapshot();
        snapshot.members()[3]
            .state()
            .insert_flags(proxy_balancer::StatusFlags::DISABLED);
        let tried = [snapshot.members()[5].id(), snapshot.members()[9].id()];
        let keys: Vec<[u8; 8]> = (0u64..64).map(u64::to_le_bytes).collect();
        let mut counts = Vec::new();
        for _ in 0..5 {
            let region = Region::new(GLOBAL);
            for key in &keys {
                drop(
                    store
                        .pick(&PickRequest::new().with_key(key), now)
                        .expect("usable"),
                );
                let request = PickRequest::new().with_key(key).with_tried(&tried);
                drop(snapshot.pick(&request, now).expect("usable"));
            }
            counts.push(region.change().allocations);
        }
        assert_eq!(
            counts.iter().min(),
            Some(&0),
            "{ring}: allocations per round: {counts:?}"
        );
        assert!(
            counts.iter().all(|&c| c < 64),
            "{ring}: allocations per round: {counts:?}"
        );
    }
}

/// The server's admission checks (Host, Transfer-Encoding, the `LimitRequest*` limits) on
/// ordinary requests.
#[test]
fn admission_checks_do_not_allocate() {
    let _serial = SERIAL.lock();
    let admit = Admit::new((), &ClientLimits::new().limit_request_body(1 << 20));
    let get = Request::get("/app/page?x=1&y=2")
        .header(header::HOST, "www.example.com:8080")
        .header(header::USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64)")
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .header(header::COOKIE, "a=1; b=2; JSESSIONID=6736BCF34.node1")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let post = Request::post("/upload")
        .header(header::HOST, "[2001:db8::1]")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Full::new(Bytes::from_static(&[b'x'; 4096])))
        .expect("valid");
    let http10 = Request::get("/")
        .version(http::Version::HTTP_10)
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let h2 = Request::get("https://www.example.com/x")
        .version(http::Version::HTTP_2)
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let mut counts = Vec::new();
    for _ in 0..5 {
        let region = Region::new(GLOBAL);
        for _ in 0..100 {
            assert_eq!(admit.check(&get), Ok(()));
            assert_eq!(admit.check(&post), Ok(()));
            assert_eq!(admit.check(&http10), Ok(()));
            assert_eq!(admit.check(&h2), Ok(()));
        }
        counts.push(region.change().allocations);
    }
    assert_eq!(
        counts.iter().min(),
        Some(&0),
        "allocations per round: {counts:?}"
    );
    assert!(
        counts.iter().all(|&c| c < 100),
        "allocations per round: {counts:?}"
    );
}

/// Beyond Apache: picks while a member ramps (slow start, so the scan weighs it), while an
/// ejected member waits for its end, in panic, and the judging of outcomes for ejection.
#[test]
fn health_extensions_do_not_allocate() {
    use proxy_balancer::StatusFlags;
    let _serial = SERIAL.lock();
    let mut params = BalancerParams::new("alloc");
    for (k, v) in [
        ("ejectconsecutive", "3"),
        ("ejectsuccessrate", "50"),
        ("ejectwindow", "1"),
        ("panic", "50"),
    ] {
        params.set(k, v).expect("valid");
    }
    let outlier = params.outlier;
    let now = tokio::time::Instant::now().into_std();
    let members = (0..16).map(|i| {
        let mut m = MemberParams::new(&format!("http://m{i}")).expect("valid");
        m.set("slowstart", "60").expect("valid");
        m
    });
    let store = Arc::new(BalancerStore::new(params, members, now).expect("valid"));
    let snapshot = store.snapshot();
    // m0 ramps, m1 is ejected (for 30 s), m2 to m9 fail their health check: 7 of 15
    // eligible usable, below 50 %.
    snapshot.members()[0]
        .state()
        .insert_flags(StatusFlags::DISABLED);
    snapshot.members()[0]
        .state()
        .remove_flags(StatusFlags::DISABLED);
    for _ in 0..3 {
        let _ = snapshot.members()[1]
            .state()
            .note_outcome(true, &outlier, now);
    }
    assert!(snapshot.members()[1].flags().contains(StatusFlags::EJECTED));
    for m in &snapshot.members()[2..10] {
        m.state().insert_flags(StatusFlags::HC_FAILED);
    }
    let at = now + std::time::Duration::from_secs(5);
    assert!(snapshot.in_panic(at));
    for _ in 0..64 {
        drop(store.pick(&PickRequest::new(), at).expect("usable"));
    }
    let mut counts = Vec::new();
    for _ in 0..5 {
        let region = Region::new(GLOBAL);
        for i in 0..100u64 {
            drop(store.pick(&PickRequest::new(), at).expect("usable"));
            let _ = snapshot.members()[11]
                .state()
                .note_outcome(i % 7 == 0, &outlier, at);
            assert!(snapshot.in_panic(at));
        }
        counts.push(region.change().allocations);
    }
    assert!(store.panics() > 0);
    assert_eq!(
        counts.iter().min(),
        Some(&0),
        "allocations per round: {counts:?}"
    );
    assert!(
        counts.iter().all(|&c| c < 100),
        "allocations per round: {counts:?}"
    );
}

/// `lbmethod=p2c` and `p2c-ewma` picks (the random draw, the admission checks, the peak-EWMA
/// reads) and the round-trip update, with requests in flight and members out of service.
#[test]
fn p2c_picks_do_not_allocate() {
    let _serial = SERIAL.lock();
    let now = tokio::time::Instant::now().into_std();
    for method in ["p2c", "p2c-ewma"] {
        let mut params = BalancerParams::new("alloc");
        params.set("lbmethod", method).expect("valid");
        let members = (0..16).map(|i| MemberParams::new(&format!("http://m{i}")).expect("valid"));
        let store = BalancerStore::new(params, members, now).expect("valid");
        let snapshot = store.snapshot();
        for (i, m) in snapshot.members().iter().enumerate() {
            m.state()
                .observe_rtt(std::time::Duration::from_micros(100 * i as u64 + 1), now);
        }
        // A quarter out of service: some draws are rejected.
        for m in snapshot.members().iter().step_by(4) {
            m.state()
                .insert_flags(proxy_balancer::StatusFlags::DISABLED);
        }
        let held: Vec<_> = (0..8)
            .map(|_| store.pick(&PickRequest::new(), now).expect("usable"))
            .collect();
        let mut counts = Vec::new();
        for _ in 0..5 {
            let region = Region::new(GLOBAL);
            for _ in 0..100 {
                let picked = store.pick(&PickRequest::new(), now).expect("usable");
                picked
                    .member()
                    .state()
                    .observe_rtt(std::time::Duration::from_micros(300), now);
            }
            counts.push(region.change().allocations);
        }
        drop(held);
        assert_eq!(
            counts.iter().min(),
            Some(&0),
            "{method}: allocations per round: {counts:?}"
        );
        assert!(
            counts.iter().all(|&c| c < 100),
            "{method}: allocations per round: {counts:?}"
        );
    }
}
