//! Health probes that follow the store: a balancer-manager edit of a running probe's member
//! (`w_hi`, `w_hu`, `w_hm`) changes what is probed and when, a member added through the
//! manager is probed once it is given a method, and a removed member is probed no more.
//!
//! Everything real: loopback [`TestBackend`]s, the [`HealthProbe`] from
//! [`HealthProbe::spawn_with`], and the [`BalancerManager`] service answering the POST
//! forms Apache's page sends, with the nonce. On tokio's paused clock (see
//! `tests/health_probe.rs`): a probe takes no time there, so the schedule is exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use proxy_balancer::health_probe::expr::HcExpr;
use proxy_balancer::health_probe::{HealthProbe, ProbeDefinitions};
use proxy_balancer::{BalancerParams, BalancerStore, HcMethod, MemberParams};
use proxy_balancer_manager::{BalancerManager, PeerAddr};
use proxy_balancer_test::TestBackend;
use tokio::time::Instant;
use tower::ServiceExt;

/// Every wait in these tests is bounded by this (on the paused clock).
const BOUND: Duration = Duration::from_secs(120);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(5);

/// The supervisor notices a new snapshot on its next wake-up, at most this long after it.
const TICK: Duration = Duration::from_millis(100);

const MOUNT: &str = "/balancer-manager";

async fn backend(name: &str) -> TestBackend {
    TestBackend::start(name).await.expect("bind 127.0.0.1:0")
}

/// Polls `cond` until it holds; the time it took. Panics after [`BOUND`].
async fn wait_for(what: &str, cond: impl FnMut() -> bool) -> Duration {
    proxy_balancer_test::wait_for(what, BOUND, POLL, cond).await
}

