//! Outlier ejection, slow start and the panic threshold (beyond Apache) on loopback: a
//! site built from Apache configuration lines, real backends, real time (short windows).
//!
//! The `eject*`, `panic` and `slowstart` parameters are set on the built site's store (the
//! same `set` a config line reaches) while the configuration reader learns their names.

use std::sync::Arc;
use std::time::Duration;

use proxy_balancer::apache_config::parse;
use proxy_balancer::server::{Server, ServerHandle};
use proxy_balancer::site::Site;
use proxy_balancer::{BalancerStore, StatusFlags};
use proxy_balancer_test::{start_demo_backends, TestBackend, TestClient};

const LOOPBACK: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// Requests at most, per phase: loopback answers take well under a millisecond, so a phase
/// of a second or two stays far below this.
const MAX_REQUESTS: usize = 20_000;

/// A site over `backends` (each `BalancerMember` with `extra`), its balancer set with the
/// `ProxySet` parameters `set` (Apache's syntax: the config reader applies them).
async fn serve(
    backends: &[TestBackend],
    extra: &str,
    set: &str,
) -> (ServerHandle, Arc<BalancerStore>) {
    let members: String = backends
        .iter()
        .map(|b| format!("    BalancerMember {} {extra}\n", b.url()))
        .collect();
    let text = format!(
        "ProxyHCTemplate quick hcmethod=GET hcuri=/health hcinterval=100ms hcpasses=1 hcfails=1\n\
         <Proxy balancer://app>\n{members}    ProxySet {set}\n</Proxy>\nProxyPass / balancer://app/\n"
    );
    let config = parse(&text).expect("a valid config");
    let site = Site::from_config(&config).expect("buildable");
    let store = Arc::clone(&site.stores()[0]);
    let running = Server::new()
        .listen(LOOPBACK, site)
        .await
        .expect("a loopback port");
    (running, store)
}

/// Sends one request; returns the status.
async fn get(client: &TestClient, addr: std::net::SocketAddr) -> u16 {
    client
        .get(&format!("http://{addr}/x"))
        .await
        .expect("an answer")
        .status
        .as_u16()
}

/// Requests a backend served, its health checks left out.
fn served(b: &TestBackend) -> u64 {
    b.hits() - b.health_hits()
}

