//! `lbmethod=p2c` and `lbmethod=p2c-ewma` over real loopback members: the slow member's
//! share, the status flags, drain, hot standbys and lbsets, and our members inside tower's
//! own p2c balancer through `load::MemberLoad`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::load::MemberLoad;
use proxy_balancer::{
    Balancer, BalancerParams, BalancerStore, BoxError, MemberParams, PickRequest, StatusFlags,
};
use proxy_balancer_test::{TestBackend, TestClient};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::{service_fn, Service, ServiceExt};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(30);
/// The slow member's delay; the others answer at once (loopback: well under 1 ms).
const SLOW: Duration = Duration::from_millis(20);

/// Four loopback members, the last one slowed by [`SLOW`].
async fn backends() -> Vec<TestBackend> {
    let mut backends = Vec::new();
    for i in 0..4 {
        backends.push(TestBackend::start(format!("b{i}")).await.expect("bind"));
    }
    backends[3].set_delay(SLOW);
    backends
}

fn store_of(method: &str, urls: impl IntoIterator<Item = String>) -> Arc<BalancerStore> {
    let mut params = BalancerParams::new("p2c");
    params.set("lbmethod", method).expect("a known method");
    let members = urls
        .into_iter()
        .map(|url| MemberParams::new(&url).expect("a loopback url"));
    Arc::new(
        BalancerStore::new(params, members, tokio::time::Instant::now().into_std())
            .expect("distinct members"),
    )
}

