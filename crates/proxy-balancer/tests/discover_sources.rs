//! Discovery sources as an application writes them from the docs: a `tokio::sync::watch`
//! channel of member sets (a registry poller that only keeps the latest listing) driving
//! real loopback backends through the pooled client, and a tower `Discover` whose key
//! closure maps two keys to one URL (refused, so that removing either key never leaves a
//! member served by a service the `Discover` took back).
//!
//! Every wait is bounded ([`BOUND`]).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use proxy_balancer::balancer::ReplayBody;
use proxy_balancer::client::MakeHttpMember;
use proxy_balancer::discover::{DiscoverError, MemberSetSync};
use proxy_balancer::{Balancer, BalancerParams, BalancerStore, ErrorResponseLayer, MemberParams};
use proxy_balancer_test::TestBackend;
use tokio::sync::{mpsc, watch};
use tower::discover::Change;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(5);

async fn wait_for(what: &str, cond: impl FnMut() -> bool) -> Duration {
    proxy_balancer_test::wait_for(what, BOUND, POLL, cond).await
}

fn urls(store: &BalancerStore) -> Vec<String> {
    store
        .snapshot()
        .members()
        .iter()
        .map(|m| m.url().to_owned())
        .collect()
}

/// A watch channel is the usual "latest listing" of a poller: only its newest value
/// matters. As a `Stream` of `Result<Vec<MemberParams>, Infallible>` it feeds `follow`;
/// the balancer behind `ErrorResponseLayer` answers from whichever members are in.
#[tokio::test]
async fn a_watch_channel_of_member_sets_drives_real_backends() {
    let a = TestBackend::start("a").await.expect("bind 127.0.0.1:0");
    let b = TestBackend::start("b").await.expect("bind 127.0.0.1:0");
    let now = tokio::time::Instant::now().into_std();
    let store =
        Arc::new(BalancerStore::new(BalancerParams::new("watched"), [], now).expect("valid"));
    let proxy = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new())
        .service(Balancer::new(Arc::clone(&store), MakeHttpMember::new()));

    let (tx, mut rx) = watch::channel(Vec::<MemberParams>::new());
    rx.mark_changed(); // the initial (empty) listing counts too
    let sets = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let set = rx.borrow_and_update().clone();
        Some((Ok::<_, Infallible>(set), rx))
    });
    let (handle, task) = MemberSetSync::new(Arc::clone(&store))
        .with_drain(Duration::ZERO)
        .follow(sets)
        .spawn();

    let ask = |n: usize| {
        let proxy = proxy.clone();
        async move {
            let mut seen = BTreeSet::new();
            let mut statuses = BTreeSet::new();
            for _ in 0..n {
                let response = tokio::time::timeout(
                    BOUND,
                    proxy.clone().oneshot(Request::new(Full::new(Bytes::new()))),
                )
                .await
                .expect("bounded")
                .expect("ErrorResponseLayer answers every request");
                statuses.insert(response.status());
                if let Some(v) = response.headers().get("x-backend") {
                    seen.insert(v.to_str().expect("ascii").to_owned());
                }
                response.into_body().collect().await.expect("a body");
            }
            (statuses, seen)
        }
    };

    // Empty at first: 503, as a balancer with no member.
    let (statuses, _) = ask(1).await;
    assert_eq!(statuses, BTreeSet::from([StatusCode::SERVICE_UNAVAILABLE]));

    let param = |b: &TestBackend| MemberParams::new(&b.url()).expect("a loopback URL");
    tx.send_replace(vec![param(&a), param(&b)]);
    wait_for("two members", || urls(&store) == [a.url(), b.url()]).await;
    let (statuses, seen) = ask(4).await;
    assert_eq!(statuses, BTreeSet::from([StatusCode::OK]));
    assert_eq!(seen, BTreeSet::from(["a".to_owned(), "b".to_owned()]));

    // Two listings before the sync looks: only the latest is applied.
    tx.send_replace(vec![param(&a)]);
    tx.send_replace(vec![param(&b)]);
    wait_for("only b", || urls(&store) == [b.url()]).await;
    let (_, seen) = ask(3).await;
    assert_eq!(seen, BTreeSet::from(["b".to_owned()]));

    // The poller goes away: the source ends, its members stay.
    drop(tx);
    tokio::time::timeout(BOUND, task)
        .await
        .expect("bounded")
        .expect("no panic");
    assert!(handle.source_ended());
    assert_eq!(urls(&store), [b.url()]);
}