fn ejected(store: &BalancerStore) -> Vec<bool> {
    store
        .snapshot()
        .members()
        .iter()
        .map(|m| m.flags().contains(StatusFlags::EJECTED))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_failing_30_percent_is_ejected_comes_back_and_ramps() {
    let backends = start_demo_backends(4).await.expect("loopback ports");
    // No failonstatus: Apache would never take the member out.
    let (running, store) = serve(
        &backends,
        "",
        "ejectsuccessrate=80 ejectwindow=1s ejectminrequests=10 ejecttime=2s",
    )
    .await;
    let addr = running.local_addr();
    let first = store.snapshot().members()[0].id();
    store
        .update_member(first, |m| m.set("slowstart", "1s"))
        .expect("a member")
        .expect("a valid slowstart");
    let client = TestClient::new().with_timeout(Duration::from_secs(5));

    // Backend 1 answers 3 of every 10 of its requests with a 500.
    let mut sent = 0;
    while !ejected(&store)[0] {
        let hits = backends[0].hits();
        backends[0].set_status(if [0, 3, 6].contains(&(hits % 10)) {
            500
        } else {
            200
        });
        get(&client, addr).await;
        sent += 1;
        assert!(sent < MAX_REQUESTS, "never ejected: {:?}", ejected(&store));
    }
    assert_eq!(
        ejected(&store),
        [true, false, false, false],
        "only the outlier"
    );
    assert_eq!(store.ejected(), 1);
    let member = store.snapshot().members()[0].clone();
    assert_eq!(member.state().ejections(), 1);
    let until = member.state().ejected_until().expect("ejected");
    assert_eq!(member.flags().label().to_string(), "Init Ejct ");
    backends[0].set_status(200);

    // While ejected, it gets nothing.
    let hits = backends[0].hits();
    for _ in 0..100 {
        assert_eq!(get(&client, addr).await, 200);
    }
    assert!(
        tokio::time::Instant::now().into_std() < until,
        "the phase outlasted the ejection"
    );
    assert_eq!(backends[0].hits(), hits, "no request while ejected");

    // After its time, the first pick lifts it: back, and ramping.
    tokio::time::sleep_until(until.into()).await;
    let before: Vec<u64> = backends.iter().map(TestBackend::hits).collect();
    let ramp_end = tokio::time::Instant::now() + Duration::from_millis(250);
    let mut n = 0;
    while tokio::time::Instant::now() < ramp_end && n < MAX_REQUESTS {
        assert_eq!(get(&client, addr).await, 200);
        n += 1;
    }
    assert!(!ejected(&store)[0], "lifted");
    assert_eq!(store.ejected(), 0);
    let early = (backends[0].hits() - before[0]) as f64 / n as f64;
    // A quarter of the traffic at full weight; within the first quarter of its ramp it
    // weighs at most a quarter of that: 1/4 / (3 + 1/4) ≈ 7.7 %.
    assert!(
        early < 0.1,
        "share in the first 250 ms of the ramp: {early:.3} of {n}"
    );
    assert!(early > 0.0, "it gets some traffic while ramping");

    // Once the ramp is over, its full share.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = backends[0].hits();
    for _ in 0..400 {
        assert_eq!(get(&client, addr).await, 200);
    }
    let full = (backends[0].hits() - before) as f64 / 400.0;
    eprintln!("share while ramping (first 250 ms of 1 s): {early:.3} of {n}; after: {full:.3}; ejected after {sent} requests");
    assert!(
        (full - 0.25).abs() < 0.02,
        "share after the ramp: {full:.3}"
    );
    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_500s_in_a_row_eject_for_ejecttime() {
    let backends = start_demo_backends(3).await.expect("loopback ports");
    let (running, store) = serve(&backends, "", "ejectconsecutive=5 ejecttime=2s").await;
    let addr = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    backends[1].set_status(500);

    let mut sent = 0;
    while !ejected(&store)[1] {
        get(&client, addr).await;
        sent += 1;
        assert!(sent < 100, "never ejected");
    }
    assert_eq!(backends[1].hits(), 5, "ejected by its fifth 500 in a row");
    assert_eq!(ejected(&store), [false, true, false]);
    for _ in 0..100 {
        assert_eq!(get(&client, addr).await, 200, "the others serve");
    }
    assert_eq!(backends[1].hits(), 5, "nothing while ejected");
    running.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_balances_over_members_failing_their_health_check() {
    let backends = start_demo_backends(4).await.expect("loopback ports");
    let (running, store) = serve(&backends, "hctemplate=quick", "panic=50").await;
    let addr = running.local_addr();
    let client = TestClient::new().with_timeout(Duration::from_secs(5));
    // Three of four fail their health check (their answers to requests are fine).
    for b in &backends[..3] {
        b.set_health_status(500);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.snapshot().members()[..3]
        .iter()
        .any(|m| !m.flags().contains(StatusFlags::HC_FAILED))
    {
        assert!(tokio::time::Instant::now() < deadline, "never marked HcFl");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = tokio::time::Instant::now().into_std();
    assert!(
        store.snapshot().in_panic(now),
        "1 of 4 usable is below 50 %"
    );
    let before: Vec<u64> = backends.iter().map(served).collect();
    for _ in 0..40 {
        assert_eq!(get(&client, addr).await, 200);
    }
    let got: Vec<u64> = backends
        .iter()
        .zip(&before)
        .map(|(b, n)| served(b) - n)
        .collect();
    assert_eq!(got, [10, 10, 10, 10], "balanced over all four");
    assert!(store.panics() >= 40);

    // Two healthy of four is not below 50 %: the failing ones are left out again.
    backends[0].set_health_status(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !store.snapshot().members()[0].is_usable() {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!store
        .snapshot()
        .in_panic(tokio::time::Instant::now().into_std()));
    let before: Vec<u64> = backends.iter().map(served).collect();
    let panics = store.panics();
    for _ in 0..40 {
        assert_eq!(get(&client, addr).await, 200);
    }
    let got: Vec<u64> = backends
        .iter()
        .zip(&before)
        .map(|(b, n)| served(b) - n)
        .collect();
    assert_eq!(got, [20, 0, 0, 20]);
    assert_eq!(store.panics(), panics, "no panic pick");
    running.shutdown().await.expect("stops cleanly");
}