fn encode(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

/// A member probed with `GET /ready` every 10 s; `growth=1` so the manager may add one.
fn setup(a: &TestBackend) -> (Arc<BalancerStore>, HealthProbe, BalancerManager) {
    let mut member = MemberParams::new(&a.url()).expect("a loopback url");
    for (k, v) in [
        ("hcmethod", "GET"),
        ("hcuri", "/ready"),
        ("hcinterval", "10"),
        ("connectiontimeout", "1"),
    ] {
        member.set(k, v).expect("valid");
    }
    let mut params = BalancerParams::new("hc");
    params.set("growth", "1").expect("valid");
    let store = Arc::new(
        BalancerStore::new(params, [member], Instant::now().into_std()).expect("one member"),
    );
    let defs = Arc::new(ProbeDefinitions::new().with_expr(
        "ok234",
        HcExpr::parse("%{REQUEST_STATUS} =~ /^[234]/").expect("valid"),
    ));
    let probe =
        HealthProbe::spawn_with(Arc::clone(&store), Arc::clone(&defs)).expect("known exprs");
    let manager = BalancerManager::builder(MOUNT)
        .balancer_with_health(Arc::clone(&store), Arc::new(probe.monitor()))
        .hc_expr_names(defs.expr_names())
        .build();
    (store, probe, manager)
}

/// POSTs `form` (with the balancer's nonce) to the manager's API, as the page's form does.
async fn post(manager: &BalancerManager, form: &str) -> (StatusCode, String) {
    let nonce = manager.nonce("hc").expect("managed");
    let body = format!("b=hc&{form}&nonce={nonce}");
    let mut request = Request::post(format!("{MOUNT}/api"))
        .header(header::HOST, "127.0.0.1:8080")
        .body(Full::new(Bytes::from(body)))
        .expect("valid");
    let peer: SocketAddr = "127.0.0.1:50000".parse().expect("an address");
    request.extensions_mut().insert(PeerAddr(peer));
    let local: SocketAddr = "127.0.0.1:8080".parse().expect("an address");
    request
        .extensions_mut()
        .insert(proxy_balancer_manager::LocalAddr(local));
    let response = manager.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .expect("full")
        .to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test(start_paused = true)]
async fn a_manager_edit_of_interval_and_uri_changes_the_running_probe() {
    let a = backend("a").await;
    let (store, probe, manager) = setup(&a);
    // The first probe comes within one interval (its jitter), on /ready.
    wait_for("the first probe", || a.hits() >= 1).await;
    assert_eq!(a.health_hits(), 0, "not /health yet");
    assert_eq!(a.last_request().expect("probed").path(), "/ready");
    // Two more at 10 s: the old schedule.
    let old = wait_for("two more probes on /ready", || a.hits() >= 3).await;
    assert!(old >= Duration::from_secs(20), "{old:?}");
    // Edit a second after the last probe ended.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (status, body) = post(
        &manager,
        &format!("w={}&w_hi=200&w_hu=%2Fhealth", encode(&a.url())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hc = store.snapshot().members()[0].params().hc.clone();
    assert_eq!(
        (hc.interval, hc.uri.as_str()),
        (Duration::from_millis(200), "/health")
    );
    let before = a.hits();

    // The new interval counts from the last probe, which ended a second ago: the next probe
    // is due at once, and starts when the edit is noticed (within one tick); then one every
    // 200 ms.
    let took = wait_for("five probes on /health", || a.health_hits() >= 5).await;
    assert!(
        took >= Duration::from_millis(4 * 200) && took <= TICK + Duration::from_millis(4 * 200),
        "{took:?}"
    );
    assert_eq!(
        a.hits() - before,
        a.health_hits(),
        "no probe on /ready after the edit"
    );
    assert_eq!(a.last_request().expect("probed").path(), "/health");
    let health = probe
        .member(store.snapshot().members()[0].id())
        .expect("probed");
    assert_eq!(health.last_passed(), Some(true));

    // hcmethod=NONE through the manager: no more probes.
    let (status, body) = post(&manager, &format!("w={}&w_hm=NONE", encode(&a.url()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(TICK).await;
    let stopped = a.hits();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(a.hits(), stopped, "no probe once hcmethod is NONE");
    assert_eq!(
        store.snapshot().members()[0].params().hc.method,
        HcMethod::None
    );
    probe.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_bad_edit_changes_nothing_and_the_probe_keeps_its_schedule() {
    let a = backend("a").await;
    let (store, probe, manager) = setup(&a);
    let before = store.snapshot().members()[0].params().hc.clone();
    for bad in ["w_hi=99&w_hu=%2Fhealth", "w_he=nope&w_hi=200", "w_hf=0"] {
        let (status, body) = post(&manager, &format!("w={}&{bad}", encode(&a.url()))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(store.snapshot().members()[0].params().hc, before, "{bad}");
    }
    // A known expr is taken.
    let (status, body) = post(&manager, &format!("w={}&w_he=ok234", encode(&a.url()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for("the first probe", || a.hits() >= 1).await;
    let took = wait_for("the next probe", || a.hits() >= 2).await;
    assert!(took <= Duration::from_secs(10) + TICK, "{took:?}");
    assert_eq!(a.health_hits(), 0);
    probe.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_member_added_through_the_manager_is_probed_and_a_removed_one_no_more() {
    let a = backend("a").await;
    let b = backend("b").await;
    let (store, probe, manager) = setup(&a);

    let (status, body) = post(&manager, &format!("b_wyes=1&b_nwrkr={}", encode(&b.url()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = store
        .snapshot()
        .member_by_url(&b.url())
        .expect("added")
        .id();
    // Added as Apache adds it: disabled, without a health check.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(b.hits(), 0);
    assert!(probe.member(id).is_none());

    // Given one on the page's member form: probed from then on.
    let (status, body) = post(
        &manager,
        &format!("w={}&w_hm=GET&w_hu=%2Fhealth&w_hi=300", encode(&b.url())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let took = wait_for("probes of the added member", || b.health_hits() >= 3).await;
    // The first within one interval (its jitter) after the edit is noticed, then 300 ms apart.
    assert!(took <= TICK + Duration::from_millis(3 * 300), "{took:?}");
    assert_eq!(probe.member(id).map(|h| h.probes), Some(b.health_hits()));

    // Removed from the store: probed no more, its counters dropped.
    store.remove_member(id).expect("present");
    tokio::time::sleep(TICK).await;
    let last = b.health_hits();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.health_hits(), last, "no probe after removal");
    assert!(probe.member(id).is_none());
    // The other member is still probed.
    wait_for("a still probed", || a.hits() >= 1).await;
    probe.shutdown().await;
}

#[tokio::test]
async fn spawn_with_refuses_an_expr_it_does_not_define() {
    let mut member = MemberParams::new("http://127.0.0.1:9").expect("valid");
    member.set("hcmethod", "GET").expect("valid");
    member.set("hcexpr", "nope").expect("a well-formed name");
    let store = Arc::new(
        BalancerStore::new(
            BalancerParams::new("hc"),
            [member],
            Instant::now().into_std(),
        )
        .expect("one member"),
    );
    let err = HealthProbe::spawn_with(store, Arc::new(ProbeDefinitions::new())).unwrap_err();
    assert_eq!(err.to_string(), "unknown health check condition expr: nope");
}