type Named =
    BoxCloneSyncService<Request<ReplayBody<Empty<Bytes>>>, Response<Full<Bytes>>, Infallible>;

fn named(name: &'static str) -> Named {
    Named::new(service_fn(move |_req| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
    }))
}

/// A key closure that gives two keys the same URL (two registrations of one host): the
/// second key is refused and reported, so the member keeps the first key's service, and
/// removing the refused key changes nothing. Before, the second key's service replaced the
/// first's, and after the second key's removal its service, which the `Discover` had
/// taken back, still served the member.
#[tokio::test]
async fn two_keys_with_one_url_do_not_share_a_member() {
    let now = tokio::time::Instant::now().into_std();
    let store = Arc::new(BalancerStore::new(BalancerParams::new("keys"), [], now).expect("valid"));
    let (tx, rx) = mpsc::unbounded_channel::<Result<Change<&'static str, Named>, Infallible>>();
    let changes = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (change, rx))
    });
    // "blue-1" and "blue-2" are two registrations of the host "blue".
    let follow = MemberSetSync::new(Arc::clone(&store))
        .with_drain(Duration::ZERO)
        .follow_discover(changes, |key: &&'static str| {
            let host = key.split('-').next().unwrap_or(key);
            MemberParams::new(&format!("http://{host}.internal"))
        });
    let balancer = Balancer::new(Arc::clone(&store), follow.make_member());
    let (handle, _task) = follow.spawn();
    let ask = || {
        let balancer = balancer.clone();
        async move {
            let response =
                tokio::time::timeout(BOUND, balancer.oneshot(Request::new(Empty::<Bytes>::new())))
                    .await
                    .expect("bounded")
                    .expect("a response");
            let body = response.into_body().collect().await.expect("a body");
            String::from_utf8(body.to_bytes().to_vec()).expect("utf-8")
        }
    };

    tx.send(Ok(Change::Insert("blue-1", named("first"))))
        .expect("running");
    wait_for("blue", || urls(&store) == ["http://blue.internal"]).await;
    tx.send(Ok(Change::Insert("blue-2", named("second"))))
        .expect("running");
    wait_for("the refused key", || handle.errors() == 1).await;
    let error = handle.last_error().expect("recorded");
    assert!(
        matches!(*error, DiscoverError::Params { ref key, .. } if key.contains("blue-2")),
        "{error}"
    );
    assert!(
        error.to_string().contains("blue-1"),
        "names the key that has the URL: {error}"
    );
    assert_eq!(ask().await, "first", "the first key's service stays");

    // Removing the refused key leaves the member and its service alone.
    tx.send(Ok(Change::Remove("blue-2"))).expect("running");
    tx.send(Ok(Change::Insert("green-1", named("green"))))
        .expect("running");
    wait_for("green", || urls(&store).len() == 2).await;
    assert_eq!(
        urls(&store),
        ["http://blue.internal", "http://green.internal"]
    );
    let mut answers = vec![ask().await, ask().await];
    answers.sort();
    assert_eq!(answers, ["first", "green"]);

    // Removing the first key removes the member.
    tx.send(Ok(Change::Remove("blue-1"))).expect("running");
    wait_for("blue gone", || urls(&store) == ["http://green.internal"]).await;
    assert_eq!(ask().await, "green");
}