/// `total` GETs through `balancer` from `concurrency` tasks.
async fn load(balancer: &Balancer<MakeHttpMember<Full<Bytes>>>, concurrency: usize, total: usize) {
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let balancer = balancer.clone();
            tokio::spawn(async move {
                for _ in 0..total / concurrency {
                    let request = Request::get("/")
                        .body(Full::new(Bytes::new()))
                        .expect("valid");
                    let response = balancer.clone().oneshot(request).await.expect("answered");
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.expect("a body");
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(BOUND, task)
            .await
            .expect("bounded")
            .expect("no panic");
    }
}

fn slow_share(backends: &[TestBackend]) -> f64 {
    let total: u64 = backends.iter().map(TestBackend::hits).sum();
    backends[3].hits() as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_sends_the_slow_member_a_small_share() {
    let backends = backends().await;
    let store = store_of("p2c-ewma", backends.iter().map(TestBackend::url));
    let balancer = Balancer::new(Arc::clone(&store), MakeHttpMember::new());
    load(&balancer, 8, 800).await;
    let share = slow_share(&backends);
    // Round robin would send it 25 %.
    assert!(share < 0.08, "slow member's share {share:.3}");
    let snapshot = store.snapshot();
    let now = tokio::time::Instant::now().into_std();
    let slow = snapshot.members()[3]
        .state()
        .rtt_estimate(now)
        .expect("sampled");
    // (No comparison with a fast member's estimate: peak-EWMA keeps a fast member's worst
    // answer, and a scheduling stall on a loaded machine can exceed the slow member's.)
    assert!(slow > SLOW / 4, "{slow:?}, decayed at most a little");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_spreads_by_in_flight() {
    let backends = backends().await;
    backends[3].set_delay(Duration::ZERO);
    // Member 0 holds its answers: its requests stay in flight, so p2c leaves it alone.
    backends[0].hold_responses();
    let store = store_of("p2c", backends.iter().map(TestBackend::url));
    let balancer = Balancer::new(Arc::clone(&store), MakeHttpMember::new());
    // Requests one at a time until member 0 holds one (each other answers at once).
    let mut held = None;
    for _ in 0..200 {
        let balancer = balancer.clone();
        let task = tokio::spawn(async move {
            let request = Request::get("/")
                .body(Full::new(Bytes::new()))
                .expect("valid");
            let response = balancer.oneshot(request).await.expect("answered");
            response.into_body().collect().await.expect("a body");
        });
        let deadline = tokio::time::Instant::now() + BOUND;
        while !task.is_finished()
            && backends[0].held_responses() == 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if backends[0].held_responses() == 1 {
            held = Some(task);
            break;
        }
    }
    let held = held.expect("member 0 is drawn within 200 picks");
    let before = backends[0].hits();
    // One at a time: the others have nothing in flight when drawn against member 0.
    load(&balancer, 1, 200).await;
    assert_eq!(
        backends[0].hits(),
        before,
        "a member with a request in flight loses"
    );
    backends[0].release_responses();
    tokio::time::timeout(BOUND, held)
        .await
        .expect("bounded")
        .expect("no panic");
}

/// Status flags, drain, hot standbys, lbsets and members already tried apply to both.
#[test]
fn flags_drain_standbys_and_lbsets_apply() {
    for method in ["p2c", "p2c-ewma"] {
        let mut params = BalancerParams::new("flags");
        params.set("lbmethod", method).expect("known");
        let member = |i: usize, status: &str, lbset: &str| {
            let mut m = MemberParams::new(&format!("http://m{i}")).expect("valid");
            if !status.is_empty() {
                m.set("status", status).expect("valid");
            }
            m.set("lbset", lbset).expect("valid");
            m
        };
        let members = [
            member(0, "+D", "0"),
            member(1, "+N", "0"),
            member(2, "+H", "0"),
            member(3, "", "0"),
            member(4, "", "0"),
            member(5, "", "1"),
        ];
        let now = tokio::time::Instant::now().into_std();
        let store = BalancerStore::new(params, members, now).expect("valid");
        let counts = |request: &PickRequest<'_>| {
            let mut counts = [0u32; 6];
            for _ in 0..2_000 {
                let picked = store.pick(request, now).expect("a member");
                counts[picked.position()] += 1;
            }
            counts
        };
        let c = counts(&PickRequest::new());
        assert_eq!(c[..3], [0, 0, 0], "{method}: {c:?}");
        assert_eq!(c[5], 0, "{method}: lbset 1 waits: {c:?}");
        assert!(c[3] > 800 && c[4] > 800, "{method}: {c:?}");
        let tried = [store.snapshot().members()[3].id()];
        let c = counts(&PickRequest::new().with_tried(&tried));
        assert_eq!(c, [0, 0, 0, 0, 2_000, 0], "{method}: tried");
        let snapshot = store.snapshot();
        for i in [3, 4] {
            snapshot.members()[i]
                .state()
                .insert_flags(StatusFlags::DISABLED);
        }
        let c = counts(&PickRequest::new());
        assert_eq!(c, [0, 0, 2_000, 0, 0, 0], "{method}: the standby");
        snapshot.members()[2]
            .state()
            .insert_flags(StatusFlags::DISABLED);
        let c = counts(&PickRequest::new());
        assert_eq!(c, [0, 0, 0, 0, 0, 2_000], "{method}: the next lbset");
    }
}

/// tower's own p2c balancer over our members through `MemberLoad`: the fast members win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_balance_over_member_load_prefers_fast_members() {
    let backends = backends().await;
    let store = store_of("p2c-ewma", backends.iter().map(TestBackend::url));
    let snapshot = store.snapshot();
    let client = TestClient::new().with_timeout(BOUND);
    let services: Vec<_> = snapshot
        .members()
        .iter()
        .map(|member| {
            let (client, url) = (client.clone(), member.url().to_owned());
            let service = service_fn(move |()| {
                let (client, url) = (client.clone(), url.clone());
                async move { client.get(&url).await }
            });
            MemberLoad::new(service, member.clone())
        })
        .collect();
    let mut balance = Balance::new(ServiceList::new(services));
    for _ in 0..300 {
        let ready = tokio::time::timeout(BOUND, ServiceExt::<()>::ready(&mut balance))
            .await
            .expect("bounded");
        let response = ready
            .expect("ready")
            .call(())
            .await
            .map_err(|e: BoxError| e.to_string())
            .expect("answered");
        assert_eq!(response.status, 200);
    }
    let share = slow_share(&backends);
    let hits: Vec<_> = backends.iter().map(TestBackend::hits).collect();
    assert!(share < 0.05, "slow member's share {share:.3}: {hits:?}");
    assert!(
        hits.iter().all(|&h| h > 0),
        "every member is tried: {hits:?}"
    );
    let now = tokio::time::Instant::now().into_std();
    assert!(snapshot.members()[3].state().busy() == 0, "released");
    assert!(
        snapshot.members()[0].state().rtt_estimate(now).is_some(),
        "recorded"
    );
}
